"""Which watch covers which request, and the view filter, without a network."""

from __future__ import annotations

from typing import Any

import pytest

from rxkube._views import ViewFilter, ViewKey, absorbs, covers, implies, metadata_of
from rxkube.events import Apply, Delete, Init, InitApply, InitDone
from rxkube.resource import Resource
from rxkube.selectors import LabelSelector

PODS = Resource("", "v1", "Pod", "pods")
NODES = Resource("", "v1", "Node", "nodes", namespaced=False)


def key(
    namespace: str | None = None,
    labels: str = "",
    fields: str = "",
    metadata_only: bool = False,
    resource: Resource = PODS,
) -> ViewKey:
    return ViewKey.of(resource, namespace, labels, fields, metadata_only)


def req(text: str) -> Any:
    [requirement] = LabelSelector.parse(text).requirements
    return requirement


def pod(name: str, rv: str, namespace: str = "a", **labels: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "resourceVersion": rv, "labels": labels}
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": {"x": 1}}


# -- keys -----------------------------------------------------------------------------------


def test_equal_meanings_have_equal_keys() -> None:
    assert key(labels="app in (web)") == key(labels="app=web") == key(labels="app==web")
    assert key(labels="a notin (x),b") == key(labels="b, a!=x")
    assert key(labels="app=web").label_selector == "app=web"
    assert key(namespace="") == key()
    assert key(namespace="a", resource=NODES) == key(resource=NODES)


def test_invalid_selectors_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="invalid label selector"):
        key(labels="a in b")
    with pytest.raises(ValueError, match="invalid field selector"):
        key(fields="nonsense")


# -- implication between label requirements ---------------------------------------------------


@pytest.mark.parametrize(
    ("have", "need"),
    [
        ("a=x", "a"),
        ("a in (x,y)", "a"),
        ("a>3", "a"),
        ("a<3", "a"),
        ("a=x", "a in (x,y)"),
        ("a in (x,y)", "a in (x,y,z)"),
        ("a notin (x,y)", "a!=x"),
        ("a!=x", "a notin (x)"),
        ("!a", "a!=x"),
        ("!a", "a notin (x,y)"),
        ("a=x", "a!=y"),
        ("a in (x,y)", "a notin (z)"),
        ("a>5", "a>3"),
        ("a<3", "a<5"),
        ("!a", "!a"),
    ],
)
def test_implied_requirements(have: str, need: str) -> None:
    assert implies(req(have), req(need))


@pytest.mark.parametrize(
    ("have", "need"),
    [
        ("a", "a=x"),
        ("a in (x,y)", "a=x"),
        ("a!=x", "a"),
        ("a!=x", "a notin (x,y)"),
        ("a=x", "a!=x"),
        ("a in (x,y)", "a notin (y)"),
        ("a", "!a"),
        ("a!=x", "!a"),
        ("a>3", "a>5"),
        ("a<5", "a<3"),
        ("a>3", "a<9"),
        ("b=x", "a"),
        ("a=5", "a>3"),
    ],
)
def test_requirements_not_implied(have: str, need: str) -> None:
    assert not implies(req(have), req(need))


def test_implication_agrees_with_matching_on_every_small_label_set() -> None:
    texts = [
        "a", "!a", "a=x", "a!=x", "a in (x,y)", "a notin (x,y)", "a=y", "a in (y,z)",
        "a>3", "a<3", "a>5", "a<5", "a=4",
    ]  # fmt: skip
    label_sets: list[dict[str, str]] = [{}, *({"a": v} for v in ("x", "y", "z", "2", "4", "6"))]
    for have in texts:
        for need in texts:
            if implies(req(have), req(need)):
                for labels in label_sets:
                    assert not req(have).matches(labels) or req(need).matches(labels), (
                        have,
                        need,
                        labels,
                    )


# -- coverage ---------------------------------------------------------------------------------


def test_a_cluster_wide_watch_covers_every_namespace() -> None:
    assert covers(key(), key(namespace="a"))
    assert not covers(key(namespace="a"), key())
    assert not covers(key(namespace="a"), key(namespace="b"))
    assert covers(key(namespace="a"), key(namespace="a", labels="x"))


def test_a_watch_covers_requests_whose_requirements_imply_its_own() -> None:
    assert covers(key(labels="app"), key(labels="app in (web,db)"))
    assert covers(key(labels="app in (web,db)"), key(labels="app=web,tier!=cache"))
    assert not covers(key(labels="app=web"), key(labels="app"))
    assert not covers(key(labels="app=web,tier"), key(labels="app=web"))


def test_metadata_only_requests_can_be_served_from_full_watches_not_the_reverse() -> None:
    assert covers(key(), key(metadata_only=True))
    assert not covers(key(metadata_only=True), key())
    assert covers(key(metadata_only=True), key(labels="a", metadata_only=True))


