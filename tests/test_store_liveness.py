"""A store knows whether it is still followed, and a Writer is fed by one pipeline at a time.

Over real HTTP against rxkube.testing.ApiServer: the writer's status through a pipeline's
life (running, retrying under default_backoff(), stopped), wait_until_ready() on a store
whose pipeline died, and the refusal of a second concurrent pipeline on one Writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from reactivex import Observable
from reactivex import operators as ops
from reactivex.subject import Subject

from rxkube import (
    Store,
    Writer,
    WriterStatus,
    default_backoff,
    reflect,
    reflect_shared,
    store,
    watcher,
)
from rxkube.client import Api
from rxkube.dispatcher import store_shared
from rxkube.errors import BadRequest, ServerError, WriterBusy, WriterStopped
from rxkube.events import Apply, Event, Init, InitApply, InitDone, Object
from rxkube.testing import ApiServer
from tests.waiting import eventually

TIMEOUT = 20.0


def configmap(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


@pytest.fixture
def srv() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


@pytest.fixture
def configmaps(srv: ApiServer) -> Api:
    return Api(srv.client(), "configmaps", namespace="default")


def feed(shared: bool) -> tuple[Store, Writer, Callable[[Writer], Any]]:
    if shared:
        shared_reader, shared_writer = store_shared(16, name="configmaps")
        return shared_reader, shared_writer, reflect_shared
    reader, writer = store("configmaps")
    return reader, writer, reflect


# -- ownership -------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [False, True], ids=["store", "store_shared"])
def test_a_second_concurrent_pipeline_on_one_writer_is_refused_and_the_first_goes_on(
    srv: ApiServer, configmaps: Api, shared: bool
) -> None:
    reader, writer, reflecting = feed(shared)
    pipeline = watcher(configmaps).pipe(reflecting(writer), default_backoff())
    first_errors: list[BaseException] = []
    second_errors: list[BaseException] = []
    first = pipeline.subscribe(on_error=first_errors.append)
    try:
        reader.wait_until_ready(TIMEOUT)
        second = pipeline.subscribe(on_error=second_errors.append)
        second.dispose()
        assert len(second_errors) == 1 and isinstance(second_errors[0], WriterBusy)
        assert not second_errors[0].transient, "default_backoff() must not retry it"
        assert "configmaps" in str(second_errors[0])
        # The first pipeline still follows the server: new objects keep appearing.
        for i in range(5):
            srv.create("configmaps", configmap(f"new{i}"), namespace="default")

            def arrived(name: str = f"new{i}") -> bool:
                return reader.get(name, "default") is not None

            eventually(arrived, f"new{i}")
        assert reader.writer_status().state == "running"
        assert first_errors == []
    finally:
        first.dispose()
    assert reader.writer_status().state == "stopped"


@pytest.mark.parametrize("shared", [False, True], ids=["store", "store_shared"])
def test_a_pipeline_may_feed_the_writer_again_once_the_first_has_ended(
    srv: ApiServer, configmaps: Api, shared: bool
) -> None:
    reader, writer, reflecting = feed(shared)
    pipeline = watcher(configmaps).pipe(reflecting(writer))
    pipeline.subscribe().dispose()
    status = reader.writer_status()
    assert status.state == "stopped" and status.error is None
    again = pipeline.subscribe()
    try:
        srv.create("configmaps", configmap("after"), namespace="default")
        eventually(lambda: reader.get("after", "default") is not None, "after")
        assert reader.writer_status().state == "running"
    finally:
        again.dispose()


def test_default_backoff_resubscribes_the_writer_and_the_store_shows_it_retrying(
    srv: ApiServer, configmaps: Api
) -> None:
    srv.create("configmaps", configmap("a"), namespace="default")
    srv.faults.fail_requests(503, count=1, verb="list")
    reader, writer = store("configmaps")
    seen: list[Any] = []
    before = time.time()
    subscription = watcher(configmaps).pipe(reflect(writer), default_backoff()).subscribe()
    try:

        def sampled() -> bool:
            seen.append(reader.writer_status())
            return reader.is_ready()

        eventually(sampled, "ready")
        states = [status.state for status in seen]
        assert "retrying" in states, states
        retrying = next(status for status in seen if status.state == "retrying")
        assert isinstance(retrying.error, ServerError) and retrying.error.code == 503
        assert retrying.retry_at is not None and before <= retrying.since <= retrying.retry_at
        eventually(lambda: reader.writer_status().error is None, "the error cleared by a list")
        assert reader.writer_status().state == "running"
    finally:
        subscription.dispose()


def test_backoff_before_reflect_shows_the_store_retrying_while_its_watch_is_down(
    srv: ApiServer, configmaps: Api
) -> None:
    srv.create("configmaps", configmap("a"), namespace="default")
    reader, writer = store("configmaps")
    # kube-rs's order: the retrier upstream keeps the reflect run alive across retries.
    subscription = watcher(configmaps).pipe(default_backoff(), reflect(writer)).subscribe()
    try:
        reader.wait_until_ready(TIMEOUT)
        srv.faults.fail_requests(503, count=10**6, verb="watch")
        srv.faults.fail_requests(503, count=10**6, verb="list")
        srv.faults.close_watches(abrupt=True)

        def refused() -> bool:
            status = reader.writer_status()
            return status.state == "retrying" and isinstance(status.error, ServerError)

        eventually(refused, lambda: f"the store to say its watch is down: {reader.writer_status()}")
        status = reader.writer_status()
        assert status.retry_at is not None and status.since <= status.retry_at
        srv.faults.clear()
        srv.create("configmaps", configmap("b"), namespace="default")
        eventually(lambda: reader.get("b", "default") is not None, "the watch back")
        eventually(
            lambda: reader.writer_status() == WriterStatus("running", reader.writer_status().since),
            lambda: f"running, the error cleared by a list: {reader.writer_status()}",
        )
    finally:
        subscription.dispose()
    assert reader.writer_status().state == "stopped"


def test_the_async_face_with_backoff_before_reflect_shows_the_store_retrying(
    srv: ApiServer, configmaps: Api
) -> None:
    from rxkube import aio

    srv.create("configmaps", configmap("a"), namespace="default")
    reader, writer = store("configmaps")

    def refused() -> bool:
        status = reader.writer_status()
        return status.state == "retrying" and isinstance(status.error, ServerError)

    async def main() -> None:
        pipeline = aio.watcher(configmaps).pipe(aio.default_backoff(), aio.reflect(writer))

        async def follow() -> None:
            async for _event in pipeline:
                pass

        task = asyncio.ensure_future(follow())
        try:
            await reader.wait_ready(TIMEOUT)
            srv.faults.fail_requests(503, count=10**6, verb="watch")
            srv.faults.fail_requests(503, count=10**6, verb="list")
            srv.faults.close_watches(abrupt=True)
            await asyncio.to_thread(
                eventually, refused, lambda: f"retrying: {reader.writer_status()}"
            )
            srv.faults.clear()
            srv.create("configmaps", configmap("b"), namespace="default")
            await asyncio.to_thread(
                eventually, lambda: reader.get("b", "default") is not None, "the watch back"
            )
            assert reader.writer_status().state == "running"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert reader.writer_status().state == "stopped"


def test_every_store_of_one_retried_pipeline_shows_it_retrying(
    srv: ApiServer, configmaps: Api
) -> None:
    srv.create("configmaps", configmap("a"), namespace="default")
    (first, first_writer), (second, second_writer) = store("first"), store("second")
    # One error fails both runs on its way to the one retrier downstream.
    pipeline = watcher(configmaps).pipe(
        reflect(first_writer), reflect(second_writer), default_backoff()
    )
    subscription = pipeline.subscribe()
    try:
        second.wait_until_ready(TIMEOUT)
        srv.faults.fail_requests(503, count=10**6, verb="watch")
        srv.faults.fail_requests(503, count=10**6, verb="list")
        srv.faults.close_watches(abrupt=True)
        eventually(
            lambda: {s.writer_status().state for s in (first, second)} == {"retrying"},
            lambda: f"both retrying: {first.writer_status()}, {second.writer_status()}",
        )
        assert first.writer_status().error is second.writer_status().error
        srv.faults.clear()
        eventually(
            lambda: all(
                s.writer_status() == WriterStatus("running", s.writer_status().since)
                for s in (first, second)
            ),
            lambda: f"both running again: {first.writer_status()}, {second.writer_status()}",
        )
    finally:
        subscription.dispose()


# -- a pipeline that died --------------------------------------------------------------


def test_a_store_whose_pipeline_failed_for_good_is_stopped_and_never_ready(
    srv: ApiServer, configmaps: Api
) -> None:
    srv.faults.fail_requests(400, count=1, verb="list")
    reader, writer = store("configmaps")
    errors: list[BaseException] = []
    subscription = (
        watcher(configmaps)
        .pipe(reflect(writer), default_backoff())
        .subscribe(on_error=errors.append)
    )
    try:
        started = time.monotonic()
        with pytest.raises(WriterStopped) as info:
            reader.wait_until_ready(TIMEOUT)
        assert time.monotonic() - started < TIMEOUT / 2, "raised at once, not at the timeout"
        assert isinstance(info.value.__cause__, BadRequest)
        assert "configmaps" in str(info.value)
        status = reader.writer_status()
        assert status.state == "stopped" and status.error is info.value.__cause__
        assert errors == [status.error]
        with pytest.raises(WriterStopped):
            asyncio.run(reader.wait_ready(TIMEOUT))
        assert "stale: its watch stopped" in reader._repr_html_()
    finally:
        subscription.dispose()


def test_wait_until_ready_wakes_as_soon_as_the_pipeline_stops() -> None:
    reader, writer = store("pods")
    source: Subject[Event] = Subject()
    source.pipe(reflect(writer)).subscribe(on_error=lambda exc: None)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            reader.wait_until_ready(TIMEOUT)
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait, name="test-waiter", daemon=True)
    waiter.start()
    eventually(lambda: reader.writer_status().state == "running", "running")
    source.on_error(BadRequest(400, "BadRequest", "no such thing"))
    waiter.join(TIMEOUT / 2)
    assert not waiter.is_alive()
    assert isinstance(outcome[0], WriterStopped) and isinstance(outcome[0].__cause__, BadRequest)


def test_wait_ready_wakes_as_soon_as_the_pipeline_completes() -> None:
    reader, writer = store("pods")
    source: Subject[Event] = Subject()
    source.pipe(reflect(writer)).subscribe()

    async def main() -> None:
        waiting = asyncio.ensure_future(reader.wait_ready(TIMEOUT))
        await asyncio.sleep(0)
        source.on_completed()
        with pytest.raises(WriterStopped, match="completed or was disposed"):
            await asyncio.wait_for(waiting, TIMEOUT / 2)

    asyncio.run(main())


def test_a_ready_store_whose_pipeline_stopped_stays_readable_and_says_it_is_stale() -> None:
    reader, writer = store("pods")
    source: Subject[Event] = Subject()
    source.pipe(reflect(writer)).subscribe(on_error=lambda exc: None)
    for event in (Init(), Apply({"kind": "Pod", "metadata": {"name": "a"}}), InitDone()):
        source.on_next(event)
    reader.wait_until_ready(1.0)
    assert "stale" not in reader._repr_html_()
    source.on_error(BadRequest(400, "BadRequest", "gone wrong"))
    reader.wait_until_ready(1.0)  # it was ready: it still answers, as of when it stopped
    status = reader.writer_status()
    assert status.state == "stopped" and not status.following
    assert "stale: its watch stopped" in reader._repr_html_()
    assert "gone wrong" in reader._repr_html_()


def test_a_timeout_while_the_watch_keeps_failing_names_the_last_error(
    srv: ApiServer, configmaps: Api
) -> None:
    srv.faults.fail_requests(503, count=1 << 30, verb="list")
    reader, writer = store("configmaps")
    subscription = watcher(configmaps).pipe(reflect(writer), default_backoff()).subscribe()
    try:
        eventually(lambda: reader.writer_status().error is not None, "a first failure")
        with pytest.raises(TimeoutError, match="503 ServiceUnavailable"):
            reader.wait_until_ready(0.5)
    finally:
        subscription.dispose()
    assert reader.writer_status().state == "stopped"


def test_a_store_nothing_feeds_says_so_when_it_times_out() -> None:
    reader, _writer = store("pods")
    assert reader.writer_status().state == "idle"
    with pytest.raises(TimeoutError, match="no pipeline feeds it"):
        reader.wait_until_ready(0.01)


def test_synchronous_retry_resubscribes_the_writer(srv: ApiServer, configmaps: Api) -> None:
    # ops.retry() resubscribes inside on_error: the failed run has released the writer.
    srv.faults.fail_requests(503, count=2, verb="list")
    reader, writer = store("configmaps")
    subscription = watcher(configmaps).pipe(reflect(writer), ops.retry(5)).subscribe()
    try:
        reader.wait_until_ready(TIMEOUT)
        assert reader.writer_status().state == "running"
    finally:
        subscription.dispose()


# -- stress ----------------------------------------------------------------------------


def test_random_subscriptions_and_disposals_never_let_two_pipelines_feed_one_writer() -> None:
    rng = random.Random(12)
    reader, writer = store("pods")
    feeding = [0]
    most = [0]
    lock = threading.Lock()

    def counted(source: Observable[Event]) -> Observable[Event]:
        def on_next(event: Event) -> None:
            with lock:
                feeding[0] += 1
                most[0] = max(most[0], feeding[0])
            time.sleep(rng.random() / 1000)
            with lock:
                feeding[0] -= 1

        return source.pipe(ops.do_action(on_next))

    refused: list[BaseException] = []

    def churn(seed: int) -> None:
        # Each thread is one watch: its own source, its own pipelines on the shared writer.
        local = random.Random(seed)
        subject: Subject[Event] = Subject()
        pipeline = subject.pipe(reflect(writer), counted)
        for _ in range(200):
            sub = pipeline.subscribe(on_error=refused.append)
            for _ in range(local.randrange(3)):
                subject.on_next(Apply({"metadata": {"name": f"p{local.randrange(20)}"}}))
            sub.dispose()

    threads = [
        threading.Thread(target=churn, args=(rng.random(),), name=f"test-churn-{i}")
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 3)
        assert not thread.is_alive()
    assert most[0] == 1, "two pipelines applied events to one writer at once"
    assert refused and all(isinstance(exc, WriterBusy) for exc in refused)
    assert reader.writer_status().state == "stopped"


# -- the asyncio face ------------------------------------------------------------------


def test_the_async_face_owns_the_writer_and_shows_retrying_under_backoff(
    srv: ApiServer, configmaps: Api
) -> None:
    from rxkube import aio

    srv.create("configmaps", configmap("a"), namespace="default")
    srv.faults.fail_requests(503, count=1, verb="list")
    reader, writer = store("configmaps")
    seen: list[str] = []

    async def main() -> None:
        pipeline = aio.watcher(configmaps).pipe(aio.reflect(writer), aio.default_backoff())

        async def follow() -> None:
            async for _event in pipeline:
                seen.append(reader.writer_status().state)

        task = asyncio.ensure_future(follow())
        deadline = time.monotonic() + TIMEOUT
        while reader.writer_status().state != "retrying":
            assert time.monotonic() < deadline, "never retrying"
            await asyncio.sleep(0.01)
        await reader.wait_ready(TIMEOUT)  # not WriterStopped: the retry follows
        with pytest.raises(WriterBusy):
            async for _event in aio.watcher(configmaps).pipe(aio.reflect(writer)):
                pass
        assert reader.writer_status().state == "running"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert reader.writer_status().state == "stopped"


def record_states(reader: Store) -> tuple[list[str], Callable[[], None]]:
    """Every state the store's writer status takes, as it is published (and the undo)."""
    states: list[str] = []

    def changed() -> None:
        state = reader.writer_status().state
        if not states or states[-1] != state:
            states.append(state)

    return states, reader._listen(changed)


