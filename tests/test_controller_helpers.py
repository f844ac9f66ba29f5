"""Controller helpers over real HTTP: finalizers, waiting for conditions, events, metrics."""

from __future__ import annotations

import asyncio
import doctest
import importlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rxkube import finalizer
from rxkube.client import Api
from rxkube.controller import Action
from rxkube.errors import Invalid, ServerError, TransportError
from rxkube.metrics import ControllerMetrics
from rxkube.recorder import Recorder
from rxkube.testing import ApiServer
from rxkube.wait import (
    await_condition,
    await_condition_async,
    has_status_condition,
    is_deleted,
    is_pod_running,
    is_pod_succeeded,
)

TIMEOUT = 30.0
NAME = "example.com/cleanup"


@pytest.fixture
def srv() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


@pytest.fixture
def configmaps(srv: ApiServer) -> Api:
    return Api(srv.client(), "configmaps", namespace="default")


def create_cm(srv: ApiServer, name: str = "a", **meta: Any) -> dict[str, Any]:
    return srv.create("configmaps", {"metadata": {"name": name, "namespace": "default", **meta}})


class Calls:
    def __init__(self) -> None:
        self.log: list[str] = []

    def apply(self, obj: dict[str, Any]) -> Action:
        self.log.append("apply")
        return Action.requeue(60)

    def cleanup(self, obj: dict[str, Any]) -> Action:
        self.log.append("cleanup")
        return Action.await_change()


# -- finalizer ------------------------------------------------------------------------------


def test_finalizer_is_added_before_the_first_apply(srv: ApiServer, configmaps: Api) -> None:
    calls = Calls()
    obj = create_cm(srv)
    action = finalizer(configmaps, NAME, obj, calls.apply, calls.cleanup)
    assert action == Action.await_change()
    assert calls.log == []
    assert srv.get("configmaps", "a", namespace="default")["metadata"]["finalizers"] == [NAME]


def test_finalizer_is_appended_to_existing_ones(srv: ApiServer, configmaps: Api) -> None:
    obj = create_cm(srv, finalizers=["other.io/keep"])
    finalizer(configmaps, NAME, obj, Calls().apply, Calls().cleanup)
    stored = srv.get("configmaps", "a", namespace="default")
    assert stored["metadata"]["finalizers"] == ["other.io/keep", NAME]


def test_apply_runs_while_the_object_lives(srv: ApiServer, configmaps: Api) -> None:
    calls = Calls()
    obj = create_cm(srv, finalizers=[NAME])
    assert finalizer(configmaps, NAME, obj, calls.apply, calls.cleanup) == Action.requeue(60)
    assert calls.log == ["apply"]


def test_cleanup_runs_on_deletion_then_the_finalizer_is_removed(
    srv: ApiServer, configmaps: Api
) -> None:
    calls = Calls()
    create_cm(srv, finalizers=["other.io/keep", NAME])
    srv.delete("configmaps", "a", namespace="default")
    deleting = srv.get("configmaps", "a", namespace="default")
    assert deleting["metadata"]["deletionTimestamp"]
    action = finalizer(configmaps, NAME, deleting, calls.apply, calls.cleanup)
    assert action == Action.await_change()
    assert calls.log == ["cleanup"]
    stored = srv.get("configmaps", "a", namespace="default")
    assert stored["metadata"]["finalizers"] == ["other.io/keep"]


def test_removing_the_last_finalizer_lets_the_object_go(srv: ApiServer, configmaps: Api) -> None:
    create_cm(srv, finalizers=[NAME])
    srv.delete("configmaps", "a", namespace="default")
    deleting = srv.get("configmaps", "a", namespace="default")
    finalizer(configmaps, NAME, deleting, Calls().apply, Calls().cleanup)
    assert srv.list("configmaps", namespace="default") == []


def test_a_deleted_object_without_the_finalizer_needs_nothing(
    srv: ApiServer, configmaps: Api
) -> None:
    calls = Calls()
    create_cm(srv, finalizers=["other.io/keep"])
    srv.delete("configmaps", "a", namespace="default")
    deleting = srv.get("configmaps", "a", namespace="default")
    assert finalizer(configmaps, NAME, deleting, calls.apply, calls.cleanup) == (
        Action.await_change()
    )
    assert calls.log == []


