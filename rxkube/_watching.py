"""Watchers as ReactiveX Observables: the Rx driver of the list/watch state machine.

Each subscription runs one daemon thread (``rxkube-watch-<plural>``) that performs
the requests ``WatchMachine`` asks for, decodes each line with orjson and calls
``on_next`` on that thread, in order, so a slow consumer slows only its own watch and
TCP backpressure reaches the server.

A scheduler given to ``subscribe(scheduler=...)`` is, as everywhere in RxPY, the default
scheduler of the subscription (operators such as ``backoff()`` run their timers on it);
it does not move delivery. To receive events elsewhere, put ``observe_on(scheduler)``
(``rxkube.operators``) in the pipe: a bounded, in-order hand-over that keeps backpressure.

If ``on_next`` raises, the watch stops (its connection is closed) and the observer gets
``on_error(ConsumerError)``, chained to the exception: a bug in a subscriber is never
retried as if it were a server failure. Disposing the subscription aborts the request
in flight (a list or a watch, through the run's ``Cancellation``), closes its connection
and ends the thread at once, emitting nothing more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import orjson
import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from ._delivery import burst, fail_consumer, flush
from ._http import Cancellation
from ._telemetry import EventTally, WatchStats
from ._unchanged_parts import HeldOf, UnchangedParts
from .errors import DecodeError
from .events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from .protocol import Config, ListRequest, Request, WatchMachine
from .resource import Resource
from .selectors import FieldRequirement

if TYPE_CHECKING:
    from .client import Api, WatchStream

__all__ = ["for_store", "metadata_watcher", "watch", "watch_object", "watcher"]

log = logging.getLogger(__name__)

_NOTHING_SENT = object()


def watcher(api: Api, config: Config | None = None) -> Observable[Event]:
    """Watch a resource: an Observable of events that keeps a view correct forever.

    Every subscription lists the resource (``Init``, ``InitApply`` per object,
    ``InitDone``), then watches it (``Apply``/``Delete``), re-watching from the last
    resourceVersion when the server ends a watch and relisting after ``410 Gone``.
    Other failures (network, 5xx, 429, 401/403, a stalled connection) go to
    ``on_error`` as ``rxkube.errors`` exceptions: add ``default_backoff()`` to
    resubscribe. A resubscription relists from the last resourceVersion seen
    (``resourceVersionMatch=NotOlderThan``), so consumers stay consistent.

    Args:
        api: the resource (and namespace, if any) to watch.
        config: selectors, timeouts, paging and the initial list strategy.

    Returns:
        A cold Observable: each subscription opens its own list/watch.

    Raises:
        TypeError: ``api`` is not an ``Api``, or ``config`` not a ``Config``.

    Example:
        >>> reader, writer = store()                                  # doctest: +SKIP
        >>> watcher(Api(client, "pods")).pipe(reflect(writer)).subscribe()  # doctest: +SKIP
    """
    return _watch(api, _checked(api, config, "watcher()"), metadata_only=False)


watch = watcher
"""Alias of :func:`watcher`."""


def metadata_watcher(api: Api, config: Config | None = None) -> Observable[Event]:
    """Like :func:`watcher`, but the server sends only apiVersion, kind and metadata.

    Objects arrive as ``PartialObjectMetadata``: the cheapest way to watch many
    objects when their spec and status are not needed.
    """
    return _watch(api, _checked(api, config, "metadata_watcher()"), metadata_only=True)


def watch_object(api: Api, name: str) -> Observable[Object | None]:
    """Watch one object: its latest state each time it changes, ``None`` while it does not exist.

    Args:
        api: the resource; for a namespaced resource ``api`` must have a namespace.
        name: the object's name.

    Raises:
        TypeError: ``api`` is not an ``Api``, or ``name`` not a string.
        ValueError: ``name`` is empty, or the resource is namespaced and ``api`` has no namespace.
    """
    _checked(api, None, "watch_object()")
    if not isinstance(name, str):
        raise TypeError(f"watch_object(): name must be a string, not {type(name).__name__}")
    if not name:
        raise ValueError("watch_object needs an object name")
    if api.resource.namespaced and not api.namespace:
        raise ValueError(
            f"watch_object({name!r}): {api.resource.plural} are namespaced; "
            "give the Api a namespace"
        )
    # Escaped: a name of a path-segment-named kind (a Role, a ClusterRole) may hold ',',
    # '=' or a backslash, and unescaped, the name a\,b would select the object a,b.
    source = watcher(api, Config(field_selector=str(FieldRequirement("metadata.name", "=", name))))

    def subscribe(
        observer: abc.ObserverBase[Object | None], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        listed: list[Object | None] = [None]
        # The resourceVersion last sent (None: "does not exist"); the first state always goes out.
        last: list[object] = [_NOTHING_SENT]

        def send(obj: Object | None) -> None:
            rv = None if obj is None else obj.get("metadata", {}).get("resourceVersion")
            if rv != last[0]:
                last[0] = rv
                observer.on_next(obj)

        def on_event(event: Event) -> None:
            match event:
                case Init():
                    listed[0] = None
                case InitApply(obj):
                    listed[0] = obj
                case InitDone():
                    send(listed[0])
                case Apply(obj):
                    send(obj)
                case Delete():
                    send(None)

        return source.subscribe(
            on_event, observer.on_error, observer.on_completed, scheduler=scheduler
        )

    return reactivex.create(subscribe)


def _checked(api: object, config: object, what: str) -> Config:
    """``config`` (a default one for ``None``), once ``api`` and it have the right types."""
    # By what it has, not its class: a wrapper of an Api (a benchmark's gate) is one too.
    if not isinstance(getattr(api, "resource", None), Resource):
        raise TypeError(
            f"{what} needs an Api, e.g. Api(Client.default(), 'pods'), not"
            f" {type(api).__name__} {api!r:.60}"
        )
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    hint = (
        f"; a selector goes in Config(label_selector={config!r})" if isinstance(config, str) else ""
    )
    raise TypeError(f"{what}: config must be a Config, not {type(config).__name__}{hint}")


def _watch(
    api: Api,
    config: Config,
    *,
    metadata_only: bool,
    resume: list[str | None] | None = None,
    watch_from: str | None = None,
) -> Observable[Event]:
    """The watcher Observable; ``resume`` and ``watch_from`` serve shared watches.

    ``resume`` is the cell where each step publishes its resume point (one is made if
    not given); ``watch_from`` makes the first subscription watch from that
    resourceVersion without listing (the subscriber already holds the state there).
    """
    # The resume point outlives a subscription, so a resubscription after an error
    # relists from where the last one was instead of from scratch.
    cell: list[str | None] = [watch_from] if resume is None else resume
    first: list[str | None] = [watch_from]
    # So do its counters, found by metrics exporters and health probes.
    stats = WatchStats(
        _describe(api, config), api.resource.full_name, api.namespace, config.idle_timeout
    )

    def subscribe(observer: abc.ObserverBase[Event], held_of: HeldOf | None) -> abc.DisposableBase:
        start, first[0] = first[0], None
        parts = None if held_of is None else UnchangedParts(held_of)
        run = _WatchRun(api, config, metadata_only, observer, cell, stats, start, parts)
        thread = threading.Thread(
            target=run.run, name=f"rxkube-watch-{api.resource.plural}", daemon=True
        )
        thread.start()
        return Disposable(run.stop)

    return _Watcher(subscribe)


class _Watcher(Observable[Event]):
    """A watcher's Observable, which a store's operator can subscribe to for itself."""

    def __init__(
        self, subscribe: Callable[[abc.ObserverBase[Event], HeldOf | None], abc.DisposableBase]
    ) -> None:
        super().__init__(_subscriber(subscribe, None))
        self._subscribe_reusing = subscribe

    def _for_store(self, held_of: HeldOf) -> Observable[Event]:
        return Observable(_subscriber(self._subscribe_reusing, held_of))


def _subscriber(
    subscribe: Callable[[abc.ObserverBase[Event], HeldOf | None], abc.DisposableBase],
    held_of: HeldOf | None,
) -> Callable[[abc.ObserverBase[Event], abc.SchedulerBase | None], abc.DisposableBase]:
    def subscribed(
        observer: abc.ObserverBase[Event], _scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return subscribe(observer, held_of)

    return subscribed


def for_store(source: Observable[Event], held_of: HeldOf) -> Observable[Event]:
    """``source`` as an operator that caches its objects and passes them on unchanged
    subscribes to it: a ``watcher()`` then decodes each line reusing the parts of the
    object ``held_of`` gives, the one its store holds (see ``rxkube._unchanged_parts``);
    anything else is ``source`` itself."""
    return source._for_store(held_of) if isinstance(source, _Watcher) else source


def _describe(api: Api, config: Config) -> str:
    where = f" in {api.namespace}" if api.namespace else ""
    selectors = ",".join(s for s in (config.label_selector, config.field_selector) if s)
    return f"{api.resource.full_name}{where}" + (f" ({selectors})" if selectors else "")


def _relist_cause(code: object) -> str:
    """Why the state machine restarted after the status ``code`` it was fed."""
    if code == 410:
        return "gone"
    if code == 504:
        return "too_large"
    return "fallback"  # a streaming list the server refused: list+watch from now on


def _tally_first(counts: dict[str, int], decoded: object) -> None:
    """Count a line whose type the tally has no entry for (by its type's text)."""
    kind = str(decoded.get("type")) if isinstance(decoded, dict) else "invalid"
    counts[kind] = counts.get(kind, 0) + 1


def _starts_list(request: Request) -> bool:
    if isinstance(request, ListRequest):
        return "continue" not in request.params
    return "sendInitialEvents" in request.params


class _ConsumerRaised(Exception):
    """Carries an exception of the subscriber's ``on_next`` out of the watch loop."""


class _WatchRun:
    """One subscription: the thread body driving a WatchMachine over the Api."""

    def __init__(
        self,
        api: Api,
        config: Config,
        metadata_only: bool,
        observer: abc.ObserverBase[Event],
        resume: list[str | None],
        stats: WatchStats,
        watch_from: str | None = None,
        parts: UnchangedParts | None = None,
    ) -> None:
        self._api = api
        self._parts = parts
        self._watch_from = watch_from
        self._config = config
        self._metadata_only = metadata_only
        self._observer = observer
        self._resume = resume
        self._stats = stats
        # Why the next list starts (None: this subscription's first), and when the
        # relist under way started.
        self._relist_cause: str | None = None
        self._list_started: float | None = None
        self._stopped = threading.Event()
        self._tally = EventTally()
        # Every request of this run is made under it, so stop() aborts whichever is in
        # flight: a list, a watch waiting for its headers, a watch being read.
        self._cancellation = Cancellation()
        where = f" in {api.namespace}" if api.namespace else ""
        self._name = f"{api.resource.full_name}{where}"

    def stop(self) -> None:
        """Stop the watch: aborts the request in flight, which ends the thread at once."""
        self._stopped.set()
        self._stats.disposed()
        self._cancellation.cancel()

    def run(self) -> None:
        stats = self._stats
        tally = self._tally
        stats.started(tally)
        try:
            self._loop()
        except _ConsumerRaised as raised:
            # The watch loop has ended and its connection is closed: the upstream is gone.
            self._stopped.set()
            cause = raised.__cause__
            assert isinstance(cause, Exception)
            stats.ended(tally, cause)
            fail_consumer(self._observer, f"the subscriber of watch {self._name}", cause)
        except Exception as exc:
            if self._stopped.is_set():
                stats.ended(tally, None)
            else:
                # Counted before on_error: a backoff may resubscribe from inside it.
                stats.ended(tally, exc)
                self._observer.on_error(exc)
        else:
            stats.ended(tally, None)

    def _loop(self) -> None:
        # The resume point is published after every step, not when the thread ends, so
        # a resubscription right after a dispose or an error already sees it.
        resume = self._resume
        machine = WatchMachine(
            self._config, resume[0], name=self._name, watch_from=self._watch_from
        )
        api, metadata_only = self._api, self._metadata_only
        stats = self._stats
        while not self._stopped.is_set():
            request = machine.next_request()
            if self._list_started is None and _starts_list(request):
                stats.relist(self._relist_cause)
                self._list_started = time.monotonic()
            stats.progressed()
            if isinstance(request, ListRequest):
                self._list_page(machine, request, resume)
            else:
                stream = api.watch_stream(
                    request.params,
                    metadata_only=metadata_only,
                    idle_timeout=request.idle_timeout,
                    max_line_bytes=request.max_event_bytes,
                    cancellation=self._cancellation,
                )
                with stream:
                    if not self._stopped.is_set():
                        self._follow(machine, stream, resume)

    def _list_page(
        self, machine: WatchMachine, request: ListRequest, resume: list[str | None]
    ) -> None:
        # A method of its own so that the page's body is freed when it returns: held by the
        # loop, it stayed alive while the next page was read (a relist's peak held two).
        response = self._api.list_page(
            request.params, metadata_only=self._metadata_only, cancellation=self._cancellation
        )
        if self._stopped.is_set():
            return
        if response.status != 200:
            err = response.error()
            events = machine.on_list_failed(err.code, err.status, retry_after=err.retry_after)
            if machine.stream_done:
                self._restarted(_relist_cause(err.code), watching=False)
            resume[0] = machine.resource_version
            self._emit(events)
            return
        # In a relist each item is decoded as its turn comes and its event must be sent
        # before the next: an unchanged object, for which a store keeps its cached one, is
        # then freed at once, and a relist never holds a page of decoded objects.
        on_next = self._observer.on_next
        with burst():
            for event in machine.on_list(response.data, self._parts):
                if isinstance(event, InitDone):
                    # The resume point has moved: published before the event, as always.
                    resume[0] = machine.resource_version
                    self._listed()
                try:
                    on_next(event)
                except Exception as exc:
                    raise _ConsumerRaised() from exc

    def _follow(self, machine: WatchMachine, stream: WatchStream, resume: list[str | None]) -> None:
        if stream.status != 200:
            err = stream.error()
            events = machine.on_watch_failed(err.code, err.status, retry_after=err.retry_after)
            if machine.stream_done:
                self._restarted(_relist_cause(err.code), watching=False)
            resume[0] = machine.resource_version
            self._emit(events)
            return
        self._emit(machine.on_watch_opened())
        # One burst per read from the server: a shared store queues the events of a read
        # to each subscriber at once, when the next read may wait (see _delivery.burst).
        with burst():
            restarted = self._follow_lines(machine, stream, resume)
        if not restarted and not self._stopped.is_set():
            self._emit(machine.on_watch_end())
            if not machine.stream_done:
                self._stats.restarted("timeout")
            else:
                self._restarted("fallback")

    def _follow_lines(
        self, machine: WatchMachine, stream: WatchStream, resume: list[str | None]
    ) -> bool:
        """Feed the stream's lines to the machine; True if a line made it start over."""
        # The caller holds this watch's burst open: each line's events are sent without
        # opening one of their own (a burst per event cost more than the machine's step).
        parts = self._parts
        loads = orjson.loads if parts is None else parts.decode
        on_event, send = machine.on_watch_event, self._send
        on_next = self._observer.on_next
        # This thread's own tally (see EventTally), counted inline: each line before its
        # events go out, the arrival time once per read, as its lines arrive together.
        tally, monotonic = self._tally, time.monotonic
        counts = tally.counts
        for lines in stream.reads(idle=flush):
            tally.last = monotonic()
            for line in lines:
                try:
                    decoded = loads(line)
                except orjson.JSONDecodeError:
                    raise DecodeError(
                        f"watch {self._name}: the server sent a line that is not JSON:"
                        f" {line[:200]!r}"
                    ) from None
                try:
                    counts[decoded["type"]] += 1
                except (KeyError, TypeError):  # a type not seen yet, or not a watch event
                    _tally_first(counts, decoded)
                events = on_event(decoded)
                resume[0] = machine.resource_version
                if events:
                    if self._list_started is not None:
                        send(events)  # a streaming list's: its end is counted there
                        continue
                    # Watch events are sent here, not by _send: a call less per line.
                    try:
                        for event in events:
                            on_next(event)
                    except Exception as exc:
                        raise _ConsumerRaised() from exc
                elif machine.stream_done:  # only a step that emits nothing ends the stream
                    status = decoded.get("object")
                    self._restarted(
                        _relist_cause(status.get("code") if isinstance(status, dict) else None)
                    )
                    return True
        return False

    def _restarted(self, cause: str, *, watching: bool = True) -> None:
        """The state machine starts over: the next request begins a relist."""
        self._relist_cause = cause
        self._list_started = None
        if watching:
            self._stats.restarted(cause)

    def _emit(self, events: Sequence[Event]) -> None:
        """Send the events of one answer (a list page, a watch's status) as one burst: what
        their consumers hold back goes out once, after them (see _delivery.burst)."""
        if events:
            with burst():
                self._send(events)

    def _listed(self) -> None:
        """A list or relist is complete (its InitDone goes out next): count its time."""
        if self._list_started is not None:
            self._stats.listed(time.monotonic() - self._list_started)
            self._list_started = None
            self._relist_cause = None

    def _send(self, events: Sequence[Event]) -> None:
        """Send ``events`` to the subscriber; the caller holds a burst open."""
        if self._list_started is not None and isinstance(events[-1], InitDone):
            self._listed()
        on_next = self._observer.on_next
        try:
            for event in events:
                on_next(event)
        except Exception as exc:
            raise _ConsumerRaised() from exc
