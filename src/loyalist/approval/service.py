"""Four-eyes points adjustments: above a threshold a second person must approve."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalist.access.permissions import POINTS_ADJUST, POINTS_APPROVE, require
from loyalist.audit import service as audit
from loyalist.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.member import service as members
from loyalist.models import AdjustmentRequest, LedgerEntry

DEFAULT_THRESHOLD = 5000


class RequestNotFound(NotFound):
    code = "adjustment_request_not_found"


class RequestDecided(Conflict):
    code = "adjustment_request_decided"
    title = "This request was already decided"


@dataclass(frozen=True)
class Outcome:
    entry: LedgerEntry | None  # applied now
    request: AdjustmentRequest | None  # waiting for approval


def adjust(
    session: Session,
    actor: Actor,
    member_id: int,
    points: int,
    reason: str,
    *,
    threshold: int = DEFAULT_THRESHOLD,
) -> Outcome:
    """Adjust now when ``|points| <= threshold``; otherwise file a request for approval."""
    require(actor, POINTS_ADJUST)
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("A reason is required.", [FieldError("reason", "required")])
    if points == 0:
        raise ValidationFailed("0 points does nothing.", [FieldError("points", "must not be 0")])
    m = members.get(session, actor, member_id)
    if abs(points) <= threshold:
        return Outcome(members.adjust_points(session, actor, m.id, points, reason), None)
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
        after={"request_id": req.id, "points": points, "reason": reason},
    )
    return Outcome(None, req)


def get(session: Session, actor: Actor, request_id: int) -> AdjustmentRequest:
    req = session.get(AdjustmentRequest, request_id)
    if req is None or not actor.sees(req.org_path):
        raise RequestNotFound(f"No adjustment request {request_id}.")
    return req


def pending(
    session: Session, actor: Actor, member_id: int | None = None
) -> list[AdjustmentRequest]:
    q = (
        select(AdjustmentRequest)
        .where(
            AdjustmentRequest.status == "pending",
            AdjustmentRequest.org_path.startswith(actor.scope_path),
        )
        .order_by(AdjustmentRequest.id)
    )
    if member_id is not None:
        q = q.where(AdjustmentRequest.member_id == member_id)
    return list(session.scalars(q))


def _decide(session: Session, actor: Actor, request_id: int, status: str) -> AdjustmentRequest:
    require(actor, POINTS_APPROVE)
    req = get(session, actor, request_id)
    if req.requested_principal == actor.principal:
        raise Forbidden("A second person must approve this adjustment.")
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
