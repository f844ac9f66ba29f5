"""The limit: reading the bytes off the socket, and ``orjson.loads`` over those same bytes.

No client can build a cache faster than it can read the server's answer and parse it, so
these two figures are what every other one is compared with. The reads use urllib3 (the
transport rxkube uses too) with the same page size and the same watch as the clients, on
the same server; the parse runs ``orjson.loads`` over exactly the bytes that were read.

Everything is timed in the client's CPU time, not wall time: a read's wall time is mostly
the server producing the bytes, which a client that reads and parses at once overlaps with
its parsing, so "read wall + parse" was no floor (rxkube's whole pipeline came out faster),
and on a shared machine wall time measures the other processes too. The CPU a client must
spend to take the bytes off the socket and decode them is a floor.
"""

from __future__ import annotations

import gc
from typing import Any

import orjson
import urllib3

from .measure import MemoryProbe, Params, Result, counting, cpu, full_collections
from .server import Control

_CHUNK = 1 << 16


def connect(p: Params, maxsize: int = 1) -> urllib3.PoolManager:
    """A urllib3 pool for the server of ``p``, with its token and CA when it has them."""
    return urllib3.PoolManager(
        maxsize=maxsize,
        ca_certs=p.ca_file,
        headers={"Authorization": f"Bearer {p.token}"} if p.token else None,
    )


def _pods_path(p: Params) -> str:
    return f"{p.url}/api/v1/namespaces/{p.namespace}/pods"


def read_list(http: urllib3.PoolManager, p: Params) -> tuple[list[bytes], str]:
    """Read every page of the pod list; return the raw bodies and the list's resourceVersion."""
    pages: list[bytes] = []
    fields: dict[str, str] = {"limit": str(p.page_size)}
    while True:
        resp = http.request("GET", _pods_path(p), fields=fields, preload_content=True)
        if resp.status != 200:
            raise RuntimeError(f"list failed: HTTP {resp.status}: {resp.data[:200]!r}")
        body = resp.data
        pages.append(body)
        meta = orjson.loads(body)["metadata"] if len(pages) == 1 else _tail_meta(body)
        token = meta.get("continue")
        if not token:
            first = orjson.loads(pages[0])["metadata"]
            return pages, str(first["resourceVersion"])
        fields = {"limit": str(p.page_size), "continue": token}


def _tail_meta(body: bytes) -> dict[str, Any]:
    # Only the list's metadata is needed between pages; parsing the whole page here
    # would count the parse in the read. The envelope's metadata comes before "items".
    head = body[: body.find(b'"items"')].rstrip(b", ")
    if head.startswith(b"{"):
        try:
            meta: dict[str, Any] = orjson.loads(head + b"}").get("metadata", {})
            return meta
        except orjson.JSONDecodeError:
            pass
    meta = orjson.loads(body).get("metadata", {})
    return meta


