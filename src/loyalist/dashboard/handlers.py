"""The dashboard's consumer of the event stream: the rollup folds as orders and points move.

The rollup stays an id-watermark fold of the orders and ledger tables (exact, see
``dashboard.service``): a ledger entry is not one event (a debit that settles a debt writes
two entries and one event), so the events wake the fold rather than carry its facts. The
fold runs at most once per consumer batch (one transaction), and is idempotent by itself
(compare-and-set on the watermarks), so the consumer's at-least-once delivery is safe.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from loyalist.dashboard import service as dashboards
from loyalist.events.consumers import consumer
from loyalist.models import OutboxEvent

NAME = "dashboard.rollup"
TYPES = frozenset(
    {
        "order.recorded",
        "order.returned",
        "points.earned",
        "points.activated",
        "points.redeemed",
        "points.restored",
        "points.expired",
        "points.adjusted",
        "points.clawed_back",
    }
)
_FOLDED = "loyalist.dashboard.folded"


@consumer(NAME, types=TYPES, together=True)  # a fold in the database
def fold_rollup(session: Session, event: OutboxEvent) -> None:
    if session.info.get(_FOLDED):  # once per batch: the fold covers every row, not one event
        return
    dashboards.refresh(session)
    session.info[_FOLDED] = True
