"""Exactly-once job effects under faults, with real ``loyalist worker`` processes.

2,000 jobs due over a few seconds of the real clock, 10 % failing on their first try; on
PostgreSQL two workers (4 threads each) share the queue, on SQLite one worker runs it; the
workers are SIGKILLed twice mid-run and restarted. On PostgreSQL each kill lands with jobs in
hand (the test kills again until one does) and those jobs are finished by a later claim.
Afterwards every job is done (none lost, none dead), every job's effect row exists exactly
once, the failed ones were retried on their backoff schedule and never before it, and no job
ran before its run_at.

Runs on the database the suite runs on (LOYALIST_TEST_DATABASE): under CI on PostgreSQL it
fails, never skips, when the database is unreachable (the ``db`` fixture connects).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.e2e.jobs_fault_kind import KIND, effects
from tests.e2e.worker_procs import wait_until_running
from tests.server import ROOT

from loyalist.jobs.queue import enqueue
from loyalist.kit.clock import as_utc, utcnow
from loyalist.kit.db import Database
from loyalist.models import Job

pytestmark = [pytest.mark.timeout(480), pytest.mark.slow]

JOBS = 2000
FAILING = JOBS // 10
SPREAD_S = 4.0
LEASE_S = 3


class Workers:
    def __init__(self, db: Database, log_dir: Path) -> None:
        self.db = db
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.log_of: dict[str, Path] = {}
        self.kills = 0
        self.started = 0

    def start(self, name: str, threads: int) -> None:
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
                "tests.e2e.jobs_fault_kind",
                "--concurrency",
                str(threads),
                "--lease",
                str(LEASE_S),
                "--poll-interval",
                "0.05",
            ],
            cwd=ROOT,
            env={
                **os.environ,
                "LOYALIST_DATABASE_URL": self.db.url,
                "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        assert proc.poll() is None, f"worker {name} had exited: {self.logs()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        self.kills += 1

    def stop_all(self) -> list[int | None]:
        codes = []
        for name, proc in self.procs.items():
            if proc.poll() is None:
                wait_until_running(proc, self.log_of[name])
                proc.send_signal(signal.SIGTERM)  # a graceful stop: finish what is in hand
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)
            codes.append(proc.returncode)
        return codes

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.log_dir.glob("*.log"))


def _effect_count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(effects)).scalar_one())


def _wait_for(db: Database, workers: Workers, effects_at_least: int, deadline: float) -> None:
    while _effect_count(db) < effects_at_least:
        assert time.monotonic() < deadline, f"stalled at {_effect_count(db)}: {workers.logs()}"
        time.sleep(0.05)


def _held_by(db: Database, pid: int) -> dict[int, int]:
    """The jobs a worker process holds (claimed, not finished): id -> attempts."""
    with db.engine.connect() as conn:
        q = select(Job.id, Job.attempts).where(
            Job.kind == KIND, Job.state == "running", Job.locked_by.like(f"%:{pid}:%")
        )
        return {int(r.id): int(r.attempts) for r in conn.execute(q)}


def _wait_until_holding(db: Database, pid: int, deadline: float) -> None:
    while not _held_by(db, pid):
        assert time.monotonic() < deadline, f"worker {pid} never held a job"
        time.sleep(0.002)


def _open_jobs(db: Database) -> int:
    with db.transaction() as s:
        q = select(func.count()).select_from(Job).where(Job.kind == KIND, Job.state != "done")
        return int(s.scalar(q) or 0)


@pytest.fixture
def fault_table(db: Database) -> Any:
    effects.drop(db.engine, checkfirst=True)
    effects.create(db.engine)
    yield effects
    effects.drop(db.engine, checkfirst=True)


def test_jobs_apply_exactly_once_with_workers_killed_midway(
    db: Database, fault_table: Any, tmp_path: Path
) -> None:
    postgres = db.dialect == "postgresql"
    rng = random.Random(20261206)
    failing = set(rng.sample(range(JOBS), FAILING))
    start = utcnow() + timedelta(seconds=2)
    due: dict[str, datetime] = {}
    with db.transaction() as s:
        for i in range(JOBS):
            key = f"job-{i:04d}"
            due[key] = start + timedelta(seconds=rng.uniform(0, SPREAD_S))
            enqueue(s, KIND, {"key": key, "fail": i in failing}, run_at=due[key])

    workers = Workers(db, tmp_path)
    names = ["a", "b"] if postgres else ["a"]
    threads = 4 if postgres else 1
    for name in names:
        workers.start(name, threads)
    deadline = time.monotonic() + 360
    in_hand: dict[int, int] = {}  # job id -> its attempts when its worker was killed
    try:
        # first kill a third of the way in, the second two thirds in; on PostgreSQL each
        # worker is killed once, on SQLite the one worker twice; restarted at once
        for n, victim in enumerate([names[0], names[-1]], start=1):
            _wait_for(db, workers, JOBS * n // 3, deadline)
            if not postgres:
                pid = workers.procs[victim].pid
                workers.kill(victim)
                in_hand.update(_held_by(db, pid))  # perhaps none: killed between two jobs
                workers.start(victim, threads)
                continue
            # on PostgreSQL a kill must land with jobs in hand: kill when the victim holds
            # one, look at what it held when it died, and kill again (after a restart) if
            # every job it held had committed in between
            for _ in range(10):
                pid = workers.procs[victim].pid
                _wait_until_holding(db, pid, deadline)
                workers.kill(victim)
                held = _held_by(db, pid)
                workers.start(victim, threads)
                if held:
                    in_hand.update(held)
                    break
            else:
                pytest.fail(f"ten kills of worker {victim} found no job in hand")
        while _open_jobs(db):
            assert time.monotonic() < deadline, f"{_open_jobs(db)} open: {workers.logs()}"
            time.sleep(0.1)
    finally:
        codes = workers.stop_all()
    # on PostgreSQL a kill that found no job in hand is followed by another (above)
    assert workers.kills >= 2 if postgres else workers.kills == 2
    assert codes == [0] * len(names), workers.logs()  # SIGTERM: a graceful stop

    with db.transaction() as s:
        jobs = {j.payload["key"]: j for j in s.scalars(select(Job).where(Job.kind == KIND))}
    with db.engine.connect() as conn:
        rows = conn.execute(select(effects)).all()

    # none lost, none dead: every job done
    assert len(jobs) == JOBS
    assert Counter(j.state for j in jobs.values()) == {"done": JOBS}
    # every effect applied exactly once (the effect table has no unique key: we count)
    per_key = Counter(r.job_key for r in rows)
    assert len(per_key) == JOBS and set(per_key.values()) == {1}
    ran = {r.job_key: r for r in rows}
    for key, job in jobs.items():
        effect = ran[key]
        assert effect.job_id == job.id and effect.attempt == job.attempts
        assert as_utc(effect.ran_at) >= due[key]  # never before its run_at
        assert as_utc(effect.ran_at) >= job.run_at
    fail_keys = {f"job-{i:04d}" for i in failing}
    for key, job in jobs.items():
        if key in fail_keys:
            assert ran[key].attempt >= 2  # the first try never commits
            if job.last_error is not None:
                # retried on schedule: run_at moved by the backoff (2 s ± 25 %) from the
                # failure, which came after the job was first due
                assert job.last_error.endswith("RuntimeError: planned first-try failure")
                assert job.run_at - due[key] >= timedelta(seconds=1.5)
        else:
            assert job.last_error is None
    retried_by_backoff = sum(1 for k in fail_keys if jobs[k].last_error is not None)
    # A failing job shows no error only when its first try was lost to a kill: a worker held
    # it when it was killed, and the next claim (attempt 2) succeeded. (Counting only jobs
    # with more attempts than planned missed that case: 1 in 200 failed on it in a suite.)
    for key in fail_keys:
        job = jobs[key]
        if job.last_error is None:
            assert job.id in in_hand, (key, job.attempts, in_hand)
            assert job.attempts == in_hand[job.id] + 1, (key, job.attempts, in_hand)
    assert retried_by_backoff > FAILING // 2
    # the kills hit jobs in hand: their leases expired and other claims finished them
    if postgres:
        # Each kill landed with jobs in hand: their leases expired and a later claim finished
        # them. (SQLite's one worker with one thread may be killed between two jobs;
        # exactly-once is checked above either way.)
        assert in_hand, workers.logs()
        for job_id, attempts in in_hand.items():
            job = next(j for j in jobs.values() if j.id == job_id)
            assert job.state == "done" and job.attempts > attempts
    if postgres:
        assert len({r.pid for r in rows}) >= 3  # both workers and a restarted one worked
