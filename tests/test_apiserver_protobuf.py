"""Protobuf request bodies (``application/vnd.kubernetes.protobuf``), over HTTP.

client-go's generated clients, kubectl's ``create <kind>`` among them, send built-in kinds
as protobuf and have no fallback to JSON (client-go ``rest/client.go``,
``requestClientContentConfigProvider``: a 415 only turns CBOR into JSON). The bodies here
are built by hand with the field numbers of k8s.io/api's ``generated.proto``; what the
server stores is what ``json.Marshal`` of the Go struct gives (``types.go``: pointers,
``omitempty``, inlined structs), and the errors are apimachinery's
(``runtime/serializer/protobuf/protobuf.go`` ``Serializer.Decode``, apiserver
``handlers/rest.go`` ``transformDecodeError``).
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import subprocess
import urllib.parse
from typing import Any

import pytest

from rxkube.resource import BUILTIN_RESOURCES
from rxkube.testing import ApiServer
from rxkube.testing._protobuf import _layout, decode_object
from rxkube.testing._protobuf_schema import KINDS, MESSAGES
from rxkube.testing._specs import Allocator, complete, default

PROTOBUF = "application/vnd.kubernetes.protobuf"
CLIENT_GO_ACCEPT = "application/vnd.kubernetes.protobuf,application/json"
"""What a generated client-go client asks for (``rest.Request.UseProtobufAsDefault``)."""

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


# ----------------------------------------------------------- a wire-format encoder


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes, an embedded message or a map entry."""
    return tag(number, 2) + varint(len(payload)) + payload


def text(number: int, value: str) -> bytes:
    return ld(number, value.encode())


