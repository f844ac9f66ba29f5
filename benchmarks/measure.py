"""What every measurement shares: its parameters, the memory probes and the watch gate.

A measurement runs in a fresh process of its own (see ``benchmarks.worker``), so each
client's imports, caches and allocator state start from nothing and its RSS can be read
without another client's leftovers. It is a function ``(Params, Control) -> dict`` that
returns its figures as plain numbers.

Times that are compared are the client's CPU time (``cpu()``: every thread of the
measurement's process), not wall time: on a shared machine wall time mostly measures the
other processes, and the server runs in a process of its own. Wall times are kept beside
them, to show whether the client was busy all along (the server kept up).

Memory is read two ways: RSS growth (what the operating system sees, allocator slack
included) in the same run as the timings, and ``tracemalloc`` (what Python objects hold)
in a separate run, since tracing slows every allocation several times.

CPU time still moves with what the other core runs (shared caches, memory bandwidth): on a
loaded 2-core machine the same watch measured 1.0x to 1.4x its floor from one run to the
next. So the watch is also counted in instructions, under callgrind, in a run of its own
(``Params.counted``): a count that does not depend on the machine's load, though it
leaves out what instructions do not show (cache misses, the kernel's thread switches).
"""

from __future__ import annotations

import gc
import os
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from .server import Control


@dataclass(frozen=True, slots=True)
class Params:
    """What a measurement is asked to do.

    Args:
        url: the API server's URL (always on 127.0.0.1).
        kubeconfig: a kubeconfig file pointing at it, for the peers.
        token: the bearer token for direct requests (``""``: none, the test server).
        ca_file: the CA that signed the server's certificate (``None``: plain HTTP).
        namespace: where the pods are.
        pods: how many pods the server holds.
        events: how many MODIFIED events the watch part consumes (0: no watch part).
        page_size: the list page size.
        traced: measure memory with tracemalloc (timings are then meaningless).
        option: a scenario-specific variant (e.g. which memory lever to use).
        subscribers: fan-out width, for the shared-store scenario.
        counted: run under callgrind and count the instructions of the watch alone
            (between ``counting(True)`` and ``counting(False)``); timings are then
            meaningless.
    """

    url: str
    kubeconfig: str
    namespace: str
    pods: int
    events: int
    page_size: int = 500
    traced: bool = False
    option: str = ""
    subscribers: int = 1
    counted: bool = False
    token: str = ""
    ca_file: str | None = None


Result = dict[str, Any]
"""Figures of one measurement: names to numbers (seconds, bytes, counts)."""

Measurement = Callable[[Params, "Control"], Result]
"""A measurement function, run in a fresh process."""


cpu = time.process_time
"""The client's CPU time, in seconds: every thread of this process."""


def full_collections() -> int:
    """How many full (oldest-generation) collections the cyclic collector has run so far.

    A list's client CPU is mostly these: each one walks every container alive, and when
    one falls (a quarter more containers than the last one kept) depends on what the
    process held before, so two clients' counts say why their figures differ.
    """
    return int(gc.get_stats()[2]["collections"])


COUNTING = "BENCH_CALLGRIND"
"""Set in a measurement's environment when it runs under callgrind, counting nothing yet."""


def counting(on: bool) -> None:
    """Start or stop counting instructions, when this process runs under callgrind.

    The process starts with counting off (``--instr-atstart=no``), so the imports and the
    list, run ten times slower but uncounted, do not weigh on the figure; the span the
    measurement marks is counted at callgrind's full cost (~70x).
    """
    if os.environ.get(COUNTING):
        subprocess.run(
            ["callgrind_control", f"--instr={'on' if on else 'off'}", str(os.getpid())],
            check=True,
            capture_output=True,
            timeout=300,
        )


def rss() -> int:
    """This process's resident set size in bytes, after a full garbage collection."""
    gc.collect()
    return int(psutil.Process().memory_info().rss)


class MemoryProbe:
    """Memory held since ``start()``: RSS growth, or tracemalloc's count when ``traced``.

    Use ``held()`` once the cache is complete; ``peak()`` gives the highest traced
    memory since the last ``reset_peak()`` (tracemalloc only).
    """

    def __init__(self, traced: bool) -> None:
        self.traced = traced
        self._base = 0

    def start(self) -> None:
        """Take the baseline: everything allocated before now is not counted."""
        gc.collect()
        if self.traced:
            tracemalloc.start()
            self._base = tracemalloc.get_traced_memory()[0]
        else:
            self._base = rss()

    def held(self) -> int:
        """Bytes held now above the baseline."""
        gc.collect()
        if self.traced:
            return tracemalloc.get_traced_memory()[0] - self._base
        return rss() - self._base

    def reset_peak(self) -> None:
        """Start a new peak window (tracemalloc only)."""
        if self.traced:
            tracemalloc.reset_peak()

    def peak(self) -> int:
        """Highest bytes held above the baseline since the last ``reset_peak``."""
        if self.traced:
            return tracemalloc.get_traced_memory()[1] - self._base
        return 0

    def stop(self) -> None:
        """Stop tracing, if tracing."""
        if self.traced:
            tracemalloc.stop()


