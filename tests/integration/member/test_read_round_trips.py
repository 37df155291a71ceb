"""A member read sends its statements and nothing else (issue 11, branch readtail): on
PostgreSQL its two statements run on a connection in autocommit mode, so psycopg sends no
``BEGIN`` before them and no ``COMMIT`` after (two round trips fewer), and the connection
goes back to the pool in transaction mode for the writes that take it next. On SQLite the
read stays one deferred transaction (one WAL snapshot)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from tests.integration.member.test_read_floor import FLOOR
from tests.itest import new_member

from loyalist.kit.db import Database


@contextmanager
def _modes(db: Database) -> Iterator[list[tuple[str, bool]]]:
    """Each statement sent, with whether its DBAPI connection was inside a transaction
    (PostgreSQL: not in autocommit mode, so psycopg opened one with ``BEGIN``; SQLite: the
    ``BEGIN`` the engine issued)."""
    seen: list[tuple[str, bool]] = []

    def listen(conn: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        raw = conn.connection.dbapi_connection
        if db.dialect == "sqlite":
            seen.append((statement, bool(raw.in_transaction)))
        else:
            seen.append((statement, not raw.autocommit))

    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)


def test_a_member_read_opens_no_transaction_on_postgresql(client: Any, world: Any) -> None:
    mid = new_member(client, "13800000001", name="张三")
    assert client.get(f"/v1/members/{mid}").status_code == 200  # warm: programme cached
    with _modes(world.db) as seen:
        r = client.get(f"/v1/members/{mid}")
        assert r.status_code == 200, r.text
        read = list(seen)
        # the next write takes a pooled connection (perhaps the read's) in transaction mode
        w = client.post(f"/v1/members/{mid}/adjustments", json={"points": 5, "reason": "test"})
        assert w.status_code == 201, w.text
    sqlite = world.db.dialect == "sqlite"
    if sqlite:  # the engine's own deferred BEGIN (a WAL snapshot)
        assert read[0] == ("BEGIN", False), read
        read = read[1:]
    assert len(read) == 2, read  # the key check is a subquery of the first
    in_transaction = {mode for _s, mode in read}
    assert in_transaction == ({True} if world.db.dialect == "sqlite" else {False})
    writes = [mode for s, mode in seen[len(read) + sqlite :] if not s.startswith("BEGIN")]
    assert writes and all(writes)
    assert client.get(f"/v1/members/{mid}").json()["points"]["available"] == 5


def test_autocommit_is_for_reads_only(world: Any) -> None:
    with pytest.raises(ValueError, match="read-only"):
        world.db.run(lambda _s: None, autocommit=True)


def test_the_floor_script_sends_no_transaction_either() -> None:
    """benchmarks/read_floor.sql issues what a member read issues on PostgreSQL: its two
    SELECTs, no BEGIN and no COMMIT (the floor would otherwise pay two round trips the read
    does not)."""
    lines = [s.strip().upper() for s in FLOOR.read_text(encoding="utf-8").splitlines()]
    sent = [s for s in lines if s and not s.startswith(("--", "\\"))]
    assert [s.split()[0] for s in sent] == ["SELECT", "SELECT"]
