"""kubectl's scale workflows and the ownership of replicas they leave, with the real kubectl.

The behaviours are tested over HTTP in tests/test_apiserver_scale_fields.py (checked
against kube-apiserver's scalehandler.go); skipped without a kubectl binary.
"""

from __future__ import annotations

import json

from tests.kubectl_harness import Kubectl

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec: {replicas: 4}
"""


def test_kubectl_scale_records_a_scale_entry(kubectl: Kubectl) -> None:
    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")
    kubectl("scale", "deployment", "web", "--replicas=3")
    shown = kubectl("get", "deployment", "web", "-o", "json", "--show-managed-fields").stdout
    parent = json.loads(shown)
    assert parent["spec"]["replicas"] == 3
    owners = [
        (e["manager"], e["operation"], e.get("subresource"))
        for e in parent["metadata"]["managedFields"]
        if "f:replicas" in e["fieldsV1"].get("f:spec", {})
    ]
    assert owners == [("kubectl", "Update", "scale")]


def test_apply_of_the_parents_kind_to_scale_is_refused_as_there(kubectl: Kubectl) -> None:
    """kubectl sends the Deployment itself to ``/scale``; kube-apiserver's field manager
    there expects an autoscaling/v1 Scale."""
    kubectl("create", "deployment", "web", "--image=nginx")
    result = kubectl(
        "apply", "--server-side", "--subresource=scale", "-f", "-", stdin=DEPLOYMENT, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error from server (BadRequest): Incorrect version specified in apply patch. "
        "Specified patch version: apps/v1, expected: autoscaling/v1"
    )


def test_delete_cascade_foreground_waits_for_a_garbage_collector(kubectl: Kubectl) -> None:
    """No garbage collector runs, as on a control plane without a controller manager: the
    object stays with ``foregroundDeletion`` (see tests/test_apiserver_gc.py)."""
    kubectl("create", "configmap", "c", "--from-literal=a=b")
    kubectl("delete", "configmap", "c", "--cascade=foreground", "--wait=false")
    left = kubectl("get", "configmap", "c", "-o", "jsonpath={.metadata.finalizers}").stdout
    assert left == '["foregroundDeletion"]'
