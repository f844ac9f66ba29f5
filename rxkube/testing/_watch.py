"""Open watch connections: the queue the store pushes lines into, and the loop writing them.

The store pushes pre-built lines into a :class:`WatchStream` from whichever thread
wrote, with its lock held; the stream's task on the server's event loop wakes up (once
per batch, not per line), takes everything queued and writes it in chunks of about
1 MiB. aiohttp's ``write`` waits while the socket is full, so the queue of a client
that reads slowly grows. Like kube-apiserver's cacheWatcher, whose input channel has a
fixed capacity, a stream whose queue of live events exceeds its buffer is ended
cleanly ("Forcing ... watcher close due to unresponsiveness"): the client resumes
from the last resourceVersion it read. The initial events of a watch (a replay from
an older resourceVersion, or the current state) are not counted: kube-apiserver sends
those from its watch cache at the client's pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from aiohttp import web

from ._store import Store

if TYPE_CHECKING:
    from ._faults import Faults

CloseMode = Literal["clean", "drain", "abrupt"] | None

log = logging.getLogger("rxkube.testing")

_CHUNK_BYTES = 1 << 20
"""About how much one write hands to the socket (bounds the transport's buffer)."""


class WatchHub:
    """Every open watch stream of a server, and the way to wake them from any thread."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._streams: set[WatchStream] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the event loop the server runs on (called on that loop)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the server's loop: now if on it, else soon; never raises."""
        if threading.get_ident() == self._loop_thread:
            callback()
            return
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped
            loop.call_soon_threadsafe(callback)

    def add(self, stream: WatchStream) -> None:
        """Count a newly opened watch."""
        with self._lock:
            self._streams.add(stream)

    def remove(self, stream: WatchStream) -> None:
        """Forget a watch whose connection has ended."""
        with self._lock:
            self._streams.discard(stream)

    def count(self) -> int:
        """How many watch connections are open."""
        with self._lock:
            return len(self._streams)

    def close_all(self, *, abrupt: bool = False) -> None:
        """End every open watch, cleanly or by dropping its connection."""
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.close("abrupt" if abrupt else "clean")


class WatchStream:
    """One open watch: a :class:`~rxkube.testing._store.WatchSink` and its writer loop.

    Args:
        hub: the server's open watches.
        faults: armed faults, applied to every write.
        buffer: how many live events may wait for the client; None for no limit.
        resource: the watched resource (``pods``, ``deployments.apps``), for the log.
        identifier: what the watch selects, for the log.
        transform: rewrites each batch of lines before it is written (Table watches turn
            each event's object into a Table); it runs on the loop, never under the store's lock.
    """

    def __init__(
        self,
        hub: WatchHub,
        faults: Faults,
        *,
        buffer: int | None,
        resource: str,
        identifier: str,
        transform: Callable[[list[bytes]], list[bytes]] | None = None,
    ) -> None:
        self._hub = hub
        self._faults = faults
        self._buffer = buffer
        self._resource = resource
        self._identifier = identifier
        self._transform = transform
        self._pending: list[bytes] = []
        self._queued = 0
        self._scheduled = False
        self._wake = asyncio.Event()
        self.closing: CloseMode = None

    def prime(self, lines: list[bytes]) -> None:
        """Queue the watch's initial lines (not counted against the buffer); store lock held."""
        self._pending.extend(lines)
        self._schedule()

    def push(self, line: bytes) -> None:
        """Queue a live line; called with the store lock held, from any thread."""
        if self.closing is not None:
            return
        self._pending.append(line)
        self._queued += 1
        if self._buffer is not None and self._queued > self._buffer:
            log.info(
                "Forcing %s watcher close due to unresponsiveness: %s. %d events queued (buffer %d)",
                self._resource,
                self._identifier,
                self._queued,
                self._buffer,
            )
            self._pending = []
            self._queued = 0
            self.close("clean")
            return
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._hub.call_soon(self._wake.set)

    def close(self, mode: Literal["clean", "drain", "abrupt"]) -> None:
        """Ask the stream to end; safe from any thread."""
        if self.closing is None:
            self.closing = mode
        self._hub.call_soon(self._wake.set)

    def _take(self) -> list[bytes]:
        with self._hub.store.lock:
            lines = self._pending
            self._pending = []
            self._queued = 0
            self._scheduled = False
            self._wake.clear()
        return lines

    async def wait_closed(self) -> None:
        """Wait until someone closes the stream (a stalled watch does only this)."""
        while self.closing is None:
            await self._wake.wait()
            self._wake.clear()

    async def run(
        self,
        request: web.Request,
        response: web.StreamResponse,
        *,
        timeout: float | None,
        bookmark: Callable[[], None] | None,
        bookmark_interval: Callable[[], float | None],
    ) -> None:
        """Write queued lines until the timeout, a close, or the client goes away.

        Args:
            request: the watch request (its transport is dropped on an abrupt close).
            response: the prepared chunked response.
            timeout: seconds until a clean end (``timeoutSeconds``), or None.
            bookmark: queues a BOOKMARK line; None when bookmarks were not asked for.
            bookmark_interval: the current bookmark interval (it may change while open).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        next_bookmark: float | None = None
        while True:
            now = loop.time()
            interval = bookmark_interval() if bookmark is not None else None
            if interval is None:
                next_bookmark = None
            elif next_bookmark is None:
                next_bookmark = now + interval
            if not self._pending and self.closing is None:
                wake_at = min(t for t in (deadline, next_bookmark, now + 3600.0) if t is not None)
                try:
                    async with asyncio.timeout(max(0.0, wake_at - now)):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                now = loop.time()
            if self.closing is not None and not (self.closing == "drain" and self._pending):
                break
            if deadline is not None and now >= deadline:
                break
            if bookmark is not None and next_bookmark is not None and now >= next_bookmark:
                bookmark()
                next_bookmark = None
            lines = self._take()
            if not lines:
                continue
            if self._transform is not None:
                lines = self._transform(lines)
            action = None
            if self._faults.watch_faults_armed:
                lines, action = self._faults.process(lines)
            if lines:
                await self._write(response, lines)
            if action == "abort":
                self.closing = "abrupt"
            elif action == "close" and self.closing is None:
                self.closing = "clean"
            if action is not None:
                break
        if self.closing == "abrupt" and request.transport is not None:
            request.transport.abort()
            return
        await response.write_eof()

    async def _write(self, response: web.StreamResponse, lines: list[bytes]) -> None:
        """Write lines in chunks of about 1 MiB, stopping early once the stream is closing."""
        start = size = 0
        for index, line in enumerate(lines):
            size += len(line)
            if size >= _CHUNK_BYTES:
                await response.write(b"".join(lines[start : index + 1]))
                start, size = index + 1, 0
                if self.closing not in (None, "drain"):
                    return
        if start < len(lines):
            await response.write(b"".join(lines[start:]))
