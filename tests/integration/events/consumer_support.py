"""Test consumers and the table their handlers write to (created by the tests, not a model)."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from loyalist.events import consumers
from loyalist.events import service as events
from loyalist.kit.db import Database
from loyalist.models import EventConsumer, OutboxEvent

EFFECT_DDL = (
    "CREATE TABLE IF NOT EXISTS consumer_effect ("
    " consumer VARCHAR(100) NOT NULL, event_id VARCHAR(36) NOT NULL,"
    " position BIGINT NOT NULL, member_id INTEGER)"
)


def make_effect_table(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(EFFECT_DDL))
        conn.execute(text("DELETE FROM consumer_effect"))


def record_effect(name: str, s: Session, ev: OutboxEvent) -> None:
    """A handler's database effect: one row per delivery (no unique key, so a second
    application would show as a duplicate)."""
    s.execute(
        text(
            "INSERT INTO consumer_effect (consumer, event_id, position, member_id)"
            " VALUES (:c, :e, :p, :m)"
        ),
        {"c": name, "e": ev.event_id, "p": ev.position, "m": ev.member_id},
    )


def effects(db: Database, name: str) -> list[tuple[str, int]]:
    with db.engine.connect() as conn:
        return [
            (str(e), int(p))
            for e, p in conn.execute(
                text(
                    "SELECT event_id, position FROM consumer_effect WHERE consumer = :c"
                    " ORDER BY position, event_id"
                ),
                {"c": name},
            )
        ]


def emit_updates(db: Database, n: int, *, member_id: int | None = None, per_tx: int = 1) -> None:
    """``n`` member.updated events, ``per_tx`` per transaction."""
    done = 0
    while done < n:
        with db.transaction() as s:
            for _ in range(min(per_tx, n - done)):
                events.emit(
                    s,
                    "member.updated",
                    {"member_id": member_id or 1, "fields": ["name"], "by": "test"},
                    member_id=member_id,
                    org_path="/",
                )
                done += 1


def positioned(db: Database) -> list[tuple[str, int]]:
    with db.engine.connect() as conn:
        return [
            (str(e), int(p))
            for e, p in conn.execute(
                text(
                    "SELECT event_id, position FROM outbox_event WHERE position IS NOT NULL"
                    " ORDER BY position"
                )
            )
        ]


def run_only(db: Database, name: str, *, limit: int = 500) -> int:
    """One batch of the registered consumer ``name`` alone."""
    c = next(c for c in consumers.registered() if c.name == name)
    return db.run(lambda s: consumers.run_batch(s, c, limit=limit))


def checkpoint(db: Database, name: str) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(EventConsumer.position).where(EventConsumer.name == name)))
