"""The built-in kinds the test API server serves, and its two discovery forms, over HTTP.

Expected documents are kube-apiserver v1.32's: the resources each registry installs
(pkg/registry/*/rest/storage_*.go, their ``ShortNames``/``Categories`` providers), the
legacy documents of k8s.io/apiserver pkg/endpoints/discovery and the aggregated
``apidiscovery.k8s.io/v2`` one of pkg/endpoints/discovery/aggregated.
"""

from __future__ import annotations

from typing import Any

import pytest

from rxkube.resource import BUILTIN_KINDS
from rxkube.testing import ApiServer
from tests.apiserver_http import Http

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
KUBECTL_DISCOVERY_ACCEPT = (
    f"{AGGREGATED},application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)
"""What kubectl v1.32 (client-go's discovery) sends to ``/api`` and ``/apis``."""

STORED = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUBRESOURCE = ["get", "patch", "update"]


def resources(api: Http, group_version: str) -> dict[str, dict[str, Any]]:
    path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    status, doc = api.get(path)
    assert status == 200 and doc["kind"] == "APIResourceList"
    assert doc["groupVersion"] == group_version
    return {entry["name"]: entry for entry in doc["resources"]}


def test_serves_the_58_resources_but_componentstatuses(api: Http) -> None:
    """``kubectl api-resources`` on kube-apiserver v1.32 lists 58 resources (each at its
    group's preferred version); here all but ``componentstatuses``. ``autoscaling/v1`` is
    in the table but not preferred; CustomResourceDefinitions are not in it."""
    served = 0
    for group in api.get("/apis")[1]["groups"]:
        version = group["preferredVersion"]["groupVersion"]
        served += sum("/" not in name for name in resources(api, version))
    served += sum("/" not in name for name in resources(api, "v1"))
    assert served == len(BUILTIN_KINDS) == 57


@pytest.mark.parametrize(
    ("group_version", "name", "entry"),
    [
        (
            "apps/v1",
            "statefulsets",
            {"singularName": "statefulset", "namespaced": True, "kind": "StatefulSet",
             "verbs": STORED, "shortNames": ["sts"], "categories": ["all"]},
        ),
        (
            "batch/v1",
            "cronjobs",
            {"singularName": "cronjob", "namespaced": True, "kind": "CronJob",
             "verbs": STORED, "shortNames": ["cj"], "categories": ["all"]},
        ),
        (
            "v1",
            "serviceaccounts",
            {"singularName": "serviceaccount", "namespaced": True, "kind": "ServiceAccount",
             "verbs": STORED, "shortNames": ["sa"]},
        ),
        (
            "v1",
            "namespaces",
            {"singularName": "namespace", "namespaced": False, "kind": "Namespace",
             "verbs": [v for v in STORED if v != "deletecollection"], "shortNames": ["ns"]},
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "clusterroles",
            {"singularName": "clusterrole", "namespaced": False, "kind": "ClusterRole",
             "verbs": STORED},
        ),
        (
            "autoscaling/v2",
            "horizontalpodautoscalers",
            {"singularName": "horizontalpodautoscaler", "namespaced": True,
             "kind": "HorizontalPodAutoscaler", "verbs": STORED, "shortNames": ["hpa"],
             "categories": ["all"]},
        ),
        (
            "admissionregistration.k8s.io/v1",
            "validatingwebhookconfigurations",
            {"singularName": "validatingwebhookconfiguration", "namespaced": False,
             "kind": "ValidatingWebhookConfiguration", "verbs": STORED,
             "categories": ["api-extensions"]},
        ),
        (
            "storage.k8s.io/v1",
            "storageclasses",
            {"singularName": "storageclass", "namespaced": False, "kind": "StorageClass",
             "verbs": STORED, "shortNames": ["sc"]},
        ),
        (
            "apps/v1",
            "deployments/scale",
            {"singularName": "", "namespaced": True, "group": "autoscaling", "version": "v1",
             "kind": "Scale", "verbs": SUBRESOURCE},
        ),
        (
            "v1",
            "replicationcontrollers/scale",
            {"singularName": "", "namespaced": True, "group": "autoscaling", "version": "v1",
             "kind": "Scale", "verbs": SUBRESOURCE},
        ),
        (
            "batch/v1",
            "jobs/status",
            {"singularName": "", "namespaced": True, "kind": "Job", "verbs": SUBRESOURCE},
        ),
    ],
)  # fmt: skip
def test_legacy_discovery_entries_are_kube_apiservers(
    api: Http, group_version: str, name: str, entry: dict[str, Any]
) -> None:
    assert resources(api, group_version)[name] == {"name": name, **entry}


def test_legacy_documents_list_resources_by_name_with_subresources_after_them(api: Http) -> None:
    """The installer sorts a group version's paths (pkg/endpoints/installer.go)."""
    names = list(resources(api, "apps/v1"))
    assert names == [
        "controllerrevisions",
        "daemonsets",
        "daemonsets/status",
        "deployments",
        "deployments/scale",
        "deployments/status",
        "replicasets",
        "replicasets/scale",
        "replicasets/status",
        "statefulsets",
        "statefulsets/scale",
        "statefulsets/status",
    ]


def test_group_list_is_in_kube_apiservers_priority_order(api: Http) -> None:
    """``/apis`` lists groups by the priorities of pkg/controlplane/apiserver (apps first
    after apiregistration, ...), which is also the order kubectl resolves a name in."""
    names = [group["name"] for group in api.get("/apis")[1]["groups"]]
    assert names == [
        "apiregistration.k8s.io",
        "apps",
        "events.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "networking.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "node.k8s.io",
        "discovery.k8s.io",
        "flowcontrol.apiserver.k8s.io",
    ]


def test_aggregated_discovery_of_apis(api: Http) -> None:
    status, doc, response = api.request(
        "GET", "/apis", headers={"Accept": KUBECTL_DISCOVERY_ACCEPT}
    )
    assert status == 200
    assert response.getheader("Content-Type") == AGGREGATED
    assert (doc["kind"], doc["apiVersion"], doc["metadata"]) == (
        "APIGroupDiscoveryList",
        "apidiscovery.k8s.io/v2",
        {},
    )
    groups = {item["metadata"]["name"]: item for item in doc["items"]}
    assert "" not in groups and list(groups)[:2] == ["apiregistration.k8s.io", "apps"]
    apps = groups["apps"]
    assert [v["version"] for v in apps["versions"]] == ["v1"]
    assert apps["versions"][0]["freshness"] == "Current"
    deployments = next(
        r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments"
    )
    assert deployments == {
        "resource": "deployments",
        "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "scope": "Namespaced",
        "singularResource": "deployment",
        "verbs": STORED,
        "shortNames": ["deploy"],
        "categories": ["all"],
        "subresources": [
            {
                "subresource": "scale",
                "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                "verbs": SUBRESOURCE,
            },
            {
                "subresource": "status",
                "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "verbs": SUBRESOURCE,
            },
        ],
    }
    clusterroles = next(
        r
        for r in groups["rbac.authorization.k8s.io"]["versions"][0]["resources"]
        if r["resource"] == "clusterroles"
    )
    assert clusterroles["scope"] == "Cluster" and "subresources" not in clusterroles


def test_aggregated_discovery_of_the_core_group(api: Http) -> None:
    status, doc, response = api.request("GET", "/api", headers={"Accept": AGGREGATED})
    assert status == 200 and response.getheader("Content-Type") == AGGREGATED
    (core,) = doc["items"]
    assert core["metadata"] == {"creationTimestamp": None}
    (v1,) = core["versions"]
    pods = next(r for r in v1["resources"] if r["resource"] == "pods")
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert [s["subresource"] for s in pods["subresources"]] == ["status"]


def test_aggregated_discovery_includes_custom_resources(srv: ApiServer, api: Http) -> None:
    srv.add_resource("example.com", "v1", "Widget", "widgets", short_names=("wd",))
    doc = api.request("GET", "/apis", headers={"Accept": AGGREGATED})[1]
    (widgets,) = next(i for i in doc["items"] if i["metadata"]["name"] == "example.com")[
        "versions"
    ][0]["resources"]
    assert widgets["resource"] == "widgets" and widgets["shortNames"] == ["wd"]


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "",
        f"application/json,{AGGREGATED}",  # the first acceptable alternative wins
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
    ],
)
def test_legacy_discovery_unless_aggregated_is_asked_for_first(api: Http, accept: str) -> None:
    status, doc, response = api.request("GET", "/apis", headers={"Accept": accept})
    assert status == 200 and doc["kind"] == "APIGroupList"
    assert response.getheader("Content-Type") == "application/json"


