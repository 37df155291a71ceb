"""Consumers with a batch handler (``consumer(..., batch=handler_many)``): the whole batch in
one call and one savepoint; a failure rolls it back and runs the batch event by event
through the per-event handler, which records the failure at its event."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.integration.events.consumer_support import checkpoint as _checkpoint
from tests.integration.events.consumer_support import (
    effects,
    emit_updates,
    positioned,
    record_effect,
)
from tests.integration.events.consumer_support import run_only as _only
from tests.itest import counts

from loyalist.events import consumers
from loyalist.events.consumers import consumer
from loyalist.kit.db import Database
from loyalist.models import EventFailure, OutboxEvent


class Both:
    """A per-event handler and its batch form; the batch fails (after writing) when it holds
    an event of ``bad`` while ``failing``, the per-event one fails at that event."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bad: set[int] = set()
        self.failing = True
        self.batches: list[list[int]] = []
        self.calls: list[int] = []

    def one(self, s: Session, ev: OutboxEvent) -> None:
        self.calls.append(int(ev.position or 0))
        record_effect(self.name, s, ev)
        if self.failing and ev.position in self.bad:
            raise RuntimeError(f"boom at {ev.position}")

    def many(self, s: Session, evs: list[OutboxEvent]) -> None:
        self.batches.append([int(ev.position or 0) for ev in evs])
        for ev in evs:
            record_effect(self.name, s, ev)
        if self.failing and self.bad & {ev.position for ev in evs}:
            raise RuntimeError("boom in the batch")


def test_a_batch_consumer_gets_the_batch_in_one_call_in_stream_order(stream: Database) -> None:
    h = Both("t.batch")
    consumer("t.batch", batch=h.many)(h.one)
    emit_updates(stream, 12, per_tx=5)
    assert _only(stream, "t.batch", limit=5) == 5
    assert _only(stream, "t.batch", limit=5) == 5
    assert _only(stream, "t.batch", limit=5) == 2
    assert _only(stream, "t.batch", limit=5) == 0
    assert h.batches == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]
    assert h.calls == []  # the per-event handler was never needed
    assert effects(stream, "t.batch") == positioned(stream)
    assert _checkpoint(stream, "t.batch") == 12
    assert counts(stream, ["event_receipt"]) == {"event_receipt": 12}


def test_a_failing_batch_is_rolled_back_and_run_event_by_event(
    stream: Database, clock: Any
) -> None:
    h = Both("t.batch")
    h.bad = {3}
    consumer("t.batch", batch=h.many, max_attempts=4)(h.one)
    emit_updates(stream, 5)
    ids = [e for e, _p in positioned(stream)]
    assert _only(stream, "t.batch") == 2  # 1, 2 handled one by one; waits at 3
    assert h.batches == [[1, 2, 3, 4, 5]]
    assert h.calls == [1, 2, 3]
    assert [p for _e, p in effects(stream, "t.batch")] == [1, 2]  # the batch's writes are gone
    with stream.transaction() as s:
        f = s.scalar(select(EventFailure).where(EventFailure.consumer == "t.batch"))
        assert f is not None
        assert (f.event_id, f.attempts, f.last_error) == (ids[2], 1, "RuntimeError: boom at 3")
    assert counts(stream, ["event_receipt"]) == {"event_receipt": 2}
    clock.advance(timedelta(seconds=1))
    h.failing = False
    assert _only(stream, "t.batch") == 3  # the waiting event goes one by one, then the rest
    assert effects(stream, "t.batch") == positioned(stream)
    assert _checkpoint(stream, "t.batch") == 5
    assert counts(stream, ["event_receipt", "event_failure"]) == {
        "event_receipt": 5,
        "event_failure": 0,
    }


def test_a_consumer_s_own_limit_sizes_its_batches_in_the_worker(stream: Database) -> None:
    h = Both("t.big")
    consumer("t.big", batch=h.many, limit=7)(h.one)
    consumer("t.small")(lambda s, ev: record_effect("t.small", s, ev))
    with pytest.raises(ValueError, match="limit must be at least 1"):
        consumer("t.none", limit=0)
    emit_updates(stream, 20, per_tx=10)
    consumers.run_pending(stream, limit=3)  # an explicit limit wins
    assert (_checkpoint(stream, "t.big"), _checkpoint(stream, "t.small")) == (3, 3)
    consumers.run_pending(stream)  # the worker's call: t.big takes 7, the other the default
    assert (_checkpoint(stream, "t.big"), _checkpoint(stream, "t.small")) == (10, 20)
    assert h.batches == [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10]]
