"""Migration 0020 creates exactly the habits tables the models describe, and goes down
and up again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from loyalist.kit.db import Base, Database
from loyalist.kit.migrate import alembic_config, upgrade

OURS = (
    "checkin",
    "habit_activity",
    "habit_fact",
    "member_badge",
    "challenge_progress",
    "leaderboard_score",
    "leaderboard_period",
)


def test_the_migration_matches_the_models(db: Database) -> None:
    engine = create_engine(db.url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert set(OURS) <= tables
    assert [d for d in diffs if any(f"'{name}'" in repr(d) for name in OURS)] == []


@pytest.mark.sqlite_only
def test_down_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0019")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert not set(OURS) & set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert set(OURS) <= set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
