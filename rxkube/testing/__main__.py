"""Run the test API server on its own: ``python -m rxkube.testing`` (or ``rxkube serve``).

It prints the URL and the path of a kubeconfig, then serves until Ctrl+C (or SIGTERM).
A kubeconfig it writes is readable by its owner only; the temporary one it writes when
not given ``--kubeconfig`` is removed when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

from .._arguments import whole_number
from ..errors import ApiError, ConfigError
from ._server import ApiServer, host_problem, listens_everywhere

_TLS_MISSING = (
    "--tls needs the cryptography package, in the testing extra: pip install 'rxkube[testing]'"
)


class LoadError(Exception):
    """A file given to ``--load`` cannot be served; the message names the file and why."""


def build_parser(prog: str = "python -m rxkube.testing") -> argparse.ArgumentParser:
    """The command line of the standalone server."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Run rxkube's in-process Kubernetes API server until Ctrl+C."
    )
    parser.add_argument(
        "--host",
        type=_host,
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 or :: for every interface (the kubeconfig then"
        " names loopback)",
    )
    parser.add_argument("--port", type=_port, default=0, help="port (default: a free one)")
    parser.add_argument("--token", help="require this bearer token")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a generated CA")
    parser.add_argument(
        "--kubeconfig",
        help="where to write the kubeconfig, mode 0600 (default: a temp file, removed on exit)",
    )
    parser.add_argument(
        "--bookmark-interval",
        type=_seconds,
        default=1.0,
        metavar="S",
        help="seconds between bookmarks; 0 for none",
    )
    parser.add_argument(
        "--compact-every", type=whole_number, metavar="N", help="compact history every N writes"
    )
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


def _host(text: str) -> str:
    problem = host_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535 (0: a free one), not {port}")
    return port


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < math.inf:  # NaN too
        raise argparse.ArgumentTypeError(f"seconds are 0 or more (0: none), not {text!r}")
    return value


def _objects(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise LoadError(f"{path}: {exc.strerror or exc}") from None
    try:
        docs: list[Any] = (
            [orjson.loads(data)] if path.endswith(".json") else list(yaml.safe_load_all(data))
        )
    except orjson.JSONDecodeError as exc:
        raise LoadError(f"{path}: not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise LoadError(f"{path}: not valid YAML: {problem}{where}") from None
    objects: list[dict[str, Any]] = []
    for doc in docs:
        if doc is None:  # an empty YAML document, e.g. after a trailing "---"
            continue
        if isinstance(doc, dict) and isinstance(doc.get("items"), list):
            doc = doc["items"]
        for obj in doc if isinstance(doc, list) else [doc]:
            if not isinstance(obj, dict):
                raise LoadError(
                    f"{path}: expected Kubernetes objects (mappings with apiVersion, kind and"
                    f" metadata), found {str(obj)[:60]!r}"
                )
            objects.append(obj)
    return objects


def load(server: ApiServer, path: str) -> int:
    """Create every object of a file on ``server``; returns how many.

    CustomResourceDefinitions are created first, and serve their resources as soon as
    they are, so a file may hold a CRD and its custom resources.

    Raises:
        LoadError: the file cannot be read or parsed, or an object cannot be created;
            the message names the file, the object and the server's answer.
    """
    objects = _objects(path)
    crds = [obj for obj in objects if _is_crd(obj)]
    for crd in crds:
        serve_definition(server, crd, path)
    for obj in objects:
        if obj in crds:
            continue
        api_version = str(obj.get("apiVersion", "v1"))
        group, _, version = api_version.rpartition("/")
        kind = str(obj.get("kind", ""))
        name = (
            (obj.get("metadata") or {}).get("name")
            if isinstance(obj.get("metadata"), dict)
            else None
        )
        what = f"{path}: {kind or 'an object with no kind'} {name!r}" if name else f"{path}: {kind}"
        resource = f"{group}/{version}/{kind}" if group else f"{version}/{kind}"
        try:
            server.resource(resource)
        except ConfigError:
            raise LoadError(
                f"{what}: the test API server does not serve {api_version} {kind}; load its"
                " CustomResourceDefinition first (in this file or an earlier --load)"
            ) from None
        try:
            server.create(resource, obj)
        except ApiError as exc:
            raise LoadError(f"{what}: {exc}") from None
    return len(objects)


def _is_crd(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == "CustomResourceDefinition" and str(
        obj.get("apiVersion", "")
    ).startswith("apiextensions.k8s.io/")


def serve_definition(server: ApiServer, crd: dict[str, Any], path: str = "") -> None:
    """Create a CustomResourceDefinition on ``server``, which serves its resource at once.

    Raises:
        LoadError: the server refuses the definition; the message gives its answer.
    """
    meta = crd.get("metadata")
    name = meta.get("name", "") if isinstance(meta, dict) else ""
    where = f"{path}: " if path else ""
    try:
        server.create("customresourcedefinitions", crd)
    except ApiError as exc:
        raise LoadError(f"{where}CustomResourceDefinition {name!r}: {exc}") from None


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
        print(f"loaded {count} object{'' if count == 1 else 's'} from {path}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.astart()
    except OSError as exc:
        raise OSError(f"cannot listen on {args.host}:{args.port}: {_reason(exc)}") from None
    temporary: Path | None = None
    try:
        if args.kubeconfig:
            try:
                kubeconfig = server.write_kubeconfig(args.kubeconfig)
            except OSError as exc:
                raise OSError(
                    f"cannot write the kubeconfig to {args.kubeconfig}: {_reason(exc)}"
                ) from None
        else:
            handle, name = tempfile.mkstemp(prefix="rxkube-kubeconfig-", suffix=".yaml")
            os.close(handle)
            kubeconfig = temporary = server.write_kubeconfig(name)
        everywhere = f" (on every interface: {args.host})" if listens_everywhere(args.host) else ""
        print(f"rxkube test API server listening at {server.url}{everywhere}", flush=True)
        print(f"kubeconfig: {kubeconfig}", flush=True)
        print(f"export KUBECONFIG={kubeconfig}", flush=True)
        await stop.wait()
    finally:
        # The temporary kubeconfig holds the token of a server that no longer runs.
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        await server.astop()
    print("stopped", flush=True)


def _reason(error: OSError) -> str:
    """What went wrong, without the ``[Errno n]`` prefix and the repeated path."""
    # asyncio words a failed bind as "error while attempting to bind on address (...): why".
    return str(error.strerror or error).rpartition("): ")[2]


def serve_main(argv: Sequence[str] | None = None, *, prog: str = "python -m rxkube.testing") -> int:
    """Run the standalone server until interrupted; returns the exit status.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        prog: the program name shown in help (``rxkube serve`` passes its own).
    """
    args = build_parser(prog).parse_args(argv)
    name = prog.split()[0] if prog.startswith("rxkube") else prog
    try:
        asyncio.run(_serve(args))
    except (OSError, LoadError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        if exc.name != "cryptography":
            raise
        print(f"{name}: error: {_TLS_MISSING}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(serve_main())