def integer(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def entry(number: int, key: str, value: bytes) -> bytes:
    """One entry of a ``map<string, ...>`` field: key 1, value 2."""
    return ld(number, text(1, key) + ld(2, value))


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    """``k8s\\0`` + ``runtime.Unknown{typeMeta: {apiVersion 1, kind 2} 1, raw 2}``."""
    return b"k8s\x00" + ld(1, text(1, api_version) + text(2, kind)) + ld(2, raw)


def object_meta(name: str, **labels: str) -> bytes:
    """``ObjectMeta``: name 1, labels 11."""
    return text(1, name) + b"".join(entry(11, k, v.encode()) for k, v in labels.items())


# ------------------------------------------------------------------ HTTP helpers


class Raw:
    def __init__(self, srv: ApiServer) -> None:
        url = urllib.parse.urlsplit(srv.url)
        self.host, self.port = url.hostname or "", url.port or 0

    def __call__(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = PROTOBUF,
        accept: str = CLIENT_GO_ACCEPT,
    ) -> tuple[int, Any, str]:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        return response.status, json.loads(data), response.getheader("Content-Type", "")


@pytest.fixture
def raw(srv: ApiServer) -> Raw:
    return Raw(srv)


def failure(body: Any) -> tuple[int, str]:
    assert body["kind"] == "Status" and body["status"] == "Failure", body
    return body["code"], body["message"]


# ------------------------------------------------------------------------ tests


def test_a_protobuf_configmap_is_created_and_answered_in_json(srv: ApiServer, raw: Raw) -> None:
    # ConfigMap: metadata 1, data 2 (map<string,string>), binaryData 3 (map<string,bytes>).
    body = envelope(
        "v1",
        "ConfigMap",
        ld(1, object_meta("settings", app="web"))
        + entry(2, "mode", b"fast")
        + entry(2, "empty", b"")
        + entry(3, "blob", b"\x00\xff"),
    )
    status, created, content_type = raw("POST", CONFIGMAPS, body)
    assert status == 201, created
    assert content_type.startswith("application/json")
    assert created["data"] == {"mode": "fast", "empty": ""}
    assert created["binaryData"] == {"blob": base64.b64encode(b"\x00\xff").decode()}
    assert created["metadata"]["labels"] == {"app": "web"}
    assert "immutable" not in created  # a nil *bool with omitempty
    assert srv.get("configmaps", "settings")["data"] == {"mode": "fast", "empty": ""}


def test_a_protobuf_update_replaces_the_object(srv: ApiServer, raw: Raw) -> None:
    stored = srv.create("configmaps", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    rv = stored["metadata"]["resourceVersion"]
    # ObjectMeta resourceVersion 6.
    meta = object_meta("a") + text(6, rv)
    status, updated, _ = raw(
        "PUT", f"{CONFIGMAPS}/a", envelope("v1", "ConfigMap", ld(1, meta) + entry(2, "k", b"w"))
    )
    assert status == 200, updated
    assert updated["data"] == {"k": "w"}
    status, body, _ = raw(
        "PUT", f"{CONFIGMAPS}/a", envelope("v1", "ConfigMap", ld(1, meta) + entry(2, "k", b"x"))
    )
    assert status == 409, body  # the resourceVersion it carried is stale now


def test_a_deployment_decodes_as_go_marshals_its_struct(raw: Raw) -> None:
    """apps/v1 ``DeploymentSpec`` (types.go): ``Replicas *int32`` keeps an explicit 0;
    ``Selector *LabelSelector`` without omitempty is null when absent; ``Strategy`` (a
    struct) is ``{}``; ``MinReadySeconds int32`` with omitempty drops its 0. A Container's
    ``Name string`` has no omitempty; ``Resources`` is a struct, so ``{}``."""
    container = text(1, "web") + text(2, "nginx:1")  # name 1, image 2
    pod_spec = ld(2, container)  # containers 2
    template = ld(1, object_meta("", app="web")) + ld(2, pod_spec)  # metadata 1, spec 2
    selector = ld(2, entry(1, "app", b"web"))  # selector 2: matchLabels 1
    spec = (
        integer(1, 0) + selector + ld(3, template) + integer(5, 0)
    )  # replicas 1, template 3, minReady 5
    body = envelope("apps/v1", "Deployment", ld(1, object_meta("web")) + ld(2, spec))
    status, created, _ = raw("POST", "/apis/apps/v1/namespaces/default/deployments", body)
    assert status == 201, created
    # Then defaulted as kube-apiserver does (SetDefaults_Deployment, SetDefaults_PodSpec).
    template_spec = created["spec"]["template"]["spec"]
    assert template_spec["containers"][0]["resources"] == {}
    assert created["spec"]["replicas"] == 0 and "minReadySeconds" not in created["spec"]
    assert created["spec"]["template"]["metadata"] == {
        "creationTimestamp": None,
        "labels": {"app": "web"},
    }
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"


def test_a_service_port_decodes_int_or_string_and_secret_bytes_are_base64(raw: Raw) -> None:
    # ServicePort: name 1, protocol 2, port 3, targetPort 4 (IntOrString: type 1, intVal 2, strVal 3).
    by_number = text(1, "http") + text(2, "TCP") + integer(3, 80) + ld(4, integer(2, 8080))
    by_name = text(1, "web") + integer(3, 81) + ld(4, integer(1, 1) + text(3, "web"))
    spec = ld(1, by_number) + ld(1, by_name) + entry(2, "app", b"web") + text(4, "ClusterIP")
    body = envelope("v1", "Service", ld(1, object_meta("svc")) + ld(2, spec))
    status, created, _ = raw("POST", "/api/v1/namespaces/default/services", body)
    assert status == 201, created
    assert created["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
        {"name": "web", "port": 81, "targetPort": "web", "protocol": "TCP"},  # defaulted
    ]
    assert created["spec"]["selector"] == {"app": "web"} and created["spec"]["type"] == "ClusterIP"
    # Secret: data 2 (map<string,bytes>), type 3.
    secret = ld(1, object_meta("s")) + entry(2, "token", b"\x01secret") + text(3, "Opaque")
    status, created, _ = raw(
        "POST", "/api/v1/namespaces/default/secrets", envelope("v1", "Secret", secret)
    )
    assert status == 201, created
    assert created["data"] == {"token": base64.b64encode(b"\x01secret").decode()}
    assert created["type"] == "Opaque"


def test_an_envelope_without_kind_takes_the_resources(raw: Raw) -> None:
    # Serializer.Decode: copyKindDefaults fills kind and version from the request's resource.
    body = b"k8s\x00" + ld(1, b"") + ld(2, ld(1, object_meta("plain")))
    status, created, _ = raw("POST", CONFIGMAPS, body)
    assert status == 201, created
    assert (created["kind"], created["apiVersion"]) == ("ConfigMap", "v1")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"kind":"ConfigMap"}',
            "the object provided is unrecognized (must be of type ConfigMap): provided data does "
            'not appear to be a protobuf message, expected prefix [107 56 115 0] ({"kind":"ConfigMap"})',
        ),
        (
            b"k8s\x00",
            "the object provided is unrecognized (must be of type ConfigMap): empty body (6b387300)",
        ),
        (
            b"k8s\x00\x0a\x05",
            "the object provided is unrecognized (must be of type ConfigMap): unexpected EOF "
            "(6b3873000a05)",
        ),
        (
            envelope("v1", "ConfigMap", ld(1, b"\x0a\x09ab")),
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: unexpected EOF',
        ),
        (
            envelope("v1", "ConfigMap", integer(2, 1)),
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: proto: wrong wireType = 0 '
            "for field Data",
        ),
        (
            envelope("v1", "Pod", ld(1, object_meta("p"))),
            'Pod in version "v1" cannot be handled as a ConfigMap: converting (v1.Pod) to '
            "(core.ConfigMap): unknown conversion",
        ),
    ],
)
def test_undecodable_protobuf_answers_400_with_apimachinerys_words(
    raw: Raw, body: bytes, message: str
) -> None:
    status, answer, _ = raw("POST", CONFIGMAPS, body)
    assert (status, failure(answer)) == (400, (400, message))


