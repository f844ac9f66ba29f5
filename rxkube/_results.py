"""What ``reconcile`` returns and what a controller reports: ``Action`` and the results.

Also the scheduling configuration (``ControllerConfig``), the ``Mapper`` type of related
objects and ``current_reason()``. Re-exported by ``rxkube.controller``, their documented home.
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias

from ._object_ref import ObjectRef
from ._timeouts import checked_seconds
from .events import Object

__all__ = [
    "Action",
    "ControllerConfig",
    "ControllerHealth",
    "Mapper",
    "ObjectMissing",
    "ReconcileFailed",
    "ReconcileInterrupted",
    "ReconcileResult",
    "ReconcileTimeout",
    "Reconciled",
    "current_reason",
    "reconcile_reason",
]


@dataclass(frozen=True, slots=True)
class Action:
    """What to do after a reconcile: requeue after some seconds, or wait for a change.

    Attributes:
        requeue_after: seconds until the object is reconciled again, or ``None`` to
            reconcile it only when it (or something related) changes. A delay longer
            than any wait can be (beyond ``threading.TIMEOUT_MAX``, about 292 years;
            ``math.inf`` among them) is never due: it is stored as ``None``.

    Raises:
        TypeError: ``requeue_after`` is neither a number nor ``None``.
        ValueError: ``requeue_after`` is negative or NaN.

    Example:
        >>> Action.requeue(300).requeue_after
        300.0
        >>> Action.await_change().requeue_after is None
        True
        >>> Action.requeue(math.inf) == Action.await_change()
        True
    """

    requeue_after: float | None = None

    def __post_init__(self) -> None:
        # Checked here, where the reconcile made it: NaN would stall the controller's
        # whole queue (it breaks the heap's order), and a string would fail it later.
        if self.requeue_after is not None:
            seconds = checked_seconds(
                self.requeue_after, "Action", "requeue_after", none="no requeue"
            )
            never = seconds > threading.TIMEOUT_MAX
            object.__setattr__(self, "requeue_after", None if never else seconds)

    @staticmethod
    def requeue(seconds: float) -> Action:
        """Reconcile the object again ``seconds`` from now (sooner if it changes).

        ``math.inf`` (or any delay beyond ``threading.TIMEOUT_MAX``) means never: the same
        as :meth:`await_change`.

        Raises:
            TypeError: ``seconds`` is not a number.
            ValueError: ``seconds`` is negative or NaN.
        """
        return Action(checked_seconds(seconds, "Action.requeue()", "seconds"))

    @staticmethod
    def await_change() -> Action:
        """Reconcile the object again only when it, or something related, changes."""
        return Action(None)


@dataclass(frozen=True, slots=True)
class Reconciled:
    """A reconcile that returned an action.

    Attributes:
        ref: the object reconciled.
        action: what the reconcile asked for.
        reason: why it was reconciled.
        duration: seconds the reconcile took.
    """

    ref: ObjectRef
    action: Action
    reason: str
    duration: float


@dataclass(frozen=True, slots=True)
class ReconcileFailed:
    """A reconcile that raised; ``action`` is what the error policy returned.

    Attributes:
        ref: the object reconciled.
        error: what the reconcile raised.
        action: what the error policy asked for.
        reason: why it was reconciled.
        duration: seconds the reconcile took.
        attempt: how many reconciles of this object have failed in a row, this one
            included (1 for the first failure; reset by a success).
    """

    ref: ObjectRef
    error: Exception
    action: Action
    reason: str
    duration: float
    attempt: int = 1


class ReconcileTimeout(TimeoutError):
    """A reconcile ran longer than ``ControllerConfig.reconcile_timeout``.

    It is reported as the error of a :class:`ReconcileFailed` and handed to the error
    policy. A coroutine reconcile is cancelled; a plain function cannot be interrupted, so
    the object is not reconciled again until it returns (its late result is dropped).
    """


class ReconcileInterrupted(RuntimeError):
    """A reconcile ended by a ``BaseException`` that is not an ``Exception``; its
    ``__cause__`` is that exception.

    A ``CancelledError`` the controller did not cause (the reconcile awaited a task that
    something else cancelled) is a failure like any other. ``KeyboardInterrupt`` and
    ``SystemExit`` are failures too; raised on the caller's loop (a controller run from
    async code) they then go on up, out of its ``asyncio.run``. On a worker thread, or
    on the loop a controller makes for coroutines, nothing above would take them.

    A coroutine reconcile the controller cancels because its replica stopped leading ends
    as one too: its ``__cause__`` is the ``CancelledError``, whose message (``args``) says
    "this replica stopped leading on Lease <name>".

    It is reported as the error of a :class:`ReconcileFailed` and handed to the error
    policy, as any failure is (so an attempt cut short by a step-down counts as failed,
    and is retried as the policy says once the replica leads again).
    """


@dataclass(frozen=True, slots=True)
class ObjectMissing:
    """A request for an object that was not in the store when its turn came (not run).

    Attributes:
        ref: the object requested.
        reason: why it was requested.
    """

    ref: ObjectRef
    reason: str


ReconcileResult: TypeAlias = Reconciled | ReconcileFailed | ObjectMissing
"""One item of the Observable :meth:`Controller.run` returns."""

Mapper: TypeAlias = Callable[[Object], "ObjectRef | Iterable[ObjectRef] | None"]
"""Maps a related object to the objects of the controller to reconcile."""

reconcile_reason: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rxkube_reconcile_reason", default=None
)


def current_reason() -> str | None:
    """Why the running reconcile was started (``None`` outside a reconcile), for logs.

    Example:
        >>> def reconcile(obj, ctx):
        ...     log.info("reconciling %s: %s", obj["metadata"]["name"], current_reason())
        ...     return Action.await_change()
    """
    return reconcile_reason.get()


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """How a controller schedules reconciles.

    Args:
        debounce: seconds of trailing debounce: a burst of changes to one object causes
            one reconcile, this long after the last change (0 for none).
        concurrency: the most reconciles running at once. ``None``: 8 worker threads for
            a plain function, no limit for a coroutine function.
        name: the controller's name, for thread names, logs and metrics (by default the
            resource's plural or the store's name).
        reconcile_timeout: seconds a reconcile may run before it counts as failed with
            :class:`ReconcileTimeout`; ``None`` for no limit.
        resync: reconcile every object again every this many seconds, each at a random
            moment within the period (not all at once); ``None`` for never.

    Raises:
        TypeError: ``debounce``, ``reconcile_timeout`` or ``resync`` is not a number,
            ``concurrency`` not a whole number, or ``name`` not a string.
        ValueError: ``debounce`` is negative, ``concurrency`` less than 1, or
            ``reconcile_timeout`` or ``resync`` not more than 0 (or any of them NaN or
            infinite).
    """

    debounce: float = 0.0
    concurrency: int | None = None
    name: str = ""
    reconcile_timeout: float | None = None
    resync: float | None = None

    def __post_init__(self) -> None:
        # Infinity is refused too: no timer can be set to it.
        what = "ControllerConfig()"
        checked_seconds(self.debounce, what, "debounce", finite=True)
        concurrency = self.concurrency
        if concurrency is not None:
            if isinstance(concurrency, bool) or not isinstance(concurrency, int):
                raise TypeError(
                    f"{what}: concurrency must be a whole number or None, not"
                    f" {type(concurrency).__name__} {concurrency!r}"
                )
            if concurrency < 1:
                raise ValueError(f"{what}: concurrency must be at least 1, not {concurrency!r}")
        if not isinstance(self.name, str):
            raise TypeError(
                f"{what}: name must be a string, not {type(self.name).__name__} {self.name!r}"
            )
        for name, none in (("reconcile_timeout", "no limit"), ("resync", "never")):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(
                    f"{what}: {name} must be a number of seconds or None, not"
                    f" {type(value).__name__} {value!r}"
                )
            if not 0 < value < math.inf:  # NaN too
                raise ValueError(
                    f"{what}: {name} must be a finite number of seconds, more than 0 (or None"
                    f" for {none}), not {value!r}"
                )


@dataclass(frozen=True, slots=True)
class ControllerHealth:
    """What health probes need to know about a controller (see :mod:`rxkube.probes`).

    Attributes:
        running: a run of the controller is subscribed.
        stopping: that run is stopping gracefully.
        error: the error the last run ended with, if it did not end cleanly.
        loop_lag: seconds the controller loop has left a ping unanswered (0 when it
            answers at once); a wedged loop lets this grow.
    """

    running: bool
    stopping: bool
    error: Exception | None
    loop_lag: float
