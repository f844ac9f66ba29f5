"""What a store keeps in memory, over HTTP: relists that reuse unchanged objects, compact
encodings held at their size, and no list page kept alive after the list."""

from __future__ import annotations

import datetime
import functools
import gc
import queue
import subprocess
import sys
import threading
import tracemalloc
import weakref
from pathlib import Path
from typing import Any

import orjson
import pytest

from rxkube import ObjectRef, Store, _cache, reflect, reflect_shared, store, store_shared, watcher
from rxkube.client import Api, Client
from rxkube.events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from rxkube.operators import applied_objects, modify
from rxkube.protocol import Config
from rxkube.testing import ApiServer
from tests.waiting import eventually

TIMEOUT = 30.0


def _configmap(name: str, value: str = "v") -> Object:
    return {"metadata": {"name": name, "labels": {"app": "web"}}, "data": {"key": value}}


@pytest.mark.parametrize("share_subtrees", [False, True])
def test_a_relist_over_http_keeps_unchanged_objects_and_swaps_everything_at_once(
    share_subtrees: bool,
) -> None:
    reader, writer = store("configmaps", copy_on_read=False, share_subtrees=share_subtrees)
    with ApiServer() as srv:
        for i in range(12):
            srv.create("configmaps", _configmap(f"cm{i}"), namespace="default")
        api = Api(srv.client(), "configmaps", namespace="default")
        first = watcher(api, Config(page_size=5)).pipe(reflect(writer)).subscribe()
        try:
            reader.wait_until_ready(TIMEOUT)
        finally:
            first.dispose()
        cached = {o["metadata"]["name"]: o for o in reader.state()}
        assert len(cached) == 12
        srv.replace("configmaps", {**_configmap("cm3", "changed")}, namespace="default")
        srv.delete("configmaps", "cm7", namespace="default")
        srv.create("configmaps", _configmap("new"), namespace="default")

        # A second pipeline on the same writer lists again: a relist into a ready store.
        # Each relist event reaches this observer after the writer applied it.
        seen_during: list[tuple[int, str | None, bool]] = []
        swapped = threading.Event()

        def on_event(event: Event) -> None:
            if isinstance(event, InitApply):
                cm3 = reader.get("cm3", "default")
                seen_during.append(
                    (
                        len(reader),
                        None if cm3 is None else cm3["data"]["key"],
                        reader.get("cm7", "default") is not None
                        and reader.get("new", "default") is None,
                    )
                )
            elif isinstance(event, InitDone):
                swapped.set()

        second = watcher(api, Config(page_size=5)).pipe(reflect(writer)).subscribe(on_event)
        try:
            assert swapped.wait(TIMEOUT), "the relist did not complete"
        finally:
            second.dispose()

    assert len(seen_during) == 12
    assert all(seen == (12, "v", True) for seen in seen_during), (
        f"readers see the complete old state until the swap: {seen_during}"
    )
    now = {o["metadata"]["name"]: o for o in reader.state()}
    assert sorted(now) == sorted([*(f"cm{i}" for i in range(12) if i != 7), "new"])
    unchanged = [name for name in now if name in cached and name != "cm3"]
    assert len(unchanged) == 10
    assert all(now[name] is cached[name] for name in unchanged), (
        "a listed object with the cached uid and resourceVersion is the cached object"
    )
    assert now["cm3"] is not cached["cm3"] and now["cm3"]["data"] == {"key": "changed"}


@pytest.mark.parametrize(("before", "after"), [("one", "two"), (1, True), (1, 1.0), (0, False)])
def test_a_relist_takes_an_object_that_comes_otherwise_at_the_same_version(
    before: Any, after: Any
) -> None:
    # The server's objects do not change, but what reaches the writer does: the modify()
    # function changed between two runs on one writer, as it does when a CRD's schema
    # gains a default, or its conversion changes, and the server serves a new body at the
    # old resourceVersion. Values that == takes for one another (1, 1.0, True) differ too.
    reader, writer = store("configmaps", copy_on_read=False)
    tag = {"value": before}

    def tagged(obj: Object) -> None:
        obj["data"]["tag"] = tag["value"]

    with ApiServer() as srv:
        for i in range(6):
            srv.create("configmaps", _configmap(f"cm{i}"), namespace="default")
        api = Api(srv.client(), "configmaps", namespace="default")
        swaps: queue.Queue[Event] = queue.Queue()

        def on_event(event: Event) -> None:
            if isinstance(event, InitDone):
                swaps.put(event)

        for value in (before, after):
            tag["value"] = value
            run = watcher(api, Config(page_size=4)).pipe(modify(tagged), reflect(writer))
            subscription = run.subscribe(on_event)
            try:
                swaps.get(timeout=TIMEOUT)  # raises queue.Empty if the list never completes
            finally:
                subscription.dispose()
    held = [o["data"]["tag"] for o in reader.state()]
    assert len(held) == 6
    assert all(type(v) is type(after) and v == after for v in held), (
        f"after the relist the store holds {held!r}, not what the pipeline now gives: {after!r}"
    )


