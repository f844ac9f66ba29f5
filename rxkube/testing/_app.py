"""The HTTP face of the test API server: routing, request options, and kube-apiserver's answers.

Why one file this long: one handler per verb of the API, sharing the request parsing
and the answers kube-apiserver gives; split further, a verb's rules would be in two places.

One aiohttp handler serves every path. It authenticates, applies armed faults, routes
to discovery or to a resource verb, and turns every failure into a ``Status`` body:
never a traceback, and the server stays up.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from aiohttp import http_exceptions, web

from .._shards import Shard, ShardSelectorError, applied_selector, parse_requirements
from ..selectors import FieldSelector, LabelSelector, SelectorError
from . import _discovery, _fields, _gc, _scale, _scale_fields, _tables
from ._binding import bind
from ._conversion import convert, storage_fields
from ._decode import DecodeError, TooDeep, decode_body
from ._faults import Faults
from ._graceful import grace_seconds
from ._openapi import OpenApiDocuments, etag
from ._patch import PatchFailed, json_patch, merge_patch
from ._protobuf import MEDIA_TYPE as _PROTOBUF
from ._protobuf import NoLayout, ProtobufError, decode_delete_options, decode_object
from ._requests import RecordedRequest, RequestLog
from ._reviews import review
from ._served import ServedResource
from ._status import StatusError, invalid_options, status_success, too_large_resource_version
from ._store import ResourceVersionTooOld, Store, now_timestamp
from ._stored import Stored, WatchFilter, event_line
from ._strategic import root_schema, strategic_merge_patch
from ._validation import json_kind, type_meta_error
from ._watch import WatchHub, WatchStream

log = logging.getLogger("rxkube.testing")

MAX_REQUEST_BYTES = 3 * 1024 * 1024
"""kube-apiserver's limit on a request body (``--max-request-bytes``' default)."""

FIELD_MANAGER_MAX_BYTES = 128
APPLY_PATCH = "application/apply-patch+yaml"

_JSON = "application/json"
_YAML = "application/yaml"
_META_LIST = "PartialObjectMetadataList"
_META = "PartialObjectMetadata"
_INCONSISTENT_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter, or use the continue token "
    "in this response to retrieve the remainder of the results. Continuing with the "
    "provided token results in an inconsistent list - objects that were created, modified, "
    "or deleted between the time the first chunk was returned and now may show up in the list."
)
_NOT_FOUND = "the server could not find the requested resource"


def _request_key(name: str) -> Any:
    # aiohttp >= 3.14 warns about plain string keys in request storage and offers
    # RequestKey; older versions, which pyproject still allows, have no RequestKey.
    key_type = getattr(web, "RequestKey", None)
    return key_type(name) if key_type is not None else name


_T = TypeVar("_T")
_ROUTE = _request_key("rxkube.route")
_VERB = _request_key("rxkube.verb")


@dataclass(slots=True)
class ServerOptions:
    """Behaviour a test may change while the server runs.

    Attributes:
        bookmark_interval: seconds between BOOKMARK events on watches that asked for
            them; None sends none (as a real server may).
        streaming_lists: serve ``sendInitialEvents=true`` watches; when False they get an
            ERROR event with code 500, as from an etcd without progress notifications.
        too_large_wait: how long a read at a resourceVersion newer than the server's
            waits before answering 504 (kube-apiserver waits 3 s).
        watch_buffer: how many live events a watch may have waiting for its client
            before the server ends it (None: no limit); read when a watch opens.
        sharded_lists: honour ``shardSelector`` and echo it in ``metadata.shardInfo``
            of lists, as a v1.36 server with ``ShardedListAndWatch`` on does; when False
            the parameter is ignored, as by an older server or with the gate off.
    """

    bookmark_interval: float | None = 1.0
    streaming_lists: bool = True
    too_large_wait: float = 3.0
    watch_buffer: int | None = 10_000
    sharded_lists: bool = True


@dataclass(slots=True)
class _Route:
    served: ServedResource
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool


def _bool_param(query: Any, name: str) -> bool | None:
    """A boolean query parameter as kube-apiserver converts it; None when absent.

    Only ``0`` and ``false`` (any case) are false: every other value, the empty one
    included, is true.
    """
    value = query.get(name)
    if value is None:
        return None
    return not (value == "0" or value.lower() == "false")


_GO_INT = re.compile(r"[+-]?[0-9]+")


def _int_param(query: Any, name: str) -> int:
    """An integer query parameter (0 when absent); 400 with Go's ``strconv.ParseInt`` error."""
    value = query.get(name)
    if value is None:
        return 0
    if not _GO_INT.fullmatch(value):
        raise StatusError(400, f'strconv.ParseInt: parsing "{value}": invalid syntax')
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise StatusError(400, f'strconv.ParseInt: parsing "{value}": value out of range')
    return number


def _parse_rv(value: str, *, from_etcd: bool = False) -> int:
    """A resourceVersion parameter as ``storage.APIObjectVersioner`` parses it.

    Its error is a storage ``InvalidError``, which v1.32's watch cache (gets, watches,
    lists it serves) returns as is: no API status, so a 500 with its text and no reason;
    the etcd3 store (lists it serves: a limit, an exact match) wraps it in a 400.
    """
    if not (value.isascii() and value.isdigit()):
        why = "invalid syntax"
    elif int(value) >= 2**64:
        why = "value out of range"
    else:
        return int(value)
    text = f'resourceVersion: Invalid value: "{value}": strconv.ParseUint: parsing "{value}": {why}'
    if from_etcd:
        raise StatusError(400, f"invalid resource version: {text}")
    raise StatusError(500, text, reason="")


def encode_continue(rv: int, start: str) -> str:
    """A continue token in kube-apiserver's format (base64url JSON, no padding)."""
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_BASE64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_GO_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}
_JSON_STARTS = frozenset(b' \t\r\n{["-0123456789tfn')


def _go_quote_byte(c: int) -> str:
    """encoding/json's ``quoteChar`` of one byte."""
    if c == ord("'"):
        return "'\\''"
    if 0x20 <= c < 0x7F:
        return f"'{chr(c)}'"
    return "'" + _GO_ESCAPES.get(c, f"\\x{c:02x}") + "'"


def _invalid_continue(why: str) -> StatusError:
    # The etcd3 store's wrapping of storage.DecodeContinue's error.
    return StatusError(400, f"invalid continue token: continue key is not valid{why}")


