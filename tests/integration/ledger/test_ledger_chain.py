"""The tamper-evident ledger: every entry is chained to the previous entry of its account
(in the writing transaction); ``loyalist ledger verify`` names an edited, deleted or
inserted entry; the daily checkpoint exports every chain head (file + event) and a later
verify against it catches a history rewritten with every hash recomputed; migration 0023
chains existing entries exactly as the ledger would have."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select, text
from tests.conftest import BACKEND
from tests.integration.cli.test_cli_commands import Cli, cli, run  # noqa: F401 (fixtures)
from tests.itest import new_member, rows
from tests.support import order_payload
from typer.testing import Result

from loyalist.config import get_settings
from loyalist.events.service import EVENT_TYPES
from loyalist.jobs import queue, registry
from loyalist.kit.db import Database
from loyalist.kit.migrate import alembic_config, upgrade
from loyalist.ledger import service as ledger
from loyalist.ledger.domain import CHAINED_FIELDS, GENESIS, entry_hash
from loyalist.models import LedgerEntry, Member, OutboxEvent, PointsAccount

MONDAY = "2026-06-08T10:00:00+08:00"


def activity(client: Any, phone: str) -> int:
    mid = new_member(client, phone)
    assert (
        client.post(
            f"/v1/members/{mid}/adjustments", json={"points": 1000, "reason": "开户礼"}
        ).status_code
        == 201
    )
    r = client.post("/v1/orders", json=order_payload(f"o{phone}", mid, paid=10_000))
    assert r.status_code == 201, r.text
    r = client.post("/v1/redemptions", json={"member_id": mid, "reward": "upsize"})
    assert r.status_code == 201, r.text
    return mid


def chain_of(db: Database, account_id: int) -> list[LedgerEntry]:
    with db.transaction() as s:
        q = select(LedgerEntry).where(LedgerEntry.account_id == account_id)
        return list(s.scalars(q.order_by(LedgerEntry.chain_seq)))


def sql(db: Database, statement: str, **params: Any) -> None:
    """Change rows behind the ledger's back, as a tamperer with database access would."""
    if BACKEND == "postgres":
        with db.engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(statement), params)
        return
    raw = db.engine.raw_connection()
    try:
        c = raw.driver_connection
        assert c is not None
        c.execute("PRAGMA foreign_keys=OFF")
        c.execute(text(statement).compile(compile_kwargs={"literal_binds": False}).string, params)
        c.execute("PRAGMA foreign_keys=ON")
    finally:
        raw.close()


def test_entries_are_chained_per_account_as_they_are_written(world: Any, client: Any) -> None:
    mids = [activity(client, "13800000001"), activity(client, "13800000002")]
    with world.db.transaction() as s:
        accounts = [ledger.get_account(s, m) for m in mids]
        heads = {a.id: (a.chain_seq, a.chain_head) for a in accounts}
    for acct_id, (head_seq, head) in heads.items():
        entries = chain_of(world.db, acct_id)
        assert [e.chain_seq for e in entries] == list(range(1, len(entries) + 1))
        assert len(entries) == 3  # adjustment, order earn, redemption
        prev = GENESIS
        for e in entries:
            assert e.prev_hash == prev
            fields = {name: getattr(e, name) for name in CHAINED_FIELDS}
            assert e.entry_hash == entry_hash(prev, e.chain_seq or 0, fields)
            prev = e.entry_hash
        # the redemption's lot plan, written after the entry's first flush, is covered
        assert entries[-1].details and entries[-1].details.get("lots")
        assert (head_seq, head) == (3, prev)
    with world.db.transaction() as s:
        assert ledger.verify(s) == (2, [])


