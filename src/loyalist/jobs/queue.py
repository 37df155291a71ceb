"""The durable job queue: enqueue in the caller's transaction; claim, run, retry, bury.

``enqueue`` writes a ``job`` row in the caller's transaction, so a job exists if and only if
the work that asked for it commits. The same ``dedupe_key`` twice is one job, also when two
transactions enqueue it concurrently (``INSERT … ON CONFLICT DO NOTHING`` on the unique key).

Workers :func:`claim` due jobs in a short transaction of their own: PostgreSQL picks them
with ``FOR UPDATE SKIP LOCKED`` so two workers never take one job; SQLite serialises the
claim with its ``BEGIN IMMEDIATE`` write lock. A claim sets the job ``running`` with a lease
and counts the attempt; a job whose lease ran out (its worker was killed) is due again.
:func:`execute` then runs the handler and marks the job done in ONE transaction that first
re-reads the job under a row lock and checks it still holds the claim, so a job's database
effects apply exactly once even when a lease expired and another worker took it over. A
failing handler rolls back; a new transaction records the error and the next ``run_at``
(exponential backoff with jitter, capped) and leaves it ``failed`` until then, or buries it as
``dead`` after its last try.
"""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loyalist.jobs import registry
from loyalist.jobs.registry import JobContext
from loyalist.kit import wake
from loyalist.kit.clock import as_utc, utcnow
from loyalist.kit.db import Database
from loyalist.models import Job

log = logging.getLogger("loyalist.jobs")

BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 3600.0
DEFAULT_LEASE_S = 300.0
ERROR_MAX_CHARS = 4000
TERMINAL = ("done", "dead", "cancelled")


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    run_at: datetime | None = None,
    dedupe_key: str | None = None,
) -> None:
    """Write a job in the caller's transaction (same ``dedupe_key`` twice → one job)."""
    if not kind or len(kind) > 100:
        raise ValueError("a job kind is a name of 1 to 100 characters")
    if dedupe_key is not None and not 1 <= len(dedupe_key) <= 255:
        raise ValueError("a dedupe key is 1 to 255 characters")
    now = utcnow()
    when = as_utc(run_at) if run_at is not None else now
    values = {
        "kind": kind,
        "payload": payload,
        "state": "queued",
        "run_at": when,
        "attempts": 0,
        "max_attempts": registry.max_attempts_of(kind),
        "dedupe_key": dedupe_key,
        "created_at": now,
        "updated_at": now,
    }
    if session.get_bind().dialect.name == "postgresql":
        stmt: Any = postgresql.insert(Job).values(**values)
    else:
        stmt = sqlite.insert(Job).values(**values)
    if dedupe_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
    session.execute(stmt)
    if when <= now:
        wake.notify_in(session)  # due now: wake the workers when this transaction commits


def backoff(attempt: int, *, rng: random.Random | None = None) -> timedelta:
    """Delay before try ``attempt + 1``: 2 s, 4 s, 8 s … capped at an hour, ±25 % jitter."""
    base = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempt - 1))
    jitter = (rng or random).uniform(0.75, 1.25)
    return timedelta(seconds=min(BACKOFF_CAP_S, base * jitter))


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    attempt: int


def _due(now: datetime) -> Any:
    return or_(
        and_(Job.state.in_(("queued", "failed")), Job.run_at <= now),
        and_(Job.state == "running", Job.lease_until < now),
    )


def claim(
    db: Database, worker: str, *, limit: int = 1, lease_s: float = DEFAULT_LEASE_S
) -> list[Claimed]:
    """Take up to ``limit`` due jobs for ``worker``: running, leased, attempt counted."""

    def unit(s: Session) -> list[Claimed]:
        now = utcnow()
        q = select(Job.id).where(_due(now)).order_by(Job.run_at, Job.id).limit(limit)
        if db.dialect == "postgresql":
            q = q.with_for_update(skip_locked=True)
        ids = list(s.scalars(q))
        if not ids:
            return []
        rows = s.execute(
            update(Job)
            .where(Job.id.in_(ids), _due(now))
            .values(
                state="running",
                locked_by=worker,
                lease_until=now + timedelta(seconds=lease_s),
                attempts=Job.attempts + 1,
                updated_at=now,
            )
            .returning(Job.id, Job.kind, Job.attempts)
            .execution_options(synchronize_session=False)
        ).all()
        return sorted((Claimed(r.id, r.kind, r.attempts) for r in rows), key=lambda c: c.id)

    return db.run(unit)


