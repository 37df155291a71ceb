"""Order earning rules (loyalist.programme.domain): worked examples and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalist.programme.domain import (
    BreakdownItem,
    EarnContext,
    EarnResult,
    LineInput,
    OrderInput,
    allocate_proportionally,
    clawback_points,
    evaluate_order,
)
from loyalist.programme.schemas import (
    Benefits,
    Campaign,
    Caps,
    Earning,
    EarningRule,
    Match,
    Programme,
    Rounding,
    RuleKind,
    Tier,
    Tiers,
)

# 2026-11-11 is a Wednesday. 17:30 UTC on the 10th (a Tuesday) is 01:30 on the 11th in Shanghai.
WEDNESDAY_SHANGHAI = datetime(2026, 11, 10, 17, 30, tzinfo=UTC)
THURSDAY_SHANGHAI = datetime(2026, 11, 11, 16, 30, tzinfo=UTC)  # 00:30 Thursday local

COFFEE_2X = EarningRule(code="coffee", match=Match(categories=["coffee"]), multiplier=Decimal(2))
NO_TOBACCO = EarningRule(
    code="tobacco", kind=RuleKind.EXCLUSION, match=Match(categories=["tobacco"])
)
MEMBER_DAY = Campaign(
    code="member-day", name="Member day", multiplier=Decimal(2), bonus_points=50, weekdays=[3]
)


def make_tiers(gold_multiplier: str = "1.2") -> Tiers:
    return Tiers(
        levels=[
            Tier(code="base", name="Base", threshold=0),
            Tier(code="silver", name="Silver", threshold=100_000),
            Tier(
                code="gold",
                name="金卡",
                threshold=500_000,
                benefits=Benefits(points_multiplier=Decimal(gold_multiplier)),
            ),
        ]
    )


def make_programme(
    *,
    rules: list[EarningRule] | None = None,
    campaigns: list[Campaign] | None = None,
    caps: Caps | None = None,
    rounding: Rounding = Rounding.FLOOR,
    gold_multiplier: str = "1.2",
    **base: Any,
) -> Programme:
    return Programme.model_validate(
        {
            "name": "Test",
            "points": {"rounding": rounding},
            "tiers": make_tiers(gold_multiplier),
            "earning": Earning.model_validate(
                {
                    "base": base,
                    "rules": rules or [],
                    "campaigns": campaigns or [],
                    "caps": caps or Caps(),
                }
            ),
        }
    )


def line(
    no: int, category: str | None, qty: int, price: int, discount: int = 0, sku: str = ""
) -> LineInput:
    return LineInput(no, sku or f"sku-{no}", category, qty, price, discount)


def order(
    paid: int,
    *lines: LineInput,
    at: datetime = WEDNESDAY_SHANGHAI,
    store: str | None = "sh01",
    channel: str = "pos",
) -> OrderInput:
    return OrderInput(store, channel, at, paid, tuple(lines))


def items(result: EarnResult) -> dict[str, int]:
    return {b.rule: b.points for b in result.breakdown}


def check_invariants(result: EarnResult) -> None:
    assert sum(b.points for b in result.breakdown) == result.points
    assert sum(result.line_points.values()) == result.points
    assert result.points >= 0
    assert all(v >= 0 for v in result.line_points.values())
    assert result.breakdown[0].rule == "base"


# --------------------------------------------------------------------------- worked examples

COFFEE_MUG_TOBACCO = (
    line(1, "coffee", 2, 3000),  # net 6000
    line(2, "merch", 1, 4000),  # net 4000
    line(3, "tobacco", 1, 1000),  # net 1000, excluded
)


def test_worked_example_gold_member_on_member_day() -> None:
    """Given coffee 2×, member day (Wednesday) 2× + 50 bonus and gold 1.2×,
    when a gold member pays 100.00 CNY (10.00 paid with points) for 110.00 of goods,
    then every component is rounded once and the total is their sum."""
    programme = make_programme(rules=[COFFEE_2X, NO_TOBACCO], campaigns=[MEMBER_DAY])
    result = evaluate_order(programme, order(10_000, *COFFEE_MUG_TOBACCO), EarnContext("gold"))

    # cash 10000 over nets 6000/4000/1000 -> 5455/3636/909 (largest remainder to line 1)
    # base: 54.55 + 36.36 = 90.91 -> 90; coffee: +54.55 -> 54
    # member day: (109.10 + 36.36) * 1 = 145.46 -> 145; bonus 50
    # gold: (109.10 + 36.36 + 145.46) * 0.2 = 58.184 -> 58
    assert result.breakdown == (
        BreakdownItem("base", 90, (1, 2), "1 point per 1.00 CNY paid"),
        BreakdownItem("exclusion:tobacco", 0, (3,), "No points on category tobacco"),
        BreakdownItem("rule:coffee", 54, (1,), "2× on category coffee"),
        BreakdownItem("campaign:member-day", 145, (1, 2), "2× on every line (Member day)"),
        BreakdownItem("campaign_bonus:member-day", 50, (1, 2), "50 bonus points (Member day)"),
        BreakdownItem("tier:gold", 58, (1, 2), "1.2× for tier gold"),
    )
    assert result.points == 397
    assert result.earnable_minor == 5455 + 3636
    # exact per line: 1 -> 261.84 + 50*5455/9091 = 291.84..; 2 -> 87.264 + 19.99.. = 107.26..
    assert result.line_points == {1: 290, 2: 107, 3: 0}
    check_invariants(result)


def test_worked_example_caps_bite_in_order() -> None:
    """Given per-order 300, per-day 500 and per-member 10 000 caps,
    when the same order is earned by a member who already earned 350 today and 9 800 ever,
    then the order cap takes it to 300, the day cap to 150, and the member cap to 150."""
    programme = make_programme(
        rules=[COFFEE_2X, NO_TOBACCO],
        campaigns=[MEMBER_DAY],
        caps=Caps(per_order=300, per_day=500, per_member=10_000),
    )
    ctx = EarnContext("gold", earned_today=350, earned_lifetime=9_800)
    result = evaluate_order(programme, order(10_000, *COFFEE_MUG_TOBACCO), ctx)
    assert items(result)["cap:per_order"] == -97
    assert items(result)["cap:per_day"] == -150
    assert "cap:per_member" not in items(result)  # 200 left, 150 earned: does not bite
    assert result.points == 150
    assert result.breakdown[-1] == BreakdownItem(
        "cap:per_day", -150, (1, 2), "Capped at 500 points per day (350 already earned today)"
    )
    check_invariants(result)

    ctx = EarnContext("gold", earned_today=0, earned_lifetime=9_950)
    result = evaluate_order(programme, order(10_000, *COFFEE_MUG_TOBACCO), ctx)
    assert items(result)["cap:per_member"] == -250
    assert result.points == 50
    check_invariants(result)


def test_caps_already_exhausted_earn_zero() -> None:
    programme = make_programme(caps=Caps(per_day=100))
    result = evaluate_order(
        programme, order(10_000, line(1, None, 1, 10_000)), EarnContext(None, earned_today=130)
    )
    assert result.points == 0
    assert items(result) == {"base": 100, "cap:per_day": -100}
    assert result.line_points == {1: 0}


def test_campaign_day_is_the_programme_local_day() -> None:
    """Tuesday 17:30 UTC is Wednesday in Shanghai: member day applies; Thursday 00:30 not."""
    programme = make_programme(campaigns=[MEMBER_DAY])
    wed = evaluate_order(programme, order(1000, line(1, None, 1, 1000)), EarnContext(None))
    assert items(wed) == {"base": 10, "campaign:member-day": 10, "campaign_bonus:member-day": 50}
    thu = evaluate_order(
        programme, order(1000, line(1, None, 1, 1000), at=THURSDAY_SHANGHAI), EarnContext(None)
    )
    assert items(thu) == {"base": 10}


def test_campaign_in_other_time_zone() -> None:
    programme = make_programme(campaigns=[MEMBER_DAY]).model_copy(
        update={"timezone": "America/New_York"}
    )
    # 2026-11-12 03:00 UTC is Wednesday 22:00 in New York, Thursday in UTC.
    at = datetime(2026, 11, 12, 3, 0, tzinfo=UTC)
    result = evaluate_order(
        programme, order(1000, line(1, None, 1, 1000), at=at), EarnContext(None)
    )
    assert result.points == 70


def test_campaign_dates_inclusive_min_spend_and_match() -> None:
    campaign = Campaign(
        code="double-11",
        multiplier=Decimal(3),
        date_from=date(2026, 11, 11),
        date_to=date(2026, 11, 11),
        min_spend_minor=5000,
        match=Match(channels=["app"], stores=["sh01"]),
    )
    programme = make_programme(campaigns=[campaign])
    lines = (line(1, None, 1, 5000),)
    app = order(5000, *lines, channel="app")
    assert evaluate_order(programme, app, EarnContext(None)).points == 150
    assert (
        evaluate_order(programme, order(4999, *lines, channel="app"), EarnContext(None)).points
        == 49
    )
    assert (
        evaluate_order(programme, order(5000, *lines, channel="pos"), EarnContext(None)).points
        == 50
    )
    other_store = order(5000, *lines, channel="app", store="bj01")
    assert evaluate_order(programme, other_store, EarnContext(None)).points == 50
    no_store = order(5000, *lines, channel="app", store=None)
    assert evaluate_order(programme, no_store, EarnContext(None)).points == 50
    thursday = order(5000, *lines, channel="app", at=THURSDAY_SHANGHAI)
    assert evaluate_order(programme, thursday, EarnContext(None)).points == 50


def test_rule_multipliers_do_not_stack_highest_wins() -> None:
    rules = [
        COFFEE_2X,
        EarningRule(code="beans", match=Match(skus=["beans"]), multiplier=Decimal(3)),
        EarningRule(code="all", multiplier=Decimal("1.5")),
    ]
    programme = make_programme(rules=rules)
    result = evaluate_order(
        programme,
        order(
            3000,
            line(1, "coffee", 1, 1000, sku="beans"),
            line(2, "coffee", 1, 1000),
            line(3, "tea", 1, 1000),
        ),
        EarnContext(None),
    )
    assert items(result) == {"base": 30, "rule:coffee": 10, "rule:beans": 20, "rule:all": 5}
    assert [b.lines for b in result.breakdown] == [(1, 2, 3), (2,), (1,), (3,)]
    assert result.line_points == {1: 30, 2: 20, 3: 15}


def test_campaigns_add_and_do_not_compound() -> None:
    campaigns = [
        Campaign(code="a", multiplier=Decimal(2)),
        Campaign(code="b", multiplier=Decimal("1.5")),
    ]
    programme = make_programme(rules=[COFFEE_2X], campaigns=campaigns)
    result = evaluate_order(programme, order(1000, line(1, "coffee", 1, 1000)), EarnContext("gold"))
    # base 10, rule +10; a: 20*1 = 20; b: 20*0.5 = 10; gold: (20+30)*0.2 = 10
    assert items(result) == {
        "base": 10,
        "rule:coffee": 10,
        "campaign:a": 20,
        "campaign:b": 10,
        "tier:gold": 10,
    }
    assert result.points == 60


def test_excluded_share_is_not_moved() -> None:
    programme = make_programme(rules=[NO_TOBACCO])
    result = evaluate_order(
        programme,
        order(2000, line(1, "tobacco", 1, 1000), line(2, None, 1, 1000)),
        EarnContext(None),
    )
    assert result.points == 10
    assert result.earnable_minor == 1000
    assert result.line_points == {1: 0, 2: 10}


def test_bonus_spread_only_over_matched_lines() -> None:
    campaign = Campaign(code="tea", bonus_points=10, match=Match(categories=["tea"]))
    programme = make_programme(campaigns=[campaign])
    result = evaluate_order(
        programme, order(3000, line(1, "tea", 1, 1000), line(2, None, 1, 2000)), EarnContext(None)
    )
    assert items(result) == {"base": 30, "campaign_bonus:tea": 10}
    assert result.line_points == {1: 20, 2: 20}


def test_campaign_needs_a_matched_earning_line() -> None:
    campaign = Campaign(code="tobacco-bonus", bonus_points=10, match=Match(categories=["tobacco"]))
    programme = make_programme(rules=[NO_TOBACCO], campaigns=[campaign])
    result = evaluate_order(
        programme,
        order(2000, line(1, "tobacco", 1, 1000), line(2, None, 1, 1000)),
        EarnContext(None),
    )
    assert items(result) == {"base": 10, "exclusion:tobacco": 0}


@pytest.mark.parametrize(
    ("rounding", "paid", "expected"),
    [
        (Rounding.FLOOR, 150, 1),
        (Rounding.HALF_UP, 150, 2),
        (Rounding.HALF_UP, 149, 1),
        (Rounding.CEIL, 101, 2),
        (Rounding.CEIL, 100, 1),
        (Rounding.FLOOR, 99, 0),
    ],
)
def test_rounding_modes(rounding: Rounding, paid: int, expected: int) -> None:
    programme = make_programme(rounding=rounding)
    result = evaluate_order(programme, order(paid, line(1, None, 1, paid)), EarnContext(None))
    assert result.points == expected
    check_invariants(result)


def test_each_component_is_rounded_once_over_the_order() -> None:
    """Three lines of 0.5 base points each: 1.5 -> 1 (not 0 + 0 + 0)."""
    programme = make_programme()
    result = evaluate_order(
        programme, order(150, *(line(i, None, 1, 50) for i in (1, 2, 3))), EarnContext(None)
    )
    assert result.points == 1
    assert result.line_points == {1: 1, 2: 0, 3: 0}


def test_base_ratio_and_currency_in_description() -> None:
    programme = make_programme(points_per_unit=3, unit_minor=1000)
    result = evaluate_order(programme, order(2500, line(1, None, 1, 2500)), EarnContext(None))
    assert result.breakdown == (BreakdownItem("base", 7, (1,), "3 points per 10.00 CNY paid"),)


def test_paid_beyond_goods_earns_nothing_extra() -> None:
    programme = make_programme()
    result = evaluate_order(programme, order(1500, line(1, None, 1, 1000)), EarnContext(None))
    assert result.points == 10
    assert result.earnable_minor == 1000


def test_discount_reduces_net_weight() -> None:
    programme = make_programme()
    result = evaluate_order(
        programme,
        order(1500, line(1, None, 2, 1000, discount=1500), line(2, None, 1, 1000)),
        EarnContext(None),
    )
    assert result.earnable_minor == 1500
    assert result.line_points == {1: 5, 2: 10}


@pytest.mark.parametrize("paid", [0])
def test_zero_paid_earns_zero(paid: int) -> None:
    programme = make_programme(campaigns=[MEMBER_DAY])
    result = evaluate_order(programme, order(paid, line(1, None, 1, 1000)), EarnContext("gold"))
    assert result.points == 0
    assert result.breakdown == (
        BreakdownItem("base", 0, (), "No points: nothing was paid for the goods"),
    )
    assert result.line_points == {1: 0}
    assert result.earnable_minor == 0


def test_free_lines_earn_zero() -> None:
    programme = make_programme()
    result = evaluate_order(programme, order(500, line(1, None, 1, 0)), EarnContext(None))
    assert result.points == 0
    assert evaluate_order(programme, order(0), EarnContext(None)).line_points == {}


def test_no_tier_and_unit_multiplier_tier_add_nothing() -> None:
    programme = make_programme(gold_multiplier="1")
    for ctx in (EarnContext(None), EarnContext("gold"), EarnContext("base")):
        result = evaluate_order(programme, order(1000, line(1, None, 1, 1000)), ctx)
        assert items(result) == {"base": 10}


def test_unknown_tier_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown tier"):
        evaluate_order(make_programme(), order(1000, line(1, None, 1, 1000)), EarnContext("vip"))


def test_multiplier_below_one_never_earns_negative() -> None:
    zero = EarningRule(code="zero", multiplier=Decimal(0))
    programme = make_programme(rules=[zero])
    result = evaluate_order(programme, order(50, line(1, None, 1, 50)), EarnContext(None))
    # base 0.5 -> 0, rule -0.5 -> -1, so a rounding item of +1 brings the order back to 0
    assert items(result) == {"base": 0, "rule:zero": -1, "rounding": 1}
    assert result.points == 0
    check_invariants(result)


def test_half_multiplier_rule() -> None:
    half = EarningRule(code="half", match=Match(categories=["sale"]), multiplier=Decimal("0.5"))
    programme = make_programme(rules=[half])
    result = evaluate_order(programme, order(1000, line(1, "sale", 1, 1000)), EarnContext(None))
    assert items(result) == {"base": 10, "rule:half": -5}
    assert result.breakdown[1].description == "0.5× on category sale"
    assert result.line_points == {1: 5}


@pytest.mark.parametrize(
    ("lines", "paid", "message"),
    [
        ((line(1, None, 1, 100), line(1, None, 1, 100)), 100, "twice"),
        ((line(1, None, -1, 100),), 100, ">= 0"),
        ((line(1, None, 1, 100, discount=101),), 100, "discount"),
        ((line(1, None, 1, 100),), -1, "amount_paid"),
    ],
)
def test_invalid_orders(lines: tuple[LineInput, ...], paid: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_order(make_programme(), order(paid, *lines), EarnContext(None))


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate_order(
            make_programme(),
            order(100, line(1, None, 1, 100), at=datetime(2026, 1, 1)),
            EarnContext(None),
        )


# --------------------------------------------------------------------------- allocation


def test_allocate_proportionally_examples() -> None:
    assert allocate_proportionally(10, [1, 1, 1]) == [4, 3, 3]
    assert allocate_proportionally(10_000, [6000, 4000, 1000]) == [5455, 3636, 909]
    assert allocate_proportionally(5, [0, 2, 0, 3]) == [0, 2, 0, 3]
    assert allocate_proportionally(1, [1, 1]) == [1, 0]
    assert allocate_proportionally(0, [0, 0]) == [0, 0]
    assert allocate_proportionally(0, []) == []
    assert allocate_proportionally(-10, [1, 1, 1]) == [-4, -3, -3]


def test_allocate_proportionally_errors() -> None:
    with pytest.raises(ValueError):
        allocate_proportionally(1, [0, 0])
    with pytest.raises(ValueError):
        allocate_proportionally(1, [])
    with pytest.raises(ValueError):
        allocate_proportionally(1, [2, -1])


@given(
    st.integers(min_value=0, max_value=10**9),
    st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=12),
)
def test_allocate_proportionally_properties(total: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        total = 0
    shares = allocate_proportionally(total, weights)
    assert sum(shares) == total
    assert len(shares) == len(weights)
    weight_sum = sum(weights) or 1
    for share, w in zip(shares, weights, strict=True):
        if w == 0:
            assert share == 0
        # within one unit of the exact quota
        assert share * weight_sum >= total * w - weight_sum
        assert share * weight_sum <= total * w + weight_sum
    # monotone in the weights: a larger weight never gets less; equal weights differ by <= 1
    for i in range(len(weights)):
        for j in range(len(weights)):
            if weights[i] > weights[j]:
                assert shares[i] >= shares[j]
            if weights[i] == weights[j] and i < j:
                assert 0 <= shares[i] - shares[j] <= 1


# --------------------------------------------------------------------------- clawback


def test_clawback_examples() -> None:
    lp, qty = {1: 10, 2: 7}, {1: 3, 2: 1}
    assert clawback_points(lp, qty, {}, {1: 1}) == 3  # floor(10/3)
    assert clawback_points(lp, qty, {1: 1}, {1: 1}) == 3  # floor(20/3) - 3
    assert clawback_points(lp, qty, {1: 2}, {1: 1, 2: 1}) == 4 + 7  # 10 - 6, and all of line 2
    assert clawback_points(lp, qty, {}, {1: 3, 2: 1}) == 17
    assert clawback_points({}, {5: 2}, {}, {5: 1}) == 0  # excluded line earned nothing
    assert clawback_points(lp, qty, {}, {}) == 0


@pytest.mark.parametrize(
    ("before", "now"),
    [({}, {1: 4}), ({1: 3}, {1: 1}), ({}, {9: 1}), ({}, {1: -1})],
)
def test_clawback_errors(before: dict[int, int], now: dict[int, int]) -> None:
    with pytest.raises(ValueError):
        clawback_points({1: 10}, {1: 3}, before, now)


@st.composite
def return_splits(draw: st.DrawFn) -> tuple[dict[int, int], dict[int, int], list[dict[int, int]]]:
    n = draw(st.integers(min_value=1, max_value=5))
    points = {i: draw(st.integers(min_value=0, max_value=10_000)) for i in range(n)}
    qty = {i: draw(st.integers(min_value=1, max_value=20)) for i in range(n)}
    # each unit of each line comes back in one of up to 6 returns
    returns: list[dict[int, int]] = [{} for _ in range(draw(st.integers(1, 6)))]
    for i in range(n):
        for _ in range(qty[i]):
            k = draw(st.integers(0, len(returns) - 1))
            returns[k][i] = returns[k].get(i, 0) + 1
    return points, qty, returns


@given(return_splits())
def test_clawback_of_everything_in_any_split_is_exact(
    case: tuple[dict[int, int], dict[int, int], list[dict[int, int]]],
) -> None:
    points, qty, returns = case
    before: dict[int, int] = {}
    clawed = 0
    for ret in returns:
        step = clawback_points(points, qty, before, ret)
        assert step >= 0
        clawed += step
        for i, n in ret.items():
            before[i] = before.get(i, 0) + n
        # cumulative never exceeds a single return of the same units
        assert clawed == clawback_points(points, qty, {}, before)
        assert clawed <= sum(points.values())
    assert clawed == sum(points.values())


# --------------------------------------------------------------------------- properties

MULTIPLIERS = st.sampled_from(["0", "0.5", "1", "1.2", "1.5", "2", "3", "2.3333"]).map(Decimal)
CATEGORIES = st.sampled_from([None, "coffee", "tea", "tobacco", "merch"])
MATCHES = st.builds(
    Match,
    categories=st.lists(st.sampled_from(["coffee", "tea", "tobacco", "merch"]), max_size=2),
    channels=st.lists(st.sampled_from(["pos", "app"]), max_size=1),
    stores=st.lists(st.sampled_from(["sh01", "bj01"]), max_size=1),
)


@st.composite
def programmes(draw: st.DrawFn) -> Programme:
    rules = [
        EarningRule(code=f"r{i}", match=draw(MATCHES), multiplier=draw(MULTIPLIERS))
        for i in range(draw(st.integers(0, 3)))
    ]
    if draw(st.booleans()):
        rules.append(EarningRule(code="ex", kind=RuleKind.EXCLUSION, match=draw(MATCHES)))
    campaigns = []
    for i in range(draw(st.integers(0, 3))):
        multiplier = draw(MULTIPLIERS)
        bonus = draw(st.integers(0, 500))
        if multiplier == 1 and bonus == 0:
            bonus = 1
        campaigns.append(
            Campaign(
                code=f"c{i}",
                multiplier=multiplier,
                bonus_points=bonus,
                weekdays=draw(st.lists(st.integers(1, 7), max_size=3)),
                min_spend_minor=draw(st.integers(0, 20_000)),
                match=draw(MATCHES),
            )
        )
    caps = Caps(
        per_order=draw(st.none() | st.integers(0, 2000)),
        per_day=draw(st.none() | st.integers(0, 2000)),
        per_member=draw(st.none() | st.integers(0, 20_000)),
    )
    return make_programme(
        rules=rules,
        campaigns=campaigns,
        caps=caps,
        rounding=draw(st.sampled_from(list(Rounding))),
        gold_multiplier=str(draw(MULTIPLIERS)),
        points_per_unit=draw(st.integers(0, 10)),
        unit_minor=draw(st.sampled_from([1, 7, 100, 1000])),
    )


@st.composite
def orders(draw: st.DrawFn) -> OrderInput:
    lines = []
    for i in range(draw(st.integers(0, 6))):
        qty = draw(st.integers(0, 5))
        price = draw(st.integers(0, 50_000))
        discount = draw(st.integers(0, qty * price))
        lines.append(line(i + 1, draw(CATEGORIES), qty, price, discount))
    net = sum(ln.quantity * ln.unit_price_minor - ln.discount_minor for ln in lines)
    paid = draw(st.integers(0, net + 2000))
    at = draw(
        st.datetimes(
            min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
        )
    )
    return order(
        paid,
        *lines,
        at=at,
        store=draw(st.sampled_from([None, "sh01", "bj01"])),
        channel=draw(st.sampled_from(["pos", "app"])),
    )


@settings(max_examples=300, deadline=None)
@given(
    programmes(),
    orders(),
    st.sampled_from([None, "base", "silver", "gold"]),
    st.integers(0, 3000),
    st.integers(0, 30_000),
)
def test_evaluate_order_invariants(
    programme: Programme, o: OrderInput, tier: str | None, today: int, lifetime: int
) -> None:
    result = evaluate_order(programme, o, EarnContext(tier, today, lifetime))
    check_invariants(result)
    assert set(result.line_points) == {ln.line_no for ln in o.lines}
    assert result.earnable_minor <= o.amount_paid_minor
    caps = programme.earning.caps
    if caps.per_order is not None:
        assert result.points <= caps.per_order
    if caps.per_day is not None:
        assert result.points <= max(0, caps.per_day - today)
    if caps.per_member is not None:
        assert result.points <= max(0, caps.per_member - lifetime)
    excluded = {n for b in result.breakdown if b.rule.startswith("exclusion:") for n in b.lines}
    assert all(result.line_points[n] == 0 for n in excluded)
    shown = [
        b for b in result.breakdown if b.rule != "base" and not b.rule.startswith("exclusion:")
    ]
    assert all(b.points != 0 for b in shown)
    # deterministic
    assert evaluate_order(programme, o, EarnContext(tier, today, lifetime)) == result
