"""OpenAPI documents and strict field decoding of the test API server, as kube-apiserver v1.32.

The documents follow kube-openapi's handlers (``pkg/handler3/handler.go``: the v3
discovery document of ``serverRelativeURL`` with a SHA-512 ``hash``, a 301 to the
current hash, ``Cache-Control: public, immutable`` when one is given) and what kubectl
reads from them (``cli-runtime/pkg/resource/query_param_verifier_v3.go``: the kind's
PATCH operation carries ``x-kubernetes-group-version-kind`` and a ``fieldValidation``
parameter). The strict-decoding messages are those of kube-apiserver's integration test
``test/integration/apiserver/field_validation_test.go``, on its own bodies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from rxkube.resource import BUILTIN_RESOURCES, Resource
from rxkube.testing import ApiServer
from rxkube.testing._openapi import builtin_definition, definitions
from rxkube.testing._served import ServedResource
from tests.apiserver_http import Http

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"

# field_validation_test.go's invalidBodyJSON: repeated, unknown and nested unknown fields.
INVALID_BODY = b"""
{
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "dupename",
        "name": "%s",
        "labels": {"app": "nginx"},
        "unknownMeta": "metaVal"
    },
    "spec": {
        "unknown1": "val1",
        "unknownDupe": "valDupe",
        "unknownDupe": "valDupe2",
        "paused": true,
        "paused": false,
        "selector": {"matchLabels": {"app": "nginx"}},
        "template": {
            "metadata": {"labels": {"app": "nginx"}},
            "spec": {
                "containers": [{
                    "name":  "nginx",
                    "image": "nginx:latest",
                    "unknownNested": "val1",
                    "imagePullPolicy": "Always",
                    "imagePullPolicy": "Never"
                }]
            }
        }
    }
}
"""
INVALID_FINDINGS = [
    'duplicate field "metadata.name"',
    'unknown field "metadata.unknownMeta"',
    'unknown field "spec.unknown1"',
    'unknown field "spec.unknownDupe"',
    'duplicate field "spec.paused"',
    'unknown field "spec.template.spec.containers[0].unknownNested"',
    'duplicate field "spec.template.spec.containers[0].imagePullPolicy"',
]
MERGE_PATCH = b"""
{
    "spec": {
        "unknown1": "val1",
        "unknownDupe": "valDupe",
        "unknownDupe": "valDupe2",
        "paused": true,
        "paused": false,
        "template": {
            "spec": {
                "containers": [{
                    "name": "nginx",
                    "image": "nginx:latest",
                    "unknownNested": "val1",
                    "imagePullPolicy": "Always",
                    "imagePullPolicy": "Never"
                }]
            }
        }
    }
}
"""
PATCH_FINDINGS = [
    'duplicate field "spec.unknownDupe"',
    'duplicate field "spec.paused"',
    'duplicate field "spec.template.spec.containers[0].imagePullPolicy"',
    'unknown field "spec.template.spec.containers[0].unknownNested"',
    'unknown field "spec.unknown1"',
    'unknown field "spec.unknownDupe"',
]


def deployment(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": "nginx"}},
        "spec": {
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]},
            },
            **spec,
        },
    }


def warnings(response: Any) -> list[str]:
    """The texts of a response's ``Warning: 299 - "..."`` headers."""
    texts = []
    for header in response.headers.get_all("Warning") or []:
        code, agent, quoted = header.split(" ", 2)
        assert (code, agent) == ("299", "-")
        texts.append(json.loads(quoted))
    return texts


# ---------------------------------------------------------------- documents


def test_shipped_definitions_load_and_cover_every_builtin_kind() -> None:
    defs = definitions()
    for res in BUILTIN_RESOURCES:
        name = builtin_definition(res.group, res.version, res.kind)
        assert name is not None and name in defs, res
    for schema in defs.values():  # every ref resolves within the shipped subset
        for ref in _refs(schema):
            assert ref in defs, ref


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"].removeprefix("#/definitions/")
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_openapi_v3_lists_each_group_version_with_the_hash_of_its_document(api: Http) -> None:
    status, root, _ = api.request("GET", "/openapi/v3")
    assert status == 200
    assert {"api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1"} <= set(root["paths"])
    url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
    path, _, query = url.partition("?")
    assert path == "/openapi/v3/apis/apps/v1" and query.startswith("hash=")
    status, body, _ = api.request("GET", url)
    assert status == 200
    conn = api.connect()
    conn.request("GET", url, headers={"Accept": "application/json"})
    answer = conn.getresponse()
    data = answer.read()
    conn.close()
    assert query == "hash=" + hashlib.sha512(data).hexdigest().upper()
    assert answer.headers["Cache-Control"] == "public, immutable"
    assert answer.headers["Etag"] == f'"{query.removeprefix("hash=")}"'
    assert body["openapi"] == "3.0.0"
    schema = body["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    assert schema["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}
    ]


