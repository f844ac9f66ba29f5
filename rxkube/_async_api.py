"""The asyncio face of the transport: ``AsyncClient`` and ``AsyncApi``, over aiohttp.

An :class:`AsyncClient` wraps a :class:`~rxkube.client.Client` and takes everything from
it: the server, the TLS context (CA, client certificate, ``tls_server_name``), the auth
headers (refreshed per request, an exec plugin run off the loop), the proxy and the
timeouts. Only the socket work differs: one aiohttp session per event loop. An
:class:`AsyncApi` has the methods of :class:`~rxkube.client.Api`, as coroutines, built from
the same request plans (``rxkube._calls``), so a coroutine reconcile never blocks its loop
and needs no ``asyncio.to_thread``.

Example:
    >>> async def reconcile(obj, ctx):                                       # doctest: +SKIP
    ...     await ctx.configmaps.patch(obj["metadata"]["name"], {"data": {"seen": "yes"}})
    ...     return Action.await_change()
    >>> async with AsyncClient(Client.default()) as aclient:                 # doctest: +SKIP
    ...     configmaps = AsyncApi(aclient, "configmaps", namespace="default")
    ...     print(await configmaps.get("settings"))
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from ._calls import (
    ApiCalls,
    Call,
    JsonPatch,
    PatchType,
    check_namespace,
    decode_object,
    drive_async,
)
from ._http import Response, describe_failure
from .client import Api, Client
from .errors import ConfigError, TransportError
from .resource import Resource

__all__ = ["AsyncApi", "AsyncClient"]


class AsyncClient:
    """A :class:`~rxkube.client.Client`'s settings, for coroutines: raw HTTP over aiohttp.

    Use it from one event loop at a time (a session is made on first use in each loop)
    and close it with :meth:`aclose` or ``async with``. The wrapped client stays usable
    (and is not closed by this one).

    Args:
        client: the client whose server, TLS, auth, proxy and timeouts to use.

    Raises:
        ConfigError: the client goes through a SOCKS proxy, which aiohttp cannot use.
    """

    def __init__(self, client: Client) -> None:
        settings = client._transport_settings()
        if settings.proxy and not settings.proxy.startswith(("http://", "https://")):
            raise ConfigError(
                f"AsyncClient cannot use the proxy {settings.proxy}: only http:// and https://"
                " proxies work with aiohttp"
            )
        self.client = client
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def server(self) -> str:
        """The API server URL."""
        return self.client.server

    def resolve(self, name: str) -> Resource:
        """The resource a name refers to, as :meth:`Client.resolve` (discovery is cached;
        resolving a custom resource the first time blocks for one request)."""
        return self.client.resolve(name)

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            if self._session is not None and self._loop is not loop and not self._session.closed:
                raise RuntimeError("AsyncClient is in use on another event loop; make one per loop")
            connector = aiohttp.TCPConnector(
                ssl=self._settings.ssl_context if self._settings.ssl_context else False,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
            )
            self._loop = loop
        return self._session

    async def request(
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
        """Send one request and read the whole response, as :meth:`Client.request`.

        Never raises for an HTTP status: check ``Response.status`` or call
        ``raise_for_status()``.

        Raises:
            TransportError: the server could not be reached or the connection broke.
        """
        settings = self._settings
        described = f"{method} {path}"
        if self.client._refreshes_auth():
            # An exec plugin or a token file may be read: not on the loop.
            headers = await asyncio.to_thread(self.client._headers, accept, content_type)
        else:
            headers = self.client._headers(accept, content_type)
        session = self._session_here()
        read = self.client.request_timeout if timeout is None else timeout
        try:
            async with session.request(
                method,
                self.client._url(path, params),
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(
                    total=timeout, sock_connect=self.client.connect_timeout, sock_read=read
                ),
                allow_redirects=False,
                proxy=settings.proxy,
                proxy_headers=settings.proxy_headers,
                server_hostname=settings.tls_server_name,
            ) as response:
                data = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            why = _describe(exc)
            if timeout is not None and isinstance(exc, TimeoutError):
                why = f"no complete answer within its timeout of {timeout:g} s"
            raise TransportError(f"{described} on {self.server} failed: {why}") from exc
        return Response(response.status, response.headers, data, described)

    async def aclose(self) -> None:
        """Close the session's connections; idempotent."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.server!r})"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out waiting for the response"
    # aiohttp wraps the socket's and the TLS layer's errors: describe what they wrap.
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return describe_failure(exc.certificate_error)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return describe_failure(exc.os_error)
    return describe_failure(exc)


