"""SharedWatches: one watch per resource and scope, serving every store and stream it covers.

Each open watch is one ``watcher()`` subscription with ``default_backoff()``. Every request
(``store()`` or ``events()``) is a view: a :class:`~rxkube._views.ViewKey`. An identical
request shares the view; a request that an open watch covers gets a view of its own fed
from that watch through a :class:`~rxkube._views.ViewFilter`; anything else opens a watch.
Views are reference-counted; one that nothing uses is retired after ``linger`` seconds;
when the view a watch was opened for (its anchor) retires while narrower views remain,
they are handed over, at the resourceVersion they are at, to watches of their own. A wider
request may absorb narrower watches once it has caught up with them (see ``_caught_up``).

Why one file this long: the registry, the views and the watches it moves views between
share the two locks below, and every move of a view is read in one place.

Locks, in the order they may be taken: ``SharedWatches._lock`` (the registry: which views
and watches exist, their reference counts, and every move of a view between watches), then
one watch's ``lock`` (its views' filters and whether it is closed; held by the watch thread
while it filters one event). Two watch locks are only ever held together under the registry
lock. A watch made under the registry lock is started (its thread) once that lock is
released, and one closed before is not started; ``closed`` and ``subscription`` are set
under the watch's lock, so that of a closing and a start the one that comes second disposes
the subscription. Neither lock is held while user code runs: a view's items are queued, in the filter's order, to its
:class:`~rxkube._delivery.Handover` under its watch's lock; its store writes and its
subscribers' callbacks run when the thread that queued them to an idle view flushes its
burst, after every lock is released. The watch thread waits for a full view outside them.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal, TypeAlias

import orjson
import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from ._cache import Run, Store, Writer
from ._delivery import End, Handover, burst, defer, fail_consumer
from ._timeouts import checked_seconds
from ._views import ViewFilter, ViewKey, absorbs, breadth, covers
from ._watching import _watch
from .client import Api
from .events import Event, Init, InitApply, Object
from .operators import default_backoff
from .protocol import Config
from .resource import Resource

if TYPE_CHECKING:
    from .client import Client

__all__ = ["SharedWatches", "ViewStats", "ViewStore", "WatchStats"]

log = logging.getLogger(__name__)

Absorb: TypeAlias = Literal["auto", "always", "never"]
"""When a new watch takes over narrower open watches it covers (see :class:`SharedWatches`)."""

_VIEW_BACKLOG = 64
"""Items a view may have queued or being delivered before its watch waits for it."""

_REACHED_MAX = 100_000
"""The resourceVersions a watch waiting to absorb others remembers having reached, at most:
forgetting them all past this delays an absorption (until a change both watches see),
never makes one unsound."""

_numbers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class ViewStats:
    """One view: what it selects and who uses it.

    Attributes:
        namespace: its namespace, ``None`` for all.
        label_selector: its label requirements (canonical), or ``None``.
        field_selector: its field requirements (canonical), or ``None``.
        metadata_only: whether it holds ``PartialObjectMetadata``.
        stores: ``store()`` references not yet closed.
        subscribers: subscriptions of its ``events()`` stream.
        objects: objects in its store.
        ready: whether its store has a complete list.
    """

    namespace: str | None
    label_selector: str | None
    field_selector: str | None
    metadata_only: bool
    stores: int
    subscribers: int
    objects: int
    ready: bool


@dataclass(frozen=True, slots=True)
class WatchStats:
    """One open watch connection and the views it serves.

    Attributes:
        resource: the resource's full name, e.g. ``"deployments.apps"``.
        namespace: the watch's namespace, ``None`` for all.
        label_selector: the label selector sent to the server, or ``None``.
        field_selector: the field selector sent to the server, or ``None``.
        metadata_only: whether the watch asks for metadata only.
        resource_version: the last resourceVersion the views were brought to.
        views: the views it serves; the first is the one it was opened for.
    """

    resource: str
    namespace: str | None
    label_selector: str | None
    field_selector: str | None
    metadata_only: bool
    resource_version: str | None
    views: tuple[ViewStats, ...]


class ViewStore(Store):
    """The store of a shared-watch view: a :class:`~rxkube.Store` that is also a reference.

    Every :meth:`SharedWatches.store` call for the same request returns the same store and
    takes one reference; :meth:`close` (or leaving a ``with`` block) gives one back. When
    nothing uses a view any more, it is retired after the linger and its store stops
    following the server.
    """

    def __init__(self, name: str, release: Callable[[], None]) -> None:
        """Made by :class:`SharedWatches`; not meant to be created directly."""
        super().__init__(name)
        self._release = release

    def close(self) -> None:
        """Give back one reference taken by :meth:`SharedWatches.store`."""
        self._release()

    def __enter__(self) -> ViewStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- delivery ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Batch:
    """Events for the view's store and its current subscribers."""

    events: list[Event]


