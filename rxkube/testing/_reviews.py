"""The authorization reviews (``kubectl auth can-i``) and the authentication reviews
(``kubectl auth whoami``): answered at once, never stored.

The test server authorises every request, as kube-apiserver does with
``--authorization-mode=AlwaysAllow``: an access review of any kind is allowed
(pkg/registry/authorization/*/rest.go put the authorizer's decision in the status;
AlwaysAllow gives no reason), and a SelfSubjectRulesReview lists the wildcard rules of
that authorizer's ``RulesFor`` (k8s.io/apiserver pkg/authorization/authorizerfactory).

Authentication is the server's bearer token or none: the token's user is
:data:`TOKEN_USER` (as ``EnvtestServer``'s token file names it); without a token every
request is anonymous, as kube-apiserver's anonymous authenticator makes it. A
SelfSubjectReview answers the requester's user (pkg/registry/authentication/
selfsubjectreview/rest.go); a TokenReview authenticates its ``spec.token``
(pkg/registry/authentication/tokenreview/storage.go: an unknown token is no error, just
not authenticated).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._served import ServedResource
from ._status import StatusError, invalid

TOKEN_USER = {
    "username": "rxkube-admin",
    "uid": "rxkube-admin",
    "groups": ["system:masters", "system:authenticated"],
}
"""The user the server's bearer token authenticates."""
ANONYMOUS = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}

_ALL_RULES = {
    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
    "incomplete": False,
}


def review(
    served: ServedResource, body: Mapping[str, Any], namespace: str | None, *, token: str | None
) -> dict[str, Any]:
    """The answer to a create of a review: the review, with its status.

    Args:
        served: the review's resource.
        body: the review sent.
        namespace: the request's namespace (a LocalSubjectAccessReview's).
        token: the server's bearer token (requests carry it), or None (all anonymous).

    Raises:
        StatusError: 422 for a spec that pkg/apis/authorization/validation refuses; 400
            for a TokenReview without a token.
    """
    res = served.resource
    spec = body.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    metadata = {"creationTimestamp": None, **(body.get("metadata") or {})}
    if namespace is not None:
        metadata["namespace"] = namespace
    if res.group == "authentication.k8s.io":
        return _authentication_review(res.kind, metadata, spec, token)
    causes = (
        []
        if res.kind == "SelfSubjectRulesReview"
        else _access_review_causes(res.kind, spec, namespace)
    )
    if causes:
        raise invalid(res, "", causes)
    status: dict[str, Any] = (
        dict(_ALL_RULES) if res.kind == "SelfSubjectRulesReview" else {"allowed": True}
    )
    return {
        "kind": res.kind,
        "apiVersion": res.api_version,
        "metadata": metadata,
        "spec": dict(spec),
        "status": status,
    }


def _access_review_causes(
    kind: str, spec: Mapping[str, Any], namespace: str | None
) -> list[tuple[str, str]]:
    """``ValidateSubjectAccessReviewSpec`` and the Local review's namespace rule."""
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    causes: list[tuple[str, str]] = []
    if resource is not None and non_resource is not None:
        causes.append(
            (
                "spec.nonResourceAttributes",
                "Invalid value: cannot be specified in combination with resourceAttributes",
            )
        )
    if resource is None and non_resource is None:
        causes.append(
            (
                "spec.resourceAttributes",
                'Invalid value: "null": exactly one of nonResourceAttributes or '
                "resourceAttributes must be specified",
            )
        )
    if kind != "SelfSubjectAccessReview" and not (spec.get("user") or spec.get("groups")):
        causes.append(
            ("spec.user", 'Invalid value: "": at least one of user or group must be specified')
        )
    if kind == "LocalSubjectAccessReview" and isinstance(resource, Mapping):
        given = resource.get("namespace") or ""
        if given != (namespace or ""):
            causes.append(
                (
                    "spec.resourceAttributes.namespace",
                    f'Invalid value: "{given}": must match metadata.namespace',
                )
            )
    return causes


def _authentication_review(
    kind: str, metadata: dict[str, Any], spec: Mapping[str, Any], token: str | None
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "kind": kind,
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": metadata,
    }
    if kind == "SelfSubjectReview":
        answer["status"] = {"userInfo": dict(TOKEN_USER if token is not None else ANONYMOUS)}
        return answer
    given = spec.get("token")
    if not isinstance(given, str) or not given:
        raise StatusError(400, "token is required for TokenReview in authentication")
    answer["spec"] = dict(spec)
    if token is not None and given == token:
        answer["status"] = {"authenticated": True, "user": dict(TOKEN_USER)}
    else:
        answer["status"] = {"user": {}}
    return answer
