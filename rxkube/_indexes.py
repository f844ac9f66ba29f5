"""Store indexes: index functions (by namespace, label, owner) and the index a store keeps up to date."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from ._object_ref import Key, ObjectRef
from .events import Object

__all__ = ["Index", "IndexFn", "index_label", "index_namespace", "index_owner_uid"]

IndexFn: TypeAlias = Callable[[Object], "str | Iterable[str] | None"]
"""An index function: the index keys of an object (one string, several, or None for none)."""


def index_namespace(obj: Object) -> str | None:
    """Index function: an object's namespace (cluster-scoped objects are not indexed).

    Example:
        >>> from rxkube import store
        >>> from rxkube.events import Apply
        >>> reader, writer = store()
        >>> reader.add_index("namespace", index_namespace)
        >>> writer.apply(Apply({"metadata": {"name": "web", "namespace": "prod"}}))
        >>> [o["metadata"]["name"] for o in reader.by_index("namespace", "prod")]
        ['web']
    """
    namespace: str | None = obj["metadata"].get("namespace")
    return namespace or None


def index_label(key: str) -> IndexFn:
    """Index function factory: the value of one label (objects without it are not indexed).

    Args:
        key: the label key, e.g. ``"app"``.

    Example:
        >>> from rxkube import store
        >>> from rxkube.events import Apply
        >>> reader, writer = store()
        >>> reader.add_index("app", index_label("app"))
        >>> writer.apply(Apply({"metadata": {"name": "a", "labels": {"app": "web"}}}))
        >>> len(reader.by_index("app", "web"))
        1

    Raises:
        TypeError: ``key`` is not a string.
    """
    if not isinstance(key, str):
        raise TypeError(f"index_label() takes a label key such as 'app', not {key!r:.60}")

    def by_label(obj: Object) -> str | None:
        labels = obj["metadata"].get("labels")
        return labels.get(key) if labels else None

    by_label.__name__ = f"index_label_{key}"
    return by_label


def index_owner_uid(obj: Object) -> list[str]:
    """Index function: the uid of every owner in ``metadata.ownerReferences``.

    Example:
        >>> from rxkube import store
        >>> from rxkube.events import Apply
        >>> reader, writer = store()
        >>> reader.add_index("owner", index_owner_uid)
        >>> pod = {"metadata": {"name": "p", "ownerReferences": [{"uid": "rs-1"}]}}
        >>> writer.apply(Apply(pod))
        >>> reader.by_index("owner", "rs-1") == [pod]
        True
    """
    owners = obj["metadata"].get("ownerReferences") or ()
    return [ref["uid"] for ref in owners if "uid" in ref]


_NOT_KEYS = (bytes, bytearray, memoryview)
"""Iterables that are no collection of keys: bytes iterate as integers."""


class Index:
    """One index: key -> the objects under it, and object -> its keys (to undo them)."""

    __slots__ = ("buckets", "fn", "keys_of", "name")

    def __init__(self, name: str, fn: IndexFn) -> None:
        self.name = name
        self.fn = fn
        self.buckets: dict[str, dict[Key, Any]] = {}  # what the store holds
        # The keys each object was filed under, so that an update or delete removes
        # exactly those even if the index function would now answer differently.
        self.keys_of: dict[Key, tuple[str, ...]] = {}

    def keys_for(self, obj: Object) -> tuple[str, ...]:
        """The keys the index function files ``obj`` under, each checked to be a string.

        Called before the store's lock is taken, so that filing them under it cannot
        fail halfway (a list as a key would be filed in the indexes before this one and
        not in the rest).

        Raises:
            TypeError: the function answered something other than a string, strings or
                ``None`` (``bytes`` too: their items are integers); the message names
                the index, the object and the answer.
            Exception: whatever the function raised, with a note naming the index and
                the object.
        """
        try:
            keys = self.fn(obj)
            if keys is None:
                return ()
            if isinstance(keys, str):
                return (keys,)
            # Iterating a generator runs user code too: under the same note.
            refused = isinstance(keys, _NOT_KEYS) or not isinstance(keys, Iterable)
            filed = None if refused else tuple(keys)
        except Exception as exc:
            exc.add_note(f"in index {self.name!r} of object {ObjectRef.from_obj(obj)}")
            raise
        where = f"index {self.name!r} of object {ObjectRef.from_obj(obj)}"
        if filed is None:
            raise TypeError(
                f"{where}: the index function answered {type(keys).__name__} {keys!r:.60};"
                " it must answer a string, strings or None"
            )
        for key in filed:
            if not isinstance(key, str):
                raise TypeError(
                    f"{where}: an index key must be a string, not {type(key).__name__} {key!r:.60}"
                )
        return filed

    def put(self, key: Key, obj: Any, keys: tuple[str, ...]) -> None:
        old = self.keys_of.get(key)
        if old:
            self._unfile(key, (k for k in old if k not in keys))
        if keys:
            self.keys_of[key] = keys
            buckets = self.buckets
            for index_key in keys:
                bucket = buckets.get(index_key)
                if bucket is None:
                    buckets[index_key] = {key: obj}
                else:
                    bucket[key] = obj
        elif old:
            del self.keys_of[key]

    def remove(self, key: Key) -> None:
        old = self.keys_of.pop(key, None)
        if old:
            self._unfile(key, old)

    def _unfile(self, key: Key, index_keys: Iterable[str]) -> None:
        buckets = self.buckets
        for index_key in index_keys:
            bucket = buckets.get(index_key)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del buckets[index_key]

    def rebuilt(
        self, objects: dict[Key, Any], peek: Callable[[Any], Object] | None = None
    ) -> Index:
        """A new index of the same function over ``objects``.

        ``peek`` turns what a store holds into the object the function sees (a compact
        store decodes its encodings); the index files what is held.
        """
        index = Index(self.name, self.fn)
        for key, held in objects.items():
            index.put(key, held, index.keys_for(held if peek is None else peek(held)))
        return index
