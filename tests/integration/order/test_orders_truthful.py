"""Orders and returns that cannot lie: the paid amount agrees with the lines, tiers count
what was really paid for qualifying lines, 64-bit values, returns obey the order time rules,
back-dated orders earn under the rules of their date and report their real point status,
and the basket quote prices the tier discount without writing anything."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.itest import assert_problem, counts, new_member, rows
from tests.support import order_payload

from loyalist.programme import service as programmes

WRITE_TABLES = [
    "orders",
    "order_line",
    "order_return",
    "ledger_entry",
    "points_lot",
    "lot_allocation",
    "tier_change",
    "outbox_event",
    "audit_log",
]
MONDAY = "2026-06-08T10:00:00+08:00"


def _tier(client: Any, mid: int) -> tuple[str, int]:
    t = client.get(f"/v1/members/{mid}").json()["tier"]
    return t["code"], t["value"]


def test_paid_amount_that_disagrees_with_the_lines_is_refused_and_buys_no_tier(
    world: Any, client: Any
) -> None:
    mid = new_member(client, "13800000001")
    before = counts(world.db, WRITE_TABLES)
    # the audit's case: 300,000 fen paid on a single 100-fen line
    bad = order_payload(
        "buy-a-tier",
        mid,
        paid=300_000,
        occurred_at=MONDAY,
        lines=[{"sku": "X", "category": "coffee", "quantity": 1, "unit_price_minor": 100}],
    )
    body = assert_problem(
        client.post("/v1/orders", json=bad), 422, "invalid_order", "amount_paid_minor"
    )
    assert {e["field"] for e in body["errors"]} == {"amount_paid_minor", "lines"}
    assert all(e["code"] == "paid_mismatch" for e in body["errors"])
    # too little paid is refused as well (coupons named when they are part of it)
    low = {**order_payload("low", mid, paid=5_000, occurred_at=MONDAY), "coupon_minor": 1_000}
    body = assert_problem(client.post("/v1/orders", json=low), 422, "invalid_order")
    assert {e["field"] for e in body["errors"]} == {"amount_paid_minor", "lines", "coupon_minor"}
    assert counts(world.db, WRITE_TABLES) == before
    assert _tier(client, mid) == ("base", 0)
    # within the programme's tolerance (100 fen by default) it is recorded
    ok = order_payload(
        "rounded",
        mid,
        paid=10_099,
        occurred_at=MONDAY,
        lines=[{"sku": "X", "category": "coffee", "quantity": 1, "unit_price_minor": 10_000}],
    )
    assert client.post("/v1/orders", json=ok).status_code == 201
    over = {**ok, "external_id": "over", "amount_paid_minor": 10_101}
    assert_problem(client.post("/v1/orders", json=over), 422, "invalid_order", "amount_paid_minor")
    # coupons and the money the points covered come off the lines
    client.post(f"/v1/members/{mid}/adjustments", json={"points": 1_000, "reason": "gift"})
    paid_with = {
        **order_payload(
            "mixed",
            mid,
            paid=7_000,
            occurred_at=MONDAY,
            points_paid=1_000,
            lines=[{"sku": "X", "category": "coffee", "quantity": 1, "unit_price_minor": 10_000}],
        ),
        "coupon_minor": 2_000,
        "points_paid_minor": 1_000,
    }
    r = client.post("/v1/orders", json=paid_with)
    assert r.status_code == 201, r.text
    assert (r.json()["coupon_minor"], r.json()["points_paid_minor"]) == (2_000, 1_000)


def test_gift_cards_do_not_count_toward_tiers(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    lines = [
        {"sku": "GC-1000", "category": "gift_card", "quantity": 1, "unit_price_minor": 100_000},
        {"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price_minor": 3_000},
    ]
    r = client.post(
        "/v1/orders",
        json=order_payload("gc", mid, paid=103_000, occurred_at=MONDAY, lines=lines),
    )
    assert r.status_code == 201, r.text
    assert r.json()["tier_qualifying_minor"] == 3_000
    # ¥1,030 paid, but only ¥30 for qualifying goods: silver needs ¥1,000
    assert _tier(client, mid) == ("base", 3_000)
    # returning the latte takes its ¥30 off the tier value, the gift card never counted
    oid = r.json()["id"]
    ret = client.post(
        f"/v1/orders/{oid}/returns",
        json={"return_id": "r1", "lines": [{"line_no": 2, "quantity": 1}]},
    )
    assert ret.status_code == 201, ret.text
    assert ret.json()["order"]["tier_qualifying_minor"] == 0
    assert _tier(client, mid) == ("base", 0)


def test_tier_values_beyond_32_bits(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    big = 2**31 + 5  # fen: ¥21,474,836.53
    r = client.post("/v1/orders", json=order_payload("whale", mid, paid=big, occurred_at=MONDAY))
    assert r.status_code == 201, r.text
    code, value = _tier(client, mid)
    assert (code, value) == ("black", big)
    got = rows(world.db, "SELECT metric_value FROM tier_change WHERE to_tier = 'black'")
    assert [int(x["metric_value"]) for x in got] == [big]


def test_returns_obey_the_order_time_rules(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    oid = client.post(
        "/v1/orders", json=order_payload("o1", mid, paid=10_000, occurred_at=MONDAY)
    ).json()["id"]
    before = counts(world.db, WRITE_TABLES)
    for when, code in [
        ("9999-12-31T00:00:00+00:00", "in_future"),
        ("2026-06-10T12:11:00+08:00", "in_future"),  # beyond the 10-minute skew
        ("2026-06-08T09:59:59+08:00", "before_order"),
    ]:
        body = assert_problem(
            client.post(
                f"/v1/orders/{oid}/returns",
                json={"return_id": f"r-{code}-{when[:4]}", "full": True, "occurred_at": when},
            ),
            422,
            "invalid_return" if code == "before_order" else "invalid_order",
            "occurred_at",
        )
        assert body["errors"][0]["code"] == code
    assert counts(world.db, WRITE_TABLES) == before
    ok = client.post(
        f"/v1/orders/{oid}/returns",
        json={"return_id": "r-ok", "full": True, "occurred_at": "2026-06-10T12:05:00+08:00"},
    )
    assert ok.status_code == 201, ok.text


def test_backdated_order_earns_under_the_version_of_its_date_and_reports_expired_points(
    world: Any, client: Any, clock: Any
) -> None:
    mid = new_member(client, "13800000001")
    # version 2 from 2026-06-10: base earning 2 points per yuan
    with world.db.transaction() as s:
        _v, p = programmes.active(s)
        doc = p.model_copy(
            update={
                "earning": p.earning.model_copy(
                    update={"base": p.earning.base.model_copy(update={"points_per_unit": 2})}
                )
            }
        )
        clock.freeze(datetime(2026, 6, 10, 5, 0, tzinfo=UTC))
        programmes.apply(s, doc, actor="test")
    new = client.post(
        "/v1/orders",
        json=order_payload("new", mid, paid=10_000, occurred_at="2026-06-10T13:00:00+08:00"),
    ).json()
    # 2 per yuan under version 2, doubled by Wednesday's member day
    assert (new["programme_version"], new["points"]["earned"]) == (2, 400)
    # dated after version 1 (04:00Z) and before version 2 (05:00Z): version 1's rules
    old = client.post(
        "/v1/orders",
        json=order_payload("old", mid, paid=10_000, occurred_at="2026-06-10T04:30:00+00:00"),
    ).json()
    assert (old["programme_version"], old["points"]["earned"]) == (1, 200)  # member day 2×
    # earned in 2024 (before any version: the active one's 2 per yuan), expired at the end
    # of 2025 (end_of_year, 1 year): not "available"
    gone = client.post(
        "/v1/orders",
        json=order_payload("gone", mid, paid=10_000, occurred_at="2024-06-03T10:00:00+08:00"),
    ).json()
    assert (gone["programme_version"], gone["points"]["earned"]) == (2, 200)
    assert (gone["points"]["status"], gone["points"]["open"], gone["points"]["expired"]) == (
        "expired",
        0,
        200,
    )
    assert old["points"]["status"] == "pending"
    p = client.get(f"/v1/members/{mid}").json()["points"]
    assert (p["available"], p["pending"]) == (0, 400 + 200)  # the expired 200 are not there


def test_orders_older_than_the_programme_allows_are_refused(world: Any, client: Any) -> None:
    with world.db.transaction() as s:
        _v, p = programmes.active(s)
        programmes.apply(
            s,
            p.model_copy(update={"orders": p.orders.model_copy(update={"max_backdate_days": 30})}),
            actor="test",
        )
    mid = new_member(client, "13800000001")
    before = counts(world.db, WRITE_TABLES)
    r = client.post(
        "/v1/orders",
        json=order_payload("old", mid, paid=10_000, occurred_at="2026-05-01T10:00:00+08:00"),
    )
    body = assert_problem(r, 422, "invalid_order", "occurred_at")
    assert body["errors"][0]["code"] == "too_old"
    assert counts(world.db, WRITE_TABLES) == before
    r = client.post(
        "/v1/orders", json=order_payload("recent", mid, paid=10_000, occurred_at=MONDAY)
    )
    assert r.status_code == 201


def test_quote_prices_the_tier_discount_and_writes_nothing(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    # ¥3,000 on Monday makes the member gold (5 % discount, 1.5× points)
    assert (
        client.post(
            "/v1/orders", json=order_payload("big", mid, paid=300_000, occurred_at=MONDAY)
        ).status_code
        == 201
    )
    before = counts(world.db, WRITE_TABLES)
    basket = {
        "member_id": mid,
        "store": "sh1",
        "occurred_at": "2026-06-10T12:00:00+08:00",
        "lines": [
            {"sku": "LATTE", "category": "coffee", "quantity": 2, "unit_price_minor": 3_000},
            {"sku": "GC", "category": "gift_card", "quantity": 1, "unit_price_minor": 10_000},
        ],
    }
    r = client.post("/v1/orders/quote", json=basket)
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["tier"] == {"code": "gold", "name": "金卡会员", "discount_rate": "0.05"}
    assert [
        (ln["tier_discount_minor"], ln["net_minor"], ln["counts_toward_tier"]) for ln in q["lines"]
    ] == [
        (300, 5_700, True),
        (0, 10_000, False),
    ]
    t = q["totals"]
    assert (t["gross_minor"], t["tier_discount_minor"], t["amount_due_minor"]) == (
        16_000,
        300,
        15_700,
    )
    assert t["tier_qualifying_minor"] == 5_700
    # gift cards earn nothing; ¥57 at 1 point per yuan × 1.5 (gold) → 57 + 28 (Wednesday
    # member day doubles too: 2026-06-10 is a Wednesday)
    assert t["points_earned"] == sum(ln["points"] for ln in q["lines"]) == q["lines"][0]["points"]
    assert t["points_earned"] > 0 and q["lines"][1]["points"] == 0
    assert {b["rule"] for b in q["points"]} >= {"base", "tier:gold"}
    assert counts(world.db, WRITE_TABLES) == before
    # scoped like orders: another region's store is not in scope
    from tests.support import api_client

    with api_client(world.db, world.keys["sz1"]) as sz1:
        assert_problem(sz1.post("/v1/orders/quote", json=basket), 404)
        # a store of the brand may quote for a member found by exact identity
        chain = {
            **basket,
            "store": "sz1",
            "member_id": None,
            "member_identity": {"kind": "phone", "value": "13800000001"},
        }
        chain.pop("member_id")
        r = sz1.post("/v1/orders/quote", json=chain)
        assert r.status_code == 200, r.text
        assert r.json()["tier"]["code"] == "gold"


def test_return_of_an_order_whose_points_expired_takes_nothing_from_other_lots(
    world: Any, client: Any, clock: Any
) -> None:
    mid = new_member(client, "13800000001")
    # earned 2024-06: expired at the end of 2025 (already, at the clock's 2026-06-10)
    gone = client.post(
        "/v1/orders",
        json=order_payload("gone", mid, paid=40_000, occurred_at="2024-06-03T10:00:00+08:00"),
    ).json()
    assert (gone["points"]["earned"], gone["points"]["status"]) == (400, "expired")
    client.post(f"/v1/members/{mid}/adjustments", json={"points": 1_000, "reason": "other lot"})
    lots_before = rows(world.db, "SELECT id, remaining, status FROM points_lot ORDER BY id")
    r = client.post(f"/v1/orders/{gone['id']}/returns", json={"return_id": "r1", "full": True})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["points_expired"], body["points_clawed"], body["points_waived"]) == (400, 0, 0)
    assert rows(world.db, "SELECT id, remaining, status FROM points_lot ORDER BY id") == lots_before
    p = client.get(f"/v1/members/{mid}").json()["points"]
    assert (p["available"], p["debt"]) == (1_000, 0)
