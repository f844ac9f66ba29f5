"""An example sharded controller: one process per replica, the ConfigMaps of a namespace split among them.

Each replica reconciles its share of the ConfigMaps in ``--namespace``: a reconcile takes a
few tens of milliseconds and sets the annotation ``rxkube.io/reconciled-by: <id>``. Start
as many replicas as you like, stop or kill them: the others take their share over, and no
ConfigMap is ever reconciled by two replicas at once::

    python examples/sharded_controller.py --kubeconfig ~/.kube/config --namespace team-a --id a
    python examples/sharded_controller.py --kubeconfig ~/.kube/config --namespace team-a --id b

On stdout, one JSON line per reconcile::

    {"event": "reconcile", "replica": "a", "key": "team-a/x", "start": 1767261000.12, "end": 1767261000.16}

and a line ``{"event": "ranges", ...}`` each time the replica's share changes,
``{"event": "store", ...}`` (the keys in its cache) on SIGUSR1, ``{"event": "stopped", ...}``
at the end. Logs go to stderr. SIGTERM (or Ctrl+C) leaves gracefully: running reconciles
end, then the replica's Lease is released and the others take over at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from typing import Any

from rxkube.client import Api, Client
from rxkube.controller import Action, Controller, ControllerConfig, shutdown_signals
from rxkube.errors import ConfigError, NotFound
from rxkube.sharding import fraction

NAME = "sharded-configmaps"
ANNOTATION = "rxkube.io/reconciled-by"
RECONCILE_SECONDS = 0.03

_print_lock = threading.Lock()


def emit(**fields: Any) -> None:
    """One JSON line on stdout (whole lines, from any thread)."""
    line = json.dumps(fields)
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, help="the kubeconfig file")
    parser.add_argument("--namespace", required=True, help="the namespace of the ConfigMaps")
    parser.add_argument("--id", required=True, help="this replica's id (a DNS label)")
    parser.add_argument("--lease-duration", type=float, default=15.0)
    parser.add_argument("--renew-deadline", type=float, default=10.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    parser.add_argument(
        "--log-level", default="INFO", help="e.g. DEBUG for rxkube.sharding's decisions"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format=f"%(asctime)s {args.id} %(name)s %(message)s"
    )
    logging.getLogger("rxkube.sharding").setLevel(args.log_level)

    try:
        client = Client.from_kubeconfig(args.kubeconfig)
    except ConfigError as exc:  # no such file, no context: the user's to fix, not a traceback
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    configmaps = Api(client, "configmaps", namespace=args.namespace)
    leases = Api(client, "leases", namespace=args.namespace)
    replica = args.id

    def reconcile(cm: dict[str, Any], api: Api) -> Action:
        meta = cm["metadata"]
        start = time.time()
        error = None
        try:
            time.sleep(RECONCILE_SECONDS)  # the work
            if (meta.get("annotations") or {}).get(ANNOTATION) != replica:
                api.patch(meta["name"], {"metadata": {"annotations": {ANNOTATION: replica}}})
        except NotFound:
            pass  # deleted meanwhile
        except Exception as exc:
            error = str(exc)
            raise
        finally:
            # A failed reconcile ran too: its interval counts.
            emit(
                event="reconcile",
                replica=replica,
                key=f"{meta.get('namespace')}/{meta['name']}",
                start=start,
                end=time.time(),
                **({"error": error} if error else {}),
            )
        return Action.await_change()

    def error_policy(cm: dict[str, Any], error: Exception, api: Api) -> Action:
        logging.getLogger(NAME).warning("reconcile of %s failed: %s", cm["metadata"]["name"], error)
        return Action.requeue(1.0)

    controller = (
        Controller(configmaps)
        .with_config(ControllerConfig(name=NAME, concurrency=16))
        .sharded(
            replica,
            leases,
            lease_duration=args.lease_duration,
            renew_deadline=args.renew_deadline,
            retry_period=args.retry_period,
        )
    )
    member = controller.shards
    assert member is not None
    member.ranges().subscribe(
        lambda held: emit(
            event="ranges",
            replica=replica,
            fraction=fraction(held),
            ranges=[[f"{start:#x}", f"{end:#x}"] for start, end in held],
            members=member.members,
        )
    )

    def dump_store(_signum: int, _frame: Any) -> None:
        keys = sorted(
            f"{o['metadata'].get('namespace')}/{o['metadata']['name']}"
            for o in controller.store.state()
        )
        emit(event="store", replica=replica, keys=keys, held=[list(r) for r in member.held])

    signal.signal(signal.SIGUSR1, dump_store)
    with shutdown_signals() as stop:
        controller.run(reconcile, error_policy, configmaps, stop=stop).run()
    emit(event="stopped", replica=replica)
    return 0


if __name__ == "__main__":
    sys.exit(main())
