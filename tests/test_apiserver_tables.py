"""Server-side Table output (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``) over HTTP.

Expected columns and cells are those of kubernetes pkg/printers/internalversion/printers.go
(v1.32, printed wide: the server always fills the priority-1 columns), of
k8s.io/apiserver's default convertor (pkg/registry/rest/table.go: Name, Created At) and
of the CRD convertor (Name, Age); rows' objects follow ``asTable`` in
pkg/endpoints/handlers/response.go (``includeObject``, Metadata by default); a watch
lists the column definitions on its first event only (``watchEmbeddedEncoder``).
"""

from __future__ import annotations

from typing import Any

import pytest

from rxkube.resource import BUILTIN_KINDS, Resource
from rxkube.testing import ApiServer
from rxkube.testing._served import PrinterColumn, ServedResource
from rxkube.testing._tables import BUILTIN, human_duration, table
from tests.apiserver_http import Http

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
KUBECTL_GET = f"{TABLE},application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
"""What ``kubectl get`` sends (kubectl get.go ``transformRequests``)."""
PODS = "/api/v1/namespaces/default/pods"


def running_pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": "10.0.0.5"}],
            "containerStatuses": [
                {"name": "c", "ready": True, "restartCount": 0, "state": {"running": {}}}
            ],
        },
    }


def get_table(api: Http, path: str, accept: str = KUBECTL_GET, **params: Any) -> dict[str, Any]:
    status, body, response = api.request("GET", path, headers={"Accept": accept}, **params)
    assert status == 200, body
    assert response.getheader("Content-Type") == "application/json"
    assert body["kind"] == "Table", body
    table: dict[str, Any] = body
    return table


