"""Server-side Table output: the columns and cells kube-apiserver's printers give each kind.

``Accept: application/json;as=Table;g=meta.k8s.io;v=v1`` turns a get, a list or each
watch event into a ``meta.k8s.io/v1`` ``Table`` (what ``kubectl get`` prints). The
printers follow kubernetes pkg/printers/internalversion/printers.go (v1.32), whose
server-side convertor always prints the wide (priority 1) columns too, leaving kubectl
to hide them without ``-o wide``; kinds without a printer get the default convertor of
k8s.io/apiserver pkg/registry/rest/table.go (Name, Created At), APIServices the
aggregator's, and custom resources the CRD convertor's (Name, then their
``additionalPrinterColumns`` or Age) from apiextensions-apiserver pkg/registry/
customresource/tableconvertor.

Where the real server would have defaulted a field before storing it (a Deployment's
``replicas``, a Service's ``type``), a printer reads the default when the field is absent,
so the row reads as kube-apiserver's would.

Why one file this long: one printer per built-in kind, each a few lines, sharing the
formatting helpers (durations, selectors, container lists) the Go printers share.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..selectors import LabelRequirement, LabelSelector
from ._conversion import convert
from ._served import PrinterColumn, ServedResource
from ._status import StatusError
from ._stored import BookmarkLine, event_line

Obj = Mapping[str, Any]
Cells = list[Any]

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is "
    "in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)

INCLUDE_OBJECT = ("None", "Metadata", "Object")
"""The values of the ``includeObject`` query parameter (``Metadata`` when absent)."""


@dataclass(frozen=True, slots=True)
class Column:
    """One ``TableColumnDefinition``."""

    name: str
    type: str = "string"
    format: str = ""
    priority: int = 0
    description: str = ""

    def definition(self) -> dict[str, Any]:
        """The column as the Table's ``columnDefinitions`` list it."""
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


NAME = Column("Name", format="name", description=_NAME_DOC)
AGE = Column("Age", description=_AGE_DOC)


@dataclass(frozen=True, slots=True)
class Printer:
    """How one kind prints: its columns, and the cells of an object at a time ``now``.

    Attributes:
        columns: the column definitions, wide ones (priority 1) included.
        cells: the row's cells, one per column, for an object at ``now`` (epoch seconds).
        conditions: the row's conditions (pods: Completed), if any.
        sort_key: the order of a list's rows, when the printer sorts them.
    """

    columns: tuple[Column, ...]
    cells: Callable[[Obj, float], Cells]
    conditions: Callable[[Obj], list[dict[str, str]]] | None = None
    sort_key: Callable[[Obj], Any] | None = None


# ----------------------------------------------------------------- formatting


def human_duration(seconds: float) -> str:
    """apimachinery's ``duration.HumanDuration``: ``"5s"``, ``"3m2s"``, ``"4h10m"``, ``"2d3h"``."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


def _epoch(timestamp: Any) -> float | None:
    """An RFC 3339 timestamp as epoch seconds; None when absent or not a timestamp."""
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        return datetime.datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None


def since(timestamp: Any, now: float) -> str:
    """printers.go ``translateTimestampSince``: the age of a timestamp, ``<unknown>`` if unset."""
    at = _epoch(timestamp)
    return "<unknown>" if at is None else human_duration(now - at)


def _age(obj: Obj, now: float) -> str:
    return since(_meta(obj).get("creationTimestamp"), now)


def _meta(obj: Obj) -> Mapping[str, Any]:
    return _map(obj.get("metadata"))


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _at(obj: Obj, *path: str) -> Any:
    """The value at a path of fields, None where any is missing."""
    value: Any = obj
    for name in path:
        value = _map(value).get(name)
    return value


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def format_labels(labels: Any) -> str:
    """apimachinery's ``labels.FormatLabels``: ``k=v,...`` sorted, ``<none>`` when empty."""
    text = ",".join(f"{k}={_str(v)}" for k, v in sorted(_map(labels).items()))
    return text or "<none>"


_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def selector_string(selector: Any) -> str:
    """``LabelSelectorAsSelector(selector).String()``: requirements by key; ``""`` when none."""
    sel = _map(selector)
    requirements = [
        LabelRequirement(str(k), "=", (_str(v),)) for k, v in _map(sel.get("matchLabels")).items()
    ]
    for expression in _list(sel.get("matchExpressions")):
        expression = _map(expression)
        operator = _OPERATORS.get(_str(expression.get("operator")))
        if operator is None:
            return "<error>"
        values = tuple(sorted(_str(v) for v in _list(expression.get("values"))))
        requirements.append(LabelRequirement(_str(expression.get("key")), operator, values))  # type: ignore[arg-type]
    requirements.sort(key=lambda r: r.key)
    return str(LabelSelector(tuple(requirements)))


def format_label_selector(selector: Any) -> str:
    """metav1's ``FormatLabelSelector``: the selector string, ``<none>`` when empty."""
    return selector_string(selector) or "<none>"


def _containers(template_spec: Any) -> tuple[str, str]:
    """printers.go ``layoutContainerCells``: container names and images, comma-joined."""
    containers = [_map(c) for c in _list(_map(template_spec).get("containers"))]
    names = ",".join(_str(c.get("name")) for c in containers)
    images = ",".join(_str(c.get("image")) for c in containers)
    return names, images


def _pod_template_cells(obj: Obj, *, selector: bool = True) -> Cells:
    names, images = _containers(_at(obj, "spec", "template", "spec"))
    cells: Cells = [names, images]
    if selector:
        cells.append(format_label_selector(_at(obj, "spec", "selector")))
    return cells


def _with_more(items: list[str], total: int, limit: int, *, empty: str) -> str:
    """``a,b,c + 2 more...`` as printers.go's ``listWithMoreString`` writes it."""
    text = ",".join(items[:limit])
    if total > limit:
        return f"{text} + {total - limit} more..."
    return text or empty


_WIDE = 1
_CONTAINERS = Column(
    "Containers", priority=_WIDE, description="Names of each container in the template."
)
_IMAGES = Column(
    "Images", priority=_WIDE, description="Images referenced by each container in the template."
)
_SELECTOR = Column("Selector", priority=_WIDE)
_TEMPLATE_WIDE = (_CONTAINERS, _IMAGES, _SELECTOR)
"""The ``-o wide`` columns of the kinds with a pod template and a selector."""


def _columns(*names: str, type: str = "string") -> tuple[Column, ...]:
    """Columns without a description, as most of kube-apiserver's printers have."""
    return tuple(Column(name, type) for name in names)


def _printer(
    columns: Iterable[Column],
    cells: Callable[[Obj, float], Cells],
    **options: Any,
) -> Printer:
    return Printer(
        (NAME, *columns), lambda obj, now: [_meta(obj).get("name", ""), *cells(obj, now)], **options
    )


