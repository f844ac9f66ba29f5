"""How fast rxkube.testing.ApiServer serves lists and watch streams.

Run: ``python benchmarks/apiserver_throughput.py [--pods 10000] [--events 200000]``

1. list: the server runs as a separate process (``python -m rxkube.testing --load``)
   holding ``--pods`` realistic pods (~4.5 KB each); one client reads the whole list.
2. replay: the same process holds ``--events`` small ConfigMaps; one watch from the
   first resourceVersion replays one ADDED event per object.
3. live: an in-process server; a thread creates small ConfigMaps as fast as it can
   while a watch reads them (writer, server and reader share one GIL).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import orjson

from rxkube.testing import ApiServer


def realistic_pod(i: int) -> dict[str, Any]:
    """A pod about as large as a typical controller-managed one (~4.5 KB as JSON)."""
    name = f"web-{i:05d}-7d9c8b6f5-x{i % 97:02d}zq"
    labels = {"app": "web", "pod-template-hash": "7d9c8b6f5", "tier": f"t{i % 7}"}
    env = [{"name": f"ENV_{k}", "value": f"value-{k}-{i}"} for k in range(48)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": f"ns-{i % 10}",
            "labels": labels,
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d9c8b6f5",
                    "uid": "6a1b2c3d-0000-4000-8000-000000000000",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2024-05-01T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:labels": {f"f:{k}": {} for k in labels}},
                        "f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}}}},
                    },
                },
            ],
        },
        "spec": {
            "nodeName": f"node-{i % 50}",
            "serviceAccountName": "default",
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example.com/team/web:1.2.3",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": env,
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                    },
                    "volumeMounts": [
                        {
                            "name": "kube-api-access",
                            "readOnly": True,
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        }
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.0.{i // 250}.{i % 250}",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2024-05-01T10:00:01Z"}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": "web",
                    "ready": True,
                    "restartCount": 0,
                    "image": "registry.example.com/team/web:1.2.3",
                    "imageID": "registry.example.com/team/web@sha256:" + "0" * 64,
                    "containerID": "containerd://" + f"{i:064d}",
                    "started": True,
                    "state": {"running": {"startedAt": "2024-05-01T10:00:01Z"}},
                }
            ],
        },
    }


class Standalone:
    """``python -m rxkube.testing`` in a subprocess, loaded with a file of objects."""

    def __init__(self, objects: list[dict[str, Any]], workdir: Path) -> None:
        seed = workdir / "objects.json"
        namespaces = sorted({o["metadata"].get("namespace") for o in objects} - {None, "default"})
        seed.write_bytes(
            orjson.dumps(
                [
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
                    for n in namespaces
                ]
                + objects
            )
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rxkube.testing",
                "--load",
                str(seed),
                "--bookmark-interval",
                "0",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = ""
        while "listening at" not in line:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the standalone server did not start")
        self.url = urllib.parse.urlsplit(line.rsplit(" ", 1)[1].strip())

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.url.hostname or "", self.url.port, timeout=60)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def bench_list(pods: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = Standalone([realistic_pod(i) for i in range(pods)], Path(tmp))
        try:
            times: list[float] = []
            size = 0
            for _ in range(repeats):
                conn = server.connect()
                started = time.perf_counter()
                conn.request("GET", "/api/v1/pods", headers={"Accept": "application/json"})
                body = conn.getresponse().read()
                times.append(time.perf_counter() - started)
                size = len(body)
                conn.close()
            count = len(orjson.loads(body)["items"])
            print(
                f"list: {count} pods, {size / 1e6:.1f} MB: median {statistics.median(times) * 1000:.0f} ms, "
                f"best {min(times) * 1000:.0f} ms ({size / 1e6 / min(times):.0f} MB/s)"
            )
        finally:
            server.close()


def read_events(response: http.client.HTTPResponse, count: int) -> int:
    """Read raw chunks until ``count`` lines arrived; returns the lines read."""
    lines = 0
    while lines < count:
        chunk = response.read1(1 << 20)
        if not chunk:
            break
        lines += chunk.count(b"\n")
    return lines


def bench_replay(events: int) -> None:
    objects = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": "default"},
                "data": {"k": str(i)}} for i in range(events)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        server = Standalone(objects, Path(tmp))
        try:
            conn = server.connect()
            started = time.perf_counter()
            conn.request("GET", "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1")
            lines = read_events(conn.getresponse(), events)
            elapsed = time.perf_counter() - started
            conn.close()
            print(f"replay: {lines} events in {elapsed:.2f} s = {lines / elapsed:,.0f} events/s")
        finally:
            server.close()


def bench_live(events: int) -> None:
    with ApiServer(bookmark_interval=None) as srv:
        url = urllib.parse.urlsplit(srv.url)
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
        conn.request(
            "GET",
            f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={srv.resource_version}",
        )
        response = conn.getresponse()

        def write() -> None:
            for i in range(events):
                srv.create("configmaps", {"metadata": {"name": f"c{i}"}, "data": {"k": str(i)}})

        writer = threading.Thread(target=write, name="rxkube-bench-writer")
        started = time.perf_counter()
        writer.start()
        lines = read_events(response, events)
        elapsed = time.perf_counter() - started
        writer.join(60)
        conn.close()
        print(
            f"live: {lines} events written and streamed in {elapsed:.2f} s = {lines / elapsed:,.0f} events/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bench_list(args.pods, args.repeats)
    bench_replay(args.events)
    bench_live(min(args.events, 50_000))


if __name__ == "__main__":
    main()
