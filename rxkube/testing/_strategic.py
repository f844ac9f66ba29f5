"""Strategic merge patch of built-in kinds, as kube-apiserver applies it.

A port of the server half of apimachinery ``pkg/util/strategicpatch`` (``mergeMap`` with
``MergeParallelList`` and ``IgnoreUnmatchedNulls``, as ``StrategicMergeMapPatch`` calls
it), with the patch metadata of ``_strategic_table`` (generated from the built-in types'
Go struct tags) standing in for Go reflection. What it does, in kube-apiserver's words:

- maps merge recursively and ``null`` deletes a key; lists are replaced, except those
  whose field is tagged ``patchStrategy:"merge"``: lists of objects merge item by item on
  their ``patchMergeKey``, lists of scalars become the union of both;
- directives: ``$patch: replace`` / ``delete`` on a map, ``$patch: delete`` /
  ``replace`` as a list item, ``$setElementOrder/<list>``, ``$retainKeys``,
  ``$deleteFromPrimitiveList/<list>``;
- failures answer as kube-apiserver's ``interpretStrategicMergePatchError`` maps them:
  400 for a malformed directive (a patch key missing from ``$retainKeys`` included), 422
  for lists of lists, and the bare error (500, no reason) for the rest, such as a list
  item without its merge key.

The patched object then goes through kube-apiserver's typed decode, which drops any
field its Go struct lacks; directive keys left in maps taken whole from the patch are
dropped here for the same reason. Fields the table does not know (unknown fields the
server keeps) merge as untagged fields do.
"""

from __future__ import annotations

import copy
from typing import Any

from .._apivalidation import go_print
from ._status import StatusError
from ._strategic_table import KINDS, STRUCTS

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"

Schema = str | None
"""A Go type name of ``_strategic_table.STRUCTS``, or None: no tagged field below."""


# ----------------------------------------------------------------- errors


def _go_type(value: Any) -> str:
    """The Go type a decoded JSON value has (``reflect.TypeOf``)."""
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "%!s(<nil>)"


def _bad_request(message: str) -> StatusError:
    return StatusError(400, message)


def _unprocessable(message: str) -> StatusError:
    """``NewGenericServerResponse(422, ...)``: a fixed message, the error as a cause."""
    return StatusError(
        422,
        "the server rejected our request due to an error in our request",
        details={"causes": [{"reason": "UnexpectedServerResponse", "message": message}]},
    )


def _failed(message: str) -> StatusError:
    """An error kube-apiserver passes on as it is: a 500 with no reason."""
    return StatusError(500, message, reason="")


_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
_BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"


def _no_merge_key(item: dict[str, Any], key: str) -> StatusError:
    return _failed(f"map: {go_print(item)} does not contain declared merge key: {key}")


def _bad_arg_type(expected: str, actual: Any) -> StatusError:
    return _failed(f"expected a {expected}, but received a {_go_type(actual)}")


# ------------------------------------------------------------ patch metadata


def root_schema(group: str, version: str, kind: str) -> Schema:
    """The schema of a built-in kind (None when none of its fields is tagged)."""
    return KINDS.get((group, version, kind))


def _lookup(schema: Schema, key: str) -> tuple[Schema, str, str, str]:
    """``LookupPatchMetadataFor{Struct,Slice}``: the field's schema, strategy, merge key
    and, for a list, its element's Go kind. ``retainKeys`` is dropped from the strategy
    (``extractRetainKeysPatchStrategy``): it only guides the client building a patch."""
    fields = STRUCTS.get(schema or "", {})
    entry = fields.get(key)
    if entry is None:
        folded = key.casefold()  # encoding/json matches field names case-insensitively too
        entry = next((v for k, v in fields.items() if k.casefold() == folded), None)
    if entry is None:
        return None, "", "", "string"
    _, element, strategies, merge_key, element_kind = entry
    strategy = next((s for s in strategies if s != "retainKeys"), "")
    return element, strategy, merge_key, element_kind


# ----------------------------------------------------------- list helpers


def _key_of(item: Any, merge_key: str, is_map: bool) -> Any:
    """What ``index`` compares: the merge key's value of a map, the item itself otherwise."""
    if is_map:
        return item.get(merge_key) if isinstance(item, dict) else None
    return item


