"""The reflector cache: a Store of the last-seen state of every object, and its one Writer.

Why one file this long: the Store and its one Writer share one lock, one map and its
indexes, and the writer's run bookkeeping (which pipeline feeds it, and how it ended);
splitting them would put the lock's users in different files.

``store()`` returns a ``(Store, Writer)`` pair. The Writer applies watch events: ``Init``
starts a side buffer, ``InitApply`` fills it and ``InitDone`` swaps it in as one step,
while ``Apply``/``Delete`` change the live map. The Store is the reader, shared freely
across threads: readers see the complete old state until a relist's swap, never half of
it. ``rxkube.operators.reflect(writer)`` is the Rx operator that feeds a Writer from a
watcher; this module knows nothing of Rx.

Thread safety does not lean on the GIL: one lock guards every change of the map and
its indexes, and it is held only for O(1) steps (the swap of a relist is a pointer
assignment; the new map and indexes are built beforehand, outside the lock, by the
writer alone). Single-key reads (``get``, ``in``, ``len``) take no lock at all: they
are one operation on a dict, which free-threaded CPython keeps atomic as well.

Objects are stored by reference and, by default, handed out as copies: what a reader
gets (``get``, ``state``, ``filter``, ``by_index``, iteration) is its own, so changing it
cannot corrupt the cache, its indexes, or the parts ``ShareSubtrees`` shares between
objects. Whole-store reads return a :class:`Snapshot` of references that copies each
object as it is read, so a scan keeps one copy alive at a time. This is controller-runtime's default (its cache deep-copies on reads); kube-rs
gets the same safety from immutable ``Arc<K>``. A store made with ``copy_on_read=False``
hands out the cached objects themselves, as client-go's listers do: no copy (see
``docs/performance.md`` for the cost of one), and the rule that they must never be changed.
Change objects before they reach the store (``Event.modify`` or the ``modify()``
operator), e.g. to drop ``managedFields``.

A store also knows whether it is still followed (:class:`WriterStatus`): the pipeline
that feeds its Writer is a :class:`Run` (``Writer.new_run``), which reports here when it
starts, when a retrying operator upstream loses its source and gets it back, and how it
ends; a Writer has one running pipeline at a time.

Lock rules: ``Store._lock`` (with its condition ``Store._changed``) guards the map, the
indexes (and those ``add_index`` is building), the readiness and the writer's status. It
is held for O(1) steps only (and C-level copies of the map, for snapshots), never across
user code (index functions run before it is taken) or I/O. It is the innermost lock but
one: nothing else is acquired while it is held, except a shared store's dispatcher lock,
taken inside it (for O(1) steps) as a subscriber joins; never the other way round (see
``rxkube.dispatcher``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from . import _display
from ._callables import check_callable
from ._equality import JSON_ONLY
from ._futures import resolve_soon
from ._indexes import Index, IndexFn
from ._object_ref import Key, ObjectRef, key_of, matches_ref
from ._snapshot import Snapshot
from ._subtrees import SharedSubtrees
from ._timeouts import checked_timeout
from ._unchanged_parts import HeldOf
from .errors import WriterBusy, WriterStopped
from .events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from .selectors import LabelSelector

__all__ = ["Store", "Writer", "WriterStatus", "store"]

SharedParts = bool | Literal["managedFields"]
"""Which equal parts a store holds once: all (``True``), none, or those of managedFields."""

WriterState = Literal["idle", "running", "retrying", "stopped"]
"""Whether the pipeline feeding a store runs (see :class:`WriterStatus`)."""


@dataclass(frozen=True, slots=True)
class WriterStatus:
    """Whether a store is still followed: the state of the pipeline feeding its Writer.

    Attributes:
        state: ``"idle"``: no ``reflect`` pipeline has fed the store yet.
            ``"running"``: one is subscribed (listing or watching).
            ``"retrying"``: it failed with ``error`` (or its source did, upstream of a
            ``backoff()`` before ``reflect``) and ``backoff()`` resubscribes it at
            ``retry_at``; until then the store is not followed.
            ``"stopped"``: it ended (completed, disposed, or failed with ``error`` and
            nothing retries it): the store will not change any more, a stale cache.
        since: when the state began (``time.time()``).
        error: for ``"retrying"`` and ``"stopped"``, the error that ended the pipeline
            (``None`` when it completed or was disposed); for ``"running"``, the error
            of the previous run as long as no complete list has been applied since (why
            the store may be behind); ``None`` otherwise.
        retry_at: for ``"retrying"``, when (``time.time()``) the next attempt starts.

    Example:
        >>> reader, writer = store()
        >>> reader.writer_status().state
        'idle'
    """

    state: WriterState
    since: float
    error: BaseException | None = None
    retry_at: float | None = None

    @property
    def following(self) -> bool:
        """Whether a pipeline is subscribed and feeding the store now."""
        return self.state == "running"


def copy_object(value: Any) -> Any:
    """A copy of an object's dicts, lists and tuples, sharing everything else (strings, numbers...).

    What a store hands out. Exact for anything decoded from JSON, for tuples (copied, and
    what they hold) and for other values ``modify()`` may put in (a datetime stays what it
    is, and is shared: such values must be immutable). Parts that ``ShareSubtrees`` shares
    between objects, or within one, come out as separate copies. About 5x faster than
    ``copy.deepcopy``: see ``docs/performance.md``.

    Example:
        >>> pod = {"metadata": {"labels": {"app": "web"}}, "spec": {"ports": [80]}}
        >>> copied = copy_object(pod)
        >>> copied["metadata"]["labels"]["app"] = "db"; copied["spec"]["ports"].append(443)
        >>> pod
        {'metadata': {'labels': {'app': 'web'}}, 'spec': {'ports': [80]}}
    """
    kind = type(value)
    if kind is dict:
        return _copy_dict(value)
    if kind is list:
        return _copy_list(value)
    if kind is tuple:
        return tuple(_copy_list(list(value)))
    return value


def _copy_dict(value: dict[Any, Any]) -> dict[Any, Any]:
    # dict.copy() copies the leaves at C speed; only containers need a Python step. CPython
    # leaves a dict untracked by its collector while it holds no container (no dict, list
    # or tracked tuple), so an untracked dict (labels, annotations, most of managedFields)
    # is copied whole by its copy().
    out = value.copy()
    if _is_tracked(value):
        for key, item in value.items():
            kind = type(item)
            if kind is dict:
                out[key] = _copy_dict(item)
            elif kind is list:
                out[key] = _copy_list(item)
            elif kind is tuple:
                out[key] = tuple(_copy_list(list(item)))
    return out


def _copy_list(value: list[Any]) -> list[Any]:
    return [item if type(item) is str else copy_object(item) for item in value]


_is_tracked = gc.is_tracked

_decode = orjson.loads


def _not_json(value: Any) -> Any:
    raise TypeError(f"a {type(value).__name__} is not JSON")


def _encode(obj: Object) -> bytes:
    """A compact store's encoding of ``obj``, in a bytes object of its own size.

    orjson hands out its output buffer as the bytes object, and that buffer grows by
    doubling: the encoding of a 4.5 KB pod held 8 KB. The copy (a memcpy, well under a
    microsecond) halves what a compact store holds.

    Raises:
        TypeError: ``obj`` holds a value that is not JSON; the message names the object.
    """
    try:
        # What is not JSON fails in _not_json, not encoded as something else (a datetime
        # as a string, a dataclass as a dict).
        encoded = orjson.dumps(obj, default=_not_json, option=JSON_ONLY)
    except orjson.JSONEncodeError as exc:
        raise TypeError(
            f"cannot keep object {ObjectRef.from_obj(obj)} in a compact store, which keeps "
            f"JSON: {exc.__cause__ or exc}; convert the value in modify(), or use a store "
            "without compact=True"
        ) from exc
    return bytes(memoryview(encoded))


class Store:
    """The reader of a reflector's cache: the last-seen state of every object.

    A Store is filled by its one :class:`Writer` (see :func:`store`) and may be read from
    any thread at any time. Reads never wait for a relist: until ``InitDone`` swaps the new
    list in, readers see the complete previous state.

    Reads hand out deep copies of the cached objects (their dicts and lists; other values
    are shared, as they are immutable in anything decoded from JSON), so a reader may
    change what it got, e.g. to send it back with ``Api.replace``. With
    ``copy_on_read=False`` reads return the cached objects themselves: faster, and they
    must never be changed (that would change what every reader sees and desync the
    indexes). Predicates (``find``, ``filter``) and index functions always see the cached
    objects: they must not change them either.

    Example:
        >>> reader, writer = store()
        >>> for event in (Init(), InitApply({"metadata": {"name": "n1"}}), InitDone()):
        ...     writer.apply(event)
        >>> reader.is_ready(), len(reader), "n1" in reader
        (True, 1, True)
        >>> reader.get("n1")
        {'metadata': {'name': 'n1'}}
    """

    def __init__(
        self,
        name: str = "",
        *,
        copy_on_read: bool = True,
        compact: bool = False,
        share_subtrees: SharedParts = "managedFields",
    ) -> None:
        """Create an empty store; use :func:`store` to get one with its Writer.

        Args:
            name: what the store holds, for messages (e.g. ``"pods"``).
            copy_on_read: hand out copies (the default), or the cached objects themselves.
            compact: keep each object as its JSON encoding and decode it on every read
                (see :func:`store`).
            share_subtrees: which parts equal across objects to hold once (see
                :func:`store`); no effect on a compact store, which holds encodings.

        Raises:
            TypeError: ``name`` is not a string.
            ValueError: ``compact`` with ``copy_on_read=False`` (a compact store has no
                decoded objects to hand out: every read decodes a copy), or
                ``share_subtrees`` not one of ``True``, ``False``, ``"managedFields"``.
        """
        if not isinstance(name, str):
            raise TypeError(
                f"a store's name (what it holds, e.g. 'pods') must be a string, not"
                f" {type(name).__name__} {name!r:.60}"
            )
        if compact and not copy_on_read:
            raise ValueError(
                f"store {name!r}: compact=True decodes a new copy on every read; "
                "copy_on_read=False does not apply to it (drop one of them)"
            )
        self._name = name
        self._copy_on_read = copy_on_read
        self._compact = compact
        if share_subtrees not in (True, False, "managedFields"):
            raise ValueError(
                f"store {name!r}: share_subtrees must be True, False or 'managedFields', "
                f"got {share_subtrees!r}"
            )
        self._share_subtrees: SharedParts = share_subtrees if not compact else False
        # What is held is an object (a dict), or its encoding in a compact store: ``_peek``
        # turns a held value into an object for predicates, index functions and
        # comparisons (None: it is one already).
        self._peek: Callable[[Any], Object] | None = _decode if compact else None
        self._kind = ""
        self._lock = threading.Lock()
        self._objects: dict[Key, Any] = {}  # Object, or bytes in a compact store
        # Copy-on-write: replaced as a whole (under the lock) by add_index and by the
        # swap of a relist, so the writer can tell whether it changed meanwhile.
        self._indexes: dict[str, Index] = {}
        # Indexes add_index is building, outside the lock; the writer keeps them up to
        # date meanwhile, as it does the complete ones. Copy-on-write too.
        self._builds: tuple[_IndexBuild, ...] = ()
        self._ready = threading.Event()
        # Notified when the store becomes ready and when its writer's status changes.
        self._changed = threading.Condition(self._lock)
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        # Library callbacks told of the same changes (see _listen); copy-on-write.
        self._listeners: tuple[Callable[[], object], ...] = ()
        self._listed = 0  # objects buffered so far by a relist in progress, for messages
        # Set by the writer at Init and when a pipeline starts, cleared under the lock by
        # the swap: what the store holds is about to be replaced (_amid_relist).
        self._relisting = False
        # Set when a pipeline of its own starts (not a retry of the last one), cleared by
        # the swap: what the store holds was left by an earlier pipeline, of any age.
        self._inherited = False
        self._has_writer = False
        self._status = WriterStatus("idle", time.time())

    # -- reading -----------------------------------------------------------------------

    def state(self, *, copy: bool | None = None) -> Snapshot:
        """A snapshot of every object, unaffected by later changes, copied as it is read.

        Taking it costs a list of references; each object is copied when it is read
        (see :class:`Snapshot`), so a scan copies one object at a time.

        Args:
            copy: hand out copies (``None``: as the store was made, see ``copy_on_read``).
                ``copy=False`` is for code that only reads, on a hot path.

        Example:
            >>> reader, writer = store()
            >>> writer.apply(Apply({"metadata": {"name": "a"}}))
            >>> snapshot = reader.state()
            >>> writer.apply(Delete({"metadata": {"name": "a"}}))
            >>> len(snapshot), len(reader)
            (1, 0)
        """
        return self._hand_out(self._references(), copy)

    def _references(self) -> list[Any]:
        """What the store holds (objects, or their encodings), at one moment (a new list)."""
        with self._lock:
            return list(self._objects.values())

    def get(self, name: str | ObjectRef, namespace: str | None = None) -> Object | None:
        """The object with this name (and namespace), or ``None``.

        A cluster-scoped object is found with or without a namespace. With an
        :class:`ObjectRef` carrying a kind or group, the object must match them too.

        Args:
            name: the object's name, or an :class:`ObjectRef`.
            namespace: its namespace (ignored when ``name`` is an ObjectRef).

        Raises:
            TypeError: ``name`` is neither a string nor an ObjectRef, or ``namespace``
                neither a string nor ``None``: no object could have such a key.

        Example:
            >>> reader, writer = store()
            >>> writer.apply(Apply({"metadata": {"name": "web", "namespace": "prod"}}))
            >>> reader.get("web", "prod")["metadata"]["name"]
            'web'
            >>> reader.get(ObjectRef("web", "prod")) == reader.get("web", "prod")
            True
            >>> reader.get("web") is None
            True
        """
        obj = self._lookup(name, namespace)
        if obj is None or self._compact or not self._copy_on_read:
            return obj  # a compact store's lookup decoded a copy already
        copied: Object = copy_object(obj)
        return copied

    def _lookup(self, name: str | ObjectRef, namespace: str | None = None) -> Object | None:
        """The cached object itself, or a compact store's decoding of it (see :meth:`get`)."""
        if isinstance(name, ObjectRef):
            ref: ObjectRef | None = name
            key: Key = (name.namespace, name.name)
        else:
            if not isinstance(name, str) or not isinstance(namespace, str | None):
                raise TypeError(
                    "Store.get() takes a name (a string) or an ObjectRef, and a namespace"
                    f" (a string or None), not {name!r:.60} and {namespace!r:.60}"
                )
            ref = None
            key = (namespace or None, name)
        objects = self._objects
        obj = objects.get(key)
        if obj is None and key[0] is not None:
            obj = objects.get((None, key[1]))  # a cluster-scoped object asked with a namespace
        if obj is not None and self._peek is not None:
            obj = self._peek(obj)
        if obj is not None and ref is not None and not matches_ref(obj, ref):
            return None
        return obj

    def find(self, pred: Callable[[Object], bool]) -> Object | None:
        """The first object (in no particular order) for which ``pred`` is true, or ``None``.

        Example:
            >>> reader, writer = store()
            >>> writer.apply(Apply({"metadata": {"name": "a"}, "spec": {"x": 1}}))
            >>> reader.find(lambda o: o["spec"]["x"] == 1)["metadata"]["name"]
            'a'
        """
        for obj in self.state(copy=False):
            if pred(obj):
                return copy_object(obj) if self._copy_on_read and not self._compact else obj
        return None

    def filter(
        self,
        pred: Callable[[Object], bool] | None = None,
        *,
        label_selector: str | LabelSelector | None = None,
    ) -> Snapshot:
        """The objects that satisfy ``pred`` and match ``label_selector`` (both optional).

        Predicates see the cached objects (they must not change them); what is returned
        is a :class:`Snapshot`, copied as it is read.

        Args:
            pred: a predicate on objects.
            label_selector: a label selector such as ``"app=web,tier!=db"``.

        Raises:
            ValueError: the label selector is invalid.

        Example:
            >>> reader, writer = store()
            >>> writer.apply(Apply({"metadata": {"name": "a", "labels": {"app": "web"}}}))
            >>> writer.apply(Apply({"metadata": {"name": "b", "labels": {"app": "db"}}}))
            >>> [o["metadata"]["name"] for o in reader.filter(label_selector="app=web")]
            ['a']
        """
        selector = (
            LabelSelector.parse(label_selector)
            if isinstance(label_selector, str)
            else label_selector
        )

        def wanted(obj: Object) -> bool:
            if selector is not None and not selector.matches(obj["metadata"].get("labels") or {}):
                return False
            return pred is None or pred(obj)

        held = self._references()
        if self._peek is None:
            return self._hand_out([o for o in held if wanted(o)])
        peek = self._peek
        return self._hand_out([o for o in held if wanted(peek(o))])

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, item: object) -> bool:
        """``name in store`` (cluster-scoped), ``ObjectRef in store`` or ``obj in store`` (by key)."""
        if isinstance(item, str | ObjectRef):
            return self._lookup(item) is not None
        if isinstance(item, dict):
            meta = item.get("metadata")
            if isinstance(meta, dict):
                name, namespace = meta.get("name"), meta.get("namespace")
                # An object with no string name could never have been stored.
                if isinstance(name, str) and isinstance(namespace, str | None):
                    return self._lookup(name, namespace) is not None
        return False

    def __iter__(self) -> Iterator[Object]:
        """Iterate over a snapshot, copying each object as it is reached (see :meth:`state`)."""
        return iter(self.state())

    def __repr__(self) -> str:
        ready = "ready" if self.is_ready() else "not ready"
        return f"<{type(self).__name__} {self.describe()}: {len(self)} objects, {ready}>"

    def _repr_html_(self) -> str:
        """A compact HTML table for Jupyter (see ``rxkube.notebook.render_store_html``)."""
        return _display.render_store_html(self)

    # -- readiness ---------------------------------------------------------------------

    def is_ready(self) -> bool:
        """Whether a first complete list has been applied (the store may be read as truth).

        Example:
            >>> reader, writer = store()
            >>> reader.is_ready()
            False
            >>> writer.apply(Init()); writer.apply(InitDone())
            >>> reader.is_ready()
            True
        """
        return self._ready.is_set()

    def writer_status(self) -> WriterStatus:
        """Whether the pipeline feeding this store still runs: running, retrying or stopped.

        A store whose status is not ``"running"`` does not follow the server: what it
        holds may be stale (see :class:`WriterStatus`). Health probes, ``live()`` views
        and the HTML display read it.

        Example:
            >>> from reactivex import of
            >>> from rxkube.operators import reflect
            >>> reader, writer = store()
            >>> _ = of(Init(), InitDone()).pipe(reflect(writer)).subscribe()
            >>> status = reader.writer_status()
            >>> status.state, status.error, reader.is_ready()
            ('stopped', None, True)
        """
        return self._status

    def wait_until_ready(self, timeout: float | None = None) -> None:
        """Block the calling thread until the first complete list has been applied.

        For scripts and threads; in a coroutine use :meth:`wait_ready`.

        Args:
            timeout: seconds to wait at most; ``None`` waits for as long as it takes.

        Raises:
            WriterStopped: the pipeline feeding the store has ended (before or while
                waiting) without a complete list: nothing will make it ready.
            TimeoutError: not ready in time; the message names the store and, if the
                watch keeps failing, its last error.
            TypeError, ValueError: ``timeout`` is not a number, or is negative or NaN.

        Example:
            >>> reader, writer = store(name="pods")
            >>> reader.wait_until_ready(timeout=0.01)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            TimeoutError: store of pods is not ready after 0.01 s: no complete list has been received yet...
        """
        limit = checked_timeout(timeout, "Store.wait_until_ready()")
        with self._changed:
            settled = self._changed.wait_for(self._settled, limit)
        if not settled:
            raise TimeoutError(self._not_ready_message(timeout))
        self._raise_if_stopped()

    def _settled(self) -> bool:
        """Ready, or never going to be (the writer's pipeline ended)."""
        return self._ready.is_set() or self._status.state == "stopped"

    def _raise_if_stopped(self) -> None:
        if not self._ready.is_set():
            status = self._status
            raise WriterStopped(self.describe(), status.since, status.error)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait, without blocking the event loop, until the first complete list is applied.

        Args:
            timeout: seconds to wait at most; ``None`` waits for as long as it takes.

        Raises:
            WriterStopped: the pipeline feeding the store has ended without a complete
                list (see :meth:`wait_until_ready`).
            TimeoutError: not ready in time; the message names the store and the
                watch's last error.
            TypeError, ValueError: ``timeout`` is not a number, or is negative or NaN.

        Example:
            >>> async def main(reader: Store) -> None:
            ...     await reader.wait_ready(timeout=30)
            ...     print(len(reader), "objects")
        """
        limit = checked_timeout(timeout, "Store.wait_ready()")
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        while not self._settled():
            # Woken at every change of readiness or status: wait again until settled.
            waiter = (loop, loop.create_future())
            with self._lock:
                waiting = not self._settled()
                if waiting:
                    self._async_waiters.append(waiter)
            try:
                if waiting:
                    left = None if deadline is None else max(0.0, deadline - loop.time())
                    await asyncio.wait_for(waiter[1], left)
            except TimeoutError:
                raise TimeoutError(self._not_ready_message(timeout)) from None
            finally:
                with self._lock:
                    if waiter in self._async_waiters:
                        self._async_waiters.remove(waiter)
        self._raise_if_stopped()

    @property
    def name(self) -> str:
        """What the store holds, as given to :func:`store` (``""`` when not given)."""
        return self._name

    @property
    def kind(self) -> str:
        """The kind of the first object applied (``""`` until then, or when it has none)."""
        return self._kind

    def describe(self) -> str:
        """What the store holds, for messages: its name, else its objects' kind.

        Example:
            >>> reader, writer = store()
            >>> writer.apply(Apply({"kind": "Pod", "metadata": {"name": "web"}}))
            >>> reader.describe(), store("pods")[0].describe()
            ('Pod objects', 'pods')
        """
        return self._name or (f"{self._kind} objects" if self._kind else "objects")

    def _not_ready_message(self, timeout: float | None) -> str:
        listed = self._listed
        progress = (
            f"a list is in progress ({listed} objects so far)"
            if listed
            else "no complete list has been received yet"
        )
        status = self._status
        if status.state == "idle":
            advice = "no pipeline feeds it: subscribe watcher(...).pipe(reflect(writer))"
        elif status.state == "retrying" and status.retry_at is not None:
            wait = max(0.0, status.retry_at - time.time())
            advice = f"its watch failed: {status.error}; retrying in {wait:.1f} s"
        elif status.error is not None:
            advice = f"its watch failed before: {status.error}; it is trying again"
        else:
            advice = "check that its watch can reach the API server"
        return f"store of {self.describe()} is not ready after {timeout} s: {progress}; {advice}"

    def _amid_relist(self) -> bool:
        """Whether a running pipeline is buffering a relist: the swap that ends it replaces
        what the store holds now, and tells the listeners (see :meth:`_listen`).

        A controller holds its reconciles meanwhile, so that none reads an object the
        relist is about to replace. A pipeline that stopped or waits to retry abandoned
        its relist: the store holds what it will hold until the next one, unless that is
        what an earlier pipeline left (a controller run again): the pipeline's own first
        list is waited for, also while it retries.
        """
        state = self._status.state
        return self._relisting and (
            state in ("idle", "running") or (state == "retrying" and self._inherited)
        )

    def _listen(self, listener: Callable[[], object]) -> Callable[[], None]:
        """Call ``listener`` at every change of readiness or status, and at every relist's
        swap; returns the undo.

        For rxkube's own consumers (a controller's loop waiting for its stores): it runs
        under the lock, so it must be quick and never wait (a hand-over's non-waiting put).
        """
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def undo() -> None:
            with self._lock:
                self._listeners = tuple(f for f in self._listeners if f is not listener)

        return undo

    def _notify_locked(self) -> None:
        """Wake every waiter to look at readiness and status again; lock held."""
        self._changed.notify_all()
        for listener in self._listeners:
            listener()
        waiters, self._async_waiters = self._async_waiters, []
        for loop, future in waiters:
            resolve_soon(loop, future, None)

    def _writer_stopped_locked(self) -> Callable[[], None] | None:
        """Nothing feeds the store any more (lock held): what to run once it is released.

        A shared store's subscribers learn it there (see ``rxkube.dispatcher``).
        """
        return None

    # -- indexes -----------------------------------------------------------------------

    def add_index(self, name: str, fn: IndexFn) -> None:
        """Add (or replace) an index, built at once and kept up to date from then on.

        ``fn`` returns the keys an object is filed under: a string, several strings, or
        ``None`` for none. It must be a pure function of the object, must not change it,
        and may be called from the writer's thread and this one at once. It never runs
        under the store's lock, so it may be slow or read the store: the index is built
        here from a snapshot while the writer keeps it up to date, and is swapped in
        complete, so readers never see it half built.

        Args:
            name: the index name, used with :meth:`by_index`.
            fn: the index function, e.g. :func:`index_namespace`,
                ``index_label("app")`` or :func:`index_owner_uid`.

        Raises:
            TypeError: ``fn`` is not callable, or answered something other than a string,
                strings or ``None`` for an object (the message names it); the index is
                not added.
            Exception: whatever ``fn`` raised (with a note naming the object); the index
                is not added.

        Example:
            >>> reader, writer = store()
            >>> reader.add_index("node", lambda pod: pod.get("spec", {}).get("nodeName"))
            >>> writer.apply(Apply({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}}))
            >>> [p["metadata"]["name"] for p in reader.by_index("node", "n1")]
            ['p']
        """
        check_callable(fn, f"add_index({name!r})", "fn")  # else the writer fails at its next event
        build = _IndexBuild(Index(name, fn))
        with self._lock:
            snapshot = list(self._objects.items())
            self._builds = (*self._builds, build)
        built = False
        peek = self._peek
        try:
            for key, held in snapshot:
                keys = build.index.keys_for(held if peek is None else peek(held))
                with self._lock:
                    # Filed only if still current: the writer filed anything newer itself.
                    if self._objects.get(key) is held:
                        build.index.put(key, held, keys)
            built = True
        finally:
            with self._lock:
                self._builds = tuple(b for b in self._builds if b is not build)
                if built:
                    self._indexes = {**self._indexes, name: build.index}

    def by_index(self, name: str, key: str) -> Snapshot:
        """The objects an index files under ``key`` (a :class:`Snapshot`; empty if none).

        Raises:
            KeyError: there is no index of that name.

        Example:
            >>> from rxkube import index_namespace
            >>> reader, writer = store()
            >>> reader.add_index("namespace", index_namespace)
            >>> reader.by_index("namespace", "nowhere") == []
            True
        """
        with self._lock:
            bucket = self._index_named(name).buckets.get(key)
            objects = list(bucket.values()) if bucket else []
        return self._hand_out(objects)

    def index_keys(self, name: str) -> list[str]:
        """Every key an index currently has objects under.

        Raises:
            KeyError: there is no index of that name.

        Example:
            >>> reader, writer = store()
            >>> reader.add_index("ns", lambda obj: obj["metadata"].get("namespace"))
            >>> writer.apply(Apply({"metadata": {"name": "a", "namespace": "prod"}}))
            >>> reader.index_keys("ns")
            ['prod']
        """
        with self._lock:
            return list(self._index_named(name).buckets)

    def _index_named(self, name: str) -> Index:
        """The index called ``name``; call with the lock held."""
        index = self._indexes.get(name)
        if index is None:
            raise KeyError(
                f"no index {name!r} on store of {self.describe()}; "
                f"indexes: {sorted(self._indexes) or 'none'} (add one with add_index)"
            )
        return index

    def _hand_out(self, objects: list[Any], copy: bool | None = None) -> Snapshot:
        """What a read returns: copies, unless the store (or this read) says otherwise."""
        if self._compact:
            return Snapshot(objects, _decode, _decode)  # each decoding is a new copy
        if self._copy_on_read if copy is None else copy:
            return Snapshot(objects, copy_object)
        return Snapshot(objects)


class _IndexBuild:
    """An index ``add_index`` is building; ``index`` is replaced (under the lock) by a relist."""

    __slots__ = ("index",)

    def __init__(self, index: Index) -> None:
        self.index = index


class Writer:
    """The one writer of a :class:`Store`: applies watch events to it.

    Get it from :func:`store` (or ``store_shared``); it is fed by ``reflect``. Apply
    events from one thread at a time (one watch); the Store may be read meanwhile from
    any thread.

    Example:
        >>> reader, writer = store()
        >>> writer.apply(Init())
        >>> writer.apply(InitApply({"metadata": {"name": "a"}}))
        >>> len(reader)  # the relist is not complete: readers still see the old state
        0
        >>> writer.apply(InitDone())
        >>> len(reader)
        1
    """

    def __init__(self, store: Store) -> None:
        """Attach the writer to ``store``; prefer :func:`store`, which returns both.

        Raises:
            ValueError: the store has a writer already.
        """
        with store._lock:
            if store._has_writer:
                raise ValueError(f"store of {store.describe()} has a writer already")
            store._has_writer = True
        self._store = store
        self._buffer: dict[Key, Any] = {}  # as the store holds them
        share = store._share_subtrees
        self._subtrees = SharedSubtrees(everything=share is True) if share else None
        # Guarded by the store's lock: the running pipeline's number (None: none runs),
        # how many have started, and the error of the last failed one, kept until a
        # complete list has been applied since.
        self._run: int | None = None
        self._runs = 0
        self._failure: BaseException | None = None

    @property
    def store(self) -> Store:
        """The Store this writer fills (its reader)."""
        return self._store

    def apply(self, event: Event) -> None:
        """Apply one watch event to the store.

        ``Init`` starts a side buffer (a repeated ``Init`` restarts it), ``InitApply``
        fills it, ``InitDone`` swaps it in as one step and marks the store ready;
        ``Apply`` adds or replaces an object and ``Delete`` removes it.

        Raises:
            ValueError: the object has no ``metadata.name``.
            TypeError: an index function answered something other than keys (the store
                is left unchanged).
            Exception: whatever an index function raised (the store is left unchanged).
        """
        self._apply(event, None)

    def _apply(self, event: Event, committed: Callable[[], None] | None = None) -> None:
        """Apply ``event``; ``committed`` runs under the store lock as the change is made.

        A shared store notes there whom the change goes to, so that a subscriber joining
        with a snapshot of the store sees each change exactly once. ``committed`` must be
        quick and take no lock: it reads the subscriber tuple. ``Init`` and ``InitApply`` change only the side buffer:
        nothing is committed and ``committed`` does not run.
        """
        if isinstance(event, Apply):
            obj = event.obj
            self._put(key_of(obj), obj, committed)
        elif isinstance(event, Delete):
            self._remove(key_of(event.obj), committed)
        elif isinstance(event, InitApply):
            obj = event.obj
            key = key_of(obj)
            cached = self._store._objects.get(key)
            if self._store._compact:
                encoded = _encode(obj)
                self._buffer[key] = cached if cached == encoded else encoded
            else:
                kept = _unchanged(cached, obj)
                if kept is obj and self._subtrees is not None:
                    held = len(self._store._objects) + len(self._buffer)
                    self._subtrees.share(obj, held, cached)
                self._buffer[key] = kept
            self._store._listed = len(self._buffer)
        elif isinstance(event, Init):
            self._buffer = {}
            self._store._listed = 0
            self._store._relisting = True
        elif isinstance(event, InitDone):
            self._swap(committed)
        else:
            raise TypeError(f"not a watch event: {event!r}")

    @property
    def _pending(self) -> dict[Key, Any]:
        """The relist being buffered (what ``InitDone`` swaps in); the writer's thread only."""
        return self._buffer

    def _put(self, key: Key, obj: Object, committed: Callable[[], None] | None) -> None:
        store = self._store
        if not store._kind:
            store._kind = str(obj.get("kind", ""))
        if self._subtrees is not None:
            self._subtrees.share(obj, len(store._objects), store._objects.get(key))
        while True:
            # Index functions are user code: run them outside the lock, then retry in the
            # rare case an index was added (or its build begun) meanwhile.
            indexes, builds = store._indexes, store._builds
            keys = [(index, index.keys_for(obj)) for index in indexes.values()] if indexes else []
            if builds:
                keys += [(build.index, build.index.keys_for(obj)) for build in builds]
            held = _encode(obj) if store._compact else obj
            with store._lock:
                if store._indexes is indexes and store._builds is builds:
                    # The replaced object is freed once the lock is released (at return):
                    # freeing a pod's hundred containers is no reader's wait, and a
                    # finalizer in it (something modify() put there) is user code.
                    replaced = store._objects.get(key)  # noqa: F841
                    store._objects[key] = held
                    for index, index_keys in keys:
                        index.put(key, held, index_keys)
                    if committed is not None:
                        committed()
                    return

    def _remove(self, key: Key, committed: Callable[[], None] | None) -> None:
        store = self._store
        with store._lock:
            # Freed once the lock is released, as in _put.
            removed = store._objects.pop(key, None)
            if removed is not None:
                for index in store._indexes.values():
                    index.remove(key)
                for build in store._builds:
                    build.index.remove(key)
            if committed is not None:
                committed()

    def _swap(self, committed: Callable[[], None] | None) -> None:
        store = self._store
        objects, self._buffer = self._buffer, {}
        if not store._kind and objects:
            first = next(iter(objects.values()))
            store._kind = str(
                (first if store._peek is None else store._peek(first)).get("kind", "")
            )
        while True:
            indexes, builds = store._indexes, store._builds
            peek = store._peek
            rebuilt = {name: index.rebuilt(objects, peek) for name, index in indexes.items()}
            # An index being built is rebuilt too: complete for the new map at once.
            rebuilt_builds = [build.index.rebuilt(objects, peek) for build in builds]
            with store._lock:
                if store._indexes is indexes and store._builds is builds:
                    # The old map and indexes, with every object the relist did not keep,
                    # are freed once the lock is released (at return): O(n), no reader waits.
                    replaced = store._objects, store._indexes  # noqa: F841
                    store._objects = objects
                    store._indexes = rebuilt
                    for build, index in zip(builds, rebuilt_builds, strict=True):
                        build.index = index
                    store._listed = 0
                    store._relisting = store._inherited = False
                    self._failure = None  # a complete list: up to date again
                    if store._status.error is not None and store._status.state == "running":
                        store._status = WriterStatus("running", store._status.since)
                    store._ready.set()
                    # Every swap, not only the first: a controller waits for each one.
                    store._notify_locked()
                    if committed is not None:
                        committed()
                    return

    # -- the pipeline that feeds this writer ----------------------------------------------

    def new_run(self) -> Run:
        """One pipeline's run of this writer, to :meth:`Run.start` when it subscribes.

        ``reflect`` and ``reflect_shared`` (both faces) make one per subscription, so the
        store's :meth:`~Store.writer_status` follows them.
        """
        return Run(self)

    def _start_run(self, run: Run) -> int:
        store = self._store
        with store._lock:
            if self._run is not None:
                raise WriterBusy(store.describe())
            self._runs += 1
            self._run = self._runs
            # A new pipeline lists afresh (an old relist is abandoned): what the store holds
            # is replaced at its first swap, and until then is not read as current.
            store._relisting = True
            if store._status.state != "retrying":
                store._inherited = True
            store._status = WriterStatus("running", time.time(), self._failure)
            store._notify_locked()
        return self._runs

    def _end_run(self, run: int, error: BaseException | None) -> bool:
        """Release the writer if ``run`` still holds it; lock held. False if it did not."""
        if self._run != run:
            return False
        self._run = None
        if error is not None:
            self._failure = error
        return True

    def _publish_locked(self, run: Run) -> None:
        """Publish the state of the running ``run``: retrying while a source upstream of it
        waits to be resubscribed (the last one lost), else running; lock held."""
        store = self._store
        if run._waiting:
            error, at = next(reversed(run._waiting.values()))
            store._status = WriterStatus("retrying", time.time(), error, at)
        else:
            store._status = WriterStatus("running", time.time(), self._failure)
        store._notify_locked()

    def _settle(
        self,
        run: int,
        state: WriterState,
        error: BaseException | None,
        retry_at: float | None = None,
    ) -> None:
        """Publish how ``run`` ended, unless a newer run has started meanwhile."""
        store = self._store
        with store._lock:
            if self._runs != run or self._run is not None:
                return
            store._status = WriterStatus(state, time.time(), error, retry_at)
            store._notify_locked()
            stopped = store._writer_stopped_locked() if state == "stopped" else None
        if stopped is not None:
            stopped()


