"""Turns the figures of one benchmark run into Markdown tables, ratios and target checks.

Every figure is shown next to its ratio against the limit (the raw read and
``orjson.loads`` of the same bytes) and, for rxkube, against each peer. The targets of
issues 8 and 12 are reported, never asserted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Runs = dict[str, dict[str, Any]]

X = "\u00d7"
"""The multiplication sign that marks a ratio."""
_NONE = "\u2013"

PEERS: dict[str, str] = {
    "kubernetes_informer": "kubernetes SharedInformer",
    "kubernetes_watch": "kubernetes list+Watch (models)",
    "kr8s": "kr8s (asyncio)",
    "lightkube": "lightkube",
}
"""Peer measurement names and how the tables call them."""

LEVERS: dict[str, str] = {
    "rxkube": "rxkube: full objects",
    "rxkube:gc_freeze": "rxkube: full, gc off in list, gc.freeze() at ready",
    "rxkube:drop_managed_fields": "rxkube: modify(drop managedFields)",
    "rxkube:metadata_only": "rxkube: metadata_only()",
    "rxkube:metadata_watcher": "rxkube: metadata_watcher()",
    "rxkube:intern": "rxkube: modify(InternStrings())",
    "rxkube:share": "rxkube: modify(ShareSubtrees())",
}
"""rxkube cache measurements (one per memory lever) and their row labels."""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    body = [
        "| " + " | ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return "\n".join([line, rule, *body])


def _num(x: float | None, digits: int = 0) -> str:
    if x is None:
        return _NONE
    return f"{x:,.{digits}f}"


def _ratio(x: float | None, y: float | None) -> str:
    if not x or not y:
        return _NONE
    return f"{x / y:.2f}{X}"


def _kb(x: float | None) -> str:
    return _NONE if x is None else f"{x / 1024:.1f}"


def cache_table(runs: Runs) -> str:
    """One row per client: list→ready, watch events/s and memory per pod, with ratios."""
    limit = runs.get("limit", {})
    parse_s = limit.get("list_parse_s")
    parse_pods_s = limit["pods"] / parse_s if parse_s else None
    parse_ev_s = limit.get("parse_events_per_s")
    dict_mem = limit.get("mem_traced_per_pod")
    rows: list[list[str]] = []

    def row(
        label: str,
        ready_s: float | None,
        pods_s: float | None,
        ev_s: float | None,
        traced: float | None,
        rss: float | None,
    ) -> None:
        rows.append(
            [
                label,
                _num(ready_s, 2),
                _num(pods_s),
                _ratio(pods_s, parse_pods_s),
                _num(ev_s),
                _ratio(ev_s, parse_ev_s),
                _kb(traced),
                _kb(rss),
                _ratio(traced, dict_mem),
            ]
        )

    if limit.get("list_read_s"):
        read_s = limit["list_read_s"]
        row(
            "limit: raw read (urllib3, client CPU)",
            read_s,
            limit["pods"] / read_s,
            limit.get("read_events_per_s"),
            None,
            None,
        )
        row(
            "limit: orjson.loads",
            limit["list_parse_s"],
            parse_pods_s,
            parse_ev_s,
            dict_mem,
            limit.get("mem_rss_per_pod"),
        )
        nogc = limit.get("list_parse_nogc_s")
        row(
            "limit: orjson.loads, gc off",
            nogc,
            limit["pods"] / nogc if nogc else None,
            None,
            None,
            None,
        )
        both = limit["list_read_parse_s"]
        ev_both = ev_cache = None
        if limit.get("watch_read_s"):
            ev_both = limit["events"] / (limit["watch_read_s"] + limit["watch_parse_s"])
            ev_cache = limit["events"] / limit["watch_stream_cache_s"]
        row("limit: read + orjson.loads", both, limit["pods"] / both, ev_both, None, None)
        row("limit: read + loads + dict-cache replace", None, None, ev_cache, None, None)
    for name, label in [*LEVERS.items(), *PEERS.items()]:
        r = runs.get(name)
        if r is None:
            continue
        if "error" in r:
            rows.append([label, f"failed: {r['error'][:60]}", *[""] * 7])
            continue
        row(
            label,
            r.get("ready_s"),
            r.get("pods_per_s"),
            r.get("events_per_s"),
            r.get("mem_traced_per_pod"),
            r.get("mem_rss_per_pod"),
        )
    header = [
        "client",
        "list→ready s",
        "pods/s",
        f"{X} parse",
        "watch ev/s",
        f"{X} parse",
        "KiB/pod traced",
        "KiB/pod RSS",
        f"{X} orjson dict",
    ]
    return _table(header, rows)


def peer_table(runs: Runs) -> str:
    """rxkube (full objects) against each peer: how many times faster, how much memory."""
    ours = runs.get("rxkube", {})
    rows = []
    for name, label in PEERS.items():
        peer = runs.get(name)
        if not peer or "error" in peer:
            continue
        rows.append(
            [
                label,
                _ratio(peer.get("ready_s"), ours.get("ready_s")),
                _ratio(ours.get("events_per_s"), peer.get("events_per_s")),
                _ratio(ours.get("mem_traced_per_pod"), peer.get("mem_traced_per_pod")),
                _ratio(ours.get("mem_rss_per_pod"), peer.get("mem_rss_per_pod")),
            ]
        )
    header = [
        "rxkube vs",
        "faster to ready",
        f"watch ev/s {X}",
        f"memory {X} (traced)",
        f"memory {X} (RSS)",
    ]
    return _table(header, rows)


def _fanout_widths(runs: Runs) -> list[int]:
    """The subscriber counts of the ``store_shared`` fan-out runs, smallest first."""
    tails = (k.rsplit(":", 1)[1] for k in runs if k.startswith("rxkube:shared:"))
    return sorted(int(tail) for tail in tails if tail.isdigit())


def _cpu_per_event(runs: Runs, key: str) -> float | None:
    figure: float | None = runs.get(key, {}).get("cpu_us_per_event")
    return figure


def fanout_table(runs: Runs) -> str:
    """Live events through ``store_shared`` to 1, 10, 100 subscribers, against plain ``reflect``.

    One row per pipeline over the same events in the same run: wall time, and the client's
    CPU per event with its ratio to plain ``reflect`` + ``applied_objects()`` and to one
    shared subscriber.
    """
    widths = _fanout_widths(runs)
    plain = _cpu_per_event(runs, "rxkube:shared:reflect")
    one = _cpu_per_event(runs, f"rxkube:shared:{widths[0]}") if widths else None
    rows = []
    keys = [("rxkube:shared:reflect", "reflect + applied_objects()")]
    keys += [(f"rxkube:shared:{n}", f"store_shared, {n} subscriber{'s' * (n > 1)}") for n in widths]
    for key, label in keys:
        r = runs.get(key)
        if r is None:
            continue
        if "error" in r:
            rows.append([label, f"failed: {r['error'][:60]}", "", "", "", ""])
            continue
        cpu = r.get("cpu_us_per_event")
        rows.append(
            [
                label,
                _num(r["events_per_s"]),
                _num(r["us_per_event"], 1),
                _num(cpu, 1),
                _ratio(cpu, plain),
                _ratio(cpu, one) if key != "rxkube:shared:reflect" else _NONE,
            ]
        )
    header = [
        "pipeline",
        "events/s",
        "wall µs/event",
        "client CPU µs/event",
        f"CPU {X} reflect",
        f"CPU {X} 1 subscriber",
    ]
    return _table(header, rows)


def options_table(runs: Runs) -> str:
    """Storage options on the same list bytes: memory, ingest and read cost per pod."""
    r = runs.get("options", {})
    base = r.get("dicts_traced_per_pod")
    labels = {
        "dicts": "orjson dicts (rxkube default)",
        "intern": "InternStrings (shared strings)",
        "share": "ShareSubtrees (shared strings + subtrees)",
        "raw_bytes": "raw JSON bytes, decoded per read",
    }
    rows = []
    for key, label in labels.items():
        if f"{key}_traced_per_pod" not in r:
            continue
        rows.append(
            [
                label,
                _kb(r[f"{key}_traced_per_pod"]),
                _ratio(r[f"{key}_traced_per_pod"], base),
                _num(r[f"{key}_ingest_us"], 1),
                _num(r[f"{key}_read_us"], 2),
            ]
        )
    return _table(
        ["storage", "KiB/pod", f"{X} dicts", "ingest µs/pod (gc off)", "read µs/pod"], rows
    )


def relist_table(runs: Runs) -> str:
    """Memory held steady, and at the peak of a full relist, per pod."""
    r = runs.get("rxkube:relist", {})
    rows = []
    for how in ("traced", "rss"):
        steady = r.get(f"relist_steady_{how}_per_pod")
        peak = r.get(f"relist_peak_{how}_per_pod")
        if steady is not None:
            rows.append([how, _kb(steady), _kb(peak), _ratio(peak, steady)])
    return _table(
        ["measured by", "KiB/pod steady", "KiB/pod peak in relist", f"peak {X} steady"], rows
    )


def targets(runs: Runs) -> list[str]:
    """The issue's targets, each with the figure that meets or misses it."""
    out: list[str] = []
    limit, ours = runs.get("limit", {}), runs.get("rxkube", {})

    def check(ok: bool | None, text: str) -> None:
        mark = "n/a " if ok is None else ("met " if ok else "MISS")
        out.append(f"[{mark}] {text}")

    if limit.get("list_parse_s") and ours.get("ready_s"):
        x = limit["list_parse_s"] / ours["ready_s"]
        check(x >= 0.6, f"list→ready at {x:.2f}{X} the orjson parse rate (target ≥ 0.6{X})")
    if limit.get("parse_events_per_s") and ours.get("events_per_s"):
        x = ours["events_per_s"] / limit["parse_events_per_s"]
        check(x >= 0.6, f"watch at {x:.2f}{X} the orjson parse rate (target ≥ 0.6{X})")
    inf = runs.get("kubernetes_informer", {})
    if inf.get("ready_s") and ours.get("ready_s"):
        x = inf["ready_s"] / ours["ready_s"]
        check(x >= 5, f"{x:.1f}{X} faster to a ready cache than SharedInformer (target ≥ 5{X})")
    if inf.get("mem_traced_per_pod") and ours.get("mem_traced_per_pod"):
        x = ours["mem_traced_per_pod"] / inf["mem_traced_per_pod"]
        check(x <= 0.5, f"{x:.2f}{X} SharedInformer's memory per pod (target ≤ 0.5{X})")
    widths = _fanout_widths(runs)
    plain = _cpu_per_event(runs, "rxkube:shared:reflect")
    one = _cpu_per_event(runs, f"rxkube:shared:{widths[0]}") if widths else None
    if plain and one and widths[0] == 1:
        x = one / plain
        check(
            x <= 1.25,
            f"one store_shared subscriber costs {x:.2f}{X} the client CPU per live event of "
            f"reflect + applied_objects() (target ≤ 1.25{X})",
        )
    if len(widths) > 1:
        many = _cpu_per_event(runs, f"rxkube:shared:{widths[-1]}")
        if one and many:
            x = many / one
            check(
                x <= 2,
                f"{widths[-1]} shared subscribers cost {x:.2f}{X} the client CPU per live event "
                f"of {widths[0]} (target ≤ 2{X})",
            )
    if limit.get("mem_traced_per_pod") and ours.get("mem_traced_per_pod"):
        x = ours["mem_traced_per_pod"] / limit["mem_traced_per_pod"]
        check(x <= 1.0, f"full pod cached at {x:.2f}{X} an orjson dict of it (target ≤ 1{X})")
    best = (
        min(
            (runs[k]["mem_traced_per_pod"], k)
            for k in ("rxkube:intern", "rxkube:share")
            if runs.get(k, {}).get("mem_traced_per_pod")
        )
        if any(runs.get(k, {}).get("mem_traced_per_pod") for k in ("rxkube:intern", "rxkube:share"))
        else None
    )
    if best and limit.get("mem_traced_per_pod"):
        x = best[0] / limit["mem_traced_per_pod"]
        check(
            x <= 0.5,
            f"best full-object option ({best[1]}) at {x:.2f}{X} an orjson dict (well below: ≤ 0.5{X})",
        )
    return out


