"""POST /v1/orders/{id}/returns: clawback once per return id, debt policy, points paid back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from tests.itest import apply_document, assert_problem, counts, demo_document, new_member
from tests.support import order_payload

from loyalist.jobs import service as jobs
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.models import PointsLot

MONDAY = "2026-06-08T10:00:00+08:00"
LINES = [
    {"sku": "MUG", "category": "merch", "quantity": 3, "unit_price_minor": 3000},
    {"sku": "BEANS", "category": "coffee_beans", "quantity": 2, "unit_price_minor": 5000},
]


def lots(db: Database, member_id: int) -> dict[int, tuple[int, int, str, str | None]]:
    """lot id → (points, remaining, status, expires_at)"""
    with db.transaction() as s:
        return {
            lot.id: (
                lot.points,
                lot.remaining,
                lot.status,
                lot.expires_at.isoformat() if lot.expires_at else None,
            )
            for lot in s.scalars(
                select(PointsLot).where(PointsLot.member_id == member_id).order_by(PointsLot.id)
            )
        }


def verify_clean(db: Database) -> None:
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
    assert problems == []


def points(client: Any, mid: int) -> tuple[int, int, int]:
    p = client.get(f"/v1/members/{mid}").json()["points"]
    return p["available"], p["pending"], p["debt"]


def test_partial_then_rest_claws_exactly_what_was_earned(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    o = client.post(
        "/v1/orders", json=order_payload("r1", mid, paid=19_000, lines=LINES, occurred_at=MONDAY)
    ).json()
    earned = o["points"]["earned"]
    assert earned == 290  # mugs 90, beans 100 + 100 (2×)
    assert [ln["points"] for ln in o["lines"]] == [90, 200]
    r = client.post(
        f"/v1/orders/{o['id']}/returns",
        json={"return_id": "ret-1", "lines": [{"line_no": 1, "quantity": 1}]},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["points_clawed"], r.json()["refund_minor"]) == (30, 3_000)
    assert r.json()["order"]["status"] == "partially_returned"
    r2 = client.post(
        f"/v1/orders/{o['id']}/returns",
        json={"return_id": "ret-2", "lines": [{"line_no": 2, "quantity": 1}]},
    )
    assert r2.json()["points_clawed"] == 100
    r3 = client.post(f"/v1/orders/{o['id']}/returns", json={"return_id": "ret-3", "full": True})
    assert r3.status_code == 201
    assert r3.json()["lines"] == [{"line_no": 1, "quantity": 2}, {"line_no": 2, "quantity": 1}]
    assert r3.json()["points_clawed"] == 160
    order = r3.json()["order"]
    assert order["status"] == "returned"
    assert order["points"]["clawed_back"] == earned
    assert order["refunded_minor"] == 19_000
    assert points(client, mid) == (0, 0, 0)
    # nothing left: another full return is refused
    before = counts(world.db)
    r4 = client.post(f"/v1/orders/{o['id']}/returns", json={"return_id": "ret-4", "full": True})
    assert_problem(r4, 422, "invalid_return", "full")
    assert counts(world.db) == before
    verify_clean(world.db)


def test_same_return_id_claws_once(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    o = client.post(
        "/v1/orders", json=order_payload("r1", mid, paid=19_000, lines=LINES, occurred_at=MONDAY)
    ).json()
    body = {"return_id": "ret-1", "lines": [{"line_no": 2, "quantity": 2}]}
    first = client.post(f"/v1/orders/{o['id']}/returns", json=body)
    assert first.status_code == 201
    before = counts(world.db)
    again = client.post(f"/v1/orders/{o['id']}/returns", json=body)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert counts(world.db) == before
    other = {"return_id": "ret-1", "lines": [{"line_no": 1, "quantity": 1}]}
    assert_problem(client.post(f"/v1/orders/{o['id']}/returns", json=other), 409, "return_conflict")
    assert counts(world.db) == before
    claws = [
        e
        for e in client.get(f"/v1/members/{mid}/ledger").json()["items"]
        if e["kind"] == "clawback"
    ]
    assert [(c["pending"], c["available"]) for c in claws] == [(-200, 0)]


def test_over_return_and_unknown_line_are_field_errors(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    o = client.post(
        "/v1/orders", json=order_payload("r1", mid, paid=19_000, lines=LINES, occurred_at=MONDAY)
    ).json()
    client.post(
        f"/v1/orders/{o['id']}/returns",
        json={"return_id": "a", "lines": [{"line_no": 1, "quantity": 2}]},
    )
    before = counts(world.db)
    r = client.post(
        f"/v1/orders/{o['id']}/returns",
        json={
            "return_id": "b",
            "lines": [{"line_no": 1, "quantity": 2}, {"line_no": 9, "quantity": 1}],
        },
    )
    body = assert_problem(r, 422, "invalid_return")
    assert {(e["field"], e["code"]) for e in body["errors"]} == {
        ("lines.0.quantity", "too_many"),
        ("lines.1.line_no", "unknown_line"),
    }
    for bad in (
        {"return_id": "c", "lines": [{"line_no": 1, "quantity": 0}]},
        {"return_id": "c", "lines": [{"line_no": 1, "quantity": -1}]},
        {"return_id": "c", "full": True, "lines": [{"line_no": 1, "quantity": 1}]},
        {"return_id": "c"},
        {"return_id": "", "full": True},
    ):
        assert_problem(client.post(f"/v1/orders/{o['id']}/returns", json=bad), 422)
    assert_problem(
        client.post("/v1/orders/99999/returns", json={"return_id": "z", "full": True}),
        404,
        "order_not_found",
    )
    assert counts(world.db) == before


def _spent_member(world: Any, client: Any, clock: Any) -> tuple[int, int]:
    """A member who earned 600 on an order, then spent 500 of them."""
    mid = new_member(client, "13800000001")
    o = client.post(
        "/v1/orders", json=order_payload("spent", mid, paid=60_000, occurred_at=MONDAY)
    ).json()
    assert o["points"]["earned"] == 600
    clock.freeze(datetime(2026, 6, 16, 4, 0, tzinfo=UTC))
    jobs.run_due(world.db)
    r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "upsize"})
    assert r.status_code == 201, r.text
    assert points(client, mid) == (100, 0, 0)
    return mid, o["id"]


def test_carry_debt_then_later_earnings_settle_it(world: Any, client: Any, clock: Any) -> None:
    mid, oid = _spent_member(world, client, clock)
    r = client.post(f"/v1/orders/{oid}/returns", json={"return_id": "back", "full": True})
    assert r.status_code == 201, r.text
    assert (r.json()["points_clawed"], r.json()["points_waived"]) == (600, 0)
    # the documented representation: available = open lots − debt
    assert points(client, mid) == (-500, 0, 500)
    entry = client.get(f"/v1/members/{mid}/ledger").json()["items"][0]
    assert (entry["kind"], entry["available"], entry["debt"]) == ("clawback", -600, 500)
    assert entry["details"]["debt"] == 500
    verify_clean(world.db)
    # spending is impossible while in debt
    assert_problem(
        client.post("/v1/redemptions", json={"member_id": mid, "reward": "charity-meal"}),
        409,
        "insufficient_points",
    )
    # a new order (Tue 2026-06-16): 300 pending, settles the debt when it becomes available
    o2 = client.post(
        "/v1/orders",
        json=order_payload("later", mid, paid=30_000, occurred_at="2026-06-16T11:00:00+08:00"),
    ).json()
    assert o2["points"]["earned"] == 300
    assert points(client, mid) == (-500, 300, 500)
    clock.advance(timedelta(days=8))
    jobs.run_due(world.db)
    assert points(client, mid) == (-200, 0, 200)
    # an available credit (staff adjustment) pays the rest; the surplus is spendable
    client.post(f"/v1/members/{mid}/adjustments", json={"points": 250, "reason": "goodwill"})
    assert points(client, mid) == (50, 0, 0)
    kinds = [e["kind"] for e in client.get(f"/v1/members/{mid}/ledger").json()["items"]]
    assert kinds.count("debt_settle") == 2
    verify_clean(world.db)


def test_cap_at_zero_waives_the_shortfall(world: Any, client: Any, clock: Any) -> None:
    mid, oid = _spent_member(world, client, clock)
    doc = demo_document()
    doc["points"]["negative_balance"] = "cap_at_zero"
    assert apply_document(world.db, doc) == 2
    r = client.post(f"/v1/orders/{oid}/returns", json={"return_id": "back", "full": True})
    assert r.status_code == 201, r.text
    assert (r.json()["points_clawed"], r.json()["points_waived"]) == (100, 500)
    assert points(client, mid) == (0, 0, 0)
    entry = client.get(f"/v1/members/{mid}/ledger").json()["items"][0]
    assert (entry["kind"], entry["available"], entry["debt"], entry["programme_version"]) == (
        "clawback",
        -100,
        0,
        2,
    )
    assert entry["details"]["waived"] == 500
    verify_clean(world.db)


def test_points_paid_restored_once_to_their_original_lots(
    world: Any, client: Any, clock: Any
) -> None:
    mid = new_member(client, "13800000001")
    # lot A: earned 2025-06-02, expires end of 2026; lot B: adjustment now, end of 2027
    a = client.post(
        "/v1/orders",
        json=order_payload("old", mid, paid=40_000, occurred_at="2025-06-02T10:00:00+08:00"),
    ).json()
    assert a["points"]["earned"] == 400
    client.post(f"/v1/members/{mid}/adjustments", json={"points": 1000, "reason": "migration"})
    before_lots = lots(world.db, mid)
    (lot_a, lot_b) = sorted(before_lots)
    assert before_lots[lot_a] == (400, 400, "available", "2026-12-31T16:00:00+00:00")
    assert before_lots[lot_b] == (1000, 1000, "available", "2027-12-31T16:00:00+00:00")
    # pay 600 points: FEFO takes all of A, then 200 of B
    o = client.post(
        "/v1/orders",
        json={
            **order_payload(
                "paid",
                mid,
                paid=0,
                points_paid=600,
                occurred_at=MONDAY,
                lines=[
                    {"sku": "CUP", "category": "merch", "quantity": 2, "unit_price_minor": 3000},
                ],
            ),
            # the points paid the whole 6000 fen (the POS says so; consistent with the lines)
            "points_paid_minor": 6000,
        },
    ).json()
    pay = client.get(f"/v1/members/{mid}/ledger").json()["items"][0]
    assert (pay["kind"], pay["available"]) == ("redeem", -600)
    assert pay["details"]["lots"] == [[lot_a, 400], [lot_b, 200]]
    assert lots(world.db, mid)[lot_a][1:3] == (0, "closed")
    # return one of two cups: half of the points paid (300) come back, B first (expires later)
    r = client.post(
        f"/v1/orders/{o['id']}/returns",
        json={"return_id": "half", "lines": [{"line_no": 1, "quantity": 1}]},
    )
    assert r.json()["points_restored"] == 300
    again = client.post(
        f"/v1/orders/{o['id']}/returns",
        json={"return_id": "half", "lines": [{"line_no": 1, "quantity": 1}]},
    )
    assert again.status_code == 200 and again.json()["points_restored"] == 300
    rest = client.post(f"/v1/orders/{o['id']}/returns", json={"return_id": "rest", "full": True})
    assert rest.json()["points_restored"] == 300
    assert rest.json()["order"]["points"]["paid_restored"] == 600
    items = client.get(f"/v1/members/{mid}/ledger").json()["items"]
    reversals = [e for e in items if e["kind"] == "reversal"]
    assert [(e["available"], e["corrects_entry_id"]) for e in reversals] == [
        (300, pay["id"]),
        (300, pay["id"]),
    ]
    assert reversals[1]["details"]["lots"] == [[lot_b, 200], [lot_a, 100]]
    assert reversals[0]["details"]["lots"] == [[lot_a, 300]]
    # the lots are whole again, with their original expiry
    assert lots(world.db, mid) == before_lots
    assert points(client, mid) == (1400, 0, 0)
    verify_clean(world.db)
