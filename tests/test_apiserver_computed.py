"""Resources answered per request and never stored: Bindings and the authentication reviews.

Checked against kubernetes/kubernetes: pkg/registry/core/pod/storage/storage.go
(``BindingREST.Create``, ``assignPod``, ``setPodHostAndAnnotations``),
pkg/apis/core/validation (``ValidatePodBinding``), pkg/registry/authentication/
selfsubjectreview/rest.go and pkg/registry/authentication/tokenreview/storage.go.
"""

from __future__ import annotations

from typing import Any

from rxkube.testing import ApiServer
from tests.apiserver_http import Http
from tests.test_apiserver import pod

BINDINGS = "/api/v1/namespaces/default/bindings"
AUTHN = "/apis/authentication.k8s.io/v1"


def binding(node: str, **target: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "web", "annotations": {"scheduler": "mine"}},
        "target": {"kind": "Node", "name": node, **target},
    }


def test_a_binding_assigns_the_pod_to_its_node(srv: ApiServer, api: Http) -> None:
    """``setPodHostAndAnnotations``: nodeName, the Binding's annotations, PodScheduled
    True; the answer is a Success Status; nothing is kept under bindings."""
    api.request("POST", "/api/v1/namespaces/default/pods", pod("web"))
    with api.watch(
        "/api/v1/namespaces/default/pods", resourceVersion=str(srv.resource_version)
    ) as watch:
        status, answer, _ = api.request("POST", BINDINGS, binding("node-1"))
        assert status == 201
        assert answer == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        (event,) = watch.events(1)
    assert event["type"] == "MODIFIED"
    bound = event["object"]
    assert bound["spec"]["nodeName"] == "node-1"
    assert bound["metadata"]["annotations"] == {"scheduler": "mine"}
    (scheduled,) = bound["status"]["conditions"]
    assert scheduled["type"] == "PodScheduled" and scheduled["status"] == "True"
    assert scheduled["lastProbeTime"] is None and scheduled["lastTransitionTime"]
    assert api.get(BINDINGS)[0] == 405


def test_a_bound_pod_cannot_be_bound_again(api: Http) -> None:
    api.request("POST", "/api/v1/namespaces/default/pods", pod("web"))
    api.request("POST", BINDINGS, binding("node-1"))
    status, error, _ = api.request("POST", BINDINGS, binding("node-2"))
    assert status == 409
    assert error["message"] == (
        'Operation cannot be fulfilled on pods/binding "web": pod web is already assigned to '
        'node "node-1"'
    )
    status, error, _ = api.request("POST", BINDINGS, {**binding("n"), "metadata": {"name": "none"}})
    assert status == 404 and error["message"] == 'pods "none" not found'


def test_an_invalid_binding_is_a_plain_error(api: Http) -> None:
    """``ValidatePodBinding``'s errors are returned as an aggregate, not a StatusError:
    kube-apiserver answers them as a 500 with no reason."""
    api.request("POST", "/api/v1/namespaces/default/pods", pod("web"))
    status, error, _ = api.request("POST", BINDINGS, binding("", kind="Pod"))
    assert status == 500
    assert "reason" not in error  # StatusReasonUnknown, omitted
    assert error["message"] == (
        '[target.kind: Unsupported value: "Pod": supported values: "Node", "<empty>", '
        "target.name: Required value]"
    )


def test_self_subject_review_names_the_requester(api: Http) -> None:
    status, answer, _ = api.request("POST", f"{AUTHN}/selfsubjectreviews", {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})  # fmt: skip
    assert status == 201
    assert answer["status"] == {
        "userInfo": {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
    }
    with ApiServer(token="s3cret") as secured:
        status, answer, _ = Http(secured, token="s3cret").request(
            "POST", f"{AUTHN}/selfsubjectreviews", {}
        )
    assert status == 201
    assert answer["status"]["userInfo"]["username"] == "rxkube-admin"


def test_token_review_authenticates_the_servers_token() -> None:
    with ApiServer(token="s3cret") as secured:
        api = Http(secured, token="s3cret")
        _, good, _ = api.request("POST", f"{AUTHN}/tokenreviews", {"spec": {"token": "s3cret"}})
        _, bad, _ = api.request("POST", f"{AUTHN}/tokenreviews", {"spec": {"token": "other"}})
        status, error, _ = api.request("POST", f"{AUTHN}/tokenreviews", {"spec": {}})
    assert good["status"]["authenticated"] is True
    assert good["status"]["user"]["groups"] == ["system:masters", "system:authenticated"]
    assert bad["status"] == {"user": {}}
    assert status == 400
    assert error["message"] == "token is required for TokenReview in authentication"
