"""Memory levers that keep plain dicts but share what objects repeat: candidates for rxkube.

A cached pod decoded by orjson is ~5x its JSON size, and most of it repeats from pod to
pod: label values, images, env, volumes, tolerations, conditions, managedFields. Two
``modify()`` functions share the repeats across the cache, so objects stay ordinary
``dict``/``list``/``str`` and every read costs what it costs on a plain dict:

- ``InternStrings``: one copy of each equal string (keys and values);
- ``ShareSubtrees``: one copy of each equal string *and* of each equal sub-dict and
  sub-list (hash-consing), so e.g. every pod of one ReplicaSet points at the same
  ``spec.containers[0].env`` list. Objects must then be treated as immutable, which
  rxkube's store already demands ("do not mutate them").

Both keep their tables bounded: past ``max_entries`` the table is dropped and sharing
starts afresh (objects already built keep what they share), so churn cannot grow it
forever. ``raw_bytes`` is the other end of the trade: the encoded JSON kept as ``bytes``
and decoded on every read.
"""

from __future__ import annotations

from typing import Any

_DEFAULT_MAX = 1 << 18


class InternStrings:
    """``modify()`` function: make equal string values one shared string, in place.

    Keys need nothing: orjson already shares each distinct key (up to 64 bytes). Values
    are replaced in place, so the dicts orjson sized exactly are kept as they are.

    Args:
        max_entries: strings remembered before the table starts afresh.

    Example:
        >>> intern = InternStrings()
        >>> a, b = intern({"x": "Running" + ""}), intern({"x": "".join(["Run", "ning"])})
        >>> a["x"] is b["x"]
        True
    """

    def __init__(self, max_entries: int = _DEFAULT_MAX) -> None:
        self._max = max_entries
        self._table: dict[str, str] = {}

    def __call__(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Share ``obj``'s strings with earlier objects; returns ``obj`` itself."""
        if len(self._table) > self._max:
            self._table = {}
        self._dict(obj)
        return obj

    def _dict(self, obj: dict[str, Any]) -> None:
        setdefault = self._table.setdefault
        for key, value in obj.items():
            kind = type(value)
            if kind is str:
                obj[key] = setdefault(value, value)
            elif kind is dict:
                self._dict(value)
            elif kind is list:
                self._list(value)

    def _list(self, items: list[Any]) -> None:
        setdefault = self._table.setdefault
        for i, value in enumerate(items):
            kind = type(value)
            if kind is str:
                items[i] = setdefault(value, value)
            elif kind is dict:
                self._dict(value)
            elif kind is list:
                self._list(value)


class ShareSubtrees:
    """``modify()`` function: share equal strings, sub-dicts and sub-lists across objects.

    Works bottom-up and in place: each container's children are first replaced by their
    shared twins, then the container is looked up by its shape (its keys and the
    identities of its children), so finding a twin costs one tuple and one dict look-up
    per container. A container seen first becomes the shared one. The top-level object
    is never shared (the store keys it by name, and its ``metadata`` differs anyway).

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
        # int, float, bool, None: the type keeps True, 1 and 1.0 apart.
        return value, (kind, value)
