"""``when:`` conditions on earning rules and campaigns (the demo's member day, rewritten)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalist.programme import service as programmes
from loyalist.programme.domain import EarnContext, LineInput, OrderInput, evaluate_order
from loyalist.programme.errors import ProgrammeInvalid
from loyalist.programme.schemas import Programme

DEMO = Path(__file__).parents[3] / "src" / "loyalist" / "demo" / "programme.yaml"
TIERS = ["base", "silver", "gold", "platinum", "black"]


def demo_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    return doc


def with_member_day(campaign: dict[str, Any]) -> Programme:
    doc = demo_doc()
    campaigns = doc["earning"]["campaigns"]
    assert campaigns[0]["code"] == "member-day"
    campaigns[0] = {"code": "member-day", "name": "每周三会员日双倍积分", "multiplier": "2"}
    campaigns[0].update(campaign)
    return programmes.parse(doc)


# Member day: Wednesday in Asia/Shanghai, gold tier or above, ¥100 or more paid.
SHORTHAND = with_member_day(
    {"weekdays": [3], "tiers": ["gold", "platinum", "black"], "min_spend_minor": 10000}
)
WHEN = {
    "all": [
        {"eq": {"time.weekday": "wed"}},
        {"gte": {"member.tier": "gold"}},
        {"gte": {"order.amount_minor": 10000}},
    ]
}
CONDITIONED = with_member_day({"when": WHEN})


def order_at(
    at: datetime, amount: int, *, category: str = "coffee", channel: str = "pos"
) -> OrderInput:
    return OrderInput(
        store_code="s1",
        channel=channel,
        occurred_at=at,
        amount_paid_minor=amount,
        lines=(LineInput(1, "SKU1", category, 1, amount, 0),),
    )


# 2026-06-09T17:30Z is Wednesday 01:30 in Shanghai (still Tuesday in UTC).
WED_SHANGHAI = datetime(2026, 6, 9, 17, 30, tzinfo=UTC)


def test_member_day_with_when_applies_and_explains_each_clause() -> None:
    res = evaluate_order(CONDITIONED, order_at(WED_SHANGHAI, 12000), EarnContext("gold"))
    # base 120, member day +120, gold 1.5× on (120 + 120) = +120.
    assert [(b.rule, b.points) for b in res.breakdown] == [
        ("base", 120),
        ("campaign:member-day", 120),
        ("tier:gold", 120),
    ]
    assert res.points == 360
    (outcome,) = res.conditions
    assert (outcome.rule, outcome.name, outcome.passed) == (
        "campaign:member-day",
        "每周三会员日双倍积分",
        True,
    )
    assert [c.text() for c in outcome.explanation.children] == [
        "time.weekday eq wed (actual: wed)",
        "member.tier gte gold (actual: gold)",
        "order.amount_minor gte 10000 (actual: 12000)",
    ]


def test_member_day_failing_clauses_are_all_shown() -> None:
    res = evaluate_order(
        CONDITIONED, order_at(WED_SHANGHAI + timedelta(days=1), 9999), EarnContext("silver")
    )
    assert [b.rule for b in res.breakdown] == ["base", "tier:silver"]
    (outcome,) = res.conditions
    assert outcome.passed is False
    assert [(c.passed, c.actual) for c in outcome.explanation.children] == [
        (False, "thu"),
        (False, "silver"),
        (False, 9999),
    ]


@settings(max_examples=400, deadline=None)
@given(
    minutes=st.integers(0, 60 * 24 * 28),
    amount=st.integers(0, 40000),
    tier=st.sampled_from([None, *TIERS]),
    category=st.sampled_from(["coffee", "coffee_beans", "gift_card", "bakery"]),
    channel=st.sampled_from(["pos", "app", "miniprogram"]),
    earned_today=st.integers(0, 60000),
)
def test_when_gives_the_same_points_as_the_shorthand(
    minutes: int, amount: int, tier: str | None, category: str, channel: str, earned_today: int
) -> None:
    at = datetime(2026, 6, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    order = order_at(at, amount, category=category, channel=channel)
    ctx = EarnContext(tier, earned_today=earned_today)
    a = evaluate_order(SHORTHAND, order, ctx)
    b = evaluate_order(CONDITIONED, order, ctx)
    assert (a.points, a.breakdown, a.line_points) == (b.points, b.breakdown, b.line_points)
    assert a.conditions == ()
    assert len(b.conditions) == 1
    active = any(item.rule == "campaign:member-day" for item in b.breakdown)
    if active:
        assert b.conditions[0].passed


def test_existing_demo_programme_has_no_conditions_and_is_unchanged() -> None:
    demo = programmes.parse(demo_doc())
    assert demo.condition_fields() == set()
    res = evaluate_order(demo, order_at(WED_SHANGHAI, 12000), EarnContext("gold"))
    assert res.conditions == ()
    assert res.points == 360  # the shorthand member day (any tier) on a gold member


def test_when_on_a_rule_and_the_member_facts() -> None:
    doc = demo_doc()
    doc["earning"]["rules"].append(
        {
            "code": "vip-tag",
            "kind": "multiplier",
            "multiplier": "3",
            "when": {
                "all": [
                    {"contains": {"member.tags": "vip"}},
                    {"eq": {"member.consent.sms": True}},
                ]
            },
        }
    )
    p = programmes.parse(doc)
    assert p.condition_fields() == {"member.tags", "member.consent.sms"}
    at = WED_SHANGHAI + timedelta(days=1)
    plain = evaluate_order(p, order_at(at, 10000), EarnContext(None))
    assert plain.points == 100
    vip = EarnContext(None, facts={"member.tags": ["vip"], "member.consent": {"sms": True}})
    res = evaluate_order(p, order_at(at, 10000), vip)
    assert [(b.rule, b.points) for b in res.breakdown] == [("base", 100), ("rule:vip-tag", 200)]
    no_consent = EarnContext(None, facts={"member.tags": ["vip"], "member.consent": {}})
    assert evaluate_order(p, order_at(at, 10000), no_consent).points == 100


def test_invalid_when_is_refused_with_field_paths() -> None:
    doc = demo_doc()
    doc["earning"]["campaigns"][0]["when"] = {
        "all": [
            {"eq": {"time.weekday": "wednesday"}},
            {"gte": {"member.tier": "diamond"}},
            {"gte": {"order.amount": 10000}},
        ]
    }
    doc["earning"]["rules"][0]["when"] = {"any": []}
    with pytest.raises(ProgrammeInvalid) as info:
        programmes.parse(doc)
    assert [(e.field, e.message) for e in info.value.errors] == [
        ("earning.rules.0.when.any", "'any' needs at least one condition"),
        (
            "earning.campaigns.0.when.all.0.eq",
            "'wednesday' is not one of: mon, tue, wed, thu, fri, sat, sun",
        ),
        (
            "earning.campaigns.0.when.all.1.gte",
            "'diamond' is not one of: base, silver, gold, platinum, black",
        ),
        ("earning.campaigns.0.when.all.2.gte", "unknown field 'order.amount'"),
    ]


def test_campaign_tiers_shorthand_must_name_tiers() -> None:
    doc = demo_doc()
    doc["earning"]["campaigns"][0]["tiers"] = ["gold", "diamond"]
    with pytest.raises(ProgrammeInvalid) as info:
        programmes.parse(doc)
    assert [e.message for e in info.value.errors] == [
        "Value error, campaign 'member-day': tiers ['diamond'] are not tiers"
    ]


def test_when_survives_the_stored_document() -> None:
    stored = programmes.as_document(CONDITIONED)
    again = Programme.model_validate(copy.deepcopy(stored))
    assert again.condition("campaign:member-day") == CONDITIONED.condition("campaign:member-day")
    assert stored["earning"]["campaigns"][0]["when"] == WHEN


def test_documents_without_conditions_keep_their_stored_form() -> None:
    """No ``when``/``tiers`` keys unless given: checksums of existing programmes hold."""
    stored = programmes.as_document(programmes.parse(demo_doc()))
    for item in [*stored["earning"]["rules"], *stored["earning"]["campaigns"]]:
        assert "when" not in item and "tiers" not in item
    assert list(programmes.as_document(SHORTHAND)["earning"]["campaigns"][0])[-1] == "match"
    assert list(programmes.as_document(CONDITIONED)["earning"]["campaigns"][0])[-1] == "when"
