"""``python -m benchmarks [--quick] [--json PATH]``: run every measurement, print the report.

One run starts the benchmark API server in its own process, then runs each measurement
in a fresh process of its own against it (the limit, rxkube's scenarios, each peer),
prints the Markdown report with every ratio, and writes all figures as JSON.

Where a real kube-apiserver and etcd are found (as ``rxkube.testing.EnvtestServer`` finds
them: ``KUBEBUILDER_ASSETS``), the same run also measures the floor, rxkube and the peers
against them (``REAL_FULL``); without them, the report says in one line why those rows
were not run.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import psutil

from . import report, worker
from .measure import Params
from .server import Control, ServerProcess
from .workload import NAMESPACE

REAL_PEERS = ("lightkube", "kubernetes_informer", "kubernetes_watch")
"""The peers measured on a real server too: the closest one and the official client."""


@dataclass(frozen=True)
class Plan:
    """The sizes of one run."""

    pods: int
    events: int
    lever_events: int
    peer_events: int
    fanout_events: int
    fanout: tuple[int, ...]
    page_size: int
    scale: tuple[int, ...]
    scale_events: int
    counted_events: int = 5_000
    """Watch events counted in instructions under callgrind (0: none; ~70x slower)."""
    counted_fanout: tuple[int, ...] = (1, 100)
    """Fan-out widths counted in instructions too (with the plain pipeline beside them)."""
    counted_scale: tuple[int, ...] = (1_000, 10_000, 100_000)
    """Sizes of the scaling table whose watch (rxkube and floor) is counted in instructions."""
    traced_all: bool = True
    """Traced (memory) runs of every lever and peer too; the quick plan leaves them out,
    as their memory figures mean nothing at tiny sizes."""


FULL = Plan(
    pods=10_000,
    events=100_000,
    lever_events=10_000,
    peer_events=10_000,
    fanout_events=10_000,
    fanout=(1, 10, 100),
    page_size=500,
    scale=(1_000, 10_000, 100_000),
    scale_events=20_000,
)
QUICK = Plan(
    pods=300,
    events=600,
    lever_events=300,
    peer_events=300,
    fanout_events=300,
    fanout=(1, 3),
    page_size=100,
    scale=(100, 200),
    scale_events=200,
    counted_events=100,
    counted_fanout=(),
    counted_scale=(),
    traced_all=False,
)
REAL_FULL = Plan(
    pods=5_000,
    events=10_000,
    lever_events=0,
    peer_events=5_000,
    fanout_events=0,
    fanout=(),
    page_size=500,
    scale=(),
    scale_events=0,
    counted_events=2_000,
    counted_fanout=(),
)
"""The real server's rows: every pod and event goes through kube-apiserver and etcd, a few
milliseconds per write, so fewer of them than on the test server."""
REAL_QUICK = replace(REAL_FULL, pods=100, events=200, peer_events=100, counted_events=50)


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _measurements(
    plan: Plan, peers: list[str], counted: bool
) -> list[tuple[str, str, dict[str, Any]]]:
    """(result key, measurement name, Params overrides) for every run, in order.

    ``counted``: include the runs under callgrind (valgrind is installed).
    """
    runs = _cache_measurements(plan, counted)
    count = {"counted": True, "events": plan.counted_events}
    for lever in (
        "whole_lines",
        "unshared",
        "shared_parts",
        "gc_freeze",
        "drop_managed_fields",
        "metadata_only",
        "metadata_watcher",
        "intern",
        "share",
        "compact",
    ):
        key = f"rxkube:{lever}"
        runs.append((key, "rxkube", {"option": lever, "events": plan.lever_events}))
        if plan.traced_all:
            runs.append((key, "rxkube", {"option": lever, "traced": True, "events": 0}))
    runs.append(("rxkube:relist", "rxkube_relist", {"option": "full", "events": 0}))
    runs.append(("rxkube:relist", "rxkube_relist", {"option": "full", "traced": True, "events": 0}))
    runs.append(
        (
            "rxkube:shared:reflect",
            "rxkube_shared",
            {"option": "reflect", "events": plan.fanout_events},
        )
    )
    for n in plan.fanout:
        runs.append(
            (
                f"rxkube:shared:{n}",
                "rxkube_shared",
                {"subscribers": n, "events": plan.fanout_events},
            )
        )
    if counted and plan.counted_events and plan.counted_fanout:
        runs.append(("rxkube:shared:reflect", "rxkube_shared", {"option": "reflect", **count}))
        for n in plan.counted_fanout:
            runs.append((f"rxkube:shared:{n}", "rxkube_shared", {"subscribers": n, **count}))
    runs.append(("options", "rxkube_read", {"events": 0}))
    return runs + _peer_measurements(plan, peers, counted)


def _cache_measurements(plan: Plan, counted: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """rxkube's cache and the floor: CPU, memory (traced), instructions (counted)."""
    # The limit runs right after rxkube and replays the very events rxkube consumed.
    runs: list[tuple[str, str, dict[str, Any]]] = [
        ("rxkube", "rxkube", {"option": "full"}),
        ("limit", "limit", {}),
        ("limit", "limit", {"traced": True, "events": 0}),
        # Traced twice over: after the list, then once the watch has updated every pod.
        ("rxkube", "rxkube", {"option": "full", "traced": True, "events": plan.pods}),
    ]
    if counted and plan.counted_events:
        count = {"counted": True, "events": plan.counted_events}
        runs.append(("rxkube", "rxkube", {"option": "full", **count}))
        runs.append(("limit", "limit", count))
    return runs


