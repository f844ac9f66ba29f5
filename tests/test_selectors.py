"""Label and field selector parsing and matching (shared by the client and the test server)."""

from __future__ import annotations

import pytest

from rxkube.selectors import FieldSelector, LabelSelector, SelectorError, field_value

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


_LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_GT_INTEGER = "for 'Gt', 'Lt' operators, the value must be an integer"


@pytest.mark.parametrize(
    ("selector", "reason"),
    [
        ("app=web,", "found '', expected: identifier after ','"),
        ("a,,b", "found ',', expected: identifier after ','"),
        ("app in web", "unable to parse requirement: found 'web' expected: '('"),
        ("app in (web", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("app in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
        ("app in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("app in (a,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
        # Go's list parser takes ",," as two empty values, then fails on the ")".
        ("app in (,,)", "unable to parse requirement: found ')', expected: ',', or identifier"),
        ("=web", "found '=', expected: !, identifier, or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("a=(b", "unable to parse requirement: found '(', expected: identifier"),
        (
            "app=-bad",
            f'unable to parse requirement: values[0][app]: Invalid value: "-bad": {_LABEL_VALUE}',
        ),
        (
            "Bad_Prefix/x=1",
            'unable to parse requirement: <nil>: Invalid value: "Bad_Prefix/x": prefix part a '
            "lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            "'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
        (
            "app web",
            "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("x>a", f'unable to parse requirement: values[0]: Invalid value: "a": {_GT_INTEGER}'),
        ("x>1_0", f'unable to parse requirement: values[0]: Invalid value: "1_0": {_GT_INTEGER}'),
        (
            "x>9223372036854775808",
            'unable to parse requirement: values[0]: Invalid value: "9223372036854775808": '
            + _GT_INTEGER,
        ),
        ("x>-5", f'unable to parse requirement: values[0][x]: Invalid value: "-5": {_LABEL_VALUE}'),
        (
            "x>-a",
            f'unable to parse requirement: [values[0]: Invalid value: "-a": {_GT_INTEGER}, '
            f'values[0][x]: Invalid value: "-a": {_LABEL_VALUE}]',
        ),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        (
            "a" * 64 + "=x",
            f'unable to parse requirement: <nil>: Invalid value: "{"a" * 64}": name part must '
            "be no more than 63 characters",
        ),
    ],
)
def test_invalid_label_selector_fails_with_apimachinerys_text(selector: str, reason: str) -> None:
    """The texts of k8s.io/apimachinery/pkg/labels/selector.go (v0.32) ``Parse``: its parser's
    ``found '...', expected: ...`` errors, ``NewRequirement``'s aggregated field errors
    (paths ``values[i][key]``; a bad key is reported with the parser's nil path), which
    kube-apiserver answers as its 400's message."""
    with pytest.raises(SelectorError) as info:
        LabelSelector.parse(selector)
    assert info.value.reason == reason
    assert str(info.value) == f"invalid label selector {selector!r}: {reason}"


@pytest.mark.parametrize(
    ("selector", "requirements"),
    [
        ("in=x,notin", [("in", "=", ("x",)), ("notin", "exists", ())]),
        ("a in (in,notin)", [("a", "in", ("in", "notin"))]),
        ("a notin (,b,)", [("a", "notin", ("", "b"))]),
        ("a in (,,b)", [("a", "in", ("", "b"))]),
        ("a in ()", [("a", "in", ("",))]),
        ("a!=,b==c", [("a", "!=", ("",)), ("b", "=", ("c",))]),
        (" a\t=\nb ", [("a", "=", ("b",))]),
    ],
)
def test_label_selector_grammar_corners_parse_as_apimachinery_does(
    selector: str, requirements: list[tuple[str, str, tuple[str, ...]]]
) -> None:
    """selector.go: 'in'/'notin' are identifiers where a key or value may stand, empty
    values between commas of a set count as "", whitespace is space, tab, CR and LF."""
    parsed = LabelSelector.parse(selector)
    assert [(r.key, r.operator, r.values) for r in parsed] == requirements


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
    ("selector", "reason"),
    [
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("b=1,a", "invalid selector: 'b=1,a'; can't understand 'a'"),
        (" ", "invalid selector: ' '; can't understand ' '"),
        (r"metadata.name=a\x", r"invalid field selector: invalid escape sequence: \x"),
        ("x=a\\", "invalid field selector: invalid escape sequence: \\"),
        ("a=b=c", "invalid field selector: unescaped character in value: 61"),
        ("z=b=c,a", "invalid selector: 'z=b=c,a'; can't understand 'a'"),
    ],
)
def test_invalid_field_selector_fails_with_apimachinerys_text(selector: str, reason: str) -> None:
    """k8s.io/apimachinery/pkg/fields/selector.go (v0.32) ``ParseSelector``: terms are
    checked in sorted order (``a`` before ``z=b=c``), ``UnescapeValue`` prints the rune of
    an unescaped ``=`` as a number."""
    with pytest.raises(SelectorError) as info:
        FieldSelector.parse(selector)
    assert info.value.reason == reason


def test_field_selector_terms_are_sorted_untrimmed_and_empty_ones_skipped() -> None:
    """fields.ParseSelector keeps a term's spaces (the server's field labels then judge
    ``metadata.name `` as any other path) and an empty field."""
    parsed = FieldSelector.parse("metadata.name = a,,=x,b!=c,")
    assert [(r.field, r.operator, r.value) for r in parsed] == [
        ("", "=", "x"),
        ("b", "!=", "c"),
        ("metadata.name ", "=", " a"),
    ]


def test_field_value_renders_like_the_api_server() -> None:
    assert field_value(POD, "spec.hostNetwork") == "true"
    assert field_value({"a": {"b": 3}}, "a.b") == "3"
    assert field_value(POD, "status.phase.deeper") == ""
    assert field_value(POD, "spec") == ""