class Run:
    """One pipeline feeding a :class:`Writer`: :meth:`start` when it subscribes, then one end.

    The pipeline ends it once, whichever comes first: :meth:`failed` (the error goes
    downstream inside it), :meth:`completed`, or :meth:`disposed`. A retrying operator
    (``backoff()``) that will resubscribe tells the store, which then shows
    ``"retrying"``: one downstream of the run finds it by the error it handles
    (:func:`failed_run`) and calls :meth:`retrying`, and the run ends; one upstream, which
    loses its source while the run goes on, was subscribed inside :meth:`upstream` and
    calls :meth:`source_retrying`, then :meth:`source_resumed` as it resubscribes.
    """

    __slots__ = ("_error", "_number", "_retry_at", "_settled", "_waiting", "_writer", "ended")

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self._number = 0
        self._error: BaseException | None = None
        self._retry_at: float | None = None
        self._settled = False
        # The sources lost upstream, by who resubscribes them (its error and when);
        # guarded by the store's lock.
        self._waiting: dict[object, tuple[BaseException, float]] = {}
        self.ended = False
        """Whether the run has ended: events arriving after that are not applied."""

    def start(self) -> None:
        """The pipeline subscribes: it feeds the writer from now on.

        Raises:
            WriterBusy: another pipeline is feeding the writer now.
        """
        self._number = self._writer._start_run(self)

    def failed(self, error: Exception, forward: Callable[[Exception], None]) -> None:
        """The pipeline failed: release the writer, ``forward(error)``, then publish."""
        writer = self._writer
        self.ended = True
        with writer._store._lock:
            ended = writer._end_run(self._number, error)
        if not ended:
            forward(error)
            return
        self._error = error
        _failing.add(error, self)
        try:
            forward(error)
        finally:
            self._settled = True
            retry_at = self._retry_at
            scope = _retry_scope.get()
            if retry_at is not None:
                writer._settle(self._number, "retrying", error, retry_at)
            elif scope is None or not scope.defer(self):
                writer._settle(self._number, "stopped", error)

    def completed(self) -> None:
        """The pipeline completed: release the writer and publish ``"stopped"``."""
        self._stop()

    def disposed(self) -> None:
        """The pipeline was disposed: release the writer and publish ``"stopped"``."""
        self._stop()

    def retrying(self, at: float) -> None:
        """A retrying operator will resubscribe the pipeline at ``at`` (``time.time()``),
        and so every run its error failed on the way (several ``reflect`` in one pipeline).
        """
        for run in _failing.find(self._error) or (self,):
            run._retry_at = at
            if run._settled:
                run._writer._settle(run._number, "retrying", run._error, at)

    def retry_cancelled(self) -> None:
        """The promised retry will not happen (disposed while waiting): ``"stopped"``."""
        runs = _failing.find(self._error) or (self,)
        _failing.forget(self._error)
        for run in runs:
            run._writer._settle(run._number, "stopped", run._error)

    def upstream(self) -> contextlib.AbstractContextManager[None]:
        """Where the pipeline subscribes its source: a retrying operator subscribed inside
        it (directly or through other operators) tells the run when it loses that source
        and when it resubscribes it (see :func:`downstream_runs`).
        """
        return feeding((*_downstream.get(), self))

    def source_retrying(self, source: object, error: BaseException, at: float) -> None:
        """``source`` (a retrying operator upstream) failed with ``error`` and resubscribes
        at ``at`` (``time.time()``): the run goes on, and the store shows ``"retrying"``."""
        writer = self._writer
        with writer._store._lock:
            if writer._run == self._number:
                self._waiting[source] = (error, at)
                writer._failure = error
                writer._publish_locked(self)

    def source_resumed(self, source: object) -> None:
        """``source`` no longer waits (it resubscribed, or was disposed): the store is
        followed again, unless another source of the run still waits (``"running"``, its
        error kept until a complete list)."""
        writer = self._writer
        with writer._store._lock:
            if writer._run == self._number and self._waiting.pop(source, None) is not None:
                writer._publish_locked(self)

    def _stop(self) -> None:
        writer = self._writer
        self.ended = True
        with writer._store._lock:
            ended = writer._end_run(self._number, None)
            # Ended while a source upstream waited to be retried: stale since that error.
            waited = next(reversed(self._waiting.values()))[0] if self._waiting else None
        if ended:
            writer._settle(self._number, "stopped", waited)


