"""One stored object, two versions: ``events.k8s.io/v1`` Events and ``autoscaling/v1``
HorizontalPodAutoscalers, over HTTP.

Checked against kubernetes/kubernetes: pkg/apis/events/v1/conversion.go
(``Convert_core_Event_To_v1_Event`` and back), ``AddFieldLabelConversionsForEvent``,
pkg/apis/core/validation/events.go (``ValidateEventCreate``, ``ValidateEventUpdate``,
``legacyValidateEvent``), pkg/apis/autoscaling/v1/conversion.go
(``Convert_autoscaling_HorizontalPodAutoscaler_To_v1_HorizontalPodAutoscaler`` and back),
pkg/apis/autoscaling/annotations.go and pkg/apis/autoscaling/v2/defaults.go.
"""

from __future__ import annotations

import json
from typing import Any

from tests.apiserver_http import Http
from tests.test_apiserver_tables import get_table

CORE_EVENTS = "/api/v1/namespaces/default/events"
EVENTS = "/apis/events.k8s.io/v1/namespaces/default/events"
HPA_V1 = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers"
HPA_V2 = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"
MERGE = {"Content-Type": "application/merge-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}


def core_event(name: str = "e1") -> dict[str, Any]:
    """An Event as kubelet's legacy recorder writes it."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u1"},
        "reason": "Started",
        "message": "Started container c",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2024-01-01T00:00:00Z",
        "lastTimestamp": "2024-01-01T00:01:00Z",
        "count": 3,
        "type": "Normal",
    }


def new_event(name: str = "e2", **changes: Any) -> dict[str, Any]:
    """An Event as client-go's events.k8s.io recorder writes it."""
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingController": "example.com/ctl",
        "reportingInstance": "ctl-1",
        "action": "Reconcile",
        "reason": "Synced",
        "regarding": {"kind": "Deployment", "name": "web", "namespace": "default"},
        "note": "all good",
        "type": "Normal",
        **changes,
    }


def without_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    out.pop("metadata")
    return out


def test_a_core_event_reads_as_events_k8s_io_v1(api: Http) -> None:
    """``Convert_core_Event_To_v1_Event``: involvedObject→regarding, message→note,
    source/firstTimestamp/lastTimestamp/count→deprecated*; eventTime (no omitempty) null."""
    status, created, _ = api.request("POST", CORE_EVENTS, core_event())
    assert status == 201
    status, read = api.get(f"{EVENTS}/e1")
    assert status == 200
    assert read["metadata"] == created["metadata"]
    assert without_server_fields(read) == {
        "kind": "Event",
        "apiVersion": "events.k8s.io/v1",
        "eventTime": None,
        "reason": "Started",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u1"},
        "note": "Started container c",
        "type": "Normal",
        "deprecatedSource": {"component": "kubelet", "host": "node-1"},
        "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z",
        "deprecatedLastTimestamp": "2024-01-01T00:01:00Z",
        "deprecatedCount": 3,
    }
    # A list is read in its version too, item by item.
    status, listed = api.get(EVENTS)
    assert listed["apiVersion"] == "events.k8s.io/v1"
    assert [item["note"] for item in listed["items"]] == ["Started container c"]


def test_an_events_k8s_io_event_reads_as_core_v1(api: Http) -> None:
    """``Convert_v1_Event_To_core_Event``; core's reportingComponent and
    reportingInstance have no omitempty, source is a struct, the timestamps are null."""
    status, created, _ = api.request("POST", EVENTS, new_event())
    assert status == 201, created
    assert created["apiVersion"] == "events.k8s.io/v1"
    status, read = api.get(f"{CORE_EVENTS}/e2")
    assert without_server_fields(read) == {
        "kind": "Event",
        "apiVersion": "v1",
        "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "default"},
        "reason": "Synced",
        "message": "all good",
        "source": {},
        "firstTimestamp": None,
        "lastTimestamp": None,
        "type": "Normal",
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "action": "Reconcile",
        "reportingComponent": "example.com/ctl",
        "reportingInstance": "ctl-1",
    }
    # Each write's managedFields entry is in the version it was made in.
    assert [entry["apiVersion"] for entry in read["metadata"]["managedFields"]] == [
        "events.k8s.io/v1"
    ]


