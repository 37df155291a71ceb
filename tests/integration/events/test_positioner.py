"""The stream positioner (issue 11, session 9): one thread per process gives committed
events their positions; a committing thread asks, never runs a pass itself, and returns
once a pass that started after its commit has ended (or after ``WAIT_S``). Positions stay
gap-free, each event gets exactly one, in id order."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from tests.integration.events.consumer_support import emit_updates, positioned

from loyalist.events import service as events
from loyalist.kit.db import Database
from loyalist.models import OutboxEvent


def _emit(db: Database, n: int = 1) -> list[str]:
    """``n`` events in one transaction; their event ids."""
    with db.transaction() as s:
        return [
            events.emit(
                s,
                "member.updated",
                {"member_id": 1, "fields": ["name"], "by": "test"},
                org_path="/",
            ).event_id
            for _ in range(n)
        ]


def _positions(db: Database, ids: list[str]) -> list[int | None]:
    with db.engine.connect() as conn:
        got = dict(
            conn.execute(
                select(OutboxEvent.event_id, OutboxEvent.position).where(
                    OutboxEvent.event_id.in_(ids)
                )
            ).all()
        )
    return [got[i] for i in ids]


class Gate:
    """Wraps ``events.sequence``: records the thread of every call, holds the first
    ``hold`` calls until opened, and raises in the first ``fail`` calls."""

    def __init__(self, hold: int = 0, fail: int = 0) -> None:
        self.real: Callable[..., int] = events.sequence
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.hold, self.fail = hold, fail
        self.threads: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, engine: Engine, *, batch: int = 10_000) -> int:
        with self.lock:
            self.threads.append(threading.current_thread().name)
            n = len(self.threads)
        if n <= self.hold:
            self.entered.set()
            assert self.opened.wait(30), "the test never opened the gate"
        if n <= self.fail:
            raise RuntimeError("the database went away")
        return self.real(engine, batch=batch)


@pytest.fixture(autouse=True)
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow, shared machine must not look like a late pass (that case has its own test)."""
    monkeypatch.setattr(events, "WAIT_S", 60.0)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Gate]]:
    made: list[Gate] = []

    def make(**kw: int) -> Gate:
        g = Gate(**kw)
        monkeypatch.setattr(events, "sequence", g)
        made.append(g)
        return g

    yield make
    for g in made:
        g.opened.set()


def test_concurrent_commits_each_event_positioned_once_contiguous_before_return(
    stream: Database,
) -> None:
    threads, per_thread, per_tx = 8, 6, 2
    late: list[tuple[str, list[int | None]]] = []
    errors: list[BaseException] = []
    seen: dict[str, list[list[int | None]]] = {}  # per thread, its transactions' positions

    def commit_many() -> None:
        mine = seen.setdefault(threading.current_thread().name, [])
        try:
            for _ in range(per_thread):
                ids = _emit(stream, per_tx)
                got = _positions(stream, ids)  # the committing call has returned
                mine.append(got)
                if None in got:
                    late.append((threading.current_thread().name, got))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=commit_many) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert errors == []
    assert late == []  # every request's own events had their positions when it returned
    total = threads * per_thread * per_tx
    with stream.engine.connect() as conn:
        positions = conn.scalars(select(OutboxEvent.position)).all()
    # exactly one position each, 1..N without a gap or a duplicate
    assert len(positions) == total
    assert sorted(p for p in positions if p is not None) == list(range(1, total + 1))
    # visibility order: a thread's next transaction committed after its previous one was
    # positioned, so it comes later in the stream; within a transaction, in id order
    for txs in seen.values():
        flat = [p for tx in txs for p in tx if p is not None]
        assert len(flat) == per_thread * per_tx
        assert flat == sorted(flat), txs


def test_one_pass_serves_every_commit_that_arrived_before_it_started(
    stream: Database, gate: Callable[..., Gate]
) -> None:
    _emit(stream)  # the positioner thread exists
    g = gate(hold=1)
    before = events._positioner.passes
    asked = events._positioner._asked
    first = threading.Thread(target=_emit, args=(stream,))
    first.start()
    assert g.entered.wait(10)  # pass 1 is held before its transaction
    others = [threading.Thread(target=_emit, args=(stream, 2)) for _ in range(5)]
    for t in others:
        t.start()
    deadline = time.monotonic() + 10
    while events._positioner._asked < asked + 6 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert events._positioner._asked == asked + 6  # the five others asked meanwhile
    g.opened.set()
    for t in [first, *others]:
        t.join(10)
    # pass 1 (held) and ONE pass for the five commits that asked while it was held
    assert events._positioner.passes - before == 2
    assert len(g.threads) == 2
    assert set(g.threads) == {"loyalist-positioner"}  # no request ran a pass itself
    assert [p for _e, p in positioned(stream)] == list(range(1, 1 + 1 + 1 + 10))


def test_a_late_pass_releases_the_request_after_wait_s(
    stream: Database, gate: Callable[..., Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "WAIT_S", 0.2)
    g = gate(hold=1)
    t0 = time.monotonic()
    ids = _emit(stream)
    waited = time.monotonic() - t0
    assert g.entered.is_set() and not g.opened.is_set()
    assert 0.2 <= waited < 20.0  # returned without its pass (held 30 s), after WAIT_S
    assert _positions(stream, ids) == [None]
    g.opened.set()  # the pass goes on and positions it
    deadline = time.monotonic() + 10
    while _positions(stream, ids) == [None] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _positions(stream, ids) == [1]


def test_the_positioner_survives_a_failing_pass_and_the_backstop_positions(
    stream: Database, gate: Callable[..., Gate], caplog: pytest.LogCaptureFixture
) -> None:
    _emit(stream)
    thread = events._positioner.thread
    assert thread is not None and thread.is_alive()
    g = gate(fail=1)
    ids = _emit(stream)  # its pass fails: the request returns all the same
    assert _positions(stream, ids) == [None]
    assert "could not give committed events their stream positions" in caplog.text
    assert events._positioner.thread is thread and thread.is_alive()
    assert events.sequence_pending(stream) == 1  # the worker's backstop
    assert _positions(stream, ids) == [2]
    more = _emit(stream, 2)  # and the same thread positions the next commit
    assert _positions(stream, more) == [3, 4]
    assert events._positioner.thread is thread
    assert g.threads == ["loyalist-positioner", "MainThread", "loyalist-positioner"]


def test_stopped_positioner_restarts_on_the_next_commit(stream: Database) -> None:
    _emit(stream)
    old = events._positioner.thread
    assert old is not None
    events.stop_positioner()
    assert not old.is_alive()
    assert events._positioner.thread is None
    ids = _emit(stream, 3)
    assert _positions(stream, ids) == [2, 3, 4]
    new = events._positioner.thread
    assert new is not None and new is not old and new.is_alive()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_positions_with_its_own_thread(stream: Database, tmp_path: Any) -> None:
    emit_updates(stream, 1)  # the parent's positioner runs
    parent_thread = events._positioner.thread
    assert parent_thread is not None and parent_thread.is_alive()
    stream.engine.dispose(close=False)  # the child must not share the parent's connections
    out = tmp_path / "child"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            child = Database(stream.url)
            fresh = events._positioner.thread is None and events._positioner.passes == 0
            ids = _emit(child, 2)
            got = _positions(child, ids)
            thread = events._positioner.thread
            alive = thread is not None and thread.is_alive() and thread is not parent_thread
            out.write_text(f"{fresh} {alive} {got}")
            child.dispose()
            code = 0
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert out.read_text() == "True True [2, 3]"
    assert [p for _e, p in positioned(stream)] == [1, 2, 3]
