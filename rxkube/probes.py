"""Health probes and metrics over HTTP: ``/livez``, ``/readyz`` and ``/metrics`` on one port.

:func:`serve` starts a small HTTP server (one daemon thread, ``rxkube-probes-<port>``) for
a controller's pod, answering as controller-runtime's and kube-apiserver's health endpoints
do: ``200 ok`` when every check passes, ``503`` with one ``[+]``/``[-]`` line per check
otherwise (``?verbose`` lists them on success too).

``/readyz``
    every store the controller reads (and every store given) has its first complete
    list, and the controller is running. Kubernetes sends no traffic to an unready pod.
``/livez``
    fails only for what a restart cures: a store whose writer stopped for good; a watch
    of this process that made no progress for longer than its idle timeout plus the
    backoff cap (its thread stuck delivering to a consumer, or dead without a word); a
    controller loop that has not answered for ``loop_timeout`` seconds, or a controller
    run that ended with an error. An API-server outage that ``default_backoff()`` is riding out fails neither
    probe: each retry is progress, and stores stay ready with their last state.
``/metrics``
    the Prometheus text format (``pip install 'rxkube[prometheus]'``): the controller's
    reconcile and queue metrics, every watch's lists, restarts, events and progress
    (:func:`rxkube.metrics.watch_stats`), and each store's size, readiness and fan-out,
    followed by the metrics of ``registry`` (prometheus_client's default registry:
    process and Python metrics, and any you registered there).

The server binds to 127.0.0.1 unless told otherwise: a pod's kubelet probes it through the
pod's own address, so pass ``host="0.0.0.0"`` (or the pod IP) there, and keep it private
elsewhere.

Example:
    >>> with serve("127.0.0.1", 8081, controller=controller) as probes:  # doctest: +SKIP
    ...     controller.run(reconcile, error_policy, ctx, stop=stop).run()
"""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._cache import Store
from ._http import ClosedOnExit
from ._telemetry import WatchSnapshot, watch_stats

if TYPE_CHECKING:
    from .controller import Controller

__all__ = ["DEFAULT_BACKOFF_CAP", "DEFAULT_LOOP_TIMEOUT", "Check", "ProbeServer", "serve"]

log = logging.getLogger(__name__)

DEFAULT_BACKOFF_CAP = 60.0
"""The longest wait of ``default_backoff()`` between retries: 30 s, plus up to 100 % jitter."""

DEFAULT_LOOP_TIMEOUT = 30.0
"""Seconds a controller loop may leave a probe's ping unanswered before it counts as wedged."""


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one health check.

    Attributes:
        name: what was checked, e.g. ``"store configmaps"``.
        ok: whether it passed.
        detail: why it failed (empty when it passed).
    """

    name: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        """The check as kube-apiserver prints it: ``[+]name ok`` or ``[-]name failed: why``."""
        return f"[+]{self.name} ok" if self.ok else f"[-]{self.name} failed: {self.detail}"


class ProbeServer(ClosedOnExit):
    """A running probe server; see :func:`serve`. Close it (or use ``with``) to stop it.

    Attributes:
        host: the address it listens on.
        port: the port it listens on (the one picked, if 0 was asked for).
        url: ``http://host:port``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        controller: Controller | None,
        stores: Iterable[Store],
        metrics: bool,
        registry: Any,
        backoff_cap: float,
        loop_timeout: float,
    ) -> None:
        if backoff_cap < 0 or loop_timeout <= 0:
            raise ValueError(
                f"serve() needs backoff_cap >= 0 and loop_timeout > 0, got {backoff_cap!r},"
                f" {loop_timeout!r}"
            )
        self._controller = controller
        own = list(controller.stores) if controller is not None else []
        self._stores = list(dict.fromkeys([*own, *stores]))  # each once, in order
        self._backoff_cap = backoff_cap
        self._loop_timeout = loop_timeout
        self._render_metrics = _metrics_renderer(self, registry) if metrics else None
        handler = _handler(self)
        try:
            self._server = _Server((host, port), handler)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot serve probes on {host}:{port}: {exc.strerror}"
            ) from None
        self.host = host
        self.port: int = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name=f"rxkube-probes-{self.port}",
            daemon=True,
        )
        self._thread.start()

    # -- the checks ---------------------------------------------------------------------

    def ready(self) -> list[Check]:
        """The readiness checks, as ``/readyz`` runs them."""
        checks = [
            Check(f"store {reader.describe()}", ok, "" if ok else "not listed yet")
            for reader in self._stores
            for ok in (reader.is_ready(),)
        ]
        if self._controller is not None:
            health = self._controller.health()
            checks.append(
                Check(
                    f"controller {self._controller.name}",
                    health.running and not health.stopping,
                    "stopping" if health.stopping else "not running",
                )
            )
        return checks

    def live(self) -> list[Check]:
        """The liveness checks, as ``/livez`` runs them."""
        checks = [_writer_check(reader) for reader in self._stores]
        now = time.monotonic()
        for stats in watch_stats():
            checks.append(self._watch_check(stats.snapshot(), now))
        if self._controller is not None:
            checks.append(self._controller_check(self._controller))
        return checks

    def _watch_check(self, snap: WatchSnapshot, now: float) -> Check:
        limit = snap.idle_timeout + self._backoff_cap
        stalled = snap.stalled_for(now)
        if stalled <= limit:
            return Check(f"watch {snap.name}", True)
        why = f"; it last failed with {snap.error!r:.200}" if snap.error is not None else ""
        return Check(
            f"watch {snap.name}",
            False,
            f"no progress for {stalled:.0f} s (limit {limit:g} s: idle timeout plus backoff cap){why}",
        )

    def _controller_check(self, controller: Controller) -> Check:
        name = f"controller {controller.name}"
        health = controller.health()
        if health.error is not None:
            return Check(name, False, f"its run ended with an error: {health.error!r:.200}")
        if health.loop_lag > self._loop_timeout:
            return Check(
                name,
                False,
                f"its loop has not answered for {health.loop_lag:.0f} s"
                f" (limit {self._loop_timeout:g} s)",
            )
        return Check(name, True)

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving and wait for the server thread to end; idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __repr__(self) -> str:
        return f"<ProbeServer {self.url}>"


