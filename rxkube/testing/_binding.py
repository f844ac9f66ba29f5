"""Bindings (``POST /api/v1/namespaces/{ns}/bindings``): a pod assigned to a node, as a scheduler does.

kube-apiserver's ``BindingREST`` (pkg/registry/core/pod/storage/storage.go): the Binding is
validated (``ValidatePodBinding``, whose errors come back as a plain error: a 500), then
the pod is updated in storage, without its strategy: ``spec.nodeName`` set, the Binding's
annotations added, a ``PodScheduled`` condition made True (``setPodHostAndAnnotations``).
A pod that is being deleted, already assigned or gated is a 409 on ``pods/binding``; the
answer is a ``Status`` of ``Success``. Nothing is stored under ``bindings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._apivalidation import quote
from ._status import StatusError
from ._store import Store, now_timestamp
from ._stored import Object


def _causes(target: Mapping[str, Any]) -> list[str]:
    """``ValidatePodBinding``."""
    causes = []
    kind = target.get("kind") or ""
    if kind and kind != "Node":
        causes.append(
            f'target.kind: Unsupported value: {quote(kind)}: supported values: "Node", "<empty>"'
        )
    if not target.get("name"):
        causes.append("target.name: Required value")
    return causes


def bind(store: Store, body: Mapping[str, Any], namespace: str | None, *, dry_run: bool) -> Object:
    """Assign the Binding's pod to its target node; the answer to the create.

    Raises:
        StatusError: 500 for an invalid Binding, 404 for a missing pod, 409 for a pod that
            cannot be assigned.
    """
    target = body.get("target")
    target = target if isinstance(target, Mapping) else {}
    causes = _causes(target)
    if causes:
        text = causes[0] if len(causes) == 1 else "[" + ", ".join(causes) + "]"
        raise StatusError(500, text, reason="")
    meta = body.get("metadata") or {}
    name = str(meta.get("name") or "")
    annotations = meta.get("annotations") or {}
    node = str(target["name"])
    pods = store.lookup("", "v1", "pods")
    assert pods is not None

    def assign(pod: Object) -> Object:
        pod_meta = pod["metadata"]
        spec = pod.setdefault("spec", {})
        refusal = None
        if pod_meta.get("deletionTimestamp"):
            refusal = f"pod {name} is being deleted, cannot be assigned to a host"
        elif spec.get("nodeName"):
            refusal = f"pod {name} is already assigned to node {quote(spec['nodeName'])}"
        elif spec.get("schedulingGates"):
            refusal = f"pod {name} has non-empty .spec.schedulingGates"
        if refusal is not None:
            # NewConflict on the pods/binding resource.
            raise StatusError(
                409,
                f'Operation cannot be fulfilled on pods/binding "{name}": {refusal}',
                details={"name": name, "kind": "pods/binding"},
            )
        spec["nodeName"] = node
        if annotations:
            pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}), **annotations}
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
        scheduled = {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": now_timestamp(),
        }
        for index, condition in enumerate(conditions):
            if condition.get("type") == "PodScheduled":
                if condition.get("status") == "True":
                    scheduled["lastTransitionTime"] = condition.get("lastTransitionTime")
                conditions[index] = scheduled
                break
        else:
            conditions.append(scheduled)
        status["conditions"] = conditions
        return pod

    store.patch(pods, namespace, name, assign, via_http=False, dry_run=dry_run)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
