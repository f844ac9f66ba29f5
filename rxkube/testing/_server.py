"""``ApiServer``: the in-process Kubernetes API server's lifecycle and its test-side object API.

Why one file this long: ``ApiServer`` is one public class, its lifecycle (loop thread,
TLS, kubeconfig) and its test-side object API, which mirrors the HTTP verbs one for one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import math
import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

from aiohttp import web

from ..client import serve_on_loop
from ..errors import ConfigError, NotFound
from ..resource import BUILTIN_KINDS, Resource, match_resource
from ..selectors import FieldSelector, LabelSelector
from ._app import ApiApp, ServerOptions, StatusRequestHandler, patch_function
from ._conversion import storage_fields
from ._crd import CRD_RESOURCE, Definitions
from ._faults import Faults
from ._kubeconfig import kubeconfig_document, write_private
from ._lifecycle import ServerLifecycle
from ._requests import RecordedRequest, RequestLog
from ._served import ServedResource, builtin_served
from ._specs import NAMESPACE_NAME_LABEL
from ._status import StatusError
from ._store import Store
from ._stored import Object, WatchFilter, deep_copy
from ._watch import WatchHub

if TYPE_CHECKING:
    from ..client import Client

ResourceLike = Resource | str
"""A resource as a :class:`~rxkube.resource.Resource` or a name: ``"pods"``, ``"Pod"``,
``"deployments.apps"``, ``"apps/v1/deployments"``."""

_T = TypeVar("_T")

DEFAULT_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
"""The namespaces a new server has, as a fresh cluster does."""


class ApiServer(ServerLifecycle):
    """A Kubernetes API server in your test process, following the list/watch protocol.

    Use it as a context manager, synchronously (it runs its own event loop on a thread
    named ``rxkube-apiserver``) or asynchronously (it runs on the caller's loop)::

        with ApiServer() as srv:
            srv.create("configmaps", {"metadata": {"name": "a"}, "data": {"k": "v"}})
            client = srv.client()

        async with ApiServer(token="s3cret", tls=True) as srv:
            ...

    Args:
        token: a bearer token every request must carry; without it a request gets a
            401 ``Status``. None (the default) accepts any request.
        tls: serve HTTPS with a freshly generated certificate authority (needs the
            ``cryptography`` package); ``ca_file`` names its certificate.
        host: the address (or host name) to listen on; ``0.0.0.0`` or ``::`` for every
            interface, whose server :attr:`url` names loopback, as clients here reach it.
        port: the port; 0 (the default) picks a free one.
        bookmark_interval: seconds between BOOKMARK events on watches that allow them
            (more than 0); None sends none (a real server does not promise any).
        compact_every: compact history automatically every this many writes (keeping
            about that many writes of history; at least 1); None never compacts on its own.
        streaming_lists: serve ``sendInitialEvents=true`` watches; False refuses them with
            an ERROR event (code 500), as a server on an older etcd does.
        too_large_wait: seconds a read at a future resourceVersion waits before 504.
        namespaces: the namespaces that exist at start.
        watch_buffer: how many live events a watch may have waiting for a client that
            does not read fast enough; beyond that the server ends the watch cleanly, as
            kube-apiserver does, and the client must resume. None: no limit.
        request_log_size: how many of the latest requests :attr:`requests` keeps.
        sharded_lists: honour ``shardSelector`` (KEP-5866) and echo it in lists'
            ``metadata.shardInfo``, as kube-apiserver v1.36 with ``ShardedListAndWatch``
            on; False ignores the parameter, as an older server does.

    Raises:
        TypeError: ``host`` is not a string.
        ValueError: ``host`` is empty, ``bookmark_interval`` is not a positive number of
            seconds, or ``compact_every`` not a whole number of writes, at least 1.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        tls: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_interval: float | None = 1.0,
        compact_every: int | None = None,
        streaming_lists: bool = True,
        too_large_wait: float = 3.0,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        watch_buffer: int | None = 10_000,
        request_log_size: int = 1000,
        sharded_lists: bool = True,
    ) -> None:
        _check_bookmark_interval(bookmark_interval)
        if compact_every is not None and not (
            isinstance(compact_every, int)
            and not isinstance(compact_every, bool)
            and compact_every >= 1
        ):
            raise ValueError(
                f"ApiServer: compact_every must be a whole number of writes, at least 1, or None,"
                f" not {compact_every!r}"
            )
        problem = host_problem(host)
        if problem:
            raise (TypeError if not isinstance(host, str) else ValueError)(f"ApiServer: {problem}")
        self.token = token
        self.host = host
        self._port = port
        self._tls = tls
        self.store = Store(compact_every)
        self._hub = WatchHub(self.store)
        self.faults = Faults(lambda abrupt: self._hub.close_all(abrupt=abrupt))
        """Fault injection: see :class:`~rxkube.testing.Faults`."""
        self._options = ServerOptions(
            bookmark_interval, streaming_lists, too_large_wait, watch_buffer, sharded_lists
        )
        self._requests = RequestLog(request_log_size)
        self._app = ApiApp(
            self.store, self._hub, self.faults, self._options, self._requests, token=token
        )
        self._resolved: dict[tuple[ResourceLike, int], ServedResource] = {}
        # Discovery lists groups in the order served; kube-apiserver's group priorities put
        # apiextensions.k8s.io (16700) after admissionregistration.k8s.io (16700, by name).
        crds_at = 1 + max(
            i
            for i, kind in enumerate(BUILTIN_KINDS)
            if kind.resource.group == "admissionregistration.k8s.io"
        )
        for kind in BUILTIN_KINDS[:crds_at]:
            self.store.add_resource(builtin_served(kind))
        self.store.add_resource(Definitions(self.store).served)
        for kind in BUILTIN_KINDS[crds_at:]:
            self.store.add_resource(builtin_served(kind))
        for name in namespaces:
            # As kube-apiserver creates them: defaulted, with the namespace finalizer.
            self.create(
                "namespaces",
                {
                    "metadata": {"name": name, "labels": {NAMESPACE_NAME_LABEL: name}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )
        self.url = ""
        """The base URL, e.g. ``http://127.0.0.1:40123``; set once started."""
        self.ca_file: str | None = None
        """The CA certificate (PEM) to verify the server with when ``tls=True``."""
        self._tmpdir: str | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._clients: list[Client] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30.0) -> Self:
        """Start serving on a new event loop in a thread named ``rxkube-apiserver``."""
        if self._runner is not None or self._thread is not None:
            raise RuntimeError("this ApiServer is already running")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.astart())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.astop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="rxkube-apiserver", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"the test API server did not start within {timeout} s")
        if failure:
            self._thread.join(timeout)
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop a server started with :meth:`start`: close every connection, end the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the test API server did not stop within {timeout} s")
        self._thread = None
        self._loop = None

    async def astart(self) -> Self:
        """Start serving on the running event loop."""
        if self._runner is not None:
            raise RuntimeError("this ApiServer is already running")
        self._loop = asyncio.get_running_loop()
        self._hub.bind(self._loop)
        ssl_context = self._ssl_context() if self._tls else None
        runner = web.AppRunner(
            self._app.application(),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=2.0,
        )
        await runner.setup()
        server = runner.server
        assert server is not None
        loop = self._loop

        def connection() -> StatusRequestHandler:
            # access_log=None (no access log) is what AppRunner passes too; aiohttp's
            # annotation says Logger.
            return StatusRequestHandler(server, loop=loop, access_log=None)  # type: ignore[arg-type]

        # Our own listener rather than a TCPSite, for a connection handler that answers
        # unknown methods as kube-apiserver does; the runner still owns the connections.
        try:
            self._listener = await loop.create_server(
                connection, self.host, self._port, ssl=ssl_context
            )
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = self._listener.sockets[0].getsockname()[1]
        self._port = port  # a restarted or re-used server keeps its address
        host = _url_host(self.host)
        self.url = f"{'https' if self._tls else 'http'}://{host}:{port}"
        self._app.server_address = f"{host}:{port}"
        serve_on_loop(self.url, self._loop)
        return self

    async def astop(self) -> None:
        """Stop a server started with :meth:`astart` (or on its own loop)."""
        runner = self._runner
        if runner is None:
            return
        self._runner = None
        serve_on_loop(self.url, None)
        self._hub.close_all()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        await runner.cleanup()
        if listener is not None:
            await listener.wait_closed()
        clients, self._clients = self._clients, []
        for client in clients:  # their pooled connections lead to a server that is gone
            client.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self.ca_file = None

    def _ssl_context(self) -> ssl.SSLContext:
        from ._tls import generate_certificates

        certificates = generate_certificates()
        self._tmpdir = tempfile.mkdtemp(prefix="rxkube-apiserver-")
        ca_file = os.path.join(self._tmpdir, "ca.crt")
        cert_file = os.path.join(self._tmpdir, "server.crt")
        key_file = os.path.join(self._tmpdir, "server.key")
        for path, data in (
            (ca_file, certificates.ca_pem),
            (cert_file, certificates.cert_pem),
            (key_file, certificates.key_pem),
        ):
            with open(path, "wb") as handle:
                handle.write(data)
        self._ca_pem = certificates.ca_pem
        self.ca_file = ca_file
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context

    def _on_loop(self, fn: Callable[[], _T], timeout: float = 10.0) -> _T:
        """Run ``fn`` on the server's loop and return its result, from any thread."""
        loop = self._loop
        if loop is None or self._runner is None:
            raise RuntimeError("the test API server is not running")
        try:
            if asyncio.get_running_loop() is loop:
                return fn()
        except RuntimeError:
            pass
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(call)
        return future.result(timeout)

    def restart(self) -> None:
        """Drop every open connection, watches included, and keep all state.

        To clients this looks like a kube-apiserver restart behind a stable address:
        their reads fail mid-way, and their resourceVersions stay valid afterwards.
        """

        def drop() -> None:
            self._hub.close_all(abrupt=True)
            runner = self._runner
            if runner is not None and runner.server is not None:
                for handler in runner.server.connections:
                    if handler.transport is not None:
                        handler.transport.abort()

        self._on_loop(drop)

    # -------------------------------------------------------------- configuration

    @property
    def bookmark_interval(self) -> float | None:
        """Seconds between BOOKMARK events on watches that allow them (None: none)."""
        return self._options.bookmark_interval

    @bookmark_interval.setter
    def bookmark_interval(self, value: float | None) -> None:
        _check_bookmark_interval(value)
        self._options.bookmark_interval = value

    @property
    def streaming_lists(self) -> bool:
        """Whether ``sendInitialEvents=true`` watches are served (False: ERROR 500 event)."""
        return self._options.streaming_lists

    @streaming_lists.setter
    def streaming_lists(self, value: bool) -> None:
        self._options.streaming_lists = value

    @property
    def sharded_lists(self) -> bool:
        """Whether ``shardSelector`` is honoured (False: ignored, as by an older server)."""
        return self._options.sharded_lists

    @sharded_lists.setter
    def sharded_lists(self, value: bool) -> None:
        self._options.sharded_lists = value

    @property
    def watch_buffer(self) -> int | None:
        """How many live events a watch may have waiting for its client (None: no limit).

        A change applies to watches opened afterwards.
        """
        return self._options.watch_buffer

    @watch_buffer.setter
    def watch_buffer(self, value: int | None) -> None:
        self._options.watch_buffer = value

    @property
    def requests(self) -> list[RecordedRequest]:
        """The latest requests the server answered, oldest first (a snapshot).

        Each is a :class:`~rxkube.testing.RecordedRequest` (method, path, query, verb,
        status, resource, namespace, name, subresource, content type). Only the last
        ``request_log_size`` are kept.
        """
        return self._requests.snapshot()

    def clear_requests(self) -> None:
        """Forget every recorded request (e.g. once a test has arranged its state)."""
        self._requests.clear()

    @property
    def resource_version(self) -> int:
        """The current (latest) resourceVersion of the whole server."""
        return self.store.rv

    def open_watches(self) -> int:
        """How many watch connections are open right now (stalled ones included)."""
        return self._hub.count()

    def compact(self) -> int:
        """Compact history at the current resourceVersion, and return it.

        Afterwards, anything older answers 410 Expired: a list at an older exact
        resourceVersion, a continue token issued before, a watch from an older
        resourceVersion (an ERROR event). Reads at the returned version still work.
        """
        return self.store.compact()

    def add_resource(
        self,
        group: str,
        version: str,
        kind: str,
        plural: str,
        namespaced: bool = True,
        *,
        status_subresource: bool = True,
        short_names: Iterable[str] = (),
        selectable_fields: Iterable[str] = (),
    ) -> Resource:
        """Serve a custom resource by creating the CustomResourceDefinition that defines it.

        A shorthand for ``srv.create("customresourcedefinitions", ...)`` with a schema that
        keeps every field (``x-kubernetes-preserve-unknown-fields``), so objects are stored
        as given; create a definition yourself for validation, defaults, printer columns or
        the scale subresource. A version the definition lacks is added to it (served, not
        stored); adding what is served already changes nothing.

        Args:
            group: the API group, e.g. ``"example.com"`` (a domain with at least one dot).
            version: the version, e.g. ``"v1"``.
            kind: the kind, e.g. ``"Widget"``.
            plural: the plural used in URLs, e.g. ``"widgets"``.
            namespaced: whether objects live in namespaces.
            status_subresource: whether ``/status`` exists (the main endpoint then
                ignores status changes and ``generation`` ignores status).
            short_names: short names announced by discovery.
            selectable_fields: extra field paths usable in field selectors.

        Returns:
            the :class:`~rxkube.resource.Resource`, usable with every method here.

        Raises:
            ValueError: the definition exists with another kind, scope or names.
            rxkube.errors.Invalid: kube-apiserver would refuse such a definition.
        """
        resource = Resource(group, version, kind, plural, namespaced, tuple(short_names))
        entry: dict[str, Any] = {
            "name": version,
            "served": True,
            "storage": True,
            "schema": {
                "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            },
        }
        if status_subresource:
            entry["subresources"] = {"status": {}}
        if selectable_fields:
            entry["selectableFields"] = [{"jsonPath": f".{f}"} for f in selectable_fields]
        names: dict[str, Any] = {"plural": plural, "singular": kind.lower(), "kind": kind}
        if short_names:
            names["shortNames"] = list(short_names)
        spec = {
            "group": group,
            "names": names,
            "scope": "Namespaced" if namespaced else "Cluster",
            "versions": [entry],
        }
        name = f"{plural}.{group}"
        try:
            existing = self.get(CRD_RESOURCE, name)
        except NotFound:
            self.create(
                CRD_RESOURCE,
                {"apiVersion": CRD_RESOURCE.api_version, "kind": CRD_RESOURCE.kind,
                 "metadata": {"name": name}, "spec": spec},
            )  # fmt: skip
            return self.resource(resource)
        current = existing["spec"]
        same = {k: current["names"].get(k) for k in names} == names and current["scope"] == spec[
            "scope"
        ]
        if not same:
            raise ValueError(
                f"resource {resource.full_name} is already defined by {name} differently"
            )
        versions = current["versions"]
        if all(v.get("name") != version for v in versions):
            versions.append({**entry, "storage": False})
            self.replace(CRD_RESOURCE, existing)
        return self.resource(resource)

    def resource(self, resource: ResourceLike) -> Resource:
        """The served :class:`~rxkube.resource.Resource` a name or Resource refers to."""
        return self._served(resource).resource

    def _served(self, resource: ResourceLike) -> ServedResource:
        key = (resource, self.store.generation)
        cached = self._resolved.get(key)
        if cached is not None:
            return cached
        found = self._resolve(resource)
        self._resolved[key] = found
        return found

    def _resolve(self, resource: ResourceLike) -> ServedResource:
        served = self.store.served()
        if isinstance(resource, Resource):
            found = self.store.lookup(resource.group, resource.version, resource.plural)
        else:
            match = match_resource([s.resource for s in served], resource)
            found = next((s for s in served if match is not None and s.resource == match), None)
        if found is None:
            raise ConfigError(
                f"the test API server does not serve {resource!r}; use srv.add_resource() first"
            )
        return found

    # --------------------------------------------------------- test-side objects

    @staticmethod
    def _namespace(
        served: ServedResource, namespace: str | None, obj: Mapping[str, Any] | None = None
    ) -> str | None:
        if not served.resource.namespaced:
            return None
        if namespace:
            return namespace
        meta = (obj or {}).get("metadata") or {}
        found: str | None = meta.get("namespace") if isinstance(meta, dict) else None
        return found or "default"

    @staticmethod
    def _raise(error: StatusError, what: str) -> Exception:
        return error.to_api_error(what)

    def create(
        self, resource: ResourceLike, obj: Mapping[str, Any], *, namespace: str | None = None
    ) -> Object:
        """Create an object directly in storage and return it (read in the resource's version).

        Unlike a create through HTTP, the status is kept as given and the namespace need
        not exist (like writing to etcd). ``uid``, ``creationTimestamp``,
        ``resourceVersion`` and, for the kinds that track it, ``generation`` are filled
        in; the namespace defaults to the object's, then ``default``.

        Raises:
            rxkube.errors.Conflict: an object with that name exists (AlreadyExists).
            rxkube.errors.ApiError: another failure, e.g. an invalid name (422).
        """
        served = self._served(resource)
        try:
            stored = self.store.create(
                served, deep_copy(obj), self._namespace(served, namespace, obj), via_http=False
            )
        except StatusError as error:
            raise self._raise(error, f"create {served.resource.full_name}") from None
        return stored.copy_as(served.resource.api_version)

    def get(self, resource: ResourceLike, name: str, *, namespace: str | None = None) -> Object:
        """The current state of an object (a copy).

        Raises:
            rxkube.errors.NotFound: it does not exist.
        """
        served = self._served(resource)
        try:
            stored = self.store.get(served, self._namespace(served, namespace), name)
            return stored.copy_as(served.resource.api_version)
        except StatusError as error:
            raise self._raise(error, f"get {served.resource.full_name} {name}") from None

    def list(
        self,
        resource: ResourceLike,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Object]:
        """The current objects of a resource (copies), in the server's key order.

        Args:
            resource: the resource.
            namespace: one namespace; None for all.
            label_selector: a label selector, e.g. ``"app=web"``.
            field_selector: a field selector, e.g. ``"metadata.name=a"``.
        """
        served = self._served(resource)
        flt = WatchFilter(
            namespace if served.resource.namespaced else None,
            LabelSelector.parse(label_selector),
            storage_fields(served, FieldSelector.parse(field_selector)),
        )
        version = served.resource.api_version
        return [stored.copy_as(version) for stored in self.store.list(served, flt).items]

    def replace(
        self,
        resource: ResourceLike,
        obj: Mapping[str, Any],
        *,
        namespace: str | None = None,
        subresource: Literal["status"] | None = None,
    ) -> Object:
        """Replace an object (or only its status with ``subresource="status"``).

        ``metadata.resourceVersion`` in ``obj``, when set, must be current (409 otherwise);
        the status is taken as given. Removing the last finalizer of an object being
        deleted deletes it.

        Raises:
            rxkube.errors.NotFound: it does not exist.
            rxkube.errors.Conflict: its resourceVersion is stale.
        """
        served = self._served(resource)
        copied = deep_copy(obj)
        name = (copied.get("metadata") or {}).get("name", "")
        try:
            stored = self.store.update(
                served,
                self._namespace(served, namespace, copied),
                name,
                copied,
                subresource=subresource,
                via_http=False,
            )
        except StatusError as error:
            raise self._raise(error, f"replace {served.resource.full_name} {name}") from None
        return stored.copy_as(served.resource.api_version)

    def patch(
        self,
        resource: ResourceLike,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: Literal["merge", "json", "strategic"] = "merge",
        subresource: Literal["status"] | None = None,
    ) -> Object:
        """Patch an object with a JSON merge patch (a dict), a JSON patch (a list of ops) or,
        for built-in kinds, a strategic merge patch (a dict, ``patch_type="strategic"``).

        Raises:
            rxkube.errors.NotFound: it does not exist.
            rxkube.errors.Invalid: a JSON patch operation failed (e.g. a ``test``).
            rxkube.errors.ApiError: a strategic merge patch of a custom resource (415), or
                one kube-apiserver would refuse (400, 422, 500).
        """
        served = self._served(resource)
        content_type = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }[patch_type]
        try:
            apply = patch_function(content_type, deep_copy({"p": patch})["p"], served)
            stored = self.store.patch(
                served,
                self._namespace(served, namespace),
                name,
                apply,
                subresource=subresource,
                via_http=False,
            )
        except StatusError as error:
            raise self._raise(error, f"patch {served.resource.full_name} {name}") from None
        return stored.copy_as(served.resource.api_version)

    def apply(
        self,
        resource: ResourceLike,
        obj: Mapping[str, Any],
        *,
        field_manager: str,
        force: bool = False,
        namespace: str | None = None,
        subresource: Literal["status"] | None = None,
    ) -> Object:
        """Server-side apply ``obj`` as ``field_manager`` (creating it if missing).

        The same as a ``PATCH`` with ``application/apply-patch+yaml`` (``apiVersion`` and
        ``kind`` may be left out here), except that, like :meth:`create`, it needs no
        namespace to exist. Use it to arrange objects whose fields another manager owns;
        ``metadata.managedFields`` of the result record the ownership. As on
        kube-apiserver, the status of a kind with a status subresource is applied only
        with ``subresource="status"``, to an existing object.

        Raises:
            rxkube.errors.Conflict: ``obj`` changes fields another manager owns and
                ``force`` is False; the error's Status names the fields and managers.
            rxkube.errors.ApiError: another failure, e.g. a name mismatch (400).
        """
        served = self._served(resource)
        res = served.resource
        config = {"apiVersion": res.api_version, "kind": res.kind, **deep_copy(obj)}
        name = (config.get("metadata") or {}).get("name", "")
        try:
            stored, _ = self.store.apply(
                served,
                self._namespace(served, namespace, config),
                name,
                config,
                field_manager=field_manager,
                force=force,
                subresource=subresource,
                via_http=False,
            )
        except StatusError as error:
            raise self._raise(error, f"apply {res.full_name} {name}") from None
        return stored.copy_as(served.resource.api_version)

    def delete(self, resource: ResourceLike, name: str, *, namespace: str | None = None) -> Object:
        """Delete an object; returns its last state.

        An object with finalizers is only marked (``deletionTimestamp``) and stays until
        its finalizers are removed.

        Raises:
            rxkube.errors.NotFound: it does not exist.
        """
        served = self._served(resource)
        try:
            stored, _ = self.store.delete(served, self._namespace(served, namespace), name)
        except StatusError as error:
            raise self._raise(error, f"delete {served.resource.full_name} {name}") from None
        return stored.copy_as(served.resource.api_version)

    # -------------------------------------------------------------------- clients

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig (as a dict) for this server: its URL, CA and token."""
        if not self.url:
            raise RuntimeError("the test API server is not running")
        return kubeconfig_document(
            "rxkube-test",
            self.url,
            ca_pem=self._ca_pem if self._tls else None,
            token=self.token,
            namespace=namespace,
        )

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str = "default") -> Path:
        """Write a kubeconfig for this server (context ``rxkube-test``) and return its path.

        The official ``kubernetes`` client (``config.load_kube_config(path)``), kubectl
        and rxkube's own client all accept it. It holds the server's token, so it is
        readable by its owner only (mode 0600, as kubectl writes kubeconfigs), also when
        it replaces an existing file.
        """
        return write_private(path, self.kubeconfig(namespace))

    def client(self) -> Client:
        """A ready :class:`rxkube.client.Client` for this server (token and CA included).

        The server closes it when it stops, so a test leaves no connection behind.
        """
        from ..client import Client

        if not self.url:
            raise RuntimeError("the test API server is not running")
        client = Client(self.url, token=self.token, ca_file=self.ca_file, verify_ssl=True)
        self._clients.append(client)
        return client


def _check_bookmark_interval(value: object) -> None:
    """Refuse an interval a watch cannot keep: zero or less would send bookmarks in a loop."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(
            "ApiServer: bookmark_interval must be a positive number of seconds, or None for no"
            f" bookmarks, not {value!r}"
        )


def host_problem(host: object) -> str:
    """What is wrong with ``host`` as an address to listen on; ``""`` if nothing."""
    if not isinstance(host, str):
        return f"host must be an address to listen on, not {type(host).__name__} {host!r}"
    if not host.strip():
        # asyncio would listen on every interface, and the URL would name no host.
        return (
            f"host {host!r} is no address to listen on: give 0.0.0.0 (or ::) for every"
            " interface, 127.0.0.1 for this machine only"
        )
    return ""


def listens_everywhere(host: str) -> bool:
    """Whether ``host`` is a wildcard address: every interface (``0.0.0.0``, ``::``)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a host name
        return False


def _url_host(host: str) -> str:
    """The host of the URL at which a client on this machine reaches a server listening
    on ``host``: a wildcard address is where to listen, not where to connect, so loopback
    (which the generated certificate names) stands for it."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name
        return host
    if address.is_unspecified:
        address = ipaddress.ip_address("127.0.0.1" if address.version == 4 else "::1")
    return f"[{address}]" if address.version == 6 else str(address)
