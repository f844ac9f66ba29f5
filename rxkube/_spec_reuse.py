"""Decoding a watch line without decoding the spec the store already holds for its object.

Most watch events of a busy cluster are status updates: a pod's ``MODIFIED`` lines repeat its
``spec`` byte for byte (a third of a pod's JSON). :class:`SpecReuse` looks up the spec the
store holds for the line's object (by the namespace and name in its bytes). If the line's
bytes at its spec are exactly that dict's encoding, the line is decoded with a marker string
spliced in place of them, and the marker is swapped for the store's dict. The bytes are
compared with an encoding of the dict, so the dict handed on is what the line says (one
changed since to other JSON values, which no one should do, is not taken for the line's).
Nothing is remembered here: what is reused is always what the store holds, so a relist, a
second subscription or a store that swaps parts for their twins never holds a spec twice.

Nothing here trusts the line's shape: the splice is taken only if the marker comes out as
the event object's ``spec`` (not inside a string, a nested ``spec``, or the first of two
``spec`` keys); a line it does not fit is decoded whole. A server whose encoding of a spec
differs from orjson's (Go writes ``&`` as ``\\u0026``) costs that encoding per event and
is decoded whole. Which object the line is about is read from its bytes (the first
``"namespace"`` and ``"name"``); that decides only which spec is compared, never what an
object is given.

The store's dict is handed on, so this relies on what the store relies on: objects in the
stream after ``reflect()`` are not mutated. That is why only ``reflect()`` and
``reflect_shared()`` subscribed straight to a ``watcher()`` decode this way (an operator in
between, such as ``modify()``, may change the objects it is given, and the spec it changed
would be the one the store still serves), and only for a store that keeps objects decoded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import orjson

from ._equality import JSON_ONLY

__all__ = ["Key", "SpecOf", "SpecReuse"]

_SPEC = b'"spec":{'
_NAME = b'"name":"'
_NAMESPACE = b'"namespace":"'
_KEY_OPENERS = (ord(","), ord("{"))

_loads = orjson.loads
_dumps = orjson.dumps


Key = tuple[str | None, str]
"""A store's key of an object: its namespace (None if cluster-scoped) and name."""

SpecOf = Callable[[Key], Any]
"""What the store holds as the spec of the object of a key (anything: it is checked)."""


class SpecReuse:
    """Decodes the watch lines of one subscription, reusing the specs its store holds.

    Args:
        spec_of: the spec the store holds for a key, called on the thread that decodes
            (the watch's, which is also the store's writer).
    """

    __slots__ = ("_marker", "_spec_of", "_token")

    def __init__(self, spec_of: SpecOf) -> None:
        self._spec_of = spec_of
        # Random per instance: no server can send it, so finding it at the object's spec
        # proves the splice landed there.
        self._token = "rxkube-spec-" + os.urandom(12).hex()
        self._marker = b'"' + self._token.encode() + b'"'

    def decode(self, line: bytes) -> Any:
        """``orjson.loads(line)`` for a watch line, reusing the spec the store holds.

        Raises:
            orjson.JSONDecodeError: the line is not JSON.
        """
        begin = _spec_at(line, 0, len(line))
        if begin >= 0:
            key = _key_in(line, begin)
            spec = None if key is None else self._spec_of(key)
            if type(spec) is dict:
                stop = _encoded_at(spec, line, begin)
                if stop:
                    decoded = self._spliced(line, begin, stop, spec)
                    if decoded is not None:
                        return decoded
        return _loads(line)

    def adopt(self, item: Any) -> None:
        """Give ``item``, a listed object, the spec the store holds for it if its own
        encodes as that one: a relist of unchanged objects then holds no spec twice."""
        if type(item) is not dict:
            return
        spec = item.get("spec")
        meta = item.get("metadata")
        if type(spec) is not dict or type(meta) is not dict:
            return
        name = meta.get("name")
        if type(name) is not str:
            return
        held = self._spec_of((meta.get("namespace") or None, name))
        if type(held) is dict and held is not spec and _encoding(held) == _encoding(spec):
            item["spec"] = held

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
