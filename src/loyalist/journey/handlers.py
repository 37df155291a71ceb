"""The ``journeys`` consumer: every member event may end a wait, exit a run or enter one."""

from __future__ import annotations

from sqlalchemy.orm import Session

from loyalist.events.consumers import consumer
from loyalist.journey import service
from loyalist.models import OutboxEvent


# Set-based (service.on_events): a batch of 2,000 costs about what one of 500 does.
@consumer("journeys", batch=service.on_events, limit=2000)
def on_event(session: Session, event: OutboxEvent) -> None:
    service.on_event(session, event)
