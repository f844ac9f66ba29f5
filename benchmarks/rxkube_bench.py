"""rxkube's own scenarios: list to a ready store, watch throughput, fan-out, memory levers.

The pipeline measured is the one users write::

    watcher(api).pipe(reflect(writer), applied_objects()).subscribe(on_next)

against the benchmark server in its own process. The MODIFIED events are written after
the list and before the watch opens (see ``measure.Gate``), so the watch replays them as
fast as rxkube reads.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import orjson

from rxkube.compact import ShareSubtrees

from .compact import InternStrings
from .limit import read_list
from .measure import (
    Counter,
    Gate,
    MemoryProbe,
    Params,
    Result,
    RssPeak,
    cache_figures,
    counting,
    cpu,
    full_collections,
    rss,
)
from .server import Control

_TIMEOUT = 600.0
_PASSES = 3


class _GatedApi:
    """An ``Api`` whose watch requests wait for the benchmark's gate; all else passes through."""

    def __init__(self, api: Any, gate: Gate) -> None:
        self._api = api
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def watch_stream(self, *args: Any, **kwargs: Any) -> Any:
        self._gate.wait()
        return self._api.watch_stream(*args, **kwargs)


def _drop_managed_fields(obj: dict[str, Any]) -> None:
    obj["metadata"].pop("managedFields", None)


def _unchanged(event: Any) -> Any:
    return event


def _gated_api(p: Params, gate: Gate) -> Any:
    """The pods ``Api`` of the benchmark server, from its kubeconfig, behind ``gate``."""
    from rxkube.client import Api, Client

    return _GatedApi(Api(Client.from_kubeconfig(p.kubeconfig), "pods", namespace=p.namespace), gate)


def _pipeline(p: Params, gate: Gate) -> tuple[Any, Any]:
    """The source Observable for ``p.option`` and the store reader/writer pair."""
    from reactivex.operators import map as rx_map

    from rxkube import metadata_watcher, store, watcher
    from rxkube.operators import metadata_only, modify
    from rxkube.protocol import Config

    api = _gated_api(p, gate)
    config = Config(page_size=p.page_size)
    levers: dict[str, Callable[[], list[Any]]] = {
        "full": list,
        # Any operator between the watcher and reflect() (here one passing events on as they
        # are) makes the watcher decode every line whole, spec and all.
        "whole_lines": lambda: [rx_map(_unchanged)],
        "gc_freeze": list,
        "drop_managed_fields": lambda: [modify(_drop_managed_fields)],
        "metadata_only": lambda: [metadata_only()],
        "metadata_watcher": list,
        "intern": lambda: [modify(InternStrings())],
        "share": lambda: [modify(ShareSubtrees())],
        "compact": list,
        "shared_parts": list,
        "unshared": list,
    }
    source = (metadata_watcher if p.option == "metadata_watcher" else watcher)(api, config)
    # Every other row uses the store's default: the parts of managedFields held once.
    shares = {"shared_parts": True, "unshared": False}
    options = {"share_subtrees": shares[p.option]} if p.option in shares else {}
    reader, writer = store("pods", compact=p.option == "compact", **options)
    return source.pipe(*levers[p.option or "full"]()), (reader, writer)


