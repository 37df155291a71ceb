"""Pure rules of the habits feature: local days, streaks, periods, ranks, caps.

No database and no web. Every "day" here is a local day in the programme's time zone
whose start is moved by ``day_start`` (a check-in at 02:00 with a 04:00 day start belongs
to the day before). A member's phone time zone never enters: the server decides the day
from the instant and the programme's zone, so travelling or a phone set to another zone
neither breaks nor extends a streak.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from loyalist.kit.localtime import add_months, require_aware

COUNTERS = (
    "orders",
    "spend_minor",
    "categories",
    "checkins",
    "streak",
    "referrals",
    "reviews",
    "surveys",
    "shares",
)
ACTIVITIES = ("signup", "profile", "birthday", "checkin", "review", "survey", "share")
PERIODS = ("week", "month", "quarter")
METRICS = ("points", "referrals", "streak")


def habit_day(tz: tzinfo, day_start: time, at: datetime) -> date:
    """The local day an instant counts for: its date on the programme's wall clock, minus
    one when the wall clock is still before ``day_start``."""
    require_aware(at, "at")
    wall = at.astimezone(tz)
    d = wall.date()
    if wall.time().replace(tzinfo=None) < day_start:
        d -= timedelta(days=1)
    return d


def day_begins(tz: tzinfo, day_start: time, d: date) -> datetime:
    """The first instant (UTC) that counts for local day ``d`` (``habit_day`` agrees).

    ``day_start`` on ``d`` on the wall clock; when a daylight-saving gap skips that wall
    time, the transition itself (the first instant whose wall time is later); when it
    happens twice, the earlier.
    """
    wall = datetime.combine(d, day_start, tzinfo=tz)
    utc = wall.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return utc
    other = wall.replace(fold=1).astimezone(UTC)
    lo, hi = min(utc, other), max(utc, other)  # habit_day(lo) < d <= habit_day(hi)
    second = timedelta(seconds=1)
    while hi - lo > second:
        mid = lo + ((hi - lo) // 2 // second) * second
        if habit_day(tz, day_start, mid) >= d:
            hi = mid
        else:
            lo = mid
    return hi


def streak_after(previous_day: date | None, previous_streak: int, day: date) -> int:
    """The streak on ``day`` given the member's previous check-in (None: the first)."""
    if previous_day is not None and previous_day == day - timedelta(days=1):
        return previous_streak + 1
    return 1


def streaks(days: Iterable[date]) -> list[tuple[date, int]]:
    """Replay: each distinct check-in day with its streak, in day order."""
    out: list[tuple[date, int]] = []
    prev: date | None = None
    streak = 0
    for d in sorted(set(days)):
        streak = streak_after(prev, streak, d)
        out.append((d, streak))
        prev = d
    return out


def current_streak(last_day: date | None, last_streak: int, today: date) -> int:
    """The streak a member still holds today: the last one if it ended today or yesterday."""
    if last_day is None:
        return 0
    if last_day >= today - timedelta(days=1):
        return last_streak
    return 0


def bonus_hits(day: int, every: int, repeat: bool) -> bool:
    """Does streak length ``day`` unlock a bonus set at ``every`` (again at 2×, 3× … if
    ``repeat``)?"""
    if day == every:
        return True
    return repeat and day > every and day % every == 0


# ── periods ─────────────────────────────────────────────────────────────────────────────


def period_start(period: str, d: date) -> date:
    """The first local day of the period (week from Monday, month, quarter) containing d."""
    if period == "week":
        return d - timedelta(days=d.weekday())
    if period == "month":
        return d.replace(day=1)
    if period == "quarter":
        return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
    raise ValueError(f"unknown period {period!r}")


def next_period_start(period: str, start: date) -> date:
    if period == "week":
        return start + timedelta(days=7)
    if period == "month":
        return add_months(start, 1)
    if period == "quarter":
        return add_months(start, 3)
    raise ValueError(f"unknown period {period!r}")


def periods_between(period: str, first: date, last_exclusive: date) -> list[date]:
    """Starts of every period that begins at or after the one containing ``first`` and
    ends on or before ``last_exclusive`` (the periods that are over by then)."""
    out: list[date] = []
    start = period_start(period, first)
    while next_period_start(period, start) <= last_exclusive:
        out.append(start)
        start = next_period_start(period, start)
    return out


# ── ranks ───────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Standing:
    member_id: int
    score: int
    reached_at: datetime


def ranked(rows: Sequence[Standing]) -> list[tuple[int, Standing]]:
    """Rows ranked 1, 2, 3 …: higher score first; a tie goes to the score reached first,
    then to the lower member id. Every row gets a distinct rank (nothing is ever shared,
    so "top N" is always exactly N)."""
    order = sorted(rows, key=lambda r: (-r.score, r.reached_at, r.member_id))
    return [(i + 1, r) for i, r in enumerate(order)]


# ── caps ────────────────────────────────────────────────────────────────────────────────


def capped_by(
    today_count: int, lifetime_count: int, per_day: int | None, lifetime: int | None
) -> str | None:
    """Which cap stops another award (``"lifetime"`` first), or None."""
    if lifetime is not None and lifetime_count >= lifetime:
        return "lifetime"
    if per_day is not None and today_count >= per_day:
        return "day"
    return None
