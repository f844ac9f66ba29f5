"""rxkube.aio: the Observable <-> async bridges, the async operators and the aiostream face.

Every test runs its own event loop with ``run()``, which also fails the test if a
task is left behind. Producers run on threads named ``rxkube-test-*`` so the suite's
leak check sees them.
"""

from __future__ import annotations

import asyncio
import doctest
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
import reactivex
from aiostream import pipe as aiostream_pipe
from aiostream import stream as aiostream_stream
from aiostream.core import Stream
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.subject import Subject

import rxkube.aio
from rxkube import ExponentialBackoff, aio, operators, predicates, store, store_shared
from rxkube._cache import Store, Writer
from rxkube.client import Api
from rxkube.errors import ConsumerError, NotFound, ServerError, TransportError
from rxkube.events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from rxkube.testing import ApiServer

_T = TypeVar("_T")

TIMEOUT = 10.0


def run(test: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``test()`` on a new loop; fail if it leaves a task behind."""

    async def main() -> _T:
        result = await asyncio.wait_for(test(), TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        # Async generators dropped by a ``break`` are closed by tasks the loop starts.
        while (left := asyncio.all_tasks() - {asyncio.current_task()}) and (
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.001)
        assert not left, f"tasks left running: {left}"
        return result

    return asyncio.run(main())


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (without blocking the loop) for ``condition``, at most TIMEOUT seconds."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


class Tracked:
    """A cold Observable that records its subscriptions and disposals."""

    def __init__(self, emit: Callable[[abc.ObserverBase[Any]], None] | None = None) -> None:
        self.subscribed = 0
        self.disposed = threading.Event()
        self.observer: abc.ObserverBase[Any] | None = None
        self._emit = emit
        self.observable: Observable[Any] = reactivex.create(self._subscribe)

    def _subscribe(
        self, observer: abc.ObserverBase[Any], _: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        self.subscribed += 1
        self.observer = observer
        if self._emit is not None:
            self._emit(observer)
        return Disposable(self.disposed.set)


class Producer:
    """A thread that sends items to an observer, recording how far it got."""

    def __init__(self, observer: abc.ObserverBase[int], count: int) -> None:
        self.calling = 0  # the item whose on_next is running or done
        self.sent = 0  # on_next calls that returned
        self._observer = observer
        self._count = count
        self.thread = threading.Thread(target=self._run, name="rxkube-test-producer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for i in range(self._count):
            self.calling = i + 1
            self._observer.on_next(i)
            self.sent = i + 1
        self._observer.on_completed()

    def join(self) -> None:
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()


def events() -> list[Event]:
    a1 = {"metadata": {"name": "a", "uid": "1", "generation": 1, "resourceVersion": "1"}}
    a2 = {"metadata": {"name": "a", "uid": "1", "generation": 1, "resourceVersion": "2"}}
    a3 = {"metadata": {"name": "a", "uid": "1", "generation": 2, "resourceVersion": "3"}}
    b = {"metadata": {"name": "b", "uid": "2", "generation": 1, "resourceVersion": "4"}}
    return [Init(), InitApply(a1), InitApply(b), InitDone(), Apply(a2), Apply(a3), Delete(b)]


def source_of(items: list[_T]) -> aio.AsyncSource[_T]:
    async def generate() -> AsyncIterator[_T]:
        for item in items:
            yield item

    return aio.defer(generate)


async def collect(source: Any) -> list[Any]:
    return [item async for item in source]


async def collect_stream(xs: Stream[Any]) -> list[Any]:
    async with xs.stream() as streamer:
        items = [item async for item in streamer]
    return items


# --- iterate: Observable -> async iterator -------------------------------------------


def test_iterate_yields_a_threads_items_in_order_and_ends_on_completion() -> None:
    subject: Subject[int] = Subject()

    async def test() -> list[int]:
        iterator = aio.iterate(subject)
        first = asyncio.ensure_future(anext(iterator))
        await until(lambda: bool(subject.observers), "the subscription")
        producer = Producer(subject, 500)
        items = [await first, *[item async for item in iterator]]
        producer.join()
        return items

    assert run(test) == list(range(500))


def test_iterate_subscribes_at_the_first_anext_only() -> None:
    tracked = Tracked(lambda observer: observer.on_completed())

    async def test() -> None:
        iterator = aio.iterate(tracked.observable)
        assert tracked.subscribed == 0
        assert await collect(iterator) == []
        assert tracked.subscribed == 1

    run(test)


async def producing(
    count: int, maxsize: int
) -> tuple[Tracked, aio.ObservableIterator[int], Producer]:
    """Iterate a Tracked observable fed by a Producer thread, up to its first item."""
    tracked = Tracked()
    iterator = aio.iterate(tracked.observable, maxsize=maxsize)
    first = asyncio.ensure_future(anext(iterator))
    await until(lambda: tracked.observer is not None, "the subscription")
    assert tracked.observer is not None
    producer = Producer(tracked.observer, count)
    assert await first == 0
    return tracked, iterator, producer


def test_iterate_blocks_the_producer_thread_while_the_queue_is_full() -> None:
    async def test() -> None:
        _, iterator, producer = await producing(20, maxsize=3)
        assert iterator._drain is not None
        handover = iterator._drain.handover
        consumed = 1
        # Three items fill the queue and the producer's next on_next waits. Besides the
        # queue, the consumer may hold the batch it took (a batch per wake-up).
        await until(
            lambda: handover.backlog() >= 3 and producer.calling == producer.sent + 1,
            "the producer to block",
        )
        assert producer.sent - consumed <= 2 * 3 + 1
        while iterator._batch:  # served from the batch in hand
            assert await anext(iterator) == consumed
            consumed += 1
        assert producer.sent - consumed <= 2 * 3 + 1, "the producer went past a full queue"
        assert producer.calling < 20
        assert await anext(iterator) == consumed  # takes the queue: the producer moves on
        consumed += 1
        assert [item async for item in iterator] == list(range(consumed, 20))
        producer.join()

    run(test)


def test_iterate_raises_the_error_after_the_items_before_it() -> None:
    boom = TransportError("connection reset")

    def emit(observer: abc.ObserverBase[int]) -> None:
        def send() -> None:
            observer.on_next(1)
            observer.on_next(2)
            observer.on_error(boom)

        threading.Thread(target=send, name="rxkube-test-error").start()

    tracked = Tracked(emit)

    async def test() -> list[int]:
        seen: list[int] = []
        with pytest.raises(TransportError) as raised:
            async for item in aio.iterate(tracked.observable):
                seen.append(item)
        assert raised.value is boom
        return seen

    assert run(test) == [1, 2]
    assert tracked.disposed.is_set()


def test_leaving_the_loop_early_disposes_the_subscription_and_frees_the_producer() -> None:
    async def test() -> Producer:
        tracked, iterator, producer = await producing(1000, maxsize=2)
        async for item in iterator:
            if item == 3:
                break
        del iterator  # the iterator is garbage: nothing holds it but this frame
        assert tracked.disposed.wait(TIMEOUT)
        return producer

    producer = run(test)
    producer.join()  # its blocked on_next returned
    assert producer.sent == 1000


def test_break_out_of_async_for_disposes_at_once() -> None:
    def ten(observer: abc.ObserverBase[Any]) -> None:
        for i in range(10):
            observer.on_next(i)

    tracked = Tracked(ten)

    async def test() -> None:
        async for item in aio.iterate(tracked.observable):
            if item == 2:
                break
        assert tracked.disposed.is_set()

    run(test)


def test_cancelling_the_consuming_task_disposes_the_subscription() -> None:
    tracked = Tracked()
    received: list[int] = []

    async def consume() -> None:
        async for item in aio.iterate(tracked.observable):
            received.append(item)

    async def test() -> None:
        task = asyncio.create_task(consume())
        await until(lambda: tracked.observer is not None, "the subscription")
        assert tracked.observer is not None
        tracked.observer.on_next(1)  # from the loop thread: queued without waiting
        await until(lambda: received == [1], "the first item")
        task.cancel()
        await asyncio.wait([task], timeout=TIMEOUT)
        assert task.cancelled()
        # The task (and its CancelledError's traceback) is still referenced here.
        assert tracked.disposed.is_set()

    run(test)


def test_aclose_disposes_and_ends_the_iteration() -> None:
    tracked = Tracked(lambda observer: observer.on_next(1))

    async def test() -> None:
        iterator = aio.iterate(tracked.observable)
        assert await anext(iterator) == 1
        await iterator.aclose()
        assert tracked.disposed.is_set()
        with pytest.raises(StopAsyncIteration):
            await anext(iterator)

    run(test)


def test_a_producer_on_the_loop_thread_never_waits() -> None:
    async def test() -> list[int]:
        return await collect(aio.iterate(reactivex.from_iterable(range(100)), maxsize=1))

    assert run(test) == list(range(100))


def test_iterate_wakes_the_loop_once_per_batch_not_per_item() -> None:
    # A burst from a thread while the consumer is busy is taken as one batch: the loop
    # is woken on the empty -> non-empty edge only.
    subject: Subject[int] = Subject()
    wakes = [0]

    async def test() -> list[int]:
        loop = asyncio.get_running_loop()
        call_soon_threadsafe = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
            wakes[0] += 1
            return call_soon_threadsafe(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign, assignment]
        try:
            iterator = aio.iterate(subject, maxsize=1000)
            first = asyncio.ensure_future(anext(iterator))
            await until(lambda: bool(subject.observers), "the subscription")

            def emit() -> None:
                for i in range(500):
                    subject.on_next(i)

            burst = threading.Thread(target=emit, name="rxkube-test-burst")
            burst.start()  # the loop is not running the consumer until this await
            burst.join(TIMEOUT)
            subject.on_completed()
            got = [await first] + [item async for item in iterator]
        finally:
            loop.call_soon_threadsafe = call_soon_threadsafe  # type: ignore[method-assign]
        return got

    assert run(test) == list(range(500))
    assert wakes[0] <= 3, f"{wakes[0]} wake-ups for 500 items"


def test_iterate_rejects_an_empty_queue() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        aio.iterate(reactivex.empty(), maxsize=0)


# --- from_async: async iterable -> Observable ------------------------------------------


def test_from_async_emits_items_and_completes_on_the_loop() -> None:
    async def test() -> tuple[list[int], list[bool]]:
        items: list[int] = []
        done: list[bool] = []
        finished = asyncio.Event()

        def complete() -> None:
            done.append(True)
            finished.set()

        aio.from_async(source_of([1, 2, 3])).subscribe(items.append, on_completed=complete)
        await asyncio.wait_for(finished.wait(), TIMEOUT)
        return items, done

    assert run(test) == ([1, 2, 3], [True])


def test_from_async_sends_the_iterations_error_to_on_error() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise NotFound(404, "NotFound", "pods 'x' not found")

    async def test() -> list[Exception]:
        errors: list[Exception] = []
        failed = asyncio.Event()

        def on_error(error: Exception) -> None:
            errors.append(error)
            failed.set()

        aio.from_async(aio.defer(failing)).subscribe(on_error=on_error)
        await asyncio.wait_for(failed.wait(), TIMEOUT)
        return errors

    assert [type(e) for e in run(test)] == [NotFound]


def test_a_raising_from_async_subscriber_closes_the_iteration_and_gets_a_consumer_error() -> None:
    async def test() -> tuple[list[int], list[Exception], bool]:
        closed = asyncio.Event()
        errors: list[Exception] = []
        failed = asyncio.Event()

        async def numbers() -> AsyncIterator[int]:
            try:
                for i in range(100):
                    yield i
            finally:
                closed.set()

        seen: list[int] = []

        def on_next(item: int) -> None:
            seen.append(item)
            if item == 3:
                raise ValueError("a bug in the subscriber")

        def on_error(error: Exception) -> None:
            errors.append(error)
            failed.set()

        aio.from_async(aio.defer(numbers)).subscribe(on_next, on_error)
        await asyncio.wait_for(failed.wait(), TIMEOUT)
        return seen, errors, closed.is_set()

    seen, errors, closed = run(test)
    assert seen == [0, 1, 2, 3]
    assert closed, "the upstream iteration was not closed before on_error"
    [error] = errors
    assert isinstance(error, ConsumerError) and not error.transient
    assert isinstance(error.__cause__, ValueError)
    assert "the subscriber of from_async(" in str(error)


def test_disposing_from_async_cancels_the_iteration_and_closes_it() -> None:
    async def test() -> None:
        finished = asyncio.Event()
        started = asyncio.Event()

        async def forever() -> AsyncIterator[int]:
            try:
                started.set()
                while True:
                    await asyncio.sleep(3600)
                    yield 1
            finally:
                finished.set()

        subscription = aio.from_async(aio.defer(forever)).subscribe()
        await asyncio.wait_for(started.wait(), TIMEOUT)
        subscription.dispose()
        await asyncio.wait_for(finished.wait(), TIMEOUT)

    run(test)


def test_from_async_subscribed_from_another_thread_runs_on_the_given_loop() -> None:
    async def test() -> list[int]:
        loop = asyncio.get_running_loop()
        items: list[int] = []
        finished = asyncio.Event()

        def subscribe() -> None:
            aio.from_async(source_of([1, 2]), loop=loop).subscribe(
                items.append, on_completed=lambda: finished.set()
            )

        thread = threading.Thread(target=subscribe, name="rxkube-test-subscriber")
        thread.start()
        await asyncio.wait_for(finished.wait(), TIMEOUT)
        thread.join(TIMEOUT)
        return items

    assert run(test) == [1, 2]


def test_from_async_without_a_loop_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="loop="):
        aio.from_async(source_of([1])).subscribe()


def test_bridges_round_trip() -> None:
    async def test() -> list[int]:
        return await collect(aio.iterate(aio.from_async(source_of([1, 2, 3]))))

    assert run(test) == [1, 2, 3]


# --- async operators: the same semantics as the Rx operators ------------------------


def rx_results(
    events: list[Event], operator: Callable[[Observable[Event]], Observable[Any]]
) -> list[Any]:
    out: list[Any] = []
    reactivex.from_iterable(events).pipe(operator).subscribe(out.append)
    return out


def strip_status(obj: Object) -> None:
    obj.pop("status", None)


@pytest.mark.parametrize(
    ("rx_operator", "async_operator"),
    [
        (operators.applied_objects(), aio.applied_objects()),
        (operators.touched_objects(), aio.touched_objects()),
        (operators.modify(strip_status), aio.modify(strip_status)),
        (operators.metadata_only(), aio.metadata_only()),
        (
            operators.predicate_filter(predicates.generation),
            aio.predicate_filter(predicates.generation),
        ),
        (
            operators.predicate_filter(predicates.resource_version | predicates.labels),
            aio.predicate_filter(predicates.resource_version | predicates.labels),
        ),
    ],
    ids=["applied", "touched", "modify", "metadata_only", "generation", "combined"],
)
def test_async_operators_agree_with_the_rx_operators(rx_operator: Any, async_operator: Any) -> None:
    twice = [*events(), *events()]  # a relist after a watch
    expected = rx_results(twice, rx_operator)

    async def test() -> list[Any]:
        return await collect(source_of(twice).pipe(async_operator))

    assert run(test) == expected
    assert expected  # the comparison is not vacuous


def test_async_reflect_fills_a_store_and_passes_events_on() -> None:
    reader, writer = store("pods")

    async def test() -> list[Object]:
        return await collect(source_of(events()).pipe(aio.reflect(writer), aio.applied_objects()))

    objects = run(test)
    assert len(objects) == 4
    assert reader.is_ready()
    assert [obj["metadata"]["name"] for obj in reader.state()] == ["a"]


def test_async_reflect_swaps_a_relist_in_off_the_event_loop() -> None:
    reader, writer = store("pods")
    threads: dict[str, set[int]] = {"Apply": set(), "InitDone": set()}
    phase = ["InitDone"]

    def index(obj: Object) -> str:
        threads[phase[0]].add(threading.get_ident())  # the index is rebuilt at the swap
        return "x"

    reader.add_index("x", index)

    async def test() -> int:
        loop_thread = threading.get_ident()
        async for event in source_of(events()).pipe(aio.reflect(writer)):
            if isinstance(event, InitDone):
                phase[0] = "Apply"
        return loop_thread

    loop_thread = run(test)
    assert threads["InitDone"] and loop_thread not in threads["InitDone"]
    assert threads["Apply"] == {loop_thread}, "the other events are applied on the loop"
    assert reader.is_ready() and len(reader) == 1


def test_async_reflect_shared_dispatches_to_subscribers_and_completes_them() -> None:
    reader, writer = store_shared(buffer_size=4, name="pods")
    got: list[str] = []
    completed = threading.Event()
    subscription = reader.subscribe().subscribe(
        lambda obj: got.append(obj["metadata"]["name"]), on_completed=completed.set
    )
    try:

        async def test() -> list[Event]:
            return await collect(source_of(events()).pipe(aio.reflect_shared(writer)))

        assert run(test) == events()
        assert completed.wait(TIMEOUT)
        assert got == ["a", "b", "a", "a"]
        assert [o["metadata"]["name"] for o in reader.state()] == ["a"]
    finally:
        subscription.dispose()


def test_async_reflect_shared_waits_for_a_full_buffer_without_blocking_the_loop() -> None:
    reader, writer = store_shared(buffer_size=1, name="pods")
    release = threading.Event()
    delivered: list[str] = []

    def slow(obj: Object) -> None:
        release.wait(TIMEOUT)
        delivered.append(obj["metadata"]["name"])

    subscription = reader.subscribe().subscribe(slow)
    pods = [Apply({"metadata": {"name": f"p{i}"}}) for i in range(4)]
    try:

        async def test() -> int:
            ticks = 0
            feeding = asyncio.ensure_future(
                collect(source_of(list(pods)).pipe(aio.reflect_shared(writer)))
            )
            await until(lambda: reader.stats().writer_waiting, "the writer to wait for room")
            while ticks < 20:  # the loop runs other work meanwhile
                await asyncio.sleep(0)
                ticks += 1
            assert not feeding.done()
            release.set()
            await asyncio.wait_for(feeding, TIMEOUT)
            return ticks

        assert run(test) == 20
        assert len(reader) == 4
    finally:
        release.set()
        subscription.dispose()


def test_async_reflect_shared_needs_a_writer_from_store_shared() -> None:
    _reader, writer = store("pods")
    with pytest.raises(TypeError, match="store_shared"):
        aio.reflect_shared(writer)(source_of([]))


def test_async_operator_sources_start_afresh_on_each_iteration() -> None:
    source = source_of(events()).pipe(aio.predicate_filter(predicates.generation))

    async def test() -> tuple[list[Event], list[Event]]:
        return await collect(source), await collect(source)

    first, second = run(test)
    assert first == second


def test_an_exception_of_a_user_function_propagates_from_the_async_operator() -> None:
    def broken(obj: Object) -> Object:
        raise TypeError("broken")

    async def test() -> None:
        with pytest.raises(TypeError, match="broken"):
            await collect(source_of(events()).pipe(aio.modify(broken)))

    run(test)


def test_async_operators_check_their_arguments_when_applied() -> None:
    with pytest.raises(ValueError, match="ttl"):
        source_of(events()).pipe(aio.predicate_filter(predicates.generation, ttl=-1))


def test_breaking_out_of_an_operator_chain_disposes_the_bridge_at_once() -> None:
    def send(observer: abc.ObserverBase[Any]) -> None:
        for event in events():
            observer.on_next(event)

    tracked = Tracked(send)

    async def test() -> None:
        source = aio.AsyncSource(lambda: aio.iterate(tracked.observable)).pipe(
            aio.modify(strip_status), aio.applied_objects()
        )
        async for _ in source:
            break
        assert tracked.disposed.is_set()  # at once: no generator is left for the loop to close

    run(test)


# --- async backoff ----------------------------------------------------------------


class Flaky:
    """An async source whose first ``failures`` iterations yield one item and fail."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.iterations = 0
        self.closed = 0

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        self.iterations += 1
        try:
            yield f"try {self.iterations}"
            if self.iterations <= self.failures:
                raise self.error
        finally:
            self.closed += 1


def fast() -> ExponentialBackoff:
    return ExponentialBackoff(initial=0.001, max_delay=0.004, jitter=0.0)


def test_async_backoff_iterates_again_after_transient_errors() -> None:
    flaky = Flaky(3, TransportError("reset"))
    retries: list[tuple[BaseException, float]] = []

    async def test() -> list[str]:
        op = aio.backoff(fast(), on_retry=lambda e, d: retries.append((e, d)))
        return await collect(aio.defer(lambda: flaky).pipe(op))

    assert run(test) == ["try 1", "try 2", "try 3", "try 4"]
    assert [d for _, d in retries] == [0.001, 0.002, 0.004]
    assert flaky.closed == 4


def test_async_backoff_propagates_other_errors() -> None:
    flaky = Flaky(1, TypeError("bug"))

    async def test() -> None:
        with pytest.raises(TypeError, match="bug"):
            await collect(aio.defer(lambda: flaky).pipe(aio.default_backoff()))

    run(test)
    assert flaky.iterations == 1


def test_async_backoff_gives_up_when_the_policy_does() -> None:
    class Twice:
        tries = 0

        def next_delay(self) -> float | None:
            self.tries += 1
            return 0.0 if self.tries <= 2 else None

        def reset(self) -> None:
            self.tries = 0

    flaky = Flaky(10, TransportError("down"))

    async def test() -> None:
        with pytest.raises(TransportError):
            await collect(aio.defer(lambda: flaky).pipe(aio.backoff(Twice())))

    run(test)
    assert flaky.iterations == 3


def test_async_backoff_resets_the_policy_after_reset_after_seconds() -> None:
    flaky = Flaky(3, TransportError("reset"))
    delays: list[float] = []

    async def test() -> None:
        op = aio.backoff(fast(), reset_after=0.0, on_retry=lambda e, d: delays.append(d))
        await collect(aio.defer(lambda: flaky).pipe(op))

    run(test)
    assert delays == [0.001, 0.001, 0.001]


def test_async_backoff_refuses_a_one_shot_iterator() -> None:
    async def once() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(TypeError, match="iterate again"):
        aio.backoff(fast())(once())


def test_cancelling_during_the_backoff_wait_ends_quietly() -> None:
    flaky = Flaky(1, TransportError("reset"))
    slow = ExponentialBackoff(initial=3600.0, jitter=0.0)

    async def test() -> None:
        task = asyncio.create_task(collect(aio.defer(lambda: flaky).pipe(aio.backoff(slow))))
        await until(lambda: flaky.closed == 1, "the first failure")
        task.cancel()
        await asyncio.wait([task], timeout=TIMEOUT)
        assert task.cancelled()

    run(test)
    assert flaky.iterations == 1


# --- aiostream ----------------------------------------------------------------------


def test_aiostream_pipeline_with_rxkube_pipe_operators() -> None:
    reader, writer = store("pods")

    async def test() -> list[Object]:
        xs = (
            aio.stream(source_of(events()))
            | aio.reflect.pipe(writer)
            | aio.predicate_filter.pipe(predicates.generation)
            | aio.applied_objects.pipe()
        )
        return await collect_stream(xs)

    names = [obj["metadata"]["resourceVersion"] for obj in run(test)]
    assert names == ["1", "4", "3"]
    assert len(reader) == 1


def test_aiostream_stream_of_an_observable() -> None:
    async def test() -> list[int]:
        def tenfold(x: int, *_: int) -> int:
            return x * 10

        xs = aio.stream(reactivex.of(1, 2, 3)) | aiostream_stream.map.pipe(tenfold)
        return await collect_stream(xs)

    assert run(test) == [10, 20, 30]


def test_aiostream_backoff_iterates_the_stream_again() -> None:
    flaky = Flaky(2, TransportError("reset"))

    async def test() -> list[str]:
        xs = aio.stream(aio.defer(lambda: flaky)) | aio.backoff.pipe(fast())
        return await collect_stream(xs)

    assert run(test) == ["try 1", "try 2", "try 3"]


def test_without_aiostream_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiostream", None)
    with pytest.raises(ImportError, match=r"pip install 'rxkube\[aiostream\]'"):
        aio.stream(source_of([1]))
    fresh = aio.AsyncOperator(aio.applied_objects.raw)
    with pytest.raises(ImportError, match="GPL"):
        fresh.pipe()


def test_rxkube_aio_imports_without_aiostream() -> None:
    code = (
        "import sys; sys.modules['aiostream'] = None\n"
        "import rxkube.aio, rxkube.operators\n"
        "assert 'aiostream' not in [m for m in sys.modules if sys.modules[m]]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(rxkube.aio).failed == 0


# --- against the test API server ------------------------------------------------------


def pod(name: str) -> Object:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


def watch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("rxkube-watch")]


def test_aio_watcher_pipeline_recovers_and_follows_changes(apiserver: ApiServer) -> None:
    pods = Api(apiserver.client(), "pods", namespace="default")
    pods.create(pod("a"))
    apiserver.faults.fail_requests(503, count=1, verb="list")
    reader, writer = store("pods")
    retries: list[BaseException] = []

    async def test() -> list[str]:
        names: list[str] = []
        objects = aio.watcher(pods).pipe(
            aio.reflect(writer),
            aio.backoff(fast(), on_retry=lambda error, delay: retries.append(error)),
            aio.applied_objects(),
        )
        async for obj in objects:
            names.append(obj["metadata"]["name"])
            if names == ["a"]:
                await asyncio.to_thread(pods.create, pod("b"))
            if len(names) == 2:
                break
        return names

    assert run(test) == ["a", "b"]
    assert [type(error) for error in retries] == [ServerError]
    assert reader.get("b", "default") is not None


def test_breaking_out_of_an_aio_watcher_closes_the_watch(apiserver: ApiServer) -> None:
    pods = Api(apiserver.client(), "pods", namespace="default")
    for i in range(50):
        pods.create(pod(f"p{i}"))

    async def test() -> None:
        async for event in aio.watcher(pods, maxsize=1):  # the watch thread waits at once
            if isinstance(event, InitApply):
                break
        await until(lambda: not watch_threads(), "the watch thread to end")

    run(test)


def test_cancelling_an_aio_watcher_consumer_closes_the_watch(apiserver: ApiServer) -> None:
    pods = Api(apiserver.client(), "pods", namespace="default")

    async def test() -> None:
        done_listing = asyncio.Event()

        async def consume() -> None:
            async for event in aio.watcher(pods):
                if isinstance(event, InitDone):
                    done_listing.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(done_listing.wait(), TIMEOUT)
        task.cancel()  # it waits for the next event
        await asyncio.wait([task], timeout=TIMEOUT)
        assert task.cancelled()
        await until(lambda: not watch_threads(), "the watch thread to end")

    run(test)


# Leaving an iteration, however it is left, ends its store's run at once, not when the loop
# gets round to a finalizer: the next iteration of the same writer starts, and the watch's
# thread and connection end.

Pipeline = Callable[[Api, Writer], aio.AsyncSource[Any]]

PIPELINES: dict[str, tuple[Callable[[], tuple[Store, Writer]], Pipeline]] = {
    "reflect": (lambda: store("configmaps"), lambda api, w: aio.watcher(api).pipe(aio.reflect(w))),
    "reflect-backoff-objects": (
        lambda: store("configmaps"),
        lambda api, w: aio.watcher(api).pipe(
            aio.reflect(w), aio.default_backoff(), aio.applied_objects()
        ),
    ),
    "reflect_shared": (
        lambda: store_shared(buffer_size=4, name="configmaps"),
        lambda api, w: aio.watcher(api).pipe(aio.reflect_shared(w), aio.modify(strip_status)),
    ),
}


async def leave_with_break(source: aio.AsyncSource[Any]) -> None:
    async for _ in source:
        break


async def leave_with_an_error_in_the_body(source: aio.AsyncSource[Any]) -> None:
    with pytest.raises(LookupError):  # which keeps the error, and its traceback the frame
        async for _ in source:
            raise LookupError("the loop's body failed")


async def leave_by_cancelling_the_task(source: aio.AsyncSource[Any]) -> None:
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in source:
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), TIMEOUT)
    task.cancel()  # it waits for the next event
    await asyncio.wait([task], timeout=TIMEOUT)
    assert task.cancelled()  # and it keeps its CancelledError, whose traceback the frames


