"""How rxkube shows an object to a person: its key, a one-word status and its age.

Shared by the command line (``rxkube watch``, ``rxkube demo``) and the Jupyter
views in ``rxkube.notebook``, so an object reads the same everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .events import Object


def meta(obj: Object) -> dict[str, Any]:
    """The object's ``metadata``, or an empty dict when it has none."""
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def key(obj: Object) -> tuple[str, str]:
    """``(namespace, name)``; the namespace is ``""`` for cluster-scoped objects."""
    m = meta(obj)
    return str(m.get("namespace") or ""), str(m.get("name") or "")


def status(obj: Object) -> str:
    """A one-word status summary, as ``kubectl get`` would show it.

    ``Terminating`` while a deletion waits on finalizers; a pod's waiting or
    terminated container reason (``CrashLoopBackOff``) or its phase; ``ready/desired``
    replicas for workloads; the ``Ready`` condition for nodes and the like; else
    ``status.phase`` or ``-``.

    Example:
        >>> status({"kind": "Pod", "status": {"phase": "Running"}})
        'Running'
        >>> status({"kind": "Deployment", "spec": {"replicas": 3}, "status": {"readyReplicas": 2}})
        '2/3'
    """
    if meta(obj).get("deletionTimestamp"):
        return "Terminating"
    st = obj.get("status")
    st = st if isinstance(st, dict) else {}
    kind = obj.get("kind")
    if kind == "Pod":
        for cs in st.get("containerStatuses") or ():
            state = (cs.get("state") if isinstance(cs, dict) else None) or {}
            for phase in ("waiting", "terminated"):
                reason = (state.get(phase) or {}).get("reason")
                if reason and reason not in ("Completed", "ContainerCreating"):
                    return str(reason)
        return str(st.get("phase") or "Pending")
    spec = obj.get("spec")
    if isinstance(spec, dict) and "replicas" in spec:
        return f"{st.get('readyReplicas') or 0}/{spec.get('replicas')}"
    for cond in st.get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return "Ready" if cond.get("status") == "True" else "NotReady"
    return str(st.get("phase") or "-")


def created(obj: Object) -> datetime | None:
    """The object's ``creationTimestamp`` as an aware datetime, if it has a valid one."""
    stamp = meta(obj).get("creationTimestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(obj: Object, now: datetime | None = None) -> str:
    """The object's age as ``kubectl`` shows it (``45s``, ``3m20s``, ``5h``, ``2d4h``).

    Example:
        >>> age({"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"}},
        ...     datetime(2024, 1, 1, 0, 3, 20, tzinfo=UTC))
        '3m20s'
    """
    born = created(obj)
    if born is None:
        return "<unknown>"
    return human_duration(((now or datetime.now(UTC)) - born).total_seconds())


def human_duration(seconds: float) -> str:
    """A short duration, precise when small and coarse when large, like kubectl's."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"
