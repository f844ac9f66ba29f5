"""The delivery seams: the hand-over primitive, where events are delivered, and consumer errors.

Every seam where events cross a thread (a watcher to its subscriber, ``observe_on``, a
shared store to its subscribers, the asyncio bridge, the controller) keeps order, bounds
what it queues, and turns an exception of the consumer's callback into
``on_error(ConsumerError)`` after disposing its upstream.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
import reactivex
from reactivex import Observable
from reactivex import operators as rx_ops
from reactivex.scheduler import ThreadPoolScheduler

from rxkube import default_backoff, store, watcher
from rxkube._delivery import Handover, LoopDrain, ScheduledDrain, burst, defer, flush
from rxkube.client import Api
from rxkube.errors import ConsumerError
from rxkube.events import Event, Init, InitApply, InitDone, Object
from rxkube.operators import modify, observe_on, reflect
from rxkube.protocol import Config
from rxkube.testing import ApiServer
from tests.waiting import Sink, eventually

TIMEOUT = 30.0


@pytest.fixture
def pool() -> Any:
    scheduler = ThreadPoolScheduler(8)
    yield scheduler
    scheduler.executor.shutdown(wait=True)


def configmaps(srv: ApiServer, n: int) -> Api:
    for i in range(n):
        srv.create("configmaps", {"metadata": {"name": f"cm-{i:03d}", "namespace": "default"}})
    return Api(srv.client(), "configmaps", namespace="default")


def jitter(limit: float = 0.003) -> Callable[[Any], None]:
    """A consumer that takes a random few milliseconds per item (simulated work, not a wait)."""
    rng = random.Random()
    pause = threading.Event()

    def work(_item: Any) -> None:
        pause.wait(rng.random() * limit)

    return work


def slow_identity(obj: Object) -> Object:
    threading.Event().wait(random.random() * 0.01)  # a modify() fn doing a few ms of work
    return obj


# -- the primitive ---------------------------------------------------------------------------


def test_a_handover_batches_and_wakes_its_consumer_only_on_the_empty_edge() -> None:
    wakes: list[int] = []
    handover: Handover[int] = Handover(10, lambda: wakes.append(1))
    for i in range(5):
        assert handover.put(i)
    assert wakes == [1]
    assert handover.take() == [0, 1, 2, 3, 4]
    assert handover.put(5) and wakes == [1], "not idle yet: the consumer has not seen it empty"
    assert handover.take() == [5]
    assert handover.take() == []
    assert handover.put(6) and wakes == [1, 1]


def test_a_full_handover_makes_its_producer_wait_until_the_consumer_takes() -> None:
    handover: Handover[int] = Handover(2)
    handover.put_all([0, 1])
    done = threading.Event()

    def produce() -> None:
        handover.put(2)
        done.set()

    producer = threading.Thread(target=produce, name="producer")
    producer.start()
    assert not done.wait(0.2), "the producer went past a full queue"
    assert handover.take() == [0, 1]
    assert not done.wait(0.2), "the batch taken counts until it is delivered"
    assert handover.take() == []  # the consumer is back for more: the batch was delivered
    assert done.wait(TIMEOUT)
    assert handover.take() == [2]
    producer.join(TIMEOUT)


def test_closing_a_handover_releases_a_waiting_producer() -> None:
    handover: Handover[int] = Handover(1)
    handover.put(0)
    answers: list[bool] = []
    producer = threading.Thread(target=lambda: answers.append(handover.put(1)))
    producer.start()
    assert not answers
    handover.close()
    producer.join(TIMEOUT)
    assert answers == [False]
    assert not handover.put(2) and handover.take() == []


def test_a_consumer_that_steps_aside_hands_its_part_to_the_waiting_producer() -> None:
    """A thread delivering another's items gives way once that producer waits for room."""
    woken_on: list[str] = []
    handover: Handover[int] = Handover(2, lambda: woken_on.append(threading.current_thread().name))
    assert not handover.step_aside(), "nobody waits: the consumer goes on"
    handover.put_all([0, 1])
    assert handover.take() == [0, 1]
    for i in (2, 3):  # beyond the bound, while [0, 1] is being delivered
        assert handover.put(i, wait=False)
    done = threading.Event()

    def produce() -> None:
        handover.put(4)  # full: waits, then takes over as the consumer
        done.set()

    producer = threading.Thread(target=produce, name="producer")
    producer.start()
    eventually(lambda: handover.producers_waiting == 1, "the producer to wait")
    assert handover.step_aside()
    assert done.wait(TIMEOUT), "the producer stopped waiting: it delivers from now on"
    producer.join(TIMEOUT)
    assert woken_on == ["MainThread", "producer"]
    assert handover.take() == [2, 3, 4], "nothing lost, in order"


