"""Local calendar arithmetic on aware datetimes.

Everything here is pure and works for any ``tzinfo`` (normally a ``zoneinfo.ZoneInfo``):

* ``local_day(tz, at)`` is the calendar date of the instant ``at`` on a wall clock in ``tz``.
* ``start_of_local_day(tz, d)`` is the first instant (as an aware UTC datetime) whose local
  date is ``d`` or later. On ordinary days that is local midnight. When local midnight does
  not exist (a daylight-saving gap that starts at or spans 00:00, as in America/Santiago,
  America/Havana or Asia/Beirut) it is the first valid instant after it, i.e. the
  transition itself. When local midnight happens twice (a fall-back at 01:00 to 00:00) it
  is the earlier one. When a whole local day was skipped (Pacific/Apia, 2011-12-30) it is
  the start of the next day that exists.
* ``add_months(d, n)`` moves a date by ``n`` calendar months (``n`` may be negative); the
  day is clamped to the end of the target month (31 Jan + 1 month = 28/29 Feb).

Naive datetimes are refused with ``ValueError``: an instant without an offset is ambiguous.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta, tzinfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def require_aware(at: datetime, name: str = "datetime") -> datetime:
    """Return ``at`` unchanged if it carries a UTC offset, else raise ``ValueError``."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {at.isoformat()}")
    return at


def local_day(tz: tzinfo, at: datetime) -> date:
    """The calendar date of the instant ``at`` on a wall clock in ``tz``."""
    require_aware(at, "at")
    return at.astimezone(tz).date()


def start_of_local_day(tz: tzinfo, d: date) -> datetime:
    """The first instant whose local date in ``tz`` is ``d`` or later, as aware UTC.

    Local midnight when it exists (the earlier one when it happens twice); otherwise the
    first valid instant after it (the DST transition that skipped it).
    """
    wall = datetime.combine(d, time(0), tzinfo=tz)  # fold=0: the earlier of two midnights
    candidate = wall.astimezone(UTC)
    if candidate.astimezone(tz).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return candidate
    # Local midnight falls in a gap: find the first instant whose local date is >= d by
    # bisection over whole seconds (time-zone transitions happen on whole seconds).
    other = wall.replace(fold=1).astimezone(UTC)
    lo, hi = min(candidate, other), max(candidate, other)
    while local_day(tz, lo) >= d:
        lo -= timedelta(days=1)
    while local_day(tz, hi) < d:
        hi += timedelta(days=1)
    lo_s = (lo - _EPOCH) // _SECOND
    hi_s = -((_EPOCH - hi) // _SECOND)  # ceiling
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if local_day(tz, _EPOCH + mid * _SECOND) >= d:
            hi_s = mid
        else:
            lo_s = mid
    return _EPOCH + hi_s * _SECOND


def add_months(d: date, months: int) -> date:
    """``d`` moved by ``months`` calendar months, the day clamped to the month's last day."""
    index = d.year * 12 + (d.month - 1) + months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(d.day, last))


def start_of_next_local_day(tz: tzinfo, at: datetime) -> datetime:
    """The start of the local day after the one containing ``at`` (aware UTC)."""
    return start_of_local_day(tz, local_day(tz, at) + timedelta(days=1))
