"""Controllers: reconcile every object of a resource whenever it, or something related, changes.

A :class:`Controller` watches a resource into a :class:`~rxkube.Store`, turns every
change (of the object itself, of objects it owns, of anything a mapper relates to it)
into a reconcile request, and runs your ``reconcile(obj, ctx)`` for each requested object,
as kube-rs's ``Controller`` does::

    controller = Controller(Api(client, "configmaps", namespace="default"))
    results = controller.owns(Api(client, "secrets", namespace="default")).run(
        reconcile, error_policy, context
    )
    subscription = results.subscribe(print)  # runs until disposed, or stopped with stop=

Scheduling (see :mod:`rxkube.scheduler` for the rules): requests for one object are
merged, the earliest due wins; one object is never reconciled twice at once; a trailing
debounce and a concurrency limit are optional; nothing runs until every store the
controller reads is ready; an object that disappeared before its turn is reported as
:class:`ObjectMissing`.

Threads and loops: one thread per running controller (``rxkube-controller-<name>``) owns
the scheduler and emits the results, so ``on_next`` of :meth:`Controller.run`'s
Observable runs there. A plain ``reconcile`` function runs on a bounded pool of worker
threads (``rxkube-reconcile-<name>-<n>``, as many as the concurrency limit, 8 by
default). A coroutine function runs on an asyncio loop: the ``loop=`` given to ``run``,
else the loop running where the results are subscribed (when subscribed from async
code), else a loop on a thread the controller starts and stops
(``rxkube-controller-loop-<name>``). Never block such a loop in a coroutine reconcile:
use ``await asyncio.to_thread(api.patch, ...)`` for rxkube's blocking ``Api`` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import itertools
import logging
import queue
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TypeAlias, TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.subject import Subject

from ._cache import ObjectRef, Store, store
from ._watching import metadata_watcher, watcher
from .events import Apply, Delete, InitApply, Object
from .leader import LeaderElector
from .metrics import ControllerMetrics
from .operators import applied_objects, default_backoff, reflect, touched_objects
from .protocol import Config
from .scheduler import Scheduler

if TYPE_CHECKING:
    from .client import Api

__all__ = [
    "Action",
    "Controller",
    "ControllerConfig",
    "ObjectMissing",
    "ReconcileFailed",
    "ReconcileResult",
    "Reconciled",
    "current_reason",
    "shutdown_signals",
]

log = logging.getLogger(__name__)

_C = TypeVar("_C")

DEFAULT_WORKERS = 8
"""Worker threads for a plain-function reconcile when no concurrency limit is set."""

_IDLE_WAKEUP = 5.0
"""Longest wait of an idle loop or worker before it checks its state again (a safety net)."""

_READY_POLL = 0.1
"""How often the controller checks stores that are not ready yet."""

_JOIN_TIMEOUT = 5.0
"""How long a stopping controller waits for its idle worker threads to end."""

_REASON_OBJECT_UPDATED = "object updated"
_REASON_RECONCILE_ALL = "reconcile all requested"
_REASON_REQUEUE = "reconciler requested retry"
_REASON_ERROR_POLICY = "error policy requested retry"


# -- what reconcile returns, and what the controller reports -------------------------


@dataclass(frozen=True, slots=True)
class Action:
    """What to do after a reconcile: requeue after some seconds, or wait for a change.

    Attributes:
        requeue_after: seconds until the object is reconciled again, or ``None`` to
            reconcile it only when it (or something related) changes.

    Example:
        >>> Action.requeue(300).requeue_after
        300.0
        >>> Action.await_change().requeue_after is None
        True
    """

    requeue_after: float | None = None

    @staticmethod
    def requeue(seconds: float) -> Action:
        """Reconcile the object again ``seconds`` from now (sooner if it changes).

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"Action.requeue: seconds must be >= 0, got {seconds!r}")
        return Action(float(seconds))

    @staticmethod
    def await_change() -> Action:
        """Reconcile the object again only when it, or something related, changes."""
        return Action(None)


