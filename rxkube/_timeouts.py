"""The one rule for a duration a caller passes: a timeout, a delay, a linger.

``threading`` and ``asyncio`` take a negative timeout as zero, hang on NaN, and overflow
on infinity or on anything beyond ``threading.TIMEOUT_MAX``; a string fails deep inside
with a message about ``+``. Every public wait checks its timeout here first, so each of
those mistakes is a ``TypeError`` or ``ValueError`` that names the call, and a timeout
longer than any wait can be (``math.inf`` among them) means no limit, as ``None`` does.
Other durations (a requeue delay, a linger, a backoff) are checked by
:func:`checked_seconds`, and each caller says what a duration beyond any wait means.
"""

from __future__ import annotations

import math
import threading

__all__ = ["checked_seconds", "checked_timeout"]


def checked_seconds(
    value: object, what: str, name: str, *, finite: bool = False, none: str = ""
) -> float:
    """Return ``value`` as seconds, 0 or more (``math.inf`` too, unless ``finite``).

    Args:
        value: what the caller passed.
        what: the call it was passed to, for the message (``"Action.requeue()"``).
        name: the argument, for the message (``"seconds"``).
        finite: refuse infinity too, for a duration that must end.
        none: what ``None`` means where the caller takes it (checked before), for the
            message; empty where it does not.

    Raises:
        TypeError: ``value`` is not a number (a bool is not one either).
        ValueError: ``value`` is negative or NaN (or infinite, with ``finite``).

    Example:
        >>> checked_seconds(2, "Action.requeue()", "seconds")
        2.0
        >>> checked_seconds(math.nan, "Action.requeue()", "seconds")
        Traceback (most recent call last):
        ...
        ValueError: Action.requeue(): seconds must be 0 or more seconds, not nan
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{what}: {name} must be a number of seconds{' or None' if none else ''}, not"
            f" {type(value).__name__} {value!r}"
        )
    if math.isnan(value) or value < 0 or (finite and math.isinf(value)):
        kind = "a finite number of seconds, 0 or more" if finite else "0 or more seconds"
        also = f" (or None for {none})" if none else ""
        raise ValueError(f"{what}: {name} must be {kind}{also}, not {value!r}")
    return float(value)


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
    seconds = checked_seconds(timeout, what, "timeout", none="no limit")
    return None if seconds > threading.TIMEOUT_MAX else seconds
