"""backoff() and default_backoff(): which errors are retried, when, and what is logged.

All timing runs on TestScheduler virtual time (one tick = one second).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

import pytest
import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.testing import ReactiveTest, TestScheduler

from rxkube import BackoffPolicy, ExponentialBackoff, reflect, store, watcher
from rxkube.client import Api
from rxkube.errors import (
    ApiError,
    DecodeError,
    Forbidden,
    Gone,
    NotFound,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
    WatchStalled,
    api_error,
)
from rxkube.operators import backoff, default_backoff
from rxkube.testing import ApiServer

on_next, on_error, on_completed = (
    ReactiveTest.on_next,
    ReactiveTest.on_error,
    ReactiveTest.on_completed,
)


class FailingSource:
    """A cold Observable that records when it is subscribed and fails each time after ``run_for``.

    ``errors`` gives the error of each subscription in turn (the last one repeats);
    ``run_for`` seconds after subscribing it emits one item and fails.
    """

    def __init__(
        self, scheduler: TestScheduler, errors: list[Exception], run_for: list[float] | float = 0
    ) -> None:
        self.scheduler = scheduler
        self.errors = errors
        self.run_for = run_for
        self.subscribed_at: list[float] = []
        self.disposed = 0
        self.observable: Observable[str] = reactivex.create(self._subscribe)

    def _subscribe(
        self, observer: abc.ObserverBase[str], _: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        index = len(self.subscribed_at)
        self.subscribed_at.append(self.scheduler.clock)
        error = self.errors[min(index, len(self.errors) - 1)]
        run_for = self.run_for if isinstance(self.run_for, float | int) else self.run_for[index]
        if run_for == 0:  # fails while being subscribed
            observer.on_next(f"item {index}")
            observer.on_error(error)
            return Disposable(self._dispose)

        def fail(*_: Any) -> None:
            observer.on_next(f"item {index}")
            observer.on_error(error)

        timer = self.scheduler.schedule_relative(run_for, fail)

        def dispose() -> None:
            timer.dispose()
            self._dispose()

        return Disposable(dispose)

    def _dispose(self) -> None:
        self.disposed += 1

    def gaps(self) -> list[float]:
        times = self.subscribed_at
        return [round(b - a, 6) for a, b in itertools.pairwise(times)]


def no_jitter() -> ExponentialBackoff:
    return ExponentialBackoff(jitter=0.0)


class GiveUpAfter:
    """A user-written policy: ``n`` retries one second apart, then give up."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.tries = 0
        self.resets = 0

    def next_delay(self) -> float | None:
        self.tries += 1
        return 1.0 if self.tries <= self.n else None

    def reset(self) -> None:
        self.tries = 0
        self.resets += 1


def run(
    scheduler: TestScheduler, observable: Observable[Any], until: float = 1000
) -> tuple[list[Any], list[Exception], list[bool]]:
    items: list[Any] = []
    errors: list[Exception] = []
    completed: list[bool] = []
    observable.subscribe(items.append, errors.append, lambda: completed.append(True))
    scheduler.advance_to(until)
    return items, errors, completed


def test_exponential_backoff_doubles_from_0_8_s_up_to_30_s() -> None:
    policy = no_jitter()
    assert [policy.next_delay() for _ in range(8)] == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30, 30]


def test_exponential_backoff_jitter_adds_up_to_the_delay_again() -> None:
    low = ExponentialBackoff(rng=lambda: 0.0)
    high = ExponentialBackoff(rng=lambda: 0.999)
    assert [low.next_delay() for _ in range(3)] == [0.8, 1.6, 3.2]
    assert [round(high.next_delay(), 3) for _ in range(3)] == [1.599, 3.198, 6.397]
    default = ExponentialBackoff()
    for base in [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]:
        assert base <= default.next_delay() < 2 * base


def test_exponential_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="factor"):
        ExponentialBackoff(factor=0.5)


def test_policies_are_checkable_against_the_protocol() -> None:
    assert isinstance(ExponentialBackoff(), BackoffPolicy)
    assert isinstance(GiveUpAfter(1), BackoffPolicy)


def test_resubscribes_after_transient_errors_with_exponential_delays() -> None:
    scheduler = TestScheduler()
    source = FailingSource(scheduler, [TransportError("connection reset")])
    items, errors, _ = run(
        scheduler, source.observable.pipe(backoff(no_jitter(), scheduler=scheduler)), until=200
    )
    assert source.gaps()[:8] == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30, 30]
    assert errors == []
    assert items[:3] == ["item 0", "item 1", "item 2"]


