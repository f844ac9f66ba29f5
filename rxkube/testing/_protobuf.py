"""Protobuf request bodies of the built-in kinds, read as the JSON their Go types marshal to.

client-go's generated clients (kubectl's ``create namespace|configmap|secret|deployment|...``
among them) send built-in kinds as ``application/vnd.kubernetes.protobuf`` and never fall
back to JSON: client-go's only fallback on a 415 is from CBOR (``rest/client.go``,
``requestClientContentConfigProvider``). kube-apiserver reads such a body with
apimachinery's ``runtime/serializer/protobuf``: the magic ``k8s\\x00``, then a
``runtime.Unknown`` (its ``typeMeta`` names apiVersion and kind, ``raw`` holds the
object's message), then the object by the field numbers of k8s.io/api's
``generated.proto``.

The result here is what ``json.Marshal`` of the decoded Go struct gives, so the rest of
the server handles it as a JSON body: a non-pointer field the message leaves out takes
its zero value, a zero value is dropped under ``omitempty``, a nil pointer, slice or map
without ``omitempty`` is ``null``, inlined structs merge into their parent, and the
types with their own JSON form (times, quantities, int-or-strings, raw extensions) take
it. The layout comes from :mod:`._protobuf_schema`, generated from the Kubernetes
sources. Errors carry gogo-protobuf's wording.
"""

from __future__ import annotations

import base64
import datetime
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ._decode import DecodeError
from ._protobuf_schema import KINDS, MESSAGES, SLICES

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
_DELETE_OPTIONS = "meta/v1.DeleteOptions"


class ProtobufError(DecodeError):
    """A protobuf body kube-apiserver's decoder refuses; the message is Go's.

    Attributes:
        api_version: the envelope's apiVersion once it was read (defaulted), else None.
        kind: the envelope's kind once it was read (defaulted), else None.
    """

    def __init__(
        self, message: str, api_version: str | None = None, kind: str | None = None
    ) -> None:
        super().__init__(message)
        self.api_version = api_version
        self.kind = kind


class NoLayout(Exception):
    """A built-in kind whose protobuf layout this server does not have."""


@dataclass(frozen=True, slots=True)
class _Field:
    number: int
    json: str
    type: str
    repeated: bool
    pointer: bool
    omitempty: bool
    inline: bool
    go_name: str


@functools.cache
def _layout(message: str) -> dict[int, _Field]:
    fields: dict[int, _Field] = {}
    for spec in MESSAGES[message].split():
        number, rest = spec.split("=", 1)
        json_name, type_name, flags, *go_name = rest.split(":")
        fields[int(number)] = _Field(
            int(number),
            json_name,
            type_name,
            "r" in flags,
            "p" in flags,
            "o" in flags,
            "i" in flags,
            go_name[0] if go_name else json_name[:1].upper() + json_name[1:],
        )
    return fields


# ------------------------------------------------------------------ wire format