def test_a_compact_store_holds_each_encoding_at_its_own_size() -> None:
    # ~4.3 KB each: orjson's output buffer for such an object has grown to 8 KB.
    blob = "x" * 4300
    reader, writer = store("configmaps", compact=True)
    # What the writer allocated and still holds (the test server runs in this process).
    by_writer = [tracemalloc.Filter(True, _cache.__file__, all_frames=True)]
    with ApiServer() as srv:
        for i in range(200):
            srv.create("configmaps", _configmap(f"cm{i:03}", blob), namespace="default")
        api = Api(srv.client(), "configmaps", namespace="default")
        tracemalloc.start(50)
        try:
            subscription = watcher(api, Config(page_size=50)).pipe(reflect(writer)).subscribe()
            try:
                reader.wait_until_ready(TIMEOUT)
                gc.collect()
                snapshot = tracemalloc.take_snapshot().filter_traces(by_writer)
            finally:
                subscription.dispose()
        finally:
            tracemalloc.stop()
    held = sum(stat.size for stat in snapshot.statistics("filename"))
    encodings = sum(len(orjson.dumps(obj)) for obj in reader.state())
    assert len(reader) == 200 and encodings > 200 * 4300
    assert held < 1.1 * encodings, (held, encodings)


# The test server in a process of its own, so that what this process traces is the
# client's alone: it serves pods as a ReplicaSet's look (about 4 KB of JSON each), and
# for each line on its stdin ends every watch and answers the next one 410 Gone.
_SERVER = """
import sys
from rxkube.testing import ApiServer

def pod(i):
    name = f"web-7d9f8b6c5d-{i:05}"
    env = [{"name": f"SETTING_{k}", "value": f"value-{i}-{k}"} for k in range(12)]
    mounts = [{"name": f"vol-{k}", "mountPath": f"/etc/app/{k}", "readOnly": True}
              for k in range(3)]
    container = {
        "name": "web", "image": f"registry.example.com/web:v1.{i % 7}", "env": env,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}], "volumeMounts": mounts,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"cpu": "500m", "memory": "256Mi"}},
    }
    conditions = [
        {"type": t, "status": "True", "lastTransitionTime": "2026-11-02T08:14:00Z"}
        for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    return {
        "metadata": {
            "name": name,
            "labels": {"app": "web", "pod-template-hash": "7d9f8b6c5d", "tier": "frontend"},
            "annotations": {"example.com/revision": str(i % 9), "example.com/owner": "team-a"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": "web-7d9f8b6c5d", "uid": f"rs-{i % 3}",
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {"containers": [container], "nodeName": f"node-{i % 40}",
                 "volumes": [{"name": f"vol-{k}", "configMap": {"name": f"cm-{k}"}}
                             for k in range(3)]},
        "status": {"phase": "Running", "podIP": f"10.1.{i // 250}.{i % 250}",
                   "conditions": conditions,
                   "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0,
                                          "image": container["image"],
                                          "containerID": f"containerd://{i:064x}"}]},
    }

with ApiServer() as srv:
    for i in range(int(sys.argv[1])):
        srv.create("pods", pod(i), namespace="default")
    srv.write_kubeconfig(sys.argv[2])
    print("serving", flush=True)
    for _ in sys.stdin:
        srv.faults.fail_requests(410, count=1, verb="watch")
        srv.faults.close_watches()
        print("relisting", flush=True)
"""


class _ServerProcess:
    """``_SERVER`` in a child process, read line by line with a deadline."""

    def __init__(
        self, pods: int, kubeconfig: str, script: str = _SERVER, args: list[str] | None = None
    ) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-c", script, *(args or [str(pods), kubeconfig])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._lines.put(line.strip())
        self._lines.put("(ended)")

    def expect(self, line: str) -> None:
        got = self._lines.get(timeout=TIMEOUT)
        assert got == line, f"the server process said {got!r}, not {line!r}"

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(f"{line}\n")
        self.popen.stdin.flush()

    def relist(self) -> None:
        self.send("relist")
        self.expect("relisting")

    def stop(self) -> None:
        self.popen.kill()
        self.popen.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        for pipe in (self.popen.stdin, self.popen.stdout):
            if pipe is not None:
                pipe.close()


