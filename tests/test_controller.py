"""The controller: triggers, scheduling rules end to end, threads and loops, stopping.

Streams are driven by hand (a Subject reflected into a store) where the test needs to
control every event, and by ApiServer where HTTP matters (relations, shared watches).
Nothing sleeps to wait: every wait is on a condition with a generous timeout.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import logging
import math
import os
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import reactivex
from reactivex import Observable
from reactivex import operators as ops
from reactivex.subject import Subject

from rxkube import (
    ObjectRef,
    metadata_watcher,
    reflect,
    reflect_shared,
    store,
    store_shared,
    watcher,
)
from rxkube.client import Api
from rxkube.compact import ShareSubtrees
from rxkube.controller import (
    Action,
    Controller,
    ControllerConfig,
    ObjectMissing,
    Reconciled,
    ReconcileFailed,
    ReconcileInterrupted,
    ReconcileResult,
    current_reason,
    shutdown_signals,
)
from rxkube.errors import ConsumerError
from rxkube.events import Apply, Event, Init, InitApply, InitDone, Object
from rxkube.operators import applied_objects, default_backoff, modify
from rxkube.protocol import Config
from rxkube.testing import ApiServer

TIMEOUT = 30.0


def cm(name: str, namespace: str = "default", **extra: Any) -> Object:
    obj: Object = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
    }
    obj.update(extra)
    return obj


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class Results:
    """Collects a controller's results and end, and waits on conditions over them."""

    def __init__(self) -> None:
        self.items: list[ReconcileResult] = []
        self.log: list[str] = []
        self.error: Exception | None = None
        self.ended = threading.Event()
        self._cond = threading.Condition()

    def on_next(self, item: ReconcileResult) -> None:
        with self._cond:
            self.items.append(item)
            self.log.append(f"result {item.ref.name}")
            self._cond.notify_all()

    def on_error(self, error: Exception) -> None:
        with self._cond:
            self.error = error
            self.log.append("error")
            self.ended.set()
            self._cond.notify_all()

    def on_completed(self) -> None:
        with self._cond:
            self.log.append("completed")
            self.ended.set()
            self._cond.notify_all()

    def wait(self, condition: Callable[[list[ReconcileResult]], bool]) -> list[ReconcileResult]:
        with self._cond:
            if not self._cond.wait_for(lambda: condition(self.items), TIMEOUT):
                raise AssertionError(f"condition not met; results: {self.items}")
            return list(self.items)

    def names(self) -> list[str]:
        with self._cond:
            return [r.ref.name for r in self.items]

    def wait_ended(self) -> None:
        assert self.ended.wait(TIMEOUT), "the controller did not end"


class Manual:
    """A hand-driven watch: events go through a Subject into a store."""

    def __init__(self) -> None:
        self.reader, self.writer = store("configmaps")
        self.subject: Subject[Event] = Subject()
        self.stream: Observable[Object] = self.subject.pipe(reflect(self.writer), applied_objects())

    def listed(self, *objs: Object) -> None:
        self.subject.on_next(Init())
        for obj in objs:
            self.subject.on_next(InitApply(obj))
        self.subject.on_next(InitDone())

    def apply(self, obj: Object) -> None:
        self.subject.on_next(Apply(obj))


def start(
    controller: Controller,
    reconcile: Callable[[Object, Any], Any],
    *,
    error_policy: Callable[[Object, Exception, Any], Action] | None = None,
    stop: Observable[Any] | None = None,
    **kwargs: Any,
) -> tuple[Results, Any]:
    results = Results()
    subscription = controller.run(
        reconcile,
        error_policy or (lambda _o, _e, _c: Action.await_change()),
        None,
        stop=stop,
        **kwargs,
    ).subscribe(results.on_next, results.on_error, results.on_completed)
    return results, subscription


@pytest.fixture
def manual() -> Iterator[Manual]:
    yield Manual()


def done(_obj: Object, _ctx: Any) -> Action:
    return Action.await_change()


# -- triggers and readiness --------------------------------------------------------------


def test_reconciles_every_listed_object_then_each_change(manual: Manual) -> None:
    results, sub = start(Controller.for_stream(manual.stream, manual.reader), done)
    try:
        manual.listed(cm("a"), cm("b"))
        results.wait(lambda items: len(items) == 2)
        manual.apply(cm("a", data={"k": "v"}))
        items = results.wait(lambda items: len(items) == 3)
        assert sorted(r.ref.name for r in items[:2]) == ["a", "b"]
        last = items[2]
        assert isinstance(last, Reconciled)
        assert last.ref == ObjectRef("a", "default", kind="ConfigMap")
        assert last.reason == "object updated"
    finally:
        sub.dispose()


def test_no_reconcile_starts_before_the_store_is_ready(manual: Manual) -> None:
    ready_when_called: list[bool] = []

    def reconcile(obj: Object, _ctx: Any) -> Action:
        ready_when_called.append(manual.reader.is_ready())
        return Action.await_change()

    results, sub = start(Controller.for_stream(manual.stream, manual.reader), reconcile)
    try:
        manual.apply(cm("early"))  # in the store, but the store is not ready
        manual.subject.on_next(Init())
        manual.subject.on_next(InitApply(cm("early")))
        manual.subject.on_next(InitApply(cm("b")))
        assert results.items == []
        manual.subject.on_next(InitDone())
        results.wait(lambda items: len(items) == 2)
        assert ready_when_called == [True, True]
    finally:
        sub.dispose()


def test_reconciles_wait_for_every_store_the_controller_reads(manual: Manual) -> None:
    related_reader, related_writer = store("secrets")
    related: Subject[Object] = Subject()
    secondary_ready: list[bool] = []

    def reconcile(obj: Object, _ctx: Any) -> Action:
        secondary_ready.append(related_reader.is_ready())
        return Action.await_change()

    controller = Controller.for_stream(manual.stream, manual.reader).watches_shared_stream(
        related, lambda _obj: None, reader=related_reader
    )
    results, sub = start(controller, reconcile)
    try:
        manual.listed(cm("a"))
        wait_until(lambda: manual.reader.is_ready())
        assert results.items == []
        related_writer.apply(Init())
        related_writer.apply(InitDone())
        results.wait(lambda items: len(items) == 1)
        assert secondary_ready == [True]
    finally:
        sub.dispose()


def _versions(seen: list[str], lock: threading.Lock) -> Callable[[Object, Any], Action]:
    """A reconcile that records ``name=version`` of each object it is given."""

    def reconcile(obj: Object, _ctx: Any) -> Action:
        with lock:
            seen.append(f"{obj['metadata']['name']}={(obj.get('data') or {}).get('v', '0')}")
        return Action.await_change()

    return reconcile