async def leave_by_dropping_the_iterator(source: aio.AsyncSource[Any]) -> None:
    iterator = aiter(source)
    await anext(iterator)
    del iterator  # garbage: nothing holds it but this frame


async def leave_with_aclose(source: aio.AsyncSource[Any]) -> None:
    iterator = aiter(source)
    await anext(iterator)
    await iterator.aclose()  # type: ignore[attr-defined]  # an operator's, as a generator's


@pytest.mark.parametrize(
    "leave",
    [
        leave_with_break,
        leave_with_an_error_in_the_body,
        leave_by_cancelling_the_task,
        leave_by_dropping_the_iterator,
        leave_with_aclose,
    ],
    ids=["break", "error", "cancel", "drop", "aclose"],
)
@pytest.mark.parametrize("pipeline", list(PIPELINES), ids=list(PIPELINES))
def test_leaving_a_store_pipeline_ends_its_run_at_once(
    apiserver: ApiServer, pipeline: str, leave: Callable[[aio.AsyncSource[Any]], Awaitable[None]]
) -> None:
    maps = Api(apiserver.client(), "configmaps", namespace="default")
    maps.create({"metadata": {"name": "c"}})
    make_store, make_pipeline = PIPELINES[pipeline]
    reader, writer = make_store()

    async def test() -> list[str]:
        states: list[str] = []
        async with asyncio.timeout(TIMEOUT):
            for _ in range(2):  # the second is refused while the first's run holds the writer
                await leave(make_pipeline(maps, writer))
                states.append(reader.writer_status().state)  # nothing awaited since it was left
            await until(lambda: not watch_threads(), "the watch threads to end")
        assert asyncio.all_tasks() == {asyncio.current_task()}  # no finalizer left to run
        return states

    assert asyncio.run(test()) == ["stopped", "stopped"]


