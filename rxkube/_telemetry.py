"""What watches have been doing, counted where they run: lists, restarts, events, progress.

Every watcher Observable owns one :class:`WatchStats`, kept across its subscriptions (as its
resume point is), and registered process-wide while it lives, so metrics exporters and
health probes find every watch of the process without wiring: :func:`watch_stats`.

A watch *makes progress* whenever its thread does something: sends a request, or receives a
line. A healthy watch does so at least every ``idle_timeout`` seconds (a silent connection
is declared dead then), and one riding out an outage at least every backoff delay, so a
watch silent for longer than both is wedged.

:class:`Histogram` is the one duration histogram of the package (list durations here,
reconcile durations in :mod:`rxkube.metrics`).
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DURATION_BUCKETS",
    "EventTally",
    "Histogram",
    "Timing",
    "WatchSnapshot",
    "WatchStats",
    "watch_stats",
]

DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Upper bounds (seconds) of the duration histograms; a ``+Inf`` bucket follows."""


@dataclass(frozen=True, slots=True)
class Timing:
    """A histogram of durations in seconds.

    Attributes:
        count: how many durations were recorded.
        sum: their total.
        max: the longest (0 if none).
        buckets: ``(upper bound, cumulative count)`` per bucket, ending with ``+Inf``.
    """

    count: int
    sum: float
    max: float
    buckets: tuple[tuple[float, int], ...]

    @property
    def mean(self) -> float:
        """The mean duration (0 if none)."""
        return self.sum / self.count if self.count else 0.0


class Histogram:
    """Durations counted into :data:`DURATION_BUCKETS`; not thread-safe (its owner locks)."""

    def __init__(self) -> None:
        self._count = 0
        self._sum = 0.0
        self._max = 0.0
        self._buckets = [0] * (len(DURATION_BUCKETS) + 1)

    def record(self, duration: float) -> None:
        """Count one duration."""
        self._count += 1
        self._sum += duration
        self._max = max(self._max, duration)
        self._buckets[bisect.bisect_left(DURATION_BUCKETS, duration)] += 1

    def timing(self) -> Timing:
        """The histogram as of now."""
        cumulative = itertools.accumulate(self._buckets)
        bounds = (*DURATION_BUCKETS, float("inf"))
        return Timing(
            self._count, self._sum, self._max, tuple(zip(bounds, cumulative, strict=True))
        )


WatchState = Literal["idle", "running", "failed", "stopped"]
"""``idle``: never subscribed; ``running``: a subscription is running; ``failed``: the last
subscription ended with an error (a backoff may be about to resubscribe); ``stopped``: it
was disposed."""


@dataclass(frozen=True, slots=True)
class WatchSnapshot:
    """A watch's counters at one moment.

    Attributes:
        name: what is watched, e.g. ``"configmaps in default (app=web)"``; unique in the
            process (a ``#2`` suffix tells two watches of the same thing apart).
        resource: the resource's full name, e.g. ``"deployments.apps"``.
        namespace: the namespace watched, or ``None`` for all.
        state: see :data:`WatchState`.
        idle_timeout: seconds of silence after which its connection counts as dead.
        lists: relists started, by cause: ``initial`` (the first ever), ``error`` (after
            a failed subscription), ``resubscribed`` (after a disposed one), ``gone``
            (410: history compacted), ``too_large`` (the server's history is behind the
            client's), ``fallback`` (a refused streaming list, listed again).
        list_duration: how long each relist took, first request to the complete list.
        restarts: watch connections ended and followed by a new request, by reason:
            ``timeout`` (the server ended it cleanly), ``gone``, ``too_large``, or the
            error class that ended the subscription (``WatchStalled``, ``TransportError``,
            ``ServerError``, ...).
        events: watch events received, by type (``ADDED``, ``MODIFIED``, ``DELETED``,
            ``BOOKMARK``, ``ERROR``).
        last_event: ``time.monotonic()`` of the last event or bookmark (``None``: none yet).
        last_progress: ``time.monotonic()`` of the last request sent or line received.
        error: the error that ended the last subscription, while ``state == "failed"``.
    """

    name: str
    resource: str
    namespace: str | None
    state: WatchState
    idle_timeout: float
    lists: dict[str, int]
    list_duration: Timing
    restarts: dict[str, int]
    events: dict[str, int]
    last_event: float | None
    last_progress: float
    error: Exception | None

    def stalled_for(self, now: float) -> float:
        """Seconds without progress while the watch is wanted (0 if idle or stopped)."""
        if self.state in ("idle", "stopped"):
            return 0.0
        return max(0.0, now - self.last_progress)


class EventTally:
    """The watch lines one subscription has received, by type, and when the last arrived.

    Its watch thread counts into it directly, and it alone writes it: no update is lost,
    and no lock is taken per line (the lock and the call cost more than the state
    machine's step). :meth:`WatchStats.snapshot` reads it while the subscription runs and
    folds it into the totals when it ends, so a snapshot counts every line received so far.

    Attributes:
        counts: lines by type (``"MODIFIED"``, ...), as :attr:`WatchSnapshot.events`.
        last: ``time.monotonic()`` of the last line (``None``: none yet).
    """

    __slots__ = ("counts", "last")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.last: float | None = None


