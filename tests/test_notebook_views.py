"""Jupyter views (``rxkube.notebook``) and the status/age summaries they share with the CLI."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from reactivex.subject import Subject

from rxkube import _display, notebook, store
from rxkube.events import Apply, Delete, Init, InitApply, InitDone
from rxkube.notebook import live, render_counts_svg, render_store_html

NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


def pod(
    name: str, namespace: str = "default", phase: str = "Running", **extra: Any
) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": "2024-01-01T11:57:00Z",
            **extra,
        },
        "status": {"phase": phase},
    }


# -- summaries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (pod("a", phase="Succeeded"), "Succeeded"),
        ({"kind": "Pod", "metadata": {"name": "a"}}, "Pending"),
        (pod("a", deletionTimestamp="2024-01-01T12:00:00Z"), "Terminating"),
        (
            {
                "kind": "Pod",
                "status": {
                    "phase": "Running",
                    "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
                },
            },
            "CrashLoopBackOff",
        ),
        ({"kind": "Deployment", "spec": {"replicas": 3}, "status": {"readyReplicas": 1}}, "1/3"),
        (
            {"kind": "Node", "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
            "NotReady",
        ),
        ({"kind": "Namespace", "status": {"phase": "Active"}}, "Active"),
        ({"kind": "ConfigMap", "data": {}}, "-"),
    ],
)
def test_status_is_one_word_like_kubectl(obj: dict[str, Any], expected: str) -> None:
    assert _display.status(obj) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (5, "5s"),
        (119, "119s"),
        (200, "3m20s"),
        (600, "10m"),
        (4 * 3600, "4h"),
        (50 * 3600, "2d2h"),
        (30 * 86400, "30d"),
    ],
)
def test_ages_read_like_kubectl(seconds: int, expected: str) -> None:
    assert _display.human_duration(seconds) == expected


def test_age_of_an_object_without_timestamp_is_unknown() -> None:
    assert _display.age({"metadata": {}}) == "<unknown>"
    assert _display.age(pod("a"), NOW) == "3m"


_ODD_JSON: list[Any] = [
    None,
    True,
    0,
    7,
    -1.5,
    "",
    "x",
    "2024-01-01T11:00:00",  # a time without a zone
    [],
    [1, "x", None],
    [[]],
    {},
    {"a": {"b": [1]}},
]
"""JSON values a custom resource (or a server that does not validate) may put anywhere."""

_ODD_PLACES: list[tuple[str | int, ...]] = [
    ("kind",),
    ("metadata", "creationTimestamp"),
    ("metadata", "deletionTimestamp"),
    ("metadata", "resourceVersion"),
    ("spec",),
    ("spec", "replicas"),
    ("status",),
    ("status", "phase"),
    ("status", "readyReplicas"),
    ("status", "conditions"),
    ("status", "conditions", 0),
    ("status", "conditions", 0, "type"),
    ("status", "conditions", 0, "status"),
    ("status", "containerStatuses"),
    ("status", "containerStatuses", 0),
    ("status", "containerStatuses", 0, "state"),
    ("status", "containerStatuses", 0, "state", "waiting"),
    ("status", "containerStatuses", 0, "state", "waiting", "reason"),
]


def _odd_objects() -> list[dict[str, Any]]:
    """Objects of a few kinds, each with one odd JSON value at one place of what the
    display reads (metadata's names are left valid: every API server validates them)."""
    objects = []
    for kind in ("Pod", "Deployment", "Widget"):
        for place in _ODD_PLACES:
            for i, value in enumerate(_ODD_JSON):
                obj: dict[str, Any] = {
                    "kind": kind,
                    "metadata": {
                        "name": f"{kind}-{'.'.join(map(str, place))}-{i}",
                        "namespace": "default",
                        "creationTimestamp": "2024-01-01T11:57:00Z",
                        "resourceVersion": "1",
                    },
                    "spec": {"replicas": 2},
                    "status": {
                        "phase": "Running",
                        "readyReplicas": 1,
                        "conditions": [{"type": "Ready", "status": "True"}],
                        "containerStatuses": [{"state": {"waiting": {"reason": "Pulling"}}}],
                    },
                }
                parent: Any = obj
                for step in place[:-1]:
                    parent = parent[step]
                parent[place[-1]] = value
                objects.append(obj)
    return objects


def test_the_display_of_an_object_never_raises_whatever_json_it_holds(
    screen: FakeDisplay,
) -> None:
    """``rxkube watch``, the store's HTML and the live views read the same summaries: a
    custom resource's ``status.conditions: 5`` once ended the watch with a TypeError."""
    objects = _odd_objects()
    for obj in objects:
        try:
            cells = [*_display.key(obj), _display.status(obj), _display.age(obj, NOW)]
            cells.append(_display.resource_version(obj))
        except Exception as exc:
            pytest.fail(f"{exc!r} for {obj}")
        assert all(isinstance(cell, str) and "\n" not in cell for cell in cells), (cells, obj)
    assert render_store_html(objects, limit=len(objects), now=NOW).count("<tr>") == 1 + len(objects)
    reader, writer = store("widgets")
    writer.apply(Init())
    for obj in objects:
        writer.apply(InitApply(obj))
    writer.apply(InitDone())
    assert f"{len(objects):,} objects" in reader._repr_html_()
    with live(reader, interval=3600, limit=len(objects)) as view:
        view.sample()
        assert len(view.render_text().splitlines()) == 1 + len(objects)
        assert "<svg" in view.render()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"conditions": 5}, "-"),
        ({"conditions": {"type": "Ready", "status": "True"}}, "-"),
        ({"conditions": [1, "x", {"type": "Ready", "status": "True"}]}, "Ready"),
        ({"phase": ["Running"]}, "-"),
        ({"phase": 3}, "3"),
    ],
)
def test_a_status_shaped_unlike_a_built_ins_reads_as_absent(
    status: dict[str, Any], expected: str
) -> None:
    assert _display.status({"kind": "Widget", "status": status}) == expected


