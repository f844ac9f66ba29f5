"""Defaulting and validation of built-in objects written through HTTP, as kube-apiserver v1.32.

Each expectation cites the Kubernetes source it follows: ``pkg/apis/core/v1/defaults.go``
(``SetDefaults_Pod``, ``SetDefaults_PodSpec``, ``SetDefaults_Container``,
``SetDefaults_Service``), ``pkg/apis/apps/v1/defaults.go`` (``SetDefaults_Deployment``...),
``pkg/apis/batch/v1/defaults.go`` (``SetDefaults_Job``), the registry strategies
(``pkg/registry/core/pod/strategy.go`` ``PrepareForCreate``: phase Pending and
``qos.GetPodQOS``; ``pkg/registry/core/service/storage``: cluster IP allocation;
``pkg/registry/batch/job/strategy.go`` ``generateSelector``) and the validation packages
(``pkg/apis/apps/validation.ValidateDeploymentSpec``,
``ValidatePodTemplateSpecForReplicaSet``; ``pkg/apis/core/validation.validateContainers``,
``ValidateConfigMap``, ``ValidateService``; ``pkg/apis/batch/validation.ValidateJobSpec``).
"""

from __future__ import annotations

from typing import Any

import pytest

from rxkube.testing import ApiServer
from tests.apiserver_http import Http

NS = "/api/v1/namespaces/default"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def template(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}], **spec},
    }


def create(api: Http, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer, _ = api.request("POST", path, body)
    assert status == 201, answer
    created: dict[str, Any] = answer
    return created


def refused(api: Http, path: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    status, answer, _ = api.request("POST", path, body)
    assert status == 422, answer
    assert answer["reason"] == "Invalid"
    return [(c["field"], c["message"]) for c in answer["details"]["causes"]]


# ------------------------------------------------------------------ defaulting


def test_a_pod_is_defaulted_and_starts_pending_with_its_qos_class(api: Http) -> None:
    pod = create(
        api,
        f"{NS}/pods",
        {
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]},
                    {"name": "b", "image": "nginx:1.27", "resources": {"limits": {"cpu": "1"}}},
                    {"name": "c", "image": "nginx@sha256:" + "0" * 64},
                ]
            },
        },
    )
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always" and spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {} and spec["enableServiceLinks"] is True
    a, b, c = spec["containers"]
    # SetDefaults_Container: Always for :latest or no tag, IfNotPresent otherwise.
    assert [a["imagePullPolicy"], b["imagePullPolicy"], c["imagePullPolicy"]] == [
        "Always", "IfNotPresent", "IfNotPresent",
    ]  # fmt: skip
    assert a["terminationMessagePath"] == "/dev/termination-log"
    assert a["terminationMessagePolicy"] == "File"
    assert a["resources"] == {} and a["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    # SetDefaults_Pod: requests default to limits.
    assert b["resources"] == {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}
    assert pod["status"] == {"phase": "Pending", "qosClass": "Burstable"}


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ([{}], "BestEffort"),
        ([{"limits": {"cpu": "500m", "memory": "1Gi"}}], "Guaranteed"),
        ([{"limits": {"cpu": "0.5", "memory": "1Gi"}, "requests": {"cpu": "500m"}}], "Guaranteed"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}}], "Burstable"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
    ],
)
def test_qos_class_follows_requests_and_limits(
    api: Http, resources: list[dict[str, Any]], qos: str
) -> None:
    containers = [
        {"name": f"c{i}", "image": "nginx", "resources": r} for i, r in enumerate(resources)
    ]
    pod = create(api, f"{NS}/pods", {"metadata": {"name": "p"}, "spec": {"containers": containers}})
    assert pod["status"]["qosClass"] == qos


def test_a_service_gets_a_cluster_ip_and_its_defaults(api: Http) -> None:
    first = create(
        api, f"{NS}/services", {"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}}
    )
    second = create(
        api,
        f"{NS}/services",
        {
            "metadata": {"name": "b"},
            "spec": {"type": "NodePort", "ports": [{"port": 53, "protocol": "UDP", "name": "dns"}]},
        },
    )
    spec = first["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["clusterIPs"] == [spec["clusterIP"]] and spec["clusterIP"].startswith("10.")
    assert second["spec"]["clusterIP"] != spec["clusterIP"]
    assert second["spec"]["externalTrafficPolicy"] == "Cluster"
    assert 30000 <= second["spec"]["ports"][0]["nodePort"] <= 32767
    # An update without the allocated values keeps them (the Service REST's patchAllocatedValues).
    replaced = dict(first, spec={"ports": [{"port": 80}]})
    status, updated, _ = api.request("PUT", f"{NS}/services/a", replaced)
    assert status == 200, updated
    assert updated["spec"]["clusterIP"] == spec["clusterIP"]
    assert updated["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_a_headless_service_keeps_none(api: Http) -> None:
    body = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "selector": {"app": "x"}}}
    spec = create(api, f"{NS}/services", body)["spec"]
    assert spec["clusterIP"] == "None" and spec["clusterIPs"] == ["None"]


def test_a_deployment_is_defaulted_with_its_template(api: Http) -> None:
    body = {
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()},
    }
    spec = create(api, DEPLOYMENTS, body)["spec"]
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always" and pod_spec["dnsPolicy"] == "ClusterFirst"
    assert "enableServiceLinks" not in pod_spec  # SetDefaults_Pod only, not templates
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_a_job_gets_its_defaults_and_a_generated_selector(api: Http, srv: ApiServer) -> None:
    if srv.store.lookup("batch", "v1", "jobs") is None:
        pytest.skip("jobs are not served")
    body = {"metadata": {"name": "j"}, "spec": {"template": template(restartPolicy="Never")}}
    job = create(api, "/apis/batch/v1/namespaces/default/jobs", body)
    spec, uid = job["spec"], job["metadata"]["uid"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed" and spec["suspend"] is False
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = spec["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "j" and labels["controller-uid"] == uid


def test_the_object_api_writes_as_given(srv: ApiServer) -> None:
    pod = srv.create("pods", {"metadata": {"name": "p"}, "spec": {}})
    assert pod["spec"] == {}


# ------------------------------------------------------------------ validation


def test_a_deployment_without_selector_or_containers_is_invalid(api: Http) -> None:
    causes = refused(api, DEPLOYMENTS, {"metadata": {"name": "web"}, "spec": {}})
    assert causes == [
        ("spec.selector", "Required value"),
        (
            "spec.template.metadata.labels",
            "Invalid value: map[string]string(nil): `selector` does not match template `labels`",
        ),
        ("spec.template.spec.containers", "Required value"),
    ]
    _, answer, _ = api.request("POST", DEPLOYMENTS, {"metadata": {"name": "web"}, "spec": {}})
    assert answer["message"].startswith(
        'Deployment.apps "web" is invalid: [spec.selector: Required value, '
    )


def test_a_selector_must_match_the_template_and_not_be_empty(api: Http) -> None:
    body: dict[str, Any] = {
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "db"}}, "template": template()},
    }
    assert refused(api, DEPLOYMENTS, body) == [
        (
            "spec.template.metadata.labels",
            'Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`',
        )
    ]
    body["spec"]["selector"] = {"matchLabels": {}}
    assert refused(api, DEPLOYMENTS, body) == [
        (
            "spec.selector",
            "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, "
            "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid "
            "for deployment",
        )
    ]


