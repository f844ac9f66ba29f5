"""``python -m benchmarks.reads [--pods N]``: what a store read costs, with and without its copy.

A store hands out copies by default (``copy_on_read=True``), so a reader may change what it
got without corrupting the cache; ``copy_on_read=False`` hands out the cached objects
themselves. This measures both on realistic pods (``workload.make_pod``, ~4.5 KB of JSON
each), plain and shared by ``ShareSubtrees``, and prints a Markdown table with the ratios:

- ``get``: one object by name, what a reconcile receives;
- ``state, scanned``: a snapshot of the whole store read one object at a time
  (``for pod in reader.state()``), per object;
- ``state, kept``: the same snapshot made a list (``list(reader.state())``), every copy
  alive at once, which is what ``state()`` cost before it returned a lazy ``Snapshot``;
- ``by_index, scanned``: the objects under one index key, read one at a time, per object.

The copy is ``rxkube._cache.copy_object`` (dicts and lists copied, everything else shared);
an orjson round trip and ``copy.deepcopy`` are measured beside it for scale.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import orjson

from rxkube import Store, index_namespace, store
from rxkube._cache import copy_object
from rxkube.compact import ShareSubtrees
from rxkube.events import Apply

from .workload import make_pod


def _per_call(fn: Callable[[], Any], *, seconds: float = 0.3) -> float:
    """Seconds per call of ``fn``: the best of three runs of about ``seconds`` each."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 10:
            break
        calls *= 4
    calls = max(1, int(calls * seconds / 10 / max(elapsed, 1e-9)))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def _scan(objects: Iterable[Any]) -> None:
    for _ in objects:
        pass


def measure(pods: int) -> list[tuple[str, float, float]]:
    """(read, µs with the copy, µs without) for each read, plain and ShareSubtrees'd."""
    rows = []
    name = make_pod(pods // 2)["metadata"]["name"]
    namespace = make_pod(0)["metadata"]["namespace"]
    reads: dict[str, tuple[Callable[[Store], Any], int]] = {
        "get": (lambda r: r.get(name, namespace), 1),
        "state, scanned": (lambda r: _scan(r.state()), pods),
        "state, kept": (lambda r: list(r.state()), pods),
        "by_index, scanned": (lambda r: _scan(r.by_index("namespace", namespace)), pods),
    }
    for label, share in (("plain", None), ("ShareSubtrees", ShareSubtrees())):
        stores: dict[bool, Store] = {}
        for copying in (True, False):
            reader, writer = store("pods", copy_on_read=copying)
            reader.add_index("namespace", index_namespace)
            for i in range(pods):
                pod = make_pod(i)
                writer.apply(Apply(share(pod) if share is not None else pod))
            stores[copying] = reader
        for read, (fn, per) in reads.items():
            with_copy = _per_call(partial(fn, stores[True])) / per
            without = _per_call(partial(fn, stores[False])) / per
            rows.append((f"{read} ({label})", with_copy * 1e6, without * 1e6))
    pod = make_pod(0)
    others: list[tuple[str, Callable[[], Any]]] = [
        ("orjson round trip", lambda: orjson.loads(orjson.dumps(pod))),
        ("copy.deepcopy", lambda: copy.deepcopy(pod)),
    ]
    for how, other in others:
        rows.append(
            (f"one pod, {how}", _per_call(other) * 1e6, _per_call(lambda: copy_object(pod)) * 1e6)
        )
    return rows


def table(rows: list[tuple[str, float, float]], pods: int) -> str:
    """The Markdown report of :func:`measure`."""
    lines = [
        f"## Store reads ({pods:,} pods of ~{len(orjson.dumps(make_pod(0))):,} bytes)",
        "",
        "| read | µs per object, copy_on_read=True | µs, copy_on_read=False | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for read, with_copy, without in rows:
        if read.startswith("one pod"):
            continue
        lines.append(f"| {read} | {with_copy:.2f} | {without:.3f} | {with_copy / without:.0f}x |")
    lines += ["", "| copying one pod | µs | copy_object ratio |", "| --- | ---: | ---: |"]
    for read, other, ours in rows:
        if read.startswith("one pod"):
            lines.append(
                f"| {read.removeprefix('one pod, ')} | {other:.1f} | {ours / other:.2f}x |"
            )
    lines.append(f"| copy_object (what a store does) | {rows[-1][2]:.1f} | 1.00x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the measurement and print its table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reads")
    parser.add_argument("--pods", type=int, default=2000, help="pods in the store")
    args = parser.parse_args(argv)
    print(table(measure(args.pods), args.pods))


if __name__ == "__main__":
    main()
