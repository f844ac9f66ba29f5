"""Authorization reviews over HTTP: the test server authorises everything (AlwaysAllow).

kube-apiserver's registries (pkg/registry/authorization/*/rest.go) answer a review's
create with 201 and the authorizer's decision; AlwaysAllow allows with no reason, and
its ``RulesFor`` lists wildcard rules (k8s.io/apiserver authorizerfactory/builtin.go).
Validation: pkg/apis/authorization/validation/validation.go.
"""

from __future__ import annotations

from tests.apiserver_http import Http

AUTHZ = "/apis/authorization.k8s.io/v1"


def test_self_subject_access_review_is_allowed_and_not_stored(api: Http) -> None:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}
        },
    }
    status, answer, _ = api.request("POST", f"{AUTHZ}/selfsubjectaccessreviews", body)
    assert status == 201, answer
    assert answer["kind"] == "SelfSubjectAccessReview" and answer["status"] == {"allowed": True}
    assert answer["spec"] == body["spec"]
    status, refused, _ = api.request("GET", f"{AUTHZ}/selfsubjectaccessreviews")
    assert status == 405 and refused["reason"] == "MethodNotAllowed"


def test_review_validation(api: Http) -> None:
    status, answer, _ = api.request("POST", f"{AUTHZ}/selfsubjectaccessreviews", {"spec": {}})
    assert status == 422
    assert answer["message"] == (
        'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: '
        'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes '
        "must be specified"
    )
    local = {"spec": {"user": "u", "resourceAttributes": {"namespace": "other", "verb": "get"}}}
    status, answer, _ = api.request(
        "POST", f"{AUTHZ}/namespaces/default/localsubjectaccessreviews", local
    )
    assert status == 422 and "must match metadata.namespace" in answer["message"]
    local["spec"]["resourceAttributes"]["namespace"] = "default"  # type: ignore[index]
    status, answer, _ = api.request(
        "POST", f"{AUTHZ}/namespaces/default/localsubjectaccessreviews", local
    )
    assert status == 201 and answer["status"]["allowed"] is True


def test_self_subject_rules_review_lists_wildcard_rules(api: Http) -> None:
    status, answer, _ = api.request(
        "POST", f"{AUTHZ}/selfsubjectrulesreviews", {"spec": {"namespace": "default"}}
    )
    assert status == 201
    assert answer["status"] == {
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
        "incomplete": False,
    }


def test_reviews_are_in_discovery_with_create_only(api: Http) -> None:
    listing = {r["name"]: r for r in api.get(AUTHZ)[1]["resources"]}
    assert listing["selfsubjectaccessreviews"] == {
        "name": "selfsubjectaccessreviews",
        "singularName": "selfsubjectaccessreview",
        "namespaced": False,
        "kind": "SelfSubjectAccessReview",
        "verbs": ["create"],
    }
    assert listing["localsubjectaccessreviews"]["namespaced"] is True