def read_watch(http: urllib3.PoolManager, p: Params, rv: str, lines: int) -> list[bytes]:
    """Open a watch from ``rv`` and read raw lines until ``lines`` of them have arrived."""
    resp = http.request(
        "GET",
        _pods_path(p),
        fields={"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true"},
        preload_content=False,
        timeout=urllib3.Timeout(connect=10, read=60),
    )
    if resp.status != 200:
        raise RuntimeError(f"watch failed: HTTP {resp.status}")
    chunks: list[bytes] = []
    seen = 0
    try:
        while seen < lines:
            chunk = resp.read1(_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            seen += chunk.count(b"\n")
    finally:
        resp.close()
    return b"".join(chunks).split(b"\n")[:lines]


def stream_into_cache(
    http: urllib3.PoolManager, p: Params, rv: str, events: int, cache: dict[str, Any]
) -> None:
    """The leanest watching cache: read a watch from ``rv`` and, as the bytes arrive, decode
    each line and replace the object in ``cache``, until ``events`` lines are done.

    One pass, as a client does it: the bytes are parsed while hot in the CPU cache and the
    server produces the next ones meanwhile, so this is the floor for rxkube's watch row.
    """
    resp = http.request(
        "GET",
        _pods_path(p),
        fields={"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true"},
        preload_content=False,
        timeout=urllib3.Timeout(connect=10, read=60),
    )
    if resp.status != 200:
        raise RuntimeError(f"watch failed: HTTP {resp.status}")
    loads = orjson.loads
    left, tail = events, b""
    try:
        for block in resp.read_chunked(_CHUNK):
            *lines, tail = (tail + block).split(b"\n")
            for line in lines[:left]:
                obj = loads(line)["object"]
                cache[obj["metadata"]["name"]] = obj
            left -= len(lines)
            if left <= 0:
                return
    finally:
        resp.close()
    raise RuntimeError(f"the watch ended {left} events short")


def _parse_pages(pages: list[bytes]) -> dict[str, Any]:
    """Decode list pages into a name-to-pod dict, as the simplest cache would."""
    cache: dict[str, Any] = {}
    for body in pages:
        for item in orjson.loads(body)["items"]:
            cache[item["metadata"]["name"]] = item
    return cache


def measure_limit(p: Params, ctl: Control) -> Result:
    """Raw read and orjson parse of the list pages and of the watch stream."""
    http = connect(p, maxsize=2)
    result: Result = {"pods": p.pods, "events": p.events}

    start = cpu()
    pages, _ = read_list(http, p)
    read_s = cpu() - start
    total = sum(len(b) for b in pages)
    result.update(list_read_s=read_s, list_bytes=total, bytes_per_pod=total / p.pods)

    if not p.traced:
        # The same parse with the cyclic collector off: what the bytes cost to decode,
        # without the collections that a growing heap of containers triggers.
        gc.disable()
        start = cpu()
        _parse_pages(pages)
        result["list_parse_nogc_s"] = cpu() - start
        gc.enable()
        gc.collect()

    probe = MemoryProbe(p.traced)
    probe.start()
    collections = full_collections()
    start = cpu()
    cache = _parse_pages(pages)
    parse_s = cpu() - start
    result["list_full_collections"] = full_collections() - collections
    held = probe.held()
    probe.stop()
    assert len(cache) == p.pods, f"listed {len(cache)} pods, expected {p.pods}"
    result.update(list_parse_s=parse_s, list_read_parse_s=read_s + parse_s)
    result["mem_traced_per_pod" if p.traced else "mem_rss_per_pod"] = held / p.pods
    del pages

    if p.events and not p.traced:
        # Replay the events rxkube's measurement just consumed, when the server still has
        # them: the very same bytes. Otherwise make a batch of our own.
        batch = ctl.info()["last_batch"]
        if batch is None or batch[1] - batch[0] < p.events:
            batch = ctl.modify(p.events)["last_batch"]
        start = cpu()
        lines = read_watch(http, p, str(batch[0]), p.events)
        watch_read_s = cpu() - start
        loads = orjson.loads
        start = cpu()
        for line in lines:
            loads(line)
        watch_parse_s = cpu() - start
        watch_bytes = sum(len(x) + 1 for x in lines)
        # Any cache also replaces the object it held, which frees each replaced pod (cold
        # memory, ~100 containers) as a store does: read, parse and replace in one pass.
        del lines
        counting(True)
        collections = full_collections()
        start = cpu()
        stream_into_cache(http, p, str(batch[0]), p.events, cache)
        watch_cache_s = cpu() - start
        collections = full_collections() - collections
        counting(False)
        result["watch_full_collections"] = collections
        result.update(
            watch_read_s=watch_read_s,
            watch_parse_s=watch_parse_s,
            watch_stream_cache_s=watch_cache_s,
            watch_bytes=watch_bytes,
            read_events_per_s=p.events / watch_read_s,
            parse_events_per_s=p.events / watch_parse_s,
        )
    http.clear()
    return result