def test_a_relist_of_unchanged_objects_holds_little_more_than_the_store(tmp_path: Path) -> None:
    # 1,000 pods in pages of 500: a page decoded whole held orjson's parse buffer and the
    # decoded page besides the store, 2.7 times the store; decoded one item at a time, each
    # unchanged one dropped for the cached one, what the relist adds is about a page's bytes.
    kubeconfig = str(tmp_path / "kubeconfig")
    server = _ServerProcess(1000, kubeconfig)
    try:
        server.expect("serving")
        listed = threading.Semaphore(0)

        def on_event(event: Event) -> None:
            if isinstance(event, InitDone):
                listed.release()

        reader, writer = store("pods")
        api = Api(Client.from_kubeconfig(kubeconfig), "pods", namespace="default")
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            subscription = (
                watcher(api, Config(page_size=500)).pipe(reflect(writer)).subscribe(on_event)
            )
            try:
                assert listed.acquire(timeout=TIMEOUT), "the list did not complete"
                assert len(reader) == 1000
                gc.collect()
                steady = tracemalloc.get_traced_memory()[0] - base
                tracemalloc.reset_peak()
                server.relist()
                assert listed.acquire(timeout=TIMEOUT), "the relist did not complete"
                peak = tracemalloc.get_traced_memory()[1] - base
            finally:
                subscription.dispose()
        finally:
            tracemalloc.stop()
    finally:
        server.stop()
    assert steady > 1000 * 10_000, f"the store holds {steady} bytes for 1,000 pods"
    assert peak <= 1.2 * steady, f"the relist peaked at {peak / steady:.2f}x the steady store"


class _Tag:
    """A marker put into each listed object, to see when the object is freed."""


def test_objects_the_watch_replaced_are_freed_and_no_list_page_is_held() -> None:
    tags: list[weakref.ref[_Tag]] = []

    def tag(obj: dict[str, Any]) -> None:
        if obj["data"]["key"] == "v":  # the listed version
            marker = _Tag()
            tags.append(weakref.ref(marker))
            obj["metadata"]["tag"] = marker

    reader, writer = store("configmaps", copy_on_read=False)
    replaced = threading.Event()

    def on_next(obj: Object) -> None:
        if sum(o["data"]["key"] == "changed" for o in reader.state()) == 10:
            replaced.set()

    with ApiServer() as srv:
        for i in range(10):
            srv.create("configmaps", _configmap(f"cm{i}"), namespace="default")
        api = Api(srv.client(), "configmaps", namespace="default")
        subscription = (
            watcher(api, Config(page_size=4))
            .pipe(modify(tag), reflect(writer), applied_objects())
            .subscribe(on_next)
        )
        try:
            reader.wait_until_ready(TIMEOUT)
            assert len(tags) == 10
            for i in range(10):
                srv.replace("configmaps", _configmap(f"cm{i}", "changed"), namespace="default")
            assert replaced.wait(TIMEOUT), "the watch did not deliver every change"
            gc.collect()
            # Watching still: the last page (2 objects) must not outlive the list.
            alive = [ref for ref in tags if ref() is not None]
            assert alive == [], f"{len(alive)} replaced objects are still held"
        finally:
            subscription.dispose()


def _pod(name: str, image: str = "nginx:1.27") -> Object:
    return {
        "metadata": {"name": name, "labels": {"app": "web", "tier": "frontend"}},
        "spec": {
            "containers": [
                {"name": "web", "image": image, "ports": [{"containerPort": 80}]},
            ],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}],
        },
    }


def _watched_store(srv: ApiServer, **options: Any) -> tuple[Any, Any, threading.Event]:
    """A pods store fed over HTTP; the event is set whenever pod ``a`` runs ``nginx:1.28``."""
    reader, writer = store("pods", copy_on_read=False, **options)
    updated = threading.Event()

    def on_next(obj: Object) -> None:
        if obj["spec"]["containers"][0]["image"] == "nginx:1.28":
            updated.set()

    api = Api(srv.client(), "pods", namespace="default")
    subscription = (
        watcher(api, Config(page_size=2))
        .pipe(reflect(writer), applied_objects())
        .subscribe(on_next)
    )
    return reader, subscription, updated


