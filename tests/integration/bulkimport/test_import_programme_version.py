"""Bulk import of orders under a chosen programme version (issue 13 item 5): every order of
the file earns under the published version given (``--programme-version N``) instead of the
version in force at its date; the choice is stored with the import and reported; an unknown
version (or a version for members or balances) is refused before anything is written; a
stopped import resumes only under the version it started with; re-runs change nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.itest import counts
from typer.testing import CliRunner

from loyalist.bulkimport import runner, service
from loyalist.bulkimport.domain import checksum
from loyalist.cli.main import app
from loyalist.config import get_settings
from loyalist.errors import ValidationFailed
from loyalist.kit.actor import Actor
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.models import ImportBatch, Order
from loyalist.programme import service as programmes

ACTOR = Actor(name="test:import", scope_path="/", principal="test:import")
MEMBERS = (
    "external_id,phone,name,home_store\nC001,13800138001,王小明,sh1\nC002,13800138002,李华,sz1\n"
)
# Monday, Tuesday, Tuesday: no member day (Wednesday, 2×) among them
ORDERS = (
    "external_id,member,store,occurred_at,amount_paid_minor,channel,category\n"
    "{p}-1,C001,sh1,2026-06-01T10:00:00+08:00,12345,pos,coffee\n"
    "{p}-2,C001,sh2,2026-06-02T10:00:00+08:00,5000,app,coffee\n"
    "{p}-3,C002,sz1,2026-06-09T12:00:00+08:00,20000,pos,coffee_beans\n"
    "{p}-4,,gz1,2026-06-03T09:00:00+08:00,800,pos,\n"
)
# version 1 (the demo): 1 point per yuan, the app 1.5×, coffee beans 2×
UNDER_V1 = {"1": 123, "2": 75, "3": 400, "4": 0}
# version 2: 3 points per yuan, the same multipliers
UNDER_V2 = {"1": 370, "2": 225, "3": 1200, "4": 0}


def orders_file(prefix: str) -> bytes:
    return ORDERS.format(p=prefix).encode()


@pytest.fixture
def two_versions(world: Any, clock: Any) -> Database:
    """The demo programme (version 1) and version 2 (3 points per yuan), published an hour
    later; the members imported."""
    db: Database = world.db
    clock.advance(timedelta(hours=1))
    with db.transaction() as s:
        _v, p = programmes.active(s)
        base = p.earning.base.model_copy(update={"points_per_unit": 3})
        doc = p.model_copy(update={"earning": p.earning.model_copy(update={"base": base})})
        pv, created = programmes.apply(s, doc, actor="test")
        assert (pv.version, created) == (2, True)
    assert runner.run(db, ACTOR, "members", MEMBERS.encode(), "m.csv").status == "done"
    return db


def earned(db: Database, prefix: str) -> dict[str, tuple[int, int | None]]:
    with db.transaction() as s:
        q = select(Order.external_id, Order.points_earned, Order.programme_version).where(
            Order.external_id.like(f"{prefix}-%")
        )
        return {str(e).split("-")[1]: (int(p), v) for e, p, v in s.execute(q)}


def verify_clean(db: Database) -> None:
    with db.transaction() as s:
        assert ledger.verify(s)[1] == []


def test_orders_earn_exactly_under_the_chosen_version_a_or_b(two_versions: Database) -> None:
    db = two_versions
    a = runner.run(db, ACTOR, "orders", orders_file("A"), "a.csv", programme_version=1)
    b = runner.run(
        db, ACTOR, "orders", orders_file("B"), "b.csv", programme_version=2, batch_rows=2
    )
    # without a choice: the version in force at each order's date (before version 1 was
    # published: the active one, version 2)
    d = runner.run(db, ACTOR, "orders", orders_file("D"), "d.csv")
    assert [(o.status, o.created, o.programme_version) for o in (a, b, d)] == [
        ("done", 4, 1),
        ("done", 4, 2),
        ("done", 4, None),
    ]
    assert earned(db, "A") == {k: (v, 1 if k != "4" else None) for k, v in UNDER_V1.items()}
    assert earned(db, "B") == {k: (v, 2 if k != "4" else None) for k, v in UNDER_V2.items()}
    assert earned(db, "D") == earned(db, "B")
    with db.transaction() as s:
        q = select(ImportBatch.filename, ImportBatch.programme_version)
        stored = {str(f): v for f, v in s.execute(q)}
        assert stored == {"m.csv": None, "a.csv": 1, "b.csv": 2, "d.csv": None}
        batch = s.scalar(select(ImportBatch).where(ImportBatch.filename == "a.csv"))
        assert batch is not None and service.batch_out(batch)["programme_version"] == 1
    verify_clean(db)
    # re-running is idempotent, whatever is chosen the second time
    before = counts(db)
    again = runner.run(db, ACTOR, "orders", orders_file("A"), "a.csv", programme_version=1)
    other = runner.run(db, ACTOR, "orders", orders_file("A"), "a.csv", programme_version=2)
    assert [(o.status, o.batch_id, o.programme_version) for o in (again, other)] == [
        ("already_done", a.batch_id, 1),
        ("already_done", a.batch_id, 1),
    ]
    copy = runner.run(
        db, ACTOR, "orders", orders_file("A") + b"\n", "copy.csv", programme_version=2
    )
    assert (copy.status, copy.created, copy.unchanged) == ("done", 0, 4)
    assert earned(db, "A") == {k: (v, 1 if k != "4" else None) for k, v in UNDER_V1.items()}
    after = counts(db)
    assert {k for k in after if after[k] != before[k]} == {"import_batch", "audit_log"}
    verify_clean(db)


@pytest.mark.parametrize(
    ("kind", "version", "code"),
    [
        ("orders", 3, "unknown_version"),
        ("orders", 0, "unknown_version"),
        ("points", 1, "not_for_kind"),
    ],
)
def test_an_unknown_version_or_a_version_for_balances_is_refused_and_nothing_written(
    two_versions: Database, kind: str, version: int, code: str
) -> None:
    db = two_versions
    before = counts(db)
    with pytest.raises(ValidationFailed) as caught:
        runner.run(db, ACTOR, kind, orders_file("X"), "x.csv", programme_version=version)
    assert [(e.field, e.code) for e in caught.value.errors] == [("programme_version", code)]
    if code == "unknown_version":
        assert caught.value.detail == (
            f"There is no published programme version {version} (published: 1, 2)."
        )
    assert counts(db) == before


def test_a_stopped_import_resumes_only_under_the_version_it_started_with(
    two_versions: Database,
) -> None:
    db = two_versions
    data = orders_file("R")
    digest = checksum(data)
    with db.transaction() as s:  # started under version 1, stopped before any row
        service.open_batch(s, ACTOR, "orders", digest, "r.csv", 4, programme_version=1)
    before = counts(db)
    with pytest.raises(service.VersionDiffers) as caught:
        runner.run(db, ACTOR, "orders", data, "r.csv", programme_version=2)
    assert caught.value.detail == (
        "This file's import started under programme version 1; resume it with the same choice."
    )
    with pytest.raises(service.VersionDiffers):
        runner.run(db, ACTOR, "orders", data, "r.csv")
    assert counts(db) == before
    out = runner.run(db, ACTOR, "orders", data, "r.csv", programme_version=1)
    assert (out.status, out.created) == ("done", 4)
    assert earned(db, "R") == {k: (v, 1 if k != "4" else None) for k, v in UNDER_V1.items()}


def test_the_cli_option_refuses_an_unknown_version_and_reports_the_chosen_one(
    two_versions: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = two_versions
    monkeypatch.setenv("LOYALIST_DATABASE_URL", db.url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    cli = CliRunner()
    path = tmp_path / "orders.csv"
    path.write_bytes(orders_file("C"))
    try:
        before = counts(db)
        r = cli.invoke(app, ["import", "orders", str(path), "--programme-version", "7"])
        assert r.exit_code == 2, r.output
        assert "There is no published programme version 7 (published: 1, 2)." in r.output
        assert "Nothing imported." in r.output
        assert counts(db) == before
        r = cli.invoke(app, ["import", "orders", str(path), "--programme-version", "1"])
        assert r.exit_code == 0, r.output
        assert "4 created, 0 already there" in r.output
        assert "points earned: every order under programme version 1" in r.output
        assert earned(db, "C") == {k: (v, 1 if k != "4" else None) for k, v in UNDER_V1.items()}
        r = cli.invoke(app, ["import", "orders", str(path)])
        assert r.exit_code == 0, r.output
        assert "already imported" in r.output and "under programme version 1" in r.output
        r = cli.invoke(app, ["import", "points", str(path), "--programme-version", "1"])
        assert r.exit_code == 2  # no such option for balances: typer's usage error
    finally:
        get_settings.cache_clear()
