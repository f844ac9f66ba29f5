"""The envtest-style mode: a real kube-apiserver and etcd found as controller-runtime finds them.

No binaries are on CI machines, so discovery, the missing-binary error and the flags are
tested on their own (against controller-runtime's ``pkg/internal/testing/process/
bin_path_finder.go`` and ``controlplane/{etcd,apiserver}.go``); the tests that start a
control plane skip unless ``KUBEBUILDER_ASSETS`` (or ``TEST_ASSET_*``) points at one.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

import rxkube
from benchmarks.sharding import wait_for
from rxkube import Shard
from rxkube.client import Api
from rxkube.testing import ApiServer, EnvtestBinaryNotFound, EnvtestServer
from rxkube.testing._envtest import (
    ASSETS_VARIABLE,
    Ports,
    apiserver_args,
    binaries_available,
    etcd_args,
    find_binary,
)


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_binaries_are_found_in_envtests_order(tmp_path: Path) -> None:
    """``TEST_ASSET_KUBE_APISERVER`` beats ``KUBEBUILDER_ASSETS``, which beats the assets
    directory given (``BinPathFinder``)."""
    own = executable(tmp_path / "own" / "kube-apiserver")
    assets = executable(tmp_path / "assets" / "kube-apiserver")
    given = executable(tmp_path / "given" / "kube-apiserver")
    env = {"TEST_ASSET_KUBE_APISERVER": str(own), ASSETS_VARIABLE: str(assets.parent)}
    assert find_binary("kube-apiserver", given.parent, env) == own
    del env["TEST_ASSET_KUBE_APISERVER"]
    assert find_binary("kube-apiserver", given.parent, env) == assets
    assert find_binary("kube-apiserver", given.parent, {}) == given


def test_a_missing_binary_is_a_typed_error_naming_kubebuilder_assets(tmp_path: Path) -> None:
    env = {ASSETS_VARIABLE: str(tmp_path)}
    with pytest.raises(EnvtestBinaryNotFound) as raised:
        find_binary("etcd", env=env)
    assert raised.value.name == "etcd" and raised.value.path == tmp_path / "etcd"
    message = str(raised.value)
    assert f"{tmp_path / 'etcd'}" in message and "KUBEBUILDER_ASSETS" in message
    assert "TEST_ASSET_ETCD" in message
    assert isinstance(raised.value, FileNotFoundError)
    (tmp_path / "etcd").write_text("not executable")
    with pytest.raises(EnvtestBinaryNotFound):
        find_binary("etcd", env=env)


def test_the_server_refuses_to_construct_without_binaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ASSETS_VARIABLE, str(tmp_path))
    monkeypatch.delenv("TEST_ASSET_ETCD", raising=False)
    with pytest.raises(EnvtestBinaryNotFound, match="etcd not found"):
        EnvtestServer()
    assert not binaries_available()


def test_flags_are_envtests() -> None:
    ports = Ports(etcd_client=2379, etcd_peer=2380, apiserver=6443)
    assert etcd_args(Path("/d/etcd"), ports) == [
        "--data-dir=/d/etcd",
        "--listen-client-urls=http://127.0.0.1:2379",
        "--advertise-client-urls=http://127.0.0.1:2379",
        "--listen-peer-urls=http://127.0.0.1:2380",
        "--unsafe-no-fsync=true",
    ]
    args = apiserver_args(Path("/d/certs"), ports, extra={"authorization-mode": "AlwaysAllow"})
    assert "--etcd-servers=http://127.0.0.1:2379" in args
    assert "--secure-port=6443" in args and "--bind-address=127.0.0.1" in args
    assert "--disable-admission-plugins=ServiceAccount" in args
    assert "--service-cluster-ip-range=10.0.0.0/24" in args
    assert "--service-account-issuer=https://127.0.0.1:6443/" in args
    assert "--token-auth-file=/d/certs/tokens.csv" in args
    # Tokens are signed with the private key and verified with its public half.
    assert "--service-account-signing-key-file=/d/certs/sa-signer.key" in args
    assert "--service-account-key-file=/d/certs/sa-signer.pub" in args
    assert "--authorization-mode=AlwaysAllow" in args and "--authorization-mode=RBAC" not in args
    assert len({a.split("=", 1)[0] for a in args}) == len(args)  # each flag once


needs_binaries = pytest.mark.skipif(
    not binaries_available(), reason=f"no kube-apiserver and etcd (set {ASSETS_VARIABLE})"
)


@needs_binaries
def test_a_real_control_plane_serves_the_same_client_code(tmp_path: Path) -> None:
    with EnvtestServer() as srv:
        client = srv.client()
        configmaps = Api(client, "configmaps", "default")
        created = configmaps.create({"metadata": {"name": "a"}, "data": {"k": "v"}})
        assert configmaps.get("a")["data"] == {"k": "v"}
        assert srv.resource_version >= int(created["metadata"]["resourceVersion"])
        kubeconfig = srv.write_kubeconfig(tmp_path / "kubeconfig")
        assert oct(os.stat(kubeconfig).st_mode & 0o777) == "0o600"
        assert srv.compact() >= int(created["metadata"]["resourceVersion"])
        # Nothing written since (unless kube-apiserver renewed a lease): a no-op, not an error.
        assert srv.compact() >= int(created["metadata"]["resourceVersion"])


@needs_binaries
def test_async_with_starts_and_stops_it() -> None:
    async def run() -> str:
        async with EnvtestServer() as srv:
            assert srv.url.startswith("https://")
        return srv.url

    assert asyncio.run(run()) == ""


# --- rxkube's watcher and store against the real server ----------------------------------
# The same pipelines the rest of the suite runs against rxkube's test server, against a
# real kube-apiserver: pagination, streaming lists, watch events, and KEP-5866 sharding.

GATED = {"feature-gates": "ShardedListAndWatch=true"}
LABEL = "rxkube.io/probe=real"


def _configmaps(srv: ApiServer | EnvtestServer, count: int) -> Api:
    configmaps = Api(srv.client(), "configmaps", "default")
    for i in range(count):
        configmaps.create(
            {"metadata": {"name": f"cm-{i:02d}", "labels": {"rxkube.io/probe": "real"}}}
        )
    return configmaps


def _names(reader: rxkube.Store) -> set[str]:
    return {obj["metadata"]["name"] for obj in reader.state()}


@needs_binaries
@pytest.mark.timeout(300)
@pytest.mark.parametrize("strategy", ["list_watch", "streaming_list"])
def test_a_watcher_fills_a_store_and_follows_changes(
    strategy: Literal["list_watch", "streaming_list"],
) -> None:
    """25 objects in pages of 10 (list+watch) or as a streaming list, then a create, a
    change and a delete, each seen in the store."""
    with EnvtestServer() as srv:
        configmaps = _configmaps(srv, 25)
        config = rxkube.Config(label_selector=LABEL, page_size=10, initial_list_strategy=strategy)
        reader, writer = rxkube.store("configmaps")
        subscription = rxkube.watcher(configmaps, config).pipe(rxkube.reflect(writer)).subscribe()
        try:
            reader.wait_until_ready(120)
            assert _names(reader) == {f"cm-{i:02d}" for i in range(25)}
            configmaps.create({"metadata": {"name": "late", "labels": {"rxkube.io/probe": "real"}}})
            changed = configmaps.get("cm-03")
            changed["data"] = {"k": "v"}
            configmaps.replace(changed)
            configmaps.delete("cm-04")
            wait_for(
                lambda: (
                    "late" in _names(reader)
                    and "cm-04" not in _names(reader)
                    and (reader.get("cm-03", "default") or {}).get("data") == {"k": "v"}
                ),
                timeout=60,
                what="the create, the change and the delete in the store",
            )
        finally:
            subscription.dispose()


@pytest.fixture(params=["rxkube", "envtest"])
def sharded_server(request: pytest.FixtureRequest) -> Iterator[ApiServer | EnvtestServer]:
    """rxkube's test server, and kube-apiserver with ``ShardedListAndWatch`` on."""
    if request.param == "envtest" and not binaries_available():
        pytest.skip(f"no kube-apiserver and etcd (set {ASSETS_VARIABLE})")
    server = (
        ApiServer(token="admin", tls=True)
        if request.param == "rxkube"
        else EnvtestServer(apiserver_flags=GATED)
    )
    with server:
        yield server