# ------------------------------------------------------------------ core kinds


def _condition_true(conditions: Any, kind: str) -> bool:
    """Whether the first condition of a type is True (printers.go ``hasJobCondition``)."""
    for condition in _list(conditions):
        if _map(condition).get("type") == kind:
            return _map(condition).get("status") == "True"
    return False


def _pod_cells(pod: Obj, now: float) -> Cells:
    spec, status = _map(pod.get("spec")), _map(pod.get("status"))
    containers = _list(spec.get("containers"))
    init_specs = {_str(_map(c).get("name")): _map(c) for c in _list(spec.get("initContainers"))}

    def restartable(name: str) -> bool:
        return init_specs.get(name, {}).get("restartPolicy") == "Always"

    total = len(containers) + sum(restartable(n) for n in init_specs)
    ready = restarts = sidecar_restarts = 0
    last_restart = sidecar_last_restart = 0.0
    phase = _str(status.get("phase"))
    reason = _str(status.get("reason")) or phase
    for condition in _list(status.get("conditions")):
        condition = _map(condition)
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    def finished(container: Mapping[str, Any]) -> float:
        return _epoch(_at(container, "lastState", "terminated", "finishedAt")) or 0.0

    initializing = False
    init_statuses = [_map(c) for c in _list(status.get("initContainerStatuses"))]
    for index, container in enumerate(init_statuses):
        restarts += _int(container.get("restartCount"))
        last_restart = max(last_restart, finished(container))
        name = _str(container.get("name"))
        if restartable(name):
            sidecar_restarts += _int(container.get("restartCount"))
            sidecar_last_restart = max(sidecar_last_restart, finished(container))
        state = _map(container.get("state"))
        terminated, waiting = _map(state.get("terminated")), _map(state.get("waiting"))
        if "terminated" in state and _int(terminated.get("exitCode")) == 0:
            continue
        if restartable(name) and container.get("started") is True:
            ready += bool(container.get("ready"))
            continue
        if "terminated" in state:
            if terminated.get("reason"):
                reason = f"Init:{terminated['reason']}"
            elif _int(terminated.get("signal")):
                reason = f"Init:Signal:{_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break
    if not initializing or _condition_true(status.get("conditions"), "Initialized"):
        restarts, last_restart = sidecar_restarts, sidecar_last_restart
        running = False
        for container in reversed([_map(c) for c in _list(status.get("containerStatuses"))]):
            restarts += _int(container.get("restartCount"))
            last_restart = max(last_restart, finished(container))
            state = _map(container.get("state"))
            terminated, waiting = _map(state.get("terminated")), _map(state.get("waiting"))
            if waiting.get("reason"):
                reason = _str(waiting["reason"])
            elif terminated.get("reason"):
                reason = _str(terminated["reason"])
            elif "terminated" in state:
                signal = _int(terminated.get("signal"))
                reason = (
                    f"Signal:{signal}" if signal else f"ExitCode:{_int(terminated.get('exitCode'))}"
                )
            elif container.get("ready") and "running" in state:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running" if _condition_true(status.get("conditions"), "Ready") else "NotReady"
    deleting = _meta(pod).get("deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    ips = [_map(ip).get("ip") for ip in _list(status.get("podIPs"))]
    gates = _list(spec.get("readinessGates"))
    gates_text = "<none>"
    if gates:
        conditions = {
            _map(c).get("type"): _map(c).get("status")
            for c in reversed(_list(status.get("conditions")))
        }
        passed = sum(conditions.get(_map(g).get("conditionType")) == "True" for g in gates)
        gates_text = f"{passed}/{len(gates)}"
    return [
        f"{ready}/{total}",
        reason,
        restarts_text,
        _age(pod, now),
        _str(ips[0] if ips else "") or "<none>",
        _str(spec.get("nodeName")) or "<none>",
        _str(status.get("nominatedNodeName")) or "<none>",
        gates_text,
    ]


def _pod_conditions(pod: Obj) -> list[dict[str, str]]:
    phase = _at(pod, "status", "phase")
    if phase == "Succeeded":
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            }
        ]
    if phase == "Failed":
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Failed",
                "message": "The pod failed.",
            }
        ]
    return []


