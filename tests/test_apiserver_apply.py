"""Server-side apply and managedFields on rxkube.testing.ApiServer, over plain HTTP.

The expected answers follow kube-apiserver's field manager (k8s.io/apimachinery
``managedfields``) and sigs.k8s.io/structured-merge-diff: ownership per manager in
``fieldsV1`` notation, conflicts, forced takeover, removal of fields an applier drops,
``Update`` entries for other writes, ``before-first-apply``, reset of managedFields.
"""

from __future__ import annotations

from typing import Any

import pytest

from rxkube.errors import Conflict
from rxkube.testing import ApiServer
from tests.apiserver_http import APPLY, Http

MERGE = "application/merge-patch+json"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
PODS = "/api/v1/namespaces/default/pods"


def configmap(name: str = "cm", **data: str) -> dict[str, Any]:
    """An apply configuration of a ConfigMap; without ``data`` when none is given."""
    config: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
    if data:
        config["data"] = data
    return config


def deployment(**container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1", **container}]},
            },
        },
    }


def entries(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """managedFields by ``manager/operation``."""
    fields = obj["metadata"].get("managedFields") or []
    return {f"{e['manager']}/{e['operation']}": e for e in fields}


# --------------------------------------------------------------- applying


def test_apply_creates_the_object_and_records_the_appliers_fields(api: Http) -> None:
    status, created = api.apply(
        f"{DEPLOYMENTS}/web", deployment(ports=[{"containerPort": 80}]), "alice"
    )
    assert status == 201
    assert created["spec"]["replicas"] == 2 and created["metadata"]["generation"] == 1
    [entry] = created["metadata"]["managedFields"]
    assert {k: v for k, v in entry.items() if k != "time"} == {
        "manager": "alice",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:containers": {
                            'k:{"name":"web"}': {
                                ".": {},
                                "f:image": {},
                                "f:name": {},
                                "f:ports": {
                                    'k:{"containerPort":80,"protocol":"TCP"}': {
                                        ".": {},
                                        "f:containerPort": {},
                                    }
                                },
                            }
                        }
                    },
                },
            },
        },
    }
    assert entry["time"].endswith("Z")
    assert api.apply(f"{DEPLOYMENTS}/web", deployment(), "alice")[0] == 200


def test_apply_needs_a_field_manager_and_force_needs_apply(api: Http) -> None:
    status, body, _ = api.request(
        "PATCH", f"{CONFIGMAPS}/cm", configmap(), headers={"Content-Type": APPLY}
    )
    assert status == 422
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
        "is required for apply patch",
        "reason": "Invalid",
        "details": {
            "group": "meta.k8s.io",
            "kind": "PatchOptions",
            "causes": [
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value: is required for apply patch",
                    "field": "fieldManager",
                }
            ],
        },
        "code": 422,
    }
    api.apply(f"{CONFIGMAPS}/cm", configmap(a="1"), "alice")
    status, body, _ = api.request(
        "PATCH",
        f"{CONFIGMAPS}/cm",
        {"data": {"a": "2"}},
        headers={"Content-Type": MERGE},
        force="true",
    )
    assert status == 422
    assert body["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for '
        "non-apply patch"
    )
    status, body = api.apply(f"{CONFIGMAPS}/cm", configmap(), "x" * 129)
    assert status == 422 and "may not be more than 128 bytes" in body["message"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({**configmap(), "apiVersion": "v2"}, "invalid object type: /v2, Kind=ConfigMap"),
        ({"metadata": {"name": "cm"}}, "invalid object type: /, Kind="),
        (
            {**configmap(), "metadata": {"name": "cm", "managedFields": []}},
            "metadata.managedFields must be nil",
        ),
        (
            configmap("other"),
            "the name of the object (other) does not match the name on the URL (cm)",
        ),
        (b"[1, 2]", "cannot unmarshal array into Go value of type map[string]interface {}"),
    ],
)
def test_invalid_apply_configurations_answer_400(api: Http, config: Any, message: str) -> None:
    status, body = api.apply(f"{CONFIGMAPS}/cm", config, "alice")
    assert status == 400 and body["reason"] == "BadRequest"
    assert message in body["message"]


