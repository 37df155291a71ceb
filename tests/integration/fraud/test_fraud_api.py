"""Fraud controls (风控) end to end through the API: a scripted abuse run (one device, 100
redemptions in a minute; a ring of five accounts sharing a device) is blocked or held with
reasons while legitimate traffic goes through untouched; held points are not spendable
until a reviewer approves them (rejected ones are reversed); a frozen member cannot redeem
or pay with points; shadow mode changes nothing and logs exactly what the backtest of the
rule over the same traffic counts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select
from tests.integration.cli.test_cli_commands import cli, run  # noqa: F401 (fixtures)
from tests.itest import apply_document, assert_problem, counts, demo_document, rows
from tests.support import order_payload

from loyalist.documents import service as documents
from loyalist.documents.errors import DocumentInvalid
from loyalist.fraud import config
from loyalist.fraud import service as fraud
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Base, Database
from loyalist.ledger import service as ledger
from loyalist.models import AuditLog, FraudCheck, OutboxEvent

BURST = {
    "code": "device-burst",
    "on": ["redemption"],
    "when": {"gt": {"device.redemptions.1m": 10}},
    "outcome": "block",
    "reason": "同一设备一分钟内兑换超过10次",
}
RING = {
    "code": "device-ring",
    "on": ["order"],
    "when": {"gte": {"device.members.1d": 3}},
    "outcome": "hold",
    "reason": "同一设备当天出现3个及以上会员",
}
BUSY = {
    "code": "member-busy",
    "on": ["order"],
    "when": {"gt": {"member.orders.1h": 2}},
    "outcome": "hold",
    "reason": "同一会员一小时内下单超过2笔",
    "mode": "shadow",
}
MEAL = "charity-meal"  # 500 points, no stock or limit


@pytest.fixture
def shop(world: Any) -> Any:
    """The demo programme with points available at once (no pending days)."""
    doc = demo_document()
    doc["points"]["pending_days"] = 0
    assert apply_document(world.db, doc) == 2
    return world


def publish(db: Database, *rules: dict[str, Any]) -> None:
    with db.transaction() as s:
        documents.publish(s, SYSTEM, config.KIND, {"rules": list(rules)}, note="test")


def member(client: Any, phone: str) -> int:
    r = client.post("/v1/members", json={"phone": phone})
    assert r.status_code == 201, r.text
    mid: int = r.json()["id"]
    return mid


def give(client: Any, mid: int, points: int) -> None:
    r = client.post(f"/v1/members/{mid}/adjustments", json={"points": points, "reason": "setup"})
    assert r.status_code == 201, r.text


def redeem(client: Any, mid: int, device: str | None, reward: str = MEAL) -> Any:
    body: dict[str, Any] = {"member_id": mid, "reward": reward}
    if device is not None:
        body["device_id"] = device
    return client.post("/v1/redemptions", json=body)


def order(client: Any, ext: str, mid: int, device: str | None, **kw: Any) -> Any:
    body = order_payload(ext, mid, occurred_at="2026-06-10T11:30:00+08:00", **kw)
    if device is not None:
        body["device_id"] = device
    return client.post("/v1/orders", json=body)


def points(client: Any, mid: int) -> tuple[int, int]:
    p = client.get(f"/v1/members/{mid}").json()["points"]
    return p["available"], p["pending"]


def verify_clean(db: Database) -> None:
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
        assert ledger.chain_problems(s) == {}
    assert problems == []


def test_one_device_redeeming_100_times_in_a_minute_is_blocked_after_10(
    shop: Any, client: Any
) -> None:
    publish(shop.db, BURST, RING, BUSY)
    abuser, honest = member(client, "13800000001"), member(client, "13800000002")
    give(client, abuser, 5000)
    give(client, abuser, 5000)
    give(client, abuser, 5000)
    give(client, honest, 2000)
    answers = [redeem(client, abuser, "dev-evil") for _ in range(100)]
    assert [r.status_code for r in answers[:10]] == [201] * 10
    for r in answers[10:]:
        body = assert_problem(r, 409, "fraud_blocked")
        assert (body["rule"], body["reason"]) == ("device-burst", "同一设备一分钟内兑换超过10次")
    # legitimate traffic in the same minute: another member on their own phone, and without one
    assert [redeem(client, honest, d).status_code for d in ("dev-honest", None, None)] == [201] * 3
    assert points(client, abuser) == (15000 - 10 * 500, 0)
    assert points(client, honest) == (2000 - 3 * 500, 0)
    # a refused redemption leaves nothing: 10 + 3 redemptions, 13 checks
    assert len(rows(shop.db, "SELECT id FROM redemption")) == 13
    assert len(rows(shop.db, "SELECT id FROM fraud_check WHERE kind = 'redemption'")) == 13
    # the device id and the client address are kept only as keyed digests
    for r in rows(shop.db, "SELECT device, ip FROM fraud_check WHERE device IS NOT NULL"):
        assert r["device"] not in ("dev-evil", "dev-honest") and len(r["device"]) == 64
    verify_clean(shop.db)


def test_a_ring_of_accounts_on_one_device_is_held_for_review(shop: Any, client: Any) -> None:
    publish(shop.db, BURST, RING, BUSY)
    ring = [member(client, f"1390000000{i}") for i in range(5)]
    honest = member(client, "13700000001")
    answers = [order(client, f"ring-{i}", mid, "dev-ring") for i, mid in enumerate(ring)]
    assert [r.status_code for r in answers] == [201] * 5
    assert [r.json()["points"]["earned"] for r in answers] == [200] * 5  # member day: 2×
    ok = order(client, "honest-1", honest, "dev-own")
    assert ok.status_code == 201
    # the first two are allowed; from the third member on the device the points are held
    assert [points(client, m) for m in ring] == [(200, 0), (200, 0)] + [(0, 200)] * 3
    assert points(client, honest) == (200, 0)
    queue = client.get("/v1/fraud/reviews")
    assert queue.status_code == 200, queue.text
    items = queue.json()["items"]
    assert [(i["member_id"], i["points"], i["rule"], i["reason"], i["status"]) for i in items] == [
        (m, 200, "device-ring", "同一设备当天出现3个及以上会员", "pending") for m in ring[2:]
    ]
    held = {i["member_id"]: i["id"] for i in items}
    events = rows(shop.db, "SELECT id FROM outbox_event WHERE type = 'fraud.held'")
    assert len(events) == 3

    # held points are not spendable
    assert_problem(order(client, "ring-pay", ring[2], None, points_paid=100), 409)
    # approved: the points become available and spendable
    r = client.post(
        f"/v1/fraud/reviews/{held[ring[2]]}/decision",
        json={"decision": "approve", "note": "门店核实"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved" and r.json()["decided_by"].startswith("apikey:")
    assert points(client, ring[2]) == (200, 0)
    assert order(client, "ring-pay", ring[2], None, points_paid=100).status_code == 201
    # rejected: the held points are reversed, nothing else of the member is touched
    r = client.post(f"/v1/fraud/reviews/{held[ring[3]]}/decision", json={"decision": "reject"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert points(client, ring[3]) == (0, 0)
    # the same decision again answers the item; the other one is refused
    again = client.post(f"/v1/fraud/reviews/{held[ring[3]]}/decision", json={"decision": "reject"})
    assert again.status_code == 200 and again.json()["status"] == "rejected"
    assert_problem(
        client.post(f"/v1/fraud/reviews/{held[ring[3]]}/decision", json={"decision": "approve"}),
        409,
        "fraud_review_decided",
    )
    assert_problem(
        client.post("/v1/fraud/reviews/999999/decision", json={"decision": "approve"}),
        404,
        "fraud_review_not_found",
    )
    assert [i["member_id"] for i in client.get("/v1/fraud/reviews").json()["items"]] == [ring[4]]
    assert points(client, ring[4]) == (0, 200)
    with shop.db.transaction() as s:
        audits = s.scalars(
            select(AuditLog.action)
            .where(AuditLog.action.like("fraud.review.%"))
            .order_by(AuditLog.id)
        ).all()
        decided = s.scalars(
            select(OutboxEvent.type).where(OutboxEvent.type == "fraud.reviewed")
        ).all()
    assert audits == ["fraud.review.approve", "fraud.review.reject"]
    assert len(decided) == 2
    verify_clean(shop.db)


def test_held_points_do_not_become_available_by_the_activation_job(
    shop: Any, client: Any, clock: Any
) -> None:
    from loyalist.jobs import queue

    publish(shop.db, RING)
    ring = [member(client, f"1390000001{i}") for i in range(3)]
    for i, mid in enumerate(ring):
        assert order(client, f"r-{i}", mid, "dev-x").status_code == 201
    clock.advance(timedelta(days=30))
    with shop.db.transaction() as s:
        for acct_id in ledger.stale_pending_accounts(s, clock.now(), 100):
            raise AssertionError(f"account {acct_id} has a held lot due")
    queue.run_until_empty(shop.db)
    assert points(client, ring[2]) == (0, 200)


def test_a_frozen_member_cannot_redeem_or_pay_with_points_but_still_earns(
    shop: Any, client: Any
) -> None:
    mid = member(client, "13600000001")
    give(client, mid, 2000)
    r = client.put(f"/v1/fraud/frozen/{mid}", json={"reason": "疑似盗号"})
    assert r.status_code == 200, r.text
    assert (r.json()["frozen"], r.json()["reason"]) == (True, "疑似盗号")
    assert client.get(f"/v1/fraud/frozen/{mid}").json()["frozen"] is True
    before = counts(shop.db, ["redemption", "ledger_entry", "orders"])
    body = assert_problem(redeem(client, mid, None), 409, "member_frozen")
    assert body["reason"] == "疑似盗号"
    assert_problem(order(client, "pay", mid, None, points_paid=100), 409, "member_frozen")
    assert counts(shop.db, ["redemption", "ledger_entry", "orders"]) == before
    assert order(client, "earn", mid, None).status_code == 201  # earning goes on
    assert points(client, mid) == (2200, 0)
    verify_clean(shop.db)
    r = client.delete(f"/v1/fraud/frozen/{mid}")
    assert r.status_code == 200 and r.json()["frozen"] is False
    assert redeem(client, mid, None).status_code == 201
    assert points(client, mid) == (1700, 0)
    actions = [a["action"] for a in rows(shop.db, "SELECT action FROM audit_log ORDER BY id")]
    assert [a for a in actions if a.startswith("member.")][-2:] == [
        "member.freeze",
        "member.unfreeze",
    ]
    assert_problem(client.put("/v1/fraud/frozen/999999", json={"reason": "x"}), 404)


def test_shadow_mode_changes_nothing_and_matches_the_backtest(
    shop: Any,
    client: Any,
    clock: Any,
    cli: Any,  # noqa: F811 (the fixture)
) -> None:
    publish(shop.db, BURST, BUSY)
    busy, calm = member(client, "13500000001"), member(client, "13500000002")
    n = 0
    for hour in range(3):
        for _ in range(4 if hour != 1 else 2):  # busy: 4, 2, 4 orders in three hours
            n += 1
            assert order(client, f"b-{n}", busy, "dev-b").status_code == 201
            clock.advance(timedelta(minutes=5))
        assert order(client, f"c-{hour}", calm, "dev-c").status_code == 201
        clock.advance(timedelta(minutes=45))
    # nothing was held: shadow mode only logs (orders 3 and 4 of hours one and three)
    assert points(client, busy) == (2000, 0)
    assert client.get("/v1/fraud/reviews").json()["items"] == []
    logged = [
        r["shadow"]
        for r in rows(shop.db, "SELECT shadow FROM fraud_check ORDER BY id")
        if r["shadow"] not in ("[]", [])
    ]
    assert len(logged) == 4
    bt = client.get("/v1/fraud/backtest", params={"rule": "member-busy", "days": 90})
    assert bt.status_code == 200, bt.text
    b = bt.json()
    assert (b["mode"], b["checked"], b["hits"], b["members"], b["shadow_hits"]) == (
        "shadow",
        13,
        4,
        1,
        4,
    )
    assert b["live_holds"] == 0
    # a stricter variant tried before it goes live: same history, its own figures
    with shop.db.transaction() as s:
        variant = config.RuleDoc.model_validate({**BUSY, "when": {"gt": {"member.orders.1h": 1}}})
        result = fraud.backtest(s, SYSTEM, variant).result
    assert (result.hits, result.members) == (7, 1)  # orders 2-4, 2, 2-4
    assert_problem(client.get("/v1/fraud/backtest", params={"rule": "nope"}), 422)
    # the same from the CLI
    res = cli("fraud", "backtest", "--rule", "member-busy", "--days", "90")
    assert res.exit_code == 0, res.output
    assert "matches shadow mode: yes" in res.stdout
    assert "13" in res.stdout and "4" in res.stdout
    res = cli("fraud", "backtest", "--rule", "nope")
    assert res.exit_code == 2


def test_rules_are_validated_with_field_paths(world: Any) -> None:
    bad = {
        "rules": [
            {**BURST, "outcome": "hold"},
            {**RING, "when": {"gt": {"device.orders.2m": 1}}},
            {**BUSY, "code": "device-burst"},
        ]
    }
    with world.db.transaction() as s, pytest.raises(DocumentInvalid) as err:
        documents.publish(s, SYSTEM, config.KIND, bad, note="bad")
    fields = sorted(e.field for e in err.value.errors)
    assert fields == ["rules.0.outcome", "rules.1.when.gt", "rules.2.code"], fields
    with world.db.transaction() as s:
        assert s.scalars(select(FraudCheck)).all() == []


def test_no_rules_means_no_counters_and_no_checks(shop: Any, client: Any) -> None:
    mid = member(client, "13400000001")
    assert order(client, "plain", mid, "dev").status_code == 201
    assert counts(shop.db, ["fraud_counter", "fraud_check", "fraud_device_member"]) == {
        "fraud_counter": 0,
        "fraud_check": 0,
        "fraud_device_member": 0,
    }


def test_the_migration_matches_the_models(db: Database) -> None:
    engine = create_engine(db.url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    ours = ("fraud_", "member_freeze")
    assert [d for d in diffs if any(name in repr(d) for name in ours)] == []


def test_the_demo_publishes_rules_and_fills_the_review_queue(shop: Any, client: Any) -> None:
    from loyalist.demo import fraud as fraud_demo

    ids = [member(client, f"1330000000{i}") for i in range(6)]
    assert fraud_demo.seed(shop.db) == {"held": 3, "frozen": 1}
    items = client.get("/v1/fraud/reviews").json()["items"]
    assert sorted(i["member_id"] for i in items) == sorted(ids[1:4])
    assert client.get(f"/v1/fraud/frozen/{ids[0]}").json()["frozen"] is True
    verify_clean(shop.db)
