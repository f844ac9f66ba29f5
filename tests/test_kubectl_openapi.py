"""The real kubectl's validation and ``explain`` against the test API server (skipped without kubectl).

kubectl (v1.32) reads ``/openapi/v3`` before ``apply -f`` and ``create -f``: when the
kind's PATCH operation has a ``fieldValidation`` parameter it leaves field validation to
the server (``--validate`` → ``fieldValidation``); ``explain`` renders the schemas.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rxkube.testing import ApiServer

KUBECTL_TIMEOUT = 60.0
"""Seconds one kubectl command may take, generous for a loaded two-core machine."""

MANIFEST = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
"""
UNKNOWN = MANIFEST.replace("  replicas: 2\n", "  replicas: 2\n  foo: bar\n")


class Kubectl:
    """Runs the real kubectl against one server, with its own ``HOME`` and a timeout."""

    def __init__(self, binary: str, srv: ApiServer, tmp_path: Path) -> None:
        self.binary = binary
        self.srv = srv
        home = tmp_path / "home"  # kubectl's discovery and HTTP caches are the test's own
        home.mkdir()
        kubeconfig = srv.write_kubeconfig(tmp_path / "kubeconfig")
        self.env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(kubeconfig)}

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args], input=stdin, capture_output=True, text=True, env=self.env,
            timeout=KUBECTL_TIMEOUT, check=False,
        )  # fmt: skip


@pytest.fixture
def kubectl(tmp_path: Path) -> Iterator[Kubectl]:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("no kubectl on PATH: these tests run the real kubectl")
    with ApiServer(bookmark_interval=None) as srv:
        yield Kubectl(binary, srv, tmp_path)


def test_apply_and_create_from_a_file_validate_on_the_server(kubectl: Kubectl) -> None:
    applied = kubectl("apply", "-f", "-", stdin=MANIFEST.format(name="web"))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "deployment.apps/web created"
    created = kubectl("create", "-f", "-", stdin=MANIFEST.format(name="other"))
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "deployment.apps/other created"
    requests = kubectl.srv.requests
    writes = [r for r in requests if r.verb in ("create", "patch")]
    assert writes and all(r.query.get("fieldValidation") == "Strict" for r in writes)
    assert any(r.path.startswith("/openapi/v3") for r in requests)


def test_strict_validation_refuses_an_unknown_field(kubectl: Kubectl) -> None:
    failed = kubectl("create", "-f", "-", "--validate=strict", stdin=UNKNOWN.format(name="web"))
    assert failed.returncode != 0
    assert (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.foo"'
    ) in failed.stderr
    assert kubectl.srv.list("deployments.apps") == []


def test_warn_validation_drops_the_unknown_field_with_a_warning(kubectl: Kubectl) -> None:
    done = kubectl("apply", "-f", "-", "--validate=warn", stdin=UNKNOWN.format(name="web"))
    assert done.returncode == 0, done.stderr
    assert 'Warning: unknown field "spec.foo"' in done.stderr
    stored = kubectl.srv.get("deployments.apps", "web")
    assert "foo" not in stored["spec"]
    ignored = kubectl("apply", "-f", "-", "--validate=false", stdin=UNKNOWN.format(name="web"))
    assert ignored.returncode == 0 and "Warning" not in ignored.stderr


def test_explain_renders_the_published_schema(kubectl: Kubectl) -> None:
    explained = kubectl("explain", "deployment.spec.template")
    assert explained.returncode == 0, explained.stderr
    text = explained.stdout
    assert "KIND:       Deployment" in text and "VERSION:    v1" in text
    assert "FIELD: template <PodTemplateSpec>" in text
    assert "spec\t<PodSpec>" in text
    field = kubectl("explain", "pods.spec.containers.imagePullPolicy")
    assert field.returncode == 0, field.stderr
    assert "FIELD: imagePullPolicy <string>" in field.stdout
