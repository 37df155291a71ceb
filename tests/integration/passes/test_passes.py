"""Paid membership (issue 15 item 7): buy through the API or an order line, the multiplier
on the next order (added to the tier's), renewal from the current end, refund within the
window (and refused after), expiry at the local midnight after the period with a moved
clock, expiry reminders, monthly coupons once per month, holders-only rewards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from tests.itest import apply_document, assert_problem, demo_document, new_member
from tests.support import order_payload

from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import utcnow
from loyalist.member import service as members
from loyalist.models import CouponCode, MemberPass, OutboxEvent
from loyalist.passes import domain
from loyalist.passes import service as passes
from loyalist.programme.domain import EarnContext, LineInput, OrderInput, evaluate_order
from loyalist.programme.service import parse

PASS: dict[str, Any] = {
    "code": "club-year",
    "name": "悦享年卡",
    "name_en": "Club annual pass",
    "price_minor": 9900,
    "period": {"years": 1},
    "benefits": {
        "points_multiplier": "2",
        "free_shipping": True,
        "exclusive_rewards": ["tumbler"],
        "refund_days": 7,
    },
}
COUPON = {
    "code": "pass-ten",
    "name": "年卡月券",
    "name_en": "Pass monthly ¥10",
    "kind": "amount_off",
    "amount_minor": 1000,
    "min_spend_minor": 5000,
    "limit_per_member": None,
    "valid_days": 30,
}
# Thursday 11 June 2026, 12:00 in Shanghai (not the Wednesday member day)
T0 = datetime(2026, 6, 11, 4, 0, tzinfo=UTC)


def _programme(world: Any, **benefits: Any) -> None:
    doc = demo_document()
    doc["passes"] = [{**PASS, "benefits": {**PASS["benefits"], **benefits}}]
    apply_document(world.db, doc)


def _order(client: Any, ext: str, mid: int, at: datetime, paid: int = 10_000, **kw: Any) -> Any:
    body = order_payload(ext, mid, paid=paid, occurred_at=at.isoformat(), **kw)
    r = client.post("/v1/orders", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _events(world: Any, type_: str) -> list[dict[str, Any]]:
    with world.db.transaction() as s:
        q = select(OutboxEvent.payload).where(OutboxEvent.type == type_).order_by(OutboxEvent.id)
        return [dict(p) for p in s.scalars(q)]


@pytest.fixture
def t0(clock: Any) -> Any:
    clock.freeze(T0)
    return clock


def test_buy_then_the_next_order_earns_the_pass_multiplier(
    world: Any, client: Any, t0: Any
) -> None:
    _programme(world)
    holder = new_member(client, "13800000001")
    other = new_member(client, "13800000002")
    r = client.post(f"/v1/members/{holder}/passes", json={"pass": "club-year"})
    assert r.status_code == 201, r.text
    p = r.json()
    assert (p["pass"], p["status"], p["renewal"], p["price_minor"]) == (
        "club-year",
        "active",
        False,
        9900,
    )
    # local days 2026-06-11 .. 2027-06-10; it ends at local midnight 2027-06-11 00:00 (+08)
    assert (p["starts_on"], p["ends_on"]) == ("2026-06-11", "2027-06-10")
    assert p["ends_at"] == "2027-06-10T16:00:00+00:00"
    assert p["refundable_until"] == "2026-06-18T16:00:00+00:00"
    assert _events(world, "pass.purchased") == [
        {
            "member_id": holder,
            "pass_id": p["id"],
            "pass": "club-year",
            "starts_on": "2026-06-11",
            "ends_on": "2027-06-10",
            "ends_at": "2027-06-10T16:00:00+00:00",
            "price_minor": 9900,
            "order_id": None,
        }
    ]
    t0.advance(timedelta(minutes=5))
    mine = _order(client, "P-1", holder, utcnow())
    theirs = _order(client, "P-2", other, utcnow())
    assert (mine["points"]["earned"], theirs["points"]["earned"]) == (200, 100)
    assert [b["rule"] for b in mine["points"]["breakdown"]] == ["base", "pass:club-year"]
    view = client.get(f"/v1/members/{holder}/passes").json()
    assert (view["holding"]["id"], view["free_shipping"], len(view["items"])) == (p["id"], True, 1)
    none = client.get(f"/v1/members/{other}/passes").json()
    assert (none["holding"], none["free_shipping"], none["items"]) == (None, False, [])
    # a pass the programme does not sell
    assert_problem(
        client.post(f"/v1/members/{holder}/passes", json={"pass": "nope"}),
        422,
        "pass_not_offered",
        "pass",
    )
    # holders-only reward: a non-holder is refused before any points move
    r = client.post("/v1/redemptions", json={"member_id": other, "reward": "tumbler"})
    assert_problem(r, 409, "pass_required")
    # ... and a holder with the points redeems it
    with world.db.transaction() as s:
        members.adjust_points(s, SYSTEM, holder, 9000, "gift")
    r = client.post("/v1/redemptions", json={"member_id": holder, "reward": "tumbler"})
    assert r.status_code == 201, r.text


def test_an_order_line_sells_the_pass_and_the_api_with_its_order_is_the_same_sale(
    world: Any, client: Any, t0: Any
) -> None:
    _programme(world)
    mid = new_member(client, "13800000003")
    line = {"sku": "CLUB-YEAR", "category": "membership", "quantity": 1, "unit_price_minor": 9900}
    sale = _order(client, "S-1", mid, utcnow(), paid=9900, lines=[line])
    assert sale["points"]["earned"] == 99  # the order that sells the pass earns without it
    with world.db.transaction() as s:
        rows = list(s.scalars(select(MemberPass).where(MemberPass.member_id == mid)))
    assert [(r.order_id, r.price_minor, r.status) for r in rows] == [(sale["id"], 9900, "active")]
    again = client.post(
        f"/v1/members/{mid}/passes", json={"pass": "club-year", "order_id": sale["id"]}
    )
    assert again.status_code == 200 and again.json()["id"] == rows[0].id
    other = new_member(client, "13800000004")
    assert_problem(
        client.post(
            f"/v1/members/{other}/passes", json={"pass": "club-year", "order_id": sale["id"]}
        ),
        422,
        "pass_invalid",
        "order_id",
    )
    t0.advance(timedelta(hours=1))
    assert _order(client, "S-2", mid, utcnow())["points"]["earned"] == 200
    # returning the pass line within the window refunds the pass; the next order earns 1×
    r = client.post(
        f"/v1/orders/{sale['id']}/returns",
        json={"return_id": "RT-1", "lines": [{"line_no": 1, "quantity": 1}]},
    )
    assert r.status_code == 201, r.text
    with world.db.transaction() as s:
        assert s.get(MemberPass, rows[0].id).status == "refunded"  # type: ignore[union-attr]
    assert [e["pass_id"] for e in _events(world, "pass.refunded")] == [rows[0].id]
    assert _order(client, "S-3", mid, utcnow())["points"]["earned"] == 100


def test_renewal_starts_at_the_current_end(world: Any, client: Any, t0: Any) -> None:
    _programme(world)
    mid = new_member(client, "13800000005")
    first = client.post(f"/v1/members/{mid}/passes", json={"pass": "club-year"}).json()
    t0.advance(timedelta(days=200))
    r = client.post(f"/v1/members/{mid}/passes", json={"pass": "club-year"})
    assert r.status_code == 201
    second = r.json()
    assert (second["renewal"], second["starts_on"], second["ends_on"]) == (
        True,
        "2027-06-11",
        "2028-06-10",
    )
    assert second["starts_at"] == first["ends_at"]
    assert [e["pass_id"] for e in _events(world, "pass.renewed")] == [second["id"]]


def test_refund_within_the_window_reverses_the_pass_and_voids_unused_coupons(
    world: Any, client: Any, t0: Any
) -> None:
    assert client.post("/v1/coupon-templates", json=COUPON).status_code == 201
    _programme(world, monthly_coupon="pass-ten")
    mid = new_member(client, "13800000006")
    late = new_member(client, "13800000007")
    p = client.post(f"/v1/members/{mid}/passes", json={"pass": "club-year"}).json()
    q = client.post(f"/v1/members/{late}/passes", json={"pass": "club-year"}).json()
    with world.db.transaction() as s:
        issued = list(s.scalars(select(CouponCode).where(CouponCode.member_id == mid)))
    assert [(c.issue_key, c.source) for c in issued] == [(f"pass:{p['id']}:m0", "pass")]
    # the last refundable instant: 18 June 23:59:59 in Shanghai (purchase day + 7)
    t0.freeze(datetime(2026, 6, 18, 15, 59, 59, tzinfo=UTC))
    r = client.post(f"/v1/members/{mid}/passes/{p['id']}/refund")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["coupons_voided"]) == ("refunded", 1)
    assert body["refunded_at"] == "2026-06-18T15:59:59+00:00"
    assert _events(world, "pass.refunded") == [
        {
            "member_id": mid,
            "pass_id": p["id"],
            "pass": "club-year",
            "price_minor": 9900,
            "coupons_voided": 1,
        }
    ]
    with world.db.transaction() as s:
        assert s.get(CouponCode, issued[0].id).voided_at is not None  # type: ignore[union-attr]
    # again: the same refund, nothing more
    again = client.post(f"/v1/members/{mid}/passes/{p['id']}/refund")
    assert again.status_code == 200 and again.json()["coupons_voided"] == 0
    assert len(_events(world, "pass.refunded")) == 1
    # the next order earns without the pass
    assert _order(client, "R-1", mid, utcnow())["points"]["earned"] == 100
    # one second later the window is closed
    t0.advance(timedelta(seconds=1))
    body = assert_problem(
        client.post(f"/v1/members/{late}/passes/{q['id']}/refund"),
        409,
        "pass_refund_window_closed",
    )
    assert body["refundable_until"] == "2026-06-18T16:00:00+00:00"
    assert_problem(client.post(f"/v1/members/{mid}/passes/{q['id']}/refund"), 404, "pass_not_found")
    assert _order(client, "R-2", late, utcnow())["points"]["earned"] == 200


def test_expiry_at_the_local_end_date_with_a_moved_clock(world: Any, client: Any, t0: Any) -> None:
    assert client.post("/v1/coupon-templates", json=COUPON).status_code == 201
    _programme(world, monthly_coupon="pass-ten")
    mid = new_member(client, "13800000008")
    p = client.post(f"/v1/members/{mid}/passes", json={"pass": "club-year"}).json()

    def sweep(at: datetime) -> tuple[int, int]:
        t0.freeze(at)
        with world.db.transaction() as s:
            return passes.sweep(s)

    def monthly(at: datetime) -> int:
        t0.freeze(at)
        with world.db.transaction() as s:
            return passes.issue_monthly(s)

    # monthly coupons: month 0 at purchase; month 1 from 11 July (local), once
    assert monthly(datetime(2026, 7, 10, 15, 59, tzinfo=UTC)) == 0
    assert monthly(datetime(2026, 7, 10, 16, 0, tzinfo=UTC)) == 1
    assert monthly(datetime(2026, 7, 11, 16, 0, tzinfo=UTC)) == 0
    # the reminder: not before 7 days ahead of the end, then once
    assert sweep(datetime(2027, 6, 3, 15, 59, tzinfo=UTC)) == (0, 0)
    assert sweep(datetime(2027, 6, 3, 16, 0, tzinfo=UTC)) == (1, 0)
    assert sweep(datetime(2027, 6, 9, 0, 0, tzinfo=UTC)) == (0, 0)
    assert [e["pass_id"] for e in _events(world, "pass.expiring")] == [p["id"]]
    # 10 June 2027 23:59:59 in Shanghai: still held
    t0.freeze(datetime(2027, 6, 10, 15, 59, 59, tzinfo=UTC))
    assert _order(client, "E-1", mid, utcnow())["points"]["earned"] == 200
    # local midnight: over
    assert sweep(datetime(2027, 6, 10, 16, 0, tzinfo=UTC)) == (0, 1)
    assert _order(client, "E-2", mid, utcnow())["points"]["earned"] == 100
    assert _events(world, "pass.expired") == [
        {
            "member_id": mid,
            "pass_id": p["id"],
            "pass": "club-year",
            "ends_on": "2027-06-10",
            "ends_at": "2027-06-10T16:00:00+00:00",
        }
    ]
    assert sweep(datetime(2027, 6, 11, 16, 0, tzinfo=UTC)) == (0, 0)
    assert client.get(f"/v1/members/{mid}/passes").json()["items"][0]["status"] == "expired"


def test_tier_and_pass_multipliers_add_and_never_compound() -> None:
    doc = demo_document()
    doc["passes"] = [PASS]
    programme = parse(doc)
    order = OrderInput(
        occurred_at=T0,
        amount_paid_minor=10_000,
        lines=(LineInput(1, "LATTE", "coffee", 1, 10_000, 0),),
        store_code="sh1",
        channel="pos",
    )
    gold = evaluate_order(programme, order, EarnContext(tier_code="gold", pass_code="club-year"))
    assert gold.points == 250  # 100 base + 50 (gold 1.5×) + 100 (pass 2×)
    assert [(b.rule, b.points) for b in gold.breakdown] == [
        ("base", 100),
        ("tier:gold", 50),
        ("pass:club-year", 100),
    ]
    alone = evaluate_order(programme, order, EarnContext(tier_code="base", pass_code=None))
    assert alone.points == 100
    assert programme.pass_offer("CLUB-YEAR") is not None
    assert programme.passes[0].benefits.points_multiplier == Decimal("2")


def test_term_dates() -> None:
    from datetime import date

    assert domain.term(date(2026, 1, 31), 0, 1) == domain.Term(date(2026, 1, 31), date(2026, 2, 27))
    assert domain.term(date(2028, 2, 29), 1, 0).ends_on == date(2029, 2, 27)
    assert domain.months_held(date(2026, 1, 31), date(2026, 2, 27)) == 0
    assert domain.months_held(date(2026, 1, 31), date(2026, 2, 28)) == 1
    assert domain.refund_last_day(date(2026, 6, 11), 7) == date(2026, 6, 18)


def test_quote_and_dry_run_apply_the_pass_multiplier_as_the_order_does(
    world: Any, client: Any, t0: Any
) -> None:
    _programme(world)
    holder = new_member(client, "13800000051")
    other = new_member(client, "13800000052")
    assert (
        client.post(f"/v1/members/{holder}/passes", json={"pass": "club-year"}).status_code == 201
    )
    t0.advance(timedelta(minutes=5))
    at = utcnow()
    basket = {
        "store": "sh1",
        "occurred_at": at.isoformat(),
        "lines": [
            {"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price_minor": 10_000}
        ],
    }
    quoted = {}
    for mid in (holder, other):
        r = client.post("/v1/orders/quote", json={**basket, "member_id": mid})
        assert r.status_code == 200, r.text
        quoted[mid] = r.json()
    for mid, ext in ((holder, "Q-1"), (other, "Q-2")):
        q = quoted[mid]
        real = _order(client, ext, mid, at, paid=q["totals"]["amount_due_minor"])
        assert q["totals"]["points_earned"] == real["points"]["earned"]
        assert [(p["rule"], p["points"]) for p in q["points"]] == [
            (b["rule"], b["points"]) for b in real["points"]["breakdown"]
        ]
    assert (
        quoted[holder]["totals"]["points_earned"],
        quoted[other]["totals"]["points_earned"],
    ) == (200, 100)
    # the dry-run of a sample order: the pass given applies, an unknown one is refused
    sample = {"order": order_payload("D-1", None, occurred_at=at.isoformat())}
    runs = [
        client.post("/v1/programme/dry-run", json={**sample, **extra})
        for extra in ({}, {"pass_code": "club-year"})
    ]
    assert [r.status_code for r in runs] == [200, 200], runs[1].text
    assert [r.json()["points"] for r in runs] == [100, 200]
    assert_problem(
        client.post("/v1/programme/dry-run", json={**sample, "pass_code": "nope"}),
        422,
        field="pass_code",
    )
