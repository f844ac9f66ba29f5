"""Sharded controllers: membership on Leases, a ring assignment, safe handover, sharded watches.

Why one file this long: ``ShardMember`` (the handover protocol) and ``ShardedSource``
(the watches of what it holds) are two halves of one safety argument, written down in
``docs/sharding.md``, and are easier to check against it side by side.

A :class:`ShardMember` is one replica of a sharded controller. It holds its own
``coordination.k8s.io/v1`` Lease (``<group>-<identity>``, labelled
``rxkube.io/shard-group=<group>``), watches the group's Leases with rxkube's watcher and
store, splits the hash space among the live members with
:func:`~rxkube._shards.ring_assignment`, and moves ranges between replicas with the
handover protocol of ``docs/sharding.md``: a range is held by at most one valid replica
at a time, and a replica that cannot renew its Lease stops reconciling before the others
may take its ranges over.

:class:`ShardedSource` turns the held ranges into watches (``Config(shard=...)``), one per
acquisition, so a change of assignment lists only the ranges that moved, and keeps one
store with exactly this replica's share. ``Controller.sharded()`` wires both into a
controller. :func:`fraction` reads a set of ranges (what :meth:`ShardMember.ranges` emits)
as the share of the hash space it holds.

Threads: the member runs one thread (``rxkube-shard-<group>``) that writes its Lease and
decides; the source applies every watch's events on one scheduler thread
(``rxkube-shards-<name>``). Locks guard plain data only: no network I/O and no user code
runs under them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.scheduler import EventLoopScheduler
from reactivex.subject import BehaviorSubject, Subject

from ._cache import Store, store
from ._object_ref import key_of
from ._shards import (
    NOTHING,
    Ranges,
    Shard,
    ShardKey,
    contains,
    fraction,
    hash_key,
    intersect,
    minus,
    ring_assignment,
    union,
)
from ._watching import watcher
from .errors import Conflict, NotFound, RxKubeError
from .events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from .leader import _micro_time
from .operators import default_backoff, observe_on, reflect
from .protocol import Config

if TYPE_CHECKING:
    from .client import Api

__all__ = ["CLAIM_ANNOTATION", "GROUP_LABEL", "ShardMember", "ShardedSource", "fraction", "running"]

log = logging.getLogger(__name__)

GROUP_LABEL = "rxkube.io/shard-group"
"""The label on every member Lease of a group: its value is the group (controller) name."""

CLAIM_ANNOTATION = "rxkube.io/shard-claim"
"""The annotation of a member Lease: the ranges it may be reconciling (a shardSelector)."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _claim_text(ranges: Ranges, key: ShardKey) -> str:
    return Shard(ranges, key).selector() if ranges else ""


def _claim_of(lease: Object) -> Ranges:
    text = ((lease.get("metadata") or {}).get("annotations") or {}).get(CLAIM_ANNOTATION) or ""
    if not text:
        return NOTHING
    try:
        return Shard.parse(text).ranges
    except ValueError:
        # Unreadable: the member may hold anything, so it blocks everything.
        return ((0, 1 << 64),)


@dataclass(slots=True)
class _Peer:
    """Another member's Lease as this replica last saw it."""

    spec: dict[str, Any]
    claim: Ranges
    seen: float  # our clock, when this version of the spec was first seen
    deleted: bool = False

    @property
    def holder(self) -> str:
        return str(self.spec.get("holderIdentity") or "")

    def duration(self, default: float) -> float:
        value = self.spec.get("leaseDurationSeconds")
        return float(value) if isinstance(value, int | float) and value > 0 else default


@dataclass(slots=True)
class _State:
    """What the member holds; guarded by ``ShardMember._lock``."""

    held: Ranges = NOTHING
    draining: Ranges = NOTHING
    pending: Ranges = NOTHING
    pending_since: float | None = None  # start of the write that published ``pending``
    pending_rvs: set[str] = field(default_factory=set)  # our writes since then
    valid_until: float | None = None
    in_flight: Counter[int] = field(default_factory=Counter)  # hashes being reconciled
    stopping: bool = False

    @property
    def claim(self) -> Ranges:
        return union(union(self.held, self.draining), self.pending)