def decode_continue(token: str) -> tuple[int, str]:
    """The revision and start key of a continue token, as apiserver's
    ``storage.DecodeContinue`` reads it (a start key with or without a leading ``/``:
    v1.32's etcd store writes it without, its watch cache with); 400 when it is not one."""
    data = token.encode()
    bad = next((i for i, c in enumerate(data) if c not in _BASE64URL), None)
    if bad is None and len(data) % 4 == 1:
        bad = len(data) - 1
    if bad is not None:
        raise _invalid_continue(f": illegal base64 data at input byte {bad}")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        first = raw.lstrip(b" \t\r\n")[:1]
        if not first:
            raise _invalid_continue(": unexpected end of JSON input") from None
        if first[0] not in _JSON_STARTS:
            raise _invalid_continue(
                f": invalid character {_go_quote_byte(first[0])} looking for beginning of value"
            ) from None
        raise _invalid_continue(": the token is not JSON") from None
    version = decoded.get("v", "") if isinstance(decoded, dict) else ""
    rv = decoded.get("rv", 0) if isinstance(decoded, dict) else 0
    start = decoded.get("start", "") if isinstance(decoded, dict) else ""
    if not isinstance(version, str) or not isinstance(rv, int) or not isinstance(start, str):
        raise _invalid_continue(": the token's fields are not of their types")
    if version != "meta.k8s.io/v1":
        raise _invalid_continue(f": server does not recognize this encoded version {version}")
    if rv == 0 or rv < -1:
        raise _invalid_continue(
            ": incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        )
    if not start:
        raise _invalid_continue(": encoded start key empty (version meta.k8s.io/v1)")
    # path.Clean of the rooted key must leave it as it is: no empty, "." or ".." segment.
    if any(part in ("", ".", "..") for part in start.removeprefix("/").split("/")):
        raise _invalid_continue(f": {start}")
    return rv, start.removeprefix("/")


@dataclass(frozen=True, slots=True)
class Representation:
    """The form the objects of an answer take, as the client's ``Accept`` asked.

    Attributes:
        metadata_only: ``PartialObjectMetadata`` objects (or their list).
        table: the ``apiVersion`` of the ``Table`` asked for, or None for objects.
    """

    metadata_only: bool = False
    table: str | None = None


def negotiate(accept: str, *, want_list: bool, lenient: bool, tables: bool) -> Representation:
    """The representation the client asked for; 406 for nothing acceptable.

    Alternatives are tried in order; protobuf is skipped (not served), and so is
    ``as=Table`` where ``tables`` is False (writes answer objects).
    """
    if not accept.strip():
        return Representation()
    for alternative in accept.split(","):
        media, *params = (part.strip() for part in alternative.split(";"))
        if media not in (_JSON, "application/*", "*/*"):
            continue
        options = dict(p.split("=", 1) for p in params if "=" in p)
        as_kind = options.get("as")
        if as_kind is None:
            return Representation()
        if options.get("g") != "meta.k8s.io" or options.get("v") not in ("v1", "v1beta1"):
            continue
        if as_kind == "Table" and tables:
            return Representation(table=f"meta.k8s.io/{options['v']}")
        if as_kind == _META_LIST and (want_list or lenient):
            return Representation(metadata_only=True)
        if as_kind == _META and (not want_list or lenient):
            return Representation(metadata_only=True)
    raise StatusError(
        406,
        f"only the following media types are accepted: {_JSON}, "
        f"{_JSON};as={_META_LIST if want_list else _META};g=meta.k8s.io;v=v1",
        reason="NotAcceptable",
    )


def _wants_aggregated(accept: str) -> bool:
    """Whether the first acceptable alternative of ``Accept`` is aggregated discovery (v2).

    kube-apiserver serves ``/api`` and ``/apis`` in the first form the client accepts:
    kubectl asks for ``apidiscovery.k8s.io/v2``, then v2beta1 (not served here), then plain JSON.
    """
    for alternative in accept.split(","):
        media, *params = (part.strip() for part in alternative.split(";"))
        if media not in (_JSON, "application/*", "*/*"):
            continue
        options = dict(p.split("=", 1) for p in params if "=" in p)
        if "as" not in options:
            return False
        if options == {"g": "apidiscovery.k8s.io", "v": "v2", "as": "APIGroupDiscoveryList"}:
            return True
    return False


_OFF_LOOP_BYTES = 64 * 1024
"""Bodies larger than this are decoded on a worker thread, so no request stalls the loop."""


async def _read_body(request: web.Request) -> bytes:
    """The request body, at most :data:`MAX_REQUEST_BYTES` (413 beyond, as kube-apiserver)."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise StatusError(413, f"Request entity too large: limit is {MAX_REQUEST_BYTES}") from None


async def _off_loop(size: int, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``fn(*args, **kwargs)``, on a worker thread when it works on a body of ``size`` bytes
    larger than :data:`_OFF_LOOP_BYTES` (decoding it, or a store write, which takes the
    store's lock and so is safe from any thread)."""
    if size > _OFF_LOOP_BYTES:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)


async def _decode(data: bytes, *, yaml_body: bool) -> Any:
    return await _off_loop(len(data), decode_body, data, yaml_body=yaml_body)


async def _decode_body(data: bytes) -> Any:
    """A JSON body other than an object's (a patch, DeleteOptions); 400 when it is not JSON."""
    try:
        return await _decode(data, yaml_body=False)
    except DecodeError as exc:
        raise StatusError(400, str(exc)) from None


def _summary(data: bytes) -> str:
    """The start of a body, as kube-apiserver quotes it in a decoding error."""
    if not data:
        return "<empty>"
    if data[:1] == b"{":
        return data[:30].decode(errors="replace") + (" ..." if len(data) > 30 else "")
    return data[:30].hex() + (" ..." if len(data) > 30 else "")


_KIND_FINDER = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
    'Kind string "json:\\"kind,omitempty\\"" }'
)


def _input_format(request: web.Request, served: ServedResource) -> str:
    """The media type of a create or update body; 415 for one the resource does not read.

    Built-in kinds read JSON, YAML and protobuf; custom resources JSON and YAML, as
    apiextensions-apiserver's serializer lists them.
    """
    header = request.headers.get("Content-Type", "")
    media = header.split(";", 1)[0].strip().lower() or _JSON
    accepted = [_JSON, _YAML, _PROTOBUF] if served.strategic_merge else [_JSON, _YAML]
    if media not in accepted:
        raise StatusError(
            415,
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(accepted),
        )
    return media


