"""Generate ``rxkube/testing/_strategic_table.py`` from the Go struct tags of the built-in kinds.

kube-apiserver applies a strategic merge patch to a built-in kind by reflecting over the
kind's Go struct (apimachinery ``strategicpatch.PatchMetaFromStruct`` reads the
``patchStrategy`` and ``patchMergeKey`` tags, field by field). This script reads the same
tags from the Go sources of ``k8s.io/api`` and of apimachinery's ``meta/v1`` types at the
release the test server follows, and writes the table the server looks them up in.

Usage (two git directories, for example from ``git clone --bare``)::

    python tools/gen_strategic_table.py API_GIT APIMACHINERY_GIT v0.32.13 \\
        > rxkube/testing/_strategic_table.py && ruff format rxkube/testing/_strategic_table.py

Only what changes the result of a patch is kept: the fields whose tags name a strategy
other than ``retainKeys`` alone (``retainKeys`` only guides the client that builds a
patch; the server obeys the ``$retainKeys`` directive wherever it is), and the fields
whose type leads to such a field. Every other field merges as an untagged field does:
maps recursively, lists replaced.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

_API = "k8s.io/api/"
_META = "k8s.io/apimachinery/pkg/apis/meta/v1"


@dataclass
class Field:
    """One Go struct field: its JSON name (empty for an inlined struct) and its tags."""

    json: str
    type_expr: str
    strategy: str
    merge_key: str
    omitempty: bool = False


def _git(repo: str, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={repo}", *args], check=True, capture_output=True, text=True
    ).stdout


def _imports(source: str) -> dict[str, str]:
    """Package alias → import path, for the imports of one Go file."""
    out: dict[str, str] = {}
    block = re.search(r"^import \((.*?)^\)", source, re.S | re.M)
    lines = block.group(1).splitlines() if block else re.findall(r"^import (.*)$", source, re.M)
    for line in lines:
        match = re.match(r'\s*(\w+)?\s*"([^"]+)"', line)
        if match:
            path = match.group(2)
            out[match.group(1) or path.rsplit("/", 1)[-1]] = path
    return out


_FIELD = re.compile(r"^\s*(?:(\w+)\s+)?([\w.*\[\]]+(?:\[[\w.*]+\][\w.*\[\]]+)?)\s+`([^`]*)`")


def _tag(tags: str, name: str) -> str:
    match = re.search(rf'(?:^|\s){name}:"([^"]*)"', tags)
    return match.group(1) if match else ""


def _parse(package: str, source: str, types: dict[str, object]) -> None:
    """Add the struct and named slice/map types of one Go file to ``types``."""
    aliases = _imports(source)

    def qualify(expr: str) -> str:
        prefix = re.match(r"^(\*|\[\]|map\[[^\]]+\])*", expr).group(0)  # type: ignore[union-attr]
        base = expr[len(prefix) :]
        if "." in base:
            alias, name = base.split(".", 1)
            base = f"{aliases.get(alias, alias)}.{name}"
        elif base[:1].isupper():
            base = f"{package}.{base}"
        return prefix + base

    for match in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", source, re.S | re.M):
        fields: list[Field] = []
        for line in match.group(2).splitlines():
            field = _FIELD.match(line)
            if field is None or line.lstrip().startswith("//"):
                continue
            tags = field.group(3)
            json_name, *options = _tag(tags, "json").split(",")
            if json_name == "-":
                continue
            # An embedded struct is inlined unless its JSON tag names it (ObjectMeta).
            fields.append(
                Field(
                    json_name,
                    qualify(field.group(2)),
                    _tag(tags, "patchStrategy"),
                    _tag(tags, "patchMergeKey"),
                    "omitempty" in options,
                )
            )
        types[f"{package}.{match.group(1)}"] = fields
    for match in re.finditer(r"^type (\w+) ((?:\[\]|map\[[^\]]+\])[\w.*\[\]]+)\s*$", source, re.M):
        types[f"{package}.{match.group(1)}"] = qualify(match.group(2))


def _load(api: str, machinery: str, tag: str) -> tuple[dict[str, object], dict[str, str]]:
    """Every type of ``k8s.io/api`` and meta/v1, and each package's API group."""
    types: dict[str, object] = {}
    groups: dict[str, str] = {}
    for path in _git(api, "ls-tree", "-r", "--name-only", tag).splitlines():
        if not path.endswith(".go") or path.endswith("_test.go") or "generated" in path:
            continue
        package = _API + path.rsplit("/", 1)[0]
        source = _git(api, "show", f"{tag}:{path}")
        if path.endswith("/register.go"):
            group = re.search(r'GroupName\s*=\s*"([^"]*)"', source)
            if group:
                groups[package] = group.group(1)
        _parse(package, source, types)
    for name in ("types.go", "micro_time.go", "time.go"):
        source = _git(machinery, "show", f"{tag}:pkg/apis/meta/v1/{name}")
        _parse(_META, source, types)
    return types, groups


def _shape(expr: str, types: dict[str, object]) -> tuple[str, str]:
    """``("struct"|"list"|"map"|"scalar", element type)`` of a qualified Go type expression."""
    expr = expr.lstrip("*")
    named = types.get(expr)
    if isinstance(named, str):
        return _shape(named, types)
    if expr.startswith("[]"):
        elem = expr[2:].lstrip("*")
        if isinstance(types.get(elem), str):
            elem = str(types[elem])
        return "list", elem
    if expr.startswith("map["):
        return "map", expr[expr.index("]") + 1 :]
    if isinstance(named, list):
        return "struct", expr
    return "scalar", expr


