"""The pure request scheduler: every scheduling rule, on explicit time, without sleeps."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from rxkube.scheduler import Due, Scheduler


def keys(due: list[Due[str]]) -> list[str]:
    return [d.key for d in due]


# -- due times -------------------------------------------------------------------------


def test_request_without_delay_is_due_at_once() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=10.0, reason="object updated")
    assert s.pop_due(now=10.0) == [Due("a", "object updated", 10.0)]


def test_delayed_request_is_not_handed_out_before_it_is_due() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=0.0, delay=5.0)
    assert s.pop_due(now=4.999) == []
    assert keys(s.pop_due(now=5.0)) == ["a"]


def test_negative_delay_counts_as_now() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=3.0, delay=-10.0)
    assert s.due_time("a") == 3.0


@pytest.mark.parametrize(
    ("delay", "error", "message"),
    [
        (math.nan, ValueError, "Scheduler.request(): delay must be 0 or more seconds, not nan"),
        ("1", TypeError, "Scheduler.request(): delay must be a number of seconds, not str '1'"),
        (None, TypeError, "delay must be a number of seconds, not NoneType"),
    ],
)
def test_a_delay_that_is_nan_or_not_a_number_is_refused(
    delay: Any, error: type[Exception], message: str
) -> None:
    s: Scheduler[str] = Scheduler()
    s.request("b", now=0.0, delay=1.0)
    with pytest.raises(error, match=re.escape(message)):
        s.request("a", now=0.0, delay=delay)
    # Nothing was queued: the other request still comes due (NaN would sit at the heap's top).
    assert s.queued == 1 and s.next_due() == 1.0
    assert keys(s.pop_due(now=1.0)) == ["b"]


def test_an_infinite_delay_asks_for_nothing_and_a_finite_one_is_kept() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=0.0, delay=math.inf)
    assert s.queued == 0 and s.next_due() is None
    s.request("a", now=0.0, delay=5.0)
    s.request("a", now=0.0, delay=math.inf)  # never earlier: the queued one stays
    assert s.due_time("a") == 5.0
    s.request("b", now=0.0, delay=1e300)
    assert s.due_time("b") == 1e300


@pytest.mark.parametrize("debounce", [math.nan, math.inf, -1.0, "0"])
def test_a_debounce_that_is_not_a_finite_duration_is_refused(debounce: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=r"Scheduler\(\): debounce must be"):
        Scheduler(debounce=debounce)


def test_requests_are_handed_out_earliest_due_first_then_in_arrival_order() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("late", now=0.0, delay=2.0)
    s.request("first", now=0.0, delay=1.0)
    s.request("second", now=0.0, delay=1.0)
    assert keys(s.pop_due(now=5.0)) == ["first", "second", "late"]


# -- merging -------------------------------------------------------------------------


def test_queued_requests_for_one_object_are_merged() -> None:
    s: Scheduler[str] = Scheduler()
    for _ in range(5):
        s.request("a", now=0.0)
    assert s.queued == 1
    assert keys(s.pop_due(now=0.0)) == ["a"]
    assert s.pop_due(now=100.0) == []


def test_an_earlier_request_replaces_a_later_one_and_its_reason_wins() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=0.0, delay=300.0, reason="requeue requested")
    s.request("a", now=1.0, reason="object updated")
    assert s.pop_due(now=1.0) == [Due("a", "object updated", 1.0)]


def test_a_later_request_does_not_delay_an_earlier_one() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=0.0, delay=1.0, reason="object updated")
    s.request("a", now=0.0, delay=300.0, reason="requeue requested")
    assert s.pop_due(now=1.0) == [Due("a", "object updated", 1.0)]
    assert s.queued == 0


def test_merging_is_per_object() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=0.0)
    s.request("b", now=0.0)
    s.request("a", now=0.0)
    assert sorted(keys(s.pop_due(now=0.0))) == ["a", "b"]


# -- one reconcile per object at a time ----------------------------------------------


def test_a_running_object_is_not_handed_out_again() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=0.0)
    assert keys(s.pop_due(now=0.0)) == ["a"]
    assert s.is_running("a")
    s.request("a", now=1.0, reason="object updated")
    assert s.pop_due(now=2.0) == []
    assert s.pop_due(now=3.0) == []  # held, not lost, not duplicated
    assert s.queued == 1


def test_a_request_arriving_during_a_reconcile_runs_after_it() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=0.0)
    s.pop_due(now=0.0)
    s.request("a", now=1.0, reason="object updated")
    s.pop_due(now=1.5)
    s.done("a")
    assert s.pop_due(now=2.0) == [Due("a", "object updated", 1.0)]
    assert s.is_running("a")


def test_a_delayed_request_made_during_a_reconcile_keeps_its_delay() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=0.0)
    s.pop_due(now=0.0)
    s.request("a", now=1.0, delay=10.0)
    s.done("a")
    assert s.pop_due(now=10.9) == []
    assert keys(s.pop_due(now=11.0)) == ["a"]


def test_a_running_object_does_not_block_others() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=0.0)
    s.pop_due(now=0.0)
    s.request("a", now=1.0)
    s.request("b", now=1.0)
    assert keys(s.pop_due(now=1.0)) == ["b"]


def test_requeue_after_a_reconcile_merges_with_a_request_made_during_it() -> None:
    # The controller requests the requeue when the reconcile ends: the change seen
    # during the reconcile is earlier, so it wins.
    s: Scheduler[str] = Scheduler()
    s.request("a", now=0.0)
    s.pop_due(now=0.0)
    s.request("a", now=1.0, reason="object updated")
    s.done("a")
    s.request("a", now=2.0, delay=60.0, reason="requeue requested")
    assert s.pop_due(now=2.0) == [Due("a", "object updated", 1.0)]


def test_done_for_an_object_that_is_not_running_raises() -> None:
    s: Scheduler[str] = Scheduler()
    with pytest.raises(KeyError):
        s.done("a")


# -- debounce ------------------------------------------------------------------------


def test_debounce_delays_a_request() -> None:
    s: Scheduler[str] = Scheduler(debounce=2.0)
    s.request("a", now=0.0)
    assert s.pop_due(now=1.9) == []
    assert keys(s.pop_due(now=2.0)) == ["a"]


def test_debounce_is_trailing_a_burst_runs_once_after_the_last_request() -> None:
    s: Scheduler[str] = Scheduler(debounce=2.0)
    for t in (0.0, 0.5, 1.0, 1.5):
        s.request("a", now=t, reason=f"change at {t}")
        assert s.pop_due(now=t) == []
    assert s.pop_due(now=3.4) == []
    assert s.pop_due(now=3.5) == [Due("a", "change at 1.5", 3.5)]


def test_debounce_never_pushes_back_a_request_that_is_already_due() -> None:
    s: Scheduler[str] = Scheduler(debounce=2.0, concurrency=1)
    s.request("busy", now=0.0)
    s.pop_due(now=2.0)  # "busy" takes the only slot
    s.request("a", now=0.0, reason="first")
    s.request("a", now=3.0, reason="second")  # "a" was due at 2.0 already
    s.done("busy")
    assert s.pop_due(now=3.0) == [Due("a", "first", 2.0)]


def test_debounce_does_not_push_back_a_request_held_by_a_running_reconcile() -> None:
    s: Scheduler[str] = Scheduler(debounce=1.0)
    s.request("a", now=0.0)
    s.pop_due(now=1.0)
    s.request("a", now=1.0, reason="during")
    s.pop_due(now=2.0)  # due, held while "a" runs
    s.request("a", now=2.5, reason="later")
    s.done("a")
    assert s.pop_due(now=2.5) == [Due("a", "during", 2.0)]


def test_an_event_during_a_long_requeue_replaces_it_with_debounce() -> None:
    s: Scheduler[str] = Scheduler(debounce=1.0)
    s.request("a", now=0.0, delay=300.0, reason="requeue requested")
    s.request("a", now=10.0, reason="object updated")
    assert s.pop_due(now=11.0) == [Due("a", "object updated", 11.0)]


def test_a_later_request_does_not_extend_the_debounce_of_an_earlier_one() -> None:
    s: Scheduler[str] = Scheduler(debounce=1.0)
    s.request("a", now=0.0, reason="change")
    s.request("a", now=0.5, delay=60.0, reason="requeue requested")
    assert s.pop_due(now=1.0) == [Due("a", "change", 1.0)]


# -- concurrency limit ---------------------------------------------------------------


def test_concurrency_limit_caps_running_objects() -> None:
    s: Scheduler[str] = Scheduler(concurrency=2)
    for key in "abcd":
        s.request(key, now=0.0)
    assert keys(s.pop_due(now=0.0)) == ["a", "b"]
    assert s.running == 2
    assert s.pop_due(now=5.0) == []
    s.done("a")
    assert keys(s.pop_due(now=5.0)) == ["c"]
    s.done("b")
    s.done("c")
    assert keys(s.pop_due(now=5.0)) == ["d"]


def test_concurrency_limit_hands_free_slots_to_the_earliest_due() -> None:
    s: Scheduler[str] = Scheduler(concurrency=1)
    s.request("busy", now=0.0)
    s.pop_due(now=0.0)
    s.request("late", now=0.0, delay=2.0)
    s.request("early", now=0.0, delay=1.0)
    s.done("busy")
    assert keys(s.pop_due(now=3.0)) == ["early"]


def test_an_object_held_by_its_own_reconcile_does_not_take_a_slot() -> None:
    s: Scheduler[str] = Scheduler(concurrency=2)
    s.request("a", now=0.0)
    s.pop_due(now=0.0)
    s.request("a", now=1.0)
    s.request("b", now=1.0)
    assert keys(s.pop_due(now=1.0)) == ["b"]


# -- next_due ------------------------------------------------------------------------


def test_next_due_is_none_when_nothing_is_queued() -> None:
    s: Scheduler[str] = Scheduler()
    assert s.next_due() is None


def test_next_due_is_the_earliest_request() -> None:
    s: Scheduler[str] = Scheduler(debounce=0.5)
    s.request("a", now=0.0, delay=3.0)
    s.request("b", now=0.0, delay=1.0)
    assert s.next_due() == 1.5


def test_next_due_skips_superseded_requests() -> None:
    s: Scheduler[str] = Scheduler(debounce=1.0)
    s.request("a", now=0.0)
    s.request("a", now=0.5)
    assert s.next_due() == 1.5


def test_next_due_is_none_while_the_concurrency_limit_is_reached() -> None:
    s: Scheduler[str] = Scheduler(concurrency=1)
    s.request("a", now=0.0)
    s.request("b", now=0.0)
    s.pop_due(now=0.0)
    assert s.next_due() is None
    s.done("a")
    assert s.next_due() == 0.0


def test_next_due_ignores_a_request_held_by_a_running_reconcile() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=0.0)
    s.pop_due(now=0.0)
    s.request("a", now=1.0)
    s.pop_due(now=1.0)  # held
    assert s.next_due() is None
    s.done("a")
    assert s.next_due() == 1.0


# -- housekeeping --------------------------------------------------------------------


def test_clear_drops_queued_requests_but_not_running_ones() -> None:
    s: Scheduler[str] = Scheduler()
    s.request("a", now=0.0)
    s.pop_due(now=0.0)
    s.request("a", now=1.0)
    s.request("b", now=1.0, delay=5.0)
    s.pop_due(now=1.0)
    s.clear()
    assert s.queued == 0 and s.running == 1
    s.done("a")
    assert s.pop_due(now=100.0) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"debounce": -1.0}, "debounce"), ({"concurrency": 0}, "concurrency")],
)
def test_invalid_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scheduler(**kwargs)  # type: ignore[arg-type]
