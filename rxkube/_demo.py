"""``rxkube demo``: a self-healing cache at work, against an embedded API server.

The demo runs, in one process:

- ``rxkube.testing.ApiServer`` on 127.0.0.1;
- a workload thread that creates pods, moves them through their phases and deletes them,
  over HTTP like any client;
- one watch, ``watcher → reflect_shared → default_backoff``, into a shared store that
  three subscribers read from;
- a schedule of faults (every watch dropped; a compaction that makes the resumed watch
  fail with 410 Gone; failing list and watch requests), each followed by a check that
  pauses the workload and compares the store with the server's own list;
- a terminal view, redrawn in place on a terminal and printed as plain lines otherwise.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from . import _display
from .errors import RxKubeError
from .events import Apply, Delete, Event, Init, Object

if TYPE_CHECKING:
    from reactivex.abc import DisposableBase

    from .client import Api
    from .dispatcher import SharedStore
    from .testing import ApiServer

NAMESPACE = "demo"
CHECK_TIMEOUT = 10.0
"""Seconds a check waits for the cache to catch up with the server before it fails."""

_PHASES = ("Pending", "Running", "Succeeded", "Failed")
_BAR_STYLE = {
    "Pending": ("33", "▒"),
    "Running": ("32", "█"),
    "Succeeded": ("34", "▓"),
    "Failed": ("31", "░"),
}
"""Per phase: the ANSI colour of its bar segment, and its character when colours are off."""
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_demo(
    *, duration: float, pods: int, out: TextIO, seed: int | None = None, tty: bool | None = None
) -> int:
    """Run the demo for ``duration`` seconds (or until Ctrl+C) and report on ``out``.

    Args:
        duration: seconds to run.
        pods: how many pods the workload keeps alive.
        out: where the view is drawn.
        seed: seeds the workload's choices, for a repeatable run.
        tty: draw in place (``True``) or print plain lines (``False``); by default,
            whether ``out`` is a terminal.

    Returns:
        0 when every check found the cache equal to the server, else 1.

    Raises:
        KeyboardInterrupt: Ctrl+C ended the demo early (after it stopped cleanly).
    """
    from ._steps import quiet_backoff_log
    from .testing import ApiServer

    view = _View(out, duration, out.isatty() if tty is None else tty)
    with quiet_backoff_log(), ApiServer() as srv:
        demo = _Demo(srv, pods, random.Random(seed), view)
        try:
            demo.start()
            demo.run(duration)
        except KeyboardInterrupt:
            view.note("interrupted: stopping")
            raise
        finally:
            demo.stop()
        return 0 if demo.final_report() else 1


@dataclass
class _Check:
    ok: bool
    at: float
    text: str


class _Stats:
    """Counters shared by the watch thread, the subscribers and the view."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events = 0
        self.lists = 0
        self.relists_gone = 0  # relists the watcher made itself, after 410 Gone
        self.relists_retry = 0  # relists of a new subscription, after default_backoff() retried
        self._retried = False
        self.retries = 0
        self.last_retry = ""
        self.delivered = 0
        self.failed_uids: set[str] = set()
        self.deletions = 0
        self.rate_window: deque[tuple[float, int]] = deque(maxlen=64)

    def on_event(self, event: Event) -> None:
        with self.lock:
            self.events += 1
            if isinstance(event, Init):
                self.lists += 1
                if self.lists > 1:
                    if self._retried:
                        self.relists_retry += 1
                    else:
                        self.relists_gone += 1
                self._retried = False

    def on_retry(self, error: BaseException, delay: float) -> None:
        with self.lock:
            self.retries += 1
            self._retried = True
            self.last_retry = f"{type(error).__name__}, retrying in {delay:.1f} s"

    def on_object(self, obj: Object) -> None:
        with self.lock:
            self.delivered += 1

    def on_failed(self, obj: Object) -> None:
        if _display.status(obj) == "Failed":
            with self.lock:
                self.failed_uids.add(str(_display.meta(obj).get("uid")))

    def on_change(self, event: Apply | Delete) -> None:
        if isinstance(event, Delete):
            with self.lock:
                self.deletions += 1

    def survived(self) -> str:
        """The relists and retries so far, each relist with its cause."""
        with self.lock:
            gone, retried, retries = self.relists_gone, self.relists_retry, self.retries
        causes = [f"{gone} after 410 Gone"] if gone else []
        causes += [f"{retried} after a retry"] if retried else []
        relists = _plural(gone + retried, "relist") + (f" ({', '.join(causes)})" if causes else "")
        return f"{relists} and {_plural(retries, 'retry', 'retries')}"

    def rate(self) -> float:
        """Events per second over the last couple of seconds."""
        now = time.monotonic()
        with self.lock:
            self.rate_window.append((now, self.events))
            while len(self.rate_window) > 2 and now - self.rate_window[0][0] > 2.0:
                self.rate_window.popleft()
            (t0, n0), (t1, n1) = self.rate_window[0], self.rate_window[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class _Workload:
    """Churns pods over HTTP: create, Pending → Running → Succeeded/Failed, delete."""

    def __init__(self, api: Api, target: int, rng: random.Random, ops_per_second: float) -> None:
        self._api = api
        self._target = target
        self._rng = rng
        self._period = 1.0 / ops_per_second
        self._phase: dict[str, str] = {}
        self._serial = 0
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rxkube-demo-workload", daemon=True)
        self.writes = 0
        self.errors = 0

    def populate(self, count: int) -> None:
        """Create ``count`` pods at once (before the watch starts)."""
        for _ in range(count):
            self._create()

    def start(self) -> None:
        """Start churning in a thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop churning and wait for the thread to end."""
        self._stop.set()
        self._resume.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the workload still: no write happens inside the ``with`` block."""
        self._idle.clear()
        self._resume.clear()
        if self._thread.is_alive():
            self._idle.wait(timeout=10)
        try:
            yield
        finally:
            self._resume.set()

    def touch(self, count: int) -> None:
        """Make ``count`` writes now, from the calling thread (the workload is paused)."""
        for name in self._rng.sample(sorted(self._phase), min(count, len(self._phase))):
            self._api.patch(name, {"metadata": {"labels": {"touched": str(self._serial)}}})
            self.writes += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._resume.is_set():
                self._idle.set()
                self._resume.wait()
                continue
            try:
                self._step()
            except RxKubeError:
                self.errors += 1
            self._stop.wait(self._period)

    def _create(self) -> None:
        self._serial += 1
        name = f"web-{self._serial:04d}"
        pod = {
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
        }
        self._api.create(pod)
        self._phase[name] = "Pending"
        self.writes += 1

    def _step(self) -> None:
        if len(self._phase) < self._target and self._rng.random() < 0.6:
            self._create()
            return
        if not self._phase:
            return
        name = self._rng.choice(sorted(self._phase))
        phase = self._phase[name]
        if phase in ("Succeeded", "Failed"):
            self._api.delete(name)
            del self._phase[name]
        else:
            if phase == "Pending":
                new = "Running"
            else:
                new = "Failed" if self._rng.random() < 0.2 else "Succeeded"
            self._api.patch(name, {"status": {"phase": new}}, subresource="status")
            self._phase[name] = new
        self.writes += 1


class _Demo:
    """The demo's parts, wired together; ``run`` follows the fault schedule."""

    def __init__(self, srv: ApiServer, pods: int, rng: random.Random, view: _View) -> None:
        from .client import Api

        self.srv = srv
        self.view = view
        self.stats = _Stats()
        self.client = srv.client()
        Api(self.client, "namespaces").create({"metadata": {"name": NAMESPACE}})
        self.api = Api(self.client, "pods", namespace=NAMESPACE)
        self.workload = _Workload(self.api, pods, rng, ops_per_second=max(20.0, pods * 1.5))
        self.workload.populate(pods // 2)
        self.checks: list[_Check] = []
        self._subscriptions: list[DisposableBase] = []
        self._started = time.monotonic()
        self.reader: SharedStore | None = None

    # -- wiring ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the watch, its subscribers and the workload."""
        import reactivex.operators as ops

        from ._watching import watcher
        from .dispatcher import store_shared
        from .operators import default_backoff, reflect_shared

        reader, writer = store_shared(256, name="pods")
        self.reader = reader
        stats = self.stats
        subscribe = self._subscriptions.append
        # Three consumers of one watch: each gets its own buffer and thread.
        subscribe(reader.subscribe().subscribe(stats.on_object))
        subscribe(reader.subscribe().subscribe(stats.on_failed))
        subscribe(reader.subscribe(events=True).subscribe(stats.on_change))
        subscribe(
            watcher(self.api)
            .pipe(
                ops.do_action(stats.on_event),
                reflect_shared(writer),
                default_backoff(on_retry=stats.on_retry),
            )
            .subscribe(on_error=lambda error: self.view.note(f"the watch failed: {error}"))
        )
        reader.wait_until_ready(timeout=CHECK_TIMEOUT)
        self.workload.start()

    def stop(self) -> None:
        """Stop the workload, then dispose every subscription."""
        self.workload.stop()
        for subscription in reversed(self._subscriptions):
            subscription.dispose()
        self._subscriptions.clear()
        self.client.close()

    # -- the schedule ----------------------------------------------------------------

    def run(self, duration: float) -> None:
        """Follow the fault schedule for ``duration`` seconds, redrawing the view."""
        schedule: list[tuple[float, Callable[[], None]]] = [
            (0.15, self.drop_watches),
            (0.30, self.check),
            (0.42, self.expire_history),
            (0.57, self.check),
            (0.68, self.fail_requests),
            (0.84, self.check),
        ]
        self._started = time.monotonic()
        while True:
            elapsed = self.elapsed()
            while schedule and elapsed >= schedule[0][0] * duration:
                schedule.pop(0)[1]()
            if elapsed >= duration:
                break
            self.view.draw(self, elapsed)
            time.sleep(min(self.view.period, max(0.0, duration - elapsed)))
        self.check()
        self.view.draw(self, self.elapsed(), final=True)

    def elapsed(self) -> float:
        """Seconds since the schedule started."""
        return time.monotonic() - self._started

    def drop_watches(self) -> None:
        """Close every watch connection: the watcher resumes without relisting."""
        self.srv.faults.close_watches()
        self.view.event(
            "⚡", self.elapsed(), "dropped every watch connection (the server ended them)"
        )

    def expire_history(self) -> None:
        """Drop the watch and compact past it: the resumed watch gets 410 Gone and relists."""
        # The watcher's next watch request is held back while the history it would resume
        # from is written over and compacted away, so it is answered with 410 Gone.
        self.srv.faults.delay_responses(1.0, 1, verb="watch")
        with self.workload.paused():
            self.srv.faults.close_watches()
            self.workload.touch(3)
            self.srv.compact()
        self.view.event(
            "⚡",
            self.elapsed(),
            "dropped the watch and compacted the history past it: 410 Gone ahead",
        )

    def fail_requests(self) -> None:
        """Drop the watch and fail its next request with 500: default_backoff() retries."""
        self.srv.faults.fail_requests(500, 1, verb="watch")
        self.srv.faults.close_watches()
        self.view.event(
            "⚡",
            self.elapsed(),
            "dropped the watch and failed its next request with 500: a retry, then a relist",
        )

    def check(self) -> None:
        """Pause the workload and compare the store with the server's list."""
        assert self.reader is not None
        started = time.monotonic()
        changed = threading.Event()
        # Woken by each change the store dispatches (after it is applied), not by a poll.
        changes = self.reader.subscribe(events=True).subscribe(lambda _event: changed.set())
        try:
            with self.workload.paused():
                server = self._server_state()
                while True:
                    changed.clear()
                    mine = {
                        _display.key(o): _display.resource_version(o)
                        for o in self.reader.state(copy=False)
                    }
                    if mine == server:
                        caught_up = (time.monotonic() - started) * 1000
                        text = (
                            f"cache == server: {len(mine)} pods, every resourceVersion matches"
                            f" (in {caught_up:.0f} ms)"
                        )
                        self._record(_Check(True, self.elapsed(), text))
                        return
                    left = started + CHECK_TIMEOUT - time.monotonic()
                    if left <= 0 or not changed.wait(left):
                        self._record(_Check(False, self.elapsed(), _difference(mine, server)))
                        return
        finally:
            changes.dispose()

    def _server_state(self) -> dict[tuple[str, str], str]:
        # Read straight from the server's storage: injected faults do not touch it.
        return {
            _display.key(o): _display.resource_version(o)
            for o in self.srv.list("pods", namespace=NAMESPACE)
        }

    def _record(self, check: _Check) -> None:
        self.checks.append(check)
        self.view.event("✓" if check.ok else "✗", check.at, check.text)

    def final_report(self) -> bool:
        """Print the summary; whether every check passed."""
        passed = sum(c.ok for c in self.checks)
        ok = bool(self.checks) and passed == len(self.checks)
        mark = "✓" if ok else "✗"
        self.view.line(
            f"{mark} {passed}/{len(self.checks)} checks: the cache matched the server through"
            f" {self.stats.survived()}, with one watch shared by 3 subscribers"
        )
        return ok


def _plural(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _difference(mine: dict[tuple[str, str], str], server: dict[tuple[str, str], str]) -> str:
    missing = len(server.keys() - mine.keys())
    extra = len(mine.keys() - server.keys())
    stale = sum(1 for k in server.keys() & mine.keys() if server[k] != mine[k])
    return f"cache != server after {CHECK_TIMEOUT:g} s: {missing} missing, {extra} extra, {stale} stale"


class _View:
    """Draws the demo: in place on a terminal, as plain lines otherwise."""

    def __init__(self, out: TextIO, duration: float, tty: bool) -> None:
        self._out = out
        self._duration = duration
        self._tty = tty
        self.period = 0.1 if tty else 0.25
        self._drawn = 0  # lines of the live frame currently on screen
        self._last_plain = -1.0
        self._events: list[str] = []
        self._lock = threading.Lock()
        self._header_done = False
        self._colour = tty and not os.environ.get("NO_COLOR")

    def event(self, mark: str, at: float, text: str) -> None:
        """Record a fault or a check: kept in the frame on a terminal, printed otherwise."""
        self.line(f"{mark} {at:5.1f} s  {text}")

    def note(self, text: str) -> None:
        """A remark of the demo itself."""
        self.line(f"  {text}")

    def line(self, text: str) -> None:
        """Print a line that stays (above the live frame on a terminal)."""
        with self._lock:
            self._clear()
            self._out.write(text + "\n")
            self._out.flush()

    def draw(self, demo: _Demo, elapsed: float, *, final: bool = False) -> None:
        """Redraw the live frame (terminal) or print a status line every second (plain)."""
        if not self._header_done:
            self._header_done = True
            self.line(
                f"rxkube demo: an embedded API server at {demo.srv.url}, a workload churning"
                f" pods in namespace {NAMESPACE!r}, and one watch:"
            )
            self.line(
                "  watcher → reflect_shared → default_backoff, read by 3 subscribers"
                " (objects, failed pods, deletions)"
            )
        stats, reader = demo.stats, demo.reader
        objects = reader.state(copy=False) if reader is not None else []
        phases = Counter(_display.status(o) for o in objects)
        rate = stats.rate()
        with stats.lock:
            events, retries, last_retry = stats.events, stats.retries, stats.last_retry
            delivered, failed, deletions = stats.delivered, len(stats.failed_uids), stats.deletions
            relists = stats.relists_gone + stats.relists_retry
        watches = demo.srv.open_watches()
        by_phase = "  ".join(f"{p} {phases.get(p, 0)}" for p in _PHASES)
        if not self._tty:
            if final or elapsed - self._last_plain >= 1.0:
                self._last_plain = elapsed
                self.line(
                    f"[{elapsed:5.1f} s] pods={len(objects)} {by_phase.replace('  ', ' ')} |"
                    f" events={events} ({rate:.0f}/s) relists={relists} retries={retries}"
                    f" watches-open={watches}"
                )
            return
        width = self._columns()
        bar = _stacked_bar(
            phases, max(1, len(objects)), size=min(48, width - 18), colour=self._colour
        )
        frame = [
            f"  {elapsed:5.1f} s of {self._duration:g} s  "
            f"{'done' if final else '(Ctrl+C to stop)'}",
            f"  pods in cache  {len(objects):<6} {by_phase}",
            f"                 {bar}",
            f"  watch events   {events:<6} {rate:6.0f}/s   HTTP watches open {watches}",
            f"  survived       {stats.survived()}",
            # What the subscribers of the shared store saw: objects (each apply, and every
            # object again after a relist), not events, and the deletions stream apart.
            f"  subscribers    objects {delivered} · failed pods {failed} · deletions {deletions}",
        ]
        if last_retry:
            frame.append(f"  last retry     {last_retry}")
        frame = [_fit(line, width) for line in frame]
        with self._lock:
            self._clear()
            self._out.write("\n".join(frame) + "\n")
            self._out.flush()
            self._drawn = 0 if final else len(frame)

    def _columns(self) -> int:
        # A line as wide as the terminal wraps on some terminals and then takes two rows,
        # and the redraw (which moves up one row per line) would leave the rest behind.
        return max(20, shutil.get_terminal_size((100, 24)).columns - 1)

    def _clear(self) -> None:
        if self._tty and self._drawn:
            self._out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0


def _fit(line: str, width: int) -> str:
    """``line`` cut to ``width`` visible characters (colour codes take none)."""
    visible = _ANSI.sub("", line)
    if len(visible) <= width:
        return line
    if visible == line:
        return line[: width - 1] + "…"
    return visible[: width - 1] + "…"  # a cut inside colour codes would leave them open


def _stacked_bar(phases: Counter[str], total: int, *, size: int, colour: bool) -> str:
    """One bar split by phase: coloured on a terminal, told apart by shading otherwise."""
    parts = []
    for phase in _PHASES:
        n = round(phases.get(phase, 0) / total * size)
        code, char = _BAR_STYLE[phase]
        parts.append(f"\x1b[{code}m{'█' * n}\x1b[0m" if colour else char * n)
    return "".join(parts)
