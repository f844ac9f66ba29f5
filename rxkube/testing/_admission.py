"""The admission plugins kube-apiserver enables by default that change every pod written.

Both run on any cluster, envtest's included (kubernetes ``plugin/pkg/admission``):

- ``Priority`` (``priority/admission.go``): on create, a pod's ``priority`` and
  ``preemptionPolicy`` from its ``priorityClassName``'s PriorityClass, or from the
  global default class, or 0 and ``PreemptLowerPriority`` when there is none; a class
  that does not exist, or a ``priority`` or ``preemptionPolicy`` the class contradicts,
  is a 403. On update, the stored values stay when the new pod leaves them out.
- ``DefaultTolerationSeconds`` (``defaulttolerationseconds/admission.go``): a pod that
  tolerates neither ``node.kubernetes.io/not-ready`` nor ``.../unreachable`` for
  ``NoExecute`` gets a toleration of each for 300 seconds, on create and update.

They run after the field manager has recorded the writer's fields, so what they set is
no manager's, as on kube-apiserver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._status import StatusError

Object = dict[str, Any]

_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
_TOLERATION_SECONDS = 300
_PREEMPT_LOWER_PRIORITY = "PreemptLowerPriority"


def _forbidden(name: str, why: str) -> StatusError:
    """``admission.NewForbidden`` for a pod."""
    return StatusError(
        403, f'pods "{name}" is forbidden: {why}', details={"name": name, "kind": "pods"}
    )


def _default_tolerations(spec: Object) -> None:
    tolerations = spec.get("tolerations")
    given = [t for t in tolerations if isinstance(t, dict)] if isinstance(tolerations, list) else []
    added = [
        {
            "key": taint,
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": _TOLERATION_SECONDS,
        }
        for taint in _TAINTS
        if not any(
            t.get("key") in (taint, "", None) and t.get("effect") in ("NoExecute", "", None)
            for t in given
        )
    ]
    if added:
        spec["tolerations"] = [*(tolerations if isinstance(tolerations, list) else []), *added]


def _default_class(classes: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The global default PriorityClass, the lowest one if there are several."""
    defaults = [c for c in classes if c.get("globalDefault") is True]
    return min(defaults, key=lambda c: c.get("value", 0), default=None)


def admit_pod(
    pod: Object,
    old: Mapping[str, Any] | None,
    priority_classes: Callable[[], Iterable[Mapping[str, Any]]],
) -> None:
    """Run both plugins on a pod being created (``old`` None) or updated, in place.

    Args:
        pod: the pod to store.
        old: the stored pod, for an update.
        priority_classes: the PriorityClasses that exist.

    Raises:
        StatusError: 403 for a class that does not exist or a value it contradicts.
    """
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    if old is not None:
        old_spec = old.get("spec") or {}
        for key in ("priority", "preemptionPolicy"):
            if spec.get(key) is None and old_spec.get(key) is not None:
                spec[key] = old_spec[key]
    else:
        _admit_priority(pod, spec, priority_classes)
    _default_tolerations(spec)


def _admit_priority(
    pod: Object, spec: Object, priority_classes: Callable[[], Iterable[Mapping[str, Any]]]
) -> None:
    name = str((pod.get("metadata") or {}).get("name") or "")
    wanted = spec.get("priorityClassName") or ""
    classes = {str((c.get("metadata") or {}).get("name")): c for c in priority_classes()}
    if wanted:
        found = classes.get(wanted)
        if found is None:
            raise _forbidden(name, f"no PriorityClass with name {wanted} was found")
        value, policy = found.get("value", 0), found.get("preemptionPolicy")
    else:
        default = _default_class(classes.values())
        if default is None:
            value, policy = 0, _PREEMPT_LOWER_PRIORITY
        else:
            spec["priorityClassName"] = (default.get("metadata") or {}).get("name")
            value, policy = default.get("value", 0), default.get("preemptionPolicy")
    if spec.get("priority") is not None and spec["priority"] != value:
        raise _forbidden(
            name,
            f"the integer value of priority ({spec['priority']}) must not be provided in pod "
            "spec; priority admission controller computed "
            f"{value} from the given PriorityClass name",
        )
    spec["priority"] = value
    if policy is not None:
        if spec.get("preemptionPolicy") is not None and spec["preemptionPolicy"] != policy:
            raise _forbidden(
                name,
                f"the string value of PreemptionPolicy ({spec['preemptionPolicy']}) must not "
                "be provided in pod spec; priority admission controller computed "
                f"{policy} from the given PriorityClass name",
            )
        spec["preemptionPolicy"] = policy
