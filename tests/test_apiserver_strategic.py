"""Strategic merge patches (``application/strategic-merge-patch+json``) over HTTP.

Each case follows the server half of k8s.io/apimachinery ``pkg/util/strategicpatch``
(``patch.go``, the function named in the test's docstring), with the patch metadata of
the built-in types' Go struct tags (k8s.io/api v0.32), and kube-apiserver's
``handlers/patch.go`` (``applyPatchToObject``, ``interpretStrategicMergePatchError``) for
the answers to patches it cannot apply.
"""

from __future__ import annotations

from typing import Any

import pytest

from rxkube.errors import ApiError, ConfigError
from rxkube.testing import ApiServer
from tests.apiserver_http import Http

SMP = {"Content-Type": "application/strategic-merge-patch+json"}
PODS = "/api/v1/namespaces/default/pods"
SERVICES = "/api/v1/namespaces/default/services"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def containers(*items: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"containers": list(items)}}


def spec(*items: dict[str, Any]) -> dict[str, Any]:
    return {"containers": list(items)}


def make_pod(api: Http, spec: dict[str, Any], **meta: Any) -> None:
    body = {"metadata": {"name": "p", **meta}, "spec": spec}
    status, created, _ = api.request("POST", PODS, body)
    assert status == 201, created


def patch(api: Http, path: str, body: Any, **params: Any) -> tuple[int, Any]:
    status, answer, _ = api.request("PATCH", path, body, headers=SMP, **params)
    return status, answer


def patched_pod(api: Http, body: Any) -> dict[str, Any]:
    status, answer = patch(api, f"{PODS}/p", body)
    assert status == 200, answer
    result: dict[str, Any] = answer
    return result


def names(items: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in items]


_DEFAULTS = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "resources": {},
    "protocol": "TCP",
}


def _pull_policy(image: str) -> str:
    return "IfNotPresent" if ":" in image and not image.endswith(":latest") else "Always"


