"""The request log of the test API server: what clients asked, and what they were answered.

Tests assert on it (``srv.requests``) to check how their code talks to the API server:
how often it lists, whether it resumes watches from a resourceVersion, which field
manager it writes with. The log keeps only the most recent requests, so a long
benchmark does not grow it without bound.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server answered.

    Attributes:
        method: the HTTP method, e.g. ``"GET"``.
        path: the URL path, e.g. ``"/api/v1/namespaces/default/pods"``.
        query: the query parameters (the last value of a repeated one).
        verb: what the request did, as kube-apiserver's authorizer names it: ``"get"``,
            ``"list"``, ``"watch"``, ``"create"``, ``"update"``, ``"patch"``,
            ``"delete"``, ``"deletecollection"``, or ``"discovery"`` for the version and
            discovery endpoints; None when the request was refused before that was
            known (no valid token, an unknown resource).
        status: the HTTP status answered. A watch is recorded when its stream starts
            (200), not when it ends.
        resource: the resource, as kubectl names it with its group (``"pods"``,
            ``"deployments.apps"``), or None.
        namespace: the namespace in the path, or None.
        name: the object's name in the path, or None.
        subresource: ``"status"``, or None.
        content_type: the request's media type (``"application/apply-patch+yaml"``...),
            or ``""`` without a body.
    """

    method: str
    path: str
    query: Mapping[str, str]
    verb: str | None
    status: int
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    content_type: str = ""


class RequestLog:
    """The last ``size`` recorded requests, safe to read and clear from any thread.

    Args:
        size: how many requests to keep; 0 keeps none.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"request_log_size must be >= 0, not {size}")
        self._lock = threading.Lock()
        self._entries: deque[RecordedRequest] = deque(maxlen=size)

    def record(self, entry: RecordedRequest) -> None:
        """Append one request, forgetting the oldest when full."""
        with self._lock:
            self._entries.append(entry)

    def snapshot(self) -> list[RecordedRequest]:
        """The recorded requests, oldest first (a copy)."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._entries.clear()
