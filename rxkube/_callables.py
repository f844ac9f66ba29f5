"""The one check of a function a caller hands to the library to call later.

An index function, a reconcile, a condition or an operator's function that cannot be
called would otherwise fail far from the mistake: at the writer's next event, in the
controller's loop, on a watch thread. Every public call that keeps a function checks it
here first, so the mistake is a ``TypeError`` at the call, in one shape: the call, the
argument and what was given instead.
"""

from __future__ import annotations

__all__ = ["check_callable"]


def check_callable(fn: object, call: str, argument: str, *, or_none: bool = False) -> None:
    """Raise ``TypeError`` unless ``fn`` can be called (or, with ``or_none``, is ``None``).

    Args:
        fn: what the caller passed.
        call: the call it was passed to, for the message (``"Controller.run()"``).
        argument: the parameter's name, for the message (``"reconcile"``).
        or_none: ``None`` is accepted too (an optional function).

    Raises:
        TypeError: ``fn`` is not callable; the message names the call, the argument and
            the type given.

    Example:
        >>> check_callable(len, "add_index('app')", "fn")
        >>> check_callable("app", "add_index('app')", "fn")
        Traceback (most recent call last):
        ...
        TypeError: add_index('app'): fn must be callable, not str 'app'
    """
    if callable(fn) or (or_none and fn is None):
        return
    accepted = "callable or None" if or_none else "callable"
    raise TypeError(f"{call}: {argument} must be {accepted}, not {type(fn).__name__} {fn!r:.60}")
