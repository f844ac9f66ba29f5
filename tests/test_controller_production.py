"""Controllers in production: per-object retries, reconcile timeouts, resync, refs as triggers,
and a coroutine reconcile on the async Api, all against ApiServer over real HTTP."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from reactivex.subject import Subject

from rxkube import ObjectRef, finalizer_async
from rxkube.aio import AsyncApi, AsyncClient
from rxkube.client import Api, Client
from rxkube.conditions import find_condition, set_condition
from rxkube.controller import (
    Action,
    Controller,
    ControllerConfig,
    Reconciled,
    ReconcileFailed,
    ReconcileResult,
    ReconcileTimeout,
    current_reason,
)
from rxkube.events import Object
from rxkube.testing import ApiServer
from rxkube.wait import await_condition_async, has_status_condition

TIMEOUT = 30.0


class Results:
    def __init__(self) -> None:
        self.items: list[ReconcileResult] = []
        self.ended = threading.Event()
        self._cond = threading.Condition()

    def add(self, item: ReconcileResult) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait(self, condition: Callable[[list[ReconcileResult]], bool]) -> list[ReconcileResult]:
        with self._cond:
            assert self._cond.wait_for(lambda: condition(self.items), TIMEOUT), self.items
            return list(self.items)


def run(
    controller: Controller,
    reconcile: Callable[..., Any],
    error_policy: Callable[..., Action] | None,
    context: Any = None,
) -> tuple[Results, Subject[None], Any]:
    results = Results()
    stop: Subject[None] = Subject()
    subscription = controller.run(reconcile, error_policy, context, stop=stop).subscribe(
        results.add, lambda _e: results.ended.set(), results.ended.set
    )
    return results, stop, subscription


def finish(results: Results, stop: Subject[None], subscription: Any) -> None:
    stop.on_next(None)
    assert results.ended.wait(TIMEOUT)
    subscription.dispose()


def cm(name: str) -> Object:
    return {"metadata": {"name": name}, "data": {}}


def test_a_reconcile_failing_five_times_gets_attempts_1_to_5_and_growing_delays(
    client: Client,
) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    configmaps.create(cm("flaky"))
    calls: list[float] = []
    policy_attempts: list[int] = []

    def reconcile(_obj: Object, _ctx: object) -> Action:
        calls.append(time.monotonic())
        if len(calls) <= 5:
            raise RuntimeError(f"failure {len(calls)}")
        return Action.await_change()

    def error_policy(_obj: Object, _error: Exception, _ctx: object, attempt: int) -> Action:
        policy_attempts.append(attempt)
        return Action.requeue(0.05 * 2**attempt)

    results, stop, sub = run(Controller(configmaps), reconcile, error_policy)
    try:
        items = results.wait(lambda items: any(isinstance(r, Reconciled) for r in items))
    finally:
        finish(results, stop, sub)
    failed = [r for r in items if isinstance(r, ReconcileFailed)]
    assert [r.attempt for r in failed] == [1, 2, 3, 4, 5]
    assert policy_attempts == [1, 2, 3, 4, 5]
    # Each retry waited at least what the policy asked, and the policy asked for more each time.
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(gap >= 0.05 * 2**n for n, gap in enumerate(gaps, start=1))
    assert gaps[-1] > 4 * gaps[0]


def test_the_default_error_policy_backs_off_per_object_and_attempts_reset_on_success(
    client: Client,
) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    configmaps.create(cm("flaky"))
    fail_until = [4]
    calls: list[float] = []

    def reconcile(_obj: Object, _ctx: object) -> Action:
        calls.append(time.monotonic())
        if len(calls) < fail_until[0]:
            raise RuntimeError("not yet")
        return Action.requeue(0.01) if len(calls) == fail_until[0] else Action.await_change()

    results, stop, sub = run(Controller(configmaps), reconcile, None)
    try:
        results.wait(lambda items: sum(isinstance(r, Reconciled) for r in items) >= 2)
        fail_until[0] = 10**9  # fail from now on: the count starts at 1 again
        configmaps.patch("flaky", {"data": {"k": "v"}})
        items = results.wait(lambda items: sum(isinstance(r, ReconcileFailed) for r in items) >= 5)
    finally:
        finish(results, stop, sub)
    failed = [r for r in items if isinstance(r, ReconcileFailed)]
    assert [r.attempt for r in failed[:3]] == [1, 2, 3]
    assert [r.attempt for r in failed[3:5]] == [1, 2]
    delays = [r.action.requeue_after for r in failed]
    assert delays[:3] == pytest.approx([0.005, 0.01, 0.02])
    assert delays[3:5] == pytest.approx([0.005, 0.01])


def test_a_reconcile_over_its_timeout_is_reported_as_a_failure(client: Client) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    configmaps.create(cm("slow"))
    release = threading.Event()
    calls: list[int] = []

    def reconcile(_obj: Object, _ctx: object) -> Action:
        calls.append(1)
        if len(calls) == 1:
            release.wait(TIMEOUT)  # hangs well past the timeout
        return Action.await_change()

    controller = Controller(configmaps).with_config(ControllerConfig(reconcile_timeout=0.3))
    results, stop, sub = run(controller, reconcile, lambda _o, _e, _c: Action.requeue(0.01))
    try:
        items = results.wait(lambda items: len(items) >= 1)
        first = items[0]
        assert isinstance(first, ReconcileFailed)
        assert isinstance(first.error, ReconcileTimeout)
        assert "0.3 s" in str(first.error)
        assert len(calls) == 1  # never twice at once: the retry waits for the hung call
        release.set()
        items = results.wait(lambda items: any(isinstance(r, Reconciled) for r in items))
    finally:
        release.set()
        finish(results, stop, sub)
    assert len(calls) == 2


def test_a_coroutine_reconcile_over_its_timeout_is_cancelled_and_reported(client: Client) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    configmaps.create(cm("slow"))
    cancelled = threading.Event()

    async def reconcile(_obj: Object, _ctx: object) -> Action:
        try:
            await asyncio.sleep(TIMEOUT)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Action.await_change()

    controller = Controller(configmaps).with_config(ControllerConfig(reconcile_timeout=0.2))
    results, stop, sub = run(controller, reconcile, lambda _o, _e, _c: Action.await_change())
    try:
        items = results.wait(lambda items: len(items) >= 1)
    finally:
        finish(results, stop, sub)
    assert isinstance(items[0], ReconcileFailed)
    assert isinstance(items[0].error, ReconcileTimeout)
    assert cancelled.is_set()


def test_resync_reconciles_every_object_once_per_period_with_jitter(client: Client) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    names = [f"cm-{i}" for i in range(20)]
    for name in names:
        configmaps.create(cm(name))
    period = 1.0
    resyncs: list[tuple[str, float]] = []
    lock = threading.Lock()

    def reconcile(obj: Object, _ctx: object) -> Action:
        if current_reason() == "periodic resync":
            with lock:
                resyncs.append((obj["metadata"]["name"], time.monotonic()))
        return Action.await_change()

    controller = Controller(configmaps).with_config(ControllerConfig(resync=period))
    results, stop, sub = run(controller, reconcile, None)
    try:
        results.wait(lambda _items: len(resyncs) >= 3 * len(names))
    finally:
        finish(results, stop, sub)
    # Every object once per period: after three periods' worth, each has had two to four
    # (sweeps in flight at the stop), and all of them nearly the same number.
    counts = [sum(name == n for n, _ in resyncs) for name in names]
    assert set(counts) <= {2, 3, 4}, counts
    assert max(counts) - min(counts) <= 2, counts
    # Spread over the period, not all at once: the first sweep's moments differ widely.
    first = [min(at for n, at in resyncs if n == name) for name in names]
    assert statistics.pstdev(first) > period / 10
    assert max(first) - min(first) < period * 1.5


def test_reconcile_on_accepts_object_refs(client: Client) -> None:
    configmaps = Api(client, "configmaps", namespace="default")
    configmaps.create(cm("a"))
    configmaps.create(cm("b"))
    refs: Subject[Any] = Subject()
    controller = Controller(configmaps).reconcile_on(refs)
    results, stop, sub = run(controller, lambda _o, _c: Action.await_change(), None)
    try:
        results.wait(lambda items: len(items) == 2)
        refs.on_next(ObjectRef("b", "default"))
        items = results.wait(lambda items: len(items) == 3)
        assert (items[2].ref.name, items[2].reason) == ("b", "requested: default/b")
        refs.on_next({"metadata": {"name": "a"}})  # not a ref: the controller fails loudly
        assert results.ended.wait(TIMEOUT)
    finally:
        finish(results, stop, sub)


def test_a_coroutine_reconcile_uses_the_async_api_finalizer_and_conditions(
    srv: ApiServer, client: Client
) -> None:
    srv.add_resource("example.com", "v1", "Widget", "widgets")
    widgets = Api(client, "widgets", namespace="default")
    widgets.create({"metadata": {"name": "w"}, "spec": {"size": 1}})
    on_loop: list[bool] = []

    async def reconcile(obj: Object, ctx: AsyncApi) -> Action:
        async def apply(live: Object) -> Action:
            on_loop.append(True)
            fresh = await ctx.get(live["metadata"]["name"])
            if set_condition(fresh, "Ready", "True", "Reconciled", "size 1"):
                await ctx.replace_status(fresh)
            return Action.await_change()

        return await finalizer_async(ctx, "example.com/cleanup", obj, apply, _cleanup)

    async def main() -> None:
        async with AsyncClient(client) as aclient:
            aw = AsyncApi(aclient, "widgets", namespace="default")
            results = Results()
            stop: Subject[None] = Subject()
            sub = (
                Controller(widgets)
                .run(
                    reconcile,
                    lambda _o, _e, _c: Action.requeue(0.1),
                    aw,
                    stop=stop,
                    loop=asyncio.get_running_loop(),
                )
                .subscribe(results.add, lambda _e: results.ended.set(), results.ended.set)
            )
            try:
                done = await await_condition_async(
                    aw, "w", has_status_condition("Ready"), timeout=TIMEOUT
                )
                assert done is not None
                assert done["metadata"]["finalizers"] == ["example.com/cleanup"]
                assert find_condition(done, "Ready")["reason"] == "Reconciled"  # type: ignore[index]
            finally:
                stop.on_next(None)
                # The loop must keep running the last reconciles while the run ends.
                assert await asyncio.to_thread(results.ended.wait, TIMEOUT)
                sub.dispose()
        assert all(isinstance(r, Reconciled) for r in results.items), results.items

    asyncio.run(main())
    assert on_loop


async def _cleanup(_obj: Object) -> Action:
    return Action.await_change()
