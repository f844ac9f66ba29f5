"""The transport: ``Client`` talks HTTP to one API server, ``Api`` addresses one resource.

Why one file this long: ``Client`` and ``Api`` are the two public classes of the
transport, and ``Api``'s CRUD methods each need their documentation; the HTTP, kubeconfig
and discovery machinery is already in modules of their own.

``Client`` is configured the way the official ``kubernetes`` package is (kubeconfig,
in-cluster service account, an existing ``Configuration``: see ``rxkube._kubeconfig``), but
does its own HTTP with urllib3: one connection pool with keep-alive, one ``ssl.SSLContext``
built up front, fresh auth headers per request (so exec plugins, OIDC and service-account
tokens refresh), and bodies returned as raw bytes for orjson to decode once
(``rxkube._http``'s ``Response``). ``WatchStream`` (also in ``rxkube._http``) reads a
streaming GET line by line, treats a silent connection as dead, and can be closed from
any thread. ``Client.resolve`` names resources through ``rxkube._discovery``.

``Api`` is the thin dict-in/dict-out layer controllers use for CRUD, plus the two raw calls
the watcher drives (``list_page`` and ``watch_stream``), which decode nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import orjson
import urllib3
import urllib3.connection
import urllib3.exceptions

from . import _kubeconfig
from ._calls import (
    ACCEPT_METADATA,
    ACCEPT_METADATA_LIST,
    ApiCalls,
    Call,
    JsonPatch,
    PatchType,
    check_namespace,
    decode_object,
    drive,
)
from ._discovery import Discovery
from ._http import (
    POOL_MAXSIZE,
    Cancellation,
    ClosedOnExit,
    Response,
    WatchStream,
    calling,
    describe_failure,
    keepalive_options,
    pool_manager,
    read_body,
    ssl_context,
    undecodable,
)
from ._timeouts import checked_seconds
from .errors import (
    ConfigError,
    DecodeError,
    TransportError,
    WatchStalled,
)
from .protocol import MAX_EVENT_BYTES
from .resource import Resource

if TYPE_CHECKING:
    import kubernetes.client

__all__ = [
    "ACCEPT_METADATA",
    "ACCEPT_METADATA_LIST",
    "Api",
    "Cancellation",
    "Client",
    "Response",
    "WatchStream",
]

_SERVED_BY_LOOP: dict[str, asyncio.AbstractEventLoop] = {}
"""Server URLs answered by an event loop in this process (``rxkube.testing``'s
``async with ApiServer()``). A blocking request to one of them, made on that loop's own
thread, stops the loop that would answer it: the request would wait forever."""


def serve_on_loop(url: str, loop: asyncio.AbstractEventLoop | None) -> None:
    """Record (or, with ``None``, forget) that ``loop`` answers the API server at ``url``.

    A :class:`Client` then refuses, at once and with an explanation, a blocking request
    to ``url`` made on that loop's thread, which would otherwise hang.
    """
    if loop is None:
        _SERVED_BY_LOOP.pop(url, None)
    else:
        _SERVED_BY_LOOP[url] = loop


_USER_AGENT = "rxkube"


def _header_safe(what: str, value: str) -> str:
    """A credential as a header may carry it: surrounding whitespace trimmed (as client-go
    trims token files), and refused, without echoing it, if a line break or NUL is left."""
    value = value.strip()
    if "\n" in value or "\r" in value or "\0" in value:
        raise ConfigError(
            f"the {what} contains a line break or NUL, which no HTTP header can carry:"
            " check the token (or tokenFile, or credential plugin) of the kubeconfig"
        )
    return value


_TEXT_SETTINGS = (
    "token",
    "ca_file",
    "client_cert_file",
    "client_key_file",
    "tls_server_name",
    "proxy",
)


def _check_settings(
    server: object, texts: tuple[object, ...], ca_data: object, timeouts: tuple[object, object]
) -> None:
    """Refuse a ``Client`` setting of the wrong type where it is given, not deep inside
    ``urllib3`` or ``ssl`` with an ``AttributeError``; a token's value is never echoed."""
    if not isinstance(server, str):
        raise TypeError(f"Client(): server must be a URL string, not {type(server).__name__}")
    for what, value in zip(_TEXT_SETTINGS, texts, strict=True):
        if value is not None and not isinstance(value, str):
            raise TypeError(
                f"Client(): {what} must be a string or None, not {type(value).__name__}"
            )
    if ca_data is not None and not isinstance(ca_data, str | bytes):
        raise TypeError(
            f"Client(): ca_data must be PEM (str) or DER (bytes), not {type(ca_data).__name__}"
        )
    for what, value in zip(("connect_timeout", "request_timeout"), timeouts, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(
                f"Client(): {what} must be a positive number of seconds, not {value!r}"
            )


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """How a client reaches its server, built once: shared by the blocking and async transports."""

    ssl_context: ssl.SSLContext | None
    tls_server_name: str | None
    proxy: str | None
    proxy_headers: dict[str, str]


class Client(ClosedOnExit):
    """A connection to one Kubernetes API server: TLS, authentication, raw HTTP.

    Usually built by :meth:`default`, :meth:`from_kubeconfig` or :meth:`in_cluster`.
    Thread-safe: share one client across watches and controllers. Close it (or use it as
    a context manager) to close its idle connections.

    Args:
        server: the API server URL, e.g. ``https://10.0.0.1:6443`` (a path prefix is kept).
        token: a bearer token sent with every request (surrounding whitespace trimmed;
            ``ConfigError``, not echoing it, if it holds a line break).
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

    Raises:
        TypeError: a setting of the wrong type (a token that is not a string, say).
        ValueError: a timeout that is not a positive number of seconds.
        ConfigError: ``server`` is not an ``http(s)://host`` URL, or a credential or
            certificate cannot be used.
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
        _check_settings(
            server,
            (token, ca_file, client_cert_file, client_key_file, tls_server_name, proxy),
            ca_data,
            (connect_timeout, request_timeout),
        )
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"invalid API server URL {server!r}: expected https://host[:port]")
        self.server: str = server.rstrip("/")
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._token = _header_safe("token", token) if token else None
        self._auth = auth
        self._auth_lock = threading.Lock()
        # The credential plugin of a client from a kubeconfig, stopped when it closes.
        self._plugins: _kubeconfig.ExecPlugins | None = None
        self._discovery = Discovery(lambda path: self.request("GET", path), self.server)
        pool_args: dict[str, Any] = {
            "num_pools": 4,
            "maxsize": POOL_MAXSIZE,
            "block": False,
            "retries": False,
            "socket_options": keepalive_options(),
        }
        self._settings = TransportSettings(
            ssl_context(ca_file, ca_data, verify_ssl, client_cert_file, client_key_file)
            if parts.scheme == "https"
            else None,
            tls_server_name or None,
            proxy or None,
            dict(proxy_headers or {}),
        )
        if self._settings.ssl_context is not None:
            pool_args["ssl_context"] = self._settings.ssl_context
            if tls_server_name:
                pool_args["server_hostname"] = tls_server_name
        self._pool = pool_manager(proxy, proxy_headers, pool_args)

    # -- construction from the kubernetes package's loaders (rxkube._kubeconfig) -------

    @classmethod
    def from_configuration(cls, configuration: kubernetes.client.Configuration) -> Client:
        """A client with the settings of a ``kubernetes.client.Configuration``.

        Maps the host, bearer token (``api_key``/``api_key_prefix``, refreshed through
        ``refresh_api_key_hook`` before every request: exec plugins, OIDC, service-account
        tokens), client certificate and key, CA, ``verify_ssl``, ``tls_server_name``,
        ``proxy`` (unless ``no_proxy`` excludes the host) and ``proxy_headers``. The
        generated API classes are never used.
        """
        return cls(**_kubeconfig.client_settings(configuration))

    @classmethod
    def from_kubeconfig(
        cls,
        path: str | None = None,
        context: str | None = None,
        *,
        exec_timeout: float = _kubeconfig.EXEC_TIMEOUT,
    ) -> Client:
        """A client for a kubeconfig context (the current one unless ``context`` is given).

        Args:
            path: the kubeconfig file (or several, ``os.pathsep``-separated); default
                ``$KUBECONFIG``, else ``~/.kube/config``.
            context: a context name from the file.
            exec_timeout: seconds an exec credential plugin may take to answer, now and
                at each refresh of its token; then it is killed (``math.inf``: no limit).

        Raises:
            TypeError: ``path`` or ``context`` is neither a string nor ``None``, or
                ``exec_timeout`` is not a number.
            ValueError: ``exec_timeout`` is negative or NaN.
            ConfigError: no kubeconfig, an unknown context, an invalid file, or a
                credential plugin that fails or does not answer in time (a request whose
                token refresh meets such a plugin raises it too).
        """
        for what, value, kinds in (("path", path, (str, os.PathLike)), ("context", context, str)):
            if value is not None and not isinstance(value, kinds):
                raise TypeError(
                    f"Client.from_kubeconfig(): {what} must be a string or None,"
                    f" not {type(value).__name__} {value!r:.60}"
                )
        seconds = checked_seconds(exec_timeout, "Client.from_kubeconfig()", "exec_timeout")
        # Beyond any wait, no limit: subprocess overflows on infinity.
        plugins = _kubeconfig.ExecPlugins(None if seconds > threading.TIMEOUT_MAX else seconds)
        configuration = _kubeconfig.load_kubeconfig(path, context, plugins)
        try:
            client = cls.from_configuration(configuration)
        except ConfigError as exc:  # e.g. the context's cluster has no usable server URL
            raise ConfigError(
                f"kubeconfig {_kubeconfig.kubeconfig_files(path)[0]}: {exc}"
            ) from None
        client._plugins = plugins
        return client

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
        return cls.from_configuration(_kubeconfig.load_in_cluster(token_file, ca_file))

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
                fresh = self._auth()
            headers.update({name: _header_safe(name, value) for name, value in fresh.items()})
        return headers

    def _refreshes_auth(self) -> bool:
        """Whether building headers may run an auth hook (an exec plugin, a file read)."""
        return self._auth is not None

    def _transport_settings(self) -> TransportSettings:
        """What another transport (``rxkube.aio.AsyncClient``) needs to reach the same server."""
        return self._settings

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
        cancellation: Cancellation | None = None,
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
            timeout: seconds to connect and get the whole answer, together: one not
                complete by then fails the request, however steadily the server trickles
                it (default: ``connect_timeout`` to connect, then ``request_timeout`` of
                silence).
            cancellation: lets another thread abort the request while it is in flight.

        Raises:
            TransportError: the server could not be reached, the connection broke, the
                answer was not complete within ``timeout``, or ``cancellation`` was
                cancelled.
        """
        described = f"{method} {path}"
        self._refuse_to_block_own_server(described)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with calling(cancellation, deadline):
                response = self._pool.request(
                    method,
                    self._url(path, params),
                    body=body,
                    headers=self._headers(accept, content_type),
                    timeout=urllib3.Timeout(
                        connect=self.connect_timeout,
                        read=self.request_timeout if timeout is None else timeout,
                        total=timeout,
                    ),
                    redirect=False,
                    preload_content=False,
                )
                try:
                    data = read_body(response)
                except BaseException:
                    response.close()  # cut short: the connection cannot serve another request
                    raise
                finally:
                    response.release_conn()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._failed(described, exc, cancellation, timeout, deadline) from exc
        return Response(response.status, response.headers, data, described)

    def _failed(
        self,
        described: str,
        exc: BaseException,
        cancellation: Cancellation | None,
        timeout: float | None = None,
        deadline: float | None = None,
    ) -> TransportError | DecodeError:
        if isinstance(exc, urllib3.exceptions.DecodeError):
            return DecodeError(f"{described} on {self.server}: {undecodable(exc)}")
        if cancellation and cancellation.cancelled:
            why = "cancelled"
        elif timeout is not None and deadline is not None and time.monotonic() >= deadline:
            why = f"no complete answer within its timeout of {timeout:g} s"
        else:
            why = describe_failure(exc)
        return TransportError(f"{described} on {self.server} failed: {why}")

    def _refuse_to_block_own_server(self, described: str) -> None:
        loop = _SERVED_BY_LOOP.get(self.server) if _SERVED_BY_LOOP else None
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # no loop runs on this thread
            return
        if running is loop:
            raise RuntimeError(
                f"{described} on {self.server} would wait forever: that API server runs on"
                " this thread's event loop (async with ApiServer()), which this blocking call"
                " holds up. From a coroutine, make blocking calls with"
                " `await asyncio.to_thread(...)`, or start the server with `with ApiServer()`"
                " (on a thread of its own)."
            )

    def stream(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        accept: str | None = None,
        idle_timeout: float,
        max_line_bytes: int = MAX_EVENT_BYTES,
        cancellation: Cancellation | None = None,
    ) -> WatchStream:
        """Start a streaming GET and return once the response headers arrived.

        Args:
            path: the URL path.
            params: query parameters (a watch needs ``watch=1``).
            accept: the Accept header.
            idle_timeout: seconds without a byte after which the connection is dead.
            max_line_bytes: the longest line ``lines()`` accepts; 16 MiB, client-go's
                limit on a watch event, by default.
            cancellation: aborts the stream, also while waiting for its headers; the
                stream's ``close()`` cancels it. A fresh one by default.

        Raises:
            WatchStalled: the headers did not arrive within ``idle_timeout``.
            TransportError: the server could not be reached, or ``cancellation`` was
                cancelled.
        """
        described = f"GET {path}"
        self._refuse_to_block_own_server(described)
        cancellation = cancellation or Cancellation()
        try:
            with calling(cancellation):
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
            raise self._failed(described, exc, cancellation) from exc
        return WatchStream(
            response,
            request=described,
            server=self.server,
            idle_timeout=idle_timeout,
            max_line_bytes=max_line_bytes,
            cancellation=cancellation,
        )

    # -- discovery (rxkube._discovery) -------------------------------------------------

    def resolve(self, name: str) -> Resource:
        """The resource a name refers to: a built-in kind, else one the server serves.

        Accepts ``"pods"``, ``"po"``, ``"Pod"``, ``"deployments.apps"``,
        ``"apps/v1/deployments"`` and custom resources (``"widgets"``,
        ``"widgets.example.com"``, ``"example.com/v1/widgets"``). Discovery results are
        cached; a miss refreshes the cache once (a CRD may have been installed since).

        Raises:
            ConfigError: neither built in nor served by the API server.
        """
        return self._discovery.resolve(name)

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the idle pooled connections now; each connection in use closes when its
        request or stream ends, instead of going back to a pool. Open watch streams are
        not interrupted.

        A credential plugin refreshing the token is killed, and the requests waiting for
        it fail with ``ConfigError`` at once; the client runs it no more.
        """
        if self._plugins is not None:
            self._plugins.close()
        pools = self._pool.pools
        open_pools = []
        for key in pools.keys():  # noqa: SIM118 (the container refuses iteration)
            with contextlib.suppress(KeyError):  # dropped by another thread meanwhile
                open_pools.append(pools[key])
        # PoolManager.clear() only forgets its pools (urllib3 2 closes a pool when it is
        # collected), and anything that outlives the client (a stream, an exception's
        # traceback kept by a log handler) would keep their sockets open: close them.
        self._pool.clear()
        for pool in open_pools:
            pool.close()

    def __repr__(self) -> str:
        return f"Client({self.server!r})"


class Api(ApiCalls):
    """One resource type (optionally in one namespace): CRUD with plain dicts.

    Args:
        client: the connection to use.
        resource: ``"pods"``, ``"po"``, ``"deployments.apps"``, ``"apps/v1/deployments"``,
            a custom resource's name (resolved through discovery), or a ``Resource``.
        namespace: the default namespace; ``None`` means all namespaces. Ignored for
            cluster-scoped resources, as kubectl ignores ``-n`` for them.

    Each method's request goes to its ``namespace=`` argument, else the Api's namespace,
    else the object's ``metadata.namespace``. An object or patch naming another namespace
    than the request's is refused with ``ValueError`` before anything is sent, as kubectl
    refuses it: an Api scoped to one namespace never writes in another.

    Raises:
        TypeError: ``client`` is not a ``Client``, or ``namespace`` not a string.
        ValueError: ``namespace`` cannot be a URL path segment (``.``, ``..``, or with
            ``/`` or ``%``); names given to the methods are checked the same way.
        ConfigError: the server has no such resource.

    Example:
        >>> pods = Api(Client.default(), "pods", namespace="default")  # doctest: +SKIP
        >>> pods.patch("web-0", {"metadata": {"labels": {"tier": "web"}}})  # doctest: +SKIP
    """

    def __init__(
        self, client: Client, resource: str | Resource, namespace: str | None = None
    ) -> None:
        if not isinstance(client, Client):
            raise TypeError(
                f"Api() needs a Client (Client.default(), Client.from_kubeconfig()) first,"
                f" not {type(client).__name__} {client!r:.60}"
            )
        check_namespace("Api", namespace)
        self.client = client
        self.resource: Resource = (
            resource if isinstance(resource, Resource) else client.resolve(resource)
        )
        self.namespace = namespace if self.resource.namespaced else None

    def __repr__(self) -> str:
        where = f", namespace={self.namespace!r}" if self.namespace else ""
        return f"Api({self.client.server!r}, {self.resource.full_name!r}{where})"

    def _send(self, call: Call, timeout: float | None = None) -> dict[str, Any]:
        data = None if call.body is None else orjson.dumps(call.body)
        response = self.client.request(
            call.method,
            call.path,
            params=call.params,
            body=data,
            content_type=call.content_type if data is not None else None,
            accept=call.accept,
            timeout=timeout,
        )
        response.raise_for_status()
        return decode_object(response.json(), response.request)

    # -- CRUD (the requests are rxkube._calls' plans, shared with AsyncApi) ---------------

    def get(
        self,
        name: str,
        *,
        namespace: str | None = None,
        metadata_only: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Read one object.

        Args:
            name: the object's name.
            namespace: overrides the Api's namespace.
            metadata_only: return a PartialObjectMetadata (apiVersion, kind, metadata).
            timeout: seconds the request may take (default: the client's request timeout).

        Raises:
            NotFound: no such object.
        """
        send = functools.partial(self._send, timeout=timeout)
        return drive(self._get(name, namespace, metadata_only), send)

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
        return drive(self._list(label_selector, field_selector, limit, metadata_only), self._send)

    def create(
        self, obj: dict[str, Any], *, namespace: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Create an object; returns it as stored. ``Conflict`` if it exists already.

        ``timeout``: seconds the request may take (default: the client's request timeout).
        """
        send = functools.partial(self._send, timeout=timeout)
        return drive(self._create(obj, namespace), send)

    def replace(
        self, obj: dict[str, Any], *, namespace: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Replace an object (PUT). ``Conflict`` if its resourceVersion is stale.

        ``timeout``: seconds the request may take (default: the client's request timeout).
        """
        send = functools.partial(self._send, timeout=timeout)
        return drive(self._replace(obj, namespace, None), send)

    def replace_status(
        self, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        """Replace an object's status subresource (PUT ``.../status``)."""
        return drive(self._replace(obj, namespace, "status"), self._send)

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
        plan = self._patch(name, patch, type, field_manager, force, subresource, namespace)
        return drive(plan, self._send)

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
        plan = self._delete(name, namespace, propagation_policy, grace_period_seconds)
        return drive(plan, self._send)

    # -- raw calls for the watcher ------------------------------------------------------

    def list_page(
        self,
        params: Mapping[str, str],
        *,
        metadata_only: bool = False,
        cancellation: Cancellation | None = None,
    ) -> Response:
        """One list request in the Api's namespace, undecoded; never raises for a status.

        ``cancellation`` lets another thread abort it in flight (see ``Client.request``).
        """
        return self.client.request(
            "GET",
            self.resource.path(self.namespace),
            params=params,
            accept=ACCEPT_METADATA_LIST if metadata_only else None,
            cancellation=cancellation,
        )

    def watch_stream(
        self,
        params: Mapping[str, str],
        *,
        metadata_only: bool = False,
        idle_timeout: float,
        max_line_bytes: int = MAX_EVENT_BYTES,
        cancellation: Cancellation | None = None,
    ) -> WatchStream:
        """Open a watch in the Api's namespace (``watch=1`` is added); see ``Client.stream``."""
        return self.client.stream(
            self.resource.path(self.namespace),
            params={"watch": "1", **params},
            accept=ACCEPT_METADATA if metadata_only else None,
            idle_timeout=idle_timeout,
            cancellation=cancellation,
            max_line_bytes=max_line_bytes,
        )
