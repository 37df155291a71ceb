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
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.merge import service as merges
from loyalist.models import (
    CouponCode,
    Member,
    MemberIdentity,
    MemberTag,
    Order,
    OutboxEvent,
    PointsLot,
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
