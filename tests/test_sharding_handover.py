"""Handover safety of a shard member whose Lease writes or Lease watch misbehave.

Each test drives one member's clock by hand (it stands still unless the test moves it)
and reaches the API server either directly, with ``srv.faults``, or through
:class:`LeaseProxy`, a small HTTP proxy that can hold a Lease write on its way, refuse
Lease reads, and serve a Lease list as two pages: the moments a thread race would
otherwise have to hit by chance.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import itertools
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rxkube import Config, Shard, watcher
from rxkube._shards import (
    HASH_SPACE,
    Ranges,
    contains,
    hash_key,
    intersect,
    ring_assignment,
    size,
    union,
)
from rxkube.client import Api, Client
from rxkube.events import Apply, InitDone
from rxkube.sharding import CLAIM_ANNOTATION, GROUP_LABEL, ShardMember
from rxkube.testing import ApiServer
from tests.waiting import TIMEOUT, Sink, eventually

LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
EVERYTHING = "shardRange(object.metadata.uid, '0x0000000000000000', '0x10000000000000000')"
_SECOND_PAGE = "second-page"


class LeaseProxy:
    """An HTTP proxy to an API server, for one member's client.

    ``hold_next_update()`` holds the next Lease write before it is forwarded, until
    ``release()``; ``refuse_reads`` answers Lease lists and watches with 503 (and
    ``refuse_reads_now()`` also ends the watches open); ``split_next_list()`` serves the
    next Lease list of two or more Leases as two pages (sorted by name, one Lease on the
    first), holding the second until ``release()``. ``held`` is set when a held request
    has arrived.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.refuse_reads = False
        self.held = threading.Event()
        self._go = threading.Event()
        self._hold_update = False
        self._split = False
        self._second_page: bytes | None = None
        self._lock = threading.Lock()  # guards _watches and the hold flags
        self._watches: set[http.client.HTTPConnection] = set()  # upstream, being relayed
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def hold_next_update(self) -> None:
        """Hold the next Lease write on its way, until ``release()``."""
        with self._lock:
            self.held.clear()
            self._go.clear()
            self._hold_update = True

    def split_next_list(self) -> None:
        """Serve the next Lease list as two pages, holding the second until ``release()``."""
        with self._lock:
            self.held.clear()
            self._go.clear()
            self._split = True

    def release(self) -> None:
        """Let the held request go on."""
        self._go.set()

    def refuse_reads_now(self) -> None:
        """Refuse Lease lists and watches from now on, and end the open watches."""
        self.refuse_reads = True
        with self._lock:
            watches = list(self._watches)
        for connection in watches:  # a shutdown wakes the relay blocked reading it
            with contextlib.suppress(OSError, AttributeError):  # closed meanwhile
                connection.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """End every relayed request and stop serving."""
        self._go.set()
        self.refuse_reads_now()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(TIMEOUT)

    def _handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        query = parse_qs(parts.query)
        lease_read = req.command == "GET" and parts.path == LEASES
        if lease_read and self.refuse_reads:
            self._send(req, 503, b'{"kind":"Status","apiVersion":"v1","status":"Failure",'
                       b'"reason":"ServiceUnavailable","code":503}')  # fmt: skip
            return
        if lease_read and query.get("continue") == [_SECOND_PAGE]:
            self.held.set()
            self._go.wait(TIMEOUT)
            assert self._second_page is not None
            self._send(req, 200, self._second_page)
            return
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else None
        if req.command == "PUT" and parts.path.startswith(LEASES + "/"):
            with self._lock:
                hold, self._hold_update = self._hold_update, False
            if hold:
                self.held.set()
                self._go.wait(TIMEOUT)
        # Its own connection to the server; and uncompressed answers, to read and rewrite.
        skipped = ("host", "connection", "accept-encoding")
        headers = {k: v for k, v in req.headers.items() if k.lower() not in skipped}
        upstream = http.client.HTTPConnection(*self._upstream, timeout=TIMEOUT)
        try:
            upstream.request(req.command, req.path, body=body, headers=headers)
            resp = upstream.getresponse()
            if "watch" in query:
                with self._lock:
                    self._watches.add(upstream)
                self._relay(req, resp)
                return
            data = resp.read()
            if lease_read and resp.status == 200:
                data = self._maybe_split(data)
            self._send(req, resp.status, data, resp.getheader("Content-Type"))
        except OSError:
            req.close_connection = True  # the server went away: the test is ending
        finally:
            with self._lock:
                self._watches.discard(upstream)
            upstream.close()

    def _maybe_split(self, data: bytes) -> bytes:
        page = json.loads(data)
        items = sorted(page["items"], key=lambda o: o["metadata"]["name"])
        with self._lock:
            if not self._split or len(items) < 2:
                return data
            self._split = False
        self._second_page = json.dumps({**page, "items": items[1:]}).encode()
        first = {**page, "metadata": {"continue": _SECOND_PAGE}, "items": items[:1]}
        return json.dumps(first).encode()

    def _relay(
        self, req: http.server.BaseHTTPRequestHandler, resp: http.client.HTTPResponse
    ) -> None:
        req.send_response(resp.status)
        req.send_header("Content-Type", resp.getheader("Content-Type") or "application/json")
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        req.close_connection = True
        with contextlib.suppress(OSError, ValueError, AttributeError, http.client.HTTPException):
            while chunk := resp.read1(65536):
                req.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                req.wfile.flush()
            req.wfile.write(b"0\r\n\r\n")

    @staticmethod
    def _send(
        req: http.server.BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        content_type: str | None = "application/json",
    ) -> None:
        req.send_response(status)
        req.send_header("Content-Type", content_type or "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        with contextlib.suppress(OSError):
            req.wfile.write(data)


@contextlib.contextmanager
def lease_history(leases: Api, name: str) -> Iterator[Sink]:
    """Every version of one Lease written from now on, as watch events, in order."""
    written = Sink()
    history = watcher(leases, Config(field_selector=f"metadata.name={name}")).subscribe(
        written.on_next, written.on_error
    )
    try:
        written.wait(lambda s: any(isinstance(e, InitDone) for e in s.items), "a list")
        yield written
    finally:
        history.dispose()


def claims(written: Sink) -> list[str]:
    """The claims of the Lease versions written (after the first list)."""
    return [
        e.obj["metadata"]["annotations"][CLAIM_ANNOTATION]
        for e in list(written.items)
        if isinstance(e, Apply)
    ]


def advance_until(now: list[float], step: float, done: Callable[[], object], what: str) -> None:
    """Move a member's clock on by ``step`` until ``done()``, for a write the step makes due.

    A second step is needed when the member read its clock for the due time (as its
    previous write ended) after the first one.
    """
    for _ in range(3):
        now[0] += step
        with contextlib.suppress(AssertionError):
            eventually(done, what, timeout=TIMEOUT / 3)
            return
    raise AssertionError(f"{what}: not after three steps of {step} s")


def uid(i: int) -> dict[str, Any]:
    return {"metadata": {"uid": f"uid-{i}"}}


def peer_lease(group: str, identity: str) -> dict[str, Any]:
    """A member Lease as a live peer with nothing claimed yet writes it."""
    return {
        "metadata": {
            "name": f"{group}-{identity}",
            "labels": {GROUP_LABEL: group},
            "annotations": {CLAIM_ANNOTATION: ""},
        },
        "spec": {"holderIdentity": identity, "leaseDurationSeconds": 15},
    }


def current_claim(srv: ApiServer, name: str) -> str:
    lease = srv.get("leases", name, namespace="default")
    return str(lease["metadata"]["annotations"][CLAIM_ANNOTATION])


def version(srv: ApiServer, name: str) -> str:
    return str(srv.get("leases", name, namespace="default")["metadata"]["resourceVersion"])


def versions(written: Sink) -> list[str]:
    """The resourceVersions of the Lease versions written (after the first list)."""
    return [
        e.obj["metadata"]["resourceVersion"] for e in list(written.items) if isinstance(e, Apply)
    ]


def covering(claim: str, hashed: int) -> bool:
    return bool(claim) and contains(Shard.parse(claim).ranges, hashed)


def test_a_member_that_cannot_renew_keeps_claiming_a_range_until_its_reconcile_there_ends() -> None:
    # It used to drop every range at once, so its first write after the outage published
    # an empty claim: the others could take the range while the reconcile still ran.
    with ApiServer() as srv:
        now = [1000.0]
        leases = Api(srv.client(), "leases", namespace="default")
        member = ShardMember(
            leases, "group", "a", lease_duration=15.0, renew_deadline=10.0, retry_period=0.2,
            clock=lambda: now[0],
        ).start()  # fmt: skip
        ranges = Sink()
        subscription = member.ranges().subscribe(ranges.on_next, ranges.on_error)
        try:
            ranges.wait(lambda s: size(s.items[-1]) == HASH_SPACE, "the lone member to hold all")
            obj = srv.create("configmaps", {"metadata": {"name": "c"}})
            hashed = member.hash_of(obj)
            with member.reconciling(obj) as allowed, lease_history(leases, "group-a") as written:
                assert allowed
                srv.faults.fail_requests(503, count=10**6, verb="update")
                now[0] += 11.0  # past renew_deadline since the last successful renewal
                ranges.wait(lambda s: s.items[-1] == (), "the member to stop reconciling")
                with member.reconciling(obj) as again:
                    assert not again  # no reconcile starts while it is not valid
                before = version(srv, "group-a")  # what it wrote last: updates fail now
                srv.faults.clear()
                advance_until(
                    now,
                    1.0,
                    lambda: version(srv, "group-a") != before,
                    "a renewal after the outage",
                )
                after = version(srv, "group-a")
                written.wait(lambda s: after in versions(s), "the history to show it")
                assert member.held == ()  # valid again, but it re-acquires like a newcomer
                assert all(covering(c, hashed) for c in claims(written)), claims(written)
            # The reconcile ended: the range is acknowledged and acquired again.
            eventually(lambda: size(member.held) == HASH_SPACE, "the member to take all again")
        finally:
            subscription.dispose()
            member.stop()


def test_a_renewal_that_lands_late_keeps_claiming_a_released_range_until_its_reconcile_ends() -> (
    None
):
    # It used to drop every range, the draining ones too: its next write claimed only what
    # it acquired again, and the range it had released, with a reconcile still running in
    # it, was free for the member it was released to.
    with ApiServer() as srv:
        proxy = LeaseProxy(srv.url)
        client = Client(proxy.url, token=srv.token)
        now = [1000.0]
        leases = Api(srv.client(), "leases", namespace="default")
        member = ShardMember(
            Api(client, "leases", namespace="default"), "group", "a",
            lease_duration=15.0, renew_deadline=10.0, retry_period=0.2, clock=lambda: now[0],
        ).start()  # fmt: skip
        split = ring_assignment(["a", "b"], member.vnodes)
        obj = next(
            o for i in itertools.count() if contains(split["b"], hash_key(o := uid(i), "uid"))
        )
        hashed = member.hash_of(obj)
        ranges = Sink()
        subscription = member.ranges().subscribe(ranges.on_next, ranges.on_error)
        try:
            ranges.wait(lambda s: size(s.items[-1]) == HASH_SPACE, "the lone member to hold all")
            with member.reconciling(obj) as allowed, lease_history(leases, "group-a") as written:
                assert allowed
                srv.create("leases", peer_lease("group", "b"), namespace="default")
                ranges.wait(lambda s: s.items[-1] == split["a"], "a to release b's share")
                proxy.hold_next_update()
                advance_until(now, 0.2, proxy.held.is_set, "a renewal to reach the proxy")
                now[0] = 1010.1  # it lands after the validity it was to extend ended (1010)
                proxy.release()
                ranges.wait(lambda s: s.items[-1] == (), "a to stop reconciling")
                late = version(srv, "group-a")
                advance_until(
                    now, 0.2, lambda: late in versions(written)[:-1], "a write after the late one"
                )
                assert member.held == ()  # valid, but it acquires again like a newcomer
                assert all(covering(c, hashed) for c in claims(written)), claims(written)
            # The reconcile ended: b's share is acknowledged, and a's share taken again.
            ranges.wait(lambda s: s.items[-1] == split["a"], "a to take its share again")
            eventually(
                lambda: current_claim(srv, "group-a") == Shard(split["a"]).selector(),
                "a to acknowledge the release of b's share",
            )
        finally:
            subscription.dispose()
            member.stop()
            client.close()
            proxy.close()


def test_no_range_is_held_by_two_members_when_a_lease_watch_relists_in_pages() -> None:
    # A member used to take in a relist item by item: with its own Lease listed, its
    # pending claim counted as seen, while the peers listed after it still looked as they
    # did before the watch broke; a peer that had kept renewing looked expired.
    with ApiServer() as srv:
        proxy = LeaseProxy(srv.url)
        a_client = Client(proxy.url, token=srv.token)
        now = [1000.0]
        b = ShardMember(
            Api(srv.client(), "leases", namespace="default"), "g", "b",
            lease_duration=60.0, renew_deadline=40.0, retry_period=1.0,
        )  # fmt: skip
        a = ShardMember(
            Api(a_client, "leases", namespace="default"), "g", "a",
            lease_duration=60.0, renew_deadline=40.0, retry_period=1.0, clock=lambda: now[0],
        )  # fmt: skip
        overlaps: list[str] = []

        def check(held: Ranges) -> None:
            both = intersect(held, b.held)
            if both:
                overlaps.append(f"a took {size(both) / HASH_SPACE:.0%} of the space b holds")

        def split() -> bool:
            return bool(
                a.held and b.held
                and size(union(a.held, b.held)) == HASH_SPACE
                and not intersect(a.held, b.held)
            )  # fmt: skip

        watching = a.ranges().subscribe(check)
        try:
            b.start()
            eventually(lambda: size(b.held) == HASH_SPACE, "b to hold everything")
            a.start()
            eventually(split, "a and b to split the space")
            # a's Lease watch breaks; on a's clock more than b's lease duration passes.
            proxy.refuse_reads_now()
            renewed = version(srv, "g-b")
            now[0] += 61.0
            eventually(
                lambda: srv.get("leases", "g-a", namespace="default")["metadata"][
                    "annotations"
                ][CLAIM_ANNOTATION] == EVERYTHING,
                "a to claim everything as pending (b looks expired to it)",
            )  # fmt: skip
            # b renews meanwhile (a sees that only through the relist): a clock 60 times as
            # fast as b's is no lag that a Lease's margin can cover.
            eventually(lambda: version(srv, "g-b") != renewed, "b to renew meanwhile")
            # The watch comes back: its relist lists a's own Lease first, then b's, held.
            proxy.split_next_list()
            proxy.refuse_reads = False
            eventually(proxy.held.is_set, "a's relist to ask for its second page")
            # a's view now has its own write and b as it was: a decision on it would come
            # at once. Nothing signals its absence, so this waits a bounded time for it.
            with contextlib.suppress(AssertionError):
                eventually(lambda: overlaps, "a decision on half a relist", timeout=2.0)
            proxy.release()
            eventually(split, "a and b to split the space again")
            assert overlaps == [], overlaps
        finally:
            watching.dispose()
            a.stop()
            b.stop()
            a_client.close()
            proxy.close()
