"""Order earning: how many points an order earns under a programme, and why.

Pure rules (no database, no HTTP). Points are ``int``, money is ``int`` minor units,
multipliers are ``Decimal`` and all intermediate maths is exact (``fractions.Fraction``);
no float is ever used.

Rules of ``evaluate_order``
---------------------------
1. **Lines.** A line's net amount is ``quantity * unit_price_minor - discount_minor``; it
   must be ``>= 0`` (quantities, prices and discounts are ``>= 0`` and ``line_no`` is unique
   in the order, else ``ValueError``).
2. **Earnable money.** The cash paid (``amount_paid_minor``, which already excludes points
   used as payment) is spread over the lines in proportion to their net amounts with
   ``allocate_proportionally`` (largest remainder, ties to the earlier line). The amount
   spread is capped at the sum of the nets, so money paid beyond the goods (shipping, fees,
   tips) earns nothing and no line earns on more than its net. An order that pays nothing
   (or whose lines are all free) earns 0.
3. **Exclusions.** A line matched by any ``exclusion`` rule earns nothing at all (base,
   rules, campaigns, tier, bonuses); its share of the cash is *not* moved to other lines.
   Each exclusion that matched lines appears as a 0-point ``exclusion:<code>`` item listing
   them (a line matched by several exclusions is listed under the first in programme order).
4. **Base.** Per earning line: ``earnable * points_per_unit / unit_minor`` (exact).
5. **Rule multipliers.** Per line, the matching ``multiplier`` rule with the highest
   multiplier applies (ties: the first in programme order); rules do not stack. Its extra
   is ``base * (m - 1)`` (negative when ``m < 1``).
6. **Campaigns.** A campaign is active for the order when the programme-local date of
   ``occurred_at`` is within ``date_from``..``date_to`` (inclusive, either may be open),
   its ISO weekday is in ``weekdays`` (empty: any day), ``amount_paid_minor >=
   min_spend_minor``, the member's tier is in ``tiers`` (empty: any) and its ``when:``
   condition (if any) holds. Those fixed fields are shorthand for conditions; both may
   be given and must all hold. It applies to its matched earning lines, and only if at least one of
   them has earnable money > 0. Its multiplier extra per matched line is
   ``(base + rule extra) * (m - 1)``; every active campaign is computed on that same amount,
   so campaigns add and never compound. ``bonus_points`` is a flat bonus per order,
   attributed to the matched lines in proportion to their earnable money.
7. **Tier.** With ``ctx.tier_code`` set, the tier's ``benefits.points_multiplier`` gives
   ``(base + rule extra + campaign multiplier extras) * (m - 1)`` per earning line
   (campaign bonus points are not multiplied). ``tier_code=None`` means no tier benefit;
   an unknown tier code raises ``ValueError``.
8. **Rounding.** Each breakdown component (``base``, each ``rule:<code>``,
   ``campaign:<code>``, ``campaign_bonus:<code>``, ``tier:<code>``) is summed exactly over
   the order and rounded once with ``points.rounding`` (``floor`` / ``ceil`` toward -inf /
   +inf; ``half_up`` = half away from zero). The total is the sum of the rounded
   components. If multipliers below 1 make that sum negative, a ``rounding`` item brings
   it back to 0: an order never earns negative points.
9. **Caps**, in this order, each adding a negative ``cap:...`` item when it bites:
   ``per_order`` (the cap itself), ``per_day`` (``cap - ctx.earned_today``, at least 0) and
   ``per_member`` (``cap - ctx.earned_lifetime``, at least 0). ``earned_today`` must count
   the points already earned from orders on the order's programme-local day.
10. **Conditions.** A rule or campaign with ``when:`` applies only when the condition
    holds for the order's context (``order_facts``: the order, the local time in the
    programme's zone, ``member.tier`` from ``ctx.tier_code`` and the member facts in
    ``ctx.facts``). ``EarnResult.conditions`` explains each such condition clause by clause.
11. **Breakdown.** Items come in the order base, exclusions, rules, campaigns (each
    campaign's multiplier item then its bonus item), tier, rounding, caps. Items of 0 points
    are omitted, except ``base`` (always present) and exclusions (informative).
    ``sum(item.points) == points``.
12. **Line points.** The final total is distributed over the lines in proportion to each
    line's exact, pre-rounding points (bonus shares included; negatives count as 0) with
    ``allocate_proportionally``; should those all be 0 while the total is not, by earnable
    money. Every ``line_no`` of the order is a key; excluded lines get 0;
    ``sum(line_points.values()) == points``. This is what ``clawback_points`` reverses.

Matching (``line_matches``): each non-empty list of a ``Match`` must contain the line's
value (``skus``: the SKU, ``categories``: the category, ``stores``: the order's store code,
``channels``: the order's channel); empty lists match anything. A line without a category
(or an order without a store) never matches a non-empty ``categories`` (``stores``) list.

Anonymous orders are not this module's concern: there is no account to credit, so the
service does not evaluate them (``tier_code=None`` is a member without a tier benefit).

Return clawback (``clawback_points``): the cumulative clawback for a line after returning
``r`` of its ``q`` units is ``floor(line_points * r / q)``; each return claws the increase.
Returning everything claws exactly the line's points, however the returns are split, and
partial returns never claw more than a single full return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from loyalist.kit import conditions
from loyalist.kit.localtime import local_day, require_aware
from loyalist.kit.money import Money
from loyalist.programme.conditions import time_facts
from loyalist.programme.schemas import (
    Campaign,
    Match,
    Programme,
    Rounding,
    RuleKind,
)

__all__ = [
    "BreakdownItem",
    "ConditionOutcome",
    "EarnContext",
    "EarnResult",
    "LineInput",
    "OrderInput",
    "allocate_proportionally",
    "clawback_points",
    "evaluate_order",
    "line_matches",
    "order_facts",
    "round_points",
]

_ZERO = Fraction(0)


@dataclass(frozen=True, slots=True)
class LineInput:
    """One order line. Its net amount is ``quantity * unit_price_minor - discount_minor``."""

    line_no: int
    sku: str
    category: str | None
    quantity: int
    unit_price_minor: int
    discount_minor: int

    @property
    def net_minor(self) -> int:
        return self.quantity * self.unit_price_minor - self.discount_minor


@dataclass(frozen=True, slots=True)
class OrderInput:
    """An order as earning sees it. ``amount_paid_minor`` excludes points used as payment."""

    store_code: str | None
    channel: str
    occurred_at: datetime
    amount_paid_minor: int
    lines: tuple[LineInput, ...]


@dataclass(frozen=True, slots=True)
class EarnContext:
    """The member's side: tier and points already earned from orders."""

    tier_code: str | None
    earned_today: int = 0  # from orders, on the order's programme-local day
    earned_lifetime: int = 0  # from orders, ever (for caps.per_member)
    # Member fields for ``when:`` conditions beyond the tier (``member.tags``, ...), loaded
    # by the caller only when the programme's conditions read them.
    facts: Mapping[str, Any] = field(default_factory=dict)
    # The paid membership (pass code) the member holds at the order's time, if any.
    pass_code: str | None = None