def test_cached_objects_share_their_equal_parts_and_an_update_shares_what_it_kept() -> None:
    with ApiServer() as srv:
        for name in ("a", "b", "c"):
            srv.create("pods", _pod(name), namespace="default")
        reader, subscription, updated = _watched_store(srv, share_subtrees=True)
        try:
            reader.wait_until_ready(TIMEOUT)
            a, b, c = (reader.get(name, "default") for name in "abc")
            assert a is not None and b is not None and c is not None
            assert a["metadata"]["labels"] is b["metadata"]["labels"] is c["metadata"]["labels"]
            assert a["spec"]["containers"] is b["spec"]["containers"]
            assert a["spec"]["tolerations"] is c["spec"]["tolerations"]
            assert a["metadata"] is not b["metadata"], "what names an object is its own"

            srv.replace("pods", _pod("a", "nginx:1.28"), namespace="default")
            assert updated.wait(TIMEOUT), "the watch did not deliver the update"
            new = reader.get("a", "default")
            assert new is not None and new is not a
            assert new["spec"]["containers"][0]["image"] == "nginx:1.28"
            assert b["spec"]["containers"][0]["image"] == "nginx:1.27", "b's share is untouched"
            assert new["metadata"]["labels"] is a["metadata"]["labels"]
            assert new["spec"]["tolerations"] is a["spec"]["tolerations"]
            assert new["spec"]["containers"][0]["ports"] is a["spec"]["containers"][0]["ports"]
        finally:
            subscription.dispose()


