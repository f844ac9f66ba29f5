"""One run of a controller: triggers in, the loop thread that schedules, reconciles out.

``Controller.run`` (the builder, in ``rxkube.controller``) hands a ``RunPlan`` to a ``Run``
per subscription. The run's thread owns the scheduler and emits the results; reconciles
run on ``rxkube._executors``' workers or an asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeAlias

from reactivex import Observable, abc

from ._cache import Store
from ._executors import IDLE_WAKEUP, LoopThread, Workers
from ._object_ref import ObjectRef
from ._results import (
    Action,
    ControllerConfig,
    ObjectMissing,
    Reconciled,
    ReconcileFailed,
    ReconcileResult,
    reconcile_reason,
)
from .events import Apply, Delete, InitApply, Object
from .leader import LeaderElector
from .metrics import ControllerMetrics
from .scheduler import Scheduler

__all__ = ["DEFAULT_WORKERS", "Run", "RunPlan", "Trigger"]

log = logging.getLogger("rxkube.controller")

DEFAULT_WORKERS = 8
"""Worker threads for a plain-function reconcile when no concurrency limit is set."""

_READY_POLL = 0.1
"""How often the controller checks stores that are not ready yet."""

_JOIN_TIMEOUT = 5.0
"""How long a stopping controller waits for its idle worker threads to end."""

_REASON_RECONCILE_ALL = "reconcile all requested"
_REASON_REQUEUE = "reconciler requested retry"
_REASON_ERROR_POLICY = "error policy requested retry"


# -- triggers ---------------------------------------------------------------------------


def _object_of(item: Any) -> Object | None:
    """The object of a trigger item: an object itself, or the object of a watch event."""
    if isinstance(item, dict):
        return item
    if isinstance(item, Apply | InitApply | Delete):
        return item.obj
    return None


@dataclass(frozen=True, slots=True)
class Trigger:
    """A stream of items, each mapped to the objects to reconcile and why."""

    source: Observable[Any]
    refs: Callable[[Object], list[ObjectRef]]
    reason: Callable[[Object], str]
    main: bool = False


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What one run needs from the controller that starts it (see ``Controller.run``)."""

    name: str
    config: ControllerConfig
    metrics: ControllerMetrics
    store: Store
    stores: list[Store]
    triggers: list[Trigger]
    reconcile_all: list[Observable[Any]]
    key: Callable[[ObjectRef], ObjectRef]
    """The scheduler key of a requested object (the reconciled kind filled in)."""
    qualified: Callable[[ObjectRef], ObjectRef]
    """The reference of a key for results and logs."""
    stopped: Callable[[], None]
    """Called once the run has ended, so the controller may run again."""


@dataclass(frozen=True, slots=True)
class _Request:
    refs: list[ObjectRef]
    reason: str


@dataclass(frozen=True, slots=True)
class _ReconcileAll:
    pass


@dataclass(frozen=True, slots=True)
class _Job:
    key: ObjectRef  # the scheduler's key
    ref: ObjectRef  # the object's own, for results and logs
    reason: str
    obj: Object


@dataclass(frozen=True, slots=True)
class _Done:
    key: ObjectRef
    result: Reconciled | ReconcileFailed


@dataclass(frozen=True, slots=True)
class _Stop:
    error: Exception | None = None
    silent: bool = False  # disposed: emit nothing more
    completed: bool = False  # the main stream completed


@dataclass(frozen=True, slots=True)
class _Wake:
    pass


_Message: TypeAlias = _Request | _ReconcileAll | _Done | _Stop | _Wake


