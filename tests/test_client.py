"""Client and Api over real HTTP: configuration, TLS, auth, CRUD, discovery, streams."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import ipaddress
import logging
import math
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web
from kubernetes import client as k8s_client

from rxkube.client import ACCEPT_METADATA, Api, Cancellation, Client, WatchStream
from rxkube.errors import (
    ConfigError,
    Conflict,
    DecodeError,
    Invalid,
    NotFound,
    TooManyRequests,
    TransportError,
    Unauthorized,
    WatchStalled,
)
from rxkube.resource import Resource
from rxkube.testing import ApiServer

TOKEN = "s3cret"

# -- a throwaway server for raw stream behaviour (stalls, truncation, chunk boundaries) ---


class RawServer:
    """An aiohttp app on its own loop thread, only for transport behaviour the test API
    server has no reason to offer: chunk boundaries, half-sent lines, silent sockets."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self.loop = asyncio.new_event_loop()
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_get("/stall", self._stall)
        app.router.add_get("/split", self._split_lines)
        app.router.add_get("/truncated", self._truncated)
        app.router.add_get("/no-headers", self._no_headers)
        app.router.add_get("/throttled", self._throttled)
        app.router.add_get("/whoami", self._whoami)
        app.router.add_get("/api/v1/pods", self._web_page)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        self._port = 0
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="test-raw-server", daemon=True
        )
        self._thread.start()
        assert ready.wait(5.0), "raw server did not start"

    def _run(self, ready: threading.Event) -> None:
        async def start() -> None:
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context)
            await site.start()
            self._port = self._runner.addresses[0][1]

        self.loop.run_until_complete(start())
        ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self._port}"

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._release.set)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        assert not self._thread.is_alive()

    async def _stall(self, request: web.Request) -> web.StreamResponse:
        """One line, then silence until the test ends."""
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b'{"type":"ADDED"}\n')
        await self._release.wait()
        return response

    async def _split_lines(self, request: web.Request) -> web.StreamResponse:
        """Lines cut across chunk boundaries, blank lines, a last line without newline."""
        response = web.StreamResponse()
        await response.prepare(request)
        for piece in (b'{"a":', b"1}\n\n", b'{"b":2}\n{"c"', b":3}\n", b"\n", b'{"d":4}'):
            await response.write(piece)
        await response.write_eof()
        return response

    async def _truncated(self, request: web.Request) -> web.StreamResponse:
        """A complete line, half a line, then the connection drops before the last chunk."""
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b'{"a":1}\n{"b":')
        assert request.transport is not None
        request.transport.close()
        return response

    async def _no_headers(self, request: web.Request) -> web.StreamResponse:
        """Accepts the request and never answers."""
        await self._release.wait()
        return web.Response()

    async def _throttled(self, request: web.Request) -> web.StreamResponse:
        """429 with Retry-After and a plain-text body, as a proxy might send."""
        return web.Response(status=429, text="slow down\n", headers={"Retry-After": "7"})

    async def _web_page(self, request: web.Request) -> web.StreamResponse:
        """What an ordinary web server at the wrong address answers."""
        page = "<!DOCTYPE HTML><html><head><title>Error response</title></head>"
        page += "<body><h1>Error response</h1><p>Error code: 404</p></body></html>"
        return web.Response(status=404, text=page, content_type="text/html")

    async def _whoami(self, request: web.Request) -> web.StreamResponse:
        """The common name of the client certificate the TLS handshake verified."""
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(pair[0] for pair in (peer or {}).get("subject", ()))
        return web.json_response({"user": subject.get("commonName")})


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.close()


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _read_in_thread(
    stream: WatchStream,
) -> tuple[threading.Thread, list[bytes], list[BaseException]]:
    lines: list[bytes] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for line in stream.lines():
                lines.append(line)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="rxkube-test-reader", daemon=True)
    thread.start()
    return thread, lines, errors


# -- streams -------------------------------------------------------------------------------


def _close_ends_the_read_within_a_second(
    stream: WatchStream, thread: threading.Thread, errors: list[BaseException]
) -> None:
    started = time.monotonic()
    stream.close()
    thread.join(1.0)
    assert not thread.is_alive(), "lines() still blocked 1 s after close()"
    assert time.monotonic() - started < 1.0
    assert errors == []


def test_lines_are_split_across_chunks_and_blank_lines_dropped(raw_server: RawServer) -> None:
    with Client(raw_server.url) as client, client.stream("/split", idle_timeout=5) as stream:
        assert stream.status == 200
        assert list(stream.lines()) == [b'{"a":1}', b'{"b":2}', b'{"c":3}', b'{"d":4}']


def test_close_from_another_thread_ends_a_blocked_read_within_a_second(
    raw_server: RawServer,
) -> None:
    baseline = _open_sockets()
    client = Client(raw_server.url)
    stream = client.stream("/stall", idle_timeout=30)
    thread, lines, errors = _read_in_thread(stream)
    # After the first line the reader is back in recv(), waiting for data that never comes.
    assert wait_until(lambda: bool(lines) and stream._reading)
    _close_ends_the_read_within_a_second(stream, thread, errors)
    stream.close()  # idempotent
    client.close()
    assert wait_until(lambda: _open_sockets() <= baseline), "a socket was left open"


def test_idle_stream_raises_watch_stalled(raw_server: RawServer) -> None:
    with Client(raw_server.url) as client, client.stream("/stall", idle_timeout=0.3) as stream:
        lines = stream.lines()
        assert next(lines) == b'{"type":"ADDED"}'
        started = time.monotonic()
        with pytest.raises(WatchStalled, match=r"no data for 0\.3 s"):
            next(lines)
        assert 0.25 < time.monotonic() - started < 3


