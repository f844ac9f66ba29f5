"""What the test server answers since it was compared with a real kube-apiserver.

Each test pins an answer ``tests/test_fidelity_differential.py`` found the real server
to give (in v1.32 as in v1.36, unless said), so that the test server keeps it where no
real server is at hand (as on CI).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from rxkube.testing import ApiServer
from tests.apiserver_http import Http

PODS = "/api/v1/namespaces/default/pods"
CMS = "/api/v1/namespaces/default/configmaps"


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "i"}], **spec},
    }


def managed(obj: dict[str, Any]) -> dict[str, Any]:
    [entry] = obj["metadata"]["managedFields"]
    fields: dict[str, Any] = entry["fieldsV1"]
    return fields


def test_pods_pass_the_priority_and_default_toleration_seconds_admission(api: Http) -> None:
    status, created = api.request("POST", PODS, pod("p"))[:2]
    assert status == 201
    spec = created["spec"]
    assert (spec["priority"], spec["preemptionPolicy"]) == (0, "PreemptLowerPriority")
    assert spec["tolerations"] == [
        {"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}
        for taint in ("not-ready", "unreachable")
    ]  # fmt: skip
    # Admission runs after the field manager: none of it is the writer's.
    assert {"f:priority", "f:preemptionPolicy", "f:tolerations"}.isdisjoint(
        managed(created)["f:spec"]
    )
    # A pod that tolerates every NoExecute taint gets none; an update keeps what admission set.
    tolerant = pod("q", tolerations=[{"operator": "Exists", "effect": "NoExecute"}])
    _, created = api.request("POST", PODS, tolerant)[:2]
    assert created["spec"]["tolerations"] == [{"operator": "Exists", "effect": "NoExecute"}]
    changed = {**created, "spec": {k: v for k, v in created["spec"].items() if k != "priority"}}
    status, updated = api.request("PUT", f"{PODS}/q", changed)[:2]
    assert status == 200 and updated["spec"]["priority"] == 0


def test_a_pods_priority_class_gives_its_priority_or_a_403(api: Http) -> None:
    classes = "/apis/scheduling.k8s.io/v1/priorityclasses"
    status, made = api.request("POST", classes, {"metadata": {"name": "high"}, "value": 1000})[:2]
    assert status == 201 and made["preemptionPolicy"] == "PreemptLowerPriority"  # defaulted
    _, created = api.request("POST", PODS, pod("p", priorityClassName="high"))[:2]
    assert created["spec"]["priority"] == 1000
    status, refused = api.request("POST", PODS, pod("q", priorityClassName="none"))[:2]
    assert status == 403 and refused["message"] == (
        'pods "q" is forbidden: no PriorityClass with name none was found'
    )
    status, refused = api.request("POST", PODS, pod("r", priorityClassName="high", priority=5))[:2]
    assert (
        status == 403
        and "the integer value of priority (5) must not be provided" in (refused["message"])
    )


def test_an_unbound_pods_deletion_is_marked_before_it_goes(srv: ApiServer, api: Http) -> None:
    """``podStrategy.CheckGracefulTermination`` gives it a period of 0, and the registry
    writes the mark all the same: MODIFIED, then DELETED."""
    rv = api.get(PODS)[1]["metadata"]["resourceVersion"]
    with api.watch(PODS, resourceVersion=rv) as watch:
        api.request("POST", PODS, pod("p", serviceAccountName="robot"))
        status, deleted = api.request("DELETE", f"{PODS}/p")[:2]
        events = watch.events(3)
    assert status == 200 and deleted["metadata"]["deletionGracePeriodSeconds"] == 0
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1]["object"]["metadata"]["deletionTimestamp"]
    assert events[2]["object"]["metadata"] == events[1]["object"]["metadata"] | {
        "resourceVersion": events[2]["object"]["metadata"]["resourceVersion"]
    }
    # The v1 conversion's alias of the service account, in the writer's fields too.
    assert events[0]["object"]["spec"]["serviceAccount"] == "robot"
    assert "f:serviceAccount" in managed(events[0]["object"])["f:spec"]
    # Other kinds are not deleted gracefully: one DELETED.
    srv.create("configmaps", {"metadata": {"name": "c"}})
    with api.watch(CMS, resourceVersion=str(srv.resource_version)) as watch:
        api.request("DELETE", f"{CMS}/c")
        assert [e["type"] for e in watch.events(1)] == ["DELETED"]


def test_namespaces_and_secrets_as_kube_apiserver_completes_them(api: Http) -> None:
    _, created = api.request("POST", "/api/v1/namespaces", {"metadata": {"name": "n"}})[:2]
    assert created["metadata"]["labels"] == {"kubernetes.io/metadata.name": "n"}
    assert created["spec"] == {"finalizers": ["kubernetes"]}
    # Defaulting's label is the writer's, the strategy's finalizer no one's.
    assert managed(created) == {
        "f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/metadata.name": {}}}
    }
    assert api.get("/api/v1/namespaces/default")[1]["spec"] == {"finalizers": ["kubernetes"]}
    _, secret = api.request(
        "POST", "/api/v1/namespaces/default/secrets", {"metadata": {"name": "s"}}
    )[:2]
    assert secret["type"] == "Opaque" and managed(secret) == {"f:type": {}}


def test_created_objects_start_with_their_go_types_empty_status(api: Http) -> None:
    labels = {"app": "w"}
    template = {"metadata": {"labels": labels}, "spec": pod("")["spec"]}
    body = {
        "metadata": {"name": "w"},
        "spec": {"selector": {"matchLabels": labels}, "template": template},
    }
    for plural, status in (("deployments", {}), ("replicasets", {"replicas": 0})):
        answer = api.request("POST", f"/apis/apps/v1/namespaces/default/{plural}", body)[1]
        assert answer["status"] == status, plural


def test_a_services_allocations_are_no_managers_and_its_selector_is_atomic(api: Http) -> None:
    service = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}}
    _, created = api.request("POST", "/api/v1/namespaces/default/services", service)[:2]
    assert created["spec"]["clusterIP"] and created["spec"]["ipFamilies"] == ["IPv4"]
    spec = managed(created)["f:spec"]
    assert spec["f:selector"] == {}
    assert {"f:clusterIP", "f:clusterIPs", "f:ipFamilies", "f:ipFamilyPolicy"}.isdisjoint(spec)
    assert "f:type" in spec and "f:sessionAffinity" in spec  # defaulted: the writer's


def test_empty_metadata_collections_are_dropped(api: Http) -> None:
    body = {"metadata": {"name": "a", "labels": {}, "annotations": {}, "finalizers": []}}
    _, created = api.request("POST", CMS, body)[:2]
    assert not {"labels", "annotations", "finalizers"} & created["metadata"].keys()
    _, patched = api.request(
        "PATCH", f"{CMS}/a", {"metadata": {"labels": {"x": "y"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )[:2]  # fmt: skip
    _, patched = api.request(
        "PATCH", f"{CMS}/a", {"metadata": {"labels": {"x": None}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )[:2]  # fmt: skip
    assert "labels" not in patched["metadata"]


def test_a_puts_name_is_checked_before_the_object_is_looked_up(api: Http) -> None:
    status, body = api.request("PUT", f"{CMS}/b", {"metadata": {"name": "a"}})[:2]
    assert status == 400
    assert body["message"] == "the name of the object (a) does not match the name on the URL (b)"


def test_an_apply_without_a_name_keeps_the_live_objects(api: Http) -> None:
    """The handler checks the name of the applied result (``checkName``)."""
    config = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}}
    status, body = api.apply(f"{CMS}/a", config, "m")
    assert status == 400
    assert body["message"] == "the name of the object () does not match the name on the URL (a)"
    api.request("POST", CMS, {"metadata": {"name": "a"}})
    status, body = api.apply(f"{CMS}/a", config, "m")
    assert status == 200 and body["data"] == {"k": "v"}
    status, body = api.apply(f"{CMS}/a", {**config, "metadata": {"name": "b"}}, "m")
    assert status == 400 and "(b) does not match the name on the URL (a)" in body["message"]


def test_a_resource_version_that_is_not_a_number(api: Http) -> None:
    """The storage's error: passed through by v1.32's watch cache (a 500 without a
    reason), wrapped by its etcd store (a list with a limit)."""
    text = 'resourceVersion: Invalid value: "x1": strconv.ParseUint: parsing "x1": invalid syntax'
    for params in ({}, {"watch": "1"}):
        status, body = api.get(CMS, resourceVersion="x1", **params)
        assert (status, body["message"], "reason" in body) == (500, text, False)
    status, body = api.get(f"{CMS}/a", resourceVersion="x1")
    assert (status, body["message"]) == (500, text)
    status, body = api.get(CMS, resourceVersion="x1", limit="5")
    assert (status, body["message"], body["reason"]) == (
        400,
        "invalid resource version: " + text,
        "BadRequest",
    )


def test_every_bad_resource_version_match_is_a_cause(api: Http) -> None:
    status, body = api.get(CMS, resourceVersionMatch="Other")
    assert status == 422
    assert body["details"] == {
        "group": "meta.k8s.io",
        "kind": "ListOptions",
        "causes": [
            {"reason": "FieldValueForbidden", "field": "resourceVersionMatch",
             "message": "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"},
            {"reason": "FieldValueNotSupported", "field": "resourceVersionMatch",
             "message": 'Unsupported value: "Other": supported values: "Exact", "NotOlderThan", ""'},
        ],
    }  # fmt: skip
    status, body = api.get(CMS, watch="1", resourceVersionMatch="Exact", sendInitialEvents="false")
    assert status == 422 and [c["message"] for c in body["details"]["causes"]] == [
        "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        'Unsupported value: "Exact": supported values: "NotOlderThan"',
    ]


def token(rv: object, start: str) -> str:
    data = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_continue_tokens_are_read_as_the_storage_reads_them(srv: ApiServer, api: Http) -> None:
    for name in ("a", "b", "c"):
        srv.create("configmaps", {"metadata": {"name": name}})
    rv = srv.resource_version
    # v1.32's watch cache (and v1.36's) writes the start key rooted: the same key.
    for start in ("b\x00", "/b\x00"):
        status, page = api.get(CMS, **{"continue": token(rv, start)})
        assert status == 200 and [i["metadata"]["name"] for i in page["items"]] == ["c"]
    prefix = "invalid continue token: continue key is not valid"
    for value, why in (
        ("garbage", ": invalid character '\\x81' looking for beginning of value"),
        ("a*b", ": illegal base64 data at input byte 1"),
        (token(0, "b"), ": incorrect encoded start resourceVersion (version meta.k8s.io/v1)"),
        (token(rv, ""), ": encoded start key empty (version meta.k8s.io/v1)"),
        (token(rv, "../x"), ": ../x"),
        (token(rv, "b/./x"), ": b/./x"),
    ):
        status, body = api.get(CMS, **{"continue": value})
        assert (status, body["message"]) == (400, prefix + why), value


def test_a_core_event_shows_its_go_types_empty_fields(api: Http) -> None:
    event = {
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Started",
    }
    _, created = api.request("POST", "/api/v1/namespaces/default/events", event)[:2]
    assert {k: created[k] for k in ("source", "firstTimestamp", "eventTime", "reportingComponent")} == {
        "source": {}, "firstTimestamp": None, "eventTime": None, "reportingComponent": ""
    }  # fmt: skip
    # An ObjectReference is atomic, and the empty fields are no one's.
    assert managed(created) == {"f:involvedObject": {}, "f:reason": {}}


def test_a_custom_resource_list_carries_an_empty_continue(srv: ApiServer, api: Http) -> None:
    widgets = srv.add_resource("example.com", "v1", "Widget", "widgets")
    srv.create(widgets, {"metadata": {"name": "w"}})
    listed = api.get("/apis/example.com/v1/namespaces/default/widgets")[1]
    assert listed["metadata"]["continue"] == ""
    # A built-in list's ListMeta omits it.
    assert "continue" not in api.get(CMS)[1]["metadata"]