# -- the store table -------------------------------------------------------------------


def test_store_table_is_sorted_escaped_and_counted() -> None:
    reader, writer = store("pods")
    for event in (
        Init(),
        InitApply(pod("b<script>")),
        InitApply(pod("a", "kube-system")),
        InitDone(),
    ):
        writer.apply(event)
    html = render_store_html(reader, now=NOW)
    assert "2 Pods" in html
    assert html.index(">default<") < html.index(">kube-system<")
    assert "b&lt;script&gt;" in html and "<script>" not in html
    assert re.findall(r"<th[^>]*>(\w+)</th>", html) == ["NAMESPACE", "NAME", "AGE", "STATUS"]
    assert ">3m<" in html


def test_store_table_keeps_its_layout_under_jupyter_styles() -> None:
    html = render_store_html([pod("a"), pod("b")])
    cells = re.findall(r"<t[hd]( [^>]*)?>", html)
    assert cells and all("text-align: left" in (attrs or "") for attrs in cells)
    assert "border-spacing" not in html and "margin-left: -" not in html


def test_store_table_of_ten_thousand_objects_is_cut_with_a_note() -> None:
    objects = [pod(f"p{i:05d}", f"ns{i % 7}") for i in range(10_000)]
    started = time.perf_counter()
    html = render_store_html(objects, limit=50)
    assert time.perf_counter() - started < 2.0
    assert html.count("<tr>") == 1 + 50 + 1  # header, rows, the note
    assert "10,000 Pods · showing the first 50" in html
    assert "… and 9,950 more" in html


def test_store_table_says_when_the_store_is_not_ready() -> None:
    reader, _writer = store("pods")
    assert "not ready yet" in render_store_html(reader)


def test_cluster_scoped_objects_have_no_namespace_column() -> None:
    html = render_store_html([{"kind": "Node", "metadata": {"name": "n1"}}])
    assert "NAMESPACE" not in html and ">n1<" in html


def test_counts_plot_has_one_line_per_status_and_a_legend() -> None:
    assert render_counts_svg([]) == ""
    svg = render_counts_svg([(0.0, Counter(Running=1)), (2.0, Counter(Running=3, Failed=1))])
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    assert "Running 3" in svg and "Failed 1" in svg


# -- live views ------------------------------------------------------------------------


