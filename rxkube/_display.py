"""How rxkube shows objects to a person: an object's key, status and age; a store as HTML.

Shared by the command line (``rxkube watch``, ``rxkube demo``), the Jupyter views in
``rxkube.notebook`` and ``Store._repr_html_``, so an object reads the same everywhere.
It depends on nothing but the event types, so the cache may use it.
"""

from __future__ import annotations

import heapq
import html
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from .events import Object


def _mapping(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: what the display reads of a
    part of an object that any custom resource may shape as it likes."""
    return value if isinstance(value, dict) else {}


def _items(value: object) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def _word(value: object, default: str) -> str:
    """A string or number as shown in a cell; ``default`` for anything else (or empty)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return default


def meta(obj: Object) -> dict[str, Any]:
    """The object's ``metadata``, or an empty dict when it has none."""
    return _mapping(_mapping(obj).get("metadata"))


def key(obj: Object) -> tuple[str, str]:
    """``(namespace, name)``; the namespace is ``""`` for cluster-scoped objects."""
    m = meta(obj)
    return str(m.get("namespace") or ""), str(m.get("name") or "")


def resource_version(obj: Object) -> str:
    """The object's ``metadata.resourceVersion``, ``""`` when it has none."""
    return _word(meta(obj).get("resourceVersion"), "")


def status(obj: Object) -> str:
    """A one-word status summary, as ``kubectl get`` would show it.

    ``Terminating`` while a deletion waits on finalizers; a pod's waiting or
    terminated container reason (``CrashLoopBackOff``) or its phase; ``ready/desired``
    replicas for workloads; the ``Ready`` condition for nodes and the like; else
    ``status.phase`` or ``-``. A custom resource's status may hold any JSON: a part
    shaped unlike a built-in's (``conditions`` that is no list) is read as absent, so
    this never raises.

    Example:
        >>> status({"kind": "Pod", "status": {"phase": "Running"}})
        'Running'
        >>> status({"kind": "Deployment", "spec": {"replicas": 3}, "status": {"readyReplicas": 2}})
        '2/3'
        >>> status({"kind": "Widget", "status": {"conditions": 5, "phase": ["x"]}})
        '-'
    """
    if meta(obj).get("deletionTimestamp"):
        return "Terminating"
    whole = _mapping(obj)
    st = _mapping(whole.get("status"))
    if whole.get("kind") == "Pod":
        for cs in _items(st.get("containerStatuses")):
            state = _mapping(_mapping(cs).get("state"))
            for phase in ("waiting", "terminated"):
                reason = _word(_mapping(state.get(phase)).get("reason"), "")
                if reason and reason not in ("Completed", "ContainerCreating"):
                    return reason
        return _word(st.get("phase"), "Pending")
    spec = whole.get("spec")
    if isinstance(spec, dict) and "replicas" in spec:
        return f"{_word(st.get('readyReplicas'), '0')}/{_word(spec.get('replicas'), '-')}"
    for cond in _items(st.get("conditions")):
        cond = _mapping(cond)
        if cond.get("type") == "Ready":
            return "Ready" if cond.get("status") == "True" else "NotReady"
    return _word(st.get("phase"), "-")


def created(obj: Object) -> datetime | None:
    """The object's ``creationTimestamp`` as an aware datetime, if it has a valid one."""
    stamp = meta(obj).get("creationTimestamp")
    if not isinstance(stamp, str):
        return None
    try:
        born = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Without a zone it is no RFC 3339 time, and it could not be compared with now.
    return born if born.tzinfo is not None else None


def age(obj: Object, now: datetime | None = None) -> str:
    """The object's age as ``kubectl`` shows it (``45s``, ``3m20s``, ``5h``, ``2d4h``).

    Example:
        >>> age({"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"}},
        ...     datetime(2024, 1, 1, 0, 3, 20, tzinfo=UTC))
        '3m20s'
    """
    born = created(obj)
    if born is None:
        return "<unknown>"
    return human_duration(((now or datetime.now(UTC)) - born).total_seconds())


def human_duration(seconds: float) -> str:
    """A short duration, precise when small and coarse when large, like kubectl's."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


@runtime_checkable
class Listing(Protocol):
    """What ``render_store_html`` reads of a store: a snapshot, and whether it is complete."""

    def state(self, *, copy: bool | None = None) -> Sequence[Object]: ...

    def is_ready(self) -> bool: ...


class _Status(Protocol):
    state: str
    since: float
    error: BaseException | None
    retry_at: float | None


@runtime_checkable
class Followed(Protocol):
    """A store that says whether its writer's pipeline still runs (``Store.writer_status``)."""

    def writer_status(self) -> _Status: ...


def staleness(source: Followed, now: float | None = None) -> str:
    """Why a store's contents may be stale, for a caption; ``""`` while it is followed."""
    status = source.writer_status()
    now = time.time() if now is None else now
    ago = human_duration(max(0.0, now - status.since))
    why = f": {status.error}" if status.error is not None else ""
    if status.state == "stopped":
        return f"stale: its watch stopped {ago} ago{why}"
    if status.state == "retrying":
        wait = max(0.0, (status.retry_at or now) - now)
        return f"stale: its watch failed {ago} ago{why}; retrying in {wait:.0f} s"
    return ""


STYLE = "font-family: system-ui, sans-serif; font-size: 12px; margin: 2px 0"
# Jupyter's own table styles right-align cells and stripe rows: a collapsed table with
# explicit alignment and padding (not border-spacing, which cuts the stripes into chips,
# nor a negative margin, which shifts the table out of line with other outputs).
TABLE_STYLE = f"{STYLE}; border-collapse: collapse; margin-left: 0"
CELL_STYLE = "text-align: left; padding: 1px 12px 1px 0"


def render_store_html(
    source: Listing | Iterable[Object], limit: int = 50, *, now: datetime | None = None
) -> str:
    """An HTML table of a store's objects: namespace, name, age and status, with a count.

    The rows are sorted by namespace and name; past ``limit`` rows, the table is cut with
    a note saying how many were left out, so a store of 10,000 objects renders in
    milliseconds. Delegate ``Store._repr_html_`` here to get it as a cell's output.

    Args:
        source: a :class:`~rxkube.Store`, or any iterable of objects.
        limit: the most rows to show.
        now: the time ages are measured against (default: now).

    Returns:
        An HTML fragment (a ``<div>`` holding a caption and a ``<table>``).

    Example:
        >>> html = render_store_html([{"kind": "Pod", "metadata": {"name": "web"}}])
        >>> "web" in html and "1 Pod" in html
        True
    """
    objects = source.state(copy=False) if isinstance(source, Listing) else list(source)
    total = len(objects)
    shown = heapq.nsmallest(limit, objects, key=key)
    namespaced = any(key(obj)[0] for obj in shown)
    now = now or datetime.now(UTC)

    kinds = {_word(_mapping(obj).get("kind"), "") for obj in shown} - {""}
    what = next(iter(kinds)) if len(kinds) == 1 else "object"
    caption = f"{total:,} {what}{'' if total == 1 else 's'}"
    if isinstance(source, Listing):
        caption += "" if source.is_ready() else " · not ready yet (no complete list so far)"
    if isinstance(source, Followed) and (stale := staleness(source)):
        caption += f" · {stale}"
    if total > len(shown):
        caption += f" · showing the first {len(shown):,} by namespace and name"

    head = ["NAMESPACE"] if namespaced else []
    head += ["NAME", "AGE", "STATUS"]
    rows = []
    for obj in shown:
        namespace, name = key(obj)
        cells = [namespace] if namespaced else []
        cells += [name, age(obj, now), status(obj)]
        rows.append(cells)
    if total > len(shown):
        note = f"… and {total - len(shown):,} more"
        rows.append([note] + [""] * (len(head) - 1))

    parts = [f'<div class="rxkube-store"><div style="{STYLE}"><b>{html.escape(caption)}</b></div>']
    if rows:
        parts.append(f'<table style="{TABLE_STYLE}"><thead><tr>')
        parts += [f'<th style="{CELL_STYLE}">{title}</th>' for title in head]
        parts.append("</tr></thead><tbody>")
        for cells in rows:
            parts.append("<tr>")
            parts += [f'<td style="{CELL_STYLE}">{html.escape(cell)}</td>' for cell in cells]
            parts.append("</tr>")
        parts.append("</tbody></table>")
    parts.append("</div>")
    return "".join(parts)
