"""Jobs per second on PostgreSQL: two real ``loyalist worker`` processes, beside a reference.

1. recreates the database ``loyalist_bench_jobs`` and migrates it;
2. enqueues N no-op jobs (each writes one row in its transaction) due a few seconds ahead,
   and starts two ``loyalist worker --concurrency T`` processes (idle until then);
3. measures from the jobs' run_at until the last one is done: jobs/s;
4. the reference, in the same run: the same jobs enqueued again, run by two plain Python
   processes with T threads each issuing the queue's statements directly through psycopg
   (claim with ``FOR UPDATE SKIP LOCKED``, re-check the claim, insert the effect row, mark
   the job done, one transaction per job) — what the database costs without Loyalist's
   Python around it.

Prints ``RESULT jobs_per_s=<..> reference_per_s=<..> ratio=<jobs_per_s / reference>``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from procs import cleanup, log, on_signal, spawn

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DB_NAME = "loyalist_bench_jobs"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc", sql],
        check=True,
        capture_output=True,
    )


def prepare(jobs: int, lead_s: float) -> datetime:
    """Fresh tables and ``jobs`` queued jobs due ``lead_s`` seconds from now."""
    from sqlalchemy import text

    from bench_jobs_kind import KIND, effects
    from loyalist.jobs.queue import enqueue
    from loyalist.kit.db import Database

    db = Database(URL)
    try:
        with db.engine.begin() as conn:
            conn.execute(text("TRUNCATE job RESTART IDENTITY"))
        effects.drop(db.engine, checkfirst=True)
        effects.create(db.engine)
        due = datetime.now(UTC) + timedelta(seconds=lead_s)
        with db.transaction() as s:
            for i in range(jobs):
                enqueue(s, KIND, {"n": i}, run_at=due)
    finally:
        db.dispose()
    return due


def wait_done(jobs: int, timeout: float) -> datetime:
    """Until every job is done; returns the last finished_at."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(DSN, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*), max(finished_at) FROM job WHERE state = 'done'"
            ).fetchone()
            assert row is not None
            if row[0] >= jobs:
                effects = conn.execute("SELECT count(*) FROM bench_job_effect").fetchone()
                assert effects is not None and effects[0] == jobs, "effects != jobs"
                last: datetime = row[1]
                return last
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {row[0]} of {jobs} jobs done in {timeout} s")
            time.sleep(0.2)


def loyalist_run(args: argparse.Namespace) -> float:
    due = prepare(args.jobs, args.lead)
    env = {
        **os.environ,
        "LOYALIST_DATABASE_URL": URL,
        "LOYALIST_LOG_LEVEL": "warning",
        "PYTHONPATH": f"{ROOT / 'benchmarks'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    workers = [
        spawn(
            [
                str(VENV_BIN / "loyalist"),
                "worker",
                "--import",
                "bench_jobs_kind",
                "--concurrency",
                str(args.threads),
                "--poll-interval",
                "0.05",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(args.workers)
    ]
    try:
        last = wait_done(args.jobs, args.timeout)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
    return args.jobs / (last - due).total_seconds()


REF_CLAIM = """
UPDATE job SET state = 'running', locked_by = %(me)s, lease_until = now() + interval '300 s',
       attempts = attempts + 1, updated_at = now()
WHERE id IN (SELECT id FROM job WHERE state IN ('queued', 'failed') AND run_at <= now()
             ORDER BY run_at, id LIMIT %(n)s FOR UPDATE SKIP LOCKED)
RETURNING id
"""


def reference_worker(threads: int, batch: int) -> None:
    """The queue's statements straight through psycopg, ``threads`` connections."""
    import psycopg

    me = f"ref:{os.getpid()}"

    def loop() -> None:
        with psycopg.connect(DSN) as conn:
            while True:
                with conn.transaction():
                    ids = [r[0] for r in conn.execute(REF_CLAIM, {"me": me, "n": batch})]
                if not ids:
                    left = conn.execute("SELECT count(*) FROM job WHERE state <> 'done'")
                    row = left.fetchone()
                    conn.commit()
                    if row is None or row[0] == 0:
                        return
                    time.sleep(0.05)
                    continue
                for job_id in ids:
                    with conn.transaction():
                        held = conn.execute(
                            "UPDATE job SET updated_at = now() WHERE id = %s AND state = "
                            "'running' AND locked_by = %s RETURNING payload, attempts, kind",
                            (job_id, me),
                        ).fetchone()
                        if held is None:
                            continue
                        conn.execute("INSERT INTO bench_job_effect (job_id) VALUES (%s)", (job_id,))
                        conn.execute(
                            "UPDATE job SET state = 'done', finished_at = now(), updated_at = "
                            "now(), locked_by = NULL, lease_until = NULL WHERE id = %s",
                            (job_id,),
                        )

    ts = [threading.Thread(target=loop) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def reference_run(args: argparse.Namespace) -> float:
    due = prepare(args.jobs, args.lead)
    cmd = [sys.executable, __file__, "--reference-worker", "--threads", str(args.threads)]
    workers = [spawn(cmd, cwd=ROOT / "benchmarks") for _ in range(args.workers)]
    last = wait_done(args.jobs, args.timeout)
    for w in workers:
        w.wait(60)
    return args.jobs / (last - due).total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--jobs", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4, help="threads per worker")
    ap.add_argument("--lead", type=float, default=12.0, help="seconds to start the workers")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--reference-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reference_worker:
        reference_worker(args.threads, 4)
        return
    signal.signal(signal.SIGTERM, on_signal)
    try:
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-postgres.sh"), URL], check=True)
        psql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        psql(f'CREATE DATABASE "{DB_NAME}"')
        from loyalist.kit.migrate import upgrade

        upgrade(URL)
        log(f"{args.jobs} no-op jobs, {args.workers} workers × {args.threads} threads")
        ours = loyalist_run(args)
        log(f"loyalist worker: {ours:.0f} jobs/s")
        ref = reference_run(args)
        log(f"reference (the same statements via psycopg): {ref:.0f} jobs/s")
        print(f"RESULT jobs_per_s={ours:.0f} reference_per_s={ref:.0f} ratio={ours / ref:.2f}")
    finally:
        cleanup()
        psql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
