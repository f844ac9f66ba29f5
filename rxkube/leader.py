"""Leader election on ``coordination.k8s.io/v1`` Leases, as client-go's ``leaderelection``.

Run two or three replicas of a controller and let exactly one reconcile: every replica
runs a :class:`LeaderElector` on the same Lease; the one holding it is the leader.

How it works (client-go's algorithm):

- Every ``retry_period`` a candidate reads the Lease. If nobody holds it, or the holder
  has not renewed it for ``leaseDurationSeconds`` *as observed by this candidate's own
  clock* (the time it last saw the Lease change, so clocks of different machines need
  not agree), the candidate writes itself as holder. Writes carry the resourceVersion
  that was read, so of two candidates racing, the server lets exactly one win
  (``409 Conflict`` for the other).
- The leader renews the Lease every ``retry_period``. If no renewal has succeeded for
  ``renew_deadline`` seconds, it steps down, *before* ``lease_duration`` runs out and
  another candidate may take over. :attr:`LeaderElector.is_leader` is computed from the
  clock on every read, so it turns ``False`` at the deadline whatever happens. As in
  client-go, a renewal is cut off at the deadline (its requests time out then), so the
  step-down is announced at the deadline even when the connection hangs; an attempt to
  acquire is bounded by ``renew_deadline`` the same way.
- Callbacks and ``leadership()`` subscribers run on a thread of their own
  (``rxkube-leader-<name>-events``), in order, never on the thread that renews: a slow
  callback delays later announcements, never a renewal.
- On :meth:`LeaderElector.stop` a leader first waits for the work its Lease guards (the
  reconciles a ``Controller.run(..., leader=elector)`` started) to end, renewing
  meanwhile, then releases the Lease (empty holder), so another replica takes over at its
  next retry instead of waiting for the lease to expire. Work still running at the
  timeout keeps the Lease from being released: it is left to expire, as client-go's
  ``ReleaseOnCancel`` demands that all code guarded by the lease has completed first.

Hand the elector to ``Controller.run(..., leader=elector)``: the controller keeps its
watches and caches warm on every replica, and only starts reconciles while leading. When
leadership ends, its coroutine reconciles are cancelled; a plain one cannot be, and must
end within ``lease_duration - renew_deadline`` of the step-down.

Example:
    >>> leases = Api(client, "leases", namespace="kube-system")     # doctest: +SKIP
    >>> with LeaderElector(leases, "my-controller") as elector:     # doctest: +SKIP
    ...     controller.run(reconcile, error_policy, ctx, leader=elector).run()
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import SingleAssignmentDisposable
from reactivex.subject import BehaviorSubject

from ._delivery import Handover, fail_consumer
from ._timeouts import checked_timeout
from .errors import Conflict, DecodeError, NotFound, RxKubeError

if TYPE_CHECKING:
    from .client import Api

__all__ = ["LeaderElector", "default_identity"]

log = logging.getLogger(__name__)

_JITTER = 1.2
"""client-go's JitterFactor: a candidate retries after ``retry_period * (1 + U(0, 1.2))``."""

_Announcement = Callable[[], object] | None

# The Lease spec's fields the elector reads, and their JSON types.
_LEASE_FIELDS: dict[str, type] = {
    "holderIdentity": str,
    "leaseDurationSeconds": int,
    "leaseTransitions": int,
    "acquireTime": str,
    "renewTime": str,
}
"""One call for the announcing thread; ``None`` ends it."""

_ANNOUNCEMENTS = 1024
"""Announcements queued before the elector's thread waits (a handful per change of leadership)."""


