"""ReactiveX operators for watch streams: kube-rs ``WatchStreamExt`` as pipeable functions.

Each function returns an operator (``Callable[[Observable[A]], Observable[B]]``) for
``Observable.pipe``::

    watcher(api).pipe(reflect(writer), default_backoff(), applied_objects())

This module is the index of every pipeable operator, as ``WatchStreamExt`` is in
kube-rs: the caches' ``reflect``/``reflect_shared``, the event adapters and ``backoff``.
The logic of each event adapter lives in ``rxkube._steps`` and is shared with the
async-iterator operators of ``rxkube.aio``, so both behave the same. Exceptions
raised by user functions (``modify``'s ``fn``, a predicate) go to ``on_error``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from reactivex import Observable, abc
from reactivex.disposable import (
    CompositeDisposable,
    Disposable,
    SerialDisposable,
    SingleAssignmentDisposable,
)
from reactivex.scheduler import TimeoutScheduler

from . import _steps
from ._backoff_policy import RESET_AFTER, BackoffPolicy, ExponentialBackoff
from ._cache import Writer, downstream_runs, failed_run, feeding, held_objects
from ._callables import check_callable
from ._delivery import End, ScheduledDrain, fail_consumer
from ._watching import for_store
from .events import Event, Object, ObjectFn
from .predicates import Predicate

__all__ = [
    "applied_objects",
    "backoff",
    "default_backoff",
    "metadata_only",
    "modify",
    "observe_on",
    "predicate_filter",
    "reflect",
    "reflect_shared",
    "reflector",
    "touched_objects",
]

log = logging.getLogger(__name__)

OBSERVE_ON_CAPACITY = 1024
"""Items ``observe_on()`` queues by default before its producer waits."""

_A = TypeVar("_A")
_B = TypeVar("_B")
_T = TypeVar("_T")

OnRetry = Callable[[BaseException, float], object]
"""``on_retry(error, delay)``: called before each retry."""


def applied_objects() -> Callable[[Observable[Event]], Observable[Object]]:
    """Emit the object of every ``InitApply`` and ``Apply`` event; drop the other events.

    Returns:
        An operator from events to objects.

    Example:
        >>> import reactivex
        >>> from rxkube.events import Apply, Delete, Init, InitApply, InitDone
        >>> events = [Init(), InitApply({"n": 1}), InitDone(), Apply({"n": 2}), Delete({"n": 1})]
        >>> _ = reactivex.from_iterable(events).pipe(applied_objects()).subscribe(print)
        {'n': 1}
        {'n': 2}
    """
    return _step_operator("applied_objects()", _steps.applied_objects)


def touched_objects() -> Callable[[Observable[Event]], Observable[Object]]:
    """Emit the object of every ``InitApply``, ``Apply`` and ``Delete`` event.

    Returns:
        An operator from events to objects.

    Example:
        >>> import reactivex
        >>> from rxkube.events import Apply, Delete
        >>> _ = reactivex.of(Apply({"n": 1}), Delete({"n": 1})).pipe(touched_objects()).subscribe(print)
        {'n': 1}
        {'n': 1}
    """
    return _step_operator("touched_objects()", _steps.touched_objects)


def modify(fn: ObjectFn) -> Callable[[Observable[Event]], Observable[Event]]:
    """Apply ``fn`` to the object of every event, before it reaches a store.

    The main memory lever: drop what you never read (``managedFields``, big
    annotations, status) before the store keeps it. ``fn`` may change the object in
    place and return ``None``, or return a new object.

    Args:
        fn: the transformation.

    Returns:
        An operator from events to events.

    Example:
        >>> import reactivex
        >>> from rxkube.events import Apply
        >>> def drop_managed_fields(obj):
        ...     obj["metadata"].pop("managedFields", None)
        >>> pod = {"metadata": {"name": "a", "managedFields": [{}]}}
        >>> _ = reactivex.of(Apply(pod)).pipe(modify(drop_managed_fields)).subscribe(print)
        Apply(obj={'metadata': {'name': 'a'}})
    """
    step = _steps.modify(fn)  # stateless: one for every subscription
    return _step_operator("modify()", lambda: step)


def metadata_only() -> Callable[[Observable[Event]], Observable[Event]]:
    """Reduce the object of every event to its ``apiVersion``, ``kind`` and ``metadata``.

    Client-side ``PartialObjectMetadata`` for streams that cannot use
    ``metadata_watcher()``; unlike the server's, the object keeps its own apiVersion
    and kind. The metadata dict is shared with the original object, not copied.

    Returns:
        An operator from events to events.

    Example:
        >>> import reactivex
        >>> from rxkube.events import Apply
        >>> pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {}}
        >>> _ = reactivex.of(Apply(pod)).pipe(metadata_only()).subscribe(print)
        Apply(obj={'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'a'}})
    """
    return _step_operator("metadata_only()", _steps.metadata_only)


def predicate_filter(
    predicate: Predicate,
    ttl: float = 3600.0,
    *,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[Event]], Observable[Event]]:
    """Drop ``InitApply``/``Apply`` events whose predicate value has not changed.

    Values are remembered per name + namespace + uid, so a recreated object passes,
    and compared with ``==`` with JSON's types told apart, so a field going from ``1``
    to ``true`` is a change (values whose ``==`` fails are a ``TypeError``).
    An object not seen for ``ttl`` seconds is forgotten and passes again, which
    bounds memory. Unlike kube-rs, ``Delete`` events always pass (and make the
    filter forget the object), as do ``Init`` and ``InitDone``; so does an object
    whose predicate gives ``None`` (no such property), and it is forgotten too: the
    property's return passes, even with the value it had. Put it *after*
    ``reflect()``: a store fed a filtered relist would lose the filtered objects.

    Args:
        predicate: what must change, from ``rxkube.predicates`` (combine with ``|``).
        ttl: seconds after which an object not seen is forgotten.
        scheduler: the clock for ``ttl`` (``time.monotonic`` when not given).

    Returns:
        An operator from events to events; each subscription has its own memory.

    Example:
        >>> import reactivex
        >>> from rxkube.events import Apply
        >>> from rxkube.predicates import generation
        >>> def pod(gen, rv):
        ...     return {"metadata": {"name": "a", "generation": gen, "resourceVersion": rv}}
        >>> events = [Apply(pod(1, "10")), Apply(pod(1, "11")), Apply(pod(2, "12"))]
        >>> src = reactivex.from_iterable(events).pipe(predicate_filter(generation))
        >>> _ = src.subscribe(lambda e: print(e.obj["metadata"]["resourceVersion"]))
        10
        12
    """
    clock = time.monotonic if scheduler is None else _clock_of(scheduler)
    # Fail on a bad ttl here, not at subscription.
    _steps.PredicateFilter(predicate, ttl, clock)
    return _step_operator(
        "predicate_filter()", lambda: _steps.PredicateFilter(predicate, ttl, clock)
    )


def backoff(
    policy: BackoffPolicy,
    *,
    on_retry: OnRetry | None = None,
    reset_after: float | None = RESET_AFTER,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[_T]], Observable[_T]]:
    """Resubscribe to the source after a transient error, waiting as ``policy`` says.

    Only errors whose ``transient`` is true are retried (network errors, stalls,
    garbled lines, 5xx, 429, 410, 401/403); any other error, or the policy giving up
    (``next_delay()`` returning ``None``), goes to ``on_error``. The delay is never
    shorter than the server's ``Retry-After``. Each retry is logged at WARNING on the
    ``rxkube.backoff`` logger and passed to ``on_retry``. The policy is reset when a
    subscription starts and once a resubscribed source has run ``reset_after``
    seconds without an error.

    Args:
        policy: the delays (any object with ``next_delay()`` and ``reset()``).
        on_retry: called as ``on_retry(error, delay)`` before each wait; what it
            raises goes to ``on_error``.
        reset_after: seconds without errors after which the policy resets (``None``: never).
        scheduler: runs the timers and gives the time; by default the scheduler
            given to ``subscribe``, else ``TimeoutScheduler``.

    Returns:
        An operator that mirrors the source, resubscribing after transient errors.
        Subscriptions share ``policy``: use one per subscription, or ``default_backoff()``.

    Example:
        >>> from rxkube import ExponentialBackoff
        >>> retrying = backoff(ExponentialBackoff(initial=1.0, max_delay=60.0))
        >>> watcher(api).pipe(retrying)  # doctest: +SKIP
    """
    if not (
        callable(getattr(policy, "next_delay", None)) and callable(getattr(policy, "reset", None))
    ):
        raise TypeError(
            "backoff() needs a policy with next_delay() and reset(), e.g. ExponentialBackoff(),"
            f" not {type(policy).__name__} {policy!r:.60}"
        )
    return _retrying("backoff()", lambda: policy, on_retry, reset_after, scheduler)


def default_backoff(
    *,
    on_retry: OnRetry | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[_T]], Observable[_T]]:
    """``backoff()`` with client-go's and kube-rs's policy: 0.8 s, doubling up to 30 s, jittered.

    The policy resets after 120 s without errors; every subscription gets its own.

    Args:
        on_retry: called as ``on_retry(error, delay)`` before each wait.
        scheduler: runs the timers (see ``backoff()``).

    Returns:
        An operator that mirrors the source, resubscribing after transient errors.

    Example:
        >>> watcher(api).pipe(reflect(writer), default_backoff(), applied_objects())  # doctest: +SKIP
    """
    return _retrying("default_backoff()", ExponentialBackoff, on_retry, RESET_AFTER, scheduler)


def reflect(writer: Writer) -> Callable[[Observable[Event]], Observable[Event]]:
    """Operator: apply each event to ``writer``'s store, then pass the event on unchanged.

    Errors pass through untouched, and the store keeps serving its last good state while
    the source is retried (a resubscribed watcher relists, and the swap at ``InitDone``
    brings the store up to date). ``backoff()`` may come after it or before it (kube-rs's
    order): either way the store's ``writer_status()`` says ``"retrying"`` while the
    source is down. The events are applied on the thread that emits them, i.e. the
    watch's own thread. Piped straight after a ``watcher()`` (into a store that is not
    compact), it has the watcher decode a line without the parts (the spec, the field
    sets of ``managedFields``) that are byte for byte those of the object the store
    holds: the new version holds the store's dicts, so objects after ``reflect()`` must
    not be mutated.

    Args:
        writer: the writer from :func:`rxkube.store`.

    Returns:
        A function from an Observable of events to the same Observable, reflected.

    Example:
        >>> from reactivex import of
        >>> from rxkube import store
        >>> from rxkube.events import Init, InitApply, InitDone
        >>> reader, writer = store()
        >>> events = of(Init(), InitApply({"metadata": {"name": "a"}}), InitDone())
        >>> _ = events.pipe(reflect(writer)).subscribe()
        >>> reader.is_ready(), len(reader)
        (True, 1)
    """
    _steps.checked_writer(writer, "reflect()")  # here, not at subscription
    return _storing(writer, _step_operator("reflect()", lambda: _steps.reflect(writer)))


def reflector(writer: Writer, source: Observable[Event]) -> Observable[Event]:
    """Function form of :func:`reflect`, as in kube-rs: ``reflector(writer, watcher(...))``.

    Example:
        >>> from reactivex import of
        >>> from rxkube import store
        >>> from rxkube.events import Apply
        >>> reader, writer = store()
        >>> _ = reflector(writer, of(Apply({"metadata": {"name": "a"}}))).subscribe()
        >>> len(reader)
        1
    """
    return source.pipe(reflect(writer))


def reflect_shared(writer: Writer) -> Callable[[Observable[Event]], Observable[Event]]:
    """Operator: apply each event to a shared store, dispatch it, then pass it on.

    An ``Apply`` dispatches its object, ``InitDone`` every object in the store (and, to
    ``events=True`` subscribers, a ``Delete`` per object the relist removed); a
    ``Delete`` reaches ``events=True`` subscribers only. The writer waits while a
    subscriber's buffer is full. Errors pass through and subscribers stay subscribed;
    completion completes the current subscribers.

    Args:
        writer: the writer from :func:`rxkube.store_shared`.

    Raises:
        TypeError: the writer's store is not shared (use :func:`reflect`).

    Example:
        >>> from reactivex import of
        >>> from rxkube import store_shared
        >>> from rxkube.events import Apply
        >>> reader, writer = store_shared(buffer_size=8)
        >>> _ = of(Apply({"metadata": {"name": "a"}})).pipe(reflect_shared(writer)).subscribe()
        >>> len(reader)
        1
    """
    reader = _steps.shared_store_of(writer)
    return _storing(
        writer, _step_operator("reflect_shared()", lambda: _steps.reflect_shared(reader, writer))
    )


def _storing(
    writer: Writer, operator: Callable[[Observable[Event]], Observable[Event]]
) -> Callable[[Observable[Event]], Observable[Event]]:
    """``operator``, caching into ``writer``'s store, subscribed to a ``watcher()`` as the
    one consumer of its objects: the watcher then decodes each line reusing the parts of
    the object the store holds (see ``rxkube._unchanged_parts``)."""
    held_of = held_objects(writer)
    if held_of is None:
        return operator
    return lambda source: operator(for_store(source, held_of))


def observe_on(
    scheduler: abc.SchedulerBase, *, capacity: int = OBSERVE_ON_CAPACITY
) -> Callable[[Observable[_T]], Observable[_T]]:
    """Deliver the source's items on ``scheduler``: in order, in batches, with backpressure.

    The way to move a watcher's events off its thread (``subscribe(scheduler=...)`` does
    not: it only sets the subscription's default scheduler). Unlike
    ``reactivex.operators.observe_on``, the queue is bounded: when ``capacity`` items wait,
    the producer (a watch thread) waits too, so backpressure still reaches the server.
    Deliveries never overlap, even on a thread pool, and keep their order. If the observer's
    ``on_next`` raises, the source is disposed and the observer gets
    ``on_error(ConsumerError)`` chained to the exception.

    Args:
        scheduler: where the observer is called (a thread pool, an event loop, ...).
        capacity: items queued before the producer waits.

    Returns:
        An operator that mirrors the source on ``scheduler``.

    Raises:
        ValueError: ``capacity`` is less than 1.

    Example:
        >>> import threading, reactivex
        >>> from reactivex.scheduler import ThreadPoolScheduler
        >>> got, done = [], threading.Event()
        >>> pool = ThreadPoolScheduler(8)
        >>> _ = reactivex.range(100).pipe(observe_on(pool)).subscribe(
        ...     got.append, on_completed=done.set
        ... )
        >>> done.wait(10), got == list(range(100))
        (True, True)
        >>> pool.executor.shutdown()
    """
    if capacity < 1:
        raise ValueError(f"observe_on: capacity must be at least 1, not {capacity!r}")
    name = f"the subscriber of observe_on({type(scheduler).__name__})"

    def operator(source: Observable[_T]) -> Observable[_T]:
        _observable(source, "observe_on()")

        def subscribe(
            observer: abc.ObserverBase[_T], subscribe_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            upstream = SingleAssignmentDisposable()

            def deliver(batch: list[_T | End]) -> None:
                for item in batch:
                    if isinstance(item, End):
                        drain.handover.close()
                        item.send(observer, name)
                        return
                    observer.on_next(item)

            def failed(error: Exception) -> None:
                upstream.dispose()
                fail_consumer(observer, name, error)

            drain: ScheduledDrain[_T | End] = ScheduledDrain(scheduler, capacity, deliver, failed)
            handover = drain.handover

            # put() answers False once disposed: there is nothing more to do then.
            def on_next(item: _T) -> None:
                handover.put(item)

            def on_error(error: Exception) -> None:
                handover.put(End(error))

            def on_completed() -> None:
                handover.put(End(None))

            upstream.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=subscribe_scheduler
            )
            # The hand-over first: a producer waiting for room is released before the
            # source is disposed.
            return CompositeDisposable(Disposable(handover.close), upstream)

        return Observable(subscribe)

    return operator


def _clock_of(scheduler: abc.SchedulerBase) -> _steps.Clock:
    def clock() -> float:
        return scheduler.to_seconds(scheduler.now)

    return clock


def _observable(source: object, operator: str) -> None:
    """Raise ``TypeError`` unless ``source`` is an Observable, as an operator needs."""
    if not isinstance(source, Observable):
        raise TypeError(
            f"{operator} is an operator for an Observable, e.g. watcher(api).pipe({operator}),"
            f" not for {type(source).__name__} {source!r:.60}"
        )


def _step_operator(
    name: str,
    make_step: Callable[[], _steps.Step[_A, _B] | _steps.Bound[_A, _B]],
) -> Callable[[Observable[_A]], Observable[_B]]:
    """The Rx face of a step: a fresh step per subscription, driven from ``on_next``.

    A ``Bound`` step also runs its ``completed`` before the completion is passed on, and
    its ``disposed`` when the subscription is disposed (before the source is).
    """

    def operator(source: Observable[_A]) -> Observable[_B]:
        _observable(source, name)

        def subscribe(
            observer: abc.ObserverBase[_B], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            made = make_step()
            bound = made if isinstance(made, _steps.Bound) else _steps.Bound(made)
            step, completed, failed = bound.step, bound.completed, bound.failed
            if bound.started is not None:
                bound.started()  # what it raises, RxPY sends to on_error
            subscription = SingleAssignmentDisposable()
            forward = observer.on_next  # once: it is called for every item

            def on_error(error: Exception) -> None:
                if failed is None:
                    observer.on_error(error)
                else:
                    failed(error, observer.on_error)

            def on_next(item: _A) -> None:
                try:
                    outputs = step(item)
                except Exception as exc:
                    subscription.dispose()
                    on_error(exc)
                    return
                for output in outputs:
                    forward(output)

            def on_completed() -> None:
                if completed is not None:
                    completed()
                observer.on_completed()

            with contextlib.nullcontext() if bound.feeds is None else bound.feeds.upstream():
                subscription.disposable = source.subscribe(
                    on_next, on_error, on_completed, scheduler=scheduler
                )
            if bound.disposed is None:
                return subscription
            return CompositeDisposable(Disposable(bound.disposed), subscription)

        return Observable(subscribe)

    return operator


def _retrying(
    name: str,
    make_policy: Callable[[], BackoffPolicy],
    on_retry: OnRetry | None,
    reset_after: float | None,
    scheduler: abc.SchedulerBase | None,
) -> Callable[[Observable[_T]], Observable[_T]]:
    """``retry_when`` with a policy: the Rx face of ``_steps.Retrier``."""
    if on_retry is not None:
        check_callable(on_retry, name, "on_retry")

    def operator(source: Observable[_T]) -> Observable[_T]:
        _observable(source, name)

        def subscribe(
            observer: abc.ObserverBase[_T], subscribe_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            timers = scheduler or subscribe_scheduler or TimeoutScheduler.singleton()
            now = _clock_of(timers)
            retrier = _steps.Retrier(make_policy(), reset_after, on_retry)
            # The stores fed downstream (backoff() before reflect()): their runs go on
            # while the source is lost, and they are told so, and when it is back.
            runs = downstream_runs()
            # Two slots: a source that fails while being subscribed schedules its
            # retry timer before its own subscription is stored; keeping the timer
            # in a slot of its own means storing that subscription cannot cancel it.
            subscription = SerialDisposable()
            timer = SerialDisposable()

            def attach(_scheduler: abc.SchedulerBase | None = None, _state: object = None) -> None:
                inner = SingleAssignmentDisposable()
                subscription.disposable = inner
                retrier.started(now())
                with feeding(runs):
                    inner.disposable = source.subscribe(
                        observer.on_next,
                        on_error,
                        observer.on_completed,
                        scheduler=subscribe_scheduler,
                    )

            def resume(scheduler: abc.SchedulerBase | None = None, state: object = None) -> None:
                for run in runs:
                    run.source_resumed(retrier)
                attach(scheduler, state)

            def on_error(error: Exception) -> None:
                try:
                    delay = retrier.delay(error, now())
                except Exception as exc:
                    observer.on_error(exc)
                    return
                if delay is None:
                    observer.on_error(error)
                    return
                at = time.time() + delay
                for downstream in runs:  # before the timer, which may resume at once
                    downstream.source_retrying(retrier, error, at)
                retry = timers.schedule_relative(delay, resume)
                run = failed_run(error)  # a store's pipeline failed: it shows "retrying"
                if run is None:
                    timer.disposable = retry
                    return
                run.retrying(at)
                timer.disposable = CompositeDisposable(retry, Disposable(run.retry_cancelled))

            def forget() -> None:  # disposed: nothing waits for this source any more
                for run in runs:
                    run.source_resumed(retrier)

            attach()
            return CompositeDisposable(subscription, timer, Disposable(forget))

        return Observable(subscribe)

    return operator
