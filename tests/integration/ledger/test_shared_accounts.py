"""Shared points accounts: several members draw on one pool.

Any member of an account earns into it and every entry keeps the member who caused it;
spending needs the membership's permission; leaving takes no points and keeps the
history; a correction (redemption cancelled, order returned) goes back to the account the
original entry belongs to, even after the member left; refusals write nothing; the
member-facing balance is the account's; activation and expiry run per account.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from tests.conftest import BACKEND
from tests.itest import apply_document, assert_problem, counts, demo_document, new_member
from tests.support import order_payload

from loyalist.jobs import service as jobs
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.ledger.errors import (
    AccountNotEmpty,
    AccountNotFound,
    AccountNotShareable,
    MembershipNotFound,
)
from loyalist.models import LedgerEntry, OutboxEvent, PointsAccount, PointsLot

# clock fixture: 2026-06-10T04:00Z (12:00 Wednesday in Shanghai)
TUESDAY = "2026-06-09T11:00:00+08:00"
LEDGER_TABLES = ["ledger_entry", "points_lot", "lot_allocation", "points_account"]
MEMBERSHIP_TABLES = ["points_account_member", *LEDGER_TABLES]


@pytest.fixture
def family(world: Any, client: Any) -> tuple[int, int, int]:
    """Points spendable at once, one-month expiry, no campaigns; three members."""
    doc = demo_document()
    doc["points"]["pending_days"] = 0
    doc["points"]["expiry"] = {"kind": "rolling_months", "months": 1}
    doc["earning"]["campaigns"] = []
    doc["earning"]["rules"] = []
    doc["rewards"] = [{"code": "ten", "name": "Ten points", "points": 10}]
    assert apply_document(world.db, doc) == 2
    diverge_account_ids(world.db, new_member(client, "13900000009"))
    owner = new_member(client, "13900000001")
    a = new_member(client, "13900000002")
    b = new_member(client, "13900000003")
    return owner, a, b


def diverge_account_ids(db: Database, member_id: int) -> None:
    """Move the first account to id 1000 so later account ids differ from member ids (a
    test that mixed the two up would fail)."""
    with db.engine.begin() as conn:
        old = conn.execute(
            text("SELECT id FROM points_account WHERE owner_member_id = :m"), {"m": member_id}
        ).scalar_one()
        conn.execute(text("DELETE FROM points_account_member WHERE account_id = :a"), {"a": old})
        conn.execute(text("UPDATE points_account SET id = 1000 WHERE id = :a"), {"a": old})
        conn.execute(
            text(
                "INSERT INTO points_account_member (account_id, member_id, role, can_spend, "
                "joined_at) SELECT 1000, owner_member_id, 'owner', :t, created_at "
                "FROM points_account WHERE id = 1000"
            ),
            {"t": True},
        )
        if BACKEND == "postgres":
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('points_account', 'id'), 1000)")
            )


def account_of(db: Database, mid: int) -> int:
    with db.transaction() as s:
        return ledger.account_id_of(s, mid)


def attach(db: Database, account_id: int, mid: int, *, can_spend: bool = False) -> None:
    with db.transaction() as s:
        ledger.attach(s, account_id, mid, can_spend=can_spend, actor="test")


def detach(db: Database, mid: int) -> None:
    with db.transaction() as s:
        ledger.detach(s, mid, actor="test")


def balance(client: Any, mid: int) -> tuple[int, int, int]:
    r = client.get(f"/v1/members/{mid}")
    assert r.status_code == 200, r.text
    p = r.json()["points"]
    return p["available"], p["pending"], p["debt"]


def give(client: Any, mid: int, points: int) -> None:
    r = client.post(f"/v1/members/{mid}/adjustments", json={"points": points, "reason": "setup"})
    assert r.status_code == 201, r.text


def buy(client: Any, ext: str, mid: int, yuan: int, **kw: Any) -> dict[str, Any]:
    r = client.post(
        "/v1/orders", json=order_payload(ext, mid, paid=yuan * 100, occurred_at=TUESDAY, **kw)
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def entries_of(db: Database, account_id: int) -> list[tuple[str, int, int]]:
    """(kind, causing member, Δavailable) of the account's entries, oldest first."""
    with db.transaction() as s:
        return [
            (e.kind, e.member_id, e.delta_available)
            for e in s.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.account_id == account_id)
                .order_by(LedgerEntry.id)
            )
        ]


