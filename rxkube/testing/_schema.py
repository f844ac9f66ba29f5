"""The apply schema of the test server: which lists are keyed (by which fields), which maps atomic.

kube-apiserver knows every type's schema; here a small table of built-in fields stands
in for it (:class:`FieldSchema`), with the merge, compare and remove operations that
server-side apply (``_apply.py``) runs over it. docs/testing.md lists what it leaves out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from ._fieldpaths import (
    MISSING,
    ListType,
    Object,
    Path,
    PathTrie,
    SchemaError,
    element_string,
    item_element,
    path_string,
)

if TYPE_CHECKING:
    from ._served import ServedResource

_SET = ListType()
_BY_NAME = ListType(("name",))
_CONTAINERS = ("containers", "initContainers", "ephemeralContainers")

_METADATA_LISTS: dict[tuple[str | None, str], ListType] = {
    ("metadata", "finalizers"): _SET,
    ("metadata", "ownerReferences"): ListType(("uid",)),
}
_BUILTIN_LISTS: dict[tuple[str | None, str], ListType] = {
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
    ("spec", "hostAliases"): ListType(("ip",)),
    ("spec", "topologySpreadConstraints"): ListType(("topologyKey", "whenUnsatisfiable")),
    ("spec", "ports"): ListType(("port", "protocol"), (("protocol", "TCP"),)),
    **{
        (c, "ports"): ListType(("containerPort", "protocol"), (("protocol", "TCP"),))
        for c in _CONTAINERS
    },
    **{(c, "env"): _BY_NAME for c in _CONTAINERS},
    **{(c, "volumeMounts"): ListType(("mountPath",)) for c in _CONTAINERS},
    **{(c, "volumeDevices"): ListType(("devicePath",)) for c in _CONTAINERS},
    **{(c, "resizePolicy"): ListType(("resourceName",)) for c in _CONTAINERS},
    ("status", "conditions"): ListType(("type",)),
    ("status", "addresses"): ListType(("type",)),
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

_TEMPLATE = "spec.template.spec.nodeSelector"
_ATOMIC_MAPS: dict[str, frozenset[Path]] = {
    "pods": _paths("spec.nodeSelector"),
    "services": _paths("spec.selector"),
    "replicationcontrollers": _paths("spec.selector", _TEMPLATE),
    "deployments": _paths("spec.selector", _TEMPLATE),
    "replicasets": _paths("spec.selector", _TEMPLATE),
    "statefulsets": _paths(_TEMPLATE),
    "daemonsets": _paths(_TEMPLATE),
    "jobs": _paths(_TEMPLATE),
    "cronjobs": _paths("spec.jobTemplate." + _TEMPLATE),
    "podtemplates": _paths("template.spec.nodeSelector"),
    # ObjectReference is +structType=atomic (core/v1 and events.k8s.io/v1 Events).
    "events": _paths("involvedObject", "related", "regarding"),
}
"""Maps of built-in kinds owned and replaced as a whole (``+structType=atomic``, and
k8s.io/api's ``+mapType=atomic``: a Service's and a ReplicationController's selector, a
pod spec's ``nodeSelector``)."""

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
    lists: Mapping[tuple[str | None, str], ListType]
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
        self, list_type: ListType, items: list[Any], path: Path, *, strict: bool
    ) -> list[tuple[str, Any]]:
        """Each item with its path element; ``strict`` refuses duplicates (applied configs)."""
        out: list[tuple[str, Any]] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            try:
                element = item_element(list_type, item)
            except SchemaError as exc:
                raise SchemaError(f"{path_string(path)}: element {index}: {exc}") from None
            if element in seen and strict:
                raise SchemaError(
                    f"{path_string(path)}: duplicate entries for key {element_string(element)}"
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

        A ``null`` in the configuration is kept, as structured-merge-diff keeps it: the
        object's decoding makes of it what it makes of any ``null`` (a built-in kind's Go
        zero value, a custom resource's schema drops it unless ``nullable``).
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
                out[key] = None
                continue
            child = (*path, f"f:{key}")
            previous = out.get(key, MISSING)
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
        self, live: list[Any], config: list[Any], list_type: ListType, path: Path, name: str
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
            self._compare(value, new.get(key, MISSING), (*path, f"f:{key}"), field, key, diff)
        for key, value in new.items():
            if key not in old:
                self._compare(MISSING, value, (*path, f"f:{key}"), field, key, diff)

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
                before = old_items.get(element, MISSING)
                after = new_items.get(element, MISSING)
                if list_type.keys:
                    self._compare(before, after, (*path, element), name, name, diff)
                else:
                    diff.leaf(before, after, (*path, element))
        else:
            diff.leaf(old, new, path)
            return
        if old is MISSING and path not in self.skeleton:
            diff.added.add(path)
        elif new is MISSING:
            diff.removed.add(path)

    # ------------------------------------------------------------------ remove

    def remove(self, obj: Object, paths: Iterable[Path]) -> Object:
        """``obj`` without the fields at ``paths`` (and what they hold).

        A map or list left empty by the removal goes too.
        """
        return self._remove_map(obj, PathTrie.of(paths), (), None)

    def _remove_map(
        self, obj: Mapping[str, Any], node: PathTrie, path: Path, field: str | None
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
        self, value: Any, node: PathTrie, path: Path, parent: str | None, name: str
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
    return all(v is MISSING or v is None or isinstance(v, kind) for v in values) and any(
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
        if old is MISSING:
            self.added.add(path)
        elif new is MISSING:
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
