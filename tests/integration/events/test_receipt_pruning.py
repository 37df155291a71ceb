"""The daily pruning of event receipts: a receipt goes only when its event is at or below
its consumer's checkpoint and it is older than 7 days; receipts a run may still read (ahead
of a checkpoint moved back, an event still failing) stay, and a consumer run after pruning
applies nothing twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from tests.integration.events.consumer_support import (
    effects,
    emit_updates,
    positioned,
    record_effect,
)

from loyalist.events import consumers
from loyalist.events.consumers import consumer
from loyalist.idempotency import tasks as event_tasks
from loyalist.jobs import registry
from loyalist.jobs.registry import JobContext
from loyalist.kit.db import Database
from loyalist.models import EventConsumer, EventFailure, EventReceipt, Job


def _run(db: Database, name: str, *, limit: int = 500) -> int:
    c = next(c for c in consumers.registered() if c.name == name)
    return db.run(lambda s: consumers.run_batch(s, c, limit=limit))


def _receipts(db: Database, name: str) -> list[int]:
    with db.transaction() as s:
        q = select(EventReceipt.position).where(EventReceipt.consumer == name)
        return sorted(int(p) for p in s.scalars(q))


def _job(db: Database, clock: Any) -> None:
    with db.transaction() as s:
        event_tasks.prune_receipts(
            JobContext(s, 0, event_tasks.PRUNE_RECEIPTS_JOB, {}, 1, clock.now())
        )


def test_only_receipts_behind_the_checkpoint_and_older_than_a_week_go(
    stream: Database, clock: Any
) -> None:
    assert (event_tasks.PRUNE_RECEIPTS_JOB, "55 3 * * *") in {
        (x.kind, x.cron) for x in registry.schedules()
    }
    for name in ("t.fast", "t.slow", "t.moved"):
        consumer(name)(lambda s, ev, name=name: record_effect(name, s, ev))
    emit_updates(stream, 6)
    assert _run(stream, "t.fast") == 6
    assert _run(stream, "t.moved") == 6
    assert _run(stream, "t.slow", limit=3) == 3
    first = positioned(stream)[0][0]
    # t.moved's checkpoint moved back by hand to 2: its receipts 3..6 are still needed
    with stream.transaction() as s:
        s.execute(update(EventConsumer).where(EventConsumer.name == "t.moved").values(position=2))
        # an event t.fast failed on and that waits for an operator keeps its receipt
        s.add(
            EventFailure(
                consumer="t.fast",
                event_id=first,
                position=1,
                attempts=8,
                last_error="test",
                first_failed_at=clock.now(),
                retry_at=clock.now(),
                parked_at=clock.now(),
            )
        )
    clock.advance(timedelta(days=7))
    emit_updates(stream, 1)  # event 7, handled a week later: a fresh receipt
    assert _run(stream, "t.fast") == 1
    _job(stream, clock)  # exactly 7 days: nothing is old enough yet
    assert _receipts(stream, "t.fast") == [1, 2, 3, 4, 5, 6, 7]
    clock.advance(timedelta(seconds=1))
    _job(stream, clock)
    assert _receipts(stream, "t.fast") == [1, 7]  # the failing event's and the fresh one stay
    assert _receipts(stream, "t.slow") == []  # 1..3 at or below its checkpoint 3
    assert _receipts(stream, "t.moved") == [3, 4, 5, 6]  # ahead of its checkpoint 2
    # nothing still needed went: t.moved runs again from 2 and applies nothing twice
    assert _run(stream, "t.moved") == 1  # event 7 only
    assert effects(stream, "t.moved") == positioned(stream)
    assert _run(stream, "t.slow") == 4  # 4..7, each once
    assert effects(stream, "t.slow") == positioned(stream)


def test_batches_enqueue_the_next_batch_while_full(
    stream: Database, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer("t.batch")(lambda s, ev: record_effect("t.batch", s, ev))
    emit_updates(stream, 3)
    assert _run(stream, "t.batch") == 3
    clock.advance(timedelta(days=8))
    monkeypatch.setattr(event_tasks, "BATCH", 2)

    def queued() -> int:
        with stream.transaction() as s:
            return len(
                s.scalars(select(Job).where(Job.kind == event_tasks.PRUNE_RECEIPTS_JOB)).all()
            )

    _job(stream, clock)
    assert (_receipts(stream, "t.batch"), queued()) == ([3], 1)  # oldest positions first
    _job(stream, clock)
    assert (_receipts(stream, "t.batch"), queued()) == ([], 1)
