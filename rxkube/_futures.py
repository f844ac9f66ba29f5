"""Waking a coroutine from any thread: the one way rxkube resolves an asyncio future it does not own."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypeVar

__all__ = ["resolve_soon"]

_T = TypeVar("_T")


def resolve_soon(loop: asyncio.AbstractEventLoop, future: asyncio.Future[_T], value: _T) -> None:
    """Give ``future`` (of ``loop``) its result, from any thread.

    On the loop's own thread the result is set at once; from another thread it is set by
    a callback the loop runs soon. A future already done (cancelled by a timeout, say) is
    left as it is, and a closed loop is ignored: nobody waits there any more.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        _resolve(future, value)
        return
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_resolve, future, value)


def _resolve(future: asyncio.Future[_T], value: _T) -> None:
    if not future.done():
        future.set_result(value)
