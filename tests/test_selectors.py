"""Label and field selector parsing and matching (shared by the client and the test server)."""

from __future__ import annotations

import pytest

from rxkube.selectors import FieldSelector, LabelSelector, field_value

LABELS = {"app": "web", "tier": "front", "example.com/team": "a", "replicas": "3"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app = web", True),
        ("app!=web", False),
        ("app!=db", True),
        ("missing!=x", True),
        ("app in (web, db)", True),
        ("app in (db)", False),
        ("missing in (x)", False),
        ("app notin (db)", True),
        ("app notin (web)", False),
        ("missing notin (x)", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("example.com/team=a", True),
        ("replicas>2", True),
        ("replicas<2", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("app=web,tier in (front,back),!canary", True),
        ("app=", False),
    ],
)
def test_label_selector_matches_like_kubernetes(selector: str, expected: bool) -> None:
    assert LabelSelector.parse(selector).matches(LABELS) is expected


@pytest.mark.parametrize("label", ["1_0", " 10", "10 ", "\u0661\u0660", "9223372036854775808"])
def test_greater_than_matches_only_labels_go_reads_as_an_int64(label: str) -> None:
    # labels.Requirement.Matches parses the label with strconv.ParseInt(value, 10, 64).
    assert not LabelSelector.parse("n>5").matches({"n": label})
    assert not LabelSelector.parse("n<99999").matches({"n": label})


def test_greater_than_reads_signed_labels_as_go_does() -> None:
    assert LabelSelector.parse("n>5").matches({"n": "+10"})
    assert LabelSelector.parse("n<5").matches({"n": "-10"})
    assert LabelSelector.parse("n>5").matches({"n": "9223372036854775807"})


def test_empty_value_selector_matches_empty_label() -> None:
    assert LabelSelector.parse("app=").matches({"app": ""})
    assert LabelSelector.parse("app in ()").matches({"app": ""})


@pytest.mark.parametrize(
    ("selector", "problem"),
    [
        ("app=web,", "after ','"),
        ("app in web", "'('"),
        ("app in (web", "value set"),
        ("=web", "label key"),
        ("app=-bad", "invalid value"),
        ("Bad_Prefix/x=1", "invalid key"),
        ("app web", "expected"),
        ("x>a", "integer"),
        ("x>1_0", "integer"),
        ("x>9223372036854775808", "integer"),
        ("x>-5", "invalid value"),
        ("!", "label key"),
        ("a" * 64 + "=x", "invalid key"),
    ],
)
def test_invalid_label_selector_raises_value_error_naming_the_problem(
    selector: str, problem: str
) -> None:
    with pytest.raises(ValueError, match="invalid label selector") as info:
        LabelSelector.parse(selector)
    assert problem in str(info.value)


def test_label_selector_round_trips_through_str() -> None:
    text = "app=web,tier in (back,front),!canary,team,replicas>2,x!=y"
    assert str(LabelSelector.parse(text)) == text
    assert LabelSelector.parse(str(LabelSelector.parse(text))) == LabelSelector.parse(text)


def test_label_selector_truthiness_and_iteration() -> None:
    assert not LabelSelector.parse("")
    sel = LabelSelector.parse("a=1,b")
    assert [r.key for r in sel] == ["a", "b"]


POD = {
    "metadata": {"name": "p1", "namespace": "default"},
    "spec": {"nodeName": "node-1", "hostNetwork": True},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("metadata.name=p1", True),
        ("metadata.name==p1", True),
        ("metadata.name!=p1", False),
        ("metadata.namespace=default,status.phase=Running", True),
        ("spec.nodeName=node-2", False),
        ("spec.nodeName=", False),
        ("spec.missing=", True),
        ("spec.hostNetwork=true", True),
    ],
)
def test_field_selector_matches_object_paths(selector: str, expected: bool) -> None:
    assert FieldSelector.parse(selector).matches(POD) is expected


def test_field_selector_values_unescape() -> None:
    sel = FieldSelector.parse(r"metadata.name=a\,b\=c\\d")
    assert sel.matches({"metadata": {"name": "a,b=c\\d"}})
    assert str(sel) == r"metadata.name=a\,b\=c\\d"
    assert sel.fields == {"metadata.name"}


@pytest.mark.parametrize(
    ("selector", "problem"),
    [
        ("metadata.name", "can't understand"),
        ("=x", "invalid field name"),
        (r"metadata.name=a\x", "escape"),
        ("a=b=c", "unescaped"),
    ],
)
def test_invalid_field_selector_raises_value_error(selector: str, problem: str) -> None:
    with pytest.raises(ValueError, match="invalid field selector") as info:
        FieldSelector.parse(selector)
    assert problem in str(info.value)


def test_field_value_renders_like_the_api_server() -> None:
    assert field_value(POD, "spec.hostNetwork") == "true"
    assert field_value({"a": {"b": 3}}, "a.b") == "3"
    assert field_value(POD, "status.phase.deeper") == ""
    assert field_value(POD, "spec") == ""