def test_reads_of_a_store_sharing_parts_are_copies_of_their_own() -> None:
    with ApiServer() as srv:
        for name in ("a", "b"):
            srv.create("pods", _pod(name), namespace="default")
        reader, writer = store("pods", share_subtrees=True)
        api = Api(srv.client(), "pods", namespace="default")
        subscription = watcher(api).pipe(reflect(writer)).subscribe()
        try:
            reader.wait_until_ready(TIMEOUT)
            got = reader.get("a", "default")
            assert got is not None
            got["metadata"]["labels"]["app"] = "changed"
            got["spec"]["containers"][0]["ports"].append({"containerPort": 443})
            for name in ("a", "b"):
                kept = reader.get(name, "default")
                assert kept is not None
                assert kept["metadata"]["labels"] == {"app": "web", "tier": "frontend"}
                assert kept["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]
        finally:
            subscription.dispose()


def _held(reader: Store, name: str) -> Object:
    """The object the store holds itself (not a copy)."""
    return next(o for o in reader.state(copy=False) if o["metadata"]["name"] == name)


def _field_sets(obj: Object) -> list[Any]:
    return [entry["fieldsV1"] for entry in obj["metadata"]["managedFields"]]


def test_a_store_can_share_the_parts_of_managed_fields_only() -> None:
    with ApiServer() as srv:
        pods = Api(srv.client(), "pods", namespace="default")
        for name in ("a", "b", "c"):
            pods.create(_pod(name))  # over HTTP: the server records managedFields
        reader, subscription, updated = _watched_store(srv, share_subtrees="managedFields")
        try:
            reader.wait_until_ready(TIMEOUT)
            a, b, c = (reader.get(name, "default") for name in "abc")
            assert a is not None and b is not None and c is not None
            fields = _field_sets(a)
            assert fields and all(
                x is y is z for x, y, z in zip(fields, _field_sets(b), _field_sets(c), strict=True)
            )
            assert a["metadata"]["labels"] == b["metadata"]["labels"]
            assert a["metadata"]["labels"] is not b["metadata"]["labels"]
            assert a["spec"]["tolerations"] is not b["spec"]["tolerations"]

            # A watch's update keeps the field sets it did not change: the store stays
            # as small however often its objects change. b and c keep theirs shared.
            pods.replace(_pod("a", "nginx:1.28"))
            assert updated.wait(TIMEOUT), "the watch did not deliver the update"
            new = _held(reader, "a")
            assert new["spec"]["containers"][0]["image"] == "nginx:1.28"
            assert _field_sets(new) == fields
            assert all(x is y for x, y in zip(_field_sets(new), fields, strict=True))
            assert all(x is y for x, y in zip(_field_sets(_held(reader, "b")), fields, strict=True))
        finally:
            subscription.dispose()


def test_a_changed_field_set_is_held_as_sent_and_the_others_keep_theirs() -> None:
    reader, writer = store("configmaps", copy_on_read=False, share_subtrees="managedFields")

    def configmap(name: str, fields: dict[str, Any], manager: str = "kubectl") -> Object:
        entry = {"manager": manager, "operation": "Update", "time": "t", "fieldsV1": fields}
        return {"metadata": {"name": name, "managedFields": [entry]}, "data": {"k": name}}

    old: dict[str, Any] = {"f:data": {".": {}, "f:k": {}}}
    for name in ("a", "b"):
        writer.apply(Apply(configmap(name, orjson.loads(orjson.dumps(old)))))
    held_a, held_b = reader.get("a"), reader.get("b")
    assert held_a is not None and held_b is not None
    assert _field_sets(held_a)[0] is _field_sets(held_b)[0]

    changed: dict[str, Any] = {"f:data": {".": {}, "f:k": {}, "f:other": {}}}
    writer.apply(Apply(configmap("a", orjson.loads(orjson.dumps(changed)))))
    now_a, now_b = reader.get("a"), reader.get("b")
    assert now_a is not None and now_b is not None
    assert _field_sets(now_a) == [changed]
    assert _field_sets(now_b) == [old] and _field_sets(now_b)[0] is _field_sets(held_b)[0]
    # Objects created with the changed set share the one the update brought.
    for name in ("c", "d"):
        writer.apply(Apply(configmap(name, orjson.loads(orjson.dumps(changed)), manager="m")))
    now_c, now_d = reader.get("c"), reader.get("d")
    assert now_c is not None and now_d is not None
    assert _field_sets(now_c)[0] is _field_sets(now_d)[0] is _field_sets(now_a)[0]


def test_an_update_keeps_the_entries_and_field_sets_it_did_not_change() -> None:
    # As a real server writes them: the writer's entry gets a new time, the others stay.
    reader, writer = store("configmaps", copy_on_read=False)

    def configmap(kubelet_time: str, data: str = "v") -> Object:
        entries = [
            {"manager": "kubectl", "operation": "Update", "time": "t0",
             "fieldsV1": {"f:data": {".": {}, "f:k": {}}}},
            {"manager": "kubelet", "operation": "Update", "time": kubelet_time,
             "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:x": {}}}}},
        ]  # fmt: skip
        obj = {"metadata": {"name": "a", "managedFields": entries}, "data": {"k": data}}
        decoded: Object = orjson.loads(orjson.dumps(obj))  # decoded anew, as from the wire
        return decoded

    writer.apply(Apply(configmap("t1")))
    first = _held(reader, "a")["metadata"]["managedFields"]
    writer.apply(Apply(configmap("t2")))
    second = _held(reader, "a")["metadata"]["managedFields"]
    assert second is not first and second[1]["time"] == "t2"
    assert second[0] is first[0], "the unchanged entry is the one held before"
    assert second[1]["fieldsV1"] is first[1]["fieldsV1"], "and so is the unchanged field set"
    writer.apply(Apply(configmap("t2", data="w")))
    assert _held(reader, "a")["metadata"]["managedFields"] is second, "nothing changed there"
    assert _held(reader, "a")["data"] == {"k": "w"}


@pytest.mark.parametrize("relist", [False, True], ids=["watch", "relist"])
def test_a_store_sharing_every_part_holds_true_where_one_was(relist: bool) -> None:
    # 1 == True and 0 == False in Python: the parts kept from the previous version must
    # also encode alike, or the store would go on holding the old values.
    with ApiServer() as srv:
        widgets = srv.add_resource("example.com", "v1", "Widget", "widgets")
        api = Api(srv.client(), widgets, namespace="default")
        reader, writer = store("widgets", share_subtrees=True)
        srv.create(widgets, {"metadata": {"name": "w"}, "spec": {"on": 1, "n": [0], "f": 1.0}})
        subscription = watcher(api).pipe(reflect(writer)).subscribe()
        try:
            reader.wait_until_ready(TIMEOUT)
            if relist:
                srv.faults.fail_requests(410, count=1, verb="watch")
                srv.faults.close_watches()
            changed = srv.patch(widgets, "w", {"spec": {"on": True, "n": [False], "f": 1}})
            rv = changed["metadata"]["resourceVersion"]
            eventually(
                lambda: (reader.get("w", "default") or {})["metadata"]["resourceVersion"] == rv,
                "the change in the store",
            )
            stored = reader.get("w", "default")
            assert stored is not None
            assert orjson.dumps(stored["spec"]) == orjson.dumps(changed["spec"]), stored
        finally:
            subscription.dispose()