def test_a_drop_handover_overflows_instead_of_waiting() -> None:
    handover: Handover[int] = Handover(2, drop=True)
    assert handover.put_all([0, 1])
    assert not handover.put(2)
    assert handover.overflowed and handover.closed


def test_a_blocking_take_waits_for_an_item_or_for_close() -> None:
    handover: Handover[int] = Handover(4)
    got: list[list[int]] = []
    consumer = threading.Thread(target=lambda: got.extend([handover.take(block=True)] * 1))
    consumer.start()
    handover.put(7)
    consumer.join(TIMEOUT)
    assert got == [[7]]
    consumer = threading.Thread(target=lambda: got.append(handover.take(block=True)))
    consumer.start()
    handover.close()
    consumer.join(TIMEOUT)
    assert got == [[7], []]


def test_a_non_waiting_put_queues_beyond_the_bound() -> None:
    handover: Handover[int] = Handover(1)
    handover.put(0)
    answers: list[bool] = []
    producer = threading.Thread(target=lambda: answers.append(handover.put(1, wait=False)))
    producer.start()
    producer.join(TIMEOUT)
    assert answers == [True], "a non-waiting put waited for room"
    assert handover.take() == [0, 1]
    handover.close()
    assert not handover.put(2, wait=False)


def test_a_blocking_take_with_a_timeout_answers_empty_when_it_is_due() -> None:
    handover: Handover[int] = Handover(4)
    assert handover.take(block=True, timeout=0.01) == []
    got: list[list[int]] = []
    consumer = threading.Thread(target=lambda: got.append(handover.take(block=True, timeout=60)))
    consumer.start()
    handover.put(7)  # wakes it long before its timeout
    consumer.join(TIMEOUT)
    assert got == [[7]]


def test_a_loop_drain_takes_batches_on_the_loop_and_close_wakes_a_waiting_take() -> None:
    async def main() -> tuple[list[list[int]], list[int]]:
        drain: LoopDrain[int] = LoopDrain(4)
        batches = []
        producer_done = threading.Event()

        def produce() -> None:
            for i in range(20):
                drain.handover.put(i)  # waits while four are queued
            producer_done.set()

        thread = threading.Thread(target=produce, name="rxkube-test-producer")
        thread.start()
        taken: list[int] = []
        while len(taken) < 20:
            batch = await asyncio.wait_for(drain.take(), TIMEOUT)
            assert 1 <= len(batch) <= 5  # four queued, and the one a waiting producer adds
            batches.append(batch)
            taken.extend(batch)
        thread.join(TIMEOUT)
        assert producer_done.is_set()
        waiting = asyncio.ensure_future(drain.take())
        await asyncio.sleep(0)  # let it start waiting (a yield to the loop, not a wait)
        threading.Thread(target=drain.close, name="rxkube-test-closer").start()
        assert await asyncio.wait_for(waiting, TIMEOUT) == []
        return batches, taken

    _, taken = asyncio.run(main())
    assert taken == list(range(20))


def test_a_burst_holds_back_deferred_work_until_flush_or_its_end() -> None:
    ran: list[str] = []
    assert not defer(lambda: ran.append("no burst")), "without a burst the caller runs it"
    with burst():
        assert defer(lambda: ran.append("a"))
        with burst():  # nested bursts are one
            assert defer(lambda: ran.append("b"))
        assert ran == []
        flush()
        assert ran == ["a", "b"]
        assert defer(lambda: ran.append("c"))
    assert ran == ["a", "b", "c"]