def test_apply_accepts_yaml(api: Http) -> None:
    config = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  key: value\n"
    status, created = api.apply(f"{CONFIGMAPS}/cm", config, "alice")
    assert status == 201 and created["data"] == {"key": "value"}


def test_changing_a_field_another_manager_owns_is_a_conflict(srv: ApiServer, api: Http) -> None:
    api.apply(f"{CONFIGMAPS}/cm", configmap(a="1", b="2"), "alice")
    before = srv.resource_version
    status, body = api.apply(f"{CONFIGMAPS}/cm", configmap(a="changed"), "bob")
    assert status == 409
    assert body["reason"] == "Conflict"
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "alice": .data.a'
    assert body["details"] == {
        "causes": [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "alice"',
                "field": ".data.a",
            }
        ]
    }
    assert srv.resource_version == before
    status, body = api.apply(f"{CONFIGMAPS}/cm", configmap(a="x", b="y"), "bob")
    assert status == 409
    assert body["message"] == (
        'Apply failed with 2 conflicts: conflicts with "alice":\n- .data.a\n- .data.b'
    )
    assert [c["field"] for c in body["details"]["causes"]] == [".data.a", ".data.b"]


def test_applying_the_same_value_shares_ownership(api: Http) -> None:
    api.apply(f"{CONFIGMAPS}/cm", configmap(a="1"), "alice")
    status, shared = api.apply(f"{CONFIGMAPS}/cm", configmap(a="1"), "bob")
    assert status == 200
    owners = entries(shared)
    assert (
        owners["alice/Apply"]["fieldsV1"]
        == owners["bob/Apply"]["fieldsV1"]
        == {"f:data": {"f:a": {}}}
    )
    status, body = api.apply(f"{CONFIGMAPS}/cm", configmap(a="2"), "bob")
    assert status == 409 and 'conflict with "alice"' in body["message"]
    # bob lets go of the shared field: alice still owns it, so it stays.
    status, kept = api.apply(f"{CONFIGMAPS}/cm", configmap(), "bob")
    assert status == 200 and kept["data"] == {"a": "1"}
    assert "bob/Apply" not in entries(kept)


def test_force_takes_ownership_of_conflicting_fields(api: Http) -> None:
    api.apply(f"{CONFIGMAPS}/cm", configmap(a="1", b="2"), "alice")
    status, forced = api.apply(f"{CONFIGMAPS}/cm", configmap(a="bob's"), "bob", force="true")
    assert status == 200 and forced["data"] == {"a": "bob's", "b": "2"}
    owners = entries(forced)
    assert owners["alice/Apply"]["fieldsV1"] == {"f:data": {"f:b": {}}}
    assert owners["bob/Apply"]["fieldsV1"] == {"f:data": {"f:a": {}}}


def test_fields_an_applier_drops_are_removed_unless_someone_else_owns_them(api: Http) -> None:
    api.apply(f"{CONFIGMAPS}/cm", configmap(a="1", b="2", c="3"), "alice")
    api.apply(f"{CONFIGMAPS}/cm", configmap(c="3"), "bob")
    status, pruned = api.apply(f"{CONFIGMAPS}/cm", configmap(a="1"), "alice")
    assert status == 200
    assert pruned["data"] == {"a": "1", "c": "3"}  # b dropped; c is bob's too
    status, emptied = api.apply(f"{CONFIGMAPS}/cm", configmap(), "bob")
    assert emptied["data"] == {"a": "1"}


