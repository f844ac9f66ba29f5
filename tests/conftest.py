"""Suite-wide checks: every test must leave no rxkube thread running behind it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest


def _rxkube_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("rxkube") and t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves an ``rxkube-*`` thread alive two seconds after it ends."""
    before = _rxkube_threads()
    yield
    deadline = time.monotonic() + 2.0
    leaked = _rxkube_threads() - before
    while leaked and time.monotonic() < deadline:
        for thread in leaked:
            thread.join(timeout=0.05)
        leaked = _rxkube_threads() - before
    assert not leaked, f"threads left running: {sorted(t.name for t in leaked)}"
