"""Field ownership through ``/scale``: the parent's ``managedFields`` seen as a Scale's, and back.

kube-apiserver's ScaleHandler (k8s.io/apimachinery pkg/util/managedfields/internal/
scalehandler.go, used by each registry's ``scaleUpdatedObjectInfo``): before a write to
``/scale``, every parent entry that owns the replicas field becomes a Scale entry owning
``spec.replicas`` (``ToSubresource``), so that field management, conflicts included, runs
on the Scale; after it, the Scale's entries are folded back (``ToParent``): a parent entry
whose manager no longer owns the Scale's replicas loses the parent's replicas field, and
each Scale manager owning them gets an entry of the parent's version owning the parent's
replicas field. Such an entry takes its time from the parent's entry of the same manager
identifier, which a new one has not: it has none, as on kube-apiserver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _scale
from ._apply import apply as apply_config
from ._apply import track_update
from ._fieldpaths import Path, PathTrie, decode_fields
from ._schema import FieldSchema
from ._served import ServedResource
from ._status import StatusError

ManagedFields = list[dict[str, Any]]
Object = dict[str, Any]
ScaleWrite = Callable[[Object], tuple[Any, "ManagedFields | None"]]
"""Writes the live Scale (its ``managedFields`` included): the written Scale and its
``managedFields``."""

SCALE_API_VERSION = "autoscaling/v1"
_SCALE_REPLICAS: Path = ("f:spec", "f:replicas")


def _fields(entry: dict[str, Any]) -> set[Path]:
    out: set[Path] = set()
    decode_fields(entry.get("fieldsV1") or {}, (), out)
    return out


def _identifier(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    """``BuildManagerIdentifier``: manager, operation, an updater's apiVersion, subresource."""
    operation = str(entry.get("operation") or "")
    version = "" if operation == "Apply" else str(entry.get("apiVersion") or "")
    return (
        str(entry.get("manager") or ""),
        operation,
        version,
        str(entry.get("subresource") or ""),
    )


def _entry(
    source: dict[str, Any], api_version: str, fields: set[Path], time: Any
) -> dict[str, Any]:
    """An entry of ``source``'s manager owning ``fields`` (kube-apiserver's key order)."""
    out: dict[str, Any] = {
        "manager": source.get("manager", ""),
        "operation": source.get("operation", ""),
        "apiVersion": api_version,
    }
    if time is not None:
        out["time"] = time
    out["fieldsType"] = "FieldsV1"
    out["fieldsV1"] = PathTrie.of(fields).fields_v1()
    if source.get("subresource"):
        out["subresource"] = source["subresource"]
    return out


def _sorted(entries: list[dict[str, Any]]) -> ManagedFields | None:
    """``sortEncodedManagedFields``: by operation, time, manager, apiVersion, subresource."""
    if not entries:
        return None
    return sorted(
        entries,
        key=lambda e: (
            e["operation"], e.get("time") or "", e["manager"], e["apiVersion"],
            e.get("subresource", ""),
        ),
    )  # fmt: skip


def _replicas_path(served: ServedResource) -> Path:
    assert served.scale is not None
    return tuple(f"f:{key}" for key in served.scale.spec_replicas.split("."))


def _entries(value: Any) -> list[dict[str, Any]]:
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def to_subresource(served: ServedResource, parent: Any) -> ManagedFields | None:
    """``ToSubresource``: the Scale entries of the parent's ``managedFields``."""
    path = _replicas_path(served)
    version = served.resource.api_version
    return _sorted(
        [
            _entry(entry, SCALE_API_VERSION, {_SCALE_REPLICAS}, entry.get("time"))
            for entry in _entries(parent)
            if entry.get("apiVersion") == version and path in _fields(entry)
        ]
    )


def to_parent(served: ServedResource, parent: Any, scale: Any) -> ManagedFields | None:
    """``ToParent``: the parent's ``managedFields`` after a write to ``/scale`` left the
    Scale's ``scale``.

    Entries of the parent's other versions are kept as they are (the replicas path of a
    custom resource's other versions is taken to be the same).
    """
    path = _replicas_path(served)
    version = served.resource.api_version
    parents = {_identifier(entry): entry for entry in _entries(parent)}
    scales = {_identifier(entry): entry for entry in _entries(scale)}
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for key, entry in parents.items():
        fields = _fields(entry)
        if path not in fields:
            out[key] = entry
        elif key in scales:
            out[key] = entry  # still the replicas' owner: kept as it is
            del scales[key]
        elif fields - {path}:
            api_version = str(entry.get("apiVersion") or version)
            out[key] = _entry(entry, api_version, fields - {path}, entry.get("time"))
    for key, entry in scales.items():
        if _SCALE_REPLICAS in _fields(entry):
            time = parents[key].get("time") if key in parents else None
            out[key] = _entry(entry, version, {path}, time)
    return _sorted(list(out.values()))


SCALE_SCHEMA = FieldSchema.of(
    ServedResource(_scale.SCALE_RESOURCE, singular="scale", status_subresource=True), "scale"
)
"""The Scale at ``/scale``: ``status`` is a reset field (the registries' ScaleREST
``GetResetFields``), entries carry ``subresource: scale``."""


def updating(body: Object, manager: str, now: str) -> ScaleWrite:
    """A PUT of ``body``: ``manager`` owns what it changed."""
    return lambda live: (body, track_update(SCALE_SCHEMA, live, body, manager, now=now))


def patching(patch: Callable[[Object], Any], manager: str, now: str) -> ScaleWrite:
    """A patch: ``manager`` owns what the patched Scale changed."""

    def write(live: Object) -> tuple[Any, ManagedFields | None]:
        patched = patch(live)
        if not isinstance(patched, dict):
            return patched, None  # refused by ``_scale.scaled``
        return patched, track_update(SCALE_SCHEMA, live, patched, manager, now=now)

    return write


def applying(config: Object, manager: str, *, force: bool, now: str) -> ScaleWrite:
    """Server-side apply of a Scale configuration.

    Raises (when written):
        StatusError: 400 for a configuration of another version (a Deployment's, as
            ``kubectl apply --server-side --subresource=scale -f deployment.yaml`` sends:
            structuredmerge.go's "Incorrect version specified in apply patch"), 409 for
            replicas another manager owns (unless ``force``).
    """
    version = config.get("apiVersion")
    if version != SCALE_API_VERSION:
        raise StatusError(
            400,
            "Incorrect version specified in apply patch. Specified patch version: "
            f"{version if isinstance(version, str) else ''}, expected: {SCALE_API_VERSION}",
            reason="BadRequest",
        )
    return lambda live: apply_config(SCALE_SCHEMA, live, config, manager, force=force, now=now)


def written(served: ServedResource, parent: Object, write: ScaleWrite) -> Object:
    """The parent after ``write`` to its ``/scale``: its replicas and ``managedFields``
    as ``scaleUpdatedObjectInfo`` leaves them (``parent`` is changed in place)."""
    owners = parent.get("metadata", {}).get("managedFields")
    had = _scale.replicas_set(served, parent)
    live = _scale.scale_of(served, parent)
    live_fields = to_subresource(served, owners)
    if live_fields is not None:
        live["metadata"]["managedFields"] = live_fields
    scale, fields = write(live)
    parent = _scale.scaled(served, parent, scale, replicas_set=had)
    folded = to_parent(served, owners, fields)
    if folded is None:
        parent["metadata"].pop("managedFields", None)
    else:
        parent["metadata"]["managedFields"] = folded
    return parent
