"""Health probes and metrics over real HTTP: a controller against ApiServer, probed as a kubelet would.

Waits are on conditions with timeouts; the outage test holds the outage for a fixed time on
purpose (that is what it tests) and probes all through it.
"""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from reactivex.subject import Subject

from rxkube import reflect, reflect_shared, store, store_shared, watcher
from rxkube.client import Api, Client
from rxkube.controller import Action, Controller, ReconcileResult
from rxkube.events import Object
from rxkube.metrics import watch_stats
from rxkube.operators import default_backoff
from rxkube.probes import ProbeServer, serve
from rxkube.protocol import Config
from rxkube.testing import ApiServer

TIMEOUT = 30.0


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def cm(name: str, **data: str) -> Object:
    return {"metadata": {"name": name}, "data": data}


@pytest.fixture
def srv() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


@pytest.fixture
def ns(srv: ApiServer, request: pytest.FixtureRequest) -> str:
    """A namespace of this test's own: watch names (metric labels) stay unique in the process."""
    name: str = request.node.name.removeprefix("test_").replace("_", "-")[:60].strip("-")
    srv.create("namespaces", {"metadata": {"name": name}})
    return name


class Running:
    """A controller run whose results are collected; stopped gracefully at the end."""

    def __init__(self, controller: Controller, reconcile: Callable[[Object, Any], Any]) -> None:
        self.results: list[ReconcileResult] = []
        self.stop: Subject[None] = Subject()
        self.ended = threading.Event()
        self._lock = threading.Lock()
        self.subscription = controller.run(
            reconcile, lambda _o, _e, _c: Action.requeue(1), None, stop=self.stop
        ).subscribe(self._add, lambda _e: self.ended.set(), self.ended.set)

    def _add(self, result: ReconcileResult) -> None:
        with self._lock:
            self.results.append(result)

    def count(self) -> int:
        with self._lock:
            return len(self.results)

    def close(self) -> None:
        self.stop.on_next(None)
        assert self.ended.wait(TIMEOUT)
        self.subscription.dispose()


def test_probes_answer_503_before_the_caches_are_ready_and_200_after(
    srv: ApiServer, client: Client, ns: str
) -> None:
    configmaps = Api(client, "configmaps", namespace=ns)
    configmaps.create(cm("a"))
    controller = Controller(configmaps)
    with serve("127.0.0.1", 0, controller=controller) as probes:
        assert probes.host == "127.0.0.1"
        code, body = get(probes.url + "/readyz")
        assert code == 503
        assert "[-]store configmaps failed: not listed yet" in body
        assert "[-]controller configmaps failed: not running" in body
        assert get(probes.url + "/livez") == (200, "ok\n")

        listed = threading.Event()
        srv.faults.delay_responses(3.0, 1, verb="list")  # long enough to probe meanwhile

        def reconcile(_obj: Any, _context: Any) -> Action:
            listed.set()
            return Action.await_change()

        running = Running(controller, reconcile)
        try:
            code, body = get(probes.url + "/readyz")
            assert code == 503, body  # the list is still on its way
            assert listed.wait(TIMEOUT)
            assert get(probes.url + "/readyz") == (200, "ok\n")
            code, body = get(probes.url + "/readyz?verbose")
            assert code == 200
            assert "[+]store configmaps ok" in body and body.endswith("readyz check passed\n")
            assert get(probes.url + "/livez")[0] == 200
            assert get(probes.url + "/nope")[0] == 404
        finally:
            running.close()
        code, body = get(probes.url + "/readyz")
        assert code == 503 and "controller configmaps failed: not running" in body


