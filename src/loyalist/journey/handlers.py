"""The ``journeys`` consumer: every member event may end a wait, exit a run or enter one."""

from __future__ import annotations

from sqlalchemy.orm import Session

from loyalist.events.consumers import consumer
from loyalist.journey import service
from loyalist.models import OutboxEvent


@consumer("journeys", batch=service.on_events)
def on_event(session: Session, event: OutboxEvent) -> None:
    service.on_event(session, event)
