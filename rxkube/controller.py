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
use :class:`rxkube.aio.AsyncApi` there, whose calls are coroutines.

Failures are retried per object: the error policy is told how many times in a row the
object has failed (reset by a success), and without one the controller waits as
client-go's default controller rate limiter does (:class:`~rxkube.ratelimit.RateLimiter`).
``ControllerConfig`` adds a reconcile timeout and a periodic resync, and
:func:`rxkube.probes.serve` serves health probes and metrics for a controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Self, TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.subject import Subject

from ._cache import Store, store
from ._callables import check_callable
from ._object_ref import ObjectRef
from ._results import (
    Action,
    ControllerConfig,
    ControllerHealth,
    Mapper,
    ObjectMissing,
    Reconciled,
    ReconcileFailed,
    ReconcileInterrupted,
    ReconcileResult,
    ReconcileTimeout,
    current_reason,
)
from ._runner import Relation, Run, RunPlan, Trigger
from ._shards import ShardKey, fraction
from ._views import PARTIAL_KIND
from ._watching import metadata_watcher, watcher
from .events import Object
from .leader import LeaderElector
from .metrics import ControllerMetrics
from .operators import applied_objects, default_backoff, reflect, touched_objects
from .protocol import Config
from .sharding import ShardedSource, ShardMember, running

if TYPE_CHECKING:
    from .client import Api

__all__ = [
    "Action",
    "Controller",
    "ControllerConfig",
    "ControllerHealth",
    "ObjectMissing",
    "ReconcileFailed",
    "ReconcileInterrupted",
    "ReconcileResult",
    "ReconcileTimeout",
    "Reconciled",
    "current_reason",
    "shutdown_signals",
]

log = logging.getLogger(__name__)

_C = TypeVar("_C")

_REASON_OBJECT_UPDATED = "object updated"
REASON_SHARD_ACQUIRED = "shard acquired"
"""The reason of the reconciles a sharded replica starts for each object of a range it took."""


def _guarded(
    reconcile: Callable[[Object, Any], Any], member: ShardMember, *, is_async: bool
) -> Callable[[Object, Any], Any]:
    """``reconcile``, run only while ``member`` holds the object's range (else skipped)."""
    if is_async:

        async def guarded_async(obj: Object, context: Any) -> Any:
            with member.reconciling(obj) as allowed:
                return await reconcile(obj, context) if allowed else Action.await_change()

        return guarded_async

    def guarded(obj: Object, context: Any) -> Any:
        with member.reconciling(obj) as allowed:
            return reconcile(obj, context) if allowed else Action.await_change()

    return guarded


def _refs_of(result: ObjectRef | Iterable[ObjectRef] | None) -> list[ObjectRef]:
    if result is None:
        return []
    if isinstance(result, ObjectRef):
        return [result]
    return list(result)


def _own_ref(obj: Object) -> list[ObjectRef]:
    """An object of the controller's own stream: itself (with its kind, if it says)."""
    return [ObjectRef.from_obj(obj)]


def _owner_refs(obj: Object) -> list[ObjectRef]:
    """The owners an object names, each with its kind and group.

    The run keeps those of the controller's kind, on its loop thread, where it learns
    that kind.
    """
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    refs = []
    for owner in meta.get("ownerReferences") or ():
        group, slash, _ = str(owner.get("apiVersion", "")).rpartition("/")
        kind = str(owner.get("kind", ""))
        refs.append(ObjectRef(str(owner.get("name", "")), namespace, kind, group if slash else ""))
    return refs


