"""Programme health for a period and a part of the organisation: the console's dashboard.

Every figure is computed for one scope path (a region or store the actor may see) and one
period of programme-local days [start, end). Money is integer minor units (fen).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from loyalist.access.permissions import DASHBOARD_READ, require
from loyalist.errors import FieldError, ValidationFailed
from loyalist.kit.actor import Actor
from loyalist.models import (
    LedgerEntry,
    Member,
    Order,
    OrgUnit,
    PointsAccount,
    Redemption,
    Reward,
    TierChange,
)
from loyalist.org.errors import OrgUnitNotFound
from loyalist.programme import service as programmes


@dataclass(frozen=True)
class Period:
    start: date  # programme-local, inclusive
    end: date  # programme-local, exclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days


@dataclass
class Dashboard:
    unit_code: str
    unit_name: str
    scope_path: str
    period: Period
    currency: str
    members_total: int = 0
    members_new: int = 0
    members_active: int = 0
    orders: int = 0
    member_orders: int = 0
    sales_minor: int = 0
    member_sales_minor: int = 0
    non_member_sales_minor: int = 0
    aov_minor: int = 0
    member_aov_minor: int = 0
    repurchase_rate: float = 0.0  # share of active members with 2+ orders in the period
    points_issued: int = 0
    points_activated: int = 0
    points_redeemed: int = 0
    points_expired: int = 0
    liability_points: int = 0
    liability_pending_points: int = 0
    liability_minor: int = 0
    tiers: list[tuple[str, str, int]] = field(default_factory=list)  # code, name, members
    tier_moves: list[tuple[str, str, int]] = field(default_factory=list)  # to, reason, count
    top_rewards: list[tuple[str, str, int, int]] = field(default_factory=list)
    daily: list[tuple[date, int, int]] = field(default_factory=list)  # day, member, non-member


def resolve_unit(session: Session, actor: Actor, code: str | None) -> OrgUnit:
    """The unit to report on: ``code`` when the actor sees it, else the actor's own unit."""
    if code:
        unit = session.scalar(select(OrgUnit).where(OrgUnit.code == code))
        if unit is None or not actor.sees(unit.path):
            raise OrgUnitNotFound(f"No unit {code!r}.", [FieldError("unit", "unknown unit")])
        return unit
    unit = session.scalar(select(OrgUnit).where(OrgUnit.path == actor.scope_path))
    if unit is None:
        unit = session.scalar(select(OrgUnit).where(OrgUnit.kind == "hq"))
    if unit is None:
        raise OrgUnitNotFound("There is no organisation yet.")
    return unit


