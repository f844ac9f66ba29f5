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

from ._apivalidation import label_value, qualified_name, quote

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelOperator",
    "LabelRequirement",
    "LabelSelector",
    "SelectorError",
    "field_value",
]

LabelOperator = Literal["=", "!=", "in", "notin", "exists", "!", "gt", "lt"]

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


class SelectorError(ValueError):
    """A label or field selector that does not parse.

    Attributes:
        selector: the selector as given.
        reason: what apimachinery's parser (``labels.Parse``, ``fields.ParseSelector``)
            says of it, word for word: the message of kube-apiserver's 400.
    """

    def __init__(self, what: Literal["label", "field"], selector: str, reason: str) -> None:
        super().__init__(f"invalid {what} selector {selector!r}: {reason}")
        self.selector = selector
        self.reason = reason


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


# The label selector lexer and parser of k8s.io/apimachinery/pkg/labels/selector.go (v0.32),
# step for step, so that a selector that does not parse fails with its error text, which
# kube-apiserver answers in its 400 (the message of a bad ``labelSelector`` query).
_WHITESPACE = " \t\r\n"
_SPECIAL = "=!(),><"
_KEYWORDS = frozenset({")", ",", "!", "==", "=", ">", "in", "<", "!=", "notin", "("})
_BINARY: dict[str, LabelOperator] = {
    "in": "in",
    "notin": "notin",
    "=": "=",
    "==": "=",
    "!=": "!=",
    ">": "gt",
    "<": "lt",
}
_BINARY_NAMES = "in, notin, =, ==, !=, gt, lt"  # selection.Operator values, as Go lists them


def _lex(text: str) -> list[tuple[str, str]]:
    """``(kind, literal)`` tokens; the kind is ``id``, ``end`` or the keyword or symbol."""
    items: list[tuple[str, str]] = []
    pos, size = 0, len(text)
    while True:
        while pos < size and text[pos] in _WHITESPACE:
            pos += 1
        if pos == size or text[pos] == "\0":  # Go's lexer reads a NUL byte as the end
            items.append(("end", ""))
            return items
        if text[pos] in _SPECIAL:
            two = text[pos : pos + 2]
            literal = two if two in ("!=", "==") else text[pos]
            pos += len(literal)
        else:
            end = pos
            while end < size and text[end] not in _SPECIAL and text[end] not in _WHITESPACE:
                if text[end] == "\0":
                    break
                end += 1
            literal = text[pos:end]
            pos = end + (end < size and text[end] == "\0")
        items.append((literal if literal in _KEYWORDS else "id", literal))


class _Failure(Exception):
    """A requirement that does not parse: Go's message, before ``unable to parse requirement``."""


def _aggregate(errors: list[str]) -> str:
    """Go's ``utilerrors.Aggregate`` text: one message, or the distinct ones in brackets."""
    distinct = list(dict.fromkeys(errors))
    return distinct[0] if len(distinct) == 1 else "[" + ", ".join(distinct) + "]"


