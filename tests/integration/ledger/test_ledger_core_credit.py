"""The common credit (the earn path's) writes its entry and its lot with Core INSERTs,
hashed at once, without the ORM's unit of work (speed, issue 11): its chain verifies,
later entries of the transaction chain on it, a rolled-back savepoint takes it away
entirely, and an account whose entries of the transaction are not all sealed yet is
credited the ORM way (a flush hashes its segment)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session
from tests.integration.ledger.test_ledger_chain import chain_of
from tests.itest import new_member

from loyalist.events import service as events
from loyalist.ledger import service as ledger
from loyalist.ledger.domain import CHAINED_FIELDS, GENESIS, entry_hash
from loyalist.models import LedgerEntry, PointsAccount, PointsLot

CAUSE = ledger.Cause(source_type="test", actor="test", details={"why": "core credit"})


@contextmanager
def flushed_new() -> Iterator[list[str]]:
    """The tables of every row the unit of work flushes as new while the block runs."""
    seen: list[str] = []

    def before(session: Session, _ctx: Any, _instances: Any) -> None:
        seen.extend(inspect(obj).mapper.local_table.name for obj in session.new)

    event.listen(Session, "before_flush", before)
    try:
        yield seen
    finally:
        event.remove(Session, "before_flush", before)


def earn(s: Session, acct: ledger.Account, points: int, key: str) -> tuple[LedgerEntry, PointsLot]:
    return ledger.credit(
        s,
        acct,
        points,
        CAUSE,
        kind="earn",
        earned_at=acct.now,
        available_at=acct.now,
        expires_at=acct.now + timedelta(days=365),
        dedupe_key=key,
    )


def assert_whole(db: Any, account_id: int) -> list[LedgerEntry]:
    """The account's chain from the database: 1..n, each entry hashing to what it stores
    on its predecessor's hash, the account's head on the last, verify clean; balances
    agree with the entries and the lots."""
    entries = chain_of(db, account_id)
    prev = GENESIS
    for n, e in enumerate(entries, start=1):
        assert (e.chain_seq, e.prev_hash) == (n, prev)
        fields = {name: getattr(e, name) for name in CHAINED_FIELDS}
        assert e.entry_hash == entry_hash(prev, n, fields)
        prev = e.entry_hash
    with db.transaction() as s:
        row = s.get(PointsAccount, account_id)
        assert row is not None
        assert (row.chain_seq, row.chain_head) == (len(entries), prev)
        assert row.available == sum(e.delta_available for e in entries)
        lots = s.scalars(select(PointsLot).where(PointsLot.account_id == account_id)).all()
        assert row.available == sum(x.remaining for x in lots if x.status == "available")
        _n, problems = ledger.verify(s)
    assert problems == []
    return entries


def test_a_core_credit_is_chained_and_sealed_when_written(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000101")
    db = world.db
    with flushed_new() as seen, db.transaction() as s:
        acct = ledger.lock(s, mid, "/")
        before = (acct.row.chain_seq or 0, acct.row.chain_head or GENESIS)
        e, lot = earn(s, acct, 120, "core:1")
        # no flush wrote them: the rows are there, the objects persistent and unchanged
        assert "ledger_entry" not in seen and "points_lot" not in seen
        assert inspect(e).persistent and inspect(lot).persistent
        assert not inspect(e).modified and not inspect(lot).modified
        assert e.id is not None and lot.entry_id == e.id and lot.id is not None
        assert s.get(LedgerEntry, e.id) is e and s.get(PointsLot, lot.id) is lot
        # hashed now, on the head the account had; the account's head moved with it
        assert (e.chain_seq, e.prev_hash) == (before[0] + 1, before[1])
        fields = {name: getattr(e, name) for name in CHAINED_FIELDS}
        assert e.entry_hash == entry_hash(before[1], before[0] + 1, fields)
        assert (acct.row.chain_seq, acct.row.chain_head) == (e.chain_seq, e.entry_hash)
        assert (acct.row.available, lot.remaining, lot.status) == (120, 120, "available")
        account_id = acct.row.id
        entry_id = e.id
    entries = assert_whole(db, account_id)
    assert entries[-1].id == entry_id
    assert entries[-1].details == {"why": "core credit"}


def test_later_writes_of_the_transaction_chain_on_a_core_credit(world: Any, client: Any) -> None:
    """A second credit, a redemption (its entry flushed by the ORM), a credit after it and
    a debt settlement, all in one transaction: one chain, the head on the last."""
    mid = new_member(client, "13800000102")
    db = world.db
    with db.transaction() as s:  # a debt first: a clawback larger than the balance
        acct = ledger.lock(s, mid, "/")
        _e0, lot0 = earn(s, acct, 10, "core:debt-base")
        ledger.clawback(s, acct, 30, CAUSE, lot=lot0, carry_debt=True, dedupe_key="core:claw")
        assert acct.row.debt == 20
    with flushed_new() as seen, db.transaction() as s, events.batched(s):
        acct = ledger.lock(s, mid, "/")
        first, _ = earn(s, acct, 50, "core:a")  # pays the debt: settle_debt after it
        assert acct.row.debt == 0
        second, _ = earn(s, acct, 70, "core:b")
        spent = ledger.debit(s, acct, 40, CAUSE, kind="redeem", dedupe_key="core:spend")
        third, _ = earn(s, acct, 5, "core:c")
        account_id = acct.row.id
        ids = [first.id, second.id, spent.id, third.id]
    # the settlement's entry changes after its flush (the lots it took): the credit after
    # it goes the ORM way; the first credit, and the one after the redemption, the Core way
    ledger_rows = [t for t in seen if t in ("ledger_entry", "points_lot")]
    assert ledger_rows == ["ledger_entry", "ledger_entry", "points_lot", "ledger_entry"]
    entries = assert_whole(db, account_id)
    kinds = [(e.kind, e.delta_available, e.delta_debt) for e in entries[-5:]]
    assert kinds == [
        ("earn", 50, 0),
        ("debt_settle", 0, -20),
        ("earn", 70, 0),
        ("redeem", -40, 0),
        ("earn", 5, 0),
    ]
    assert [e.id for e in entries[-5:] if e.kind != "debt_settle"] == ids


def test_a_savepoint_rolled_back_after_a_core_credit_leaves_nothing_of_it(
    world: Any, client: Any
) -> None:
    mid = new_member(client, "13800000103")
    db = world.db
    with db.transaction() as s, events.batched(s):
        acct = ledger.lock(s, mid, "/")
        kept, _ = earn(s, acct, 100, "core:kept")
        sp = s.begin_nested()
        gone, gone_lot = earn(s, acct, 200, "core:gone")
        sp.rollback()
        # as a flushed insert would be: out of the session, transient again
        assert inspect(gone).transient and inspect(gone_lot).transient
        assert gone not in s and gone_lot not in s
        acct = ledger.lock(s, mid, "/")
        assert acct.row.available == 100
        assert (acct.row.chain_seq, acct.row.chain_head) == (kept.chain_seq, kept.entry_hash)
        after, _ = earn(s, acct, 7, "core:after")
        assert (after.chain_seq, after.prev_hash) == (kept.chain_seq + 1, kept.entry_hash)
        account_id = acct.row.id
    entries = assert_whole(db, account_id)
    assert [e.delta_available for e in entries[-2:]] == [100, 7]
    with db.transaction() as s:
        # (SQLite may give a rolled-back id again: look the rows up by what they were)
        assert s.scalar(select(LedgerEntry).where(LedgerEntry.dedupe_key == "core:gone")) is None
        assert s.scalars(
            select(PointsLot.points)
            .where(PointsLot.account_id == account_id)
            .order_by(PointsLot.id)
        ).all() == [100, 7]
        row = s.scalar(select(PointsAccount).where(PointsAccount.id == account_id))
        assert row is not None and row.available == 107


def test_the_last_entry_rolled_back_leaves_the_head_before_it(world: Any, client: Any) -> None:
    """The savepoint held the only entry of the transaction: the account's head and
    balance after commit are the ones before the transaction."""
    mid = new_member(client, "13800000104")
    db = world.db
    with db.transaction() as s:
        acct = ledger.lock(s, mid, "/")
        earn(s, acct, 30, "core:base")
        account_id = acct.row.id
    with db.transaction() as s, events.batched(s):
        acct = ledger.lock(s, mid, "/")
        sp = s.begin_nested()
        earn(s, acct, 200, "core:undone")
        sp.rollback()
    entries = assert_whole(db, account_id)
    assert [e.delta_available for e in entries] == [30]


def test_an_account_with_unsealed_entries_is_credited_the_orm_way(world: Any, client: Any) -> None:
    """An entry of the transaction changed after its flush (its hash is stale until the
    next flush): the credit after it must not chain on the stale hash, it goes through the
    unit of work, which re-hashes the segment."""
    mid = new_member(client, "13800000105")
    db = world.db
    with flushed_new() as seen, db.transaction() as s, events.batched(s):
        acct = ledger.lock(s, mid, "/")
        first, _ = earn(s, acct, 60, "core:first")
        assert seen == []
        first.reason = "changed after it was written"  # unsealed now
        assert ledger._sealed_head(s, acct.row) is None
        earn(s, acct, 8, "core:second")
        assert "ledger_entry" in seen and "points_lot" in seen
        account_id = acct.row.id
    entries = assert_whole(db, account_id)
    assert [e.reason for e in entries[-2:]] == ["changed after it was written", None]
    assert entries[-1].prev_hash == entries[-2].entry_hash
