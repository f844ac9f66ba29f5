"""Status conditions: set one on an object the way apimachinery's ``meta.SetStatusCondition`` does.

A reconcile reports what it found in ``status.conditions``: one entry per condition type,
each with ``status`` (``True``, ``False`` or ``Unknown``), a CamelCase ``reason``, a
``message`` and ``lastTransitionTime``. The time says when the *status* last changed, so
re-setting a condition with a new message keeps it; tools such as ``kubectl wait`` and
dashboards rely on that.

Example:
    >>> obj = {"metadata": {"name": "web", "generation": 3}}
    >>> set_condition(obj, "Ready", "False", "Starting", "waiting for pods")
    True
    >>> set_condition(obj, "Ready", "False", "Starting", "waiting for pods")
    False
    >>> find_condition(obj, "Ready")["reason"]
    'Starting'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from .events import Object

__all__ = ["find_condition", "set_condition"]

_STATUSES = ("True", "False", "Unknown")
# The rule metav1.Condition's validation enforces for reason.
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_REASON_MAX = 1024


def _conditions_of(obj: Object, *, create: bool) -> list[dict[str, Any]] | None:
    status = obj.get("status")
    if status is None:
        if not create:
            return None
        status = obj["status"] = {}
    if not isinstance(status, dict):
        raise TypeError(f"the object's status is a {type(status).__name__}, not a mapping")
    conditions = status.get("conditions")
    if conditions is None:
        if not create:
            return None
        conditions = status["conditions"] = []
    if not isinstance(conditions, list):
        raise TypeError(
            f"the object's status.conditions is a {type(conditions).__name__}, not a list"
        )
    return conditions


def find_condition(obj: Object, type: str) -> dict[str, Any] | None:
    """The condition of ``type`` in ``obj["status"]["conditions"]``, or ``None``.

    Args:
        obj: a Kubernetes object as a dict.
        type: the condition type, e.g. ``"Ready"``.

    Raises:
        TypeError: ``status`` or ``status.conditions`` has the wrong shape.
    """
    for condition in _conditions_of(obj, create=False) or ():
        if isinstance(condition, dict) and condition.get("type") == type:
            return condition
    return None


def set_condition(
    obj: Object,
    type: str,
    status: str,
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    last_transition_time: datetime | None = None,
) -> bool:
    """Set the condition ``type`` on ``obj`` (in place); return whether anything changed.

    As ``meta.SetStatusCondition``: a new condition is appended with
    ``lastTransitionTime`` now; an existing one gets a new ``lastTransitionTime`` only
    when its ``status`` changes, while ``reason``, ``message`` and ``observedGeneration``
    are simply updated. Send the object with ``Api.replace_status`` (or patch its
    ``status``) only when this returns ``True``, to spare the API server no-op writes.

    Args:
        obj: the object; ``status.conditions`` is created if missing.
        type: the condition type, e.g. ``"Ready"``.
        status: ``"True"``, ``"False"`` or ``"Unknown"``.
        reason: a CamelCase identifier of why, e.g. ``"PodsStarting"``.
        message: a human-readable explanation (may be empty).
        observed_generation: the ``metadata.generation`` this condition was computed
            from; ``None`` leaves the field out.
        last_transition_time: the time of the transition, if it happens now (default:
            now). Kept at second precision in UTC, as Kubernetes stores it.

    Raises:
        ValueError: ``type`` is empty, ``status`` is not one of the three, or ``reason`` is
            not a CamelCase identifier of at most 1024 characters.
        TypeError: ``status`` or ``status.conditions`` has the wrong shape.
    """
    if not type:
        raise ValueError("set_condition: the condition type must not be empty")
    if status not in _STATUSES:
        raise ValueError(
            f"set_condition: status must be one of {', '.join(_STATUSES)}, got {status!r}"
        )
    if len(reason) > _REASON_MAX or not _REASON.match(reason):
        raise ValueError(
            "set_condition: reason must be a CamelCase identifier (letters, digits, '_', ',', ':';"
            f" starting with a letter; at most {_REASON_MAX} characters), got {reason!r:.100}"
        )
    conditions = _conditions_of(obj, create=True)
    assert conditions is not None
    wanted: dict[str, Any] = {"type": type, "status": status, "reason": reason, "message": message}
    if observed_generation is not None:
        wanted["observedGeneration"] = observed_generation
    existing = find_condition(obj, type)
    if existing is None:
        conditions.append({**wanted, "lastTransitionTime": _timestamp(last_transition_time)})
        return True
    changed = False
    if existing.get("status") != status:
        existing["lastTransitionTime"] = _timestamp(last_transition_time)
        changed = True
    for key in ("status", "reason", "message"):
        if existing.get(key) != wanted[key]:
            existing[key] = wanted[key]
            changed = True
    if existing.get("observedGeneration") != observed_generation:
        if observed_generation is None:
            del existing["observedGeneration"]
        else:
            existing["observedGeneration"] = observed_generation
        changed = True
    return changed


def _timestamp(when: datetime | None) -> str:
    moment = datetime.now(UTC) if when is None else when.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
