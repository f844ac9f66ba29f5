"""The one way events cross a thread or loop boundary: a bounded, serial hand-over.

A :class:`Handover` carries items from producing threads to one consumer:

- **bounded, with one backpressure rule**: a producer that finds ``capacity`` items
  queued or being delivered waits until the consumer has delivered them, so a watch
  thread stops reading its socket and TCP backpressure reaches the server. Only a consumer that chose ``drop=True`` is
  cut off instead (:attr:`Handover.overflowed`). A producer running on the consumer's own
  thread never waits (it would wait for itself); its items are queued beyond the bound.
- **batched, with exact wake-ups**: the consumer takes everything queued at once; a
  producer wakes it only on the empty → non-empty edge (``wake``, or the condition a
  blocking :meth:`Handover.take` waits on), so a burst costs one thread switch, not one
  per item. Nothing polls.
- **serial**: there is one consumer, and it is woken again only after it found the queue
  empty, so two deliveries to one observer never overlap and order is kept (the idea of
  RxPY's ``ScheduledObserver``).
- **closable**: :meth:`Handover.close` (the subscription was disposed) releases every
  waiting producer at once, and further items are refused, so disposal never leaves a
  producer blocked.

Its consumer drives it one of four ways: a thread blocking in :meth:`Handover.take`, a
:class:`ScheduledDrain` on a scheduler, a :class:`LoopDrain` coroutine on an asyncio
loop, or the producing thread itself, at the end of its burst (below), when its item
found the consumer idle (a shared watch's views: no thread switch at all; a thread that
delivers another's items steps aside, :meth:`Handover.step_aside`, once that one waits).
A source's end travels behind its items as an :class:`End`.

A producing thread that reads its input in blocks (a watch reading its socket) can hold
back work until it is about to wait for more: within :func:`burst`, work handed to
:func:`defer` runs at :func:`flush`, which the producer calls before each read that may
wait, and at the end of the burst. A shared store uses it to queue a block's events for
each subscriber in one step and wake it once, instead of once per event. A producer
about to wait for room in a hand-over flushes first, so nothing it holds back can be what
its consumer waits for.

The consumer-exception policy, the same at every seam (RxJava's ``LambdaObserver``): when
the consumer's callback raises, the seam disposes its upstream, then sends the observer
``on_error(ConsumerError)`` chained to the exception (:func:`fail_consumer`). A
``ConsumerError`` is never transient, so ``default_backoff()`` does not retry a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from reactivex import abc

from .errors import ConsumerError

__all__ = [
    "End",
    "Handover",
    "LoopDrain",
    "ScheduledDrain",
    "burst",
    "defer",
    "fail_consumer",
    "flush",
]

_T = TypeVar("_T")

log = logging.getLogger("rxkube")


class _Bursts(threading.local):
    # What this thread's burst holds back (None: no burst is open on this thread).
    deferred: list[Callable[[], None]] | None = None


_bursts = _Bursts()


@contextlib.contextmanager
def burst() -> Iterator[None]:
    """Hold back the work this thread hands to :func:`defer` until :func:`flush` or the end.

    Nested bursts are one: the outermost one flushes.
    """
    if _bursts.deferred is not None:
        yield
        return
    _bursts.deferred = []
    try:
        yield
    finally:
        try:
            flush()
        finally:
            _bursts.deferred = None


def defer(action: Callable[[], None]) -> bool:
    """Run ``action`` at this thread's next :func:`flush`; False if no burst is open.

    The caller runs ``action`` itself when it gets False. Call it once per piece of held
    back work: the burst runs what it was given, as many times.
    """
    deferred = _bursts.deferred
    if deferred is None:
        return False
    deferred.append(action)
    return True


def flush() -> None:
    """Run the work this thread's burst holds back, in order (nothing if there is none)."""
    deferred = _bursts.deferred
    error: BaseException | None = None
    while deferred:  # an action may defer more
        actions = deferred[:]
        deferred.clear()
        for action in actions:
            try:
                action()
            except BaseException as exc:  # the others still run: each owns its work
                error = error or exc
    if error is not None:
        raise error


