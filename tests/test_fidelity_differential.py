"""rxkube's test server against a real kube-apiserver: the same requests, the same answers.

Each test is one scenario (see ``tests/differential.py``) run on both servers; they skip
where envtest's binaries are not found (``KUBEBUILDER_ASSETS``), like
``tests/test_envtest.py``. The real server is v1.36; where the test server keeps v1.32's
answer, the difference is declared in the test, with both values, and documented in
``docs/testing.md``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from benchmarks.sharding import wait_for
from rxkube.testing import ApiServer, EnvtestServer
from rxkube.testing._envtest import ASSETS_VARIABLE, binaries_available
from tests.apiserver_http import APPLY
from tests.differential import MISSING, NUMBERS_SCHEMA, Pair, Side, events

pytestmark = [
    pytest.mark.skipif(
        not binaries_available(), reason=f"no kube-apiserver and etcd (set {ASSETS_VARIABLE})"
    ),
    pytest.mark.timeout(300),
]

CMS = "/api/v1/namespaces/{ns}/configmaps"
PODS = "/api/v1/namespaces/{ns}/pods"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


# What kube-apiserver changed after v1.32, where the test server keeps v1.32's answer
# (docs/testing.md, "Known differences from a real cluster").


def pod_generation(**labels: int) -> dict[str, tuple[object, object]]:
    """v1.33 gives pods a ``metadata.generation`` (1 on create, bumped by a spec change
    and by a graceful deletion's mark): ``{label: generation}`` of the answers holding a
    pod, by the keywords of :data:`LABELS` (``event_3``: the watch's fourth event)."""
    return {
        f"{LABELS.get(k) or 'events.events[' + k.removeprefix('event_') + '].object'}"
        ".metadata.generation": (MISSING, v)
        for k, v in labels.items()
    }


LABELS = {
    "create": "POST /api/v1/namespaces/{ns}/pods.body",
    "create_2": "POST /api/v1/namespaces/{ns}/pods #2.body",
    "merge": "PATCH /api/v1/namespaces/{ns}/pods/p.body",
    "strategic": "strategic image.body",
    "json": "PATCH /api/v1/namespaces/{ns}/pods/p #3.body",
    "by_node": "pods by node.body.items[0]",
    "by_phase": "pods by phase.body.items[0]",
    "by_restart_policy": "pods by restart policy.body.items[0]",
    "unbound": "unbound pod.body",
    "bound": "bound pod.body",
    "bound_at_once": "bound pod at once.body",
}


def template_created(*labels: str) -> dict[str, tuple[object, object]]:
    """v1.34 leaves a template's zero ``metadata.creationTimestamp`` out (``omitzero``);
    v1.32 writes it, as a zero ``metav1.Time`` writes itself, ``null``: the answers
    holding a pod template, by label (``.body`` included)."""
    return {
        f"{label}.spec.template.metadata.creationTimestamp": (None, MISSING) for label in labels
    }


DEPLOYMENT = "POST /apis/apps/v1/namespaces/{ns}/deployments.body"

LABEL_BYTES = ("must be no more than 63 characters", "must be no more than 63 bytes")
"""v1.35 counts a label value's length in bytes (k8s.io/apimachinery ``validate/content``)."""

JSON_VALUES = ('[]string{"Nope"}', '["Nope"]')
"""v1.34 writes a field error's non-scalar value as JSON, v1.32 in Go syntax (a
``uint64`` 0 as ``0x0`` too)."""


def continue_starts(*labels_and_keys: tuple[str, str]) -> dict[str, tuple[object, object]]:
    """v1.34 serves paginated lists from the watch cache, whose continue tokens' start
    keys keep the leading ``/`` the etcd store's strip (both accept either)."""
    return {
        f"{label}.body.metadata.continue.<continue>.start": (key, "/" + key)
        for label, key in labels_and_keys
    }


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """Both servers for the module's scenarios (each scenario has a namespace of its own)."""
    with ApiServer(token="admin") as test_server, EnvtestServer() as real:
        yield Pair(test_server, real)


def configmap(name: str, **labels: str) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def pod(name: str, **spec: object) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "i"}], **spec},
    }


# --- create, read, errors ---------------------------------------------------------------


