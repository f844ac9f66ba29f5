"""Raw HTTP: TLS contexts and pools, ``Response`` (a whole body as bytes) and ``WatchStream``.

``WatchStream`` reads a streaming GET line by line, treats a silent connection as dead, and can be closed
from any thread. Both turn a failed answer into the typed error its Status body names.
``Cancellation`` lets another thread abort a request in flight, wherever it is blocked.
``rxkube.client.Client`` builds its pools here and makes all three; they are re-exported there.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import functools
import http.client
import io
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import orjson
import urllib3
import urllib3.connection
import urllib3.exceptions

from .errors import (
    ApiError,
    ConfigError,
    DecodeError,
    TransportError,
    WatchStalled,
    api_error,
    failure_status,
    retry_after_seconds,
)
from .protocol import MAX_EVENT_BYTES

__all__ = [
    "POOL_MAXSIZE",
    "Cancellation",
    "ClosedOnExit",
    "Response",
    "WatchStream",
    "calling",
    "describe_failure",
    "keepalive_options",
    "pool_manager",
    "read_body",
    "ssl_context",
    "undecodable",
]

POOL_MAXSIZE = 64
"""Idle connections kept per server; more may be open at once (one per running watch)."""
_READ_SIZE = 65536
_ERROR_BODY_LIMIT = 300
_BODY_READ_SIZE = 1 << 18
"""Pieces a whole body is read in: each is briefly held besides the body it is added to."""
_STATUS_BODY_LIMIT = 1 << 20
"""How much of a failed watch's body is read for its Status; the rest is dropped."""


def keepalive_options() -> list[tuple[int, int, int]]:
    """Socket options for a client's connections."""
    # TCP keep-alive as client-go's dialer sets it (30 s), so a vanished peer is noticed
    # even on connections that are not being read.
    options = [*urllib3.connection.HTTPConnection.default_socket_options]
    options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 30), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


