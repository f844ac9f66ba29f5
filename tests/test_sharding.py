"""Sharded controllers: members in one process, then replicas as real processes with real signals.

The multi-process tests run ``examples/sharded_controller.py`` once per replica against
``rxkube.testing.ApiServer``, in both server modes (``shardSelector`` honoured or ignored),
and check from the replicas' JSON lines that every object is reconciled in every phase
and that no two replicas ever reconcile one object at once. Leases are short here (6 s) so
the suite stays small; the default lease's takeover time is measured in
``benchmarks/sharding.py``.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.sharding import Replica, covering, reconciled_since, wait_for
from rxkube import Action, Controller, Shard, ShardSelectorError
from rxkube._shards import HASH_SPACE, contains, hash_key, normalize, size
from rxkube.client import Api
from rxkube.errors import NotFound, ServerError
from rxkube.probes import serve
from rxkube.sharding import CLAIM_ANNOTATION, ShardMember, fraction
from rxkube.testing import ApiServer
from tests.waiting import Sink, eventually

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sharded_controller.py"
NS = "shards"
LEASE = (
    "--lease-duration",
    "6",
    "--renew-deadline",
    "4",
    "--retry-period",
    "1",
    "--log-level",
    "DEBUG",
)
LEASE_DURATION = 6.0


# -- members in one process ----------------------------------------------------------------------


def member(srv: ApiServer, identity: str) -> ShardMember:
    leases = Api(srv.client(), "leases", namespace="default")
    return ShardMember(
        leases, "group", identity, lease_duration=3.0, renew_deadline=2.0, retry_period=0.5
    )


def test_two_members_split_the_space_and_a_leaver_hands_over_at_once() -> None:
    with ApiServer() as srv:
        first, second = member(srv, "a").start(), member(srv, "b").start()
        try:
            wait_for(
                lambda: first.held and second.held and union_size(first, second) == HASH_SPACE,
                what="both members to hold ranges covering the hash space",
            )
            assert size(first.held) + size(second.held) == HASH_SPACE  # disjoint
            assert fraction(first.held) + fraction(second.held) == pytest.approx(1.0)
            assert sorted(first.members) == ["a", "b"]
            lease = srv.get("leases", "group-a", namespace="default")
            assert lease["metadata"]["labels"] == {"rxkube.io/shard-group": "group"}
            assert lease["metadata"]["annotations"][CLAIM_ANNOTATION]
            left = time.monotonic()
            first.stop()
            released = srv.get("leases", "group-a", namespace="default")
            assert released["spec"]["holderIdentity"] == ""
            assert released["metadata"]["annotations"][CLAIM_ANNOTATION] == ""
            wait_for(lambda: size(second.held) == HASH_SPACE, what="the other to take all")
            # Far sooner than the leaver's lease could have expired.
            assert time.monotonic() - left < 3.0
        finally:
            first.stop()
            second.stop()


def test_fraction_is_the_share_of_the_hash_space_of_any_ranges_a_member_emits() -> None:
    assert fraction(()) == 0.0  # what a member that holds nothing emits
    assert fraction([(2**63, HASH_SPACE), (0, 2**62)]) == 0.75
    assert fraction([(0, 2**63), (2**62, HASH_SPACE)]) == 1.0  # a hash in two ranges counts once
    assert fraction(Shard.split(1, 4).ranges) == Shard.split(1, 4).fraction == 0.25


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        (7, "shard ranges are (start, end) pairs, got int 7"),
        ([(0, 1, 2)], "a shard range is a (start, end) pair, got (0, 1, 2)"),
        ([(0, 0.5)], "shard range bounds are integers, got 0.5"),
        ([(5, 3)], "needs 0 <= start < end <= 2**64, got [0x5, 0x3)"),
        ([(0, HASH_SPACE + 1)], "needs 0 <= start < end <= 2**64"),
    ],
)
def test_fraction_refuses_what_is_not_a_range_of_the_hash_space(ranges: Any, message: str) -> None:
    with pytest.raises(ShardSelectorError, match=re.escape(message)):
        fraction(ranges)
    with pytest.raises(ShardSelectorError, match=re.escape(message)):  # as a Shard does
        Shard(ranges)


def union_size(*members: ShardMember) -> int:
    return size(normalize([r for m in members for r in m.held]))


def test_reconciling_is_refused_outside_the_held_ranges_and_after_stop() -> None:
    with ApiServer() as srv:
        only = member(srv, "a").start()
        try:
            wait_for(lambda: size(only.held) == HASH_SPACE, what="the member to hold everything")
            obj = {"metadata": {"uid": "u-1"}}
            with only.reconciling(obj) as allowed:
                assert allowed
            assert only.owns(obj)
        finally:
            only.stop()
        with only.reconciling(obj) as allowed:
            assert not allowed


def test_only_controllers_built_from_an_api_can_be_sharded() -> None:
    with ApiServer() as srv:
        api = Api(srv.client(), "configmaps", namespace="default")
        leases = Api(srv.client(), "leases", namespace="default")
        reader = Controller(api).store
        from reactivex import empty

        with pytest.raises(TypeError, match="only Controller"):
            Controller.for_stream(empty(), reader).sharded("a", leases)
        with pytest.raises(ValueError, match="DNS label"):
            Controller(api).sharded("Not_A_Label", leases)


def test_a_join_relists_only_the_ranges_that_moved_and_each_store_holds_its_share() -> None:
    with ApiServer() as srv:
        for i in range(80):
            srv.create("configmaps", {"metadata": {"name": f"cm-{i}"}}, namespace="default")
        uids = {o["metadata"]["name"]: o["metadata"]["uid"] for o in srv.list("configmaps")}

        def controller(identity: str) -> Controller:
            client = srv.client()
            return Controller(Api(client, "configmaps", namespace="default")).sharded(
                identity,
                Api(client, "leases", namespace="default"),
                lease_duration=3.0,
                renew_deadline=2.0,
                retry_period=0.5,
            )

        def share(c: Controller) -> set[str]:
            assert c.shards is not None
            held = c.shards.held
            return {
                n
                for n, u in uids.items()
                if contains(held, hash_key({"metadata": {"uid": u}}, "uid"))
            }

        def noop(_obj: Any, _ctx: Any) -> Action:
            return Action.await_change()

        first, second = controller("a"), controller("b")
        run_first = first.run(noop, lambda *_: Action.await_change(), None).subscribe()
        run_second = None
        try:
            wait_for(lambda: len(first.store) == 80, what="a to cache everything")
            srv.clear_requests()
            run_second = second.run(noop, lambda *_: Action.await_change(), None).subscribe()
            assert first.shards is not None and second.shards is not None
            wait_for(
                lambda: (
                    bool(second.shards.held)
                    and size(first.shards.held) + size(second.shards.held) == HASH_SPACE
                    and {o["metadata"]["name"] for o in first.store} == share(first)
                    and {o["metadata"]["name"] for o in second.store} == share(second)
                ),
                what="each store to hold exactly its share",
            )
            lists = [
                Shard.parse(r.query["shardSelector"]).ranges
                for r in srv.requests
                if r.resource == "configmaps" and r.verb == "list"
            ]
            # Only the moved ranges were listed: exactly what b now holds.
            assert normalize([x for ranges in lists for x in ranges]) == second.shards.held
            snap = second.metrics.snapshot()
            assert snap.shard_objects == len(second.store)
            assert snap.shard_fraction == pytest.approx(size(second.shards.held) / HASH_SPACE)
        finally:
            run_first.dispose()
            if run_second is not None:
                run_second.dispose()


def test_every_watch_of_a_sharded_source_is_applied_on_its_scheduler_thread() -> None:
    # Its watches' events used to reach it on each watch's own thread, while a reshard
    # changed the same feeds on the scheduler thread ("dictionary changed size during
    # iteration"), and two watches applied to the one writer at once.
    from rxkube.sharding import ShardedSource

    with ApiServer() as srv:
        for i in range(20):
            srv.create("configmaps", {"metadata": {"name": f"cm-{i}"}}, namespace="default")
        first, second = member(srv, "a"), member(srv, "b")
        source = ShardedSource(
            Api(srv.client(), "configmaps", namespace="default"), None, first, "threads"
        )
        threads: set[str] = set()
        seen = Sink()

        def record(obj: Any) -> None:
            threads.add(threading.current_thread().name)
            seen.on_next(obj)

        source.updated.subscribe(record)
        source.acquired.subscribe(record)
        source.start()
        first.start()
        try:
            wait_for(lambda: len(source.reader) == 20, what="a to cache everything")
            second.start()  # a reshard: a's held ranges shrink while its watch runs
            wait_for(lambda: bool(second.held), what="b to take a share")
            for i in range(20):
                srv.replace(
                    "configmaps",
                    {"metadata": {"name": f"cm-{i}"}, "data": {"v": "2"}},
                    namespace="default",
                )
            wait_for(
                lambda: (
                    all(o.get("data") == {"v": "2"} for o in source.reader.state())
                    and 0 < len(source.reader) < 20
                ),
                what="a's store to follow the changes in its share",
            )
        finally:
            second.stop()
            first.stop()
            source.stop()
    assert threads == {"rxkube-shards-threads"}, threads


def test_a_sharded_controllers_store_says_whether_its_watches_follow_the_server() -> None:
    # The Leases on a server of their own, so that only the store's watch meets the faults.
    with ApiServer() as objects, ApiServer() as srv:
        objects.create("configmaps", {"metadata": {"name": "c"}}, namespace="default")
        controller = Controller(Api(objects.client(), "configmaps", namespace="default"))
        controller.sharded(
            "a",
            Api(srv.client(), "leases", namespace="default"),
            lease_duration=3.0,
            renew_deadline=2.0,
            retry_period=0.5,
        )
        cache = controller.store
        assert cache.writer_status().state == "idle"
        run = controller.run(
            lambda *_: Action.await_change(), lambda *_: Action.await_change(), None
        ).subscribe()
        try:
            cache.wait_until_ready(30.0)
            assert len(cache) == 1 and cache.writer_status().state == "running"
            objects.faults.fail_requests(503, count=10**6, verb="watch")
            objects.faults.fail_requests(503, count=10**6, verb="list")
            objects.faults.close_watches(abrupt=True)

            def refused() -> bool:
                status = cache.writer_status()
                return status.state == "retrying" and isinstance(status.error, ServerError)

            eventually(refused, lambda: f"the store to say so: {cache.writer_status()}")
            objects.faults.clear()
            objects.create("configmaps", {"metadata": {"name": "d"}}, namespace="default")
            eventually(lambda: len(cache) == 2, "the retried watch to catch up")
            assert cache.writer_status().state == "running"
        finally:
            run.dispose()
        assert cache.writer_status().state == "stopped"


def livez(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url + "/livez", timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_member_whose_lease_watch_fails_for_good_ends_and_its_share_is_taken_over() -> None:
    with ApiServer() as srv:
        first = member(srv, "a").start()
        second: ShardMember | None = None
        emitted = Sink()
        first.ranges().subscribe(emitted.on_next, emitted.on_error, emitted.on_completed)
        try:
            wait_for(lambda: size(first.held) == HASH_SPACE, what="a to hold everything")
            # The watch reconnects and is answered with a 404: default_backoff() does not
            # retry it, so a's view of the group would stay frozen from here on.
            srv.faults.fail_requests(404, count=1, verb="watch")
            srv.faults.close_watches()
            emitted.wait(lambda s: bool(s.errors), "ranges() to fail")
            assert isinstance(emitted.errors[0], NotFound)
            assert emitted.items[-1] == ()  # nothing held is published first
            assert first.held == ()
            assert not first.owns({"metadata": {"uid": "u-1"}})
            status = first.store.writer_status()  # what a probe given the store reads
            assert status.state == "stopped" and status.error is emitted.errors[0]
            # a renews no more: b takes everything once a's Lease has expired.
            second = member(srv, "b").start()
            wait_for(lambda: size(second.held) == HASH_SPACE, what="b to take a's share")
        finally:
            first.stop()
            if second is not None:
                second.stop()


def test_a_sharded_controller_fails_when_its_lease_watch_fails_and_releases_its_share() -> None:
    # The Leases on a server of their own, so that only the Lease watch meets the fault.
    with ApiServer() as objects, ApiServer() as srv:
        controller = Controller(Api(objects.client(), "configmaps", namespace="default"))
        controller.sharded(
            "a",
            Api(srv.client(), "leases", namespace="default"),
            lease_duration=3.0,
            renew_deadline=2.0,
            retry_period=0.5,
        )
        other = member(srv, "b")
        results = Sink()
        run = controller.run(
            lambda *_: Action.await_change(), lambda *_: Action.await_change(), None
        ).subscribe(results.on_next, results.on_error, results.on_completed)
        try:
            assert controller.shards is not None
            wait_for(lambda: size(controller.shards.held) == HASH_SPACE, what="a to hold all")
            with serve(port=0, controller=controller, metrics=False) as probes:
                assert livez(probes.url) == (200, "ok\n")
                srv.faults.fail_requests(404, count=1, verb="watch")
                srv.faults.close_watches()
                results.wait(lambda s: bool(s.errors), "the controller to fail")
                assert isinstance(results.errors[0], NotFound)
                notes = getattr(results.errors[0], "__notes__", [])
                assert f"the Lease watch of shard member {controller.name}-a ended" in notes
                code, body = livez(probes.url)
                assert code == 503 and "NotFound" in body, body
            # The run ended, so the member left: its Lease is released, not left to expire.
            lease = srv.get("leases", f"{controller.name}-a", namespace="default")
            assert lease["spec"]["holderIdentity"] == ""
            left = time.monotonic()
            other.start()
            wait_for(lambda: size(other.held) == HASH_SPACE, what="b to take a's share")
            assert time.monotonic() - left < 3.0  # sooner than a's Lease could have expired
        finally:
            run.dispose()
            other.stop()


# -- replicas as processes ----------------------------------------------------------------------


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Callable[[str, Path], Replica]]:
    started: list[Replica] = []

    def start(identity: str, kubeconfig: Path) -> Replica:
        replica = Replica(identity, kubeconfig, tmp_path, LEASE)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.kill()
    # Shown by pytest only when the test failed: what each replica held and said last.
    for replica in started:
        log = (tmp_path / f"{replica.identity}.log").read_text().splitlines()
        print(f"--- replica {replica.identity}: exit {replica.process.returncode}")
        print(f"ranges lines: {[line['ranges'] for line in replica.events('ranges')][-5:]}")
        print("\n".join(log[-25:]))


def all_keys(srv: ApiServer) -> dict[str, str]:
    """Every ConfigMap of the namespace: key -> uid."""
    return {f"{NS}/{o['metadata']['name']}": o["metadata"]["uid"] for o in srv.list("configmaps")}


def reconciles(replicas: list[Replica]) -> list[dict[str, Any]]:
    return [line for r in replicas for line in r.events("reconcile")]


def touch(srv: ApiServer, phase: int) -> float:
    """Change every ConfigMap, so each must be reconciled again; returns when it began."""
    began = time.time()
    for cm in srv.list("configmaps", namespace=NS):
        srv.patch(
            "configmaps", cm["metadata"]["name"], {"data": {"phase": str(phase)}}, namespace=NS
        )
    return began


def share_of(replica: Replica, keys: dict[str, str]) -> set[str]:
    """The keys (of ``key -> uid``) in the ranges the replica holds now."""
    held = replica.held
    return {
        k for k, uid in keys.items() if contains(held, hash_key({"metadata": {"uid": uid}}, "uid"))
    }


def assert_no_overlaps(lines: list[dict[str, Any]]) -> None:
    by_key: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_key.setdefault(line["key"], []).append(line)
    for key, intervals in by_key.items():
        intervals.sort(key=lambda line: line["start"])
        for earlier, later in itertools.pairwise(intervals):
            if earlier["replica"] != later["replica"]:
                assert earlier["end"] <= later["start"], (
                    f"{key} reconciled by {earlier['replica']} and {later['replica']} at once: "
                    f"{earlier} / {later}"
                )
        # And a replica never overlaps itself either (the controller's own rule).
        ends: dict[str, float] = {}
        for line in intervals:
            assert line["start"] >= ends.get(line["replica"], 0.0), (key, line)
            ends[line["replica"]] = line["end"]


def kubeconfig_of(srv: ApiServer, path: Path, server: str | None = None) -> Path:
    srv.write_kubeconfig(str(path))
    if server is not None:
        config = yaml.safe_load(path.read_text())
        config["clusters"][0]["cluster"]["server"] = server
        path.write_text(yaml.safe_dump(config))
    return path


def create_configmaps(srv: ApiServer, count: int) -> None:
    srv.create("namespaces", {"metadata": {"name": NS}})
    for i in range(count):
        srv.create(
            "configmaps", {"metadata": {"name": f"cm-{i:03d}"}, "data": {"i": str(i)}}, namespace=NS
        )


@pytest.mark.parametrize("honoured", [True, False], ids=["server-sharded", "old-server"])
def test_replicas_share_the_work_through_kill_join_and_leave(
    honoured: bool, tmp_path: Path, replicas: Callable[[str, Path], Replica]
) -> None:
    with ApiServer(sharded_lists=honoured) as srv:
        create_configmaps(srv, 300)
        keys = all_keys(srv)
        everything = set(keys)
        kubeconfig = kubeconfig_of(srv, tmp_path / "kubeconfig")
        a, b, c = (replicas(name, kubeconfig) for name in ("a", "b", "c"))
        alive = [a, b, c]
        wait_for(lambda: covering(a, b, c), what="a, b and c to split the hash space")
        wait_for(lambda: reconciled_since(alive, everything, 0.0), what="every object reconciled")

        # SIGKILL a: b and c take its share once its Lease expires.
        a_share = share_of(a, keys)
        killed = a.signal(signal.SIGKILL)
        a.wait()
        wait_for(lambda: covering(b, c), what="b and c to take over a's share")
        # Its objects are reconciled at once ("shard acquired"), without any change.
        wait_for(lambda: reconciled_since([b, c], a_share, killed), what="a's share reconciled")
        began = touch(srv, 1)
        wait_for(lambda: reconciled_since([b, c], everything, began), what="phase 1 reconciled")

        # A new replica joins and gets its share.
        d = replicas("d", kubeconfig)
        wait_for(lambda: covering(b, c, d), what="d to get its share")
        began = touch(srv, 2)
        wait_for(lambda: reconciled_since([b, c, d], everything, began), what="phase 2 reconciled")

        # SIGTERM b: it leaves gracefully, the others take over well before its lease ends.
        b_share = share_of(b, keys)
        left = b.signal(signal.SIGTERM)
        assert b.wait() == 0
        wait_for(lambda: covering(c, d), what="c and d to take over b's share")
        handover = time.time() - left
        assert handover < LEASE_DURATION, f"graceful handover took {handover:.1f} s"
        wait_for(lambda: reconciled_since([c, d], b_share, left), what="b's share reconciled")
        began = touch(srv, 3)
        wait_for(lambda: reconciled_since([c, d], everything, began), what="phase 3 reconciled")

        # Each store holds exactly its share; the split is within 1.5x of fair.
        for replica in (c, d):
            dump = replica.store()
            held = normalize(tuple(r) for r in dump["held"])
            share = {
                k
                for k, uid in keys.items()
                if contains(held, hash_key({"metadata": {"uid": uid}}, "uid"))
            }
            assert set(dump["keys"]) == share
            assert len(share) <= 1.5 * len(keys) / 2
        assert not set(c.store()["keys"]) & set(d.store()["keys"])
        c.signal(signal.SIGTERM)
        d.signal(signal.SIGTERM)
        assert c.wait() == 0 and d.wait() == 0
        assert_no_overlaps(reconciles([a, b, c, d]))
        annotated = {
            cm["metadata"]["annotations"]["rxkube.io/reconciled-by"]
            for cm in srv.list("configmaps", namespace=NS)
        }
        assert annotated <= {"c", "d"}


class Proxy:
    """A TCP proxy to the API server that can cut every connection and refuse new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._cut = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_a_replica_cut_off_from_the_api_server_stops_before_the_other_takes_over(
    tmp_path: Path, replicas: Callable[[str, Path], Replica]
) -> None:
    with ApiServer() as srv:
        create_configmaps(srv, 120)
        everything = set(all_keys(srv))
        host, port = srv.url.removeprefix("http://").rsplit(":", 1)
        proxy = Proxy((host, int(port)))
        try:
            direct = kubeconfig_of(srv, tmp_path / "direct")
            proxied = kubeconfig_of(srv, tmp_path / "proxied", f"http://127.0.0.1:{proxy.port}")
            cut_off, other = replicas("p", proxied), replicas("q", direct)
            wait_for(lambda: covering(cut_off, other), what="p and q to split the hash space")
            wait_for(
                lambda: reconciled_since([cut_off, other], everything, 0.0), what="all reconciled"
            )
            p_keys = {line["key"] for line in cut_off.events("reconcile")}
            proxy.cut()
            cut_at = time.time()
            wait_for(lambda: size(other.held) == HASH_SPACE, what="q to take over p's share")
            began = touch(srv, 1)
            wait_for(
                lambda: reconciled_since([other], everything, began), what="q reconciles everything"
            )
            # p's last reconcile of each of its objects ended before q's first one after the cut.
            for key in p_keys:
                p_last = max(
                    (e["end"] for e in cut_off.events("reconcile") if e["key"] == key), default=0.0
                )
                q_first = min(
                    e["start"]
                    for e in other.events("reconcile")
                    if e["key"] == key and e["start"] >= cut_at
                )
                assert p_last < q_first, (key, p_last, q_first)
            assert_no_overlaps(reconciles([cut_off, other]))
        finally:
            proxy.close()
