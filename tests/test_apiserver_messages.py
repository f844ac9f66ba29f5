"""Message texts of the test server, word for word as kube-apiserver v1.32 writes them:
selector parse errors and field label refusals, name validation of the kinds with other
name rules, server-side apply conflicts; and what a dry run allocates."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from rxkube._apivalidation import go_float, go_print
from rxkube.testing import ApiServer

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
SERVICES = "/api/v1/namespaces/default/services"
APPLY = "application/apply-patch+yaml"


def call(
    srv: ApiServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    **query: str,
) -> tuple[int, Any]:
    url = srv.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def refusal(srv: ApiServer, path: str, **query: str) -> str:
    """The message of a 400 BadRequest ``path`` answers."""
    status, body = call(srv, "GET", path, **query)
    assert status == 400 and body["reason"] == "BadRequest", body
    return str(body["message"])


# --- selectors --------------------------------------------------------------------------


@pytest.mark.parametrize("watch", ["false", "true"])
def test_a_selector_that_does_not_parse_answers_apimachinerys_error(
    srv: ApiServer, watch: str
) -> None:
    """The handler answers the parser's error alone as a 400 (apiserver
    pkg/endpoints/handlers/get.go: ``DecodeParameters`` then ``NewBadRequest(err.Error())``),
    for lists and watches; the label selector is decoded before the field selector
    (meta/internalversion zz_generated.conversion.go)."""
    assert (
        refusal(srv, CONFIGMAPS, watch=watch, labelSelector="a b", fieldSelector="x")
        == "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
    )
    assert (
        refusal(srv, CONFIGMAPS, watch=watch, labelSelector="a=b,")
        == "found '', expected: identifier after ','"
    )
    assert (
        refusal(srv, CONFIGMAPS, watch=watch, fieldSelector="metadata.name")
        == "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
    )
    assert (
        refusal(srv, CONFIGMAPS, watch=watch, fieldSelector="metadata.name=a=b")
        == "invalid field selector: unescaped character in value: 61"
    )


def test_field_labels_are_refused_as_each_kinds_conversion_refuses_them(srv: ApiServer) -> None:
    """Kinds that register a field label conversion refuse with their own text
    (pkg/apis/core/v1/conversion.go, pkg/apis/batch/v1/conversion.go); the others with
    apimachinery's ``DefaultMetaV1FieldSelectorConversion`` (runtime/conversion.go), which
    also refuses a ReplicaSet's ``status.replicas`` (kubernetes issue 135136) and takes
    ``metadata.namespace`` on a cluster-scoped kind."""
    known = 'is not a known field selector: only "metadata.name", "metadata.namespace"'
    assert refusal(srv, CONFIGMAPS, fieldSelector="spec.x=1") == f'"spec.x" {known}'
    replicasets = "/apis/apps/v1/namespaces/default/replicasets"
    assert refusal(srv, replicasets, fieldSelector="status.replicas=1") == (
        f'"status.replicas" {known}'
    )
    assert refusal(srv, "/api/v1/nodes", fieldSelector="metadata.namespace=x") == (
        "field label not supported: metadata.namespace"
    )
    assert refusal(srv, "/apis/batch/v1/namespaces/default/jobs", fieldSelector="spec.x=1") == (
        'field label "spec.x" not supported for batchv1.Job'
    )
    # The first refused one in the selector's sorted order (fields.ParseSelector sorts).
    assert refusal(srv, "/api/v1/pods", fieldSelector="spec.b=1,spec.a=2") == (
        "field label not supported: spec.a"
    )
    status, listed = call(
        srv,
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        fieldSelector="metadata.namespace=",
    )
    assert status == 200 and listed["items"] == []


def test_a_pods_spec_host_selects_by_its_node(srv: ApiServer) -> None:
    """pkg/apis/core/v1/conversion.go: pods' field label conversion reads ``spec.host``, what
    old v1 clients send, as ``spec.nodeName``, for lists and watches."""
    for name, node in (("a", "n1"), ("b", "n2")):
        pod = {
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        }
        assert call(srv, "POST", "/api/v1/namespaces/default/pods", pod)[0] == 201
    status, listed = call(srv, "GET", "/api/v1/pods", fieldSelector="spec.host=n2")
    assert status == 200 and [i["metadata"]["name"] for i in listed["items"]] == ["b"]


def test_services_select_by_cluster_ip_and_type(srv: ApiServer) -> None:
    """Service field selectors ``spec.clusterIP`` and ``spec.type`` (kubernetes v1.31,
    pkg/apis/core/v1/conversion.go ``AddFieldLabelConversionsForService``)."""
    for name, kind in (("a", "ClusterIP"), ("b", "NodePort")):
        service = {"metadata": {"name": name}, "spec": {"type": kind, "ports": [{"port": 80}]}}
        assert call(srv, "POST", SERVICES, service)[0] == 201
    ip = srv.get("services", "a")["spec"]["clusterIP"]
    for selector, names in (("spec.type=NodePort", ["b"]), (f"spec.clusterIP={ip}", ["a"])):
        status, listed = call(srv, "GET", SERVICES, fieldSelector=selector)
        assert status == 200 and [i["metadata"]["name"] for i in listed["items"]] == names


# --- names ------------------------------------------------------------------------------


def test_rbac_names_are_path_segments(srv: ApiServer) -> None:
    """pkg/apis/rbac/validation ``ValidateRBACName`` is ``path.IsValidPathSegmentName``
    (apimachinery pkg/api/validation/path/name.go): a ClusterRole may be named
    ``system:aggregate-to-edit``, not ``..`` nor anything with a ``/`` or ``%``."""
    roles = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    status, created = call(srv, "POST", roles, {"metadata": {"name": "system:aggregate-to-edit"}})
    assert status == 201 and created["metadata"]["name"] == "system:aggregate-to-edit"
    status, body = call(srv, "POST", roles, {"metadata": {"name": ".."}})
    assert status == 422 and body["message"] == (
        'ClusterRole.rbac.authorization.k8s.io ".." is invalid: metadata.name: Invalid value: '
        "\"..\": may not be '..'"
    )
    status, body = call(srv, "POST", roles, {"metadata": {"generateName": "a%b/"}})
    assert status == 422
    assert [(c["field"], c["message"]) for c in body["details"]["causes"]][:2] == [
        ("metadata.generateName", "Invalid value: \"a%b/\": may not contain '/'"),
        ("metadata.generateName", "Invalid value: \"a%b/\": may not contain '%'"),
    ]


def test_name_rules_of_other_kinds_keep_their_texts(srv: ApiServer) -> None:
    """apimachinery pkg/util/validation/validation.go: a Service is a DNS-1035 label, a
    Namespace a DNS-1123 label ("must not contain dots" for a subdomain), others DNS-1123
    subdomains; pkg/api/errors ``NewInvalid`` joins several causes in brackets."""
    status, body = call(
        srv, "POST", SERVICES, {"metadata": {"name": "1a"}, "spec": {"ports": [{"port": 1}]}}
    )
    assert status == 422 and body["message"] == (
        'Service "1a" is invalid: metadata.name: Invalid value: "1a": a DNS-1035 label must '
        "consist of lower case alphanumeric characters or '-', start with an alphabetic "
        "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
        "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    )
    status, body = call(srv, "POST", "/api/v1/namespaces", {"metadata": {"name": "a.b"}})
    assert status == 422 and body["message"] == (
        'Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": must not contain dots'
    )
    status, body = call(srv, "POST", CONFIGMAPS, {"metadata": {"name": "A" * 254}})
    assert status == 422 and body["message"].startswith(
        f'ConfigMap "{"A" * 254}" is invalid: [metadata.name: Invalid value: "{"A" * 254}": '
        "must be no more than 253 characters, metadata.name: Invalid value: "
    )


def test_a_cron_job_name_is_at_most_52_characters(srv: ApiServer) -> None:
    """pkg/apis/batch/validation ``ValidateCronJobCreate``; the Jobs it makes add 11."""
    cronjobs = "/apis/batch/v1/namespaces/default/cronjobs"
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}
    spec = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    status, body = call(srv, "POST", cronjobs, {"metadata": {"name": "c" * 53}, "spec": spec})
    assert status == 422 and body["message"] == (
        f'CronJob.batch "{"c" * 53}" is invalid: metadata.name: Invalid value: "{"c" * 53}": '
        "must be no more than 52 characters"
    )
    assert call(srv, "POST", cronjobs, {"metadata": {"name": "c" * 52}, "spec": spec})[0] == 201


LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


def test_a_leases_duration_and_transitions_are_validated(srv: ApiServer) -> None:
    """pkg/apis/coordination/validation ``ValidateLeaseSpec``: a duration, when set, above
    0; transitions, when set, not below 0 (the pointers' values printed as integers), on a
    create and on an update that changes them."""
    spec = {"leaseDurationSeconds": 0, "leaseTransitions": -1}
    status, body = call(srv, "POST", LEASES, {"metadata": {"name": "l"}, "spec": spec})
    assert status == 422 and body["message"] == (
        'Lease.coordination.k8s.io "l" is invalid: [spec.leaseDurationSeconds: Invalid '
        "value: 0: must be greater than 0, spec.leaseTransitions: Invalid value: -1: must be "
        "greater than or equal to 0]"
    )
    assert [(c["reason"], c["field"], c["message"]) for c in body["details"]["causes"]] == [
        ("FieldValueInvalid", "spec.leaseDurationSeconds", "Invalid value: 0: must be greater than 0"),
        ("FieldValueInvalid", "spec.leaseTransitions", "Invalid value: -1: must be greater than or equal to 0"),
    ]  # fmt: skip
    spec = {"leaseDurationSeconds": 1, "leaseTransitions": 0}
    status, lease = call(srv, "POST", LEASES, {"metadata": {"name": "l"}, "spec": spec})
    assert status == 201, lease
    lease["spec"]["leaseDurationSeconds"] = -5
    status, body = call(srv, "PUT", f"{LEASES}/l", lease)
    assert status == 422 and body["details"]["causes"][0]["message"] == (
        "Invalid value: -5: must be greater than 0"
    )


def test_a_leases_strategy_and_preferred_holder_are_dropped(srv: ApiServer) -> None:
    """pkg/registry/coordination/lease/strategy.go: with ``CoordinatedLeaderElection`` off
    (its default from v1.31 to v1.36) a create drops ``strategy`` and ``preferredHolder``,
    so their validation never sees them, and so does an update of a Lease without them."""
    spec = {"holderIdentity": "a", "strategy": "bogus", "preferredHolder": "b"}
    status, lease = call(srv, "POST", LEASES, {"metadata": {"name": "l"}, "spec": spec})
    assert status == 201 and lease["spec"] == {"holderIdentity": "a"}
    lease["spec"].update(strategy="OldestEmulationVersion", holderIdentity="c")
    status, lease = call(srv, "PUT", f"{LEASES}/l", lease)
    assert status == 200 and lease["spec"] == {"holderIdentity": "c"}


def test_finalizers_added_while_terminating_print_as_a_go_string_slice(srv: ApiServer) -> None:
    """apimachinery pkg/api/validation ``ValidateNoNewFinalizers``: the new finalizers
    sorted, printed with ``%#v`` (``[]string{"a", "b"}``); the cause comes twice, as
    ``rest.BeforeUpdate`` validates the metadata update before the strategy does again."""
    meta = {"name": "c", "finalizers": ["example.com/f"]}
    assert call(srv, "POST", CONFIGMAPS, {"metadata": meta})[0] == 201
    assert call(srv, "DELETE", f"{CONFIGMAPS}/c")[0] == 200
    patch = {"metadata": {"finalizers": ["example.com/f", "example.com/g", "example.com/a"]}}
    status, body = call(
        srv, "PATCH", f"{CONFIGMAPS}/c", patch, content_type="application/merge-patch+json"
    )
    text = (
        "Forbidden: no new finalizers can be added if the object is being deleted, found new "
        'finalizers []string{"example.com/a", "example.com/g"}'
    )
    assert (
        status == 422
        and body["message"] == f'ConfigMap "c" is invalid: metadata.finalizers: {text}'
    )
    assert [(c["field"], c["message"]) for c in body["details"]["causes"]] == [
        ("metadata.finalizers", text),
        ("metadata.finalizers", text),
    ]


def test_core_kinds_want_finalizer_names_qualified_or_standard(srv: ApiServer) -> None:
    """pkg/apis/core/validation ``ValidateObjectMeta`` and ``ValidateObjectMetaUpdate``
    add ``validateKubeFinalizerName`` to apimachinery's rules: a name without a ``/`` must
    be ``kubernetes``, ``orphan`` or ``foregroundDeletion``, on a create and an update.
    Kinds validated with apimachinery's rules alone (a Lease) take any qualified name."""
    meta = {"name": "c", "finalizers": ["x", "kubernetes", "orphan", "example.com/f"]}
    status, body = call(srv, "POST", CONFIGMAPS, {"metadata": meta})
    text = 'Invalid value: "x": name is neither a standard finalizer name nor is it fully qualified'
    assert (
        status == 422
        and body["message"] == f'ConfigMap "c" is invalid: metadata.finalizers[0]: {text}'
    )
    meta["finalizers"] = ["kubernetes"]
    status, created = call(srv, "POST", CONFIGMAPS, {"metadata": meta})
    assert status == 201, created
    created["metadata"]["finalizers"].append("y")
    status, body = call(srv, "PUT", f"{CONFIGMAPS}/c", created)
    assert status == 422 and [(c["field"], c["message"]) for c in body["details"]["causes"]] == [
        ("metadata.finalizers[1]", text.replace('"x"', '"y"'))
    ]
    lease = {"metadata": {"name": "l", "finalizers": ["x"]}}
    assert call(srv, "POST", LEASES, lease)[0] == 201


# --- server-side apply --------------------------------------------------------------------


def test_apply_conflicts_name_updaters_without_a_time_grouped_by_manager(srv: ApiServer) -> None:
    """apimachinery pkg/util/managedfields/internal/conflict.go: ``printManager`` prints
    the manager identifier, which ``BuildManagerIdentifier`` (managedfields.go) builds
    without the entry's time, so an updater is ``"x" using v1`` and never ``at <time>``;
    several conflicts are listed by manager in the order of their identifiers."""
    created = {"metadata": {"name": "cm"}, "data": {"a": "1", "b": "1"}}
    assert call(srv, "POST", CONFIGMAPS, created, fieldManager="zed")[0] == 201
    patch = {"data": {"c": "1"}}
    merge = "application/merge-patch+json"
    assert (
        call(srv, "PATCH", f"{CONFIGMAPS}/cm", patch, content_type=merge, fieldManager="amy")[0]
        == 200
    )
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
    status, body = call(
        srv, "PATCH", f"{CONFIGMAPS}/cm", {**config, "data": {"a": "2"}},
        content_type=APPLY, fieldManager="bob",
    )  # fmt: skip
    assert status == 409 and body["message"] == (
        'Apply failed with 1 conflict: conflict with "zed" using v1: .data.a'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "zed" using v1',
            "field": ".data.a",
        }
    ]
    status, body = call(
        srv, "PATCH", f"{CONFIGMAPS}/cm", {**config, "data": {"a": "2", "b": "2", "c": "2"}},
        content_type=APPLY, fieldManager="bob",
    )  # fmt: skip
    assert status == 409 and body["message"] == (
        "Apply failed with 3 conflicts: "
        'conflicts with "amy" using v1:\n- .data.c\n'
        'conflicts with "zed" using v1:\n- .data.a\n- .data.b'
    )


