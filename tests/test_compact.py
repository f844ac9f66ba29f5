"""ShareSubtrees: objects keep their value while equal parts are shared, within bounded tables."""

from __future__ import annotations

import copy
import doctest
import importlib
from typing import Any

import pytest
import reactivex

from rxkube import Event, Init, InitApply, InitDone, modify, reflect, store
from rxkube.compact import ShareSubtrees


def replica(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {"name": "c", "image": "nginx:1.27", "env": [{"name": "A", "value": "1"}]}
            ],
            "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 300}],
        },
        "status": {"phase": "Running", "ready": True, "restarts": 0, "ratio": 1.0},
    }


def test_objects_keep_their_value() -> None:
    share = ShareSubtrees()
    originals = [replica(f"p{i}") for i in range(5)]
    shared = [share(copy.deepcopy(o)) for o in originals]
    assert shared == originals


def test_equal_parts_are_one_object_and_different_parts_are_not() -> None:
    share = ShareSubtrees()
    a, b = share(replica("a")), share(replica("b"))
    assert a["spec"] is b["spec"]
    assert a["metadata"]["labels"] is b["metadata"]["labels"]
    assert a["metadata"] is not b["metadata"]
    assert a is not b


def test_true_one_and_one_point_zero_are_kept_apart() -> None:
    share = ShareSubtrees()
    x = share({"n": {"v": True}})
    y = share({"n": {"v": 1}})
    z = share({"n": {"v": 1.0}})
    assert type(x["n"]["v"]) is bool and type(y["n"]["v"]) is int and type(z["n"]["v"]) is float
    assert x["n"] is not y["n"] and y["n"] is not z["n"]


def test_values_that_cannot_be_hashed_are_kept_and_never_shared() -> None:
    share = ShareSubtrees()
    a = share({"metadata": {"name": "a"}, "x": {"pair": ({"k": "v"}, 1), "tags": {"t"}}})
    b = share({"metadata": {"name": "b"}, "x": {"pair": ({"k": "v"}, 1), "tags": {"t"}}})
    assert a["x"] == b["x"] == {"pair": ({"k": "v"}, 1), "tags": {"t"}}
    assert a["x"] is not b["x"]


def test_tables_start_afresh_past_max_entries() -> None:
    share = ShareSubtrees(max_entries=50)
    for i in range(200):
        share({"metadata": {"name": f"p{i}"}, "data": {f"k{i}": f"v{i}"}})
    assert len(share._strings) + len(share._shapes) <= 50 + 10
    again = share(replica("a"))
    assert again == replica("a")


def test_rejects_a_non_positive_bound() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        ShareSubtrees(max_entries=0)


def test_works_as_a_modify_function_before_the_store() -> None:
    reader, writer = store(copy_on_read=False)
    events: list[Event] = [Init(), InitApply(replica("a")), InitApply(replica("b")), InitDone()]
    reactivex.from_iterable(events).pipe(modify(ShareSubtrees()), reflect(writer)).subscribe()
    a, b = reader.get("a", "default"), reader.get("b", "default")
    assert a is not None and b is not None
    assert a["spec"] is b["spec"] and a == replica("a")


def test_docstring_examples_run() -> None:
    result = doctest.testmod(importlib.import_module("rxkube.compact"))
    assert result.attempted > 0 and result.failed == 0
