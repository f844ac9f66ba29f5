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
    "rxkube": "rxkube: full objects (default store)",
    "rxkube:whole_lines": "rxkube: an operator before reflect() (no spec reuse)",
    "rxkube:unshared": "rxkube: store(share_subtrees=False)",
    "rxkube:shared_parts": "rxkube: store(share_subtrees=True)",
    "rxkube:gc_freeze": "rxkube: full, gc off in list, gc.freeze() at ready",
    "rxkube:drop_managed_fields": "rxkube: modify(drop managedFields)",
    "rxkube:metadata_only": "rxkube: metadata_only()",
    "rxkube:metadata_watcher": "rxkube: metadata_watcher()",
    "rxkube:intern": "rxkube: modify(InternStrings())",
    "rxkube:share": "rxkube: modify(ShareSubtrees())",
    "rxkube:compact": "rxkube: store(compact=True)",
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


def _us(x: float | None) -> str:
    return _NONE if x is None else f"{x:,.1f}"


def floors(runs: Runs) -> tuple[float | None, float | None]:
    """The client CPU floors: seconds to list (read + loads), µs per watch event (read +
    loads + replace in a dict)."""
    limit = runs.get("limit", {})
    events = limit.get("events")
    watch = limit.get("watch_stream_cache_s")
    return limit.get("list_read_parse_s"), watch / events * 1e6 if watch and events else None


def cache_table(runs: Runs) -> str:
    """One row per client: list→ready and watch client CPU against the floors, memory per pod."""
    limit = runs.get("limit", {})
    list_floor, watch_floor = floors(runs)
    dict_mem = limit.get("mem_traced_per_pod")
    events = limit.get("events") or 0
    rows: list[list[str]] = []

    def row(
        label: str,
        cpu_s: float | None,
        wall_s: float | None,
        watch_us: float | None,
        traced: float | None,
        rss: float | None,
    ) -> None:
        rows.append(
            [
                label,
                _num(cpu_s, 2),
                _ratio(cpu_s, list_floor),
                _num(wall_s, 2),
                _us(watch_us),
                _ratio(watch_us, watch_floor),
                _kb(traced),
                _kb(rss),
                _ratio(traced, dict_mem),
            ]
        )

    def per_event(seconds: float | None) -> float | None:
        return seconds / events * 1e6 if seconds and events else None

    if limit.get("list_read_s"):
        row(
            "limit: raw read (urllib3)",
            limit["list_read_s"],
            None,
            per_event(limit.get("watch_read_s")),
            None,
            None,
        )
        row(
            "limit: orjson.loads",
            limit["list_parse_s"],
            None,
            per_event(limit.get("watch_parse_s")),
            dict_mem,
            limit.get("mem_rss_per_pod"),
        )
        row("limit: orjson.loads, gc off", limit.get("list_parse_nogc_s"), None, None, None, None)
        row(
            "floor: read + loads (+ dict replace)",
            list_floor,
            None,
            watch_floor,
            None,
            None,
        )
    for name, label in [*LEVERS.items(), *PEERS.items()]:
        r = runs.get(name)
        if r is None:
            continue
        if "error" in r:
            rows.append([label, f"failed: {r['error'][:60]}", *[""] * 7])
            continue
        row(
            label,
            r.get("ready_cpu_s"),
            r.get("ready_s"),
            r.get("watch_cpu_us_per_event"),
            r.get("mem_traced_per_pod"),
            r.get("mem_rss_per_pod"),
        )
    header = [
        "client",
        "list→ready CPU s",
        f"{X} floor",
        "wall s",
        "watch CPU µs/event",
        f"{X} floor",
        "KiB/pod traced",
        "KiB/pod RSS",
        f"{X} orjson dict",
    ]
    return _table(header, rows)


