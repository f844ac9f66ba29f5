"""CEL validation rules of custom resources (``x-kubernetes-validations``), with ``cel-python``.

As k8s.io/apiextensions-apiserver pkg/apiserver/schema/cel/validation.go runs them: each
schema node's rules are evaluated with ``self`` bound to the object's value there (and
``oldSelf`` to the stored object's, on an update); a rule that mentions ``oldSelf`` is a
transition rule, evaluated only where an old value exists. A rule that is not true is a
field error at the node's path (or ``fieldPath``), of the node's type: ``Invalid value:
"object": <message>``, ``failed rule: <rule>`` without a message, or the kind its
``reason`` names. The rules run only when ``cel-python`` is installed (the ``cel``
extra); without it they are not checked (see docs/testing.md).

CEL itself is cel-python's: evaluation errors and ``messageExpression`` results are worded
as it words them, and Kubernetes' CEL libraries (quantities, URLs, IPs, ``format``) are
not there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from .._apivalidation import quote as go_quote

Cause = tuple[str, str]
Schema = Mapping[str, Any]

try:
    import celpy
    from celpy.adapter import json_to_cel
    from celpy.celparser import CELParseError
    from celpy.celtypes import BoolType
    from celpy.evaluation import CELEvalError

    _AVAILABLE = True
except ImportError:  # the optional ``cel`` extra
    _AVAILABLE = False

_OLD_SELF = re.compile(r"\boldSelf\b")
_REASONS = {
    "FieldValueForbidden": "Forbidden",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
}


@lru_cache(maxsize=1024)
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def _compile_error(rule: str) -> str | None:
    try:
        _program(rule)
    except CELParseError as exc:
        return " ".join(str(exc).split())
    return None


def rule_causes(schema: Any, path: str) -> list[Cause]:
    """The rules of a CRD version's schema that do not compile (none when rules are not
    checked), at the paths kube-apiserver names them."""
    causes: list[Cause] = []
    if _AVAILABLE and isinstance(schema, Mapping):
        _rule_causes(schema, path, causes)
    return causes


def _rule_causes(schema: Schema, path: str, out: list[Cause]) -> None:
    rules = schema.get("x-kubernetes-validations")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        text = rule.get("rule") if isinstance(rule, Mapping) else None
        error = _compile_error(text) if isinstance(text, str) else None
        if error is not None:
            out.append(
                (
                    f"{path}.x-kubernetes-validations[{index}].rule",
                    f"Invalid value: {go_quote(text)}: compilation failed: {error}",
                )
            )
    properties = schema.get("properties")
    for key, child in properties.items() if isinstance(properties, Mapping) else ():
        if isinstance(child, Mapping):
            _rule_causes(child, f"{path}.properties[{key}]", out)
    for key in ("items", "additionalProperties"):
        child = schema.get(key)
        if isinstance(child, Mapping):
            _rule_causes(child, f"{path}.{key}", out)


def _type_of(schema: Schema, value: Any) -> str:
    kind = schema.get("type")
    if isinstance(kind, str) and kind:
        return kind
    return "string" if isinstance(value, str) else "integer" if isinstance(value, int) else "object"


def _rule_text(rule: Mapping[str, Any]) -> str:
    message = rule.get("message")
    return (message if isinstance(message, str) and message else str(rule.get("rule", ""))).strip()


def _failure(rule: Mapping[str, Any], kind: str, detail: str) -> str:
    """``fieldErrorForReason``: the error body for a failed rule."""
    reason = _REASONS.get(str(rule.get("reason") or ""))
    if reason == "Duplicate value":
        return f'Duplicate value: "{kind}"'
    if reason is not None:
        return f"{reason}: {detail}"
    return f'Invalid value: "{kind}": {detail}'


def _evaluate(rule: Mapping[str, Any], activation: dict[str, Any]) -> tuple[Any, str | None]:
    try:
        result = _program(str(rule.get("rule", ""))).evaluate(activation)
    except CELEvalError as exc:
        return None, str(exc.args[0] if exc.args else exc)
    return result, None


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _check(
    value: Any, old: Any, has_old: bool, schema: Schema, path: str, out: list[Cause]
) -> None:
    rules = schema.get("x-kubernetes-validations")
    kind = _type_of(schema, value)
    shown = path or "<nil>"
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, Mapping):
            continue
        text = str(rule.get("rule", ""))
        transition = bool(_OLD_SELF.search(text))
        if transition and not has_old:
            continue
        activation = {"self": json_to_cel(value)}
        if transition:
            activation["oldSelf"] = json_to_cel(old)
        result, error = _evaluate(rule, activation)
        if error is not None:
            out.append(
                (shown, f'Invalid value: "{kind}": {error} evaluating rule: {_rule_text(rule)}')
            )
            continue
        if result is True or (isinstance(result, BoolType) and bool(result)):
            continue
        field = rule.get("fieldPath")
        where = _child(path, str(field).lstrip(".")) if isinstance(field, str) and field else shown
        detail = f"failed rule: {_rule_text(rule)}" if not rule.get("message") else _rule_text(rule)
        expression = rule.get("messageExpression")
        if isinstance(expression, str) and expression:
            message, failed = _evaluate({"rule": expression}, activation)
            if failed is None and isinstance(message, str) and message.strip():
                detail = str(message)
        out.append((where, _failure(rule, kind, detail)))
    _descend(value, old, has_old, schema, path, out)


def _descend(
    value: Any, old: Any, has_old: bool, schema: Schema, path: str, out: list[Cause]
) -> None:
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, child in value.items():
            child_schema = properties.get(key) if isinstance(properties, Mapping) else None
            if child_schema is None and isinstance(extra, Mapping):
                child_schema = extra
                child_path = f"{path}[{key}]"
            else:
                child_path = _child(path, key)
            if isinstance(child_schema, Mapping) and child is not None:
                old_has = has_old and isinstance(old, dict) and key in old
                _check(
                    child, old.get(key) if old_has else None, old_has, child_schema, child_path, out
                )
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            # Items of a list are not correlated with the old list's (atomic lists).
            for index, item in enumerate(value):
                if item is not None:
                    _check(item, None, False, items, f"{path}[{index}]", out)


def validate(obj: Any, old: Any, schema: Schema | None) -> list[Cause]:
    """The failed rules of a custom resource being written over ``old`` (None: created)."""
    if not _AVAILABLE or schema is None:
        return []
    causes: list[Cause] = []
    _check(obj, old, old is not None, schema, "", causes)
    return causes
