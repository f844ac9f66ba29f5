"""The ``rxkube`` command line: demo, watch and serve, and its one-line errors.

Commands that run until interrupted are started as real processes (``python -m rxkube``)
and read line by line with deadlines; errors are checked in-process through ``main()``.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from rxkube.cli import _EventPrinter, main
from rxkube.client import Api, Client
from rxkube.events import Init, InitApply, InitDone
from rxkube.testing import ApiServer

DEADLINE = 30.0
"""Seconds any one expected line or exit may take, even on a busy machine."""


def pod(name: str, **labels: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]},
    }


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Proc:
    """A ``python -m rxkube`` process whose output lines can be awaited."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "rxkube", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            # On a hang, wait() sends SIGABRT: the fault handler then prints every thread.
            env={**os.environ, "PYTHONFAULTHANDLER": "1", **(env or {})},
            # A suite started in the background of a shell inherits SIGINT ignored, and
            # Python then installs no Ctrl+C handler: give the child what a terminal gives.
            preexec_fn=_default_sigint,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.stderr_lines: list[str] = []
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self._readers = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump_stdout(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.stderr_lines.append(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = DEADLINE) -> str:
        """Wait for a stdout line matching ``pattern`` (a regex); return it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.0, left))
            except queue.Empty:
                line = None
                left = 0
            if line is not None:
                self.seen.append(line)
                if re.search(pattern, line):
                    return line
                continue
            raise AssertionError(
                f"no line matching {pattern!r} within {timeout} s"
                f"{' (the process ended)' if left > 0 else ''}; stdout so far:\n"
                + "\n".join(self.seen)
                + "\nstderr:\n"
                + "\n".join(self.stderr_lines)
            )

    def interrupt(self) -> int:
        """Send Ctrl+C and wait for the exit status."""
        self.popen.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.send_signal(signal.SIGABRT)
            self.popen.wait(timeout=timeout)
            for reader in self._readers:
                reader.join(timeout=timeout)
            raise AssertionError(
                f"the process did not exit within {timeout} s; its threads:\n"
                + "\n".join(self.stderr_lines)
            ) from None
        for reader in self._readers:
            reader.join(timeout=timeout)
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=DEADLINE)


@pytest.fixture
def srv() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


@pytest.fixture
def kubeconfig(srv: ApiServer, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    srv.write_kubeconfig(path)
    return path


@pytest.fixture
def pods(srv: ApiServer) -> Iterator[Api]:
    client = srv.client()
    try:
        yield Api(client, "pods", namespace="default")
    finally:
        client.close()


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("rxkube: error: ")
    return lines[0]


# -- usage --------------------------------------------------------------------------


def test_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "watch", "serve"):
        assert command in out


def test_no_command_prints_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: rxkube" in capsys.readouterr().err


def test_bad_option_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--duration", "soon"]) == 2
    assert "not a number" in capsys.readouterr().err


def test_demo_with_more_pods_than_it_can_show_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--pods 1e20 used to spend the whole run creating pods, printing nothing."""
    assert main(["demo", "--pods", "100000000000000000000"]) == 2
    assert "argument --pods: at most 10,000" in capsys.readouterr().err


def test_python_dash_m_runs_the_same_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rxkube", "watch", "--help"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 0
    assert "--field-selector" in done.stdout


# -- errors a user can cause ----------------------------------------------------------


def test_watch_without_kubeconfig_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert main(["watch", "pods"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "kubeconfig" in line


def test_watch_with_unknown_context_fails_in_one_line(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["watch", "pods", "--kubeconfig", str(kubeconfig), "--context", "nope"]) == 1
    assert "nope" in one_error_line(capsys.readouterr().err)


def test_watch_of_unreachable_server_fails_in_one_line(
    srv: ApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path / "kubeconfig"
    srv.write_kubeconfig(path)
    text = re.sub(r"server: \S+", f"server: http://127.0.0.1:{port}", path.read_text())
    path.write_text(text)
    assert main(["watch", "pods", "--kubeconfig", str(path)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"127.0.0.1:{port}" in line


class SilentServer:
    """A port that accepts connections and never answers, and a kubeconfig pointing at it."""

    def __init__(self, srv: ApiServer, path: Path) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.accepted = threading.Event()
        self._held: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()
        srv.write_kubeconfig(path)
        self.kubeconfig = path
        path.write_text(
            re.sub(r"server: \S+", f"server: http://127.0.0.1:{self.port}", path.read_text())
        )

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self._held.append(self._socket.accept()[0])  # read nothing, answer nothing
                self.accepted.set()

    def close(self) -> None:
        self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._acceptor.join(timeout=DEADLINE)
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent(srv: ApiServer, tmp_path: Path) -> Iterator[SilentServer]:
    server = SilentServer(srv, tmp_path / "kubeconfig")
    try:
        yield server
    finally:
        server.close()


def test_watch_of_a_server_that_never_answers_says_so_when_its_timeout_ends(
    silent: SilentServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["watch", "pods", "--timeout", "1", "--kubeconfig", str(silent.kubeconfig)]
    assert main(argv) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line == (
        f"rxkube: error: no complete list of pods from http://127.0.0.1:{silent.port} within 1 s:"
        " the server accepted the connection but did not answer in time"
    )


def test_watch_of_unknown_resource_fails_in_one_line(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["watch", "widgets", "--kubeconfig", str(kubeconfig)]) == 1
    assert "widgets" in one_error_line(capsys.readouterr().err)


def test_watch_with_invalid_label_selector_fails_in_one_line(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["watch", "pods", "-l", "app in (web", "--kubeconfig", str(kubeconfig)]) == 1
    assert "label selector" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("namespace", "problem"), [("bad/ns", "may not contain '/'"), ("..", "may not be '..'")]
)
def test_watch_in_a_namespace_no_path_can_hold_fails_in_one_line(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str], namespace: str, problem: str
) -> None:
    """Not a 404 explained as a missing resource type; ``..`` would watch every namespace."""
    assert main(["watch", "pods", "-n", namespace, "--kubeconfig", str(kubeconfig)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line == f"rxkube: error: invalid namespace {namespace!r}: {problem}"


def test_watch_with_field_the_server_rejects_fails_in_one_line(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["watch", "pods", "--field-selector", "spec.nope=x", "--kubeconfig", str(kubeconfig)]
    assert main(argv) == 1
    assert "spec.nope" in one_error_line(capsys.readouterr().err)


# -- watch ----------------------------------------------------------------------------


def test_watch_lists_then_prints_one_line_per_change_and_survives_a_relist(
    srv: ApiServer, kubeconfig: Path, pods: Api
) -> None:
    pods.create(pod("web-0", app="web"))
    pods.create(pod("web-1", app="web"))
    proc = Proc("watch", "pods", "-n", "default", "--kubeconfig", str(kubeconfig))
    try:
        proc.expect(r"^EVENT\s+NAME\s+STATUS\s+AGE$")
        proc.expect(r"^ADDED\s+web-0\s+Pending")
        proc.expect(r"^ADDED\s+web-1\s+Pending")
        pods.patch("web-0", {"status": {"phase": "Running"}}, subresource="status")
        proc.expect(r"^MODIFIED\s+web-0\s+Running")
        pods.delete("web-1")
        proc.expect(r"^DELETED\s+web-1")

        # While the watch is down, its history is compacted away: 410 Gone, a relist,
        # and only what changed meanwhile is printed.
        srv.faults.delay_responses(1.0, 1, verb="watch")
        srv.faults.close_watches()
        pods.create(pod("web-2"))
        srv.compact()
        proc.expect(r"^ADDED\s+web-2\s+Pending")
        pods.delete("web-0")
        proc.expect(r"^DELETED\s+web-0")
        assert proc.interrupt() == 130
    finally:
        proc.kill()
    assert proc.stderr_lines[-1] == "rxkube: interrupted"
    stderr = "\n".join(proc.stderr_lines)
    assert "Traceback" not in stderr
    assert "listed 2 pods" in stderr
    assert "relisted 2 pods" in stderr
    assert [line.split()[:2] for line in proc.seen if "web-2" in line] == [["ADDED", "web-2"]]


@pytest.mark.parametrize("timeout", ["inf", "1e10"])
def test_watch_with_a_timeout_beyond_any_wait_runs_until_ctrl_c(
    kubeconfig: Path, pods: Api, timeout: str
) -> None:
    """``threading`` overflows on such a timeout; the command takes it as no limit."""
    pods.create(pod("web-0"))
    proc = Proc("watch", "pods", "--kubeconfig", str(kubeconfig), "--timeout", timeout)
    try:
        proc.expect(r"^ADDED\s+web-0")
        pods.delete("web-0")
        proc.expect(r"^DELETED\s+web-0")
        assert proc.interrupt() == 130
    finally:
        proc.kill()
    assert "Traceback" not in "\n".join(proc.stderr_lines)


def test_watch_shows_a_custom_resource_whatever_its_status_holds(
    srv: ApiServer, kubeconfig: Path
) -> None:
    """A custom resource's status may be any JSON: ``conditions: 5`` once ended the watch."""
    srv.add_resource("example.com", "v1", "Widget", "widgets")
    widgets = Api(srv.client(), "widgets", namespace="default")
    widgets.create({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w0"}})
    proc = Proc("watch", "widgets", "--kubeconfig", str(kubeconfig))
    try:
        proc.expect(r"^ADDED\s+w0\s+-")
        for status, shown in (
            ({"conditions": 5}, "-"),
            ({"conditions": {"type": "Ready", "status": "True"}}, "-"),
            ({"conditions": [1, "x", None, {"type": "Ready", "status": "False"}]}, "NotReady"),
            ({"phase": ["Running"], "conditions": "Ready"}, "-"),
            ({"phase": 7}, "7"),
        ):
            obj = widgets.get("w0")
            widgets.replace_status({**obj, "status": status})
            proc.expect(rf"^MODIFIED\s+w0\s+{shown}\s")
        assert proc.interrupt() == 130
    finally:
        proc.kill()
    assert "Traceback" not in "\n".join(proc.stderr_lines)


def test_watch_json_output_is_one_event_per_line(
    srv: ApiServer, kubeconfig: Path, pods: Api
) -> None:
    import json

    pods.create(pod("web-0"))
    proc = Proc("watch", "po", "-A", "-o", "json", "--kubeconfig", str(kubeconfig))
    try:
        first = json.loads(proc.expect(r'"type":"ADDED"'))
        assert first["object"]["metadata"]["name"] == "web-0"
        pods.patch("web-0", {"metadata": {"labels": {"tier": "a"}}})
        changed = json.loads(proc.expect(r'"type":"MODIFIED"'))
        assert changed["object"]["metadata"]["labels"] == {"tier": "a"}
        assert proc.interrupt() == 130
    finally:
        proc.kill()


def test_watch_rows_show_control_characters_escaped_as_kubectl_does(
    srv: ApiServer, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names the server accepts (RBAC names refuse only '/', '%', '.' and '..') and free
    status text cannot forge rows or reach the terminal as escape sequences."""
    client = srv.client()
    try:
        roles = Api(client, "clusterroles")
        for name in ("ok\nDELETED   admin", "red\x1b[31m", "bell\x07\x9b\x7f"):
            roles.create({"metadata": {"name": name}})
        srv.add_resource("example.com", "v1", "Widget", "widgets")
        widgets = Api(client, "widgets", namespace="default")
        widget = widgets.create({"metadata": {"name": "w"}})
        widgets.replace_status({**widget, "status": {"phase": "Up\x1b[2J\rDELETED"}})
    finally:
        client.close()
    for resource in ("clusterroles", "widgets"):
        argv = ["watch", resource, "--timeout", "1", "-o", "wide", "--kubeconfig", str(kubeconfig)]
        assert main(argv) == 0
    out = capsys.readouterr().out
    rows = [line.split()[:3] for line in out.splitlines() if not line.startswith("EVENT")]
    assert ["ADDED", "ok...", "-"] in rows
    assert ["ADDED", "red^[[31m", "-"] in rows
    assert ["ADDED", "bell^G\\x9b^?", "-"] in rows
    assert ["ADDED", "w", "Up^[[2J..."] in rows
    assert len(rows) == len(Api(srv.client(), "clusterroles").list()["items"]) + 1
    assert not any(char in out for char in "\x1b\x07\x9b\x7f\r")


def test_an_error_line_shows_control_characters_escaped(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server's message echoes the field selector as it was sent."""
    argv = ["watch", "pods", "--field-selector", "spec.no\x1b[2Jpe=x"]
    assert main([*argv, "--kubeconfig", str(kubeconfig)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "spec.no^[[2Jpe" in line and "\x1b" not in line


def test_watch_metadata_only_wide_shows_labels(
    kubeconfig: Path, pods: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    pods.create(pod("web-0", app="web"))
    argv = ["watch", "pods", "-A", "--metadata-only", "-o", "wide", "--kubeconfig", str(kubeconfig)]
    proc = Proc(*argv)
    try:
        header = proc.expect(r"^EVENT")
        assert header.split() == [
            "EVENT",
            "NAMESPACE",
            "NAME",
            "STATUS",
            "AGE",
            "RESOURCE-VERSION",
            "LABELS",
        ]
        assert "app=web" in proc.expect(r"web-0")
        assert proc.interrupt() == 130
    finally:
        proc.kill()


# -- demo -----------------------------------------------------------------------------


def test_demo_shows_the_cache_matching_the_server_without_a_terminal() -> None:
    proc = Proc("demo", "--duration", "3", "--pods", "12")
    try:
        proc.expect(r"watcher → reflect_shared → default_backoff")
        proc.expect(r"^\[ *\d+\.\d s\] pods=\d+")
        proc.expect(r"^✓ .*cache == server")
        proc.expect(r"^✓ \d+/\d+ checks: the cache matched the server through [1-9]\d* relist")
        assert proc.wait() == 0
    finally:
        proc.kill()
    assert not any(line.startswith("✗") for line in proc.seen)
    assert "Traceback" not in "\n".join(proc.stderr_lines)


def test_demo_redraws_in_place_on_a_terminal() -> None:
    import io

    from rxkube._demo import run_demo

    out = io.StringIO()
    assert run_demo(duration=1.5, pods=6, out=out, seed=1, tty=True) == 0
    text = out.getvalue()
    assert "\x1b[" in text  # cursor movement: the frame is redrawn, not appended
    assert "HTTP watches open 1" in text
    assert "checks: the cache matched the server" in text


@pytest.mark.parametrize("columns", [60, 80])
def test_demo_frame_fits_the_terminal_so_redraws_leave_nothing_behind(
    columns: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rxkube._demo import run_demo

    monkeypatch.setenv("COLUMNS", str(columns))
    out = io.StringIO()
    assert run_demo(duration=1.5, pods=6, out=out, seed=1, tty=True) == 0
    text = out.getvalue()
    redraws = list(re.finditer(r"\x1b\[(\d+)F\x1b\[J", text))
    assert redraws
    for redraw in redraws:
        # The frame about to be cleared: as many lines as the cursor moves up, each of
        # which must take one row (a wrapped line would take two and be left behind).
        frame = text[: redraw.start()].split("\n")[-int(redraw[1]) - 1 : -1]
        widths = [len(re.sub(r"\x1b\[[0-9;]*m", "", line)) for line in frame]
        assert max(widths) < columns, frame


def test_demo_ends_cleanly_on_ctrl_c() -> None:
    proc = Proc("demo", "--duration", "60")
    try:
        proc.expect(r"^\[ *\d+\.\d s\] pods=")
        assert proc.interrupt() == 130
    finally:
        proc.kill()
    assert proc.stderr_lines == ["rxkube: interrupted"]
    assert "Traceback" not in "\n".join(proc.stderr_lines)


# -- Ctrl+C at any moment -----------------------------------------------------------

BLOCK_IMPORT = """
import os, sys, time

class _BlockImport:
    # Holds one import until a signal interrupts it, as a Ctrl+C while a slow disk or a
    # busy machine loads a module would.
    target = os.environ["RXKUBE_TEST_BLOCK_IMPORT"]

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == cls.target:
            sys.meta_path.remove(cls)
            print(f"importing {name}", flush=True)
            time.sleep(60)  # until the test's SIGINT; the test's own waits are bounded
        return None

sys.meta_path.insert(0, _BlockImport)
"""


@pytest.fixture
def block_import(tmp_path: Path) -> Callable[[str], dict[str, str]]:
    """The environment of a child that stops, printing ``importing NAME``, when it imports NAME."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(BLOCK_IMPORT)

    def env(module: str) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)
        return {"PYTHONPATH": path, "RXKUBE_TEST_BLOCK_IMPORT": module}

    return env


def interrupted_in_one_line(proc: Proc) -> None:
    assert proc.interrupt() == 130
    assert proc.stderr_lines == ["rxkube: interrupted"]


@pytest.mark.parametrize(
    ("command", "module"),
    [
        ("watch", "rxkube.cli"),  # python -m rxkube is still importing the command line
        ("watch", "reactivex"),  # the first import of a dependency, wherever it is
        ("watch", "rxkube._watching"),
        ("demo", "rxkube._demo"),
        ("demo", "rxkube.testing"),
        ("serve", "rxkube.testing.__main__"),
    ],
)
def test_ctrl_c_while_a_command_imports_its_modules_ends_in_one_line(
    command: str,
    module: str,
    kubeconfig: Path,
    block_import: Callable[[str], dict[str, str]],
) -> None:
    args = {"watch": ["pods", "--kubeconfig", str(kubeconfig)], "demo": [], "serve": []}[command]
    proc = Proc(command, *args, env=block_import(module))
    try:
        proc.expect(rf"^importing {re.escape(module)}$")
        interrupted_in_one_line(proc)
    finally:
        proc.kill()


def test_the_import_blocker_blocks_the_import_it_names(
    block_import: Callable[[str], dict[str, str]],
) -> None:
    """Without this, a blocker that never fired would make the test above pass vacuously."""
    proc = Proc("watch", "--help", env=block_import("argparse"))
    try:
        proc.expect(r"^importing argparse$")
        assert proc.popen.poll() is None  # held there, not yet printing the help
        interrupted_in_one_line(proc)
    finally:
        proc.kill()
    assert not any("--field-selector" in line for line in proc.seen)


def test_ctrl_c_while_the_first_list_is_awaited_ends_in_one_line(silent: SilentServer) -> None:
    proc = Proc("watch", "pods", "--kubeconfig", str(silent.kubeconfig))
    try:
        assert silent.accepted.wait(DEADLINE)
        interrupted_in_one_line(proc)
    finally:
        proc.kill()


# -- serve ----------------------------------------------------------------------------


def test_serve_writes_a_kubeconfig_that_clients_can_use(tmp_path: Path) -> None:
    path = tmp_path / "served.yaml"
    proc = Proc("serve", "--kubeconfig", str(path))
    try:
        proc.expect(r"^kubeconfig: " + re.escape(str(path)))
        with Client.from_kubeconfig(str(path)) as client:
            api = Api(client, "configmaps", namespace="default")
            api.create({"metadata": {"name": "hello"}, "data": {"a": "b"}})
            assert [o["metadata"]["name"] for o in api.list()["items"]] == ["hello"]
        assert proc.interrupt() == 0
    finally:
        proc.kill()
    assert "Traceback" not in "\n".join(proc.stderr_lines)


def test_serve_writes_the_kubeconfig_it_is_given_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "served.yaml"
    path.write_text("an older, world-readable file")
    path.chmod(0o644)
    proc = Proc("serve", "--kubeconfig", str(path), "--token", "s3cret")
    try:
        proc.expect(r"^kubeconfig: ")
        assert path.stat().st_mode & 0o777 == 0o600
        assert "s3cret" in path.read_text()
        assert proc.interrupt() == 0
    finally:
        proc.kill()
    assert path.exists()  # the user's file is the user's to remove


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_removes_its_temporary_kubeconfig_when_stopped_by_a_signal(
    sig: signal.Signals,
) -> None:
    proc = Proc("serve", "--token", "s3cret")
    try:
        line = proc.expect(r"^kubeconfig: ")
        path = Path(line.removeprefix("kubeconfig: "))
        assert path.name.startswith("rxkube-kubeconfig-")
        assert path.stat().st_mode & 0o777 == 0o600
        proc.popen.send_signal(sig)
        assert proc.wait() == 0
    finally:
        proc.kill()
    assert not path.exists()
    assert "Traceback" not in "\n".join(proc.stderr_lines)


CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
"""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m rxkube ARGS`` to its end (a command that fails at start)."""
    return subprocess.run(
        [sys.executable, "-m", "rxkube", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a: [1\n", r"bad\.yaml: not valid YAML: .* \(line 2, column 1\)"),
        ("- 1\n- 2\n", r"bad\.yaml: expected Kubernetes objects .* found '1'"),
        (
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
            r"Widget 'w': the test API server does not serve example\.com/v1 Widget; load its"
            r" CustomResourceDefinition first",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
            r"ConfigMap 'Bad_Name': 422 Invalid: .*metadata\.name",
        ),
        (
            CRD.split("---")[0].replace("name: widgets.example.com", "name: widgets.example.org"),
            r"CustomResourceDefinition 'widgets\.example\.org': 422 Invalid: .*metadata\.name: "
            r'Invalid value: "widgets\.example\.org": must be spec\.names\.plural\+"\."\+spec\.group',
        ),
    ],
    ids=["invalid-yaml", "not-objects", "unserved-kind", "invalid-object", "invalid-crd"],
)
def test_serve_load_of_a_bad_file_fails_in_one_line(
    tmp_path: Path, content: str, expected: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    result = run_cli("serve", "--load", str(bad))
    assert result.returncode == 1
    assert re.fullmatch(r"rxkube: error: .*" + expected + ".*", one_error_line(result.stderr))


def test_serve_load_of_a_missing_file_fails_in_one_line(tmp_path: Path) -> None:
    result = run_cli("serve", "--load", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert one_error_line(result.stderr).endswith("nope.yaml: No such file or directory")


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_serve_with_an_impossible_port_is_a_usage_error(port: str) -> None:
    result = run_cli("serve", "--port", port)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "--port" in result.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--bookmark-interval", "-1"),
        ("--bookmark-interval", "nan"),
        ("--bookmark-interval", "soon"),
        ("--compact-every", "0"),
        ("--compact-every", "1.5"),
    ],
)
def test_serve_with_an_impossible_setting_is_a_usage_error(option: str, value: str) -> None:
    """A negative bookmark interval would send bookmarks in a loop; it never starts."""
    result = run_cli("serve", option, value)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"argument {option}:" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("host", ["", " "])
def test_serve_on_no_host_is_a_usage_error_that_says_how_to_listen_everywhere(host: str) -> None:
    """asyncio listens on every interface for "", and the kubeconfig said http://:PORT."""
    result = run_cli("serve", "--host", host)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"rxkube serve: error: argument --host: host {host!r} is no address to listen on:"
        " give 0.0.0.0 (or ::) for every interface, 127.0.0.1 for this machine only"
    )


def test_serve_on_every_interface_writes_a_kubeconfig_naming_loopback(tmp_path: Path) -> None:
    """A wildcard address is where to listen, not where to connect; the generated
    certificate names loopback, so TLS is verified too."""
    path = tmp_path / "served.yaml"
    proc = Proc("serve", "--host", "0.0.0.0", "--tls", "--kubeconfig", str(path))
    try:
        line = proc.expect(r"^rxkube test API server listening at ")
        assert re.fullmatch(
            r"rxkube test API server listening at https://127\.0\.0\.1:\d+"
            r" \(on every interface: 0\.0\.0\.0\)",
            line,
        ), line
        proc.expect(r"^kubeconfig: ")
        server = yaml.safe_load(path.read_text())["clusters"][0]["cluster"]["server"]
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+", server), server
        with Client.from_kubeconfig(str(path)) as client:
            assert "default" in [
                o["metadata"]["name"] for o in Api(client, "namespaces").list()["items"]
            ]
        assert proc.interrupt() == 0
    finally:
        proc.kill()
    assert "Traceback" not in "\n".join(proc.stderr_lines)


def test_serve_on_a_port_in_use_fails_in_one_line(srv: ApiServer) -> None:
    port = srv.url.rpartition(":")[2]
    result = run_cli("serve", "--port", port)
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"rxkube: error: cannot listen on 127.0.0.1:{port}: address already in use"
    )


def test_serve_with_a_kubeconfig_it_cannot_write_fails_in_one_line(tmp_path: Path) -> None:
    target = tmp_path / "no-such-directory" / "kubeconfig"
    result = run_cli("serve", "--kubeconfig", str(target))
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"rxkube: error: cannot write the kubeconfig to {target}: No such file or directory"
    )


def test_serve_load_serves_the_custom_resources_a_crd_defines(tmp_path: Path) -> None:
    manifest = tmp_path / "widgets.yaml"
    manifest.write_text(CRD)
    kubeconfig = tmp_path / "served.yaml"
    proc = Proc("serve", "--load", str(manifest), "--kubeconfig", str(kubeconfig))
    try:
        proc.expect(r"^loaded 2 objects from .*widgets\.yaml$")
        proc.expect(r"^kubeconfig: ")
        with Client.from_kubeconfig(str(kubeconfig)) as client:
            widgets = Api(client, "wd", namespace="default")  # by its short name
            assert widgets.resource.full_name == "widgets.example.com"
            assert widgets.get("w1")["spec"] == {"size": 3}
            created = widgets.create({"metadata": {"name": "w2"}, "status": {"ready": True}})
            assert "status" not in created  # the status subresource: set through /status only
        assert proc.interrupt() == 0
    finally:
        proc.kill()


def test_serve_tls_without_the_testing_extra_says_what_to_install(tmp_path: Path) -> None:
    # A sitecustomize that hides cryptography, as on a machine without the extra.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['cryptography'] = None\n")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "rxkube", "serve", "--tls"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        "rxkube: error: --tls needs the cryptography package, in the testing extra:"
        " pip install 'rxkube[testing]'"
    )


def test_serve_help_is_the_test_servers_own(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rxkube serve")
    assert "--kubeconfig" in out


# -- the watch printer, event by event ---------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def listed(name: str, rv: str) -> dict[str, object]:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
        "status": {"phase": "Running"},
    }


def test_printer_shows_progress_on_a_terminal_while_the_list_streams_in() -> None:
    out, err = io.StringIO(), FakeTerminal()
    printer = _EventPrinter(
        out,
        err,
        output=None,
        show_namespace=False,
        singular="pod",
        plural="pods",
        progress_interval=0,
    )
    printer.on_event(Init())
    for i in range(3):
        printer.on_event(InitApply(listed(f"p{i}", str(i + 1))))
    assert "listing pods… 3 received" in err.getvalue()
    assert out.getvalue() == ""  # the list is printed once complete, sorted
    printer.on_event(InitDone())
    assert re.search(
        r"rxkube: listed 3 pods in \d+\.\d\d s; watching for changes\n$", err.getvalue()
    )
    assert "\r\x1b[K" in err.getvalue()  # the progress line is cleared first
    assert [line.split()[:2] for line in out.getvalue().splitlines()[1:]] == [
        ["ADDED", "p0"],
        ["ADDED", "p1"],
        ["ADDED", "p2"],
    ]


def test_printer_prints_only_what_a_relist_changed() -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = _EventPrinter(
        out, err, output=None, show_namespace=True, singular="pod", plural="pods"
    )
    for event in (Init(), InitApply(listed("a", "1")), InitApply(listed("b", "2")), InitDone()):
        printer.on_event(event)
    before = len(out.getvalue().splitlines())
    for event in (Init(), InitApply(listed("a", "5")), InitApply(listed("c", "6")), InitDone()):
        printer.on_event(event)
    after = [line.split()[:3] for line in out.getvalue().splitlines()[before:]]
    assert after == [
        ["MODIFIED", "default", "a"],
        ["ADDED", "default", "c"],
        ["DELETED", "default", "b"],
    ]
    assert "relisted 2 pods: 3 changed while away" in err.getvalue()
    assert "\x1b" not in err.getvalue()  # not a terminal: no progress line
    for event in (Init(), InitApply(listed("a", "7")), InitDone()):
        printer.on_event(event)
    assert "relisted 1 pod: 2 changed while away" in err.getvalue()
