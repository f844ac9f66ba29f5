"""Peer: kr8s, with its asyncio API (the sync API wraps it in a thread per call).

The cache is built the way kr8s's documentation suggests: ``api.async_get("pods")``
(kr8s pages at 100, which it does not let the caller change) into a dict of ``Pod``
objects, then ``api.async_watch("pods", since=...)`` from the newest resourceVersion
listed (kr8s does not expose the list's own resourceVersion).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .measure import MemoryProbe, Params, Result, cache_figures, cpu
from .server import Control


async def _run(p: Params, ctl: Control) -> Result:
    import kr8s.asyncio

    api = await kr8s.asyncio.api(kubeconfig=p.kubeconfig)
    await api.version()
    probe = MemoryProbe(p.traced)
    probe.start()
    start, start_cpu = time.perf_counter(), cpu()
    cache: dict[str, Any] = {}
    newest = 0
    pod: Any  # kr8s types what it yields as APIObject | dict; these are APIObjects
    async for pod in api.async_get("pods", namespace=p.namespace):
        cache[pod.name] = pod
        newest = max(newest, int(pod.metadata.resourceVersion))
    ready_s, ready_cpu_s = time.perf_counter() - start, cpu() - start_cpu
    held = probe.held()
    probe.stop()
    assert len(cache) == p.pods, f"kr8s listed {len(cache)} pods"
    watch_s = watch_cpu_s = None
    if p.events and not p.traced:
        await asyncio.to_thread(ctl.modify, p.events)
        seen = 0
        start, start_cpu = time.perf_counter(), cpu()
        stream = api.async_watch("pods", namespace=p.namespace, since=str(newest))
        async for kind, pod in stream:
            if kind != "MODIFIED":
                continue
            cache[pod.name] = pod
            seen += 1
            if seen == p.events:
                break
        watch_s, watch_cpu_s = time.perf_counter() - start, cpu() - start_cpu
        await stream.aclose()
    return cache_figures(
        p, ready_s, held, watch_s, ready_cpu_s=ready_cpu_s, watch_cpu_s=watch_cpu_s
    )


def measure(p: Params, ctl: Control) -> Result:
    """kr8s: time to a complete cache, memory per pod, watch events/s."""
    return asyncio.run(_run(p, ctl))
