"""The benchmark script runs end to end at tiny sizes (no timing is asserted: benchmarks are a script)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rxkube.testing._envtest import ASSETS_VARIABLE, binaries_available

ROOT = Path(__file__).resolve().parent.parent


# Several fresh client processes in a row: 36 s on a quiet machine, past the suite's default
# timeout on a loaded one. The subprocess's own 600 s timeout still bounds it.
@pytest.mark.timeout(600)
def test_benchmarks_quick_run_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    out = tmp_path / "results.json"
    # No real server here, whatever this machine has: the report says so in one line.
    no_binaries = {ASSETS_VARIABLE: str(tmp_path / "empty")}
    stdout = run_benchmarks("benchmarks", "--quick", "--json", str(out), env=no_binaries)
    assert "| client" in stdout
    assert "## Targets" in stdout
    results = json.loads(out.read_text())
    runs = results["runs"]
    failed = {name: r["error"][-500:] for name, r in runs.items() if "error" in r}
    assert not failed, failed
    names = ("limit", "rxkube", "rxkube:metadata_watcher", "rxkube:compact", "rxkube:relist")
    shared = ("rxkube:shared:reflect", "rxkube:shared:1", "options")
    for name in (*names, *shared, "scale:100", "scale:200:limit", "scale:200:relist"):
        assert name in runs, f"{name} missing from {sorted(runs)}"
    assert runs["rxkube"]["events_per_s"] > 0
    assert runs["rxkube"]["mem_traced_per_pod"] > 0
    assert runs["rxkube"]["ready_cpu_s"] > 0 and runs["rxkube"]["watch_cpu_us_per_event"] > 0
    assert runs["limit"]["parse_events_per_s"] > 0
    # The list's full collections, and the list with the collector off beside the floor's.
    assert runs["limit"]["list_full_collections"] >= 0
    assert runs["rxkube"]["ready_full_collections"] >= 0
    assert "collector off during the list |" in stdout
    assert "list→ready with the collector off at" in stdout
    assert runs["rxkube:shared:1"]["cpu_us_per_event"] > 0
    assert "store_shared, 1 subscriber |" in stdout
    assert runs["scale:200"]["mem_traced_per_pod"] > 0
    assert "## The issue's rows" in stdout and "## Scaling" in stdout
    if shutil.which("valgrind"):  # the watch is also counted in instructions, under callgrind
        for name in ("rxkube", "limit"):
            assert runs[name]["watch_instructions_per_event"] > 0
        assert "instructions per MODIFIED event (callgrind)" in stdout
    assert results["real"]["skipped"].startswith("etcd not found at")
    [line] = [line for line in stdout.splitlines() if "Real-server rows not run" in line]
    assert ASSETS_VARIABLE in line and str(tmp_path / "empty" / "etcd") in line
    scaling = stdout.split("## Scaling", 1)[1]
    assert [line.split("|")[1].strip() for line in scaling.splitlines()[4:7]] == [
        "100",
        "200",
        "spread",
    ]


def test_store_reads_benchmark_prints_its_table() -> None:
    stdout = run_benchmarks("benchmarks.reads", "--pods", "20")
    assert "| get (plain) |" in stdout and "| state, scanned (plain) |" in stdout
    assert "| copy_object" in stdout


@pytest.mark.timeout(900)
@pytest.mark.skipif(
    not binaries_available(), reason=f"no kube-apiserver and etcd (set {ASSETS_VARIABLE})"
)
def test_benchmarks_real_server_rows_at_tiny_sizes(tmp_path: Path) -> None:
    """Against a real kube-apiserver and etcd: the pods go in through the API, every
    measurement of the real-server rows runs, and the report prints them."""
    pytest.importorskip("psutil")
    out = tmp_path / "results.json"
    stdout = run_benchmarks("benchmarks", "--quick", "--servers", "real", "--json", str(out))
    real = json.loads(out.read_text())["real"]
    failed = {name: r["error"][-500:] for name, r in real["runs"].items() if "error" in r}
    assert not failed, failed
    assert real["version"]["gitVersion"].startswith("v1.") and real["version"]["etcd"]
    assert real["runs"]["limit"]["list_read_parse_s"] > 0
    peers = [
        peer for peer in ("lightkube", "kubernetes_informer") if peer in real["params"]["peers"]
    ]
    for name in ("rxkube", *peers):
        assert real["runs"][name]["ready_cpu_s"] > 0, name
        assert real["runs"][name]["watch_cpu_us_per_event"] > 0, name
        assert real["runs"][name]["mem_traced_per_pod"] > 0, name
    assert "## On a real kube-apiserver" in stdout and "list → ready cache" in stdout


def run_benchmarks(module: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``python -m module args`` from the repository; its stdout, once it succeeded.

    ``env`` adds to (or replaces) this process's environment; ``TEST_ASSET_*`` variables
    are dropped when it names ``KUBEBUILDER_ASSETS``.
    """
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if env and ASSETS_VARIABLE in env:
        environ = {k: v for k, v in environ.items() if not k.startswith("TEST_ASSET_")}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=environ,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_shared_watches_benchmark_prints_its_table() -> None:
    pytest.importorskip("psutil")
    stdout = run_benchmarks(
        "benchmarks.shared_watches", "--objects", "40", "--views", "3", "--updates", "20"
    )
    assert "| 3 | private | 3 |" in stdout and "| 3 | shared | 1 |" in stdout


def test_scaling_table_counts_each_sizes_watch_in_instructions() -> None:
    from benchmarks import report
    from benchmarks.__main__ import FULL, _scale_measurements

    counted = {
        (pods, key, name)
        for pods, key, name, overrides in _scale_measurements(FULL, counted=True)
        if overrides.get("counted")
    }
    assert counted == {
        (pods, key, name)
        for pods in FULL.counted_scale
        for key, name in ((f"scale:{pods}", "rxkube"), (f"scale:{pods}:limit", "limit"))
    }
    assert not any(o.get("counted") for *_, o in _scale_measurements(FULL, counted=False))

    def size(pods: int, instructions: float) -> dict[str, dict[str, float]]:
        figures = {"ready_cpu_s": 1.0, "ready_s": 2.0, "watch_cpu_us_per_event": 70.0}
        return {
            f"scale:{pods}": {**figures, "watch_instructions_per_event": instructions},
            f"scale:{pods}:limit": {"watch_instructions_per_event": 200_000.0},
        }

    table = report.scale_table({**size(1_000, 240_000.0), **size(10_000, 260_000.0)})
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()}
    assert "watch instructions/event" in table
    assert "240,000" in rows["1,000"] and f"1.20{report.X}" in rows["1,000"]
    assert "260,000" in rows["10,000"] and f"1.30{report.X}" in rows["10,000"]
    assert "±4%" in rows["spread"]