def test_pod_list_as_a_table(srv: ApiServer, api: Http) -> None:
    srv.create("pods", running_pod("web-1"))
    doc = get_table(api, PODS)
    assert doc["apiVersion"] == "meta.k8s.io/v1"
    assert doc["metadata"]["resourceVersion"] == str(srv.resource_version)
    columns = [(c["name"], c["type"], c["format"], c["priority"]) for c in doc["columnDefinitions"]]
    assert columns == [
        ("Name", "string", "name", 0),
        ("Ready", "string", "", 0),
        ("Status", "string", "", 0),
        ("Restarts", "string", "", 0),
        ("Age", "string", "", 0),
        ("IP", "string", "", 1),
        ("Node", "string", "", 1),
        ("Nominated Node", "string", "", 1),
        ("Readiness Gates", "string", "", 1),
    ]
    (row,) = doc["rows"]
    assert row["cells"][:4] == ["web-1", "1/1", "Running", "0"]
    assert row["cells"][5:] == ["10.0.0.5", "node-1", "<none>", "<none>"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["apiVersion"] == "meta.k8s.io/v1"
    assert row["object"]["metadata"]["labels"] == {"app": "web"}
    assert "spec" not in row["object"]


@pytest.mark.parametrize(
    ("include", "check"),
    [
        ("Object", lambda obj: obj["kind"] == "Pod" and obj["spec"]["nodeName"] == "node-1"),
        ("None", lambda obj: obj is None),
        ("Metadata", lambda obj: obj["kind"] == "PartialObjectMetadata"),
    ],
)
def test_include_object(srv: ApiServer, api: Http, include: str, check: Any) -> None:
    srv.create("pods", running_pod("web-1"))
    doc = get_table(api, PODS, includeObject=include)
    assert check(doc["rows"][0]["object"])
    doc = get_table(api, f"{PODS}/web-1", includeObject=include)
    assert check(doc["rows"][0]["object"])


def test_unknown_include_object_is_a_400(srv: ApiServer, api: Http) -> None:
    srv.create("pods", running_pod("web-1"))
    status, body, _ = api.request("GET", PODS, headers={"Accept": TABLE}, includeObject="All")
    assert status == 400 and body["message"] == 'unrecognized includeObject value: "All"'


def test_get_of_one_object_is_a_one_row_table(srv: ApiServer, api: Http) -> None:
    created = srv.create("pods", running_pod("web-1"))
    doc = get_table(api, f"{PODS}/web-1")
    assert doc["metadata"] == {"resourceVersion": created["metadata"]["resourceVersion"]}
    assert [row["cells"][0] for row in doc["rows"]] == ["web-1"]


def test_v1beta1_table_and_plain_json_fallback(srv: ApiServer, api: Http) -> None:
    srv.create("pods", running_pod("web-1"))
    beta = "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    assert get_table(api, PODS, accept=beta)["apiVersion"] == "meta.k8s.io/v1beta1"
    # the first acceptable alternative wins: plain JSON before the Table
    status, body, _ = api.request("GET", PODS, headers={"Accept": f"application/json,{TABLE}"})
    assert status == 200 and body["kind"] == "PodList"


def test_table_pages_carry_continue_and_remaining_count(srv: ApiServer, api: Http) -> None:
    for name in ("a", "b", "c"):
        srv.create("configmaps", {"metadata": {"name": name}, "data": {"k": "v"}})
    first = get_table(api, "/api/v1/namespaces/default/configmaps", limit=2)
    assert [r["cells"][:2] for r in first["rows"]] == [["a", 1], ["b", 1]]
    assert first["metadata"]["remainingItemCount"] == 1
    rest = get_table(
        api, "/api/v1/namespaces/default/configmaps", **{"continue": first["metadata"]["continue"]}
    )
    assert [r["cells"][0] for r in rest["rows"]] == ["c"]
    assert "continue" not in rest["metadata"]
    assert rest["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_watch_events_carry_tables_with_headers_once(srv: ApiServer, api: Http) -> None:
    srv.create("pods", running_pod("a"))
    with api.watch(PODS, headers={"Accept": KUBECTL_GET}) as watch:
        first = watch.events(1)[0]
        srv.create("pods", running_pod("b"))
        second = watch.events(1)[0]
        srv.delete("pods", "a")
        third = watch.events(1)[0]
    assert first["type"] == "ADDED" and first["object"]["kind"] == "Table"
    assert first["object"]["columnDefinitions"][1]["name"] == "Ready"
    assert second["object"]["columnDefinitions"] is None
    assert [e["object"]["rows"][0]["cells"][0] for e in (first, second, third)] == ["a", "b", "a"]
    assert third["type"] == "DELETED"
    row_meta = second["object"]["rows"][0]["object"]["metadata"]
    assert second["object"]["metadata"] == {"resourceVersion": row_meta["resourceVersion"]}


def test_kinds_without_a_printer_get_name_and_created_at(srv: ApiServer, api: Http) -> None:
    """Roles have no printer: the default convertor's columns, the time in RFC 3339."""
    created = srv.create("roles", {"metadata": {"name": "reader"}, "rules": []})
    doc = get_table(api, "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles")
    assert [(c["name"], c["type"]) for c in doc["columnDefinitions"]] == [
        ("Name", "string"),
        ("Created At", "date"),
    ]
    assert doc["rows"][0]["cells"] == ["reader", created["metadata"]["creationTimestamp"]]


def test_custom_resources_print_name_and_age_or_their_columns(srv: ApiServer, api: Http) -> None:
    """apiextensions-apiserver's convertor: Age by default; additionalPrinterColumns
    (the ``printer_columns`` of a served resource) otherwise, cells of the column's type."""
    srv.add_resource("example.com", "v1", "Widget", "widgets")
    srv.create("widgets", {"metadata": {"name": "w"}, "spec": {"size": 3}})
    doc = get_table(api, "/apis/example.com/v1/namespaces/default/widgets")
    assert [c["name"] for c in doc["columnDefinitions"]] == ["Name", "Age"]
    assert doc["rows"][0]["cells"][0] == "w"
    assert doc["rows"][0]["cells"][1].endswith("s")  # an age, e.g. "0s"
    gadgets = ServedResource(
        Resource("example.com", "v1", "Gadget", "gadgets"),
        singular="gadget",
        strategic_merge=False,
        printer_columns=(
            PrinterColumn("Size", "integer", ".spec.size"),
            PrinterColumn("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
            PrinterColumn("Color", "string", ".spec.color", priority=1),
        ),
    )
    srv.store.add_resource(gadgets)
    srv.create(
        gadgets.resource,
        {
            "metadata": {"name": "g"},
            "spec": {"size": 2},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
    )
    doc = get_table(api, "/apis/example.com/v1/namespaces/default/gadgets")
    assert [(c["name"], c["priority"]) for c in doc["columnDefinitions"]] == [
        ("Name", 0),
        ("Size", 0),
        ("Ready", 0),
        ("Color", 1),
    ]
    assert doc["rows"][0]["cells"] == ["g", 2, "True", None]


def test_definitions_print_their_columns_and_definitions_print_as_by_default(api: Http) -> None:
    """A CRD version's additionalPrinterColumns are its objects' columns, in the version asked
    for; the definitions themselves have the default convertor (apiextensions-apiserver
    pkg/registry/customresourcedefinition), Name and Created At."""
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    crd = {
        "metadata": {"name": "gizmos.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gizmos", "kind": "Gizmo"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": version == "v1",
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                        {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1},
                    ] if version == "v1" else [],
                }
                for version in ("v1", "v2")
            ],
        },
    }  # fmt: skip
    status, body, _ = api.request("POST", crds, crd)
    assert status == 201, body
    gizmo = {"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g"},
             "spec": {"size": 2, "color": "red"}}  # fmt: skip
    status, body, _ = api.request("POST", "/apis/example.com/v1/namespaces/default/gizmos", gizmo)
    assert status == 201, body
    doc = get_table(api, "/apis/example.com/v1/namespaces/default/gizmos")
    assert [(c["name"], c["type"], c["priority"]) for c in doc["columnDefinitions"]] == [
        ("Name", "string", 0),
        ("Size", "integer", 0),
        ("Color", "string", 1),
    ]
    assert doc["rows"][0]["cells"] == ["g", 2, "red"]
    doc = get_table(api, "/apis/example.com/v2/namespaces/default/gizmos/g", includeObject="Object")
    assert [c["name"] for c in doc["columnDefinitions"]] == ["Name", "Age"]
    assert doc["rows"][0]["object"]["apiVersion"] == "example.com/v2"
    doc = get_table(api, f"{crds}/gizmos.example.com")
    assert [c["name"] for c in doc["columnDefinitions"]] == ["Name", "Created At"]
    assert doc["rows"][0]["cells"][0] == "gizmos.example.com"