class Handover(Generic[_T]):
    """A bounded single-consumer queue with edge-triggered wake-ups (see the module doc).

    Args:
        capacity: items queued before a producer waits (or, with ``drop``, overflows).
        wake: called (outside the lock) when an item arrives for an idle consumer;
            ``None`` for a consumer thread that blocks in :meth:`take`.
        drop: overflow instead of making producers wait: the hand-over closes, and
            :attr:`overflowed` tells the consumer why.
        on_stall: called with the seconds waited, every ``STALL_SECONDS``, while a
            producer waits for room (to log who holds it back).
        wake_on_close: also call ``wake`` when the hand-over closes under an idle
            consumer, so that it learns it has ended (and can say why).
        started: False for a consumer that starts later and takes first thing when it
            does: items queued until then do not wake it.
        deliver_here: called, the lock held, by a producer about to wait for room: it
            delivers the consumer's pending batch on the producer's thread when waiting
            there could deadlock (:class:`ScheduledDrain`), returning True with the lock
            held again; False to wait.
    """

    __slots__ = (
        "_deliver_here",
        "_idle",
        "_in_hand",
        "_items",
        "_lock",
        "_not_empty",
        "_not_full",
        "_on_stall",
        "_wake",
        "_wake_on_close",
        "capacity",
        "closed",
        "consumer_thread",
        "drop",
        "overflowed",
        "producers_waiting",
        "waits",
    )

    STALL_SECONDS = 30.0

    def __init__(
        self,
        capacity: int,
        wake: Callable[[], None] | None = None,
        *,
        drop: bool = False,
        on_stall: Callable[[float], None] | None = None,
        wake_on_close: bool = False,
        started: bool = True,
        deliver_here: Callable[[], bool] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"a hand-over needs a capacity of at least 1, not {capacity!r}")
        self.capacity = capacity
        self.drop = drop
        self._wake = wake
        self._wake_on_close = wake_on_close
        self._on_stall = on_stall
        self._deliver_here = deliver_here
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._not_empty = threading.Condition(self._lock)
        self._items: list[_T] = []
        self._in_hand = 0  # the batch the consumer took last: room again at its next take
        self._idle = started  # the consumer found the queue empty: the next item wakes it
        self.closed = False
        """Whether :meth:`close` was called (or a ``drop`` consumer overflowed); set only
        by the hand-over. A plain attribute: consumers read it before each item."""
        self.producers_waiting = 0
        """Producers waiting for room right now."""
        self.waits = 0
        """How many times a producer has had to wait for room."""
        self.overflowed = False
        self.consumer_thread: int | None = None
        """The consumer's thread, once known, or while it delivers (a scheduled drain's):
        its own items never wait."""

    def put(
        self, item: _T, cancelled: Callable[[], bool] | None = None, *, wait: bool = True
    ) -> bool:
        """Queue one item (see :meth:`put_all`).

        ``wait=False`` queues beyond the bound instead of waiting for room: only for
        messages whose number something else bounds (one per job, a stop, a wake-up), sent
        from where waiting could deadlock (under another lock) or must not happen.
        """
        with self._lock:
            if self.closed or (
                len(self._items) + self._in_hand >= self.capacity and (wait or self.drop)
            ):
                return self._put_slowly((item,), cancelled, wait)
            self._items.append(item)
            if not self._idle:
                return True
            self._idle = False
            if self._wake is None:
                self._not_empty.notify()
                return True
        self._call_wake()
        return True

    def put_all(self, items: Iterable[_T], cancelled: Callable[[], bool] | None = None) -> bool:
        """Queue a batch, first waiting while ``capacity`` items are queued.

        The batch is queued whole once there is room, so a batch larger than ``capacity``
        (a list page) goes through. Returns False, queuing nothing, once the hand-over is
        closed (the consumer is gone: the producer should stop), or when ``cancelled()``
        turned true while waiting (see :meth:`wake_producers`).
        """
        with self._lock:
            return self._put_slowly(items, cancelled, True)

    def _put_slowly(
        self, items: Iterable[_T], cancelled: Callable[[], bool] | None, wait: bool
    ) -> bool:
        """Under the lock (released to wake the consumer): :meth:`put_all`."""
        wake = False
        if len(self._items) + self._in_hand >= self.capacity and not self.closed:
            if self.drop:
                self.overflowed = True
                wake = self._close_locked()
            elif (
                wait
                and threading.get_ident() != self.consumer_thread
                and not self._wait_for_room(cancelled)
            ):
                return False
        if not self.closed:
            self._items.extend(items)
            if self._idle and self._items:
                self._idle = False
                if self._wake is None:
                    self._not_empty.notify()
                else:
                    wake = True
        closed = self.closed
        if wake:
            self._lock.release()
            try:
                self._call_wake()
            finally:
                self._lock.acquire()
        return not closed

    def _wait_for_room(self, cancelled: Callable[[], bool] | None) -> bool:
        """Under the lock: wait until there is room; False if cancelled meanwhile."""
        if _bursts.deferred:
            # What this thread holds back goes out before it waits (outside the lock:
            # it queues to other hand-overs).
            self._lock.release()
            try:
                flush()
            finally:
                self._lock.acquire()
            if len(self._items) + self._in_hand < self.capacity or self.closed:
                return True
        self.waits += 1
        self.producers_waiting += 1
        since = time.monotonic()
        try:
            while len(self._items) + self._in_hand >= self.capacity and not self.closed:
                if self._idle and self._wake is not None:
                    # The consumer stepped aside for this producer (step_aside): it
                    # delivers from now on, so it must not wait for itself.
                    self._idle = False
                    self._lock.release()
                    try:
                        self._call_wake()
                    finally:
                        self._lock.acquire()
                    return True
                if self._deliver_here is not None and self._deliver_here():
                    continue
                if cancelled is not None and cancelled():
                    return False
                if self._on_stall is None:
                    self._not_full.wait()
                elif not self._not_full.wait(self.STALL_SECONDS):
                    self._on_stall(time.monotonic() - since)
            return True
        finally:
            self.producers_waiting -= 1

    def full(self) -> bool:
        """Whether a producer would wait now (without the lock: a hint for the only producer)."""
        return len(self._items) + self._in_hand >= self.capacity

    def wait_for_room(self, cancelled: Callable[[], bool] | None = None) -> bool:
        """Wait, before producing, until an item would be queued without waiting.

        For a single producer that must not act before its consumer has room (a writer
        that applies an event to a store only once every subscriber can take it). Returns
        False if the hand-over closed or ``cancelled()`` turned true; a ``drop`` hand-over
        never waits.
        """
        with self._lock:
            if (
                self.drop
                or threading.get_ident() == self.consumer_thread
                or len(self._items) + self._in_hand < self.capacity
            ):
                return not self.closed
            return self._wait_for_room(cancelled) and not self.closed

    def wake_producers(self) -> None:
        """Make waiting producers check their ``cancelled()`` again."""
        with self._lock:
            self._not_full.notify_all()

    def take(self, *, block: bool = False, timeout: float | None = None) -> list[_T]:
        """Everything queued, oldest first; ``[]`` if nothing is (or once closed).

        Taking again also says the previous batch is delivered: until then it counts
        against ``capacity``, so at most ``capacity`` items are queued or being delivered.
        An empty answer makes the consumer idle: the next item wakes it. With ``block``,
        wait for an item (or for :meth:`close`) instead of answering ``[]``, for at most
        ``timeout`` seconds if given: for a consumer with a deadline of its own (a timer
        due), not as a safety net.
        """
        with self._lock:
            if self._in_hand:
                self._in_hand = 0
                if self.producers_waiting:
                    self._not_full.notify_all()
            if block:
                deadline = None if timeout is None else time.monotonic() + timeout
                while not self._items and not self.closed:
                    self._idle = True
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    # A timer far ahead (a requeue in years) is waited for in pieces: a
                    # longer wait overflows the platform's time_t.
                    self._not_empty.wait(None if left is None else min(left, threading.TIMEOUT_MAX))
            items, self._items = self._items, []
            self._in_hand = len(items)
            if not items:
                self._idle = True
            return items

    def step_aside(self) -> bool:
        """Between batches, hand the consumer's part to a producer waiting for room.

        For a hand-over whose ``wake`` delivers on the waking thread (whichever thread
        finds the consumer idle delivers, as a shared watch's view does): a thread that
        delivers another thread's items (a subscriber's first snapshot, then the watch's
        live events) gives way as soon as the producer of those items waits, instead of
        staying to deliver a live stream. Returns True if it gave way: the batch it took is
        delivered, the consumer is idle, and the waiting producer calls ``wake``.
        """
        with self._lock:
            if not self.producers_waiting or self.closed or self._wake is None:
                return False
            self._in_hand = 0
            self._idle = True
            self._not_full.notify_all()
            return True

    def backlog(self) -> int:
        """Items queued or being delivered (taken, and not yet followed by another take)."""
        return len(self._items) + self._in_hand

    def close(self) -> None:
        """Refuse further items, drop those queued, release every waiting producer.

        A blocking :meth:`take` returns ``[]``; with ``wake_on_close``, an idle consumer is
        woken to see that it has ended.
        """
        with self._lock:
            wake = self._close_locked()
        if wake:
            self._call_wake()

    def _close_locked(self) -> bool:
        """Close; whether the caller must then wake the consumer (outside the lock)."""
        if self.closed:
            return False
        self.closed = True
        self._items = []
        self._in_hand = 0
        self._not_full.notify_all()
        self._not_empty.notify_all()
        if not (self._idle and self._wake_on_close and self._wake is not None):
            return False
        self._idle = False
        return True

    def _call_wake(self) -> None:
        assert self._wake is not None
        self._wake()


