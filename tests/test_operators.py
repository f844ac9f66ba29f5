"""The Rx operators of rxkube.operators, fed with Subjects and virtual time."""

from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest
import reactivex
from reactivex import Observable
from reactivex.subject import Subject
from reactivex.testing import TestScheduler

from rxkube import ExponentialBackoff, predicates, reflect, store, watcher
from rxkube.client import Api
from rxkube.errors import DecodeError
from rxkube.events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from rxkube.operators import (
    applied_objects,
    backoff,
    metadata_only,
    modify,
    predicate_filter,
    touched_objects,
)
from rxkube.testing import ApiServer
from tests.waiting import Sink, eventually


def pod(name: str, *, gen: int = 1, rv: str = "1", uid: str = "u1", **meta: Any) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": uid,
            "generation": gen,
            "resourceVersion": rv,
            **meta,
        },
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running"},
    }


class Recorder:
    """Subscribes to an Observable and keeps what it sends."""

    def __init__(self, source: Observable[Any]) -> None:
        self.items: list[Any] = []
        self.errors: list[Exception] = []
        self.completed = False
        self.subscription = source.subscribe(self.items.append, self.errors.append, self._complete)

    def _complete(self) -> None:
        self.completed = True


# A relist, a watch, an error, a resubscription's relist: the stream operators see.
A1, B1 = pod("a", rv="10"), pod("b", rv="11")
A2 = pod("a", gen=2, rv="12")
RELIST: list[Event] = [Init(), InitApply(A1), InitApply(B1), InitDone()]
WATCH: list[Event] = [Apply(A2), Delete(B1)]


def test_applied_objects_emits_objects_of_list_and_watch_applies() -> None:
    subject: Subject[Event] = Subject()
    out = Recorder(subject.pipe(applied_objects()))
    for event in [*RELIST, *WATCH, *RELIST]:
        subject.on_next(event)
    subject.on_completed()
    assert out.items == [A1, B1, A2, A1, B1]
    assert out.completed


def test_touched_objects_also_emits_deleted_objects() -> None:
    subject: Subject[Event] = Subject()
    out = Recorder(subject.pipe(touched_objects()))
    for event in [*RELIST, *WATCH]:
        subject.on_next(event)
    assert out.items == [A1, B1, A2, B1]


def test_operators_pass_errors_through() -> None:
    subject: Subject[Event] = Subject()
    out = Recorder(subject.pipe(modify(lambda o: None), applied_objects()))
    subject.on_next(Apply(A1))
    boom = RuntimeError("boom")
    subject.on_error(boom)
    assert out.items == [A1]
    assert out.errors == [boom]


def test_modify_mutating_in_place_changes_every_object_event() -> None:
    def strip(obj: Object) -> None:
        obj["metadata"]["managedFields"] = None
        obj.pop("status", None)

    subject: Subject[Event] = Subject()
    out = Recorder(subject.pipe(modify(strip)))
    events: list[Event] = [
        Init(),
        InitApply(pod("a")),
        InitDone(),
        Apply(pod("b")),
        Delete(pod("c")),
    ]
    for event in events:
        subject.on_next(event)
    assert [type(e) for e in out.items] == [type(e) for e in events]
    for event in out.items:
        if isinstance(event, InitApply | Apply | Delete):
            assert "status" not in event.obj
            assert event.obj["metadata"]["managedFields"] is None


def test_modify_returning_a_new_object_replaces_it() -> None:
    subject: Subject[Event] = Subject()
    out = Recorder(subject.pipe(modify(lambda obj: {"name": obj["metadata"]["name"]})))
    subject.on_next(InitApply(pod("a")))
    subject.on_next(Delete(pod("b")))
    assert out.items == [InitApply({"name": "a"}), Delete({"name": "b"})]


def test_modify_sends_an_exception_of_fn_to_on_error_and_stops() -> None:
    def bad(obj: Object) -> Object:
        raise TypeError("fn is broken")

    subject: Subject[Event] = Subject()
    out = Recorder(subject.pipe(modify(bad)))
    subject.on_next(Init())
    subject.on_next(Apply(pod("a")))
    subject.on_next(Apply(pod("b")))
    assert out.items == [Init()]
    assert [type(e) for e in out.errors] == [TypeError]
    assert not subject.observers, "the source subscription was disposed"


def test_metadata_only_keeps_api_version_kind_and_metadata() -> None:
    subject: Subject[Event] = Subject()
    out = Recorder(subject.pipe(metadata_only()))
    a = pod("a")
    subject.on_next(Apply(a))
    subject.on_next(Init())
    assert out.items[0] == Apply({"apiVersion": "v1", "kind": "Pod", "metadata": a["metadata"]})
    assert out.items[0].obj["metadata"] is a["metadata"], "metadata is shared, not copied"
    assert out.items[1] == Init()


