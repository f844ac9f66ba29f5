"""Objects read and written in another version than the one they are stored in.

One stored object, several versions: kube-apiserver converts each request's object to
the storage version on the way in, and each answer (get, list, watch, Table rows) to the
version asked for on the way out. The built-in pairs convert field by field (Events in
``_events.py``, HorizontalPodAutoscalers in ``_hpa.py``); any other pair, the versions of a
custom resource, is the ``None`` strategy of apiextensions-apiserver
(pkg/apiserver/conversion/nop_converter.go): only ``apiVersion`` changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ..selectors import FieldSelector
from . import _events, _hpa
from ._served import ServedResource

Object = dict[str, Any]

_CONVERSIONS: dict[tuple[str, str, str], Callable[[Mapping[str, Any]], Object]] = {
    ("Event", "v1", _events.EVENTS_V1): _events.core_to_events_v1,
    ("Event", _events.EVENTS_V1, "v1"): _events.events_v1_to_core,
    **{("HorizontalPodAutoscaler", *pair): fn for pair, fn in _hpa.CONVERSIONS.items()},
}
"""(kind, from apiVersion, to apiVersion): the conversion of the built-in kinds."""


def convert(obj: Mapping[str, Any], api_version: str) -> Mapping[str, Any]:
    """``obj`` (carrying its ``kind`` and ``apiVersion``) read as ``api_version``.

    The object itself when it is in that version already; otherwise a new object,
    sharing what did not change with ``obj`` (never mutated here).
    """
    source = obj.get("apiVersion")
    if source == api_version or not isinstance(source, str):
        return obj
    conversion = _CONVERSIONS.get((str(obj.get("kind")), source, api_version))
    if conversion is None:
        return {**obj, "apiVersion": api_version}
    return conversion(obj)


def to_storage(served: ServedResource, obj: Object) -> Object:
    """A request's object (in ``served``'s version, ``apiVersion`` and ``kind`` optional)
    in the storage version; ``obj`` itself when no field changes."""
    stored = served.stored_api_version
    res = served.resource
    if stored == res.api_version:
        return obj
    conversion = _CONVERSIONS.get((res.kind, res.api_version, stored))
    if conversion is None:
        return obj
    return conversion({**obj, "kind": res.kind, "apiVersion": res.api_version})


def from_storage(served: ServedResource, obj: Object) -> Object:
    """A stored object as ``served``'s version reads it."""
    return dict(convert(obj, served.resource.api_version))


def _pod_field_label(label: str) -> str:
    # pkg/apis/core/v1/conversion.go: "for backwards compatibility with old v1 clients
    # which send spec.host".
    return "spec.nodeName" if label == "spec.host" else label


def storage_fields(served: ServedResource, selector: FieldSelector) -> FieldSelector:
    """A field selector on ``served`` as one on the stored objects (the field label
    conversion of the request's version: ``regarding.name`` is ``involvedObject.name``,
    a pod's ``spec.host`` its ``spec.nodeName``)."""
    res = served.resource
    if res.group == "events.k8s.io":
        rename = _events.storage_field_label
    elif (res.group, res.plural) == ("", "pods"):
        rename = _pod_field_label
    else:
        return selector
    return FieldSelector(
        tuple(dataclasses.replace(req, field=rename(req.field)) for req in selector.requirements)
    )
