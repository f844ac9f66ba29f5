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

# ``import rxkube`` imports nothing: each name below is imported from its module on first
# use (PEP 562), so a program that needs only the errors, or only the command line, does
# not pay for the watch path, the controller and reactivex (a few hundred milliseconds of
# CPU), and a Ctrl+C during ``import rxkube`` has next to nothing to interrupt. Type
# checkers and IDEs read the imports under TYPE_CHECKING, which is False at run time
# without importing ``typing``.
TYPE_CHECKING = False
if TYPE_CHECKING:
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

_HOMES = {
    "._backoff_policy": ("BackoffPolicy", "ExponentialBackoff"),
    "._cache": ("Store", "Writer", "WriterStatus", "store"),
    "._finalizers": ("finalizer", "finalizer_async"),
    "._indexes": ("IndexFn", "index_label", "index_namespace", "index_owner_uid"),
    "._object_ref": ("ObjectRef",),
    "._shards": ("Shard", "ShardSelectorError"),
    "._shared_watches": ("SharedWatches", "ViewStats", "ViewStore", "WatchStats"),
    "._snapshot": ("Snapshot",),
    "._watching": ("metadata_watcher", "watch", "watch_object", "watcher"),
    ".client": ("Api", "Client"),
    ".controller": (
        "Action",
        "Controller",
        "ControllerConfig",
        "ObjectMissing",
        "Reconciled",
        "ReconcileFailed",
    ),
    ".dispatcher": ("SharedStore", "SubscriberOverflow", "store_shared"),
    ".events": ("Apply", "Delete", "Event", "Init", "InitApply", "InitDone", "Object"),
    ".leader": ("LeaderElector",),
    ".operators": (
        "applied_objects",
        "backoff",
        "default_backoff",
        "metadata_only",
        "modify",
        "predicate_filter",
        "reflect",
        "reflect_shared",
        "reflector",
        "touched_objects",
    ),
    ".protocol": ("Config",),
    ".resource": ("Resource",),
    ".wait": ("await_condition",),
}
"""The module each re-exported name is imported from (as the TYPE_CHECKING block says)."""
_HOME = {name: module for module, names in _HOMES.items() for name in names}

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


def _import_on_first_use(name: str) -> object:
    """``rxkube.NAME``: import a re-exported name, or a public submodule, on its first use.

    Raises:
        AttributeError: ``rxkube`` has no such name.
        ImportError: importing the name's module failed (the original error is its
            cause); never an ``AttributeError``, which ``hasattr`` and ``getattr(...,
            default)`` would take for "no such name".
    """
    import importlib
    import importlib.util

    home = _HOME.get(name)
    if home is None:
        # ``rxkube.operators`` worked after ``import rxkube`` when this file imported
        # everything; a public submodule still does. A private one, or ``__main__``
        # (which would run the command line), is imported only by name, as usual.
        if name.startswith("_") or not name.isidentifier():
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        if importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        home = f".{name}"
    try:
        module = importlib.import_module(home, __name__)
    except AttributeError as exc:
        raise ImportError(
            f"cannot import rxkube.{name}: importing {__name__}{home} failed: {exc}",
            name=f"{__name__}{home}",
        ) from exc
    value = module if home == f".{name}" else getattr(module, name)
    globals()[name] = value  # later uses are a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if not TYPE_CHECKING:
    # Hidden from type checkers: seeing a module __getattr__, they would take a misspelt
    # name (``rxkube.wacther``) for a valid one of its return type.
    __getattr__ = _import_on_first_use
