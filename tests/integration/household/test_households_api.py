"""Households (家庭账户) through the API: invite by phone or id, accept, decline, expiry, room,
permission to spend, who earned what, leaving (no points move), dissolving, the tier
qualifying together, and the ledger verifying clean throughout."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from tests.itest import apply_document, assert_problem, demo_document, new_member
from tests.support import order_payload

from loyalist.household import service as households
from loyalist.household import tasks as household_tasks
from loyalist.jobs import registry
from loyalist.jobs.registry import JobContext
from loyalist.ledger import service as ledger
from loyalist.models import LedgerEntry, OutboxEvent


def _points(c: Any, mid: int, points: int) -> None:
    r = c.post(f"/v1/members/{mid}/adjustments", json={"points": points, "reason": "setup"})
    assert r.status_code == 201, r.text


def _balance(c: Any, mid: int) -> int:
    r = c.get(f"/v1/members/{mid}")
    assert r.status_code == 200, r.text
    return int(r.json()["points"]["available"])


def _verify(world: Any) -> None:
    with world.db.transaction() as s:
        _n, problems = ledger.verify(s)
        assert problems == []
        assert ledger.chain_problems(s) == {}


def _events(world: Any) -> list[tuple[str, dict[str, Any]]]:
    with world.db.transaction() as s:
        rows = s.execute(
            select(OutboxEvent.type, OutboxEvent.payload)
            .where(OutboxEvent.type.like("household.%"))
            .order_by(OutboxEvent.id)
        ).all()
    return [(t, dict(p)) for t, p in rows]


def _household(c: Any, main: int) -> dict[str, Any]:
    r = c.post("/v1/households", json={"member_id": main})
    assert r.status_code in (200, 201), r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_household_end_to_end(world: Any, client: Any, clock: Any) -> None:
    c = client
    main = new_member(c, "13800000001", home_store="sh1")
    kin = new_member(c, "13800000002", home_store="sh1")
    _points(c, main, 5000)

    r = c.post("/v1/households", json={"member_id": main})
    assert r.status_code == 201, r.text
    h = r.json()
    hid = h["id"]
    assert (h["owner_member_id"], h["status"], h["max_members"]) == (main, "active", 3)
    assert h["pool"]["available"] == 5000
    assert [(m["member_id"], m["role"]) for m in h["members"]] == [(main, "main")]
    assert c.post("/v1/households", json={"member_id": main}).status_code == 200  # a replay

    # Invited by phone, without permission to spend; a repeat answers the same invitation.
    r = c.post(f"/v1/households/{hid}/invitations", json={"phone": "138 0000 0002"})
    assert r.status_code == 201, r.text
    inv = r.json()
    assert (inv["member_id"], inv["status"], inv["can_spend"]) == (kin, "pending", False)
    again = c.post(f"/v1/households/{hid}/invitations", json={"member_id": kin})
    assert (again.status_code, again.json()["id"]) == (200, inv["id"])
    mine = c.get(f"/v1/members/{kin}/household").json()
    assert mine["household"] is None and [i["id"] for i in mine["invitations"]] == [inv["id"]]

    r = c.post(f"/v1/households/invitations/{inv['id']}/accept")
    assert (r.status_code, r.json()["status"]) == (200, "accepted"), r.text
    assert c.post(f"/v1/households/invitations/{inv['id']}/accept").status_code == 200
    assert _balance(c, kin) == 5000  # the kin draws on the pool

    # Without permission: no redemption, nothing written. Earning needs none.
    assert_problem(
        c.post("/v1/redemptions", json={"member_id": kin, "reward": "americano"}),
        409,
        "spend_not_permitted",
    )
    r = c.post("/v1/orders", json=order_payload("K-1", kin, paid=8800))
    assert r.status_code == 201, r.text
    earned = r.json()["points"]["earned"]
    assert earned > 0
    r = c.put(f"/v1/households/{hid}/members/{kin}/permission", json={"can_spend": True})
    assert r.status_code == 200, r.text
    r = c.post("/v1/redemptions", json={"member_id": kin, "reward": "americano"})
    assert r.status_code == 201, r.text
    assert _balance(c, main) == 5000 - 1500

    h = c.get(f"/v1/households/{hid}").json()
    by = {m["member_id"]: m for m in h["members"]}
    assert (by[kin]["earned"], by[kin]["spent"], by[kin]["can_spend"]) == (earned, 1500, True)
    assert (by[main]["earned"], by[main]["spent"]) == (0, 0)
    assert (h["pool"]["available"], h["pool"]["pending"]) == (3500, earned)
    # The ledger names the member who caused each entry of the pool.
    entries = c.get(f"/v1/members/{main}/ledger").json()["items"]
    assert {(e["kind"], e["member_id"]) for e in entries} >= {
        ("adjust", main),
        ("earn", kin),
        ("redeem", kin),
    }

    # Leaving takes no points: the pool keeps the kin's earnings, the history stays.
    r = c.post(f"/v1/households/{hid}/members/{kin}/leave")
    assert r.status_code == 200, r.text
    left = {m["member_id"]: m for m in r.json()["members"]}[kin]
    assert left["left_at"] is not None and left["earned"] == earned
    assert r.json()["pool"] == {
        "account_id": h["pool"]["account_id"],
        "available": 3500,
        "pending": earned,
        "debt": 0,
    }
    assert _balance(c, kin) == 0
    assert c.post(f"/v1/households/{hid}/members/{kin}/leave").status_code == 200  # replay
    assert_problem(
        c.post(f"/v1/households/{hid}/members/{main}/leave"), 409, "household_main_member_stays"
    )
    _verify(world)

    # Dissolving: members leave, open invitations are cancelled, the pool stays the main's.
    r = c.post(f"/v1/households/{hid}/invitations", json={"member_id": kin, "can_spend": True})
    assert r.status_code == 201, r.text
    assert c.post(f"/v1/households/invitations/{r.json()['id']}/accept").status_code == 200
    other = new_member(c, "13800000003", home_store="sh1")
    pending = c.post(f"/v1/households/{hid}/invitations", json={"member_id": other}).json()
    r = c.post(f"/v1/households/{hid}/dissolve")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "dissolved"
    assert {i["id"]: i["status"] for i in r.json()["invitations"]}[pending["id"]] == "cancelled"
    assert _balance(c, kin) == 0 and _balance(c, main) == 3500
    assert c.post(f"/v1/households/{hid}/dissolve").status_code == 200  # replay
    assert_problem(
        c.post(f"/v1/households/invitations/{pending['id']}/accept"), 409, "household_dissolved"
    )
    assert c.get(f"/v1/members/{kin}/household").json()["household"] is None
    _verify(world)
    assert [t for t, _ in _events(world)] == [
        "household.created",
        "household.invited",
        "household.joined",
        "household.permission_changed",
        "household.left",
        "household.invited",
        "household.joined",
        "household.invited",
        "household.left",
        "household.dissolved",
    ]
    with world.db.transaction() as s:  # every entry the kin caused stays theirs
        kinds = s.scalars(select(LedgerEntry.kind).where(LedgerEntry.member_id == kin)).all()
    assert sorted(kinds) == ["earn", "redeem"]


def test_room_decline_expiry_and_refusals(world: Any, client: Any, clock: Any) -> None:
    c = client
    main = new_member(c, "13800000011", home_store="sh1")
    others = [new_member(c, f"1380000002{i}", home_store="sh1") for i in range(5)]
    hid = _household(c, main)["id"]
    invs = [
        c.post(f"/v1/households/{hid}/invitations", json={"member_id": m}).json()
        for m in others[:3]
    ]
    # Three open invitations fill a household of three (the default max_members).
    assert_problem(
        c.post(f"/v1/households/{hid}/invitations", json={"member_id": others[3]}),
        409,
        "household_full",
        "member_id",
    )
    r = c.post(f"/v1/households/invitations/{invs[0]['id']}/decline")
    assert (r.status_code, r.json()["status"]) == (200, "declined")
    assert_problem(
        c.post(f"/v1/households/invitations/{invs[0]['id']}/accept"),
        409,
        "household_invitation_closed",
    )
    # After the invitation days (7 by default) an invitation can no longer be accepted.
    clock.advance(timedelta(days=7, seconds=1))
    assert_problem(
        c.post(f"/v1/households/invitations/{invs[1]['id']}/accept"),
        409,
        "household_invitation_closed",
    )
    h = c.get(f"/v1/households/{hid}").json()
    assert [i["status"] for i in h["invitations"]] == ["declined", "expired", "expired"]
    # the hourly job writes them down (household.invitation_expired)
    assert (household_tasks.EXPIRE_INVITATIONS, "5 * * * *") in {
        (x.kind, x.cron) for x in registry.schedules()
    }
    with world.db.transaction() as s:
        household_tasks.expire_invitations(
            JobContext(s, 0, household_tasks.EXPIRE_INVITATIONS, {}, 1, clock.now())
        )
    with world.db.transaction() as s:
        assert households.expire_due(s, clock.now()) == 0  # nothing left for the next run
    assert [t for t, _ in _events(world)][-2:] == ["household.invitation_expired"] * 2
    # Expired invitations free the room; the same member may be invited again.
    r = c.post(f"/v1/households/{hid}/invitations", json={"member_id": others[1]})
    assert r.status_code == 201, r.text

    # A member holding points of their own joins only by consenting to move them into the
    # pool (test_household_trust.py); an invitee in another household cannot join either.
    rich = new_member(c, "13800000031", home_store="sh1")
    _points(c, rich, 100)
    inv = c.post(f"/v1/households/{hid}/invitations", json={"member_id": rich}).json()
    assert_problem(
        c.post(f"/v1/households/invitations/{inv['id']}/accept"),
        409,
        "household_points_to_transfer",
    )
    assert_problem(
        c.post(f"/v1/households/{hid}/invitations", json={"member_id": main}),
        409,
        "household_not_invitable",
    )
    assert_problem(
        c.post(f"/v1/households/{hid}/invitations", json={"phone": "13999999999"}),
        404,
        field="phone",
    )
    assert_problem(
        c.post(f"/v1/households/{hid}/invitations", json={"member_id": 1, "phone": "1"}), 422
    )
    joined = c.post(f"/v1/households/invitations/{r.json()['id']}/accept")
    assert joined.status_code == 200, joined.text
    assert_problem(
        c.post("/v1/households", json={"member_id": others[1]}),
        409,
        "household_membership_conflict",
    )
    assert_problem(c.get("/v1/households/999999"), 404, "household_not_found")
    page = c.get("/v1/households", params={"status": "active"}).json()
    assert [(x["id"], x["members"]) for x in page["items"]] == [(hid, 2)]
    assert c.get("/v1/households", params={"member_id": others[1]}).json()["items"][0]["id"] == hid
    _verify(world)


def test_a_store_key_sees_only_households_in_its_scope(world: Any, client: Any) -> None:
    from tests.support import api_client

    main = new_member(client, "13800000041", home_store="sz1")
    hid = _household(client, main)["id"]
    with api_client(world.db, world.keys["sh1"]) as sh1:
        assert_problem(sh1.get(f"/v1/households/{hid}"), 404, "household_not_found")
        assert sh1.get("/v1/households").json()["items"] == []


def test_the_household_qualifies_together_when_the_programme_says_so(
    world: Any, client: Any
) -> None:
    c = client
    doc = demo_document()
    doc["households"] = {"max_members": 2, "household_qualifies_together": True}
    apply_document(world.db, doc)
    main = new_member(c, "13800000051", home_store="sh1")
    kin = new_member(c, "13800000052", home_store="sh1")
    h = _household(c, main)
    assert (h["max_members"], h["qualifies_together"]) == (2, True)
    inv = c.post(f"/v1/households/{h['id']}/invitations", json={"member_id": kin}).json()
    assert c.post(f"/v1/households/invitations/{inv['id']}/accept").status_code == 200
    # ¥600 by the main member, ¥500 by the kin: together past silver (¥1,000).
    assert c.post("/v1/orders", json=order_payload("Q-1", main, paid=60_000)).status_code == 201
    r = c.post("/v1/orders", json=order_payload("Q-2", kin, paid=50_000))
    assert r.status_code == 201, r.text
    kin_view = c.get(f"/v1/members/{kin}").json()
    assert kin_view["tier"]["code"] == "silver", kin_view["tier"]
    main_view = c.get(f"/v1/members/{main}").json()
    assert main_view["tier"]["code"] == "base"  # each member keeps their own tier
    # Without the setting each member's own figure counts.
    doc["households"] = {"household_qualifies_together": False}
    apply_document(world.db, doc)
    other = new_member(c, "13800000053", home_store="sh1")
    inv = c.post(f"/v1/households/{h['id']}/invitations", json={"member_id": other}).json()
    assert c.post(f"/v1/households/invitations/{inv['id']}/accept").status_code == 200
    assert c.post("/v1/orders", json=order_payload("Q-3", other, paid=50_000)).status_code == 201
    assert c.get(f"/v1/members/{other}").json()["tier"]["code"] == "base"
