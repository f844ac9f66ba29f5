"""``with`` and ``async with`` for the test servers, from their start/stop methods.

:class:`~rxkube.testing.ApiServer` and :class:`~rxkube.testing.EnvtestServer` share this
face, so a suite written against one runs against the other.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self


class ServerLifecycle(abc.ABC):
    """A server a test starts and stops, in a thread of its own or on the test's loop."""

    @abc.abstractmethod
    def start(self) -> Self:
        """Start serving, and return the server."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop serving and release everything :meth:`start` took."""

    @abc.abstractmethod
    async def astart(self) -> Self:
        """Start serving from a coroutine, and return the server."""

    @abc.abstractmethod
    async def astop(self) -> None:
        """Stop a server started with :meth:`astart`."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()
