"""Object references: ``ObjectRef`` (name, namespace, kind, group) and the key a store files an object under."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from .events import Object

__all__ = ["Key", "ObjectRef", "key_of", "matches_ref"]

Key: TypeAlias = tuple[str | None, str]
"""How the store keys an object: ``(namespace or None, name)``."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A hashable reference to one object: name, namespace, and optionally kind and group.

    ``namespace`` is ``None`` for cluster-scoped objects (an empty string is read as
    ``None``). A store looks objects up by name and namespace; when ``kind`` (or
    ``group``) is set, it must also match the object's, if the object carries one.

    Args:
        name: ``metadata.name``.
        namespace: ``metadata.namespace``; ``None`` for cluster-scoped objects.
        kind: the object kind, e.g. ``"Pod"``; empty when unknown.
        group: the API group, ``""`` for the core group.

    Example:
        >>> ref = ObjectRef("web", "default", kind="Pod")
        >>> str(ref)
        'Pod default/web'
        >>> ref == ObjectRef.from_obj(
        ...     {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "web", "namespace": "default"}}
        ... )
        True
    """

    name: str
    namespace: str | None = None
    kind: str = ""
    group: str = ""

    def __post_init__(self) -> None:
        if self.namespace == "":
            object.__setattr__(self, "namespace", None)

    @classmethod
    def from_obj(cls, obj: Object) -> ObjectRef:
        """The reference of an object: its name, namespace, kind and group.

        Example:
            >>> ObjectRef.from_obj({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1"}})
            ObjectRef(name='n1', namespace=None, kind='Node', group='')
        """
        meta = obj.get("metadata") or {}
        group, slash, _ = str(obj.get("apiVersion", "")).rpartition("/")
        return cls(
            str(meta.get("name", "")),
            meta.get("namespace") or None,
            str(obj.get("kind", "")),
            group if slash else "",
        )

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        kind = f"{self.kind}.{self.group}" if self.kind and self.group else self.kind
        return f"{kind} {where}" if kind else where


def key_of(obj: Object) -> Key:
    try:
        meta = obj["metadata"]
        return (meta.get("namespace") or None, meta["name"])
    except (KeyError, TypeError, AttributeError):
        raise ValueError(
            f"a store needs objects with metadata.name; got {str(obj)[:200]}"
        ) from None


def matches_ref(obj: Object, ref: ObjectRef) -> bool:
    """Whether an object found by name and namespace also has the ref's kind and group."""
    if ref.kind and obj.get("kind", ref.kind) != ref.kind:
        return False
    if ref.group and "apiVersion" in obj:
        group, slash, _ = str(obj["apiVersion"]).rpartition("/")
        return (group if slash else "") == ref.group
    return True
