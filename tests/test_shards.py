"""Shard hashing, selectors and sharded list/watch (KEP-5866): pure, then over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from rxkube import Shard, ShardSelectorError, watcher
from rxkube._shards import (
    HASH_SPACE,
    applied_selector,
    contains,
    fnv1a_64,
    intersect,
    minus,
    normalize,
    parse_requirements,
    ring_assignment,
    size,
    union,
)
from rxkube.client import Api
from rxkube.errors import ServerError
from rxkube.events import Apply, Delete, Event, Init, InitApply, InitDone
from rxkube.protocol import Config, ListRequest, WatchMachine, WatchRequest
from rxkube.testing import ApiServer
from tests.waiting import Sink

TIMEOUT = 20.0
HALF = Shard(((0, 1 << 63),))
UPPER = Shard(((1 << 63, HASH_SPACE),))
UID = "0b9f4b9e-4c3e-4f5e-9c1a-2f7d3d8e6a10"


# -- hashing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # The published FNV-1a 64-bit test vectors (Noll's test suite).
        (b"", 0xCBF29CE484222325),
        (b"a", 0xAF63DC4C8601EC8C),
        (b"b", 0xAF63DF4C8601F1A5),
        (b"foobar", 0x85944171F73967E8),
    ],
)
def test_fnv1a_64_matches_the_published_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_64(data) == expected


def test_an_object_hashes_its_uid_utf8_bytes_and_a_missing_field_as_empty() -> None:
    shard = HALF
    assert shard.hash_of({"metadata": {"uid": UID}}) == fnv1a_64(UID.encode())
    assert shard.hash_of({"metadata": {}}) == fnv1a_64(b"")
    by_ns = Shard(((0, HASH_SPACE),), key="namespace")
    assert by_ns.hash_of({"metadata": {"namespace": "välja"}}) == fnv1a_64("välja".encode())


def test_ranges_are_start_inclusive_end_exclusive() -> None:
    h = fnv1a_64(UID.encode())
    obj = {"metadata": {"uid": UID}}
    assert Shard(((h, h + 1),)).matches(obj)
    assert not Shard(((h + 1, HASH_SPACE),)).matches(obj)
    assert not Shard(((0, h),)).matches(obj)


def test_split_shards_partition_the_hash_space() -> None:
    uids = [f"uid-{i}-{i * 7919}" for i in range(2000)]
    for total in (1, 2, 3, 5, 8):
        shards = [Shard.split(i, total) for i in range(total)]
        for uid in uids:
            assert sum(s.matches({"metadata": {"uid": uid}}) for s in shards) == 1
    assert Shard.split(1, 3).ranges == ((0x5555555555555555, 0xAAAAAAAAAAAAAAAA),)


# -- building and parsing ------------------------------------------------------------------


def test_selector_is_the_servers_format_and_round_trips() -> None:
    shard = Shard(((0, 1 << 62), (1 << 63, HASH_SPACE)))
    text = shard.selector()
    assert text == (
        "shardRange(object.metadata.uid, '0x0000000000000000', '0x4000000000000000') || "
        "shardRange(object.metadata.uid, '0x8000000000000000', '0x10000000000000000')"
    )
    assert Shard.parse(text) == shard


def test_overlapping_and_adjacent_ranges_merge() -> None:
    assert Shard(((5, 10), (0, 5), (8, 20))).ranges == ((0, 20),)


@pytest.mark.parametrize(
    "text",
    [
        "shardRange(object.metadata.uid,'0x0000000000000000','0x8000000000000000')",
        "  shardRange( object.metadata.uid ,  '0x0000000000000000' ,  '0x8000000000000000' )  ",
        '(shardRange(object.metadata.uid, "0x0000000000000000", "0x8000000000000000"))',
    ],
)
def test_parse_accepts_what_the_server_accepts(text: str) -> None:
    assert Shard.parse(text) == HALF


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty shard selector"),
        ("shardRange(object.metadata.uid, '0x0', '0x8000000000000000')", "16-digit"),
        ("shardRange(object.metadata.uid, '0x0000000000000000', '0xff')", "16-digit"),
        ("shardRange(object.metadata.uid, '0000000000000000', '0x8000000000000000')", "'0x'"),
        ("shardRange(object.metadata.uid, '0x', '0x8000000000000000')", "required after"),
        ("shardRange(object.metadata.uid, '0x000000000000000000', '0x80')", "too long"),
        ("shardRange(object.metadata.uid, '0x00000000000000AA', '0x8000000000000000')", "hex char"),
        (
            "shardRange(object.metadata.uid, '0x20000000000000000', '0x8000000000000000')",
            "17-digit",
        ),
        ("shardRange(object.metadata.name, '0x0000000000000000', '0x8000000000000000')", "path"),
        ("invalidFunc(object.metadata.uid, '0x00', '0x80')", "unsupported function"),
        ("shardRange(object.metadata.uid, 0, 8)", "string literal"),
        ("shardRange(object.metadata.uid, '0x0000000000000000')", "exactly 3"),
        ("object.metadata.uid > '0x0'", 'unsupported function "_>_"'),
        (
            "shardRange(object.metadata.uid, '0x8000000000000000', '0x8000000000000000')",
            "less than",
        ),
        (
            "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000') && "
            "shardRange(object.metadata.uid, '0x8000000000000000', '0x10000000000000000')",
            '"_&&_"',
        ),
        (
            "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000') || "
            "shardRange(object.metadata.namespace, '0x8000000000000000', '0x10000000000000000')",
            "same field",
        ),
    ],
)
def test_parse_refuses_what_the_server_refuses(text: str, reason: str) -> None:
    with pytest.raises(ShardSelectorError, match=re.escape(reason)):
        Shard.parse(text)


SELECTOR = "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')"


# Each message as kube-apiserver v1.36.2 answered it (with ShardedListAndWatch on), after
# "invalid shard selector: ": Go's %q quoting, CEL's names for operators, the kinds of
# cel-go's AST printed as numbers.
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "shardRange(object.metadata.uid, '0x0', '0x8000000000000000')",
            'hexStart must be a 0x-prefixed 16-digit hex value, got "0x0" '
            '(did you mean "0x0000000000000000"?)',
        ),
        (
            f"{SELECTOR} && {SELECTOR}",
            'unsupported function "_&&_"; only shardRange() and || are allowed',
        ),
        (
            "shardRange(object.metadata.name, '0x0000000000000000', '0x8000000000000000')",
            'unsupported field path "object.metadata.name"; supported: object.metadata.uid, '
            "object.metadata.namespace",
        ),
        (" ", "empty shard selector is not allowed; omit the parameter for unfiltered lists"),
        (
            "foo(object.metadata.uid)",
            'unsupported function "foo"; only shardRange() and || are allowed',
        ),
        (
            f"{SELECTOR} || shardRange(object.metadata.namespace, '0x0000000000000000', "
            "'0x8000000000000000')",
            'all shard ranges must use the same field, got "object.metadata.uid" and '
            '"object.metadata.namespace"',
        ),
        (
            "shardRange(object.metadata.uid, '0x8000000000000000', '0x0000000000000000')",
            "shard range start 0x8000000000000000 must be less than end 0x0000000000000000",
        ),
        (
            "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000A')",
            'hexEnd: invalid hex character "A" in "0x8000000000000000A"',
        ),
        (
            "shardRange(object.metadata.uid, 1, '0x8000000000000000')",
            "hexStart must be a string literal, got int64",
        ),
        (
            "shardRange(uid, '0x0000000000000000', '0x8000000000000000')",
            'unsupported field path "uid"; supported: object.metadata.uid, '
            "object.metadata.namespace",
        ),
    ],
)
def test_parse_refuses_with_the_servers_own_message(text: str, message: str) -> None:
    with pytest.raises(ShardSelectorError) as raised:
        Shard.parse(text)
    assert str(raised.value) == message


def test_the_echo_is_each_range_as_written_where_the_shard_merges_them() -> None:
    """kube-apiserver v1.36.2 echoed two adjacent ranges as two, in the order sent."""
    upper = "shardRange(object.metadata.uid, '0x8000000000000000', '0x10000000000000000')"
    text = f"{upper} || ({SELECTOR})"
    assert applied_selector(text) == f"{upper} || {SELECTOR}"
    assert Shard.parse(text).ranges == ((0, HASH_SPACE),)
    assert parse_requirements(text) == ([(2**63, HASH_SPACE), (0, 2**63)], "uid")


@pytest.mark.parametrize(
    "ranges",
    [(), ((0, 0),), ((5, 3),), ((-1, 4),), ((0, HASH_SPACE + 1),), ((0.5, 4),), ((True, 4),)],
)
def test_invalid_ranges_are_typed_errors(ranges: Any) -> None:
    with pytest.raises(ShardSelectorError):
        Shard(ranges)


def test_the_docstring_examples_run() -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module("rxkube._shards"))
    assert result.attempted > 0 and result.failed == 0


def test_config_takes_a_shard_or_a_selector_and_refuses_bad_ones() -> None:
    assert Config(shard=HALF.selector()).shard == HALF
    with pytest.raises(ShardSelectorError, match=r"Config\.shard is invalid"):
        Config(shard="shardRange(object.metadata.uid, '0x0', '0x8')")
    with pytest.raises(ShardSelectorError, match=r"Config\.shard must be"):
        Config(shard=42)  # type: ignore[arg-type]


# -- the state machine -----------------------------------------------------------------------


def obj(name: str, rv: str, uid: str | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": uid or f"uid-{name}", "resourceVersion": rv}}


def in_half(name: str) -> bool:
    return HALF.matches(obj(name, "1"))


NAMES = [f"cm-{i}" for i in range(40)]
INSIDE = [n for n in NAMES if in_half(n)]
OUTSIDE = [n for n in NAMES if not in_half(n)]


def listing(items: list[dict[str, Any]], rv: str, echo: str | None) -> bytes:
    """A list page's body, echoing the shard selector ``echo`` (None: no shardInfo)."""
    meta: dict[str, Any] = {"resourceVersion": rv}
    if echo is not None:
        meta["shardInfo"] = {"selector": echo}
    page = {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": meta, "items": items}
    return orjson.dumps(page)


def test_requests_carry_the_shard_selector() -> None:
    machine = WatchMachine(Config(shard=HALF, page_size=None))
    assert machine.next_request() == ListRequest({"shardSelector": HALF.selector()})
    list(machine.on_list(listing([], "5", HALF.selector())))
    request = machine.next_request()
    assert isinstance(request, WatchRequest)
    assert request.params["shardSelector"] == HALF.selector()


# A first list and a relist (their requests differ): both filter alike.
FIRST_LIST_OR_RELIST = pytest.mark.parametrize("resume", [None, "1"], ids=["first", "relist"])


@FIRST_LIST_OR_RELIST
def test_a_list_echoing_the_selector_is_taken_as_the_server_filtered_it(
    resume: str | None,
) -> None:
    machine = WatchMachine(Config(shard=HALF, page_size=None), resume)
    machine.next_request()
    # Items outside the range in an echoed list mean the server decided: kept as sent.
    events = list(machine.on_list(listing([obj(OUTSIDE[0], "3")], "5", HALF.selector())))
    assert [type(e) for e in events] == [Init, InitApply, InitDone]
    assert machine.server_sharded is True


@FIRST_LIST_OR_RELIST
@pytest.mark.parametrize("echo", [None, UPPER.selector()])
def test_a_list_without_the_echo_is_filtered_with_the_same_hash(
    echo: str | None, resume: str | None
) -> None:
    machine = WatchMachine(Config(shard=HALF, page_size=None), resume)
    machine.next_request()
    events = list(machine.on_list(listing([obj(n, "3") for n in NAMES], "5", echo)))
    kept = [e.obj["metadata"]["name"] for e in events if isinstance(e, InitApply)]
    assert kept == INSIDE
    assert machine.server_sharded is False


def test_watch_events_outside_the_shard_are_dropped_but_move_the_resume_point() -> None:
    machine = WatchMachine(Config(shard=HALF, page_size=None))
    machine.next_request()
    list(machine.on_list(listing([], "5", HALF.selector())))
    machine.next_request()
    assert machine.on_watch_event({"type": "ADDED", "object": obj(OUTSIDE[0], "6")}) == []
    assert machine.resource_version == "6"
    assert machine.on_watch_event({"type": "DELETED", "object": obj(OUTSIDE[0], "7")}) == []
    inside = obj(INSIDE[0], "8")
    assert machine.on_watch_event({"type": "MODIFIED", "object": inside}) == [Apply(inside)]
    assert machine.on_watch_event({"type": "DELETED", "object": inside}) == [Delete(inside)]


def test_a_streaming_list_is_filtered_client_side() -> None:
    config = Config(shard=HALF, initial_list_strategy="streaming_list")
    machine = WatchMachine(config)
    request = machine.next_request()
    assert isinstance(request, WatchRequest)
    assert request.params["shardSelector"] == HALF.selector()
    machine.on_watch_opened()
    kept: list[Event] = []
    for name in NAMES:
        kept += machine.on_watch_event({"type": "ADDED", "object": obj(name, "3")})
    end: dict[str, Any] = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "9"},
    }
    end["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
    assert machine.on_watch_event({"type": "BOOKMARK", "object": end}) == [InitDone()]
    assert [e.obj["metadata"]["name"] for e in kept if isinstance(e, InitApply)] == INSIDE


# -- over HTTP, against both kinds of server ------------------------------------------------------


def settled(got: Sink, pred: Callable[[list[Event]], bool], what: str) -> None:
    """Wait until ``pred`` holds for what ``got`` received, failing at once on an error."""
    got.wait(lambda sink: pred(sink.items) or bool(sink.errors), what, TIMEOUT)
    assert not got.errors, got.errors


def names(events: list[Event], kind: type[InitApply | Apply | Delete]) -> set[str]:
    return {e.obj["metadata"]["name"] for e in events if isinstance(e, kind)}


@pytest.mark.parametrize("honoured", [True, False], ids=["v1.36", "old-server"])
@pytest.mark.parametrize("strategy", ["list_watch", "streaming_list"])
def test_a_sharded_watcher_sees_only_its_shard_from_either_server(
    honoured: bool, strategy: str
) -> None:
    with ApiServer(sharded_lists=honoured) as srv:
        created = [srv.create("configmaps", {"metadata": {"name": f"a-{i}"}}) for i in range(60)]
        shard = Shard.split(0, 2)
        want = {o["metadata"]["name"] for o in created if shard.matches(o)}
        assert 0 < len(want) < 60
        api = Api(srv.client(), "configmaps", namespace="default")
        config = Config(shard=shard, page_size=7, initial_list_strategy=strategy)  # type: ignore[arg-type]
        got = Sink()
        subscription = watcher(api, config).subscribe(got.on_next, got.on_error)
        try:
            settled(got, lambda events: any(isinstance(e, InitDone) for e in events), "the list")
            assert names(got.items, InitApply) == want
            later = [srv.create("configmaps", {"metadata": {"name": f"b-{i}"}}) for i in range(40)]
            want_later = {o["metadata"]["name"] for o in later if shard.matches(o)}
            last = max(want_later)
            settled(got, lambda events: last in names(events, Apply), "the last update")
            srv.delete("configmaps", last, namespace="default")
            settled(got, lambda events: last in names(events, Delete), "the last deletion")
            assert names(got.items, Apply) == want_later
        finally:
            subscription.dispose()
        shard_params = [
            r.query.get("shardSelector") for r in srv.requests if r.verb in ("list", "watch")
        ]
        assert shard_params and set(shard_params) == {shard.selector()}


def test_the_server_echoes_the_selector_only_when_it_honours_it() -> None:
    with ApiServer() as srv:
        api = Api(srv.client(), "configmaps", namespace="default")
        query = {"shardSelector": HALF.selector()}
        assert api.list_page(query).json()["metadata"]["shardInfo"] == {"selector": HALF.selector()}
        srv.sharded_lists = False
        assert "shardInfo" not in api.list_page(query).json()["metadata"]


def test_the_server_refuses_an_invalid_selector_with_500_naming_it() -> None:
    """As kube-apiserver v1.36.2 answers it: its registry returns the parse error
    unwrapped, so the handler sends 500 and a Status with no reason."""
    with ApiServer() as srv:
        api = Api(srv.client(), "configmaps", namespace="default")
        bad = {"shardSelector": "shardRange(object.metadata.uid, '0x0', '0x8000000000000000')"}
        answer = api.list_page(bad)
        assert answer.status == 500
        assert answer.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "invalid shard selector: hexStart must be a 0x-prefixed 16-digit hex "
            'value, got "0x0" (did you mean "0x0000000000000000"?)',
            "code": 500,
        }
        with pytest.raises(ServerError, match="invalid shard selector: hexStart must be"):
            answer.raise_for_status()
        srv.sharded_lists = False  # an old server does not read the parameter at all
        assert api.list_page(bad).status == 200


