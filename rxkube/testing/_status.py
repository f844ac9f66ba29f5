"""Kubernetes ``Status`` failures: the one exception the test server raises internally.

Every failure the server answers is a :class:`StatusError` turned into a ``Status``
body with the code, reason and message kube-apiserver would send; the synchronous
object API turns the same errors into typed :mod:`rxkube.errors` exceptions.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ApiError, api_error, failure_status
from ..resource import Resource

_REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(code: int) -> str:
    """The Status ``reason`` kube-apiserver uses for an HTTP status code."""
    return _REASONS.get(code, "InternalError" if code >= 500 else "Unknown")


class StatusError(Exception):
    """A failure to be answered as a Kubernetes ``Status``.

    Args:
        code: HTTP status code.
        message: the Status message.
        reason: the Status reason; derived from ``code`` when omitted.
        details: the Status ``details`` (name, group, kind, causes, retryAfterSeconds).
        retry_after: seconds for a ``Retry-After`` header and ``details.retryAfterSeconds``.
        continue_token: a ``metadata.continue`` to put in the Status (expired continue tokens).
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
        continue_token: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason if reason is not None else reason_for(code)
        # None sends no details; {} sends an empty object, as kube-apiserver's generic errors do.
        self.details: dict[str, Any] | None = dict(details) if details is not None else None
        self.retry_after = retry_after
        if retry_after is not None:
            self.details = {**(self.details or {}), "retryAfterSeconds": retry_after}
        self.continue_token = continue_token

    def status(self) -> dict[str, Any]:
        """The ``Status`` object to send."""
        body = failure_status(self.code, self.message, self.reason)
        if not self.reason:
            del body["reason"]  # StatusReasonUnknown is empty, and omitted
        if self.continue_token:
            body["metadata"]["continue"] = self.continue_token
        if self.details is not None:
            body["details"] = self.details
        return body

    def to_api_error(self, request: str = "") -> ApiError:
        """The typed :mod:`rxkube.errors` exception for this failure."""
        retry = float(self.retry_after) if self.retry_after is not None else None
        return api_error(self.code, self.status(), retry_after=retry, request=request)


def _details(resource: Resource, name: str) -> dict[str, Any]:
    # StatusDetails.Name is omitempty: an object without a name yet has none.
    details: dict[str, Any] = {"name": name} if name else {}
    details["kind"] = resource.plural
    if resource.group:
        details["group"] = resource.group
    return details


def not_found(resource: Resource, name: str) -> StatusError:
    """404 for a named object that does not exist."""
    return StatusError(
        404, f'{resource.full_name} "{name}" not found', details=_details(resource, name)
    )


def already_exists(resource: Resource, name: str) -> StatusError:
    """409 AlreadyExists for a create whose name is taken."""
    return StatusError(
        409,
        f'{resource.full_name} "{name}" already exists',
        reason="AlreadyExists",
        details=_details(resource, name),
    )


def conflict(resource: Resource, name: str, why: str) -> StatusError:
    """409 Conflict for a stale resourceVersion or a failed precondition."""
    return StatusError(
        409,
        f'Operation cannot be fulfilled on {resource.full_name} "{name}": {why}',
        details=_details(resource, name),
    )


def precondition_failed(resource: Resource, name: str, why: str) -> StatusError:
    """409 for a delete whose preconditions the object fails, as ``rest.BeforeDelete``
    answers it before the storage is asked: its group-resource is the *kind*
    (``ConfigMap``, ``Deployment.apps``), so the message and ``details.kind`` name it."""
    kind = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
    details = {**_details(resource, name), "kind": resource.kind}
    return StatusError(
        409, f'Operation cannot be fulfilled on {kind} "{name}": {why}', details=details
    )


_CAUSE_REASONS = {
    "Invalid value": "FieldValueInvalid",
    "Required value": "FieldValueRequired",
    "Forbidden": "FieldValueForbidden",
    "Too long": "FieldValueTooLong",
    "Unsupported value": "FieldValueNotSupported",
    "Duplicate value": "FieldValueDuplicate",
}


_TYPE_INVALID = re.compile(r'^Invalid value: .*in body must be of type [\w,]+: "\w+"$')
"""kube-openapi's type error, which apiextensions-apiserver makes a ``field.TypeInvalid``."""


def _cause_reason(body: str) -> str:
    if _TYPE_INVALID.match(body):
        return "FieldValueTypeInvalid"
    return next(
        (reason for error, reason in _CAUSE_REASONS.items() if body.startswith(error)),
        "FieldValueInvalid",
    )


def _aggregate(texts: list[str]) -> str:
    """Go's ``utilerrors.Aggregate`` message: one error as is, several deduplicated in brackets."""
    unique = list(dict.fromkeys(texts))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def invalid(resource: Resource | None, name: str, causes: list[tuple[str, str]]) -> StatusError:
    """422 Invalid, as ``apierrors.NewInvalid`` builds it.

    Args:
        resource: the kind (``Deployment.apps`` in the message); None for the empty
            group-kind kube-apiserver uses for a patch that does not decode.
        name: the object's name.
        causes: ``(field, body)`` pairs, the body as kube-apiserver's ``field.Error``
            writes it: ``Invalid value: "x": ...``, ``Required value: ...``, ``Forbidden: ...``.
    """
    details: dict[str, Any] = {}
    if resource is not None:
        details = _details(resource, name)
        details["kind"] = resource.kind
    details["causes"] = [
        {"reason": _cause_reason(body), "message": body, "field": field} for field, body in causes
    ]
    kind = ""
    if resource is not None:
        kind = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
    text = _aggregate([f"{field}: {body}" for field, body in causes])
    return StatusError(422, f'{kind} "{name}" is invalid: {text}', details=details)


def invalid_options(causes: list[tuple[str, str, str]], kind: str = "ListOptions") -> StatusError:
    """422 for request options that kube-apiserver's validation rejects.

    Args:
        causes: ``(field, error, detail)``, the error being ``"Forbidden"``,
            ``"Required value"`` or ``"Too long"``.
        kind: ``ListOptions``, ``CreateOptions``, ``UpdateOptions`` or ``PatchOptions``.
    """
    text = _aggregate([f"{field}: {error}: {detail}" for field, error, detail in causes])
    return StatusError(
        422,
        f'{kind}.meta.k8s.io "" is invalid: {text}',
        details={
            "group": "meta.k8s.io",
            "kind": kind,
            "causes": [
                {"reason": _cause_reason(error), "message": f"{error}: {detail}", "field": field}
                for field, error, detail in causes
            ],
        },
    )


def too_large_resource_version(requested: int, current: int) -> StatusError:
    """504 for a resourceVersion newer than the server has reached.

    As kube-apiserver's watch cache answers it (``storage.NewTooLargeResourceVersionError``
    with one second to retry after): reason ``Timeout``, a message with the
    ``Timeout:`` prefix of every timeout Status, and the ``ResourceVersionTooLarge`` cause
    that tells a client its resume point is ahead of the server's history.
    """
    return StatusError(
        504,
        f"Timeout: Too large resource version: {requested}, current: {current}",
        details={
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
        },
        retry_after=1,
    )


def status_success(resource: Resource, name: str, uid: str) -> dict[str, Any]:
    """The ``Status`` a delete answers for kinds that do not return the deleted object."""
    details = _details(resource, name)
    details["uid"] = uid
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }
