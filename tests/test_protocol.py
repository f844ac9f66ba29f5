"""Every transition of the list/watch state machine, without a network."""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson
import pytest

from rxkube.errors import DecodeError, Forbidden, ServerError, TooManyRequests
from rxkube.events import Apply, Delete, Event, Init, InitApply, InitDone
from rxkube.protocol import (
    _META_STRING_MAPS,
    _META_STRINGS,
    Config,
    ListRequest,
    Request,
    WatchMachine,
    WatchRequest,
    _check_object,
    _check_object_exactly,
)


def pod(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": rv}}


def page(items: list[dict[str, Any]], rv: str, cont: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    return {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items}


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def bookmark(rv: str, end: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return event("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": meta})


def gone() -> dict[str, Any]:
    return event("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "old"})


def too_large(requested: int = 148026, current: int = 48027) -> dict[str, Any]:
    """The Status kube-apiserver v1.32 answers a read ahead of its history with."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"Timeout: Too large resource version: {requested}, current: {current}",
        "reason": "Timeout",
        "details": {
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ]
        },
        "code": 504,
    }


def list_answer(machine: WatchMachine, body: Any) -> list[Event]:
    """Every event of a 200 list answer with ``body`` (JSON-encoded) as its body."""
    return list(machine.on_list(orjson.dumps(body)))


def listed(machine: WatchMachine, rv: str = "10") -> None:
    machine.next_request()
    list_answer(machine, page([], rv))


# -- list ---------------------------------------------------------------------------------


def test_first_list_is_a_consistent_paged_read() -> None:
    req = WatchMachine(Config(label_selector="app=web")).next_request()
    assert req == ListRequest({"labelSelector": "app=web", "limit": "500"})


def test_list_semantic_any_asks_the_cache_on_the_first_list_only() -> None:
    machine = WatchMachine(Config(list_semantic="any", page_size=None))
    assert machine.next_request() == ListRequest({"resourceVersion": "0"})
    list_answer(machine, page([], "5"))
    machine.next_request()
    machine.on_watch_event(gone())
    assert machine.next_request() == ListRequest({})


def test_pages_stream_items_as_they_arrive_then_init_done() -> None:
    machine = WatchMachine(Config(page_size=2))
    machine.next_request()
    first = list_answer(machine, page([pod("a", "3"), pod("b", "4")], "9", cont="t1"))
    assert first == [
        Init(),
        InitApply(pod("a", "3") | {"kind": "Pod", "apiVersion": "v1"}),
        InitApply(pod("b", "4") | {"kind": "Pod", "apiVersion": "v1"}),
    ]
    assert machine.next_request() == ListRequest({"limit": "2", "continue": "t1"})
    last = list_answer(machine, page([pod("c", "5")], "9"))
    assert [type(e) for e in last] == [InitApply, InitDone]
    assert machine.resource_version == "9"


def test_list_items_get_the_kind_and_api_version_of_the_list() -> None:
    machine = WatchMachine(Config())
    machine.next_request()
    events = list_answer(
        machine,
        {
            "kind": "DeploymentList",
            "apiVersion": "apps/v1",
            "metadata": {"resourceVersion": "1"},
            "items": [{"metadata": {"name": "d"}}],
        },
    )
    assert events[1] == InitApply(
        {"metadata": {"name": "d"}, "kind": "Deployment", "apiVersion": "apps/v1"}
    )


def test_watch_starts_from_the_list_resource_version() -> None:
    machine = WatchMachine(Config(timeout=60, field_selector="metadata.name=x"))
    listed(machine, "42")
    req = machine.next_request()
    assert req == WatchRequest(
        {
            "fieldSelector": "metadata.name=x",
            "watch": "1",
            "resourceVersion": "42",
            "timeoutSeconds": "60",
            "allowWatchBookmarks": "true",
        },
        65.0,
    )


def test_bookmarks_are_not_requested_when_disabled() -> None:
    machine = WatchMachine(Config(bookmarks=False))
    listed(machine)
    req = machine.next_request()
    assert isinstance(req, WatchRequest) and "allowWatchBookmarks" not in req.params


def test_expired_continue_token_restarts_with_a_consistent_list() -> None:
    machine = WatchMachine(Config(page_size=1), resume_version="7")
    assert machine.next_request() == ListRequest(
        {"limit": "1", "resourceVersion": "7", "resourceVersionMatch": "NotOlderThan"}
    )
    list_answer(machine, page([pod("a", "1")], "7", cont="t"))
    machine.next_request()
    status = {"kind": "Status", "code": 410, "reason": "Expired", "metadata": {"continue": "t2"}}
    assert machine.on_list_failed(410, status) == []
    assert machine.resource_version is None
    assert machine.next_request() == ListRequest({"limit": "1"})
    assert list_answer(machine, page([], "8"))[0] == Init()


@pytest.mark.parametrize("semantic", ["most_recent", "any"])
def test_too_large_resource_version_on_a_resumed_list_relists_consistently(
    semantic: Literal["most_recent", "any"],
) -> None:
    machine = WatchMachine(Config(list_semantic=semantic, page_size=None), resume_version="70")
    assert machine.next_request() == ListRequest(
        {"resourceVersion": "70", "resourceVersionMatch": "NotOlderThan"}
    )
    assert machine.on_list_failed(504, too_large(70, 4)) == []
    assert machine.resource_version is None
    # A consistent read, never the cache's resourceVersion=0, which could go back in time.
    assert machine.next_request() == ListRequest({})
    events = list_answer(machine, page([pod("a", "3")], "4"))
    assert [type(e) for e in events] == [Init, InitApply, InitDone]
    req = machine.next_request()
    assert isinstance(req, WatchRequest) and req.params["resourceVersion"] == "4"


@pytest.mark.parametrize(
    "status",
    [
        # 1.17.0 to 1.18.5: the cause has no reason, only its message.
        {
            "code": 504,
            "reason": "Timeout",
            "details": {"causes": [{"message": "Too large resource version"}]},
        },
        # before 1.17: only the Status message says so.
        {
            "code": 504,
            "reason": "Timeout",
            "message": "Timeout: Too large resource version: 9, current: 3",
        },
    ],
)
def test_too_large_resource_version_from_older_servers_is_recognised(
    status: dict[str, Any],
) -> None:
    machine = WatchMachine(Config(page_size=None), resume_version="9")
    machine.next_request()
    assert machine.on_list_failed(504, status) == []
    assert machine.next_request() == ListRequest({})


@pytest.mark.parametrize(
    "status",
    [
        {"code": 504, "reason": "Timeout", "message": "etcd did not answer in time"},
        {"code": 500, "reason": "InternalError", "message": "Too large request"},
        "Too large resource version",
    ],
)
def test_other_timeouts_are_server_errors_not_relists(status: Any) -> None:
    machine = WatchMachine(Config(), resume_version="9")
    machine.next_request()
    with pytest.raises(ServerError):
        machine.on_list_failed(504, status)
    assert machine.resource_version == "9"


def test_too_large_resource_version_in_the_watch_stream_relists() -> None:
    machine = WatchMachine(Config())
    listed(machine)
    machine.next_request()
    assert machine.on_watch_event(event("ERROR", too_large())) == []
    assert machine.stream_done and machine.resource_version is None
    assert machine.next_request() == ListRequest({"limit": "500"})


def test_too_large_resource_version_on_a_resumed_streaming_list_streams_consistently() -> None:
    machine = WatchMachine(Config(initial_list_strategy="streaming_list"), resume_version="70")
    machine.next_request()
    # kube-apiserver's watch cache answers the too-large resume point with an ERROR event.
    machine.on_watch_opened()
    assert machine.on_watch_event(event("ERROR", too_large(70, 4))) == []
    req = machine.next_request()
    assert isinstance(req, WatchRequest) and req.params["sendInitialEvents"] == "true"
    assert "resourceVersion" not in req.params
    assert machine.on_watch_failed(504, too_large(70, 4)) == []
    req = machine.next_request()
    assert isinstance(req, WatchRequest) and "resourceVersion" not in req.params


def test_list_failure_raises_a_typed_error_with_retry_after() -> None:
    machine = WatchMachine(Config(), name="pods")
    machine.next_request()
    status = {"kind": "Status", "code": 429, "reason": "TooManyRequests", "message": "slow down"}
    with pytest.raises(TooManyRequests) as info:
        machine.on_list_failed(429, status, retry_after=3)
    assert info.value.retry_after == 3
    assert "list pods" in str(info.value)


def test_a_list_answer_that_is_not_a_list_is_a_decode_error() -> None:
    machine = WatchMachine(Config())
    machine.next_request()
    with pytest.raises(DecodeError):
        list_answer(machine, {"kind": "Status"})


# -- watch --------------------------------------------------------------------------------


def test_watch_events_become_apply_and_delete_and_advance_the_resume_point() -> None:
    machine = WatchMachine(Config())
    listed(machine)
    machine.next_request()
    assert machine.on_watch_opened() == []
    assert machine.on_watch_event(event("ADDED", pod("a", "11"))) == [Apply(pod("a", "11"))]
    assert machine.on_watch_event(event("MODIFIED", pod("a", "12"))) == [Apply(pod("a", "12"))]
    assert machine.on_watch_event(event("DELETED", pod("a", "13"))) == [Delete(pod("a", "13"))]
    assert machine.resource_version == "13"


def test_bookmark_advances_silently() -> None:
    machine = WatchMachine(Config())
    listed(machine)
    machine.next_request()
    assert machine.on_watch_event(bookmark("20")) == []
    assert machine.resource_version == "20"


def test_clean_end_rewatches_from_the_last_version_without_relisting() -> None:
    machine = WatchMachine(Config())
    listed(machine)
    machine.next_request()
    machine.on_watch_event(event("MODIFIED", pod("a", "15")))
    assert machine.on_watch_end() == []
    req = machine.next_request()
    assert isinstance(req, WatchRequest) and req.params["resourceVersion"] == "15"


def test_error_410_in_the_stream_relists_consistently() -> None:
    machine = WatchMachine(Config())
    listed(machine)
    machine.next_request()
    assert machine.on_watch_event(gone()) == []
    assert machine.stream_done
    assert machine.resource_version is None
    assert machine.next_request() == ListRequest({"limit": "500"})
    assert not machine.stream_done


def test_http_410_on_watch_relists() -> None:
    machine = WatchMachine(Config())
    listed(machine)
    machine.next_request()
    assert machine.on_watch_failed(410, {"code": 410}) == []
    assert isinstance(machine.next_request(), ListRequest)


@pytest.mark.parametrize(("code", "error"), [(500, ServerError), (403, Forbidden)])
def test_other_error_events_raise_typed_errors(code: int, error: type[Exception]) -> None:
    machine = WatchMachine(Config())
    listed(machine)
    machine.next_request()
    with pytest.raises(error):
        machine.on_watch_event(event("ERROR", {"kind": "Status", "code": code, "message": "x"}))


def test_watch_refused_with_a_status_raises() -> None:
    machine = WatchMachine(Config())
    listed(machine)
    machine.next_request()
    with pytest.raises(Forbidden):
        machine.on_watch_failed(403, {"code": 403, "reason": "Forbidden"})


@pytest.mark.parametrize(
    "line",
    [
        [],
        {"type": "ADDED"},
        {"type": "WHAT", "object": {}},
        {"type": "ADDED", "object": {"metadata": {}}},
    ],
)
def test_malformed_watch_lines_are_decode_errors(line: Any) -> None:
    machine = WatchMachine(Config())
    listed(machine)
    machine.next_request()
    with pytest.raises(DecodeError):
        machine.on_watch_event(line)


# -- streaming list -----------------------------------------------------------------------


def streaming() -> WatchMachine:
    return WatchMachine(Config(initial_list_strategy="streaming_list", timeout=30))


def test_streaming_list_asks_for_initial_events() -> None:
    assert streaming().next_request() == WatchRequest(
        {
            "watch": "1",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "30",
        },
        35.0,
    )


def test_streaming_list_takes_its_resume_point_only_from_the_end_bookmark() -> None:
    machine = streaming()
    machine.next_request()
    assert machine.on_watch_opened() == [Init()]
    assert machine.on_watch_event(event("ADDED", pod("b", "48"))) == [InitApply(pod("b", "48"))]
    assert machine.on_watch_event(event("ADDED", pod("a", "45"))) == [InitApply(pod("a", "45"))]
    assert machine.resource_version is None
    assert machine.on_watch_event(bookmark("50", end=True)) == [InitDone()]
    assert machine.resource_version == "50"
    assert machine.on_watch_event(event("MODIFIED", pod("a", "51"))) == [Apply(pod("a", "51"))]
    machine.on_watch_end()
    req = machine.next_request()
    assert isinstance(req, WatchRequest)
    assert req.params["resourceVersion"] == "51" and "sendInitialEvents" not in req.params


def relisted(machine: WatchMachine) -> Request:
    """The request after a watch's 410, once the machine is watching."""
    machine.next_request()
    assert machine.on_watch_event(gone()) == []
    return machine.next_request()


def is_streaming(request: Request) -> bool:
    return isinstance(request, WatchRequest) and request.params.get("sendInitialEvents") == "true"


@pytest.mark.parametrize("code", [500, 429])
def test_a_streaming_list_failed_by_an_error_event_is_listed_for_that_relist_only(
    code: int,
) -> None:
    machine = streaming()
    machine.next_request()
    machine.on_watch_opened()
    refusal = {"kind": "Status", "code": code, "message": "RequestWatchProgress is disabled"}
    assert machine.on_watch_event(event("ERROR", refusal)) == []
    assert machine.stream_done
    request = machine.next_request()
    assert isinstance(request, ListRequest) and "resourceVersion" not in request.params
    list_answer(machine, page([], "9"))
    # As client-go's reflector: the next relist tries the streaming list again.
    assert is_streaming(relisted(machine))


def test_a_streaming_list_ended_early_is_listed_from_its_resume_point_for_one_relist() -> None:
    machine = WatchMachine(Config(initial_list_strategy="streaming_list"), resume_version="7")
    machine.next_request()
    machine.on_watch_opened()
    machine.on_watch_event(event("ADDED", pod("a", "3")))
    assert machine.on_watch_end() == []
    request = machine.next_request()
    assert isinstance(request, ListRequest)
    assert request.params["resourceVersion"] == "7"
    assert request.params["resourceVersionMatch"] == "NotOlderThan"
    list_answer(machine, page([pod("a", "3")], "9"))
    assert is_streaming(relisted(machine))


def test_a_relist_that_fell_back_keeps_listing_until_it_completes() -> None:
    machine = streaming()
    machine.next_request()
    machine.on_watch_end()
    machine.next_request()
    list_answer(machine, page([pod("a", "3")], "", cont="c1"))
    machine.next_request()
    assert machine.on_list_failed(410, {"code": 410, "reason": "Expired"}) == []
    assert isinstance(machine.next_request(), ListRequest)  # the same relist, started again
    list_answer(machine, page([pod("a", "3")], "9"))
    assert is_streaming(relisted(machine))


@pytest.mark.parametrize("status", [400, 422])
def test_a_streaming_list_refused_by_http_status_is_never_asked_for_again(status: int) -> None:
    machine = streaming()
    machine.next_request()
    assert machine.on_watch_failed(status, {"code": status}) == []
    assert isinstance(machine.next_request(), ListRequest)
    list_answer(machine, page([], "9"))
    # The server does not know the parameters: no relist asks for them again.
    assert isinstance(relisted(machine), ListRequest)


def test_streaming_list_relists_by_streaming_after_410() -> None:
    machine = streaming()
    machine.next_request()
    machine.on_watch_opened()
    machine.on_watch_event(bookmark("5", end=True))
    machine.next_request()
    machine.on_watch_event(gone())
    req = machine.next_request()
    assert isinstance(req, WatchRequest) and req.params["sendInitialEvents"] == "true"


def test_streaming_list_resumes_not_older_than_a_previous_subscription() -> None:
    machine = WatchMachine(Config(initial_list_strategy="streaming_list"), resume_version="77")
    req = machine.next_request()
    assert isinstance(req, WatchRequest) and req.params["resourceVersion"] == "77"


# -- config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 295}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": 1.5}, "timeout"),
        ({"page_size": 0}, "page_size"),
        ({"list_semantic": "latest"}, "list_semantic"),
        ({"initial_list_strategy": "stream"}, "initial_list_strategy"),
        ({"bookmarks": "yes"}, "bookmarks"),
        ({"label_selector": "a in (b"}, "label_selector"),
        ({"field_selector": "metadata.name"}, "field_selector"),
    ],
)
def test_invalid_config_raises_a_clear_value_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config(**kwargs)


# -- malformed answers: every one a DecodeError before anything reaches a store ----------


def named(**metadata: Any) -> dict[str, Any]:
    return {"metadata": {"name": "a", "resourceVersion": "11", **metadata}}


MALFORMED_OBJECTS: list[Any] = [
    "a string",
    ["a", "list"],
    7,
    None,
    {"kind": "Pod"},
    {"metadata": "x"},
    {"metadata": {"resourceVersion": "11"}},
    {"metadata": {"name": "", "resourceVersion": "11"}},
    {"metadata": {"name": 5, "resourceVersion": "11"}},
    named(namespace=["default"]),
    named(uid=7),
    named(labels="x"),
    named(labels={"n": [1]}),
    named(annotations={"a": 1}),
    named(ownerReferences="rs-1"),
    named(ownerReferences=["rs-1"]),
    named(finalizers=[1]),
    {**named(), "kind": ["Pod"]},
]


@pytest.mark.parametrize("item", MALFORMED_OBJECTS)
def test_a_malformed_list_item_is_a_decode_error(item: Any) -> None:
    machine = WatchMachine(Config(), name="pods")
    machine.next_request()
    with pytest.raises(DecodeError, match="list pods"):
        list_answer(machine, page([pod("ok", "1"), item], "10"))


@pytest.mark.parametrize(
    "body",
    [
        [],
        "PodList",
        {"kind": "PodList", "metadata": "x", "items": []},
        {"kind": "PodList", "metadata": None, "items": []},
        {"kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": {"a": {}}},
        {"kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": "abc"},
        {"kind": 5, "metadata": {"resourceVersion": "1"}, "items": []},
        {"kind": "PodList", "metadata": {"resourceVersion": 1}, "items": []},
        {"kind": "PodList", "metadata": {"resourceVersion": "1", "continue": 5}, "items": []},
    ],
)
def test_a_malformed_list_is_a_decode_error(body: Any) -> None:
    machine = WatchMachine(Config())
    machine.next_request()
    with pytest.raises(DecodeError):
        list_answer(machine, body)


def test_a_list_with_null_items_is_an_empty_list() -> None:
    machine = WatchMachine(Config())
    machine.next_request()
    body = {"kind": "PodList", "metadata": {"resourceVersion": "4"}, "items": None}
    assert list_answer(machine, body) == [Init(), InitDone()]


# -- a list page, decoded one item at a time ----------------------------------------------

SET = {
    "metadata": {"name": "db", "resourceVersion": "3"},
    # Its own array of objects opening as the list's items do: cut there, a piece fails.
    "spec": {"volumeClaimTemplates": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]},
}
LISTED = [pod("a", "1"), SET, pod("b", "2"), pod("c", "4")]
ENCODED = orjson.dumps(page(LISTED, "9"))


