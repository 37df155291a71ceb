"""The job kind of the fault test (tests/e2e/test_jobs_faults.py), loaded into real
``loyalist worker`` processes with the hidden ``--import`` option; never registered in
production.

Each job writes one effect row (its key, the attempt, the worker's pid, when it ran) in the
job's own transaction, after a short random pause that widens the window a SIGKILL can hit;
jobs whose payload says ``fail`` raise on their first attempt, after writing the row (which
the failure rolls back with everything else).
"""

from __future__ import annotations

import os
import random
import time

from sqlalchemy import Column, Integer, MetaData, String, Table

from loyalist.jobs.registry import JobContext, job_kind
from loyalist.kit.db import BigIntPK, UTCDateTime

KIND = "test.fault"

effects = Table(
    "test_fault_effect",
    MetaData(),
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("job_key", String(32), nullable=False),  # deliberately NOT unique: we count
    Column("job_id", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("ran_at", UTCDateTime(), nullable=False),
)


@job_kind(KIND, max_attempts=10)
def fault(ctx: JobContext) -> None:
    pause = float(os.environ.get("LOYALIST_TEST_FAULT_PAUSE_S", "0.004"))
    if pause > 0:
        time.sleep(random.uniform(0, pause))
    ctx.session.execute(
        effects.insert().values(
            job_key=ctx.payload["key"],
            job_id=ctx.job_id,
            attempt=ctx.attempt,
            pid=os.getpid(),
            ran_at=ctx.now,
        )
    )
    if ctx.payload.get("fail") and ctx.attempt == 1:
        raise RuntimeError("planned first-try failure")
