"""The job queue: enqueue with dedupe keys, claims and leases, retries, dead letters."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.orm import Session

from loyalist.jobs import queue, registry
from loyalist.jobs.queue import Claimed, claim, enqueue, execute
from loyalist.jobs.registry import JobContext, job_kind
from loyalist.kit.db import Database
from loyalist.models import Job

effects = Table(
    "test_job_effect",
    MetaData(),
    Column("key", String(64), primary_key=True),
    Column("attempt", Integer, nullable=False),
)


@pytest.fixture
def kinds(db: Database) -> Iterator[dict[str, int]]:
    """Test job kinds (``test.write`` writes a row, fails while payload asks it to)."""
    effects.drop(db.engine, checkfirst=True)
    effects.create(db.engine)
    calls = {"write": 0}

    @job_kind("test.write", max_attempts=3)
    def write(ctx: JobContext) -> None:
        calls["write"] += 1
        ctx.session.execute(effects.insert().values(key=ctx.payload["key"], attempt=ctx.attempt))
        if ctx.attempt <= ctx.payload.get("fail_until", 0):
            raise RuntimeError(f"planned failure {ctx.attempt}")

    yield calls
    registry.unregister("test.write")
    effects.drop(db.engine, checkfirst=True)


def jobs(db: Database) -> list[Job]:
    with db.transaction() as s:
        return list(s.scalars(select(Job).order_by(Job.id)))


def effect_rows(db: Database) -> list[tuple[str, int]]:
    with db.engine.connect() as conn:
        return [(r.key, r.attempt) for r in conn.execute(select(effects).order_by(effects.c.key))]


def test_enqueue_writes_a_queued_job_due_now(db: Database, clock: Any, kinds: Any) -> None:
    with db.transaction() as s:
        enqueue(s, "test.write", {"key": "a"})
    (job,) = jobs(db)
    assert (job.kind, job.payload, job.state, job.attempts, job.max_attempts) == (
        "test.write",
        {"key": "a"},
        "queued",
        0,
        3,
    )
    assert job.run_at == clock.now() and job.dedupe_key is None and job.last_error is None


def test_the_same_dedupe_key_twice_is_one_job(db: Database, clock: Any) -> None:
    with db.transaction() as s:
        enqueue(s, "test.write", {"key": "a"}, dedupe_key="k1")
        enqueue(s, "test.write", {"key": "other"}, dedupe_key="k1")
    with db.transaction() as s:
        enqueue(s, "test.write", {"key": "again"}, dedupe_key="k1")
        enqueue(s, "test.write", {"key": "b"}, dedupe_key="k2")
        enqueue(s, "test.write", {"key": "c"})  # no key: never deduplicated
        enqueue(s, "test.write", {"key": "c"})
    assert [(j.dedupe_key, j.payload["key"]) for j in jobs(db)] == [
        ("k1", "a"),
        ("k2", "b"),
        (None, "c"),
        (None, "c"),
    ]


def test_concurrent_enqueues_of_one_key_make_one_job(db: Database, clock: Any) -> None:
    others = [Database(db.url) for _ in range(4)]
    barrier = threading.Barrier(len(others))
    errors: list[BaseException] = []

    def go(d: Database, n: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(20):
                d.run(lambda s, i=i: enqueue(s, "test.write", {"by": n}, dedupe_key=f"same-{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(d, n)) for n, d in enumerate(others)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for d in others:
        d.dispose()
    assert errors == []
    assert sorted(j.dedupe_key or "" for j in jobs(db)) == sorted(f"same-{i}" for i in range(20))


def test_a_job_waits_for_its_run_at(db: Database, clock: Any, kinds: Any) -> None:
    with db.transaction() as s:
        enqueue(s, "test.write", {"key": "later"}, run_at=clock.now() + timedelta(minutes=5))
    assert claim(db, "w1") == []
    clock.advance(timedelta(minutes=5))
    (c,) = claim(db, "w1")
    assert (c.kind, c.attempt) == ("test.write", 1)
    assert execute(db, c, "w1") == "done"
    (job,) = jobs(db)
    assert (job.state, job.attempts, job.locked_by, job.lease_until) == ("done", 1, None, None)
    assert job.finished_at == clock.now()
    assert effect_rows(db) == [("later", 1)]


def test_claims_are_exclusive_and_in_run_at_order(db: Database, clock: Any, kinds: Any) -> None:
    with db.transaction() as s:
        for i in range(5):
            enqueue(s, "test.write", {"key": f"k{i}"}, run_at=clock.now() - timedelta(seconds=i))
    first = claim(db, "w1", limit=3)
    second = claim(db, "w2", limit=3)
    assert [c.id for c in first] == [3, 4, 5]  # the earliest run_at first
    assert [c.id for c in second] == [1, 2]
    assert claim(db, "w3", limit=3) == []
    running = {j.id: (j.state, j.locked_by) for j in jobs(db)}
    assert running == {
        1: ("running", "w2"),
        2: ("running", "w2"),
        3: ("running", "w1"),
        4: ("running", "w1"),
        5: ("running", "w1"),
    }


def test_a_failure_rolls_back_and_retries_with_backoff(
    db: Database, clock: Any, kinds: Any
) -> None:
    with db.transaction() as s:
        enqueue(s, "test.write", {"key": "f", "fail_until": 1})
    (c,) = claim(db, "w1")
    assert execute(db, c, "w1") == "failed"
    (job,) = jobs(db)
    assert effect_rows(db) == []  # the handler's write rolled back with it
    assert (job.state, job.attempts, job.locked_by) == ("failed", 1, None)
    assert job.last_error == "attempt 1: RuntimeError: planned failure 1"
    delay = job.run_at - clock.now()
    assert timedelta(seconds=1.5) <= delay <= timedelta(seconds=2.5)  # 2 s ± 25 %
    assert claim(db, "w1") == []  # not before its run_at
    clock.advance(delay)
    (c,) = claim(db, "w1")
    assert c.attempt == 2
    assert execute(db, c, "w1") == "done"
    assert effect_rows(db) == [("f", 2)]
    (job,) = jobs(db)
    assert (job.state, job.attempts) == ("done", 2)
    assert job.last_error == "attempt 1: RuntimeError: planned failure 1"  # history kept


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    import random

    rng = random.Random(1)
    for attempt, base in [(1, 2), (2, 4), (3, 8), (10, 1024)]:
        for _ in range(50):
            d = queue.backoff(attempt, rng=rng).total_seconds()
            assert base * 0.75 <= d <= base * 1.25
    for _ in range(50):  # capped at an hour, jitter still spreads retries below the cap
        assert 2700 <= queue.backoff(30, rng=rng).total_seconds() <= 3600


def test_dead_after_max_attempts_with_the_last_error(db: Database, clock: Any, kinds: Any) -> None:
    with db.transaction() as s:
        enqueue(s, "test.write", {"key": "x", "fail_until": 99})
    states = []
    for _ in range(3):
        clock.advance(timedelta(hours=2))
        (c,) = claim(db, "w1")
        states.append(execute(db, c, "w1"))
    assert states == ["failed", "failed", "dead"]
    (job,) = jobs(db)
    assert (job.state, job.attempts, job.finished_at) == ("dead", 3, clock.now())
    assert job.last_error == "attempt 3: RuntimeError: planned failure 3"
    clock.advance(timedelta(days=1))
    assert claim(db, "w1") == []
    assert effect_rows(db) == []
    # an operator retries it: a fresh count of attempts, due now
    with db.transaction() as s:
        assert queue.retry(s, job.id) is True
    (c,) = claim(db, "w1")
    assert c.attempt == 1


def test_an_expired_lease_is_claimed_again_and_the_old_holder_loses_it(
    db: Database, clock: Any, kinds: Any
) -> None:
    with db.transaction() as s:
        enqueue(s, "test.write", {"key": "lease"})
    (c1,) = claim(db, "w1", lease_s=30)
    clock.advance(timedelta(seconds=29))
    assert claim(db, "w2") == []  # still leased
    clock.advance(timedelta(seconds=2))
    (c2,) = claim(db, "w2", lease_s=30)  # w1 presumed dead
    assert (c2.id, c2.attempt) == (c1.id, 2)
    assert execute(db, c1, "w1") == "lost"  # w1 was only slow: it must not run the job
    assert kinds["write"] == 0
    assert execute(db, c2, "w2") == "done"
    assert effect_rows(db) == [("lease", 2)]
    assert kinds["write"] == 1


def test_a_lease_expired_after_the_last_attempt_is_buried(
    db: Database, clock: Any, kinds: Any
) -> None:
    with db.transaction() as s:
        enqueue(s, "test.write", {"key": "poison"})
    for _ in range(3):  # three workers die holding it
        assert len(claim(db, "w", lease_s=10)) == 1
        clock.advance(timedelta(seconds=11))
    assert queue.bury_exhausted(db) == 1
    (job,) = jobs(db)
    assert job.state == "dead"
    assert job.last_error is not None and "lease expired" in job.last_error
    assert claim(db, "w") == []


def test_an_unknown_kind_fails_like_any_error(db: Database, clock: Any) -> None:
    with db.transaction() as s:
        enqueue(s, "nobody.handles.this", {})
    (c,) = claim(db, "w1")
    assert execute(db, c, "w1") == "failed"
    (job,) = jobs(db)
    assert job.last_error is not None and "no handler registered" in job.last_error


def test_cancel_and_retry(db: Database, clock: Any, kinds: Any) -> None:
    with db.transaction() as s:
        enqueue(s, "test.write", {"key": "c"}, run_at=clock.now() + timedelta(hours=1))
        enqueue(s, "test.write", {"key": "r"})
    (c,) = claim(db, "w1")
    with db.transaction() as s:
        assert queue.cancel(s, c.id) is False  # running: not cancellable
        assert queue.cancel(s, 1) is True
        assert queue.cancel(s, 1) is False  # already cancelled
        assert queue.retry(s, c.id) is False  # running: nothing to retry
    assert execute(db, c, "w1") == "done"
    with db.transaction() as s:
        assert queue.retry(s, c.id) is False  # done jobs are not re-run
        assert queue.counts(s) == {"cancelled": 1, "done": 1}
        assert [j.id for j in queue.list_jobs(s, states=["cancelled"])] == [1]
        assert [j.id for j in queue.list_jobs(s, kind="test.write")] == [2, 1]
    clock.advance(timedelta(hours=2))
    assert claim(db, "w1") == []  # the cancelled one never runs
    assert effect_rows(db) == [("r", 1)]


def test_run_until_empty_runs_what_is_due(db: Database, clock: Any, kinds: Any) -> None:
    with db.transaction() as s:
        for i in range(25):
            enqueue(s, "test.write", {"key": f"n{i:02d}"})
        enqueue(s, "test.write", {"key": "future"}, run_at=clock.now() + timedelta(days=1))
    assert queue.run_until_empty(db) == 25
    assert len(effect_rows(db)) == 25


def test_handler_writes_and_done_mark_are_one_transaction(
    db: Database, clock: Any, kinds: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If marking the job done fails, the handler's effect is rolled back with it."""
    with db.transaction() as s:
        enqueue(s, "test.write", {"key": "atomic"})
    (c,) = claim(db, "w1")
    real_execute = Session.execute

    def failing_execute(self: Session, statement: Any, *a: Any, **kw: Any) -> Any:
        if "state" in str(statement) and "finished_at" in str(statement):
            raise RuntimeError("marking done failed")
        return real_execute(self, statement, *a, **kw)

    monkeypatch.setattr(Session, "execute", failing_execute)
    assert execute(db, c, "w1") == "failed"
    monkeypatch.setattr(Session, "execute", real_execute)
    assert kinds["write"] == 1  # the handler ran …
    assert effect_rows(db) == []  # … and its write rolled back with the failed done mark
    (job,) = jobs(db)
    assert (job.state, job.last_error) == ("failed", "attempt 1: RuntimeError: marking done failed")


def test_claimed_value_object() -> None:
    assert Claimed(1, "k", 2) == Claimed(1, "k", 2)
