"""The ``rxkube`` command line: ``demo``, ``watch`` and ``serve``.

``rxkube demo`` shows a self-healing cache against an embedded API server, with no
cluster needed; ``rxkube watch`` is ``kubectl get -w`` built on ``watcher()``;
``rxkube serve`` runs the test API server for other tools. Mistakes a user can make
(no kubeconfig, an unreachable server, an unknown resource, a bad selector) end
with one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from . import _display
from ._arguments import whole_number
from ._timeouts import checked_timeout
from .errors import RxKubeError, TransportError
from .events import Apply, Delete, Event, Init, InitApply, InitDone, Object

if TYPE_CHECKING:
    from reactivex.abc import DisposableBase

    from .client import Api
    from .protocol import Config

__all__ = ["main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
"""128 + SIGINT: what a shell reports for a command ended by Ctrl+C."""
MAX_DEMO_PODS = 10_000
"""The most pods ``rxkube demo --pods`` keeps alive."""


class UserError(Exception):
    """A mistake the user can fix; its message is printed as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rxkube`` command line.

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status: 0 on success, 1 when the command failed, 2 for a usage
        error, 130 when Ctrl+C ended it (``serve`` runs until Ctrl+C or SIGTERM, and
        exits 0 when it stopped cleanly once serving).
    """
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        # Wherever Ctrl+C lands (parsing, importing a command's modules, waiting on a
        # watch), the command ends with one line, never a traceback.
        return _interrupted()


def _interrupted() -> int:
    with contextlib.suppress(OSError, ValueError):  # a closed stderr has nothing to say
        print("rxkube: interrupted", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def _run(args_list: list[str]) -> int:
    if args_list[:1] == ["serve"]:
        return _run_serve(args_list[1:])
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="rxkube: %(message)s")
    for stream in (sys.stdout, sys.stderr):
        # A terminal that cannot show ✓ or █ gets "?" rather than a UnicodeEncodeError.
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        code: int = args.run(args)
        return code
    except (UserError, RxKubeError) as exc:
        _fail(exc)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `rxkube watch pods | head`
        _silence_stdout()
        return EXIT_OK


def _fail(exc: BaseException) -> None:
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"rxkube: error: {_escaped(message)}", file=sys.stderr)


def _silence_stdout() -> None:
    # Python would report the broken pipe again when it flushes stdout at exit.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxkube",
        description="Reactive Kubernetes watches: a live demo, a watch command and a test API server.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="see a self-healing cache at work against an embedded API server (no cluster needed)",
        description="Start an embedded API server, a workload that creates, updates and deletes "
        "pods, and a watcher -> reflect_shared -> several subscribers; inject faults (dropped "
        "watches, a compaction causing 410 Gone, failing requests) and check that the cache "
        "matches the server.",
    )
    demo.add_argument(
        "--duration",
        type=_positive_float,
        default=20.0,
        metavar="S",
        help="seconds to run (default: 20); Ctrl+C ends it earlier",
    )
    demo.add_argument(
        "--pods",
        type=_pod_count,
        default=40,
        metavar="N",
        help=f"how many pods the workload keeps alive (default: 40, at most {MAX_DEMO_PODS:,})",
    )
    demo.set_defaults(run=_run_demo)

    watch = sub.add_parser(
        "watch",
        help="watch a resource like `kubectl get -w`, surviving relists and disconnects",
        description="List a resource (with progress while the list streams in), then print one "
        "line per change. Survives dropped connections, relists and 410 Gone (default_backoff).",
    )
    watch.add_argument("resource", metavar="RESOURCE", help="e.g. pods, deployments.apps, no")
    scope = watch.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="the namespace (default: the context's)")
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch across all namespaces"
    )
    watch.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector, e.g. app=web")
    watch.add_argument("--field-selector", metavar="SELECTOR", help="e.g. status.phase=Running")
    watch.add_argument(
        "--metadata-only",
        action="store_true",
        help="receive only metadata (PartialObjectMetadata): cheaper for big objects",
    )
    watch.add_argument(
        "-o", "--output", choices=("wide", "json", "yaml"), help="output format (default: a table)"
    )
    watch.add_argument(
        "--kubeconfig", metavar="PATH", help="kubeconfig file (default: $KUBECONFIG)"
    )
    watch.add_argument("--context", metavar="NAME", help="kubeconfig context (default: current)")
    watch.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="S",
        help="stop after S seconds (default: run until Ctrl+C)",
    )
    watch.set_defaults(run=_run_watch)

    sub.add_parser(
        "serve",
        add_help=False,  # `rxkube serve --help` is answered by rxkube.testing's own parser
        help="run the test API server standalone and write a kubeconfig for kubectl or any client"
        " (`rxkube serve --help` for its options)",
    )
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _pod_count(text: str) -> int:
    value = whole_number(text)
    if value > MAX_DEMO_PODS:
        # Beyond it the workload spends the whole run creating pods, showing nothing.
        raise argparse.ArgumentTypeError(f"at most {MAX_DEMO_PODS:,}: {text!r}")
    return value


# -- demo -------------------------------------------------------------------------------


def _run_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    code: int = run_demo(duration=args.duration, pods=args.pods, out=sys.stdout)
    return code


# -- serve ------------------------------------------------------------------------------


def _run_serve(argv: Sequence[str]) -> int:
    """``rxkube serve``: ``python -m rxkube.testing`` under another name."""
    from .testing.__main__ import serve_main

    # Once serving, Ctrl+C stops the server cleanly (exit 0); a KeyboardInterrupt here
    # came before that (while importing or loading) and is an interrupted command.
    try:
        return serve_main(argv, prog="rxkube serve")
    except SystemExit as exc:  # its --help, or a usage error it printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


# -- watch ------------------------------------------------------------------------------


def _run_watch(args: argparse.Namespace) -> int:
    from ._kubeconfig import kubeconfig_files
    from .client import Api, Client
    from .protocol import Config

    try:
        config = Config(label_selector=args.selector, field_selector=args.field_selector)
    except ValueError as exc:
        message = str(exc).replace("Config.label_selector", "the label selector (-l)")
        message = message.replace("Config.field_selector", "the field selector (--field-selector)")
        raise UserError(message) from None
    given, existing = kubeconfig_files(args.kubeconfig)
    if not existing:
        raise UserError(f"no kubeconfig found at {given}: pass --kubeconfig PATH or set KUBECONFIG")
    client = Client.from_kubeconfig(args.kubeconfig, context=args.context)
    try:
        namespace = None
        if not args.all_namespaces:
            namespace = args.namespace or _context_namespace(args.kubeconfig, args.context)
        try:
            api = Api(client, args.resource, namespace=namespace)
        except ValueError as exc:  # -n (or the context's namespace) is no path segment
            raise UserError(str(exc)) from None
        printer = _EventPrinter(
            sys.stdout,
            sys.stderr,
            output=args.output,
            show_namespace=api.resource.namespaced and namespace is None,
            singular=api.resource.kind.lower(),
            plural=api.resource.plural,
        )
        return _follow(api, config, printer, metadata_only=args.metadata_only, timeout=args.timeout)
    finally:
        client.close()


def _context_namespace(path: str | None, context: str | None) -> str:
    """The namespace the kubeconfig context names, ``default`` if none (as kubectl does)."""
    from kubernetes import config as k8s_config

    from ._kubeconfig import kubeconfig_files

    try:
        contexts, current = k8s_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            os.pathsep.join(kubeconfig_files(path)[1])
        )
    except Exception:  # the client read this file already; fall back like kubectl
        return "default"
    chosen = next((c for c in contexts or () if c.get("name") == context), None) or current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def _follow(
    api: Api, config: Config, printer: _EventPrinter, *, metadata_only: bool, timeout: float | None
) -> int:
    """Run the watch until Ctrl+C, ``timeout``, a fatal error or a closed stdout."""
    from ._steps import quiet_backoff_log
    from ._watching import metadata_watcher, watcher
    from .operators import default_backoff

    done = threading.Event()
    failure: list[BaseException] = []

    def on_retry(error: BaseException, delay: float) -> None:
        # Before the first complete list, a failure is the user's to fix (wrong
        # server, no permission): report it instead of retrying forever.
        if not printer.synced:
            raise error
        printer.note(f"{_one_line(error)}; retrying in {delay:.1f} s")

    def on_next(event: Event) -> None:
        try:
            printer.on_event(event)
        except BrokenPipeError:
            failure.append(BrokenPipeError())
            done.set()

    def on_error(error: Exception) -> None:
        failure.append(error)
        done.set()

    source = metadata_watcher if metadata_only else watcher
    with quiet_backoff_log():
        subscription: DisposableBase = (
            source(api, config)
            .pipe(default_backoff(on_retry=on_retry))
            .subscribe(on_next, on_error, done.set)
        )
        try:
            # Ctrl+C interrupts the wait at once; a --timeout beyond what a wait can take
            # (inf, 1e10) is no limit rather than an OverflowError.
            done.wait(checked_timeout(timeout, "--timeout"))
        finally:
            subscription.dispose()
            printer.finish()
    if failure:
        error = failure[0]
        if isinstance(error, BrokenPipeError | RxKubeError):
            raise error
        raise UserError(f"the watch failed: {_one_line(error)}")
    if not printer.synced:
        # Not even one complete list: an empty resource would have said "listed 0".
        within = "" if timeout is None else f" within {timeout:g} s"
        raise UserError(
            f"no complete list of {api.resource.plural} from {api.client.server}{within}:"
            " the server accepted the connection but did not answer in time"
        )
    return EXIT_OK


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, TransportError) or not text:
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text


class _EventPrinter:
    """Turns watch events into ``kubectl get -w``-like lines.

    The initial list is buffered (with a progress line on a terminal) and printed
    sorted once complete. Later relists are compared with what was printed, so the
    output stays a faithful change log: only objects that changed while the watch
    was down are printed, as ADDED, MODIFIED or DELETED.
    """

    def __init__(
        self,
        out: IO[str],
        err: IO[str],
        *,
        output: str | None,
        show_namespace: bool,
        singular: str,
        plural: str,
        progress_interval: float = 0.1,
    ) -> None:
        self.synced = False
        self._out = out
        self._err = err
        self._output = output
        self._show_namespace = show_namespace
        self._singular = singular
        self._plural = plural
        self._tty = err.isatty()
        self._progress_interval = progress_interval
        self._seen: dict[tuple[str, str], str] = {}  # key -> resourceVersion printed last
        self._listing: dict[tuple[str, str], Object] | None = None
        self._list_started = 0.0
        self._last_progress = 0.0
        self._widths: tuple[int, int] = (9, 20)
        self._header_done = False

    # -- events ----------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Handle one watch event from the watch thread."""
        match event:
            case Init():
                self._listing = {}
                self._list_started = self._last_progress = time.monotonic()
            case InitApply(obj):
                assert self._listing is not None
                self._listing[_display.key(obj)] = obj
                self._progress()
            case InitDone():
                self._finish_list()
            case Apply(obj):
                k = _display.key(obj)
                self._emit("MODIFIED" if k in self._seen else "ADDED", obj)
                self._seen[k] = _display.resource_version(obj)
            case Delete(obj):
                self._seen.pop(_display.key(obj), None)
                self._emit("DELETED", obj)

    def note(self, text: str) -> None:
        """Print a remark about the watch itself (on stderr, never mixed with the data)."""
        self._clear_progress()
        print(f"rxkube: {_escaped(text)}", file=self._err, flush=True)

    def finish(self) -> None:
        """Clear a progress line left on the terminal."""
        self._clear_progress()

    # -- list ------------------------------------------------------------------------

    def _progress(self) -> None:
        now = time.monotonic()
        if self._tty and now - self._last_progress >= self._progress_interval:
            self._last_progress = now
            count = len(self._listing or ())
            spinner = "|/-\\"[int(now * 8) % 4]
            self._err.write(f"\r{spinner} listing {self._plural}… {count:,} received")
            self._err.flush()

    def _clear_progress(self) -> None:
        if self._tty:
            self._err.write("\r\033[K")
            self._err.flush()

    def _finish_list(self) -> None:
        listed = self._listing or {}
        self._listing = None
        self._clear_progress()
        seconds = time.monotonic() - self._list_started
        if not self.synced:
            self.synced = True
            self.note(f"listed {self._count(len(listed))} in {seconds:.2f} s; watching for changes")
            names = [_cell(name) for _ns, name in listed] or [""]
            self._widths = (
                max([9, *(len(_cell(ns)) for ns, _ in listed)]) + 2,
                max(20, *map(len, names)) + 2,
            )
            for k in sorted(listed):
                self._emit("ADDED", listed[k])
                self._seen[k] = _display.resource_version(listed[k])
            return
        changes = 0
        for k in sorted(listed):
            obj = listed[k]
            if self._seen.get(k) != _display.resource_version(obj):
                self._emit("MODIFIED" if k in self._seen else "ADDED", obj)
                self._seen[k] = _display.resource_version(obj)
                changes += 1
        for k in sorted(set(self._seen) - set(listed)):
            del self._seen[k]
            self._emit("DELETED", {"metadata": {"namespace": k[0], "name": k[1]}})
            changes += 1
        self.note(f"relisted {self._count(len(listed))}: {changes} changed while away")

    def _count(self, n: int) -> str:
        return f"{n:,} {self._singular if n == 1 else self._plural}"

    # -- lines -----------------------------------------------------------------------

    def _emit(self, kind: str, obj: Object) -> None:
        if self._output == "json":
            line = json.dumps({"type": kind, "object": obj}, separators=(",", ":"), default=str)
            self._out.write(line + "\n")
        elif self._output == "yaml":
            import yaml

            self._out.write("---\n")
            yaml.safe_dump({"type": kind, "object": obj}, self._out, sort_keys=False)
        else:
            self._out.write(self._row(kind, obj) + "\n")
        self._out.flush()

    def _row(self, kind: str, obj: Object) -> str:
        ns_width, name_width = self._widths
        cells = [("EVENT", kind, 10)]
        namespace, name = _display.key(obj)
        if self._show_namespace:
            cells.append(("NAMESPACE", namespace, ns_width))
        cells.append(("NAME", name, name_width))
        # A deletion noticed by a relist knows only the key: it shows "-" for the rest.
        cells.append(("STATUS", _display.status(obj) if "kind" in obj else "-", 14))
        cells.append(("AGE", _display.age(obj) if _display.created(obj) else "-", 8))
        if self._output == "wide":
            labels = _display.meta(obj).get("labels") or {}
            cells.append(("RESOURCE-VERSION", _display.resource_version(obj) or "-", 18))
            cells.append(("LABELS", ",".join(f"{k}={v}" for k, v in labels.items()) or "<none>", 0))
        row = "".join(_cell(value).ljust(width) for _, value, width in cells).rstrip()
        if not self._header_done:
            self._header_done = True
            header = "".join(title.ljust(width) for title, _, width in cells).rstrip()
            return f"{header}\n{row}"
        return row


_LINE_BREAK = re.compile("[\n\r\f\v\x85]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _cell(text: str) -> str:
    """``text`` as kubectl prints a table cell: cut at its first line break (marked
    ``...``), so a name or a status cannot forge rows; its control characters escaped."""
    cut = _LINE_BREAK.search(text)
    return _escaped(text if cut is None else text[: cut.start()] + "...")


def _escaped(text: str) -> str:
    """``text`` with every control character shown, never sent to the terminal: ESC as
    kubectl shows it (``^[``), the others in caret (``^H``) or ``\\x9b`` notation."""
    return _CONTROL.sub(_shown, text)


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"^{chr(code ^ 0x40)}" if code < 0x20 or code == 0x7F else f"\\x{code:02x}"


if __name__ == "__main__":  # pragma: no cover - `python -m rxkube` goes through __main__.py
    sys.exit(main())
