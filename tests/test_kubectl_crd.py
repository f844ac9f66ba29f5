"""kubectl workflows over CustomResourceDefinitions and ``/scale`` against rxkube.testing.ApiServer.

They run the real kubectl found on PATH and are skipped where there is none; the
behaviours themselves are tested over HTTP in test_apiserver_crd.py and
test_apiserver_scale.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rxkube.testing import ApiServer
from tests.test_apiserver_crd import widget_crd

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


class Kubectl:
    """Runs kubectl against one server, with a discovery cache of its own."""

    def __init__(self, srv: ApiServer, tmp_path: Path) -> None:
        self.kubeconfig = srv.write_kubeconfig(tmp_path / "kubeconfig")
        self.cache = tmp_path / "cache"
        self.tmp_path = tmp_path

    def run(self, *args: str, input_objects: list[dict[str, Any]] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
        assert KUBECTL is not None
        command = [
            KUBECTL,
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.cache),
            *args,
        ]
        stdin = yaml.safe_dump_all(input_objects) if input_objects is not None else None
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=60, check=False
        )
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)


@pytest.fixture
def kubectl(tmp_path: Path) -> Iterator[Kubectl]:
    with ApiServer(bookmark_interval=None) as srv:
        yield Kubectl(srv, tmp_path)


def test_kubectl_crd_lifecycle(kubectl: Kubectl) -> None:
    """Create a definition, wait for Established, apply a custom resource (pruned and
    defaulted), scale it, and delete the definition: the resource is gone with it."""
    created = kubectl.run("create", "-f", "-", input_objects=[widget_crd()])
    assert (
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"
        in created.stdout
    )
    waited = kubectl.run(
        "wait", "--for", "condition=established", "--timeout=30s", "crd/widgets.example.com"
    )
    assert "condition met" in waited.stdout
    resources = kubectl.run("api-resources", "--api-group=example.com").stdout.splitlines()
    assert resources[1].split() == ["widgets", "wd", "example.com/v1", "true", "Widget"]
    widget: dict[str, Any] = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
              "spec": {"size": 3, "replicas": 1, "unknown": "dropped"}}  # fmt: skip
    strict = kubectl.run("apply", "-f", "-", input_objects=[widget], check=False)
    assert strict.returncode == 1
    assert 'strict decoding error: unknown field "spec.unknown"' in strict.stderr
    warned = kubectl.run("apply", "--validate=warn", "-f", "-", input_objects=[widget])
    assert 'Warning: unknown field "spec.unknown"' in warned.stderr
    del widget["spec"]["unknown"]
    applied = kubectl.run("apply", "-f", "-", input_objects=[widget])
    assert "widget.example.com/w created" in warned.stdout
    assert "widget.example.com/w configured" in applied.stdout
    got = kubectl.json("get", "wd", "w")
    assert got["spec"] == {"size": 3, "replicas": 1, "color": "red"}
    invalid = kubectl.run(
        "apply", "--validate=false", "-f", "-", check=False,
        input_objects=[{**widget, "metadata": {"name": "bad"}, "spec": {"size": 99}}],
    )  # fmt: skip
    assert invalid.returncode == 1
    assert (
        "spec.size: Invalid value: 99: spec.size in body should be less than or equal to 10"
        in invalid.stderr
    )
    scaled = kubectl.run("scale", "widget", "w", "--replicas=4")
    assert "widget.example.com/w scaled" in scaled.stdout
    assert kubectl.json("get", "widgets.example.com", "w")["spec"]["replicas"] == 4
    deleted = kubectl.run("delete", "crd", "widgets.example.com")
    assert (
        'customresourcedefinition.apiextensions.k8s.io "widgets.example.com" deleted'
        in deleted.stdout
    )
    gone = kubectl.run("get", "crd", "widgets.example.com", check=False)
    assert gone.returncode == 1 and "NotFound" in gone.stderr
    listed = kubectl.run("api-resources", "--api-group=example.com").stdout.splitlines()
    assert listed[1:] == []


def test_kubectl_scale_deployment_with_preconditions(kubectl: Kubectl) -> None:
    """``kubectl scale`` with ``--current-replicas`` or ``--resource-version`` reads the
    Scale, checks the precondition and updates it; a failed precondition changes nothing."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }  # fmt: skip
    kubectl.run("create", "-f", "-", input_objects=[deployment])
    kubectl.run("scale", "deployment/web", "--current-replicas=2", "--replicas=3")
    assert kubectl.json("get", "deployment", "web")["spec"]["replicas"] == 3
    refused = kubectl.run(
        "scale", "deployment/web", "--current-replicas=2", "--replicas=5", check=False
    )
    assert refused.returncode == 1
    assert "Expected replicas to be 2, was 3" in refused.stderr
    rv = kubectl.json("get", "deployment", "web")["metadata"]["resourceVersion"]
    stale = kubectl.run(
        "scale", "deployment/web", f"--resource-version={int(rv) - 1}", "--replicas=5", check=False
    )
    assert stale.returncode == 1
    assert f"Expected resource version to be {int(rv) - 1}, was {rv}" in stale.stderr
    kubectl.run("scale", "deployment/web", f"--resource-version={rv}", "--replicas=6")
    assert kubectl.json("get", "deployment", "web")["spec"]["replicas"] == 6
