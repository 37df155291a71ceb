"""Coupon jobs: large batches are generated in chunks (progress shows between chunks)."""

from __future__ import annotations

from loyalist.coupon import service
from loyalist.jobs import queue
from loyalist.jobs.registry import JobContext, job_kind


@job_kind("coupon.generate_batch", max_attempts=10)
def generate_batch(ctx: JobContext) -> None:
    batch_id = int(ctx.payload["batch_id"])
    if not service.generate_chunk(ctx.session, batch_id):
        done = service.batch_progress(ctx.session, batch_id)
        queue.enqueue(
            ctx.session,
            "coupon.generate_batch",
            {"batch_id": batch_id},
            dedupe_key=f"coupon-batch:{batch_id}:{done}",
        )
