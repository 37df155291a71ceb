"""The positioner finds the events still waiting for a position through their own partial
index, and the position index holds positioned events only (issue 11, session 13). Before,
the waiting events were found through the unique index on ``position``, where PostgreSQL
keeps the NULL entry of every event positioned since the last vacuum: at 125,000 events a
pass took 13 ms, under the lock every writer's pass waits for."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import inspect, text

from loyalist.events import service as events
from loyalist.kit.db import Database

_INSERT = text(
    "INSERT INTO outbox_event (event_id, type, schema_version, payload, occurred_at, position) "
    "VALUES (:e, 'member.updated', 1, :d, '2026-12-07 00:00:00', :p)"
)
_PAYLOAD = json.dumps({"member_id": 1, "fields": ["name"], "by": "test"})


def _explain(db: Database, sql: str) -> str:
    with db.engine.connect() as conn:
        explain = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        return "\n".join(str(row[-1]) for row in conn.execute(text(explain + sql)))


def _where(index: dict[str, object], dialect: str) -> str:
    options = index.get("dialect_options") or {}
    assert isinstance(options, dict)
    return str(options.get(f"{dialect}_where", "")).lower().replace('"', "").strip("()")


def test_the_position_index_holds_positions_only_and_the_waiting_have_their_own(
    db: Database,
) -> None:
    dialect = db.engine.dialect.name
    indexes = {i["name"]: i for i in inspect(db.engine).get_indexes("outbox_event")}
    position = indexes["ix_outbox_event_position"]
    waiting = indexes["ix_outbox_event_unpositioned"]
    assert (position["column_names"], bool(position["unique"])) == (["position"], True)
    assert _where(dict(position), dialect) == "position is not null"
    assert (waiting["column_names"], bool(waiting["unique"])) == (["id"], False)
    assert _where(dict(waiting), dialect) == "position is null"


def test_the_positioner_and_the_readers_each_use_their_index(db: Database) -> None:
    # Many events already positioned (what a running programme has), three waiting.
    with db.engine.begin() as conn:
        rows = [{"e": str(uuid.uuid4()), "d": _PAYLOAD, "p": i + 1} for i in range(5_000)]
        conn.execute(_INSERT, rows)
        for _ in range(3):
            conn.execute(_INSERT, {"e": str(uuid.uuid4()), "d": _PAYLOAD, "p": None})
        conn.execute(text("ANALYZE outbox_event"))
    with db.engine.connect() as conn:
        positioning = str(
            events._position_update(10_000).compile(conn, compile_kwargs={"literal_binds": True})
        )
    plan = _explain(db, positioning)
    assert "ix_outbox_event_unpositioned" in plan, plan
    reading = _explain(
        db, "SELECT id FROM outbox_event WHERE position > 4990 ORDER BY position LIMIT 100"
    )
    assert "ix_outbox_event_position" in reading, reading
    with db.transaction() as s:
        assert events.assign_positions(s) == 3
    with db.engine.connect() as conn:
        top = conn.execute(text("SELECT position FROM outbox_event ORDER BY id DESC LIMIT 3"))
        assert [r[0] for r in top] == [5_003, 5_002, 5_001]
