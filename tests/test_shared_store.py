"""Shared stores: one writer fanning out to many subscribers, each with its own bounded buffer."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import threading
from collections.abc import Iterable
from typing import Any

import pytest
from reactivex import Observable
from reactivex import operators as ops
from reactivex.abc import DisposableBase
from reactivex.scheduler import EventLoopScheduler
from reactivex.scheduler.eventloop import AsyncIOThreadSafeScheduler
from reactivex.subject import Subject

from rxkube import Writer, store, watcher
from rxkube._delivery import burst
from rxkube.client import Api
from rxkube.dispatcher import SharedStore, SubscriberOverflow, store_shared
from rxkube.errors import BadRequest, ConsumerError
from rxkube.events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from rxkube.operators import default_backoff, reflect_shared
from rxkube.testing import ApiServer
from tests.waiting import Sink, eventually

TIMEOUT = 30.0


def pod(name: str, rv: int = 1, **fields: Any) -> Object:
    meta = {"name": name, "namespace": "default", "resourceVersion": str(rv)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, **fields}


def rv(obj: Object) -> int:
    return int(obj["metadata"]["resourceVersion"])


class Feeder:
    """A watch stand-in: a Subject piped into ``reflect_shared``, fed from a chosen thread."""

    def __init__(self, writer: Writer) -> None:
        self.source: Subject[Event] = Subject()
        self.errors: list[Exception] = []
        self.subscription = self.source.pipe(reflect_shared(writer)).subscribe(
            on_error=self.errors.append
        )
        self.thread: threading.Thread | None = None

    def send(self, events: Iterable[Event]) -> None:
        for event in events:
            self.source.on_next(event)

    def send_in_thread(self, events: Iterable[Event], name: str = "feeder") -> threading.Thread:
        self.thread = threading.Thread(target=self.send, args=(list(events),), name=name)
        self.thread.start()
        return self.thread

    def join(self, timeout: float = TIMEOUT) -> None:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the feeder is still blocked"


class Stuck(Sink):
    """A subscriber whose callback blocks until ``release()``."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        super().__init__(on_item=lambda _: self.gate.wait(TIMEOUT))

    def release(self) -> None:
        self.gate.set()


def relist(*objects: Object) -> list[Event]:
    return [Init(), *(InitApply(o) for o in objects), InitDone()]


def subscribe(observable: Observable[Any], collector: Sink, **kwargs: Any) -> DisposableBase:
    return observable.subscribe(
        collector.on_next, collector.on_error, collector.on_completed, **kwargs
    )


# -- what subscribers receive ------------------------------------------------------------


def test_apply_dispatches_its_object_and_init_done_every_object_in_the_store() -> None:
    reader, writer = store_shared(16)
    feeder = Feeder(writer)
    got = Sink()
    subscription = subscribe(reader.subscribe(), got)
    a, b, b2, c = pod("a"), pod("b"), pod("b", 2), pod("c")
    feeder.send([*relist(a, b), Apply(c), Delete(a), *relist(b2)])
    got.wait_count(4)
    subscription.dispose()
    assert [o["metadata"]["name"] for o in got.items] == ["a", "b", "c", "b"]
    assert got.items[0] is a and got.items[2] is c and got.items[3] is b2, "shared, not copied"


def test_a_hundred_subscribers_each_receive_every_applied_object_in_order() -> None:
    reader, writer = store_shared(64, name="pods")
    feeder = Feeder(writer)
    collectors = [Sink() for _ in range(100)]
    subscriptions = [subscribe(reader.subscribe(), c) for c in collectors]
    listed = [pod(f"p{i}") for i in range(20)]
    events: list[Event] = relist(*listed)
    expected = list(listed)
    for i in range(2000):
        obj = pod(f"p{i % 50}", rv=100 + i)
        events.append(Apply(obj))
        expected.append(obj)
        if i % 7 == 0:
            events.append(Delete(obj))
    feeder.send_in_thread(events)
    for collector in collectors:
        collector.wait_count(len(expected))
    feeder.join()
    for subscription in subscriptions:
        subscription.dispose()
    for collector in collectors:
        assert len(collector.items) == len(expected)
        assert all(got is want for got, want in zip(collector.items, expected, strict=True))
    threads = [c.threads for c in collectors]
    assert all(len(t) == 1 and next(iter(t)).startswith("rxkube-subscriber-pods-") for t in threads)
    assert len(set.union(*threads)) == 100, "each subscriber has a thread of its own"


