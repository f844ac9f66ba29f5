"""The logic of each operator, written once and driven by both faces.

A *step* is a small callable fed one item at a time that returns the items to
emit for it (none, one or several). ``rxkube.operators`` drives steps from
``on_next``; ``rxkube.aio`` drives the same steps from ``async for``. Steps that
keep state (``PredicateFilter``) are created anew for every subscription or
iteration, and take time from a clock they are given, so tests can use virtual time.

A step that needs more than the items (``reflect``, ``reflect_shared``) comes as a
``Bound``: the step with what its subscription does when the source completes and when
it is disposed, and which items the async face steps on a worker thread, so that an O(n)
relist swap or a wait for a full shared buffer never blocks an event loop.

``Retrier`` is the decision half of ``backoff()``: given an error and the time,
how long to wait before resubscribing, or whether to give up. Each face supplies
the waiting (a scheduler timer, ``asyncio.sleep``). It logs each retry on the
``rxkube.backoff`` logger, which ``quiet_backoff_log()`` silences for callers that
report retries themselves (the command line and its demo).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from ._backoff_policy import MAX_DELAY, BackoffPolicy
from ._cache import Run, Store, Writer
from ._callables import check_callable
from ._equality import same
from .dispatcher import SharedStore
from .errors import RxKubeError
from .events import Apply, Delete, Event, Init, InitApply, InitDone, Object, ObjectFn
from .predicates import Predicate

_A = TypeVar("_A")
_B = TypeVar("_B")

Step: TypeAlias = Callable[[_A], Sequence[_B]]
"""Item in, items out."""

Clock: TypeAlias = Callable[[], float]
"""Seconds on some monotonic scale."""

log = logging.getLogger("rxkube.backoff")


@contextlib.contextmanager
def quiet_backoff_log() -> Iterator[None]:
    """Silence the WARNING ``backoff()`` logs per retry, for a caller that reports retries."""
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


_NOTHING: tuple[()] = ()


@dataclass(frozen=True, slots=True)
class Bound(Generic[_A, _B]):
    """A step as one subscription (or iteration) runs it.

    Attributes:
        step: item in, items out; what it raises goes to ``on_error``.
        completed: runs when the source completes, before the completion is passed on.
        disposed: runs when the subscription is disposed or the iteration closed.
        offload: which items the async face steps on a worker thread.
        started: runs when the subscription (or iteration) starts, before the source is
            subscribed; what it raises refuses the subscription.
        failed: passes an error (the source's, or the step's) on: called as
            ``failed(error, forward)`` instead of ``forward(error)``.
        feeds: the writer's run the subscription is: the source is subscribed inside
            its ``upstream()``, so that a retrying operator there tells the store.
    """

    step: Step[_A, _B]
    completed: Callable[[], None] | None = None
    disposed: Callable[[], None] | None = None
    offload: Callable[[_A], bool] | None = None
    started: Callable[[], None] | None = None
    failed: Callable[[Exception, Callable[[Exception], None]], None] | None = None
    feeds: Run | None = None


def not_an_event(item: object, operator: str) -> TypeError:
    """The error for an item, reaching an operator of watch events, that is not one.

    The usual cause is order: an operator of events piped after one that emits objects
    (``applied_objects()``), or applied to a stream that is not a watcher's.
    """
    return TypeError(
        f"{operator} takes watch events (Init, InitApply, InitDone, Apply, Delete) as a"
        f" watcher emits them, got {type(item).__name__} {item!r:.100}: is it piped after"
        " applied_objects() or touched_objects(), which emit objects?"
    )


def checked_writer(writer: object, operator: str) -> Writer:
    """``writer`` if it is a store's ``Writer``.

    Raises:
        TypeError: it is not; the message says where a writer comes from.
    """
    if isinstance(writer, Writer):
        return writer
    mistake = "its Store (the reader)" if isinstance(writer, Store) else type(writer).__name__
    raise TypeError(
        f"{operator} needs the Writer of a store (reader, writer = store()), not {mistake}"
    )


def reflect(writer: Writer) -> Bound[Event, Event]:
    """Apply each event to the writer's store, then pass it on.

    The subscription is one run of the writer (``Writer.new_run``): refused while another
    runs, and its end is what the store's ``writer_status()`` reports. A relist's
    ``InitDone`` rebuilds the indexes over the whole list: O(n), so the async face swaps
    it in on a worker thread.

    Raises:
        TypeError: ``writer`` is not a ``Writer``.
    """
    writer = checked_writer(writer, "reflect()")
    # The writer's own step, not its public apply(): one call less on every event.
    return _feeding(writer, writer._apply, None, None, _is_relist_end)


def shared_store_of(writer: Writer) -> SharedStore:
    """The shared store ``writer`` fills, for ``reflect_shared``.

    Raises:
        TypeError: ``writer`` is not a ``Writer``, or its store is not shared.
    """
    reader = checked_writer(writer, "reflect_shared()").store
    if not isinstance(reader, SharedStore):
        raise TypeError("reflect_shared() needs a writer from store_shared(); use reflect()")
    return reader


def reflect_shared(reader: SharedStore, writer: Writer) -> Bound[Event, Event]:
    """Apply each event to a shared store and dispatch it, then pass it on.

    Applying may wait for room in a subscriber's buffer, so the async face steps every
    event on a worker thread; disposing ends such a wait. When the source ends, what a
    burst staged is queued before the run ends, whose end the subscribers then learn.
    """
    feed = reader.feed(writer)
    return _feeding(writer, feed.apply, feed.flush, feed.abandon, _always)


def _feeding(
    writer: Writer,
    apply: Callable[[Event], None],
    ended: Callable[[], None] | None,
    disposed: Callable[[], None] | None,
    offload: Callable[[Event], bool],
) -> Bound[Event, Event]:
    """A step applying each event to ``writer``, as one run of it; ``ended`` runs when the
    source completes or fails, before the run ends."""
    run = writer.new_run()

    def step(event: Event) -> Sequence[Event]:
        if run.ended:  # a source still emitting as it is disposed: not ours any more
            return _NOTHING
        apply(event)
        return (event,)

    def on_completed() -> None:
        if ended is not None:
            ended()
        run.completed()

    def on_failed(error: Exception, forward: Callable[[Exception], None]) -> None:
        if ended is not None:
            ended()
        run.failed(error, forward)

    def on_disposed() -> None:
        if disposed is not None:
            disposed()
        run.disposed()

    return Bound(step, on_completed, on_disposed, offload, run.start, on_failed, run)


def _is_relist_end(event: Event) -> bool:
    return isinstance(event, InitDone)


def _always(_event: Event) -> bool:
    return True


def applied_objects() -> Step[Event, Object]:
    """The object of every ``InitApply`` and ``Apply``."""

    def step(event: Event) -> Sequence[Object]:
        if isinstance(event, (Apply, InitApply)):
            return (event.obj,)
        if isinstance(event, (Init, InitDone, Delete)):
            return _NOTHING
        raise not_an_event(event, "applied_objects()")

    return step


def touched_objects() -> Step[Event, Object]:
    """The object of every ``InitApply``, ``Apply`` and ``Delete``."""

    def step(event: Event) -> Sequence[Object]:
        if isinstance(event, (Apply, InitApply, Delete)):
            return (event.obj,)
        if isinstance(event, (Init, InitDone)):
            return _NOTHING
        raise not_an_event(event, "touched_objects()")

    return step


_EVENTS = (Init, InitApply, InitDone, Apply, Delete)


def modify(fn: ObjectFn, operator: str = "modify()") -> Step[Event, Event]:
    """Every event, with ``fn`` applied to its object.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    check_callable(fn, operator, "fn")

    def step(event: Event) -> Sequence[Event]:
        if not isinstance(event, _EVENTS):
            raise not_an_event(event, operator)
        return (event.modify(fn),)

    return step


