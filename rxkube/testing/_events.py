"""Events in their two APIs: core ``v1`` and ``events.k8s.io/v1``, one stored object.

kube-apiserver keeps one Event storage (pkg/registry/core/event) and serves it at both
versions: ``events.k8s.io/v1`` renames fields (pkg/apis/events/v1/conversion.go:
``regarding`` is ``involvedObject``, ``note`` is ``message``, ``reportingController`` is
``reportingComponent``, the ``deprecated*`` fields are ``source``, ``firstTimestamp``,
``lastTimestamp`` and ``count``) and its writes are validated more strictly
(pkg/apis/core/validation/events.go). The objects come out as Go's encoder writes the
version's struct: fields without ``omitempty``, and structs and times, are always there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .._apivalidation import dns1123_subdomain, qualified_name, quote
from ..resource import Resource
from ._status import invalid

Object = dict[str, Any]
Cause = tuple[str, str]

EVENTS_V1 = "events.k8s.io/v1"

_REGARDING = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
_FIELD_LABELS = {
    **{f"regarding.{name}": f"involvedObject.{name}" for name in _REGARDING},
    "reportingController": "reportingComponent",
}
"""events.k8s.io/v1 field selector labels whose core field has another name."""

_LIMITS = {"reportingInstance": 128, "action": 128, "reason": 128}
_NOTE_LIMIT = 1024


def _put(out: Object, key: str, value: Any) -> None:
    """Set an ``omitempty`` field: left out when empty, as Go's encoder does."""
    if value not in (None, "", 0, [], {}):
        out[key] = value


def core_to_events_v1(event: Mapping[str, Any]) -> Object:
    """A core ``v1`` Event as ``events.k8s.io/v1`` (``Convert_core_Event_To_v1_Event``)."""
    out: Object = {"kind": "Event", "apiVersion": EVENTS_V1, "metadata": event.get("metadata", {})}
    out["eventTime"] = event.get("eventTime")
    _put(out, "series", event.get("series"))
    _put(out, "reportingController", event.get("reportingComponent"))
    _put(out, "reportingInstance", event.get("reportingInstance"))
    _put(out, "action", event.get("action"))
    _put(out, "reason", event.get("reason"))
    out["regarding"] = event.get("involvedObject") or {}
    _put(out, "related", event.get("related"))
    _put(out, "note", event.get("message"))
    _put(out, "type", event.get("type"))
    out["deprecatedSource"] = event.get("source") or {}
    out["deprecatedFirstTimestamp"] = event.get("firstTimestamp")
    out["deprecatedLastTimestamp"] = event.get("lastTimestamp")
    _put(out, "deprecatedCount", event.get("count"))
    return out


def events_v1_to_core(event: Mapping[str, Any]) -> Object:
    """An ``events.k8s.io/v1`` Event as core ``v1`` (``Convert_v1_Event_To_core_Event``)."""
    out: Object = {"kind": "Event", "apiVersion": "v1", "metadata": event.get("metadata", {})}
    out["involvedObject"] = event.get("regarding") or {}
    _put(out, "reason", event.get("reason"))
    _put(out, "message", event.get("note"))
    out["source"] = event.get("deprecatedSource") or {}
    out["firstTimestamp"] = event.get("deprecatedFirstTimestamp")
    out["lastTimestamp"] = event.get("deprecatedLastTimestamp")
    _put(out, "count", event.get("deprecatedCount"))
    _put(out, "type", event.get("type"))
    out["eventTime"] = event.get("eventTime")
    _put(out, "series", event.get("series"))
    _put(out, "action", event.get("action"))
    _put(out, "related", event.get("related"))
    out["reportingComponent"] = event.get("reportingController") or ""
    out["reportingInstance"] = event.get("reportingInstance") or ""
    return out


def storage_field_label(label: str) -> str:
    """The core Event field an ``events.k8s.io/v1`` field selector label selects."""
    return _FIELD_LABELS.get(label, label)


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


