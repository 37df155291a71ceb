"""Bulk import (issue 13, item 5): members, orders and carried balances from CSV and Excel;
the whole file validated first (an exact row-by-row report, nothing written), idempotent
re-runs, ``ledger verify`` clean after every import."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from tests.itest import counts, rows
from typer.testing import CliRunner

from loyalist.bulkimport import runner
from loyalist.bulkimport.domain import RowError
from loyalist.cli.main import app
from loyalist.config import get_settings
from loyalist.kit.actor import Actor
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.models import LedgerEntry, Member, Order, PointsLot

ACTOR = Actor(name="test:import", scope_path="/", principal="test:import")

MEMBERS = (
    "external_id,phone,email,name,birthday,gender,home_store,tags\n"
    "C001,13800138001,wang@example.cn,王小明,1990-05-01,male,sh1,vip;coffee\n"
    "C002,13800138002,,李华,,female,sz1,\n"
    "C003,,li@example.cn,,,,,\n"
)
ORDERS = (
    "external_id,member,store,occurred_at,amount_paid_minor,channel,category\n"
    "O-1,C001,sh1,2026-06-01T10:00:00+08:00,12345,pos,coffee\n"
    "O-2,C001,sh2,2026-06-02T10:00:00+08:00,5000,app,coffee\n"
    "O-3,C002,sz1,2026-06-09T12:00:00+08:00,20000,pos,coffee_beans\n"
    "O-4,,gz1,2026-06-03T09:00:00+08:00,800,pos,\n"
)
POINTS = (
    "external_id,member,points,earned_at,expires_at\n"
    "B-1,C001,500,2025-03-01T10:00:00+08:00,2026-12-31T23:59:59+08:00\n"
    "B-2,C001,70,2024-01-01T10:00:00+08:00,2025-12-31T23:59:59+08:00\n"
    "B-3,C003,1200,2026-01-15T10:00:00+08:00,\n"
)


def imp(db: Database, kind: str, content: str | bytes, name: str = "f.csv", **kw: Any) -> Any:
    data = content.encode() if isinstance(content, str) else content
    return runner.run(db, ACTOR, kind, data, name, **kw)


def verify_clean(db: Database) -> None:
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
    assert problems == []


def test_members_import_encrypts_like_the_member_service_and_reruns_change_nothing(
    world: Any,
) -> None:
    db = world.db
    out = imp(db, "members", MEMBERS)
    assert (out.status, out.total, out.created, out.unchanged) == ("done", 3, 3, 0)
    with db.transaction() as s:
        m = members.find_by_identity(s, "phone", "+8613800138001")
        assert m is not None and m.external_id == "C001" and m.name == "王小明"
        assert sorted(members.tags(s, m.id)) == ["coffee", "vip"]
        assert s.scalar(select(Member.org_path).where(Member.external_id == "C002")) is not None
    raw = db.engine.connect()
    try:  # the members table holds no clear phone, e-mail or name
        dump = " ".join(str(r) for r in raw.execute(text("SELECT * FROM member")))
        dump += " ".join(str(r) for r in raw.execute(text("SELECT * FROM member_identity")))
    finally:
        raw.close()
    for clear in ("13800138001", "wang@example.cn", "王小明"):
        assert clear not in dump
    before = counts(db)
    again = imp(db, "members", MEMBERS)
    assert (again.status, again.batch_id) == ("already_done", out.batch_id)
    # the same rows in another file (another checksum): every row found by its external id
    other = imp(db, "members", MEMBERS.replace("\n", "\r\n"), "other.csv")
    assert (other.status, other.created, other.unchanged) == ("done", 0, 3)
    after = counts(db)
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
        "import_batch": 1,
        "audit_log": 2,  # import.start and import.finish of the second file
    }


def test_a_file_with_bad_rows_gives_an_exact_report_and_writes_nothing(world: Any) -> None:
    db = world.db
    imp(db, "members", MEMBERS)
    bad = (
        "external_id,member,store,occurred_at,amount_paid_minor\n"
        "O-1,C001,sh1,2026-06-01T10:00:00+08:00,12345\n"
        "O-2,C999,sh1,2026-06-01T10:00:00+08:00,100\n"
        "O-3,C001,nowhere,2026-06-01T10:00:00+08:00,100\n"
        "O-4,C001,sh1,2026-06-01 10:00,100\n"
        "O-5,C001,sh1,2026-07-01T10:00:00+08:00,100\n"
        ",C001,sh1,2026-06-01T10:00:00+08:00,-5\n"
        "\n"
        "O-1,C002,sh1,2026-06-01T10:00:00+08:00,abc\n"
    )
    before = counts(db)
    out = imp(db, "orders", bad)
    assert out.status == "invalid"
    assert [(e.row, e.field, e.code) for e in out.errors] == [
        (3, "member", "unknown_member"),
        (4, "store", "unknown_store"),
        (5, "occurred_at", "invalid"),
        (6, "occurred_at", "in_future"),
        (7, "external_id", "missing"),
        (9, "amount_paid_minor", "invalid"),
        (9, "external_id", "duplicate_in_file"),
    ]
    problems = {(e.row, e.field): e.problem for e in out.errors}
    assert problems[(9, "external_id")] == "same store and external_id as row 2"
    assert problems[(6, "occurred_at")] == "must not be in the future"
    assert counts(db) == before  # nothing written, not even a batch
    assert rows(db, "SELECT count(*) AS n FROM import_batch") == [{"n": 1}]


def test_header_problems_and_unreadable_files(world: Any) -> None:
    db = world.db
    out = imp(db, "points", "external_id,member,pts,earned_at\nB-1,C001,5,2026-01-01T00:00:00Z\n")
    assert out.errors == [
        RowError(1, "points", "required column missing", "missing_column"),
        RowError(1, "pts", "unknown column", "unknown_column"),
    ]
    broken = imp(db, "members", b"PK\x03\x04 not really", "members.xlsx")
    assert [(e.row, e.field, e.code) for e in broken.errors] == [(1, "file", "unreadable")]


def test_orders_earn_through_the_real_earn_rules_and_rerun_changes_nothing(world: Any) -> None:
    db = world.db
    imp(db, "members", MEMBERS)
    out = imp(db, "orders", ORDERS, batch_rows=3)
    assert (out.status, out.created, out.unchanged) == ("done", 4, 0)
    with db.transaction() as s:
        earned = {k: v for k, v in s.execute(select(Order.external_id, Order.points_earned))}
        anon = s.scalar(select(Order.member_id).where(Order.external_id == "O-4"))
    # 1 point per ¥1; the app earns 1.5×; coffee beans 2× (demo programme)
    assert earned == {"O-1": 123, "O-2": 75, "O-3": 400, "O-4": 0}
    assert anon is None
    assert rows(
        db,
        "SELECT m.external_id, a.available, a.pending FROM member m"
        " JOIN points_account a ON a.owner_member_id = m.id ORDER BY m.external_id",
    ) == [
        {"external_id": "C001", "available": 198, "pending": 0},
        {"external_id": "C002", "available": 0, "pending": 400},  # 7-day return window
        {"external_id": "C003", "available": 0, "pending": 0},
    ]
    verify_clean(db)
    before = counts(db)
    assert imp(db, "orders", ORDERS, batch_rows=3).status == "already_done"
    assert imp(db, "orders", ORDERS + "\n", "again.csv").unchanged == 4
    after = counts(db)
    assert {k for k in after if after[k] != before[k]} == {"import_batch", "audit_log"}
    verify_clean(db)


def test_points_carry_lots_with_their_original_dates_and_expiry(world: Any) -> None:
    db = world.db
    imp(db, "members", MEMBERS)
    out = imp(db, "points", POINTS)
    assert (out.status, out.created) == ("done", 3)
    with db.transaction() as s:
        lots = {
            lot.source_id: (
                lot.points,
                lot.remaining,
                lot.status,
                lot.earned_at.isoformat(),
                lot.expires_at.isoformat() if lot.expires_at else None,
            )
            for lot in s.scalars(select(PointsLot).where(PointsLot.source_type == "import"))
        }
        c1 = s.scalar(select(Member.id).where(Member.external_id == "C001"))
        c3 = s.scalar(select(Member.id).where(Member.external_id == "C003"))
        assert c1 is not None and c3 is not None
        a1, a3 = ledger.get_account(s, c1), ledger.get_account(s, c3)
        assert (a1.available, a1.pending, a3.available) == (500, 0, 1200)
        kinds = sorted(s.scalars(select(LedgerEntry.kind).where(LedgerEntry.member_id == c1)).all())
    assert lots == {
        "B-1": (500, 500, "available", "2025-03-01T02:00:00+00:00", "2026-12-31T15:59:59+00:00"),
        "B-2": (70, 0, "expired", "2024-01-01T02:00:00+00:00", "2025-12-31T15:59:59+00:00"),
        "B-3": (1200, 1200, "available", "2026-01-15T02:00:00+00:00", None),
    }
    assert kinds == ["earn", "earn", "expire"]
    verify_clean(db)
    before = counts(db)
    assert imp(db, "points", POINTS + "\n", "copy.csv").unchanged == 3
    assert counts(db)["ledger_entry"] == before["ledger_entry"]
    verify_clean(db)


def test_excel_files_import_like_csv(world: Any) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for line in MEMBERS.strip().split("\n"):
        ws.append([c or None for c in line.split(",")])
    buf = io.BytesIO()
    wb.save(buf)
    out = imp(world.db, "members", buf.getvalue(), "members.xlsx")
    assert (out.status, out.created) == ("done", 3)
    with world.db.transaction() as s:
        assert members.find_by_identity(s, "email", "li@example.cn") is not None


def test_the_cli_prints_the_report_and_imports(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOYALIST_DATABASE_URL", world.db.url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    cli = CliRunner()
    try:
        good = tmp_path / "members.csv"
        good.write_text(MEMBERS, encoding="utf-8")
        r = cli.invoke(app, ["import", "members", str(good)])
        assert r.exit_code == 0, r.output
        assert "3 created, 0 already there" in r.output
        r = cli.invoke(app, ["import", "members", str(good)])
        assert r.exit_code == 0 and "already imported" in r.output
        bad = tmp_path / "points.csv"
        bad.write_text("external_id,member,points,earned_at\nB-1,C001,0,2026-01-01T00:00:00Z\n")
        report = tmp_path / "errors.csv"
        r = cli.invoke(app, ["import", "points", str(bad), "--errors-csv", str(report)])
        assert r.exit_code == 2
        assert report.read_text() == (
            "row,field,problem,code\n2,points,must be between 1 and 1000000000,invalid\n"
        )
    finally:
        get_settings.cache_clear()
