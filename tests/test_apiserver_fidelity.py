"""Small things the test server answers as kube-apiserver v1.32 does: list items' type
meta, and pods deleted at once (the behaviour of a server without a kubelet)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from rxkube.testing import ApiServer


@pytest.fixture
def srv() -> Iterator[ApiServer]:
    with ApiServer(bookmark_interval=None) as server:
        yield server


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