def verify_clean(db: Database) -> None:
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
    assert problems == []


def test_every_member_starts_on_their_own_account(world: Any, family: Any) -> None:
    owner, a, b = family
    with world.db.transaction() as s:
        for mid in family:
            acct = ledger.get_account(s, mid)
            assert acct.owner_member_id == mid
            assert ledger.own_account(s, mid).id == acct.id
            (m,) = ledger.members_of(s, acct.id)
            assert (m.member_id, m.role, m.can_spend, m.left_at) == (mid, "owner", True, None)
    ids = [account_of(world.db, m) for m in (owner, a, b)]
    assert len(set(ids)) == 3 and not set(ids) & {owner, a, b}  # account ids are not member ids


def test_members_earn_into_one_pool_and_each_entry_keeps_its_member(
    world: Any, client: Any, family: Any
) -> None:
    owner, a, b = family
    pool = account_of(world.db, owner)
    give(client, owner, 100)
    attach(world.db, pool, a)
    attach(world.db, pool, b, can_spend=True)
    buy(client, "a-1", a, 50)
    buy(client, "b-1", b, 30)

    # Every member of the pool sees the pool's balance.
    assert balance(client, owner) == balance(client, a) == balance(client, b) == (180, 0, 0)
    assert entries_of(world.db, pool) == [("adjust", owner, 100), ("earn", a, 50), ("earn", b, 30)]
    with world.db.transaction() as s:
        lots = s.scalars(select(PointsLot).where(PointsLot.account_id == pool)).all()
        assert sorted((x.member_id, x.points) for x in lots) == [(owner, 100), (a, 50), (b, 30)]
        assert s.get(PointsAccount, pool).lifetime_earned == 80  # type: ignore[union-attr]
        roles = [(m.member_id, m.role, m.can_spend) for m in ledger.members_of(s, pool)]
        assert roles == [(owner, "owner", True), (a, "member", False), (b, "member", True)]
        # The earn events name the member who earned and the pool's balance.
        earned = [
            (e.member_id, e.payload["account_id"], e.payload["available"])
            for e in s.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.type == "points.earned")
                .order_by(OutboxEvent.id)
            )
        ]
        assert earned[-2:] == [(a, pool, 150), (b, pool, 180)]
    # The member's entry list is the pool's, each naming its member.
    r = client.get(f"/v1/members/{a}/ledger")
    assert r.status_code == 200, r.text
    assert [(x["kind"], x["member_id"], x["account_id"]) for x in r.json()["items"]] == [
        ("earn", b, pool),
        ("earn", a, pool),
        ("adjust", owner, pool),
    ]
    verify_clean(world.db)


def test_a_cap_per_member_counts_what_the_member_earned_not_the_pool(
    world: Any, client: Any, family: Any
) -> None:
    owner, a, _b = family
    doc = demo_document()
    doc["points"]["pending_days"] = 0
    doc["earning"]["campaigns"] = []
    doc["earning"]["rules"] = []
    doc["earning"]["caps"] = {"per_member": 100}
    doc["rewards"] = [{"code": "ten", "name": "Ten points", "points": 10}]
    assert apply_document(world.db, doc) == 3
    pool = account_of(world.db, owner)
    assert buy(client, "o-1", owner, 80)["points"]["earned"] == 80
    attach(world.db, pool, a)
    assert buy(client, "a-1", a, 50)["points"]["earned"] == 50  # not 100 - 80
    assert buy(client, "a-2", a, 60)["points"]["earned"] == 50  # 100 - 50
    assert buy(client, "o-2", owner, 60)["points"]["earned"] == 20  # 100 - 80
    detach(world.db, a)
    assert buy(client, "a-3", a, 10)["points"]["earned"] == 0  # still capped after leaving
    assert balance(client, owner) == (200, 0, 0)
    verify_clean(world.db)


