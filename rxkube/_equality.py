"""One equality for JSON values that tells ``1``, ``1.0`` and ``true`` apart.

Python's ``==`` takes ``1 == 1.0 == True`` (and ``0 == 0.0 == False``), also inside dicts
and lists, so a field changing from ``1`` to ``true`` compares equal to its old self. A
store keeping the old part of an object for an equal new one would then serve the old
value, and ``predicate_filter`` would drop the change. :func:`same` is ``==`` with JSON's
types kept apart.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["same"]

_JSON = (dict, list, str, int, float, bool, type(None))
_SCALARS = (str, int, float, bool, type(None))
JSON_ONLY = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
"""``orjson.dumps`` options to encode JSON's own types only: a subclass (of dict, str...), a
datetime or a dataclass is refused (or handed to ``default=``), never encoded as the JSON
it resembles. Here what is refused is left to the walk."""
_dumps = orjson.dumps


def same(a: object, b: object) -> bool:
    """Whether ``a == b`` with the same types throughout, where the values are JSON's.

    Dicts, lists and tuples are the same when their items are, pairwise; two JSON values
    of different types (``str``, ``int``, ``float``, ``bool``, ``None``, ``dict``,
    ``list``) never are, so ``1``, ``1.0`` and ``True`` differ, as their JSON does
    (``-0.0`` and ``0.0`` do not). Where either value is of another type (an enum
    member, a frozenset, a datetime), ``==`` decides.

    Example:
        >>> same({"replicas": 1}, {"replicas": 1}), same({"replicas": 1}, {"replicas": True})
        (True, False)
    """
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return not (kind in _JSON and type(b) in _JSON) and bool(a == b)
    if kind in _SCALARS:
        return bool(a == b)
    if a != b:
        return False
    # Equal: tell the types apart by the encodings, in C (this is a store's hot path).
    # Equal encodings of equal values are the same JSON; different ones may still be
    # the same values, with keys in another order or a zero's sign, which the walk sees.
    try:
        if _dumps(a, option=JSON_ONLY) == _dumps(b, option=JSON_ONLY):
            return True
    except TypeError:  # a value JSON has no type for
        pass
    return _same_types(a, b)


def _same_types(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b``, known to be ``==``, have the same types throughout."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return not (kind in _JSON and type(b) in _JSON)
    if kind is dict:
        return all(_same_types(value, b[key]) for key, value in a.items())
    if kind is list or kind is tuple:
        return all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    return True
