"""Reads do not queue behind writers (issue 11): on SQLite a read-only unit of work begins
deferred (a WAL snapshot), not ``BEGIN IMMEDIATE``; on both databases a member read answers
while another transaction holds the write lock and has written, uncommitted."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event, text
from tests.itest import new_member

from loyalist.kit.db import Database


def _statements(db: Database, fn: Any) -> list[str]:
    seen: list[str] = []

    def listen(_conn: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement.strip().upper())

    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        fn()
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    return seen


def test_read_only_work_begins_deferred_and_writes_begin_immediate(world: Any) -> None:
    db = world.db
    read = _statements(db, lambda: db.run(lambda s: s.execute(text("SELECT 1")), read_only=True))
    write = _statements(db, lambda: db.run(lambda s: s.execute(text("SELECT 1"))))
    if db.dialect == "sqlite":
        assert read[0] == "BEGIN"
        assert write[0] == "BEGIN IMMEDIATE"
    else:
        assert "BEGIN IMMEDIATE" not in read + write
    # the flag does not leak: the next unit of work on this thread is a writer again
    again = _statements(db, lambda: db.run(lambda s: s.execute(text("SELECT 1"))))
    if db.dialect == "sqlite":
        assert again[0] == "BEGIN IMMEDIATE"
    else:
        assert again == ["SELECT 1"]


def test_member_read_answers_while_a_writer_holds_the_lock(client: Any, world: Any) -> None:
    mid = new_member(client, "13800000001", name="张三")
    before = client.get(f"/v1/members/{mid}")
    assert before.status_code == 200, before.text
    db: Database = world.db
    writer = db.engine.connect()
    tx = writer.begin()  # SQLite: BEGIN IMMEDIATE, the one writer's lock, held
    writer.execute(text("UPDATE member SET name = 'uncommitted' WHERE id = :id"), {"id": mid})
    answers: list[Any] = []
    reader = threading.Thread(target=lambda: answers.append(client.get(f"/v1/members/{mid}")))
    try:
        reader.start()
        reader.join(timeout=30)  # before: waited for the writer (60 s busy timeout, retried)
        assert not reader.is_alive(), "the read waited for the writer"
    finally:
        tx.rollback()
        writer.close()
        reader.join()
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json() == before.json()  # the committed state, not the writer's