def headline_table(runs: Runs) -> str:
    """The issue's rows: the floor, rxkube and each peer, on the same server in one run."""
    list_floor, watch_floor = floors(runs)
    ours = runs.get("rxkube", {})
    peers = [(label, runs.get(name, {})) for name, label in PEERS.items() if name in runs]
    relist = runs.get("rxkube:relist", {})

    def cell(x: float | None, floor: float | None, fmt: str) -> str:
        if x is None:
            return _NONE
        return f"{fmt.format(x)} ({_ratio(x, floor)})" if floor else fmt.format(x)

    counted_floor = runs.get("limit", {}).get("watch_instructions_per_event")
    figures: list[tuple[str, str, float | None, float | None]] = [
        ("list → ready cache, client CPU", "ready_cpu_s", list_floor, None),
        ("live watch, client CPU per MODIFIED event", "watch_cpu_us_per_event", watch_floor, None),
        (
            "live watch, instructions per MODIFIED event (callgrind)",
            "watch_instructions_per_event",
            counted_floor,
            None,
        ),
        ("memory per cached full pod, traced (KiB)", "mem_traced_per_pod", None, None),
        (
            "memory per cached full pod once every pod was updated, traced (KiB)",
            "mem_traced_per_pod_updated",
            None,
            None,
        ),
        ("memory per cached full pod, RSS (KiB)", "mem_rss_per_pod", None, None),
    ]
    formats = {
        "ready_cpu_s": "{:.2f} s",
        "watch_cpu_us_per_event": "{:.1f} µs",
        "watch_instructions_per_event": "{:,.0f}",
    }
    rows = []
    # The collector's full collections are most of a list's CPU, and how many fall in it
    # depends on what the process held before: without them the figure is the list's own.
    nogc_floor = _sum(runs.get("limit", {}), "list_read_s", "list_parse_nogc_s")
    nogc_ours = runs.get("rxkube:gc_freeze", {}).get("ready_cpu_s")
    for title, key, floor, _ in figures:
        if key == "watch_instructions_per_event" and not counted_floor:
            continue  # valgrind is not installed, or the run left the watch out
        fmt = formats.get(key, "{:.1f}")
        scale = 1024 if key.startswith("mem_") else 1

        def value(r: dict[str, Any], key: str = key, scale: int = scale) -> float | None:
            x = r.get(key)
            return None if x is None else x / scale

        floor_cell = _NONE if floor is None else fmt.format(floor)
        if key == "mem_traced_per_pod":
            dicts = runs.get("limit", {}).get(key)
            floor_cell = _NONE if dicts is None else f"{dicts / 1024:.1f} (orjson dicts)"
        rows.append(
            [
                title,
                floor_cell,
                cell(value(ours), floor, fmt),
                *[cell(value(r), floor, fmt) for _, r in peers],
            ]
        )
        if key == "ready_cpu_s" and nogc_floor and nogc_ours:
            rows.append(
                [
                    "list → ready cache, client CPU, collector off during the list",
                    fmt.format(nogc_floor),
                    cell(nogc_ours, nogc_floor, fmt),
                    *[_NONE for _ in peers],
                ]
            )
        if key == "watch_cpu_us_per_event" and "watch_full_collections" in runs.get("limit", {}):
            rows.append(
                [
                    "full collections during the watch",
                    _num(runs.get("limit", {}).get("watch_full_collections")),
                    _num(ours.get("watch_full_collections")),
                    *[_num(r.get("watch_full_collections")) for _, r in peers],
                ]
            )
        if key == "ready_cpu_s" and "list_full_collections" in runs.get("limit", {}):
            rows.append(
                [
                    "full collections during the list",
                    _num(runs.get("limit", {}).get("list_full_collections")),
                    _num(ours.get("ready_full_collections")),
                    *[_num(r.get("ready_full_collections")) for _, r in peers],
                ]
            )
    steady, peak = (
        relist.get("relist_steady_traced_per_pod"),
        relist.get("relist_peak_traced_per_pod"),
    )
    rss_steady, rss_peak = (
        relist.get("relist_steady_rss_per_pod"),
        relist.get("relist_peak_rss_per_pod"),
    )
    if relist:
        rows.append(
            [
                f"relist into a ready store: peak {X} steady (traced / RSS)",
                _NONE,
                f"{_ratio(peak, steady)} / {_ratio(rss_peak, rss_steady)}",
                *[_NONE for _ in peers],
            ]
        )
    return _table(["figure", "floor", "rxkube", *[label for label, _ in peers]], rows)


def _sum(figures: dict[str, Any], *keys: str) -> float | None:
    """The sum of ``figures[key]`` for each of ``keys``, or ``None`` if one is missing."""
    values = [figures.get(key) for key in keys]
    return None if None in values else sum(values)  # type: ignore[arg-type]