def test_a_producer_flushes_what_it_holds_back_before_it_waits_for_room() -> None:
    """What a burst holds back may be what the consumer needs: waiting first would hang."""
    handover: Handover[int] = Handover(1)
    arrived = threading.Event()
    other: Handover[int] = Handover(8, arrived.set)
    assert handover.put(0)
    done = threading.Event()

    def put_other() -> None:
        other.put(99)

    def produce() -> None:
        with burst():
            defer(put_other)
            handover.put(1)  # full: flushes the deferred put, then waits
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert arrived.wait(TIMEOUT), "the held-back work went out before the producer waited"
    assert other.take() == [99]
    assert handover.take() == [0]
    assert handover.take() == []  # the batch taken is delivered: room again
    assert done.wait(TIMEOUT)
    producer.join(TIMEOUT)
    assert handover.take() == [1]


def test_a_scheduled_drain_is_serial_and_in_order_on_a_thread_pool(pool: Any) -> None:
    sink = Sink(jitter(0.001))

    def deliver(batch: list[int]) -> None:
        for i in batch:
            sink.on_next(i)

    drain: ScheduledDrain[int] = ScheduledDrain(pool, 16, deliver, sink.on_error)
    producers = []
    for p in range(4):

        def produce(p: int = p) -> None:
            for i in range(250):
                drain.handover.put((p, i))  # type: ignore[arg-type]

        producers.append(threading.Thread(target=produce))
    for thread in producers:
        thread.start()
    sink.wait(lambda s: len(s.items) == 1000, "every item")
    for thread in producers:
        thread.join(TIMEOUT)
    assert sink.overlaps == 0
    for p in range(4):
        assert [i for q, i in sink.items if q == p] == list(range(250))


# -- where a watcher delivers ---------------------------------------------------------------


def test_subscribe_scheduler_does_not_move_a_watchers_delivery(
    apiserver: ApiServer, pool: Any
) -> None:
    api = configmaps(apiserver, 3)
    sink = Sink()
    subscription = watcher(api).subscribe(sink.on_next, sink.on_error, scheduler=pool)
    try:
        sink.wait(lambda s: any(isinstance(e, InitDone) for e in s.items), "the list")
        assert sink.threads == {"rxkube-watch-configmaps"}
    finally:
        subscription.dispose()


def test_reflect_on_a_thread_pool_scheduler_is_complete_at_ready(
    apiserver: ApiServer, pool: Any
) -> None:
    # 200 objects listed one per page, a modify() that takes a few ms, and a thread pool as
    # the subscription's scheduler: the store holds every object once it is ready.
    api = configmaps(apiserver, 200)
    reader, writer = store("configmaps")
    sink = Sink()
    subscription = (
        watcher(api, Config(page_size=1))
        .pipe(modify(slow_identity), reflect(writer))
        .subscribe(sink.on_next, sink.on_error, scheduler=pool)
    )
    try:
        reader.wait_until_ready(TIMEOUT)
        assert len(reader) == 200
        kinds = [type(e) for e in sink.items]
        assert kinds.index(InitDone) == 201 and InitApply not in kinds[202:]
    finally:
        subscription.dispose()


@pytest.mark.parametrize("implementation", ["rxkube", "reactivex"])
def test_observe_on_a_thread_pool_keeps_order(
    apiserver: ApiServer, pool: Any, implementation: str
) -> None:
    api = configmaps(apiserver, 100)
    hop = observe_on(pool, capacity=8) if implementation == "rxkube" else rx_ops.observe_on(pool)
    reader, writer = store("configmaps")
    sink = Sink(jitter())
    subscription = (
        watcher(api, Config(page_size=3))
        .pipe(hop, modify(slow_identity), reflect(writer))
        .subscribe(sink.on_next, sink.on_error)
    )
    try:
        reader.wait_until_ready(TIMEOUT)
        assert len(reader) == 100
        sink.wait(lambda s: any(isinstance(e, InitDone) for e in s.items), "InitDone delivered")
        events: list[Event] = sink.items
        assert isinstance(events[0], Init) and isinstance(events[101], InitDone)
        assert [e.obj["metadata"]["name"] for e in events[1:101] if isinstance(e, InitApply)] == [
            f"cm-{i:03d}" for i in range(100)
        ]
        assert sink.overlaps == 0
        assert not any(t.startswith("rxkube-watch") for t in sink.threads)
    finally:
        subscription.dispose()