def test_a_failed_cleanup_keeps_the_finalizer(srv: ApiServer, configmaps: Api) -> None:
    create_cm(srv, finalizers=[NAME])
    srv.delete("configmaps", "a", namespace="default")
    deleting = srv.get("configmaps", "a", namespace="default")

    def cleanup(obj: dict[str, Any]) -> Action:
        raise RuntimeError("external system down")

    with pytest.raises(RuntimeError):
        finalizer(configmaps, NAME, deleting, Calls().apply, cleanup)
    assert srv.get("configmaps", "a", namespace="default")["metadata"]["finalizers"] == [NAME]


def test_a_concurrent_edit_of_the_finalizers_is_not_clobbered(
    srv: ApiServer, configmaps: Api
) -> None:
    stale = create_cm(srv, finalizers=["one.io/x"])
    srv.patch("configmaps", "a", {"metadata": {"finalizers": ["one.io/x", "two.io/y"]}})
    with pytest.raises(Invalid):
        finalizer(configmaps, NAME, stale, Calls().apply, Calls().cleanup)
    stored = srv.get("configmaps", "a", namespace="default")
    assert stored["metadata"]["finalizers"] == ["one.io/x", "two.io/y"]


def test_adding_the_first_finalizer_to_a_changed_object_fails(
    srv: ApiServer, configmaps: Api
) -> None:
    stale = create_cm(srv)
    srv.patch("configmaps", "a", {"metadata": {"finalizers": ["other.io/keep"]}})
    with pytest.raises(Invalid):
        finalizer(configmaps, NAME, stale, Calls().apply, Calls().cleanup)
    stored = srv.get("configmaps", "a", namespace="default")
    assert stored["metadata"]["finalizers"] == ["other.io/keep"]


# -- await_condition ----------------------------------------------------------------------


def pod(name: str, phase: str = "Pending") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": phase},
    }


def set_phase_later(srv: ApiServer, name: str, phase: str, started: threading.Event) -> None:
    """Set the pod's phase once the waiter is watching (it has seen the current state)."""
    assert started.wait(TIMEOUT)
    current = srv.get("pods", name, namespace="default")
    current["status"]["phase"] = phase
    srv.replace("pods", current, subresource="status")


def test_await_condition_returns_at_once_when_it_already_holds(srv: ApiServer) -> None:
    srv.create("pods", pod("p", "Running"))
    pods = Api(srv.client(), "pods", namespace="default")
    obj = await_condition(pods, "p", is_pod_running(), timeout=TIMEOUT)
    assert obj is not None and obj["status"]["phase"] == "Running"


def test_await_condition_waits_for_a_change(srv: ApiServer) -> None:
    srv.create("pods", pod("p"))
    pods = Api(srv.client(), "pods", namespace="default")
    watching = threading.Event()

    def condition(obj: dict[str, Any] | None) -> bool:
        watching.set()
        return is_pod_succeeded()(obj)

    changer = threading.Thread(target=set_phase_later, args=(srv, "p", "Succeeded", watching))
    changer.start()
    obj = await_condition(pods, "p", condition, timeout=TIMEOUT)
    changer.join(TIMEOUT)
    assert obj is not None and obj["status"]["phase"] == "Succeeded"


def test_await_condition_for_deletion(srv: ApiServer) -> None:
    created = srv.create("pods", pod("p"))
    pods = Api(srv.client(), "pods", namespace="default")
    srv.delete("pods", "p", namespace="default")
    assert await_condition(pods, "p", is_deleted(created["metadata"]["uid"]), TIMEOUT) is None


def test_is_deleted_treats_a_recreated_object_as_deleted(srv: ApiServer) -> None:
    srv.create("pods", pod("p"))
    pods = Api(srv.client(), "pods", namespace="default")
    obj = await_condition(pods, "p", is_deleted("an-older-uid"), TIMEOUT)
    assert obj is not None


def test_await_condition_finds_an_object_whose_name_a_field_selector_must_escape(
    srv: ApiServer,
) -> None:
    """Role and ClusterRole names may hold ',', '=' and '\\': asked for 'a\\,b' unescaped,
    the server selected the object 'a,b'."""
    names = ["a,b", "a\\,b", "a=b", "a\\b", "a\\\\", "system:a"]
    roles = Api(srv.client(), "clusterroles")
    for name in names:
        roles.create({"metadata": {"name": name, "labels": {"index": str(names.index(name))}}})
    for name in names:
        obj = await_condition(roles, name, lambda o: o is not None, timeout=TIMEOUT)
        assert obj is not None
        assert (obj["metadata"]["name"], obj["metadata"]["labels"]) == (
            name,
            {"index": str(names.index(name))},
        )
    assert await_condition(roles, "a\\", lambda o: o is None, timeout=TIMEOUT) is None


