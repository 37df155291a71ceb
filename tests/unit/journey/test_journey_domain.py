"""Journey documents and rules without a database: validation by path, waits in local
time, deterministic splits, re-entry and overdue rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalist.journey import domain

SH = ZoneInfo("Asia/Shanghai")


def doc(*steps: dict[str, Any], **over: Any) -> dict[str, Any]:
    j: dict[str, Any] = {
        "key": "j",
        "name": "J",
        "entry": {"event": "member.created"},
        "steps": list(steps) or [{"id": "a", "type": "end"}],
    }
    j.update(over)
    return {"journeys": [j]}


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(domain.JourneyInvalid) as exc:
        domain.parse(data)
    return [(p.path, p.type) for p in exc.value.problems]


def test_a_valid_document_parses() -> None:
    d = domain.parse(
        doc(
            {"id": "w", "type": "wait", "duration": {"days": 3}, "until": "10:00"},
            {
                "id": "b",
                "type": "branch",
                "when": {"gte": {"member.tier": "gold"}},
                "then": "x",
                "else": "end",
            },
            {"id": "x", "type": "action", "action": "add_tag", "params": {"tag": "t"}},
        )
    )
    j = d.journeys[0]
    assert [s.id for s in j.steps] == ["w", "b", "x"]
    assert j.following("w", None) == "b" and j.following("x", None) == "end"


def test_every_problem_is_named_by_its_path() -> None:
    found = problems(
        doc(
            {"id": "a", "type": "branch", "when": {"eq": {"nope": 1}}, "then": "a", "else": "zz"},
            {"id": "a", "type": "wait"},
            {"id": "c", "type": "wait", "duration": {"days": 1}, "weekdays": ["mon"]},
            entry={"event": "member.created", "inactive_days": 3},
            reentry={"mode": "after"},
        )
    )
    assert ("journeys.0.entry", "entry_trigger") in found
    assert ("journeys.0.reentry.days", "missing") in found
    assert ("journeys.0.steps.1.id", "invalid") in found  # used twice
    assert ("journeys.0.steps.0.then", "backward") in found
    assert ("journeys.0.steps.0.else", "unknown") in found
    assert ("journeys.0.steps.1", "invalid") in found  # a wait without anything to wait for
    assert ("journeys.0.steps.2.weekdays", "invalid") in found
    assert any(p.startswith("journeys.0.steps.0.when") and t == "condition" for p, t in found)


def test_schema_errors_have_paths_and_unknown_keys_are_refused() -> None:
    found = problems(doc({"id": "a", "type": "wait", "duration": {"weeks": 1}}))
    assert ("journeys.0.steps.0.wait.duration.weeks", "extra_forbidden") in found
    assert problems({"journeys": [], "extra": 1}) == [("extra", "extra_forbidden")]


def test_split_rules() -> None:
    found = problems(
        doc(
            {
                "id": "s",
                "type": "split",
                "experiment": "e",
                "control": "ctl",
                "variants": [{"name": "a", "weight": 0}, {"name": "a", "weight": 0}],
            },
        )
    )
    assert ("journeys.0.steps.0.variants", "invalid") in found
    assert ("journeys.0.steps.0.control", "invalid") in found


def test_next_local_time_respects_time_of_day_and_weekdays() -> None:
    # Wednesday 2026-06-10 12:00 in Shanghai (04:00 UTC).
    now = datetime(2026, 6, 10, 4, 0, tzinfo=UTC)
    assert domain.next_local_time(SH, now, "10:00") == datetime(2026, 6, 11, 2, 0, tzinfo=UTC)
    assert domain.next_local_time(SH, now, "13:00") == datetime(2026, 6, 10, 5, 0, tzinfo=UTC)
    sat = domain.next_local_time(SH, now, "10:00", ["sat", "sun"])
    assert sat == datetime(2026, 6, 13, 2, 0, tzinfo=UTC)


def test_a_time_skipped_by_daylight_saving_is_taken_at_the_transition() -> None:
    ny = ZoneInfo("America/New_York")
    before = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 local, the day clocks skip 02:xx
    got = domain.next_local_time(ny, before, "02:30")
    assert got.astimezone(ny).hour == 3


def test_wait_until_birthday() -> None:
    step = domain.WaitStep(id="w", type="wait", date="birthday", days_before=1, until="10:00")
    now = datetime(2026, 6, 10, 4, 0, tzinfo=UTC)
    assert domain.wait_until(step, SH, now, date(1990, 6, 20)) == datetime(
        2026, 6, 19, 2, 0, tzinfo=UTC
    )
    # Already past this year: next year's.
    assert domain.wait_until(step, SH, now, date(1990, 1, 2)) == datetime(
        2027, 1, 1, 2, 0, tzinfo=UTC
    )
    # 29 February in a common year counts as 28 February.
    assert domain.wait_until(step, SH, now, date(2000, 2, 29)) == datetime(
        2027, 2, 27, 2, 0, tzinfo=UTC
    )
    assert domain.wait_until(step, SH, now, None) is None


@given(st.integers(min_value=0, max_value=100_000), st.integers(0, 23), st.integers(0, 59))
@settings(max_examples=100, deadline=None)
def test_wait_until_is_never_before_the_duration_and_at_the_local_time(
    minutes: int, hour: int, minute: int
) -> None:
    start = datetime(2026, 6, 10, 4, 0, tzinfo=UTC)
    at = f"{hour:02d}:{minute:02d}"
    step = domain.WaitStep(id="w", type="wait", duration=domain.Duration(minutes=minutes), until=at)
    due = domain.wait_until(step, SH, start, None)
    assert due is not None
    earliest = start + timedelta(minutes=minutes)
    assert earliest <= due < earliest + timedelta(days=1)
    assert due.astimezone(SH).strftime("%H:%M") == at


@given(st.integers(min_value=1, max_value=10**9))
def test_assignment_is_deterministic_and_within_the_variants(member: int) -> None:
    step = domain.SplitStep(
        id="s",
        type="split",
        experiment="e",
        variants=[domain.Variant(name="control", weight=1), domain.Variant(name="b", weight=3)],
    )
    v = domain.assign(step, member)
    assert v is domain.assign(step, member)
    assert v.name in ("control", "b")
    assert 0 <= domain.bucket("e", member) < 1


def test_assignment_follows_the_weights() -> None:
    step = domain.SplitStep(
        id="s",
        type="split",
        experiment="weights",
        variants=[
            domain.Variant(name="control", weight=20),
            domain.Variant(name="b", weight=30),
            domain.Variant(name="c", weight=50),
        ],
    )
    n = 20_000
    counts = {"control": 0, "b": 0, "c": 0}
    for m in range(1, n + 1):
        counts[domain.assign(step, m).name] += 1
    # Within 4 standard deviations of the expected share.
    for name, p in (("control", 0.2), ("b", 0.3), ("c", 0.5)):
        sd = (n * p * (1 - p)) ** 0.5
        assert abs(counts[name] - n * p) < 4 * sd, counts
    # Another experiment's split is independent of this one.
    other = domain.SplitStep(id="s", type="split", experiment="other", variants=step.variants)
    same = sum(domain.assign(step, m).name == domain.assign(other, m).name for m in range(1, 2001))
    assert same < 1000  # 0.2² + 0.3² + 0.5² = 38 % expected if independent


def test_reentry_and_overdue() -> None:
    now = datetime(2026, 6, 10, tzinfo=UTC)
    never, always = domain.Reentry(mode="never"), domain.Reentry(mode="always")
    after = domain.Reentry(mode="after", days=30)
    assert domain.may_reenter(never, None, now)
    assert not domain.may_reenter(never, now - timedelta(days=999), now)
    assert domain.may_reenter(always, now, now)
    assert not domain.may_reenter(after, now - timedelta(days=30) + timedelta(seconds=1), now)
    assert domain.may_reenter(after, now - timedelta(days=30), now)
    assert not domain.overdue(now - timedelta(minutes=120), now, 120)
    assert domain.overdue(now - timedelta(minutes=121), now, 120)


def test_holdout_share() -> None:
    h = domain.Holdout(percent=10)
    share = sum(domain.in_holdout(h, m) for m in range(1, 10_001)) / 10_000
    assert 0.09 < share < 0.11
    assert not any(domain.in_holdout(domain.Holdout(percent=0), m) for m in range(1, 1000))


def test_graph_lists_each_steps_edges() -> None:
    d = domain.parse(
        doc(
            {
                "id": "s",
                "type": "split",
                "experiment": "e",
                "variants": [
                    {"name": "control", "weight": 1, "next": "end"},
                    {"name": "b", "weight": 1},
                ],
            },
            {"id": "b", "type": "action", "action": "add_tag", "params": {"tag": "t"}},
        )
    )
    g = domain.graph(d.journeys[0])
    assert g[0]["edges"] == [("control 1", "end"), ("b 1", "b")]
    assert g[1]["edges"] == [("", "end")]