def test_keyed_list_items_merge_by_key_and_are_owned_per_item(api: Http) -> None:
    api.apply(f"{DEPLOYMENTS}/web", deployment(), "alice")
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "proxy", "image": "envoy:1"}]},
            },
        },
    }
    status, merged = api.apply(f"{DEPLOYMENTS}/web", sidecar, "mesh")
    assert status == 200
    containers = merged["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("web", "nginx:1"),
        ("proxy", "envoy:1"),
    ]
    mesh = entries(merged)["mesh/Apply"]["fieldsV1"]
    assert mesh == {
        "f:spec": {
            "f:template": {
                "f:spec": {
                    "f:containers": {'k:{"name":"proxy"}': {".": {}, "f:image": {}, "f:name": {}}}
                }
            }
        }
    }
    status, body = api.apply(f"{DEPLOYMENTS}/web", deployment(image="nginx:2"), "mesh")
    assert status == 409
    assert body["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "alice"',
            "field": '.spec.template.spec.containers[name="web"].image',
        },
    ]
    # alice drops her container: mesh's stays.
    without_web = deployment()
    without_web["spec"]["template"]["spec"]["containers"] = []
    status, after = api.apply(f"{DEPLOYMENTS}/web", without_web, "alice")
    assert status == 200
    assert [c["name"] for c in after["spec"]["template"]["spec"]["containers"]] == ["proxy"]


def test_finalizers_are_a_set(api: Http) -> None:
    config = configmap()
    config["metadata"]["finalizers"] = ["example.com/a"]
    api.apply(f"{CONFIGMAPS}/cm", config, "alice")
    config["metadata"]["finalizers"] = ["example.com/b"]
    status, both = api.apply(f"{CONFIGMAPS}/cm", config, "bob")
    assert status == 200
    assert both["metadata"]["finalizers"] == ["example.com/a", "example.com/b"]
    assert entries(both)["bob/Apply"]["fieldsV1"] == {
        "f:metadata": {"f:finalizers": {'v:"example.com/b"': {}}}
    }


# ------------------------------------------------------ other writes (Update)


def test_create_and_patch_record_update_managers(api: Http) -> None:
    body = {"metadata": {"name": "cm", "labels": {"a": "1"}}, "data": {"k": "v"}}
    agent = "kubectl/v1.32.0 (linux/amd64) kubernetes/abc"
    status, created, _ = api.request("POST", CONFIGMAPS, body, headers={"User-Agent": agent})
    assert status == 201
    [entry] = created["metadata"]["managedFields"]
    assert entry["manager"] == "kubectl" and entry["operation"] == "Update"
    assert entry["apiVersion"] == "v1" and entry["time"]
    assert entry["fieldsV1"] == {
        "f:data": {".": {}, "f:k": {}},
        "f:metadata": {"f:labels": {".": {}, "f:a": {}}},
    }
    status, patched, _ = api.request(
        "PATCH",
        f"{CONFIGMAPS}/cm",
        {"data": {"k": "w"}},
        headers={"Content-Type": MERGE},
        fieldManager="editor",
    )
    assert status == 200
    owners = entries(patched)
    assert owners["editor/Update"]["fieldsV1"] == {"f:data": {"f:k": {}}}
    assert owners["kubectl/Update"]["fieldsV1"] == {
        "f:data": {},  # still owns the map itself, no longer its key
        "f:metadata": {"f:labels": {".": {}, "f:a": {}}},
    }
    status, body = api.apply(f"{CONFIGMAPS}/cm", configmap(k="x"), "alice")
    assert status == 409
    # printManager prints the manager identifier, which has no time (conflict.go).
    assert (
        body["message"] == 'Apply failed with 1 conflict: conflict with "editor" using v1: .data.k'
    )


