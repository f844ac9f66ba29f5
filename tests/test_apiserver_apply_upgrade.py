"""From client-side to server-side apply: the last-applied annotation under ``kubectl`` applies.

Follows k8s.io/apimachinery ``pkg/util/managedfields/internal``: ``lastappliedmanager.go``
(``lastAppliedManager.Apply``, ``allowedConflictsFromLastApplied``) and
``lastappliedupdater.go`` (``lastAppliedUpdater.Apply``, ``buildLastApplied``), and the
requests kubectl v1.32 sends around them (kubectl ``pkg/cmd/apply/apply.go``:
``saveLastApplyAnnotationIfNecessary``, ``migrateToSSAIfNecessary``; client-go
``util/csaupgrade.UpgradeManagedFieldsPatch``).
"""

from __future__ import annotations

import json
from typing import Any

from tests.apiserver_http import Http

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CSA = "kubectl-client-side-apply"
SMP = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def config(image: str = "web:1", replicas: int = 1, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "default"}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def annotation(value: dict[str, Any]) -> str:
    """The annotation as kubectl and kube-apiserver write it: Go's compact JSON, a newline."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True) + "\n"


def client_side_apply(api: Http, **fields: Any) -> dict[str, Any]:
    """What ``kubectl apply`` (client side) sends to create: the configuration carrying
    its own annotation, as ``kubectl-client-side-apply``."""
    body = config(**fields)
    body["metadata"]["annotations"] = {LAST_APPLIED: annotation(config(**fields))}
    created: dict[str, Any]
    status, created, _ = api.request("POST", DEPLOYMENTS, body, fieldManager=CSA)
    assert status == 201, created
    return created


def managers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{e['manager']}/{e['operation']}": e for e in obj["metadata"]["managedFields"]}


def test_kubectl_takes_over_fields_still_as_last_applied(api: Http) -> None:
    """``lastAppliedManager.Apply``: every conflict is with a field the annotation sets to
    its live value, so the apply is forced: ``kubectl`` owns them, the client-side manager
    loses them."""
    client_side_apply(api)
    status, applied = api.apply(f"{DEPLOYMENTS}/web", config(image="web:2", replicas=3), "kubectl")
    assert status == 200, applied
    assert applied["spec"]["replicas"] == 3
    assert applied["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
    owners = managers(applied)
    csa_spec = owners[f"{CSA}/Update"]["fieldsV1"].get("f:spec", {})
    assert "f:replicas" not in csa_spec
    assert "f:replicas" in owners["kubectl/Apply"]["fieldsV1"]["f:spec"]


def test_a_field_changed_since_the_last_apply_still_conflicts_alone(api: Http) -> None:
    """``allowedConflictsFromLastApplied`` leaves out fields whose live value differs from
    the annotation's; ``conflictsDifference``: only those conflicts are answered."""
    client_side_apply(api)
    status, _, _ = api.request(
        "PATCH",
        f"{DEPLOYMENTS}/web",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:9"}]}}}},
        headers={"Content-Type": SMP},
        fieldManager="kubectl-set",
    )
    assert status == 200
    status, answer = api.apply(f"{DEPLOYMENTS}/web", config(image="web:2", replicas=3), "kubectl")
    assert status == 409
    assert [c["field"] for c in answer["details"]["causes"]] == [
        '.spec.template.spec.containers[name="web"].image'
    ]
    assert answer["details"]["causes"][0]["message"].startswith('conflict with "kubectl-set"')


def test_only_the_kubectl_manager_is_upgraded(api: Http) -> None:
    """``lastAppliedManager.Apply`` returns the conflicts as they are for any manager but
    ``kubectl``, and ``lastAppliedUpdater`` leaves the annotation alone."""
    created = client_side_apply(api)
    status, answer = api.apply(f"{DEPLOYMENTS}/web", config(replicas=3), "other")
    assert status == 409
    assert answer["details"]["causes"][0]["field"] == ".spec.replicas"
    status, applied = api.apply(f"{DEPLOYMENTS}/web", config(replicas=1), "other")
    assert status == 200
    assert applied["metadata"]["annotations"] == created["metadata"]["annotations"]


