"""Server-side apply and field ownership (``metadata.managedFields``), as kube-apiserver keeps them.

kube-apiserver's field manager (k8s.io/apimachinery ``managedfields`` over
sigs.k8s.io/structured-merge-diff) records which manager owns which fields of every
object. This module does the same on plain JSON objects:

- A *field set* is a set of paths. A path is a tuple of elements written as in
  ``fieldsV1``: ``f:<name>`` for a field, ``k:<json>`` for an item of a list keyed by
  its merge keys (``k:{"name":"web"}``), ``v:<json>`` for an item of a set-like list.
- :func:`track_update` gives the ``managedFields`` of an object written by a create, an
  update or a non-apply patch: the writer's ``Update`` entry gains the fields it
  changed, and every other manager loses them.
- :func:`apply` merges an applied configuration into the live object: the applier owns
  exactly the fields it applied; fields it applied before and omits now are removed
  unless another manager owns them; changing a field another manager owns is a 409
  conflict naming the fields and managers, unless forced, which takes ownership.

kube-apiserver knows every type's schema (which lists are keyed, by which fields; which
maps are atomic). Here a small table of built-in fields stands in for it
(:class:`FieldSchema`); docs/testing.md lists precisely what that leaves out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ._fieldpaths import (
    MISSING,
    ManagedFieldsError,
    Object,
    Path,
    PathTrie,
    SchemaError,
    decode_fields,
    path_string,
)
from ._lastapplied import UPGRADING_MANAGER, allowed_conflicts, synced
from ._schema import FieldSchema
from ._status import StatusError

ManagedFields = list[dict[str, Any]]
"""The value of ``metadata.managedFields``."""

BEFORE_FIRST_APPLY = "before-first-apply"
"""The manager that owns the existing fields of an untracked object at its first apply."""

_STRIPPED: frozenset[Path] = frozenset(
    {("f:apiVersion",), ("f:kind",), ("f:metadata",)}
    | {
        ("f:metadata", f"f:{name}")
        for name in (
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        )
    }
)
"""Paths no manager ever owns (kube-apiserver's stripMetaManager)."""


# --------------------------------------------------------------- managers

ManagerKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class _Entry:
    """One ``managedFields`` entry, its fields decoded."""

    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    fields: frozenset[Path]

    @property
    def key(self) -> ManagerKey:
        """What identifies a manager: appliers regardless of the apiVersion they used."""
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def identifier(self) -> str:
        """apimachinery's ``BuildManagerIdentifier``: the entry as JSON without its fields,
        its time, and an applier's apiVersion; conflicts are grouped in its order."""
        entry = {"manager": self.manager, "operation": self.operation}
        if self.operation != "Apply":
            entry["apiVersion"] = self.api_version
        if self.subresource:
            entry["subresource"] = self.subresource
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)

    def describe(self) -> str:
        """The manager as a conflict message names it: ``printManager`` of its identifier,
        which carries no time, so an updater is never named with one
        (k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go)."""
        text = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource, ensure_ascii=False)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text

    def encode(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time is not None:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = PathTrie.of(self.fields).fields_v1()
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


Managers = dict[ManagerKey, _Entry]


def _decode(raw: Any) -> Managers:
    """The managers of a ``managedFields`` value (absent or null: none)."""
    if raw is None or raw is MISSING:
        return {}
    if not isinstance(raw, list):
        raise ManagedFieldsError("managedFields must be a list")
    managers: Managers = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ManagedFieldsError(f"entry {index} is not an object")
        operation = item.get("operation")
        if operation not in ("Apply", "Update"):
            raise ManagedFieldsError("operation must be `Apply` or `Update`")
        api_version = item.get("apiVersion")
        if not isinstance(api_version, str) or not api_version:
            raise ManagedFieldsError("apiVersion must not be empty")
        if item.get("fieldsType") != "FieldsV1":
            raise ManagedFieldsError(f"invalid fieldsType in managed fields entry {index}")
        fields: set[Path] = set()
        decode_fields(item.get("fieldsV1") or {}, (), fields)
        time = item.get("time")
        entry = _Entry(
            manager=str(item.get("manager") or ""),
            operation=operation,
            api_version=api_version,
            subresource=str(item.get("subresource") or ""),
            time=time if isinstance(time, str) else None,
            fields=frozenset(fields),
        )
        managers[entry.key] = entry
    return managers


def _encode(managers: Managers) -> ManagedFields | None:
    """``managedFields`` in kube-apiserver's order: appliers first, then by time and name."""
    if not managers:
        return None
    ordered = sorted(
        managers.values(),
        key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource),
    )
    return [entry.encode() for entry in ordered]