def sent(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items without the values kube-apiserver defaults (``SetDefaults_Container``,
    ``SetDefaults_Service`` in ``pkg/apis/core/v1/defaults.go``: a port's ``targetPort``
    is its ``port``, an untagged image is pulled ``Always``), so a test compares what the
    merge made of what it sent."""
    return [
        {
            key: value
            for key, value in item.items()
            if _DEFAULTS.get(key, ...) != value
            and not (key == "targetPort" and value == item.get("port"))
            and not (key == "imagePullPolicy" and value == _pull_policy(item["image"]))
        }
        for item in items
    ]


# ------------------------------------------------------------------ lists of maps


def test_containers_merge_by_name_keeping_the_others(api: Http) -> None:
    """``mergeSliceWithoutSpecialElements``: a patch item merges into the live item with
    its merge key (``PodSpec.containers``: ``patchMergeKey:"name"``); others stay."""
    make_pod(api, spec({"name": "app", "image": "a:1"}, {"name": "sidecar", "image": "s:1"}))
    pod = patched_pod(api, containers({"name": "app", "image": "a:2"}))
    assert sent(pod["spec"]["containers"]) == [
        {"name": "app", "image": "a:2"},
        {"name": "sidecar", "image": "s:1"},
    ]


def test_a_new_item_goes_before_the_live_ones_without_set_element_order(api: Http) -> None:
    """``mergeSortedSlice``: a server-only item goes first only when the live list has it
    before the patch item; an item new to the list is never found there, so it leads."""
    make_pod(api, spec({"name": "a", "image": "x"}, {"name": "b", "image": "x"}))
    pod = patched_pod(api, containers({"name": "c", "image": "x"}))
    assert names(pod["spec"]["containers"]) == ["c", "a", "b"]


def test_set_element_order_orders_the_merged_list(api: Http) -> None:
    """``mergePatchIntoOriginal``, the "merge lists of maps" case of ``patch_test.go``:
    ``$setElementOrder`` first, live-only fields kept, and the directive is not stored."""
    make_pod(
        api,
        spec({"name": "1", "image": "a"}, {"name": "2", "image": "b"}),
    )
    pod = patched_pod(
        api,
        {
            "spec": {
                "$setElementOrder/containers": [
                    {"name": "4"},
                    {"name": "1"},
                    {"name": "2"},
                    {"name": "3"},
                ],
                "containers": [{"name": "4", "image": "d"}, {"name": "3", "image": "c"}],
            }
        },
    )
    assert sent(pod["spec"]["containers"]) == [
        {"name": "4", "image": "d"},
        {"name": "1", "image": "a"},
        {"name": "2", "image": "b"},
        {"name": "3", "image": "c"},
    ]
    assert "$setElementOrder/containers" not in pod["spec"]


def test_set_element_order_alone_reorders_the_live_list(api: Http) -> None:
    """``mergePatchIntoOriginal``: the list found only in the original is reordered."""
    make_pod(api, spec({"name": "a", "image": "x"}, {"name": "b", "image": "y"}))
    pod = patched_pod(
        api, {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}
    )
    assert names(pod["spec"]["containers"]) == ["b", "a"]


def test_set_element_order_that_contradicts_the_patch_list_answers_500(api: Http) -> None:
    """``validatePatchWithSetOrderList``: a plain error, which kube-apiserver answers 500."""
    make_pod(api, spec({"name": "a", "image": "x"}, {"name": "b", "image": "y"}))
    status, body = patch(
        api,
        f"{PODS}/p",
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b", "image": "1"}, {"name": "a", "image": "2"}],
            }
        },
    )
    assert status == 500 and "reason" not in body
    assert body["message"].startswith("The order in patch list:\n[map[image:1 name:b] ")
    assert body["message"].endswith(
        " doesn't match $setElementOrder list:\n[map[name:a] map[name:b]]\n"
    )


def test_set_element_order_with_a_bad_prefix_answers_400(api: Http) -> None:
    """``extractKey`` returns ``ErrBadPatchFormatForSetElementOrderList``, a 400 by
    ``interpretStrategicMergePatchError``; a patch list that is no list is a plain
    ``ErrBadArgType`` (500)."""
    make_pod(api, spec({"name": "a", "image": "x"}))
    status, answer = patch(api, f"{PODS}/p", {"spec": {"$setElementOrderX": [{"name": "a"}]}})
    assert (status, answer["reason"]) == (400, "BadRequest")
    assert answer["message"] == "invalid patch format of setElementOrder list"
    body = {"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": {"name": "a"}}}
    status, answer = patch(api, f"{PODS}/p", body)
    assert status == 500
    assert answer["message"] == "expected a []interface {}, but received a map[string]interface {}"


def test_patch_delete_item_removes_the_live_item(api: Http) -> None:
    """``mergeSliceWithSpecialElements``: ``{"$patch": "delete", <key>: v}`` removes it."""
    make_pod(api, spec({"name": "a", "image": "x"}, {"name": "b", "image": "y"}))
    pod = patched_pod(api, containers({"name": "a", "$patch": "delete"}))
    assert sent(pod["spec"]["containers"]) == [{"name": "b", "image": "y"}]


def test_patch_replace_item_makes_the_patch_list_the_whole_list(api: Http) -> None:
    """``mergeSliceWithSpecialElements``: ``{"$patch": "replace"}`` among the items."""
    make_pod(api, spec({"name": "a", "image": "x"}, {"name": "b", "image": "y"}))
    pod = patched_pod(api, containers({"name": "c", "image": "z"}, {"$patch": "replace"}))
    assert sent(pod["spec"]["containers"]) == [{"name": "c", "image": "z"}]


def test_patch_merge_item_and_unknown_directives_answer_500(api: Http) -> None:
    """``mergeSliceWithSpecialElements`` refuses ``merge`` in a list and unknown values;
    ``handleDirectiveInMergeMap`` accepts only ``replace`` and ``delete`` on a map."""
    make_pod(api, spec({"name": "a", "image": "x"}))
    cases = [
        (containers({"$patch": "merge"}), "merging lists cannot yet be specified in the patch"),
        (
            containers({"name": "a", "$patch": "drop"}),
            "unknown patch type: drop in map: map[$patch:drop name:a]",
        ),
        (
            {"spec": {"$patch": "merge"}},
            "unknown patch type: merge in map: map[$patch:merge]",
        ),
    ]
    for body, message in cases:
        status, answer = patch(api, f"{PODS}/p", body)
        assert (status, answer["message"]) == (500, message)


def test_an_item_without_its_merge_key_answers_500(api: Http) -> None:
    """``mergeSliceWithoutSpecialElements``: ``mergepatch.ErrNoMergeKey``, a 500."""
    make_pod(api, spec({"name": "a", "image": "x"}))
    status, answer = patch(api, f"{PODS}/p", containers({"image": "y"}))
    assert status == 500 and "reason" not in answer
    assert answer["message"] == "map: map[image:y] does not contain declared merge key: name"


def test_nested_lists_merge_by_their_own_keys(api: Http) -> None:
    """Container ``env`` (``name``), ``ports`` (``containerPort``) and ``volumeMounts``
    (``mountPath``) merge inside the container they belong to."""
    make_pod(
        api,
        spec(
            {
                "name": "a",
                "image": "x",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80}],
                "volumeMounts": [{"name": "v", "mountPath": "/a"}],
            }
        ),
    )
    pod = patched_pod(
        api,
        containers(
            {
                "name": "a",
                "env": [{"name": "B", "value": "3"}],
                "ports": [{"containerPort": 443}],
                "volumeMounts": [{"name": "w", "mountPath": "/a"}],
            }
        ),
    )
    [container] = pod["spec"]["containers"]
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert [p["containerPort"] for p in container["ports"]] == [443, 80]
    assert container["volumeMounts"] == [{"name": "w", "mountPath": "/a"}]


def test_untagged_lists_are_replaced(api: Http) -> None:
    """``mergeSliceHandler``: without ``patchStrategy:"merge"`` (``args``) the patch list
    replaces the live one."""
    make_pod(api, spec({"name": "a", "image": "x", "args": ["1", "2"]}))
    pod = patched_pod(api, containers({"name": "a", "args": ["3"]}))
    assert pod["spec"]["containers"][0]["args"] == ["3"]


# --------------------------------------------------------------- lists of scalars


def test_merge_lists_of_scalars_are_a_union(api: Http) -> None:
    """``mergeSlice``: ``ObjectMeta.finalizers`` (``patchStrategy:"merge"``, no key)."""
    make_pod(api, spec({"name": "a", "image": "x"}), finalizers=["x/a", "x/b"])
    pod = patched_pod(api, {"metadata": {"finalizers": ["x/c", "x/a"]}})
    assert pod["metadata"]["finalizers"] == ["x/c", "x/a", "x/b"]


def test_delete_from_primitive_list(api: Http) -> None:
    """``preprocessDeletionListForMerging`` and ``deleteFromSlice``."""
    make_pod(api, spec({"name": "a", "image": "x"}), finalizers=["x/a", "x/b", "x/c"])
    pod = patched_pod(api, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x/a", "x/c"]}})
    assert pod["metadata"]["finalizers"] == ["x/b"]
    status, answer = patch(
        api, f"{PODS}/p", {"metadata": {"$deleteFromPrimitiveListfinalizers": ["x/b"]}}
    )
    assert (status, answer["message"]) == (400, "invalid patch format of primitive list")


def test_mixed_item_types_answer_500(api: Http) -> None:
    """``sliceElementType``: items of two Go types (the live list's first item decides,
    so a list inside a list of strings is this error too, not ``ErrNoListOfLists``)."""
    make_pod(api, spec({"name": "a", "image": "x"}), finalizers=["x/a"])
    for items, shown in (([{"x": "y"}], "[map[x:y]]"), ([["x/b"]], "[[x/b]]")):
        status, answer = patch(api, f"{PODS}/p", {"metadata": {"finalizers": items}})
        assert status == 500 and "reason" not in answer
        assert answer["message"] == f"list element types are not identical: [[x/a] {shown}]"


# -------------------------------------------------------------------------- maps


def test_null_deletes_and_maps_merge(api: Http) -> None:
    """``mergeMap``: ``null`` deletes a key; nulls inside a new map are discarded
    (``IgnoreUnmatchedNulls``, ``discardNullValuesFromPatch``)."""
    make_pod(
        api,
        {"containers": [{"name": "a", "image": "x"}], "nodeSelector": {"a": "1", "b": "2"}},
        labels={"keep": "1", "drop": "2"},
    )
    pod = patched_pod(
        api,
        {
            "metadata": {"labels": {"drop": None, "new": "3"}},
            "spec": {"nodeSelector": {"a": None}, "securityContext": {"runAsUser": 1, "x": None}},
        },
    )
    assert pod["metadata"]["labels"] == {"keep": "1", "new": "3"}
    assert pod["spec"]["nodeSelector"] == {"b": "2"}
    assert pod["spec"]["securityContext"] == {"runAsUser": 1}


def test_patch_replace_and_delete_on_maps(api: Http) -> None:
    """``handleDirectiveInMergeMap``: ``replace`` keeps only the patch's keys, ``delete``
    leaves an empty map, which the ``omitempty`` field is then stored without."""
    make_pod(api, {"containers": [{"name": "a", "image": "x"}], "nodeSelector": {"a": "1"}})
    pod = patched_pod(api, {"spec": {"nodeSelector": {"b": "2", "$patch": "replace"}}})
    assert pod["spec"]["nodeSelector"] == {"b": "2"}
    pod = patched_pod(api, {"spec": {"nodeSelector": {"$patch": "delete"}}})
    assert "nodeSelector" not in pod["spec"]


def test_retain_keys_clears_the_keys_it_does_not_list(api: Http) -> None:
    """``applyRetainKeysDirective``: a volume switched from ``emptyDir`` to ``hostPath``,
    as kubectl sends it for ``patchStrategy:"merge,retainKeys"`` volumes."""
    make_pod(
        api,
        {
            "containers": [{"name": "a", "image": "x"}],
            "volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}],
        },
    )
    pod = patched_pod(
        api,
        {
            "spec": {
                "volumes": [
                    {"name": "v", "hostPath": {"path": "/x"}, "$retainKeys": ["hostPath", "name"]}
                ]
            }
        },
    )
    assert pod["spec"]["volumes"] == [
        {"name": "v", "hostPath": {"path": "/x"}},
        {"name": "w", "emptyDir": {}},
    ]


def test_retain_keys_that_misses_a_patched_key_answers_400(api: Http) -> None:
    """``applyRetainKeysDirective``: ``ErrBadPatchFormatForRetainKeys`` (400) when the patch
    sets a key the list lacks, or the directive is not a list."""
    make_pod(api, spec({"name": "a", "image": "x"}))
    for retain in (["name"], "name"):
        status, answer = patch(
            api, f"{PODS}/p", containers({"name": "a", "image": "y", "$retainKeys": retain})
        )
        assert (status, answer["message"]) == (400, "invalid patch format of retainKeys")


def test_replace_strategy_replaces_a_map(api: Http, srv: ApiServer) -> None:
    """``mergeMapHandler``: ``PodDisruptionBudgetSpec.selector`` is ``patchStrategy:"replace"``.
    The object API's ``patch_type="strategic"`` goes the same way."""
    pdbs = "policy/v1/poddisruptionbudgets"
    try:
        srv.create(
            pdbs, {"metadata": {"name": "b"}, "spec": {"selector": {"matchLabels": {"a": "1"}}}}
        )
    except ConfigError:
        pytest.skip("poddisruptionbudgets are not served")
    result = srv.patch(
        pdbs, "b", {"spec": {"selector": {"matchLabels": {"b": "2"}}}}, patch_type="strategic"
    )
    assert result["spec"]["selector"] == {"matchLabels": {"b": "2"}}


# ------------------------------------------------------------ kinds and endpoints


def test_service_ports_merge_by_port(api: Http) -> None:
    """``ServiceSpec.ports``: ``patchMergeKey:"port"``."""
    body = {
        "metadata": {"name": "s"},
        "spec": {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
    }
    assert api.request("POST", SERVICES, body)[0] == 201
    status, service = patch(
        api, f"{SERVICES}/s", {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
    )
    assert status == 200
    assert sent(service["spec"]["ports"]) == [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "https", "port": 443},
    ]


def test_status_conditions_merge_by_type_on_the_status_subresource(api: Http) -> None:
    """``PodStatus.conditions``: ``patchMergeKey:"type"``, through ``/status``."""
    make_pod(api, spec({"name": "a", "image": "x"}))
    path = f"{PODS}/p/status"
    first = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    assert patch(api, path, first)[0] == 200
    status, pod = patch(
        api,
        path,
        {
            "status": {
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "True"},
                ]
            }
        },
    )
    assert status == 200
    # A PodCondition's times are metav1.Time structs, which write their zero as null.
    unset = {"lastProbeTime": None, "lastTransitionTime": None}
    assert pod["status"]["conditions"] == [
        {"type": "PodScheduled", "status": "True", **unset},
        {"type": "Ready", "status": "True", **unset},
    ]
    assert pod["status"]["phase"] == "Pending"


