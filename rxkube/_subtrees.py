"""One copy of each equal part of a store's objects, found by its JSON encoding.

A pod decoded by orjson takes about five times its JSON, and much of it repeats from
object to object: every object's ``managedFields`` holds the same field sets as its
siblings', and every pod of a ReplicaSet has the same containers, volumes, tolerations
and conditions. The store's writer hands each new object to :meth:`SharedSubtrees.share`,
which replaces each part (a dict or a list) equal to one an earlier object had by that
earlier part, so the store holds it once. By default only the parts of
``metadata.managedFields`` are looked at (``store(share_subtrees="managedFields")``:
about a third of a decoded pod, and most of its containers); ``share_subtrees=True``
looks at every part.

Finding a twin costs one ``orjson.dumps`` of the part and one dict look-up, both in C,
and an equality check when one is found: no Python step per value. Parts are tried from
the top down and a part found is not descended into, so the objects of one workload cost
a few encodings each; a part not found is descended into, to a fixed depth, so the equal
parts of a part that differs (the ``fieldsV1`` of a ``managedFields`` entry whose ``time``
differs) are found too.

A watch's update is shared too: each of its parts is compared with the previous version's
first (no encoding), a list of dicts item by item (``managedFields``, where a write
changes its writer's entry only, is compared once, not once whole and again entry by
entry), so an update keeps what it kept and costs about one comparison of its
``managedFields`` (in C, about 17 instructions a byte of their JSON against the 45 that
decoding them cost). Not sharing updates was tried: it saves that comparison, but every
update then holds its own parts again, so a store whose pods have all been updated once
holds as much as one that shares nothing (23.1 KiB a pod against 16.4 for the benchmark's
5,000), and until then each event adds containers that the cyclic collector's full
collections walk (two of them in 5,000 events at 10,000 pods, more than the comparison).

Why sharing costs no list CPU: each listed object is decoded and shared before the next
one is decoded (``rxkube.protocol`` cuts a list page into its items), so its duplicate
parts are freed at once by their reference counts. They never reach the cyclic
collector's older generations, they do not count towards its next collection, and the
store keeps fewer containers (30 a pod instead of 51 for the benchmark's), so full
collections, the bulk of a list's CPU, come less often and walk fewer objects. Sharing
``managedFields`` this way took a list of 10,000 pods from 1,405 young and 7 full
collections to 741 and 5. (A page decoded whole, as before, kept every duplicate alive
until its last item was shared: they reached the oldest generation, and sharing cost
+16% CPU.) Every part looked at costs CPU even when it finds no twin, so
``share_subtrees=True`` still costs more (see ``docs/performance.md``).

The shared parts are safe because cached objects are never changed: the writer replaces
objects, readers get copies, ``modify()`` before the store sees an object before it is
shared, and objects in the stream after ``reflect()`` must not be mutated (a change would
reach every object that shares the part). Values other than JSON's are never taken for
the JSON they encode to: a part is encoded with JSON's own types only (a subclass of dict
or str, a datetime or a dataclass makes it refuse, and the part is left as it is), and a
twin must also compare equal (a tuple never equals the list it encodes as). A part equal
to the previous version's is taken without a look-up; when every part is looked at, it
must be the same (``rxkube._equality.same``: equal, with ``1``, ``1.0`` and ``true`` told
apart). ``managedFields`` holds strings and empty objects only, as kube-apiserver writes it
(field sets are sets of paths), so there ``==`` is exact and the default spends nothing
more. The one kind of value that encodes as JSON and equals a JSON value while being
something else is an enum member with a string or number value: put such members in with
``modify()`` only in a store made with ``share_subtrees=False``.
"""

from __future__ import annotations

from typing import Any

import orjson

from ._equality import JSON_ONLY, same

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
                update costs about one comparison of what it looks at.
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
            elif type(before) is not dict or not self._update(meta, before):
                self._parts(meta, 2, before, only="managedFields")
        if self._everything:
            self._parts(obj, 1, previous, skip="metadata")

    def _update(self, meta: dict[str, Any], before: dict[str, Any]) -> bool:
        """Share the ``managedFields`` of an update, entry by entry, with those of the
        version ``before`` it; False if they are not two lists of as many entries, each a
        dict (the general walk then takes them).

        What :meth:`_parts` does for them, without its steps for every other shape: an
        update changes its writer's entry only, so this is the path of nearly every
        event.
        """
        fields = meta.get("managedFields")
        previous = before.get("managedFields")
        if type(fields) is not list or type(previous) is not list or len(fields) != len(previous):
            return False
        kept = True
        for index, entry in enumerate(fields):
            old = previous[index]
            if type(entry) is not dict or type(old) is not dict:
                return False
            if entry == old:
                fields[index] = old
            else:
                kept = False
                self._parts(entry, 4, old)
        if kept:
            meta["managedFields"] = previous
        return True

    def _parts(
        self,
        parent: dict[str, Any] | list[Any],
        depth: int,
        previous: Any = None,
        skip: str | None = None,
        only: str | None = None,
    ) -> bool:
        """Share each dict or list in ``parent`` (at ``depth``), descending into new ones.

        ``previous`` is what held ``parent``'s place in the previous version, if anything;
        ``skip`` a key of ``parent`` not to look at, ``only`` the one key to look at.
        Returns whether every item of ``parent`` is now its counterpart in ``previous``
        (so the two are equal): only a list of dicts or lists can answer yes.
        """
        young, old = self._young, self._old
        strict = self._everything
        if type(previous) is not type(parent):
            previous = None
        kept = previous is not None
        in_dict = type(parent) is dict
        items: Any = parent.items() if in_dict else enumerate(parent)  # type: ignore[union-attr]
        if only is not None:
            items = [(only, parent[only])] if only in parent else []  # type: ignore[call-overload]
        for key, part in items:
            kind = type(part)
            if (kind is not dict and kind is not list) or not part or key == skip:
                kept = False
                continue
            if previous is not None:
                if in_dict:
                    before = previous.get(key)
                else:
                    before = previous[key] if key < len(previous) else None
                if type(before) is kind:
                    if (
                        kind is list
                        and depth < _DEEPEST
                        and len(before) == len(part)
                        and type(part[0]) is dict
                    ):
                        # Item by item (managedFields: one entry changed, the writer's):
                        # comparing the whole list first would compare the entries that
                        # did not change twice, once there and once in the descent.
                        if self._parts(part, depth + 1, before):
                            parent[key] = before
                        else:
                            kept = False
                        continue
                    if same(before, part) if strict else before == part:
                        parent[key] = before
                        continue
                    kept = False
                    if depth < _DEEPEST:
                        self._parts(part, depth + 1, before)
                        continue
            kept = False
            try:
                digest = hash(_dumps(part, option=JSON_ONLY))
            except TypeError:  # not JSON (a set, a subclass, a datetime): left as it is
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
        return kept
