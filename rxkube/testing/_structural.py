"""Structural schemas of custom resources: checking a schema, and pruning, defaulting and
validating objects against one, as kube-apiserver's apiextensions-apiserver does.

A schema is the ``openAPIV3Schema`` dict of a CustomResourceDefinition version, used as
given. What each function follows:

- :func:`schema_causes`: ``pkg/apiserver/schema/validation.go``
  (``validateStructuralInvariants``) and the per-node checks of
  ``pkg/apis/apiextensions/validation/validation.go``;
- :func:`prune`: ``pkg/apiserver/schema/pruning/algorithm.go`` (``PruneWithOptions``);
- :func:`drop_nulls`: ``pkg/apiserver/schema/defaulting/prunenulls.go``;
- :func:`default`: ``pkg/apiserver/schema/defaulting/algorithm.go``;
- :func:`validate`: kube-openapi's ``pkg/validation/validate`` with its messages
  (``pkg/validation/errors/schema.go``), turned into field errors by
  ``pkg/apiserver/validation/validation.go`` (``kubeOpenAPIResultToFieldErrors``).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from .._apivalidation import go_float, quote

Schema = Mapping[str, Any]
Cause = tuple[str, str]
"""A field path and the ``field.Error`` body kube-apiserver writes for it."""

_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})
_UNSUPPORTED = {
    "id": "id is not supported",
    "additionalItems": "additionalItems is not supported",
    "patternProperties": "patternProperties is not supported",
    "definitions": "definitions is not supported",
    "dependencies": "dependencies is not supported",
    "$ref": "$ref is not supported",
}


def go_value(value: Any) -> str:
    """A JSON value as ``field.Error`` prints a bad value (``%q``, ``%v`` or ``%#v``)."""
    if isinstance(value, str):
        return quote(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        inner = ", ".join(f"{quote(k)}:{go_value(v)}" for k, v in value.items())
        return "map[string]interface {}{" + inner + "}"
    return "[]interface {}{" + ", ".join(go_value(v) for v in value) + "}"


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# ------------------------------------------------------------------ the schema itself


def schema_causes(schema: Any, path: str, *, status_subresource: bool) -> list[Cause]:
    """What kube-apiserver refuses in a version's ``openAPIV3Schema``, at ``path``.

    The checks of ``validateCustomResourceDefinitionValidation`` (root type with a status
    subresource, nullable root), of the OpenAPI node validator (types, unsupported
    keywords, ``additionalProperties`` with ``properties``) and the structural invariants
    (every specified field typed, ``items`` for arrays, metadata restricted at the root),
    the latter sorted by message as kube-apiserver sorts them.
    """
    if not isinstance(schema, dict):
        return [(path, "Required value")]
    causes: list[Cause] = []
    if status_subresource and schema.get("type", "object") != "object":
        causes.append(
            (
                f"{path}.type",
                f'Invalid value: {go_value(schema.get("type"))}: only "object" is allowed as '
                "the type at the root of the schema if the status subresource is enabled",
            )
        )
    if schema.get("nullable"):
        causes.append((f"{path}.nullable", "Forbidden: nullable cannot be true at the root"))
    causes += _node_causes(schema, path)
    if not causes:
        structural: list[Cause] = []
        _structural_causes(schema, path, "root", structural)
        causes += sorted(structural, key=lambda cause: f"{cause[0]}: {cause[1]}")
    return causes


def _node_causes(schema: Schema, path: str) -> list[Cause]:
    """The OpenAPI node checks (``specStandardValidatorV3`` and ``ValidateCustomResourceDefinitionOpenAPISchema``)."""
    causes: list[Cause] = []
    kind = schema.get("type")
    if kind not in (None, "", *_TYPES):
        supported = ", ".join(quote(t) for t in _TYPES)
        causes.append(
            (
                f"{path}.type",
                f"Unsupported value: {go_value(kind)}: supported values: {supported}",
            )
        )
    if kind == "null":
        causes.append(
            (
                f"{path}.type",
                "Forbidden: type cannot be set to null, use nullable as an alternative",
            )
        )
    for keyword, message in _UNSUPPORTED.items():
        if keyword in schema:
            causes.append((f"{path}.{keyword}", f"Forbidden: {message}"))
    if schema.get("uniqueItems") is True:
        causes.append(
            (
                f"{path}.uniqueItems",
                "Forbidden: uniqueItems cannot be set to true since the runtime complexity "
                "becomes quadratic",
            )
        )
    additional = schema.get("additionalProperties")
    if (additional is False or isinstance(additional, dict)) and schema.get("properties"):
        causes.append(
            (
                f"{path}.additionalProperties",
                "Forbidden: additionalProperties and properties are mutual exclusive",
            )
        )
    if "x-kubernetes-preserve-unknown-fields" in schema and (
        schema["x-kubernetes-preserve-unknown-fields"] is not True
    ):
        causes.append(
            (
                f"{path}.x-kubernetes-preserve-unknown-fields",
                "Invalid value: false: must be true or undefined",
            )
        )
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            causes.append(
                (
                    f"{path}.pattern",
                    f"Invalid value: {quote(pattern)}: must be a valid regular expression, "
                    f"but isn't: {exc}",
                )
            )
    items = schema.get("items")
    if isinstance(items, list):
        causes.append(
            (f"{path}.items", "Forbidden: items must be a schema object and not an array")
        )
    elif isinstance(items, dict):
        causes += _node_causes(items, f"{path}.items")
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, dict):
            causes += _node_causes(prop, f"{path}.properties[{name}]")
    if isinstance(additional, dict):
        causes += _node_causes(additional, f"{path}.additionalProperties")
    return causes


def _structural_causes(schema: Schema, path: str, level: str, out: list[Cause]) -> None:
    """``validateStructuralInvariants`` at one node and below."""
    kind = schema.get("type") or ""
    items = schema.get("items")
    if kind == "array" and items is None:
        out.append((f"{path}.items", "Required value: must be specified"))
    if isinstance(items, dict):
        _structural_causes(items, f"{path}.items", "item", out)
    properties = schema.get("properties") or {}
    for name, prop in properties.items():
        if isinstance(prop, dict):
            _structural_causes(prop, f"{path}.properties[{name}]", "field", out)
    additional = schema.get("additionalProperties")
    if additional is not None and level == "root":
        out.append((f"{path}.additionalProperties", "Forbidden: must not be used at the root"))
    if isinstance(additional, dict):
        _structural_causes(additional, f"{path}.additionalProperties", "field", out)
    embedded = schema.get("x-kubernetes-embedded-resource") is True
    int_or_string = schema.get("x-kubernetes-int-or-string") is True
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if int_or_string and preserve:
        out.append(
            (
                f"{path}.x-kubernetes-preserve-unknown-fields",
                "Invalid value: true: must be false if x-kubernetes-int-or-string is true",
            )
        )
    if int_or_string and embedded:
        out.append(
            (
                f"{path}.x-kubernetes-embedded-resource",
                "Invalid value: true: must be false if x-kubernetes-int-or-string is true",
            )
        )
    if embedded and kind != "object":
        out.append(
            (
                f"{path}.type",
                f"Invalid value: {quote(kind)}: must be object if x-kubernetes-embedded-resource is true"
                if kind
                else "Required value: must be object if x-kubernetes-embedded-resource is true",
            )
        )
    elif not kind and not int_or_string and not preserve:
        where = {
            "root": "at the root",
            "item": "for specified array items",
            "field": "for specified object fields",
        }[level]
        out.append((f"{path}.type", f"Required value: must not be empty {where}"))
    if embedded and additional is not None:
        out.append(
            (
                f"{path}.additionalProperties",
                "Forbidden: must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if level == "root" and kind and kind != "object":
        out.append((f"{path}.type", f"Invalid value: {quote(kind)}: must be object at the root"))
    check_metadata = level == "root" or embedded
    for meta_field in ("kind", "apiVersion"):
        sub = properties.get(meta_field)
        if check_metadata and isinstance(sub, dict) and sub.get("type") != "string":
            out.append(
                (
                    f"{path}.properties[{meta_field}].type",
                    f"Invalid value: {quote(sub.get('type') or '')}: must be string",
                )
            )
    metadata = properties.get("metadata")
    if isinstance(metadata, dict):
        meta_path = f"{path}.properties[metadata]"
        if check_metadata and metadata.get("type") != "object":
            out.append(
                (
                    f"{meta_path}.type",
                    f"Invalid value: {quote(metadata.get('type') or '')}: must be object",
                )
            )
        if level == "root":
            rest = {k: v for k, v in metadata.items() if k not in ("type", "default")}
            names = set((rest.pop("properties", None) or {}).keys())
            if rest or not names <= {"name", "generateName"}:
                out.append(
                    (
                        meta_path,
                        "Forbidden: must not specify anything other than name and generateName, "
                        "but metadata is implicitly specified",
                    )
                )
    if embedded and not preserve and not properties:
        out.append(
            (
                f"{path}.properties",
                "Required value: must not be empty if x-kubernetes-embedded-resource is true "
                "without x-kubernetes-preserve-unknown-fields",
            )
        )


def has_defaults(schema: Any) -> bool:
    """Whether a schema sets a ``default`` anywhere."""
    if not isinstance(schema, dict):
        return False
    if "default" in schema:
        return True
    children = list((schema.get("properties") or {}).values())
    children += [schema.get("items"), schema.get("additionalProperties")]
    return any(has_defaults(child) for child in children)


# ------------------------------------------------------------ objects against a schema


_UNSPECIFIED: Any = object()


def _property(schema: Schema | None, key: str) -> Any:
    """The schema of a map entry: its property, else ``additionalProperties`` (None for
    ``additionalProperties: true``, which specifies the entry but not its content), else
    ``_UNSPECIFIED``."""
    if schema is None:
        return _UNSPECIFIED
    properties = schema.get("properties") or {}
    if key in properties:
        return properties[key]
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        return additional
    if additional is True:
        return None
    return _UNSPECIFIED


def prune(obj: Any, schema: Schema | None) -> list[str]:
    """Drop the fields a structural schema does not specify; returns their paths, sorted.

    The object's root keeps ``apiVersion``, ``kind`` and ``metadata``, as does every
    ``x-kubernetes-embedded-resource``; below ``x-kubernetes-preserve-unknown-fields``
    nothing unknown is dropped, but specified fields are still pruned inside.
    """
    unknown: list[str] = []
    _prune(obj, {**(schema or {}), "x-kubernetes-embedded-resource": True}, "", unknown)
    return sorted(unknown)


def _prune(value: Any, schema: Schema | None, path: str, unknown: list[str]) -> None:
    if schema is not None and schema.get("x-kubernetes-preserve-unknown-fields") is True:
        _skip_prune(value, schema, path, unknown)
        return
    if isinstance(value, dict):
        embedded = schema is not None and schema.get("x-kubernetes-embedded-resource") is True
        for key in list(value):
            if embedded and key in _META_FIELDS:
                continue
            sub = _property(schema, key)
            if sub is not _UNSPECIFIED:
                _prune(value[key], sub, _child(path, key), unknown)
                continue
            if key not in _META_FIELDS or path:
                unknown.append(_child(path, key))
            del value[key]
    elif isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for index, item in enumerate(value):
            _prune(item, items, f"{path}[{index}]", unknown)


def _skip_prune(value: Any, schema: Schema, path: str, unknown: list[str]) -> None:
    if isinstance(value, dict):
        embedded = schema.get("x-kubernetes-embedded-resource") is True
        for key in list(value):
            if embedded and key in _META_FIELDS:
                continue
            sub = _property(schema, key)
            if sub is not _UNSPECIFIED:
                _prune(value[key], sub, _child(path, key), unknown)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _skip_prune(item, items, f"{path}[{index}]", unknown)


def _nullable_null(value: Any, schema: Schema | None, *, defaultable: bool) -> bool:
    return (
        value is None
        and schema is not None
        and not schema.get("nullable")
        and (("default" in schema) == defaultable)
    )


def drop_nulls(obj: Any, schema: Schema | None) -> None:
    """Remove map entries that are null where the schema is neither nullable nor defaulted."""
    if isinstance(obj, dict):
        for key in list(obj):
            sub = _property(schema, key)
            sub = None if sub is _UNSPECIFIED else sub
            if _nullable_null(obj[key], sub, defaultable=False):
                del obj[key]
            else:
                drop_nulls(obj[key], sub)
    elif isinstance(obj, list):
        items = schema.get("items") if schema is not None else None
        for item in obj:
            drop_nulls(item, items)


def default(obj: Any, schema: Schema | None) -> None:
    """Fill in the schema's defaults: missing fields (and non-nullable nulls) get a copy."""
    if schema is None:
        return
    if isinstance(obj, dict):
        for key, prop in (schema.get("properties") or {}).items():
            if (
                isinstance(prop, dict)
                and "default" in prop
                and (key not in obj or _nullable_null(obj[key], prop, defaultable=True))
            ):
                obj[key] = copy.deepcopy(prop["default"])
        properties = schema.get("properties") or {}
        for key in obj:
            sub = _property(schema, key)
            if not isinstance(sub, dict):
                continue
            if key not in properties and _nullable_null(obj[key], sub, defaultable=True):
                obj[key] = copy.deepcopy(sub["default"])
            default(obj[key], sub)
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(obj):
                if _nullable_null(item, items, defaultable=True):
                    obj[index] = copy.deepcopy(items["default"])
                default(obj[index], items)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def validate(obj: Any, schema: Schema | None) -> list[Cause]:
    """The field errors of an object against a schema, as a custom resource's are written.

    Messages are kube-openapi's (``spec.size in body must be of type integer: "string"``)
    behind the ``field.Error`` kube-apiserver makes of them (``Invalid value``,
    ``Required value``, ``Unsupported value``, ``Too long``, ``Too many``).
    """
    causes: list[Cause] = []
    if schema is not None:
        _validate(obj, schema, "", causes)
    return causes


def _types(schema: Schema) -> list[str]:
    if schema.get("x-kubernetes-int-or-string") is True:
        return ["integer", "string"]
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) and kind else []


def _in_body(path: str) -> str:
    return f"{path} in body" if path else "in body"


def _invalid(path: str, value: Any, message: str) -> Cause:
    return (path, f"Invalid value: {go_value(value)}: {message}")


def _validate(value: Any, schema: Schema, path: str, out: list[Cause]) -> None:
    types = _types(schema)
    if value is None:
        if types and not schema.get("nullable"):
            out.append(
                _invalid(
                    path, "null", f'{_in_body(path)} must be of type {",".join(types)}: "null"'
                )
            )
        return
    actual = _json_type(value)
    integral_float = actual == "number" and "integer" in types and _json_integer(value)
    if (
        types
        and actual not in types
        and not integral_float
        and not (actual == "integer" and "number" in types)
    ):
        out.append(
            _invalid(
                path, actual, f"{_in_body(path)} must be of type {','.join(types)}: {quote(actual)}"
            )
        )
        if actual not in ("integer", "number"):
            return
        # The number validator runs on any number, whatever type the schema wants.
    if isinstance(value, str):
        _validate_string(value, schema, path, out)
    elif actual in ("integer", "number"):
        _validate_number(value, schema, path, out)
    elif isinstance(value, list):
        _validate_array(value, schema, path, out)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, out)
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_same(value, allowed) for allowed in enum):
        supported = ", ".join(
            quote(allowed if isinstance(allowed, str) else _json_text(allowed)) for allowed in enum
        )
        out.append((path, f"Unsupported value: {go_value(value)}: supported values: {supported}"))


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _validate_string(value: str, schema: Schema, path: str, out: list[Cause]) -> None:
    length = len(value)
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and length > max_length:
        out.append((path, f"Too long: may not be more than {max_length} bytes"))
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and length < min_length:
        out.append(
            _invalid(path, value, f"{_in_body(path)} should be at least {min_length} chars long")
        )
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and re.search(pattern, value) is None:
        out.append(_invalid(path, value, f"{_in_body(path)} should match '{pattern}'"))