def test_containers_need_unique_dns_label_names_and_images(api: Http) -> None:
    containers = [{"name": "Web", "image": "nginx"}, {"name": "b"}, {"name": "b", "image": "x"}]
    causes = refused(
        api, f"{NS}/pods", {"metadata": {"name": "p"}, "spec": {"containers": containers}}
    )
    assert [field for field, _ in causes] == [
        "spec.containers[0].name",
        "spec.containers[1].image",
        "spec.containers[2].name",
    ]
    assert causes[0][1].startswith('Invalid value: "Web": a lowercase RFC 1123 label must consist')
    assert causes[2][1] == 'Duplicate value: "b"'
    causes = refused(api, f"{NS}/pods", {"metadata": {"name": "p"}, "spec": {}})
    assert causes == [("spec.containers", "Required value")]


def test_template_labels_are_qualified_names(api: Http) -> None:
    spec = {"selector": {"matchLabels": {"app": "web"}}, "template": template()}
    spec["template"]["metadata"]["labels"]["bad key"] = "v"
    causes = refused(api, DEPLOYMENTS, {"metadata": {"name": "web"}, "spec": spec})
    assert causes[0][0] == "spec.template.metadata.labels"
    assert causes[0][1].startswith('Invalid value: "bad key": name part must consist of')


def test_configmap_keys_are_config_keys(api: Http) -> None:
    body = {
        "metadata": {"name": "c"},
        "data": {"a b": "1", "ok": "2"},
        "binaryData": {"ok": "eA=="},
    }
    assert refused(api, f"{NS}/configmaps", body) == [
        (
            "data[a b]",
            'Invalid value: "a b": a valid config key must consist of alphanumeric characters, '
            "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
            "validation is '[-._a-zA-Z0-9]+')",
        ),
        ("binaryData[ok]", 'Invalid value: "ok": duplicate of key present in data'),
    ]


def test_service_ports_are_checked(api: Http) -> None:
    body = {
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "name": "web"}, {"port": 0, "protocol": "HTTP"}]},
    }
    assert refused(api, f"{NS}/services", body) == [
        ("spec.ports[1].name", "Required value"),
        ("spec.ports[1].port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
        (
            "spec.ports[1].protocol",
            'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
        ),
        # targetPort defaulted to the port, and checked as a port number too.
        ("spec.ports[1].targetPort", "Invalid value: 0: must be between 1 and 65535, inclusive"),
    ]
    assert refused(api, f"{NS}/services", {"metadata": {"name": "s"}, "spec": {}}) == [
        ("spec.ports", "Required value")
    ]


def test_a_jobs_pods_must_not_restart_always(api: Http, srv: ApiServer) -> None:
    if srv.store.lookup("batch", "v1", "jobs") is None:
        pytest.skip("jobs are not served")
    body = {"metadata": {"name": "j"}, "spec": {"template": template()}}
    assert refused(api, "/apis/batch/v1/namespaces/default/jobs", body) == [
        (
            "spec.template.spec.restartPolicy",
            'Unsupported value: "Always": supported values: "OnFailure", "Never"',
        )
    ]


def test_an_invalid_update_is_refused_and_changes_nothing(api: Http) -> None:
    body = {
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()},
    }
    created = create(api, DEPLOYMENTS, body)
    patch = {"spec": {"template": {"metadata": {"labels": {"app": "other"}}}}}
    headers = {"Content-Type": "application/merge-patch+json"}
    status, answer, _ = api.request("PATCH", f"{DEPLOYMENTS}/web", patch, headers=headers)
    assert status == 422, answer
    assert answer["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    assert (
        api.get(f"{DEPLOYMENTS}/web")[1]["metadata"]["resourceVersion"]
        == (created["metadata"]["resourceVersion"])
    )
