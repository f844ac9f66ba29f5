"""N overlapping views from one SharedWatches against N private watchers: memory and CPU.

``python -m benchmarks.shared_watches [--objects 4000] [--views 1 4 8] [--updates 2000]``

The test API server runs in a process of its own, so the client's figures are the
client's alone. Each measurement is a fresh process that opens N views of one resource
(a cluster-wide one, then per-namespace, label-selected and metadata-only ones, all covered
by the first), waits until every store is ready, then until every store has seen
``--updates`` relabelling writes. It reports the resident memory it grew by (RSS, after a
GC), its CPU time (user + system) and its watch connections. "private" gives each view a
``watcher()`` and a store of its own; "shared" serves them all from one
``SharedWatches``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from rxkube import (
    Api,
    Client,
    SharedWatches,
    Store,
    default_backoff,
    metadata_watcher,
    reflect,
    store,
    watcher,
)
from rxkube.protocol import Config
from rxkube.selectors import LabelSelector

_NAMESPACES = 4
_TIMEOUT = 300.0


def view_requests(n: int) -> list[dict[str, Any]]:
    """N overlapping requests; the first (cluster-wide, full) covers all the others."""
    shapes: list[Callable[[int], dict[str, Any]]] = [
        lambda i: {"namespace": f"ns{i % _NAMESPACES}"},
        lambda i: {"label_selector": f"group in (g{i % 4},g{(i + 1) % 4})"},
        lambda i: {"label_selector": "tier notin (cache)", "metadata_only": True},
        lambda i: {"namespace": f"ns{i % _NAMESPACES}", "label_selector": f"group=g{i % 4}"},
    ]
    return [{}] + [shapes[i % len(shapes)](i) for i in range(n - 1)]


def configmap(i: int, group: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"cm-{i}",
            "namespace": f"ns{i % _NAMESPACES}",
            "labels": {"group": f"g{group % 4}", "tier": "cache" if i % 3 == 0 else "web"},
        },
        "data": {"payload": "x" * 512, "index": str(i)},
    }


def marker(ns: int, group: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"marker-{group}",
            "namespace": f"ns{ns}",
            "labels": {"group": f"g{group}", "tier": "web"},
        }
    }


def selects(request: dict[str, Any], obj: dict[str, Any]) -> bool:
    """Whether a view's request selects an object (with the selectors rxkube matches by)."""
    meta = obj["metadata"]
    if request.get("namespace") not in (None, meta["namespace"]):
        return False
    return LabelSelector.parse(request.get("label_selector") or "").matches(meta["labels"])


def _cpu(times: Any) -> float:
    return float(times.user + times.system)


def _has_all(reader: Store, objects: list[dict[str, Any]]) -> bool:
    return all(
        reader.get(o["metadata"]["name"], o["metadata"]["namespace"]) is not None for o in objects
    )


