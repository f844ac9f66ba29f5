"""Decoding a watch line without decoding the spec it repeats from the object's last version.

Most watch events of a busy cluster are status updates: a pod's ``MODIFIED`` lines repeat its
``spec`` byte for byte (a third of a pod's JSON, and a third of the cost of decoding it).
:class:`SpecReuse` remembers, per object, the spec dict it was last decoded with (the one the
store holds). A line whose bytes at the spec's place are exactly that dict's encoding is
decoded with a marker string spliced in place of them, and the marker is swapped for the
dict. Encoding the dict again costs a tenth of decoding it, and compares with the line
itself, so the dict handed on is always what the line says: one changed since (which no one
should do) is not taken for the line's spec.

Nothing here trusts the line's shape: the splice is taken only if the marker comes out as
the event object's ``spec`` (not inside a string, a nested ``spec``, or the first of two
``spec`` keys); a line it does not fit is decoded whole. A server whose encoding of a spec
differs from orjson's (Go writes ``&`` as ``\\u0026``) costs that encoding per event and
is decoded whole. The object is found by the first ``"name"`` and ``"uid"`` in its bytes,
which decides only which remembered spec is compared, never what an object is given.

The dict is handed on unchanged, a second time, so it relies on what the store relies on:
objects in the stream after ``reflect()`` are not mutated. That is why only ``reflect()``
and ``reflect_shared()`` subscribed straight to a ``watcher()`` decode this way (an operator
in between, such as ``modify()``, may change the objects it is given, and the spec it
changed would be the one the store still serves), and only for a store that holds each
spec as given: a compact store holds none, and one sharing every part swaps a spec for an
equal one of another object, so the dict remembered here would be held twice.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from ._equality import JSON_ONLY

__all__ = ["SpecReuse"]

_SPEC = b'"spec":{'
_NAME = b'"name":"'
_UID = b'"uid":"'
_KEY_OPENERS = (ord(","), ord("{"))

_loads = orjson.loads
_dumps = orjson.dumps


class SpecReuse:
    """The spec each object was last decoded with, to decode its next line without it.

    One per watch subscription, used by its thread only. It holds one dict per object
    listed or watched since the last relist began, less those deleted: the dicts the store
    holds too. A relist's items (listed, or streamed as watch lines) are given the spec
    remembered from before it when their bytes encode it, so a relist of unchanged objects
    decodes no spec twice and holds none twice; what the relist did not return is
    forgotten when it ends.
    """

    __slots__ = ("_before", "_known", "_marker", "_token")

    def __init__(self) -> None:
        self._known: dict[int, dict[str, Any]] = {}
        # What was known when the relist under way began, until it ends.
        self._before: dict[int, dict[str, Any]] = {}
        # Random per instance: no server can send it, so finding it at the object's spec
        # proves the splice landed there.
        self._token = "rxkube-spec-" + os.urandom(12).hex()
        self._marker = b'"' + self._token.encode() + b'"'

    def __len__(self) -> int:
        """How many objects' specs are remembered."""
        return len(self._known) + len(self._before)

    def relisting(self) -> None:
        """A relist begins: what it returns is learnt anew, from what was known."""
        if self._known:
            self._before = self._known
            self._known = {}

    def listed(self) -> None:
        """The relist has ended: forget the objects it did not return (deleted since)."""
        self._before = {}

    def decode(self, line: bytes) -> Any:
        """``orjson.loads(line)`` for a watch line, reusing the object's remembered spec.

        Remembers the spec of an object the line adds or modifies, forgets that of one it
        deletes.

        Raises:
            orjson.JSONDecodeError: the line is not JSON.
        """
        begin = _spec_at(line, 0, len(line))
        if begin < 0:
            return _loads(line)
        key = _key_of(line, 0, begin)
        spec = self._remembered(key)
        if spec is not None:
            stop = _encoded_at(spec, line, begin)
            if stop > 0:
                decoded = self._spliced(line, begin, stop, spec)
                if decoded is not None:
                    if decoded.get("type") == "DELETED":
                        del self._known[key]
                    return decoded
        decoded = _loads(line)
        if type(decoded) is dict:
            obj = decoded.get("object")
            if type(obj) is dict:
                spec = obj.get("spec")
                if decoded.get("type") == "DELETED" or type(spec) is not dict:
                    self._known.pop(key, None)
                else:
                    self._known[key] = spec
        return decoded

    def learn(self, data: bytes, start: int, stop: int, item: Any) -> None:
        """Remember the spec of ``item``, a listed object decoded from ``data[start:stop]``;
        if it encodes as the spec remembered from before the relist, ``item`` is given that
        one instead."""
        begin = _spec_at(data, start, stop)
        if begin < 0 or type(item) is not dict:
            return
        spec = item.get("spec")
        if type(spec) is not dict:
            return
        key = _key_of(data, start, begin)
        before = self._before.pop(key, None)
        # The item's own spec is compared, not the bytes at ``begin``: decoded already, it
        # tells its spec from a nested one, which nothing in the bytes does without a splice.
        if before is not None and _encoding(spec) == _encoding(before):
            item["spec"] = spec = before
        self._known[key] = spec

    def _remembered(self, key: int) -> dict[str, Any] | None:
        """The spec remembered for ``key``, moved out of what a relist began with."""
        spec = self._known.get(key)
        if spec is None and self._before:
            spec = self._before.pop(key, None)
            if spec is not None:
                self._known[key] = spec
        return spec

    def _spliced(
        self, line: bytes, begin: int, stop: int, spec: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The line decoded with ``spec`` in place of its bytes ``begin:stop``; None if the
        marker put there does not come out as the event object's spec."""
        view = memoryview(line)
        try:
            decoded = _loads(b"".join((view[:begin], self._marker, view[stop:])))
        except orjson.JSONDecodeError:
            return None
        if type(decoded) is not dict:
            return None
        obj = decoded.get("object")
        if type(obj) is not dict or obj.get("spec") != self._token:
            return None
        obj["spec"] = spec
        return decoded


def _encoding(spec: dict[str, Any]) -> bytes:
    """``spec`` as JSON; b"" if it holds what JSON does not (changed since it was decoded)."""
    try:
        return _dumps(spec, option=JSON_ONLY)
    except TypeError:
        return b""


def _encoded_at(spec: dict[str, Any], data: bytes, begin: int) -> int:
    """Where the encoding of ``spec`` ends if ``data`` holds it at ``begin``, else 0."""
    encoded = _encoding(spec)
    return begin + len(encoded) if encoded and data.startswith(encoded, begin) else 0


def _spec_at(data: bytes, start: int, stop: int) -> int:
    """Where the value of the first ``"spec"`` key in ``data[start:stop]`` opens (its
    ``{``), or -1; a ``"spec":{`` not after ``{`` or ``,`` is inside a string."""
    at = data.find(_SPEC, start, stop)
    while at > start and data[at - 1] not in _KEY_OPENERS:
        at = data.find(_SPEC, at + 1, stop)
    return at + len(_SPEC) - 1 if at > start else -1


def _key_of(data: bytes, start: int, stop: int) -> int:
    """Which object ``data[start:stop]`` opens, by its first name and uid (a mistake costs
    a decode, never a wrong spec)."""
    name = data.find(_NAME, start, stop) + len(_NAME)
    uid = data.find(_UID, start, stop) + len(_UID)
    return hash((data[name : data.find(b'"', name, stop)], data[uid : data.find(b'"', uid, stop)]))