def test_verify_names_an_edited_deleted_or_inserted_entry(
    world: Any,
    client: Any,
    cli: Cli,  # noqa: F811
) -> None:
    good = activity(client, "13800000001")
    bad = activity(client, "13800000002")
    with world.db.transaction() as s:
        acct = ledger.get_account(s, bad).id
        good_acct = ledger.get_account(s, good).id
    r = client.post(f"/v1/members/{bad}/adjustments", json={"points": 5, "reason": "服务补偿"})
    assert r.status_code == 201, r.text
    first, middle, last, extra = chain_of(world.db, acct)
    ok = cli("ledger", "verify")
    assert ok.exit_code == 0, ok.output
    assert "2 account(s), cache = entries = lots, hash chains intact" in ok.stdout

    def verify_after(statement: str, **params: Any) -> Result:
        sql(world.db, statement, **params)
        r = cli("ledger", "verify")
        assert r.exit_code == 1, r.output
        assert f"account {good_acct}:" not in r.stderr
        return r

    # edited: a reason reworded (no balance changes, only the chain sees it)
    r = verify_after("UPDATE ledger_entry SET reason = 'gift' WHERE id = :i", i=first.id)
    assert f"account {acct}: entry {first.id}: edited (its content does not match its hash)" in (
        r.stderr
    )
    assert "1 disagreement(s) in 2 account(s)" in r.stderr
    sql(world.db, "UPDATE ledger_entry SET reason = :r WHERE id = :i", r=first.reason, i=first.id)
    assert cli("ledger", "verify").exit_code == 0

    # edited and re-hashed: the next entry still chains to the old hash
    fields = {name: getattr(first, name) for name in CHAINED_FIELDS}
    forged = entry_hash(GENESIS, 1, {**fields, "reason": "gift"})
    r = verify_after(
        "UPDATE ledger_entry SET reason = 'gift', entry_hash = :h WHERE id = :i",
        h=forged,
        i=first.id,
    )
    assert (
        f"account {acct}: entry {first.id}: edited and re-hashed (entry {middle.id} chained to "
        "another hash)"
    ) in r.stderr
    sql(
        world.db,
        "UPDATE ledger_entry SET reason = :r, entry_hash = :h WHERE id = :i",
        r=first.reason,
        h=first.entry_hash,
        i=first.id,
    )

    # inserted: a copy of an entry written with SQL (no chain fields, then with them)
    cols = [c.name for c in LedgerEntry.__table__.columns if c.name not in ("id", "dedupe_key")]
    plain = [c for c in cols if c not in ("chain_seq", "prev_hash", "entry_hash")]
    sql(
        world.db,
        f"INSERT INTO ledger_entry ({', '.join(plain)}) SELECT {', '.join(plain)} "
        "FROM ledger_entry WHERE id = :i",
        i=middle.id,
    )
    sql(
        world.db,
        f"INSERT INTO ledger_entry ({', '.join(cols)}) SELECT {', '.join(cols)} "
        "FROM ledger_entry WHERE id = :i",
        i=middle.id,
    )
    r = cli("ledger", "verify")
    assert r.exit_code == 1
    inserted = [
        x["id"] for x in rows(world.db, "SELECT id FROM ledger_entry WHERE id > :i", i=extra.id)
    ]
    assert len(inserted) == 2
    assert (
        f"account {acct}: entry {inserted[0]}: inserted outside the ledger (not in the chain)"
        in (r.stderr)
    )
    assert (
        f"account {acct}: entry {inserted[1]}: inserted outside the ledger (sequence 2 is entry "
        f"{middle.id}'s)"
    ) in r.stderr
    sql(world.db, "DELETE FROM ledger_entry WHERE id > :i", i=extra.id)
    assert cli("ledger", "verify").exit_code == 0

    # deleted: the middle entry, then the last one
    sql(world.db, "DELETE FROM points_lot WHERE entry_id = :i", i=middle.id)
    r = verify_after("DELETE FROM ledger_entry WHERE id = :i", i=middle.id)
    assert (
        f"account {acct}: entry {last.id}: the entry before it (sequence 2, after entry "
        f"{first.id}) was deleted"
    ) in r.stderr
    sql(world.db, "DELETE FROM points_lot WHERE entry_id = :i", i=extra.id)
    r = verify_after("DELETE FROM ledger_entry WHERE id = :i", i=extra.id)
    assert (f"account {acct}: the last entry (sequence 4, after entry {last.id}) was deleted") in (
        r.stderr
    )


