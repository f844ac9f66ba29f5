"""A scheduled drain on a thread pool: its bound holds whichever pool thread produces.

The consumer of a ``ScheduledDrain`` runs on pool threads, one batch per action; a
producer can run on those same threads (a stage of a pipeline whose stages share one
pool). Such a producer must still wait for room, and its waiting must not deadlock a
pool whose every thread is taken: there, it delivers the pending batch itself.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import reactivex
from reactivex import operators as ops
from reactivex.scheduler import ThreadPoolScheduler
from reactivex.subject import Subject

from rxkube.operators import observe_on
from tests.waiting import Sink

CAPACITY = 4
FAN_OUT = 10


@pytest.fixture(params=[1, 2, 4], ids=lambda n: f"pool{n}")
def pool(request: pytest.FixtureRequest) -> Iterator[ThreadPoolScheduler]:
    scheduler = ThreadPoolScheduler(request.param)
    yield scheduler
    scheduler.executor.shutdown(wait=True)


class InFlight:
    """Counts the items that entered the last stage and that its consumer has not finished."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entered = 0
        self.consumed = 0
        self.most = 0

    def enter(self, item: Any) -> Any:
        with self._lock:
            self.entered += 1
            self.most = max(self.most, self.entered - self.consumed)
        return item

    def leave(self) -> None:
        with self._lock:
            self.consumed += 1


def run_stages(pool: ThreadPoolScheduler, stages: int, count: int, seed: int) -> InFlight:
    """Feed ``count`` items through ``stages`` bounded observe_on stages on ``pool``.

    Each stage but the last turns an item into ``FAN_OUT`` items on its pool thread, so
    a stage's delivery is a producer into the next stage that can fill it at once.
    Returns the in-flight count of the last stage; fails unless every item arrived, once,
    in order.
    """
    rng = random.Random(seed)
    inflight = InFlight()
    pause = threading.Event()  # never set: the slow consumer's random delays

    def slow(item: int) -> None:
        if rng.random() < 0.3:
            pause.wait(rng.random() * 0.002)
        inflight.leave()

    def fan_out(source: reactivex.Observable[int]) -> reactivex.Observable[int]:
        # In line, where flat_map's inner sources would go through the thread's
        # trampoline: deferred, when nested in another delivery, and so out of order.
        def subscribe(observer: Any, scheduler: Any = None) -> Any:
            def on_next(n: int) -> None:
                for item in range(n * FAN_OUT, (n + 1) * FAN_OUT):
                    observer.on_next(item)

            return source.subscribe(on_next, observer.on_error, observer.on_completed)

        return reactivex.Observable(subscribe)

    pipeline: list[Any] = []
    for stage in range(stages):
        pipeline.append(observe_on(pool, capacity=CAPACITY))
        if stage < stages - 1:
            pipeline.append(fan_out)
    pipeline.insert(-1, ops.map(inflight.enter))
    sink = Sink(on_item=slow)
    source: Subject[int] = Subject()
    subscription = source.pipe(*pipeline).subscribe(sink.on_next, sink.on_error, sink.on_completed)

    def feed() -> None:
        for n in range(count):
            source.on_next(n)
        source.on_completed()

    feeder = threading.Thread(target=feed, name="feeder")
    feeder.start()
    total = count * FAN_OUT ** (stages - 1)
    try:
        sink.wait(lambda s: s.completed or bool(s.errors), f"all {total} items (a deadlock?)")
    finally:
        subscription.dispose()  # releases a producer still waiting for room
        feeder.join(timeout=30)
    assert not feeder.is_alive()
    assert sink.errors == []
    assert sink.items == list(range(total))
    assert sink.overlaps == 0
    return inflight


@pytest.mark.parametrize("seed", range(3))
def test_stages_sharing_a_pool_keep_their_bound_order_and_every_item(
    pool: ThreadPoolScheduler, seed: int
) -> None:
    inflight = run_stages(pool, stages=2, count=60, seed=seed)
    # Queued or being delivered at most CAPACITY, plus the one the producer is putting.
    assert inflight.most <= CAPACITY + 1, f"{inflight.most} items in flight"


@pytest.mark.parametrize("seed", range(2))
def test_more_stages_than_pool_threads_all_finish(pool: ThreadPoolScheduler, seed: int) -> None:
    """Every thread of a pool of one or two can be a producer waiting on another stage."""
    inflight = run_stages(pool, stages=4, count=6, seed=seed)
    assert inflight.most <= CAPACITY + 1, f"{inflight.most} items in flight"