def test_writes_do_not_answer_tables(srv: ApiServer, api: Http) -> None:
    status, body, _ = api.request(
        "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "a"}},
        headers={"Accept": KUBECTL_GET},
    )  # fmt: skip
    assert status == 201 and body["kind"] == "ConfigMap"


# --------------------------------------------------------------- printers


NOW = 1_700_000_000.0
CREATED = "2023-11-14T22:13:00Z"  # 20 s before NOW


def cells(plural: str, obj: dict[str, Any], group: str = "") -> list[Any]:
    obj.setdefault("metadata", {}).update(name="x", creationTimestamp=CREATED)
    doc = table(BUILTIN[(group, plural)], [obj], include="None", metadata={}, now=NOW)
    row: list[Any] = doc["rows"][0]["cells"]
    assert len(row) == len(doc["columnDefinitions"])
    return row


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (125, "2m5s"),
        (600, "10m"), (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"),
        (48 * 3600, "2d"), (50 * 3600, "2d2h"), (8 * 86400, "8d"), (2 * 365 * 86400, "2y"),
        (2 * 365 * 86400 + 86400, "2y1d"), (9 * 365 * 86400, "9y"),
    ],
)  # fmt: skip
def test_human_duration_is_apimachinerys(seconds: int, text: str) -> None:
    """k8s.io/apimachinery pkg/util/duration ``HumanDuration``."""
    assert human_duration(seconds) == text


def test_pod_status_reasons_and_restarts() -> None:
    waiting = {
        "spec": {"containers": [{"name": "c"}]},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "c",
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"finishedAt": "2023-11-14T22:12:20Z"}},
                }
            ],
        },
    }
    assert cells("pods", waiting)[1:5] == ["0/1", "CrashLoopBackOff", "3 (60s ago)", "20s"]
    init = {
        "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "c"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {}}]},
    }
    assert cells("pods", init)[2] == "Init:0/1"
    deleting = {"metadata": {"deletionTimestamp": CREATED}, "status": {"phase": "Running"}}
    assert cells("pods", deleting)[2] == "Terminating"