@pytest.mark.parametrize("events", [False, True], ids=["objects", "objects-and-events"])
def test_what_is_in_flight_to_subscribers_keeps_no_replaced_object_or_event_alive(
    events: bool,
) -> None:
    # Anything kept alive past its use counts towards the cyclic collector's next young
    # collection, which walks every object applied since the last one: neither the
    # relist a subscriber has delivered nor the events staged for it outlive their use,
    # also when an events=True subscriber is among those they go to.
    reader, writer = store_shared(64)
    feeder = Feeder(writer)
    got, got_events = Sink(), Sink()
    subscriptions = [subscribe(reader.subscribe(), got)]
    if events:
        subscriptions.append(subscribe(reader.subscribe(events=True), got_events))
    listed = [pod(f"p{i}") for i in range(5)]
    feeder.send(relist(*listed))
    got.wait_count(5)
    if events:
        got_events.wait_count(5)
    # The subscriber's thread now waits for more. Within a burst, the events below are
    # applied to the store and staged, not yet queued.
    applied = [Apply(pod(f"p{i}", rv=2)) for i in range(5)]
    with burst():
        feeder.send(applied)
        assert [o["metadata"]["resourceVersion"] for o in reader.state(copy=False)] == ["2"] * 5
        both = [*listed, *applied]
        # The events subscriber's Apply of each listed object is the test's too.
        ours = (listed, applied, both, got.items, got_events.items, *got_events.items)
        held = [r for x in both for r in gc.get_referrers(x) if not any(r is o for o in ours)]
        described = [f"{type(r).__name__} of {len(r)}" for r in held]
    got.wait_count(10)
    if events:
        got_events.wait_count(10)
    for subscription in subscriptions:
        subscription.dispose()
    assert described == [], "only the test holds the replaced objects and the events"
    assert got.items[5:] == [e.obj for e in applied]
    assert got_events.items[5:] == (applied if events else [])


def test_events_mode_delivers_deletions_and_a_relist_as_applies_and_deletes() -> None:
    reader, writer = store_shared(16)
    feeder = Feeder(writer)
    got = Sink()
    objects_only = Sink()
    subscriptions = [
        subscribe(reader.subscribe(events=True), got),
        subscribe(reader.subscribe(), objects_only),
    ]
    a, b, c, b2 = pod("a"), pod("b"), pod("c"), pod("b", 2)
    apply_a, apply_b, apply_c, delete_c = Apply(a), Apply(b), Apply(c), Delete(c)
    feeder.send([apply_a, apply_b, apply_c, delete_c, *relist(b2)])
    got.wait_count(6)
    objects_only.wait_count(4)
    for subscription in subscriptions:
        subscription.dispose()
    assert got.items[:4] == [apply_a, apply_b, apply_c, delete_c]
    assert got.items[0].obj is a, "the watch's own objects, not copies"
    assert got.items[4:] == [Apply(b2), Delete(a)], "b2 is in the store; a vanished in the relist"
    assert [o["metadata"]["name"] for o in objects_only.items] == ["a", "b", "c", "b"]


def test_deletions_take_no_room_from_subscribers_of_objects() -> None:
    # Only events=True subscribers deliver deletions: queued for the others, each would
    # take a place in a slow subscriber's buffer and make the watch wait for nothing.
    reader, writer = store_shared(2)
    feeder = Feeder(writer)
    objects = [pod(f"p{i}") for i in range(6)]
    feeder.send(relist(*objects))
    stuck = Stuck()
    subscription = subscribe(reader.subscribe(), stuck)
    try:
        # Five deletions: more than its buffer of 2 and the batch it may have taken hold.
        feeder.send([Apply(pod("p0", 2))])
        feeder.send_in_thread([Delete(o) for o in objects[1:]])
        feeder.join()
        assert len(reader) == 1
        assert reader.stats().writer_waits == 0
        stuck.release()
        stuck.wait_count(1)
    finally:
        stuck.release()
        subscription.dispose()
    assert [rv(o) for o in stuck.items] == [2]