class _Draining(threading.local):
    def __init__(self) -> None:
        # The schedulers whose ScheduledDrain is delivering on this thread, innermost last.
        self.schedulers: list[abc.SchedulerBase] = []


_draining = _Draining()


class ScheduledDrain(Generic[_T]):
    """A :class:`Handover` whose consumer runs on a scheduler, one batch per scheduled action.

    The action is scheduled on the empty → non-empty edge and reschedules itself while
    items keep coming, so at most one action is pending or running: deliveries are serial
    and in order, whatever the scheduler (a thread pool included). Between batches the
    scheduler is free to run other work.

    The consumer's thread (whose own items never wait, see :class:`Handover`) is the one
    delivering a batch, and only while it does: a pool thread that delivered a batch
    earlier and later produces into the same hand-over (a stage of a pipeline whose stages
    share a pool) waits for room like any producer. Its wait cannot deadlock the pool:
    a producer that is itself delivering a batch of a drain on the same scheduler (so it
    holds one of the scheduler's threads) never waits for a pending action, which might
    need the thread it holds; it runs that action's batch itself, on its own thread (one
    of the scheduler's, as the consumer expects), and the action, when it runs, finds it
    taken and does nothing. It waits only while the batch is being delivered on another
    thread, which needs none of the scheduler's threads to finish it, and wakes when the
    next action is scheduled, to run it in turn. So the bound holds and, in a pipeline
    (no cycle), every wait ends, even on a pool of one thread.

    Args:
        scheduler: where ``deliver`` runs.
        capacity: the bound of the hand-over.
        deliver: called with each batch; what it raises goes to ``failed``.
        failed: called (on the scheduler) with the exception ``deliver`` raised; the
            hand-over is closed first.
        ended: called (on the scheduler) once the drain finds the hand-over closed; an
            idle drain is then scheduled once more at the close.
        drop, on_stall: see :class:`Handover`.
        started: False to queue items before the first drain: :meth:`start` schedules it.
    """

    __slots__ = ("_deliver", "_ended", "_failed", "_pending", "_scheduler", "_tickets", "handover")

    def __init__(
        self,
        scheduler: abc.SchedulerBase,
        capacity: int,
        deliver: Callable[[list[_T]], None],
        failed: Callable[[Exception], None],
        *,
        ended: Callable[[], None] | None = None,
        drop: bool = False,
        on_stall: Callable[[float], None] | None = None,
        started: bool = True,
    ) -> None:
        self._scheduler = scheduler
        self._deliver = deliver
        self._failed = failed
        self._ended = ended
        self._tickets = itertools.count()
        self._pending: int | None = None  # the ticket of the action scheduled, not yet run
        self.handover: Handover[_T] = Handover(
            capacity,
            self._schedule,
            drop=drop,
            on_stall=on_stall,
            wake_on_close=ended is not None,
            started=started,
            deliver_here=self._deliver_here,
        )

    def start(self) -> None:
        """Schedule the first drain of a drain made with ``started=False``."""
        self._schedule()

    def _schedule(self) -> None:
        handover = self.handover
        with handover._lock:
            ticket = self._pending = next(self._tickets)
            if handover.producers_waiting:
                handover._not_full.notify_all()  # one may run it: _deliver_here
        self._scheduler.schedule(self._drain, ticket)

    def _drain(self, _scheduler: abc.SchedulerBase, ticket: int | None = None) -> None:
        with self.handover._lock:
            if self._pending != ticket:
                return  # a producer ran it (_deliver_here), and went on from there
            self._pending = None
        self._run()

    def _deliver_here(self) -> bool:
        """Under the lock, for a producer about to wait: run the pending action here."""
        if self._pending is None or not any(
            scheduler is self._scheduler for scheduler in _draining.schedulers
        ):
            return False
        self._pending = None
        lock = self.handover._lock
        lock.release()
        try:
            self._run()
        finally:
            lock.acquire()
        return True

    def _run(self) -> None:
        """One scheduled action's work: deliver a batch and reschedule, or go idle."""
        handover = self.handover
        schedulers = _draining.schedulers
        schedulers.append(self._scheduler)
        try:
            batch = handover.take()
            if not batch:
                if handover.closed and self._ended is not None:
                    self._ended()
                return
            # Set after the take and cleared before the next schedule: no other thread
            # delivers meanwhile, so none can overwrite it.
            handover.consumer_thread = threading.get_ident()
            try:
                self._deliver(batch)
            except Exception as exc:
                error: Exception | None = exc
            else:
                error = None
            finally:
                handover.consumer_thread = None
            if error is not None:
                handover.close()
                self._failed(error)
                return
            self._schedule()
        finally:
            schedulers.pop()


