"""A watch line decoded with the parts its store holds: always what ``orjson.loads`` gives.

``UnchangedParts`` is fed hostile lines (``"spec":{`` in strings, nested and repeated ``spec``
keys, field sets inside a spec, other encodings, a held spec changed since) and random
histories, and each decode is
compared with ``orjson.loads`` of the same line, over a dict standing for the store's
objects; the tests over HTTP show which pipelines reuse (``reflect()`` straight after a
``watcher()``) and which do not, with real stores.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from reactivex import Observable

from benchmarks.workload import make_pod, modified
from rxkube import applied_objects, modify, reflect, reflect_shared, store, watcher
from rxkube._object_ref import Key
from rxkube._unchanged_parts import UnchangedParts
from rxkube.client import Api, Client
from rxkube.dispatcher import store_shared
from rxkube.events import Apply, InitApply
from rxkube.protocol import Config, WatchMachine
from rxkube.testing import ApiServer
from tests.waiting import Sink


class Held:
    """What a store holds, by key, as a watch line's decoding changes it."""

    def __init__(self) -> None:
        self.objects: dict[Key, Any] = {}
        self.reuse = UnchangedParts(self.held_of)

    def held_of(self, key: Key) -> Any:
        return self.objects.get(key)

    def decode(self, data: bytes) -> Any:
        """``decode(data)``, checked against ``orjson.loads`` (values and their types),
        then applied as a store applies it."""
        got = self.reuse.decode(data)
        expected = orjson.loads(data)
        assert got == expected
        assert orjson.dumps(got) == orjson.dumps(expected)
        obj = got.get("object") if isinstance(got, dict) else None
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(meta, dict) and isinstance(meta.get("name"), str):
            key = (meta.get("namespace") or None, meta["name"])
            if got.get("type") == "DELETED":
                self.objects.pop(key, None)
            else:
                self.objects[key] = obj
        return got


def line(kind: str, obj: Any) -> bytes:
    return orjson.dumps({"type": kind, "object": obj})


def entry(manager: str, time: str, *fields: str) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": "Update",
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {f"f:{field}": {} for field in fields}},
    }


def pod(name: str = "p", namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "u",
            "resourceVersion": "1",
            "managedFields": [entry("kubectl", "t0", "containers"), entry("kubelet", "t0", "x")],
        },
        "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec},
        "status": {"phase": "Pending"},
    }


def field_sets(decoded: Any) -> list[Any]:
    return [e["fieldsV1"] for e in decoded["object"]["metadata"]["managedFields"]]


def test_the_field_sets_held_are_reused_whatever_else_their_entries_changed() -> None:
    held = Held()
    first = field_sets(held.decode(line("ADDED", pod())))
    later = pod()
    later["metadata"]["managedFields"][1]["time"] = "t1"  # the writer's entry, rewritten
    second = field_sets(held.decode(line("MODIFIED", later)))
    assert second[0] is first[0] and second[1] is first[1]
    later["metadata"]["managedFields"][1] = entry("kubelet", "t2", "x", "y")
    third = field_sets(held.decode(line("MODIFIED", later)))
    assert third[0] is first[0] and third[1] is not first[1]
    later["metadata"]["managedFields"].insert(0, entry("other", "t3", "z"))
    # A new writer's entry first: the others moved (kube-apiserver orders them by time).
    fourth = field_sets(held.decode(line("MODIFIED", later)))
    assert fourth[1] is first[0] and fourth[2] is third[1]
    assert fourth[0] == {"f:spec": {"f:z": {}}}


def test_a_new_writers_entry_last_leaves_the_others_reused() -> None:
    held = Held()
    first = field_sets(held.decode(line("ADDED", pod())))
    later = pod()
    later["metadata"]["managedFields"].append(entry("scheduler", "t1", "nodeName"))
    second = field_sets(held.decode(line("MODIFIED", later)))
    assert second[0] is first[0] and second[1] is first[1]
    assert second[2] == {"f:spec": {"f:nodeName": {}}}
    third = field_sets(held.decode(line("MODIFIED", later)))
    assert [a is b for a, b in zip(third, second, strict=True)] == [True, True, True]