def _number_text(limit: Any) -> str:
    # kube-openapi's validate errors print the schema's limits, float64s, with %v.
    return go_float(float(limit))


_JSON_INTEGER_MAX = 2**53 - 1
"""The largest float64 kube-openapi takes for an integer (``IsFloat64AJSONInteger``)."""

_INTEGER_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}
_INT64_RANGE = (-(2**63), 2**63 - 1)
_FLOAT32_MAX = 3.4028235677973366e38
"""Beyond this a float64 rounds to infinity as a float32 (``strconv.ParseFloat(s, 32)``)."""


def _json_integer(value: float) -> bool:
    return value.is_integer() and abs(value) <= _JSON_INTEGER_MAX


def _range_cause(value: float, schema: Schema, path: str) -> Cause | None:
    """kube-openapi's ``IsValueValidAgainstRange``: the number as ``strconv.FormatFloat(v,
    'f', -1, 64)`` writes it must parse as the schema's type and format. The error is a
    plain one, which becomes a field error without a field."""
    kind = str(schema.get("type") or "")
    form = str(schema.get("format") or "")
    if kind == "integer":
        low, high = _INTEGER_RANGES.get(form, _INT64_RANGE)
        if isinstance(value, float):
            # No exponent: an integral float64 is written as its shortest digits padded
            # with zeros, any other has a fraction that no integer parse accepts.
            number = int(Decimal(repr(value))) if value.is_integer() else None
        else:
            number = value
        fits = number is not None and low <= number <= high
    elif form in ("float", "float32"):
        fits = abs(value) <= _FLOAT32_MAX
    else:
        return None
    if fits:
        return None
    shape = f"with format {form}" if form else "(default format)"
    return ("<nil>", f'Invalid value: "": Checked value must be of type {kind} {shape} in {path}')