@dataclass(slots=True)
class _Join:
    """A new subscriber: its first events (the view's state), then the live stream."""

    sub: _Subscriber
    snapshot: list[Event]


_Item: TypeAlias = _Batch | _Join | End


class _Subscriber:
    """One subscription of a view's stream; ``finish`` gives its reference back, once."""

    __slots__ = ("_lock", "active", "name", "observer", "release")

    def __init__(self, observer: abc.ObserverBase[Event], name: str) -> None:
        self.observer = observer
        self.name = name
        self.active = True
        self.release: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def finish(self) -> None:
        """End the subscription (disposed, or its callback raised) and release the view."""
        with self._lock:
            self.active = False
            release, self.release = self.release, None
        if release is not None:
            release()


# -- views and watches ------------------------------------------------------------------


class _View:
    """One request's view: its filter, its store, its subscribers and their hand-over."""

    def __init__(
        self,
        key: ViewKey,
        watch: _Watch,
        release: Callable[[_View], None],
        failed: Callable[[_View, Exception], None],
    ) -> None:
        self.key = key
        self.watch = watch
        self.filter = ViewFilter(watch.key, key)
        self.store = ViewStore(str(key), lambda: release(self))
        self._writer = Writer(self.store)
        self.stores = 0
        self.subscribers: list[_Subscriber] = []
        self.subscriptions = 0
        self.timer: threading.Timer | None = None
        self.retired = False
        # The view's items (its store's events, joining subscribers, the end) go through
        # one hand-over, queued under its watch's lock, so their order is the filter's.
        # Whichever thread finds it idle delivers them, once it has released every lock
        # (at the end of its burst): the watch's thread for live events, no thread switch.
        self.handover: Handover[_Item] = Handover(_VIEW_BACKLOG, self._wake, on_stall=self._stalled)
        # The store's writer status follows the watch serving the view: one Run while
        # watches feed it, told whenever the serving watch waits to resubscribe.
        self._run: Run | None = None
        # What ended the view itself (its store could not apply an event): set on its
        # delivering thread, never cleared; a watch arriving later starts no run for it.
        self.error: Exception | None = None
        self._on_failed = failed

    def follow(self) -> None:
        """Follow the state of the watch serving the view, now ``self.watch``; its lock held.

        The store is "running" while that watch is subscribed, "retrying" while it waits
        to resubscribe: a view that joins a retrying watch, or is moved onto one, too.
        """
        if self.error is not None:
            return
        if self._run is None:
            self._run = self._writer.new_run()
            self._run.start()
        retry = self.watch.retry
        if retry is None:
            self._run.source_resumed(self)
        else:
            self._run.source_retrying(self, *retry)

    def stopped(self, error: Exception | None = None) -> None:
        """Nothing feeds the view any more: the store shows "stopped" (with ``error``)."""
        run, self._run = self._run, None
        if run is not None and error is None:
            run.disposed()
        elif run is not None:
            assert error is not None
            run.failed(error, _ignore)

    @property
    def refs(self) -> int:
        return self.stores + self.subscriptions

    def put(self, item: _Item) -> None:
        """Queue an item; the caller holds the watch's lock and has a burst open.

        It never waits here (the watch thread waits for room once it has released the
        lock, see ``_on_event``): the queue's bound is kept by that one producer of live
        events, the other items are one per subscription or view change.
        """
        self.handover.put(item, wait=False)

    def _wake(self) -> None:
        """The first item for an idle view: deliver when this thread's burst flushes."""
        if not defer(self._drain):
            raise RuntimeError(f"an item of the shared view {self.key} was queued outside a burst")

    def _drain(self) -> None:
        handover = self.handover
        handover.consumer_thread = threading.get_ident()
        while batch := handover.take():
            for item in batch:
                self._process(item)
            if handover.step_aside():
                return  # the watch's thread waits for room: it delivers from here on

    def _stalled(self, waited: float) -> None:
        log.warning(
            "the shared watch serving the view %s has waited %.0f s for it: one of its "
            "subscribers is stuck, and a stuck subscriber stalls its watch",
            self.key,
            waited,
        )

    def _process(self, item: _Item) -> None:
        if self.error is not None and not isinstance(item, End):
            if isinstance(item, _Join):  # joined as the view failed: it ends at once
                item.sub.active = False
                End(self.error).send(item.sub.observer, item.sub.name)
            return  # the store and the streams stopped at the event it could not apply
        if isinstance(item, _Batch):
            events = item.events
            for applied, event in enumerate(events):
                try:
                    self._writer.apply(event)
                except Exception as exc:
                    # As a reflect() pipeline fails: the store stops at its last good
                    # state and says why, and the streams end with it, never ahead of it.
                    exc.add_note(f"in the store of the shared view {self.key}, at {event!r:.200}")
                    self.error = exc
                    events = events[:applied]
                    break
            for sub in self.subscribers:
                self._deliver(sub, events)
            if any(not sub.active for sub in self.subscribers):
                self.subscribers = [sub for sub in self.subscribers if sub.active]
            if self.error is not None:
                self._on_failed(self, self.error)
        elif isinstance(item, _Join):
            if self._deliver(item.sub, item.snapshot):
                self.subscribers.append(item.sub)
        else:
            subscribers, self.subscribers = self.subscribers, []
            for sub in subscribers:
                if sub.active:
                    sub.active = False
                    item.send(sub.observer, sub.name)

    def _deliver(self, sub: _Subscriber, events: list[Event]) -> bool:
        on_next = sub.observer.on_next
        for event in events:
            if not sub.active:
                return False
            try:
                on_next(event.modify(_own))
            except Exception as exc:
                # The policy of every seam: dispose the upstream (this subscription
                # alone: the shared watch and the other subscribers go on), then tell it.
                sub.finish()
                fail_consumer(sub.observer, sub.name, exc)
                return False
        return True


