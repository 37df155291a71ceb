"""The periodic sweeps as scheduled job kinds: activation, expiry, reminders, tiers.

Each occurrence of a schedule is one job (see ``jobs.scheduler``). A job works one batch of
members in its own transaction, together with being marked done, and enqueues the next
batch as a follow-up job when the batch was full; every step is idempotent per period
(activation and expiry act only on lots still due, a reminder records its offset on the
lot, a tier evaluation records the period on the member and the period's run in
``job_run``), so a job retried after a failure or a killed worker changes nothing twice.
Housekeeping: ``jobs.prune`` deletes finished sweep jobs after two weeks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from loyalist.errors import LoyalistError
from loyalist.jobs import registry
from loyalist.jobs import service as sweeps
from loyalist.jobs.queue import enqueue
from loyalist.jobs.registry import JobContext, job_kind
from loyalist.ledger import service as ledger
from loyalist.models import Job
from loyalist.programme import service as programmes
from loyalist.tier import service as tiers

SWEEP_BATCH = 50
PRUNE_AFTER = timedelta(days=14)

ACTIVATE = "points.activate"
EXPIRE = "points.expire"
REMIND = "points.remind"
TIERS = "tiers.reevaluate"
PRUNE = "jobs.prune"

# ``loyalist jobs run --only NAME`` names (kept from the former sweeps), in run order.
SWEEPS: dict[str, str] = {"activate": ACTIVATE, "expire": EXPIRE, "remind": REMIND, "tiers": TIERS}


def _follow_up(ctx: JobContext, **cursor: Any) -> None:
    """Enqueue the next batch of this sweep (once, keyed by this job)."""
    payload = {**ctx.payload, **cursor, "part": int(ctx.payload.get("part", 0)) + 1}
    enqueue(ctx.session, ctx.kind, payload, dedupe_key=f"{ctx.kind}:after-job:{ctx.job_id}")


@job_kind(ACTIVATE, max_attempts=5)
def activate(ctx: JobContext) -> None:
    due = sorted(ledger.stale_pending_members(ctx.session, ctx.now, SWEEP_BATCH))
    for member_id in due:
        sweeps.activate_member(ctx.session, member_id, ctx.now)
    if len(due) == SWEEP_BATCH:
        _follow_up(ctx)


@job_kind(EXPIRE, max_attempts=5)
def expire(ctx: JobContext) -> None:
    due = sorted(ledger.expired_members(ctx.session, ctx.now, SWEEP_BATCH))
    for member_id in due:
        sweeps.expire_member(ctx.session, member_id, ctx.now)
    if len(due) == SWEEP_BATCH:
        _follow_up(ctx)


def _programme(s: Session) -> Any:
    try:
        return programmes.active(s)
    except LoyalistError:
        return None  # no programme yet: nothing can be due


@job_kind(REMIND, max_attempts=5)
def remind(ctx: JobContext) -> None:
    active = _programme(ctx.session)
    if active is None:
        return
    _version, programme = active
    horizon = sweeps.reminder_horizon(programme, ctx.now)
    after = int(ctx.payload.get("after", 0))
    batch = ledger.lots_to_remind(ctx.session, ctx.now, horizon, SWEEP_BATCH, after)
    for member_id in batch:
        sweeps.remind_member(ctx.session, member_id, programme, ctx.now, horizon)
    if len(batch) == SWEEP_BATCH:
        _follow_up(ctx, after=batch[-1])


@job_kind(TIERS, max_attempts=5)
def reevaluate(ctx: JobContext) -> None:
    """Once per completed evaluation period (recorded in ``job_run`` as "tiers")."""
    active = _programme(ctx.session)
    if active is None:
        return
    version, programme = active
    if "period" in ctx.payload:  # a follow-up batch keeps its period and instant
        label = str(ctx.payload["period"])
        at = datetime.fromisoformat(str(ctx.payload["at"]))
    else:
        label, at = sweeps.tier_period(programme, ctx.now)
    if not sweeps.start_period(ctx.session, "tiers", label):
        return  # this period was evaluated already
    after = int(ctx.payload.get("after", 0))
    ids = tiers.members_to_reevaluate(ctx.session, label, after, SWEEP_BATCH)
    for member_id in ids:
        sweeps.reevaluate_member(ctx.session, member_id, programme, version, at, label)
    processed = int(ctx.payload.get("processed", 0)) + len(ids)
    if len(ids) == SWEEP_BATCH:
        _follow_up(ctx, after=ids[-1], period=label, at=at.isoformat(), processed=processed)
    else:
        sweeps.finish_period(ctx.session, "tiers", label, processed)


@job_kind(PRUNE, max_attempts=3)
def prune(ctx: JobContext) -> None:
    """Forget finished sweep jobs (and finished jobs without a dedupe key) after two weeks.

    Jobs with a dedupe key of other kinds are kept: their key is their once-only guarantee.
    """
    swept = [*SWEEPS.values(), PRUNE]
    ctx.session.execute(
        delete(Job)
        .where(
            Job.state.in_(("done", "cancelled")),
            Job.finished_at < ctx.now - PRUNE_AFTER,
            or_(Job.kind.in_(swept), Job.dedupe_key.is_(None)),
        )
        .execution_options(synchronize_session=False)
    )


# Cron expressions in the programme's time zone (every minute matches the former
# 60-second scheduler for activation and expiry).
registry.schedule(ACTIVATE, "* * * * *")
registry.schedule(EXPIRE, "* * * * *")
registry.schedule(REMIND, "*/15 * * * *")
registry.schedule(TIERS, "10 0 * * *")
registry.schedule(PRUNE, "40 3 * * *")