def test_observe_on_makes_its_producer_wait_and_disposal_releases_it(pool: Any) -> None:
    release = threading.Event()
    produced: list[int] = []
    finished = threading.Event()

    def source(observer: Any, _scheduler: Any = None) -> Any:
        def produce() -> None:
            for i in range(100):
                produced.append(i)
                observer.on_next(i)
            finished.set()

        threading.Thread(target=produce, name="rxkube-test-producer").start()
        return reactivex.disposable.Disposable()

    sink = Sink(lambda _item: release.wait(TIMEOUT))
    subscription = Observable(source).pipe(observe_on(pool, capacity=4)).subscribe(sink.on_next)
    assert not finished.wait(0.3), "the producer went past a full queue"
    # At most a batch being delivered, four queued and the one the producer waits with.
    assert 5 <= len(produced) <= 9
    subscription.dispose()
    assert finished.wait(TIMEOUT), "the disposal did not release the producer"
    release.set()


# -- one policy for an exception of the consumer's callback ---------------------------------


def _raise_on(n: int) -> Callable[[Any], None]:
    count = [0]

    def on_item(_item: Any) -> None:
        count[0] += 1
        if count[0] == n:
            raise ValueError("a bug in the subscriber")

    return on_item


def _assert_consumer_error(sink: Sink, subscriber: str) -> None:
    sink.wait(lambda s: bool(s.errors), "on_error")
    [error] = sink.errors
    assert isinstance(error, ConsumerError), error
    assert not error.transient
    assert isinstance(error.__cause__, ValueError)
    assert subscriber in str(error) and "a bug in the subscriber" in str(error)


def test_a_raising_watcher_subscriber_stops_the_watch_and_gets_on_error(
    apiserver: ApiServer,
) -> None:
    # With reflect() and default_backoff() in the pipe, the bug is not retried: the
    # watch ends, its connection closes, and the error reaches on_error.
    api = configmaps(apiserver, 10)
    _, writer = store("configmaps")
    sink = Sink(_raise_on(5))
    subscription = (
        watcher(api).pipe(reflect(writer), default_backoff()).subscribe(sink.on_next, sink.on_error)
    )
    try:
        _assert_consumer_error(sink, "the subscriber of watch configmaps in default")
        eventually(lambda: apiserver.open_watches() == 0, "the watch to close")
        eventually(
            lambda: not [t for t in threading.enumerate() if t.name.startswith("rxkube-watch")],
            "the watch thread to end",
        )
        lists = [r for r in apiserver.requests if r.verb in ("list", "watch")]
        assert len(lists) == 1, "the subscriber's bug was retried"
    finally:
        subscription.dispose()


def test_a_raising_observer_behind_observe_on_disposes_the_watch(
    apiserver: ApiServer, pool: Any
) -> None:
    api = configmaps(apiserver, 10)
    sink = Sink(_raise_on(5))
    subscription = (
        watcher(api)
        .pipe(observe_on(pool), default_backoff())
        .subscribe(sink.on_next, sink.on_error)
    )
    try:
        _assert_consumer_error(sink, "the subscriber of observe_on(ThreadPoolScheduler)")
        eventually(
            lambda: not [t for t in threading.enumerate() if t.name.startswith("rxkube-watch")],
            "the watch to be disposed",
        )
        assert len(sink.items) == 5
    finally:
        subscription.dispose()


def test_a_consumer_error_without_on_error_is_logged(
    apiserver: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    api = configmaps(apiserver, 2)
    subscription = watcher(api).subscribe(_raise_on(1))
    try:
        eventually(
            lambda: not [t for t in threading.enumerate() if t.name.startswith("rxkube-watch")],
            "the watch to end",
        )
        assert "the subscriber of watch configmaps in default raised ValueError" in caplog.text
    finally:
        subscription.dispose()
