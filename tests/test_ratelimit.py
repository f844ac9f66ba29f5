"""RateLimiter on a fake clock: client-go's per-object exponential delay and overall token bucket."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import pytest

from rxkube.ratelimit import RateLimiter


def test_the_per_object_delay_doubles_from_5_ms_up_to_1000_s() -> None:
    limiter = RateLimiter()
    # A fresh limiter per attempt: only the per-object part, the bucket stays full.
    delays = [RateLimiter().delay(attempt, now=0.0) for attempt in range(1, 19)]
    assert delays[:4] == pytest.approx([0.005, 0.01, 0.02, 0.04])
    assert all(b == pytest.approx(2 * a) for a, b in itertools.pairwise(delays))
    assert limiter.delay(18, now=0.0) == pytest.approx(0.005 * 2**17)  # 655 s
    assert limiter.delay(19, now=0.0) == 1000.0
    assert limiter.delay(10_000, now=0.0) == 1000.0


def test_the_bucket_allows_a_burst_of_100_then_10_per_second() -> None:
    limiter = RateLimiter()
    burst = [limiter.delay(1, now=0.0) for _ in range(100)]
    assert burst == [0.005] * 100
    # The bucket is empty: each further retry at the same moment waits 0.1 s more.
    assert [limiter.delay(1, now=0.0) for _ in range(3)] == pytest.approx([0.1, 0.2, 0.3])


def test_the_bucket_refills_at_qps_up_to_its_burst() -> None:
    limiter = RateLimiter(qps=10, burst=5)
    for _ in range(5):
        limiter.delay(1, now=0.0)
    assert limiter.delay(1, now=0.0) == pytest.approx(0.1)  # one token in debt
    assert limiter.delay(1, now=0.3) == pytest.approx(0.005)  # 3 tokens back, 1 owed
    # A long pause refills to the burst and no further.
    assert [limiter.delay(1, now=100.0) for _ in range(5)] == [0.005] * 5
    assert limiter.delay(1, now=100.0) == pytest.approx(0.1)


def test_the_larger_of_the_two_delays_wins() -> None:
    limiter = RateLimiter(base_delay=1.0, qps=1, burst=1)
    assert limiter.delay(1, now=0.0) == 1.0  # per object 1 s, bucket 0
    assert limiter.delay(1, now=0.0) == 1.0  # per object 1 s, bucket 1 s
    assert limiter.delay(1, now=0.0) == 2.0  # bucket 2 s in debt


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    limiter = RateLimiter(qps=1, burst=1)
    limiter.delay(1, now=10.0)
    assert limiter.delay(1, now=5.0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_delay": 2, "max_delay": 1},
        {"qps": 0},
        {"qps": float("nan")},
        {"burst": 0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RateLimiter needs"):
        RateLimiter(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"base_delay": math.nan}, ValueError, "RateLimiter(): base_delay must be a finite"),
        ({"max_delay": math.nan}, ValueError, "RateLimiter(): max_delay must be a finite"),
        ({"max_delay": math.inf}, ValueError, "max_delay must be a finite number of seconds"),
        ({"base_delay": -1}, ValueError, "base_delay must be a finite number of seconds, 0 or"),
        ({"base_delay": "1"}, TypeError, "RateLimiter(): base_delay must be a number"),
    ],
)
def test_delays_that_are_nan_infinite_or_not_numbers_are_refused(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        RateLimiter(**kwargs)


def test_an_attempt_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 1"):
        RateLimiter().delay(0, now=0.0)
