"""The benchmark script runs end to end at tiny sizes (no timing is asserted: benchmarks are a script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_benchmarks_quick_run_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| client" in proc.stdout
    assert "## Targets" in proc.stdout
    results = json.loads(out.read_text())
    runs = results["runs"]
    failed = {name: r["error"][-500:] for name, r in runs.items() if "error" in r}
    assert not failed, failed
    for name in ("limit", "rxkube", "rxkube:metadata_watcher", "rxkube:relist", "options"):
        assert name in runs, f"{name} missing from {sorted(runs)}"
    assert runs["rxkube"]["events_per_s"] > 0
    assert runs["rxkube"]["mem_traced_per_pod"] > 0
    assert runs["limit"]["parse_events_per_s"] > 0


def test_store_reads_benchmark_prints_its_table() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.reads", "--pods", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| get (plain) |" in proc.stdout and "| copy_object" in proc.stdout