class Run:
    """One subscription of ``Controller.run``: triggers in, the loop thread, workers out."""

    def __init__(
        self,
        plan: RunPlan,
        reconcile: Callable[[Object, Any], Any],
        error_policy: Callable[[Object, Exception, Any], Action],
        context: Any,
        observer: abc.ObserverBase[ReconcileResult],
        *,
        is_async: bool,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        cfg = plan.config
        self._plan = plan
        self._name = plan.name
        self._reconcile = reconcile
        self._error_policy = error_policy
        self._context = context
        self._observer = observer
        self._metrics = plan.metrics
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._subscriptions: list[abc.DisposableBase] = []
        self._subscriptions_lock = threading.Lock()
        self._unsubscribed = False
        self._leader: LeaderElector | None = None
        self._ready = False
        self._stopping = False
        self._stop_requests = 0
        self._error: Exception | None = None
        # The reconciles running, by key; with the future of a coroutine, to cancel it.
        self._in_flight: dict[ObjectRef, Future[None] | None] = {}
        self._loop_thread: LoopThread | None = None
        self._loop = loop
        self._workers: Workers | None = None
        limit = cfg.concurrency
        if is_async:
            if loop is None:
                self._loop_thread = LoopThread(f"rxkube-controller-loop-{self._name}")
                self._loop = self._loop_thread.loop
        else:
            limit = limit or DEFAULT_WORKERS
            self._workers = Workers(limit, f"rxkube-reconcile-{self._name}")
        self._scheduler: Scheduler[ObjectRef] = Scheduler(debounce=cfg.debounce, concurrency=limit)
        self._thread = threading.Thread(
            target=self._main, name=f"rxkube-controller-{self._name}", daemon=True
        )

    # -- wiring, on the subscribing thread ------------------------------------------------

    def start(self, stop: Observable[Any] | None, leader: LeaderElector | None) -> None:
        put = self._inbox.put
        self._leader = leader
        self._thread.start()
        for trigger in self._plan.triggers:
            self._subscribe(trigger.source, self._on_item(trigger), main=trigger.main)
        for source in self._plan.reconcile_all:
            self._subscribe(source, lambda _item: put(_ReconcileAll()))
        if leader is not None:
            self._subscribe(leader.leadership(), lambda _leading: put(_Wake()), quiet=True)
        if stop is not None:
            self._subscribe(stop, lambda _item: put(_Stop()), quiet=True)

    def _subscribe(
        self,
        source: Observable[Any],
        on_next: Callable[[Any], None],
        *,
        main: bool = False,
        quiet: bool = False,
    ) -> None:
        put = self._inbox.put

        def on_error(exc: Exception) -> None:
            if not quiet:
                put(_Stop(error=exc))

        def on_completed() -> None:
            if main:
                put(_Stop(completed=True))

        subscription = source.subscribe(on_next, on_error, on_completed)
        with self._subscriptions_lock:
            if not self._unsubscribed:
                self._subscriptions.append(subscription)
                return
        subscription.dispose()  # the run ended while this was being subscribed

    def _on_item(self, trigger: Trigger) -> Callable[[Any], None]:
        put = self._inbox.put

        def on_next(item: Any) -> None:
            obj = _object_of(item)
            if obj is None:
                return
            try:
                refs = trigger.refs(obj)
            except Exception:
                log.exception("controller %s: mapping %s failed", self._name, _describe(obj))
                return
            if refs:
                put(_Request(refs, trigger.reason(obj)))

        return on_next

    def dispose(self) -> None:
        self._inbox.put(_Stop(silent=True))
        self._unsubscribe()

    def _unsubscribe(self) -> None:
        with self._subscriptions_lock:
            self._unsubscribed = True
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.dispose()

    # -- the loop thread ------------------------------------------------------------------

    def _main(self) -> None:
        terminal: Callable[[], None] | None = None
        try:
            if self._loop_forever():
                error = self._error
                terminal = (
                    self._observer.on_completed
                    if error is None
                    else functools.partial(self._observer.on_error, error)
                )
        except Exception as exc:
            log.exception("controller %s failed", self._name)
            terminal = functools.partial(self._observer.on_error, exc)
        finally:
            self._unsubscribe()
            graceful = not self._in_flight
            for future in self._in_flight.values():
                if future is not None:
                    future.cancel()
            if self._workers is not None:
                self._workers.shutdown(wait=_JOIN_TIMEOUT if graceful else 0.0)
            if self._loop_thread is not None:
                self._loop_thread.stop(wait=_JOIN_TIMEOUT if graceful else 0.0)
            self._plan.stopped()
        if terminal is not None:
            terminal()

    def _loop_forever(self) -> bool:
        """Run until stopped; return whether to emit the end (``False``: disposed)."""
        inbox = self._inbox
        while True:
            try:
                message: _Message | None = inbox.get(timeout=self._timeout())
            except queue.Empty:
                message = None
            while message is not None:
                end = self._handle(message)
                if end is not None:
                    return end
                try:
                    message = inbox.get_nowait()
                except queue.Empty:
                    message = None
            if self._stopping and not self._in_flight:
                return True
            self._dispatch()
            self._metrics.queue(self._scheduler.queued)

    def _timeout(self) -> float:
        if self._stopping or not self._leading():
            return IDLE_WAKEUP  # a change of leadership wakes the loop
        if not self._ready:
            return _READY_POLL
        due = self._scheduler.next_due()
        if due is None:
            return IDLE_WAKEUP
        return min(IDLE_WAKEUP, max(0.0, due - time.monotonic()))

    def _handle(self, message: _Message) -> bool | None:
        """Act on one message; a bool ends the loop at once (see ``_loop_forever``)."""
        now = time.monotonic()
        match message:
            case _Request(refs, reason):
                if not self._stopping:
                    for ref in refs:
                        self._scheduler.request(self._plan.key(ref), now, reason=reason)
            case _ReconcileAll():
                if not self._stopping:
                    for obj in self._plan.store.state(copy=False):
                        key = self._plan.key(ObjectRef.from_obj(obj))
                        self._scheduler.request(key, now, reason=_REASON_RECONCILE_ALL)
            case _Done(key, result):
                self._finished(key, result, now)
            case _Stop(error, silent, completed):
                if silent:
                    return False
                self._stop_requests += 1
                if error is not None and self._error is None:
                    self._error = error
                    log.error("controller %s: a trigger stream failed: %s", self._name, error)
                if not self._stopping:
                    how = "its stream completed" if completed else "asked to"
                    log.info("controller %s stopping (%s)", self._name, how)
                    self._stopping = True
                    self._scheduler.clear()
                    self._unsubscribe()
                elif self._stop_requests > 1 and error is None and not completed:
                    log.warning(
                        "controller %s: stopping at once, abandoning %d running reconciles",
                        self._name,
                        len(self._in_flight),
                    )
                    for _ in self._in_flight:
                        self._metrics.abandoned()
                    return True
            case _Wake():
                pass
        return None

    def _leading(self) -> bool:
        return self._leader is None or self._leader.is_leader

    def _dispatch(self) -> None:
        if self._stopping or not self._is_ready() or not self._leading():
            return
        for due in self._scheduler.pop_due(time.monotonic()):
            obj = self._plan.store.get(due.key)
            if obj is None:
                self._scheduler.done(due.key)
                self._metrics.missing()
                ref = self._plan.qualified(due.key)
                log.info("controller %s: %s is gone (%s)", self._name, ref, due.reason)
                self._emit(ObjectMissing(ref, due.reason))
                continue
            ref = ObjectRef.from_obj(obj)
            log.debug("controller %s: reconciling %s (%s)", self._name, ref, due.reason)
            self._metrics.started()
            self._in_flight[due.key] = self._submit(_Job(due.key, ref, due.reason, obj))

    def _is_ready(self) -> bool:
        if not self._ready:
            self._ready = all(reader.is_ready() for reader in self._plan.stores)
        return self._ready

    def _finished(self, key: ObjectRef, result: Reconciled | ReconcileFailed, now: float) -> None:
        if key not in self._in_flight:
            return  # abandoned by a forced stop
        del self._in_flight[key]
        self._scheduler.done(key)
        requeue = result.action.requeue_after
        failed = isinstance(result, ReconcileFailed)
        self._metrics.finished(result.duration, error=failed, requeue=requeue is not None)
        if requeue is not None and not self._stopping:
            reason = _REASON_ERROR_POLICY if failed else _REASON_REQUEUE
            self._scheduler.request(key, now, delay=requeue, reason=reason)
        self._emit(result)

    def _emit(self, result: ReconcileResult) -> None:
        try:
            self._observer.on_next(result)
        except Exception:
            log.exception("controller %s: a results subscriber raised; stopping", self._name)
            self._inbox.put(_Stop(silent=True))

    # -- reconciling ------------------------------------------------------------------------

    def _submit(self, job: _Job) -> Future[None] | None:
        if self._workers is not None:
            self._workers.submit(lambda: self._reconcile_sync(job))
            return None
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(self._reconcile_async(job), self._loop)

    def _reconcile_sync(self, job: _Job) -> None:
        async def call() -> Any:
            return self._reconcile(job.obj, self._context)

        token = reconcile_reason.set(job.reason)
        try:
            _run_now(self._reconciling(job, call))
        finally:
            reconcile_reason.reset(token)

    async def _reconcile_async(self, job: _Job) -> None:
        reconcile_reason.set(job.reason)  # in this task's own context
        await self._reconciling(job, lambda: self._reconcile(job.obj, self._context))

    async def _reconciling(self, job: _Job, call: Callable[[], Awaitable[Any]]) -> None:
        """Run one reconcile, either kind, and hand its result to the loop thread."""
        started = time.monotonic()
        action: Any = None
        error: Exception | None
        try:
            action = await call()
            error = None if isinstance(action, Action) else _not_an_action(action)
        except Exception as exc:
            error = exc
        duration = time.monotonic() - started
        self._inbox.put(_Done(job.key, self._result(job, action, error, duration)))

    def _result(
        self, job: _Job, action: Any, error: Exception | None, duration: float
    ) -> Reconciled | ReconcileFailed:
        if error is None:
            return Reconciled(job.ref, action, job.reason, duration)
        log.warning("controller %s: reconcile of %s failed: %s", self._name, job.ref, error)
        try:
            policy = self._error_policy(job.obj, error, self._context)
            if not isinstance(policy, Action):
                raise _not_an_action(policy)
        except Exception:
            log.exception(
                "controller %s: error_policy raised for %s; it is reconciled again on its next "
                "change",
                self._name,
                job.ref,
            )
            policy = Action.await_change()
        return ReconcileFailed(job.ref, error, policy, job.reason, duration)


def _run_now(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never suspends (a plain-function reconcile's) to its end, here."""
    with contextlib.suppress(StopIteration):
        coroutine.send(None)


def _not_an_action(value: object) -> TypeError:
    return TypeError(f"expected an Action, got {type(value).__name__}: {value!r:.100}")


def _describe(obj: Object) -> str:
    try:
        return str(ObjectRef.from_obj(obj))
    except Exception:
        return repr(obj)[:100]