def test_create_get_and_the_errors_of_missing_and_existing_objects(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        s.post(CMS, configmap("a", app="x"))
        s.get(CMS + "/a")
        s.post(CMS, configmap("a"))
        s.get(CMS + "/missing")
        s.post("/api/v1/namespaces/nowhere/configmaps", configmap("a"))

    pair.same(scenario)


def test_invalid_names_and_labels(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        s.post(CMS, {"metadata": {"name": "Not_Valid", "labels": {"-x": "y" * 70}}})
        s.post(CMS, {"metadata": {}})
        s.post(CMS, {"metadata": {"generateName": "gen-"}, "data": {"k": "v"}})

    pair.same(scenario, reworded=[LABEL_BYTES])


def test_bodies_that_do_not_decode(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        s.post(CMS, b"[1, 2]", label="a list")
        s.post(CMS, {"metadata": {"name": "a", "labels": "x"}}, label="labels not a map")
        s.post(CMS, {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "a"}})
        s.post(CMS, {"metadata": {"name": "a"}, "unknown": 1}, label="unknown field")
        s.post(CMS, {"metadata": {"name": "b"}, "unknown": 1}, fieldValidation="Strict")

    pair.same(scenario)


# --- defaulting ---------------------------------------------------------------------------


def test_a_pod_as_created(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        s.post(PODS, pod("p"))

    pair.same(scenario, pod_generation(create=1))


def test_a_pod_with_a_service_account_and_ports(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        body = pod("p", serviceAccountName="robot")
        body["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]  # type: ignore[index]
        s.post(PODS, body)

    pair.same(scenario, pod_generation(create=1))


def test_a_deployment_as_created(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        labels = {"app": "web"}
        template = {"metadata": {"labels": labels}, "spec": pod("")["spec"]}
        s.post(
            "/apis/apps/v1/namespaces/{ns}/deployments",
            {
                "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": labels}, "template": template},
            },
        )

    pair.same(scenario, template_created(DEPLOYMENT))


def test_a_service_and_a_secret_as_created(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        s.post(
            "/api/v1/namespaces/{ns}/services",
            {
                "metadata": {"name": "svc"},
                "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}},
            },
        )
        s.post(
            "/api/v1/namespaces/{ns}/secrets",
            {"metadata": {"name": "s"}, "stringData": {"k": "v"}, "data": {"j": "dg=="}},
        )

    pair.same(scenario)


# --- updates, patches, deletes --------------------------------------------------------------


def test_updates_with_stale_and_missing_resource_versions(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        _, created = s.post(CMS, configmap("a"))
        changed = {**created, "data": {"k": "2"}}
        s.put(CMS + "/a", changed)
        s.put(CMS + "/a", changed, label="stale")
        del changed["metadata"]["resourceVersion"]
        s.put(CMS + "/a", changed, label="unconditional")
        s.put(CMS + "/b", changed, label="name mismatch")

    pair.same(scenario)


def test_merge_strategic_and_json_patches(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        s.post(PODS, pod("p"))
        s.patch(PODS + "/p", {"metadata": {"labels": {"a": "b"}}}, MERGE)
        s.patch(
            PODS + "/p",
            {"spec": {"containers": [{"name": "c", "image": "j"}]}},
            STRATEGIC,
            label="strategic image",
        )
        s.patch(PODS + "/p", [{"op": "test", "path": "/metadata/name", "value": "q"}], JSON_PATCH)
        s.patch(
            PODS + "/p", [{"op": "replace", "path": "/metadata/labels/a", "value": "c"}], JSON_PATCH
        )
        s.patch(PODS + "/p", b"{not json", MERGE, label="bad merge")
        s.patch(PODS + "/p", {"metadata": {"name": "q"}}, MERGE, label="rename")

    # Go's JSON decoder has its own words (docs/testing.md, "Decoding messages").
    go_json = (
        "error decoding patch: unexpected character, expected a string key: line 1 column 2 (char 1)",
        "error decoding patch: invalid character 'n' looking for beginning of object key string",
    )
    pair.same(
        scenario,
        {
            "bad merge.body.message": go_json,
            **pod_generation(create=1, merge=1, strategic=2, json=2),
        },
    )


def test_server_side_apply_and_its_conflicts(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "a"},
            "data": {"k": "1"},
        }
        s.patch(CMS + "/a", config, APPLY, fieldManager="one")
        config["data"] = {"k": "2"}
        s.patch(CMS + "/a", config, APPLY, fieldManager="two", label="conflict")
        s.patch(CMS + "/a", config, APPLY, fieldManager="two", force="true", label="forced")
        s.patch(CMS + "/a", config, APPLY, label="no manager")
        s.get(CMS + "/a")

    pair.same(scenario)


def test_deletes_with_preconditions(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        s.post(CMS, configmap("a"))
        s.delete(CMS + "/a", {"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})
        s.delete(CMS + "/a", {"preconditions": {"resourceVersion": "1"}}, label="stale rv")
        s.delete(CMS + "/a")
        s.delete(CMS + "/a", label="again")

    pair.same(scenario)


def test_dry_run_writes(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        s.post(CMS, configmap("a"), dryRun="All")
        s.get(CMS + "/a")
        s.post(CMS, configmap("a"))
        s.patch(CMS + "/a", {"data": {"k": "2"}}, MERGE, dryRun="All")
        s.delete(CMS + "/a", dryRun="All")
        s.post(CMS, configmap("b"), dryRun="Nope")
        s.get(CMS + "/a")

    pair.same(scenario, reworded=[JSON_VALUES])


# --- lists -----------------------------------------------------------------------------------


def test_pages_of_a_list(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        for i in range(7):
            s.post(CMS, configmap(f"cm-{i}", app="x" if i % 2 else "y"), label=f"create {i}")
        query = {"limit": "3"}
        while True:
            _, page = s.get(CMS, **query)
            token = page["metadata"].get("continue")
            if not token:
                break
            query["continue"] = token
        s.get(CMS, limit="2", labelSelector="app=x")

    pair.same(
        scenario,
        continue_starts(
            ("GET /api/v1/namespaces/{ns}/configmaps", "cm-2\x00"),
            ("GET /api/v1/namespaces/{ns}/configmaps #2", "cm-5\x00"),
            ("GET /api/v1/namespaces/{ns}/configmaps #4", "cm-3\x00"),
        ),
    )


def test_bad_list_parameters(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        s.get(CMS, labelSelector="a in (", label="bad label selector")
        s.get(CMS, fieldSelector="spec.nodeName=x", label="field not supported")
        s.get(CMS, fieldSelector="metadata.name", label="bad field selector")
        s.get(CMS, limit="abc")
        s.get(CMS, resourceVersionMatch="Exact", label="match without rv")
        s.get(CMS, resourceVersion="0", resourceVersionMatch="Exact", label="exact 0")
        s.get(CMS, resourceVersion="1", resourceVersionMatch="Other", label="unknown match")
        s.get(CMS, resourceVersion="abc", label="rv not a number")


def token(rv: object, start: str) -> str:
    """A continue token as apiserver's ``storage.EncodeContinue`` writes one."""
    data = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_continue_tokens_written_by_hand(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        for i in range(3):
            s.post(CMS, configmap(f"cm-{i}"), label=f"create {i}")
        _, listed = s.get(CMS)
        rv = int(listed["metadata"]["resourceVersion"])
        s.get(CMS, **{"continue": "garbage"}, label="not base64")
        s.get(CMS, **{"continue": token(0, "cm-1")}, label="rv 0")
        s.get(CMS, **{"continue": token(rv, "")}, label="no start")
        s.get(CMS, **{"continue": token(rv, "../x")}, label="escaping start")
        s.get(CMS, **{"continue": token(rv, "cm-1/./x")}, label="unclean start")
        s.get(CMS, **{"continue": token(rv, "cm-1\x00")}, label="start")
        s.get(CMS, **{"continue": token(rv, "/cm-1\x00")}, label="rooted start")
        s.get(CMS, **{"continue": token(rv, "cm-1")}, resourceVersion=str(rv), label="with rv")

    pair.same(scenario)


def test_field_selectors_per_kind(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        s.post(PODS, pod("p", nodeName="n1"))
        s.get(PODS, fieldSelector="spec.nodeName=n1", label="pods by node")
        s.get(PODS, fieldSelector="status.phase=Pending,metadata.name!=q", label="pods by phase")
        s.get(PODS, fieldSelector="spec.restartPolicy=Always", label="pods by restart policy")
        s.get(
            "/api/v1/namespaces/{ns}/secrets", fieldSelector="type=Opaque", label="secrets by type"
        )
        s.get(
            "/api/v1/namespaces/{ns}/events", fieldSelector="involvedObject.name=p", label="events"
        )
        s.get(
            "/api/v1/namespaces",
            fieldSelector=f"status.phase=Active,metadata.name={s.namespace}",
            label="namespaces",
        )
        s.get(
            "/apis/apps/v1/namespaces/{ns}/deployments",
            fieldSelector="spec.replicas=1",
            label="unsupported",
        )

    pair.same(scenario, pod_generation(create=1, by_node=1, by_phase=1, by_restart_policy=1))


# --- watches -------------------------------------------------------------------------------


def test_a_watch_sees_creates_changes_and_deletes(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        _, listed = s.get(CMS)
        with s.watch(CMS, resourceVersion=listed["metadata"]["resourceVersion"]) as w:
            s.post(CMS, configmap("a"))
            s.patch(CMS + "/a", {"data": {"k": "2"}}, MERGE)
            s.delete(CMS + "/a")
            events(s, "events", w, 3)

    pair.same(scenario)


def test_a_streaming_list(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        for i in range(3):
            s.post(CMS, configmap(f"cm-{i}"), label=f"create {i}")
        with s.watch(
            CMS,
            sendInitialEvents="true",
            resourceVersionMatch="NotOlderThan",
            allowWatchBookmarks="true",
        ) as w:
            received = events(s, "initial events", w, 4)
        s.record("names", sorted(e["object"]["metadata"].get("name", "") for e in received))

    pair.same(scenario)


def test_bad_watch_parameters(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        watch = {"watch": "1", "timeoutSeconds": "1"}
        s.get(CMS, **watch, sendInitialEvents="true", label="initial events without match")
        s.get(
            CMS, **watch, resourceVersionMatch="NotOlderThan", label="match without initial events"
        )
        s.get(CMS, **watch, sendInitialEvents="false", resourceVersionMatch="Exact", label="exact")
        s.get(CMS, **watch, resourceVersion="abc", label="rv not a number")

    pair.same(scenario)


# --- history: compaction ---------------------------------------------------------------


def compact(s: Side) -> None:
    """Compact the side's history at its latest revision (etcd's compaction on the real
    one; its watch cache keeps what it holds)."""
    s.server.compact()


def test_reads_at_a_compacted_resource_version(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        _, created = s.post(CMS, configmap("a"))
        old = created["metadata"]["resourceVersion"]
        s.patch(CMS + "/a", {"data": {"k": "2"}}, MERGE)
        for i in range(3):
            s.post(CMS, configmap(f"cm-{i}"), label=f"create {i}")
        _, page = s.get(CMS, limit="2", label="first page")
        compact(s)
        status, _ = s.get(CMS, resourceVersion=old, resourceVersionMatch="Exact", record=False)
        s.record("exact", status)
        s.get(CMS, resourceVersion=old, resourceVersionMatch="NotOlderThan", label="not older")
        s.get(CMS, limit="2", **{"continue": page["metadata"]["continue"]}, label="continue")

    # v1.34 serves an exact list from the watch cache, which still holds the compacted
    # revision; v1.32 asked etcd, which answers 410 Expired.
    expected = {"exact": (410, 200), **continue_starts(("first page", "cm-0\x00"))}
    pair.same(scenario, expected)


def test_a_watch_from_a_compacted_resource_version(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        _, created = s.post(CMS, configmap("a"))
        old = created["metadata"]["resourceVersion"]
        s.patch(CMS + "/a", {"data": {"k": "2"}}, MERGE)
        compact(s)
        with s.watch(CMS, resourceVersion=old, timeoutSeconds="5") as w:
            event = w.next()
        s.record("first event", [event["type"], event["object"].get("code")])

    # The test server's compaction drops the history a real watch cache (v1.32's too)
    # still serves after etcd's (docs/testing.md, "Watch history").
    pair.same(scenario, {"first event[0]": ("ERROR", "MODIFIED"), "first event[1]": (410, None)})


# --- more writes -----------------------------------------------------------------------


def test_a_create_that_carries_managed_fields(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        entry = {
            "manager": "someone",
            "operation": "Apply",
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:k": {}}},
        }
        body = {**configmap("a"), "metadata": {"name": "a", "managedFields": [entry]}}
        s.post(CMS, body)
        s.post(CMS, {**configmap("b"), "metadata": {"name": "b", "managedFields": []}})

    pair.same(scenario)


def test_status_updates_and_the_main_resource(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        labels = {"app": "web"}
        template = {"metadata": {"labels": labels}, "spec": pod("")["spec"]}
        path = "/apis/apps/v1/namespaces/{ns}/deployments"
        body = {
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": labels}, "template": template},
        }
        s.post(path, {**body, "status": {"replicas": 3}})
        s.patch(path + "/web/status", {"status": {"replicas": 2}}, MERGE)
        s.patch(path + "/web", {"status": {"replicas": 5}, "spec": {"replicas": 4}}, MERGE)
        s.get(path + "/web/status")

    pair.same(
        scenario,
        template_created(
            DEPLOYMENT,
            "PATCH /apis/apps/v1/namespaces/{ns}/deployments/web/status.body",
            "PATCH /apis/apps/v1/namespaces/{ns}/deployments/web.body",
            "GET /apis/apps/v1/namespaces/{ns}/deployments/web/status.body",
        ),
    )


def test_delete_collection_and_what_deletes_answer(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        for i in range(3):
            s.post(CMS, configmap(f"cm-{i}", app="x" if i else "y"), label=f"create {i}")
        s.delete(CMS, labelSelector="app=x")
        s.get(CMS)
        s.post(PODS, pod("p"))
        s.delete(PODS + "/p", label="unbound pod")
        s.post(PODS, pod("q", nodeName="n1"))
        s.delete(PODS + "/q", label="bound pod")
        s.delete(PODS + "/q", {"gracePeriodSeconds": 0}, label="bound pod at once")

    deleted = pod_generation(create=1, unbound=2, create_2=1, bound=2, bound_at_once=2)
    pair.same(scenario, deleted)


def test_metadata_only_and_table_lists(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        s.post(CMS, configmap("a", app="x"))
        meta = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
        s.request("GET", CMS, headers={"Accept": meta}, label="metadata")
        table = "application/json;as=Table;g=meta.k8s.io;v=v1"
        _, answer = s.request("GET", CMS, headers={"Accept": table}, record=False)
        # The test server leaves columns' descriptions (the API's field documentation)
        # empty (docs/testing.md, "Server-side Tables").
        for column in answer["columnDefinitions"]:
            column.pop("description")
        age = [c["name"] for c in answer["columnDefinitions"]].index("Age")
        for row in answer["rows"]:
            row["cells"][age] = "<age>"  # seconds since creation, on each server's clock
        s.record("table", answer)

    pair.same(scenario)


def test_selectors_in_all_their_forms(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        for i, labels in enumerate(({"a": "1"}, {"a": "2", "b": "x"}, {"b": "y"})):
            s.post(CMS, configmap(f"cm-{i}", **labels), label=f"create {i}")
        for selector in ("a in (1,2)", "a notin (1)", "!a", "b", "a=1,b!=x", "a==2", "a>1"):
            s.get(CMS, labelSelector=selector, label=f"labels {selector}")
        for selector in ("metadata.name=cm-1", "metadata.name!=cm-1", "metadata.name==cm-2"):
            s.get(CMS, fieldSelector=selector, label=f"fields {selector}")

    pair.same(scenario)


def test_apply_conflicts_with_an_update_and_unsets(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        s.post(CMS, configmap("a"))
        config = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "a"},
            "data": {"k": "x", "j": "y"},
        }
        s.patch(CMS + "/a", config, APPLY, fieldManager="applier", label="conflict with creator")
        s.patch(CMS + "/a", config, APPLY, fieldManager="applier", force="true", label="forced")
        s.patch(
            CMS + "/a",
            {**config, "data": {"k": "x"}},
            APPLY,
            fieldManager="applier",
            label="unset j",
        )
        s.patch(
            CMS + "/a",
            {"apiVersion": "v1", "kind": "ConfigMap"},
            APPLY,
            fieldManager="a",
            label="no name",
        )
        s.patch(
            CMS + "/a",
            {"kind": "ConfigMap", "metadata": {"name": "a"}},
            APPLY,
            fieldManager="a",
            label="no apiVersion",
        )

    pair.same(scenario)


def test_a_watch_sees_pods_deleted(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        _, listed = s.get(PODS)
        with s.watch(PODS, resourceVersion=listed["metadata"]["resourceVersion"]) as w:
            s.post(PODS, pod("p"))
            s.delete(PODS + "/p", label="unbound pod")
            s.post(PODS, pod("q", nodeName="n1"))
            s.delete(PODS + "/q", label="bound pod")
            s.delete(PODS + "/q", {"gracePeriodSeconds": 0}, label="bound pod at once")
            events(s, "events", w, 7)

    generations = {"event_0": 1, "event_1": 2, "event_2": 2, "event_3": 1}
    generations |= {"event_4": 2, "event_5": 2, "event_6": 2}
    pair.same(
        scenario,
        pod_generation(create=1, unbound=2, create_2=1, bound=2, bound_at_once=2, **generations),
    )


# --- watches with selectors, strategic patches, events, custom resources ---------------


def test_a_watch_with_a_label_selector_sees_objects_leave(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        _, listed = s.get(CMS)
        with s.watch(
            CMS, resourceVersion=listed["metadata"]["resourceVersion"], labelSelector="app=x"
        ) as w:
            s.post(CMS, configmap("a", app="x"))
            s.patch(CMS + "/a", {"metadata": {"labels": {"app": "y"}}}, MERGE)
            s.patch(CMS + "/a", {"metadata": {"labels": {"app": "x"}}}, MERGE)
            s.post(CMS, configmap("b", app="y"))
            s.delete(CMS + "/a")
            events(s, "events", w, 4)

    pair.same(scenario)


def test_a_watch_with_a_field_selector(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        _, listed = s.get(CMS)
        with s.watch(
            CMS,
            resourceVersion=listed["metadata"]["resourceVersion"],
            fieldSelector="metadata.name=a",
        ) as w:
            s.post(CMS, configmap("b"))
            s.post(CMS, configmap("a"))
            s.delete(CMS + "/b")
            s.delete(CMS + "/a")
            events(s, "events", w, 2)

    pair.same(scenario)


def test_strategic_patches_of_a_deployment(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        labels = {"app": "web"}
        containers = [
            {"name": "a", "image": "i", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "j"},
        ]
        template = {"metadata": {"labels": labels}, "spec": {"containers": containers}}
        path = "/apis/apps/v1/namespaces/{ns}/deployments"
        s.post(
            path,
            {
                "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": labels}, "template": template},
            },
        )
        p = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "b", "$patch": "delete"},
                            {"name": "a", "env": [{"name": "Y", "value": "2"}]},
                        ]
                    }
                }
            }
        }
        s.patch(path + "/web", p, STRATEGIC, label="delete b, add env")
        p = {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                        "containers": [{"name": "c", "image": "k"}],
                    }
                }
            }
        }
        s.patch(path + "/web", p, STRATEGIC, label="set order")
        s.patch(path + "/web", {"spec": {"replicas": "x"}}, STRATEGIC, label="bad type")
        s.patch(
            path + "/web",
            {"spec": {"template": {"spec": {"containers": [{"image": "z"}]}}}},
            STRATEGIC,
            label="no merge key",
        )

    # The patched map is converted to the Go type by the unstructured converter, whose
    # words the test server does not have (docs/testing.md, "Decoding messages").
    pair.same(
        scenario,
        template_created(DEPLOYMENT, "delete b, add env.body", "set order.body"),
        reworded=[(UNMARSHAL_INT32, "unrecognized type: int32")],
    )


UNMARSHAL_INT32 = (
    "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
)


def test_events_field_selectors(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        ev = {
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": s.namespace},
            "reason": "Started",
            "type": "Normal",
            "message": "m",
        }
        s.post("/api/v1/namespaces/{ns}/events", ev)
        for sel in (
            "involvedObject.kind=Pod",
            "reason=Started",
            "type=Normal",
            "involvedObject.name=p,source=x",
            "involvedObject.uid=",
            "reportingComponent=",
            "spec.x=1",
        ):
            s.get("/api/v1/namespaces/{ns}/events", fieldSelector=sel, label=sel)
        s.get(
            "/apis/events.k8s.io/v1/namespaces/{ns}/events",
            fieldSelector="regarding.name=p",
            label="v1 regarding",
        )
        s.get(
            "/apis/events.k8s.io/v1/namespaces/{ns}/events",
            fieldSelector="involvedObject.name=p",
            label="v1 involved",
        )
        status, _ = s.get("/api/v1/namespaces/{ns}/events", fieldSelector="source=x", record=False)
        s.record("by source", status)

    # The test server refuses the ``source`` field label (a component or the reporting
    # controller, not a path of the object): docs/testing.md, "Resources not served".
    selected = "involvedObject.name=p,source=x"
    refused = {"by source": (400, 200), f"{selected}.status": (400, 200)}
    pair.same(scenario, refused | SOURCE_REFUSED)


SOURCE_REFUSED = {
    "involvedObject.name=p,source=x.body.kind": ("Status", "EventList"),
    "involvedObject.name=p,source=x.body.metadata": ({}, MISSING),
    "involvedObject.name=p,source=x.body.status": ("Failure", MISSING),
    "involvedObject.name=p,source=x.body.message": ("field label not supported: source", MISSING),
    "involvedObject.name=p,source=x.body.reason": ("BadRequest", MISSING),
    "involvedObject.name=p,source=x.body.code": (400, MISSING),
    "involvedObject.name=p,source=x.body.metadata.resourceVersion": (MISSING, "<rv>"),
    "involvedObject.name=p,source=x.body.items": (MISSING, []),
}


def define_widgets(s: Side, schema: dict[str, object], **version: object) -> str:
    """Define ``widgets`` in a group of the scenario's own; their path once served."""
    group = f"{s.namespace}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "listKind": "WidgetList",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    **version,
                }
            ],
        },
    }
    status, _ = s.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, record=False)
    assert status == 201
    path = f"/apis/{group}/v1/namespaces/{{ns}}/widgets"
    # A real server serves the resource once the definition is established.
    wait_for(lambda: s.get(path, record=False)[0] == 200, timeout=60, what="the resource served")
    return path


def test_a_custom_resource(pair: Pair) -> None:
    def scenario(s: Side) -> None:
        group = f"{s.namespace}.example.com"
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {
                    "plural": "widgets",
                    "singular": "widget",
                    "kind": "Widget",
                    "listKind": "WidgetList",
                },
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "subresources": {"status": {}},
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {
                                            "size": {"type": "integer", "minimum": 1},
                                            "name": {"type": "string", "default": "d"},
                                        },
                                    },
                                    "status": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            }
                        },
                    }
                ],
            },
        }
        status, _ = s.post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, record=False
        )
        assert status == 201
        path = f"/apis/{group}/v1/namespaces/{{ns}}/widgets"
        # A real server serves the resource once the definition is established.
        wait_for(
            lambda: s.get(path, record=False)[0] == 200, timeout=60, what="the resource served"
        )
        s.post(
            path,
            {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": {"size": 2, "extra": 1},
                "status": {"a": 1},
            },
            label="create",
        )
        s.post(
            path,
            {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "metadata": {"name": "v"},
                "spec": {"size": 0},
            },
            label="invalid",
        )
        s.patch(path + "/w", {"spec": {"size": 3}}, MERGE, label="merge")
        s.patch(path + "/w", {"spec": {"size": 3}}, STRATEGIC, label="strategic")
        s.put(
            path + "/w",
            {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": {"size": 4},
            },
            label="put without rv",
        )
        s.get(path, label="list")

    pair.same(scenario, reworded=[("Invalid value: 0x0", "Invalid value: 0")])


def widget(s: Side, name: str, spec: object) -> bytes:
    """A Widget as JSON text (which may hold integers beyond 64 bits)."""
    group = f"{s.namespace}.example.com"
    body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": name}}
    return json.dumps({**body, "spec": spec}).encode()


BIG = 2**64 - 1
"""Beyond int64: util/json's convertNumber reads it as a float64."""


def test_custom_resource_numbers_and_nulls(pair: Pair) -> None:
    """Numbers as apimachinery's util/json reads them (an int64 when one fits, else a
    float64) and as they read back from storage (``1.0`` is stored as ``1``); nulls kept
    where the schema allows them, dropped or defaulted where it does not."""

    def scenario(s: Side) -> None:
        path = define_widgets(s, NUMBERS_SCHEMA)
        free = {"big": BIG, "small": -(2**63) - 1, "max": 2**63 - 1, "e20": 1e20, "one": 1.0}
        s.post(path, widget(s, "a", {"free": {**free, "null": None}, "nullable": None}), label="a")
        s.post(path, widget(s, "b", {"i": BIG}), label="big for an integer")
        s.post(path, widget(s, "c", {"i": 2.5}), label="a fraction")
        s.post(path, widget(s, "c", {"i32": 2**31}), label="beyond int32")
        s.post(path, widget(s, "d", {"i": 3.0, "n": 4.0, "ints": [1.0, 2**62]}))
        nulls = {"i": None, "s": None, "defaulted": None, "nullable_defaulted": None, "o": None}
        s.post(path, widget(s, "e", nulls), label="nulls")
        s.post(path, widget(s, "f", {"ints": [None]}), label="null item")
        s.patch(path + "/d", json.dumps({"spec": {"free": {"y": 1.0}, "i": 2**63}}), MERGE)
        s.patch(path + "/d", json.dumps({"spec": {"free": {"y": 7.0}}}), MERGE)
        s.get(path + "/d")

    # The same float64s, which encoding/json writes without an exponent below 1e21.
    spelled = {"big": float(BIG), "small": float(-(2**63) - 1), "e20": 1e20}
    pair.same(
        scenario,
        {f"a.body.spec.free.{k}": (v, int(Decimal(repr(v)))) for k, v in spelled.items()},
    )


LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
ROLES = "/apis/rbac.authorization.k8s.io/v1/clusterroles"


def test_nulls_in_built_in_kinds(pair: Pair) -> None:
    """A built-in kind is decoded into its Go struct: a ``null`` is the field's zero
    value, which an ``omitempty`` field leaves out, a field without it writes (``""``, a
    list's ``null``) and a struct always writes; managedFields are those of the decoded
    object (a create's compared with a new, empty one)."""

    def scenario(s: Side) -> None:
        lease = {"holderIdentity": None, "leaseTransitions": None}
        s.post(LEASES, {"metadata": {"name": "a"}, "spec": lease})
        s.post(LEASES, {"metadata": {"name": "b"}}, label="lease without a spec")
        s.post(LEASES, {"metadata": {"name": "c"}, "spec": None}, label="null spec")
        s.post(LEASES, {"metadata": {"name": "d"}, "spec": {"leaseTransitions": 2**31}})
        meta = {"name": "a", "labels": None, "annotations": {"x": None}}
        s.post(CMS, {"metadata": meta, "data": None})
        s.post(CMS, {"metadata": {"name": "b"}, "data": {"k": None}}, label="null value")
        s.put(CMS + "/a", {"metadata": {"name": "a"}, "data": None, "binaryData": None})
        merge = {"data": None, "metadata": {"labels": {"a": None}}}
        s.patch(CMS + "/b", merge, MERGE, label="merge")
        container = {
            "name": "c",
            "image": "i",
            "command": None,
            "args": [None, "x"],
            "ports": [{"containerPort": 80, "hostPort": None, "protocol": None}],
            "env": [{"name": "E", "value": None}],
            "resources": {"limits": {"cpu": None}},
        }
        spec = {
            "nodeName": None,
            "hostNetwork": False,
            "activeDeadlineSeconds": None,
            "securityContext": None,
            "containers": [container],
        }
        s.post(PODS, {"metadata": {"name": "p"}, "spec": spec}, label="pod")
        strategic = {"spec": {"activeDeadlineSeconds": None, "containers": [{"name": "c"}]}}
        s.patch(PODS + "/p", strategic, STRATEGIC, label="strategic")
        added = [{"op": "add", "path": "/metadata/labels", "value": None}]
        s.patch(PODS + "/p", added, JSON_PATCH, label="json patch")
        secret = {"metadata": {"name": "s"}, "data": {"k": None}, "stringData": None}
        s.post("/api/v1/namespaces/{ns}/secrets", secret)
        s.post(ROLES, {"metadata": {"name": f"{s.namespace}-a"}, "rules": None}, label="rules")
        s.post(ROLES, {"metadata": {"name": f"{s.namespace}-b"}}, label="no rules")
        ports = [{"port": 80, "targetPort": None, "name": None}]
        service = {"ports": ports, "selector": None, "sessionAffinity": None}
        s.post("/api/v1/namespaces/{ns}/services", {"metadata": {"name": "svc"}, "spec": service})
        account = {"metadata": {"name": "sa"}, "secrets": None}
        s.post("/api/v1/namespaces/{ns}/serviceaccounts", account)

    pair.same(scenario, generations("pod", "strategic", "json patch"))


def test_nulls_in_built_in_kinds_applied(pair: Pair) -> None:
    """Server-side apply records an applied ``null`` as the manager's field, and stores
    the merged object as its Go struct writes it."""

    def scenario(s: Side) -> None:
        def apply(path: str, config: dict[str, Any], label: str) -> None:
            s.patch(path, config, APPLY, fieldManager="m", label=label)

        meta = {"name": "a", "labels": None}
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": None,
        }
        apply(CMS + "/a", config, "null data")
        config = {**config, "metadata": {"name": "b"}, "data": {"k": None, "j": "x"}}
        apply(CMS + "/b", config, "null value")
        lease = {"holderIdentity": None, "leaseTransitions": None, "leaseDurationSeconds": 5}
        config = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": lease}
        apply(LEASES + "/l", {**config, "metadata": {"name": "l"}}, "lease")
        apply(LEASES + "/l", {**config, "metadata": {"name": "l"}, "spec": None}, "null spec")
        container = {"name": "c", "image": "i", "command": None}
        spec = {"nodeName": None, "hostNetwork": False, "containers": [container]}
        config = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}
        apply(PODS + "/p", config, "pod")

    pair.same(scenario, generations("pod"))


def generations(*labels: str) -> dict[str, tuple[object, object]]:
    """:func:`pod_generation` of answers with a pod, 1, by label."""
    return {f"{label}.body.metadata.generation": (MISSING, 1) for label in labels}


def test_integers_beyond_a_built_in_fields_range(pair: Pair) -> None:
    """A built-in kind's int fields take an integer literal within their Go type's range
    only: beyond it (int64's too), or ``1.0``, the body does not decode (400)."""

    def scenario(s: Side) -> None:
        def lease(name: str, transitions: object) -> bytes:
            spec = {"leaseTransitions": transitions}
            return json.dumps({"metadata": {"name": name}, "spec": spec}).encode()

        s.post(LEASES, lease("a", 2**64 - 1), label="uint64")
        s.post(LEASES, lease("a", 2**70), label="beyond 64 bits")
        s.post(LEASES, lease("a", 2**31), label="beyond int32")
        s.post(LEASES, lease("a", 1.0), label="a float")
        spec = {**pod("p")["spec"], "activeDeadlineSeconds": 2**63}  # type: ignore[dict-item]
        s.post(PODS, json.dumps({"metadata": {"name": "p"}, "spec": spec}), label="int64")

    pair.same(scenario)
