"""Shared stores: one watch, one cache, and a hot fan-out to many subscribers.

``store_shared(buffer_size)`` returns a :class:`SharedStore` and its Writer;
``rxkube.operators.reflect_shared(writer)`` applies each event to the store through a
:class:`Feed` and then dispatches it; ``reader.subscribe()`` returns a hot Observable of
the objects applied.

How events travel: every subscriber has a :class:`rxkube._delivery.Handover` of
``buffer_size`` entries (the one hand-over every thread crossing in rxkube uses) and a
thread of its own (``rxkube-subscriber-...``), or the scheduler it asked for, that takes
everything queued in one batch and delivers it. The writer (the watch's thread) applies
each event to the store, then queues one entry per subscriber: an ``Apply`` is one entry
(its object), a relist's ``InitDone`` is one entry too (references to the objects, not
copies). When a subscriber's buffer is full, the writer waits for it — it blocks the
watch's thread, so the watch stops reading its socket and TCP backpressure reaches the
API server, while every other watch in the process goes on. Nothing is dropped unless a
subscriber opted in with ``overflow="drop"``: it is then cut off with a
:class:`SubscriberOverflow` error instead of making the writer wait. A subscriber's
callback that raises ends that subscription alone, with ``on_error(ConsumerError)``.

How subscriptions end, as kube-rs's subscriber streams end when their writer is dropped:
when nothing feeds the store any more (its writer status turns ``"stopped"``: the
pipeline completed, was disposed, or failed with an error that nothing retries), every
subscriber completes once it has delivered what it holds (after a failure it gets
``on_error`` with the pipeline's error instead), and its thread ends. A subscriber joining
while the store is stopped gets its replay, then the same end. A failure that
``default_backoff()`` retries ends nothing (the store shows ``"retrying"``): the retried
watch relists and its subscribers go on.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, overload

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from ._cache import SharedParts, Store, Writer
from ._delivery import End, Handover, ScheduledDrain, defer, fail_consumer
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

_BATCH = 512
"""Staged entries queued at once within a burst, at most: each batch costs every
subscriber a wake-up and a thread switch (100 subscribers at 128 a batch spent about 2.5
thread switches per event, at 512 about 1). More keep a consumer waiting while the writer
reads on, and a batch as large as the buffer makes the writer wait for each delivery."""

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


_Entry: TypeAlias = Object | Delete | _Relist | End
"""What a subscriber's buffer holds. An ``Apply`` goes to every subscriber as its object,
which the store holds anyway: entries in flight then keep nothing else alive, so a burst
of them adds nothing to what starts the cyclic collector (the events, kept until
delivered, would start young collections, each walking every object applied since the
last one). An ``events=True`` subscriber makes its ``Apply`` of the object as it delivers
it, to be freed with the callback's use of it. A ``Delete`` is queued as itself, and only
while an ``events=True`` subscriber is among those it goes to: no one else delivers it."""


class SharedStore(Store):
    """A :class:`Store` whose applied objects can also be subscribed to.

    Get one with :func:`store_shared` and feed its writer with :func:`reflect_shared`.

    Example:
        >>> reader, writer = store_shared(buffer_size=64, name="pods")
        >>> isinstance(reader, Store), reader.stats().subscribers
        (True, 0)
    """

    def __init__(
        self,
        buffer_size: int,
        name: str = "",
        *,
        copy_on_read: bool = True,
        share_subtrees: SharedParts = "managedFields",
    ) -> None:
        """Create an empty shared store; use :func:`store_shared` to get it with its Writer.

        Args:
            buffer_size: the bound of each subscriber's buffer, in dispatched entries.
            name: what the store holds (e.g. ``"pods"``), for messages and thread names.
            copy_on_read: reads hand out copies (see :class:`~rxkube.Store`); what
                subscribers receive is never copied.
            share_subtrees: which parts equal across objects to hold once (see
                :func:`~rxkube.store`).

        Raises:
            ValueError: ``buffer_size`` is not a positive whole number, or
                ``share_subtrees`` not one of ``True``, ``False``, ``"managedFields"``.
        """
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
            raise ValueError(f"buffer_size must be a whole number, at least 1, got {buffer_size!r}")
        super().__init__(name, copy_on_read=copy_on_read, share_subtrees=share_subtrees)
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
        thread (``rxkube-subscriber-<store>-<n>``), or runs on ``scheduler``. Either way
        its deliveries are serial and in order, even on a thread pool. (A scheduler given
        to ``Observable.subscribe`` is, as everywhere in RxPY, only the subscription's
        default scheduler: it does not move delivery.) An ``Apply`` is one entry; a
        relist's ``InitDone`` is one entry too, delivered as every object in the store.
        Disposing the subscription ends its thread and frees its buffer. If the callback
        raises, that subscription alone ends, with ``on_error(ConsumerError)`` chained to
        the exception (logged if there is no ``on_error``); the watch and the other
        subscribers go on.

        When nothing feeds the store any more (its ``writer_status()`` turns
        ``"stopped"``: the pipeline completed, was disposed, or failed and nothing retries
        it), every subscription ends once it has delivered what it holds: it completes,
        or after a failure gets ``on_error`` with the pipeline's error. One made while the
        store is stopped ends at once (after its replay). While a failed watch is retried
        (``"retrying"``) subscriptions just wait: the retried watch relists and goes on.

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
            observer: abc.ObserverBase[Any], _default: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            subscriber = dispatcher.add(
                observer,
                replay=replay,
                events=events,
                drop=overflow == "drop",
                scheduler=scheduler,
            )
            return Disposable(subscriber.dispose)

        return Observable(on_subscribe)

    def _writer_stopped_locked(self) -> Callable[[], None]:
        """Nothing feeds the store any more: end every subscriber, once the lock is released."""
        return self._dispatcher.stopped_locked()

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
    buffer_size: int,
    *,
    name: str = "",
    copy_on_read: bool = True,
    share_subtrees: SharedParts = "managedFields",
) -> tuple[SharedStore, Writer]:
    """Create a shared store and its writer: one cache, many subscribers.

    Args:
        buffer_size: the bound of each subscriber's buffer. When a subscriber has this
            many entries not yet delivered, the writer (the watch) waits for it.
        name: what the store holds (e.g. ``"pods"``), for messages and thread names.
        copy_on_read: reads of the store hand out copies (the default; see
            :func:`~rxkube.store`). The objects subscribers receive are shared by all of
            them and the cache, as they are in a watch stream: never change them.
        share_subtrees: which parts equal across cached objects to hold once: by default
            those of ``metadata.managedFields`` (see :func:`~rxkube.store`).

    Raises:
        ValueError: ``buffer_size`` is not a positive whole number, or ``share_subtrees``
            not one of ``True``, ``False``, ``"managedFields"``.

    Returns:
        ``(reader, writer)``: feed the writer with :func:`reflect_shared`, then call
        ``reader.subscribe()`` once per consumer.

    Example:
        >>> reader, writer = store_shared(256, name="pods")
        >>> # watcher(api).pipe(reflect_shared(writer), default_backoff()).subscribe()
        >>> # reader.subscribe(replay=True).subscribe(on_pod)
    """
    reader = SharedStore(
        buffer_size, name, copy_on_read=copy_on_read, share_subtrees=share_subtrees
    )
    return reader, Writer(reader)


class Feed:
    """One feeding subscription of a shared store, as ``reflect_shared`` drives it.

    ``apply`` applies an event to the store and dispatches it, waiting first while a
    subscriber's buffer is full; ``flush`` queues what a burst staged (the source ended);
    ``abandon`` ends any wait of ``apply`` (the feeding subscription was disposed). The
    subscribers learn of the end from the store's status (see the module's doc).
    Get one from :meth:`SharedStore.feed`.
    """

    __slots__ = (
        "abandoned",
        "deferred",
        "dispatcher",
        "events",
        "room",
        "staged",
        "targets",
        "writer",
    )

    def __init__(self, dispatcher: _Dispatcher, writer: Writer) -> None:
        self.dispatcher = dispatcher
        self.writer = writer
        self.abandoned = False
        # The writer's thread only: entries committed and not yet queued, the subscribers
        # they go to, whether one of those wants deletions, how many more fit in the
        # fullest of their buffers, and whether a flush of the staged entries is deferred
        # to the end of the burst.
        self.staged: list[_Entry] = []
        self.targets: tuple[_Subscriber, ...] = ()
        self.events = False
        self.room = 0
        self.deferred = False

    def cancelled(self) -> bool:
        """Whether a wait for room should give up: the feeding subscription was disposed."""
        return self.abandoned

    def apply(self, event: Event) -> None:
        """Apply ``event`` to the store and dispatch it to the subscribers."""
        self.dispatcher.feed(self, event)

    def flush(self) -> None:
        """The source ended (completed or failed): queue what is staged, before its end."""
        self.dispatcher._flush(self)

    def abandon(self) -> None:
        """The feeding subscription was disposed: stop any wait for room."""
        self.dispatcher.abandon(self)


class _Dispatcher:
    """The subscribers of a shared store, and the writer's dispatch to them.

    Lock rules. ``_lock`` guards changes of the subscriber tuple and the counts; it is
    held for O(1) steps and never across user code. The tuple is replaced, never changed
    in place, so the writer reads it without the lock and queues entries outside every
    lock (where it may wait for room). What orders a change of the store with the
    subscribers it goes to is the *store's* lock: the writer takes its snapshot of the
    subscribers in the store's commit (``_publish``, under the store lock), and ``add``
    registers a subscriber, with its replay of the store, under the store lock too, so a
    new subscriber sees each change exactly once, in its replay or in its buffer. When
    both are held, the store's lock is taken first. Index functions and a relist's O(n)
    work (its indexes, its dispatch entry) run before the commit, outside every lock.
    """

    def __init__(self, store: SharedStore, buffer_size: int) -> None:
        self._store = store
        self._size = buffer_size
        self._lock = threading.Lock()
        self._subscribers: tuple[_Subscriber, ...] = ()
        self._past_waits = 0  # writer waits counted by subscribers gone since
        self._overflows = 0
        # The writer's thread only: the subscribers its commit in progress goes to.
        self._targets: tuple[_Subscriber, ...] = ()

    # -- the writer's side (the watch thread) --------------------------------------------

    def feed(self, feeder: Feed, event: Event) -> None:
        """Apply ``event`` and queue it for every subscriber; wait first while one is full.

        Waiting comes first, so the store is never more than ``buffer_size`` changes
        ahead of its slowest subscriber. This thread is the one writer (and the only
        producer of the hand-overs), so room found stays there until it queues. Within a
        burst (a watch applying one read's events, see ``rxkube._delivery.burst``) the
        entries are staged and queued to each subscriber together, once per burst, when
        a buffer would be full, or when the subscribers change.
        """
        writer = feeder.writer
        entry: _Entry
        if isinstance(event, Apply):
            entry = event.obj
        elif isinstance(event, Delete):
            entry = event
        elif isinstance(event, InitDone):
            # O(n), outside every lock (the maps read here change only on this thread).
            # Only events=True subscribers are told about deletions; one may join before
            # the commit, so they are always worked out.
            before = self._store._objects
            after = writer._pending
            deleted = [obj for key, obj in before.items() if key not in after]
            entry = _Relist(list(after.values()), deleted)
        else:  # Init and InitApply change only the writer's side buffer: nothing to see
            writer.apply(event)
            return
        if feeder.room <= 0 and self._subscribers and not self._make_room(feeder):
            return
        writer._apply(event, self._publish)
        targets, self._targets = self._targets, ()
        if not targets:
            return
        if targets is not feeder.targets:
            self._flush(feeder)
            self._target(feeder, targets)
        if not feeder.events and isinstance(entry, Delete):
            return  # no one it goes to delivers deletions
        feeder.staged.append(entry)
        feeder.room -= 1
        if (
            feeder.room <= 0
            or len(feeder.staged) >= _BATCH
            or not (feeder.deferred or self._defer_flush(feeder))
        ):
            self._flush(feeder)

    def _publish(self) -> None:
        """Note whom the change being committed goes to; called under the store lock."""
        self._targets = self._subscribers

    def _defer_flush(self, feeder: Feed) -> bool:
        def flush() -> None:
            feeder.deferred = False
            self._flush(feeder)

        feeder.deferred = defer(flush)
        return feeder.deferred

    def _make_room(self, feeder: Feed) -> bool:
        """Queue what is staged, then wait until every buffer has room; False if disposed.

        A ``drop`` subscriber never makes the writer wait: it overflows as the next entry
        reaches its full buffer.
        """
        self._flush(feeder)
        subscribers = self._subscribers
        for sub in subscribers:
            handover = sub.handover
            # A closed hand-over (its subscriber gone) answers False too: only a disposed
            # feed stops the writer.
            if (
                handover.full()
                and not handover.wait_for_room(feeder.cancelled)
                and feeder.abandoned
            ):
                return False
        self._target(feeder, subscribers)
        return True

    def _target(self, feeder: Feed, subscribers: tuple[_Subscriber, ...]) -> None:
        """Stage entries for ``subscribers`` from now on (nothing is staged for others).

        Room: the entries that fit now in the fullest buffer, staged up to there, they go
        out. At least 1: every ``wait`` buffer had room after ``_make_room``; a full
        ``drop`` buffer gets the one entry that makes it overflow.
        """
        feeder.targets = subscribers
        feeder.events = any(sub.events for sub in subscribers)
        backlog = max((sub.handover.backlog() for sub in subscribers), default=0)
        feeder.room = max(1, self._size - backlog)

    def _flush(self, feeder: Feed) -> None:
        """Queue the staged entries to the subscribers they were committed for."""
        staged = feeder.staged
        if not staged:
            return
        feeder.staged = []
        self._dispatch(feeder.targets, staged, feeder)

    def _dispatch(
        self, targets: tuple[_Subscriber, ...], entries: list[_Entry], feeder: Feed
    ) -> None:
        cancelled = feeder.cancelled
        for sub in targets:
            if sub.handover.put_all(entries, cancelled):
                continue
            if sub.handover.overflowed:
                self._detach(sub, overflowed=True)
            elif feeder.abandoned:
                return

    def abandon(self, feeder: Feed) -> None:
        """The feeding subscription was disposed: stop any wait of its writer for room."""
        feeder.abandoned = True
        for sub in self._subscribers:
            sub.handover.wake_producers()

    def stopped_locked(self) -> Callable[[], None]:
        """Nothing feeds the store any more; called under the store lock.

        The subscribers present now are those this end goes to: one that joins later
        finds the store stopped in ``add`` (under the same lock) and gets its end there.
        The end is queued once the store lock is released, beyond the bound (one per
        subscriber): queuing may wake a scheduler's drain, which must not run under it.
        """
        end = End(_as_exception(self._store._status.error))
        subscribers = self._subscribers

        def send() -> None:
            for sub in subscribers:
                sub.handover.put(end, wait=False)

        return send

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
        """Attach a subscriber and start delivering to it."""
        label = self._store.name or self._store.kind.lower() or "store"
        name = f"rxkube-subscriber-{label}-{next(_thread_numbers)}"
        sub = _Subscriber(self, observer, name, events=events, drop=drop, scheduler=scheduler)
        store = self._store
        # Under the store lock (the commit's): no change commits meanwhile, so the replay
        # and the changes queued after it agree. Its O(n) copy holds the store's lock, as
        # any read of the whole store does, not this one: delivery, disposal and stats go
        # on. The hand-over is not started: queuing the replay wakes nobody here.
        with store._lock:
            if replay:
                sub.handover.put(_Relist(list(store._objects.values()), []))
            status = store._status
            if status.state == "stopped":  # nothing will feed it: it ends after its replay
                sub.handover.put(End(_as_exception(status.error)), wait=False)
            with self._lock:
                self._subscribers = (*self._subscribers, sub)
        try:
            sub.start()
        except BaseException:  # e.g. no thread could be started: do not hold the writer
            self.remove(sub)
            raise
        return sub

    def remove(self, sub: _Subscriber) -> None:
        """Detach a subscriber (disposed, failed or completed) and end its delivery."""
        self._detach(sub, overflowed=False)

    def _detach(self, sub: _Subscriber, *, overflowed: bool) -> None:
        with self._lock:
            if sub not in self._subscribers:
                return
            self._subscribers = tuple(s for s in self._subscribers if s is not sub)
            self._past_waits += sub.handover.waits
            self._overflows += overflowed
        sub.handover.close()  # releases a writer waiting for its room, and ends its delivery

    def warn_stalled(self, sub: _Subscriber, waited: float) -> None:
        log.warning(
            "the watch feeding the store of %s has waited %.0f s for subscriber %s, whose "
            "buffer of %d is full: a stuck subscriber stalls its watch (see overflow='drop')",
            self._store.describe(),
            waited,
            sub.name,
            self._size,
        )

    def stats(self) -> DispatchStats:
        with self._lock:
            subscribers = self._subscribers
            past_waits, overflows = self._past_waits, self._overflows
        return DispatchStats(
            subscribers=len(subscribers),
            buffer_size=self._size,
            max_backlog=max((s.handover.backlog() for s in subscribers), default=0),
            writer_waiting=any(s.handover.producers_waiting for s in subscribers),
            writer_waits=past_waits + sum(s.handover.waits for s in subscribers),
            overflows=overflows,
        )


class _Subscriber:
    """One subscription of a shared store: its hand-over, and its delivery thread or drain."""

    __slots__ = ("dispatcher", "drain", "events", "handover", "name", "observer", "thread")

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

        def on_stall(waited: float) -> None:
            dispatcher.warn_stalled(self, waited)

        size = dispatcher._size
        self.thread: threading.Thread | None = None
        self.drain: ScheduledDrain[_Entry] | None = None
        if scheduler is None:
            self.handover: Handover[_Entry] = Handover(
                size, drop=drop, on_stall=on_stall, started=False
            )
            self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        else:
            self.drain = ScheduledDrain(
                scheduler,
                size,
                self._deliver,
                self._failed,
                ended=self._ended,
                drop=drop,
                on_stall=on_stall,
                started=False,
            )
            self.handover = self.drain.handover

    def start(self) -> None:
        """Start delivering: what was queued before (a replay) goes first."""
        if self.thread is not None:
            self.thread.start()
        else:
            assert self.drain is not None
            self.drain.start()

    def dispose(self) -> None:
        self.dispatcher.remove(self)

    # -- delivery -------------------------------------------------------------------------

    def _run(self) -> None:
        """The body of a subscriber's own thread: deliver batches until it ends."""
        take = self.handover.take
        while batch := take(block=True):
            try:
                self._deliver(batch)
            except Exception as exc:
                self._failed(exc)
                return
            # Let go of it before waiting for the next one: a relist's entry holds every
            # object the store had, which the watch goes on replacing meanwhile. Kept,
            # each replaced object would outlive its replacement and start the collector.
            del batch
        self._ended()

    def _deliver(self, batch: list[_Entry]) -> None:
        """Deliver a batch, stopping early once the subscription has ended."""
        if self.events:
            self._deliver_events(batch)
            return
        on_next = self.observer.on_next
        handover = self.handover
        for entry in batch:
            if handover.closed:
                return
            if type(entry) is dict:  # an applied object: nearly every entry
                on_next(entry)
            elif isinstance(entry, _Relist):
                for obj in entry.objects:
                    if handover.closed:
                        return
                    on_next(obj)
            elif isinstance(entry, End):
                self._end(entry)
                return
            elif not isinstance(entry, Delete):
                on_next(entry)  # an applied object that is not a plain dict

    def _deliver_events(self, batch: list[_Entry]) -> None:
        on_next = self.observer.on_next
        handover = self.handover
        for entry in batch:
            if handover.closed:
                return
            if type(entry) is dict:  # an applied object: nearly every entry
                on_next(Apply(entry))
            elif isinstance(entry, Delete):
                on_next(entry)
            elif isinstance(entry, _Relist):
                for obj in entry.objects:
                    if handover.closed:
                        return
                    on_next(Apply(obj))
                for obj in entry.deleted:
                    on_next(Delete(obj))
            elif isinstance(entry, End):
                self._end(entry)
                return
            else:
                on_next(Apply(entry))  # an applied object that is not a plain dict

    def _end(self, end: End) -> None:
        """Nothing feeds the store any more: detach, then complete or fail the observer."""
        self.dispatcher.remove(self)
        end.send(self.observer, f"subscriber {self.name}")

    def _failed(self, exc: Exception) -> None:
        """The callback raised: detach (the upstream of this subscription), then tell it."""
        self.dispatcher.remove(self)
        fail_consumer(
            self.observer,
            f"subscriber {self.name} of the store of {self.dispatcher._store.describe()}",
            exc,
        )

    def _ended(self) -> None:
        if self.handover.overflowed:
            error = SubscriberOverflow(
                f"subscriber {self.name} of the store of {self.dispatcher._store.describe()} "
                f"fell {self.dispatcher._size} entries behind and was dropped "
                "(overflow='drop'): resync from the store, e.g. subscribe again with "
                "replay=True"
            )
            try:
                self.observer.on_error(error)
            except Exception:
                log.warning("%s", str(error))


def _as_exception(error: BaseException | None) -> Exception | None:
    """The error a failed pipeline passes to subscribers (an ``Exception`` in practice)."""
    if error is None or isinstance(error, Exception):
        return error
    return RuntimeError(f"the pipeline feeding the store failed: {error!r}")
