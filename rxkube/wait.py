"""Wait until an object meets a condition: created, running, succeeded, ready, deleted.

:func:`await_condition` blocks (with a timeout) until a condition holds for one object,
watched with ``watch_object`` (so no polling, and transient API errors are retried with
``default_backoff()``); :func:`await_condition_async` is the same for coroutines, without
blocking the event loop. A condition is any ``(obj or None) -> bool``; ``None`` means
the object does not exist. Ready-made ones follow kube-rs's ``runtime::wait::conditions``.

Example:
    >>> pods = Api(client, "pods", namespace="default")                        # doctest: +SKIP
    >>> await_condition(pods, "web-0", is_pod_running(), timeout=120)          # doctest: +SKIP
    >>> await_condition(pods, "job-1", is_pod_succeeded(), timeout=600)        # doctest: +SKIP
    >>> pod = pods.get("web-0")                                               # doctest: +SKIP
    >>> pods.delete("web-0")                                                  # doctest: +SKIP
    >>> await_condition(pods, "web-0", is_deleted(pod["metadata"]["uid"]), timeout=60)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from reactivex import Observable
from reactivex import operators as ops

from ._callables import check_callable
from ._futures import resolve_soon
from ._timeouts import checked_timeout
from ._watching import watch_object
from .events import Object
from .operators import default_backoff

if TYPE_CHECKING:
    from ._async_api import AsyncApi
    from .client import Api

__all__ = [
    "Condition",
    "await_condition",
    "await_condition_async",
    "has_status_condition",
    "is_deleted",
    "is_pod_running",
    "is_pod_succeeded",
]

Condition: TypeAlias = Callable[[Object | None], bool]
"""Whether an object (``None``: it does not exist) is in the state waited for."""


def await_condition(api: Api, name: str, condition: Condition, timeout: float) -> Object | None:
    """Block until ``condition`` holds for the object ``name``; return its state then.

    The condition is checked on the object's state when the watch starts and after each
    change.

    Args:
        api: the object's resource, with its namespace for a namespaced resource.
        name: the object's name.
        condition: e.g. ``is_pod_running()``.
        timeout: seconds to wait at most.

    Returns:
        The object as it was when the condition held (``None`` if it did not exist).

    Raises:
        TimeoutError: the condition did not hold within ``timeout``. If the watch was
            retrying a failure then (the API server unreachable, say), the message says
            so and whether the object was ever read, and the last failure is chained as
            its ``__cause__``.
        TypeError: ``condition`` is not callable.
        TypeError, ValueError: ``timeout`` is not a number, or is negative or NaN.
        rxkube.errors.RxKubeError: the watch failed with an error that is not retried.
        Exception: whatever ``condition`` raised.
    """
    limit = checked_timeout(timeout, "await_condition()")
    check_callable(condition, "await_condition()", "condition")
    done = threading.Event()
    outcome: list[Any] = []

    def finish(value: Any) -> None:
        if not done.is_set():
            outcome.append(value)
            done.set()

    progress = _Progress()
    subscription = _watch(api, name, condition, progress).subscribe(finish, finish)
    try:
        if not done.wait(limit):
            raise progress.timed_out(api, name, timeout) from progress.error
    finally:
        subscription.dispose()
    return _result(outcome[0])


async def await_condition_async(
    api: Api | AsyncApi, name: str, condition: Condition, timeout: float
) -> Object | None:
    """Like :func:`await_condition`, awaited: the event loop is never blocked.

    ``api`` may be a blocking :class:`~rxkube.client.Api` or an
    :class:`~rxkube.aio.AsyncApi`: the watch runs on a thread of its own either way.

    Raises:
        TimeoutError: the condition did not hold within ``timeout`` (with the failure
            the watch was retrying then, as :func:`await_condition` says).
        TypeError: ``condition`` is not callable.
        TypeError, ValueError: ``timeout`` is not a number, or is negative or NaN.
        rxkube.errors.RxKubeError: the watch failed with an error that is not retried.
        Exception: whatever ``condition`` raised.
    """
    limit = checked_timeout(timeout, "await_condition_async()")
    check_callable(condition, "await_condition_async()", "condition")
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def finish(value: Any) -> None:
        resolve_soon(loop, future, value)

    from .client import Api

    blocking = api if isinstance(api, Api) else api.sync
    progress = _Progress()
    subscription = _watch(blocking, name, condition, progress).subscribe(finish, finish)
    try:
        value = await asyncio.wait_for(future, limit)
    except TimeoutError:
        raise progress.timed_out(blocking, name, timeout) from progress.error
    finally:
        subscription.dispose()
    return _result(value)


class _Met:
    """The state that met the condition (an Exception delivered otherwise is a failure)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Object | None) -> None:
        self.obj = obj