async def _read_object(
    request: web.Request, served: ServedResource, options: WriteOptions, warnings: list[str]
) -> dict[str, Any]:
    """The object of a create or update, decoded as kube-apiserver does.

    A body that is not JSON (or YAML), or not an object, "is unrecognized" (400); a
    built-in kind's fields are then decoded strictly (``fieldValidation``; warnings are
    appended to ``warnings``), and the store checks its kind and metadata types
    (``Store._check_kind``).
    """
    media = _input_format(request, served)
    yaml_body = media == _YAML
    data = await _read_body(request)
    kind = served.resource.kind

    def unrecognized(error: str) -> StatusError:
        return StatusError(
            400,
            f"the object provided is unrecognized (must be of type {kind}): {error} "
            f"({_summary(data)})",
        )

    if media == _PROTOBUF:
        return await _read_protobuf(data, served)
    try:
        obj = await _decode(data, yaml_body=yaml_body)
    except TooDeep as exc:
        raise StatusError(400, str(exc)) from None
    except DecodeError as exc:
        raise unrecognized(
            str(exc) if yaml_body else f"couldn't get version/kind; json parse error: {exc}"
        ) from None
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise unrecognized(
            "couldn't get version/kind; json parse error: json: cannot unmarshal "
            f"{json_kind(obj)} into Go value of type {_KIND_FINDER}"
        )
    error = type_meta_error(obj)
    if error is not None:
        raise unrecognized(error)
    checked, found = await _off_loop(
        len(data), _fields.checked_body, served, obj, data,
        yaml_body=yaml_body, directive=options.field_validation,
    )  # fmt: skip
    warnings.extend(found)
    return checked


async def _read_protobuf(data: bytes, served: ServedResource) -> dict[str, Any]:
    """A protobuf create or update body, with kube-apiserver's errors (``transformDecodeError``):
    "cannot be handled as" once the envelope named a kind, "is unrecognized" before."""
    res = served.resource
    try:
        return await _off_loop(len(data), decode_object, data, res.api_version, res.kind)
    except NoLayout:
        raise StatusError(
            415,
            f"this test server has no protobuf layout for {res.kind}: send {_JSON} or {_YAML}",
        ) from None
    except ProtobufError as exc:
        if exc.kind is not None and exc.api_version is not None:
            version = exc.api_version.rsplit("/", 1)[-1]
            raise StatusError(
                400, f'{exc.kind} in version "{version}" cannot be handled as a {res.kind}: {exc}'
            ) from None
        raise StatusError(
            400,
            f"the object provided is unrecognized (must be of type {res.kind}): {exc} "
            f"({_summary(data)})",
        ) from None


def check_patch_type(content_type: str, *, strategic_ok: bool) -> None:
    """415, with the media types kube-apiserver lists, for a patch it does not accept."""
    accepted = ["application/json-patch+json", "application/merge-patch+json"]
    if strategic_ok:
        accepted.append("application/strategic-merge-patch+json")
    accepted.append(APPLY_PATCH)
    if content_type not in accepted:
        raise StatusError(
            415,
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(accepted),
        )


async def _decode_apply(data: bytes) -> dict[str, Any]:
    """An apply patch: YAML, of which JSON is a part; null or empty is an empty object."""
    try:
        config = await _decode(data, yaml_body=True)
    except TooDeep as exc:
        raise StatusError(400, str(exc)) from None
    except DecodeError as exc:
        raise StatusError(
            400, f"error decoding YAML: error converting YAML to JSON: {exc}"
        ) from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        go_type = {list: "array", str: "string", bool: "bool"}.get(type(config), "number")
        raise StatusError(
            400,
            "error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot "
            f"unmarshal {go_type} into Go value of type map[string]interface {{}}",
        )
    return config


def _user_agent_prefix(agent: str) -> str:
    """What precedes the first ``/`` of a User-Agent, printable and at most 128 bytes."""
    prefix, size = "", 0
    for char in agent.split("/", 1)[0]:
        if not char.isprintable():
            continue
        size += len(char.encode())
        if size > FIELD_MANAGER_MAX_BYTES:
            break
        prefix += char
    return prefix


@dataclass(frozen=True)
class WriteOptions:
    """What a write's query asks beside its body: who manages the fields, and whether to keep it."""

    field_manager: str
    dry_run: bool
    field_validation: str = "Warn"
    """``Ignore``, ``Warn`` or ``Strict``: what to do about unknown and repeated fields."""


def write_options(request: web.Request, options: str, *, apply: bool = False) -> WriteOptions:
    """A write's options, once kube-apiserver's checks of them pass.

    The field manager is ``fieldManager`` when given (required to apply); otherwise what
    precedes the first ``/`` of the User-Agent, or ``unknown``. ``dryRun=All`` runs the
    write through every check and answers what it would store, storing nothing.

    Args:
        request: the write.
        options: ``CreateOptions``, ``UpdateOptions``, ``PatchOptions`` or ``DeleteOptions``.
        apply: whether it is a server-side apply patch.
    """
    query = request.query
    manager = query.get("fieldManager", "")
    dry_run = query.getall("dryRun", [])
    causes: list[tuple[str, str, str]] = []
    if apply and not manager:
        causes.append(("fieldManager", "Required value", "is required for apply patch"))
    if options == "PatchOptions" and not apply and "force" in query:
        causes.append(("force", "Forbidden", "may not be specified for non-apply patch"))
    if len(manager.encode()) > FIELD_MANAGER_MAX_BYTES:
        causes.append(
            ("fieldManager", "Too long", f"may not be more than {FIELD_MANAGER_MAX_BYTES} bytes")
        )
    causes += dry_run_causes(dry_run)
    validation = query.get("fieldValidation", "")
    if validation and validation not in _fields.FIELD_VALIDATION:
        # apimachinery's ValidateFieldValidation lists the allowed values sorted, "" first.
        causes.append(
            (
                "fieldValidation",
                "Unsupported value",
                f'{orjson.dumps(validation).decode()}: supported values: "", "Ignore", '
                '"Strict", "Warn"',
            )
        )
    if causes:
        raise invalid_options(causes, kind=options)
    return WriteOptions(
        manager or _user_agent_prefix(request.headers.get("User-Agent", "")) or "unknown",
        bool(dry_run),
        validation or "Warn",
    )


def dry_run_causes(values: list[Any]) -> list[tuple[str, str, str]]:
    """apimachinery's ``ValidateDryRun``: ``All`` is the one value a dry run may name."""
    if all(value == "All" for value in values):
        return []
    shown = "[]string{" + ", ".join(orjson.dumps(str(v)).decode() for v in values) + "}"
    return [("dryRun", "Unsupported value", f'{shown}: supported values: "All"')]


