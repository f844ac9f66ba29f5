"""An example controller: mirror labelled ConfigMaps into Secrets.

Every ConfigMap labelled ``rxkube.io/mirror=true`` gets a Secret ``<name>-mirror`` in its
namespace holding the same data. The controller

- owns the Secrets (``ownerReferences``), so editing or deleting a mirror puts it back;
- holds a finalizer on each ConfigMap and deletes the mirror itself before the ConfigMap
  goes (no reliance on garbage collection);
- records Kubernetes Events (``kubectl describe configmap`` shows them);
- retries failures through its error policy, backing off per ConfigMap, and runs under
  leader election when asked;
- serves health probes and metrics (``/livez``, ``/readyz``, ``/metrics``) with
  ``--probes HOST:PORT`` (``0.0.0.0:8081`` in a pod, for the kubelet and Prometheus).

Run it against your cluster (``KUBECONFIG`` or in-cluster), or against an in-process test
API server with ``--demo``::

    python examples/configmap_controller.py --demo --probes 127.0.0.1:8081
    python examples/configmap_controller.py --namespace team-a --leader-elect

Stop it with Ctrl+C (once: finish running reconciles; twice: now).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any

from reactivex import Observable

from rxkube import finalizer
from rxkube.client import Api, Client
from rxkube.controller import (
    Action,
    Controller,
    ObjectMissing,
    ReconcileFailed,
    ReconcileResult,
    current_reason,
    shutdown_signals,
)
from rxkube.errors import ConfigError, NotFound
from rxkube.leader import LeaderElector
from rxkube.probes import serve
from rxkube.protocol import Config
from rxkube.recorder import Recorder

log = logging.getLogger("configmap-mirror")

NAME = "configmap-mirror"
LABEL = "rxkube.io/mirror"
MIRRORED_FROM = "rxkube.io/mirrored-from"
FINALIZER = "rxkube.io/mirror-cleanup"


@dataclass(frozen=True)
class Context:
    """What every reconcile needs: the APIs, the event recorder, the retry delay."""

    configmaps: Api
    secrets: Api
    recorder: Recorder
    retry_after: float = 5.0
    resync_after: float = 300.0


def mirror_name(configmap: dict[str, Any]) -> str:
    return f"{configmap['metadata']['name']}-mirror"


def desired_secret(configmap: dict[str, Any]) -> dict[str, Any]:
    meta = configmap["metadata"]
    data = {
        k: base64.b64encode(v.encode()).decode() for k, v in (configmap.get("data") or {}).items()
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": mirror_name(configmap),
            "namespace": meta["namespace"],
            "labels": {MIRRORED_FROM: meta["name"]},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "type": "Opaque",
        "data": data,
    }


def apply(configmap: dict[str, Any], ctx: Context) -> Action:
    """Make the mirror Secret match the ConfigMap."""
    desired = desired_secret(configmap)
    namespace = configmap["metadata"]["namespace"]
    try:
        current = ctx.secrets.get(desired["metadata"]["name"], namespace=namespace)
    except NotFound:
        ctx.secrets.create(desired, namespace=namespace)
        ctx.recorder.publish(
            configmap, reason="MirrorCreated", message=f"created Secret {mirror_name(configmap)}"
        )
        return Action.requeue(ctx.resync_after)
    if (
        current.get("data") != desired["data"]
        or current["metadata"].get("ownerReferences") != desired["metadata"]["ownerReferences"]
    ):
        desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        ctx.secrets.replace(
            desired, namespace=namespace
        )  # Conflict if it changed meanwhile: retried
        ctx.recorder.publish(
            configmap, reason="MirrorUpdated", message=f"updated Secret {mirror_name(configmap)}"
        )
    return Action.requeue(ctx.resync_after)


def cleanup(configmap: dict[str, Any], ctx: Context) -> Action:
    """Delete the mirror before the ConfigMap goes."""
    with contextlib.suppress(NotFound):
        ctx.secrets.delete(mirror_name(configmap), namespace=configmap["metadata"]["namespace"])
    log.info("deleted the mirror of %s", configmap["metadata"]["name"])
    return Action.await_change()


def reconcile(configmap: dict[str, Any], ctx: Context) -> Action:
    log.debug("reconciling %s: %s", configmap["metadata"]["name"], current_reason())
    return finalizer(
        ctx.configmaps,
        FINALIZER,
        configmap,
        apply=lambda obj: apply(obj, ctx),
        cleanup=lambda obj: cleanup(obj, ctx),
    )


def error_policy(configmap: dict[str, Any], error: Exception, ctx: Context, attempt: int) -> Action:
    """Record the failure; retry after ``retry_after`` s, doubling per failure in a row."""
    with contextlib.suppress(Exception):  # the API may be what is failing
        ctx.recorder.publish(configmap, reason="MirrorFailed", message=str(error), type="Warning")
    return Action.requeue(min(ctx.retry_after * 2 ** (attempt - 1), 300.0))


def build(
    client: Client, namespace: str, *, retry_after: float = 5.0
) -> tuple[Controller, Context]:
    """The controller and its context, for a namespace."""
    configmaps = Api(client, "configmaps", namespace=namespace)
    secrets = Api(client, "secrets", namespace=namespace)
    ctx = Context(configmaps, secrets, Recorder(client, NAME), retry_after=retry_after)
    controller = Controller(configmaps, Config(label_selector=f"{LABEL}=true")).owns(
        secrets, Config(label_selector=MIRRORED_FROM)
    )
    return controller, ctx


def run(
    client: Client,
    namespace: str,
    *,
    stop: Observable[Any] | None = None,
    leader: LeaderElector | None = None,
    retry_after: float = 5.0,
) -> Observable[ReconcileResult]:
    """The controller's results; subscribe to start it."""
    controller, ctx = build(client, namespace, retry_after=retry_after)
    return controller.run(reconcile, error_policy, ctx, stop=stop, leader=leader)