class AsyncApi(ApiCalls):
    """One resource type (optionally in one namespace): :class:`~rxkube.client.Api`'s
    methods as coroutines.

    Args:
        client: the async client to use.
        resource: as for ``Api``: a name (resolved through discovery) or a ``Resource``.
        namespace: the default namespace; ``None`` means all namespaces.

    Raises:
        TypeError: ``namespace`` is not a string.
        ValueError: ``namespace`` cannot be a URL path segment, as for ``Api``.

    Example:
        >>> pods = AsyncApi(aclient, "pods", namespace="default")  # doctest: +SKIP
        >>> await pods.patch("web-0", {"metadata": {"labels": {"tier": "web"}}})  # doctest: +SKIP
    """

    def __init__(
        self, client: AsyncClient, resource: str | Resource, namespace: str | None = None
    ) -> None:
        check_namespace("AsyncApi", namespace)
        self.client = client
        self.resource = resource if isinstance(resource, Resource) else client.resolve(resource)
        self.namespace = namespace if self.resource.namespaced else None

    @property
    def sync(self) -> Api:
        """The blocking :class:`~rxkube.client.Api` of the same resource and namespace,
        for what runs on threads: watchers, stores, controllers."""
        return Api(self.client.client, self.resource, self.namespace)

    def __repr__(self) -> str:
        where = f", namespace={self.namespace!r}" if self.namespace else ""
        return f"AsyncApi({self.client.server!r}, {self.resource.full_name!r}{where})"

    async def _send(self, call: Call) -> dict[str, Any]:
        data = None if call.body is None else orjson.dumps(call.body)
        response = await self.client.request(
            call.method,
            call.path,
            params=call.params,
            body=data,
            content_type=call.content_type if data is not None else None,
            accept=call.accept,
        )
        response.raise_for_status()
        return decode_object(response.json(), response.request)

    async def get(
        self, name: str, *, namespace: str | None = None, metadata_only: bool = False
    ) -> dict[str, Any]:
        """Read one object; see :meth:`Api.get`."""
        return await drive_async(self._get(name, namespace, metadata_only), self._send)

    async def list(
        self,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        metadata_only: bool = False,
    ) -> dict[str, Any]:
        """List the objects, following continue tokens; see :meth:`Api.list`."""
        plan = self._list(label_selector, field_selector, limit, metadata_only)
        return await drive_async(plan, self._send)

    async def create(self, obj: dict[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        """Create an object; see :meth:`Api.create`."""
        return await drive_async(self._create(obj, namespace), self._send)

    async def replace(self, obj: dict[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        """Replace an object (PUT); see :meth:`Api.replace`."""
        return await drive_async(self._replace(obj, namespace, None), self._send)

    async def replace_status(
        self, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        """Replace an object's status subresource; see :meth:`Api.replace_status`."""
        return await drive_async(self._replace(obj, namespace, "status"), self._send)

    async def patch(
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
        """Patch an object; see :meth:`Api.patch`."""
        plan = self._patch(name, patch, type, field_manager, force, subresource, namespace)
        return await drive_async(plan, self._send)

    async def delete(
        self,
        name: str,
        *,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Delete an object; see :meth:`Api.delete`."""
        plan = self._delete(name, namespace, propagation_policy, grace_period_seconds)
        return await drive_async(plan, self._send)
