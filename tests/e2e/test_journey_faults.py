"""Journeys exactly once under faults, with real ``loyalist worker`` processes.

1,000 members join; a journey greets each (message A), waits 3 days, then sends message B
and tags them. Workers run the ``journeys`` consumer and the wake-up jobs; they are
SIGKILLed while members enter, stopped, then restarted with the clock moved 3 days (and a
minute) forward and SIGKILLed again while the waits fire. Afterwards every member has
exactly one run, completed, and exactly one A and one B; no B before the 3 days were over;
no job failed for good. On PostgreSQL two workers share the work, on SQLite one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select
from tests.e2e.worker_procs import wait_until_running
from tests.server import ROOT
from tests.support import build_world

from loyalist.journey import service as journeys
from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import as_utc
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import ActionReceipt, Job, JourneyRun, JourneyStep, Message

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

MEMBERS = 1000
SHIFT = timedelta(days=3, minutes=1)


def _text(t: str) -> dict[str, object]:
    return {"template": "notice", "channel": "sms", "params": {"text": t}}


JOURNEY = {
    "key": "fault",
    "name": "fault",
    "marketing": False,
    "entry": {"event": "member.created"},
    "steps": [
        {"id": "a", "type": "action", "action": "send_message", "params": _text("A")},
        {"id": "wait", "type": "wait", "duration": {"days": 3}},
        {"id": "b", "type": "action", "action": "send_message", "params": _text("B")},
        {"id": "tag", "type": "action", "action": "add_tag", "params": {"tag": "done"}},
    ],
}


class Workers:
    def __init__(self, db: Database, log_dir: Path) -> None:
        self.db, self.log_dir = db, log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.log_of: dict[str, Path] = {}
        self.started = 0
        self.kills = 0

    def start(self, name: str, threads: int, shift: timedelta) -> None:
        self.started += 1
        self.log_of[name] = self.log_dir / f"{name}-{self.started}.log"
        log = self.log_of[name].open("ab")
        self.procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loyalist.cli.main",
                "worker",
                "--import",
                "tests.e2e.journey_fault_clock",
                "--concurrency",
                str(threads),
                "--lease",
                "3",
                "--poll-interval",
                "0.05",
            ],
            cwd=ROOT,
            env={
                **os.environ,
                "LOYALIST_DATABASE_URL": self.db.url,
                "LOYALIST_TEST_CLOCK_SHIFT_S": str(shift.total_seconds()),
                "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        assert proc.poll() is None, self.logs()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        self.kills += 1

    def stop_all(self) -> list[int | None]:
        codes = []
        for name, proc in self.procs.items():
            if proc.poll() is None:
                wait_until_running(proc, self.log_of[name])
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)
            codes.append(proc.returncode)
        self.procs.clear()
        return codes

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.log_dir.glob("*.log"))


_readers: dict[str, Engine] = {}


def _steps(db: Database, step: str) -> int:
    """A plain read: on SQLite (WAL) without ``BEGIN IMMEDIATE``, so it never waits for a
    worker's consumer batch, which may hold the writer's lock for a while."""
    if db.dialect == "postgresql":
        engine = db.engine
    else:
        engine = _readers.setdefault(db.url, create_engine(db.url))
    q = select(func.count()).select_from(JourneyStep).where(JourneyStep.step_id == step)
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def _wait(db: Database, workers: Workers, step: str, n: int, deadline: float) -> None:
    while _steps(db, step) < n:
        assert time.monotonic() < deadline, (
            f"stalled at {_steps(db, step)} {step}: {workers.logs()}"
        )
        time.sleep(0.1)


def test_a_three_day_wait_fires_once_per_member_through_kills_and_a_moved_clock(
    db: Database, tmp_path: Path
) -> None:
    postgres = db.dialect == "postgresql"
    # 1,000 members through two workers on PostgreSQL (the figure); SQLite has one
    # writer, so its single worker takes a third of them (the same kills and clock move).
    n_members = MEMBERS if postgres else MEMBERS * 3 // 10
    build_world(db)
    with db.transaction() as s:
        journeys.publish(s, SYSTEM, {"journeys": [JOURNEY]}, "fault test")
    with db.transaction() as s:
        for i in range(n_members):
            members.create(s, SYSTEM, MemberCreate(phone=f"1370000{i:04d}"))
    names = ["a", "b"] if postgres else ["a"]
    threads = 4 if postgres else 1
    workers = Workers(db, tmp_path)
    deadline = time.monotonic() + 780
    try:
        # Members enter (the consumer, in batches): kill a worker a third of the way in.
        for name in names:
            workers.start(name, threads, timedelta(0))
        _wait(db, workers, "a", n_members // 3, deadline)
        workers.kill(names[0])
        workers.start(names[0], threads, timedelta(0))
        _wait(db, workers, "a", n_members, deadline)
        time.sleep(1)  # nothing more is due for three days
        assert _steps(db, "b") == 0
        assert workers.stop_all() == [0] * len(names), workers.logs()
        # Three days later: the waits fire; kill a worker a third of the way in.
        for name in names:
            workers.start(name, threads, SHIFT)
        _wait(db, workers, "b", n_members // 3, deadline)
        workers.kill(names[-1])
        workers.start(names[-1], threads, SHIFT)
        _wait(db, workers, "tag", n_members, deadline)
    finally:
        codes = workers.stop_all()
        for engine in _readers.values():
            engine.dispose()
    assert workers.kills == 2
    assert codes == [0] * len(names), workers.logs()

    with db.transaction() as s:
        runs = list(s.scalars(select(JourneyRun)))
        steps = list(s.scalars(select(JourneyStep)))
        messages = list(s.scalars(select(Message)))
        receipts = s.scalar(select(func.count()).select_from(ActionReceipt))
        bad_jobs = s.scalar(
            select(func.count()).select_from(Job).where(Job.state.in_(["dead", "failed"]))
        )
    assert len(runs) == n_members and {r.state for r in runs} == {"completed"}
    assert len({r.member_id for r in runs}) == n_members
    per_run = Counter((s.run_id, s.step_id) for s in steps)
    assert len(per_run) == n_members * 4 and set(per_run.values()) == {1}
    assert {s.outcome for s in steps if s.step_id == "wait"} == {"waited"}
    sent = Counter((m.recipient, m.params["text"]) for m in messages)
    assert len(sent) == n_members * 2 and set(sent.values()) == {1}
    assert receipts == n_members * 3
    assert bad_jobs == 0
    entered = {r.id: as_utc(r.entered_at) for r in runs}
    for s in steps:
        if s.step_id == "b":
            assert as_utc(s.at) >= entered[s.run_id] + timedelta(days=3)