_POD = _printer(
    (
        Column(
            "Ready", description="The aggregate readiness state of this pod for accepting traffic."
        ),
        Column("Status", description="The aggregate status of the containers in this pod."),
        Column(
            "Restarts",
            description="The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        Column("IP", priority=_WIDE),
        Column("Node", priority=_WIDE),
        Column("Nominated Node", priority=_WIDE),
        Column("Readiness Gates", priority=_WIDE),
    ),
    _pod_cells,
    conditions=_pod_conditions,
)


def _node_cells(node: Obj, now: float) -> Cells:
    status = _map(node.get("status"))
    states = []
    for condition in _list(status.get("conditions")):
        condition = _map(condition)
        if condition.get("type") == "Ready":
            states = ["Ready" if condition.get("status") == "True" else "NotReady"]
    states = states or ["Unknown"]
    if _at(node, "spec", "unschedulable") is True:
        states.append("SchedulingDisabled")
    roles = set()
    for key, value in _map(_meta(node).get("labels")).items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/") :]:
            roles.add(key[len("node-role.kubernetes.io/") :])
        elif key == "kubernetes.io/role" and value:
            roles.add(_str(value))
    info = _map(status.get("nodeInfo"))

    def address(kind: str) -> str:
        for entry in _list(status.get("addresses")):
            if _map(entry).get("type") == kind:
                return _str(_map(entry).get("address"))
        return "<none>"

    return [
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        _age(node, now),
        _str(info.get("kubeletVersion")),
        address("InternalIP"),
        address("ExternalIP"),
        _str(info.get("osImage")) or "<unknown>",
        _str(info.get("kernelVersion")) or "<unknown>",
        _str(info.get("containerRuntimeVersion")) or "<unknown>",
    ]


_NODE = _printer(
    (
        Column("Status", description="The status of the node"),
        Column("Roles", description="The roles of the node"),
        AGE,
        Column("Version"),
        Column("Internal-IP", priority=_WIDE),
        Column("External-IP", priority=_WIDE),
        Column("OS-Image", priority=_WIDE),
        Column("Kernel-Version", priority=_WIDE),
        Column("Container-Runtime", priority=_WIDE),
    ),
    _node_cells,
)


def _service_external_ip(svc: Obj) -> str:
    spec = _map(svc.get("spec"))
    external = [_str(ip) for ip in _list(spec.get("externalIPs"))]
    kind = spec.get("type") or "ClusterIP"  # defaulted by kube-apiserver
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        balancers = _load_balancer(_at(svc, "status", "loadBalancer"))
        found = [*(balancers.split(",") if balancers else []), *external]
        return ",".join(found) or "<pending>"
    if kind == "ExternalName":
        return _str(spec.get("externalName"))
    return "<unknown>"


def _load_balancer(status: Any) -> str:
    """printers.go ``loadBalancerStatusStringer`` (wide: never clipped): IPs or hostnames, sorted."""
    found = set()
    for entry in _list(_map(status).get("ingress")):
        entry = _map(entry)
        value = entry.get("ip") or entry.get("hostname")
        if value:
            found.add(_str(value))
    return ",".join(sorted(found))


def _service_cells(svc: Obj, now: float) -> Cells:
    spec = _map(svc.get("spec"))
    ports = []
    for port in _list(spec.get("ports")):
        port = _map(port)
        protocol = port.get("protocol") or "TCP"  # defaulted by kube-apiserver
        node_port = _int(port.get("nodePort"))
        ports.append(
            f"{_int(port.get('port'))}:{node_port}/{protocol}"
            if node_port > 0
            else f"{_int(port.get('port'))}/{protocol}"
        )
    cluster_ips = _list(spec.get("clusterIPs"))
    return [
        _str(spec.get("type") or "ClusterIP"),
        _str(cluster_ips[0]) if cluster_ips else "<none>",
        _service_external_ip(svc),
        ",".join(ports) or "<none>",
        _age(svc, now),
        format_labels(spec.get("selector")),
    ]


_SERVICE = _printer(
    (
        *_columns("Type", "Cluster-IP", "External-IP", "Port(s)"),
        AGE,
        Column("Selector", priority=_WIDE),
    ),
    _service_cells,
)


def _endpoints_cells(obj: Obj, now: float) -> Cells:
    found: list[str] = []
    total = 0
    for subset in _list(obj.get("subsets")):
        subset = _map(subset)
        addresses = [_str(_map(a).get("ip")) for a in _list(subset.get("addresses"))]
        ports = _list(subset.get("ports"))
        if not ports:
            total += len(addresses)
            found.extend(addresses)
            continue
        for port in ports:
            total += len(addresses)
            number = _int(_map(port).get("port"))
            found.extend(f"[{a}]:{number}" if ":" in a else f"{a}:{number}" for a in addresses)
    if not _list(obj.get("subsets")):
        return ["<none>", _age(obj, now)]
    return [_with_more(found, total, 3, empty=""), _age(obj, now)]


def _event_cells(event: Obj, now: float) -> Cells:
    first = since(event.get("firstTimestamp"), now)
    if _epoch(event.get("firstTimestamp")) is None:
        first = since(event.get("eventTime"), now)
    last = since(event.get("lastTimestamp"), now)
    if _epoch(event.get("lastTimestamp")) is None:
        last = first
    count = _int(event.get("count"))
    series = event.get("series")
    if isinstance(series, Mapping):
        last = since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the events.k8s.io API have no count
    involved = _map(event.get("involvedObject"))
    kind = _str(involved.get("kind")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = _map(event.get("source"))
    component = _str(source.get("component")) or _str(event.get("reportingComponent"))
    instance = _str(source.get("host")) or _str(event.get("reportingInstance"))
    return [
        last,
        _str(event.get("type")),
        _str(event.get("reason")),
        target,
        _str(involved.get("fieldPath")),
        f"{component}, {instance}" if instance else component,
        _str(event.get("message")).strip(),
        first,
        count,
        _meta(event).get("name", ""),
    ]


_EVENT = Printer(
    (
        *_columns("Last Seen", "Type", "Reason", "Object"),
        Column("Subobject", priority=_WIDE),
        Column("Source", priority=_WIDE),
        Column("Message"),
        Column("First Seen", priority=_WIDE),
        Column("Count", priority=_WIDE),
        Column("Name", format="name", priority=_WIDE, description=_NAME_DOC),
    ),
    _event_cells,
)


def _access_modes(modes: Any) -> str:
    """``GetAccessModesAsString``: RWO, ROX, RWX, RWOP in that order."""
    given = set(_list(modes))
    short = {
        "ReadWriteOnce": "RWO",
        "ReadOnlyMany": "ROX",
        "ReadWriteMany": "RWX",
        "ReadWriteOncePod": "RWOP",
    }
    return ",".join(abbr for mode, abbr in short.items() if mode in given)


_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def _storage_class(obj: Obj) -> str:
    annotations = _map(_meta(obj).get("annotations"))
    if _STORAGE_CLASS_ANNOTATION in annotations:
        return _str(annotations[_STORAGE_CLASS_ANNOTATION])
    return _str(_at(obj, "spec", "storageClassName"))


def _volume_phase(obj: Obj) -> str:
    if _meta(obj).get("deletionTimestamp") is not None:
        return "Terminating"
    return _str(_at(obj, "status", "phase")) or "Pending"  # defaulted by kube-apiserver


def _pv_cells(pv: Obj, now: float) -> Cells:
    spec = _map(pv.get("spec"))
    claim = _map(spec.get("claimRef"))
    return [
        _str(_map(spec.get("capacity")).get("storage")) or "0",
        _access_modes(spec.get("accessModes")),
        _str(spec.get("persistentVolumeReclaimPolicy") or "Retain"),
        _volume_phase(pv),
        f"{_str(claim.get('namespace'))}/{_str(claim.get('name'))}"
        if spec.get("claimRef") is not None
        else "",
        _storage_class(pv),
        _str(spec.get("volumeAttributesClassName")) or "<unset>",
        _str(_at(pv, "status", "reason")),
        _age(pv, now),
        _str(spec.get("volumeMode") or "Filesystem"),
    ]


def _pvc_cells(pvc: Obj, now: float) -> Cells:
    spec, status = _map(pvc.get("spec")), _map(pvc.get("status"))
    bound = bool(spec.get("volumeName"))
    return [
        _volume_phase(pvc),
        _str(spec.get("volumeName")),
        _str(_map(status.get("capacity")).get("storage")) or "0" if bound else "",
        _access_modes(status.get("accessModes")) if bound else "",
        _storage_class(pvc),
        _str(spec.get("volumeAttributesClassName")) or "<unset>",
        _age(pvc, now),
        _str(spec.get("volumeMode") or "Filesystem"),
    ]


def _resource_quota_cells(quota: Obj, now: float) -> Cells:
    status = _map(quota.get("status"))
    hard, used = _map(status.get("hard")), _map(status.get("used"))
    requests: list[str] = []
    limits: list[str] = []
    for name in sorted(hard):
        text = f"{name}: {_str(used.get(name)) or '0'}/{_str(hard[name])}"
        (limits if name.split(".")[0] == "limits" and "." in name else requests).append(text)
    return [", ".join(requests), ", ".join(limits), _age(quota, now)]


def _count_cells(*path: str) -> Callable[[Obj, float], Cells]:
    """A printer's cells: the length of a list or map, then the age."""

    def cells(obj: Obj, now: float) -> Cells:
        value = _at(obj, *path)
        return [len(value) if isinstance(value, (list, dict)) else 0, _age(obj, now)]

    return cells


def _configmap_cells(obj: Obj, now: float) -> Cells:
    return [len(_map(obj.get("data"))) + len(_map(obj.get("binaryData"))), _age(obj, now)]


# ----------------------------------------------------------------- workloads


def _replicas(obj: Obj) -> int:
    return _int(_at(obj, "spec", "replicas"), 1)  # defaulted to 1 by kube-apiserver


def _deployment_cells(obj: Obj, now: float) -> Cells:
    status = _map(obj.get("status"))
    names, images = _containers(_at(obj, "spec", "template", "spec"))
    return [
        f"{_int(status.get('readyReplicas'))}/{_replicas(obj)}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(obj, now),
        names,
        images,
        selector_string(_at(obj, "spec", "selector")),
    ]


def _replica_set_cells(obj: Obj, now: float) -> Cells:
    status = _map(obj.get("status"))
    return [
        _replicas(obj),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(obj, now),
        *_pod_template_cells(obj),
    ]


def _replication_controller_cells(obj: Obj, now: float) -> Cells:
    cells = _replica_set_cells(obj, now)
    cells[-1] = format_labels(_at(obj, "spec", "selector"))  # a map, not a LabelSelector
    return cells


def _daemon_set_cells(obj: Obj, now: float) -> Cells:
    status = _map(obj.get("status"))
    return [
        _int(status.get("desiredNumberScheduled")),
        _int(status.get("currentNumberScheduled")),
        _int(status.get("numberReady")),
        _int(status.get("updatedNumberScheduled")),
        _int(status.get("numberAvailable")),
        format_labels(_at(obj, "spec", "template", "spec", "nodeSelector")),
        _age(obj, now),
        *_pod_template_cells(obj),
    ]


def _stateful_set_cells(obj: Obj, now: float) -> Cells:
    ready = _int(_at(obj, "status", "readyReplicas"))
    return [f"{ready}/{_replicas(obj)}", _age(obj, now), *_pod_template_cells(obj, selector=False)]


def _job_cells(job: Obj, now: float) -> Cells:
    spec, status = _map(job.get("spec")), _map(job.get("status"))
    succeeded = _int(status.get("succeeded"))
    if isinstance(spec.get("completions"), int):
        completions = f"{succeeded}/{spec['completions']}"
    elif _int(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {_int(spec.get('parallelism'))}"
    else:
        completions = f"{succeeded}/1"
    started, completed = _epoch(status.get("startTime")), _epoch(status.get("completionTime"))
    took = "" if started is None else human_duration((completed or now) - started)
    conditions = status.get("conditions")
    if _condition_true(conditions, "Complete"):
        state = "Complete"
    elif _condition_true(conditions, "Failed"):
        state = "Failed"
    elif _meta(job).get("deletionTimestamp") is not None:
        state = "Terminating"
    elif _condition_true(conditions, "Suspended"):
        state = "Suspended"
    elif _condition_true(conditions, "FailureTarget"):
        state = "FailureTarget"
    else:
        state = "Running"
    return [state, completions, took, _age(job, now), *_pod_template_cells(job)]


def _bool_text(value: Any) -> str:
    """printers.go ``printBoolPtr``: ``True``/``False``, ``<unset>`` for no value."""
    if not isinstance(value, bool):
        return "<unset>"
    return "True" if value else "False"


def _cron_job_cells(obj: Obj, now: float) -> Cells:
    spec = _map(obj.get("spec"))
    last = _at(obj, "status", "lastScheduleTime")
    job_spec = _at(obj, "spec", "jobTemplate", "spec")
    names, images = _containers(_at(job_spec, "template", "spec"))
    return [
        _str(spec.get("schedule")),
        _str(spec.get("timeZone")) or "<none>",
        _bool_text(spec.get("suspend", False)),  # defaulted to false by kube-apiserver
        len(_list(_at(obj, "status", "active"))),
        "<none>" if last is None else since(last, now),
        _age(obj, now),
        names,
        images,
        format_label_selector(_map(job_spec).get("selector")),
    ]


_REPLICA_COLUMNS = (
    Column("Desired", "integer"),
    Column("Current", "integer"),
    Column("Ready", "integer"),
    AGE,
    *_TEMPLATE_WIDE,
)


def _hpa_metrics(hpa: Obj) -> str:
    """printers.go ``formatHPAMetrics``, over autoscaling/v2 specs and statuses."""
    specs = _list(_at(hpa, "spec", "metrics"))
    if not specs:
        # kube-apiserver's defaulting: a target of 80 % CPU utilisation.
        specs = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]
    statuses = _list(_at(hpa, "status", "currentMetrics"))
    found = []
    for index, spec in enumerate(specs):
        spec = _map(spec)
        kind = _str(spec.get("type"))
        source_key = {
            "External": "external",
            "Pods": "pods",
            "Object": "object",
            "Resource": "resource",
            "ContainerResource": "containerResource",
        }.get(kind)
        if source_key is None:
            found.append("<unknown type>")
            continue
        source = _map(spec.get(source_key))
        target = _map(source.get("target"))
        current_source = (
            _map(_map(statuses[index]).get(source_key)) if index < len(statuses) else {}
        )
        current = _map(current_source.get("current"))
        has_status = index < len(statuses) and source_key in _map(statuses[index])
        if kind in ("External", "Object"):
            if "averageValue" in target:
                value = (
                    _str(current.get("averageValue"))
                    if has_status and "averageValue" in current
                    else "<unknown>"
                )
                found.append(f"{value}/{_str(target['averageValue'])} (avg)")
            else:
                value = _str(current.get("value")) if has_status else "<unknown>"
                found.append(f"{value}/{_str(target.get('value'))}")
        elif kind == "Pods":
            value = _str(current.get("averageValue")) if has_status else "<unknown>"
            found.append(f"{value}/{_str(target.get('averageValue'))}")
        elif "averageValue" in target:
            value = _str(current.get("averageValue")) if has_status else "<unknown>"
            found.append(f"{_str(source.get('name'))}: {value}/{_str(target['averageValue'])}")
        else:
            utilization = current.get("averageUtilization") if has_status else None
            value = f"{utilization}%" if isinstance(utilization, int) else "<unknown>"
            wanted = target.get("averageUtilization")
            limit = f"{wanted}%" if isinstance(wanted, int) else "<auto>"
            found.append(f"{_str(source.get('name'))}: {value}/{limit}")
    if len(found) > 2:
        return f"{', '.join(found[:2])} + {len(found) - 2} more..."
    return ", ".join(found)


def _hpa_cells(hpa: Obj, now: float) -> Cells:
    spec = _map(hpa.get("spec"))
    target = _map(spec.get("scaleTargetRef"))
    return [
        f"{_str(target.get('kind'))}/{_str(target.get('name'))}",
        _hpa_metrics(hpa),
        str(_int(spec.get("minReplicas"), 1)),  # defaulted to 1 by kube-apiserver
        _int(spec.get("maxReplicas")),
        _int(_at(hpa, "status", "currentReplicas")),
        _age(hpa, now),
    ]


def _int_or_string(value: Any) -> str:
    return "N/A" if value is None else _str(value)


def _pdb_cells(pdb: Obj, now: float) -> Cells:
    spec = _map(pdb.get("spec"))
    return [
        _int_or_string(spec.get("minAvailable")),
        _int_or_string(spec.get("maxUnavailable")),
        _int(_at(pdb, "status", "disruptionsAllowed")),
        _age(pdb, now),
    ]


def _controller_revision_cells(obj: Obj, now: float) -> Cells:
    owner = "<none>"
    for ref in _list(_meta(obj).get("ownerReferences")):
        ref = _map(ref)
        if ref.get("controller") is True:
            group = _str(ref.get("apiVersion")).rpartition("/")[0]
            kind = _str(ref.get("kind")) + (f".{group}" if group else "")
            owner = f"{kind.lower()}/{_str(ref.get('name'))}" if kind else _str(ref.get("name"))
            break
    return [owner, _int(obj.get("revision")), _age(obj, now)]


# ------------------------------------------------------------ networking, rbac


def _ingress_cells(obj: Obj, now: float) -> Cells:
    spec = _map(obj.get("spec"))
    rules = [_map(r) for r in _list(spec.get("rules"))]
    hosts = [_str(r["host"]) for r in rules if r.get("host")][:3]
    more = len(rules) > 3 and len(hosts) == 3
    text = ",".join(hosts) or "*"
    if more:
        text = f"{text} + {len(rules) - 3} more..."
    return [
        _str(spec.get("ingressClassName")) or "<none>",
        text,
        _load_balancer(_at(obj, "status", "loadBalancer")),
        "80, 443" if _list(spec.get("tls")) else "80",
        _age(obj, now),
    ]


def _ingress_class_cells(obj: Obj, now: float) -> Cells:
    parameters = _at(obj, "spec", "parameters")
    text = "<none>"
    if isinstance(parameters, Mapping):
        group = parameters.get("apiGroup")
        text = _str(parameters.get("kind")) + (f".{group}" if group is not None else "")
        text = f"{text}/{_str(parameters.get('name'))}"
    return [_str(_at(obj, "spec", "controller")), text, _age(obj, now)]


def _endpoint_slice_cells(obj: Obj, now: float) -> Cells:
    ports = []
    for port in _list(obj.get("ports")):
        port = _map(port)
        if isinstance(port.get("port"), int):
            ports.append(str(port["port"]))
        elif port.get("name") is not None:
            ports.append(_str(port["name"]))
        else:
            ports.append("*")
    addresses = [
        _str(a) for e in _list(obj.get("endpoints")) for a in _list(_map(e).get("addresses"))
    ]
    return [
        _str(obj.get("addressType")),
        _with_more(ports, len(ports), 3, empty="<unset>"),
        _with_more(addresses, len(addresses), 3, empty="<unset>"),
        _age(obj, now),
    ]


def _binding_cells(obj: Obj, now: float) -> Cells:
    ref = _map(obj.get("roleRef"))
    users, groups, accounts = [], [], []
    for subject in _list(obj.get("subjects")):
        subject = _map(subject)
        kind, name = subject.get("kind"), _str(subject.get("name"))
        if kind == "ServiceAccount":
            accounts.append(f"{_str(subject.get('namespace'))}/{name}")
        elif kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
    return [
        f"{_str(ref.get('kind'))}/{_str(ref.get('name'))}",
        _age(obj, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(accounts),
    ]


_BINDING_COLUMNS = (
    Column("Role"),
    AGE,
    Column("Users", priority=_WIDE),
    Column("Groups", priority=_WIDE),
    Column("ServiceAccounts", priority=_WIDE),
)


def _network_policy_cells(obj: Obj, now: float) -> Cells:
    return [format_label_selector(_at(obj, "spec", "podSelector")), _age(obj, now)]


# --------------------------------------------------------- storage, scheduling


def _storage_class_cells(obj: Obj, now: float) -> Cells:
    return [
        _str(obj.get("provisioner")),
        _str(obj.get("reclaimPolicy") or "Delete"),
        _str(obj.get("volumeBindingMode") or "Immediate"),
        obj.get("allowVolumeExpansion") is True,
        _age(obj, now),
    ]


_DEFAULT_CLASS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def _storage_class_name(obj: Obj) -> str:
    annotations = _map(_meta(obj).get("annotations"))
    name = _str(_meta(obj).get("name"))
    return (
        f"{name} (default)" if any(annotations.get(a) == "true" for a in _DEFAULT_CLASS) else name
    )


def _csi_driver_cells(obj: Obj, now: float) -> Cells:
    spec = _map(obj.get("spec"))
    requests = spec.get("tokenRequests")
    audiences = (
        "<unset>"
        if requests is None
        else ",".join(_str(_map(r).get("audience")) for r in _list(requests))
    )
    modes = _list(spec.get("volumeLifecycleModes")) or ["Persistent"]  # defaulted by kube-apiserver
    return [
        spec.get("attachRequired", True) is True,
        spec.get("podInfoOnMount") is True,
        spec.get("storageCapacity") is True,
        audiences,
        spec.get("requiresRepublish") is True,
        ",".join(_str(m) for m in modes),
        _age(obj, now),
    ]


def _csi_capacity_cells(obj: Obj, now: float) -> Cells:
    return [_str(obj.get("storageClassName")), _str(obj.get("capacity")) or "<unset>"]


def _volume_attachment_cells(obj: Obj, now: float) -> Cells:
    spec = _map(obj.get("spec"))
    return [
        _str(spec.get("attacher")),
        _str(_at(spec, "source", "persistentVolumeName")),
        _str(spec.get("nodeName")),
        _at(obj, "status", "attached") is True,
        _age(obj, now),
    ]


def _priority_class_cells(obj: Obj, now: float) -> Cells:
    return [
        _int(obj.get("value")),
        obj.get("globalDefault") is True,
        _age(obj, now),
        _str(obj.get("preemptionPolicy") or "PreemptLowerPriority"),  # defaulted by kube-apiserver
    ]


def _csr_cells(csr: Obj, now: float) -> Cells:
    spec, status = _map(csr.get("spec")), _map(csr.get("status"))
    kinds = {_map(c).get("type") for c in _list(status.get("conditions"))}
    state = "Denied" if "Denied" in kinds else "Approved" if "Approved" in kinds else "Pending"
    if "Failed" in kinds:
        state += ",Failed"
    if status.get("certificate"):
        state += ",Issued"
    seconds = spec.get("expirationSeconds")
    return [
        _age(csr, now),
        _str(spec.get("signerName")) or "<none>",
        _str(spec.get("username")),
        human_duration(seconds) if isinstance(seconds, int) else "<none>",
        state,
    ]


def _param_ref(binding: Obj) -> str:
    ref = _at(binding, "spec", "paramRef")
    if not isinstance(ref, Mapping):
        return "<unset>"
    if ref.get("name"):
        return f"{_str(ref.get('namespace')) or '*'}/{_str(ref['name'])}"
    if ref.get("selector") is not None:
        return selector_string(ref["selector"])
    return "<unset>"


def _param_kind(policy: Obj) -> str:
    kind = _at(policy, "spec", "paramKind")
    if not isinstance(kind, Mapping):
        return "<unset>"
    return f"{_str(kind.get('apiVersion'))}/{_str(kind.get('kind'))}"


def _flow_schema_cells(obj: Obj, now: float) -> Cells:
    spec = _map(obj.get("spec"))
    method = _at(spec, "distinguisherMethod", "type")
    dangling = "?"
    for condition in _list(_at(obj, "status", "conditions")):
        if _map(condition).get("type") == "Dangling":
            dangling = _str(_map(condition).get("status"))
            break
    return [
        _str(_at(spec, "priorityLevelConfiguration", "name")),
        _int(spec.get("matchingPrecedence")),
        _str(method) if method is not None else "<none>",
        _age(obj, now),
        dangling,
    ]


def _priority_level_cells(obj: Obj, now: float) -> Cells:
    spec = _map(obj.get("spec"))
    limited = spec.get("limited")
    values: list[Any] = ["<none>"] * 4
    if isinstance(limited, Mapping):
        values[0] = _int(limited.get("nominalConcurrencyShares"))
        queuing = _at(limited, "limitResponse", "queuing")
        if isinstance(queuing, Mapping):
            values[1:] = [_int(queuing.get(k)) for k in ("queues", "handSize", "queueLengthLimit")]
    return [_str(spec.get("type")), *values, _age(obj, now)]


def _api_service_cells(obj: Obj, now: float) -> Cells:
    """The aggregator's convertor (kube-aggregator pkg/registry/apiservice/etcd)."""
    service = _at(obj, "spec", "service")
    where = (
        "Local"
        if not isinstance(service, Mapping)
        else f"{_str(service.get('namespace'))}/{_str(service.get('name'))}"
    )
    available = "Unknown"
    for condition in _list(_at(obj, "status", "conditions")):
        condition = _map(condition)
        if condition.get("type") == "Available":
            state = _str(condition.get("status"))
            available = (
                f"{state} ({condition['reason']})"
                if state != "True" and condition.get("reason")
                else state
            )
            break
    return [where, available, _age(obj, now)]


def _default_cells(obj: Obj, now: float) -> Cells:
    """The default convertor's Created At: RFC 3339 in UTC, Go's zero time when unset."""
    at = _epoch(_meta(obj).get("creationTimestamp"))
    moment = datetime.datetime.fromtimestamp(at or -62135596800, datetime.UTC)
    return [moment.strftime("%Y-%m-%dT%H:%M:%SZ")]


DEFAULT = _printer((Column("Created At", "date", description=_AGE_DOC),), _default_cells)
"""k8s.io/apiserver's default table convertor, for kinds with no printer of their own."""


def _simple(*fields: tuple[str, ...]) -> Callable[[Obj, float], Cells]:
    """Cells of string fields at paths, then the age."""

    def cells(obj: Obj, now: float) -> Cells:
        return [*(_str(_at(obj, *path)) for path in fields), _age(obj, now)]

    return cells


def _pod_template_printer_cells(obj: Obj, now: float) -> Cells:
    names, images = _containers(_at(obj, "template", "spec"))
    return [names, images, format_labels(_at(obj, "template", "metadata", "labels"))]


def _webhooks(obj: Obj, now: float) -> Cells:
    return [len(_list(obj.get("webhooks"))), _age(obj, now)]


BUILTIN: dict[tuple[str, str], Printer] = {
    ("", "pods"): _POD,
    ("", "podtemplates"): _printer(
        (
            Column("Containers", description="Names of each container in the template."),
            Column("Images", description="Images referenced by each container in the template."),
            Column("Pod Labels", description="The labels for the pod template."),
        ),
        _pod_template_printer_cells,
    ),
    ("", "replicationcontrollers"): _printer(_REPLICA_COLUMNS, _replication_controller_cells),
    ("", "services"): _SERVICE,
    ("", "endpoints"): _printer((Column("Endpoints"), AGE), _endpoints_cells),
    ("", "nodes"): _NODE,
    ("", "events"): _EVENT,
    ("", "namespaces"): _printer(
        (Column("Status", description="The status of the namespace"), AGE),
        _simple(("status", "phase")),
    ),
    ("", "secrets"): _printer(
        (Column("Type"), Column("Data"), AGE),
        lambda o, now: [_str(o.get("type") or "Opaque"), *_count_cells("data")(o, now)],
    ),
    ("", "serviceaccounts"): _printer((Column("Secrets"), AGE), _count_cells("secrets")),
    ("", "persistentvolumes"): _printer(
        (
            *_columns("Capacity", "Access Modes", "Reclaim Policy", "Status", "Claim"),
            Column("StorageClass", description="StorageClass of the pv"),
            Column("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
            Column("Reason"),
            AGE,
            Column("VolumeMode", priority=_WIDE),
        ),
        _pv_cells,
    ),
    ("", "persistentvolumeclaims"): _printer(
        (
            *_columns("Status", "Volume", "Capacity", "Access Modes"),
            Column("StorageClass", description="StorageClass of the pvc"),
            Column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
            AGE,
            Column("VolumeMode", priority=_WIDE),
        ),
        _pvc_cells,
    ),
    ("", "configmaps"): _printer((Column("Data"), AGE), _configmap_cells),
    ("", "resourcequotas"): _printer(
        (
            Column(
                "Request",
                description="Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
            Column(
                "Limit",
                description="Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
            ),
            AGE,
        ),
        _resource_quota_cells,
    ),
    ("apps", "deployments"): _printer(
        (
            Column("Ready", description="Number of the pod with ready state"),
            *_columns("Up-to-date", "Available"),
            AGE,
            *_TEMPLATE_WIDE,
        ),
        _deployment_cells,
    ),
    ("apps", "replicasets"): _printer(_REPLICA_COLUMNS, _replica_set_cells),
    ("apps", "daemonsets"): _printer(
        (
            *_columns("Desired", "Current", "Ready", "Up-to-date", "Available", type="integer"),
            Column("Node Selector"),
            AGE,
            *_TEMPLATE_WIDE,
        ),
        _daemon_set_cells,
    ),
    ("apps", "statefulsets"): _printer(
        (
            Column("Ready", description="Number of the pod with ready state"),
            AGE,
            _CONTAINERS,
            _IMAGES,
        ),
        _stateful_set_cells,
    ),
    ("apps", "controllerrevisions"): _printer(
        (Column("Controller", description="Controller of the object"), Column("Revision"), AGE),
        _controller_revision_cells,
    ),
    ("batch", "jobs"): _printer(
        (
            Column("Status", description="Status of the job."),
            Column("Completions"),
            Column("Duration", description="Time required to complete the job."),
            AGE,
            *_TEMPLATE_WIDE,
        ),
        _job_cells,
    ),
    ("batch", "cronjobs"): _printer(
        (
            *_columns("Schedule", "Timezone"),
            Column("Suspend", "boolean"),
            Column("Active", "integer"),
            Column("Last Schedule"),
            AGE,
            *_TEMPLATE_WIDE,
        ),
        _cron_job_cells,
    ),
    ("autoscaling", "horizontalpodautoscalers"): _printer(
        (
            *_columns("Reference", "Targets", "MinPods", "MaxPods", "Replicas"),
            AGE,
        ),
        _hpa_cells,
    ),
    ("policy", "poddisruptionbudgets"): _printer(
        (
            Column(
                "Min Available", description="The minimum number of pods that must be available."
            ),
            Column(
                "Max Unavailable", description="The maximum number of pods that may be unavailable."
            ),
            Column(
                "Allowed Disruptions",
                "integer",
                description="Calculated number of pods that may be disrupted at this time.",
            ),
            AGE,
        ),
        _pdb_cells,
    ),
    ("networking.k8s.io", "ingresses"): _printer(
        (
            Column(
                "Class",
                description="The name of the IngressClass resource that should be used for additional configuration",
            ),
            Column(
                "Hosts",
                description="Hosts that incoming requests are matched against before the ingress rule",
            ),
            Column(
                "Address",
                description="Address is a list containing ingress points for the load-balancer",
            ),
            Column("Ports", description="Ports of TLS configurations that open"),
            AGE,
        ),
        _ingress_cells,
    ),
    ("networking.k8s.io", "ingressclasses"): _printer(
        (
            Column(
                "Controller", description="Controller that is responsible for handling this class"
            ),
            Column(
                "Parameters", description="A reference to a resource with additional parameters"
            ),
            AGE,
        ),
        _ingress_class_cells,
    ),
    ("networking.k8s.io", "networkpolicies"): _printer(
        (Column("Pod-Selector"), AGE), _network_policy_cells
    ),
    ("discovery.k8s.io", "endpointslices"): _printer(
        (Column("AddressType"), Column("Ports"), Column("Endpoints"), AGE), _endpoint_slice_cells
    ),
    ("rbac.authorization.k8s.io", "rolebindings"): _printer(_BINDING_COLUMNS, _binding_cells),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): _printer(
        _BINDING_COLUMNS, _binding_cells
    ),
    ("certificates.k8s.io", "certificatesigningrequests"): _printer(
        (
            AGE,
            *_columns("SignerName", "Requestor", "RequestedDuration", "Condition"),
        ),
        _csr_cells,
    ),
    ("coordination.k8s.io", "leases"): _printer(
        (Column("Holder"), AGE), _simple(("spec", "holderIdentity"))
    ),
    ("storage.k8s.io", "storageclasses"): Printer(
        (
            NAME,
            *_columns("Provisioner", "ReclaimPolicy", "VolumeBindingMode", "AllowVolumeExpansion"),
            AGE,
        ),
        lambda obj, now: [_storage_class_name(obj), *_storage_class_cells(obj, now)],
    ),
    ("storage.k8s.io", "csidrivers"): _printer(
        (
            Column("AttachRequired", "boolean"),
            Column("PodInfoOnMount", "boolean"),
            Column("StorageCapacity", "boolean"),
            Column("TokenRequests"),
            Column("RequiresRepublish", "boolean"),
            Column("Modes"),
            AGE,
        ),
        _csi_driver_cells,
    ),
    ("storage.k8s.io", "csinodes"): _printer(
        (
            Column(
                "Drivers",
                "integer",
                description="Drivers indicates the number of CSI drivers registered on the node",
            ),
            AGE,
        ),
        _count_cells("spec", "drivers"),
    ),
    ("storage.k8s.io", "csistoragecapacities"): _printer(
        (Column("StorageClassName"), Column("Capacity")), _csi_capacity_cells
    ),
    ("storage.k8s.io", "volumeattachments"): _printer(
        (
            Column("Attacher", format="name"),
            *_columns("PV", "Node"),
            Column("Attached", "boolean"),
            AGE,
        ),
        _volume_attachment_cells,
    ),
    ("scheduling.k8s.io", "priorityclasses"): _printer(
        (
            Column("Value", "integer"),
            Column("Global-Default", "boolean"),
            AGE,
            Column("PreemptionPolicy"),
        ),
        _priority_class_cells,
    ),
    ("node.k8s.io", "runtimeclasses"): _printer((Column("Handler"), AGE), _simple(("handler",))),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): _printer(
        (
            Column(
                "Webhooks",
                "integer",
                description="Webhooks indicates the number of webhooks registered in this configuration",
            ),
            AGE,
        ),
        _webhooks,
    ),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): _printer(
        (
            Column(
                "Webhooks",
                "integer",
                description="Webhooks indicates the number of webhooks registered in this configuration",
            ),
            AGE,
        ),
        _webhooks,
    ),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): _printer(
        (
            Column(
                "Validations",
                "integer",
                description="Validations indicates the number of validation rules defined in this configuration",
            ),
            Column(
                "ParamKind",
                description="ParamKind specifies the kind of resources used to parameterize this policy",
            ),
            AGE,
        ),
        lambda o, now: [len(_list(_at(o, "spec", "validations"))), _param_kind(o), _age(o, now)],
    ),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): _printer(
        (
            Column(
                "PolicyName",
                description="PolicyName indicates the policy definition which the policy binding binded to",
            ),
            Column(
                "ParamRef",
                description="ParamRef indicates the param resource which sets the configration param",
            ),
            AGE,
        ),
        lambda o, now: [_str(_at(o, "spec", "policyName")), _param_ref(o), _age(o, now)],
    ),
    ("flowcontrol.apiserver.k8s.io", "flowschemas"): _printer(
        (
            *_columns("PriorityLevel", "MatchingPrecedence", "DistinguisherMethod"),
            AGE,
            Column(
                "MissingPL",
                description="references a broken or non-existent PriorityLevelConfiguration",
            ),
        ),
        _flow_schema_cells,
        sort_key=lambda o: (_int(_at(o, "spec", "matchingPrecedence")), _str(_meta(o).get("name"))),
    ),
    ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"): _printer(
        (
            *_columns("Type", "NominalConcurrencyShares", "Queues", "HandSize", "QueueLengthLimit"),
            AGE,
        ),
        _priority_level_cells,
    ),
    ("apiregistration.k8s.io", "apiservices"): _printer(
        (
            Column(
                "Service", description="The reference to the service that hosts this API endpoint."
            ),
            Column("Available", description="Whether this service is available."),
            AGE,
        ),
        _api_service_cells,
    ),
}
"""The printer of each built-in resource by (group, plural); the others use :data:`DEFAULT`."""


