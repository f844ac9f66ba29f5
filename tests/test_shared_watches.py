"""SharedWatches over real HTTP: sharing, covered views, relists, faults, reference counts."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from reactivex import operators as ops
from reactivex.scheduler import ThreadPoolScheduler

from rxkube import Controller, SharedWatches
from rxkube._watching import metadata_watcher, watcher
from rxkube.client import Api, Client
from rxkube.controller import Action
from rxkube.errors import BadRequest, ConfigError, ConsumerError, WriterStopped
from rxkube.events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from rxkube.protocol import Config
from rxkube.testing import ApiServer
from tests.waiting import Sink, eventually

TIMEOUT = 30.0

_Ref = tuple[str | None, str]


@pytest.fixture
def srv() -> Iterator[ApiServer]:
    with ApiServer() as server:
        for ns in ("a", "b"):
            server.create("namespaces", {"metadata": {"name": ns}})
        yield server


@pytest.fixture
def client(srv: ApiServer) -> Iterator[Client]:
    c = srv.client()
    yield c
    c.close()


def cm(name: str, namespace: str, **labels: str) -> Object:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "data": {}}


def refs(objects: Any) -> dict[_Ref, str]:
    """Objects by (namespace, name), with their resourceVersion."""
    return {
        (o["metadata"].get("namespace"), o["metadata"]["name"]): o["metadata"]["resourceVersion"]
        for o in objects
    }


def server_refs(srv: ApiServer, **request: Any) -> dict[_Ref, str]:
    return refs(
        srv.list(
            "configmaps",
            namespace=request.get("namespace"),
            label_selector=request.get("label_selector") or "",
            field_selector=request.get("field_selector") or "",
        )
    )


class Folded:
    """An events() subscriber folding its stream into a state, as a store would."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.state: dict[_Ref, Object] = {}
        self._buffer: dict[_Ref, Object] | None = None
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)
            match event:
                case Init():
                    self._buffer = {}
                case InitApply(obj):
                    assert self._buffer is not None, "InitApply outside a list"
                    self._buffer[_ref(obj)] = obj
                case InitDone():
                    assert self._buffer is not None, "InitDone without Init"
                    self.state, self._buffer = self._buffer, None
                case Apply(obj):
                    self.state[_ref(obj)] = obj
                case Delete(obj):
                    assert _ref(obj) in self.state, f"Delete of {_ref(obj)}, not in the view"
                    del self.state[_ref(obj)]

    def refs(self) -> dict[_Ref, str]:
        with self.lock:
            return refs(self.state.values())


def _ref(obj: Object) -> _Ref:
    return (obj["metadata"].get("namespace"), obj["metadata"]["name"])


# -- identical requests -------------------------------------------------------------------


def test_identical_requests_share_one_store_and_one_watch(srv: ApiServer, client: Client) -> None:
    srv.create("configmaps", cm("web", "a", app="web"))
    with SharedWatches(client, linger=0) as watches:
        first = watches.store("configmaps", namespace="a", label_selector="app in (web)")
        second = watches.store("cm", namespace="a", label_selector="app=web")
        assert first is second
        first.wait_until_ready(TIMEOUT)
        assert [o["metadata"]["name"] for o in first.state()] == ["web"]
        eventually(lambda: srv.open_watches() == 1, "the watch to open")
        [watch] = watches.stats()
        assert (watch.namespace, watch.label_selector) == ("a", "app=web")
        [view] = watch.views
        assert (view.stores, view.subscribers, view.objects, view.ready) == (2, 0, 1, True)
        lists = [r for r in srv.requests if r.verb == "list" and r.resource == "configmaps"]
        assert len(lists) == 1


def test_a_view_whose_index_key_is_no_string_keeps_its_store_and_indexes_whole(
    srv: ApiServer, client: Client
) -> None:
    """A write an index refuses fails the view, and leaves the object in none of its
    store and indexes, not in the store and the indexes before the bad one."""
    with SharedWatches(client, linger=0) as watches:
        view = watches.store("configmaps", namespace="a")
        view.wait_until_ready(TIMEOUT)
        view.add_index("before", lambda o: o["metadata"]["labels"].get("app"))

        def bad(obj: Object) -> Any:
            return [["x"]] if obj["metadata"]["name"] == "late" else None

        view.add_index("bad", bad)
        view.add_index("after", lambda o: o["metadata"]["labels"].get("app"))
        srv.create("configmaps", cm("late", "a", app="web"))
        eventually(lambda: view.writer_status().state == "stopped", "the view to fail")
        error = view.writer_status().error
        assert isinstance(error, TypeError)
        refusal = "index 'bad' of object ConfigMap a/late: an index key must be a string"
        assert refusal in str(error)
        assert view.get("late", "a") is None
        for index in ("before", "after"):
            assert view.by_index(index, "web") == []


def test_a_view_whose_store_cannot_apply_an_event_fails_alone_and_says_why(
    srv: ApiServer, client: Client
) -> None:
    srv.create("configmaps", cm("web-1", "a", app="web"))
    with SharedWatches(client, linger=0) as watches:
        view = watches.store("configmaps", namespace="a")
        web = watches.store("configmaps", namespace="a", label_selector="app=web")
        view.wait_until_ready(TIMEOUT)
        web.wait_until_ready(TIMEOUT)
        assert len(watches.stats()) == 1  # one watch serves both
        stream = Sink()
        watches.events("configmaps", namespace="a").subscribe(
            stream.on_next, stream.on_error, stream.on_completed
        )
        stream.wait(lambda s: any(isinstance(e, InitDone) for e in s.items), "the snapshot")
        view.add_index("app", lambda o: o["metadata"]["labels"]["app"])  # KeyError if none
        srv.create("configmaps", {"metadata": {"name": "plain", "namespace": "a"}})
        stream.wait(lambda s: bool(s.errors), "the view's stream to fail")
        # The store stopped at its last good state and says why; the stream ended with it,
        # never ahead of it (it was not given the event the store could not apply).
        status = view.writer_status()
        assert status.state == "stopped"
        assert isinstance(status.error, KeyError) and stream.errors == [status.error]
        assert any("in the store of the shared view" in n for n in status.error.__notes__)
        assert view.get("plain", "a") is None
        assert not any(isinstance(e, Apply) for e in stream.items)
        # The other view goes on, handed to a watch of its own; a new request for the
        # failed view gets a new one.
        srv.create("configmaps", cm("web-2", "a", app="web"))
        eventually(lambda: web.get("web-2", "a") is not None, "the other view to go on")
        assert web.writer_status().state == "running"
        with watches.store("configmaps", namespace="a") as again:
            again.wait_until_ready(TIMEOUT)
            assert again is not view and again.get("plain", "a") is not None
        assert view.writer_status().state == "stopped"  # and the failed one stays stopped


