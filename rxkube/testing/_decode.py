"""Request bodies decoded within kube-apiserver's bounds: size, nesting depth, YAML aliases.

kube-apiserver reads at most 3 MiB of a body (413 beyond), and its decoders refuse a
document nested more than 10,000 levels deep (Go's ``encoding/json`` and
``sigs.k8s.io/yaml``'s goyaml.v2 both stop there) or a YAML document whose alias
expansion outweighs its own content ("document contains excessive aliasing"). PyYAML has
none of these guards and builds documents recursively, so YAML is built here from the
parser's event stream, iteratively, counting decode operations the way goyaml.v2 does.
This server stores objects at most :data:`MAX_DEPTH` levels deep (its own code is
recursive); deeper documents are refused with a 400 naming that limit, YAML ones even
beyond Go's limit (libyaml stops at 1,000 levels, before telling how deep they go).

The errors carry Go's wording without the handler's prefix, which differs by verb.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import yaml

GO_MAX_DEPTH = 10_000
"""The nesting limit of Go's JSON scanner and of goyaml.v2 (flow level and indentation)."""

MAX_DEPTH = 400
"""How deeply nested an object this server stores (kube-apiserver: :data:`GO_MAX_DEPTH`)."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


class DecodeError(Exception):
    """A body that kube-apiserver's decoder would refuse; the message is Go's."""


class TooDeep(DecodeError):
    """A document deeper than this server stores, which kube-apiserver would accept."""

    def __init__(self) -> None:
        super().__init__(
            f"the object is nested more than {MAX_DEPTH} levels deep: this test server stores "
            f"at most {MAX_DEPTH} levels (kube-apiserver accepts up to {GO_MAX_DEPTH})"
        )


def _json_depth(data: bytes) -> tuple[int, bytes]:
    """The deepest nesting of a JSON text, and the bracket that first goes deepest."""
    depth = deepest = 0
    opener = b"["
    for match in _BRACKET.finditer(_STRING.sub(b"", data)):
        char = match.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest, opener = depth, char
        else:
            depth -= 1
    return deepest, opener


def decode_json(data: bytes) -> Any:
    """A JSON body; :class:`DecodeError` with Go's wording when it is not valid JSON.

    Raises:
        DecodeError: not JSON, or nested deeper than Go's limit.
        TooDeep: deeper than this server stores but within Go's limit.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        depth, opener = _json_depth(data)
        if depth > GO_MAX_DEPTH:
            raise DecodeError(f"invalid character {opener.decode()!r} exceeded max depth") from None
        if depth > MAX_DEPTH:
            raise TooDeep() from None
        raise DecodeError(str(exc)) from None
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH:
        depth, _ = _json_depth(data)
        if depth > MAX_DEPTH:
            raise TooDeep()
    return value


def encode_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """``value`` as compact JSON; orjson stops at 254 levels, so deeper values take json.

    ``sort_keys``: objects' keys in order, as Go encodes maps (for comparing encodings).

    Raises:
        TooDeep: too deep for json's encoder too (which recurses).
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except orjson.JSONEncodeError:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
        except RecursionError:
            raise TooDeep() from None
        return text.encode()


# ------------------------------------------------------------ unstructured numbers

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _numbers(value: Any, kind: type, convert: Callable[[Any], Any]) -> Any:
    """``value`` with every number of ``kind`` in it (``bool`` aside) replaced by
    ``convert(number)``; containers are changed in place, the (possibly new) value is
    returned."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list | kind):
                value[key] = _numbers(item, kind, convert)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict | list | kind):
                value[index] = _numbers(item, kind, convert)
    elif isinstance(value, kind) and not isinstance(value, bool):
        return convert(value)
    return value


def _as_float64(number: int) -> int | float:
    return number if INT64_MIN <= number <= INT64_MAX else float(number)


def unstructured_numbers(value: Any) -> Any:
    """``value`` with its numbers as apimachinery's ``util/json`` decodes an unstructured
    object (``convertNumber``): an integer that fits int64 stays one, any other becomes a
    float64. Containers are changed in place; the (possibly new) value is returned."""
    return _numbers(value, int, _as_float64)


def _read_back(number: float) -> float | int:
    # encoding/json writes a float64 in the shortest digits that read back, without an
    # exponent from 1e-6 to 1e21: an integral one is an integer literal, which
    # convertNumber reads as an int64 when it fits. repr has the same shortest digits.
    if not number.is_integer():
        return number
    literal = int(Decimal(repr(number)))
    return literal if INT64_MIN <= literal <= INT64_MAX else number


def stored_numbers(value: Any) -> Any:
    """``value`` as kube-apiserver reads an unstructured object back from storage, which
    holds it as JSON: a float64 written as an integer literal (``1.0`` as ``1``, ``1e18``)
    comes back an int64 when it fits. In place, as :func:`unstructured_numbers`."""
    return _numbers(value, float, _finite_read_back)


def _finite_read_back(number: float) -> float | int:
    return _read_back(number) if math.isfinite(number) else number


# ---------------------------------------------------------------------- YAML

_ALIAS_RATIO_LOW = 400_000
_ALIAS_RATIO_HIGH = 4_000_000
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_LIBYAML_DEPTH = "exceeded maximum nesting depth"
_CORE_SCALARS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "str", "binary")
)


def _allowed_alias_ratio(decodes: int) -> float:
    # goyaml.v2 allows 99% of a small document to come from alias expansion, scaling
    # down to 10% for documents of millions of decode operations.
    if decodes <= _ALIAS_RATIO_LOW:
        return 0.99
    if decodes >= _ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decodes - _ALIAS_RATIO_LOW) / (_ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW)


