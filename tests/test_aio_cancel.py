"""Cancelling an async iteration while one of its steps runs on a worker thread.

``aio.reflect`` swaps a relist into the store on a worker thread, which cannot be
stopped. A cancelled iteration must end only once that step has, so that its swap
cannot land in the store after a later iteration of the same writer started; and what
the step raised must not be reported as a future's exception never retrieved.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable

import pytest

from rxkube import aio, store
from rxkube._cache import Store, Writer
from rxkube.client import Api
from rxkube.testing import ApiServer
from tests.waiting import TIMEOUT, eventually


class HeldSwap:
    """An index whose first call on a worker thread (a relist's swap) waits for ``release``."""

    def __init__(self, reader: Store, fail: bool = False) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()  # the held call returned (or raised)
        self._fail = fail
        self._calls = 0
        reader.add_index("name", self)

    def __call__(self, obj: dict[str, object]) -> str:
        if threading.current_thread() is not threading.main_thread():
            self._calls += 1
            if self._calls == 1:
                self.entered.set()
                self.release.wait(TIMEOUT)
                self.returned.set()
                if self._fail:
                    raise RuntimeError("the index failed after the cancellation")
        return str(obj["metadata"]["name"])  # type: ignore[index]


def names(reader: Store) -> list[str]:
    return sorted(obj["metadata"]["name"] for obj in reader.state())


async def iterate(api: Api, writer: Writer) -> None:
    async for _ in aio.watcher(api).pipe(aio.reflect(writer)):
        pass


async def cancel_during_the_swap(api: Api, reader: Store, writer: Writer, held: HeldSwap) -> bool:
    """Cancel an iteration held in its relist's swap; release the swap once disposal began.

    Returns whether the swap had returned when the iteration's task ended.
    """
    task = asyncio.create_task(iterate(api, writer))
    at_the_end: list[bool] = []
    task.add_done_callback(lambda _: at_the_end.append(held.returned.is_set()))
    assert await asyncio.to_thread(held.entered.wait, TIMEOUT)
    task.cancel()

    def release_once_stopped() -> None:
        eventually(lambda: reader.writer_status().state == "stopped", "the disposal")
        held.release.set()

    releaser = threading.Thread(target=release_once_stopped)
    releaser.start()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.to_thread(releaser.join, TIMEOUT)
    return at_the_end == [True]


def test_a_cancelled_iteration_ends_only_after_its_threaded_step(srv_api: Api) -> None:
    reader, writer = store("configmaps")
    held = HeldSwap(reader)

    async def main() -> None:
        assert await cancel_during_the_swap(srv_api, reader, writer, held)
        assert names(reader) == ["a", "b"]
        srv_api.delete("a")
        srv_api.create({"metadata": {"name": "c"}})
        later = asyncio.create_task(iterate(srv_api, writer))
        while names(reader) != ["b", "c"] or not reader.is_ready():
            assert not later.done(), later
            await asyncio.sleep(0.005)  # the store offers no awaitable: poll it
        later.cancel()
        with pytest.raises(asyncio.CancelledError):
            await later
        assert names(reader) == ["b", "c"]  # not overwritten by the first run's swap

    asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2))
    eventually(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("rxkube-watch")],
        "the watch threads to end",
    )


def test_what_a_cancelled_threaded_step_raised_is_logged_not_never_retrieved(
    srv_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = store("configmaps")
    held = HeldSwap(reader, fail=True)
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        assert await cancel_during_the_swap(srv_api, reader, writer, held)
        gc.collect()  # a future whose exception nobody retrieved reports it when collected

    asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2))
    gc.collect()
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "never retrieved" in m], messages
    assert any(
        "a step of a cancelled iteration failed" in m and "the index failed" in m for m in messages
    ), messages


@pytest.fixture
def srv_api() -> Callable[[], Api]:  # type: ignore[misc]
    with ApiServer() as srv:
        api = Api(srv.client(), "configmaps", namespace="default")
        for name in ("a", "b"):
            api.create({"metadata": {"name": name}})
        yield api
        api.client.close()