def test_events_k8s_io_creates_are_validated_strictly(api: Http) -> None:
    """``ValidateEventCreate`` for events.k8s.io/v1: eventTime, a Normal/Warning type,
    reporting fields, no deprecated fields; the error names the internal kind."""
    body = new_event(
        eventTime=None,
        type="Info",
        reportingController="",
        deprecatedCount=2,
        series={"count": 1},
    )
    status, error, _ = api.request("POST", EVENTS, body)
    assert status == 422
    assert error["details"]["kind"] == "Event"
    fields = [(c["field"], c["message"]) for c in error["details"]["causes"]]
    assert fields == [
        ("series.count", 'Invalid value: "": should be at least 2'),
        ("series.lastObservedTime", "Required value"),
        ("eventTime", "Required value"),
        ("type", 'Invalid value: "": has invalid value: Info'),
        ("count", 'Invalid value: "": needs to be unset'),
    ]
    assert error["message"].startswith('Event "e2" is invalid: [series.count: ')


def test_core_events_keep_the_legacy_validation(api: Http) -> None:
    """``legacyValidateEvent``: without eventTime only the namespaces must agree; with it
    the reporting fields are required (named as the internal type names them)."""
    mismatched = core_event()
    mismatched["involvedObject"]["namespace"] = "other"
    status, error, _ = api.request("POST", CORE_EVENTS, mismatched)
    assert status == 422
    assert error["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "other": does not match event.namespace',
            "field": "involvedObject.namespace",
        }
    ]
    timed = {**core_event("e3"), "eventTime": "2024-01-01T00:00:00.000000Z"}
    status, error, _ = api.request("POST", CORE_EVENTS, timed)
    assert status == 422
    assert [c["field"] for c in error["details"]["causes"]] == [
        "reportingController",
        "reportingController",
        "reportingController",
        "reportingInstance",
        "action",
    ]
    status, _, _ = api.request("POST", CORE_EVENTS, core_event("e4"))
    assert status == 201


def test_events_k8s_io_updates_keep_the_event_immutable(api: Http) -> None:
    """``ValidateEventUpdate``: through events.k8s.io/v1 the note (core message) cannot
    change; through core v1 it can (no further validation for backwards compatibility)."""
    api.request("POST", EVENTS, new_event())
    status, error, _ = api.request("PATCH", f"{EVENTS}/e2", {"note": "changed"}, headers=MERGE)
    assert status == 422
    assert error["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "changed": field is immutable',
            "field": "message",
        }
    ]
    status, patched, _ = api.request(
        "PATCH", f"{CORE_EVENTS}/e2", {"message": "changed"}, headers=MERGE
    )
    assert status == 200 and patched["message"] == "changed"
    status, series, _ = api.request(
        "PATCH",
        f"{EVENTS}/e2",
        {
            "note": "changed",
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:05:00.000000Z"},
        },
        headers=MERGE,
    )
    assert status == 200, series
    assert series["series"]["count"] == 2


def test_field_selectors_use_each_versions_labels(api: Http) -> None:
    """``AddFieldLabelConversionsForEvent``: regarding.* and reportingController at
    events.k8s.io/v1, mapped to the core fields; the core labels are not accepted there."""
    api.request("POST", CORE_EVENTS, core_event())
    api.request("POST", EVENTS, new_event())
    _, listed = api.get(EVENTS, fieldSelector="regarding.kind=Deployment")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["e2"]
    _, listed = api.get(EVENTS, fieldSelector="reportingController=example.com/ctl")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["e2"]
    _, listed = api.get(CORE_EVENTS, fieldSelector="involvedObject.kind=Pod")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["e1"]
    status, error = api.get(EVENTS, fieldSelector="involvedObject.kind=Pod")
    assert status == 400
    assert error["message"] == "field label not supported: involvedObject.kind"


def test_a_watch_reads_writes_of_the_other_version(api: Http) -> None:
    with api.watch(EVENTS) as watch:
        api.request("POST", CORE_EVENTS, core_event())
        (event,) = watch.events(1)
    assert event["type"] == "ADDED"
    assert event["object"]["apiVersion"] == "events.k8s.io/v1"
    assert event["object"]["note"] == "Started container c"


def test_event_table_rows_print_the_stored_event(api: Http) -> None:
    """kube-apiserver prints the internal object: the same cells at both versions; the
    embedded object is in the version asked for."""
    api.request("POST", EVENTS, new_event())
    core = get_table(api, CORE_EVENTS, includeObject="Object")
    new = get_table(api, EVENTS, includeObject="Object")
    assert [r["cells"][1:] for r in new["rows"]] == [r["cells"][1:] for r in core["rows"]]
    assert new["rows"][0]["cells"][1:4] == ["Normal", "Synced", "deployment/web"]
    assert new["rows"][0]["object"]["note"] == "all good"
    assert core["rows"][0]["object"]["message"] == "all good"


def hpa_v1(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": name, "apiVersion": "apps/v1"},
            "maxReplicas": 5,
            **spec,
        },
    }


CPU_50 = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}  # fmt: skip
MEMORY = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}  # fmt: skip


