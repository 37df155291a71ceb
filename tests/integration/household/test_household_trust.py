"""Households: the main member withdraws a pending invitation; a member who holds points
of their own joins only with explicit consent to move them into the pool (a pair of
ledger entries, every lot with its expiry), never by default; a frozen member cannot move
points, a member owing points cannot join; the ledger verifies clean throughout."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from tests.itest import assert_problem, counts, new_member
from tests.support import order_payload

from loyalist.ledger import service as ledger
from loyalist.models import AuditLog, LedgerEntry, OutboxEvent, PointsLot


def _points(c: Any, mid: int, points: int) -> None:
    r = c.post(f"/v1/members/{mid}/adjustments", json={"points": points, "reason": "setup"})
    assert r.status_code == 201, r.text


def _verify(world: Any) -> None:
    with world.db.transaction() as s:
        _n, problems = ledger.verify(s)
        assert problems == []
        assert ledger.chain_problems(s) == {}


def _own(world: Any, mid: int) -> tuple[int, int, int]:
    with world.db.transaction() as s:
        a = ledger.own_account(s, mid)
        return a.available, a.pending, a.debt


def _lots(world: Any, mid: int) -> list[tuple[Any, ...]]:
    """The open lots of the account the member draws on, as (points, status, earned, expiry)."""
    with world.db.transaction() as s:
        acct = ledger.account_id_of(s, mid)
        return sorted(
            (lot.remaining, lot.status, lot.earned_at, str(lot.expires_at), lot.member_id)
            for lot in ledger.open_lots_of(s, acct)
        )


def _invite(c: Any, hid: int, mid: int) -> dict[str, Any]:
    r = c.post(f"/v1/households/{hid}/invitations", json={"member_id": mid})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_the_main_member_withdraws_a_pending_invitation(world: Any, client: Any) -> None:
    c = client
    main = new_member(c, "13800001001", home_store="sh1")
    kin = new_member(c, "13800001002", home_store="sh1")
    hid = c.post("/v1/households", json={"member_id": main}).json()["id"]
    inv = _invite(c, hid, kin)
    r = c.post(f"/v1/households/{hid}/invitations/{inv['id']}/withdraw")
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["status"]) == (inv["id"], "cancelled")
    # a replay answers the same; the invitee can no longer accept; it frees the room
    again = c.post(f"/v1/households/{hid}/invitations/{inv['id']}/withdraw")
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")
    before = counts(world.db, ["ledger_entry", "points_account_member"])
    assert_problem(
        c.post(f"/v1/households/invitations/{inv['id']}/accept"),
        409,
        "household_invitation_closed",
    )
    assert counts(world.db, ["ledger_entry", "points_account_member"]) == before
    assert c.get(f"/v1/members/{kin}/household").json()["invitations"] == []
    # the invitation of another household, an unknown one: 404; an accepted one: 409
    other = new_member(c, "13800001003", home_store="sh1")
    hid2 = c.post("/v1/households", json={"member_id": other}).json()["id"]
    assert_problem(
        c.post(f"/v1/households/{hid2}/invitations/{inv['id']}/withdraw"),
        404,
        "household_invitation_not_found",
    )
    assert_problem(c.post(f"/v1/households/{hid}/invitations/999999/withdraw"), 404)
    inv2 = _invite(c, hid, kin)
    assert c.post(f"/v1/households/invitations/{inv2['id']}/accept").status_code == 200
    assert_problem(
        c.post(f"/v1/households/{hid}/invitations/{inv2['id']}/withdraw"),
        409,
        "household_invitation_closed",
    )
    with world.db.transaction() as s:
        withdrawn = s.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.type == "household.invitation_withdrawn")
        ).all()
        audits = s.scalars(
            select(AuditLog.action).where(AuditLog.action == "household.withdraw")
        ).all()
    assert [(p["invitation_id"], p["member_id"]) for p in withdrawn] == [(inv["id"], kin)]
    assert audits == ["household.withdraw"]


def test_own_points_move_into_the_pool_only_with_consent(world: Any, client: Any) -> None:
    c = client
    main = new_member(c, "13800002001", home_store="sh1")
    rich = new_member(c, "13800002002", home_store="sh1")
    _points(c, main, 1000)
    _points(c, rich, 300)
    r = c.post("/v1/orders", json=order_payload("R-1", rich, paid=5_000))
    assert r.status_code == 201, r.text
    own = _own(world, rich)
    assert own[0] == 300 and own[1] > 0 and own[2] == 0  # available and pending points
    rich_lots = _lots(world, rich)
    main_lots = _lots(world, main)
    hid = c.post("/v1/households", json={"member_id": main}).json()["id"]
    inv = _invite(c, hid, rich)

    # without consent: refused with the points, nothing changed (twice: an explicit false)
    tables = ["ledger_entry", "points_lot", "points_account_member"]
    before = counts(world.db, tables)
    for body in (None, {"transfer_points": False}):
        r = c.post(f"/v1/households/invitations/{inv['id']}/accept", json=body)
        p = assert_problem(r, 409, "household_points_to_transfer")
        assert (p["available"], p["pending"], p["debt"]) == own
    assert counts(world.db, tables) == before
    assert _own(world, rich) == own
    assert_problem(
        c.post(f"/v1/households/invitations/{inv['id']}/accept", json={"transfer_points": 1}),
        422,
    )

    # with consent: every lot moves with its earning time and expiry, earned by the member
    r = c.post(f"/v1/households/invitations/{inv['id']}/accept", json={"transfer_points": True})
    assert (r.status_code, r.json()["status"]) == (200, "accepted"), r.text
    assert _own(world, rich) == (0, 0, 0)
    pool = c.get(f"/v1/households/{hid}").json()["pool"]
    assert (pool["available"], pool["pending"]) == (1000 + own[0], own[1])
    assert _lots(world, rich) == sorted(main_lots + rich_lots)
    with world.db.transaction() as s:
        kinds = s.execute(
            select(LedgerEntry.kind, LedgerEntry.member_id, LedgerEntry.delta_available)
            .where(LedgerEntry.kind.in_(("pool_join_out", "pool_join_in")))
            .order_by(LedgerEntry.id)
        ).all()
        joined = s.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.type == "household.joined")
        ).all()
        pool_lots = s.scalars(
            select(PointsLot.member_id).where(
                PointsLot.account_id == pool["account_id"], PointsLot.remaining > 0
            )
        ).all()
    assert [tuple(k) for k in kinds] == [
        ("pool_join_out", rich, -own[0]),
        ("pool_join_in", rich, own[0]),
    ]
    assert [p["points_transferred"] for p in joined] == [own[0] + own[1]]
    assert sorted(pool_lots) == sorted([main] + [rich] * len(rich_lots))
    # a replay of the acceptance moves nothing again
    again = c.post(f"/v1/households/invitations/{inv['id']}/accept", json={"transfer_points": True})
    assert again.status_code == 200
    assert counts(world.db, tables)["ledger_entry"] == before["ledger_entry"] + 2
    # leaving takes no points: what they brought stays in the pool
    assert c.post(f"/v1/households/{hid}/members/{rich}/leave").status_code == 200
    assert _own(world, rich) == (0, 0, 0)
    pool = c.get(f"/v1/households/{hid}").json()["pool"]
    assert (pool["available"], pool["pending"]) == (1000 + own[0], own[1])
    _verify(world)


def test_a_frozen_member_cannot_move_points_and_debt_cannot_join(world: Any, client: Any) -> None:
    c = client
    main = new_member(c, "13800003001", home_store="sh1")
    frozen = new_member(c, "13800003002", home_store="sh1")
    owing = new_member(c, "13800003003", home_store="sh1")
    _points(c, frozen, 200)
    hid = c.post("/v1/households", json={"member_id": main}).json()["id"]
    r = c.put(f"/v1/fraud/frozen/{frozen}", json={"reason": "疑似盗号"})
    assert r.status_code == 200, r.text
    inv = _invite(c, hid, frozen)
    tables = ["ledger_entry", "points_lot", "points_account_member"]
    before = counts(world.db, tables)
    assert_problem(
        c.post(f"/v1/households/invitations/{inv['id']}/accept", json={"transfer_points": True}),
        409,
        "member_frozen",
    )
    assert counts(world.db, tables) == before
    assert _own(world, frozen) == (200, 0, 0)
    # a member who owes points (a return clawed back more than they had): cannot join
    _points(c, owing, 100)
    with world.db.transaction() as s:
        acct = ledger.lock(s, owing, "/")
        ledger.clawback(
            s,
            acct,
            150,
            ledger.Cause(source_type="test", actor="test", reason="return after spending"),
            lot=None,
            carry_debt=True,
            dedupe_key="test:owing",
        )
    assert _own(world, owing)[2] == 50
    inv2 = _invite(c, hid, owing)
    before = counts(world.db, tables)
    assert_problem(
        c.post(f"/v1/households/invitations/{inv2['id']}/accept", json={"transfer_points": True}),
        409,
        "points_account_not_empty",
    )
    assert counts(world.db, tables) == before
    _verify(world)
