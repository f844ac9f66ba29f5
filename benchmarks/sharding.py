"""``python -m benchmarks.sharding [--objects N] [--quick]``: sharded replicas, memory, CPU, takeover.

Runs ``examples/sharded_controller.py`` as 1, 2 and 4 replica processes over the same
ConfigMaps, against the test API server in its own process, once honouring
``shardSelector`` (a v1.36 server) and once ignoring it (an older server: the replicas
filter client-side). For each run it waits until every object carries its replica's
annotation and the reconciles have settled, then reads each replica's resident memory and
CPU time and the size of its cache. Then, with the default lease (15 s) and three
replicas, it measures takeover: from SIGKILL (and from SIGTERM) of one replica until the
others hold the whole hash space, and until every object is reconciled again.

Prints Markdown tables (with ratios to one replica) for ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from rxkube._shards import HASH_SPACE, normalize, size
from rxkube.client import Api, Client

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sharded_controller.py"
NS = "shards"


class Replica:
    """One ``examples/sharded_controller.py`` process and the JSON lines it printed."""

    def __init__(
        self, identity: str, kubeconfig: Path, logs: Path, extra: tuple[str, ...] = ()
    ) -> None:
        self.identity = identity
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stderr = open(logs / f"{identity}.log", "w")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLE),
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                NS,
                "--id",
                identity,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(json.loads(line))

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The JSON lines of one ``event`` kind printed so far."""
        with self._lock:
            return [line for line in self.lines if line["event"] == kind]

    @property
    def held(self) -> tuple[tuple[int, int], ...]:
        """The ranges of its latest ``ranges`` line."""
        ranges = self.events("ranges")
        if not ranges:
            return ()
        return normalize((int(a, 16), int(b, 16)) for a, b in ranges[-1]["ranges"])

    def signal(self, sig: signal.Signals) -> float:
        """Send a signal; returns when (wall clock)."""
        at = time.time()
        self.process.send_signal(sig)
        return at

    def store(self, timeout: float = 60.0) -> dict[str, Any]:
        """Ask for the keys of its cache (SIGUSR1) and return the line it prints."""
        before = len(self.events("store"))
        self.signal(signal.SIGUSR1)
        wait_for(lambda: len(self.events("store")) > before, timeout, f"{self.identity}'s store")
        return self.events("store")[-1]

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the process to end; its exit code."""
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        self._stderr.close()
        return code

    def kill(self) -> None:
        """SIGKILL it if it still runs, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.wait()