def _validate_number(value: float, schema: Schema, path: str, out: list[Cause]) -> None:
    checked = _range_cause(value, schema, path)
    if checked is not None:
        out.append(checked)
    maximum = schema.get("maximum")
    if isinstance(maximum, (int, float)) and not isinstance(maximum, bool):
        exclusive = schema.get("exclusiveMaximum") is True
        if value > maximum or (exclusive and value == maximum):
            relation = "less than" if exclusive else "less than or equal to"
            out.append(
                _invalid(
                    path, value, f"{_in_body(path)} should be {relation} {_number_text(maximum)}"
                )
            )
    minimum = schema.get("minimum")
    if isinstance(minimum, (int, float)) and not isinstance(minimum, bool):
        exclusive = schema.get("exclusiveMinimum") is True
        if value < minimum or (exclusive and value == minimum):
            relation = "greater than" if exclusive else "greater than or equal to"
            out.append(
                _invalid(
                    path, value, f"{_in_body(path)} should be {relation} {_number_text(minimum)}"
                )
            )
    factor = schema.get("multipleOf")
    if isinstance(factor, (int, float)) and factor > 0:
        quotient = value / factor
        if not math.isclose(quotient, round(quotient), rel_tol=0, abs_tol=1e-9):
            out.append(
                _invalid(
                    path, value, f"{_in_body(path)} should be a multiple of {_number_text(factor)}"
                )
            )


