"""Unknown, duplicate and mistyped fields of built-in kinds, found as kube-apiserver finds them.

kube-apiserver decodes a body into its kind's Go struct with a strict decoder
(``sigs.k8s.io/json``): a field of the wrong JSON type fails the request (400, Go's
``json: cannot unmarshal ...``); an unknown field is dropped and a repeated key keeps its
last value, and both are reported as ``unknown field "spec.foo"`` or ``duplicate field
"spec.paused"`` according to the request's ``fieldValidation``: ``Ignore`` says nothing,
``Warn`` (the default) sends one ``Warning`` header each, ``Strict`` refuses the request.
The struct here is the kind's OpenAPI schema (:mod:`._openapi`): a property is a field,
``additionalProperties`` a map, an object with neither keeps anything (``RawExtension``).
What the struct writes back is what its Go types make of the values
(:mod:`._go_fields_table`): a ``null`` is the field's zero value, an empty ``omitempty``
value is left out, a struct is always there.

A JSON body's findings come in document order (a key both unknown and repeated is
reported once, as unknown); a body decoded from YAML, like a patched object, is walked in
sorted key order, as Go re-encodes a map.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .._apivalidation import go_print, quote
from . import _structural
from ._go_fields_table import FIELDS as GO_FIELDS
from ._openapi import kind_schema
from ._served import ServedResource
from ._status import StatusError, invalid
from ._validation import cannot_handle, json_kind

FIELD_VALIDATION = ("Ignore", "Strict", "Warn")
"""The values ``fieldValidation`` may take (empty means ``Warn``)."""

_FREE_FORM = frozenset(
    {
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    }
)
"""Types that decode themselves from a string or a number."""


_SELF_ENCODED_ZEROS: dict[str, Any] = {
    "null-struct": None,
    "quantity": "0",
    "int-or-string": 0,
    "duration": "0s",
}
"""The zero values of the structs that encode themselves, by their code in the table."""

_DEFINITION_ZEROS: dict[str, Any] = {
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": None,
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": None,
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": None,
    "io.k8s.apimachinery.pkg.runtime.RawExtension": None,
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "0",
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": 0,
}
"""The same, by OpenAPI definition (an item or map value of such a type)."""

_SCALAR_ZEROS: dict[Any, Any] = {"string": "", "integer": 0, "number": 0, "boolean": False}

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

_OMIT = object()
"""A field that the Go struct does not write."""


def _empty(value: Any, kind: Any) -> bool:
    """Whether ``omitempty`` leaves a decoded value of the schema's ``kind`` out: null, or
    the zero of a scalar (``""``, ``0``, ``false``; a value of another JSON type is left
    for the type check).

    An empty list or map is kept: a Go struct holds it apart from a missing one until it
    is encoded (validation messages print ``map[string]string{}``, the field manager
    reads ``managedFields: []``), and this server does not encode its objects again."""
    if value is None:
        return True
    if kind == "boolean":
        return value is False
    if kind in ("integer", "number"):
        return not isinstance(value, bool) and bool(value == 0)
    return kind == "string" and isinstance(value, str) and not value


def _resolve(
    schema: Mapping[str, Any], defs: Mapping[str, Any]
) -> tuple[str | None, Mapping[str, Any]]:
    """The definition a schema refers to: its name (None when inline) and itself."""
    name = None
    while "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        schema = defs.get(name, {})
    return name, schema


class Pairs(dict[str, Any]):
    """A JSON object that repeated a key: its last values, and every ``(key, value)`` in order."""

    pairs: list[tuple[str, Any]]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    repeated = Pairs(result)
    repeated.pairs = pairs
    return repeated


def decode_with_pairs(data: bytes) -> Any:
    """A JSON body decoded so that objects with repeated keys remember them (:class:`Pairs`)."""
    return json.loads(data, object_pairs_hook=_object)


@dataclass(slots=True)
class Findings:
    """What a walk found: strict-decoding messages in order, and Go's first type error."""

    strict: list[str] = field(default_factory=list)
    type_error: str | None = None


def _items(value: dict[str, Any], sort_keys: bool) -> list[tuple[str, Any]]:
    if isinstance(value, Pairs):
        return value.pairs
    return sorted(value.items()) if sort_keys else list(value.items())


def duplicates(value: Any, path: str = "") -> list[str]:
    """``duplicate field "..."`` for every repeated key of a decoded body (a patch), in order."""
    found: list[str] = []
    if isinstance(value, dict):
        seen: set[str] = set()
        for key, item in _items(value, False):
            where = f"{path}.{key}" if path else key
            if key in seen:
                found.append(f'duplicate field "{where}"')
            seen.add(key)
            found.extend(duplicates(item, where))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(duplicates(item, f"{path}[{index}]"))
    return found