# ------------------------------------------------------------- custom resources

_PATH_STEP = re.compile(
    r"\.([^.\[]+)|\[(\d+)\]|\[\?\(@\.([\w.]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]|\[\*\]"
)


def json_path_values(obj: Any, path: str) -> list[Any] | None:
    """The values at a CRD printer column's JSONPath (``.spec.replicas``,
    ``.status.conditions[?(@.type=="Ready")].status``, ``.items[0]``, ``[*]``).

    Returns None for a path this server cannot evaluate.
    """
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    values = [obj]
    position = 0
    while position < len(text):
        step = _PATH_STEP.match(text, position)
        if step is None:
            return None
        position = step.end()
        field_name, index, filter_path, filter_value = step.groups()
        found: list[Any] = []
        for value in values:
            if field_name is not None:
                if isinstance(value, Mapping) and field_name in value:
                    found.append(value[field_name])
            elif index is not None:
                if isinstance(value, list) and int(index) < len(value):
                    found.append(value[int(index)])
            elif filter_path is not None:
                found.extend(
                    item
                    for item in _list(value)
                    if _str(_at(_map(item), *filter_path.split("."))) == filter_value
                )
            else:
                found.extend(_list(value))
        values = found
    return values


def _custom_cell(kind: str, value: Any) -> Any:
    """apiextensions' ``cellForJSONValue``: a value of the column's type, or None."""
    if value is None:
        return None
    if kind == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "date" and isinstance(value, str):
        at = _epoch(value)
        return "<invalid>" if at is None else human_duration(time.time() - at)
    return None