def expected(items: list[dict[str, Any]], kind: str = "Pod") -> list[Any]:
    return [Init(), *(InitApply(i | {"kind": kind, "apiVersion": "v1"}) for i in items), InitDone()]


@pytest.mark.parametrize(
    "body",
    [
        ENCODED,
        ENCODED + b"\n",
        # Encoded otherwise than kube-apiserver does: decoded whole.
        orjson.dumps(page(LISTED, "9"), option=orjson.OPT_INDENT_2),
        orjson.dumps(
            {
                "items": LISTED,
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "9"},
            }
        ),
        orjson.dumps({**page(LISTED, "9"), "extra": [1]}),
        orjson.dumps(
            {**page(LISTED, "9"), "metadata": {"resourceVersion": "9", "x": ',"items":['}}
        ),
        ENCODED.replace(b',{"metadata":', b', {"metadata":'),
    ],
    ids=[
        "kube-apiserver",
        "newline",
        "indented",
        "items-first",
        "member-after",
        "in-string",
        "spaced",
    ],
)
@pytest.mark.parametrize("resume", [None, "1"], ids=["first-list", "relist"])
def test_a_list_page_gives_the_items_of_its_json_however_it_is_laid_out(
    body: bytes, resume: str | None
) -> None:
    machine = WatchMachine(Config(), resume_version=resume)
    machine.next_request()
    assert list(machine.on_list(body)) == expected(LISTED)


def test_metadata_only_list_items_keep_their_own_kind() -> None:
    items = [
        {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": m}
        for m in ({"name": "a", "resourceVersion": "1"}, {"name": "b", "resourceVersion": "2"})
    ]
    body = {
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "5"},
        "items": items,
    }
    machine = WatchMachine(Config())
    machine.next_request()
    assert list(machine.on_list(orjson.dumps(body))) == [Init(), *map(InitApply, items), InitDone()]


def test_a_relist_page_is_decoded_as_its_events_are_taken_and_the_machine_moves_on_at_its_end() -> (
    None
):
    machine = WatchMachine(Config(page_size=3), "1", name="pods")
    machine.next_request()
    bad = page([pod("a", "1"), pod("b", "2"), {"metadata": {"name": 7}}], "9", cont="t")
    events = machine.on_list(orjson.dumps(bad))
    assert next(events) == Init()
    assert next(events) == InitApply(pod("a", "1") | {"kind": "Pod", "apiVersion": "v1"})
    assert next(events) == InitApply(pod("b", "2") | {"kind": "Pod", "apiVersion": "v1"})
    with pytest.raises(DecodeError, match=r"list pods, item 2 of the page: .*metadata\.name"):
        next(events)
    # The page was not taken: it is asked for again.
    assert machine.next_request() == ListRequest(
        {"limit": "3", "resourceVersion": "1", "resourceVersionMatch": "NotOlderThan"}
    )
    events = machine.on_list(orjson.dumps(page([pod("a", "1")], "9")))
    assert [type(e) for e in events] == [Init, InitApply, InitDone]
    assert machine.resource_version == "9"


