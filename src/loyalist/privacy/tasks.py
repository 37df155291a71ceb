"""The retention job: erase inactive members' personal data (``privacy.retention``)."""

from __future__ import annotations

from loyalist.config import get_settings
from loyalist.jobs import registry
from loyalist.jobs.queue import enqueue
from loyalist.jobs.registry import JobContext, job_kind
from loyalist.kit.actor import SYSTEM
from loyalist.privacy import service

RETENTION = "privacy.retention"
BATCH = 200


@job_kind(RETENTION, max_attempts=5)
def retention(ctx: JobContext) -> None:
    """Erase up to BATCH inactive members, then enqueue the next batch if there may be more."""
    days = int(ctx.payload.get("days") or get_settings().privacy_retention_days)
    if days <= 0:
        return
    ids = service.inactive_members(ctx.session, ctx.now, days, BATCH)
    for member_id in ids:
        service.erase(ctx.session, SYSTEM, member_id, reason="retention")
    if len(ids) == BATCH:
        enqueue(ctx.session, RETENTION, {"days": days})  # the erased drop out of the query


registry.schedule(RETENTION, "30 3 * * *")