@pytest.mark.timeout(300)
def test_both_servers_shard_as_rxkube_expects(sharded_server: ApiServer | EnvtestServer) -> None:
    """The server filters and echoes the selector rxkube sends (so rxkube does not filter
    again), a sharded watcher's store holds exactly the objects ``Shard.matches``, a paged
    sharded list counts ``remainingItemCount`` before filtering, and what ``Shard.parse``
    refuses the server refuses with the same message, as a 500."""
    srv = sharded_server
    configmaps = _configmaps(srv, 40)
    everything = configmaps.list(label_selector=LABEL)["items"]
    for index in range(2):
        shard = Shard.split(index, 2)
        expected = {o["metadata"]["name"] for o in everything if shard.matches(o)}
        assert 0 < len(expected) < 40
        listed = _get(srv, {"shardSelector": shard.selector()})
        assert listed["metadata"]["shardInfo"] == {"selector": shard.selector()}
        assert {o["metadata"]["name"] for o in listed["items"]} == expected
        reader, writer = rxkube.store("configmaps")
        config = rxkube.Config(label_selector=LABEL, page_size=10, shard=shard)
        subscription = rxkube.watcher(configmaps, config).pipe(rxkube.reflect(writer)).subscribe()
        try:
            reader.wait_until_ready(120)
            assert _names(reader) == expected
        finally:
            subscription.dispose()
    # Pages of 5 of the lower half, without the label selector (which would hide the
    # count): the count is of every object from the page's start key on, less the limit.
    shard = Shard.split(0, 2)
    names = sorted(o["metadata"]["name"] for o in everything)
    query = {"shardSelector": shard.selector(), "limit": "5"}
    start = 0
    while True:
        page = _get(srv, query, label=False)
        meta = page["metadata"]
        if "continue" not in meta:
            break
        assert meta["remainingItemCount"] == len(names) - start - 5
        start = names.index(page["items"][-1]["metadata"]["name"]) + 1
        query["continue"] = meta["continue"]
    # Two adjacent ranges are echoed as sent, not merged.
    upper, lower = Shard.split(1, 2).selector(), Shard.split(0, 2).selector()
    both = _get(srv, {"shardSelector": f"{upper} || {lower}"})
    assert both["metadata"]["shardInfo"] == {"selector": f"{upper} || {lower}"}
    assert len(both["items"]) == 40
    for refused in (
        "shardRange(object.metadata.uid, '0x0', '0x8000000000000000')",
        "shardRange(object.metadata.name, '0x0000000000000000', '0x8000000000000000')",
        f"{lower} && {upper}",
        "shardRange(object.metadata.uid, 1, '0x8000000000000000')",
    ):
        with pytest.raises(rxkube.ShardSelectorError) as raised:
            Shard.parse(refused)
        answer = _get(srv, {"shardSelector": refused}, expect=500)
        assert answer == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"invalid shard selector: {raised.value}",
            "code": 500,
        }