def test_replay_first_delivers_the_current_contents_to_a_late_subscriber() -> None:
    reader, writer = store_shared(16)
    feeder = Feeder(writer)
    listed = [pod(f"p{i}") for i in range(10)]
    feeder.send(relist(*listed))
    late, late_events, not_replayed = Sink(), Sink(), Sink()
    subscriptions = [
        subscribe(reader.subscribe(replay=True), late),
        subscribe(reader.subscribe(replay=True, events=True), late_events),
        subscribe(reader.subscribe(), not_replayed),
    ]
    extra = pod("extra")
    feeder.send([Apply(extra)])
    for collector in (late, late_events):
        collector.wait_count(11)
    not_replayed.wait_count(1)
    for subscription in subscriptions:
        subscription.dispose()
    assert late.items == [*listed, extra]
    assert all(got is want for got, want in zip(late.items, [*listed, extra], strict=True))
    assert late_events.items == [Apply(o) for o in [*listed, extra]]
    assert not_replayed.items == [extra]


def test_replay_under_concurrent_writes_delivers_each_version_once_and_ends_in_sync() -> None:
    reader, writer = store_shared(32)
    feeder = Feeder(writer)
    events: list[Event] = [Apply(pod(f"p{i % 30}", rv=i)) for i in range(1, 6001)]
    events.append(Apply(pod("end", rv=10**6)))
    feeder.send_in_thread(events)
    collectors: list[Sink] = []
    subscriptions = []
    for _ in range(8):
        eventually(lambda: len(reader) > len(collectors) * 3, "the store to fill up")
        collector = Sink()
        collectors.append(collector)
        subscriptions.append(subscribe(reader.subscribe(replay=True), collector))
    for collector in collectors:
        collector.wait(lambda c: any(o["metadata"]["name"] == "end" for o in c.items))
    feeder.join()
    for subscription in subscriptions:
        subscription.dispose()
    for collector in collectors:
        last: dict[str, int] = {}
        view: dict[str, Object] = {}
        for obj in collector.items:
            name = obj["metadata"]["name"]
            assert rv(obj) > last.get(name, 0), f"{name}: version {rv(obj)} after {last[name]}"
            last[name] = rv(obj)
            view[name] = obj
        assert view == {o["metadata"]["name"]: o for o in reader.state()}


# -- backpressure ------------------------------------------------------------------------


def test_a_slow_subscriber_has_a_bounded_buffer_loses_nothing_and_makes_the_writer_wait() -> None:
    reader, writer = store_shared(8)
    feeder = Feeder(writer)
    slow, fast = Stuck(), Sink()
    subscriptions = [subscribe(reader.subscribe(), slow), subscribe(reader.subscribe(), fast)]
    objects = [pod(f"p{i}") for i in range(200)]
    feeder.send_in_thread([Apply(o) for o in objects])

    eventually(lambda: reader.stats().writer_waiting, "the writer to wait")
    stats = reader.stats()
    assert stats.max_backlog == 8 and stats.writer_waits == 1
    assert len(reader) == 8, "the writer stopped before applying a 9th event"
    assert all(sub.handover.backlog() <= 8 for sub in reader._dispatcher._subscribers), (
        "memory stays bounded by the buffer"
    )
    fast.wait_count(8)
    assert feeder.thread is not None and feeder.thread.is_alive()

    slow.release()
    feeder.join()
    slow.wait_count(200)
    fast.wait_count(200)
    for subscription in subscriptions:
        subscription.dispose()
    assert slow.items == objects and fast.items == objects
    assert not reader.stats().writer_waiting