def test_missing_response_headers_raise_watch_stalled(raw_server: RawServer) -> None:
    with Client(raw_server.url) as client, pytest.raises(WatchStalled, match="/no-headers"):
        client.stream("/no-headers", idle_timeout=0.3)


def test_truncated_stream_raises_transport_error(raw_server: RawServer) -> None:
    with Client(raw_server.url) as client, client.stream("/truncated", idle_timeout=5) as stream:
        lines = stream.lines()
        assert next(lines) == b'{"a":1}'
        with pytest.raises(TransportError, match="connection broken") as info:
            next(lines)
        assert not isinstance(info.value, WatchStalled)


def test_stream_closed_before_reading_yields_nothing(raw_server: RawServer) -> None:
    with Client(raw_server.url) as client:
        stream = client.stream("/stall", idle_timeout=5)
        stream.close()
        assert list(stream.lines()) == []


def test_stream_error_reads_a_non_status_body(raw_server: RawServer) -> None:
    with Client(raw_server.url) as client:
        stream = client.stream("/throttled", idle_timeout=5)
        assert stream.status == 429
        err = stream.error()
        assert isinstance(err, TooManyRequests)
        assert err.retry_after == 7.0
        assert err.message == (
            "the server answered HTTP 429 (text/plain): slow down, with no Kubernetes Status"
            " object: is this the address of a Kubernetes API server?"
        )
        assert "GET /throttled" in str(err)


def test_an_answer_from_a_web_server_says_it_is_not_an_api_server(raw_server: RawServer) -> None:
    with Client(raw_server.url) as client, pytest.raises(NotFound) as caught:
        Api(client, "pods").list()
    assert caught.value.message == (
        "the server answered HTTP 404 (text/html): Error response, with no Kubernetes Status"
        " object: is this the address of a Kubernetes API server?"
    )
    assert "<" not in str(caught.value)


def test_a_body_that_is_not_json_is_a_decode_error(raw_server: RawServer) -> None:
    with Client(raw_server.url) as client:
        response = client.request("GET", "/throttled")
        with pytest.raises(DecodeError, match="GET /throttled"):
            response.json()


def test_connection_refused_raises_transport_error_naming_server_and_request() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = f"http://127.0.0.1:{port}"
    with Client(server, connect_timeout=2) as client:
        with pytest.raises(TransportError) as info:
            client.request("GET", "/api/v1/pods")
        assert str(info.value) == f"GET /api/v1/pods on {server} failed: connection refused"
        with pytest.raises(TransportError, match="connection refused"):
            client.stream("/api/v1/pods", params={"watch": "1"}, idle_timeout=1)


# -- the test API server -------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with ApiServer(bookmark_interval=None) as srv:
        yield srv


@pytest.fixture
def tls_server() -> Iterator[ApiServer]:
    with ApiServer(token=TOKEN, tls=True, bookmark_interval=None) as srv:
        yield srv


@pytest.fixture
def client(server: ApiServer) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c


def _write_yaml(path: Path, document: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(document))
    return str(path)


def _names(listing: dict[str, Any]) -> list[str]:
    return sorted(item["metadata"]["name"] for item in listing["items"])