def filtered(events: list[Event], predicate: predicates.Predicate, **kw: Any) -> list[Event]:
    out = Recorder(reactivex.from_iterable(events).pipe(predicate_filter(predicate, **kw)))
    assert not out.errors
    return out.items


def test_predicate_filter_drops_applies_with_an_unchanged_generation() -> None:
    events: list[Event] = [
        Apply(pod("a", gen=1, rv="1")),
        Apply(pod("a", gen=1, rv="2")),
        Apply(pod("a", gen=2, rv="3")),
        Apply(pod("b", gen=2, rv="4")),
    ]
    assert filtered(events, predicates.generation) == [events[0], events[2], events[3]]


def test_predicate_filter_drops_unchanged_objects_of_a_relist() -> None:
    events: list[Event] = [*RELIST, *WATCH[:1], *RELIST]
    # After the watch changed a's generation, the relist's a (generation 1) is a change.
    assert filtered(events, predicates.generation) == [
        Init(),
        InitApply(A1),
        InitApply(B1),
        InitDone(),
        Apply(A2),
        Init(),
        InitApply(A1),
        InitDone(),
    ]


def test_predicate_filter_passes_a_value_that_changed_only_its_json_type() -> None:
    def sized(rv: str, size: object) -> Object:
        return {"metadata": {"name": "a", "uid": "u1", "resourceVersion": rv}, "spec": {"n": size}}

    events: list[Event] = [
        Apply(sized("1", 1)),
        Apply(sized("2", True)),
        Apply(sized("3", 1.0)),
        Apply(sized("4", 1.0)),
        Apply(sized("5", (1, "a"))),
        Apply(sized("6", (True, "a"))),
    ]
    size = predicates.Predicate(lambda obj: obj["spec"]["n"], "size")
    assert filtered(events, size) == [events[i] for i in (0, 1, 2, 4, 5)]


def test_predicate_filter_passes_a_recreated_object_with_the_same_generation() -> None:
    events: list[Event] = [
        Apply(pod("a", uid="u1")),
        Apply(pod("a", uid="u1", rv="2")),
        Apply(pod("a", uid="u2", rv="3")),
    ]
    assert filtered(events, predicates.generation) == [events[0], events[2]]


def test_predicate_filter_never_swallows_deletions_and_forgets_the_object() -> None:
    a = pod("a")
    events: list[Event] = [Apply(a), Delete(a), Delete(a), Apply(a)]
    assert filtered(events, predicates.generation) == events


def test_predicate_filter_keys_objects_by_namespace_too() -> None:
    other = pod("a")
    other["metadata"]["namespace"] = "kube-system"
    events: list[Event] = [Apply(pod("a")), Apply(other)]
    assert filtered(events, predicates.generation) == events


def test_predicate_filter_passes_objects_without_the_property() -> None:
    no_generation = pod("a")
    del no_generation["metadata"]["generation"]
    events: list[Event] = [Apply(no_generation), Apply(no_generation)]
    assert filtered(events, predicates.generation) == events


@pytest.mark.parametrize(
    ("predicate", "change"),
    [
        (predicates.resource_version, {"resourceVersion": "99"}),
        (predicates.labels, {"labels": {"app": "web"}}),
        (predicates.annotations, {"annotations": {"note": "x"}}),
        (predicates.finalizers, {"finalizers": ["example.com/cleanup"]}),
    ],
)
def test_each_predicate_lets_its_own_change_through(
    predicate: predicates.Predicate, change: dict[str, Any]
) -> None:
    base = pod("a", rv="1")
    changed = pod("a", rv="1", **change)
    events: list[Event] = [Apply(base), Apply(pod("a", rv="1")), Apply(changed)]
    assert filtered(events, predicate) == [events[0], events[2]]


def test_combined_predicates_pass_when_either_changed() -> None:
    events: list[Event] = [
        Apply(pod("a", gen=1)),
        Apply(pod("a", gen=1, labels={"app": "web"})),
        Apply(pod("a", gen=2, labels={"app": "web"})),
        Apply(pod("a", gen=2, labels={"app": "web"}, annotations={"x": "y"})),
    ]
    assert filtered(events, predicates.generation | predicates.labels) == events[:3]
    assert repr(predicates.generation | predicates.labels) == "<Predicate generation | labels>"


def test_combined_predicate_is_none_only_when_both_are_none() -> None:
    nothing = predicates.Predicate(lambda obj: None, "nothing")
    assert (nothing | nothing)(pod("a")) is None
    assert (nothing | predicates.generation)(pod("a")) == (None, 1)