def test_a_verb_the_resource_lacks_answers_405(api: Http) -> None:
    """Namespaces have no deletecollection: kube-apiserver registers no route for it."""
    status, body, _ = api.request("DELETE", "/api/v1/namespaces")
    assert status == 405 and body["reason"] == "MethodNotAllowed"
    assert api.get("/api/v1/namespaces/default")[0] == 200


def job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                }
            }
        },
    }


def test_new_kinds_are_stored_listed_and_watched(api: Http) -> None:
    path = "/apis/batch/v1/namespaces/default/jobs"
    with api.watch(path) as watch:
        status, created, _ = api.request("POST", path, job("j"))
        assert status == 201 and created["kind"] == "Job"
        assert watch.events(1)[0]["object"]["metadata"]["name"] == "j"
    status, listing = api.get(path)
    assert listing["kind"] == "JobList" and [i["metadata"]["name"] for i in listing["items"]] == [
        "j"
    ]
    # the status subresource: the main endpoint ignores status changes
    created["status"] = {"succeeded": 1}
    status, updated, _ = api.request("PUT", f"{path}/j", created)
    assert status == 200 and "succeeded" not in (updated.get("status") or {})
    status, updated, _ = api.request(
        "PUT", f"{path}/j/status", updated | {"status": {"succeeded": 1}}
    )
    assert status == 200 and updated["status"] == {"succeeded": 1}


