"""Viral deadlines on the job queue: an assist expires, an unfilled group dissolves."""

from __future__ import annotations

from loyalist.jobs import registry
from loyalist.jobs.registry import JobContext
from loyalist.viral import service


@registry.job_kind(service.ASSIST_EXPIRE_JOB)
def expire_assist(ctx: JobContext) -> None:
    service.expire_assist(ctx.session, int(ctx.payload["assist_id"]))


@registry.job_kind(service.GROUP_DEADLINE_JOB)
def group_deadline(ctx: JobContext) -> None:
    service.dissolve_due(ctx.session, int(ctx.payload["group_id"]))