def custom_printer(columns: Sequence[PrinterColumn]) -> Printer:
    """The CRD convertor: Name, then ``additionalPrinterColumns`` (or Age when there are none)."""
    given = tuple(columns) or (
        PrinterColumn("Age", "date", ".metadata.creationTimestamp", description=_AGE_DOC),
    )

    def cells(obj: Obj, now: float) -> Cells:
        out: Cells = []
        for column in given:
            values = json_path_values(obj, column.json_path)
            if not values:
                out.append(None)
            elif len(values) == 1:
                out.append(_custom_cell(column.type, values[0]))
            else:
                out.append(" ".join(_str(v) for v in values))
        return out

    return _printer(
        tuple(Column(c.name, c.type, c.format, c.priority, c.description) for c in given), cells
    )


def printer_of(served: ServedResource) -> Printer:
    """The printer a served resource's Tables use."""
    if not served.strategic_merge:  # a custom resource
        return custom_printer(served.printer_columns)
    printer = BUILTIN.get(served.storage_key, DEFAULT)
    stored = served.stored_api_version
    if stored == served.resource.api_version or printer is DEFAULT:
        return printer
    # kube-apiserver prints the internal object: a row reads the stored version's fields.
    conditions, sort_key = printer.conditions, printer.sort_key
    return Printer(
        printer.columns,
        lambda obj, now: printer.cells(convert(obj, stored), now),
        None if conditions is None else lambda obj: conditions(convert(obj, stored)),
        None if sort_key is None else lambda obj: sort_key(convert(obj, stored)),
    )