def default_identity() -> str:
    """A unique identity for this process: ``<hostname>_<random hex>``, as client-go suggests."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:12]}"


def _micro_time(wall: float) -> str:
    """A Kubernetes MicroTime: RFC 3339 with microseconds, in UTC."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Compete for a Lease; know at any time whether this replica leads.

    Args:
        api: the Leases API with the namespace of the Lease, e.g.
            ``Api(client, "leases", namespace="kube-system")``.
        name: the Lease's name, the same for every replica (e.g. the controller's name).
        identity: this replica's unique identity; :func:`default_identity` if not given.
        lease_duration: seconds a candidate waits, from the last change it saw, before
            taking over a Lease that was not renewed (written rounded up to whole
            seconds, as the Lease field is an integer).
        renew_deadline: seconds a leader keeps trying to renew before it steps down;
            must be less than ``lease_duration``.
        retry_period: seconds between attempts to acquire or renew; must be less than
            ``renew_deadline``.
        release_on_stop: on :meth:`stop`, a leader clears the holder so another replica
            takes over at once, once no work guarded by the Lease runs (see :meth:`stop`).
        on_started_leading: called when this replica becomes the leader.
        on_stopped_leading: called when it stops leading (deadline passed, lease lost or
            stopped).
        on_new_leader: called with the holder's identity each time it changes (``""`` when
            released).
        clock: monotonic seconds, for durations (injectable for tests).
        wall_clock: seconds since the epoch, for the Lease's timestamps.

    Once started, callbacks and ``leadership()`` subscribers run on the elector's
    announcing thread (``rxkube-leader-<name>-events``), one at a time and in order, so
    they never delay a renewal; an elector driven by hand with :meth:`tick` calls them on
    the calling thread. An exception in a callback is logged and ignored.

    Raises:
        ValueError: the durations are not ``lease_duration > renew_deadline >
            retry_period * 1.2 > 0``, ``name`` is empty, or ``api`` is not the Leases
            API of one namespace.
    """

    def __init__(
        self,
        api: Api,
        name: str,
        *,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        release_on_stop: bool = True,
        on_started_leading: Callable[[], object] | None = None,
        on_stopped_leading: Callable[[], object] | None = None,
        on_new_leader: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not name:
            raise ValueError("LeaderElector needs the Lease's name")
        served = getattr(getattr(api, "resource", None), "full_name", "leases.coordination.k8s.io")
        if not api.namespace or served != "leases.coordination.k8s.io":
            # Given the pods API, it would read and write a Pod as if it were a Lease.
            raise ValueError(
                "LeaderElector needs the Leases API of one namespace, e.g. "
                f'Api(client, "leases", namespace="kube-system"), not {api!r}'
            )
        if not lease_duration > renew_deadline > retry_period * _JITTER > 0:
            raise ValueError(
                "LeaderElector needs lease_duration > renew_deadline > retry_period * 1.2 > 0; "
                f"got lease_duration={lease_duration}, renew_deadline={renew_deadline}, "
                f"retry_period={retry_period}"
            )
        self.api = api
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_stop = release_on_stop
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._clock = clock
        self._wall_clock = wall_clock
        # Lock rules: ``_lock`` guards ``_busy``, so that one thread at a time drives the
        # election (the elector's thread, or a caller of tick() or stop() on an elector
        # that was not started), and ``_changed`` waits for ``_leading`` to change; it
        # also guards ``_closing`` and ``_holds``, and ``_drained`` waits for the holds to
        # end. It is never held across a request or a callback.
        # Every other field is written only by the driving thread; readers (is_leader,
        # leader) read one attribute at a time.
        self._lock = threading.Lock()
        self._busy = False
        self._changed = threading.Condition(self._lock)  # notified when _leading changes
        # The work guarded by the Lease (_hold), running now, each with what to call once
        # if leadership ends under it (None once called); none starts once stop() began.
        self._holds: dict[object, Callable[[], object] | None] = {}
        self._closing = False
        self._drained = threading.Condition(self._lock)  # notified when _holds reaches 0
        # The Lease spec as last observed and when (our clock) it last changed: the
        # basis for judging that another holder's lease expired.
        self._observed: dict[str, Any] | None = None
        self._observed_time = 0.0
        self._lease: dict[str, Any] | None = None  # the Lease as last read or written
        self._renewed_at: float | None = None  # when our last successful write began
        self._leading = False  # as last announced
        self._leader = ""
        self._subject: BehaviorSubject[bool] = BehaviorSubject(False)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Once started, announcements cross to the announcing thread through this: a
        # handful per change of leadership, so the elector waits only behind a callback
        # stuck for a thousand of them (and then stops renewing: a replica that cannot
        # announce should not lead).
        self._announcements: Handover[_Announcement] | None = None
        self._announcer: threading.Thread | None = None

    # -- state -------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """Whether this replica leads now: it holds the Lease and renewed it within the deadline."""
        until = self.leading_until
        return until is not None and self._clock() < until

    @property
    def leading_until(self) -> float | None:
        """When (on ``clock``) leadership ends unless renewed: past once it ended, ``None`` if never held.

        Work that must finish while leading can be bounded by it.
        """
        renewed = self._renewed_at
        return None if renewed is None else renewed + self.renew_deadline

    @property
    def leader(self) -> str:
        """The identity of the holder as last observed (``""`` if none or unknown)."""
        return self._leader

    def leadership(self) -> Observable[bool]:
        """An Observable of whether this replica leads: the current value, then each change.

        The current value is emitted on the subscribing thread, the changes on the
        announcing thread (see the class doc); it completes after :meth:`stop`, and fails
        with the exception if the elector's thread ended by one that is not a failed
        attempt (a bug: failed requests and malformed Leases are retried). A
        subscriber whose ``on_next`` raises is unsubscribed and gets
        ``on_error(ConsumerError)`` chained to the exception, as at every seam; the
        election goes on.
        """
        subject, name = self._subject, f"a leadership() subscriber of Lease {self.name}"

        def subscribe(
            observer: abc.ObserverBase[bool], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            subscription = SingleAssignmentDisposable()

            def on_next(leading: bool) -> None:
                try:
                    observer.on_next(leading)
                except Exception as exc:
                    subscription.dispose()
                    log.error("%s raised; it is unsubscribed", name, exc_info=exc)
                    fail_consumer(observer, name, exc)

            subscription.disposable = subject.subscribe(
                on_next, observer.on_error, observer.on_completed
            )
            return subscription

        return reactivex.create(subscribe)

    def wait_until_leading(self, timeout: float) -> bool:
        """Block until this replica leads or ``timeout`` seconds pass; return :attr:`is_leader`.

        Woken by the elector itself, not by its announcements: a slow callback or
        subscriber does not delay it.

        Raises:
            TypeError, ValueError: ``timeout`` is not a number, or is negative or NaN.
        """
        limit = checked_timeout(timeout, "LeaderElector.wait_until_leading()")
        with self._changed:
            self._changed.wait_for(lambda: self._leading, limit)
        return self.is_leader

    # -- the loop ----------------------------------------------------------------------

    def start(self) -> Self:
        """Start competing on a daemon thread (``rxkube-leader-<name>``); returns ``self``.

        Raises:
            RuntimeError: already started.
        """
        if self._thread is not None:
            raise RuntimeError(f"leader elector for Lease {self.name!r} was started already")
        announcements: Handover[_Announcement] = Handover(_ANNOUNCEMENTS)
        self._announcer = threading.Thread(
            target=self._announce_all,
            args=(announcements,),
            name=f"rxkube-leader-{self.name}-events",
            daemon=True,
        )
        self._announcer.start()
        self._announcements = announcements
        self._thread = threading.Thread(
            target=self._run, name=f"rxkube-leader-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop competing: a leader steps down and (with ``release_on_stop``) releases the Lease.

        No new work guarded by the Lease starts (a controller following this elector
        starts no reconcile); the reconciles running go on under a Lease still renewed,
        and only once they have ended is it released. A plain reconcile past its
        ``reconcile_timeout`` counts: a graceful stop of its controller does not wait
        for it, this does. One still running after ``timeout`` seconds keeps the Lease
        from being released (it is left to expire, and a warning says so), so no other
        replica leads while it runs before the lease runs out.

        Then waits up to ``timeout`` seconds more for the elector's threads to end (a
        renewal in flight is bounded by the renew deadline; the last announcements by
        the callbacks).
        """
        with self._lock:
            self._closing = True
            self._drained.wait_for(lambda: not self._holds, timeout)
        self._stopping.set()
        thread = self._thread
        if thread is None:
            with self._turn("stop()"):
                self._finish()
            return
        deadline = time.monotonic() + timeout
        for worker in (thread, self._announcer):
            if worker is None or worker is threading.current_thread():
                continue
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.warning(
                    "leader elector for Lease %s: thread %s did not stop in %s s",
                    self.name,
                    worker.name,
                    timeout,
                )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        error: Exception | None = None
        try:
            while not self._stopping.is_set():
                with self._turn("the elector's thread"):
                    delay = self._tick()
                self._stopping.wait(delay)
        except Exception as exc:
            # Not a failed attempt (those are RxKubeErrors, retried): a bug. client-go
            # crashes its process then; this elector steps down and ends, and says why
            # (leadership() fails with it, and so does a controller that follows it).
            log.exception("leader elector for Lease %s failed; it stops competing", self.name)
            error = exc
        finally:
            with self._turn("the elector's thread"):
                self._finish(error)

    @contextlib.contextmanager
    def _turn(self, who: str) -> Iterator[None]:
        """Drive the election for the duration of the block: one thread at a time."""
        with self._lock:
            if self._busy:
                raise RuntimeError(
                    f"{who}: the leader elector for Lease {self.name!r} is being driven by "
                    "another thread"
                )
            self._busy = True
        try:
            yield
        finally:
            with self._lock:
                self._busy = False

    def _finish(self, error: Exception | None = None) -> None:
        with self._lock:
            guarded = len(self._holds)  # stop() began: no more start (after a bug, none matters)
        # After a bug the elector's state is not to be trusted: the Lease is left to expire.
        if error is None and self.release_on_stop and self.is_leader:
            if guarded:
                log.warning(
                    "%s: %d reconciles guarded by Lease %s still run; it is left to expire, "
                    "not released",
                    self.identity,
                    guarded,
                    self.name,
                )
            else:
                self._release()
        self._renewed_at = None
        self._announce(False)
        subject = self._subject
        self._emit(subject.on_completed if error is None else lambda: subject.on_error(error))
        if self._announcements is not None:
            self._announcements.put(None)

    def _may_start(self) -> bool:
        """Whether work guarded by the Lease may start now: leading, and not stopping."""
        return self.is_leader and not self._closing

    def _hold(self, lost: Callable[[], object]) -> object | None:
        """Count one piece of work guarded by the Lease, if it may start now.

        Returns a token for :meth:`_unhold`, which must follow once the work has ended,
        however it ends (:meth:`stop` releases no Lease before); ``None``: not leading,
        or stopping. ``lost`` is called once if leadership ends while the work runs, on
        the driving thread as the end is announced: before any renewal could begin
        another term, so the work it stops is the ending term's alone.
        """
        with self._lock:
            if self._closing or not self.is_leader:
                return None
            token = object()
            self._holds[token] = lost
            return token

    def _unhold(self, token: object) -> None:
        """Record that a piece of work counted by :meth:`_hold` has ended."""
        with self._lock:
            del self._holds[token]
            if not self._holds:
                self._drained.notify_all()

    def tick(self) -> float:
        """Make one attempt to acquire or renew the Lease now; return seconds until the next.

        The elector's thread calls this in a loop. Call it yourself only to drive an
        elector that was not started (e.g. in a test with an injected clock).

        Raises:
            RuntimeError: the elector was started (its thread ticks), or another thread
                is in ``tick()`` or ``stop()`` now.
        """
        if self._thread is not None:
            raise RuntimeError(
                f"tick(): the leader elector for Lease {self.name!r} was started; its thread ticks"
            )
        with self._turn("tick()"):
            return self._tick()

    def _tick(self) -> float:
        started = self._clock()
        # A deadline that passed while the thread slept is announced before anything else.
        self._announce(self.is_leader)
        # An attempt is worthless past its deadline: a renewal must succeed before the
        # leader's, and an acquisition that took longer than renew_deadline would begin
        # a leadership already over. So its requests time out then (client-go cancels
        # the renewal's context at the renew deadline).
        until = self.leading_until if self.is_leader else None
        deadline = started + self.renew_deadline if until is None else until
        try:
            won = self._try_acquire_or_renew(started, deadline)
        except RxKubeError as exc:
            log.warning(
                "%s: Lease %s: acquire or renew failed: %s", self.identity, self.name, str(exc)
            )
            won = False
        if won:
            self._renewed_at = started
        self._announce(self.is_leader)
        now = self._clock()
        if self._leading and self._renewed_at is not None:
            # Come back in time to notice the deadline, if renewals keep failing.
            return max(0.0, min(self.retry_period, self._renewed_at + self.renew_deadline - now))
        return self.retry_period * (1.0 + random.random() * _JITTER)

    def _time_left(self, deadline: float) -> float:
        """The timeout of a request that must end by ``deadline`` (at least a millisecond)."""
        return max(deadline - self._clock(), 0.001)

    def _try_acquire_or_renew(self, now: float, deadline: float) -> bool:
        wall = _micro_time(self._wall_clock())
        record: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": math.ceil(self.lease_duration),
            "acquireTime": wall,
            "renewTime": wall,
            "leaseTransitions": 0,
        }
        # Fast path: a leader writes over the Lease it wrote last, without reading it.
        if self.is_leader and self._lease is not None and self._observed is not None:
            record["acquireTime"] = self._observed.get("acquireTime", wall)
            record["leaseTransitions"] = self._observed.get("leaseTransitions", 0)
            try:
                self._write(self._lease, record, now, deadline)
                return True
            except (Conflict, NotFound):
                log.info("%s: Lease %s changed under us; reading it", self.identity, self.name)

        try:
            current = self.api.get(self.name, timeout=self._time_left(deadline))
        except NotFound:
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name},
                "spec": record,
            }
            self._lease = self.api.create(lease, timeout=self._time_left(deadline))
            self._observe(record, now)
            return True

        # Observed when the answer arrived, never earlier: the holder's renewal we read
        # began before this moment, so its deadline passes before our expiry check can.
        seen = self._clock()
        spec = self._spec_of(current)
        self._lease = current
        if spec != self._observed:
            self._observe(spec, seen)
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or math.ceil(self.lease_duration)
        if holder and holder != self.identity and seen < self._observed_time + duration:
            self._renewed_at = None  # another replica holds a lease that has not expired
            return False
        if holder == self.identity:
            record["acquireTime"] = spec.get("acquireTime", wall)
            record["leaseTransitions"] = spec.get("leaseTransitions", 0)
        else:
            record["leaseTransitions"] = spec.get("leaseTransitions", 0) + 1
        self._write(current, record, now, deadline)
        return True

    def _spec_of(self, lease: Any) -> dict[str, Any]:
        """The spec of the Lease as read, if it is shaped as one, without its null fields.

        A null field is an absent one, as client-go's typed decoding reads it into a nil
        pointer: dropping it here, once, lets every reader of the spec (this attempt, the
        leader's next renewal without a read, the release) take ``get(field, default)``
        at its word.
        A Lease whose fields have the wrong types (written by something other than an
        API server that validates them) fails the attempt, as client-go's typed decoding
        would: it is retried, and the candidate competes on.
        """
        meta = lease.get("metadata") if isinstance(lease, dict) else None
        spec = (lease.get("spec") or {}) if isinstance(meta, dict) else None
        if isinstance(spec, dict) and all(
            value is None or (isinstance(value, kind) and not isinstance(value, bool))
            for field, kind in _LEASE_FIELDS.items()
            for value in (spec.get(field),)
        ):
            return {field: value for field, value in spec.items() if value is not None}
        raise DecodeError(
            f"Lease {self.name}: the answer is not a Lease with fields of their types: "
            f"{lease!r:.200}"
        )

    def _write(
        self, lease: dict[str, Any], spec: dict[str, Any], now: float, deadline: float
    ) -> None:
        """Replace the Lease with ``spec``, on the condition that it is still ``lease``."""
        meta = lease.get("metadata") or {}
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "resourceVersion": meta.get("resourceVersion")},
            "spec": spec,
        }
        try:
            self._lease = self.api.replace(body, timeout=self._time_left(deadline))
        except (Conflict, NotFound):
            self._lease = None
            raise
        self._observe(spec, now)

    def _observe(self, spec: dict[str, Any], now: float) -> None:
        self._observed = spec
        self._observed_time = now
        holder = spec.get("holderIdentity") or ""
        if holder != self._leader:
            self._leader = holder
            log.info("Lease %s: leader is now %s", self.name, holder or "nobody")
            callback = self._on_new_leader
            self._emit(lambda: self._call(callback, holder))

    def _release(self) -> None:
        if self._lease is None or self._observed is None:
            return
        wall = _micro_time(self._wall_clock())
        spec = {
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": wall,
            "renewTime": wall,
            "leaseTransitions": self._observed.get("leaseTransitions", 0),
        }
        now = self._clock()
        try:
            self._write(self._lease, spec, now, now + self.renew_deadline)
        except RxKubeError as exc:
            log.warning("%s: could not release Lease %s: %s", self.identity, self.name, str(exc))

    def _announce(self, leading: bool) -> None:
        if leading == self._leading:
            return
        with self._changed:
            self._leading = leading
            self._changed.notify_all()
            lost = [] if leading else [call for call in self._holds.values() if call]
            if not leading:
                self._holds = dict.fromkeys(self._holds)
        for call in lost:
            self._call(call)
        if leading:
            log.info("%s: became the leader on Lease %s", self.identity, self.name)
        else:
            log.warning("%s: stopped leading on Lease %s", self.identity, self.name)
        callback = self._on_started if leading else self._on_stopped

        def announce() -> None:
            self._call(callback)
            self._subject.on_next(leading)

        self._emit(announce)

    def _emit(self, announcement: Callable[[], object]) -> None:
        """Announce on the announcing thread once started, else on the driving thread."""
        if self._announcements is None:
            announcement()
        else:
            self._announcements.put(announcement)

    def _announce_all(self, announcements: Handover[_Announcement]) -> None:
        """The body of the announcing thread: every announcement in order, until the end."""
        announcements.consumer_thread = threading.get_ident()
        while batch := announcements.take(block=True):
            for announcement in batch:
                if announcement is None:
                    announcements.close()
                    return
                try:
                    announcement()
                except Exception:
                    log.exception("announcing leadership of Lease %s failed", self.name)

    def _call(self, callback: Callable[..., object] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("a leader election callback of Lease %s raised", self.name)

    def __repr__(self) -> str:
        role = "leader" if self.is_leader else "candidate"
        return f"<LeaderElector {self.identity} on Lease {self.name}: {role}>"
