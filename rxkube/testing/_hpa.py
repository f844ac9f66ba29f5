"""HorizontalPodAutoscalers in ``autoscaling/v1``: the ``autoscaling/v2`` object they are stored as.

kube-apiserver stores HorizontalPodAutoscalers as ``autoscaling/v2`` and serves
``autoscaling/v1`` by conversion (pkg/apis/autoscaling/v1/conversion.go): v1 has one CPU
utilization target where v2 has a list of metrics, so what v1 cannot say travels in
annotations (pkg/apis/autoscaling/annotations.go): the other metrics, the current metrics,
the conditions and the scaling behaviour, written when reading v1 and read back (and
removed) when writing it. The defaults are pkg/apis/autoscaling/v2/defaults.go's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

Object = dict[str, Any]

V1 = "autoscaling/v1"
V2 = "autoscaling/v2"
METRIC_SPECS = "autoscaling.alpha.kubernetes.io/metrics"
METRIC_STATUSES = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"
_ROUND_TRIP = (METRIC_SPECS, METRIC_STATUSES, CONDITIONS, BEHAVIOR)
DEFAULT_CPU_UTILIZATION = 80

_SCALE_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
_SCALE_DOWN = {
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}
# The behaviour annotation is the internal Go type marshalled as is ("TODO: this is
# marshaling an internal type"), so its keys are Go's field names.
_GO_RULES = (
    ("stabilizationWindowSeconds", "StabilizationWindowSeconds"),
    ("selectPolicy", "SelectPolicy"),
    ("policies", "Policies"),
)
_GO_POLICY = (("type", "Type"), ("value", "Value"), ("periodSeconds", "PeriodSeconds"))


def _put(out: Object, key: str, value: Any) -> None:
    """Set an ``omitempty`` field: left out when empty, as Go's encoder does."""
    if value not in (None, "", [], {}):
        out[key] = value


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _ref(ref: Any) -> Object:
    """A ``CrossVersionObjectReference`` (kind, name, apiVersion omitempty)."""
    ref = _map(ref)
    out: Object = {"kind": ref.get("kind") or "", "name": ref.get("name") or ""}
    _put(out, "apiVersion", ref.get("apiVersion"))
    return out


def _is_cpu_utilization(metric: Mapping[str, Any]) -> bool:
    resource = _map(metric.get("resource"))
    return (
        metric.get("type") == "Resource"
        and resource.get("name") == "cpu"
        and _map(resource.get("target")).get("averageUtilization") is not None
    )


# ------------------------------------------------------------------ v2 -> v1


def _metric_to_v1(metric: Mapping[str, Any]) -> Object:
    """``Convert_autoscaling_MetricSpec_To_v1_MetricSpec``, as the annotation holds it."""
    kind = metric.get("type") or ""
    out: Object = {"type": kind}
    source = _map(metric.get(_source_key(kind)))
    target = _map(source.get("target"))
    ident = _map(source.get("metric"))
    if kind == "Object":
        obj: Object = {
            "target": _ref(source.get("describedObject")),
            "metricName": ident.get("name") or "",
        }
        obj["targetValue"] = target.get("value") or "0"
        _put(obj, "selector", ident.get("selector"))
        _put(obj, "averageValue", target.get("averageValue"))
        out["object"] = obj
    elif kind == "Pods":
        pods: Object = {"metricName": ident.get("name") or ""}
        pods["targetAverageValue"] = target.get("averageValue") or "0"
        _put(pods, "selector", ident.get("selector"))
        out["pods"] = pods
    elif kind in ("Resource", "ContainerResource"):
        res: Object = {"name": source.get("name") or ""}
        _put(res, "targetAverageUtilization", target.get("averageUtilization"))
        _put(res, "targetAverageValue", target.get("averageValue"))
        if kind == "ContainerResource":
            res["container"] = source.get("container") or ""
        out[_source_key(kind)] = res
    elif kind == "External":
        ext: Object = {"metricName": ident.get("name") or ""}
        _put(ext, "metricSelector", ident.get("selector"))
        _put(ext, "targetValue", target.get("value"))
        _put(ext, "targetAverageValue", target.get("averageValue"))
        out["external"] = ext
    return out


