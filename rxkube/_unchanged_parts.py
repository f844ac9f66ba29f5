"""Decoding a watch line without decoding the parts the store already holds for its object.

Most watch events of a busy cluster are status updates: a pod's ``MODIFIED`` line repeats its
``spec`` byte for byte, and the field sets (``fieldsV1``) of its ``managedFields`` entries,
though one entry's ``time`` changed: half of a real pod's JSON, and of the cost of decoding
it, plus the store's comparison of the field sets it would otherwise make. For each line,
:class:`UnchangedParts` looks up the object the store holds (by the namespace and name in
the line's bytes). Where the line's bytes at one of those parts are exactly the encoding of
the store's dict, a marker string is spliced in place of them before decoding, and the
marker is swapped for the store's dict. The spec is encoded again for each line (a tenth
of the cost of decoding it; one changed since to other JSON values, which no one should
do, is then not taken for the line's); a field set, which the store holds once for the
objects its writer wrote alike, is encoded once and the encoding kept with the dict (for
the last 1,024 field sets). Values the store was given that are not JSON's own but encode
as JSON (a tuple, an enum member, put in with ``writer.apply()``) are taken for the JSON
they encode to, as the store's own comparison of a relisted object takes them.
Nothing is remembered of objects: what is reused is always what the store holds, so a
relist, a second subscription or a store that swaps parts for their twins never holds a
part twice.

Nothing here trusts the line's shape: a splice is taken only if each marker comes out where
it was meant to (the event object's ``spec``, the ``fieldsV1`` of its n-th ``managedFields``
entry), not inside a string, a nested ``spec``, or the first of two keys; a line it does not
fit is decoded whole. A server whose encoding differs from orjson's (Go writes ``&`` as
``\\u0026``) costs that encoding per event and is decoded whole. Which object the line is
about is read from its bytes (the first ``"namespace"`` and ``"name"`` before its spec) and
checked once decoded; a line about another object is decoded whole.

The store's dicts are handed on, so this relies on what the store relies on: objects in the
stream after ``reflect()`` are not mutated. That is why only ``reflect()`` and
``reflect_shared()`` subscribed straight to a ``watcher()`` decode this way (an operator in
between, such as ``modify()``, may change the objects it is given, and the part it changed
would be the one the store still serves), and only for a store that keeps objects decoded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import orjson

from ._equality import JSON_ONLY
from ._object_ref import Key

__all__ = ["HeldOf", "UnchangedParts"]

_SPEC = b'"spec":{'
_FIELDS = b'"fieldsV1":{'
_MOST_ENTRIES = 16
"""Field sets looked at per line (an object has one ``managedFields`` entry per writer)."""
_MOST_ENCODED = 1024
"""Field set encodings kept: a store shares one dict among the objects written alike."""
_OPENS_AT = len(_SPEC) - 1
_OPENS_AT_FIELDS = len(_FIELDS) - 1
_NAME = b'"name":"'
_NAMESPACE = b'"namespace":"'
_KEY_OPENERS = (ord(","), ord("{"))

_loads = orjson.loads
_dumps = orjson.dumps


HeldOf = Callable[[Key], Any]
"""The object the store holds for a key, if any (anything: it is checked)."""

_Cut = tuple[int, int, int, dict[str, Any]]
"""A part of a line the store holds: where its bytes begin and end, where it goes (the index
of its ``managedFields`` entry, -1 for the spec) and the store's dict."""


