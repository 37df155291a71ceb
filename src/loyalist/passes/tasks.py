"""Scheduled jobs of paid membership: expiry reminders and expiry (hourly), monthly coupons
(daily at 00:10 in the programme's zone). Each is idempotent: a reminder or expiry is sent
once per term (columns on ``member_pass``), a coupon once per term and month (issue key)."""

from __future__ import annotations

from loyalist.jobs.registry import JobContext, job_kind, schedule
from loyalist.passes import service

SWEEP = "passes.sweep"
MONTHLY = "passes.monthly_coupons"


@job_kind(SWEEP, max_attempts=10)
def sweep(ctx: JobContext) -> None:
    service.sweep(ctx.session)


@job_kind(MONTHLY, max_attempts=10)
def monthly(ctx: JobContext) -> None:
    service.issue_monthly(ctx.session)


schedule(SWEEP, "5 * * * *")
schedule(MONTHLY, "10 0 * * *")