# ------------------------------------------------------------------- tables


def table(
    printer: Printer,
    objects: Sequence[Obj],
    *,
    include: str,
    metadata: Mapping[str, Any],
    headers: bool = True,
    api_version: str = "meta.k8s.io/v1",
    now: float | None = None,
) -> dict[str, Any]:
    """A ``Table`` of objects, with rows as k8s.io/apiserver's ``asTable`` fills them.

    Args:
        printer: the kind's printer.
        objects: the objects, one row each (a list sorts them when the printer says so).
        include: ``includeObject``: ``None``, ``Metadata`` (the default) or ``Object``.
        metadata: the Table's ListMeta (resourceVersion, continue, remainingItemCount).
        headers: list the column definitions (a watch sends them on its first event only).
        api_version: ``meta.k8s.io/v1`` or ``meta.k8s.io/v1beta1``, as asked for.
        now: the time ages are measured at (default: now).
    """
    at = time.time() if now is None else now
    ordered = sorted(objects, key=printer.sort_key) if printer.sort_key else list(objects)
    rows = []
    for obj in ordered:
        row: dict[str, Any] = {"cells": printer.cells(obj, at)}
        conditions = printer.conditions(obj) if printer.conditions else []
        if conditions:
            row["conditions"] = conditions
        if include == "Object":
            row["object"] = obj
        elif include == "None":
            row["object"] = None
        else:
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": api_version,
                "metadata": obj.get("metadata", {}),
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": dict(metadata),
        "columnDefinitions": [c.definition() for c in printer.columns] if headers else None,
        "rows": rows,
    }