def _configmap(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


# -- configuration: kubeconfig, exec plugins, in-cluster, Configuration ---------------------


def test_kubeconfig_with_token_and_ca_connects(tls_server: ApiServer, tmp_path: Path) -> None:
    path = tls_server.write_kubeconfig(tmp_path / "config")
    with Client.from_kubeconfig(str(path)) as client:
        assert client.server == tls_server.url
        assert "default" in _names(Api(client, "namespaces").list())


def test_kubeconfig_from_the_kubeconfig_variable(
    tls_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing"
    path = tls_server.write_kubeconfig(tmp_path / "config")
    monkeypatch.setenv("KUBECONFIG", f"{missing}{os.pathsep}{path}")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with Client.default() as client:
        assert client.server == tls_server.url


def test_request_without_token_is_a_401_and_api_raises_unauthorized(
    tls_server: ApiServer,
) -> None:
    with Client(tls_server.url, ca_file=tls_server.ca_file) as client:
        response = client.request("GET", "/api/v1/namespaces")
        assert response.status == 401
        with pytest.raises(Unauthorized) as info:
            response.raise_for_status()
        assert info.value.status["kind"] == "Status"
        with pytest.raises(Unauthorized, match="GET /api/v1/namespaces/default/configmaps/x"):
            Api(client, "configmaps", namespace="default").get("x")


def test_untrusted_server_certificate_raises_transport_error(tls_server: ApiServer) -> None:
    with Client(tls_server.url, token=TOKEN) as client, pytest.raises(TransportError) as info:
        client.request("GET", "/api/v1/namespaces")
    message = str(info.value)
    assert message.startswith(f"GET /api/v1/namespaces on {tls_server.url} failed: TLS certificate")
    assert "\n" not in message


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_insecure_skip_tls_verify_accepts_any_certificate(
    tls_server: ApiServer, tmp_path: Path
) -> None:
    config = tls_server.kubeconfig()
    cluster = config["clusters"][0]["cluster"]
    del cluster["certificate-authority-data"]
    cluster["insecure-skip-tls-verify"] = True
    with Client.from_kubeconfig(_write_yaml(tmp_path / "config", config)) as client:
        assert client.request("GET", "/api/v1/namespaces").status == 200


def test_named_context_is_used_and_an_unknown_one_is_a_config_error(
    tls_server: ApiServer, tmp_path: Path
) -> None:
    config = tls_server.kubeconfig()
    config["clusters"].append({"name": "elsewhere", "cluster": {"server": "https://192.0.2.1"}})
    config["contexts"].append({"name": "prod", "context": {"cluster": "elsewhere", "user": "x"}})
    config["current-context"] = "prod"
    path = _write_yaml(tmp_path / "config", config)
    with Client.from_kubeconfig(path) as current:
        assert current.server == "https://192.0.2.1"
    with Client.from_kubeconfig(path, context="rxkube-test") as named:
        assert named.request("GET", "/api/v1/namespaces").status == 200
    with pytest.raises(ConfigError) as info:
        Client.from_kubeconfig(path, context="staging")
    assert str(info.value) == (
        f"context 'staging' not found in kubeconfig {path} (contexts: rxkube-test, prod)"
    )


def test_missing_configuration_is_one_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"no kubeconfig found at .*missing"):
        Client.from_kubeconfig(str(tmp_path / "missing"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError) as info:
        Client.default()
    assert "not in a cluster" in str(info.value)
    assert "no kubeconfig found" in str(info.value)


class RecordingProxy:
    """An HTTP proxy that records each request it is sent and answers 502 to all of them."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                seen.append(self.path)
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def env_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingProxy]:
    """A recording proxy named by ``http_proxy``; ``no_proxy`` unset."""
    proxy = RecordingProxy()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("http_proxy", proxy.url)
    yield proxy
    proxy.close()


def _routable_address() -> str:
    """This machine's address on its default route (not loopback), for a server there."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # no packet is sent: it only picks a route
        except OSError:
            pytest.skip("this machine has no IPv4 route besides loopback")
        return str(probe.getsockname()[0])


def _status_through_kubeconfig(srv: ApiServer, tmp_path: Path) -> int:
    with Client.from_kubeconfig(_write_yaml(tmp_path / "config", srv.kubeconfig())) as client:
        return client.request("GET", "/api/v1/namespaces/default").status


@pytest.mark.parametrize(
    ("no_proxy", "direct"),
    [
        ("{net}", True),
        ("example.com, {net}", True),
        ("{ip}", True),
        ("{ip}:{port}", True),
        ("*", True),
        ("{ip}:1", False),
        ("198.51.100.0/24", False),
        ("", False),
    ],
)
def test_no_proxy_takes_ip_literals_and_cidr_blocks_as_client_go_does(
    env_proxy: RecordingProxy,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    no_proxy: str,
    direct: bool,
) -> None:
    address = _routable_address()
    with ApiServer(host=address, bookmark_interval=None) as srv:
        network = ipaddress.ip_network(f"{address}/24", strict=False)
        port = srv.url.rsplit(":", 1)[1]
        monkeypatch.setenv("no_proxy", no_proxy.format(net=network, ip=address, port=port))
        status = _status_through_kubeconfig(srv, tmp_path)
    if direct:
        assert (status, env_proxy.seen) == (200, [])
    else:
        assert (status, env_proxy.seen) == (502, [f"{srv.url}/api/v1/namespaces/default"])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_proxy_from_the_environment_never_carries_loopback_traffic(
    env_proxy: RecordingProxy, tmp_path: Path, host: str
) -> None:
    with ApiServer(bookmark_interval=None) as srv:
        config = srv.kubeconfig()
        cluster = config["clusters"][0]["cluster"]
        cluster["server"] = cluster["server"].replace("127.0.0.1", host)
        with Client.from_kubeconfig(_write_yaml(tmp_path / "config", config)) as client:
            assert client.request("GET", "/api/v1/namespaces/default").status == 200
    assert env_proxy.seen == []


def test_a_kubeconfig_proxy_url_carries_loopback_traffic_too(tmp_path: Path) -> None:
    proxy = RecordingProxy()
    try:
        with ApiServer(bookmark_interval=None) as srv:
            config = srv.kubeconfig()
            config["clusters"][0]["cluster"]["proxy-url"] = proxy.url
            with Client.from_kubeconfig(_write_yaml(tmp_path / "config", config)) as client:
                assert client.request("GET", "/api/v1/namespaces/default").status == 502
        assert proxy.seen == [f"{srv.url}/api/v1/namespaces/default"]
    finally:
        proxy.close()


@pytest.mark.parametrize(
    ("url", "no_proxy", "bypassed"),
    [
        ("https://api.example.com", "example.com", True),
        ("https://example.com", "example.com", True),
        ("https://notexample.com", "example.com", False),
        ("https://api.example.com", ".example.com", True),
        ("https://example.com", ".example.com", False),
        ("https://api.example.com", "*.example.com", True),
        ("https://example.com", "*.example.com", False),
        ("https://api.example.com", "example.com:443", True),
        ("https://api.example.com:6443", "example.com:443", False),
        ("http://api.example.com", "example.com:80", True),
        ("https://API.Example.com", " EXAMPLE.com ", True),
        ("https://10.1.2.3", "10.0.0.0/8", True),
        ("https://10.1.2.3", "10.1.2.3/8", True),
        ("https://11.1.2.3", "10.0.0.0/8", False),
        ("https://10.1.2.3", "10.1.2.3", True),
        ("https://10.1.2.3:6443", "10.1.2.3:6443", True),
        ("https://10.1.2.3:6443", "10.1.2.3:443", False),
        ("https://[fd00::1]:6443", "fd00::/8", True),
        ("https://[fd00::1]:6443", "[fd00::1]:6443", True),
        ("https://[fd00::1]:6443", "fd00::1", True),
        ("https://[fd00::1]:6443", "[fd00::1]:443", False),
        ("https://10.1.2.3", "10.0.0.0/33, example.com", False),
        ("https://kubernetes.default.svc", ".svc", True),
        ("https://anything", "a.b, *", True),
        ("https://anything", ":443, ,", False),
        ("https://127.0.0.1", "", True),
        ("https://[::1]", "", True),
        ("https://localhost:6443", "", True),
    ],
)
def test_no_proxy_entries_match_as_gos_httpproxy_matches_them(
    url: str, no_proxy: str, bypassed: bool
) -> None:
    from rxkube._kubeconfig import _bypasses_proxy

    assert _bypasses_proxy(url, no_proxy, loopback=True) is bypassed


def _exec_plugin(tmp_path: Path, token: str, expires_in: datetime.timedelta) -> Path:
    """A kubeconfig whose user runs an exec credential plugin; each run is logged."""
    script = tmp_path / "plugin.py"
    script.write_text(
        "import datetime, json, pathlib\n"
        f"pathlib.Path({str(tmp_path / 'runs')!r}).open('a').write('run\\n')\n"
        "expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta("
        f"seconds={expires_in.total_seconds()})\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1',"
        " 'kind': 'ExecCredential', 'status': {"
        f"'token': {token!r}, 'expirationTimestamp': expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}}}}))\n"
    )
    return script


def _runs(tmp_path: Path) -> int:
    runs = tmp_path / "runs"
    return len(runs.read_text().splitlines()) if runs.exists() else 0


@pytest.mark.parametrize(
    ("expires_in", "runs_after_two_requests"),
    [(datetime.timedelta(hours=1), 1), (datetime.timedelta(minutes=1), 3)],
    ids=["valid-token-is-kept", "expiring-token-is-refreshed"],
)
def test_exec_plugin_token_is_used_and_refreshed_when_expiring(
    tls_server: ApiServer,
    tmp_path: Path,
    expires_in: datetime.timedelta,
    runs_after_two_requests: int,
) -> None:
    script = _exec_plugin(tmp_path, TOKEN, expires_in)
    config = tls_server.kubeconfig()
    config["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(script)],
        }
    }
    with Client.from_kubeconfig(_write_yaml(tmp_path / "config", config)) as client:
        assert _runs(tmp_path) == 1
        namespaces = Api(client, "namespaces")
        namespaces.get("default")
        namespaces.get("kube-system")
        # Within five minutes of expiry the loader runs the plugin again before a request.
        assert _runs(tmp_path) == runs_after_two_requests


def test_a_credential_plugin_without_a_time_limit_runs_to_its_answer(
    tls_server: ApiServer, tmp_path: Path
) -> None:
    config = tls_server.kubeconfig()
    script = _exec_plugin(tmp_path, TOKEN, datetime.timedelta(seconds=1))
    exec_config = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable}
    config["users"][0]["user"] = {"exec": {**exec_config, "args": [str(script)]}}
    path = _write_yaml(tmp_path / "config", config)
    with Client.from_kubeconfig(path, exec_timeout=math.inf) as client:
        assert "default" in _names(Api(client, "namespaces").list())  # run again: expiring
    assert _runs(tmp_path) == 2