def _peer_measurements(
    plan: Plan, peers: list[str], counted: bool
) -> list[tuple[str, str, dict[str, Any]]]:
    """Each peer's cache: CPU, memory (traced), and the closest peer's instructions."""
    runs: list[tuple[str, str, dict[str, Any]]] = []
    for peer in peers:
        runs.append((peer, peer, {"events": plan.peer_events}))
        if plan.traced_all:
            # lightkube, the closest in memory, is traced after updating every pod too.
            updates = plan.pods if peer == "lightkube" else 0
            runs.append((peer, peer, {"traced": True, "events": updates}))
        # Only the closest peer: the others cost 10x to 70x more per event, minutes under callgrind.
        if counted and plan.counted_events and peer == "lightkube":
            runs.append((peer, peer, {"counted": True, "events": plan.counted_events}))
    return runs


def _real_measurements(
    plan: Plan, peers: list[str], counted: bool
) -> list[tuple[str, str, dict[str, Any]]]:
    """The issue's real-server rows: rxkube and the floor, then ``REAL_PEERS``."""
    real_peers = [peer for peer in peers if peer in REAL_PEERS]
    return _cache_measurements(plan, counted) + _peer_measurements(plan, real_peers, counted)


def _scale_measurements(plan: Plan, counted: bool) -> list[tuple[int, str, str, dict[str, Any]]]:
    """(pods, result key, measurement name, Params overrides) of the scaling table.

    At each size: rxkube's CPU (list and watch), then the floor over the very same events,
    then, at the sizes of ``plan.counted_scale`` when ``counted``, both watches again
    counted in instructions (the watch's CPU per event moves with the machine's load
    more than it moves with the size), then memory and the relist's peak, traced (RSS
    growth at 1,000 pods is mostly the allocator keeping the freed list pages).
    """
    runs: list[tuple[int, str, str, dict[str, Any]]] = []
    count = {"counted": True, "events": plan.counted_events}
    for pods in plan.scale:
        key = f"scale:{pods}"
        runs.append((pods, key, "rxkube", {"option": "full"}))
        runs.append((pods, f"{key}:limit", "limit", {}))
        if counted and plan.counted_events and pods in plan.counted_scale:
            runs.append((pods, key, "rxkube", {"option": "full", **count}))
            runs.append((pods, f"{key}:limit", "limit", count))
        runs.append((pods, key, "rxkube", {"option": "full", "traced": True, "events": 0}))
        runs.append(
            (
                pods,
                f"{key}:relist",
                "rxkube_relist",
                {"option": "full", "traced": True, "events": 0},
            )
        )
    return runs