@dataclass(frozen=True, slots=True)
class BreakdownItem:
    """One explained component of an order's points.

    ``rule`` is one of ``"base"``, ``"rule:<code>"``, ``"exclusion:<code>"``,
    ``"campaign:<code>"``, ``"campaign_bonus:<code>"``, ``"tier:<code>"``,
    ``"cap:per_order"``, ``"cap:per_day"``, ``"cap:per_member"``, ``"rounding"``.
    """

    rule: str
    points: int
    lines: tuple[int, ...]
    description: str


@dataclass(frozen=True, slots=True)
class EarnResult:
    """Points earned by an order, how, and which line each point belongs to."""

    points: int
    breakdown: tuple[BreakdownItem, ...]
    earnable_minor: int  # cash attributed to the lines that earn (excluded lines left out)
    line_points: dict[int, int]
    # One explained ``when:`` condition per rule / campaign that has one, in programme order.
    conditions: tuple[ConditionOutcome, ...] = ()


@dataclass(frozen=True, slots=True)
class ConditionOutcome:
    """Whether a rule's or campaign's ``when:`` held for the order, clause by clause.

    ``rule`` is ``"rule:<code>"`` or ``"campaign:<code>"``.
    """

    rule: str
    name: str
    explanation: conditions.Explanation

    @property
    def passed(self) -> bool:
        return self.explanation.passed