def measure_cache(p: Params, ctl: Control) -> Result:
    """watcher → [lever] → reflect → applied_objects → subscriber: ready time, memory, events/s."""
    from rxkube import reflect
    from rxkube.operators import applied_objects

    gate = Gate()
    probe = MemoryProbe(p.traced)
    source, (reader, writer) = _pipeline(p, gate)
    counter = Counter(p.pods + p.events)
    probe.start()
    tune_gc = p.option == "gc_freeze"
    if tune_gc:
        gc.disable()
    collections = full_collections()
    start, start_cpu = time.perf_counter(), cpu()
    subscription = source.pipe(reflect(writer), applied_objects()).subscribe(counter.hit)
    try:
        reader.wait_until_ready(_TIMEOUT)
        ready_s, ready_cpu_s = time.perf_counter() - start, cpu() - start_cpu
        collections = full_collections() - collections
        if tune_gc:
            # What an application can do once its caches are loaded: move everything
            # alive now out of the collector's reach, then turn it back on.
            gc.freeze()
            gc.enable()
        held = probe.held()
        assert len(reader) == p.pods, f"store holds {len(reader)} pods"
        watch_s = watch_cpu_s = watch_collections = updated = None
        if p.events and p.traced:
            # What the store holds once the watch has replaced its pods: an update is
            # decoded whole, so what the list shared must be shared again.
            ctl.modify(p.events)
            gate.open()
            counter.wait(_TIMEOUT)
            updated = probe.held()
        elif p.events:
            ctl.modify(p.events)
            watch_collections = full_collections()
            gate.open()
            counter.wait(_TIMEOUT)
            counting(False)
            watch_collections = full_collections() - watch_collections
            watch_s = counter.done_at - gate.opened_at
            watch_cpu_s = counter.done_cpu - gate.opened_cpu
    finally:
        gate.open()
        subscription.dispose()
        probe.stop()
    return cache_figures(
        p,
        ready_s,
        held,
        watch_s,
        ready_cpu_s=ready_cpu_s,
        watch_cpu_s=watch_cpu_s,
        ready_collections=collections,
        watch_collections=watch_collections,
        held_updated=updated,
    )


def measure_relist(p: Params, ctl: Control) -> Result:
    """Peak memory while a full store relists (the old state stays served until the swap)."""
    from rxkube import reflect
    from rxkube.operators import applied_objects

    gate = Gate()
    gate.open()
    probe = MemoryProbe(p.traced)
    source, (reader, writer) = _pipeline(p, gate)
    counter = Counter(2 * p.pods)
    probe.start()
    base_rss = rss()
    subscription = source.pipe(reflect(writer), applied_objects()).subscribe(counter.hit)
    try:
        reader.wait_until_ready(_TIMEOUT)
        steady = probe.held()
        probe.reset_peak()
        with RssPeak() as peak:
            start = time.perf_counter()
            ctl.relist()
            counter.wait(_TIMEOUT)
            relist_s = time.perf_counter() - start
        result: Result = {"relist_s": relist_s}
        if p.traced:
            result.update(
                relist_steady_traced_per_pod=steady / p.pods,
                relist_peak_traced_per_pod=probe.peak() / p.pods,
            )
        else:
            result.update(
                relist_steady_rss_per_pod=steady / p.pods,
                relist_peak_rss_per_pod=(peak.peak - base_rss) / p.pods,
            )
        return result
    finally:
        subscription.dispose()
        probe.stop()


def measure_shared(p: Params, ctl: Control) -> Result:
    """Live events through ``store_shared`` to ``p.subscribers`` subscribers: cost per event.

    With ``p.option == "reflect"`` the same events go through the plain pipeline instead
    (``reflect`` + ``applied_objects()`` to one subscriber), the baseline of the fan-out.
    The figure that counts is the client's CPU (every thread of this process) per event,
    from the gate's opening until every subscriber has every event: it includes each
    thread hand-off, and it does not depend on what else the machine runs.
    """
    from rxkube import reflect, reflect_shared, store, store_shared, watcher
    from rxkube.operators import applied_objects
    from rxkube.protocol import Config

    gate = Gate()
    api = _gated_api(p, gate)
    source = watcher(api, Config(page_size=p.page_size))
    start = time.perf_counter()
    # Every subscriber gets each listed object and each applied one.
    if p.option == "reflect":
        counters = [Counter(p.pods + p.events, marks=(p.pods,))]
        reader, writer = store("pods")
        pipeline = source.pipe(reflect(writer), applied_objects())
        subscriptions = [pipeline.subscribe(counters[0].hit)]
    else:
        counters = [Counter(p.pods + p.events, marks=(p.pods,)) for _ in range(p.subscribers)]
        reader, writer = store_shared(1024)
        subscriptions = [reader.subscribe().subscribe(c.hit) for c in counters]
        subscriptions.append(source.pipe(reflect_shared(writer)).subscribe())
    try:
        reader.wait_until_ready(_TIMEOUT)
        ready_s = time.perf_counter() - start
        for c in counters:
            c.wait(_TIMEOUT, mark=p.pods)
        ctl.modify(p.events)
        cpu_start = time.process_time()
        gate.open()
        for c in counters:
            c.wait(_TIMEOUT)
        cpu_s = time.process_time() - cpu_start
        counting(False)
        watch_s = max(c.done_at for c in counters) - gate.opened_at
    finally:
        gate.open()
        for s in reversed(subscriptions):
            s.dispose()
    return {
        "ready_s": ready_s,
        "watch_s": watch_s,
        "events_per_s": p.events / watch_s,
        "us_per_event": watch_s / p.events * 1e6,
        "cpu_us_per_event": cpu_s / p.events * 1e6,
    }


