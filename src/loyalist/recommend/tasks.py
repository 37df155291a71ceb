"""The nightly recommendations job (``recommend.compute``)."""

from __future__ import annotations

from loyalist.jobs.registry import JobContext, job_kind, schedule
from loyalist.recommend import service


@job_kind(service.COMPUTE, max_attempts=3)
def compute(ctx: JobContext) -> None:
    service.compute(ctx.session, ctx.now)


# Nightly, after the day's orders (programme-local time).
schedule(service.COMPUTE, "30 3 * * *")