def test_managed_fields_of_any_shape_are_held_as_they_came() -> None:
    # Not what a server sends, but what modify() or a proxy may leave: nothing to share.
    shapes: list[Any] = [
        "text",
        [],
        ["entry"],
        [{"manager": "m"}],
        [{"fieldsV1": None}],
        [{"fieldsV1": {}}],
        [{"fieldsV1": ["f:a"]}],
        [{"fieldsV1": {"f:a": ({},)}}],
        [{"fieldsV1": {"f:a": [{}]}}],
    ]
    reader, writer = store("things", copy_on_read=False, share_subtrees="managedFields")
    for round_ in range(2):  # the second round updates each object (previous version)
        for i, shape in enumerate(shapes):
            obj = {"metadata": {"name": f"t{i}", "managedFields": shape}, "n": round_}
            writer.apply(Apply(orjson.loads(orjson.dumps(obj)) if i != 7 else obj))
    for i, shape in enumerate(shapes):
        held = reader.get(f"t{i}")
        assert held is not None
        got = held["metadata"]["managedFields"]
        assert got == shape and type(got) is type(shape), i
    tuple_set = reader.get("t7")
    list_set = reader.get("t8")
    assert tuple_set is not None and list_set is not None
    assert type(tuple_set["metadata"]["managedFields"][0]["fieldsV1"]["f:a"]) is tuple


def test_a_list_shares_the_field_sets_and_streams_the_objects_as_the_server_sent_them() -> None:
    with ApiServer() as srv:
        pods = Api(srv.client(), "pods", namespace="default")
        for name in ("a", "b", "c", "d", "e"):
            pods.create(_pod(name))
        # The watcher adds kind and apiVersion to list items, which lack them.
        sent = {o["metadata"]["name"]: o["metadata"] for o in pods.list()["items"]}
        reader, writer = store("pods", copy_on_read=False, share_subtrees="managedFields")
        streamed: list[Object] = []
        done = threading.Event()

        def on_event(event: Event) -> None:
            if isinstance(event, InitApply):
                streamed.append(event.obj)
            elif isinstance(event, InitDone):
                done.set()

        subscription = watcher(pods, Config(page_size=2)).pipe(reflect(writer)).subscribe(on_event)
        try:
            assert done.wait(TIMEOUT), "the list did not complete"
            assert {o["metadata"]["name"]: o["metadata"] for o in streamed} == sent
            assert {o["metadata"]["name"]: o["metadata"] for o in reader.state()} == sent
            first = _field_sets(streamed[0])
            for obj in streamed[1:]:
                assert all(x is y for x, y in zip(_field_sets(obj), first, strict=True))
        finally:
            subscription.dispose()


@pytest.mark.parametrize("shared", [False, True], ids=["store", "store_shared"])
def test_by_default_a_store_holds_the_parts_of_managed_fields_once(shared: bool) -> None:
    reader: Store
    with ApiServer() as srv:
        pods = Api(srv.client(), "pods", namespace="default")
        for name in ("a", "b"):
            pods.create(_pod(name))  # over HTTP: the server records managedFields
        reader, writer = store_shared(16) if shared else store("pods")
        operator = reflect_shared(writer) if shared else reflect(writer)
        subscription = watcher(pods).pipe(operator).subscribe()
        try:
            reader.wait_until_ready(TIMEOUT)
            a, b = (_held(reader, name) for name in "ab")
            assert a is not None and b is not None
            assert all(x is y for x, y in zip(_field_sets(a), _field_sets(b), strict=True))
            assert a["metadata"]["labels"] is not b["metadata"]["labels"]
            assert a["spec"] is not b["spec"]
        finally:
            subscription.dispose()


@pytest.mark.parametrize("shared", [False, True], ids=["store", "store_shared"])
def test_a_store_made_with_share_subtrees_false_holds_each_object_as_decoded(
    shared: bool,
) -> None:
    reader: Store
    with ApiServer() as srv:
        pods = Api(srv.client(), "pods", namespace="default")
        for name in ("a", "b"):
            pods.create(_pod(name))
        if shared:
            reader, writer = store_shared(16, share_subtrees=False)
            operator = reflect_shared(writer)
        else:
            reader, writer = store("pods", share_subtrees=False)
            operator = reflect(writer)
        subscription = watcher(pods).pipe(operator).subscribe()
        try:
            reader.wait_until_ready(TIMEOUT)
            a, b = (_held(reader, name) for name in "ab")
            assert a is not None and b is not None
            # The field sets, not the entries: two creates a second apart differ in time.
            assert _field_sets(a) == _field_sets(b)
            assert a["metadata"]["managedFields"] is not b["metadata"]["managedFields"]
            assert all(x is not y for x, y in zip(_field_sets(a), _field_sets(b), strict=True))
        finally:
            subscription.dispose()


