"""Controller, watch and store metrics as plain Python data, with optional Prometheus exporters.

Every :class:`~rxkube.controller.Controller` counts into a :class:`ControllerMetrics`
(``controller.metrics``): reconciles, errors, requeues, objects found missing, the queue
depth, reconciles in flight, and a histogram of reconcile durations. Read it any time
with :meth:`ControllerMetrics.snapshot`, which returns frozen dataclasses.

For Prometheus, install ``rxkube[prometheus]`` and register the metrics::

    from prometheus_client import start_http_server
    controller.metrics.register()            # on prometheus_client's default REGISTRY
    start_http_server(8000)

Watches count into their own :class:`WatchStats` (every watch of the process:
:func:`watch_stats`); stores are read as they are. :func:`rxkube.probes.serve` exports all
three on ``/metrics``; :func:`watch_collector` and :func:`store_collector` export the
latter two on a registry of your own.

Each exporter is a collector that reads a snapshot at each scrape, so nothing is counted
twice and ``prometheus_client`` is imported only when one is made.

Example:
    >>> metrics = ControllerMetrics("configmaps")
    >>> metrics.started()
    >>> metrics.finished(0.2, error=False, requeue=True)
    >>> snap = metrics.snapshot()
    >>> snap.reconciles, snap.requeues, snap.duration.count, snap.duration.sum
    (1, 1, 1, 0.2)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ._cache import Store
from ._telemetry import DURATION_BUCKETS, Histogram, Timing, WatchSnapshot, WatchStats, watch_stats
from .dispatcher import SharedStore

__all__ = [
    "DURATION_BUCKETS",
    "ControllerMetrics",
    "MetricsSnapshot",
    "Timing",
    "WatchSnapshot",
    "WatchStats",
    "store_collector",
    "watch_collector",
    "watch_stats",
]


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """A controller's counters at one moment.

    Attributes:
        controller: the controller's name.
        reconciles: reconciles that ended (successfully or not).
        errors: reconciles that raised (or returned something other than an Action).
        requeues: ended reconciles whose action (or error policy's) asked for a requeue.
        missing: requests whose object was no longer in the store.
        queue_depth: objects with a queued request.
        in_flight: reconciles running now.
        duration: reconcile durations.
        shard_objects: for a sharded controller, the objects this replica owns (caches)
            now; ``None`` otherwise.
        shard_fraction: for a sharded controller, the share of the hash space it holds
            (0 to 1); ``None`` otherwise.
    """

    controller: str
    reconciles: int
    errors: int
    requeues: int
    missing: int
    queue_depth: int
    in_flight: int
    duration: Timing
    shard_objects: int | None = None
    shard_fraction: float | None = None


class ControllerMetrics:
    """The counters and timings of one controller; thread-safe.

    Args:
        controller: the controller's name (the ``controller`` label in Prometheus).
    """

    def __init__(self, controller: str) -> None:
        self.controller = controller
        self._lock = threading.Lock()
        self._reconciles = 0
        self._errors = 0
        self._requeues = 0
        self._missing = 0
        self._queue_depth = 0
        self._in_flight = 0
        self._duration = Histogram()
        self._shard: Callable[[], tuple[int, float]] | None = None

    def track_shard(self, owned: Callable[[], tuple[int, float]]) -> None:
        """Report a sharded replica's share: ``owned()`` returns (objects, hash-space fraction).

        It is called at each :meth:`snapshot`, outside the metrics' lock.
        """
        self._shard = owned

    def started(self) -> None:
        """Count a reconcile that started."""
        with self._lock:
            self._in_flight += 1

    def finished(self, duration: float, *, error: bool, requeue: bool) -> None:
        """Count a reconcile that ended after ``duration`` seconds."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self._reconciles += 1
            self._errors += error
            self._requeues += requeue
            self._duration.record(duration)

    def abandoned(self) -> None:
        """Forget a reconcile that started but whose end will not be reported (forced stop)."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    def missing(self) -> None:
        """Count a request whose object was not in the store."""
        with self._lock:
            self._missing += 1

    def queue(self, depth: int) -> None:
        """Record the current queue depth."""
        with self._lock:
            self._queue_depth = depth

    def snapshot(self) -> MetricsSnapshot:
        """The counters as of now."""
        shard = self._shard() if self._shard is not None else (None, None)
        with self._lock:
            return MetricsSnapshot(
                controller=self.controller,
                reconciles=self._reconciles,
                errors=self._errors,
                requeues=self._requeues,
                missing=self._missing,
                queue_depth=self._queue_depth,
                in_flight=self._in_flight,
                duration=self._duration.timing(),
                shard_objects=shard[0],
                shard_fraction=shard[1],
            )

    def register(self, registry: Any = None) -> Any:
        """Export these metrics to Prometheus; returns the collector registered.

        Metric names follow controller-runtime's: ``rxkube_reconcile_total``,
        ``rxkube_reconcile_errors_total``, ``rxkube_reconcile_requeues_total``,
        ``rxkube_reconcile_missing_total``, ``rxkube_workqueue_depth``,
        ``rxkube_active_workers`` and ``rxkube_reconcile_time_seconds`` (histogram), each
        labelled ``controller``; a sharded controller adds ``rxkube_shard_objects`` and
        ``rxkube_shard_fraction``.

        Args:
            registry: a ``prometheus_client.CollectorRegistry``; the default ``REGISTRY``
                if not given.

        Raises:
            ImportError: ``prometheus_client`` is not installed (``pip install
                'rxkube[prometheus]'``).
        """
        prometheus_client = _prometheus()
        collector = self.collector()
        (registry or prometheus_client.REGISTRY).register(collector)
        return collector

    def collector(self) -> Any:
        """A prometheus_client collector of these metrics, to register yourself.

        Raises:
            ImportError: ``prometheus_client`` is not installed.
        """
        _prometheus()
        return _Collector(self._collect)

    def _collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        snap = self.snapshot()
        labels = [snap.controller]
        simple = (
            (CounterMetricFamily, "rxkube_reconcile", "Reconciles that ended", snap.reconciles),
            (CounterMetricFamily, "rxkube_reconcile_errors", "Reconciles that failed", snap.errors),
            (
                CounterMetricFamily,
                "rxkube_reconcile_requeues",
                "Reconciles that asked for a requeue",
                snap.requeues,
            ),
            (
                CounterMetricFamily,
                "rxkube_reconcile_missing",
                "Requests whose object was gone",
                snap.missing,
            ),
            (GaugeMetricFamily, "rxkube_workqueue_depth", "Objects queued", snap.queue_depth),
            (GaugeMetricFamily, "rxkube_active_workers", "Reconciles running", snap.in_flight),
        )
        sharded: tuple[tuple[Any, str, str, float | int | None], ...] = (
            (
                GaugeMetricFamily,
                "rxkube_shard_objects",
                "Objects this replica owns",
                snap.shard_objects,
            ),
            (
                GaugeMetricFamily,
                "rxkube_shard_fraction",
                "Share of the hash space held",
                snap.shard_fraction,
            ),
        )
        for family_type, name, doc, value in simple + sharded:
            if value is None:
                continue  # not sharded
            family = family_type(name, doc, labels=["controller"])
            family.add_metric(labels, value)
            yield family
        histogram = HistogramMetricFamily(
            "rxkube_reconcile_time_seconds", "Reconcile durations", labels=["controller"]
        )
        _add_timing(histogram, labels, snap.duration)
        yield histogram


def watch_collector() -> Any:
    """A prometheus_client collector of every watch in the process (see :func:`watch_stats`).

    Labelled ``watch`` (a watch's unique name): ``rxkube_watch_lists_total`` (by
    ``cause``), ``rxkube_watch_list_duration_seconds`` (histogram),
    ``rxkube_watch_restarts_total`` (by ``reason``), ``rxkube_watch_events_total`` (by
    ``type``), ``rxkube_watch_seconds_since_last_event`` (event or bookmark; absent before
    the first), ``rxkube_watch_seconds_since_progress`` and ``rxkube_watch_up`` (1 while a
    subscription runs).

    Raises:
        ImportError: ``prometheus_client`` is not installed.
    """
    _prometheus()
    return _Collector(_collect_watches)


def store_collector(stores: Iterable[Store]) -> Any:
    """A prometheus_client collector of these stores, labelled ``store`` (the store's name).

    ``rxkube_store_objects``, ``rxkube_store_ready`` (0 or 1), and for shared stores
    ``rxkube_store_subscribers``, ``rxkube_store_max_backlog`` (entries the slowest
    subscriber has yet to take), ``rxkube_store_writer_waits_total`` (times the watch
    waited for a full buffer) and ``rxkube_store_overflows_total``.

    Raises:
        ImportError: ``prometheus_client`` is not installed.
    """
    _prometheus()
    readers = list(stores)
    return _Collector(lambda: _collect_stores(readers))


def _collect_watches() -> Iterator[Any]:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    lists = CounterMetricFamily(
        "rxkube_watch_lists", "Relists started, by cause", labels=["watch", "cause"]
    )
    durations = HistogramMetricFamily(
        "rxkube_watch_list_duration_seconds", "Relist durations", labels=["watch"]
    )
    restarts = CounterMetricFamily(
        "rxkube_watch_restarts",
        "Watch connections restarted, by reason",
        labels=["watch", "reason"],
    )
    events = CounterMetricFamily(
        "rxkube_watch_events", "Watch events received, by type", labels=["watch", "type"]
    )
    since_event = GaugeMetricFamily(
        "rxkube_watch_seconds_since_last_event",
        "Seconds since the last watch event or bookmark",
        labels=["watch"],
    )
    since_progress = GaugeMetricFamily(
        "rxkube_watch_seconds_since_progress",
        "Seconds since the watch last sent a request or received a line",
        labels=["watch"],
    )
    up = GaugeMetricFamily("rxkube_watch_up", "1 while a subscription runs", labels=["watch"])
    now = time.monotonic()
    for stats in watch_stats():
        snap = stats.snapshot()
        name = [snap.name]
        for cause, n in sorted(snap.lists.items()):
            lists.add_metric([snap.name, cause], n)
        _add_timing(durations, name, snap.list_duration)
        for reason, n in sorted(snap.restarts.items()):
            restarts.add_metric([snap.name, reason], n)
        for kind, n in sorted(snap.events.items()):
            events.add_metric([snap.name, kind], n)
        if snap.last_event is not None:
            since_event.add_metric(name, now - snap.last_event)
        since_progress.add_metric(name, now - snap.last_progress)
        up.add_metric(name, 1.0 if snap.state == "running" else 0.0)
    yield from (lists, durations, restarts, events, since_event, since_progress, up)


def _collect_stores(readers: list[Store]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    objects = GaugeMetricFamily("rxkube_store_objects", "Objects in the store", labels=["store"])
    ready = GaugeMetricFamily(
        "rxkube_store_ready", "1 once the store has its first complete list", labels=["store"]
    )
    subscribers = GaugeMetricFamily(
        "rxkube_store_subscribers", "Subscribers of a shared store", labels=["store"]
    )
    backlog = GaugeMetricFamily(
        "rxkube_store_max_backlog",
        "Entries the slowest subscriber of a shared store has yet to take",
        labels=["store"],
    )
    waits = CounterMetricFamily(
        "rxkube_store_writer_waits",
        "Times a shared store's writer waited for room in a subscriber's buffer",
        labels=["store"],
    )
    overflows = CounterMetricFamily(
        "rxkube_store_overflows", "Subscribers cut off for falling behind", labels=["store"]
    )
    for reader in readers:
        label = [reader.name]
        objects.add_metric(label, len(reader))
        ready.add_metric(label, 1.0 if reader.is_ready() else 0.0)
        if isinstance(reader, SharedStore):
            stats = reader.stats()
            subscribers.add_metric(label, stats.subscribers)
            backlog.add_metric(label, stats.max_backlog)
            waits.add_metric(label, stats.writer_waits)
            overflows.add_metric(label, stats.overflows)
    yield from (objects, ready, subscribers, backlog, waits, overflows)


class _Collector:
    """A prometheus_client collector: ``collect()`` reads fresh values at each scrape."""

    def __init__(self, collect: Any) -> None:
        self.collect = collect


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError(
            "exporting metrics to Prometheus needs prometheus_client: "
            "pip install 'rxkube[prometheus]'"
        ) from exc
    return prometheus_client


def _add_timing(family: Any, labels: list[str], timing: Timing) -> None:
    family.add_metric(
        labels,
        [("+Inf" if le == float("inf") else repr(le), float(n)) for le, n in timing.buckets],
        sum_value=timing.sum,
    )