def serve(
    host: str = "127.0.0.1",
    port: int = 8081,
    *,
    controller: Controller | None = None,
    stores: Iterable[Store] = (),
    metrics: bool = True,
    registry: Any = None,
    backoff_cap: float = DEFAULT_BACKOFF_CAP,
    loop_timeout: float = DEFAULT_LOOP_TIMEOUT,
) -> ProbeServer:
    """Serve ``/livez``, ``/readyz`` and ``/metrics`` for a controller (see the module docs).

    Args:
        host: the address to listen on; ``127.0.0.1`` unless told otherwise.
        port: the port; 0 picks a free one (read it from ``ProbeServer.port``).
        controller: its stores count for readiness and liveness, its loop and run for
            liveness, its metrics for ``/metrics``.
        stores: more stores to check (and export), e.g. a shared store's reader.
        metrics: serve ``/metrics``; needs ``prometheus_client``.
        registry: a ``prometheus_client.CollectorRegistry`` whose metrics ``/metrics``
            appends (default: prometheus_client's ``REGISTRY``). Do not also register the
            controller's metrics there, or they appear twice.
        backoff_cap: the longest backoff wait of the watches, in seconds: a watch
            without progress for its idle timeout plus this long fails ``/livez``.
        loop_timeout: seconds the controller loop may take to answer before ``/livez``
            fails.

    Returns:
        The running server; close it to stop.

    Raises:
        ImportError: ``metrics=True`` without ``prometheus_client`` installed.
        OSError: the address cannot be bound (in use, not local).
        ValueError: ``backoff_cap`` is negative or ``loop_timeout`` is not positive.
    """
    return ProbeServer(
        host,
        port,
        controller=controller,
        stores=stores,
        metrics=metrics,
        registry=registry,
        backoff_cap=backoff_cap,
        loop_timeout=loop_timeout,
    )


def _writer_check(reader: Store) -> Check:
    """A store whose writer's pipeline has stopped (nothing retries it) is stale for good."""
    name = f"store {reader.describe()}"
    status = reader.writer_status()
    if status.state != "stopped":
        return Check(name, True)
    why = f" with {status.error!r:.200}" if status.error is not None else ""
    ago = time.time() - status.since
    return Check(name, False, f"its writer stopped {ago:.0f} s ago{why}")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # The kubelet probes often; a restarted pod must rebind its port at once.
    allow_reuse_address = True


def _handler(probes: ProbeServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "rxkube-probes"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            verbose = "verbose" in parts.query.split("&")
            if parts.path == "/livez":
                self._health("livez", probes.live, verbose)
            elif parts.path == "/readyz":
                self._health("readyz", probes.ready, verbose)
            elif parts.path == "/metrics" and probes._render_metrics is not None:
                body, content_type = probes._render_metrics()
                self._send(200, body, content_type)
            else:
                self._send(404, b"404 page not found\n")

        def _health(self, what: str, run: Callable[[], list[Check]], verbose: bool) -> None:
            try:
                checks = run()
            except Exception as exc:  # a probe must answer, never hang up
                log.exception("%s: a check raised", what)
                checks = [Check("checks", False, f"a check raised {exc!r:.200}")]
            ok = all(check.ok for check in checks)
            if ok and not verbose:
                text = "ok\n"
            else:
                lines = [check.line() for check in checks]
                lines.append(f"{what} check {'passed' if ok else 'failed'}")
                text = "\n".join(lines) + "\n"
            self._send(200 if ok else 503, text.encode())

        def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


def _metrics_renderer(probes: ProbeServer, registry: Any) -> Callable[[], tuple[bytes, str]]:
    try:
        import prometheus_client
        from prometheus_client.exposition import generate_latest
    except ImportError as exc:
        raise ImportError(
            "serving /metrics needs prometheus_client: pip install 'rxkube[prometheus]'"
            " (or pass metrics=False)"
        ) from exc
    from .metrics import store_collector, watch_collector

    own = prometheus_client.CollectorRegistry(auto_describe=False)
    if probes._controller is not None:
        own.register(probes._controller.metrics.collector())
    own.register(watch_collector())
    own.register(store_collector(probes._stores))
    extra = prometheus_client.REGISTRY if registry is None else registry

    def render() -> tuple[bytes, str]:
        return generate_latest(own) + generate_latest(extra), "text/plain; version=0.0.4"

    return render