def test_share_subtrees_takes_only_its_three_values() -> None:
    with pytest.raises(ValueError, match="share_subtrees must be True, False or 'managedFields'"):
        store("pods", share_subtrees="all")  # type: ignore[arg-type]


def test_parts_that_only_encode_alike_are_not_shared() -> None:
    # What modify() may put in: a tuple encodes as a list, a datetime as its text.
    stamp = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    reader, writer = store("things", copy_on_read=False, share_subtrees=True)
    variants: list[Any] = [[1, 2], (1, 2), [stamp], [stamp.isoformat()], [1], [True], [1.0]]
    for i, value in enumerate(variants):
        writer.apply(Apply({"metadata": {"name": f"t{i}"}, "spec": {"value": value}}))
    for i, value in enumerate(variants):
        held = reader.get(f"t{i}")
        assert held is not None
        got = held["spec"]["value"]
        assert got == value and type(got) is type(value) and type(got[0]) is type(value[0])


TYPE_CHANGES = [(1, True), (True, 1), (1, 1.0), (1.0, 1), (0, False)]
"""Values ``==`` takes for one: a part holding one equals the part holding the other."""


@pytest.mark.parametrize(("old", "new"), TYPE_CHANGES)
def test_an_update_changing_only_a_values_json_type_is_held_as_it_came(old: Any, new: Any) -> None:
    # Written by hand: the test server takes such a write for a no-op.
    reader, writer = store("things", copy_on_read=False, share_subtrees=True)
    for version, value in (("1", old), ("2", new)):
        obj = {"metadata": {"name": "t", "resourceVersion": version}, "spec": {"n": [value]}}
        writer.apply(Apply(obj))
    held = reader.get("t")
    assert held is not None
    got = held["spec"]["n"][0]
    assert got == new and type(got) is type(new), f"the store holds {got!r}"


@pytest.mark.parametrize(("old", "new"), TYPE_CHANGES)
def test_a_relist_changing_only_a_values_json_type_is_held_as_listed(old: Any, new: Any) -> None:
    reader, writer = store("things", copy_on_read=False, share_subtrees=True)
    for version, value in (("1", old), ("2", new)):
        writer.apply(Init())
        obj = {"metadata": {"name": "t", "resourceVersion": version}, "spec": {"n": [value]}}
        writer.apply(InitApply(obj))
        writer.apply(InitDone())
    held = reader.get("t")
    assert held is not None
    got = held["spec"]["n"][0]
    assert got == new and type(got) is type(new), f"the store holds {got!r}"


def test_the_parts_of_deleted_objects_are_let_go() -> None:
    reader, writer = store("things", copy_on_read=False, share_subtrees=True)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(50):
            writer.apply(
                Apply({"metadata": {"name": f"big{i}"}, "spec": {"blob": [f"{i}" * 40_000]}})
            )
        for i in range(50):
            writer.apply(Delete({"metadata": {"name": f"big{i}"}}))
        # Other objects come and go: the parts remembered move on to theirs.
        for i in range(3000):
            small = {"metadata": {"name": "small"}, "spec": {"n": [i]}}
            writer.apply(Apply(small))
            writer.apply(Delete(small))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(reader) == 0
    assert held < 50 * 40_000 / 4, held


