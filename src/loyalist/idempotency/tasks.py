"""The daily pruning of de-duplication records, in batches (the next batch a job of its
own while a batch is full, so every transaction stays short):

* ``idempotency.prune``: idempotency records older than the replay window
  (``idempotency.service.RETENTION``, 30 days);
* ``events.prune_receipts``: event receipts no consumer run reads any more — at or below
  their consumer's checkpoint and older than ``events.consumers.RECEIPT_RETENTION`` (7 days).
"""

from __future__ import annotations

from loyalist.events import consumers
from loyalist.idempotency import service
from loyalist.jobs import registry
from loyalist.jobs.queue import enqueue
from loyalist.jobs.registry import JobContext

PRUNE_JOB = "idempotency.prune"
PRUNE_RECEIPTS_JOB = "events.prune_receipts"
BATCH = 5000


@registry.job_kind(PRUNE_JOB)
def prune(ctx: JobContext) -> None:
    if service.prune(ctx.session, ctx.now, limit=BATCH) == BATCH:
        enqueue(ctx.session, PRUNE_JOB, {})


@registry.job_kind(PRUNE_RECEIPTS_JOB)
def prune_receipts(ctx: JobContext) -> None:
    if consumers.prune_receipts(ctx.session, ctx.now, limit=BATCH) == BATCH:
        enqueue(ctx.session, PRUNE_RECEIPTS_JOB, {})


registry.schedule(PRUNE_JOB, "50 3 * * *")
registry.schedule(PRUNE_RECEIPTS_JOB, "55 3 * * *")