def test_livez_fails_within_its_threshold_when_a_writer_dies(client: Client, ns: str) -> None:
    configmaps = Api(client, "configmaps", namespace=ns)
    reader, writer = store("doomed")
    seen = threading.Event()

    def raising(_event: object) -> None:
        seen.set()
        raise RuntimeError("a subscriber's bug")

    config = Config(timeout=1)  # idle timeout 6 s
    subscription = (
        watcher(configmaps, config).pipe(reflect(writer), default_backoff()).subscribe(raising)
    )
    backoff_cap = 1.0
    threshold = config.idle_timeout + backoff_cap
    try:
        with serve("127.0.0.1", 0, stores=[reader], backoff_cap=backoff_cap) as probes:
            assert seen.wait(TIMEOUT)
            died = time.monotonic()
            wait_until(lambda: get(probes.url + "/livez")[0] == 503, timeout=threshold + TIMEOUT)
            # Not before the threshold (the watch may have been silent that long), and
            # within a scrape or two of it.
            assert time.monotonic() - died < threshold + TIMEOUT
            code, body = get(probes.url + "/livez")
            assert code == 503
            # The subscriber's bug ends the pipeline with a ConsumerError: its store says so.
            assert "[-]store doomed failed: its writer stopped" in body
            assert "ConsumerError" in body
            assert body.endswith("livez check failed\n")
    finally:
        subscription.dispose()


def test_probes_stay_200_through_an_api_server_outage(
    srv: ApiServer, client: Client, ns: str
) -> None:
    configmaps = Api(client, "configmaps", namespace=ns)
    configmaps.create(cm("before"))
    controller = Controller(configmaps, Config(timeout=2))
    seen: set[str] = set()
    lock = threading.Lock()

    def reconcile(obj: Object, _ctx: object) -> Action:
        with lock:
            seen.add(obj["metadata"]["name"])
        return Action.await_change()

    running = Running(controller, reconcile)
    try:
        with serve("127.0.0.1", 0, controller=controller) as probes:
            wait_until(lambda: get(probes.url + "/readyz")[0] == 200)
            srv.faults.fail_requests(503, count=1_000_000)
            srv.restart()  # every open watch is cut: the watch fails and backs off
            outage_end = time.monotonic() + 6.0
            probes_made = 0
            while time.monotonic() < outage_end:
                assert get(probes.url + "/livez") == (200, "ok\n")
                assert get(probes.url + "/readyz") == (200, "ok\n")
                probes_made += 1
                time.sleep(0.2)
            assert probes_made > 5
            srv.faults.clear()
            configmaps.create(cm("after"))
            wait_until(lambda: "after" in seen)
            assert get(probes.url + "/livez") == (200, "ok\n")
            families = scrape(probes)
            restarts = samples(families, "rxkube_watch_restarts_total", watch=f"configmaps in {ns}")
            assert sum(restarts.values()) >= 1
    finally:
        running.close()


def scrape(probes: ProbeServer) -> dict[str, Any]:
    code, text = get(probes.url + "/metrics")
    assert code == 200
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(
    families: dict[str, Any], sample: str, **labels: str
) -> dict[tuple[tuple[str, str], ...], float]:
    """The values of one sample name whose labels include ``labels``, keyed by all labels."""
    found = {}
    for family in families.values():
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                found[tuple(sorted(s.labels.items()))] = s.value
    return found


def value(families: dict[str, Any], sample: str, **labels: str) -> float:
    matching = samples(families, sample, **labels)
    assert len(matching) == 1, (sample, labels, matching)
    return next(iter(matching.values()))


def test_metrics_carry_watch_store_and_controller_counts(
    srv: ApiServer, client: Client, ns: str
) -> None:
    configmaps = Api(client, "configmaps", namespace=ns)
    for i in range(3):
        configmaps.create(cm(f"listed-{i}"))
    controller = Controller(configmaps)
    running = Running(controller, lambda _o, _c: Action.await_change())
    try:
        with serve("127.0.0.1", 0, controller=controller) as probes:
            wait_until(lambda: running.count() == 3)
            for i in range(2):
                configmaps.create(cm(f"added-{i}"))
            configmaps.patch("listed-0", {"data": {"k": "v"}})
            configmaps.delete("listed-1")
            wait_until(lambda: running.count() >= 6)  # 2 added, 1 modified
            wait_until(lambda: controller.store.get("listed-1", ns) is None)

            # The watch ends; meanwhile history is compacted: 410 on resume, one relist.
            srv.faults.delay_responses(1.0, 1, verb="watch")
            srv.faults.close_watches()
            configmaps.create(cm("after-relist"))
            srv.compact()
            # The relist reconciles all five objects again, the new one among them.
            wait_until(lambda: running.count() == 11)

            families = scrape(probes)
            watch = {"watch": f"configmaps in {ns}"}
            assert value(families, "rxkube_watch_lists_total", cause="initial", **watch) == 1
            assert value(families, "rxkube_watch_lists_total", cause="gone", **watch) == 1
            assert value(families, "rxkube_watch_list_duration_seconds_count", **watch) == 2
            assert value(families, "rxkube_watch_events_total", type="ADDED", **watch) == 2
            assert value(families, "rxkube_watch_events_total", type="MODIFIED", **watch) == 1
            assert value(families, "rxkube_watch_events_total", type="DELETED", **watch) == 1
            assert value(families, "rxkube_watch_restarts_total", reason="timeout", **watch) >= 1
            assert value(families, "rxkube_watch_up", **watch) == 1
            assert value(families, "rxkube_watch_seconds_since_progress", **watch) < TIMEOUT
            assert value(families, "rxkube_store_objects", store="configmaps") == 5
            assert value(families, "rxkube_store_ready", store="configmaps") == 1
            reconciles = value(families, "rxkube_reconcile_total", controller="configmaps")
            snapshot = controller.metrics.snapshot()
            assert reconciles == snapshot.reconciles == running.count() - snapshot.missing
            assert (
                value(families, "rxkube_reconcile_time_seconds_count", controller="configmaps")
                == reconciles
            )
    finally:
        running.close()