@pytest.fixture
def checkpoint_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "checkpoints"
    monkeypatch.setenv("LOYALIST_LEDGER_CHECKPOINT_DIR", str(where))
    get_settings.cache_clear()
    return where


def test_the_daily_checkpoint_catches_a_history_rewritten_with_fresh_hashes(
    world: Any,
    client: Any,
    cli: Cli,  # noqa: F811
    checkpoint_dir: Path,
    clock: Any,
) -> None:
    import loyalist.integrity.tasks  # noqa: F401 (registers the job kind and its schedule)

    assert "ledger.checkpoint" in EVENT_TYPES
    assert [s.cron for s in registry.schedules() if s.kind == "ledger.checkpoint"] == ["20 0 * * *"]
    mid = activity(client, "13800000001")
    activity(client, "13800000002")
    with world.db.transaction() as s:
        queue.enqueue(s, "ledger.checkpoint", {})
    assert queue.run_until_empty(world.db) == 1
    path = checkpoint_dir / "ledger-checkpoint-2026-06-10.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    with world.db.transaction() as s:
        accts = list(s.scalars(select(PointsAccount).order_by(PointsAccount.id)))
        expected = [[a.id, a.chain_seq, a.chain_head] for a in accts]
        ev = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "ledger.checkpoint")).one()
        acct = ledger.get_account(s, mid).id
    assert doc["heads"] == expected
    assert (doc["accounts"], doc["entries"], doc["date"]) == (2, 6, "2026-06-10")
    assert ev.payload == {
        "date": "2026-06-10",
        "taken_at": "2026-06-10T04:00:00.000000Z",
        "accounts": 2,
        "entries": 6,
        "digest": doc["digest"],
        "file": path.name,
    }
    ok = cli("ledger", "verify", "--checkpoint", str(path))
    assert ok.exit_code == 0, ok.output
    assert f"hash chains intact, matches checkpoint {path.name}" in ok.stdout

    # A tamperer rewrites a reason and recomputes every hash after it and the head.
    entries = chain_of(world.db, acct)
    prev = GENESIS
    for e in entries:
        fields = {name: getattr(e, name) for name in CHAINED_FIELDS}
        if e.chain_seq == 1:
            fields["reason"] = "gift"
        h = entry_hash(prev, e.chain_seq or 0, fields)
        sql(
            world.db,
            "UPDATE ledger_entry SET reason = :r, prev_hash = :p, entry_hash = :h WHERE id = :i",
            r=fields["reason"],
            p=prev,
            h=h,
            i=e.id,
        )
        prev = h
    sql(world.db, "UPDATE points_account SET chain_head = :h WHERE id = :i", h=prev, i=acct)
    assert cli("ledger", "verify").exit_code == 0  # self-consistent: only the checkpoint knows
    r = cli("ledger", "verify", "--checkpoint", str(path))
    assert r.exit_code == 1, r.output
    assert (
        f"account {acct}: checkpoint: entry {entries[-1].id} (sequence 3) differs from the "
        "checkpoint (history rewritten)"
    ) in r.stderr
    assert "1 disagreement(s) in 2 account(s)" in r.stderr

    # an altered checkpoint file is refused, not trusted
    doc["heads"][0][1] = 99
    path.write_text(json.dumps(doc), encoding="utf-8")
    r = cli("ledger", "verify", "--checkpoint", str(path))
    assert r.exit_code == 2
    assert "the file's heads do not match its digest (the file was altered)" in r.stderr


