"""Periodic jobs: activation, expiry, expiry reminders, tier re-evaluation.

Each job works member by member in small transactions (resumable after a crash: what
committed stays done, the rest is found again next run), locks each member's account, and
is idempotent: activation and expiry act only on lots still due; reminders record the
offset already announced on the lot; tier re-evaluation records the period on the member.
A run for a period is recorded in ``job_run`` (unique per job and period), so "what is
due" can be shown and two processes never both claim the same period's bookkeeping row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database
from loyalist.ledger import domain as lots
from loyalist.ledger import service as ledger
from loyalist.models import JobRun, Member
from loyalist.programme import service as programmes
from loyalist.programme.schemas import Programme
from loyalist.tier import domain as tier_domain
from loyalist.tier import service as tiers

BATCH = 200
Progress = Callable[[str, int], None]


@dataclass
class JobReport:
    job: str
    period: str
    members: int = 0
    points: int = 0
    changes: int = 0
    notes: list[str] = field(default_factory=list)


def _member_path(session: Session, member_id: int) -> str:
    path = session.scalar(select(Member.org_path).where(Member.id == member_id))
    return path or "/"


def activate_pending(db: Database, progress: Progress | None = None) -> JobReport:
    now = utcnow()
    report = JobReport("activate", now.strftime("%Y-%m-%dT%H:%M"))
    while True:
        with db.transaction() as s:
            due = ledger.stale_pending_members(s, now, BATCH)
        if not due:
            break
        for mid in due:
            report.points += db.run(partial(activate_member, member_id=mid, now=now))
            report.members += 1
            if progress:
                progress("activate", 1)
    return report


def activate_member(s: Session, member_id: int, now: datetime) -> int:
    """Activate the member's pending points due by ``now``; returns the points."""
    acct = ledger.lock(s, member_id, _member_path(s, member_id))
    acct.now = now
    return ledger.activate_due(s, acct)


def expire_member(s: Session, member_id: int, now: datetime) -> int:
    """Expire the member's points whose lots ran out by ``now``; returns the points."""
    acct = ledger.lock(s, member_id, _member_path(s, member_id))
    acct.now = now
    return ledger.expire_due(s, acct)


def expire_points(db: Database, progress: Progress | None = None) -> JobReport:
    now = utcnow()
    report = JobReport("expire", now.strftime("%Y-%m-%dT%H:%M"))
    while True:
        with db.transaction() as s:
            due = ledger.expired_members(s, now, BATCH)
        if not due:
            break
        for mid in due:
            report.points += db.run(partial(expire_member, member_id=mid, now=now))
            report.members += 1
            if progress:
                progress("expire", 1)
    return report


def remind_expiring(db: Database, progress: Progress | None = None) -> JobReport:
    """Emit ``points.expiring`` once per lot group and reminder offset (e.g. 30 and 7 days)."""
    now = utcnow()
    with db.transaction() as s:
        _v, programme = programmes.active(s)
    horizon = reminder_horizon(programme, now)
    report = JobReport("remind", now.strftime("%Y-%m-%d"))
    after = 0
    while True:
        with db.transaction() as s:
            batch = ledger.lots_to_remind(s, now, horizon, BATCH, after)
        if not batch:
            break
        for mid in batch:
            after = mid
            report.changes += db.run(
                partial(remind_member, member_id=mid, programme=programme, now=now, horizon=horizon)
            )
            report.members += 1
            if progress:
                progress("remind", 1)
    return report


def reminder_horizon(programme: Programme, now: datetime) -> datetime:
    """How far ahead to look for lots to announce."""
    # A reminder d days ahead is due d + 1 local days before the expiry instant; a local
    # day lasts up to 25 hours across a DST change, so look one more day ahead and let
    # reminder_due decide exactly.
    return now + timedelta(days=max(programme.points.reminder_days, default=0) + 2)


