"""The client against misbehaving servers: every malformed answer is a typed error.

Each server here is a small raw HTTP server on a socket, scripted by the test: it answers
what kube-apiserver never would (oversized lines, lists of the wrong shape, unreadable
Retry-After, silence after the headers, ``Connection: close`` watches) and the client must
turn each into a typed ``rxkube.errors`` exception, retry it when trying again can help,
and close every thread and socket it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import random
import socket
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from rxkube import ExponentialBackoff, reflect, store, watcher
from rxkube._http import Response
from rxkube.aio import AsyncClient
from rxkube.client import Api, Client
from rxkube.errors import ApiError, ConfigError, DecodeError, TooManyRequests, TransportError
from rxkube.events import Event, InitDone
from rxkube.operators import backoff
from rxkube.protocol import Config
from rxkube.testing import ApiServer
from tests.waiting import eventually

# -- a scripted raw HTTP server ------------------------------------------------------------


@dataclass
class Request:
    """One request as the raw server read it."""

    method: str
    target: str
    headers: dict[str, str]

    @property
    def is_watch(self) -> bool:
        return "watch=1" in self.target


Handler = Callable[[Request, socket.socket], bool]
"""Writes an answer to the socket; returns whether the connection may serve another request."""


@dataclass
class RawHttpServer:
    """A socket server that hands every request to ``handler``, one thread per connection.

    Only for behaviour a real API server never shows. ``requests`` records what was asked;
    ``connections`` counts the sockets still open on the server side; ``clients`` (see
    ``pods_api``) are closed first when it closes.
    """

    handler: Handler
    requests: list[Request] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)
    _sockets: set[socket.socket] = field(default_factory=set)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._spawn(self._accept, "test-raw-accept")

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._sockets.add(conn)
            self._spawn(self._serve, "test-raw-conn", conn)

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while not self._stopped.is_set():
                line = reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                request = Request(method, target, headers)
                with self._lock:
                    self.requests.append(request)
                if not self.handler(request, conn):
                    return
        except OSError:
            return
        finally:
            reader.close()
            self._forget(conn)

    def _forget(self, conn: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(conn)
        conn.close()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._sockets)

    def peer_closed_all(self) -> bool:
        """Whether every connection the client opened has been closed by the client."""
        with self._lock:
            return not self._sockets

    def close(self) -> None:
        # Closed, not left to the collector: whatever still holds a retried error (a test's
        # list of them) holds through its traceback the watch run and its client, whose pool
        # keeps an idle connection open past the leak check.
        for client in self.clients:
            client.close()
        self._stopped.set()
        self._listener.close()
        with self._lock:
            for conn in self._sockets:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5.0)
        assert not any(t.is_alive() for t in self._threads), "raw server threads still running"


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], RawHttpServer]]:
    servers: list[RawHttpServer] = []

    def start(handler: Handler) -> RawHttpServer:
        server = RawHttpServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def answer(
    conn: socket.socket,
    body: Any,
    status: str = "200 OK",
    headers: dict[str, str] | None = None,
) -> bool:
    """Send a complete response with a Content-Length; ``body`` is bytes or JSON-encoded."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(data)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    conn.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + data)
    return True


def pod(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": rv}}


def pod_list(items: list[Any], rv: str = "10") -> dict[str, Any]:
    return {
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": rv},
        "items": items,
    }


def start_chunked(conn: socket.socket) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )


def chunk(conn: socket.socket, data: bytes) -> None:
    conn.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def hold(conn: socket.socket, until: threading.Event | None = None) -> bool:
    """Keep the connection open without a byte until the client closes it (or ``until``)."""
    conn.settimeout(0.1)
    while until is None or not until.is_set():
        try:
            if conn.recv(1) == b"":
                return False
        except TimeoutError:
            continue
        except OSError:
            return False
    return False


def fast_retries(retries: list[BaseException]) -> Callable[[Any], Any]:
    policy = ExponentialBackoff(initial=0.01, max_delay=0.05, jitter=0.0)
    return backoff(policy, on_retry=lambda error, _delay: retries.append(error))


def pods_api(server: RawHttpServer) -> Api:
    """The pods ``Api`` of a client of ``server``, closed when the server closes."""
    client = Client(server.url, request_timeout=30.0)
    server.clients.append(client)
    return Api(client, "pods", namespace="default")


def run_until_ready(api: Api, retries: list[BaseException]) -> dict[str, Any]:
    """Watch ``api`` into a store with fast retries until it is ready; return its objects."""
    reader, writer = store("pods")
    errors: list[Exception] = []
    subscription = (
        watcher(api, Config(page_size=None))
        .pipe(reflect(writer), fast_retries(retries))
        .subscribe(on_error=errors.append)
    )
    try:
        reader.wait_until_ready(timeout=10)
    finally:
        subscription.dispose()
    assert errors == []
    return {obj["metadata"]["name"]: obj for obj in reader.state()}


