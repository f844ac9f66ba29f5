"""Where reconciles run: a bounded pool of worker threads, or an asyncio loop on a thread.

A controller's run (``rxkube._runner``) submits plain-function reconciles to ``Workers``
and, when no loop is given, runs coroutine reconciles on a ``LoopThread``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable

__all__ = ["LoopThread", "Workers"]

log = logging.getLogger("rxkube.controller")


class Workers:
    """A bounded pool of daemon threads; one is started only when none is idle.

    Jobs wait in a ``SimpleQueue``, not in a ``Handover``: a pool has many consumers, and
    its bound is the scheduler's concurrency limit. An idle worker blocks in ``get()``
    until a job or its end (``None``, one per thread, from :meth:`shutdown`) arrives.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._numbers = itertools.count(1)
        self._closed = False

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name}: the workers were shut down")
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self._size:
                # Else every thread is busy, but one is finishing: the scheduler never has
                # more than ``size`` reconciles in flight.
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{next(self._numbers)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # Run's jobs catch everything; this is a safety net
                log.exception("a reconcile worker failed")
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: float) -> None:
        """Let the threads end once their current job is done; wait up to ``wait`` s for them."""
        with self._lock:
            self._closed = True  # no thread starts after this: each one gets its None
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        deadline = time.monotonic() + wait
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class LoopThread:
    """An asyncio loop on a daemon thread of its own, for coroutine reconciles."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        finally:
            loop.close()

    def stop(self, wait: float) -> None:
        """Stop the loop (cancelling what still runs there); wait up to ``wait`` s for the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(wait)
