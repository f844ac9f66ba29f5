"""The asyncio face: watchers as async iterables, the operators on async iterables, and bridges.

Why one file this long: it mirrors ``rxkube.operators`` and the watchers one for
one (a quarter of it docstrings), so each async operator sits beside the bridges it uses.

``watcher(api)`` gives the same events as ``rxkube.watcher(api)``, as an
async iterable::

    async for event in rxkube.aio.watcher(api):
        ...

The watch still runs on its own thread; events reach the event loop through a
bounded queue, and when the consumer is slow the queue fills and the watch thread
waits, so backpressure reaches the API server as it does in Rx.

Async iterables here are *sources* (``AsyncSource``): like Observables they are
cold, and every ``async for`` starts afresh (a new watch). That is what lets
``backoff()`` start its source again after an error. The operators are those of
``rxkube.operators`` with the same logic (``rxkube._steps``), and chain with
``AsyncSource.pipe``::

    source = rxkube.aio.watcher(api).pipe(
        rxkube.aio.reflect(writer), rxkube.aio.default_backoff(), rxkube.aio.applied_objects()
    )

Each operator also has an aiostream face, ``op.pipe(...)``, for pipelines built on
``rxkube.aio.stream(...)`` (aiostream is an optional extra: ``pip install
'rxkube[aiostream]'``)::

    xs = rxkube.aio.stream(rxkube.aio.watcher(api)) | rxkube.aio.reflect.pipe(writer)

For requests, ``AsyncApi`` (over an ``AsyncClient`` made from a ``Client``) has the
methods of ``Api`` as coroutines (and ``rxkube.finalizer_async`` is ``finalizer`` for
them), so a coroutine reconcile never blocks its loop::

    async with rxkube.aio.AsyncClient(client) as aclient:
        pods = rxkube.aio.AsyncApi(aclient, "pods", namespace="default")
        await pods.patch("web-0", {"metadata": {"labels": {"seen": "yes"}}})

Leaving an ``async for`` early (``break``), cancelling the consuming task or calling
``aclose()`` disposes the subscription at once, through any chain of this module's
operators: the watch's connection is closed and a ``reflect`` run ends, so its writer is
free for the next ``async for``. As with async generators, a cancelled ``__anext__``
ends the iterator. ``aclose()``, and
leaving ``async with iterate(...) as items``, also wait until what the subscription runs
on this loop (a controller's coroutine reconciles) has ended::

    async with rxkube.aio.iterate(controller.run(reconcile, None, ctx)) as results:
        async for result in results:
            break  # after the block, no reconcile of this controller runs any more
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from . import _closing, _steps
from ._async_api import AsyncApi, AsyncClient
from ._backoff_policy import RESET_AFTER, BackoffPolicy, ExponentialBackoff
from ._cache import RetryScope, downstream_runs, failed_run
from ._delivery import End, LoopDrain, fail_consumer
from ._watching import metadata_watcher as _rx_metadata_watcher
from ._watching import watcher as _rx_watcher
from .events import Event, Object, ObjectFn
from .predicates import Predicate

if TYPE_CHECKING:
    from aiostream.core import Stream

    from ._cache import Writer
    from .client import Api
    from .protocol import Config

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_MAXSIZE",
    "AsyncApi",
    "AsyncClient",
    "AsyncOperator",
    "AsyncSource",
    "ObservableIterator",
    "applied_objects",
    "backoff",
    "default_backoff",
    "defer",
    "from_async",
    "iterate",
    "metadata_only",
    "metadata_watcher",
    "modify",
    "predicate_filter",
    "reflect",
    "reflect_shared",
    "stream",
    "touched_objects",
    "watcher",
]

_T = TypeVar("_T")
_A = TypeVar("_A")
_B = TypeVar("_B")
_C = TypeVar("_C")
_D = TypeVar("_D")
_E = TypeVar("_E")
_F = TypeVar("_F")
_P = ParamSpec("_P")

log = logging.getLogger(__name__)

DEFAULT_MAXSIZE = 128
CLOSE_TIMEOUT = 5.0
"""How long ``ObservableIterator.aclose()`` waits for the subscription's work on the loop."""
"""Items a bridge queues before the producing thread waits for the consumer."""