class RetryScope:
    """Where a retrying operator of the async face waits for its source's next item.

    A failed run's error reaches an Rx retrier while ``Run.failed`` passes it on, so the
    run knows its retry before it publishes its end; in the async face the error is
    raised, and it unwinds past the run before the retrier that catches it decides.
    A run failing inside a scope therefore leaves its end to the scope: when the scope
    exits, the retrier has called :meth:`Run.retrying` on the run it retries, and every
    other run it saw fail goes to the enclosing scope (an outer retrier may retry it) or,
    at the outermost, publishes ``"stopped"``. So the store never shows ``"stopped"`` for a
    pipeline that is retried, in either face.

    Use it around one step of the iteration (no ``yield`` inside): the scope is a context
    variable, set and reset in the task that iterates. A task or thread that copied the
    context (a worker, an aiostream task) may fail a run after the step ended: the run
    then publishes its end at once, as it would with no retrier.
    """

    __slots__ = ("_active", "_lock", "_runs", "_token")

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _active and _runs; nothing is called under it
        self._active = False
        self._runs: list[Run] = []
        self._token: contextvars.Token[RetryScope | None] | None = None

    def defer(self, run: Run) -> bool:
        """Leave the end of ``run``, which failed, to the scope; False once it has exited."""
        with self._lock:
            if self._active:
                self._runs.append(run)
            return self._active

    def __enter__(self) -> RetryScope:
        self._active = True
        self._token = _retry_scope.set(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._token is not None
        _retry_scope.reset(self._token)
        with self._lock:
            self._active = False
            runs, self._runs = self._runs, []
        outer = _retry_scope.get()
        for run in runs:
            if run._retry_at is not None:
                continue  # retried: it published "retrying"
            if outer is None or not outer.defer(run):
                run._writer._settle(run._number, "stopped", run._error)


_retry_scope: contextvars.ContextVar[RetryScope | None] = contextvars.ContextVar(
    "rxkube_retry_scope", default=None
)
"""The innermost :class:`RetryScope` of the running task, if a retrier waits in it."""

_downstream: contextvars.ContextVar[tuple[Run, ...]] = contextvars.ContextVar(
    "rxkube_downstream_runs", default=()
)
"""The runs whose pipelines are subscribing their sources now (see :meth:`Run.upstream`)."""


@contextlib.contextmanager
def feeding(runs: tuple[Run, ...]) -> Iterator[None]:
    """Subscribe sources inside it as upstream of ``runs`` (see :func:`downstream_runs`).

    A retrying operator resubscribes its source inside it, so that retrying operators
    further upstream learn the same runs on every subscription, not only the first.
    """
    token = _downstream.set(runs)
    try:
        yield
    finally:
        _downstream.reset(token)


def downstream_runs() -> tuple[Run, ...]:
    """The runs fed by the pipeline subscribing now, downstream of the caller.

    A retrying operator reads them as it is subscribed, and tells each one when it loses
    its source (:meth:`Run.source_retrying`) and when it resubscribes it
    (:meth:`Run.source_resumed`): with ``backoff()`` before ``reflect()``, the order
    kube-rs writes, the store shows ``"retrying"`` while its watch is down.
    """
    return _downstream.get()


class _Failing:
    """Runs whose error is on its way downstream, by that error (exceptions take no weak
    references): every run one error failed (several ``reflect`` in one pipeline), in the
    order it reached them; a writer's run is dropped when the retry is called off or a
    newer error of that writer replaces it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards both dicts; nothing is called under it
        self._runs: dict[int, tuple[BaseException, tuple[Run, ...]]] = {}
        # Each writer's last error, held: while it is, its id names that error alone.
        self._by_writer: dict[int, BaseException] = {}

    def add(self, error: BaseException, run: Run) -> None:
        with self._lock:
            previous = self._by_writer.get(id(run._writer))
            if previous is not None and previous is not error:
                self._drop_locked(previous, run._writer)
            self._runs[id(error)] = (error, (*self._find_locked(error), run))
            self._by_writer[id(run._writer)] = error

    def find(self, error: BaseException | None) -> tuple[Run, ...]:
        with self._lock:
            return self._find_locked(error)

    def forget(self, error: BaseException | None) -> None:
        with self._lock:
            runs = self._find_locked(error)
            if runs:
                del self._runs[id(error)]
            for run in runs:
                if self._by_writer.get(id(run._writer)) is error:
                    del self._by_writer[id(run._writer)]

    def _find_locked(self, error: BaseException | None) -> tuple[Run, ...]:
        entry = self._runs.get(id(error))
        return entry[1] if entry is not None and entry[0] is error else ()

    def _drop_locked(self, error: BaseException, writer: Writer) -> None:
        runs = tuple(run for run in self._find_locked(error) if run._writer is not writer)
        if runs:
            self._runs[id(error)] = (error, runs)
        else:
            self._runs.pop(id(error), None)


_failing = _Failing()


def held_objects(writer: Writer) -> HeldOf | None:
    """The object the store of ``writer`` holds for each key, for the watcher feeding it to
    reuse its parts (``rxkube._unchanged_parts``); None for a compact store, which holds
    encodings.

    Read without the lock: it is called on the writer's thread, the one that changes it.
    """
    store = writer.store
    if store._compact:
        return None

    def held_of(key: Key) -> Any:
        return store._objects.get(key)  # looked up each time: a relist swaps the dict

    return held_of


def failed_run(error: BaseException) -> Run | None:
    """The run that failed with ``error``, if a store's pipeline did.

    A retrying operator calls it when it decides to resubscribe after ``error``, to tell
    the store (:meth:`Run.retrying`) and, if that is called off, :meth:`Run.retry_cancelled`;
    both reach every run ``error`` failed.
    """
    runs = _failing.find(error)
    return runs[-1] if runs else None


def _unchanged(cached: Object | None, listed: Object) -> Object:
    """The cached object if ``listed`` is the same version of it and encodes to the same
    JSON, else ``listed``.

    So a relist keeps the objects that did not change, and its peak memory grows with
    what changed rather than with the store (kube-rs and client-go hold the old and the
    new state together, about twice the store). The same uid and resourceVersion are not
    enough: a server serves another body at the same version once a CRD's schema gains a
    default or its conversion changes, and the ``modify()`` functions may have changed
    since the cached object went through them. The encodings are compared rather than the
    dicts, because ``==`` takes ``1``, ``1.0`` and ``true`` for one value; an object that
    does not encode (a value a ``modify()`` put in) is never taken for the cached one.
    """
    if cached is None:
        return listed
    meta, old = listed["metadata"], cached["metadata"]
    version = meta.get("resourceVersion")
    if version and version == old.get("resourceVersion") and meta.get("uid") == old.get("uid"):
        try:
            if orjson.dumps(listed) == orjson.dumps(cached):
                return cached
        except TypeError:
            pass
    return listed


def store(
    name: str = "",
    *,
    copy_on_read: bool = True,
    compact: bool = False,
    share_subtrees: SharedParts = "managedFields",
) -> tuple[Store, Writer]:
    """Create a store and its one writer.

    Args:
        name: what the store holds (e.g. ``"pods"``), used in messages.
        copy_on_read: reads hand out copies of the cached objects, which their readers may
            change (the default); ``False`` hands out the cached objects themselves, which
            nobody may change (no copy per read: see ``docs/performance.md``).
        compact: keep each object as its JSON encoding (``orjson``) and decode it on every
            read: about a fifth of the memory of decoded objects, and each read decodes
            a new copy (~10-15 µs for a pod, less than the copy of a decoded one). The
            objects come back as JSON types: tuples as lists, a UUID or an enum as its
            value; a datetime, a dataclass or a subclass of a JSON type put in by
            ``modify()`` is refused with a ``TypeError``. Objects in the watch stream
            after ``reflect()`` are not the held ones (they are decoded dicts of their
            own). Predicates and index functions see decoded objects, so an index's
            rebuild after a relist decodes every object once.
        share_subtrees: which parts equal across cached objects to hold once, found by
            their encoding as each object is stored. ``"managedFields"`` (the default):
            the parts of ``metadata.managedFields`` of each object stored, which objects
            written by the same managers repeat: a workload pod takes 0.7x its decoded
            size, below lightkube's, and a list costs no more CPU than without (3% more
            instructions, but the duplicates are freed as each object is decoded, so the
            cyclic collector runs less often over fewer objects). A watch's update keeps
            the parts equal to its previous version's, found by comparing them, so the
            store stays that size however often its objects change; the comparison costs
            a watch event 13% more instructions than unshared on the benchmark's pods, 20%
            on a real server's. ``True``: every part
            (the pods of one ReplicaSet share their containers, volumes and conditions):
            under a fifth of the decoded size, for more list CPU and each watch event
            costing more. ``False``: none, each object
            as decoded; what it buys is that the objects in the stream after
            ``reflect()`` share nothing with other cached objects (see
            ``docs/performance.md``). A shared part is never changed by rxkube: reads
            hand out copies, and ``modify()`` before ``reflect()`` sees each object before
            it shares anything. No effect with ``compact=True``.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: ``compact=True`` with ``copy_on_read=False``, or ``share_subtrees``
            not one of ``True``, ``False``, ``"managedFields"``.

    Returns:
        ``(reader, writer)``: share the reader freely; feed the writer with ``reflect``.

    Example:
        >>> reader, writer = store("pods")
        >>> writer.apply(Apply({"metadata": {"name": "web", "namespace": "default"}}))
        >>> reader.get("web", "default") is not None
        True
    """
    reader = Store(name, copy_on_read=copy_on_read, compact=compact, share_subtrees=share_subtrees)
    return reader, Writer(reader)
