"""Client-side apply's annotation under server-side apply, as kube-apiserver's field manager keeps it.

``kubectl apply`` (client side) records its configuration in the
``kubectl.kubernetes.io/last-applied-configuration`` annotation and writes as the
``kubectl-client-side-apply`` manager. When ``kubectl apply --server-side`` (field manager
``kubectl``) then applies over such an object, kube-apiserver (apimachinery
``pkg/util/managedfields/internal``) does two things, both only for the ``kubectl``
manager:

- ``lastAppliedManager.Apply``: conflicts with fields the annotation's configuration sets
  *to the value they still have* are no conflicts: the apply is forced over them, so
  ownership moves to ``kubectl``. Any other conflict is answered, alone.
- ``lastAppliedUpdater.Apply``: after a successful apply, an object that has the
  annotation gets it rewritten to the applied configuration (without the annotation
  itself), so a later client-side apply diffs against what was last applied.

kubectl itself then moves the remaining client-side ownership into its ``Apply`` entry
with a JSON patch of ``managedFields`` (client-go ``csaupgrade``), which the server
takes as any write of ``managedFields``.
"""

from __future__ import annotations

import json

from ._fieldpaths import Object, Path, SchemaError, go_json
from ._schema import FieldSchema

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
"""The annotation client-side apply keeps its configuration in."""

UPGRADING_MANAGER = "kubectl"
"""The one field manager whose applies the annotation guides (kubectl's server-side default)."""


def _annotation(obj: Object) -> str | None:
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    value = annotations.get(LAST_APPLIED) if isinstance(annotations, dict) else None
    return value if isinstance(value, str) and value else None


def allowed_conflicts(schema: FieldSchema, live: Object) -> frozenset[Path]:
    """The fields an apply by ``kubectl`` may take over without a conflict.

    ``allowedConflictsFromLastApplied``: every field the last-applied configuration sets,
    less those whose value there differs from the live object's (modified, added or
    removed). Empty when the annotation is absent, does not decode, or names another
    apiVersion.
    """
    text = _annotation(live)
    if text is None:
        return frozenset()
    try:
        last_applied = json.loads(text)
    except ValueError:
        return frozenset()
    if not isinstance(last_applied, dict) or last_applied.get("apiVersion") != schema.api_version:
        return frozenset()
    try:
        fields = schema.field_set(last_applied)
        diff = schema.compare(last_applied, live)
    except SchemaError:
        return frozenset()
    return frozenset(fields - diff.modified - diff.added - diff.removed)


def synced(merged: Object, config: Object) -> Object:
    """``lastAppliedUpdater``: ``merged`` with its annotation (if any) set to ``config``.

    The annotation holds the applied configuration as ``runtime.Encode`` writes it (one
    line of JSON and a newline), without the annotation itself; an ``annotations`` map
    left empty by that is kept, empty.
    """
    if _annotation(merged) is None:
        return merged
    recorded = dict(config)
    meta = recorded.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        annotations = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
        recorded["metadata"] = {**meta, "annotations": annotations}
    out = dict(merged)
    out_meta = dict(out["metadata"])
    out_meta["annotations"] = {**out_meta["annotations"], LAST_APPLIED: go_json(recorded) + "\n"}
    out["metadata"] = out_meta
    return out
