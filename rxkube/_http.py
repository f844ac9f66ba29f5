"""Raw HTTP: TLS contexts and pools, ``Response`` (a whole body as bytes) and ``WatchStream``.

``WatchStream`` reads a streaming GET line by line, treats a silent connection as dead, and can be closed
from any thread. Both turn a failed answer into the typed error its Status body names.
``rxkube.client.Client`` builds its pools here and makes both; they are re-exported there.
"""

from __future__ import annotations

import contextlib
import email.utils
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
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
    "ClosedOnExit",
    "Response",
    "WatchStream",
    "describe_failure",
    "keepalive_options",
    "pool_manager",
    "ssl_context",
]

POOL_MAXSIZE = 64
"""Idle connections kept per server; more may be open at once (one per running watch)."""
_READ_SIZE = 65536
_ERROR_BODY_LIMIT = 300


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
    """The connection pools of a client, through ``proxy`` when one is given."""
    if not proxy:
        return urllib3.PoolManager(**pool_args)
    headers = dict(proxy_headers or {})
    if urlsplit(proxy).scheme.startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError:
            raise ConfigError(
                f"proxy {proxy} is a SOCKS proxy: install PySocks (pip install pysocks)"
            ) from None
        return SOCKSProxyManager(proxy, headers=headers or None, **pool_args)
    return urllib3.ProxyManager(proxy, proxy_headers=headers or None, **pool_args)


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
        # A proxy or load balancer answered (HTML, plain text, nothing): keep its words.
        text = body[:_ERROR_BODY_LIMIT].decode("utf-8", "replace").strip()
        status = failure_status(code, " ".join(text.split()) or f"HTTP {code} with no Status body")
    return api_error(
        code, status, retry_after=_retry_after(headers.get("Retry-After")), request=request
    )


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
    it shuts the socket down, which wakes a ``lines()`` blocked in another thread at once.
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
    ) -> None:
        self._response = response
        self._max_line_bytes = max_line_bytes
        self.status: int = response.status
        self.headers: Mapping[str, str] = response.headers
        self.request = request
        self._server = server
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._closed = False
        self._reading = False
        self._released = False

    def lines(self) -> Iterator[bytes]:
        """Yield each complete non-empty line (without its newline) as it arrives.

        Ends at the clean end of the response, or quietly once :meth:`close` was called.

        Raises:
            WatchStalled: no byte arrived for ``idle_timeout`` seconds.
            TransportError: the connection was reset or the body was cut short.
            DecodeError: a line grew longer than ``max_line_bytes`` (the stream is closed).
        """
        response = self._response
        limit = self._max_line_bytes
        blocks: Iterator[bytes]
        if response.chunked:
            # Bounded reads: urllib3 would otherwise hold a whole chunk, however large.
            blocks = response.read_chunked(_READ_SIZE)
        else:
            blocks = iter(lambda: response.read1(_READ_SIZE), b"")
        pending: list[bytes] = []
        pending_size = 0
        try:
            while True:
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
                for line in parts:
                    if len(line) > limit:
                        raise self._line_too_long()
                    if line:
                        yield line
                if pending_size > limit:
                    raise self._line_too_long()
            if self._closed:
                return
            with self._lock:
                # The response ended cleanly: urllib3 has given the connection back.
                self._released = True
            rest = b"".join(pending).strip()
            if rest:
                yield rest
        finally:
            self._release()

    def error(self) -> ApiError:
        """Read the body of a failed (non-200) response and build its typed error."""
        try:
            body = self._response.read()
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
            self._shutdown()
        else:
            self._release()

    def _shutdown(self) -> None:
        # urllib3 drops its reference to the connection once it has given it back to
        # the pool; never shut down a socket that may already serve another request.
        connection = self._response.connection
        sock: Any = getattr(connection, "sock", None)
        while sock is not None and not isinstance(sock, socket.socket):
            sock = getattr(sock, "socket", None)  # TLS-in-TLS (HTTPS proxy) transport
        if sock is None:
            return
        # The base-class call: SSLSocket.shutdown would also drop its TLS state under the
        # feet of the reading thread.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

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

    def _transport_error(self, exc: BaseException) -> TransportError:
        if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            return WatchStalled(
                f"{self.request} on {self._server}: no data for {self._idle_timeout:g} s;"
                " the connection is treated as dead"
            )
        return TransportError(
            f"{self.request} on {self._server}: connection broken: {describe_failure(exc)}"
        )