def _get(
    srv: ApiServer | EnvtestServer,
    params: dict[str, str],
    expect: int = 200,
    *,
    label: bool = True,
) -> dict[str, Any]:
    """A raw list of configmaps in ``default`` (with the test's label, unless ``label``
    is False), as the JSON answered with status ``expect``."""
    query = urllib.parse.urlencode({**({"labelSelector": LABEL} if label else {}), **params})
    request = urllib.request.Request(
        f"{srv.url}/api/v1/namespaces/default/configmaps?{query}",
        headers={"Authorization": f"Bearer {srv.token}"},
    )
    context = ssl.create_default_context(cafile=srv.ca_file)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    assert status == expect, body[:300]
    result: dict[str, Any] = json.loads(body)
    return result


def test_the_fixture_skips_where_binaries_are_absent(tmp_path: Path) -> None:
    (tmp_path / "test_real.py").write_text(
        "def test_real(envtest_apiserver):\n    raise AssertionError('ran')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEST_ASSET_")}
    env[ASSETS_VARIABLE] = str(tmp_path / "empty")
    env["PYTHONPATH"] = str(Path(rxkube.__file__).parents[1])  # this rxkube, plugin included
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-rs",
         "-o", "addopts=", str(tmp_path / "test_real.py")],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout and "kube-apiserver not found" not in result.stdout
    assert "etcd not found" in result.stdout and ASSETS_VARIABLE in result.stdout


def test_a_binary_that_exits_fails_the_start_with_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real processes: an etcd that exits at once makes ``start`` raise with its log, and
    nothing is left running or on disk."""
    executable(tmp_path / "kube-apiserver")
    etcd = tmp_path / "etcd"
    etcd.write_text("#!/bin/sh\necho 'etcd: cannot listen' >&2\nexit 3\n")
    etcd.chmod(0o755)
    monkeypatch.setenv(ASSETS_VARIABLE, str(tmp_path))
    for name in ("TEST_ASSET_ETCD", "TEST_ASSET_KUBE_APISERVER"):
        monkeypatch.delenv(name, raising=False)
    work_dirs = set(Path(tempfile.gettempdir()).glob("rxkube-envtest-*"))
    srv = EnvtestServer(start_timeout=30)
    with pytest.raises(RuntimeError, match=r"(?s)etcd exited with 3:.*cannot listen"):
        srv.start()
    assert srv.url == ""
    assert set(Path(tempfile.gettempdir()).glob("rxkube-envtest-*")) <= work_dirs


# --- the shared face, over stand-ins for the two binaries --------------------------------
# Real processes started by EnvtestServer as it starts the real binaries: an "etcd" that
# answers the HTTP gateway calls EnvtestServer makes (/health, /v3/kv/range,
# /v3/kv/compaction) and records them, and a "kube-apiserver" that is rxkube's test
# server on envtest's flags (its port, serving certificate and token file).

STAND_IN_ETCD = """\
import http.server, json, os, sys