def render(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    runs: Runs = results["runs"]
    p = results["params"]
    m = results["machine"]
    parts = [
        f"# rxkube benchmarks: {p['pods']:,} pods (~{_kb(runs.get('limit', {}).get('bytes_per_pod'))} "
        f"KiB of JSON each), {p['events']:,} MODIFIED events, pages of {p['page_size']}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']:.0f} GiB; Python {m['python']}; "
        f"load average at start {m['loadavg']}.",
        f"Server: rxkube.testing.ApiServer in its own process (pods loaded in {p['load_s']:.1f} s).",
        "",
        "## Cache: list → ready store, watch throughput, memory per cached pod",
        "",
        cache_table(runs),
        "",
        f"Watch rates of the peers are measured over {p['peer_events']:,} events; "
        f"rxkube levers over {p['lever_events']:,}.",
        "",
        "## rxkube against each peer",
        "",
        peer_table(runs),
        "",
        f"## store_shared fan-out ({p['fanout_events']:,} events)",
        "",
        fanout_table(runs),
        "",
        "## Storage options for full objects (same list bytes)",
        "",
        options_table(runs),
        "",
        "## Memory during a full relist (rxkube, full objects)",
        "",
        relist_table(runs),
        "",
        "## Targets (reported, not asserted)",
        "",
        *targets(runs),
    ]
    failed = {k: v["error"] for k, v in runs.items() if "error" in v}
    if failed:
        parts += ["", "## Failed measurements", ""]
        parts += [f"- {k}: {v.splitlines()[-1] if v else ''}" for k, v in failed.items()]
    return "\n".join(parts) + "\n"
