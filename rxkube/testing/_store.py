"""The test server's storage: objects, their history since the last compaction, and watch fan-out.

Why one file this long: ``Store`` is one lock and the transactions under it (every
write, list and watch registration); the rules each transaction keeps (revisions, the
change log, compaction) read in one place. Served resources are in ``_served.py``, stored
objects and watch lines in ``_stored.py``.

It plays etcd plus the watch cache: one global, strictly increasing revision stamped on
every write; a per-resource change log from which older states are rebuilt (consistent
pages, exact reads, watches from a past resourceVersion); compaction that makes older
revisions answer 410. Each object is encoded once with orjson when it is written, and
each watch event line is built once per write and shared by every watcher it matches.

Everything here is synchronous and guarded by one lock, so the HTTP handlers on the
server's loop and the test's own thread can both write.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import dataclasses
import datetime
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from .._apivalidation import quote
from ..resource import Resource
from ._admission import admit_pod
from ._apply import ManagedFields, track_update
from ._apply import apply as apply_config
from ._conversion import from_storage, to_storage
from ._decode import encode_json
from ._fields import as_encoded, go_encoded
from ._schema import FieldSchema
from ._served import ServedResource
from ._specs import Allocator, complete, creation_status, default, validate
from ._status import (
    StatusError,
    already_exists,
    conflict,
    invalid,
    not_found,
    precondition_failed,
)
from ._stored import (
    BookmarkLine,
    Change,
    EventType,
    Object,
    Stored,
    WatchFilter,
    WatchSink,
    deep_copy,
    event_line,
)
from ._validation import (
    decoding_error,
    generated_name,
    go_strings,
    metadata_type_error,
    validate_metadata,
)

log = logging.getLogger("rxkube.testing")

ManagedFieldsOf = Callable[[Object, Object], ManagedFields | None]
"""Gives the ``managedFields`` of an updated object from (stored, new)."""

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
MAX_OBJECT_BYTES = 1536 * 1024
"""etcd's default request size limit (``--max-request-bytes``), over which kube-apiserver
answers 500 "etcdserver: request is too large"; measured here on the JSON encoding."""
_NAME_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_CONFLICT = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


_last_timestamp: tuple[int, str] = (0, "")


def _timestamp_in(seconds: int) -> str:
    """The UTC time ``seconds`` from now, in the RFC 3339 form Kubernetes uses."""
    if not seconds:
        return now_timestamp()
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_timestamp() -> str:
    """The current UTC time in the RFC 3339 form Kubernetes uses (second precision)."""
    global _last_timestamp
    second = int(time.time())
    if _last_timestamp[0] != second:
        text = datetime.datetime.fromtimestamp(second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _last_timestamp = (second, text)
    return _last_timestamp[1]


class StoreLock:
    """The store's lock: work queued in :attr:`after` while it is held runs once it is
    released, on the releasing thread, so that what a write sets off (serving the resource
    a CustomResourceDefinition defines) may take the lock again."""

    __slots__ = ("_lock", "after")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.after: list[Callable[[], None]] = []

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        pending, self.after = self.after, []
        self._lock.release()
        for work in pending:
            work()


@dataclass(slots=True)
class _Registration:
    filter: WatchFilter
    sink: WatchSink
    after: int
    """Only changes newer than this revision go out: a watch from a resourceVersion the
    store has not reached yet (history behind the client) stays silent until then."""


@dataclass(slots=True)
class _ResourceState:
    served: ServedResource
    live: dict[str, Stored] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    log: list[Change] = field(default_factory=list)
    log_rvs: list[int] = field(default_factory=list)
    watches: list[_Registration] = field(default_factory=list)


@dataclass(slots=True)
class ListPage:
    """One page of a list.

    Attributes:
        rv: the resourceVersion the page is consistent at.
        items: the selected objects, in key order.
        next_start: where the next page starts (relative to the list's key prefix), or None.
        token_rv: the resourceVersion to put in the continue token (-1: latest).
        remaining: ``remainingItemCount``, when known (no label or field selector; with a
            shard, what the read found from the start key on, unfiltered, less the limit).
    """

    rv: int
    items: list[Stored]
    next_start: str | None
    token_rv: int
    remaining: int | None


class ResourceVersionTooOld(Exception):
    """The requested resourceVersion has been compacted."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"too old resource version: {requested} ({compacted})")
        self.requested = requested
        self.compacted = compacted


def _same_json(a: Any, b: Any) -> bool:
    """Whether two objects encode alike, as etcd3's store compares them (Go sorts map keys).

    Not ``==``, which takes 1, 1.0 and true for one value: a change from 1 to true is a
    change, written and watched.
    """
    return encode_json(a, sort_keys=True) == encode_json(b, sort_keys=True)


def _content(obj: Mapping[str, Any], served: ServedResource) -> dict[str, Any]:
    """The part of an object whose change bumps ``metadata.generation``."""
    skip = (
        ("metadata", "status", "kind", "apiVersion")
        if served.status_subresource
        else (
            "metadata",
            "kind",
            "apiVersion",
        )
    )
    return {k: v for k, v in obj.items() if k not in skip}


class Store:
    """Objects of every served resource, their history, and the registered watches.

    Args:
        compact_every: compact automatically every this many writes, at the revision
            reached at the previous automatic compaction (so about this many writes of
            history stay available), as kube-apiserver's periodic compaction does.
    """

    def __init__(self, compact_every: int | None = None) -> None:
        self.lock = StoreLock()
        self.rv = 0
        self.compacted_rv = 0
        self.compact_every = compact_every
        self._writes_since_compaction = 0
        self._auto_compact_mark = 0
        self._resources: dict[tuple[str, str, str], _ResourceState] = {}
        """Storage by URL key; the versions of one group and plural share one state."""
        self._served: dict[tuple[str, str, str], ServedResource] = {}
        self._rv_waiters: list[tuple[int, Callable[[], None]]] = []
        self.allocator = Allocator()
        """The cluster IPs and node ports handed to Services created through HTTP."""
        self.generation = 0
        """Bumped whenever a resource is added (callers cache name lookups by it)."""

    # ----------------------------------------------------------------- resources

    def add_resource(self, served: ServedResource) -> None:
        """Serve a resource; adding one that exists with the same definition is a no-op."""
        res = served.resource
        key = (res.group, res.version, res.plural)
        with self.lock:
            existing = self._served.get(key)
            if existing is not None:
                if existing.resource != res:
                    raise ValueError(f"resource {res.full_name} is already served as {existing}")
                return
            self._serve_locked(served)

    def serve(self, served: ServedResource) -> None:
        """Serve a resource, or change how it is served, keeping its objects and watches.

        The versions of one group and plural share their objects, as one etcd key prefix
        does: a version served after another sees the objects written through it.
        """
        with self.lock:
            self._serve_locked(served)

    def _serve_locked(self, served: ServedResource) -> None:
        res = served.resource
        key = (res.group, res.version, res.plural)
        state = self._resources.get(key) or next(
            (
                state
                for state in self._resources.values()
                if state.served.storage_key == served.storage_key
            ),
            None,
        )
        if state is None:
            state = _ResourceState(served)
        elif served.stored_api_version == res.api_version:
            state.served = served
        self._resources[key] = state
        self._served[key] = served
        self.generation += 1

    def remove_resource(self, served: ServedResource) -> None:
        """Stop serving one version of a resource; its open watches end cleanly.

        The objects go with the last version of their group and plural.
        """
        res = served.resource
        key = (res.group, res.version, res.plural)
        with self.lock:
            state = self._resources.pop(key, None)
            if state is None:
                return
            del self._served[key]
            self.generation += 1
            shared = any(other is state for other in self._resources.values())
            for registration in list(state.watches):
                if shared and registration.filter.api_version != res.api_version:
                    continue
                state.watches.remove(registration)
                registration.sink.close("drain")

    def served(self) -> list[ServedResource]:
        """Every served resource, in the order added."""
        with self.lock:
            return list(self._served.values())

    def lookup(self, group: str, version: str, plural: str) -> ServedResource | None:
        """The served resource at a URL's group, version and plural."""
        return self._served.get((group, version, plural))

    def _state(self, served: ServedResource) -> _ResourceState:
        res = served.resource
        state = self._resources.get((res.group, res.version, res.plural))
        if state is None:
            # Its definition was deleted after this request looked the resource up: the
            # answer the request would have had a moment later.
            raise StatusError(404, "the server could not find the requested resource", details={})
        return state

    @staticmethod
    def _read(state: _ResourceState, stored: Stored) -> Stored:
        """A stored state as a read from storage gives it: decoded by the storage
        version's ``decode`` (a custom resource's defaults), what is stored unchanged."""
        decode = state.served.decode
        return stored if decode is None else stored.decoded(decode)

    @staticmethod
    def key(served: ServedResource, namespace: str | None, name: str) -> str:
        """The storage key of an object (etcd order: namespace, then name)."""
        return f"{namespace}/{name}" if served.resource.namespaced else name

    # -------------------------------------------------------------------- writes

    def _commit(
        self,
        state: _ResourceState,
        event_type: EventType,
        obj: Object,
        prev: Stored | None,
        *,
        dry_run: bool = False,
    ) -> Stored:
        """Stamp the next revision on ``obj``, store it, log the change and fan it out.

        Everything that can fail (encoding, etcd's size limit) happens before anything
        changes, so a refused write leaves no trace, not even a used-up resourceVersion.
        A watcher whose fan-out fails is ended alone; the others and the writer go on.
        A dry run stops right before the first change, as kube-apiserver's dry-run
        storage does: a new object has no resourceVersion, a changed one keeps its own.
        """
        rv = prev.rv if dry_run and prev is not None else self.rv + 1
        if dry_run and prev is None:
            obj["metadata"].pop("resourceVersion", None)
        else:
            obj["metadata"]["resourceVersion"] = str(rv)
        namespace = obj["metadata"].get("namespace", "")
        key = (
            prev.key
            if prev is not None
            else self.key(state.served, namespace, obj["metadata"]["name"])
        )
        stored = Stored(obj, rv, key, namespace)
        if len(stored.raw) > MAX_OBJECT_BYTES:
            raise StatusError(500, "etcdserver: request is too large", reason="")
        if dry_run:
            return self._read(state, stored)
        self.rv = rv
        if event_type == "DELETED":
            del state.live[key]
            del state.keys[bisect.bisect_left(state.keys, key)]
        else:
            if prev is None:
                bisect.insort(state.keys, key)
            state.live[key] = stored
        change = Change(event_type, stored, prev)
        # Watchers and the writer get the states as read back, as from etcd.
        decode = state.served.decode
        seen = change if decode is None else change.decoded(decode)
        committed = state.served.committed
        if committed is not None:
            self.lock.after.append(lambda: committed(obj["metadata"]["name"]))
        state.log.append(change)
        state.log_rvs.append(self.rv)
        for registration in list(state.watches):
            if registration.after >= self.rv:
                continue
            try:
                line = registration.filter.line(seen)
                if line is not None:
                    registration.sink.push(line)
            except Exception:
                log.exception("rxkube test API server: ending a watch whose fan-out failed")
                state.watches.remove(registration)
                with contextlib.suppress(Exception):
                    registration.sink.close("abrupt")
        if self._rv_waiters:
            self._wake_rv_waiters()
        self._writes_since_compaction += 1
        if self.compact_every and self._writes_since_compaction >= self.compact_every:
            self._compact_locked(self._auto_compact_mark)
            self._auto_compact_mark = self.rv
            self._writes_since_compaction = 0
        return seen.obj

    def when_reached(self, rv: int, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` once the store's revision reaches ``rv`` (at once if it has).

        ``callback`` runs with the store lock held, on the writing thread: it must only
        hand over (say, ``loop.call_soon_threadsafe``). Returns the function that cancels
        the wait.
        """
        entry = (rv, callback)
        with self.lock:
            if self.rv >= rv:
                callback()
                return lambda: None
            self._rv_waiters.append(entry)

        def cancel() -> None:
            with self.lock:
                if entry in self._rv_waiters:
                    self._rv_waiters.remove(entry)

        return cancel

    def _wake_rv_waiters(self) -> None:
        waiting: list[tuple[int, Callable[[], None]]] = []
        for rv, callback in self._rv_waiters:
            if rv <= self.rv:
                callback()
            else:
                waiting.append((rv, callback))
        self._rv_waiters = waiting

    def _check_namespace(self, namespace: str) -> None:
        namespaces = self._resources.get(("", "v1", "namespaces"))
        if namespaces is not None and namespace not in namespaces.live:
            raise StatusError(
                404,
                f'namespaces "{namespace}" not found',
                details={"name": namespace, "kind": "namespaces"},
            )

    def create(
        self,
        served: ServedResource,
        obj: Object,
        namespace: str | None,
        *,
        via_http: bool,
        field_manager: str | None = None,
        dry_run: bool = False,
        warnings: list[str] | None = None,
    ) -> Stored:
        """Create an object; ``obj`` is owned by the store from now on.

        Through HTTP (``via_http``) the server applies kube-apiserver's create strategy:
        the namespace must exist, the status is reset, system fields are assigned. The
        test-side API writes the object as given (status included), like a direct etcd write.
        With a ``field_manager``, ``managedFields`` record that it created every field.
        A ``dry_run`` checks everything and returns what would be stored, storing nothing.
        The strategy's warnings about the write (``ServedResource.warn``) go to ``warnings``.

        Raises:
            StatusError: 400 for a namespace mismatch, 404 for a missing namespace,
                409 AlreadyExists, 422 for an invalid name.
        """
        obj, namespace, name = self._prepared(
            served, obj, namespace, via_http=via_http, dry_run=dry_run,
            field_manager=field_manager, warnings=warnings,
        )  # fmt: skip
        with self.lock:
            return self._insert_locked(
                served, obj, namespace, name, via_http=via_http, dry_run=dry_run
            )

    def _prepared(
        self,
        served: ServedResource,
        obj: Object,
        namespace: str | None,
        *,
        via_http: bool,
        dry_run: bool = False,
        field_manager: str | None = None,
        warnings: list[str] | None = None,
    ) -> tuple[Object, str | None, str]:
        """An object to create with its system fields set; with its namespace and name.

        As kube-apiserver's create handler orders it: the decoded object is defaulted,
        then ``field_manager`` (if any) is recorded as the creator of what it holds, then
        the registry completes it (allocations, finalizers, the status it starts with),
        which no manager owns.
        """
        res = served.resource
        if obj.get("metadata") is None:
            obj["metadata"] = {}
        self._check_kind(served, obj)
        obj = to_storage(served, obj)
        meta = obj["metadata"]
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            suffix = "".join(random.choices(_NAME_SUFFIX_CHARS, k=5))
            name = meta["name"] = generated_name(meta["generateName"], suffix)
        if res.namespaced:
            namespace = self._resolve_namespace(
                meta, namespace, default=None if via_http else "default"
            )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        causes = validate_metadata(res, meta)
        if causes:
            raise invalid(res, name, causes)
        if via_http:
            _fold_string_data(res, obj)
            _omit_empty(meta)
        obj = {"kind": res.kind, "apiVersion": "", **obj}
        obj["apiVersion"] = served.stored_api_version
        for system in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(system, None)
        if via_http or not meta.get("uid"):
            meta["uid"] = str(uuid.uuid4())
        if via_http or not meta.get("creationTimestamp"):
            meta["creationTimestamp"] = now_timestamp()
        if served.tracks_generation:
            meta["generation"] = 1
        built_in = via_http and served.strategic_merge
        if built_in:
            default(res, obj)
        if via_http and served.status_subresource:
            obj.pop("status", None)
        if served.admit is not None:
            obj = served.admit(obj, None)
        if field_manager is not None:
            schema = FieldSchema.of(served, None)
            tracked = from_storage(served, obj)
            if built_in:
                tracked = as_encoded(served, tracked, stored=False)
            fields = track_update(
                schema, None, tracked, field_manager, now=now_timestamp(),
                zero=go_encoded(served, {}),
            )  # fmt: skip
            _set_managed_fields(obj, fields)
        if built_in:
            complete(res, obj, None, self.allocator.dry_run() if dry_run else self.allocator)
            causes = validate(res, obj)
            if causes:
                raise invalid(res, name, causes)
        if via_http and served.status_subresource:
            if served.create_status is not None:
                obj["status"] = dict(served.create_status)
            completed = creation_status(res, obj) if served.strategic_merge else None
            if completed is not None:
                obj["status"] = {**obj.get("status", {}), **completed}
        if built_in:
            obj = as_encoded(self._state(served).served, obj, stored=True)
        if warnings is not None and served.warn is not None:
            warnings.extend(served.warn(obj, None))
        return obj, namespace, name

    def _insert_locked(
        self,
        served: ServedResource,
        obj: Object,
        namespace: str | None,
        name: str,
        *,
        via_http: bool,
        dry_run: bool = False,
    ) -> Stored:
        res = served.resource
        if via_http and res.namespaced and namespace:
            self._check_namespace(namespace)
        state = self._state(served)
        if self.key(served, namespace, name) in state.live:
            raise already_exists(res, name)
        if via_http and _is_pods(served):
            admit_pod(obj, None, self._priority_classes_locked)
        return self._commit(state, "ADDED", obj, None, dry_run=dry_run)

    def _priority_classes_locked(self) -> list[Object]:
        state = self._resources.get(("scheduling.k8s.io", "v1", "priorityclasses"))
        return [] if state is None else [stored.obj for stored in state.live.values()]

    @staticmethod
    def _check_kind(served: ServedResource, obj: Object) -> None:
        res = served.resource
        error = decoding_error(res, obj, typed=served.strategic_merge)
        if error is not None:
            raise StatusError(400, error)
        kind = obj.get("kind")
        if kind not in (None, "", res.kind):
            # Only a custom resource gets here: its validation names the object by its own kind.
            raise invalid(
                dataclasses.replace(res, kind=kind),
                str((obj.get("metadata") or {}).get("name") or ""),
                [("kind", f"Invalid value: {quote(kind)}: must be {res.kind}")],
            )

    @staticmethod
    def _resolve_namespace(meta: Object, namespace: str | None, *, default: str | None) -> str:
        given = meta.get("namespace") or None
        if namespace and given and given != namespace:
            raise StatusError(
                400,
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        resolved = namespace or given or default
        if not resolved:
            raise StatusError(400, "the namespace of the object is required")
        return resolved

    def get(self, served: ServedResource, namespace: str | None, name: str) -> Stored:
        """The current state of an object.

        Raises:
            StatusError: 404 when it does not exist.
        """
        with self.lock:
            state = self._state(served)
            stored = state.live.get(self.key(served, namespace, name))
            if stored is None:
                raise not_found(served.resource, name)
            return self._read(state, stored)

    def update(
        self,
        served: ServedResource,
        namespace: str | None,
        name: str,
        obj: Object,
        *,
        subresource: str | None = None,
        via_http: bool,
        field_manager: str | None = None,
        dry_run: bool = False,
        warnings: list[str] | None = None,
    ) -> Stored:
        """Replace an object (PUT), or only its status with ``subresource="status"``.

        A ``metadata.resourceVersion`` in ``obj`` is a precondition (409 when stale).
        Through HTTP the main endpoint keeps the stored status of a resource that has a
        status subresource. An update that changes nothing writes nothing. Removing the
        last finalizer of an object being deleted deletes it. With a ``field_manager``,
        ``managedFields`` record what it changed. Warnings go to ``warnings``, as for
        :meth:`create`.
        """
        self._check_kind(served, obj)
        obj = to_storage(served, obj)
        fields = self._tracker(served, subresource, field_manager)
        with self.lock:
            return self._update_locked(
                served, namespace, name, obj, subresource, via_http, fields,
                dry_run=dry_run, warnings=warnings,
            )  # fmt: skip

    def patch(
        self,
        served: ServedResource,
        namespace: str | None,
        name: str,
        apply: Callable[[Object], Object],
        *,
        subresource: str | None = None,
        via_http: bool,
        field_manager: str | None = None,
        dry_run: bool = False,
        warnings: list[str] | None = None,
    ) -> Stored:
        """Patch an object: ``apply`` gets a copy of the current object and returns the new one.

        With a ``field_manager``, ``managedFields`` record what it changed. Warnings go to
        ``warnings``, as for :meth:`create`.
        """
        fields = self._tracker(served, subresource, field_manager)
        with self.lock:
            state = self._state(served)
            current = state.live.get(self.key(served, namespace, name))
            if current is None:
                raise not_found(served.resource, name)
            patched = apply(from_storage(served, self._read(state, current).copy_obj()))
            if not isinstance(patched, dict):
                raise StatusError(422, "the patched object is not a JSON object", reason="Invalid")
            error = metadata_type_error(patched, served.resource.kind, typed=served.strategic_merge)
            if error is not None:
                # kube-apiserver cannot decode the patched object: an Invalid "patch".
                raise invalid(
                    None,
                    "",
                    [("patch", f"Invalid value: {quote(orjson.dumps(patched).decode())}: {error}")],
                )
            uid = patched.get("metadata", {}).get("uid")
            if uid not in (None, "", current.obj["metadata"]["uid"]):
                raise invalid(
                    served.resource,
                    name,
                    [("metadata.uid", f"Invalid value: {quote(uid)}: field is immutable")],
                )
            self._check_kind(served, patched)
            return self._update_locked(
                served, namespace, name, to_storage(served, patched), subresource, via_http,
                fields, dry_run=dry_run, warnings=warnings,
            )  # fmt: skip

    def apply(
        self,
        served: ServedResource,
        namespace: str | None,
        name: str,
        config: Object,
        *,
        field_manager: str,
        force: bool,
        subresource: str | None = None,
        via_http: bool,
        dry_run: bool = False,
        warnings: list[str] | None = None,
    ) -> tuple[Stored, bool]:
        """Server-side apply ``config`` as ``field_manager``; creates a missing object.

        Returns the object as stored and whether it was created. Warnings go to
        ``warnings``, as for :meth:`create`.

        Raises:
            StatusError: 400 for a configuration of another kind, version, name or
                namespace; 404 applying the status of a missing object; 409 Conflict for
                fields other managers own (unless ``force``), and what a create or an
                update raises.
        """
        schema = FieldSchema.of(served, subresource)
        error = metadata_type_error(config, served.resource.kind, typed=True)
        if error is not None:
            # structured-merge-diff refuses it with a plain error, which kube-apiserver answers as 500.
            raise StatusError(
                500,
                f"failed to create typed patch object ({namespace or ''}/{name}; "
                f"{served.resource.group}/{served.resource.version}, "
                f"Kind={served.resource.kind}): {error}",
                reason="",
            )
        meta = config.get("metadata", {})
        if not isinstance(meta, dict):
            raise StatusError(400, "metadata must be an object")
        if served.resource.namespaced:
            self._resolve_namespace(meta, namespace, default=None)
        now = now_timestamp()
        with self.lock:
            state = self._state(served)
            current = state.live.get(self.key(served, namespace, name))
            # The handler's checkName, on the applied result: a configuration without a
            # name keeps the live object's, and creates none.
            given = meta.get("name", name if current is not None else "")
            if given != name:
                raise StatusError(
                    400,
                    f"the name of the object ({given or ''}) does not match the name "
                    f"on the URL ({name})",
                )
            if current is None:
                if subresource is not None:
                    raise not_found(served.resource, name)
                obj, fields = apply_config(
                    schema, None, config, field_manager, force=force, now=now
                )
                obj = go_encoded(served, obj)
                _set_managed_fields(obj, fields)
                obj, namespace, name = self._prepared(
                    served, obj, namespace, via_http=via_http, dry_run=dry_run, warnings=warnings
                )
                stored = self._insert_locked(
                    served, obj, namespace, name, via_http=via_http, dry_run=dry_run
                )
                return stored, True
            obj, fields = apply_config(
                schema, from_storage(served, self._read(state, current).copy_obj()), config,
                field_manager,
                force=force, now=now,
            )  # fmt: skip
            stored = self._update_locked(
                served, namespace, name, to_storage(served, go_encoded(served, obj)),
                subresource, via_http,
                lambda _old, _new: fields,
                dry_run=dry_run, warnings=warnings,
            )  # fmt: skip
            return stored, False

    @staticmethod
    def _tracker(
        served: ServedResource, subresource: str | None, field_manager: str | None
    ) -> ManagedFieldsOf | None:
        """How an update by ``field_manager`` sets ``managedFields`` (None: as given)."""
        if field_manager is None:
            return None
        schema = FieldSchema.of(served, subresource)
        now = now_timestamp()
        # Fields are tracked in the request's version, as its managedFields entry says.
        return lambda old, new: track_update(
            schema, from_storage(served, old), from_storage(served, new), field_manager, now=now
        )

    def _update_locked(
        self,
        served: ServedResource,
        namespace: str | None,
        name: str,
        obj: Object,
        subresource: str | None,
        via_http: bool,
        managed_fields: ManagedFieldsOf | None = None,
        *,
        dry_run: bool = False,
        warnings: list[str] | None = None,
    ) -> Stored:
        res = served.resource
        state = self._state(served)
        meta = obj.setdefault("metadata", {})
        # Through HTTP the name must be the URL's (the handler checks it before the
        # storage is asked, so a missing object answers this too); the object API may
        # leave it out.
        if meta.get("name") != name and (via_http or meta.get("name") not in (None, "")):
            raise StatusError(
                400,
                f"the name of the object ({meta.get('name') or ''}) does not match the name "
                f"on the URL ({name})",
            )
        current = state.live.get(self.key(served, namespace, name))
        if current is None:
            raise not_found(res, name)
        if res.namespaced:
            self._resolve_namespace(meta, namespace, default=None)
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv in (None, "") and via_http and not served.unconditional_update:
            # The registry's own Invalid, naming the resource (v1.32 prints the uint64 0
            # with %#v).
            qualified = f"{res.plural}.{res.group}" if res.group else res.plural
            raise StatusError(
                422,
                f'{qualified} "{name}" is invalid: metadata.resourceVersion: '
                "Invalid value: 0x0: must be specified for an update",
                details={
                    "name": name,
                    "group": res.group,
                    "kind": res.plural,
                    "causes": [
                        {
                            "reason": "FieldValueInvalid",
                            "message": "Invalid value: 0x0: must be specified for an update",
                            "field": "metadata.resourceVersion",
                        }
                    ],
                },
            )
        if wanted_rv not in (None, "") and str(wanted_rv) != str(current.rv):
            raise conflict(res, name, _CONFLICT)
        old = self._read(state, current).obj
        old_meta = old["metadata"]
        if meta.get("uid") not in (None, "", old_meta["uid"]):
            raise conflict(
                res,
                name,
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {old_meta['uid']}",
            )
        if subresource == "status":
            new: Object = dict(old)
            new["metadata"] = dict(old_meta)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = {**obj, "kind": res.kind, "apiVersion": served.stored_api_version}
            if via_http and served.status_subresource:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
        new_meta = new["metadata"]
        for system in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if system in old_meta:
                new_meta[system] = old_meta[system]
            else:
                new_meta.pop(system, None)
        causes = validate_metadata(res, new_meta, old_meta)
        if via_http:
            _fold_string_data(res, new)
            _omit_empty(new_meta)
            # Defaulted and validated as kube-apiserver does, when the content changes: an
            # object the object API stored as given may still get metadata-only updates.
            if (
                served.strategic_merge
                and subresource is None
                and not _same_json(_content(new, served), _content(old, served))
            ):
                default(res, new)
                complete(res, new, old, self.allocator.dry_run() if dry_run else self.allocator)
                causes += validate(res, new, old)
        if causes:
            raise invalid(res, name, causes)
        if served.admit is not None:
            new = served.admit(new, old)
            new_meta = new["metadata"]
        if via_http and subresource is None and _is_pods(served):
            admit_pod(new, old, self._priority_classes_locked)
        terminating = "deletionTimestamp" in old_meta
        if terminating:
            added = set(new_meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
            if added:
                # Twice, as rest.BeforeUpdate validates the metadata update before the
                # strategy's ValidateUpdate does it again.
                cause = (
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being "
                    f"deleted, found new finalizers {go_strings(sorted(added))}",
                )
                raise invalid(res, name, [cause, cause])
        if warnings is not None and served.warn is not None:
            warnings.extend(served.warn(new, old))
        # rest.BeforeUpdate keeps the stored generation; tracking strategies bump it.
        generation = old_meta.get("generation", 0)
        if served.tracks_generation and not _same_json(
            _content(new, served), _content(old, served)
        ):
            generation += 1
        if generation:
            new_meta["generation"] = generation
        else:
            new_meta.pop("generation", None)
        new_meta["resourceVersion"] = old_meta["resourceVersion"]
        built_in = via_http and served.strategic_merge
        if managed_fields is not None:
            tracked = as_encoded(state.served, new, stored=False) if built_in else new
            _set_managed_fields(new, managed_fields(old, tracked))
        if built_in:
            new = as_encoded(state.served, new, stored=True)
        if _same_json(new, current.obj):
            # etcd3's GuaranteedUpdate writes nothing when the encoding is what is stored
            # (not what a read decodes: an added default is then written).
            return self._read(state, current)
        if terminating and not new_meta.get("finalizers"):
            return self._commit(state, "DELETED", new, current, dry_run=dry_run)
        return self._commit(state, "MODIFIED", new, current, dry_run=dry_run)

    def delete(
        self,
        served: ServedResource,
        namespace: str | None,
        name: str,
        *,
        precondition_uid: str | None = None,
        precondition_rv: str | None = None,
        dry_run: bool = False,
        grace: Callable[[Object], int | None] | None = None,
        finalizers: Callable[[Object], list[str] | None] | None = None,
    ) -> tuple[Stored, bool]:
        """Delete an object; returns its last state and whether it is gone now.

        An object with finalizers gets a ``deletionTimestamp`` (a MODIFIED event) and stays
        until an update removes its last finalizer. ``grace`` gives the grace period of a
        graceful deletion (see ``_graceful.py``; None: the kind deletes at once): the
        object is marked to go that many seconds from now and stays; a later delete may
        only shorten the period, and one of 0 marks it and deletes it. ``finalizers`` gives the object's finalizers as the delete leaves
        them, or None to keep them (the garbage collector's, see ``_gc.py``). A
        ``dry_run`` answers the same and changes nothing.
        """
        res = served.resource
        with self.lock:
            state = self._state(served)
            stored = state.live.get(self.key(served, namespace, name))
            if stored is None:
                raise not_found(res, name)
            current = self._read(state, stored)
            old_meta = current.obj["metadata"]
            if precondition_uid and precondition_uid != old_meta["uid"]:
                raise precondition_failed(
                    res,
                    name,
                    f"the UID in the precondition ({precondition_uid}) does not match the UID "
                    f"in record ({old_meta['uid']}). The object might have been deleted and "
                    "then recreated",
                )
            if precondition_rv and precondition_rv != old_meta["resourceVersion"]:
                raise precondition_failed(
                    res,
                    name,
                    f"the ResourceVersion in the precondition ({precondition_rv}) does not "
                    f"match the ResourceVersion in record ({old_meta['resourceVersion']}). The "
                    "object might have been modified",
                )
            new: Object = dict(current.obj)
            new["metadata"] = dict(old_meta)
            wanted = finalizers(current.obj) if finalizers is not None else None
            if wanted is not None:
                new["metadata"]["finalizers"] = wanted
                if not wanted:
                    del new["metadata"]["finalizers"]
            graceful = grace(current.obj) if grace is not None else None
            period = graceful or 0
            terminating = "deletionTimestamp" in old_meta
            held = old_meta.get("deletionGracePeriodSeconds") or 0
            shorter = terminating and held and period < held
            if terminating and not shorter and (held or old_meta.get("finalizers")):
                if wanted is not None and new["metadata"].get("finalizers"):
                    return self._commit(state, "MODIFIED", new, stored, dry_run=dry_run), False
                if wanted is None:
                    return (
                        current,
                        False,
                    )  # rest.BeforeDelete: only a shorter grace period may be set
            if served.deleting is not None:
                new = served.deleting(deep_copy(new))
            meta = new["metadata"]
            if graceful is not None or shorter or meta.get("finalizers"):
                meta["deletionTimestamp"] = _timestamp_in(period)
                meta["deletionGracePeriodSeconds"] = period
                if not terminating and old_meta.get("generation"):  # rest.BeforeDelete
                    meta["generation"] = old_meta["generation"] + 1
            if period or meta.get("finalizers"):
                return self._commit(state, "MODIFIED", new, stored, dry_run=dry_run), False
            if graceful is not None:
                # The registry writes the mark of a graceful deletion before it deletes,
                # even with no time to wait.
                stored = self._commit(state, "MODIFIED", new, stored, dry_run=dry_run)
                new = {**stored.obj, "metadata": dict(stored.obj["metadata"])}
            return self._commit(state, "DELETED", new, stored, dry_run=dry_run), True

    # --------------------------------------------------------------------- reads

    def _snapshot(
        self, state: _ResourceState, at_rv: int | None
    ) -> tuple[list[str], Callable[[str], Stored | None], bool]:
        """Sorted keys, a lookup giving the state at ``at_rv``, and whether that is now."""
        if at_rv is not None and at_rv < self.compacted_rv:
            raise ResourceVersionTooOld(at_rv, self.compacted_rv)
        if at_rv is None or not state.log_rvs or at_rv >= state.log_rvs[-1]:
            return state.keys, state.live.get, True
        overlay: dict[str, Stored | None] = {}
        for change in reversed(state.log[bisect.bisect_right(state.log_rvs, at_rv) :]):
            overlay[change.key] = change.prev
        keys = sorted(set(state.keys) | overlay.keys())
        live = state.live

        def lookup(key: str) -> Stored | None:
            return overlay[key] if key in overlay else live.get(key)

        return keys, lookup, False

    def list(
        self,
        served: ServedResource,
        flt: WatchFilter,
        *,
        at_rv: int | None = None,
        limit: int = 0,
        start: str = "",
        token_rv: int | None = None,
    ) -> ListPage:
        """One page of the objects a filter selects, consistent at ``at_rv`` (None: now).

        Args:
            served: the resource.
            flt: namespace and selectors.
            at_rv: read the state at this revision (exact read); None for the latest.
            limit: page size; 0 for everything.
            start: the first key to consider, relative to the namespace prefix.
            token_rv: the revision for the next continue token (defaults to the read's).

        Raises:
            ResourceVersionTooOld: ``at_rv`` has been compacted.
        """
        with self.lock:
            state = self._state(served)
            read_rv = self.rv if at_rv is None else at_rv
            keys, lookup, is_now = self._snapshot(state, at_rv)
            prefix = f"{flt.namespace}/" if flt.namespace and served.resource.namespaced else ""
            lo = bisect.bisect_left(keys, prefix + start)
            hi = bisect.bisect_left(keys, prefix + "\U0010ffff") if prefix else len(keys)
            # remainingItemCount is left out for label and field selectors, not for a
            # shard, which the server filters after counting: it is then what the read
            # found from the start key on, unfiltered, less the limit (PrepareContinueToken).
            counted = not flt.labels and not flt.fields
            items: list[Stored] = []
            next_start: str | None = None
            remaining: int | None = None
            decode = state.served.decode
            for index in range(lo, hi):
                stored = lookup(keys[index])
                if stored is None:
                    continue
                if decode is not None:
                    stored = stored.decoded(decode)
                if not flt.passes(stored):
                    continue
                items.append(stored)
                if limit and len(items) >= limit:
                    rest = (
                        hi - index - 1
                        if is_now
                        else sum(1 for k in keys[index + 1 : hi] if lookup(k) is not None)
                    )
                    if rest:
                        next_start = keys[index][len(prefix) :] + "\x00"
                        if counted and flt.shard is None:
                            remaining = rest
                        elif counted:
                            read = (
                                hi - lo
                                if is_now
                                else sum(1 for k in keys[lo:hi] if lookup(k) is not None)
                            )
                            remaining = read - limit
                    break
            return ListPage(
                read_rv,
                items,
                next_start,
                token_rv if token_rv is not None else read_rv,
                remaining,
            )

    # ------------------------------------------------------------------- watches

    def watch(
        self,
        served: ServedResource,
        flt: WatchFilter,
        sink: WatchSink,
        *,
        from_rv: int | None,
        initial: Literal["none", "state", "stream"],
        end_bookmark: bool = False,
    ) -> Callable[[], None]:
        """Register a watch; returns the function that unregisters it.

        Args:
            served: the resource.
            flt: namespace, selectors and encoding.
            sink: receives the initial lines (``prime``), then every live line (``push``),
                under the store lock.
            from_rv: replay the changes after this revision (``initial="none"``); a
                revision the store has not reached yet is accepted and the watch stays
                silent until changes newer than it are written, as kube-apiserver does.
            initial: ``"state"``: an ADDED per current object (a watch without
                resourceVersion); ``"stream"``: the same, then, if ``end_bookmark``, a
                BOOKMARK annotated ``k8s.io/initial-events-end`` at the current revision
                (a streaming list); ``"none"``: only changes after ``from_rv`` (or from now).

        Raises:
            ResourceVersionTooOld: ``from_rv`` has been compacted.
        """
        with self.lock:
            state = self._state(served)
            lines: list[bytes] = []
            if initial == "none" and from_rv is not None:
                if from_rv < self.compacted_rv:
                    raise ResourceVersionTooOld(from_rv, self.compacted_rv)
                decode = state.served.decode
                for change in state.log[bisect.bisect_right(state.log_rvs, from_rv) :]:
                    line = flt.line(change if decode is None else change.decoded(decode))
                    if line is not None:
                        lines.append(line)
            elif initial != "none":
                prefix = f"{flt.namespace}/" if flt.namespace and served.resource.namespaced else ""
                keys = state.keys
                lo = bisect.bisect_left(keys, prefix)
                hi = bisect.bisect_left(keys, prefix + "\U0010ffff") if prefix else len(keys)
                for key in keys[lo:hi]:
                    stored = self._read(state, state.live[key])
                    if flt.passes(stored):
                        raw = stored.encoded(flt.metadata_only, flt.api_version)
                        lines.append(event_line("ADDED", raw))
                if initial == "stream" and end_bookmark:
                    lines.append(self._bookmark_locked(served, flt.metadata_only, self.rv, True))
            sink.prime(lines)
            after = from_rv if initial == "none" and from_rv is not None else 0
            registration = _Registration(flt, sink, after)
            state.watches.append(registration)

        def unregister() -> None:
            with self.lock:
                if registration in state.watches:
                    state.watches.remove(registration)

        return unregister

    def bookmark(
        self, served: ServedResource, metadata_only: bool, sink: WatchSink, floor: int
    ) -> None:
        """Queue a BOOKMARK at the current revision (never below ``floor``) on ``sink``."""
        with self.lock:
            sink.push(self._bookmark_locked(served, metadata_only, max(self.rv, floor), False))

    @staticmethod
    def _bookmark_locked(
        served: ServedResource, metadata_only: bool, rv: int, initial_end: bool
    ) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        if metadata_only:
            body = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
            }
        else:
            res = served.resource
            body = {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}
        return BookmarkLine(event_line("BOOKMARK", orjson.dumps(body)))

    # ---------------------------------------------------------------- compaction

    def compact(self, rv: int | None = None) -> int:
        """Forget history older than ``rv`` (default: the current revision); returns it.

        Afterwards a list at an older exact revision, a continue token from before, or a
        watch from an older revision answers 410 Expired.
        """
        with self.lock:
            return self._compact_locked(self.rv if rv is None else rv)

    def _compact_locked(self, rv: int) -> int:
        target = min(rv, self.rv)
        if target <= self.compacted_rv:
            return self.compacted_rv
        for state in self._resources.values():
            cut = bisect.bisect_right(state.log_rvs, target)
            del state.log[:cut]
            del state.log_rvs[:cut]
        self.compacted_rv = target
        return target


def _fold_string_data(res: Resource, obj: Object) -> None:
    """A Secret's ``stringData`` merged into ``data``, base64-encoded, as the v1 conversion does.

    ``stringData`` is write-only: its keys win over ``data``'s and it is never stored.
    """
    if res.group or res.plural != "secrets" or "stringData" not in obj:
        return
    plain = obj.pop("stringData")
    if not plain:
        return
    if not isinstance(plain, dict) or not all(isinstance(v, str) for v in plain.values()):
        raise StatusError(
            400,
            'Secret in version "v1" cannot be handled as a Secret: stringData must map'
            " keys to strings",
        )
    data = obj.get("data")
    data = data if isinstance(data, dict) else {}
    obj["data"] = {**data, **{k: base64.b64encode(v.encode()).decode() for k, v in plain.items()}}


def _is_pods(served: ServedResource) -> bool:
    return served.resource.plural == "pods" and not served.resource.group


_OMITTED_WHEN_EMPTY = ("labels", "annotations", "finalizers", "ownerReferences")
"""``ObjectMeta``'s collections, all ``omitempty``: once decoded into Go, an empty (or
null) one is gone."""


def _omit_empty(meta: Object) -> None:
    for key in _OMITTED_WHEN_EMPTY:
        if key in meta and not meta[key]:
            del meta[key]


def _set_managed_fields(obj: Object, fields: ManagedFields | None) -> None:
    if fields is None:
        obj["metadata"].pop("managedFields", None)
    else:
        obj["metadata"]["managedFields"] = fields