class WatchStats:
    """The counters of one watcher Observable across its subscriptions; thread-safe.

    The watch thread reports into it (the methods below, and the :class:`EventTally` of
    its subscription); readers take a :meth:`snapshot`. Its one lock guards plain
    counters and the running subscriptions' tallies, and is never held while calling out.

    Args:
        name: what is watched, for messages and the ``watch`` label.
        resource: the resource's full name.
        namespace: the namespace, or ``None`` for all.
        idle_timeout: the watch's idle timeout, in seconds.
    """

    def __init__(
        self, name: str, resource: str, namespace: str | None, idle_timeout: float
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.idle_timeout = idle_timeout
        self._base_name = name
        self._lock = threading.Lock()
        self._state: WatchState = "idle"
        self._running = 0
        self._lists: dict[str, int] = {}
        self._list_duration = Histogram()
        self._restarts: dict[str, int] = {}
        self._events: dict[str, int] = {}  # of the subscriptions that have ended
        self._last_event: float | None = None
        self._tallies: list[EventTally] = []  # of the running ones
        self._last_progress = time.monotonic()
        self._error: Exception | None = None
        self._ever_listed = False
        self._after_failure = False
        self._last_end_failed = False  # unlike the state, not undone by a dispose
        self._name = _register(self)

    # -- reported by the watch thread -----------------------------------------------

    def started(self, tally: EventTally) -> None:
        """A subscription started; its thread counts the lines it receives into ``tally``."""
        with self._lock:
            self._after_failure = self._last_end_failed
            self._running += 1
            self._state = "running"
            self._error = None
            self._last_progress = time.monotonic()
            self._tallies.append(tally)

    def progressed(self) -> None:
        """A request is about to be sent."""
        self._last_progress = time.monotonic()  # one float store: atomic, no lock needed

    def relist(self, cause: str | None) -> str:
        """A relist starts; ``cause`` as the watch saw it (``None``: the subscription's
        first list). Returns the cause counted."""
        with self._lock:
            if cause is None:
                if not self._ever_listed:
                    cause = "initial"
                else:
                    cause = "error" if self._after_failure else "resubscribed"
            self._ever_listed = True
            self._lists[cause] = self._lists.get(cause, 0) + 1
            return cause

    def listed(self, duration: float) -> None:
        """A relist completed after ``duration`` seconds."""
        with self._lock:
            self._list_duration.record(duration)

    def restarted(self, reason: str) -> None:
        """A watch connection ended and another request follows."""
        with self._lock:
            self._restarts[reason] = self._restarts.get(reason, 0) + 1

    def ended(self, tally: EventTally, error: Exception | None) -> None:
        """The subscription counting into ``tally`` ended: with ``error``, or disposed (``None``)."""
        with self._lock:
            self._tallies.remove(tally)
            for kind, count in tally.counts.items():
                self._events[kind] = self._events.get(kind, 0) + count
            self._last_event = _latest(self._last_event, tally.last)
            if tally.last is not None and tally.last > self._last_progress:
                self._last_progress = tally.last
            self._running = max(0, self._running - 1)
            if error is not None:
                self._restarts[type(error).__name__] = (
                    self._restarts.get(type(error).__name__, 0) + 1
                )
            self._last_end_failed = error is not None
            if self._running:
                return
            self._state = "stopped" if error is None else "failed"
            self._error = error

    def disposed(self) -> None:
        """A subscription was disposed (after it ended, perhaps): nobody wants it any more."""
        with self._lock:
            if not self._running and self._state == "failed":
                self._state = "stopped"

    # -- read by exporters and probes ---------------------------------------------------

    def snapshot(self) -> WatchSnapshot:
        """The counters as of now."""
        with self._lock:
            events = dict(self._events)
            last_event = self._last_event
            for tally in self._tallies:
                # A copy: its thread may be counting meanwhile.
                for kind, count in tally.counts.copy().items():
                    events[kind] = events.get(kind, 0) + count
                last_event = _latest(last_event, tally.last)
            return WatchSnapshot(
                name=self.name,
                resource=self.resource,
                namespace=self.namespace,
                state=self._state,
                idle_timeout=self.idle_timeout,
                lists=dict(self._lists),
                list_duration=self._list_duration.timing(),
                restarts=dict(self._restarts),
                events=events,
                last_event=last_event,
                last_progress=(
                    self._last_progress
                    if last_event is None
                    else max(self._last_progress, last_event)
                ),
                error=self._error,
            )

    @property
    def name(self) -> str:
        """The watch's name, unique in the process."""
        return self._name

    def __repr__(self) -> str:
        return f"<WatchStats {self.name}: {self._state}>"


def _latest(when: float | None, other: float | None) -> float | None:
    """The later of two ``time.monotonic()`` readings, either of which may be missing."""
    if when is None or (other is not None and other > when):
        return other
    return when


_registry_lock = threading.Lock()
_registry: weakref.WeakValueDictionary[str, WatchStats] = weakref.WeakValueDictionary()


def _register(stats: WatchStats) -> str:
    with _registry_lock:
        name, n = stats._base_name, 1
        while name in _registry:
            n += 1
            name = f"{stats._base_name} #{n}"
        _registry[name] = stats
        return name


def watch_stats() -> list[WatchStats]:
    """The stats of every watcher Observable alive in this process, in name order.

    Example:
        >>> [s.snapshot().state for s in watch_stats()]  # doctest: +SKIP
        ['running']
    """
    with _registry_lock:
        found: Iterable[WatchStats] = list(_registry.values())
    return sorted(found, key=lambda s: s.name)