def test_a_spec_key_inside_a_field_set_is_not_taken_for_the_spec() -> None:
    """The first ``"spec":{`` of the line is inside a held field set that encodes the held
    spec too: each would be reused, one inside the other, so the line is decoded whole."""
    held = Held()
    obj = pod()
    obj["metadata"]["managedFields"][0]["fieldsV1"] = {"spec": obj["spec"]}
    held.decode(line("ADDED", obj))
    again = held.decode(line("MODIFIED", obj))
    assert again["object"]["metadata"]["managedFields"][0]["fieldsV1"] == {"spec": obj["spec"]}


def test_an_unchanged_spec_is_the_one_held_and_a_changed_one_is_new() -> None:
    held = Held()
    first = held.decode(line("ADDED", pod()))
    later = pod()
    later["status"]["phase"] = "Running"
    second = held.decode(line("MODIFIED", later))
    assert second["object"]["spec"] is first["object"]["spec"]
    assert second["object"]["status"] == {"phase": "Running"}
    changed = held.decode(line("MODIFIED", pod(nodeName="n1")))
    assert changed["object"]["spec"] is not first["object"]["spec"]
    again = held.decode(line("MODIFIED", pod(nodeName="n1")))
    assert again["object"]["spec"] is changed["object"]["spec"]


def test_each_object_is_given_the_spec_held_for_it() -> None:
    held = Held()
    a = held.decode(line("ADDED", pod("a")))
    b = held.decode(line("ADDED", pod("a", "other", nodeName="n")))
    cluster = pod("a")
    del cluster["metadata"]["namespace"]
    c = held.decode(line("ADDED", cluster))
    assert held.decode(line("MODIFIED", pod("a")))["object"]["spec"] is a["object"]["spec"]
    again = held.decode(line("MODIFIED", pod("a", "other", nodeName="n")))
    assert again["object"]["spec"] is b["object"]["spec"]
    assert held.decode(line("MODIFIED", cluster))["object"]["spec"] is c["object"]["spec"]


def test_an_object_no_longer_held_is_decoded_anew() -> None:
    held = Held()
    first = held.decode(line("ADDED", pod()))
    held.decode(line("DELETED", pod()))
    again = held.decode(line("ADDED", pod()))
    assert again["object"]["spec"] is not first["object"]["spec"]


def test_a_held_spec_changed_since_is_not_handed_out() -> None:
    held = Held()
    first = held.decode(line("ADDED", pod()))
    first["object"]["spec"]["containers"][0]["image"] = "changed"
    second = held.decode(line("MODIFIED", pod()))
    assert second["object"]["spec"]["containers"][0]["image"] == "nginx"
    second["object"]["spec"]["when"] = object()  # not JSON at all
    assert held.decode(line("MODIFIED", pod()))["object"]["spec"] == pod()["spec"]