def _spread(values: list[float]) -> str:
    """How far the values stray from their mean, as ±%."""
    if len(values) < 2:
        return _NONE
    mean = sum(values) / len(values)
    return f"±{max(abs(v / mean - 1) for v in values) * 100:.0f}%"


def scale_table(runs: Runs) -> str:
    """rxkube at each size: per-object CPU against the floor, memory, watch CPU, relist peak."""
    sizes = sorted(
        int(k.split(":")[1]) for k in runs if k.startswith("scale:") and k.count(":") == 1
    )
    rows = []
    columns: dict[str, list[float]] = {"cpu": [], "mem": [], "watch": [], "instr": [], "peak": []}
    for pods in sizes:
        r = runs[f"scale:{pods}"]
        if "error" in r:
            rows.append([f"{pods:,}", f"failed: {r['error'][:60]}", *[""] * 8])
            continue
        limit = runs.get(f"scale:{pods}:limit", {})
        list_floor, watch_floor = floors({"limit": limit})
        instructions = r.get("watch_instructions_per_event")
        relist = runs.get(f"scale:{pods}:relist", {})
        steady = relist.get("relist_steady_traced_per_pod")
        peak = relist.get("relist_peak_traced_per_pod")
        busy = r["ready_cpu_s"] / r["ready_s"] if r.get("ready_s") else None
        for column, x in (
            ("cpu", r.get("ready_cpu_us_per_pod")),
            ("mem", r.get("mem_traced_per_pod")),
            ("watch", r.get("watch_cpu_us_per_event")),
            ("instr", instructions),
            ("peak", peak / steady if peak and steady else None),
        ):
            if x is not None:
                columns[column].append(x)
        rows.append(
            [
                f"{pods:,}",
                _us(r.get("ready_cpu_us_per_pod")),
                _ratio(r.get("ready_cpu_s"), list_floor),
                _NONE if busy is None else f"{busy * 100:.0f}%",
                _kb(r.get("mem_traced_per_pod")),
                _us(r.get("watch_cpu_us_per_event")),
                _ratio(r.get("watch_cpu_us_per_event"), watch_floor),
                _NONE if instructions is None else f"{instructions:,.0f}",
                _ratio(instructions, limit.get("watch_instructions_per_event")),
                _ratio(peak, steady),
            ]
        )
    rows.append(
        [
            "spread",
            _spread(columns["cpu"]),
            "",
            "",
            _spread(columns["mem"]),
            _spread(columns["watch"]),
            "",
            _spread(columns["instr"]),
            "",
            _spread(columns["peak"]),
        ]
    )
    header = [
        "pods",
        "list→ready CPU µs/pod",
        f"{X} floor",
        "client busy (CPU/wall)",
        "KiB/pod traced",
        "watch CPU µs/event",
        f"{X} floor",
        "watch instructions/event",
        f"{X} floor",
        f"relist peak {X} steady (traced)",
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
                _ratio(peer.get("ready_cpu_s"), ours.get("ready_cpu_s")),
                _ratio(peer.get("watch_cpu_us_per_event"), ours.get("watch_cpu_us_per_event")),
                _ratio(ours.get("mem_traced_per_pod"), peer.get("mem_traced_per_pod")),
                _ratio(ours.get("mem_rss_per_pod"), peer.get("mem_rss_per_pod")),
            ]
        )
    header = [
        "rxkube vs",
        "less CPU to ready",
        "less CPU per watch event",
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
    shared subscriber; then the same ratios in instructions counted by callgrind, which
    do not move with the machine's load (nor count the kernel's thread switches).
    """
    widths = _fanout_widths(runs)
    plain = _cpu_per_event(runs, "rxkube:shared:reflect")
    one = _cpu_per_event(runs, f"rxkube:shared:{widths[0]}") if widths else None
    plain_counted = runs.get("rxkube:shared:reflect", {}).get("watch_instructions_per_event")
    one_counted = runs.get("rxkube:shared:1", {}).get("watch_instructions_per_event")
    rows = []
    keys = [("rxkube:shared:reflect", "reflect + applied_objects()")]
    keys += [(f"rxkube:shared:{n}", f"store_shared, {n} subscriber{'s' * (n > 1)}") for n in widths]
    for key, label in keys:
        r = runs.get(key)
        if r is None:
            continue
        if "error" in r:
            rows.append([label, f"failed: {r['error'][:60]}", "", "", "", "", "", "", ""])
            continue
        cpu = r.get("cpu_us_per_event")
        counted = r.get("watch_instructions_per_event")
        rows.append(
            [
                label,
                _num(r.get("events_per_s")),
                _num(r.get("us_per_event"), 1),
                _num(cpu, 1),
                _ratio(cpu, plain),
                _ratio(cpu, one) if key != "rxkube:shared:reflect" else _NONE,
                _num(counted),
                _ratio(counted, plain_counted),
                _ratio(counted, one_counted) if key != "rxkube:shared:reflect" else _NONE,
            ]
        )
    header = [
        "pipeline",
        "events/s",
        "wall µs/event",
        "client CPU µs/event",
        f"CPU {X} reflect",
        f"CPU {X} 1 subscriber",
        "instructions/event",
        f"instr. {X} reflect",
        f"instr. {X} 1 subscriber",
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

    list_floor, watch_floor = floors(runs)
    light = runs.get("lightkube", {})
    if list_floor and ours.get("ready_cpu_s"):
        x = ours["ready_cpu_s"] / list_floor
        check(x <= 1.1, f"list→ready at {x:.2f}{X} the floor's client CPU (target ≤ 1.1{X})")
    nogc_floor = _sum(limit, "list_read_s", "list_parse_nogc_s")
    nogc_ours = runs.get("rxkube:gc_freeze", {}).get("ready_cpu_s")
    if nogc_floor and nogc_ours:
        x = nogc_ours / nogc_floor
        check(
            x <= 1.1,
            f"list→ready with the collector off at {x:.2f}{X} the floor's client CPU "
            f"(target ≤ 1.1{X})",
        )
    if light.get("ready_cpu_s") and ours.get("ready_cpu_s"):
        x = ours["ready_cpu_s"] / light["ready_cpu_s"]
        check(x < 1, f"list→ready at {x:.2f}{X} lightkube's client CPU (target < 1{X})")
    if watch_floor and ours.get("watch_cpu_us_per_event"):
        x = ours["watch_cpu_us_per_event"] / watch_floor
        check(x <= 1.2, f"watch at {x:.2f}{X} the floor's CPU per event (target ≤ 1.2{X})")
    counted_floor = limit.get("watch_instructions_per_event")
    if counted_floor and ours.get("watch_instructions_per_event"):
        x = ours["watch_instructions_per_event"] / counted_floor
        check(
            x <= 1.2,
            f"watch at {x:.2f}{X} the floor's instructions per event (callgrind; target ≤ 1.2{X})",
        )
    if light.get("mem_traced_per_pod") and ours.get("mem_traced_per_pod"):
        x = ours["mem_traced_per_pod"] / light["mem_traced_per_pod"]
        check(x <= 1, f"full pod cached at {x:.2f}{X} lightkube's memory (traced; target ≤ 1{X})")
    if light.get("mem_traced_per_pod_updated") and ours.get("mem_traced_per_pod_updated"):
        x = ours["mem_traced_per_pod_updated"] / light["mem_traced_per_pod_updated"]
        check(
            x <= 1,
            f"once every pod was updated, a full pod cached at {x:.2f}{X} lightkube's memory "
            f"(traced; target ≤ 1{X})",
        )
    compact = runs.get("rxkube:compact", {}).get("mem_traced_per_pod")
    if compact:
        check(
            compact <= 6000,
            f"store(compact=True) at {compact / 1000:.1f} KB per full pod (traced; target ≤ 6 KB)",
        )
    relist = runs.get("rxkube:relist", {})
    if relist.get("relist_peak_traced_per_pod") and relist.get("relist_steady_traced_per_pod"):
        x = relist["relist_peak_traced_per_pod"] / relist["relist_steady_traced_per_pod"]
        check(x <= 1.2, f"a relist peaks at {x:.2f}{X} the steady store (traced; target ≤ 1.2{X})")
    inf = runs.get("kubernetes_informer", {})
    if inf.get("ready_cpu_s") and ours.get("ready_cpu_s"):
        x = inf["ready_cpu_s"] / ours["ready_cpu_s"]
        check(x >= 5, f"{x:.1f}{X} less CPU to a ready cache than SharedInformer (target ≥ 5{X})")
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
    counted = {
        k: r["watch_instructions_per_event"]
        for k, r in runs.items()
        if k.startswith("rxkube:shared:") and r.get("watch_instructions_per_event")
    }
    counted_widths = [n for n in widths if f"rxkube:shared:{n}" in counted]
    if "rxkube:shared:reflect" in counted and counted_widths and counted_widths[0] == 1:
        x = counted["rxkube:shared:1"] / counted["rxkube:shared:reflect"]
        check(
            x <= 1.25,
            f"one store_shared subscriber takes {x:.2f}{X} the instructions per live event of "
            f"reflect + applied_objects() (callgrind; target ≤ 1.25{X})",
        )
    if len(counted_widths) > 1 and counted_widths[0] == 1:
        x = counted[f"rxkube:shared:{counted_widths[-1]}"] / counted["rxkube:shared:1"]
        check(
            x <= 2,
            f"{counted_widths[-1]} shared subscribers take {x:.2f}{X} the instructions per live "
            f"event of 1 (callgrind; target ≤ 2{X})",
        )
    if limit.get("mem_traced_per_pod") and ours.get("mem_traced_per_pod"):
        # What the store itself adds to the decoded objects: its key and its map's slot.
        x = ours["mem_traced_per_pod"] / limit["mem_traced_per_pod"] - 1
        check(
            x <= 0.01,
            f"a cached full pod holds {x:+.1%} of what orjson.loads makes of it "
            "(the store's own share; target ≤ +1%)",
        )
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


def real_server(results: dict[str, Any]) -> list[str]:
    """The real kube-apiserver's rows, or the one line that says why they were not run."""
    real = results.get("real")
    if real is None:
        return []
    if "skipped" in real:
        return ["", f"Real-server rows not run: {real['skipped']}"]
    runs: Runs = real["runs"]
    p = real["params"]
    v = real.get("version", {})
    etcd = v.get("etcd", {}).get("etcdserver", "?")
    return [
        "",
        f"## On a real kube-apiserver: {p['pods']:,} pods, {p['events']:,} MODIFIED events "
        "(client CPU, same server, one run)",
        "",
        f"Server: kube-apiserver {v.get('gitVersion', '?')} ({v.get('goVersion', '?')}) and "
        f"etcd {etcd}, as envtest runs them; the pods created through the API in "
        f"{p['load_s']:.1f} s, then listed once unmeasured ({p.get('warm_up_s', 0):.1f} s);"
        f" load average at the end {real.get('loadavg_end', '?')}. Each "
        "event is a status patch, as the kubelet writes one.",
        "",
        headline_table(runs),
        "",
        cache_table(runs),
        "",
        f"Watch CPU of the peers is measured over {p['peer_events']:,} events, rxkube and the "
        f"floor over {p['events']:,}; instructions over {p['counted_events']:,}.",
        "",
        *targets(runs),
    ]


