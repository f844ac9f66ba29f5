"""Small things the test server answers as kube-apiserver v1.32 does: list items' type
meta, and the graceful deletion of pods (with no kubelet to end it)."""

from __future__ import annotations

import datetime
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from rxkube.testing import ApiServer


def get(srv: ApiServer, path: str, accept: str = "application/json") -> Any:
    request = urllib.request.Request(srv.url + path, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_built_in_list_items_carry_no_type_meta_and_custom_ones_do(srv: ApiServer) -> None:
    """A built-in list is a typed Go list (``ConfigMapList.Items []ConfigMap``) whose items
    have an empty ``TypeMeta``; custom resources are listed as the unstructured objects
    stored, with theirs; ``asPartialObjectMetadataList`` (apiserver
    ``handlers/response.go``) sets each metadata item's."""
    srv.create("configmaps", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    listed = get(srv, "/api/v1/namespaces/default/configmaps")
    assert (listed["kind"], listed["apiVersion"]) == ("ConfigMapList", "v1")
    assert listed["items"][0]["data"] == {"k": "v"}
    assert "kind" not in listed["items"][0] and "apiVersion" not in listed["items"][0]
    # A single object, and a watch event's object, keep theirs.
    assert get(srv, "/api/v1/namespaces/default/configmaps/a")["kind"] == "ConfigMap"
    meta = get(
        srv,
        "/api/v1/namespaces/default/configmaps",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    assert (meta["items"][0]["kind"], meta["items"][0]["apiVersion"]) == (
        "PartialObjectMetadata",
        "meta.k8s.io/v1",
    )
    widgets = srv.add_resource("example.com", "v1", "Widget", "widgets")
    srv.create(widgets, {"metadata": {"name": "w"}})
    [widget] = get(srv, "/apis/example.com/v1/namespaces/default/widgets")["items"]
    assert (widget["kind"], widget["apiVersion"]) == ("Widget", "example.com/v1")


def test_an_object_whose_stored_keys_are_reordered_still_lists_without_type_meta(
    srv: ApiServer,
) -> None:
    srv.create("configmaps", {"metadata": {"name": "a"}, "apiVersion": "v1", "kind": "ConfigMap"})
    srv.replace("configmaps", {"data": {"k": "v"}, **srv.get("configmaps", "a")})
    [item] = get(srv, "/api/v1/namespaces/default/configmaps")["items"]
    assert set(item) == {"metadata", "data"}


def test_a_patched_pod_keeps_its_fields_in_the_order_it_was_listed_in(srv: ApiServer) -> None:
    """kube-apiserver encodes a built-in object in its Go struct's one order, whatever was
    done to it: a client sees the same bytes for an unchanged part in a list and in a watch
    event after a patch (which rxkube's watcher relies on to reuse an unchanged spec)."""
    created = send(srv, "POST", PODS, bound_pod("a"), "application/json")
    before = get(srv, PODS + "/a")
    assert json.dumps(before) == json.dumps(created)
    patch = {"metadata": {"labels": {"x": "y"}}, "spec": {"zzz": None}}
    for patch_type in ("merge-patch", "strategic-merge-patch"):
        patched = send(srv, "PATCH", PODS + "/a", patch, f"application/{patch_type}+json")
        [item] = get(srv, PODS)["items"]
        for got in (patched, item):
            assert json.dumps(got["spec"]) == json.dumps(before["spec"])
            assert list(got) == [key for key in before if key in got]  # items: no type meta


def send(srv: ApiServer, method: str, path: str, body: Any, content_type: str) -> Any:
    request = urllib.request.Request(
        srv.url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": content_type},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def call(srv: ApiServer, method: str, path: str) -> tuple[int, Any]:
    request = urllib.request.Request(srv.url + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


PODS = "/api/v1/namespaces/default/pods"


def bound_pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}], **spec},
    }


def test_a_bound_pod_is_deleted_gracefully_and_stays_without_a_kubelet(srv: ApiServer) -> None:
    """``podStrategy.CheckGracefulTermination`` and ``rest.BeforeDelete``: a pod bound to a
    node is marked for its grace period; a later delete may only shorten it; the kubelet's
    delete with ``gracePeriodSeconds=0`` removes it."""
    srv.create("pods", bound_pod("web", terminationGracePeriodSeconds=30))
    status, marked = call(srv, "DELETE", f"{PODS}/web")
    assert status == 200 and marked["metadata"]["deletionGracePeriodSeconds"] == 30
    stamp = datetime.datetime.fromisoformat(marked["metadata"]["deletionTimestamp"])
    ahead = stamp - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(seconds=20) < ahead <= datetime.timedelta(seconds=31)
    assert call(srv, "GET", f"{PODS}/web")[0] == 200  # still there: no kubelet ends it
    _, longer = call(srv, "DELETE", f"{PODS}/web?gracePeriodSeconds=60")
    assert longer["metadata"] == marked["metadata"]  # only a shorter period may be set
    _, shorter = call(srv, "DELETE", f"{PODS}/web?gracePeriodSeconds=5")
    assert shorter["metadata"]["deletionGracePeriodSeconds"] == 5
    status, _ = call(srv, "DELETE", f"{PODS}/web?gracePeriodSeconds=0")
    assert status == 200 and call(srv, "GET", f"{PODS}/web")[0] == 404


@pytest.mark.parametrize(
    "pod",
    [
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        {**bound_pod("p", terminationGracePeriodSeconds=30), "status": {"phase": "Succeeded"}},
        bound_pod("p"),  # no terminationGracePeriodSeconds: this server does not default it
    ],
    ids=["unbound", "finished", "no-grace-period"],
)
def test_pods_that_need_no_grace_are_deleted_at_once(srv: ApiServer, pod: dict[str, Any]) -> None:
    srv.create("pods", pod)
    assert call(srv, "DELETE", f"{PODS}/p")[0] == 200
    assert call(srv, "GET", f"{PODS}/p")[0] == 404


def test_the_object_api_deletes_a_bound_pod_at_once(srv: ApiServer) -> None:
    srv.create("pods", bound_pod("web", terminationGracePeriodSeconds=30))
    srv.delete("pods", "web")
    assert srv.list("pods") == []
