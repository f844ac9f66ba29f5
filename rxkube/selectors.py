"""Label and field selectors: parsing and matching, as kube-apiserver understands them.

The client validates a watcher's selectors with these classes when it is configured,
and the test API server filters lists and watch events with the very same code, so
both sides always agree on what a selector means.

Label selectors accept ``key=value``, ``key==value``, ``key!=value``,
``key in (a,b)``, ``key notin (a,b)``, ``key`` (exists), ``!key`` (does not exist)
and ``key>N`` / ``key<N``, separated by commas. Field selectors accept ``path=value``,
``path==value`` and ``path!=value`` terms, with ``\\,``, ``\\=`` and ``\\\\`` escapes in
values. Which field paths a resource supports is the server's business, not this
module's: :meth:`FieldSelector.matches` reads any dotted path of an object.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

LabelOperator = Literal["=", "!=", "in", "notin", "exists", "!", "gt", "lt"]

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_NAME_RE = re.compile(_NAME)
_DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# One lexer token: whitespace, a two-character operator, a one-character symbol, or a word.
_TOKEN_RE = re.compile(r"\s+|!=|==|[=!(),<>]|[^\s=!(),<>]+")


# Go's strconv.ParseInt(s, 10, 64), which kube-apiserver uses for '>' and '<': an optional
# sign and ASCII digits only. Python's int() would also take '1_0', ' 7' and non-ASCII digits.
_INT64_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _parse_int64(text: str) -> int | None:
    """``text`` as Go's ``strconv.ParseInt(text, 10, 64)`` reads it, or None if Go refuses it."""
    if not _INT64_RE.fullmatch(text):
        return None
    number = int(text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def _check_label_key(key: str, selector: str) -> None:
    prefix, slash, name = key.rpartition("/")
    problem = ""
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.fullmatch(prefix)):
        problem = "its prefix must be a lowercase DNS subdomain of at most 253 characters"
    elif not name or len(name) > 63 or not _NAME_RE.fullmatch(name):
        problem = (
            "a label key must be at most 63 alphanumeric characters, '-', '_' or '.', "
            "starting and ending with an alphanumeric character, with an optional DNS "
            "subdomain prefix and '/'"
        )
    if problem:
        raise ValueError(f"invalid label selector {selector!r}: invalid key {key!r}: {problem}")


def _check_label_value(value: str, selector: str) -> None:
    if value and (len(value) > 63 or not _NAME_RE.fullmatch(value)):
        raise ValueError(
            f"invalid label selector {selector!r}: invalid value {value!r}: a label value must "
            "be empty or at most 63 alphanumeric characters, '-', '_' or '.', starting and "
            "ending with an alphanumeric character"
        )


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    """One requirement of a label selector, e.g. ``tier in (web,api)``.

    Attributes:
        key: the label key.
        operator: ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!`` (does not exist),
            ``gt`` or ``lt``.
        values: the values compared with (one for ``=``/``!=``/``gt``/``lt``, none for
            ``exists``/``!``).
    """

    key: str
    operator: LabelOperator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this requirement."""
        op = self.operator
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        value = labels.get(self.key)
        if op in ("=", "in"):
            return value is not None and value in self.values
        if op in ("!=", "notin"):
            return value is None or value not in self.values
        number = None if value is None else _parse_int64(value)
        if number is None:
            return False
        limit = int(self.values[0])
        return number > limit if op == "gt" else number < limit

    def __str__(self) -> str:
        op = self.operator
        if op == "exists":
            return self.key
        if op == "!":
            return f"!{self.key}"
        if op in ("in", "notin"):
            return f"{self.key} {op} ({','.join(self.values)})"
        symbol = {"gt": ">", "lt": "<"}.get(op, op)
        return f"{self.key}{symbol}{self.values[0]}"


class _Tokens:
    """A cursor over a selector's tokens, whitespace dropped."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items = [m.group() for m in _TOKEN_RE.finditer(text) if not m.group().isspace()]
        self.pos = 0

    def peek(self) -> str | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def take(self) -> str | None:
        token = self.peek()
        self.pos += 1
        return token

    def fail(self, expected: str, found: str | None) -> ValueError:
        what = "the end" if found is None else repr(found)
        return ValueError(
            f"invalid label selector {self.text!r}: expected {expected}, found {what}"
        )


