"""Shared stores: one watch, one cache, and a hot fan-out to many subscribers.

Why one file this long: the writer's side, the shared log and each subscriber's
delivery are one protocol with one lock; its invariants (``_Dispatcher``) are stated once
and every transition that keeps them is in view.

``store_shared(buffer_size)`` returns a :class:`SharedStore` and its Writer;
``rxkube.operators.reflect_shared(writer)`` applies each event to the store through a
:class:`Feed` and then dispatches it; ``reader.subscribe()`` returns a hot Observable of
the objects applied.

How events travel: the writer (the watch's thread) appends each dispatched event once
to a log shared by every subscriber, whatever their number. Each subscriber has a
cursor into that log and a thread of its own (``rxkube-subscriber-...``) or a scheduler
that delivers the entries between its cursor and the head, in batches. A subscriber's
buffer is its backlog (head minus cursor); it is bounded by ``buffer_size``. When the
slowest subscriber's backlog is full, the writer waits — it blocks the watch's thread,
so the watch stops reading its socket and TCP backpressure reaches the API server,
while every other watch in the process goes on. Nothing is dropped unless a subscriber
opted in with ``overflow="drop"``: it is then cut off with a :class:`SubscriberOverflow`
error instead of making the writer wait.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, overload

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from ._cache import Store, Writer
from .errors import RxKubeError
from .events import Apply, Delete, Event, InitDone, Object

__all__ = [
    "DispatchStats",
    "Feed",
    "Overflow",
    "SharedStore",
    "SubscriberOverflow",
    "store_shared",
]

log = logging.getLogger(__name__)

Overflow: TypeAlias = Literal["wait", "drop"]
"""What a full subscriber buffer does: make the writer wait, or drop the subscriber."""

_STALL_WARNING_SECONDS = 30.0
"""How often a writer blocked by a full subscriber buffer logs a warning."""

_IDLE_RECHECK_SECONDS = 5.0
"""How long an idle subscriber thread waits before checking its state again (a safety net:
every state change also wakes it)."""

_thread_numbers = itertools.count(1)


class SubscriberOverflow(RxKubeError):
    """A subscriber with ``overflow="drop"`` fell ``buffer_size`` entries behind.

    Its buffer was dropped and its subscription ended with this error: what it has
    received no longer adds up to the store's state. Resync by subscribing again with
    ``replay=True``, which first delivers the store's current contents — ``retry()``
    does exactly that::

        reader.subscribe(replay=True, overflow="drop").pipe(ops.retry())
    """

    transient = True


@dataclass(frozen=True, slots=True)
class DispatchStats:
    """A snapshot of a shared store's fan-out, for metrics and health checks.

    Attributes:
        subscribers: subscribers currently attached.
        buffer_size: the bound of each subscriber's buffer.
        max_backlog: entries the slowest subscriber has not finished delivering yet.
        writer_waiting: whether the writer (the watch) is blocked by a full buffer now.
        writer_waits: how many times the writer has had to wait for room.
        overflows: how many ``overflow="drop"`` subscribers were cut off.
    """

    subscribers: int
    buffer_size: int
    max_backlog: int
    writer_waiting: bool
    writer_waits: int
    overflows: int


@dataclass(frozen=True, slots=True)
class _Relist:
    """The dispatch of an ``InitDone``: every object now in the store, and those gone."""

    objects: list[Object]
    deleted: list[Object]


class _Complete:
    """The dispatch of the source's completion."""


_COMPLETE = _Complete()

_Entry: TypeAlias = Apply | Delete | _Relist | _Complete


