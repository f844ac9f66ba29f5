"""Jupyter views of a cache: an HTML table of a store, and a live view that updates in place.

``render_store_html(store)`` is what a ``Store`` shows as the value of a cell: a compact
table (namespace, name, age, status) with a row count, truncated with a note for big
stores. ``live(source)`` displays a view that refreshes in place, at most a few times a
second and only when something changed, while the watch runs, with a small plot of
objects by status over time. It returns at once: a background thread renders, so the
kernel stays free for other cells; running the same cell again replaces its view.

Only IPython is needed (the ``notebook`` extra); the HTML and SVG are rendered here.
"""

from __future__ import annotations

import heapq
import html
import importlib
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from types import ModuleType, TracebackType
from typing import Any, Self

from reactivex import Observable
from reactivex.abc import DisposableBase

from . import _display
from ._cache import Store, Writer, store
from ._display import render_store_html
from .events import Apply, Delete, Event, Init, InitApply, InitDone, Object

__all__ = ["LiveView", "live", "render_store_html"]

STATUS_COLOURS = {
    "Running": "#2e7d32",
    "Ready": "#2e7d32",
    "Pending": "#f9a825",
    "Succeeded": "#1565c0",
    "Failed": "#c62828",
    "NotReady": "#c62828",
    "CrashLoopBackOff": "#ad1457",
    "Terminating": "#6d4c41",
    "Unknown": "#757575",
}
"""Colours of well-known statuses in the live plot; other statuses get the palette below."""

_PALETTE = ("#6a1b9a", "#00838f", "#ef6c00", "#4e342e", "#283593", "#558b2f", "#9e9d24")