@pytest.mark.parametrize(
    "error",
    [
        TransportError("refused"),
        WatchStalled("silent for 295 s"),
        DecodeError("garbled line"),
        ServerError(503, "ServiceUnavailable"),
        TooManyRequests(429, "TooManyRequests"),
        Gone(410, "Expired"),
        Unauthorized(401, "Unauthorized"),
        Forbidden(403, "Forbidden"),
    ],
)
def test_transient_errors_are_retried(error: Exception) -> None:
    scheduler = TestScheduler()
    source = FailingSource(scheduler, [error, error, error])
    _, errors, _ = run(
        scheduler, source.observable.pipe(backoff(GiveUpAfter(2), scheduler=scheduler))
    )
    assert len(source.subscribed_at) == 3
    assert errors == [error]


@pytest.mark.parametrize(
    "error",
    [TypeError("callback bug"), NotFound(404, "NotFound"), ApiError(400, "BadRequest")],
)
def test_other_errors_propagate_at_once(error: Exception) -> None:
    scheduler = TestScheduler()
    source = FailingSource(scheduler, [error], run_for=5)
    items, errors, _ = run(scheduler, source.observable.pipe(default_backoff(scheduler=scheduler)))
    assert source.subscribed_at == [0]
    assert items == ["item 0"]
    assert errors == [error]


def test_a_non_transient_error_after_retries_propagates() -> None:
    scheduler = TestScheduler()
    bug = TypeError("bug")
    source = FailingSource(scheduler, [TransportError("reset"), bug], run_for=5)
    _, errors, _ = run(scheduler, source.observable.pipe(backoff(no_jitter(), scheduler=scheduler)))
    assert source.subscribed_at == [0, 5.8]
    assert errors == [bug]


def test_gives_up_when_the_policy_returns_none() -> None:
    scheduler = TestScheduler()
    error = TransportError("down")
    source = FailingSource(scheduler, [error], run_for=2)
    policy = GiveUpAfter(3)
    items, errors, _ = run(scheduler, source.observable.pipe(backoff(policy, scheduler=scheduler)))
    assert source.subscribed_at == [0, 3, 6, 9]
    assert errors == [error]
    assert len(items) == 4


def test_retry_timer_survives_a_source_that_fails_while_subscribing() -> None:
    # The known retry_when trap: the error arrives during subscribe(), before the
    # subscription is stored; storing it must not cancel the retry just scheduled.
    scheduler = TestScheduler()
    error = TransportError("refused")
    source = FailingSource(scheduler, [error], run_for=0)
    _, errors, _ = run(
        scheduler, source.observable.pipe(backoff(GiveUpAfter(4), scheduler=scheduler))
    )
    assert source.subscribed_at == [0, 1, 2, 3, 4]
    assert errors == [error]


def test_reactivex_throw_is_retried_too() -> None:
    scheduler = TestScheduler()
    error = ServerError(500, "InternalError")
    _, errors, _ = run(
        scheduler, reactivex.throw(error).pipe(backoff(GiveUpAfter(2), scheduler=scheduler))
    )
    assert errors == [error]


def test_policy_resets_after_120_s_without_errors() -> None:
    scheduler = TestScheduler()
    # Subscriptions run 1 s, 1 s, then 130 s (healthy), then 1 s again.
    source = FailingSource(scheduler, [TransportError("reset")], run_for=[1, 1, 130, 1, 1])
    run(scheduler, source.observable.pipe(backoff(no_jitter(), scheduler=scheduler)), until=200)
    # waits: 0.8, 1.6, then after the 130 s run the policy starts again at 0.8.
    assert source.gaps()[:4] == [1.8, 2.6, 130.8, 2.6]


def test_policy_keeps_growing_when_errors_come_sooner_than_120_s() -> None:
    scheduler = TestScheduler()
    source = FailingSource(scheduler, [TransportError("reset")], run_for=[1, 1, 110, 1])
    run(scheduler, source.observable.pipe(backoff(no_jitter(), scheduler=scheduler)), until=200)
    assert source.gaps()[:3] == [1.8, 2.6, 113.2]


def test_reset_after_none_never_resets() -> None:
    scheduler = TestScheduler()
    source = FailingSource(scheduler, [TransportError("reset")], run_for=[1, 1, 500, 1])
    run(
        scheduler,
        source.observable.pipe(backoff(no_jitter(), reset_after=None, scheduler=scheduler)),
        until=600,
    )
    assert source.gaps()[:3] == [1.8, 2.6, 503.2]


def test_retry_after_from_the_server_is_honoured() -> None:
    scheduler = TestScheduler()
    throttled = api_error(429, {"reason": "TooManyRequests", "details": {"retryAfterSeconds": 7}})
    assert throttled.retry_after == 7
    source = FailingSource(scheduler, [throttled, TransportError("reset")], run_for=1)
    run(scheduler, source.observable.pipe(backoff(no_jitter(), scheduler=scheduler)), until=20)
    # 7 s instead of 0.8 s; the next delay continues the policy (1.6 s).
    assert source.gaps()[:2] == [8, 2.6]