def _hanging_plugin(tmp_path: Path, answers_first: bool) -> dict[str, Any]:
    """An exec user whose plugin writes its pid, then (after a first answer with a token
    about to expire, if ``answers_first``) waits for ever on a child of its own."""
    script = tmp_path / "hang.sh"
    token = orjson.dumps(
        {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "kind": "ExecCredential",
            "status": {"token": TOKEN, "expirationTimestamp": "2000-01-01T00:00:00Z"},
        }
    ).decode()
    first = f"if [ ! -e {tmp_path}/answered ]; then touch {tmp_path}/answered; echo '{token}'; exit 0; fi\n"
    script.write_text(
        "#!/bin/sh\n"
        + (first if answers_first else "")
        + f"sleep 600 & echo $! > {tmp_path}/pid\nwait\n"
    )
    script.chmod(0o755)
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(script)}}


def _stopped(tmp_path: Path) -> bool:
    """Whether the plugin's child (and so the plugin's process group) is gone."""
    pid = int((tmp_path / "pid").read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_credential_plugin_that_never_answers_is_a_config_error_and_is_killed(
    tls_server: ApiServer, tmp_path: Path
) -> None:
    config = tls_server.kubeconfig()
    config["users"][0]["user"] = _hanging_plugin(tmp_path, answers_first=False)
    path = _write_yaml(tmp_path / "config", config)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"hang\.sh' did not answer within 1 s; it was stopped"):
        Client.from_kubeconfig(path, exec_timeout=1.0)
    assert time.monotonic() - started < 20
    assert wait_until(lambda: _stopped(tmp_path))


def test_a_token_refresh_whose_plugin_never_answers_fails_that_request(
    tls_server: ApiServer, tmp_path: Path
) -> None:
    config = tls_server.kubeconfig()
    config["users"][0]["user"] = _hanging_plugin(tmp_path, answers_first=True)
    path = _write_yaml(tmp_path / "config", config)
    with (
        Client.from_kubeconfig(path, exec_timeout=1.0) as c,
        pytest.raises(ConfigError, match="did not answer within 1 s"),
    ):
        Api(c, "namespaces").get("default")
    assert wait_until(lambda: _stopped(tmp_path))


def test_closing_the_client_stops_a_token_refresh_under_way_and_the_requests_waiting_for_it(
    tls_server: ApiServer, tmp_path: Path
) -> None:
    config = tls_server.kubeconfig()
    config["users"][0]["user"] = _hanging_plugin(tmp_path, answers_first=True)
    path = _write_yaml(tmp_path / "config", config)
    client = Client.from_kubeconfig(path, exec_timeout=120.0)
    namespaces = Api(client, "namespaces")
    with ThreadPoolExecutor(2) as pool:
        refreshing = pool.submit(namespaces.get, "default")
        assert wait_until(lambda: (tmp_path / "pid").exists()), "the plugin never ran again"
        waiting = pool.submit(namespaces.get, "kube-system")
        started = time.monotonic()
        client.close()
        with pytest.raises(ConfigError, match=r"hang\.sh' was stopped: the client was closed"):
            refreshing.result(20)
        with pytest.raises(ConfigError, match=r"hang\.sh' was not run: the client is closed"):
            waiting.result(20)
        assert time.monotonic() - started < 20, "close waited for the plugin's deadline"
    assert wait_until(lambda: _stopped(tmp_path))


