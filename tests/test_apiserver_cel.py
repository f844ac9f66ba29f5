"""CEL validation rules (``x-kubernetes-validations``) of custom resources, over HTTP.

Checked against kubernetes/apiextensions-apiserver pkg/apiserver/schema/cel/validation.go
(``Validate``: the error at the node's path with its type as the value, ``failed rule:``
without a message, ``fieldErrorForReason``, transition rules only where an old value
exists) and pkg/registry/customresource/strategy.go (rules run after the schema
validation, unless a value has the wrong type). Needs the ``cel`` extra (cel-python).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rxkube.testing import ApiServer
from tests.apiserver_http import Http
from tests.test_apiserver_crd import CRDS, WIDGETS, widget, widget_crd

pytest.importorskip("celpy", reason="CEL rules need the cel extra (cel-python)")

MERGE = {"Content-Type": "application/merge-patch+json"}


def ruled_crd() -> dict[str, Any]:
    crd = widget_crd()
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    spec["x-kubernetes-validations"] = [
        {"rule": "self.size <= 5 || has(self.name)", "message": "a big widget needs a name"},
        {"rule": "!has(self.replicas) || self.replicas <= self.size"},
        {"rule": "self.size >= oldSelf.size", "message": "cannot shrink", "reason": "FieldValueForbidden"},
    ]  # fmt: skip
    spec["properties"]["tags"]["items"]["x-kubernetes-validations"] = [
        {"rule": "self.startsWith('t-')", "messageExpression": "'bad tag ' + self"}
    ]
    spec["properties"]["name"]["x-kubernetes-validations"] = [
        {"rule": "self == oldSelf", "message": "name is immutable"}
    ]
    return crd


@pytest.fixture
def api(srv: ApiServer) -> Http:
    http = Http(srv)
    status, body, _ = http.request("POST", CRDS, ruled_crd())
    assert status == 201, body
    return http


def named(size: int, name: str, **spec: Any) -> dict[str, Any]:
    body = widget(size=size, **spec)
    body["spec"]["name"] = name
    return body


def causes(error: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["field"], c["reason"], c["message"]) for c in error["details"]["causes"]]


def test_failed_rules_are_field_errors_of_the_nodes_type(api: Http) -> None:
    status, error, _ = api.request("POST", WIDGETS, widget(size=7, replicas=9, tags=["t-a", "x"]))
    assert status == 422
    assert causes(error) == [
        ("spec", "FieldValueInvalid", 'Invalid value: "object": a big widget needs a name'),
        (
            "spec",
            "FieldValueInvalid",
            'Invalid value: "object": failed rule: !has(self.replicas) || self.replicas <= self.size',
        ),
        ("spec.tags[1]", "FieldValueInvalid", 'Invalid value: "string": bad tag x'),
    ]
    assert error["message"].startswith('Widget.example.com "w" is invalid: [spec: Invalid value: ')
    status, _, _ = api.request("POST", WIDGETS, named(7, "big", tags=["t-a"]))
    assert status == 201


def test_transition_rules_compare_with_the_stored_object(api: Http) -> None:
    """``oldSelf`` rules are skipped on create and checked on update."""
    assert api.request("POST", WIDGETS, named(4, "abc"))[0] == 201
    status, error, _ = api.request("PATCH", f"{WIDGETS}/w", {"spec": {"size": 3, "name": "xyz"}}, headers=MERGE)  # fmt: skip
    assert status == 422
    assert causes(error) == [
        ("spec", "FieldValueForbidden", "Forbidden: cannot shrink"),
        ("spec.name", "FieldValueInvalid", 'Invalid value: "string": name is immutable'),
    ]
    status, _, _ = api.request("PATCH", f"{WIDGETS}/w", {"spec": {"size": 5}}, headers=MERGE)
    assert status == 200


def test_a_value_of_the_wrong_type_leaves_the_rules_unevaluated(api: Http) -> None:
    status, error, _ = api.request("POST", WIDGETS, widget(size="big"))
    assert status == 422
    assert [c[0] for c in causes(error)] == ["spec.size"]


def test_a_rule_that_does_not_compile_refuses_the_definition(srv: ApiServer) -> None:
    crd = copy.deepcopy(widget_crd())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["x-kubernetes-validations"] = [{"rule": "self.size >"}]
    status, error, _ = Http(srv).request("POST", CRDS, crd)
    assert status == 422
    (field, _, message) = causes(error)[0]
    assert field == (
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    )
    assert message.startswith('Invalid value: "self.size >": compilation failed: ')