def test_stats_show_each_watch_and_the_views_it_serves(srv: ApiServer, client: Client) -> None:
    srv.create("configmaps", cm("w1", "a", app="web"))
    srv.create("configmaps", cm("d1", "b", app="db"))
    with SharedWatches(client, linger=0) as watches:
        everything = watches.store("configmaps")
        web = watches.store("configmaps", label_selector="app=web")
        events = Folded()
        sub = watches.events("configmaps", namespace="b", metadata_only=True).subscribe(events)
        web.wait_until_ready(TIMEOUT)
        eventually(lambda: len(events.refs()) == 1, "the metadata view's list")
        [watch] = watches.stats()
        assert watch.resource == "configmaps" and watch.namespace is None
        assert watch.resource_version is not None
        shown = [
            (v.namespace, v.label_selector, v.metadata_only, v.stores, v.subscribers, v.objects)
            for v in watch.views
        ]
        assert shown == [
            (None, None, False, 1, 0, 2),
            (None, "app=web", False, 1, 0, 1),
            ("b", None, True, 0, 1, 1),
        ]
        assert len(everything) == 2
        sub.dispose()
        assert [len(w.views) for w in watches.stats()] == [2]


def test_a_late_subscriber_gets_the_current_state_then_the_live_stream(
    srv: ApiServer, client: Client
) -> None:
    for i in range(3):
        srv.create("configmaps", cm(f"c{i}", "a", app="web"))
    with SharedWatches(client, linger=0) as watches:
        early = Folded()
        first = watches.events("configmaps", label_selector="app").subscribe(early)
        eventually(lambda: len(early.refs()) == 3, "the first subscriber's list")
        srv.create("configmaps", cm("c3", "a", app="web"))
        eventually(lambda: len(early.refs()) == 4, "the first subscriber's Apply")
        late = Folded()
        second = watches.events("configmaps", label_selector="app").subscribe(late)
        # The snapshot is delivered on the subscribing thread, before subscribe returns.
        assert [type(e) for e in late.events] == [Init] + [InitApply] * 4 + [InitDone]
        assert late.refs() == early.refs()
        srv.patch("configmaps", "c0", {"metadata": {"labels": {"app": None}}}, namespace="a")
        eventually(lambda: len(late.refs()) == 3, "the late subscriber's Delete")
        assert isinstance(late.events[-1], Delete) and isinstance(early.events[-1], Delete)
        assert late.events[-1] == early.events[-1]
        assert srv.open_watches() == 1
        first.dispose()
        second.dispose()


def test_a_subscriber_that_raises_ends_alone_with_a_consumer_error(
    srv: ApiServer, client: Client
) -> None:
    srv.create("configmaps", cm("c0", "a"))
    with SharedWatches(client, linger=0) as watches:
        errors: list[Exception] = []

        def explode(event: Event) -> None:
            if isinstance(event, Apply):
                raise RuntimeError("consumer bug")

        calm = Folded()
        bad = watches.events("configmaps").subscribe(explode, errors.append)
        good = watches.events("configmaps").subscribe(calm)
        eventually(lambda: len(calm.refs()) == 1, "the list")
        srv.create("configmaps", cm("c1", "a"))
        eventually(lambda: len(errors) == 1, "the failing subscriber's on_error")
        [error] = errors
        assert isinstance(error, ConsumerError) and not error.transient
        assert isinstance(error.__cause__, RuntimeError)
        assert "of the shared view configmaps" in str(error)
        assert "raised RuntimeError: consumer bug" in str(error)
        srv.create("configmaps", cm("c2", "a"))
        eventually(lambda: len(calm.refs()) == 3, "the other subscriber to go on")
        [watch] = watches.stats()
        assert [v.subscribers for v in watch.views] == [1]
        bad.dispose()
        good.dispose()


def test_a_subscribing_thread_hands_live_delivery_back_to_the_watch_thread(
    srv: ApiServer, client: Client
) -> None:
    # The subscribing thread finds the view quiet and delivers the snapshot; from its first
    # event on, a writer changes objects faster than this subscriber takes them. Once the watch
    # waits for room, the subscribing thread gives way: subscribe() returns, and the
    # watch's thread delivers the live stream, serially, in order.
    for i in range(100):
        srv.create("configmaps", cm(f"c{i:02d}", "a"))
    pause = threading.Event()
    with SharedWatches(client, linger=0) as watches:
        view = watches.store("configmaps")
        view.wait_until_ready(TIMEOUT)
        stop = threading.Event()
        go = threading.Event()
        written = [0]

        def write() -> None:
            go.wait(TIMEOUT)
            while not stop.is_set() and written[0] < 20_000:
                name = f"c{written[0] % 100:02d}"
                srv.patch("configmaps", name, {"data": {"n": str(written[0])}}, namespace="a")
                written[0] += 1

        writer = threading.Thread(target=write, name="test-writer")
        writer.start()
        delivered: list[tuple[str, Event]] = []
        overlaps = [0]
        busy = threading.Lock()

        def slow(event: Event) -> None:
            if not busy.acquire(blocking=False):
                overlaps[0] += 1
                return
            go.set()
            try:
                delivered.append((threading.current_thread().name, event))
                pause.wait(0.002)  # a slow consumer, not a wait for anything
            finally:
                busy.release()

        try:
            sub = watches.events("configmaps").subscribe(slow)
            me = threading.current_thread().name
            eventually(
                lambda: any(name.startswith("rxkube-watch") for name, _ in delivered),
                "the watch thread to deliver",
            )
        finally:
            stop.set()
            writer.join(TIMEOUT)
        expected = server_refs(srv)
        fold = Folded()
        for _, event in list(delivered):
            fold(event)
        sub.dispose()
        names = [name for name, _ in delivered]
        on_mine = names.count(me)
        assert on_mine >= 102, "Init, 100 InitApply and InitDone on the subscribing thread"
        assert on_mine - 102 <= 3 * 64, f"the subscribing thread delivered {on_mine - 102} live"
        assert names[:on_mine] == [me] * on_mine, "then the watch thread, and only it"
        assert overlaps[0] == 0
        versions = []
        for _, event in delivered[102:]:
            assert isinstance(event, Apply | Delete), event
            versions.append(int(event.obj["metadata"]["resourceVersion"]))
        assert versions == sorted(versions), "live events in order"
        eventually(lambda: bool(view.state()) and refs(view.state()) == expected, "the store")


