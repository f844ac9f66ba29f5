"""rxkube's benchmarks: ``python -m benchmarks``; see ``docs/performance.md``.

Modules: ``workload`` (the pods and their changes), ``server`` (the API server in a
process of its own), ``worker`` (one measurement per process), ``measure`` (timers and
memory probes), ``limit`` (raw read and ``orjson.loads`` of the same bytes),
``rxkube_bench`` (rxkube's scenarios), ``compact`` (memory options under evaluation),
``peer_*`` (the official client, kr8s, lightkube) and ``report`` (tables and ratios).
"""