class _Reader:
    """Protobuf wire-format reading over one message's bytes, with gogo's errors."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def varint(self) -> int:
        result = shift = 0
        while True:
            if shift >= 64:
                raise DecodeError("proto: integer overflow")
            if self.pos >= self.end:
                raise DecodeError("unexpected EOF")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result & 0xFFFF_FFFF_FFFF_FFFF
            shift += 7

    def length_delimited(self) -> tuple[int, int]:
        """The start and end of a length-delimited value, which is skipped."""
        length = self.varint()
        if length >= 1 << 63:
            raise DecodeError("proto: negative length found during unmarshaling")
        start, end = self.pos, self.pos + length
        if end > self.end:
            raise DecodeError("unexpected EOF")
        self.pos = end
        return start, end

    def skip(self, wire: int) -> None:
        if wire == 0:
            self.varint()
        elif wire == 1 or wire == 5:
            self.pos += 8 if wire == 1 else 4
            if self.pos > self.end:
                raise DecodeError("unexpected EOF")
        elif wire == 2:
            self.length_delimited()
        elif wire == 3:
            depth = 1
            while depth:
                _, inner = self.tag("")
                if inner == 3:
                    depth += 1
                elif inner == 4:
                    depth -= 1
                else:
                    self.skip(inner)
        elif wire == 4:
            raise DecodeError("proto: unexpected end of group")
        else:
            raise DecodeError(f"proto: illegal wireType {wire}")

    def tag(self, message: str) -> tuple[int, int]:
        key = self.varint()
        number, wire = key >> 3, key & 7
        if wire == 4 and message:
            raise DecodeError(f"proto: {message}: wiretype end group for non-group")
        if number <= 0:
            raise DecodeError(f"proto: {message}: illegal tag {number} (wire type {wire})")
        return number, wire

    def fields(self, message: str) -> Iterator[tuple[int, int]]:
        """The number and wire type of each field, in order; read or skip its value."""
        while self.pos < self.end:
            yield self.tag(message)


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


_SCALAR_WIRE = {"s": 2, "b": 2, "t": 0, "i32": 0, "i64": 0}


def _scalar(kind: str, reader: _Reader, wire: int) -> Any:
    if kind == "s":
        start, end = reader.length_delimited()
        # Go keeps invalid UTF-8 in a string; its JSON encoder writes U+FFFD instead.
        return reader.data[start:end].decode("utf-8", errors="replace")
    if kind == "b":
        start, end = reader.length_delimited()
        return base64.b64encode(reader.data[start:end]).decode()
    value = reader.varint()
    if kind == "t":
        return value != 0
    return _signed(value, 32 if kind == "i32" else 64)


_ZERO_SCALAR: dict[str, Any] = {"s": "", "b": None, "t": False, "i32": 0, "i64": 0}
"""What a zero scalar marshals to (a nil ``[]byte`` is ``null``)."""
_EMPTY_SCALAR: dict[str, Any] = {"s": "", "b": "", "t": False, "i32": 0, "i64": 0}
"""A decoded scalar that ``omitempty`` leaves out."""


# ------------------------------------------------------------- special types


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_GO_ZERO_TIME = -62_135_596_800
"""Go's zero ``time.Time`` (year 1) in Unix seconds; it marshals to ``null``."""


def _timestamp(data: bytes, start: int, end: int, *, micro: bool) -> str | None:
    """``metav1.Time`` (seconds; the nanoseconds are dropped on decode) or ``MicroTime``."""
    if start == end:
        return None  # a zero time marshals to nothing, and reads back as the zero time
    seconds = nanos = 0
    reader = _Reader(data, start, end)
    for number, wire in reader.fields("Timestamp"):
        if number in (1, 2) and wire == 0:
            value = reader.varint()
            if number == 1:
                seconds = _signed(value, 64)
            else:
                nanos = _signed(value, 32)
        else:
            reader.skip(wire)
    if seconds == _GO_ZERO_TIME and not nanos:
        return None
    try:
        moment = _EPOCH + datetime.timedelta(seconds=seconds)
    except OverflowError:
        raise DecodeError("Time.MarshalJSON: year outside of range [0,9999]") from None
    if micro:
        moment += datetime.timedelta(microseconds=max(nanos, 0) // 1000)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _special(kind: str, data: bytes, start: int, end: int) -> Any:
    """A value of a type that marshals JSON its own way, from its message's bytes."""
    if kind in ("@time", "@microtime"):
        return _timestamp(data, start, end, micro=kind == "@microtime")
    reader = _Reader(data, start, end)
    values: dict[int, Any] = {}
    for number, wire in reader.fields(kind[1:]):
        if wire == 2:
            value_start, value_end = reader.length_delimited()
            values[number] = data[value_start:value_end]
        elif wire == 0:
            values[number] = reader.varint()
        else:
            reader.skip(wire)
    if kind == "@quantity":
        return values.get(1, b"0").decode("utf-8", errors="replace") or "0"
    if kind == "@intstr":
        if values.get(1, 0) == 1:
            raw = values.get(3, b"")
            return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else ""
        number = values.get(2, 0)
        return _signed(number, 32) if isinstance(number, int) else 0
    # @raw and @fields: JSON held as bytes (RawExtension.raw, FieldsV1.Raw).
    raw = values.get(1)
    if not isinstance(raw, bytes) or not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"json: error calling MarshalJSON for type {kind[1:]}: {exc}") from None