def test_a_permanent_error_is_raised_by_the_aio_watcher(apiserver: ApiServer) -> None:
    pods = Api(apiserver.client(), "pods", namespace="default")
    apiserver.faults.fail_requests(404, count=1, verb="list")

    async def test() -> None:
        with pytest.raises(NotFound):
            async for _ in aio.watcher(pods).pipe(aio.default_backoff()):
                pass

    run(test)


def test_aiostream_pipeline_against_the_server(apiserver: ApiServer) -> None:
    pods = Api(apiserver.client(), "pods", namespace="default")
    pods.create(pod("web"))
    _, writer = store("pods")

    async def test() -> list[Object]:
        xs = (
            aio.stream(aio.watcher(pods))
            | aio.reflect.pipe(writer)
            | aio.default_backoff.pipe()
            | aio.applied_objects.pipe()
            | aiostream_pipe.take(1)
        )
        return await collect_stream(xs)

    assert [obj["metadata"]["name"] for obj in run(test)] == ["web"]


def test_aio_metadata_watcher_gives_partial_objects(apiserver: ApiServer) -> None:
    pods = Api(apiserver.client(), "pods", namespace="default")
    pods.create(pod("web"))

    async def test() -> Object:
        async for obj in aio.metadata_watcher(pods).pipe(aio.applied_objects()):
            return obj
        raise AssertionError("the watch ended")

    obj = run(test)
    assert obj["metadata"]["name"] == "web"
    assert "spec" not in obj