def test_workload_printers() -> None:
    deployment = {
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
                 "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }  # fmt: skip
    assert cells("deployments", deployment, "apps") == [
        "x", "2/3", 3, 2, "20s", "a,b", "x,y", "app=web,tier in (a,b)",
    ]  # fmt: skip
    assert cells("statefulsets", {"spec": {}}, "apps") == ["x", "0/1", "20s", "", ""]
    job = {
        "spec": {"completions": 2},
        "status": {
            "succeeded": 2,
            "startTime": "2023-11-14T22:00:00Z",
            "completionTime": "2023-11-14T22:05:00Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    assert cells("jobs", job, "batch")[:5] == ["x", "Complete", "2/2", "5m", "20s"]
    cron = {"spec": {"schedule": "*/5 * * * *"}}
    assert cells("cronjobs", cron, "batch")[:7] == [
        "x", "*/5 * * * *", "<none>", "False", 0, "<none>", "20s",
    ]  # fmt: skip
    daemon = {
        "spec": {"template": {"spec": {"nodeSelector": {"os": "linux"}}}},
        "status": {"numberReady": 1},
    }
    assert cells("daemonsets", daemon, "apps")[:8] == ["x", 0, 0, 1, 0, 0, "os=linux", "20s"]


def test_service_and_node_printers() -> None:
    balancer = {
        "spec": {
            "type": "LoadBalancer",
            "clusterIPs": ["10.96.0.9"],
            "ports": [{"port": 80, "nodePort": 30080}],
        }
    }
    assert cells("services", balancer) == [
        "x",
        "LoadBalancer",
        "10.96.0.9",
        "<pending>",
        "80:30080/TCP",
        "20s",
        "<none>",
    ]
    node = {
        "metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
            "nodeInfo": {"kubeletVersion": "v1.32.4"},
        },
    }
    assert cells("nodes", node) == [
        "x", "Ready,SchedulingDisabled", "control-plane", "20s", "v1.32.4", "172.18.0.2",
        "<none>", "<unknown>", "<unknown>", "<unknown>",
    ]  # fmt: skip


def test_config_and_storage_printers() -> None:
    assert cells("secrets", {"data": {"a": "", "b": ""}}) == ["x", "Opaque", 2, "20s"]
    assert cells("configmaps", {"data": {"a": ""}, "binaryData": {"b": ""}}) == ["x", 2, "20s"]
    pvc = {"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard"}}
    assert cells("persistentvolumeclaims", pvc) == [
        "x", "Pending", "", "", "", "standard", "<unset>", "20s", "Filesystem",
    ]  # fmt: skip
    event = {
        "type": "Warning", "reason": "BackOff", "message": " restarting ",
        "involvedObject": {"kind": "Pod", "name": "web-1"}, "source": {"component": "kubelet"},
        "firstTimestamp": "2023-11-14T22:10:00Z", "lastTimestamp": "2023-11-14T22:12:00Z", "count": 4,
    }  # fmt: skip
    assert cells("events", event) == [
        "80s", "Warning", "BackOff", "pod/web-1", "", "kubelet", "restarting", "3m20s", 4, "x",
    ]  # fmt: skip
    hpa = {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5}}
    assert cells("horizontalpodautoscalers", hpa, "autoscaling") == [
        "x", "Deployment/web", "cpu: <unknown>/80%", "1", 5, 0, "20s",
    ]  # fmt: skip
    ingress = {"spec": {"rules": [{"host": "a.example"}, {}], "tls": [{}]}}
    assert cells("ingresses", ingress, "networking.k8s.io") == [
        "x", "<none>", "a.example", "", "80, 443", "20s",
    ]  # fmt: skip


def test_every_served_builtin_kind_prints_as_many_cells_as_columns(
    srv: ApiServer, api: Http
) -> None:
    """Each kind's printer, on an object with no fields beyond its name, fills every column."""
    builtin = {kind.resource for kind in BUILTIN_KINDS}
    for served in srv.store.served():
        res = served.resource
        if res not in builtin or not served.stored:
            continue  # a CustomResourceDefinition needs a valid spec (its own test below)
        path = res.path("default" if res.namespaced else None)
        obj = srv.create(res, {"metadata": {"name": "t"}})
        doc = get_table(api, path)
        widths = {len(row["cells"]) for row in doc["rows"]}
        assert widths == {len(doc["columnDefinitions"])}, res.full_name
        srv.delete(res, "t", namespace=obj["metadata"].get("namespace"))
