"""A demanding client's malformed requests get kube-apiserver's answers, and lose no write.

Every request here is raw HTTP (http.client) against rxkube.testing.ApiServer; the
expected status codes, reasons and messages are the ones kube-apiserver v1.32 gives
(its handlers in k8s.io/apiserver, the validation in k8s.io/apimachinery, the decoders
of sigs.k8s.io/json and sigs.k8s.io/yaml).
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any, Literal

import orjson
import pytest

from rxkube.errors import ApiError, BadRequest, Invalid
from rxkube.testing import ApiServer
from tests.waiting import eventually

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
SERVICES = "/api/v1/namespaces/default/services"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
MERGE = "application/merge-patch+json"
APPLY = "application/apply-patch+yaml"


class Raw:
    """Raw requests to one server: bytes in, (status, decoded body, response) out."""

    def __init__(self, srv: ApiServer) -> None:
        url = urllib.parse.urlsplit(srv.url)
        self.host, self.port = url.hostname or "", url.port or 0

    def connect(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = "application/json",
        **params: Any,
    ) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
        headers = {"Accept": "application/json"}
        if data is not None and content_type is not None:
            headers["Content-Type"] = content_type
        query = "?" + urllib.parse.urlencode(params) if params else ""
        conn = self.connect()
        try:
            conn.request(method, path + query, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        return response.status, json.loads(raw) if raw.startswith(b"{") else raw


@pytest.fixture
def srv() -> Iterator[ApiServer]:
    with ApiServer(bookmark_interval=None) as server:
        server.add_resource("example.com", "v1", "Widget", "widgets")
        yield server


@pytest.fixture
def raw(srv: ApiServer) -> Raw:
    return Raw(srv)


def cm(name: str, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta}, "data": {"k": "v"}}


def status_of(body: Any) -> tuple[int, str, str]:
    assert body["kind"] == "Status" and body["status"] == "Failure", body
    return body["code"], body.get("reason", ""), body["message"]


# ----------------------------------------------------- 8. metadata types and values


@pytest.mark.parametrize(
    ("meta", "error"),
    [
        ({"labels": "x"}, "cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of type map[string]string"),
        ({"labels": {"n": [1]}}, "cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type string"),
        ({"annotations": {"a": 5}}, "cannot unmarshal number into Go struct field ObjectMeta.metadata.annotations of type string"),
        ({"finalizers": "x"}, "cannot unmarshal string into Go struct field ObjectMeta.metadata.finalizers of type []string"),
        ({"finalizers": [1]}, "cannot unmarshal number into Go struct field ObjectMeta.metadata.finalizers of type string"),
        ({"ownerReferences": {}}, "cannot unmarshal object into Go struct field ObjectMeta.metadata.ownerReferences of type []v1.OwnerReference"),
        ({"ownerReferences": [{"uid": 5}]}, "cannot unmarshal number into Go struct field OwnerReference.metadata.ownerReferences.uid of type types.UID"),
        ({"namespace": ["default"]}, "cannot unmarshal array into Go struct field ObjectMeta.metadata.namespace of type string"),
        ({"generateName": True}, "cannot unmarshal bool into Go struct field ObjectMeta.metadata.generateName of type string"),
        ({"generation": 1.5}, "cannot unmarshal number 1.5 into Go struct field ObjectMeta.metadata.generation of type int64"),
    ],
)  # fmt: skip
def test_metadata_of_a_wrong_json_type_answers_400_as_a_decoding_error(
    srv: ApiServer, raw: Raw, meta: dict[str, Any], error: str
) -> None:
    before = srv.resource_version
    status, body = raw("POST", CONFIGMAPS, cm("a", **meta))
    assert status == 400
    assert status_of(body) == (
        400,
        "BadRequest",
        f'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: {error}',
    )
    assert srv.resource_version == before
    assert raw("GET", CONFIGMAPS, labelSelector="n")[0] == 200


def test_metadata_that_is_not_an_object_answers_400(raw: Raw) -> None:
    status, body = raw("POST", CONFIGMAPS, {"metadata": "x"})
    assert status == 400 and body["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal '
        "string into Go struct field ConfigMap.metadata of type v1.ObjectMeta"
    )


def test_custom_resource_metadata_is_decoded_on_its_own(raw: Raw) -> None:
    status, body = raw("POST", WIDGETS, {"metadata": {"name": "w", "labels": "x"}})
    assert status == 400 and body["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: json: cannot unmarshal string '
        "into Go struct field ObjectMeta.labels of type map[string]string"
    )


def test_a_body_that_is_not_an_object_is_unrecognized(raw: Raw) -> None:
    status, body = raw("POST", CONFIGMAPS, b"[1]")
    assert status == 400 and body["message"].startswith(
        "the object provided is unrecognized (must be of type ConfigMap): couldn't get "
        "version/kind; json parse error: json: cannot unmarshal array into Go value of type struct"
    )
    assert body["message"].endswith("(5b315d)")  # the body, hex-encoded


def test_invalid_label_values_answer_422_with_a_cause_per_field(raw: Raw) -> None:
    status, body = raw("POST", CONFIGMAPS, cm("a", labels={"app": "bad value", "-x": "ok"}))
    assert status == 422
    code, reason, message = status_of(body)
    value_error = (
        "a valid label must be an empty string or consist of alphanumeric characters, '-', "
        "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
        "or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    )
    key_error = (
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
        "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
        "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    )
    assert (code, reason) == (422, "Invalid")
    assert message == (
        f'ConfigMap "a" is invalid: [metadata.labels: Invalid value: "bad value": {value_error}, '
        f'metadata.labels: Invalid value: "-x": {key_error}]'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "bad value": {value_error}',
            "field": "metadata.labels",
        },
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "-x": {key_error}',
            "field": "metadata.labels",
        },
    ]
    assert body["details"]["name"] == "a" and body["details"]["kind"] == "ConfigMap"


def test_annotations_over_256_kib_and_bad_owner_references_answer_422(raw: Raw) -> None:
    status, body = raw("POST", CONFIGMAPS, cm("a", annotations={"a": "x" * (256 * 1024)}))
    assert status == 422 and body["message"] == (
        'ConfigMap "a" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes'
    )
    assert body["details"]["causes"][0]["reason"] == "FieldValueTooLong"
    status, body = raw("POST", CONFIGMAPS, cm("b", ownerReferences=[{"apiVersion": "v1"}]))
    assert status == 422
    assert [c["field"] for c in body["details"]["causes"]] == [
        "metadata.ownerReferences.kind",
        "metadata.ownerReferences.name",
        "metadata.ownerReferences.uid",
    ]
    assert body["details"]["causes"][0]["message"] == 'Invalid value: "": kind must not be empty'


def test_the_object_api_refuses_metadata_of_a_wrong_type(srv: ApiServer) -> None:
    with pytest.raises(BadRequest, match=r"ObjectMeta\.metadata\.labels of type map"):
        srv.create("configmaps", cm("a", labels="x"))
    srv.create("configmaps", cm("a"))
    with pytest.raises(Invalid, match=r"metadata\.labels"):
        srv.patch("configmaps", "a", {"metadata": {"labels": {"a": 1}}})
    assert srv.get("configmaps", "a")["metadata"].get("labels") is None


def test_a_patch_that_breaks_metadata_types_answers_422_and_changes_nothing(
    srv: ApiServer, raw: Raw
) -> None:
    raw("POST", CONFIGMAPS, cm("a", labels={"app": "web"}))
    before = srv.resource_version
    status, body = raw("PATCH", f"{CONFIGMAPS}/a", {"metadata": {"labels": "x"}}, MERGE)
    assert status == 422
    code, reason, message = status_of(body)
    assert (code, reason) == (422, "Invalid")
    assert message.startswith(' "" is invalid: patch: Invalid value: "{')
    assert message.endswith(
        ": json: cannot unmarshal string into Go struct field ObjectMeta.metadata.labels "
        "of type map[string]string"
    )
    assert body["details"]["causes"][0]["field"] == "patch"
    assert srv.resource_version == before
    status, page = raw("GET", CONFIGMAPS, labelSelector="app=web")
    assert status == 200 and [i["metadata"]["name"] for i in page["items"]] == ["a"]
    status, _ = raw("DELETE", f"{CONFIGMAPS}/a")
    assert status == 200 and srv.resource_version == before + 1


def test_apply_with_metadata_of_a_wrong_type_answers_the_typed_patch_error(raw: Raw) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": "x"}}
    status, body = raw("PATCH", f"{CONFIGMAPS}/a", config, APPLY, fieldManager="me")
    assert status == 500
    assert "reason" not in body and body["message"].startswith(
        "failed to create typed patch object (default/a; /v1, Kind=ConfigMap): "
    )


class _RaisingSink:
    """A registered watch whose connection fails on every push."""

    def __init__(self) -> None:
        self.closed: str | None = None

    def prime(self, lines: list[bytes]) -> None:
        pass

    def push(self, line: bytes) -> None:
        raise ConnectionResetError("the watcher's connection broke")

    def close(self, mode: Literal["clean", "drain", "abrupt"]) -> None:
        self.closed = mode


def test_a_watcher_failing_in_fan_out_ends_alone_and_loses_no_event_for_others(
    srv: ApiServer, raw: Raw, caplog: pytest.LogCaptureFixture
) -> None:
    from rxkube.testing._stored import WatchFilter

    served = srv._served("configmaps")
    broken = _RaisingSink()
    srv.store.watch(served, WatchFilter("default"), broken, from_rv=None, initial="none")
    conn = raw.connect()
    conn.request("GET", f"{CONFIGMAPS}?watch=1&resourceVersion={srv.resource_version}")
    watch = conn.getresponse()
    try:
        eventually(lambda: srv.open_watches() == 1)
        assert raw("POST", CONFIGMAPS, cm("a"))[0] == 201
        assert raw("PATCH", f"{CONFIGMAPS}/a", {"data": {"k": "w"}}, MERGE)[0] == 200
        assert raw("DELETE", f"{CONFIGMAPS}/a")[0] == 200
        events = [json.loads(watch.readline())["type"] for _ in range(3)]
    finally:
        conn.close()
    assert events == ["ADDED", "MODIFIED", "DELETED"]
    assert broken.closed == "abrupt"
    assert "ending a watch whose fan-out failed" in caplog.text


def test_failed_writes_use_up_no_resource_version(srv: ApiServer, raw: Raw) -> None:
    assert raw("POST", CONFIGMAPS, cm("a"))[0] == 201
    before = srv.resource_version
    failures = [
        raw("POST", CONFIGMAPS, cm("a")),  # AlreadyExists
        raw("POST", CONFIGMAPS, cm("b", labels={"k": "bad value"})),
        raw("PUT", f"{CONFIGMAPS}/a", cm("a", resourceVersion="1")),  # stale
        raw("PATCH", f"{CONFIGMAPS}/a", {"metadata": {"labels": {"a": [1]}}}, MERGE),
        raw("POST", CONFIGMAPS, cm("c", annotations={"a": "x" * 300_000})),
        # A ConfigMap's data is limited to 1 MiB by validation: a Lease reaches etcd's limit.
        raw(
            "POST", LEASES, {"metadata": {"name": "d"}, "spec": {"holderIdentity": "y" * 2_000_000}}
        ),
    ]
    assert [status for status, _ in failures] == [409, 422, 409, 422, 422, 500]
    assert srv.resource_version == before
    status, created = raw("POST", CONFIGMAPS, cm("e"))
    assert status == 201 and created["metadata"]["resourceVersion"] == str(before + 1)


# ---------------------------------------------------------- 9. bounded expansion


def _alias_bomb() -> bytes:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return ("\n".join(["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb}", "data:"])
            + "\n" + "\n".join("  " + line for line in lines) + "\n").encode()  # fmt: skip


def test_a_yaml_alias_bomb_is_refused_as_excessive_aliasing(srv: ApiServer, raw: Raw) -> None:
    bomb = _alias_bomb()
    assert len(bomb) < 600
    status, body = raw("PATCH", f"{CONFIGMAPS}/bomb", bomb, APPLY, fieldManager="me")
    assert status == 400 and body["message"] == (
        "error decoding YAML: error converting YAML to JSON: yaml: document contains "
        "excessive aliasing"
    )
    status, body = raw("POST", CONFIGMAPS, bomb, "application/yaml")
    assert status == 400 and body["message"].startswith(
        "the object provided is unrecognized (must be of type ConfigMap): yaml: document "
        "contains excessive aliasing ("
    )
    assert raw("GET", f"{CONFIGMAPS}/bomb")[0] == 404


def test_yaml_nested_5000_deep_answers_400(raw: Raw) -> None:
    deep = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\nx: " + b"[" * 5000
    deep += b"]" * 5000 + b"\n"
    status, body = raw("PATCH", f"{CONFIGMAPS}/deep", deep, APPLY, fieldManager="me")
    assert status == 400 and "nested more than 400 levels deep" in body["message"]
    assert raw("GET", "/version")[0] == 200


def _nested(depth: int) -> dict[str, Any]:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value  # type: ignore[no-any-return]


def test_json_nested_300_deep_is_stored(raw: Raw) -> None:
    widget = {"metadata": {"name": "w"}, "spec": _nested(297)}  # 299 levels with the root
    status, created = raw("POST", WIDGETS, json.dumps(widget).encode())  # orjson stops at 254
    assert status == 201, created
    status, got = raw("GET", f"{WIDGETS}/w")
    assert status == 200 and got["spec"] == widget["spec"]
    status, patched = raw("PATCH", f"{WIDGETS}/w", {"metadata": {"labels": {"a": "b"}}}, MERGE)
    assert status == 200 and patched["spec"] == widget["spec"]


def test_json_deeper_than_go_allows_answers_the_go_error(raw: Raw) -> None:
    body = b'{"metadata":{"name":"deep"},"x":' + b"[" * 10_001 + b"]" * 10_001 + b"}"
    status, answer = raw("POST", CONFIGMAPS, body)
    assert status == 400 and answer["message"].startswith(
        "the object provided is unrecognized (must be of type ConfigMap): couldn't get "
        "version/kind; json parse error: invalid character '[' exceeded max depth ("
        '{"metadata":{"name":"deep"},"x ...)'
    )


def test_request_bodies_over_3_mib_answer_413_with_the_real_message(raw: Raw) -> None:
    limit = 3 * 1024 * 1024
    head = b'{"metadata":{"name":"big"},"spec":{"holderIdentity":"'
    body = head + b"y" * (limit + 1 - len(head) - 3) + b'"}}'
    assert len(body) == limit + 1
    status, answer = raw("POST", LEASES, body)
    assert status == 413
    assert status_of(answer) == (
        413,
        "RequestEntityTooLarge",
        "Request entity too large: limit is 3145728",
    )
    status, answer = raw("POST", LEASES, body[:-4] + b'"}}')  # exactly the limit
    assert status == 500  # read, then refused by etcd's smaller limit


def test_an_object_over_etcds_limit_answers_500_request_too_large(srv: ApiServer, raw: Raw) -> None:
    before = srv.resource_version
    # A Lease, whose fields validation does not limit (a ConfigMap's data: 1 MiB, a 422).
    status, body = raw(
        "POST", LEASES, {"metadata": {"name": "big"}, "spec": {"holderIdentity": "y" * 1_600_000}}
    )
    assert status == 500
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "etcdserver: request is too large",
        "code": 500,
    }
    assert srv.resource_version == before and raw("GET", f"{LEASES}/big")[0] == 404
    ok = {"metadata": {"name": "ok"}, "spec": {"holderIdentity": "y" * 1_500_000}}
    assert raw("POST", LEASES, ok)[0] == 201


# ----------------------------------------------------------- 10. status codes


def test_a_text_plain_body_answers_415(raw: Raw) -> None:
    _, body = raw("POST", CONFIGMAPS, orjson.dumps(cm("a")), "text/plain")
    assert status_of(body) == (
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf",
    )


def test_a_yaml_body_creates_and_replaces(raw: Raw) -> None:
    status, created = raw(
        "POST", CONFIGMAPS, b"metadata:\n  name: a\ndata:\n  k: v\n", "application/yaml"
    )
    assert status == 201 and created["data"] == {"k": "v"}
    update = b"metadata:\n  name: a\ndata:\n  k: w\n"
    status, replaced = raw("PUT", f"{CONFIGMAPS}/a", update, "application/yaml; charset=utf-8")
    assert status == 200 and replaced["data"] == {"k": "w"}


def test_writes_to_the_all_namespaces_path_answer_405(srv: ApiServer, raw: Raw) -> None:
    for method in ("POST", "DELETE"):
        _, body = raw(method, "/api/v1/configmaps", cm("a", namespace="default"))
        assert status_of(body) == (
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    assert srv.list("configmaps", namespace=None) == []
    assert raw("GET", "/api/v1/configmaps")[0] == 200


@pytest.mark.parametrize("name", ["a.b", "1abc"])
def test_service_names_must_be_dns_1035_labels(raw: Raw, name: str) -> None:
    status, body = raw("POST", SERVICES, {"metadata": {"name": name}, "spec": {}})
    assert status == 422
    assert body["message"] == (
        f'Service "{name}" is invalid: metadata.name: Invalid value: "{name}": a DNS-1035 label '
        "must consist of lower case alphanumeric characters or '-', start with an alphabetic "
        "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
        "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    )


def test_generate_name_is_cut_to_keep_names_within_63_characters(raw: Raw) -> None:
    prefix = "a" * 70
    status, created = raw("POST", CONFIGMAPS, {"metadata": {"generateName": prefix}})
    name = created["metadata"]["name"]
    assert status == 201 and len(name) == 63 and name.startswith("a" * 58)
    assert not name[58:].startswith("a" * 5)


def test_watch_with_negative_timeout_ends_at_once(srv: ApiServer, raw: Raw) -> None:
    srv.create("configmaps", cm("a"))
    conn = raw.connect(timeout=10.0)
    try:
        conn.request("GET", f"{CONFIGMAPS}?watch=1&timeoutSeconds=-5")
        response = conn.getresponse()
        assert response.status == 200 and response.read() == b""
    finally:
        conn.close()


def test_a_list_valued_namespace_answers_400_not_500(raw: Raw) -> None:
    status, body = raw("POST", CONFIGMAPS, cm("a", namespace=["default"]))
    assert status == 400 and "ObjectMeta.metadata.namespace of type string" in body["message"]


# ------------------------------------------------------------------ more of the same


def test_a_patch_may_not_rename_move_or_re_uid_an_object(srv: ApiServer, raw: Raw) -> None:
    _, created = raw("POST", CONFIGMAPS, cm("a"))
    before = srv.resource_version
    answers = [
        raw("PATCH", f"{CONFIGMAPS}/a", {"metadata": {"name": "b"}}, MERGE),
        raw("PATCH", f"{CONFIGMAPS}/a", {"metadata": {"name": None}}, MERGE),
        raw("PATCH", f"{CONFIGMAPS}/a", {"metadata": {"namespace": "kube-system"}}, MERGE),
        raw("PATCH", f"{CONFIGMAPS}/a", {"metadata": {"uid": "other"}}, MERGE),
        raw("PATCH", f"{CONFIGMAPS}/a", {"metadata": {"resourceVersion": "1"}}, MERGE),
    ]
    assert [(status, body["message"]) for status, body in answers] == [
        (400, "the name of the object (b) does not match the name on the URL (a)"),
        (400, "the name of the object () does not match the name on the URL (a)"),
        (
            400,
            "the namespace of the provided object does not match the namespace sent on the request",
        ),
        (422, 'ConfigMap "a" is invalid: metadata.uid: Invalid value: "other": field is immutable'),
        (
            409,
            'Operation cannot be fulfilled on configmaps "a": the object has been modified; '
            "please apply your changes to the latest version and try again",
        ),
    ]
    assert srv.resource_version == before
    assert srv.get("configmaps", "a")["metadata"]["uid"] == created["metadata"]["uid"]


def test_an_update_needs_the_urls_name_and_a_custom_resource_its_resource_version(
    raw: Raw,
) -> None:
    raw("POST", CONFIGMAPS, cm("a"))
    status, body = raw("PUT", f"{CONFIGMAPS}/a", {"data": {"k": "w"}})
    assert (status, body["message"]) == (
        400,
        "the name of the object () does not match the name on the URL (a)",
    )
    assert raw("PUT", f"{CONFIGMAPS}/a", cm("a"))[0] == 200  # built-in kinds allow it
    raw("POST", WIDGETS, {"metadata": {"name": "w"}})
    status, body = raw("PUT", f"{WIDGETS}/w", {"metadata": {"name": "w"}, "spec": {}})
    assert status == 422 and body["message"] == (
        'widgets.example.com "w" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
        "must be specified for an update"
    )


def test_the_object_api_raises_typed_errors_for_invalid_metadata(srv: ApiServer) -> None:
    with pytest.raises(Invalid) as caught:
        srv.create("services", {"metadata": {"name": "a.b"}})
    assert isinstance(caught.value, ApiError) and "DNS-1035" in str(caught.value)


@pytest.mark.parametrize("method", ["FOO", "PROPFIND"])
def test_an_unknown_http_method_answers_405_status(raw: Raw, method: str) -> None:
    status, body = raw(method, CONFIGMAPS)
    assert status == 405
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the server does not allow this method on the requested resource",
        "reason": "MethodNotAllowed",
        "code": 405,
        "details": {},
    }
    assert raw("GET", CONFIGMAPS)[0] == 200  # the server goes on


JSON_PATCH = "application/json-patch+json"


@pytest.mark.parametrize(
    ("ops", "code", "message"),
    [
        ({"op": "add"}, 400, "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"),
        (["add"], 400, "error decoding patch: json: cannot unmarshal string into Go value of type handlers.jsonPatchOp"),
        ([{"op": 1, "path": "/a"}], 400, "error decoding patch: json: cannot unmarshal number into Go struct field jsonPatchOp.op of type string"),
        ([{"op": "bogus", "path": "/data/k"}], 422, "the server rejected our request due to an error in our request"),
        ([{"op": "remove", "path": "/data/missing"}], 422, "the server rejected our request due to an error in our request"),
        ([{"op": "test", "path": "/data/k", "value": "w"}], 422, "the server rejected our request due to an error in our request"),
        ([{"op": "test", "path": "/data/k", "value": "v"}] * 10_001, 413, "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"),
    ],
)  # fmt: skip
def test_malformed_json_patches_answer_as_kube_apiserver(
    srv: ApiServer, raw: Raw, ops: Any, code: int, message: str
) -> None:
    raw("POST", CONFIGMAPS, cm("a"))
    before = srv.resource_version
    status, body = raw("PATCH", f"{CONFIGMAPS}/a", ops, JSON_PATCH)
    assert (status, body["code"], body["message"]) == (code, code, message)
    assert srv.resource_version == before


def test_malformed_merge_patches_answer_400_and_null_changes_nothing(
    srv: ApiServer, raw: Raw
) -> None:
    raw("POST", CONFIGMAPS, cm("a"))
    before = srv.resource_version
    status, body = raw("PATCH", f"{CONFIGMAPS}/a", [1], MERGE)
    assert (status, body["message"]) == (
        400,
        "error decoding patch: json: cannot unmarshal array into Go value of type "
        "map[string]interface {}",
    )
    status, body = raw("PATCH", f"{CONFIGMAPS}/a", b"{", MERGE)
    assert status == 400 and body["message"].startswith("error decoding patch: ")
    status, body = raw("PATCH", f"{CONFIGMAPS}/a", [1], "application/strategic-merge-patch+json")
    assert (status, body["message"]) == (
        400,
        "json: cannot unmarshal array into Go value of type map[string]interface {}",
    )
    for patch_type in (MERGE, JSON_PATCH):
        status, body = raw("PATCH", f"{CONFIGMAPS}/a", b"null", patch_type)
        assert status == 200 and body["data"] == {"k": "v"}
    assert srv.resource_version == before


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "abc"}, 'strconv.ParseInt: parsing "abc": invalid syntax'),
        ({"limit": "1.5"}, 'strconv.ParseInt: parsing "1.5": invalid syntax'),
        ({"limit": "99999999999999999999"}, 'strconv.ParseInt: parsing "99999999999999999999": value out of range'),
        ({"watch": "1", "timeoutSeconds": "soon"}, 'strconv.ParseInt: parsing "soon": invalid syntax'),
    ],
)  # fmt: skip
def test_integer_parameters_are_parsed_as_go_does(
    raw: Raw, params: dict[str, str], message: str
) -> None:
    status, body = raw("GET", CONFIGMAPS, **params)
    assert (status, body["reason"], body["message"]) == (400, "BadRequest", message)


def test_any_boolean_parameter_but_0_or_false_is_true(srv: ApiServer, raw: Raw) -> None:
    srv.create("configmaps", cm("a"))
    for value in ("yes", "", "TRUE"):
        conn = raw.connect()
        try:
            conn.request("GET", f"{CONFIGMAPS}?watch={value}&timeoutSeconds=1")
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.readline())["type"] == "ADDED"  # a watch, not a list
        finally:
            conn.close()
    for value in ("0", "False"):
        status, body = raw("GET", CONFIGMAPS, watch=value)
        assert status == 200 and body["kind"] == "ConfigMapList"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "Pod", "apiVersion": "v1"}, 'Pod in version "v1" cannot be handled as a ConfigMap: converting (v1.Pod) to (core.ConfigMap): unknown conversion'),
        ({"kind": "Foo"}, 'Foo in version "v1" cannot be handled as a ConfigMap: no kind "Foo" is registered for version "v1" in scheme "pkg/api/legacyscheme/scheme.go:30"'),
        ({"kind": "ConfigMap", "apiVersion": "apps/v1"}, 'ConfigMap in version "v1" cannot be handled as a ConfigMap: no kind "ConfigMap" is registered for version "apps/v1" in scheme "pkg/api/legacyscheme/scheme.go:30"'),
    ],
)  # fmt: skip
def test_a_body_of_another_kind_or_version_cannot_be_handled(
    srv: ApiServer, raw: Raw, body: dict[str, Any], message: str
) -> None:
    status, answer = raw("POST", CONFIGMAPS, {**cm("a"), **body})
    assert (status, answer["reason"], answer["message"]) == (400, "BadRequest", message)
    with pytest.raises(BadRequest):
        srv.create("configmaps", {**cm("a"), **body})


def test_a_custom_resource_body_of_another_kind_or_version_is_refused(raw: Raw) -> None:
    body = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "w"}}
    status, answer = raw("POST", WIDGETS, body)
    assert (status, answer["message"]) == (
        422,
        'Gadget.example.com "w" is invalid: kind: Invalid value: "Gadget": must be Widget',
    )
    body = {"apiVersion": "example.com/v2", "kind": "Widget", "metadata": {"name": "w"}}
    status, answer = raw("POST", WIDGETS, body)
    assert (status, answer["message"]) == (
        400,
        'Widget in version "v2" cannot be handled as a Widget: request to convert CR from an '
        "invalid group/version: example.com/v2",
    )
