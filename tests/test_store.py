"""Store, Writer, indexes and reflect(): the reflector cache and its reads across threads."""

from __future__ import annotations

import asyncio
import copy
import datetime
import doctest
import importlib
import random
import re
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson
import pytest
from reactivex import operators as ops
from reactivex.subject import Subject

from rxkube import (
    ObjectRef,
    Snapshot,
    Store,
    Writer,
    index_label,
    index_namespace,
    index_owner_uid,
    reflect,
    reflector,
    store,
    watcher,
)
from rxkube.client import Api
from rxkube.compact import ShareSubtrees
from rxkube.events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from rxkube.operators import applied_objects
from rxkube.protocol import Config
from rxkube.testing import ApiServer
from tests.waiting import Sink

TIMEOUT = 30.0


def pod(
    name: str,
    namespace: str | None = "default",
    *,
    rv: int = 1,
    labels: dict[str, str] | None = None,
    owners: tuple[str, ...] = (),
) -> Object:
    meta: dict[str, Any] = {"name": name, "resourceVersion": str(rv)}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    if owners:
        meta["ownerReferences"] = [{"uid": uid, "kind": "ReplicaSet"} for uid in owners]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta}


def node(name: str) -> Object:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def relist(writer: Writer, *objects: Object) -> None:
    writer.apply(Init())
    for obj in objects:
        writer.apply(InitApply(obj))
    writer.apply(InitDone())


def version(reader: Store, name: str) -> str:
    obj = reader.get(name, "default")
    assert obj is not None, f"{name} is not in the store"
    return str(obj["metadata"]["resourceVersion"])


def names(objects: Iterable[Object]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objects)


# -- Writer semantics ---------------------------------------------------------------------


def test_relist_is_swapped_in_only_at_init_done() -> None:
    reader, writer = store()
    relist(writer, pod("a"), pod("b"))
    writer.apply(Init())
    writer.apply(InitApply(pod("b", rv=2)))
    writer.apply(InitApply(pod("c")))
    assert names(reader.state()) == ["a", "b"], "readers see the old state until InitDone"
    assert version(reader, "b") == "1"
    writer.apply(InitDone())
    assert names(reader.state()) == ["b", "c"], "objects not relisted are gone"
    assert version(reader, "b") == "2"


def test_repeated_init_restarts_the_relist_buffer() -> None:
    reader, writer = store()
    writer.apply(Init())
    writer.apply(InitApply(pod("stale")))
    writer.apply(Init())
    writer.apply(InitApply(pod("fresh")))
    writer.apply(InitDone())
    assert names(reader.state()) == ["fresh"]


def test_apply_and_delete_change_the_live_map() -> None:
    reader, writer = store()
    writer.apply(Apply(pod("a")))
    writer.apply(Apply(pod("a", rv=2)))
    writer.apply(Apply(pod("b")))
    assert len(reader) == 2
    assert version(reader, "a") == "2"
    writer.apply(Delete(pod("a", rv=3)))
    writer.apply(Delete(pod("never-there")))
    assert names(reader.state()) == ["b"]


def test_a_relist_keeps_the_cached_objects_whose_version_is_unchanged() -> None:
    reader, writer = store(copy_on_read=False)
    first = {name: pod(name) for name in ("same", "changed", "recreated", "gone")}
    first["same"]["metadata"]["uid"] = "u1"
    first["recreated"]["metadata"]["uid"] = "u2"
    listed: list[Event] = [Init(), *(InitApply(o) for o in first.values()), InitDone()]
    for event in listed:
        writer.apply(event)
    relisted = [pod("same"), pod("changed", rv=2), pod("recreated"), pod("new")]
    relisted[0]["metadata"]["uid"] = "u1"
    relisted[2]["metadata"]["uid"] = "u3"  # deleted and created again at the same version
    writer.apply(Init())
    for obj in relisted:
        writer.apply(InitApply(obj))
    assert reader.get("gone", "default") is first["gone"], "the old state is served until the swap"
    writer.apply(InitDone())
    assert reader.get("same", "default") is first["same"]
    assert reader.get("changed", "default") is relisted[1]
    assert reader.get("recreated", "default") is relisted[2]
    assert reader.get("new", "default") is relisted[3]
    assert reader.get("gone", "default") is None


def test_objects_are_stored_by_reference() -> None:
    reader, writer = store(copy_on_read=False)
    obj = pod("a")
    writer.apply(Apply(obj))
    assert reader.get("a", "default") is obj
    assert reader.state()[0] is obj


def test_every_read_hands_out_a_copy_that_cannot_change_the_cache() -> None:
    reader, writer = store()
    reader.add_index("app", index_label("app"))
    writer.apply(Apply(pod("a", labels={"app": "web"})))
    reads: dict[str, Callable[[], Any]] = {
        "get": lambda: reader.get("a", "default"),
        "state": lambda: reader.state()[0],
        "iteration": lambda: next(iter(reader)),
        "find": lambda: reader.find(lambda o: True),
        "filter": lambda: reader.filter(label_selector="app=web")[0],
        "by_index": lambda: reader.by_index("app", "web")[0],
    }
    for how, read in reads.items():
        got = read()
        got["metadata"]["labels"]["app"] = "db"
        got["metadata"].setdefault("finalizers", []).append(how)
        assert reader.get("a", "default") == pod("a", labels={"app": "web"}), how
        assert [o["metadata"]["name"] for o in reader.by_index("app", "web")] == ["a"], how
        assert reader.by_index("app", "db") == [], how
        assert reader.filter(label_selector="app=db") == [], how


