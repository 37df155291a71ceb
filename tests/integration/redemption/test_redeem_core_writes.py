"""A redemption writes its entry, allocations, lots, redemption row and audit row with Core
statements and its two events in one batch, without the ORM's unit of work (speed, issue
11, branch redeemlean): its answer is the one the response model gives for the row
written, byte for byte; the chain verifies; two redemptions in one transaction, and a
redemption rolled back with its savepoint, leave lots, balances and chain right."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import func, select
from tests.integration.ledger.test_ledger_core_credit import assert_whole, flushed_new
from tests.itest import new_member

from loyalist.kit.actor import SYSTEM
from loyalist.ledger import service as ledger
from loyalist.models import LotAllocation, PointsLot, Redemption
from loyalist.reward import service as rewards
from loyalist.reward.schemas import RedemptionCreate

UPSIZE = RedemptionCreate(member_id=1, reward="upsize")  # the demo's 500-point reward


def account_of(world: Any, mid: int) -> int:
    return int(world.db.run(lambda s: ledger.account_id_of(s, mid)))


def lot_of(s: Any, account_id: int) -> PointsLot:
    lot = s.scalar(select(PointsLot).where(PointsLot.account_id == account_id))
    assert lot is not None
    return lot


def give(client: Any, mid: int, points: int) -> None:
    r = client.post(f"/v1/members/{mid}/adjustments", json={"points": points, "reason": "setup"})
    assert r.status_code == 201, r.text


def test_a_redemption_flushes_no_row_and_answers_the_row_written(client: Any, world: Any) -> None:
    mid = new_member(client, "13800000201")
    give(client, mid, 3000)
    body = {"member_id": mid, "reward": "upsize"}
    # the member's first redemption of it counts their use in a new row: a second one
    warm = client.post("/v1/redemptions", json=body, headers={"Idempotency-Key": "k-warm"})
    assert warm.status_code == 201, warm.text
    with flushed_new() as seen:
        r = client.post("/v1/redemptions", json=body, headers={"Idempotency-Key": "k-core"})
    assert r.status_code == 201, r.text
    assert seen == []  # entry, allocation, lot, redemption, audit, events: none by the ORM
    with world.db.transaction() as s:
        row = s.get(Redemption, r.json()["id"])
        assert row is not None
        model = rewards.redemption_out(s, row).model_dump(mode="json", by_alias=True)
        assert s.scalar(select(func.count()).select_from(LotAllocation)) == 2
    assert r.content == orjson.dumps(model)
    again = client.post("/v1/redemptions", json=body, headers={"Idempotency-Key": "k-core"})
    assert (again.status_code, again.content) == (201, r.content)
    assert_whole(world.db, account_of(world, mid))


def test_two_redemptions_in_one_transaction_take_the_lot_in_turn(client: Any, world: Any) -> None:
    mid = new_member(client, "13800000202")
    give(client, mid, 1200)
    account_id = account_of(world, mid)
    data = UPSIZE.model_copy(update={"member_id": mid})
    with world.db.transaction() as s:
        lot = lot_of(s, account_id)  # held: the session keeps this object for the lot
        first = rewards.redeem(s, SYSTEM, data)
        assert (lot.remaining, lot.status) == (700, "available")
        second = rewards.redeem(s, SYSTEM, data)
        assert (lot.remaining, lot.status) == (200, "available")
    assert first.entry_id != second.entry_id
    with world.db.transaction() as s:
        acct = ledger.get_account(s, mid)
        assert acct.available == 200
        assert lot_of(s, account_id).remaining == 200
    assert_whole(world.db, account_id)


def test_a_redemption_rolled_back_with_its_savepoint_leaves_the_lots_as_they_were(
    client: Any, world: Any
) -> None:
    mid = new_member(client, "13800000203")
    give(client, mid, 500)
    account_id = account_of(world, mid)
    data = UPSIZE.model_copy(update={"member_id": mid})
    with world.db.transaction() as s:
        lot = lot_of(s, account_id)  # held across the savepoint
        savepoint = s.begin_nested()
        gone = rewards.redeem(s, SYSTEM, data)  # takes the whole lot: closes it
        assert (lot.remaining, lot.status) == (0, "closed")
        savepoint.rollback()
        assert s.get(Redemption, gone.id) is None
        assert (lot.remaining, lot.status) == (500, "available")
        kept = rewards.redeem(s, SYSTEM, data)  # the same points, once
    with world.db.transaction() as s:
        assert ledger.get_account(s, mid).available == 0
        assert s.get(Redemption, kept.id) is not None
        lot = lot_of(s, account_id)
        assert (lot.remaining, lot.status) == (0, "closed")
    assert_whole(world.db, account_of(world, mid))
