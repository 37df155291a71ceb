"""The daily pruning of idempotency records: records older than the 30-day replay window
go in batches (the next batch a job of its own); a request replayed within the window is
still answered once, after it the key is forgotten."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tests.itest import counts, new_member

from loyalist.idempotency import service as idempotency
from loyalist.idempotency import tasks as idempotency_tasks
from loyalist.jobs import registry
from loyalist.jobs.registry import JobContext
from loyalist.models import IdempotencyRecord, Job


def _keys(world: Any) -> list[str]:
    with world.db.transaction() as s:
        return sorted(s.scalars(select(IdempotencyRecord.key)))


def _run_job(world: Any, clock: Any) -> None:
    with world.db.transaction() as s:
        idempotency_tasks.prune(JobContext(s, 0, idempotency_tasks.PRUNE_JOB, {}, 1, clock.now()))


def _adjust(client: Any, mid: int, key: str) -> Any:
    return client.post(
        f"/v1/members/{mid}/adjustments",
        json={"points": 10, "reason": "pruning test"},
        headers={"Idempotency-Key": key},
    )


def test_records_older_than_the_window_go_and_replays_within_it_stay_once(
    world: Any, client: Any, clock: Any
) -> None:
    assert (idempotency_tasks.PRUNE_JOB, "50 3 * * *") in {
        (x.kind, x.cron) for x in registry.schedules()
    }
    assert timedelta(days=30) == idempotency.RETENTION
    mid = new_member(client, "13800000001")
    assert _adjust(client, mid, "old").status_code == 201
    clock.advance(timedelta(days=2))
    recent = _adjust(client, mid, "recent")
    assert recent.status_code == 201
    clock.advance(timedelta(days=28, seconds=1))  # "old": 30 days and 1 s; "recent": 28 days
    _run_job(world, clock)
    assert _keys(world) == ["recent"]
    # within the window the key still answers the first answer and writes nothing
    before = counts(world.db)
    again = _adjust(client, mid, "recent")
    assert (again.status_code, again.json()) == (201, recent.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert counts(world.db) == before
    # a record exactly at the edge of the window stays (strictly older goes)
    clock.advance(timedelta(days=2) - timedelta(seconds=1))
    _run_job(world, clock)
    assert _keys(world) == ["recent"]
    clock.advance(timedelta(microseconds=1))
    with world.db.transaction() as s:
        assert idempotency.prune(s, clock.now(), limit=10) == 1
    assert _keys(world) == []


def test_batches_enqueue_the_next_batch_while_full(
    world: Any, client: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid = new_member(client, "13800000002")
    for i in range(3):
        assert _adjust(client, mid, f"k{i}").status_code == 201
    clock.advance(timedelta(days=31))
    monkeypatch.setattr(idempotency_tasks, "BATCH", 2)

    def queued() -> int:
        with world.db.transaction() as s:
            return len(s.scalars(select(Job).where(Job.kind == idempotency_tasks.PRUNE_JOB)).all())

    _run_job(world, clock)
    assert (_keys(world), queued()) == (["k2"], 1)  # oldest first; a full batch: one more job
    _run_job(world, clock)
    assert (_keys(world), queued()) == ([], 1)  # a short batch: no further job
