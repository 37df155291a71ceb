"""The ``referral`` consumer: joins with a code attribute, orders start the return-window
clock, returns of the qualifying order prevent (or claw back) the reward."""

from __future__ import annotations

from sqlalchemy.orm import Session

from loyalist.events.consumers import consumer
from loyalist.models import OutboxEvent
from loyalist.referral import service

NAME = "referral"
TYPES = frozenset({"member.created", "order.recorded", "order.returned"})


@consumer(NAME, types=TYPES)
def react(session: Session, event: OutboxEvent) -> None:
    p = event.payload
    if event.type == "member.created":
        service.on_join(session, int(p["member_id"]))
    elif event.type == "order.recorded":
        member = p.get("member_id")
        service.on_order(session, int(p["order_id"]), int(member) if member else None)
    elif event.type == "order.returned":
        service.on_return(session, int(p["order_id"]))
