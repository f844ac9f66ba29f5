"""Conformance of rxkube.testing.ApiServer with kube-apiserver, over plain HTTP (http.client).

Each test names the kube-apiserver behaviour it checks; the expected answers come from
../shared/reference/apiserver.md and the Kubernetes source.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rxkube.errors import Conflict, Invalid, NotFound
from rxkube.testing import ApiServer
from tests.apiserver_http import Http
from tests.waiting import eventually

META_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
META = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
PODS = "/api/v1/namespaces/default/pods"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }


@pytest.fixture
def srv() -> Iterator[ApiServer]:
    with ApiServer(bookmark_interval=0.2, too_large_wait=0.2) as server:
        yield server


# ------------------------------------------------------------------ objects


def test_create_fills_system_fields_and_rv_increases_globally(srv: ApiServer, api: Http) -> None:
    status, created, _ = api.request("POST", PODS, pod("a"))
    assert status == 201
    meta = created["metadata"]
    assert created["kind"] == "Pod" and created["apiVersion"] == "v1"
    assert meta["namespace"] == "default" and meta["uid"] and meta["creationTimestamp"]
    assert "generation" not in meta  # a v1.32 pod strategy sets none
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    status, cm, _ = api.request(
        "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}}
    )
    assert status == 201
    assert int(cm["metadata"]["resourceVersion"]) == int(meta["resourceVersion"]) + 1
    assert srv.resource_version == int(cm["metadata"]["resourceVersion"])


def test_create_with_generate_name(api: Http) -> None:
    status, created, _ = api.request(
        "POST", PODS, {**pod(""), "metadata": {"generateName": "web-"}}
    )
    assert status == 201
    assert created["metadata"]["name"].startswith("web-") and len(created["metadata"]["name"]) == 9


def test_create_existing_answers_409_already_exists(api: Http) -> None:
    api.request("POST", PODS, pod("a"))
    status, body, _ = api.request("POST", PODS, pod("a"))
    assert status == 409
    assert body["kind"] == "Status" and body["reason"] == "AlreadyExists" and body["code"] == 409
    assert body["message"] == 'pods "a" already exists'
    assert body["details"] == {"name": "a", "kind": "pods"}


def test_get_missing_answers_404_status(api: Http) -> None:
    status, body = api.get(f"{PODS}/nope")
    assert status == 404
    assert body["reason"] == "NotFound" and body["message"] == 'pods "nope" not found'
    status, body = api.get("/apis/apps/v1/namespaces/default/deployments/nope")
    assert body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


def test_namespaces_created_over_http_are_active(api: Http) -> None:
    # The namespace create strategy sets status.phase, whatever the body says.
    body = {"metadata": {"name": "team-a"}, "status": {"phase": "Terminating"}}
    status, created, _ = api.request("POST", "/api/v1/namespaces", body)
    assert status == 201 and created["status"] == {"phase": "Active"}
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}}
    status, applied, _ = api.request(
        "PATCH",
        "/api/v1/namespaces/team-b",
        manifest,
        headers={"Content-Type": "application/apply-patch+yaml"},
        fieldManager="test",
    )
    assert status == 201 and applied["status"] == {"phase": "Active"}


def test_create_in_missing_namespace_answers_404(api: Http) -> None:
    status, body, _ = api.request("POST", "/api/v1/namespaces/ghost/pods", pod("a"))
    assert status == 404 and body["message"] == 'namespaces "ghost" not found'


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "reason"),
    [
        ("POST", PODS, b"{not json", 400, "BadRequest"),
        ("POST", PODS, b"[1]", 400, "BadRequest"),
        ("POST", PODS, {"metadata": {"name": "Bad_Name"}}, 422, "Invalid"),
        ("POST", PODS, {"metadata": {}}, 422, "Invalid"),
        ("POST", PODS, {"kind": "Service", "metadata": {"name": "a"}}, 400, "BadRequest"),
        ("GET", "/api/v1/widgets", None, 404, "NotFound"),
        ("GET", "/apis/nope.io/v1/things", None, 404, "NotFound"),
        ("GET", "/api/v1/namespaces/default/nodes", None, 404, "NotFound"),
        ("POST", f"{PODS}/a", {}, 405, "MethodNotAllowed"),
        ("GET", f"{PODS}/a/log", None, 404, "NotFound"),
    ],
)
def test_errors_are_status_objects(
    api: Http, method: str, path: str, body: Any, code: int, reason: str
) -> None:
    status, answer, response = api.request(method, path, body)
    assert status == code
    assert response.getheader("Content-Type") == "application/json"
    assert answer["kind"] == "Status" and answer["status"] == "Failure"
    assert answer["code"] == code and answer["reason"] == reason and answer["message"]


def test_namespace_mismatch_answers_400(api: Http) -> None:
    body = {"metadata": {"name": "a", "namespace": "other"}}
    status, answer, _ = api.request("POST", PODS, body)
    assert status == 400 and "does not match the namespace" in answer["message"]


def test_request_body_over_3mib_answers_413(api: Http) -> None:
    big = {"metadata": {"name": "big"}, "data": {"x": "y" * (3 * 1024 * 1024 + 10)}}
    status, answer, _ = api.request("POST", "/api/v1/namespaces/default/configmaps", big)
    assert status == 413 and answer["kind"] == "Status"


def test_replace_with_stale_resource_version_answers_409_conflict(api: Http) -> None:
    _, created, _ = api.request("POST", PODS, pod("a"))
    fresh = dict(created, spec={"containers": [{"name": "c", "image": "nginx:2"}]})
    status, _, _ = api.request("PUT", f"{PODS}/a", fresh)
    assert status == 200
    status, body, _ = api.request("PUT", f"{PODS}/a", created)
    assert status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


def test_generation_bumps_on_spec_changes_only(api: Http) -> None:
    deployments = "/apis/apps/v1/namespaces/default/deployments"
    template = {
        "metadata": {"labels": {"app": "a"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    spec = {"selector": {"matchLabels": {"app": "a"}}, "template": template}
    _, obj, _ = api.request("POST", deployments, {"metadata": {"name": "a"}, "spec": spec})
    assert obj["metadata"]["generation"] == 1
    obj["metadata"]["labels"] = {"x": "y"}
    _, obj, _ = api.request("PUT", f"{deployments}/a", obj)
    assert obj["metadata"]["generation"] == 1
    _, obj, _ = api.request("PATCH", f"{deployments}/a", {"spec": {"replicas": 2}},
                            headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
    assert obj["metadata"]["generation"] == 2


def test_kinds_whose_strategy_sets_no_generation_keep_the_created_one(api: Http) -> None:
    """kubernetes v1.32: only some registry strategies set ``Generation = 1`` (deployment,
    job, ingress, ...); ``rest.BeforeCreate`` keeps a given one and ``rest.BeforeUpdate``
    copies the stored one, so a config map has none unless created with one."""
    configmaps = "/api/v1/namespaces/default/configmaps"
    _, plain, _ = api.request("POST", configmaps, {"metadata": {"name": "a"}})
    assert "generation" not in plain["metadata"]
    plain["data"] = {"k": "v"}
    plain["metadata"]["generation"] = 7
    _, plain, _ = api.request("PUT", f"{configmaps}/a", plain)
    assert "generation" not in plain["metadata"]
    _, given, _ = api.request("POST", configmaps, {"metadata": {"name": "b", "generation": 3}})
    assert given["metadata"]["generation"] == 3
    given["data"] = {"k": "v"}
    _, given, _ = api.request("PUT", f"{configmaps}/b", given)
    assert given["metadata"]["generation"] == 3


def test_update_that_changes_nothing_writes_nothing(srv: ApiServer, api: Http) -> None:
    _, obj, _ = api.request("POST", PODS, pod("a"))
    before = srv.resource_version
    status, same, _ = api.request("PUT", f"{PODS}/a", obj)
    assert (
        status == 200 and same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    )
    assert srv.resource_version == before


def test_an_update_from_one_to_true_is_a_change(srv: ApiServer, api: Http) -> None:
    # Python's == takes 1 for true; the stored encodings differ, so etcd3 writes it.
    widgets = srv.add_resource("example.com", "v1", "Widget", "widgets")
    path = "/apis/example.com/v1/namespaces/default/widgets"
    _, obj, _ = api.request("POST", path, {"metadata": {"name": "w"}, "spec": {"on": 1}})
    obj["spec"] = {"on": True}
    status, changed, _ = api.request("PUT", f"{path}/w", obj)
    assert status == 200 and changed["spec"] == {"on": True} and changed["spec"]["on"] is True
    assert changed["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]
    assert changed["metadata"]["generation"] == obj["metadata"]["generation"] + 1
    assert srv.get(widgets, "w", namespace="default")["spec"]["on"] is True


def test_merge_patch_and_json_patch(api: Http) -> None:
    api.request("POST", PODS, pod("a", app="web", tier="x"))
    status, obj, _ = api.request(
        "PATCH", f"{PODS}/a", {"metadata": {"labels": {"tier": None, "new": "1"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert status == 200 and obj["metadata"]["labels"] == {"app": "web", "new": "1"}
    ops = [
        {"op": "test", "path": "/metadata/labels/app", "value": "web"},
        {"op": "add", "path": "/metadata/labels/a~1b", "value": "slash"},
        {"op": "remove", "path": "/metadata/labels/new"},
        {"op": "add", "path": "/spec/containers/-", "value": {"name": "d", "image": "busybox"}},
    ]
    status, obj, _ = api.request(
        "PATCH", f"{PODS}/a", ops, headers={"Content-Type": "application/json-patch+json"}
    )
    assert status == 200
    assert obj["metadata"]["labels"] == {"app": "web", "a/b": "slash"}
    assert [c["name"] for c in obj["spec"]["containers"]] == ["c", "d"]


def test_failed_json_patch_test_answers_422_and_changes_nothing(srv: ApiServer, api: Http) -> None:
    api.request("POST", PODS, pod("a", app="web"))
    before = srv.resource_version
    ops = [{"op": "test", "path": "/metadata/labels/app", "value": "db"}]
    status, body, _ = api.request(
        "PATCH", f"{PODS}/a", ops, headers={"Content-Type": "application/json-patch+json"}
    )
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["message"] == "the server rejected our request due to an error in our request"
    assert srv.resource_version == before
    status, body, _ = api.request(
        "PATCH", f"{PODS}/a", {"op": "x"}, headers={"Content-Type": "application/json-patch+json"}
    )
    assert status == 400


def test_patch_with_unsupported_content_type_answers_415(srv: ApiServer, api: Http) -> None:
    widgets = srv.add_resource("example.com", "v1", "Widget", "widgets")
    srv.create(widgets, {"metadata": {"name": "w"}})
    path = "/apis/example.com/v1/namespaces/default/widgets/w"
    status, body, _ = api.request(
        "PATCH", path, {}, headers={"Content-Type": "application/strategic-merge-patch+json"}
    )
    assert status == 415 and body["reason"] == "UnsupportedMediaType"
    assert body["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )
    status, _, _ = api.request("PATCH", f"{PODS}/x", {}, headers={"Content-Type": "text/plain"})
    assert status == 415


def test_delete_with_finalizers_waits_for_their_removal(srv: ApiServer, api: Http) -> None:
    body = {"metadata": {"name": "f", "finalizers": ["example.com/keep"]}}
    _, created, _ = api.request("POST", "/api/v1/namespaces/default/configmaps", body)
    path = "/api/v1/namespaces/default/configmaps/f"
    with api.watch(
        "/api/v1/namespaces/default/configmaps",
        resourceVersion=created["metadata"]["resourceVersion"],
    ) as w:
        status, marked, _ = api.request("DELETE", path)
        assert status == 200 and marked["metadata"]["deletionTimestamp"]
        assert "generation" not in marked["metadata"]  # bumped only when set
        assert api.get(path)[0] == 200
        status, again, _ = api.request("DELETE", path)
        assert again["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]
        status, _gone, _ = api.request("PATCH", path, {"metadata": {"finalizers": None}},
                                      headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
        assert status == 200
        assert api.get(path)[0] == 404
        assert [e["type"] for e in w.events(2)] == ["MODIFIED", "DELETED"]


def test_delete_answers_object_or_status_like_the_real_server(api: Http) -> None:
    api.request("POST", PODS, pod("a"))
    status, body, _ = api.request("DELETE", f"{PODS}/a")
    assert status == 200 and body["kind"] == "Pod"
    api.request("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}})
    status, body, _ = api.request("DELETE", "/api/v1/namespaces/default/configmaps/c")
    assert body["kind"] == "Status" and body["status"] == "Success"
    assert body["details"]["name"] == "c"
    status, body, _ = api.request("DELETE", f"{PODS}/a")
    assert status == 404


def test_delete_precondition_mismatch_answers_409(api: Http) -> None:
    api.request("POST", PODS, pod("a"))
    options = {"preconditions": {"resourceVersion": "1"}}
    status, body, _ = api.request("DELETE", f"{PODS}/a", options)
    # rest.BeforeDelete's words: the group-resource it names is the kind.
    assert status == 409 and body["message"].startswith(
        'Operation cannot be fulfilled on Pod "a": the ResourceVersion in the precondition (1) '
        "does not match the ResourceVersion in record ("
    )
    assert body["details"]["kind"] == "Pod"


def test_delete_collection_with_selector(srv: ApiServer, api: Http) -> None:
    for i in range(4):
        srv.create("pods", pod(f"p{i}", app="x" if i % 2 else "y"))
    status, body, _ = api.request("DELETE", PODS, labelSelector="app=x")
    assert status == 200 and [i["metadata"]["name"] for i in body["items"]] == ["p1", "p3"]
    assert [p["metadata"]["name"] for p in srv.list("pods")] == ["p0", "p2"]


def test_status_subresource_separates_spec_and_status(api: Http) -> None:
    _, obj, _ = api.request("POST", PODS, pod("a"))
    obj["status"] = {"phase": "Running"}
    obj["spec"]["nodeName"] = "n1"
    _, main, _ = api.request("PUT", f"{PODS}/a", obj)
    assert (
        main["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
        and main["spec"]["nodeName"] == "n1"
    )
    main["status"] = {"phase": "Running"}
    main["spec"]["nodeName"] = "n2"
    status, updated, _ = api.request("PUT", f"{PODS}/a/status", main)
    assert status == 200
    assert updated["status"] == {"phase": "Running"} and updated["spec"]["nodeName"] == "n1"
    assert updated["metadata"].get("generation") == main["metadata"].get("generation")
    status, patched, _ = api.request("PATCH", f"{PODS}/a/status", {"status": {"phase": "Failed"}},
                                     headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
    assert patched["status"]["phase"] == "Failed"
    assert api.get(f"{PODS}/a/status")[1]["status"]["phase"] == "Failed"
    assert api.get("/api/v1/namespaces/default/configmaps/x/status")[0] == 404


# ------------------------------------------------------------ auth and TLS


def test_token_is_required_when_configured() -> None:
    with ApiServer(token="s3cret") as server:
        status, body = Http(server).get("/api/v1/pods")
        assert status == 401 and body["reason"] == "Unauthorized" and body["code"] == 401
        status, body = Http(server, token="wrong").get("/version")
        assert status == 401
        assert Http(server, token="s3cret").get("/api/v1/pods")[0] == 200


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("bearer s3cret", 200),  # as the in-cluster config loader sends it
        ("BEARER s3cret", 200),
        ("  Bearer s3cret  ", 200),
        ("Basic s3cret", 401),
        ("Bearer  s3cret", 401),  # kube-apiserver takes the second space-separated part
        ("Bearers3cret", 401),
    ],
)
def test_authorization_scheme_is_case_insensitive(header: str, status: int) -> None:
    with ApiServer(token="s3cret") as server:
        answer, _, _ = Http(server).request(
            "GET", "/api/v1/pods", headers={"Authorization": header}
        )
        assert answer == status


def test_tls_with_generated_ca(tmp_path: Path) -> None:
    with ApiServer(tls=True, token="t") as server:
        assert server.url.startswith("https://") and server.ca_file
        assert Http(server, token="t").get("/version")[1]["major"] == "1"
        config = server.write_kubeconfig(tmp_path / "kubeconfig").read_text()
        assert "certificate-authority-data" in config and "token: t" in config
        insecure = http.client.HTTPSConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=5,
                                               context=ssl.create_default_context())  # fmt: skip
        with pytest.raises(ssl.SSLError):
            insecure.request("GET", "/version")
        insecure.close()


# ------------------------------------------------------------------- discovery


def test_discovery_documents(srv: ApiServer, api: Http) -> None:
    srv.add_resource("example.com", "v1alpha1", "Widget", "widgets", namespaced=False)
    assert api.get("/version")[1]["gitVersion"].startswith("v1.32")
    assert api.get("/api")[1]["versions"] == ["v1"]
    groups = {g["name"]: g for g in api.get("/apis")[1]["groups"]}
    assert {"apps", "coordination.k8s.io", "example.com"} <= set(groups)
    assert groups["example.com"]["preferredVersion"]["groupVersion"] == "example.com/v1alpha1"
    core = {r["name"]: r for r in api.get("/api/v1")[1]["resources"]}
    assert (
        core["pods"]["kind"] == "Pod"
        and core["pods"]["namespaced"]
        and "watch" in core["pods"]["verbs"]
    )
    assert "pods/status" in core and not core["nodes"]["namespaced"]
    widgets = api.get("/apis/example.com/v1alpha1")[1]["resources"]
    assert widgets[0]["name"] == "widgets" and widgets[0]["namespaced"] is False
    assert api.get("/apis/apps")[1]["kind"] == "APIGroup"
    assert api.get("/apis/nope")[0] == 404


# -------------------------------------------------------------------- lists


def test_list_label_selectors(srv: ApiServer, api: Http) -> None:
    srv.create("pods", pod("a", app="web", tier="front"))
    srv.create("pods", pod("b", app="web"))
    srv.create("pods", pod("c", app="db"))

    def names(selector: str) -> list[str]:
        status, body = api.get(PODS, labelSelector=selector)
        assert status == 200, body
        return [i["metadata"]["name"] for i in body["items"]]

    assert names("app=web") == ["a", "b"]
    assert names("app==web") == ["a", "b"]
    assert names("app!=web") == ["c"]
    assert names("app in (db,web),tier") == ["a"]
    assert names("app notin (web)") == ["c"]
    assert names("!tier") == ["b", "c"]
    # k8s.io/apimachinery/pkg/labels/selector.go parseValues; the handler answers the
    # parser's error as it is (apiserver pkg/endpoints/handlers/get.go DecodeParameters).
    status, body = api.get(PODS, labelSelector="app in web")
    assert status == 400 and body["reason"] == "BadRequest"
    assert body["message"] == "unable to parse requirement: found 'web' expected: '('"


def test_list_field_selectors(srv: ApiServer, api: Http) -> None:
    srv.create("pods", {**pod("a"), "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    srv.create("pods", {**pod("b"), "spec": {"nodeName": "n2"}, "status": {"phase": "Pending"}})
    srv.create("pods", pod("c"), namespace="kube-system")

    def names(path: str, selector: str) -> list[str]:
        status, body = api.get(path, fieldSelector=selector)
        assert status == 200, body
        return [i["metadata"]["name"] for i in body["items"]]

    assert names("/api/v1/pods", "spec.nodeName=n1") == ["a"]
    assert names("/api/v1/pods", "status.phase!=Pending") == ["a", "c"]
    assert names("/api/v1/pods", "metadata.namespace=kube-system") == ["c"]
    assert names(PODS, "metadata.name=b") == ["b"]
    status, body = api.get(
        "/api/v1/namespaces/default/configmaps", fieldSelector="spec.nodeName=n1"
    )
    # ConfigMaps register no field label conversion: apimachinery's
    # runtime.DefaultMetaV1FieldSelectorConversion refuses the field; pods register theirs
    # (pkg/apis/core/v1/conversion.go).
    assert status == 400 and body["message"] == (
        '"spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )
    status, body = api.get(PODS, fieldSelector="spec.zzz=x,spec.nodeName=n1,spec.aaa=b")
    assert status == 400 and body["message"] == "field label not supported: spec.aaa"
    status, body = api.get(PODS, fieldSelector="metadata.name")
    assert status == 400
    assert body["message"] == "invalid selector: 'metadata.name'; can't understand 'metadata.name'"


def test_pagination_is_consistent_at_the_first_pages_resource_version(
    srv: ApiServer, api: Http
) -> None:
    for i in range(50):
        srv.create("pods", pod(f"p{i:02}"))
    pages: list[dict[str, Any]] = []
    token = ""
    while True:
        params: dict[str, Any] = {"limit": 10}
        if token:
            params["continue"] = token
        status, body = api.get(PODS, **params)
        assert status == 200, body
        pages.append(body)
        if len(pages) == 1:
            srv.delete("pods", "p45")  # later pages still show the first page's state
            srv.create("pods", pod("p99"))
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert len(pages) == 5
    assert {p["metadata"]["resourceVersion"] for p in pages} == {
        pages[0]["metadata"]["resourceVersion"]
    }
    assert [p["metadata"].get("remainingItemCount") for p in pages] == [40, 30, 20, 10, None]
    names = [i["metadata"]["name"] for p in pages for i in p["items"]]
    assert names == [f"p{i:02}" for i in range(50)]


def test_pagination_with_selector_has_no_remaining_count(srv: ApiServer, api: Http) -> None:
    for i in range(6):
        srv.create("pods", pod(f"p{i}", app="x"))
    _status, body = api.get(PODS, limit=2, labelSelector="app=x")
    assert body["metadata"]["continue"] and "remainingItemCount" not in body["metadata"]


def test_continue_token_expires_with_compaction(srv: ApiServer, api: Http) -> None:
    for i in range(5):
        srv.create("pods", pod(f"p{i}"))
    _, first = api.get(PODS, limit=2)
    srv.create("pods", pod("p9"))
    srv.compact()
    status, body = api.get(PODS, limit=2, **{"continue": first["metadata"]["continue"]})
    assert status == 410 and body["reason"] == "Expired" and body["code"] == 410
    assert body["message"].startswith(
        "The provided continue parameter is too old to display a consistent list result."
    )
    fresh = body["metadata"]["continue"]
    decoded = json.loads(base64.urlsafe_b64decode(fresh + "=" * (-len(fresh) % 4)))
    assert decoded["rv"] == -1
    status, rest = api.get(PODS, limit=10, **{"continue": fresh})
    assert status == 200
    assert [i["metadata"]["name"] for i in rest["items"]] == ["p2", "p3", "p4", "p9"]
    assert rest["metadata"]["resourceVersion"] == str(srv.resource_version)


def test_invalid_continue_token_answers_400(api: Http) -> None:
    assert api.get(PODS, limit=1, **{"continue": "garbage!"})[0] == 400


def test_list_resource_version_semantics(srv: ApiServer, api: Http) -> None:
    for i in range(3):
        srv.create("pods", pod(f"p{i}"))
    rv = srv.resource_version
    srv.create("pods", pod("p3"))
    _, exact = api.get(PODS, resourceVersion=rv, resourceVersionMatch="Exact")
    assert len(exact["items"]) == 3 and exact["metadata"]["resourceVersion"] == str(rv)
    _, legacy = api.get(PODS, resourceVersion=rv, limit=10)  # rv + limit: exact
    assert len(legacy["items"]) == 3
    _, newer = api.get(PODS, resourceVersion=rv, resourceVersionMatch="NotOlderThan")
    assert len(newer["items"]) == 4
    _, any_rv = api.get(PODS, resourceVersion="0", limit=1)  # served from cache: no paging
    assert len(any_rv["items"]) == 4 and "continue" not in any_rv["metadata"]
    status, body = api.get(PODS, resourceVersion=srv.resource_version + 100)
    assert status == 504 and body["reason"] == "Timeout"
    assert body["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    srv.compact()
    status, body = api.get(PODS, resourceVersion=rv, resourceVersionMatch="Exact")
    assert status == 410 and body["reason"] == "Expired"
    assert body["message"] == "The resourceVersion for the provided list is too old."


def test_read_ahead_of_history_answers_504_resource_version_too_large(
    srv: ApiServer, api: Http
) -> None:
    srv.create("pods", pod("a"))
    current = srv.resource_version
    ahead = current + 100
    # kube-apiserver's watch cache: storage.NewTooLargeResourceVersionError, 1 s to retry.
    expected = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"Timeout: Too large resource version: {ahead}, current: {current}",
        "reason": "Timeout",
        "details": {
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        },
        "code": 504,
    }
    reads: list[tuple[str, dict[str, Any]]] = [
        (PODS, {"resourceVersion": ahead, "resourceVersionMatch": "NotOlderThan"}),
        (PODS, {"resourceVersion": ahead}),
        (f"{PODS}/a", {"resourceVersion": ahead}),
    ]
    for path, params in reads:
        status, body, response = api.request("GET", path, **params)
        assert (status, body) == (504, expected), path
        assert response.getheader("Retry-After") == "1"
    status, body = api.get(f"{PODS}/a", resourceVersion=current)
    assert status == 200 and body["metadata"]["name"] == "a"


def test_read_ahead_of_history_is_answered_as_soon_as_the_store_catches_up() -> None:
    with ApiServer(too_large_wait=60) as srv:
        api = Http(srv)
        ahead = srv.resource_version + 1
        answers: list[tuple[int, Any]] = []
        reader = threading.Thread(
            target=lambda: answers.append(api.get(PODS, resourceVersion=ahead)), daemon=True
        )
        reader.start()
        eventually(lambda: bool(srv.store._rv_waiters))  # the read is waiting
        srv.create("pods", pod("a"))
        reader.join(10)
        assert not reader.is_alive(), "the read waited past the write it was waiting for"
    status, body = answers[0]
    assert status == 200 and [i["metadata"]["name"] for i in body["items"]] == ["a"]
    assert body["metadata"]["resourceVersion"] == str(ahead)


@pytest.mark.parametrize(
    "params",
    [
        {"resourceVersionMatch": "Exact"},
        {"resourceVersion": "0", "resourceVersionMatch": "Exact"},
        {"resourceVersion": "1", "resourceVersionMatch": "Newest"},
        {"sendInitialEvents": "true"},
    ],
)
def test_invalid_list_options_answer_422(api: Http, params: dict[str, str]) -> None:
    status, body = api.get(PODS, **params)
    assert status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith('ListOptions.meta.k8s.io "" is invalid')


def test_continue_with_resource_version_answers_400(srv: ApiServer, api: Http) -> None:
    for i in range(3):
        srv.create("pods", pod(f"p{i}"))
    _, first = api.get(PODS, limit=1)
    status, _ = api.get(PODS, resourceVersion="1", **{"continue": first["metadata"]["continue"]})
    assert status == 400


def test_metadata_only_list_and_get(srv: ApiServer, api: Http) -> None:
    srv.create("pods", pod("a", app="web"))
    status, body, _response = api.request("GET", PODS, headers={"Accept": META_LIST})
    assert status == 200 and body["kind"] == "PartialObjectMetadataList"
    assert body["apiVersion"] == "meta.k8s.io/v1"
    item = body["items"][0]
    assert item["kind"] == "PartialObjectMetadata" and set(item) == {
        "kind",
        "apiVersion",
        "metadata",
    }
    assert item["metadata"]["labels"] == {"app": "web"}
    status, body, _ = api.request("GET", f"{PODS}/a", headers={"Accept": META})
    assert body["kind"] == "PartialObjectMetadata" and "spec" not in body
    kubectl_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    status, body, _ = api.request("GET", PODS, headers={"Accept": kubectl_accept})
    assert body["kind"] == "Table"  # served: see tests/test_apiserver_tables.py
    status, body, _ = api.request(
        "GET", PODS, headers={"Accept": "application/vnd.kubernetes.protobuf"}
    )
    assert status == 406 and body["reason"] == "NotAcceptable"


# ------------------------------------------------------------------ watches


def test_watch_from_resource_version_sends_events_strictly_after_it(
    srv: ApiServer, api: Http
) -> None:
    srv.create("pods", pod("a"))
    rv = srv.resource_version
    srv.create("pods", pod("b"))
    srv.patch("pods", "a", {"metadata": {"labels": {"x": "1"}}})
    with api.watch(PODS, resourceVersion=rv) as w:
        assert w.status == 200
        assert w.response.getheader("Content-Type") == "application/json"
        assert w.response.getheader("Transfer-Encoding") == "chunked"
        srv.delete("pods", "b")
        events = w.events(3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b"),
    ]  # fmt: skip
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > rv


def test_watch_without_resource_version_starts_with_synthetic_added(
    srv: ApiServer, api: Http
) -> None:
    srv.create("pods", pod("a"))
    srv.create("pods", pod("b"))
    with api.watch(PODS) as w:
        first = w.events(2)
        srv.create("pods", pod("c"))
        later = w.events(1)
    assert [e["type"] for e in first] == ["ADDED", "ADDED"]
    assert later[0]["type"] == "ADDED" and later[0]["object"]["metadata"]["name"] == "c"


def test_watch_legacy_watch_path(srv: ApiServer, api: Http) -> None:
    srv.create("pods", pod("a"))
    with api.watch("/api/v1/watch/namespaces/default/pods") as w:
        assert w.next()["object"]["metadata"]["name"] == "a"


def test_bookmarks_at_the_configured_interval_and_only_when_allowed(
    srv: ApiServer, api: Http
) -> None:
    srv.create("pods", pod("a"))
    rv = srv.resource_version
    with api.watch(PODS, resourceVersion=rv, allowWatchBookmarks=True) as w:
        event = w.next()
    assert event["type"] == "BOOKMARK"
    assert event["object"] == {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": str(rv)},
    }
    with api.watch(PODS, resourceVersion=rv, timeoutSeconds=1) as w:
        assert w.ended()  # no bookmark without allowWatchBookmarks
    srv.bookmark_interval = None
    with api.watch(PODS, resourceVersion=rv, allowWatchBookmarks=True, timeoutSeconds=1) as w:
        assert w.ended()


def test_timeout_seconds_ends_the_watch_cleanly(api: Http) -> None:
    started = time.monotonic()
    with api.watch(PODS, timeoutSeconds=1) as w:
        assert w.ended()
    assert 0.9 < time.monotonic() - started < 5


def test_streaming_list_sends_added_then_initial_events_end_bookmark(
    srv: ApiServer, api: Http
) -> None:
    for i in range(3):
        srv.create("pods", pod(f"p{i}"))
    rv = srv.resource_version
    params: dict[str, Any] = {
        "sendInitialEvents": True,
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": True,
    }
    with api.watch(PODS, **params) as w:
        events = w.events(4, skip_bookmarks=False)
        srv.create("pods", pod("p3"))
        later = w.events(1)
    assert [e["type"] for e in events] == ["ADDED"] * 3 + ["BOOKMARK"]
    end = events[3]["object"]["metadata"]
    assert end["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert end["resourceVersion"] == str(rv)
    assert later[0]["object"]["metadata"]["name"] == "p3"


def test_streaming_list_refused_like_an_old_etcd(srv: ApiServer, api: Http) -> None:
    srv.streaming_lists = False
    params: dict[str, Any] = {
        "sendInitialEvents": True,
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": True,
    }
    with api.watch(PODS, **params) as w:
        assert w.status == 200
        event = w.next()
        assert event["type"] == "ERROR" and event["object"]["code"] == 500
        assert w.ended()


def test_invalid_watch_options_answer_422(api: Http) -> None:
    assert api.get(PODS, watch="1", sendInitialEvents="true")[0] == 422
    assert api.get(PODS, watch="1", resourceVersionMatch="NotOlderThan")[0] == 422


def test_label_selector_transitions_arrive_as_added_and_deleted(srv: ApiServer, api: Http) -> None:
    srv.create("pods", pod("a", app="web"))
    rv = srv.resource_version
    with api.watch(PODS, resourceVersion=rv, labelSelector="app=web") as w:
        srv.patch("pods", "a", {"metadata": {"labels": {"app": "db"}}})
        srv.patch("pods", "a", {"metadata": {"labels": {"extra": "1"}}})  # unseen
        srv.patch("pods", "a", {"metadata": {"labels": {"app": "web"}}})
        events = w.events(2)
    gone, back = events
    assert gone["type"] == "DELETED"
    assert gone["object"]["metadata"]["labels"] == {"app": "web"}  # the previous state...
    assert gone["object"]["metadata"]["resourceVersion"] == str(rv + 1)  # ...at the change's rv
    assert back["type"] == "ADDED" and back["object"]["metadata"]["labels"] == {
        "app": "web",
        "extra": "1",
    }


def test_watch_from_compacted_resource_version_gets_error_410_event(
    srv: ApiServer, api: Http
) -> None:
    srv.create("pods", pod("a"))
    old = srv.resource_version
    srv.create("pods", pod("b"))
    srv.compact()
    with api.watch(PODS, resourceVersion=old) as w:
        assert w.status == 200
        event = w.next()
        assert w.ended()
    assert event["type"] == "ERROR"
    status = event["object"]
    assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
    assert status["message"].startswith("too old resource version")
    with api.watch(PODS, resourceVersion=srv.resource_version, timeoutSeconds=1) as w:
        assert w.ended()  # the compaction point itself is still valid


def test_watch_ahead_of_history_is_held_silent_until_newer_changes(
    srv: ApiServer, api: Http
) -> None:
    ahead = srv.resource_version + 3
    with api.watch(PODS, resourceVersion=ahead, allowWatchBookmarks=True) as w:
        assert w.status == 200
        first = w.next()  # a bookmark: the watch is registered
        assert first["type"] == "BOOKMARK"
        for i in range(4):
            srv.create("pods", pod(f"p{i}"))
        (event,) = w.events(1)
    # Only the change newer than the watch's resourceVersion, never the three before it.
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "p3"
    assert event["object"]["metadata"]["resourceVersion"] == str(ahead + 1)


def test_streaming_list_ahead_of_history_gets_an_error_504_event(srv: ApiServer, api: Http) -> None:
    ahead = srv.resource_version + 100
    params: dict[str, Any] = {"sendInitialEvents": True, "resourceVersionMatch": "NotOlderThan"}
    with api.watch(PODS, resourceVersion=ahead, allowWatchBookmarks=True, **params) as w:
        assert w.status == 200
        event = w.next()
        assert w.ended()
    assert event["type"] == "ERROR"
    status = event["object"]
    assert status["code"] == 504 and status["reason"] == "Timeout"
    assert status["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"


def test_metadata_only_watch(srv: ApiServer, api: Http) -> None:
    rv = srv.resource_version
    with api.watch(PODS, resourceVersion=rv, headers={"Accept": META}) as w:
        srv.create("pods", pod("a", app="web"))
        event = w.next()
    assert event["object"]["kind"] == "PartialObjectMetadata"
    assert set(event["object"]) == {"kind", "apiVersion", "metadata"}


def test_watch_single_object_by_field_selector(srv: ApiServer, api: Http) -> None:
    rv = srv.resource_version
    with api.watch(PODS, resourceVersion=rv, fieldSelector="metadata.name=b") as w:
        srv.create("pods", pod("a"))
        srv.create("pods", pod("b"))
        event = w.next()
    assert event["object"]["metadata"]["name"] == "b"


def test_open_watches_counts_connections_and_drops_closed_ones(srv: ApiServer, api: Http) -> None:
    assert srv.open_watches() == 0
    with api.watch(PODS, resourceVersion=srv.resource_version, allowWatchBookmarks=True) as w1:
        w1.next()
        with api.watch(PODS, resourceVersion=srv.resource_version, allowWatchBookmarks=True) as w2:
            w2.next()
            assert srv.open_watches() == 2
        eventually(lambda: srv.open_watches() == 1)
    eventually(lambda: srv.open_watches() == 0)


def _unread_watch(srv: ApiServer, path: str) -> http.client.HTTPConnection:
    """A watch whose client reads nothing yet, with a tiny receive buffer, so the server's
    writes soon block."""
    url = urllib.parse.urlsplit(srv.url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((url.hostname or "", url.port or 0))
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    conn.sock = sock
    conn.request("GET", path)
    return conn


def test_watch_of_a_client_that_does_not_keep_up_is_closed_and_resumable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rxkube.testing")
    with ApiServer(bookmark_interval=None, watch_buffer=10) as srv:
        start = srv.resource_version
        conn = _unread_watch(srv, f"{CONFIGMAPS}?watch=1&resourceVersion={start}")
        try:
            response = conn.getresponse()
            assert response.status == 200
            written = 0
            while not any(
                "watcher close due to unresponsiveness" in r.message for r in caplog.records
            ):
                assert written < 3000, "the server never gave up on the slow watch"
                data = {"blob": f"{written:06d}" + "x" * 20_000}
                srv.create("configmaps", {"metadata": {"name": f"c{written}"}, "data": data})
                written += 1
            record = next(r for r in caplog.records if "unresponsiveness" in r.message)
            assert record.getMessage().startswith(
                'Forcing configmaps watcher close due to unresponsiveness: key: "/configmaps/default"'
            )
            srv.create("configmaps", {"metadata": {"name": "after"}})
            received = []
            while line := response.readline():  # then the stream ends cleanly
                received.append(json.loads(line)["object"]["metadata"])
        finally:
            conn.close()
        # What was queued when the server gave up is dropped, not sent.
        assert len(received) < written
        assert [m["name"] for m in received] == [f"c{i}" for i in range(len(received))]
        last = int(received[-1]["resourceVersion"]) if received else start
        # The client resumes from the last event it read and misses nothing.
        with Http(srv).watch(CONFIGMAPS, resourceVersion=last) as w:
            names: list[str] = []
            while not names or names[-1] != "after":
                names.append(w.next()["object"]["metadata"]["name"])
        assert names == [f"c{i}" for i in range(len(received), written)] + ["after"]


def test_initial_events_do_not_count_against_the_watch_buffer(srv: ApiServer, api: Http) -> None:
    start = srv.resource_version
    for i in range(50):
        srv.create("configmaps", {"metadata": {"name": f"c{i}"}})
    srv.watch_buffer = 5
    with api.watch(CONFIGMAPS, resourceVersion=start) as replay, api.watch(CONFIGMAPS) as state:
        assert len(replay.events(50)) == 50
        assert len(state.events(50)) == 50
        srv.create("configmaps", {"metadata": {"name": "live"}})
        assert replay.next()["object"]["metadata"]["name"] == "live"
        assert state.next()["object"]["metadata"]["name"] == "live"


def test_request_log_records_each_answered_request(srv: ApiServer, api: Http) -> None:
    srv.clear_requests()
    api.get("/version")
    api.get(f"{PODS}/missing")
    api.request("POST", CONFIGMAPS, {"metadata": {"name": "c"}}, fieldManager="me")
    with api.watch(CONFIGMAPS, resourceVersion=srv.resource_version, labelSelector="a=b"):
        eventually(lambda: len(srv.requests) == 4)
        watch = srv.requests[-1]
    version, get, create = srv.requests[:3]
    assert (version.method, version.path, version.verb, version.status) == (
        "GET", "/version", "discovery", 200,
    )  # fmt: skip
    assert version.resource is None and version.query == {}
    assert (get.verb, get.status, get.resource, get.namespace, get.name) == (
        "get", 404, "pods", "default", "missing",
    )  # fmt: skip
    assert (create.method, create.verb, create.status, create.query) == (
        "POST", "create", 201, {"fieldManager": "me"},
    )  # fmt: skip
    assert create.content_type == "application/json" and get.content_type == ""
    assert watch.verb == "watch" and watch.status == 200 and watch.name is None
    assert watch.query == {"watch": "1", "resourceVersion": watch.query["resourceVersion"],
                           "labelSelector": "a=b"}  # fmt: skip
    srv.clear_requests()
    assert srv.requests == []


def test_request_log_keeps_the_latest_and_records_refusals() -> None:
    with ApiServer(token="t", request_log_size=3) as srv:
        api = Http(srv, token="t")
        for i in range(5):
            api.get(f"{PODS}/p{i}")
        assert [r.name for r in srv.requests] == ["p2", "p3", "p4"]
        Http(srv).get(PODS)
        refused = srv.requests[-1]
        assert (refused.status, refused.verb, refused.resource) == (401, None, None)


def test_automatic_compaction_every_n_writes() -> None:
    with ApiServer(compact_every=10) as server:
        api = Http(server)
        start = server.resource_version
        for i in range(25):
            server.create("configmaps", {"metadata": {"name": f"c{i}"}})
        with api.watch("/api/v1/namespaces/default/configmaps", resourceVersion=start) as w:
            assert w.next()["type"] == "ERROR"
        with api.watch(
            "/api/v1/namespaces/default/configmaps", resourceVersion=server.resource_version - 5
        ) as w:
            assert w.next()["object"]["metadata"]["name"] == "c20"


# ------------------------------------------------------------------- faults


def test_fail_requests_with_status_and_retry_after(srv: ApiServer, api: Http) -> None:
    srv.faults.fail_requests(429, count=2, verb="list", retry_after=3)
    assert api.get(f"{PODS}/x")[0] == 404  # a get is not a list
    status, body, response = api.request("GET", PODS)
    assert status == 429 and body["reason"] == "TooManyRequests"
    assert response.getheader("Retry-After") == "3" and body["details"]["retryAfterSeconds"] == 3
    assert api.get(PODS)[0] == 429
    assert api.get(PODS)[0] == 200
    for code, reason in [(500, "InternalError"), (503, "ServiceUnavailable"), (403, "Forbidden")]:
        srv.faults.fail_requests(code)
        status, body = api.get("/version")
        assert (status, body["reason"]) == (code, reason)


def test_fail_watch_requests(srv: ApiServer, api: Http) -> None:
    srv.faults.fail_requests(503, verb="watch")
    status, body = api.get(PODS, watch="1")
    assert status == 503 and body["kind"] == "Status"


def test_delay_responses(srv: ApiServer, api: Http) -> None:
    srv.faults.delay_responses(0.5, count=1)
    started = time.monotonic()
    assert api.get(PODS)[0] == 200
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    api.get(PODS)
    assert time.monotonic() - started < 0.5


def test_close_watches_now(srv: ApiServer, api: Http) -> None:
    with api.watch(PODS, resourceVersion=srv.resource_version, allowWatchBookmarks=True) as w:
        w.next()
        srv.faults.close_watches()
        while w.raw_line():
            pass
    eventually(lambda: srv.open_watches() == 0)


def test_close_watches_after_n_events(srv: ApiServer, api: Http) -> None:
    srv.faults.close_watches(after_events=2)
    with api.watch(PODS, resourceVersion=srv.resource_version) as w:
        for i in range(4):
            srv.create("pods", pod(f"p{i}"))
        events = w.events(2)
        assert w.ended()
    assert [e["object"]["metadata"]["name"] for e in events] == ["p0", "p1"]


def test_close_watches_abruptly(srv: ApiServer, api: Http) -> None:
    srv.faults.close_watches(after_events=1, abrupt=True)
    with api.watch(PODS, resourceVersion=srv.resource_version) as w:
        srv.create("pods", pod("a"))
        w.next()
        with pytest.raises(http.client.IncompleteRead):  # no terminating chunk
            w.response.read()


def test_corrupt_next_event_garbled(srv: ApiServer, api: Http) -> None:
    srv.faults.corrupt_next_event("garbled")
    with api.watch(PODS, resourceVersion=srv.resource_version) as w:
        srv.create("pods", pod("a"))
        srv.create("pods", pod("b"))
        line = w.raw_line()
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
        assert w.next()["object"]["metadata"]["name"] == "b"


def test_corrupt_next_event_truncated(srv: ApiServer, api: Http) -> None:
    srv.faults.corrupt_next_event("truncated")
    with api.watch(PODS, resourceVersion=srv.resource_version) as w:
        srv.create("pods", pod("a"))
        with pytest.raises(http.client.IncompleteRead) as info:  # the connection was dropped
            w.response.read()
    assert info.value.partial.startswith(b'{"type":"ADDED"')
    assert not info.value.partial.endswith(b"\n")


def test_stalled_watch_sends_headers_then_nothing(srv: ApiServer, api: Http) -> None:
    srv.faults.stall_watches()
    with api.watch(PODS, timeout=0.5, allowWatchBookmarks=True, timeoutSeconds=1) as w:
        assert w.status == 200
        srv.create("pods", pod("a"))
        with pytest.raises(TimeoutError):
            w.raw_line()
        assert srv.open_watches() == 1
    eventually(lambda: srv.open_watches() == 0)


def test_restart_drops_connections_and_keeps_state(srv: ApiServer, api: Http) -> None:
    srv.create("pods", pod("a"))
    rv = srv.resource_version
    with api.watch(PODS, resourceVersion=rv) as w:
        srv.create("pods", pod("b"))
        w.next()
        srv.restart()
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            w.response.read()
    eventually(lambda: srv.open_watches() == 0)
    with api.watch(PODS, resourceVersion=rv) as w:
        assert w.next()["object"]["metadata"]["name"] == "b"
    assert [p["metadata"]["name"] for p in srv.list("pods")] == ["a", "b"]


def test_faults_clear(srv: ApiServer, api: Http) -> None:
    srv.faults.fail_requests(500, count=5)
    srv.faults.clear()
    assert api.get(PODS)[0] == 200


# --------------------------------------------------------- test-side object API


def test_object_api_writes_like_etcd_and_raises_typed_errors(srv: ApiServer) -> None:
    created = srv.create(
        "Pod", {**pod("a"), "status": {"phase": "Running"}}, namespace="kube-system"
    )
    assert created["status"] == {"phase": "Running"}  # kept as given, unlike HTTP create
    assert (
        srv.get("pods", "a", namespace="kube-system")["metadata"]["uid"]
        == created["metadata"]["uid"]
    )
    with pytest.raises(Conflict):
        srv.create("pods", pod("a"), namespace="kube-system")
    with pytest.raises(NotFound):
        srv.get("pods", "a")
    stale = dict(created)
    srv.patch("po", "a", {"metadata": {"labels": {"x": "1"}}}, namespace="kube-system")
    with pytest.raises(Conflict):
        srv.replace("pods", stale)
    with pytest.raises(Invalid):
        srv.patch(
            "pods",
            "a",
            [{"op": "test", "path": "/kind", "value": "Node"}],
            namespace="kube-system",
            patch_type="json",
        )
    status = srv.replace("pods", {**srv.get("pods", "a", namespace="kube-system"), "status": {"phase": "Failed"}},
                         subresource="status")  # fmt: skip
    assert status["status"]["phase"] == "Failed"
    assert srv.list("pods", label_selector="x=1")[0]["metadata"]["name"] == "a"
    assert srv.list("pods", namespace="default") == []
    srv.delete("pods", "a", namespace="kube-system")
    assert srv.list("pods") == []


def test_custom_resources(srv: ApiServer, api: Http) -> None:
    widgets = srv.add_resource("example.com", "v1", "Widget", "widgets", short_names=["wd"])
    assert srv.resource("wd") == widgets
    srv.create("widgets.example.com", {"metadata": {"name": "w"}, "spec": {"size": 1}})
    status, body = api.get("/apis/example.com/v1/namespaces/default/widgets")
    assert (
        status == 200
        and body["kind"] == "WidgetList"
        and body["items"][0]["apiVersion"] == "example.com/v1"
    )
    status, body, _ = api.request("DELETE", "/apis/example.com/v1/namespaces/default/widgets/w")
    assert (status, body["kind"], body["status"]) == (200, "Status", "Success")


def test_async_server_runs_on_the_callers_loop() -> None:
    async def main() -> None:
        async with ApiServer() as server:
            assert not any(t.name == "rxkube-apiserver" for t in threading.enumerate())
            server.create("pods", pod("a"))
            loop = asyncio.get_running_loop()
            status, body = await loop.run_in_executor(None, Http(server).get, PODS)
            assert status == 200 and body["items"][0]["metadata"]["name"] == "a"

    asyncio.run(main())


def test_sync_server_thread_is_named_and_ends(srv: ApiServer) -> None:
    assert any(t.name == "rxkube-apiserver" for t in threading.enumerate())


def test_server_stays_up_after_a_client_drops_mid_request(srv: ApiServer, api: Http) -> None:
    host, port = api.url.hostname or "", api.url.port or 0
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        )
    assert api.get("/version")[0] == 200


def test_pytest_fixtures(apiserver: ApiServer, kubeconfig: Path) -> None:
    assert apiserver.url and kubeconfig.exists()
    assert Http(apiserver).get("/version")[0] == 200


@pytest.mark.rxkube_apiserver(token="from-marker", bookmark_interval=None)
def test_pytest_marker_configures_the_fixture(apiserver: ApiServer) -> None:
    assert apiserver.token == "from-marker" and apiserver.bookmark_interval is None
    assert Http(apiserver).get("/version")[0] == 401


def test_standalone_mode_prints_url_and_kubeconfig_and_stops_on_sigint(tmp_path: Path) -> None:
    objects = tmp_path / "objects.yaml"
    objects.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: seeded}\n---\n"
                       "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: default}\n")  # fmt: skip
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rxkube.testing",
            "--kubeconfig",
            str(tmp_path / "kc"),
            "--load",
            str(objects),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("loaded 2 objects")
        url = lines[1].rsplit(" ", 1)[1].strip()
        assert lines[2].strip() == f"kubeconfig: {tmp_path / 'kc'}"
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
        conn.request("GET", "/api/v1/namespaces/default/configmaps/seeded")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_client_is_ready_for_token_and_tls() -> None:
    from rxkube.client import Api

    with ApiServer(tls=True, token="t") as server:
        server.create("configmaps", {"metadata": {"name": "a"}})
        rx_client = server.client()
        try:
            names = [
                o["metadata"]["name"]
                for o in Api(rx_client, "configmaps", "default").list()["items"]
            ]
        finally:
            rx_client.close()
    assert names == ["a"]


def test_secret_string_data_is_folded_into_data(api: Http) -> None:
    secrets = "/api/v1/namespaces/default/secrets"
    body = {"metadata": {"name": "s"}, "data": {"a": "b2xk"}, "stringData": {"a": "new", "b": "x"}}
    status, created, _ = api.request("POST", secrets, body)
    assert status == 201 and "stringData" not in created
    assert created["data"] == {"a": base64.b64encode(b"new").decode(), "b": "eA=="}
    created["stringData"] = {"c": "y"}
    status, updated, _ = api.request("PUT", f"{secrets}/s", created)
    assert status == 200 and updated["data"]["c"] == "eQ==" and "stringData" not in updated
    status, stored = api.get(f"{secrets}/s")
    assert "stringData" not in stored and set(stored["data"]) == {"a", "b", "c"}