def _validate_count(
    count: int, schema: Schema, kind: str, shown: Any, path: str, out: list[Cause]
) -> None:
    """``max``/``min`` + ``Items`` or ``Properties``: a list's length or an object's keys;
    ``shown`` is the value the lower bound's error quotes."""
    most, least = schema.get("max" + kind), schema.get("min" + kind)
    if isinstance(most, int) and count > most:
        out.append((path, f"Too many: {count}: must have at most {most} items"))
    if isinstance(least, int) and count < least:
        noun = kind.lower()
        out.append(_invalid(path, shown, f"{_in_body(path)} should have at least {least} {noun}"))


def _validate_array(value: list[Any], schema: Schema, path: str, out: list[Cause]) -> None:
    _validate_count(len(value), schema, "Items", len(value), path, out)
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _validate(item, items, f"{path}[{index}]", out)


def _validate_object(value: dict[str, Any], schema: Schema, path: str, out: list[Cause]) -> None:
    _validate_count(len(value), schema, "Properties", "", path, out)
    properties: Mapping[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key in sorted(value):
        if key in properties:
            if isinstance(properties[key], dict):
                _validate(value[key], properties[key], _child(path, key), out)
        elif isinstance(additional, dict):
            _validate(value[key], additional, _child(path, key), out)
    for key in schema.get("required") or ():
        if key not in value:
            out.append((_child(path, key), "Required value"))