@pytest.mark.parametrize("face", ["rx", "async"])
@pytest.mark.parametrize("shared", [False, True], ids=["store", "store_shared"])
def test_a_retried_transient_error_shows_retrying_and_never_stopped_in_either_face(
    srv: ApiServer, configmaps: Api, face: str, shared: bool
) -> None:
    from rxkube import aio

    srv.create("configmaps", configmap("a"), namespace="default")
    srv.faults.fail_requests(503, count=2, verb="list")
    reader, writer, reflecting = feed(shared)
    states, undo = record_states(reader)
    outcome: list[BaseException | None] = []
    waiter = threading.Thread(
        target=lambda: outcome.append(_ready_or_error(reader)), name="test-waiter"
    )
    waiter.start()
    if face == "rx":
        subscription = watcher(configmaps).pipe(reflecting(writer), default_backoff()).subscribe()
        waiter.join(TIMEOUT * 2)
        subscription.dispose()
    else:
        aio_reflect = aio.reflect_shared if shared else aio.reflect

        async def main() -> None:
            pipeline = aio.watcher(configmaps).pipe(aio_reflect(writer), aio.default_backoff())
            await until_ready(pipeline, reader)

        asyncio.run(main())
        waiter.join(TIMEOUT * 2)
    # A disposal from another thread than the watch's may end the run on the watch's thread.
    eventually(lambda: reader.writer_status().state == "stopped", "the run to end")
    undo()
    assert outcome == [None], outcome  # ready, never WriterStopped
    # Two failed lists, each "retrying" (never "stopped") until the third one succeeds.
    assert states == ["running", "retrying", "running", "retrying", "running", "stopped"]