@pytest.mark.parametrize("resume", [None, "1"], ids=["first-list", "relist"])
def test_each_item_of_a_page_is_decoded_only_when_its_event_is_taken(resume: str | None) -> None:
    # Item c does not decode: the events of the items before it come out first, each one
    # decoded only once the event before it was taken (a store frees as it goes).
    machine = WatchMachine(Config(), resume, name="pods")
    machine.next_request()
    body = orjson.dumps(page([pod("a", "1"), pod("b", "2"), pod("c", "4")], "9"))
    events = machine.on_list(body.replace(b'"name":"c"', b'"name":tru'))
    assert next(events) == Init()
    for name, version in (("a", "1"), ("b", "2")):
        assert next(events) == InitApply(pod(name, version) | {"kind": "Pod", "apiVersion": "v1"})
    with pytest.raises(DecodeError, match="is not JSON"):
        next(events)


def test_a_page_left_unfinished_leaves_the_machine_where_it_was() -> None:
    machine = WatchMachine(Config(), resume_version="5")
    machine.next_request()
    events = machine.on_list(ENCODED)
    assert next(events) == Init()
    assert machine.resource_version == "5"
    assert isinstance(machine.next_request(), ListRequest)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (ENCODED[:-40], "is not JSON"),
        (ENCODED.replace(b'"name":"b"', b'"name":tru'), "is not JSON"),
        (ENCODED.replace(b'"name":"b"', b'"name":"\xff"'), "is not JSON"),
        (ENCODED.replace(b'"PodList"', b'"Pod\xffList"'), "is not JSON"),
        (ENCODED.replace(b"]}", b"]} x"), "is not JSON"),
        (ENCODED.replace(b"]}", b'],"kind":["x"]}'), "must be strings"),
        (
            b'{"kind":"PodList","metadata":{"resourceVersion":"1"},"items":[1,2]}',
            "expected an object",
        ),
    ],
    ids=[
        "cut-short",
        "bad-literal",
        "not-utf8-item",
        "not-utf8-envelope",
        "trailing",
        "kind-after-items",
        "numbers",
    ],
)
@pytest.mark.parametrize("resume", [None, "1"], ids=["first-list", "relist"])
def test_a_page_that_is_not_a_list_past_its_first_items_is_a_decode_error(
    body: bytes, message: str, resume: str | None
) -> None:
    machine = WatchMachine(Config(), resume, name="pods")
    machine.next_request()
    with pytest.raises(DecodeError, match=message):
        list(machine.on_list(body))


