"""A recorded order writes its order row, its events, its audit row and its idempotency
record with Core statements, not through the ORM's unit of work (speed, issue 11), and the
rows are the ones the unit of work wrote: same values, events in the order they were
emitted, the order answered as written."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, inspect, text
from sqlalchemy.orm import ORMExecuteState, Session
from tests.itest import new_member, rows
from tests.support import order_payload, recorded_statements

from loyalist.events import service as events
from loyalist.kit.actor import SYSTEM
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import Member, Order, OrgUnit, OutboxEvent, PointsAccount
from loyalist.order import service as orders
from loyalist.order.schemas import OrderCreate

CORE_TABLES = {"orders", "outbox_event", "audit_log", "idempotency_record"}


@contextmanager
def orm_writes() -> Iterator[list[str]]:
    """The tables of every row the unit of work flushes as new, and of every INSERT or
    UPDATE run through ``Session.execute`` (the ORM layer), while the block runs."""
    seen: list[str] = []

    def flushed(session: Session, _ctx: Any, _instances: Any) -> None:
        seen.extend(inspect(obj).mapper.local_table.name for obj in session.new)

    def executed(state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update:
            seen.append(state.statement.table.name)  # type: ignore[attr-defined]

    event.listen(Session, "before_flush", flushed)
    event.listen(Session, "do_orm_execute", executed)
    try:
        yield seen
    finally:
        event.remove(Session, "do_orm_execute", executed)
        event.remove(Session, "before_flush", flushed)


def test_an_order_writes_its_rows_without_the_unit_of_work(client: Any, world: Any) -> None:
    mid = new_member(client, "13800000001")
    with orm_writes() as seen:
        r = client.post(
            "/v1/orders",
            json=order_payload("core-1", mid, paid=12_300),
            headers={"Idempotency-Key": "core-k1"},
        )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["points"]["earned"] > 0
    assert not CORE_TABLES & set(seen), seen
    # the ledger's entry and lot too are Core INSERTs now (ledger.credit's common path):
    # the unit of work writes no new row of the order at all
    assert seen == []
    db = world.db
    (order,) = rows(db, f"SELECT * FROM orders WHERE id = {body['id']}")
    assert order["external_id"] == "core-1" and order["points_earned"] == body["points"]["earned"]
    evs = rows(
        db,
        f"SELECT id, type, payload FROM outbox_event WHERE member_id = {mid} "
        "AND type IN ('points.earned', 'order.recorded') ORDER BY id",
    )
    assert [e["type"] for e in evs] == ["points.earned", "order.recorded"]
    audit = rows(
        db, f"SELECT * FROM audit_log WHERE object_type = 'order' AND object_id = '{body['id']}'"
    )
    assert [a["action"] for a in audit] == ["order.record"]
    (rec,) = rows(db, "SELECT status_code FROM idempotency_record WHERE key = 'core-k1'")
    assert rec["status_code"] == 201
    again = client.post(
        "/v1/orders",
        json=order_payload("core-1", mid, paid=12_300),
        headers={"Idempotency-Key": "core-k1"},
    )
    assert again.status_code == 201 and again.json() == body


def test_the_recorded_order_is_the_row_written(world: Any) -> None:
    """The order stays transient (the session does not track it), carries its new id and
    the values of its row; events emitted before it keep lower ids."""
    with world.db.transaction() as s:
        joined = members.create(s, SYSTEM, MemberCreate(phone="13800000002"))
        rec = orders.record(
            s, SYSTEM, OrderCreate.model_validate(order_payload("core-2", joined.member.id))
        )
        order = rec.order
        assert inspect(order).transient and order.id is not None
        assert not [o for o in s.new if isinstance(o, Order | OutboxEvent)]
        loaded = s.get(Order, order.id)
        assert loaded is not None and loaded is not order
        for col in Order.__table__.columns:
            assert getattr(loaded, col.key) == getattr(order, col.key), col.key
        types = s.execute(
            text("SELECT type FROM outbox_event WHERE member_id = :m ORDER BY id").bindparams(
                m=joined.member.id
            )
        ).scalars()
        assert list(types) == ["member.created", "points.earned", "order.recorded"]


def test_batched_events_keep_the_order_of_emission(world: Any) -> None:
    with world.db.transaction() as s:
        first = events.emit(
            s, "programme.published", {"version": 1, "by": "test"}
        )  # waits for a flush
        with events.batched(s):
            second = events.emit(s, "programme.published", {"version": 2, "by": "test"})
            with events.batched(s):  # inside another: part of the outer block
                third = events.emit(s, "programme.published", {"version": 3, "by": "test"})
            assert second.id is None and third.id is None
            assert first in s.new and second not in s and third not in s
        assert first.id is not None and second.id is not None and third.id is not None
        assert first.id < second.id < third.id
        assert inspect(second).transient
        got = s.execute(
            text("SELECT id, event_id, payload FROM outbox_event WHERE id >= :i ORDER BY id"),
            {"i": first.id},
        ).all()
        assert [(r.id, r.event_id) for r in got] == [
            (e.id, e.event_id) for e in (first, second, third)
        ]
        for e in (second, third):
            loaded = s.get(OutboxEvent, e.id)
            assert loaded is not None and loaded is not e
            for col in OutboxEvent.__table__.columns:
                assert getattr(loaded, col.key) == getattr(e, col.key), col.key


def test_a_batch_that_raises_writes_nothing(world: Any) -> None:
    class Boom(Exception):
        pass

    with world.db.transaction() as s:
        before = s.execute(text("SELECT count(*) FROM outbox_event")).scalar_one()
        with pytest.raises(Boom), events.batched(s):
            events.emit(s, "programme.published", {"version": 1, "by": "test"})
            raise Boom
        assert "loyalist.events.batch" not in s.info
        assert s.execute(text("SELECT count(*) FROM outbox_event")).scalar_one() == before
        later = events.emit(
            s, "programme.published", {"version": 2, "by": "test"}
        )  # back to the unit of work
        assert later in s.new


def test_a_savepoint_rolled_back_in_a_batch_drops_its_events(world: Any) -> None:
    class Boom(Exception):
        pass

    with world.db.transaction() as s:
        with events.batched(s):
            kept = events.emit(s, "programme.published", {"version": 1, "by": "test"})
            with pytest.raises(Boom), s.begin_nested():
                events.emit(s, "programme.published", {"version": 2, "by": "test"})
                raise Boom
            with s.begin_nested():  # released: its event stays
                also = events.emit(s, "programme.published", {"version": 3, "by": "test"})
        got = s.execute(
            text("SELECT event_id FROM outbox_event WHERE id >= :i ORDER BY id"), {"i": kept.id}
        ).scalars()
        assert list(got) == [kept.event_id, also.event_id]


def test_the_account_update_is_one_core_statement(client: Any, world: Any) -> None:
    """The account's balances and chain head go out in one Core UPDATE at the end of
    ``record`` (``ledger.write_account``): no flush finds the account row changed, the
    request issues that one UPDATE, and the row the database has is what the answer says."""
    mid = new_member(client, "13800000003")
    dirty: list[str] = []

    def flushed(session: Session, _ctx: Any, _instances: Any) -> None:
        dirty.extend(inspect(obj).mapper.local_table.name for obj in session.dirty)

    event.listen(Session, "before_flush", flushed)
    try:
        with orm_writes() as seen, recorded_statements(world.db.engine) as sent:
            r = client.post(
                "/v1/orders",
                json=order_payload("core-acct", mid, paid=12_300),
                headers={"Idempotency-Key": "core-acct"},
            )
    finally:
        event.remove(Session, "before_flush", flushed)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["points"]["earned"] > 0
    assert "points_account" not in dirty and "points_account" not in seen, (dirty, seen)
    updates = [s for s in sent if " ".join(s.split()).upper().startswith("UPDATE POINTS_ACCOUNT")]
    assert len(updates) == 1, updates
    (account,) = rows(
        world.db,
        "SELECT a.pending, a.available, a.chain_seq, a.chain_head FROM points_account a "
        f"JOIN points_account_member m ON m.account_id = a.id WHERE m.member_id = {mid}",
    )
    (last,) = rows(
        world.db,
        "SELECT e.chain_seq, e.entry_hash FROM ledger_entry e JOIN points_account_member m "
        f"ON m.account_id = e.account_id WHERE m.member_id = {mid} "
        "ORDER BY e.chain_seq DESC LIMIT 1",
    )
    assert (account["chain_seq"], account["chain_head"]) == (last["chain_seq"], last["entry_hash"])
    assert account["pending"] + account["available"] == body["points"]["earned"]


@contextmanager
def orm_selects() -> Iterator[list[str]]:
    """The SELECTs run through ``Session.execute`` (the ORM layer) while the block runs."""
    seen: list[str] = []

    def executed(state: ORMExecuteState) -> None:
        if state.is_select:
            seen.append(str(state.statement)[:80])

    event.listen(Session, "do_orm_execute", executed)
    try:
        yield seen
    finally:
        event.remove(Session, "do_orm_execute", executed)


def test_an_order_reads_its_store_member_and_account_without_the_orm(world: Any) -> None:
    """The locking read of the store, the member and the account and the active
    programme's read are Core statements on the session's connection (speed, issue 11);
    the three rows are the session's own objects all the same: later code that asks the
    session for them gets them without a statement, the account as written."""
    with world.db.transaction() as s:
        joined = members.create(s, SYSTEM, MemberCreate(phone="13800000004"))
    mid = joined.member.id
    with world.db.transaction() as s:  # the programme's history, cached per process after
        orders.record(s, SYSTEM, OrderCreate.model_validate(order_payload("rd-0", mid)))
    with world.db.transaction() as s:
        with orm_selects() as seen:
            rec = orders.record(s, SYSTEM, OrderCreate.model_validate(order_payload("rd-1", mid)))
        assert seen == []
        assert rec.lot is not None
        account_id = rec.lot.account_id
        with recorded_statements(world.db.engine) as sent:
            account = s.get(PointsAccount, account_id)  # held by the ledger's chain
        assert sent == []  # in the identity map (the member and the store, unreferenced
        # now, may have left the session's weak identity map, as the ORM's objects do)
        assert account is not None
        member, store = s.get(Member, mid), s.get(OrgUnit, rec.order.store_id)
        assert member is not None and store is not None
        assert store.code == "sh1" and member.phone == "+8613800000004"
        assert not s.dirty  # loaded, then written by Core: nothing left to flush
        stored = s.connection().execute(
            text("SELECT pending, chain_seq, chain_head FROM points_account WHERE id = :a"),
            {"a": account_id},
        )
        assert tuple(stored.one()) == (account.pending, account.chain_seq, account.chain_head)
        assert account.pending == 2 * rec.order.points_earned > 0  # the two orders


def test_an_order_by_id_answers_as_an_order_by_identity(client: Any, world: Any) -> None:
    """The same order of two members alike, one named by id (the one locking read, its rows
    made objects by kit.rows.Loaded) and one by phone (the ORM's reads one by one): the
    same answer, byte for byte, but for the ids."""
    by_id = new_member(client, "13800000005")
    by_phone = new_member(client, "13800000006")
    answers = []
    for mid, ext in ((by_id, "same-1"), (by_phone, "same-2")):
        body = order_payload(ext, mid if mid == by_id else None, paid=88_000)
        if mid == by_phone:
            body["member_identity"] = {"kind": "phone", "value": "13800000006"}
        r = client.post("/v1/orders", json=body, headers={"Idempotency-Key": f"k-{ext}"})
        assert r.status_code == 201, r.text
        answers.append((r.json(), r.content))
    (a, raw_a), (b, raw_b) = answers
    assert a["points"]["earned"] > 0 and a["member_id"] == by_id and b["member_id"] == by_phone
    for key, va, vb in (("id", a["id"], b["id"]), ("member_id", by_id, by_phone)):
        raw_b = raw_b.replace(f'"{key}":{vb}'.encode(), f'"{key}":{va}'.encode())
    assert raw_a == raw_b.replace(b"same-2", b"same-1")