def _stream_kind(kind: object, group: object) -> tuple[str, str] | None:
    """The ``(kind, group)`` given to :meth:`Controller.for_stream`, checked."""
    where = "Controller.for_stream()"
    if not isinstance(group, str):
        raise TypeError(f"{where}: group must be a string, got {type(group).__name__}")
    if kind is None:
        if group:
            raise ValueError(f"{where}: group={group!r} names no kind; give kind= with it")
        return None
    if not isinstance(kind, str):
        raise TypeError(f"{where}: kind must be a string, got {type(kind).__name__}")
    if not kind:
        raise ValueError(f"{where}: kind must not be empty; leave it out to learn it")
    if kind == PARTIAL_KIND:
        raise ValueError(
            f"{where}: kind={kind!r} is the shape of metadata-only objects; give the kind "
            'they are of, e.g. kind="ConfigMap"'
        )
    if "/" in group:
        raise ValueError(
            f"{where}: group={group!r} holds a version; give the group alone, e.g. "
            f"{group.rpartition('/')[0]!r}"
        )
    return (kind, group)


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
        watched = watcher(api, config)  # first: it refuses what is not an Api or a Config
        reader, writer = store(api.resource.plural)
        source = watched.pipe(reflect(writer), default_backoff(), applied_objects())
        resource = api.resource
        kind = (resource.kind, resource.group)
        self._setup(source, reader, resource.plural, kind, resource.namespaced)
        self._watched: tuple[Api, Config | None] | None = (api, config)

    @classmethod
    def for_stream(
        cls, stream: Observable[Any], reader: Store, *, kind: str | None = None, group: str = ""
    ) -> Controller:
        """A controller triggered by a stream you reflect into ``reader`` yourself.

        Args:
            stream: objects (or watch events) of the resource, e.g.
                ``watcher(api).pipe(reflect(writer), default_backoff(), applied_objects())``.
                Each subscription of :meth:`run` subscribes to it; when it completes, the
                controller stops.
            reader: the store the stream fills; reconciles read objects from it.
            kind: the kind of the objects, e.g. ``"ConfigMap"``: :meth:`owns` follows the
                owner references of this kind (and ``group``). Without it, each run learns
                the kind from the first of the stream's objects that names one; objects of
                a ``metadata_watcher()`` say only ``PartialObjectMetadata``, so until some
                object names its kind, every owner reference counts, whatever its kind.
            group: the kind's API group, ``""`` for the core group (e.g.
                ``"example.com"``, without the version).

        Raises:
            TypeError: ``kind`` or ``group`` is not a string.
            ValueError: ``kind`` is empty or ``PartialObjectMetadata``, ``group`` holds a
                version, or ``group`` is given without ``kind``.

        Example:
            >>> stream = metadata_watcher(configmaps).pipe(reflect(writer), default_backoff(), applied_objects())  # doctest: +SKIP
            >>> Controller.for_stream(stream, reader, kind="ConfigMap").owns(secrets)  # doctest: +SKIP
        """
        known = _stream_kind(kind, group)
        controller = cls.__new__(cls)
        controller._setup(stream, reader, "controller", known)
        return controller

    @classmethod
    def for_shared_stream(
        cls, subscriber: Observable[Any], reader: Store, *, kind: str | None = None, group: str = ""
    ) -> Controller:
        """A controller triggered by a shared store's subscription (one watch, many consumers).

        Args:
            subscriber: ``reader.subscribe(replay=True)`` of a ``store_shared()`` store whose
                watch you run (``watcher(api).pipe(reflect_shared(writer), default_backoff())``).
                ``replay=True`` matters when the controller may start after the first list:
                without it, objects listed before it subscribed are not reconciled until
                they change.
            reader: that shared store.
            kind: the kind of its objects, as for :meth:`for_stream`.
            group: the kind's API group, as for :meth:`for_stream`.

        Raises:
            TypeError, ValueError: a bad ``kind`` or ``group``, as for :meth:`for_stream`.

        Example:
            >>> reader, writer = store_shared(256, name="configmaps")          # doctest: +SKIP
            >>> first = Controller.for_shared_stream(reader.subscribe(replay=True), reader)  # doctest: +SKIP
            >>> second = Controller.for_shared_stream(reader.subscribe(replay=True), reader)  # doctest: +SKIP
        """
        return cls.for_stream(subscriber, reader, kind=kind, group=group)

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
        # whether they are namespaced, when the Api tells; else each run learns them from
        # its own objects, on its loop thread.
        self._kind = kind
        self._namespaced = namespaced
        self._config = ControllerConfig()
        self._name = name
        self._triggers: list[Trigger] = [
            Trigger(
                source, _own_ref, lambda _obj: _REASON_OBJECT_UPDATED, main=True, relation="own"
            )
        ]
        self._stores: list[Store] = [reader]
        self._reconcile_all: list[Observable[Any]] = []
        # Lock rules: ``_lock`` guards ``_running``, ``_run`` and ``_last_error`` (set by
        # the subscribing thread and by the run's loop thread as it ends); it is held for
        # an assignment or a test, never across a call out. Nothing else of the
        # controller changes once it runs: what a run learns stays in its ``Run``.
        self._lock = threading.Lock()
        self._running = False
        self._run: Run | None = None
        self._last_error: Exception | None = None
        self.metrics = ControllerMetrics(name)
        self._watched = None
        self._sharding: ShardedSource | None = None

    @property
    def store(self) -> Store:
        """The store of the reconciled objects."""
        return self._store

    @property
    def stores(self) -> list[Store]:
        """Every store the controller reads: its own, and those given with relations.

        It reconciles nothing until all of them are ready.
        """
        return list(self._stores)

    def health(self) -> ControllerHealth:
        """Whether it runs, and whether its loop answers (what :mod:`rxkube.probes` checks).

        Each call also sends the loop a ping, so the next call can tell a loop that has
        not answered since.
        """
        run = self._run
        if run is None:
            return ControllerHealth(False, False, self._last_error, 0.0)
        return run.health()

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

    def sharded(
        self,
        identity: str,
        leases: Api,
        *,
        key: ShardKey = "uid",
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        vnodes: int = 64,
    ) -> Self:
        """Run as one replica of a sharded controller; returns the controller.

        The replicas (one :meth:`run` each, in as many processes as you like) split the
        objects by the hash of their uid (or namespace): each watches, caches and
        reconciles only its share (``shardSelector``, KEP-5866), holds a Lease
        ``<name>-<identity>`` in ``leases``' namespace, and takes over the share of a
        replica that leaves (at once) or dies (when its Lease expires). No object is
        reconciled by two replicas at once; see the Sharding page for the protocol. A
        graceful stop (``stop``, :func:`shutdown_signals`) lets running reconciles end,
        then releases the Lease. Relations (:meth:`owns`, :meth:`watches`) still watch
        everything; a request for an object outside this replica's share is not
        reconciled here.

        Args:
            identity: this replica's id, unique among the replicas (a DNS label).
            leases: the Leases API of the namespace for the member Leases.
            key: ``"uid"`` (objects spread one by one) or ``"namespace"`` (a namespace's
                objects stay together).
            lease_duration: seconds before a replica that stopped renewing is replaced.
            renew_deadline: seconds without a successful renewal after which a replica
                stops starting reconciles; a reconcile must end within
                ``lease_duration - renew_deadline`` after that.
            retry_period: seconds between renewals.
            vnodes: points per replica on the assignment ring (more: better balance,
                longer selectors).

        Raises:
            TypeError: the controller was built with :meth:`for_stream`, not from an Api.
            ValueError: a bad identity, name or durations.
        """
        if self._watched is None:
            raise TypeError(
                f"controller {self.name} was built from a stream; only Controller(api, config) "
                "can be sharded, as it must choose what to watch"
            )
        if self._sharding is not None:
            raise RuntimeError(f"controller {self.name} is sharded already")
        member = ShardMember(
            leases,
            self.name,
            identity,
            key=key,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            vnodes=vnodes,
        )
        api, config = self._watched
        source = ShardedSource(api, config, member, self._name)
        self._sharding = source
        self._store = self._stores[0] = source.reader
        self._triggers[0] = Trigger(
            source.updated, _own_ref, lambda _obj: _REASON_OBJECT_UPDATED, main=True, relation="own"
        )
        self._triggers.append(
            Trigger(source.acquired, _own_ref, lambda _obj: REASON_SHARD_ACQUIRED, relation="own")
        )
        self.metrics.track_shard(lambda: (len(source.reader), fraction(member.held)))
        return self

    @property
    def shards(self) -> ShardMember | None:
        """This replica's :class:`~rxkube.sharding.ShardMember`, once :meth:`sharded`."""
        return None if self._sharding is None else self._sharding.member

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
            source,
            _owner_refs,
            "owned object updated",
            None,
            (resource.kind, resource.group),
            owners=True,
        )

    def owns_shared_stream(self, stream: Observable[Any], reader: Store | None = None) -> Self:
        """Like :meth:`owns`, from a stream of owned objects (or watch events) you provide.

        Args:
            stream: e.g. ``shared.subscribe(events=True)`` of a ``store_shared()`` store,
                to hear about deletions too.
            reader: a store the reconcile reads these objects from: reconciles wait until
                it is ready.
        """
        return self._relate(stream, _owner_refs, "owned object updated", reader, owners=True)

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

    def reconcile_on(self, refs: Observable[ObjectRef]) -> Self:
        """Reconcile the object each :class:`~rxkube.ObjectRef` of ``refs`` names.

        For requests from outside Kubernetes (a webhook, a queue, a timer of your own).
        A ref names the object by name and namespace; kind and group may be left out.
        An item that is not an ObjectRef fails the run with a ``TypeError``.

        Example:
            >>> requests = Subject()                                               # doctest: +SKIP
            >>> controller.reconcile_on(requests)                                  # doctest: +SKIP
            >>> requests.on_next(ObjectRef("settings", "default"))                 # doctest: +SKIP
        """

        def as_refs(item: Any) -> list[ObjectRef]:
            if not isinstance(item, ObjectRef):
                raise TypeError(
                    f"controller {self.name}: reconcile_on() expects ObjectRef items, got"
                    f" {type(item).__name__}: {item!r:.100}"
                )
            return [item]

        self._triggers.append(Trigger(refs, as_refs, lambda ref: f"requested: {ref}", raw=True))
        return self

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
        *,
        owners: bool = False,
    ) -> Self:
        def reason(obj: Object) -> str:
            ref = ObjectRef.from_obj(obj)
            if kind is not None:
                ref = ObjectRef(ref.name, ref.namespace, *kind)
            return f"{what}: {ref}"

        relation: Relation = "owners" if owners else "mapped"
        self._triggers.append(Trigger(stream, refs, reason, relation=relation))
        if reader is not None:
            self._stores.append(reader)
        return self

    # -- running --------------------------------------------------------------------------

    def run(
        self,
        reconcile: Callable[[Object, _C], Action | Awaitable[Action]],
        error_policy: Callable[..., Action] | None,
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
                that raised (or timed out); a plain function, called where the reconcile ran
                (on the controller's thread for a timed-out plain function). Given a fourth
                parameter, it is also passed the attempt: how many times in a row the
                object has failed, this time included (reset by a success). ``None``:
                retry as client-go's default controller rate limiter does, after
                ``5 ms * 2**(attempt - 1)`` up to 1000 s, at most 10 retries a second
                overall (bursts of 100).
            context: passed to every call, e.g. clients and settings.
            stop: each emission asks to stop; the first gracefully, the second at once.
            leader: reconcile only while this elector leads; watches and stores stay warm
                on every replica, so a new leader starts at once. When leadership ends,
                coroutine reconciles are cancelled (``ReconcileInterrupted``, retried);
                plain ones must end within ``lease_duration - renew_deadline``. Its
                ``stop()`` releases the Lease only once the reconciles started under it
                have ended.
            loop: the asyncio loop for a coroutine ``reconcile`` (see the module docs).

        Returns:
            A cold Observable of :class:`Reconciled`, :class:`ReconcileFailed` and
            :class:`ObjectMissing`, emitted on the controller's thread. One subscription
            at a time.

        Raises:
            TypeError: ``reconcile`` is not callable, or ``error_policy`` neither callable
                nor ``None``.
        """
        # Here, not in every reconcile's failure: a wrong argument is a bug of the caller.
        check_callable(reconcile, "Controller.run()", "reconcile")
        check_callable(error_policy, "Controller.run()", "error_policy", or_none=True)
        is_async = inspect.iscoroutinefunction(reconcile)
        sharding = self._sharding
        if sharding is not None:
            reconcile = _guarded(reconcile, sharding.member, is_async=is_async)

        def subscribe(
            observer: abc.ObserverBase[ReconcileResult],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            with self._lock:
                already = self._running
                if not already:
                    self._running = True
                    self._last_error = None
            if already:
                observer.on_error(
                    RuntimeError(f"controller {self.name} is running already; run it once")
                )
                return Disposable()
            running_loop = loop
            if is_async and running_loop is None:
                with contextlib.suppress(RuntimeError):
                    running_loop = asyncio.get_running_loop()
            plan = RunPlan(
                self.name,
                self._config,
                self.metrics,
                self._store,
                self._stores,
                self._triggers,
                self._reconcile_all,
                self._kind,
                self._namespaced,
                self._stopped,
            )
            run = Run(
                plan,
                reconcile,
                error_policy,
                context,
                observer,
                is_async=is_async,
                loop=running_loop,
            )
            with self._lock:
                self._run = run
            run.start(stop, leader)
            return Disposable(run.dispose)

        results: Observable[ReconcileResult] = reactivex.create(subscribe)
        return results if sharding is None else running(sharding, results)

    def _stopped(self, error: Exception | None) -> None:
        with self._lock:
            self._run = None
            self._last_error = error
            self._running = False

    def __repr__(self) -> str:
        return f"<Controller {self.name}: {len(self._triggers)} triggers>"


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