def render_counts_svg(
    samples: Iterable[tuple[float, Counter[str]]], *, width: int = 420, height: int = 110
) -> str:
    """A small SVG step plot of counts by status over time, with axis labels and a legend.

    Text takes the colour of the surrounding page (``currentColor``), so the plot reads
    on light and dark themes alike.

    Args:
        samples: ``(seconds, counts by status)`` pairs, oldest first; a count holds
            until the next sample (the view samples only when something changed).
        width: the plot's width in pixels, axis labels included.
        height: the plot area's height in pixels (the time axis and the legend go below).

    Returns:
        An ``<svg>`` element, or an empty string when there are no samples.
    """
    points = list(samples)
    if not points:
        return ""
    statuses = sorted({status for _, counts in points for status in counts})
    t0, t1 = points[0][0], points[-1][0]
    span = max(t1 - t0, 1e-9)
    top = max([1, *(count for _, counts in points for count in counts.values())])
    left, pad, axis_row, legend_row = 34, 4, 16, 16
    inner_w, inner_h = width - left - pad, height - 2 * pad

    def x(t: float) -> float:
        return left + (t - t0) / span * inner_w if len(points) > 1 else left + inner_w

    def y(count: int) -> float:
        return pad + inner_h - count / top * inner_h

    colours = _colours(statuses)
    rows = (len(statuses) + 3) // 4
    total_h = height + axis_row + rows * legend_row + 4
    text = 'fill="currentColor"'
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_h}" '
        'style="font-family: system-ui, sans-serif; font-size: 11px; color: inherit">',
        f'<rect x="{left + 0.5}" y="0.5" width="{width - left - 1}" height="{height - 1}" '
        'fill="none" stroke="#888" stroke-opacity="0.5"/>',
        f'<text x="{left - 4}" y="{pad + 9}" text-anchor="end" {text}>{top}</text>',
        f'<text x="{left - 4}" y="{height - pad}" text-anchor="end" {text}>0</text>',
        f'<text x="10" y="{height / 2:.0f}" text-anchor="middle" {text} '
        f'transform="rotate(-90 10 {height / 2:.0f})">objects</text>',
        f'<text x="{left}" y="{height + 12}" {text}>{t0:.0f} s</text>',
        f'<text x="{width - pad}" y="{height + 12}" text-anchor="end" {text}>{t1:.0f} s</text>',
        f'<text x="{left + inner_w / 2:.0f}" y="{height + 12}" text-anchor="middle" {text}>'
        "time since the view started</text>",
    ]
    for status in statuses:
        steps = []
        for i, (t, counts) in enumerate(points):
            if i:
                steps.append(f"{x(t):.1f},{y(points[i - 1][1].get(status, 0)):.1f}")
            steps.append(f"{x(t):.1f},{y(counts.get(status, 0)):.1f}")
        out.append(
            f'<polyline fill="none" stroke="{colours[status]}" stroke-width="1.5" '
            f'points="{" ".join(steps)}"/>'
        )
    latest = points[-1][1]
    for i, status in enumerate(statuses):
        lx = left + (i % 4) * ((width - left) // 4)
        ly = height + axis_row + 4 + (i // 4) * legend_row + 10
        out.append(f'<rect x="{lx}" y="{ly - 8}" width="9" height="9" fill="{colours[status]}"/>')
        label = html.escape(f"{status} {latest.get(status, 0)}")
        out.append(f'<text x="{lx + 13}" y="{ly}" {text}>{label}</text>')
    out.append("</svg>")
    return "".join(out)


def _colours(statuses: list[str]) -> dict[str, str]:
    others = iter(_PALETTE * (1 + len(statuses) // len(_PALETTE)))
    return {s: STATUS_COLOURS.get(s) or next(others) for s in statuses}


class LiveView:
    """A display that follows a store while its watch runs; made by :func:`live`.

    A daemon thread (``rxkube-notebook-live``) looks at the store every ``interval``
    seconds and redraws the cell's output in place only when something changed (the
    objects, readiness, the event rate, the end of the stream): an idle store costs no
    redraws, and the ages in its table are those of the last change. Call
    :meth:`stop` (or use the view as a context manager) to stop following; when the
    view follows an Observable, stopping disposes its subscription.

    Attributes:
        store: the store shown: the one given to :func:`live`, or one filled from the
            Observable.
    """

    def __init__(
        self,
        store: Store,
        *,
        interval: float = 0.25,
        history: int = 240,
        limit: int = 20,
        title: str = "",
    ) -> None:
        """Prepare a view of ``store``; :func:`live` creates, displays and starts it."""
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.store = store
        self._interval = interval
        self._limit = limit
        self._title = title
        self._samples: deque[tuple[float, Counter[str]]] = deque(maxlen=history)
        self._started = time.monotonic()
        self._events = 0
        self._rate = 0.0
        self._rate_mark = (self._started, 0)
        self._ended = ""
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._subscription: DisposableBase | None = None
        self._thread: threading.Thread | None = None
        self._handle: Any = None
        self._signature: tuple[Any, ...] | None = None

    # -- what is shown ---------------------------------------------------------------

    def sample(self) -> bool:
        """Record the current counts by status (the plot's next point) if anything changed.

        Returns:
            Whether the view changed since the last sample: the store's objects, its
            readiness, the event rate, or the view's own state. An idle store is not
            sampled, so its view is not redrawn.
        """
        objects = self.store.state(copy=False)
        counts = Counter(_display.status(obj) for obj in objects)
        # resourceVersions change with every write, so this sees an update that keeps
        # every count the same, at the cost of one pass that the counting makes anyway.
        versions = hash(tuple(_display.resource_version(obj) for obj in objects))
        now = time.monotonic()
        with self._lock:
            mark_t, mark_n = self._rate_mark
            if now - mark_t >= 1.0:
                self._rate = (self._events - mark_n) / (now - mark_t)
                self._rate_mark = (now, self._events)
            signature = (
                versions,
                tuple(sorted(counts.items())),
                self.store.is_ready(),
                self._events,
                round(self._rate),
                self._ended,
                self._stopped.is_set(),
            )
            if signature == self._signature:
                return False
            self._signature = signature
            self._samples.append((now - self._started, counts))
            return True

    def _summary(self) -> list[str]:
        with self._lock:
            rate, events, ended = self._rate, self._events, self._ended
        summary = [self._title] if self._title else []
        count = len(self.store)
        summary.append(f"{count:,} object{'' if count == 1 else 's'}")
        summary.append("ready" if self.store.is_ready() else "listing…")
        if events:
            summary.append(f"{rate:,.0f} events/s ({events:,} in all)")
        if self._stopped.is_set():
            summary.append("stopped")
        if ended:
            summary.append(ended)
        return summary

    def render(self) -> str:
        """The view as HTML: a summary line, the plot and the first rows of the store."""
        with self._lock:
            samples = list(self._samples)
        summary = " · ".join(html.escape(part) for part in self._summary())
        return (
            '<div class="rxkube-live">'
            f'<div style="{_display.STYLE}"><b>{summary}</b></div>'
            f"{render_counts_svg(samples)}"
            f"{render_store_html(self.store, self._limit)}"
            "</div>"
        )

    def render_text(self) -> str:
        """The view as plain text: the summary line and the first objects with their status.

        What a console or a text-only output shows instead of the HTML.
        """
        lines = [" · ".join(self._summary())]
        for obj in heapq.nsmallest(self._limit, self.store.state(copy=False), key=_display.key):
            namespace, name = _display.key(obj)
            lines.append(f"  {namespace + '/' if namespace else ''}{name}  {_display.status(obj)}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped.is_set() else "running"
        return f"<LiveView of {self.store!r}, {state}>"

    # -- running ---------------------------------------------------------------------

    def _count(self, n: int = 1) -> None:
        with self._lock:
            self._events += n

    def _end(self, why: str) -> None:
        with self._lock:
            self._ended = why

    def _start(self, handle: Any) -> None:
        self._handle = handle
        self._thread = threading.Thread(target=self._run, name="rxkube-notebook-live", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.refresh()

    def refresh(self) -> None:
        """Sample, and redraw if anything changed (the thread does this every ``interval``)."""
        if self.sample() and self._handle is not None:
            self._handle.update(_bundle(self.render(), self.render_text()), raw=True)

    def stop(self) -> None:
        """Stop following: dispose the subscription, end the thread, draw a last time."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        with _views_lock:
            for cell, view in list(_views_by_cell.items()):
                if view is self:
                    del _views_by_cell[cell]
        if self._subscription is not None:
            self._subscription.dispose()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.refresh()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def live(
    source: Store | Observable[Any],
    *,
    interval: float = 0.25,
    history: int = 240,
    limit: int = 20,
    title: str = "",
) -> LiveView:
    """Display a view of a cache that updates in place while its watch runs.

    Returns at once; a background thread redraws at most every ``interval`` seconds, so
    the kernel stays free and other cells run meanwhile. The view shows a summary (object
    count, readiness, events per second), a plot of objects by status over the last
    ``history`` samples, and the first ``limit`` objects.

    Args:
        source: a :class:`~rxkube.Store` (already being filled, e.g. by ``reflect``);
            or an Observable of watch events (``watcher(api)``) or of objects
            (``reader.subscribe()``), which the view subscribes to and collects into a
            store of its own.
        interval: seconds between redraws (a few per second by default).
        history: how many samples the plot keeps.
        limit: how many objects the table shows.
        title: shown first in the summary line.

    Returns:
        The running :class:`LiveView`; ``view.stop()`` ends it.

    Example:
        >>> view = live(watcher(pods), title="pods")  # doctest: +SKIP
        >>> view.stop()  # doctest: +SKIP
    """
    ipython = _ipython()
    if isinstance(source, Store):
        view = LiveView(source, interval=interval, history=history, limit=limit, title=title)
    elif isinstance(source, Observable):
        reader, writer = store(title)
        view = LiveView(reader, interval=interval, history=history, limit=limit, title=title)
        view._subscription = source.subscribe(
            lambda item: _collect(view, writer, item),
            lambda error: view._end(f"ended with {type(error).__name__}: {error}"),
            lambda: view._end("completed"),
        )
    else:
        raise TypeError(f"live() needs a Store or an Observable, got {type(source).__name__}")
    _replace_earlier_view(view)
    view.sample()
    handle = ipython.display(_bundle(view.render(), view.render_text()), raw=True, display_id=True)
    view._start(handle)
    return view


_IPYTHON_MISSING = (
    "live() displays through IPython, an optional extra of rxkube: pip install 'rxkube[notebook]'"
)


def _ipython() -> ModuleType:
    # IPython is the optional `notebook` extra: imported only when a view is displayed.
    try:
        return importlib.import_module("IPython.display")
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(_IPYTHON_MISSING, name=exc.name) from exc


def _bundle(rendered_html: str, text: str) -> dict[str, str]:
    # A raw MIME bundle: HTML where it can be shown, the view as text elsewhere (instead
    # of IPython's "<IPython.core.display.HTML object>").
    return {"text/html": rendered_html, "text/plain": text}


_views_lock = threading.Lock()
_views_by_cell: dict[str, LiveView] = {}
"""The running view each notebook cell started last, so that running a cell again replaces it."""


def _cell_id() -> str | None:
    # JupyterLab, Notebook 7 and VS Code send the cell's id with each execution request;
    # other front ends (and plain IPython) do not, and then no view replaces another.
    try:
        from IPython import get_ipython
    except ModuleNotFoundError:
        return None
    kernel = getattr(get_ipython(), "kernel", None)
    get_parent = getattr(kernel, "get_parent", None)
    parent = get_parent() if callable(get_parent) else None
    metadata = parent.get("metadata") if isinstance(parent, dict) else None
    cell = metadata.get("cellId") if isinstance(metadata, dict) else None
    return cell if isinstance(cell, str) and cell else None


def _replace_earlier_view(view: LiveView) -> None:
    cell = _cell_id()
    if cell is None:
        return
    with _views_lock:
        earlier = _views_by_cell.get(cell)
        _views_by_cell[cell] = view
    if earlier is not None:
        earlier.stop()  # outside the lock: stopping disposes a subscription and redraws


def _collect(view: LiveView, writer: Writer, item: Event | Object) -> None:
    if isinstance(item, dict):
        item = Apply(item)
    elif not isinstance(item, Init | InitApply | InitDone | Apply | Delete):
        raise TypeError(f"live() expects watch events or objects, got {type(item).__name__}")
    if view._events == 0 and not isinstance(item, Init):
        # Not a watcher's stream (objects or changes from a shared store): there is no
        # list to wait for, so the view's store is complete from the start.
        writer.apply(InitDone())
    writer.apply(item)
    view._count()
