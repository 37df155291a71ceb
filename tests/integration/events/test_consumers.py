"""Consumers of the event stream: each has its own checkpoint, gets every event at least
once in stream order, applies its database effects once (receipts), retries a failing
handler with backoff and then parks the event without blocking for ever."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, event, select, text, update
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
from loyalist.models import EventConsumer, EventFailure, EventReceipt, OutboxEvent


def test_positions_are_given_at_commit_not_on_read(stream: Database) -> None:
    emit_updates(stream, 5, per_tx=2)
    got = positioned(stream)
    assert [p for _e, p in got] == [1, 2, 3, 4, 5]
    with stream.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM outbox_event")).scalar_one() == 5


def test_every_event_once_in_stream_order_from_the_checkpoint(stream: Database) -> None:
    consumer("t.all")(lambda s, ev: record_effect("t.all", s, ev))
    emit_updates(stream, 7, per_tx=3)
    assert _only(stream, "t.all", limit=3) == 3
    assert _checkpoint(stream, "t.all") == 3
    assert _only(stream, "t.all", limit=3) == 3
    assert _only(stream, "t.all", limit=3) == 1
    assert _only(stream, "t.all", limit=3) == 0
    assert effects(stream, "t.all") == positioned(stream)
    emit_updates(stream, 2)
    assert consumers.run_pending(stream) >= 2
    assert effects(stream, "t.all") == positioned(stream)
    # its own receipts (other consumers registered in this process keep theirs)
    with stream.transaction() as s:
        mine = s.scalars(select(EventReceipt.event_id).where(EventReceipt.consumer == "t.all"))
        assert len(list(mine)) == 9


def test_types_filter_and_the_checkpoint_moves_past_other_events(stream: Database) -> None:
    consumer("t.created", types={"member.created"})(lambda s, ev: record_effect("t.created", s, ev))
    emit_updates(stream, 4)
    assert _only(stream, "t.created") == 0
    assert _checkpoint(stream, "t.created") == 4  # nothing of its types up to the head
    assert effects(stream, "t.created") == []
    with pytest.raises(ValueError, match="unknown event types"):
        consumer("t.bad", types={"nope.x"})


def test_a_receipt_keeps_effects_once_when_the_checkpoint_goes_back(stream: Database) -> None:
    consumer("t.once")(lambda s, ev: record_effect("t.once", s, ev))
    emit_updates(stream, 4)
    assert _only(stream, "t.once") == 4
    with stream.transaction() as s:
        s.execute(update(EventConsumer).where(EventConsumer.name == "t.once").values(position=1))
    assert _only(stream, "t.once") == 0  # receipts: the three events are not applied again
    assert _checkpoint(stream, "t.once") == 4
    assert effects(stream, "t.once") == positioned(stream)


def test_consumers_keep_their_own_checkpoints(stream: Database) -> None:
    consumer("t.a")(lambda s, ev: record_effect("t.a", s, ev))
    consumer("t.b")(lambda s, ev: record_effect("t.b", s, ev))
    emit_updates(stream, 3)
    assert _only(stream, "t.a") == 3
    assert (_checkpoint(stream, "t.a"), len(effects(stream, "t.b"))) == (3, 0)
    assert _only(stream, "t.b") == 3
    assert effects(stream, "t.a") == effects(stream, "t.b") == positioned(stream)


class Flaky:
    """Fails on the events in ``bad`` while ``failing`` is set; writes before failing, so a
    partial effect would show."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bad: set[int] = set()
        self.failing = True
        self.calls: list[int] = []

    def __call__(self, s: Session, ev: OutboxEvent) -> None:
        self.calls.append(int(ev.position or 0))
        record_effect(self.name, s, ev)
        if self.failing and ev.position in self.bad:
            raise RuntimeError(f"boom at {ev.position}")


def _failure(db: Database, name: str) -> tuple[str, int, bool, str] | None:
    with db.transaction() as s:
        f = s.scalar(select(EventFailure).where(EventFailure.consumer == name))
        if f is None:
            return None
        return f.event_id, f.attempts, f.parked_at is not None, f.last_error


