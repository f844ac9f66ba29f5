"""Views served from a wider watch: which watch covers which request, and the filter.

Pure: no I/O, no threads, no clock. ``SharedWatches`` (``_shared_watches.py``) drives it.
A request names a resource, a namespace (or all), label and field requirements and
whether only metadata is wanted: a :class:`ViewKey`. A watch opened for one key covers
another (:func:`covers`) when everything the narrower one selects is among what the
watch delivers; :class:`ViewFilter` then turns the watch's events into exactly the events
a watch of the narrower key would have received from the API server. The rules and
their proofs are in ``docs/shared-watches.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from .events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from .resource import Resource, check_path_segment
from .selectors import FieldRequirement, FieldSelector, LabelRequirement, LabelSelector

_Key: TypeAlias = tuple[str | None, str]
"""An object's identity in a view: ``(namespace or None, name)``, as a store keys it."""

LOCAL_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
"""Field paths matched client-side: the only ones whose selector value is, by definition
on every resource, the object's own field. Other selectable fields are computed by each
resource's server-side strategy and may differ from the JSON path."""

PARTIAL_KIND = "PartialObjectMetadata"
PARTIAL_API_VERSION = "meta.k8s.io/v1"


def _normal(req: LabelRequirement) -> LabelRequirement:
    """One spelling per meaning: ``k in (v)`` is ``k=v``, ``k notin (v)`` is ``k!=v``."""
    if req.operator == "in" and len(req.values) == 1:
        return LabelRequirement(req.key, "=", req.values)
    if req.operator == "notin" and len(req.values) == 1:
        return LabelRequirement(req.key, "!=", req.values)
    return req


def _sort_key(req: LabelRequirement | FieldRequirement) -> str:
    return str(req)


@dataclass(frozen=True, slots=True)
class ViewKey:
    """What one request selects, normalized so that equal requests have equal keys.

    Attributes:
        resource: the resource.
        namespace: one namespace, or ``None`` for all (always ``None`` when cluster-scoped).
        labels: the label requirements (their AND).
        fields: the field requirements (their AND).
        metadata_only: objects as ``PartialObjectMetadata``.
    """

    resource: Resource
    namespace: str | None
    labels: frozenset[LabelRequirement]
    fields: frozenset[FieldRequirement]
    metadata_only: bool

    @classmethod
    def of(
        cls,
        resource: Resource,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        metadata_only: bool,
    ) -> ViewKey:
        """The key of a request.

        Raises:
            ValueError: a selector is invalid, or the namespace cannot be a path segment
                (the message names it).
        """
        if namespace:
            check_path_segment("namespace", namespace)
        labels = LabelSelector.parse(label_selector or "")
        fields = FieldSelector.parse(field_selector or "")
        return cls(
            resource,
            (namespace or None) if resource.namespaced else None,
            frozenset(_normal(req) for req in labels),
            frozenset(fields),
            bool(metadata_only),
        )

    @property
    def label_selector(self) -> str | None:
        """The label selector to send to the server (canonical), or ``None``."""
        return ",".join(sorted(map(str, self.labels))) or None

    @property
    def field_selector(self) -> str | None:
        """The field selector to send to the server (canonical), or ``None``."""
        return ",".join(sorted(map(str, self.fields))) or None

    def __str__(self) -> str:
        parts = [self.resource.full_name]
        parts.append(f"in {self.namespace}" if self.namespace else "in all namespaces")
        if self.labels:
            parts.append(f"labels {self.label_selector!r}")
        if self.fields:
            parts.append(f"fields {self.field_selector!r}")
        if self.metadata_only:
            parts.append("metadata only")
        return " ".join(parts)


def implies(have: LabelRequirement, need: LabelRequirement) -> bool:
    """Whether every label set satisfying ``have`` satisfies ``need`` (a sound, partial test).

    Example:
        >>> r = LabelSelector.parse("app=web,tier").requirements
        >>> implies(r[0], LabelSelector.parse("app in (web,db)").requirements[0])
        True
        >>> implies(r[1], LabelSelector.parse("tier=x").requirements[0])
        False
    """
    if have == need:
        return True
    if have.key != need.key:
        return False
    h, n = have.operator, need.operator
    hv, nv = set(have.values), set(need.values)
    if n == "exists":
        return h in ("=", "in", "exists", "gt", "lt")
    if n in ("=", "in"):
        return h in ("=", "in") and hv <= nv
    if n in ("!=", "notin"):
        if h in ("!=", "notin"):
            return nv <= hv
        if h in ("=", "in"):
            return not hv & nv
        return h == "!"
    if n == "gt":
        return h == "gt" and int(have.values[0]) >= int(need.values[0])
    if n == "lt":
        return h == "lt" and int(have.values[0]) <= int(need.values[0])
    return False  # n == "!": only "!" itself implies it, handled by equality


def covers(wide: ViewKey, narrow: ViewKey) -> bool:
    """Whether a watch opened for ``wide`` can serve ``narrow`` by filtering locally.

    Same resource; ``wide`` is cluster-wide or in ``narrow``'s namespace; each of
    ``wide``'s label requirements is implied by one of ``narrow``'s; ``wide``'s field
    requirements are among ``narrow``'s and the others are on ``metadata.name`` or
    ``metadata.namespace``; ``wide`` is full unless ``narrow`` is metadata-only.
    """
    if wide.resource != narrow.resource:
        return False
    if wide.namespace is not None and wide.namespace != narrow.namespace:
        return False
    if wide.metadata_only and not narrow.metadata_only:
        return False
    if not wide.fields <= narrow.fields:
        return False
    for extra in narrow.fields - wide.fields:
        if extra.field not in LOCAL_FIELDS:
            return False
        if extra.field == "metadata.namespace" and not narrow.resource.namespaced:
            return False  # the server refuses it: a watch of its own will say so
    return all(any(implies(have, need) for have in narrow.labels) for need in wide.labels)