# -- malformed lists and events are decode errors, retried ---------------------------------


MALFORMED_LISTS: list[Any] = [
    pod_list(["not an object"]),
    pod_list([{"metadata": {"namespace": "default", "resourceVersion": "3"}}]),
    pod_list([{"metadata": "x"}]),
    {"kind": "PodList", "metadata": "x", "items": []},
    {"kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": {"a": {}}},
    [pod("a", "1")],
]


def bad_then_good(bad: Any) -> Handler:
    """Answers the first list with ``bad``, later ones with one pod; holds every watch."""
    lists = 0

    def handler(request: Request, conn: socket.socket) -> bool:
        nonlocal lists
        if request.is_watch:
            return hold(conn)
        lists += 1
        return answer(conn, bad if lists == 1 else pod_list([pod("web", "5")]))

    return handler


@pytest.mark.parametrize("bad", MALFORMED_LISTS)
def test_a_malformed_list_is_a_decode_error_and_the_watch_retries(
    serve: Callable[[Handler], RawHttpServer], bad: Any
) -> None:
    server = serve(bad_then_good(bad))
    retries: list[BaseException] = []
    objects = run_until_ready(pods_api(server), retries)
    assert list(objects) == ["web"]
    assert len(retries) == 1 and isinstance(retries[0], DecodeError)
    assert "list pods in default" in str(retries[0])