def _status_to_v1(metric: Mapping[str, Any]) -> Object:
    """``Convert_autoscaling_MetricStatus_To_v1_MetricStatus``."""
    kind = metric.get("type") or ""
    out: Object = {"type": kind}
    source = _map(metric.get(_source_key(kind)))
    current = _map(source.get("current"))
    ident = _map(source.get("metric"))
    if kind == "Object":
        obj: Object = {
            "target": _ref(source.get("describedObject")),
            "metricName": ident.get("name") or "",
        }
        obj["currentValue"] = current.get("value") or "0"
        _put(obj, "selector", ident.get("selector"))
        _put(obj, "averageValue", current.get("averageValue"))
        out["object"] = obj
    elif kind == "Pods":
        pods: Object = {"metricName": ident.get("name") or ""}
        pods["currentAverageValue"] = current.get("averageValue") or "0"
        _put(pods, "selector", ident.get("selector"))
        out["pods"] = pods
    elif kind in ("Resource", "ContainerResource"):
        res: Object = {"name": source.get("name") or ""}
        _put(res, "currentAverageUtilization", current.get("averageUtilization"))
        res["currentAverageValue"] = current.get("averageValue") or "0"
        if kind == "ContainerResource":
            res["container"] = source.get("container") or ""
        out[_source_key(kind)] = res
    elif kind == "External":
        ext: Object = {"metricName": ident.get("name") or ""}
        _put(ext, "metricSelector", ident.get("selector"))
        ext["currentValue"] = current.get("value") or "0"
        _put(ext, "currentAverageValue", current.get("averageValue"))
        out["external"] = ext
    return out


def _condition_to_v1(condition: Mapping[str, Any]) -> Object:
    out: Object = {"type": condition.get("type") or "", "status": condition.get("status") or ""}
    out["lastTransitionTime"] = condition.get("lastTransitionTime")
    _put(out, "reason", condition.get("reason"))
    _put(out, "message", condition.get("message"))
    return out


def _go_rules(rules: Any) -> Any:
    if not isinstance(rules, Mapping):
        return None
    out: Object = {go: rules.get(key) for key, go in _GO_RULES}
    policies = rules.get("policies")
    out["Policies"] = (
        [{go: _map(p).get(key) for key, go in _GO_POLICY} for p in policies]
        if isinstance(policies, list)
        else None
    )
    return out


def _encode(value: Any) -> str:
    return orjson.dumps(value).decode()


def v2_to_v1(hpa: Mapping[str, Any]) -> Object:
    """An ``autoscaling/v2`` HorizontalPodAutoscaler as ``autoscaling/v1``."""
    meta = dict(_map(hpa.get("metadata")))
    annotations = {k: v for k, v in _map(meta.get("annotations")).items() if k not in _ROUND_TRIP}
    spec = _map(hpa.get("spec"))
    status = _map(hpa.get("status"))
    metrics = _list(spec.get("metrics"))
    v1_spec: Object = {"scaleTargetRef": _ref(spec.get("scaleTargetRef"))}
    _put(v1_spec, "minReplicas", spec.get("minReplicas"))
    v1_spec["maxReplicas"] = spec.get("maxReplicas") or 0
    for metric in metrics:
        resource = _map(metric.get("resource"))
        if metric.get("type") == "Resource" and resource.get("name") == "cpu":
            _put(
                v1_spec,
                "targetCPUUtilizationPercentage",
                _map(resource.get("target")).get("averageUtilization"),
            )
            break
    others = [_metric_to_v1(m) for m in metrics if not _is_cpu_utilization(m)]
    current = _list(status.get("currentMetrics"))
    conditions = _list(status.get("conditions"))
    if others:
        annotations[METRIC_SPECS] = _encode(others)
    if current:
        annotations[METRIC_STATUSES] = _encode([_status_to_v1(m) for m in current])
    if conditions:
        annotations[CONDITIONS] = _encode([_condition_to_v1(c) for c in conditions])
    behavior = spec.get("behavior")
    if isinstance(behavior, Mapping):
        go = {
            "ScaleUp": _go_rules(behavior.get("scaleUp")),
            "ScaleDown": _go_rules(behavior.get("scaleDown")),
        }
        annotations[BEHAVIOR] = _encode(go)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    v1_status: Object = {}
    _put(v1_status, "observedGeneration", status.get("observedGeneration"))
    _put(v1_status, "lastScaleTime", status.get("lastScaleTime"))
    v1_status["currentReplicas"] = status.get("currentReplicas") or 0
    v1_status["desiredReplicas"] = status.get("desiredReplicas") or 0
    for metric in current:
        resource = _map(metric.get("resource"))
        if metric.get("type") == "Resource" and resource.get("name") == "cpu":
            _put(
                v1_status,
                "currentCPUUtilizationPercentage",
                _map(resource.get("current")).get("averageUtilization"),
            )
    return {
        "kind": "HorizontalPodAutoscaler",
        "apiVersion": V1,
        "metadata": meta,
        "spec": v1_spec,
        "status": v1_status,
    }


