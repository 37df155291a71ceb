"""Lot allocation, expiry, pending and reminders (loyalist.ledger.domain, kit.localtime)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalist.kit.localtime import add_months
from loyalist.ledger.domain import (
    InsufficientLots,
    LotView,
    allocate_fefo,
    available_at,
    expires_at,
    local_day,
    reminder_due,
    start_of_local_day,
)
from loyalist.programme.schemas import Expiry, ExpiryKind

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
ZONES = [
    SHANGHAI,
    NEW_YORK,
    BERLIN,
    ZoneInfo("America/Santiago"),  # DST starts at midnight
    ZoneInfo("America/Havana"),  # DST at midnight, fall back 01:00 -> 00:00
    ZoneInfo("Pacific/Apia"),  # skipped 2011-12-30 entirely
    ZoneInfo("Australia/Lord_Howe"),  # 30-minute DST
    UTC,
]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def lot(id_: int, remaining: int, expires: datetime | None) -> LotView:
    return LotView(id_, remaining, expires)


# --------------------------------------------------------------------------- FEFO


def test_fefo_takes_soonest_expiry_first_never_expiring_last_ties_by_id() -> None:
    lots = [
        lot(1, 50, None),
        lot(2, 30, utc(2027, 1, 1)),
        lot(3, 20, utc(2026, 6, 1)),
        lot(4, 10, utc(2027, 1, 1)),
        lot(5, 0, utc(2025, 1, 1)),  # empty: skipped
    ]
    assert allocate_fefo(lots, 25) == [(3, 20), (2, 5)]
    assert allocate_fefo(lots, 60) == [(3, 20), (2, 30), (4, 10)]
    assert allocate_fefo(lots, 110) == [(3, 20), (2, 30), (4, 10), (1, 50)]


def test_fefo_compares_instants_not_wall_times() -> None:
    # 08:00 Shanghai is 00:00 UTC: it expires before 01:00 UTC.
    lots = [lot(1, 5, utc(2026, 1, 1, 1)), lot(2, 5, datetime(2026, 1, 1, 8, tzinfo=SHANGHAI))]
    assert allocate_fefo(lots, 6) == [(2, 5), (1, 1)]


def test_fefo_insufficient() -> None:
    with pytest.raises(InsufficientLots) as info:
        allocate_fefo([lot(1, 5, None), lot(2, -3, None), lot(3, 4, utc(2026, 1, 1))], 10)
    assert (info.value.available, info.value.requested) == (9, 10)
    assert isinstance(info.value, Exception)
    with pytest.raises(InsufficientLots):
        allocate_fefo([], 1)


@pytest.mark.parametrize("points", [0, -1])
def test_fefo_points_must_be_positive(points: int) -> None:
    with pytest.raises(ValueError):
        allocate_fefo([lot(1, 5, None)], points)


LOTS = st.lists(
    st.builds(
        LotView,
        id=st.integers(1, 10_000),
        remaining=st.integers(0, 1000),
        expires_at=st.none()
        | st.datetimes(
            min_value=datetime(2025, 1, 1), max_value=datetime(2025, 1, 10), timezones=st.just(UTC)
        ),
    ),
    max_size=10,
    unique_by=lambda v: v.id,
)


def _key(v: LotView) -> tuple[bool, datetime, int]:
    return (v.expires_at is None, v.expires_at or datetime.max.replace(tzinfo=UTC), v.id)


@given(LOTS, st.integers(1, 6000))
def test_fefo_properties(lots: list[LotView], points: int) -> None:
    available = sum(v.remaining for v in lots)
    if available < points:
        with pytest.raises(InsufficientLots):
            allocate_fefo(lots, points)
        return
    plan = allocate_fefo(lots, points)
    by_id = {v.id: v for v in lots}
    assert sum(t for _, t in plan) == points
    assert all(0 < t <= by_id[i].remaining for i, t in plan)
    assert len({i for i, _ in plan}) == len(plan)
    # consumption order follows the FEFO key, and every lot before the last one is emptied
    used = [by_id[i] for i, _ in plan]
    assert used == sorted(used, key=_key)
    assert all(t == by_id[i].remaining for i, t in plan[:-1])
    # no untouched non-empty lot sorts before the last used lot
    last = _key(used[-1])
    assert all(_key(v) > last for v in lots if v.remaining > 0 and v.id not in {u.id for u in used})


# --------------------------------------------------------------------------- local days


def test_local_day_uses_the_zone() -> None:
    at = utc(2026, 12, 31, 16, 30)
    assert local_day(SHANGHAI, at) == date(2027, 1, 1)
    assert local_day(NEW_YORK, at) == date(2026, 12, 31)
    with pytest.raises(ValueError, match="timezone-aware"):
        local_day(SHANGHAI, datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        (SHANGHAI, date(2026, 1, 1), utc(2025, 12, 31, 16)),
        # New York: DST starts 2026-03-08 02:00, ends 2026-11-01 02:00
        (NEW_YORK, date(2026, 3, 8), utc(2026, 3, 8, 5)),
        (NEW_YORK, date(2026, 3, 9), utc(2026, 3, 9, 4)),
        (NEW_YORK, date(2026, 11, 1), utc(2026, 11, 1, 4)),
        (NEW_YORK, date(2026, 11, 2), utc(2026, 11, 2, 5)),
        # Berlin: DST starts 2026-03-29 02:00, ends 2026-10-25 03:00
        (BERLIN, date(2026, 3, 29), utc(2026, 3, 28, 23)),
        (BERLIN, date(2026, 3, 30), utc(2026, 3, 29, 22)),
        (BERLIN, date(2026, 10, 25), utc(2026, 10, 24, 22)),
        (BERLIN, date(2026, 10, 26), utc(2026, 10, 25, 23)),
        # Midnight does not exist: the first valid instant after it (01:00 after the jump)
        (ZoneInfo("America/Santiago"), date(2023, 9, 3), utc(2023, 9, 3, 4)),
        (ZoneInfo("America/Havana"), date(2023, 3, 12), utc(2023, 3, 12, 5)),
        (ZoneInfo("Asia/Beirut"), date(2023, 3, 26), utc(2023, 3, 25, 22)),
        # Midnight happens twice (01:00 CDT -> 00:00 CST): the earlier
        (ZoneInfo("America/Havana"), date(2023, 11, 5), utc(2023, 11, 5, 4)),
        # 2011-12-30 never happened in Samoa: the day "starts" when 2011-12-31 does
        (ZoneInfo("Pacific/Apia"), date(2011, 12, 30), utc(2011, 12, 30, 10)),
        (ZoneInfo("Pacific/Apia"), date(2011, 12, 31), utc(2011, 12, 30, 10)),
    ],
)
def test_start_of_local_day(zone: ZoneInfo, day: date, expected: datetime) -> None:
    start = start_of_local_day(zone, day)
    assert start == expected
    assert start.tzinfo is UTC


@settings(deadline=None)
@given(st.sampled_from(ZONES), st.dates(min_value=date(1990, 1, 1), max_value=date(2040, 1, 1)))
def test_start_of_local_day_is_the_first_instant_of_the_day(zone: ZoneInfo, day: date) -> None:
    start = start_of_local_day(zone, day)
    assert local_day(zone, start) >= day
    assert local_day(zone, start - timedelta(microseconds=1)) < day
    assert start_of_local_day(zone, day + timedelta(days=1)) > start


def test_add_months_clamps() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)
    assert add_months(date(2026, 12, 15), 1) == date(2027, 1, 15)
    assert add_months(date(2026, 1, 15), -13) == date(2024, 12, 15)


# --------------------------------------------------------------------------- expiry


ROLLING_1 = Expiry(kind=ExpiryKind.ROLLING_MONTHS, months=1)


@pytest.mark.parametrize(
    ("expiry", "zone", "earned", "expected"),
    [
        # 36 months from 2026-05-20 Shanghai: valid through 2029-05-20
        (
            Expiry(kind=ExpiryKind.ROLLING_MONTHS, months=36),
            SHANGHAI,
            utc(2026, 5, 20, 3),
            utc(2029, 5, 20, 16),
        ),
        # 00:30 local on 1 Jan 2027 is still 2026 in UTC: the local date counts
        (ROLLING_1, SHANGHAI, utc(2026, 12, 31, 16, 30), utc(2027, 2, 1, 16)),
        (ROLLING_1, SHANGHAI, utc(2026, 1, 31, 2), utc(2026, 2, 28, 16)),  # clamped to 28 Feb
        (
            Expiry(kind=ExpiryKind.ROLLING_MONTHS, months=12),
            SHANGHAI,
            utc(2024, 2, 29, 2),
            utc(2025, 2, 28, 16),
        ),
        (
            Expiry(kind=ExpiryKind.END_OF_YEAR, years=0),
            SHANGHAI,
            utc(2026, 12, 31, 16, 30),
            utc(2027, 12, 31, 16),
        ),
        (
            Expiry(kind=ExpiryKind.END_OF_YEAR, years=0),
            SHANGHAI,
            utc(2026, 12, 31, 15, 59),
            utc(2026, 12, 31, 16),
        ),
        (
            Expiry(kind=ExpiryKind.END_OF_YEAR, years=2),
            SHANGHAI,
            utc(2026, 6, 1),
            utc(2028, 12, 31, 16),
        ),
        (
            Expiry(kind=ExpiryKind.END_OF_MONTH, months=1),
            SHANGHAI,
            utc(2026, 11, 30, 17),
            utc(2027, 1, 31, 16),
        ),
        (
            Expiry(kind=ExpiryKind.END_OF_MONTH, months=2),
            SHANGHAI,
            utc(2026, 11, 5),
            utc(2027, 1, 31, 16),
        ),
        # New York: 8 Feb + 1 month = 8 Mar (DST starts that day): expires 9 Mar 00:00 EDT
        (ROLLING_1, NEW_YORK, utc(2026, 2, 8, 15), utc(2026, 3, 9, 4)),
        # New York: earned 3 Oct, valid through 3 Nov (EST) -> 4 Nov 00:00 EST
        (ROLLING_1, NEW_YORK, utc(2026, 10, 3, 15), utc(2026, 11, 4, 5)),
        # Berlin: earned in Sep (CEST), expires at the start of Nov (CET)
        (
            Expiry(kind=ExpiryKind.END_OF_MONTH, months=1),
            BERLIN,
            utc(2026, 9, 30, 21, 59),
            utc(2026, 10, 31, 23),
        ),
        (
            Expiry(kind=ExpiryKind.END_OF_MONTH, months=1),
            BERLIN,
            utc(2026, 9, 30, 22),
            utc(2026, 11, 30, 23),
        ),
        (
            Expiry(kind=ExpiryKind.END_OF_MONTH, months=1),
            BERLIN,
            utc(2026, 2, 14),
            utc(2026, 3, 31, 22),
        ),
    ],
)
def test_expires_at(expiry: Expiry, zone: ZoneInfo, earned: datetime, expected: datetime) -> None:
    assert expires_at(expiry, zone, earned) == expected


def test_never_expires() -> None:
    assert expires_at(Expiry(kind=ExpiryKind.NEVER), SHANGHAI, utc(2026, 1, 1)) is None


EXPIRIES = st.one_of(
    st.builds(Expiry, kind=st.just(ExpiryKind.ROLLING_MONTHS), months=st.integers(1, 240)),
    st.builds(Expiry, kind=st.just(ExpiryKind.END_OF_MONTH), months=st.integers(1, 240)),
    st.builds(Expiry, kind=st.just(ExpiryKind.END_OF_YEAR), years=st.integers(0, 20)),
)
INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@settings(deadline=None)
@given(EXPIRIES, st.sampled_from(ZONES), INSTANTS)
def test_expiry_is_after_earned_and_on_a_day_start(
    expiry: Expiry, zone: ZoneInfo, earned: datetime
) -> None:
    expiry_at = expires_at(expiry, zone, earned)
    assert expiry_at is not None
    assert expiry_at > earned
    assert expiry_at.tzinfo is UTC
    assert expiry_at == start_of_local_day(zone, local_day(zone, expiry_at))
    if expiry.kind is ExpiryKind.ROLLING_MONTHS:
        assert expiry.months is not None
        last_valid = local_day(zone, expiry_at - timedelta(microseconds=1))
        assert last_valid == add_months(local_day(zone, earned), expiry.months)


# --------------------------------------------------------------------------- pending


def test_available_at() -> None:
    earned = datetime(2026, 3, 1, 23, 30, tzinfo=SHANGHAI)
    assert available_at(0, SHANGHAI, earned) == earned
    assert available_at(0, SHANGHAI, earned).tzinfo is UTC
    # earned 1 Mar local, 7 pending days -> spendable from 9 Mar 00:00 local
    assert available_at(7, SHANGHAI, earned) == utc(2026, 3, 8, 16)
    # New York across the DST start (8 Mar 2026): 1 Mar + 8 = 9 Mar 00:00 EDT
    assert available_at(7, NEW_YORK, utc(2026, 3, 1, 17)) == utc(2026, 3, 9, 4)
    with pytest.raises(ValueError):
        available_at(-1, SHANGHAI, earned)


@given(st.integers(0, 365), st.sampled_from(ZONES), INSTANTS)
def test_available_at_never_before_earned(days: int, zone: ZoneInfo, earned: datetime) -> None:
    at = available_at(days, zone, earned)
    assert at >= earned
    if days:
        assert local_day(zone, at) == local_day(zone, earned) + timedelta(days=days + 1)


# --------------------------------------------------------------------------- reminders


def test_reminder_due_picks_the_reminder_in_force() -> None:
    # expires 2027-01-01 00:00 Shanghai; last valid day 2026-12-31
    expiry = utc(2026, 12, 31, 16)
    days = [30, 7, 1]
    # moments: 30 -> 1 Dec, 7 -> 24 Dec, 1 -> 30 Dec (00:00 local = 16:00Z the day before)
    assert reminder_due(expiry, days, SHANGHAI, utc(2026, 11, 30, 15, 59)) is None
    assert reminder_due(expiry, days, SHANGHAI, utc(2026, 11, 30, 16)) == 30
    assert reminder_due(expiry, days, SHANGHAI, utc(2026, 12, 23, 15, 59)) == 30
    assert reminder_due(expiry, days, SHANGHAI, utc(2026, 12, 23, 16)) == 7
    assert reminder_due(expiry, days, SHANGHAI, utc(2026, 12, 29, 15, 59)) == 7
    assert reminder_due(expiry, days, SHANGHAI, utc(2026, 12, 29, 16)) == 1
    assert reminder_due(expiry, days, SHANGHAI, utc(2026, 12, 31, 15, 59, 59)) == 1
    assert reminder_due(expiry, days, SHANGHAI, expiry) is None  # already expired
    assert reminder_due(expiry, [], SHANGHAI, utc(2026, 12, 31)) is None


def test_reminder_due_counts_local_days_across_dst() -> None:
    # expires 2026-03-10 00:00 EDT (04:00Z); last valid day 9 Mar; 2 days before = 7 Mar (EST)
    expiry = utc(2026, 3, 10, 4)
    assert reminder_due(expiry, [2], NEW_YORK, utc(2026, 3, 7, 4, 59)) is None
    assert reminder_due(expiry, [2], NEW_YORK, utc(2026, 3, 7, 5)) == 2


@given(
    st.sampled_from(ZONES),
    INSTANTS,
    st.lists(st.integers(1, 365), max_size=4),
    st.integers(0, 400 * 24),
)
def test_reminder_due_properties(
    zone: ZoneInfo, expiry: datetime, days: list[int], hours_before: int
) -> None:
    now = expiry - timedelta(hours=hours_before)
    due = reminder_due(expiry, days, zone, now)
    if due is None:
        return
    assert due in days
    assert now < expiry
    last_valid = local_day(zone, expiry - timedelta(microseconds=1))
    assert start_of_local_day(zone, last_valid - timedelta(days=due)) <= now
    # no smaller offset is already due
    assert all(
        start_of_local_day(zone, last_valid - timedelta(days=d)) > now for d in days if d < due
    )
