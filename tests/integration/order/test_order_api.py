"""POST /v1/orders: earning per rule, pending → available, replays and idempotency keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.itest import assert_problem, counts, new_member, rows
from tests.support import order_payload

from loyalist.jobs import service as jobs

MONDAY = "2026-06-08T10:00:00+08:00"  # no campaign


def rules(body: dict[str, Any]) -> list[tuple[str, int, list[int]]]:
    return [(b["rule"], b["points"], b["lines"]) for b in body["points"]["breakdown"]]


def test_breakdown_per_rule_with_exclusion(client: Any) -> None:
    mid = new_member(client, "13800000001")
    lines = [
        {"sku": "BEANS", "category": "coffee_beans", "quantity": 2, "unit_price_minor": 5000},
        {"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price_minor": 3000},
        {"sku": "GC100", "category": "gift_card", "quantity": 1, "unit_price_minor": 10000},
    ]
    r = client.post(
        "/v1/orders", json=order_payload("o1", mid, paid=23_000, occurred_at=MONDAY, lines=lines)
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert rules(body) == [
        ("base", 130, [1, 2]),
        ("exclusion:no-gift-cards", 0, [3]),
        ("rule:beans-x2", 100, [1]),
    ]
    assert body["points"]["earned"] == 230
    assert [ln["points"] for ln in body["lines"]] == [200, 30, 0]
    assert body["points"]["status"] == "pending"
    # Monday 2026-06-08 + 7 full days → Tue 2026-06-16 00:00 Shanghai
    assert body["points"]["available_at"] == "2026-06-15T16:00:00+00:00"
    assert body["programme_version"] == 1
    assert body["gross_minor"] == 23_000
    assert client.get(f"/v1/orders/{body['id']}").json() == body


def test_member_day_follows_shanghai_calendar(client: Any) -> None:
    mid = new_member(client, "13800000001")
    # Tuesday 17:00 UTC is Wednesday 01:00 in Shanghai: member day
    wed = client.post(
        "/v1/orders",
        json=order_payload("wed", mid, paid=10_000, occurred_at="2026-06-09T17:00:00Z"),
    ).json()
    assert rules(wed) == [("base", 100, [1]), ("campaign:member-day", 100, [1])]
    assert wed["points"]["earned"] == 200
    # Tuesday 15:59 UTC is still Tuesday 23:59 in Shanghai
    tue = client.post(
        "/v1/orders",
        json=order_payload("tue", mid, paid=10_000, occurred_at="2026-06-09T15:59:00Z"),
    ).json()
    assert rules(tue) == [("base", 100, [1])]
    # Wednesday 2026-06-03 16:00 UTC is already Thursday in Shanghai
    thu = client.post(
        "/v1/orders",
        json=order_payload("thu", mid, paid=10_000, occurred_at="2026-06-03T16:00:00Z"),
    ).json()
    assert thu["points"]["earned"] == 100


def test_tier_multiplier_applies_after_upgrade(client: Any, clock: Any) -> None:
    mid = new_member(client, "13800000001")
    first = client.post(
        "/v1/orders", json=order_payload("big", mid, paid=100_000, occurred_at=MONDAY)
    ).json()
    assert rules(first) == [("base", 1000, [1])]  # base tier: no multiplier
    m = client.get(f"/v1/members/{mid}").json()
    assert m["tier"]["code"] == "silver"
    # an order dated before the upgrade earns at the tier in force then (base)
    before = client.post(
        "/v1/orders",
        json=order_payload("before", mid, paid=10_000, occurred_at="2026-06-08T12:00:00+08:00"),
    ).json()
    assert rules(before) == [("base", 100, [1])]
    # the day after the upgrade the silver multiplier applies
    clock.freeze(datetime(2026, 6, 11, 4, 0, tzinfo=UTC))
    second = client.post(
        "/v1/orders",
        json=order_payload("after", mid, paid=10_000, occurred_at="2026-06-11T11:00:00+08:00"),
    ).json()
    assert rules(second) == [("base", 100, [1]), ("tier:silver", 20, [1])]
    assert second["points"]["earned"] == 120


def test_caps_per_order_and_per_day(client: Any) -> None:
    mid = new_member(client, "13800000001")
    # ¥30,000 on Monday: base 30000, capped at 20000 per order (the order also makes the
    # member platinum, but only from now on: Monday's later orders earn at the base tier)
    r1 = client.post(
        "/v1/orders", json=order_payload("c1", mid, paid=3_000_000, occurred_at=MONDAY)
    ).json()
    assert rules(r1) == [("base", 30_000, [1]), ("cap:per_order", -10_000, [1])]
    assert r1["points"]["earned"] == 20_000
    r2 = client.post(
        "/v1/orders",
        json=order_payload("c2", mid, paid=1_500_000, occurred_at="2026-06-08T11:00:00+08:00"),
    ).json()
    assert r2["points"]["earned"] == 15_000
    r3 = client.post(
        "/v1/orders",
        json=order_payload("c3", mid, paid=2_000_000, occurred_at="2026-06-08T12:00:00+08:00"),
    ).json()
    # 50000 per day: 35000 already earned that day
    assert r3["points"]["earned"] == 15_000
    assert rules(r3)[-1] == ("cap:per_day", -5_000, [1])
    assert sum(p for _, p, _ in rules(r3)) == 15_000
    # the next local day starts fresh
    r4 = client.post(
        "/v1/orders",
        json=order_payload("c4", mid, paid=10_000, occurred_at="2026-06-09T10:00:00+08:00"),
    ).json()
    assert r4["points"]["earned"] > 0


def test_pending_until_available_at_then_available(world: Any, client: Any, clock: Any) -> None:
    mid = new_member(client, "13800000001")
    o = client.post(
        "/v1/orders", json=order_payload("p", mid, paid=10_000, occurred_at=MONDAY)
    ).json()
    assert o["points"]["available_at"] == "2026-06-15T16:00:00+00:00"
    clock.freeze(datetime(2026, 6, 15, 15, 59, 59, tzinfo=UTC))
    jobs.run_due(world.db)
    p = client.get(f"/v1/members/{mid}").json()["points"]
    assert (p["available"], p["pending"]) == (0, 100)
    assert client.get(f"/v1/orders/{o['id']}").json()["points"]["status"] == "pending"
    clock.freeze(datetime(2026, 6, 15, 16, 0, tzinfo=UTC))
    reports = {r.job: r for r in jobs.run_due(world.db)}
    assert (reports["activate"].members, reports["activate"].points) == (1, 100)
    p = client.get(f"/v1/members/{mid}").json()["points"]
    assert (p["available"], p["pending"]) == (100, 0)
    assert client.get(f"/v1/orders/{o['id']}").json()["points"]["status"] == "available"
    kinds = [e["kind"] for e in client.get(f"/v1/members/{mid}/ledger").json()["items"]]
    assert kinds == ["activate", "earn"]
    # running the jobs again changes nothing
    before = counts(world.db, ["ledger_entry", "outbox_event"])
    assert {r.job: r.points for r in jobs.run_due(world.db)}["activate"] == 0
    assert counts(world.db, ["ledger_entry", "outbox_event"]) == before


def test_anonymous_order_is_stored_and_earns_nothing(world: Any, client: Any) -> None:
    before = counts(world.db, ["ledger_entry", "points_lot"])
    r = client.post("/v1/orders", json=order_payload("anon", None, paid=8_800))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["member_id"] is None
    assert body["points"] == {
        "earned": 0,
        "status": "none",
        "open": 0,
        "expired": 0,
        "available_at": None,
        "breakdown": [],
        "clawed_back": 0,
        "paid_restored": 0,
    }
    assert client.get(f"/v1/orders/{body['id']}").status_code == 200
    assert [o["external_id"] for o in client.get("/v1/orders").json()["items"]] == ["anon"]
    assert counts(world.db, ["ledger_entry", "points_lot"]) == before
    assert_problem(
        client.post("/v1/orders", json=order_payload("anon2", None, points_paid=10)),
        422,
        "validation_failed",
    )


def test_same_external_id_replays_and_different_content_conflicts(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    payload = order_payload("x1", mid, paid=10_000, occurred_at=MONDAY)
    first = client.post("/v1/orders", json=payload)
    assert first.status_code == 201
    before = counts(world.db)
    again = client.post("/v1/orders", json=payload)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert counts(world.db) == before
    for changed in (
        {**payload, "amount_paid_minor": 10_001},
        {**payload, "member_id": None},
        {**payload, "occurred_at": "2026-06-08T10:00:01+08:00"},
    ):
        assert_problem(
            client.post("/v1/orders", json=changed), 409, "order_conflict", "external_id"
        )
    assert counts(world.db) == before
    assert len(rows(world.db, "SELECT id FROM ledger_entry WHERE kind = 'earn'")) == 1


def test_idempotency_key_replays_once(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    payload = order_payload("k1", mid, paid=10_000, occurred_at=MONDAY)
    h = {"Idempotency-Key": "pos-7-0001"}
    first = client.post("/v1/orders", json=payload, headers=h)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    before = counts(world.db)
    second = client.post("/v1/orders", json=payload, headers=h)
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert counts(world.db) == before
    credits = rows(world.db, "SELECT delta_pending FROM ledger_entry WHERE kind = 'earn'")
    assert credits == [{"delta_pending": 100}]
    other = order_payload("k2", mid, paid=20_000, occurred_at=MONDAY)
    r = client.post("/v1/orders", json=other, headers=h)
    assert_problem(r, 422, "idempotency_key_reused", "Idempotency-Key")
    assert counts(world.db) == before
    # the key is per caller path + body: the same key on another route is refused too
    r = client.post("/v1/members", json={"phone": "13800000009"}, headers=h)
    assert_problem(r, 422, "idempotency_key_reused")
    assert_problem(
        client.post("/v1/orders", json=other, headers={"Idempotency-Key": "x" * 256}),
        422,
        field="Idempotency-Key",
    )
    assert counts(world.db) == before


def test_points_paid_debits_and_insufficient_writes_nothing(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    assert (
        client.post(
            f"/v1/members/{mid}/adjustments", json={"points": 1000, "reason": "welcome gift"}
        ).status_code
        == 201
    )
    r = client.post(
        "/v1/orders",
        json=order_payload("pp1", mid, paid=9_000, points_paid=400, occurred_at=MONDAY),
    )
    assert r.status_code == 201, r.text
    assert r.json()["points_paid"] == 400
    assert r.json()["points"]["earned"] == 90
    p = client.get(f"/v1/members/{mid}").json()["points"]
    assert (p["available"], p["pending"]) == (600, 90)
    ledger = client.get(f"/v1/members/{mid}/ledger").json()["items"]
    assert [(e["kind"], e["available"], e["pending"]) for e in ledger] == [
        ("earn", 0, 90),
        ("redeem", -400, 0),
        ("adjust", 1000, 0),
    ]
    tables = [
        "orders",
        "order_line",
        "ledger_entry",
        "outbox_event",
        "points_lot",
        "lot_allocation",
    ]
    before = counts(world.db, tables)
    r = client.post(
        "/v1/orders",
        json=order_payload("pp2", mid, paid=1_000, points_paid=601, occurred_at=MONDAY),
    )
    body = assert_problem(r, 409, "insufficient_points")
    assert (body["available"], body["required"]) == (600, 601)
    assert counts(world.db, tables) == before
    # pending points cannot pay either (600 available + 90 pending)
    r = client.post(
        "/v1/orders", json=order_payload("pp3", mid, paid=0, points_paid=650, occurred_at=MONDAY)
    )
    assert_problem(r, 409, "insufficient_points")
    assert counts(world.db, tables) == before


def test_orders_rejected_without_writing(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    before = counts(world.db)
    cases = [
        (order_payload("f1", mid, occurred_at="2026-06-10T12:30:00+08:00"), 422, "occurred_at"),
        ({**order_payload("f2", mid), "currency": "USD"}, 422, "currency"),
        (order_payload("f3", mid, store="nowhere"), 404, "store"),
        (order_payload("f4", mid, store="east"), 422, "store"),
        (order_payload("f5", 999_999), 404, "member_id"),
    ]
    for payload, status, field in cases:
        assert_problem(client.post("/v1/orders", json=payload), status, field=field)
    assert counts(world.db) == before


def test_list_orders_pages_newest_first(client: Any) -> None:
    mid = new_member(client, "13800000001")
    ids = [
        client.post(
            "/v1/orders", json=order_payload(f"l{i}", mid, paid=100, occurred_at=MONDAY)
        ).json()["id"]
        for i in range(5)
    ]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "member_id": mid}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/orders", params=params).json()
        seen += [o["id"] for o in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
