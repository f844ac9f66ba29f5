"""Waiting in tests, on a condition with a timeout and never a sleep.

``eventually`` polls what offers nothing to wait on (a server's state, a store, a
counter); ``Sink`` is an observer that records what it receives, from any thread, and is
waited on through its own condition variable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rxkube.events import Apply, Delete, InitApply

TIMEOUT = 30.0
"""Seconds before a wait fails: generous, for a two-core machine that others load too."""


def eventually(
    condition: Callable[[], object],
    what: str | Callable[[], str] = "the condition",
    timeout: float = TIMEOUT,
) -> None:
    """Return once ``condition()`` is true; fail naming ``what`` after ``timeout`` seconds.

    ``what`` may be a function, called on failure, to describe the state then.
    """
    deadline = time.monotonic() + timeout
    tick = threading.Event()  # never set: a wait that nothing can cut short
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what if isinstance(what, str) else what()}: not in {timeout} s")
        tick.wait(0.005)


class Sink:
    """What an observer received, from any thread, with waits on conditions.

    Args:
        on_item: called with each item before it is recorded (to block, fail or dispose
            from inside ``on_next``).

    Attributes:
        overlaps: how many ``on_next`` calls began while another was running (0 for a
            serial stream).
    """

    def __init__(self, on_item: Callable[[Any], object] | None = None) -> None:
        self.items: list[Any] = []
        self.errors: list[Exception] = []
        self.completed = False
        self.threads: set[str] = set()
        self.overlaps = 0
        self._inside = 0
        self._on_item = on_item
        self._cond = threading.Condition()

    def on_next(self, item: Any) -> None:
        with self._cond:
            self._inside += 1
            self.overlaps += self._inside > 1
        try:
            if self._on_item is not None:
                self._on_item(item)
        finally:
            with self._cond:
                self._inside -= 1
                self.items.append(item)
                self.threads.add(threading.current_thread().name)
                self._cond.notify_all()

    def on_error(self, error: Exception) -> None:
        with self._cond:
            self.errors.append(error)
            self._cond.notify_all()

    def on_completed(self) -> None:
        with self._cond:
            self.completed = True
            self._cond.notify_all()

    def reached(self, pred: Callable[[Sink], bool], timeout: float = TIMEOUT) -> bool:
        """Whether ``pred(self)`` holds within ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: pred(self), timeout)

    def wait(
        self, pred: Callable[[Sink], bool], what: str = "the condition", timeout: float = TIMEOUT
    ) -> None:
        """Return once ``pred(self)`` holds; fail naming ``what`` after ``timeout`` seconds."""
        if not self.reached(pred, timeout):
            raise AssertionError(
                f"{what}: not in {timeout} s; {len(self.items)} items, errors={self.errors!r}"
            )

    def count(self, kind: type) -> int:
        """How many items of type ``kind`` arrived."""
        with self._cond:
            return sum(1 for item in self.items if isinstance(item, kind))

    def names(self, kind: type[InitApply | Apply | Delete]) -> list[str]:
        """The object names of the events of type ``kind`` that arrived, in order."""
        with self._cond:
            return [i.obj["metadata"]["name"] for i in self.items if isinstance(i, kind)]

    def wait_count(self, count: int, timeout: float = TIMEOUT) -> None:
        """Return once ``count`` items arrived."""
        self.wait(lambda s: len(s.items) >= count, f"{count} items", timeout)