def test_a_custom_resource_refuses_protobuf_with_415(srv: ApiServer, raw: Raw) -> None:
    # apiextensions-apiserver's serializer for custom resources lists JSON and YAML only.
    srv.add_resource("example.com", "v1", "Widget", "widgets")
    status, answer, _ = raw(
        "POST",
        "/apis/example.com/v1/namespaces/default/widgets",
        envelope("example.com/v1", "Widget", ld(1, object_meta("w"))),
    )
    assert failure(answer) == (
        415,
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml",
    )
    assert status == 415


def test_protobuf_delete_options_are_read(srv: ApiServer, raw: Raw) -> None:
    """client-go's typed ``Delete`` sends its ``DeleteOptions`` as protobuf too (meta/v1:
    preconditions 2 {uid 1}, dryRun 5)."""
    uid = srv.create("configmaps", {"metadata": {"name": "a"}})["metadata"]["uid"]
    wrong = envelope("v1", "DeleteOptions", ld(2, text(1, "not-" + uid)))
    status, answer, _ = raw("DELETE", f"{CONFIGMAPS}/a", wrong)
    assert status == 409 and "the UID in the precondition (not-" in failure(answer)[1]
    status, answer, _ = raw(
        "DELETE", f"{CONFIGMAPS}/a", envelope("v1", "DeleteOptions", text(5, "All"))
    )
    assert status == 200, answer
    assert srv.get("configmaps", "a")["metadata"]["uid"] == uid  # a dry run deletes nothing
    status, answer, _ = raw(
        "DELETE", f"{CONFIGMAPS}/a", envelope("v1", "DeleteOptions", ld(2, text(1, uid)))
    )
    assert status == 200, answer
    assert srv.list("configmaps") == []


def test_client_gos_accept_header_gets_json_and_protobuf_alone_gets_406(
    srv: ApiServer, raw: Raw
) -> None:
    """Negotiation takes the first listed type the server can produce (apiserver
    ``negotiation.NegotiateOutputMediaType``): JSON after protobuf; only protobuf is a 406."""
    srv.create("configmaps", {"metadata": {"name": "a"}})
    for path in (CONFIGMAPS, f"{CONFIGMAPS}/a"):
        status, body, content_type = raw("GET", path)
        assert status == 200 and content_type.startswith("application/json"), body
        status, body, _ = raw("GET", path, accept=PROTOBUF)
        assert status == 406 and failure(body)[0] == 406


def test_every_built_in_kind_served_has_a_protobuf_layout() -> None:
    missing = {
        (r.api_version, r.kind) for r in BUILTIN_RESOURCES if (r.api_version, r.kind) not in KINDS
    }
    # APIService is kube-aggregator's type, not k8s.io/api's (whose generated.proto the
    # layouts come from); kubectl and client-go's clientset send it as JSON.
    assert missing == {("apiregistration.k8s.io/v1", "APIService")}


