"""The one rule for a timeout a caller passes to a public wait.

``threading`` and ``asyncio`` take a negative timeout as zero, hang on NaN, and overflow
on infinity or on anything beyond ``threading.TIMEOUT_MAX``; a string fails deep inside
with a message about ``+``. Every public wait checks its timeout here first, so each of
those mistakes is a ``TypeError`` or ``ValueError`` that names the call, and a timeout
longer than any wait can be (``math.inf`` among them) means no limit, as ``None`` does.
"""

from __future__ import annotations

import math
import threading

__all__ = ["checked_timeout"]


def checked_timeout(timeout: object, what: str) -> float | None:
    """Return ``timeout`` as seconds to give a wait, ``None`` for no limit.

    Args:
        timeout: what the caller passed: seconds (0 or more), or ``None`` for no limit.
        what: the call it was passed to, for the message (``"Store.wait_until_ready()"``).

    Raises:
        TypeError: ``timeout`` is not a number (nor ``None``).
        ValueError: ``timeout`` is negative or NaN.

    Example:
        >>> checked_timeout(2, "wait()"), checked_timeout(math.inf, "wait()")
        (2.0, None)
        >>> checked_timeout(-1, "wait()")
        Traceback (most recent call last):
        ...
        ValueError: wait(): timeout must be 0 or more seconds (or None for no limit), not -1
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(
            f"{what}: timeout must be a number of seconds or None, not"
            f" {type(timeout).__name__} {timeout!r}"
        )
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(
            f"{what}: timeout must be 0 or more seconds (or None for no limit), not {timeout!r}"
        )
    if timeout > threading.TIMEOUT_MAX:
        return None
    return float(timeout)