class SharedStore(Store):
    """A :class:`Store` whose applied objects can also be subscribed to.

    Get one with :func:`store_shared` and feed its writer with :func:`reflect_shared`.

    Example:
        >>> reader, writer = store_shared(buffer_size=64, name="pods")
        >>> isinstance(reader, Store), reader.stats().subscribers
        (True, 0)
    """

    def __init__(self, buffer_size: int, name: str = "", *, copy_on_read: bool = True) -> None:
        """Create an empty shared store; use :func:`store_shared` to get it with its Writer.

        Args:
            buffer_size: the bound of each subscriber's buffer, in dispatched entries.
            name: what the store holds (e.g. ``"pods"``), for messages and thread names.
            copy_on_read: reads hand out copies (see :class:`~rxkube.Store`); what
                subscribers receive is never copied.

        Raises:
            ValueError: ``buffer_size`` is not positive.
        """
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be at least 1, got {buffer_size}")
        super().__init__(name, copy_on_read=copy_on_read)
        self._dispatcher = _Dispatcher(self, buffer_size)

    @overload
    def subscribe(
        self,
        *,
        replay: bool = ...,
        events: Literal[False] = ...,
        overflow: Overflow = ...,
        scheduler: abc.SchedulerBase | None = ...,
    ) -> Observable[Object]: ...

    @overload
    def subscribe(
        self,
        *,
        replay: bool = ...,
        events: Literal[True],
        overflow: Overflow = ...,
        scheduler: abc.SchedulerBase | None = ...,
    ) -> Observable[Apply | Delete]: ...

    @overload
    def subscribe(
        self,
        *,
        replay: bool = ...,
        events: bool,
        overflow: Overflow = ...,
        scheduler: abc.SchedulerBase | None = ...,
    ) -> Observable[Any]: ...

    def subscribe(
        self,
        *,
        replay: bool = False,
        events: bool = False,
        overflow: Overflow = "wait",
        scheduler: abc.SchedulerBase | None = None,
    ) -> Observable[Any]:
        """A hot Observable of what is applied to the store from now on.

        Each subscription gets its own buffer of ``buffer_size`` entries and its own
        thread (``rxkube-subscriber-<store>-<n>``), or runs on ``scheduler`` (this one, or
        the one given to ``Observable.subscribe``). An ``Apply`` is one entry; a relist's
        ``InitDone`` is one entry too, delivered as every object in the store. Disposing
        the subscription ends its thread and frees its buffer. If the callback raises,
        that subscription alone ends: the error is logged and sent to its ``on_error``.

        When the watch completes, subscribers complete once they have delivered what they
        hold; when it fails they just wait, since a retried watch relists and goes on.

        Args:
            replay: first deliver the store's current contents (to a late subscriber).
            events: deliver ``Apply``/``Delete`` events instead of objects, so that
                deletions are seen; a relist is delivered as an ``Apply`` per object in
                the store and a ``Delete`` per object that disappeared.
            overflow: ``"wait"`` (default): when this subscriber's buffer is full, the
                writer — and so the watch — waits for it. ``"drop"``: drop its buffer
                instead and end it with :class:`SubscriberOverflow`, the signal to resync.
            scheduler: deliver on this scheduler instead of a thread of its own.

        Returns:
            An Observable of objects (of ``Apply``/``Delete`` events with ``events=True``).

        Example:
            >>> from reactivex import Subject
            >>> from rxkube.operators import reflect_shared
            >>> reader, writer = store_shared(buffer_size=16)
            >>> source = Subject()
            >>> watch = source.pipe(reflect_shared(writer)).subscribe()
            >>> got, done = [], threading.Event()
            >>> sub = reader.subscribe().subscribe(got.append, on_completed=done.set)
            >>> source.on_next(Apply({"metadata": {"name": "a"}}))
            >>> source.on_completed()
            >>> done.wait(5), [o["metadata"]["name"] for o in got]
            (True, ['a'])
        """
        if overflow not in ("wait", "drop"):
            raise ValueError(f"overflow must be 'wait' or 'drop', not {overflow!r}")
        dispatcher = self._dispatcher

        def on_subscribe(
            observer: abc.ObserverBase[Any], rx_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            subscriber = dispatcher.add(
                observer,
                replay=replay,
                events=events,
                drop=overflow == "drop",
                scheduler=scheduler or rx_scheduler,
            )
            return Disposable(subscriber.dispose)

        return Observable(on_subscribe)

    def feed(self, writer: Writer) -> Feed:
        """A :class:`Feed` through which ``writer`` applies and dispatches events.

        Raises:
            ValueError: ``writer`` is not this store's writer.
        """
        if writer.store is not self:
            raise ValueError(f"the writer does not write the shared store of {self.describe()}")
        return Feed(self._dispatcher, writer)

    def stats(self) -> DispatchStats:
        """Subscribers, backlogs and writer waits, as of now.

        Example:
            >>> reader, writer = store_shared(buffer_size=8)
            >>> reader.stats().subscribers
            0
        """
        return self._dispatcher.stats()


def store_shared(
    buffer_size: int, *, name: str = "", copy_on_read: bool = True
) -> tuple[SharedStore, Writer]:
    """Create a shared store and its writer: one cache, many subscribers.

    Args:
        buffer_size: the bound of each subscriber's buffer. When a subscriber has this
            many entries not yet delivered, the writer (the watch) waits for it.
        name: what the store holds (e.g. ``"pods"``), for messages and thread names.
        copy_on_read: reads of the store hand out copies (the default; see
            :func:`~rxkube.store`). The objects subscribers receive are shared by all of
            them and the cache, as they are in a watch stream: never change them.

    Returns:
        ``(reader, writer)``: feed the writer with :func:`reflect_shared`, then call
        ``reader.subscribe()`` once per consumer.

    Example:
        >>> reader, writer = store_shared(256, name="pods")
        >>> # watcher(api).pipe(reflect_shared(writer), default_backoff()).subscribe()
        >>> # reader.subscribe(replay=True).subscribe(on_pod)
    """
    reader = SharedStore(buffer_size, name, copy_on_read=copy_on_read)
    return reader, Writer(reader)


class Feed:
    """One feeding subscription of a shared store, as ``reflect_shared`` drives it.

    ``apply`` applies an event to the store and dispatches it, waiting first while the
    slowest subscriber's buffer is full; ``complete`` completes the current subscribers;
    ``abandon`` ends any wait of ``apply`` (the feeding subscription was disposed).
    Get one from :meth:`SharedStore.feed`.
    """

    __slots__ = ("abandoned", "dispatcher", "writer")

    def __init__(self, dispatcher: _Dispatcher, writer: Writer) -> None:
        self.dispatcher = dispatcher
        self.writer = writer
        self.abandoned = False

    def apply(self, event: Event) -> None:
        """Apply ``event`` to the store and dispatch it to the subscribers."""
        self.dispatcher.feed(self, event)

    def complete(self) -> None:
        """The source completed: every current subscriber completes after its backlog."""
        self.dispatcher.complete()

    def abandon(self) -> None:
        """The feeding subscription was disposed: stop any wait for room."""
        self.dispatcher.abandon(self)


class _Dispatcher:
    """The shared log, the subscribers' cursors, and who sleeps or waits for whom.

    Lock rules: ``_lock`` (and its condition ``_room``) guards the log, the cursors and
    who sleeps; it is held for O(1) steps (a replay's O(n) copy holds the store's lock
    instead) and never across user code: index functions and a relist's rebuild run
    before it, subscribers' callbacks after it. When both are needed, the store's lock
    is taken first (the writer's commit, ``add``), never the other way round.

    Invariants, under ``_lock``: the log holds the entries from sequence number ``_base``
    on; every subscriber's cursor is between ``_base`` and the head; a subscriber with
    nothing to deliver is in ``_sleeping`` exactly while its thread (or scheduler) is
    idle, and whoever takes it out of there wakes it.
    """

    def __init__(self, store: SharedStore, buffer_size: int) -> None:
        self._store = store
        self._size = buffer_size
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._log: list[_Entry] = []
        self._base = 0
        self._subscribers: list[_Subscriber] = []
        self._sleeping: list[_Subscriber] = []
        self._event_subscribers = 0
        self._writer_waiting = False
        self._blocker: _Subscriber | None = None
        self._writer_waits = 0
        self._overflows = 0
        # The writer's thread only: the entry it is committing, and whom that wakes.
        self._entry: _Entry | None = None
        self._woken: list[_Subscriber] | None = None

    # -- the writer's side (the watch thread) --------------------------------------------

    def feed(self, feeder: Feed, event: Event) -> None:
        """Apply ``event`` and dispatch it; wait first while the slowest buffer is full.

        Nothing slow happens under the dispatcher lock: index functions run and a relist's
        new indexes and dispatch entry are built before it, by this thread (the one
        writer, so the maps read here cannot change meanwhile). The lock is taken only at
        the store's commit, to append the entry in the same step (see ``_publish``).
        """
        if len(self._log) >= self._size and not self._make_room(feeder):
            return
        writer = feeder.writer
        if isinstance(event, Apply | Delete):
            self._entry = event
        elif isinstance(event, InitDone):
            # O(n), outside every lock. Only events=True subscribers are told about
            # deletions; one may join before the commit, so they are always worked out.
            before = self._store._objects
            after = writer._pending
            deleted = [obj for key, obj in before.items() if key not in after]
            self._entry = _Relist(list(after.values()), deleted)
        else:  # Init and InitApply change only the writer's side buffer: nothing to see
            writer.apply(event)
            return
        writer._apply(event, self._publish)
        woken, self._woken = self._woken, None
        if woken:
            self._wake(woken)

    def _publish(self) -> None:
        """Append the entry being fed to the log; called under the store lock at the commit.

        Lock order: the store's lock, then this one (``add`` takes them in the same order).
        """
        entry, self._entry = self._entry, None
        with self._lock:
            if not self._subscribers or entry is None:
                return
            self._log.append(entry)
            if self._sleeping:
                self._woken, self._sleeping = self._sleeping, []

    def _make_room(self, feeder: Feed) -> bool:
        """Wait until the slowest buffer has room; False if the feeder was disposed meanwhile."""
        with self._lock:
            self._trim()
            if len(self._log) < self._size:
                return True
            self._writer_waits += 1
            self._writer_waiting = True
            since = time.monotonic()
            try:
                while not feeder.abandoned:
                    if not self._room.wait(_STALL_WARNING_SECONDS):
                        self._warn_stalled(since)
                    self._trim()
                    if len(self._log) < self._size:
                        return True
                return False
            finally:
                self._writer_waiting = False

    def _trim(self) -> None:
        """Cut off overflowing ``drop`` subscribers, then forget what all have delivered."""
        head = self._base + len(self._log)
        low, blocker = head, None
        for sub in list(self._subscribers):
            if sub.drop and head - sub.cursor >= self._size:
                self._detach(sub, overflowed=True)
            elif sub.cursor < low:
                low, blocker = sub.cursor, sub
        self._blocker = blocker
        if low > self._base:
            del self._log[: low - self._base]
            self._base = low

    def _warn_stalled(self, since: float) -> None:
        blocker = self._blocker
        log.warning(
            "the watch feeding the store of %s has waited %.0f s for subscriber %s, whose "
            "buffer of %d is full: a stuck subscriber stalls its watch (see overflow='drop')",
            self._store.describe(),
            time.monotonic() - since,
            blocker.name if blocker else "?",
            self._size,
        )

    def abandon(self, feeder: Feed) -> None:
        """The feeding subscription was disposed: stop any wait of its writer for room."""
        with self._lock:
            feeder.abandoned = True
            self._room.notify_all()

    def complete(self) -> None:
        """The source completed: every current subscriber completes after its backlog."""
        with self._lock:
            if not self._subscribers:
                return
            self._log.append(_COMPLETE)
            sleeping, self._sleeping = self._sleeping, []
        self._wake(sleeping)

    # -- subscribers ------------------------------------------------------------------------

    def add(
        self,
        observer: abc.ObserverBase[Any],
        *,
        replay: bool,
        events: bool,
        drop: bool,
        scheduler: abc.SchedulerBase | None,
    ) -> _Subscriber:
        """Attach a subscriber at the head of the log and start delivering to it."""
        label = self._store.name or self._store.kind.lower() or "store"
        name = f"rxkube-subscriber-{label}-{next(_thread_numbers)}"
        sub = _Subscriber(self, observer, name, events=events, drop=drop, scheduler=scheduler)
        store = self._store
        # The store lock first (the writer's commit order): no change commits meanwhile,
        # so the replayed snapshot and the cursor agree. The O(n) copy of a replay holds
        # the store's lock, not this one: delivery, disposal and stats go on.
        with store._lock:
            if replay:
                sub.replay = list(store._objects.values())
            with self._lock:
                sub.cursor = self._base + len(self._log)
                self._subscribers.append(sub)
                self._event_subscribers += events
                idle = scheduler is not None and not replay
                if idle:
                    self._sleeping.append(sub)
        if not idle:
            try:
                sub.start()
            except BaseException:  # e.g. no thread could be started: do not hold the writer
                self.remove(sub)
                raise
        return sub

    def remove(self, sub: _Subscriber) -> None:
        """Detach a subscriber (disposed, failed or completed) and end its delivery."""
        with self._lock:
            self._detach(sub, overflowed=False)

    def _detach(self, sub: _Subscriber, *, overflowed: bool) -> None:
        """Under the lock: take a subscriber out and wake its delivery to end it.

        Wake-ups handed to it are passed on by its thread, which is idle (see ``_wake``)
        and runs :meth:`take` first thing when woken.
        """
        if not sub.active:
            return
        sub.active = False
        sub.overflowed = overflowed
        self._subscribers.remove(sub)
        self._event_subscribers -= sub.events
        if overflowed:
            self._overflows += 1
        if sub in self._sleeping:
            self._sleeping.remove(sub)
        if not self._subscribers:  # nobody left to read the log: free it
            self._base += len(self._log)
            self._log.clear()
        if self._writer_waiting:
            self._room.notify_all()
        sub.signal()  # a thread wakes to see it has ended

    def take(
        self, sub: _Subscriber, delivered: int
    ) -> tuple[list[_Entry] | None, list[_Subscriber] | None]:
        """Record ``delivered`` entries as done and return the next batch, if any.

        Returns ``(batch, handoff)``: ``batch`` is None when there is nothing to deliver
        (the subscriber has then been put to sleep) or when it has ended (``active`` is
        False); ``handoff`` lists subscribers it must wake.
        """
        with self._lock:
            handoff, sub.handoff = sub.handoff, None
            sub.idle = False
            if not sub.active:
                return None, handoff
            if delivered:
                sub.cursor += delivered
                if self._writer_waiting and sub is self._blocker:
                    self._room.notify_all()
            start = sub.cursor - self._base
            if start < len(self._log):
                return self._log[start:], handoff
            sub.wakeup.clear()
            sub.idle = True
            self._sleeping.append(sub)
            return None, handoff

    def _wake(self, group: list[_Subscriber]) -> None:
        """Wake sleeping subscribers, spreading the work over their own threads.

        The first subscriber with a thread is handed the rest of the group and wakes it
        in two halves when it runs, so the writer pays for one wake-up however many
        subscribers sleep, and the last one is woken after log2(n) hops. Only an idle
        thread (one that has not run :meth:`take` since it went to sleep) is handed
        wake-ups: the first thing it does when woken is pass them on, before it delivers
        anything, so a slow subscriber never delays the others' wake-ups.
        """
        while group:
            first, rest = group[0], group[1:]
            if rest and first.thread is not None:
                with self._lock:
                    if first.active and first.idle:
                        first.handoff = rest if first.handoff is None else first.handoff + rest
                        rest = []
            first.signal()
            group = rest

    def pass_on(self, handoff: list[_Subscriber]) -> None:
        """Wake the subscribers handed to a woken subscriber, in two halves."""
        half = (len(handoff) + 1) // 2
        self._wake(handoff[:half])
        self._wake(handoff[half:])

    def stats(self) -> DispatchStats:
        with self._lock:
            head = self._base + len(self._log)
            return DispatchStats(
                subscribers=len(self._subscribers),
                buffer_size=self._size,
                max_backlog=max((head - s.cursor for s in self._subscribers), default=0),
                writer_waiting=self._writer_waiting,
                writer_waits=self._writer_waits,
                overflows=self._overflows,
            )


class _Subscriber:
    """One subscription of a shared store: its cursor, and its delivery thread or scheduler."""

    __slots__ = (
        "active",
        "cursor",
        "dispatcher",
        "done",
        "drop",
        "events",
        "handoff",
        "idle",
        "name",
        "observer",
        "overflowed",
        "replay",
        "scheduler",
        "thread",
        "wakeup",
    )

    def __init__(
        self,
        dispatcher: _Dispatcher,
        observer: abc.ObserverBase[Any],
        name: str,
        *,
        events: bool,
        drop: bool,
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        self.dispatcher = dispatcher
        self.observer = observer
        self.name = name
        self.events = events
        self.drop = drop
        self.scheduler = scheduler
        self.cursor = 0
        self.done = 0  # entries delivered but not yet recorded in the cursor
        self.idle = False
        self.active = True
        self.overflowed = False
        self.replay: list[Object] | None = None
        self.handoff: list[_Subscriber] | None = None
        self.wakeup = threading.Event()
        self.thread = (
            None
            if scheduler is not None
            else threading.Thread(target=self._run, name=name, daemon=True)
        )

    def start(self) -> None:
        if self.thread is not None:
            self.thread.start()
        else:
            self.signal()

    def signal(self) -> None:
        """Wake the delivery: set the thread's event, or schedule a drain."""
        if self.thread is not None:
            self.wakeup.set()
        elif self.active:
            assert self.scheduler is not None
            self.scheduler.schedule(self._drain)

    def dispose(self) -> None:
        self.dispatcher.remove(self)

    # -- delivery -------------------------------------------------------------------------

    def _run(self) -> None:
        """The body of a subscriber's own thread: deliver batches until it ends."""
        while self._step():
            self.wakeup.wait(_IDLE_RECHECK_SECONDS)

    def _drain(self, _scheduler: abc.SchedulerBase, _state: Any = None) -> None:
        """Deliver on a scheduler: one batch per action, scheduling the next while any."""
        self._step()

    def _step(self) -> bool:
        """Deliver what there is; True once idle (asleep), False once ended."""
        dispatcher = self.dispatcher
        if self.replay is not None:
            replay, self.replay = self.replay, None
            self._deliver([_Relist(replay, [])])
        while True:
            batch, handoff = dispatcher.take(self, self.done)
            self.done = 0
            if handoff:
                dispatcher.pass_on(handoff)
            if batch is None:
                if self.active:
                    return True
                self._ended()
                return False
            if self._deliver(batch):
                self.done = len(batch)
                if self.scheduler is not None:  # yield the scheduler between batches
                    self.scheduler.schedule(self._drain)
                    return True

    def _deliver(self, batch: list[_Entry]) -> bool:
        """Deliver a batch; False if the subscriber ended (completed, failed or detached)."""
        on_next = self.observer.on_next
        try:
            if self.events:
                return self._deliver_events(batch, on_next)
            for entry in batch:
                if not self.active:
                    return False
                if isinstance(entry, Apply):
                    on_next(entry.obj)
                elif isinstance(entry, _Relist):
                    for obj in entry.objects:
                        if not self.active:
                            return False
                        on_next(obj)
                elif isinstance(entry, _Complete):
                    return self._completed()
        except Exception as exc:
            self._failed(exc)
            return False
        return True

    def _deliver_events(self, batch: list[_Entry], on_next: Callable[[Any], None]) -> bool:
        for entry in batch:
            if not self.active:
                return False
            if isinstance(entry, Apply | Delete):
                on_next(entry)
            elif isinstance(entry, _Relist):
                for obj in entry.objects:
                    if not self.active:
                        return False
                    on_next(Apply(obj))
                for obj in entry.deleted:
                    on_next(Delete(obj))
            else:
                return self._completed()
        return True

    def _completed(self) -> bool:
        self.dispatcher.remove(self)
        self.observer.on_completed()
        return False

    def _failed(self, exc: Exception) -> None:
        self.dispatcher.remove(self)
        log.error(
            "subscriber %s of the store of %s raised; it is unsubscribed, the others go on",
            self.name,
            self.dispatcher._store.describe(),
            exc_info=exc,
        )
        with contextlib.suppress(Exception):  # the default on_error re-raises: logged above
            self.observer.on_error(exc)

    def _ended(self) -> None:
        if self.overflowed:
            error = SubscriberOverflow(
                f"subscriber {self.name} of the store of {self.dispatcher._store.describe()} "
                f"fell {self.dispatcher._size} entries behind and was dropped "
                "(overflow='drop'): resync from the store, e.g. subscribe again with "
                "replay=True"
            )
            try:
                self.observer.on_error(error)
            except Exception:
                log.warning("%s", error)
