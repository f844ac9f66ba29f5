"""kubectl's strategic-merge workflows against ApiServer, run with the real kubectl binary.

Client-side ``apply``, ``patch``, ``set image``, ``set env``, ``rollout restart`` send
strategic merge patches for built-in kinds; ``apply --server-side`` over a client-side
applied object goes through the last-applied upgrade. Skipped where no kubectl is found.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rxkube.testing import ApiServer

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="no kubectl binary")


class Kubectl:
    """Runs kubectl against one server; every call has a deadline."""

    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        assert KUBECTL is not None
        done = subprocess.run(
            [KUBECTL, f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def apply(self, manifest: dict[str, Any], *args: str) -> str:
        # No OpenAPI schema to validate against is a separate difference: not relied on here.
        return self("apply", "--validate=false", "-f", "-", *args, stdin=json.dumps(manifest))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(self("get", kind, name, "-o", "json"))
        return obj


@pytest.fixture
def kubectl(tmp_path: Path) -> Iterator[Kubectl]:
    with ApiServer(bookmark_interval=None) as srv:
        yield Kubectl(srv.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)


def deployment(web: str = "nginx:1", sidecar: str | None = "busybox:1") -> dict[str, Any]:
    containers: list[dict[str, Any]] = [
        {"name": "web", "image": web, "env": [{"name": "A", "value": "1"}]}
    ]
    if sidecar is not None:
        containers.append({"name": "sidecar", "image": sidecar})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers},
            },
        },
    }


def pod_spec(kubectl: Kubectl) -> dict[str, Any]:
    spec: dict[str, Any] = kubectl.get("deployment", "web")["spec"]["template"]["spec"]
    return spec


def no_directives(value: Any) -> bool:
    """No ``$patch``/``$setElementOrder``... key anywhere (none may be stored)."""
    if isinstance(value, dict):
        return all(not k.startswith("$") and no_directives(v) for k, v in value.items())
    if isinstance(value, list):
        return all(no_directives(v) for v in value)
    return True


def test_client_side_apply_of_a_changed_deployment_keeps_both_containers(
    kubectl: Kubectl,
) -> None:
    kubectl.apply(deployment())
    kubectl.apply(deployment(web="nginx:2", sidecar="busybox:2"))
    spec = pod_spec(kubectl)
    assert [(c["name"], c["image"]) for c in spec["containers"]] == [
        ("web", "nginx:2"),
        ("sidecar", "busybox:2"),
    ]
    assert spec["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    kubectl.apply(deployment(web="nginx:2", sidecar=None))  # kubectl sends {"$patch": "delete"}
    assert [c["name"] for c in pod_spec(kubectl)["containers"]] == ["web"]
    assert no_directives(kubectl.get("deployment", "web"))


def test_patch_set_image_set_env_and_rollout_restart(kubectl: Kubectl) -> None:
    kubectl.apply(deployment())
    kubectl("patch", "deployment", "web", "-p", '{"spec":{"replicas":2}}')
    kubectl("set", "image", "deployment/web", "sidecar=busybox:3")
    kubectl("set", "env", "deployment/web", "-c", "web", "B=2")
    kubectl("set", "env", "deployment/web", "-c", "web", "A-")
    kubectl("rollout", "restart", "deployment/web")
    obj = kubectl.get("deployment", "web")
    spec = obj["spec"]["template"]["spec"]
    assert obj["spec"]["replicas"] == 2
    assert [(c["name"], c["image"]) for c in spec["containers"]] == [
        ("web", "nginx:1"),
        ("sidecar", "busybox:3"),
    ]
    assert spec["containers"][0]["env"] == [{"name": "B", "value": "2"}]
    assert "kubectl.kubernetes.io/restartedAt" in obj["spec"]["template"]["metadata"]["annotations"]
    assert no_directives(obj)


def test_service_applied_twice_with_a_changed_port(kubectl: Kubectl) -> None:
    def service(port: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "svc"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": port, "targetPort": 8080}],
            },
        }

    kubectl.apply(service(80))
    kubectl.apply(service(81))
    ports = kubectl.get("service", "svc")["spec"]["ports"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in ports] == [("http", 81, 8080)]


def test_server_side_apply_over_client_side_apply_migrates_ownership(kubectl: Kubectl) -> None:
    kubectl.apply(deployment())
    out = kubectl.apply(deployment(web="nginx:2"), "--server-side")
    assert "serverside-applied" in out
    obj = json.loads(kubectl("get", "deployment", "web", "-o", "json", "--show-managed-fields"))
    owners = {(e["manager"], e["operation"]) for e in obj["metadata"]["managedFields"]}
    assert owners == {("kubectl", "Apply"), ("kubectl-last-applied", "Apply")}
    last_applied = json.loads(
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last_applied["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    kubectl.apply(deployment(web="nginx:3"))  # and back to client side, from the synced annotation
    assert [c["image"] for c in pod_spec(kubectl)["containers"]] == ["nginx:3", "busybox:1"]
