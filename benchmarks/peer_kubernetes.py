"""Peer: the official ``kubernetes`` client, the way its users build a cache of pods.

Two ways, both with the generated (pydantic) models, as the client's users get them:

- ``informer``: ``kubernetes.informer.SharedInformer(list_namespaced_pod)``, which lists
  everything in one unpaged request, then watches, keeping models in its ``ObjectCache``;
- ``watch``: a paged ``list_namespaced_pod(limit=500)`` into a dict, then
  ``watch.Watch().stream(list_namespaced_pod, resource_version=...)``.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from .measure import Counter, Gate, MemoryProbe, Params, Result, cache_figures, cpu
from .server import Control

_TIMEOUT = 600.0


def _core_api(p: Params) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=p.kubeconfig))


def measure_informer(p: Params, ctl: Control) -> Result:
    """``SharedInformer``: time to a complete cache, memory per pod, then watch events/s."""
    from kubernetes.informer import ADDED, MODIFIED, SharedInformer

    v1 = _core_api(p)
    gate = Gate()

    @functools.wraps(v1.list_namespaced_pod)
    def list_pods(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("watch"):
            gate.wait()
        return v1.list_namespaced_pod(*args, **kwargs)

    probe = MemoryProbe(p.traced)
    probe.start()
    listed = Counter(p.pods)
    watched = Counter(p.events)
    informer = SharedInformer(list_pods, namespace=p.namespace)
    informer.add_event_handler(ADDED, listed.hit)
    informer.add_event_handler(MODIFIED, watched.hit)
    start, start_cpu = time.perf_counter(), cpu()
    informer.start()
    try:
        listed.wait(_TIMEOUT)
        ready_s, ready_cpu_s = listed.done_at - start, listed.done_cpu - start_cpu
        held = probe.held()
        watch_s = watch_cpu_s = None
        if p.events and not p.traced:
            ctl.modify(p.events)
            gate.open()
            watched.wait(_TIMEOUT)
            watch_s = watched.done_at - gate.opened_at
            watch_cpu_s = watched.done_cpu - gate.opened_cpu
    finally:
        gate.open()
        threading.Thread(target=informer.stop, daemon=True).start()
        probe.stop()
    assert len(informer.cache.list()) == p.pods
    return cache_figures(
        p, ready_s, held, watch_s, ready_cpu_s=ready_cpu_s, watch_cpu_s=watch_cpu_s
    )


def measure_watch(p: Params, ctl: Control) -> Result:
    """Paged list with models, then ``watch.Watch().stream``: the hand-written loop."""
    from kubernetes import watch

    v1 = _core_api(p)
    probe = MemoryProbe(p.traced)
    probe.start()
    start, start_cpu = time.perf_counter(), cpu()
    cache: dict[str, Any] = {}
    token = None
    while True:
        page = v1.list_namespaced_pod(p.namespace, limit=p.page_size, _continue=token)
        for pod in page.items:
            cache[pod.metadata.name] = pod
        token = page.metadata.var_continue
        if not token:
            break
    rv = page.metadata.resource_version
    ready_s, ready_cpu_s = time.perf_counter() - start, cpu() - start_cpu
    held = probe.held()
    probe.stop()
    assert len(cache) == p.pods
    watch_s = watch_cpu_s = None
    if p.events and not p.traced:
        ctl.modify(p.events)
        w = watch.Watch()
        seen = 0
        start, start_cpu = time.perf_counter(), cpu()
        for event in w.stream(
            v1.list_namespaced_pod, p.namespace, resource_version=rv, allow_watch_bookmarks=True
        ):
            if event["type"] != "MODIFIED":
                continue
            pod = event["object"]
            cache[pod.metadata.name] = pod
            seen += 1
            if seen == p.events:
                break
        watch_s, watch_cpu_s = time.perf_counter() - start, cpu() - start_cpu
        w.stop()
    return cache_figures(
        p, ready_s, held, watch_s, ready_cpu_s=ready_cpu_s, watch_cpu_s=watch_cpu_s
    )