def _index(items: list[Any], value: Any, merge_key: str, is_map: bool) -> int:
    wanted = _key_of(value, merge_key, is_map)
    for position, item in enumerate(items):
        if _key_of(item, merge_key, is_map) == wanted:
            return position
    return -1


def _element_type(*lists: list[Any] | None) -> str:
    """``sliceElementType``: the one Go type of every item (lists of lists refused)."""
    found: str | None = None
    for items in lists:
        for item in items or []:
            current = _go_type(item)
            if found is None:
                if isinstance(item, list):
                    raise _unprocessable("lists of lists are not supported")
                found = current
            elif current != found:
                shown = "[" + " ".join(go_print(items or []) for items in lists) + "]"
                raise _failed(f"list element types are not identical: {shown}")
    if found is None:
        raise _failed("no elements in any of the given slices")
    return found


def _normalize_slice_order(
    to_sort: list[Any], order: list[Any], merge_key: str, is_map: bool
) -> list[Any]:
    """``normalizeSliceOrder``: sort by position in ``order``, ``$patch: delete`` items last."""
    to_delete: list[Any] = []
    if is_map:
        for items in (to_sort, order):
            for item in items:
                if not isinstance(item, dict):
                    raise _bad_arg_type("map[string]interface {}", item)
                if merge_key not in item:
                    raise _no_merge_key(item, merge_key)
        to_delete = [i for i in to_sort if i.get(_DIRECTIVE) == "delete"]
        to_sort = [i for i in to_sort if i.get(_DIRECTIVE) != "delete"]
    positions = [_index(order, item, merge_key, is_map) for item in to_sort]
    # Items missing from ``order`` keep their place after the ordered ones, as Go's
    # stable sort leaves them; kube-apiserver only sorts lists whose items are all found.
    ranked = sorted(
        range(len(to_sort)),
        key=lambda i: (positions[i] < 0, positions[i] if positions[i] >= 0 else i),
    )
    return [to_sort[i] for i in ranked] + to_delete


def _merge_sorted(
    left: list[Any], right: list[Any], server_order: list[Any], merge_key: str, is_map: bool
) -> list[Any]:
    """``mergeSortedSlice``: interleave server-only items (left) into patch items (right),
    a server-only item going first only when the live list has it before the patch item."""
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key, is_map)
            ri = _index(server_order, right[j], merge_key, is_map)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _normalize_element_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
    is_map: bool,
) -> list[Any]:
    patch_items = _normalize_slice_order(patch_items, patch_order, merge_key, is_map)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, is_map)
    return _merge_sorted(server_only, patch_items, server_order, merge_key, is_map)