@pytest.mark.parametrize("wish", ["soon", "inf", "NaN", -5, [1], True, {"s": 1}, 10**400])
def test_an_unreadable_retry_after_is_ignored_and_the_policy_delay_applies(wish: Any) -> None:
    scheduler = TestScheduler()
    status = {"reason": "TooManyRequests", "details": {"retryAfterSeconds": wish}}
    throttled = api_error(429, status)
    assert throttled.retry_after is None
    source = FailingSource(scheduler, [throttled], run_for=1)
    run(scheduler, source.observable.pipe(backoff(no_jitter(), scheduler=scheduler)), until=20)
    assert source.gaps()[:3] == [1.8, 2.6, 4.2]


def test_a_huge_retry_after_is_capped_at_the_policys_maximum() -> None:
    scheduler = TestScheduler()
    throttled = api_error(429, {"details": {"retryAfterSeconds": 100000}})
    assert throttled.retry_after == 100000
    source = FailingSource(scheduler, [throttled], run_for=1)
    policy = ExponentialBackoff(max_delay=10.0, jitter=0.0)
    run(scheduler, source.observable.pipe(backoff(policy, scheduler=scheduler)), until=40)
    assert source.gaps()[:3] == [11, 11, 11]


def test_a_policy_without_max_delay_honours_retry_after_up_to_30_s() -> None:
    scheduler = TestScheduler()
    throttled = TooManyRequests(429, retry_after=100000)
    source = FailingSource(scheduler, [throttled], run_for=1)
    run(scheduler, source.observable.pipe(backoff(GiveUpAfter(2), scheduler=scheduler)), until=100)
    assert source.gaps() == [31, 31]


@pytest.mark.parametrize("delay", [float("inf"), float("nan"), -1.0])
def test_a_policy_returning_an_invalid_delay_is_a_value_error_on_error(delay: float) -> None:
    class Broken:
        def next_delay(self) -> float:
            return delay

        def reset(self) -> None:
            pass

    scheduler = TestScheduler()
    source = FailingSource(scheduler, [TransportError("reset")], run_for=1)
    _, errors, _ = run(scheduler, source.observable.pipe(backoff(Broken(), scheduler=scheduler)))
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    assert "finite" in str(errors[0])


def test_on_retry_gets_each_error_and_delay() -> None:
    scheduler = TestScheduler()
    error = TransportError("reset")
    seen: list[tuple[BaseException, float]] = []
    source = FailingSource(scheduler, [error], run_for=1)
    op = backoff(no_jitter(), on_retry=lambda e, d: seen.append((e, d)), scheduler=scheduler)
    run(scheduler, source.observable.pipe(op), until=7)
    assert seen == [(error, 0.8), (error, 1.6), (error, 3.2)]


def test_an_exception_of_on_retry_goes_to_on_error() -> None:
    scheduler = TestScheduler()

    def broken(error: BaseException, delay: float) -> None:
        raise ValueError("on_retry is broken")

    source = FailingSource(scheduler, [TransportError("reset")], run_for=1)
    _, errors, _ = run(
        scheduler,
        source.observable.pipe(backoff(no_jitter(), on_retry=broken, scheduler=scheduler)),
    )
    assert source.subscribed_at == [0]
    assert [type(e) for e in errors] == [ValueError]


def test_each_retry_is_logged_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    scheduler = TestScheduler()
    source = FailingSource(scheduler, [TransportError("connection reset by peer")], run_for=1)
    with caplog.at_level(logging.WARNING, logger="rxkube.backoff"):
        run(scheduler, source.observable.pipe(backoff(no_jitter(), scheduler=scheduler)), until=4)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert messages[:2] == [
        "retrying in 0.80 s after TransportError: connection reset by peer",
        "retrying in 1.60 s after TransportError: connection reset by peer",
    ]


def test_disposing_while_waiting_cancels_the_retry() -> None:
    scheduler = TestScheduler()
    source = FailingSource(scheduler, [TransportError("reset")], run_for=1)
    subscription = source.observable.pipe(backoff(no_jitter(), scheduler=scheduler)).subscribe()
    scheduler.advance_to(1.5)  # failed at 1 s, retry due at 1.8 s
    subscription.dispose()
    scheduler.advance_to(100)
    assert source.subscribed_at == [0]


def test_disposing_a_running_subscription_disposes_the_source() -> None:
    scheduler = TestScheduler()
    source = FailingSource(scheduler, [TransportError("reset")], run_for=10)
    subscription = source.observable.pipe(backoff(no_jitter(), scheduler=scheduler)).subscribe()
    scheduler.advance_to(15)  # second subscription running since 10.8 s
    subscription.dispose()
    scheduler.advance_to(100)
    assert source.subscribed_at == [0, 10.8]
    assert source.disposed == 2