def test_disposing_a_stuck_subscriber_frees_its_buffer_and_releases_the_writer() -> None:
    reader, writer = store_shared(4)
    feeder = Feeder(writer)
    stuck = Stuck()
    stuck_subscription = subscribe(reader.subscribe(), stuck)
    other = Sink()
    other_subscription = subscribe(reader.subscribe(), other)
    feeder.send_in_thread([Apply(pod(f"p{i}")) for i in range(100)])
    eventually(lambda: reader.stats().writer_waiting, "the writer to wait")
    stuck_subscription.dispose()
    feeder.join()
    other.wait_count(100)
    other_subscription.dispose()
    assert reader.stats().max_backlog == 0 and not reader._dispatcher._subscribers
    stuck.release()


def test_disposing_the_watch_ends_a_writer_wait() -> None:
    reader, writer = store_shared(2)
    feeder = Feeder(writer)
    stuck = Stuck()
    subscription = subscribe(reader.subscribe(), stuck)
    feeder.send_in_thread([Apply(pod(f"p{i}")) for i in range(10)])
    eventually(lambda: reader.stats().writer_waiting, "the writer to wait")
    feeder.subscription.dispose()  # what disposing a watcher does: the watch thread must end
    feeder.join()
    assert len(reader) == 2, "the event being fed when the watch was disposed is not applied"
    stuck.release()
    subscription.dispose()


def test_overflow_drop_cuts_the_subscriber_off_with_a_signal_and_never_blocks_the_writer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader, writer = store_shared(4, name="pods")
    feeder = Feeder(writer)
    dropped, steady = Stuck(), Sink()
    subscriptions = [
        subscribe(reader.subscribe(overflow="drop"), dropped),
        subscribe(reader.subscribe(), steady),
    ]
    feeder.send_in_thread([Apply(pod(f"p{i}")) for i in range(50)])
    feeder.join()  # never waited for the stuck subscriber
    steady.wait_count(50)
    assert reader.stats().overflows == 1 and reader.stats().subscribers == 1
    dropped.release()
    dropped.wait(lambda c: bool(c.errors))
    (error,) = dropped.errors
    assert isinstance(error, SubscriberOverflow) and error.transient
    assert "fell 4 entries behind" in str(error) and "replay=True" in str(error)
    assert len(dropped.items) < 50 and not dropped.completed
    for subscription in subscriptions:
        subscription.dispose()
    assert not caplog.records, "the signal went to on_error: nothing to log"


def test_overflow_drop_with_replay_and_retry_resyncs_from_the_store() -> None:
    reader, writer = store_shared(4)
    feeder = Feeder(writer)
    gate = threading.Event()
    first_item = threading.Event()

    def block_once(_: Any) -> None:
        if not first_item.is_set():
            first_item.set()
            gate.wait(TIMEOUT)

    resynced = Sink(on_item=block_once)
    signals: list[Exception] = []
    resyncing = reader.subscribe(replay=True, overflow="drop").pipe(
        ops.do_action(on_error=signals.append), ops.retry()
    )
    subscription = subscribe(resyncing, resynced)
    events: list[Event] = [Apply(pod(f"p{i % 20}", rv=i)) for i in range(1, 101)]
    # The rest only once the subscriber is stuck in its first item: sent sooner, they can
    # overflow a subscriber whose thread has not run yet, and its resubscription, stuck in
    # its own first item while the feeder goes on, overflows a second time.
    feeder.send(events[:1])
    assert first_item.wait(TIMEOUT), "the subscriber never received its first item"
    feeder.send_in_thread(events[1:])
    feeder.join()
    gate.set()
    final = {o["metadata"]["name"]: o for o in reader.state()}

    def in_sync(c: Sink) -> bool:
        view = {o["metadata"]["name"]: o for o in c.items}
        return view == final

    resynced.wait(in_sync, "the resubscription to catch up with the store")
    subscription.dispose()
    assert [type(signal) for signal in signals] == [SubscriberOverflow], signals


# -- isolation and lifecycle -------------------------------------------------------------


