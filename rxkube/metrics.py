"""Controller metrics as plain Python data, with an optional Prometheus exporter.

Every :class:`~rxkube.controller.Controller` counts into a :class:`ControllerMetrics`
(``controller.metrics``): reconciles, errors, requeues, objects found missing, the queue
depth, reconciles in flight, and a histogram of reconcile durations. Read it any time
with :meth:`ControllerMetrics.snapshot`, which returns frozen dataclasses.

For Prometheus, install ``rxkube[prometheus]`` and register the metrics::

    from prometheus_client import start_http_server
    controller.metrics.register()            # on prometheus_client's default REGISTRY
    start_http_server(8000)

The exporter is a collector that reads a snapshot at each scrape, so nothing is counted
twice and ``prometheus_client`` is imported only by :meth:`ControllerMetrics.register`.

Example:
    >>> metrics = ControllerMetrics("configmaps")
    >>> metrics.started()
    >>> metrics.finished(0.2, error=False, requeue=True)
    >>> snap = metrics.snapshot()
    >>> snap.reconciles, snap.requeues, snap.duration.count, snap.duration.sum
    (1, 1, 1, 0.2)
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["DURATION_BUCKETS", "ControllerMetrics", "MetricsSnapshot", "Timing"]

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
"""Upper bounds (seconds) of the reconcile duration histogram; a ``+Inf`` bucket follows."""


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
        self._count = 0
        self._sum = 0.0
        self._max = 0.0
        self._buckets = [0] * (len(DURATION_BUCKETS) + 1)
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
            self._count += 1
            self._sum += duration
            self._max = max(self._max, duration)
            self._buckets[bisect.bisect_left(DURATION_BUCKETS, duration)] += 1

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
            cumulative, running = [], 0
            for bound, n in zip((*DURATION_BUCKETS, float("inf")), self._buckets, strict=True):
                running += n
                cumulative.append((bound, running))
            return MetricsSnapshot(
                controller=self.controller,
                reconciles=self._reconciles,
                errors=self._errors,
                requeues=self._requeues,
                missing=self._missing,
                queue_depth=self._queue_depth,
                in_flight=self._in_flight,
                duration=Timing(self._count, self._sum, self._max, tuple(cumulative)),
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
        try:
            import prometheus_client
        except ImportError as exc:
            raise ImportError(
                "exporting metrics to Prometheus needs prometheus_client: "
                "pip install 'rxkube[prometheus]'"
            ) from exc
        collector = _Collector(self)
        (registry or prometheus_client.REGISTRY).register(collector)
        return collector


class _Collector:
    """A prometheus_client collector reading a ControllerMetrics snapshot per scrape."""

    def __init__(self, metrics: ControllerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        snap = self._metrics.snapshot()
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
        histogram.add_metric(
            labels,
            [(_bound(le), float(n)) for le, n in snap.duration.buckets],
            sum_value=snap.duration.sum,
        )
        yield histogram


def _bound(le: float) -> str:
    return "+Inf" if le == float("inf") else repr(le)