def _relist_held(
    controller: Controller, seen: list[str], lock: threading.Lock, before: int
) -> bool:
    """Whether the relist's two requests are queued, or (the defect) a reconcile started."""
    with lock:
        started = len(seen) > before
    return started or controller.metrics.snapshot().queue_depth == 2


def test_a_relist_reconciles_what_it_listed_not_what_the_store_held(manual: Manual) -> None:
    seen: list[str] = []
    lock = threading.Lock()
    controller = Controller.for_stream(manual.stream, manual.reader)
    results, sub = start(controller, _versions(seen, lock))
    try:
        manual.listed(cm("a"), cm("b"))
        results.wait(lambda items: len(items) == 2)
        # A relist (after a 410, say) brings a change made while the watch was away.
        manual.subject.on_next(Init())
        manual.subject.on_next(InitApply(cm("a", data={"v": "1"})))
        manual.subject.on_next(InitApply(cm("b")))
        wait_until(lambda: _relist_held(controller, seen, lock, 2))
        assert results.items[2:] == [], "no reconcile starts while the store is relisting"
        manual.subject.on_next(InitDone())
        results.wait(lambda items: len(items) == 4)
        assert sorted(seen[2:]) == ["a=1", "b=0"]
    finally:
        sub.dispose()


def test_a_controller_run_again_reconciles_what_its_new_list_brought(manual: Manual) -> None:
    seen: list[str] = []
    lock = threading.Lock()
    controller = Controller.for_stream(manual.stream, manual.reader)
    stop: Subject[None] = Subject()
    results, _sub = start(controller, _versions(seen, lock), stop=stop)
    manual.listed(cm("a"), cm("b"))
    results.wait(lambda items: len(items) == 2)
    stop.on_next(None)
    results.wait_ended()
    # Run again: the store is ready from the first run, and holds what it held then.
    results, sub = start(controller, _versions(seen, lock))
    try:
        manual.subject.on_next(Init())
        manual.subject.on_next(InitApply(cm("a", data={"v": "1"})))
        manual.subject.on_next(InitApply(cm("b", data={"v": "1"})))
        wait_until(lambda: _relist_held(controller, seen, lock, 2))
        manual.subject.on_next(InitDone())
        results.wait(lambda items: len(items) == 2)
        assert sorted(seen[2:]) == ["a=1", "b=1"]
    finally:
        sub.dispose()


@pytest.mark.parametrize("first_list", ["late", "failing"])
def test_a_controller_run_again_reconciles_nothing_from_what_its_last_run_left(
    srv: ApiServer, first_list: str
) -> None:
    srv.create("configmaps", cm("c"))
    api = Api(srv.client(), "configmaps", namespace="default")
    requests: Subject[ObjectRef] = Subject()
    controller = Controller(api).reconcile_on(requests)
    results, sub = start(controller, done)
    results.wait(lambda items: len(items) == 1)
    sub.dispose()
    wait_until(lambda: controller.store.writer_status().state == "stopped")
    wait_until(lambda: not controller.health().running)
    srv.delete("configmaps", "c")  # while no run follows the server
    if first_list == "late":
        srv.faults.delay_responses(2.0, count=1, verb="list")
    else:
        srv.faults.fail_requests(503, count=1, verb="list")
    results, sub = start(controller, done)
    try:
        if first_list == "failing":
            wait_until(lambda: controller.store.writer_status().state == "retrying")
        # Asked before the run's own list: answered from that list, not from the last run's.
        requests.on_next(ObjectRef("c", "default"))
        items = results.wait(lambda items: len(items) == 1)
        assert isinstance(items[0], ObjectMissing), items
    finally:
        sub.dispose()


def test_a_relist_that_fails_midway_does_not_hold_reconciles(manual: Manual) -> None:
    seen: list[str] = []
    lock = threading.Lock()
    retried: Subject[Object] = Subject()
    failing = manual.subject.pipe(reflect(manual.writer), applied_objects())
    controller = Controller.for_stream(
        reactivex.merge(failing.pipe(ops.catch(reactivex.never())), retried), manual.reader
    )
    results, sub = start(controller, _versions(seen, lock))
    try:
        manual.listed(cm("a"))
        results.wait(lambda items: len(items) == 1)
        manual.subject.on_next(Init())
        manual.subject.on_next(InitApply(cm("a", data={"v": "1"})))
        manual.subject.on_error(ConnectionError("the list broke off"))
        wait_until(lambda: manual.reader.writer_status().state == "stopped")
        # The store holds what it held, complete; reconciles go on reading it.
        retried.on_next(cm("a"))
        results.wait(lambda items: len(items) == 2)
        assert seen == ["a=0", "a=0"]
    finally:
        sub.dispose()


def test_a_relist_after_410_reconciles_the_object_changed_while_disconnected(
    srv: ApiServer,
) -> None:
    for name in ("a", "b"):
        srv.create("configmaps", cm(name, data={"v": "0"}))
    api = Api(srv.client(), "configmaps", namespace="default")
    seen: list[str] = []
    lock = threading.Lock()
    # One object a page: the first page's request comes before the last page's swap.
    results, sub = start(Controller(api, Config(page_size=1)), _versions(seen, lock))
    try:
        results.wait(lambda items: len(items) == 2)
        wait_until(lambda: srv.open_watches() == 1)
        srv.faults.fail_requests(410, count=1, verb="watch")
        srv.faults.delay_responses(0.5, count=2, verb="list")
        srv.faults.close_watches()
        wait_until(lambda: srv.open_watches() == 0)
        srv.patch("configmaps", "a", {"data": {"v": "1"}}, namespace="default")
        results.wait(lambda items: any(r.ref.name == "a" for r in items[2:]))
        with lock:
            assert "a=1" in seen[2:] and "a=0" not in seen[2:], seen
    finally:
        sub.dispose()


def test_an_object_gone_before_its_turn_is_reported_not_reconciled(manual: Manual) -> None:
    related: Subject[Object] = Subject()
    called: list[str] = []

    def reconcile(obj: Object, _ctx: Any) -> Action:
        called.append(obj["metadata"]["name"])
        return Action.await_change()

    controller = Controller.for_stream(manual.stream, manual.reader).watches_shared_stream(
        related, lambda obj: ObjectRef(obj["metadata"]["name"], "default")
    )
    results, sub = start(controller, reconcile)
    try:
        manual.listed(cm("a"))
        results.wait(lambda items: len(items) == 1)
        related.on_next({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "ghost"}})
        items = results.wait(lambda items: len(items) == 2)
        missing = items[1]
        assert isinstance(missing, ObjectMissing)
        assert missing.ref == ObjectRef("ghost", "default", kind="ConfigMap")
        assert missing.reason == "related object updated: Secret ghost"
        assert called == ["a"]
    finally:
        sub.dispose()


