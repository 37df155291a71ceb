"""Pure tier rules: which tier a value qualifies for, progress, periods and re-evaluation.

Rules
-----
* The *value* is the tier metric (spend in minor units, orders, points or active days)
  measured over the qualifying window. ``Tiers.levels`` is ordered lowest first, thresholds
  strictly increase and the first threshold is 0 (the schema guarantees it).
* **Qualifying tier**: the highest level whose ``threshold <= value``. A negative value
  qualifies for the first level. Qualification is monotone: a larger value never qualifies
  for a lower tier.
* **Progress** for a member in tier ``current`` with ``value``: ``next_tier`` is the level
  directly above ``current`` (``None`` at the top) and ``missing_for_next`` is
  ``max(0, next threshold - value)`` (``None`` at the top). ``keep_threshold`` is the
  current tier's own threshold and ``missing_to_keep`` is ``max(0, keep_threshold - value)``.
* **Periods** are local calendar periods in the programme's time zone: monthly
  (``"2026-11"``), quarterly (``"2026-Q4"``), half-yearly (``"2026-H2"``) and yearly
  (``"2026"``). ``period_of`` returns ``(label, start, end)`` with ``start`` inclusive and
  ``end`` exclusive, both aware UTC and equal to the start of the local day that opens the
  period (DST-safe). ``previous_period`` is the period just before the one containing
  ``at``.
* **Window**: ``window_start(N, tz, at)`` is the start of the local day N calendar months
  before ``at``'s local date (the day clamped to the end of the month).
* **Re-evaluation** at the end of a period (``reevaluate``): if the qualifying tier is at
  or above ``current`` the member keeps it (``"keep"``) or moves up (``"upgrade"``) and
  ``periods_below`` resets to 0. Otherwise ``periods_below`` grows by one; when it reaches
  ``downgrade_after_periods`` the member moves down to the qualifying tier
  (``"downgrade"``, ``periods_below`` reset to 0), else the tier is held (``"hold"``).
* **Instant upgrade** (``instant_upgrade``): the qualifying tier if it is above
  ``current``, else ``None``; it never downgrades.

An unknown tier code raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from loyalist.kit.localtime import add_months, local_day, start_of_local_day
from loyalist.programme.schemas import EvaluationPeriod, Tiers

__all__ = [
    "Progress",
    "Reevaluation",
    "instant_upgrade",
    "period_of",
    "previous_period",
    "progress",
    "qualifying_tier",
    "reevaluate",
    "window_start",
]

_PERIOD_MONTHS = {
    EvaluationPeriod.MONTHLY: 1,
    EvaluationPeriod.QUARTERLY: 3,
    EvaluationPeriod.HALF_YEARLY: 6,
    EvaluationPeriod.YEARLY: 12,
}


def _index(tiers: Tiers, code: str) -> int:
    try:
        return tiers.index(code)
    except ValueError:
        raise ValueError(f"unknown tier {code!r}") from None


def _qualifying_index(tiers: Tiers, value: int) -> int:
    best = 0
    for i, tier in enumerate(tiers.levels):
        if tier.threshold <= value:
            best = i
    return best


def qualifying_tier(tiers: Tiers, value: int) -> str:
    """The code of the highest level whose threshold is ``<= value`` (the first if none)."""
    return tiers.levels[_qualifying_index(tiers, value)].code


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a member stands: what is missing for the next tier and to keep the current one."""

    current: str
    value: int
    next_tier: str | None
    missing_for_next: int | None
    keep_threshold: int
    missing_to_keep: int  # 0 when already enough


def progress(tiers: Tiers, current: str, value: int) -> Progress:
    """Progress of a member in tier ``current`` whose metric value is ``value``."""
    i = _index(tiers, current)
    keep = tiers.levels[i].threshold
    if i + 1 < len(tiers.levels):
        nxt = tiers.levels[i + 1]
        next_code: str | None = nxt.code
        missing: int | None = max(0, nxt.threshold - value)
    else:
        next_code, missing = None, None
    return Progress(
        current=current,
        value=value,
        next_tier=next_code,
        missing_for_next=missing,
        keep_threshold=keep,
        missing_to_keep=max(0, keep - value),
    )


def _label(evaluation: EvaluationPeriod, first: date) -> str:
    if evaluation is EvaluationPeriod.MONTHLY:
        return f"{first.year:04d}-{first.month:02d}"
    if evaluation is EvaluationPeriod.QUARTERLY:
        return f"{first.year:04d}-Q{(first.month - 1) // 3 + 1}"
    if evaluation is EvaluationPeriod.HALF_YEARLY:
        return f"{first.year:04d}-H{(first.month - 1) // 6 + 1}"
    return f"{first.year:04d}"


def period_of(
    evaluation: EvaluationPeriod, tz: ZoneInfo, at: datetime
) -> tuple[str, datetime, datetime]:
    """``(label, start, end)`` of the local calendar period containing ``at``.

    ``start`` is inclusive, ``end`` exclusive; both aware UTC local-day starts.
    """
    months = _PERIOD_MONTHS[evaluation]
    day = local_day(tz, at)
    first = date(day.year, (day.month - 1) // months * months + 1, 1)
    after = add_months(first, months)
    return (
        _label(evaluation, first),
        start_of_local_day(tz, first),
        start_of_local_day(tz, after),
    )


def previous_period(
    evaluation: EvaluationPeriod, tz: ZoneInfo, at: datetime
) -> tuple[str, datetime, datetime]:
    """The period just before the one containing ``at`` (same shape as ``period_of``)."""
    _, start, _ = period_of(evaluation, tz, at)
    return period_of(evaluation, tz, start - timedelta(microseconds=1))


def window_start(window_months: int, tz: ZoneInfo, at: datetime) -> datetime:
    """Start (aware UTC) of the local day ``window_months`` months before ``at``'s local date."""
    if window_months < 0:
        raise ValueError(f"window_months must be >= 0, got {window_months}")
    return start_of_local_day(tz, add_months(local_day(tz, at), -window_months))


@dataclass(frozen=True, slots=True)
class Reevaluation:
    """Outcome of a periodic re-evaluation."""

    new_tier: str
    periods_below: int
    change: Literal["upgrade", "downgrade", "keep", "hold"]


def reevaluate(tiers: Tiers, current: str, value: int, periods_below: int) -> Reevaluation:
    """Re-evaluate tier ``current`` given this period's ``value`` (see the module rules)."""
    if periods_below < 0:
        raise ValueError(f"periods_below must be >= 0, got {periods_below}")
    cur = _index(tiers, current)
    q = _qualifying_index(tiers, value)
    if q > cur:
        return Reevaluation(tiers.levels[q].code, 0, "upgrade")
    if q == cur:
        return Reevaluation(current, 0, "keep")
    below = periods_below + 1
    if below >= tiers.downgrade_after_periods:
        return Reevaluation(tiers.levels[q].code, 0, "downgrade")
    return Reevaluation(current, below, "hold")


def instant_upgrade(tiers: Tiers, current: str, value: int) -> str | None:
    """The higher tier ``value`` now qualifies for, or ``None`` (never a downgrade)."""
    cur = _index(tiers, current)
    q = _qualifying_index(tiers, value)
    return tiers.levels[q].code if q > cur else None