def _wait(pred: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _TIMEOUT
    tick = threading.Event()
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        tick.wait(0.01)


def measure(kubeconfig: str, mode: str, views: int, objects: int, updates: int) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    proc = psutil.Process()
    client = Client.from_kubeconfig(kubeconfig)
    writer_client = Client.from_kubeconfig(kubeconfig)
    gc.collect()
    rss0 = proc.memory_info().rss
    cpu0 = proc.cpu_times()
    wall0 = time.monotonic()
    requests = view_requests(views)
    stores: list[Store] = []
    subscriptions = []
    watches = SharedWatches(client, linger=0) if mode == "shared" else None
    for request in requests:
        if watches is not None:
            stores.append(watches.store("configmaps", **request))
            continue
        reader, writer = store("configmaps")
        api = Api(client, "configmaps", namespace=request.get("namespace"))
        config = Config(label_selector=request.get("label_selector"))
        make = metadata_watcher if request.get("metadata_only") else watcher
        subscriptions.append(make(api, config).pipe(reflect(writer), default_backoff()).subscribe())
        stores.append(reader)
    for reader in stores:
        reader.wait_until_ready(_TIMEOUT)
    cpu_listed = proc.cpu_times()
    wall_listed = time.monotonic() - wall0
    # The writes come from another process, so that their CPU is not counted here.
    subprocess.run(
        [sys.executable, "-m", "benchmarks.shared_watches", "--write", kubeconfig,
         "--objects", str(objects), "--updates", str(updates)],
        check=True,
    )  # fmt: skip
    markers = [marker(ns, group) for ns in range(_NAMESPACES) for group in range(4)]
    for request, reader in zip(requests, stores, strict=True):
        wanted = [m for m in markers if selects(request, m)]
        _wait(partial(_has_all, reader, wanted), "every view to see its markers")
    cpu1 = proc.cpu_times()
    gc.collect()
    rss1 = proc.memory_info().rss
    result = {
        "mode": mode,
        "views": views,
        "objects": objects,
        "updates": updates,
        "connections": views if watches is None else len(watches.stats()),
        "rss_mib": (rss1 - rss0) / 2**20,
        "cpu_list_s": _cpu(cpu_listed) - _cpu(cpu0),
        "cpu_updates_s": _cpu(cpu1) - _cpu(cpu_listed),
        "wall_list_s": wall_listed,
    }
    by_ns = [Api(writer_client, "configmaps", namespace=f"ns{ns}") for ns in range(_NAMESPACES)]
    for obj in markers:
        by_ns[int(obj["metadata"]["namespace"][2:])].delete(obj["metadata"]["name"])
    for sub in subscriptions:
        sub.dispose()
    if watches is not None:
        watches.close()
    client.close()
    writer_client.close()
    return result


def write(kubeconfig: str, objects: int, updates: int) -> None:
    """Relabel objects, then write the markers (last, so that they mark the end)."""
    client = Client.from_kubeconfig(kubeconfig)
    by_ns = [Api(client, "configmaps", namespace=f"ns{ns}") for ns in range(_NAMESPACES)]
    for k in range(updates):
        i = k % objects
        by_ns[i % _NAMESPACES].patch(
            # "rev" differs in every run, so that no patch is a no-op the server skips.
            f"cm-{i}",
            {"metadata": {"labels": {"group": f"g{(i + k + 1) % 4}", "rev": str(os.getpid())}}},
        )
    for ns in range(_NAMESPACES):
        for group in range(4):
            by_ns[ns].create(marker(ns, group))
    client.close()


def _serve(kubeconfig: str) -> subprocess.Popen[str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "rxkube.testing", "--kubeconfig", kubeconfig,
         "--bookmark-interval", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert server.stdout is not None
    for line in server.stdout:
        if line.startswith("kubeconfig:"):
            return server
    raise RuntimeError("the test API server did not start")


def _populate(kubeconfig: str, objects: int) -> None:
    client = Client.from_kubeconfig(kubeconfig)
    for ns in range(_NAMESPACES):
        Api(client, "namespaces").create({"metadata": {"name": f"ns{ns}"}})
    apis = [Api(client, "configmaps", namespace=f"ns{ns}") for ns in range(_NAMESPACES)]
    for i in range(objects):
        apis[i % _NAMESPACES].create(configmap(i, i))
    client.close()


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a table (``--child`` runs one measurement)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.shared_watches", description=__doc__
    )
    parser.add_argument("--objects", type=int, default=4000)
    parser.add_argument("--views", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--child", nargs=2, metavar=("KUBECONFIG", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--write", metavar="KUBECONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.write:
        write(args.write, args.objects, args.updates)
        return 0
    if args.child:
        kubeconfig, mode = args.child
        print(json.dumps(measure(kubeconfig, mode, args.views[0], args.objects, args.updates)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = str(Path(tmp) / "kubeconfig")
        server = _serve(kubeconfig)
        try:
            _populate(kubeconfig, args.objects)
            rows = []
            for views in args.views:
                for mode in ("private", "shared"):
                    out = subprocess.run(
                        [sys.executable, "-m", "benchmarks.shared_watches", "--child", kubeconfig,
                         mode, "--views", str(views), "--objects", str(args.objects),
                         "--updates", str(args.updates)],
                        check=True, capture_output=True, text=True, env=os.environ,
                    )  # fmt: skip
                    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{args.objects} configmaps (512 B of data each), {args.updates} relabelling updates\n")
    print("| views | mode | watch connections | RSS growth MiB | CPU list s | CPU updates s "
          "| memory private/shared | CPU private/shared |")  # fmt: skip
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for private, shared in zip(rows[::2], rows[1::2], strict=True):
        cpu_p = private["cpu_list_s"] + private["cpu_updates_s"]
        cpu_s = shared["cpu_list_s"] + shared["cpu_updates_s"]
        for row in (private, shared):
            ratios = (
                f"{private['rss_mib'] / max(shared['rss_mib'], 0.1):.1f}x | {cpu_p / cpu_s:.1f}x"
                if row is shared
                else " | "
            )
            print(
                f"| {row['views']} | {row['mode']} | {row['connections']} | {row['rss_mib']:.1f} "
                f"| {row['cpu_list_s']:.2f} | {row['cpu_updates_s']:.2f} | {ratios} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