def test_a_kept_log_record_of_a_retry_does_not_keep_the_disposed_watch(
    serve: Callable[[Handler], RawHttpServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(bad_then_good(MALFORMED_LISTS[3]))
    retries: list[BaseException] = []
    reader, writer = store("pods")
    subscription = (
        watcher(pods_api(server), Config(page_size=None))
        .pipe(reflect(writer), fast_retries(retries))
        .subscribe(on_error=lambda e: None)
    )
    reader.wait_until_ready(timeout=10)
    subscription.dispose()
    eventually(lambda: not rxkube_threads(), lambda: f"threads left: {rxkube_threads()}", 5)
    held = weakref.ref(writer)
    del reader, writer, subscription, retries
    gc.collect()
    # caplog keeps the records, as a MemoryHandler does, and the record is there.
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert held() is None, "a log record keeps the disposed watch's store alive"


def raw_pod_list(items: list[bytes], rv: str) -> bytes:
    """A list page as kube-apiserver encodes one, around items given as bytes."""
    head = b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"%s"},"items":['
    return head % rv.encode() + b",".join(items) + b"]}\n"


def labelled(i: int, version: str) -> bytes:
    meta = {"name": f"p{i}", "namespace": "default", "resourceVersion": version}
    return orjson.dumps({"metadata": {**meta, "labels": {"version": version}}})


@pytest.mark.parametrize(
    "garbled",
    [
        b'{"metadata":{"name":5,"resourceVersion":"2"}}',
        b'{"metadata":{"name":"p5","resourceVersion":tru}}',
        b'{"metadata":{"name":"p\xff","resourceVersion":"2"}}',
    ],
    ids=["malformed", "not-json", "not-utf8"],
)
def test_a_garbled_item_in_the_middle_of_a_relist_page_leaves_the_old_state_served(
    serve: Callable[[Handler], RawHttpServer], garbled: bytes
) -> None:
    # The first list is version 1 of ten pods; its watch ends with 410 Gone at once; the
    # relist's page has version 2 with item 5 garbled; the retry's page is all of version 2.
    lists = 0
    v1 = raw_pod_list([labelled(i, "1") for i in range(10)], "10")
    bad = raw_pod_list([labelled(i, "2") if i != 5 else garbled for i in range(10)], "20")
    v2 = raw_pod_list([labelled(i, "2") for i in range(10)], "20")
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}

    def handler(request: Request, conn: socket.socket) -> bool:
        nonlocal lists
        if request.is_watch:
            start_chunked(conn)
            if "resourceVersion=10" in request.target:
                chunk(conn, orjson.dumps(gone) + b"\n")
                chunk(conn, b"")
                return False
            return hold(conn)
        lists += 1
        return answer(conn, {1: v1, 2: bad}.get(lists, v2))

    server = serve(handler)
    reader, writer = store("pods")
    retries: list[BaseException] = []
    # What readers saw each time an event had gone through the writer.
    seen: list[list[str]] = []

    def on_event(_event: Event) -> None:
        seen.append(sorted(o["metadata"]["labels"]["version"] for o in reader.state()))

    subscription = (
        watcher(pods_api(server), Config(page_size=None))
        .pipe(reflect(writer), fast_retries(retries))
        .subscribe(on_event)
    )
    try:
        eventually(
            lambda: lists >= 3 and bool(seen) and seen[-1] == ["2"] * 10, "the relisted store"
        )
    finally:
        subscription.dispose()
    assert len(retries) == 1 and isinstance(retries[0], DecodeError), retries
    assert "list pods in default" in str(retries[0])
    if garbled.startswith(b'{"metadata":{"name":5'):
        assert "item 5 of the page" in str(retries[0])
        assert "metadata.name" in str(retries[0])
    else:
        assert "is not JSON" in str(retries[0])
    # Never a mix: empty through the first list (Init, ten items), then its ten pods,
    # served on through the failed relist and the retry's, until the retry's swap.
    ready = seen.index(["1"] * 10)
    swapped = seen.index(["2"] * 10)
    assert ready == 11 and all(s == [] for s in seen[:ready]), seen
    assert all(s == ["1"] * 10 for s in seen[ready:swapped]), seen
    assert all(s == ["2"] * 10 for s in seen[swapped:]), seen


@pytest.mark.parametrize(
    "line",
    [
        {"type": "ADDED", "object": "a string"},
        {"type": "MODIFIED", "object": {"metadata": {"resourceVersion": "12"}}},
        {"type": "DELETED", "object": {"metadata": {"name": "x", "labels": "x"}}},
        {"type": "SURPRISE", "object": pod("web", "12")},
    ],
)
def test_a_malformed_watch_event_is_a_decode_error_and_the_watch_relists(
    serve: Callable[[Handler], RawHttpServer], line: Any
) -> None:
    watches = 0

    def handler(request: Request, conn: socket.socket) -> bool:
        nonlocal watches
        if not request.is_watch:
            return answer(conn, pod_list([pod("web", "5")] if watches else []))
        watches += 1
        start_chunked(conn)
        if watches == 1:
            chunk(conn, orjson.dumps(line) + b"\n")
        return hold(conn)

    server = serve(handler)
    reader, writer = store("pods")
    retries: list[BaseException] = []
    events: list[Event] = []
    subscription = (
        watcher(pods_api(server), Config(page_size=None))
        .pipe(reflect(writer), fast_retries(retries))
        .subscribe(events.append)
    )
    try:
        eventually(lambda: sum(isinstance(e, InitDone) for e in events) == 2, "the second list")
    finally:
        subscription.dispose()
    assert len(retries) == 1 and isinstance(retries[0], DecodeError)
    assert reader.get("web", "default") is not None


# -- Retry-After the client cannot read, or should not obey --------------------------------


@pytest.mark.parametrize(
    ("header", "details"),
    [
        (None, "soon"),
        (None, [5]),
        ("inf", None),
        ("NaN", None),
        ("-5", None),
        ("soon", "later"),
    ],
)
def test_an_unreadable_retry_after_is_a_typed_error_retried_at_the_policy_delay(
    serve: Callable[[Handler], RawHttpServer], header: str | None, details: Any
) -> None:
    lists = 0

    def handler(request: Request, conn: socket.socket) -> bool:
        nonlocal lists
        if request.is_watch:
            return hold(conn)
        lists += 1
        if lists == 1:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": 429,
                "reason": "TooManyRequests",
                "message": "slow down",
                "details": {"retryAfterSeconds": details},
            }
            headers = {"Retry-After": header} if header is not None else {}
            return answer(conn, status, "429 Too Many Requests", headers)
        return answer(conn, pod_list([pod("web", "5")]))

    server = serve(handler)
    retries: list[BaseException] = []
    assert list(run_until_ready(pods_api(server), retries)) == ["web"]
    assert len(retries) == 1 and isinstance(retries[0], TooManyRequests)
    assert retries[0].retry_after is None