@pytest.mark.parametrize("kind", ["ADDED", "MODIFIED", "DELETED"])
@pytest.mark.parametrize("obj", MALFORMED_OBJECTS)
def test_a_malformed_watch_event_object_is_a_decode_error(kind: str, obj: Any) -> None:
    machine = WatchMachine(Config(), name="pods")
    listed(machine)
    machine.next_request()
    with pytest.raises(DecodeError, match="watch pods"):
        machine.on_watch_event(event(kind, obj))
    assert machine.resource_version == "10"


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ("a string", "expected an object, got str"),
        ({"metadata": "x"}, "metadata is not an object"),
        ({"metadata": {"resourceVersion": "11"}}, "it has no metadata.name"),
        ({"metadata": {"name": 5, "resourceVersion": "11"}}, "it has no metadata.name"),
        (named(namespace=["default"]), "metadata.namespace is not a string"),
        (named(uid=7), "metadata.uid is not a string"),
        (named(resourceVersion=11), "metadata.resourceVersion is not a string"),
        (named(deletionTimestamp=0), "metadata.deletionTimestamp is not a string"),
        (named(labels="x"), "metadata.labels is not a map of strings"),
        (named(labels={"a": "b", "n": [1]}), "metadata.labels is not a map of strings"),
        (named(annotations={"a": 1}), "metadata.annotations is not a map of strings"),
        (named(ownerReferences="rs-1"), "metadata.ownerReferences is not a list of objects"),
        (named(ownerReferences=[{}, "rs-1"]), "metadata.ownerReferences is not a list of objects"),
        (named(finalizers="x"), "metadata.finalizers is not a list of strings"),
        (named(finalizers=["a", 1]), "metadata.finalizers is not a list of strings"),
        ({**named(), "kind": ["Pod"]}, "kind is not a string"),
        ({**named(), "apiVersion": 1}, "apiVersion is not a string"),
    ],
)
def test_a_malformed_watch_event_names_what_is_wrong(obj: Any, problem: str) -> None:
    machine = WatchMachine(Config(), name="pods")
    listed(machine)
    machine.next_request()
    with pytest.raises(DecodeError, match=f"^watch pods: .*{re.escape(problem)}"):
        machine.on_watch_event(event("MODIFIED", obj))


