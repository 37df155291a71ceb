"""Pure order rules: the paid amount agrees with the lines; what counts toward tiers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from loyalist.programme.domain import allocate_proportionally


@dataclass(frozen=True, slots=True)
class PaidCheck:
    """The range the amount paid must fall in, and whether it does."""

    expected_low: int
    expected_high: int
    ok: bool


def points_money(points: int, value_minor_per_100_points: int) -> int:
    """The programme value of ``points`` in minor units (rounded down)."""
    return points * value_minor_per_100_points // 100


def check_paid(
    *,
    lines_net: int,
    amount_paid: int,
    coupon: int,
    points_paid: int,
    points_paid_minor: int | None,
    value_minor_per_100_points: int,
    tolerance: int,
) -> PaidCheck:
    """The amount paid must be the lines' net (gross - line discounts) less what points and
    coupons paid, within ``tolerance``. When the money value of the points is not given it
    may be anything from 0 to their programme value."""
    if points_paid_minor is not None:
        low_pts = high_pts = points_paid_minor
    else:
        low_pts, high_pts = 0, points_money(points_paid, value_minor_per_100_points)
    high = max(lines_net - coupon - low_pts, 0) + tolerance
    low = max(lines_net - coupon - high_pts - tolerance, 0)
    return PaidCheck(low, high, low <= amount_paid <= high)


def qualifying_minor(
    amount_paid: int, nets: Sequence[int], categories: Sequence[str | None], excluded: Sequence[str]
) -> int:
    """The part of ``amount_paid`` that paid for lines counting toward tiers: the amount is
    spread over the lines by net (largest remainder) and excluded categories left out."""
    if not nets or sum(nets) == 0:
        return 0 if any(c in excluded for c in categories) else amount_paid
    shares = allocate_proportionally(amount_paid, nets)
    skip = set(excluded)
    return sum(s for s, c in zip(shares, categories, strict=True) if c not in skip)


def qualifying_lines(categories: Sequence[str | None], excluded: Sequence[str]) -> list[bool]:
    skip = set(excluded)
    return [c not in skip for c in categories]


def tier_discounts(nets: Sequence[int], qualifies: Sequence[bool], rate: Decimal) -> list[int]:
    """The tier discount of each line: ``net × rate`` rounded down to a minor unit, none on
    lines that do not count toward tiers (gift cards are not discounted)."""
    return [
        int((Decimal(n) * rate).to_integral_value(rounding=ROUND_FLOOR)) if q else 0
        for n, q in zip(nets, qualifies, strict=True)
    ]