HOSTILE: list[bytes] = [
    # a field set's bytes inside the spec, and a "fieldsV1" in a string
    b'{"type":"MODIFIED","object":{"metadata":{"name":"p","managedFields":[{"manager":"kubectl",'
    b'"fieldsV1":{"f:spec":{"f:containers":{}}}}],"annotations":{"a":"\\"fieldsV1\\":{"}},'
    b'"spec":{"fieldsV1":{"f:spec":{"f:containers":{}}}}}}',
    b'{"type":"MODIFIED","object":{"metadata":{"name":"p"},"spec":{"x":1,'
    b'"fieldsV1":{"f:spec":{"f:containers":{}}}}}}',
    # "spec":{ inside a string, after an escaped quote
    b'{"type":"MODIFIED","object":{"metadata":{"name":"p","uid":"u-1","annotations":'
    b'{"a":"x\\"spec\\":{\\"containers\\":[]}"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}',
    # a key ending in spec, whose value is an object, before the real spec
    b'{"type":"MODIFIED","object":{"metadata":{"name":"p","uid":"u-1","labels":{}},'
    b'"x\\"spec":{"containers":[{"name":"c","image":"nginx"}]},"spec":{"other":1}}}',
    # a nested spec before the object's own
    b'{"type":"MODIFIED","object":{"metadata":{"name":"p","uid":"u-1"},"status":'
    b'{"spec":{"containers":[{"name":"c","image":"nginx"}]}},"spec":{"containers":[]}}}',
    # two spec keys: the last one counts
    b'{"type":"MODIFIED","object":{"metadata":{"name":"p","uid":"u-1"},'
    b'"spec":{"containers":[{"name":"c","image":"nginx"}]},"spec":{"nodeName":"n"}}}',
    # the spec of another member than "object"
    b'{"type":"MODIFIED","other":{"metadata":{"name":"p","uid":"u-1"},'
    b'"spec":{"containers":[{"name":"c","image":"nginx"}]}},"object":{"spec":{}}}',
    # two objects: the last one counts
    b'{"type":"MODIFIED","object":{"metadata":{"name":"p","uid":"u-1"},'
    b'"spec":{"containers":[{"name":"c","image":"nginx"}]}},"object":{"spec":{"a":1}}}',
    # the same spec, encoded otherwise
    b'{"type":"MODIFIED","object":{"metadata":{"name":"p","uid":"u-1"},'
    b'"spec":{"containers":[{"name":"c","image":"ngin\\u0078"}]}}}',
    b'{"type":"MODIFIED","object":{"metadata":{"name":"p","uid":"u-1"},'
    b'"spec":{"containers":[{"name":"c","image":"nginx"}] }}}',
    # the same bytes, then more members of the spec's object... as a longer spec
    b'{"type":"MODIFIED","object":{"metadata":{"name":"p","uid":"u-1"},'
    b'"spec":{"containers":[{"name":"c","image":"nginx"}],"nodeName":"n"}}}',
    # a spec that is not an object, and a line that is not one
    b'{"type":"MODIFIED","object":{"metadata":{"name":"p","uid":"u-1"},"spec":"x"}}',
    b'[{"type":"MODIFIED","object":{"metadata":{"name":"p","uid":"u-1"},'
    b'"spec":{"containers":[{"name":"c","image":"nginx"}]}}}]',
    b'{"type":"MODIFIED","object":[{"metadata":{"name":"p","uid":"u-1"},'
    b'"spec":{"containers":[{"name":"c","image":"nginx"}]}}]}',
    # no name, no uid, non-ASCII around the spec
    b'{"type":"MODIFIED","object":{"spec":{"containers":[{"name":"c","image":"nginx"}]}}}',
    '{"type":"MODIFIED","object":{"metadata":{"name":"p","uid":"u-1","annotations":{"é":"ü"}},'
    '"spec":{"containers":[{"name":"c","image":"nginx"}]},"status":{"m":"ñ"}}}'.encode(),
]


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_line_after_a_held_spec_decodes_as_loads_does(hostile: bytes) -> None:
    held = Held()
    plain = pod()
    del plain["metadata"]["namespace"]  # as the hostile lines' object: the same key
    held.decode(line("ADDED", plain))
    held.decode(hostile)
    held.decode(line("MODIFIED", plain))
    held.decode(hostile)


def test_a_line_that_is_not_json_is_refused_as_loads_refuses_it() -> None:
    held = Held()
    held.decode(line("ADDED", pod()))
    good = line("MODIFIED", pod())
    for bad in (good[:-1], good + b"x", good.replace(b'"status"', b'"status'), b""):
        with pytest.raises(orjson.JSONDecodeError):
            held.reuse.decode(bad)