def test_well_typed_metadata_and_nulls_pass_the_check() -> None:
    machine = WatchMachine(Config(), name="pods")
    listed(machine)
    machine.next_request()
    obj = {
        "kind": "Pod",
        "apiVersion": None,
        "metadata": {
            "name": "a",
            "namespace": None,
            "resourceVersion": "12",
            "labels": {"app": "web"},
            "annotations": None,
            "ownerReferences": [{"uid": "rs-1"}],
            "finalizers": ["f"],
        },
    }
    assert machine.on_watch_event(event("MODIFIED", obj)) == [Apply(obj)]
    # A bookmark's object has no name; one that has a name still has it typed.
    assert machine.on_watch_event(event("BOOKMARK", {"metadata": {"resourceVersion": "13"}})) == []
    with pytest.raises(DecodeError, match=re.escape("metadata.name is not a string")):
        machine.on_watch_event(
            event("BOOKMARK", {"metadata": {"name": 5, "resourceVersion": "14"}})
        )


_ODD_VALUES: list[Any] = [
    None,
    "",
    "x",
    0,
    7,
    1.5,
    True,
    [],
    ["x"],
    [{}],
    [1],
    {},
    {"a": "b"},
    {"a": 1},
]


def _full_object() -> dict[str, Any]:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": "a",
            "namespace": "default",
            "uid": "u-1",
            "resourceVersion": "12",
            "deletionTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "web", "tier": "api"},
            "annotations": {"note": "x"},
            "ownerReferences": [{"uid": "rs-1"}],
            "finalizers": ["f"],
        },
    }


