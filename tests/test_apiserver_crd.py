"""The CustomResourceDefinition API of rxkube.testing.ApiServer, over HTTP.

Each test names the kube-apiserver behaviour it checks and where it is in the Kubernetes
source (kubernetes/apiextensions-apiserver unless said otherwise).
"""

from __future__ import annotations

import copy
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rxkube.errors import ApiError, ConfigError
from rxkube.testing import ApiServer
from tests.apiserver_http import Http

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"

WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "color": {"type": "string", "enum": ["red", "green"], "default": "red"},
                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "replicas": {"type": "integer"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {
                        "spec": {"type": "object", "properties": {"x": {"type": "string"}}}
                    },
                },
            },
        },
        "status": {
            "type": "object",
            "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"}},
        },
    },
}


def widget_crd(**version: Any) -> dict[str, Any]:
    """A definition of ``widgets.example.com`` (namespaced, status and scale subresources)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": copy.deepcopy(WIDGET_SCHEMA)},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}
                    ],
                    **version,
                }
            ],
        },
    }


def widget(name: str = "w", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 3, **spec},
    }


@pytest.fixture
def defined(api: Http) -> Http:
    status, body, _ = api.request("POST", CRDS, widget_crd())
    assert status == 201, body
    return api


def causes(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in body["details"]["causes"]]


# --------------------------------------------------------------- the definitions


def test_created_definition_is_established_and_served(api: Http) -> None:
    """A new definition's status is reset to its stored version (strategy.go
    ``PrepareForCreate``; v1 ``SetDefaults_CustomResourceDefinition``); the naming and
    establishing controllers then accept its names (naming_controller.go
    ``calculateNamesAndConditions``, establishing_controller.go), and the resource is
    served with the v1 defaults (singular, listKind, conversion None)."""
    status, created, _ = api.request("POST", CRDS, widget_crd())
    assert status == 201
    assert created["status"] == {
        "acceptedNames": {"plural": "", "kind": ""},
        "storedVersions": ["v1"],
    }
    spec = created["spec"]
    assert spec["names"]["singular"] == "widget" and spec["names"]["listKind"] == "WidgetList"
    assert spec["conversion"] == {"strategy": "None"}
    status, crd = api.get(f"{CRDS}/widgets.example.com")
    assert status == 200
    assert crd["status"]["acceptedNames"] == {
        "plural": "widgets",
        "singular": "widget",
        "shortNames": ["wd"],
        "kind": "Widget",
        "listKind": "WidgetList",
    }
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert (conditions["NamesAccepted"]["status"], conditions["NamesAccepted"]["reason"]) == (
        "True",
        "NoConflicts",
    )
    assert conditions["Established"]["status"] == "True"
    assert conditions["Established"]["reason"] == "InitialNamesAccepted"
    assert conditions["Established"]["message"] == "the initial names have been accepted"
    status, groups = api.get("/apis")
    assert {"name": "example.com", "versions": [{"groupVersion": "example.com/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "example.com/v1", "version": "v1"}} in groups["groups"]  # fmt: skip
    status, resources = api.get("/apis/example.com/v1")
    names = {r["name"]: r for r in resources["resources"]}
    assert set(names) == {"widgets", "widgets/status", "widgets/scale"}
    assert names["widgets"]["shortNames"] == ["wd"] and names["widgets"]["namespaced"] is True
    assert (names["widgets/scale"]["group"], names["widgets/scale"]["kind"]) == (
        "autoscaling",
        "Scale",
    )
    status, listed = api.get(WIDGETS)
    assert (status, listed["kind"], listed["items"]) == (200, "WidgetList", [])


def test_crd_api_is_discovered_like_kube_apiserver(api: Http) -> None:
    """``apiextensions.k8s.io/v1`` serves ``customresourcedefinitions``: cluster-scoped,
    short names ``crd``/``crds``, with a status subresource (pkg/registry/
    customresourcedefinition/etcd.go ``ShortNames``, ``StatusREST``)."""
    status, resources = api.get("/apis/apiextensions.k8s.io/v1")
    assert status == 200
    names = {r["name"]: r for r in resources["resources"]}
    crds = names["customresourcedefinitions"]
    assert crds["namespaced"] is False and crds["shortNames"] == ["crd", "crds"]
    assert crds["kind"] == "CustomResourceDefinition"
    assert "customresourcedefinitions/status" in names


def test_name_must_be_plural_dot_group(api: Http) -> None:
    """``ValidateCustomResourceDefinition``'s name rule (validation.go):
    ``must be spec.names.plural+"."+spec.group``."""
    crd = widget_crd()
    crd["metadata"]["name"] = "gadgets.example.com"
    status, body, _ = api.request("POST", CRDS, crd)
    assert status == 422
    assert body["message"] == (
        'CustomResourceDefinition.apiextensions.k8s.io "gadgets.example.com" is invalid: '
        'metadata.name: Invalid value: "gadgets.example.com": must be spec.names.plural+"."+spec.group'
    )
    assert body["details"]["kind"] == "CustomResourceDefinition"


def test_definition_spec_is_validated_with_kube_apiserver_messages(api: Http) -> None:
    """``validateCustomResourceDefinitionSpec``: group a domain with a dot, scope one of
    two, a schema per version, exactly one storage version, scale paths under
    ``.spec``/``.status``, printer column types (validation.go)."""
    crd = widget_crd()
    crd["metadata"]["name"] = "widgets.example"
    spec = crd["spec"]
    spec["group"] = "example"
    spec["scope"] = "Everywhere"
    version = spec["versions"][0]
    version["storage"] = False
    del version["schema"]
    version["subresources"]["scale"]["specReplicasPath"] = ".replicas"
    version["additionalPrinterColumns"][0]["type"] = "float"
    status, body, _ = api.request("POST", CRDS, crd)
    assert status == 422
    assert causes(body) == [
        ("spec.group", 'Invalid value: "example": should be a domain with at least one dot'),
        ("spec.scope", 'Unsupported value: "Everywhere": supported values: "Cluster", "Namespaced"'),
        ("spec.versions[0].schema.openAPIV3Schema", "Required value"),
        ("spec.versions[0].subresources.scale.specReplicasPath",
         'Invalid value: ".replicas": should be a json path under .spec'),
        ("spec.versions[0].additionalPrinterColumns[0].type",
         'Invalid value: "float": must be one of boolean,date,integer,number,string'),
        ("spec.versions", 'Invalid value: []apiextensions.CustomResourceDefinitionVersion{'
         'apiextensions.CustomResourceDefinitionVersion{Name:"v1", Served:true, Storage:false, ...}}: '
         "must have exactly one version marked as storage version"),
        ("status.storedVersions", "Invalid value: []string{}: must have at least one stored version"),
    ]  # fmt: skip


def test_schema_must_be_structural(api: Http) -> None:
    """``validateStructuralInvariants`` (pkg/apiserver/schema/validation.go): every specified
    field has a type, arrays have items, metadata may only restrict name and generateName;
    the errors are sorted by message."""
    crd = widget_crd()
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = {
        "type": "object",
        "properties": {
            "spec": {"properties": {"list": {"type": "array"}}},
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
        },
    }
    status, body, _ = api.request("POST", CRDS, crd)
    assert status == 422
    root = "spec.versions[0].schema.openAPIV3Schema"
    assert causes(body) == [
        (f"{root}.properties[metadata]",
         "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"),
        (f"{root}.properties[spec].properties[list].items", "Required value: must be specified"),
        (f"{root}.properties[spec].type", "Required value: must not be empty for specified object fields"),
    ]  # fmt: skip


def test_update_adds_a_version_and_changes_the_schema(defined: Http) -> None:
    """Updating a definition serves a new version at once and validates with the new
    schema (customresource_handler.go re-creates the serving info on every change);
    a new storage version joins ``status.storedVersions`` (strategy.go
    ``PrepareForUpdate``); group and plural stay immutable
    (``validateCustomResourceDefinitionSpecUpdate``)."""
    api = defined
    _, crd = api.get(f"{CRDS}/widgets.example.com")
    v1 = crd["spec"]["versions"][0]
    v1["storage"] = False
    v2 = copy.deepcopy(v1)
    v2.update(name="v2", storage=True)
    v2["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"]["maximum"] = 100
    crd["spec"]["versions"].append(v2)
    status, updated, _ = api.request("PUT", f"{CRDS}/widgets.example.com", crd)
    assert status == 200, updated
    assert updated["status"]["storedVersions"] == ["v1", "v2"]
    assert updated["metadata"]["generation"] == 2
    status, body, _ = api.request("POST", "/apis/example.com/v2/namespaces/default/widgets",
                                  {**widget(size=50), "apiVersion": "example.com/v2"})  # fmt: skip
    assert status == 201, body
    status, body, _ = api.request("POST", WIDGETS, widget("x", size=50))
    assert status == 422
    updated["spec"]["group"] = "example.org"
    status, body, _ = api.request("PUT", f"{CRDS}/widgets.example.com", updated)
    assert status == 422
    assert ("spec.group", 'Invalid value: "example.org": field is immutable') in causes(body)


def test_versions_share_storage_and_convert_apiversion(defined: Http) -> None:
    """Conversion strategy None rewrites only ``apiVersion`` (conversion/nop_converter.go);
    objects are stored in the storage version and read in the version asked for, on
    gets, lists and watches alike."""
    api = defined
    _, crd = api.get(f"{CRDS}/widgets.example.com")
    beta = copy.deepcopy(crd["spec"]["versions"][0])
    beta.update(name="v1beta1", storage=False)
    crd["spec"]["versions"].append(beta)
    assert api.request("PUT", f"{CRDS}/widgets.example.com", crd)[0] == 200
    beta_path = "/apis/example.com/v1beta1/namespaces/default/widgets"
    with api.watch(beta_path, timeout=10) as watch:
        status, created, _ = api.request(
            "POST", beta_path, {**widget(), "apiVersion": "example.com/v1beta1"}
        )
        assert status == 201 and created["apiVersion"] == "example.com/v1beta1"
        event = watch.next()
        assert (event["type"], event["object"]["apiVersion"]) == ("ADDED", "example.com/v1beta1")
    status, stored = api.get(f"{WIDGETS}/w")
    assert (status, stored["apiVersion"]) == (200, "example.com/v1")
    _, listed = api.get(beta_path)
    assert listed["apiVersion"] == "example.com/v1beta1"
    assert [i["apiVersion"] for i in listed["items"]] == ["example.com/v1beta1"]


def test_names_taken_in_the_group_are_not_accepted(defined: Http) -> None:
    """The naming controller refuses a kind another definition of the group accepted;
    each name is checked in turn and the last conflict is reported (here the listKind
    ``WidgetList``, defaulted from the kind): ``NamesAccepted`` False, and
    ``Established`` False ``NotAccepted`` (naming_controller.go)."""
    api = defined
    crd = widget_crd()
    crd["metadata"]["name"] = "gadgets.example.com"
    crd["spec"]["names"] = {"plural": "gadgets", "kind": "Widget"}
    assert api.request("POST", CRDS, crd)[0] == 201
    _, gadgets = api.get(f"{CRDS}/gadgets.example.com")
    conditions = {c["type"]: c for c in gadgets["status"]["conditions"]}
    assert conditions["NamesAccepted"]["status"] == "False"
    assert conditions["NamesAccepted"]["reason"] == "ListKindConflict"
    assert conditions["NamesAccepted"]["message"] == '"WidgetList" is already in use'
    assert (conditions["Established"]["status"], conditions["Established"]["reason"]) == (
        "False",
        "NotAccepted",
    )
    assert api.get("/apis/example.com/v1/namespaces/default/gadgets")[0] == 404


def test_deleting_a_definition_deletes_its_objects_and_ends_watches(defined: Http) -> None:
    """Deleting a definition adds the ``customresourcecleanup.apiextensions.k8s.io``
    finalizer and ``Terminating`` (customresourcedefinition/etcd.go ``REST.Delete``); the
    finalizer controller deletes every custom resource (finalizer/crd_finalizer.go), an
    object with finalizers holding the definition until they are removed; then the
    definition goes, discovery stops listing the resource and its watches end. Creates
    meanwhile are forbidden (customresource_handler.go ``forbidCreateAdmission``)."""
    api = defined
    assert api.request("POST", WIDGETS, widget("a"))[0] == 201
    held = widget("b")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    assert api.request("POST", WIDGETS, held)[0] == 201
    with api.watch(WIDGETS, timeout=10, resourceVersion="1") as watch:
        watch.events(2)  # the two ADDED
        status, deleting, _ = api.request("DELETE", f"{CRDS}/widgets.example.com")
        assert status == 200
        assert deleting["metadata"]["finalizers"] == ["customresourcecleanup.apiextensions.k8s.io"]
        assert "deletionTimestamp" in deleting["metadata"]
        gone = watch.next()
        assert (gone["type"], gone["object"]["metadata"]["name"]) == ("DELETED", "a")
        marked = watch.next()
        assert marked["type"] == "MODIFIED" and "deletionTimestamp" in marked["object"]["metadata"]
        _, crd = api.get(f"{CRDS}/widgets.example.com")
        terminating = {c["type"]: c for c in crd["status"]["conditions"]}["Terminating"]
        assert (terminating["status"], terminating["reason"]) == (
            "True",
            "InstanceDeletionInProgress",
        )
        status, body, _ = api.request("POST", WIDGETS, widget("late"))
        assert (status, body["reason"]) == (403, "Forbidden")
        assert body["message"] == (
            'widgets.example.com "late" is forbidden: create not allowed while custom resource '
            "definition is terminating"
        )
        _, b = api.get(f"{WIDGETS}/b")
        b["metadata"]["finalizers"] = []
        assert api.request("PUT", f"{WIDGETS}/b", b)[0] == 200
        assert watch.next()["type"] == "DELETED"
        assert watch.ended()
    assert api.get(f"{CRDS}/widgets.example.com")[0] == 404
    assert api.get("/apis/example.com/v1")[0] == 404
    assert "example.com" not in [g["name"] for g in api.get("/apis")[1]["groups"]]
    assert api.get(WIDGETS)[0] == 404


def test_add_resource_creates_a_definition(srv: ApiServer, api: Http) -> None:
    """``srv.add_resource`` is a shorthand for creating a definition: it is listed, and
    its objects keep every field (``x-kubernetes-preserve-unknown-fields``)."""
    widgets = srv.add_resource("example.com", "v1", "Widget", "widgets", short_names=["wd"])
    assert srv.add_resource("example.com", "v1", "Widget", "widgets", short_names=["wd"]) == widgets
    status, crd = api.get(f"{CRDS}/widgets.example.com")
    assert status == 200 and crd["spec"]["names"]["shortNames"] == ["wd"]
    srv.create(widgets, {"metadata": {"name": "w"}, "spec": {"anything": {"goes": 1}}})
    assert api.get(f"{WIDGETS}/w")[1]["spec"] == {"anything": {"goes": 1}}
    gadgets = srv.add_resource("example.com", "v2", "Widget", "widgets", short_names=["wd"])
    assert gadgets.version == "v2"
    assert api.get("/apis/example.com/v2/namespaces/default/widgets/w")[0] == 200
    with pytest.raises(ValueError, match="already defined"):
        srv.add_resource("example.com", "v1", "Widget", "widgets", namespaced=False)


# --------------------------------------------------------------- custom objects


def test_objects_are_validated_against_the_schema(defined: Http) -> None:
    """``ValidateCustomResource`` turns kube-openapi's errors into field errors
    (pkg/apiserver/validation/validation.go ``kubeOpenAPIResultToFieldErrors``; messages
    from kube-openapi pkg/validation/errors/schema.go): types, bounds, patterns, lengths,
    enums, item counts, map values, int-or-string and required fields."""
    api = defined
    bad = widget(
        "w", size=20, color="blue", tags=["a", "b", "c"], labels={"k": 1}, port=True,
    )  # fmt: skip
    bad["spec"]["name"] = "ABCDEFG"
    del bad["spec"]["size"]
    bad["spec"]["replicas"] = "two"
    status, body, _ = api.request("POST", WIDGETS, bad)
    assert status == 422
    assert causes(body) == [
        ("spec.color", 'Unsupported value: "blue": supported values: "red", "green"'),
        ("spec.labels.k", 'Invalid value: "integer": spec.labels.k in body must be of type string: "integer"'),
        ("spec.name", "Too long: may not be more than 5 bytes"),
        ("spec.name", "Invalid value: \"ABCDEFG\": spec.name in body should match '^[a-z]+$'"),
        ("spec.port", 'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"'),
        ("spec.replicas", 'Invalid value: "string": spec.replicas in body must be of type integer: "string"'),
        ("spec.tags", "Too many: 3: must have at most 2 items"),
        ("spec.size", "Required value"),
        (".spec.replicas", "Invalid value: 0: .spec.replicas accessor error: two is of the type string, expected int64"),
    ]  # fmt: skip
    assert body["message"].startswith('Widget.example.com "w" is invalid: [spec.color: Unsupported')
    assert body["details"] == {
        **body["details"],
        "group": "example.com",
        "kind": "Widget",
        "name": "w",
    }
    status, body, _ = api.request("POST", WIDGETS, widget(size=0))
    assert status == 422
    assert body["message"] == (
        'Widget.example.com "w" is invalid: spec.size: Invalid value: 0: '
        "spec.size in body should be greater than or equal to 1"
    )
    status, ok, _ = api.request("POST", WIDGETS, widget(port="http", note=None, size=2.0))
    assert status == 201, ok
    assert ok["spec"]["note"] is None


def test_unknown_fields_are_pruned(defined: Http) -> None:
    """Pruning drops what the schema does not specify (pkg/apiserver/schema/pruning/
    algorithm.go), keeps ``apiVersion``/``kind``/``metadata`` at the root and in an
    ``x-kubernetes-embedded-resource``, and keeps everything below
    ``x-kubernetes-preserve-unknown-fields``; non-nullable nulls go too
    (defaulting/prunenulls.go)."""
    api = defined
    obj = widget(
        extra=1, labels={"a": "b"}, free={"deep": {"x": 1}},
        template={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": "y", "z": 1}},
    )  # fmt: skip
    obj["spec"]["name"] = None
    obj["top"] = True
    obj["status"] = {"replicas": 1}
    status, created, _ = api.request("POST", WIDGETS, obj)
    assert status == 201, created
    assert "top" not in created and "status" not in created
    assert created["spec"] == {
        "size": 3,
        "color": "red",
        "labels": {"a": "b"},
        "free": {"deep": {"x": 1}},
        "template": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"x": "y"},
        },
    }


def test_pruned_fields_are_warned_or_refused_by_field_validation(defined: Http) -> None:
    """The fields pruning drops are the decoder's unknown fields (customresource_handler.go
    ``schemaCoercingDecoder``): a ``Warning`` header each under ``fieldValidation=Warn``
    (the default), a 400 strict decoding error under ``Strict`` (422 on ``patch`` for a
    patch), nothing under ``Ignore``."""
    api = defined
    obj = widget(extra=1)
    obj["top"] = True
    status, _, response = api.request("POST", WIDGETS, obj)
    assert status == 201
    assert response.getheader("Warning") == (
        '299 - "unknown field \\"spec.extra\\"", 299 - "unknown field \\"top\\""'
    )
    status, body, _ = api.request("POST", WIDGETS, widget("s", extra=1), fieldValidation="Strict")
    assert status == 400
    assert body["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: '
        'unknown field "spec.extra"'
    )
    status, _, response = api.request(
        "POST", WIDGETS, widget("i", extra=1), fieldValidation="Ignore"
    )
    assert status == 201 and response.getheader("Warning") is None
    status, body, _ = api.request(
        "PATCH", f"{WIDGETS}/i", {"spec": {"extra": 2}}, headers={"Content-Type": "application/merge-patch+json"},
        fieldValidation="Strict",
    )  # fmt: skip
    assert status == 422 and body["details"]["causes"][0]["field"] == "patch"
    assert 'strict decoding error: unknown field "spec.extra"' in body["message"]


def test_defaults_apply_on_create_update_and_patch(defined: Http) -> None:
    """Defaults fill missing fields on every write (defaulting/algorithm.go ``Default``,
    run by the request decoder in customresource_handler.go)."""
    api = defined
    _, created, _ = api.request("POST", WIDGETS, widget())
    assert created["spec"]["color"] == "red"
    created["spec"].pop("color")
    _, updated, _ = api.request("PUT", f"{WIDGETS}/w", created)
    assert updated["spec"]["color"] == "red"
    status, patched, _ = api.request(
        "PATCH", f"{WIDGETS}/w", {"spec": {"color": None}},
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert status == 200 and patched["spec"]["color"] == "red"


def _set_size_default(api: Http, size: int | None) -> None:
    """Give ``spec.size`` of the widgets' schema a default (None: none)."""
    _, crd = api.get(f"{CRDS}/widgets.example.com")
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    spec.pop("required", None)
    spec["properties"]["size"].pop("default", None)
    if size is not None:
        spec["properties"]["size"]["default"] = size
    status, body, _ = api.request("PUT", f"{CRDS}/widgets.example.com", crd)
    assert status == 200, body


