"""The ``import.rows`` job: one slice of a console upload's rows (see ``uploads``)."""

from __future__ import annotations

from loyalist.bulkimport import uploads
from loyalist.jobs.registry import JobContext, job_kind


@job_kind(uploads.JOB_KIND, max_attempts=3)
def import_rows(ctx: JobContext) -> None:
    uploads.step(ctx.session, ctx.payload)
