"""The no-op job kind of benchmarks/bench_jobs.py: writes one row per job in the job's
transaction. Loaded into ``loyalist worker`` with the hidden ``--import`` option."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, Table

from loyalist.jobs.registry import JobContext, job_kind

KIND = "bench.noop"
effects = Table("bench_job_effect", MetaData(), Column("job_id", BigInteger, primary_key=True))


@job_kind(KIND, max_attempts=3)
def noop(ctx: JobContext) -> None:
    ctx.session.execute(effects.insert().values(job_id=ctx.job_id))