def _body(obj: Object) -> Object:
    """An object without ``metadata.managedFields`` (never owned, never compared)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def _with_named_ancestors(paths: Iterable[Path]) -> set[Path]:
    """The paths and every field they are in (structured-merge-diff's
    EnsureNamedFieldsAreMembers, with every object treated as having named fields)."""
    out = set(paths)
    for path in list(out):
        for end in range(1, len(path)):
            if path[end - 1].startswith("f:"):
                out.add(path[:end])
    return out


def _update_managers(
    schema: FieldSchema, managers: Managers, old: Object, new: Object, manager: str, now: str
) -> Managers:
    """Managers after an update by ``manager``: it owns what it changed, others lose that."""
    diff = schema.compare(old, new).kept(schema.keeps)
    changed = diff.added | diff.modified
    out: Managers = {}
    for key, entry in managers.items():
        fields = entry.fields - changed - diff.removed
        if fields:
            out[key] = replace(entry, fields=fields)
    taken = changed - _STRIPPED
    if taken:
        entry = _Entry(
            manager, "Update", schema.api_version, schema.subresource, now, frozenset(taken)
        )
        previous = out.get(entry.key)
        if previous is not None:
            entry = replace(entry, fields=entry.fields | previous.fields)
        out[entry.key] = entry
    return out


def _is_reset(requested: Any) -> bool:
    return isinstance(requested, list) and requested in ([], [{}])


def track_update(
    schema: FieldSchema,
    old: Object | None,
    new: Object,
    manager: str,
    *,
    now: str,
    zero: Object | None = None,
) -> ManagedFields | None:
    """The ``managedFields`` to store ``new`` with, after a non-apply write by ``manager``.

    Follows kube-apiserver: ``managedFields`` sent in the request replace the stored ones
    (``[]`` or ``[{}]`` clear them; absent or invalid keep them; the status endpoint
    ignores them); an existing object without managed fields is not tracked (until its
    first apply); a create always is.

    Args:
        schema: the resource at this endpoint.
        old: the stored object (None for a create).
        new: the object about to be stored; its ``metadata.managedFields`` is the request's.
        manager: the writer's field manager.
        now: the time to stamp on the writer's entry.
        zero: what a create compares ``new`` with: the kind's zero value, as its Go struct
            writes it (kube-apiserver's create handler starts from a new, empty object),
            whose fields are no one's; ``{}`` when None.
    """
    live_fields = old.get("metadata", {}).get("managedFields") if old is not None else None
    requested = new.get("metadata", {}).get("managedFields", MISSING)
    managers: Managers = {}
    if schema.subresource or not _is_reset(requested):
        try:
            managers = {} if schema.subresource else _decode(requested)
        except ManagedFieldsError:
            managers = {}
        if not managers:
            try:
                managers = _decode(live_fields)
            except ManagedFieldsError:
                managers = {}
    if not managers and old is not None:
        return None
    try:
        before = old if old is not None else zero or {}
        updated = _update_managers(schema, managers, _body(before), _body(new), manager, now)
    except SchemaError:
        # kube-apiserver keeps the stored managedFields when it cannot compute new ones.
        return live_fields if isinstance(live_fields, list) else None
    return _encode(updated)


def _gvk(api_version: Any, kind: Any) -> str:
    group, _, version = (api_version if isinstance(api_version, str) else "").rpartition("/")
    return f"{group}/{version}, Kind={kind if isinstance(kind, str) else ''}"


def apply(
    schema: FieldSchema,
    live: Object | None,
    config: Object,
    manager: str,
    *,
    force: bool,
    now: str,
) -> tuple[Object, ManagedFields | None]:
    """Server-side apply ``config`` as ``manager`` onto ``live`` (None: create it).

    Returns the new object (without ``managedFields``) and its ``managedFields``.

    Raises:
        StatusError: 400 for a configuration of another kind or version, or one with
            ``managedFields``; 409 Conflict when it changes fields other managers own
            (unless ``force``); 500 when an associative list item lacks its keys.
    """
    if (config.get("apiVersion"), config.get("kind")) != (schema.api_version, schema.kind):
        raise StatusError(
            400, f"invalid object type: {_gvk(config.get('apiVersion'), config.get('kind'))}"
        )
    meta = config.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise StatusError(400, "metadata.managedFields must be nil")
    current = _body(live) if live is not None else {}
    try:
        managers = _decode(live.get("metadata", {}).get("managedFields")) if live else {}
    except ManagedFieldsError as exc:
        raise StatusError(
            500, f"Internal error occurred: failed to decode managed fields: {exc}"
        ) from None
    applied_config, config = config, schema.scoped(config)
    try:
        if live is not None and not managers:
            # Whoever wrote the fields of an untracked object keeps them, as one manager.
            managers = _update_managers(schema, {}, {}, current, BEFORE_FIRST_APPLY, now)
        applied = frozenset(p for p in schema.field_set(config) if schema.keeps(p))
        merged = schema.merge(current, config)
        key: ManagerKey = (manager, "Apply", "", schema.subresource)
        last = managers.get(key)
        time = last.time if last is not None else None
        managers[key] = _Entry(
            manager, "Apply", schema.api_version, schema.subresource, time, applied
        )
        if last is not None:
            owned = _with_named_ancestors(p for e in managers.values() for p in e.fields)
            dropped = _with_named_ancestors(last.fields) - owned
            if dropped:
                merged = schema.remove(merged, dropped)
        diff = schema.compare(current, merged).kept(schema.keeps)
    except SchemaError as exc:
        name = f"{(meta or {}).get('namespace', '')}/{(meta or {}).get('name', '')}"
        raise StatusError(
            500,
            f"Internal error occurred: failed to create typed patch object "
            f"({name}; {_gvk(schema.api_version, schema.kind)}): {exc}",
        ) from None
    changed = diff.added | diff.modified
    conflicts = {
        k: e.fields & changed for k, e in managers.items() if k != key and e.fields & changed
    }
    if conflicts and not force and manager == UPGRADING_MANAGER:
        # An object kubectl applied client side: fields still as last applied move over.
        allowed = allowed_conflicts(schema, current)
        remaining = {k: f - allowed for k, f in conflicts.items() if f - allowed}
        if remaining:
            conflicts = remaining
        else:
            force = True  # lastAppliedManager applies again, forced
    if conflicts and not force:
        raise _conflict_error(
            sorted(
                ((managers[k], fields) for k, fields in conflicts.items()),
                key=lambda pair: pair[0].identifier(),
            )
        )
    result: Managers = {}
    for k, entry in managers.items():
        fields = entry.fields - diff.removed if k != key else entry.fields - _STRIPPED
        fields -= conflicts.get(k, frozenset())
        if not fields:
            continue
        time = now if k == key and merged != current else entry.time
        result[k] = replace(entry, fields=fields, time=time)
    if manager == UPGRADING_MANAGER:
        merged = synced(merged, applied_config)
    return merged, _encode(result)


def _conflict_error(conflicts: list[tuple[_Entry, frozenset[Path]]]) -> StatusError:
    """409 Conflict naming every conflicting field and its manager, as kube-apiserver words it."""
    pairs = [(entry, path) for entry, fields in conflicts for path in PathTrie.of(fields).paths()]
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {entry.describe()}",
            "field": path_string(path),
        }
        for entry, path in pairs
    ]
    if len(pairs) == 1:
        entry, path = pairs[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {entry.describe()}: {path_string(path)}"
        )
    else:
        lines: list[str] = []
        for entry, fields in conflicts:
            lines.append(f"conflicts with {entry.describe()}:")
            lines.extend(f"- {path_string(path)}" for path in PathTrie.of(fields).paths())
        message = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
    return StatusError(409, message, reason="Conflict", details={"causes": causes})
