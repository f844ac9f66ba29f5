"""Jupyter views of a cache: an HTML table of a store, and a live view that updates in place.

``render_store_html(store)`` is what a ``Store`` shows as the value of a cell: a compact
table (namespace, name, age, status) with a row count, truncated with a note for big
stores. ``live(source)`` displays a view that refreshes in place a few times a second
while the watch runs, with a small plot of objects by status over time. It returns at
once: a background thread renders, so the kernel stays free for other cells.

Only IPython is needed (the ``notebook`` extra); the HTML and SVG are rendered here.
"""

from __future__ import annotations

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
    """A small SVG line plot of counts by status over time, with a legend of the latest counts.

    Args:
        samples: ``(seconds, counts by status)`` pairs, oldest first.
        width: the plot's width in pixels.
        height: the plot's height in pixels (the legend is added below).

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
    pad, legend_row = 4, 16
    inner_w, inner_h = width - 2 * pad, height - 2 * pad

    def x(t: float) -> float:
        return pad + (t - t0) / span * inner_w if len(points) > 1 else pad + inner_w

    def y(count: int) -> float:
        return pad + inner_h - count / top * inner_h

    colours = _colours(statuses)
    rows = (len(statuses) + 3) // 4
    total_h = height + rows * legend_row + 4
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_h}" '
        f'style="font-family: system-ui, sans-serif; font-size: 11px">',
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="none" '
        'stroke="#ccc"/>',
        f'<text x="{width - pad}" y="{pad + 10}" text-anchor="end" fill="#777">{top}</text>',
        f'<text x="{width - pad}" y="{height - pad - 2}" text-anchor="end" fill="#777">'
        f"{span:.0f} s</text>",
    ]
    for status in statuses:
        path = " ".join(f"{x(t):.1f},{y(counts.get(status, 0)):.1f}" for t, counts in points)
        out.append(
            f'<polyline fill="none" stroke="{colours[status]}" stroke-width="1.5" points="{path}"/>'
        )
    latest = points[-1][1]
    for i, status in enumerate(statuses):
        lx = 4 + (i % 4) * (width // 4)
        ly = height + 4 + (i // 4) * legend_row + 10
        out.append(f'<rect x="{lx}" y="{ly - 8}" width="9" height="9" fill="{colours[status]}"/>')
        label = html.escape(f"{status} {latest.get(status, 0)}")
        out.append(f'<text x="{lx + 13}" y="{ly}">{label}</text>')
    out.append("</svg>")
    return "".join(out)


def _colours(statuses: list[str]) -> dict[str, str]:
    others = iter(_PALETTE * (1 + len(statuses) // len(_PALETTE)))
    return {s: STATUS_COLOURS.get(s) or next(others) for s in statuses}


class LiveView:
    """A display that follows a store while its watch runs; made by :func:`live`.

    A daemon thread (``rxkube-notebook-live``) renders the view at most once per
    ``interval`` seconds and updates the cell's output in place when it changed. Call
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
        self._shown = ""

    # -- what is shown ---------------------------------------------------------------

    def sample(self) -> None:
        """Record the current counts by status (the plot's next point)."""
        counts = Counter(_display.status(obj) for obj in self.store.state(copy=False))
        now = time.monotonic()
        with self._lock:
            self._samples.append((now - self._started, counts))
            mark_t, mark_n = self._rate_mark
            if now - mark_t >= 1.0:
                self._rate = (self._events - mark_n) / (now - mark_t)
                self._rate_mark = (now, self._events)

    def render(self) -> str:
        """The view as HTML: a summary line, the plot and the first rows of the store."""
        with self._lock:
            samples = list(self._samples)
            rate, events, ended = self._rate, self._events, self._ended
        summary = [html.escape(self._title)] if self._title else []
        count = len(self.store)
        summary.append(f"{count:,} object{'' if count == 1 else 's'}")
        summary.append("ready" if self.store.is_ready() else "listing…")
        if events:
            summary.append(f"{rate:,.0f} events/s ({events:,} in all)")
        if self._stopped.is_set():
            summary.append("stopped")
        if ended:
            summary.append(html.escape(ended))
        return (
            '<div class="rxkube-live">'
            f'<div style="{_display.STYLE}"><b>{" · ".join(summary)}</b></div>'
            f"{render_counts_svg(samples)}"
            f"{render_store_html(self.store, self._limit)}"
            "</div>"
        )

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
        """Sample and redraw now, if the output changed (the thread does this periodically)."""
        self.sample()
        rendered = self.render()
        if rendered != self._shown and self._handle is not None:
            self._shown = rendered
            self._handle.update(_ipython().HTML(rendered))

    def stop(self) -> None:
        """Stop following: dispose the subscription, end the thread, draw a last time."""
        if self._stopped.is_set():
            return
        self._stopped.set()
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
    view.sample()
    handle = ipython.display(ipython.HTML(view.render()), display_id=True)
    view._start(handle)
    return view


def _ipython() -> ModuleType:
    # IPython is the optional `notebook` extra: imported only when a view is displayed.
    return importlib.import_module("IPython.display")


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
