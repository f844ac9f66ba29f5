"""The transport: ``Client`` talks HTTP to one API server, ``Api`` addresses one resource.

``Client`` is configured the way the official ``kubernetes`` package is (kubeconfig,
in-cluster service account, an existing ``Configuration``), but does its own HTTP with
urllib3: one connection pool with keep-alive, one ``ssl.SSLContext`` built up front, fresh
auth headers per request (so exec plugins, OIDC and service-account tokens refresh), and
bodies returned as raw bytes for orjson to decode once. ``WatchStream`` reads a streaming
GET line by line, treats a silent connection as dead, and can be closed from any thread.

``Api`` is the thin dict-in/dict-out layer controllers use for CRUD, plus the two raw calls
the watcher drives (``list_page`` and ``watch_stream``), which decode nothing.
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import urlencode, urlsplit

import orjson
import urllib3
import urllib3.connection
import urllib3.exceptions

from .errors import (
    ApiError,
    ConfigError,
    DecodeError,
    Gone,
    TransportError,
    WatchStalled,
    api_error,
    failure_status,
    retry_after_seconds,
)
from .resource import BUILTIN_RESOURCES, Resource, match_resource, parse_resource_name

if TYPE_CHECKING:
    import kubernetes.client

__all__ = [
    "ACCEPT_METADATA",
    "ACCEPT_METADATA_LIST",
    "Api",
    "Client",
    "Response",
    "WatchStream",
]

ACCEPT_METADATA_LIST = (
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
)
"""Accept header asking for a list of objects reduced to their metadata."""

ACCEPT_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
"""Accept header asking for one object (or each watch event's object) reduced to its metadata."""

PatchType = Literal["merge", "json", "strategic", "apply"]
JsonPatch = list[dict[str, Any]]
"""An RFC 6902 JSON patch: a list of operations."""

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}

_USER_AGENT = "rxkube"
_POOL_MAXSIZE = 64
"""Idle connections kept per server; more may be open at once (one per running watch)."""
_READ_SIZE = 65536
_ERROR_BODY_LIMIT = 300
_SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def _keepalive_options() -> list[tuple[int, int, int]]:
    # TCP keep-alive as client-go's dialer sets it (30 s), so a vanished peer is noticed
    # even on connections that are not being read.
    options = [*urllib3.connection.HTTPConnection.default_socket_options]
    options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 30), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


def _describe(exc: BaseException) -> str:
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


class _ClosedOnExit:
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