def test_a_credential_plugin_that_fails_is_a_config_error_with_its_words(
    tls_server: ApiServer, tmp_path: Path
) -> None:
    script = tmp_path / "fail.sh"
    script.write_text("#!/bin/sh\necho 'cannot reach the identity provider' >&2\nexit 3\n")
    script.chmod(0o755)
    config = tls_server.kubeconfig()
    exec_config = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(script)}
    config["users"][0]["user"] = {"exec": exec_config}
    with pytest.raises(ConfigError) as info:
        Client.from_kubeconfig(_write_yaml(tmp_path / "config", config))
    assert str(info.value) == (
        f"the credential plugin {str(script)!r} failed with exit status 3:"
        " cannot reach the identity provider"
    )


def _failing_plugin(tmp_path: Path, good_runs: int, output: str = "") -> dict[str, Any]:
    """A user whose exec credential plugin gives a token expiring within a minute for its
    first ``good_runs`` runs, then prints ``output`` and complains on stderr with status 1
    (or, with ``output``, exits 0 with that output and no credentials)."""
    script = tmp_path / "plugin.py"
    script.write_text(
        "import datetime, json, pathlib, sys\n"
        f"runs = pathlib.Path({str(tmp_path / 'runs')!r})\n"
        "runs.open('a').write('run\\n')\n"
        f"if len(runs.read_text().splitlines()) > {good_runs}:\n"
        f"    print({output!r})\n"
        "    print('cannot reach the identity provider', file=sys.stderr)\n"
        f"    sys.exit({0 if output else 1})\n"
        "expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1',"
        " 'kind': 'ExecCredential', 'status': {"
        f"'token': {TOKEN!r}, 'expirationTimestamp': expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}}}}))\n"
    )
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(script)],
        }
    }


@pytest.mark.parametrize(
    ("output", "said"),
    [
        ("", "failed with exit status 1: cannot reach the identity provider"),
        (
            '{"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",'
            ' "status": {}}',
            "answered neither a token nor a client certificate and key",
        ),
    ],
    ids=["exits-1", "gives-no-credentials"],
)
def test_a_credential_plugin_that_fails_is_a_config_error_naming_it(
    tls_server: ApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, output: str, said: str
) -> None:
    """Not a client without credentials whose first request is a bare 401 (or, with
    anonymous auth, a 403 for system:anonymous)."""
    config = tls_server.kubeconfig()
    config["users"][0]["user"] = _failing_plugin(tmp_path, 0, output)
    path = _write_yaml(tmp_path / "config", config)
    with caplog.at_level(logging.ERROR), pytest.raises(ConfigError) as info:
        Client.from_kubeconfig(path)
    assert str(info.value) == f"the credential plugin {sys.executable!r} {said}"
    assert not caplog.records  # raised, not logged


def test_a_credential_plugin_that_fails_to_renew_the_token_fails_the_request_naming_it(
    tls_server: ApiServer, tmp_path: Path
) -> None:
    """The loader keeps the expired token when the plugin fails: the request would go
    out with it and come back a 401 that says nothing of the plugin."""
    config = tls_server.kubeconfig()
    config["users"][0]["user"] = _failing_plugin(tmp_path, 1)
    with Client.from_kubeconfig(_write_yaml(tmp_path / "config", config)) as client:
        namespaces = Api(client, "namespaces")
        refusal = (
            r"the credential plugin '.*' failed with exit status 1: cannot reach the identity"
            r" provider"
        )
        before = len(tls_server.requests)
        with pytest.raises(ConfigError, match=refusal):
            namespaces.get("default")  # within five minutes of expiry: renewed first
        with pytest.raises(ConfigError, match=refusal):
            namespaces.get("default")  # the next request tries again
        assert _runs(tmp_path) == 3
        assert len(tls_server.requests) == before  # nothing sent with the expired token


def test_tls_server_name_is_the_name_verified(tls_server: ApiServer) -> None:
    ca = tls_server.ca_file
    with Client(tls_server.url, token=TOKEN, ca_file=ca, tls_server_name="localhost") as client:
        assert client.request("GET", "/api/v1/namespaces").status == 200
    with (
        Client(tls_server.url, ca_file=ca, tls_server_name="wrong.example") as client,
        pytest.raises(TransportError, match=r"not valid for 'wrong\.example'"),
    ):
        client.request("GET", "/api/v1/namespaces")


