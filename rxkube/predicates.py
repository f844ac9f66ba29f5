"""Predicates for ``predicate_filter``: which property of an object must change for it to pass.

A predicate maps an object to a value, or ``None`` when the object has no such property
(an object for which the predicate gives ``None`` always passes). The filter keeps each
object's last value and compares the next one with ``==`` (not by hash, as kube-rs does:
``hash(-1) == hash(-2)`` in CPython), so a value should be immutable and small: a number,
a string, or a tuple or frozenset of them, rather than a part of the object that could
change in place.
Predicates combine with ``|``: ``generation | labels`` lets an object through when
either its generation or its labels changed (kube-rs ``Predicate::combine``).

Example:
    >>> from rxkube.predicates import generation, labels
    >>> pod = {"metadata": {"name": "a", "generation": 2, "labels": {"app": "web"}}}
    >>> generation(pod)
    2
    >>> (generation | labels)(pod) == (2, frozenset({("app", "web")}))
    True
"""

# No ``from __future__ import annotations`` here: it would bind the name
# ``annotations`` that this module exports as a predicate.

from collections.abc import Callable, Hashable
from typing import Any

from .events import Object

__all__ = [
    "Predicate",
    "annotations",
    "finalizers",
    "generation",
    "labels",
    "resource_version",
]


class Predicate:
    """A named function from an object to a value (or ``None``) to compare with ``==`` over time.

    Args:
        fn: returns the property to compare, or ``None`` when the object has none.
        name: shown in ``repr``.

    Example:
        >>> replicas = Predicate(lambda obj: obj.get("spec", {}).get("replicas"), "replicas")
        >>> replicas({"spec": {"replicas": 3}})
        3
    """

    __slots__ = ("_fn", "name")

    def __init__(self, fn: Callable[[Object], Hashable | None], name: str = "predicate") -> None:
        self._fn = fn
        self.name = name

    def __call__(self, obj: Object) -> Hashable | None:
        """Return the value to compare for ``obj``, or ``None`` if it has none."""
        return self._fn(obj)

    def __or__(self, other: "Predicate") -> "Predicate":
        """Combine two predicates: an object passes when either value changed.

        The combined value is ``None`` only when both are ``None``.
        """
        first, second = self._fn, other._fn

        def combined(obj: Object) -> Hashable | None:
            a, b = first(obj), second(obj)
            return None if a is None and b is None else (a, b)

        return Predicate(combined, f"{self.name} | {other.name}")

    def __repr__(self) -> str:
        return f"<Predicate {self.name}>"


def _meta(obj: Object) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _mapping(value: object) -> frozenset[tuple[str, str]]:
    return frozenset(value.items()) if isinstance(value, dict) else frozenset()


generation = Predicate(lambda obj: _meta(obj).get("generation"), "generation")
"""``metadata.generation``: changes when the spec changes (``None`` for kinds without one)."""

resource_version = Predicate(lambda obj: _meta(obj).get("resourceVersion"), "resource_version")
"""``metadata.resourceVersion``: changes on every write."""

labels = Predicate(lambda obj: _mapping(_meta(obj).get("labels")), "labels")
"""``metadata.labels`` (absent labels compare as empty)."""

annotations = Predicate(lambda obj: _mapping(_meta(obj).get("annotations")), "annotations")
"""``metadata.annotations`` (absent annotations compare as empty)."""

finalizers = Predicate(lambda obj: tuple(_meta(obj).get("finalizers") or ()), "finalizers")
"""``metadata.finalizers`` in order (absent finalizers compare as empty)."""