def render(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    if not results.get("test_server", True):
        m = results["machine"]
        parts = [
            "# rxkube benchmarks on a real kube-apiserver",
            "",
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']:.0f} GiB; "
            f"Python {m['python']}; load average at start {m['loadavg']}.",
            *real_server(results),
        ]
        return "\n".join([*parts, *_failures(results)]) + "\n"
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
        "## The issue's rows: floor, rxkube and the peers (client CPU, same server, one run)",
        "",
        headline_table(runs),
        "",
        "## Cache: list → ready store, watch CPU, memory per cached pod",
        "",
        cache_table(runs),
        "",
        f"Watch CPU of the peers is measured over {p['peer_events']:,} events, rxkube's levers "
        f"over {p['lever_events']:,}, rxkube and the floor over {p['events']:,}.",
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
        f"## Scaling: rxkube, full objects, a server of each size ({p.get('scale_events', 0):,} "
        "watch events each)",
        "",
        scale_table(runs),
        "",
        "## Targets (reported, not asserted)",
        "",
        *targets(runs),
        *real_server(results),
    ]
    return "\n".join([*parts, *_failures(results)]) + "\n"


def _failures(results: dict[str, Any]) -> list[str]:
    """The failed measurements of both servers, each with the last line of its error."""
    failed = {k: v["error"] for k, v in results["runs"].items() if "error" in v}
    real = results.get("real", {}).get("runs", {})
    failed.update({f"real:{k}": v["error"] for k, v in real.items() if "error" in v})
    if not failed:
        return []
    lines = ["", "## Failed measurements", ""]
    return lines + [f"- {k}: {v.splitlines()[-1] if v else ''}" for k, v in failed.items()]
