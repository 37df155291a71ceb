"""The unit of work: the caller, after-commit hooks, and rows that exist iff it commits."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalist.events.service import emit
from loyalist.jobs.queue import enqueue
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.db import Database
from loyalist.kit.uow import acting_as, after_commit, uow_of
from loyalist.models import Job, OutboxEvent


def _count(db: Database, model: Any) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_hooks_run_after_commit_in_order(db: Database) -> None:
    seen: list[str] = []

    def unit(s: Session) -> None:
        uow_of(s).after_commit(lambda: seen.append("first"))
        after_commit(s, lambda: seen.append("second"))
        assert seen == []  # nothing runs before the commit

    db.run(unit)
    assert seen == ["first", "second"]


def test_hooks_never_run_on_rollback(db: Database) -> None:
    seen: list[str] = []
    with pytest.raises(RuntimeError, match="boom"), db.transaction() as s:
        uow_of(s).after_commit(lambda: seen.append("ran"))
        raise RuntimeError("boom")
    assert seen == []


def test_a_failing_hook_is_logged_not_raised(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def bad() -> None:
        raise ValueError("hook failed")

    def unit(s: Session) -> str:
        after_commit(s, bad)
        after_commit(s, lambda: seen.append("later"))
        emit(
            s,
            "member.created",
            {"member_id": 7, "member_no": "M000000007", "tier": "base", "by": "test"},
        )
        return "answer"

    with caplog.at_level(logging.ERROR, logger="loyalist.uow"):
        assert db.run(unit) == "answer"
    assert seen == ["later"]  # the next hook still runs
    assert _count(db, OutboxEvent) == 1  # the work committed
    assert "after-commit hook" in caplog.text and "hook failed" in caplog.text


def test_hooks_of_a_retried_attempt_are_dropped(db: Database) -> None:
    """Database.run retries transient failures: only the attempt that commits runs hooks."""
    from sqlalchemy.exc import OperationalError

    seen: list[int] = []
    attempts = {"n": 0}

    def unit(s: Session) -> None:
        attempts["n"] += 1
        n = attempts["n"]
        after_commit(s, lambda: seen.append(n))
        if n == 1:
            raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    db.run(unit)
    assert attempts["n"] == 2
    assert seen == [2]


def test_the_caller_is_carried(db: Database) -> None:
    alice = Actor(name="user:alice", scope_path="/1/", principal="staff:1")
    with db.transaction() as s:
        assert uow_of(s).actor is None
        assert uow_of(s).actor_name == "system"
    assert db.run(lambda s: uow_of(s).actor, actor=alice) is alice
    with acting_as(alice):
        with db.transaction() as s:
            assert uow_of(s).actor is alice
        # an explicit actor wins over the one in context
        assert db.run(lambda s: uow_of(s).actor, actor=SYSTEM) is SYSTEM
    with db.transaction() as s:
        assert uow_of(s).actor is None


def test_a_failing_unit_writes_neither_event_nor_job(db: Database) -> None:
    with pytest.raises(RuntimeError, match="after the writes"), db.transaction() as s:
        emit(
            s,
            "member.created",
            {"member_id": 7, "member_no": "M000000007", "tier": "base", "by": "test"},
        )
        enqueue(s, "test.noop", {"member": 7}, dedupe_key="welcome:7")
        s.flush()
        raise RuntimeError("after the writes")
    assert (_count(db, OutboxEvent), _count(db, Job)) == (0, 0)
    # the same unit committing writes both
    with db.transaction() as s:
        emit(
            s,
            "member.created",
            {"member_id": 7, "member_no": "M000000007", "tier": "base", "by": "test"},
        )
        enqueue(s, "test.noop", {"member": 7}, dedupe_key="welcome:7")
    assert (_count(db, OutboxEvent), _count(db, Job)) == (1, 1)


def test_a_session_outside_a_unit_of_work_is_refused(db: Database) -> None:
    session = db.sessionmaker()
    try:
        with pytest.raises(RuntimeError, match="no unit of work"):
            uow_of(session)
    finally:
        session.close()


def test_an_api_write_names_its_api_key_as_the_caller(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loyalist.member import service as members

    seen: list[tuple[str | None, str]] = []
    real = members.create

    def spy(s: Session, actor: Actor, data: Any) -> Any:
        uow = uow_of(s)
        seen.append((uow.actor.name if uow.actor else None, actor.name))
        uow.after_commit(lambda: seen.append(("committed", actor.name)))
        out = real(s, actor, data)
        if data.phone.endswith("0000"):
            raise ValueError("fails after the write")
        return out

    monkeypatch.setattr(members, "create", spy)
    r = client.post("/v1/members", json={"phone": "13812345678"}, headers={"Idempotency-Key": "u1"})
    assert r.status_code == 201, r.text
    (caller, service_actor), committed = seen
    assert caller == service_actor and caller is not None and caller.startswith("apikey:")
    assert committed == ("committed", caller)
    # a write that fails after writing commits nothing and runs no hook
    seen.clear()
    r = client.post("/v1/members", json={"phone": "13900000000"}, headers={"Idempotency-Key": "u2"})
    assert r.status_code == 500
    assert [tag for tag, _ in seen] == [caller]
    assert client.get("/v1/members", params={"phone": "13900000000"}).json()["items"] == []
