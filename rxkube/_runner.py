"""One run of a controller: triggers in, the loop thread that schedules, reconciles out.

Why one file this long: ``Run`` is one thread's state machine (triggers, the scheduler,
retries, timeouts, resync, shutdown); its parts share that thread's state and its one
lock, and read best together.

``Controller.run`` (the builder, in ``rxkube.controller``) hands a ``RunPlan`` to a ``Run``
per subscription. The run's thread owns the scheduler and emits the results; reconciles
run on ``rxkube._executors``' workers or an asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from reactivex import Observable, abc

from . import _closing
from ._cache import Store
from ._delivery import Handover, fail_consumer
from ._executors import LoopThread, Workers
from ._futures import call_on
from ._object_ref import ObjectRef
from ._results import (
    Action,
    ControllerConfig,
    ControllerHealth,
    ObjectMissing,
    Reconciled,
    ReconcileFailed,
    ReconcileInterrupted,
    ReconcileResult,
    ReconcileTimeout,
    reconcile_reason,
)
from ._views import PARTIAL_API_VERSION, PARTIAL_KIND
from .events import Apply, Delete, InitApply, Object
from .leader import LeaderElector
from .metrics import ControllerMetrics
from .ratelimit import RateLimiter
from .scheduler import Scheduler

__all__ = ["DEFAULT_WORKERS", "Relation", "Run", "RunPlan", "Trigger"]

log = logging.getLogger("rxkube.controller")

DEFAULT_WORKERS = 8
"""Worker threads for a plain-function reconcile when no concurrency limit is set."""

INBOX_CAPACITY = 1024
"""Trigger messages queued for the loop before a trigger's thread (a watch) waits."""

_JOIN_TIMEOUT = 5.0
"""How long a stopping controller waits for its idle worker threads to end."""

_REASON_RECONCILE_ALL = "reconcile all requested"
_REASON_REQUEUE = "reconciler requested retry"
_REASON_ERROR_POLICY = "error policy requested retry"
_REASON_RESYNC = "periodic resync"

_METADATA_KIND = (PARTIAL_KIND, PARTIAL_API_VERSION.rpartition("/")[0])
"""What a metadata-only object's ref says its kind and group are (``meta.k8s.io``)."""


# -- triggers ---------------------------------------------------------------------------


def _object_of(item: Any) -> Object | None:
    """The object of a trigger item: an object itself, or the object of a watch event."""
    if isinstance(item, dict):
        return item
    if isinstance(item, Apply | InitApply | Delete):
        return item.obj
    return None


