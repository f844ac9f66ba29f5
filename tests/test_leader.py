"""Leader election: the rules on an injected clock, then failover against ApiServer."""

from __future__ import annotations

import asyncio
import copy
import http.server
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from reactivex.subject import Subject

from rxkube.client import Api, Client
from rxkube.controller import (
    Action,
    Controller,
    ControllerConfig,
    ReconcileFailed,
    ReconcileInterrupted,
)
from rxkube.errors import Conflict, ConsumerError, NotFound, TransportError
from rxkube.leader import LeaderElector
from rxkube.testing import ApiServer
from tests.waiting import Sink, eventually


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLeases:
    """An in-memory Leases API with the server's optimistic concurrency.

    ``cut`` makes every request fail as a broken connection; ``before_write`` runs
    just before a create or replace is applied (to interleave a rival's moves).
    """

    namespace = "default"

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.rv = itertools.count(1)
        self.cut = False
        self.before_write: Callable[[], object] | None = None

    def _check(self) -> None:
        if self.cut:
            raise TransportError("connection refused (test)")

    def _hook(self) -> None:
        hook, self.before_write = self.before_write, None
        if hook is not None:
            hook()

    def get(self, name: str, *, timeout: float | None = None) -> dict[str, Any]:
        self._check()
        if name not in self.objects:
            raise NotFound(404, "NotFound", f"leases {name!r} not found")
        return copy.deepcopy(self.objects[name])

    def create(self, obj: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        self._check()
        self._hook()
        name = obj["metadata"]["name"]
        if name in self.objects:
            raise Conflict(409, "AlreadyExists", f"leases {name!r} already exists")
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(next(self.rv))
        self.objects[name] = stored
        return copy.deepcopy(stored)

    def replace(self, obj: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        self._check()
        self._hook()
        name = obj["metadata"]["name"]
        current = self.objects.get(name)
        if current is None:
            raise NotFound(404, "NotFound", f"leases {name!r} not found")
        if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified")
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(next(self.rv))
        self.objects[name] = stored
        return copy.deepcopy(stored)

    def spec(self, name: str = "lock") -> dict[str, Any]:
        return cast(dict[str, Any], self.objects[name]["spec"])


def elector(api: FakeLeases, clock: Clock, identity: str, **kwargs: Any) -> LeaderElector:
    settings: dict[str, Any] = {
        "lease_duration": 15.0,
        "renew_deadline": 10.0,
        "retry_period": 2.0,
        "clock": clock,
        "wall_clock": clock,
    }
    settings.update(kwargs)
    return LeaderElector(cast(Any, api), "lock", identity=identity, **settings)


# -- acquiring -------------------------------------------------------------------------


def test_first_candidate_creates_the_lease_and_leads() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    assert not a.is_leader
    a.tick()
    assert a.is_leader and a.leader == "a"
    spec = api.spec()
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["renewTime"].endswith("Z") and "." in spec["renewTime"]


def test_lease_duration_is_written_in_whole_seconds_rounded_up() -> None:
    api, clock = FakeLeases(), Clock()
    elector(api, clock, "a", lease_duration=2.5, renew_deadline=2.0, retry_period=0.5).tick()
    assert api.spec()["leaseDurationSeconds"] == 3


def test_a_candidate_does_not_take_a_lease_that_is_being_renewed() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.tick()
    for _ in range(20):  # 40 s: far beyond the lease duration, but "a" keeps renewing
        clock.now += 2.0
        a.tick()
        b.tick()
        assert a.is_leader and not b.is_leader
    assert b.leader == "a"
    assert api.spec()["leaseTransitions"] == 0


def test_a_candidate_takes_over_a_lease_not_renewed_for_its_duration() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.tick()
    b.tick()  # b observes a's lease now
    clock.now += 14.9
    b.tick()
    assert not b.is_leader
    clock.now += 0.1
    b.tick()
    assert b.is_leader
    spec = api.spec()
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1


def test_expiry_is_judged_from_when_this_candidate_saw_the_lease_change() -> None:
    # The holder's renewTime may come from a skewed clock: candidates ignore it.
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    a.tick()
    api.objects["lock"]["spec"]["renewTime"] = "1970-01-01T00:00:00.000000Z"
    b = elector(api, clock, "b")
    b.tick()
    assert not b.is_leader
    clock.now += 15.0
    b.tick()
    assert b.is_leader


def test_of_two_racing_candidates_exactly_one_wins() -> None:
    api, clock = FakeLeases(), Clock()
    old = elector(api, clock, "old")
    old.tick()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.tick()
    b.tick()
    clock.now += 15.0
    # b reads the expired lease, then a takes it before b writes: b's write conflicts.
    api.before_write = a.tick
    b.tick()
    assert a.is_leader and not b.is_leader
    assert api.spec()["holderIdentity"] == "a"


def test_an_empty_holder_is_taken_at_once() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.tick()
    b.tick()
    a.stop()
    assert api.spec()["holderIdentity"] == ""
    b.tick()
    assert b.is_leader


# -- renewing and losing -------------------------------------------------------------


def test_the_leader_renews_keeping_its_acquire_time() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    a.tick()
    acquired = api.spec()["acquireTime"]
    clock.now += 2.0
    a.tick()
    spec = api.spec()
    assert spec["acquireTime"] == acquired
    assert spec["renewTime"] != acquired
    assert a.is_leader


def test_a_leader_that_cannot_renew_stops_leading_at_the_renew_deadline() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    a.tick()
    api.cut = True
    clock.now += 9.9
    a.tick()
    assert a.is_leader
    clock.now += 0.1
    assert not a.is_leader  # computed from the clock, even before the next attempt


def test_the_leader_retries_in_time_to_notice_its_deadline() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    a.tick()
    api.cut = True
    clock.now += 9.0
    assert a.tick() == pytest.approx(1.0)


def test_the_old_leader_stops_before_the_new_one_starts() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.tick()
    b.tick()
    api_for_a_cut = [False]
    both_leading = []
    took_over_at = None
    for step in range(400):  # 40 s in steps of 0.1 s
        clock.now += 0.1
        if step == 10:
            api_for_a_cut[0] = True
        if step % 5 == 0:
            api.cut = api_for_a_cut[0]
            a.tick()
            api.cut = False
            b.tick()
        if a.is_leader and b.is_leader:
            both_leading.append(clock.now)
        if b.is_leader and took_over_at is None:
            took_over_at = clock.now
    assert not both_leading
    assert took_over_at is not None
    assert not a.is_leader


def test_a_leader_that_sees_another_holder_steps_down_at_once() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    a.tick()
    lease = api.objects["lock"]
    lease["spec"]["holderIdentity"] = "intruder"
    lease["metadata"]["resourceVersion"] = "999"
    clock.now += 2.0
    a.tick()
    assert not a.is_leader
    assert a.leader == "intruder"


def test_a_leader_recreates_a_lease_deleted_under_it() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    a.tick()
    del api.objects["lock"]
    clock.now += 2.0
    a.tick()
    assert a.is_leader
    assert api.spec()["holderIdentity"] == "a"


def test_the_leases_api_must_have_a_namespace() -> None:
    api = FakeLeases()
    api.namespace = ""
    with pytest.raises(ValueError, match="namespace"):
        LeaderElector(cast(Any, api), "lock")


def test_a_leader_that_restarts_with_the_same_identity_keeps_the_lease() -> None:
    api, clock = FakeLeases(), Clock()
    elector(api, clock, "a").tick()
    again = elector(api, clock, "a")
    again.tick()
    assert again.is_leader
    assert api.spec()["leaseTransitions"] == 0


# -- announcing --------------------------------------------------------------------


def test_leadership_changes_are_announced_to_callbacks_and_subscribers() -> None:
    api, clock = FakeLeases(), Clock()
    calls: list[str] = []
    a = elector(
        api,
        clock,
        "a",
        on_started_leading=lambda: calls.append("started"),
        on_stopped_leading=lambda: calls.append("stopped"),
        on_new_leader=lambda who: calls.append(f"leader={who}"),
    )
    seen: list[bool] = []
    completed: list[bool] = []
    a.leadership().subscribe(seen.append, on_completed=lambda: completed.append(True))
    a.tick()
    clock.now += 2.0
    a.tick()
    api.cut = True
    clock.now += 10.0
    a.tick()
    api.cut = False
    clock.now += 2.0
    a.tick()
    a.stop()
    assert seen == [False, True, False, True, False]
    assert completed == [True]
    assert calls == [
        "leader=a",
        "started",
        "stopped",
        "started",
        "leader=",
        "stopped",
    ]


def test_a_raising_callback_does_not_stop_the_election() -> None:
    api, clock = FakeLeases(), Clock()

    def boom() -> None:
        raise RuntimeError("callback failed")

    a = elector(api, clock, "a", on_started_leading=boom)
    a.tick()
    assert a.is_leader


@pytest.mark.parametrize(
    "spec",
    [{"holderIdentity": "b", "leaseDurationSeconds": "15"}, {"leaseTransitions": 1.5}, ["b"]],
    ids=["duration-a-string", "transitions-a-float", "spec-a-list"],
)
def test_a_malformed_lease_fails_the_attempt_and_the_candidate_competes_on(spec: Any) -> None:
    api, clock = FakeLeases(), Clock()
    api.objects["lock"] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "lock", "resourceVersion": "1"},
        "spec": spec,
    }
    a = elector(api, clock, "a")
    assert a.tick() > 0  # a failed attempt, as a failed request is
    assert not a.is_leader
    api.objects["lock"]["spec"] = {"holderIdentity": ""}  # released, in good form
    clock.now += 2.0
    a.tick()
    assert a.is_leader