def test_spending_a_shared_account_needs_permission(world: Any, client: Any, family: Any) -> None:
    owner, a, b = family
    pool = account_of(world.db, owner)
    give(client, owner, 100)
    attach(world.db, pool, a)
    attach(world.db, pool, b, can_spend=True)

    before = counts(world.db, [*LEDGER_TABLES, "redemption", "outbox_event"])
    r = client.post("/v1/redemptions", json={"member_id": a, "reward": "ten"})
    assert_problem(r, 409, "spend_not_permitted")
    r = client.post("/v1/orders", json=order_payload("a-pay", a, paid=1000, points_paid=10))
    assert_problem(r, 409, "spend_not_permitted")
    assert counts(world.db, [*LEDGER_TABLES, "redemption", "outbox_event"]) == before

    r = client.post("/v1/redemptions", json={"member_id": b, "reward": "ten"})
    assert r.status_code == 201, r.text
    assert balance(client, owner) == (90, 0, 0)
    with world.db.transaction() as s:
        ledger.set_can_spend(s, pool, a, True)
    r = client.post("/v1/redemptions", json={"member_id": a, "reward": "ten"})
    assert r.status_code == 201, r.text
    with world.db.transaction() as s:
        ledger.set_can_spend(s, pool, a, False)
    r = client.post("/v1/redemptions", json={"member_id": a, "reward": "ten"})
    assert_problem(r, 409, "spend_not_permitted")
    assert balance(client, a) == (80, 0, 0)
    assert entries_of(world.db, pool)[1:] == [("redeem", b, -10), ("redeem", a, -10)]
    # A staff correction on a member of the pool is not spending: it needs no permission.
    r = client.post(f"/v1/members/{a}/adjustments", json={"points": -5, "reason": "fix"})
    assert r.status_code == 201, r.text
    assert balance(client, owner) == (75, 0, 0)
    with world.db.transaction() as s, pytest.raises(AccountNotShareable):
        ledger.set_can_spend(s, pool, owner, False)
    with world.db.transaction() as s, pytest.raises(MembershipNotFound):
        ledger.set_can_spend(s, pool, 999_999, True)
    verify_clean(world.db)


def test_leaving_takes_no_points_and_keeps_history(world: Any, client: Any, family: Any) -> None:
    owner, a, _b = family
    pool = account_of(world.db, owner)
    own_a = account_of(world.db, a)
    attach(world.db, pool, a, can_spend=True)
    buy(client, "a-1", a, 50)
    detach(world.db, a)

    assert balance(client, a) == (0, 0, 0)
    assert balance(client, owner) == (50, 0, 0)
    assert account_of(world.db, a) == own_a
    assert entries_of(world.db, pool) == [("earn", a, 50)]  # history stays, with its member
    with world.db.transaction() as s:
        history = [
            (m.account_id, m.role, m.left_at is None)
            for m in ledger.members_of(s, pool, include_former=True)
        ]
        assert history == [(pool, "owner", True), (pool, "member", False)]
        assert [m.member_id for m in ledger.members_of(s, pool)] == [owner]
    # Earning after leaving goes to the member's own account again.
    buy(client, "a-2", a, 20)
    assert balance(client, a) == (20, 0, 0)
    assert balance(client, owner) == (50, 0, 0)
    assert entries_of(world.db, own_a) == [("earn", a, 20)]
    # Leaving twice, or the owner "leaving" their own account, changes nothing.
    before = counts(world.db, MEMBERSHIP_TABLES)
    detach(world.db, a)
    detach(world.db, owner)
    assert counts(world.db, MEMBERSHIP_TABLES) == before
    # ...and a member who left may join again (with an empty own account).
    r = client.post("/v1/redemptions", json={"member_id": a, "reward": "ten"})
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/members/{a}/adjustments", json={"points": -10, "reason": "empty"})
    assert r.status_code == 201, r.text
    attach(world.db, pool, a)
    assert balance(client, a) == (50, 0, 0)
    verify_clean(world.db)