def test_only_metadata_fields_are_matched_locally() -> None:
    assert covers(key(), key(fields="metadata.name=web"))
    assert covers(key(), key(fields="metadata.namespace!=kube-system"))
    assert not covers(key(), key(fields="status.phase=Running"))
    assert covers(key(fields="status.phase=Running"), key(fields="status.phase=Running"))
    assert covers(
        key(fields="status.phase=Running"), key(fields="status.phase=Running,metadata.name=a")
    )
    assert not covers(key(fields="status.phase=Running"), key())
    # metadata.namespace is not a field of cluster-scoped kinds: the server refuses it.
    assert not covers(key(resource=NODES), key(fields="metadata.namespace=a", resource=NODES))


def test_different_resources_never_cover_each_other() -> None:
    assert not covers(key(resource=NODES), key())


def test_absorption_is_obvious_only_in_the_same_namespace_with_a_subset_of_requirements() -> None:
    assert absorbs(key(namespace="a"), key(namespace="a", labels="app=web"))
    assert absorbs(key(labels="app"), key(labels="app,tier=x"))
    assert not absorbs(key(), key(namespace="a"))
    assert not absorbs(key(labels="app"), key(labels="app=web"))  # covered, not a subset
    assert not absorbs(key(namespace="a"), key(namespace="a"))


# -- the filter -------------------------------------------------------------------------------


def test_objects_move_in_and_out_of_a_view_as_the_server_would_send_them() -> None:
    view = ViewFilter(key(), key(namespace="a", labels="app=web"))
    assert view.step(Init()) == [Init()]
    assert view.step(InitApply(pod("w", "1", app="web"))) == [InitApply(pod("w", "1", app="web"))]
    assert view.step(InitApply(pod("d", "2", app="db"))) == []
    assert view.step(InitApply(pod("x", "3", "b", app="web"))) == []
    assert view.step(InitDone()) == [InitDone()]
    # A change that keeps it in: MODIFIED.
    assert view.step(Apply(pod("w", "4", app="web"))) == [Apply(pod("w", "4", app="web"))]
    # It stops matching: DELETED with the previous state at the change's resourceVersion.
    gone = pod("w", "5", app="web")
    assert view.step(Apply(pod("w", "5", app="db"))) == [Delete(gone)]
    # It starts matching: ADDED.
    assert view.step(Apply(pod("d", "6", app="web"))) == [Apply(pod("d", "6", app="web"))]
    # Changes of objects outside the view are not seen; deletions of members are.
    assert view.step(Apply(pod("x", "7", "b", app="web"))) == []
    assert view.step(Delete(pod("w", "8", app="db"))) == []
    assert view.step(Delete(pod("d", "9", app="web"))) == [Delete(pod("d", "9", app="web"))]
    assert view.members == {}


def test_a_metadata_view_of_a_full_watch_holds_partial_object_metadata() -> None:
    view = ViewFilter(key(), key(metadata_only=True))
    full = pod("w", "1", app="web")
    [event] = view.step(Apply(full))
    assert event == Apply(
        {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": full["metadata"],
        }
    )
    assert metadata_of(full) == event.obj
    assert event.obj["metadata"] is full["metadata"]  # shared, not copied


def test_a_relist_swaps_the_membership_and_a_snapshot_replays_it() -> None:
    view = ViewFilter(key(), key(labels="app"))
    for event in (Init(), InitApply(pod("a", "1", app="x")), InitDone()):
        view.step(event)
    view.step(Init())
    view.step(InitApply(pod("b", "2", app="y")))
    assert view.snapshot() == [
        Init(),
        InitApply(pod("a", "1", app="x")),
        InitDone(),
        Init(),
        InitApply(pod("b", "2", app="y")),
    ]
    view.step(InitDone())
    assert list(view.members or {}) == [("a", "b")]


def test_seeding_restricts_another_filter_of_the_same_watch() -> None:
    wide = ViewFilter(key(), key())
    for event in (Init(), InitApply(pod("a", "1", app="x")), InitApply(pod("b", "2")), InitDone()):
        wide.step(event)
    narrow = ViewFilter(key(), key(labels="app", metadata_only=True))
    narrow.seed(wide)
    assert narrow.snapshot() == [Init(), InitApply(metadata_of(pod("a", "1", app="x"))), InitDone()]
    fresh = ViewFilter(key(), key(labels="app"))
    fresh.seed(ViewFilter(key(), key()))
    assert fresh.snapshot() == []


def test_a_filter_refuses_a_watch_that_does_not_cover_its_view() -> None:
    with pytest.raises(ValueError, match="cannot serve"):
        ViewFilter(key(namespace="a"), key())
