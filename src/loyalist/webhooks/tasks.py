"""The ``webhooks.deliver`` job: one attempt of one delivery.

The handler keeps its own schedule (Standard Webhooks: immediately, 5 s, 5 min, 30 min,
2 h, 5 h, 10 h, 14 h, 20 h, 24 h): a failed attempt is recorded and the next one enqueued
with ``run_at``, and the job returns normally. Only an unexpected error (a bug, the
database) raises and is retried by the queue; the (run, step) in the payload makes a
repeated or stale job a no-op.
"""

from __future__ import annotations

from loyalist.jobs.registry import JobContext, job_kind
from loyalist.webhooks import service


@job_kind(service.JOB_KIND, max_attempts=10)
def deliver(ctx: JobContext) -> None:
    service.attempt(
        ctx.session,
        int(ctx.payload["delivery_id"]),
        int(ctx.payload["run"]),
        int(ctx.payload["step"]),
    )
