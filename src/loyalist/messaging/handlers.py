"""Messages that follow events: the points-expiring reminder (``points.expiring``)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from loyalist.events.consumers import consumer
from loyalist.kit.clock import utcnow
from loyalist.messaging import outbox
from loyalist.models import OutboxEvent

CONSUMER = "messaging.reminders"
# A reminder for an event older than this is not sent: a consumer starts at the beginning
# of the stream, so an upgraded installation (or the demo's history) would otherwise remind
# members of every past expiry at once.
STALE = timedelta(days=1)
log = logging.getLogger("loyalist.messages")


@consumer(CONSUMER, types={"points.expiring"})
def points_expiring(session: Session, event: OutboxEvent) -> None:
    """One reminder per event (30 and 7 days before, as the reminder job emits them),
    on the template's channels; the event id keeps a replay from sending twice."""
    p = event.payload
    now = utcnow()
    expires = datetime.fromisoformat(str(p["expires_at"]))
    if now - event.occurred_at > STALE or expires <= now:
        log.info("points.expiring %s not reminded: stale", event.event_id)
        return
    zone = outbox.zone_of(session)
    day = expires.astimezone(zone).date().isoformat()
    outbox.send(
        session,
        int(p["member_id"]),
        "points_expiring",
        {"points": int(p["points"]), "date": day, "days": int(p["days_before"])},
        dedupe_key=f"event:{event.event_id}",
    )