# --- dry run ------------------------------------------------------------------------------


def test_a_dry_run_service_takes_no_cluster_ip_or_node_port(srv: ApiServer) -> None:
    """pkg/registry/core/service/storage/alloc.go allocates with the allocators'
    ``DryRun()`` on a dry run; their ``allocateNext`` (ipallocator/bitmap.go,
    portallocator/allocator.go) answers the range's first address and port without
    reserving anything, so the next real Service gets what it would have had."""
    service = {"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    status, dry = call(srv, "POST", SERVICES, service, dryRun="All")
    assert status == 201
    assert dry["spec"]["clusterIP"] == "10.96.0.0" and dry["spec"]["clusterIPs"] == ["10.96.0.0"]
    assert dry["spec"]["ports"][0]["nodePort"] == 30000
    status, first = call(srv, "POST", SERVICES, service)
    assert status == 201
    with ApiServer(bookmark_interval=None) as fresh:
        status, untouched = call(fresh, "POST", SERVICES, service)
    assert status == 201  # what a server that saw no dry run hands out first
    assert first["spec"]["clusterIP"] == untouched["spec"]["clusterIP"] != "10.96.0.0"
    assert first["spec"]["ports"][0]["nodePort"] == untouched["spec"]["ports"][0]["nodePort"]
    # A dry-run update that makes a Service need a node port takes none either.
    plain = {"metadata": {"name": "plain"}, "spec": {"ports": [{"port": 80}]}}
    status, stored = call(srv, "POST", SERVICES, plain)
    assert status == 201
    changed = {**stored, "spec": {**stored["spec"], "type": "NodePort"}}
    status, dry_update = call(srv, "PUT", f"{SERVICES}/plain", changed, dryRun="All")
    assert status == 200 and dry_update["spec"]["ports"][0]["nodePort"] == 30000
    status, real_update = call(srv, "PUT", f"{SERVICES}/plain", changed)
    port = real_update["spec"]["ports"][0]["nodePort"]
    assert status == 200 and port != first["spec"]["ports"][0]["nodePort"]


# --- how Go prints values in messages ---------------------------------------------------


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (999999.0, "999999"),
        (1e6, "1e+06"),
        (1234567.5, "1.2345675e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (608863452348.1149, "6.088634523481149e+11"),
        (1e21, "1e+21"),
        (5.0, "5"),
        (-1.5, "-1.5"),
        (0.0, "0"),
    ],
)
def test_floats_print_as_gos_percent_v(number: float, text: str) -> None:
    """fmt's ``%v`` of a float64 is ``strconv.FormatFloat(x, 'g', -1, 64)``: exponent form
    below -4 and from 6 (strconv/ftoa.go ``formatDigits``: "if precision was the shortest
    possible, use precision 6 for this decision")."""
    assert go_float(number) == text