class _Frame:
    __slots__ = ("anchor", "flow", "key", "size", "value")

    def __init__(self, value: dict[str, Any] | list[Any], anchor: str | None, flow: bool) -> None:
        self.value = value
        self.anchor = anchor
        self.flow = flow
        self.key: Any = _NO_KEY
        self.size = 1


_NO_KEY = object()


def _json_key(key: Any, mark: Any) -> str:
    """A mapping key as sigs.k8s.io/yaml turns it into a JSON key."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        return json.dumps(key)
    raise DecodeError(f"yaml: line {mark.line + 1}: invalid map key: {key!r}")


class _YamlBuilder:
    """Builds the first document of a YAML stream from parser events, within goyaml.v2's limits."""

    def __init__(self, data: bytes, loader_class: type[Any]) -> None:
        self.loader = loader_class(data)
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.stack: list[_Frame] = []
        self.flow_depth = 0
        self.block_depth = 0
        self.decodes = 1  # the document node
        self.aliased = 0
        self.result: Any = None

    def _count(self, size: int, *, alias: bool) -> None:
        self.decodes += size
        if alias:
            self.aliased += size
        if (
            self.aliased > 100
            and self.decodes > 1000
            and self.aliased / self.decodes > _allowed_alias_ratio(self.decodes)
        ):
            raise DecodeError("yaml: document contains excessive aliasing")

    def _scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _MERGE:
            return _MERGE
        if tag not in _CORE_SCALARS:
            return event.value  # timestamps and unknown tags stay strings, as in JSON
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        return self.loader.construct_object(node, deep=True)

    def _add(self, value: Any, size: int, mark: Any) -> None:
        if not self.stack:
            self.result = value
            return
        parent = self.stack[-1]
        parent.size += size
        container = parent.value
        if isinstance(container, list):
            container.append(value)
        elif parent.key is _NO_KEY:
            parent.key = value if value is _MERGE else _json_key(value, mark)
        else:
            key, parent.key = parent.key, _NO_KEY
            if key is _MERGE:
                for source in value if isinstance(value, list) else [value]:
                    if not isinstance(source, dict):
                        raise DecodeError(
                            f"yaml: line {mark.line + 1}: map merge requires map or sequence of maps as the value"
                        )
                    for merged_key, merged in source.items():
                        container.setdefault(merged_key, merged)
            else:
                container[key] = value

    def _open(self, event: Any, value: dict[str, Any] | list[Any]) -> None:
        flow = bool(event.flow_style)
        if flow:
            self.flow_depth += 1
        else:
            self.block_depth += 1
        if max(self.flow_depth, self.block_depth) > GO_MAX_DEPTH:
            raise DecodeError(f"yaml: exceeded max depth of {GO_MAX_DEPTH}")
        if self.flow_depth + self.block_depth > MAX_DEPTH:
            raise TooDeep()
        self._count(1, alias=False)
        self.stack.append(_Frame(value, event.anchor, flow))

    def _close(self, mark: Any) -> None:
        frame = self.stack.pop()
        if frame.flow:
            self.flow_depth -= 1
        else:
            self.block_depth -= 1
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (frame.value, frame.size)
        self._add(frame.value, frame.size, mark)

    def build(self) -> Any:
        try:
            return self._events()
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise DecodeError(f"yaml: {where}{problem}") from None
        finally:
            self.loader.dispose()

    def _events(self) -> Any:
        loader = self.loader
        while True:
            event = loader.get_event()
            if isinstance(event, yaml.ScalarEvent):
                self._count(1, alias=False)
                value = self._scalar(event)
                if event.anchor is not None:
                    self.anchors[event.anchor] = (value, 1)
                self._add(value, 1, event.start_mark)
            elif isinstance(event, yaml.MappingStartEvent):
                self._open(event, {})
            elif isinstance(event, yaml.SequenceStartEvent):
                self._open(event, [])
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                self._close(event.start_mark)
            elif isinstance(event, yaml.AliasEvent):
                found = self.anchors.get(event.anchor or "")
                if found is None:
                    raise DecodeError(f"yaml: unknown anchor '{event.anchor}' referenced")
                value, size = found
                self._count(size, alias=True)
                self._add(value, size, event.start_mark)
            elif isinstance(event, yaml.DocumentEndEvent | yaml.StreamEndEvent):
                return self.result  # only the first document, as yaml.Unmarshal reads


def decode_yaml(data: bytes) -> Any:
    """The first YAML document of a body as JSON-compatible values (None when empty).

    Aliases are shared, not copied: copy the result through JSON before mutating it.

    Raises:
        DecodeError: invalid YAML, excessive aliasing, or nested deeper than Go's limit.
        TooDeep: deeper than this server stores (YAML nested beyond Go's limit too).
    """
    try:
        return _YamlBuilder(data, getattr(yaml, "CSafeLoader", yaml.SafeLoader)).build()
    except DecodeError as exc:
        # libyaml's own nesting limit (1000) is above this server's and below Go's.
        if _LIBYAML_DEPTH in str(exc):
            raise TooDeep() from None
        raise


def decode_body(data: bytes, *, yaml_body: bool) -> Any:
    """A JSON or YAML body, as independent JSON values (YAML aliases expanded).

    Raises:
        DecodeError: see :func:`decode_json` and :func:`decode_yaml`.
    """
    if not yaml_body:
        return decode_json(data)
    value = decode_yaml(data)
    if isinstance(value, dict | list):
        value = decode_json(encode_json(value))
    return value