def histories(seed: int) -> Iterator[bytes]:
    """Watch lines of a few objects changing at random: spec, status, deletes, recreation
    under the same name, specs turned into other values and lines given other spacing."""
    rng = random.Random(seed)
    objects: dict[str, dict[str, Any]] = {}
    for _ in range(400):
        name = f"p{rng.randrange(6)}"
        obj = objects.get(name)
        if obj is None:
            obj = objects[name] = pod(name, nodeName=rng.choice(["a", "b"]))
            yield line("ADDED", obj)
            continue
        roll = rng.random()
        if roll < 0.1:
            del objects[name]
            yield line("DELETED", obj)
            continue
        if roll < 0.3 and isinstance(obj["spec"], dict):
            obj["spec"]["nodeName"] = rng.choice(["a", "b", "ü", 'q"uote'])
        elif roll < 0.35:
            obj["spec"] = rng.choice([None, "x", [], {}, {"spec": {"a": 1}}])
        elif roll < 0.4 and not isinstance(obj["spec"], dict):
            obj["spec"] = {"containers": []}
        obj["status"]["phase"] = rng.choice(["Pending", "Running"])
        data = line("MODIFIED", obj)
        if rng.random() < 0.1:
            data = data.replace(b'"spec":', b'"spec": ')
        yield data


@pytest.mark.parametrize("seed", range(8))
def test_random_histories_decode_as_loads_does_and_reuse_the_unchanged(seed: int) -> None:
    held = Held()
    last: dict[str, Any] = {}
    reused = 0
    for data in histories(seed):
        got = held.decode(data)
        obj = got["object"]
        name = obj["metadata"]["name"]
        before = last.get(name)
        if before is not None and before is obj["spec"]:
            reused += 1
        last[name] = obj["spec"]
        if got["type"] == "DELETED":
            del last[name]
    assert reused > 50


def page(items: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(
        {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "9"},
            "items": items,
        }
    )


def listed(held: Held, body: bytes) -> list[dict[str, Any]]:
    """The objects of a list page, decoded as a watcher feeding ``held`` decodes it."""
    machine = WatchMachine(Config(), name="pods")
    machine.next_request()
    return [e.obj for e in machine.on_list(body, held.reuse) if isinstance(e, InitApply)]


def test_a_relisted_page_gives_unchanged_objects_the_specs_held_for_them() -> None:
    items = [make_pod(i) for i in range(4)]
    held = Held()
    first = listed(held, page(items))
    held.objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in first}
    items[1] = modified(items[1], 1)
    items[2]["spec"]["nodeName"] = "elsewhere"
    second = listed(held, page(items[:3]))
    assert [a["spec"] is b["spec"] for a, b in zip(first, second, strict=False)] == [
        True,
        True,
        False,
    ]
    assert second == items[:3]
    held.objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in second}
    for obj in second:  # and the watch lines after the swap reuse them
        assert held.decode(line("MODIFIED", modified(obj, 2)))["object"]["spec"] is obj["spec"]


def test_a_relisted_item_is_given_the_held_spec_only_where_its_own_spec_encodes_it() -> None:
    # The first "spec" of the item's bytes is a nested one that encodes the held spec:
    # the item's own spec, another one, is kept.
    held = Held()
    held.decode(line("ADDED", pod()))
    hostile = {
        "metadata": pod()["metadata"],
        "status": {"spec": pod()["spec"]},
        "spec": {"containers": []},
    }
    body = page([hostile])
    assert body.index(b'"status":{"spec"') < body.index(b'"spec":{"containers":[]}')
    [item] = listed(held, body)
    assert item["spec"] == {"containers": []}


# -- over HTTP: which pipelines reuse -------------------------------------------------------


@pytest.fixture
def pods(srv: ApiServer) -> Iterator[Api]:
    with Client(srv.url) as client:
        api = Api(client, "pods", namespace="default")
        api.create({"metadata": {"name": "a"}, "spec": pod()["spec"]})
        yield api


_relabels = itertools.count()