def test_kubectl_applies_keep_the_annotation_in_sync(api: Http) -> None:
    """``lastAppliedUpdater.Apply`` and ``buildLastApplied``: the annotation becomes the
    applied configuration, its own entry removed (an emptied map kept empty)."""
    client_side_apply(api)
    applied_config = config(replicas=2, team="a<b")
    status, applied = api.apply(f"{DEPLOYMENTS}/web", applied_config, "kubectl")
    assert status == 200, applied
    value = applied["metadata"]["annotations"][LAST_APPLIED]
    assert value == annotation(applied_config).replace("<", "\\u003c")
    assert applied["metadata"]["annotations"]["team"] == "a<b"
    # Setting the annotation to another value would conflict with the client-side manager.
    with_own = config(replicas=4, **{LAST_APPLIED: value})
    status, applied = api.apply(f"{DEPLOYMENTS}/web", with_own, "kubectl")
    assert status == 200, applied
    recorded = json.loads(applied["metadata"]["annotations"][LAST_APPLIED])
    assert recorded["metadata"]["annotations"] == {}
    assert recorded["spec"]["replicas"] == 4


def test_no_annotation_no_upgrade(api: Http) -> None:
    """``hasLastApplied`` false: nothing to sync, and conflicts stay conflicts."""
    body = config()
    assert api.request("POST", DEPLOYMENTS, body, fieldManager=CSA)[0] == 201
    status, _ = api.apply(f"{DEPLOYMENTS}/web", config(replicas=3), "kubectl")
    assert status == 409
    status, applied = api.apply(f"{DEPLOYMENTS}/web", config(), "kubectl")
    assert status == 200 and "annotations" not in applied["metadata"]


def test_an_annotation_of_another_version_allows_nothing(api: Http) -> None:
    """``allowedConflictsFromLastApplied`` refuses an annotation whose apiVersion is not
    the live object's, and one that does not decode."""
    for text in (annotation({**config(), "apiVersion": "apps/v1beta1"}), "{not json"):
        body = config()
        body["metadata"]["annotations"] = {LAST_APPLIED: text}
        assert api.request("POST", DEPLOYMENTS, body, fieldManager=CSA)[0] == 201
        status, _ = api.apply(f"{DEPLOYMENTS}/web", config(replicas=3), "kubectl")
        assert status == 409
        assert api.request("DELETE", f"{DEPLOYMENTS}/web")[0] == 200


def test_kubectls_whole_upgrade_sequence(api: Http) -> None:
    """kubectl ``apply --server-side`` over a client-side applied object: the apply, the
    annotation saved by ``kubectl-last-applied``, csaupgrade's JSON patch moving the
    client-side manager's fields into ``kubectl``'s entry (guarded by a ``replace`` of
    the resourceVersion), and the apply sent again."""
    client_side_apply(api)
    path = f"{DEPLOYMENTS}/web"
    status, applied = api.apply(path, config(image="web:2"), "kubectl", force="false")
    assert status == 200
    saved = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "annotations": {LAST_APPLIED: applied["metadata"]["annotations"][LAST_APPLIED]},
        },
    }
    status, applied = api.apply(path, saved, "kubectl-last-applied")
    assert status == 200
    owners = managers(applied)
    csa, ssa = owners.pop(f"{CSA}/Update"), owners["kubectl/Apply"]
    ssa["fieldsV1"] = _union(ssa["fieldsV1"], csa["fieldsV1"])
    upgrade: list[dict[str, Any]] = [
        {"op": "replace", "path": "/metadata/managedFields", "value": list(owners.values())},
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
    ]
    status, _, _ = api.request(
        "PATCH", path, upgrade, headers={"Content-Type": JSON_PATCH}, fieldManager="kubectl"
    )
    assert status == 409  # a stale resourceVersion: csaupgrade fetches again and retries
    upgrade[1]["value"] = applied["metadata"]["resourceVersion"]
    status, migrated, _ = api.request(
        "PATCH", path, upgrade, headers={"Content-Type": JSON_PATCH}, fieldManager="kubectl"
    )
    assert status == 200, migrated
    assert set(managers(migrated)) == {"kubectl/Apply", "kubectl-last-applied/Apply"}
    status, final = api.apply(path, config(image="web:2"), "kubectl", force="false")
    assert status == 200
    assert set(managers(final)) == {"kubectl/Apply", "kubectl-last-applied/Apply"}
    assert LAST_APPLIED in final["metadata"]["annotations"]


def _union(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = _union(out.get(key, {}), value) if isinstance(value, dict) else value
    return out
