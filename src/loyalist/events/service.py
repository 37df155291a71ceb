"""Domain events, written to the outbox in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.models import OutboxEvent

SCHEMA_VERSION = 1

EVENT_TYPES = frozenset(
    {
        "member.created",
        "member.updated",
        "order.recorded",
        "order.returned",
        "points.earned",
        "points.activated",
        "points.redeemed",
        "points.restored",
        "points.expired",
        "points.expiring",
        "points.adjusted",
        "points.clawed_back",
        "tier.changed",
        "redemption.created",
        "redemption.cancelled",
        "programme.published",
    }
)


def emit(
    session: Session,
    type_: str,
    payload: dict[str, Any],
    *,
    member_id: int | None = None,
    org_path: str | None = None,
) -> OutboxEvent:
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_}")
    now = utcnow()
    ev = OutboxEvent(
        event_id=str(uuid.uuid4()),
        type=type_,
        schema_version=SCHEMA_VERSION,
        member_id=member_id,
        org_path=org_path,
        payload=payload,
        occurred_at=now,
        dispatched_at=None,
    )
    session.add(ev)
    return ev


def list_events(
    session: Session,
    actor: Actor,
    *,
    after: int | None,
    limit: int,
    types: Sequence[str] = (),
    member_id: int | None = None,
) -> list[OutboxEvent]:
    q = select(OutboxEvent).order_by(OutboxEvent.id).limit(limit)
    if after is not None:
        q = q.where(OutboxEvent.id > after)
    if types:
        q = q.where(OutboxEvent.type.in_(list(types)))
    if member_id is not None:
        q = q.where(OutboxEvent.member_id == member_id)
    if actor.scope_path != "/":
        # Events without an org path concern the whole programme (programme.published):
        # every key may read them, as every key may read GET /v1/programme.
        q = q.where(
            OutboxEvent.org_path.startswith(actor.scope_path) | OutboxEvent.org_path.is_(None)
        )
    return list(session.scalars(q))


def as_dict(ev: OutboxEvent) -> dict[str, Any]:
    return {
        "id": ev.event_id,
        "sequence": ev.id,
        "type": ev.type,
        "schema_version": ev.schema_version,
        "occurred_at": ev.occurred_at.isoformat(),
        "member_id": ev.member_id,
        "data": ev.payload,
    }
