"""Running the real ``kubectl`` against ``rxkube.testing.ApiServer``: the ``kubectl`` fixture's engine.

``tests/conftest.py`` turns :class:`Kubectl` into the ``kubectl`` fixture; tests that need
a kubectl binary use it, and skip with a clear reason where none is on ``PATH``. Every run
has a timeout, an isolated ``HOME`` (so kubectl's discovery and HTTP caches are the test's
own, never the user's) and the server's kubeconfig.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rxkube.testing import ApiServer

KUBECTL_TIMEOUT = 60.0
"""Seconds one kubectl command may take; generous, for a loaded two-core machine."""


def kubectl_binary() -> str | None:
    """The kubectl found on ``PATH``, or None."""
    return shutil.which("kubectl")


class KubectlFailed(AssertionError):
    """A kubectl command that was expected to succeed exited non-zero."""


class Watching:
    """A running ``kubectl`` (``get -w``, say) whose output lines are read as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        # Not an ``rxkube-*`` name: the suite's leak check is about the library's threads.
        self._reader = threading.Thread(target=self._read, name="kubectl-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(
        self, condition: Callable[[list[str]], bool], timeout: float = KUBECTL_TIMEOUT
    ) -> list[str]:
        """Every line so far, once ``condition(lines)`` holds; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not condition(self.lines):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"kubectl printed no matching output in {timeout} s: {self.lines}"
                )
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"kubectl ended (exit {self.process.wait()}) before the expected output: "
                    f"{self.lines}; stderr: {self.stderr()}"
                )
            self.lines.append(line)
        return list(self.lines)

    def stderr(self) -> str:
        """What kubectl wrote to stderr (read once it has ended)."""
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def stop(self) -> None:
        """End kubectl with SIGINT, as Ctrl+C does, or SIGKILL if it does not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class Kubectl:
    """``kubectl`` bound to one server: ``kubectl("get", "pods")`` runs it and returns the result.

    Args:
        binary: the kubectl executable.
        server: the server kubectl talks to.
        home: a directory of the test's own, used as ``HOME`` (kubectl's caches).
    """

    def __init__(self, binary: str, server: ApiServer, home: Path) -> None:
        self.binary = binary
        self.server = server
        home.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = server.write_kubeconfig(home / "kubeconfig")
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(home / "cache"),
        }

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = KUBECTL_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl *args`` to its end and return its exit code, stdout and stderr.

        Args:
            args: kubectl's arguments.
            stdin: text for its standard input (``-f -``).
            check: raise :class:`KubectlFailed`, quoting stderr, on a non-zero exit.
            timeout: seconds before it is killed and ``subprocess.TimeoutExpired`` raised.
        """
        result = subprocess.run(
            [self.binary, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlFailed(
                f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
                f"\nstdout:\n{result.stdout}"
            )
        return result

    @contextmanager
    def running(self, *args: str) -> Iterator[Watching]:
        """Start ``kubectl *args`` (a ``get -w``) and stop it with SIGINT when the block ends."""
        process = subprocess.Popen(
            [self.binary, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        watching = Watching(process)
        try:
            yield watching
        finally:
            watching.stop()
