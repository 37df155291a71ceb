"""Pure ledger rules: which lots a debit consumes, and when points expire or unlock.

Rules
-----
* **FEFO allocation** (``allocate_fefo``): a debit of ``points`` (> 0) consumes open lots
  soonest ``expires_at`` first; lots that never expire come last; equal expiry is broken by
  lot id (lowest first). Lots with ``remaining <= 0`` are skipped. A lot is never asked for
  more than its ``remaining``. If the lots together hold fewer points than requested, nothing
  is allocated and ``InsufficientLots(available, requested)`` is raised.
* **Expiry** (``expires_at``) returns the aware UTC instant from which the points are no
  longer valid (the lot is valid while ``now < expires_at``). Dates are taken in the
  programme's time zone:

  - ``rolling_months`` N: the start of the local day after (local date earned + N months,
    the day clamped to the end of the month). Earned 2026-01-31 with N=1 -> valid through
    2026-02-28, expires at the start of 2026-03-01.
  - ``end_of_year`` N: the start of 1 January of local year (year earned + N + 1); N=0 means
    the points last to the end of the year they were earned.
  - ``end_of_month`` N: the start of the 1st of local month (month earned + N + 1).
  - ``never``: ``None``.

  The result is always strictly after ``earned_at``.
* **Pending** (``available_at``): with ``pending_days`` 0 points are spendable at once
  (``earned_at``, as UTC); otherwise from the start of local day (local date earned +
  pending_days + 1), i.e. after ``pending_days`` full local days following the day earned.
* **Expiry reminders** (``reminder_due``): the last valid local day is the local date of
  ``expires_at - 1µs``. The reminder for offset ``d`` (days before expiry) is due from the
  start of local day (last valid day - d) until ``expires_at``. The function returns the
  offset of the reminder currently in force: among offsets whose moment is ``<= now`` it is
  the one whose moment is the latest, i.e. the *smallest* such ``d``; ``None`` when no
  reminder moment has been reached yet or the points have already expired. A job that
  remembers which (lot, offset) pairs it has sent can therefore send 30, then 7, then 1
  as each comes due, and after an outage sends only the most recent one.

Day boundaries come from ``loyalist.kit.localtime`` and are correct across DST changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from loyalist.kit.localtime import add_months, local_day, require_aware, start_of_local_day
from loyalist.programme.schemas import Expiry, ExpiryKind

__all__ = [
    "InsufficientLots",
    "LotView",
    "allocate_fefo",
    "available_at",
    "expires_at",
    "local_day",
    "reminder_due",
    "start_of_local_day",
]

_MICROSECOND = timedelta(microseconds=1)


class InsufficientLots(Exception):
    """The open lots hold fewer points than a debit asks for."""

    def __init__(self, available: int, requested: int) -> None:
        super().__init__(f"only {available} points available in open lots, {requested} requested")
        self.available = available
        self.requested = requested


@dataclass(frozen=True, slots=True)
class LotView:
    """What allocation needs to know about an open lot."""

    id: int
    remaining: int
    expires_at: datetime | None


def _fefo_key(lot: LotView) -> tuple[int, datetime, int]:
    if lot.expires_at is None:
        return (1, datetime.min.replace(tzinfo=UTC), lot.id)
    return (0, require_aware(lot.expires_at, "expires_at").astimezone(UTC), lot.id)


def allocate_fefo(lots: Sequence[LotView], points: int) -> list[tuple[int, int]]:
    """Split a debit of ``points`` over ``lots``, first-expiring-first-out.

    Returns ``(lot_id, taken)`` pairs in consumption order; every ``taken`` is > 0 and at most
    that lot's ``remaining``, and the takes sum to ``points``.

    Raises ``ValueError`` when ``points <= 0`` and ``InsufficientLots`` when the lots with
    a positive remainder hold fewer than ``points``.
    """
    if points <= 0:
        raise ValueError(f"points to allocate must be > 0, got {points}")
    open_lots = sorted((lot for lot in lots if lot.remaining > 0), key=_fefo_key)
    available = sum(lot.remaining for lot in open_lots)
    if available < points:
        raise InsufficientLots(available, points)
    taken: list[tuple[int, int]] = []
    left = points
    for lot in open_lots:
        if left == 0:
            break
        take = min(lot.remaining, left)
        taken.append((lot.id, take))
        left -= take
    return taken


def expires_at(expiry: Expiry, tz: ZoneInfo, earned_at: datetime) -> datetime | None:
    """The aware UTC instant from which points earned at ``earned_at`` are no longer valid.

    See the module docstring for each kind; ``never`` gives ``None``.
    """
    day = local_day(tz, earned_at)
    if expiry.kind is ExpiryKind.NEVER:
        return None
    if expiry.kind is ExpiryKind.ROLLING_MONTHS:
        assert expiry.months is not None  # guaranteed by the schema
        last_valid = add_months(day, expiry.months)
        return start_of_local_day(tz, last_valid + timedelta(days=1))
    if expiry.kind is ExpiryKind.END_OF_YEAR:
        assert expiry.years is not None
        return start_of_local_day(tz, date(day.year + expiry.years + 1, 1, 1))
    if expiry.kind is ExpiryKind.END_OF_MONTH:
        assert expiry.months is not None
        return start_of_local_day(tz, add_months(day.replace(day=1), expiry.months + 1))
    raise ValueError(f"unknown expiry kind {expiry.kind!r}")  # pragma: no cover


def available_at(pending_days: int, tz: ZoneInfo, earned_at: datetime) -> datetime:
    """When points earned at ``earned_at`` become spendable (aware UTC).

    ``pending_days`` 0: ``earned_at`` itself. Otherwise the start of local day
    (local date of ``earned_at`` + ``pending_days`` + 1).
    """
    require_aware(earned_at, "earned_at")
    if pending_days < 0:
        raise ValueError(f"pending_days must be >= 0, got {pending_days}")
    if pending_days == 0:
        return earned_at.astimezone(UTC)
    return start_of_local_day(tz, local_day(tz, earned_at) + timedelta(days=pending_days + 1))


def reminder_due(
    expires_at: datetime, reminder_days: Sequence[int], tz: ZoneInfo, now: datetime
) -> int | None:
    """The reminder offset (days before expiry) currently in force, or ``None``.

    The moment for offset ``d`` is ``start_of_local_day(local_day(expires_at - 1µs) - d)``.
    Returns the smallest ``d`` whose moment is ``<= now``, provided ``now < expires_at``.
    """
    require_aware(expires_at, "expires_at")
    require_aware(now, "now")
    if now >= expires_at:
        return None
    last_valid = local_day(tz, expires_at - _MICROSECOND)
    due = [
        d
        for d in set(reminder_days)
        if start_of_local_day(tz, last_valid - timedelta(days=d)) <= now
    ]
    return min(due) if due else None