def _bounds(period: Period, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(period.start, datetime.min.time(), tz)
    end = datetime.combine(period.end, datetime.min.time(), tz)
    return start, end


def build(session: Session, actor: Actor, *, unit_code: str | None, period: Period) -> Dashboard:
    require(actor, DASHBOARD_READ)
    if period.days <= 0 or period.days > 3700:
        raise ValidationFailed(
            "The period must run forward and last at most ten years.",
            [FieldError("to", "must be after from")],
        )
    unit = resolve_unit(session, actor, unit_code)
    _version, programme = programmes.active(session)
    tz = ZoneInfo(programme.timezone)
    start, end = _bounds(period, tz)
    path = unit.path
    d = Dashboard(unit.code, unit.name, path, period, programme.currency)
    in_scope = Member.org_path.startswith(path)

    d.members_total = (
        session.scalar(
            select(func.count()).select_from(Member).where(in_scope, Member.created_at < end)
        )
        or 0
    )
    d.members_new = (
        session.scalar(
            select(func.count())
            .select_from(Member)
            .where(in_scope, Member.created_at >= start, Member.created_at < end)
        )
        or 0
    )

    o_where = and_(
        Order.org_path.startswith(path), Order.occurred_at >= start, Order.occurred_at < end
    )
    is_member = Order.member_id.is_not(None)
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Order.amount_paid_minor), 0),
            func.coalesce(func.sum(case((is_member, 1), else_=0)), 0),
            func.coalesce(func.sum(case((is_member, Order.amount_paid_minor), else_=0)), 0),
        ).where(o_where)
    ).one()
    d.orders, d.sales_minor, d.member_orders, d.member_sales_minor = (int(x) for x in row)
    d.non_member_sales_minor = d.sales_minor - d.member_sales_minor
    d.aov_minor = round(d.sales_minor / d.orders) if d.orders else 0
    d.member_aov_minor = round(d.member_sales_minor / d.member_orders) if d.member_orders else 0
    per_member = (
        select(Order.member_id, func.count().label("n"))
        .where(o_where, is_member)
        .group_by(Order.member_id)
        .subquery()
    )
    active, repeat = session.execute(
        select(
            func.count(), func.coalesce(func.sum(case((per_member.c.n >= 2, 1), else_=0)), 0)
        ).select_from(per_member)
    ).one()
    d.members_active = int(active)
    d.repurchase_rate = (int(repeat) / int(active)) if active else 0.0

    # Points movements in the period, for members of the scope.
    l_where = and_(
        LedgerEntry.occurred_at >= start,
        LedgerEntry.occurred_at < end,
        LedgerEntry.member_id.in_(select(Member.id).where(in_scope)),
    )
    moved = session.execute(
        select(
            LedgerEntry.kind,
            func.coalesce(func.sum(LedgerEntry.delta_available), 0),
            func.coalesce(func.sum(LedgerEntry.delta_pending), 0),
        )
        .where(l_where)
        .group_by(LedgerEntry.kind)
    ).all()
    for kind, avail, pend in moved:
        a, p = int(avail), int(pend)
        if kind == "earn":
            d.points_issued += a + p
        elif kind == "activate":
            d.points_activated += a
        elif kind == "redeem":
            d.points_redeemed += -a
        elif kind == "expire":
            d.points_expired += -a
    pos_adjust = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.delta_available), 0)).where(
            l_where, LedgerEntry.kind == "adjust", LedgerEntry.delta_available > 0
        )
    )
    # Staff credits count as issued (debits net against them in the grouping above).
    d.points_issued += int(pos_adjust or 0)

    liab = session.execute(
        select(
            func.coalesce(func.sum(PointsAccount.available), 0),
            func.coalesce(func.sum(PointsAccount.pending), 0),
        ).where(PointsAccount.member_id.in_(select(Member.id).where(in_scope)))
    ).one()
    d.liability_points, d.liability_pending_points = int(liab[0]), int(liab[1])
    value = programme.points.value_minor_per_100_points
    d.liability_minor = (d.liability_points * value) // 100

    counts = dict(
        session.execute(
            select(Member.tier_code, func.count()).where(in_scope).group_by(Member.tier_code)
        ).all()
    )
    d.tiers = [(t.code, t.name, int(counts.get(t.code, 0))) for t in programme.tiers.levels]
    d.tier_moves = [
        (str(to), str(reason), int(n))
        for to, reason, n in session.execute(
            select(TierChange.to_tier, TierChange.reason, func.count())
            .where(
                TierChange.occurred_at >= start,
                TierChange.occurred_at < end,
                TierChange.reason != "join",
                TierChange.member_id.in_(select(Member.id).where(in_scope)),
            )
            .group_by(TierChange.to_tier, TierChange.reason)
            .order_by(TierChange.to_tier, TierChange.reason)
        ).all()
    ]
    d.top_rewards = [
        (str(code), str(name), int(q), int(pts))
        for code, name, q, pts in session.execute(
            select(
                Reward.code, Reward.name, func.sum(Redemption.quantity), func.sum(Redemption.points)
            )
            .join(Reward, Reward.id == Redemption.reward_id)
            .where(
                Redemption.org_path.startswith(path),
                Redemption.status == "completed",
                Redemption.created_at >= start,
                Redemption.created_at < end,
            )
            .group_by(Reward.code, Reward.name)
            .order_by(func.sum(Redemption.quantity).desc(), Reward.code)
            .limit(8)
        ).all()
    ]
    d.daily = _daily(session, o_where, period, tz)
    return d


def _daily(
    session: Session, o_where: object, period: Period, tz: ZoneInfo
) -> list[tuple[date, int, int]]:
    """Sales per programme-local day, members and non-members (grouped in Python so the
    day boundary follows the programme's time zone on every database)."""
    days = {period.start + timedelta(days=i): [0, 0] for i in range(period.days)}
    q = select(Order.occurred_at, Order.member_id.is_not(None), Order.amount_paid_minor).where(
        o_where  # type: ignore[arg-type]
    )
    for at, member, amount in session.execute(q):
        day = at.astimezone(tz).date()
        if day in days:
            days[day][0 if member else 1] += int(amount)
    return [(day, v[0], v[1]) for day, v in sorted(days.items())]


def scope_units(session: Session, actor: Actor) -> list[OrgUnit]:
    """The units the actor may report on (its own and everything under it)."""
    q = select(OrgUnit).where(OrgUnit.path.startswith(actor.scope_path)).order_by(OrgUnit.path)
    return list(session.scalars(q))
