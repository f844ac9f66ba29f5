"""The ``/scale`` subresource of rxkube.testing.ApiServer, over HTTP.

Built-in kinds follow kubernetes/kubernetes ``pkg/registry/apps/deployment/storage/
storage.go`` (``ScaleREST``, ``scaleFromDeployment``, ``scaleUpdatedObjectInfo``) and
``pkg/apis/autoscaling/validation`` (``ValidateScale``); custom resources follow
kubernetes/apiextensions-apiserver ``pkg/registry/customresource/etcd.go``.
"""

from __future__ import annotations

from typing import Any

from tests.apiserver_http import Http
from tests.test_apiserver_crd import CRDS, WIDGETS, widget, widget_crd

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
REPLICASETS = "/apis/apps/v1/namespaces/default/replicasets"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def deployment(name: str = "web", replicas: int | None = 2) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {
            "matchLabels": {"app": name, "tier": "front"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}],
        },
        "template": {
            "metadata": {"labels": {"app": name, "tier": "front", "env": "prod"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def test_deployment_scale_reads_the_parent(api: Http) -> None:
    """``scaleFromDeployment``: name, namespace, uid, resourceVersion and creation time of
    the parent; ``spec.replicas``; ``status.replicas``; ``status.selector`` as
    ``metav1.LabelSelectorAsSelector(...).String()`` (requirements sorted by key)."""
    _, created, _ = api.request("POST", DEPLOYMENTS, deployment())
    status, scale = api.get(f"{DEPLOYMENTS}/web/scale")
    assert status == 200
    meta = created["metadata"]
    assert scale == {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": 2},
        "status": {"replicas": 0, "selector": "app=web,env in (dev,prod),tier=front"},
    }
    assert api.get(f"{DEPLOYMENTS}/missing/scale")[0] == 404
    assert api.get("/api/v1/namespaces/default/pods/p/scale")[0] == 404


def test_scale_update_changes_replicas_and_watchers_see_it(api: Http) -> None:
    """An update of ``/scale`` writes the parent's ``spec.replicas`` (a MODIFIED event on
    the parent's watch) and answers the new Scale; a stale ``metadata.resourceVersion``
    is a 409 from the parent's update (``scaleUpdatedObjectInfo.UpdatedObject``)."""
    _, created, _ = api.request("POST", DEPLOYMENTS, deployment())
    rv = created["metadata"]["resourceVersion"]
    _, scale = api.get(f"{DEPLOYMENTS}/web/scale")
    with api.watch(DEPLOYMENTS, timeout=10, resourceVersion=rv) as watch:
        scale["spec"]["replicas"] = 5
        status, answered, _ = api.request("PUT", f"{DEPLOYMENTS}/web/scale", scale)
        assert status == 200 and answered["spec"] == {"replicas": 5}
        assert answered["metadata"]["resourceVersion"] != rv
        event = watch.next()
        assert event["type"] == "MODIFIED" and event["object"]["spec"]["replicas"] == 5
        assert event["object"]["metadata"]["generation"] == 2
    status, body, _ = api.request("PUT", f"{DEPLOYMENTS}/web/scale", scale)
    assert status == 409
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on deployments.apps "web": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )


def test_scale_patches_merge_and_json(api: Http) -> None:
    """A patch of ``/scale`` applies to the Scale, then to the parent: merge patch and JSON
    patch (kubectl scale sends a merge patch)."""
    api.request("POST", DEPLOYMENTS, deployment())
    status, scale, _ = api.request(
        "PATCH", f"{DEPLOYMENTS}/web/scale", {"spec": {"replicas": 3}}, headers=MERGE
    )
    assert status == 200 and scale["spec"]["replicas"] == 3
    ops = [{"op": "test", "path": "/spec/replicas", "value": 3},
           {"op": "replace", "path": "/spec/replicas", "value": 0}]  # fmt: skip
    status, scale, _ = api.request("PATCH", f"{DEPLOYMENTS}/web/scale", ops, headers=JSON_PATCH)
    assert status == 200 and scale["spec"] == {}
    assert api.get(f"{DEPLOYMENTS}/web")[1]["spec"]["replicas"] == 0


def test_negative_replicas_are_invalid(api: Http) -> None:
    """``ValidateScale``: ``spec.replicas`` must be at least 0, reported on the Scale kind."""
    api.request("POST", DEPLOYMENTS, deployment())
    status, body, _ = api.request(
        "PATCH", f"{DEPLOYMENTS}/web/scale", {"spec": {"replicas": -1}}, headers=MERGE
    )
    assert status == 422
    assert body["message"] == (
        'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: '
        "must be greater than or equal to 0"
    )


def test_replicaset_scale_and_unset_replicas(api: Http) -> None:
    """ReplicaSets serve ``/scale`` too; a parent without ``spec.replicas`` reads as the
    default kube-apiserver would have stored (1)."""
    rs = deployment("rs", replicas=None)
    rs["kind"] = "ReplicaSet"
    api.request("POST", REPLICASETS, rs)
    status, scale = api.get(f"{REPLICASETS}/rs/scale")
    assert status == 200 and scale["spec"] == {"replicas": 1}


def test_discovery_lists_scale_subresources(api: Http) -> None:
    """Legacy discovery lists ``deployments/scale`` as ``autoscaling/v1`` ``Scale`` with
    get, patch and update (the API installer's subresource entries)."""
    _, resources = api.get("/apis/apps/v1")
    scale = next(r for r in resources["resources"] if r["name"] == "deployments/scale")
    assert scale == {
        "name": "deployments/scale",
        "singularName": "",
        "namespaced": True,
        "group": "autoscaling",
        "version": "v1",
        "kind": "Scale",
        "verbs": ["get", "patch", "update"],
    }


def test_custom_resource_scale_follows_its_paths(api: Http) -> None:
    """A custom resource's Scale reads ``specReplicasPath``, ``statusReplicasPath`` and the
    string at ``labelSelectorPath`` (``scaleFromCustomResource``); writes go to the spec
    path; a patch of a resource with no replicas field that leaves it unset is a 400
    (``the spec replicas field ".spec.replicas" cannot be empty``)."""
    assert api.request("POST", CRDS, widget_crd())[0] == 201
    _, created, _ = api.request("POST", WIDGETS, widget())
    created["status"] = {"replicas": 1, "selector": "app=w"}
    api.request("PUT", f"{WIDGETS}/w/status", created)
    status, scale = api.get(f"{WIDGETS}/w/scale")
    assert status == 200
    assert (scale["spec"], scale["status"]) == ({}, {"replicas": 1, "selector": "app=w"})
    status, body, _ = api.request(
        "PATCH", f"{WIDGETS}/w/scale", {"metadata": {"labels": {"a": "b"}}}, headers=MERGE
    )
    assert (status, body["message"]) == (
        400,
        'the spec replicas field ".spec.replicas" cannot be empty',
    )
    status, scale, _ = api.request(
        "PATCH", f"{WIDGETS}/w/scale", {"spec": {"replicas": 4}}, headers=MERGE
    )
    assert status == 200 and scale["spec"] == {"replicas": 4}
    assert api.get(f"{WIDGETS}/w")[1]["spec"]["replicas"] == 4
    scale["spec"]["replicas"] = -2
    status, body, _ = api.request("PUT", f"{WIDGETS}/w/scale", scale)
    assert status == 422
    assert body["message"] == (
        'Widget.example.com "w" is invalid: .spec.replicas: Invalid value: -2: '
        "should be a non-negative integer"
    )
