"""Four-eyes points adjustments: the one gate every channel (API, console, CLI) passes.

A manual adjustment applies at once only when it is within the caller's limit: the approval
threshold (``LOYALIST_ADJUST_APPROVAL_THRESHOLD``), or the approval-free limit an API key
was granted explicitly at creation. A console user also has a daily budget per role
(``LOYALIST_ADJUST_DAILY_BUDGET``), spent with a conditional update so two concurrent
adjustments cannot both pass the last points of it. Anything beyond becomes a pending
request that a second person (never the requester, never a store-scoped caller) approves.
``member.service.adjust_points`` applies unconditionally and is called only from here (and
by system seeding such as the demo).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from loyalist.access.permissions import POINTS_ADJUST, POINTS_APPROVE, require
from loyalist.approval.schemas import AdjustmentRequestOut
from loyalist.audit import service as audit
from loyalist.config import Settings
from loyalist.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.localtime import local_day
from loyalist.ledger.errors import InvalidAdjustment
from loyalist.member import service as members
from loyalist.models import AdjustmentBudgetUse, AdjustmentRequest, LedgerEntry, OrgUnit
from loyalist.programme import service as programmes

DEFAULT_THRESHOLD = 5000
# Points of manual adjustment (either sign) a console user may apply per programme-local day
# without a second person, by role; a role not listed has no daily budget beyond the threshold.
DEFAULT_DAILY_BUDGET: dict[str, int] = {
    "hq_admin": 200_000,
    "regional_manager": 50_000,
    "service_agent": 20_000,
    "store_staff": 5_000,
}


@dataclass(frozen=True)
class Policy:
    threshold: int = DEFAULT_THRESHOLD
    daily_budget: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_DAILY_BUDGET))


def policy(settings: Settings) -> Policy:
    return Policy(settings.adjust_approval_threshold, dict(settings.adjust_daily_budget))


class RequestNotFound(NotFound):
    code = "adjustment_request_not_found"


class RequestDecided(Conflict):
    code = "adjustment_request_decided"
    title = "This request was already decided"


@dataclass(frozen=True)
class Outcome:
    entry: LedgerEntry | None  # applied now
    request: AdjustmentRequest | None  # waiting for approval


def limit_for(actor: Actor, threshold: int) -> tuple[int, str]:
    """The most points ``actor`` may apply at once, and what sets it."""
    if actor.approval_free_limit is not None:
        return actor.approval_free_limit, "key_limit"
    return threshold, "threshold"


def _spend_budget(session: Session, actor: Actor, day: date, points: int, budget: int) -> bool:
    """Take ``points`` from the actor's budget for ``day`` if it has them (conditional update)."""
    values = {"principal": actor.principal[:64], "day": day, "used": 0}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(AdjustmentBudgetUse).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite_insert(AdjustmentBudgetUse).values(values).on_conflict_do_nothing())
    else:  # pragma: no cover - the two supported databases are handled above
        if session.get(AdjustmentBudgetUse, (values["principal"], day)) is None:
            session.execute(insert(AdjustmentBudgetUse).values(values))
    res = session.execute(
        update(AdjustmentBudgetUse)
        .where(
            AdjustmentBudgetUse.principal == values["principal"],
            AdjustmentBudgetUse.day == day,
            AdjustmentBudgetUse.used + points <= budget,
        )
        .values(used=AdjustmentBudgetUse.used + points)
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def budget_used(session: Session, actor: Actor, day: date) -> int:
    row = session.get(AdjustmentBudgetUse, (actor.principal[:64], day))
    return row.used if row is not None else 0


def adjust(
    session: Session,
    actor: Actor,
    member_id: int,
    points: int,
    reason: str,
    *,
    threshold: int | None = None,
    rules: Policy | None = None,
) -> Outcome:
    """Adjust now when within the actor's limit (and daily budget); otherwise file a
    request for a second person's approval."""
    require(actor, POINTS_ADJUST)
    rules = rules or Policy()
    if threshold is not None:
        rules = Policy(threshold, rules.daily_budget)
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("A reason is required.", [FieldError("reason", "required")])
    if points == 0:
        raise InvalidAdjustment(
            "An adjustment of 0 points does nothing.",
            [FieldError("points", "must not be 0", "zero")],
        )
    m = members.get(session, actor, member_id)
    limit, cause = limit_for(actor, rules.threshold)
    if abs(points) <= limit:
        budget = rules.daily_budget.get(actor.role) if actor.role is not None else None
        if budget is None:
            return Outcome(members.adjust_points(session, actor, m.id, points, reason), None)
        _v, programme = programmes.active(session)
        day = local_day(programme.tz, utcnow())
        if _spend_budget(session, actor, day, abs(points), budget):
            return Outcome(members.adjust_points(session, actor, m.id, points, reason), None)
        cause = "daily_budget"
    req = AdjustmentRequest(
        member_id=m.id,
        org_path=m.org_path,
        points=points,
        reason=reason,
        status="pending",
        requested_by=actor.name,
        requested_principal=actor.principal,
        decided_by=None,
        decided_at=None,
        ledger_entry_id=None,
        cause=cause,
        created_at=utcnow(),
    )
    session.add(req)
    session.flush()
    audit.record(
        session,
        actor,
        "points.adjust.request",
        "member",
        m.id,
        org_path=m.org_path,
        after={"request_id": req.id, "points": points, "reason": reason, "cause": cause},
    )
    return Outcome(None, req)


def get(session: Session, actor: Actor, request_id: int) -> AdjustmentRequest:
    req = session.get(AdjustmentRequest, request_id)
    if req is None or not actor.sees(req.org_path):
        raise RequestNotFound(f"No adjustment request {request_id}.")
    return req


def pending(
    session: Session,
    actor: Actor,
    member_id: int | None = None,
    *,
    status: str | None = "pending",
    after: int | None = None,
    limit: int | None = None,
) -> list[AdjustmentRequest]:
    q = (
        select(AdjustmentRequest)
        .where(AdjustmentRequest.org_path.startswith(actor.scope_path))
        .order_by(AdjustmentRequest.id)
    )
    if status is not None:
        q = q.where(AdjustmentRequest.status == status)
    if after is not None:
        q = q.where(AdjustmentRequest.id > after)
    if limit is not None:
        q = q.limit(limit)
    if member_id is not None:
        q = q.where(AdjustmentRequest.member_id == member_id)
    return list(session.scalars(q))


def _decide(session: Session, actor: Actor, request_id: int, status: str) -> AdjustmentRequest:
    require(actor, POINTS_APPROVE)
    req = get(session, actor, request_id)
    if req.requested_principal == actor.principal:
        raise Forbidden("A second person must approve this adjustment.")
    if actor.scope_path != "/":
        unit = session.scalar(select(OrgUnit).where(OrgUnit.path == actor.scope_path))
        if unit is not None and unit.kind == "store":
            raise Forbidden("A store cannot approve adjustments: a region or HQ must.")
    claimed = session.execute(
        update(AdjustmentRequest)
        .where(AdjustmentRequest.id == req.id, AdjustmentRequest.status == "pending")
        .values(status=status, decided_by=actor.name, decided_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise RequestDecided(f"Request {request_id} was already decided.")
    session.refresh(req)
    return req


def approve(session: Session, actor: Actor, request_id: int) -> AdjustmentRequest:
    req = _decide(session, actor, request_id, "approved")
    entry = members.adjust_points(
        session,
        actor,
        req.member_id,
        req.points,
        f"{req.reason} (requested by {req.requested_by})",
        approved_by=actor.name,
    )
    req.ledger_entry_id = entry.id
    audit.record(
        session,
        actor,
        "points.adjust.approve",
        "member",
        req.member_id,
        org_path=req.org_path,
        before={"request_id": req.id, "status": "pending"},
        after={"status": "approved", "entry_id": entry.id, "requested_by": req.requested_by},
    )
    return req


def reject(session: Session, actor: Actor, request_id: int) -> AdjustmentRequest:
    req = _decide(session, actor, request_id, "rejected")
    audit.record(
        session,
        actor,
        "points.adjust.reject",
        "member",
        req.member_id,
        org_path=req.org_path,
        before={"request_id": req.id, "status": "pending"},
        after={"status": "rejected", "requested_by": req.requested_by},
    )
    return req


def request_body(r: AdjustmentRequest) -> dict[str, Any]:
    """An adjustment request as the API answers it."""
    return AdjustmentRequestOut(
        id=r.id,
        member_id=r.member_id,
        points=r.points,
        reason=r.reason,
        status=r.status,
        cause=r.cause,
        requested_by=r.requested_by,
        created_at=r.created_at,
        decided_by=r.decided_by,
        decided_at=r.decided_at,
        ledger_entry_id=r.ledger_entry_id,
    ).model_dump(mode="json")