class _Walk:
    """One walk of a value against a schema: findings, and the value without unknown fields."""

    def __init__(self, defs: Mapping[str, Any], *, sort_keys: bool, check_types: bool) -> None:
        self.defs = defs
        self.sort_keys = sort_keys
        self.check_types = check_types
        self.findings = Findings()

    def _resolve(self, schema: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
        return _resolve(schema, self.defs)

    def zero(self, schema: Mapping[str, Any]) -> Any:
        """The JSON a Go zero value of the schema's type encodes to."""
        name, resolved = self._resolve(schema)
        if name in _DEFINITION_ZEROS:
            return _DEFINITION_ZEROS[name]
        if name is not None and resolved.get("properties") is not None:
            return self._zero_struct(name, resolved)
        return _SCALAR_ZEROS.get(resolved.get("type"))

    def _zero_struct(self, name: str, resolved: Mapping[str, Any]) -> dict[str, Any]:
        properties = resolved.get("properties") or {}
        zero: dict[str, Any] = {}
        for key, code in GO_FIELDS.get(name, {}).items():
            if key not in properties or code == "pointer":
                continue
            if code in _SELF_ENCODED_ZEROS:
                zero[key] = _SELF_ENCODED_ZEROS[code]
            elif code in ("struct", "zero"):
                zero[key] = self.zero(properties[key])
            else:  # null, null-pointer: a nil slice, map or pointer
                zero[key] = None
        return zero

    def _field(self, value: Any, code: str | None, schema: Mapping[str, Any]) -> Any:
        """What a struct field of the given code writes for a decoded ``value``."""
        if code is None:
            return _OMIT if _empty(value, self._resolve(schema)[1].get("type")) else value
        if code == "pointer":
            return _OMIT if value is None else value
        if value is not None or code in ("null", "null-pointer"):
            return value
        if code in _SELF_ENCODED_ZEROS:
            return _SELF_ENCODED_ZEROS[code]
        return self.zero(schema)

    def _go_type(self, schema: Mapping[str, Any]) -> str:
        name, schema = self._resolve(schema)
        if name is not None:
            parts = name.split(".")
            return f"{parts[-2]}.{parts[-1]}"
        kind = schema.get("type")
        if kind == "array":
            return "[]" + self._go_type(schema.get("items") or {})
        if kind == "object":
            return "map[string]" + self._go_type(schema.get("additionalProperties") or {})
        if kind == "integer":
            return str(schema.get("format") or "int64")
        if kind == "number":
            return "float64"
        if kind == "boolean":
            return "bool"
        return "[]uint8" if schema.get("format") == "byte" else "string"

    def _mistyped(self, value: Any, schema: Mapping[str, Any], struct: str, stack: str) -> None:
        if self.findings.type_error is not None or not self.check_types:
            return
        found = json_kind(value)
        if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
            found = "number" if schema.get("type") != "integer" else f"number {value}"
        self.findings.type_error = (
            f"json: cannot unmarshal {found} into Go struct field {struct}.{stack} "
            f"of type {self._go_type(schema)}"
        )

    def walk(
        self, value: Any, schema: Mapping[str, Any], path: str, struct: str, stack: str
    ) -> Any:
        """``value`` without its unknown fields; findings are recorded on the way."""
        if value is None:
            return None
        name, resolved = self._resolve(schema)
        if name in _FREE_FORM:
            if isinstance(value, dict | list | bool):
                self._mistyped(value, {"type": "string"}, struct, stack)
            return value
        kind = resolved.get("type")
        properties = resolved.get("properties")
        if properties is not None or (kind == "object" and "additionalProperties" in resolved):
            if not isinstance(value, dict):
                self._mistyped(value, schema, struct, stack)
                return value
            if properties is None:
                item_schema = resolved["additionalProperties"]
                return {
                    key: self.zero(item_schema)
                    if item is None
                    else self.walk(item, item_schema, f"{path}.{key}", struct, stack)
                    for key, item in _items(value, self.sort_keys)
                }
            inner = name.rsplit(".", 1)[-1] if name else struct
            codes = GO_FIELDS.get(name) if name else None
            kept: dict[str, Any] = {}
            seen: set[str] = set()
            for key, item in _items(value, self.sort_keys):
                where = f"{path}.{key}" if path else key
                if key not in properties:
                    if key not in seen:
                        self.findings.strict.append(f'unknown field "{where}"')
                elif key in seen:
                    self.findings.strict.append(f'duplicate field "{where}"')
                if key in properties:
                    stacked = f"{stack}.{key}" if stack else key
                    typed = self.check_types
                    if not path and key == "metadata":
                        # Object metadata's types are checked with the metadata itself.
                        self.check_types = False
                    walked = self.walk(item, properties[key], where, inner, stacked)
                    self.check_types = typed
                    if codes is None or (name == _OBJECT_META and key == "managedFields"):
                        # No Go struct known; or the field manager tells [] (clear them)
                        # from none (keep them).
                        written = walked
                    else:
                        written = self._field(walked, codes.get(key), properties[key])
                    if written is _OMIT:
                        kept.pop(key, None)
                    else:
                        kept[key] = written
                seen.add(key)
            for key, code in (codes or {}).items():
                # A missing field is its zero value, which only a pointer leaves out.
                if key not in kept and key in properties and code != "pointer":
                    kept[key] = self._field(None, code, properties[key])
            if self.sort_keys and type(value) is dict:
                # Walked in Go's sorted order for the findings, but a struct's fields keep
                # their one order: that of the object as it was stored and listed.
                kept = {**{key: kept[key] for key in value if key in kept}, **kept}
            return kept
        if kind == "array":
            if not isinstance(value, list):
                self._mistyped(value, schema, struct, stack)
                return value
            items = resolved.get("items") or {}
            return [
                self.zero(items)
                if item is None
                else self.walk(item, items, f"{path}[{index}]", struct, stack)
                for index, item in enumerate(value)
            ]
        if kind == "object" or kind is None:
            return value  # free-form: RawExtension, FieldsV1, JSON
        expected = {"string": (str,), "boolean": (bool,), "number": (int, float)}.get(kind)
        if kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool) or not _fits(value, resolved):
                self._mistyped(value, resolved, struct, stack)
        elif expected is not None and (
            not isinstance(value, expected) or (kind == "number" and isinstance(value, bool))
        ):
            self._mistyped(value, resolved, struct, stack)
        return value


