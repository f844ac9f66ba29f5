"""Server-side apply and field ownership (``metadata.managedFields``), as kube-apiserver keeps them.

kube-apiserver's field manager (k8s.io/apimachinery ``managedfields`` over
sigs.k8s.io/structured-merge-diff) records which manager owns which fields of every
object. This module does the same on plain JSON objects:

- A *field set* is a set of paths. A path is a tuple of elements written as in
  ``fieldsV1``: ``f:<name>`` for a field, ``k:<json>`` for an item of a list keyed by
  its merge keys (``k:{"name":"web"}``), ``v:<json>`` for an item of a set-like list.
- :func:`track_update` gives the ``managedFields`` of an object written by a create, an
  update or a non-apply patch: the writer's ``Update`` entry gains the fields it
  changed, and every other manager loses them.
- :func:`apply` merges an applied configuration into the live object: the applier owns
  exactly the fields it applied; fields it applied before and omits now are removed
  unless another manager owns them; changing a field another manager owns is a 409
  conflict naming the fields and managers, unless forced, which takes ownership.

kube-apiserver knows every type's schema (which lists are keyed, by which fields; which
maps are atomic). Here a small table of built-in fields stands in for it
(:class:`FieldSchema`); docs/testing.md lists precisely what that leaves out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from ._status import StatusError

if TYPE_CHECKING:
    from ._store import ServedResource

Path = tuple[str, ...]
Object = dict[str, Any]
ManagedFields = list[dict[str, Any]]
"""The value of ``metadata.managedFields``."""


class _Missing:
    """The absence of a value, as opposed to a JSON ``null``."""

    __slots__ = ()


_MISSING: Any = _Missing()

BEFORE_FIRST_APPLY = "before-first-apply"
"""The manager that owns the existing fields of an untracked object at its first apply."""

_STRIPPED: frozenset[Path] = frozenset(
    {("f:apiVersion",), ("f:kind",), ("f:metadata",)}
    | {
        ("f:metadata", f"f:{name}")
        for name in (
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        )
    }
)
"""Paths no manager ever owns (kube-apiserver's stripMetaManager)."""


class _SchemaError(Exception):
    """An object does not fit the schema (an associative list item without keys...)."""


class _ManagedFieldsError(Exception):
    """``metadata.managedFields`` cannot be decoded."""


# ------------------------------------------------------------------ the schema


@dataclass(frozen=True, slots=True)
class _ListType:
    """An associative list: items keyed by ``keys`` (absent keys take ``defaults``).

    No keys means a set of scalars (``x-kubernetes-list-type: set``).
    """

    keys: tuple[str, ...] = ()
    defaults: tuple[tuple[str, Any], ...] = ()


_SET = _ListType()
_BY_NAME = _ListType(("name",))
_CONTAINERS = ("containers", "initContainers", "ephemeralContainers")

_METADATA_LISTS: dict[tuple[str | None, str], _ListType] = {
    ("metadata", "finalizers"): _SET,
    ("metadata", "ownerReferences"): _ListType(("uid",)),
}
_BUILTIN_LISTS: dict[tuple[str | None, str], _ListType] = {
    **_METADATA_LISTS,
    **{
        ("spec", name): _BY_NAME
        for name in (
            *_CONTAINERS,
            "volumes",
            "imagePullSecrets",
            "resourceClaims",
            "schedulingGates",
        )
    },
    ("spec", "hostAliases"): _ListType(("ip",)),
    ("spec", "topologySpreadConstraints"): _ListType(("topologyKey", "whenUnsatisfiable")),
    ("spec", "ports"): _ListType(("port", "protocol"), (("protocol", "TCP"),)),
    **{
        (c, "ports"): _ListType(("containerPort", "protocol"), (("protocol", "TCP"),))
        for c in _CONTAINERS
    },
    **{(c, "env"): _BY_NAME for c in _CONTAINERS},
    **{(c, "volumeMounts"): _ListType(("mountPath",)) for c in _CONTAINERS},
    **{(c, "volumeDevices"): _ListType(("devicePath",)) for c in _CONTAINERS},
    **{(c, "resizePolicy"): _ListType(("resourceName",)) for c in _CONTAINERS},
    ("status", "conditions"): _ListType(("type",)),
    ("status", "addresses"): _ListType(("type",)),
}
"""Associative lists of the built-in kinds, by (enclosing field, field); others are atomic."""


def _paths(*dotted: str) -> frozenset[Path]:
    return frozenset(tuple(f"f:{name}" for name in d.split(".")) for d in dotted)


_SKELETONS: dict[str, frozenset[Path]] = {
    "pods": _paths("spec", "spec.containers", "status"),
    "deployments": _paths(
        "spec",
        "spec.template",
        "spec.template.metadata",
        "spec.template.spec",
        "spec.template.spec.containers",
        "spec.strategy",
        "status",
    ),
    "replicasets": _paths(
        "spec",
        "spec.template",
        "spec.template.metadata",
        "spec.template.spec",
        "spec.template.spec.containers",
        "status",
    ),
    "services": _paths("spec", "status", "status.loadBalancer"),
    "namespaces": _paths("spec", "status"),
    "nodes": _paths(
        "spec",
        "status",
        "status.daemonEndpoints",
        "status.daemonEndpoints.kubeletEndpoint",
        "status.nodeInfo",
    ),
    "leases": _paths("spec"),
    "events": _paths("involvedObject", "source"),
}
"""Fields that exist in every typed Go object of a built-in kind, even an empty one.

kube-apiserver compares typed objects, so creating or setting these never adds them and
they get no ``.`` member in ``Update`` entries.
"""

_ATOMIC_MAPS: dict[str, frozenset[Path]] = {
    "deployments": _paths("spec.selector"),
    "replicasets": _paths("spec.selector"),
}
"""Maps of built-in kinds owned and replaced as a whole (``+structType=atomic``)."""

StatusScope = Literal["all", "without-status", "status-only"]


@dataclass(frozen=True, slots=True)
class FieldSchema:
    """How field management sees one resource at one endpoint.

    Attributes:
        api_version: the resource's ``apiVersion``.
        kind: its kind.
        subresource: ``"status"`` at the status endpoint, else ``""``.
        scope: which fields the endpoint changes: ``"all"``; ``"without-status"`` (the
            main endpoint of a resource with a status subresource); ``"status-only"``.
            The others are kube-apiserver's "reset fields": never owned, never compared.
        lists: the associative lists, by (enclosing field, field).
        skeleton: fields that exist in every typed object of the kind.
        atomic_maps: maps owned and replaced as a whole.
    """

    api_version: str
    kind: str
    subresource: str
    scope: StatusScope
    lists: Mapping[tuple[str | None, str], _ListType]
    skeleton: frozenset[Path]
    atomic_maps: frozenset[Path]

    @classmethod
    def of(cls, served: ServedResource, subresource: str | None) -> FieldSchema:
        """The schema of a served resource at its main endpoint or ``/status``."""
        builtin = served.strategic_merge  # only built-in kinds accept strategic merge patches
        res = served.resource
        return _schema(
            res.api_version,
            res.kind,
            res.plural,
            builtin,
            served.status_subresource,
            subresource or "",
        )

    def keeps(self, path: Path) -> bool:
        """Whether the endpoint manages this path (not one of its reset fields)."""
        if self.scope == "all":
            return True
        return (path[0] == "f:status") == (self.scope == "status-only")

    def scoped(self, config: Object) -> Object:
        """The part of an applied configuration this endpoint applies."""
        if self.scope == "all":
            return config
        if self.scope == "without-status":
            return {k: v for k, v in config.items() if k != "status"}
        scoped: Object = {k: config[k] for k in ("apiVersion", "kind", "status") if k in config}
        meta = config.get("metadata")
        if isinstance(meta, dict):
            scoped["metadata"] = {k: meta[k] for k in ("name", "namespace") if k in meta}
        return scoped

    # -------------------------------------------------------------- list items

    def _items(
        self, list_type: _ListType, items: list[Any], path: Path, *, strict: bool
    ) -> list[tuple[str, Any]]:
        """Each item with its path element; ``strict`` refuses duplicates (applied configs)."""
        out: list[tuple[str, Any]] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            try:
                element = _element(list_type, item)
            except _SchemaError as exc:
                raise _SchemaError(f"{path_string(path)}: element {index}: {exc}") from None
            if element in seen and strict:
                raise _SchemaError(
                    f"{path_string(path)}: duplicate entries for key {_element_string(element)}"
                )
            seen.add(element)
            out.append((element, item))
        return out

    # --------------------------------------------------------------- field set

    def field_set(self, obj: Object) -> set[Path]:
        """The fields an applied configuration sets (structured-merge-diff's ToFieldSet)."""
        out: set[Path] = set()
        self._map_fields(obj, (), None, out)
        return out

    def _map_fields(
        self, obj: Mapping[str, Any], path: Path, field: str | None, out: set[Path]
    ) -> None:
        for key, value in obj.items():
            child = (*path, f"f:{key}")
            if value is None or value == {} or child in self.atomic_maps:
                out.add(child)
            elif isinstance(value, dict):
                self._map_fields(value, child, key, out)
            elif isinstance(value, list):
                list_type = self.lists.get((field, key))
                if list_type is None:
                    out.add(child)
                    continue
                for element, item in self._items(list_type, value, child, strict=True):
                    item_path = (*child, element)
                    if isinstance(item, dict):
                        self._map_fields(item, item_path, key, out)
                    out.add(item_path)
            else:
                out.add(child)

    # ------------------------------------------------------------------- merge

    def merge(self, live: Object, config: Object) -> Object:
        """``config`` merged into ``live``: config values win, associative lists merge by key.

        A ``null`` in the configuration removes the field.
        """
        return self._merge_maps(live, config, (), None)

    def _merge_maps(
        self,
        live: Mapping[str, Any] | None,
        config: Mapping[str, Any],
        path: Path,
        field: str | None,
    ) -> Object:
        out = dict(live) if live else {}
        for key, value in config.items():
            if value is None:
                out.pop(key, None)
                continue
            child = (*path, f"f:{key}")
            previous = out.get(key, _MISSING)
            if isinstance(value, dict) and child not in self.atomic_maps:
                out[key] = self._merge_maps(
                    previous if isinstance(previous, dict) else None, value, child, key
                )
                continue
            list_type = self.lists.get((field, key)) if isinstance(value, list) else None
            if list_type is None:
                out[key] = value
            else:
                before = previous if isinstance(previous, list) else []
                out[key] = self._merge_lists(before, value, list_type, child, key)
        return out

    def _merge_lists(
        self, live: list[Any], config: list[Any], list_type: _ListType, path: Path, name: str
    ) -> list[Any]:
        """Merge by key: live-only items keep their place, shared and new ones follow the config."""
        live_items = self._items(list_type, live, path, strict=False)
        config_items = self._items(list_type, config, path, strict=True)
        live_by_element: dict[str, Any] = {}
        for element, item in live_items:
            live_by_element.setdefault(element, item)
        position = {element: index for index, (element, _) in enumerate(config_items)}
        out: list[Any] = []
        taken = 0

        def take(until: int) -> None:
            nonlocal taken
            for element, item in config_items[taken:until]:
                before = live_by_element.get(element)
                if list_type.keys:
                    before_map = before if isinstance(before, dict) else None
                    out.append(self._merge_maps(before_map, item, (*path, element), name))
                else:
                    out.append(item)
            taken = max(taken, until)

        for element, item in live_items:
            index = position.get(element)
            if index is None:
                out.append(item)
            elif index >= taken:
                take(index + 1)
        take(len(config_items))
        return out

    # ----------------------------------------------------------------- compare

    def compare(self, old: Object, new: Object) -> _Diff:
        """The fields ``new`` added, modified and removed (structured-merge-diff's Compare)."""
        diff = _Diff()
        self._compare_maps(old, new, (), None, diff)
        return diff

    def _compare_maps(
        self,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        path: Path,
        field: str | None,
        diff: _Diff,
    ) -> None:
        for key, value in old.items():
            self._compare(value, new.get(key, _MISSING), (*path, f"f:{key}"), field, key, diff)
        for key, value in new.items():
            if key not in old:
                self._compare(_MISSING, value, (*path, f"f:{key}"), field, key, diff)

    def _compare(
        self, old: Any, new: Any, path: Path, parent: str | None, name: str, diff: _Diff
    ) -> None:
        """Compare one node; a map, list or list item that appears or vanishes is itself added
        or removed, besides its content."""
        if path not in self.atomic_maps and _all_of(dict, old, new):
            old_map = old if isinstance(old, dict) else {}
            new_map = new if isinstance(new, dict) else {}
            if not old_map and not new_map:
                diff.leaf(old, new, path)
                return
            self._compare_maps(old_map, new_map, path, name, diff)
        elif (list_type := self.lists.get((parent, name))) is not None and _all_of(list, old, new):
            old_list = old if isinstance(old, list) else []
            new_list = new if isinstance(new, list) else []
            if not old_list and not new_list:
                diff.leaf(old, new, path)
                return
            old_items: dict[str, Any] = {}
            for element, item in self._items(list_type, old_list, path, strict=False):
                old_items.setdefault(element, item)
            new_items: dict[str, Any] = {}
            for element, item in self._items(list_type, new_list, path, strict=False):
                new_items.setdefault(element, item)
            for element in [*old_items, *(e for e in new_items if e not in old_items)]:
                before = old_items.get(element, _MISSING)
                after = new_items.get(element, _MISSING)
                if list_type.keys:
                    self._compare(before, after, (*path, element), name, name, diff)
                else:
                    diff.leaf(before, after, (*path, element))
        else:
            diff.leaf(old, new, path)
            return
        if old is _MISSING and path not in self.skeleton:
            diff.added.add(path)
        elif new is _MISSING:
            diff.removed.add(path)

    # ------------------------------------------------------------------ remove

    def remove(self, obj: Object, paths: Iterable[Path]) -> Object:
        """``obj`` without the fields at ``paths`` (and what they hold).

        A map or list left empty by the removal goes too.
        """
        return self._remove_map(obj, _Trie.of(paths), (), None)

    def _remove_map(
        self, obj: Mapping[str, Any], node: _Trie, path: Path, field: str | None
    ) -> Object:
        out: Object = {}
        for key, value in obj.items():
            child = node.children.get(f"f:{key}")
            if child is not None:
                if child.member:
                    continue
                pruned = self._remove_value(value, child, (*path, f"f:{key}"), field, key)
                if value and not pruned:
                    continue
                value = pruned
            out[key] = value
        return out

    def _remove_value(
        self, value: Any, node: _Trie, path: Path, parent: str | None, name: str
    ) -> Any:
        if isinstance(value, dict) and path not in self.atomic_maps:
            return self._remove_map(value, node, path, name)
        list_type = self.lists.get((parent, name)) if isinstance(value, list) else None
        if list_type is None:
            return value
        out: list[Any] = []
        for element, item in self._items(list_type, value, path, strict=False):
            child = node.children.get(element)
            if child is not None:
                if child.member:
                    continue
                if isinstance(item, dict):
                    item = self._remove_map(item, child, (*path, element), name)
            out.append(item)
        return out


@lru_cache(maxsize=256)
def _schema(
    api_version: str,
    kind: str,
    plural: str,
    builtin: bool,
    status_subresource: bool,
    subresource: str,
) -> FieldSchema:
    scope: StatusScope = "all"
    if subresource == "status":
        scope = "status-only"
    elif status_subresource:
        scope = "without-status"
    return FieldSchema(
        api_version=api_version,
        kind=kind,
        subresource=subresource,
        scope=scope,
        lists=_BUILTIN_LISTS if builtin else _METADATA_LISTS,
        skeleton=_SKELETONS.get(plural, frozenset()) if builtin else frozenset(),
        atomic_maps=_ATOMIC_MAPS.get(plural, frozenset()) if builtin else frozenset(),
    )


def _all_of(kind: type, *values: Any) -> bool:
    """Whether each value is of ``kind``, null or missing, and at least one is of ``kind``."""
    return all(v is _MISSING or v is None or isinstance(v, kind) for v in values) and any(
        isinstance(v, kind) for v in values
    )


class _Diff:
    """What changed between two objects, as field sets."""

    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added: set[Path] = set()
        self.modified: set[Path] = set()
        self.removed: set[Path] = set()

    def leaf(self, old: Any, new: Any, path: Path) -> None:
        """Record a scalar (or a value compared as a whole)."""
        if old is _MISSING:
            self.added.add(path)
        elif new is _MISSING:
            self.removed.add(path)
        elif not _equal(old, new):
            self.modified.add(path)

    def kept(self, keeps: Callable[[Path], bool]) -> _Diff:
        """Only the paths ``keeps`` accepts."""
        out = _Diff()
        out.added = {p for p in self.added if keeps(p)}
        out.modified = {p for p in self.modified if keeps(p)}
        out.removed = {p for p in self.removed if keeps(p)}
        return out


def _equal(a: Any, b: Any) -> bool:
    # JSON true is not 1, though Python says so; 1 and 1.0 are equal, as in Go's comparison.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


# --------------------------------------------------------- path elements


def _json(value: Any) -> str:
    """Compact JSON as Go's encoding/json writes it (sorted keys, HTML characters escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _element(list_type: _ListType, item: Any) -> str:
    """The path element of a list item: ``k:{...}`` by its keys, or ``v:...`` in a set."""
    if not list_type.keys:
        if isinstance(item, dict | list) or item is None:
            raise _SchemaError("associative list without keys has an element that's not a scalar")
        return f"v:{_json(item)}"
    if not isinstance(item, dict):
        raise _SchemaError("associative list with keys may not have non-map elements")
    key = {name: item[name] for name in list_type.keys if name in item}
    for name, default in list_type.defaults:
        key.setdefault(name, default)
    if not key:
        names = " ".join(f'"{name}"' for name in list_type.keys)
        raise _SchemaError(
            f"associative list with keys has an element that omits all key fields [{names}] "
            "(and doesn't have default values for any key fields)"
        )
    return f"k:{_json(key)}"


def _value_string(value: Any) -> str:
    """A value as structured-merge-diff prints it in a path (Go's ``%q`` for strings)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ",".join(_value_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{k}={_value_string(v)}" for k, v in value.items())
    return str(value)


def _element_string(element: str) -> str:
    kind, body = element[0], element[2:]
    if kind == "f":
        return f".{body}"
    if kind == "k":
        fields = json.loads(body)
        return "[" + ",".join(f"{k}={_value_string(v)}" for k, v in fields.items()) + "]"
    if kind == "v":
        return f"[={_value_string(json.loads(body))}]"
    return f"[{body}]"


def path_string(path: Path) -> str:
    """A path as kube-apiserver prints it: ``.spec.containers[name="web"].image``."""
    return "".join(_element_string(e) for e in path)


def _scalar_order(value: Any) -> tuple[int, float, str]:
    # structured-merge-diff orders numbers < strings < booleans < lists < maps < null.
    if isinstance(value, bool):
        return (2, float(value), "")
    if isinstance(value, int | float):
        return (0, float(value), "")
    if isinstance(value, str):
        return (1, 0.0, value)
    rank = 3 if isinstance(value, list) else 4 if isinstance(value, dict) else 5
    return (rank, 0.0, _json(value))


@lru_cache(maxsize=8192)
def _element_order(element: str) -> tuple[Any, ...]:
    """Sort key of a path element: fields, then keys, then values, then indexes."""
    kind, body = element[0], element[2:]
    if kind == "f":
        return (0, body)
    if kind == "k":
        return (1, tuple((k, _scalar_order(v)) for k, v in json.loads(body).items()))
    if kind == "v":
        return (2, _scalar_order(json.loads(body)))
    return (3, int(body))


def _canonical_element(element: str) -> str:
    """A path element read from ``fieldsV1``, written the way this module writes it."""
    kind, sep, body = element[:1], element[1:2], element[2:]
    if sep != ":" or kind not in ("f", "k", "v", "i"):
        raise _ManagedFieldsError(f"invalid path element {element!r}")
    if kind == "f":
        return element
    try:
        value = json.loads(body)
    except ValueError:
        raise _ManagedFieldsError(f"invalid path element {element!r}") from None
    if kind == "k":
        if not isinstance(value, dict) or not value:
            raise _ManagedFieldsError(f"invalid key {element!r}")
        return f"k:{_json(value)}"
    if kind == "v":
        return f"v:{_json(value)}"
    if not isinstance(value, int) or isinstance(value, bool):
        raise _ManagedFieldsError(f"invalid index {element!r}")
    return f"i:{value}"


class _Trie:
    """A field set as a tree: whether each node is itself in the set, and its children."""

    __slots__ = ("children", "member")

    def __init__(self) -> None:
        self.member = False
        self.children: dict[str, _Trie] = {}

    @classmethod
    def of(cls, paths: Iterable[Path]) -> _Trie:
        root = cls()
        for path in paths:
            node = root
            for element in path:
                node = node.children.setdefault(element, cls())
            node.member = True
        return root

    def fields_v1(self) -> dict[str, Any]:
        """The ``fieldsV1`` encoding: ``.`` marks a member that also has children."""
        out: dict[str, Any] = {".": {}} if self.member and self.children else {}
        for element in sorted(self.children, key=_element_order):
            out[element] = self.children[element].fields_v1()
        return out

    def paths(self, prefix: Path = ()) -> Iterator[Path]:
        """Every path, in structured-merge-diff's order: a level's members, then deeper."""
        ordered = sorted(self.children, key=_element_order)
        for element in ordered:
            if self.children[element].member:
                yield (*prefix, element)
        for element in ordered:
            yield from self.children[element].paths((*prefix, element))


def _decode_fields(node: Any, prefix: Path, out: set[Path]) -> None:
    if not isinstance(node, dict):
        raise _ManagedFieldsError("fieldsV1 must be an object of objects")
    for key, child in node.items():
        if key == ".":
            if prefix:
                out.add(prefix)
            continue
        path = (*prefix, _canonical_element(key))
        if isinstance(child, dict) and not child:
            out.add(path)
        else:
            _decode_fields(child, path, out)


# --------------------------------------------------------------- managers

ManagerKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class _Entry:
    """One ``managedFields`` entry, its fields decoded."""

    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    fields: frozenset[Path]

    @property
    def key(self) -> ManagerKey:
        """What identifies a manager: appliers regardless of the apiVersion they used."""
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def describe(self) -> str:
        """The manager as a conflict message names it."""
        text = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource, ensure_ascii=False)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
            if self.time:
                text += f" at {self.time}"
        return text

    def encode(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time is not None:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = _Trie.of(self.fields).fields_v1()
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


Managers = dict[ManagerKey, _Entry]


def _decode(raw: Any) -> Managers:
    """The managers of a ``managedFields`` value (absent or null: none)."""
    if raw is None or raw is _MISSING:
        return {}
    if not isinstance(raw, list):
        raise _ManagedFieldsError("managedFields must be a list")
    managers: Managers = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _ManagedFieldsError(f"entry {index} is not an object")
        operation = item.get("operation")
        if operation not in ("Apply", "Update"):
            raise _ManagedFieldsError("operation must be `Apply` or `Update`")
        api_version = item.get("apiVersion")
        if not isinstance(api_version, str) or not api_version:
            raise _ManagedFieldsError("apiVersion must not be empty")
        if item.get("fieldsType") != "FieldsV1":
            raise _ManagedFieldsError(f"invalid fieldsType in managed fields entry {index}")
        fields: set[Path] = set()
        _decode_fields(item.get("fieldsV1") or {}, (), fields)
        time = item.get("time")
        entry = _Entry(
            manager=str(item.get("manager") or ""),
            operation=operation,
            api_version=api_version,
            subresource=str(item.get("subresource") or ""),
            time=time if isinstance(time, str) else None,
            fields=frozenset(fields),
        )
        managers[entry.key] = entry
    return managers


def _encode(managers: Managers) -> ManagedFields | None:
    """``managedFields`` in kube-apiserver's order: appliers first, then by time and name."""
    if not managers:
        return None
    ordered = sorted(
        managers.values(),
        key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource),
    )
    return [entry.encode() for entry in ordered]


def _body(obj: Object) -> Object:
    """An object without ``metadata.managedFields`` (never owned, never compared)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def _with_named_ancestors(paths: Iterable[Path]) -> set[Path]:
    """The paths and every field they are in (structured-merge-diff's
    EnsureNamedFieldsAreMembers, with every object treated as having named fields)."""
    out = set(paths)
    for path in list(out):
        for end in range(1, len(path)):
            if path[end - 1].startswith("f:"):
                out.add(path[:end])
    return out


def _update_managers(
    schema: FieldSchema, managers: Managers, old: Object, new: Object, manager: str, now: str
) -> Managers:
    """Managers after an update by ``manager``: it owns what it changed, others lose that."""
    diff = schema.compare(old, new).kept(schema.keeps)
    changed = diff.added | diff.modified
    out: Managers = {}
    for key, entry in managers.items():
        fields = entry.fields - changed - diff.removed
        if fields:
            out[key] = replace(entry, fields=fields)
    taken = changed - _STRIPPED
    if taken:
        entry = _Entry(
            manager, "Update", schema.api_version, schema.subresource, now, frozenset(taken)
        )
        previous = out.get(entry.key)
        if previous is not None:
            entry = replace(entry, fields=entry.fields | previous.fields)
        out[entry.key] = entry
    return out


def _is_reset(requested: Any) -> bool:
    return isinstance(requested, list) and requested in ([], [{}])


def track_update(
    schema: FieldSchema, old: Object | None, new: Object, manager: str, *, now: str
) -> ManagedFields | None:
    """The ``managedFields`` to store ``new`` with, after a non-apply write by ``manager``.

    Follows kube-apiserver: ``managedFields`` sent in the request replace the stored ones
    (``[]`` or ``[{}]`` clear them; absent or invalid keep them; the status endpoint
    ignores them); an existing object without managed fields is not tracked (until its
    first apply); a create always is.

    Args:
        schema: the resource at this endpoint.
        old: the stored object (None for a create).
        new: the object about to be stored; its ``metadata.managedFields`` is the request's.
        manager: the writer's field manager.
        now: the time to stamp on the writer's entry.
    """
    live_fields = old.get("metadata", {}).get("managedFields") if old is not None else None
    requested = new.get("metadata", {}).get("managedFields", _MISSING)
    managers: Managers = {}
    if schema.subresource or not _is_reset(requested):
        try:
            managers = {} if schema.subresource else _decode(requested)
        except _ManagedFieldsError:
            managers = {}
        if not managers:
            try:
                managers = _decode(live_fields)
            except _ManagedFieldsError:
                managers = {}
    if not managers and old is not None:
        return None
    try:
        updated = _update_managers(schema, managers, _body(old or {}), _body(new), manager, now)
    except _SchemaError:
        # kube-apiserver keeps the stored managedFields when it cannot compute new ones.
        return live_fields if isinstance(live_fields, list) else None
    return _encode(updated)


def _gvk(api_version: Any, kind: Any) -> str:
    group, _, version = (api_version if isinstance(api_version, str) else "").rpartition("/")
    return f"{group}/{version}, Kind={kind if isinstance(kind, str) else ''}"


def apply(
    schema: FieldSchema,
    live: Object | None,
    config: Object,
    manager: str,
    *,
    force: bool,
    now: str,
) -> tuple[Object, ManagedFields | None]:
    """Server-side apply ``config`` as ``manager`` onto ``live`` (None: create it).

    Returns the new object (without ``managedFields``) and its ``managedFields``.

    Raises:
        StatusError: 400 for a configuration of another kind or version, or one with
            ``managedFields``; 409 Conflict when it changes fields other managers own
            (unless ``force``); 500 when an associative list item lacks its keys.
    """
    if (config.get("apiVersion"), config.get("kind")) != (schema.api_version, schema.kind):
        raise StatusError(
            400, f"invalid object type: {_gvk(config.get('apiVersion'), config.get('kind'))}"
        )
    meta = config.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise StatusError(400, "metadata.managedFields must be nil")
    current = _body(live) if live is not None else {}
    try:
        managers = _decode(live.get("metadata", {}).get("managedFields")) if live else {}
    except _ManagedFieldsError as exc:
        raise StatusError(
            500, f"Internal error occurred: failed to decode managed fields: {exc}"
        ) from None
    config = schema.scoped(config)
    try:
        if live is not None and not managers:
            # Whoever wrote the fields of an untracked object keeps them, as one manager.
            managers = _update_managers(schema, {}, {}, current, BEFORE_FIRST_APPLY, now)
        applied = frozenset(p for p in schema.field_set(config) if schema.keeps(p))
        merged = schema.merge(current, config)
        key: ManagerKey = (manager, "Apply", "", schema.subresource)
        last = managers.get(key)
        time = last.time if last is not None else None
        managers[key] = _Entry(
            manager, "Apply", schema.api_version, schema.subresource, time, applied
        )
        if last is not None:
            owned = _with_named_ancestors(p for e in managers.values() for p in e.fields)
            dropped = _with_named_ancestors(last.fields) - owned
            if dropped:
                merged = schema.remove(merged, dropped)
        diff = schema.compare(current, merged).kept(schema.keeps)
    except _SchemaError as exc:
        name = f"{(meta or {}).get('namespace', '')}/{(meta or {}).get('name', '')}"
        raise StatusError(
            500,
            f"Internal error occurred: failed to create typed patch object "
            f"({name}; {_gvk(schema.api_version, schema.kind)}): {exc}",
        ) from None
    changed = diff.added | diff.modified
    conflicts = {
        k: e.fields & changed for k, e in managers.items() if k != key and e.fields & changed
    }
    if conflicts and not force:
        raise _conflict_error([(managers[k], fields) for k, fields in sorted(conflicts.items())])
    result: Managers = {}
    for k, entry in managers.items():
        fields = entry.fields - diff.removed if k != key else entry.fields - _STRIPPED
        fields -= conflicts.get(k, frozenset())
        if not fields:
            continue
        time = now if k == key and merged != current else entry.time
        result[k] = replace(entry, fields=fields, time=time)
    return merged, _encode(result)


def _conflict_error(conflicts: list[tuple[_Entry, frozenset[Path]]]) -> StatusError:
    """409 Conflict naming every conflicting field and its manager, as kube-apiserver words it."""
    pairs = [(entry, path) for entry, fields in conflicts for path in _Trie.of(fields).paths()]
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {entry.describe()}",
            "field": path_string(path),
        }
        for entry, path in pairs
    ]
    if len(pairs) == 1:
        entry, path = pairs[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {entry.describe()}: {path_string(path)}"
        )
    else:
        lines: list[str] = []
        for entry, fields in conflicts:
            lines.append(f"conflicts with {entry.describe()}:")
            lines.extend(f"- {path_string(path)}" for path in _Trie.of(fields).paths())
        message = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
    return StatusError(409, message, reason="Conflict", details={"causes": causes})
