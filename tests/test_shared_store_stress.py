"""Stress of the shared-store seam: one HTTP watch, many subscribers, every delivery path.

Seeded randomness drives the interleavings: consumers that take random time per event,
subscribers disposed and new ones joining (with replay) while the server changes, thread
subscribers beside ones on a thread pool, a buffer small enough that the writer waits.
Every survivor must see each object's versions in order, never two deliveries at once,
and end with exactly the server's state. The suite's leak check then finds no thread or
socket left behind.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from reactivex.abc import DisposableBase
from reactivex.scheduler import ThreadPoolScheduler

from rxkube import watcher
from rxkube.client import Api
from rxkube.dispatcher import SharedStore, store_shared
from rxkube.events import Delete
from rxkube.operators import reflect_shared
from rxkube.protocol import Config
from rxkube.testing import ApiServer
from tests.churn import churn_step, create_configmaps, server_state

TIMEOUT = 60.0


class Folding:
    """An ``events=True`` subscriber that folds what it gets into name -> resourceVersion."""

    def __init__(self, rng: random.Random, name: str) -> None:
        self.name = name
        self.view: dict[str, int] = {}
        self.last: dict[str, int] = {}
        self.problems: list[str] = []
        self.errors: list[Exception] = []
        self._delays = [rng.random() * 0.002 if rng.random() < 0.3 else 0.0 for _ in range(64)]
        self._n = 0
        self._busy = False
        self._cond = threading.Condition()
        self._pause = threading.Event()

    def on_next(self, event: Any) -> None:
        if self._busy:
            self.problems.append(f"{self.name}: two deliveries at once")
        self._busy = True
        try:
            delay = self._delays[self._n % len(self._delays)]
            self._n += 1
            if delay:
                self._pause.wait(delay)  # a slow consumer, not a wait for anything
            meta = event.obj["metadata"]
            name, version = meta["name"], int(meta["resourceVersion"])
            if version < self.last.get(name, 0):
                self.problems.append(
                    f"{self.name}: {name} went from {self.last[name]} to {version}"
                )
            self.last[name] = version
            with self._cond:
                if isinstance(event, Delete):
                    self.view.pop(name, None)
                else:
                    self.view[name] = version
                self._cond.notify_all()
        finally:
            self._busy = False

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)

    def wait_for(self, expected: dict[str, int]) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.view == expected, TIMEOUT)


def _join(
    reader: SharedStore, rng: random.Random, pool: ThreadPoolScheduler, n: int
) -> tuple[Folding, DisposableBase]:
    subscriber = Folding(rng, f"s{n}")
    scheduler = pool if rng.random() < 0.5 else None
    subscription = reader.subscribe(replay=True, events=True, scheduler=scheduler).subscribe(
        subscriber.on_next, subscriber.on_error
    )
    return subscriber, subscription


@pytest.mark.parametrize("seed", range(4))
def test_shared_store_subscribers_stay_in_order_and_complete_under_churn(
    apiserver: ApiServer, seed: int
) -> None:
    rng = random.Random(seed)
    exists = create_configmaps(apiserver, 40)
    client = apiserver.client()
    pool = ThreadPoolScheduler(4)
    reader, writer = store_shared(4, name="configmaps")
    live: list[tuple[Folding, DisposableBase]] = [_join(reader, rng, pool, n) for n in range(6)]
    gone: list[DisposableBase] = []
    watch_errors: list[Exception] = []
    watch = (
        watcher(Api(client, "configmaps", namespace="default"), Config(page_size=7))
        .pipe(reflect_shared(writer))
        .subscribe(on_error=watch_errors.append)
    )
    try:
        reader.wait_until_ready(TIMEOUT)
        assert len(reader) == 40, "ready means the whole list is in the store"
        joined = len(live)
        for step in range(120):
            churn_step(apiserver, rng, exists, step)
            if rng.random() < 0.08 and len(live) > 2:
                _, subscription = live.pop(rng.randrange(len(live)))
                subscription.dispose()
                gone.append(subscription)
            if rng.random() < 0.08:
                live.append(_join(reader, rng, pool, joined))
                joined += 1
        expected = server_state(apiserver)
        for subscriber, _ in live:
            assert subscriber.wait_for(expected), (
                f"{subscriber.name} ends with the server's state: missing "
                f"{sorted(expected.keys() - subscriber.view.keys())}, extra "
                f"{sorted(subscriber.view.keys() - expected.keys())}"
            )
            assert not subscriber.problems, subscriber.problems
            assert not subscriber.errors
        assert reader.stats().subscribers == len(live)
        assert not watch_errors
    finally:
        watch.dispose()
        for _, subscription in live:
            subscription.dispose()
        pool.executor.shutdown(wait=True)
        client.close()