def patch_function(
    content_type: str, data: Any, served: ServedResource
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The function applying a decoded patch body of a given media type to an object.

    Merge patches follow RFC 7386; a strategic merge patch (built-in kinds only, as on
    kube-apiserver) merges by the kind's patch strategies and merge keys
    (``_strategic.py``). A failed JSON patch operation answers 422. Server-side apply
    patches are not functions of the object: see ``Store.apply``.
    """
    strategic_ok = served.strategic_merge
    if content_type == "application/json-patch+json":
        _check_json_patch(data)
        if data is None:
            return lambda current: current  # a null JSON patch has no operations

        def apply_json(current: dict[str, Any]) -> dict[str, Any]:
            try:
                patched: dict[str, Any] = json_patch(current, data)
            except (ValueError, PatchFailed):
                # kube-apiserver answers every failed operation with a generic 422 that
                # drops json-patch's own words.
                raise StatusError(
                    422,
                    "the server rejected our request due to an error in our request",
                    details={},
                ) from None
            return patched

        return apply_json
    strategic = content_type == "application/strategic-merge-patch+json"
    if content_type == "application/merge-patch+json" or (strategic and strategic_ok):
        if data is None:
            return lambda current: current  # a null merge patch changes nothing
        if not isinstance(data, dict):
            raise StatusError(
                400,
                ("" if strategic else "error decoding patch: ")
                + f"json: cannot unmarshal {json_kind(data)} into Go value of type "
                "map[string]interface {}",
            )

        if strategic:
            res = served.resource
            schema = root_schema(res.group, res.version, res.kind)
            return lambda current: strategic_merge_patch(current, data, schema)

        def apply_merge(current: dict[str, Any]) -> dict[str, Any]:
            patched: dict[str, Any] = merge_patch(current, data)
            return patched

        return apply_merge
    check_patch_type(content_type, strategic_ok=strategic_ok)
    raise ValueError(f"{content_type} is not a JSON patch or merge patch media type")


MAX_JSON_PATCH_OPERATIONS = 10_000
"""kube-apiserver's limit on the operations of one JSON patch (413 beyond)."""


def _check_json_patch(data: Any) -> None:
    """400 for a JSON patch that does not decode into operations, 413 for too many."""

    def refuse(value: Any, into: str) -> StatusError:
        return StatusError(
            400, f"error decoding patch: json: cannot unmarshal {json_kind(value)} into Go {into}"
        )

    if data is None:
        return
    if not isinstance(data, list):
        raise refuse(data, "value of type []handlers.jsonPatchOp")
    for operation in data:
        if operation is None:
            continue
        if not isinstance(operation, dict):
            raise refuse(operation, "value of type handlers.jsonPatchOp")
        for field_name in ("op", "path", "from"):
            value = operation.get(field_name)
            if value is not None and not isinstance(value, str):
                raise refuse(value, f"struct field jsonPatchOp.{field_name} of type string")
    if len(data) > MAX_JSON_PATCH_OPERATIONS:
        raise StatusError(
            413,
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(data)}",
        )


def _json_response(
    body: bytes,
    status: int = 200,
    content_type: str = _JSON,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        body=body, status=status, headers={"Content-Type": content_type, **(headers or {})}
    )


def _warned(response: web.Response, warnings: list[str]) -> web.Response:
    """``response`` with one ``Warning`` header per warning, as kube-apiserver sends them."""
    for text in warnings:
        response.headers.add("Warning", _fields.warning_header(text))
    return response


def _method_not_allowed() -> StatusError:
    """405 as kube-apiserver's router answers it (empty details)."""
    return StatusError(
        405, "the server does not allow this method on the requested resource", details={}
    )


# aiohttp >= 3.10 tells an unknown method apart; older versions answer it as before.
_BAD_METHOD: Any = getattr(http_exceptions, "BadHttpMethod", ())


class StatusRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering an unknown HTTP method as kube-apiserver does.

    aiohttp's C parser refuses a method it does not know (``FOO``) before any handler
    runs, with a plain-text 400; Go's HTTP server takes any token, and kube-apiserver's
    router answers 405 with a ``Status``.
    """

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A 405 ``Status`` for an unknown method; aiohttp's answer otherwise."""
        if isinstance(exc, _BAD_METHOD):
            response = status_response(_method_not_allowed())
            response.force_close()
            return response
        return super().handle_error(request, status, exc, message)


def status_response(error: StatusError) -> web.Response:
    """The HTTP response carrying a failure Status."""
    response = _json_response(orjson.dumps(error.status()), error.code)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


