"""The console import's jobs: ``import.rows``, one slice of an upload's rows (see
``uploads``), and ``imports.prune``, the daily removal of uploads checked but never
confirmed (older than ``LOYALIST_IMPORT_UPLOAD_MAX_AGE_HOURS``)."""

from __future__ import annotations

import logging

from loyalist.bulkimport import uploads
from loyalist.jobs import registry
from loyalist.jobs.registry import JobContext, job_kind

PRUNE_JOB = "imports.prune"
log = logging.getLogger(__name__)


@job_kind(uploads.JOB_KIND, max_attempts=3)
def import_rows(ctx: JobContext) -> None:
    uploads.step(ctx.session, ctx.payload)


@job_kind(PRUNE_JOB)
def prune_uploads(ctx: JobContext) -> None:
    removed = uploads.prune(ctx.session, ctx.now)
    if removed:
        log.info("imports.prune: %d kept upload file(s) removed", len(removed))


registry.schedule(PRUNE_JOB, "35 3 * * *")