class _Progress:
    """What a wait's watch went through: whether it read the object, what it retried.

    Written on the watch's thread, read once the wait has timed out.
    """

    __slots__ = ("error", "failures", "read")

    def __init__(self) -> None:
        self.read = False
        self.error: BaseException | None = None  # the failure retried since the last read
        self.failures = 0

    def retried(self, error: BaseException, _delay: float) -> None:
        self.error = error
        self.failures += 1

    def saw(self, _state: Object | None) -> None:
        self.read = True
        self.error = None
        self.failures = 0

    def timed_out(self, api: Api, name: str, timeout: float) -> TimeoutError:
        """The TimeoutError to raise (from :attr:`error`): what the watch was retrying."""
        where = f" in {api.namespace}" if api.namespace else ""
        message = (
            f"{api.resource.kind} {name}{where} did not meet the condition within {timeout:g} s"
        )
        error = self.error
        if error is not None:
            since = (
                "the object was never read" if not self.read else "since it last read the object"
            )
            plural = "s" if self.failures > 1 else ""
            message += (
                f"; {since}, the watch was retrying after {self.failures} failure{plural},"
                f" the last: {type(error).__name__}: {error}"
            )
        return TimeoutError(message)


def _watch(api: Api, name: str, condition: Condition, progress: _Progress) -> Observable[_Met]:
    """The first state of the object meeting ``condition``, then completion."""
    return watch_object(api, name).pipe(
        default_backoff(on_retry=progress.retried),
        ops.do_action(progress.saw),
        ops.filter(condition),
        ops.take(1),
        ops.map(_Met),
    )


def _result(value: Any) -> Object | None:
    if isinstance(value, _Met):
        return value.obj
    raise value


# -- conditions -------------------------------------------------------------------------


def is_deleted(uid: str | None = None) -> Condition:
    """The object does not exist (or, given its ``uid``, was replaced by a new one).

    Args:
        uid: the uid of the object waited for; an object of the same name but another
            uid (recreated meanwhile) counts as deleted.

    Example:
        >>> is_deleted("u1")(None), is_deleted("u1")({"metadata": {"uid": "u2"}})
        (True, True)
        >>> is_deleted("u1")({"metadata": {"uid": "u1"}})
        False
    """

    def condition(obj: Object | None) -> bool:
        if obj is None:
            return True
        return uid is not None and (obj.get("metadata") or {}).get("uid") != uid

    return condition


def _phase_is(phase: str) -> Condition:
    def condition(obj: Object | None) -> bool:
        return obj is not None and (obj.get("status") or {}).get("phase") == phase

    return condition


def is_pod_running() -> Condition:
    """The Pod exists and its ``status.phase`` is ``Running``.

    Example:
        >>> is_pod_running()({"status": {"phase": "Running"}}), is_pod_running()(None)
        (True, False)
    """
    return _phase_is("Running")


def is_pod_succeeded() -> Condition:
    """The Pod exists and its ``status.phase`` is ``Succeeded``.

    Example:
        >>> is_pod_succeeded()({"status": {"phase": "Succeeded"}})
        True
    """
    return _phase_is("Succeeded")


def has_status_condition(type_: str, status: str = "True") -> Condition:
    """The object has a ``status.conditions`` entry of this type with this status.

    Args:
        type_: the condition type, e.g. ``"Ready"``, ``"Available"``, ``"Established"``.
        status: ``"True"``, ``"False"`` or ``"Unknown"``.

    Example:
        >>> ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        >>> has_status_condition("Ready")(ready), has_status_condition("Ready", "False")(ready)
        (True, False)
    """

    def condition(obj: Object | None) -> bool:
        if obj is None:
            return False
        for entry in (obj.get("status") or {}).get("conditions") or ():
            if entry.get("type") == type_:
                return bool(entry.get("status") == status)
        return False

    return condition