def _fits(value: int, schema: Mapping[str, Any]) -> bool:
    bits: int = 32 if schema.get("format") == "int32" else 64
    limit: int = 2 ** (bits - 1)
    return -limit <= value < limit


def check_object(
    obj: Mapping[str, Any],
    kind: str,
    defs: Mapping[str, Any],
    *,
    sort_keys: bool,
) -> tuple[dict[str, Any], Findings]:
    """A built-in object without its unknown fields, and what decoding it strictly finds.

    Args:
        obj: the decoded body (with :class:`Pairs` where keys repeat).
        kind: the definition name of its kind (``io.k8s.api.apps.v1.Deployment``).
        defs: the definitions that name and its refs resolve in.
        sort_keys: walk keys sorted (a YAML body, a patched object) rather than in order.
    """
    walk = _Walk(defs, sort_keys=sort_keys, check_types=True)
    pruned = walk.walk(obj, {"$ref": f"#/definitions/{kind}"}, "", kind.rsplit(".", 1)[-1], "")
    return pruned, walk.findings


def go_encoded(served: ServedResource, obj: dict[str, Any]) -> dict[str, Any]:
    """A built-in object as its Go struct writes it back (see the module's docstring): how
    kube-apiserver stores the result of a server-side apply. Other objects are as given."""
    found = kind_schema(served) if served.strategic_merge else None
    if found is None:
        return obj
    name, defs = found
    walk = _Walk(defs, sort_keys=True, check_types=False)
    encoded: dict[str, Any] = walk.walk(
        obj, {"$ref": f"#/definitions/{name}"}, "", name.rsplit(".", 1)[-1], ""
    )
    return encoded


_STRUCT_EMPTIES: dict[str, dict[str, tuple[Mapping[str, Any], str]]] = {}
"""By built-in struct definition: each field's schema and what an empty value of it
becomes (``keep``, ``omit``, ``null``), worked out once (see :func:`_empties`)."""


def _struct_empties(
    name: str, resolved: Mapping[str, Any], defs: Mapping[str, Any]
) -> dict[str, tuple[Mapping[str, Any], str]]:
    plan = _STRUCT_EMPTIES.get(name)
    if plan is None:
        codes = GO_FIELDS.get(name)
        plan = {}
        for key, sub in (resolved.get("properties") or {}).items():
            kind = _resolve(sub, defs)[1]
            collection = kind.get("type") == "array" or "additionalProperties" in kind
            code = codes.get(key) if codes is not None else "unknown"
            # A struct is written even when empty, free-form JSON as it is; a struct with
            # no Go type known keeps what it holds.
            action = "omit" if code is None else "null" if code == "null" else "keep"
            plan[key] = (sub, action if collection else "keep")
        _STRUCT_EMPTIES[name] = plan
    return plan


