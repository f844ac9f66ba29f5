"""The reconcile request scheduler: which object to reconcile next, and when.

A pure object in the sans-I/O style: no threads, no clock. Every call takes ``now``
(seconds on any monotonic scale) explicitly, so each rule is tested deterministically;
the controller drives it from its one loop thread with ``time.monotonic()``.

The rules (those of kube-rs ``controller/scheduler.rs`` and ``runner.rs``):

- **Merge.** At most one request is queued per key. A new request for a key that is
  already queued keeps the earliest due time (and that request's reason).
- **One at a time.** A key handed out by :meth:`Scheduler.pop_due` is *running* until
  :meth:`Scheduler.done`; it is never handed out again meanwhile. A request that arrives
  during the run is queued (merged as usual) and is handed out after ``done``.
- **Trailing debounce.** With ``debounce=d``, a request due at ``t`` is held until
  ``t + d``, and each further request for that key before then pushes it back to its own
  time ``+ d``, so a burst of changes causes one reconcile, ``d`` after the last one.
  A request that is already due is never pushed back.
- **Concurrency limit.** With ``concurrency=n``, at most ``n`` keys run at once; due
  requests wait, earliest due first, for a slot.

Example:
    >>> s = Scheduler()
    >>> s.request("a", now=0.0, delay=5.0, reason="requeue")
    >>> s.request("a", now=1.0, reason="object updated")   # earlier: wins
    >>> [(d.key, d.reason) for d in s.pop_due(now=1.0)]
    [('a', 'object updated')]
    >>> s.request("a", now=1.5, reason="object updated")   # arrives while "a" runs
    >>> s.pop_due(now=2.0)
    []
    >>> s.done("a")
    >>> [d.key for d in s.pop_due(now=2.0)]
    ['a']
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ._timeouts import checked_seconds

__all__ = ["Due", "Scheduler"]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Due(Generic[K]):
    """A request handed out by :meth:`Scheduler.pop_due`: its key is now running.

    Attributes:
        key: what to reconcile (an ``ObjectRef`` in a controller).
        reason: why, from the request that set the due time (for logs).
        due: when it was due (including any debounce).
    """

    key: K
    reason: str
    due: float


@dataclass(slots=True)
class _Entry:
    due: float
    seq: int
    reason: str


class Scheduler(Generic[K]):
    """Queued reconcile requests, merged per key, run one at a time per key.

    Args:
        debounce: seconds of trailing debounce (0 for none).
        concurrency: the most keys running at once (``None`` for no limit).

    Raises:
        TypeError: ``debounce`` is not a number.
        ValueError: ``debounce`` is negative, NaN or infinite, or ``concurrency`` is less
            than 1.
    """

    def __init__(self, *, debounce: float = 0.0, concurrency: int | None = None) -> None:
        debounce = checked_seconds(debounce, "Scheduler()", "debounce", finite=True)
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"Scheduler: concurrency must be >= 1 or None, got {concurrency!r}")
        self._debounce = debounce
        self._limit = concurrency
        self._seq = itertools.count()
        self._entries: dict[K, _Entry] = {}
        # (due, seq, key); entries superseded by a later request stay here until popped
        # and are recognised by a seq that no longer matches ``_entries``.
        self._heap: list[tuple[float, int, K]] = []
        # Keys whose request came due while they were running: off the heap until done.
        self._held: set[K] = set()
        self._running: set[K] = set()

    def request(self, key: K, now: float, *, delay: float = 0.0, reason: str = "") -> None:
        """Ask for ``key`` to be reconciled ``delay`` seconds after ``now``.

        Merged with a queued request for the same key: the earlier one wins. With a
        debounce, the request is due ``debounce`` seconds later, and it replaces a
        queued request that is not yet due unless that one is due strictly earlier
        than this one's own time.

        Args:
            key: what to reconcile.
            now: the current time.
            delay: seconds from ``now`` (negative values count as 0; ``math.inf`` asks
                for nothing, as it is never due).
            reason: why, for logs; kept if this request sets the due time.

        Raises:
            TypeError: ``delay`` is not a number.
            ValueError: ``delay`` is NaN, which no due time can be ordered by.
        """
        if isinstance(delay, int | float) and delay < 0:
            delay = 0.0
        delay = checked_seconds(delay, "Scheduler.request()", "delay")
        if delay == math.inf:
            return
        run_at = now + delay
        entry = self._entries.get(key)
        if entry is not None and (entry.due <= now or entry.due < run_at):
            # Already due (never pushed back), or the queued request runs earlier.
            return
        seq = next(self._seq)
        due = run_at + self._debounce
        self._entries[key] = _Entry(due, seq, reason)
        heapq.heappush(self._heap, (due, seq, key))

    def pop_due(self, now: float) -> list[Due[K]]:
        """Hand out the requests due at ``now`` that may start, earliest due first.

        Each key handed out is running until :meth:`done`. Keys that are running, and
        requests beyond the concurrency limit, stay queued.
        """
        started: list[Due[K]] = []
        heap, entries, running = self._heap, self._entries, self._running
        while heap and heap[0][0] <= now and (self._limit is None or len(running) < self._limit):
            due, seq, key = heapq.heappop(heap)
            entry = entries.get(key)
            if entry is None or entry.seq != seq:
                continue  # superseded
            if key in running:
                self._held.add(key)
                continue
            del entries[key]
            running.add(key)
            started.append(Due(key, entry.reason, due))
        return started

    def done(self, key: K) -> None:
        """Record that the reconcile of ``key`` ended; a request queued meanwhile may start.

        Raises:
            KeyError: ``key`` is not running.
        """
        self._running.remove(key)
        if key in self._held:
            self._held.discard(key)
            entry = self._entries[key]
            heapq.heappush(self._heap, (entry.due, entry.seq, key))

    def next_due(self) -> float | None:
        """The time at which :meth:`pop_due` may next hand something out.

        ``None`` when nothing is queued, or when the concurrency limit is reached (a
        :meth:`done` must come first). May be earlier than needed (a superseded request,
        or one whose key is running), never later.
        """
        if self._limit is not None and len(self._running) >= self._limit:
            return None
        heap, entries = self._heap, self._entries
        while heap:
            due, seq, key = heap[0]
            entry = entries.get(key)
            if entry is not None and entry.seq == seq:
                return due
            heapq.heappop(heap)
        return None

    def is_running(self, key: K) -> bool:
        """Whether ``key`` was handed out and is not done yet."""
        return key in self._running

    def due_time(self, key: K) -> float | None:
        """When the queued request for ``key`` is due, or ``None`` if none is queued."""
        entry = self._entries.get(key)
        return None if entry is None else entry.due

    @property
    def queued(self) -> int:
        """The number of keys with a queued request (the queue depth)."""
        return len(self._entries)

    @property
    def running(self) -> int:
        """The number of keys running."""
        return len(self._running)

    def clear(self) -> None:
        """Drop every queued request (running keys stay running until :meth:`done`)."""
        self._entries.clear()
        self._heap.clear()
        self._held.clear()