# ------------------------------------------------------------------ v1 -> v2


def _source_key(kind: str) -> str:
    """The member of a MetricSpec or MetricStatus that holds a metric of this type."""
    return kind[:1].lower() + kind[1:]


def _identifier(name: Any, selector: Any) -> Object:
    out: Object = {"name": name or ""}
    _put(out, "selector", selector)
    return out


def _metric_target(kind: str, **values: Any) -> Object:
    out: Object = {"type": kind}
    for key in ("value", "averageValue", "averageUtilization"):
        _put(out, key, values.get(key))
    return out


def _metric_to_v2(metric: Mapping[str, Any]) -> Object:
    """``Convert_v1_MetricSpec_To_autoscaling_MetricSpec``."""
    kind = metric.get("type") or ""
    source = _map(metric.get(_source_key(kind)))
    out: Object = {"type": kind}
    if kind == "Object":
        average = source.get("averageValue")
        out["object"] = {
            "describedObject": _ref(source.get("target")),
            "target": _metric_target(
                "AverageValue" if average is not None else "Value",
                value=source.get("targetValue") or "0",
                averageValue=average,
            ),
            "metric": _identifier(source.get("metricName"), source.get("selector")),
        }
    elif kind == "Pods":
        out["pods"] = {
            "metric": _identifier(source.get("metricName"), source.get("selector")),
            "target": _metric_target(
                "AverageValue", averageValue=source.get("targetAverageValue") or "0"
            ),
        }
    elif kind in ("Resource", "ContainerResource"):
        utilization = source.get("targetAverageUtilization")
        res: Object = {
            "name": source.get("name") or "",
            "target": _metric_target(
                "Utilization" if utilization is not None else "AverageValue",
                averageValue=source.get("targetAverageValue"),
                averageUtilization=utilization,
            ),
        }
        if kind == "ContainerResource":
            res["container"] = source.get("container") or ""
        out[_source_key(kind)] = res
    elif kind == "External":
        value = source.get("targetValue")
        out["external"] = {
            "metric": _identifier(source.get("metricName"), source.get("metricSelector")),
            "target": _metric_target(
                "Value" if value is not None else "AverageValue",
                value=value,
                averageValue=source.get("targetAverageValue"),
            ),
        }
    return out


def _status_to_v2(metric: Mapping[str, Any]) -> Object:
    """``Convert_v1_MetricStatus_To_autoscaling_MetricStatus``: the values v1 holds as
    plain quantities are always there ("0" when unset)."""
    kind = metric.get("type") or ""
    source = _map(metric.get(_source_key(kind)))
    out: Object = {"type": kind}
    if kind == "Object":
        current: Object = {"value": source.get("currentValue") or "0"}
        _put(current, "averageValue", source.get("averageValue"))
        out["object"] = {
            "metric": _identifier(source.get("metricName"), source.get("selector")),
            "current": current,
            "describedObject": _ref(source.get("target")),
        }
    elif kind == "External":
        current = {"value": source.get("currentValue") or "0"}
        _put(current, "averageValue", source.get("currentAverageValue"))
        out["external"] = {
            "metric": _identifier(source.get("metricName"), source.get("metricSelector")),
            "current": current,
        }
    elif kind == "Pods":
        out["pods"] = {
            "metric": _identifier(source.get("metricName"), source.get("selector")),
            "current": {"averageValue": source.get("currentAverageValue") or "0"},
        }
    elif kind in ("Resource", "ContainerResource"):
        current = {"averageValue": source.get("currentAverageValue") or "0"}
        _put(current, "averageUtilization", source.get("currentAverageUtilization"))
        res: Object = {"name": source.get("name") or "", "current": current}
        if kind == "ContainerResource":
            res["container"] = source.get("container") or ""
        out[_source_key(kind)] = res
    return out