async def until_ready(pipeline: Any, reader: Store) -> None:
    """Iterate ``pipeline`` until ``reader`` is ready, then close it."""
    async with asyncio.timeout(TIMEOUT * 2), contextlib.aclosing(aiter(pipeline)) as events:
        async for _event in events:
            if reader.is_ready():
                break


def _ready_or_error(reader: Store) -> BaseException | None:
    try:
        reader.wait_until_ready(TIMEOUT * 2)
    except (WriterStopped, TimeoutError) as exc:
        return exc
    return None


def test_the_async_face_stops_a_store_whose_error_its_backoff_does_not_retry(
    srv: ApiServer, configmaps: Api
) -> None:
    from rxkube import aio

    srv.faults.fail_requests(400, count=1, verb="list")
    reader, writer = store("configmaps")
    states, undo = record_states(reader)

    async def main() -> None:
        # Two retriers: the inner one gives up, the outer one does not retry it either.
        pipeline = aio.watcher(configmaps).pipe(
            aio.reflect(writer), aio.default_backoff(), aio.default_backoff()
        )
        with pytest.raises(BadRequest):
            async for _event in pipeline:
                pass

    asyncio.run(main())
    undo()
    assert states == ["running", "stopped"]
    status = reader.writer_status()
    assert status.state == "stopped" and isinstance(status.error, BadRequest)


