"""Fraud controls' jobs: the daily pruning of velocity counters no window reads any more."""

from __future__ import annotations

from loyalist.fraud import config as _config  # noqa: F401  (registers the document kind)
from loyalist.fraud import service
from loyalist.jobs import registry
from loyalist.jobs.registry import JobContext

PRUNE_JOB = "fraud.prune_counters"


@registry.job_kind(PRUNE_JOB)
def prune_counters(ctx: JobContext) -> None:
    service.prune(ctx.session, ctx.now)


registry.schedule(PRUNE_JOB, "40 3 * * *")