class UnchangedParts:
    """Decodes the watch lines of one subscription, reusing the parts its store holds.

    Args:
        held_of: the object the store holds for a key, called on the thread that decodes
            (the watch's, which is also the store's writer).
    """

    __slots__ = ("_encoded", "_held_of", "_markers", "_tokens")

    def __init__(self, held_of: HeldOf) -> None:
        self._held_of = held_of
        # id of a field set → (the field set, its encoding); the dict is held, so its id is
        # not reused while the entry lasts.
        self._encoded: dict[int, tuple[dict[str, Any], bytes]] = {}
        # Random per instance: no server can send them, so finding one where it was put
        # proves the splice landed there.
        token = "rxkube-part-" + os.urandom(12).hex()
        self._tokens = [f"{token}-{n}" for n in range(_MOST_ENTRIES + 1)]
        self._markers = [b'"' + t.encode() + b'"' for t in self._tokens]

    def decode(self, line: bytes) -> Any:
        """``orjson.loads(line)`` for a watch line, reusing the parts the store holds.

        Raises:
            orjson.JSONDecodeError: the line is not JSON.
        """
        find = line.find
        at = find(_SPEC)
        while at > 0 and line[at - 1] not in _KEY_OPENERS:  # inside a string
            at = find(_SPEC, at + 1)
        # Metadata comes before the spec, its keys sorted for a custom resource (so its
        # field sets may come before its name): nothing of it is looked for past the spec.
        spec_at = at + _OPENS_AT if at > 0 else -1
        stop = spec_at if at > 0 else len(line)
        key = _key_in(line, stop)
        if key is not None:
            held = self._held_of(key)
            if type(held) is dict:
                cuts = self._cuts(held, line, spec_at, stop)
                if cuts:
                    decoded = self._spliced(line, cuts, key)
                    if decoded is not None:
                        return decoded
        return _loads(line)

    def adopt(self, item: Any) -> None:
        """Give ``item``, a listed object, the spec the store holds for it if its own
        encodes as that one: a relist of unchanged objects then holds no spec twice (the
        store shares field sets itself)."""
        if type(item) is not dict:
            return
        spec = item.get("spec")
        meta = item.get("metadata")
        if type(spec) is not dict or type(meta) is not dict:
            return
        name = meta.get("name")
        if type(name) is not str:
            return
        held = self._held_of((meta.get("namespace") or None, name))
        kept = held.get("spec") if type(held) is dict else None
        if type(kept) is dict and kept is not spec and _encoding(kept) == _encoding(spec):
            item["spec"] = kept

    def _cuts(self, held: dict[str, Any], line: bytes, spec_at: int, stop: int) -> list[_Cut]:
        """The parts of ``held`` that ``line`` encodes in their places, in the order of
        its bytes (the field sets before ``stop``, the spec at ``spec_at`` if not -1)."""
        cuts: list[_Cut] = []
        meta = held.get("metadata")
        entries = meta.get("managedFields") if type(meta) is dict else None
        if type(entries) is list:
            # The kept encoding is looked up here, not in a call per entry (a call costs
            # about what the look-up does); _encode keeps a new one.
            kept_of = self._encoded.get
            held_sets = []
            for entry in entries[:_MOST_ENTRIES]:
                part = entry.get("fieldsV1") if type(entry) is dict else None
                if type(part) is dict:
                    kept = kept_of(id(part))
                    encoded = (
                        kept[1] if kept is not None and kept[0] is part else self._encode(part)
                    )
                    if encoded:
                        held_sets.append((encoded, part))
            find = line.find
            at = index = 0
            unmatched = len(held_sets)
            # Until each held set is matched: an entry may have moved (kube-apiserver keeps
            # them in time order, and a writer's update makes its entry the newest), so
            # each field set is compared with the one held in its place first, then all.
            while unmatched and index < _MOST_ENTRIES:
                at = find(_FIELDS, at, stop)
                while at > 0 and line[at - 1] not in _KEY_OPENERS:
                    at = find(_FIELDS, at + 1, stop)
                if at < 0:
                    break
                at += _OPENS_AT_FIELDS
                found = held_sets[index] if index < len(held_sets) else None
                if found is None or not line.startswith(found[0], at):
                    found = next((held for held in held_sets if line.startswith(held[0], at)), None)
                if found is not None:
                    encoded, part = found
                    cuts.append((at, at + len(encoded), index, part))
                    at += len(encoded)
                    unmatched -= 1
                index += 1
        spec = held.get("spec")
        if spec_at > 0 and type(spec) is dict:
            encoded = _encoding(spec)
            if encoded and line.startswith(encoded, spec_at):
                if cuts and cuts[-1][1] > spec_at:  # a "spec" key inside a field set: none
                    return []
                cuts.append((spec_at, spec_at + len(encoded), -1, spec))
        return cuts

    def _encode(self, part: dict[str, Any]) -> bytes:
        """The encoding of the field set ``part`` (b"" if not JSON), kept while the dict is."""
        encoded = _encoding(part)
        if len(self._encoded) >= _MOST_ENCODED:
            self._encoded.clear()
        self._encoded[id(part)] = (part, encoded)
        return encoded

    def _spliced(self, line: bytes, cuts: list[_Cut], key: Key) -> dict[str, Any] | None:
        """The line decoded with each cut's dict in place of its bytes; None if a marker
        put there does not come out where it was meant to, or the object is not the one
        of ``key`` (whose parts were looked up: a label called ``name`` came first)."""
        markers = self._markers
        pieces: list[bytes] = []
        at = 0
        for number, (begin, end, _, _) in enumerate(cuts):
            pieces.append(line[at:begin])
            pieces.append(markers[number])
            at = end
        pieces.append(line[at:])
        try:
            decoded: Any = _loads(b"".join(pieces))
        except orjson.JSONDecodeError:
            return None
        obj: Any = decoded.get("object") if type(decoded) is dict else None
        meta: Any = obj.get("metadata") if type(obj) is dict else None
        if type(meta) is not dict or (meta.get("namespace") or None, meta.get("name")) != key:
            return None
        entries = meta.get("managedFields")
        if type(entries) is not list:
            entries = []
        tokens = self._tokens
        # Swapped as checked: a line that fails a check is dropped, swaps and all.
        for number, (_, _, where, part) in enumerate(cuts):
            if where < 0:
                if obj.get("spec") != tokens[number]:
                    return None
                obj["spec"] = part
            else:
                entry = entries[where] if where < len(entries) else None
                if type(entry) is not dict or entry.get("fieldsV1") != tokens[number]:
                    return None
                entry["fieldsV1"] = part
        spliced: dict[str, Any] = decoded
        return spliced


def _encoding(part: Any) -> bytes:
    """``part`` as JSON; b"" if it holds what JSON does not (changed since it was decoded)."""
    try:
        return _dumps(part, option=JSON_ONLY)
    except TypeError:
        return b""


def _key_in(line: bytes, stop: int) -> Key | None:
    """The store key of the object a watch line is about, read from its first
    ``"namespace"`` and ``"name"`` before ``stop``; None if none is found."""
    at = line.find(_NAME, 0, stop)
    if at < 0:
        return None
    at += len(_NAME)
    end = line.find(b'"', at, stop)
    namespace: str | None = None
    found = line.find(_NAMESPACE, 0, stop)
    try:
        name = line[at:end].decode()
        if found >= 0:
            found += len(_NAMESPACE)
            namespace = line[found : line.find(b'"', found, stop)].decode() or None
    except UnicodeDecodeError:
        return None
    return namespace, name