def test_absent_fields_take_go_zero_values() -> None:
    """Times (``metav1.Time`` marshals its zero as null, ``time_proto.go``), quantities,
    pointer and non-pointer fields, inlined structs (a Volume's ``VolumeSource``)."""
    # PodSpec: volumes 1 {name 1, volumeSource 2 {emptyDir 2 {medium 1, sizeLimit 2 {string 1}}}}.
    volume = text(1, "scratch") + ld(2, ld(2, ld(2, text(1, "1Gi"))))
    container = text(1, "c") + ld(8, b"")  # resources 8, empty
    spec = ld(1, volume) + ld(2, container)
    # ObjectMeta creationTimestamp 8 {seconds 1}.
    meta = object_meta("p") + ld(8, integer(1, 1_700_000_000))
    pod = decode_object(envelope("v1", "Pod", ld(1, meta) + ld(2, spec)), "v1", "Pod")
    assert pod["metadata"] == {"name": "p", "creationTimestamp": "2023-11-14T22:13:20Z"}
    assert pod["spec"]["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert pod["spec"]["containers"] == [{"name": "c", "resources": {}}]
    assert pod["status"] == {}


# ------------------------------------------------------------------ with kubectl

KUBECTL = shutil.which("kubectl")

GENERATORS = [
    ["namespace", "team-a"],
    ["configmap", "settings", "--from-literal=a=1", "--from-literal=b=two"],
    ["secret", "generic", "token", "--from-literal=key=s3cret", "--type=Opaque"],
    ["deployment", "web", "--image=nginx:1", "--replicas=0", "--port=80"],
    ["service", "clusterip", "web", "--tcp=80:8080", "--tcp=443:web"],
    ["service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"],
]
"""``kubectl create`` generators of the kinds this server serves (client-go typed clients)."""


@pytest.fixture
def kubectl(srv: ApiServer, tmp_path: Any) -> Any:
    if KUBECTL is None:
        pytest.skip("no kubectl on PATH")
    kubeconfig = srv.write_kubeconfig(tmp_path / "kubeconfig")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, f"--kubeconfig={kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


_SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: "-".join(g[:2]))
def test_kubectl_create_stores_what_its_client_side_dry_run_prints(
    srv: ApiServer, kubectl: Any, generator: list[str]
) -> None:
    """``--dry-run=client -o json`` prints the Go object kubectl would send; sent for real it
    goes as protobuf, and what the server stores must be that object plus what a server sets."""
    printed = kubectl("create", *generator, "--dry-run=client", "-o", "json")
    assert printed.returncode == 0, printed.stderr
    expected = json.loads(printed.stdout)
    created = kubectl("create", *generator)
    assert created.returncode == 0, created.stderr
    [request] = [r for r in srv.requests if r.verb == "create"]
    assert request.content_type == PROTOBUF
    meta = expected["metadata"]
    stored = srv.get(request.resource or "", meta["name"], namespace=request.namespace)
    for name in (*_SERVER_SET, "namespace"):
        stored["metadata"].pop(name, None)
        meta.pop(name, None)
    stored.pop("status", None)
    expected.pop("status", None)
    resource = srv.resource(request.resource or "")
    default(resource, expected)
    complete(resource, expected, None, Allocator())
    for allocated in ("clusterIP", "clusterIPs"):  # allocated by the server: any will do
        expected.get("spec", {}).pop(allocated, None)
        stored.get("spec", {}).pop(allocated, None)
    for port in expected.get("spec", {}).get("ports", []):
        port.pop("nodePort", None)
    for port in stored.get("spec", {}).get("ports", []):
        port.pop("nodePort", None)
    assert stored == expected  # what kubectl prints, defaulted as kube-apiserver does


def test_the_generated_layout_is_whole() -> None:
    """Every message a field names is in the table (``tools/gen_protobuf_schema.py`` walks
    them from the kinds), with a known scalar, special or map type."""
    known = {
        "s",
        "b",
        "t",
        "i32",
        "i64",
        "@time",
        "@microtime",
        "@quantity",
        "@intstr",
        "@raw",
        "@fields",
    }
    for message in MESSAGES:
        for fld in _layout(message).values():
            types = fld.type[4:-1].split(",") if fld.type.startswith("map<") else [fld.type]
            for type_name in types:
                assert type_name in known or type_name in MESSAGES, (message, fld)
    assert set(KINDS.values()) <= set(MESSAGES)