def test_in_cluster_service_account(
    tls_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", tls_server.url.rsplit(":", 1)[1])
    assert tls_server.ca_file is not None
    with Client.in_cluster(token_file=str(token_file), ca_file=tls_server.ca_file) as client:
        assert client.server == tls_server.url
        assert Api(client, "namespaces").get("default")["metadata"]["name"] == "default"


def test_default_outside_a_pod_without_service_account_falls_back_to_kubeconfig(
    tls_server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("KUBECONFIG", str(tls_server.write_kubeconfig(tmp_path / "config")))
    with Client.default() as client:
        assert client.server == tls_server.url
    with pytest.raises(ConfigError, match="not running in a Kubernetes cluster"):
        Client.in_cluster()


def test_from_configuration_refreshes_the_token_before_each_request(
    tls_server: ApiServer,
) -> None:
    configuration = k8s_client.Configuration(
        host=tls_server.url,
        api_key={"authorization": "expired"},
        api_key_prefix={"authorization": "Bearer"},
        ssl_ca_cert=tls_server.ca_file,
    )
    refreshed: list[str] = []

    def refresh(cfg: k8s_client.Configuration) -> None:
        refreshed.append("refresh")
        cfg.api_key["authorization"] = TOKEN

    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]
    with Client.from_configuration(configuration) as client:
        namespaces = Api(client, "namespaces")
        namespaces.get("default")
        namespaces.get("kube-system")
    assert refreshed == ["refresh", "refresh"]


def _issue_pki(directory: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for "jane"."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])

    def certificate(name: str, key: Any, *, ca: bool, san: Any = None) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    files: dict[str, str] = {}

    def write(name: str, data: bytes) -> None:
        files[name] = str(directory / name)
        (directory / name).write_bytes(data)

    def key_pem(key: Any) -> bytes:
        return bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    pem = serialization.Encoding.PEM
    write("ca.crt", certificate("test CA", ca_key, ca=True).public_bytes(pem))
    server_key = ec.generate_private_key(ec.SECP256R1())
    loopback = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    write("server.crt", certificate("server", server_key, ca=False, san=loopback).public_bytes(pem))
    write("server.key", key_pem(server_key))
    client_key = ec.generate_private_key(ec.SECP256R1())
    write("client.crt", certificate("jane", client_key, ca=False).public_bytes(pem))
    write("client.key", key_pem(client_key))
    return files


def test_client_certificate_from_kubeconfig_is_presented(tmp_path: Path) -> None:
    pki = _issue_pki(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki["ca.crt"])
    context.load_cert_chain(pki["server.crt"], pki["server.key"])
    context.verify_mode = ssl.CERT_REQUIRED
    mtls = RawServer(context)
    try:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "c",
                    "cluster": {"server": mtls.url, "certificate-authority": pki["ca.crt"]},
                }
            ],
            "users": [
                {
                    "name": "jane",
                    "user": {
                        "client-certificate": pki["client.crt"],
                        "client-key": pki["client.key"],
                    },
                }
            ],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "jane"}}],
            "current-context": "c",
        }
        with Client.from_kubeconfig(_write_yaml(tmp_path / "config", config)) as client:
            assert client.request("GET", "/whoami").json() == {"user": "jane"}
        with Client(mtls.url, ca_file=pki["ca.crt"]) as anonymous, pytest.raises(TransportError):
            anonymous.request("GET", "/whoami")
    finally:
        mtls.close()


def test_unreadable_client_certificate_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load client certificate"):
        Client("https://127.0.0.1:1", client_cert_file=str(tmp_path / "nope.crt"))


# -- CRUD ------------------------------------------------------------------------------------


def test_create_get_replace_delete_round_trip(client: Client) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    created = configmaps.create(_configmap("a"))
    assert created["metadata"]["namespace"] == "default"
    assert configmaps.get("a")["data"] == {"k": "v"}
    with pytest.raises(Conflict, match="POST /api/v1/namespaces/default/configmaps"):
        configmaps.create(_configmap("a"))

    created["data"] = {"k": "changed"}
    replaced = configmaps.replace(created)
    assert replaced["data"] == {"k": "changed"}
    created["data"] = {"k": "stale"}
    with pytest.raises(Conflict):
        configmaps.replace(created)  # its resourceVersion is no longer current

    configmaps.delete("a")
    with pytest.raises(NotFound) as info:
        configmaps.get("a")
    assert info.value.reason == "NotFound"


@pytest.mark.parametrize(
    ("patch_type", "patch"),
    [
        ("merge", {"data": {"k": None, "new": "1"}}),
        ("strategic", {"data": {"k": None, "new": "1"}}),
        (
            "json",
            [{"op": "remove", "path": "/data/k"}, {"op": "add", "path": "/data/new", "value": "1"}],
        ),
    ],
)
def test_patch_types(client: Client, patch_type: Any, patch: Any) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    configmaps.create(_configmap("a"))
    assert configmaps.patch("a", patch, type=patch_type)["data"] == {"new": "1"}


def test_failed_json_patch_test_is_invalid(client: Client) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    configmaps.create(_configmap("a"))
    with pytest.raises(Invalid):
        configmaps.patch("a", [{"op": "test", "path": "/data/k", "value": "other"}], type="json")


def test_server_side_apply(client: Client) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    intent = {"apiVersion": "v1", "kind": "ConfigMap", **_configmap("a")}
    with pytest.raises(ValueError, match="field_manager"):
        configmaps.patch("a", intent, type="apply")
    with pytest.raises(ValueError, match="force"):
        configmaps.patch("a", intent, force=True)
    created = configmaps.patch("a", intent, type="apply", field_manager="tests")
    assert created["data"] == {"k": "v"}
    assert [m["manager"] for m in created["metadata"]["managedFields"]] == ["tests"]
    rival = {**intent, "data": {"k": "other"}}
    with pytest.raises(Conflict):
        configmaps.patch("a", rival, type="apply", field_manager="rival")
    taken = configmaps.patch("a", rival, type="apply", field_manager="rival", force=True)
    assert taken["data"] == {"k": "other"}


def test_status_subresource_of_a_custom_resource(server: ApiServer, client: Client) -> None:
    server.add_resource("example.com", "v1", "Widget", "widgets")
    widgets = Api(client, "widgets", namespace="default")
    created = widgets.create({"metadata": {"name": "w"}, "spec": {"size": 1}})
    created["status"] = {"ready": True}
    assert widgets.replace_status(created)["status"] == {"ready": True}
    patched = widgets.patch("w", {"status": {"ready": False}}, subresource="status")
    assert patched["status"] == {"ready": False}


