"""The changing server that the stress tests run against: ConfigMaps ``c0``..``c49`` in
``default``, created, patched and deleted at random while watches and consumers run.
"""

from __future__ import annotations

import random

from rxkube.testing import ApiServer

NAMES = 50
"""How many names the churn draws from: ``c0`` to ``c49``."""


def create_configmaps(apiserver: ApiServer, count: int) -> set[str]:
    """Create ConfigMaps ``c0``..``c{count-1}``: the set of names that exist, for ``churn_step``."""
    names = {f"c{i}" for i in range(count)}
    for i in range(count):
        apiserver.create("configmaps", {"metadata": {"name": f"c{i}"}}, namespace="default")
    return names


def server_state(apiserver: ApiServer) -> dict[str, int]:
    """Each default-namespace ConfigMap's name and resourceVersion."""
    return {
        o["metadata"]["name"]: int(o["metadata"]["resourceVersion"])
        for o in apiserver.list("configmaps", namespace="default")
    }


def churn_step(apiserver: ApiServer, rng: random.Random, exists: set[str], step: int) -> None:
    """One random create, delete or patch among ConfigMaps c0..c49; ``exists`` follows."""
    name = f"c{rng.randrange(NAMES)}"
    if name not in exists:
        apiserver.create("configmaps", {"metadata": {"name": name}}, namespace="default")
        exists.add(name)
    elif rng.random() < 0.2:
        apiserver.delete("configmaps", name, namespace="default")
        exists.discard(name)
    else:
        apiserver.patch("configmaps", name, {"data": {"step": str(step)}}, namespace="default")
