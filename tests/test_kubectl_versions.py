"""kubectl on the resources served at two versions: events and HorizontalPodAutoscalers.

The conversions are tested over HTTP in tests/test_apiserver_versions.py; here the real
kubectl (skipped without one) reads and writes them as users do: ``kubectl get events``,
``kubectl events``, ``kubectl autoscale`` (which sends an ``autoscaling/v1`` object, as
protobuf) and reads at either version.
"""

from __future__ import annotations

import json

from rxkube.testing import ApiServer
from tests.kubectl_harness import Kubectl
from tests.test_apiserver_versions import core_event, new_event


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_get_events_at_both_versions(apiserver: ApiServer, kubectl: Kubectl) -> None:
    apiserver.create("events", core_event())
    kubectl("apply", "-f", "-", stdin=json.dumps(new_event()))
    core = rows(kubectl("get", "events", "--sort-by=metadata.name").stdout)
    assert core[0] == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert [row[1:4] for row in core[1:]] == [
        ["Normal", "Started", "pod/web"],
        ["Normal", "Synced", "deployment/web"],
    ]
    new = rows(kubectl("get", "events.events.k8s.io", "--sort-by=metadata.name").stdout)
    assert [row[1:] for row in new] == [row[1:] for row in core]
    note = kubectl("get", "events.v1.events.k8s.io", "e1", "-o", "jsonpath={.note}").stdout
    assert note == "Started container c"
    selected = kubectl(
        "get", "events.events.k8s.io", "--field-selector", "regarding.kind=Deployment", "-o", "name"
    ).stdout
    assert selected.split() == ["event.events.k8s.io/e2"]
    # kubectl events lists core v1 Events, counts included ("(x3 over ...)").
    listed = kubectl("events").stdout.splitlines()
    assert listed[0].split()[:3] == ["LAST", "SEEN", "TYPE"]
    (pod_row,) = (line for line in listed if "Pod/web" in line)
    assert "(x3 over" in pod_row
    assert any("Deployment/web" in line for line in listed)


def test_autoscale_a_deployment(kubectl: Kubectl) -> None:
    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")
    out = kubectl("autoscale", "deployment", "web", "--min=2", "--max=5", "--cpu-percent=70")
    assert out.stdout.strip() == "horizontalpodautoscaler.autoscaling/web autoscaled"
    table = rows(kubectl("get", "hpa").stdout)
    assert table[0] == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert table[1][:7] == ["web", "Deployment/web", "cpu:", "<unknown>/70%", "2", "5", "0"]
    v2 = json.loads(kubectl("get", "hpa", "web", "-o", "json").stdout)
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"][0]["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": 70,
    }
    v1 = json.loads(
        kubectl(
            "get",
            "horizontalpodautoscalers.v1.autoscaling",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ).stdout
    )
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 70
    assert v1["metadata"]["managedFields"][0]["manager"] == "kubectl-autoscale"