def test_completion_and_items_pass_through() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_cold_observable(
        on_next(1, "a"), on_error(2, TransportError("x")), on_next(3, "b")
    )
    results = scheduler.start(
        lambda: source.pipe(backoff(no_jitter(), scheduler=scheduler)), disposed=210
    )
    assert [(m.time, getattr(m.value, "value", None)) for m in results.messages] == [
        (201, "a"),
        (203.8, "a"),
        (207.4, "a"),
    ]
    done = scheduler.create_cold_observable(on_next(1, "a"), on_completed(2))
    results = scheduler.start(lambda: done.pipe(default_backoff(scheduler=scheduler)))
    assert [getattr(m.value, "kind", None) for m in results.messages] == ["N", "C"]


def test_default_backoff_gives_each_subscription_its_own_policy() -> None:
    scheduler = TestScheduler()
    source = FailingSource(scheduler, [TransportError("reset")], run_for=1)
    retrying = source.observable.pipe(default_backoff(scheduler=scheduler))
    retrying.subscribe()
    scheduler.advance_to(30)  # the first subscription's delays have grown
    first = len(source.subscribed_at)
    retrying.subscribe()
    scheduler.advance_to(33.5)
    second_starts = source.subscribed_at[first:]
    # a fresh policy: 0.8-1.6 s after its first failure at 31 s
    assert second_starts[0] == 30
    assert 31.8 <= second_starts[1] <= 32.6


def test_uses_the_subscribe_scheduler_when_none_is_given() -> None:
    scheduler = TestScheduler()
    source = FailingSource(scheduler, [TransportError("reset")], run_for=1)
    source.observable.pipe(backoff(no_jitter())).subscribe(scheduler=scheduler)
    scheduler.advance_to(5)
    assert source.subscribed_at == [0, 1.8, 4.4]


def test_backoff_with_a_user_policy_resets_it_at_subscription() -> None:
    scheduler = TestScheduler()
    policy = GiveUpAfter(1)
    policy.tries = 5
    source = FailingSource(scheduler, [TransportError("reset")], run_for=1)
    run(scheduler, source.observable.pipe(backoff(policy, scheduler=scheduler)))
    assert policy.resets == 1
    assert source.subscribed_at == [0, 2]


# --- against the test API server ------------------------------------------------------


def test_watcher_with_backoff_rides_out_failing_lists(apiserver: ApiServer) -> None:
    pods = Api(apiserver.client(), "pods", namespace="default")
    pods.create(
        {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    )
    apiserver.faults.fail_requests(503, count=2, verb="list")
    reader, writer = store("pods")
    retries: list[tuple[BaseException, float]] = []
    subscription = (
        watcher(pods)
        .pipe(
            reflect(writer),
            backoff(no_jitter_fast(), on_retry=lambda error, delay: retries.append((error, delay))),
        )
        .subscribe()
    )
    try:
        reader.wait_until_ready(timeout=10)
    finally:
        subscription.dispose()
    assert reader.get("web", "default") is not None
    assert [(type(error), delay) for error, delay in retries] == [
        (ServerError, 0.05),
        (ServerError, 0.1),
    ]


def test_watcher_with_backoff_honours_the_servers_retry_after(apiserver: ApiServer) -> None:
    pods = Api(apiserver.client(), "pods", namespace="default")
    apiserver.faults.fail_requests(429, count=1, verb="list", retry_after=1)
    reader, writer = store("pods")
    delays: list[float] = []
    started = time.monotonic()
    subscription = (
        watcher(pods)
        .pipe(
            reflect(writer),
            backoff(no_jitter_fast(), on_retry=lambda e, delay: delays.append(delay)),
        )
        .subscribe()
    )
    try:
        reader.wait_until_ready(timeout=10)
    finally:
        subscription.dispose()
    assert delays == [1.0]
    assert time.monotonic() - started >= 1.0


def test_watcher_with_backoff_reports_a_permanent_error(apiserver: ApiServer) -> None:
    pods = Api(apiserver.client(), "pods", namespace="default")
    apiserver.faults.fail_requests(404, count=1, verb="list")
    failed = threading.Event()
    errors: list[Exception] = []

    def on_error(error: Exception) -> None:
        errors.append(error)
        failed.set()

    subscription = watcher(pods).pipe(default_backoff()).subscribe(on_error=on_error)
    try:
        assert failed.wait(10)
    finally:
        subscription.dispose()
    assert [type(error) for error in errors] == [NotFound]


def no_jitter_fast() -> ExponentialBackoff:
    return ExponentialBackoff(initial=0.05, jitter=0.0)