def test_list_follows_continue_tokens_and_filters(server: ApiServer, client: Client) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    for i in range(7):
        configmaps.create(_configmap(f"cm-{i}", tier="web" if i % 2 else "db"))
    server.create("configmaps", _configmap("elsewhere"), namespace="kube-system")

    paged = configmaps.list(limit=3)
    assert _names(paged) == [f"cm-{i}" for i in range(7)]
    assert "continue" not in paged["metadata"]
    assert paged["metadata"]["resourceVersion"]

    assert _names(configmaps.list(label_selector="tier=web")) == ["cm-1", "cm-3", "cm-5"]
    assert _names(configmaps.list(field_selector="metadata.name=cm-2")) == ["cm-2"]
    everywhere = Api(client, "configmaps").list(limit=4)
    assert "elsewhere" in _names(everywhere)


def test_metadata_only_reads(client: Client) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    configmaps.create(_configmap("a"))
    one = configmaps.get("a", metadata_only=True)
    assert one["kind"] == "PartialObjectMetadata"
    assert "data" not in one
    listing = configmaps.list(metadata_only=True)
    assert listing["kind"] == "PartialObjectMetadataList"
    assert [item["metadata"]["name"] for item in listing["items"]] == ["a"]


def test_namespaced_calls_need_a_namespace_and_cluster_scoped_ones_ignore_it(
    client: Client,
) -> None:
    with pytest.raises(ValueError, match="configmaps are namespaced"):
        Api(client, "configmaps").get("a")
    nodes = Api(client, "nodes", namespace="ignored")
    assert nodes.namespace is None
    nodes.create({"metadata": {"name": "node-1"}})
    assert nodes.get("node-1")["metadata"]["name"] == "node-1"
    assert Api(client, "ns").get("default")["kind"] == "Namespace"


def _two_teams(client: Client) -> tuple[Api, Api]:
    """Namespaces team-a and team-b, each with ConfigMap ``cm`` owned by its team."""
    apis = []
    for team in ("a", "b"):
        Api(client, "namespaces").create({"metadata": {"name": f"team-{team}"}})
        api = Api(client, "configmaps", namespace=f"team-{team}")
        api.create({"metadata": {"name": "cm"}, "data": {"owner": team}})
        apis.append(api)
    return apis[0], apis[1]


def _writes_naming(namespace: str) -> dict[str, Callable[[Api], Any]]:
    """Each write of an object (or patch) whose metadata.namespace is ``namespace``."""

    def obj(name: str = "cm") -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace}, "data": {"owner": "a"}}

    applied = {"apiVersion": "v1", "kind": "ConfigMap", **obj()}
    return {
        "create": lambda api: api.create(obj("new")),
        "replace": lambda api: api.replace(obj()),
        "replace_status": lambda api: api.replace_status(obj()),
        "patch": lambda api: api.patch("cm", obj()),
        "apply": lambda api: api.patch("cm", applied, type="apply", field_manager="t"),
    }


@pytest.mark.parametrize("verb", list(_writes_naming("team-b")))
def test_an_api_scoped_to_a_namespace_refuses_an_object_naming_another(
    server: ApiServer, client: Client, verb: str
) -> None:
    team_a, team_b = _two_teams(client)
    server.clear_requests()
    with pytest.raises(ValueError) as info:
        _writes_naming("team-b")[verb](team_a)
    assert str(info.value) == (
        "the ConfigMap's metadata.namespace 'team-b' does not match the namespace 'team-a' of"
        " the request (the Api's namespace): pass namespace='team-b' to write it there, or"
        " drop metadata.namespace to write it in 'team-a'"
    )
    assert server.requests == [], "a request was sent"
    assert [cm["data"] for cm in team_b.list()["items"]] == [{"owner": "b"}]
    assert [cm["data"] for cm in team_a.list()["items"]] == [{"owner": "a"}]


def test_the_namespace_argument_chooses_and_must_match_the_object_too(client: Client) -> None:
    team_a, team_b = _two_teams(client)
    named_b = {"metadata": {"name": "cm", "namespace": "team-b"}, "data": {"owner": "x"}}
    assert team_a.replace(named_b, namespace="team-b")["metadata"]["namespace"] == "team-b"
    everywhere = Api(client, "configmaps")
    assert everywhere.patch("cm", named_b, namespace="team-b")["data"] == {"owner": "x"}
    assert everywhere.create({**named_b, "metadata": {"name": "y", "namespace": "team-b"}})
    unnamed = team_a.create({"metadata": {"name": "z"}})
    assert unnamed["metadata"]["namespace"] == "team-a"
    with pytest.raises(ValueError, match=r"'team-b' does not match .*'team-a' .*\(namespace=\)"):
        everywhere.replace(named_b, namespace="team-a")
    with pytest.raises(TypeError, match=r"metadata\.namespace must be a string, not int 5"):
        team_a.create({"metadata": {"name": "w", "namespace": 5}})
    assert sorted(cm["metadata"]["name"] for cm in team_b.list()["items"]) == ["cm", "y"]


def test_too_many_requests_carries_retry_after(server: ApiServer, client: Client) -> None:
    server.faults.fail_requests(429, retry_after=3, verb="get")
    with pytest.raises(TooManyRequests) as info:
        Api(client, "namespaces").get("default")
    assert info.value.retry_after == 3.0
    assert info.value.request == "GET /api/v1/namespaces/default"


# -- discovery -------------------------------------------------------------------------------


