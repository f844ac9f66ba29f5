"""Peer: lightkube, with its sync client and its dataclass models.

``client.list(Pod, chunk_size=500)`` into a dict of models, then
``client.watch(Pod, resource_version=<the list's resourceVersion>)``.
"""

from __future__ import annotations

import time
from typing import Any

from .measure import (
    MemoryProbe,
    Params,
    Result,
    cache_figures,
    counting,
    cpu,
    full_collections,
)
from .server import Control


def measure(p: Params, ctl: Control) -> Result:
    """lightkube: time to a complete cache, memory per pod, watch events/s."""
    from lightkube import Client, KubeConfig
    from lightkube.resources.core_v1 import Pod

    client = Client(config=KubeConfig.from_file(p.kubeconfig))
    probe = MemoryProbe(p.traced)
    probe.start()
    collections = full_collections()
    start, start_cpu = time.perf_counter(), cpu()
    cache: dict[str, Any] = {}
    # Typed Any: lightkube's models declare metadata optional, and its watch's iterator
    # (a generator) to be a plain Iterator; the benchmark reads them as a user would.
    pod: Any
    listing = client.list(Pod, namespace=p.namespace, chunk_size=p.page_size)
    for pod in listing:
        cache[pod.metadata.name] = pod
    rv = listing.resourceVersion
    ready_s, ready_cpu_s = time.perf_counter() - start, cpu() - start_cpu
    collections = full_collections() - collections
    held = probe.held()
    assert len(cache) == p.pods, f"lightkube listed {len(cache)} pods"
    watch_s = watch_cpu_s = updated = watch_collections = None
    if p.events:
        ctl.modify(p.events)
        seen = 0
        counting(True)
        watch_collections = full_collections()
        start, start_cpu = time.perf_counter(), cpu()
        stream: Any = client.watch(Pod, namespace=p.namespace, resource_version=rv)
        for kind, pod in stream:
            if kind != "MODIFIED":
                continue
            cache[pod.metadata.name] = pod
            seen += 1
            if seen == p.events:
                break
        watch_s, watch_cpu_s = time.perf_counter() - start, cpu() - start_cpu
        watch_collections = full_collections() - watch_collections
        counting(False)
        stream.close()
        if p.traced:
            updated = probe.held()
            watch_s = watch_cpu_s = watch_collections = None
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
