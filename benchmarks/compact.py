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
    """``modify()`` function: rebuild an object with one shared copy of each equal string.

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
        """Return ``obj`` rebuilt with shared strings."""
        if len(self._table) > self._max:
            self._table = {}
        rebuilt: dict[str, Any] = self._dict(obj)
        return rebuilt

    def _dict(self, obj: dict[str, Any]) -> dict[str, Any]:
        table = self._table
        setdefault = table.setdefault
        out: dict[str, Any] = {}
        for key, value in obj.items():
            kind = type(value)
            if kind is str:
                value = setdefault(value, value)
            elif kind is dict:
                value = self._dict(value)
            elif kind is list:
                value = self._list(value)
            out[setdefault(key, key)] = value
        return out

    def _list(self, items: list[Any]) -> list[Any]:
        setdefault = self._table.setdefault
        out: list[Any] = []
        for value in items:
            kind = type(value)
            if kind is str:
                value = setdefault(value, value)
            elif kind is dict:
                value = self._dict(value)
            elif kind is list:
                value = self._list(value)
            out.append(value)
        return out


class ShareSubtrees:
    """``modify()`` function: share equal strings, sub-dicts and sub-lists across objects.

    Each container is rebuilt bottom-up and looked up by its shape: its keys and the
    identities of its (already shared) children, so finding a twin costs one tuple and
    one dict look-up per container. The top-level object is never shared (the store
    keys it by name, and its ``metadata`` differs anyway).

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
        """Return ``obj`` rebuilt from shared parts."""
        if len(self._shapes) + len(self._strings) > self._max:
            self._strings, self._shapes = {}, {}
        out, _ = self._dict(obj)
        return out

    def _value(self, value: Any) -> tuple[Any, Any]:
        """The shared value and its part of a parent's shape."""
        kind = type(value)
        if kind is str:
            value = self._strings.setdefault(value, value)
            return value, value
        if kind is dict:
            shared, shape = self._dict(value)
            got = self._shapes.setdefault(shape, shared)
            return got, id(got)
        if kind is list:
            items: list[Any] = []
            parts: list[Any] = [list]
            for item in value:
                shared_item, part = self._value(item)
                items.append(shared_item)
                parts.append(part)
            got = self._shapes.setdefault(tuple(parts), items)
            return got, id(got)
        # int, float, bool, None: the type keeps True, 1 and 1.0 apart.
        return value, (kind, value)

    def _dict(self, obj: dict[str, Any]) -> tuple[dict[str, Any], tuple[Any, ...]]:
        strings = self._strings
        out: dict[str, Any] = {}
        parts: list[Any] = [dict]
        for key, value in obj.items():
            key = strings.setdefault(key, key)
            shared, part = self._value(value)
            out[key] = shared
            parts.append(key)
            parts.append(part)
        return out, tuple(parts)