def test_resolves_custom_resources_through_discovery(server: ApiServer, client: Client) -> None:
    widget = server.add_resource("example.com", "v1", "Widget", "widgets", short_names=["wd"])
    for name in ("widgets", "wd", "Widget", "widgets.example.com", "example.com/v1/widgets"):
        assert client.resolve(name) == widget
    assert client.resolve("deployments.apps") == Resource("apps", "v1", "Deployment", "deployments")
    widgets = Api(client, "example.com/v1/widgets", namespace="default")
    widgets.create({"metadata": {"name": "w1"}})
    assert _names(widgets.list()) == ["w1"]


def test_unknown_resource_is_a_config_error_until_it_is_installed(
    server: ApiServer, client: Client
) -> None:
    with pytest.raises(ConfigError, match="does not have a resource type 'gadgets'"):
        Api(client, "gadgets")
    gadget = server.add_resource("example.com", "v1", "Gadget", "gadgets", namespaced=False)
    assert client.resolve("gadgets") == gadget  # the cached discovery is refreshed on a miss


# -- watches on the test API server ----------------------------------------------------------


def test_watch_stream_over_tls_closes_promptly_and_frees_the_connection(
    tls_server: ApiServer,
) -> None:
    with tls_server.client() as client:
        configmaps = Api(client, "configmaps", namespace="default")
        rv = configmaps.list()["metadata"]["resourceVersion"]
        stream = configmaps.watch_stream({"resourceVersion": rv}, idle_timeout=30)
        assert stream.status == 200
        thread, lines, errors = _read_in_thread(stream)
        configmaps.create(_configmap("a"))
        assert wait_until(lambda: bool(lines) and stream._reading)
        assert orjson.loads(lines[0])["type"] == "ADDED"
        assert tls_server.open_watches() == 1
        _close_ends_the_read_within_a_second(stream, thread, errors)
        assert wait_until(lambda: tls_server.open_watches() == 0)


def test_watch_dropped_by_the_server_raises_transport_error(
    server: ApiServer, client: Client
) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    rv = configmaps.list()["metadata"]["resourceVersion"]
    with configmaps.watch_stream({"resourceVersion": rv}, idle_timeout=10) as stream:
        lines = stream.lines()
        configmaps.create(_configmap("a"))
        assert orjson.loads(next(lines))["type"] == "ADDED"
        server.faults.close_watches(abrupt=True)
        with pytest.raises(TransportError, match="connection broken") as info:
            next(lines)
        assert not isinstance(info.value, WatchStalled)


def test_stalled_watch_raises_watch_stalled(server: ApiServer, client: Client) -> None:
    server.faults.stall_watches()
    stream = Api(client, "configmaps").watch_stream({}, idle_timeout=0.3)
    with stream, pytest.raises(WatchStalled, match="GET /api/v1/configmaps"):
        list(stream.lines())


def test_metadata_only_watch(client: Client) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    rv = configmaps.list()["metadata"]["resourceVersion"]
    with configmaps.watch_stream(
        {"resourceVersion": rv}, metadata_only=True, idle_timeout=10
    ) as stream:
        assert stream.headers["Content-Type"].startswith("application/json")
        configmaps.create(_configmap("a"))
        event = orjson.loads(next(stream.lines()))
    assert event["type"] == "ADDED"
    assert event["object"]["kind"] == "PartialObjectMetadata"
    assert "data" not in event["object"]


def test_watch_that_ends_cleanly_returns_its_connection_for_reuse(
    server: ApiServer, client: Client
) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    configmaps.list()
    baseline = _open_sockets()  # one pooled connection, both of its ends
    for _ in range(5):
        with configmaps.watch_stream({}, idle_timeout=10) as stream:
            server.faults.close_watches()  # a clean end, as timeoutSeconds gives
            assert list(stream.lines()) == []
        configmaps.list()
    assert _open_sockets() == baseline


def test_cancelling_a_call_that_has_ended_leaves_its_pooled_connection_alone(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # A watcher cancels its Cancellation when disposed, after its last list page has
    # given the connection back: that must not shut down the socket the next call takes
    # (between the pool's liveness check and the call's claim it failed with
    # "Remote end closed connection without response").
    ended = Cancellation()
    client.request("GET", "/api/v1/namespaces/default/configmaps", cancellation=ended)
    ended.cancel()
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        response = client.request("GET", "/api/v1/namespaces/default/configmaps")
    assert response.status == 200
    assert "Resetting dropped connection" not in caplog.text  # the same connection served


def test_cancelling_fails_a_later_call_under_it_at_once(client: Client) -> None:
    cancellation = Cancellation()
    cancellation.cancel()
    with pytest.raises(TransportError, match="cancelled"):
        client.request("GET", "/api/v1/namespaces/default/configmaps", cancellation=cancellation)
    assert client.request("GET", "/api/v1/namespaces/default/configmaps").status == 200


def test_accept_header_constants_are_the_kubernetes_ones() -> None:
    assert ACCEPT_METADATA == (
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
    )


def test_a_blocking_call_to_a_server_on_this_threads_loop_fails_at_once() -> None:
    # `async with ApiServer()` serves on the running loop: a blocking call from that
    # loop's thread would hold up the loop that must answer it, and hang.
    async def main() -> None:
        async with ApiServer() as srv:
            with srv.client() as client:
                configmaps = Api(client, "configmaps", namespace="default")
                with pytest.raises(RuntimeError, match=r"would wait forever.*asyncio\.to_thread"):
                    configmaps.create({"metadata": {"name": "a"}})
                created = await asyncio.to_thread(configmaps.create, {"metadata": {"name": "a"}})
                assert created["metadata"]["name"] == "a"
        with ApiServer() as other, other.client() as client:  # a server on its own thread
            Api(client, "configmaps", namespace="default").create({"metadata": {"name": "b"}})

    asyncio.run(asyncio.wait_for(main(), timeout=30))