def test_migration_0023_chains_existing_entries_as_the_ledger_does(world: Any, client: Any) -> None:
    for phone in ("13800000001", "13800000002", "13800000003"):
        activity(client, phone)
    before = rows(
        world.db, "SELECT id, chain_seq, prev_hash, entry_hash FROM ledger_entry ORDER BY id"
    )
    heads = rows(world.db, "SELECT id, chain_seq, chain_head FROM points_account ORDER BY id")
    world.db.dispose()
    command.downgrade(alembic_config(world.db.url), "0022")
    with world.db.engine.connect() as conn:
        cols = (
            {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(ledger_entry)")}
            if (BACKEND == "sqlite")
            else {
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'ledger_entry'"
                    )
                )
            }
        )
    assert "entry_hash" not in cols and "chain_seq" not in cols
    # personal data is back in clear below 0023, and encrypted again above it
    assert [r["phone"] for r in rows(world.db, "SELECT phone FROM member ORDER BY id")] == [
        "+8613800000001",
        "+8613800000002",
        "+8613800000003",
    ]
    world.db.dispose()
    upgrade(world.db.url)
    assert (
        rows(world.db, "SELECT id, chain_seq, prev_hash, entry_hash FROM ledger_entry ORDER BY id")
        == before
    )
    assert rows(world.db, "SELECT id, chain_seq, chain_head FROM points_account ORDER BY id") == (
        heads
    )
    phones = [r["phone"] for r in rows(world.db, "SELECT phone FROM member ORDER BY id")]
    assert all(p.startswith("enc:k0:") for p in phones)
    with world.db.transaction() as s:
        assert ledger.verify(s) == (3, [])
        assert [m.phone for m in s.scalars(select(Member).order_by(Member.id))] == [
            "+8613800000001",
            "+8613800000002",
            "+8613800000003",
        ]
        assert s.scalar(select(Member.id).where(Member.phone == "+8613800000002")) == 2


def test_locking_an_account_twice_in_one_transaction_keeps_the_first_writes(
    world: Any, client: Any
) -> None:
    """Two writers for one member in one transaction (a consumer batch, a journey step and a
    check-in): the second lock must not reload the account row over the first's unwritten
    balance change (sessions do not autoflush)."""
    mid = new_member(client, "13800000077")
    with world.db.transaction() as s:
        for n, points in enumerate((100, 50), start=1):
            acct = ledger.lock(s, mid, "/1/")
            ledger.adjust(
                s,
                acct,
                points,
                ledger.Cause(source_type="staff", actor="test", reason=f"twice {n}"),
                expires_at=None,
            )
    with world.db.transaction() as s:
        row = s.scalar(select(PointsAccount).where(PointsAccount.owner_member_id == mid))
        assert row is not None and row.available == 150
        _n, problems = ledger.verify(s)
    assert problems == []


def test_an_entry_of_a_rolled_back_savepoint_leaves_the_chain_whole(
    world: Any, client: Any
) -> None:
    """The chain is sealed per flush from the first new or changed entry on (linear per
    transaction): entries dropped by a rolled-back savepoint in the middle of a
    transaction move their successors up, re-hashed, and the head follows."""
    mid = new_member(client, "13900000777")
    db = world.db
    with db.transaction() as s:
        acct = ledger.lock(s, mid, "/")
        cause = ledger.Cause(source_type="test", actor="test")
        ledger.adjust(s, acct, 10, cause, expires_at=None)
        s.flush()
        sp = s.begin_nested()
        ledger.adjust(s, acct, 20, cause, expires_at=None)
        ledger.adjust(s, acct, 30, cause, expires_at=None)
        s.flush()
        sp.rollback()
        acct = ledger.lock(s, mid, "/")
        ledger.adjust(s, acct, 40, cause, expires_at=None)
        account_id = acct.row.id
    entries = chain_of(db, account_id)
    deltas = [e.delta_available for e in entries]
    assert deltas[-2:] == [10, 40]
    assert [e.chain_seq for e in entries] == list(range(1, len(entries) + 1))
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
        acct_row = s.get(PointsAccount, account_id)
        assert acct_row is not None
        assert (acct_row.chain_seq, acct_row.chain_head) == (len(entries), entries[-1].entry_hash)
    assert problems == []