def _rules_from_go(rules: Any) -> Any:
    if not isinstance(rules, Mapping):
        return None
    out: Object = {}
    for key, go in _GO_RULES[:2]:
        _put(out, key, rules.get(go))
    policies = rules.get("Policies")
    if isinstance(policies, list):
        out["policies"] = [{key: _map(p).get(go) for key, go in _GO_POLICY} for p in policies]
    return out


def _annotation(annotations: Mapping[str, Any], key: str) -> Any:
    """A round-trip annotation's JSON, or None when absent or not JSON."""
    text = annotations.get(key)
    if not isinstance(text, str):
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def v1_to_v2(hpa: Mapping[str, Any]) -> Object:
    """An ``autoscaling/v1`` HorizontalPodAutoscaler as ``autoscaling/v2``."""
    meta = dict(_map(hpa.get("metadata")))
    given = _map(meta.get("annotations"))
    spec = _map(hpa.get("spec"))
    status = _map(hpa.get("status"))
    v2_spec: Object = {"scaleTargetRef": _ref(spec.get("scaleTargetRef"))}
    _put(v2_spec, "minReplicas", spec.get("minReplicas"))
    v2_spec["maxReplicas"] = spec.get("maxReplicas") or 0
    metrics = [_metric_to_v2(m) for m in _list(_annotation(given, METRIC_SPECS))]
    cpu = spec.get("targetCPUUtilizationPercentage")
    if cpu is not None:
        metrics.append(_cpu_metric(cpu))
    v2_spec["metrics"] = metrics or [_cpu_metric(DEFAULT_CPU_UTILIZATION)]
    behavior = _annotation(given, BEHAVIOR)
    if isinstance(behavior, Mapping):
        v2_behavior: Object = {}
        _put(v2_behavior, "scaleUp", _rules_from_go(behavior.get("ScaleUp")))
        _put(v2_behavior, "scaleDown", _rules_from_go(behavior.get("ScaleDown")))
        v2_spec["behavior"] = v2_behavior
    v2_status: Object = {}
    _put(v2_status, "observedGeneration", status.get("observedGeneration"))
    _put(v2_status, "lastScaleTime", status.get("lastScaleTime"))
    _put(v2_status, "currentReplicas", status.get("currentReplicas"))
    v2_status["desiredReplicas"] = status.get("desiredReplicas") or 0
    current = _annotation(given, METRIC_STATUSES)
    if current is not None:
        _put(v2_status, "currentMetrics", [_status_to_v2(m) for m in _list(current)])
    elif status.get("currentCPUUtilizationPercentage") is not None:
        utilization = status["currentCPUUtilizationPercentage"]
        v2_status["currentMetrics"] = [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": utilization}},
            }
        ]
    conditions = _annotation(given, CONDITIONS)
    if conditions is not None:
        _put(v2_status, "conditions", [dict(c) for c in _list(conditions)])
    annotations = {k: v for k, v in given.items() if k not in _ROUND_TRIP}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {
        "kind": "HorizontalPodAutoscaler",
        "apiVersion": V2,
        "metadata": meta,
        "spec": v2_spec,
        "status": v2_status,
    }


def _cpu_metric(utilization: Any) -> Object:
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": utilization},
        },
    }


def _default_rules(given: Any, defaults: Mapping[str, Any]) -> Object:
    """``copyHPAScalingRules`` over a copy of the default rules."""
    out: Object = orjson.loads(orjson.dumps(defaults))
    if isinstance(given, Mapping):
        for key in ("selectPolicy", "stabilizationWindowSeconds", "policies"):
            if given.get(key) is not None:
                out[key] = given[key]
    return out


def default(hpa: Object) -> None:
    """``SetDefaults_HorizontalPodAutoscaler`` (autoscaling/v2), in place."""
    spec = hpa.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [_cpu_metric(DEFAULT_CPU_UTILIZATION)]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = _default_rules(behavior.get("scaleUp"), _SCALE_UP)
        behavior["scaleDown"] = _default_rules(behavior.get("scaleDown"), _SCALE_DOWN)


CONVERSIONS: dict[tuple[str, str], Callable[[Mapping[str, Any]], Object]] = {
    (V2, V1): v2_to_v1,
    (V1, V2): v1_to_v2,
}
"""(from, to) apiVersion: the conversion."""