class ShardMember:
    """One replica of a sharded group: its Lease, its view of the others, its ranges.

    Args:
        leases: the Leases API of the namespace the group's Leases live in.
        group: the group's name (the controller's), a DNS label.
        identity: this replica's id, unique in the group; its Lease is ``<group>-<identity>``.
        key: the hashed field, ``"uid"`` or ``"namespace"``.
        lease_duration: seconds after which a member that stopped renewing is taken over.
        renew_deadline: seconds after the start of its last successful renewal at which a
            member stops reconciling; less than ``lease_duration``. A reconcile must end
            within ``lease_duration - renew_deadline`` of that moment.
        retry_period: seconds between renewals (and between attempts to acquire).
        vnodes: points per member on the assignment ring.
        clock: monotonic seconds (injectable for tests).
        wall_clock: seconds since the epoch, for the Lease's timestamps.

    Raises:
        ValueError: a name that is not a DNS label, or durations that are not
            ``lease_duration > renew_deadline > retry_period > 0``.
    """

    def __init__(
        self,
        leases: Api,
        group: str,
        identity: str,
        *,
        key: ShardKey = "uid",
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        vnodes: int = 64,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        for what, value in (("group", group), ("identity", identity)):
            if not isinstance(value, str) or not _DNS_LABEL.match(value):
                raise ValueError(
                    f"a shard {what} must be a DNS label (lowercase letters, digits and '-'), "
                    f"got {value!r}"
                )
        if len(group) + 1 + len(identity) > 253:
            raise ValueError(f"the Lease name {group}-{identity} is longer than 253 characters")
        if not leases.namespace:
            raise ValueError("ShardMember needs the Leases API of one namespace")
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError(
                "ShardMember needs lease_duration > renew_deadline > retry_period > 0; got "
                f"{lease_duration}, {renew_deadline}, {retry_period}"
            )
        Shard(((0, 1),), key)  # validates the key
        if not isinstance(vnodes, int) or vnodes < 1:
            raise ValueError(f"vnodes must be a positive integer, got {vnodes!r}")
        self.leases = leases
        self.group = group
        self.identity = identity
        self.key: ShardKey = key
        self.lease_name = f"{group}-{identity}"
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.vnodes = vnodes
        self._clock = clock
        self._wall_clock = wall_clock
        # Lock order: _lock only; never held across I/O, callbacks or emissions.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._state = _State()
        self._peers: dict[str, _Peer] = {}
        self._own_rv: str | None = None  # our Lease's resourceVersion as last seen in the watch
        self._lease: Object | None = None  # our Lease as last written
        self._view_ready = False
        self._last_live: set[str] = set()
        self._dirty = True  # a write is needed now (claim changed)
        self._subject: BehaviorSubject[Ranges] = BehaviorSubject(NOTHING)
        self._emitted: Ranges = NOTHING
        self._store, self._writer = store(f"leases of shard group {group}")
        self._watch: abc.DisposableBase | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        # What ended the member for good (its Lease watch, or its thread): never reset.
        self._failure: Exception | None = None

    # -- what other code asks -------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The group's Leases, as this replica's watch sees them."""
        return self._store

    def ranges(self) -> Observable[Ranges]:
        """An Observable of the ranges this replica holds: the current value, then each change.

        Emitted on the member's thread; completes after :meth:`stop`. It fails, after
        emitting nothing held, when the member ends for good: its Lease watch failed with
        an error ``default_backoff()`` does not retry (its view of the group would be
        frozen, and it could never take a range again), or its thread raised (a bug).
        The member then renews its Lease no more; :meth:`stop` still releases it.
        """
        return self._subject

    @property
    def held(self) -> Ranges:
        """The ranges this replica reconciles now (empty while it is not valid)."""
        with self._lock:
            return self._state.held if self._valid_locked(self._clock()) else NOTHING

    @property
    def members(self) -> list[str]:
        """The identities of the live members, this one included, as this replica sees them."""
        with self._lock:
            return sorted(self._live_locked(self._clock()))

    def hash_of(self, obj: Object) -> int:
        """The hash of an object's shard key (FNV-1a 64 of its uid or namespace)."""
        return hash_key(obj, self.key)

    def owns(self, obj: Object) -> bool:
        """Whether this replica may reconcile ``obj`` now."""
        hashed = self.hash_of(obj)
        with self._lock:
            return self._valid_locked(self._clock()) and contains(self._state.held, hashed)

    @contextlib.contextmanager
    def reconciling(self, obj: Object) -> Iterator[bool]:
        """Enter around a reconcile of ``obj``: yields whether it may run.

        While the block runs, the object's range is not released: a range leaves this
        replica only after every reconcile in it has left the block.
        """
        hashed = self.hash_of(obj)
        with self._lock:
            state = self._state
            allowed = (
                not state.stopping
                and self._valid_locked(self._clock())
                and contains(state.held, hashed)
            )
            if allowed:
                state.in_flight[hashed] += 1
        try:
            yield allowed
        finally:
            if allowed:
                with self._lock:
                    state.in_flight[hashed] -= 1
                    if not state.in_flight[hashed]:
                        del state.in_flight[hashed]
                    self._wake.notify_all()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> ShardMember:
        """Create or renew this replica's Lease, watch the group and start taking ranges.

        Returns ``self``. Raises ``RuntimeError`` if started already.
        """
        if self._thread is not None:
            raise RuntimeError(f"shard member {self.lease_name} was started already")
        config = Config(label_selector=f"{GROUP_LABEL}={self.group}", page_size=None)
        self._watch = (
            watcher(self.leases, config)
            .pipe(reflect(self._writer), default_backoff())
            .subscribe(self._on_lease_event, self._on_lease_watch_failed)
        )
        self._thread = threading.Thread(
            target=self._run, name=f"rxkube-shard-{self.group}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Leave the group: stop starting reconciles, wait for running ones, release the Lease.

        A reconcile still running after ``timeout`` seconds keeps its ranges claimed: the
        Lease is then left to expire instead of being released, so nobody else starts on
        those objects too early.
        """
        with self._lock:
            self._state.stopping = True
            self._wake.notify_all()
            deadline = self._clock() + timeout
            while self._state.in_flight and self._clock() < deadline:
                self._wake.wait(max(0.0, deadline - self._clock()))
            drained = not self._state.in_flight
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._watch is not None:
            self._watch.dispose()
        if drained and self._lease is not None:
            self._release()
        elif not drained:
            log.warning(
                "shard member %s: reconciles still running after %s s; its Lease is left to expire",
                self.lease_name,
                timeout,
            )
        self._publish(NOTHING)
        self._subject.on_completed()

    # -- the Lease watch (its thread) -------------------------------------------------------

    def _on_lease_event(self, event: Event) -> None:
        # A list is taken in whole, at its end, from the store it has just filled: between
        # two of its items, our own Lease could be listed (confirming a pending claim) while
        # a peer listed later still showed what it was before the watch broke, and so
        # looked expired although it kept renewing.
        if isinstance(event, Init | InitApply):
            return
        now = self._clock()
        with self._lock:
            if isinstance(event, InitDone):
                listed = self._store.state(copy=False)
                for lease in listed:
                    self._observe_locked(lease, now)
                names = {str(lease["metadata"]["name"]) for lease in listed}
                for name, peer in self._peers.items():
                    if name not in names:
                        peer.deleted = True
                self._view_ready = True
            elif isinstance(event, Apply):
                self._observe_locked(event.obj, now)
            elif isinstance(event, Delete):
                name = str(event.obj["metadata"]["name"])
                if name in self._peers:
                    self._peers[name].deleted = True
            self._wake.notify_all()

    def _on_lease_watch_failed(self, error: Exception) -> None:
        # A frozen view would hold pending claims forever (our own resourceVersion never
        # arrives) and never see a leaver: end the member instead, as the elector ends.
        error.add_note(f"the Lease watch of shard member {self.lease_name} ended")
        with self._lock:
            if self._failure is None:
                self._failure = error
            self._wake.notify_all()

    def _observe_locked(self, lease: Object, now: float) -> None:
        meta = lease.get("metadata") or {}
        name = str(meta.get("name", ""))
        if name == self.lease_name:
            rv = str(meta.get("resourceVersion", ""))
            self._own_rv = rv
            return
        spec = lease.get("spec") or {}
        claim = _claim_of(lease)
        peer = self._peers.get(name)
        if peer is None or peer.spec != spec or peer.claim != claim or peer.deleted:
            self._peers[name] = _Peer(dict(spec), claim, now)

    # -- deciding (the member's thread) ------------------------------------------------------

    def _valid_locked(self, now: float) -> bool:
        until = self._state.valid_until
        return self._failure is None and until is not None and now < until

    def _live_locked(self, now: float) -> set[str]:
        live = {self.identity}
        for peer in self._peers.values():
            if peer.holder and now < peer.seen + peer.duration(self.lease_duration):
                live.add(peer.holder)
        return live

    def _blocked_locked(self, at: float) -> Ranges:
        """What other members may be reconciling, judged at our clock time ``at``."""
        blocked = NOTHING
        for peer in self._peers.values():
            if not peer.holder or peer.holder == self.identity:
                continue  # released (or a stale copy of ours)
            if at >= peer.seen + peer.duration(self.lease_duration):
                continue  # expired: it stopped before this
            blocked = union(blocked, peer.claim)
        return blocked

    def _run(self) -> None:
        next_renewal = 0.0  # when the Lease is due for renewal
        next_write = 0.0  # no write before this (after a failure)
        try:
            while not self._stopped.is_set():
                with self._lock:
                    if self._failure is not None:
                        break
                    now = self._clock()
                    self._decide_locked(now)
                    write = now >= next_write and (self._dirty or now >= next_renewal)
                    held = self._state.held if self._valid_locked(now) else NOTHING
                self._publish(held)
                if write and not self._stopped.is_set():
                    if self._renew():
                        next_renewal = self._clock() + self.retry_period
                    else:
                        next_write = self._clock() + min(1.0, self.retry_period / 2)
                with self._lock:
                    if self._stopped.is_set():
                        break
                    now = self._clock()
                    wake_at = next_renewal if not self._dirty else max(next_write, now)
                    if (
                        self._state.pending_since is not None
                        and self._own_rv in self._state.pending_rvs
                    ):
                        wake_at = now  # our view caught up with the claim while we wrote
                    state = self._state
                    if state.valid_until is not None and (state.held or state.pending):
                        wake_at = min(wake_at, state.valid_until)  # to stop at its end
                    if wake_at > now and self._failure is None:
                        self._wake.wait(min(wake_at - now, self.retry_period))
        except Exception as exc:
            with self._lock:
                if self._failure is None:
                    self._failure = exc
        with self._lock:
            failure = self._failure
            if failure is not None:
                # Nothing is written any more: the claim last written stands until stop()
                # releases the Lease (once the reconciles ended) or it expires.
                self._lose_ranges_locked()
                self._state.valid_until = None
        if failure is not None:
            # Not retried: the Lease is renewed no more (the others take over when it
            # expires, or at once if stop() releases it), and whoever follows ranges() ends.
            log.error(
                "shard member %s failed; it takes no ranges any more",
                self.lease_name,
                exc_info=failure,
            )
            self._publish(NOTHING)
            self._subject.on_error(failure)

    def _decide_locked(self, now: float) -> None:
        state = self._state
        if (
            state.valid_until is not None
            and now >= state.valid_until
            and (state.held or state.pending)
        ):
            log.warning(
                "shard member %s: could not renew within %s s; it stops reconciling",
                self.lease_name,
                self.renew_deadline,
            )
            self._lose_ranges_locked()
        if not self._view_ready or state.valid_until is None or not self._valid_locked(now):
            self._drained_locked()  # even cut off: a reconcile may end meanwhile
            return
        live = self._live_locked(now)
        if live != self._last_live:
            log.info("shard member %s: members are now %s", self.lease_name, sorted(live))
            self._last_live = live
        target = NOTHING if state.stopping else ring_assignment(live, self.vnodes)[self.identity]
        # Release what is no longer ours: no new reconciles there from now on.
        dropped = minus(state.held, target)
        if dropped:
            state.held = minus(state.held, dropped)
            state.draining = union(state.draining, dropped)
            log.info("shard member %s: releasing %.1f%%", self.lease_name, _pct(dropped))
        self._drained_locked()
        if state.pending and state.pending_since is not None:
            if self._own_rv is not None and self._own_rv in state.pending_rvs:
                # Our view now contains the write that published the pending claim.
                blocked = self._blocked_locked(state.pending_since)
                take = intersect(minus(state.pending, blocked), target)
                if take != state.pending:
                    log.debug(
                        "shard member %s: %.1f%% still claimed by others; trying again later",
                        self.lease_name,
                        _pct(minus(state.pending, take)),
                    )
                if take:
                    state.held = union(state.held, take)
                    log.info("shard member %s: acquired %.1f%%", self.lease_name, _pct(take))
                state.pending = NOTHING
                state.pending_since = None
                state.pending_rvs = set()
                self._dirty = True
            return
        want = minus(minus(target, state.held), state.draining)
        want = minus(want, self._blocked_locked(now))
        if want and not state.pending:
            log.debug("shard member %s: acquiring %.1f%%", self.lease_name, _pct(want))
            state.pending = want
            self._dirty = True

    def _drained_locked(self) -> None:
        """Forget the draining ranges once no reconcile runs in them: the next write acks them."""
        state = self._state
        if state.draining and not any(contains(state.draining, h) for h in state.in_flight):
            state.draining = NOTHING
            self._dirty = True

    def _lose_ranges_locked(self) -> None:
        """Stop reconciling: what was held drains, what was being acquired is given up.

        The claim keeps covering the reconciles still running (rule 2 of the handover:
        only a write made after they ended may drop their ranges), so the others wait
        for them, or for our Lease to expire.
        """
        state = self._state
        state.draining = union(state.draining, state.held)
        state.held = NOTHING
        state.pending = NOTHING
        state.pending_since = None
        state.pending_rvs = set()
        self._dirty = True

    def _renew(self) -> bool:
        """Write our Lease (renew, and publish the claim); return whether it succeeded."""
        with self._lock:
            claim = self._state.claim
            publishing_pending = bool(self._state.pending) and self._state.pending_since is None
            self._dirty = False
        wall = _micro_time(self._wall_clock())
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": math.ceil(self.lease_duration),
            "renewTime": wall,
        }
        started = self._clock()
        try:
            written = self._write(spec, _claim_text(claim, self.key), wall)
        except RxKubeError as exc:
            log.warning("shard member %s: renewing its Lease failed: %s", self.lease_name, str(exc))
            with self._lock:
                self._dirty = self._dirty or publishing_pending
            return False
        finished = self._clock()
        rv = str((written.get("metadata") or {}).get("resourceVersion", ""))
        with self._lock:
            state = self._state
            if state.valid_until is not None and finished >= state.valid_until:
                # The write landed after our validity ended: the others may have taken our
                # ranges meanwhile. Acquire again like a newcomer.
                self._lose_ranges_locked()
                publishing_pending = False
            state.valid_until = started + self.renew_deadline
            if publishing_pending and state.pending:
                state.pending_since = started
                state.pending_rvs = {rv}
            elif state.pending_since is not None:
                state.pending_rvs.add(rv)
            self._wake.notify_all()
        return True

    def _write(self, spec: dict[str, Any], claim: str, wall: str) -> Object:
        meta: dict[str, Any] = {
            "name": self.lease_name,
            "labels": {GROUP_LABEL: self.group},
            "annotations": {CLAIM_ANNOTATION: claim},
        }
        lease = self._lease
        if lease is None:
            try:
                current = self.leases.get(self.lease_name)
            except NotFound:
                body: dict[str, Any] = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"}
                body |= {"metadata": meta, "spec": spec | {"acquireTime": wall}}
                self._lease = self.leases.create(body)
                return self._lease
            lease = current
        meta["resourceVersion"] = (lease.get("metadata") or {}).get("resourceVersion")
        old_spec = lease.get("spec") or {}
        full = spec | {"acquireTime": old_spec.get("acquireTime") or wall}
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta}
        body["spec"] = full
        try:
            self._lease = self.leases.replace(body)
        except (Conflict, NotFound):
            self._lease = None  # changed (or deleted) by someone else: read it next time
            raise
        return self._lease

    def _release(self) -> None:
        wall = _micro_time(self._wall_clock())
        spec = {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": wall}
        try:
            self._write(spec, "", wall)
        except RxKubeError as exc:
            log.warning(
                "shard member %s: could not release its Lease: %s", self.lease_name, str(exc)
            )

    def _publish(self, held: Ranges) -> None:
        if held != self._emitted:
            self._emitted = held
            self._subject.on_next(held)

    def __repr__(self) -> str:
        return f"<ShardMember {self.lease_name}: {_pct(self.held):.1f}% held>"


def _pct(ranges: Ranges) -> float:
    return 100.0 * fraction(ranges)


# -- the sharded watches ------------------------------------------------------------------------


@dataclass(slots=True)
class _Feed:
    """One watch, started for one acquisition; its objects' keys and what it still holds."""

    ranges: Ranges
    mask: Ranges
    subscription: abc.DisposableBase | None = None
    keys: dict[Any, Object] = field(default_factory=dict)
    buffer: dict[Any, Object] | None = None
    listed: bool = False


class ShardedSource:
    """Watches exactly the ranges a :class:`ShardMember` holds into one store.

    Each acquisition starts one watch whose ``shardSelector`` names only the acquired
    ranges, so only they are listed; a released range's objects leave the store at once
    and its watch closes when none of its ranges is held. Every watch's events are applied
    on one scheduler thread.

    Args:
        api: the resource to watch.
        config: the watcher's configuration (its ``shard`` is replaced per watch).
        member: the member whose held ranges to follow.
        name: the store's name.
    """

    def __init__(self, api: Api, config: Config | None, member: ShardMember, name: str) -> None:
        self.api = api
        self.config = config or Config()
        self.member = member
        self._name = name
        self.reader, self._writer = store(name)
        # Its watches feed the store as one run, from start() to stop() or a failure: the
        # store's writer_status() says whether they follow the server.
        self._run = self._writer.new_run()
        self.updated: Subject[Object] = Subject()
        """Objects added or changed in a held range (the controller's usual trigger)."""
        self.acquired: Subject[Object] = Subject()
        """The objects listed for a newly acquired range (reconciled as "shard acquired")."""
        self._feeds: list[_Feed] = []
        self._held: Ranges = NOTHING
        self._scheduler: EventLoopScheduler | None = None
        self._ranges_subscription: abc.DisposableBase | None = None
        self._ready = False
        self._closed = False

    def start(self) -> None:
        """Follow the member's ranges (call before the member starts, or any time after)."""
        self._run.start()
        name = self._name
        self._scheduler = EventLoopScheduler(
            thread_factory=lambda target: threading.Thread(
                target=target, name=f"rxkube-shards-{name}", daemon=True
            )
        )

        def on_ranges(held: Ranges) -> None:
            self._schedule(lambda: self._reshard(held))

        def on_failed(error: Exception) -> None:
            self._schedule(lambda: self._on_error(error))

        self._ranges_subscription = self.member.ranges().subscribe(on_ranges, on_failed)

    def stop(self) -> None:
        """Close every watch; the subjects complete."""
        if self._ranges_subscription is not None:
            self._ranges_subscription.dispose()
        done = threading.Event()

        def finish() -> None:
            for feed in self._feeds:
                if feed.subscription is not None:
                    feed.subscription.dispose()
            self._feeds = []
            self.updated.on_completed()
            self.acquired.on_completed()
            done.set()

        if self._schedule(finish):
            done.wait(10.0)
        self._run.disposed()
        self._closed = True
        if self._scheduler is not None:
            self._scheduler.dispose()

    @property
    def held(self) -> Ranges:
        """The ranges whose objects the store holds (or is listing)."""
        return self._held

    def _schedule(self, action: Callable[[], None]) -> bool:
        scheduler = self._scheduler
        if scheduler is None or self._closed:
            return False

        def run(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
            action()

        scheduler.schedule(run)
        return True

    # -- on the scheduler thread -----------------------------------------------------------

    def _reshard(self, held: Ranges) -> None:
        added = minus(held, self._held)
        removed = minus(self._held, held)
        self._held = held
        if removed:
            for feed in list(self._feeds):
                feed.mask = intersect(feed.mask, held)
                for key, obj in list(feed.keys.items()):
                    if not contains(feed.mask, self.member.hash_of(obj)):
                        del feed.keys[key]
                        self._writer.apply(Delete(obj))
                if not feed.mask:
                    if feed.subscription is not None:
                        feed.subscription.dispose()
                    self._feeds.remove(feed)
        if added:
            feed = _Feed(added, added)
            self._feeds.append(feed)
            config = replace(self.config, shard=Shard(added, self.member.key))
            # observe_on, not subscribe(scheduler=...), which only sets a default: the
            # events must reach _on_event on the scheduler thread, where _reshard changes
            # the same feeds and every watch applies to the one writer.
            assert self._scheduler is not None
            with self._run.upstream():  # the store says "retrying" while a watch waits
                feed.subscription = (
                    watcher(self.api, config)
                    .pipe(default_backoff(), observe_on(self._scheduler))
                    .subscribe(lambda event: self._on_event(feed, event), self._on_error)
                )

    def _on_error(self, error: Exception) -> None:
        self._run.failed(error, self.updated.on_error)

    def _on_event(self, feed: _Feed, event: Event) -> None:
        if feed not in self._feeds:
            return  # closed meanwhile
        writer = self._writer
        if isinstance(event, Init):
            feed.buffer = {}
        elif isinstance(event, InitApply):
            if feed.buffer is not None and contains(feed.mask, self.member.hash_of(event.obj)):
                feed.buffer[key_of(event.obj)] = event.obj
        elif isinstance(event, InitDone):
            buffer, feed.buffer = feed.buffer or {}, None
            listed = {
                key: obj
                for key, obj in buffer.items()
                if contains(feed.mask, self.member.hash_of(obj))
            }
            if not self._ready:
                # The store's first list: nothing else is in it yet, so one swap fills it
                # and marks it ready.
                writer.apply(Init())
                for obj in listed.values():
                    writer.apply(InitApply(obj))
                writer.apply(InitDone())
                self._ready = True
            else:
                for key in feed.keys.keys() - listed.keys():
                    writer.apply(Delete(feed.keys[key]))
                for obj in listed.values():
                    writer.apply(Apply(obj))
            feed.keys = listed
            subject = self.updated if feed.listed else self.acquired
            feed.listed = True
            for obj in listed.values():
                subject.on_next(obj)
        elif isinstance(event, Apply):
            if contains(feed.mask, self.member.hash_of(event.obj)):
                feed.keys[key_of(event.obj)] = event.obj
                writer.apply(event)
                self.updated.on_next(event.obj)
        elif isinstance(event, Delete) and feed.keys.pop(key_of(event.obj), None) is not None:
            writer.apply(event)


_T = TypeVar("_T")


def running(source: ShardedSource, inner: Observable[_T]) -> Observable[_T]:
    """``inner`` (a controller run) with ``source`` and its member running around it.

    Subscribing starts the source and the member, then ``inner``. When ``inner`` ends (or
    the subscription is disposed) the member leaves the group: it waits for reconciles
    still inside :meth:`ShardMember.reconciling`, releases its Lease, and the watches close.
    """

    def subscribe(
        observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        once = threading.Lock()
        stopped = False

        def leave() -> None:
            nonlocal stopped
            with once:
                if stopped:
                    return
                stopped = True
            source.member.stop()
            source.stop()

        def on_error(error: Exception) -> None:
            leave()
            observer.on_error(error)

        def on_completed() -> None:
            leave()
            observer.on_completed()

        source.start()
        source.member.start()
        subscription = inner.subscribe(
            observer.on_next, on_error, on_completed, scheduler=scheduler
        )

        def dispose() -> None:
            subscription.dispose()
            leave()

        return Disposable(dispose)

    return Observable(subscribe)
