"""``dryRun=All`` on every write of the test API server: every check, no change.

kube-apiserver's dry-run storage runs a write through decoding, defaulting, validation,
admission and conflicts, answers what it would store, and stores nothing: no new
resourceVersion, no watch event. ``kubectl diff`` and ``--dry-run=server`` rely on it.
"""

from __future__ import annotations

from typing import Any

import pytest

from rxkube.testing import ApiServer
from tests.apiserver_http import Http
from tests.test_apiserver import CONFIGMAPS, pod

PODS = "/api/v1/namespaces/default/pods"


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": data}


def revision(api: Http) -> str:
    status, listing = api.get(CONFIGMAPS)
    assert status == 200
    rv: str = listing["metadata"]["resourceVersion"]
    return rv


def assert_nothing_happened(api: Http, srv: ApiServer, since: str) -> None:
    """No revision was used up and a watch from ``since`` sees only a later real write."""
    assert revision(api) == since
    with api.watch(CONFIGMAPS, resourceVersion=since) as watch:
        srv.create("configmaps", configmap("marker"))
        event = watch.events(1)[0]
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "marker"


def test_dry_run_create_answers_the_object_and_stores_nothing(api: Http, srv: ApiServer) -> None:
    before = revision(api)
    status, body, _ = api.request("POST", CONFIGMAPS, configmap("a", k="v"), dryRun="All")
    assert status == 201
    meta = body["metadata"]
    assert meta["name"] == "a" and meta["uid"] and meta["creationTimestamp"]
    assert "resourceVersion" not in meta  # the storage never assigned one
    assert api.get(f"{CONFIGMAPS}/a")[0] == 404
    assert_nothing_happened(api, srv, before)


def test_dry_run_create_still_validates_and_conflicts(api: Http) -> None:
    status, body, _ = api.request("POST", CONFIGMAPS, configmap("Bad_Name"), dryRun="All")
    assert status == 422 and body["reason"] == "Invalid"
    api.request("POST", CONFIGMAPS, configmap("a"))
    status, body, _ = api.request("POST", CONFIGMAPS, configmap("a"), dryRun="All")
    assert status == 409 and body["reason"] == "AlreadyExists"


def test_dry_run_update_and_patches_answer_the_change_and_keep_the_object(
    api: Http, srv: ApiServer
) -> None:
    _, created, _ = api.request("POST", CONFIGMAPS, configmap("a", k="1"))
    rv = created["metadata"]["resourceVersion"]
    before = revision(api)
    changed = {**created, "data": {"k": "2"}}
    status, body, _ = api.request("PUT", f"{CONFIGMAPS}/a", changed, dryRun="All")
    assert status == 200 and body["data"] == {"k": "2"}
    assert body["metadata"]["resourceVersion"] == rv
    status, body, _ = api.request(
        "PATCH",
        f"{CONFIGMAPS}/a",
        {"data": {"k": "3"}},
        headers={"Content-Type": "application/merge-patch+json"},
        dryRun="All",
    )
    assert status == 200 and body["data"] == {"k": "3"}
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}
    status, body, _ = api.request(
        "PATCH",
        f"{CONFIGMAPS}/a",
        {**manifest, "data": {"k": "4"}},
        headers={"Content-Type": "application/apply-patch+yaml"},
        fieldManager="test",
        force="true",
        dryRun="All",
    )
    assert status == 200 and body["data"] == {"k": "4"}
    status, body, _ = api.request(
        "PATCH",
        f"{CONFIGMAPS}/b",
        {**manifest, "metadata": {"name": "b"}},
        headers={"Content-Type": "application/apply-patch+yaml"},
        fieldManager="test",
        dryRun="All",
    )
    assert status == 201  # an apply that would create
    assert api.get(f"{CONFIGMAPS}/a")[1]["data"] == {"k": "1"}
    assert api.get(f"{CONFIGMAPS}/b")[0] == 404
    assert_nothing_happened(api, srv, before)


def test_dry_run_delete_answers_as_a_delete_and_keeps_the_object(api: Http, srv: ApiServer) -> None:
    api.request("POST", CONFIGMAPS, configmap("a"))
    held = {"metadata": {"name": "held", "finalizers": ["example.com/keep"]}}
    api.request("POST", CONFIGMAPS, held)
    before = revision(api)
    status, body, _ = api.request("DELETE", f"{CONFIGMAPS}/a", dryRun="All")
    assert status == 200 and body["kind"] == "Status" and body["status"] == "Success"
    status, body, _ = api.request("DELETE", f"{CONFIGMAPS}/held", dryRun="All")
    assert status == 200 and body["metadata"]["deletionTimestamp"]
    body_options = {"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]}
    status, _, _ = api.request("DELETE", f"{CONFIGMAPS}/a", body_options)
    assert status == 200
    status, listing, _ = api.request("DELETE", CONFIGMAPS, dryRun="All")
    assert status == 200 and len(listing["items"]) == 2
    assert api.get(f"{CONFIGMAPS}/a")[0] == 200
    assert "deletionTimestamp" not in api.get(f"{CONFIGMAPS}/held")[1]["metadata"]
    assert_nothing_happened(api, srv, before)


@pytest.mark.parametrize(
    ("method", "path", "options"),
    [
        ("POST", CONFIGMAPS, "CreateOptions"),
        ("PUT", f"{CONFIGMAPS}/a", "UpdateOptions"),
        ("DELETE", f"{CONFIGMAPS}/a", "DeleteOptions"),
    ],
)
def test_a_dry_run_other_than_all_is_refused(
    api: Http, method: str, path: str, options: str
) -> None:
    _, created, _ = api.request("POST", CONFIGMAPS, configmap("a"))
    body = created if method == "PUT" else None if method == "DELETE" else configmap("b")
    status, answer, _ = api.request(method, path, body, dryRun="true")
    assert status == 422 and answer["reason"] == "Invalid"
    assert answer["message"] == (
        f'{options}.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{{"true"}}:'
        ' supported values: "All"'
    )
    assert answer["details"]["causes"][0]["reason"] == "FieldValueNotSupported"


def test_dry_run_of_a_pod_keeps_the_create_strategy(api: Http) -> None:
    status, body, _ = api.request("POST", PODS, pod("web"), dryRun="All")
    assert status == 201 and body["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert api.get(f"{PODS}/web")[0] == 404
