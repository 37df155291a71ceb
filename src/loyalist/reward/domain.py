"""Pure rules of redemption fulfilment (the counter code and the collection window) and of
dynamic reward pricing (a unit price from the stock, the recent demand and the member)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from loyalist.kit.localtime import start_of_local_day

# No look-alike characters: no 0/O, 1/I/L.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 12  # 12 × log2(31) ≈ 59.4 random bits
CODE_GROUP = 4
_SEPARATORS = re.compile(r"[\s\-_]")
# What people type for a look-alike character, mapped to the one in the alphabet.
_LOOKALIKE = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code() -> str:
    """A random counter code, stored without separators."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str | None) -> str:
    """ "ABCD2345WXYZ" → "ABCD-2345-WXYZ" (how people read and type it)."""
    if not code:
        return ""
    return "-".join(code[i : i + CODE_GROUP] for i in range(0, len(code), CODE_GROUP))


def parse_code(text: str) -> str | None:
    """A typed or scanned code in its stored form, or None when it cannot be one.
    Case, spaces and dashes do not matter."""
    raw = _SEPARATORS.sub("", text).upper().translate(_LOOKALIKE)
    if len(raw) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in raw):
        return None
    return raw


def collect_until(redeemed_at: datetime, days: int | None, tz: tzinfo) -> datetime | None:
    """When a voucher stops being collectable: the end of the ``days``-th programme-local
    day after the day it was redeemed (``days`` = 1: until the end of the next day).
    None: no limit."""
    if days is None:
        return None
    day: date = redeemed_at.astimezone(tz).date() + timedelta(days=days + 1)
    return start_of_local_day(tz, day)


def state(
    *, status: str, collected_at: datetime | None, expires_at: datetime | None, now: datetime
) -> str:
    """cancelled | collected | expired | ready"""
    if status == "cancelled":
        return "cancelled"
    if collected_at is not None:
        return "collected"
    if expires_at is not None and now >= expires_at:
        return "expired"
    return "ready"


# ── dynamic pricing (issue 15, item 5) ─────────────────────────────────────────────────
@dataclass(frozen=True)
class PriceInputs:
    """What a price depends on, read once: the base points, the stock, the recent demand
    (units redeemed in the last ``days`` days, per ``demand_days`` a rule uses) and, per
    rule with a ``when:``, whether the member meets it (absent: no member, not met)."""

    base_points: int
    stock_remaining: int | None
    stock_total: int | None
    demand: Mapping[int, int] = field(default_factory=dict)
    member_match: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class AppliedRule:
    code: str
    factor: Decimal
    why: str


@dataclass(frozen=True)
class Price:
    """A unit price and its explanation."""

    points: int
    base_points: int
    ratio: Decimal  # the product of the applied factors, held within the bounds
    applied: tuple[AppliedRule, ...]
    bounded: str | None  # "floor" | "ceiling" when the bounds cut the product

    def reason(self) -> str:
        parts = [f"{a.why} → ×{plain(a.factor)}" for a in self.applied]
        if not parts:
            parts.append("no rule applies")
        if self.bounded:
            parts.append(f"held at the {self.bounded}")
        return f"{self.base_points} × {plain(self.ratio)} = {self.points}: " + "; ".join(parts)

    def explanation(self) -> dict[str, Any]:
        return {
            "base_points": self.base_points,
            "unit_points": self.points,
            "ratio": plain(self.ratio),
            "bounded": self.bounded,
            "rules": [
                {"code": a.code, "factor": plain(a.factor), "why": a.why} for a in self.applied
            ],
            "reason": self.reason(),
        }


def plain(d: Decimal) -> str:
    """A ratio as people write it: at most 4 decimals, no exponent, no trailing zeros."""
    text = format(d.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def point_bounds(base: int, floor_ratio: Decimal, ceiling_ratio: Decimal) -> tuple[int, int]:
    """The lowest and highest whole points a price may take: ceil(base × floor) ..
    floor(base × ceiling), never below 1 nor below the lowest (when no whole number lies
    between the two products, both are the lowest)."""
    lo = max(1, int((Decimal(base) * floor_ratio).to_integral_value(ROUND_CEILING)))
    hi = int((Decimal(base) * ceiling_ratio).to_integral_value(ROUND_FLOOR))
    return lo, max(lo, hi)


def _triggered(rule: Any, inputs: PriceInputs) -> str | None:
    """Why ``rule`` applies (every trigger it gives holds), or None."""
    why: list[str] = []
    if rule.stock_below is not None:
        left = inputs.stock_remaining
        if left is None or left >= rule.stock_below:
            return None
        why.append(f"stock {left} < {rule.stock_below}")
    if rule.stock_ratio_below is not None:
        left, total = inputs.stock_remaining, inputs.stock_total
        if left is None or not total or Decimal(left) / Decimal(total) >= rule.stock_ratio_below:
            return None
        why.append(f"stock {left}/{total} < {rule.stock_ratio_below}")
    if rule.demand_at_least is not None:
        units = inputs.demand.get(rule.demand_days, 0)
        if units < rule.demand_at_least:
            return None
        why.append(f"{units} redeemed in {rule.demand_days} days ≥ {rule.demand_at_least}")
    if rule.when is not None:
        if not inputs.member_match.get(rule.code, False):
            return None
        why.append("member condition met")
    return ", ".join(why)


def price(pricing: Any, inputs: PriceInputs) -> Price:
    """The unit points price: base × the product of the matching rules' factors, the
    product held within ``floor_ratio``..``ceiling_ratio`` and the points within
    :func:`point_bounds` (rounded half up)."""
    base = inputs.base_points
    if pricing is None:
        return Price(base, base, Decimal(1), (), None)
    applied: list[AppliedRule] = []
    product = Decimal(1)
    for rule in pricing.rules:
        why = _triggered(rule, inputs)
        if why is not None:
            applied.append(AppliedRule(rule.code, rule.factor, why))
            product *= rule.factor
    bounded: str | None = None
    ratio = product
    if ratio < pricing.floor_ratio:
        ratio, bounded = pricing.floor_ratio, "floor"
    elif ratio > pricing.ceiling_ratio:
        ratio, bounded = pricing.ceiling_ratio, "ceiling"
    lo, hi = point_bounds(base, pricing.floor_ratio, pricing.ceiling_ratio)
    points = int((Decimal(base) * ratio).to_integral_value(ROUND_HALF_UP))
    points = min(max(points, lo), hi)
    return Price(points, base, ratio, tuple(applied), bounded)
