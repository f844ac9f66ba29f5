"""Finalizers for reconcilers: clean up before an object goes, without clobbering others.

:func:`finalizer` wraps the two halves of a reconcile, as kube-rs's ``finalizer`` does:
``apply`` while the object lives, ``cleanup`` once it is being deleted. It adds the
finalizer before the first ``apply`` (so the object cannot vanish before ``cleanup`` ran)
and removes it after ``cleanup`` succeeded (so the API server can delete the object).

Both changes are JSON patches guarded by a ``test`` operation: the finalizer list (or
the resourceVersion, when there is no list yet) must still be what the reconcile saw, so
a concurrent edit of the finalizers by someone else makes the patch fail (HTTP 422) —
retried by the error policy — instead of silently dropping their finalizer.

Example:
    >>> def reconcile(obj, ctx):
    ...     return finalizer(
    ...         ctx.api, "example.com/cleanup", obj,
    ...         apply=lambda o: ensure_children(ctx, o),
    ...         cleanup=lambda o: delete_external_things(ctx, o),
    ...     )
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .controller import Action
from .errors import NotFound
from .events import Object

if TYPE_CHECKING:
    from .client import Api

__all__ = ["finalizer"]


def finalizer(
    api: Api,
    name: str,
    obj: Object,
    apply: Callable[[Object], Action],
    cleanup: Callable[[Object], Action],
) -> Action:
    """Run ``apply`` or ``cleanup`` for ``obj``, adding or removing the finalizer ``name``.

    - The object lives and lacks the finalizer: add it, return ``Action.await_change()``
      (the change triggers the next reconcile, which runs ``apply``).
    - The object lives and has the finalizer: return ``apply(obj)``.
    - The object is being deleted and has the finalizer: run ``cleanup(obj)``; when it
      returns, remove the finalizer and return its action (if the object is gone already,
      a previous cleanup finished the job: that counts as done).
    - The object is being deleted without the finalizer: nothing to do,
      ``Action.await_change()``.

    Args:
        api: the object's resource (its namespace is taken from the object).
        name: the finalizer, e.g. ``"example.com/cleanup"``.
        obj: the object being reconciled.
        apply: the reconcile of a live object.
        cleanup: what must happen before the object goes; must be idempotent, as it runs
            again if removing the finalizer fails.

    Returns:
        The action of ``apply`` or ``cleanup``, or ``Action.await_change()``.

    Raises:
        Exception: whatever ``apply`` or ``cleanup`` raise, unchanged.
        rxkube.errors.ApiError: the patch failed; ``Invalid`` (422) when the finalizers
            changed meanwhile. Let the error policy retry.
    """
    meta: dict[str, Any] = obj.get("metadata") or {}
    finalizers: list[str] = list(meta.get("finalizers") or [])
    object_name = str(meta.get("name", ""))
    namespace = meta.get("namespace")
    deleting = bool(meta.get("deletionTimestamp"))

    if deleting:
        if name not in finalizers:
            return Action.await_change()
        action = cleanup(obj)
        index = finalizers.index(name)
        path = f"/metadata/finalizers/{index}"
        remove = [{"op": "test", "path": path, "value": name}, {"op": "remove", "path": path}]
        with contextlib.suppress(NotFound):  # gone already: a repeated cleanup finished it
            api.patch(object_name, remove, type="json", namespace=namespace)
        return action

    if name in finalizers:
        return apply(obj)
    if "finalizers" in meta:
        add = [
            {"op": "test", "path": "/metadata/finalizers", "value": meta["finalizers"]},
            {"op": "add", "path": "/metadata/finalizers/-", "value": name},
        ]
    else:
        # No list to test: test that the object is unchanged since it was read.
        add = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {"op": "add", "path": "/metadata/finalizers", "value": [name]},
        ]
    api.patch(object_name, add, type="json", namespace=namespace)
    return Action.await_change()
