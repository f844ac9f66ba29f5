"""Field ownership through ``/scale``: server-side apply of a Scale and the managedFields
of every scale write, over HTTP.

Checked against kubernetes/kubernetes: k8s.io/apimachinery
pkg/util/managedfields/internal/scalehandler.go (``ToSubresource``, ``ToParent``: a new
entry's time comes from the parent's entry of its identifier), pkg/registry/apps/
deployment/storage/storage.go (``scaleUpdatedObjectInfo``, the Scale's reset field
``status``) and k8s.io/apiserver pkg/endpoints/handlers/fieldmanager
(structuredmerge.go: "Incorrect version specified in apply patch").
"""

from __future__ import annotations

import json
from typing import Any

from rxkube.testing import ApiServer
from tests.apiserver_http import Http
from tests.test_apiserver_scale import DEPLOYMENTS, MERGE, deployment

APPLY = {"Content-Type": "application/apply-patch+yaml"}
SCALE = f"{DEPLOYMENTS}/web/scale"
REPLICAS: dict[str, Any] = {"f:spec": {"f:replicas": {}}}


def apply(api: Http, path: str, body: dict[str, Any], **params: Any) -> tuple[int, Any]:
    status, answer, _ = api.request(
        "PATCH", path, json.dumps(body).encode(), headers=APPLY, **params
    )
    return status, answer


def scale(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas},
    }


def managed(api: Http) -> list[dict[str, Any]]:
    _, parent = api.get(f"{DEPLOYMENTS}/web")
    entries: list[dict[str, Any]] = parent["metadata"]["managedFields"]
    return entries


def owners_of_replicas(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (e["manager"], e["operation"], e.get("subresource", ""))
        for e in entries
        if "f:replicas" in e["fieldsV1"].get("f:spec", {})
    ]


def test_a_scale_update_takes_the_replicas_from_their_applier(api: Http) -> None:
    """``ToParent``: the applier loses spec.replicas (keeping its other fields); the
    scaler gets an apps/v1 entry with subresource scale and no time."""
    status, _ = apply(api, f"{DEPLOYMENTS}/web", deployment(), fieldManager="deployer")
    assert status == 201
    status, answer, _ = api.request(
        "PATCH", SCALE, {"spec": {"replicas": 5}}, headers=MERGE, fieldManager="scaler"
    )
    assert status == 200 and answer["spec"] == {"replicas": 5}
    assert "managedFields" not in answer["metadata"]  # scaleFromDeployment copies none
    entries = managed(api)
    assert owners_of_replicas(entries) == [("scaler", "Update", "scale")]
    (scaler,) = (e for e in entries if e["manager"] == "scaler")
    assert scaler == {
        "manager": "scaler",
        "operation": "Update",
        "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": REPLICAS,
        "subresource": "scale",
    }
    (deployer,) = (e for e in entries if e["manager"] == "deployer")
    assert "f:template" in deployer["fieldsV1"]["f:spec"]
    # A PUT of the Scale is the same Update; the scaler's entry stays one entry.
    _, current = api.get(SCALE)
    current["spec"]["replicas"] = 6
    status, _, _ = api.request("PUT", SCALE, current, fieldManager="scaler")
    assert status == 200
    assert owners_of_replicas(managed(api)) == [("scaler", "Update", "scale")]


def test_applying_a_scale_conflicts_with_the_replicas_owner(api: Http) -> None:
    """``ToSubresource`` makes the deployer the Scale's owner of spec.replicas, so an
    apply of other replicas conflicts with it; forced, the applier takes them."""
    apply(api, f"{DEPLOYMENTS}/web", deployment(), fieldManager="deployer")
    status, error = apply(api, SCALE, scale(4), fieldManager="autoscaler")
    assert status == 409
    assert (
        error["message"] == 'Apply failed with 1 conflict: conflict with "deployer": .spec.replicas'
    )
    assert error["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "deployer"', "field": ".spec.replicas"}
    ]  # fmt: skip
    status, answer = apply(api, SCALE, scale(4), fieldManager="autoscaler", force=True)
    assert status == 200 and answer["spec"]["replicas"] == 4
    entries = managed(api)
    assert owners_of_replicas(entries) == [("autoscaler", "Apply", "scale")]
    (autoscaler,) = (e for e in entries if e["manager"] == "autoscaler")
    assert autoscaler["apiVersion"] == "apps/v1" and "time" not in autoscaler
    # The applier applies again: its entry is kept as it is, and nothing conflicts.
    status, answer = apply(api, SCALE, scale(3), fieldManager="autoscaler")
    assert status == 200 and answer["spec"]["replicas"] == 3
    _, parent = api.get(f"{DEPLOYMENTS}/web")
    assert parent["spec"]["replicas"] == 3
    # The deployer, applying replicas again at the main endpoint, conflicts in turn.
    status, error = apply(
        api, f"{DEPLOYMENTS}/web", deployment(replicas=2), fieldManager="deployer"
    )
    assert status == 409
    assert error["details"]["causes"][0]["message"] == (
        'conflict with "autoscaler" with subresource "scale"'
    )


def test_applying_the_parents_kind_to_scale_is_a_bad_request(api: Http) -> None:
    """What ``kubectl apply --server-side --subresource=scale -f deployment.yaml`` sends."""
    apply(api, f"{DEPLOYMENTS}/web", deployment(), fieldManager="deployer")
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4}}  # fmt: skip
    status, error = apply(api, SCALE, body, fieldManager="kubectl")
    assert status == 400
    assert error["reason"] == "BadRequest"
    assert error["message"] == (
        "Incorrect version specified in apply patch. Specified patch version: apps/v1, "
        "expected: autoscaling/v1"
    )


def test_apply_to_the_scale_of_an_untracked_parent(srv: ApiServer, api: Http) -> None:
    """A parent written without managedFields: its replicas belong to before-first-apply
    (the skip-non-applied manager), so only a forced apply takes them."""
    srv.create("deployments", deployment())
    status, error = apply(api, SCALE, scale(4), fieldManager="autoscaler")
    assert status == 409
    assert (
        'conflict with "before-first-apply" with subresource "scale" using autoscaling/v1'
        in (error["message"])
    )
    status, _ = apply(api, SCALE, scale(4), fieldManager="autoscaler", force=True)
    assert status == 200
    assert owners_of_replicas(managed(api)) == [("autoscaler", "Apply", "scale")]