def _variants() -> list[dict[str, Any]]:
    """The full object with each checked field (and each item in one) absent or odd."""
    variants = []
    for where in ("top", "metadata"):
        for key in list(_full_object()[where] if where == "metadata" else _full_object()):
            for value in [*_ODD_VALUES, _ABSENT]:
                obj = _full_object()
                holder = obj["metadata"] if where == "metadata" else obj
                if value is _ABSENT:
                    del holder[key]
                else:
                    holder[key] = value
                variants.append(obj)
    for key, inner in (("labels", "app"), ("annotations", "note")):
        for value in _ODD_VALUES:
            obj = _full_object()
            obj["metadata"][key][inner] = value
            variants.append(obj)
    for key in ("ownerReferences", "finalizers"):
        for value in _ODD_VALUES:
            obj = _full_object()
            obj["metadata"][key].append(value)
            variants.append(obj)
    return variants


_ABSENT = object()


def _outcome(check: Any, obj: Any, named: bool) -> tuple[str, object]:
    try:
        return "passed", check(obj, "watch pods", named)
    except DecodeError as exc:
        return "refused", str(exc)


@pytest.mark.parametrize("named", [True, False])
def test_the_quick_metadata_check_judges_as_the_exact_one(named: bool) -> None:
    # The quick check passes only what the exact one passes, and hands the rest to it.
    # Every field the exact check judges is varied: one it gains fails here until the
    # quick check screens it too.
    judged = {"name", *_META_STRINGS, *_META_STRING_MAPS, "ownerReferences", "finalizers"}
    assert judged <= set(_full_object()["metadata"])
    variants = _variants()
    assert len(variants) > 150
    for obj in variants:
        assert _outcome(_check_object, obj, named) == _outcome(_check_object_exactly, obj, named)


