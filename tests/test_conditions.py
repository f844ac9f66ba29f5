"""set_condition follows meta.SetStatusCondition: the transition time moves with the status only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rxkube.client import Api
from rxkube.conditions import find_condition, set_condition
from rxkube.events import Object
from rxkube.testing import ApiServer

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_a_new_condition_is_appended_with_the_transition_time_in_seconds() -> None:
    obj: Object = {"metadata": {"name": "w"}}
    assert set_condition(obj, "Ready", "False", "Starting", "pods", last_transition_time=T0)
    assert obj["status"]["conditions"] == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "Starting",
            "message": "pods",
            "lastTransitionTime": "2026-01-02T03:04:05Z",
        }
    ]


def test_the_transition_time_changes_only_with_the_status() -> None:
    obj: Object = {"metadata": {"name": "w"}}
    set_condition(obj, "Ready", "False", "Starting", "pods", last_transition_time=T0)
    assert set_condition(obj, "Ready", "False", "StillStarting", "more", last_transition_time=T1)
    ready = find_condition(obj, "Ready")
    assert ready is not None
    assert (ready["reason"], ready["message"]) == ("StillStarting", "more")
    assert ready["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    assert set_condition(obj, "Ready", "True", "Running", "", last_transition_time=T1)
    assert ready["lastTransitionTime"] == "2026-01-02T03:09:05Z"
    assert not set_condition(obj, "Ready", "True", "Running", "", last_transition_time=T0)
    assert ready["lastTransitionTime"] == "2026-01-02T03:09:05Z"


def test_the_default_transition_time_is_now() -> None:
    obj: Object = {}
    before = datetime.now(UTC).replace(microsecond=0)
    set_condition(obj, "Ready", "Unknown", "Checking")
    stamp = find_condition(obj, "Ready")["lastTransitionTime"]  # type: ignore[index]
    when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= when <= datetime.now(UTC)


def test_observed_generation_is_set_updated_and_removed() -> None:
    obj: Object = {"status": {"conditions": [{"type": "Other", "status": "True"}]}}
    set_condition(obj, "Ready", "True", "Done", observed_generation=3)
    assert find_condition(obj, "Ready")["observedGeneration"] == 3  # type: ignore[index]
    assert not set_condition(obj, "Ready", "True", "Done", observed_generation=3)
    assert set_condition(obj, "Ready", "True", "Done", observed_generation=4)
    assert set_condition(obj, "Ready", "True", "Done")
    assert "observedGeneration" not in find_condition(obj, "Ready")  # type: ignore[operator]
    assert [c["type"] for c in obj["status"]["conditions"]] == ["Other", "Ready"]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", "True", "Done"), "type"),
        (("Ready", "true", "Done"), "status must be one of"),
        (("Ready", "True", ""), "reason"),
        (("Ready", "True", "not camel case"), "reason"),
        (("Ready", "True", "x" * 1025), "reason"),
    ],
)
def test_bad_input_is_refused(args: tuple[str, str, str], match: str) -> None:
    obj: Object = {}
    with pytest.raises(ValueError, match=match):
        set_condition(obj, *args)
    assert obj == {}


def test_a_malformed_status_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"status\.conditions"):
        set_condition({"status": {"conditions": {}}}, "Ready", "True", "Done")
    with pytest.raises(TypeError, match="status is a str"):
        find_condition({"status": "ok"}, "Ready")


def test_a_condition_round_trips_through_the_status_subresource(apiserver: ApiServer) -> None:
    apiserver.add_resource("example.com", "v1", "Widget", "widgets")
    widgets = Api(apiserver.client(), "widgets", namespace="default")
    obj = widgets.create({"metadata": {"name": "w"}, "spec": {"size": 1}})
    set_condition(obj, "Ready", "True", "Done", "all good", observed_generation=1)
    stored = widgets.replace_status(obj)
    assert find_condition(stored, "Ready") == find_condition(obj, "Ready")