def test_update_without_managed_fields_keeps_them_and_an_empty_entry_clears_them(
    api: Http,
) -> None:
    _, created, _ = api.request(
        "POST", CONFIGMAPS, {"metadata": {"name": "cm"}, "data": {"k": "v"}}
    )
    assert entries(created)["tester/Update"]
    replaced_body = {"metadata": {"name": "cm"}, "data": {"k": "v", "extra": "1"}}
    _, replaced, _ = api.request(
        "PUT", f"{CONFIGMAPS}/cm", replaced_body, headers={"User-Agent": ""}
    )
    owners = entries(replaced)
    assert owners["unknown/Update"]["fieldsV1"] == {"f:data": {"f:extra": {}}}
    assert owners["tester/Update"]["fieldsV1"] == {"f:data": {".": {}, "f:k": {}}}
    _, cleared, _ = api.request(
        "PATCH",
        f"{CONFIGMAPS}/cm",
        {"metadata": {"managedFields": [{}]}},
        headers={"Content-Type": MERGE},
    )
    assert "managedFields" not in cleared["metadata"]
    # An untracked object stays untracked until it is applied to.
    _, untracked, _ = api.request(
        "PATCH", f"{CONFIGMAPS}/cm", {"data": {"k": "w"}}, headers={"Content-Type": MERGE}
    )
    assert "managedFields" not in untracked["metadata"]


def test_first_apply_to_an_untracked_object_names_its_fields_before_first_apply(
    srv: ApiServer, api: Http
) -> None:
    srv.create("configmaps", {"metadata": {"name": "cm"}, "data": {"k": "v", "other": "o"}})
    status, same = api.apply(f"{CONFIGMAPS}/cm", configmap(k="v"), "alice")
    assert status == 200
    owners = entries(same)
    assert owners["before-first-apply/Update"]["fieldsV1"] == {
        "f:data": {".": {}, "f:k": {}, "f:other": {}}
    }
    assert owners["alice/Apply"]["fieldsV1"] == {"f:data": {"f:k": {}}}
    status, body = api.apply(f"{CONFIGMAPS}/cm", configmap(other="mine"), "bob")
    assert status == 409
    assert body["message"] == (
        'Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.other'
    )


def test_status_subresource_apply_and_reset_fields(srv: ApiServer, api: Http) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running"},
    }
    status, created = api.apply(f"{PODS}/p", pod, "alice")
    assert status == 201 and created["status"] == {
        "phase": "Pending",
        "qosClass": "BestEffort",
    }  # status is reset
    assert "f:status" not in entries(created)["alice/Apply"]["fieldsV1"]
    status, running = api.apply(f"{PODS}/p/status", pod, "kubelet")
    assert status == 200 and running["status"] == {"phase": "Running", "qosClass": "BestEffort"}
    kubelet = entries(running)["kubelet/Apply"]
    assert kubelet["subresource"] == "status"
    assert kubelet["fieldsV1"] == {"f:status": {"f:phase": {}}}
    missing = {**pod, "metadata": {"name": "missing"}}
    assert api.apply(f"{PODS}/missing/status", missing, "kubelet")[0] == 404


def test_conditions_are_keyed_by_type(api: Http) -> None:
    api.request(
        "POST",
        PODS,
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
    )
    ready = {"type": "Ready", "status": "True"}
    config = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "status": {"conditions": [ready]},
    }
    _, applied = api.apply(f"{PODS}/p/status", config, "kubelet")
    assert entries(applied)["kubelet/Apply"]["fieldsV1"] == {
        "f:status": {
            "f:conditions": {'k:{"type":"Ready"}': {".": {}, "f:status": {}, "f:type": {}}}
        }
    }


# ------------------------------------------------------------ object API


def test_object_api_apply_arranges_ownership(srv: ApiServer) -> None:
    created = srv.apply(
        "configmaps", {"metadata": {"name": "cm"}, "data": {"k": "v"}}, field_manager="operator"
    )
    assert entries(created)["operator/Apply"]["fieldsV1"] == {"f:data": {"f:k": {}}}
    with pytest.raises(Conflict) as info:
        srv.apply(
            "configmaps", {"metadata": {"name": "cm"}, "data": {"k": "w"}}, field_manager="me"
        )
    assert info.value.status is not None
    assert info.value.status["details"]["causes"][0]["field"] == ".data.k"
    forced = srv.apply(
        "configmaps",
        {"metadata": {"name": "cm"}, "data": {"k": "w"}},
        field_manager="me",
        force=True,
    )
    assert forced["data"] == {"k": "w"}
    assert list(entries(forced)) == ["me/Apply"]