def report(result: ReconcileResult) -> None:
    match result:
        case ReconcileFailed(ref, error, action):
            log.warning("%s failed (%s); retrying in %s s", ref, error, action.requeue_after)
        case ObjectMissing(ref):
            log.info("%s is gone", ref)
        case _:
            log.info("%s reconciled (%s)", result.ref, result.reason)


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8081`` for IPv6) for ``--probes``."""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:8081; got {text!r}")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="default")
    parser.add_argument(
        "--demo", action="store_true", help="run against an in-process test API server"
    )
    parser.add_argument("--leader-elect", action="store_true", help="compete for a Lease first")
    parser.add_argument(
        "--probes",
        type=host_port,
        metavar="HOST:PORT",
        help="serve /livez, /readyz and /metrics there (port 0: any free port)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    with contextlib.ExitStack() as stack:
        if args.demo:
            from rxkube.testing import ApiServer

            srv = stack.enter_context(ApiServer())
            for name in ("app-settings", "feature-flags"):
                srv.create(
                    "configmaps",
                    {
                        "metadata": {
                            "name": name,
                            "namespace": args.namespace,
                            "labels": {LABEL: "true"},
                        },
                        "data": {"greeting": "hello"},
                    },
                )
            client = srv.client()
            print(f"demo API server at {srv.url}; try: kubectl --server {srv.url} get secrets")
        else:
            try:
                client = Client.default()
            except ConfigError as exc:  # no kubeconfig, not in a pod: say so in one line
                parser.exit(1, f"{parser.prog}: error: {exc}\n")
        elector = None
        if args.leader_elect:
            leases = Api(client, "leases", namespace=args.namespace)
            elector = stack.enter_context(LeaderElector(leases, NAME))
        stop = stack.enter_context(shutdown_signals())
        ended = threading.Event()

        def failed(error: Exception) -> None:
            log.error("controller failed: %s", error)
            ended.set()

        controller, ctx = build(client, args.namespace)
        if args.probes:
            probes = stack.enter_context(serve(*args.probes, controller=controller))
            print(f"probes at {probes.url} (/livez, /readyz, /metrics)", flush=True)
        controller.run(reconcile, error_policy, ctx, stop=stop, leader=elector).subscribe(
            report, failed, ended.set
        )
        while not ended.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
