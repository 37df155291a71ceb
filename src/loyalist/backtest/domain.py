"""Backtest arithmetic (pure): per-order outcomes summed by tier and by store.

An order's *actual* points are what it earned net of what its returns clawed back
(``points_earned - points_clawed``); its *proposed* points are what the proposed programme
version gives the same order (same lines, paid amount, tier and day), net of the clawback
the same returns would have made (``clawback_points`` on the proposed line points). The
*liability* difference counts the difference of the orders whose points, under the proposed
expiry, would still be valid at the end of the window (extra points assumed unredeemed: an
upper bound); the *cost* difference is the points difference at the point value times
(1 - the historical breakage rate).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


def money(points: int, per_100: int) -> int:
    """Minor units (fen) of ``points``, rounded half up (negative values symmetric)."""
    sign = -1 if points < 0 else 1
    return sign * ((abs(points) * per_100 + 50) // 100)


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    order_id: int
    tier: str
    store: str
    actual: int  # points kept from the order as it happened
    proposed: int  # points the proposed version would have given (net of the same returns)
    valid_at_end: bool  # under the proposed expiry, still valid at the end of the window
    reproduced: bool  # the version in force gives again exactly what was recorded
    month: str = ""  # the programme-local month of the order (YYYY-MM), for the chart


@dataclass
class Line:
    """The sums of one group (a tier, a store, or everything)."""

    orders: int = 0
    actual: int = 0
    proposed: int = 0
    liability_delta: int = 0  # points

    @property
    def delta(self) -> int:
        return self.proposed - self.actual

    def add(self, o: OrderOutcome) -> None:
        self.orders += 1
        self.actual += o.actual
        self.proposed += o.proposed
        if o.valid_at_end:
            self.liability_delta += o.proposed - o.actual


@dataclass
class Summary:
    total: Line = field(default_factory=Line)
    by_tier: dict[str, Line] = field(default_factory=dict)
    by_store: dict[str, Line] = field(default_factory=dict)
    by_month: dict[str, Line] = field(default_factory=dict)
    reproduced: int = 0


def summarise(outcomes: Iterable[OrderOutcome]) -> Summary:
    s = Summary()
    for o in outcomes:
        s.total.add(o)
        s.by_tier.setdefault(o.tier, Line()).add(o)
        s.by_store.setdefault(o.store, Line()).add(o)
        s.by_month.setdefault(o.month, Line()).add(o)
        s.reproduced += o.reproduced
    s.by_tier = dict(sorted(s.by_tier.items()))
    s.by_store = dict(sorted(s.by_store.items()))
    s.by_month = dict(sorted(s.by_month.items()))
    return s


def cost(points: int, per_100: int, breakage_rate: float) -> int:
    """Expected money cost (fen) of ``points``: their value times the share redeemed."""
    return round(money(points, per_100) * (1.0 - breakage_rate))