def test_await_condition_times_out(srv: ApiServer) -> None:
    srv.create("pods", pod("p"))
    pods = Api(srv.client(), "pods", namespace="default")
    with pytest.raises(TimeoutError, match="Pod p in default") as caught:
        await_condition(pods, "p", is_pod_running(), timeout=0.5)
    assert str(caught.value) == "Pod p in default did not meet the condition within 0.5 s"
    assert caught.value.__cause__ is None


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_wait_that_never_reached_the_server_says_so_and_why(face: str) -> None:
    with ApiServer() as gone:
        pods = Api(gone.client(), "pods", namespace="default")
    # The server is stopped: every attempt is refused, and default_backoff() retries it.
    if face == "sync":
        wait = lambda: await_condition(pods, "p", is_pod_running(), timeout=2)  # noqa: E731
    else:
        wait = lambda: asyncio.run(  # noqa: E731
            await_condition_async(pods, "p", is_pod_running(), timeout=2)
        )
    with pytest.raises(TimeoutError) as caught:
        wait()
    message = str(caught.value)
    assert message.startswith("Pod p in default did not meet the condition within 2 s; ")
    assert "the object was never read, the watch was retrying after " in message
    assert "the last: TransportError: " in message, message
    assert isinstance(caught.value.__cause__, TransportError)


def test_a_wait_whose_watch_fails_after_reading_says_since_when(srv: ApiServer) -> None:
    srv.create("pods", pod("p"))
    pods = Api(srv.client(), "pods", namespace="default")

    cut = threading.Event()

    def condition(obj: dict[str, Any] | None) -> bool:
        if not cut.is_set():  # the first state read: now cut the watch off
            cut.set()
            srv.faults.fail_requests(503, count=10**6)
            srv.faults.close_watches()
        return False

    with pytest.raises(TimeoutError) as caught:
        await_condition(pods, "p", condition, timeout=5)
    message = str(caught.value)
    assert "; since it last read the object, the watch was retrying after " in message, message
    assert "the last: ServerError: 503 ServiceUnavailable" in message, message
    assert isinstance(caught.value.__cause__, ServerError)


def test_await_condition_passes_on_a_raising_condition(srv: ApiServer) -> None:
    srv.create("pods", pod("p"))
    pods = Api(srv.client(), "pods", namespace="default")

    def broken(obj: dict[str, Any] | None) -> bool:
        raise KeyError("status")

    with pytest.raises(KeyError):
        await_condition(pods, "p", broken, timeout=TIMEOUT)


def test_await_condition_async_does_not_block_the_loop(srv: ApiServer) -> None:
    srv.create("configmaps", {"metadata": {"name": "c", "namespace": "default"}})
    configmaps = Api(srv.client(), "configmaps", namespace="default")

    async def main() -> dict[str, Any] | None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        waiting = asyncio.create_task(
            await_condition_async(configmaps, "c", has_status_condition("Ready"), timeout=TIMEOUT)
        )
        while ticks < 3:  # the loop runs while the condition is awaited
            await asyncio.sleep(0.01)
        current = srv.get("configmaps", "c", namespace="default")
        current["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        srv.replace("configmaps", current)
        try:
            return await waiting
        finally:
            task.cancel()

    obj = asyncio.run(main())
    assert obj is not None
    assert has_status_condition("Ready")(obj)


def test_await_condition_async_times_out(srv: ApiServer) -> None:
    configmaps = Api(srv.client(), "configmaps", namespace="default")
    with pytest.raises(TimeoutError):
        asyncio.run(await_condition_async(configmaps, "nothing", lambda obj: obj is not None, 0.5))


def test_status_condition_checks_type_and_status() -> None:
    obj = {"status": {"conditions": [{"type": "Available", "status": "False"}]}}
    assert has_status_condition("Available", "False")(obj)
    assert not has_status_condition("Available")(obj)
    assert not has_status_condition("Ready")(obj)
    assert not has_status_condition("Ready")(None)


# -- recorder -------------------------------------------------------------------------------


def test_recorder_writes_an_event_about_the_object(srv: ApiServer) -> None:
    obj = srv.create("configmaps", {"metadata": {"name": "a", "namespace": "default"}})
    recorder = Recorder(srv.client(), "cm-controller", instance="replica-1")
    recorder.publish(obj, reason="Synced", message="copied 3 keys", action="Reconcile")
    (event,) = srv.list("events", namespace="default")
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "a",
        "namespace": "default",
        "uid": obj["metadata"]["uid"],
        "resourceVersion": obj["metadata"]["resourceVersion"],
    }
    assert (event["type"], event["reason"], event["message"]) == (
        "Normal",
        "Synced",
        "copied 3 keys",
    )
    assert event["count"] == 1
    assert event["reportingComponent"] == "cm-controller"
    assert event["reportingInstance"] == "replica-1"
    assert event["source"]["component"] == "cm-controller"


