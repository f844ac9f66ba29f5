"""A store's objects at one moment, handed out one copy at a time as they are read.

A whole-store read that copied every object at once (``state()`` of 10,000 pods: ~1.5
million new dicts and lists) spent most of its time in the cyclic garbage collector,
which walks the growing heap again and again while the copies pile up. A
:class:`Snapshot` takes only the references under the store's lock; each item is copied
when it is read, so a scan that looks at one object at a time keeps one copy alive at a
time and the collector has nothing to walk (see ``docs/performance.md``).

The copy-on-read promise holds: the references never leave the snapshot, and every item
read is a new copy (or, for a compact store, a new decoding), so nothing a reader gets
can reach the cache. This needs the cached objects never to change, which the store
guarantees (the writer replaces objects, never changes them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from .events import Object

__all__ = ["Snapshot"]


class Snapshot(Sequence[Object]):
    """A read-only sequence of a store's objects at one moment; each read hands out a copy.

    What ``Store.state()``, ``filter()`` and ``by_index()`` return. It is taken at once
    (later changes of the store do not affect it) and copies lazily: every time an item
    is read, by index or by iteration, it is copied anew (unless the store hands out its
    objects themselves, ``copy=False``). So ``for pod in reader.state(): ...`` costs one
    copy per object and keeps one alive at a time, and reading only a few items of a big
    snapshot costs only those.

    Read each item once and keep what you got: ``snapshot[0] is snapshot[0]`` is false,
    and a change to one copy is not seen through the snapshot. ``list(snapshot)`` gives a
    list of copies of your own. Comparing (``==``, ``in``) looks at the objects without
    copying them.

    Example:
        >>> from rxkube import store
        >>> from rxkube.events import Apply
        >>> reader, writer = store()
        >>> writer.apply(Apply({"metadata": {"name": "a"}}))
        >>> snapshot = reader.state()
        >>> snapshot[0]["metadata"]["name"] = "changed"  # a copy: the store is untouched
        >>> snapshot[0]["metadata"]["name"], len(snapshot)
        ('a', 1)
        >>> snapshot == [{"metadata": {"name": "a"}}]
        True
    """

    __slots__ = ("_hand_out", "_objects", "_peek")

    def __init__(
        self,
        objects: list[Any],
        hand_out: Callable[[Any], Object] | None = None,
        peek: Callable[[Any], Object] | None = None,
    ) -> None:
        """Wrap ``objects`` (a list nobody else changes).

        Args:
            objects: what the store holds, in the order to hand out.
            hand_out: makes what a reader gets of one of them (a copy); ``None``: itself.
            peek: what comparisons look at (the object, without a copy); ``None``: itself.
        """
        self._objects = objects
        self._hand_out = hand_out
        self._peek = peek

    def __len__(self) -> int:
        return len(self._objects)

    @overload
    def __getitem__(self, index: int) -> Object: ...

    @overload
    def __getitem__(self, index: slice) -> Snapshot: ...

    def __getitem__(self, index: int | slice) -> Object | Snapshot:
        """A copy of the item at ``index``; a slice is a Snapshot of those items."""
        if isinstance(index, slice):
            return Snapshot(self._objects[index], self._hand_out, self._peek)
        obj = self._objects[index]
        return obj if self._hand_out is None else self._hand_out(obj)

    def __iter__(self) -> Iterator[Object]:
        """Each item, copied as it is reached."""
        hand_out = self._hand_out
        if hand_out is None:
            return iter(self._objects)
        return map(hand_out, self._objects)

    def __reversed__(self) -> Iterator[Object]:
        backwards: Iterator[Any] = reversed(self._objects)
        return backwards if self._hand_out is None else map(self._hand_out, backwards)

    def _peeked(self) -> Iterator[Object]:
        peek = self._peek
        return iter(self._objects) if peek is None else map(peek, self._objects)

    def __contains__(self, value: object) -> bool:
        return any(obj is value or obj == value for obj in self._peeked())

    def __eq__(self, other: object) -> bool:
        """Equal to a sequence (a list, another Snapshot) of equal objects, in order."""
        if isinstance(other, Snapshot):
            other_items: Iterator[Any] = other._peeked()
        elif isinstance(other, list | tuple):
            other_items = iter(other)
        else:
            return NotImplemented
        if len(self) != len(other):
            return False
        return all(a == b for a, b in zip(self._peeked(), other_items, strict=True))

    __hash__ = None  # type: ignore[assignment]  # equal to a list, so unhashable like one

    def __repr__(self) -> str:
        return f"Snapshot({list(self._peeked())!r})"