def wait_for(condition: Any, timeout: float = 60.0, what: str = "") -> None:
    """Poll ``condition()`` until true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def covering(*replicas: Replica) -> bool:
    """Whether each replica holds a share and together they hold the space, disjointly."""
    held = [r.held for r in replicas]
    if not all(held):
        return False
    total = sum(size(h) for h in held)
    return total == HASH_SPACE and size(normalize([x for h in held for x in h])) == HASH_SPACE


def reconciled_since(replicas: list[Replica], keys: set[str], since: float) -> bool:
    """Whether every key has a reconcile that started at or after ``since``."""
    seen = {
        line["key"] for r in replicas for line in r.events("reconcile") if line["start"] >= since
    }
    return keys <= seen


class Server:
    """``python -m rxkube.testing`` in its own process, with its kubeconfig."""

    def __init__(self, workdir: Path, *, honoured: bool) -> None:
        self.kubeconfig = workdir / f"kubeconfig-{'sharded' if honoured else 'old'}"
        args = [sys.executable, "-m", "rxkube.testing", "--kubeconfig", str(self.kubeconfig)]
        if not honoured:
            args.append("--ignore-shard-selector")
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("kubeconfig:"):
                break
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        self.client = Client.from_kubeconfig(str(self.kubeconfig))
        self.configmaps = Api(self.client, "configmaps", namespace=NS)

    def fill(self, count: int, data_bytes: int) -> set[str]:
        """Create the namespace and ``count`` ConfigMaps; their keys."""
        Api(self.client, "namespaces").create({"metadata": {"name": NS}})
        value = "x" * data_bytes
        for i in range(count):
            self.configmaps.create({"metadata": {"name": f"cm-{i:05d}"}, "data": {"v": value}})
        return {f"{NS}/cm-{i:05d}" for i in range(count)}

    def touch(self, phase: int) -> float:
        """Change every ConfigMap (so each is reconciled again); returns when it began."""
        began = time.time()
        for cm in self.configmaps.list()["items"]:
            self.configmaps.patch(cm["metadata"]["name"], {"data": {"phase": str(phase)}})
        return began

    def stop(self) -> None:
        """End the server process."""
        self.client.close()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def settle(replicas: list[Replica], quiet: float, timeout: float) -> None:
    """Wait until no replica has printed a reconcile for ``quiet`` seconds."""

    def quiet_now() -> bool:
        last = max((line["end"] for r in replicas for line in r.events("reconcile")), default=0.0)
        return time.time() - last > quiet

    wait_for(quiet_now, timeout, "the reconciles to settle")


def footprint(objects: int, data_bytes: int, workdir: Path) -> list[dict[str, Any]]:
    """Memory, CPU and cache size per replica for 1, 2 and 4 replicas, in both server modes."""
    rows = []
    for honoured in (True, False):
        for count in (1, 2, 4):
            server = Server(workdir, honoured=honoured)
            replicas: list[Replica] = []
            try:
                keys = server.fill(objects, data_bytes)
                started = time.time()
                replicas = [Replica(f"r{i}", server.kubeconfig, workdir) for i in range(count)]
                wait_for(lambda: covering(*replicas), 120, "the replicas to split the space")  # noqa: B023
                wait_for(
                    lambda: reconciled_since(replicas, keys, 0.0),  # noqa: B023
                    600,
                    "every object reconciled",
                )
                ready = time.time() - started
                settle(replicas, 2.0, 300)
                for r in replicas:
                    proc = psutil.Process(r.process.pid)
                    cpu = proc.cpu_times()
                    rows.append(
                        {
                            "server": "v1.36 (shardSelector)" if honoured else "old (ignores it)",
                            "replicas": count,
                            "replica": r.identity,
                            "objects": len(r.store()["keys"]),
                            "rss_mb": proc.memory_info().rss / 2**20,
                            "cpu_s": cpu.user + cpu.system,
                            "all_reconciled_s": ready,
                        }
                    )
                for r in replicas:
                    r.signal(signal.SIGTERM)
                for r in replicas:
                    r.wait()
            finally:
                for r in replicas:
                    r.kill()
                server.stop()
    return rows


def takeover(objects: int, workdir: Path) -> dict[str, float]:
    """Seconds from SIGKILL / SIGTERM of one of three replicas (default lease) to takeover."""
    server = Server(workdir, honoured=True)
    replicas: list[Replica] = []
    figures: dict[str, float] = {}
    try:
        keys = server.fill(objects, 64)
        a, b, c = replicas = [Replica(name, server.kubeconfig, workdir) for name in "abc"]
        wait_for(lambda: covering(a, b, c), 120, "a, b and c to split the space")
        wait_for(lambda: reconciled_since(replicas, keys, 0.0), 300, "every object reconciled")
        settle(replicas, 1.0, 120)

        killed = a.signal(signal.SIGKILL)
        a.wait()
        a_share = {line["key"] for line in a.events("reconcile")}
        wait_for(lambda: covering(b, c), 120, "b and c to take over")
        figures["sigkill_ranges_s"] = time.time() - killed
        wait_for(lambda: reconciled_since([b, c], a_share, killed), 300, "a's share reconciled")
        figures["sigkill_all_reconciled_s"] = time.time() - killed
        began = server.touch(1)
        wait_for(lambda: reconciled_since([b, c], keys, began), 300, "phase 1 reconciled")

        left = b.signal(signal.SIGTERM)
        b.wait()
        wait_for(lambda: size(c.held) == HASH_SPACE, 120, "c to take over")
        figures["sigterm_ranges_s"] = time.time() - left
        # The first reconcile c ran on an object of b's share after the SIGTERM.
        b_share = {line["key"] for line in b.events("reconcile") if line["start"] >= began}
        wait_for(lambda: reconciled_since([c], b_share, left), 300, "b's share reconciled by c")
        starts: dict[str, float] = {}
        for line in c.events("reconcile"):
            if line["start"] >= left and line["key"] in b_share:
                starts.setdefault(line["key"], line["start"])
        figures["sigterm_first_reconcile_s"] = min(starts.values()) - left
        figures["sigterm_all_reconciled_s"] = max(starts.values()) - left
        c.signal(signal.SIGTERM)
        c.wait()
    finally:
        for r in replicas:
            r.kill()
        server.stop()
    return figures


def report(rows: list[dict[str, Any]], figures: dict[str, float], objects: int) -> str:
    """The Markdown tables."""
    lines = [
        f"#### Per replica, {objects} ConfigMaps split among 1, 2 and 4 replicas",
        "",
        "| server | replicas | objects cached (mean) | RSS MiB (mean) | RSS vs 1 replica "
        "| CPU s (mean) | CPU vs 1 replica | all reconciled after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for server in dict.fromkeys(row["server"] for row in rows):
        base: dict[str, float] = {}
        for count in (1, 2, 4):
            group = [r for r in rows if r["server"] == server and r["replicas"] == count]
            rss = sum(r["rss_mb"] for r in group) / len(group)
            cpu = sum(r["cpu_s"] for r in group) / len(group)
            cached = sum(r["objects"] for r in group) / len(group)
            if count == 1:
                base = {"rss": rss, "cpu": cpu}
            lines.append(
                f"| {server} | {count} | {cached:.0f} | {rss:.1f} | {rss / base['rss']:.2f}x "
                f"| {cpu:.2f} | {cpu / base['cpu']:.2f}x | {group[0]['all_reconciled_s']:.1f} s |"
            )
    lines += [
        "",
        "#### Takeover, default lease (15 s), three replicas",
        "",
        "| event | until the others hold the whole hash space (no object touched) |",
        "| --- | ---: |",
        f"| SIGKILL | {figures['sigkill_ranges_s']:.1f} s "
        f"(its objects all reconciled again: {figures['sigkill_all_reconciled_s']:.1f} s) |",
        f"| SIGTERM (graceful leave) | {figures['sigterm_ranges_s']:.2f} s "
        f"(first of its objects reconciled: {figures['sigterm_first_reconcile_s']:.2f} s, "
        f"all: {figures['sigterm_all_reconciled_s']:.2f} s) |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--data-bytes", type=int, default=2048)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    objects = 60 if args.quick else args.objects
    with tempfile.TemporaryDirectory(prefix="rxkube-sharding-") as tmp:
        workdir = Path(tmp)
        rows = footprint(objects, 64 if args.quick else args.data_bytes, workdir)
        figures = takeover(objects, workdir)
    print(report(rows, figures, objects))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "takeover": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
