"""How long a failed reconcile waits before its next attempt: client-go's default controller limiter.

client-go's ``DefaultTypedControllerRateLimiter`` (what controller-runtime uses unless told
otherwise) takes the larger of two delays:

- **per object**, exponential: ``5 ms * 2**(attempt - 1)``, capped at 1000 s, so one object
  failing over and over backs off to a retry every ~17 minutes;
- **overall**, a token bucket of 10 retries a second with a burst of 100, so a failure of
  everything at once (the API server refusing every write) does not turn into a storm.

:class:`RateLimiter` is that rule as a pure object: time comes in as an argument, so it is
tested on a fake clock, and the controller that owns it counts the attempts (reset when
a reconcile succeeds).

Example:
    >>> limiter = RateLimiter()
    >>> [round(limiter.delay(attempt, now=0.0), 3) for attempt in (1, 2, 3, 4)]
    [0.005, 0.01, 0.02, 0.04]
"""

from __future__ import annotations

import math

from ._timeouts import checked_seconds

__all__ = ["RateLimiter"]


class RateLimiter:
    """The delay before the next attempt of a failed reconcile; not thread-safe.

    Args:
        base_delay: the per-object delay after the first failure, in seconds.
        max_delay: the cap on the per-object delay.
        qps: retries per second the overall token bucket allows in the long run.
        burst: retries the bucket allows at once (its size; it starts full).

    Raises:
        TypeError: a delay is not a number.
        ValueError: a delay is negative, NaN or infinite, ``max_delay < base_delay``,
            ``qps <= 0`` or ``burst < 1``.
    """

    def __init__(
        self,
        base_delay: float = 0.005,
        max_delay: float = 1000.0,
        qps: float = 10.0,
        burst: int = 100,
    ) -> None:
        base_delay = checked_seconds(base_delay, "RateLimiter()", "base_delay", finite=True)
        max_delay = checked_seconds(max_delay, "RateLimiter()", "max_delay", finite=True)
        if max_delay < base_delay:
            raise ValueError(
                f"RateLimiter needs 0 <= base_delay <= max_delay, got {base_delay!r}, {max_delay!r}"
            )
        if not qps > 0 or burst < 1:
            raise ValueError(f"RateLimiter needs qps > 0 and burst >= 1, got {qps!r}, {burst!r}")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.qps = qps
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def delay(self, attempt: int, now: float) -> float:
        """Seconds to wait before attempt ``attempt + 1``, after attempt ``attempt`` failed.

        Takes one token from the bucket (as client-go's ``Reserve`` does, going into debt
        when it is empty: the debt is the overall delay).

        Args:
            attempt: how many attempts in a row have failed, this one included (1 or more).
            now: the current time in seconds on a monotonic clock.

        Raises:
            ValueError: ``attempt`` is less than 1.
        """
        if attempt < 1:
            raise ValueError(f"RateLimiter.delay: attempt must be >= 1, got {attempt!r}")
        # 2**exponent overflows a float past ~1024 doublings; the cap is hit long before.
        exponent = attempt - 1
        per_object = (
            self.max_delay
            if exponent >= 1024
            else min(self.max_delay, self.base_delay * math.ldexp(1.0, exponent))
        )
        return max(per_object, self._reserve(now))

    def _reserve(self, now: float) -> float:
        if self._last is not None and now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        if self._last is None or now > self._last:
            self._last = now
        self._tokens -= 1.0
        return -self._tokens / self.qps if self._tokens < 0 else 0.0

    def __repr__(self) -> str:
        return (
            f"RateLimiter(base_delay={self.base_delay}, max_delay={self.max_delay}, "
            f"qps={self.qps}, burst={self.burst})"
        )
