"""Field paths as ``fieldsV1`` writes them: path elements, their order, and field-set tries.

A path is a tuple of elements: ``f:<name>`` for a field, ``k:<json>`` for an item of a
list keyed by its merge keys, ``v:<json>`` for an item of a set-like list. Used by the
schema (``_schema.py``) and by field ownership (``_apply.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

Path = tuple[str, ...]
Object = dict[str, Any]


class Missing:
    """The absence of a value, as opposed to a JSON ``null``."""

    __slots__ = ()


MISSING: Any = Missing()


class SchemaError(Exception):
    """An object does not fit the schema (an associative list item without keys...)."""


class ManagedFieldsError(Exception):
    """``metadata.managedFields`` cannot be decoded."""


@dataclass(frozen=True, slots=True)
class ListType:
    """An associative list: items keyed by ``keys`` (absent keys take ``defaults``).

    No keys means a set of scalars (``x-kubernetes-list-type: set``).
    """

    keys: tuple[str, ...] = ()
    defaults: tuple[tuple[str, Any], ...] = ()


def go_json(value: Any) -> str:
    """Compact JSON as Go's encoding/json writes it (sorted keys, HTML characters escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def item_element(list_type: ListType, item: Any) -> str:
    """The path element of a list item: ``k:{...}`` by its keys, or ``v:...`` in a set."""
    if not list_type.keys:
        if isinstance(item, dict | list) or item is None:
            raise SchemaError("associative list without keys has an element that's not a scalar")
        return f"v:{go_json(item)}"
    if not isinstance(item, dict):
        raise SchemaError("associative list with keys may not have non-map elements")
    key = {name: item[name] for name in list_type.keys if name in item}
    for name, default in list_type.defaults:
        key.setdefault(name, default)
    if not key:
        names = " ".join(f'"{name}"' for name in list_type.keys)
        raise SchemaError(
            f"associative list with keys has an element that omits all key fields [{names}] "
            "(and doesn't have default values for any key fields)"
        )
    return f"k:{go_json(key)}"


def _value_string(value: Any) -> str:
    """A value as structured-merge-diff prints it in a path (Go's ``%q`` for strings)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ",".join(_value_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{k}={_value_string(v)}" for k, v in value.items())
    return str(value)


def element_string(element: str) -> str:
    kind, body = element[0], element[2:]
    if kind == "f":
        return f".{body}"
    if kind == "k":
        fields = json.loads(body)
        return "[" + ",".join(f"{k}={_value_string(v)}" for k, v in fields.items()) + "]"
    if kind == "v":
        return f"[={_value_string(json.loads(body))}]"
    return f"[{body}]"


def path_string(path: Path) -> str:
    """A path as kube-apiserver prints it: ``.spec.containers[name="web"].image``."""
    return "".join(element_string(e) for e in path)


def _scalar_order(value: Any) -> tuple[int, float, str]:
    # structured-merge-diff orders numbers < strings < booleans < lists < maps < null.
    if isinstance(value, bool):
        return (2, float(value), "")
    if isinstance(value, int | float):
        return (0, float(value), "")
    if isinstance(value, str):
        return (1, 0.0, value)
    rank = 3 if isinstance(value, list) else 4 if isinstance(value, dict) else 5
    return (rank, 0.0, go_json(value))


@lru_cache(maxsize=8192)
def _element_order(element: str) -> tuple[Any, ...]:
    """Sort key of a path element: fields, then keys, then values, then indexes."""
    kind, body = element[0], element[2:]
    if kind == "f":
        return (0, body)
    if kind == "k":
        return (1, tuple((k, _scalar_order(v)) for k, v in json.loads(body).items()))
    if kind == "v":
        return (2, _scalar_order(json.loads(body)))
    return (3, int(body))


def _canonical_element(element: str) -> str:
    """A path element read from ``fieldsV1``, written the way this module writes it."""
    kind, sep, body = element[:1], element[1:2], element[2:]
    if sep != ":" or kind not in ("f", "k", "v", "i"):
        raise ManagedFieldsError(f"invalid path element {element!r}")
    if kind == "f":
        return element
    try:
        value = json.loads(body)
    except ValueError:
        raise ManagedFieldsError(f"invalid path element {element!r}") from None
    if kind == "k":
        if not isinstance(value, dict) or not value:
            raise ManagedFieldsError(f"invalid key {element!r}")
        return f"k:{go_json(value)}"
    if kind == "v":
        return f"v:{go_json(value)}"
    if not isinstance(value, int) or isinstance(value, bool):
        raise ManagedFieldsError(f"invalid index {element!r}")
    return f"i:{value}"


class PathTrie:
    """A field set as a tree: whether each node is itself in the set, and its children."""

    __slots__ = ("children", "member")

    def __init__(self) -> None:
        self.member = False
        self.children: dict[str, PathTrie] = {}

    @classmethod
    def of(cls, paths: Iterable[Path]) -> PathTrie:
        root = cls()
        for path in paths:
            node = root
            for element in path:
                node = node.children.setdefault(element, cls())
            node.member = True
        return root

    def fields_v1(self) -> dict[str, Any]:
        """The ``fieldsV1`` encoding: ``.`` marks a member that also has children."""
        out: dict[str, Any] = {".": {}} if self.member and self.children else {}
        for element in sorted(self.children, key=_element_order):
            out[element] = self.children[element].fields_v1()
        return out

    def paths(self, prefix: Path = ()) -> Iterator[Path]:
        """Every path, in structured-merge-diff's order: a level's members, then deeper."""
        ordered = sorted(self.children, key=_element_order)
        for element in ordered:
            if self.children[element].member:
                yield (*prefix, element)
        for element in ordered:
            yield from self.children[element].paths((*prefix, element))


def decode_fields(node: Any, prefix: Path, out: set[Path]) -> None:
    if not isinstance(node, dict):
        raise ManagedFieldsError("fieldsV1 must be an object of objects")
    for key, child in node.items():
        if key == ".":
            if prefix:
                out.add(prefix)
            continue
        path = (*prefix, _canonical_element(key))
        if isinstance(child, dict) and not child:
            out.add(path)
        else:
            decode_fields(child, path, out)
