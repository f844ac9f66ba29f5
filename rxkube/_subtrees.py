"""One copy of each equal part of a store's objects, found by its JSON encoding.

A pod decoded by orjson takes about five times its JSON, and most of it repeats from
object to object: every pod of a ReplicaSet has the same containers, volumes,
tolerations and conditions, and every object's ``managedFields`` holds the same field
sets as its siblings'. The store's writer hands each new object to
:meth:`SharedSubtrees.share`, which replaces each part (a dict or a list) equal to one an
earlier object had by that earlier part, so the store holds it once
(``store(share_subtrees=True)``; ``"managedFields"`` looks only at the parts of
``metadata.managedFields``, about a third of a decoded pod; off by default, for its CPU).

Finding a twin costs one ``orjson.dumps`` of the part and one dict look-up, both in C,
and an equality check when one is found: no Python step per value. Parts are tried from
the top down and a part found is not descended into, so the objects of one workload cost
a few encodings each; a part not found is descended into, to a fixed depth, so the equal
parts of a part that differs (the ``fieldsV1`` of a ``managedFields`` entry whose ``time``
differs) are found too. For the benchmark's pods, with every part looked at, what a pod
holds of its own falls from ~300 objects (~100 of them dicts and lists) to ~40 (~11), 4.2
KiB instead of 22.8. It costs about a second decode per object (the walk, the encodings,
the comparisons, and freeing the decoded duplicates), and the cyclic collector takes more
on top, even when only ``managedFields`` is looked at: a list page is decoded whole, so its
duplicates reach the collector's oldest generation and count as objects that lived before
they are freed, while the store keeps fewer containers than were decoded. CPython runs a
full collection once that count has grown by a quarter of what the last one kept, so full
collections (the bulk of a list's CPU) come more often. Sharing only after the last page
avoids that, but the freed duplicates are then holes in the allocator's arenas and the
resident memory stays what the unshared objects took (see ``docs/performance.md``).

The shared parts are safe because cached objects are never changed: the writer replaces
objects, readers get copies, and objects in the stream must not be mutated (a change
would reach every object that shares the part). Values other than JSON's (a tuple or a
datetime put in by ``modify()``) are never taken for the JSON they encode to: a twin must
also compare equal, and parts orjson cannot encode are left as they are.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["SharedSubtrees"]

_DEEPEST = 4
"""How deep parts are tried: ``obj[a][b][c][d]`` (a part of ``spec.containers[0]``)."""

_MIN_GENERATION = 1024

_dumps = orjson.dumps


class SharedSubtrees:
    """The parts seen in recent objects, by the hash of their encoding; the writer's alone.

    Two generations bound what it keeps alive: parts go into the young table, and when it
    holds more than the store's objects (plus a margin) it becomes the old one and the
    oldest is dropped; a part found in the old table moves back to the young one. So the
    parts of replaced and deleted objects are let go after about two generations, while
    parts still repeating stay shared.
    """

    __slots__ = ("_everything", "_old", "_young")

    def __init__(self, *, everything: bool = True) -> None:
        """Args:
        everything: share every part; ``False``: only those of ``metadata.managedFields``.
        """
        self._everything = everything
        self._young: dict[int, Any] = {}
        self._old: dict[int, Any] = {}

    def share(self, obj: dict[str, Any], held: int, previous: Any = None) -> None:
        """Replace, in place, each part of ``obj`` equal to a recent one by that one.

        Args:
            obj: an object about to be cached (changed only by swapping equal parts).
            held: how many objects the store holds, to size the generations.
            previous: the version of ``obj`` it replaces, if any: a part equal to the
                previous version's is that part (one comparison, no encoding), so an
                update costs what changed.
        """
        if len(self._young) > held + _MIN_GENERATION:
            self._old, self._young = self._young, {}
        if type(previous) is not dict:
            previous = None
        # metadata names the object (name, uid), so it never equals another object's; its
        # parts do (labels, ownerReferences, managedFields).
        meta = obj.get("metadata")
        if type(meta) is dict:
            before = None if previous is None else previous.get("metadata")
            if self._everything:
                self._parts(meta, 2, before)
            else:
                self._parts(meta, 2, before, only="managedFields")
        if self._everything:
            self._parts(obj, 1, previous, skip="metadata")

    def _parts(
        self,
        parent: dict[str, Any] | list[Any],
        depth: int,
        previous: Any = None,
        skip: str | None = None,
        only: str | None = None,
    ) -> None:
        """Share each dict or list in ``parent`` (at ``depth``), descending into new ones.

        ``previous`` is what held ``parent``'s place in the previous version, if anything;
        ``skip`` a key of ``parent`` not to look at, ``only`` the one key to look at.
        """
        young, old = self._young, self._old
        if type(previous) is not type(parent):
            previous = None
        in_dict = type(parent) is dict
        items: Any = parent.items() if in_dict else enumerate(parent)  # type: ignore[union-attr]
        if only is not None:
            items = [(only, parent[only])] if only in parent else []  # type: ignore[call-overload]
        for key, part in items:
            kind = type(part)
            if (kind is not dict and kind is not list) or not part or key == skip:
                continue
            if previous is not None:
                if in_dict:
                    before = previous.get(key)
                else:
                    before = previous[key] if key < len(previous) else None
                if type(before) is kind:
                    if before == part:
                        parent[key] = before
                        continue
                    if depth < _DEEPEST:
                        self._parts(part, depth + 1, before)
                        continue
            try:
                digest = hash(_dumps(part))
            except TypeError:  # not JSON (a set, a custom object): left as it is
                continue
            twin = young.get(digest)
            if twin is None:
                twin = old.get(digest)
                if twin is not None:
                    young[digest] = twin
            if twin is None:
                young[digest] = part
                if depth < _DEEPEST:
                    self._parts(part, depth + 1)
            elif twin is not part and type(twin) is kind and twin == part:
                parent[key] = twin