# ------------------------------------------------------------------ messages


def _zero(type_name: str) -> Any:
    """What ``json.Marshal`` writes for the zero value of a field type's Go type."""
    if type_name in _ZERO_SCALAR:
        return _ZERO_SCALAR[type_name]
    if type_name.startswith("@"):
        return {"@quantity": "0", "@intstr": 0}.get(type_name)  # times and raw JSON: null
    if type_name in SLICES:
        return None
    obj: dict[str, Any] = {}
    for fld in _layout(type_name).values():
        _fill_absent(obj, fld)
    return obj


def _fill_absent(obj: dict[str, Any], fld: _Field) -> None:
    """Set what the JSON of a Go struct holds for a field its message did not carry."""
    if fld.repeated or fld.type.startswith("map<") or fld.pointer:
        if not fld.omitempty:
            obj[fld.json] = None
        return
    if fld.type in _ZERO_SCALAR:
        if not fld.omitempty:
            obj[fld.json] = _ZERO_SCALAR[fld.type]
        return
    zero = _zero(fld.type)
    if fld.inline and isinstance(zero, dict):
        for key, value in zero.items():
            obj.setdefault(key, value)
    else:
        obj[fld.json] = zero


def _value(type_name: str, reader: _Reader, wire: int) -> Any:
    """One value of a field (a map entry, a list item or a single value)."""
    if type_name in _SCALAR_WIRE:
        return _scalar(type_name, reader, wire)
    start, end = reader.length_delimited()
    if type_name.startswith("@"):
        return _special(type_name, reader.data, start, end)
    return _message(type_name, reader.data, start, end)


def _map_entry(type_name: str, reader: _Reader, message: str) -> tuple[str, Any]:
    key_type, value_type = type_name[4:-1].split(",")
    start, end = reader.length_delimited()
    entry = _Reader(reader.data, start, end)
    key: Any = _ZERO_SCALAR[key_type]
    value: Any = _NO_VALUE
    for number, wire in entry.fields(message):
        if number == 1 and wire == _SCALAR_WIRE[key_type]:
            key = _scalar(key_type, entry, wire)
        elif number == 2 and wire == _SCALAR_WIRE.get(value_type, 2):
            value = _value(value_type, entry, wire)
        else:
            entry.skip(wire)
    return str(key), _zero(value_type) if value is _NO_VALUE else value


_NO_VALUE = object()


def _message(message: str, data: bytes, start: int, end: int) -> Any:
    """A message's JSON, as ``json.Marshal`` of the Go struct gogo decodes it into."""
    layout = _layout(message)
    short = message.rsplit(".", 1)[-1]
    reader = _Reader(data, start, end)
    values: dict[int, Any] = {}
    for number, wire in reader.fields(short):
        fld = layout.get(number)
        if fld is None:
            reader.skip(wire)  # gogo skips fields it does not know
            continue
        if fld.type.startswith("map<"):
            if wire != 2:
                raise DecodeError(f"proto: wrong wireType = {wire} for field {fld.go_name}")
            entries = values.setdefault(number, {})
            key, value = _map_entry(fld.type, reader, short)
            entries[key] = value
            continue
        expected = _SCALAR_WIRE.get(fld.type, 2)
        if fld.repeated and expected == 0 and wire == 2:
            start_packed, end_packed = reader.length_delimited()
            packed = _Reader(data, start_packed, end_packed)
            items = values.setdefault(number, [])
            while packed.pos < packed.end:
                items.append(_scalar(fld.type, packed, 0))
            continue
        if wire != expected:
            raise DecodeError(f"proto: wrong wireType = {wire} for field {fld.go_name}")
        value = _value(fld.type, reader, wire)
        if fld.repeated:
            values.setdefault(number, []).append(value)
        else:
            values[number] = value  # the last occurrence wins, as in proto2
    if message in SLICES:
        return values.get(1, [])
    obj: dict[str, Any] = {}
    for number, fld in layout.items():
        if number not in values:
            _fill_absent(obj, fld)
            continue
        value = values[number]
        if fld.inline and isinstance(value, dict):
            obj.update(value)
        elif (
            not fld.pointer
            and fld.omitempty
            and fld.type in _ZERO_SCALAR
            and not fld.repeated
            and value == _EMPTY_SCALAR[fld.type]
        ):
            continue
        else:
            obj[fld.json] = value
    return obj