class ApiApp:
    """The aiohttp application serving one store.

    Args:
        store: objects and history.
        hub: the open watches.
        faults: armed faults.
        options: behaviour that may change at run time.
        requests: where answered requests are recorded.
        token: the bearer token every request must carry, or None.
        server_address: ``host:port`` for the ``/api`` document.
    """

    def __init__(
        self,
        store: Store,
        hub: WatchHub,
        faults: Faults,
        options: ServerOptions,
        requests: RequestLog,
        *,
        token: str | None,
    ) -> None:
        self.store = store
        self.hub = hub
        self.faults = faults
        self.options = options
        self.requests = requests
        self.token = token
        self.server_address = ""
        self._openapi_docs: tuple[int, OpenApiDocuments] | None = None

    def application(self) -> web.Application:
        """A new aiohttp application routing everything to :meth:`handle`."""
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_response_prepare.append(self._record)
        return app

    def _authenticated(self, request: web.Request) -> bool:
        """Whether the request carries the token, as kube-apiserver's bearer authenticator reads it.

        The scheme is case-insensitive (``bearer`` works, as the in-cluster loader sends
        it); the token is the second space-separated part of the header.
        """
        parts = request.headers.get("Authorization", "").strip().split(" ", 2)
        return len(parts) >= 2 and parts[0].lower() == "bearer" and parts[1] == self.token

    async def _record(self, request: web.Request, response: web.StreamResponse) -> None:
        route: _Route | None = request.get(_ROUTE)
        self.requests.record(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                verb=request.get(_VERB),
                status=response.status,
                resource=route.served.resource.full_name if route is not None else None,
                namespace=route.namespace if route is not None else None,
                name=route.name if route is not None else None,
                subresource=route.subresource if route is not None else None,
                content_type=request.content_type if request.body_exists else "",
            )
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one request; every failure becomes a ``Status`` response."""
        try:
            if self.token is not None and not self._authenticated(request):
                raise StatusError(401, "Unauthorized")
            return await self._dispatch(request)
        except StatusError as error:
            return status_response(error)
        except web.HTTPException as exc:
            return status_response(StatusError(exc.status, exc.text or exc.reason))
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:
            log.exception(
                "rxkube test API server: unexpected error on %s %s", request.method, request.path
            )
            return status_response(StatusError(500, f"Internal error occurred: {exc!r}"))

    # ---------------------------------------------------------------- routing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        method = request.method
        if parts and parts[0] == "openapi":
            request[_VERB] = "discovery"
            await self._before(request, "discovery")
            return await self._openapi(request, parts[1:])
        if (
            not parts
            or parts[0] not in ("api", "apis")
            or len(parts) <= (2 if parts[0] == "api" else 3)
        ):
            request[_VERB] = "discovery"
            await self._before(request, "discovery")
            return self._discovery(parts, method, request.headers.get("Accept", ""))
        route = self._route(parts)
        request[_ROUTE] = route
        verb = request[_VERB] = self._verb(method, route, request)
        await self._before(request, verb)
        query = request.query
        accept = request.headers.get("Accept", "")
        if verb == "list":
            shape = negotiate(accept, want_list=True, lenient=False, tables=True)
            return await self._list(route, query, shape)
        if verb == "watch":
            shape = negotiate(accept, want_list=False, lenient=True, tables=True)
            return await self._watch(request, route, query, shape)
        tables = verb == "get" and route.subresource != "scale"
        shape = negotiate(accept, want_list=False, lenient=False, tables=tables)
        meta = shape.metadata_only
        version = route.served.resource.api_version
        if route.subresource == "scale":
            return await self._scale(request, route, verb)
        if verb == "get":
            assert route.name is not None
            rv_param = query.get("resourceVersion", "")
            if rv_param not in ("", "0"):
                # Not older than rv_param: wait for it, as a list does.
                await self._wait_for_rv(_parse_rv(rv_param))
            stored = self.store.get(route.served, route.namespace, route.name)
            if shape.table:
                metadata = {"resourceVersion": str(stored.rv)}
                return self._table(route.served, [stored], shape.table, query, metadata)
            return _json_response(stored.encoded(meta, version))
        warnings: list[str] = []
        if verb == "create" and not route.served.stored:
            options = write_options(request, "CreateOptions")
            obj = await _read_object(request, route.served, options, warnings)
            if route.served.resource.plural == "bindings":
                answer = bind(self.store, obj, route.namespace, dry_run=options.dry_run)
            else:
                answer = review(route.served, obj, route.namespace, token=self.token)
            return _warned(_json_response(orjson.dumps(answer), 201), warnings)
        if verb == "create":
            options = write_options(request, "CreateOptions")
            obj = await _read_object(request, route.served, options, warnings)
            stored = await _off_loop(
                len(await _read_body(request)), self.store.create,
                route.served, obj, route.namespace, via_http=True,
                field_manager=options.field_manager, dry_run=options.dry_run, warnings=warnings,
            )  # fmt: skip
            return _warned(_json_response(stored.encoded(meta, version), 201), warnings)
        if verb == "update":
            assert route.name is not None
            options = write_options(request, "UpdateOptions")
            obj = await _read_object(request, route.served, options, warnings)
            size = len(await _read_body(request))
            try:
                stored = await _off_loop(
                    size, self.store.update,
                    route.served, route.namespace, route.name, obj,
                    subresource=route.subresource, via_http=True,
                    field_manager=options.field_manager, dry_run=options.dry_run,
                    warnings=warnings,
                )  # fmt: skip
            except StatusError as exc:
                if exc.code != 404 or route.subresource or not route.served.create_on_update:
                    raise
                stored = await _off_loop(
                    size, self.store.create,
                    route.served, obj, route.namespace, via_http=True,
                    field_manager=options.field_manager, dry_run=options.dry_run,
                    warnings=warnings,
                )  # fmt: skip
                return _warned(_json_response(stored.encoded(meta, version), 201), warnings)
            return _warned(_json_response(stored.encoded(meta, version)), warnings)
        if verb == "patch":
            return _warned(await self._patch(request, route, meta, warnings), warnings)
        if verb == "delete":
            return await self._delete(request, route, meta)
        return await self._delete_collection(route, query, meta)

    async def _before(self, request: web.Request, verb: str) -> None:
        delay = self.faults.take_delay(verb)
        if delay > 0:
            await asyncio.sleep(delay)
        failure = self.faults.take_failure(verb)
        if failure is not None:
            raise failure

    def _route(self, parts: list[str]) -> _Route:
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        watch_path = bool(rest) and rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        namespace: str | None = None
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise StatusError(404, _NOT_FOUND, details={})
        served = self.store.lookup(group, version, rest[0])
        if served is None or (namespace is not None and not served.resource.namespaced):
            raise StatusError(404, _NOT_FOUND, details={})
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and not (
            (subresource == "status" and served.status_subresource)
            or (subresource == "scale" and served.scale is not None)
        ):
            raise StatusError(404, _NOT_FOUND, details={})
        return _Route(served, namespace, name, subresource, watch_path)

    @staticmethod
    def _verb(method: str, route: _Route, request: web.Request) -> str:
        named = route.name is not None
        if route.watch_path or (
            method == "GET" and not named and _bool_param(request.query, "watch")
        ):
            if method != "GET":
                raise _method_not_allowed()
            return "watch"
        verbs = {
            ("GET", True): "get",
            ("GET", False): "list",
            ("POST", False): "create",
            ("PUT", True): "update",
            ("PATCH", True): "patch",
            ("DELETE", True): "delete",
            ("DELETE", False): "deletecollection",
        }
        verb = verbs.get((method, named))
        if route.namespace is None and route.served.resource.namespaced:
            # The all-namespaces path of a namespaced kind serves lists and watches only:
            # kube-apiserver registers no other route there.
            if named:
                raise StatusError(404, _NOT_FOUND, details={})
            if verb != "list":
                verb = None
        if verb is None or (route.subresource and verb not in ("get", "update", "patch")):
            raise _method_not_allowed()
        if not route.subresource and verb not in route.served.verbs:
            raise _method_not_allowed()  # kube-apiserver registers no route for it
        return verb

    async def _openapi(self, request: web.Request, parts: list[str]) -> web.Response:
        """``/openapi/v2``, ``/openapi/v3`` and its group-versions, as kube-openapi's handlers answer.

        v2 is served as JSON only: a client accepting only protobuf (client-go's
        ``OpenAPISchema``) gets 406 and falls back as it does on such a server. A v3
        request whose ``hash`` is not the document's is redirected (301) to the current one.
        """
        if request.method != "GET":
            raise _method_not_allowed()
        generation = self.store.generation
        if self._openapi_docs is None or self._openapi_docs[0] != generation:
            self._openapi_docs = (generation, OpenApiDocuments(self.store.served()))
        docs = self._openapi_docs[1]
        if parts == ["v2"]:
            accept = request.headers.get("Accept", "") or "*/*"
            if not any(
                media.split(";")[0].strip() in (_JSON, "application/*", "*/*")
                for media in accept.split(",")
            ):
                return web.Response(status=406, text="406 Not Acceptable")
            body = await asyncio.to_thread(docs.v2)
            return _json_response(body, headers={"Etag": f'"{etag(body)}"'})
        if parts == ["v3"]:
            body = await asyncio.to_thread(docs.v3_root)
            return _json_response(body, headers={"Etag": f'"{etag(body)}"'})
        if len(parts) > 1 and parts[0] == "v3":
            path = "/".join(parts[1:])
            document = await asyncio.to_thread(docs.v3, path)
            if document is None:
                raise StatusError(404, _NOT_FOUND, details={})
            tag = etag(document)
            headers = {"Etag": f'"{tag}"', "Vary": "Accept"}
            wanted = request.query.get("hash", "")
            if wanted and wanted != tag:
                location = f"/openapi/v3/{path}?hash={tag}"
                return web.Response(status=301, headers={"Location": location})
            if wanted:
                headers["Cache-Control"] = "public, immutable"
            return _json_response(document, headers=headers)
        raise StatusError(404, _NOT_FOUND, details={})

    def _discovery(self, parts: list[str], method: str, accept: str) -> web.Response:
        if method != "GET":
            raise _method_not_allowed()
        served = self.store.served()
        path = "/".join(parts)
        doc: dict[str, Any] | None = None
        if path in ("api", "apis") and _wants_aggregated(accept):
            doc = _discovery.aggregated(served, legacy=path == "api")
            return _json_response(orjson.dumps(doc), content_type=_discovery.AGGREGATED_V2)
        if path == "version":
            doc = _discovery.KUBERNETES_VERSION
        elif path in ("healthz", "livez", "readyz"):
            return web.Response(text="ok", content_type="text/plain")
        elif path == "api":
            doc = _discovery.api_versions(self.server_address)
        elif path == "apis":
            doc = _discovery.api_group_list(served)
        elif len(parts) == 2 and parts[0] == "api":
            doc = _discovery.api_resource_list(served, "", parts[1])
        elif len(parts) == 2:
            doc = _discovery.api_group(served, parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = _discovery.api_resource_list(served, parts[1], parts[2])
        if doc is None:
            raise StatusError(404, _NOT_FOUND, details={})
        return _json_response(orjson.dumps(doc))

    # -------------------------------------------------------------------- reads

    def _filter(self, route: _Route, query: Any, metadata_only: bool) -> WatchFilter:
        try:
            labels = LabelSelector.parse(query.get("labelSelector", ""))
            fields = FieldSelector.parse(query.get("fieldSelector", ""))
        except SelectorError as exc:
            raise StatusError(400, exc.reason) from None
        # The first refused field in the selector's (sorted) order, as the handler's
        # FieldSelector.Transform meets them (k8s.io/apiserver/pkg/endpoints/handlers/get.go).
        for requirement in fields:
            refusal = route.served.refused_field(requirement.field)
            if refusal is not None:
                raise StatusError(400, refusal)
        fields = storage_fields(route.served, fields)
        shard: Shard | None = None
        echo: str | None = None
        if self.options.sharded_lists and "shardSelector" in query:
            # The registry returns the parse error unwrapped, so the handler answers it as
            # an internal error: 500, with no reason (k8s.io/apiserver registry/store.go).
            try:
                ranges, key = parse_requirements(query["shardSelector"])
            except ShardSelectorError as exc:
                raise StatusError(500, f"invalid shard selector: {exc}", reason="") from None
            shard, echo = Shard(tuple(ranges), key), applied_selector(query["shardSelector"])
        return WatchFilter(
            route.namespace,
            labels,
            fields,
            metadata_only,
            shard,
            route.served.resource.api_version,
            echo,
        )

    async def _wait_for_rv(self, rv: int) -> None:
        """Wait (like kube-apiserver's watch cache, a few seconds) for the store to reach
        ``rv``; then answer 504 ``ResourceVersionTooLarge``."""
        loop = asyncio.get_running_loop()
        reached: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not reached.done():
                reached.set_result(None)

        cancel = self.store.when_reached(rv, lambda: self.hub.call_soon(settle))
        try:
            await asyncio.wait_for(reached, self.options.too_large_wait)
        except TimeoutError:
            raise too_large_resource_version(rv, self.store.rv) from None
        finally:
            cancel()

    async def _list(self, route: _Route, query: Any, shape: Representation) -> web.Response:
        flt = self._filter(route, query, shape.metadata_only)
        rv_param = query.get("resourceVersion", "")
        match = query.get("resourceVersionMatch", "")
        token = query.get("continue", "")
        limit = max(0, _int_param(query, "limit"))
        causes: list[tuple[str, str, str]] = []  # (field, error, detail)
        if match:
            if not rv_param:
                causes.append(
                    (
                        "resourceVersionMatch",
                        "Forbidden",
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    )
                )
            if token:
                causes.append(
                    (
                        "resourceVersionMatch",
                        "Forbidden",
                        "resourceVersionMatch is forbidden when continue is provided",
                    )
                )
            if match not in ("Exact", "NotOlderThan"):
                causes.append(
                    (
                        "resourceVersionMatch",
                        "Unsupported value",
                        f'"{match}": supported values: "Exact", "NotOlderThan", ""',
                    )
                )
            if match == "Exact" and rv_param == "0":
                causes.append(
                    (
                        "resourceVersionMatch",
                        "Forbidden",
                        'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                    )
                )
        if query.get("sendInitialEvents"):
            causes.append(
                ("sendInitialEvents", "Forbidden", "sendInitialEvents is forbidden for list")
            )
        if causes:
            raise invalid_options(causes)
        at_rv: int | None = None
        start = ""
        token_rv: int | None = None
        if token:
            if rv_param:
                raise StatusError(
                    400, "specifying resource version is not allowed when using continue"
                )
            continue_rv, start = decode_continue(token)
            at_rv = None if continue_rv == -1 else continue_rv
        elif rv_param == "0":
            limit = 0  # served from the watch cache, which ignores limit
        elif rv_param:
            # v1.32's watch cache passes a limited or exact list on to etcd.
            wanted = _parse_rv(rv_param, from_etcd=bool(limit) or match == "Exact")
            await self._wait_for_rv(wanted)
            if match == "Exact" or (not match and limit):
                at_rv = wanted
        try:
            page = self.store.list(
                route.served, flt, at_rv=at_rv, limit=limit, start=start, token_rv=token_rv
            )
        except ResourceVersionTooOld:
            if token:
                raise StatusError(
                    410,
                    _INCONSISTENT_CONTINUE,
                    reason="Expired",
                    continue_token=encode_continue(-1, start),
                ) from None
            raise StatusError(
                410, "The resourceVersion for the provided list is too old.", reason="Expired"
            ) from None
        if shape.table:
            metadata = self._list_metadata(page.rv, page, flt.shard_selector)
            return self._table(route.served, page.items, shape.table, query, metadata)
        return self._list_response(
            route.served, page.rv, page.items, shape.metadata_only, page, flt.shard_selector
        )

    @staticmethod
    def _list_metadata(
        rv: int, page: Any = None, shard_selector: str | None = None
    ) -> dict[str, Any]:
        """A list's ``ListMeta``: its resourceVersion, continue token and shard selector."""
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if page is not None and page.next_start is not None:
            meta["continue"] = encode_continue(page.token_rv, page.next_start)
            if page.remaining is not None:
                meta["remainingItemCount"] = page.remaining
        if shard_selector is not None:
            meta["shardInfo"] = {"selector": shard_selector}
        return meta

    @staticmethod
    def _table(
        served: ServedResource,
        items: list[Stored],
        api_version: str,
        query: Any,
        metadata: dict[str, Any],
    ) -> web.Response:
        """The objects as a ``Table`` with the rows kube-apiserver's printers give."""
        # Rows embed objects read in the version asked for, as every other answer does.
        version = served.resource.api_version
        doc = _tables.table(
            _tables.printer_of(served),
            [convert(s.obj, version) for s in items],
            include=_tables.include_object(query),
            metadata=metadata,
            api_version=api_version,
        )
        return _json_response(orjson.dumps(doc))

    @classmethod
    def _list_response(
        cls,
        served: ServedResource,
        rv: int,
        items: list[Stored],
        metadata_only: bool,
        page: Any = None,
        shard_selector: str | None = None,
    ) -> web.Response:
        meta = cls._list_metadata(rv, page, shard_selector)
        res = served.resource
        typed = served.strategic_merge  # built-in kinds are listed as typed Go lists
        if metadata_only:
            kind, api_version = _META_LIST, "meta.k8s.io/v1"
        else:
            kind, api_version = f"{res.kind}List", res.api_version
            if not typed:
                # An unstructured list's SetContinue stores even an empty token.
                meta.setdefault("continue", "")
        head = orjson.dumps({"kind": kind, "apiVersion": api_version, "metadata": meta})
        encoded = (s.list_item(metadata_only, res.api_version, typed=typed) for s in items)
        body = b"".join((head[:-1], b',"items":[', b",".join(encoded), b"]}"))
        return _json_response(body)

    async def _watch(
        self, request: web.Request, route: _Route, query: Any, shape: Representation
    ) -> web.StreamResponse:
        metadata_only = shape.metadata_only
        flt = self._filter(route, query, metadata_only)
        rows = None
        if shape.table:
            printer = _tables.printer_of(route.served)
            rows = _tables.table_events(printer, _tables.include_object(query), shape.table)
        rv_param = query.get("resourceVersion", "")
        match = query.get("resourceVersionMatch", "")
        send_initial = _bool_param(query, "sendInitialEvents")
        bookmarks = bool(_bool_param(query, "allowWatchBookmarks"))
        # A negative timeoutSeconds ends the watch at once, as kube-apiserver's timer does.
        timeout = _int_param(query, "timeoutSeconds")
        # (field, error, detail), in the order of apimachinery's validateWatchOptions.
        causes: list[tuple[str, str, str]] = []
        if send_initial is not None and match != "NotOlderThan":
            causes.append(
                (
                    "resourceVersionMatch",
                    "Forbidden",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                )
            )
        if match and send_initial is None:
            causes.append(
                (
                    "resourceVersionMatch",
                    "Forbidden",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                )
            )
        if match and match != "NotOlderThan":
            causes.append(
                (
                    "resourceVersionMatch",
                    "Unsupported value",
                    f'"{match}": supported values: "NotOlderThan"',
                )
            )
        if match and query.get("continue"):
            causes.append(
                (
                    "resourceVersionMatch",
                    "Forbidden",
                    "resourceVersionMatch is forbidden when continue is provided",
                )
            )
        if causes:
            raise invalid_options(causes)
        from_rv = _parse_rv(rv_param) if rv_param not in ("", "0") else None
        refusal: StatusError | None = None
        if send_initial and from_rv is not None:
            # The watch cache waits for a streaming list's resourceVersion as for a
            # list's, and answers a too-large one with an ERROR event on a 200 stream.
            try:
                await self._wait_for_rv(from_rv)
            except StatusError as exc:
                refusal = exc
        if send_initial:
            initial, from_rv = "stream", None
        elif send_initial is False:
            initial = "none"
        else:
            initial = "none" if from_rv is not None else "state"
        served = route.served
        stream = WatchStream(
            self.hub,
            self.faults,
            buffer=self.options.watch_buffer,
            resource=served.resource.full_name,
            identifier=f'key: "/{served.resource.full_name}/{route.namespace or ""}", '
            f'labels: "{query.get("labelSelector", "")}", '
            f'fields: "{query.get("fieldSelector", "")}"',
            transform=rows,
        )
        stalled = self.faults.take_stall()
        response = web.StreamResponse(status=200, headers={"Content-Type": _JSON})
        response.enable_chunked_encoding()
        self.hub.add(stream)
        try:
            await response.prepare(request)
            if stalled:
                await stream.wait_closed()
                if stream.closing == "abrupt" and request.transport is not None:
                    request.transport.abort()
                    return response
                await response.write_eof()
                return response
            if refusal is None and send_initial and not self.options.streaming_lists:
                refusal = StatusError(
                    500,
                    "Internal error occurred: unable to serve the initial events: "
                    "etcd RequestWatchProgress is disabled",
                )
            if refusal is not None:
                await response.write(event_line("ERROR", orjson.dumps(refusal.status())))
                await response.write_eof()
                return response
            try:
                unregister = self.store.watch(
                    served,
                    flt,
                    stream,
                    from_rv=from_rv,
                    initial=initial,  # type: ignore[arg-type]
                    end_bookmark=bookmarks,
                )
            except ResourceVersionTooOld as exc:
                error = StatusError(410, str(exc), reason="Expired")
                await response.write(event_line("ERROR", orjson.dumps(error.status())))
                await response.write_eof()
                return response
            floor = from_rv or 0

            def bookmark() -> None:
                self.store.bookmark(served, metadata_only, stream, floor)

            try:
                await stream.run(
                    request,
                    response,
                    timeout=float(max(timeout, 0)) if timeout else None,
                    bookmark=bookmark if bookmarks else None,
                    bookmark_interval=lambda: self.options.bookmark_interval,
                )
            finally:
                unregister()
            return response
        except ConnectionResetError:
            # The client went away mid-stream (a watcher disposed, say): an ordinary end
            # of a watch, not a server error worth logging.
            return response
        finally:
            self.hub.remove(stream)

    # ------------------------------------------------------------------- writes

    async def _patch(
        self, request: web.Request, route: _Route, metadata_only: bool, warnings: list[str]
    ) -> web.Response:
        assert route.name is not None
        content_type = request.content_type
        check_patch_type(content_type, strategic_ok=route.served.strategic_merge)
        is_apply = content_type == APPLY_PATCH
        options = write_options(request, "PatchOptions", apply=is_apply)
        data = await _read_body(request)
        if is_apply:
            config = await _decode_apply(data)
            _fields.check_apply(route.served, config, route.namespace, route.name)
            stored, created = await _off_loop(
                len(data), self.store.apply,
                route.served, route.namespace, route.name, config,
                field_manager=options.field_manager,
                force=bool(_bool_param(request.query, "force")),
                subresource=route.subresource, via_http=True, dry_run=options.dry_run,
                warnings=warnings,
            )  # fmt: skip
            raw = stored.encoded(metadata_only, route.served.resource.api_version)
            return _json_response(raw, 201 if created else 200)
        try:
            decoded = await _decode(data, yaml_body=False)
        except DecodeError as exc:
            prefix = (
                "" if content_type.startswith("application/strategic") else "error decoding patch: "
            )
            raise StatusError(400, f"{prefix}{exc}") from None
        change = _fields.checked_patch(
            route.served,
            patch_function(content_type, decoded, route.served),
            data,
            patch_type=content_type,
            directive=options.field_validation,
            warnings=warnings,
        )
        stored = await _off_loop(
            len(data), self.store.patch,
            route.served, route.namespace, route.name, change,
            subresource=route.subresource, via_http=True,
            field_manager=options.field_manager, dry_run=options.dry_run, warnings=warnings,
        )  # fmt: skip
        return _json_response(stored.encoded(metadata_only, route.served.resource.api_version))

    async def _scale(self, request: web.Request, route: _Route, verb: str) -> web.Response:
        """``/scale``: a parent's replicas read and written as an ``autoscaling/v1`` Scale.

        An update, patch or server-side apply changes the parent (its watchers see a
        MODIFIED event) and answers the new Scale; field ownership of the replicas moves
        between the parent's and the Scale's managers as ``_scale_fields.py`` says.
        """
        assert route.name is not None
        served = route.served
        if verb == "get":
            stored = self.store.get(served, route.namespace, route.name)
            return _json_response(orjson.dumps(_scale.scale_of(served, stored.obj)))
        warnings: list[str] = []
        now = now_timestamp()
        write: _scale_fields.ScaleWrite
        if verb == "update":
            options = write_options(request, "UpdateOptions")
            body = await _read_object(request, _scale.SCALE_SERVED, options, warnings)
            write = _scale_fields.updating(body, options.field_manager, now)
        elif request.content_type == APPLY_PATCH:
            options = write_options(request, "PatchOptions", apply=True)
            config = await _decode_apply(await _read_body(request))
            _fields.check_apply(_scale.SCALE_SERVED, config, route.namespace, route.name)
            force = bool(_bool_param(request.query, "force"))
            write = _scale_fields.applying(config, options.field_manager, force=force, now=now)
        else:
            check_patch_type(request.content_type, strategic_ok=True)
            options = write_options(request, "PatchOptions")
            # A Scale accepts strategic merge patches whatever kind it scales.
            patch = patch_function(
                request.content_type,
                await _decode_body(await _read_body(request)),
                dataclasses.replace(route.served, strategic_merge=True),
            )
            write = _scale_fields.patching(patch, options.field_manager, now)
        stored = self.store.patch(
            served, route.namespace, route.name,
            lambda current: _scale_fields.written(served, current, write),
            via_http=True, dry_run=options.dry_run,
        )  # fmt: skip
        return _warned(_json_response(orjson.dumps(_scale.scale_of(served, stored.obj))), warnings)

    async def _delete(
        self, request: web.Request, route: _Route, metadata_only: bool
    ) -> web.Response:
        assert route.name is not None
        uid = rv = None
        dry_run = request.query.getall("dryRun", [])
        requested: int | None = (
            _int_param(request.query, "gracePeriodSeconds")
            if "gracePeriodSeconds" in request.query
            else None
        )
        data = await _read_body(request)
        options: Any = {}
        if request.content_type == _PROTOBUF and data:
            try:
                options = decode_delete_options(data)  # client-go's typed clients send these
            except ProtobufError as exc:
                raise StatusError(400, str(exc)) from None
        elif data.strip():
            options = await _decode_body(data)
        if isinstance(options, dict):
            preconditions = options.get("preconditions")
            if isinstance(preconditions, dict):
                uid, rv = preconditions.get("uid"), preconditions.get("resourceVersion")
            if isinstance(options.get("dryRun"), list):
                dry_run = dry_run or options["dryRun"]
            if requested is None and isinstance(options.get("gracePeriodSeconds"), int):
                requested = options["gracePeriodSeconds"]
        causes = dry_run_causes(dry_run)
        if causes:
            raise invalid_options(causes, kind="DeleteOptions")
        orphan, policy = _gc.delete_options(request.query, options)
        stored, gone = self.store.delete(
            route.served, route.namespace, route.name, precondition_uid=uid, precondition_rv=rv,
            dry_run=bool(dry_run),
            grace=lambda obj: grace_seconds(route.served, obj, requested),
            finalizers=lambda obj: _gc.finalizers(route.served.resource, obj, orphan, policy),
        )  # fmt: skip
        if gone and not route.served.returns_deleted_object:
            meta = stored.obj["metadata"]
            return _json_response(
                orjson.dumps(status_success(route.served.resource, meta["name"], meta["uid"]))
            )
        return _json_response(stored.encoded(metadata_only, route.served.resource.api_version))

    async def _delete_collection(
        self, route: _Route, query: Any, metadata_only: bool
    ) -> web.Response:
        flt = self._filter(route, query, False)
        dry_run = query.getall("dryRun", [])
        requested = (
            _int_param(query, "gracePeriodSeconds") if "gracePeriodSeconds" in query else None
        )
        causes = dry_run_causes(dry_run)
        if causes:
            raise invalid_options(causes, kind="DeleteOptions")
        deleted: list[Stored] = []
        orphan, policy = _gc.delete_options(query, None)
        for stored in self.store.list(route.served, flt).items:
            meta = stored.obj["metadata"]
            try:
                last, _ = self.store.delete(
                    route.served, meta.get("namespace"), meta["name"], dry_run=bool(dry_run),
                    grace=lambda obj: grace_seconds(route.served, obj, requested),
                    finalizers=lambda obj: _gc.finalizers(route.served.resource, obj, orphan, policy),
                )  # fmt: skip
            except StatusError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(last)
        return self._list_response(route.served, self.store.rv, deleted, metadata_only)
