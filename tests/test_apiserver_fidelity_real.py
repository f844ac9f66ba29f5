"""What the test server answers since it was compared with a real kube-apiserver.

Each test pins an answer ``tests/test_fidelity_differential.py`` found the real server
to give (in v1.32 as in v1.36, unless said), so that the test server keeps it where no
real server is at hand (as on CI).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from rxkube.testing import ApiServer
from tests.apiserver_http import Http
from tests.differential import NUMBERS_SCHEMA

PODS = "/api/v1/namespaces/default/pods"
CMS = "/api/v1/namespaces/default/configmaps"


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "i"}], **spec},
    }


def managed(obj: dict[str, Any]) -> dict[str, Any]:
    [entry] = obj["metadata"]["managedFields"]
    fields: dict[str, Any] = entry["fieldsV1"]
    return fields


def test_pods_pass_the_priority_and_default_toleration_seconds_admission(api: Http) -> None:
    status, created = api.request("POST", PODS, pod("p"))[:2]
    assert status == 201
    spec = created["spec"]
    assert (spec["priority"], spec["preemptionPolicy"]) == (0, "PreemptLowerPriority")
    assert spec["tolerations"] == [
        {"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}
        for taint in ("not-ready", "unreachable")
    ]  # fmt: skip
    # Admission runs after the field manager: none of it is the writer's.
    assert {"f:priority", "f:preemptionPolicy", "f:tolerations"}.isdisjoint(
        managed(created)["f:spec"]
    )
    # A pod that tolerates every NoExecute taint gets none; an update keeps what admission set.
    tolerant = pod("q", tolerations=[{"operator": "Exists", "effect": "NoExecute"}])
    _, created = api.request("POST", PODS, tolerant)[:2]
    assert created["spec"]["tolerations"] == [{"operator": "Exists", "effect": "NoExecute"}]
    changed = {**created, "spec": {k: v for k, v in created["spec"].items() if k != "priority"}}
    status, updated = api.request("PUT", f"{PODS}/q", changed)[:2]
    assert status == 200 and updated["spec"]["priority"] == 0


def test_a_pods_priority_class_gives_its_priority_or_a_403(api: Http) -> None:
    classes = "/apis/scheduling.k8s.io/v1/priorityclasses"
    status, made = api.request("POST", classes, {"metadata": {"name": "high"}, "value": 1000})[:2]
    assert status == 201 and made["preemptionPolicy"] == "PreemptLowerPriority"  # defaulted
    _, created = api.request("POST", PODS, pod("p", priorityClassName="high"))[:2]
    assert created["spec"]["priority"] == 1000
    status, refused = api.request("POST", PODS, pod("q", priorityClassName="none"))[:2]
    assert status == 403 and refused["message"] == (
        'pods "q" is forbidden: no PriorityClass with name none was found'
    )
    status, refused = api.request("POST", PODS, pod("r", priorityClassName="high", priority=5))[:2]
    assert (
        status == 403
        and "the integer value of priority (5) must not be provided" in (refused["message"])
    )


def test_an_unbound_pods_deletion_is_marked_before_it_goes(srv: ApiServer, api: Http) -> None:
    """``podStrategy.CheckGracefulTermination`` gives it a period of 0, and the registry
    writes the mark all the same: MODIFIED, then DELETED."""
    rv = api.get(PODS)[1]["metadata"]["resourceVersion"]
    with api.watch(PODS, resourceVersion=rv) as watch:
        api.request("POST", PODS, pod("p", serviceAccountName="robot"))
        status, deleted = api.request("DELETE", f"{PODS}/p")[:2]
        events = watch.events(3)
    assert status == 200 and deleted["metadata"]["deletionGracePeriodSeconds"] == 0
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1]["object"]["metadata"]["deletionTimestamp"]
    assert events[2]["object"]["metadata"] == events[1]["object"]["metadata"] | {
        "resourceVersion": events[2]["object"]["metadata"]["resourceVersion"]
    }
    # The v1 conversion's alias of the service account, in the writer's fields too.
    assert events[0]["object"]["spec"]["serviceAccount"] == "robot"
    assert "f:serviceAccount" in managed(events[0]["object"])["f:spec"]
    # Other kinds are not deleted gracefully: one DELETED.
    srv.create("configmaps", {"metadata": {"name": "c"}})
    with api.watch(CMS, resourceVersion=str(srv.resource_version)) as watch:
        api.request("DELETE", f"{CMS}/c")
        assert [e["type"] for e in watch.events(1)] == ["DELETED"]


def test_namespaces_and_secrets_as_kube_apiserver_completes_them(api: Http) -> None:
    _, created = api.request("POST", "/api/v1/namespaces", {"metadata": {"name": "n"}})[:2]
    assert created["metadata"]["labels"] == {"kubernetes.io/metadata.name": "n"}
    assert created["spec"] == {"finalizers": ["kubernetes"]}
    # Defaulting's label is the writer's, the strategy's finalizer no one's.
    assert managed(created) == {
        "f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/metadata.name": {}}}
    }
    assert api.get("/api/v1/namespaces/default")[1]["spec"] == {"finalizers": ["kubernetes"]}
    _, secret = api.request(
        "POST", "/api/v1/namespaces/default/secrets", {"metadata": {"name": "s"}}
    )[:2]
    assert secret["type"] == "Opaque" and managed(secret) == {"f:type": {}}


def test_created_objects_start_with_their_go_types_empty_status(api: Http) -> None:
    labels = {"app": "w"}
    template = {"metadata": {"labels": labels}, "spec": pod("")["spec"]}
    body = {
        "metadata": {"name": "w"},
        "spec": {"selector": {"matchLabels": labels}, "template": template},
    }
    for plural, status in (("deployments", {}), ("replicasets", {"replicas": 0})):
        answer = api.request("POST", f"/apis/apps/v1/namespaces/default/{plural}", body)[1]
        assert answer["status"] == status, plural


def test_a_services_allocations_are_no_managers_and_its_selector_is_atomic(api: Http) -> None:
    service = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}}
    _, created = api.request("POST", "/api/v1/namespaces/default/services", service)[:2]
    assert created["spec"]["clusterIP"] and created["spec"]["ipFamilies"] == ["IPv4"]
    spec = managed(created)["f:spec"]
    assert spec["f:selector"] == {}
    assert {"f:clusterIP", "f:clusterIPs", "f:ipFamilies", "f:ipFamilyPolicy"}.isdisjoint(spec)
    assert "f:type" in spec and "f:sessionAffinity" in spec  # defaulted: the writer's


def test_empty_metadata_collections_are_dropped(api: Http) -> None:
    body = {"metadata": {"name": "a", "labels": {}, "annotations": {}, "finalizers": []}}
    _, created = api.request("POST", CMS, body)[:2]
    assert not {"labels", "annotations", "finalizers"} & created["metadata"].keys()
    _, patched = api.request(
        "PATCH", f"{CMS}/a", {"metadata": {"labels": {"x": "y"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )[:2]  # fmt: skip
    _, patched = api.request(
        "PATCH", f"{CMS}/a", {"metadata": {"labels": {"x": None}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )[:2]  # fmt: skip
    assert "labels" not in patched["metadata"]


def test_a_puts_name_is_checked_before_the_object_is_looked_up(api: Http) -> None:
    status, body = api.request("PUT", f"{CMS}/b", {"metadata": {"name": "a"}})[:2]
    assert status == 400
    assert body["message"] == "the name of the object (a) does not match the name on the URL (b)"


def test_an_apply_without_a_name_keeps_the_live_objects(api: Http) -> None:
    """The handler checks the name of the applied result (``checkName``)."""
    config = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}}
    status, body = api.apply(f"{CMS}/a", config, "m")
    assert status == 400
    assert body["message"] == "the name of the object () does not match the name on the URL (a)"
    api.request("POST", CMS, {"metadata": {"name": "a"}})
    status, body = api.apply(f"{CMS}/a", config, "m")
    assert status == 200 and body["data"] == {"k": "v"}
    status, body = api.apply(f"{CMS}/a", {**config, "metadata": {"name": "b"}}, "m")
    assert status == 400 and "(b) does not match the name on the URL (a)" in body["message"]


def test_a_resource_version_that_is_not_a_number(api: Http) -> None:
    """The storage's error: passed through by v1.32's watch cache (a 500 without a
    reason), wrapped by its etcd store (a list with a limit)."""
    text = 'resourceVersion: Invalid value: "x1": strconv.ParseUint: parsing "x1": invalid syntax'
    for params in ({}, {"watch": "1"}):
        status, body = api.get(CMS, resourceVersion="x1", **params)
        assert (status, body["message"], "reason" in body) == (500, text, False)
    status, body = api.get(f"{CMS}/a", resourceVersion="x1")
    assert (status, body["message"]) == (500, text)
    status, body = api.get(CMS, resourceVersion="x1", limit="5")
    assert (status, body["message"], body["reason"]) == (
        400,
        "invalid resource version: " + text,
        "BadRequest",
    )


def test_every_bad_resource_version_match_is_a_cause(api: Http) -> None:
    status, body = api.get(CMS, resourceVersionMatch="Other")
    assert status == 422
    assert body["details"] == {
        "group": "meta.k8s.io",
        "kind": "ListOptions",
        "causes": [
            {"reason": "FieldValueForbidden", "field": "resourceVersionMatch",
             "message": "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"},
            {"reason": "FieldValueNotSupported", "field": "resourceVersionMatch",
             "message": 'Unsupported value: "Other": supported values: "Exact", "NotOlderThan", ""'},
        ],
    }  # fmt: skip
    status, body = api.get(CMS, watch="1", resourceVersionMatch="Exact", sendInitialEvents="false")
    assert status == 422 and [c["message"] for c in body["details"]["causes"]] == [
        "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        'Unsupported value: "Exact": supported values: "NotOlderThan"',
    ]


def token(rv: object, start: str) -> str:
    data = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_continue_tokens_are_read_as_the_storage_reads_them(srv: ApiServer, api: Http) -> None:
    for name in ("a", "b", "c"):
        srv.create("configmaps", {"metadata": {"name": name}})
    rv = srv.resource_version
    # v1.32's watch cache (and v1.36's) writes the start key rooted: the same key.
    for start in ("b\x00", "/b\x00"):
        status, page = api.get(CMS, **{"continue": token(rv, start)})
        assert status == 200 and [i["metadata"]["name"] for i in page["items"]] == ["c"]
    prefix = "invalid continue token: continue key is not valid"
    for value, why in (
        ("garbage", ": invalid character '\\x81' looking for beginning of value"),
        ("a*b", ": illegal base64 data at input byte 1"),
        (token(0, "b"), ": incorrect encoded start resourceVersion (version meta.k8s.io/v1)"),
        (token(rv, ""), ": encoded start key empty (version meta.k8s.io/v1)"),
        (token(rv, "../x"), ": ../x"),
        (token(rv, "b/./x"), ": b/./x"),
    ):
        status, body = api.get(CMS, **{"continue": value})
        assert (status, body["message"]) == (400, prefix + why), value


def test_a_core_event_shows_its_go_types_empty_fields(api: Http) -> None:
    event = {
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Started",
    }
    _, created = api.request("POST", "/api/v1/namespaces/default/events", event)[:2]
    assert {k: created[k] for k in ("source", "firstTimestamp", "eventTime", "reportingComponent")} == {
        "source": {}, "firstTimestamp": None, "eventTime": None, "reportingComponent": ""
    }  # fmt: skip
    # An ObjectReference is atomic, and the empty fields are no one's.
    assert managed(created) == {"f:involvedObject": {}, "f:reason": {}}


def test_a_custom_resource_list_carries_an_empty_continue(srv: ApiServer, api: Http) -> None:
    widgets = srv.add_resource("example.com", "v1", "Widget", "widgets")
    srv.create(widgets, {"metadata": {"name": "w"}})
    listed = api.get("/apis/example.com/v1/namespaces/default/widgets")[1]
    assert listed["metadata"]["continue"] == ""
    # A built-in list's ListMeta omits it.
    assert "continue" not in api.get(CMS)[1]["metadata"]


WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"


def define_widgets(api: Http, schema: dict[str, Any]) -> None:
    names = {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"}
    version = {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
    crd = {
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": names,
            "versions": [version],
        },
    }
    status = api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)[0]
    assert status == 201


def widget(name: str, spec: Any) -> bytes:
    """A Widget as JSON text, which may hold integers beyond 64 bits."""
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}}
    return json.dumps({**body, "spec": spec}).encode()


def causes(answer: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["reason"], c["field"], c["message"]) for c in answer["details"]["causes"]]


def test_custom_resource_numbers_read_as_util_json_and_storage_read_them(api: Http) -> None:
    """An integer beyond int64 becomes a float64 (``convertNumber``); a float64 that
    encoding/json writes as an integer literal within int64 reads back from storage as an
    int64, in the create's answer already."""
    define_widgets(api, NUMBERS_SCHEMA)
    free = {"big": 2**64 - 1, "small": -(2**63) - 1, "max": 2**63 - 1, "e20": 1e20, "one": 1.0}
    status, made, _ = api.request("POST", WIDGETS, widget("a", {"free": free, "i": 3.0}))
    assert status == 201
    got = made["spec"]["free"]
    assert [(type(got[k]), got[k]) for k in free] == [
        (float, 2.0**64), (float, -(2.0**63)), (int, 2**63 - 1), (float, 1e20), (int, 1)
    ]  # fmt: skip
    assert type(made["spec"]["i"]) is int
    patch = json.dumps({"spec": {"free": {"big": 7.0}, "ints": [2.0, 2**64]}}).encode()
    status, patched, _ = api.request(
        "PATCH", f"{WIDGETS}/a", patch, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert status == 422  # a float64 beyond 2^53 is no JSON integer
    patch = json.dumps({"spec": {"free": {"big": 7.0}, "ints": [2.0, 2**62]}}).encode()
    status, patched, _ = api.request(
        "PATCH", f"{WIDGETS}/a", patch, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert status == 200
    assert [type(v) for v in (patched["spec"]["free"]["big"], *patched["spec"]["ints"])] == [
        int
    ] * 3


def test_custom_resource_numbers_outside_their_schemas_range(api: Http) -> None:
    """kube-openapi checks a number against the schema's type and format as
    ``strconv.FormatFloat(v, 'f', -1, 64)`` writes it (a plain error, so a field error
    without a field) besides the type check (a ``FieldValueTypeInvalid``)."""
    define_widgets(api, NUMBERS_SCHEMA)
    checked = 'Invalid value: "": Checked value must be of type integer'
    must = 'Invalid value: "number": spec.i in body must be of type integer: "number"'
    status, answer, _ = api.request("POST", WIDGETS, widget("b", {"i": 2**64 - 1}))
    assert status == 422 and causes(answer) == [
        ("FieldValueTypeInvalid", "spec.i", must),
        ("FieldValueInvalid", "<nil>", f"{checked} (default format) in spec.i"),
    ]
    status, answer, _ = api.request("POST", WIDGETS, widget("c", {"i": 2.5}))
    assert status == 422 and causes(answer) == [
        ("FieldValueTypeInvalid", "spec.i", must),
        ("FieldValueInvalid", "<nil>", f"{checked} (default format) in spec.i"),
    ]
    status, answer, _ = api.request("POST", WIDGETS, widget("c", {"i32": 2**31}))
    assert status == 422 and causes(answer) == [
        ("FieldValueInvalid", "<nil>", f"{checked} with format int32 in spec.i32")
    ]
    status, answer, _ = api.request("POST", WIDGETS, widget("c", {"i": 2**62, "i32": 2**31 - 1}))
    assert status == 201


def test_custom_resource_nulls_kept_dropped_or_defaulted_by_the_schema(api: Http) -> None:
    define_widgets(api, NUMBERS_SCHEMA)
    nulls = {"i": None, "s": None, "defaulted": None, "nullable_defaulted": None, "o": None}
    status, made, _ = api.request(
        "POST", WIDGETS, widget("e", {**nulls, "nullable": None, "free": {"x": None}})
    )
    assert status == 201
    assert made["spec"] == {
        "defaulted": "d", "nullable_defaulted": None, "nullable": None, "free": {"x": None}
    }  # fmt: skip
    status, answer, _ = api.request("POST", WIDGETS, widget("f", {"ints": [None]}))
    assert status == 422 and causes(answer) == [
        (
            "FieldValueTypeInvalid",
            "spec.ints[0]",
            'Invalid value: "null": spec.ints[0] in body must be of type integer: "null"',
        )
    ]


LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


def test_nulls_of_built_in_kinds_are_their_go_fields_zero_values(api: Http) -> None:
    """A ``null`` decodes to the Go field's zero value: an ``omitempty`` one is left out
    (and is no one's field), one without it is written; a struct is always written."""
    spec = {"holderIdentity": None, "leaseTransitions": None}
    _, lease = api.request("POST", LEASES, {"metadata": {"name": "a"}, "spec": spec})[:2]
    assert lease["spec"] == {} and "managedFields" not in lease["metadata"]
    _, lease = api.request("POST", LEASES, {"metadata": {"name": "b"}})[:2]
    assert lease["spec"] == {}  # LeaseSpec is no pointer
    status, lease = api.request("POST", LEASES, {"metadata": {"name": "c"}, "spec": None})[:2]
    assert status == 201 and lease["spec"] == {}
    meta = {"name": "a", "labels": None, "annotations": {"x": None}}
    _, cm = api.request("POST", CMS, {"metadata": meta, "data": None})[:2]
    assert "data" not in cm and "labels" not in cm["metadata"]
    assert cm["metadata"]["annotations"] == {"x": ""}  # a map's null value: a zero string
    assert managed(cm) == {"f:metadata": {"f:annotations": {".": {}, "f:x": {}}}}
    _, cm = api.request("PUT", f"{CMS}/a", {"metadata": {"name": "a"}, "data": None})[:2]
    assert "data" not in cm
    merge = {"data": {"k": "v"}, "metadata": {"annotations": None}}
    _, cm = api.request(
        "PATCH", f"{CMS}/a", merge, headers={"Content-Type": "application/merge-patch+json"}
    )[:2]
    assert "annotations" not in cm["metadata"]  # a merge patch's null removes
    patch = [{"op": "add", "path": "/data/k", "value": None}]
    _, cm = api.request(
        "PATCH", f"{CMS}/a", patch, headers={"Content-Type": "application/json-patch+json"}
    )[:2]
    assert cm["data"] == {"k": ""}  # a JSON patch's null is a value
    secret = {"metadata": {"name": "s"}, "data": {"k": None}, "stringData": None}
    _, made = api.request("POST", "/api/v1/namespaces/default/secrets", secret)[:2]
    assert made["data"] == {"k": ""}
    roles = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    _, role = api.request("POST", roles, {"metadata": {"name": "r"}})[:2]
    assert role["rules"] is None  # no omitempty: a nil slice is written null
    assert "managedFields" not in role["metadata"]  # as a new, empty ClusterRole has it


def test_a_put_creates_the_kinds_whose_strategy_allows_it(api: Http) -> None:
    """``AllowCreateOnUpdate`` (pkg/registry/coordination/lease/strategy.go, the RBAC,
    Service, Endpoints, Event and LimitRange strategies): a PUT of a missing object creates
    it, a 201; of a kind whose strategy does not allow it, a 404."""
    lease = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}
    status, made = api.request("PUT", f"{LEASES}/l", lease)[:2]
    assert status == 201 and made["spec"] == {"holderIdentity": "a"}
    assert api.get(f"{LEASES}/l")[1]["metadata"]["uid"] == made["metadata"]["uid"]
    roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles"
    assert api.request("PUT", f"{roles}/r", {"metadata": {"name": "r"}})[0] == 201
    assert api.request("PUT", f"{CMS}/c", {"metadata": {"name": "c"}})[0] == 404
    assert api.request("PUT", f"{LEASES}/m", {"metadata": {"name": "x"}})[0] == 400  # the URL's


def test_leases_and_some_other_kinds_refuse_updates_without_a_resource_version(api: Http) -> None:
    """``AllowUnconditionalUpdate`` false (the Lease, PodDisruptionBudget, webhook
    configuration, RuntimeClass, CSIDriver and APIService strategies): a PUT without
    ``metadata.resourceVersion`` is the registry's 422; built-in kinds mostly allow it."""
    _, lease = api.request("POST", LEASES, {"metadata": {"name": "l"}})[:2]
    del lease["metadata"]["resourceVersion"]
    status, body = api.request("PUT", f"{LEASES}/l", lease)[:2]
    assert status == 422 and body["message"] == (
        'leases.coordination.k8s.io "l" is invalid: metadata.resourceVersion: Invalid '
        "value: 0x0: must be specified for an update"
    )
    assert body["details"]["causes"][0]["field"] == "metadata.resourceVersion"
    budgets = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"
    _, pdb = api.request("POST", budgets, {"metadata": {"name": "b"}})[:2]
    del pdb["metadata"]["resourceVersion"]
    assert api.request("PUT", f"{budgets}/b", pdb)[0] == 422
    _, cm = api.request("POST", CMS, {"metadata": {"name": "c"}})[:2]
    del cm["metadata"]["resourceVersion"]
    assert api.request("PUT", f"{CMS}/c", cm)[0] == 200


def test_empty_slices_and_maps_are_left_out_where_go_fields_are_omitempty(api: Http) -> None:
    """kube-apiserver stores a built-in object as its Go struct encodes: an empty slice or
    map of an ``omitempty`` field is left out, and the field manager (which reads the object
    as unstructured) owns none; another field's reads back null from etcd's protobuf but is
    still the writer's. Validation sees them (an empty selector prints as sent)."""
    meta = {"name": "c", "labels": {}, "annotations": {}, "finalizers": [], "ownerReferences": []}
    status, cm = api.request("POST", CMS, {"metadata": meta, "data": {}, "binaryData": {}})[:2]
    assert status == 201 and not {"data", "binaryData"} & cm.keys()
    assert not {"labels", "managedFields"} & cm["metadata"].keys()
    status, cm = api.request("PUT", f"{CMS}/c", {**cm, "data": {}})[:2]
    assert status == 200 and "data" not in cm and "managedFields" not in cm["metadata"]
    merge = {"data": {"k": "v"}, "binaryData": {}}
    _, cm = api.request(
        "PATCH", f"{CMS}/c", merge, headers={"Content-Type": "application/merge-patch+json"}
    )[:2]
    assert cm["data"] == {"k": "v"} and "binaryData" not in cm
    assert "managedFields" not in cm["metadata"]  # an object without them stays so
    container = {"name": "c", "image": "i", "env": [], "args": [], "resources": {"limits": {}}}
    spec = {"containers": [container], "volumes": [], "nodeSelector": {}}
    _, made = api.request("POST", PODS, {"metadata": {"name": "p"}, "spec": spec})[:2]
    [got] = made["spec"]["containers"]
    assert not {"env", "args"} & got.keys() and got["resources"] == {}  # a struct stays
    assert not {"volumes", "nodeSelector"} & made["spec"].keys()
    owned = managed(made)["f:spec"]
    assert not {"f:volumes", "f:nodeSelector"} & owned.keys()
    assert owned["f:containers"]['k:{"name":"c"}']["f:resources"] == {}
    slices = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
    body = {"metadata": {"name": "e"}, "addressType": "IPv4", "endpoints": [], "ports": []}
    _, made = api.request("POST", slices, body)[:2]
    assert (made["endpoints"], made["ports"]) == (None, None)
    assert managed(made) == {"f:addressType": {}, "f:endpoints": {}, "f:ports": {}}
    selector: dict[str, Any] = {"matchLabels": {}, "matchExpressions": []}
    template = {"metadata": {"labels": {"a": "b"}}, "spec": spec}
    deployments = "/apis/apps/v1/namespaces/default/deployments"
    body = {"metadata": {"name": "d"}, "spec": {"selector": selector, "template": template}}
    status, refused = api.request("POST", deployments, body)[:2]
    assert status == 422 and "MatchLabels:map[string]string{}, MatchExpressions:" \
        "[]v1.LabelSelectorRequirement{}" in refused["message"]  # fmt: skip


def test_nulls_in_a_pod_are_zero_values(api: Http) -> None:
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
        "securityContext": None,
        "containers": [container],
    }
    status, made = api.request("POST", PODS, {"metadata": {"name": "p"}, "spec": spec})[:2]
    assert status == 201
    [got] = made["spec"]["containers"]
    assert "command" not in got and got["args"] == ["", "x"]
    assert got["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert got["env"] == [{"name": "E"}]
    assert got["resources"] == {"limits": {"cpu": "0"}, "requests": {"cpu": "0"}}
    assert not {"nodeName", "hostNetwork"} & made["spec"].keys()
    assert made["spec"]["securityContext"] == {}  # defaulted
    fields = managed(made)["f:spec"]
    assert "f:nodeName" not in fields and "f:hostNetwork" not in fields
    assert "f:args" in fields["f:containers"]['k:{"name":"c"}']


def test_a_templates_zero_creation_timestamp_is_null_as_in_v1_32(api: Http) -> None:
    """v1.34 leaves it out (``omitzero``); v1.32 writes a zero ``metav1.Time`` as null."""
    template = {"metadata": {"labels": {"a": "b"}}, "spec": pod("")["spec"]}
    spec = {"selector": {"matchLabels": {"a": "b"}}, "template": template, "strategy": None}
    deployments = "/apis/apps/v1/namespaces/default/deployments"
    _, made = api.request("POST", deployments, {"metadata": {"name": "d"}, "spec": spec})[:2]
    assert made["spec"]["template"]["metadata"] == {"labels": {"a": "b"}, "creationTimestamp": None}
    assert made["spec"]["strategy"]["type"] == "RollingUpdate"  # a null struct, then defaulted


def test_applied_nulls_are_the_managers_fields_and_go_zero_values(api: Http) -> None:
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a"},
        "data": None,
    }
    status, made = api.apply(f"{CMS}/a", config, "m")
    assert status == 201 and "data" not in made
    assert managed(made) == {"f:data": {}}
    config = {**config, "data": {"k": None, "j": "x"}}
    status, made = api.apply(f"{CMS}/a", config, "m")
    assert made["data"] == {"j": "x", "k": ""}
    assert managed(made) == {"f:data": {"f:j": {}, "f:k": {}}}


def test_integers_beyond_a_built_in_fields_range_do_not_decode(api: Http) -> None:
    prefix = 'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal number'
    field = "into Go struct field LeaseSpec.spec.leaseTransitions of type int32"
    for number, shown in ((2**64 - 1, str(2**64 - 1)), (2**70, str(2**70)), (1.0, "1.0")):
        body = json.dumps({"metadata": {"name": "a"}, "spec": {"leaseTransitions": number}})
        status, answer = api.request("POST", LEASES, body.encode())[:2]
        assert (status, answer["message"]) == (400, f"{prefix} {shown} {field}")
    spec = {**pod("p")["spec"], "activeDeadlineSeconds": 2**63}
    body = json.dumps({"metadata": {"name": "p"}, "spec": spec})
    status, answer = api.request("POST", PODS, body.encode())[:2]
    assert (status, answer["message"]) == (
        400,
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal number '
        f"{2**63} into Go struct field PodSpec.spec.activeDeadlineSeconds of type int64",
    )
