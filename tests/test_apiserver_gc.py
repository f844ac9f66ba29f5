"""Deletion with a propagation policy: the garbage collector's finalizers, over HTTP.

Checked against kubernetes/kubernetes: k8s.io/apiserver pkg/registry/generic/registry/
store.go (``shouldOrphanDependents``, ``shouldDeleteDependents``,
``deletionFinalizersForGarbageCollection``, ``updateForGracefulDeletionAndFinalizers``)
and the ``DefaultGarbageCollectionPolicy`` of pkg/registry/batch/job/strategy.go and
pkg/registry/core/replicationcontroller/strategy.go (``OrphanDependents`` at batch/v1 and
core v1). With no garbage collector running, the finalizer keeps the object, marked.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.apiserver_http import Http
from tests.test_apiserver import CONFIGMAPS
from tests.test_apiserver_discovery import job

JOBS = "/apis/batch/v1/namespaces/default/jobs"


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


def delete(api: Http, path: str, **options: Any) -> tuple[int, Any]:
    body = {"kind": "DeleteOptions", "apiVersion": "v1", **options} if options else None
    status, answer, _ = api.request("DELETE", path, body)
    return status, answer


@pytest.mark.parametrize(
    ("policy", "finalizer"), [("Foreground", "foregroundDeletion"), ("Orphan", "orphan")]
)
def test_a_propagation_policy_leaves_the_object_with_its_finalizer(
    api: Http, policy: str, finalizer: str
) -> None:
    api.request("POST", CONFIGMAPS, configmap("a"))
    status, answer = delete(api, f"{CONFIGMAPS}/a", propagationPolicy=policy)
    assert status == 200
    assert answer["metadata"]["finalizers"] == [finalizer]
    assert answer["metadata"]["deletionTimestamp"]
    assert answer["metadata"]["deletionGracePeriodSeconds"] == 0
    assert api.get(f"{CONFIGMAPS}/a")[0] == 200


def test_background_deletes_at_once_and_removes_a_gc_finalizer(api: Http) -> None:
    api.request("POST", CONFIGMAPS, configmap("a"))
    assert delete(api, f"{CONFIGMAPS}/a", propagationPolicy="Background")[1]["status"] == "Success"
    assert api.get(f"{CONFIGMAPS}/a")[0] == 404
    # A second delete of an object left by Orphan may change the policy: Background
    # takes the orphan finalizer away, and nothing else holds it.
    api.request("POST", CONFIGMAPS, configmap("b"))
    delete(api, f"{CONFIGMAPS}/b", propagationPolicy="Orphan")
    status, answer = delete(api, f"{CONFIGMAPS}/b", propagationPolicy="Background")
    assert status == 200 and answer["status"] == "Success"
    assert api.get(f"{CONFIGMAPS}/b")[0] == 404


def test_a_batch_v1_job_is_orphaned_by_default(api: Http) -> None:
    """kubectl always sends a policy (Background); a client that sends none orphans a Job."""
    api.request("POST", JOBS, job("plain"))
    status, answer = delete(api, f"{JOBS}/plain")
    assert status == 200 and answer["metadata"]["finalizers"] == ["orphan"]
    api.request("POST", JOBS, job("kubectl"))
    status, answer = delete(api, f"{JOBS}/kubectl", propagationPolicy="Background")
    assert answer["status"] == "Success"
    assert api.get(f"{JOBS}/kubectl")[0] == 404
    # The query's orphanDependents=false is the legacy spelling of "do not orphan".
    api.request("POST", JOBS, job("legacy"))
    status, answer, _ = api.request("DELETE", f"{JOBS}/legacy", orphanDependents=False)
    assert answer["status"] == "Success"