@dataclass(frozen=True, slots=True)
class Reconciled:
    """A reconcile that returned an action.

    Attributes:
        ref: the object reconciled.
        action: what the reconcile asked for.
        reason: why it was reconciled.
        duration: seconds the reconcile took.
    """

    ref: ObjectRef
    action: Action
    reason: str
    duration: float


@dataclass(frozen=True, slots=True)
class ReconcileFailed:
    """A reconcile that raised; ``action`` is what the error policy returned.

    Attributes:
        ref: the object reconciled.
        error: what the reconcile raised.
        action: what the error policy asked for.
        reason: why it was reconciled.
        duration: seconds the reconcile took.
    """

    ref: ObjectRef
    error: Exception
    action: Action
    reason: str
    duration: float


@dataclass(frozen=True, slots=True)
class ObjectMissing:
    """A request for an object that was not in the store when its turn came (not run).

    Attributes:
        ref: the object requested.
        reason: why it was requested.
    """

    ref: ObjectRef
    reason: str


ReconcileResult: TypeAlias = Reconciled | ReconcileFailed | ObjectMissing
"""One item of the Observable :meth:`Controller.run` returns."""

Mapper: TypeAlias = Callable[[Object], "ObjectRef | Iterable[ObjectRef] | None"]
"""Maps a related object to the objects of the controller to reconcile."""

_reason: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rxkube_reconcile_reason", default=None
)


def current_reason() -> str | None:
    """Why the running reconcile was started (``None`` outside a reconcile), for logs.

    Example:
        >>> def reconcile(obj, ctx):
        ...     log.info("reconciling %s: %s", obj["metadata"]["name"], current_reason())
        ...     return Action.await_change()
    """
    return _reason.get()


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """How a controller schedules reconciles.

    Args:
        debounce: seconds of trailing debounce: a burst of changes to one object causes
            one reconcile, this long after the last change (0 for none).
        concurrency: the most reconciles running at once. ``None``: 8 worker threads for
            a plain function, no limit for a coroutine function.
        name: the controller's name, for thread names, logs and metrics (by default the
            resource's plural or the store's name).

    Raises:
        ValueError: ``debounce`` is negative or ``concurrency`` is less than 1.
    """

    debounce: float = 0.0
    concurrency: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.debounce < 0:
            raise ValueError(f"ControllerConfig.debounce must be >= 0, got {self.debounce!r}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(
                f"ControllerConfig.concurrency must be >= 1 or None, got {self.concurrency!r}"
            )


# -- triggers ---------------------------------------------------------------------------


def _object_of(item: Any) -> Object | None:
    """The object of a trigger item: an object itself, or the object of a watch event."""
    if isinstance(item, dict):
        return item
    if isinstance(item, Apply | InitApply | Delete):
        return item.obj
    return None


def _refs_of(result: ObjectRef | Iterable[ObjectRef] | None) -> list[ObjectRef]:
    if result is None:
        return []
    if isinstance(result, ObjectRef):
        return [result]
    return list(result)


@dataclass(frozen=True, slots=True)
class _Trigger:
    """A stream of items, each mapped to the objects to reconcile and why."""

    source: Observable[Any]
    refs: Callable[[Object], list[ObjectRef]]
    reason: Callable[[Object], str]
    main: bool = False


# -- the controller -----------------------------------------------------------------------


