"""Waking workers across processes: PostgreSQL LISTEN/NOTIFY on commit of work that is due.

On SQLite there is no such channel (polling finds the work); on PostgreSQL a transaction
that queues a due job or positions events delivers one notification on ``loyalist_wake``
when it commits — none when it rolls back or only schedules later work — and a worker's
listener thread turns it into an in-process wake-up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from loyalist.events import service as events
from loyalist.jobs import queue
from loyalist.kit import wake
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database


@pytest.fixture
def listener(db: Database) -> Iterator[Any]:
    """A plain psycopg connection LISTENing on the wake channel (PostgreSQL only)."""
    if db.dialect != "postgresql":
        yield None
        return
    import psycopg

    conninfo = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"LISTEN {wake.CHANNEL}")
        yield conn


def _received(conn: Any, wait_s: float) -> list[str]:
    return [n.channel for n in conn.notifies(timeout=wait_s, stop_after=5)]


def test_a_due_job_wakes_workers_once_per_committed_transaction(
    db: Database, listener: Any
) -> None:
    def two_due_jobs(s: Any) -> None:
        queue.enqueue(s, "t.nothing", {"n": 1})
        queue.enqueue(s, "t.nothing", {"n": 2})

    db.run(two_due_jobs)
    if listener is None:  # SQLite: nothing to notify with; the worker polls
        assert wake.listen(make_url(db.url), threading.Event()) is None
        return
    assert _received(listener, 2.0) == [wake.CHANNEL]  # two jobs, one transaction: one


def test_no_wake_for_later_work_or_a_rolled_back_transaction(db: Database, listener: Any) -> None:
    db.run(lambda s: queue.enqueue(s, "t.later", {}, run_at=utcnow() + timedelta(hours=1)))

    class Boom(Exception):
        pass

    def rolled_back(s: Any) -> None:
        queue.enqueue(s, "t.nothing", {})
        raise Boom

    with pytest.raises(Boom):
        db.run(rolled_back)
    if listener is None:
        return
    assert _received(listener, 1.0) == []


def test_positioned_events_wake_workers(db: Database, listener: Any) -> None:
    with db.transaction() as s:
        events.emit(
            s,
            "member.updated",
            {"member_id": 1, "fields": ["name"], "by": "test"},
            member_id=None,
            org_path="/",
        )
    if listener is None:
        return
    # the after-commit sequencer gave the event its position in a transaction that notified
    assert _received(listener, 2.0) == [wake.CHANNEL]


def test_a_listener_thread_turns_notifications_into_wake_ups(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    called = threading.Semaphore(0)

    def counted() -> None:
        calls.append("wake")
        called.release()

    monkeypatch.setattr(wake, "notify", counted)
    stop = threading.Event()
    thread = wake.listen(make_url(db.url), stop)
    if db.dialect != "postgresql":
        assert thread is None
        return
    assert thread is not None
    try:
        assert called.acquire(timeout=10)  # once listening: work may have come meanwhile
        assert calls == ["wake"]
        with db.transaction() as s:  # another connection, as another process would
            wake.notify_in(s)
        assert called.acquire(timeout=10)
        assert calls == ["wake", "wake"]
    finally:
        stop.set()
        thread.join(5.0)
    assert not thread.is_alive()