def test_an_autoscaling_v1_hpa_is_stored_as_v2(api: Http) -> None:
    """``Convert_v1_HorizontalPodAutoscalerSpec_To_autoscaling_...``: the CPU target is a
    Utilization metric; without one, the default 80% (``DefaultCPUUtilization``)."""
    status, created, _ = api.request("POST", HPA_V1, hpa_v1(targetCPUUtilizationPercentage=50))
    assert status == 201, created
    assert created["spec"] == {
        "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
        "minReplicas": 1,
        "maxReplicas": 5,
        "targetCPUUtilizationPercentage": 50,
    }
    assert created["status"] == {"currentReplicas": 0, "desiredReplicas": 0}
    _, v2 = api.get(f"{HPA_V2}/web")
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"] == [CPU_50]
    assert v2["spec"]["minReplicas"] == 1
    api.request("POST", HPA_V1, hpa_v1("other"))
    _, v2 = api.get(f"{HPA_V2}/other")
    assert v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80


def test_what_v1_cannot_say_travels_in_annotations(api: Http) -> None:
    """A v2 HPA with a memory metric, a behaviour and conditions read as v1: the CPU target
    in the field, the rest in the round-trip annotations (the behaviour as the internal Go
    type marshals it); written back as v1, the v2 object is whole and the annotations gone."""
    v2 = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "annotations": {"team": "a"}},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
            "maxReplicas": 5,
            "metrics": [CPU_50, MEMORY],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
        },
    }
    status, created, _ = api.request("POST", HPA_V2, v2)
    assert status == 201, created
    # pkg/apis/autoscaling/v2/defaults.go fills the behaviour's unset rules.
    assert created["spec"]["behavior"] == {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 60,
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
    }
    condition = {
        "type": "AbleToScale",
        "status": "True",
        "lastTransitionTime": "2024-01-01T00:00:00Z",
        "reason": "ReadyForNewScale",
    }
    current = {"type": "Resource", "resource": {"name": "cpu", "current": {"averageValue": "10m", "averageUtilization": 20}}}  # fmt: skip
    api.request(
        "PATCH",
        f"{HPA_V2}/web/status",
        {"status": {"desiredReplicas": 2, "currentReplicas": 2, "conditions": [condition], "currentMetrics": [current]}},
        headers=MERGE,
    )  # fmt: skip
    _, v1 = api.get(f"{HPA_V1}/web")
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50
    assert v1["status"] == {
        "currentReplicas": 2,
        "desiredReplicas": 2,
        "currentCPUUtilizationPercentage": 20,
    }
    annotations = v1["metadata"]["annotations"]
    assert annotations["team"] == "a"
    assert json.loads(annotations["autoscaling.alpha.kubernetes.io/metrics"]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}
    ]
    assert json.loads(annotations["autoscaling.alpha.kubernetes.io/current-metrics"]) == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "currentAverageUtilization": 20,
                "currentAverageValue": "10m",
            },
        }
    ]
    assert json.loads(annotations["autoscaling.alpha.kubernetes.io/conditions"]) == [condition]
    behavior = json.loads(annotations["autoscaling.alpha.kubernetes.io/behavior"])
    assert behavior["ScaleDown"] == {
        "StabilizationWindowSeconds": 60,
        "SelectPolicy": "Max",
        "Policies": [{"Type": "Percent", "Value": 100, "PeriodSeconds": 15}],
    }
    # A v1 client's read-modify-write keeps what it could not see.
    v1["spec"]["maxReplicas"] = 7
    status, replaced, _ = api.request("PUT", f"{HPA_V1}/web", v1)
    assert status == 200, replaced
    _, after = api.get(f"{HPA_V2}/web")
    assert after["spec"]["maxReplicas"] == 7
    assert after["spec"]["metrics"] == [MEMORY, CPU_50]
    assert after["spec"]["behavior"] == created["spec"]["behavior"]
    assert after["metadata"]["annotations"] == {"team": "a"}
    assert after["status"]["conditions"] == [condition]


def test_server_side_apply_at_v1_records_v1_fields(api: Http) -> None:
    body = hpa_v1(targetCPUUtilizationPercentage=60)
    status, applied, _ = api.request(
        "PATCH", f"{HPA_V1}/web", json.dumps(body).encode(), headers=APPLY, fieldManager="me"
    )
    assert status == 201, applied
    (entry,) = applied["metadata"]["managedFields"]
    assert entry["apiVersion"] == "autoscaling/v1"
    assert "f:targetCPUUtilizationPercentage" in entry["fieldsV1"]["f:spec"]
    _, v2 = api.get(f"{HPA_V2}/web")
    assert v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