class Controller:
    """Reconcile the objects of one resource when they, or related objects, change.

    ``Controller(api, config)`` watches ``api`` into its own store (``watcher → reflect``,
    with ``default_backoff()``). To share one watch and cache between controllers, build
    the stream yourself and use :meth:`for_stream` or :meth:`for_shared_stream`.

    Args:
        api: the resource to reconcile (and its namespace, if any).
        config: the watcher's selectors and timeouts.

    Example:
        >>> controller = Controller(Api(client, "configmaps", namespace="default"))  # doctest: +SKIP
        >>> controller.run(reconcile, error_policy, ctx).subscribe(print)            # doctest: +SKIP
    """

    def __init__(self, api: Api, config: Config | None = None) -> None:
        reader, writer = store(api.resource.plural)
        source = watcher(api, config).pipe(reflect(writer), default_backoff(), applied_objects())
        resource = api.resource
        kind = (resource.kind, resource.group)
        self._setup(source, reader, resource.plural, kind, resource.namespaced)

    @classmethod
    def for_stream(cls, stream: Observable[Any], reader: Store) -> Controller:
        """A controller triggered by a stream you reflect into ``reader`` yourself.

        Args:
            stream: objects (or watch events) of the resource, e.g.
                ``watcher(api).pipe(reflect(writer), default_backoff(), applied_objects())``.
                Each subscription of :meth:`run` subscribes to it; when it completes, the
                controller stops.
            reader: the store the stream fills; reconciles read objects from it.
        """
        controller = cls.__new__(cls)
        controller._setup(stream, reader, "controller")
        return controller

    @classmethod
    def for_shared_stream(cls, subscriber: Observable[Any], reader: Store) -> Controller:
        """A controller triggered by a shared store's subscription (one watch, many consumers).

        Args:
            subscriber: ``reader.subscribe(replay=True)`` of a ``store_shared()`` store whose
                watch you run (``watcher(api).pipe(reflect_shared(writer), default_backoff())``).
                ``replay=True`` matters when the controller may start after the first list:
                without it, objects listed before it subscribed are not reconciled until
                they change.
            reader: that shared store.

        Example:
            >>> reader, writer = store_shared(256, name="configmaps")          # doctest: +SKIP
            >>> first = Controller.for_shared_stream(reader.subscribe(replay=True), reader)  # doctest: +SKIP
            >>> second = Controller.for_shared_stream(reader.subscribe(replay=True), reader)  # doctest: +SKIP
        """
        return cls.for_stream(subscriber, reader)

    def _setup(
        self,
        source: Observable[Any],
        reader: Store,
        name: str,
        kind: tuple[str, str] | None = None,
        namespaced: bool | None = None,
    ) -> None:
        self._store = reader
        # The kind and group of the reconciled objects (to pick owner references) and
        # whether they are namespaced: known from the Api, else learned from the stream.
        self._kind = kind
        self._namespaced = namespaced
        self._config = ControllerConfig()
        self._name = name
        self._triggers: list[_Trigger] = [
            _Trigger(source, self._own_ref, lambda _obj: _REASON_OBJECT_UPDATED, main=True)
        ]
        self._stores: list[Store] = [reader]
        self._reconcile_all: list[Observable[Any]] = []
        self._running = False
        self.metrics = ControllerMetrics(name)

    @property
    def store(self) -> Store:
        """The store of the reconciled objects."""
        return self._store

    @property
    def name(self) -> str:
        """The controller's name (thread names, logs, metrics)."""
        return self._config.name or self._name

    def with_config(self, config: ControllerConfig) -> Self:
        """Set the scheduling configuration; returns the controller."""
        self._config = config
        if config.name:
            self.metrics.controller = config.name
        return self

    # -- relations ----------------------------------------------------------------------

    def owns(self, api: Api, config: Config | None = None) -> Self:
        """Reconcile an object when an object it owns changes or is deleted.

        Watches ``api`` with a metadata watcher (with ``default_backoff()``) and maps each
        object to the owners in its ``metadata.ownerReferences`` that are of this
        controller's kind.
        """
        source = metadata_watcher(api, config).pipe(default_backoff(), touched_objects())
        # Metadata-only objects say "PartialObjectMetadata": name the real kind in reasons.
        resource = api.resource
        return self._relate(
            source, self._owner_refs, "owned object updated", None, (resource.kind, resource.group)
        )

    def owns_shared_stream(self, stream: Observable[Any], reader: Store | None = None) -> Self:
        """Like :meth:`owns`, from a stream of owned objects (or watch events) you provide.

        Args:
            stream: e.g. ``shared.subscribe(events=True)`` of a ``store_shared()`` store,
                to hear about deletions too.
            reader: a store the reconcile reads these objects from: reconciles wait until
                it is ready.
        """
        return self._relate(stream, self._owner_refs, "owned object updated", reader)

    def watches(self, api: Api, config: Config | None, mapper: Mapper) -> Self:
        """Reconcile the objects ``mapper`` returns for each change of a related object.

        Args:
            api: the related resource, watched with ``default_backoff()``.
            config: the watcher's configuration (``None`` for the defaults).
            mapper: maps a related object (also a deleted one) to an ObjectRef, several,
                or ``None``.
        """
        source = watcher(api, config).pipe(default_backoff(), touched_objects())
        return self.watches_shared_stream(source, mapper)

    def watches_shared_stream(
        self, stream: Observable[Any], mapper: Mapper, reader: Store | None = None
    ) -> Self:
        """Like :meth:`watches`, from a stream of related objects (or watch events).

        Args:
            stream: the related objects, e.g. ``shared.subscribe(events=True)``.
            mapper: maps a related object to an ObjectRef, several, or ``None``.
            reader: a store the reconcile reads these objects from: reconciles wait until
                it is ready.
        """

        def refs(obj: Object) -> list[ObjectRef]:
            return _refs_of(mapper(obj))

        return self._relate(stream, refs, "related object updated", reader)

    def reconcile_all_on(self, trigger: Observable[Any]) -> Self:
        """Reconcile every object in the store each time ``trigger`` emits (e.g. a config reload)."""
        self._reconcile_all.append(trigger)
        return self

    def _relate(
        self,
        stream: Observable[Any],
        refs: Callable[[Object], list[ObjectRef]],
        what: str,
        reader: Store | None,
        kind: tuple[str, str] | None = None,
    ) -> Self:
        def reason(obj: Object) -> str:
            ref = ObjectRef.from_obj(obj)
            if kind is not None:
                ref = ObjectRef(ref.name, ref.namespace, *kind)
            return f"{what}: {ref}"

        self._triggers.append(_Trigger(stream, refs, reason))
        if reader is not None:
            self._stores.append(reader)
        return self

    def _own_ref(self, obj: Object) -> list[ObjectRef]:
        ref = ObjectRef.from_obj(obj)
        if self._kind is None and ref.kind:
            self._kind = (ref.kind, ref.group)
            self._namespaced = ref.namespace is not None
        return [ref]

    def _key(self, ref: ObjectRef) -> ObjectRef:
        """The scheduler's key for a requested object: name and namespace, as stored.

        One controller reconciles one kind, so kind and group are left out: a ref from a
        mapper without them and the object's own ref must be the same key, or the object
        could be reconciled twice at once.
        """
        if self._namespaced is False:
            return ObjectRef(ref.name)
        obj = self._store.get(ref.name, ref.namespace)
        if obj is not None:
            return ObjectRef(ref.name, (obj.get("metadata") or {}).get("namespace"))
        return ObjectRef(ref.name, ref.namespace)

    def _qualified(self, key: ObjectRef) -> ObjectRef:
        """A key with the controller's kind and group, when known, for results and logs."""
        return key if self._kind is None else ObjectRef(key.name, key.namespace, *self._kind)

    def _owner_refs(self, obj: Object) -> list[ObjectRef]:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace")
        refs = []
        for owner in meta.get("ownerReferences") or ():
            group, slash, _ = str(owner.get("apiVersion", "")).rpartition("/")
            kind_group = (str(owner.get("kind", "")), group if slash else "")
            if self._kind is not None and kind_group != self._kind:
                continue
            refs.append(ObjectRef(str(owner.get("name", "")), namespace, *kind_group))
        return refs

    # -- running --------------------------------------------------------------------------

    def run(
        self,
        reconcile: Callable[[Object, _C], Action | Awaitable[Action]],
        error_policy: Callable[[Object, Exception, _C], Action],
        context: _C,
        *,
        stop: Observable[Any] | None = None,
        leader: LeaderElector | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Observable[ReconcileResult]:
        """Run the controller: an Observable of the result of every reconcile.

        Subscribing starts the watches and the reconciles; disposing the subscription
        stops them at once (running reconciles finish, but their results are dropped).
        For a graceful stop, emit on ``stop``: the watches are closed, nothing new starts,
        running reconciles finish and their results are emitted, then the Observable
        completes. A second emission on ``stop`` completes at once. Use
        :func:`shutdown_signals` to stop on SIGINT/SIGTERM. The Observable also completes
        (gracefully) when the controller's own stream completes, and ends with
        ``on_error`` (after in-flight reconciles finish) when a trigger stream fails
        with an error that its backoff does not retry.

        Args:
            reconcile: ``reconcile(obj, context) -> Action``, a plain function (run on a
                worker thread) or a coroutine function (run on an asyncio loop).
            error_policy: ``error_policy(obj, error, context) -> Action`` for a reconcile
                that raised; a plain function, called where the reconcile ran.
            context: passed to every call, e.g. clients and settings.
            stop: each emission asks to stop; the first gracefully, the second at once.
            leader: reconcile only while this elector leads; watches and stores stay warm
                on every replica, so a new leader starts at once.
            loop: the asyncio loop for a coroutine ``reconcile`` (see the module docs).

        Returns:
            A cold Observable of :class:`Reconciled`, :class:`ReconcileFailed` and
            :class:`ObjectMissing`, emitted on the controller's thread. One subscription
            at a time.
        """
        is_async = inspect.iscoroutinefunction(reconcile)

        def subscribe(
            observer: abc.ObserverBase[ReconcileResult],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            if self._running:
                observer.on_error(
                    RuntimeError(f"controller {self.name} is running already; run it once")
                )
                return Disposable()
            self._running = True
            running_loop = loop
            if is_async and running_loop is None:
                with contextlib.suppress(RuntimeError):
                    running_loop = asyncio.get_running_loop()
            run = _Run(
                self,
                reconcile,
                error_policy,
                context,
                observer,
                is_async=is_async,
                loop=running_loop,
            )
            run.start(stop, leader)
            return Disposable(run.dispose)

        return reactivex.create(subscribe)

    def _stopped(self) -> None:
        self._running = False

    def __repr__(self) -> str:
        return f"<Controller {self.name}: {len(self._triggers)} triggers>"


# -- one run of a controller ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Request:
    refs: list[ObjectRef]
    reason: str


@dataclass(frozen=True, slots=True)
class _ReconcileAll:
    pass


@dataclass(frozen=True, slots=True)
class _Job:
    key: ObjectRef  # the scheduler's key
    ref: ObjectRef  # the object's own, for results and logs
    reason: str
    obj: Object


@dataclass(frozen=True, slots=True)
class _Done:
    key: ObjectRef
    result: Reconciled | ReconcileFailed


@dataclass(frozen=True, slots=True)
class _Stop:
    error: Exception | None = None
    silent: bool = False  # disposed: emit nothing more
    completed: bool = False  # the main stream completed


@dataclass(frozen=True, slots=True)
class _Wake:
    pass


_Message: TypeAlias = _Request | _ReconcileAll | _Done | _Stop | _Wake


class _Run:
    """One subscription of ``Controller.run``: triggers in, the loop thread, workers out."""

    def __init__(
        self,
        controller: Controller,
        reconcile: Callable[[Object, Any], Any],
        error_policy: Callable[[Object, Exception, Any], Action],
        context: Any,
        observer: abc.ObserverBase[ReconcileResult],
        *,
        is_async: bool,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        cfg = controller._config
        self._controller = controller
        self._name = controller.name
        self._reconcile = reconcile
        self._error_policy = error_policy
        self._context = context
        self._observer = observer
        self._metrics = controller.metrics
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._subscriptions: list[abc.DisposableBase] = []
        self._subscriptions_lock = threading.Lock()
        self._unsubscribed = False
        self._leader: LeaderElector | None = None
        self._ready = False
        self._stopping = False
        self._stop_requests = 0
        self._error: Exception | None = None
        # The reconciles running, by key; with the future of a coroutine, to cancel it.
        self._in_flight: dict[ObjectRef, Future[None] | None] = {}
        self._loop_thread: _LoopThread | None = None
        self._loop = loop
        self._workers: _Workers | None = None
        limit = cfg.concurrency
        if is_async:
            if loop is None:
                self._loop_thread = _LoopThread(f"rxkube-controller-loop-{self._name}")
                self._loop = self._loop_thread.loop
        else:
            limit = limit or DEFAULT_WORKERS
            self._workers = _Workers(limit, f"rxkube-reconcile-{self._name}")
        self._scheduler: Scheduler[ObjectRef] = Scheduler(debounce=cfg.debounce, concurrency=limit)
        self._thread = threading.Thread(
            target=self._main, name=f"rxkube-controller-{self._name}", daemon=True
        )

    # -- wiring, on the subscribing thread ------------------------------------------------

    def start(self, stop: Observable[Any] | None, leader: LeaderElector | None) -> None:
        put = self._inbox.put
        self._leader = leader
        self._thread.start()
        for trigger in self._controller._triggers:
            self._subscribe(trigger.source, self._on_item(trigger), main=trigger.main)
        for source in self._controller._reconcile_all:
            self._subscribe(source, lambda _item: put(_ReconcileAll()))
        if leader is not None:
            self._subscribe(leader.leadership(), lambda _leading: put(_Wake()), quiet=True)
        if stop is not None:
            self._subscribe(stop, lambda _item: put(_Stop()), quiet=True)

    def _subscribe(
        self,
        source: Observable[Any],
        on_next: Callable[[Any], None],
        *,
        main: bool = False,
        quiet: bool = False,
    ) -> None:
        put = self._inbox.put

        def on_error(exc: Exception) -> None:
            if not quiet:
                put(_Stop(error=exc))

        def on_completed() -> None:
            if main:
                put(_Stop(completed=True))

        subscription = source.subscribe(on_next, on_error, on_completed)
        with self._subscriptions_lock:
            if not self._unsubscribed:
                self._subscriptions.append(subscription)
                return
        subscription.dispose()  # the run ended while this was being subscribed

    def _on_item(self, trigger: _Trigger) -> Callable[[Any], None]:
        put = self._inbox.put

        def on_next(item: Any) -> None:
            obj = _object_of(item)
            if obj is None:
                return
            try:
                refs = trigger.refs(obj)
            except Exception:
                log.exception("controller %s: mapping %s failed", self._name, _describe(obj))
                return
            if refs:
                put(_Request(refs, trigger.reason(obj)))

        return on_next

    def dispose(self) -> None:
        self._inbox.put(_Stop(silent=True))
        self._unsubscribe()

    def _unsubscribe(self) -> None:
        with self._subscriptions_lock:
            self._unsubscribed = True
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.dispose()

    # -- the loop thread ------------------------------------------------------------------

    def _main(self) -> None:
        terminal: Callable[[], None] | None = None
        try:
            if self._loop_forever():
                error = self._error
                terminal = (
                    self._observer.on_completed
                    if error is None
                    else functools.partial(self._observer.on_error, error)
                )
        except Exception as exc:
            log.exception("controller %s failed", self._name)
            terminal = functools.partial(self._observer.on_error, exc)
        finally:
            self._unsubscribe()
            graceful = not self._in_flight
            for future in self._in_flight.values():
                if future is not None:
                    future.cancel()
            if self._workers is not None:
                self._workers.shutdown(wait=_JOIN_TIMEOUT if graceful else 0.0)
            if self._loop_thread is not None:
                self._loop_thread.stop(wait=_JOIN_TIMEOUT if graceful else 0.0)
            self._controller._stopped()
        if terminal is not None:
            terminal()

    def _loop_forever(self) -> bool:
        """Run until stopped; return whether to emit the end (``False``: disposed)."""
        inbox = self._inbox
        while True:
            try:
                message: _Message | None = inbox.get(timeout=self._timeout())
            except queue.Empty:
                message = None
            while message is not None:
                end = self._handle(message)
                if end is not None:
                    return end
                try:
                    message = inbox.get_nowait()
                except queue.Empty:
                    message = None
            if self._stopping and not self._in_flight:
                return True
            self._dispatch()
            self._metrics.queue(self._scheduler.queued)

    def _timeout(self) -> float:
        if self._stopping or not self._leading():
            return _IDLE_WAKEUP  # a change of leadership wakes the loop
        if not self._ready:
            return _READY_POLL
        due = self._scheduler.next_due()
        if due is None:
            return _IDLE_WAKEUP
        return min(_IDLE_WAKEUP, max(0.0, due - time.monotonic()))

    def _handle(self, message: _Message) -> bool | None:
        """Act on one message; a bool ends the loop at once (see ``_loop_forever``)."""
        now = time.monotonic()
        match message:
            case _Request(refs, reason):
                if not self._stopping:
                    for ref in refs:
                        self._scheduler.request(self._controller._key(ref), now, reason=reason)
            case _ReconcileAll():
                if not self._stopping:
                    for obj in self._controller._store.state():
                        key = self._controller._key(ObjectRef.from_obj(obj))
                        self._scheduler.request(key, now, reason=_REASON_RECONCILE_ALL)
            case _Done(key, result):
                self._finished(key, result, now)
            case _Stop(error, silent, completed):
                if silent:
                    return False
                self._stop_requests += 1
                if error is not None and self._error is None:
                    self._error = error
                    log.error("controller %s: a trigger stream failed: %s", self._name, error)
                if not self._stopping:
                    how = "its stream completed" if completed else "asked to"
                    log.info("controller %s stopping (%s)", self._name, how)
                    self._stopping = True
                    self._scheduler.clear()
                    self._unsubscribe()
                elif self._stop_requests > 1 and error is None and not completed:
                    log.warning(
                        "controller %s: stopping at once, abandoning %d running reconciles",
                        self._name,
                        len(self._in_flight),
                    )
                    for _ in self._in_flight:
                        self._metrics.abandoned()
                    return True
            case _Wake():
                pass
        return None

    def _leading(self) -> bool:
        return self._leader is None or self._leader.is_leader

    def _dispatch(self) -> None:
        if self._stopping or not self._is_ready() or not self._leading():
            return
        for due in self._scheduler.pop_due(time.monotonic()):
            obj = self._controller._store.get(due.key)
            if obj is None:
                self._scheduler.done(due.key)
                self._metrics.missing()
                ref = self._controller._qualified(due.key)
                log.info("controller %s: %s is gone (%s)", self._name, ref, due.reason)
                self._emit(ObjectMissing(ref, due.reason))
                continue
            ref = ObjectRef.from_obj(obj)
            log.debug("controller %s: reconciling %s (%s)", self._name, ref, due.reason)
            self._metrics.started()
            self._in_flight[due.key] = self._submit(_Job(due.key, ref, due.reason, obj))

    def _is_ready(self) -> bool:
        if not self._ready:
            self._ready = all(reader.is_ready() for reader in self._controller._stores)
        return self._ready

    def _finished(self, key: ObjectRef, result: Reconciled | ReconcileFailed, now: float) -> None:
        if key not in self._in_flight:
            return  # abandoned by a forced stop
        del self._in_flight[key]
        self._scheduler.done(key)
        requeue = result.action.requeue_after
        failed = isinstance(result, ReconcileFailed)
        self._metrics.finished(result.duration, error=failed, requeue=requeue is not None)
        if requeue is not None and not self._stopping:
            reason = _REASON_ERROR_POLICY if failed else _REASON_REQUEUE
            self._scheduler.request(key, now, delay=requeue, reason=reason)
        self._emit(result)

    def _emit(self, result: ReconcileResult) -> None:
        try:
            self._observer.on_next(result)
        except Exception:
            log.exception("controller %s: a results subscriber raised; stopping", self._name)
            self._inbox.put(_Stop(silent=True))

    # -- reconciling ------------------------------------------------------------------------

    def _submit(self, job: _Job) -> Future[None] | None:
        if self._workers is not None:
            self._workers.submit(lambda: self._reconcile_sync(job))
            return None
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(self._reconcile_async(job), self._loop)

    def _reconcile_sync(self, job: _Job) -> None:
        token = _reason.set(job.reason)
        started = time.monotonic()
        action: Any = None
        error: Exception | None
        try:
            action = self._reconcile(job.obj, self._context)
            error = None if isinstance(action, Action) else _not_an_action(action)
        except Exception as exc:
            error = exc
        finally:
            duration = time.monotonic() - started
            _reason.reset(token)
        self._inbox.put(_Done(job.key, self._result(job, action, error, duration)))

    async def _reconcile_async(self, job: _Job) -> None:
        _reason.set(job.reason)  # in this task's own context
        started = time.monotonic()
        action: Any = None
        error: Exception | None
        try:
            action = await self._reconcile(job.obj, self._context)
            error = None if isinstance(action, Action) else _not_an_action(action)
        except Exception as exc:
            error = exc
        duration = time.monotonic() - started
        self._inbox.put(_Done(job.key, self._result(job, action, error, duration)))

    def _result(
        self, job: _Job, action: Any, error: Exception | None, duration: float
    ) -> Reconciled | ReconcileFailed:
        if error is None:
            return Reconciled(job.ref, action, job.reason, duration)
        log.warning("controller %s: reconcile of %s failed: %s", self._name, job.ref, error)
        try:
            policy = self._error_policy(job.obj, error, self._context)
            if not isinstance(policy, Action):
                raise _not_an_action(policy)
        except Exception:
            log.exception(
                "controller %s: error_policy raised for %s; it is reconciled again on its next "
                "change",
                self._name,
                job.ref,
            )
            policy = Action.await_change()
        return ReconcileFailed(job.ref, error, policy, job.reason, duration)


def _not_an_action(value: object) -> TypeError:
    return TypeError(f"expected an Action, got {type(value).__name__}: {value!r:.100}")


def _describe(obj: Object) -> str:
    try:
        return str(ObjectRef.from_obj(obj))
    except Exception:
        return repr(obj)[:100]


# -- where reconciles run ---------------------------------------------------------------


class _Workers:
    """A bounded pool of daemon threads; one is started only when none is idle."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._numbers = itertools.count(1)
        self._closed = False

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self._size:
                # Else every thread is busy, but one is finishing: the scheduler never has
                # more than ``size`` reconciles in flight.
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{next(self._numbers)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE_WAKEUP)
            except queue.Empty:
                if self._closed:
                    return
                continue
            if job is None:
                return
            try:
                job()
            except Exception:  # _Run's jobs catch everything; this is a safety net
                log.exception("a reconcile worker failed")
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: float) -> None:
        """Let the threads end once their current job is done; wait up to ``wait`` s for them."""
        self._closed = True
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        deadline = time.monotonic() + wait
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _LoopThread:
    """An asyncio loop on a daemon thread of its own, for coroutine reconciles."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        finally:
            loop.close()

    def stop(self, wait: float) -> None:
        """Stop the loop (cancelling what still runs there); wait up to ``wait`` s for the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(wait)


# -- signals ------------------------------------------------------------------------------


@contextlib.contextmanager
def shutdown_signals(
    signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[Observable[int]]:
    """Turn SIGINT/SIGTERM into emissions of an Observable, for ``run(..., stop=...)``.

    Installs handlers for ``signals`` on entry and restores the previous ones on exit.
    The first signal asks a controller to stop gracefully, the second to stop at once.
    Only the main thread may install signal handlers; a library never does it unasked.

    Raises:
        RuntimeError: not called from the main thread.

    Example:
        >>> with shutdown_signals() as stop:                                   # doctest: +SKIP
        ...     controller.run(reconcile, error_policy, ctx, stop=stop).run()
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("shutdown_signals() must be used from the main thread")
    subject: Subject[int] = Subject()

    def handler(signum: int, _frame: Any) -> None:
        log.warning("received %s", signal.Signals(signum).name)
        subject.on_next(signum)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield subject
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        subject.on_completed()
