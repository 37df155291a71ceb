"""Dynamic pricing, pure (issue 15, item 5): the price is always within its bounds, every
rule's triggers are all required, the explanation names what applied."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalist.programme.schemas import Pricing
from loyalist.reward.domain import PriceInputs, plain, point_bounds, price

RATIOS = st.decimals(min_value=Decimal("0.1"), max_value=Decimal("5"), places=2)


@st.composite
def pricings(draw: st.DrawFn) -> Pricing:
    a, b = sorted((draw(RATIOS), draw(RATIOS)))
    n = draw(st.integers(min_value=0, max_value=4))
    rules = []
    for i in range(n):
        rule: dict[str, object] = {"code": f"r{i}", "factor": str(draw(RATIOS))}
        kind = draw(st.sampled_from(["stock", "share", "demand", "member"]))
        if kind == "stock":
            rule["stock_below"] = draw(st.integers(min_value=1, max_value=50))
        elif kind == "share":
            rule["stock_ratio_below"] = "0.25"
        elif kind == "demand":
            rule["demand_at_least"] = draw(st.integers(min_value=1, max_value=20))
            rule["demand_days"] = draw(st.sampled_from([1, 7, 30]))
        else:
            rule["when"] = {"contains": {"member.tags": "vip"}}
        rules.append(rule)
    return Pricing.model_validate({"floor_ratio": str(a), "ceiling_ratio": str(b), "rules": rules})


@settings(max_examples=300, deadline=None)
@given(
    pricing=pricings(),
    base=st.integers(min_value=1, max_value=1_000_000),
    left=st.none() | st.integers(min_value=0, max_value=100),
    demand=st.integers(min_value=0, max_value=50),
    member=st.booleans(),
)
def test_price_is_always_within_bounds(
    pricing: Pricing, base: int, left: int | None, demand: int, member: bool
) -> None:
    inputs = PriceInputs(
        base_points=base,
        stock_remaining=left,
        stock_total=None if left is None else 100,
        demand={1: demand, 7: demand, 30: demand},
        member_match={r.code: member for r in pricing.rules},
    )
    p = price(pricing, inputs)
    lo, hi = point_bounds(base, pricing.floor_ratio, pricing.ceiling_ratio)
    assert lo <= p.points <= hi
    assert pricing.floor_ratio <= p.ratio <= pricing.ceiling_ratio
    assert p.points == price(pricing, inputs).points  # a function of its inputs only
    product = Decimal(1)
    for a in p.applied:
        product *= a.factor
    if pricing.floor_ratio <= product <= pricing.ceiling_ratio:
        assert p.bounded is None and p.ratio == product
    assert p.explanation()["unit_points"] == p.points


def test_all_triggers_of_a_rule_are_required_and_explained() -> None:
    pricing = Pricing.model_validate(
        {
            "floor_ratio": "1",
            "ceiling_ratio": "3",
            "rules": [
                {"code": "rush", "factor": "1.25", "stock_below": 10, "demand_at_least": 5},
                {"code": "vip", "factor": "0.8", "when": {"contains": {"member.tags": "vip"}}},
            ],
        }
    )
    busy = PriceInputs(base_points=1000, stock_remaining=3, stock_total=50, demand={7: 5})
    assert price(pricing, busy).points == 1250
    assert price(pricing, busy).reason() == (
        "1000 × 1.25 = 1250: stock 3 < 10, 5 redeemed in 7 days ≥ 5 → ×1.25"
    )
    quiet = PriceInputs(base_points=1000, stock_remaining=3, stock_total=50, demand={7: 4})
    assert price(pricing, quiet).points == 1000
    unlimited = PriceInputs(base_points=1000, stock_remaining=None, stock_total=None, demand={7: 9})
    assert price(pricing, unlimited).points == 1000
    vip = PriceInputs(
        base_points=1000,
        stock_remaining=3,
        stock_total=50,
        demand={7: 5},
        member_match={"vip": True},
    )
    assert (price(pricing, vip).points, plain(price(pricing, vip).ratio)) == (1000, "1")
    assert price(pricing, vip).bounded is None  # 1.25 × 0.8 = 1: within the bounds


def test_bounds_round_inwards_and_never_below_one_point() -> None:
    assert point_bounds(7, Decimal("1.1"), Decimal("1.3")) == (8, 9)
    assert point_bounds(1, Decimal("0.1"), Decimal("0.5")) == (1, 1)
    assert point_bounds(3, Decimal("1.2"), Decimal("1.3")) == (4, 4)


@pytest.mark.parametrize(
    "doc",
    [
        {"floor_ratio": "2", "ceiling_ratio": "1"},
        {"rules": [{"code": "x", "factor": "2"}]},
        {"rules": [{"code": "x", "factor": "0"}]},
    ],
)
def test_invalid_pricing_is_refused(doc: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Pricing.model_validate(doc)
