"""Suite-wide checks: every test must leave no rxkube thread, socket or asyncio task behind it.

A thread, a connection or a task that a test started and that outlives it is a leak, in the
test or in the library: something that was disposed did not stop, or nothing disposed it.
Threads and sockets that are legitimately ending (a watch thread whose connection was just
closed) get a short grace period, waited on as a condition, not slept.
"""

from __future__ import annotations

import asyncio
import asyncio.runners
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from rxkube.client import Client
from rxkube.testing import ApiServer
from tests.apiserver_http import Http
from tests.kubectl_harness import Kubectl, kubectl_binary

_GRACE_SECONDS = 5.0
"""How long a thread or socket that outlives its test may take to end before it is a leak."""

_PROCESS = psutil.Process()


def _rxkube_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("rxkube") and t.is_alive()}


def _sockets() -> set[tuple[int, Any, Any, str]]:
    """This process's open TCP connections and listening sockets."""
    return {
        (c.fd, c.laddr, c.raddr, c.status)
        for c in _PROCESS.net_connections(kind="tcp")
        if c.status != psutil.CONN_NONE
    }


def _settle(
    leaked: Callable[[], set[Any]], wait: Callable[[set[Any]], None] | None = None
) -> set[Any]:
    """``leaked()`` once it is empty, or what is left of it after the grace period."""
    deadline = time.monotonic() + _GRACE_SECONDS
    left = leaked()
    while left and time.monotonic() < deadline:
        if wait is not None:
            wait(left)
        else:
            # A socket's closing cannot be waited on: poll its table, for a test's epilogue only.
            threading.Event().wait(0.02)
        left = leaked()
    return left


def _join_briefly(threads: set[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=0.05)


class _PendingTasks(logging.Handler):
    """Tasks an event loop was closed or collected with, before they had finished."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "Task was destroyed but it is pending" in record.getMessage():
            self.found.append(record.getMessage())


_pending = _PendingTasks()
logging.getLogger("asyncio").addHandler(_pending)

_cancel_all_tasks = asyncio.runners._cancel_all_tasks  # type: ignore[attr-defined]


def _recording_cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """``asyncio.run``'s clean-up, noting the tasks it had to cancel: a test left them running."""
    _pending.found.extend(repr(t) for t in asyncio.all_tasks(loop) if not t.done())
    _cancel_all_tasks(loop)


asyncio.runners._cancel_all_tasks = _recording_cancel_all_tasks  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves an ``rxkube-*`` thread, a TCP socket or an asyncio task behind."""
    threads_before = _rxkube_threads()
    sockets_before = _sockets()
    _pending.found.clear()
    yield
    threads = _settle(lambda: _rxkube_threads() - threads_before, _join_briefly)
    sockets = _sockets() - sockets_before
    if sockets:
        # A test's own frames (a caught exception's traceback) may still hold a response.
        # Collected only then: a full collection after every test costs minutes of a run.
        gc.collect()
        sockets = _settle(lambda: _sockets() - sockets_before)
    tasks = list(_pending.found)
    problems = []
    if threads:
        problems.append(f"threads left running: {sorted(t.name for t in threads)}")
    if sockets:
        problems.append(f"sockets left open: {sorted(map(str, sockets))}")
    if tasks:
        problems.append(f"asyncio tasks left pending: {tasks}")
    assert not problems, "; ".join(problems)


@pytest.fixture
def srv() -> Iterator[ApiServer]:
    """A test API server that sends no bookmarks, so a watch's lines are only its events.

    A test module that needs other options defines its own ``srv``; ``api`` then uses that.
    """
    with ApiServer(bookmark_interval=None) as server:
        yield server


@pytest.fixture
def client(srv: ApiServer) -> Iterator[Client]:
    """A :class:`~rxkube.client.Client` of ``srv``, closed after the test."""
    with Client(srv.url) as c:
        yield c


@pytest.fixture
def api(srv: ApiServer) -> Http:
    """An :class:`~tests.apiserver_http.Http` client of ``srv``."""
    return Http(srv)


@pytest.fixture
def kubectl(apiserver: ApiServer, tmp_path: Path) -> Kubectl:
    """The real ``kubectl``, bound to the ``apiserver`` fixture (see ``tests/kubectl_harness.py``).

    ``kubectl("get", "pods", "-o", "wide")`` returns a ``CompletedProcess``; the test is
    skipped when no kubectl is on ``PATH``.
    """
    binary = kubectl_binary()
    if binary is None:
        pytest.skip("no kubectl on PATH: the kubectl workflow tests need a kubectl binary")
    return Kubectl(binary, apiserver, tmp_path / "kubectl-home")
