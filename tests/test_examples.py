"""The examples in examples/ greet a user with no cluster as the ``rxkube`` command does.

What each example does is tested where its subject is: ``configmap_controller.py`` end to
end in tests/test_controller.py and tests/test_probes.py (``--demo``, against the embedded
API server), ``sharded_controller.py`` as several real processes in tests/test_sharding.py.
Here: started without a usable kubeconfig, each ends at once with one line naming the
problem and status 1, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEADLINE = 60.0


@pytest.mark.parametrize(
    ("example", "args"),
    [
        ("configmap_controller.py", []),
        ("sharded_controller.py", ["--namespace", "default", "--id", "a"]),
    ],
)
def test_an_example_without_a_kubeconfig_fails_in_one_line(
    example: str, args: list[str], tmp_path: Path
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
    }
    env["HOME"] = str(tmp_path)  # no ~/.kube/config either
    missing = tmp_path / "no-such-kubeconfig"
    if example == "sharded_controller.py":
        args = [*args, "--kubeconfig", str(missing)]
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=DEADLINE,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{example}: error: ") and "kubeconfig" in lines[0]
