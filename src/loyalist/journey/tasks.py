"""Journey jobs: a wait that ended (``journey.wake``) and the daily triggers."""

from __future__ import annotations

from loyalist.jobs.registry import JobContext, job_kind, schedule
from loyalist.journey import service


@job_kind(service.WAKE, max_attempts=10)
def wake(ctx: JobContext) -> None:
    service.wake(ctx.session, int(ctx.payload["run_id"]), str(ctx.payload["step"]), ctx.now)


@job_kind(service.DAILY, max_attempts=5)
def daily(ctx: JobContext) -> None:
    service.daily(ctx.session, ctx.now)


# Birthdays, segments and "N days since the last order": once a local day, early, so the
# journeys' own waits (e.g. until 10:00) place the messages in the day.
schedule(service.DAILY, "10 0 * * *")