def _empties(
    value: Any,
    schema: Mapping[str, Any],
    defs: Mapping[str, Any],
    stored: bool,
    path: tuple[str | int, ...],
    found: list[tuple[tuple[str | int, ...], Any]],
) -> None:
    """Add to ``found`` each empty slice or map of a struct field below ``value``, with
    what replaces it (:data:`_OMIT` or None); see :func:`as_encoded`."""
    name, resolved = _resolve(schema, defs)
    if isinstance(value, dict) and name is not None and "properties" in resolved:
        plan = _struct_empties(name, resolved, defs)
        for key, item in value.items():
            if not isinstance(item, dict | list) or key not in plan:
                continue
            sub, action = plan[key]
            if item:
                _empties(item, sub, defs, stored, (*path, key), found)
            elif action == "omit" and (stored or name != _OBJECT_META or key != "managedFields"):
                found.append(((*path, key), _OMIT))  # the field manager's [] clears them
            elif action == "null" and stored:
                found.append(((*path, key), None))
    elif isinstance(value, dict) and "additionalProperties" in resolved:
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                _empties(item, resolved["additionalProperties"], defs, stored, (*path, key), found)
    elif isinstance(value, list) and resolved.get("type") == "array":
        for index, item in enumerate(value):
            if isinstance(item, dict | list) and item:
                _empties(item, resolved.get("items") or {}, defs, stored, (*path, index), found)


def as_encoded(served: ServedResource, obj: dict[str, Any], *, stored: bool) -> dict[str, Any]:
    """A built-in object as Go encodes its struct: an ``omitempty`` field's empty slice or
    map is left out, as the field manager (reading the object as unstructured) sees it.
    ``stored``: also as kube-apiserver reads it back from etcd, whose protobuf holds no
    empty slice or map apart from none, so another field's is null.

    Decoding keeps them (validation sees them, see :func:`_empty`). ``obj`` itself when
    nothing changes, else a changed copy; other objects are as given.
    """
    found_kind = kind_schema(served) if served.strategic_merge else None
    if found_kind is None:
        return obj
    name, defs = found_kind
    found: list[tuple[tuple[str | int, ...], Any]] = []
    _empties(obj, {"$ref": f"#/definitions/{name}"}, defs, stored, (), found)
    if not found:
        return obj
    encoded: dict[str, Any] = orjson.loads(orjson.dumps(obj))
    for path, replacement in found:
        parent: Any = encoded
        for step in path[:-1]:
            parent = parent[step]
        if replacement is _OMIT:
            del parent[path[-1]]
        else:
            parent[path[-1]] = replacement
    return encoded


def undeclared(config: Mapping[str, Any], kind: str, defs: Mapping[str, Any]) -> list[str]:
    """The fields of an apply configuration its kind does not declare, as structured-merge-diff
    names them (``.spec.foo``, ``.spec.template.spec.containers[name="web"].foo``)."""
    found: list[str] = []

    def visit(value: Any, schema: Mapping[str, Any], path: str) -> None:
        while "$ref" in schema:
            schema = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
        if isinstance(value, dict):
            properties = schema.get("properties")
            if properties is None:
                extra = schema.get("additionalProperties")
                if isinstance(extra, dict):
                    for key, item in sorted(value.items()):
                        visit(item, extra, f"{path}.{key}")
                return
            for key, item in sorted(value.items()):
                if key not in properties:
                    found.append(f"{path}.{key}: field not declared in schema")
                else:
                    visit(item, properties[key], f"{path}.{key}")
        elif isinstance(value, list) and schema.get("type") == "array":
            items = schema.get("items") or {}
            keys = schema.get("x-kubernetes-list-map-keys") or []
            for index, item in enumerate(value):
                if keys and isinstance(item, dict):
                    label = ",".join(f"{key}={json.dumps(item.get(key))}" for key in keys)
                    visit(item, items, f"{path}[{label}]")
                else:
                    visit(item, items, f"{path}[{index}]")

    visit(config, {"$ref": f"#/definitions/{kind}"}, "")
    return found


# ------------------------------------------------------------- request checks


def _custom_unknown_fields(served: ServedResource, obj: Any) -> list[str] | None:
    """A custom resource's findings: the fields its schema prunes, as
    ``unknown field "spec.foo"`` (apiextensions-apiserver's ``schemaCoercingDecoder``);
    None for a resource without a schema of its own (a built-in kind)."""
    if served.strategic_merge or served.openapi_schema is None or not isinstance(obj, dict):
        return None
    unknown = _structural.prune(copy.deepcopy(obj), served.openapi_schema)
    return [f'unknown field "{path}"' for path in unknown]


