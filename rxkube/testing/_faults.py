"""Fault injection for the test API server: failing, slow, broken and stalled responses.

Tests reach it as ``srv.faults``. Every method is safe to call from any thread, and
every fault stays armed until it has fired the number of times asked, or until
:meth:`Faults.clear`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ._status import StatusError, reason_for
from ._stored import BookmarkLine

Verb = Literal[
    "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "discovery"
]
"""What a request does, as kube-apiserver's authorizer names it (``discovery`` for the
version and discovery endpoints)."""

WatchAction = Literal["close", "abort"] | None

CloseWatches = Callable[[bool], None]
"""Ends every open watch of the server: ``close_watches(abrupt)``."""

_DEFAULT_MESSAGES: dict[int, str] = {
    401: "Unauthorized",
    403: "forbidden: access denied (a fault injected by rxkube.testing)",
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: a fault injected by rxkube.testing",
    503: "the server is currently unable to handle the request",
}


@dataclass(slots=True)
class _Failure:
    code: int
    remaining: int
    verb: str | None
    retry_after: int | None
    message: str


@dataclass(slots=True)
class _Delay:
    seconds: float
    remaining: int | None
    verb: str | None


class Faults:
    """The faults armed on one :class:`~rxkube.testing.ApiServer` (``srv.faults``).

    Example:
        >>> srv.faults.fail_requests(503, count=2, verb="list")  # doctest: +SKIP
        >>> srv.faults.close_watches(after_events=3)  # doctest: +SKIP
    """

    def __init__(self, close_watches: CloseWatches) -> None:
        """Faults of a server whose open watches ``close_watches(abrupt)`` ends."""
        self._close_watches = close_watches
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._delays: list[_Delay] = []
        self._close_after: int | None = None
        self._close_abrupt = False
        self._corruptions: list[Literal["garbled", "truncated"]] = []
        self._stalls = 0
        self.watch_faults_armed = False
        """Read without the lock by every watch before each write: a cheap fast path."""

    def fail_requests(
        self,
        code: int = 500,
        count: int = 1,
        *,
        verb: Verb | None = None,
        retry_after: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (of ``verb``, or any) with a failure ``Status``.

        Args:
            code: the HTTP status, e.g. 500, 503, 403 or 429. The Status carries the
                reason kube-apiserver uses for it (``InternalError``, ``ServiceUnavailable``,
                ``Forbidden``, ``TooManyRequests``...).
            count: how many requests fail.
            verb: only requests doing this (``"list"``, ``"watch"``, ``"get"``, ``"create"``,
                ``"update"``, ``"patch"``, ``"delete"``, ``"deletecollection"``,
                ``"discovery"``); ``None`` for every request.
            retry_after: seconds sent as ``Retry-After`` and ``details.retryAfterSeconds``;
                defaults to 1 for 429, none otherwise.
            message: the Status message; a message like kube-apiserver's by default.
        """
        if retry_after is None and code == 429:
            retry_after = 1
        text = message or _DEFAULT_MESSAGES.get(
            code, f"a fault injected by rxkube.testing ({code})"
        )
        with self._lock:
            self._failures.append(_Failure(code, count, verb, retry_after, text))

    def delay_responses(
        self, seconds: float, count: int | None = None, *, verb: Verb | None = None
    ) -> None:
        """Hold the next ``count`` requests (``None``: all, until cleared) for ``seconds``.

        The delay comes before the request is served, so a delayed watch sends its
        headers late (useful to test connect and read timeouts).
        """
        with self._lock:
            self._delays.append(_Delay(seconds, count, verb))

    def close_watches(self, after_events: int = 0, *, abrupt: bool = False) -> None:
        """End every open watch now, or once ``after_events`` more events have been sent.

        Events are counted over all watch streams together (bookmarks do not count); when
        the count is reached, the stream that sent the last one and every other open
        watch end. A clean end finishes the chunked response, as a server-side
        ``timeoutSeconds`` does; ``abrupt=True`` drops the connections instead. Watches
        opened after the fault fired are not affected.
        """
        if after_events <= 0:
            self._close_watches(abrupt)
            return
        with self._lock:
            self._close_after = after_events
            self._close_abrupt = abrupt
            self._rearm()

    def corrupt_next_event(self, mode: Literal["garbled", "truncated"] = "garbled") -> None:
        """Break the next event line sent on any watch.

        ``"garbled"``: the line is replaced by its first half and a newline (not valid
        JSON), and the stream goes on without that event. ``"truncated"``: the first half
        of the line is sent, then the connection is dropped without ending the response.
        Calling it twice breaks the next two events.
        """
        with self._lock:
            self._corruptions.append(mode)
            self._rearm()

    def stall_watches(self, count: int = 1) -> None:
        """Stall the next ``count`` watch requests: headers are sent, then nothing at all.

        A stalled watch sends no event, no bookmark, and ignores ``timeoutSeconds``; it
        stays open (and counted by ``open_watches()``) until the client gives up, the
        watches are closed, or the server stops. Use it to test idle-read timeouts.
        """
        with self._lock:
            self._stalls += count

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._failures.clear()
            self._delays.clear()
            self._close_after = None
            self._corruptions.clear()
            self._stalls = 0
            self._rearm()

    # ------------------------------------------------------------ server side

    def _rearm(self) -> None:
        self.watch_faults_armed = self._close_after is not None or bool(self._corruptions)

    def take_failure(self, verb: str) -> StatusError | None:
        """The failure the current request must answer, if one is armed for it."""
        with self._lock:
            for failure in self._failures:
                if failure.verb is None or failure.verb == verb:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    return StatusError(
                        failure.code,
                        failure.message,
                        reason=reason_for(failure.code),
                        retry_after=failure.retry_after,
                    )
        return None

    def take_delay(self, verb: str) -> float:
        """Seconds to hold the current request."""
        with self._lock:
            for delay in self._delays:
                if delay.verb is None or delay.verb == verb:
                    if delay.remaining is not None:
                        delay.remaining -= 1
                        if delay.remaining <= 0:
                            self._delays.remove(delay)
                    return delay.seconds
        return 0.0

    def take_stall(self) -> bool:
        """Whether the current watch request is to be stalled."""
        with self._lock:
            if self._stalls > 0:
                self._stalls -= 1
                return True
        return False

    def process(self, lines: list[bytes]) -> tuple[list[bytes], WatchAction]:
        """Apply armed watch faults to lines about to be sent on one stream.

        Returns the lines to send and what to do afterwards: nothing, ``"close"`` the
        stream cleanly, or ``"abort"`` the connection.
        """
        out: list[bytes] = []
        action: WatchAction = None
        close_all = False
        with self._lock:
            for line in lines:
                if isinstance(line, BookmarkLine):
                    out.append(line)
                    continue
                if self._corruptions:
                    mode = self._corruptions.pop(0)
                    half = line[: max(1, len(line) // 2)]
                    if mode == "truncated":
                        out.append(half)
                        action = "abort"
                        break
                    out.append(half + b"\n")
                else:
                    out.append(line)
                if self._close_after is not None:
                    self._close_after -= 1
                    if self._close_after <= 0:
                        self._close_after = None
                        action = "abort" if self._close_abrupt else "close"
                        close_all = True
                        break
            self._rearm()
        if close_all:
            self._close_watches(action == "abort")
        return out, action