_CORE_EVENT = Resource("", "v1", "Event", "events")
_IMMUTABLE = (
    ("involvedObject", "involvedObject"),
    ("reason", "reason"),
    ("message", "message"),
    ("source", "source"),
    ("firstTimestamp", "firstTimestamp"),
    ("lastTimestamp", "lastTimestamp"),
    ("count", "count"),
    ("type", "type"),
    ("eventTime", "eventTime"),
    ("action", "action"),
    ("related", "related"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
)
"""``ValidateEventUpdate``'s immutable fields of events.k8s.io/v1 writes: (core field, path)."""


def check(event: Mapping[str, Any], old: Mapping[str, Any] | None, *, strict: bool) -> None:
    """The Event registry's validation of a write through HTTP, on the stored (core) Event.

    ``legacyValidateEvent`` always; with ``strict`` (a write through ``events.k8s.io/v1``)
    also ``ValidateEventCreate`` or ``ValidateEventUpdate``'s rules for that API. Field
    paths are the internal type's, and the error names the internal kind (``Event``:
    ``rest.BeforeCreate`` names the kind the scheme gives the internal object first), as
    kube-apiserver reports them whatever the request's version.

    Raises:
        StatusError: 422 Invalid, with every cause found.
    """
    causes = _legacy_causes(event)
    if strict:
        causes += _strict_causes(event) if old is None else _update_causes(event, old)
    if causes:
        raise invalid(_CORE_EVENT, str(event["metadata"].get("name") or ""), causes)


def _update_causes(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if new.get("series") != old.get("series"):
        causes += _series_causes(new)
    for key, path in _IMMUTABLE:
        if new.get(key) != old.get(key):
            value = new.get(key)
            shown = quote(value) if isinstance(value, str) else orjson.dumps(value).decode()
            causes.append((path, f"Invalid value: {shown}: field is immutable"))
    return causes


def _legacy_causes(event: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    meta = event.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    involved = event.get("involvedObject") or {}
    involved_ns = involved.get("namespace") or "" if isinstance(involved, Mapping) else ""
    mismatch = (
        "involvedObject.namespace",
        f'Invalid value: "{involved_ns}": does not match event.namespace',
    )
    if not event.get("eventTime"):
        if (not involved_ns and namespace not in ("", "default")) or (
            involved_ns and namespace != involved_ns
        ):
            causes.append(mismatch)
    else:
        if not involved_ns and namespace not in ("default", "kube-system"):
            causes.append(mismatch)
        controller = _text(event, "reportingComponent")
        if not controller:
            causes.append(("reportingController", "Required value"))
        causes.extend(
            ("reportingController", f"Invalid value: {quote(controller)}: {message}")
            for message in qualified_name(controller)
        )
        for key in ("reportingInstance", "action", "reason"):
            value = _text(event, key)
            if not value:
                causes.append((key, "Required value"))
            elif len(value) > _LIMITS[key]:
                causes.append(
                    (key, f'Invalid value: "": can have at most {_LIMITS[key]} characters')
                )
        if len(_text(event, "message")) > _NOTE_LIMIT:
            causes.append(
                ("message", f'Invalid value: "": can have at most {_NOTE_LIMIT} characters')
            )
    causes.extend(
        ("namespace", f"Invalid value: {quote(namespace)}: {message}")
        for message in dns1123_subdomain(namespace)
    )
    return causes


def _series_causes(event: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    series = event.get("series")
    if isinstance(series, Mapping):
        count = series.get("count")
        if not isinstance(count, int) or count < 2:
            causes.append(("series.count", 'Invalid value: "": should be at least 2'))
        if not series.get("lastObservedTime"):
            causes.append(("series.lastObservedTime", "Required value"))
    return causes


def _strict_causes(event: Mapping[str, Any]) -> list[Cause]:
    causes = _series_causes(event)
    if not event.get("eventTime"):
        causes.append(("eventTime", "Required value"))
    kind = _text(event, "type")
    if kind not in ("Normal", "Warning"):
        causes.append(("type", f'Invalid value: "": has invalid value: {kind}'))
    for key in ("firstTimestamp", "lastTimestamp", "count"):
        if event.get(key):
            causes.append((key, 'Invalid value: "": needs to be unset'))
    source = event.get("source") or {}
    if isinstance(source, Mapping) and (source.get("component") or source.get("host")):
        causes.append(("source", 'Invalid value: "": needs to be unset'))
    return causes
