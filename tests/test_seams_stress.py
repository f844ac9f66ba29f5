"""Stress of the asyncio bridge and the controller inbox: random delays, random disposal, pools.

Seeded randomness drives the interleavings over one real HTTP server while it changes:
async consumers of ``aio.watcher`` (some behind ``observe_on`` on a thread pool) that take
random time per event, are cancelled or break out at random and are replaced; controllers
triggered by their watch and by request streams emitted on a thread pool, with an inbox
small enough that triggers wait, reconciles that take random time, and runs disposed at
random. Every consumer must see each object's versions in order, be complete when it is
ready and end with the server's state; the suite's leak check then finds no thread,
socket or task left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import reactivex
from reactivex.scheduler import ThreadPoolScheduler
from reactivex.subject import Subject

from rxkube import Controller, ObjectRef, aio, default_backoff, watcher
from rxkube import _runner as runner
from rxkube.client import Api, Client
from rxkube.controller import Action, ControllerConfig, Reconciled
from rxkube.events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from rxkube.operators import observe_on
from rxkube.protocol import Config
from rxkube.testing import ApiServer
from tests.churn import NAMES, churn_step, create_configmaps, server_state

TIMEOUT = 60.0


def _version(obj: Object) -> tuple[str, int]:
    meta = obj["metadata"]
    return meta["name"], int(meta["resourceVersion"])


# -- the asyncio bridge -------------------------------------------------------------------


class AsyncFold:
    """An async consumer folding its watch stream into name -> resourceVersion."""

    def __init__(self, rng: random.Random, name: str, lifetime: int | None) -> None:
        self.name = name
        self.lifetime = lifetime  # events before it breaks out; None: it lives to the end
        self.state: dict[str, int] = {}
        self.ready_sizes: list[int] = []
        self.problems: list[str] = []
        self.changed = asyncio.Event()
        self._listing: dict[str, int] | None = None
        self._last: dict[str, int] = {}
        self._delays = [rng.random() * 0.002 if rng.random() < 0.3 else 0.0 for _ in range(64)]
        self._n = 0

    async def consume(self, source: Any) -> None:
        # aclosing, as for an async generator: a task cancelled in the loop's body (not
        # waiting in __anext__) disposes the watch at once, not when its frame is collected.
        async with contextlib.aclosing(aiter(source)) as events:
            async for event in events:
                await self._on(event)
                if self.lifetime is not None and self._n >= self.lifetime:
                    break  # leaving the loop early disposes the watch

    async def _on(self, event: Event) -> None:
        delay = self._delays[self._n % len(self._delays)]
        self._n += 1
        if delay:
            await asyncio.sleep(delay)  # a slow consumer, not a wait for anything
        match event:
            case Init():
                self._listing = {}
            case InitApply(obj):
                if self._listing is None:
                    self.problems.append(f"{self.name}: InitApply outside a list")
                    return
                name, version = _version(obj)
                self._listing[name] = version
            case InitDone():
                if self._listing is None:
                    self.problems.append(f"{self.name}: InitDone without Init")
                    return
                self.state, self._listing = self._listing, None
                self.ready_sizes.append(len(self.state))
                self._last.update(self.state)
            case Apply(obj) | Delete(obj):
                if self._listing is not None:
                    self.problems.append(f"{self.name}: a live event inside a list")
                name, version = _version(obj)
                if version < self._last.get(name, 0):
                    self.problems.append(f"{self.name}: {name} went back to {version}")
                self._last[name] = version
                if isinstance(event, Delete):
                    self.state.pop(name, None)
                else:
                    self.state[name] = version
        self.changed.set()

    async def reaches(self, expected: dict[str, int]) -> bool:
        deadline = time.monotonic() + TIMEOUT
        while self.state != expected:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return False
        return True


def _watch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("rxkube-watch")]


@pytest.mark.parametrize("seed", range(3))
def test_async_consumers_stay_in_order_and_complete_under_random_disposal(
    apiserver: ApiServer, seed: int
) -> None:
    rng = random.Random(seed)
    exists = create_configmaps(apiserver, 40)
    client = apiserver.client()
    api = Api(client, "configmaps", namespace="default")
    pool = ThreadPoolScheduler(4)

    def source() -> Any:
        config = Config(page_size=7)
        maxsize = rng.choice([1, 4, 64])
        # With default_backoff(), as a user runs a watch: a connection the server drops
        # (a keep-alive closed as it is reused, under load) is retried, not an end.
        if rng.random() < 0.5:
            return aio.watcher(api, config, maxsize=maxsize).pipe(aio.default_backoff())
        hop = observe_on(pool, capacity=rng.choice([1, 8]))
        return aio.iterate(watcher(api, config).pipe(default_backoff(), hop), maxsize=maxsize)

    async def main() -> None:
        folds: dict[asyncio.Task[None], AsyncFold] = {}
        made = 0

        def start(lifetime: int | None) -> AsyncFold:
            nonlocal made
            fold = AsyncFold(rng, f"a{made}", lifetime)
            made += 1
            folds[asyncio.create_task(fold.consume(source()))] = fold
            return fold

        first = [start(None) for _ in range(3)] + [start(None) for _ in range(3)]
        for fold in first:  # ready means the whole list: nothing changed yet
            assert await fold.reaches(server_state(apiserver)), fold.name
            assert fold.ready_sizes[0] == 40, fold.name
        for fold in first[3:]:
            fold.lifetime = rng.randrange(10, 300)  # these break out at random
        for step in range(150):
            churn_step(apiserver, rng, exists, step)
            roll = rng.random()
            mortal = [t for t, f in folds.items() if f.lifetime is not None and not t.done()]
            if roll < 0.06 and mortal:
                rng.choice(mortal).cancel()  # cancelled wherever it is waiting
            elif roll < 0.12:
                start(rng.choice([None, rng.randrange(10, 300)]))
            await asyncio.sleep(0)
        expected = server_state(apiserver)
        survivors = [
            (task, fold)
            for task, fold in folds.items()
            if fold.lifetime is None and not task.done()
        ]
        assert survivors
        for _, fold in survivors:
            assert await fold.reaches(expected), (
                f"{fold.name} ends with the server's state: missing "
                f"{sorted(expected.keys() - fold.state.keys())}, extra "
                f"{sorted(fold.state.keys() - expected.keys())}"
            )
        for task in folds:
            task.cancel()
        await asyncio.wait(list(folds), timeout=TIMEOUT)
        for task, fold in folds.items():
            assert task.done(), fold.name
            assert not fold.problems, fold.problems
            if not task.cancelled():
                assert task.exception() is None, (fold.name, task.exception())
        deadline = time.monotonic() + TIMEOUT
        while _watch_threads() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not _watch_threads(), "every watch ends once its consumer is gone"

    try:
        asyncio.run(main())
    finally:
        pool.executor.shutdown(wait=True)
        client.close()


# -- the controller inbox -----------------------------------------------------------------


class Reconciles:
    """What a controller's reconciles saw: each object's versions, per run, and overlaps."""

    def __init__(self, rng: random.Random) -> None:
        self._lock = threading.Condition()
        self._delays = [rng.random() * 0.003 if rng.random() < 0.4 else 0.0 for _ in range(97)]
        self._n = 0
        self._pause = threading.Event()
        self.running: set[tuple[int, str]] = set()
        self.seen: dict[tuple[int, str], list[int]] = {}
        self.problems: list[str] = []

    def for_run(self, run: int) -> Callable[[Object, Any], Action]:
        def reconcile(obj: Object, _context: Any) -> Action:
            name, version = _version(obj)
            with self._lock:
                if (run, name) in self.running:
                    self.problems.append(f"run {run}: {name} reconciled twice at once")
                self.running.add((run, name))
                delay = self._delays[self._n % len(self._delays)]
                self._n += 1
            try:
                if delay:
                    self._pause.wait(delay)  # a slow reconcile, not a wait for anything
            finally:
                with self._lock:
                    self.running.discard((run, name))
                    versions = self.seen.setdefault((run, name), [])
                    if versions and version < versions[-1]:
                        self.problems.append(f"run {run}: {name} went back to {version}")
                    versions.append(version)
                    self._lock.notify_all()
            return Action.await_change()

        return reconcile

    def caught_up(self, run: int, expected: dict[str, int]) -> bool:
        def done() -> bool:
            return all(self.seen.get((run, n), [0])[-1] == v for n, v in expected.items())

        with self._lock:
            return self._lock.wait_for(done, TIMEOUT)


@pytest.mark.parametrize("seed", range(3))
def test_controller_runs_reconcile_each_object_in_order_under_random_disposal(
    apiserver: ApiServer, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    # An inbox of 4 makes the watch and the request streams wait for the loop.
    monkeypatch.setattr(runner, "INBOX_CAPACITY", 4)
    rng = random.Random(seed)
    exists = create_configmaps(apiserver, 30)
    client: Client = apiserver.client()
    pool = ThreadPoolScheduler(4)
    reconciles = Reconciles(rng)
    step = 0
    try:
        for run in range(4):
            final = run == 3
            controller = Controller(Api(client, "configmaps", namespace="default")).with_config(
                ControllerConfig(concurrency=rng.choice([1, 3, 8]), name=f"stress-{run}")
            )
            for _ in range(2):  # requests from outside, emitted on pool threads
                refs = [ObjectRef(f"c{rng.randrange(NAMES)}", "default") for _ in range(100)]
                controller.reconcile_on(reactivex.from_iterable(refs, scheduler=pool))
            results: list[Any] = []
            errors: list[Exception] = []
            completed = threading.Event()
            stop: Subject[int] = Subject()
            subscription = controller.run(reconciles.for_run(run), None, None, stop=stop).subscribe(
                results.append, errors.append, completed.set
            )
            try:
                for _ in range(rng.randrange(10, 60) if not final else 80):
                    churn_step(apiserver, rng, exists, step)
                    step += 1
                if final:
                    expected = server_state(apiserver)
                    assert reconciles.caught_up(run, expected), (
                        "every object reconciled at its latest version"
                    )
                    stop.on_next(1)
                    assert completed.wait(TIMEOUT), "a graceful stop completes"
                    assert not errors
                    assert any(isinstance(r, Reconciled) for r in results)
            finally:
                subscription.dispose()  # at a random moment for the runs before
        assert not reconciles.problems, reconciles.problems
    finally:
        pool.executor.shutdown(wait=True)
        client.close()