def test_a_subscriber_that_raises_is_isolated_and_its_error_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader, writer = store_shared(4, name="pods")
    feeder = Feeder(writer)
    boom = RuntimeError("subscriber bug")

    def fail_on_second(obj: Object) -> None:
        if obj["metadata"]["name"] == "p1":
            raise boom

    with_handler = Sink(on_item=fail_on_second)
    good = Sink()
    subscriptions = [
        subscribe(reader.subscribe(), with_handler),
        reader.subscribe().subscribe(fail_on_second),  # no on_error: the error is logged
        subscribe(reader.subscribe(), good),
    ]

    def failures() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "raised" in r.getMessage()]

    try:
        with caplog.at_level(logging.ERROR, logger="rxkube"):
            feeder.send_in_thread([Apply(pod(f"p{i}")) for i in range(50)])
            good.wait_count(50)
            feeder.join()
            with_handler.wait(lambda c: bool(c.errors))
            eventually(lambda: len(failures()) == 1, "the unhandled failure to be logged")
        eventually(lambda: reader.stats().subscribers == 1, "the failed subscribers to detach")
    finally:
        for subscription in subscriptions:
            subscription.dispose()
    [error] = with_handler.errors
    assert isinstance(error, ConsumerError) and error.__cause__ is boom
    assert "of the store of pods raised RuntimeError: subscriber bug" in str(error)
    # p1 reached the subscriber and raised; nothing came after it.
    assert [o["metadata"]["name"] for o in with_handler.items] == ["p0", "p1"]
    [logged] = failures()
    assert logged.exc_info and logged.exc_info[1] is boom
    assert "of the store of pods" in logged.getMessage()