class _Watch:
    """One open watch connection and the views it feeds."""

    def __init__(self, key: ViewKey, watch_from: str | None = None) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.views: list[_View] = []
        self.anchor: _View | None = None
        # Where its views are, known before it starts: a watch closed before its start
        # hands them over from there.
        self.applied_rv = watch_from
        self.resume: list[str | None] = [watch_from]
        self.closed = False
        # The narrower watches it is to absorb once it has caught up with them, and the
        # wider ones waiting to absorb it (both replaced, never changed in place, under
        # the registry lock); what it has caught up to: the resourceVersions its views have
        # been brought to since its last list began (under its lock, see _caught_up).
        self.absorbing: list[_Watch] = []
        self.absorbers: list[_Watch] = []
        self.reached: set[str] = set()
        self.subscription: abc.DisposableBase | None = None
        # The hand-over of a view whose room the watch thread waits for, if it does.
        self.stalled: Handover[_Item] | None = None
        # While it waits to resubscribe: the error and when (time.time()); under its lock.
        self.retry: tuple[BaseException, float] | None = None

    def is_closed(self) -> bool:
        """Whether the watch is closed: its thread stops waiting for a view's room."""
        return self.closed

    def stats(self) -> WatchStats:
        with self.lock:
            views = tuple(_view_stats(view) for view in self.views)
            rv = self.applied_rv
        key = self.key
        return WatchStats(
            key.resource.full_name,
            key.namespace,
            key.label_selector,
            key.field_selector,
            key.metadata_only,
            rv,
            views,
        )


def _view_stats(view: _View) -> ViewStats:
    key = view.key
    return ViewStats(
        key.namespace,
        key.label_selector,
        key.field_selector,
        key.metadata_only,
        view.stores,
        view.subscriptions,
        len(view.store),
        view.store.is_ready(),
    )