def absorbs(wide: ViewKey, narrow: ViewKey) -> bool:
    """Whether ``wide`` obviously should take over a watch of ``narrow``: same namespace,
    and ``wide``'s requirements are literally a subset of ``narrow``'s."""
    return (
        covers(wide, narrow)
        and wide.namespace == narrow.namespace
        and wide.labels <= narrow.labels
        and wide != narrow
    )


def breadth(key: ViewKey) -> tuple[int, int]:
    """An order where a covering key sorts before what it covers (widest first)."""
    return (key.namespace is not None, len(key.labels) + len(key.fields) + key.metadata_only)


def metadata_of(obj: Object) -> Object:
    """An object as a ``PartialObjectMetadata``, the shape metadata-only watches receive."""
    return {"kind": PARTIAL_KIND, "apiVersion": PARTIAL_API_VERSION, "metadata": obj["metadata"]}


def _key_of(obj: Mapping[str, Any]) -> _Key:
    meta = obj["metadata"]
    return (meta.get("namespace") or None, meta["name"])


class ViewFilter:
    """One view's membership, and the step that filters a covering watch's events into it.

    ``members`` holds what the view's stream has delivered (``None`` until a first list
    completed); ``pending`` the relist in progress. Both map an object's key to the object
    as the view delivered it.

    Args:
        watch: the key of the watch feeding the filter.
        view: the key of the view; ``covers(watch, view)`` must hold.
    """

    __slots__ = ("_fields", "_labels", "_namespace", "_to_meta", "members", "pending")

    def __init__(self, watch: ViewKey, view: ViewKey) -> None:
        self.members: dict[_Key, Object] | None = None
        self.pending: dict[_Key, Object] | None = None
        self._namespace: str | None = None
        self._labels: tuple[LabelRequirement, ...] = ()
        self._fields: tuple[FieldRequirement, ...] = ()
        self._to_meta = False
        self.retarget(watch, view)

    def retarget(self, watch: ViewKey, view: ViewKey) -> None:
        """Filter events of another watch (that also covers ``view``) from now on."""
        if not covers(watch, view):
            raise ValueError(f"a watch of {watch} cannot serve {view}")
        self._namespace = view.namespace if watch.namespace is None else None
        self._labels = tuple(sorted(view.labels - watch.labels, key=_sort_key))
        self._fields = tuple(sorted(view.fields - watch.fields, key=_sort_key))
        self._to_meta = view.metadata_only and not watch.metadata_only

    @property
    def identity(self) -> bool:
        """Whether every event passes unchanged (the view is the watch's own key)."""
        return not (self._namespace or self._labels or self._fields or self._to_meta)

    def matches(self, obj: Object) -> bool:
        """Whether an object the watch delivered is in the view."""
        meta = obj["metadata"]
        if self._namespace is not None and meta.get("namespace") != self._namespace:
            return False
        if self._labels:
            labels = meta.get("labels") or {}
            if not all(req.matches(labels) for req in self._labels):
                return False
        return all(req.matches(obj) for req in self._fields)

    def _shape(self, obj: Object) -> Object:
        return metadata_of(obj) if self._to_meta else obj

    def seed(self, source: ViewFilter) -> None:
        """Take the state of another filter of the same watch, restricted to this view."""
        self.members = self._restrict(source.members)
        self.pending = self._restrict(source.pending)

    def _restrict(self, objects: dict[_Key, Object] | None) -> dict[_Key, Object] | None:
        if objects is None:
            return None
        if self.identity:
            return dict(objects)
        return {key: self._shape(obj) for key, obj in objects.items() if self.matches(obj)}

    def snapshot(self) -> list[Event]:
        """The events that bring a new subscriber to the view's current state.

        ``Init``, ``InitApply`` per member, ``InitDone`` once a list has completed; then,
        if a relist is in progress, ``Init`` and what it has listed so far (its
        ``InitDone`` comes with the stream).
        """
        events: list[Event] = []
        if self.members is not None:
            events.append(Init())
            events.extend(InitApply(obj) for obj in self.members.values())
            events.append(InitDone())
        if self.pending is not None:
            events.append(Init())
            events.extend(InitApply(obj) for obj in self.pending.values())
        return events

    def step(self, event: Event) -> list[Event]:
        """The view's events for one event of the watch (possibly none)."""
        if isinstance(event, Apply):
            obj = event.obj
            key = _key_of(obj)
            members = self._live()
            if self.matches(obj):
                shaped = self._shape(obj)
                members[key] = shaped
                return [Apply(shaped)]
            prev = members.pop(key, None)
            if prev is None:
                return []
            # It stopped matching: the server sends DELETED with the previous state
            # stamped with the change's resourceVersion.
            rv = obj["metadata"].get("resourceVersion")
            return [Delete({**prev, "metadata": {**prev["metadata"], "resourceVersion": rv}})]
        if isinstance(event, Delete):
            key = _key_of(event.obj)
            if self._live().pop(key, None) is None:
                return []
            return [Delete(self._shape(event.obj))]
        if isinstance(event, InitApply):
            obj = event.obj
            if self.pending is None:
                self.pending = {}
            if not self.matches(obj):
                return []
            shaped = self._shape(obj)
            self.pending[_key_of(obj)] = shaped
            return [InitApply(shaped)]
        if isinstance(event, Init):
            self.pending = {}
            return [event]
        if isinstance(event, InitDone):
            self.members, self.pending = self.pending or {}, None
            return [event]
        raise TypeError(f"not a watch event: {event!r}")

    def _live(self) -> dict[_Key, Object]:
        if self.members is None:
            self.members = {}
        return self.members