def test_subscribers_come_and_go_while_the_watch_runs() -> None:
    """Subscribe/unsubscribe races: each subscription sees a gapless run of the stream."""
    reader, writer = store_shared(16)
    runs: list[tuple[bool, list[int]]] = []
    problems: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    fed = threading.Event()  # set before the feed is disposed, which completes subscribers

    def one_subscription(rng: random.Random) -> None:
        want = rng.randint(1, 60)
        replay = rng.random() < 0.2
        from_inside = rng.random() < 0.3  # some dispose from their own callback
        holder: list[DisposableBase] = []

        def dispose_inside(_: Any) -> None:
            if from_inside and holder and len(got.items) + 1 >= want:
                holder[0].dispose()

        got = Sink(on_item=dispose_inside)
        holder.append(subscribe(reader.subscribe(replay=replay), got))
        got.reached(lambda c: len(c.items) >= want, timeout=1.0)
        holder[0].dispose()
        if got.errors or (got.completed and not fed.is_set()):
            problems.append(f"unexpected end: {got.errors}")
        with lock:
            runs.append((replay, [rv(o) for o in got.items]))

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set() and not problems:
            one_subscription(rng)

    def feed() -> None:
        source: Subject[Event] = Subject()
        subscription = source.pipe(reflect_shared(writer)).subscribe()
        version = 0
        while len(runs) < 60 and version < 10**6 and not problems:
            for _ in range(100):
                source.on_next(Apply(pod(f"p{version % 100}", rv=version)))
                version += 1
        fed.set()
        subscription.dispose()

    threads = [threading.Thread(target=churn, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    feeder = threading.Thread(target=feed, name="feeder")
    feeder.start()
    feeder.join(timeout=120)
    stop.set()
    for thread in [feeder, *threads]:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert not problems, problems[0]
    assert len(runs) >= 60
    for replay, run in runs:
        if replay:  # the store's contents, then the live stream: never an older version
            last: dict[int, int] = {}
            for version in run:
                assert version > last.get(version % 100, -1)
                last[version % 100] = version
        else:  # the live stream from where it joined: no gap, no disorder
            assert run == list(range(run[0], run[0] + len(run))) if run else True
    eventually(lambda: reader.stats().subscribers == 0, "every subscriber to detach")


def subscriber_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("rxkube-subscriber")}


@pytest.mark.parametrize("end", ["completed", "disposed", "failed"])
def test_every_subscriber_present_or_late_ends_when_nothing_feeds_the_store(end: str) -> None:
    """As kube-rs's subscriber streams end when the writer is dropped: after what they hold."""
    before = subscriber_threads()
    reader, writer = store_shared(8, name="pods")
    pool = EventLoopScheduler()
    kinds: list[dict[str, Any]] = [
        {},
        {"events": True},
        {"replay": True, "overflow": "drop"},
        {"scheduler": pool},
    ]
    present = [Sink() for _ in kinds]
    subscriptions = [
        subscribe(reader.subscribe(**kind), got) for kind, got in zip(kinds, present, strict=True)
    ]
    feeder = Feeder(writer)
    with burst():  # staged entries, flushed only at the burst's end...
        feeder.send([Apply(pod("a")), Apply(pod("b")), Delete(pod("a"))])
        if end == "completed":  # ...or when the source ends, before its end
            feeder.source.on_completed()
        elif end == "failed":
            feeder.source.on_error(ValueError("the watch broke for good"))
    if end == "disposed":
        feeder.subscription.dispose()
    assert reader.writer_status().state == "stopped"
    late = [Sink() for _ in kinds]
    subscriptions += [
        subscribe(reader.subscribe(**kind), got) for kind, got in zip(kinds, late, strict=True)
    ]
    error = feeder.errors[0] if end == "failed" else None
    for got in present + late:
        got.wait(lambda c: c.completed or bool(c.errors), "the subscriber to end")
        if error is None:
            assert got.completed and not got.errors
        else:
            assert got.errors == [error] and not got.completed
    names = [[o["metadata"]["name"] for o in got.items] for got in present[:1] + present[2:]]
    assert names == [["a", "b"], ["a", "b"], ["a", "b"]], "all it held, then the end"
    assert [(type(e).__name__, e.obj["metadata"]["name"]) for e in present[1].items] == [
        ("Apply", "a"),
        ("Apply", "b"),
        ("Delete", "a"),
    ]
    assert [o["metadata"]["name"] for o in late[2].items] == ["b"], "the replay, then the end"
    eventually(lambda: reader.stats().subscribers == 0, "every ended subscriber to detach")
    eventually(lambda: subscriber_threads() <= before, "every subscriber thread to end")
    for subscription in subscriptions:
        subscription.dispose()
    pool.dispose()

    # The store lives on: a new feed serves new subscribers as usual.
    again = Feeder(writer)
    later = Sink()
    later_subscription = subscribe(reader.subscribe(), later)
    again.send([Apply(pod("c"))])
    later.wait_count(1)
    assert not later.completed and not later.errors
    again.subscription.dispose()
    later.wait(lambda c: c.completed, "the later subscriber to complete")
    later_subscription.dispose()


def test_subscribers_wait_through_a_retried_failure_and_end_with_one_nothing_retries(
    apiserver: ApiServer,
) -> None:
    apiserver.create("configmaps", {"metadata": {"name": "a"}}, namespace="default")
    client = apiserver.client()
    before = subscriber_threads()
    reader, writer = store_shared(8, name="configmaps")
    watch_errors: list[Exception] = []
    watch = (
        watcher(Api(client, "configmaps", namespace="default"))
        .pipe(reflect_shared(writer), default_backoff())
        .subscribe(on_error=watch_errors.append)
    )
    got = Sink()
    subscription = subscribe(reader.subscribe(replay=True, events=True), got)
    try:
        reader.wait_until_ready(TIMEOUT)
        eventually(lambda: apiserver.open_watches() == 1, "the watch to open")
        # A broken connection, then a failed list: retried, so the subscriber just waits.
        apiserver.faults.fail_requests(503, count=1, verb="list")
        apiserver.faults.close_watches(abrupt=True)
        eventually(lambda: reader.writer_status().state == "retrying", "the retry")
        apiserver.create("configmaps", {"metadata": {"name": "b"}}, namespace="default")
        got.wait(lambda c: any(e.obj["metadata"]["name"] == "b" for e in c.items), "b")
        assert not got.completed and not got.errors
        eventually(lambda: apiserver.open_watches() == 1, "the watch to open again")
        # Then a failure nothing retries: the subscriber gets its error, and ends.
        apiserver.faults.fail_requests(400, count=1, verb="list")
        apiserver.faults.close_watches(abrupt=True)
        got.wait(lambda c: bool(c.errors), "the final error")
        assert len(watch_errors) == 1 and isinstance(watch_errors[0], BadRequest)
        assert got.errors == watch_errors and not got.completed
        late = Sink()
        late_subscription = subscribe(reader.subscribe(replay=True), late)
        late.wait(lambda c: bool(c.errors), "the late subscriber's error")
        late_subscription.dispose()
        assert sorted(o["metadata"]["name"] for o in late.items) == ["a", "b"]
        eventually(lambda: subscriber_threads() <= before, "every subscriber thread to end")
    finally:
        subscription.dispose()
        watch.dispose()
        client.close()


def test_two_watches_a_stuck_subscriber_on_one_leaves_the_other_flowing() -> None:
    """The design test: two sources in one process (two threads feeding two shared stores);
    a stuck subscriber stalls its own watch only."""
    stuck_reader, stuck_writer = store_shared(4, name="stuck")
    flowing_reader, flowing_writer = store_shared(4, name="flowing")
    stuck, flowing = Stuck(), Sink()
    subscriptions = [
        subscribe(stuck_reader.subscribe(), stuck),
        subscribe(flowing_reader.subscribe(), flowing),
    ]
    stuck_feed, flowing_feed = Feeder(stuck_writer), Feeder(flowing_writer)
    stuck_feed.send_in_thread([Apply(pod(f"s{i}")) for i in range(100)], name="watch-1")
    eventually(lambda: stuck_reader.stats().writer_waiting, "the first watch to stall")
    flowing_feed.send_in_thread([Apply(pod(f"f{i}")) for i in range(2000)], name="watch-2")
    flowing.wait_count(2000)
    flowing_feed.join()
    assert stuck_feed.thread is not None and stuck_feed.thread.is_alive()
    assert stuck_reader.stats().writer_waiting and len(stuck_reader) == 4
    stuck.release()
    stuck_feed.join()
    stuck.wait_count(100)
    for subscription in subscriptions:
        subscription.dispose()


def test_one_http_watch_feeds_many_consumers(apiserver: ApiServer) -> None:
    """One watch, one cache, N subscribers: the server sees a single watch connection."""
    for i in range(5):
        apiserver.create("pods", {"metadata": {"name": f"p{i}"}}, namespace="default")
    client = apiserver.client()
    reader, writer = store_shared(32, name="pods")
    consumers = [Sink() for _ in range(20)]
    subscriptions = [subscribe(reader.subscribe(events=True), c) for c in consumers]
    late = Sink()
    watch_errors: list[Exception] = []
    watch = (
        watcher(Api(client, "pods", namespace="default"))
        .pipe(reflect_shared(writer))
        .subscribe(on_error=watch_errors.append)
    )
    try:
        reader.wait_until_ready(TIMEOUT)
        subscriptions.append(subscribe(reader.subscribe(replay=True, events=True), late))
        for i in range(5, 15):
            apiserver.create("pods", {"metadata": {"name": f"p{i}"}}, namespace="default")
        apiserver.delete("pods", "p0", namespace="default")
        expected = {
            o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in apiserver.list("pods")
        }

        def in_sync(c: Sink) -> bool:
            view: dict[str, str] = {}
            for event in c.items:
                name = event.obj["metadata"]["name"]
                if isinstance(event, Delete):
                    view.pop(name, None)
                else:
                    view[name] = event.obj["metadata"]["resourceVersion"]
            return view == expected

        for consumer in [*consumers, late]:
            consumer.wait(in_sync, "every consumer ends with the server's state")
        assert apiserver.open_watches() == 1
        assert not watch_errors
    finally:
        watch.dispose()
        for subscription in subscriptions:
            subscription.dispose()
        client.close()
    eventually(lambda: apiserver.open_watches() == 0, "the watch to close")


# -- where delivery runs ---------------------------------------------------------------


def test_subscribers_are_delivered_on_the_scheduler_they_ask_for() -> None:
    reader, writer = store_shared(8)
    feeder = Feeder(writer)
    scheduler = EventLoopScheduler()
    try:
        via_store, via_rx = Sink(), Sink()
        subscriptions = [
            subscribe(reader.subscribe(scheduler=scheduler), via_store),
            subscribe(reader.subscribe(replay=True), via_rx, scheduler=scheduler),
        ]
        objects = [pod(f"p{i}") for i in range(500)]
        feeder.send_in_thread([Apply(o) for o in objects])
        via_store.wait_count(500)
        via_rx.wait_count(500)
        feeder.join()
        for subscription in subscriptions:
            subscription.dispose()
    finally:
        scheduler.dispose()
    assert via_store.items == objects and via_rx.items == objects
    # subscribe(scheduler=) chooses where delivery runs; Observable.subscribe's scheduler is,
    # as in RxPY, only the subscription's default scheduler: its own thread delivers.
    assert len(via_store.threads) == 1 and not via_store.threads & via_rx.threads
    assert all(name.startswith("rxkube-subscriber-") for name in via_rx.threads)
    assert not any(t.startswith("rxkube") for t in via_store.threads)


def test_subscribers_can_be_delivered_on_an_asyncio_loop() -> None:
    reader, writer = store_shared(8)
    feeder = Feeder(writer)
    objects = [pod(f"p{i}") for i in range(300)]

    async def main() -> tuple[list[Any], set[str]]:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def on_item(_: Any) -> None:
            if len(got.items) == 299:
                done.set()

        got = Sink(on_item=on_item)
        subscription = subscribe(reader.subscribe(scheduler=AsyncIOThreadSafeScheduler(loop)), got)
        feeder.send_in_thread([Apply(o) for o in objects])
        await asyncio.wait_for(done.wait(), TIMEOUT)
        subscription.dispose()
        return got.items, got.threads

    items, threads = asyncio.run(main())
    feeder.join()
    assert items == objects
    assert threads == {threading.main_thread().name}


# -- API checks ------------------------------------------------------------------------


def test_reflect_shared_needs_a_writer_from_store_shared() -> None:
    _reader, writer = store()
    with pytest.raises(TypeError, match="store_shared"):
        reflect_shared(writer)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="buffer_size"):
        store_shared(0)
    reader, _writer = store_shared(1)
    with pytest.raises(ValueError, match="overflow"):
        reader.subscribe(overflow="sometimes")  # type: ignore[call-overload]
    assert isinstance(reader, SharedStore)


