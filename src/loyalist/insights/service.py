"""The console's analytics section: runs requested by staff, computed step by step in the
background (``insights.tasks``), read back for the pages and exports, and the "tag these
members" action on a run's at-risk list.

A run covers the members whose home is inside the requester's scope (HQ: everyone; a
regional manager: their region's members). Reading needs ``analytics.read``; tagging also
``member.write`` (checked by the member service through the ``add_tag`` action).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalist.access.permissions import ANALYTICS_READ, MEMBER_WRITE, require
from loyalist.actions import registry as actions
from loyalist.audit import service as audit
from loyalist.errors import FieldError, NotFound, ValidationFailed
from loyalist.jobs import queue
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.member import service as members
from loyalist.member.schemas import TagsIn
from loyalist.models import AnalyticsRun, Member

JOB_KIND = "insights.compute"
# The steps of a run, in order; each is one job that commits its part of the result.
STEPS: tuple[str, ...] = ("segments", "movement", "cohorts", "clv", "economics")
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
MAX_SPAN_DAYS = 3 * 366  # the comparison day is at most three years before the other


class RunNotFound(NotFound):
    code = "analytics_run_not_found"
    title = "No such analytics run"


@dataclass(frozen=True)
class AtRiskMember:
    member: Member
    segment: str
    recency_days: int
    frequency: int
    monetary: float  # yuan, net of refunds
    probability_alive: float | None
    clv: float | None  # yuan over the next year, discounted


def request_run(
    session: Session, actor: Actor, *, as_of: dt.date, compare_from: dt.date
) -> AnalyticsRun:
    """A new run over the actor's scope; its first step is queued at once."""
    require(actor, ANALYTICS_READ)
    problems = []
    if compare_from >= as_of:
        problems.append(FieldError("compare_from", "must be before the analysis date"))
    elif (as_of - compare_from).days > MAX_SPAN_DAYS:
        problems.append(FieldError("compare_from", "at most three years before"))
    if problems:
        raise ValidationFailed("The dates are not valid.", problems)
    run = AnalyticsRun(
        org_path=actor.scope_path,
        as_of=as_of,
        compare_from=compare_from,
        status=QUEUED,
        step=0,
        steps=len(STEPS),
        result={},
        error=None,
        requested_by=actor.name[:128],
        created_at=utcnow(),
        finished_at=None,
    )
    session.add(run)
    session.flush()
    queue.enqueue(session, JOB_KIND, {"run": run.id, "step": 0}, dedupe_key=f"insights:{run.id}:0")
    audit.record(
        session,
        actor,
        "analytics.run",
        "analytics_run",
        run.id,
        org_path=actor.scope_path,
        after={"as_of": as_of.isoformat(), "since": compare_from.isoformat()},
    )
    return run


def get(session: Session, actor: Actor, run_id: int) -> AnalyticsRun:
    """A run the actor may read: one whose scope is inside the actor's (else 404)."""
    require(actor, ANALYTICS_READ)
    run = session.get(AnalyticsRun, run_id)
    if run is None or not actor.sees(run.org_path):
        raise RunNotFound(f"No analytics run {run_id}.")
    return run


def latest(session: Session, actor: Actor, *, limit: int = 10) -> list[AnalyticsRun]:
    """The actor's scope's latest runs, newest first (exactly its scope: a region's run is
    not HQ's, whose figures cover every member)."""
    require(actor, ANALYTICS_READ)
    q = (
        select(AnalyticsRun)
        .where(AnalyticsRun.org_path == actor.scope_path)
        .order_by(AnalyticsRun.id.desc())
        .limit(limit)
    )
    return list(session.scalars(q))


def at_risk(
    session: Session, actor: Actor, run_id: int, *, limit: int | None = None
) -> list[AtRiskMember]:
    """The run's valuable members at risk, most valuable first, each still in scope."""
    run = get(session, actor, run_id)
    rows: list[dict[str, Any]] = list(run.result.get("at_risk") or [])
    out: list[AtRiskMember] = []
    for row in rows:
        if limit is not None and len(out) >= limit:
            break
        try:
            m = members.get(session, actor, int(row["member_id"]))
        except NotFound:  # moved out of scope or erased since the run
            continue
        out.append(
            AtRiskMember(
                member=m,
                segment=str(row["segment"]),
                recency_days=int(row["recency_days"]),
                frequency=int(row["frequency"]),
                monetary=float(row["monetary"]),
                probability_alive=row.get("probability_alive"),
                clv=row.get("clv"),
            )
        )
    return out


def tag_at_risk(session: Session, actor: Actor, run_id: int, tag: str) -> int:
    """Tag every member of the run's at-risk list (through the ``add_tag`` action, once per
    run, tag and member: a repeated request tags nobody twice). Returns how many members
    the list holds in the actor's scope."""
    require(actor, ANALYTICS_READ)
    require(actor, MEMBER_WRITE)
    tag = tag.strip()
    try:
        TagsIn(add=[tag])  # the member service's rule for a tag
    except PydanticValidationError as exc:
        raise ValidationFailed(
            "Not a valid tag.", [FieldError("tag", "1–64 characters, no comma")]
        ) from exc
    run = get(session, actor, run_id)
    if run.status != DONE:
        raise ValidationFailed(
            "The run has not finished.", [FieldError("run", "wait until the run is done")]
        )
    listed = at_risk(session, actor, run_id)
    cause = f"analytics:{run.id}:tag:{tag}"[:191]
    for row in listed:
        actions.run(
            session, "add_tag", {"tag": tag}, cause=cause, member_id=row.member.id, actor=actor
        )
    audit.record(
        session,
        actor,
        "analytics.tag",
        "analytics_run",
        run.id,
        org_path=run.org_path,
        after={"tags": [tag], "value": len(listed)},
    )
    return len(listed)
