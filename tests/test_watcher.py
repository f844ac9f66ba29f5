"""The Rx watcher over real HTTP against rxkube.testing.ApiServer: every transition and fault."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest
from reactivex import Observable
from reactivex import operators as ops

import rxkube
from rxkube import ExponentialBackoff, metadata_watcher, watch_object, watcher
from rxkube.client import Api
from rxkube.errors import (
    DecodeError,
    RxKubeError,
    TooManyRequests,
    TransportError,
    WatchStalled,
)
from rxkube.events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from rxkube.operators import backoff
from rxkube.protocol import Config
from rxkube.testing import ApiServer
from tests.waiting import Sink, eventually

TIMEOUT = 20.0


@contextmanager
def recording(source: Observable[Any]) -> Iterator[Sink]:
    """Subscribe a Sink to ``source`` for the duration of the block."""
    rec = Sink()
    subscription = source.subscribe(rec.on_next, rec.on_error)
    try:
        yield rec
    finally:
        subscription.dispose()


def pod(name: str, labels: dict[str, str] | None = None, phase: str = "Pending") -> Object:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": phase},
    }


def fold(events: list[Event]) -> dict[tuple[str, str], str]:
    """The state a consumer derives from events: (namespace, name) -> resourceVersion."""
    state: dict[tuple[str, str], str] = {}
    buffer: dict[tuple[str, str], str] | None = None
    for event in events:
        match event:
            case Init():
                buffer = {}
            case InitApply(obj):
                assert buffer is not None
                buffer[_key(obj)] = obj["metadata"]["resourceVersion"]
            case InitDone():
                assert buffer is not None
                state, buffer = buffer, None
            case Apply(obj):
                state[_key(obj)] = obj["metadata"]["resourceVersion"]
            case Delete(obj):
                state.pop(_key(obj), None)
    return state


def _applied(rec: Sink, count: int) -> bool:
    return rec.count(Apply) == count


def _folds_to(rec: Sink, expected: dict[tuple[str, str], str]) -> bool:
    return fold(rec.items) == expected


def _key(obj: Object) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def server_state(srv: ApiServer, resource: str = "pods") -> dict[tuple[str, str], str]:
    return {_key(o): o["metadata"]["resourceVersion"] for o in srv.list(resource)}


@pytest.fixture
def pods(apiserver: ApiServer) -> Api:
    return Api(apiserver.client(), "pods", namespace="default")


def ready(rec: Sink, n: int = 1) -> Callable[[Sink], bool]:
    return lambda r: r.count(InitDone) >= n


def test_lists_then_watches_adds_modifies_and_deletes(apiserver: ApiServer, pods: Api) -> None:
    apiserver.create("pods", pod("a"), namespace="default")
    with recording(watcher(pods)) as rec:
        rec.wait(ready(rec))
        assert isinstance(rec.items[0], Init)
        assert rec.names(InitApply) == ["a"]
        assert rec.items[1].obj["kind"] == "Pod"
        apiserver.create("pods", pod("b"), namespace="default")
        apiserver.patch("pods", "a", {"status": {"phase": "Running"}}, namespace="default")
        apiserver.delete("pods", "b", namespace="default")
        rec.wait(lambda r: r.count(Delete) == 1)
        assert rec.names(Apply) == ["b", "a"]
        assert rec.names(Delete) == ["b"]
        assert rec.threads == {"rxkube-watch-pods"}


def test_paged_list_delivers_every_object_once(apiserver: ApiServer, pods: Api) -> None:
    for i in range(7):
        apiserver.create("pods", pod(f"p{i}"), namespace="default")
    with recording(watcher(pods, Config(page_size=2))) as rec:
        rec.wait(ready(rec))
        assert sorted(rec.names(InitApply)) == [f"p{i}" for i in range(7)]
        assert rec.count(Init) == 1


def test_listed_objects_are_let_go_of_once_the_store_replaces_them(
    apiserver: ApiServer, pods: Api
) -> None:
    # Nothing of the list (its pages, their decoded items, their events) outlives the
    # list: an object the watch replaced is held by no one, however long the watch runs.
    for i in range(5):
        apiserver.create("pods", pod(f"p{i}"), namespace="default")
    reader, writer = rxkube.store("pods")
    # What is recorded is each event's type: the recorder holds no object.
    source = watcher(pods, Config(page_size=2)).pipe(rxkube.reflect(writer), ops.map(type))
    with recording(source) as rec:
        rec.wait(lambda r: InitDone in r.items)
        listed = list(reader.state(copy=False))
        assert len(listed) == 5
        for i in range(5):
            apiserver.patch("pods", f"p{i}", {"status": {"phase": "Running"}}, namespace="default")
        rec.wait(lambda r: r.items.count(Apply) == 5)
        assert all(obj["status"]["phase"] == "Running" for obj in reader.state(copy=False))
        held = {
            obj["metadata"]["name"]: [type(r).__name__ for r in gc.get_referrers(obj)]
            for obj in listed
        }
        assert held == {obj["metadata"]["name"]: ["list"] for obj in listed}  # ``listed``


def test_rewatches_after_clean_end_without_relisting(apiserver: ApiServer, pods: Api) -> None:
    with recording(watcher(pods)) as rec:
        rec.wait(ready(rec))
        for i in range(3):
            eventually(lambda: apiserver.open_watches() == 1)
            apiserver.faults.close_watches()
            apiserver.create("pods", pod(f"p{i}"), namespace="default")
            rec.wait(partial(_applied, count=i + 1))
        assert rec.count(Init) == 1
        assert rec.names(Apply) == ["p0", "p1", "p2"]
        assert not rec.errors


def test_relists_after_410_during_watch() -> None:
    with ApiServer(bookmark_interval=None) as srv:
        api = Api(srv.client(), "pods", namespace="default")
        srv.create("pods", pod("keep"), namespace="default")
        with recording(watcher(api)) as rec:
            rec.wait(ready(rec))
            # Writes the pod watch does not see move history past its resume point.
            srv.create("configmaps", {"metadata": {"name": "cm"}}, namespace="default")
            srv.delete("pods", "keep", namespace="default")
            rec.wait(lambda r: r.count(Delete) == 1)
            srv.create("configmaps", {"metadata": {"name": "cm2"}}, namespace="default")
            srv.create("pods", pod("new"), namespace="default")
            rec.wait(lambda r: r.count(Apply) == 1)
            srv.create("configmaps", {"metadata": {"name": "cm3"}}, namespace="default")
            srv.compact()
            srv.faults.close_watches()
            rec.wait(ready(rec, 2))
            assert rec.count(Init) == 2
            relist = [r for r in srv.requests if r.verb == "list"][-1]
            assert "resourceVersion" not in relist.query, "a relist after 410 is consistent"
            last_list = rec.items[rec.items.index(Init(), 1) :]
            assert [e.obj["metadata"]["name"] for e in last_list if isinstance(e, InitApply)] == [
                "new"
            ]
            assert not rec.errors


def test_a_cache_follows_a_server_whose_history_went_back() -> None:
    # A test server restarted on the same port starts its history again, as a cluster
    # restored from an etcd backup goes back: the client's resume point is ahead of it.
    reader, writer = rxkube.store()
    with contextlib.ExitStack() as servers:
        first = servers.enter_context(ApiServer(too_large_wait=0.2))
        for i in range(60):
            first.create("configmaps", {"metadata": {"name": f"old{i}"}}, namespace="default")
        configmaps = Api(first.client(), "configmaps", namespace="default")
        subscription = (
            watcher(configmaps)
            .pipe(rxkube.reflect(writer), rxkube.default_backoff())
            .subscribe(on_error=lambda exc: None)
        )
        try:
            reader.wait_until_ready(TIMEOUT)
            eventually(lambda: len(reader) == 60)
            # An outage: the server fails every request and drops the watch, so the
            # client is retrying its list (never a watch, which a server behind it would
            # hold silent) when the server comes back with history rewound.
            first.faults.fail_requests(503, count=1 << 30)
            first.restart()
            eventually(lambda: any(r.status == 503 for r in first.requests))
            first.stop()
            port = urllib.parse.urlsplit(first.url).port or 0
            second = servers.enter_context(ApiServer(port=port, too_large_wait=0.2))
            assert second.resource_version < 60
            second.create("configmaps", {"metadata": {"name": "fresh"}}, namespace="default")
            eventually(lambda: {o["metadata"]["name"] for o in reader.state()} == {"fresh"})
            relist = [r for r in second.requests if r.verb == "list"][-1]
            assert "resourceVersion" not in relist.query, "the relist is a consistent read"
            second.create("configmaps", {"metadata": {"name": "later"}}, namespace="default")
            eventually(lambda: reader.get("later", "default") is not None)
        finally:
            subscription.dispose()
            # It outlived the first server, which closed it, and went on to the second.
            configmaps.client.close()


def test_relists_when_a_continue_token_expires(apiserver: ApiServer, pods: Api) -> None:
    for i in range(4):
        apiserver.create("pods", pod(f"p{i}"), namespace="default")
    rec = Sink()
    compacted = threading.Event()

    def on_next(event: Event) -> None:
        # On the watch thread, so the next page is asked for only after compaction.
        if isinstance(event, InitApply) and not compacted.is_set():
            apiserver.create("configmaps", {"metadata": {"name": "x"}}, namespace="default")
            apiserver.compact()
            compacted.set()
        rec.on_next(event)

    sub = watcher(pods, Config(page_size=1)).subscribe(on_next, rec.on_error)
    try:
        rec.wait(ready(rec))
        assert rec.count(Init) == 2
        second = rec.items[rec.items.index(Init(), 1) :]
        names = [e.obj["metadata"]["name"] for e in second if isinstance(e, InitApply)]
        assert sorted(names) == ["p0", "p1", "p2", "p3"]
        assert not rec.errors
    finally:
        sub.dispose()


@pytest.mark.rxkube_apiserver(bookmark_interval=0.05)
def test_bookmarks_are_silent(apiserver: ApiServer, pods: Api) -> None:
    with recording(watcher(pods)) as rec:
        rec.wait(ready(rec))
        apiserver.create("configmaps", {"metadata": {"name": "x"}}, namespace="default")
        apiserver.create("pods", pod("a"), namespace="default")
        rec.wait(lambda r: r.count(Apply) == 1)
        assert [type(e) for e in rec.items] == [Init, InitDone, Apply]


def watch_requests(srv: ApiServer) -> list[dict[str, str]]:
    return [dict(r.query) for r in srv.requests if r.verb == "watch"]


@pytest.mark.rxkube_apiserver(bookmark_interval=None)
def test_server_timeout_rewatches_from_the_last_event_without_relisting(
    apiserver: ApiServer, pods: Api
) -> None:
    with recording(watcher(pods, Config(timeout=1))) as rec:
        rec.wait(ready(rec))
        apiserver.create("pods", pod("a"), namespace="default")
        rec.wait(lambda r: r.count(Apply) == 1)
        rv = rec.items[-1].obj["metadata"]["resourceVersion"]
        eventually(lambda: any(q["resourceVersion"] == rv for q in watch_requests(apiserver)))
        assert [r.verb for r in apiserver.requests if r.verb == "list"] == ["list"]
        assert all(q["timeoutSeconds"] == "1" for q in watch_requests(apiserver))
        assert rec.count(Init) == 1 and not rec.errors


@pytest.mark.rxkube_apiserver(bookmark_interval=0.1)
def test_bookmarks_move_the_resume_point_past_unseen_writes(
    apiserver: ApiServer, pods: Api
) -> None:
    with recording(watcher(pods, Config(timeout=1))) as rec:
        rec.wait(ready(rec))
        cm = apiserver.create("configmaps", {"metadata": {"name": "x"}}, namespace="default")
        target = int(cm["metadata"]["resourceVersion"])
        eventually(
            lambda: any(int(q["resourceVersion"]) >= target for q in watch_requests(apiserver))
        )
        assert all(q.get("allowWatchBookmarks") == "true" for q in watch_requests(apiserver))
        assert [type(e) for e in rec.items] == [Init, InitDone]


def test_stalled_watch_is_reported_as_watch_stalled(apiserver: ApiServer, pods: Api) -> None:
    apiserver.faults.stall_watches(1)
    with recording(watcher(pods, Config(timeout=1))) as rec:
        rec.wait(lambda r: bool(r.errors), timeout=30)
        assert isinstance(rec.errors[0], WatchStalled)


def test_429_reaches_on_error_with_retry_after(apiserver: ApiServer, pods: Api) -> None:
    apiserver.faults.fail_requests(429, verb="list", retry_after=7)
    with recording(watcher(pods)) as rec:
        rec.wait(lambda r: bool(r.errors))
        error = rec.errors[0]
        assert isinstance(error, TooManyRequests)
        assert error.retry_after == 7 and error.code == 429
        assert rec.items == []


def test_mid_stream_disconnect_is_a_transport_error(apiserver: ApiServer, pods: Api) -> None:
    with recording(watcher(pods)) as rec:
        rec.wait(ready(rec))
        eventually(lambda: apiserver.open_watches() == 1)
        apiserver.faults.close_watches(abrupt=True)
        rec.wait(lambda r: bool(r.errors))
        assert isinstance(rec.errors[0], TransportError)


def test_garbled_line_is_a_decode_error(apiserver: ApiServer, pods: Api) -> None:
    with recording(watcher(pods)) as rec:
        rec.wait(ready(rec))
        apiserver.faults.corrupt_next_event("garbled")
        apiserver.create("pods", pod("a"), namespace="default")
        rec.wait(lambda r: bool(r.errors))
        assert isinstance(rec.errors[0], DecodeError)


def test_label_selector_deletes_objects_that_stop_matching(apiserver: ApiServer, pods: Api) -> None:
    apiserver.create("pods", pod("web", {"app": "web"}), namespace="default")
    apiserver.create("pods", pod("db", {"app": "db"}), namespace="default")
    with recording(watcher(pods, Config(label_selector="app=web"))) as rec:
        rec.wait(ready(rec))
        assert rec.names(InitApply) == ["web"]
        apiserver.patch("pods", "web", {"metadata": {"labels": {"app": "x"}}}, namespace="default")
        apiserver.patch("pods", "db", {"metadata": {"labels": {"app": "web"}}}, namespace="default")
        rec.wait(lambda r: r.count(Apply) == 1)
        assert rec.names(Delete) == ["web"] and rec.names(Apply) == ["db"]


def test_metadata_watcher_sends_only_metadata(apiserver: ApiServer, pods: Api) -> None:
    apiserver.create("pods", pod("a"), namespace="default")
    with recording(metadata_watcher(pods)) as rec:
        rec.wait(ready(rec))
        apiserver.create("pods", pod("b"), namespace="default")
        rec.wait(lambda r: r.count(Apply) == 1)
        for event in rec.items:
            if isinstance(event, InitApply | Apply):
                assert set(event.obj) == {"apiVersion", "kind", "metadata"}
                assert event.obj["kind"] == "PartialObjectMetadata"


def test_streaming_list_ends_at_the_initial_events_bookmark(
    apiserver: ApiServer, pods: Api
) -> None:
    for i in range(5):
        apiserver.create("pods", pod(f"p{i}"), namespace="default")
    rec = Sink()
    config = Config(initial_list_strategy="streaming_list")
    sub = watcher(pods, config).subscribe(rec.on_next, rec.on_error)
    try:
        rec.wait(ready(rec))
        assert sorted(rec.names(InitApply)) == [f"p{i}" for i in range(5)]
        apiserver.create("pods", pod("late"), namespace="default")
        rec.wait(lambda r: r.count(Apply) == 1)
        assert rec.count(Init) == 1 and not rec.errors
    finally:
        sub.dispose()


@pytest.mark.rxkube_apiserver(streaming_lists=False)
def test_streaming_list_falls_back_to_list_watch_when_refused(
    apiserver: ApiServer, pods: Api
) -> None:
    apiserver.create("pods", pod("a"), namespace="default")
    rec = Sink()
    config = Config(initial_list_strategy="streaming_list")
    sub = watcher(pods, config).subscribe(rec.on_next, rec.on_error)
    try:
        rec.wait(ready(rec))
        assert rec.names(InitApply) == ["a"]
        apiserver.create("pods", pod("b"), namespace="default")
        rec.wait(lambda r: r.count(Apply) == 1)
        assert not rec.errors
    finally:
        sub.dispose()


@pytest.mark.rxkube_apiserver(bookmark_interval=None)
def test_a_relist_after_a_failed_streaming_list_streams_again(
    apiserver: ApiServer, pods: Api
) -> None:
    apiserver.create("pods", pod("a"), namespace="default")
    apiserver.streaming_lists = False  # its first one fails (ERROR 500), as a busy server's may
    rec = Sink()
    config = Config(initial_list_strategy="streaming_list")
    sub = watcher(pods, config).subscribe(rec.on_next, rec.on_error)
    try:
        rec.wait(ready(rec))
        apiserver.streaming_lists = True
        apiserver.clear_requests()
        # A change this watch does not see, then compaction: the watch resumed from its
        # resourceVersion is answered 410, and the subscription relists.
        apiserver.create("pods", pod("elsewhere"), namespace="kube-system")
        apiserver.compact()
        apiserver.faults.close_watches()
        rec.wait(ready(rec, 2))
        relists = [
            r.query
            for r in apiserver.requests
            if r.verb == "list" or "sendInitialEvents" in r.query
        ]
        assert relists and relists[0].get("sendInitialEvents") == "true", relists
        assert rec.names(InitApply) == ["a", "a"] and not rec.errors
    finally:
        sub.dispose()


def test_resubscription_relists_and_stays_consistent(apiserver: ApiServer, pods: Api) -> None:
    apiserver.create("pods", pod("a"), namespace="default")
    source = watcher(pods)
    rec = Sink()
    sub = source.subscribe(rec.on_next, rec.on_error)
    rec.wait(ready(rec))
    apiserver.create("pods", pod("seen"), namespace="default")
    rec.wait(lambda r: r.count(Apply) == 1)
    seen_rv = rec.items[-1].obj["metadata"]["resourceVersion"]
    sub.dispose()
    apiserver.delete("pods", "a", namespace="default")
    apiserver.create("pods", pod("b"), namespace="default")
    apiserver.clear_requests()
    sub = source.subscribe(rec.on_next, rec.on_error)
    try:
        rec.wait(ready(rec, 2))
        assert fold(rec.items) == server_state(apiserver)
        first = next(r for r in apiserver.requests if r.verb == "list")
        assert first.query["resourceVersion"] == seen_rv
        assert first.query["resourceVersionMatch"] == "NotOlderThan"
    finally:
        sub.dispose()


def test_dispose_closes_the_connection_within_a_second(apiserver: ApiServer, pods: Api) -> None:
    rec = Sink()
    sub = watcher(pods).subscribe(rec.on_next, rec.on_error)
    rec.wait(ready(rec))
    eventually(lambda: apiserver.open_watches() == 1)
    started = time.monotonic()
    sub.dispose()
    eventually(lambda: apiserver.open_watches() == 0, timeout=5)
    assert time.monotonic() - started < 1.0
    eventually(lambda: not [t for t in threading.enumerate() if t.name == "rxkube-watch-pods"])


def test_watch_object_follows_one_object_through_its_life(apiserver: ApiServer, pods: Api) -> None:
    with recording(watch_object(pods, "one")) as rec:
        rec.wait(lambda r: len(r.items) == 1)
        assert rec.items == [None]
        apiserver.create("pods", pod("other"), namespace="default")
        apiserver.create("pods", pod("one"), namespace="default")
        rec.wait(lambda r: len(r.items) == 2)
        apiserver.patch("pods", "one", {"status": {"phase": "Running"}}, namespace="default")
        rec.wait(lambda r: len(r.items) == 3)
        apiserver.delete("pods", "one", namespace="default")
        rec.wait(lambda r: len(r.items) == 4)
        assert rec.items[1]["metadata"]["name"] == "one"
        assert rec.items[2]["status"]["phase"] == "Running"
        assert rec.items[3] is None


def test_watch_object_needs_a_namespace_for_namespaced_resources(apiserver: ApiServer) -> None:
    with pytest.raises(ValueError, match="namespace"):
        watch_object(Api(apiserver.client(), "pods"), "x")


def test_cluster_scoped_resources_and_all_namespaces(apiserver: ApiServer) -> None:
    apiserver.create("pods", pod("a"), namespace="default")
    apiserver.create("pods", pod("b"), namespace="kube-system")
    client = apiserver.client()
    rec = Sink()
    sub = watcher(Api(client, "pods")).subscribe(rec.on_next, rec.on_error)
    nodes = Sink()
    sub2 = watcher(Api(client, "nodes")).subscribe(nodes.on_next, nodes.on_error)
    try:
        rec.wait(ready(rec))
        assert sorted(rec.names(InitApply)) == ["a", "b"]
        nodes.wait(ready(nodes))
        apiserver.create("nodes", {"metadata": {"name": "n1"}})
        nodes.wait(lambda r: r.count(Apply) == 1)
    finally:
        sub.dispose()
        sub2.dispose()


def test_churn_with_faults_converges_to_the_server_state() -> None:
    """Rounds of creates, updates and deletes, each ending with a fault on the live watch;
    after every round the state folded from the events equals the server's list."""
    rng = random.Random(7)

    def compact_then_close(srv: ApiServer) -> None:
        srv.create("configmaps", {"metadata": {"generateName": "c"}}, namespace="default")
        srv.compact()
        srv.faults.close_watches()

    def fail_relist_then_close(srv: ApiServer) -> None:
        srv.faults.fail_requests(503, verb="list")
        srv.faults.close_watches(True)

    faults: list[Callable[[ApiServer], None]] = [
        lambda srv: srv.faults.close_watches(),
        lambda srv: srv.faults.close_watches(abrupt=True),
        compact_then_close,
        fail_relist_then_close,
        lambda srv: srv.faults.corrupt_next_event("garbled"),
        lambda srv: srv.faults.corrupt_next_event("truncated"),
    ]
    with ApiServer(bookmark_interval=0.2) as srv:
        api = Api(srv.client(), "pods", namespace="default")
        rec = Sink()
        retried: list[BaseException] = []
        policy = ExponentialBackoff(initial=0.01, max_delay=0.1, jitter=0.5)
        source = watcher(api, Config(page_size=3)).pipe(
            backoff(policy, on_retry=lambda err, _delay: retried.append(err))
        )
        sub = source.subscribe(rec.on_next, rec.on_error)
        try:
            names = [f"p{i}" for i in range(15)]
            live: set[str] = set()
            for round_ in range(24):
                for step in range(12):
                    name = rng.choice(names)
                    if name in live and rng.random() < 0.4:
                        srv.delete("pods", name, namespace="default")
                        live.discard(name)
                    elif name in live:
                        labels = {"step": f"{round_}-{step}"}
                        srv.patch(
                            "pods", name, {"metadata": {"labels": labels}}, namespace="default"
                        )
                    else:
                        srv.create("pods", pod(name), namespace="default")
                        live.add(name)
                    if step == 6:
                        faults[round_ % len(faults)](srv)
                expected = server_state(srv)
                rec.wait(partial(_folds_to, expected=expected), timeout=30)
            assert not rec.errors
            assert len(retried) >= 8, retried
            assert all(isinstance(e, RxKubeError) for e in retried)
            assert rec.count(Init) >= 5
        finally:
            sub.dispose()


def test_subscribing_inside_an_event_loop_never_blocks_it(apiserver: ApiServer, pods: Api) -> None:
    apiserver.faults.delay_responses(1.5, count=1, verb="list")

    async def main() -> tuple[float, list[Event]]:
        loop = asyncio.get_running_loop()
        got: list[Event] = []
        done = asyncio.Event()

        def on_next(event: Event) -> None:
            def record() -> None:
                got.append(event)
                if isinstance(event, InitDone):
                    done.set()

            loop.call_soon_threadsafe(record)

        started = time.monotonic()
        sub = watcher(pods).subscribe(on_next)
        returned = time.monotonic() - started
        ticks = 0
        while not done.is_set():
            ticks += 1
            await asyncio.wait_for(asyncio.sleep(0.01), timeout=1)
            assert time.monotonic() - started < TIMEOUT
        sub.dispose()
        assert ticks > 20, "the loop should have kept running while the list was delayed"
        return returned, got

    returned, got = asyncio.run(main())
    assert returned < 0.5
    assert [type(e) for e in got] == [Init, InitDone]
