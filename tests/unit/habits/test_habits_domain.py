"""Pure habit rules: local days with a day start (Shanghai, New York across DST), streak
replay, periods, deterministic ranks and caps."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from loyalist.habits import domain

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
FOUR = time(4, 0)


def test_day_start_moves_the_local_day_in_shanghai() -> None:
    # 03:59 Shanghai on 11 June still counts for 10 June; 04:00 is 11 June.
    assert domain.habit_day(SH, FOUR, datetime(2026, 6, 10, 19, 59, tzinfo=UTC)) == date(
        2026, 6, 10
    )
    assert domain.habit_day(SH, FOUR, datetime(2026, 6, 10, 20, 0, tzinfo=UTC)) == date(2026, 6, 11)
    # midnight start: the plain calendar date (UTC 16:00 = 00:00 Shanghai)
    assert domain.habit_day(SH, time(0), datetime(2026, 6, 10, 16, 0, tzinfo=UTC)) == date(
        2026, 6, 11
    )
    assert domain.day_begins(SH, FOUR, date(2026, 6, 11)) == datetime(
        2026, 6, 10, 20, 0, tzinfo=UTC
    )


def test_new_york_days_across_both_dst_changes() -> None:
    # 8 March 2026: 02:00 EST jumps to 03:00 EDT. A 02:30 day start does not exist that day:
    # the day begins at the transition (07:00 UTC), the previous day was 23 hours long.
    start = time(2, 30)
    assert domain.day_begins(NY, start, date(2026, 3, 7)) == datetime(2026, 3, 7, 7, 30, tzinfo=UTC)
    assert domain.day_begins(NY, start, date(2026, 3, 8)) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert domain.day_begins(NY, start, date(2026, 3, 9)) == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)
    assert domain.habit_day(NY, start, datetime(2026, 3, 8, 6, 59, tzinfo=UTC)) == date(2026, 3, 7)
    assert domain.habit_day(NY, start, datetime(2026, 3, 8, 7, 0, tzinfo=UTC)) == date(2026, 3, 8)
    # 1 November 2026: 02:00 EDT falls back to 01:00 EST; a 01:30 start happens twice: the
    # earlier one begins the day, and the day is 25 hours long.
    start = time(1, 30)
    assert domain.day_begins(NY, start, date(2026, 11, 1)) == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )
    assert domain.day_begins(NY, start, date(2026, 11, 2)) == datetime(
        2026, 11, 2, 6, 30, tzinfo=UTC
    )
    # the second 01:45 (EST, 06:45 UTC) is still 1 November
    assert domain.habit_day(NY, start, datetime(2026, 11, 1, 6, 45, tzinfo=UTC)) == date(
        2026, 11, 1
    )


def test_streaks_replay() -> None:
    d = date(2026, 3, 1)
    days = [d, d + timedelta(days=1), d + timedelta(days=2), d + timedelta(days=4)]
    assert domain.streaks(days) == [(days[0], 1), (days[1], 2), (days[2], 3), (days[3], 1)]
    assert domain.current_streak(days[3], 1, days[3] + timedelta(days=1)) == 1
    assert domain.current_streak(days[3], 1, days[3] + timedelta(days=2)) == 0
    assert domain.current_streak(None, 0, d) == 0


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=40), st.randoms())
def test_replay_is_the_incremental_streak(offsets: list[int], rnd: random.Random) -> None:
    """Whatever order or repetition the days arrive in, replay equals check-in by check-in
    (each day's streak from the previous check-in) over the distinct days in order."""
    base = date(2026, 1, 1)
    days = [base + timedelta(days=o) for o in offsets]
    shuffled = list(days)
    rnd.shuffle(shuffled)
    replay = domain.streaks(shuffled)
    prev: date | None = None
    streak = 0
    expected = []
    for d in sorted(set(days)):
        streak = domain.streak_after(prev, streak, d)
        expected.append((d, streak))
        prev = d
    assert replay == expected
    # a streak is exactly the run of consecutive days ending at that day
    for d, s in replay:
        assert all(d - timedelta(days=k) in set(days) for k in range(s))
        assert d - timedelta(days=s) not in set(days)


def test_bonus_hits() -> None:
    assert [n for n in range(1, 22) if domain.bonus_hits(n, 7, False)] == [7]
    assert [n for n in range(1, 22) if domain.bonus_hits(n, 7, True)] == [7, 14, 21]


def test_periods() -> None:
    assert domain.period_start("week", date(2026, 6, 10)) == date(2026, 6, 8)  # Wednesday
    assert domain.period_start("month", date(2026, 6, 10)) == date(2026, 6, 1)
    assert domain.period_start("quarter", date(2026, 6, 10)) == date(2026, 4, 1)
    assert domain.next_period_start("quarter", date(2026, 10, 1)) == date(2027, 1, 1)
    assert domain.periods_between("week", date(2026, 6, 10), date(2026, 6, 22)) == [
        date(2026, 6, 8),
        date(2026, 6, 15),
    ]
    assert domain.periods_between("month", date(2026, 6, 10), date(2026, 6, 30)) == []


@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=12, unique_by=None
    ),
    st.randoms(),
)
def test_ranks_are_deterministic(scores: list[tuple[int, int]], rnd: random.Random) -> None:
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    rows = [
        domain.Standing(member_id=i + 1, score=s, reached_at=t0 + timedelta(minutes=m))
        for i, (s, m) in enumerate(scores)
    ]
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    a, b = domain.ranked(rows), domain.ranked(shuffled)
    assert a == b
    assert [r for r, _ in a] == list(range(1, len(rows) + 1))
    for (_, x), (_, y) in itertools.pairwise(a):
        assert (-x.score, x.reached_at, x.member_id) < (-y.score, y.reached_at, y.member_id)


def test_caps() -> None:
    assert domain.capped_by(0, 0, 1, 3) is None
    assert domain.capped_by(1, 1, 1, 3) == "day"
    assert domain.capped_by(0, 3, 1, 3) == "lifetime"
    assert domain.capped_by(5, 5, None, None) is None


@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
    st.sampled_from([SH, NY]),
    st.sampled_from([time(0), time(1, 30), time(2, 30), time(4, 0)]),
)
def test_an_instant_lies_in_its_day(naive: datetime, tz: ZoneInfo, start: time) -> None:
    at = naive.replace(tzinfo=UTC)
    d = domain.habit_day(tz, start, at)
    assert domain.day_begins(tz, start, d) <= at < domain.day_begins(tz, start, d + timedelta(1))
