"""The ``/scale`` subresource: an ``autoscaling/v1`` ``Scale`` read from and written to its parent.

Built-in kinds follow their registries' ``ScaleREST`` (``pkg/registry/apps/deployment/
storage/storage.go``: ``scaleFromDeployment`` and ``scaleUpdatedObjectInfo``, and the
ReplicaSet, StatefulSet and ReplicationController siblings), validated by
``pkg/apis/autoscaling/validation`` (``ValidateScale``); custom resources follow
apiextensions-apiserver's ``pkg/registry/customresource/etcd.go``
(``scaleFromCustomResource``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..resource import Resource
from ._served import ScalePaths, ServedResource
from ._status import StatusError, conflict, invalid
from ._stored import Object
from ._validation import json_kind

SCALE_RESOURCE = Resource("autoscaling", "v1", "Scale", "scale")
SCALE_SERVED = ServedResource(SCALE_RESOURCE, singular="scale")
"""How a ``Scale`` body is read (JSON, YAML or protobuf, its fields decoded strictly)."""
_CONFLICT = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def _nested(obj: Any, path: str) -> tuple[Any, bool]:
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return None, False
        obj = obj[key]
    return obj, True


def _set_nested(obj: Object, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        child = obj.get(key)
        if not isinstance(child, dict):
            child = obj[key] = {}
        obj = child
    obj[last] = value


def selector_string(selector: Any, form: str) -> str:
    """A selector as ``labels.Selector.String()`` writes it (requirements sorted by key).

    ``form`` is how the parent stores it: a ``LabelSelector`` (``matchLabels`` and
    ``matchExpressions``), a ``map`` of labels, or a ``string`` already.
    """
    if form == "string":
        return selector if isinstance(selector, str) else ""
    if not isinstance(selector, dict):
        return ""
    requirements: list[tuple[str, str]] = []
    labels = selector if form == "map" else selector.get("matchLabels") or {}
    for key, value in labels.items():
        requirements.append((str(key), f"{key}={value}"))
    if form == "LabelSelector":
        for expression in selector.get("matchExpressions") or ():
            if not isinstance(expression, dict):
                continue
            key = str(expression.get("key", ""))
            values = ",".join(sorted(str(v) for v in expression.get("values") or ()))
            operator = expression.get("operator")
            text = {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }.get(str(operator))
            if text is not None:
                requirements.append((key, text))
    return ",".join(text for _, text in sorted(requirements, key=lambda r: r[0]))


def _paths(served: ServedResource) -> ScalePaths:
    if served.scale is None:
        raise StatusError(404, "the server could not find the requested resource", details={})
    return served.scale


def scale_of(served: ServedResource, parent: Mapping[str, Any]) -> Object:
    """The ``Scale`` of a parent object.

    A built-in kind's unset ``spec.replicas`` reads as 1, the default kube-apiserver
    would have stored; a custom resource's as 0, as ``scaleFromCustomResource`` reads it.
    """
    paths = _paths(served)
    meta = parent.get("metadata") or {}
    replicas, found = _nested(parent, paths.spec_replicas)
    if not found or not isinstance(replicas, int):
        replicas = 0 if paths.selector_form == "string" else 1
    observed, _ = _nested(parent, paths.status_replicas)
    status: Object = {"replicas": observed if isinstance(observed, int) else 0}
    if paths.selector is not None:
        selector = selector_string(_nested(parent, paths.selector)[0], paths.selector_form)
        if selector:
            status["selector"] = selector
    scale_meta: Object = {
        key: meta[key]
        for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        if meta.get(key)
    }
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": replicas} if replicas else {},
        "status": status,
    }


def scaled(served: ServedResource, parent: Object, scale: Any, *, replicas_set: bool) -> Object:
    """The parent object with the replicas of a written ``Scale``.

    A ``metadata.resourceVersion`` in the Scale is a precondition (409 when stale).

    Args:
        served: the parent's resource.
        parent: the current parent (changed in place and returned).
        scale: the Scale as written (an update's body, or the patched Scale).
        replicas_set: whether the custom resource's replicas field existed before a patch;
            a patch that leaves it unset is a 400, as kube-apiserver answers.

    Raises:
        StatusError: 400 for a body that is not a Scale or replicas that are not a number,
            409 for a stale resourceVersion, 422 for negative replicas.
    """
    paths = _paths(served)
    name = str(parent["metadata"]["name"])
    if not isinstance(scale, dict):
        raise StatusError(400, "wrong object passed to Scale update")
    spec = scale.get("spec") or {}
    replicas = spec.get("replicas", 0) if isinstance(spec, dict) else 0
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise StatusError(
            400,
            'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal '
            f"{json_kind(replicas)} into Go struct field ScaleSpec.spec.replicas of type int32",
        )
    if paths.selector_form == "string":
        if not replicas_set and "replicas" not in spec:
            raise StatusError(
                400, f'the spec replicas field ".{paths.spec_replicas}" cannot be empty'
            )
    elif replicas < 0:
        raise invalid(
            SCALE_RESOURCE,
            name,
            [("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")],
        )
    wanted_rv = (scale.get("metadata") or {}).get("resourceVersion")
    if wanted_rv and str(wanted_rv) != str(parent["metadata"].get("resourceVersion")):
        raise conflict(served.resource, name, _CONFLICT)
    _set_nested(parent, paths.spec_replicas, replicas)
    return parent


def replicas_set(served: ServedResource, parent: Mapping[str, Any]) -> bool:
    """Whether the parent has its spec replicas field (a custom resource may not)."""
    return _nested(parent, _paths(served).spec_replicas)[1]