# --------------------------------------------------------------------------- helpers


def allocate_proportionally(total: int, weights: Sequence[int]) -> list[int]:
    """Split integer ``total`` over ``weights`` by the largest-remainder method.

    Each share is ``floor(total * w / sum(weights))``; the units left over go one each to
    the largest remainders, ties to the lowest index. The shares sum to ``total``; a zero
    weight gets 0; a larger weight never gets less than a smaller one, and equal weights
    differ by at most 1 (the earlier gets more). A negative ``total`` is split as
    ``-allocate_proportionally(-total, weights)``. Raises ``ValueError`` for a negative
    weight, or when all weights are 0 (or there are none) and ``total != 0``.

    Note: like every largest-remainder method it is not monotone in ``total`` (the
    "Alabama paradox": raising the total by 1 can lower one share by 1).
    """
    ws = list(weights)
    if any(w < 0 for w in ws):
        raise ValueError(f"weights must be >= 0, got {ws}")
    if total < 0:
        return [-s for s in allocate_proportionally(-total, ws)]
    weight_sum = sum(ws)
    if weight_sum == 0:
        if total != 0:
            raise ValueError(f"cannot allocate {total} over weights that are all zero")
        return [0] * len(ws)
    shares: list[int] = []
    remainders: list[int] = []
    for w in ws:
        q, r = divmod(total * w, weight_sum)
        shares.append(q)
        remainders.append(r)
    left = total - sum(shares)
    for i in sorted(range(len(ws)), key=lambda i: (-remainders[i], i))[:left]:
        shares[i] += 1
    return shares


def clawback_points(
    line_points: Mapping[int, int],
    line_quantity: Mapping[int, int],
    returned_before: Mapping[int, int],
    returning_now: Mapping[int, int],
) -> int:
    """Points to claw back for a return of ``returning_now`` units per line.

    For each line the cumulative clawback after ``r`` of ``q`` units have come back is
    ``floor(line_points * r / q)``; this return claws
    ``floor(p * (before + now) / q) - floor(p * before / q)``. Lines missing from
    ``line_points`` earned 0. Raises ``ValueError`` for an unknown line, a negative count
    or more units returned than bought.
    """
    total = 0
    for line_no, now in returning_now.items():
        if now == 0:
            continue
        if line_no not in line_quantity:
            raise ValueError(f"line {line_no} is not in the order")
        quantity = line_quantity[line_no]
        before = returned_before.get(line_no, 0)
        if now < 0 or before < 0:
            raise ValueError(f"line {line_no}: returned quantities must be >= 0")
        if before + now > quantity:
            raise ValueError(
                f"line {line_no}: {before + now} units returned but only {quantity} bought"
            )
        points = line_points.get(line_no, 0)
        total += points * (before + now) // quantity - points * before // quantity
    return total


def round_points(value: Fraction, mode: Rounding) -> int:
    """Round exact points: floor (toward -inf), ceil (toward +inf), half_up (half away from 0)."""
    if mode is Rounding.FLOOR:
        return math.floor(value)
    if mode is Rounding.CEIL:
        return math.ceil(value)
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def line_matches(match: Match, line: LineInput, order: OrderInput) -> bool:
    """True when every non-empty list of ``match`` contains the line's (or order's) value."""
    if match.skus and line.sku not in match.skus:
        return False
    if match.categories and (line.category is None or line.category not in match.categories):
        return False
    if match.stores and (order.store_code is None or order.store_code not in match.stores):
        return False
    return not (match.channels and order.channel not in match.channels)


