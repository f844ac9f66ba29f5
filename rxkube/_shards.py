"""Shard selectors of KEP-5866 (server-side sharded list and watch): hash, build, parse.

Pure: no I/O. A shard is a set of ranges ``[start, end)`` over the 64-bit FNV-1a hash of
one metadata field (``metadata.uid`` or ``metadata.namespace``). On the wire it is the
``shardSelector`` query parameter, e.g.::

    shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')
    || shardRange(object.metadata.uid, '0x8000000000000000', '0x10000000000000000')

The hash and the range test are the API server's own (``k8s.io/apimachinery/pkg/sharding``):
FNV-1a 64 of the field's UTF-8 bytes (a missing field hashes as ``""``), compared as an
unsigned integer with ``start <= hash < end``. The same test filters client-side when a
server ignored the parameter, so both give exactly the same objects. ``parse`` accepts what
the v1.36 API server accepts and refuses, with the same reasons, what it refuses; the test
server uses it to answer as that server does.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._apivalidation import quote

__all__ = [
    "HASH_SPACE",
    "Shard",
    "ShardSelectorError",
    "applied_selector",
    "fnv1a_64",
    "parse_requirements",
]

HASH_SPACE = 1 << 64
"""The size of the hash space: ranges end at most here (``'0x10000000000000000'``)."""

ShardKey = Literal["uid", "namespace"]

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = HASH_SPACE - 1
_PATHS: dict[str, str] = {"uid": "object.metadata.uid", "namespace": "object.metadata.namespace"}
_KEYS: dict[str, ShardKey] = {
    "object.metadata.uid": "uid",
    "object.metadata.namespace": "namespace",
}
_TOP = "0x10000000000000000"


class ShardSelectorError(ValueError):
    """A shard selector that the API server would refuse, or shard ranges that are invalid."""


def fnv1a_64(data: bytes) -> int:
    """The 64-bit FNV-1a hash of ``data`` (Go's ``hash/fnv.New64a``).

    Example:
        >>> hex(fnv1a_64(b"a"))
        '0xaf63dc4c8601ec8c'
    """
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


def hash_key(obj: Any, key: ShardKey) -> int:
    """The shard hash of an object: FNV-1a 64 of ``metadata.<key>`` (``""`` if absent)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    value = meta.get(key) if isinstance(meta, dict) else None
    return fnv1a_64(value.encode() if isinstance(value, str) else b"")


def _hex(bound: int) -> str:
    return _TOP if bound == HASH_SPACE else f"0x{bound:016x}"


@dataclass(frozen=True, slots=True)
class Shard:
    """A set of hash ranges over ``metadata.uid`` or ``metadata.namespace``.

    Ranges are kept sorted and merged (overlapping or adjacent ranges become one), so
    equal shards have equal selectors.

    Args:
        ranges: ``(start, end)`` pairs, ``0 <= start < end <= 2**64``; at least one.
        key: the hashed field: ``"uid"`` (each object on its own) or ``"namespace"``
            (a namespace's objects together).

    Raises:
        ShardSelectorError: no ranges, a bound that is not an integer in the hash space,
            ``start >= end``, or an unknown key.

    Example:
        >>> Shard(((0, 2**63),)).selector()
        "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')"
    """

    ranges: tuple[tuple[int, int], ...]
    key: ShardKey = "uid"
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.key not in _PATHS:
            raise ShardSelectorError(f"Shard.key must be 'uid' or 'namespace', got {self.key!r}")
        merged = _checked_ranges(self.ranges)
        if not merged:
            raise ShardSelectorError("a shard needs at least one range")
        object.__setattr__(self, "ranges", merged)
        object.__setattr__(self, "_starts", tuple(start for start, _ in merged))

    @classmethod
    def split(cls, index: int, total: int, key: ShardKey = "uid") -> Shard:
        """Shard ``index`` of ``total`` equal, contiguous parts of the hash space.

        Example:
            >>> Shard.split(1, 2).ranges == ((2**63, 2**64),)
            True
        """
        if not isinstance(total, int) or total < 1 or not isinstance(index, int):
            raise ShardSelectorError(f"Shard.split needs total >= 1, got {total!r}")
        if not 0 <= index < total:
            raise ShardSelectorError(f"Shard.split needs 0 <= index < {total}, got {index!r}")
        return cls(((index * HASH_SPACE // total, (index + 1) * HASH_SPACE // total),), key)

    @property
    def fraction(self) -> float:
        """The share of the hash space this shard covers, from 0 to 1."""
        return fraction(self.ranges)

    def selector(self) -> str:
        """The ``shardSelector`` query parameter for this shard (the server's own format)."""
        return _render(self.ranges, self.key)

    def hash_of(self, obj: Any) -> int:
        """The hash of ``obj``'s key field: FNV-1a 64 of its UTF-8 bytes, ``""`` if absent."""
        return hash_key(obj, self.key)

    def contains(self, hashed: int) -> bool:
        """Whether a hash value falls in one of the ranges."""
        i = bisect.bisect_right(self._starts, hashed) - 1
        return i >= 0 and hashed < self.ranges[i][1]

    def matches(self, obj: Any) -> bool:
        """Whether the API server would select ``obj`` with this shard's selector."""
        return self.contains(self.hash_of(obj))

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Read a ``shardSelector`` as the v1.36 API server does.

        Accepted: ``shardRange(<path>, '<start>', '<end>')`` calls joined with ``||``
        (parentheses allowed), all over one path, ``object.metadata.uid`` or
        ``object.metadata.namespace``; each bound a string literal ``'0x'`` plus exactly
        16 lowercase hex digits, or ``'0x10000000000000000'``; ``start < end``.

        Raises:
            ShardSelectorError: anything else, with the reason the server gives.
        """
        ranges, key = parse_requirements(text)
        return cls(tuple(ranges), key)

    def __str__(self) -> str:
        return self.selector()


def parse_requirements(text: str) -> tuple[list[tuple[int, int]], ShardKey]:
    """A ``shardSelector``'s ranges as written (in order, not merged) and its field.

    Raises:
        ShardSelectorError: what the v1.36 API server refuses, with its message.
    """
    ranges, paths = _Parser(text).parse()
    if len(set(paths)) > 1:
        other = next(p for p in paths if p != paths[0])
        raise ShardSelectorError(
            f"all shard ranges must use the same field, got {quote(paths[0])} and {quote(other)}"
        )
    return ranges, _KEYS[paths[0]]


def applied_selector(text: str) -> str:
    """The selector the API server echoes in ``metadata.shardInfo.selector`` for ``text``.

    Its ``Selector.String()``: each ``shardRange`` as parsed, in the order written, joined
    with ``||`` (adjacent or repeated ranges are not merged, as :class:`Shard` merges them).

    Raises:
        ShardSelectorError: the server refuses ``text``.
    """
    ranges, key = parse_requirements(text)
    return _render(ranges, key)


def _render(ranges: Any, key: ShardKey) -> str:
    path = _PATHS[key]
    return " || ".join(f"shardRange({path}, '{_hex(lo)}', '{_hex(hi)}')" for lo, hi in ranges)


# What the server puts before cel-go's own syntax error (whose wording, from its ANTLR
# grammar, is not reproduced here: "missing ')' at '<EOF>'" and the like).
_SYNTAX = "CEL parse error: Syntax error: "
# cel-go's ast.ExprKind values, which the server prints as numbers (the type has no String).
_IDENT_KIND, _LITERAL_KIND, _SELECT_KIND = 3, 5, 7
# CEL operators as the functions the parsed expression calls.
_OPERATORS = {
    "&&": "_&&_",
    "==": "_==_",
    "!=": "_!=_",
    "<": "_<_",
    "<=": "_<=_",
    ">": "_>_",
    ">=": "_>=_",
    "+": "_+_",
    "-": "_-_",
    "*": "_*_",
    "/": "_/_",
    "%": "_%_",
    "in": "@in",
}

_TOKEN = re.compile(
    r"\s*(?:(?P<op>\|\||&&|==|!=|<=|>=|[(),<>+\-*/%])|(?P<str>'[^'\\]*'|\"[^\"\\]*\")"
    r"|(?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|0x[0-9a-fA-F]+u?|\d+u?)"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)|(?P<other>\S))"
)


def _literal_type(kind: str, value: str) -> str | None:
    """The Go type cel-go gives a non-string literal token (``%T``), or None."""
    if kind == "num":
        if value.endswith("u"):
            return "uint64"
        if "." in value or ("e" in value.lower() and not value.startswith("0x")):
            return "float64"
        return "int64"
    if kind == "ident" and value in ("true", "false"):
        return "bool"
    return None


def _expression_kind(kind: str, value: str) -> int | None:
    """cel-go's ast.ExprKind of a one-token argument, when a token alone shows it."""
    if kind in ("str", "num") or _literal_type(kind, value):
        return _LITERAL_KIND
    if kind == "ident":
        return _SELECT_KIND if "." in value else _IDENT_KIND
    return None


class _Parser:
    """Recursive descent over the CEL subset the server accepts: calls, ``||``, parentheses."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise ShardSelectorError(f"a shard selector is a string, got {text!r}")
        self._tokens: list[tuple[str, str]] = []
        stripped = text.strip()
        if not stripped:
            raise ShardSelectorError(
                "empty shard selector is not allowed; omit the parameter for unfiltered lists"
            )
        pos = 0
        while pos < len(stripped):
            m = _TOKEN.match(stripped, pos)
            if m is None:  # only trailing whitespace is left
                break
            kind = m.lastgroup or "other"
            self._tokens.append((kind, m.group(kind)))
            pos = m.end()
        self._pos = 0

    def parse(self) -> tuple[list[tuple[int, int]], list[str]]:
        ranges: list[tuple[int, int]] = []
        paths: list[str] = []
        self._expr(ranges, paths)
        if self._pos < len(self._tokens):
            raise self._unexpected("after a complete expression")
        return ranges, paths

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise ShardSelectorError(f"{_SYNTAX}the shard selector ends too early")
        self._pos += 1
        return token

    def _expect(self, op: str) -> None:
        if self._take() != ("op", op):
            self._pos -= 1
            raise self._unexpected(f"where {op!r} belongs")

    def _unexpected(self, where: str) -> ShardSelectorError:
        token = self._peek()
        got = "the end" if token is None else repr(token[1])
        if token is not None and token[0] in ("op", "ident") and token[1] in _OPERATORS:
            # A binary operator after a complete call: the server walks the call it makes.
            return ShardSelectorError(
                f"unsupported function {quote(_OPERATORS[token[1]])}; "
                "only shardRange() and || are allowed"
            )
        return ShardSelectorError(f"{_SYNTAX}unexpected {got} {where} in the shard selector")

    def _expr(self, ranges: list[tuple[int, int]], paths: list[str]) -> None:
        self._term(ranges, paths)
        while self._peek() == ("op", "||"):
            self._pos += 1
            self._term(ranges, paths)

    def _term(self, ranges: list[tuple[int, int]], paths: list[str]) -> None:
        token = self._peek()
        if token == ("op", "("):
            self._pos += 1
            self._expr(ranges, paths)
            self._expect(")")
            return
        kind, value = self._take()
        if kind != "ident" or self._peek() != ("op", "("):
            follows = self._peek()
            if follows is not None and follows[0] in ("op", "ident") and follows[1] in _OPERATORS:
                raise ShardSelectorError(
                    f"unsupported function {quote(_OPERATORS[follows[1]])}; "
                    "only shardRange() and || are allowed"
                )
            expression = _expression_kind(kind, value)
            if expression is not None and (follows is None or follows == ("op", "||")):
                raise ShardSelectorError(
                    f"unexpected expression kind {expression}; "
                    "expected shardRange() call or || operator"
                )
            self._pos -= 1
            raise self._unexpected("where a shardRange() call belongs")
        if value != "shardRange":
            raise ShardSelectorError(
                f"unsupported function {quote(value)}; only shardRange() and || are allowed"
            )
        self._pos += 1
        args: list[tuple[str, str]] = []
        while True:
            args.append(self._take())
            token = self._take()
            if token == ("op", ")"):
                break
            if token != ("op", ","):
                self._pos -= 1
                raise self._unexpected("in the arguments of shardRange()")
        if len(args) != 3:
            raise ShardSelectorError(f"shardRange() requires exactly 3 arguments, got {len(args)}")
        (path_kind, path), start, end = args
        if path_kind != "ident" or _literal_type(path_kind, path):
            expression = _expression_kind(path_kind, path)
            raise ShardSelectorError(
                f"shardRange() first argument: expected field path (e.g. object.metadata.uid), "
                f"got expression kind {expression if expression is not None else path!r}"
            )
        if path not in _KEYS:
            raise ShardSelectorError(
                f"unsupported field path {quote(path)}; supported: object.metadata.uid, "
                "object.metadata.namespace"
            )
        lo, hi = _bound(start, "hexStart"), _bound(end, "hexEnd")
        if lo >= hi:
            raise ShardSelectorError(
                f"shard range start {_hex(lo)} must be less than end {_hex(hi)}"
            )
        ranges.append((lo, hi))
        paths.append(path)


def _bound(token: tuple[str, str], name: str) -> int:
    kind, value = token
    if kind != "str":
        go_type = _literal_type(kind, value)
        if go_type is not None:
            raise ShardSelectorError(f"{name} must be a string literal, got {go_type}")
        expression = _expression_kind(kind, value)
        got = f"expression kind {expression}" if expression is not None else repr(value)
        raise ShardSelectorError(f"{name} must be a string literal (e.g. '0xff'), got {got}")
    literal = value[1:-1]
    q = quote
    if not literal.startswith("0x"):
        raise ShardSelectorError(f"{name} must have '0x' prefix, got {q(literal)}")
    digits = literal[2:]
    if not digits:
        raise ShardSelectorError(f"{name}: hex value is required after '0x'")
    if len(digits) > 17:
        raise ShardSelectorError(
            f"{name}: hex value too long ({len(digits)} chars, max 17): {q(digits)}"
        )
    for char in digits:
        if char not in "0123456789abcdef":
            raise ShardSelectorError(f"{name}: invalid hex character {q(char)} in {q(literal)}")
    if len(digits) == 17:
        if literal != _TOP:
            raise ShardSelectorError(
                f"{name}: 17-digit hex value must be '{_TOP}' (2^64), got {q(literal)}"
            )
    elif len(digits) != 16:
        raise ShardSelectorError(
            f"{name} must be a 0x-prefixed 16-digit hex value, got {q(literal)} "
            f"(did you mean {q('0x' + digits.rjust(16, '0'))}?)"
        )
    return int(digits, 16)


# -- range sets and the assignment ring ---------------------------------------------------------

Ranges = tuple[tuple[int, int], ...]
"""A set of hash ranges ``[start, end)``: sorted, disjoint, not adjacent (possibly empty)."""

NOTHING: Ranges = ()


def normalize(ranges: Any) -> Ranges:
    """``ranges`` as a :data:`Ranges`: sorted, with overlapping and adjacent ranges merged."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(pair for pair in ranges if pair[0] < pair[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _checked_ranges(ranges: Any) -> Ranges:
    """``ranges`` as sorted, merged ``Ranges`` once every pair is a range of the hash space.

    Raises:
        ShardSelectorError: ``ranges`` is not an iterable of ``(start, end)`` pairs of
            integers with ``0 <= start < end <= 2**64``.
    """
    try:
        pairs = list(ranges)
    except TypeError:
        raise ShardSelectorError(
            f"shard ranges are (start, end) pairs, got {type(ranges).__name__} {ranges!r:.60}"
        ) from None
    for pair in pairs:
        try:
            start, end = pair
        except (TypeError, ValueError):
            raise ShardSelectorError(
                f"a shard range is a (start, end) pair, got {pair!r}"
            ) from None
        for bound in (start, end):
            if not isinstance(bound, int) or isinstance(bound, bool):
                raise ShardSelectorError(f"shard range bounds are integers, got {bound!r}")
        if not 0 <= start < end <= HASH_SPACE:
            raise ShardSelectorError(
                f"a shard range needs 0 <= start < end <= 2**64, got [{start:#x}, {end:#x})"
            )
    return normalize(pairs)


def union(a: Ranges, b: Ranges) -> Ranges:
    """The hashes in ``a`` or ``b``."""
    return normalize(a + b)


def minus(a: Ranges, b: Ranges) -> Ranges:
    """The hashes in ``a`` and not in ``b``."""
    out: list[tuple[int, int]] = []
    for start, end in a:
        cursor = start
        for b_start, b_end in b:
            if b_end <= cursor or b_start >= end:
                continue
            if b_start > cursor:
                out.append((cursor, b_start))
            cursor = max(cursor, b_end)
        if cursor < end:
            out.append((cursor, end))
    return normalize(out)


def intersect(a: Ranges, b: Ranges) -> Ranges:
    """The hashes in both ``a`` and ``b``."""
    return minus(a, minus(a, b))


def contains(ranges: Ranges, hashed: int) -> bool:
    """Whether ``hashed`` falls in one of ``ranges``."""
    i = bisect.bisect_right(ranges, (hashed, HASH_SPACE + 1)) - 1
    return i >= 0 and hashed < ranges[i][1]


def size(ranges: Ranges) -> int:
    """How many hash values ``ranges`` hold."""
    return sum(end - start for start, end in ranges)


def _point(label: str) -> int:
    return int.from_bytes(hashlib.blake2b(label.encode(), digest_size=8).digest(), "big")


def fraction(ranges: Iterable[tuple[int, int]]) -> float:
    """The share of the hash space that ``ranges`` hold, from 0 to 1.

    Args:
        ranges: ``(start, end)`` pairs, ``0 <= start < end <= 2**64``, in any order; a
            hash in two of them counts once. Empty (a replica holding nothing) is 0.

    Raises:
        ShardSelectorError: a pair that is not a range of the hash space.

    Example:
        >>> fraction(((0, 2**62), (2**63, 2**64))), fraction(())
        (0.75, 0.0)
    """
    return size(_checked_ranges(ranges)) / HASH_SPACE


def ring_assignment(members: Any, vnodes: int) -> dict[str, Ranges]:
    """Split the hash space among ``members`` by a consistent-hash ring.

    Each member puts ``vnodes`` points on the ring, at the 64-bit BLAKE2b digest of
    ``"<member>#<i>"`` (FNV-1a would cluster names that differ only in their last
    characters, like ``replica-1`` and ``replica-2``), and owns every arc that starts at one of its points (up to the next point, wrapping
    around). The same members give the same split on every replica; a member that joins
    or leaves moves only the arcs next to its own points, ~1/N of the space.

    Example:
        >>> split = ring_assignment(["a", "b"], vnodes=8)
        >>> size(split["a"]) + size(split["b"]) == HASH_SPACE
        True
    """
    if not isinstance(vnodes, int) or vnodes < 1:
        raise ValueError(f"vnodes must be a positive integer, got {vnodes!r}")
    names = sorted(set(members))
    if not names:
        return {}
    points = sorted((_point(f"{name}#{i}"), name) for name in names for i in range(vnodes))
    owned: dict[str, list[tuple[int, int]]] = {name: [] for name in names}
    for j, (point, name) in enumerate(points):
        nxt = points[j + 1][0] if j + 1 < len(points) else HASH_SPACE
        owned[name].append((point, nxt))
    # The arc before the first point wraps around from the last point's owner.
    owned[points[-1][1]].append((0, points[0][0]))
    return {name: normalize(ranges) for name, ranges in owned.items()}
