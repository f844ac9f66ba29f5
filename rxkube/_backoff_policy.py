"""Backoff policies: how long ``backoff()`` waits before resubscribing after an error.

A policy is any object with ``next_delay() -> float | None`` (seconds before the
next retry, or ``None`` to give up) and ``reset()`` (start again from the first
delay). The ``backoff()`` operators call ``reset()`` when a subscription starts and
when a resubscribed stream has run ``reset_after`` seconds without an error.

``ExponentialBackoff()`` holds client-go's and kube-rs's values: 0.8 s, doubling,
capped at 30 s, with jitter.

Example:
    >>> policy = ExponentialBackoff(jitter=0.0)
    >>> [policy.next_delay() for _ in range(7)]
    [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0]
    >>> policy.reset()
    >>> policy.next_delay()
    0.8
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["MAX_DELAY", "RESET_AFTER", "BackoffPolicy", "ExponentialBackoff"]

RESET_AFTER = 120.0
"""Seconds a resubscribed stream must run without an error for its policy to reset."""

MAX_DELAY = 30.0
"""client-go's and kube-rs's cap on a delay: ``ExponentialBackoff``'s default ``max_delay``,
and how long a server's ``Retry-After`` is honoured for a policy that has no ``max_delay``."""


@runtime_checkable
class BackoffPolicy(Protocol):
    """What ``backoff()`` needs from a policy.

    A policy may also have a ``max_delay`` attribute (seconds): a server's ``Retry-After``
    lengthens a wait up to it, never beyond (``MAX_DELAY`` when the policy has none), so a
    server asking for a day does not stop a watch for a day.

    Example:
        >>> class AtMostThree:
        ...     def __init__(self) -> None:
        ...         self.tries = 0
        ...     def next_delay(self) -> float | None:
        ...         self.tries += 1
        ...         return 1.0 if self.tries <= 3 else None
        ...     def reset(self) -> None:
        ...         self.tries = 0
        >>> isinstance(AtMostThree(), BackoffPolicy)
        True
    """

    def next_delay(self) -> float | None:
        """Seconds to wait before the next retry, or ``None`` to stop retrying."""
        ...

    def reset(self) -> None:
        """Forget past failures: the next delay is the first one again."""
        ...


class ExponentialBackoff:
    """Exponential delays with jitter, never giving up.

    The n-th delay is ``min(initial * factor**n, max_delay)``, plus a random extra of
    up to ``jitter`` times that (client-go's ``Jitter``; kube-rs adds the same), so
    retries of many clients spread out instead of arriving together.

    Args:
        initial: the first delay, in seconds.
        factor: how much each delay grows.
        max_delay: the cap on the delay before jitter, and on a server's ``Retry-After``.
        jitter: the largest random extra, as a fraction of the delay (0 for none).
        rng: a function returning floats in [0, 1); ``random.random`` by default.

    Example:
        >>> policy = ExponentialBackoff(initial=1.0, factor=3.0, max_delay=5.0, jitter=0.0)
        >>> [policy.next_delay() for _ in range(4)]
        [1.0, 3.0, 5.0, 5.0]
    """

    def __init__(
        self,
        initial: float = 0.8,
        factor: float = 2.0,
        max_delay: float = MAX_DELAY,
        jitter: float = 1.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        given = {"initial": initial, "factor": factor, "max_delay": max_delay, "jitter": jitter}
        # Finite numbers only: a NaN or infinite delay would only fail at the first retry.
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in given.values()
        ) or (initial < 0 or factor < 1 or max_delay < 0 or jitter < 0):
            raise ValueError(
                "ExponentialBackoff needs finite numbers with initial >= 0, factor >= 1,"
                f" max_delay >= 0, jitter >= 0; got {given}"
            )
        self.initial = initial
        self.factor = factor
        self.max_delay = max_delay
        self.jitter = jitter
        self._rng = rng
        self._next = initial

    def next_delay(self) -> float:
        """Return the next delay (with jitter) and grow the following one."""
        base = min(self._next, self.max_delay)
        self._next = min(base * self.factor, self.max_delay)
        return base + base * self.jitter * self._rng() if self.jitter else base

    def reset(self) -> None:
        """Start again from ``initial``."""
        self._next = self.initial

    def __repr__(self) -> str:
        return (
            f"ExponentialBackoff(initial={self.initial}, factor={self.factor}, "
            f"max_delay={self.max_delay}, jitter={self.jitter})"
        )
