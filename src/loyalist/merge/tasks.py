"""The duplicate-candidate job (``merge.duplicates``): nightly, and on demand."""

from __future__ import annotations

from loyalist.jobs import registry
from loyalist.jobs.registry import JobContext, job_kind
from loyalist.merge import service

DUPLICATES = "merge.duplicates"


@job_kind(DUPLICATES, max_attempts=3)
def duplicates(ctx: JobContext) -> None:
    """Record new duplicate-candidate pairs for staff to review (merge or dismiss)."""
    service.find_candidates(ctx.session)


registry.schedule(DUPLICATES, "15 4 * * *")
