"""Migration 0009 (event stream consumers) on the test's backend: up, down, up again; what
it creates matches the models."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from tests.integration.dashboard.test_dashboard_migrations import scratch_url  # noqa: F401

from loyalist.kit.db import Base
from loyalist.kit.migrate import alembic_config

TABLES = {"event_consumer", "event_receipt", "event_failure"}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_up_down_up_and_matches_the_models(scratch_url: str) -> None:  # noqa: F811
    cfg = alembic_config(scratch_url)
    command.upgrade(cfg, "0009")
    assert _tables(scratch_url) >= TABLES
    command.downgrade(cfg, "0008")
    assert _tables(scratch_url) & TABLES == set()
    command.upgrade(cfg, "head")
    engine = create_engine(scratch_url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert [d for d in diffs if any(t in repr(d) for t in TABLES)] == []
