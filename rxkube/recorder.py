"""Kubernetes Events for the objects a controller reconciles: what ``kubectl describe`` shows.

A :class:`Recorder` writes core/v1 ``Event`` objects about an object ("Normal" or
"Warning", a CamelCase reason and a message). Like client-go's recorder it aggregates
repeats: the same event about the same object, published again within
``aggregate_within`` seconds, bumps the ``count`` and ``lastTimestamp`` of the Event it
wrote before (one PATCH) instead of creating another.

Example:
    >>> recorder = Recorder(client, "configmap-controller")                    # doctest: +SKIP
    >>> recorder.publish(obj, reason="Synced", message="copied 3 keys")        # doctest: +SKIP
    >>> recorder.publish(obj, reason="SyncFailed", message=str(err), type="Warning")  # doctest: +SKIP
"""

from __future__ import annotations

import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from .errors import NotFound
from .events import Object

if TYPE_CHECKING:
    from .client import Api, Client

__all__ = ["Recorder"]

_CACHE_SIZE = 4096
"""Events remembered for aggregation, least recently published forgotten first."""

_Key = tuple[str, str, str, str, str, str, str]


def _timestamp(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Recorder:
    """Publishes Kubernetes Events about objects, aggregating repeats.

    Thread-safe: share one recorder between the reconciles of a controller.

    Args:
        client: the connection to write Events with.
        reporter: the component reporting, e.g. the controller's name (``source.component``
            and ``reportingComponent`` of each Event).
        instance: this replica (``reportingInstance``); the host name by default.
        aggregate_within: seconds during which a repeat updates the previous Event.
        clock: seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        client: Client,
        reporter: str,
        *,
        instance: str | None = None,
        aggregate_within: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from .client import Api

        if not reporter:
            raise ValueError("Recorder needs the name of the reporting component")
        self.reporter = reporter
        self.instance = instance or socket.gethostname()
        self._events: Api = Api(client, "events")
        self._aggregate_within = aggregate_within
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (namespace, Event name, count, first published)
        self._recent: OrderedDict[_Key, tuple[str, str, int, float]] = OrderedDict()

    def publish(
        self,
        obj: Object,
        *,
        reason: str,
        message: str = "",
        type: Literal["Normal", "Warning"] = "Normal",
        action: str = "",
    ) -> Object:
        """Write an Event about ``obj`` (or count a repeat of a recent one); return it.

        Args:
            obj: the object the event is about (needs kind, apiVersion and metadata).
            reason: why, in CamelCase, e.g. ``"Synced"`` or ``"CreateFailed"``.
            message: a human-readable description (at most 1 kB is kept).
            type: ``"Normal"`` or ``"Warning"``.
            action: what was done or failed, e.g. ``"Reconcile"``.

        Raises:
            rxkube.errors.ApiError: the API server refused the Event.
        """
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        involved = {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace") or "",
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        message = message[:1024]
        key: _Key = (
            namespace,
            involved["kind"],
            involved["name"],
            involved["uid"],
            type,
            reason,
            message + "\0" + action,
        )
        wall = self._clock()
        with self._lock:
            recent = self._recent.get(key)
            if recent is not None and wall - recent[3] > self._aggregate_within:
                recent = None
        if recent is not None:
            _, name, count, first = recent
            try:
                event = self._events.patch(
                    name,
                    {"count": count + 1, "lastTimestamp": _timestamp(wall)},
                    namespace=namespace,
                )
            except NotFound:
                pass  # expired meanwhile: write a new one
            else:
                self._remember(key, (namespace, name, count + 1, first))
                return event
        event = self._events.create(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": f"{involved['name']}.{time.time_ns():x}",
                    "namespace": namespace,
                },
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": type,
                "action": action,
                "count": 1,
                "firstTimestamp": _timestamp(wall),
                "lastTimestamp": _timestamp(wall),
                "source": {"component": self.reporter, "host": self.instance},
                "reportingComponent": self.reporter,
                "reportingInstance": self.instance,
            },
            namespace=namespace,
        )
        self._remember(key, (namespace, event["metadata"]["name"], 1, wall))
        return event

    def _remember(self, key: _Key, value: tuple[str, str, int, float]) -> None:
        with self._lock:
            self._recent[key] = value
            self._recent.move_to_end(key)
            while len(self._recent) > _CACHE_SIZE:
                self._recent.popitem(last=False)

    def __repr__(self) -> str:
        return f"<Recorder {self.reporter} ({self.instance})>"