def test_a_change_in_modify_or_to_a_read_copy_reaches_no_other_cached_object() -> None:
    # The two places the docs let a user change an object: a modify() before the store
    # (the object is still its own there) and what a read hands out (a copy).
    def stamp(obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if meta["name"] == "a" or obj["spec"]["containers"][0]["image"] == "nginx:1.28":
            meta["managedFields"][0]["fieldsV1"]["f:stamped"] = {}
            meta["managedFields"][0]["manager"] = "stamped"

    with ApiServer() as srv:
        pods = Api(srv.client(), "pods", namespace="default")
        for name in ("a", "b", "c"):
            pods.create(_pod(name))
        sent = {o["metadata"]["name"]: o["metadata"]["managedFields"] for o in pods.list()["items"]}
        reader, writer = store("pods")
        subscription = watcher(pods).pipe(modify(stamp), reflect(writer)).subscribe()
        try:
            reader.wait_until_ready(TIMEOUT)
            a, b, c = (_held(reader, name) for name in "abc")
            assert (
                "f:stamped" in _field_sets(a)[0]
                and a["metadata"]["managedFields"][0]["manager"] == "stamped"
            )
            assert b["metadata"]["managedFields"] == sent["b"]
            assert _field_sets(b)[0] is _field_sets(c)[0], "the unchanged sets are shared"

            copy = reader.get("b", "default")
            assert copy is not None
            copy["metadata"]["managedFields"][0]["fieldsV1"].clear()
            copy["metadata"]["managedFields"][0]["manager"] = "changed"
            copy["metadata"]["managedFields"].append({"manager": "extra"})
            for name in ("b", "c"):
                held = reader.get(name, "default")
                assert held is not None and held["metadata"]["managedFields"] == sent[name]

            # An update changed in modify() holds its own set; the one it shared stays.
            pods.replace(_pod("b", "nginx:1.28"))
            eventually(
                lambda: _held(reader, "b")["spec"]["containers"][0]["image"] == "nginx:1.28",
                "the update of b in the store",
            )
            new_b = _held(reader, "b")
            assert "f:stamped" in _field_sets(new_b)[0]
            assert _held(reader, "c")["metadata"]["managedFields"] == sent["c"]
            assert "f:stamped" not in _field_sets(c)[0]
        finally:
            subscription.dispose()


_CHURN_SERVER = """
import sys
from rxkube.testing import ApiServer

def pod(name, n):
    entry = {"manager": f"kubelet-{n:06}" + "x" * 2000, "operation": "Update",
             "apiVersion": "v1", "time": f"2026-11-02T08:{n % 60:02}:00Z",
             "fieldsType": "FieldsV1",
             "fieldsV1": {"f:status": {"f:phase": {}, "f:podIP": {}, "f:conditions": {}}}}
    return {"metadata": {"name": name, "managedFields": [entry]},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}}

with ApiServer() as srv:
    for i in range(200):
        srv.create("pods", pod(f"steady-{i}", i), namespace="default")
    srv.write_kubeconfig(sys.argv[1])
    print("serving", flush=True)
    n = 1000
    for line in sys.stdin:
        # Objects with field sets of their own come and go, others are replaced.
        for i in range(1500):
            n += 1
            srv.create("pods", pod(f"churn-{n}", n), namespace="default")
            srv.delete("pods", f"churn-{n}", namespace="default")
            srv.replace("pods", pod(f"steady-{i % 200}", n), namespace="default")
        srv.create("pods", pod(f"mark-{line.strip()}", 0), namespace="default")
        print("churned", flush=True)
"""


def test_the_parts_of_replaced_and_deleted_objects_are_let_go_under_churn(
    tmp_path: Path,
) -> None:
    # Each version carries a managedFields entry of its own (2 KB): what the writer's
    # table of recent parts holds must stay bounded by its generations, however many
    # versions go by (4,500 created, deleted or replaced per round).
    kubeconfig = str(tmp_path / "kubeconfig")
    server = _ServerProcess(0, kubeconfig, script=_CHURN_SERVER, args=[kubeconfig])
    try:
        server.expect("serving")
        reader, writer = store("pods")
        api = Api(Client.from_kubeconfig(kubeconfig), "pods", namespace="default")
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            subscription = watcher(api).pipe(reflect(writer)).subscribe()
            try:
                reader.wait_until_ready(TIMEOUT)
                held = []
                for round_ in range(4):
                    mark = f"mark-{round_}"
                    server.send(str(round_))
                    server.expect("churned")
                    eventually(
                        functools.partial(reader.__contains__, ObjectRef(mark, "default")),
                        f"churn round {round_} in the store",
                    )
                    gc.collect()
                    held.append(tracemalloc.get_traced_memory()[0] - base)
            finally:
                subscription.dispose()
        finally:
            tracemalloc.stop()
    finally:
        server.stop()
    assert len(reader) == 204
    # Unbounded, each round adds its 1,500 deleted objects' entries (4 MB measured); bounded,
    # what is held moves by up to a generation of the table (~1.4 MB) from round to round.
    growth = held[-1] - held[0]
    assert growth < 1_500 * 2_000, f"held {held}: grew {growth} bytes in three rounds"