def ssl_context(
    ca_file: str | None,
    ca_data: str | bytes | None,
    verify: bool,
    cert_file: str | None,
    key_file: str | None,
) -> ssl.SSLContext:
    """The TLS context of a client: its CA, verification and client certificate."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        if ca_file or ca_data:
            context.load_verify_locations(cafile=ca_file, cadata=ca_data)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load CA certificates {ca_file or '(data)'}: {exc}") from None
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load client certificate {cert_file} / key {key_file}: {exc}"
            ) from None
    elif key_file:
        raise ConfigError("a client key was given without a client certificate")
    return context


def pool_manager(
    proxy: str | None, proxy_headers: Mapping[str, str] | None, pool_args: dict[str, Any]
) -> urllib3.PoolManager:
    """The connection pools of a client, through ``proxy`` when one is given.

    Their connections are interruptible: a request made under a :class:`Cancellation`
    can be aborted from another thread.
    """
    manager: urllib3.PoolManager
    if not proxy:
        manager = urllib3.PoolManager(**pool_args)
    elif urlsplit(proxy).scheme.startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError:
            raise ConfigError(
                f"proxy {proxy} is a SOCKS proxy: install PySocks (pip install pysocks)"
            ) from None
        manager = SOCKSProxyManager(proxy, headers=dict(proxy_headers or {}) or None, **pool_args)
    else:
        headers = dict(proxy_headers or {}) or None
        manager = urllib3.ProxyManager(proxy, proxy_headers=headers, **pool_args)
    manager.pool_classes_by_scheme = {
        scheme: _interruptible_pool(pool_class)
        for scheme, pool_class in manager.pool_classes_by_scheme.items()
    }
    return manager


# -- interrupting a request in flight ------------------------------------------------------
#
# urllib3 has no way to abort a request another thread is blocked in (connecting aside: a
# connection being established is bounded by the connect timeout). So every connection of
# a client's pools tells the Cancellation of the call using it (a context variable of the
# calling thread) which socket it is about to wait on, each time a call starts using it,
# connects it, or waits for its answer. The socket is taken then, not looked up at cancel
# time: http.client drops its connection's reference to the socket as soon as the answer
# says "Connection: close", while the answer's body is still being read from it.

_CALL: contextvars.ContextVar[Cancellation | None] = contextvars.ContextVar(
    "rxkube_http_call", default=None
)


class Cancellation:
    """Lets any thread abort the HTTP requests made under it, wherever they are blocked.

    Pass one to ``Client.request``/``Client.stream`` (or ``Api.list_page``/``watch_stream``);
    :meth:`cancel` shuts down the socket the request in flight is waiting on, which wakes
    the blocked read at once, and the request fails with ``TransportError``. Cancelling is
    final: a later request under it fails as soon as it reaches the network. A connection
    still being established is abandoned when it is up or its connect timeout passes.

    Example:
        >>> cancellation = Cancellation()
        >>> cancellation.cancel()
        >>> cancellation.cancelled
        True
    """

    def __init__(self) -> None:
        # Guards the fields below; never held while a connection's lock is taken.
        self._lock = threading.Lock()
        self._cancelled = False
        self._connection: _Interruptible | None = None
        self._sock: socket.socket | None = None

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def cancel(self) -> None:
        """Abort the request in flight, and every later one; thread-safe and idempotent."""
        with self._lock:
            self._cancelled = True
            connection, sock = self._connection, self._sock
        if connection is not None and sock is not None:
            connection.shut_down_for(self, sock)

    @contextlib.contextmanager
    def _current(self) -> Iterator[None]:
        token = _CALL.set(self)
        try:
            yield
        finally:
            _CALL.reset(token)

    def _waits_on(self, connection: _Interruptible, sock: socket.socket) -> None:
        with self._lock:
            self._connection, self._sock = connection, sock
            cancelled = self._cancelled
        if cancelled:
            connection.shut_down_for(self, sock)


def calling(
    cancellation: Cancellation | None, deadline: float | None = None
) -> contextlib.AbstractContextManager[None]:
    """Run the requests of a ``with`` block under ``cancellation`` (none: not cancellable),
    each answer, headers and body, to be read by ``deadline`` (``time.monotonic()``; none:
    only the socket timeout bounds each read)."""
    if deadline is None:
        return contextlib.nullcontext() if cancellation is None else cancellation._current()
    return _calling_by(cancellation, deadline)


@contextlib.contextmanager
def _calling_by(cancellation: Cancellation | None, deadline: float) -> Iterator[None]:
    token = _DEADLINE.set(deadline)
    try:
        with calling(cancellation):
            yield
    finally:
        _DEADLINE.reset(token)


# -- bounding an answer by a deadline ------------------------------------------------------
#
# A socket timeout bounds each read, so a server trickling its headers or its body a byte
# at a time holds an answer for as long as it likes. So the answer of a call with a deadline
# reads its socket through a reader that cuts the socket's timeout to what is left before
# the deadline, ahead of every read: one mechanism for the status line, the headers and
# the body, which http.client all reads through the response's file.

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "rxkube_http_deadline", default=None
)


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each to end by ``deadline``; ``TimeoutError`` once it passed."""

    def __init__(self, sock: Any, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return int(self._raw.fileno())

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the deadline passed")
        timeout = self._sock.gettimeout()
        if timeout is None or timeout > left:
            self._sock.settimeout(left)
        read: int | None = self._raw.readinto(buffer)
        return read

    def close(self) -> None:
        self._raw.close()
        super().close()


class _BoundedResponse(http.client.HTTPResponse):
    """http.client's answer, read by the deadline of the call it answers, if it has one."""

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        deadline = _DEADLINE.get()
        if deadline is not None:
            self.fp.close()
            self.fp = io.BufferedReader(_DeadlineReader(sock, deadline))


class _Interruptible:
    """Mixed into urllib3's connection classes: reports the socket in use to its caller's
    Cancellation, and shuts it down only for the Cancellation of the call using it now."""

    sock: Any
    response_class = _BoundedResponse

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Guards _owner, so a cancel never shuts down the socket of a later call that
        # took this connection from the pool.
        self._owner_lock = threading.Lock()
        self._owner: Cancellation | None = None

    def _claim(self) -> None:
        owner = _CALL.get()
        with self._owner_lock:
            self._owner = owner
        if owner is not None and self.sock is not None:
            owner._waits_on(self, self.sock)

    def shut_down_for(self, owner: Cancellation, sock: socket.socket) -> None:
        with self._owner_lock:
            if self._owner is owner:
                _shut_down(sock)

    def disown(self) -> None:
        """The call using it has ended: a later cancel of that call leaves it alone."""
        with self._owner_lock:
            self._owner = None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._claim()

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._claim()
        super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self) -> Any:
        self._claim()
        return super().getresponse()  # type: ignore[misc]