def test_a_changed_copy_does_not_reach_the_objects_share_subtrees_shares() -> None:
    reader, writer = store()
    share = ShareSubtrees()
    spec = {"containers": [{"name": "app", "env": [{"name": "MODE", "value": "a"}]}]}
    for name in ("a", "b"):
        obj = pod(name)
        obj["spec"] = copy.deepcopy(spec)
        writer.apply(Apply(share(obj)))
    cached = reader.state(copy=False)
    assert cached[0]["spec"] is cached[1]["spec"], "the two cached objects share their spec"
    got = reader.get("a", "default")
    assert got is not None
    got["spec"]["containers"][0]["env"][0]["value"] = "changed"
    got["spec"]["containers"].append({"name": "sidecar"})
    for name in ("a", "b"):
        again = reader.get(name, "default")
        assert again is not None and again["spec"] == spec, name


def _containers(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every dict and list inside ``value`` (itself included), with its path."""
    if isinstance(value, dict | list):
        yield path, value
    if isinstance(value, dict | list | tuple):
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            yield from _containers(item, f"{path}/{key}")


@pytest.mark.parametrize("sharing", [False, True], ids=["plain", "ShareSubtrees"])
def test_changing_any_nested_level_of_a_read_leaves_the_cache_unchanged(sharing: bool) -> None:
    reader, writer = store()
    reader.add_index("namespace", index_namespace)
    share = ShareSubtrees()
    for i in range(3):
        obj = pod(f"p{i}", labels={"app": "web"})
        obj["spec"] = {
            "containers": [{"name": "c", "env": [{"name": "A", "value": "1"}], "ports": [80]}],
            "tolerations": [{"key": "k", "operator": "Exists"}],
        }
        obj["metadata"]["managedFields"] = [{"fieldsV1": {"f:spec": {"f:containers": {}}}}]
        obj = share(obj) if sharing else obj
        obj["metadata"] = {**obj["metadata"], "pair": ({"inner": ["x"]}, "y")}  # as modify() may
        writer.apply(Apply(obj))
    expected = [copy.deepcopy(o) for o in reader.state(copy=False)]
    name, namespace = expected[1]["metadata"]["name"], expected[1]["metadata"]["namespace"]
    reads: dict[str, Callable[[], Sequence[Any]]] = {
        "get": lambda: [reader.get(name, namespace)],
        "state": reader.state,
        "by_index": lambda: reader.by_index("namespace", namespace),
    }
    for how, read in reads.items():
        for got in read():
            for path, part in list(_containers(got)):
                if isinstance(part, dict):
                    part.clear()
                    part["changed-by"] = how
                else:
                    part.clear()
                    part.append(path)
        assert reader.state(copy=False) == expected, how
        assert reader.by_index("namespace", namespace) == expected, how


def test_a_copy_keeps_values_that_are_not_json() -> None:
    reader, writer = store()
    stamp = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    writer.apply(Apply({"metadata": {"name": "a"}, "x": (1, 2), "at": stamp}))
    got = reader.get("a")
    assert got is not None and got["x"] == (1, 2) and got["at"] is stamp


def test_without_copy_on_read_every_read_is_the_cached_object() -> None:
    reader, writer = store(copy_on_read=False)
    reader.add_index("app", index_label("app"))
    obj = pod("a", labels={"app": "web"})
    writer.apply(Apply(obj))
    assert reader.get("a", "default") is obj
    assert reader.state()[0] is obj and next(iter(reader)) is obj
    assert reader.find(lambda o: True) is obj
    assert reader.filter(label_selector="app=web")[0] is obj
    assert reader.by_index("app", "web")[0] is obj
    copying, copying_writer = store()
    copying_writer.apply(Apply(obj))
    assert copying.state(copy=False)[0] is obj, "copy=False reads the cached objects"


def test_state_is_a_snapshot() -> None:
    reader, writer = store()
    writer.apply(Apply(pod("a")))
    snapshot = reader.state()
    writer.apply(Apply(pod("b")))
    relist(writer)
    assert names(snapshot) == ["a"]
    assert len(reader) == 0


def test_a_snapshot_hands_out_a_new_copy_at_each_read_and_keeps_its_versions() -> None:
    reader, writer = store()
    writer.apply(Apply(pod("a", rv=1)))
    writer.apply(Apply(pod("b", rv=1)))
    snapshot = reader.state()
    writer.apply(Apply(pod("a", rv=2)))  # replaced after the snapshot: it still has rv 1
    writer.apply(Delete(pod("b")))
    first, again = snapshot[0], snapshot[0]
    assert first == again and first is not again
    first["metadata"]["resourceVersion"] = "changed"
    assert snapshot[0]["metadata"]["resourceVersion"] == "1"
    assert [o["metadata"]["resourceVersion"] for o in snapshot] == ["1", "1"]
    assert [o["metadata"]["name"] for o in reversed(snapshot)] == ["b", "a"]
    assert version(reader, "a") == "2" and len(reader) == 1
    part = snapshot[1:]
    assert isinstance(part, Snapshot) and names(list(part)) == ["b"]
    assert snapshot == [pod("a", rv=1), pod("b", rv=1)] and snapshot != reader.state()
    assert pod("b", rv=1) in snapshot and pod("b", rv=2) not in snapshot
    assert snapshot != [pod("a", rv=1)] and snapshot != "ab"
    assert repr(snapshot[:1]) == f"Snapshot([{pod('a', rv=1)!r}])"
    with pytest.raises(TypeError):
        hash(snapshot)


def test_taking_a_snapshot_copies_nothing_until_it_is_read() -> None:
    reader, writer = store()
    for i in range(500):
        obj = pod(f"p{i}", labels={"app": "web"})
        obj["spec"] = {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}] * 4}
        writer.apply(Apply(obj))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        snapshot = reader.state()
        taken = tracemalloc.get_traced_memory()[0] - before
        one = snapshot[0]
        read_one = tracemalloc.get_traced_memory()[0] - before - taken
    finally:
        tracemalloc.stop()
    # A list of 500 references, not 500 copies (each copy of these pods is over 1 KB).
    assert taken < 500 * 16 + 1024, taken
    assert read_one > 1024 and one["spec"]["containers"][0]["name"] == "c"


def test_a_store_has_exactly_one_writer() -> None:
    reader, _writer = store()
    with pytest.raises(ValueError, match="has a writer already"):
        Writer(reader)


def test_objects_without_a_name_are_rejected_and_leave_the_store_unchanged() -> None:
    reader, writer = store()
    writer.apply(Apply(pod("a")))
    with pytest.raises(ValueError, match=r"metadata\.name"):
        writer.apply(Apply({"metadata": {"namespace": "default"}}))
    with pytest.raises(TypeError, match="not a watch event"):
        writer.apply("nonsense")  # type: ignore[arg-type]
    assert names(reader.state()) == ["a"]


# -- reading -------------------------------------------------------------------------------


def test_get_by_name_namespace_or_object_ref() -> None:
    reader, writer = store(copy_on_read=False)
    web = pod("web", "prod")
    writer.apply(Apply(web))
    writer.apply(Apply(pod("web", "dev")))
    assert reader.get("web", "prod") is web
    assert reader.get(ObjectRef("web", "prod")) is web
    assert reader.get(ObjectRef("web", "prod", kind="Pod")) is web
    assert reader.get(ObjectRef("web", "prod", kind="Service")) is None
    assert reader.get(ObjectRef("web", "prod", kind="Pod", group="apps")) is None
    assert reader.get("web") is None, "a namespaced object needs its namespace"
    assert reader.get("web", "staging") is None


def test_cluster_scoped_objects_are_found_with_or_without_a_namespace() -> None:
    reader, writer = store(copy_on_read=False)
    n1 = node("n1")
    writer.apply(Apply(n1))
    assert reader.get("n1") is n1
    assert reader.get("n1", "default") is n1
    assert reader.get(ObjectRef("n1", "")) is n1
    assert reader.get(ObjectRef("n1", "kube-system", kind="Node")) is n1
    assert "n1" in reader


def test_contains_len_and_iteration() -> None:
    reader, writer = store()
    a = pod("a")
    writer.apply(Apply(a))
    writer.apply(Apply(node("n1")))
    assert len(reader) == 2
    assert a in reader
    assert pod("a", rv=9) in reader, "membership is by key, not by content"
    assert ObjectRef("a", "default") in reader
    assert ObjectRef.from_obj(a) in reader
    assert "n1" in reader
    assert pod("zzz") not in reader
    assert 42 not in reader
    assert sorted(o["metadata"]["name"] for o in reader) == ["a", "n1"]


def test_find_and_filter() -> None:
    reader, writer = store()
    writer.apply(Apply(pod("a", labels={"app": "web", "tier": "front"})))
    writer.apply(Apply(pod("b", labels={"app": "web", "tier": "back"})))
    writer.apply(Apply(pod("c", labels={"app": "db"})))
    found = reader.find(lambda o: o["metadata"]["name"] == "b")
    assert found is not None and found["metadata"]["name"] == "b"
    assert reader.find(lambda o: False) is None
    assert names(reader.filter(label_selector="app=web")) == ["a", "b"]
    assert names(reader.filter(label_selector="app=web,tier notin (back)")) == ["a"]
    assert names(reader.filter(label_selector="!tier")) == ["c"]
    selected = reader.filter(lambda o: o["metadata"]["name"] != "a", label_selector="app")
    assert names(selected) == ["b", "c"]
    assert names(reader.filter()) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="invalid label selector"):
        reader.filter(label_selector="app in (web")


def test_object_ref_is_hashable_and_readable() -> None:
    ref = ObjectRef.from_obj(pod("web", "prod"))
    assert ref == ObjectRef("web", "prod", kind="Pod")
    assert {ref: 1}[ObjectRef("web", "prod", "Pod")] == 1
    assert ObjectRef("n1", "") == ObjectRef("n1")
    assert str(ref) == "Pod prod/web"
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
    assert str(ObjectRef.from_obj(deployment)) == "Deployment.apps d"


# -- consistency across threads ----------------------------------------------------------


def test_a_reader_never_sees_a_partial_relist_under_heavy_churn() -> None:
    """A writer thread relists generation after generation, with churn in between; a
    reader thread checks every snapshot holds exactly one whole generation."""
    reader, writer = store()
    reader.add_index("gen", index_label("gen"))
    size, generations = 100, 1000
    writer_done = threading.Event()
    problems: list[str] = []
    checks = [0]

    def write() -> None:
        try:
            for gen in range(generations):
                writer.apply(Init())
                for i in range(size):
                    writer.apply(InitApply(pod(f"r{i}", rv=gen, labels={"gen": str(gen)})))
                    if i % 10 == 0:  # churn on the live map while the relist is buffered
                        writer.apply(Apply(pod(f"churn{i}", rv=gen)))
                        writer.apply(Delete(pod(f"churn{i - 10}")))
                writer.apply(InitDone())
        finally:
            writer_done.set()

    def read() -> None:
        while not writer_done.is_set() and not problems:
            snapshot = [o for o in reader.state() if o["metadata"]["name"].startswith("r")]
            gens = {o["metadata"]["labels"]["gen"] for o in snapshot}
            if snapshot and (len(snapshot) != size or len(gens) != 1):
                problems.append(f"partial relist: {len(snapshot)} objects of generations {gens}")
            if reader.is_ready():
                (gen,) = reader.index_keys("gen") or ["?"]
                by_gen = reader.by_index("gen", gen)
                if by_gen and len(by_gen) != size:
                    problems.append(f"index has {len(by_gen)} objects of generation {gen}")
            checks[0] += 1

    threads = [threading.Thread(target=write, name="writer"), threading.Thread(target=read)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: interleave them finely
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive()
    finally:
        sys.setswitchinterval(interval)
    assert not problems, problems[0]
    assert checks[0] > 10, "the reader must have run while the writer relisted"
    assert {o["metadata"]["labels"]["gen"] for o in reader.by_index("gen", "999")} == {"999"}


# -- readiness -----------------------------------------------------------------------------


def test_wait_until_ready_times_out_naming_the_store_then_returns_once_listed() -> None:
    reader, writer = store("pods")
    assert not reader.is_ready()
    with pytest.raises(TimeoutError, match=r"store of pods is not ready after 0\.05 s"):
        reader.wait_until_ready(timeout=0.05)
    writer.apply(Init())
    writer.apply(InitApply(pod("a")))
    with pytest.raises(TimeoutError, match=r"a list is in progress \(1 objects so far\)"):
        reader.wait_until_ready(timeout=0.01)

    ready = threading.Event()

    def wait() -> None:
        reader.wait_until_ready(10)
        ready.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    writer.apply(InitDone())
    assert ready.wait(10)
    waiter.join(timeout=10)
    assert reader.is_ready()
    reader.wait_until_ready(timeout=0)  # ready stays ready: returns at once
    relist(writer)
    assert reader.is_ready()


def test_wait_until_ready_names_the_kind_when_the_store_has_no_name() -> None:
    reader, writer = store()
    writer.apply(Apply(pod("a")))
    with pytest.raises(TimeoutError, match="store of Pod objects"):
        reader.wait_until_ready(timeout=0.01)


def test_wait_ready_awaits_without_blocking_the_event_loop() -> None:
    reader, writer = store("pods")
    go = threading.Event()

    def list_when_told() -> None:
        if go.wait(10):
            relist(writer, pod("a"))

    feeder = threading.Thread(target=list_when_told, name="feeder")
    feeder.start()

    async def main() -> tuple[int, float]:
        with pytest.raises(TimeoutError, match="store of pods is not ready"):
            await reader.wait_ready(timeout=0.05)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                if ticks == 3:
                    go.set()  # the loop runs while wait_ready waits: let the list complete
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        await reader.wait_ready(timeout=10)
        ticker.cancel()
        await reader.wait_ready(timeout=0)  # already ready
        return ticks, len(reader)

    try:
        ticks, size = asyncio.run(main())
    finally:
        go.set()
        feeder.join(timeout=10)
    assert ticks >= 3 and size == 1
    assert not reader._async_waiters, "waiters are cleaned up"


# -- indexes -------------------------------------------------------------------------------


def test_builtin_indexes_follow_updates_deletes_and_relists() -> None:
    reader, writer = store()
    reader.add_index("namespace", index_namespace)
    reader.add_index("app", index_label("app"))
    reader.add_index("owner", index_owner_uid)

    writer.apply(Apply(pod("a", "prod", labels={"app": "web"}, owners=("rs1",))))
    writer.apply(Apply(pod("b", "prod", labels={"app": "db"}, owners=("rs1", "rs2"))))
    writer.apply(Apply(pod("c", "dev")))
    writer.apply(Apply(node("n1")))
    assert names(reader.by_index("namespace", "prod")) == ["a", "b"]
    assert names(reader.by_index("app", "web")) == ["a"]
    assert names(reader.by_index("owner", "rs1")) == ["a", "b"]
    assert names(reader.by_index("owner", "rs2")) == ["b"]
    assert sorted(reader.index_keys("namespace")) == ["dev", "prod"]

    # an update moves an object between keys and refreshes the object filed
    writer.apply(Apply(pod("a", "prod", rv=2, labels={"app": "db"}, owners=("rs2",))))
    assert reader.by_index("app", "web") == []
    assert names(reader.by_index("app", "db")) == ["a", "b"]
    assert names(reader.by_index("owner", "rs1")) == ["b"]
    assert reader.by_index("app", "db")[0]["metadata"]["resourceVersion"] in ("1", "2")
    assert {o["metadata"]["resourceVersion"] for o in reader.by_index("owner", "rs2")} == {"1", "2"}

    writer.apply(Delete(pod("b", "prod")))
    assert names(reader.by_index("owner", "rs2")) == ["a"]
    assert "rs1" not in reader.index_keys("owner"), "empty keys are dropped"

    relist(writer, pod("x", "dev", labels={"app": "web"}), pod("c", "dev"))
    assert reader.by_index("namespace", "prod") == []
    assert names(reader.by_index("namespace", "dev")) == ["c", "x"]
    assert names(reader.by_index("app", "web")) == ["x"]
    assert reader.index_keys("owner") == []


def test_an_index_added_later_covers_existing_objects_and_may_return_several_keys() -> None:
    reader, writer = store()
    writer.apply(Apply(pod("a", labels={"app": "web", "team": "x"})))
    writer.apply(Apply(pod("b", labels={"app": "db"})))
    reader.add_index("labels", lambda o: [f"{k}={v}" for k, v in o["metadata"]["labels"].items()])
    assert names(reader.by_index("labels", "team=x")) == ["a"]
    writer.apply(Apply(pod("b", labels={"app": "web"})))
    assert names(reader.by_index("labels", "app=web")) == ["a", "b"]
    assert reader.by_index("labels", "app=db") == []


def test_an_index_added_during_a_relist_covers_the_relisted_objects() -> None:
    reader, writer = store()
    writer.apply(Init())
    writer.apply(InitApply(pod("a", "prod")))
    reader.add_index("namespace", index_namespace)
    writer.apply(InitDone())
    assert names(reader.by_index("namespace", "prod")) == ["a"]


def test_a_failing_index_function_leaves_the_store_unchanged() -> None:
    reader, writer = store()
    writer.apply(Apply(pod("a", labels={"app": "web"})))
    reader.add_index("app", lambda o: o["metadata"]["labels"]["app"])
    with pytest.raises(KeyError) as info:
        writer.apply(Apply(pod("b")))
    assert "in index 'app' of object Pod default/b" in "".join(info.value.__notes__)
    assert names(reader.state()) == ["a"]
    assert names(reader.by_index("app", "web")) == ["a"]


def test_an_index_function_runs_outside_the_store_lock() -> None:
    # A slow index function blocks neither readers nor the writer, and may read the
    # store itself (under the lock that read would wait for itself for ever).
    reader, writer = store()
    for i in range(5):
        writer.apply(Apply(pod(f"p{i}", labels={"app": "web"})))
    entered, release = threading.Event(), threading.Event()

    def slow(obj: Object) -> str:
        if obj["metadata"]["name"] == "p0":  # the build's first object: it stops there
            entered.set()
            assert release.wait(TIMEOUT)
        assert reader.state(copy=False)  # reading the store from an index function
        return str(obj["metadata"]["labels"]["app"])

    adding = threading.Thread(target=reader.add_index, args=("slow", slow), daemon=True)
    adding.start()
    try:
        assert entered.wait(TIMEOUT)

        def meanwhile() -> None:
            # The writer files its change in the index being built, and goes on.
            writer.apply(Apply(pod("late", labels={"app": "db"})))
            assert len(reader.state()) == 6
            with pytest.raises(KeyError, match="no index 'slow'"):
                reader.by_index("slow", "web")  # not there until complete

        other = threading.Thread(target=meanwhile, daemon=True)
        other.start()
        other.join(TIMEOUT)
        assert not other.is_alive(), "the writer or a reader waited for the index function"
    finally:
        release.set()
        adding.join(TIMEOUT)
    assert not adding.is_alive()
    assert names(reader.by_index("slow", "web")) == [f"p{i}" for i in range(5)]
    assert names(reader.by_index("slow", "db")) == ["late"]


def test_an_object_the_store_lets_go_of_is_freed_outside_its_lock() -> None:
    # Freeing a replaced, deleted or unlisted object runs what it holds: here a finalizer
    # that reads the store, as user code put into an object by modify() could. Under the
    # store's lock that read would wait for the writer's thread, which waits for it.
    reader, writer = store()
    unblocked: list[bool] = []

    class Finalized:
        def __del__(self) -> None:
            read = threading.Thread(target=reader.state, daemon=True)
            read.start()
            read.join(5)
            unblocked.append(not read.is_alive())

    def held(name: str) -> Object:
        obj = pod(name)
        obj["spec"] = {"finalized": Finalized()}
        return obj

    writer.apply(Apply(held("replaced")))
    writer.apply(Apply(held("deleted")))
    writer.apply(Apply(held("unlisted")))
    writer.apply(Apply(pod("replaced")))
    writer.apply(Delete(pod("deleted")))
    assert unblocked == [True, True]
    for event in (Init(), InitApply(pod("replaced")), InitDone()):
        writer.apply(event)
    assert unblocked == [True, True, True]
    assert names(reader.state()) == ["replaced"]


@pytest.mark.parametrize("seed", range(5))
def test_an_index_added_while_the_writer_writes_matches_the_final_state(seed: int) -> None:
    # A writer thread applies, deletes and relists at random while add_index runs a slow
    # index function: once both are done, the index is what a rebuild from scratch gives.
    rng = random.Random(seed)
    reader, writer = store()
    relist(writer, *(pod(f"p{i}", labels={"n": "0"}) for i in range(50)))
    stop = threading.Event()
    ops_done = [0]

    def write() -> None:
        wrng = random.Random(seed + 1000)
        while not stop.is_set() or ops_done[0] < 200:
            name = f"p{wrng.randrange(80)}"
            roll = wrng.random()
            if roll < 0.6:
                writer.apply(Apply(pod(name, labels={"n": str(wrng.randrange(5))})))
            elif roll < 0.95:
                writer.apply(Delete(pod(name)))
            else:
                relist(
                    writer, *(pod(f"p{i}", labels={"n": "r"}) for i in range(wrng.randrange(60)))
                )
            ops_done[0] += 1

    def label_n(obj: Object) -> str:
        if rng.random() < 0.2:
            threading.Event().wait(rng.random() * 0.002)  # a slow function, not a wait
        return str(obj["metadata"]["labels"]["n"])

    writing = threading.Thread(target=write, daemon=True)
    writing.start()
    try:
        reader.add_index("n", label_n)
    finally:
        stop.set()
        writing.join(TIMEOUT)
    assert not writing.is_alive()
    assert ops_done[0] >= 200
    expected: dict[str, list[str]] = {}
    for obj in reader.state():
        expected.setdefault(obj["metadata"]["labels"]["n"], []).append(obj["metadata"]["name"])
    assert sorted(reader.index_keys("n")) == sorted(expected)
    for key, members in expected.items():
        assert names(reader.by_index("n", key)) == sorted(members)


def test_a_failing_index_function_in_add_index_adds_no_index() -> None:
    reader, writer = store()
    writer.apply(Apply(pod("a")))
    with pytest.raises(KeyError) as info:
        reader.add_index("app", lambda o: o["metadata"]["labels"]["app"])
    assert "in index 'app' of object Pod default/a" in "".join(info.value.__notes__)
    with pytest.raises(KeyError, match="no index 'app'"):
        reader.index_keys("app")
    writer.apply(Apply(pod("b")))  # the writer is not left waiting on a build


_UNFILEABLE: list[tuple[Callable[[Object], Any], str]] = [
    (lambda o: [{"k": "v"}], "an index key must be a string, not dict {'k': 'v'}"),
    (lambda o: [["web"]], "an index key must be a string, not list ['web']"),
    (lambda o: ["web", None], "an index key must be a string, not NoneType None"),
    (lambda o: [5], "an index key must be a string, not int 5"),
    (lambda o: [b"web"], "an index key must be a string, not bytes b'web'"),
    (
        lambda o: b"web",
        "the index function answered bytes b'web'; it must answer a string, strings or None",
    ),
    (lambda o: 5, "the index function answered int 5; it must answer a string, strings or None"),
]
_UNFILEABLE_IDS = [
    "unhashable",
    "a-list",
    "none-among-them",
    "an-int",
    "bytes-among",
    "bytes",
    "int",
]


def _late_only(fn: Callable[[Object], Any]) -> Callable[[Object], Any]:
    return lambda o: fn(o) if o["metadata"]["name"] == "late" else o["metadata"]["name"]


@pytest.mark.parametrize(("fn", "problem"), _UNFILEABLE, ids=_UNFILEABLE_IDS)
def test_an_index_key_that_is_no_string_fails_the_write_before_it_begins(
    fn: Callable[[Object], Any], problem: str
) -> None:
    """Not the object in the store and in the indexes before the bad one only; bytes are
    not filed as integers."""
    reader, writer = store("configmaps")
    reader.add_index("before", index_label("app"))
    reader.add_index("bad", _late_only(fn))
    reader.add_index("after", index_label("app"))
    sink = Sink()
    with ApiServer() as srv:

        def configmap(name: str) -> Object:
            return {"metadata": {"name": name, "labels": {"app": "web"}}, "data": {"k": "v"}}

        srv.create("configmaps", configmap("early"), namespace="default")
        api = Api(srv.client(), "configmaps", namespace="default")
        subscription = watcher(api).pipe(reflect(writer)).subscribe(sink.on_next, sink.on_error)
        try:
            reader.wait_until_ready(TIMEOUT)
            srv.create("configmaps", configmap("late"), namespace="default")
            assert sink.reached(lambda s: bool(s.errors)), (
                "the write of an unfileable key did not fail"
            )
        finally:
            subscription.dispose()
    errors = sink.errors
    assert isinstance(errors[0], TypeError)
    assert str(errors[0]) == f"index 'bad' of object ConfigMap default/late: {problem}"
    assert names(reader.state()) == ["early"]
    for name in ("before", "after"):
        assert names(reader.by_index(name, "web")) == ["early"]
    assert sorted(reader.index_keys("bad")) == ["early"]


@pytest.mark.parametrize(("fn", "problem"), _UNFILEABLE, ids=_UNFILEABLE_IDS)
def test_an_index_key_that_is_no_string_fails_add_index_and_a_relist_unchanged(
    fn: Callable[[Object], Any], problem: str
) -> None:
    reader, writer = store()
    reader.add_index("app", index_label("app"))
    relist(writer, pod("early", labels={"app": "web"}), pod("late", labels={"app": "web"}))
    with pytest.raises(TypeError, match=re.escape(problem)):
        reader.add_index("bad", _late_only(fn))
    with pytest.raises(KeyError, match="no index 'bad'"):
        reader.index_keys("bad")
    writer.apply(Delete(pod("late")))
    reader.add_index("bad", _late_only(fn))
    with pytest.raises(
        TypeError, match=re.escape(f"index 'bad' of object Pod default/late: {problem}")
    ):
        relist(
            writer, pod("early", rv=2, labels={"app": "web"}), pod("late", labels={"app": "web"})
        )
    assert [version(reader, "early")] == ["1"] and names(reader.state()) == ["early"]
    assert names(reader.by_index("app", "web")) == ["early"]
    assert reader.index_keys("bad") == ["early"]


def test_by_index_of_an_unknown_index_says_which_exist() -> None:
    reader, _writer = store("pods")
    reader.add_index("namespace", index_namespace)
    with pytest.raises(KeyError, match=r"no index 'app'.*\['namespace'\]"):
        reader.by_index("app", "web")
    with pytest.raises(KeyError, match="no index 'app'"):
        reader.index_keys("app")


# -- reflect ---------------------------------------------------------------------------


def test_reflect_applies_each_event_then_passes_it_on_unchanged() -> None:
    reader, writer = store()
    source: Subject[Event] = Subject()
    seen: list[tuple[Event, int]] = []
    subscription = source.pipe(reflect(writer)).subscribe(lambda e: seen.append((e, len(reader))))
    events: list[Event] = [Init(), InitApply(pod("a")), InitDone(), Apply(pod("b"))]
    for event in events:
        source.on_next(event)
    subscription.dispose()
    assert [e for e, _ in seen] == events
    assert all(a is b for (a, _), b in zip(seen, events, strict=True))
    assert [n for _, n in seen] == [0, 0, 1, 2], "each event is applied before it is passed on"


def test_reflect_passes_errors_through_and_the_store_keeps_its_last_good_state() -> None:
    reader, writer = store()
    failure = RuntimeError("watch broke")
    errors: list[Exception] = []
    first: Subject[Event] = Subject()
    first.pipe(reflect(writer)).subscribe(on_error=errors.append)
    relist_events: list[Event] = [Init(), InitApply(pod("a")), InitApply(pod("b")), InitDone()]
    for event in relist_events:
        first.on_next(event)
    first.on_next(Init())
    first.on_next(InitApply(pod("a", rv=2)))
    first.on_error(failure)
    assert errors == [failure], "the very same exception"
    assert names(reader.state()) == ["a", "b"]
    assert version(reader, "a") == "1"

    second: Subject[Event] = Subject()  # the retried watch relists
    reflector(writer, second).subscribe()
    retried: list[Event] = [Init(), InitApply(pod("a", rv=3)), InitDone()]
    for event in retried:
        second.on_next(event)
    assert names(reader.state()) == ["a"]


def test_reflect_sends_an_event_it_cannot_apply_to_on_error_and_stops_the_source() -> None:
    reader, writer = store()
    source: Subject[Event] = Subject()
    errors: list[Exception] = []
    seen: list[Event] = []
    source.pipe(reflect(writer)).subscribe(seen.append, errors.append)
    source.on_next(Apply({"metadata": {}}))
    source.on_next(Apply(pod("later")))
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    assert seen == [] and len(reader) == 0
    assert not source.observers, "the source subscription was disposed"


def test_reflect_composes_with_retry() -> None:
    reader, writer = store()
    attempts = [0]
    source: Subject[Event] = Subject()

    def flaky(event: Event) -> Event:
        if isinstance(event, InitDone) and attempts[0] == 0:
            attempts[0] += 1
            raise ConnectionError("dropped")
        return event

    source.pipe(ops.map(flaky), reflect(writer), ops.retry(2)).subscribe()
    listing: list[Event] = [Init(), InitApply(pod("a")), InitDone()]
    for event in listing:
        source.on_next(event)
    assert not reader.is_ready()
    for event in listing:
        source.on_next(event)
    assert reader.is_ready() and len(reader) == 1


def test_store_repr_names_it() -> None:
    reader, writer = store("pods")
    writer.apply(Apply(pod("a")))
    assert repr(reader) == "<Store pods: 1 objects, not ready>"
    assert isinstance(writer.store, Store) and writer.store is reader


@pytest.mark.parametrize(
    "module",
    [
        "rxkube._cache",
        "rxkube._snapshot",
        "rxkube._indexes",
        "rxkube._object_ref",
        "rxkube.dispatcher",
        "rxkube._display",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# -- compact stores -----------------------------------------------------------------------


def test_a_compact_store_decodes_a_new_copy_at_every_read() -> None:
    reader, writer = store(compact=True)
    reader.add_index("app", index_label("app"))
    writer.apply(Apply(pod("a", labels={"app": "web"})))
    reads: dict[str, Callable[[], Any]] = {
        "get": lambda: reader.get("a", "default"),
        "get by ObjectRef": lambda: reader.get(ObjectRef("a", "default", kind="Pod")),
        "state": lambda: reader.state()[0],
        "state(copy=False)": lambda: reader.state(copy=False)[0],
        "iteration": lambda: next(iter(reader)),
        "find": lambda: reader.find(lambda o: o["metadata"]["name"] == "a"),
        "filter": lambda: reader.filter(label_selector="app=web")[0],
        "by_index": lambda: reader.by_index("app", "web")[0],
    }
    for how, read in reads.items():
        got = read()
        assert got == pod("a", labels={"app": "web"}), how
        got["metadata"]["labels"]["app"] = "db"
        assert read() == pod("a", labels={"app": "web"}), how
        assert reader.by_index("app", "db") == [] and reader.filter(label_selector="app=db") == []
    assert reader.get(ObjectRef("a", "default", kind="Node")) is None
    assert ObjectRef("a", "default") in reader and pod("a") in reader and reader.kind == "Pod"


def test_a_compact_store_follows_applies_deletes_relists_and_indexes() -> None:
    reader, writer = store(compact=True)
    reader.add_index("owner", index_owner_uid)
    relist(writer, pod("a", owners=("rs-1",)), pod("b", owners=("rs-1",)))
    reader.add_index("namespace", index_namespace)  # built from the held encodings
    writer.apply(Apply(pod("c", rv=2, owners=("rs-2",))))
    writer.apply(Delete(pod("a")))
    assert names(list(reader.by_index("owner", "rs-1"))) == ["b"]
    assert names(list(reader.by_index("namespace", "default"))) == ["b", "c"]
    relist(writer, pod("b", rv=3, owners=("rs-2",)), pod("d", namespace="other"))
    assert names(list(reader)) == ["b", "d"] and version(reader, "b") == "3"
    assert reader.by_index("owner", "rs-1") == [] and len(reader.by_index("owner", "rs-2")) == 1
    assert sorted(reader.index_keys("namespace")) == ["default", "other"]
    snapshot = reader.state()
    writer.apply(Apply(pod("b", rv=4)))
    assert [o["metadata"]["resourceVersion"] for o in snapshot if o["metadata"]["name"] == "b"] == [
        "3"
    ]


def test_a_compact_relist_keeps_the_held_encoding_of_an_unchanged_object() -> None:
    reader, writer = store(compact=True)
    objects = []
    for i in range(200):
        obj = pod(f"p{i}", labels={"app": "web", "tier": "frontend"})
        obj["spec"] = {"containers": [{"name": "c", "image": "nginx:1.27", "args": ["-v"] * 100}]}
        objects.append(obj)
    relist(writer, *objects)
    held = len(orjson.dumps(objects[0]))
    listed = copy.deepcopy(objects)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        writer.apply(Init())
        for obj in listed:
            writer.apply(InitApply(obj))
        buffered = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    writer.apply(InitDone())
    # The relist buffer holds the same encodings as the store, not 200 new ones.
    assert held > 500 and buffered < 200 * held / 4, (buffered, held)
    assert reader.state() == objects


def test_a_compact_store_refuses_a_value_that_is_not_json_and_stays_unchanged() -> None:
    reader, writer = store(compact=True)
    writer.apply(Apply(pod("a")))
    stamped = pod("a", rv=2)
    stamped["metadata"]["seen"] = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    with pytest.raises(TypeError, match="in a compact store, which keeps JSON") as caught:
        writer.apply(Apply(stamped))
    assert (
        "object Pod default/a in a compact store, which keeps JSON: a datetime is not JSON"
        in str(caught.value)
    )
    assert version(reader, "a") == "1"


def test_a_compact_store_cannot_hand_out_its_objects_themselves() -> None:
    with pytest.raises(ValueError, match="copy_on_read=False does not apply"):
        store("pods", compact=True, copy_on_read=False)


def test_a_compact_store_fed_by_a_watch_over_http_is_ready_and_follows_it() -> None:
    reader, writer = store("configmaps", compact=True)
    late_seen = threading.Event()
    seen: list[Object] = []

    def on_next(obj: Object) -> None:
        seen.append(obj)
        if obj["metadata"]["name"] == "late":
            late_seen.set()  # reflect applied it before passing it on

    with ApiServer() as srv:
        for i in range(30):
            srv.create("configmaps", {"metadata": {"name": f"cm{i}"}}, namespace="default")
        api = Api(srv.client(), "configmaps", namespace="default")
        subscription = (
            watcher(api, Config(page_size=7))
            .pipe(reflect(writer), applied_objects())
            .subscribe(on_next)
        )
        try:
            reader.wait_until_ready(20)
            assert len(reader) == 30
            late = {"metadata": {"name": "late"}, "data": {"k": "v"}}
            srv.create("configmaps", late, namespace="default")
            assert late_seen.wait(20), "the watch did not deliver the new configmap"
            got = reader.get("late", "default")
            assert got is not None and got["data"] == {"k": "v"} and got == seen[-1]
            assert got is not seen[-1], "the stream's object is not what the store holds"
        finally:
            subscription.dispose()
