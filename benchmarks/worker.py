"""Runs one measurement in a fresh process: ``python -m benchmarks.worker NAME``.

The parent writes the ``Params`` and the control channel's address as JSON on stdin; the
worker prints its figures as one JSON line prefixed with ``RESULT `` on stdout. A fresh
process per measurement keeps the clients from sharing imports, caches, threads and
allocator state, and makes RSS growth attributable to one client.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from .measure import COUNTING, Measurement, Params, Result
from .server import Control, ServerProcess

MEASUREMENTS: dict[str, str] = {
    "limit": "benchmarks.limit:measure_limit",
    "rxkube": "benchmarks.rxkube_bench:measure_cache",
    "rxkube_shared": "benchmarks.rxkube_bench:measure_shared",
    "rxkube_relist": "benchmarks.rxkube_bench:measure_relist",
    "rxkube_read": "benchmarks.rxkube_bench:measure_read_cost",
    "kubernetes_informer": "benchmarks.peer_kubernetes:measure_informer",
    "kubernetes_watch": "benchmarks.peer_kubernetes:measure_watch",
    "kr8s": "benchmarks.peer_kr8s:measure",
    "lightkube": "benchmarks.peer_lightkube:measure",
}
"""Measurement names and the functions that perform them."""

_PREFIX = "RESULT "


def _load(name: str) -> Measurement:
    module, _, func = MEASUREMENTS[name].partition(":")
    measurement: Measurement = getattr(importlib.import_module(module), func)
    return measurement


def run(
    name: str,
    params: Params,
    server: ServerProcess,
    timeout: float = 900,
    profile: str | None = None,
) -> Result:
    """Run measurement ``name`` in a new process against ``server`` and return its figures.

    With ``profile`` (a file path), the process runs under ``py-spy record`` and its
    samples, every thread's, are written there as collapsed stacks. With
    ``params.counted``, it runs under callgrind instead, and the figures are the
    instructions of the span the measurement marked (``measure.counting``), per event:
    ``watch_instructions_per_event``.

    Raises:
        RuntimeError: the measurement failed; the message carries the end of its stderr.
    """
    request = {
        "params": dataclasses.asdict(params),
        "control": list(server.control_address),
        "authkey": server.authkey,
    }
    command = [sys.executable, "-m", "benchmarks.worker", name]
    if profile:
        command = [
            "py-spy",
            "record",
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            profile,
            "--",
            *command,
        ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        counts = os.path.join(tmp, "callgrind.out")
        if params.counted:
            command = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={counts}",
                *command,
            ]
            env[COUNTING] = "1"
        proc = subprocess.run(
            command,
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith(_PREFIX):
                result: Result = json.loads(line[len(_PREFIX) :])
                if params.counted:
                    return {"watch_instructions_per_event": _instructions(counts) / params.events}
                return result
    raise RuntimeError(
        f"measurement {name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    )


def _instructions(path: str) -> int:
    """The instructions callgrind counted, from its output file's ``totals:`` line.

    (Its header's ``summary:`` line is the count at the start, 0 with counting off.)
    """
    with open(path) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"callgrind wrote no totals to {path}")


def _exit_with_parent() -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def main(argv: list[str]) -> None:
    """Worker entry point: run the named measurement with the request read from stdin."""
    threading.Thread(target=_exit_with_parent, name="bench-parent", daemon=True).start()
    request: dict[str, Any] = json.loads(sys.stdin.read())
    params = Params(**request["params"])
    ctl = Control(tuple(request["control"]), request["authkey"])
    try:
        result = _load(argv[0])(params, ctl)
    finally:
        ctl.close()
    print(_PREFIX + json.dumps(result), flush=True)
    # Peers leave non-daemon threads and open sockets behind; the figures are out.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