def test_cluster_scoped_kinds_have_no_namespace(api: Http) -> None:
    path = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    body = {
        "metadata": {"name": "reader"},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
    }
    status, created, _ = api.request("POST", path, body)
    assert status == 201 and "namespace" not in created["metadata"]
    assert api.get("/apis/rbac.authorization.k8s.io/v1/namespaces/default/clusterroles")[0] == 404


def test_replication_controller_field_selector_status_replicas(srv: ApiServer, api: Http) -> None:
    """pkg/registry/core/replicationcontroller/strategy.go: ControllerToSelectableFields
    adds status.replicas; other fields are refused."""
    path = "/api/v1/namespaces/default/replicationcontrollers"
    for name in ("a", "b"):
        api.request("POST", path, {"metadata": {"name": name}})
    scaled = srv.get("rc", "b")
    srv.replace("rc", scaled | {"status": {"replicas": 2}}, subresource="status")
    status, listing = api.get(path, fieldSelector="status.replicas=2")
    assert status == 200 and [i["metadata"]["name"] for i in listing["items"]] == ["b"]
    status, body = api.get(path, fieldSelector="status.phase=x")
    assert status == 400 and body["message"] == "field label not supported: status.phase"


def test_persistent_volume_claims_delete_answers_the_object(api: Http) -> None:
    """pkg/registry/core/persistentvolumeclaim/storage: ReturnDeletedObject is set."""
    path = "/api/v1/namespaces/default/persistentvolumeclaims"
    api.request(
        "POST", path, {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
    )
    status, body, _ = api.request("DELETE", f"{path}/data")
    assert status == 200 and body["kind"] == "PersistentVolumeClaim"
    status, body, _ = api.request(
        "POST", "/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "sa"}}
    )
    status, body, _ = api.request("DELETE", "/api/v1/namespaces/default/serviceaccounts/sa")
    assert status == 200 and body["kind"] == "Status"


def test_object_api_names_new_kinds_as_kubectl_does(srv: ApiServer) -> None:
    srv.create("sts", {"metadata": {"name": "db"}})
    srv.create("clusterrolebindings.rbac.authorization.k8s.io", {"metadata": {"name": "b"}})
    assert srv.get("statefulsets.apps", "db")["kind"] == "StatefulSet"
    assert srv.list("ClusterRoleBinding", namespace=None)[0]["metadata"]["name"] == "b"