def _fmt_multiplier(m: Decimal) -> str:
    text = format(m.normalize(), "f")
    return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _describe_match(match: Match) -> str:
    parts: list[str] = []
    if match.categories:
        label = "category" if len(match.categories) == 1 else "categories"
        parts.append(f"{label} {', '.join(match.categories)}")
    if match.skus:
        label = "SKU" if len(match.skus) == 1 else "SKUs"
        parts.append(f"{label} {', '.join(match.skus)}")
    phrase = "on " + " and ".join(parts) if parts else "on every line"
    if match.stores:
        label = "store" if len(match.stores) == 1 else "stores"
        phrase += f" in {label} {', '.join(match.stores)}"
    if match.channels:
        label = "channel" if len(match.channels) == 1 else "channels"
        phrase += f" via {label} {', '.join(match.channels)}"
    return phrase


def order_facts(programme: Programme, order: OrderInput, ctx: EarnContext) -> dict[str, Any]:
    """The context ``when:`` conditions see: the order, local time, the member's facts."""
    facts: dict[str, Any] = dict(ctx.facts)
    facts["member.tier"] = ctx.tier_code
    facts.update(
        {
            "order.amount_minor": order.amount_paid_minor,
            "order.lines": len(order.lines),
            "order.categories": sorted({ln.category for ln in order.lines if ln.category}),
            "order.skus": sorted({ln.sku for ln in order.lines}),
            "order.channel": order.channel,
            "order.store": order.store_code,
        }
    )
    facts.update(time_facts(programme.tz, order.occurred_at))
    return facts


def _holds(
    programme: Programme,
    rule: str,
    facts: Mapping[str, Any],
    outcomes: list[ConditionOutcome],
    name: str,
) -> bool:
    cond = programme.condition(rule)
    if cond is None:
        return True
    explanation = conditions.explain(cond, facts)
    outcomes.append(ConditionOutcome(rule, name, explanation))
    return explanation.passed


def _campaign_active(
    campaign: Campaign, order: OrderInput, programme: Programme, tier_code: str | None
) -> bool:
    if campaign.tiers and tier_code not in campaign.tiers:
        return False
    day = local_day(programme.tz, order.occurred_at)
    if campaign.weekdays and day.isoweekday() not in campaign.weekdays:
        return False
    if campaign.date_from is not None and day < campaign.date_from:
        return False
    if campaign.date_to is not None and day > campaign.date_to:
        return False
    return order.amount_paid_minor >= campaign.min_spend_minor


def _integer_weights(values: Sequence[Fraction]) -> list[int]:
    positive = [max(v, _ZERO) for v in values]
    denominator = math.lcm(*(v.denominator for v in positive)) if positive else 1
    return [int(v * denominator) for v in positive]


@dataclass(slots=True)
class _Component:
    rule: str
    per_line: dict[int, Fraction]  # line index -> exact points
    description: str
    always: bool = False


def _validate(order: OrderInput, ctx: EarnContext) -> None:
    require_aware(order.occurred_at, "occurred_at")
    if order.amount_paid_minor < 0:
        raise ValueError("amount_paid_minor must be >= 0")
    if ctx.earned_today < 0 or ctx.earned_lifetime < 0:
        raise ValueError("earned_today and earned_lifetime must be >= 0")
    seen: set[int] = set()
    for line in order.lines:
        if line.line_no in seen:
            raise ValueError(f"line_no {line.line_no} appears twice")
        seen.add(line.line_no)
        if line.quantity < 0 or line.unit_price_minor < 0 or line.discount_minor < 0:
            raise ValueError(f"line {line.line_no}: quantity, price and discount must be >= 0")
        if line.net_minor < 0:
            raise ValueError(f"line {line.line_no}: discount exceeds quantity * unit price")


# --------------------------------------------------------------------------- evaluation


