"""What operators do with jobs (console and CLI): look, retry, cancel — checked and audited.

Jobs belong to the whole installation (no org scope): only roles with ``jobs.manage``
(HQ administrators) see or change them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from loyalist.access import permissions as perm
from loyalist.audit import service as audit
from loyalist.errors import Conflict, NotFound
from loyalist.jobs import queue
from loyalist.kit.actor import Actor
from loyalist.models import Job

# States an operator may filter by; "open" is everything not finished well.
STATES = ("queued", "running", "failed", "dead", "cancelled", "done")
OPEN = ("queued", "running", "failed", "dead")


def overview(
    session: Session,
    actor: Actor,
    *,
    states: Sequence[str] = OPEN,
    kind: str | None = None,
    limit: int = 100,
) -> tuple[list[Job], dict[str, int]]:
    """The latest jobs in ``states`` (of ``kind``) and the count per state."""
    perm.require(actor, perm.JOBS_MANAGE)
    return queue.list_jobs(session, states=states, kind=kind, limit=limit), queue.counts(session)


def _job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    return job


def retry(session: Session, actor: Actor, job_id: int) -> None:
    """Queue a failed, dead or cancelled (or waiting) job to run now, attempts reset."""
    perm.require(actor, perm.JOBS_MANAGE)
    job = _job(session, job_id)
    before = {"state": job.state, "attempts": job.attempts, "last_error": job.last_error}
    if not queue.retry(session, job_id):
        raise Conflict(
            f"Job {job_id} is {job.state}: only jobs that have not finished well can be retried."
        )
    audit.record(
        session, actor, "job.retry", "job", job_id, org_path="/", before=before,
        after={"state": "queued", "attempts": 0},
    )  # fmt: skip


def cancel(session: Session, actor: Actor, job_id: int) -> None:
    """Cancel a queued, failed or dead job (a running one finishes first)."""
    perm.require(actor, perm.JOBS_MANAGE)
    job = _job(session, job_id)
    before = {"state": job.state}
    if not queue.cancel(session, job_id):
        raise Conflict(
            f"Job {job_id} is {job.state}: only queued, failed or dead jobs can be cancelled."
        )
    audit.record(
        session, actor, "job.cancel", "job", job_id, org_path="/", before=before,
        after={"state": "cancelled"},
    )  # fmt: skip
