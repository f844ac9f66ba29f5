"""AsyncApi over real HTTP: the methods of Api as coroutines, with the client's TLS and auth."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from rxkube.aio import AsyncApi, AsyncClient
from rxkube.client import Api, Client
from rxkube.errors import ConfigError, Conflict, Invalid, NotFound, TransportError, Unauthorized
from rxkube.testing import ApiServer

TOKEN = "s3cret"
_T = TypeVar("_T")


def run(main: Callable[[], Awaitable[_T]]) -> _T:
    return asyncio.run(asyncio.wait_for(main(), 30))


def test_crud_as_coroutines_answers_as_the_blocking_api(srv: ApiServer, client: Client) -> None:
    async def main() -> None:
        async with AsyncClient(client) as aclient:
            cms = AsyncApi(aclient, "configmaps", namespace="default")
            created = await cms.create({"metadata": {"name": "a"}, "data": {"k": "v"}})
            assert created["metadata"]["resourceVersion"]
            assert (await cms.get("a"))["data"] == {"k": "v"}
            patched = await cms.patch("a", {"data": {"k": "w"}})
            assert patched["data"] == {"k": "w"}
            patched["data"]["extra"] = "1"
            replaced = await cms.replace(patched)
            assert replaced["data"] == {"k": "w", "extra": "1"}
            with pytest.raises(Conflict):
                await cms.create({"metadata": {"name": "a"}})
            with pytest.raises(Invalid):
                await cms.patch("a", [{"op": "test", "path": "/data/k", "value": "x"}], type="json")
            with pytest.raises(ValueError, match="field_manager"):
                await cms.patch("a", {}, type="apply")
            meta = await cms.get("a", metadata_only=True)
            assert meta["kind"] == "PartialObjectMetadata" and "data" not in meta
            await cms.delete("a")
            with pytest.raises(NotFound):
                await cms.get("a")

    run(main)
    assert srv.list("configmaps", namespace="default") == []


def test_list_follows_continue_tokens_like_the_blocking_api(client: Client) -> None:
    blocking = Api(client, "configmaps", namespace="default")
    for i in range(7):
        blocking.create({"metadata": {"name": f"cm-{i}", "labels": {"odd": str(i % 2)}}})

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with AsyncClient(client) as aclient:
            cms = AsyncApi(aclient, "configmaps", namespace="default")
            return await cms.list(limit=3), await cms.list(label_selector="odd=1")

    paged, odd = run(main)
    assert [i["metadata"]["name"] for i in paged["items"]] == [f"cm-{i}" for i in range(7)]
    assert "continue" not in paged["metadata"]
    assert paged == blocking.list(limit=3) or paged["items"] == blocking.list()["items"]
    assert [i["metadata"]["name"] for i in odd["items"]] == ["cm-1", "cm-3", "cm-5"]


def test_custom_resources_and_status_subresource(srv: ApiServer, client: Client) -> None:
    srv.add_resource("example.com", "v1", "Widget", "widgets")

    async def main() -> dict[str, Any]:
        async with AsyncClient(client) as aclient:
            widgets = AsyncApi(aclient, "widgets", namespace="default")
            assert widgets.sync.resource == widgets.resource
            created = await widgets.create({"metadata": {"name": "w"}, "spec": {"size": 1}})
            created["status"] = {"ready": True}
            return await widgets.replace_status(created)

    assert run(main)["status"] == {"ready": True}


def test_tls_token_and_a_refreshing_auth_hook_come_from_the_client() -> None:
    with ApiServer(token=TOKEN, tls=True, bookmark_interval=None) as srv:
        hook_threads: list[str] = []

        def auth() -> dict[str, str]:
            hook_threads.append(threading.current_thread().name)
            return {"Authorization": f"Bearer {TOKEN}"}

        async def main(client: Client) -> dict[str, Any]:
            async with AsyncClient(client) as aclient:
                return await AsyncApi(aclient, "namespaces").get("default")

        with Client(srv.url, ca_file=srv.ca_file, auth=auth) as client:
            loop_thread = threading.current_thread().name
            assert run(lambda: main(client))["metadata"]["name"] == "default"
            assert hook_threads and loop_thread not in hook_threads  # run off the loop
        with Client(srv.url, ca_file=srv.ca_file) as client, pytest.raises(Unauthorized):
            run(lambda: main(client))
        with Client(srv.url, token=TOKEN) as client, pytest.raises(TransportError) as info:
            run(lambda: main(client))  # the test CA is not trusted without ca_file
        assert "certificate verify" in str(info.value) or "TLS" in str(info.value)


def test_an_unreachable_server_is_a_transport_error() -> None:
    with ApiServer() as srv:
        url = srv.url
    with Client(url, connect_timeout=2) as client:

        async def main() -> None:
            async with AsyncClient(client) as aclient:
                await AsyncApi(aclient, "configmaps", namespace="default").get("x")

        with pytest.raises(
            TransportError, match=f"GET /api/v1/namespaces/default/configmaps/x on {url} failed"
        ):
            run(main)


def test_a_socks_proxy_is_refused_with_a_clear_error() -> None:
    pytest.importorskip("socks", reason="a SOCKS client needs PySocks")
    with (
        Client("http://127.0.0.1:1", proxy="socks5://127.0.0.1:1080") as client,
        pytest.raises(ConfigError, match="only http:// and https:// proxies"),
    ):
        AsyncClient(client)


def test_one_async_client_belongs_to_one_loop_at_a_time(client: Client) -> None:
    aclient = AsyncClient(client)
    cms = AsyncApi(aclient, "namespaces")

    async def first() -> None:
        await cms.get("default")

    async def second() -> None:
        with pytest.raises(RuntimeError, match="another event loop"):
            await cms.get("default")

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(first())
        run(second)
        loop.run_until_complete(aclient.aclose())
        loop.run_until_complete(first())  # closed: a fresh session on first use
        loop.run_until_complete(aclient.aclose())
    finally:
        loop.close()


def test_an_async_api_can_be_watched(client: Client) -> None:
    from rxkube import aio
    from rxkube.events import InitApply, InitDone

    Api(client, "configmaps", namespace="default").create({"metadata": {"name": "seen"}})

    async def main() -> list[str]:
        async with AsyncClient(client) as aclient:
            cms = AsyncApi(aclient, "configmaps", namespace="default")
            names = []
            async for event in aio.watcher(cms):
                if isinstance(event, InitApply):
                    names.append(event.obj["metadata"]["name"])
                elif isinstance(event, InitDone):
                    return names
        return names

    assert run(main) == ["seen"]


def test_names_and_namespaces_that_are_no_path_segment_are_refused(client: Client) -> None:
    """``namespaces/default/configmaps/..`` is sent as the namespace's own path."""
    configmaps = Api(client, "configmaps", namespace="default")
    configmaps.create({"metadata": {"name": "keep"}})

    async def main() -> None:
        async with AsyncClient(client) as aclient:
            with pytest.raises(ValueError, match=r"invalid namespace '\.\.': may not be '\.\.'"):
                AsyncApi(aclient, "configmaps", namespace="..")
            with pytest.raises(TypeError, match="namespace must be a string or None, not 5"):
                AsyncApi(aclient, "configmaps", namespace=5)  # type: ignore[arg-type]
            cms = AsyncApi(aclient, "configmaps", namespace="default")
            for call in (
                lambda: cms.delete(".."),
                lambda: cms.get("."),
                lambda: cms.patch("a/b", {"data": {"k": "v"}}),
                lambda: cms.replace({"metadata": {"name": ".."}}),
                lambda: cms.replace_status({"metadata": {"name": ".."}}),
            ):
                with pytest.raises(ValueError, match="invalid resource name"):
                    await call()
            with pytest.raises(ValueError, match="invalid namespace 'a%b'"):
                await cms.create({"metadata": {"name": "x", "namespace": "a%b"}})

    run(main)
    assert Api(client, "namespaces").get("default")["status"]["phase"] == "Active"
    assert [cm["metadata"]["name"] for cm in configmaps.list()["items"]] == ["keep"]


def test_an_async_api_scoped_to_a_namespace_refuses_an_object_naming_another(
    srv: ApiServer, client: Client
) -> None:
    for team in ("team-a", "team-b"):
        Api(client, "namespaces").create({"metadata": {"name": team}})
    Api(client, "configmaps", namespace="team-b").create({"metadata": {"name": "cm"}})
    named_b = {"metadata": {"name": "cm", "namespace": "team-b"}, "data": {"owner": "a"}}

    async def main() -> None:
        async with AsyncClient(client) as aclient:
            team_a = AsyncApi(aclient, "configmaps", namespace="team-a")
            srv.clear_requests()
            for call in (
                lambda: team_a.create(named_b),
                lambda: team_a.replace(named_b),
                lambda: team_a.replace_status(named_b),
                lambda: team_a.patch("cm", named_b),
                lambda: team_a.patch("cm", named_b, type="apply", field_manager="t"),
            ):
                with pytest.raises(ValueError, match="'team-b' does not match the namespace"):
                    await call()
            assert srv.requests == []
            written = await team_a.replace(named_b, namespace="team-b")
            assert written["metadata"]["namespace"] == "team-b"

    run(main)
    assert srv.list("configmaps", namespace="team-a") == []