def checked_body(
    served: ServedResource,
    obj: dict[str, Any],
    data: bytes,
    *,
    yaml_body: bool,
    directive: str,
) -> tuple[dict[str, Any], list[str]]:
    """A create or update body of a built-in kind decoded strictly: without unknown fields,
    and the warnings to send (``Warn``).

    Raises:
        StatusError: 400 for a field of the wrong type, or any finding under ``Strict``.
    """
    custom = _custom_unknown_fields(served, obj)
    if custom is not None:
        if directive == "Strict" and custom:
            res = served.resource
            raise StatusError(
                400, cannot_handle(res, obj, "strict decoding error: " + ", ".join(custom))
            )
        return obj, custom if directive == "Warn" else []
    found = kind_schema(served) if served.strategic_merge else None
    if found is None:
        return obj, []
    name, defs = found
    tree: Any = obj
    if directive != "Ignore" and not yaml_body:
        try:
            tree = decode_with_pairs(data)
        except ValueError:
            tree = obj  # orjson read it; a form only it accepts has no repeated keys to find
    pruned, findings = check_object(tree, name, defs, sort_keys=yaml_body)
    res = served.resource
    if findings.type_error is not None:
        raise StatusError(400, cannot_handle(res, obj, findings.type_error))
    if directive == "Strict" and findings.strict:
        raise StatusError(
            400, cannot_handle(res, obj, "strict decoding error: " + ", ".join(findings.strict))
        )
    return pruned, findings.strict if directive == "Warn" else []


def checked_patch(
    served: ServedResource,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    data: bytes,
    *,
    patch_type: str,
    directive: str,
    warnings: list[str],
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``change`` followed by a strict decoding of the patched object, as kube-apiserver's
    patcher decodes it: repeated keys of a merge patch first, then the patched object's
    unknown fields (sorted); ``Warn`` findings are appended to ``warnings``.

    The returned function raises a 422 on the field ``patch`` for a type error, or for any
    finding under ``Strict``: its value is the patched object's JSON, or for a strategic
    merge patch the patch as Go prints a map (``map[spec:map[foo:bar]]``).
    """
    json_patch = patch_type == "application/json-patch+json"
    strategic = patch_type == "application/strategic-merge-patch+json"
    found = kind_schema(served) if served.strategic_merge else None
    if found is None and served.openapi_schema is None:
        return change
    repeated: list[str] = []
    patch: Any = None
    with contextlib.suppress(ValueError):
        patch = decode_with_pairs(data)
        if directive != "Ignore" and not json_patch:
            repeated = duplicates(patch)

    def apply(current: dict[str, Any]) -> dict[str, Any]:
        patched = change(current)
        if not isinstance(patched, dict):
            return patched
        custom = _custom_unknown_fields(served, patched)
        if custom is not None:
            pruned, strict, error = patched, repeated + custom, None
        else:
            assert found is not None
            pruned, findings = check_object(patched, found[0], found[1], sort_keys=True)
            strict = repeated + findings.strict
            error = findings.type_error
        if error is None and directive == "Strict" and strict:
            error = "strict decoding error: " + ", ".join(strict)
        if error is not None:
            shown = quote(go_print(patch) if strategic else orjson.dumps(patched).decode())
            raise invalid(None, "", [("patch", f"Invalid value: {shown}: {error}")])
        if directive == "Warn":
            warnings.extend(strict)
        return pruned

    return apply


def check_apply(
    served: ServedResource, config: Mapping[str, Any], namespace: str | None, name: str
) -> None:
    """500 for an apply configuration with fields its built-in kind does not declare, as
    structured-merge-diff refuses to type it (whatever ``fieldValidation`` says)."""
    found = kind_schema(served) if served.strategic_merge else None
    if found is None:
        return
    errors = undeclared(config, *found)
    if not errors:
        return
    text = errors[0] if len(errors) == 1 else "\n".join(["errors:", *("  " + e for e in errors)])
    res = served.resource
    raise StatusError(
        500,
        f"failed to create typed patch object ({namespace or ''}/{name}; {res.group}/"
        f"{res.version}, Kind={res.kind}): {text}",
        reason="",
    )


def warning_header(text: str) -> str:
    """A ``Warning`` header value as kube-apiserver writes it: ``299 - "<text>"`` (Go-quoted)."""
    return f"299 - {quote(text)}"
