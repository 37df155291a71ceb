"""The households job (``households.expire_invitations``): invitations past their expiry are
written down as expired (``household.invitation_expired``), every hour."""

from __future__ import annotations

from loyalist.household import service
from loyalist.jobs import registry
from loyalist.jobs.registry import JobContext, job_kind

EXPIRE_INVITATIONS = "households.expire_invitations"


@job_kind(EXPIRE_INVITATIONS, max_attempts=3)
def expire_invitations(ctx: JobContext) -> None:
    """Expire overdue invitations (up to 500 a run; the next hour takes the rest)."""
    service.expire_due(ctx.session, ctx.now)


registry.schedule(EXPIRE_INVITATIONS, "5 * * * *")