def test_corrections_go_to_the_account_of_the_original_entry(
    world: Any, client: Any, family: Any
) -> None:
    owner, a, b = family
    pool = account_of(world.db, owner)
    give(client, owner, 100)
    attach(world.db, pool, a)
    attach(world.db, pool, b, can_spend=True)
    order = buy(client, "a-1", a, 50)
    r = client.post("/v1/redemptions", json={"member_id": b, "reward": "ten"})
    assert r.status_code == 201, r.text
    redemption = r.json()["id"]
    detach(world.db, a)
    detach(world.db, b)
    assert balance(client, owner) == (140, 0, 0)

    r = client.post(f"/v1/redemptions/{redemption}/cancel", json={"reason": "changed mind"})
    assert r.status_code == 200, r.text
    r = client.post(f"/v1/orders/{order['id']}/returns", json={"return_id": "ret-1", "full": True})
    assert r.status_code == 201, r.text
    assert balance(client, owner) == (100, 0, 0)  # +10 restored, -50 clawed back
    assert balance(client, a) == balance(client, b) == (0, 0, 0)
    assert entries_of(world.db, pool)[-2:] == [("reversal", b, 10), ("clawback", a, -50)]
    verify_clean(world.db)


def test_refusals_write_nothing(world: Any, client: Any, family: Any) -> None:
    owner, a, b = family
    pool = account_of(world.db, owner)
    own_b = account_of(world.db, b)
    give(client, a, 10)
    before = counts(world.db, MEMBERSHIP_TABLES)
    with world.db.transaction() as s, pytest.raises(AccountNotEmpty) as exc:
        ledger.attach(s, pool, a, can_spend=False, actor="test")
    assert exc.value.extra == {"available": 10, "pending": 0, "debt": 0}
    with world.db.transaction() as s, pytest.raises(AccountNotFound):
        ledger.attach(s, 999_999, b, can_spend=False, actor="test")
    assert counts(world.db, MEMBERSHIP_TABLES) == before

    attach(world.db, pool, b)
    before = counts(world.db, MEMBERSHIP_TABLES)
    attach(world.db, pool, b, can_spend=True)  # a replay: nothing changes, not even the flag
    with world.db.transaction() as s:
        assert [m.can_spend for m in ledger.members_of(s, pool)] == [True, False]
    refusals: list[tuple[int, int]] = [
        (account_of(world.db, a), b),  # b already draws on the pool
        (own_b, a),  # b's own account: its owner is away, nobody can join it
        (account_of(world.db, a), owner),  # the owner's account hosts b: the owner stays
    ]
    for target, mid in refusals:
        with world.db.transaction() as s, pytest.raises(AccountNotShareable):
            ledger.attach(s, target, mid, can_spend=False, actor="test")
    assert counts(world.db, MEMBERSHIP_TABLES) == before
    verify_clean(world.db)


def test_expiry_runs_per_account_and_names_the_member_who_earned(
    world: Any, client: Any, family: Any, clock: Any
) -> None:
    owner, a, _b = family
    pool = account_of(world.db, owner)
    attach(world.db, pool, a)
    buy(client, "a-1", a, 50)
    detach(world.db, a)  # the pool's lots expire even though their earner left
    clock.advance(timedelta(days=40))
    (report,) = jobs.run_due(world.db, only="expire")
    assert (report.members, report.points) == (1, 50)
    assert entries_of(world.db, pool) == [("earn", a, 50), ("expire", a, -50)]
    assert balance(client, owner) == (0, 0, 0)
    with world.db.transaction() as s:
        expired = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "points.expired")).one()
        assert (expired.member_id, expired.payload["account_id"]) == (a, pool)
    verify_clean(world.db)


def test_verify_names_the_account_and_a_member_without_one(world: Any, family: Any) -> None:
    owner, a, _b = family
    with world.db.transaction() as s:
        m = ledger.membership(s, a)
        assert m is not None
        m.left_at = m.joined_at  # behind the ledger's back: a draws on nothing
    with world.db.transaction() as s:
        checked, problems = ledger.verify(s)
    assert checked == 4
    assert [(p.account_id, p.problem) for p in problems] == [(0, f"member {a} draws on no account")]
    with world.db.transaction() as s, pytest.raises(LookupError):
        ledger.lock(s, a, "/")  # a member without an account has nothing to lock
    with world.db.transaction() as s:
        assert ledger.get_account(s, owner).owner_member_id == owner