class FakeDisplay:
    """Stands in for IPython.display: records what is shown and each in-place update."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.updates: list[str] = []
        self.texts: list[str] = []
        self._changed = threading.Condition()

    def module(self) -> SimpleNamespace:
        return SimpleNamespace(display=self._display)

    def _display(self, bundle: dict[str, str], *, raw: bool, display_id: bool) -> SimpleNamespace:
        assert raw and display_id and set(bundle) == {"text/html", "text/plain"}
        self.shown.append(bundle["text/html"])
        self.texts.append(bundle["text/plain"])
        return SimpleNamespace(update=self._update)

    def _update(self, bundle: dict[str, str], *, raw: bool) -> None:
        assert raw
        with self._changed:
            self.updates.append(bundle["text/html"])
            self.texts.append(bundle["text/plain"])
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(text in html for html in self.updates), timeout=timeout
            )
        assert found, f"no update showing {text!r}; last: {self.updates[-1:]}"
        return next(html for html in reversed(self.updates) if text in html)


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> FakeDisplay:
    fake = FakeDisplay()
    monkeypatch.setattr(notebook, "_ipython", fake.module)
    return fake


def test_live_view_of_a_store_updates_in_place_until_stopped(screen: FakeDisplay) -> None:
    reader, writer = store("pods")
    for event in (Init(), InitApply(pod("web-0", phase="Pending")), InitDone()):
        writer.apply(event)
    view = live(reader, title="pods", interval=0.02)
    try:
        assert "web-0" in screen.shown[0] and "1 object ·" in screen.shown[0]
        writer.apply(Apply(pod("web-1")))
        html = screen.wait_for("web-1")
        assert "<svg" in html and "Running 1" in html and "Pending 1" in html
    finally:
        view.stop()
    assert "stopped" in screen.updates[-1]
    count = len(screen.updates)
    writer.apply(Apply(pod("web-2")))
    assert len(screen.updates) == count  # stopped: nothing redraws any more


def test_live_view_of_watch_events_collects_them_and_disposes_on_stop(screen: FakeDisplay) -> None:
    events: Subject[Any] = Subject()
    view = live(events, interval=0.02)
    try:
        assert "listing…" in screen.shown[0]
        for event in (
            Init(),
            InitApply(pod("a")),
            InitApply(pod("b")),
            InitDone(),
            Delete(pod("a")),
        ):
            events.on_next(event)
        html = screen.wait_for("events/s (5 in all)")
        assert "ready" in html and ">b<" in html and ">a<" not in html
    finally:
        view.stop()
    assert not events.observers


def test_live_view_of_objects_from_a_shared_store_is_ready_at_once(screen: FakeDisplay) -> None:
    objects: Subject[Any] = Subject()
    with live(objects, interval=0.02) as view:
        objects.on_next(pod("a"))
        screen.wait_for(">a<")
        assert view.store.is_ready()


def test_live_view_reports_the_end_of_its_stream(screen: FakeDisplay) -> None:
    events: Subject[Any] = Subject()
    with live(events, interval=0.02):
        events.on_error(RuntimeError("connection lost"))
        screen.wait_for("ended with RuntimeError: connection lost")


def test_live_rejects_what_it_cannot_show(screen: FakeDisplay) -> None:
    with pytest.raises(TypeError, match="Store or an Observable"):
        live([pod("a")])  # type: ignore[arg-type]


def test_counts_plot_reads_on_dark_themes_and_labels_its_axes() -> None:
    svg = render_counts_svg([(0.0, Counter(Running=1)), (5.0, Counter(Running=2))])
    texts = svg.count("<text ")
    assert texts and svg.count('fill="currentColor"') == texts  # no text fixed to black
    assert "objects</text>" in svg and "time since the view started</text>" in svg
    assert ">0 s</text>" in svg and ">5 s</text>" in svg


def test_live_view_of_an_idle_store_does_not_redraw(screen: FakeDisplay) -> None:
    reader, writer = store("pods")
    for event in (Init(), InitApply(pod("web-0")), InitDone()):
        writer.apply(event)
    # A long interval keeps the view's own thread out of the way: refresh() by hand.
    view = live(reader, interval=3600)
    try:
        for _ in range(50):
            view.refresh()
        assert screen.updates == []
        writer.apply(Apply(pod("web-0", resourceVersion="7")))  # same counts, a new version
        view.refresh()
        view.refresh()
        assert len(screen.updates) == 1
        writer.apply(Apply(pod("web-0", phase="Pending")))
        view.refresh()
        assert len(screen.updates) == 2 and "Pending 1" in screen.updates[-1]
    finally:
        view.stop()
    assert len(screen.updates) == 3 and "stopped" in screen.updates[-1]


def test_running_a_cell_again_replaces_its_live_view(
    screen: FakeDisplay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notebook, "_cell_id", lambda: "cell-1")
    events: Subject[Any] = Subject()
    first = live(events, interval=0.02)
    second = live(events, interval=0.02)
    try:
        assert first._thread is not None and not first._thread.is_alive()
        assert "stopped" in screen.updates[-1]
        assert len(events.observers) == 1  # the first view's subscription is disposed
        monkeypatch.setattr(notebook, "_cell_id", lambda: "cell-2")
        with live(events, interval=0.02):  # another cell: both views run
            assert second._thread is not None and second._thread.is_alive()
    finally:
        second.stop()
    assert not events.observers


def test_live_view_has_a_plain_text_form(screen: FakeDisplay) -> None:
    reader, writer = store("pods")
    for event in (Init(), InitApply(pod("web-0", "prod")), InitDone()):
        writer.apply(event)
    with live(reader, title="pods", interval=3600):
        assert screen.texts[0].splitlines() == ["pods · 1 object · ready", "  prod/web-0  Running"]


def test_live_without_ipython_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    reader, _writer = store("pods")
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'rxkube\[notebook\]'"):
        live(reader)
