"""``same``: ``==`` with JSON's types told apart, as the store and ``predicate_filter`` compare."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from rxkube._equality import same


class Size(enum.IntEnum):
    ONE = 1


SAME: list[tuple[Any, Any]] = [
    (1, 1),
    ("a", "a"),
    (None, None),
    ({"a": 1, "b": [1.5, True, None]}, {"a": 1, "b": [1.5, True, None]}),
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}),  # key order is no difference
    ([0.0], [-0.0]),
    ((1, "a"), (1, "a")),
    (frozenset({1}), frozenset({True})),  # not JSON: compared with ==
    ({"when": Size.ONE}, {"when": 1}),  # an enum member: == decides
]
DIFFERENT: list[tuple[Any, Any]] = [
    (1, True),
    (1, 1.0),
    (0, False),
    ({"a": 1}, {"a": True}),
    ([{"n": [1]}], [{"n": [1.0]}]),
    ({"a": 1, "b": 2}, {"b": 2, "a": True}),
    ((1, "a"), (True, "a")),
    ([1], (1,)),
    ({"a": 1}, {"a": 2}),
    (float("nan"), float("nan")),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_equal_values_of_the_same_types_are_the_same(a: Any, b: Any) -> None:
    assert same(a, b) and same(b, a)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_values_python_takes_for_equal_across_json_types_are_not_the_same(a: Any, b: Any) -> None:
    assert not same(a, b) and not same(b, a)
