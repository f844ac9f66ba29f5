"""rxkube.testing.ApiServer through the official ``kubernetes`` client, configured by kubeconfig."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException

from rxkube.testing import ApiServer


@pytest.fixture(params=[False, True], ids=["http", "https+token"])
def api_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ApiServer, client.ApiClient]]:
    secure = bool(request.param)
    with ApiServer(tls=secure, token="t0k3n" if secure else None, bookmark_interval=0.2) as srv:
        path = srv.write_kubeconfig(tmp_path / "kubeconfig")
        api = config.new_client_from_config(config_file=str(path))
        try:
            yield srv, api
        finally:
            api.close()  # ends its thread pool, but leaves urllib3's connections open
            api.rest_client.pool_manager.clear()


def test_core_v1_list_with_limit_and_continue(
    api_client: tuple[ApiServer, client.ApiClient],
) -> None:
    srv, api = api_client
    for i in range(7):
        srv.create("pods", {"metadata": {"name": f"p{i}", "labels": {"app": "x"}}})
    core = client.CoreV1Api(api)
    names: list[str | None] = []
    versions: set[str | None] = set()
    token = None
    while True:
        page = core.list_namespaced_pod("default", limit=3, _continue=token, _request_timeout=10)
        names += [p.metadata.name if p.metadata else None for p in page.items]
        assert page.metadata is not None
        versions.add(page.metadata.resource_version)
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"p{i}" for i in range(7)]
    assert len(versions) == 1
    created = core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm"), data={"k": "v"})
    )
    assert created.metadata is not None and created.metadata.uid
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod("missing", "default", _request_timeout=10)
    assert info.value.status == 404


def test_watch_with_bookmarks(api_client: tuple[ApiServer, client.ApiClient]) -> None:
    srv, api = api_client
    core = client.CoreV1Api(api)
    srv.create("pods", {"metadata": {"name": "before"}})
    rv = str(srv.resource_version)
    w = watch.Watch()
    seen: list[tuple[str, str | None]] = []
    for event in w.stream(
        core.list_namespaced_pod,
        "default",
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=5,
        _request_timeout=10,
    ):
        kind, obj = event["type"], event["object"]
        seen.append(
            (kind, obj["metadata"].get("name") if isinstance(obj, dict) else obj.metadata.name)
        )
        if kind == "BOOKMARK" and len(seen) == 1:
            srv.create("pods", {"metadata": {"name": "after"}})
        if kind == "ADDED":
            w.stop()
    assert seen[0][0] == "BOOKMARK"
    assert seen[-1] == ("ADDED", "after")
    assert w.resource_version == srv.get("pods", "after")["metadata"]["resourceVersion"]


def test_dynamic_client(api_client: tuple[ApiServer, client.ApiClient], tmp_path: Path) -> None:
    srv, api = api_client
    srv.add_resource("example.com", "v1", "Widget", "widgets")
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    pods.create(
        body={
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "d"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        },
        namespace="default",
    )
    assert [p.metadata.name for p in pods.get(namespace="default").items] == ["d"]
    patched = pods.patch(
        name="d",
        namespace="default",
        body={"metadata": {"labels": {"a": "b"}}},
        content_type="application/merge-patch+json",
    )
    assert patched.metadata.labels.to_dict() == {"a": "b"}
    widgets = dyn.resources.get(api_version="example.com/v1", kind="Widget")
    widgets.create(
        body={
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 2},
        },
        namespace="default",
    )
    assert widgets.get(name="w", namespace="default").spec.size == 2
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.get(namespace="default").items == []
    events = []
    for event in widgets.watch(namespace="default", timeout=2):
        events.append((event["type"], event["object"].metadata.name))
        break
    assert events == [("ADDED", "w")]
    pods.delete(name="d", namespace="default")
    assert srv.list("pods") == []


def test_dynamic_client_server_side_apply(
    api_client: tuple[ApiServer, client.ApiClient], tmp_path: Path
) -> None:
    srv, api = api_client
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    intent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"k": "v"},
    }
    applied = configmaps.server_side_apply(body=intent, namespace="default", field_manager="ops")
    assert applied.data.k == "v"
    assert [e.manager for e in applied.metadata.managedFields] == ["ops"]
    intent["data"] = {"k": "mine"}
    with pytest.raises(ApiException) as info:
        configmaps.server_side_apply(body=intent, namespace="default", field_manager="other")
    assert info.value.status == 409
    forced = configmaps.server_side_apply(
        body=intent, namespace="default", field_manager="other", force_conflicts=True
    )
    assert forced.data.k == "mine"
    assert srv.get("configmaps", "c")["metadata"]["managedFields"][0]["manager"] == "other"