def test_an_error_event_with_unreadable_retry_after_seconds_is_retried(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    watches = 0

    def handler(request: Request, conn: socket.socket) -> bool:
        nonlocal watches
        if not request.is_watch:
            return answer(conn, pod_list([pod("web", "5")] if watches else []))
        watches += 1
        start_chunked(conn)
        if watches == 1:
            status = {"kind": "Status", "code": 429, "details": {"retryAfterSeconds": "soon"}}
            chunk(conn, orjson.dumps({"type": "ERROR", "object": status}) + b"\n")
        return hold(conn)

    server = serve(handler)
    events: list[Event] = []
    retries: list[BaseException] = []
    subscription = (
        watcher(pods_api(server), Config(page_size=None))
        .pipe(fast_retries(retries))
        .subscribe(events.append)
    )
    try:
        eventually(lambda: sum(isinstance(e, InitDone) for e in events) == 2, "the second list")
    finally:
        subscription.dispose()
    assert [type(e) for e in retries] == [TooManyRequests]


# -- a line that never ends ----------------------------------------------------------------


def endless_line(conn: socket.socket, sent: list[int], stop: threading.Event) -> bool:
    """A watch that sends bytes without a newline until the client hangs up (or ``stop``)."""
    start_chunked(conn)
    block = b"x" * 65536
    try:
        while not stop.is_set():
            chunk(conn, block)
            sent[0] += len(block)
    except OSError:
        pass
    return False


def test_a_watch_line_over_the_limit_is_a_decode_error(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    sent = [0]
    stop = threading.Event()
    server = serve(lambda _request, conn: endless_line(conn, sent, stop))
    try:
        with (
            Client(server.url) as client,
            client.stream("/w", idle_timeout=10, max_line_bytes=1 << 20) as stream,
            pytest.raises(DecodeError, match=r"longer than 1048576 bytes") as info,
        ):
            list(stream.lines())
        assert "GET /w" in str(info.value)
    finally:
        stop.set()
    # The client stopped reading soon after the limit, instead of buffering on.
    assert sent[0] < 64 << 20


def test_the_default_watch_line_limit_is_client_gos_16_mib(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    sent = [0]
    stop = threading.Event()
    server = serve(lambda _request, conn: endless_line(conn, sent, stop))
    try:
        with (
            Client(server.url) as client,
            client.stream("/w", idle_timeout=10) as stream,
            pytest.raises(DecodeError, match=r"longer than 16777216 bytes"),
        ):
            list(stream.lines())
    finally:
        stop.set()


def test_a_line_just_under_the_limit_is_delivered(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    line = b"y" * 4095

    def handler(_request: Request, conn: socket.socket) -> bool:
        start_chunked(conn)
        for piece in (line[:1000], line[1000:] + b"\n", b"z" * 4095):
            chunk(conn, piece)
        conn.sendall(b"0\r\n\r\n")
        return True

    server = serve(handler)
    with (
        Client(server.url) as client,
        client.stream("/w", idle_timeout=10, max_line_bytes=4096) as stream,
    ):
        assert list(stream.lines()) == [line, b"z" * 4095]


def test_the_watcher_takes_its_line_limit_from_config_and_retries(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    watches = 0
    stop = threading.Event()
    sent = [0]

    def handler(request: Request, conn: socket.socket) -> bool:
        nonlocal watches
        if not request.is_watch:
            return answer(conn, pod_list([pod("web", "5")] if watches else []))
        watches += 1
        if watches == 1:
            return endless_line(conn, sent, stop)
        start_chunked(conn)
        return hold(conn)

    server = serve(handler)
    events: list[Event] = []
    retries: list[BaseException] = []
    subscription = (
        watcher(pods_api(server), Config(page_size=None, max_event_bytes=100_000))
        .pipe(fast_retries(retries))
        .subscribe(events.append)
    )
    try:
        eventually(lambda: sum(isinstance(e, InitDone) for e in events) == 2, "the second list")
    finally:
        subscription.dispose()
        stop.set()
    assert len(retries) == 1 and isinstance(retries[0], DecodeError)
    assert "100000 bytes" in str(retries[0])


def test_config_refuses_a_line_limit_that_is_not_a_positive_integer() -> None:
    for bad in (0, -1, 1.5, True, "16M"):
        with pytest.raises(ValueError, match="max_event_bytes"):
            Config(max_event_bytes=bad)  # type: ignore[arg-type]


# -- dispose interrupts whatever request is in flight --------------------------------------


def rxkube_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rxkube-watch")]


def dispose_ends_thread_and_connection_within_a_second(
    server: RawHttpServer, subscription: Any, requested: threading.Event
) -> None:
    assert requested.wait(10), "the request never reached the server"
    assert rxkube_threads()
    started = time.monotonic()
    subscription.dispose()
    eventually(
        lambda: not rxkube_threads() and server.peer_closed_all(),
        lambda: (
            f"after dispose: threads {rxkube_threads()}, "
            f"{server.open_connections} connection(s) still open"
        ),
        1.5,
    )
    assert time.monotonic() - started < 1.5


def _list_never_answers(_request: Request, conn: socket.socket, requested: threading.Event) -> bool:
    requested.set()
    return hold(conn)


def _list_body_stalls_midway(
    _request: Request, conn: socket.socket, requested: threading.Event
) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b'{"kind": "PodList"')
    requested.set()
    return hold(conn)


def _watch_headers_never_come(
    request: Request, conn: socket.socket, requested: threading.Event
) -> bool:
    if not request.is_watch:
        return answer(conn, pod_list([]))
    requested.set()
    return hold(conn)


@pytest.mark.parametrize(
    "stall", [_list_never_answers, _list_body_stalls_midway, _watch_headers_never_come]
)
def test_dispose_interrupts_a_request_that_stalls(
    serve: Callable[[Handler], RawHttpServer],
    stall: Callable[[Request, socket.socket, threading.Event], bool],
) -> None:
    requested = threading.Event()
    server = serve(lambda request, conn: stall(request, conn, requested))
    subscription = watcher(pods_api(server)).subscribe(on_error=lambda e: None)
    dispose_ends_thread_and_connection_within_a_second(server, subscription, requested)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0-close-delimited", "chunked-connection-close"],
)
def test_dispose_interrupts_a_watch_on_a_connection_the_server_will_close(
    serve: Callable[[Handler], RawHttpServer], head: bytes
) -> None:
    requested = threading.Event()

    def handler(request: Request, conn: socket.socket) -> bool:
        if not request.is_watch:
            return answer(conn, pod_list([]))
        line = orjson.dumps({"type": "ADDED", "object": pod("a", "11")}) + b"\n"
        conn.sendall(
            head + (f"{len(line):x}\r\n".encode() + line + b"\r\n" if b"chunked" in head else line)
        )
        requested.set()
        return hold(conn)

    server = serve(handler)
    events: list[Event] = []
    subscription = watcher(pods_api(server)).subscribe(events.append, lambda e: None)
    eventually(lambda: len(events) == 3, "Init, InitDone, Apply")  # now in recv()
    dispose_ends_thread_and_connection_within_a_second(server, subscription, requested)


def test_close_interrupts_a_connection_close_stream_read_in_another_thread(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    def handler(_request: Request, conn: socket.socket) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b'{"a": 1}\n')
        return hold(conn)

    server = serve(handler)
    with Client(server.url) as client:
        stream = client.stream("/w", idle_timeout=30)
        lines: list[bytes] = []
        reader = threading.Thread(target=lambda: lines.extend(stream.lines()), daemon=True)
        reader.start()
        eventually(lambda: bool(lines), "a line")
        started = time.monotonic()
        stream.close()
        reader.join(1.5)
        assert not reader.is_alive(), "lines() still blocked after close()"
        assert time.monotonic() - started < 1.5
        eventually(server.peer_closed_all, "the connection closed", 1.5)


def test_random_disposal_during_every_phase_leaves_no_thread_or_connection(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    """Subscriptions disposed at random moments, from a pool of threads, against a server
    whose lists and watches answer at random speeds (or never)."""
    rng = random.Random(13)
    lock = threading.Lock()

    def handler(request: Request, conn: socket.socket) -> bool:
        with lock:
            mode = rng.choice(["answer", "slow", "never"])
        if mode == "never":
            return hold(conn)
        if not request.is_watch:
            if mode == "slow":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n{")
                return hold(conn)
            return answer(conn, pod_list([pod(f"p{i}", str(i + 1)) for i in range(20)]))
        start_chunked(conn)
        for i in range(3):
            chunk(conn, orjson.dumps({"type": "ADDED", "object": pod(f"w{i}", "30")}) + b"\n")
        return hold(conn)

    server = serve(handler)
    api = pods_api(server)
    delays = [rng.uniform(0, 0.05) for _ in range(60)]

    def one(delay: float) -> None:
        subscription = watcher(api, Config(page_size=None)).subscribe(on_error=lambda e: None)
        time.sleep(delay)  # the disposal point: the test's input, not a wait for something
        subscription.dispose()

    with ThreadPoolExecutor(max_workers=6, thread_name_prefix="test-dispose") as pool:
        list(pool.map(one, delays))
    eventually(lambda: not rxkube_threads(), lambda: f"threads left: {rxkube_threads()}", 3)
    eventually(
        server.peer_closed_all,
        lambda: f"{server.open_connections} connection(s) left open by disposed watches",
        3,
    )


# -- a request's timeout bounds its whole answer -------------------------------------------


def trickle(_request: Request, conn: socket.socket) -> bool:
    """Headers, then a body byte every 0.1 s: every read is quick, the answer takes 20 s."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    )
    paced = threading.Event()  # never set: its wait paces the bytes
    for _ in range(200):
        paced.wait(0.1)
        try:
            conn.sendall(b" ")
        except OSError:  # the client gave up
            return False
    return False


async def _async_request(client: Client, timeout: float) -> Response:
    async with AsyncClient(client) as aclient:
        return await aclient.request("GET", "/api/v1/namespaces", timeout=timeout)


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_request_timeout_bounds_the_whole_answer_of_a_server_that_trickles_it(
    serve: Callable[[Handler], RawHttpServer], face: str
) -> None:
    server = serve(trickle)
    with Client(server.url, request_timeout=30.0) as client:
        started = time.monotonic()
        with pytest.raises(TransportError, match="no complete answer within its timeout of 1 s"):
            if face == "sync":
                client.request("GET", "/api/v1/namespaces", timeout=1.0)
            else:
                asyncio.run(asyncio.wait_for(_async_request(client, 1.0), 30))
        assert time.monotonic() - started < 10, "the trickle held the request past its timeout"
    eventually(server.peer_closed_all, "the server saw every connection closed")


def trickled_headers(_request: Request, conn: socket.socket) -> bool:
    """The status line and headers a byte every 0.1 s: every read is quick, the headers
    take 20 s."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    head += b"X-Padding: " + b"x" * 200 + b"\r\nContent-Length: 2\r\n\r\n{}"
    paced = threading.Event()  # never set: its wait paces the bytes
    for i in range(len(head)):
        paced.wait(0.1)
        try:
            conn.sendall(head[i : i + 1])
        except OSError:  # the client gave up
            return False
    return False


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_request_timeout_bounds_headers_a_server_trickles(
    serve: Callable[[Handler], RawHttpServer], face: str
) -> None:
    server = serve(trickled_headers)
    with Client(server.url, request_timeout=30.0) as client:
        started = time.monotonic()
        with pytest.raises(TransportError, match="no complete answer within its timeout of 1 s"):
            if face == "sync":
                client.request("GET", "/api/v1/namespaces", timeout=1.0)
            else:
                asyncio.run(asyncio.wait_for(_async_request(client, 1.0), 30))
        assert time.monotonic() - started < 10, "the trickle held the headers past the timeout"
    eventually(server.peer_closed_all, "the server saw every connection closed")


def test_an_api_call_timeout_bounds_the_whole_answer(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    server = serve(trickle)
    with pytest.raises(TransportError, match="no complete answer within its timeout of 1 s"):
        pods_api(server).get("web", timeout=1.0)


def test_an_answer_in_many_pieces_within_the_timeout_is_read_whole(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    body = orjson.dumps(pod("a", "7"))

    def pieces(_request: Request, conn: socket.socket) -> bool:
        start_chunked(conn)
        for i in range(len(body)):
            chunk(conn, body[i : i + 1])
        conn.sendall(b"0\r\n\r\n")
        return True

    server = serve(pieces)
    assert pods_api(server).get("a", timeout=20.0) == pod("a", "7")


# -- bodies that lie about their size or encoding ------------------------------------------


def test_a_list_declaring_a_huge_content_length_is_a_transport_error_not_memory_error(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    lists = 0

    def handler(request: Request, conn: socket.socket) -> bool:
        nonlocal lists
        if request.is_watch:
            return hold(conn)
        lists += 1
        if lists == 1:
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n{"kind":')
            return False
        return answer(conn, pod_list([pod("web", "5")]))

    server = serve(handler)
    retries: list[BaseException] = []
    assert list(run_until_ready(pods_api(server), retries)) == ["web"]
    assert [type(e) for e in retries] == [TransportError]
    assert "IncompleteRead" in str(retries[0])


def test_a_failed_watch_declaring_a_huge_content_length_is_its_typed_error(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    def handler(_request: Request, conn: socket.socket) -> bool:
        conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 100000000000\r\n\r\nbroken")
        return False

    server = serve(handler)
    with Client(server.url) as client, client.stream("/w", idle_timeout=10) as stream:
        assert stream.status == 500
        with pytest.raises(TransportError, match="IncompleteRead"):
            stream.error()


def gzipped_watch(request: Request, conn: socket.socket) -> bool:
    if not request.is_watch:
        body = gzip.compress(orjson.dumps(pod_list([pod("a", "1")])))
        head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
        conn.sendall(head.encode() + body)
        return True
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
    compressor = zlib.compressobj(wbits=31)
    line = orjson.dumps({"type": "ADDED", "object": pod("b", "2")}) + b"\n"
    chunk(conn, compressor.compress(line) + compressor.flush(zlib.Z_SYNC_FLUSH))
    return hold(conn)


def test_gzip_bodies_the_client_did_not_ask_for_are_decoded_in_lists_and_watches(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    server = serve(gzipped_watch)
    events: list[Event] = []
    errors: list[Exception] = []
    subscription = watcher(pods_api(server), Config(page_size=None)).subscribe(
        events.append, errors.append
    )
    try:
        eventually(lambda: len(events) == 4 or bool(errors), "four events")
    finally:
        subscription.dispose()
    assert errors == []
    assert [type(e).__name__ for e in events] == ["Init", "InitApply", "InitDone", "Apply"]


def test_a_body_that_does_not_match_its_content_encoding_is_a_decode_error(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    def handler(_request: Request, conn: socket.socket) -> bool:
        body = b"this is not gzip"
        head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
        conn.sendall(head.encode() + body)
        return True

    server = serve(handler)
    with Client(server.url) as client, pytest.raises(DecodeError, match="Content-Encoding"):
        client.request("GET", "/x")


# -- discovery documents of the wrong shape -------------------------------------------------

CORE = {"kind": "APIResourceList", "groupVersion": "v1", "resources": []}
WIDGET = {"name": "widgets", "kind": "Widget", "namespaced": True}
GARBLED_DISCOVERY: list[tuple[str, Any, Any, str]] = [
    ("/api/v1", None, None, "expected a JSON object, got null"),
    ("/api/v1", [1, 2], None, "expected a JSON object, got a list"),
    ("/api/v1", {"resources": "pods"}, None, "resources is a string ('pods'), not a list"),
    ("/api/v1", {"resources": ["pods"]}, None, "resources[0] is a string ('pods'), not an object"),
    ("/api/v1", {"resources": [{"kind": "Pod"}]}, None, "resources[0].name is missing"),
    (
        "/api/v1",
        {"resources": [{**WIDGET, "namespaced": "false"}]},
        None,
        "resources[0].namespaced is a string ('false'), not a boolean",
    ),
    (
        "/api/v1",
        {"resources": [{**WIDGET, "shortNames": "wd"}]},
        None,
        "resources[0].shortNames is not a list of strings",
    ),
    ("/api/v1", {"resources": [{**WIDGET, "kind": 7}]}, None, "resources[0].kind is a number (7)"),
    ("/apis", CORE, {"groups": "x"}, "groups is a string ('x'), not a list"),
    ("/apis", CORE, {"groups": [7]}, "groups[0] is a number (7), not an object"),
    ("/apis", CORE, {"groups": [{"versions": [{"version": "v1"}]}]}, "groups[0].name is missing"),
    (
        "/apis",
        CORE,
        {"groups": [{"name": "example.com", "preferredVersion": "v1"}]},
        "groups[0].preferredVersion is a string ('v1')",
    ),
    (
        "/apis",
        CORE,
        {"groups": [{"name": "example.com", "versions": [{"v": 1}]}]},
        "groups[0].versions[0].version is missing",
    ),
]


def discovery(core: Any, groups: Any) -> Handler:
    """Answers /api/v1 with ``core`` and /apis with ``groups``; everything else is a 404."""
    answers = {"/api/v1": core, "/apis": groups}

    def handler(request: Request, conn: socket.socket) -> bool:
        path = request.target.split("?")[0]
        if path in answers:
            return answer(conn, orjson.dumps(answers[path]))
        status = {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
        return answer(conn, status, "404 Not Found")

    return handler


@pytest.mark.parametrize(("path", "core", "groups", "problem"), GARBLED_DISCOVERY)
def test_a_discovery_document_of_the_wrong_shape_is_a_decode_error_naming_the_field(
    serve: Callable[[Handler], RawHttpServer], path: str, core: Any, groups: Any, problem: str
) -> None:
    server = serve(discovery(core, groups))
    with Client(server.url) as client, pytest.raises(DecodeError) as info:
        client.resolve("widgets")
    assert str(info.value).startswith(
        f"GET {path} on {server.url}: not a discovery document: {problem}"
    )


# -- discovery from many threads ----------------------------------------------------------


@dataclass
class GatedDiscovery:
    """A discovery server for groups ``a.example.com`` and ``b.example.com``, each serving
    one resource; the answer for a path in ``gates`` waits until its event is set, and
    one for a path in ``failures`` is a 503 that many times first; one for a path in
    ``slow`` comes that many seconds late."""

    gates: dict[str, threading.Event] = field(default_factory=dict)
    slow: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, request: Request, conn: socket.socket) -> bool:
        path = request.target.split("?")[0]
        with self.lock:
            self.asked.append(path)
            failing = self.failures.get(path, 0)
            if failing:
                self.failures[path] = failing - 1
        gate = self.gates.get(path)
        if gate is not None and not gate.wait(20):
            return False
        if path in self.slow:
            threading.Event().wait(self.slow[path])  # never set: its wait paces the answer
        if failing:
            unavailable = {"kind": "Status", "status": "Failure", "code": 503}
            return answer(conn, unavailable, "503 Service Unavailable")
        groups = [{"name": f"{g}.example.com", "preferredVersion": {"version": "v1"}} for g in "ab"]
        kinds = {"/apis/a.example.com/v1": "Widget", "/apis/b.example.com/v1": "Gadget"}
        if path == "/api/v1":
            return answer(conn, CORE)
        if path == "/apis":
            return answer(conn, {"kind": "APIGroupList", "groups": groups})
        if path in kinds:
            kind = kinds[path]
            resource = {"name": f"{kind.lower()}s", "kind": kind, "namespaced": True}
            return answer(conn, {"kind": "APIResourceList", "resources": [resource]})
        status = {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
        return answer(conn, status, "404 Not Found")

    def count(self, path: str) -> int:
        with self.lock:
            return self.asked.count(path)


def test_a_resolve_waiting_on_the_server_does_not_hold_up_one_needing_another_document(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    discovery = GatedDiscovery(gates={"/apis/a.example.com/v1": threading.Event()})
    server = serve(discovery.handler)
    with Client(server.url) as client, ThreadPoolExecutor(2) as pool:
        widgets = pool.submit(client.resolve, "a.example.com/v1/widgets")
        eventually(lambda: discovery.count("/apis/a.example.com/v1") == 1, "widgets asked for")
        gadgets = pool.submit(client.resolve, "b.example.com/v1/gadgets")
        try:
            assert gadgets.result(10).kind == "Gadget", "the held widgets blocked the gadgets"
        finally:
            discovery.gates["/apis/a.example.com/v1"].set()
        assert widgets.result(10).kind == "Widget"


def test_concurrent_resolves_fetch_each_discovery_document_once(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    # Slow answers: the resolves that need a document come while its fetch is under way.
    discovery = GatedDiscovery(slow={"/api/v1": 0.3, "/apis": 0.3})
    server = serve(discovery.handler)
    names = ["widgets", "gadgets", "widgets.a.example.com", "Gadget"] * 4
    start = threading.Barrier(len(names))

    def resolve(name: str) -> str:
        start.wait(10)
        return client.resolve(name).kind

    with Client(server.url) as client, ThreadPoolExecutor(len(names)) as pool:
        kinds = [pool.submit(resolve, name) for name in names]
        assert [kind.result(10) for kind in kinds] == ["Widget", "Gadget"] * 8
    assert sorted(discovery.asked) == [
        "/api/v1",
        "/apis",
        "/apis/a.example.com/v1",
        "/apis/b.example.com/v1",
    ]


def test_a_failed_discovery_fetch_fails_its_waiters_and_is_tried_again_by_the_next_resolve(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    discovery = GatedDiscovery(failures={"/apis": 1})
    server = serve(discovery.handler)
    with Client(server.url) as client:
        with pytest.raises(ApiError, match="503"):
            client.resolve("widgets")
        assert client.resolve("widgets").kind == "Widget"
    assert discovery.count("/apis") == 2


def test_discovery_under_many_threads_finds_a_resource_installed_meanwhile() -> None:
    with ApiServer() as server, server.client() as client:
        server.add_resource("example.com", "v1", "Widget", "widgets")
        installed = threading.Event()
        start = threading.Barrier(12)

        def resolve(worker: int) -> list[str]:
            start.wait(10)
            seen = []
            for round in range(30):
                if worker == 0 and round == 10:
                    server.add_resource("example.com", "v1", "Gadget", "gadgets")
                    installed.set()
                name = ["widgets", "gadgets", "deployments.apps", "nothings"][(worker + round) % 4]
                was_installed = installed.is_set()
                try:
                    seen.append(client.resolve(name).kind)
                except ConfigError:
                    # Only a name missing from the server, or gadgets asked for before
                    # they were installed, may be missing.
                    assert name == "nothings" or (name == "gadgets" and not was_installed)
                    seen.append("-")
            return seen

        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(resolve, range(12)))
        assert all("Widget" in seen and "Deployment" in seen for seen in results)
        assert client.resolve("gadgets").kind == "Gadget"


def test_the_cli_ends_a_garbled_discovery_in_one_line(
    serve: Callable[[Handler], RawHttpServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rxkube.cli import main

    server = serve(discovery(CORE, {"groups": [7]}))
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server.url}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    (tmp_path / "config").write_text(yaml.safe_dump(config))
    assert main(["watch", "widgets", "--kubeconfig", str(tmp_path / "config")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"rxkube: error: GET /apis on {server.url}: not a discovery document:"
        " groups[0] is a number (7), not an object"
    ]


# -- credentials a header cannot carry -----------------------------------------------------


def test_a_token_file_with_a_trailing_newline_is_trimmed_as_client_go_does(
    tmp_path: Path,
) -> None:
    with ApiServer(token="s3cret") as srv:
        token_file = tmp_path / "token"
        token_file.write_text("s3cret\n")
        document = srv.kubeconfig()
        document["users"][0]["user"] = {"tokenFile": str(token_file)}
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(document))
        with Client.from_kubeconfig(str(path)) as client:
            assert client.request("GET", "/api/v1/namespaces").status == 200


@pytest.mark.parametrize("token", ["s3cret\r\nX-Injected: 1", "s3c\nret", "s3c\0ret"])
def test_a_token_with_a_line_break_is_a_config_error_that_does_not_echo_it(token: str) -> None:
    with pytest.raises(ConfigError, match="line break or NUL") as info:
        Client("http://127.0.0.1:1", token=token)
    assert "s3c" not in str(info.value)


def test_a_credential_plugin_header_with_a_line_break_is_a_config_error(
    serve: Callable[[Handler], RawHttpServer],
) -> None:
    server = serve(lambda _request, conn: answer(conn, {}))
    client = Client(server.url, auth=lambda: {"Authorization": "Bearer s3c\r\nret"})
    with client, pytest.raises(ConfigError, match="line break") as info:
        client.request("GET", "/x")
    assert "s3c" not in str(info.value)
    assert server.requests == []