def test_decoded_values_print_with_integers_kept() -> None:
    """apimachinery reads patches and unstructured objects with sigs.k8s.io/json's
    ``PreserveInts`` (apiserver handlers/patch.go ``UnmarshalCaseSensitivePreserveInts``),
    so an integer is an int64 and prints whole however large; ``%v`` sorts map keys."""
    value = {"b": [1, 2.5, None, True], "a": {"big": 10**7, "float": 1e7}}
    assert go_print(value) == "map[a:map[big:10000000 float:1e+07] b:[1 2.5 <nil> true]]"


def test_a_strategic_merge_error_prints_the_patch_item_as_go_does(srv: ApiServer) -> None:
    """strategicpatch ``mergeMap``'s ``map: %v does not contain declared merge key: %s``
    (apimachinery pkg/util/strategicpatch/patch.go), for a Service port (merge key
    ``port``) that has none."""
    service = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
    assert call(srv, "POST", SERVICES, service)[0] == 201
    patch = {"spec": {"ports": [{"name": "x", "nodePort": 1234567.5, "targetPort": 8080}]}}
    status, body = call(
        srv, "PATCH", f"{SERVICES}/s", patch, content_type="application/strategic-merge-patch+json"
    )
    # An error interpretStrategicMergePatchError passes on as it is: a 500 (patch.go).
    assert status == 500, body
    assert body["message"] == (
        "map: map[name:x nodePort:1.2345675e+06 targetPort:8080] does not contain declared "
        "merge key: port"
    )


def test_a_schema_limit_prints_as_a_go_float(srv: ApiServer) -> None:
    """kube-openapi validate ``ExceedsMaximum``: ``%s in %s should be less than or equal to
    %v`` of the schema's float64 maximum."""
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"size": {"type": "integer", "maximum": 1000000}},
                        }
                    },
                }
            ],
        },
    }
    assert (
        call(srv, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)[0] == 201
    )
    gadget = {
        "apiVersion": "example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g"},
        "size": 2000000,
    }
    status, body = call(srv, "POST", "/apis/example.com/v1/namespaces/default/gadgets", gadget)
    assert status == 422
    assert body["details"]["causes"][0]["message"] == (
        "Invalid value: 2000000: size in body should be less than or equal to 1e+06"
    )
