"""Run the test API server on its own: ``python -m rxkube.testing`` (or ``rxkube serve``).

It prints the URL and the path of a kubeconfig, then serves until Ctrl+C (or SIGTERM).
A kubeconfig it writes is readable by its owner only; the temporary one it writes when
not given ``--kubeconfig`` is removed when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

from ._server import ApiServer


def build_parser(prog: str = "python -m rxkube.testing") -> argparse.ArgumentParser:
    """The command line of the standalone server."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Run rxkube's in-process Kubernetes API server until Ctrl+C."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--token", help="require this bearer token")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a generated CA")
    parser.add_argument(
        "--kubeconfig",
        help="where to write the kubeconfig, mode 0600 (default: a temp file, removed on exit)",
    )
    parser.add_argument(
        "--bookmark-interval", type=float, default=1.0, help="seconds between bookmarks; 0 for none"
    )
    parser.add_argument("--compact-every", type=int, help="compact history every N writes")
    parser.add_argument(
        "--no-streaming-lists", action="store_true", help="refuse sendInitialEvents watches"
    )
    parser.add_argument(
        "--ignore-shard-selector",
        action="store_true",
        help="ignore shardSelector, as a server before v1.36 (or with ShardedListAndWatch off)",
    )
    parser.add_argument(
        "--load",
        action="append",
        default=[],
        metavar="FILE",
        help="create the objects of a JSON or YAML file (a list, a List, or documents); repeatable",
    )
    return parser


def _objects(path: str) -> list[dict[str, Any]]:
    with open(path, "rb") as handle:
        data = handle.read()
    docs: list[Any] = (
        [orjson.loads(data)] if path.endswith(".json") else list(yaml.safe_load_all(data))
    )
    objects: list[dict[str, Any]] = []
    for doc in docs:
        if isinstance(doc, list):
            objects.extend(doc)
        elif isinstance(doc, dict) and isinstance(doc.get("items"), list):
            objects.extend(doc["items"])
        elif isinstance(doc, dict):
            objects.append(doc)
    return objects


def load(server: ApiServer, path: str) -> int:
    """Create every object of a file on ``server``; returns how many."""
    objects = _objects(path)
    for obj in objects:
        api_version = str(obj.get("apiVersion", "v1"))
        group, _, version = api_version.rpartition("/")
        kind = str(obj.get("kind", ""))
        server.create(f"{group}/{version}/{kind}" if group else f"{version}/{kind}", obj)
    return len(objects)


async def _serve(args: argparse.Namespace) -> None:
    server = ApiServer(
        token=args.token,
        tls=args.tls,
        host=args.host,
        port=args.port,
        bookmark_interval=args.bookmark_interval or None,
        compact_every=args.compact_every,
        streaming_lists=not args.no_streaming_lists,
        sharded_lists=not args.ignore_shard_selector,
    )
    for path in args.load:
        count = load(server, path)
        print(f"loaded {count} objects from {path}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        if args.kubeconfig:
            kubeconfig = server.write_kubeconfig(args.kubeconfig)
            temporary: Path | None = None
        else:
            handle, name = tempfile.mkstemp(prefix="rxkube-kubeconfig-", suffix=".yaml")
            os.close(handle)
            kubeconfig = temporary = server.write_kubeconfig(name)
        try:
            print(f"rxkube test API server listening at {server.url}", flush=True)
            print(f"kubeconfig: {kubeconfig}", flush=True)
            print(f"export KUBECONFIG={kubeconfig}", flush=True)
            await stop.wait()
        finally:
            # The temporary kubeconfig holds the token of a server that no longer runs.
            if temporary is not None:
                temporary.unlink(missing_ok=True)
    print("stopped", flush=True)


def serve_main(argv: Sequence[str] | None = None, *, prog: str = "python -m rxkube.testing") -> int:
    """Run the standalone server until interrupted; returns the exit status.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        prog: the program name shown in help (``rxkube serve`` passes its own).
    """
    args = build_parser(prog).parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(serve_main())