def _is_word(token: str | None) -> bool:
    return token is not None and token not in ("=", "==", "!=", "!", "(", ")", ",", "<", ">")


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed label selector; every requirement must hold (logical AND).

    Example:
        >>> sel = LabelSelector.parse("app=web,tier in (front, back),!canary")
        >>> sel.matches({"app": "web", "tier": "front"})
        True
        >>> sel.matches({"app": "web", "tier": "front", "canary": "yes"})
        False
    """

    requirements: tuple[LabelRequirement, ...] = ()

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse a selector string; an empty string selects everything.

        Raises:
            ValueError: the syntax is invalid, or a key or value is not a valid label.
        """
        tokens = _Tokens(text)
        requirements: list[LabelRequirement] = []
        while tokens.peek() is not None:
            requirements.append(cls._parse_requirement(tokens))
            separator = tokens.take()
            if separator is None:
                break
            if separator != ",":
                raise tokens.fail("',' between requirements", separator)
            if tokens.peek() is None:
                raise tokens.fail("a requirement after ','", None)
        return cls(tuple(requirements))

    @staticmethod
    def _parse_requirement(tokens: _Tokens) -> LabelRequirement:
        token = tokens.take()
        if token == "!":
            key = tokens.take()
            if not _is_word(key):
                raise tokens.fail("a label key after '!'", key)
            assert key is not None
            _check_label_key(key, tokens.text)
            return LabelRequirement(key, "!")
        if not _is_word(token):
            raise tokens.fail("a label key", token)
        assert token is not None
        key = token
        _check_label_key(key, tokens.text)
        op = tokens.peek()
        if op is None or op == ",":
            return LabelRequirement(key, "exists")
        tokens.take()
        if op in ("=", "==", "!="):
            value = tokens.peek()
            if _is_word(value):
                tokens.take()
            elif value is None or value == ",":
                value = ""
            else:
                raise tokens.fail(f"a value after {op!r}", value)
            assert value is not None
            _check_label_value(value, tokens.text)
            return LabelRequirement(key, "!=" if op == "!=" else "=", (value,))
        if op in ("in", "notin"):
            set_op: LabelOperator = "in" if op == "in" else "notin"
            return LabelRequirement(key, set_op, LabelSelector._parse_set(tokens))
        if op in (">", "<"):
            value = tokens.take()
            number = None if value is None else _parse_int64(value)
            if number is None:
                raise tokens.fail(f"a 64-bit integer after {op!r}", value)
            assert value is not None
            # kube-apiserver also checks the number as a label value, which refuses a sign.
            _check_label_value(value, tokens.text)
            return LabelRequirement(key, "gt" if op == ">" else "lt", (str(number),))
        raise tokens.fail("'=', '==', '!=', 'in', 'notin', '>', '<', ',' or the end", op)

    @staticmethod
    def _parse_set(tokens: _Tokens) -> tuple[str, ...]:
        opening = tokens.take()
        if opening != "(":
            raise tokens.fail("'(' after 'in' or 'notin'", opening)
        values: list[str] = []
        expect_value = True
        while True:
            token = tokens.take()
            if token == ")":
                if expect_value:
                    values.append("")
                break
            if token == ",":
                if expect_value:
                    values.append("")
                expect_value = True
                continue
            if not expect_value or not _is_word(token):
                raise tokens.fail("a value, ',' or ')' in the value set", token)
            assert token is not None
            _check_label_value(token, tokens.text)
            values.append(token)
            expect_value = False
        return tuple(sorted(set(values)))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether a label set (``None`` counts as empty) satisfies every requirement."""
        if not self.requirements:
            return True
        labels = labels or {}
        return all(req.matches(labels) for req in self.requirements)

    def __bool__(self) -> bool:
        """True unless this selector is empty (selects everything)."""
        return bool(self.requirements)

    def __iter__(self) -> Iterator[LabelRequirement]:
        """Iterate over the requirements."""
        return iter(self.requirements)

    def __str__(self) -> str:
        return ",".join(str(req) for req in self.requirements)


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """One term of a field selector: ``field`` compared with ``value`` by ``=`` or ``!=``."""

    field: str
    operator: Literal["=", "!="]
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether the object's field value satisfies this term."""
        equal = field_value(obj, self.field) == self.value
        return equal if self.operator == "=" else not equal

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{self.operator}{escaped}"


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string value of a dotted field path of an object, ``""`` when absent.

    Booleans render as ``"true"``/``"false"`` and numbers in decimal, as the API server
    renders them for field selectors.
    """
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    if isinstance(current, str | int | float):
        return str(current)
    return ""


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape_field_value(value: str, selector: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            if nxt not in ("\\", ",", "="):
                raise ValueError(
                    f"invalid field selector {selector!r}: invalid escape sequence "
                    f"'\\{nxt}' in value {value!r} (only \\\\, \\, and \\= are allowed)"
                )
            out.append(nxt)
        elif char in ",=":
            raise ValueError(
                f"invalid field selector {selector!r}: unescaped {char!r} in value {value!r}"
            )
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A parsed field selector; every term must hold (logical AND).

    Example:
        >>> sel = FieldSelector.parse("metadata.namespace!=kube-system,status.phase=Running")
        >>> sel.matches({"metadata": {"namespace": "default"}, "status": {"phase": "Running"}})
        True
    """

    requirements: tuple[FieldRequirement, ...] = ()

    @classmethod
    def parse(cls, text: str) -> FieldSelector:
        """Parse a selector string; an empty string selects everything.

        Raises:
            ValueError: a term has no operator, an empty field name, or a bad escape.
        """
        if not text.strip():
            return cls()
        requirements: list[FieldRequirement] = []
        for term in _split_unescaped(text, ","):
            requirements.append(cls._parse_term(term.strip(), text))
        return cls(tuple(requirements))

    @staticmethod
    def _parse_term(term: str, text: str) -> FieldRequirement:
        for i in range(len(term)):
            for op in ("!=", "==", "="):
                if term.startswith(op, i):
                    field = term[:i].strip()
                    if not field or not re.fullmatch(r"[A-Za-z0-9_.\-/]+", field):
                        raise ValueError(
                            f"invalid field selector {text!r}: invalid field name {field!r}"
                        )
                    value = _unescape_field_value(term[i + len(op) :].strip(), text)
                    return FieldRequirement(field, "!=" if op == "!=" else "=", value)
        raise ValueError(
            f"invalid field selector {text!r}: can't understand {term!r} "
            "(expected field=value, field==value or field!=value)"
        )

    @property
    def fields(self) -> frozenset[str]:
        """The field paths this selector reads."""
        return frozenset(req.field for req in self.requirements)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether the object satisfies every term."""
        return all(req.matches(obj) for req in self.requirements)

    def __bool__(self) -> bool:
        """True unless this selector is empty (selects everything)."""
        return bool(self.requirements)

    def __iter__(self) -> Iterator[FieldRequirement]:
        """Iterate over the terms."""
        return iter(self.requirements)

    def __str__(self) -> str:
        return ",".join(str(req) for req in self.requirements)
