"""Messages that follow events: the points-expiring reminder (``points.expiring``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from loyalist.events.consumers import consumer
from loyalist.messaging import outbox
from loyalist.models import OutboxEvent

CONSUMER = "messaging.reminders"


@consumer(CONSUMER, types={"points.expiring"})
def points_expiring(session: Session, event: OutboxEvent) -> None:
    """One reminder per event (30 and 7 days before, as the reminder job emits them),
    on the template's channels; the event id keeps a replay from sending twice."""
    p = event.payload
    zone = outbox.zone_of(session)
    day = datetime.fromisoformat(str(p["expires_at"])).astimezone(zone).date().isoformat()
    outbox.send(
        session,
        int(p["member_id"]),
        "points_expiring",
        {"points": int(p["points"]), "date": day, "days": int(p["days_before"])},
        dedupe_key=f"event:{event.event_id}",
    )