def _available_peers() -> list[str]:
    import importlib.util

    modules = {
        "kubernetes_informer": "kubernetes.informer",
        "kubernetes_watch": "kubernetes.watch",
        "kr8s": "kr8s",
        "lightkube": "lightkube",
    }
    found = []
    for name, module in modules.items():
        try:
            if importlib.util.find_spec(module) is not None:
                found.append(name)
        except ModuleNotFoundError:
            pass
    return found


def _merge(into: dict[str, Any], figures: dict[str, Any], p: Params) -> None:
    # A traced run's timings are slowed by tracemalloc, a counted one's by callgrind: keep
    # only their memory figures, or their instruction counts.
    for key, value in figures.items():
        if p.traced and "traced" not in key:
            continue
        if p.counted and "instructions" not in key and key != "error":
            continue
        into[key] = value


def run(
    plan: Plan,
    only: set[str] | None = None,
    profile_dir: str | None = None,
    log: Any = sys.stderr,
    *,
    real_plan: Plan | None = REAL_FULL,
    test_server: bool = True,
) -> dict[str, Any]:
    """Run the plan against a fresh server and return every figure.

    Args:
        plan: the sizes.
        only: run only the measurements whose key matches one of these patterns
            (``fnmatch``: ``rxkube``, ``rxkube:*``, ``kubernetes_*``).
        profile_dir: run each untraced measurement under py-spy, writing its samples here.
        log: where progress goes.
        real_plan: the sizes of the real-server rows (``None``: leave them out); they run
            where ``EnvtestServer`` finds kube-apiserver and etcd, and ``results["real"]``
            says why not otherwise.
        test_server: run the measurements against ``rxkube.testing.ApiServer`` (the
            whole report but the real-server rows).
    """
    machine = _machine()
    peers = _available_peers()
    counted = shutil.which("valgrind") is not None
    results: dict[str, Any] = {
        "machine": machine,
        "runs": {},
        "counted": counted,
        "test_server": test_server,
    }

    def wanted(key: str) -> bool:
        return not only or any(fnmatch.fnmatchcase(key, pattern) for pattern in only)

    results["params"] = {
        **plan.__dict__,
        "fanout": list(plan.fanout),
        "scale": list(plan.scale),
        "peers": peers,
    }
    if test_server:
        with ServerProcess(plan.pods) as server:
            results["params"]["load_s"] = server.load_s
            measurements = _measurements(plan, peers, counted)
            _run_all(results["runs"], server, plan, measurements, wanted, profile_dir, log)
        # The scaling table: a server of each size, in turn, so that each holds only its pods.
        scale_runs = [run for run in _scale_measurements(plan, counted) if wanted(run[1])]
        for pods in dict.fromkeys(run[0] for run in scale_runs):
            with ServerProcess(pods) as server:
                results["params"][f"scale_load_s:{pods}"] = server.load_s
                sized = replace(plan, pods=pods, events=plan.scale_events)
                measurements = [run[1:] for run in scale_runs if run[0] == pods]
                _run_all(results["runs"], server, sized, measurements, wanted, profile_dir, log)
    if real_plan is not None:
        results["real"] = _run_real(real_plan, peers, counted, wanted, profile_dir, log)
    return results