class LoopDrain(Generic[_T]):
    """A :class:`Handover` whose consumer is a coroutine on an asyncio loop.

    Make it on the loop's thread. Producers on other threads wait while ``capacity`` items
    are queued; one on the loop's own thread cannot wait for the loop, so its items are
    queued beyond the bound. The loop is woken with one ``call_soon_threadsafe`` per
    empty → non-empty edge, however many items arrive meanwhile.

    Args:
        capacity: the bound of the hand-over.
    """

    __slots__ = ("_loop", "_waiter", "handover")

    def __init__(self, capacity: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self.handover: Handover[_T] = Handover(capacity, self._wake)
        self.handover.consumer_thread = threading.get_ident()

    async def take(self) -> list[_T]:
        """Everything queued, oldest first, waiting for an item if none is; ``[]`` once closed."""
        handover = self.handover
        while True:
            batch = handover.take()
            if batch or handover.closed:
                return batch
            # Idle now: the next item calls _wake, which runs after this await begins.
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        """Close the hand-over (see :meth:`Handover.close`) and wake a waiting :meth:`take`."""
        self.handover.close()
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there any more
            self._loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class End:
    """A source's end, queued behind its items: an error, or completion when ``error`` is None."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def send(self, observer: abc.ObserverBase[Any], name: str) -> None:
        """Tell ``observer`` (called ``name`` in the log) that the source ended."""
        try:
            if self.error is None:
                observer.on_completed()
            else:
                observer.on_error(self.error)
        except Exception:  # after the end there is no one left to tell but the log
            log.exception("%s raised while being told the source ended", name)


def fail_consumer(observer: abc.ObserverBase[Any], subscriber: str, error: Exception) -> None:
    """Send ``observer`` the :class:`ConsumerError` for ``error``, raised by ``subscriber``.

    Call it after disposing the upstream. An ``on_error`` that raises in turn (RxPY's
    default one re-raises) has nowhere left to go: the error is logged, never lost.
    """
    failure = error if isinstance(error, ConsumerError) else ConsumerError(subscriber, error)
    try:
        observer.on_error(failure)
    except Exception:
        log.error("%s; nothing handled it (no on_error)", failure, exc_info=error)