flags = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if "=" in arg)
host, port = flags["listen-client-urls"].removeprefix("http://").rsplit(":", 1)


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer({"health": "true"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(os.environ["STAND_IN_ETCD_LOG"], "a") as log:
            log.write(json.dumps([self.path, body]) + "\\n")
        self.answer({"header": {"revision": "41"}})

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
"""

STAND_IN_APISERVER = """\
import signal, ssl, sys, threading
from rxkube.testing import ApiServer

flags = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
token = open(flags["token-auth-file"]).read().split(",")[0]
server = ApiServer(token=token, tls=True, host=flags["bind-address"], port=int(flags["secure-port"]))


def envtest_certificate():
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(flags["tls-cert-file"], flags["tls-private-key-file"])
    return context


server._ssl_context = envtest_certificate
stopped = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopped.set())
with server:
    stopped.wait()
"""


def stand_ins(directory: Path) -> Path:
    directory.mkdir()
    for name, source in (("etcd", STAND_IN_ETCD), ("kube-apiserver", STAND_IN_APISERVER)):
        path = directory / name
        path.write_text(f"#!{sys.executable}\n{source}")
        path.chmod(0o755)
    return directory


@pytest.fixture
def assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in (ASSETS_VARIABLE, "TEST_ASSET_ETCD", "TEST_ASSET_KUBE_APISERVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STAND_IN_ETCD_LOG", str(tmp_path / "etcd-calls.jsonl"))
    return stand_ins(tmp_path / "bin")


def test_the_shared_face_serves_client_kubeconfig_and_history(assets: Path, tmp_path: Path) -> None:
    """What docs/testing.md promises of both servers: ``url``, ``client()``,
    ``write_kubeconfig()`` (read by the real kubectl where there is one),
    ``resource_version`` and ``compact()`` as etcd's revision and compaction."""
    with EnvtestServer(assets=assets, start_timeout=60) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        configmaps = Api(srv.client(), "configmaps", "default")
        configmaps.create({"metadata": {"name": "a"}, "data": {"k": "v"}})
        assert configmaps.get("a")["data"] == {"k": "v"}
        kubeconfig = srv.write_kubeconfig(tmp_path / "kubeconfig")
        assert oct(os.stat(kubeconfig).st_mode & 0o777) == "0o600"
        kubectl = shutil.which("kubectl")
        if kubectl is not None:
            listed = subprocess.run(
                [kubectl, "--kubeconfig", str(kubeconfig), "get", "configmaps", "-o", "name"],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert listed.returncode == 0, listed.stderr
            assert listed.stdout.split() == ["configmap/a"]
        assert srv.resource_version == 41
        assert srv.compact() == 41
        url = srv.url
    calls = [
        json.loads(line) for line in (tmp_path / "etcd-calls.jsonl").read_text().split("\n") if line
    ]
    assert calls[-1] == ["/v3/kv/compaction", {"revision": "41", "physical": True}]
    assert srv.url == ""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    with pytest.raises(OSError):  # the stand-in kube-apiserver ended on SIGTERM
        socket.create_connection((host, int(port)), timeout=5).close()


def test_astart_and_astop_as_the_test_servers(assets: Path) -> None:
    async def run() -> tuple[str, str]:
        srv = EnvtestServer(assets=assets)
        await srv.astart()
        try:
            started = srv.url
            client = srv.client()
            await asyncio.to_thread(Api(client, "namespaces").get, "default")
        finally:
            await srv.astop()
        return started, srv.url

    started, stopped = asyncio.run(run())
    assert started.startswith("https://") and stopped == ""


def test_the_face_has_the_test_servers_signatures() -> None:
    """A suite written against ApiServer's face runs against EnvtestServer unchanged."""
    for name in ("client", "kubeconfig", "write_kubeconfig", "compact", "stop", "astop"):
        assert inspect.signature(getattr(EnvtestServer, name)) == inspect.signature(
            getattr(ApiServer, name)
        ), name
    for name in ("start", "astart", "__enter__", "__aenter__", "__exit__", "__aexit__"):
        assert list(inspect.signature(getattr(EnvtestServer, name)).parameters) == list(
            inspect.signature(getattr(ApiServer, name)).parameters
        ), name
    assert isinstance(inspect.getattr_static(EnvtestServer, "resource_version"), property)
    assert isinstance(inspect.getattr_static(ApiServer, "resource_version"), property)
