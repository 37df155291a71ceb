"""Tier qualification, progress, periods and re-evaluation (loyalist.tier.domain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalist.programme.schemas import EvaluationPeriod, Tier, Tiers
from loyalist.tier.domain import (
    Progress,
    Reevaluation,
    instant_upgrade,
    period_of,
    previous_period,
    progress,
    qualifying_tier,
    reevaluate,
    window_start,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")

TIERS = Tiers(
    downgrade_after_periods=2,
    levels=[
        Tier(code="base", name="Base", threshold=0),
        Tier(code="silver", name="Silver", threshold=1000),
        Tier(code="gold", name="Gold", threshold=5000),
        Tier(code="platinum", name="Platinum", threshold=20000),
    ],
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-5, "base"), (0, "base"), (999, "base"), (1000, "silver"), (4999, "silver"),
     (5000, "gold"), (20000, "platinum"), (10**12, "platinum")],
)  # fmt: skip
def test_qualifying_tier(value: int, expected: str) -> None:
    assert qualifying_tier(TIERS, value) == expected


@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6))
def test_qualifying_tier_is_monotone(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert TIERS.index(qualifying_tier(TIERS, low)) <= TIERS.index(qualifying_tier(TIERS, high))
    assert TIERS.by_code(qualifying_tier(TIERS, high)).threshold <= max(high, 0)


def test_progress() -> None:
    assert progress(TIERS, "silver", 3000) == Progress("silver", 3000, "gold", 2000, 1000, 0)
    assert progress(TIERS, "silver", 600) == Progress("silver", 600, "gold", 4400, 1000, 400)
    assert progress(TIERS, "silver", 7000) == Progress("silver", 7000, "gold", 0, 1000, 0)
    assert progress(TIERS, "platinum", 100) == Progress("platinum", 100, None, None, 20000, 19900)
    assert progress(TIERS, "base", 0) == Progress("base", 0, "silver", 1000, 0, 0)
    with pytest.raises(ValueError, match="unknown tier"):
        progress(TIERS, "diamond", 0)


@pytest.mark.parametrize(
    ("evaluation", "zone", "at", "expected"),
    [
        # 1 Oct 00:30 Shanghai is still 30 Sep in UTC: the local date decides
        (EvaluationPeriod.QUARTERLY, SHANGHAI, utc(2026, 9, 30, 16, 30),
         ("2026-Q4", utc(2026, 9, 30, 16), utc(2026, 12, 31, 16))),
        (EvaluationPeriod.QUARTERLY, SHANGHAI, utc(2026, 9, 30, 15, 59),
         ("2026-Q3", utc(2026, 6, 30, 16), utc(2026, 9, 30, 16))),
        (EvaluationPeriod.MONTHLY, SHANGHAI, utc(2026, 11, 11),
         ("2026-11", utc(2026, 10, 31, 16), utc(2026, 11, 30, 16))),
        (EvaluationPeriod.HALF_YEARLY, SHANGHAI, utc(2026, 7, 1),
         ("2026-H2", utc(2026, 6, 30, 16), utc(2026, 12, 31, 16))),
        (EvaluationPeriod.YEARLY, SHANGHAI, utc(2026, 12, 31, 16),
         ("2027", utc(2026, 12, 31, 16), utc(2027, 12, 31, 16))),
        # New York March spans the DST start: EST at the start, EDT at the end
        (EvaluationPeriod.MONTHLY, NEW_YORK, utc(2026, 3, 15),
         ("2026-03", utc(2026, 3, 1, 5), utc(2026, 4, 1, 4))),
        (EvaluationPeriod.QUARTERLY, NEW_YORK, utc(2026, 11, 1, 4),
         ("2026-Q4", utc(2026, 10, 1, 4), utc(2027, 1, 1, 5))),
        # Berlin H1 runs CET -> CEST
        (EvaluationPeriod.HALF_YEARLY, BERLIN, utc(2026, 3, 29, 1),
         ("2026-H1", utc(2025, 12, 31, 23), utc(2026, 6, 30, 22))),
    ],
)  # fmt: skip
def test_period_of(
    evaluation: EvaluationPeriod,
    zone: ZoneInfo,
    at: datetime,
    expected: tuple[str, datetime, datetime],
) -> None:
    assert period_of(evaluation, zone, at) == expected


def test_previous_period() -> None:
    at = utc(2026, 1, 15)
    assert previous_period(EvaluationPeriod.QUARTERLY, SHANGHAI, at) == (
        "2025-Q4",
        utc(2025, 9, 30, 16),
        utc(2025, 12, 31, 16),
    )
    assert previous_period(EvaluationPeriod.MONTHLY, NEW_YORK, utc(2026, 3, 1, 5))[0] == "2026-02"
    assert (
        previous_period(EvaluationPeriod.MONTHLY, NEW_YORK, utc(2026, 3, 1, 4, 59))[0] == "2026-01"
    )
    assert previous_period(EvaluationPeriod.HALF_YEARLY, BERLIN, at)[0] == "2025-H2"
    assert previous_period(EvaluationPeriod.YEARLY, BERLIN, at)[0] == "2025"


ZONES = st.sampled_from([SHANGHAI, NEW_YORK, BERLIN, ZoneInfo("America/Santiago"), UTC])
INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@given(st.sampled_from(list(EvaluationPeriod)), ZONES, INSTANTS)
def test_periods_tile_time(evaluation: EvaluationPeriod, zone: ZoneInfo, at: datetime) -> None:
    label, start, end = period_of(evaluation, zone, at)
    assert start <= at < end
    assert period_of(evaluation, zone, start) == (label, start, end)
    assert period_of(evaluation, zone, end - timedelta(microseconds=1)) == (label, start, end)
    prev_label, prev_start, prev_end = previous_period(evaluation, zone, at)
    assert prev_start < prev_end == start
    assert prev_label < label  # labels sort chronologically within a period kind
    assert period_of(evaluation, zone, end)[1] == end


def test_window_start() -> None:
    # 1 Mar 2026 00:30 Shanghai (28 Feb UTC): 12 months before the local date -> 1 Mar 2025
    assert window_start(12, SHANGHAI, utc(2026, 2, 28, 16, 30)) == utc(2025, 2, 28, 16)
    assert window_start(12, SHANGHAI, utc(2024, 2, 29, 4)) == utc(2023, 2, 27, 16)  # clamped
    assert window_start(1, SHANGHAI, utc(2026, 3, 31, 4)) == utc(2026, 2, 27, 16)  # clamped
    # New York: 9 Mar 2026 (EDT) - 1 month = 9 Feb (EST)
    assert window_start(1, NEW_YORK, utc(2026, 3, 9, 12)) == utc(2026, 2, 9, 5)


@given(st.integers(1, 60), ZONES, INSTANTS)
def test_window_start_is_before_and_a_day_start(months: int, zone: ZoneInfo, at: datetime) -> None:
    start = window_start(months, zone, at)
    assert start < at
    assert start <= at - timedelta(days=28 * months)


@pytest.mark.parametrize(
    ("current", "value", "below", "expected"),
    [
        ("silver", 2000, 0, Reevaluation("silver", 0, "keep")),
        ("silver", 2000, 1, Reevaluation("silver", 0, "keep")),
        ("silver", 6000, 1, Reevaluation("gold", 0, "upgrade")),
        ("silver", 30000, 0, Reevaluation("platinum", 0, "upgrade")),
        ("gold", 2000, 0, Reevaluation("gold", 1, "hold")),
        ("gold", 2000, 1, Reevaluation("silver", 0, "downgrade")),
        ("platinum", 0, 1, Reevaluation("base", 0, "downgrade")),
        ("base", 0, 0, Reevaluation("base", 0, "keep")),
    ],
)
def test_reevaluate(current: str, value: int, below: int, expected: Reevaluation) -> None:
    assert reevaluate(TIERS, current, value, below) == expected


def test_reevaluate_sequence_with_three_periods() -> None:
    tiers = TIERS.model_copy(update={"downgrade_after_periods": 3})
    r1 = reevaluate(tiers, "gold", 100, 0)
    r2 = reevaluate(tiers, r1.new_tier, 100, r1.periods_below)
    r3 = reevaluate(tiers, r2.new_tier, 100, r2.periods_below)
    assert [r1.change, r2.change, r3.change] == ["hold", "hold", "downgrade"]
    assert (r3.new_tier, r3.periods_below) == ("base", 0)
    # a good period in between resets the count
    back = reevaluate(tiers, r2.new_tier, 5000, r2.periods_below)
    assert back == Reevaluation("gold", 0, "keep")


def test_reevaluate_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        reevaluate(TIERS, "diamond", 0, 0)
    with pytest.raises(ValueError):
        reevaluate(TIERS, "gold", 0, -1)


@given(
    st.sampled_from([t.code for t in TIERS.levels]),
    st.integers(0, 30000),
    st.integers(0, 5),
)
def test_reevaluate_properties(current: str, value: int, below: int) -> None:
    r = reevaluate(TIERS, current, value, below)
    q = qualifying_tier(TIERS, value)
    if r.change == "hold":
        assert r.new_tier == current
        assert 0 < r.periods_below < TIERS.downgrade_after_periods
    else:
        assert r.periods_below == 0
        assert r.new_tier == (current if r.change == "keep" else q)
    assert (r.change == "upgrade") == (TIERS.index(q) > TIERS.index(current))


def test_instant_upgrade() -> None:
    assert instant_upgrade(TIERS, "silver", 5000) == "gold"
    assert instant_upgrade(TIERS, "silver", 25000) == "platinum"
    assert instant_upgrade(TIERS, "silver", 4999) is None
    assert instant_upgrade(TIERS, "gold", 0) is None  # never downgrades
    assert instant_upgrade(TIERS, "platinum", 10**9) is None