def test_a_scheduler_given_to_subscribe_does_not_move_a_views_delivery(
    srv: ApiServer, client: Client
) -> None:
    srv.create("configmaps", cm("c0", "a"))
    pool = ThreadPoolScheduler(2)
    threads: set[str] = set()
    fold = Folded()

    def on_next(event: Event) -> None:
        threads.add(threading.current_thread().name)
        fold(event)

    try:
        with SharedWatches(client, linger=0) as watches:
            sub = watches.events("configmaps").subscribe(on_next, scheduler=pool)
            eventually(lambda: len(fold.refs()) == 1, "the list")
            srv.create("configmaps", cm("c1", "a"))
            eventually(lambda: len(fold.refs()) == 2, "a live event")
            sub.dispose()
    finally:
        pool.executor.shutdown(wait=True)
    assert threads <= {threading.current_thread().name} | {
        t for t in threads if t.startswith("rxkube-watch")
    }
    assert any(t.startswith("rxkube-watch") for t in threads), threads


def test_close_completes_every_stream_and_closes_every_watch(
    srv: ApiServer, client: Client
) -> None:
    watches = SharedWatches(client)
    done = threading.Event()
    pods = watches.store("pods")
    watches.events("configmaps", namespace="a").subscribe(on_completed=done.set)
    pods.wait_until_ready(TIMEOUT)
    eventually(lambda: srv.open_watches() == 2, "both watches to open")
    watches.close()
    assert done.wait(TIMEOUT)
    eventually(lambda: srv.open_watches() == 0, "every watch to close")
    assert watches.stats() == []
    with pytest.raises(RuntimeError, match="closed"):
        watches.store("pods")
    late = threading.Event()
    watches.events("pods").subscribe(on_completed=late.set)
    assert late.is_set()