@functools.cache
def _interruptible_pool(pool_class: type[Any]) -> type[Any]:
    connection_class = type(
        pool_class.ConnectionCls.__name__, (_Interruptible, pool_class.ConnectionCls), {}
    )

    def _put_conn(self: Any, conn: Any) -> None:
        # Back in the pool, the connection belongs to no call: else cancelling a call that
        # has ended (a watcher disposed after its last list page) would shut the socket
        # down under the next call that takes it, between the pool's check and its claim.
        if isinstance(conn, _Interruptible):
            conn.disown()
        pool_class._put_conn(self, conn)

    return type(
        pool_class.__name__,
        (pool_class,),
        {"ConnectionCls": connection_class, "_put_conn": _put_conn},
    )


def _shut_down(sock: Any) -> None:
    while sock is not None and not isinstance(sock, socket.socket):
        sock = getattr(sock, "socket", None)  # TLS-in-TLS (HTTPS proxy) transport
    if sock is None:
        return
    # The base-class call: SSLSocket.shutdown would also drop its TLS state under the
    # feet of the reading thread. A socket already closed raises, and is left alone.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def describe_failure(exc: BaseException) -> str:
    """One line saying why a connection failed, without urllib3's wrapping."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {current.verify_message}"
        if isinstance(current, ssl.SSLError):
            return f"TLS error: {current.reason or current}"
        if isinstance(current, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
            current, urllib3.exceptions.NewConnectionError
        ):
            return "connection timed out"
        if isinstance(current, urllib3.exceptions.ReadTimeoutError):
            return "timed out waiting for the response"
        if isinstance(current, socket.gaierror):
            return f"cannot resolve host name: {current.strerror}"
        if isinstance(current, OSError) and current.strerror:
            return current.strerror[0].lower() + current.strerror[1:]
        inner = getattr(current, "reason", None)
        if isinstance(inner, BaseException):
            current = inner
        elif current.__cause__ is not None:
            current = current.__cause__
        else:
            current = current.__context__
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if readable."""
    if not value:
        return None
    seconds = retry_after_seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_HTML_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(rb"<[^>]*>")


def _foreign_answer(code: int, body: bytes, headers: Mapping[str, str]) -> str:
    """Describe an answer that carries no Status object, which a Kubernetes API server sends.

    Something else answered (a web server at the wrong address, a proxy or a load
    balancer): say so, with its status, content type and its own words, so that the
    message points at the address rather than at the request.
    """
    content_type = headers.get("Content-Type", "").split(";")[0].strip()
    head = body[: _ERROR_BODY_LIMIT * 10]
    if "html" in content_type or head.lstrip()[:1] == b"<":
        title = _HTML_TITLE.search(head)
        head = title.group(1) if title else _HTML_TAG.sub(b" ", head)
    words = " ".join(head.decode("utf-8", "replace").split())[:_ERROR_BODY_LIMIT]
    said = f": {words}" if words else " with an empty body"
    return (
        f"the server answered HTTP {code} ({content_type or 'no content type'}){said}, with no"
        " Kubernetes Status object: is this the address of a Kubernetes API server?"
    )


def _error_from_body(code: int, body: bytes, headers: Mapping[str, str], request: str) -> ApiError:
    """The typed error for a failed response: its Status body if it sent one."""
    status: dict[str, Any] | None = None
    try:
        decoded = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        decoded = None
    if isinstance(decoded, dict) and decoded.get("kind") == "Status":
        status = decoded
    else:
        status = failure_status(code, _foreign_answer(code, body, headers))
    return api_error(
        code, status, retry_after=_retry_after(headers.get("Retry-After")), request=request
    )


def undecodable(exc: urllib3.exceptions.DecodeError) -> str:
    """Why a body urllib3 could not decode is garbled: its Content-Encoding did not hold."""
    return f"the body does not match its Content-Encoding ({exc.args[0] if exc.args else exc})"