def test_a_stale_hash_is_redirected_to_the_current_document(api: Http) -> None:
    conn = api.connect()
    conn.request("GET", "/openapi/v3/apis/apps/v1?hash=0123")
    answer = conn.getresponse()
    answer.read()
    conn.close()
    assert answer.status == 301
    _, root, _ = api.request("GET", "/openapi/v3")
    assert answer.headers["Location"] == root["paths"]["apis/apps/v1"]["serverRelativeURL"]


def test_the_patch_operation_of_each_kind_tells_kubectl_fields_are_validated(api: Http) -> None:
    _, root, _ = api.request("GET", "/openapi/v3")
    for res in BUILTIN_RESOURCES:
        path = f"apis/{res.group}/{res.version}" if res.group else f"api/{res.version}"
        _, doc, _ = api.request("GET", root["paths"][path]["serverRelativeURL"])
        patches = [
            item["patch"]
            for item in doc["paths"].values()
            if "patch" in item
            and item["patch"]["x-kubernetes-group-version-kind"]
            == {"group": res.group, "kind": res.kind, "version": res.version}
        ]
        assert patches, res
        names = {p["name"] for p in patches[0]["parameters"]}
        assert {"fieldValidation", "fieldManager", "dryRun", "force"} <= names


def test_openapi_v2_holds_paths_and_definitions_and_refuses_protobuf_only(api: Http) -> None:
    status, doc, _ = api.request("GET", "/openapi/v2")
    assert status == 200 and doc["swagger"] == "2.0"
    operation = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert operation["operationId"] == "patchAppsV1NamespacedDeployment"
    assert operation["x-kubernetes-action"] == "patch"
    assert "io.k8s.api.core.v1.PodSpec" in doc["definitions"]
    assert "/api/v1/namespaces/{namespace}/pods/{name}/status" in doc["paths"]
    protobuf = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    status, _, _ = api.request("GET", "/openapi/v2", headers={"Accept": protobuf})
    assert status == 406


def test_a_custom_resource_is_published_with_the_schema_its_resource_carries(
    api: Http, srv: ApiServer
) -> None:
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
    }
    widgets = Resource("example.com", "v1", "Widget", "widgets", True)
    srv.store.add_resource(
        ServedResource(widgets, "widget", strategic_merge=False, openapi_schema=schema)
    )
    srv.add_resource("example.com", "v2", "Gadget", "gadgets")  # no schema: anything goes
    _, root, _ = api.request("GET", "/openapi/v3")
    _, doc, _ = api.request("GET", root["paths"]["apis/example.com/v1"]["serverRelativeURL"])
    published = doc["components"]["schemas"]["com.example.v1.Widget"]
    assert published["properties"]["spec"]["properties"]["size"] == {"type": "integer"}
    assert published["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert published["x-kubernetes-group-version-kind"] == [
        {"group": "example.com", "kind": "Widget", "version": "v1"}
    ]
    assert "patchComExampleV1NamespacedWidget" in json.dumps(doc["paths"])
    _, doc, _ = api.request("GET", root["paths"]["apis/example.com/v2"]["serverRelativeURL"])
    gadget = doc["components"]["schemas"]["com.example.v2.Gadget"]
    assert gadget["x-kubernetes-preserve-unknown-fields"] is True


# ---------------------------------------------------------------- field validation


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, INVALID_FINDINGS),
        ({"fieldValidation": "Warn"}, INVALID_FINDINGS),
        ({"fieldValidation": "Ignore"}, []),
    ],
)
def test_create_drops_unknown_and_repeated_fields_and_warns_by_default(
    api: Http, query: dict[str, Any], expected: list[str]
) -> None:
    status, body, response = api.request("POST", DEPLOYMENTS, INVALID_BODY % b"web", **query)
    assert status == 201, body
    assert warnings(response) == expected
    stored = api.get(f"{DEPLOYMENTS}/web")[1]
    assert "unknown1" not in stored["spec"] and "unknownMeta" not in stored["metadata"]
    # The last of a repeated key wins: false, which the omitempty field leaves out.
    assert "paused" not in stored["spec"]
    container = stored["spec"]["template"]["spec"]["containers"][0]
    assert "unknownNested" not in container and container["imagePullPolicy"] == "Never"


def test_strict_create_and_update_answer_400_naming_every_field(api: Http) -> None:
    status, body, _ = api.request(
        "POST", DEPLOYMENTS, INVALID_BODY % b"web", fieldValidation="Strict"
    )
    assert status == 400 and body["reason"] == "BadRequest"
    assert body["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        + ", ".join(INVALID_FINDINGS)
    )
    assert api.get(f"{DEPLOYMENTS}/web")[0] == 404
    assert api.request("POST", DEPLOYMENTS, deployment("web"))[0] == 201
    status, body, _ = api.request(
        "PUT", f"{DEPLOYMENTS}/web", INVALID_BODY % b"web", fieldValidation="Strict"
    )
    assert status == 400 and body["message"].endswith(", ".join(INVALID_FINDINGS))