def test_deployment_template_containers_merge(api: Http) -> None:
    """``DeploymentSpec.template`` → ``PodTemplateSpec.spec`` → ``PodSpec.containers``."""
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "w:1"}, {"name": "log", "image": "l:1"}]},
    }
    body = {
        "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template},
    }
    assert api.request("POST", DEPLOYMENTS, body)[0] == 201
    status, deployment = patch(
        api,
        f"{DEPLOYMENTS}/d",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "w:2"}]}}}},
    )
    assert status == 200
    assert sent(deployment["spec"]["template"]["spec"]["containers"]) == [
        {"name": "web", "image": "w:2"},
        {"name": "log", "image": "l:1"},
    ]
    assert deployment["metadata"]["generation"] == 2


def test_custom_resources_refuse_strategic_merge_patches(api: Http, srv: ApiServer) -> None:
    """``StrategicMergeMapPatch`` has no struct for custom resources: 415, as ever."""
    widgets = srv.add_resource("example.com", "v1", "Widget", "widgets")
    srv.create(widgets, {"metadata": {"name": "w"}})
    status, _ = patch(api, "/apis/example.com/v1/namespaces/default/widgets/w", {"spec": {}})
    assert status == 415


def test_object_api_applies_strategic_patches_of_built_in_kinds_only(srv: ApiServer) -> None:
    """``srv.patch(patch_type="strategic")`` merges as the HTTP endpoint does; a custom
    resource refuses it with the endpoint's 415."""
    srv.create("pods", {"metadata": {"name": "p"}, "spec": spec({"name": "a", "image": "x"})})
    pod = srv.patch("pods", "p", containers({"name": "b", "image": "y"}), patch_type="strategic")
    assert names(pod["spec"]["containers"]) == ["b", "a"]
    widgets = srv.add_resource("example.com", "v1", "Widget", "widgets")
    srv.create(widgets, {"metadata": {"name": "w"}})
    with pytest.raises(ApiError) as refused:
        srv.patch(widgets, "w", {"spec": {}}, patch_type="strategic")
    assert refused.value.status["code"] == 415