def partial_metadata(obj: Object) -> Object:
    """Return only ``apiVersion``, ``kind`` and ``metadata`` of ``obj`` (shared, not copied)."""
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": obj.get("metadata", {}),
    }


def metadata_only() -> Step[Event, Event]:
    """Every event, its object reduced to apiVersion, kind and metadata."""
    return modify(partial_metadata, "metadata_only()")


_Key: TypeAlias = tuple[object, object, object]


class PredicateFilter:
    """Pass an applied object only when its predicate value changed; always pass the rest.

    Values are remembered per name + namespace + uid, so an object deleted and
    created again passes. An entry not seen for ``ttl`` seconds is forgotten (the
    object then passes once more), which bounds the memory to the objects seen in
    the last ``ttl`` seconds. An object whose predicate gives ``None`` (no such
    property) passes and is forgotten, so the property's return passes whatever its
    value. ``Delete`` always passes and forgets its object; ``Init`` and ``InitDone`` pass.
    """

    def __init__(self, predicate: Predicate, ttl: float, clock: Clock) -> None:
        check_callable(predicate, "predicate_filter()", "predicate")
        if not (isinstance(ttl, int | float) and ttl > 0):  # NaN too
            raise ValueError(f"predicate_filter: ttl must be positive, not {ttl!r}")
        self._predicate = predicate
        self._ttl = ttl
        self._clock = clock
        # key -> (predicate value, last seen); oldest-seen first. The value itself, not
        # its hash as kube-rs keeps: hash(-1) == hash(-2), and a change between values
        # of equal hashes would be dropped.
        self._seen: OrderedDict[_Key, tuple[object, float]] = OrderedDict()

    def __call__(self, event: Event) -> Sequence[Event]:
        """Return ``(event,)`` if it passes, ``()`` if it is filtered out."""
        if not isinstance(event, (Apply, InitApply, Delete)):
            if isinstance(event, (Init, InitDone)):
                return (event,)
            raise not_an_event(event, "predicate_filter()")
        now = self._clock()
        seen = self._seen
        expired = now - self._ttl
        while seen:
            oldest = next(iter(seen.values()))
            if oldest[1] > expired:
                break
            seen.popitem(last=False)
        key = _key(event.obj)
        if isinstance(event, Delete):
            seen.pop(key, None)
            return (event,)
        value = self._predicate(event.obj)
        if value is None:
            # Gone from the object: whatever value comes next is a change, even the old one.
            seen.pop(key, None)
            return (event,)
        previous = seen.pop(key, None)
        seen[key] = (value, now)
        if previous is not None and self._same(previous[0], value):
            return _NOTHING
        return (event,)

    def _same(self, previous: object, value: object) -> bool:
        try:
            return same(previous, value)
        except Exception as exc:  # e.g. arrays, whose == has no single truth value
            raise TypeError(
                f"predicate_filter(): the values of {self._predicate!r} cannot be compared"
                f" with ==: {type(previous).__name__} and {type(value).__name__}; return"
                " a number, a string, or a tuple or frozenset of them"
            ) from exc

    def __len__(self) -> int:
        """The number of objects remembered."""
        return len(self._seen)