def test_bad_requests_raise_typed_errors_naming_the_problem(client: Client) -> None:
    with SharedWatches(client) as watches:
        with pytest.raises(ValueError, match="invalid label selector"):
            watches.store("pods", label_selector="app in web")
        with pytest.raises(ValueError, match="invalid field selector"):
            watches.events("pods", field_selector="nonsense")
        with pytest.raises(ConfigError, match="widgets"):
            watches.store("widgets")
        with pytest.raises(ValueError, match=r"invalid namespace '\.\.': may not be '\.\.'"):
            watches.store("configmaps", namespace="..")  # would watch every namespace
        with pytest.raises(ValueError, match="invalid namespace 'a/b'"):
            watches.events("configmaps", namespace="a/b")
        assert watches.stats() == []
    with pytest.raises(ValueError, match="no selectors"):
        SharedWatches(client, config=Config(label_selector="a=b"))
    with pytest.raises(ValueError, match="linger"):
        SharedWatches(client, linger=-1)
    with pytest.raises(
        ValueError, match=r"SharedWatches\(\): linger must be 0 or more seconds, not nan"
    ):
        SharedWatches(client, linger=math.nan)
    with pytest.raises(TypeError, match="linger must be a number of seconds, not str"):
        SharedWatches(client, linger="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="absorb"):
        SharedWatches(client, absorb="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("linger", [math.inf, 1e10])
def test_a_linger_beyond_any_timer_keeps_an_unused_view_until_close(
    srv: ApiServer, client: Client, linger: float
) -> None:
    raised: list[BaseException | None] = []
    hook = threading.excepthook
    threading.excepthook = lambda args: raised.append(args.exc_value)
    try:
        with SharedWatches(client, linger=linger) as watches:
            with watches.store("configmaps", namespace="a") as cms:
                cms.wait_until_ready(TIMEOUT)
            # No timer can wait this long (threading.TIMEOUT_MAX): none is started.
            lingering = [t for t in threading.enumerate() if t.name.startswith("rxkube-linger")]
            assert lingering == [] and raised == []
            eventually(lambda: srv.open_watches() == 1, "the view's watch to open")
            assert watches.stats() != []  # the view stays, unused
            with watches.store("configmaps", namespace="a") as again:
                assert again.is_ready()  # found open, no new list
        eventually(lambda: srv.open_watches() == 0, "close() to end the watch")
    finally:
        threading.excepthook = hook
    assert raised == []


# -- covered views ------------------------------------------------------------------------

SIX_VIEWS: list[dict[str, Any]] = [
    {},
    {"namespace": "a"},
    {"label_selector": "app"},
    {"label_selector": "app in (web,db)"},
    {"namespace": "b", "label_selector": "app in (web,db),tier!=cache"},
    {"label_selector": "app notin (db),tier", "metadata_only": True},
    {"field_selector": "metadata.name!=c0"},
]


def random_labels(rng: random.Random) -> dict[str, str]:
    labels = {}
    app = rng.choice(["web", "db", "x", None])
    tier = rng.choice(["cache", "front", None])
    if app:
        labels["app"] = app
    if tier:
        labels["tier"] = tier
    return labels


def churn(srv: ApiServer, rng: random.Random, steps: int) -> None:
    """Create, delete and relabel configmaps in two namespaces, at random."""
    for _ in range(steps):
        ns, name = rng.choice("ab"), f"c{rng.randrange(12)}"
        exists = any(o["metadata"]["name"] == name for o in srv.list("configmaps", namespace=ns))
        if not exists:
            srv.create("configmaps", cm(name, ns, **random_labels(rng)))
        elif rng.random() < 0.3:
            srv.delete("configmaps", name, namespace=ns)
        else:
            labels: dict[str, str | None] = {"app": None, "tier": None}
            labels.update(random_labels(rng))
            srv.patch("configmaps", name, {"metadata": {"labels": labels}}, namespace=ns)


def test_six_views_under_churn_and_faults_match_the_server_over_one_watch(
    srv: ApiServer, client: Client
) -> None:
    rng = random.Random(15)
    churn(srv, rng, 40)
    with SharedWatches(client, linger=0) as watches:
        stores = [watches.store("configmaps", **view) for view in SIX_VIEWS]
        folds = [Folded() for _ in SIX_VIEWS]
        subs = [
            watches.events("configmaps", **view).subscribe(fold)
            for view, fold in zip(SIX_VIEWS, folds, strict=True)
        ]

        def all_match() -> bool:
            for view, store, fold in zip(SIX_VIEWS, stores, folds, strict=True):
                want = server_refs(srv, **view)
                if refs(store.state()) != want or fold.refs() != want:
                    return False
            return True

        for store in stores:
            store.wait_until_ready(TIMEOUT)
        churn(srv, rng, 60)
        srv.faults.close_watches(abrupt=True)  # a dropped connection: backoff, then a relist
        churn(srv, rng, 60)
        eventually(all_match, "every view to follow the churn after a dropped watch")
        relists = sum(isinstance(e, Init) for e in folds[0].events)
        # A watch that resumes after compaction gets 410 Gone and relists.
        srv.faults.delay_responses(2.0, count=1, verb="watch")
        srv.faults.close_watches()
        churn(srv, rng, 30)
        srv.compact()
        churn(srv, rng, 60)
        eventually(all_match, "every view to match the server after a 410 relist")
        assert sum(isinstance(e, Init) for e in folds[0].events) > relists
        eventually(lambda: srv.open_watches() == 1, "one watch connection")
        [watch] = watches.stats()
        assert len(watch.views) == len(SIX_VIEWS)
        meta = stores[5].state()
        assert meta and all(o["kind"] == "PartialObjectMetadata" for o in meta)
        assert all("data" not in o for o in meta)
        for sub in subs:
            sub.dispose()


def test_views_emit_exactly_what_private_watchers_receive(srv: ApiServer, client: Client) -> None:
    for i in range(4):
        srv.create("configmaps", cm(f"c{i}", "a", app="web", tier="front"))
        srv.create("configmaps", cm(f"c{i}", "b", app="db"))
    requests: list[dict[str, Any]] = [
        {"namespace": "b", "label_selector": "app in (web,db),tier!=cache"},
        {"namespace": "a", "metadata_only": True},
        {"field_selector": "metadata.name!=c1", "label_selector": "app=web"},
    ]
    with SharedWatches(client, linger=0) as watches:
        wide = watches.store("configmaps")
        wide.wait_until_ready(TIMEOUT)
        shared, private = [Folded() for _ in requests], [Folded() for _ in requests]
        subs = []
        for request, mine, theirs in zip(requests, shared, private, strict=True):
            subs.append(watches.events("configmaps", **request).subscribe(mine))
            api = Api(client, "configmaps", namespace=request.get("namespace"))
            config = Config(
                label_selector=request.get("label_selector"),
                field_selector=request.get("field_selector"),
            )
            make = metadata_watcher if request.get("metadata_only") else watcher
            subs.append(make(api, config).subscribe(theirs))

        def settled() -> bool:
            return all(
                s.refs() == p.refs() == server_refs(srv, **r)
                for r, s, p in zip(requests, shared, private, strict=True)
            )

        eventually(settled, "the first lists")
        marks = [len(s.events) for s in shared], [len(p.events) for p in private]
        srv.patch("configmaps", "c0", {"metadata": {"labels": {"tier": "cache"}}}, namespace="b")
        srv.patch("configmaps", "c0", {"metadata": {"labels": {"tier": None}}}, namespace="b")
        srv.patch("configmaps", "c1", {"metadata": {"labels": {"app": "db"}}}, namespace="a")
        srv.patch("configmaps", "c2", {"metadata": {"labels": {"app": "x"}}}, namespace="b")
        srv.delete("configmaps", "c3", namespace="a")
        srv.create("configmaps", cm("c9", "a", app="web"))
        srv.patch("configmaps", "c1", {"metadata": {"labels": {"app": "web"}}}, namespace="a")
        srv.patch("configmaps", "c2", {"metadata": {"labels": {"tier": "cache"}}}, namespace="a")
        last = str(srv.resource_version)
        eventually(
            lambda: settled() and refs(wide.state()).get(("a", "c2")) == last,
            "every stream to see the changes",
        )
        for i, (mine, theirs) in enumerate(zip(shared, private, strict=True)):
            ours, reference = mine.events[marks[0][i] :], theirs.events[marks[1][i] :]
            assert ours == reference, requests[i]
            assert ours, requests[i]
        assert any(isinstance(e, Delete) for e in shared[0].events)
        for sub in subs:
            sub.dispose()


def _trim(event: Event) -> None:
    """What a subscriber of a private watcher may do with what it received: change it."""
    if isinstance(event, InitApply | Apply | Delete):
        event.obj["metadata"]["labels"]["app"] = "trimmed"
        event.obj.get("data", {})["secret"] = "trimmed"


def test_a_subscriber_changing_its_objects_changes_no_store_and_no_other_stream(
    srv: ApiServer, client: Client
) -> None:
    srv.create("configmaps", {**cm("c", "a", app="web"), "data": {"secret": "s3cret"}})
    with SharedWatches(client, linger=0) as watches:
        everything = watches.store("configmaps", namespace="a")
        web = watches.store("configmaps", namespace="a", label_selector="app=web")
        everything.wait_until_ready(TIMEOUT)
        web.wait_until_ready(TIMEOUT)
        streams = [
            watches.events("configmaps", namespace="a"),
            watches.events("configmaps", namespace="a", label_selector="app=web"),
            watches.events("configmaps", namespace="a", metadata_only=True),
        ]
        trimmers = [Sink(_trim) for _ in streams]
        subs = [
            stream.subscribe(sink.on_next, sink.on_error)
            for stream, sink in zip(streams, trimmers, strict=True)
        ]
        other = Sink()  # after the trimmers: it would see what they did to shared objects
        subs.append(streams[0].subscribe(other.on_next, other.on_error))
        try:
            srv.patch("configmaps", "c", {"data": {"more": "1"}}, namespace="a")
            other.wait(lambda s: s.count(Apply) == 1, "the change")
            for store in (everything, web):
                stored = store.get("c", "a")
                assert stored is not None
                assert stored["data"]["secret"] == "s3cret", (store.name, stored)
                assert stored["metadata"]["labels"] == {"app": "web"}, (store.name, stored)
            # The web view's Delete carries the state it held: trimmed by its subscriber.
            srv.patch("configmaps", "c", {"metadata": {"labels": {"app": "db"}}}, namespace="a")
            trimmers[1].wait(lambda s: s.count(Delete) == 1, "the web view's Delete")
            other.wait(lambda s: s.count(Apply) == 2, "the relabelling")
            stored = everything.get("c", "a")
            assert stored is not None and stored["data"]["secret"] == "s3cret", stored
            assert stored["metadata"]["labels"] == {"app": "db"}, stored
            seen = [e.obj for e in other.items if isinstance(e, InitApply | Apply)]
            assert [o["data"]["secret"] for o in seen] == ["s3cret"] * 3, seen
            assert [o["metadata"]["labels"]["app"] for o in seen] == ["web", "web", "db"], seen
            assert all(not sink.errors for sink in [*trimmers, other])
        finally:
            for sub in subs:
                sub.dispose()


def test_a_relist_of_the_wide_watch_is_one_list_and_a_relist_of_every_view(
    srv: ApiServer, client: Client
) -> None:
    for i in range(5):
        srv.create("configmaps", cm(f"c{i}", "ab"[i % 2], app="web" if i < 3 else "db"))
    requests: list[dict[str, Any]] = [{}, {"label_selector": "app=web"}, {"namespace": "b"}]
    with SharedWatches(client, linger=0) as watches:
        stores = [watches.store("configmaps", **r) for r in requests]
        folds = [Folded() for _ in requests]
        subs = [
            watches.events("configmaps", **r).subscribe(f)
            for r, f in zip(requests, folds, strict=True)
        ]
        for store in stores:
            store.wait_until_ready(TIMEOUT)
        srv.clear_requests()
        srv.faults.delay_responses(2.0, count=1, verb="watch")
        srv.faults.close_watches()
        srv.delete("configmaps", "c0", namespace="a")
        srv.create("configmaps", cm("c7", "b", app="web"))
        srv.compact()

        def relisted() -> bool:
            return all(
                refs(s.state()) == f.refs() == server_refs(srv, **r)
                for r, s, f in zip(requests, stores, folds, strict=True)
            )

        eventually(relisted, "every view to relist")
        lists = [r for r in srv.requests if r.verb == "list"]
        assert len(lists) == 1, [r.query for r in lists]
        for fold in folds:
            inits = [i for i, e in enumerate(fold.events) if isinstance(e, Init)]
            assert len(inits) == 2
            relist = fold.events[inits[1] :]
            assert isinstance(relist[-1], InitDone)
            assert all(isinstance(e, InitApply) for e in relist[1:-1])
        for sub in subs:
            sub.dispose()


def test_requests_a_watch_does_not_cover_open_their_own(srv: ApiServer, client: Client) -> None:
    with SharedWatches(client, linger=0) as watches:
        watches.store("configmaps", label_selector="app=web")
        watches.store("configmaps", label_selector="app")  # wider: not covered
        watches.store("pods", field_selector="status.phase=Running")
        watches.store("pods", field_selector="status.phase=Running,metadata.name=p")  # covered
        watches.store("pods", metadata_only=True)
        watches.store("pods", namespace="a")  # a full request: not from a metadata watch
        shown = {
            (w.resource, w.namespace, w.label_selector, w.field_selector, w.metadata_only, n)
            for w in watches.stats()
            for n in [len(w.views)]
        }
        assert shown == {
            ("configmaps", None, "app", None, False, 1),
            ("configmaps", None, "app=web", None, False, 1),
            ("pods", "a", None, None, False, 1),
            ("pods", None, None, None, True, 1),
            ("pods", None, None, "status.phase=Running", False, 2),
        }
        eventually(lambda: srv.open_watches() == 5, "five watch connections")


# -- reference counts, linger, hand-over, absorption ----------------------------------------


def test_linger_keeps_an_unused_view_ready_for_a_request_coming_back(
    srv: ApiServer, client: Client
) -> None:
    srv.create("configmaps", cm("c0", "a"))
    with SharedWatches(client, linger=TIMEOUT) as watches:
        first = watches.store("configmaps")
        first.wait_until_ready(TIMEOUT)
        first.close()
        [watch] = watches.stats()
        assert [(v.stores, v.subscribers) for v in watch.views] == [(0, 0)]
        srv.clear_requests()
        with watches.store("configmaps") as again:
            assert again is first and again.is_ready()
        assert [r for r in srv.requests if r.verb == "list"] == []
        srv.create("configmaps", cm("c1", "a"))
        eventually(lambda: len(first) == 2, "the lingering view to keep following")
        eventually(lambda: srv.open_watches() == 1, "the watch to be open")
    eventually(lambda: srv.open_watches() == 0, "close() to end the watch")


def test_a_watch_nothing_uses_closes_after_its_linger(srv: ApiServer, client: Client) -> None:
    with SharedWatches(client, linger=0.05) as watches:
        store = watches.store("configmaps", namespace="a")
        sub = watches.events("configmaps", namespace="a").subscribe()
        store.wait_until_ready(TIMEOUT)
        eventually(lambda: srv.open_watches() == 1, "the watch to open")
        store.close()
        store.close()  # a second close gives back nothing more
        assert len(watches.stats()) == 1  # the subscription still holds it
        sub.dispose()
        eventually(lambda: watches.stats() == [], "the view to retire")
        eventually(lambda: srv.open_watches() == 0, "the watch to close")


def test_narrower_views_move_to_watches_of_their_own_at_their_resource_version(
    srv: ApiServer, client: Client
) -> None:
    for i in range(6):
        srv.create("configmaps", cm(f"c{i}", "ab"[i % 2], app=["web", "db", "x"][i % 3]))
    with SharedWatches(client, linger=0) as watches:
        wide = watches.store("configmaps")
        web = Folded()
        web_sub = watches.events("configmaps", label_selector="app=web").subscribe(web)
        in_b = watches.store("configmaps", namespace="b", label_selector="app")
        in_b_meta = watches.store(
            "configmaps", namespace="b", label_selector="app=db", metadata_only=True
        )
        for store in (wide, in_b, in_b_meta):
            store.wait_until_ready(TIMEOUT)
        [watch] = watches.stats()
        at = watch.resource_version
        eventually(lambda: any(r.verb == "watch" for r in srv.requests), "the wide watch")
        srv.clear_requests()
        wide.close()
        # Changes right after the hand-over reach the views through their new watches.
        srv.patch("configmaps", "c0", {"metadata": {"labels": {"app": "db"}}}, namespace="a")
        srv.patch("configmaps", "c1", {"metadata": {"labels": {"app": "db"}}}, namespace="b")
        srv.create("configmaps", cm("c9", "b", app="web"))
        srv.delete("configmaps", "c4", namespace="a")
        shown = {(w.namespace, w.label_selector, len(w.views)) for w in watches.stats()}
        assert shown == {(None, "app=web", 1), ("b", "app", 2)}

        def following() -> bool:
            return (
                web.refs() == server_refs(srv, label_selector="app=web")
                and refs(in_b.state()) == server_refs(srv, namespace="b", label_selector="app")
                and refs(in_b_meta.state())
                == server_refs(srv, namespace="b", label_selector="app=db")
            )

        eventually(following, "the handed-over views to follow the server")
        eventually(lambda: srv.open_watches() == 2, "two watches, the wide one closed")
        watches_sent = [r for r in srv.requests if r.verb == "watch"]
        assert len(watches_sent) == 2
        assert all(r.query["resourceVersion"] == at for r in watches_sent)
        assert [r for r in srv.requests if r.verb == "list"] == []
        # No relist, and no event twice.
        assert sum(isinstance(e, Init) for e in web.events) == 1
        seen = [
            (_ref(e.obj), e.obj["metadata"]["resourceVersion"])
            for e in web.events
            if isinstance(e, InitApply | Apply | Delete)
        ]
        assert len(seen) == len(set(seen))
        web_sub.dispose()


def test_a_wider_request_absorbs_narrower_watches_in_its_namespace(
    srv: ApiServer, client: Client
) -> None:
    for i in range(4):
        srv.create("configmaps", cm(f"c{i}", "a", app="web" if i % 2 else "db"))
    with SharedWatches(client, linger=0) as watches:
        web = Folded()
        sub = watches.events("configmaps", namespace="a", label_selector="app=web").subscribe(web)
        other = watches.store("configmaps", namespace="b")
        eventually(lambda: len(web.refs()) == 2, "the narrow list")
        everything = watches.store("configmaps", namespace="a")
        everything.wait_until_ready(TIMEOUT)
        eventually(lambda: len(watches.stats()) == 2, "the narrow watch to be absorbed")
        shown = {(w.namespace, len(w.views)) for w in watches.stats()}
        assert shown == {("a", 2), ("b", 1)}
        eventually(lambda: srv.open_watches() == 2, "the narrow connection to close")
        # The moved view relisted from the wide watch, then follows it.
        eventually(
            lambda: sum(isinstance(e, Init) for e in web.events) == 2, "the moved view's relist"
        )
        srv.patch("configmaps", "c0", {"metadata": {"labels": {"app": "web"}}}, namespace="a")
        want = server_refs(srv, namespace="a", label_selector="app=web")
        eventually(lambda: web.refs() == want and len(want) == 3, "the moved view to follow")
        assert len(other) == 0
        sub.dispose()


class States(Folded):
    """A Folded subscriber that also keeps each state its stream has shown, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[dict[_Ref, Object]] = []

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        if not isinstance(event, (Init, InitApply)):
            with self.lock:
                self.shown.append(dict(self.state))


def test_an_absorbing_watch_takes_a_view_over_only_once_it_has_caught_up(
    srv: ApiServer, client: Client
) -> None:
    for name in ("x", "y"):
        srv.create("configmaps", cm(name, "a", app="web"))
    srv.create("configmaps", cm("z", "a", app="db"))
    web: dict[str, Any] = {"namespace": "a", "label_selector": "app=web"}
    with SharedWatches(client, config=Config(page_size=1), linger=0) as watches:
        narrow = watches.store("configmaps", **web)
        seen = States()
        sub = watches.events("configmaps", **web).subscribe(seen)
        narrow.wait_until_ready(TIMEOUT)
        # The wide watch lists page by page at the resourceVersion of its first page,
        # slowly; meanwhile the narrow watch sees an update, a deletion, a creation, and
        # an object entering its selector, none of which are in the wide watch's list.
        srv.faults.delay_responses(2.0, count=2, verb="list")
        wide = watches.store("configmaps", namespace="a")
        eventually(lambda: wide._listed > 0, "the wide watch's first page")
        srv.patch("configmaps", "x", {"data": {"v": "1"}}, namespace="a")
        srv.delete("configmaps", "y", namespace="a")
        srv.create("configmaps", cm("w", "a", app="web"))
        srv.patch("configmaps", "z", {"metadata": {"labels": {"app": "web"}}}, namespace="a")
        now = server_refs(srv, **web)

        def current(state: dict[_Ref, Object]) -> bool:
            return refs(state.values()) == now

        eventually(lambda: refs(narrow.state()) == now, "the narrow store to see the changes")
        assert not wide.is_ready(), "the wide list must still be in progress"
        wide.wait_until_ready(TIMEOUT)
        eventually(lambda: len(watches.stats()) == 1, "the narrow watch to be absorbed")
        eventually(lambda: srv.open_watches() == 1, "the narrow connection to close")
        eventually(lambda: sum(isinstance(e, Init) for e in seen.events) == 2, "the relist")
        with seen.lock:
            shown = list(seen.shown)
        first = next(i for i, state in enumerate(shown) if current(state))
        back = [refs(state.values()) for state in shown[first:] if not current(state)]
        assert back == [], "the view went back in time"
        assert refs(narrow.state()) == now
        # It follows the wide watch from there.
        srv.create("configmaps", cm("v", "a", app="web"))
        later = server_refs(srv, **web)
        eventually(lambda: refs(narrow.state()) == later == seen.refs(), "the view to follow")
        sub.dispose()
        wide.close()
        narrow.close()


def went_back(shown: list[dict[_Ref, Object]]) -> list[str]:
    """Where a sequence of a view's states went back in time (the test server's
    resourceVersions are increasing numbers): an object at an older version than shown
    before, or back at a version it had when it was shown gone."""
    problems: list[str] = []
    last: dict[_Ref, int] = {}
    gone: set[_Ref] = set()
    for n, state in enumerate(shown):
        for ref, obj in state.items():
            version = int(obj["metadata"]["resourceVersion"])
            if version < last.get(ref, 0) or (ref in gone and version <= last[ref]):
                problems.append(f"state {n}: {ref} at {version} after {last[ref]}")
            last[ref] = max(version, last.get(ref, 0))
        gone = {ref for ref in last if ref not in state}
    return problems


def churn_until_ready(srv: ApiServer, rng: random.Random, store: Any) -> None:
    """Change an object every few milliseconds until ``store`` is ready.

    Paced by the wait on the store: unpaced, the changes (a quarter of a million in one
    run) made the paged lists, and the absorptions after them, take a minute or more.
    """
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            store.wait_until_ready(0.005)
            return
        except TimeoutError:
            assert time.monotonic() < deadline, f"{store.describe()}: not ready in {TIMEOUT} s"
            churn(srv, rng, 1)


def follows(srv: ApiServer, fold: Folded, view: dict[str, Any]) -> None:
    """Wait until ``fold`` holds the server's state of ``view``."""
    eventually(lambda: fold.refs() == server_refs(srv, **view), str(view))


def test_absorptions_under_churn_never_take_a_view_back_in_time(
    srv: ApiServer, client: Client
) -> None:
    """Wide watches open, with slow paged lists, while objects change, leave and enter
    the narrow views: whenever a wide watch takes a narrow view over, the view's states go
    on from where they were, and it ends with the server's state."""
    rng = random.Random(1912)
    churn(srv, rng, 30)
    views: list[dict[str, Any]] = [
        {"namespace": "a", "label_selector": "app=web"},
        {"namespace": "a", "label_selector": "app in (web,db),tier"},
        {"namespace": "b", "label_selector": "app"},
    ]
    for round_ in range(3):
        with SharedWatches(client, config=Config(page_size=2), linger=0) as watches:
            folds = [States() for _ in views]
            subs = [
                watches.events("configmaps", **view).subscribe(fold)
                for view, fold in zip(views, folds, strict=True)
            ]
            for view, fold in zip(views, folds, strict=True):
                follows(srv, fold, view)
            srv.faults.delay_responses(0.05 + rng.random() * 0.2, count=6, verb="list")
            wides = [watches.store("configmaps", namespace=ns) for ns in "ab"]
            for wide in wides:
                churn_until_ready(srv, rng, wide)
            churn(srv, rng, 10)
            # A change each narrow watch sees, after the wide lists: the absorption may wait
            # for one (its last change may be a deletion from before the wide list).
            labels = {"app": "web", "tier": "front"}
            for ns in "ab":
                srv.create("configmaps", cm(f"t{round_}", ns, **labels))
            eventually(lambda: len(watches.stats()) == 2, f"round {round_}: the absorptions")
            for view, fold in zip(views, folds, strict=True):
                follows(srv, fold, view)
                with fold.lock:
                    assert went_back(fold.shown) == [], f"round {round_}: {view}"
            for sub in subs:
                sub.dispose()
            for wide in wides:
                wide.close()
        srv.faults.clear()


@pytest.mark.parametrize(("absorb", "watches_left"), [("auto", 2), ("always", 1), ("never", 2)])
def test_absorption_is_an_option(
    srv: ApiServer, client: Client, absorb: Any, watches_left: int
) -> None:
    srv.create("configmaps", cm("c0", "a"))
    with SharedWatches(client, linger=0, absorb=absorb) as watches:
        narrow = watches.store("configmaps", namespace="a")
        narrow.wait_until_ready(TIMEOUT)
        wide = watches.store("configmaps")
        wide.wait_until_ready(TIMEOUT)
        eventually(lambda: len(watches.stats()) == watches_left, f"{watches_left} watches")
        eventually(lambda: srv.open_watches() == watches_left, "the connections to match")
        srv.create("configmaps", cm("c1", "a"))
        eventually(lambda: len(narrow) == 2 and len(wide) == 2, "both stores to follow")


def test_two_controllers_over_overlapping_scopes_share_one_watch_and_cache(
    srv: ApiServer, client: Client
) -> None:
    for i in range(4):
        srv.create("configmaps", cm(f"c{i}", "a", app="web" if i < 2 else "db"))
    reconciled: dict[str, set[str]] = {"all": set(), "web": set()}
    lock = threading.Lock()

    def recorder(name: str) -> Callable[[Object, Any], Action]:
        def reconcile(obj: Object, _ctx: Any) -> Action:
            with lock:
                reconciled[name].add(obj["metadata"]["name"])
            return Action.await_change()

        return reconcile

    with SharedWatches(client, linger=0) as watches:
        everything = Controller.for_shared_stream(
            watches.events("configmaps"), watches.store("configmaps")
        )
        web = Controller.for_shared_stream(
            watches.events("configmaps", namespace="a", label_selector="app=web"),
            watches.store("configmaps", namespace="a", label_selector="app=web"),
        )

        def policy(_obj: Object, _error: Exception, _ctx: Any) -> Action:
            return Action.await_change()

        runs = [
            everything.run(recorder("all"), policy, None).subscribe(),
            web.run(recorder("web"), policy, None).subscribe(),
        ]
        try:
            eventually(
                lambda: reconciled == {"all": {"c0", "c1", "c2", "c3"}, "web": {"c0", "c1"}},
                "both controllers to reconcile their objects",
            )
            srv.patch("configmaps", "c2", {"metadata": {"labels": {"app": "web"}}}, namespace="a")
            eventually(lambda: "c2" in reconciled["web"], "the relabelled object to reach 'web'")
            assert srv.open_watches() == 1
            assert len(watches.stats()) == 1
        finally:
            for run in runs:
                run.dispose()


def test_views_come_and_go_from_many_threads_under_churn(srv: ApiServer, client: Client) -> None:
    """Random subscribes, disposals, store references and releases on overlapping views,
    from several threads, while objects churn: every subscription that lives to the end
    follows the server exactly, and nothing is left open afterwards."""
    rng = random.Random(1515)
    churn(srv, rng, 30)
    failures: list[Exception] = []
    keep: list[tuple[dict[str, Any], Folded, Any]] = []
    keep_lock = threading.Lock()
    with SharedWatches(client, linger=0) as watches:

        def worker(seed: int) -> None:
            mine = random.Random(seed)
            for _ in range(25):
                request = mine.choice(SIX_VIEWS)
                if mine.random() < 0.5:
                    with watches.store("configmaps", **request) as store:
                        store.wait_until_ready(TIMEOUT)
                    continue
                fold = Folded()
                sub = watches.events("configmaps", **request).subscribe(fold, failures.append)
                threading.Event().wait(mine.random() * 0.01)  # a random delay, not a wait
                if mine.random() < 0.8:
                    sub.dispose()
                else:
                    with keep_lock:
                        keep.append((request, fold, sub))

        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
        for thread in threads:
            thread.start()
        churn(srv, rng, 80)
        for thread in threads:
            thread.join(TIMEOUT)
            assert not thread.is_alive()
        churn(srv, rng, 20)
        assert keep
        for request, fold, _sub in keep:

            def caught_up(r: dict[str, Any] = request, f: Folded = fold) -> bool:
                return f.refs() == server_refs(srv, **r)

            eventually(caught_up, str(request))
        assert failures == []
        eventually(lambda: srv.open_watches() <= len({str(r) for r, _, _ in keep}), "few watches")
        for _request, _fold, sub in keep:
            sub.dispose()
        eventually(lambda: watches.stats() == [], "every view to retire")
        eventually(lambda: srv.open_watches() == 0, "every watch to close")


@pytest.mark.parametrize("seed", range(3))
def test_watches_asked_for_and_given_back_at_once_from_many_threads_all_close(
    srv: ApiServer, client: Client, seed: int
) -> None:
    """Threads that ask for the same and for covering views at one moment and give most of
    them back at once, so that a watch is often retired, absorbed or handed over between
    the request that made it and the start of its thread: every view asked for follows the
    server, and no watch (no connection, no thread) outlives its views."""
    rng = random.Random(seed)
    churn(srv, rng, 30)
    failures: list[BaseException] = []
    start = threading.Barrier(6)
    pool = ThreadPoolScheduler(3)
    with SharedWatches(client, linger=0, absorb="always") as watches:

        def worker(seed: int) -> None:
            mine = random.Random(seed)
            try:
                start.wait(TIMEOUT)
                for _ in range(40):
                    request = mine.choice(SIX_VIEWS)
                    if mine.random() < 0.3:
                        fold = Folded()
                        stream = watches.events("configmaps", **request)
                        if mine.random() < 0.5:  # subscribed from a pool thread
                            stream = stream.pipe(ops.subscribe_on(pool))
                        sub = stream.subscribe(fold, failures.append)
                        if mine.random() < 0.5:
                            threading.Event().wait(mine.random() * 0.005)  # not a wait
                        sub.dispose()
                        continue
                    store = watches.store("configmaps", **request)
                    if mine.random() < 0.3:
                        store.wait_until_ready(TIMEOUT)
                        assert refs(store.state()) == server_refs(srv, **request), request
                    store.close()
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(seed * 10 + n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
            assert not thread.is_alive()
        assert failures == []
        eventually(lambda: watches.stats() == [], "every view to retire")
        eventually(lambda: srv.open_watches() == 0, "every watch to close")
    pool.executor.shutdown(wait=True)


def test_a_hand_over_past_compaction_relists_the_views(srv: ApiServer, client: Client) -> None:
    for i in range(4):
        srv.create("configmaps", cm(f"c{i}", "a", app="web"))
    with SharedWatches(client, linger=0) as watches:
        wide = watches.store("configmaps")
        web = Folded()
        sub = watches.events("configmaps", label_selector="app=web").subscribe(web)
        wide.wait_until_ready(TIMEOUT)
        eventually(lambda: len(web.refs()) == 4, "the list")
        # The wide watch is open: the delay is for the hand-over's watch alone.
        eventually(lambda: srv.open_watches() == 1, "the wide watch to open")
        srv.faults.delay_responses(2.0, count=1, verb="watch")
        wide.close()  # the hand-over's watch from the old resourceVersion is held back...
        srv.delete("configmaps", "c0", namespace="a")
        srv.create("configmaps", cm("c5", "a", app="web"))
        srv.compact()  # ...until that resourceVersion is compacted: 410, and a relist
        want = server_refs(srv, label_selector="app=web")
        eventually(lambda: web.refs() == want, "the view to relist")
        assert sum(isinstance(e, Init) for e in web.events) == 2
        sub.dispose()


def test_a_watch_the_server_refuses_fails_its_views_streams(
    srv: ApiServer, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with SharedWatches(client, linger=0) as watches:
        errors: list[Exception] = []
        with caplog.at_level(logging.ERROR, logger="rxkube._shared_watches"):
            watches.events("pods", field_selector="spec.nonsense=x").subscribe(
                on_error=errors.append
            )
            eventually(lambda: len(errors) == 1, "the server's refusal")
        assert isinstance(errors[0], BadRequest)
        assert "field label not supported: spec.nonsense" in str(errors[0])
        assert "the shared watch of pods" in caplog.text
        assert watches.stats() == []
        # The next request for it opens a watch again (and the server refuses it again).
        again: list[Exception] = []
        watches.events("pods", field_selector="spec.nonsense=x").subscribe(on_error=again.append)
        eventually(lambda: len(again) == 1, "the second refusal")


def test_view_stores_show_whether_their_watch_still_follows_the_server(
    srv: ApiServer, client: Client
) -> None:
    srv.create("configmaps", cm("c0", "a", app="web"))
    watches = SharedWatches(client, linger=0)
    wide = watches.store("configmaps")
    narrow = watches.store("configmaps", label_selector="app=web")
    narrow.wait_until_ready(TIMEOUT)
    assert {s.writer_status().state for s in (wide, narrow)} == {"running"}
    eventually(lambda: srv.open_watches() == 1, "the watch to open")
    # A dropped connection whose relists fail for a while: every view is "retrying".
    srv.faults.fail_requests(503, count=1, verb="list")
    srv.faults.close_watches(abrupt=True)
    eventually(
        lambda: {s.writer_status().state for s in (wide, narrow)} == {"retrying"}, "retrying"
    )
    status = narrow.writer_status()
    assert status.error is not None and status.retry_at is not None
    srv.create("configmaps", cm("c1", "a", app="web"))
    eventually(lambda: len(narrow) == 2, "the retried watch to catch up")
    assert {s.writer_status().state for s in (wide, narrow)} == {"running"}
    watches.close()
    assert {s.writer_status().state for s in (wide, narrow)} == {"stopped"}


def test_a_view_joining_a_retrying_watch_says_retrying_too(srv: ApiServer, client: Client) -> None:
    srv.create("configmaps", cm("c0", "a", app="web"))
    with SharedWatches(client, linger=0) as watches:
        wide = watches.store("configmaps")
        wide.wait_until_ready(TIMEOUT)
        srv.faults.fail_requests(503, count=10**6, verb="watch")
        srv.faults.fail_requests(503, count=10**6, verb="list")
        srv.faults.close_watches(abrupt=True)
        eventually(lambda: wide.writer_status().state == "retrying", "the watch to retry")
        narrow = watches.store("configmaps", label_selector="app=web")
        assert len(watches.stats()) == 1  # served by the retrying watch
        status, served = narrow.writer_status(), wide.writer_status()
        assert status.state == "retrying", status
        assert (status.error, status.retry_at) == (served.error, served.retry_at)
        srv.faults.clear()
        srv.create("configmaps", cm("c1", "a", app="web"))
        eventually(lambda: len(narrow) == 2, "the retried watch to catch up")
        assert {s.writer_status().state for s in (wide, narrow)} == {"running"}


def test_a_store_of_a_refused_watch_stops_instead_of_waiting_out_its_timeout(
    client: Client,
) -> None:
    with SharedWatches(client, linger=0) as watches:
        refused = watches.store("pods", field_selector="spec.nonsense=x")
        with pytest.raises(WriterStopped) as stopped:
            refused.wait_until_ready(TIMEOUT)
        assert isinstance(stopped.value.__cause__, BadRequest)
        assert refused.writer_status().state == "stopped"