def execute(db: Database, claimed: Claimed, worker: str) -> str:
    """Run a claimed job; returns its new state ("done", "failed", "dead") or "lost"."""
    kind = registry.get(claimed.kind)

    def unit(s: Session) -> str:
        now = utcnow()
        # Re-check the claim under the row lock the UPDATE takes: a worker whose lease
        # expired and was taken over finds nothing here and must not run the job.
        held = s.execute(
            update(Job)
            .where(Job.id == claimed.id, Job.state == "running", Job.locked_by == worker)
            .values(updated_at=now)
            .returning(Job.payload, Job.attempts, Job.kind)
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if held is None:
            return "lost"  # the lease expired and another worker took the job over
        if kind is None:
            raise LookupError(f"no handler registered for job kind {claimed.kind!r}")
        kind.handler(
            JobContext(
                session=s,
                job_id=claimed.id,
                kind=held.kind,
                payload=dict(held.payload),
                attempt=held.attempts,
                now=now,
            )
        )
        done_at = utcnow()
        s.execute(
            update(Job)
            .where(Job.id == claimed.id)
            .values(
                state="done",
                finished_at=done_at,
                updated_at=done_at,
                locked_by=None,
                lease_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        return "done"

    try:
        return db.run(unit)
    except Exception as exc:  # the handler failed: its transaction rolled back
        log.warning(
            "job %s (%s) attempt %s failed: %s", claimed.id, claimed.kind, claimed.attempt, exc
        )
        return _record_failure(db, claimed, worker, exc)


def _record_failure(db: Database, claimed: Claimed, worker: str, exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    text = text[:ERROR_MAX_CHARS]

    def unit(s: Session) -> str:
        job = s.scalars(
            select(Job)
            .where(Job.id == claimed.id, Job.state == "running", Job.locked_by == worker)
            .with_for_update()
        ).one_or_none()
        if job is None:
            return "lost"
        now = utcnow()
        job.last_error = f"attempt {job.attempts}: {text}"
        job.locked_by = None
        job.lease_until = None
        job.updated_at = now
        if job.attempts >= job.max_attempts:
            job.state = "dead"
            job.finished_at = now
        else:
            job.state = "failed"  # waits for its retry at run_at
            job.run_at = now + backoff(job.attempts)
        return job.state

    return db.run(unit)


def bury_exhausted(db: Database) -> int:
    """Jobs whose lease expired after their last allowed attempt become dead."""

    def unit(s: Session) -> int:
        now = utcnow()
        res = s.execute(
            update(Job)
            .where(
                Job.state == "running",
                Job.lease_until < now,
                Job.attempts >= Job.max_attempts,
            )
            .values(
                state="dead",
                last_error=func.coalesce(Job.last_error, "")
                + " | lease expired after the last attempt (worker stopped)",
                locked_by=None,
                lease_until=None,
                finished_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return int(getattr(res, "rowcount", 0) or 0)

    return db.run(unit)


def run_until_empty(db: Database, worker: str = "inline", *, limit: int = 1_000_000) -> int:
    """Run due jobs in this thread until none is due (tests, ``loyalist jobs run``)."""
    done = 0
    while done < limit:
        batch = claim(db, worker, limit=10)
        if not batch:
            break
        for c in batch:
            execute(db, c, worker)
            done += 1
    return done


# --- operators: list, retry, cancel ---------------------------------------------------


def list_jobs(
    session: Session,
    *,
    states: Sequence[str] | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> list[Job]:
    q = select(Job).order_by(Job.id.desc()).limit(limit)
    if states:
        q = q.where(Job.state.in_(list(states)))
    if kind:
        q = q.where(Job.kind == kind)
    return list(session.scalars(q))


def counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    return {state: int(n) for state, n in rows}


def retry(session: Session, job_id: int) -> bool:
    """Queue a dead, failed or cancelled job again now, with a fresh count of attempts."""
    now = utcnow()
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(("dead", "failed", "cancelled", "queued")))
        .values(
            state="queued",
            run_at=now,
            attempts=0,
            finished_at=None,
            locked_by=None,
            lease_until=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(res, "rowcount", 0))


def cancel(session: Session, job_id: int) -> bool:
    """Cancel a job that has not run yet (queued, failed or dead); a running job is not."""
    now = utcnow()
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(("queued", "failed", "dead")))
        .values(state="cancelled", finished_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(res, "rowcount", 0))