def _partition(merged: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    """Items of ``merged`` present in ``by`` (by merge key for maps), and the others."""
    present: list[Any] = []
    server_only: list[Any] = []
    if not merge_key:
        for value in merged:
            (present if value in by else server_only).append(value)
        return present, server_only
    for value in merged:
        if not isinstance(value, dict):
            raise _bad_arg_type("map[string]interface {}", value)
        if merge_key not in value:
            raise _no_merge_key(value, merge_key)
        found = _find(by, merge_key, value[merge_key])
        (present if found >= 0 else server_only).append(value)
    return present, server_only


def _find(items: list[Any], key: str, value: Any) -> int:
    """``findMapInSliceBasedOnKeyValue``: the position of the map whose ``key`` is ``value``."""
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise _failed(f"value for key {position} is not a map")
        if key in item and item[key] == value:
            return position
    return -1


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """``removeDirectives``: drop every map holding ``$patch`` (and say if ``value`` goes)."""
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        out: dict[str, Any] = {}
        for key, item in value.items():
            kept, keep = _remove_directives(item)
            if keep:
                out[key] = kept
        return out, True
    if isinstance(value, list):
        return [kept for kept, keep in map(_remove_directives, value) if keep], True
    return value, True


def _discard_nulls(value: Any) -> Any:
    """``discardNullValuesFromPatch``: null map values removed at every depth."""
    if isinstance(value, dict):
        return {k: _discard_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_discard_nulls(v) for v in value]
    return value


# ------------------------------------------------------------------ merging


def _handle_map_directive(directive: Any, patch: dict[str, Any]) -> dict[str, Any]:
    if directive == "replace":
        return {k: v for k, v in patch.items() if k != _DIRECTIVE}
    if directive == "delete":
        return {}
    raise _failed(f"unknown patch type: {go_print(directive)} in map: {go_print(patch)}")


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """``applyRetainKeysDirective``: keep only the listed keys of ``original``."""
    if _RETAIN_KEYS not in patch:
        return
    retained = patch.pop(_RETAIN_KEYS)
    if not isinstance(retained, list):
        raise _bad_request(_BAD_RETAIN_KEYS)
    allowed = {v for v in retained if isinstance(v, str)}
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if key not in allowed:
            raise _bad_request(_BAD_RETAIN_KEYS)
    for key in [k for k in original if k not in allowed]:
        del original[key]


def _directive_key(key: str, prefix: str, error: str) -> str:
    """``extractKey``: the list a ``prefix/<list>`` directive names."""
    head, slash, rest = key.partition("/")
    if not slash or head != prefix:
        raise _bad_request(error)
    return rest


def _check_set_order(patch_list: Any, order: Any, merge_key: str) -> None:
    """``validatePatchWithSetOrderList``: patch items appear in the order list, in its order."""
    if not isinstance(order, list) or not isinstance(patch_list, list):
        raise _bad_request(_BAD_SET_ELEMENT_ORDER)
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        for item in items:
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
        items = [i for i in items if i.get(_DIRECTIVE) != "delete"]
    p = s = 0
    while p < len(items) and s < len(order):
        if isinstance(items[p], dict) and _DIRECTIVE in items[p]:
            p += 1
            continue
        if merge_key:
            left, right = items[p], order[s]
            for side in (left, right):
                if not isinstance(side, dict):
                    raise _bad_arg_type("map[string]interface {}", side)
                if merge_key not in side:
                    raise _no_merge_key(side, merge_key)
            equal = left[merge_key] == right[merge_key]
        else:
            equal = items[p] == order[s]
        if equal:
            p += 1
        s += 1
    if p < len(items) and s >= len(order):
        raise _failed(
            f"The order in patch list:\n{go_print(patch_list)}\n doesn't match "
            f"{_SET_ELEMENT_ORDER} list:\n{go_print(order)}\n"
        )


def _merge_set_element_orders(
    original: dict[str, Any], patch: dict[str, Any], schema: Schema
) -> None:
    """``mergePatchIntoOriginal``: merge each ``$setElementOrder`` list with its patch
    list and order the result: the directive's order first, then the patch's, then the
    live list's. Both keys leave ``patch``."""
    for key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise _bad_arg_type("[]interface {}", order)
        name = _directive_key(key, _SET_ELEMENT_ORDER, _BAD_SET_ELEMENT_ORDER)
        found_original, found_patch = name in original, name in patch
        original_list = original.get(name)
        patch_list = patch.get(name)
        if found_original and not isinstance(original_list, list):
            raise _bad_arg_type("[]interface {}", original_list)
        if found_patch and not isinstance(patch_list, list):
            raise _bad_arg_type("[]interface {}", patch_list)
        subschema, strategy, merge_key, element_kind = _lookup(schema, name)
        _check_set_order(patch_list if found_patch else [], order, merge_key)
        if not found_original and not found_patch:
            continue
        if found_original and not found_patch:
            merged = original_list
        elif not found_original:
            merged, _ = _remove_directives(patch_list)
        else:
            merged = _merge_list_field(
                original_list, patch_list, subschema, strategy, merge_key, element_kind,
                delete_list=False,
            )  # fmt: skip
        assert isinstance(merged, list)
        in_order, server_only = _partition(merged, order, merge_key)
        is_map = _element_type(original_list, patch_list) == "map[string]interface {}"
        original[name] = _normalize_element_order(
            in_order, server_only, order, original_list or [], merge_key, is_map
        )
        patch.pop(name, None)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """``mergeMap``: ``patch`` merged into ``original`` (both are consumed)."""
    if _DIRECTIVE in patch:
        return _handle_map_directive(patch[_DIRECTIVE], patch)
    _apply_retain_keys(original, patch)
    _merge_set_element_orders(original, patch, schema)
    for key, value in patch.items():
        delete_list = key.startswith(_DELETE_FROM_PRIMITIVE_LIST)
        if delete_list:
            key = _directive_key(key, _DELETE_FROM_PRIMITIVE_LIST, _BAD_PRIMITIVE_LIST)
        if value is None:
            original.pop(key, None)
            continue
        current = original.get(key)
        if key not in original or _go_type(current) != _go_type(value):
            if not delete_list:
                kept, keep = _remove_directives(_discard_nulls(value))
                if keep:
                    original[key] = kept
                else:
                    original.pop(key, None)
            continue
        if isinstance(current, dict):
            subschema, strategy, _, _ = _lookup(schema, key)
            original[key] = (
                value if strategy == "replace" else _merge_map(current, value, subschema)
            )
        elif isinstance(current, list):
            subschema, strategy, merge_key, element_kind = _lookup(schema, key)
            original[key] = _merge_list_field(
                current, value, subschema, strategy, merge_key, element_kind,
                delete_list=delete_list,
            )  # fmt: skip
        else:
            kept, keep = _remove_directives(value)
            if keep:
                original[key] = kept
            else:
                original.pop(key, None)
    return original


def _merge_list_field(
    original: Any,
    patch: Any,
    schema: Schema,
    strategy: str,
    merge_key: str,
    element_kind: str,
    *,
    delete_list: bool,
) -> list[Any]:
    """``mergeSliceHandler``: merged by strategy (or as a deletion list), else replaced."""
    if not isinstance(original, list):
        raise _bad_arg_type("[]interface {}", original)
    if not isinstance(patch, list):
        raise _bad_arg_type("[]interface {}", patch)
    if strategy == "merge" or delete_list:
        return _merge_list(original, patch, schema, merge_key, element_kind, delete_list)
    return patch


def _merge_list(
    original: list[Any],
    patch: list[Any],
    schema: Schema,
    merge_key: str,
    element_kind: str,
    delete_list: bool,
) -> list[Any]:
    """``mergeSlice``: a union of scalars, or maps merged on ``merge_key``; then ordered."""
    if not original and not patch:
        return original
    is_map = _element_type(original, patch) == "map[string]interface {}"
    if not is_map:
        if delete_list:
            removed = list(patch)
            return [v for v in original if v not in removed]
        merged: list[Any] = []
        for value in original + patch:
            if value not in merged:
                merged.append(value)
    else:
        if not merge_key:
            raise _failed(f"cannot merge lists without merge key for {element_kind}")
        original, patch = _apply_list_directives(original, patch, merge_key)
        merged = list(original)
        for item in patch:
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            position = _find(merged, merge_key, item[merge_key])
            if position >= 0:
                merged[position] = _merge_map(merged[position], item, schema)
            else:
                merged.append(item)
    in_patch, server_only = _partition(merged, patch, merge_key)
    return _normalize_element_order(in_patch, server_only, patch, original, merge_key, is_map)


def _apply_list_directives(
    original: list[Any], patch: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    """``mergeSliceWithSpecialElements``: ``$patch: delete`` items remove every live item
    with their key; ``$patch: replace`` makes the other patch items the whole list."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            original = [
                live
                for live in original
                if not (isinstance(live, dict) and live.get(merge_key, _ABSENT) == item[merge_key])
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _failed("merging lists cannot yet be specified in the patch")
        else:
            raise _failed(f"unknown patch type: {go_print(directive)} in map: {go_print(item)}")
    if replace:
        return plain, []
    return original, plain


_ABSENT = object()


def _drop_directive_keys(value: Any) -> Any:
    """The value without directive keys, which no field of a built-in kind can hold."""
    if isinstance(value, dict):
        return {
            k: _drop_directive_keys(v)
            for k, v in value.items()
            if not (
                k in (_DIRECTIVE, _RETAIN_KEYS)
                or k.startswith((_SET_ELEMENT_ORDER + "/", _DELETE_FROM_PRIMITIVE_LIST + "/"))
            )
        }
    if isinstance(value, list):
        return [_drop_directive_keys(v) for v in value]
    return value


def strategic_merge_patch(
    original: dict[str, Any], patch: dict[str, Any], schema: Schema
) -> dict[str, Any]:
    """Apply a strategic merge patch to an object of a built-in kind.

    Args:
        original: the live object (left untouched).
        patch: the decoded patch document (left untouched).
        schema: the kind's :func:`root_schema`.

    Raises:
        StatusError: what kube-apiserver answers for a patch it cannot apply (400, 422
            or 500, see the module's docstring).
    """
    merged = _merge_map(copy.deepcopy(original), copy.deepcopy(patch), schema)
    result: dict[str, Any] = _drop_directive_keys(merged)
    return result
