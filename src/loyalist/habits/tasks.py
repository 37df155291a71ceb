"""Scheduled job: close ended leaderboard periods (archive, pay the top ranks) once.

The schedule runs every 10 minutes in the programme's zone; an occurrence missed while the
server was down fires once after it comes back (``jobs.scheduler``), and the job closes
every period still open, each exactly once (``leaderboard_period`` is unique per board and
period; rewards are actions with a cause per board, period and rank).
"""

from __future__ import annotations

from loyalist.habits import service
from loyalist.jobs.registry import JobContext, job_kind, schedule

CLOSE = "habits.leaderboards.close"


@job_kind(CLOSE, max_attempts=10)
def close(ctx: JobContext) -> None:
    service.close_periods(ctx.session)


schedule(CLOSE, "*/10 * * * *")
