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
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .controller import Action
from .errors import NotFound
from .events import Object

if TYPE_CHECKING:
    from ._async_api import AsyncApi
    from ._calls import JsonPatch
    from .client import Api

__all__ = ["finalizer", "finalizer_async"]


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
    step = _next_step(name, obj)
    if step.run == "apply":
        return apply(obj)
    if step.run == "add":
        api.patch(step.name, step.patch, type="json", namespace=step.namespace)
        return Action.await_change()
    if step.run == "cleanup":
        action = cleanup(obj)
        with contextlib.suppress(NotFound):  # gone already: a repeated cleanup finished it
            api.patch(step.name, step.patch, type="json", namespace=step.namespace)
        return action
    return Action.await_change()


async def finalizer_async(
    api: AsyncApi,
    name: str,
    obj: Object,
    apply: Callable[[Object], Action | Awaitable[Action]],
    cleanup: Callable[[Object], Action | Awaitable[Action]],
) -> Action:
    """:func:`finalizer` for coroutine reconciles, with an :class:`~rxkube.aio.AsyncApi`.

    The same four cases and the same guarded patches; ``apply`` and ``cleanup`` may be
    plain or coroutine functions.

    Raises:
        Exception: whatever ``apply`` or ``cleanup`` raise, unchanged.
        rxkube.errors.ApiError: the patch failed (see :func:`finalizer`).
    """
    step = _next_step(name, obj)
    if step.run == "apply":
        return await _settled(apply(obj))
    if step.run == "add":
        await api.patch(step.name, step.patch, type="json", namespace=step.namespace)
        return Action.await_change()
    if step.run == "cleanup":
        action = await _settled(cleanup(obj))
        with contextlib.suppress(NotFound):
            await api.patch(step.name, step.patch, type="json", namespace=step.namespace)
        return action
    return Action.await_change()


async def _settled(result: Action | Awaitable[Action]) -> Action:
    return await result if inspect.isawaitable(result) else result


@dataclass(frozen=True, slots=True)
class _Step:
    """What a reconcile with finalizer does next: ``add`` it (patch), run ``apply``, run
    ``cleanup`` then remove it (patch), or ``nothing``."""

    run: Literal["add", "apply", "cleanup", "nothing"]
    name: str = ""
    namespace: str | None = None
    patch: JsonPatch = field(default_factory=list)


def _next_step(name: str, obj: Object) -> _Step:
    meta: dict[str, Any] = obj.get("metadata") or {}
    finalizers: list[str] = list(meta.get("finalizers") or [])
    object_name = str(meta.get("name", ""))
    namespace = meta.get("namespace")
    if meta.get("deletionTimestamp"):
        if name not in finalizers:
            return _Step("nothing")
        path = f"/metadata/finalizers/{finalizers.index(name)}"
        remove = [{"op": "test", "path": path, "value": name}, {"op": "remove", "path": path}]
        return _Step("cleanup", object_name, namespace, remove)
    if name in finalizers:
        return _Step("apply")
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
    return _Step("add", object_name, namespace, add)