def test_an_outer_async_backoff_retries_what_an_inner_one_gives_up(
    srv: ApiServer, configmaps: Api
) -> None:
    from rxkube import ExponentialBackoff, aio

    class Once:
        """A policy that retries nothing."""

        def next_delay(self) -> float | None:
            return None

        def reset(self) -> None:
            pass

    srv.create("configmaps", configmap("a"), namespace="default")
    srv.faults.fail_requests(503, count=1, verb="list")
    reader, writer = store("configmaps")
    states, undo = record_states(reader)

    async def main() -> None:
        pipeline = aio.watcher(configmaps).pipe(
            aio.reflect(writer),
            aio.backoff(Once()),
            aio.backoff(ExponentialBackoff(initial=0.05, jitter=0.0)),
        )
        await until_ready(pipeline, reader)

    asyncio.run(main())
    undo()
    assert states == ["running", "retrying", "running", "stopped"]


# -- no user code under the dispatcher lock --------------------------------------------


@pytest.mark.parametrize("relist", [False, True], ids=["apply", "relist"])
def test_a_slow_index_function_never_blocks_the_shared_stores_subscribers(relist: bool) -> None:
    reader, writer = store_shared(16, name="pods")
    inside, release = threading.Event(), threading.Event()

    def slow_index(obj: dict[str, Any]) -> str:
        if obj["metadata"]["name"] == "slow":
            inside.set()
            release.wait(TIMEOUT)
        return "k"

    reader.add_index("slow", slow_index)
    source: Subject[Event] = Subject()
    feeding = source.pipe(reflect_shared(writer)).subscribe()
    got: list[Any] = []
    subscriber = reader.subscribe().subscribe(got.append)
    slow = {"metadata": {"name": "slow"}}
    events: list[Event] = [Init(), InitApply(slow), InitDone()] if relist else [Apply(slow)]

    def write() -> None:
        for event in events:
            source.on_next(event)

    writing = threading.Thread(target=write, name="test-writer", daemon=True)
    try:
        writing.start()
        assert inside.wait(TIMEOUT)
        # The writer is inside user code: the dispatcher must still serve everyone else.
        done = threading.Event()

        def others() -> None:
            reader.stats()
            reader.subscribe().subscribe().dispose()
            subscriber.dispose()
            done.set()

        threading.Thread(target=others, name="test-others", daemon=True).start()
        assert done.wait(TIMEOUT / 2), "the dispatcher lock is held around an index function"
    finally:
        release.set()
        writing.join(TIMEOUT)
        feeding.dispose()
    assert reader.get("slow") is not None


