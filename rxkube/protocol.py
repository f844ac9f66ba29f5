"""The list/watch protocol as a pure state machine: no I/O, no threads, no clock.

``WatchMachine`` decides what to request next and what each answer means. A driver
(the Rx face in ``watcher.py``, or a test) performs the requests and feeds the answers
back; the machine returns the events to emit and raises a typed ``rxkube.errors``
exception for any failure it cannot recover from itself.

States (one per class below) and their transitions::

    Listing(cont=None) --200, more pages--> Listing(cont) --last page--> Watching(rv)
    Listing --410 (too old rv, expired continue token)--> Listing(consistent relist)
    Listing --504 ResourceVersionTooLarge (history went back)--> Listing(consistent relist)
    StreamingList --initial-events-end bookmark--> Watching(rv)
    StreamingList --refused by HTTP 400/422 (the server lacks the feature)--> Listing (for good)
    StreamingList --ERROR event, ended early--> Listing (this relist only)
    Watching --clean end--> Watching(rv)  (a new watch from rv, no relist)
    Watching --ERROR 410 / HTTP 410--> Listing or StreamingList (a full relist)
    StreamingList, Watching --ResourceVersionTooLarge--> Listing or StreamingList (a full relist)

With ``Config(shard=...)`` every request carries ``shardSelector`` (KEP-5866). A list
page whose ``metadata.shardInfo.selector`` echoes it was filtered by the server; any
other page, every streaming-list event and every watch event is filtered here with the
server's own hash, so an old server that ignores the parameter yields the same events.

A ``ResourceVersionTooLarge`` answer (HTTP 504 ``Timeout``, or an ERROR event with that
Status) means the server's history is behind the client's resume point: etcd was
restored from a backup, or a test server restarted. As client-go's reflector does, it
is treated like a 410: the next list is a consistent read with no resourceVersion.

A machine made with ``watch_from`` starts in Watching at that resourceVersion.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ._shards import Shard, ShardSelectorError
from ._unchanged_parts import UnchangedParts
from .errors import DecodeError, api_error, failure_status
from .events import Apply, Delete, Event, Init, InitApply, InitDone

__all__ = [
    "INITIAL_EVENTS_END",
    "MAX_EVENT_BYTES",
    "Config",
    "ListRequest",
    "Request",
    "WatchMachine",
    "WatchRequest",
]

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
"""The annotation on the bookmark that closes the initial events of a streaming list."""

MAX_EVENT_BYTES = 16 * 1024 * 1024
"""The longest watch line accepted by default: client-go's limit on one decoded frame
(``maxBytes: 16 * 1024 * 1024`` in apimachinery's ``runtime/serializer/streaming``
``NewDecoder``, which fails a longer one with ``ErrObjectTooLarge``)."""

_MAX_TIMEOUT = 295
_STALL_MARGIN = 5.0

_TOO_LARGE_RV_CAUSE = "ResourceVersionTooLarge"
_TOO_LARGE_RV_MESSAGE = "Too large resource version"


@dataclass(frozen=True, slots=True)
class Config:
    """How a watcher lists and watches.

    Args:
        label_selector: e.g. ``"app=web,tier in (a,b)"``; validated at construction.
        field_selector: e.g. ``"metadata.name=x"``; validated at construction.
        timeout: the server-side watch timeout in seconds (``timeoutSeconds``), 1 to 294.
            A connection silent for longer than ``timeout + 5`` s is treated as dead.
        list_semantic: ``"most_recent"`` lists with a consistent read; ``"any"`` asks for
            ``resourceVersion=0``, served from the API server's cache, possibly stale.
        page_size: items per list page; ``None`` lists everything in one response.
        bookmarks: ask for BOOKMARK events, so resuming a watch rarely needs a relist.
        initial_list_strategy: ``"list_watch"`` (list pages, then watch) or
            ``"streaming_list"`` (``sendInitialEvents`` on the watch that starts each
            relist, falling back to list+watch: for good when the server does not know
            the parameters (HTTP 400/422), for that relist only when it fails one (an
            ERROR event, an early end), as client-go's reflector does).
        shard: only the objects whose hash falls in this :class:`~rxkube.Shard` (or
            ``shardSelector`` string, parsed as the API server does): sent as
            ``shardSelector``, and enforced client-side wherever the server's answer
            does not show that it applied it.
        max_event_bytes: the longest watch event (one line) accepted; a server sending
            a longer one gets a ``DecodeError`` as soon as that many bytes arrived without
            a newline, instead of the line being buffered without bound. 16 MiB, as
            client-go, by default.

    Example:
        >>> Config(label_selector="app=web", page_size=100).page_size
        100
    """

    label_selector: str | None = None
    field_selector: str | None = None
    timeout: int = 290
    list_semantic: Literal["most_recent", "any"] = "most_recent"
    page_size: int | None = 500
    bookmarks: bool = True
    initial_list_strategy: Literal["list_watch", "streaming_list"] = "list_watch"
    shard: Shard | str | None = None
    max_event_bytes: int = MAX_EVENT_BYTES

    def __post_init__(self) -> None:
        if not _is_whole(self.timeout) or not 0 < self.timeout < _MAX_TIMEOUT:
            raise ValueError(
                f"Config.timeout must be a whole number of seconds from 1 to {_MAX_TIMEOUT - 1}, "
                f"got {self.timeout!r}"
            )
        if self.list_semantic not in ("most_recent", "any"):
            raise ValueError(
                f"Config.list_semantic must be 'most_recent' or 'any', got {self.list_semantic!r}"
            )
        if self.page_size is not None and (not _is_whole(self.page_size) or self.page_size < 1):
            raise ValueError(
                f"Config.page_size must be a positive integer or None, got {self.page_size!r}"
            )
        if not _is_whole(self.max_event_bytes) or self.max_event_bytes < 1:
            raise ValueError(
                "Config.max_event_bytes must be a positive number of bytes, "
                f"got {self.max_event_bytes!r}"
            )
        if self.initial_list_strategy not in ("list_watch", "streaming_list"):
            raise ValueError(
                "Config.initial_list_strategy must be 'list_watch' or 'streaming_list', "
                f"got {self.initial_list_strategy!r}"
            )
        if not isinstance(self.bookmarks, bool):
            raise ValueError(f"Config.bookmarks must be True or False, got {self.bookmarks!r}")
        if self.label_selector is not None:
            from .selectors import LabelSelector

            try:
                LabelSelector.parse(self.label_selector)
            except ValueError as exc:
                raise ValueError(f"Config.label_selector is invalid: {exc}") from None
        if self.field_selector is not None:
            from .selectors import FieldSelector

            try:
                FieldSelector.parse(self.field_selector)
            except ValueError as exc:
                raise ValueError(f"Config.field_selector is invalid: {exc}") from None
        if isinstance(self.shard, str):
            try:
                object.__setattr__(self, "shard", Shard.parse(self.shard))
            except ShardSelectorError as exc:
                raise ShardSelectorError(f"Config.shard is invalid: {exc}") from None
        elif self.shard is not None and not isinstance(self.shard, Shard):
            raise ShardSelectorError(
                f"Config.shard must be a Shard, a shardSelector string or None, got {self.shard!r}"
            )

    @property
    def idle_timeout(self) -> float:
        """Seconds of silence after which a watch connection is treated as dead."""
        return self.timeout + _STALL_MARGIN

    def _selector_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        if isinstance(self.shard, Shard):
            params["shardSelector"] = self.shard.selector()
        return params


@dataclass(frozen=True, slots=True)
class ListRequest:
    """GET the collection with these query parameters; answer with ``on_list``."""

    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class WatchRequest:
    """Open a watch on the collection with these query parameters.

    Answer with ``on_watch_failed`` if the status is not 200, else ``on_watch_event``
    per line and ``on_watch_end`` at the clean end of the response.
    """

    params: dict[str, str]
    idle_timeout: float
    max_event_bytes: int = MAX_EVENT_BYTES


Request = ListRequest | WatchRequest


# The states. ``resume`` is a resourceVersion to list from with NotOlderThan; ``None``
# means a consistent read (or ``0`` under list_semantic="any" on the very first list).
# While watching, the resume point lives in ``WatchMachine.resource_version``, updated per event.
@dataclass(frozen=True, slots=True)
class _Listing:
    resume: str | None
    cont: str | None = None


@dataclass(frozen=True, slots=True)
class _StreamingList:
    resume: str | None


@dataclass(frozen=True, slots=True)
class _Watching:
    pass


_WATCHING = _Watching()

_State = _Listing | _StreamingList | _Watching


class WatchMachine:
    """The list/watch state machine of one watcher subscription.

    Args:
        config: the watcher's configuration.
        resume_version: the last resourceVersion a previous subscription saw; the first
            list then asks for ``resourceVersionMatch=NotOlderThan`` from it, so the
            server may answer from its cache without going back in time.
        name: what is watched (e.g. ``"pods in default"``), for error messages.
        watch_from: start by watching from this resourceVersion, without a list: for a
            consumer that already holds the state at that version (a view handed over
            from another watch). A 410 then relists as usual.

    Attributes:
        resource_version: the resourceVersion a new subscription can resume from, if one
            is known; the machine's own to set.
    """

    def __init__(
        self,
        config: Config,
        resume_version: str | None = None,
        *,
        name: str = "",
        watch_from: str | None = None,
    ) -> None:
        if watch_from is not None and not watch_from:
            raise ValueError("WatchMachine(watch_from=...) needs a resourceVersion, got ''")
        self._config = config
        self._name = name
        # Built once: every listed object and watch event is checked with them at hand.
        self._list_what = self._describe("list")
        self._watch_what = self._describe("watch")
        self._streaming = config.initial_list_strategy == "streaming_list"
        # A streaming list that failed (not refused for good) is listed instead until
        # the relist completes; the next relist streams again.
        self._listing_once = False
        self._first_list = watch_from is None
        # A plain attribute, not a property: the driver reads it after every watch line.
        self.resource_version: str | None = watch_from if watch_from is not None else resume_version
        self._state: _State = (
            _WATCHING if watch_from is not None else self._relist_state(resume_version)
        )
        self._restarted = False
        self._shard = config.shard if isinstance(config.shard, Shard) else None
        self._server_sharded: bool | None = None

    @property
    def server_sharded(self) -> bool | None:
        """Whether the last list page showed that the server applied ``shardSelector``.

        ``None`` without a shard, or before the first list page (a streaming list never
        tells: its events are always filtered here).
        """
        return self._server_sharded

    @property
    def stream_done(self) -> bool:
        """Whether the open watch is no longer wanted: the driver should close it and
        ask for ``next_request()`` (after an ERROR 410 or a refused streaming list).

        Only a step that returns no events sets it, so a driver need not look after one
        that returned some."""
        return self._restarted

    def next_request(self) -> Request:
        """The request to perform next."""
        self._restarted = False
        cfg = self._config
        state = self._state
        params = cfg._selector_params()
        if state is _WATCHING:
            assert self.resource_version is not None
            params.update(
                watch="1", resourceVersion=self.resource_version, timeoutSeconds=str(cfg.timeout)
            )
            if cfg.bookmarks:
                params["allowWatchBookmarks"] = "true"
            return WatchRequest(params, cfg.idle_timeout, cfg.max_event_bytes)
        if isinstance(state, _StreamingList):
            params.update(
                watch="1",
                sendInitialEvents="true",
                resourceVersionMatch="NotOlderThan",
                allowWatchBookmarks="true",
                timeoutSeconds=str(cfg.timeout),
            )
            if state.resume is not None:
                params["resourceVersion"] = state.resume
            elif self._first_list and cfg.list_semantic == "any":
                params["resourceVersion"] = "0"
            return WatchRequest(params, cfg.idle_timeout, cfg.max_event_bytes)
        assert isinstance(state, _Listing)
        if cfg.page_size is not None:
            params["limit"] = str(cfg.page_size)
        if state.cont is not None:
            params["continue"] = state.cont
        elif state.resume is not None:
            params.update(resourceVersion=state.resume, resourceVersionMatch="NotOlderThan")
        elif self._first_list and cfg.list_semantic == "any":
            params["resourceVersion"] = "0"
        return ListRequest(params)

    # -- answers to a ListRequest ------------------------------------------------------

    def on_list(self, data: bytes, parts: UnchangedParts | None = None) -> Iterator[Event]:
        """Feed a 200 answer to a ListRequest: its body, as the server sent it.

        Returns the page's events as they are taken: ``Init`` with the first page,
        ``InitApply`` per item, ``InitDone`` after the last page. An item is decoded only
        once the event of the one before it has been taken, so a consumer that is done
        with an event before taking the next never holds a whole page of decoded objects
        beside what it keeps: a store lets go at once of a relisted object it holds
        already, and of the parts of a new one it holds a twin of. The machine moves on
        (to the next page, or to watching) when the last event has been taken; a page
        left unfinished is asked for again.

        The page's envelope is checked before any event: a body that is not a Kubernetes
        list, a missing resourceVersion or a continue token that is not a string is
        refused whole. An item is checked in its turn: a malformed one (or one that is
        not JSON) ends the iteration with a ``DecodeError`` after the events of the items
        before it, which a store only buffers until ``InitDone``, as it does the pages of
        a list that fails midway: what it serves never holds part of a list.

        ``parts``, if given, gives each item the spec its store holds for it where the two
        encode alike.

        Raises:
            DecodeError: a body that is not a Kubernetes list, or a malformed item.
        """
        state = self._state
        if not isinstance(state, _Listing):
            raise RuntimeError(f"on_list called in state {state!r}")
        what = self._list_what
        page = _ListPage(data, what, parts)
        meta = page.metadata
        cont = meta.get("continue")
        if cont and not isinstance(cont, str):
            raise DecodeError(f"{what}: the continue token is not a string: {cont!r:.100}")
        rv = meta.get("resourceVersion")
        if cont:
            rv = None
        elif not rv or not isinstance(rv, str):
            raise DecodeError(f"{what}: the answer has no resourceVersion (got {rv!r:.100})")
        shard = self._shard
        if shard is not None:
            info = meta.get("shardInfo")
            echoed = isinstance(info, dict) and info.get("selector") == shard.selector()
            self._server_sharded = echoed
            if echoed:
                shard = None
        return self._list_events(state, page, shard, cont or None, rv)

    def _list_events(
        self,
        state: _Listing,
        page: _ListPage,
        shard: Shard | None,
        cont: str | None,
        rv: str | None,
    ) -> Iterator[Event]:
        """The events of a checked page, which ends with ``cont`` or at ``rv``; ``shard``
        is the one to filter its items by here (None: the server did, or none)."""
        if state.cont is None:
            yield Init()
        what = self._list_what
        item_kind, api_version = page.item_kind, page.api_version
        for index, item in enumerate(page.items()):
            try:
                _check_object(item, what)
            except DecodeError:
                # The message names the item: checked again, for its text alone.
                _check_object(item, f"{what}, item {index} of the page")
                raise
            if shard is not None and not shard.matches(item):
                continue
            # List items carry no kind/apiVersion on the wire; watch objects do.
            if "kind" not in item:
                item["kind"] = item_kind
                item["apiVersion"] = api_version
            yield InitApply(item)
        if rv is None:
            self._state = _Listing(state.resume, cont)
            return
        self._finish_initial(rv)
        yield InitDone()

    def on_list_failed(
        self, status: int, body: Any, *, retry_after: float | None = None
    ) -> list[Event]:
        """Feed a non-200 answer to a ListRequest: its status and decoded Status body.

        A 410 (too old resourceVersion, expired continue token) or a 504
        ``ResourceVersionTooLarge`` (the server's history is behind the resume point)
        restarts with a consistent relist and returns no events.

        Raises:
            ApiError: any other failure status, typed by code.
        """
        state = self._state
        if not isinstance(state, _Listing):
            raise RuntimeError(f"on_list_failed called in state {state!r}")
        if status == 410 or _is_too_large_rv(status, body):
            self._relist_consistently()
            return []
        raise api_error(status, body, retry_after=retry_after, request=self._list_what)

    # -- answers to a WatchRequest -----------------------------------------------------

    def on_watch_opened(self) -> list[Event]:
        """Feed a 200 answer to a WatchRequest, before its first line."""
        return [Init()] if isinstance(self._state, _StreamingList) else []

    def on_watch_failed(
        self, status: int, body: Any, *, retry_after: float | None = None
    ) -> list[Event]:
        """Feed a non-200 answer to a WatchRequest.

        A 410 or a 504 ``ResourceVersionTooLarge`` relists consistently; a streaming
        list refused with 400 or 422 (a server that does not know its parameters) falls
        back to list+watch for good. Anything else raises the typed ApiError.
        """
        if status == 410 or _is_too_large_rv(status, body):
            self._relist_consistently()
            return []
        if isinstance(self._state, _StreamingList) and status in (400, 422):
            self._streaming = False
            self._fall_back()
            return []
        raise api_error(status, body, retry_after=retry_after, request=self._watch_what)

    def on_watch_event(self, event: Any) -> list[Event]:
        """Feed one decoded watch line (``{"type": ..., "object": ...}``).

        Raises:
            ApiError: an ERROR event other than 410 (typed by its code).
            DecodeError: a line that is not a watch event.
        """
        state = self._state
        if state is not _WATCHING and isinstance(state, _Listing):
            raise RuntimeError(f"on_watch_event called in state {state!r}")
        what = self._watch_what
        try:
            # Only a dict among decoded JSON values has items by name: anything else is a
            # TypeError here, as a dict without them is a KeyError.
            kind = event["type"]
            obj = event["object"]
        except (KeyError, TypeError):
            raise DecodeError(f"{what}: a line is not a watch event: {event!r:.200}") from None
        if kind == "ERROR":
            return self._on_error_event(obj)
        # Every other event carries an object with metadata; a bookmark's has no name.
        rv = _check_object(obj, what, kind != "BOOKMARK")
        # A watch response carries no shardInfo: whichever server answered, objects
        # outside the shard are dropped here (after they moved the resume point).
        shard = self._shard
        if state is _WATCHING:
            if kind in _WATCH_TYPES:
                if not rv:
                    raise _no_resource_version(what, rv)
                self.resource_version = rv
                if kind == "BOOKMARK" or (shard is not None and not shard.matches(obj)):
                    return []
                return [Delete(obj)] if kind == "DELETED" else [Apply(obj)]
        else:
            # Initial events come in arbitrary resourceVersion order: no resume point
            # is taken from them, only from the closing bookmark.
            if kind == "ADDED" or kind == "MODIFIED":
                return [InitApply(obj)] if shard is None or shard.matches(obj) else []
            if kind == "BOOKMARK":
                annotations = obj["metadata"].get("annotations") or {}
                if annotations.get(INITIAL_EVENTS_END) == "true":
                    if not rv:
                        raise _no_resource_version(what, rv)
                    self._finish_initial(rv)
                    return [InitDone()]
                return []
            if kind == "DELETED":
                raise DecodeError(f"{what}: DELETED before the initial-events-end bookmark")
        # As client-go's watch decoder and kube-rs's serde do: an event type outside the
        # protocol is a garbled answer (transient), not one to skip and lose silently.
        raise DecodeError(f"{what}: unknown watch event type {kind!r:.50}")

    def on_watch_end(self) -> list[Event]:
        """Feed the clean end of a watch response (e.g. after ``timeoutSeconds``).

        A watch resumes from the last resourceVersion without a relist; a streaming
        list that ended before its initial-events-end bookmark (a cut connection, a
        server going away) is listed instead, for this relist only.
        """
        if isinstance(self._state, _StreamingList):
            self._fall_back()
        return []

    # -- transitions -------------------------------------------------------------------

    def _on_error_event(self, obj: Any) -> list[Event]:
        if isinstance(obj, dict):
            status: dict[str, Any] = obj
        else:
            # Not a Status: keep the server's words, whatever shape they came in.
            words = obj if isinstance(obj, str) else repr(obj)
            status = failure_status(500, f"ERROR event: {words:.300}")
        code = status.get("code")
        if code == 410 or _is_too_large_rv(code, status):
            self._relist_consistently()
            return []
        if isinstance(self._state, _StreamingList):
            self._fall_back()
            return []
        # An ERROR event stands for a failure whatever its code says.
        failed = code if isinstance(code, int) and _is_whole(code) and 400 <= code <= 599 else 500
        raise api_error(failed, status, request=self._watch_what)

    def _finish_initial(self, rv: str) -> None:
        self._first_list = False
        self._listing_once = False
        self.resource_version = rv
        self._state = _WATCHING

    def _relist_consistently(self) -> None:
        # The resume point is unusable (compacted, or ahead of the server's history):
        # only a consistent read gives a state no older than what the client has seen.
        # Never the cache's resourceVersion=0, which could go back in time.
        self._first_list = False
        self._restart(None)

    def _restart(self, resume: str | None) -> None:
        self.resource_version = resume
        self._state = self._relist_state(resume)
        self._restarted = True

    def _fall_back(self) -> None:
        # client-go's reflector lists instead of a failed watch-list for that attempt
        # only ("making progress is better than deadlocking") and streams the next one:
        # a busy server's ERROR 500 or a cut connection must not cost every later
        # relist a paged LIST. Only a 400/422 (see on_watch_failed) is for good.
        self._listing_once = True
        resume = self._state.resume if isinstance(self._state, _StreamingList) else None
        self._restart(resume)

    def _relist_state(self, resume: str | None) -> _State:
        streaming = self._streaming and not self._listing_once
        return _StreamingList(resume) if streaming else _Listing(resume)

    def _describe(self, verb: str) -> str:
        return f"{verb} {self._name}" if self._name else verb


def _is_too_large_rv(code: Any, status: Any) -> bool:
    """Whether a failure says the resourceVersion asked for is ahead of the server's history.

    kube-apiserver answers such a read with HTTP 504, reason ``Timeout``, and a
    ``details.causes`` entry of reason ``ResourceVersionTooLarge``. Servers before
    1.18.6 sent no such cause: like client-go, a ``Timeout`` whose cause or message
    says "Too large resource version" counts too.

    Args:
        code: the HTTP status code, or the ``code`` of a Status in an ERROR event.
        status: the decoded Status body (anything else is never a match).

    Example:
        >>> body = {"reason": "Timeout", "details": {"causes": [
        ...     {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]}}
        >>> _is_too_large_rv(504, body)
        True
        >>> _is_too_large_rv(504, {"reason": "Timeout", "message": "slow etcd"})
        False
    """
    if not isinstance(status, dict):
        return False
    details = status.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    causes = [c for c in causes if isinstance(c, dict)] if isinstance(causes, list) else []
    if any(c.get("reason") == _TOO_LARGE_RV_CAUSE for c in causes):
        return True
    if code != 504 and status.get("reason") != "Timeout":
        return False
    message = status.get("message")
    return any(c.get("message") == _TOO_LARGE_RV_MESSAGE for c in causes) or (
        isinstance(message, str) and _TOO_LARGE_RV_MESSAGE in message
    )


def _is_whole(value: object) -> bool:
    # bool is an int subclass, but True is no timeout or page size.
    return isinstance(value, int) and not isinstance(value, bool)


def _no_resource_version(what: str, rv: object) -> DecodeError:
    return DecodeError(
        f"{what}: an event object has no valid metadata.resourceVersion: {rv!r:.100}"
    )


# The metadata fields rxkube's own layers read (store keys, indexes, selectors, object
# references): a server's answer with any of them mistyped is refused here, as kube-rs's
# typed ObjectMeta refuses it, before a store or an operator trips over it.
_META_STRINGS = ("namespace", "uid", "resourceVersion", "deletionTimestamp")  # and the name
_META_STRING_MAPS = ("labels", "annotations")
_WATCH_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK")


_NO_MAP: dict[str, Any] = {}
_NO_LIST: list[Any] = []


def _check_object(obj: Any, what: str, named: bool = True) -> str | None:
    """Raise DecodeError unless ``obj`` is an object whose metadata rxkube can rely on.

    Returns its ``metadata.resourceVersion``: a string, or None.
    """
    # Every listed object and watch event passes here, and each interpreted step costs
    # about as much as decoding a hundred bytes: a field-by-field loop was over half of a
    # watch event's own cost. So the well-formed case is screened with one str.join over
    # every string field, label and annotation value and finalizer (it takes strings only,
    # checked in C), and the lists by their classes, in line (a call of its own cost as
    # much as the checks); whatever the screen does not pass (a mistyped field, or a null,
    # which is allowed) is judged, and its problem named, by the exact check.
    try:
        meta = obj["metadata"]
        get = meta.get
        # A missing field screens as "" (absent is allowed); a null as a TypeError.
        "".join(
            (
                get("name", ""),
                get("namespace", ""),
                get("uid", ""),
                get("resourceVersion", ""),
                get("deletionTimestamp", ""),
                obj.get("kind", ""),
                obj.get("apiVersion", ""),
                *get("labels", _NO_MAP).values(),
                *get("annotations", _NO_MAP).values(),
                *get("finalizers", _NO_LIST),
            )
        )
        owners = get("ownerReferences", _NO_LIST)
    except (TypeError, KeyError, AttributeError):
        return _check_object_exactly(obj, what, named)
    # The lists are lists (a string or a map would join too), of maps for the owners.
    if (
        (named and not get("name"))
        or owners.__class__ is not list
        or get("finalizers", _NO_LIST).__class__ is not list
    ):
        return _check_object_exactly(obj, what, named)
    for owner in owners:
        if owner.__class__ is not dict:
            return _check_object_exactly(obj, what, named)
    rv: str | None = get("resourceVersion")
    return rv


def _check_object_exactly(obj: Any, what: str, named: bool) -> str | None:
    """``_check_object`` field by field: raises naming the first problem found."""
    if not isinstance(obj, dict):
        raise DecodeError(f"{what}: expected an object, got {type(obj).__name__}: {obj!r:.200}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise _malformed(what, "metadata is not an object", obj)
    get = meta.get
    name = get("name")
    if named and not (name and isinstance(name, str)):
        raise _malformed(what, "it has no metadata.name", obj)
    if name is not None and not isinstance(name, str):
        raise _malformed(what, "metadata.name is not a string", obj)
    for key in _META_STRINGS:
        value = get(key)
        if value is not None and not isinstance(value, str):
            raise _malformed(what, f"metadata.{key} is not a string", obj)
    for key in _META_STRING_MAPS:
        value = get(key)
        if value is not None:
            if not isinstance(value, dict):
                raise _malformed(what, f"metadata.{key} is not a map of strings", obj)
            for item in value.values():
                if not isinstance(item, str):
                    raise _malformed(what, f"metadata.{key} is not a map of strings", obj)
    for key in ("kind", "apiVersion"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise _malformed(what, f"{key} is not a string", obj)
    value = get("ownerReferences")
    if value is not None:
        if not isinstance(value, list):
            raise _malformed(what, "metadata.ownerReferences is not a list of objects", obj)
        for item in value:
            if not isinstance(item, dict):
                raise _malformed(what, "metadata.ownerReferences is not a list of objects", obj)
    value = get("finalizers")
    if value is not None:
        if not isinstance(value, list):
            raise _malformed(what, "metadata.finalizers is not a list of strings", obj)
        for item in value:
            if not isinstance(item, str):
                raise _malformed(what, "metadata.finalizers is not a list of strings", obj)
    rv: str | None = get("resourceVersion")
    return rv


def _malformed(what: str, problem: str, obj: dict[str, Any]) -> DecodeError:
    return DecodeError(f"{what}: an object is malformed: {problem}: {obj!r:.200}")


# -- list pages, decoded one item at a time -------------------------------------------------
#
# A page decoded whole holds, besides its objects, orjson's parse buffer of about twelve
# times its bytes: in a relist, more than all else it holds at a thousand objects. And all
# of its objects live at once: a store that holds one copy of the parts equal across
# objects frees each duplicate only after the whole page was decoded, and the cyclic
# collector has counted and moved them on meanwhile. So a page is cut into its items'
# bytes and each item is decoded in its turn. Kubernetes
# encodes a list as ``{"kind":..,"apiVersion":..,"metadata":{..},"items":[{..},{..}]}``:
# the items are cut where the bytes that open the first one recur after ``},``.
#
# Why every cut is right, or found wrong: the members before ``,"items":[`` decode (with
# a closing ``}``) as a non-empty object, so the array opens at the top level. Piece 0
# starts with ``{`` where the array's first element starts; each later piece starts with
# ``{`` right after the ``,`` that ends the piece before. A piece that orjson decodes whole
# is an object, and an object's extent is fixed by its own bytes (no object is a prefix of
# a longer one), so it is exactly the element that starts there, and the next piece starts
# where the next element does. The last piece ends before the page's final ``]}``. So when
# every piece decodes, every byte of the page was checked by orjson and the pieces are the
# items; a cut that falls inside an item (its own array of objects opening alike) leaves a
# piece that does not decode, and the rest of the page is then decoded whole, as before.

_ITEMS = b',"items":['
_TRAILING = b" \t\r\n"


class _ListPage:
    """A list answer's envelope, decoded and checked, and its items, decoded when taken."""

    __slots__ = (
        "_data",
        "_end",
        "_parts",
        "_start",
        "_what",
        "_whole",
        "api_version",
        "item_kind",
        "metadata",
    )

    def __init__(self, data: bytes, what: str, parts: UnchangedParts | None = None) -> None:
        """Check the envelope of ``data``, the body of a list answer, and cut it into its
        items, decoded as they are taken (a body not cut is decoded whole at once); each
        item cut is shown to ``parts``, if given.

        Raises:
            DecodeError: a body that is not JSON or not a Kubernetes list.
        """
        self._data = data
        self._parts = parts
        self._what = what
        self._whole: list[Any] | None = None
        self._start = self._end = 0
        cut = _cut(data)
        envelope: tuple[dict[str, Any], str, str] | None = None
        if cut is not None:
            head, self._start, self._end = cut
            head["items"] = []
            # Not a list: the body is decoded whole below, for the words of its error.
            with contextlib.suppress(DecodeError):
                envelope = _list_parts(head, what)[1:]
        if envelope is None:
            items, meta, kind, version = _list_parts(_decode_whole(data, what), what)
            self._whole = items
            envelope = (meta, kind, version)
        self.metadata, self.item_kind, self.api_version = envelope

    def items(self) -> Iterable[Any]:
        """The page's items: the decoded list, or (cut) each decoded as it is taken."""
        return self._cut_items() if self._whole is None else self._whole

    def _cut_items(self) -> Iterator[Any]:
        """Each item of a cut page, decoded as it is taken.

        Raises:
            DecodeError: the page is not JSON past the items taken so far.
        """
        data, start, end = self._data, self._start, self._end
        if start == end:
            return  # "items":[]
        key = data.find(b'":', start, end)
        if data[start] != _OPEN or key < 0:
            yield from self._rest(0)
            return
        # What opens the first item and its first key: what opens every item.
        separator = b"}," + data[start : key + 2]
        view, loads, find = memoryview(data), orjson.loads, data.find
        adopt = None if self._parts is None else self._parts.adopt
        taken = 0
        while True:
            cut = find(separator, start, end)
            stop = end if cut < 0 else cut + 1
            try:
                item = loads(view[start:stop])
            except orjson.JSONDecodeError:
                break
            if adopt is not None:
                adopt(item)
            yield item
            taken += 1
            if cut < 0:
                return
            start = cut + 2
        yield from self._rest(taken)

    def _rest(self, taken: int) -> list[Any]:
        """The items after the first ``taken``, from the page decoded whole."""
        items, *envelope = _list_parts(_decode_whole(self._data, self._what), self._what)
        if envelope != [self.metadata, self.item_kind, self.api_version]:
            raise DecodeError(
                f"{self._what}: the list's kind, apiVersion or metadata is given twice,"
                " once after its items"
            )
        return items[taken:]


_OPEN = ord("{")


def _cut(data: bytes) -> tuple[dict[str, Any], int, int] | None:
    """The members before ``items`` and where the items' bytes are, for a page encoded as
    Kubernetes encodes a list; None for any other (decoded whole)."""
    at = data.find(_ITEMS)
    end = len(data)
    while end and data[end - 1] in _TRAILING:
        end -= 1
    if at < 0 or data[end - 2 : end] != b"]}":
        return None
    try:
        head = orjson.loads(data[:at] + b"}")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(head, dict) or not head:
        return None
    return head, at + len(_ITEMS), end - 2


def _decode_whole(data: bytes, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"{what}: the answer is not JSON ({exc}): {data[:200]!r}") from None


def _list_parts(body: Any, what: str) -> tuple[list[Any], dict[str, Any], str, str]:
    """The items, metadata, item kind and apiVersion of a decoded list body, checked."""
    if not isinstance(body, dict):
        raise DecodeError(f"{what}: the answer is not a Kubernetes list: {body!r:.200}")
    items = body.get("items")
    meta = body.get("metadata")
    kind = body.get("kind", "")
    api_version = body.get("apiVersion", "")
    if items is None and "items" in body:
        items = []  # an empty list may be sent as "items": null
    if not isinstance(items, list) or not isinstance(meta, dict):
        raise DecodeError(
            f"{what}: the answer is not a Kubernetes list (items must be a list and"
            f" metadata an object): {body!r:.200}"
        )
    if not isinstance(kind, str) or not isinstance(api_version, str):
        raise DecodeError(f"{what}: the list's kind and apiVersion must be strings")
    return items, meta, kind[:-4] if kind.endswith("List") else kind, api_version
