"""The programme's reward catalogue, materialised as ``reward`` rows when a version applies.

The programme document defines the rewards; applying a version makes the rows follow it in
the same transaction (:func:`sync_catalogue`). Redemption (``loyalist.reward.service``)
sells from these rows and keeps their stock with conditional updates. Living here, below
both services, keeps the dependency one way: reward → programme, never back.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalist.kit.clock import utcnow
from loyalist.models import Reward
from loyalist.programme.schemas import Programme


def sync_catalogue(session: Session, programme: Programme) -> None:
    """Make the reward rows follow a newly applied programme.

    Attributes are copied; stock keeps what was already redeemed: remaining moves by the
    change in total stock. Rewards no longer in the programme are deactivated, not deleted.
    """
    now = utcnow()
    rows = {r.code: r for r in session.scalars(select(Reward))}
    for spec in programme.rewards:
        row = rows.pop(spec.code, None)
        if row is None:
            row = Reward(
                code=spec.code,
                stock_total=spec.stock,
                stock_remaining=spec.stock,
                stock_added=0,
                updated_at=now,
            )
            session.add(row)
        else:
            if spec.stock is None:
                row.stock_total = row.stock_remaining = None
                row.stock_added = 0
            elif row.stock_total is None or row.stock_remaining is None:
                row.stock_total = row.stock_remaining = spec.stock
                row.stock_added = 0
            else:
                # Top-ups made since the last version stay on top of the programme's stock.
                used = row.stock_total - row.stock_remaining
                row.stock_total = spec.stock + row.stock_added
                row.stock_remaining = max(row.stock_total - used, 0)
        row.name = spec.name
        row.name_en = spec.name_en
        row.kind = spec.kind.value
        row.points = spec.points
        row.cash_minor = spec.cash_minor
        row.per_member_limit = spec.per_member_limit
        row.min_tier = spec.min_tier
        row.valid_from = spec.valid_from
        row.valid_until = spec.valid_until
        row.image_url = spec.image_url
        row.description = spec.description
        row.collect_within_days = spec.collect_within_days
        row.active = True
        row.updated_at = now
    for row in rows.values():
        row.active = False
        row.updated_at = now
    session.flush()
