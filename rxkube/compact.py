"""Memory levers: a ``modify()`` function that shares what cached objects repeat.

A pod decoded by orjson takes about five times its JSON size, and most of it repeats
from pod to pod: label values, images, env, volumes, tolerations, conditions,
managedFields. ``ShareSubtrees`` keeps one copy of each equal string, sub-dict and
sub-list across the objects it sees, so objects stay plain ``dict``/``list``/``str``
and reads cost what they cost on plain dicts. Measured on realistic pods
(``docs/performance.md``): 0.25x the memory of plain dicts, reads about twice as fast
(shared parts stay in the CPU cache), at about four times the decode cost per object.

It is off by default: the decode cost halves watch throughput, and shared objects must
never be mutated, which the store already requires of every cached object.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ShareSubtrees"]

_DEFAULT_MAX = 1 << 18


class ShareSubtrees:
    """``modify()`` function: share equal strings, sub-dicts and sub-lists across objects.

    Works bottom-up and in place: each container's children are first replaced by their
    shared twins, then the container is looked up by its shape (its keys and the
    identities of its children), so finding a twin costs one tuple and one dict look-up
    per container. A container seen first becomes the shared one. The top-level object
    is never shared (the store keys it by name, and its ``metadata`` differs anyway).

    Use it as the *last* ``modify()`` before the store: a later function that mutates
    an object in place would change every object sharing that part. Past
    ``max_entries`` the tables start afresh (objects already built keep what they
    share), so churn cannot grow them forever.

    Args:
        max_entries: strings and containers remembered before the tables start afresh.

    Example:
        >>> share = ShareSubtrees()
        >>> a = share({"metadata": {"name": "a"}, "spec": {"env": [{"name": "X"}]}})
        >>> b = share({"metadata": {"name": "b"}, "spec": {"env": [{"name": "X"}]}})
        >>> a["spec"] is b["spec"]
        True
    """

    def __init__(self, max_entries: int = _DEFAULT_MAX) -> None:
        if max_entries < 1:
            raise ValueError(f"ShareSubtrees(max_entries=...) must be positive, got {max_entries}")
        self._max = max_entries
        self._strings: dict[str, str] = {}
        self._shapes: dict[tuple[Any, ...], Any] = {}

    def __call__(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Share ``obj``'s parts with earlier objects; returns ``obj`` itself."""
        if len(self._shapes) + len(self._strings) > self._max:
            self._strings, self._shapes = {}, {}
        self._shape(obj)
        return obj

    def _shape(self, obj: dict[str, Any]) -> tuple[Any, ...]:
        """Replace ``obj``'s children by their shared twins; return ``obj``'s shape."""
        parts: list[Any] = []
        for key, value in obj.items():
            shared, part = self._share(value)
            if shared is not value:
                obj[key] = shared
            parts.append(key)
            parts.append(part)
        return tuple(parts)

    def _share(self, value: Any) -> tuple[Any, Any]:
        """The shared twin of ``value`` and its part of a parent's shape."""
        kind = type(value)
        if kind is str:
            value = self._strings.setdefault(value, value)
            return value, value
        if kind is dict:
            got = self._shapes.setdefault(self._shape(value), value)
            return got, id(got)
        if kind is list:
            parts: list[Any] = [list]
            for i, item in enumerate(value):
                shared, part = self._share(item)
                if shared is not item:
                    value[i] = shared
                parts.append(part)
            got = self._shapes.setdefault(tuple(parts), value)
            return got, id(got)
        # int, float, bool, None: the type keeps True, 1 and 1.0 apart. Anything a
        # modify() put there that cannot be hashed (a tuple holding a dict, a set) is
        # kept as it is and stands for itself.
        try:
            hash(value)
        except TypeError:
            return value, (kind, id(value))
        return value, (kind, value)