def test_stress_random_slow_indexes_subscribers_and_disposal_keep_replays_in_sync() -> None:
    rng = random.Random(7)
    reader, writer = store_shared(8, name="pods")

    def jitter(_obj: Object) -> str:
        time.sleep(rng.random() / 2000)
        return "k"

    reader.add_index("jitter", jitter)
    source: Subject[Event] = Subject()
    feeding = source.pipe(reflect_shared(writer)).subscribe()
    attached: list[tuple[dict[str, int], Any]] = []  # (what it saw, its subscription)
    stop = threading.Event()

    def churn() -> None:
        local = random.Random(3)
        while not stop.is_set():
            view: dict[str, int] = {}

            def seen(obj: dict[str, Any], view: dict[str, int] = view) -> None:
                time.sleep(local.random() / 5000)
                view[obj["metadata"]["name"]] = int(obj["metadata"]["resourceVersion"])

            attached.append((view, reader.subscribe(replay=True).subscribe(seen)))
            if len(attached) > 3:
                attached.pop(local.randrange(len(attached)))[1].dispose()
            time.sleep(local.random() / 200)

    churner = threading.Thread(target=churn, name="test-churn", daemon=True)
    churner.start()
    rv = 0
    try:
        for _ in range(4):
            names = [f"p{i}" for i in range(rng.randrange(5, 30))]
            source.on_next(Init())
            for name in names:
                rv += 1
                source.on_next(InitApply({"metadata": {"name": name, "resourceVersion": str(rv)}}))
            source.on_next(InitDone())
            for _ in range(200):
                rv += 1
                name = rng.choice(names)
                source.on_next(Apply({"metadata": {"name": name, "resourceVersion": str(rv)}}))
        stop.set()
        churner.join(TIMEOUT)
        final = {
            o["metadata"]["name"]: int(o["metadata"]["resourceVersion"]) for o in reader.state()
        }
        # Every subscriber still attached converges to the store: no change lost or doubled
        # between its replayed snapshot and the log.
        assert attached
        for sub_view, _sub in attached:

            def in_sync(view: dict[str, int] = sub_view) -> bool:
                return all(view.get(k) == r for k, r in final.items())

            eventually(in_sync, "in sync")
    finally:
        stop.set()
        for _view, sub in attached:
            sub.dispose()
        feeding.dispose()