_AIOSTREAM_MISSING = (
    "this needs aiostream, an optional extra of rxkube (aiostream is GPL-3.0-or-later): "
    "pip install 'rxkube[aiostream]'"
)


# --- Observable -> async iterator -------------------------------------------------


class ObservableIterator(AsyncIterator[_T]):
    """An async iterator over one subscription of an Observable, through a bounded hand-over.

    Made by ``iterate()``. The subscription starts at the first ``__anext__`` and is
    disposed when the Observable ends, on ``aclose()``, when ``__anext__`` is
    cancelled or fails, and when the iterator is garbage (``break``). Items cross to the
    loop through ``rxkube._delivery.LoopDrain``, a batch per wake-up of the loop.

    Also an async context manager: leaving ``async with iterate(xs) as items`` awaits
    ``aclose()``.
    """

    def __init__(self, observable: Observable[_T], maxsize: int) -> None:
        self._done = True
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, not {maxsize!r}")
        self._observable = observable
        self._maxsize = maxsize
        self._drain: LoopDrain[_T | End] | None = None
        self._batch: deque[_T | End] = deque()
        self._subscription: abc.DisposableBase | None = None
        self._settles: list[_closing.Settle] = []
        self._done = False

    def __aiter__(self) -> ObservableIterator[_T]:
        return self

    async def __anext__(self) -> _T:
        if self._done:
            raise StopAsyncIteration
        batch = self._batch
        if not batch:
            drain = self._drain or self._start()
            try:
                batch.extend(await drain.take())
            except BaseException:
                self._close()
                raise
            if not batch:  # closed
                self._close()
                raise StopAsyncIteration
        item = batch.popleft()
        if isinstance(item, End):
            self._close()
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Dispose the subscription, and wait for its work on this loop to end.

        Further ``__anext__`` calls end the iteration. What the subscription started on
        this loop (a controller's coroutine reconciles) is cancelled by the disposal;
        this waits up to ``CLOSE_TIMEOUT`` seconds for it to end, then logs a warning
        and returns: a coroutine that ignores its cancellation cannot hold it forever.
        """
        self._close()
        settles, self._settles = self._settles, []
        for settle in settles:
            try:
                await asyncio.wait_for(settle(), CLOSE_TIMEOUT)
            except TimeoutError:
                log.warning(
                    "iterate(): the subscription's work on this loop did not end within %s s",
                    CLOSE_TIMEOUT,
                )

    async def __aenter__(self) -> ObservableIterator[_T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _start(self) -> LoopDrain[_T | End]:
        drain: LoopDrain[_T | End] = LoopDrain(self._maxsize)
        self._drain = drain
        # The callbacks hold only the hand-over, never the iterator, so an iterator the
        # consumer drops is collected and disposes the subscription. put() answers False
        # once disposed: there is nothing more to do then.
        put = drain.handover.put

        def on_next(item: _T) -> None:
            put(item)

        def on_error(error: Exception) -> None:
            put(End(error))

        def on_completed() -> None:
            put(End(None))

        try:
            with _closing.collecting() as self._settles:
                self._subscription = self._observable.subscribe(on_next, on_error, on_completed)
        except BaseException:
            self._close()
            raise
        return drain

    def _close(self) -> None:
        self._done = True
        self._batch.clear()
        subscription, self._subscription = self._subscription, None
        if self._drain is not None:
            self._drain.close()  # first: a producer waiting for room is released
        if subscription is not None:
            subscription.dispose()

    def __del__(self) -> None:
        if not self._done:
            self._close()


def iterate(
    observable: Observable[_T], *, maxsize: int = DEFAULT_MAXSIZE
) -> ObservableIterator[_T]:
    """Iterate an Observable asynchronously, with backpressure on its producer.

    Items are queued, at most ``maxsize`` of them; when the queue is full the
    thread calling ``on_next`` (a watch's thread) waits until the consumer takes
    them. The consumer takes everything queued at each wake-up of the loop (one
    wake-up per batch, not per item), so at most ``maxsize`` items wait in the queue
    and as many more in the batch being iterated. An item produced on the event
    loop's own thread cannot wait for the loop, so it is queued even when the queue
    is full: keep producers that emit without end synchronously off the loop (e.g.
    ``subscribe_on(ThreadPoolScheduler())``). An error of the Observable is raised
    by ``__anext__`` after the items before it.

    Args:
        observable: the source; subscribed at the first ``__anext__``.
        maxsize: how many items may wait in the queue.

    Returns:
        A one-shot async iterator; see ``ObservableIterator`` for when it disposes.

    Example:
        >>> import asyncio, reactivex
        >>> async def main():
        ...     return [x async for x in iterate(reactivex.of(1, 2, 3))]
        >>> asyncio.run(main())
        [1, 2, 3]
    """
    return ObservableIterator(observable, maxsize)


# --- cold async sources and operators ---------------------------------------------


class AsyncSource(AsyncIterable[_T]):
    """A cold async iterable: every ``async for`` calls the factory and starts afresh.

    Operators of this module take and return sources, and ``backoff()`` relies on
    being able to start its source again.

    Args:
        factory: makes the async iterable (or iterator) of one iteration.
    """

    def __init__(self, factory: Callable[[], AsyncIterable[_T]]) -> None:
        self._factory = factory

    def __aiter__(self) -> AsyncIterator[_T]:
        return aiter(self._factory())

    @overload
    def pipe(self) -> AsyncSource[_T]: ...
    @overload
    def pipe(self, op1: Callable[[AsyncSource[_T]], AsyncSource[_A]], /) -> AsyncSource[_A]: ...
    @overload
    def pipe(
        self,
        op1: Callable[[AsyncSource[_T]], AsyncSource[_A]],
        op2: Callable[[AsyncSource[_A]], AsyncSource[_B]],
        /,
    ) -> AsyncSource[_B]: ...
    @overload
    def pipe(
        self,
        op1: Callable[[AsyncSource[_T]], AsyncSource[_A]],
        op2: Callable[[AsyncSource[_A]], AsyncSource[_B]],
        op3: Callable[[AsyncSource[_B]], AsyncSource[_C]],
        /,
    ) -> AsyncSource[_C]: ...
    @overload
    def pipe(
        self,
        op1: Callable[[AsyncSource[_T]], AsyncSource[_A]],
        op2: Callable[[AsyncSource[_A]], AsyncSource[_B]],
        op3: Callable[[AsyncSource[_B]], AsyncSource[_C]],
        op4: Callable[[AsyncSource[_C]], AsyncSource[_D]],
        /,
    ) -> AsyncSource[_D]: ...
    @overload
    def pipe(
        self,
        op1: Callable[[AsyncSource[_T]], AsyncSource[_A]],
        op2: Callable[[AsyncSource[_A]], AsyncSource[_B]],
        op3: Callable[[AsyncSource[_B]], AsyncSource[_C]],
        op4: Callable[[AsyncSource[_C]], AsyncSource[_D]],
        op5: Callable[[AsyncSource[_D]], AsyncSource[_E]],
        /,
    ) -> AsyncSource[_E]: ...
    @overload
    def pipe(
        self,
        op1: Callable[[AsyncSource[_T]], AsyncSource[_A]],
        op2: Callable[[AsyncSource[_A]], AsyncSource[_B]],
        op3: Callable[[AsyncSource[_B]], AsyncSource[_C]],
        op4: Callable[[AsyncSource[_C]], AsyncSource[_D]],
        op5: Callable[[AsyncSource[_D]], AsyncSource[_E]],
        op6: Callable[[AsyncSource[_E]], AsyncSource[_F]],
        /,
    ) -> AsyncSource[_F]: ...

    def pipe(self, *operators: Callable[[AsyncSource[Any]], AsyncSource[Any]]) -> AsyncSource[Any]:
        """Apply operators left to right, like ``Observable.pipe`` (typed for up to six).

        Example:
            >>> import asyncio
            >>> from rxkube.events import Apply, Init
            >>> async def events():
            ...     yield Init()
            ...     yield Apply({"n": 1})
            >>> async def main():
            ...     return [o async for o in defer(events).pipe(applied_objects())]
            >>> asyncio.run(main())
            [{'n': 1}]
        """
        source: AsyncSource[Any] = self
        for operator in operators:
            source = operator(source)
        return source


def defer(factory: Callable[[], AsyncIterable[_T]]) -> AsyncSource[_T]:
    """Make a source that calls ``factory`` for every iteration (e.g. an async generator function).

    Example:
        >>> import asyncio
        >>> async def numbers():
        ...     yield 1
        >>> source = defer(numbers)
        >>> async def main():
        ...     return [x async for x in source] + [x async for x in source]
        >>> asyncio.run(main())
        [1, 1]
    """
    return AsyncSource(factory)


class AsyncOperator(Generic[_A, _P, _B]):
    """An rxkube operator on async iterables, with an aiostream face.

    ``op(*args)`` returns a function from a source to a source, like an Rx
    operator; ``op.pipe(*args)`` returns aiostream's pipe function, for
    ``stream(...) | op.pipe(*args)`` (needs ``rxkube[aiostream]``); ``op.raw(source,
    *args)`` is the async iterator of a single iteration.

    Args:
        raw: makes the async iterator of one iteration from a source and the arguments.
    """

    def __init__(
        self, raw: Callable[Concatenate[AsyncIterable[_A], _P], AsyncIterator[_B]]
    ) -> None:
        self.raw = raw
        self.__name__ = raw.__name__
        self.__doc__ = raw.__doc__
        self._aiostream_operator: Any = None
        self._signature = inspect.signature(raw)

    def __call__(
        self, *args: _P.args, **kwargs: _P.kwargs
    ) -> Callable[[AsyncIterable[_A]], AsyncSource[_B]]:
        """Return the operator as a function from a source to a source.

        Raises:
            TypeError: the arguments do not fit the operator, e.g. a source passed
                along with them (``aio.modify(source, fn)``).
        """
        try:
            self._signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            name = f"rxkube.aio.{self.__name__}"
            raise TypeError(
                f"{name}() takes the operator's arguments, not its source, and returns a"
                f" function of a source: {name}(...)(source), or {name}.raw(source, ...)"
                f" ({exc})"
            ) from None
        raw = self.raw

        def apply(source: AsyncIterable[_A]) -> AsyncSource[_B]:
            raw(source, *args, **kwargs)  # fail on bad arguments now, not at iteration
            return AsyncSource(lambda: raw(source, *args, **kwargs))

        return apply

    def pipe(
        self, *args: _P.args, **kwargs: _P.kwargs
    ) -> Callable[[AsyncIterable[_A]], Stream[_B]]:
        """Return the operator as an aiostream pipe function: ``xs | op.pipe(*args)``."""
        if self._aiostream_operator is None:
            pipable_operator = _aiostream().core.pipable_operator
            this = self.raw

            @functools.wraps(this)
            def raw(source: AsyncIterable[_A], /, *args: Any, **kwargs: Any) -> AsyncIterator[_B]:
                return this(source, *args, **kwargs)

            self._aiostream_operator = pipable_operator(raw)
        pipe: Callable[[AsyncIterable[_A]], Stream[_B]] = self._aiostream_operator.pipe(
            *args, **kwargs
        )
        return pipe

    def __repr__(self) -> str:
        return f"rxkube.aio.{self.__name__}"


class _Iteration(AsyncIterator[_T]):
    """One iteration of an operator, over one iteration of its source: ended at once when left.

    Not an async generator: Python closes a dropped async generator only when the loop
    runs the task its finalizer hook schedules, so a ``break`` would leave a store's run
    holding its writer (the next ``async for`` of it refused with ``WriterBusy``), and
    the watch its thread and connection, until then. Dropped, cancelled or closed, this
    closes rxkube's own iterators below it (an ``ObservableIterator``'s subscription, a
    ``reflect`` run) synchronously, as ``ObservableIterator`` closes itself; an async
    generator below it (``defer(...)``) closes when ``aclose()`` or a cancellation
    awaits it, or, dropped, when Python finalizes it.
    """

    _closed = True  # until made: __del__ of a half-made iteration has nothing to do
    _iterator: AsyncIterator[Any] | None = None

    def __aiter__(self) -> _Iteration[_T]:
        return self

    async def aclose(self) -> None:
        """End the iteration at once, then wait for its source to close."""
        self._close()
        iterator, self._iterator = self._iterator, None
        if iterator is not None:
            await _aclose(iterator)

    def _close(self) -> None:
        """End the iteration without waiting: what of its source can end so, ends."""
        self._closed = True
        if self._iterator is not None:
            _close_now(self._iterator)

    def __del__(self) -> None:
        if not self._closed:
            self._close()


async def _open(source: AsyncIterable[_T]) -> AsyncIterator[_T]:
    """Start one iteration of ``source``, entering it if it must be (aiostream's Streamer)."""
    iterator = aiter(source)
    if isinstance(iterator, contextlib.AbstractAsyncContextManager):
        await iterator.__aenter__()
    return iterator


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    """Close an iteration ``_open`` started, and wait until it has closed."""
    if isinstance(iterator, contextlib.AbstractAsyncContextManager):
        await iterator.__aexit__(None, None, None)
    elif (aclose := getattr(iterator, "aclose", None)) is not None:
        await aclose()


def _close_now(iterator: AsyncIterator[Any]) -> None:
    """Close ``iterator`` without waiting if it is rxkube's own; leave another to ``_aclose``."""
    if isinstance(iterator, ObservableIterator | _Iteration):
        iterator._close()


class _Stepping(_Iteration[_B], Generic[_A, _B]):
    """The async face of a step: feed it each item of one iteration of ``source``.

    A ``Bound`` step also runs its ``started`` at the first ``__anext__``, its
    ``completed`` when the source ends, its ``failed`` with what the source or the step
    raised, its ``disposed`` when the iteration ends however it ends (at once when it is
    left), and the items ``offload`` picks on a worker thread (one at a time, so the step
    still sees one item at a time).
    """

    def __init__(
        self, source: AsyncIterable[_A], made: _steps.Step[_A, _B] | _steps.Bound[_A, _B]
    ) -> None:
        self._source = source
        self._bound = made if isinstance(made, _steps.Bound) else _steps.Bound(made)
        self._outputs: deque[_B] = deque()
        self._started = False
        self._running = False  # started, and not disposed yet
        self._closed = False

    async def __anext__(self) -> _B:
        bound, outputs = self._bound, self._outputs
        while not outputs:
            if self._closed:
                raise StopAsyncIteration
            if not self._started:
                self._start()
            try:
                # A retrying operator upstream reads there the store it feeds (see _Retrying).
                with contextlib.nullcontext() if bound.feeds is None else bound.feeds.upstream():
                    if self._iterator is None:
                        self._iterator = await _open(self._source)
                    item = await anext(self._iterator)
                if bound.offload is not None and bound.offload(item):
                    outputs.extend(await _on_thread(bound.step, item, self._dispose))
                else:
                    outputs.extend(bound.step(item))
            except StopAsyncIteration:
                await self._end(None)
                raise
            except Exception as error:
                await self._end(error)
                raise StopAsyncIteration from None  # ``failed`` did not pass the error on
            except asyncio.CancelledError:
                await self.aclose()
                raise
            except BaseException:  # the coroutine closed, KeyboardInterrupt: await nothing
                self._close()
                raise
        return outputs.popleft()

    def _start(self) -> None:
        self._started = True
        if self._bound.started is not None:
            try:
                self._bound.started()
            except BaseException:
                self._closed = True  # refused (a busy writer): it never ran
                raise
        self._running = True

    async def _end(self, error: Exception | None) -> None:
        """Close the source, then pass its end on: ``completed``, or ``failed`` with the error.

        Closing or completing may fail too: then that error is passed on.
        """
        bound = self._bound
        self._closed = True
        iterator, self._iterator = self._iterator, None
        try:
            try:
                if iterator is not None:
                    await _aclose(iterator)
                if error is None and bound.completed is not None:
                    bound.completed()
            except Exception as failure:
                error = failure
            if error is not None:
                if bound.failed is None:
                    raise error
                bound.failed(error, _reraise)
        finally:
            self._dispose()

    def _dispose(self) -> None:
        if self._running:
            self._running = False
            if self._bound.disposed is not None:
                self._bound.disposed()

    def _close(self) -> None:
        self._outputs.clear()
        super()._close()
        self._dispose()


async def _on_thread(step: _steps.Step[_A, _B], item: _A, dispose: Callable[[], None]) -> Any:
    """``step(item)`` on a worker thread; a cancelled iteration ends only once it has.

    A thread cannot be stopped: cancelled while the step runs, the iteration first
    disposes (which ends a wait the step may be in, for room in a shared store's
    subscriber buffer), then waits for the step to return, so that what it does (a
    relist's swap into the store) cannot land after a later iteration of the same
    writer has started. What it returned is dropped with the iteration; what it raised
    is logged, not left to be reported as never retrieved.
    """
    thread = asyncio.ensure_future(asyncio.to_thread(step, item))
    try:
        return await asyncio.shield(thread)
    except asyncio.CancelledError:
        dispose()
        while not thread.done():
            with contextlib.suppress(asyncio.CancelledError):  # cancelled again: still wait
                await asyncio.wait({thread})
        if not thread.cancelled() and (error := thread.exception()) is not None:
            log.warning("a step of a cancelled iteration failed: %s", repr(error))
        raise


def _reraise(error: Exception) -> None:
    """Pass an error on, in the async face: raise it to whoever iterates."""
    raise error


@contextlib.asynccontextmanager
async def _iterating(source: AsyncIterable[_T]) -> AsyncIterator[AsyncIterator[_T]]:
    """One iteration of ``source``, closed at the end however it ends."""
    iterator = await _open(source)
    try:
        yield iterator
    finally:
        await _aclose(iterator)


@AsyncOperator
def applied_objects(source: AsyncIterable[Event]) -> AsyncIterator[Object]:
    """The object of every ``InitApply`` and ``Apply`` event, as ``rxkube.operators.applied_objects``."""
    return _Stepping(source, _steps.applied_objects())


@AsyncOperator
def touched_objects(source: AsyncIterable[Event]) -> AsyncIterator[Object]:
    """The object of every ``InitApply``, ``Apply`` and ``Delete`` event, as ``rxkube.operators.touched_objects``."""
    return _Stepping(source, _steps.touched_objects())


@AsyncOperator
def modify(source: AsyncIterable[Event], fn: ObjectFn) -> AsyncIterator[Event]:
    """Every event with ``fn`` applied to its object, as ``rxkube.operators.modify``."""
    return _Stepping(source, _steps.modify(fn))


@AsyncOperator
def metadata_only(source: AsyncIterable[Event]) -> AsyncIterator[Event]:
    """Every event, its object reduced to apiVersion, kind and metadata, as ``rxkube.operators.metadata_only``."""
    return _Stepping(source, _steps.metadata_only())


@AsyncOperator
def predicate_filter(
    source: AsyncIterable[Event], predicate: Predicate, ttl: float = 3600.0
) -> AsyncIterator[Event]:
    """Drop applied objects whose predicate value did not change, as ``rxkube.operators.predicate_filter``.

    Deletions always pass; each iteration has its own memory; ``ttl`` is measured
    with ``time.monotonic``.
    """
    return _Stepping(source, _steps.PredicateFilter(predicate, ttl, time.monotonic))


@AsyncOperator
def reflect(source: AsyncIterable[Event], writer: Writer) -> AsyncIterator[Event]:
    """Apply every event to ``writer`` (a store's ``Writer``), then pass it on, as ``rxkube.operators.reflect``.

    A relist's ``InitDone`` (the swap, which rebuilds the store's indexes) runs on a worker
    thread, so a big relist does not stall the event loop.
    """
    return _Stepping(source, _steps.reflect(writer))


@AsyncOperator
def reflect_shared(source: AsyncIterable[Event], writer: Writer) -> AsyncIterator[Event]:
    """Apply every event to a shared store and dispatch it, as ``rxkube.operators.reflect_shared``.

    Each event is applied on a worker thread: when a subscriber's buffer is full the
    writer waits for it, and the event loop must not. Closing the iteration ends such a
    wait; the source's end completes the store's subscribers.

    Raises:
        TypeError: the writer's store is not shared (use ``reflect``).
    """
    reader = _steps.shared_store_of(writer)
    return _Stepping(source, _steps.reflect_shared(reader, writer))


@AsyncOperator
def backoff(
    source: AsyncIterable[Any],
    policy: BackoffPolicy,
    *,
    on_retry: Callable[[BaseException, float], object] | None = None,
    reset_after: float | None = RESET_AFTER,
) -> AsyncIterator[Any]:
    """Iterate ``source`` again after a transient error, waiting as ``policy`` says.

    The same decisions as ``rxkube.operators.backoff`` (transient errors only,
    ``Retry-After``, WARNING logs, ``on_retry``, reset after ``reset_after`` seconds
    without errors), with ``asyncio.sleep`` for the wait. ``source`` must start
    afresh on each iteration (a watcher, an operator's result, ``defer(...)``), not
    be a one-shot iterator.
    """
    return _retry(source, policy, on_retry, reset_after)


@AsyncOperator
def default_backoff(
    source: AsyncIterable[Any],
    *,
    on_retry: Callable[[BaseException, float], object] | None = None,
) -> AsyncIterator[Any]:
    """``backoff()`` with a fresh ``ExponentialBackoff()`` (0.8 s, doubling, 30 s, jitter; reset after 120 s)."""
    return _retry(source, ExponentialBackoff(), on_retry, RESET_AFTER)


def _retry(
    source: AsyncIterable[_T],
    policy: BackoffPolicy,
    on_retry: Callable[[BaseException, float], object] | None,
    reset_after: float | None,
) -> AsyncIterator[_T]:
    if isinstance(source, AsyncIterator):
        raise TypeError(
            f"backoff() needs a source it can iterate again, not the one-shot iterator {source!r}: "
            "pass a watcher or an operator's result, or wrap the factory in rxkube.aio.defer()"
        )
    return _Retrying(source, _steps.Retrier(policy, reset_after, on_retry))


class _Retrying(_Iteration[_T]):
    """The async face of ``_steps.Retrier``: iterate, and after an error sleep and iterate again."""

    def __init__(self, source: AsyncIterable[_T], retrier: _steps.Retrier) -> None:
        self._source = source
        self._retrier = retrier
        self._closed = False

    async def __anext__(self) -> _T:
        loop = asyncio.get_running_loop()
        retrier = self._retrier
        while not self._closed:
            try:
                if self._iterator is None:
                    retrier.started(loop.time())
                    self._iterator = await _open(self._source)
                # A store's pipeline failing inside publishes its end once this has
                # decided: "retrying", not "stopped" first (see RetryScope).
                with RetryScope():
                    try:
                        return await anext(self._iterator)
                    except StopAsyncIteration:
                        raise
                    except Exception as error:
                        delay = retrier.delay(error, loop.time())
                        if delay is None:
                            raise
                        at = time.time() + delay
                        run = failed_run(error)  # a store's pipeline failed: "retrying"
                        if run is not None:
                            run.retrying(at)
                        # The stores fed downstream (backoff() before reflect()): their
                        # runs go on while the source is lost, and are told so.
                        lost = downstream_runs()
                        for downstream in lost:
                            downstream.source_retrying(self, error, at)
                iterator, self._iterator = self._iterator, None
                await _aclose(iterator)
                try:
                    await asyncio.sleep(delay)
                except BaseException:
                    if run is not None:
                        run.retry_cancelled()
                    raise
                for downstream in lost:
                    downstream.source_resumed(self)
            except (Exception, asyncio.CancelledError):  # the end, or no retry: close
                await self.aclose()
                raise
            except BaseException:  # the coroutine closed, KeyboardInterrupt: await nothing
                self._close()
                raise
        raise StopAsyncIteration


# --- watchers ----------------------------------------------------------------------


def watcher(
    api: Api | AsyncApi, config: Config | None = None, *, maxsize: int = DEFAULT_MAXSIZE
) -> AsyncSource[Event]:
    """``rxkube.watcher`` as an async source: each ``async for`` runs one watch.

    Args:
        api: the resource (and namespace) to watch; an ``AsyncApi`` watches through its
            client's blocking twin (the watch runs on its own thread either way).
        config: selectors, timeouts, paging and the initial list strategy.
        maxsize: events queued before the watch thread waits for the consumer.

    Example:
        >>> async for event in rxkube.aio.watcher(api):  # doctest: +SKIP
        ...     print(event)
    """
    observable = _rx_watcher(_blocking(api), config)
    return AsyncSource(lambda: iterate(observable, maxsize=maxsize))


def metadata_watcher(
    api: Api | AsyncApi, config: Config | None = None, *, maxsize: int = DEFAULT_MAXSIZE
) -> AsyncSource[Event]:
    """``rxkube.metadata_watcher`` as an async source (objects are PartialObjectMetadata).

    Args:
        api: the resource (and namespace) to watch (an ``Api`` or an ``AsyncApi``).
        config: selectors, timeouts, paging and the initial list strategy.
        maxsize: events queued before the watch thread waits for the consumer.
    """
    observable = _rx_metadata_watcher(_blocking(api), config)
    return AsyncSource(lambda: iterate(observable, maxsize=maxsize))


def _blocking(api: Api | AsyncApi) -> Api:
    return api.sync if isinstance(api, AsyncApi) else api


# --- async iterable -> Observable ----------------------------------------------------

_running: set[asyncio.Future[None]] = set()
"""Pumps of ``from_async`` subscriptions: asyncio keeps only weak references to tasks."""


def from_async(
    source: AsyncIterable[_T], *, loop: asyncio.AbstractEventLoop | None = None
) -> Observable[_T]:
    """An Observable that iterates ``source`` on an event loop for each subscription.

    ``on_next`` runs on the loop's thread, one item at a time: the iteration
    awaits nothing else between items, so a slow observer slows the source.
    Disposing the subscription cancels the iteration (and closes the iterator). If
    ``on_next`` raises, the iteration is closed and the observer gets
    ``on_error(ConsumerError)`` chained to the exception, as at every seam.

    Args:
        source: iterated once per subscription.
        loop: the loop to run on; by default the running loop of the thread that
            subscribes (subscribing from elsewhere then needs ``loop``).

    Example:
        >>> import asyncio
        >>> async def numbers():
        ...     yield 1
        ...     yield 2
        >>> async def main():
        ...     done = asyncio.Event()
        ...     from_async(defer(numbers)).subscribe(print, on_completed=done.set)
        ...     await done.wait()
        >>> asyncio.run(main())
        1
        2
    """

    def subscribe(
        observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        target = loop or current
        if target is None:
            raise RuntimeError(
                "from_async(): subscribe on an event loop's thread, or pass loop= to run on"
            )
        pump = _pump(source, observer)
        future: asyncio.Future[None]
        if target is current:
            future = target.create_task(pump)
        else:
            future = asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(pump, target), loop=target
            )
        _running.add(future)
        future.add_done_callback(_running.discard)

        def cancel() -> None:
            if target.is_closed():
                return
            try:
                if asyncio.get_running_loop() is target:
                    future.cancel()
                    return
            except RuntimeError:
                pass
            target.call_soon_threadsafe(future.cancel)

        return Disposable(cancel)

    return Observable(subscribe)


async def _pump(source: AsyncIterable[_T], observer: abc.ObserverBase[_T]) -> None:
    raised: Exception | None = None
    try:
        async with _iterating(source) as iterator:
            async for item in iterator:
                try:
                    observer.on_next(item)
                except Exception as exc:
                    raised = exc
                    break  # leaving the block closes the iteration: the upstream is gone
    except Exception as error:
        observer.on_error(error)
        return
    if raised is not None:
        fail_consumer(observer, f"the subscriber of from_async({_name_of(source)})", raised)
    else:
        observer.on_completed()


def _name_of(source: AsyncIterable[Any]) -> str:
    return getattr(source, "__qualname__", None) or type(source).__name__


# --- aiostream -----------------------------------------------------------------------


def _aiostream() -> Any:
    """Import aiostream, or explain how to install it."""
    try:
        import aiostream
    except ImportError as exc:
        raise ImportError(_AIOSTREAM_MISSING) from exc
    return aiostream


def stream(
    source: AsyncIterable[_T] | Observable[_T], *, maxsize: int = DEFAULT_MAXSIZE
) -> Stream[_T]:
    """An aiostream ``Stream`` of a source or an Observable, for aiostream pipelines.

    Needs the optional extra: ``pip install 'rxkube[aiostream]'``. Every iteration of
    the stream iterates the source afresh (subscribes to the Observable anew, with
    a queue of ``maxsize``). The rxkube operators pipe in with ``op.pipe(...)``::

        xs = stream(rxkube.aio.watcher(api)) | rxkube.aio.applied_objects.pipe()

    Raises:
        ImportError: aiostream is not installed.
    """
    core = _aiostream().core
    if isinstance(source, Observable):
        observable = source
        return core.Stream(lambda: iterate(observable, maxsize=maxsize))  # type: ignore[no-any-return]
    iterable = source
    return core.Stream(lambda: aiter(iterable))  # type: ignore[no-any-return]