def test_a_yaml_body_reports_unknown_fields_in_sorted_order(api: Http) -> None:
    body = b"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  unknownMeta: metaVal
spec:
  unknown1: val1
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - {name: nginx, image: nginx, unknownNested: val1}
"""
    headers = {"Content-Type": "application/yaml"}
    status, _, response = api.request("POST", DEPLOYMENTS, body, headers=headers)
    assert status == 201
    assert warnings(response) == [
        'unknown field "metadata.unknownMeta"',
        'unknown field "spec.template.spec.containers[0].unknownNested"',
        'unknown field "spec.unknown1"',
    ]


@pytest.mark.parametrize(
    "content_type", ["application/merge-patch+json", "application/strategic-merge-patch+json"]
)
def test_merge_patches_report_repeated_keys_then_unknown_fields(
    api: Http, content_type: str
) -> None:
    assert api.request("POST", DEPLOYMENTS, deployment("web"))[0] == 201
    headers = {"Content-Type": content_type}
    status, body, response = api.request(
        "PATCH", f"{DEPLOYMENTS}/web", MERGE_PATCH, headers=headers
    )
    assert status == 200, body
    assert warnings(response) == PATCH_FINDINGS
    assert "unknown1" not in body["spec"]
    status, body, _ = api.request(
        "PATCH", f"{DEPLOYMENTS}/web", MERGE_PATCH, headers=headers, fieldValidation="Strict"
    )
    assert status == 422 and body["reason"] == "Invalid"
    [cause] = body["details"]["causes"]
    assert cause["field"] == "patch"
    assert cause["message"].endswith("strict decoding error: " + ", ".join(PATCH_FINDINGS))
    if content_type.startswith("application/strategic"):
        # kube-apiserver shows a strategic merge patch as Go prints the patch's map.
        assert cause["message"].startswith('Invalid value: "map[spec:map[paused:false template:')
    else:
        assert cause["message"].startswith('Invalid value: "{')  # the patched object


def test_a_json_patch_adding_unknown_fields_warns_with_sorted_paths(api: Http) -> None:
    assert api.request("POST", DEPLOYMENTS, deployment("web"))[0] == 201
    ops = [
        {"op": "add", "path": "/spec/unknownB", "value": 1},
        {"op": "add", "path": "/spec/unknownA", "value": 1},
    ]
    headers = {"Content-Type": "application/json-patch+json"}
    status, _, response = api.request("PATCH", f"{DEPLOYMENTS}/web", ops, headers=headers)
    assert status == 200
    assert warnings(response) == ['unknown field "spec.unknownA"', 'unknown field "spec.unknownB"']


def test_apply_with_an_undeclared_field_fails_to_type_the_patch(api: Http) -> None:
    config = deployment("web", foo="bar")
    headers = {"Content-Type": "application/apply-patch+yaml"}
    status, body, _ = api.request(
        "PATCH", f"{DEPLOYMENTS}/web", config, headers=headers, fieldManager="me"
    )
    assert status == 500
    assert body["message"] == (
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): "
        ".spec.foo: field not declared in schema"
    )


def test_a_field_of_the_wrong_type_is_a_400_with_gos_message(api: Http) -> None:
    body = deployment("web", replicas="three")
    status, answer, _ = api.request("POST", DEPLOYMENTS, body)
    assert status == 400
    assert answer["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
        "string into Go struct field DeploymentSpec.spec.replicas of type int32"
    )
    body = {"metadata": {"name": "c"}, "data": {"a": 1}}
    status, answer, _ = api.request("POST", "/api/v1/namespaces/default/configmaps", body)
    assert status == 400
    assert answer["message"].endswith(
        "json: cannot unmarshal number into Go struct field ConfigMap.data of type string"
    )
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": ["x"]}]}}
    status, answer, _ = api.request("POST", "/api/v1/namespaces/default/pods", pod)
    assert answer["message"].endswith(
        "json: cannot unmarshal array into Go struct field Container.spec.containers.image "
        "of type string"
    )


def test_an_unsupported_field_validation_is_refused_with_the_allowed_values(api: Http) -> None:
    status, body, _ = api.request("POST", DEPLOYMENTS, deployment("web"), fieldValidation="strict")
    assert status == 422
    assert body["message"] == (
        'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict": '
        'supported values: "", "Ignore", "Strict", "Warn"'
    )


def test_custom_resources_keep_their_fields(api: Http, srv: ApiServer) -> None:
    srv.add_resource("example.com", "v1", "Widget", "widgets")
    body = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"any": 1},
    }
    status, answer, response = api.request(
        "POST", "/apis/example.com/v1/namespaces/default/widgets", body
    )
    assert status == 201 and answer["spec"] == {"any": 1} and warnings(response) == []