def include_object(query: Mapping[str, str]) -> str:
    """The ``includeObject`` parameter; 400 for a value kube-apiserver does not know."""
    value = query.get("includeObject", "") or "Metadata"
    if value not in INCLUDE_OBJECT:
        raise StatusError(400, f'unrecognized includeObject value: "{value}"')
    return value


def table_events(
    printer: Printer, include: str, api_version: str
) -> Callable[[list[bytes]], list[bytes]]:
    """Rewrites a watch's lines so each event carries a one-row Table of its object.

    As kube-apiserver's ``watchEmbeddedEncoder`` does, only the first event lists the
    column definitions. BOOKMARK and ERROR events keep their objects.
    """
    first = True

    def rewrite(lines: list[bytes]) -> list[bytes]:
        nonlocal first
        out: list[bytes] = []
        for line in lines:
            if isinstance(line, BookmarkLine):
                out.append(line)
                continue
            event = orjson.loads(line)
            obj = event.get("object")
            if event.get("type") not in ("ADDED", "MODIFIED", "DELETED") or not isinstance(
                obj, dict
            ):
                out.append(line)
                continue
            metadata = {"resourceVersion": _str(_meta(obj).get("resourceVersion"))}
            doc = table(
                printer,
                [obj],
                include=include,
                metadata=metadata,
                headers=first,
                api_version=api_version,
            )
            first = False
            out.append(event_line(event["type"], orjson.dumps(doc)))
        return out

    return rewrite
