"""The delivery job: one attempt to hand a message to its provider."""

from __future__ import annotations

from loyalist.jobs.registry import JobContext, job_kind
from loyalist.messaging import outbox


# The handler schedules its own retries (outbox.deliver); the queue's attempts only cover
# database trouble and bugs.
@job_kind(outbox.DELIVER, max_attempts=5)
def deliver(ctx: JobContext) -> None:
    outbox.deliver(ctx.session, int(ctx.payload["message_id"]))