def specs_seen(source: Observable[Any], api: Api) -> list[Any]:
    """The spec objects of pod ``a``'s first two objects through ``source``: listed, then
    relabelled (its spec unchanged)."""
    sink = Sink()
    subscription = source.subscribe(sink.on_next, sink.on_error)
    label = str(next(_relabels))
    try:
        sink.wait_count(1)
        api.patch("a", {"metadata": {"labels": {"seen": label}}})
        sink.wait_count(2)
    finally:
        subscription.dispose()
    objects = [item.obj if isinstance(item, Apply | InitApply) else item for item in sink.items]
    assert objects[1]["metadata"]["labels"] == {"seen": label}
    assert objects[0]["spec"] == objects[1]["spec"]
    return [objects[0]["spec"], objects[1]["spec"]]


def test_reflect_straight_after_a_watcher_reuses_the_spec(pods: Api) -> None:
    reader, writer = store()
    first, second = specs_seen(watcher(pods).pipe(reflect(writer), applied_objects()), pods)
    assert first is second
    cached = reader.get("a", namespace="default")
    assert cached is not None and cached["spec"] == second


def test_reflect_shared_straight_after_a_watcher_reuses_the_spec(pods: Api) -> None:
    _, writer = store_shared(buffer_size=8)
    first, second = specs_seen(watcher(pods).pipe(reflect_shared(writer), applied_objects()), pods)
    assert first is second


def test_an_operator_between_the_watcher_and_reflect_gets_specs_of_its_own(pods: Api) -> None:
    _, writer = store()

    def touch(obj: dict[str, Any]) -> None:
        obj["spec"].setdefault("touched", 0)
        obj["spec"]["touched"] += 1

    source = watcher(pods).pipe(modify(touch), reflect(writer), applied_objects())
    first, second = specs_seen(source, pods)
    assert first is not second
    assert first["touched"] == second["touched"] == 1


def test_a_compact_store_and_a_bare_watcher_get_specs_of_their_own(pods: Api) -> None:
    _, writer = store(compact=True)
    first, second = specs_seen(watcher(pods).pipe(reflect(writer), applied_objects()), pods)
    assert first is not second
    first, second = specs_seen(watcher(pods).pipe(applied_objects()), pods)
    assert first is not second


def test_a_second_subscription_relisting_into_the_store_reuses_what_it_holds(pods: Api) -> None:
    _, writer = store()
    first, _ = specs_seen(watcher(pods).pipe(reflect(writer), applied_objects()), pods)
    listed_again, relabelled = specs_seen(
        watcher(pods).pipe(reflect(writer), applied_objects()), pods
    )
    assert listed_again is first  # the relist's item was given the store's spec
    assert relabelled is first


def test_a_line_is_given_the_parts_of_its_own_object_only() -> None:
    # A label called "name" before the object's own name points the look-up elsewhere.
    held = Held()
    other = held.decode(line("ADDED", pod("y")))
    mislead = {"metadata": {"labels": {"name": "y"}, **pod("x")["metadata"]}, "spec": pod()["spec"]}
    got = held.decode(line("ADDED", mislead))
    assert got["object"]["spec"] is not other["object"]["spec"]
    again = held.decode(line("MODIFIED", mislead))
    assert again["object"]["spec"] is not other["object"]["spec"]


def test_a_custom_resource_with_its_keys_sorted_has_its_parts_reused() -> None:
    # As Go encodes an unstructured object: managedFields (and apiVersion) before name.
    held = Held()
    widget: dict[str, Any] = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {
            "managedFields": [entry("kubectl", "t0", "size")],
            "name": "w",
            "namespace": "default",
        },
        "spec": {"size": 1},
    }
    first = held.decode(line("ADDED", widget))
    widget["metadata"]["managedFields"][0]["time"] = "t1"
    second = held.decode(line("MODIFIED", widget))
    assert second["object"]["spec"] is first["object"]["spec"]
    assert field_sets(second)[0] is field_sets(first)[0]