class SharedWatches:
    """One watch per resource and scope, shared by every store and stream it covers.

    Identical requests share one store and one watch. A request that an open watch covers
    (same resource; the watch cluster-wide or in the request's namespace; each of the
    watch's label requirements implied by the request's; the watch's field requirements
    among the request's, the others on ``metadata.name``/``metadata.namespace``; the watch
    full unless the request is metadata-only) is served from it by filtering locally, with
    the API server's semantics: an object that stops matching leaves with a ``Delete``, one
    that starts matching enters with an ``Apply``, and a relist of the watch is a relist of
    every view. See the "Shared watches" page for the rules and their proofs.

    Args:
        client: the connection every watch uses.
        config: timeouts, paging and list strategy for every watch (no selectors: those
            come with each request).
        linger: seconds a view that nothing uses any more stays open, so that a request
            coming back soon finds it ready; ``math.inf``: until :meth:`close`.
        absorb: whether a new watch takes over narrower open watches it covers, moving
            their views onto itself (each relists from it) and closing them, once it has
            caught up with them (never moving a view back in time): ``"auto"``
            when it is obviously right (same namespace, the new watch's requirements a
            subset of the other's), ``"always"`` whenever it covers them, ``"never"``.

    Raises:
        TypeError: ``linger`` is not a number.
        ValueError: ``config`` has selectors, ``linger`` is negative or NaN, or ``absorb``
            is not one of the three values.

    Example:
        >>> with SharedWatches(client) as watches:                          # doctest: +SKIP
        ...     everything = watches.store("pods")
        ...     web = watches.store("pods", namespace="prod", label_selector="app=web")
        ...     web.wait_until_ready(timeout=30)   # both served by one watch
    """

    def __init__(
        self,
        client: Client,
        *,
        config: Config | None = None,
        linger: float = 5.0,
        absorb: Absorb = "auto",
    ) -> None:
        config = config or Config()
        if config.label_selector or config.field_selector:
            raise ValueError(
                "SharedWatches(config=...) takes no selectors: give them with each request"
            )
        linger = checked_seconds(linger, "SharedWatches()", "linger")
        if absorb not in ("auto", "always", "never"):
            raise ValueError(f"absorb must be 'auto', 'always' or 'never', got {absorb!r}")
        self._client = client
        self._config = config
        self._linger = linger
        self._absorb = absorb
        self._lock = threading.Lock()
        self._views: dict[ViewKey, _View] = {}
        self._watches: list[_Watch] = []
        self._closed = False

    def __enter__(self) -> SharedWatches:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        with self._lock:
            watches, views = len(self._watches), len(self._views)
        return f"<SharedWatches {self._client.server}: {watches} watches, {views} views>"

    # -- requests ---------------------------------------------------------------------------

    def store(
        self,
        resource: str | Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        metadata_only: bool = False,
    ) -> ViewStore:
        """The store of exactly the objects of that scope and selectors; one reference.

        Args:
            resource: what ``Api`` accepts (``"pods"``, ``"deployments.apps"``, ...).
            namespace: one namespace; ``None`` for all (ignored for cluster-scoped kinds).
            label_selector: e.g. ``"app=web,tier in (a,b)"``.
            field_selector: e.g. ``"metadata.name=web"``.
            metadata_only: hold ``PartialObjectMetadata`` objects, as
                ``metadata_watcher()`` delivers them.

        Returns:
            The view's store (the same object for the same request); wait for it with
            ``wait_until_ready``; give the reference back with ``close()``.

        Raises:
            ValueError: a selector is invalid.
            rxkube.errors.ConfigError: the server has no such resource.
            RuntimeError: the SharedWatches is closed.
        """
        key = self._key(resource, namespace, label_selector, field_selector, metadata_only)
        starting: list[_Watch] = []
        with burst():  # a new view's first state is delivered at the burst's end
            with self._lock:
                view = self._acquire(key, starting)
                view.stores += 1
            self._start(starting)
        return view.store

    def events(
        self,
        resource: str | Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        metadata_only: bool = False,
    ) -> Observable[Event]:
        """A hot stream of the view's events, as a private ``watcher()`` would emit them.

        Each subscription starts with ``Init``, an ``InitApply`` per object the view holds
        and ``InitDone`` (nothing before the first list completes), then gets ``Apply`` and
        ``Delete`` as they happen and a relist whenever the watch relists. Deliveries to a
        view are serial and in order, made by the thread that finds the view idle once it
        has released every lock: the subscribing thread for the snapshot of a quiet view,
        the watch's thread for live events (a subscribing thread that is delivering them
        gives way as soon as the watch waits); a scheduler given to ``subscribe`` is, as in
        RxPY, only the subscription's default and does not move them (``observe_on`` does).
        A slow subscriber slows its watch (nothing is dropped). Each subscriber's objects
        are its own, as a private watcher's are: copies of what the view's store holds
        (and every view of the watch, by reference), so changing them changes nothing
        else; a copy costs about a decoding of the object, per subscriber and event. A callback that raises ends that subscription alone: it is disposed,
        then its ``on_error`` gets a :class:`~rxkube.errors.ConsumerError` naming it,
        chained to the exception. Each subscription holds a reference to the view;
        ``close()`` completes every subscription.

        Arguments are those of :meth:`store`.

        Raises:
            ValueError: a selector is invalid (when called, not when subscribed).
            rxkube.errors.ConfigError: the server has no such resource.
        """
        key = self._key(resource, namespace, label_selector, field_selector, metadata_only)

        def subscribe(
            observer: abc.ObserverBase[Event], _scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sub = _Subscriber(observer, f"subscriber {next(_numbers)} of the shared view {key}")
            starting: list[_Watch] = []
            with burst():  # the snapshot is delivered at its end, once the locks are released
                with self._lock:
                    closed = self._closed
                    if not closed:
                        view = self._acquire(key, starting)
                        view.subscriptions += 1
                        sub.release = functools.partial(self._unsubscribe, view)
                        with view.watch.lock:
                            view.put(_Join(sub, view.filter.snapshot()))
                self._start(starting)
                if closed:
                    observer.on_completed()
                    return Disposable()
            return Disposable(sub.finish)

        return reactivex.create(subscribe)

    def stats(self) -> list[WatchStats]:
        """The open watches, each with the views it serves (a snapshot)."""
        with self._lock:
            watches = list(self._watches)
        return [watch.stats() for watch in watches]

    def close(self) -> None:
        """End every watch: subscriptions complete, stores stop following the server."""
        with burst():  # the streams complete at its end, once the locks are released
            with self._lock:
                self._closed = True
                watches, self._watches = self._watches, []
                for view in self._views.values():
                    self._retire_locked(view)
                self._views.clear()
                for watch in watches:
                    with watch.lock:
                        watch.closed = True
                        for view in watch.views:
                            view.stopped()
                            view.put(End(None))
                        watch.views.clear()
            _dispose(watches)

    # -- the registry, under self._lock -----------------------------------------------------

    def _key(
        self,
        resource: str | Resource,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        metadata_only: bool,
    ) -> ViewKey:
        resolved = resource if isinstance(resource, Resource) else self._client.resolve(resource)
        return ViewKey.of(resolved, namespace, label_selector, field_selector, metadata_only)

    def _acquire(self, key: ViewKey, starting: list[_Watch]) -> _View:
        """The view of ``key``, made and attached to a watch if needed (in a burst).

        A watch it opens is added to ``starting``, to be started once the lock is released.
        """
        if self._closed:
            raise RuntimeError("this SharedWatches is closed")
        view = self._views.get(key)
        if view is not None:
            if view.timer is not None:
                view.timer.cancel()
                view.timer = None
            return view
        watch = self._covering(key)
        if watch is None:
            watch = _Watch(key)
            view = _View(key, watch, self._release, self._view_failed)
            watch.anchor = view
            watch.views.append(view)
            view.follow()
            self._watches.append(watch)
            watch.absorbing = [w for w in self._watches if w is not watch and self._absorbs(key, w)]
            for narrow in watch.absorbing:
                narrow.absorbers = [*narrow.absorbers, watch]
            self._views[key] = view
            starting.append(watch)
            return view
        view = _View(key, watch, self._release, self._view_failed)
        with watch.lock:
            assert watch.anchor is not None
            view.filter.seed(watch.anchor.filter)
            # Put under the watch's lock, so that its next events come after the seed.
            view.put(_Batch(view.filter.snapshot()))
            watch.views.append(view)
            view.follow()
        self._views[key] = view
        return view

    def _covering(self, key: ViewKey) -> _Watch | None:
        """The narrowest open watch that covers ``key``, if any."""
        found = [w for w in self._watches if covers(w.key, key)]
        return max(found, key=lambda w: breadth(w.key), default=None)

    def _absorbs(self, wide: ViewKey, watch: _Watch) -> bool:
        if self._absorb == "never":
            return False
        if self._absorb == "always":
            return covers(wide, watch.key) and wide != watch.key
        return absorbs(wide, watch.key)

    def _start(self, watches: list[_Watch]) -> None:
        """Start watches made under the registry lock, now released; not those closed since."""
        for watch in watches:
            with watch.lock:
                if watch.closed:
                    continue  # retired, absorbed or closed before its start
            subscription = self._subscribe(watch)
            with watch.lock:
                closed = watch.closed
                if not closed:
                    watch.subscription = subscription
            if closed:  # closed while it started: its closing found no subscription
                subscription.dispose()

    def _subscribe(self, watch: _Watch) -> abc.DisposableBase:
        key = watch.key
        api = Api(self._client, key.resource, namespace=key.namespace)
        config = dataclasses.replace(
            self._config, label_selector=key.label_selector, field_selector=key.field_selector
        )
        inner = _watch(
            api,
            config,
            metadata_only=key.metadata_only,
            resume=watch.resume,
            watch_from=watch.resume[0],
        )

        def subscribed(_scheduler: abc.SchedulerBase | None) -> Observable[Event]:
            with watch.lock:
                watch.retry = None
                for view in watch.views:
                    view.follow()
            return inner

        def on_retry(error: BaseException, delay: float) -> None:
            with watch.lock:
                watch.retry = (error, time.time() + delay)
                for view in watch.views:
                    view.follow()

        source = reactivex.defer(subscribed).pipe(default_backoff(on_retry=on_retry))

        def on_next(event: Event) -> None:
            self._on_event(watch, event)

        def on_error(exc: Exception) -> None:
            self._on_failed(watch, exc)

        return source.subscribe(on_next, on_error)

    def _release(self, view: _View) -> None:
        starting: list[_Watch] = []
        with self._lock:
            if view.retired or view.stores == 0:
                return
            view.stores -= 1
            closing = self._unused(view, starting)
        _dispose(closing)
        self._start(starting)

    def _unsubscribe(self, view: _View) -> None:
        starting: list[_Watch] = []
        with self._lock:
            if view.retired:
                return
            view.subscriptions -= 1
            closing = self._unused(view, starting)
        _dispose(closing)
        self._start(starting)

    def _unused(self, view: _View, starting: list[_Watch]) -> list[_Watch]:
        """A reference was given back: retire the view at once or after the linger.

        Returns the watches to close, and adds to ``starting`` those to start (both once
        the lock is released).
        """
        if view.refs > 0 or view.timer is not None:
            return []
        if self._linger == 0:
            return self._retire(view, starting)
        if self._linger > threading.TIMEOUT_MAX:
            return []  # longer than any timer: kept until close()
        timer = threading.Timer(self._linger, self._expire, args=(view,))
        timer.name = f"rxkube-linger-{next(_numbers)}"
        timer.daemon = True
        view.timer = timer
        timer.start()
        return []

    def _expire(self, view: _View) -> None:
        starting: list[_Watch] = []
        with self._lock:
            if view.timer is None or view.refs > 0 or view.retired:
                return
            view.timer = None
            closing = self._retire(view, starting)
        _dispose(closing)
        self._start(starting)

    def _retire_locked(self, view: _View) -> None:
        view.retired = True
        if view.timer is not None:
            view.timer.cancel()
            view.timer = None

    def _retire(self, view: _View, starting: list[_Watch]) -> list[_Watch]:
        """Take an unused view out; if it was its watch's anchor, close the watch (returned,
        to be disposed once the lock is released) and hand the other views over (to
        watches added to ``starting``)."""
        self._retire_locked(view)
        del self._views[view.key]
        watch = view.watch
        with watch.lock:
            watch.views.remove(view)
            view.stopped()
            if view is not watch.anchor:
                return []
            watch.closed = True
            rest, watch.views = watch.views, []
            resume = watch.applied_rv
        self._watches.remove(watch)
        self._hand_over(rest, resume, starting)
        return [watch]

    def _hand_over(self, views: list[_View], resume: str | None, starting: list[_Watch]) -> None:
        """Give views whose watch closed watches of their own, from where they are.

        Views that hold a complete state at ``resume`` continue with a watch from that
        resourceVersion (no list); otherwise (a relist was in progress) the new watch lists,
        and each view's relist swaps in atomically as usual.
        """
        listed = resume is not None and all(
            v.filter.members is not None and v.filter.pending is None for v in views
        )
        remaining = sorted(views, key=lambda v: breadth(v.key))
        while remaining:
            anchor = next(
                (v for v in remaining if not any(_wider(u.key, v.key) for u in remaining)),
                remaining[0],
            )
            group = [v for v in remaining if covers(anchor.key, v.key)]
            remaining = [v for v in remaining if v not in group]
            watch = _Watch(anchor.key, resume if listed else None)
            watch.anchor = anchor
            for view in [anchor, *(v for v in group if v is not anchor)]:
                view.filter.retarget(watch.key, view.key)
                view.watch = watch
                watch.views.append(view)
                view.follow()  # the new watch's state, not the closed one's
            self._watches.append(watch)
            starting.append(watch)

    # -- the watch's thread -------------------------------------------------------------------

    def _on_event(self, watch: _Watch, event: Event) -> None:
        # Within a watch's read this joins the read's burst: its views are delivered to
        # once the read is done. A list page's events are delivered one by one.
        with burst():
            touched: list[_View] = []
            with watch.lock:
                if watch.closed:
                    return
                watch.applied_rv = watch.resume[0]
                for view in watch.views:
                    events = view.filter.step(event)
                    if events:
                        view.put(_Batch(events))
                        touched.append(view)
                if watch.absorbing:
                    _note_reached(watch, event)
                # Only a list's end or a change can complete a catching up (see _caught_up).
                changed = not isinstance(event, (Init, InitApply))
                absorbing = [watch] if changed and watch.absorbing else []
                absorbing += watch.absorbers if changed else []
            # Backpressure, outside the lock: a view whose subscribers are behind holds
            # the watch (and its socket) until they take what is queued.
            me = threading.get_ident()
            for view in touched:
                handover = view.handover
                # Its own items never wait for it (it delivers them when its burst ends).
                if handover.full() and handover.consumer_thread != me:
                    watch.stalled = handover
                    handover.wait_for_room(watch.is_closed)
                    watch.stalled = None
            # An event of a watch waiting to absorb others, or of one waiting to be
            # absorbed, may be the one that shows the wider one has caught up.
            for wide in absorbing:
                self._take_over(wide)

    def _take_over(self, wide: _Watch) -> None:
        """Move onto ``wide`` the views of the narrower watches it absorbs and has caught up
        with (see :func:`_caught_up`); close those."""
        closing: list[_Watch] = []
        with self._lock:
            for narrow in wide.absorbing:
                if not wide.closed and narrow in self._watches and covers(wide.key, narrow.key):
                    with narrow.lock, wide.lock:
                        if not _caught_up(wide, narrow):
                            continue
                        self._move_views(narrow, wide)
                    self._watches.remove(narrow)
                    closing.append(narrow)
                wide.absorbing = [w for w in wide.absorbing if w is not narrow]
                narrow.absorbers = [w for w in narrow.absorbers if w is not wide]
            if not wide.absorbing:
                with wide.lock:
                    wide.reached = set()
        _dispose(closing)

    def _move_views(self, narrow: _Watch, wide: _Watch) -> None:
        """Close ``narrow`` and move its views onto ``wide``; both locks held."""
        assert wide.anchor is not None
        narrow.closed = True
        views, narrow.views = narrow.views, []
        for view in views:
            view.filter.retarget(wide.key, view.key)
            view.filter.seed(wide.anchor.filter)
            view.watch = wide
            wide.views.append(view)
            view.follow()
            view.put(_Batch(view.filter.snapshot()))

    def _view_failed(self, view: _View, exc: Exception) -> None:
        """A view's store could not apply an event: the view ends with ``exc``, alone.

        Called on the view's delivering thread, with no lock held. Its store stops with
        the error, its streams fail (the ``End`` is queued behind what they were given),
        and it leaves the registry: its watch goes on for the other views, and a later
        request for the same view gets a new one.
        """
        log.error("the store of the shared view %s failed; the view ends: %s", view.key, str(exc))
        starting: list[_Watch] = []
        closing: list[_Watch] = []
        with burst(), self._lock:  # the streams fail at the burst's end, outside the locks
            with view.watch.lock:
                view.stopped(exc)
                view.put(End(exc))
            if not view.retired:
                closing = self._retire(view, starting)
        _dispose(closing)
        self._start(starting)

    def _on_failed(self, watch: _Watch, exc: Exception) -> None:
        """The watch gave up (an error backoff does not retry): its views fail with it."""
        log.error("the shared watch of %s failed: %s", watch.key, str(exc))
        with burst(), self._lock:  # the streams fail at the burst's end, outside the locks
            with watch.lock:
                watch.closed = True
                views, watch.views = watch.views, []
                for view in views:
                    view.stopped(exc)
                    view.put(End(exc))
            if watch in self._watches:
                self._watches.remove(watch)
            for view in views:
                self._retire_locked(view)
                self._views.pop(view.key, None)


def _note_reached(watch: _Watch, event: Event) -> None:
    """Remember a resourceVersion the views of ``watch`` have been brought to; lock held.

    A listed object's version (the list is at a resourceVersion at least as new), the
    list's own once it is complete, and each change's. A relist starts afresh: a list may
    be served from a cache older than what the watch saw before.
    """
    reached = watch.reached
    if isinstance(event, Init) or len(reached) >= _REACHED_MAX:
        reached.clear()
    if isinstance(event, InitApply):
        version = event.obj["metadata"].get("resourceVersion")
    else:  # InitDone: the list's; Apply, Delete: the change's
        version = None if isinstance(event, Init) else watch.resume[0]
    if version is not None:
        reached.add(version)


def _caught_up(wide: _Watch, narrow: _Watch) -> bool:
    """Whether ``wide`` may take over the views of ``narrow`` now; both locks held.

    A view must never go back in time, yet the wide watch's list may be older than what
    the narrow watch has already delivered. resourceVersions are opaque to clients except
    for equality, so the criterion is one: the resourceVersion of the last list or change
    the narrow watch brought its views to (``applied_rv``; bookmarks do not move it) is one
    the wide watch's views have been brought to (``reached``). Why that is sound: the
    narrow views show the server's state at that version, restricted to their selectors,
    and it stays their state until the next change they select, which they have not seen;
    the wide watch's views are at that version or later, and every object the narrow
    watch selects the wide one selects too, so the wide watch's state, restricted the
    same way, is the narrow views' state or a newer one: seeding them from it moves them
    forward or not at all. Why it comes true: both streams carry each change at the same
    resourceVersion (one that makes an object leave the narrow selector is its DELETED
    there and its MODIFIED in the wide watch), so once the slower of the two watches has
    delivered a change the narrow watch selects, the criterion holds. In a quiet scope it
    may not hold yet (the narrow's last change a deletion from before the wide list, or
    its list's version no object's): the narrow watch then serves its views until its
    next change. Neither watch may be in a relist (the views would be seeded from a
    half-swapped state); narrow views that never had a list show nothing to go back from.
    """
    assert wide.anchor is not None and narrow.anchor is not None
    listed, shown = wide.anchor.filter, narrow.anchor.filter
    if listed.members is None or listed.pending is not None:
        return False
    if shown.members is None:
        return True
    return shown.pending is None and narrow.applied_rv in wide.reached


def _wider(a: ViewKey, b: ViewKey) -> bool:
    """Whether ``a`` covers ``b`` strictly (``b`` does not cover ``a`` back)."""
    return a != b and covers(a, b) and not covers(b, a)


def _dispose(watches: list[_Watch]) -> None:
    """Dispose closed watches; release a watch thread waiting for a view's room."""
    for watch in watches:
        with watch.lock:  # None: it is starting, and its start disposes it (see _start)
            subscription = watch.subscription
        if subscription is not None:
            subscription.dispose()
        stalled = watch.stalled
        if stalled is not None:
            stalled.wake_producers()


def _own(obj: Object) -> Object:
    """A subscriber's own copy of an object of a view.

    A private ``watcher()`` gives each subscriber objects nothing else holds (decoded
    from the server's line), and ``events()`` promises what it would emit; a view's
    objects are its store's, its filter's and, by reference, every view's of its watch, so
    a subscriber that changed one (trimmed what it received, say) would change them
    all. So each subscriber gets a copy, made as it is delivered to: nothing for views
    without subscribers. Objects here are what orjson decoded (JSON's own types), so
    decoding their encoding again gives what decoding the server's line did, in C: on
    the benchmark's pods 21 us per subscriber and event against 27 for ``copy_object``
    (which walks each container in Python), about the same on small objects.
    """
    copied: Object = orjson.loads(orjson.dumps(obj))
    return copied


def _ignore(_error: Exception) -> None:
    """Where a view's failed run sends its error: the views' streams get it otherwise."""