Relation: TypeAlias = Literal["own", "owners", "mapped"]
"""What a trigger's refs are: the controller's own objects (they teach the run their kind
when the Api did not), owner references (only those of the controller's kind count), or
whatever a mapper chose."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """A stream of items, each mapped to the objects to reconcile and why.

    ``refs`` and ``reason`` get the object of each item (items that are neither objects
    nor watch events are skipped), or with ``raw`` the item itself: a ``TypeError`` from
    ``refs`` then fails the run, as the stream carried something it must not. They run
    on the stream's thread; what the refs mean (``relation``) is worked out on the loop.
    """

    source: Observable[Any]
    refs: Callable[[Any], list[ObjectRef]]
    reason: Callable[[Any], str]
    main: bool = False
    raw: bool = False
    relation: Relation = "mapped"


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
    kind: tuple[str, str] | None
    """The kind and group of the reconciled objects, if known before the run."""
    namespaced: bool | None
    """Whether they are namespaced, if known before the run."""
    stopped: Callable[[Exception | None], None]
    """Called once the run has ended (with its error, if any), so the controller may run again."""


@dataclass(frozen=True, slots=True)
class _Request:
    refs: list[ObjectRef]
    reason: str
    relation: Relation = "mapped"


@dataclass(frozen=True, slots=True)
class _ReconcileAll:
    pass


@dataclass(frozen=True, slots=True)
class _Job:
    key: ObjectRef  # the scheduler's key
    ref: ObjectRef  # the object's own, for results and logs
    reason: str
    obj: Object
    attempt: int  # this object's failures in a row so far, plus one
    term: _Term  # its part of the leader's term
    hold: object  # the leader's token for it (see Run._hold)


@dataclass(slots=True, eq=False)
class _Term:
    """A coroutine reconcile's part of its leader's term: the asyncio loop's thread's alone.

    Lost when leadership ends while it runs: its task is cancelled then, or, not yet
    begun, ends as soon as it begins.
    """

    task: asyncio.Task[None] | None = None
    lost: bool = False


_UNGUARDED = object()
"""The hold of a reconcile when no leader guards the run."""


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


@dataclass(frozen=True, slots=True)
class _Ping:
    sent: float  # when a health probe sent it


_Message: TypeAlias = _Request | _ReconcileAll | _Done | _Stop | _Wake | _Ping


class Run:
    """One subscription of ``Controller.run``: triggers in, the loop thread, workers out."""

    def __init__(
        self,
        plan: RunPlan,
        reconcile: Callable[[Object, Any], Any],
        error_policy: Callable[..., Action] | None,
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
        self._policy_takes_attempt = error_policy is not None and _takes_attempt(error_policy)
        # The default error policy's limiter; policies run on worker threads, hence the lock.
        self._limiter = RateLimiter()
        self._limiter_lock = threading.Lock()
        self._context = context
        self._observer = observer
        self._metrics = plan.metrics
        # Everything reaches the loop thread through this one hand-over. Triggers wait
        # when it is full (backpressure on their watches); the loop's own messages, the
        # workers' results (one per job), stops, pings and wake-ups never wait: their
        # number is bounded otherwise, and some are sent under a lock.
        self._inbox: Handover[_Message] = Handover(INBOX_CAPACITY)
        self._unlisten: list[Callable[[], None]] = []
        self._subscriptions: list[abc.DisposableBase] = []
        self._subscriptions_lock = threading.Lock()
        self._unsubscribed = False
        self._leader: LeaderElector | None = None
        self._ready = False
        self._stopping = False
        self._stop_requests = 0
        self._error: Exception | None = None
        self._consumer_error: Exception | None = None  # what the results subscriber raised
        # The reconciles running, by key.
        self._in_flight: set[ObjectRef] = set()
        # Failures in a row per object (absent: none), the attempt number's source.
        self._attempts: dict[ObjectRef, int] = {}
        # Plain-function reconciles with a timeout: their deadline and job; and those
        # reported as timed out, still running, with the requeue their policy asked for.
        self._deadlines: dict[ObjectRef, tuple[float, _Job]] = {}
        self._timed_out: dict[ObjectRef, float | None] = {}
        self._next_resync: float | None = None
        # Health probes' pings: the last one sent and the last one the loop answered.
        self._ping_lock = threading.Lock()
        self._ping_sent: float | None = None
        self._ping_answered = 0.0
        self._loop_thread: LoopThread | None = None
        self._loop = loop
        # The coroutine reconciles' tasks, touched on the loop's thread only; once cancelled
        # (the run ending), no new one starts.
        self._tasks: set[asyncio.Task[None]] = set()
        self._tasks_cancelled = False
        self._ended: asyncio.Future[None] | None = None
        self._workers: Workers | None = None
        limit = cfg.concurrency
        if is_async:
            if loop is None:
                self._loop_thread = LoopThread(f"rxkube-controller-loop-{self._name}")
                self._loop = self._loop_thread.loop
            else:
                # The subscriber's loop: an awaited close there waits for our tasks to end.
                self._ended = loop.create_future()
                _closing.on_close(self._settled)
        else:
            limit = limit or DEFAULT_WORKERS
            self._workers = Workers(limit, f"rxkube-reconcile-{self._name}")
        # The loop thread's alone, like everything the loop reads: the reconciled kind,
        # learned from the first of the run's own objects that names it, if the plan
        # does not know it.
        self._kind = plan.kind
        self._namespaced = plan.namespaced
        self._scheduler: Scheduler[ObjectRef] = Scheduler(debounce=cfg.debounce, concurrency=limit)
        self._thread = threading.Thread(
            target=self._main, name=f"rxkube-controller-{self._name}", daemon=True
        )

    # -- wiring, on the subscribing thread ------------------------------------------------

    def start(self, stop: Observable[Any] | None, leader: LeaderElector | None) -> None:
        put = self._inbox.put
        self._leader = leader
        # A store turning ready, ending a relist, or its writer stopping wakes the loop:
        # no polling.
        self._unlisten = [
            store._listen(functools.partial(put, _Wake(), wait=False))
            for store in self._plan.stores
        ]
        self._thread.start()
        for trigger in self._plan.triggers:
            self._subscribe(trigger.source, self._on_item(trigger), main=trigger.main)
        for source in self._plan.reconcile_all:
            self._subscribe(source, lambda _item: put(_ReconcileAll()))
        if leader is not None:
            # An elector that failed (a bug, not a failed attempt) fails the run with it:
            # following it, this run would never reconcile again.
            self._subscribe(leader.leadership(), lambda _leading: put(_Wake(), wait=False))
        if stop is not None:
            self._subscribe(stop, lambda _item: put(_Stop(), wait=False), quiet=True)

    def _subscribe(
        self,
        source: Observable[Any],
        on_next: Callable[[Any], object],
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

        def on_item(item: Any) -> None:
            on_next(item)

        subscription = source.subscribe(on_item, on_error, on_completed)
        with self._subscriptions_lock:
            if not self._unsubscribed:
                self._subscriptions.append(subscription)
                return
        subscription.dispose()  # the run ended while this was being subscribed

    def _on_item(self, trigger: Trigger) -> Callable[[Any], None]:
        put = self._inbox.put

        def on_next(item: Any) -> None:
            if trigger.raw:
                try:
                    refs = trigger.refs(item)
                except TypeError as exc:
                    put(_Stop(error=exc))
                    return
                put(_Request(refs, trigger.reason(item), trigger.relation))
                return
            obj = _object_of(item)
            if obj is None:
                return
            try:
                refs = trigger.refs(obj)
            except Exception:
                log.exception("controller %s: mapping %s failed", self._name, _describe(obj))
                return
            if refs:
                put(_Request(refs, trigger.reason(obj), trigger.relation))

        return on_next

    def dispose(self) -> None:
        self._inbox.put(_Stop(silent=True), wait=False)
        self._unsubscribe()
        if self._loop is not None:
            # At once when disposed on the loop (leaving an ``async for``), so the tasks
            # end before the code after it runs on, not when the loop thread gets to it.
            call_on(self._loop, self._cancel_tasks)

    def health(self) -> ControllerHealth:
        """The run's health; each call also pings the loop (answered on its thread)."""
        now = time.monotonic()
        with self._ping_lock:
            sent = self._ping_sent
            if sent is None or self._ping_answered >= sent:
                self._ping_sent = now
                self._inbox.put(_Ping(now), wait=False)
                lag = 0.0
            else:
                lag = now - sent
        return ControllerHealth(True, self._stopping, None, lag)

    def _unsubscribe(self) -> None:
        with self._subscriptions_lock:
            self._unsubscribed = True
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.dispose()

    # -- the loop thread ------------------------------------------------------------------

    def _main(self) -> None:
        self._inbox.consumer_thread = threading.get_ident()
        terminal: Callable[[], None] | None = None
        try:
            if self._loop_forever():
                error = self._error
                terminal = (
                    self._observer.on_completed
                    if error is None
                    else functools.partial(self._observer.on_error, error)
                )
            if self._consumer_error is not None:
                terminal = functools.partial(
                    fail_consumer,
                    self._observer,
                    f"the results subscriber of controller {self._name}",
                    self._consumer_error,
                )
        except Exception as exc:
            log.exception("controller %s failed", self._name)
            self._error = exc
            terminal = functools.partial(self._observer.on_error, exc)
        finally:
            self._inbox.close()  # nothing takes from it any more: release its producers
            for unlisten in self._unlisten:
                unlisten()
            self._unsubscribe()
            graceful = not self._in_flight
            if self._loop is not None:
                call_on(self._loop, self._end_tasks)
            if self._workers is not None:
                self._workers.shutdown(wait=_JOIN_TIMEOUT if graceful else 0.0)
            if self._loop_thread is not None:
                self._loop_thread.stop(wait=_JOIN_TIMEOUT if graceful else 0.0)
            self._plan.stopped(self._error)
        if terminal is not None:
            terminal()

    def _loop_forever(self) -> bool:
        """Run until stopped; return whether to emit the end (``False``: disposed)."""
        inbox = self._inbox
        while True:
            # Woken by a message, or when the next timer (a requeue, a resync, a reconcile's
            # deadline) is due: a timed wait here is a timer, not a safety net.
            for message in inbox.take(block=True, timeout=self._timeout()):
                end = self._handle(message)
                if end is not None:
                    return end
            self._expire(time.monotonic())
            # Timed-out plain reconciles cannot be waited for: they may never return.
            if self._stopping and self._in_flight <= self._timed_out.keys():
                return True
            self._resync(time.monotonic())
            self._dispatch()
            self._metrics.queue(self._scheduler.queued)

    def _timeout(self) -> float | None:
        """Seconds until the next timer is due; ``None``: only a message can change anything.

        Every other change arrives as a message: a trigger, a result, a stop, a store
        turning ready or ending a relist (``Store._listen``), a change of leadership.
        """
        dues = [d for d, _ in self._deadlines.values()]
        if not self._stopping and self._is_ready() and self._leading():
            dues += [d for d in (self._scheduler.next_due(), self._next_resync) if d is not None]
        if not dues:
            return None
        return max(0.0, min(dues) - time.monotonic())

    def _expire(self, now: float) -> None:
        """Report the plain reconciles past their deadline as failed (they keep running)."""
        for key, (deadline, job) in list(self._deadlines.items()):
            if deadline > now:
                continue
            del self._deadlines[key]
            timeout = self._plan.config.reconcile_timeout
            result = self._failure(
                job, _timeout_error(job, timeout), now - deadline + (timeout or 0)
            )
            self._timed_out[key] = None if self._stopping else result.action.requeue_after
            self._count_failure(key, result)
            self._emit(result)

    def _resync(self, now: float) -> None:
        period = self._plan.config.resync
        if period is None or self._stopping or not self._is_ready() or not self._leading():
            return
        if self._next_resync is None:
            self._next_resync = now + period  # the first list reconciled everything
            return
        if now < self._next_resync:
            return
        self._next_resync = max(self._next_resync + period, now)
        # Each object at a random moment of the coming period: once per period, spread.
        for obj in self._plan.store.state():
            key = self._key(ObjectRef.from_obj(obj))
            delay = random.random() * period
            self._scheduler.request(key, now, delay=delay, reason=_REASON_RESYNC)

    def _handle(self, message: _Message) -> bool | None:
        """Act on one message; a bool ends the loop at once (see ``_loop_forever``)."""
        now = time.monotonic()
        match message:
            case _Request(refs, reason, relation):
                if not self._stopping:
                    for ref in self._requested(refs, relation):
                        self._scheduler.request(self._key(ref), now, reason=reason)
            case _ReconcileAll():
                if not self._stopping:
                    for obj in self._plan.store.state(copy=False):
                        key = self._key(ObjectRef.from_obj(obj))
                        self._scheduler.request(key, now, reason=_REASON_RECONCILE_ALL)
            case _Done(key, result):
                self._finished(key, result, now)
            case _Stop(error, silent, completed):
                if silent:
                    return False
                self._stop_requests += 1
                if error is not None and self._error is None:
                    self._error = error
                    log.error("controller %s: a trigger stream failed: %s", self._name, str(error))
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
            case _Ping(sent):
                self._ping_answered = sent
        return None

    def _requested(self, refs: list[ObjectRef], relation: Relation) -> list[ObjectRef]:
        """The refs of a request that name objects of the controller's kind."""
        if relation == "own":
            if self._namespaced is None and refs:
                self._namespaced = refs[0].namespace is not None
            if self._kind is None:
                for ref in refs:
                    # A metadata-only object names the kind of its shape, not its own: no
                    # owner reference has it, and learning it would drop every one.
                    if ref.kind and (ref.kind, ref.group) != _METADATA_KIND:
                        self._kind = (ref.kind, ref.group)  # learned once
                        break
            return refs
        if relation == "owners" and self._kind is not None:
            return [ref for ref in refs if (ref.kind, ref.group) == self._kind]
        return refs

    def _key(self, ref: ObjectRef) -> ObjectRef:
        """The scheduler's key for a requested object: name and namespace, as stored.

        One controller reconciles one kind, so kind and group are left out: a ref from a
        mapper without them and the object's own ref must be the same key, or the object
        could be reconciled twice at once.
        """
        if self._namespaced is False:
            return ObjectRef(ref.name)
        obj = self._plan.store.get(ref.name, ref.namespace)
        if obj is not None:
            return ObjectRef(ref.name, (obj.get("metadata") or {}).get("namespace"))
        return ObjectRef(ref.name, ref.namespace)

    def _qualified(self, ref: ObjectRef) -> ObjectRef:
        """A key or ref with the controller's kind and group, for results and logs.

        Without that kind known, a metadata-only object's ``PartialObjectMetadata`` is left
        out: it is not what the object is.
        """
        if self._kind is not None:
            return ObjectRef(ref.name, ref.namespace, *self._kind)
        if (ref.kind, ref.group) == _METADATA_KIND:
            return ObjectRef(ref.name, ref.namespace)
        return ref

    def _leading(self) -> bool:
        return self._leader is None or self._leader._may_start()

    def _hold(self, lost: Callable[[], object]) -> object | None:
        """A reconcile's hold on the leader's Lease, if it may start (``None``: it may not).

        A stopping elector releases its Lease only once every reconcile it counted has
        ended (``_unhold``), also those past their timeout that the run no longer waits
        for; ``lost`` is called if leadership ends while it runs.
        """
        return _UNGUARDED if self._leader is None else self._leader._hold(lost)

    def _unhold(self, job: _Job) -> None:
        if self._leader is not None:
            self._leader._unhold(job.hold)

    def _lost(self, ref: ObjectRef, term: _Term) -> None:
        """Leadership ended while the reconcile of ``ref`` runs (on the elector's thread).

        What its Lease guarded must stop with it, as client-go's users stop in
        ``OnStoppedLeading``: a coroutine is cancelled; a plain function cannot be.
        """
        if self._loop is None:
            log.warning(
                "controller %s: the reconcile of %s runs on after this replica stopped leading;"
                " a plain function cannot be interrupted, and must end within lease_duration -"
                " renew_deadline",
                self._name,
                ref,
            )
            return
        call_on(self._loop, self._cancel_lost, term)

    def _dispatch(self) -> None:
        if self._stopping or not self._is_ready() or not self._leading():
            return
        now = time.monotonic()
        for due in self._scheduler.pop_due(now):
            obj = self._plan.store.get(due.key)
            if obj is None:
                self._scheduler.done(due.key)
                self._attempts.pop(due.key, None)
                self._metrics.missing()
                ref = self._qualified(due.key)
                log.info("controller %s: %s is gone (%s)", self._name, ref, due.reason)
                self._emit(ObjectMissing(ref, due.reason))
                continue
            ref = self._qualified(ObjectRef.from_obj(obj))
            term = _Term()
            hold = self._hold(functools.partial(self._lost, ref, term))
            if hold is None:
                # The elector began to stop since _leading(): the request stays queued.
                self._scheduler.done(due.key)
                self._scheduler.request(due.key, now, reason=due.reason)
                continue
            log.debug("controller %s: reconciling %s (%s)", self._name, ref, due.reason)
            self._metrics.started()
            attempt = self._attempts.get(due.key, 0) + 1
            job = _Job(due.key, ref, due.reason, obj, attempt, term, hold)
            timeout = self._plan.config.reconcile_timeout
            if timeout is not None and self._workers is not None:
                self._deadlines[due.key] = (time.monotonic() + timeout, job)
            self._in_flight.add(due.key)
            self._submit(job)

    def _is_ready(self) -> bool:
        """Whether reconciles may start: every store holds a complete list, and none is
        amid a relist.

        During a relist the listed objects' requests arrive page by page while the store
        still holds what it held before; a reconcile started then would read the old
        object, and nothing would ask again after the swap. Held until the swap (which
        wakes the loop), the requests read what the relist brought.
        """
        if not self._ready:
            self._ready = all(reader.is_ready() for reader in self._plan.stores)
        return self._ready and not any(reader._amid_relist() for reader in self._plan.stores)

    def _finished(self, key: ObjectRef, result: Reconciled | ReconcileFailed, now: float) -> None:
        if key not in self._in_flight:
            return  # abandoned by a forced stop
        self._in_flight.remove(key)
        self._deadlines.pop(key, None)
        self._scheduler.done(key)
        if key in self._timed_out:
            # Reported as failed at its deadline; only its retry is still due.
            log.warning(
                "controller %s: the reconcile of %s returned after its timeout; result dropped",
                self._name,
                result.ref,
            )
            late_requeue = self._timed_out.pop(key)
            if late_requeue is not None and not self._stopping:
                self._scheduler.request(key, now, delay=late_requeue, reason=_REASON_ERROR_POLICY)
            return
        requeue = result.action.requeue_after
        if isinstance(result, ReconcileFailed):
            self._count_failure(key, result)
        else:
            self._attempts.pop(key, None)
            self._metrics.finished(result.duration, error=False, requeue=requeue is not None)
        if requeue is not None and not self._stopping:
            reason = (
                _REASON_ERROR_POLICY if isinstance(result, ReconcileFailed) else _REASON_REQUEUE
            )
            self._scheduler.request(key, now, delay=requeue, reason=reason)
        self._emit(result)

    def _count_failure(self, key: ObjectRef, result: ReconcileFailed) -> None:
        self._attempts[key] = result.attempt
        requeue = result.action.requeue_after is not None
        self._metrics.finished(result.duration, error=True, requeue=requeue)

    def _emit(self, result: ReconcileResult) -> None:
        if self._consumer_error is not None:
            return
        try:
            self._observer.on_next(result)
        except Exception as exc:
            # The policy of every seam: stop the upstream (the triggers, the reconciles),
            # then tell the subscriber with on_error(ConsumerError), from _main.
            self._consumer_error = exc
            self._inbox.put(_Stop(silent=True), wait=False)

    # -- reconciling ------------------------------------------------------------------------

    def _submit(self, job: _Job) -> None:
        if self._workers is not None:
            self._workers.submit(lambda: self._reconcile_sync(job))
            return
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start_task, job)

    # -- the coroutine reconciles' tasks, on the loop's thread --------------------------------

    def _start_task(self, job: _Job) -> None:
        if self._tasks_cancelled:
            self._unhold(job)
            return  # the run has ended: nobody takes its result
        assert self._loop is not None
        task = self._loop.create_task(self._reconcile_async(job))
        job.term.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # Its end, however it comes (cancelled before it began, even): not its body's.
        task.add_done_callback(lambda _task: self._unhold(job))

    def _cancel_lost(self, term: _Term) -> None:
        term.lost = True
        if term.task is not None:
            term.task.cancel(self._stepped_down())

    def _stepped_down(self) -> str:
        assert self._leader is not None
        return f"this replica stopped leading on Lease {self._leader.name}"

    def _cancel_tasks(self) -> None:
        if self._tasks_cancelled:
            return  # once: a second cancel would interrupt a reconcile's own clean-up
        self._tasks_cancelled = True
        for task in self._tasks:
            task.cancel()

    def _end_tasks(self) -> None:
        """The run has ended: cancel its tasks, then let an awaited close wait for them."""
        self._cancel_tasks()
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    async def _settled(self) -> None:
        """Return once the run has ended and its tasks with it (``rxkube._closing``)."""
        assert self._ended is not None
        await self._ended
        # _end_tasks cancelled the tasks as it resolved _ended, and the run's thread had
        # asked for the last one to start before that: what is left is ending.
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _reconcile_sync(self, job: _Job) -> None:
        async def call() -> Any:
            return self._reconcile(job.obj, self._context)

        token = reconcile_reason.set(job.reason)
        try:
            _run_now(self._reconciling(job, call))
        finally:
            reconcile_reason.reset(token)
            self._unhold(job)

    async def _reconcile_async(self, job: _Job) -> None:
        reconcile_reason.set(job.reason)  # in this task's own context
        timeout = self._plan.config.reconcile_timeout

        async def call() -> Any:
            if job.term.lost:  # leadership ended before it began
                raise asyncio.CancelledError(self._stepped_down())
            # A coroutine can be cancelled at its deadline (a plain function cannot:
            # the loop thread reports those, see _expire).
            limit = asyncio.timeout(timeout)
            try:
                async with limit:
                    return await self._reconcile(job.obj, self._context)
            except TimeoutError:
                if limit.expired():
                    raise _timeout_error(job, timeout) from None
                raise

        await self._reconciling(job, call)

    async def _reconciling(self, job: _Job, call: Callable[[], Awaitable[Any]]) -> None:
        """Run one reconcile, either kind, and hand its result to the loop thread.

        However it ends: an object whose result never came would stay running for good
        (never reconciled again, and a graceful stop would wait for it). Only the run's
        own cancellation goes unreported: the run has ended, and takes no more results.
        """
        started = time.monotonic()
        action: Any = None
        error: Exception | None = None
        ended = False
        try:
            action = await call()
            if not isinstance(action, Action):
                error = _not_an_action(action)
        except asyncio.CancelledError as exc:
            # _tasks_cancelled is the loop thread's, and so is a coroutine reconcile.
            ended = self._tasks_cancelled
            if ended:
                raise
            error = _interrupted(job, exc)  # it awaited something that was cancelled
        except Exception as exc:
            error = exc
        except BaseException as exc:
            # KeyboardInterrupt, SystemExit: reported (below), and on up the caller's loop
            # (its asyncio.run ends with it). A worker thread, or the loop the run made,
            # has nothing above to take it: ending it would abandon its other reconciles.
            error = _interrupted(job, exc)
            if self._ended is not None:
                raise
        finally:
            if not ended:
                duration = time.monotonic() - started
                result = self._result(job, action, error, duration)
                self._inbox.put(_Done(job.key, result), wait=False)

    def _result(
        self, job: _Job, action: Any, error: Exception | None, duration: float
    ) -> Reconciled | ReconcileFailed:
        if error is None:
            return Reconciled(job.ref, action, job.reason, duration)
        return self._failure(job, error, duration)

    def _failure(self, job: _Job, error: Exception, duration: float) -> ReconcileFailed:
        log.warning(
            "controller %s: reconcile of %s failed (attempt %d): %s",
            self._name,
            job.ref,
            job.attempt,
            error,
        )
        try:
            policy = self._policy(job, error)
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
        return ReconcileFailed(job.ref, error, policy, job.reason, duration, job.attempt)

    def _policy(self, job: _Job, error: Exception) -> Any:
        if self._error_policy is None:
            with self._limiter_lock:
                delay = self._limiter.delay(job.attempt, time.monotonic())
            return Action.requeue(delay)
        if self._policy_takes_attempt:
            return self._error_policy(job.obj, error, self._context, job.attempt)
        return self._error_policy(job.obj, error, self._context)


def _takes_attempt(policy: Callable[..., Action]) -> bool:
    """Whether an error policy takes a fourth argument, the attempt number."""
    try:
        parameters = inspect.signature(policy).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: the classic three
        return False
    positional = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional += 1
    return positional >= 4


def _timeout_error(job: _Job, timeout: float | None) -> ReconcileTimeout:
    return ReconcileTimeout(f"the reconcile of {job.ref} took longer than {timeout:g} s")


def _interrupted(job: _Job, exc: BaseException) -> ReconcileInterrupted:
    error = ReconcileInterrupted(
        f"the reconcile of {job.ref} ended with {type(exc).__name__}"
        + (f": {exc}" if str(exc) else "")
    )
    error.__cause__ = exc
    return error


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