def test_stop_releases_the_lease_only_when_asked() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a", release_on_stop=False)
    a.tick()
    a.stop()
    assert api.spec()["holderIdentity"] == "a"
    assert not a.is_leader


@pytest.mark.parametrize(
    ("durations", "name"),
    [
        ({"lease_duration": 10.0, "renew_deadline": 10.0, "retry_period": 2.0}, "lock"),
        ({"lease_duration": 15.0, "renew_deadline": 10.0, "retry_period": 9.0}, "lock"),
        ({"lease_duration": 15.0, "renew_deadline": 10.0, "retry_period": 0.0}, "lock"),
        ({}, ""),
    ],
)
def test_invalid_settings_are_refused(durations: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError):
        LeaderElector(cast(Any, FakeLeases()), name, **durations)


# -- against ApiServer, with real threads and short durations --------------------------

TIMEOUT = 30.0
FAST: dict[str, Any] = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.25}


class Cuttable:
    """A Leases API whose connection the test can cut (a per-elector broken client)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.namespace = api.namespace
        self.cut = False

    def _check(self) -> None:
        if self.cut:
            raise TransportError("connection reset (cut by the test)")

    def get(self, name: str, *, timeout: float | None = None) -> dict[str, Any]:
        self._check()
        return self.api.get(name)

    def create(self, obj: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        self._check()
        return self.api.create(obj)

    def replace(self, obj: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        self._check()
        return self.api.replace(obj)


class Overlaps:
    """Samples every elector's leadership on one clock reading; records any overlap."""

    def __init__(self, electors: list[LeaderElector]) -> None:
        self.electors = electors
        self.overlaps: list[list[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-overlaps", daemon=True)
        self._thread.start()

    def leaders(self) -> list[str]:
        now = time.monotonic()
        return [
            e.identity
            for e in self.electors
            if (until := e.leading_until) is not None and now < until
        ]

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            leaders = self.leaders()
            if len(leaders) > 1:
                self.overlaps.append(leaders)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)


@pytest.fixture
def srv() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


def test_failover_when_the_leaders_connection_is_cut(srv: ApiServer) -> None:
    client = srv.client()
    apis = [Cuttable(Api(client, "leases", namespace="default")) for _ in range(3)]
    electors = [
        LeaderElector(cast(Any, api), "lock", identity=f"e{i}", **FAST)
        for i, api in enumerate(apis)
    ]
    monitor = Overlaps(electors)
    for e in electors:
        e.start()
    try:
        eventually(lambda: len(monitor.leaders()) == 1)
        first = next(i for i, e in enumerate(electors) if e.is_leader)
        lost = threading.Event()
        electors[first].leadership().subscribe(lambda leading: None if leading else lost.set())
        apis[first].cut = True
        assert lost.wait(TIMEOUT)  # announced by the leader itself, at its renew deadline
        eventually(lambda: any(e.is_leader for i, e in enumerate(electors) if i != first))
        second = next(i for i, e in enumerate(electors) if e.is_leader)
        assert second != first
        lease = srv.get("leases", "lock", namespace="default")
        assert lease["spec"]["holderIdentity"] == f"e{second}"
        assert lease["spec"]["leaseTransitions"] >= 1
        eventually(
            lambda: all(e.leader == f"e{second}" for i, e in enumerate(electors) if i != first)
        )
    finally:
        for e in electors:
            e.stop()
        monitor.stop()
    assert monitor.overlaps == []


def test_a_stopping_leader_hands_over_without_waiting_for_expiry(srv: ApiServer) -> None:
    client = srv.client()
    slow: dict[str, Any] = {"lease_duration": 60.0, "renew_deadline": 40.0, "retry_period": 0.25}
    a = LeaderElector(Api(client, "leases", namespace="default"), "lock", identity="a", **slow)
    b = LeaderElector(Api(client, "leases", namespace="default"), "lock", identity="b", **slow)
    with a:
        assert a.wait_until_leading(TIMEOUT)
        with b:
            eventually(lambda: b.leader == "a")
            a.stop()
            # Far sooner than the 60 s lease: the released Lease is taken at once.
            assert b.wait_until_leading(TIMEOUT)
            assert not a.is_leader


class Blocked:
    """A plain reconcile that runs until the test lets it end; ``running`` while it runs."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.release = threading.Event()

    def __call__(self, _obj: dict[str, Any], _ctx: Any) -> Action:
        self.running.set()
        try:
            self.release.wait(TIMEOUT)
        finally:
            self.running.clear()
        return Action.await_change()


def lease_spec(srv: ApiServer) -> dict[str, Any]:
    return cast(dict[str, Any], srv.get("leases", "lock", namespace="default")["spec"])


def test_a_stopping_leader_keeps_its_lease_until_a_reconcile_past_its_timeout_returns(
    srv: ApiServer,
) -> None:
    # docs/controller.md's graceful stop: stop the run, wait for it, then stop the elector.
    srv.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}})
    client = srv.client()
    reconcile = Blocked()
    elector = LeaderElector(
        Api(client, "leases", namespace="default"), "lock", identity="a", **FAST
    ).start()
    stop: Subject[None] = Subject()
    completed = threading.Event()
    controller = Controller(Api(client, "configmaps", namespace="default")).with_config(
        ControllerConfig(reconcile_timeout=0.1)
    )
    run = controller.run(reconcile, None, None, stop=stop, leader=elector).subscribe(
        on_completed=completed.set
    )
    stopper = threading.Thread(target=elector.stop, args=(TIMEOUT,), name="test-stop")
    try:
        assert reconcile.running.wait(TIMEOUT)
        stop.on_next(None)
        assert completed.wait(TIMEOUT)
        assert reconcile.running.is_set()  # reported as timed out, not waited for
        stopper.start()
        renewed = lease_spec(srv)["renewTime"]
        # The Lease stays held, and renewed, while the reconcile it guards runs.
        eventually(
            lambda: (
                (spec := lease_spec(srv))["holderIdentity"] == "a" and spec["renewTime"] != renewed
            ),
            "the stopping leader to renew its Lease while its reconcile runs",
        )
        assert stopper.is_alive()
        reconcile.release.set()
        stopper.join(TIMEOUT)
        assert not stopper.is_alive()
        assert lease_spec(srv)["holderIdentity"] == ""  # released: a follower leads at once
    finally:
        reconcile.release.set()
        run.dispose()
        if stopper.ident is not None:
            stopper.join(TIMEOUT)
        elector.stop()
        eventually(lambda: not reconcile.running.is_set(), "the reconcile to end")


def test_a_leader_stopped_while_its_reconcile_runs_on_leaves_the_lease_to_expire(
    srv: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    srv.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}})
    client = srv.client()
    reconcile = Blocked()
    elector = LeaderElector(
        Api(client, "leases", namespace="default"), "lock", identity="a", **FAST
    ).start()
    run = (
        Controller(Api(client, "configmaps", namespace="default"))
        .run(reconcile, None, None, leader=elector)
        .subscribe()
    )
    try:
        assert reconcile.running.wait(TIMEOUT)
        run.dispose()  # at once: the reconcile runs on
        with caplog.at_level(logging.WARNING, logger="rxkube.leader"):
            elector.stop(timeout=0.2)
        assert reconcile.running.is_set()
        assert lease_spec(srv)["holderIdentity"] == "a"  # not released under the reconcile
        assert not elector.is_leader
        assert "1 reconciles guarded by Lease lock still run" in caplog.text
    finally:
        reconcile.release.set()
        run.dispose()
        elector.stop()
        eventually(lambda: not reconcile.running.is_set(), "the reconcile to end")


def test_a_stopping_elector_starts_no_reconcile_and_releases_once_the_running_ones_end(
    srv: ApiServer,
) -> None:
    for name in ("a", "b"):
        srv.create("configmaps", {"metadata": {"name": name, "namespace": "default"}})
    client = srv.client()
    started: list[str] = []
    lock = threading.Lock()
    release = threading.Event()

    def reconcile(obj: dict[str, Any], _ctx: Any) -> Action:
        with lock:
            started.append(obj["metadata"]["name"])
        release.wait(TIMEOUT)
        return Action.await_change()

    elector = LeaderElector(
        Api(client, "leases", namespace="default"), "lock", identity="a", **FAST
    ).start()
    # One at a time: "b" waits queued while "a" runs.
    controller = Controller(Api(client, "configmaps", namespace="default")).with_config(
        ControllerConfig(concurrency=1)
    )
    results: list[Any] = []
    run = controller.run(reconcile, None, None, leader=elector).subscribe(results.append)
    stopper = threading.Thread(target=elector.stop, args=(TIMEOUT,), name="test-stop")
    try:
        eventually(lambda: len(started) == 1, "the first reconcile to start")
        stopper.start()
        eventually(lambda: not elector._may_start(), "the elector to begin stopping")
        release.set()
        stopper.join(TIMEOUT)
        assert not stopper.is_alive()
        assert lease_spec(srv)["holderIdentity"] == ""
        eventually(lambda: len(results) == 1, "the first reconcile's result")
        assert len(started) == 1  # the second was not started under a stopping elector
    finally:
        release.set()
        run.dispose()
        if stopper.ident is not None:
            stopper.join(TIMEOUT)
        elector.stop()


def take_the_lease(srv: ApiServer, holder: str) -> None:
    """Write another holder into the Lease, renewed now: as after a partition."""
    lease = srv.get("leases", "lock", namespace="default")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease["spec"].update(holderIdentity=holder, renewTime=now, acquireTime=now)
    srv.replace("leases", lease, namespace="default")


def test_a_replica_that_loses_the_lease_cancels_its_coroutine_reconciles(srv: ApiServer) -> None:
    srv.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}})
    client = srv.client()
    running = threading.Event()

    async def reconcile(_obj: dict[str, Any], _ctx: Any) -> Action:
        running.set()
        try:
            await asyncio.Event().wait()  # a long step: a wait on something external
        finally:
            running.clear()
        return Action.await_change()

    elector = LeaderElector(
        Api(client, "leases", namespace="default"), "lock", identity="a", **FAST
    ).start()
    results = Sink()
    run = (
        Controller(Api(client, "configmaps", namespace="default"))
        .run(reconcile, lambda _o, _e, _c: Action.await_change(), None, leader=elector)
        .subscribe(results.on_next, results.on_error)
    )
    try:
        assert running.wait(TIMEOUT)
        take_the_lease(srv, "b")
        eventually(lambda: not running.is_set(), "the reconcile to end with leadership")
        assert elector.leader == "b" and not elector.is_leader
        results.wait_count(1)
        (failed,) = results.items
        assert isinstance(failed, ReconcileFailed)
        assert isinstance(failed.error, ReconcileInterrupted)
        assert "stopped leading on Lease lock" in str(failed.error)
    finally:
        run.dispose()
        elector.stop()


def test_a_plain_reconcile_running_on_after_the_lease_is_lost_is_logged(
    srv: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    srv.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}})
    client = srv.client()
    reconcile = Blocked()
    elector = LeaderElector(
        Api(client, "leases", namespace="default"), "lock", identity="a", **FAST
    ).start()
    run = (
        Controller(Api(client, "configmaps", namespace="default"))
        .run(reconcile, None, None, leader=elector)
        .subscribe()
    )
    try:
        assert reconcile.running.wait(TIMEOUT)
        with caplog.at_level(logging.WARNING, logger="rxkube.controller"):
            take_the_lease(srv, "b")
            eventually(lambda: elector.leader == "b", "a to see it lost the Lease")
            eventually(
                lambda: "runs on after this replica stopped leading" in caplog.text,
                "the warning that a plain reconcile runs on",
            )
        assert reconcile.running.is_set()  # it cannot be interrupted
    finally:
        reconcile.release.set()
        run.dispose()
        elector.stop()
        eventually(lambda: not reconcile.running.is_set(), "the reconcile to end")


def test_leader_steps_down_when_the_server_fails_its_renewals(srv: ApiServer) -> None:
    client = srv.client()
    electors = [
        LeaderElector(Api(client, "leases", namespace="default"), "lock", identity=f"e{i}", **FAST)
        for i in range(2)
    ]
    monitor = Overlaps(electors)
    for e in electors:
        e.start()
    try:
        eventually(lambda: len(monitor.leaders()) == 1)
        leader = next(e for e in electors if e.is_leader)
        lost = threading.Event()
        leader.leadership().subscribe(lambda leading: None if leading else lost.set())
        srv.faults.fail_requests(503, count=1000, verb="update")
        assert lost.wait(TIMEOUT)
        srv.faults.clear()
        eventually(lambda: len(monitor.leaders()) == 1)
    finally:
        for e in electors:
            e.stop()
        monitor.stop()
    assert monitor.overlaps == []


class RawLeaseServer:
    """A raw HTTP server holding one Lease, stored as sent.

    GET answers the Lease (404 before it exists), POST creates it, PUT replaces it when
    its resourceVersion is the stored one (409 otherwise). Nothing decodes the Lease into
    a typed object, so a null field stays null, as in a server that keeps the JSON it was
    sent (kube-apiserver omits it). With ``hang_renewals``, PUT never answers until the
    server closes: a leader's connection that hangs mid-renewal.
    """

    PATH = "/apis/coordination.k8s.io/v1/namespaces/default/leases"

    def __init__(self, lease: dict[str, Any] | None = None, *, hang_renewals: bool = False) -> None:
        self.lease = lease
        self.hanging = 0
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if outer.lease is None:
                    self._answer(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                else:
                    self._answer(200, outer.lease)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body["metadata"]["resourceVersion"] = "1"
                outer.lease = body
                self._answer(201, body)

            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hang_renewals:
                    outer.hanging += 1
                    outer.release.wait(TIMEOUT)
                    self.close_connection = True
                    return
                stored = (outer.lease or {}).get("metadata", {}).get("resourceVersion")
                if body["metadata"].get("resourceVersion") != stored:
                    self._answer(409, {"kind": "Status", "code": 409, "reason": "Conflict"})
                    return
                body["metadata"]["resourceVersion"] = str(int(stored) + 1)
                outer.lease = body
                self._answer(200, body)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="test-raw-leases", daemon=True
        )

    def __enter__(self) -> RawLeaseServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(TIMEOUT)


def test_a_hanging_renewal_is_cut_off_and_announced_at_the_renew_deadline() -> None:
    renew_deadline = 2.0
    stopped: list[float] = []
    announced: list[tuple[bool, float]] = []
    with RawLeaseServer(hang_renewals=True) as server, Client(server.url) as client:
        elector = LeaderElector(
            Api(client, "leases", namespace="default"),
            "lock",
            identity="a",
            lease_duration=4.0,
            renew_deadline=renew_deadline,
            retry_period=0.5,
            on_stopped_leading=lambda: stopped.append(time.monotonic()),
        )
        elector.leadership().subscribe(
            lambda leading: announced.append((leading, time.monotonic()))
        )
        with elector:
            assert elector.wait_until_leading(TIMEOUT)
            until = elector.leading_until
            assert until is not None
            # The request timeout is 60 s: only cutting the renewal off announces in time.
            eventually(lambda: [leading for leading, _ in announced] == [False, True, False])
            assert server.hanging >= 1
    # As client-go: announced at the deadline, not when the hanging request gives up.
    assert stopped and stopped[0] - until < 1.5
    assert announced[2][1] - until < 1.5


_RIVALS_RENEWAL = "2026-01-01T00:00:00.000000Z"


@pytest.mark.parametrize("holder", ["", "a", "b"], ids=["free", "its-own", "a-rivals"])
@pytest.mark.parametrize(
    "field",
    ["holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime", "leaseTransitions"],
)
def test_a_null_field_of_the_lease_reads_as_absent(field: str, holder: str) -> None:
    """As client-go reads it into a nil pointer: ``leaseTransitions: null`` once made the
    elector add 1 to None and stop competing for good."""
    spec: dict[str, Any] = {
        "holderIdentity": holder,
        "leaseDurationSeconds": 2,
        "acquireTime": _RIVALS_RENEWAL,
        "renewTime": _RIVALS_RENEWAL,
        "leaseTransitions": 3,
        field: None,
    }
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "lock", "namespace": "default", "resourceVersion": "1"},
        "spec": spec,
    }
    clock = Clock()
    with RawLeaseServer(lease) as server, Client(server.url) as client:
        a = LeaderElector(
            Api(client, "leases", namespace="default"),
            "lock",
            identity="a",
            lease_duration=2.0,
            renew_deadline=1.5,
            retry_period=0.5,
            clock=clock,
            wall_clock=clock,
        )
        a.tick()  # reads the Lease; a rival's that it has just seen change is not yet expired
        held_by_rival = spec["holderIdentity"] == "b"
        assert a.is_leader is not held_by_rival
        if held_by_rival:
            clock.now += 2.0
            a.tick()
            assert a.is_leader
        for _ in range(2):  # renewals without a read, from what it wrote last
            clock.now += 0.5
            a.tick()
            assert a.is_leader
        assert server.lease is not None
        written = server.lease["spec"]
        assert None not in written.values(), written
        assert written["holderIdentity"] == "a"
        kept = holder == "a" and spec["holderIdentity"] == "a"
        transitions = spec["leaseTransitions"] or 0
        assert written["leaseTransitions"] == (transitions if kept else transitions + 1)
        if kept and spec["acquireTime"] is not None:
            assert written["acquireTime"] == _RIVALS_RENEWAL


def test_a_slow_leadership_subscriber_does_not_cost_leadership(srv: ApiServer) -> None:
    client = srv.client()
    release = threading.Event()
    seen: list[bool] = []

    def slow(leading: bool) -> None:
        seen.append(leading)
        if leading:
            release.wait(TIMEOUT)  # far longer than the renew deadline

    elector = LeaderElector(
        Api(client, "leases", namespace="default"), "lock", identity="a", **FAST
    )
    elector.leadership().subscribe(slow)
    with elector:
        try:
            assert elector.wait_until_leading(TIMEOUT)
            eventually(lambda: seen == [False, True])  # the subscriber is now stuck in True
            renewals = len([r for r in srv.requests if r.verb == "update"])
            eventually(lambda: len([r for r in srv.requests if r.verb == "update"]) > renewals + 3)
            assert elector.is_leader
        finally:
            release.set()


def test_a_raising_leadership_subscriber_is_unsubscribed_and_the_election_goes_on(
    srv: ApiServer,
) -> None:
    client = srv.client()
    errors: list[BaseException] = []

    def boom(leading: bool) -> None:
        if leading:
            raise RuntimeError("subscriber failed")

    elector = LeaderElector(
        Api(client, "leases", namespace="default"), "lock", identity="a", **FAST
    )
    elector.leadership().subscribe(boom, errors.append)
    with elector:
        assert elector.wait_until_leading(TIMEOUT)
        eventually(lambda: bool(errors))
        renewals = len([r for r in srv.requests if r.verb == "update"])
        eventually(lambda: len([r for r in srv.requests if r.verb == "update"]) > renewals)
        assert elector.is_leader
    assert len(errors) == 1 and isinstance(errors[0], ConsumerError)
    assert isinstance(errors[0].__cause__, RuntimeError)


def test_an_elector_ended_by_a_bug_steps_down_and_fails_its_controller(srv: ApiServer) -> None:
    srv.create("configmaps", {"metadata": {"name": "a", "namespace": "default"}})
    client = srv.client()
    broken = threading.Event()

    def wall_clock() -> float:
        if broken.is_set():
            raise RuntimeError("the wall clock broke")
        return time.time()

    elector = LeaderElector(
        Api(client, "leases", namespace="default"),
        "lock",
        identity="a",
        wall_clock=wall_clock,
        **FAST,
    )
    reconciled = threading.Event()
    errors: list[Exception] = []
    leadership: list[Exception] = []
    elector.leadership().subscribe(on_error=leadership.append)

    def reconcile(_obj: dict[str, Any], _ctx: Any) -> Action:
        reconciled.set()
        return Action.await_change()

    subscription = (
        Controller(Api(client, "configmaps", namespace="default"))
        .run(reconcile, lambda _o, _e, _c: Action.await_change(), None, leader=elector)
        .subscribe(on_error=errors.append)
    )
    try:
        with elector:
            assert reconciled.wait(TIMEOUT)
            broken.set()  # the next renewal raises what no failed request would
            eventually(
                lambda: bool(errors) and bool(leadership), "the run and leadership() to fail"
            )
            assert not elector.is_leader
    finally:
        subscription.dispose()
    assert isinstance(errors[0], RuntimeError) and isinstance(leadership[0], RuntimeError)


def test_only_the_leaders_controller_reconciles_and_a_follower_takes_over(
    srv: ApiServer,
) -> None:
    for name in ("a", "b"):
        srv.create("configmaps", {"metadata": {"name": name, "namespace": "default"}})
    client = srv.client()
    reconciles: list[tuple[str, float]] = []
    lock = threading.Lock()

    def reconcile(obj: dict[str, Any], identity: str) -> Action:
        with lock:
            reconciles.append((identity, time.monotonic()))
        return Action.await_change()

    apis = [Cuttable(Api(client, "leases", namespace="default")) for _ in range(2)]
    electors = [
        LeaderElector(cast(Any, api), "lock", identity=f"r{i}", **FAST).start()
        for i, api in enumerate(apis)
    ]
    subscriptions = [
        Controller(Api(client, "configmaps", namespace="default"))
        .run(reconcile, lambda _o, _e, _c: Action.await_change(), f"r{i}", leader=e)
        .subscribe()
        for i, e in enumerate(electors)
    ]
    try:
        eventually(lambda: len(reconciles) == 2)
        first = next(i for i, e in enumerate(electors) if e.is_leader)
        assert {who for who, _ in reconciles} == {f"r{first}"}
        apis[first].cut = True
        # The follower held both objects queued, with a warm cache: it reconciles them
        # as soon as it leads.
        eventually(lambda: len(reconciles) == 4)
        other = f"r{1 - first}"
        assert [who for who, _ in reconciles[2:]] == [other, other]
        srv.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}})
        eventually(lambda: len(reconciles) == 5)
        assert reconciles[4][0] == other
        until = electors[first].leading_until
        assert until is not None
        assert all(at < until for who, at in reconciles if who == f"r{first}")
    finally:
        for subscription in subscriptions:
            subscription.dispose()
        for e in electors:
            e.stop()
