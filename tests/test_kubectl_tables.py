"""kubectl get against the test server's Table output, kubectl get all and kubectl auth can-i.

The behaviours are tested over HTTP in tests/test_apiserver_tables.py and
tests/test_apiserver_reviews.py; here the real kubectl (skipped without one) prints them.
"""

from __future__ import annotations

import json

from rxkube.testing import ApiServer
from tests.kubectl_harness import Kubectl
from tests.test_apiserver_tables import running_pod


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_get_pods_in_every_human_format(apiserver: ApiServer, kubectl: Kubectl) -> None:
    apiserver.create("pods", running_pod("web-1"))
    plain = rows(kubectl("get", "pods").stdout)
    assert plain[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert plain[1][:4] == ["web-1", "1/1", "Running", "0"]
    wide = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
        "READINESS", "GATES",
    ]  # fmt: skip
    assert wide[1].split()[5:] == ["10.0.0.5", "node-1", "<none>", "<none>"]
    assert rows(kubectl("get", "pods", "--show-labels").stdout)[1][-1] == "app=web"
    assert rows(kubectl("get", "pods", "-L", "app").stdout)[0][-1] == "APP"
    everywhere = rows(kubectl("get", "pods", "-A").stdout)
    assert everywhere[0][:2] == ["NAMESPACE", "NAME"] and everywhere[1][:2] == ["default", "web-1"]
    assert kubectl("get", "pods", "-o", "name").stdout.split() == ["pod/web-1"]
    assert json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"][0]["kind"] == "Pod"
    path = kubectl("get", "pod", "web-1", "-o", "jsonpath={.spec.nodeName}").stdout
    assert path == "node-1"
    custom = rows(
        kubectl(
            "get", "pods", "-o", "custom-columns=N:.metadata.name,IP:.status.podIPs[0].ip"
        ).stdout
    )
    assert custom == [["N", "IP"], ["web-1", "10.0.0.5"]]
    assert "nodeName: node-1" in kubectl("get", "pod", "web-1", "-o", "yaml").stdout


def test_get_watch_prints_rows_as_they_change(apiserver: ApiServer, kubectl: Kubectl) -> None:
    apiserver.create("pods", running_pod("a"))
    with kubectl.running("get", "pods", "-w") as watching:
        watching.wait_for(lambda lines: any(line.startswith("a ") for line in lines))
        apiserver.create("pods", running_pod("b"))
        lines = watching.wait_for(lambda lines: any(line.startswith("b ") for line in lines))
    assert lines[0].split()[:2] == ["NAME", "READY"]
    assert sum(line.startswith("NAME") for line in lines) == 1


def test_get_all_lists_the_all_category(apiserver: ApiServer, kubectl: Kubectl) -> None:
    apiserver.create("pods", running_pod("a"))
    apiserver.create("services", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    apiserver.create("configmaps", {"metadata": {"name": "not-in-all"}})
    out = kubectl("get", "all").stdout
    assert "pod/a" in out and "service/web" in out and "not-in-all" not in out
    assert "TYPE        CLUSTER-IP" in out


def test_auth_can_i_answers_yes(kubectl: Kubectl) -> None:
    assert kubectl("auth", "can-i", "create", "deployments").stdout.strip() == "yes"
    listing = rows(kubectl("auth", "can-i", "--list").stdout)
    assert listing[1] == ["*.*", "[]", "[]", "[*]"]


def test_auth_whoami_names_the_anonymous_user(kubectl: Kubectl) -> None:
    """The SelfSubjectReview of tests/test_apiserver_computed.py, printed by kubectl."""
    assert rows(kubectl("auth", "whoami").stdout) == [
        ["ATTRIBUTE", "VALUE"],
        ["Username", "system:anonymous"],
        ["Groups", "[system:unauthenticated]"],
    ]