# -- range sets and the ring ------------------------------------------------------------------


def test_range_algebra() -> None:
    a = ((0, 10), (20, 30))
    b = ((5, 25),)
    assert union(a, b) == ((0, 30),)
    assert minus(a, b) == ((0, 5), (25, 30))
    assert intersect(a, b) == ((5, 10), (20, 25))
    assert contains(a, 0) and contains(a, 29) and not contains(a, 10) and not contains(a, 30)
    assert size(a) == 20 and minus(a, a) == () and union((), ()) == ()


def test_the_ring_splits_the_whole_space_the_same_way_everywhere() -> None:
    ids = [f"replica-{i}" for i in range(5)]
    split = ring_assignment(ids, 64)
    assert split == ring_assignment(list(reversed(ids)), 64)
    owned = [r for ranges in split.values() for r in ranges]
    assert normalize(owned) == ((0, HASH_SPACE),)
    assert sum(size(r) for r in split.values()) == HASH_SPACE  # disjoint
    assert ring_assignment([], 64) == {}
    with pytest.raises(ValueError, match="vnodes"):
        ring_assignment(ids, 0)


@pytest.mark.parametrize("n", range(1, 9))
def test_the_ring_is_balanced_within_1_5_of_fair(n: int) -> None:
    for ids in ([f"replica-{i}" for i in range(n)], [f"r{i * 37}" for i in range(n)]):
        split = ring_assignment(ids, 64)
        assert max(size(r) for r in split.values()) <= 1.5 * HASH_SPACE / n


@pytest.mark.parametrize("n", range(1, 8))
def test_a_join_or_leave_moves_only_about_one_nth(n: int) -> None:
    ids = [f"replica-{i}" for i in range(n)]
    before = ring_assignment(ids, 64)
    after = ring_assignment([*ids, "newcomer"], 64)
    moved = sum(size(minus(before[i], after[i])) for i in ids)
    # Only the newcomer gains: what moved is exactly its share, about 1/(n+1).
    assert moved == size(after["newcomer"])
    assert moved <= 1.5 * HASH_SPACE / (n + 1)
    for i in ids:
        assert minus(after[i], before[i]) == ()  # nobody else gains anything
    # And leaving gives back exactly that.
    assert ring_assignment(ids, 64) == before
