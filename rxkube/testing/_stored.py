"""Stored objects and their watch lines: ``Stored``, ``Change``, watch filters and sinks.

Each object is encoded once with orjson when it is written, and each watch event line
is built once per write and shared by every watcher it matches (see ``_store.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from .._shards import Shard
from ..selectors import FieldSelector, LabelSelector
from ._conversion import convert
from ._decode import TooDeep, decode_json, encode_json
from ._status import StatusError

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
Object = dict[str, Any]
Decode = Callable[[Object], Object]
"""How a stored object is read back (``ServedResource.decode``)."""
META_KIND = b'"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1"'


class Stored:
    """One version of an object: the dict (never mutated once stored) and its encoding."""

    __slots__ = ("_converted", "_decoded", "_meta_raw", "key", "namespace", "obj", "raw", "rv")

    def __init__(self, obj: Object, rv: int, key: str, namespace: str) -> None:
        self.obj = obj
        self.rv = rv
        self.key = key
        self.namespace = namespace
        self.raw = encode_json(obj)
        self._meta_raw: bytes | None = None
        self._converted: dict[str, bytes] | None = None
        self._decoded: tuple[Decode, Stored] | None = None

    def decoded(self, decode: Decode) -> Stored:
        """This state as ``decode`` reads it back: itself when that changes nothing.

        Kept for the next read with the same ``decode`` (a definition's schema at the
        time), so each state is decoded once, as the watch cache decodes it once.
        """
        cached = self._decoded
        if cached is not None and cached[0] is decode:
            return cached[1]
        obj = decode(self.obj)
        view = self if obj is self.obj else Stored(obj, self.rv, self.key, self.namespace)
        view._decoded = self._decoded = (decode, view)
        return view

    @property
    def meta_raw(self) -> bytes:
        """The object encoded as a ``PartialObjectMetadata``."""
        if self._meta_raw is None:
            self._meta_raw = (
                b"{" + META_KIND + b',"metadata":' + encode_json(self.obj["metadata"]) + b"}"
            )
        return self._meta_raw

    def encoded(self, metadata_only: bool, api_version: str | None = None) -> bytes:
        """The full or the metadata-only encoding, read as ``api_version`` (default: as stored).

        Another version is converted as kube-apiserver converts it (see ``_conversion.py``).
        """
        if metadata_only:
            return self.meta_raw
        if api_version is None or api_version == self.obj.get("apiVersion"):
            return self.raw
        if self._converted is None:
            self._converted = {}
        raw = self._converted.get(api_version)
        if raw is None:
            raw = self._converted[api_version] = encode_json(convert(self.obj, api_version))
        return raw

    def copy_as(self, api_version: str) -> Object:
        """A deep copy of the object, read as ``api_version``."""
        copied: Object = orjson.loads(self.encoded(False, api_version))
        return copied

    def list_item(
        self, metadata_only: bool, api_version: str | None = None, *, typed: bool
    ) -> bytes:
        """The encoding as an item of a list.

        A built-in kind's list is a typed Go list whose items have an empty ``TypeMeta``,
        so they carry no ``kind`` and ``apiVersion``; a custom resource's items are the
        stored unstructured objects and keep them, and so do metadata-only items
        (apiserver ``asPartialObjectMetadataList`` sets each one's).
        """
        if metadata_only or not typed:
            return self.encoded(metadata_only, api_version)
        raw = self.encoded(False, api_version)
        obj = self.obj if raw is self.raw else convert(self.obj, api_version or "")
        head = b'{"kind":%b,"apiVersion":%b,' % (
            orjson.dumps(obj.get("kind")),
            orjson.dumps(obj.get("apiVersion")),
        )
        if raw.startswith(head):  # as the store writes objects: no copy of the rest
            return b"{" + raw[len(head) :]
        return encode_json({k: v for k, v in obj.items() if k not in ("kind", "apiVersion")})

    @property
    def labels(self) -> Mapping[str, str]:
        """The object's labels."""
        labels: Mapping[str, str] = self.obj["metadata"].get("labels") or {}
        return labels

    def copy_obj(self) -> Object:
        """A deep copy of the object, safe to hand out."""
        copied: Object = orjson.loads(self.raw)
        return copied


def event_line(event_type: str, raw: bytes) -> bytes:
    """One watch stream line: ``{"type":...,"object":...}`` and a newline."""
    return b'{"type":"' + event_type.encode() + b'","object":' + raw + b"}\n"


class Change:
    """One write in a resource's history.

    ``obj`` is the state after the write; for a deletion it is the last state stamped
    with the deletion's resourceVersion, as watchers receive it. ``prev`` is the state
    before the write (``None`` for a creation).
    """

    __slots__ = ("_decoded", "_lines", "_prev_at_rv", "key", "obj", "prev", "rv", "type")

    def __init__(self, event_type: EventType, obj: Stored, prev: Stored | None) -> None:
        self.type: EventType = event_type
        self.obj = obj
        self.prev = prev
        self.rv = obj.rv
        self.key = obj.key
        self._lines: dict[tuple[str, bool, bool, str | None], bytes] = {}
        self._prev_at_rv: Stored | None = None
        self._decoded: tuple[Decode, Change] | None = None

    def decoded(self, decode: Decode) -> Change:
        """This change with its states read back by ``decode`` (see ``Stored.decoded``),
        as watchers receive it; itself when that changes nothing."""
        cached = self._decoded
        if cached is not None and cached[0] is decode:
            return cached[1]
        obj = self.obj.decoded(decode)
        prev = None if self.prev is None else self.prev.decoded(decode)
        view = self if obj is self.obj and prev is self.prev else Change(self.type, obj, prev)
        view._decoded = self._decoded = (decode, view)
        return view

    def gone_view(self) -> Stored:
        """What a watcher that no longer sees the object receives in its DELETED event."""
        if self.type == "DELETED" or self.prev is None:
            return self.obj
        if self._prev_at_rv is None:
            obj = dict(self.prev.obj)
            obj["metadata"] = {**self.prev.obj["metadata"], "resourceVersion": str(self.rv)}
            self._prev_at_rv = Stored(obj, self.rv, self.key, self.obj.namespace)
        return self._prev_at_rv

    def line(
        self, event_type: EventType, metadata_only: bool, api_version: str | None = None
    ) -> bytes:
        """The watch line for this change as ``event_type`` (read as ``api_version``),
        built once and shared."""
        gone = event_type == "DELETED"
        cache_key = (event_type, metadata_only, gone, api_version)
        line = self._lines.get(cache_key)
        if line is None:
            source = self.gone_view() if gone else self.obj
            line = event_line(event_type, source.encoded(metadata_only, api_version))
            self._lines[cache_key] = line
        return line


class WatchSink(Protocol):
    """Where a registered watch's lines go: called with the store lock held."""

    def prime(self, lines: list[bytes]) -> None:
        """Queue the watch's initial lines (a replay, or the current state)."""

    def push(self, line: bytes) -> None:
        """Queue one live line for the client."""

    def close(self, mode: Literal["clean", "drain", "abrupt"]) -> None:
        """End the watch: at once (its fan-out failed), or once its queued lines are
        sent (``drain``: its resource is no longer served)."""


@dataclass(frozen=True, slots=True)
class WatchFilter:
    """What one watch selects: a namespace, selectors, a shard and the metadata-only encoding."""

    namespace: str | None = None
    labels: LabelSelector = field(default_factory=LabelSelector)
    fields: FieldSelector = field(default_factory=FieldSelector)
    metadata_only: bool = False
    shard: Shard | None = None
    api_version: str | None = None
    """The version the watch reads objects as (None: as stored)."""
    shard_selector: str | None = None
    """The ``shardSelector`` as the server echoes it in a list's ``shardInfo``: each range
    as written, in order (``shard`` merges them)."""

    def passes(self, stored: Stored) -> bool:
        """Whether an object state is selected."""
        if self.namespace is not None and stored.namespace != self.namespace:
            return False
        if self.labels and not self.labels.matches(stored.labels):
            return False
        if self.shard is not None and not self.shard.matches(stored.obj):
            return False
        return not self.fields or self.fields.matches(stored.obj)

    def line(self, change: Change) -> bytes | None:
        """The line this watch receives for a change, if any (kube-apiserver's cacher rules).

        An object that starts matching arrives as ADDED, one that stops matching as
        DELETED (its previous state at the change's resourceVersion).
        """
        version = self.api_version
        if change.type == "DELETED":
            passes = self.passes(change.obj)
            return change.line("DELETED", self.metadata_only, version) if passes else None
        now = self.passes(change.obj)
        before = change.prev is not None and self.passes(change.prev)
        if now:
            return change.line("MODIFIED" if before else "ADDED", self.metadata_only, version)
        if before:
            return change.line("DELETED", self.metadata_only, version)
        return None


class BookmarkLine(bytes):
    """A BOOKMARK line: fault injection does not count these as events."""

    __slots__ = ()


def deep_copy(obj: Mapping[str, Any]) -> Object:
    """A deep copy of a JSON-compatible mapping (fast, via orjson), within the nesting limit.

    Raises:
        StatusError: 400 for an object nested deeper than this server stores.
    """
    try:
        copied: Object = decode_json(encode_json(obj))
    except TooDeep as exc:
        raise StatusError(400, str(exc)) from None
    return copied