def test_a_failing_handler_is_retried_with_backoff_in_order(stream: Database, clock: Any) -> None:
    h = Flaky("t.flaky")
    h.bad = {3}
    consumer("t.flaky", max_attempts=4)(h)
    emit_updates(stream, 5)
    ids = [e for e, _p in positioned(stream)]
    assert _only(stream, "t.flaky") == 2  # 1, 2 handled; waits at 3
    assert _checkpoint(stream, "t.flaky") == 2
    assert [p for _e, p in effects(stream, "t.flaky")] == [1, 2]  # 3's write rolled back
    assert _failure(stream, "t.flaky") == (ids[2], 1, False, "RuntimeError: boom at 3")
    # before the backoff (1 s) nothing is tried; the consumer does not skip ahead
    assert _only(stream, "t.flaky") == 0
    assert h.calls == [1, 2, 3]
    clock.advance(timedelta(seconds=1))
    assert _only(stream, "t.flaky") == 0
    assert _failure(stream, "t.flaky") == (ids[2], 2, False, "RuntimeError: boom at 3")
    clock.advance(timedelta(seconds=1))
    assert _only(stream, "t.flaky") == 0  # the second wait is 2 s
    clock.advance(timedelta(seconds=1))
    h.failing = False
    assert _only(stream, "t.flaky") == 3  # 3, 4, 5 in order
    assert _failure(stream, "t.flaky") is None
    assert h.calls == [1, 2, 3, 3, 3, 4, 5]
    assert effects(stream, "t.flaky") == positioned(stream)