def _go_kind(expr: str, types: dict[str, object]) -> str:
    """The Go ``reflect.Kind`` name of a type (what the schema's ``Name()`` reports)."""
    shape, _ = _shape(expr, types)
    if shape != "scalar":
        return {"struct": "struct", "list": "slice", "map": "map"}[shape]
    base = expr.rsplit(".", 1)[-1]
    underlying = types.get(expr)
    if isinstance(underlying, str):
        return _go_kind(underlying, types)
    return base if base in {"string", "bool", "int32", "int64", "float64", "byte"} else "string"


def _fields(name: str, types: dict[str, object]) -> dict[str, Field]:
    """The JSON fields of a struct, inlined structs flattened (outer fields win)."""
    out: dict[str, Field] = {}
    inlined: list[Field] = []
    declared = types.get(name)
    for field in declared if isinstance(declared, list) else []:
        if field.json:
            out[field.json] = field
        else:
            inlined.append(field)
    for field in inlined:
        for json_name, inner in _fields(field.type_expr.lstrip("*"), types).items():
            out.setdefault(json_name, inner)
    return out


def _matters(field: Field, types: dict[str, object], relevant: Callable[[str], bool]) -> bool:
    """Whether a field changes how a patch merges: a list merged by strategy, a map
    replaced by strategy, or a field whose type holds such fields (a list only when it
    is merged: a replaced list is never looked into)."""
    strategies = set(field.strategy.split(","))
    shape, elem = _shape(field.type_expr, types)
    if shape == "list":
        if "merge" in strategies and elem in types:
            relevant(elem)  # the items' own tags apply once they are merged by key
        return "merge" in strategies
    if shape in ("struct", "map"):
        return "replace" in strategies or (elem in types and relevant(elem))
    return False


def _table(types: dict[str, object], roots: list[str]) -> dict[str, dict[str, tuple[object, ...]]]:
    """The strategy-relevant fields of every struct reachable from ``roots``."""
    relevant: dict[str, bool] = {}

    def visit(name: str) -> bool:
        if name in relevant:
            return relevant[name]
        relevant[name] = False  # a cycle does not make a type relevant by itself
        result = False
        for field in _fields(name, types).values():
            if _matters(field, types, visit):
                result = True
        relevant[name] = result
        return result

    table: dict[str, dict[str, tuple[object, ...]]] = {}
    for root in roots:
        visit(root)
    for name in sorted(n for n, keep in relevant.items() if keep):
        entries: dict[str, tuple[object, ...]] = {}
        for json_name, field in sorted(_fields(name, types).items()):
            if not _matters(field, types, lambda elem: relevant.get(elem, False)):
                continue
            strategies = tuple(s for s in field.strategy.split(",") if s)
            shape, elem = _shape(field.type_expr, types)
            element = elem if relevant.get(elem, False) else None
            kind = _go_kind(elem, types) if shape == "list" else shape
            entries[json_name] = (shape, element, strategies, field.merge_key, kind)
        table[name] = entries
    return table


def main() -> None:
    api, machinery, tag = sys.argv[1:4]
    types, groups = _load(api, machinery, tag)
    kinds: dict[tuple[str, str, str], str] = {}
    for name, fields in types.items():
        if not isinstance(fields, list) or not name.startswith(_API):
            continue
        package, kind = name.rsplit(".", 1)
        meta = {f.type_expr.lstrip("*") for f in fields if f.json == "metadata"}
        inlined = {f.type_expr for f in fields if not f.json}
        if meta == {f"{_META}.ObjectMeta"} and f"{_META}.TypeMeta" in inlined and package in groups:
            version = package.rsplit("/", 1)[-1]
            kinds[(groups[package], version, kind)] = name
    table = _table(types, sorted(kinds.values()))
    kinds = {k: v for k, v in kinds.items() if v in table}

    def short(name: str | None) -> str | None:
        return None if name is None else name.replace(_API, "").replace(_META, "meta/v1")

    print('"""Strategic merge patch metadata of the built-in kinds: generated, do not edit.')
    print()
    print(
        f"Generated by tools/gen_strategic_table.py from k8s.io/api and k8s.io/apimachinery {tag}:"
    )
    print("the ``patchStrategy`` and ``patchMergeKey`` Go struct tags that kube-apiserver's")
    print("strategic merge patch reads. ``STRUCTS`` maps a Go type to its fields that matter to")
    print("a patch, each ``(shape, element type, strategies, merge key, element Go kind)``; a")
    print("field that is not listed merges as an untagged one. ``KINDS`` maps (group, version,")
    print("kind) to the kind's Go type; a kind not listed has no tagged field at all.")
    print('"""')
    print()
    print("from __future__ import annotations")
    print()
    print("Field = tuple[str, str | None, tuple[str, ...], str, str]")
    print()
    print("STRUCTS: dict[str, dict[str, Field]] = {")
    for name, entries in table.items():
        print(f"    {short(name)!r}: {{")
        for json_name, (shape, elem, strategies, key, kind) in entries.items():
            value = (shape, short(elem), strategies, key, kind)  # type: ignore[arg-type]
            print(f"        {json_name!r}: {value!r},")
        print("    },")
    print("}")
    print()
    print("KINDS: dict[tuple[str, str, str], str] = {")
    for key in sorted(kinds):
        print(f"    {key!r}: {short(kinds[key])!r},")
    print("}")


if __name__ == "__main__":
    main()