def test_reconcile_all_on_requeues_every_object(manual: Manual) -> None:
    reload: Subject[str] = Subject()
    controller = Controller.for_stream(manual.stream, manual.reader).reconcile_all_on(reload)
    results, sub = start(controller, done)
    try:
        manual.listed(cm("a"), cm("b"), cm("c"))
        results.wait(lambda items: len(items) == 3)
        reload.on_next("config changed")
        items = results.wait(lambda items: len(items) == 6)
        assert sorted(r.ref.name for r in items[3:]) == ["a", "b", "c"]
        assert {r.reason for r in items[3:]} == {"reconcile all requested"}
    finally:
        sub.dispose()


def test_the_reason_is_available_inside_reconcile(manual: Manual) -> None:
    seen: list[str | None] = []

    def reconcile(obj: Object, _ctx: Any) -> Action:
        seen.append(current_reason())
        return Action.await_change()

    results, sub = start(Controller.for_stream(manual.stream, manual.reader), reconcile)
    try:
        manual.listed(cm("a"))
        items = results.wait(lambda items: len(items) == 1)
        assert seen == ["object updated"] == [items[0].reason]
        assert current_reason() is None
    finally:
        sub.dispose()


# -- actions and errors ----------------------------------------------------------------------


def test_requeue_reconciles_again_after_the_delay(manual: Manual) -> None:
    def reconcile(obj: Object, _ctx: Any) -> Action:
        return Action.requeue(0.05)

    results, sub = start(Controller.for_stream(manual.stream, manual.reader), reconcile)
    try:
        manual.listed(cm("a"))
        items = results.wait(lambda items: len(items) >= 3)
        assert [r.reason for r in items[:3]] == [
            "object updated",
            "reconciler requested retry",
            "reconciler requested retry",
        ]
    finally:
        sub.dispose()


def test_a_failed_reconcile_is_reported_and_retried_as_the_error_policy_says(
    manual: Manual,
) -> None:
    attempts: list[int] = []
    policy_calls: list[tuple[str, str]] = []

    def reconcile(obj: Object, ctx: Any) -> Action:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        return Action.await_change()

    def error_policy(obj: Object, error: Exception, ctx: Any) -> Action:
        policy_calls.append((obj["metadata"]["name"], str(error)))
        return Action.requeue(0.01)

    results, sub = start(
        Controller.for_stream(manual.stream, manual.reader), reconcile, error_policy=error_policy
    )
    try:
        manual.listed(cm("a"))
        failed, ok = results.wait(lambda items: len(items) == 2)
        assert isinstance(failed, ReconcileFailed)
        assert str(failed.error) == "boom"
        assert failed.action == Action.requeue(0.01)
        assert isinstance(ok, Reconciled)
        assert ok.reason == "error policy requested retry"
        assert policy_calls == [("a", "boom")]
    finally:
        sub.dispose()


def test_a_reconcile_returning_something_else_than_an_action_fails(manual: Manual) -> None:
    results, sub = start(Controller.for_stream(manual.stream, manual.reader), lambda _o, _c: "done")
    try:
        manual.listed(cm("a"))
        (failed,) = results.wait(lambda items: len(items) == 1)
        assert isinstance(failed, ReconcileFailed)
        assert isinstance(failed.error, TypeError)
    finally:
        sub.dispose()


def test_a_raising_error_policy_waits_for_the_next_change(manual: Manual) -> None:
    def reconcile(obj: Object, _ctx: Any) -> Action:
        raise RuntimeError("reconcile failed")

    def error_policy(obj: Object, error: Exception, _ctx: Any) -> Action:
        raise RuntimeError("policy failed too")

    results, sub = start(
        Controller.for_stream(manual.stream, manual.reader), reconcile, error_policy=error_policy
    )
    try:
        manual.listed(cm("a"))
        (failed,) = results.wait(lambda items: len(items) == 1)
        assert isinstance(failed, ReconcileFailed)
        assert failed.action == Action.await_change()
    finally:
        sub.dispose()


