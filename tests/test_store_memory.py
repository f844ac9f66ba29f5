"""What a store keeps in memory, over HTTP: relists that reuse unchanged objects, compact
encodings held at their size, and no list page kept alive after the list."""

from __future__ import annotations

import gc
import threading
import tracemalloc
import weakref
from typing import Any

import orjson

from rxkube import _cache, reflect, store, watcher
from rxkube.client import Api
from rxkube.events import Event, InitApply, InitDone, Object
from rxkube.operators import applied_objects, modify
from rxkube.protocol import Config
from rxkube.testing import ApiServer

TIMEOUT = 30.0


def _configmap(name: str, value: str = "v") -> Object:
    return {"metadata": {"name": name, "labels": {"app": "web"}}, "data": {"key": value}}


def test_a_relist_over_http_keeps_unchanged_objects_and_swaps_everything_at_once() -> None:
    reader, writer = store("configmaps", copy_on_read=False)
    with ApiServer() as srv:
        for i in range(12):
            srv.create("configmaps", _configmap(f"cm{i}"), namespace="default")
        api = Api(srv.client(), "configmaps", namespace="default")
        first = watcher(api, Config(page_size=5)).pipe(reflect(writer)).subscribe()
        try:
            reader.wait_until_ready(TIMEOUT)
        finally:
            first.dispose()
        cached = {o["metadata"]["name"]: o for o in reader.state()}
        assert len(cached) == 12
        srv.replace("configmaps", {**_configmap("cm3", "changed")}, namespace="default")
        srv.delete("configmaps", "cm7", namespace="default")
        srv.create("configmaps", _configmap("new"), namespace="default")

        # A second pipeline on the same writer lists again: a relist into a ready store.
        # Each relist event reaches this observer after the writer applied it.
        seen_during: list[tuple[int, str | None, bool]] = []
        swapped = threading.Event()

        def on_event(event: Event) -> None:
            if isinstance(event, InitApply):
                cm3 = reader.get("cm3", "default")
                seen_during.append(
                    (
                        len(reader),
                        None if cm3 is None else cm3["data"]["key"],
                        reader.get("cm7", "default") is not None
                        and reader.get("new", "default") is None,
                    )
                )
            elif isinstance(event, InitDone):
                swapped.set()

        second = watcher(api, Config(page_size=5)).pipe(reflect(writer)).subscribe(on_event)
        try:
            assert swapped.wait(TIMEOUT), "the relist did not complete"
        finally:
            second.dispose()

    assert len(seen_during) == 12
    assert all(seen == (12, "v", True) for seen in seen_during), (
        f"readers see the complete old state until the swap: {seen_during}"
    )
    now = {o["metadata"]["name"]: o for o in reader.state()}
    assert sorted(now) == sorted([*(f"cm{i}" for i in range(12) if i != 7), "new"])
    unchanged = [name for name in now if name in cached and name != "cm3"]
    assert len(unchanged) == 10
    assert all(now[name] is cached[name] for name in unchanged), (
        "a listed object with the cached uid and resourceVersion is the cached object"
    )
    assert now["cm3"] is not cached["cm3"] and now["cm3"]["data"] == {"key": "changed"}


def test_a_compact_store_holds_each_encoding_at_its_own_size() -> None:
    # ~4.3 KB each: orjson's output buffer for such an object has grown to 8 KB.
    blob = "x" * 4300
    reader, writer = store("configmaps", compact=True)
    # What the writer allocated and still holds (the test server runs in this process).
    by_writer = [tracemalloc.Filter(True, _cache.__file__, all_frames=True)]
    with ApiServer() as srv:
        for i in range(200):
            srv.create("configmaps", _configmap(f"cm{i:03}", blob), namespace="default")
        api = Api(srv.client(), "configmaps", namespace="default")
        tracemalloc.start(50)
        try:
            subscription = watcher(api, Config(page_size=50)).pipe(reflect(writer)).subscribe()
            try:
                reader.wait_until_ready(TIMEOUT)
                gc.collect()
                snapshot = tracemalloc.take_snapshot().filter_traces(by_writer)
            finally:
                subscription.dispose()
        finally:
            tracemalloc.stop()
    held = sum(stat.size for stat in snapshot.statistics("filename"))
    encodings = sum(len(orjson.dumps(obj)) for obj in reader.state())
    assert len(reader) == 200 and encodings > 200 * 4300
    assert held < 1.1 * encodings, (held, encodings)


class _Tag:
    """A marker put into each listed object, to see when the object is freed."""


def test_objects_the_watch_replaced_are_freed_and_no_list_page_is_held() -> None:
    tags: list[weakref.ref[_Tag]] = []

    def tag(obj: dict[str, Any]) -> None:
        if obj["data"]["key"] == "v":  # the listed version
            marker = _Tag()
            tags.append(weakref.ref(marker))
            obj["metadata"]["tag"] = marker

    reader, writer = store("configmaps", copy_on_read=False)
    replaced = threading.Event()

    def on_next(obj: Object) -> None:
        if sum(o["data"]["key"] == "changed" for o in reader.state()) == 10:
            replaced.set()

    with ApiServer() as srv:
        for i in range(10):
            srv.create("configmaps", _configmap(f"cm{i}"), namespace="default")
        api = Api(srv.client(), "configmaps", namespace="default")
        subscription = (
            watcher(api, Config(page_size=4))
            .pipe(modify(tag), reflect(writer), applied_objects())
            .subscribe(on_next)
        )
        try:
            reader.wait_until_ready(TIMEOUT)
            assert len(tags) == 10
            for i in range(10):
                srv.replace("configmaps", _configmap(f"cm{i}", "changed"), namespace="default")
            assert replaced.wait(TIMEOUT), "the watch did not deliver every change"
            gc.collect()
            # Watching still: the last page (2 objects) must not outlive the list.
            alive = [ref for ref in tags if ref() is not None]
            assert alive == [], f"{len(alive)} replaced objects are still held"
        finally:
            subscription.dispose()