class RssPeak:
    """Samples RSS on a thread every few milliseconds, to see the peak of a phase."""

    def __init__(self, interval: float = 0.005) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss-peak", daemon=True)
        self.peak = 0

    def _run(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Gate:
    """Holds a client's first watch request until the benchmark has made its events.

    The MODIFIED events are written on the server after the client's list and before its
    watch opens, so the watch replays them from the server's history as fast as the client
    reads: the client is measured, not the server's write path. ``wait()`` is called from
    the client's watch path; ``open()`` from the measurement once the events exist.
    """

    def __init__(self) -> None:
        self._open = threading.Event()
        self.opened_at = 0.0
        self.opened_cpu = 0.0

    def wait(self) -> None:
        """Block until the gate opens (used once, before the first watch request)."""
        if not self._open.wait(timeout=600):
            raise TimeoutError("benchmark gate never opened")

    def open(self) -> None:
        """Let the watch go, and note the time: the watch's clock starts here.

        Under callgrind, instructions are counted from here on. Opening an open gate
        does nothing.
        """
        if self._open.is_set():
            return
        counting(True)
        self.opened_at = time.perf_counter()
        self.opened_cpu = cpu()
        self._open.set()


class Counter:
    """Counts deliveries from one thread and wakes waiters at marks and at the target."""

    def __init__(self, target: int, marks: tuple[int, ...] = ()) -> None:
        self.count = 0
        self.target = target
        self.done = threading.Event()
        self.done_at = 0.0
        self.done_cpu = 0.0
        self._marks = {n: threading.Event() for n in marks}
        if target <= 0:
            self.done.set()

    def hit(self, _item: object = None) -> None:
        """Count one delivery (only one thread may call it for a given counter)."""
        self.count += 1
        if self.count in self._marks:
            self._marks[self.count].set()
        if self.count == self.target:
            self.done_at = time.perf_counter()
            self.done_cpu = cpu()
            self.done.set()

    def wait(self, timeout: float, mark: int | None = None) -> None:
        """Block until the target (or ``mark``, given at construction) is reached.

        Raises:
            TimeoutError: not reached within ``timeout`` seconds.
        """
        event = self.done if mark is None else self._marks[mark]
        if not event.wait(timeout):
            want = self.target if mark is None else mark
            raise TimeoutError(f"got {self.count} of {want} deliveries in {timeout:.0f} s")


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t:`` leaves the elapsed seconds in ``t[0]``."""
    elapsed = [0.0]
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.perf_counter() - start


def cache_figures(
    p: Params,
    ready_s: float,
    held: int,
    watch_s: float | None = None,
    *,
    ready_cpu_s: float,
    watch_cpu_s: float | None = None,
    ready_collections: int | None = None,
    watch_collections: int | None = None,
    held_updated: int | None = None,
) -> Result:
    """The figures every cache measurement reports, named the same for every client.

    ``ready_s``/``watch_s`` are wall times, ``ready_cpu_s``/``watch_cpu_s`` the client's
    CPU time over the same spans (the figures that are compared); ``ready_collections``
    and ``watch_collections`` the full collections during the list and during the watch
    (see :func:`full_collections`); ``held_updated`` the memory held once ``p.events``
    updates have replaced cached pods (a traced run that watches).
    """
    result: Result = {
        "ready_s": ready_s,
        "pods_per_s": p.pods / ready_s,
        "ready_cpu_s": ready_cpu_s,
        "ready_cpu_us_per_pod": ready_cpu_s / p.pods * 1e6,
    }
    if ready_collections is not None:
        result["ready_full_collections"] = ready_collections
    result["mem_traced_per_pod" if p.traced else "mem_rss_per_pod"] = held / p.pods
    if held_updated is not None:
        result["mem_traced_per_pod_updated"] = held_updated / p.pods
    if watch_s is not None and p.events:
        result["watch_s"] = watch_s
        result["events_per_s"] = p.events / watch_s
    if watch_cpu_s is not None and p.events:
        result["watch_cpu_us_per_event"] = watch_cpu_s / p.events * 1e6
    if watch_collections is not None and p.events:
        result["watch_full_collections"] = watch_collections
    return result
