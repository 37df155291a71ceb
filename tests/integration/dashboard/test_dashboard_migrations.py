"""Migrations 0005 and 0007 (dashboard rollup; balances in it and covering indexes) on the
test's backend: up from 0004 with data in place, down, and up again; the migrated schema
matches the models for what they add."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from tests.conftest import BACKEND, PG_URL

from loyalist.kit.db import Base
from loyalist.kit.migrate import alembic_config

NEW_TABLES = {"dashboard_daily", "dashboard_fold"}
NEW_INDEX = "ix_orders_occurred_at_member_id_org_path"
INDEXES_0007 = {"ix_member_org_path_tier_code_created_at", "ix_tier_change_occurred_at"}


@pytest.fixture
def scratch_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the test backend, dropped afterwards."""
    if BACKEND != "postgres":
        yield f"sqlite:///{tmp_path / 'mig.db'}"
        return
    name = f"loyalist_mig_{uuid.uuid4().hex[:8]}"
    server = PG_URL.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _schema(url: str) -> tuple[set[str], set[str], list[tuple[str, int]]]:
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        tables = set(insp.get_table_names())
        indexes = {
            str(i["name"])
            for t in ("orders", "member", "tier_change")
            for i in insp.get_indexes(t)
            if i["name"]
        }
        folds: list[tuple[str, int]] = []
        if "dashboard_fold" in tables:
            with engine.connect() as conn:
                folds = [
                    (str(s), int(w))
                    for s, w in conn.execute(
                        text("SELECT source, watermark FROM dashboard_fold ORDER BY source")
                    )
                ]
        return tables, indexes, folds
    finally:
        engine.dispose()


def _execute(url: str, sql: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def test_up_down_up(scratch_url: str) -> None:
    cfg = alembic_config(scratch_url)
    command.upgrade(cfg, "0004")
    _execute(  # existing rows stay through the upgrades
        scratch_url,
        "INSERT INTO org_unit (code, name, kind, parent_id, path, created_at)"
        " VALUES ('hq', 'HQ', 'hq', NULL, '/1/', CURRENT_TIMESTAMP)",
    )
    tables, indexes, _ = _schema(scratch_url)
    assert not NEW_TABLES & tables and NEW_INDEX not in indexes

    command.upgrade(cfg, "0005")
    tables, indexes, folds = _schema(scratch_url)
    assert tables >= NEW_TABLES and NEW_INDEX in indexes
    assert folds == [("ledger", 0), ("orders", 0)]

    command.downgrade(cfg, "0004")
    tables, indexes, _ = _schema(scratch_url)
    assert not NEW_TABLES & tables and NEW_INDEX not in indexes

    command.upgrade(cfg, "0007")
    tables, indexes, folds = _schema(scratch_url)
    assert tables >= NEW_TABLES and indexes >= {NEW_INDEX, *INDEXES_0007}
    assert folds == [("ledger", 0), ("orders", 0)]

    _execute(scratch_url, "UPDATE dashboard_fold SET watermark = 7, seen_id = 7")
    command.downgrade(cfg, "0006")  # the rollup restarts: it loses its balance columns
    tables, indexes, folds = _schema(scratch_url)
    assert not INDEXES_0007 & indexes
    assert folds == [("ledger", 0), ("orders", 0)]

    command.upgrade(cfg, "head")
    tables, indexes, folds = _schema(scratch_url)
    assert indexes >= {NEW_INDEX, *INDEXES_0007}


def test_what_they_add_matches_the_models(scratch_url: str) -> None:
    command.upgrade(alembic_config(scratch_url), "head")
    engine = create_engine(scratch_url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    names = (*NEW_TABLES, NEW_INDEX, *INDEXES_0007)

    def ours(diff: object) -> bool:
        return any(name in repr(diff) for name in names)

    assert [d for d in diffs if ours(d)] == []