def read_body(response: urllib3.BaseHTTPResponse, limit: int | None = None) -> bytes:
    """The (decoded) body of a response opened with ``preload_content=False``, or its
    first ``limit`` bytes.

    Read piece by piece: a whole-body read allocates the Content-Length a server declares
    up front, so one claiming 100 GB would raise MemoryError instead of the TransportError
    its cut-short body deserves. The pieces go into one growing buffer, which becomes the
    body without a copy: joined at the end, they held a list page twice for a moment.

    Raises:
        urllib3.exceptions.HTTPError: the connection broke, the body cannot be decoded, or
            it was not complete by the deadline of the call (:func:`calling`).
    """
    body = io.BytesIO()
    while limit is None or body.tell() < limit:
        piece = response.read1(_BODY_READ_SIZE, decode_content=True)
        if not piece:
            break
        body.write(piece)
    data = body.getvalue()
    return data if limit is None else data[:limit]


class ClosedOnExit:
    """``with x:`` calls ``x.close()`` at the end."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class Response:
    """A complete HTTP response from the API server; the body is raw bytes.

    Attributes:
        status: the HTTP status code.
        headers: the response headers (case-insensitive).
        data: the body.
        request: ``"METHOD /path"`` of the request, used in error messages.
    """

    status: int
    headers: Mapping[str, str]
    data: bytes
    request: str = field(default="", compare=False)

    def json(self) -> Any:
        """Decode the body with orjson; ``DecodeError`` if it is not JSON."""
        try:
            return orjson.loads(self.data)
        except orjson.JSONDecodeError as exc:
            where = f" to {self.request}" if self.request else ""
            raise DecodeError(
                f"the response{where} is not JSON ({exc}): {self.data[:200]!r}"
            ) from None

    def error(self, request: str = "") -> ApiError:
        """The typed error this response stands for (its Status, code and Retry-After).

        Args:
            request: describes the request in the message; defaults to ``self.request``.
        """
        return _error_from_body(self.status, self.data, self.headers, request or self.request)

    def raise_for_status(self, request: str = "") -> None:
        """Raise :meth:`error` unless the status is 2xx."""
        if not 200 <= self.status < 300:
            raise self.error(request)


class WatchStream(ClosedOnExit):
    """One streaming GET (a watch): read it with :meth:`lines`, stop it with :meth:`close`.

    The stream owns one connection. ``close()`` may be called from any thread at any time:
    it cancels the stream's :class:`Cancellation`, whose socket shutdown wakes a ``lines()``
    blocked in another thread at once (also on a connection the server will close).
    A stream that ended cleanly gives its connection back to the pool for reuse.

    Attributes:
        status: the HTTP status code.
        headers: the response headers.
        request: ``"GET /path"``, for messages.
    """

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        *,
        request: str,
        server: str,
        idle_timeout: float,
        max_line_bytes: int = MAX_EVENT_BYTES,
        cancellation: Cancellation,
    ) -> None:
        self._response = response
        self._max_line_bytes = max_line_bytes
        self._cancellation = cancellation
        self.status: int = response.status
        self.headers: Mapping[str, str] = response.headers
        self.request = request
        self._server = server
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._closed = False
        self._reading = False
        self._released = False

    def lines(self, idle: Callable[[], None] | None = None) -> Iterator[bytes]:
        """Yield each complete non-empty line (without its newline) as it arrives.

        Ends at the clean end of the response, or quietly once :meth:`close` was called.
        ``idle`` is called before each read that may wait for the server (nothing has
        arrived on the socket yet): the moment for a reader to pass on what it holds.

        Raises:
            WatchStalled: no byte arrived for ``idle_timeout`` seconds.
            TransportError: the connection was reset or the body was cut short.
            DecodeError: a line grew longer than ``max_line_bytes`` (the stream is closed).
        """
        for lines in self.reads(idle):
            yield from lines

    def reads(self, idle: Callable[[], None] | None = None) -> Iterator[list[bytes]]:
        """Like :meth:`lines`, the lines of each read from the server together, in a list.

        For a reader that handles a read's lines at once (a watch's tally, its per-read
        work) instead of resuming a generator per line. A line longer than the limit
        comes after the lines before it: they are yielded, then the error is raised.
        """
        response = self._response
        limit = self._max_line_bytes
        blocks: Iterator[bytes]
        if response.chunked:
            # Bounded reads: urllib3 would otherwise hold a whole chunk, however large.
            # decode_content: read_chunked alone would not undo a Content-Encoding that
            # read1 (and a whole body) would.
            blocks = response.read_chunked(_READ_SIZE, decode_content=True)
        else:
            blocks = iter(lambda: response.read1(_READ_SIZE), b"")
        pending: list[bytes] = []
        pending_size = 0
        try:
            while True:
                if idle is not None and self._may_wait():
                    idle()
                with self._lock:
                    if self._closed:
                        return
                    self._reading = True
                try:
                    data = next(blocks, b"")
                except Exception as exc:
                    if self._closed:
                        return
                    raise self._transport_error(exc) from exc
                finally:
                    with self._lock:
                        self._reading = False
                if not data:
                    break
                if b"\n" not in data:
                    pending.append(data)
                    pending_size += len(data)
                    if pending_size > limit:
                        raise self._line_too_long()
                    continue
                parts = data.split(b"\n")
                if pending:
                    pending.append(parts[0])
                    parts[0] = b"".join(pending)
                    pending.clear()
                tail = parts.pop()
                pending_size = len(tail)
                if tail:
                    pending.append(tail)
                if b"" in parts:  # blank lines (keep-alives) carry nothing
                    parts = [line for line in parts if line]
                if parts and max(map(len, parts)) > limit:
                    long = next(i for i, line in enumerate(parts) if len(line) > limit)
                    if long:
                        yield parts[:long]
                    raise self._line_too_long()
                if parts:
                    yield parts
                if pending_size > limit:
                    raise self._line_too_long()
            if self._closed:
                return
            with self._lock:
                # The response ended cleanly: urllib3 has given the connection back.
                self._released = True
            rest = b"".join(pending).strip()
            if rest:
                yield [rest]
        finally:
            self._release()

    def _may_wait(self) -> bool:
        """Whether the next read may wait for the server: nothing waits on the socket.

        Bytes already read into a buffer above the socket are not seen: the answer is then
        "may wait", which costs a reader passing things on early, never holding them.
        """
        sock = self._cancellation._sock
        if sock is None:
            return True
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):  # closed, or a descriptor select cannot watch
            return True
        return not readable

    def error(self) -> ApiError:
        """Read the body of a failed (non-200) response and build its typed error."""
        try:
            body = read_body(self._response, _STATUS_BODY_LIMIT)
        except Exception as exc:
            body = b""
            if not self._closed:
                raise self._transport_error(exc) from exc
        finally:
            self._release()
        return _error_from_body(self.status, body, self.headers, self.request)

    def close(self) -> None:
        """Stop the stream; thread-safe and idempotent.

        A ``lines()`` blocked in another thread returns within milliseconds: the socket is
        shut down under it. The connection is not reused.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            reading = self._reading
        if reading:
            # Only shut the socket down: the reading thread owns the file object (closing
            # a buffered reader another thread is blocked in would wait for that read).
            self._cancellation.cancel()
        else:
            self._release()

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        response = self._response
        # A stream abandoned midway cannot be reused: close its connection, then hand the
        # (closed) connection object back so the pool opens a fresh one next time.
        response.close()
        response.release_conn()

    def _line_too_long(self) -> DecodeError:
        return DecodeError(
            f"{self.request} on {self._server}: the server sent a line longer than"
            f" {self._max_line_bytes} bytes; the stream is closed"
        )

    def _transport_error(self, exc: BaseException) -> TransportError | DecodeError:
        if isinstance(exc, urllib3.exceptions.DecodeError):
            return DecodeError(f"{self.request} on {self._server}: {undecodable(exc)}")
        if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            return WatchStalled(
                f"{self.request} on {self._server}: no data for {self._idle_timeout:g} s;"
                " the connection is treated as dead"
            )
        return TransportError(
            f"{self.request} on {self._server}: connection broken: {describe_failure(exc)}"
        )