def remind_member(
    s: Session, member_id: int, programme: Programme, now: datetime, horizon: datetime
) -> int:
    """Announce the member's lots expiring soon, once per lot group and offset."""
    path = _member_path(s, member_id)
    ledger.lock(s, member_id, path)
    groups: dict[tuple[datetime, int], list[tuple[int, int]]] = {}
    for lot in ledger.member_lots_expiring(s, member_id, now, horizon):
        assert lot.expires_at is not None
        d = lots.reminder_due(lot.expires_at, programme.points.reminder_days, programme.tz, now)
        if d is None or (lot.reminded_days is not None and lot.reminded_days <= d):
            continue
        groups.setdefault((lot.expires_at, d), []).append((lot.id, lot.remaining))
    for (expires, d), items in sorted(groups.items()):
        ledger.emit_expiring(s, member_id, path, sum(n for _, n in items), expires, d)
        ledger.mark_reminded(s, [i for i, _ in items], d)
    return len(groups)


def reevaluate_tiers(db: Database, progress: Progress | None = None) -> JobReport:
    """Once per completed period: evaluate every member as of the period's end."""
    now = utcnow()
    with db.transaction() as s:
        version, programme = programmes.active(s)
    label, at = tier_period(programme, now)
    report = JobReport("tiers", label)
    if not _claim(db, "tiers", label):
        report.notes.append(f"period {label} already evaluated")
        return report
    after = 0
    while True:
        with db.transaction() as s:
            ids = tiers.members_to_reevaluate(s, label, after, BATCH)
        if not ids:
            break
        for mid in ids:
            after = mid
            report.changes += db.run(
                partial(
                    reevaluate_member,
                    member_id=mid,
                    programme=programme,
                    version=version,
                    at=at,
                    label=label,
                )
            )
            report.members += 1
            if progress:
                progress("tiers", 1)
    _finish(db, "tiers", label, report.members)
    return report


def reevaluate_member(
    s: Session, member_id: int, programme: Programme, version: int, at: datetime, label: str
) -> int:
    """Evaluate one member's tier for the period ``label`` as of ``at``; 1 if it changed."""
    member = s.get(Member, member_id)
    assert member is not None
    ledger.lock(s, member_id, member.org_path)
    s.refresh(member)
    change = tiers.reevaluate_member(s, member, programme, version, at, label)
    return 1 if change else 0


def tier_period(programme: Programme, now: datetime) -> tuple[str, datetime]:
    """The last completed evaluation period's label and the instant to evaluate at."""
    label, _start, end = tier_domain.previous_period(programme.tiers.evaluation, programme.tz, now)
    return label, min(end, now)


def start_period(s: Session, job: str, period: str) -> bool:
    """In the caller's transaction: record a period's run; False when it finished already."""
    row = s.scalar(select(JobRun).where(JobRun.job == job, JobRun.period == period))
    if row is not None:
        return row.status != "done"
    s.add(JobRun(job=job, period=period, status="running", started_at=utcnow()))
    s.flush()
    return True


def finish_period(s: Session, job: str, period: str, processed: int) -> None:
    row = s.scalar(select(JobRun).where(JobRun.job == job, JobRun.period == period))
    if row is not None:
        row.status = "done"
        row.processed += processed
        row.finished_at = utcnow()


def _claim(db: Database, job: str, period: str) -> bool:
    """Record the start of a period's run; False when that period finished already."""
    try:
        with db.transaction() as s:
            return start_period(s, job, period)  # a crashed run resumes
    except IntegrityError:
        return True  # another process claimed it just now; per-member guards keep it exact


def _finish(db: Database, job: str, period: str, processed: int) -> None:
    with db.transaction() as s:
        finish_period(s, job, period, processed)


JOBS: dict[str, Callable[[Database, Progress | None], JobReport]] = {
    "activate": activate_pending,
    "expire": expire_points,
    "remind": remind_expiring,
    "tiers": reevaluate_tiers,
}


def run_due(
    db: Database, progress: Progress | None = None, only: str | None = None
) -> list[JobReport]:
    """Run every job (in dependency order: activation before expiry before reminders)."""
    names = [only] if only else list(JOBS)
    return [JOBS[n](db, progress) for n in names]