def test_predicate_filter_forgets_objects_not_seen_for_ttl_on_virtual_time() -> None:
    scheduler = TestScheduler()
    a = pod("a")
    source = scheduler.create_hot_observable(
        reactivex.testing.ReactiveTest.on_next(300, Apply(a)),
        reactivex.testing.ReactiveTest.on_next(400, Apply(a)),  # seen 100 s later: dropped
        reactivex.testing.ReactiveTest.on_next(450, Apply(a)),  # still within ttl of 400
        reactivex.testing.ReactiveTest.on_next(700, Apply(a)),  # 250 s unseen > ttl: passes
    )
    results = scheduler.start(
        lambda: source.pipe(predicate_filter(predicates.generation, ttl=200, scheduler=scheduler))
    )
    assert [message.time for message in results.messages] == [300, 700]


def test_predicate_filter_memory_is_per_subscription() -> None:
    subject: Subject[Event] = Subject()
    operator = predicate_filter(predicates.generation)
    first = Recorder(subject.pipe(operator))
    subject.on_next(Apply(pod("a")))
    second = Recorder(subject.pipe(operator))
    subject.on_next(Apply(pod("a")))
    assert len(first.items) == 1
    assert len(second.items) == 1


def test_predicate_filter_sends_a_predicate_exception_to_on_error() -> None:
    def broken(obj: Object) -> int:
        raise KeyError("spec")

    events: list[Event] = [Init(), Apply(pod("a"))]
    out = Recorder(
        reactivex.from_iterable(events).pipe(
            predicate_filter(predicates.Predicate(broken, "broken"))
        )
    )
    assert out.items == [Init()]
    assert [type(e) for e in out.errors] == [KeyError]


def test_predicate_filter_compares_values_not_their_hashes() -> None:
    # CPython: hash(-1) == hash(-2), and so hash((-1,)) == hash((-2,)).
    assert hash(-1) == hash(-2) and hash((-1,)) == hash((-2,))
    replicas = predicates.Predicate(lambda obj: obj["spec"].get("replicas"), "replicas")
    events: list[Event] = [
        Apply({**pod("a", rv="1"), "spec": {"replicas": -1}}),
        Apply({**pod("a", rv="2"), "spec": {"replicas": -2}}),
        Apply({**pod("a", rv="3"), "spec": {"replicas": -2}}),
    ]
    assert filtered(events, replicas) == events[:2]
    assert filtered(events, replicas | predicates.generation) == events[:2]


def test_predicate_filter_compares_unhashable_values_by_equality() -> None:
    containers = predicates.Predicate(lambda obj: obj["spec"]["containers"], "containers")
    changed = pod("a", rv="3")
    changed["spec"]["containers"][0]["image"] = "nginx:2"
    events: list[Event] = [Apply(pod("a", rv="1")), Apply(pod("a", rv="2")), Apply(changed)]
    assert filtered(events, containers) == [events[0], events[2]]


def test_predicate_filter_values_that_cannot_be_compared_are_a_type_error() -> None:
    class Ambiguous:  # like an array: == gives no single truth value
        def __eq__(self, other: object) -> bool:
            raise ValueError("the truth value of an array is ambiguous")

        __hash__ = object.__hash__

    events: list[Event] = [Apply(pod("a", rv="1")), Apply(pod("a", rv="2"))]
    out = Recorder(
        reactivex.from_iterable(events).pipe(
            predicate_filter(predicates.Predicate(lambda obj: Ambiguous(), "ambiguous"))
        )
    )
    assert out.items == events[:1]
    [error] = out.errors
    assert isinstance(error, TypeError) and isinstance(error.__cause__, ValueError)
    assert "<Predicate ambiguous> cannot be compared with ==: Ambiguous and Ambiguous" in str(error)


def test_predicate_filter_rejects_a_non_positive_ttl() -> None:
    with pytest.raises(ValueError, match="ttl"):
        predicate_filter(predicates.generation, ttl=0)


@pytest.mark.parametrize(
    "module", ["rxkube.operators", "rxkube.predicates", "rxkube._backoff_policy"]
)
def test_docstring_examples_run(module: str) -> None:
    # By name: the package re-exports functions that shadow some module attributes.
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --- against the test API server ------------------------------------------------------


