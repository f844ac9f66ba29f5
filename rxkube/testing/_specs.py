"""Defaulting and validation of built-in objects beyond their metadata, as kube-apiserver does it.

A write of a built-in kind through HTTP is defaulted, then validated, as kube-apiserver
defaults a decoded body (``pkg/apis/core/v1/defaults.go``, ``pkg/apis/apps/v1/defaults.go``,
``pkg/apis/batch/v1/defaults.go``), completes it in the registry strategy (a Pod's
``status.qosClass``, a Service's allocated ``clusterIP``, a Job's generated selector) and
validates it (``pkg/apis/core/validation``, ``pkg/apis/apps/validation``,
``pkg/apis/batch/validation``). Validation covers what controllers rely on: selectors
and templates of the workload kinds, containers and their names and images, template
labels, ConfigMap and Secret keys, Service ports; its causes read as kube-apiserver's
``field.Error`` writes them.

The object API (``srv.create``...) writes as given, like a direct write to storage.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from fractions import Fraction
from typing import Any

from .._apivalidation import dns1123_label, label_value, qualified_name, quote, regex_error
from ..resource import Resource
from . import _events, _hpa
from ._stored import deep_copy
from ._validation import Cause

Object = dict[str, Any]

_WORKLOADS = {"deployments", "replicasets", "statefulsets", "daemonsets"}


# ------------------------------------------------------------------ allocation


class Allocator:
    """Cluster IPs and node ports handed out to Services, never twice in a server's life.

    kube-apiserver picks at random from its ranges (``--service-cluster-ip-range``,
    ``--service-node-port-range``); here they are handed out in order from kubeadm's
    default ``10.96.0.0/12`` (``10.96.0.1`` is the ``kubernetes`` Service's) and
    30000-32767, skipping any a Service asked for. Safe from any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ips = itertools.count(10)
        self._ports = itertools.count(30000)
        self._taken_ips: set[str] = set()
        self._taken_ports: set[int] = set()

    def reserve(self, ip: str | None = None, port: int | None = None) -> None:
        """Mark an address or a node port a Service asked for as used."""
        with self._lock:
            if ip:
                self._taken_ips.add(ip)
            if port:
                self._taken_ports.add(port)

    def cluster_ip(self) -> str:
        """The next free cluster IP."""
        with self._lock:
            for index in self._ips:
                if index >= 1 << 20:
                    raise RuntimeError("the service cluster IP range is full")
                ip = f"10.{96 + (index >> 16)}.{(index >> 8) & 255}.{index & 255}"
                if ip not in self._taken_ips:
                    self._taken_ips.add(ip)
                    return ip
        raise AssertionError("unreachable")

    def node_port(self) -> int:
        """The next free node port."""
        with self._lock:
            for port in self._ports:
                if port > 32767:
                    raise RuntimeError("the service node port range is full")
                if port not in self._taken_ports:
                    self._taken_ports.add(port)
                    return port
        raise AssertionError("unreachable")

    def dry_run(self) -> Allocator:
        """What a dry-run write allocates with, as kube-apiserver's allocators' ``DryRun()``
        (pkg/registry/core/service/ipallocator/bitmap.go, portallocator/allocator.go):
        nothing is reserved, and a Service that needs an address or a port is shown the
        range's first, ``10.96.0.0`` and 30000, without a search for a free one."""
        return _DryRunAllocator()


class _DryRunAllocator(Allocator):
    """The allocator of a dry run: it hands out the ranges' bases and keeps nothing."""

    def __init__(self) -> None:
        pass  # no state: nothing it hands out is taken

    def reserve(self, ip: str | None = None, port: int | None = None) -> None:
        """Nothing: a dry run's ``Allocate`` only checks the range."""

    def cluster_ip(self) -> str:
        """The range's network address (``allocateNext`` with dryRun)."""
        return "10.96.0.0"

    def node_port(self) -> int:
        """The port range's base."""
        return 30000


# ------------------------------------------------------------------ defaulting


def _dict(parent: Object, key: str) -> Object:
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def _map(value: Any) -> Object:
    """``value`` when it is an object, else an empty one (a body of a wrong shape)."""
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> Iterator[Object]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _image_tag_is_latest(image: str) -> bool:
    """``parsers.ParseImageName``: no tag and no digest means ``latest``."""
    if "@" in image:
        return False
    name = image.rsplit("/", 1)[-1]
    return ":" not in name or name.rsplit(":", 1)[1] == "latest"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, value in (
        ("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3),
    ):  # fmt: skip
        probe.setdefault(key, value)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def _default_container(container: Object) -> None:
    """``SetDefaults_Container`` and what a container's Go struct always has."""
    if not container.get("imagePullPolicy"):
        image = container.get("image")
        latest = _image_tag_is_latest(image if isinstance(image, str) else "")
        container["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
    if not container.get("terminationMessagePath"):
        container["terminationMessagePath"] = "/dev/termination-log"
    if not container.get("terminationMessagePolicy"):
        container["terminationMessagePolicy"] = "File"
    if not isinstance(container.get("resources"), dict):
        container["resources"] = {}
    for port in _dicts(container.get("ports")):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(container.get(key))
    for env in _dicts(container.get("env")):
        ref = (
            (env.get("valueFrom") or {}).get("fieldRef")
            if isinstance(env.get("valueFrom"), dict)
            else None
        )
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")


def _default_volume(volume: Object) -> None:
    """``SetDefaults_Volume`` (no source: an ``emptyDir``) and the sources' file modes."""
    sources = set(volume) - {"name"}
    if not sources:
        volume["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        source = volume.get(key)
        if isinstance(source, dict):
            source.setdefault("defaultMode", 420)


def _default_pod_spec(spec: Object) -> None:
    """``SetDefaults_PodSpec`` and its containers' and volumes' defaults; and the v1
    conversion's alias ``serviceAccount`` of ``serviceAccountName`` (the new field wins,
    and the old one is written back from it), which every write goes through."""
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    else:
        spec.pop("serviceAccount", None)
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if not isinstance(spec.get("securityContext"), dict):
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    if not spec.get("schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    for key in ("containers", "initContainers"):
        for container in _dicts(spec.get(key)):
            _default_container(container)
    for volume in _dicts(spec.get("volumes")):
        _default_volume(volume)


def _default_template(spec: Object) -> None:
    """A template's pod spec defaults; Go's template struct always exists, so even a
    missing template gets them."""
    _default_pod_spec(_dict(_dict(spec, "template"), "spec"))


def _default_pod(pod: Object) -> None:
    """``SetDefaults_Pod``: the spec's defaults, requests from limits, service links on."""
    spec = _dict(pod, "spec")
    _default_pod_spec(spec)
    for key in ("containers", "initContainers"):
        for container in _dicts(spec.get(key)):
            resources = container["resources"]
            limits = resources.get("limits")
            if isinstance(limits, dict) and limits:
                requests = resources.get("requests")
                requests = resources["requests"] = (
                    dict(requests) if isinstance(requests, dict) else {}
                )
                for name, value in limits.items():
                    requests.setdefault(name, value)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True


def _unset(mapping: Object, **defaults: Any) -> None:
    """Go defaulting's ``if x == nil { x = default }`` for each field (JSON null is nil)."""
    for name, value in defaults.items():
        if mapping.get(name) is None:
            mapping[name] = value


def _rolling_strategy(spec: Object, key: str, **rolling: Any) -> None:
    """A workload's update strategy: ``RollingUpdate`` unless given, and then its
    ``rollingUpdate`` parameters' defaults."""
    strategy = _dict(spec, key)
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        _unset(_dict(strategy, "rollingUpdate"), **rolling)


def _default_deployment(obj: Object) -> None:
    spec = _dict(obj, "spec")
    _unset(spec, replicas=1)
    _rolling_strategy(spec, "strategy", maxUnavailable="25%", maxSurge="25%")
    _unset(spec, revisionHistoryLimit=10, progressDeadlineSeconds=600)
    _default_template(spec)


def _default_replicaset(obj: Object) -> None:
    spec = _dict(obj, "spec")
    _unset(spec, replicas=1)
    _default_template(spec)


def _default_statefulset(obj: Object) -> None:
    spec = _dict(obj, "spec")
    if not spec.get("podManagementPolicy"):
        spec["podManagementPolicy"] = "OrderedReady"
    _rolling_strategy(spec, "updateStrategy", partition=0)
    policy = _dict(spec, "persistentVolumeClaimRetentionPolicy")
    _unset(policy, whenDeleted="Retain", whenScaled="Retain")
    _unset(spec, replicas=1, revisionHistoryLimit=10)
    _default_template(spec)


def _default_daemonset(obj: Object) -> None:
    spec = _dict(obj, "spec")
    _rolling_strategy(spec, "updateStrategy", maxUnavailable=1, maxSurge=0)
    _unset(spec, revisionHistoryLimit=10)
    _default_template(spec)


def _default_job_spec(spec: Object) -> None:
    """``SetDefaults_Job`` on a Job's spec (a CronJob's job template too)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    per_index = spec.get("backoffLimitPerIndex") is not None
    _unset(spec, parallelism=1, backoffLimit=2147483647 if per_index else 6)
    if not spec.get("completionMode"):
        spec["completionMode"] = "NonIndexed"
    replacement = "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed"
    _unset(spec, suspend=False, podReplacementPolicy=replacement, manualSelector=False)
    _default_template(spec)


def _default_job(obj: Object) -> None:
    _default_job_spec(_dict(obj, "spec"))


def _default_cronjob(obj: Object) -> None:
    spec = _dict(obj, "spec")
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = "Allow"
    _unset(spec, suspend=False, successfulJobsHistoryLimit=3, failedJobsHistoryLimit=1)
    template = _dict(spec, "jobTemplate")
    _default_job_spec(_dict(template, "spec"))


def _default_service(obj: Object) -> None:
    """``SetDefaults_Service``."""
    spec = _dict(obj, "spec")
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client = _dict(_dict(spec, "sessionAffinityConfig"), "clientIP")
        client.setdefault("timeoutSeconds", 10800)
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    kind = spec["type"]
    for port in _dicts(spec.get("ports")):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    externally = kind in ("NodePort", "LoadBalancer") or (
        kind == "ClusterIP" and spec.get("externalIPs")
    )
    if externally and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and kind in (
        "ClusterIP",
        "NodePort",
        "LoadBalancer",
    ):
        spec["internalTrafficPolicy"] = "Cluster"
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True


NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""The label ``SetDefaults_Namespace`` gives every named namespace: its name."""


def _default_namespace(obj: Object) -> None:
    """``SetDefaults_Namespace``."""
    name = (obj.get("metadata") or {}).get("name")
    if name:
        _dict(_dict(obj, "metadata"), "labels")[NAMESPACE_NAME_LABEL] = name


def _default_secret(obj: Object) -> None:
    """``SetDefaults_Secret``."""
    if not obj.get("type"):
        obj["type"] = "Opaque"


def _default_priority_class(obj: Object) -> None:
    """``SetDefaults_PriorityClass``."""
    _unset(obj, preemptionPolicy="PreemptLowerPriority")


_DEFAULTS: dict[tuple[str, str], Callable[[Object], None]] = {
    ("scheduling.k8s.io", "priorityclasses"): _default_priority_class,
    ("", "pods"): _default_pod,
    ("", "secrets"): _default_secret,
    ("", "namespaces"): _default_namespace,
    ("", "services"): _default_service,
    ("apps", "deployments"): _default_deployment,
    ("apps", "replicasets"): _default_replicaset,
    ("apps", "statefulsets"): _default_statefulset,
    ("apps", "daemonsets"): _default_daemonset,
    ("batch", "jobs"): _default_job,
    ("batch", "cronjobs"): _default_cronjob,
    ("autoscaling", "horizontalpodautoscalers"): _hpa.default,
}


def _allocate(spec: Object, old: Mapping[str, Any] | None, allocator: Allocator) -> None:
    """The Service registry's allocation: cluster IPs and families, node ports; an update
    keeps what the stored Service was given."""
    old_spec = (old or {}).get("spec") or {}
    kind = spec.get("type")
    if kind == "ExternalName":
        return
    for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        if spec.get(key) in (None, "", []) and old_spec.get(key) not in (None, "", []):
            spec[key] = old_spec[key]
    cluster_ip = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
    if not cluster_ip:
        cluster_ip = allocator.cluster_ip()
    elif old is None and cluster_ip != "None":
        allocator.reserve(ip=cluster_ip)
    spec["clusterIP"] = cluster_ip
    if not spec.get("clusterIPs"):
        spec["clusterIPs"] = [cluster_ip]
    if not spec.get("ipFamilies"):
        spec["ipFamilies"] = ["IPv4"]
    if not spec.get("ipFamilyPolicy"):
        spec["ipFamilyPolicy"] = "SingleStack"
    if kind in ("NodePort", "LoadBalancer") and spec.get("allocateLoadBalancerNodePorts", True):
        old_ports = {
            (p.get("port"), p.get("protocol")): p.get("nodePort")
            for p in _dicts(old_spec.get("ports"))
        }
        for port in _dicts(spec.get("ports")):
            if port.get("nodePort"):
                if old is None:
                    allocator.reserve(port=port["nodePort"])
                continue
            kept = old_ports.get((port.get("port"), port.get("protocol")))
            port["nodePort"] = kept or allocator.node_port()


_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
_JOB_NAME = "batch.kubernetes.io/job-name"


def _generate_job_selector(obj: Object) -> None:
    """The Job strategy's ``generateSelector``: the selector and labels of its uid and name."""
    spec = _dict(obj, "spec")
    if spec.get("manualSelector"):
        return
    meta = obj.get("metadata") or {}
    uid, name = meta.get("uid", ""), meta.get("name", "")
    labels = _dict(_dict(_dict(spec, "template"), "metadata"), "labels")
    for key, value in (
        (_CONTROLLER_UID, uid), ("controller-uid", uid), (_JOB_NAME, name), ("job-name", name),
    ):  # fmt: skip
        labels.setdefault(key, value)
    if not spec.get("selector"):
        spec["selector"] = {"matchLabels": {_CONTROLLER_UID: uid}}


def default(resource: Resource, obj: Object) -> None:
    """Default a built-in object written through HTTP, as decoding it does (what its
    writer's ``managedFields`` then record)."""
    defaults = _DEFAULTS.get((resource.group, resource.plural))
    if defaults is not None:
        defaults(obj)


_EVENT_ZEROS: tuple[tuple[str, Any], ...] = (
    ("involvedObject", {}),
    ("source", {}),
    ("firstTimestamp", None),
    ("lastTimestamp", None),
    ("eventTime", None),
    ("reportingComponent", ""),
    ("reportingInstance", ""),
)
"""k8s.io/api core/v1 ``Event``: structs (``omitempty`` does not omit them, and an empty
time encodes as null) and strings without ``omitempty``."""


def complete(
    resource: Resource, obj: Object, old: Mapping[str, Any] | None, allocator: Allocator
) -> None:
    """Complete a defaulted object as its registry strategy and storage do (``old`` is
    the stored object for an update, None for a create); what this sets is no writer's."""
    if resource.group:
        if resource.plural == "jobs" and resource.group == "batch" and old is None:
            _generate_job_selector(obj)
        elif (resource.group, resource.plural) == ("coordination.k8s.io", "leases"):
            _drop_coordinated_fields(obj, old)
        return
    if resource.plural == "events":
        # The fields of a core Event's Go type that are encoded even when empty: no
        # writer's, as they equal those of the empty Event the field manager compares with.
        for key, zero in _EVENT_ZEROS:
            obj.setdefault(key, deep_copy(zero) if isinstance(zero, dict) else zero)
    elif resource.plural == "services":
        _allocate(obj["spec"], old, allocator)
    elif resource.plural == "namespaces":
        # The namespace strategy: the finalizer on create; only /finalize changes it.
        spec = _dict(obj, "spec")
        if old is None:
            spec["finalizers"] = ["kubernetes"]
        elif (old.get("spec") or {}).get("finalizers"):
            spec["finalizers"] = old["spec"]["finalizers"]
        else:
            spec.pop("finalizers", None)
        if not spec:
            obj.pop("spec")


def _drop_coordinated_fields(lease: Object, old: Mapping[str, Any] | None) -> None:
    """pkg/registry/coordination/lease/strategy.go with ``CoordinatedLeaderElection`` off,
    its default from v1.31 to v1.36: ``strategy`` and ``preferredHolder`` are dropped,
    but from an update of a Lease that has them."""
    spec = lease.get("spec")
    if not isinstance(spec, dict):
        return
    kept = _map((old or {}).get("spec"))
    for key in ("strategy", "preferredHolder"):
        if key not in kept:
            spec.pop(key, None)


_ZEROS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")
_CREATION_STATUS: dict[tuple[str, str], dict[str, Any]] = {
    ("", "services"): {"loadBalancer": {}},
    ("", "replicationcontrollers"): {"replicas": 0},
    ("", "persistentvolumeclaims"): {"phase": "Pending"},
    ("", "resourcequotas"): {},
    ("", "nodes"): {
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": dict.fromkeys(
            (
                "machineID",
                "systemUUID",
                "bootID",
                "kernelVersion",
                "osImage",
                "containerRuntimeVersion",
                "kubeletVersion",
                "kubeProxyVersion",
                "operatingSystem",
                "architecture",
            ),
            "",
        ),
    },
    ("apps", "deployments"): {},
    ("apps", "replicasets"): {"replicas": 0},
    ("apps", "statefulsets"): {"replicas": 0, "availableReplicas": 0},
    ("apps", "daemonsets"): dict.fromkeys(_ZEROS, 0),
    ("batch", "jobs"): {},
    ("batch", "cronjobs"): {},
    ("autoscaling", "horizontalpodautoscalers"): {"desiredReplicas": 0, "currentMetrics": None},
    ("policy", "poddisruptionbudgets"): dict.fromkeys(
        ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"), 0
    ),
    ("networking.k8s.io", "ingresses"): {"loadBalancer": {}},
}
"""The status a create strategy resets each kind to, as its Go type encodes it: the
struct is never omitted, and its fields without ``omitempty`` show their zero values
(k8s.io/api v0.32; a PersistentVolumeClaim starts ``Pending``)."""


def creation_status(resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a create strategy puts in the status it resets: a Pod's ``qosClass``, the
    zero value of the others' Go status types."""
    if resource.plural == "pods" and not resource.group:
        return {"qosClass": qos_class(obj.get("spec") or {})}
    zero = _CREATION_STATUS.get((resource.group, resource.plural))
    return None if zero is None else deep_copy(zero)


# ------------------------------------------------------------------ quantities

_QUANTITY = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
_SUFFIXES = {
    "": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
    "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}  # fmt: skip


def quantity(value: Any) -> Fraction | None:
    """A resource quantity's value (``"500m"``, ``"1Gi"``, ``2``), or None when it does not parse."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Fraction(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY.fullmatch(value.strip())
    if match is None:
        return None
    number, suffix = Fraction(match[1]), match[2] or ""
    if suffix[:1] in ("e", "E"):
        return number * Fraction(10) ** int(suffix[1:])
    return number * _SUFFIXES[suffix]


def qos_class(spec: Mapping[str, Any]) -> str:
    """``qos.GetPodQOS``: Guaranteed, Burstable or BestEffort from cpu and memory requests and limits."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    containers = [*_dicts(spec.get("containers")), *_dicts(spec.get("initContainers"))]
    for container in containers:
        resources = _map(container.get("resources"))
        limit_map = _map(resources.get("limits"))
        request_map = _map(resources.get("requests"))
        request_map = {**limit_map, **request_map}  # requests default to limits
        for name, raw in request_map.items():
            amount = quantity(raw)
            if name in ("cpu", "memory") and amount:
                requests[name] = requests.get(name, Fraction(0)) + amount
        found = set()
        for name, raw in limit_map.items():
            amount = quantity(raw)
            if name in ("cpu", "memory") and amount:
                found.add(name)
                limits[name] = limits.get(name, Fraction(0)) + amount
        if found != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if (
        guaranteed
        and all(limits.get(name) == amount for name, amount in requests.items())
        and len(requests) == len(limits)
    ):
        return "Guaranteed"
    return "Burstable"


# ------------------------------------------------------------------ validation


def _go_map(value: Any) -> str:
    """A ``map[string]string`` as Go's ``%#v`` prints it (keys sorted)."""
    if not isinstance(value, dict):
        return "map[string]string(nil)"
    inner = ", ".join(f"{quote(k)}:{quote(v)}" for k, v in sorted(value.items()))
    return f"map[string]string{{{inner}}}"


def _go_selector(selector: Mapping[str, Any]) -> str:
    """A ``metav1.LabelSelector`` as ``%#v`` prints it (empty ones, the only ones shown)."""
    labels = selector.get("matchLabels")
    expressions = selector.get("matchExpressions")
    shown_labels = "map[string]string{}" if isinstance(labels, dict) else "map[string]string(nil)"
    shown_expressions = (
        "[]v1.LabelSelectorRequirement{}"
        if isinstance(expressions, list)
        else "[]v1.LabelSelectorRequirement(nil)"
    )
    return f"v1.LabelSelector{{MatchLabels:{shown_labels}, MatchExpressions:{shown_expressions}}}"


def _labels(labels: Any, field: str, causes: list[Cause]) -> None:
    """``ValidateLabels``: qualified-name keys and label values."""
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        for message in qualified_name(key):
            causes.append((field, f"Invalid value: {quote(key)}: {message}"))
        for message in label_value(value or ""):
            causes.append((field, f"Invalid value: {quote(value)}: {message}"))


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in _dicts(selector.get("matchExpressions")):
        key, operator = str(requirement.get("key") or ""), requirement.get("operator")
        values = requirement.get("values") or []
        present = key in labels
        if operator == "In" and (not present or labels[key] not in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _label_selector(selector: Mapping[str, Any], field: str, causes: list[Cause]) -> None:
    """``ValidateLabelSelector``: match labels, and each expression's operator and values."""
    _labels(selector.get("matchLabels"), f"{field}.matchLabels", causes)
    for index, requirement in enumerate(_dicts(selector.get("matchExpressions"))):
        where = f"{field}.matchExpressions[{index}]"
        operator = requirement.get("operator") or ""
        values = requirement.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                causes.append(
                    (
                        f"{where}.values",
                        "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                    )
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                causes.append(
                    (
                        f"{where}.values",
                        "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            causes.append(
                (
                    f"{where}.operator",
                    f"Invalid value: {quote(operator)}: not a valid selector operator",
                )
            )
        for message in qualified_name(requirement.get("key") or ""):
            causes.append(
                (f"{where}.key", f"Invalid value: {quote(requirement.get('key') or '')}: {message}")
            )


def _containers(spec: Mapping[str, Any], field: str, causes: list[Cause]) -> None:
    """``validateContainers``: at least one, each named (a unique DNS-1123 label) with an image."""
    containers = spec.get("containers")
    if not containers:
        causes.append((f"{field}.containers", "Required value"))
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        listed = spec.get(key)
        for index, container in enumerate(listed if isinstance(listed, list) else []):
            where = f"{field}.{key}[{index}]"
            if not isinstance(container, dict):
                continue
            name = container.get("name") or ""
            if not name:
                causes.append((f"{where}.name", "Required value"))
            else:
                for message in dns1123_label(name):
                    causes.append((f"{where}.name", f"Invalid value: {quote(name)}: {message}"))
                if name in names:
                    causes.append((f"{where}.name", f"Duplicate value: {quote(name)}"))
                names.add(name)
            if not container.get("image"):
                causes.append((f"{where}.image", "Required value"))
            ports = container.get("ports") or []
            for number, port in enumerate(_dicts(ports)):
                value = port.get("containerPort")
                if not isinstance(value, int) or not 1 <= value <= 65535:
                    causes.append(
                        (
                            f"{where}.ports[{number}].containerPort",
                            f"Invalid value: {value}: must be between 1 and 65535, inclusive",
                        )
                    )


_RESTART_POLICIES = ("Always", "OnFailure", "Never")


def _pod_spec(spec: Any, field: str, causes: list[Cause]) -> None:
    spec = _map(spec)
    _containers(spec, field, causes)
    policy = spec.get("restartPolicy") or ""
    if policy not in _RESTART_POLICIES:
        supported = ", ".join(quote(p) for p in _RESTART_POLICIES)
        causes.append(
            (
                f"{field}.restartPolicy",
                f"Unsupported value: {quote(policy)}: supported values: {supported}",
            )
        )


def _template(given: Any, field: str, causes: list[Cause]) -> Object:
    """``ValidatePodTemplateSpec``: labels and annotations of its metadata, its pod spec."""
    template = _map(given)
    meta = _map(template.get("metadata"))
    _labels(meta.get("labels"), f"{field}.metadata.labels", causes)
    for key in meta.get("annotations") or {}:
        for message in qualified_name(key.lower()):
            causes.append(
                (f"{field}.metadata.annotations", f"Invalid value: {quote(key)}: {message}")
            )
    _pod_spec(template.get("spec"), f"{field}.spec", causes)
    return template


def _workload(resource: Resource, obj: Mapping[str, Any], causes: list[Cause]) -> None:
    """``ValidateDeploymentSpec`` and its kin: a selector that is not empty and matches the template."""
    spec = _map(obj.get("spec"))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        causes.append(
            ("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
        )
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        causes.append(("spec.selector", "Required value"))
    else:
        _label_selector(selector, "spec.selector", causes)
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            causes.append(
                (
                    "spec.selector",
                    f"Invalid value: {_go_selector(selector)}: empty selector is invalid for {resource.kind.lower()}",
                )
            )
    template = _map(spec.get("template"))
    labels = (template.get("metadata") or {}).get("labels")
    # A missing selector selects nothing (labels.Nothing), so no template matches it.
    if not isinstance(selector, dict) or (
        (selector.get("matchLabels") or selector.get("matchExpressions"))
        and not _selector_matches(selector, labels if isinstance(labels, dict) else {})
    ):
        causes.append(
            (
                "spec.template.metadata.labels",
                f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`",
            )
        )
    _template(template, "spec.template", causes)
    policy = (
        (template.get("spec") or {}).get("restartPolicy")
        if isinstance(template.get("spec"), dict)
        else None
    )
    if policy in ("OnFailure", "Never"):
        causes.append(
            (
                "spec.template.spec.restartPolicy",
                f'Unsupported value: {quote(policy)}: supported values: "Always"',
            )
        )


def _job(obj: Mapping[str, Any], causes: list[Cause]) -> None:
    """``ValidateJobSpec``: a template whose pods restart OnFailure or Never."""
    spec = _map(obj.get("spec"))
    template = _template(spec.get("template"), "spec.template", causes)
    policy = (template.get("spec") or {}).get("restartPolicy") or ""
    if policy not in ("OnFailure", "Never"):
        causes.append(
            (
                "spec.template.spec.restartPolicy",
                f'Unsupported value: {quote(policy)}: supported values: "OnFailure", "Never"',
            )
        )


def _lease(obj: Mapping[str, Any], causes: list[Cause]) -> None:
    """``ValidateLeaseSpec`` (pkg/apis/coordination/validation): a duration, when set,
    above 0; transitions, when set, not below 0. (``strategy`` and ``preferredHolder`` are
    dropped before: see ``_drop_coordinated_fields``.)"""
    spec = _map(obj.get("spec"))
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        causes.append(
            ("spec.leaseDurationSeconds", f"Invalid value: {duration}: must be greater than 0")
        )
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        causes.append(
            (
                "spec.leaseTransitions",
                f"Invalid value: {transitions}: must be greater than or equal to 0",
            )
        )


_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_MAX_DATA_BYTES = 1024 * 1024


def _config_key(key: str) -> list[str]:
    """``IsConfigMapKey``: what a ConfigMap or Secret key must be."""
    errors = []
    if len(key) > 253:
        errors.append("must be no more than 253 characters")
    if not _CONFIG_KEY.fullmatch(key):
        errors.append(
            regex_error(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name",
            )
        )  # fmt: skip
    if key == ".":
        errors.append("must not be '.'")
    elif key == "..":
        errors.append("must not be '..'")
    elif key.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def _data_keys(obj: Mapping[str, Any], fields: tuple[str, ...], causes: list[Cause]) -> None:
    """``ValidateConfigMap`` / ``ValidateSecret``: valid keys, none in two maps, 1 MiB in all."""
    seen: set[str] = set()
    size = 0
    for field in fields:
        data = obj.get(field)
        if not isinstance(data, dict):
            continue
        for key, value in data.items():
            for message in _config_key(key):
                causes.append((f"{field}[{key}]", f"Invalid value: {quote(key)}: {message}"))
            if key in seen:
                other = fields[0]
                causes.append(
                    (
                        f"{field}[{key}]",
                        f"Invalid value: {quote(key)}: duplicate of key present in {other}",
                    )
                )
            seen.add(key)
            size += len(value.encode()) if isinstance(value, str) else 0
    if size > _MAX_DATA_BYTES:
        causes.append(("", f"Too long: may not be more than {_MAX_DATA_BYTES} bytes"))


_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_PROTOCOLS = ("SCTP", "TCP", "UDP")


def _service(obj: Mapping[str, Any], causes: list[Cause]) -> None:
    """``ValidateService``: its type, and ports in range with a protocol, named when several."""
    spec = _map(obj.get("spec"))
    kind = spec.get("type") or ""
    if kind not in _SERVICE_TYPES:
        supported = ", ".join(quote(t) for t in _SERVICE_TYPES)
        causes.append(
            ("spec.type", f"Unsupported value: {quote(kind)}: supported values: {supported}")
        )
    ports = [p if isinstance(p, dict) else {} for p in spec.get("ports") or []]
    headless = spec.get("clusterIP") == "None"
    if not ports and not headless and kind != "ExternalName":
        causes.append(("spec.ports", "Required value"))
    names: set[str] = set()
    for index, port in enumerate(ports):
        where = f"spec.ports[{index}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            causes.append((f"{where}.name", "Required value"))
        elif name:
            for message in dns1123_label(name):
                causes.append((f"{where}.name", f"Invalid value: {quote(name)}: {message}"))
        if name and name in names:
            causes.append((f"{where}.name", f"Duplicate value: {quote(name)}"))
        names.add(name)
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            causes.append(
                (
                    f"{where}.port",
                    f"Invalid value: {number}: must be between 1 and 65535, inclusive",
                )
            )
        protocol = port.get("protocol") or ""
        if not protocol:
            causes.append((f"{where}.protocol", "Required value"))
        elif protocol not in _PROTOCOLS:
            supported = ", ".join(quote(p) for p in _PROTOCOLS)
            causes.append(
                (
                    f"{where}.protocol",
                    f"Unsupported value: {quote(protocol)}: supported values: {supported}",
                )
            )
        target = port.get("targetPort")
        if isinstance(target, int) and not isinstance(target, bool) and not 1 <= target <= 65535:
            causes.append(
                (
                    f"{where}.targetPort",
                    f"Invalid value: {target}: must be between 1 and 65535, inclusive",
                )
            )


def validate(
    resource: Resource, obj: Mapping[str, Any], old: Mapping[str, Any] | None = None
) -> list[Cause]:
    """The causes kube-apiserver's validation of a built-in kind finds beyond its metadata,
    for a create (``old`` None) or an update of ``old``.

    Raises:
        StatusError: 422 for an Event (its registry names the internal kind, whatever
            the request's version: see ``_events.check``).
    """
    causes: list[Cause] = []
    group, plural = resource.group, resource.plural
    if plural == "events":
        _events.check(obj, old, strict=bool(group))
    if group == "apps" and plural in _WORKLOADS:
        _workload(resource, obj, causes)
    elif (group, plural) == ("batch", "jobs"):
        _job(obj, causes)
    elif (group, plural) == ("", "pods"):
        _pod_spec(obj.get("spec"), "spec", causes)
    elif (group, plural) == ("", "configmaps"):
        _data_keys(obj, ("data", "binaryData"), causes)
    elif (group, plural) == ("", "secrets"):
        _data_keys(obj, ("data",), causes)
    elif (group, plural) == ("", "services"):
        _service(obj, causes)
    elif (group, plural) == ("coordination.k8s.io", "leases"):
        _lease(obj, causes)
    elif (group, plural) == ("batch", "cronjobs") and old is None:
        # pkg/apis/batch/validation ValidateCronJobCreate: the Jobs it makes are named
        # after it with an 11-character suffix, within a DNS-1035 label's 63.
        name = (obj.get("metadata") or {}).get("name") or ""
        if len(name) > 52:
            message = f"Invalid value: {quote(name)}: must be no more than 52 characters"
            causes.append(("metadata.name", message))
    return causes
