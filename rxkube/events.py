"""Watch events: what a watcher emits and what a store's Writer consumes.

A watcher's stream is ``Init, InitApply*, InitDone`` for every (re)list, then
``Apply``/``Delete`` for each change seen on the watch. The classes are small,
immutable and work with ``match`` statements::

    match event:
        case Apply(obj) | InitApply(obj):
            ...
        case Delete(obj):
            ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "Apply",
    "Delete",
    "Event",
    "Init",
    "InitApply",
    "InitDone",
    "Object",
    "ObjectFn",
]

Object: TypeAlias = dict[str, Any]
"""A Kubernetes object as a plain dict decoded from JSON."""

ObjectFn: TypeAlias = Callable[[Object], Object | None]
"""A function that transforms an object: it may mutate it in place (returning None) or return a new one."""


def _apply_fn(fn: ObjectFn, obj: Object) -> Object:
    result = fn(obj)
    return obj if result is None else result


@dataclass(frozen=True, slots=True)
class Init:
    """A (re)list has started: objects follow as ``InitApply`` until ``InitDone``."""

    def modify(self, fn: ObjectFn) -> Init:
        """Return this event unchanged: it carries no object."""
        return self


@dataclass(frozen=True, slots=True)
class InitApply:
    """One object of the list that started with the last ``Init``."""

    obj: Object

    def modify(self, fn: ObjectFn) -> InitApply:
        """Return the event with ``fn`` applied to its object."""
        return InitApply(_apply_fn(fn, self.obj))


@dataclass(frozen=True, slots=True)
class InitDone:
    """The (re)list is complete: everything not listed since ``Init`` no longer exists."""

    def modify(self, fn: ObjectFn) -> InitDone:
        """Return this event unchanged: it carries no object."""
        return self


@dataclass(frozen=True, slots=True)
class Apply:
    """An object was added or modified while watching."""

    obj: Object

    def modify(self, fn: ObjectFn) -> Apply:
        """Return the event with ``fn`` applied to its object."""
        return Apply(_apply_fn(fn, self.obj))


@dataclass(frozen=True, slots=True)
class Delete:
    """An object was deleted while watching (its last known state)."""

    obj: Object

    def modify(self, fn: ObjectFn) -> Delete:
        """Return the event with ``fn`` applied to its object."""
        return Delete(_apply_fn(fn, self.obj))


Event: TypeAlias = Init | InitApply | InitDone | Apply | Delete
"""Any watch event."""
