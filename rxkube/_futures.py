"""Reaching an asyncio loop from any thread: the one way rxkube runs code on a loop it does not own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

__all__ = ["call_on", "resolve_soon"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


def call_on(loop: asyncio.AbstractEventLoop, fn: Callable[[*_Ts], object], *args: *_Ts) -> None:
    """Run ``fn(*args)`` on ``loop``'s thread, from any thread.

    On the loop's own thread it runs at once; from another thread, in a callback the loop
    runs soon (in the order of the calls). A closed loop is ignored: nothing runs there
    any more.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fn(*args)
        return
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)


def resolve_soon(loop: asyncio.AbstractEventLoop, future: asyncio.Future[_T], value: _T) -> None:
    """Give ``future`` (of ``loop``) its result, from any thread (see ``call_on``).

    A future already done (cancelled by a timeout, say) is left as it is.
    """
    call_on(loop, _resolve, future, value)


def _resolve(future: asyncio.Future[_T], value: _T) -> None:
    if not future.done():
        future.set_result(value)
