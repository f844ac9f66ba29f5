"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), applied to plain JSON values.

Both functions return new values and leave their inputs untouched. A JSON patch that
cannot be applied (a failed ``test``, a missing path) raises :class:`PatchFailed`, which
the server answers with 422 as kube-apiserver does; a malformed patch document raises
:class:`ValueError` (answered with 400).
"""

from __future__ import annotations

import copy
from typing import Any


class PatchFailed(Exception):
    """A well-formed JSON patch operation could not be applied to the object."""


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge recursively, ``null`` deletes a key."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise ValueError(f"invalid JSON pointer {path!r}: it must be empty or start with '/'")
    if not path:
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchFailed(f"invalid array index {token!r} in path {path!r}")
    index = int(token)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise PatchFailed(f"array index {index} out of bounds in path {path!r}")
    return index


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    current = doc
    for token in tokens[:-1]:
        if isinstance(current, dict):
            if token not in current:
                raise PatchFailed(f"path {path!r} does not exist: missing {token!r}")
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, path, for_add=False)]
        else:
            raise PatchFailed(f"path {path!r} does not exist: {token!r} is not in a container")
    return current


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchFailed(f"path {path!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, for_add=False)]
    raise PatchFailed(f"path {path!r} does not exist")


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchFailed("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchFailed(f"unable to remove nonexistent key {last!r} at path {path!r}")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, path, for_add=False))
    raise PatchFailed(f"path {path!r} does not exist")


def _add(doc: Any, path: str, value: Any, *, replace: bool) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchFailed(f"unable to replace nonexistent key {last!r} at path {path!r}")
        parent[last] = value
    elif isinstance(parent, list):
        if replace:
            parent[_index(parent, last, path, for_add=False)] = value
        else:
            parent.insert(_index(parent, last, path, for_add=True), value)
    else:
        raise PatchFailed(f"path {path!r} does not exist")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch (``add``, ``remove``, ``replace``, ``move``, ``copy``, ``test``).

    Raises:
        ValueError: the patch document is malformed (not a list of operations).
        PatchFailed: an operation could not be applied, including a failed ``test``.
    """
    if not isinstance(operations, list):
        raise ValueError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for number, op in enumerate(operations):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise ValueError(f"JSON patch operation {number} is not an object with an 'op'")
        kind = op["op"]
        if "path" not in op:
            raise ValueError(f"JSON patch operation {number} ({kind}) has no 'path'")
        path = op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise ValueError(f"JSON patch operation {number} ({kind}) has no 'value'")
        if kind in ("move", "copy") and "from" not in op:
            raise ValueError(f"JSON patch operation {number} ({kind}) has no 'from'")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]), replace=False)
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op["value"]), replace=True)
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "move":
            doc, value = _remove(doc, op["from"])
            doc = _add(doc, path, value, replace=False)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])), replace=False)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchFailed(f"testing value {path} failed: test failed")
        else:
            raise ValueError(f"JSON patch operation {number} has unknown op {kind!r}")
    return doc