def test_action_requeue_refuses_negative_delays() -> None:
    with pytest.raises(ValueError):
        Action.requeue(-1)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Action.requeue(math.nan), ValueError, "Action.requeue(): seconds must be 0 or"),
        (lambda: Action.requeue("5"), TypeError, "seconds must be a number of seconds, not str"),  # type: ignore[arg-type]
        (lambda: Action.requeue(True), TypeError, "seconds must be a number of seconds, not bool"),
        (lambda: Action(math.nan), ValueError, "Action: requeue_after must be 0 or more seconds"),
        (lambda: Action("soon"), TypeError, "Action: requeue_after must be a number of seconds"),  # type: ignore[arg-type]
    ],
)
def test_an_action_refuses_nan_and_what_is_not_a_number(
    make: Callable[[], Action], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        make()


def test_an_action_requeued_beyond_any_wait_awaits_a_change() -> None:
    assert Action.requeue(math.inf) == Action.await_change()
    assert Action(1e300).requeue_after is None
    assert Action.requeue(threading.TIMEOUT_MAX).requeue_after == threading.TIMEOUT_MAX
    assert Action(3).requeue_after == 3.0


# -- scheduling rules, end to end ----------------------------------------------------------


def test_one_object_is_never_reconciled_twice_at_once(manual: Manual) -> None:
    release = threading.Event()
    running = threading.Event()
    lock = threading.Lock()
    active: list[int] = [0]
    most: list[int] = [0]

    def reconcile(obj: Object, _ctx: Any) -> Action:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        running.set()
        release.wait(TIMEOUT)
        with lock:
            active[0] -= 1
        return Action.await_change()

    results, sub = start(Controller.for_stream(manual.stream, manual.reader), reconcile)
    try:
        manual.listed(cm("a"))
        assert running.wait(TIMEOUT)
        for n in range(5):  # changes while "a" is being reconciled
            manual.apply(cm("a", data={"n": str(n)}))
        release.set()
        items = results.wait(lambda items: len(items) == 2)
        assert [r.reason for r in items] == ["object updated", "object updated"]
        assert most[0] == 1
        # The five changes were merged into one reconcile, which ran after the first.
        assert results.names() == ["a", "a"]
    finally:
        sub.dispose()


def test_concurrency_limit_caps_reconciles_running_at_once(manual: Manual) -> None:
    lock = threading.Lock()
    active: list[int] = [0]
    most: list[int] = [0]
    two_running = threading.Event()
    release = threading.Event()

    def reconcile(obj: Object, _ctx: Any) -> Action:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
            if active[0] == 2:
                two_running.set()
        release.wait(TIMEOUT)
        with lock:
            active[0] -= 1
        return Action.await_change()

    controller = Controller.for_stream(manual.stream, manual.reader).with_config(
        ControllerConfig(concurrency=2)
    )
    results, sub = start(controller, reconcile)
    try:
        manual.listed(*(cm(name) for name in "abcdef"))
        assert two_running.wait(TIMEOUT)
        release.set()
        results.wait(lambda items: len(items) == 6)
        assert most[0] == 2
        worker_threads = {t.name for t in threading.enumerate() if "rxkube-reconcile" in t.name}
        assert len(worker_threads) <= 2
    finally:
        sub.dispose()


def test_debounce_turns_a_burst_of_changes_into_one_reconcile(manual: Manual) -> None:
    controller = Controller.for_stream(manual.stream, manual.reader).with_config(
        ControllerConfig(debounce=0.2, concurrency=1)
    )
    results, sub = start(controller, done)
    try:
        manual.listed()
        wait_until(manual.reader.is_ready)
        for n in range(5):
            manual.apply(cm("a", data={"n": str(n)}))
        manual.apply(cm("marker"))  # due after "a": when it is done, "a" has run
        results.wait(lambda items: any(r.ref.name == "marker" for r in items))
        assert results.names() == ["a", "marker"]
    finally:
        sub.dispose()


def test_a_change_during_a_long_requeue_reconciles_at_once(manual: Manual) -> None:
    def reconcile(obj: Object, _ctx: Any) -> Action:
        return Action.requeue(3600)

    results, sub = start(Controller.for_stream(manual.stream, manual.reader), reconcile)
    try:
        manual.listed(cm("a"))
        results.wait(lambda items: len(items) == 1)
        manual.apply(cm("a", data={"k": "v"}))
        items = results.wait(lambda items: len(items) == 2)
        assert items[1].reason == "object updated"
    finally:
        sub.dispose()


# -- where reconciles run ---------------------------------------------------------------


def test_plain_reconciles_run_on_named_worker_threads(manual: Manual) -> None:
    threads: list[str] = []

    def reconcile(obj: Object, _ctx: Any) -> Action:
        threads.append(threading.current_thread().name)
        return Action.await_change()

    controller = Controller.for_stream(manual.stream, manual.reader).with_config(
        ControllerConfig(name="cms")
    )
    results, sub = start(controller, reconcile)
    try:
        manual.listed(cm("a"))
        results.wait(lambda items: len(items) == 1)
        assert threads[0].startswith("rxkube-reconcile-cms-")
    finally:
        sub.dispose()


def test_coroutine_reconciles_run_on_a_loop_the_controller_owns(manual: Manual) -> None:
    threads: list[str] = []

    async def reconcile(obj: Object, _ctx: Any) -> Action:
        await asyncio.sleep(0)
        threads.append(threading.current_thread().name)
        assert current_reason() == "object updated"
        return Action.await_change()

    stop: Subject[None] = Subject()
    results, _sub = start(Controller.for_stream(manual.stream, manual.reader), reconcile, stop=stop)
    manual.listed(cm("a"), cm("b"))
    results.wait(lambda items: len(items) == 2)
    assert all(isinstance(r, Reconciled) for r in results.items)
    assert threads[0].startswith("rxkube-controller-loop-")
    stop.on_next(None)
    results.wait_ended()


def test_coroutine_reconciles_run_on_the_callers_loop_from_async_code(manual: Manual) -> None:
    async def main() -> list[ReconcileResult]:
        loop = asyncio.get_running_loop()
        loops: list[asyncio.AbstractEventLoop] = []
        got: list[ReconcileResult] = []
        finished: asyncio.Future[None] = loop.create_future()

        async def reconcile(obj: Object, _ctx: Any) -> Action:
            loops.append(asyncio.get_running_loop())
            return Action.await_change()

        def on_next(result: ReconcileResult) -> None:
            got.append(result)
            if len(got) == 2:
                loop.call_soon_threadsafe(finished.set_result, None)

        subscription = (
            Controller.for_stream(manual.stream, manual.reader)
            .run(reconcile, lambda _o, _e, _c: Action.await_change(), None)
            .subscribe(on_next)
        )
        try:
            manual.listed(cm("a"), cm("b"))
            await asyncio.wait_for(finished, TIMEOUT)
        finally:
            subscription.dispose()
        assert loops == [loop, loop]
        return got

    assert len(asyncio.run(main())) == 2


def test_results_can_be_iterated_from_async_code(manual: Manual) -> None:
    from rxkube.aio import iterate

    async def reconcile(obj: Object, _ctx: Any) -> Action:
        return Action.await_change()

    async def main() -> list[str]:
        names: list[str] = []
        controller = Controller.for_stream(manual.stream, manual.reader)
        results = controller.run(reconcile, lambda _o, _e, _c: Action.await_change(), None)
        # The stream is hot: list once the iteration has subscribed.
        asyncio.get_running_loop().call_soon(manual.listed, cm("a"), cm("b"))
        async for result in iterate(results):
            names.append(result.ref.name)
            if len(names) == 1:
                manual.apply(cm("c"))
            if len(names) == 3:
                break  # disposes the subscription: the controller stops
        return names

    assert sorted(asyncio.run(asyncio.wait_for(main(), TIMEOUT))) == ["a", "b", "c"]


class _Hanging:
    """A coroutine reconcile that returns at once for "a" and waits forever for the rest."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.cancelled: list[str] = []
        self.b_started = asyncio.Event()

    async def reconcile(self, obj: Object, _ctx: Any) -> Action:
        name = obj["metadata"]["name"]
        task = asyncio.current_task()
        assert task is not None
        self.tasks[name] = task
        try:
            if name != "a":
                self.b_started.set()
                await asyncio.Event().wait()
            return Action.await_change()
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise


def test_leaving_async_with_iterate_waits_for_the_running_reconciles_to_end(
    manual: Manual,
) -> None:
    from rxkube.aio import iterate

    async def main() -> None:
        reconcile = _Hanging()
        controller = Controller.for_stream(manual.stream, manual.reader)
        results = controller.run(reconcile.reconcile, None, None)
        asyncio.get_running_loop().call_soon(manual.listed, cm("a"), cm("b"))
        async with iterate(results) as items:
            async for result in items:
                assert result.ref.name == "a"
                await asyncio.wait_for(reconcile.b_started.wait(), TIMEOUT)
                break
        # Leaving the block waited: b's reconcile was cancelled and has ended.
        assert reconcile.tasks["b"].done()
        assert reconcile.cancelled == ["b"]

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def test_leaving_async_for_cancels_the_running_reconciles_at_once(manual: Manual) -> None:
    from rxkube.aio import iterate

    async def main() -> None:
        reconcile = _Hanging()
        controller = Controller.for_stream(manual.stream, manual.reader)
        results = controller.run(reconcile.reconcile, None, None)
        asyncio.get_running_loop().call_soon(manual.listed, cm("a"), cm("b"))
        async for _result in iterate(results):
            await asyncio.wait_for(reconcile.b_started.wait(), TIMEOUT)
            break
        # The iterator was dropped: disposed on this loop, which cancelled b's task then
        # and there, not when the controller's thread got to it.
        task = reconcile.tasks["b"]
        assert task.cancelling() == 1
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), TIMEOUT)
        assert reconcile.cancelled == ["b"]

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def test_aclose_waits_only_so_long_for_a_reconcile_that_ignores_its_cancellation(
    manual: Manual, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import rxkube.aio
    from rxkube.aio import iterate

    monkeypatch.setattr(rxkube.aio, "CLOSE_TIMEOUT", 0.2)

    async def main() -> None:
        started = asyncio.Event()
        release = asyncio.Event()

        async def stubborn(obj: Object, _ctx: Any) -> Action:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await release.wait()  # a bug: it carries on after its cancellation
            return Action.await_change()

        results = Controller.for_stream(manual.stream, manual.reader).run(stubborn, None, None)
        items = iterate(results)
        waiting = asyncio.ensure_future(anext(items))  # subscribes, then the list comes
        asyncio.get_running_loop().call_soon(manual.listed, cm("a"))
        await asyncio.wait_for(started.wait(), TIMEOUT)
        waiting.cancel()
        with caplog.at_level(logging.WARNING, logger="rxkube.aio"):
            await asyncio.wait_for(items.aclose(), TIMEOUT)  # returns after CLOSE_TIMEOUT
        assert "did not end within 0.2 s" in caplog.text
        release.set()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def _retry_at_once(_obj: Object, _error: Exception, _ctx: Any) -> Action:
    return Action.requeue(0)


def test_a_reconcile_cancelled_by_something_else_fails_and_is_retried(manual: Manual) -> None:
    calls: list[int] = []

    async def reconcile(obj: Object, _ctx: Any) -> Action:
        calls.append(len(calls))
        if len(calls) == 1:
            # A helper task that another part of the program shuts down.
            helper = asyncio.ensure_future(asyncio.sleep(TIMEOUT))
            asyncio.get_running_loop().call_soon(helper.cancel)
            await helper  # CancelledError here, though this task was not cancelled
        return Action.await_change()

    stop: Subject[None] = Subject()
    controller = Controller.for_stream(manual.stream, manual.reader)
    results, _sub = start(controller, reconcile, error_policy=_retry_at_once, stop=stop)
    manual.listed(cm("a"))
    failed, retried = results.wait(lambda items: len(items) == 2)
    assert isinstance(failed, ReconcileFailed)
    assert isinstance(failed.error, ReconcileInterrupted)
    assert isinstance(failed.error.__cause__, asyncio.CancelledError)
    assert isinstance(retried, Reconciled)
    stop.on_next(None)
    results.wait_ended()  # a graceful stop has nothing left to wait for
    assert results.error is None and controller.metrics.snapshot().in_flight == 0


def test_a_plain_reconcile_raising_system_exit_fails_and_is_retried(manual: Manual) -> None:
    threads: list[str] = []

    def reconcile(obj: Object, _ctx: Any) -> Action:
        threads.append(threading.current_thread().name)
        if len(threads) == 1:
            raise SystemExit(3)
        return Action.await_change()

    controller = Controller.for_stream(manual.stream, manual.reader).with_config(
        ControllerConfig(concurrency=1)
    )
    results, sub = start(controller, reconcile, error_policy=_retry_at_once)
    try:
        manual.listed(cm("a"))
        failed, retried = results.wait(lambda items: len(items) == 2)
        assert isinstance(failed, ReconcileFailed)
        assert isinstance(failed.error, ReconcileInterrupted)
        assert isinstance(failed.error.__cause__, SystemExit)
        assert isinstance(retried, Reconciled)
        assert threads[0] == threads[1], "the worker thread goes on"
    finally:
        sub.dispose()


def test_a_keyboard_interrupt_in_a_coroutine_reconcile_leaves_the_controllers_loop_running(
    manual: Manual,
) -> None:
    calls: list[int] = []

    async def reconcile(obj: Object, _ctx: Any) -> Action:
        calls.append(len(calls))
        if len(calls) == 1:
            raise KeyboardInterrupt
        return Action.await_change()

    stop: Subject[None] = Subject()
    controller = Controller.for_stream(manual.stream, manual.reader)
    results, _sub = start(controller, reconcile, error_policy=_retry_at_once, stop=stop)
    manual.listed(cm("a"), cm("b"))
    results.wait(lambda items: len(items) == 3)
    failed = [r for r in results.items if isinstance(r, ReconcileFailed)]
    assert len(failed) == 1 and isinstance(failed[0].error.__cause__, KeyboardInterrupt)
    stop.on_next(None)
    results.wait_ended()
    assert results.error is None


def test_system_exit_in_a_coroutine_reconcile_reaches_the_callers_loop(
    manual: Manual, caplog: pytest.LogCaptureFixture
) -> None:
    async def reconcile(obj: Object, _ctx: Any) -> Action:
        raise SystemExit(3)

    async def main() -> None:
        subscription = (
            Controller.for_stream(manual.stream, manual.reader)
            .run(reconcile, lambda _o, _e, _c: Action.await_change(), None)
            .subscribe()
        )
        try:
            manual.listed(cm("a"))
            await asyncio.sleep(TIMEOUT)  # the SystemExit ends the loop long before
        finally:
            subscription.dispose()

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(SystemExit):
            loop.run_until_complete(main())
        # What asyncio.run does next: cancel what is left (main), and let it clean up.
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
    finally:
        loop.close()
    assert "ended with SystemExit: 3" in caplog.text, "reported as a failed reconcile"


# -- stopping ----------------------------------------------------------------------------


def test_stop_lets_running_reconciles_finish_then_completes(manual: Manual) -> None:
    started = threading.Event()
    release = threading.Event()

    def reconcile(obj: Object, _ctx: Any) -> Action:
        started.set()
        release.wait(TIMEOUT)
        return Action.requeue(0)

    stop: Subject[None] = Subject()
    results, _sub = start(Controller.for_stream(manual.stream, manual.reader), reconcile, stop=stop)
    manual.listed(cm("a"))
    assert started.wait(TIMEOUT)
    stop.on_next(None)
    manual.apply(cm("b"))  # after the stop: never reconciled
    assert not results.ended.is_set()
    release.set()
    results.wait_ended()
    assert results.log == ["result a", "completed"]


def test_a_second_stop_completes_at_once(manual: Manual) -> None:
    started = threading.Event()
    release = threading.Event()

    def reconcile(obj: Object, _ctx: Any) -> Action:
        started.set()
        release.wait(TIMEOUT)
        return Action.await_change()

    stop: Subject[None] = Subject()
    controller = Controller.for_stream(manual.stream, manual.reader)
    results, _sub = start(controller, reconcile, stop=stop)
    try:
        manual.listed(cm("a"))
        assert started.wait(TIMEOUT)
        stop.on_next(None)
        stop.on_next(None)
        results.wait_ended()
        assert results.log == ["completed"]
        assert controller.metrics.snapshot().in_flight == 0
    finally:
        release.set()


def test_the_controller_completes_when_its_stream_completes(manual: Manual) -> None:
    results, _sub = start(Controller.for_stream(manual.stream, manual.reader), done)
    manual.listed(cm("a"))
    results.wait(lambda items: len(items) == 1)
    manual.subject.on_completed()
    results.wait_ended()
    assert results.log == ["result a", "completed"]


def test_a_trigger_failing_for_good_ends_the_controller_with_its_error(manual: Manual) -> None:
    related: Subject[Object] = Subject()
    controller = Controller.for_stream(manual.stream, manual.reader).watches_shared_stream(
        related, lambda _obj: None
    )
    results, _sub = start(controller, done)
    manual.listed(cm("a"))
    results.wait(lambda items: len(items) == 1)
    related.on_error(ValueError("broken mapper input"))
    results.wait_ended()
    assert isinstance(results.error, ValueError)


def test_stop_on_sigterm_with_shutdown_signals(manual: Manual) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    with shutdown_signals() as stop:
        results, _sub = start(Controller.for_stream(manual.stream, manual.reader), done, stop=stop)
        manual.listed(cm("a"))
        results.wait(lambda items: len(items) == 1)
        os.kill(os.getpid(), signal.SIGTERM)
        results.wait_ended()
    assert results.log == ["result a", "completed"]
    assert signal.getsignal(signal.SIGTERM) is previous


def test_shutdown_signals_refuses_other_threads() -> None:
    errors: list[BaseException] = []

    def use() -> None:
        try:
            with shutdown_signals():
                pass
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join(TIMEOUT)
    assert len(errors) == 1


def test_a_controller_runs_once_at_a_time(manual: Manual) -> None:
    controller = Controller.for_stream(manual.stream, manual.reader)
    first, sub = start(controller, done)
    try:
        second, _ = start(controller, done)
        second.wait_ended()
        assert isinstance(second.error, RuntimeError)
        assert not first.ended.is_set()
    finally:
        sub.dispose()


def test_metrics_count_reconciles_errors_requeues_and_missing_objects(manual: Manual) -> None:
    related: Subject[Object] = Subject()

    def reconcile(obj: Object, _ctx: Any) -> Action:
        if obj["metadata"]["name"] == "bad":
            raise RuntimeError("bad")
        return Action.requeue(3600)

    controller = Controller.for_stream(manual.stream, manual.reader).watches_shared_stream(
        related, lambda obj: ObjectRef("ghost", "default")
    )
    results, sub = start(controller, reconcile)
    try:
        manual.listed(cm("a"), cm("bad"))
        results.wait(lambda items: len(items) == 2)
        related.on_next(cm("x"))
        results.wait(lambda items: len(items) == 3)
        wait_until(lambda: controller.metrics.snapshot().queue_depth == 1)
        snap = controller.metrics.snapshot()
        assert (snap.reconciles, snap.errors, snap.requeues, snap.missing) == (2, 1, 1, 1)
        assert snap.in_flight == 0
        assert snap.duration.count == 2
        assert snap.duration.buckets[-1] == (float("inf"), 2)
    finally:
        sub.dispose()


# -- over HTTP -------------------------------------------------------------------------------


@pytest.fixture
def srv() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


def test_reconcile_may_change_its_object_without_changing_the_cache(srv: ApiServer) -> None:
    data = {"mode": "original", "level": "info"}
    for name in ("a", "b"):
        srv.create("configmaps", cm(name, data=dict(data)))
    api = Api(srv.client(), "configmaps", namespace="default")
    reader, writer = store("configmaps")
    stream = watcher(api).pipe(
        modify(ShareSubtrees()), reflect(writer), default_backoff(), applied_objects()
    )

    def reconcile(obj: Object, _ctx: Any) -> Action:
        # What a reconciler does before api.replace(obj): change the object it was given.
        obj["data"]["mode"] = f"changed by {obj['metadata']['name']}"
        obj["metadata"].setdefault("labels", {})["touched"] = "yes"
        return Action.await_change()

    results, sub = start(Controller.for_stream(stream, reader), reconcile)
    try:
        results.wait(lambda items: len(items) == 2)
        assert all(isinstance(r, Reconciled) for r in results.items)
        cached = reader.state(copy=False)
        assert cached[0]["data"] is cached[1]["data"], "ShareSubtrees shares the data"
        for obj in cached:
            assert obj["data"] == data and "labels" not in obj["metadata"]
    finally:
        sub.dispose()


def _odd_and_steady(srv: ApiServer) -> tuple[Api, dict[str, int], threading.Condition]:
    api = Api(srv.client(), "configmaps", namespace="default")
    api.create(cm("odd"))
    api.create(cm("steady"))
    return api, {}, threading.Condition()


@pytest.mark.parametrize("delay", [math.nan, math.inf, 1e300])
def test_an_odd_requeue_delay_leaves_the_other_requeues_running(
    srv: ApiServer, delay: float
) -> None:
    api, counts, cond = _odd_and_steady(srv)

    def reconcile(obj: Object, _ctx: Any) -> Action:
        name = obj["metadata"]["name"]
        with cond:
            counts[name] = counts.get(name, 0) + 1
            cond.notify_all()
        return Action.requeue(delay if name == "odd" else 0.05)

    results, sub = start(Controller(api), reconcile)
    try:
        with cond:
            assert cond.wait_for(lambda: counts.get("steady", 0) >= 5, TIMEOUT), counts
        assert results.error is None
        first_odd = next(r for r in results.items if r.ref.name == "odd")
        if math.isnan(delay):  # refused where it was made: a failed reconcile
            assert isinstance(first_odd, ReconcileFailed)
            assert isinstance(first_odd.error, ValueError)
            assert "Action.requeue(): seconds" in str(first_odd.error)
        else:  # never due: reconciled again only on a change
            assert isinstance(first_odd, Reconciled)
            assert first_odd.action == Action.await_change()
            assert counts["odd"] == 1
    finally:
        sub.dispose()


@pytest.mark.parametrize("setting", ["resync", "reconcile_timeout"])
def test_a_period_beyond_any_wait_leaves_the_controller_running(
    srv: ApiServer, setting: str
) -> None:
    # 1e10 s is beyond threading.TIMEOUT_MAX: a timer that far ahead is waited for in
    # pieces (a single wait would overflow the platform's time_t).
    api, counts, cond = _odd_and_steady(srv)

    def reconcile(obj: Object, _ctx: Any) -> Action:
        name = obj["metadata"]["name"]
        with cond:
            counts[name] = counts.get(name, 0) + 1
            cond.notify_all()
        return Action.requeue(0.05) if name == "steady" else Action.await_change()

    config = (
        ControllerConfig(resync=1e10)
        if setting == "resync"
        else ControllerConfig(reconcile_timeout=1e10)
    )
    controller = Controller(api).with_config(config)
    results, sub = start(controller, reconcile)
    try:
        with cond:
            assert cond.wait_for(lambda: counts.get("steady", 0) >= 5, TIMEOUT), counts
        assert results.error is None
        assert all(isinstance(r, Reconciled) for r in results.items)
    finally:
        sub.dispose()


def test_controller_watches_its_resource_and_disposal_closes_the_watch(srv: ApiServer) -> None:
    srv.create("configmaps", cm("a"))
    api = Api(srv.client(), "configmaps", namespace="default")
    results, sub = start(Controller(api), done)
    results.wait(lambda items: len(items) == 1)
    srv.patch("configmaps", "a", {"data": {"k": "v"}}, namespace="default")
    results.wait(lambda items: len(items) == 2)
    assert srv.open_watches() == 1
    sub.dispose()
    wait_until(lambda: srv.open_watches() == 0)


@pytest.mark.parametrize("seed", range(3))
def test_of_concurrent_starts_exactly_one_runs_and_the_others_are_told_why(
    srv: ApiServer, seed: int
) -> None:
    srv.create("configmaps", cm("a"))
    api = Api(srv.client(), "configmaps", namespace="default")
    controller = Controller(api)
    rng = random.Random(seed)
    delays = [rng.random() * 0.002 for _ in range(8)]
    barrier = threading.Barrier(len(delays))
    started: list[tuple[Results, Any]] = []
    lock = threading.Lock()

    def run(delay: float) -> None:
        barrier.wait(TIMEOUT)
        threading.Event().wait(delay)  # a random interleaving, not a wait for anything
        results, sub = start(controller, done)
        with lock:
            started.append((results, sub))

    threads = [threading.Thread(target=run, args=(d,)) for d in delays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    try:
        refused = [r for r, _ in started if r.ended.wait(0) and isinstance(r.error, RuntimeError)]
        running = [r for r, _ in started if r not in refused]
        assert len(started) == 8 and len(refused) == 7, [r.error for r, _ in started]
        assert all("is running already; run it once" in str(r.error) for r in refused)
        running[0].wait(lambda items: [i.ref.name for i in items] == ["a"])
        assert not running[0].ended.is_set()
    finally:
        for _, sub in started:
            sub.dispose()


def test_a_raising_results_subscriber_stops_the_controller_with_a_consumer_error(
    srv: ApiServer,
) -> None:
    srv.create("configmaps", cm("a"))
    api = Api(srv.client(), "configmaps", namespace="default")
    results = Results()

    def on_next(_result: ReconcileResult) -> None:
        raise ValueError("a bug in the subscriber")

    subscription = (
        Controller(api)
        .run(done, lambda _o, _e, _c: Action.await_change(), None)
        .subscribe(on_next, results.on_error, results.on_completed)
    )
    try:
        results.wait_ended()
        assert isinstance(results.error, ConsumerError)
        assert isinstance(results.error.__cause__, ValueError)
        assert "the results subscriber of controller configmaps raised" in str(results.error)
        wait_until(lambda: srv.open_watches() == 0)
    finally:
        subscription.dispose()


def test_owns_reconciles_the_owner_when_an_owned_object_changes(srv: ApiServer) -> None:
    owner = srv.create("configmaps", cm("owner"))
    client = srv.client()
    controller = Controller(Api(client, "configmaps", namespace="default")).owns(
        Api(client, "secrets", namespace="default")
    )
    results, sub = start(controller, done)
    try:
        results.wait(lambda items: len(items) == 1)
        reference = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "owner",
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
        # kube-apiserver allows one controller reference per object.
        other = {
            **reference,
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "name": "d",
            "controller": False,
        }
        srv.create(
            "secrets",
            {
                "metadata": {
                    "name": "child",
                    "namespace": "default",
                    "ownerReferences": [other, reference],
                }
            },
        )
        items = results.wait(lambda items: len(items) == 2)
        assert items[1].ref.name == "owner"
        assert items[1].reason == "owned object updated: Secret default/child"
        srv.delete("secrets", "child", namespace="default")
        items = results.wait(lambda items: len(items) == 3)
        assert items[2].ref.name == "owner"
        assert not any(isinstance(r, ObjectMissing) for r in items)
    finally:
        sub.dispose()


def owned_secret(owner: Object) -> Object:
    """A Secret ``child`` whose owner reference names ``owner`` (a ConfigMap)."""
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    return {"metadata": {"name": "child", "namespace": "default", "ownerReferences": [reference]}}


@pytest.mark.parametrize("kind", [None, "ConfigMap"])
def test_owns_reconciles_the_owner_in_a_controller_over_a_metadata_stream(
    srv: ApiServer, kind: str | None
) -> None:
    # A metadata watcher's objects say PartialObjectMetadata, which no owner reference names.
    owner = srv.create("configmaps", cm("owner"))
    client = srv.client()
    reader, writer = store("configmaps")
    stream = metadata_watcher(Api(client, "configmaps", namespace="default")).pipe(
        reflect(writer), default_backoff(), applied_objects()
    )
    given = {} if kind is None else {"kind": kind}
    controller = Controller.for_stream(stream, reader, **given).owns(
        Api(client, "secrets", namespace="default")
    )
    results, sub = start(controller, done)
    try:
        results.wait(lambda items: len(items) == 1)
        srv.create("secrets", owned_secret(owner))
        items = results.wait(lambda items: len(items) == 2)
        assert items[1].reason == "owned object updated: Secret default/child"
        # Results name the object's kind, never the shape it was watched in.
        expected = ObjectRef("owner", "default", kind or "")
        assert [r.ref for r in items] == [expected, expected]
    finally:
        sub.dispose()


def test_a_stream_controller_given_its_kind_follows_only_owner_references_of_it(
    srv: ApiServer,
) -> None:
    owner = srv.create("configmaps", cm("owner"))
    client = srv.client()
    reader, writer = store("configmaps")
    stream = metadata_watcher(Api(client, "configmaps", namespace="default")).pipe(
        reflect(writer), default_backoff(), applied_objects()
    )
    # A Widget of example.com named like the ConfigMap owns the first Secret: not ours.
    foreign = owned_secret(owner)
    foreign["metadata"]["ownerReferences"][0].update(kind="Widget", apiVersion="example.com/v1")
    foreign["metadata"]["name"] = "foreign"
    controller = Controller.for_stream(stream, reader, kind="ConfigMap").owns(
        Api(client, "secrets", namespace="default")
    )
    results, sub = start(controller, done)
    try:
        results.wait(lambda items: len(items) == 1)
        srv.create("secrets", foreign)
        srv.create("secrets", owned_secret(owner))
        items = results.wait(lambda items: len(items) == 2)
        assert items[1].reason == "owned object updated: Secret default/child"
    finally:
        sub.dispose()
    assert len(results.items) == 2


@pytest.mark.parametrize(
    ("kind", "group", "error", "words"),
    [
        (3, "", TypeError, "kind must be a string"),
        ("ConfigMap", None, TypeError, "group must be a string"),
        ("", "", ValueError, "must not be empty"),
        ("PartialObjectMetadata", "meta.k8s.io", ValueError, "shape of metadata-only"),
        ("Widget", "example.com/v1", ValueError, "'example.com'"),
        (None, "example.com", ValueError, "give kind="),
    ],
)
def test_for_stream_refuses_a_kind_it_cannot_match_owner_references_by(
    manual: Manual, kind: Any, group: Any, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        Controller.for_stream(manual.stream, manual.reader, kind=kind, group=group)


def test_watches_maps_related_objects_through_the_mapper(srv: ApiServer) -> None:
    srv.create("configmaps", cm("app-config"))
    client = srv.client()

    def mapper(secret: Object) -> list[ObjectRef]:
        target = (secret["metadata"].get("annotations") or {}).get("config")
        return [ObjectRef(target, "default")] if target else []

    controller = Controller(Api(client, "configmaps", namespace="default")).watches(
        Api(client, "secrets", namespace="default"), None, mapper
    )
    results, sub = start(controller, done)
    try:
        results.wait(lambda items: len(items) == 1)
        srv.create("secrets", {"metadata": {"name": "unrelated", "namespace": "default"}})
        srv.create(
            "secrets",
            {
                "metadata": {
                    "name": "s",
                    "namespace": "default",
                    "annotations": {"config": "app-config"},
                }
            },
        )
        items = results.wait(lambda items: len(items) == 2)
        assert items[1].ref.name == "app-config"
        assert items[1].reason == "related object updated: Secret default/s"
    finally:
        sub.dispose()


def test_two_controllers_sharing_one_stream_use_one_http_watch(srv: ApiServer) -> None:
    for name in ("a", "b", "c"):
        srv.create("configmaps", cm(name))
    api = Api(srv.client(), "configmaps", namespace="default")
    reader, writer = store_shared(64, name="configmaps")
    watch = watcher(api).pipe(reflect_shared(writer), default_backoff()).subscribe()
    first, sub1 = start(Controller.for_shared_stream(reader.subscribe(replay=True), reader), done)
    second, sub2 = start(Controller.for_shared_stream(reader.subscribe(replay=True), reader), done)
    try:
        first.wait(lambda items: len(items) == 3)
        second.wait(lambda items: len(items) == 3)
        srv.create("configmaps", cm("d"))
        first.wait(lambda items: "d" in [r.ref.name for r in items])
        second.wait(lambda items: "d" in [r.ref.name for r in items])
        assert srv.open_watches() == 1
    finally:
        sub1.dispose()
        sub2.dispose()
        watch.dispose()
    wait_until(lambda: srv.open_watches() == 0)


# -- the example controller, end to end with faults ---------------------------------------


def load_example() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "examples" / "configmap_controller.py"
    spec = importlib.util.spec_from_file_location("configmap_controller", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


def mirrored(srv: ApiServer) -> dict[str, dict[str, str]]:
    """The data of every mirror Secret, decoded, by Secret name."""
    return {
        secret["metadata"]["name"]: {
            k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()
        }
        for secret in srv.list("secrets", namespace="default")
    }


def expected(srv: ApiServer) -> dict[str, dict[str, str]]:
    """What the mirrors must be: one per labelled ConfigMap that is not being deleted."""
    return {
        f"{c['metadata']['name']}-mirror": c.get("data") or {}
        for c in srv.list("configmaps", namespace="default", label_selector="rxkube.io/mirror=true")
        if not c["metadata"].get("deletionTimestamp")
    }


def test_example_controller_converges_despite_faults(srv: ApiServer) -> None:
    example = load_example()
    labels = {"rxkube.io/mirror": "true"}
    for name, data in (("a", {"x": "1"}), ("b", {"y": "2"})):
        obj = cm(name, data=data)
        obj["metadata"]["labels"] = labels
        srv.create("configmaps", obj)
    srv.create("configmaps", cm("unlabelled", data={"z": "3"}))
    stop: Subject[None] = Subject()
    results = Results()
    example.run(srv.client(), "default", stop=stop, retry_after=0.2).subscribe(
        results.on_next, results.on_error, results.on_completed
    )
    try:

        def events() -> set[tuple[str, str]]:
            return {
                (e["involvedObject"]["name"], e["reason"])
                for e in srv.list("events", namespace="default")
            }

        wait_until(lambda: mirrored(srv) == expected(srv) and len(expected(srv)) == 2)
        wait_until(lambda: {("a", "MirrorCreated"), ("b", "MirrorCreated")} <= events())

        # Faults: failing requests, cut watches, a restart, while things change.
        srv.faults.fail_requests(500, count=2, verb="list")  # the watches' relists
        srv.faults.fail_requests(503, count=2, verb="get")  # the reconciles' reads
        srv.faults.close_watches(abrupt=True)
        srv.patch("configmaps", "a", {"data": {"x": "changed"}}, namespace="default")
        srv.create(
            "configmaps",
            {
                "metadata": {"name": "c", "namespace": "default", "labels": labels},
                "data": {"new": "yes"},
            },
        )
        tampered = srv.get("secrets", "b-mirror", namespace="default")
        tampered["data"] = {"y": base64.b64encode(b"tampered").decode()}
        srv.replace("secrets", tampered)
        srv.restart()
        srv.delete("configmaps", "b", namespace="default")  # held by the finalizer

        wait_until(
            lambda: (
                mirrored(srv) == expected(srv)
                and set(expected(srv)) == {"a-mirror", "c-mirror"}
                and not any(
                    c["metadata"]["name"] == "b"
                    for c in srv.list("configmaps", namespace="default")
                )
            )
        )
        assert mirrored(srv)["a-mirror"] == {"x": "changed"}
        assert any(isinstance(r, ReconcileFailed) for r in results.items)  # the 503s
    finally:
        stop.on_next(None)
        results.wait_ended()
    assert results.error is None
    wait_until(lambda: srv.open_watches() == 0)
