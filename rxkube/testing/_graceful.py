"""Graceful deletion: how long a deleted object stays, marked, before it goes.

Of the kinds this server serves only pods delete gracefully (kube-apiserver's
``RESTGracefulDeleteStrategy``); ``podStrategy.CheckGracefulTermination``
(``pkg/registry/core/pod/strategy.go``) takes the request's ``gracePeriodSeconds``, else
the pod's ``spec.terminationGracePeriodSeconds``, and deletes at once a pod that is not
bound to a node or has finished (a period of 0). ``rest.BeforeDelete`` then marks the
pod (``deletionTimestamp`` = now + the period, ``deletionGracePeriodSeconds``) and a later
delete may only shorten the period. The mark is written even when the period is 0, and
the pod deleted right after: a watch sees it MODIFIED, then DELETED. It is the kubelet that deletes the pod for good,
with a period of 0, once its containers have stopped; this server runs no kubelet, so a
bound pod stays terminating until a client does the same, as on a cluster whose node is
gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._served import ServedResource


def grace_seconds(
    served: ServedResource, obj: Mapping[str, Any], requested: int | None
) -> int | None:
    """The grace period a delete through the API gives ``obj`` (0: mark it and delete it
    now), or None for a kind that does not delete gracefully."""
    res = served.resource
    if (res.group, res.plural) != ("", "pods"):
        return None
    spec = obj.get("spec") or {}
    period = requested
    if period is None:
        default = spec.get("terminationGracePeriodSeconds")
        period = default if isinstance(default, int) and not isinstance(default, bool) else 0
    if not spec.get("nodeName"):
        return 0
    if (obj.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
        return 0
    return 1 if period < 0 else period