def _key(obj: Object) -> _Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace"), meta.get("name"), meta.get("uid"))


def is_transient(error: BaseException) -> bool:
    """Whether ``backoff()`` retries after ``error``: only rxkube errors marked transient."""
    return isinstance(error, RxKubeError) and error.transient


class Retrier:
    """Decide, for each error of a stream, whether and after how long to resubscribe.

    Args:
        policy: the delays; reset when created and when a resubscribed stream ran
            ``reset_after`` seconds without an error.
        reset_after: seconds without an error after which the policy resets (``None``: never).
        on_retry: called with the error and the delay before each retry.
    """

    def __init__(
        self,
        policy: BackoffPolicy,
        reset_after: float | None,
        on_retry: Callable[[BaseException, float], object] | None,
    ) -> None:
        policy.reset()
        self._policy = policy
        self._reset_after = reset_after
        self._on_retry = on_retry
        self._started: float | None = None

    def started(self, now: float) -> None:
        """Record that the stream was (re)subscribed at ``now``."""
        self._started = now

    def delay(self, error: BaseException, now: float) -> float | None:
        """Return the seconds to wait before resubscribing after ``error``, or ``None`` to give up.

        Honours ``retry_after`` of the error (the server's ``Retry-After``) up to the
        policy's ``max_delay`` (``MAX_DELAY`` if it has none): the delay is never shorter.
        Logs the retry at WARNING and calls ``on_retry``; an exception from ``on_retry``
        propagates, and a policy delay that is not a finite number of seconds raises
        ``ValueError``.
        """
        if not is_transient(error):
            return None
        if (
            self._reset_after is not None
            and self._started is not None
            and now - self._started >= self._reset_after
        ):
            self._policy.reset()
        delay = self._policy.next_delay()
        # The logs take the error's text, not the error: a handler that keeps records (a
        # MemoryHandler, pytest's) would keep its traceback, whose frames hold the failed
        # watch run, its client and its store, long after they were disposed.
        if delay is None:
            log.warning("giving up after %s: the backoff policy allows no more retries", str(error))
            return None
        if not (isinstance(delay, int | float) and math.isfinite(delay) and delay >= 0):
            raise ValueError(
                f"the backoff policy {self._policy!r} returned {delay!r}: a delay must be a"
                " finite number of seconds, at least 0"
            )
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None and retry_after > delay:
            # The server's wish lengthens the wait up to the policy's own maximum: a
            # Retry-After of a day must not stop the stream for a day.
            cap = getattr(self._policy, "max_delay", MAX_DELAY)
            delay = max(delay, min(float(retry_after), float(cap)))
        log.warning("retrying in %.2f s after %s: %s", delay, type(error).__name__, str(error))
        if self._on_retry is not None:
            self._on_retry(error, delay)
        return delay
