"""Backtest a proposed programme version over the last N months of real orders (issue 15
item 8): read-only — pure rule evaluation (``programme.domain.evaluate_order``) on the
orders, their lines and the members' tiers as they were, inside the caller's (read)
transaction; nothing is written.

Per order, in the order they were recorded:

* the **version in force** at the order's date is evaluated again with the same context as
  when it was recorded (tier at that moment, points the member earned earlier that local
  day and ever from orders), which must give the recorded points (``reproduced``); orders
  it does not reproduce (member facts since changed, history imported, ...) are counted;
* the **proposed** version is evaluated with the proposed run's own running totals (caps
  per day and per member bite on the proposed points);
* returns claw back from the proposed line points as they did from the recorded ones.

The sums (points, liability, cost) by tier and by store are ``backtest.domain.summarise``.
Member facts for ``when:`` conditions are the members' current ones (tags, consents, ...).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalist.access.permissions import DASHBOARD_READ, require
from loyalist.backtest import domain
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.localtime import add_months, local_day, start_of_local_day
from loyalist.ledger import domain as lots
from loyalist.liability import service as liability
from loyalist.models import Member, Order, OrderLine, OrgUnit
from loyalist.order import service as orders
from loyalist.passes import service as passes
from loyalist.programme import service as programmes
from loyalist.programme.domain import (
    EarnContext,
    LineInput,
    OrderInput,
    clawback_points,
    evaluate_order,
)
from loyalist.programme.schemas import Programme
from loyalist.tier import service as tiers


@dataclass
class Backtest:
    months: int
    start: datetime
    end: datetime
    timezone: str
    value_minor_per_100_points: int
    breakage_rate: float
    summary: domain.Summary
    outcomes: list[domain.OrderOutcome] = field(default_factory=list)

    def money(self, points: int) -> int:
        return domain.money(points, self.value_minor_per_100_points)

    def cost(self, points: int) -> int:
        return domain.cost(points, self.value_minor_per_100_points, self.breakage_rate)


def _known(programme: Programme, code: str) -> str | None:
    return code if code in {t.code for t in programme.tiers.levels} else None


def run(
    session: Session,
    actor: Actor,
    proposed: Programme,
    months: int,
    now: datetime | None = None,
) -> Backtest:
    """Re-run the orders of the last ``months`` local months (to ``now``) under ``proposed``."""
    require(actor, DASHBOARD_READ)
    if months < 1:
        raise ValueError("months must be >= 1")
    end = now or utcnow()
    _v, current = programmes.active(session)
    tz = current.tz
    start = start_of_local_day(tz, add_months(local_day(tz, end), -months))
    codes = {int(i): str(c) for i, c in session.execute(select(OrgUnit.id, OrgUnit.code))}
    found = list(
        session.scalars(
            select(Order)
            .where(
                Order.member_id.is_not(None),
                Order.occurred_at >= start,
                Order.occurred_at < end,
            )
            .order_by(Order.id)
        )
    )
    lines_of: dict[int, list[OrderLine]] = defaultdict(list)
    ids = [o.id for o in found]
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for ln in session.scalars(
            select(OrderLine).where(OrderLine.order_id.in_(chunk)).order_by(OrderLine.line_no)
        ):
            lines_of[ln.order_id].append(ln)
    capped = current.earning.caps.per_member is not None or (
        proposed.earning.caps.per_member is not None
    )
    lifetime_actual: dict[int, int] = defaultdict(int)
    if capped and found:
        first = found[0].id
        for mid, n in session.execute(
            select(Order.member_id, func.sum(Order.points_earned))
            .where(Order.member_id.is_not(None), Order.id < first)
            .group_by(Order.member_id)
        ):
            lifetime_actual[int(mid or 0)] = int(n or 0)
    lifetime_proposed: dict[int, int] = defaultdict(int, lifetime_actual)
    day_actual: dict[tuple[int, object], int] = defaultdict(int)
    day_proposed: dict[tuple[int, object], int] = defaultdict(int)
    members: dict[int, Member] = {}
    outcomes: list[domain.OrderOutcome] = []
    for o in found:
        assert o.member_id is not None
        member = members.get(o.member_id) or session.get(Member, o.member_id)
        assert member is not None
        members[o.member_id] = member
        order_lines = lines_of[o.id]
        order_in = OrderInput(
            store_code=codes.get(o.store_id),
            channel=o.channel,
            occurred_at=o.occurred_at,
            amount_paid_minor=o.amount_paid_minor,
            lines=tuple(
                LineInput(
                    line_no=ln.line_no,
                    sku=ln.sku,
                    category=ln.category,
                    quantity=ln.quantity,
                    unit_price_minor=ln.unit_price_minor,
                    discount_minor=ln.discount_minor,
                )
                for ln in order_lines
            ),
        )
        tier = tiers.tier_at(session, member, o.occurred_at)
        day = (o.member_id, local_day(tz, o.occurred_at))
        _n, in_force = programmes.in_force_at(session, o.occurred_at)
        facts = orders.member_facts(session, in_force, member, o.occurred_at)
        again = evaluate_order(
            in_force,
            order_in,
            EarnContext(
                tier_code=_known(in_force, tier),
                earned_today=day_actual[day],
                earned_lifetime=lifetime_actual[o.member_id],
                facts=facts,
                # the pass held then, as when the order was recorded (paid membership)
                pass_code=passes.pass_for_earning(session, in_force, o.member_id, o.occurred_at),
            ),
        )
        new = evaluate_order(
            proposed,
            order_in,
            EarnContext(
                tier_code=_known(proposed, tier),
                earned_today=day_proposed[day],
                earned_lifetime=lifetime_proposed[o.member_id],
                facts=orders.member_facts(session, proposed, member, o.occurred_at),
                pass_code=passes.pass_for_earning(session, proposed, o.member_id, o.occurred_at),
            ),
        )
        day_actual[day] += o.points_earned
        day_proposed[day] += new.points
        lifetime_actual[o.member_id] += o.points_earned
        lifetime_proposed[o.member_id] += new.points
        returned = {ln.line_no: ln.returned_quantity for ln in order_lines}
        clawed = clawback_points(
            new.line_points, {ln.line_no: ln.quantity for ln in order_lines}, {}, returned
        )
        expires = lots.expires_at(proposed.points.expiry, proposed.tz, o.occurred_at)
        outcomes.append(
            domain.OrderOutcome(
                order_id=o.id,
                tier=tier,
                store=codes.get(o.store_id, "-"),
                actual=o.points_earned - o.points_clawed,
                proposed=new.points - clawed,
                valid_at_end=expires is None or expires > end,
                reproduced=again.points == o.points_earned,
                month=local_day(tz, o.occurred_at).strftime("%Y-%m"),
            )
        )
    rate = liability.breakage_rate(liability.cohorts(session, tz))
    return Backtest(
        months=months,
        start=start,
        end=end,
        timezone=current.timezone,
        value_minor_per_100_points=proposed.points.value_minor_per_100_points,
        breakage_rate=rate,
        summary=domain.summarise(outcomes),
        outcomes=outcomes,
    )
