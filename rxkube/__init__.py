"""rxkube: reactive-stream combinators for Kubernetes watches.

Watchers are ReactiveX Observables of watch events that stay correct through relists,
timeouts, disconnects and ``410 Gone``; stores cache what they carry; operators compose
them; shared stores fan one watch out to many subscribers::

    reader, writer = rxkube.store()
    rxkube.watcher(api, rxkube.Config(label_selector="app=web")).pipe(
        rxkube.reflect(writer), rxkube.default_backoff(), rxkube.applied_objects(),
    ).subscribe(on_next=print)
    reader.wait_until_ready(timeout=10)
"""

from __future__ import annotations

from . import errors, predicates
from ._backoff_policy import BackoffPolicy, ExponentialBackoff
from ._cache import Store, Writer, WriterStatus, store
from ._finalizers import finalizer, finalizer_async
from ._indexes import IndexFn, index_label, index_namespace, index_owner_uid
from ._object_ref import ObjectRef
from ._shards import Shard, ShardSelectorError
from ._shared_watches import SharedWatches, ViewStats, ViewStore, WatchStats
from ._snapshot import Snapshot
from ._watching import metadata_watcher, watch, watch_object, watcher
from .client import Api, Client
from .controller import (
    Action,
    Controller,
    ControllerConfig,
    ObjectMissing,
    Reconciled,
    ReconcileFailed,
)
from .dispatcher import SharedStore, SubscriberOverflow, store_shared
from .events import Apply, Delete, Event, Init, InitApply, InitDone, Object
from .leader import LeaderElector
from .operators import (
    applied_objects,
    backoff,
    default_backoff,
    metadata_only,
    modify,
    predicate_filter,
    reflect,
    reflect_shared,
    reflector,
    touched_objects,
)
from .protocol import Config
from .resource import Resource
from .wait import await_condition

__all__ = [
    "Action",
    "Api",
    "Apply",
    "BackoffPolicy",
    "Client",
    "Config",
    "Controller",
    "ControllerConfig",
    "Delete",
    "Event",
    "ExponentialBackoff",
    "IndexFn",
    "Init",
    "InitApply",
    "InitDone",
    "LeaderElector",
    "Object",
    "ObjectMissing",
    "ObjectRef",
    "ReconcileFailed",
    "Reconciled",
    "Resource",
    "Shard",
    "ShardSelectorError",
    "SharedStore",
    "SharedWatches",
    "Snapshot",
    "Store",
    "SubscriberOverflow",
    "ViewStats",
    "ViewStore",
    "WatchStats",
    "Writer",
    "WriterStatus",
    "applied_objects",
    "await_condition",
    "backoff",
    "default_backoff",
    "errors",
    "finalizer",
    "finalizer_async",
    "index_label",
    "index_namespace",
    "index_owner_uid",
    "metadata_only",
    "metadata_watcher",
    "modify",
    "predicate_filter",
    "predicates",
    "reflect",
    "reflect_shared",
    "reflector",
    "store",
    "store_shared",
    "touched_objects",
    "watch",
    "watch_object",
    "watcher",
]
