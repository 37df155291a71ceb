"""Breakage and liability forecast by earning cohort (issue 15 item 6). Pure arithmetic.

Method (stated in the report):

* Each earning cohort (the local month lots were earned) has earned ``e``, already expired
  ``x`` and still open ``o`` points. Its *ultimate* breakage is the historical rate ``r``
  (Σ expired ÷ Σ earned over settled cohorts) × ``e``; what is still to expire is
  ``b = clamp(r·e − x, 0, open points that can expire)``. A cohort that already lost more
  than its share expires nothing more.
* The cohort's open points that can expire are grouped by expiry month (the last valid
  local month). In each group a share ``b / expiring`` expires unused in its expiry month;
  the rest is redeemed evenly over the months from the current one to the expiry month.
  Points that never expire are neither redeemed nor broken in the forecast (they stay a
  liability: a conservative bound).
* The liability at the end of each of the next 12 months (the current month first) is what
  is left; all sums are exact fractions rounded once, half up, per figure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction


def _round(v: Fraction) -> int:
    return int((v + Fraction(1, 2)) // 1) if v >= 0 else -int((-v + Fraction(1, 2)) // 1)


def month_index(month: str) -> int:
    y, m = (int(x) for x in month.split("-"))
    return y * 12 + m - 1


def month_name(index: int) -> str:
    y, m0 = divmod(index, 12)
    return f"{y:04d}-{m0 + 1:02d}"


@dataclass(frozen=True, slots=True)
class OpenGroup:
    cohort: str  # YYYY-MM earned
    expiry_month: str | None  # YYYY-MM, last valid local month; None: never expires
    points: int


@dataclass(frozen=True, slots=True)
class CohortForecast:
    month: str
    earned: int
    expired: int  # so far
    open: int
    future_breakage: int  # expected to expire unused from now on

    @property
    def breakage_share(self) -> float:
        """Share of the cohort's points expected to expire unused, in all."""
        return (self.expired + self.future_breakage) / self.earned if self.earned else 0.0


@dataclass(frozen=True, slots=True)
class MonthForecast:
    month: str
    redeemed: int  # expected redeemed in the month
    expiring: int  # expected to expire unused in the month
    liability: int  # expected outstanding at the month's end


@dataclass(frozen=True, slots=True)
class Forecast:
    rate: float
    cohorts: tuple[CohortForecast, ...]
    months: tuple[MonthForecast, ...]


def forecast(
    cohorts: Sequence[tuple[str, int, int, int]],
    groups: Iterable[OpenGroup],
    rate: Fraction,
    current_month: str,
    horizon: int = 12,
) -> Forecast:
    """``cohorts``: (month, earned, expired, open); ``groups``: the open points by cohort and
    expiry month; ``rate``: the historical breakage rate; from ``current_month`` on."""
    by_cohort: dict[str, list[OpenGroup]] = defaultdict(list)
    for g in groups:
        if g.points > 0:
            by_cohort[g.cohort].append(g)
    now = month_index(current_month)
    redeemed = [Fraction(0)] * horizon
    expiring = [Fraction(0)] * horizon
    liability = [Fraction(0)] * horizon
    out: list[CohortForecast] = []
    for month, earned, expired, open_ in cohorts:
        can_expire = sum(g.points for g in by_cohort[month] if g.expiry_month is not None)
        b = min(max(rate * earned - expired, Fraction(0)), Fraction(can_expire))
        share = b / can_expire if can_expire else Fraction(0)
        for g in by_cohort[month]:
            if g.expiry_month is None:
                for k in range(horizon):
                    liability[k] += g.points
                continue
            n = max(month_index(g.expiry_month) - now + 1, 1)  # months left, this one included
            lost = g.points * share
            per_month = (g.points - lost) / n
            for k in range(horizon):
                if k < n:
                    redeemed[k] += per_month
                if k == n - 1:
                    expiring[k] += lost
                if k < n - 1:  # in its expiry month the rest is redeemed or expires
                    liability[k] += g.points - per_month * (k + 1)
        out.append(CohortForecast(month, earned, expired, open_, _round(b)))
    months = tuple(
        MonthForecast(
            month_name(now + k), _round(redeemed[k]), _round(expiring[k]), _round(liability[k])
        )
        for k in range(horizon)
    )
    return Forecast(float(rate), tuple(out), months)
