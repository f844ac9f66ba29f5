"""The garbage collector's deletion finalizers: ``orphan`` and ``foregroundDeletion``.

kube-apiserver runs with garbage collection on (``--enable-garbage-collector``, the
default) whether or not a controller manager is there to collect: a delete whose
propagation is ``Orphan`` or ``Foreground`` (or, without one, whose kind orphans by
default) puts the ``orphan`` or ``foregroundDeletion`` finalizer on the object, which then
stays, marked for deletion, until the garbage collector removes it
(k8s.io/apiserver pkg/registry/generic/registry/store.go: ``shouldOrphanDependents``,
``shouldDeleteDependents``, ``deletionFinalizersForGarbageCollection``). Here no garbage
collector runs, as on a control plane without a controller manager (envtest).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..resource import Resource

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"

_ORPHAN_BY_DEFAULT = {("batch", "v1", "jobs"), ("", "v1", "replicationcontrollers")}
"""The kinds whose strategy's ``DefaultGarbageCollectionPolicy`` is ``OrphanDependents``
at the served version, "for backwards compatibility" (pkg/registry/batch/job and
pkg/registry/core/replicationcontroller strategy.go)."""


def delete_options(query: Mapping[str, Any], body: Any) -> tuple[bool | None, str | None]:
    """``orphanDependents`` and ``propagationPolicy`` of a delete (the query's win)."""
    orphan = query.get("orphanDependents")
    policy = query.get("propagationPolicy")
    orphan_value: bool | None = None if orphan is None else orphan.lower() == "true"
    if isinstance(body, Mapping):
        if orphan_value is None and isinstance(body.get("orphanDependents"), bool):
            orphan_value = body["orphanDependents"]
        if policy is None and isinstance(body.get("propagationPolicy"), str):
            policy = body["propagationPolicy"]
    return orphan_value, policy


def finalizers(
    resource: Resource, obj: Mapping[str, Any], orphan: bool | None, policy: str | None
) -> list[str] | None:
    """The object's finalizers after a delete with these options, or None if unchanged."""
    current = [f for f in obj.get("metadata", {}).get("finalizers") or [] if isinstance(f, str)]
    if orphan is not None:
        should_orphan, foreground = orphan, False
    elif policy in ("Orphan", "Background", "Foreground"):
        should_orphan, foreground = policy == "Orphan", policy == "Foreground"
    else:
        should_orphan = ORPHAN in current or (
            FOREGROUND not in current
            and (resource.group, resource.version, resource.plural) in _ORPHAN_BY_DEFAULT
        )
        foreground = FOREGROUND in current
    wanted = [f for f in current if f not in (ORPHAN, FOREGROUND)]
    if should_orphan:
        wanted.append(ORPHAN)
    if foreground:
        wanted.append(FOREGROUND)
    return None if set(wanted) == set(current) else wanted