def test_recorder_aggregates_repeats_into_one_event(srv: ApiServer) -> None:
    obj = srv.create("configmaps", {"metadata": {"name": "a", "namespace": "default"}})
    now = [1_700_000_000.0]
    recorder = Recorder(srv.client(), "ctl", clock=lambda: now[0], aggregate_within=60)
    for _ in range(3):
        recorder.publish(obj, reason="Failed", message="boom", type="Warning")
        now[0] += 10
    (event,) = srv.list("events", namespace="default")
    assert event["count"] == 3
    assert event["lastTimestamp"] > event["firstTimestamp"]
    recorder.publish(obj, reason="Synced")  # another reason: another Event
    now[0] += 120
    recorder.publish(obj, reason="Failed", message="boom", type="Warning")  # too late
    assert len(srv.list("events", namespace="default")) == 3


def test_recorder_writes_again_when_its_event_is_gone(srv: ApiServer) -> None:
    obj = srv.create("configmaps", {"metadata": {"name": "a", "namespace": "default"}})
    recorder = Recorder(srv.client(), "ctl")
    first = recorder.publish(obj, reason="Synced")
    srv.delete("events", first["metadata"]["name"], namespace="default")
    second = recorder.publish(obj, reason="Synced")
    assert second["count"] == 1
    assert len(srv.list("events", namespace="default")) == 1


def test_recorder_puts_events_of_cluster_scoped_objects_in_default(srv: ApiServer) -> None:
    node = srv.create("nodes", {"metadata": {"name": "n1"}})
    Recorder(srv.client(), "ctl").publish(node, reason="Seen")
    (event,) = srv.list("events", namespace="default")
    assert event["involvedObject"]["kind"] == "Node"


# -- metrics --------------------------------------------------------------------------------


def test_metrics_histogram_buckets_are_cumulative() -> None:
    metrics = ControllerMetrics("c")
    for duration in (0.001, 0.2, 0.2, 100.0):
        metrics.started()
        metrics.finished(duration, error=False, requeue=False)
    timing = metrics.snapshot().duration
    buckets = dict(timing.buckets)
    assert buckets[0.005] == 1
    assert buckets[0.25] == 3
    assert buckets[60.0] == 3
    assert buckets[float("inf")] == 4
    assert timing.max == 100.0
    assert timing.mean == pytest.approx(100.401 / 4)


def test_metrics_export_to_prometheus() -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    metrics = ControllerMetrics("cms")
    metrics.register(registry)
    metrics.started()
    metrics.finished(0.3, error=True, requeue=True)
    metrics.missing()
    metrics.queue(4)
    text = prometheus_client.generate_latest(registry).decode()
    assert 'rxkube_reconcile_total{controller="cms"} 1.0' in text
    assert 'rxkube_reconcile_errors_total{controller="cms"} 1.0' in text
    assert 'rxkube_reconcile_requeues_total{controller="cms"} 1.0' in text
    assert 'rxkube_reconcile_missing_total{controller="cms"} 1.0' in text
    assert 'rxkube_workqueue_depth{controller="cms"} 4.0' in text
    assert 'rxkube_reconcile_time_seconds_bucket{controller="cms",le="0.5"} 1.0' in text
    assert 'rxkube_reconcile_time_seconds_count{controller="cms"} 1.0' in text


def test_removing_the_finalizer_of_an_object_already_gone_counts_as_done(
    srv: ApiServer, configmaps: Api
) -> None:
    calls = Calls()
    create_cm(srv, finalizers=[NAME])
    srv.delete("configmaps", "a", namespace="default")
    stale = srv.get("configmaps", "a", namespace="default")
    srv.patch("configmaps", "a", {"metadata": {"finalizers": None}})  # someone else's cleanup
    assert srv.list("configmaps", namespace="default") == []
    assert finalizer(configmaps, NAME, stale, calls.apply, calls.cleanup) == Action.await_change()
    assert calls.log == ["cleanup"]


@pytest.mark.parametrize(
    "module",
    ["scheduler", "metrics", "wait", "controller", "leader", "_finalizers", "recorder"],
)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"rxkube.{module}"))
    assert result.failed == 0
