"""What a subscription leaves running on its subscriber's asyncio loop, for an awaited close.

Disposing is synchronous (Rx's contract), but a producer may have started tasks on the
loop that subscribed (a controller's coroutine reconciles): disposing cancels them, and
they end a few loop iterations later. ``rxkube.aio.iterate``'s ``aclose()`` (and its
``async with``) waits for that end, so leaving it means the work has stopped. A producer
learns whom to tell from the context it is subscribed in: ``collecting()`` marks it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar

__all__ = ["Settle", "collecting", "on_close"]

Settle = Callable[[], Awaitable[None]]
"""A coroutine function that returns once the producer's work on the loop has ended."""

_collector: ContextVar[list[Settle] | None] = ContextVar("rxkube_close_collector", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[list[Settle]]:
    """Collect the ``Settle`` functions of the producers subscribed inside the block."""
    settles: list[Settle] = []
    token = _collector.set(settles)
    try:
        yield settles
    finally:
        _collector.reset(token)


def on_close(settle: Settle) -> None:
    """Register ``settle`` with the awaited close of the subscription being made, if any."""
    settles = _collector.get()
    if settles is not None:
        settles.append(settle)
