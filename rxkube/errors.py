"""One exception hierarchy for everything rxkube raises or sends to ``on_error``.

API errors carry the Kubernetes ``Status`` the server sent (code, reason,
message) and ``retry_after`` when the server asked for a delay. ``transient``
tells a retry policy whether trying again can help.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "ApiError",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "ConsumerError",
    "DecodeError",
    "Forbidden",
    "Gone",
    "Invalid",
    "NotFound",
    "RxKubeError",
    "ServerError",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "WatchStalled",
    "WriterBusy",
    "WriterStopped",
    "api_error",
    "failure_status",
    "retry_after_seconds",
]


def failure_status(code: int, message: str, reason: str = "") -> dict[str, Any]:
    """A Kubernetes ``Status`` object for a failure, shaped as the API server sends it.

    Example:
        >>> failure_status(404, 'pods "x" not found', "NotFound")["status"]
        'Failure'
    """
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def retry_after_seconds(value: object) -> float | None:
    """The seconds a server asked to wait, from a ``retryAfterSeconds`` or ``Retry-After`` number.

    Anything but a finite, non-negative number (or its decimal text) is no readable wish
    and gives ``None``, as client-go ignores a ``Retry-After`` it cannot parse. How long
    a wish is honoured is the retry policy's decision (see ``rxkube.operators.backoff``).

    Example:
        >>> retry_after_seconds("7"), retry_after_seconds(2.5), retry_after_seconds("soon")
        (7.0, 2.5, None)
        >>> retry_after_seconds("inf"), retry_after_seconds(-1), retry_after_seconds(True)
        (None, None, None)
    """
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class RxKubeError(Exception):
    """Base class of every rxkube error."""

    transient: bool = False
    """Whether retrying the same operation later may succeed."""


_UNSERVED_MESSAGE = "the server could not find the requested resource"
"""kube-apiserver's 404 message for a path no resource type is served at, as opposed to
``pods "web-0" not found`` for a missing object of a served type."""

_UNSERVED_HINT = (
    ": the server serves no such resource type (or subresource) at this group and version;"
    " is its CustomResourceDefinition installed?"
)


class ApiError(RxKubeError):
    """The API server answered with a failure ``Status``.

    Attributes:
        code: the HTTP status code (or the Status ``code``).
        reason: the Status ``reason`` (``NotFound``, ``Expired``, ...), may be empty.
        message: the Status ``message``.
        status: the whole Status object as sent, or a synthetic one.
        retry_after: seconds the server asked to wait (``Retry-After``), if it sent a
            readable wish: a finite number of seconds, never negative.
        request: a short description of the request, for messages.
    """

    def __init__(
        self,
        code: int,
        reason: str = "",
        message: str = "",
        *,
        status: dict[str, Any] | None = None,
        retry_after: float | None = None,
        request: str = "",
    ) -> None:
        self.code = code
        self.reason = reason
        self.message = message
        self.status: dict[str, Any] = (
            status if status is not None else failure_status(code, message, reason)
        )
        self.retry_after = retry_after_seconds(retry_after)
        self.request = request
        where = f" ({request})" if request else ""
        hint = _UNSERVED_HINT if code == 404 and message == _UNSERVED_MESSAGE else ""
        super().__init__(f"{code} {reason or 'Error'}: {message}{where}{hint}")


class BadRequest(ApiError):
    """400: the request was malformed (for example an invalid selector)."""


class Unauthorized(ApiError):
    """401: credentials are missing or expired; a refreshed token may fix it."""

    transient = True


class Forbidden(ApiError):
    """403: RBAC denies the request; it may be granted later."""

    transient = True


class NotFound(ApiError):
    """404: the object or resource does not exist."""


class Conflict(ApiError):
    """409: the object exists already, or its resourceVersion is stale."""


class Gone(ApiError):
    """410: the resourceVersion or continue token is too old (compacted)."""

    transient = True


class Invalid(ApiError):
    """422: the object failed validation."""


class TooManyRequests(ApiError):
    """429: the server is throttling; honour ``retry_after``."""

    transient = True


class ServerError(ApiError):
    """5xx: the server failed; usually transient."""

    transient = True


_BY_CODE: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def api_error(
    code: int,
    status: dict[str, Any] | None = None,
    *,
    retry_after: float | None = None,
    request: str = "",
) -> ApiError:
    """Build the typed ApiError for an HTTP status code and an optional Status body.

    Args:
        code: HTTP status code (or the ``code`` of a Status in a watch ERROR event).
        status: the decoded Status object, if the server sent one.
        retry_after: seconds from a ``Retry-After`` header or the Status details.
        request: a short description of the request, for the message.
    """
    if status is not None and not isinstance(status, dict):
        status = None
    reason = str(status.get("reason", "")) if status else ""
    message = str(status.get("message", "")) if status else ""
    if retry_after is None and status:
        details = status.get("details")
        if isinstance(details, dict):
            retry_after = retry_after_seconds(details.get("retryAfterSeconds"))
    cls = _BY_CODE.get(code) or (ServerError if code >= 500 else ApiError)
    return cls(code, reason, message, status=status, retry_after=retry_after, request=request)


class TransportError(RxKubeError):
    """The connection to the API server failed: refused, reset, TLS, or DNS."""

    transient = True


class WatchStalled(TransportError):
    """A watch connection stayed silent past its idle timeout and was treated as dead."""


class DecodeError(RxKubeError):
    """The server sent bytes that are not the JSON the protocol requires (a garbled line)."""

    transient = True


class ConfigError(RxKubeError):
    """rxkube could not be configured: no kubeconfig, unknown context, unknown resource."""


class WriterBusy(RxKubeError):
    """A second pipeline tried to feed a store's Writer while another one runs.

    A Writer has one owner at a time, as kube-rs moves its writer into the reflector: a
    ``reflect(writer)`` (or ``reflect_shared``) subscription refuses to start while
    another subscription on the same Writer is running, and this error goes to its
    ``on_error``. The running one is unaffected. A resubscription after the first one
    ended (what ``default_backoff()`` does) is allowed. Never transient: retrying
    cannot help while the first pipeline runs.

    Attributes:
        store: what the store holds (its description), for messages.
    """

    def __init__(self, store: str) -> None:
        super().__init__(
            f"the writer of the store of {store} is already fed by a running pipeline: "
            "a second concurrent reflect() of the same Writer would interleave two watches; "
            "subscribe the pipeline once, and fan it out with store_shared() if many "
            "consumers need it"
        )
        self.store = store


class WriterStopped(RxKubeError):
    """A store is not ready and never will be: the pipeline feeding it has ended.

    Raised by ``Store.wait_until_ready()`` and ``Store.wait_ready()`` instead of waiting
    for a list that nothing will deliver. ``__cause__`` is the error that ended the
    pipeline (``None`` when it completed or was disposed).

    Attributes:
        store: what the store holds (its description).
        since: when the pipeline ended (``time.time()``).
        error: the error that ended it, if any (also ``__cause__``).
    """

    def __init__(self, store: str, since: float, error: BaseException | None) -> None:
        why = f"it failed: {error}" if error is not None else "it completed or was disposed"
        super().__init__(
            f"store of {store} is not ready and nothing feeds it any more: the pipeline "
            f"writing it stopped ({why}); subscribe it again (with default_backoff() to "
            "survive transient errors)"
        )
        self.store = store
        self.since = since
        self.error = error
        self.__cause__ = error


class ConsumerError(RxKubeError):
    """A subscriber's own callback raised: a bug in the consumer, not a failure of the server.

    Every seam that delivers events (a watcher to its subscriber, ``observe_on`` to its
    observer, a shared store or a shared watch's view to each of its subscribers, a
    controller to its results subscriber) treats
    an exception of the callback it calls the same way: it disposes its upstream, then
    sends this error to the observer's ``on_error``. Never transient, so ``backoff()``
    does not resubscribe to repeat the bug.

    Attributes:
        subscriber: who raised, as the seam names it.
        __cause__: the exception the callback raised.

    Example:
        >>> error = ConsumerError("the subscriber of watch pods", ValueError("bad"))
        >>> str(error), error.transient, type(error.__cause__).__name__
        ('the subscriber of watch pods raised ValueError: bad', False, 'ValueError')
    """

    def __init__(self, subscriber: str, error: BaseException) -> None:
        super().__init__(f"{subscriber} raised {type(error).__name__}: {error}")
        self.subscriber = subscriber
        self.__cause__ = error
