"""The benchmark's API server, in a process of its own, and the handle to drive it.

``python -m benchmarks.server PODS`` starts ``rxkube.testing.ApiServer`` on 127.0.0.1,
loads the workload's pods through its in-process object API (no HTTP round trip per pod),
and prints one JSON line: the server's URL, a kubeconfig for the peers, and the address of
a small control channel (``multiprocessing.connection``) that measurements use to make
MODIFIED events and to trigger a relist. The server process is separate from every client
process, so what a measurement times is its client.

``python -m benchmarks.server --real PODS`` does the same with a real kube-apiserver and
etcd (``rxkube.testing.EnvtestServer``, found through ``KUBEBUILDER_ASSETS``): the pods
go in through the API, as on a cluster (a create, then a status write as the kubelet
makes it), and each MODIFIED event is a status patch. A real server cannot be told to
answer 410 Gone, so it has no relist command. Its ``--request-timeout`` is 10 minutes,
which makes its watch cache keep 10 minutes of history instead of 75 s: a batch of
events takes minutes to write on a loaded machine, and is replayed after that.

``ServerProcess`` (parent side) starts and stops it; ``Control`` (any process) sends it
commands.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from multiprocessing.connection import Client as _Connect
from multiprocessing.connection import Connection, Listener
from types import TracebackType
from typing import Any, Self

import orjson
import urllib3

from .workload import NAMESPACE, make_pod, modified

_STARTUP_TIMEOUT = 120.0
_REAL_STARTUP_TIMEOUT = 900.0
"""A real server loads its pods through the API before it answers: minutes, not seconds."""

_WRITERS = 16
"""Concurrent writers into a real server: enough to keep kube-apiserver and etcd busy."""


class Control:
    """Commands to the benchmark server, from any process.

    Args:
        address: the control channel's ``(host, port)``.
        authkey: its shared secret (hex).
    """

    def __init__(self, address: tuple[str, int], authkey: str) -> None:
        self._address = address
        self._authkey = bytes.fromhex(authkey)
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Run one command on the server and return its answer."""
        with self._lock:
            if self._conn is None:
                self._conn = _Connect(self._address, authkey=self._authkey)
            self._conn.send({"op": op, **args})
            answer: dict[str, Any] = self._conn.recv()
        if "error" in answer:
            raise RuntimeError(f"benchmark server failed {op}: {answer['error']}")
        return answer

    def modify(self, count: int) -> dict[str, Any]:
        """Write ``count`` MODIFIED events, round-robin over the pods; returns rv and seconds."""
        return self.call("modify", count=count)

    def relist(self) -> dict[str, Any]:
        """End every watch and answer the next watch request 410 Gone: watchers relist."""
        return self.call("relist")

    def compact(self) -> dict[str, Any]:
        """Forget the history written so far (measurements leave 100,000 events behind)."""
        return self.call("compact")

    def info(self) -> dict[str, Any]:
        """The server's resourceVersion, pod count, and the rv range of the last ``modify``."""
        return self.call("info")

    def close(self) -> None:
        """Close this process's connection to the control channel."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class ServerProcess:
    """Starts ``python -m benchmarks.server`` with ``pods`` pods and waits until it serves.

    Args:
        pods: how many workload pods the server holds.
        real: a real kube-apiserver and etcd instead of ``rxkube.testing.ApiServer``.

    Attributes (after ``start``): ``url``, ``token``, ``ca_file``, ``kubeconfig``,
    ``control_address``, ``authkey``, ``load_s``, ``version`` (the server's ``/version``).
    """

    def __init__(self, pods: int, *, real: bool = False) -> None:
        self.pods = pods
        self.real = real
        self.url = ""
        self.token = ""
        self.ca_file: str | None = None
        self.kubeconfig = ""
        self.control_address: tuple[str, int] = ("127.0.0.1", 0)
        self.authkey = ""
        self.load_s = 0.0
        self.version: dict[str, Any] = {}
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start the process and read its address line.

        Raises:
            RuntimeError: the server exited, or did not answer in time.
        """
        mode = ["--real"] if self.real else []
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server", *mode, str(self.pods)],
            stdin=subprocess.PIPE,  # closed when this process dies: the server then stops
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self._proc.stdout is not None
        timeout = _REAL_STARTUP_TIMEOUT if self.real else _STARTUP_TIMEOUT
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and not line.startswith("{"):
            line = self._proc.stdout.readline()
            if not line and self._proc.poll() is not None:
                raise RuntimeError(f"benchmark server exited with {self._proc.returncode}")
        if not line.startswith("{"):
            self.stop()
            raise RuntimeError(f"benchmark server not serving after {timeout:.0f} s")
        hello = json.loads(line)
        self.url = hello["url"]
        self.token = hello["token"] or ""
        self.ca_file = hello["ca_file"]
        self.kubeconfig = hello["kubeconfig"]
        self.control_address = tuple(hello["control"])
        self.authkey = hello["authkey"]
        self.load_s = hello["load_s"]
        self.version = hello["version"]

    def control(self) -> Control:
        """A new control handle (one per process that uses it)."""
        return Control(self.control_address, self.authkey)

    @property
    def pid(self) -> int:
        """The server process's id."""
        assert self._proc is not None
        return self._proc.pid

    def stop(self) -> None:
        """Ask the server to stop, and wait for it."""
        if self._proc is None:
            return
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic collector during bulk writes, then freeze what they made.

    With 10,000 pods and their history stored, every collection walks millions of
    containers: bulk writes ran 3x slower with it on (``orjson.loads`` of one pod took
    98 µs instead of 9), and the first replay of a batch of events ran at 11,000
    events/s instead of 42,000. What is frozen is still freed when compaction drops it.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


class _Backend:
    """The server side: an ``ApiServer`` holding the workload, and the commands on it."""

    commands: tuple[str, ...] = ("modify", "relist", "compact", "info")

    def __init__(self, srv: Any, pods: int) -> None:
        self.srv = srv
        self.pods = [make_pod(i) for i in range(pods)]
        self.changes = 0
        self.last_batch: tuple[int, int] | None = None
        self.stopped = threading.Event()
        self.http = urllib3.PoolManager(
            maxsize=_WRITERS,
            ca_certs=srv.ca_file,
            headers={"Authorization": f"Bearer {srv.token}"} if srv.token else None,
        )

    def load(self) -> float:
        start = time.perf_counter()
        create = self.srv.create
        with _no_gc():
            for pod in self.pods:
                create("pods", pod, namespace=NAMESPACE)
        return time.perf_counter() - start

    def write(self, changes: list[dict[str, Any]]) -> None:
        """Store each changed pod, in order: one MODIFIED event each."""
        replace = self.srv.replace
        with _no_gc():
            for pod in changes:
                replace("pods", pod, namespace=NAMESPACE)

    def modify(self, count: int) -> dict[str, Any]:
        start = time.perf_counter()
        before = self.srv.resource_version
        n = len(self.pods)
        changes = []
        for k in range(count):
            self.changes += 1
            changes.append(modified(self.pods[k % n], self.changes))
        self.write(changes)
        self.last_batch = (before, self.srv.resource_version)
        self._warm(before, count)
        return {"seconds": time.perf_counter() - start, **self.info()}

    def _warm(self, since: int, count: int) -> None:
        """Read the new events once, so the server has built every line before a client reads.

        The server encodes a watch line the first time a watch sends it; without this,
        whichever measurement reads a batch first would wait on the server.
        """
        resp = self.http.request(
            "GET",
            f"{self.srv.url}/api/v1/namespaces/{NAMESPACE}/pods",
            fields={"watch": "1", "resourceVersion": str(since)},
            preload_content=False,
        )
        seen = 0
        while seen < count:
            chunk = resp.read1(1 << 16)
            if not chunk:
                break
            seen += chunk.count(b"\n")
        resp.close()

    def version(self) -> dict[str, Any]:
        """The server's ``/version`` answer."""
        answer: dict[str, Any] = orjson.loads(
            self.http.request("GET", f"{self.srv.url}/version").data
        )
        return answer

    def relist(self) -> dict[str, Any]:
        # The next watch request fails with 410 Gone: the watcher must relist, as it
        # does when its resourceVersion has been compacted away.
        self.srv.faults.fail_requests(410, count=1, verb="watch")
        self.srv.faults.close_watches()
        return self.info()

    def compact(self) -> dict[str, Any]:
        self.srv.compact()
        self.last_batch = None
        return self.info()

    def info(self) -> dict[str, Any]:
        return {
            "resource_version": self.srv.resource_version,
            "pods": len(self.pods),
            "last_batch": self.last_batch,
        }

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command.pop("op")
        method = getattr(self, op, None)
        if op not in self.commands or method is None:
            return {"error": f"unknown command {op!r}"}
        try:
            return dict(method(**command))
        except Exception as exc:  # reported to the caller, the server stays up
            return {"error": f"{type(exc).__name__}: {exc}"}


class _RealBackend(_Backend):
    """The same commands on a real kube-apiserver, written through its API.

    A pod is created and then given its status, as a ReplicaSet's pod gets it from the
    kubelet (a create drops the status); a MODIFIED event is a merge patch of the status
    by ``kubelet``. Writes go ``_WRITERS`` at a time: a real server takes a few
    milliseconds per write, mostly waiting on etcd.
    """

    commands = ("modify", "compact", "info")

    def _call(self, method: str, path: str, body: dict[str, Any], content_type: str) -> None:
        resp = self.http.request(
            method,
            f"{self.srv.url}/api/v1/namespaces/{NAMESPACE}/{path}",
            body=orjson.dumps(body),
            headers={**self.http.headers, "Content-Type": content_type},
            timeout=urllib3.Timeout(connect=10, read=120),
        )
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {resp.data[:300]!r}")

    def _status(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        self._call(
            "PATCH",
            f"pods/{name}/status?fieldManager=kubelet",
            {"status": pod["status"]},
            "application/merge-patch+json",
        )

    def _create(self, pod: dict[str, Any]) -> None:
        self._call("POST", "pods", pod, "application/json")
        self._status(pod)

    def _all(self, write: Any, pods: list[dict[str, Any]]) -> None:
        with ThreadPoolExecutor(_WRITERS, thread_name_prefix="bench-writer") as pool:
            for _ in pool.map(write, pods):
                pass  # re-raises the first write that failed

    def load(self) -> float:
        start = time.perf_counter()
        resp = self.http.request(
            "POST",
            f"{self.srv.url}/api/v1/namespaces",
            body=orjson.dumps({"metadata": {"name": NAMESPACE}}),
            headers={**self.http.headers, "Content-Type": "application/json"},
        )
        if resp.status not in (201, 409):
            raise RuntimeError(f"namespace {NAMESPACE}: HTTP {resp.status}: {resp.data[:300]!r}")
        self._all(self._create, self.pods)
        return time.perf_counter() - start

    def write(self, changes: list[dict[str, Any]]) -> None:
        self._all(self._status, changes)

    def version(self) -> dict[str, Any]:
        """kube-apiserver's ``/version``, with etcd's under ``"etcd"``."""
        etcd = orjson.loads(urllib3.request("GET", f"{self.srv.etcd_url}/version").data)
        return {**super().version(), "etcd": etcd}


def _serve_connection(backend: _Backend, conn: Connection) -> None:
    with conn:
        while not backend.stopped.is_set():
            try:
                command = conn.recv()
            except (EOFError, OSError):
                return
            conn.send(backend.handle(command))


def _serve(srv: Any, backend: _Backend) -> None:
    """Load the pods, print the hello line, and answer commands until the parent goes."""
    authkey = secrets.token_bytes(16)
    with tempfile.TemporaryDirectory(prefix="rxkube-bench-") as tmp:
        kubeconfig = os.path.join(tmp, "kubeconfig")
        srv.write_kubeconfig(kubeconfig)
        load_s = backend.load()
        version = backend.version()
        listener = Listener(("127.0.0.1", 0), authkey=authkey)
        hello = {
            "url": srv.url,
            "token": srv.token,
            "ca_file": srv.ca_file,
            "kubeconfig": kubeconfig,
            "control": list(listener.address),
            "authkey": authkey.hex(),
            "load_s": load_s,
            "version": version,
        }
        print(json.dumps(hello), flush=True)

        def accept() -> None:
            while True:
                try:
                    conn = listener.accept()
                except OSError:
                    return
                threading.Thread(
                    target=_serve_connection, args=(backend, conn), daemon=True
                ).start()

        def orphaned() -> None:
            sys.stdin.read()  # returns at EOF: the parent is gone, or asked us to stop
            backend.stopped.set()

        threading.Thread(target=accept, name="bench-control", daemon=True).start()
        threading.Thread(target=orphaned, name="bench-parent", daemon=True).start()
        backend.stopped.wait()
        listener.close()


def main(argv: list[str]) -> None:
    """Run the benchmark server until the parent closes its stdin.

    ``argv``: ``[--real] [PODS]`` (10,000 pods by default).
    """
    from rxkube.testing import ApiServer, EnvtestServer

    real = "--real" in argv
    args = [a for a in argv if a != "--real"]
    pods = int(args[0]) if args else 10_000
    if real:
        # kube-apiserver keeps a watch history of max(75 s, request timeout + 15 s); the
        # events of one measurement are written at the real server's pace (tens to
        # hundreds per second) before a client replays them, so it must keep minutes.
        flags = {"request-timeout": "10m"}
        with EnvtestServer(apiserver_flags=flags, start_timeout=300) as srv:
            _serve(srv, _RealBackend(srv, pods))
    else:
        with ApiServer(bookmark_interval=None) as srv:
            _serve(srv, _Backend(srv, pods))


if __name__ == "__main__":
    main(sys.argv[1:])