def _typical_read(obj: dict[str, Any]) -> int:
    """What a controller reads of a pod: labels, owner, phase, node, images, readiness."""
    meta = obj["metadata"]
    n = len(meta["labels"]["app.kubernetes.io/name"]) + len(meta["ownerReferences"][0]["uid"])
    n += len(obj["status"]["phase"]) + len(obj["spec"]["nodeName"])
    for container in obj["spec"]["containers"]:
        n += len(container["image"])
    for status in obj["status"]["containerStatuses"]:
        n += status["ready"]
    return n


def _decoded_through(fn: Callable[[Any], Any]) -> Callable[[bytes], Any]:
    def ingest(data: bytes) -> Any:
        return fn(orjson.loads(data))

    return ingest


def measure_read_cost(p: Params, ctl: Control) -> Result:
    """Each storage option on the same list bytes: memory per pod, ingest and read cost.

    Options: plain orjson dicts; ``InternStrings``; ``ShareSubtrees``; the encoded bytes
    kept and decoded on each read. Memory is traced; times are taken untraced.
    """
    import urllib3

    pages, _ = read_list(urllib3.PoolManager(), p)
    encoded = [orjson.dumps(item) for page in pages for item in orjson.loads(page)["items"]]
    del pages
    options: dict[str, Callable[[], Callable[[bytes], Any]]] = {
        "dicts": lambda: orjson.loads,
        "intern": lambda: _decoded_through(InternStrings()),
        "share": lambda: _decoded_through(ShareSubtrees()),
        "raw_bytes": lambda: lambda b: bytes(memoryview(b)),
    }
    reads: dict[str, Callable[[Any], int]] = {
        "raw_bytes": lambda b: _typical_read(orjson.loads(b)),
    }
    result: Result = {}
    for name, make in options.items():
        ingest = make()
        probe = MemoryProbe(True)
        probe.start()
        cache = [ingest(b) for b in encoded]
        result[f"{name}_traced_per_pod"] = probe.held() / len(encoded)
        probe.stop()
        del cache
        # Timed with the collector off (the work itself: with it on, the collections a
        # growing heap triggers dominate and favour options that keep fewer containers),
        # best of a few passes, since the machine may be shared.
        gc.disable()
        ingest_s = []
        for _ in range(_PASSES):
            ingest = make()
            start = time.perf_counter()
            cache = [ingest(b) for b in encoded]
            ingest_s.append(time.perf_counter() - start)
        gc.enable()
        result[f"{name}_ingest_us"] = min(ingest_s) / len(encoded) * 1e6
        read = reads.get(name, _typical_read)
        read_s = []
        for _ in range(_PASSES):
            start = time.perf_counter()
            for obj in cache:
                read(obj)
            read_s.append(time.perf_counter() - start)
        result[f"{name}_read_us"] = min(read_s) / len(encoded) * 1e6
        del cache
    return result