@pytest.mark.parametrize("obj", ["x", {"metadata": "x"}, {"metadata": {"annotations": "x"}}])
def test_a_malformed_bookmark_is_a_decode_error_in_both_strategies(obj: Any) -> None:
    watching = WatchMachine(Config())
    listed(watching)
    watching.next_request()
    initial = streaming()
    initial.next_request()
    for machine in (watching, initial):
        with pytest.raises(DecodeError):
            machine.on_watch_event(event("BOOKMARK", obj))


@pytest.mark.parametrize("obj", MALFORMED_OBJECTS)
def test_a_malformed_initial_event_of_a_streaming_list_is_a_decode_error(obj: Any) -> None:
    machine = streaming()
    machine.next_request()
    machine.on_watch_opened()
    with pytest.raises(DecodeError):
        machine.on_watch_event(event("ADDED", obj))


@pytest.mark.parametrize("kind", ["WHAT", "added", None, 5, ["ADDED"]])
def test_an_unknown_event_type_is_a_decode_error_naming_it(kind: Any) -> None:
    machine = WatchMachine(Config(), name="pods")
    listed(machine)
    machine.next_request()
    with pytest.raises(DecodeError, match="unknown watch event type"):
        machine.on_watch_event(event(kind, pod("a", "11")))
    assert machine.resource_version == "10"


def test_an_error_event_whose_object_is_a_string_keeps_the_servers_words() -> None:
    machine = WatchMachine(Config(), name="pods")
    listed(machine)
    machine.next_request()
    with pytest.raises(ServerError, match="etcdserver: request timed out") as info:
        machine.on_watch_event(event("ERROR", "etcdserver: request timed out"))  # type: ignore[arg-type]
    assert info.value.status["message"].endswith("etcdserver: request timed out")


@pytest.mark.parametrize("code", ["410", 0, 200, True, None, 1000])
def test_an_error_event_without_a_failure_code_is_a_server_error(code: Any) -> None:
    machine = WatchMachine(Config())
    listed(machine)
    machine.next_request()
    with pytest.raises(ServerError, match="broken"):
        machine.on_watch_event(
            event("ERROR", {"kind": "Status", "code": code, "message": "broken"})
        )


@pytest.mark.parametrize("wish", ["soon", "inf", "nan", -3, [], {"a": 1}])
def test_an_unreadable_retry_after_seconds_still_raises_the_typed_error(wish: Any) -> None:
    machine = WatchMachine(Config())
    listed(machine)
    machine.next_request()
    status = {"kind": "Status", "code": 429, "details": {"retryAfterSeconds": wish}}
    with pytest.raises(TooManyRequests) as info:
        machine.on_watch_event(event("ERROR", status))
    assert info.value.retry_after is None
    machine = WatchMachine(Config())
    machine.next_request()
    with pytest.raises(TooManyRequests):
        machine.on_list_failed(429, status)


# -- watching from a known resourceVersion ------------------------------------------------


def test_watch_from_starts_watching_at_that_version_without_a_list() -> None:
    machine = WatchMachine(Config(label_selector="app=web"), watch_from="42")
    assert machine.resource_version == "42"
    req = machine.next_request()
    assert isinstance(req, WatchRequest)
    assert req.params["resourceVersion"] == "42"
    assert req.params["labelSelector"] == "app=web"
    assert "sendInitialEvents" not in req.params
    assert machine.on_watch_event(event("MODIFIED", pod("a", "43"))) == [Apply(pod("a", "43"))]
    assert machine.resource_version == "43"


def test_watch_from_relists_consistently_after_410() -> None:
    machine = WatchMachine(Config(initial_list_strategy="streaming_list"), watch_from="42")
    machine.next_request()
    assert machine.on_watch_event(gone()) == []
    req = machine.next_request()
    assert isinstance(req, WatchRequest) and req.params["sendInitialEvents"] == "true"
    assert "resourceVersion" not in req.params


def test_watch_from_must_name_a_version() -> None:
    with pytest.raises(ValueError, match="watch_from"):
        WatchMachine(Config(), watch_from="")


def test_a_relist_page_whose_envelope_changes_after_its_items_is_a_decode_error() -> None:
    # Decoded whole, the member after the items wins (as in any JSON decoder); cut, the
    # items before were already given the first apiVersion: refused, never mixed.
    body = ENCODED.replace(b"]}", b'],"apiVersion":"v2","x":[1]}')
    machine = WatchMachine(Config(), "1", name="pods")
    machine.next_request()
    with pytest.raises(DecodeError, match="given twice"):
        list(machine.on_list(body))
