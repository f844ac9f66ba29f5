"""Memory levers measured beside ``rxkube.compact.ShareSubtrees``.

A cached pod decoded by orjson is ~5x its JSON size, and most of it repeats from pod to
pod: label values, images, env, volumes, tolerations, conditions, managedFields. Two
``modify()`` functions share the repeats across the cache, so objects stay ordinary
``dict``/``list``/``str`` and every read costs what it costs on a plain dict:

- ``InternStrings``: one copy of each equal string (keys and values);
- ``rxkube.compact.ShareSubtrees`` (in the library): one copy of each equal string *and*
  of each equal sub-dict and sub-list, so e.g. every pod of one ReplicaSet points at the
  same ``spec.containers[0].env`` list.

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
