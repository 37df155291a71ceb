"""Referral jobs: the verdict at the end of a first order's return window, and the
quarterly leaders (scheduled; an occurrence missed while down runs once later)."""

from __future__ import annotations

from loyalist.jobs import registry
from loyalist.jobs.registry import JobContext
from loyalist.referral import config as _config  # noqa: F401  (registers the document kind)
from loyalist.referral import service


@registry.job_kind(service.QUALIFY_JOB)
def qualify(ctx: JobContext) -> None:
    service.qualify(ctx.session, int(ctx.payload["referral_id"]))


@registry.job_kind(service.LEADERS_JOB)
def leaders(ctx: JobContext) -> None:
    period = ctx.payload.get("period")
    if period:
        service.award_leaders(ctx.session, str(period))
    else:
        service.leaders_due(ctx.session, ctx.now)


# 00:30 on the first day of each quarter, in the programme's time zone.
registry.schedule(service.LEADERS_JOB, "30 0 1 1,4,7,10 *")