class WatchStream(_ClosedOnExit):
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
        self, response: urllib3.BaseHTTPResponse, *, request: str, server: str, idle_timeout: float
    ) -> None:
        self._response = response
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
        """
        response = self._response
        blocks: Iterator[bytes]
        if response.chunked:
            blocks = response.read_chunked()
        else:
            blocks = iter(lambda: response.read1(_READ_SIZE), b"")
        pending: list[bytes] = []
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
                    continue
                parts = data.split(b"\n")
                if pending:
                    pending.append(parts[0])
                    parts[0] = b"".join(pending)
                    pending.clear()
                tail = parts.pop()
                if tail:
                    pending.append(tail)
                for line in parts:
                    if line:
                        yield line
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

    def _transport_error(self, exc: BaseException) -> TransportError:
        if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            return WatchStalled(
                f"{self.request} on {self._server}: no data for {self._idle_timeout:g} s;"
                " the connection is treated as dead"
            )
        return TransportError(
            f"{self.request} on {self._server}: connection broken: {_describe(exc)}"
        )


class Client(_ClosedOnExit):
    """A connection to one Kubernetes API server: TLS, authentication, raw HTTP.

    Usually built by :meth:`default`, :meth:`from_kubeconfig` or :meth:`in_cluster`.
    Thread-safe: share one client across watches and controllers. Close it (or use it as
    a context manager) to close its idle connections.

    Args:
        server: the API server URL, e.g. ``https://10.0.0.1:6443`` (a path prefix is kept).
        token: a bearer token sent with every request.
        ca_file: a PEM file of CA certificates to verify the server with.
        ca_data: PEM (str) or DER (bytes) CA certificates, instead of or beside ``ca_file``.
        verify_ssl: ``False`` skips server certificate verification (insecure).
        client_cert_file: a PEM client certificate, for certificate authentication.
        client_key_file: the private key of ``client_cert_file``.
        tls_server_name: the name to verify the server certificate against (and send as
            SNI), when it differs from the host in ``server``.
        proxy: an ``http://``/``https://`` proxy URL (``socks5://`` needs PySocks).
        proxy_headers: extra headers for the proxy, e.g. ``Proxy-Authorization``.
        connect_timeout: seconds to establish a connection.
        request_timeout: seconds to wait for data on a non-streaming request.
        auth: called before every request; returns fresh auth headers (token refresh).
    """

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        ca_file: str | None = None,
        ca_data: str | bytes | None = None,
        verify_ssl: bool = True,
        client_cert_file: str | None = None,
        client_key_file: str | None = None,
        tls_server_name: str | None = None,
        proxy: str | None = None,
        proxy_headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        request_timeout: float = 60.0,
        auth: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"invalid API server URL {server!r}: expected https://host[:port]")
        self.server: str = server.rstrip("/")
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._token = token
        self._auth = auth
        self._auth_lock = threading.Lock()
        self._discovery_lock = threading.Lock()
        self._discovered: list[Resource] | None = None
        self._group_cache: dict[str, list[Resource]] = {}
        pool_args: dict[str, Any] = {
            "num_pools": 4,
            "maxsize": _POOL_MAXSIZE,
            "block": False,
            "retries": False,
            "socket_options": _keepalive_options(),
        }
        if parts.scheme == "https":
            pool_args["ssl_context"] = self._ssl_context(
                ca_file, ca_data, verify_ssl, client_cert_file, client_key_file
            )
            if tls_server_name:
                pool_args["server_hostname"] = tls_server_name
        self._pool = self._pool_manager(proxy, proxy_headers, pool_args)

    @staticmethod
    def _ssl_context(
        ca_file: str | None,
        ca_data: str | bytes | None,
        verify: bool,
        cert_file: str | None,
        key_file: str | None,
    ) -> ssl.SSLContext:
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

    @staticmethod
    def _pool_manager(
        proxy: str | None, proxy_headers: Mapping[str, str] | None, pool_args: dict[str, Any]
    ) -> urllib3.PoolManager:
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

    # -- construction from the kubernetes package's loaders -----------------------------

    @classmethod
    def from_configuration(cls, configuration: kubernetes.client.Configuration) -> Client:
        """A client with the settings of a ``kubernetes.client.Configuration``.

        Maps the host, bearer token (``api_key``/``api_key_prefix``, refreshed through
        ``refresh_api_key_hook`` before every request: exec plugins, OIDC, service-account
        tokens), client certificate and key, CA, ``verify_ssl``, ``tls_server_name``,
        ``proxy`` (unless ``no_proxy`` excludes the host) and ``proxy_headers``. The
        generated API classes are never used.
        """
        cfg = configuration
        host = str(cfg.host)
        proxy = getattr(cfg, "proxy", None)
        no_proxy = getattr(cfg, "no_proxy", None)
        if proxy and no_proxy and _bypasses_proxy(host, no_proxy):
            proxy = None
        auth: Callable[[], dict[str, str]] | None = None
        if cfg.api_key or cfg.refresh_api_key_hook is not None:

            def auth() -> dict[str, str]:
                value = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
                if not value:
                    return {}
                # The in-cluster loader writes "bearer ..."; send the canonical spelling,
                # which strict proxies and servers require.
                scheme, _, credentials = str(value).partition(" ")
                if credentials and scheme.lower() == "bearer":
                    value = f"Bearer {credentials}"
                return {"Authorization": value}

        return cls(
            host,
            ca_file=cfg.ssl_ca_cert or None,
            ca_data=getattr(cfg, "ca_cert_data", None) or None,
            verify_ssl=bool(cfg.verify_ssl),
            client_cert_file=cfg.cert_file or None,
            client_key_file=cfg.key_file or None,
            tls_server_name=getattr(cfg, "tls_server_name", None) or None,
            proxy=proxy or None,
            proxy_headers=cfg.proxy_headers or None,
            auth=auth,
        )

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> Client:
        """A client for a kubeconfig context (the current one unless ``context`` is given).

        Args:
            path: the kubeconfig file (or several, ``os.pathsep``-separated); default
                ``$KUBECONFIG``, else ``~/.kube/config``.
            context: a context name from the file.

        Raises:
            ConfigError: no kubeconfig, an unknown context, or an invalid file.
        """
        # Imported on use: the kubernetes package takes ~0.2 s to import.
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config
        from kubernetes.config.config_exception import ConfigException

        given = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
        files = [os.path.expanduser(p) for p in given.split(os.pathsep) if p]
        existing = [f for f in files if os.path.isfile(f)]
        if not existing:
            raise ConfigError(
                f"no kubeconfig found at {given}: set KUBECONFIG or pass path= to from_kubeconfig()"
            )
        joined = os.pathsep.join(existing)
        configuration = k8s_client.Configuration()
        try:
            if context is not None:
                contexts, _ = k8s_config.list_kube_config_contexts(joined)  # type: ignore[no-untyped-call]
                names = [c.get("name") for c in contexts or ()]
                if context not in names:
                    raise ConfigError(
                        f"context {context!r} not found in kubeconfig {joined}"
                        f" (contexts: {', '.join(map(str, names)) or 'none'})"
                    )
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=joined, context=context, client_configuration=configuration
            )
        except ConfigException as exc:
            message = " ".join(str(exc).split())
            raise ConfigError(f"cannot use kubeconfig {joined}: {message}") from None
        return cls.from_configuration(configuration)

    @classmethod
    def in_cluster(cls, *, token_file: str | None = None, ca_file: str | None = None) -> Client:
        """A client for the cluster this process runs in, with its service account.

        Reads ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` and the mounted token
        (re-read every minute, as projected tokens rotate) and CA.

        Args:
            token_file: the token file; default the service-account mount.
            ca_file: the CA file; default the service-account mount.

        Raises:
            ConfigError: not running in a cluster, or the service account is not mounted.
        """
        from kubernetes import client as k8s_client
        from kubernetes.config import incluster_config
        from kubernetes.config.config_exception import ConfigException

        configuration = k8s_client.Configuration()
        loader = incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=token_file or f"{_SERVICE_ACCOUNT}/token",
            cert_filename=ca_file or f"{_SERVICE_ACCOUNT}/ca.crt",
        )
        try:
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        except ConfigException as exc:
            raise ConfigError(f"not running in a Kubernetes cluster: {exc}") from None
        return cls.from_configuration(configuration)

    @classmethod
    def default(cls) -> Client:
        """The in-cluster client inside a pod, else the current kubeconfig context.

        Raises:
            ConfigError: neither a service account nor a kubeconfig was found.
        """
        problems: list[str] = []
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            try:
                return cls.in_cluster()
            except ConfigError as exc:
                problems.append(str(exc))
        else:
            problems.append("not in a cluster (KUBERNETES_SERVICE_HOST is unset)")
        try:
            return cls.from_kubeconfig()
        except ConfigError as exc:
            problems.append(str(exc))
        raise ConfigError("no Kubernetes configuration found: " + "; ".join(problems))

    # -- HTTP ---------------------------------------------------------------------------

    def _headers(self, accept: str | None, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": accept or "application/json", "User-Agent": _USER_AGENT}
        if content_type:
            headers["Content-Type"] = content_type
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if self._auth is not None:
            # One refresh at a time: an exec plugin must not run once per waiting thread.
            with self._auth_lock:
                headers.update(self._auth())
        return headers

    def _url(self, path: str, params: Mapping[str, str] | None) -> str:
        url = self.server + path
        return f"{url}?{urlencode(params)}" if params else url

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request and read the whole response.

        Never raises for an HTTP status: check ``Response.status`` or call
        ``raise_for_status()``.

        Args:
            method: ``GET``, ``POST``, ``PUT``, ``PATCH``, ``DELETE``.
            path: the URL path, e.g. ``/api/v1/namespaces/default/pods``.
            params: query parameters.
            body: the request body.
            content_type: the body's media type.
            accept: the Accept header (default ``application/json``).
            timeout: seconds to wait for data (default ``request_timeout``).

        Raises:
            TransportError: the server could not be reached or the connection broke.
        """
        described = f"{method} {path}"
        try:
            response = self._pool.request(
                method,
                self._url(path, params),
                body=body,
                headers=self._headers(accept, content_type),
                timeout=urllib3.Timeout(
                    connect=self.connect_timeout,
                    read=self.request_timeout if timeout is None else timeout,
                ),
                redirect=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransportError(f"{described} on {self.server} failed: {_describe(exc)}") from exc
        return Response(response.status, response.headers, response.data, described)

    def stream(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        accept: str | None = None,
        idle_timeout: float,
    ) -> WatchStream:
        """Start a streaming GET and return once the response headers arrived.

        Args:
            path: the URL path.
            params: query parameters (a watch needs ``watch=1``).
            accept: the Accept header.
            idle_timeout: seconds without a byte after which the connection is dead.

        Raises:
            WatchStalled: the headers did not arrive within ``idle_timeout``.
            TransportError: the server could not be reached.
        """
        described = f"GET {path}"
        try:
            response = self._pool.request(
                "GET",
                self._url(path, params),
                headers=self._headers(accept, None),
                timeout=urllib3.Timeout(connect=self.connect_timeout, read=idle_timeout),
                preload_content=False,
                redirect=False,
            )
        except urllib3.exceptions.ReadTimeoutError:
            raise WatchStalled(
                f"{described} on {self.server}: no response within {idle_timeout:g} s"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransportError(f"{described} on {self.server} failed: {_describe(exc)}") from exc
        return WatchStream(
            response, request=described, server=self.server, idle_timeout=idle_timeout
        )

    # -- discovery ----------------------------------------------------------------------

    def resolve(self, name: str) -> Resource:
        """The resource a name refers to: a built-in kind, else one the server serves.

        Accepts ``"pods"``, ``"po"``, ``"Pod"``, ``"deployments.apps"``,
        ``"apps/v1/deployments"`` and custom resources (``"widgets"``,
        ``"widgets.example.com"``, ``"example.com/v1/widgets"``). Discovery results are
        cached; a miss refreshes the cache once (a CRD may have been installed since).

        Raises:
            ConfigError: neither built in nor served by the API server.
        """
        found = match_resource(BUILTIN_RESOURCES, name)
        if found is not None:
            return found
        group, version, _ = parse_resource_name(name)
        with self._discovery_lock:
            for fresh in (False, True):
                if fresh:
                    self._group_cache.clear()
                    self._discovered = None
                found = match_resource(self._discover(group, version), name)
                if found is not None:
                    return found
        raise ConfigError(f"the server {self.server} does not have a resource type {name!r}")

    def _discover(self, group: str | None, version: str | None) -> list[Resource]:
        """Resources of the group versions that a name with this group/version may mean."""
        if group is not None and version is not None:
            return self._group_version(group, version)
        if group == "":
            return self._group_version("", "v1")
        if group is None and self._discovered is not None:
            return self._discovered
        found = self._group_version("", "v1") if group is None else []
        listing = self._get_json("/apis")
        for entry in listing.get("groups") or ():
            if group is not None and entry.get("name") != group:
                continue
            preferred = (entry.get("preferredVersion") or {}).get("version")
            versions = [v.get("version") for v in entry.get("versions") or ()]
            for v in [preferred] if preferred else versions[:1]:
                found.extend(self._group_version(entry["name"], v))
        if group is None:
            self._discovered = found
        return found

    def _group_version(self, group: str, version: str) -> list[Resource]:
        key = f"{group}/{version}"
        cached = self._group_cache.get(key)
        if cached is not None:
            return cached
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        response = self.request("GET", path)
        if response.status == 404:
            resources: list[Resource] = []
        else:
            response.raise_for_status()
            listing = response.json()
            resources = [
                Resource(
                    group,
                    version,
                    item["kind"],
                    item["name"],
                    bool(item.get("namespaced")),
                    tuple(item.get("shortNames") or ()),
                )
                for item in listing.get("resources") or ()
                if "/" not in item.get("name", "/") and item.get("kind")
            ]
        self._group_cache[key] = resources
        return resources

    def _get_json(self, path: str) -> dict[str, Any]:
        response = self.request("GET", path)
        response.raise_for_status()
        decoded = response.json()
        if not isinstance(decoded, dict):
            raise DecodeError(f"GET {path} on {self.server}: expected a JSON object")
        return decoded

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the idle pooled connections. Open watch streams are not affected."""
        self._pool.clear()

    def __repr__(self) -> str:
        return f"Client({self.server!r})"


def _bypasses_proxy(url: str, no_proxy: str) -> bool:
    """Whether ``no_proxy`` (``*``, hosts, ``host:port``, domain suffixes) excludes ``url``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    host_port = f"{host}:{parts.port}" if parts.port else host
    for entry in no_proxy.lower().replace(" ", "").split(","):
        entry = entry.lstrip(".")
        if entry == "*" or entry in (host, host_port):
            return True
        if entry and (host.endswith("." + entry) or host_port.endswith("." + entry)):
            return True
    return False


class Api:
    """One resource type (optionally in one namespace): CRUD with plain dicts.

    Args:
        client: the connection to use.
        resource: ``"pods"``, ``"po"``, ``"deployments.apps"``, ``"apps/v1/deployments"``,
            a custom resource's name (resolved through discovery), or a ``Resource``.
        namespace: the default namespace; ``None`` means all namespaces. Ignored for
            cluster-scoped resources, as kubectl ignores ``-n`` for them.

    Example:
        >>> pods = Api(Client.default(), "pods", namespace="default")  # doctest: +SKIP
        >>> pods.patch("web-0", {"metadata": {"labels": {"tier": "web"}}})  # doctest: +SKIP
    """

    def __init__(
        self, client: Client, resource: str | Resource, namespace: str | None = None
    ) -> None:
        self.client = client
        self.resource: Resource = (
            resource if isinstance(resource, Resource) else client.resolve(resource)
        )
        self.namespace = namespace if self.resource.namespaced else None

    def __repr__(self) -> str:
        where = f", namespace={self.namespace!r}" if self.namespace else ""
        return f"Api({self.client.server!r}, {self.resource.full_name!r}{where})"

    # -- paths and calls ----------------------------------------------------------------

    def _object_namespace(
        self, namespace: str | None, obj: Mapping[str, Any] | None = None
    ) -> str | None:
        if not self.resource.namespaced:
            return None
        metadata = (obj or {}).get("metadata") or {}
        ns = namespace or metadata.get("namespace") or self.namespace
        if not ns:
            raise ValueError(
                f"{self.resource.full_name} are namespaced: pass namespace= (or set it on"
                " the Api or in the object's metadata)"
            )
        return str(ns)

    @staticmethod
    def _name_of(obj: Mapping[str, Any]) -> str:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            raise ValueError("the object has no metadata.name")
        return str(name)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str | None = None,
    ) -> dict[str, Any]:
        data = None if body is None else orjson.dumps(body)
        response = self.client.request(
            method,
            path,
            params=params,
            body=data,
            content_type=content_type if data is not None else None,
            accept=accept,
        )
        response.raise_for_status()
        decoded = response.json()
        if not isinstance(decoded, dict):
            raise DecodeError(
                f"{response.request}: expected a JSON object, got {type(decoded).__name__}"
            )
        return decoded

    # -- CRUD ---------------------------------------------------------------------------

    def get(
        self, name: str, *, namespace: str | None = None, metadata_only: bool = False
    ) -> dict[str, Any]:
        """Read one object.

        Args:
            name: the object's name.
            namespace: overrides the Api's namespace.
            metadata_only: return a PartialObjectMetadata (apiVersion, kind, metadata).

        Raises:
            NotFound: no such object.
        """
        path = self.resource.path(self._object_namespace(namespace), name)
        return self._call("GET", path, accept=ACCEPT_METADATA if metadata_only else None)

    def list(
        self,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        metadata_only: bool = False,
    ) -> dict[str, Any]:
        """List the objects (in the Api's namespace, or all), following continue tokens.

        Returns the whole list: one List object whose ``items`` holds every page's items.
        If a continue token expires midway, the list is read again in one unpaged request
        (as client-go's pager does).

        Args:
            label_selector: e.g. ``"app=web,tier!=db"``.
            field_selector: e.g. ``"status.phase=Running"``.
            limit: page size; ``None`` asks for everything at once.
            metadata_only: list PartialObjectMetadata items.
        """
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        accept = ACCEPT_METADATA_LIST if metadata_only else None
        path = self.resource.path(self.namespace)
        page_params = {**params, "limit": str(limit)} if limit else params
        result = self._call("GET", path, params=page_params, accept=accept)
        items = [*(result.get("items") or ())]
        metadata = result.setdefault("metadata", {})
        while metadata.get("continue"):
            try:
                page = self._call(
                    "GET",
                    path,
                    params={**page_params, "continue": metadata["continue"]},
                    accept=accept,
                )
            except Gone:
                return self._call("GET", path, params=params, accept=accept)
            items.extend(page.get("items") or ())
            metadata = page.get("metadata") or {}
        result["items"] = items
        result["metadata"].pop("continue", None)
        result["metadata"].pop("remainingItemCount", None)
        return result

    def create(self, obj: dict[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        """Create an object; returns it as stored. ``Conflict`` if it exists already."""
        path = self.resource.path(self._object_namespace(namespace, obj))
        return self._call("POST", path, body=obj)

    def replace(self, obj: dict[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        """Replace an object (PUT). ``Conflict`` if its resourceVersion is stale."""
        path = self.resource.path(self._object_namespace(namespace, obj), self._name_of(obj))
        return self._call("PUT", path, body=obj)

    def replace_status(
        self, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        """Replace an object's status subresource (PUT ``.../status``)."""
        ns = self._object_namespace(namespace, obj)
        path = self.resource.path(ns, self._name_of(obj), "status")
        return self._call("PUT", path, body=obj)

    def patch(
        self,
        name: str,
        patch: dict[str, Any] | JsonPatch,
        *,
        type: PatchType = "merge",
        field_manager: str | None = None,
        force: bool = False,
        subresource: str | None = None,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Patch an object; returns it as stored.

        Args:
            name: the object's name.
            patch: a merge patch or strategic merge patch (dict), a JSON patch (list of
                operations), or for ``"apply"`` the fully specified intent (dict).
            type: ``"merge"`` (RFC 7386), ``"json"`` (RFC 6902), ``"strategic"`` (built-in
                kinds only) or ``"apply"`` (server-side apply).
            field_manager: who makes the change; required for ``"apply"``.
            force: with ``"apply"``, take over fields other managers own.
            subresource: e.g. ``"status"``.
            namespace: overrides the Api's namespace.
        """
        content_type = _PATCH_CONTENT_TYPES.get(type)
        if content_type is None:
            raise ValueError(
                f"unknown patch type {type!r}: use one of {', '.join(_PATCH_CONTENT_TYPES)}"
            )
        params: dict[str, str] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if type == "apply":
            if not field_manager:
                raise ValueError("a server-side apply patch needs field_manager=")
            if force:
                params["force"] = "true"
        elif force:
            raise ValueError("force= only applies to type='apply'")
        path = self.resource.path(self._object_namespace(namespace), name, subresource)
        return self._call("PATCH", path, params=params, body=patch, content_type=content_type)

    def delete(
        self,
        name: str,
        *,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Delete an object; returns the object (still terminating) or a Status.

        Args:
            name: the object's name.
            namespace: overrides the Api's namespace.
            propagation_policy: ``"Orphan"``, ``"Background"`` or ``"Foreground"``.
            grace_period_seconds: seconds before the object is killed; 0 means now.
        """
        params: dict[str, str] = {}
        if propagation_policy:
            params["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            params["gracePeriodSeconds"] = str(grace_period_seconds)
        path = self.resource.path(self._object_namespace(namespace), name)
        return self._call("DELETE", path, params=params)

    # -- raw calls for the watcher ------------------------------------------------------

    def list_page(self, params: Mapping[str, str], *, metadata_only: bool = False) -> Response:
        """One list request in the Api's namespace, undecoded; never raises for a status."""
        return self.client.request(
            "GET",
            self.resource.path(self.namespace),
            params=params,
            accept=ACCEPT_METADATA_LIST if metadata_only else None,
        )

    def watch_stream(
        self, params: Mapping[str, str], *, metadata_only: bool = False, idle_timeout: float
    ) -> WatchStream:
        """Open a watch in the Api's namespace (``watch=1`` is added); see ``Client.stream``."""
        return self.client.stream(
            self.resource.path(self.namespace),
            params={"watch": "1", **params},
            accept=ACCEPT_METADATA if metadata_only else None,
            idle_timeout=idle_timeout,
        )
