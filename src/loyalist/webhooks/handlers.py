"""The ``webhooks`` consumer: every event becomes one delivery per matching endpoint."""

from __future__ import annotations

from sqlalchemy.orm import Session

from loyalist.events.consumers import consumer
from loyalist.models import OutboxEvent
from loyalist.webhooks import service

CONSUMER = "webhooks"


@consumer(CONSUMER, types=None, together=True)  # deliveries and jobs: all in the database
def open_deliveries(session: Session, event: OutboxEvent) -> None:
    service.fan_out(session, event)
