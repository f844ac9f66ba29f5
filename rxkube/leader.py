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
  clock on every read, so it turns ``False`` at the deadline even if the elector's
  thread is stuck in a slow request.
- On :meth:`LeaderElector.stop` a leader releases the Lease (empty holder), so another
  replica takes over at its next retry instead of waiting for the lease to expire.

Hand the elector to ``Controller.run(..., leader=elector)``: the controller keeps its
watches and caches warm on every replica, and only starts reconciles while leading.

Example:
    >>> leases = Api(client, "leases", namespace="kube-system")     # doctest: +SKIP
    >>> with LeaderElector(leases, "my-controller") as elector:     # doctest: +SKIP
    ...     controller.run(reconcile, error_policy, ctx, leader=elector).run()
"""

from __future__ import annotations

import logging
import math
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from reactivex import Observable
from reactivex.subject import BehaviorSubject

from .errors import Conflict, NotFound, RxKubeError

if TYPE_CHECKING:
    from .client import Api

__all__ = ["LeaderElector", "default_identity"]

log = logging.getLogger(__name__)

_JITTER = 1.2
"""client-go's JitterFactor: a candidate retries after ``retry_period * (1 + U(0, 1.2))``."""


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
            takes over at once.
        on_started_leading: called when this replica becomes the leader.
        on_stopped_leading: called when it stops leading (deadline passed, lease lost or
            stopped).
        on_new_leader: called with the holder's identity each time it changes (``""`` when
            released).
        clock: monotonic seconds, for durations (injectable for tests).
        wall_clock: seconds since the epoch, for the Lease's timestamps.

    Callbacks run on the elector's thread (``rxkube-leader-<name>``): keep them quick.
    An exception in a callback is logged and ignored.

    Raises:
        ValueError: the durations are not ``lease_duration > renew_deadline >
            retry_period * 1.2 > 0``, or ``name`` is empty.
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
        if not api.namespace:
            raise ValueError(
                "LeaderElector needs the Leases API of one namespace, e.g. "
                'Api(client, "leases", namespace="kube-system")'
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
        self._lock = threading.RLock()  # one tick at a time: the thread's, or a caller's
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

        Values are emitted on the elector's thread (or the thread calling :meth:`stop`);
        it completes after :meth:`stop`.
        """
        return self._subject

    def wait_until_leading(self, timeout: float) -> bool:
        """Block until this replica leads or ``timeout`` seconds pass; return :attr:`is_leader`."""
        done = threading.Event()
        subscription = self._subject.subscribe(lambda leading: done.set() if leading else None)
        try:
            done.wait(timeout)
        finally:
            subscription.dispose()
        return self.is_leader

    # -- the loop ----------------------------------------------------------------------

    def start(self) -> Self:
        """Start competing on a daemon thread (``rxkube-leader-<name>``); returns ``self``.

        Raises:
            RuntimeError: already started.
        """
        if self._thread is not None:
            raise RuntimeError(f"leader elector for Lease {self.name!r} was started already")
        self._thread = threading.Thread(
            target=self._run, name=f"rxkube-leader-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop competing: a leader steps down and (with ``release_on_stop``) releases the Lease.

        Waits up to ``timeout`` seconds for the elector's thread to end.
        """
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("leader elector for Lease %s did not stop in %s s", self.name, timeout)
                return
        elif thread is None:
            self._finish()

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
        try:
            while not self._stopping.is_set():
                self._stopping.wait(self.tick())
        except Exception:
            log.exception("leader elector for Lease %s failed", self.name)
        finally:
            self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self.release_on_stop and self.is_leader:
                self._release()
            self._renewed_at = None
            self._announce(False)
        self._subject.on_completed()

    def tick(self) -> float:
        """Make one attempt to acquire or renew the Lease now; return seconds until the next.

        The elector's thread calls this in a loop. Call it yourself only to drive an
        elector that was not started (e.g. in a test with an injected clock).
        """
        with self._lock:
            started = self._clock()
            try:
                won = self._try_acquire_or_renew(started)
            except RxKubeError as exc:
                log.warning(
                    "%s: Lease %s: acquire or renew failed: %s", self.identity, self.name, exc
                )
                won = False
            if won:
                self._renewed_at = started
            self._announce(self.is_leader)
            now = self._clock()
            if self._leading and self._renewed_at is not None:
                # Come back in time to notice the deadline, if renewals keep failing.
                deadline = self._renewed_at + self.renew_deadline
                return max(0.0, min(self.retry_period, deadline - now))
            return self.retry_period * (1.0 + random.random() * _JITTER)

    def _try_acquire_or_renew(self, now: float) -> bool:
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
                self._write(self._lease, record, now)
                return True
            except (Conflict, NotFound):
                log.info("%s: Lease %s changed under us; reading it", self.identity, self.name)

        try:
            current = self.api.get(self.name)
        except NotFound:
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name},
                "spec": record,
            }
            self._lease = self.api.create(lease)
            self._observe(record, now)
            return True

        # Observed when the answer arrived, never earlier: the holder's renewal we read
        # began before this moment, so its deadline passes before our expiry check can.
        seen = self._clock()
        self._lease = current
        spec: dict[str, Any] = current.get("spec") or {}
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
        self._write(current, record, now)
        return True

    def _write(self, lease: dict[str, Any], spec: dict[str, Any], now: float) -> None:
        """Replace the Lease with ``spec``, on the condition that it is still ``lease``."""
        meta = lease.get("metadata") or {}
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "resourceVersion": meta.get("resourceVersion")},
            "spec": spec,
        }
        try:
            self._lease = self.api.replace(body)
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
            self._call(self._on_new_leader, holder)

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
        try:
            self._write(self._lease, spec, self._clock())
        except RxKubeError as exc:
            log.warning("%s: could not release Lease %s: %s", self.identity, self.name, exc)

    def _announce(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            log.info("%s: became the leader on Lease %s", self.identity, self.name)
            self._call(self._on_started)
        else:
            log.warning("%s: stopped leading on Lease %s", self.identity, self.name)
            self._call(self._on_stopped)
        self._subject.on_next(leading)

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
