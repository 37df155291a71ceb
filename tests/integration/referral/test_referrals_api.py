"""Referrals end to end through the API: join with a code, order, the return window passes
(clock moved), both sides rewarded once; a return before the window gives nothing; a
self-referral is refused and a shared device holds the referral for a review."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from tests.itest import assert_problem, counts, new_member
from tests.support import order_payload

from loyalist import bootstrap
from loyalist.documents import service as documents
from loyalist.events import consumers
from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.models import AuditLog, LedgerEntry, OutboxEvent, Referral, ReferralReward
from loyalist.referral import config
from loyalist.referral import service as referrals

RULES: dict[str, Any] = {
    "referral": {
        "min_order_minor": 5_000,
        "return_window_days": 7,
        "rewards": {
            "friend": [{"action": "award_points", "params": {"points": 100, "reason": "欢迎礼"}}],
            "referrer": [
                {"action": "award_points", "params": {"points": 300, "reason": "推荐奖励"}}
            ],
        },
    }
}
TABLES = ["referral", "referral_reward", "ledger_entry", "action_receipt", "audit_log"]


@pytest.fixture
def rules(world: Any) -> dict[str, Any]:
    bootstrap.configure()
    with world.db.transaction() as s:
        documents.publish(s, SYSTEM, config.KIND, RULES, note="test")
    return RULES


def settle(db: Database) -> None:
    """What the worker does: consumers, then due jobs, until quiet."""
    for _ in range(5):
        if consumers.run_pending(db) == 0 and queue.run_until_empty(db) == 0:
            return


def code_of(client: Any, mid: int) -> str:
    r = client.get(f"/v1/members/{mid}/referral")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["link"] == f"http://testserver/m/join?ref={body['code']}"
    assert body["qr_png"].startswith("data:image/png;base64,")
    assert body["qr_svg"].startswith("<svg")
    assert len(body["code"]) <= 32
    code: str = body["code"]
    return code


def referral_of(client: Any, friend: int) -> dict[str, Any]:
    items = client.get("/v1/referrals", params={"member_id": friend}).json()["items"]
    mine = [i for i in items if i["referred_id"] == friend]
    assert len(mine) == 1, items
    return mine[0]


def action_points(db: Database, mid: int) -> list[tuple[str, int, str | None]]:
    with db.transaction() as s:
        return [
            (e.kind, e.delta_available, e.reason)
            for e in s.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.member_id == mid, LedgerEntry.source_type == "action")
                .order_by(LedgerEntry.id)
            )
        ]


def test_join_order_window_passes_both_sides_rewarded_once(
    world: Any, client: Any, clock: Any, rules: Any
) -> None:
    alice = new_member(client, "13800000001")
    code = code_of(client, alice)
    bob = new_member(client, "13800000002", referral_code=code.lower())  # case is ignored
    settle(world.db)
    r = referral_of(client, bob)
    assert (r["referrer_id"], r["status"], r["channel"], r["order_id"]) == (
        alice,
        "attributed",
        "join",
        None,
    )
    o = client.post("/v1/orders", json=order_payload("ref-1", bob, paid=8_000)).json()
    settle(world.db)
    r = referral_of(client, bob)
    assert r["order_id"] == o["id"] and r["status"] == "attributed"
    assert r["qualify_at"] == "2026-06-17T03:00:00+00:00"  # 11:00 Shanghai + 7 days
    # The window is still open: nothing is paid.
    clock.advance(timedelta(days=6))
    settle(world.db)
    assert referral_of(client, bob)["status"] == "attributed"
    assert action_points(world.db, alice) == [] and action_points(world.db, bob) == []
    clock.advance(timedelta(days=2))
    settle(world.db)
    r = referral_of(client, bob)
    assert r["status"] == "rewarded"
    assert sorted((w["role"], w["member_id"], w["points"]) for w in r["rewards"]) == [
        ("friend", bob, 100),
        ("referrer", alice, 300),
    ]
    assert action_points(world.db, alice) == [("earn", 300, "推荐奖励")]
    assert action_points(world.db, bob) == [("earn", 100, "欢迎礼")]
    # Once: the job again, the consumer again, a second order — nothing more.
    with world.db.transaction() as s:
        assert referrals.qualify(s, r["id"]) is None
    client.post("/v1/orders", json=order_payload("ref-2", bob, paid=9_000))
    clock.advance(timedelta(days=10))
    settle(world.db)
    assert action_points(world.db, alice) == [("earn", 300, "推荐奖励")]
    assert action_points(world.db, bob) == [("earn", 100, "欢迎礼")]
    code_view = client.get(f"/v1/members/{alice}/referral").json()
    assert (code_view["referred"], code_view["qualified"]) == (1, 1)
    assert client.get(f"/v1/members/{bob}/referral").json()["referred_by"] == alice
    with world.db.transaction() as s:
        assert ledger.verify(s)[1] == []
        types = [
            e.type
            for e in s.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.type.like("referral.%"))
                .order_by(OutboxEvent.id)
            )
        ]
    assert types == ["referral.attributed", "referral.qualified", "referral.rewarded"]
    stats = client.get("/v1/referrals/stats").json()
    assert stats == {
        "attributed": 1,
        "on_hold": 0,
        "qualified": 1,
        "rejected": 0,
        "clawed_back": 0,
        "conversion": 1.0,
    }


def test_a_return_before_the_window_closes_gives_no_reward(
    world: Any, client: Any, clock: Any, rules: Any
) -> None:
    alice = new_member(client, "13800000001")
    code = code_of(client, alice)
    carol = new_member(client, "13800000003", referral_code=code)
    settle(world.db)
    two = [{"sku": "MUG", "category": "merch", "quantity": 2, "unit_price_minor": 4_000}]
    o = client.post("/v1/orders", json=order_payload("ret-1", carol, paid=8_000, lines=two)).json()
    settle(world.db)
    clock.advance(timedelta(days=2))
    # Half returned: 4,000 left paid, below the 5,000 minimum.
    resp = client.post(
        f"/v1/orders/{o['id']}/returns",
        json={"return_id": "R1", "lines": [{"line_no": 1, "quantity": 1}]},
    )
    assert resp.status_code in (200, 201), resp.text
    settle(world.db)
    r = referral_of(client, carol)
    assert (r["status"], r["reason"]) == ("rejected", "order_returned")
    clock.advance(timedelta(days=10))
    settle(world.db)
    r = referral_of(client, carol)
    assert (r["status"], r["rewards"]) == ("rejected", [])
    assert action_points(world.db, alice) == [] and action_points(world.db, carol) == []


def test_a_return_after_the_reward_claws_the_points_back(
    world: Any, client: Any, clock: Any, rules: Any
) -> None:
    alice = new_member(client, "13800000001")
    dave = new_member(client, "13800000004", referral_code=code_of(client, alice))
    settle(world.db)
    o = client.post("/v1/orders", json=order_payload("cb-1", dave, paid=8_000)).json()
    settle(world.db)
    clock.advance(timedelta(days=8))
    settle(world.db)
    assert referral_of(client, dave)["status"] == "rewarded"
    resp = client.post(
        f"/v1/orders/{o['id']}/returns",
        json={"return_id": "R1", "full": True},
    )
    assert resp.status_code in (200, 201), resp.text
    settle(world.db)
    r = referral_of(client, dave)
    assert (r["status"], r["reason"]) == ("clawed_back", "order_returned")
    assert sorted((w["role"], w["points"], w["clawed_back"]) for w in r["rewards"]) == [
        ("friend", 100, 100),
        ("referrer", 300, 300),
    ]
    assert client.get(f"/v1/members/{alice}").json()["points"]["available"] == 0
    with world.db.transaction() as s:
        assert ledger.verify(s)[1] == []


def test_refusals_self_second_referrer_late_claim_unknown_code_and_the_constraints(
    world: Any, client: Any, clock: Any, rules: Any
) -> None:
    alice = new_member(client, "13800000001")
    erin = new_member(client, "13800000005")
    frank = new_member(client, "13800000006")
    gina = new_member(client, "13800000007")
    a_code, e_code = code_of(client, alice), code_of(client, erin)
    before = counts(world.db, TABLES)
    assert_problem(
        client.post("/v1/referrals", json={"member_id": alice, "code": a_code}),
        409,
        "self_referral",
        "code",
    )
    assert_problem(
        client.post("/v1/referrals", json={"member_id": gina, "code": "NOSUCH99"}),
        422,
        "unknown_referral_code",
        "code",
    )
    assert counts(world.db, TABLES) == before
    r = client.post("/v1/referrals", json={"member_id": frank, "code": a_code})
    assert r.status_code == 201, r.text
    assert r.json()["channel"] == "claim"
    again = client.post("/v1/referrals", json={"member_id": frank, "code": a_code})
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    before = counts(world.db, TABLES)
    assert_problem(
        client.post("/v1/referrals", json={"member_id": frank, "code": e_code}),
        409,
        "already_referred",
    )
    # A claim after the first order (or after the claim days) picks no referrer.
    client.post("/v1/orders", json=order_payload("g-1", gina, paid=8_000))
    assert_problem(
        client.post("/v1/referrals", json={"member_id": gina, "code": a_code}),
        409,
        "referral_closed",
    )
    assert counts(world.db, TABLES)["referral"] == before["referral"]
    # The database refuses a self-referral, a second referral of one member and a second
    # reward of one side, whatever path writes them.
    now = utcnow()
    for referrer, referred in ((alice, alice), (erin, frank)):
        with pytest.raises(IntegrityError), world.db.transaction() as s:
            s.add(_row(referrer, referred, "X", now))
            s.flush()
    with pytest.raises(IntegrityError), world.db.transaction() as s:
        for _ in range(2):
            s.add(
                ReferralReward(
                    referral_id=r.json()["id"],
                    member_id=frank,
                    role="friend",
                    points=1,
                    results=[],
                    clawed_back=0,
                    created_at=now,
                )
            )
        s.flush()
    assert counts(world.db, ["referral", "referral_reward"]) == {
        "referral": before["referral"],
        "referral_reward": before["referral_reward"],
    }


def _row(referrer: int, referred: int, code: str, now: Any) -> Referral:
    return Referral(
        referrer_id=referrer,
        referred_id=referred,
        code=code,
        channel="claim",
        org_path="/",
        status="attributed",
        hold_reasons=[],
        created_at=now,
        updated_at=now,
    )


def test_a_shared_device_holds_the_referral_until_a_reviewer_decides(
    world: Any, client: Any, clock: Any, rules: Any
) -> None:
    alice = new_member(client, "13800000001")
    hank = new_member(client, "13800000008", referral_code=code_of(client, alice))
    settle(world.db)
    for mid in (alice, hank):
        resp = client.post(
            "/v1/referrals/signals",
            json={"member_id": mid, "kind": "device_id", "value": "  IDFA-1234-ABCD "},
        )
        assert resp.status_code == 200, resp.text
    assert resp.json()["held"] == [referral_of(client, hank)["id"]]
    r = referral_of(client, hank)
    assert (r["status"], r["hold_reasons"]) == ("on_hold", ["device_id"])
    held = client.get("/v1/referrals", params={"status": "on_hold"}).json()["items"]
    assert [x["id"] for x in held] == [r["id"]]
    client.post("/v1/orders", json=order_payload("h-1", hank, paid=8_000))
    settle(world.db)
    clock.advance(timedelta(days=8))
    settle(world.db)
    r = referral_of(client, hank)
    assert r["status"] == "on_hold" and r["qualified_at"] is not None and r["rewards"] == []
    assert action_points(world.db, alice) == []
    # A read-only key may not decide; a store outside the member's home cannot see it.
    from tests.support import api_client

    with api_client(world.db, world.keys["hq-read"]) as ro:
        assert_problem(
            ro.post(f"/v1/referrals/{r['id']}/decision", json={"decision": "approve"}), 403
        )
    with api_client(world.db, world.keys["south"]) as south:
        assert_problem(
            south.post(f"/v1/referrals/{r['id']}/decision", json={"decision": "approve"}), 404
        )
    assert referral_of(client, hank)["status"] == "on_hold"
    d = client.post(
        f"/v1/referrals/{r['id']}/decision", json={"decision": "approve", "note": "siblings"}
    )
    assert d.status_code == 200, d.text
    assert d.json()["status"] == "rewarded"
    assert action_points(world.db, alice) == [("earn", 300, "推荐奖励")]
    assert_problem(
        client.post(f"/v1/referrals/{r['id']}/decision", json={"decision": "reject"}),
        409,
        "referral_not_on_hold",
    )
    with world.db.transaction() as s:
        audit = [
            a.action
            for a in s.scalars(
                select(AuditLog).where(AuditLog.object_type == "referral").order_by(AuditLog.id)
            )
        ]
    assert audit == ["referral.attribute", "referral.approve"]
    # Another friend sharing an address: the reviewer rejects; the order then pays nothing.
    ivan = new_member(client, "13800000009", referral_code=code_of(client, alice))
    settle(world.db)
    for mid in (alice, ivan):
        client.post(
            "/v1/referrals/signals",
            json={"member_id": mid, "kind": "address", "value": "上海市 静安区 1号"},
        )
    r = referral_of(client, ivan)
    assert r["hold_reasons"] == ["address"]
    d = client.post(f"/v1/referrals/{r['id']}/decision", json={"decision": "reject"}).json()
    assert (d["status"], d["reason"]) == ("rejected", "review_rejected")
    client.post("/v1/orders", json=order_payload("i-1", ivan, paid=8_000))
    clock.advance(timedelta(days=8))
    settle(world.db)
    assert referral_of(client, ivan)["rewards"] == []
    assert action_points(world.db, alice) == [("earn", 300, "推荐奖励")]


def test_upline_rewards_stop_at_two_levels(world: Any, client: Any, clock: Any, rules: Any) -> None:
    doc = {
        "referral": {
            **RULES["referral"],
            "levels": 2,
            "rewards": {
                **RULES["referral"]["rewards"],
                "upline": [{"action": "award_points", "params": {"points": 50, "reason": "二级"}}],
            },
        }
    }
    with world.db.transaction() as s:
        documents.publish(s, SYSTEM, config.KIND, doc, note="two levels")
    a = new_member(client, "13800000011")
    b = new_member(client, "13800000012", referral_code=code_of(client, a))
    c = new_member(client, "13800000013", referral_code=code_of(client, b))
    d = new_member(client, "13800000014", referral_code=code_of(client, c))
    settle(world.db)
    for i, m in enumerate((b, c, d)):
        client.post("/v1/orders", json=order_payload(f"lv-{i}", m, paid=8_000))
    settle(world.db)
    clock.advance(timedelta(days=8))
    settle(world.db)
    # d's referral pays d (friend), c (referrer) and b (upline) — never a.
    r = referral_of(client, d)
    assert sorted((w["role"], w["member_id"]) for w in r["rewards"]) == [
        ("friend", d),
        ("referrer", c),
        ("upline", b),
    ]
    # a: referrer of b, upline of c; nothing for d (three levels down).
    assert sorted(action_points(world.db, a)) == [("earn", 50, "二级"), ("earn", 300, "推荐奖励")]