def test_defaults_added_later_apply_when_reading_what_was_stored(defined: Http) -> None:
    """Objects stored before a default was added read with it on get, list and watch
    (the storage codec of customresource_handler.go's ``crdConversionRESTOptionsGetter``
    runs ``unstructuredDefaulter`` on every object it decodes), and a field selector sees
    it; what is stored does not change, so the default goes again with the schema's."""
    api = defined
    _, crd = api.get(f"{CRDS}/widgets.example.com")
    crd["spec"]["versions"][0]["selectableFields"] = [{"jsonPath": ".spec.size"}]
    assert api.request("PUT", f"{CRDS}/widgets.example.com", crd)[0] == 200
    _set_size_default(api, None)
    _, created, _ = api.request("POST", WIDGETS, {**widget(), "spec": {}})
    assert created["spec"] == {"color": "red"}
    created_rv = int(created["metadata"]["resourceVersion"])
    _set_size_default(api, 4)
    status, got = api.get(f"{WIDGETS}/w")
    assert status == 200 and got["spec"] == {"color": "red", "size": 4}
    assert got["metadata"]["resourceVersion"] == str(created_rv)
    _, listed = api.get(WIDGETS, fieldSelector="spec.size=4")
    assert [item["spec"] for item in listed["items"]] == [{"color": "red", "size": 4}]
    with api.watch(WIDGETS) as watch:
        assert watch.next()["object"]["spec"] == {"color": "red", "size": 4}
    with api.watch(WIDGETS, resourceVersion=str(created_rv - 1)) as watch:
        event = watch.next()
        assert (event["type"], event["object"]["spec"]) == ("ADDED", {"color": "red", "size": 4})
    _set_size_default(api, None)
    assert api.get(f"{WIDGETS}/w")[1]["spec"] == {"color": "red"}