def _run_real(
    plan: Plan,
    peers: list[str],
    counted: bool,
    wanted: Any,
    profile_dir: str | None,
    log: Any,
) -> dict[str, Any]:
    """The real-server rows, or ``{"skipped": why}`` when there is no real server to run."""
    from rxkube.testing import EnvtestBinaryNotFound
    from rxkube.testing._envtest import find_binary

    try:
        find_binary("etcd")
        find_binary("kube-apiserver")
    except EnvtestBinaryNotFound as missing:
        return {"skipped": str(missing)}
    real: dict[str, Any] = {"runs": {}, "params": {**plan.__dict__, "peers": peers}}
    print(f"… a real kube-apiserver with {plan.pods:,} pods", end="", file=log, flush=True)
    server = ServerProcess(plan.pods, real=True)
    try:
        server.start()
    except Exception as exc:  # the rest of the report stands without these rows
        print(f"  FAILED: {exc}", file=log)
        return {"skipped": f"the real server did not start: {exc}"}
    print(f"  loaded in {server.load_s:.1f} s", file=log)
    try:
        real["params"]["load_s"] = server.load_s
        real["params"]["warm_up_s"] = _warm_up(server, plan)
        real["version"] = server.version
        measurements = _real_measurements(plan, peers, counted)
        _run_all(real["runs"], server, plan, measurements, wanted, profile_dir, log)
    finally:
        server.stop()
    real["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return real


def _params(server: ServerProcess, plan: Plan) -> Params:
    """The parameters of a measurement of ``plan`` against ``server``."""
    return Params(
        url=server.url,
        kubeconfig=server.kubeconfig,
        namespace=NAMESPACE,
        pods=plan.pods,
        events=plan.events,
        page_size=plan.page_size,
        token=server.token,
        ca_file=server.ca_file,
    )


def _warm_up(server: ServerProcess, plan: Plan) -> float:
    """List every pod once, unmeasured, and return the seconds it took.

    The first list of a real kube-apiserver just loaded is not what the next ones are: in
    one run rxkube, measured first, took 20.5 s wall (2.28 s CPU) to a ready store, and
    3.3-3.9 s in reruns. Every client then meets a server that has served that list.
    """
    from .limit import connect, read_list

    start = time.perf_counter()
    p = _params(server, plan)
    read_list(connect(p), p)
    return time.perf_counter() - start


def _run_all(
    runs: dict[str, Any],
    server: ServerProcess,
    plan: Plan,
    measurements: list[tuple[str, str, dict[str, Any]]],
    wanted: Any,
    profile_dir: str | None,
    log: Any,
) -> None:
    """Run each wanted measurement against ``server``, one fresh process each, into ``runs``."""
    params = _params(server, plan)
    ctl = server.control()
    try:
        for key, name, overrides in measurements:
            if wanted(key):
                p = replace(params, **overrides)
                _run_one(runs, key, name, p, server, ctl, profile_dir, log)
    finally:
        ctl.close()


def _run_one(
    runs: dict[str, Any],
    key: str,
    name: str,
    p: Params,
    server: ServerProcess,
    ctl: Control,
    profile_dir: str | None,
    log: Any,
) -> None:
    """Run one measurement in a fresh process and merge its figures under ``key``."""
    what = f"{key}{' (traced)' if p.traced else ''}{' (counted)' if p.counted else ''}"
    print(f"… {what}", end="", file=log, flush=True)
    start = time.perf_counter()
    profile = None
    if profile_dir and not p.traced and not p.counted:
        profile = os.path.join(profile_dir, key.replace(":", "_") + ".txt")
    try:
        figures = worker.run(name, p, server, profile=profile)
    except Exception as exc:  # one failed measurement must not lose the others
        figures = {"error": str(exc)}
        print(f"  FAILED: {str(exc).splitlines()[-1] if str(exc) else exc}", file=log)
    else:
        print(f"  {time.perf_counter() - start:.1f} s", file=log)
    _merge(runs.setdefault(key, {}), figures, p)
    if name != "rxkube" or p.traced:
        ctl.compact()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the script works")
    parser.add_argument(
        "--json",
        metavar="PATH",
        default="benchmarks/results.json",
        help="where to write every figure (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        help="run only measurements matching this pattern (e.g. limit, 'rxkube*', kr8s); repeatable",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="sample each measurement with py-spy; collapsed stacks go to DIR",
    )
    parser.add_argument(
        "--servers",
        choices=("both", "test", "real"),
        default="both",
        help="rxkube.testing.ApiServer, a real kube-apiserver (found through "
        "KUBEBUILDER_ASSETS, as envtest finds it), or both (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    started = time.perf_counter()
    results = run(
        plan,
        set(args.only) if args.only else None,
        args.profile,
        real_plan=None if args.servers == "test" else (REAL_QUICK if args.quick else REAL_FULL),
        test_server=args.servers != "real",
    )
    results["wall_s"] = time.perf_counter() - started
    text = report.render(results)
    print(text)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"figures written to {args.json} ({results['wall_s']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