def evaluate_order(programme: Programme, order: OrderInput, ctx: EarnContext) -> EarnResult:
    """Points earned by ``order`` for a member in context ``ctx`` (rules: module docstring)."""
    _validate(order, ctx)
    earning = programme.earning
    lines = order.lines
    line_nos = tuple(line.line_no for line in lines)
    nets = [line.net_minor for line in lines]
    spread = min(order.amount_paid_minor, sum(nets))
    # ``when:`` conditions, each explained once (rules and campaigns in programme order).
    outcomes: list[ConditionOutcome] = []
    facts = order_facts(programme, order, ctx) if programme.condition_fields() else {}
    rule_on = {
        r.code: _holds(programme, f"rule:{r.code}", facts, outcomes, r.name or r.code)
        for r in earning.rules
    }
    campaign_on = {
        c.code: _holds(programme, f"campaign:{c.code}", facts, outcomes, c.name or c.code)
        for c in earning.campaigns
    }

    if spread <= 0:
        base_item = BreakdownItem("base", 0, (), "No points: nothing was paid for the goods")
        return EarnResult(0, (base_item,), 0, dict.fromkeys(line_nos, 0), tuple(outcomes))
    earnable = allocate_proportionally(spread, nets)

    # Exclusions: index -> first matching exclusion rule.
    items_exclusion: list[BreakdownItem] = []
    excluded: set[int] = set()
    for rule in earning.rules:
        if rule.kind is not RuleKind.EXCLUSION or not rule_on[rule.code]:
            continue
        hit = [
            i
            for i, line in enumerate(lines)
            if i not in excluded and line_matches(rule.match, line, order)
        ]
        if hit:
            excluded.update(hit)
            items_exclusion.append(
                BreakdownItem(
                    f"exclusion:{rule.code}",
                    0,
                    tuple(line_nos[i] for i in hit),
                    f"No points {_describe_match(rule.match)}",
                )
            )
    active = [i for i in range(len(lines)) if i not in excluded]

    # Base.
    base_cfg = earning.base
    base = {
        i: Fraction(earnable[i] * base_cfg.points_per_unit, base_cfg.unit_minor) for i in active
    }
    unit = Money(base_cfg.unit_minor, programme.currency).format()
    components: list[_Component] = [
        _Component(
            "base",
            dict(base),
            f"{_plural(base_cfg.points_per_unit, 'point')} per {unit} paid",
            always=True,
        )
    ]

    # Rule multipliers: highest matching multiplier per line, no stacking.
    multiplier_rules = [
        r for r in earning.rules if r.kind is RuleKind.MULTIPLIER and rule_on[r.code]
    ]
    rule_extra: dict[int, Fraction] = dict.fromkeys(active, _ZERO)
    rule_lines: dict[str, dict[int, Fraction]] = {}
    for i in active:
        best = None
        for rule in multiplier_rules:
            assert rule.multiplier is not None  # guaranteed by the schema
            if line_matches(rule.match, lines[i], order) and (
                best is None or rule.multiplier > (best.multiplier or 0)
            ):
                best = rule
        if best is not None:
            assert best.multiplier is not None
            extra = base[i] * (Fraction(best.multiplier) - 1)
            rule_extra[i] = extra
            rule_lines.setdefault(best.code, {})[i] = extra
    for rule in multiplier_rules:
        if rule.code in rule_lines:
            assert rule.multiplier is not None
            components.append(
                _Component(
                    f"rule:{rule.code}",
                    rule_lines[rule.code],
                    f"{_fmt_multiplier(rule.multiplier)}× {_describe_match(rule.match)}",
                )
            )

    # Campaigns: each on (base + rule extra); they add, never compound.
    campaign_extra: dict[int, Fraction] = dict.fromkeys(active, _ZERO)
    for campaign in earning.campaigns:
        if not campaign_on[campaign.code] or not _campaign_active(
            campaign, order, programme, ctx.tier_code
        ):
            continue
        matched = [i for i in active if line_matches(campaign.match, lines[i], order)]
        if not any(earnable[i] > 0 for i in matched):
            continue
        label = campaign.name or campaign.code
        if campaign.multiplier != 1:
            m = Fraction(campaign.multiplier) - 1
            per_line = {i: (base[i] + rule_extra[i]) * m for i in matched}
            for i, extra in per_line.items():
                campaign_extra[i] += extra
            components.append(
                _Component(
                    f"campaign:{campaign.code}",
                    per_line,
                    f"{_fmt_multiplier(campaign.multiplier)}× {_describe_match(campaign.match)}"
                    f" ({label})",
                )
            )
        if campaign.bonus_points:
            money = sum(earnable[i] for i in matched)
            components.append(
                _Component(
                    f"campaign_bonus:{campaign.code}",
                    {i: Fraction(campaign.bonus_points * earnable[i], money) for i in matched},
                    f"{_plural(campaign.bonus_points, 'bonus point')} ({label})",
                )
            )

    # Tier multiplier.
    if ctx.tier_code is not None:
        try:
            tier = programme.tiers.by_code(ctx.tier_code)
        except KeyError:
            raise ValueError(f"unknown tier {ctx.tier_code!r}") from None
        tier_m = tier.benefits.points_multiplier
        if tier_m != 1:
            m = Fraction(tier_m) - 1
            components.append(
                _Component(
                    f"tier:{tier.code}",
                    {i: (base[i] + rule_extra[i] + campaign_extra[i]) * m for i in active},
                    f"{_fmt_multiplier(tier_m)}× for tier {tier.name_en or tier.code}",
                )
            )

    # Pass multiplier (paid membership): on the same amount as the tier's, so a 1.5× tier
    # and a 2× pass earn 2.5× -- the two add, they never compound.
    offer = programme.pass_offer(ctx.pass_code) if ctx.pass_code is not None else None
    if offer is not None and offer.benefits.points_multiplier != 1:
        pass_m = offer.benefits.points_multiplier
        m = Fraction(pass_m) - 1
        components.append(
            _Component(
                f"pass:{offer.code}",
                {i: (base[i] + rule_extra[i] + campaign_extra[i]) * m for i in active},
                f"{_fmt_multiplier(pass_m)}× for pass {offer.name_en or offer.code}",
            )
        )

    # Round each component once; the total is the sum of the rounded components.
    active_nos = tuple(line_nos[i] for i in active)
    rounding = programme.points.rounding
    items: list[BreakdownItem] = []
    for comp in components:
        points = round_points(sum(comp.per_line.values(), _ZERO), rounding)
        if points == 0 and not comp.always:
            continue
        lines_of = tuple(line_nos[i] for i in sorted(comp.per_line)) if comp.per_line else ()
        items.append(BreakdownItem(comp.rule, points, lines_of, comp.description))
        if comp.rule == "base":
            items.extend(items_exclusion)
    total = sum(item.points for item in items)
    if total < 0:
        items.append(
            BreakdownItem(
                "rounding", -total, active_nos, "Raised to 0: an order never earns negative points"
            )
        )
        total = 0

    # Caps.
    caps = earning.caps
    limits: list[tuple[str, int | None, str]] = [
        ("per_order", caps.per_order, f"Capped at {caps.per_order} points per order"),
        (
            "per_day",
            None if caps.per_day is None else max(0, caps.per_day - ctx.earned_today),
            f"Capped at {caps.per_day} points per day ({ctx.earned_today} already earned today)",
        ),
        (
            "per_member",
            None if caps.per_member is None else max(0, caps.per_member - ctx.earned_lifetime),
            f"Capped at {caps.per_member} points per member ({ctx.earned_lifetime} already earned)",
        ),
    ]
    for name, limit, description in limits:
        if limit is not None and total > limit:
            items.append(BreakdownItem(f"cap:{name}", limit - total, active_nos, description))
            total = limit

    # Attribute the final total to lines.
    exact = [_ZERO] * len(lines)
    for comp in components:
        for i, value in comp.per_line.items():
            exact[i] += value
    weights = _integer_weights(exact)
    if total and not any(weights):
        weights = [0 if i in excluded else earnable[i] for i in range(len(lines))]
    shares = allocate_proportionally(total, weights)
    return EarnResult(
        points=total,
        breakdown=tuple(items),
        earnable_minor=sum(earnable[i] for i in active),
        line_points=dict(zip(line_nos, shares, strict=True)),
        conditions=tuple(outcomes),
    )
