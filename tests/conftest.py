"""Shared fixtures: a real database per test (SQLite file, or PostgreSQL under CI), an app
client with API keys per scope, and a clock tests can move.

LOYALIST_TEST_DATABASE=sqlite (default) | postgres selects the database;
LOYALIST_TEST_PG_URL names the PostgreSQL database (it must exist and be reachable: tests
fail, never skip, when it is not).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from loyalist.kit.clock import clock as global_clock
from loyalist.kit.db import Base, Database
from loyalist.kit.migrate import upgrade

BACKEND = os.environ.get("LOYALIST_TEST_DATABASE", "sqlite")
PG_URL = os.environ.get(
    "LOYALIST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/loyalist_test"
)
DEMO_PROGRAMME = Path(__file__).parents[1] / "src" / "loyalist" / "demo" / "programme.yaml"


def pytest_report_header() -> str:
    return f"loyalist test database: {BACKEND}" + (f" ({PG_URL})" if BACKEND == "postgres" else "")


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per session: a SQLite template file, or the PostgreSQL schema."""
    if BACKEND == "postgres":
        db = Database(PG_URL)
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        db.dispose()
        upgrade(PG_URL)
        return PG_URL
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return str(path)


@pytest.fixture
def db_url(_template: str, tmp_path: Path) -> str:
    if BACKEND == "postgres":
        db = Database(PG_URL)
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.dispose()
        return PG_URL
    path = tmp_path / "loyalist.db"
    shutil.copyfile(_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    try:  # every event the test emitted matches its published JSON Schema
        from tests.event_schemas import outbox_schema_errors

        drift = outbox_schema_errors(database)
        assert not drift, "events that do not match their schema:\n" + "\n".join(drift[:20])
    finally:
        database.dispose()


@pytest.fixture
def clock() -> Iterator[Any]:
    """The global clock, frozen at a known instant; moved with clock.advance()."""
    global_clock.freeze(datetime(2026, 6, 10, 4, 0, tzinfo=UTC))  # 12:00 in Shanghai
    yield global_clock
    global_clock.reset()


@pytest.fixture
def world(db: Database, clock: Any) -> Any:
    """HQ, two regions, four stores, the demo programme and an API key per scope."""
    from tests.support import build_world

    return build_world(db)


@pytest.fixture
def client(world: Any) -> Iterator[Any]:
    from tests.support import api_client

    with api_client(world.db, world.keys["hq"]) as c:
        yield c
