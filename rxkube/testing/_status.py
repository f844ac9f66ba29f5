"""Kubernetes ``Status`` failures: the one exception the test server raises internally.

Every failure the server answers is a :class:`StatusError` turned into a ``Status``
body with the code, reason and message kube-apiserver would send; the synchronous
object API turns the same errors into typed :mod:`rxkube.errors` exceptions.
"""

from __future__ import annotations

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
        self.details = dict(details) if details else {}
        self.retry_after = retry_after
        if retry_after is not None:
            self.details["retryAfterSeconds"] = retry_after
        self.continue_token = continue_token

    def status(self) -> dict[str, Any]:
        """The ``Status`` object to send."""
        body = failure_status(self.code, self.message, self.reason)
        if self.continue_token:
            body["metadata"]["continue"] = self.continue_token
        if self.details:
            body["details"] = self.details
        return body

    def to_api_error(self, request: str = "") -> ApiError:
        """The typed :mod:`rxkube.errors` exception for this failure."""
        retry = float(self.retry_after) if self.retry_after is not None else None
        return api_error(self.code, self.status(), retry_after=retry, request=request)


def _details(resource: Resource, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": resource.plural}
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


def invalid(resource: Resource, name: str, causes: list[tuple[str, str]]) -> StatusError:
    """422 Invalid: ``causes`` are ``(field, message)`` pairs."""
    text = "; ".join(f"{field}: {message}" for field, message in causes)
    details = _details(resource, name)
    details["kind"] = resource.kind
    details["causes"] = [
        {"reason": "FieldValueInvalid", "message": message, "field": field}
        for field, message in causes
    ]
    return StatusError(422, f'{resource.kind} "{name}" is invalid: {text}', details=details)


_CAUSE_REASONS = {
    "Forbidden": "FieldValueForbidden",
    "Required value": "FieldValueRequired",
    "Too long": "FieldValueTooLong",
}


def invalid_options(causes: list[tuple[str, str, str]], kind: str = "ListOptions") -> StatusError:
    """422 for request options that kube-apiserver's validation rejects.

    Args:
        causes: ``(field, error, detail)``, the error being ``"Forbidden"``,
            ``"Required value"`` or ``"Too long"``.
        kind: ``ListOptions``, ``CreateOptions``, ``UpdateOptions`` or ``PatchOptions``.
    """
    text = ", ".join(f"{field}: {error}: {detail}" for field, error, detail in causes)
    if len(causes) > 1:
        text = f"[{text}]"
    return StatusError(
        422,
        f'{kind}.meta.k8s.io "" is invalid: {text}',
        details={
            "group": "meta.k8s.io",
            "kind": kind,
            "causes": [
                {"reason": _CAUSE_REASONS[error], "message": f"{error}: {detail}", "field": field}
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
