"""Helpers for tests: a standard world and HTTP clients."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text

from loyalist.access import service as access
from loyalist.app import create_app
from loyalist.config import Settings
from loyalist.http import forget_cached_keys
from loyalist.kit.db import Base, Database
from loyalist.org import service as org
from loyalist.programme import service as programmes

DEMO_PROGRAMME = Path(__file__).parents[1] / "src" / "loyalist" / "demo" / "programme.yaml"

# HQ → east (shanghai-1, shanghai-2), south (shenzhen-1, guangzhou-1)
STORES = {"sh1": "east", "sh2": "east", "sz1": "south", "gz1": "south"}


def fresh_database(template: str, sqlite_path: Path) -> str:
    """A fresh migrated database and its URL.

    ``template`` is what the ``_template`` fixture gives: a PostgreSQL URL (every table is
    truncated) or a migrated SQLite file (copied to ``sqlite_path``).
    """
    if template.startswith("postgresql"):
        db = Database(template)
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.dispose()
        return template
    for suffix in ("-wal", "-shm"):
        Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template, sqlite_path)
    return f"sqlite:///{sqlite_path}"


@dataclass
class World:
    db: Database
    keys: dict[str, str] = field(default_factory=dict)


def build_world(db: Database, programme_path: Path = DEMO_PROGRAMME) -> World:
    forget_cached_keys()
    w = World(db)
    with db.transaction() as s:
        org.create_unit(s, code="hq", name="总部", kind="hq")
        org.create_unit(s, code="east", name="华东区", kind="region", parent_code="hq")
        org.create_unit(s, code="south", name="华南区", kind="region", parent_code="hq")
        for code, region in STORES.items():
            org.create_unit(s, code=code, name=f"门店 {code}", kind="store", parent_code=region)
        programmes.apply(s, programmes.load_file(programme_path), actor="test")
        for scope in ["hq", "east", "south", *STORES]:
            w.keys[scope] = access.create_key(s, name=f"test-{scope}", scope=scope).secret
        w.keys["hq-read"] = access.create_key(
            s, name="test-hq-read", scope="hq", access="read"
        ).secret
    return w


@contextmanager
def api_client(db: Database, key: str | None) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db.url), db=db)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with TestClient(app, headers=headers, raise_server_exceptions=False) as c:
        yield c


def order_payload(
    external_id: str,
    member_id: int | None,
    *,
    store: str = "sh1",
    paid: int = 10_000,
    occurred_at: str = "2026-06-10T11:00:00+08:00",
    lines: list[dict[str, Any]] | None = None,
    points_paid: int = 0,
    channel: str = "pos",
) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "member_id": member_id,
        "store": store,
        "channel": channel,
        "occurred_at": occurred_at,
        "currency": "CNY",
        "amount_paid_minor": paid,
        "points_paid": points_paid,
        "lines": lines
        or [{"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price_minor": paid}],
    }


T = TypeVar("T")


@contextmanager
def recorded_statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while the block runs, in order, as sent."""
    seen: list[str] = []

    def listen(_conn: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def script_counts(path: Path, classify: Callable[[str], T | None]) -> Counter[T]:
    """A pgbench script's statements counted by ``classify`` (comments, meta-commands and
    what ``classify`` answers None for are skipped): what a benchmark floor issues."""
    out: Counter[T] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(("--", "\\")) or not line.strip():
            continue
        c = classify(line)
        if c is not None:
            out[c] += 1
    return out
