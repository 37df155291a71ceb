"""``ledger.write_account`` writes the locked account row's changes with one Core UPDATE of
the changed columns (speed, issue 11: the earn path's last ORM write), and leaves the row
object as a flush would: not dirty (no second UPDATE), later changes in the transaction
still written, a rolled-back savepoint expiring it, the chain's head written with it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, text
from tests.integration.ledger.test_ledger_core_credit import CAUSE, assert_whole, earn
from tests.itest import new_member
from tests.support import recorded_statements

from loyalist.events import service as events
from loyalist.ledger import service as ledger
from loyalist.models import PointsAccount


def account_updates(seen: list[str]) -> list[str]:
    return [s for s in seen if " ".join(s.split()).upper().startswith("UPDATE POINTS_ACCOUNT")]


def stored(s: Any, account_id: int) -> tuple[int, int, int, int, str | None]:
    """The account row as the database has it in this transaction (not the ORM's object)."""
    row = s.execute(
        text(
            "SELECT available, lifetime_earned, debt, chain_seq, chain_head "
            "FROM points_account WHERE id = :i"
        ),
        {"i": account_id},
    ).one()
    return tuple(row)  # type: ignore[return-value]


def test_the_account_is_written_once_and_later_changes_still_flush(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000201")
    db = world.db
    with recorded_statements(db.engine) as seen, db.transaction() as s, events.batched(s):
        acct = ledger.lock(s, mid, "/")
        account_id = acct.row.id
        e, _ = earn(s, acct, 120, "write:1")
        before = len(account_updates(seen))
        assert ledger.write_account(s, acct)
        (update,) = account_updates(seen)[before:]
        # only the columns the credit changed, as the unit of work's UPDATE
        assert "debt" not in update.split("WHERE")[0]
        # the database has the values, the object is as a flush leaves it: not dirty
        assert stored(s, account_id) == (120, 120, 0, e.chain_seq, e.entry_hash)
        state = inspect(acct.row)
        assert not state.modified and acct.row not in s.dirty and not s.is_modified(acct.row)
        s.flush()
        assert len(account_updates(seen)) == before + 1  # the flush wrote nothing again
        # a later change of the same object in the transaction is tracked and written
        acct.row.lifetime_earned += 5
        assert acct.row in s.dirty
        # and later ledger work (a redemption: ORM entry, lots taken) goes on from there
        spent = ledger.debit(s, acct, 20, CAUSE, kind="redeem", dedupe_key="write:spend")
        later, _ = earn(s, acct, 3, "write:2")
        assert ledger.write_account(s, acct)
    with db.transaction() as s:
        assert stored(s, account_id) == (103, 128, 0, later.chain_seq, later.entry_hash)
    entries = assert_whole(db, account_id)
    assert [x.id for x in entries[-3:]] == [e.id, spent.id, later.id]


def test_a_savepoint_rolled_back_after_the_write_expires_the_row(world: Any, client: Any) -> None:
    """The write inside a savepoint that rolls back: the object is expired as a flushed
    one would be, so the outer transaction goes on from the balance it really has."""
    mid = new_member(client, "13800000202")
    db = world.db
    with db.transaction() as s, events.batched(s):
        acct = ledger.lock(s, mid, "/")
        account_id = acct.row.id
        kept, _ = earn(s, acct, 100, "write:kept")
        assert ledger.write_account(s, acct)
        sp = s.begin_nested()
        earn(s, acct, 200, "write:gone")
        assert ledger.write_account(s, acct)
        assert stored(s, account_id)[0] == 300
        sp.rollback()
        assert acct.row.available == 100  # reloaded: the savepoint's write is gone
        assert (acct.row.chain_seq, acct.row.chain_head) == (kept.chain_seq, kept.entry_hash)
        after, _ = earn(s, acct, 7, "write:after")
        assert ledger.write_account(s, acct)
    with db.transaction() as s:
        assert stored(s, account_id) == (107, 107, 0, after.chain_seq, after.entry_hash)
    entries = assert_whole(db, account_id)
    assert [x.delta_available for x in entries] == [100, 7]


def test_the_head_of_an_orm_credit_goes_with_the_write(world: Any, client: Any) -> None:
    """A credit the ORM way (the segment was not sealed) on an account row written and
    clean: its flush re-hashed the entries and left the new head due; the write carries
    it, and the commit writes the row no second time."""
    mid = new_member(client, "13800000203")
    db = world.db
    with recorded_statements(db.engine) as seen, db.transaction() as s, events.batched(s):
        acct = ledger.lock(s, mid, "/")
        account_id = acct.row.id
        first, _ = earn(s, acct, 60, "write:first")
        assert ledger.write_account(s, acct)  # clean: the next flush leaves the head due
        first.reason = "changed after it was written"  # unsealed: the next credit, ORM way
        second, _ = earn(s, acct, 8, "write:second")
        assert ledger.write_account(s, acct)
        assert stored(s, account_id)[3:] == (second.chain_seq, second.entry_hash)
        start = len(seen)
    assert account_updates(seen[start:]) == []
    entries = assert_whole(db, account_id)
    assert entries[-1].prev_hash == entries[-2].entry_hash


def test_an_unflushed_entry_leaves_the_row_to_the_flush(world: Any, client: Any) -> None:
    """An entry changed after its flush (its hash is stale until the next flush): nothing
    is written now; the flush re-hashes and writes the row with the head, as before."""
    mid = new_member(client, "13800000204")
    db = world.db
    with recorded_statements(db.engine) as seen, db.transaction() as s, events.batched(s):
        acct = ledger.lock(s, mid, "/")
        account_id = acct.row.id
        first, _ = earn(s, acct, 60, "write:stale")
        first.reason = "changed after it was written"
        before = len(account_updates(seen))
        assert not ledger.write_account(s, acct)
        assert len(account_updates(seen)) == before and acct.row in s.dirty
    entries = assert_whole(db, account_id)
    assert entries[-1].reason == "changed after it was written"
    with db.transaction() as s:
        row = s.get(PointsAccount, account_id)
        assert row is not None and row.chain_head == entries[-1].entry_hash
