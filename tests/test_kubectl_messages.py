"""kubectl's error output for bad selectors and field labels, as against kube-apiserver.

The server's texts are tested over HTTP in tests/test_apiserver_messages.py; here the
real kubectl (skipped without one) wraps them as it does a real server's. The
ReplicaSet line is word for word what kubectl printed against a real cluster in
kubernetes issue 135136.
"""

from __future__ import annotations

from tests.kubectl_harness import Kubectl


def test_a_field_label_kube_apiserver_does_not_know(kubectl: Kubectl) -> None:
    result = kubectl("get", "rs", "--field-selector", "status.replicas=0", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error from server (BadRequest): Unable to find "apps/v1, Resource=replicasets" that '
        'match label selector "", field selector "status.replicas=0": "status.replicas" is '
        'not a known field selector: only "metadata.name", "metadata.namespace"'
    )


def test_a_label_selector_that_does_not_parse(kubectl: Kubectl) -> None:
    result = kubectl("get", "configmaps", "-l", "app in web", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error from server (BadRequest): Unable to find "/v1, Resource=configmaps" that match '
        'label selector "app in web", field selector "": unable to parse requirement: found '
        "'web' expected: '('"
    )
