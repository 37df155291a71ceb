"""Identity merge (issue 13 item 2): preview, merge, the merged id resolving to the
survivor, undo restoring every figure (balances, lots with expiry, orders, tier, coupons,
tags, identities), undo refused after activity, duplicate candidates; ledger verify clean
throughout."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from tests.itest import assert_problem
from tests.support import order_payload

from loyalist.coupon import service as coupons
from loyalist.coupon.schemas import TemplateCreate
from loyalist.documents import service as documents
from loyalist.fraud import config as fraud_config
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.merge import service as merges
from loyalist.models import (
    CouponCode,
    FraudCheck,
    FraudCounter,
    FraudDeviceMember,
    FraudReview,
    Member,
    MemberFreeze,
    MemberIdentity,
    MemberTag,
    Order,
    OutboxEvent,
    PointsLot,
    RewardUsage,
)


def figures(db: Database, *member_ids: int) -> dict[int, Any]:
    """Everything a merge moves and an undo must give back, per member."""
    out: dict[int, Any] = {}
    with db.transaction() as s:
        for mid in member_ids:
            m = s.get(Member, mid)
            assert m is not None
            acct = ledger.own_account(s, mid)
            lots = sorted(
                (lot.remaining, lot.status, lot.earned_at, lot.available_at, str(lot.expires_at))
                for lot in s.scalars(
                    select(PointsLot).where(
                        PointsLot.account_id == acct.id,
                        PointsLot.status.in_(["available", "pending"]),
                        PointsLot.remaining > 0,
                    )
                )
            )
            out[mid] = {
                "balance": (acct.available, acct.pending, acct.debt, acct.lifetime_earned),
                "lots": lots,
                "orders": sorted(s.scalars(select(Order.id).where(Order.member_id == mid))),
                "tier": (m.tier_code, m.tier_since, m.tier_expires_at, m.status),
                "coupons": sorted(
                    s.scalars(select(CouponCode.id).where(CouponCode.member_id == mid))
                ),
                "tags": sorted(s.scalars(select(MemberTag.tag).where(MemberTag.member_id == mid))),
                "identities": sorted(
                    (i.kind, i.value)
                    for i in s.scalars(
                        select(MemberIdentity).where(MemberIdentity.member_id == mid)
                    )
                ),
            }
    return out


def verify_clean(db: Database) -> None:
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
        assert problems == []


def two_members(world: Any, c: Any) -> tuple[int, int]:
    """Survivor A (¥300 spent, tag vip, an openid) and B (¥800 spent, 500 points adjusted,
    a coupon, tags vip + tea, another openid): together they qualify for silver."""
    with world.db.transaction() as s:
        coupons.create_template(
            s,
            SYSTEM,
            TemplateCreate(code="ten-off", name="十元券", kind="amount_off", amount_minor=1000),
        )
    a = c.post(
        "/v1/members",
        json={
            "phone": "13900005001",
            "name": "李雷",
            "tags": ["vip"],
            "identities": [{"kind": "wechat_openid", "value": "oA-survivor-0001"}],
        },
    ).json()["id"]
    b = c.post(
        "/v1/members",
        json={
            "phone": "13900005002",
            "name": "李雷",
            "tags": ["vip", "tea"],
            "identities": [{"kind": "wechat_openid", "value": "oB-merged-0002"}],
        },
    ).json()["id"]
    assert c.post("/v1/orders", json=order_payload("m-a1", a, paid=30_000)).status_code == 201
    assert c.post("/v1/orders", json=order_payload("m-b1", b, paid=80_000)).status_code == 201
    r = c.post(f"/v1/members/{b}/adjustments", json={"points": 500, "reason": "开户礼"})
    assert r.status_code == 201, r.text
    r = c.post(f"/v1/members/{b}/coupons", json={"template": "ten-off"})
    assert r.status_code in (200, 201), r.text
    return a, b


def test_merge_then_undo_gives_every_figure_back(world: Any, client: Any, clock: Any) -> None:
    a, b = two_members(world, client)
    before = figures(world.db, a, b)
    assert before[a]["tier"][0] == "base" and before[b]["tier"][0] == "base"
    verify_clean(world.db)

    r = client.get(f"/v1/members/{a}/merge-preview", params={"merged_id": b})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["can_merge"] is True
    assert p["moves"]["orders"] == 1 and p["moves"]["coupons"] == 1
    assert p["moves"]["tags"] == 1 and p["kept"] == {"tags": 1}  # both have "vip"
    codes = {x["code"] for x in p["conflicts"]}
    assert codes == {"both_have_phone", "both_have_wechat_openid", "kept_tags"}
    assert p["available_after"] == before[a]["balance"][0] + before[b]["balance"][0]
    assert p["pending_after"] == before[a]["balance"][1] + before[b]["balance"][1]

    clock.advance(timedelta(minutes=5))
    r = client.post("/v1/merges", json={"survivor_id": a, "merged_id": b})
    assert r.status_code == 201, r.text
    merge = r.json()
    assert (merge["status"], merge["survivor_id"], merge["merged_id"]) == ("done", a, b)
    assert merge["points_moved"] == before[b]["balance"][0]
    verify_clean(world.db)

    after = figures(world.db, a, b)
    # the points: totals kept, every lot with its own earning time, availability and expiry
    assert after[a]["balance"][:3] == tuple(
        x + y for x, y in zip(before[a]["balance"][:3], before[b]["balance"][:3], strict=True)
    )
    assert after[a]["balance"][3] == before[a]["balance"][3] + before[b]["balance"][3]
    assert after[b]["balance"] == (0, 0, 0, 0)
    assert after[a]["lots"] == sorted(before[a]["lots"] + before[b]["lots"])
    assert after[a]["orders"] == sorted(before[a]["orders"] + before[b]["orders"])
    assert after[a]["coupons"] == before[b]["coupons"]
    assert after[a]["tags"] == ["tea", "vip"] and after[b]["tags"] == ["vip"]
    assert after[a]["identities"] == sorted(before[a]["identities"] + before[b]["identities"])
    assert after[a]["tier"][0] == "silver"  # ¥300 + ¥800 spent: re-evaluated
    assert after[b]["tier"][3] == "merged"

    # the merged id resolves to the survivor (the survivor's body)
    r = client.get(f"/v1/members/{b}")
    assert r.status_code == 200 and r.json()["id"] == a
    assert r.json()["points"]["available"] == after[a]["balance"][0]
    # a lookup by the merged member's phone finds the survivor (the identity moved)
    r = client.get("/v1/members", params={"phone": "13900005002"})
    assert r.status_code == 200

    clock.advance(timedelta(days=1))
    r = client.post(f"/v1/merges/{merge['id']}/undo")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "undone"
    verify_clean(world.db)
    back = figures(world.db, a, b)
    assert back == before
    r = client.get(f"/v1/members/{b}")
    assert r.json()["id"] == b
    # undone once: a second undo is a clear 409
    assert_problem(client.post(f"/v1/merges/{merge['id']}/undo"), 409, "merge_undo_refused")
    with world.db.transaction() as s:
        types = [
            e.type
            for e in s.scalars(select(OutboxEvent).where(OutboxEvent.type.like("member.merge%")))
        ]
    assert types == ["member.merged", "member.merge_undone"]


def test_writes_to_the_merged_id_reach_the_survivor_and_block_undo(
    world: Any, client: Any, clock: Any
) -> None:
    a, b = two_members(world, client)
    merge = client.post("/v1/merges", json={"survivor_id": a, "merged_id": b}).json()
    r = client.post(f"/v1/members/{b}/adjustments", json={"points": 10, "reason": "服务补偿"})
    assert r.status_code == 201, r.text
    with world.db.transaction() as s:
        assert ledger.own_account(s, b).available == 0
    r = client.post(f"/v1/merges/{merge['id']}/undo")
    problem = assert_problem(r, 409, "merge_undo_refused")
    assert "points moved on the survivor's account" in problem["detail"]
    verify_clean(world.db)


def test_undo_refused_after_the_period(world: Any, client: Any, clock: Any) -> None:
    a, b = two_members(world, client)
    merge = client.post("/v1/merges", json={"survivor_id": a, "merged_id": b}).json()
    clock.advance(timedelta(days=7, seconds=1))
    problem = assert_problem(client.post(f"/v1/merges/{merge['id']}/undo"), 409)
    assert "undo period ended" in problem["detail"]


def test_refusals(world: Any, client: Any) -> None:
    a, b = two_members(world, client)
    assert_problem(
        client.post("/v1/merges", json={"survivor_id": a, "merged_id": a}), 422, "same_member"
    )
    assert_problem(client.post("/v1/merges", json={"survivor_id": a, "merged_id": 999_999}), 404)
    assert client.post("/v1/merges", json={"survivor_id": a, "merged_id": b}).status_code == 201
    problem = assert_problem(
        client.post("/v1/merges", json={"survivor_id": b, "merged_id": a}), 409, "merge_refused"
    )
    assert problem["conflicts"] == ["already_merged"]


def test_duplicate_candidates_listed_and_dismissed(world: Any, client: Any) -> None:
    ids = []
    for phone, name in (
        ("13900006001", "韩梅梅"),
        ("13900006002", " 韩梅梅 "),
        ("13900006003", "韩梅"),
    ):
        r = client.post(
            "/v1/members", json={"phone": phone, "name": name, "birthday": "1990-04-01"}
        )
        ids.append(r.json()["id"])
    with world.db.transaction() as s:
        assert merges.find_candidates(s) == 1
        assert merges.find_candidates(s) == 0  # known pairs are not proposed twice
    items = client.get("/v1/duplicate-candidates").json()["items"]
    assert [(x["member_a_id"], x["member_b_id"], x["reasons"]) for x in items] == [
        (ids[0], ids[1], ["name_birthday"])
    ]
    r = client.post(f"/v1/duplicate-candidates/{items[0]['id']}/dismiss")
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    assert client.get("/v1/duplicate-candidates").json()["items"] == []
    with world.db.transaction() as s:
        assert merges.find_candidates(s) == 0
    assert date(1990, 4, 1)  # birthdays compared decrypted, inside the job


HOLD_ORDERS = {
    "code": "hold-orders",
    "on": ["order"],
    "when": {"gte": {"member.orders.1d": 1}},
    "outcome": "hold",
    "reason": "测试：每笔订单人工审核",
}
WATCH = {  # shadow rules that make the controls count redemptions and devices per member
    "code": "watch",
    "when": {"any": [{"gt": {"member.redemptions.1d": 100}}, {"gt": {"device.members.1d": 50}}]},
    "outcome": "block",
    "reason": "测试：观察",
    "mode": "shadow",
}


def fraud_figures(db: Database, a: int, b: int) -> dict[str, Any]:
    """The fraud rows and per-member counters of ``a`` and ``b``, by member."""
    with db.transaction() as s:
        owner = {ledger.own_account(s, m).id: m for m in (a, b)}
        reviews = []
        for r in s.scalars(select(FraudReview).order_by(FraudReview.id)):
            lot = s.get(PointsLot, r.lot_id)
            assert lot is not None and lot.account_id == r.account_id
            reviews.append(
                (
                    r.id,
                    r.member_id,
                    owner[r.account_id],
                    r.points,
                    r.status,
                    lot.status,
                    lot.remaining,
                )
            )
        return {
            "reviews": reviews,
            "checks": sorted(s.execute(select(FraudCheck.id, FraudCheck.member_id)).tuples()),
            "counters": sorted(
                s.execute(
                    select(
                        FraudCounter.subject,
                        FraudCounter.kind,
                        FraudCounter.window,
                        FraudCounter.bucket,
                        FraudCounter.count,
                        FraudCounter.points,
                    ).where(FraudCounter.scope == "member")
                ).tuples()
            ),
            "devices": sorted(
                s.execute(select(FraudDeviceMember.member_id, FraudDeviceMember.day)).tuples()
            ),
            "freezes": sorted(
                s.execute(select(MemberFreeze.member_id, MemberFreeze.reason)).tuples()
            ),
            "usage": sorted(
                s.execute(
                    select(RewardUsage.member_id, RewardUsage.reward_id, RewardUsage.used)
                ).tuples()
            ),
        }


def test_merge_moves_fraud_rows_and_counters_and_undo_gives_them_back(
    world: Any, client: Any, clock: Any
) -> None:
    a, b = two_members(world, client)
    with world.db.transaction() as s:
        documents.publish(s, SYSTEM, fraud_config.KIND, {"rules": [HOLD_ORDERS, WATCH]}, note="t")
    for mid in (a, b):
        give = client.post(
            f"/v1/members/{mid}/adjustments", json={"points": 2000, "reason": "测试补偿"}
        )
        assert give.status_code == 201, give.text
        r = client.post(
            "/v1/redemptions", json={"member_id": mid, "reward": "americano", "device_id": "dev-1"}
        )
        assert r.status_code == 201, r.text
        r = client.post(
            "/v1/orders", json={**order_payload(f"f-{mid}", mid, paid=5_000), "device_id": "dev-1"}
        )
        assert r.status_code == 201, r.text
    r = client.put(f"/v1/fraud/frozen/{b}", json={"reason": "疑似盗号"})
    assert r.status_code == 200, r.text
    before = fraud_figures(world.db, a, b)
    assert [(x[1], x[2], x[4], x[5]) for x in before["reviews"]] == [
        (a, a, "pending", "pending"),
        (b, b, "pending", "pending"),
    ]
    assert {(x[0], x[1], x[2], x[4]) for x in before["counters"]} == {
        (str(m), k, "1d", 1) for m in (a, b) for k in ("orders", "redemptions")
    }
    assert [x[0] for x in before["devices"]] == sorted([a, b])
    assert before["freezes"] == [(b, "疑似盗号")]
    assert [(x[0], x[2]) for x in before["usage"]] == sorted([(a, 1), (b, 1)])

    clock.advance(timedelta(minutes=5))
    merge = client.post("/v1/merges", json={"survivor_id": a, "merged_id": b}).json()
    assert merge["status"] == "done"
    verify_clean(world.db)
    after = fraud_figures(world.db, a, b)
    # the review items, held lots and checks are the survivor's
    assert [(x[0], x[1], x[2], x[3], x[4], x[5], x[6]) for x in after["reviews"]] == [
        (x[0], a, a, x[3], "pending", "pending", x[6]) for x in before["reviews"]
    ]
    assert after["checks"] == [(cid, a) for cid, _m in before["checks"]]
    # counters add up: one member with two orders and two redemptions today, one device member
    counted = {(x[0], x[1]): (x[4], x[5]) for x in after["counters"]}
    assert set(counted) == {(str(a), "orders"), (str(a), "redemptions")}
    sums = {
        k: tuple(sum(x[i] for x in before["counters"] if x[1] == k) for i in (4, 5))
        for k in ("orders", "redemptions")
    }
    assert counted == {(str(a), k): v for k, v in sums.items()}
    assert [x[0] for x in after["devices"]] == [a]
    # the freeze follows the person: the survivor cannot redeem either
    assert after["freezes"] == [(a, "疑似盗号")]
    assert_problem(
        client.post("/v1/redemptions", json={"member_id": a, "reward": "upsize"}),
        409,
        "member_frozen",
    )
    assert [(x[0], x[2]) for x in after["usage"]] == [(a, 2)]

    clock.advance(timedelta(days=1))
    r = client.post(f"/v1/merges/{merge['id']}/undo")
    assert r.status_code == 200, r.text
    verify_clean(world.db)
    assert fraud_figures(world.db, a, b) == before
    # the review item of the merged member decides on the merged member's points again
    held = before["reviews"][1]

    def balances() -> dict[int, tuple[int, int]]:
        with world.db.transaction() as s:
            return {
                m: (ledger.own_account(s, m).available, ledger.own_account(s, m).pending)
                for m in (a, b)
            }

    was = balances()
    r = client.post(f"/v1/fraud/reviews/{held[0]}/decision", json={"decision": "approve"})
    assert r.status_code == 200, r.text
    assert balances() == {a: was[a], b: (was[b][0] + held[3], was[b][1] - held[3])}
