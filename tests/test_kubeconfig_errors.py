"""Every kubeconfig mistake is one ``ConfigError`` naming the file and the problem.

In Python it is raised by ``Client.from_kubeconfig``; at the command line it is one line
``rxkube: error: ...`` and exit status 1, never a traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rxkube.cli import main
from rxkube.client import Client
from rxkube.errors import ConfigError

DEADLINE = 30.0


def kubeconfig(user: str = "{token: t}", cluster: str = '{server: "https://127.0.0.1:1"}') -> str:
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {cluster}}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n"
        f"users: [{{name: u, user: {user}}}]\n"
    )


MISTAKES: dict[str, tuple[str | bytes, str]] = {
    "malformed-yaml": ("apiVersion: v1\nclusters: [\n", r"is not valid YAML at line 3"),
    "a-yaml-list": ("- a\n- b\n", r"must be a YAML mapping .* not a list"),
    "a-yaml-string": ("just words\n", r"must be a YAML mapping .* not a string"),
    "not-utf8": (b"\x00\x01\xff", r"is not UTF-8 text"),
    "empty": ("", r"is empty"),
    "no-current-context": (
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
        r"current-context",
    ),
    "clusters-not-a-list": (
        "apiVersion: v1\nclusters: 5\ncontexts: []\nusers: []\n",
        r"clusters must be a list, not a number",
    ),
    "context-not-a-mapping": (
        "apiVersion: v1\nclusters: []\ncontexts: [{name: x, context: oops}]\n"
        "current-context: x\nusers: []\n",
        r"contexts\[0\] \(x\): context must be a mapping, not a string",
    ),
    "entry-without-name": (
        "apiVersion: v1\nclusters: [{cluster: {}}]\ncontexts: []\nusers: []\n",
        r"clusters\[0\] has no name",
    ),
    "missing-token-file": (
        kubeconfig(user="{tokenFile: /nonexistent/token}"),
        r"cannot read /nonexistent/token: No such file or directory",
    ),
    "missing-ca-file": (
        kubeconfig(
            cluster='{server: "https://127.0.0.1:1", certificate-authority: /nonexistent/ca}'
        ),
        r"/nonexistent/ca",
    ),
    "bad-ca-data": (
        kubeconfig(
            cluster='{server: "https://127.0.0.1:1", certificate-authority-data: "!!!notbase64"}'
        ),
        r"invalid content: .*base64",
    ),
    "missing-exec-plugin": (
        kubeconfig(
            user="{exec: {apiVersion: client.authentication.k8s.io/v1, command: rxkube-no-such-plugin}}"
        ),
        r"credential plugin 'rxkube-no-such-plugin', which is not found .* on PATH",
    ),
    "no-server": (kubeconfig(cluster="{}"), r"invalid API server URL ''"),
    "not-an-http-server": (kubeconfig(cluster='{server: "ftp://x"}'), r"invalid API server URL"),
    "unknown-cluster": (
        kubeconfig().replace("cluster: c, user", "cluster: nope, user"),
        r"Expected object with name nope",
    ),
}


def write(tmp_path: Path, name: str) -> Path:
    content, _ = MISTAKES[name]
    path = tmp_path / f"{name}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_a_kubeconfig_mistake_is_a_config_error_naming_the_file(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name)
    with pytest.raises(ConfigError, match=MISTAKES[name][1]) as info:
        Client.from_kubeconfig(str(path))
    assert str(path) in str(info.value)


def test_a_missing_file_and_an_unknown_context_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no kubeconfig found at /nonexistent/config"):
        Client.from_kubeconfig("/nonexistent/config")
    path = tmp_path / "ok.yaml"
    path.write_text(kubeconfig())
    with pytest.raises(ConfigError, match=r"context 'nope' not found in kubeconfig .*ok\.yaml"):
        Client.from_kubeconfig(str(path), context="nope")


def rxkube(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rxkube", *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], pattern: str) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rxkube: error: "), proc.stderr
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_the_cli_reports_a_kubeconfig_mistake_in_one_line(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, name)
    assert main(["watch", "pods", "--kubeconfig", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rxkube: error: "), err
    assert re.search(MISTAKES[name][1], lines[0]) and str(path) in lines[0], lines[0]


def test_a_real_cli_process_exits_1_with_one_line_for_a_malformed_kubeconfig(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "malformed-yaml")
    line = assert_one_line_error(
        rxkube("watch", "pods", "--kubeconfig", str(path)), "not valid YAML"
    )
    assert str(path) in line


def test_the_cli_hint_for_a_missing_kubeconfig_speaks_of_its_own_options(tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing-here")
    for proc in (
        rxkube("watch", "pods", "--kubeconfig", missing),
        rxkube("watch", "pods", env={"KUBECONFIG": missing}),
    ):
        line = assert_one_line_error(proc, r"no kubeconfig found at .*nothing-here")
        assert "--kubeconfig PATH or set KUBECONFIG" in line
        assert "path=" not in line and "from_kubeconfig" not in line


def test_the_cli_reports_an_unknown_context_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(kubeconfig())
    assert_one_line_error(
        rxkube("watch", "pods", "--kubeconfig", str(path), "--context", "nope"),
        r"context 'nope' not found .* \(contexts: x\)",
    )
