"""SharedWatches over real HTTP: sharing, covered views, relists, faults, reference counts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rxkube import SharedWatches
from rxkube.client import Client
from rxkube.errors import ConfigError
from rxkube.events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from rxkube.protocol import Config
from rxkube.testing import ApiServer

TIMEOUT = 30.0

_Ref = tuple[str | None, str]


def eventually(pred: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Wait until ``pred()`` holds, checking it every few milliseconds."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        tick.wait(0.002)


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


def test_a_subscriber_that_raises_ends_alone(
    srv: ApiServer, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    srv.create("configmaps", cm("c0", "a"))
    with SharedWatches(client, linger=0) as watches:
        errors: list[Exception] = []

        def explode(event: Event) -> None:
            if isinstance(event, Apply):
                raise RuntimeError("consumer bug")

        calm = Folded()
        with caplog.at_level(logging.ERROR, logger="rxkube._shared_watches"):
            bad = watches.events("configmaps").subscribe(explode, errors.append)
            good = watches.events("configmaps").subscribe(calm)
            eventually(lambda: len(calm.refs()) == 1, "the list")
            srv.create("configmaps", cm("c1", "a"))
            eventually(lambda: len(errors) == 1, "the failing subscriber's on_error")
        assert str(errors[0]) == "consumer bug"
        assert "raised; it is unsubscribed" in caplog.text
        srv.create("configmaps", cm("c2", "a"))
        eventually(lambda: len(calm.refs()) == 3, "the other subscriber to go on")
        [watch] = watches.stats()
        assert [v.subscribers for v in watch.views] == [1]
        bad.dispose()
        good.dispose()


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
        assert watches.stats() == []
    with pytest.raises(ValueError, match="no selectors"):
        SharedWatches(client, config=Config(label_selector="a=b"))
    with pytest.raises(ValueError, match="linger"):
        SharedWatches(client, linger=-1)
    with pytest.raises(ValueError, match="absorb"):
        SharedWatches(client, absorb="sometimes")  # type: ignore[arg-type]