def test_a_together_consumer_runs_a_batch_in_a_fixed_number_of_statements(
    stream: Database,
) -> None:
    h = Flaky("t.together")
    consumer("t.together", together=True)(h)
    emit_updates(stream, 40, per_tx=8)
    sent: list[str] = []

    def count(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(stream.engine, "before_cursor_execute", count)
    try:
        assert _only(stream, "t.together") == 40
    finally:
        event.remove(stream.engine, "before_cursor_execute", count)
    # 40 handler inserts; the rest (checkpoint, failure, head, events, receipts, one
    # savepoint and its release, the receipts' one insert, the checkpoint update) is fixed
    assert len(sent) - 40 <= 12
    receipt_inserts = [q for q in sent if q.lstrip().upper().startswith("INSERT INTO EVENT_RECE")]
    assert len(receipt_inserts) == 1
    assert effects(stream, "t.together") == positioned(stream)
    assert _checkpoint(stream, "t.together") == 40
    assert counts(stream, ["event_receipt"]) == {"event_receipt": 40}


def test_a_together_consumer_falls_back_to_one_by_one_and_applies_each_effect_once(
    stream: Database, clock: Any
) -> None:
    h = Flaky("t.together")
    h.bad = {3}
    consumer("t.together", together=True, max_attempts=4)(h)
    emit_updates(stream, 5)
    ids = [e for e, _p in positioned(stream)]
    assert _only(stream, "t.together") == 2  # 1, 2 handled; waits at 3
    # the batch ran together, failed at 3, was rolled back and run again one by one
    assert h.calls == [1, 2, 3, 1, 2, 3]
    assert [p for _e, p in effects(stream, "t.together")] == [1, 2]
    assert _failure(stream, "t.together") == (ids[2], 1, False, "RuntimeError: boom at 3")
    clock.advance(timedelta(seconds=1))
    h.failing = False
    assert _only(stream, "t.together") == 3  # the retry runs one by one, then the rest
    assert _failure(stream, "t.together") is None
    assert effects(stream, "t.together") == positioned(stream)
    assert _checkpoint(stream, "t.together") == 5


def test_after_max_attempts_the_event_is_parked_and_the_rest_flows(
    stream: Database, clock: Any
) -> None:
    h = Flaky("t.park")
    h.bad = {2}
    consumer("t.park", max_attempts=3)(h)
    emit_updates(stream, 4)
    ids = [e for e, _p in positioned(stream)]
    assert _only(stream, "t.park") == 1
    for _ in range(2):
        clock.advance(consumers.MAX_BACKOFF)
        _only(stream, "t.park")
    assert _failure(stream, "t.park") == (ids[1], 3, True, "RuntimeError: boom at 2")
    assert _checkpoint(stream, "t.park") == 4
    assert [p for _e, p in effects(stream, "t.park")] == [1, 3, 4]
    with stream.transaction() as s:
        lag = {x.name: x for x in consumers.lag(s)}["t.park"]
        assert (lag.events_behind, lag.parked, lag.retrying) == (0, 1, 0)
        assert lag.last_error == "RuntimeError: boom at 2"
        assert [f.event_id for f in consumers.parked_events(s, "t.park")] == [ids[1]]
    # fixed: an operator retries the parked event; it applies once
    h.failing = False
    with stream.transaction() as s:
        assert consumers.retry_parked(s, "t.park", ids[1]) is True
    assert sorted(p for _e, p in effects(stream, "t.park")) == [1, 2, 3, 4]
    assert _failure(stream, "t.park") is None
    with stream.transaction() as s, pytest.raises(LookupError):
        consumers.retry_parked(s, "t.park", ids[1])
    with stream.transaction() as s:
        assert s.scalar(select(EventReceipt.position).where(EventReceipt.event_id == ids[1])) == 2


def test_a_parked_retry_that_fails_again_stays_parked(stream: Database, clock: Any) -> None:
    h = Flaky("t.again")
    h.bad = {1}
    consumer("t.again", max_attempts=1)(h)
    emit_updates(stream, 2)
    assert _only(stream, "t.again") == 2  # 1 parked at once, 2 handled
    eid = positioned(stream)[0][0]
    with stream.transaction() as s:
        assert consumers.retry_parked(s, "t.again", eid) is False
    assert _failure(stream, "t.again") == (eid, 2, True, "RuntimeError: boom at 1")
    assert [p for _e, p in effects(stream, "t.again")] == [2]


def test_lag_counts_events_and_seconds_behind(stream: Database, clock: Any) -> None:
    consumer("t.lag")(lambda s, ev: record_effect("t.lag", s, ev))
    emit_updates(stream, 2)
    assert _only(stream, "t.lag") == 2
    clock.advance(timedelta(seconds=30))
    emit_updates(stream, 3)
    with stream.transaction() as s:
        lag = {x.name: x for x in consumers.lag(s)}["t.lag"]
    assert (lag.position, lag.events_behind, lag.seconds_behind, lag.handled) == (2, 3, 30.0, 2)
    consumers.run_pending(stream)
    with stream.transaction() as s:
        lag = {x.name: x for x in consumers.lag(s)}["t.lag"]
    assert (lag.position, lag.events_behind, lag.seconds_behind, lag.handled) == (5, 0, 0.0, 5)


def test_a_crashed_sequencer_is_caught_up_by_the_backstop(stream: Database) -> None:
    from loyalist.events import service as events

    emit_updates(stream, 2)
    with stream.transaction() as s:  # as if the process died between commit and sequencing
        s.execute(update(OutboxEvent).where(OutboxEvent.position == 2).values(position=None))
    assert [p for _e, p in positioned(stream)] == [1]
    assert events.sequence_pending(stream) == 1
    assert events.sequence_pending(stream) == 0
    assert [p for _e, p in positioned(stream)] == [1, 2]


def _checkpoint_or_zero(db: Database, name: str) -> int:
    """Read without taking SQLite's writer lock (a plain engine: WAL readers never wait)."""
    engine = create_engine(db.url)
    try:
        with engine.connect() as conn:
            got = conn.scalar(select(EventConsumer.position).where(EventConsumer.name == name))
            return int(got or 0)
    finally:
        engine.dispose()


def test_a_consumer_killed_mid_batch_resumes_from_its_checkpoint(
    stream: Database, tmp_path: Any
) -> None:
    """SIGKILL while a batch is half handled: the batch's effects roll back with it, the
    restarted consumer starts again at its checkpoint; every event is applied exactly once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.integration.events.consumer_child import NAME

    emit_updates(stream, 1000, per_tx=250)
    total = len(positioned(stream))
    progress = tmp_path / "progress"

    def child(*extra: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "tests.integration.events.consumer_child"]
        return subprocess.Popen([*cmd, stream.url, str(progress), *extra])

    kills = 0
    for _attempt in range(10):
        proc = child()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            done = _checkpoint_or_zero(stream, NAME)
            handling = int(progress.read_text() or 0) if progress.exists() else 0
            if done > 0 and handling > done + 20:  # well inside an uncommitted batch
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done = _checkpoint_or_zero(stream, NAME)
        handling = int(progress.read_text() or 0) if progress.exists() else 0
        if done < handling:
            kills += 1
            # nothing past the checkpoint was applied: the half batch rolled back
            assert [p for _e, p in effects(stream, NAME)] == list(range(1, done + 1))
        if kills == 2:
            break
    assert kills == 2, "the consumer was never killed in the middle of a batch"
    restarted = child("--until-idle")
    assert restarted.wait(timeout=300) == 0
    assert effects(stream, NAME) == positioned(stream)  # each once, in stream order
    assert _checkpoint_or_zero(stream, NAME) == total
    assert counts(stream, ["event_receipt"]) == {"event_receipt": total}