def test_writes_start_from_the_object_as_read(defined: Http) -> None:
    """An update reads the stored object through the storage codec, defaults included: a
    JSON patch can test a field only a default set, a deletion's last state carries it,
    and an update that leaves the read object as it was still writes the default."""
    api = defined
    _set_size_default(api, None)
    _, created, _ = api.request("POST", WIDGETS, {**widget(), "spec": {}})
    _set_size_default(api, 4)
    status, patched, _ = api.request(
        "PATCH", f"{WIDGETS}/w", [{"op": "test", "path": "/spec/size", "value": 4}],
        headers={"Content-Type": "application/json-patch+json"},
    )  # fmt: skip
    assert status == 200, patched
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    _set_size_default(api, None)
    assert api.get(f"{WIDGETS}/w")[1]["spec"] == {"color": "red", "size": 4}
    api.request("POST", WIDGETS, {**widget("old"), "spec": {}})
    _set_size_default(api, 6)
    with api.watch(WIDGETS) as watch:
        watch.events(2)
        assert api.request("DELETE", f"{WIDGETS}/old")[0] == 200
        event = watch.next()
        assert (event["type"], event["object"]["spec"]["size"]) == ("DELETED", 6)


def test_a_deleted_custom_resource_is_answered_with_a_status(defined: Http) -> None:
    """registry/customresource/etcd.go sets no ``ReturnDeletedObject``: a delete that
    removes the object answers a ``Status`` (and the published API says so); one that
    leaves it marked, for its finalizers, answers the object."""
    api = defined
    _, created, _ = api.request("POST", WIDGETS, widget())
    status, body, _ = api.request("DELETE", f"{WIDGETS}/w")
    assert status == 200 and body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": "w",
            "group": "example.com",
            "kind": "widgets",
            "uid": created["metadata"]["uid"],
        },
    }
    held = widget("h")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    api.request("POST", WIDGETS, held)
    status, body, _ = api.request("DELETE", f"{WIDGETS}/h")
    assert status == 200 and body["kind"] == "Widget" and body["metadata"]["deletionTimestamp"]
    _, published = api.get("/openapi/v3/apis/example.com/v1")
    delete = published["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]
    schema = delete["delete"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Status"}


def test_finalizers_a_write_adds_are_warned_of_unless_qualified(defined: Http) -> None:
    """registry/customresource/strategy.go ``generateWarningsFromObj``: each finalizer a
    create or an update adds, in order, is warned of when it has no ``/`` and is not a
    standard one; one that was there already is not."""
    api = defined
    prefer = (
        "prefer a domain-qualified finalizer name to avoid accidental conflicts with other "
        "finalizer writers"
    )
    body = widget()
    body["metadata"]["finalizers"] = ["x", "example.com/y", "orphan"]
    status, created, response = api.request("POST", WIDGETS, body)
    assert status == 201
    assert response.msg.get_all("Warning") == [f'299 - "metadata.finalizers: \\"x\\": {prefer}"']
    created["metadata"]["finalizers"] += ["z", "w"]
    status, _, response = api.request("PUT", f"{WIDGETS}/w", created)
    assert status == 200
    assert response.msg.get_all("Warning") == [
        f'299 - "metadata.finalizers: \\"{name}\\": {prefer}"' for name in ("w", "z")
    ]
    status, _, response = api.request(
        "PATCH", f"{WIDGETS}/w", {"spec": {"size": 4}},
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert status == 200 and response.msg.get_all("Warning") is None


def test_status_subresource_splits_spec_and_status(defined: Http) -> None:
    """With a status subresource the main endpoint ignores status and ``/status`` ignores
    everything else (registry/customresource/strategy.go ``PrepareForUpdate``,
    status_strategy.go); both validate against the schema."""
    api = defined
    _, created, _ = api.request("POST", WIDGETS, widget())
    created["status"] = {"replicas": 2}
    created["spec"]["size"] = 4
    _, updated, _ = api.request("PUT", f"{WIDGETS}/w", created)
    assert "status" not in updated and updated["spec"]["size"] == 4
    updated["status"] = {"replicas": 2}
    updated["spec"]["size"] = 9
    status, after, _ = api.request("PUT", f"{WIDGETS}/w/status", updated)
    assert status == 200
    assert after["status"] == {"replicas": 2} and after["spec"]["size"] == 4
    after["status"] = {"replicas": "x"}
    status, body, _ = api.request("PUT", f"{WIDGETS}/w/status", after)
    assert status == 422 and causes(body)[0][0] == "status.replicas"


def test_definition_changes_under_concurrent_writes(srv: ApiServer) -> None:
    """Writers create and update custom resources from several threads, with random
    delays, while another thread adds a version to the definition and then deletes it:
    every write succeeds or is refused with a Status (never a hang, a traceback or a
    deadlock of the store's after-release work), and at the end nothing of the resource
    is served or stored."""
    srv.create("customresourcedefinitions", widget_crd())
    rng = random.Random(18)
    delays = [[rng.random() * 0.004 for _ in range(40)] for _ in range(4)]
    pause = threading.Event()
    failures: list[BaseException] = []

    def writer(worker: int) -> None:
        for index, delay in enumerate(delays[worker]):
            pause.wait(delay)  # a random delay between writes, never a wait for a result
            try:
                srv.create("widgets.example.com", widget(f"w{worker}-{index}"))
                srv.patch("widgets.example.com", f"w{worker}-{index}", {"spec": {"size": 2}})
            except (ApiError, ConfigError):
                pass  # 403 while terminating, 404 once gone, or the resource unserved
            except BaseException as exc:
                failures.append(exc)

    def definer() -> None:
        pause.wait(0.02)
        crd = srv.get("customresourcedefinitions", "widgets.example.com")
        beta = copy.deepcopy(crd["spec"]["versions"][0])
        beta.update(name="v1beta1", storage=False)
        crd["spec"]["versions"].append(beta)
        srv.replace("customresourcedefinitions", crd)
        pause.wait(0.05)
        srv.delete("customresourcedefinitions", "widgets.example.com")

    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(writer, worker) for worker in range(4)]
        futures.append(pool.submit(definer))
        for future in futures:
            future.result(timeout=60)
    assert failures == []
    with pytest.raises(ApiError):
        srv.get("customresourcedefinitions", "widgets.example.com")
    assert [s for s in srv.store.served() if s.resource.group == "example.com"] == []
    with pytest.raises(ConfigError):
        srv.list("widgets.example.com")
