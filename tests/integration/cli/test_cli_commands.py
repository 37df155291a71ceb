"""The ``loyalist`` command: db upgrade, programme apply/show/dry-run, apikey create,
ledger verify — against the test database (LOYALIST_DATABASE_URL)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from tests.conftest import BACKEND, PG_URL
from tests.itest import counts, demo_document, new_member, rows, write_yaml
from tests.support import api_client, order_payload
from typer.testing import CliRunner, Result

from loyalist.cli.main import app
from loyalist.config import get_settings
from loyalist.kit.migrate import alembic_config
from loyalist.ledger import service as ledger

Cli = Callable[..., Result]
MONDAY = "2026-06-08T10:00:00+08:00"


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Cli]]:
    """``run(url)(*args)`` runs ``loyalist ARGS`` in-process against the database ``url``."""
    runner = CliRunner()

    def against(url: str) -> Cli:
        def invoke(*args: str) -> Result:
            monkeypatch.setenv("LOYALIST_DATABASE_URL", url)
            monkeypatch.setenv("COLUMNS", "200")
            get_settings.cache_clear()
            return runner.invoke(app, list(args))

        return invoke

    yield against
    get_settings.cache_clear()


@pytest.fixture
def cli(world: Any, run: Callable[[str], Cli]) -> Cli:
    return run(world.db.url)


def test_db_upgrade_creates_the_schema_on_an_empty_database(
    tmp_path: Path, run: Callable[[str], Cli]
) -> None:
    if BACKEND == "postgres":
        name = f"loyalist_upgrade_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp_path / 'empty' / 'fresh.db'}"
    try:
        first = run(url)("db", "upgrade")
        assert first.exit_code == 0, first.output
        assert "database is at the latest schema" in first.stdout
        again = run(url)("db", "upgrade")  # idempotent
        assert again.exit_code == 0, again.output
        engine = create_engine(url)
        try:
            tables = set(inspect(engine).get_table_names())
            with engine.connect() as conn:
                version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        finally:
            engine.dispose()
        assert {"member", "ledger_entry", "points_lot", "outbox_event", "api_key"} <= tables
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert version == head
    finally:
        if BACKEND == "postgres":
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()


def test_programme_apply_show_and_unchanged(world: Any, cli: Cli, tmp_path: Path) -> None:
    doc = demo_document()
    doc["name"] = "悦享会 v2"
    doc["earning"]["base"]["points_per_unit"] = 2
    path = write_yaml(tmp_path / "programme.yaml", doc)
    r = cli("programme", "apply", str(path), "--note", "double base")
    assert r.exit_code == 0, r.output
    assert "programme version 2 is active (悦享会 v2)" in r.stdout
    again = cli("programme", "apply", str(path))
    assert again.exit_code == 0
    assert "unchanged: version 2 already has this content" in again.stdout
    (v,) = rows(world.db, "SELECT note, created_by FROM programme_version WHERE version = 2")
    assert v == {"note": "double base", "created_by": "cli"}

    shown = cli("programme", "show")
    assert shown.exit_code == 0, shown.output
    assert "悦享会 v2 — version 2, CNY, Asia/Shanghai" in shown.stdout
    for code in ("base", "silver", "gold", "platinum", "black", "member-day", "americano"):
        assert code in shown.stdout
    as_json = json.loads(cli("programme", "show", "--json").stdout)
    assert as_json["version"] == 2
    assert as_json["document"]["earning"]["base"]["points_per_unit"] == 2
    old = json.loads(cli("programme", "show", "--version", "1", "--json").stdout)
    assert old["document"]["earning"]["base"]["points_per_unit"] == 1
    missing = cli("programme", "show", "--version", "9")
    assert missing.exit_code == 2
    assert "No programme version 9" in missing.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tiers: [unclosed", "is not valid YAML/JSON"),
        ("- just\n- a list\n", "$: expected a mapping"),
        (None, "Cannot read"),
    ],
)
def test_programme_apply_refuses_unreadable_files(
    world: Any, cli: Cli, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "programme.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    before = counts(world.db)
    r = cli("programme", "apply", str(path))
    assert r.exit_code == 2, r.output
    assert message in r.stderr
    assert counts(world.db) == before


def test_programme_apply_names_every_bad_field_and_applies_nothing(
    world: Any, cli: Cli, tmp_path: Path
) -> None:
    doc = demo_document()
    doc["tiers"]["levels"][2]["threshold"] = 50_000  # below silver's
    doc["points"]["pending_days"] = -1
    doc["rewards"][0]["stock"] = "plenty"
    doc["earning"]["surprise"] = True
    path = write_yaml(tmp_path / "bad.yaml", doc)
    before = counts(world.db)
    r = cli("programme", "apply", str(path))
    assert r.exit_code == 2, r.output
    for field in (
        "points.pending_days",
        "tiers",
        "earning.surprise",
        "rewards.0.stock",
    ):
        assert f"  - {field}: " in r.stderr, r.stderr
    assert "tier thresholds must strictly increase" in r.stderr
    assert counts(world.db) == before


def test_programme_dry_run_command(world: Any, cli: Cli, tmp_path: Path) -> None:
    order = order_payload(
        "sample",
        None,
        paid=13_000,
        occurred_at="2026-06-10T10:00:00+08:00",
        lines=[
            {"sku": "BEANS", "category": "coffee_beans", "quantity": 2, "unit_price_minor": 5000},
            {"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price_minor": 3000},
        ],
    )
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order), encoding="utf-8")
    before = counts(world.db)
    r = cli("programme", "dry-run", str(path), "--tier", "gold")
    assert r.exit_code == 0, r.output
    assert "total: 690 points" in r.stdout
    for rule in ("base", "rule:beans-x2", "campaign:member-day", "tier:gold"):
        assert rule in r.stdout
    # against a draft file instead of the active programme
    draft = demo_document()
    draft["earning"]["campaigns"] = []
    r = cli(
        "programme",
        "dry-run",
        str(path),
        "--programme",
        str(write_yaml(tmp_path / "d.yaml", draft)),
    )
    assert r.exit_code == 0, r.output
    assert "total: 230 points" in r.stdout
    assert counts(world.db) == before


def test_apikey_create_prints_the_key_last(world: Any, cli: Cli) -> None:
    r = cli("apikey", "create", "--name", "POS 1", "--scope", "sh1")
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[-1]
    assert key.startswith("lk_")
    prefix = key[: key.index("_", 3)]
    assert f"API key {prefix} for 'POS 1', scope sh1, read-write" in r.stdout
    (row,) = rows(
        world.db, "SELECT name, access, secret_hash FROM api_key WHERE prefix = :p", p=prefix
    )
    assert (row["name"], row["access"]) == ("POS 1", "read_write")
    assert key not in row["secret_hash"]  # stored hashed
    with api_client(world.db, key) as c:
        mid = c.post("/v1/members", json={"phone": "13800000001"}).json()["id"]
        assert c.get(f"/v1/members/{mid}").json()["home_store_id"] is not None

    ro = cli("apikey", "create", "--name", "BI", "--scope", "hq", "--read-only")
    assert ro.exit_code == 0, ro.output
    ro_key = ro.stdout.strip().splitlines()[-1]
    with api_client(world.db, ro_key) as c:
        assert c.get(f"/v1/members/{mid}").status_code == 200
        assert c.post("/v1/members", json={"phone": "13800000002"}).status_code == 403

    before = counts(world.db)
    bad = cli("apikey", "create", "--name", "x", "--scope", "mars")
    assert bad.exit_code == 2, bad.output
    assert "mars" in bad.stderr
    assert counts(world.db) == before


def test_ledger_verify_is_clean_then_names_the_account_of_each_corruption(
    world: Any, client: Any, cli: Cli
) -> None:
    good = new_member(client, "13800000001")
    bad = new_member(client, "13800000002")
    for mid in (good, bad):
        client.post(f"/v1/members/{mid}/adjustments", json={"points": 1000, "reason": "setup"})
        client.post(
            "/v1/orders", json=order_payload(f"o{mid}", mid, paid=10_000, occurred_at=MONDAY)
        )
        client.post("/v1/redemptions", json={"member_id": mid, "reward": "upsize"})
    with world.db.transaction() as s:
        acct = ledger.get_account(s, bad).id
        good_acct = ledger.get_account(s, good).id
    ok = cli("ledger", "verify")
    assert ok.exit_code == 0, ok.output
    assert "ledger verified: 2 account(s), cache = entries = lots" in ok.stdout

    def corrupt(sql: str) -> Result:
        with world.db.engine.begin() as conn:
            conn.execute(text(sql), {"m": bad})
        return cli("ledger", "verify")

    # the balance cache disagrees with the entries
    r = corrupt("UPDATE points_account SET available = available + 7 WHERE owner_member_id = :m")
    assert r.exit_code == 1, r.output
    assert (
        f"account {acct}: cache (available=507, pending=100, debt=0) != entries "
        "(available=500, pending=100, debt=0)"
    ) in r.stderr
    assert f"account {good_acct}:" not in r.stderr
    assert "1 disagreement(s) in 2 account(s)" in r.stderr
    corrupt("UPDATE points_account SET available = available - 7 WHERE owner_member_id = :m")
    assert cli("ledger", "verify").exit_code == 0

    # a lot holds points that no entry explains
    r = corrupt(
        "UPDATE points_lot SET remaining = remaining + 5 "
        "WHERE member_id = :m AND status = 'available'"
    )
    assert r.exit_code == 1
    assert f"account {acct}: available 500 != open lots 505 - debt 0" in r.stderr
    assert (
        f"account {acct}: lot " in r.stderr and "allocations do not explain remaining" in r.stderr
    )
    corrupt(
        "UPDATE points_lot SET remaining = remaining - 5 "
        "WHERE member_id = :m AND status = 'available'"
    )

    # an entry changed behind the ledger's back
    r = corrupt(
        "UPDATE ledger_entry SET delta_pending = delta_pending + 1 WHERE member_id = :m "
        "AND kind = 'earn' AND source_type = 'order'"
    )
    assert r.exit_code == 1
    assert (
        f"account {acct}: cache (available=500, pending=100, debt=0) != entries "
        "(available=500, pending=101, debt=0)"
    ) in r.stderr
    assert f"account {acct}: pending 101 != pending lots 100" in r.stderr
    corrupt(
        "UPDATE ledger_entry SET delta_pending = delta_pending - 1 WHERE member_id = :m "
        "AND kind = 'earn' AND source_type = 'order'"
    )

    # a lot below zero
    r = corrupt(
        "UPDATE points_lot SET remaining = -1 WHERE member_id = :m AND status = 'available'"
    )
    assert r.exit_code == 1
    assert f"account {acct}: a lot has negative remaining points" in r.stderr


def test_jobs_run_refuses_an_unknown_job_and_a_naive_time(world: Any, cli: Cli) -> None:
    r = cli("jobs", "run", "--only", "laundry")
    assert r.exit_code == 2
    r = cli("jobs", "run", "--at", "2026-07-01T00:00:00")
    assert r.exit_code == 2
    assert "UTC offset" in r.output


def test_commands_that_need_a_programme_say_so(tmp_path: Path, run: Callable[[str], Cli]) -> None:
    url = f"sqlite:///{tmp_path / 'bare.db'}"
    r = run(url)("programme", "show")
    assert r.exit_code == 2, r.output
    assert "Apply a programme first" in r.stderr
    assert os.path.exists(tmp_path / "bare.db")