def test_serve_refuses_bad_settings_and_a_taken_port() -> None:
    with pytest.raises(ValueError, match="loop_timeout"):
        serve("127.0.0.1", 0, loop_timeout=0)
    with serve("127.0.0.1", 0, metrics=False) as probes:
        assert get(probes.url + "/metrics")[0] == 404
        with pytest.raises(OSError, match=f"cannot serve probes on 127.0.0.1:{probes.port}"):
            serve("127.0.0.1", probes.port)


def test_the_example_controller_serves_probes_and_stops_on_sigint() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "configmap_controller.py"
    proc = subprocess.Popen(
        [sys.executable, str(example), "--demo", "--probes", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            for line in proc.stdout or ():
                lines.put(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        url = ""
        deadline = time.monotonic() + TIMEOUT
        while not url:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            match = re.match(r"probes at (http://\S+)", line)
            url = match.group(1) if match else ""
        wait_until(lambda: get(url + "/readyz")[0] == 200)
        assert get(url + "/livez") == (200, "ok\n")
        wait_until(lambda: "rxkube_reconcile_total" in get(url + "/metrics")[1])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=TIMEOUT) == 0
        reader.join(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)


def test_the_example_refuses_a_bad_probes_address() -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "configmap_controller.py"
    done = subprocess.run(
        [sys.executable, str(example), "--probes", "8081"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 2
    assert "expected HOST:PORT" in done.stderr


def test_metrics_carry_a_shared_stores_fan_out(client: Client, ns: str) -> None:
    configmaps = Api(client, "configmaps", namespace=ns)
    for i in range(4):
        configmaps.create(cm(f"cm-{i}"))
    shared, writer = store_shared(2, name=f"shared-{ns}")
    watch = watcher(configmaps).pipe(reflect_shared(writer), default_backoff()).subscribe()
    release = threading.Event()
    taken: list[object] = []

    def slow(item: object) -> None:
        taken.append(item)
        release.wait(TIMEOUT)  # holds its buffer full: the writer must wait

    subscribers = [shared.subscribe().subscribe(slow), shared.subscribe().subscribe()]
    try:
        with serve("127.0.0.1", 0, stores=[shared]) as probes:
            shared.wait_until_ready(TIMEOUT)
            for i in range(4, 8):
                configmaps.create(cm(f"cm-{i}"))
            wait_until(lambda: shared.stats().writer_waits >= 1)
            families = scrape(probes)
            label = {"store": f"shared-{ns}"}
            assert value(families, "rxkube_store_subscribers", **label) == 2
            assert value(families, "rxkube_store_max_backlog", **label) >= 2
            assert value(families, "rxkube_store_writer_waits_total", **label) >= 1
            assert value(families, "rxkube_store_overflows_total", **label) == 0
            release.set()
            wait_until(lambda: len(shared) == 8)
            families = scrape(probes)
            assert value(families, "rxkube_store_objects", **label) == 8
            assert value(families, "rxkube_store_ready", **label) == 1
    finally:
        release.set()
        for subscription in (*subscribers, watch):
            subscription.dispose()


def test_probes_and_scrapes_from_many_threads_while_events_flow(client: Client, ns: str) -> None:
    configmaps = Api(client, "configmaps", namespace=ns)
    controller = Controller(configmaps)
    running = Running(controller, lambda _o, _c: Action.await_change())
    failures: list[str] = []
    stop = threading.Event()

    def scraper(path: str) -> None:
        while not stop.is_set():
            code, body = get(probes.url + path)
            if path == "/metrics":
                list(text_string_to_metric_families(body))  # parses, or raises
            elif code != 200 and path == "/livez":
                failures.append(body)

    try:
        with serve("127.0.0.1", 0, controller=controller) as probes:
            wait_until(lambda: get(probes.url + "/readyz")[0] == 200)
            threads = [
                threading.Thread(target=scraper, args=(path,))
                for path in ("/metrics", "/metrics", "/livez", "/livez", "/readyz", "/metrics")
            ]
            for thread in threads:
                thread.start()
            try:
                for i in range(40):
                    configmaps.create(cm(f"cm-{i}"))
                    if i % 3 == 0:
                        configmaps.delete(f"cm-{i}")
                wait_until(lambda: len(controller.store) == 26)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(TIMEOUT)
            assert failures == []
            families = scrape(probes)
            watch = {"watch": f"configmaps in {ns}"}
            assert value(families, "rxkube_watch_events_total", type="ADDED", **watch) == 40
            assert value(families, "rxkube_watch_events_total", type="DELETED", **watch) == 14
    finally:
        running.close()


def test_watch_metrics_count_a_relist_after_history_went_back() -> None:
    # A server restarted on the same port starts its history again (an etcd restore):
    # the resumed list answers 504 ResourceVersionTooLarge and the watch relists.
    reader, writer = store("rewound")
    with contextlib.ExitStack() as servers:
        first = servers.enter_context(ApiServer(too_large_wait=0.2))
        first.create("namespaces", {"metadata": {"name": "rewound"}})
        for i in range(30):
            first.create("configmaps", cm(f"old{i}"), namespace="rewound")
        configmaps = Api(first.client(), "configmaps", namespace="rewound")
        source = watcher(configmaps)
        subscription = source.pipe(reflect(writer), default_backoff()).subscribe(
            on_error=lambda _e: None
        )
        try:
            reader.wait_until_ready(TIMEOUT)
            first.faults.fail_requests(503, count=1 << 30)
            first.restart()
            wait_until(lambda: any(r.status == 503 for r in first.requests))
            first.stop()
            port = urllib.parse.urlsplit(first.url).port or 0
            second = servers.enter_context(ApiServer(port=port, too_large_wait=0.2))
            second.create("namespaces", {"metadata": {"name": "rewound"}})
            second.create("configmaps", cm("fresh"), namespace="rewound")
            wait_until(lambda: [o["metadata"]["name"] for o in reader.state()] == ["fresh"])
            (stats,) = [s for s in watch_stats() if s.name == "configmaps in rewound"]
            snap = stats.snapshot()
            assert snap.lists["initial"] == 1
            assert snap.lists["too_large"] == 1
            assert snap.lists["error"] >= 1  # each resubscription during the outage
            assert snap.list_duration.count == 2
            assert snap.state == "running"
        finally:
            subscription.dispose()
    wait_until(lambda: stats.snapshot().state == "stopped")  # once its thread has ended


def test_watch_stats_count_each_running_subscriptions_tally_and_keep_it_when_it_ends() -> None:
    from rxkube._telemetry import EventTally, WatchStats

    stats = WatchStats("pods in tally", "pods", "tally", 5.0)
    first, second = EventTally(), EventTally()
    stats.started(first)
    stats.started(second)
    first.counts.update(ADDED=2, MODIFIED=1)
    first.last = 10.0
    second.counts["ADDED"] = 1
    second.last = 12.0
    running = stats.snapshot()
    assert running.events == {"ADDED": 3, "MODIFIED": 1}
    assert running.last_event == 12.0 and running.last_progress >= 12.0
    stats.ended(second, None)
    stats.ended(first, RuntimeError("gone"))
    ended = stats.snapshot()
    assert ended.events == {"ADDED": 3, "MODIFIED": 1}
    assert ended.last_event == 12.0
    assert ended.restarts == {"RuntimeError": 1}