# ------------------------------------------------------------------ envelope


def _envelope(data: bytes) -> tuple[str, str, bytes]:
    """The apiVersion, kind and raw object of a protobuf body (``runtime.Unknown``)."""
    if not data:
        raise ProtobufError("empty data")
    if not data.startswith(MAGIC):
        raise ProtobufError(
            "provided data does not appear to be a protobuf message, expected prefix "
            f"[{' '.join(str(b) for b in MAGIC)}]"
        )
    if len(data) == len(MAGIC):
        raise ProtobufError("empty body")
    api_version = kind = ""
    raw = b""
    try:
        reader = _Reader(data, len(MAGIC))
        for number, wire in reader.fields("Unknown"):
            if number == 1 and wire == 2:
                start, end = reader.length_delimited()
                meta = _Reader(data, start, end)
                for meta_number, meta_wire in meta.fields("TypeMeta"):
                    if meta_number in (1, 2) and meta_wire == 2:
                        value = _scalar("s", meta, 2)
                        if meta_number == 1:
                            api_version = value
                        else:
                            kind = value
                    else:
                        meta.skip(meta_wire)
            elif number == 2 and wire == 2:
                start, end = reader.length_delimited()
                raw = data[start:end]
            else:
                reader.skip(wire)
    except ProtobufError:
        raise
    except DecodeError as exc:
        raise ProtobufError(str(exc)) from None
    return api_version, kind, raw


def decode_object(data: bytes, api_version: str, kind: str) -> dict[str, Any]:
    """The object of a protobuf create or update body, as JSON values.

    An envelope without a kind or apiVersion takes the resource's (``api_version``,
    ``kind``), as kube-apiserver's decoder defaults them. An envelope naming a kind that
    k8s.io/api does not have comes back as just its apiVersion and kind, for the kind
    check of the store to refuse as for a JSON body.

    Raises:
        ProtobufError: the body does not decode; ``kind`` tells whether the envelope did.
        NoLayout: the resource's own kind, of which this server has no layout.
    """
    found_version, found_kind, raw = _envelope(data)
    found_version = found_version or api_version
    found_kind = found_kind or kind
    message = KINDS.get((found_version, found_kind))
    if message is None:
        if (found_version, found_kind) == (api_version, kind):
            raise NoLayout(kind)
        return {"apiVersion": found_version, "kind": found_kind}
    try:
        obj = _message(message, raw, 0, len(raw))
    except DecodeError as exc:
        raise ProtobufError(str(exc), found_version, found_kind) from None
    return {"kind": found_kind, "apiVersion": found_version, **obj}


def decode_delete_options(data: bytes) -> dict[str, Any]:
    """A protobuf ``DeleteOptions`` body (any apiVersion: client-go registers it in each group).

    Raises:
        ProtobufError: not a protobuf ``DeleteOptions``.
    """
    api_version, kind, raw = _envelope(data)
    if kind not in ("", "DeleteOptions"):
        raise ProtobufError(
            "decoded object cannot be converted to DeleteOptions", api_version, kind
        )
    try:
        obj: dict[str, Any] = _message(_DELETE_OPTIONS, raw, 0, len(raw))
    except DecodeError as exc:
        raise ProtobufError(str(exc), api_version, kind) from None
    return obj