class _LabelParser:
    """One parse of a label selector, as apimachinery's ``Parser``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items = _lex(text)
        self.pos = 0

    def lookahead(self, *, values: bool = True) -> tuple[str, str]:
        # Where a value may stand, 'in' and 'notin' are identifiers ("x in (in)").
        kind, literal = self.items[min(self.pos, len(self.items) - 1)]
        return ("id" if values and kind in ("in", "notin") else kind), literal

    def consume(self, *, values: bool = True) -> tuple[str, str]:
        item = self.lookahead(values=values)
        self.pos += 1
        return item

    def fail(self, reason: str) -> SelectorError:
        return SelectorError("label", self.text, reason)

    def parse(self) -> list[LabelRequirement]:
        requirements: list[LabelRequirement] = []
        while True:
            kind, literal = self.lookahead()
            if kind == "end":
                return requirements
            if kind not in ("id", "!"):
                raise self.fail(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.requirement())
            except _Failure as failure:
                raise self.fail(f"unable to parse requirement: {failure}") from None
            kind, literal = self.consume()
            if kind == "end":
                return requirements
            if kind != ",":
                raise self.fail(f"found '{literal}', expected: ',' or 'end of string'")
            after, literal = self.lookahead()
            if after not in ("id", "!"):
                raise self.fail(f"found '{literal}', expected: identifier after ','")

    def requirement(self) -> LabelRequirement:
        key, unary = self.key_and_unary_operator()
        if unary is not None:
            return _requirement(key, unary, [])
        kind, literal = self.consume(values=False)
        if kind not in _BINARY:
            raise _Failure(f"found '{literal}', expected: {_BINARY_NAMES}")
        operator = _BINARY[kind]
        values = self.value_set() if operator in ("in", "notin") else self.exact_value()
        return _requirement(key, operator, sorted(values))

    def key_and_unary_operator(self) -> tuple[str, LabelOperator | None]:
        kind, literal = self.consume()
        unary: LabelOperator | None = None
        if kind == "!":
            unary = "!"
            kind, literal = self.consume()
        if kind != "id":
            raise _Failure(f"found '{literal}', expected: identifier")
        problems = qualified_name(literal)
        if problems:  # validateLabelKey with the parser's path, which is nil
            raise _Failure(f"<nil>: Invalid value: {quote(literal)}: {'; '.join(problems)}")
        if unary is None and self.lookahead()[0] in ("end", ","):
            unary = "exists"
        return literal, unary

    def value_set(self) -> set[str]:
        kind, literal = self.consume()
        if kind != "(":
            raise _Failure(f"found '{literal}' expected: '('")
        kind, literal = self.lookahead()
        if kind == ")":
            self.consume()
            return {""}
        if kind not in ("id", ","):
            raise _Failure(f"found '{literal}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:  # parseIdentifiersList: empty values between commas count as ""
            kind, literal = self.consume()
            if kind == "id":
                values.add(literal)
                after, literal = self.lookahead()
                if after == ")":
                    self.consume()
                    return values
                if after != ",":
                    raise _Failure(f"found '{literal}', expected: ',' or ')'")
            elif kind == ",":
                if not values:
                    values.add("")
                after, _ = self.lookahead()
                if after == ")":
                    self.consume()
                    values.add("")
                    return values
                if after == ",":
                    self.consume()
                    values.add("")
            else:
                raise _Failure(f"found '{literal}', expected: ',', or identifier")

    def exact_value(self) -> list[str]:
        if self.lookahead()[0] in ("end", ","):
            return [""]
        kind, literal = self.consume()
        if kind != "id":
            raise _Failure(f"found '{literal}', expected: identifier")
        return [literal]


def _requirement(key: str, operator: LabelOperator, values: list[str]) -> LabelRequirement:
    """apimachinery's ``NewRequirement`` checks of the values (the key passed already)."""
    errors: list[str] = []
    if operator in ("gt", "lt"):
        errors.extend(
            f"values[{i}]: Invalid value: {quote(value)}: for 'Gt', 'Lt' operators, the value "
            "must be an integer"
            for i, value in enumerate(values)
            if _parse_int64(value) is None
        )
    for i, value in enumerate(values):
        problems = label_value(value)
        if problems:
            errors.append(
                f"values[{i}][{key}]: Invalid value: {quote(value)}: {'; '.join(problems)}"
            )
    if errors:
        raise _Failure(_aggregate(errors))
    return LabelRequirement(key, operator, tuple(values))


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
            SelectorError: the syntax is invalid, or a key or value is not a valid label;
                its ``reason`` is apimachinery's message.
            TypeError: ``text`` is not a string.
        """
        _check_text(text, "label")
        return cls(tuple(_LabelParser(text).parse()))

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


def _split_terms(text: str) -> list[str]:
    """The terms between unescaped commas, escapes kept (apimachinery's ``splitTerms``)."""
    terms: list[str] = []
    start, escaped = 0, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _unescape_field_value(value: str, selector: str) -> str:
    """apimachinery's ``fields.UnescapeValue``, with its errors' texts."""
    out: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(
                    "field", selector, f"invalid field selector: invalid escape sequence: \\{char}"
                )
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise SelectorError(
                "field",
                selector,
                f"invalid field selector: unescaped character in value: {ord(char)}",
            )
        else:
            out.append(char)
    if escaped:
        raise SelectorError(
            "field", selector, "invalid field selector: invalid escape sequence: \\"
        )
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
            SelectorError: a term has no operator, or a value a bad escape or an unescaped
                ``=``; its ``reason`` is apimachinery's message.
            TypeError: ``text`` is not a string.
        """
        _check_text(text, "field")
        # fields.ParseSelector: terms in sorted order (so the first bad one in that order is
        # the one reported), empty ones skipped, nothing trimmed; the first operator found
        # splits a term (the field may be anything, the server's field labels judge it).
        requirements: list[FieldRequirement] = []
        for term in sorted(_split_terms(text)) if text else []:
            if not term:
                continue
            split = next(
                (
                    (i, op)
                    for i in range(len(term))
                    for op in ("!=", "==", "=")
                    if term.startswith(op, i)
                ),
                None,
            )
            if split is None:
                raise SelectorError(
                    "field", text, f"invalid selector: '{text}'; can't understand '{term}'"
                )
            i, op = split
            value = _unescape_field_value(term[i + len(op) :], text)
            requirements.append(FieldRequirement(term[:i], "!=" if op == "!=" else "=", value))
        return cls(tuple(requirements))

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


def _check_text(text: object, which: str) -> None:
    if not isinstance(text, str):
        raise TypeError(
            f"a {which} selector is a string such as {_EXAMPLES[which]!r}, not"
            f" {type(text).__name__} {text!r:.60}"
        )


_EXAMPLES = {"label": "app=web,tier in (a,b)", "field": "metadata.name=web-0"}