# -- nothing slow under a lock ------------------------------------------------------------


def test_a_relist_of_a_large_store_blocks_no_subscriber_take_dispose_or_stats() -> None:
    """InitDone's O(n) work (every index rebuilt, the dispatch entry built) runs outside the
    store and dispatcher locks: held in the middle of it, the writer stops no one else."""
    reader, writer = store_shared(8, name="pods")
    entered, release = threading.Event(), threading.Event()
    armed = False

    def gate(obj: Object) -> str:
        if armed and not entered.is_set():
            entered.set()
            assert release.wait(TIMEOUT), "the test never let the rebuild go on"
        return "all"

    reader.add_index("gate", gate)
    feeder = Feeder(writer)
    feeder.send(relist(*(pod(f"old{i}") for i in range(3))))
    early = Sink()
    subscriptions = [subscribe(reader.subscribe(), early)]
    feeder.send([Apply(pod("old0", rv=2))])
    early.wait_count(1)
    armed = True
    feeder.send_in_thread(relist(*(pod(f"p{i}") for i in range(20_000))))
    try:
        assert entered.wait(TIMEOUT), "the relist reached its index rebuild"
        done = threading.Event()
        late = Sink()

        def meanwhile() -> None:
            stats = reader.stats()
            assert stats.subscribers == 1 and stats.max_backlog == 0
            late_subscription = subscribe(reader.subscribe(replay=True), late)
            late.wait_count(3)  # the state before the relist: the swap has not happened
            late_subscription.dispose()
            assert len(reader) == 3 and reader.get("old0", "default") is not None
            done.set()

        helper = threading.Thread(target=meanwhile, name="meanwhile")
        helper.start()
        assert done.wait(TIMEOUT), "stats, a replay, a dispose or a read waited for the relist"
        helper.join(TIMEOUT)
    finally:
        release.set()
        feeder.join()
    early.wait_count(1 + 20_000)
    assert len(reader) == 20_000 and not feeder.errors
    for subscription in subscriptions:
        subscription.dispose()