def test_pipeline_survives_a_garbled_line_and_filters_the_relist(apiserver: ApiServer) -> None:
    # Deployments: their registry strategy sets and bumps metadata.generation (kubernetes
    # v1.32 pkg/registry/apps/deployment/strategy.go); a pod's or config map's sets none.
    deployments = Api(apiserver.client(), "deployments", namespace="default")

    def template(image: str) -> dict[str, Any]:
        return {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }

    for name in ("a", "b"):
        deployments.create(
            {
                "metadata": {"name": name},
                "spec": {
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": template("nginx"),
                },
            }
        )
    reader, writer = store("deployments")
    seen: list[tuple[str, int]] = []
    retries: list[BaseException] = []

    def labels_of_a() -> object:
        return (reader.get("a", "default") or {}).get("metadata", {}).get("labels")

    fast = ExponentialBackoff(initial=0.05, jitter=0.0)
    subscription = (
        watcher(deployments)
        .pipe(
            reflect(writer),
            backoff(fast, on_retry=lambda error, delay: retries.append(error)),
            predicate_filter(predicates.generation),
            applied_objects(),
        )
        .subscribe(
            lambda obj: seen.append((obj["metadata"]["name"], obj["metadata"]["generation"]))
        )
    )
    try:
        eventually(lambda: len(seen) == 2, "the first list")
        # A garbled line fails the watch; backoff resubscribes and the watcher relists.
        apiserver.faults.corrupt_next_event("garbled")
        deployments.patch("a", {"metadata": {"labels": {"tier": "web"}}})
        eventually(lambda: labels_of_a() == {"tier": "web"}, "the relist to reach the store")
        # The relisted objects kept their generations: filtered out. A spec change passes.
        deployments.patch("b", {"spec": {"template": template("nginx:2")}})
        eventually(lambda: len(seen) == 3, "the spec change")
    finally:
        subscription.dispose()
    assert seen == [("a", 1), ("b", 1), ("b", 2)]
    assert [type(error) for error in retries] == [DecodeError]


@pytest.mark.parametrize("shape", [int, lambda n: (n,)], ids=["number", "tuple"])
def test_predicate_filter_passes_a_value_moving_between_values_of_equal_hashes(
    apiserver: ApiServer, shape: Any
) -> None:
    maps = Api(apiserver.client(), "configmaps", namespace="default")
    maps.create({"metadata": {"name": "n"}, "data": {"n": "-1"}})
    value = predicates.Predicate(lambda obj: shape(int(obj["data"]["n"])), "n")
    sink = Sink()
    subscription = (
        watcher(maps).pipe(predicate_filter(value)).subscribe(sink.on_next, sink.on_error)
    )

    def changes() -> list[tuple[str, str]]:
        return [
            (type(e).__name__, e.obj["metadata"]["resourceVersion"])
            for e in sink.items
            if isinstance(e, InitApply | Apply | Delete)
        ]

    try:
        sink.wait(lambda _: len(changes()) == 1, "the list")
        moved = maps.patch("n", {"data": {"n": "-2"}})
        unchanged = maps.patch("n", {"metadata": {"labels": {"x": "y"}}})  # n stays -2
        back = maps.patch("n", {"data": {"n": "-1"}})
        maps.delete("n")
        sink.wait(lambda _: changes()[-1][0] == "Delete", "the deletion")  # it always passes
    finally:
        subscription.dispose()
    rv = [obj["metadata"]["resourceVersion"] for obj in (moved, unchanged, back)]
    assert changes()[1:3] == [("Apply", rv[0]), ("Apply", rv[2])]  # not the label change
    assert len(changes()) == 4
    assert sink.errors == []


def test_predicate_filter_passes_a_property_that_comes_back_with_the_value_it_had(
    apiserver: ApiServer,
) -> None:
    maps = Api(apiserver.client(), "configmaps", namespace="default")
    key = "example.com/owner"
    maps.create({"metadata": {"name": "c", "annotations": {key: "a"}}})
    owner = predicates.Predicate(
        lambda obj: (obj["metadata"].get("annotations") or {}).get(key), "owner annotation"
    )
    sink = Sink()
    subscription = (
        watcher(maps).pipe(predicate_filter(owner)).subscribe(sink.on_next, sink.on_error)
    )

    def passed() -> list[str]:
        return [
            e.obj["metadata"]["resourceVersion"]
            for e in sink.items
            if isinstance(e, InitApply | Apply | Delete)
        ]

    def annotate(value: str | None, label: str) -> str:
        patch = {"metadata": {"annotations": {key: value}, "labels": {"step": label}}}
        return str(maps.patch("c", patch)["metadata"]["resourceVersion"])

    try:
        sink.wait(lambda _: len(passed()) == 1, "the list")
        gone = annotate(None, "gone")
        still_gone = annotate(None, "still-gone")  # no property: passes, as always
        back = annotate("a", "back")  # absent -> "a" is a change, whatever it was before
        same = annotate("a", "same")
        changed = annotate("b", "changed")
        maps.delete("c")
        sink.wait(lambda _: isinstance(sink.items[-1], Delete), "the deletion")
    finally:
        subscription.dispose()
    assert passed()[1:-1] == [gone, still_gone, back, changed], same
    assert sink.errors == []
