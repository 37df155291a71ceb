"""Tier qualification: instant upgrades, periodic re-evaluation, progress."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import Select, bindparam, case, func, select
from sqlalchemy.orm import Session

from loyalist.events import service as events
from loyalist.kit.clock import as_utc, utcnow
from loyalist.kit.localtime import add_months, local_day, start_of_local_day
from loyalist.models import Member, MemberRfm, Order, PointsAccountMember, TierChange
from loyalist.programme.schemas import Programme, TierMetric
from loyalist.tier.domain import (
    Progress,
    instant_upgrade,
    progress,
    qualifying_tier,
    reevaluate,
    window_start,
)


def _pool_members(session: Session, member_id: int) -> list[int]:
    """A household qualifies together (programme ``households.household_qualifies_together``):
    the members drawing on the same points account as the member now, the member included
    (each keeps their own tier; only the figure is combined)."""
    account = (
        select(PointsAccountMember.account_id)
        .where(PointsAccountMember.member_id == member_id, PointsAccountMember.left_at.is_(None))
        .scalar_subquery()
    )
    ids = session.scalars(
        select(PointsAccountMember.member_id).where(
            PointsAccountMember.account_id == account, PointsAccountMember.left_at.is_(None)
        )
    ).all()
    return sorted({member_id, *(int(i) for i in ids)})


def metric_value(session: Session, programme: Programme, member_id: int, now: datetime) -> int:
    """The member's qualification metric over the programme's rolling window ending now."""
    tiers = programme.tiers
    start = window_start(tiers.window_months, programme.tz, now)
    who = Order.member_id == member_id
    if programme.households.household_qualifies_together:
        who = Order.member_id.in_(_pool_members(session, member_id))
    base = (who, Order.occurred_at >= start, Order.occurred_at <= now)
    if spend_alone(programme):
        # The earn path's case (an instant upgrade check per order): the statement built
        # once per process (speed, issue 11), the same SQL as below.
        params = {"member_id": member_id, "start": start, "now": now}
        return spend_metric(session.scalar(_MEMBER_SPEND, params))
    if tiers.metric is TierMetric.SPEND:
        # What was really paid for lines that qualify (gift cards and other excluded
        # categories left out), less what was refunded of it.
        q = select(
            func.coalesce(func.sum(Order.qualifying_minor - Order.qualifying_refunded_minor), 0)
        )
        return max(int(session.scalar(q.where(*base)) or 0), 0)
    if tiers.metric is TierMetric.ORDERS:
        q = select(func.count()).select_from(Order).where(*base, Order.status != "returned")
        return int(session.scalar(q) or 0)
    if tiers.metric is TierMetric.RFM:
        # The nightly RFM table (insights.rfm), weighted by the programme's own weights; a
        # member with no row yet (no purchase) scores 0, the base tier.
        row = session.get(MemberRfm, member_id)
        if row is None:
            return 0
        return tiers.rfm_weights.score(row.r_score, row.f_score, row.m_score)
    if tiers.metric is TierMetric.POINTS:
        q = select(func.coalesce(func.sum(Order.points_earned - Order.points_clawed), 0))
        return max(int(session.scalar(q.where(*base)) or 0), 0)
    q2 = select(Order.occurred_at).where(*base, Order.status != "returned")
    return len({local_day(programme.tz, at) for at in session.scalars(q2)})


def _member_spend(member_id: Any, start: Any, now: Any) -> Select[Any]:
    return select(
        func.coalesce(func.sum(Order.qualifying_minor - Order.qualifying_refunded_minor), 0)
    ).where(
        Order.member_id == member_id,
        Order.occurred_at >= start,
        Order.occurred_at <= now,
    )


_MEMBER_SPEND = _member_spend(bindparam("member_id"), bindparam("start"), bindparam("now"))


def spend_alone(programme: Programme) -> bool:
    """Whether the programme's metric is the member's own spend (the case
    :func:`spend_in_window` reads; the earn path's instant upgrade check)."""
    return (
        programme.tiers.metric is TierMetric.SPEND
        and not programme.households.household_qualifies_together
    )


def spend_window(programme: Programme, now: datetime) -> tuple[datetime, datetime]:
    """The start and the end of the window :func:`metric_value` sums at ``now``."""
    return window_start(programme.tiers.window_months, programme.tz, now), now


def spend_in_window(member_id: Any, start: Any, now: Any) -> Any:
    """What :func:`metric_value` reads for a programme of :func:`spend_alone` (before its
    ``max(…, 0)``), as a scalar subquery of ``member_id`` and the :func:`spend_window`
    (columns or bound parameters) for a caller's own statement."""
    return _member_spend(member_id, start, now).scalar_subquery()


def spend_metric(read: Any) -> int:
    """The metric of a programme of :func:`spend_alone` from what :func:`spend_in_window`
    read (never below 0)."""
    return max(int(read or 0), 0)


def _record(
    session: Session,
    member: Member,
    programme: Programme,
    version: int,
    to_tier: str,
    reason: str,
    value: int,
    now: datetime,
    period: str | None = None,
) -> TierChange:
    from_tier = member.tier_code
    member.tier_code = to_tier
    member.tier_since = now
    validity = programme.tiers.by_code(to_tier).validity_months
    member.tier_expires_at = (
        start_of_local_day(programme.tz, add_months(local_day(programme.tz, now), validity))
        if validity
        else None
    )
    member.tier_periods_below = 0
    change = TierChange(
        member_id=member.id,
        from_tier=from_tier,
        to_tier=to_tier,
        reason=reason,
        metric_value=value,
        period=period,
        programme_version=version,
        occurred_at=now,
    )
    session.add(change)
    session.flush()
    events.emit(
        session,
        "tier.changed",
        {
            "member_id": member.id,
            "from": from_tier,
            "to": to_tier,
            "reason": reason,
            "metric": programme.tiers.metric.value,
            "value": value,
            "period": period,
        },
        member_id=member.id,
        org_path=member.org_path,
    )
    return change


class _Unread(Enum):
    UNREAD = 0


#: ``changed_to`` of :func:`tier_at` when the caller read nothing beforehand.
UNREAD = _Unread.UNREAD


def tier_at(
    session: Session, member: Member, at: datetime, *, changed_to: str | _Unread | None = UNREAD
) -> str:
    """The member's tier in force at ``at`` (before they joined: the tier they joined in).

    ``changed_to``: what :func:`tier_change_at` answered for the member and ``at``, when a
    caller folded it into a statement of its own (speed, issue 11: the order path's locking
    read); the tier change history is then not read again."""
    if at >= member.tier_since:
        # Every tier change sets tier_code and tier_since together (``_record``, joining):
        # at or after the last one the member's tier is the one they hold (no query).
        return member.tier_code
    code = (
        session.scalar(_TIER_CHANGE_AT, {"member_id": member.id, "at": at})
        if changed_to is UNREAD
        else changed_to
    )
    return code if code is not None else member.tier_code


def tier_change_at(member_id: Any, at: Any) -> Any:
    """The tier change that decides the tier in force at ``at`` for :func:`tier_at`, as a
    scalar subquery of ``member_id`` and ``at`` (columns or bound parameters) for a caller's
    own statement: the last change by ``at`` if any, else the first one (the join); NULL
    when there is none."""
    return _tier_change_query(member_id, at).scalar_subquery()


def _tier_change_query(member_id: Any, at: Any) -> Select[str]:
    by_then = TierChange.occurred_at <= at
    return (
        select(TierChange.to_tier)
        .where(TierChange.member_id == member_id)
        .order_by(
            case((by_then, 0), else_=1),
            case((by_then, TierChange.occurred_at)).desc().nulls_last(),
            case((by_then, TierChange.id)).desc().nulls_last(),
            TierChange.occurred_at,
            TierChange.id,
        )
        .limit(1)
    )


# speed (issue 11): built once per process with bound parameters.
_TIER_CHANGE_AT = _tier_change_query(bindparam("member_id"), bindparam("at"))


def upgrade_if_qualified(
    session: Session,
    member: Member,
    programme: Programme,
    version: int,
    now: datetime,
    *,
    value: int | None = None,
) -> TierChange | None:
    """Instant upgrade when the member now crosses a higher threshold; never downgrades.

    ``value``: the member's :func:`metric_value` at ``now``, when the caller knows it
    without asking (the order path: :func:`spend_in_window` read under the account lock,
    plus the order it recorded since)."""
    current = _known_tier(programme, member.tier_code)
    if programme.tiers.index(current) == len(programme.tiers.levels) - 1:
        return None  # the top tier: no higher one to cross into, so no metric is read
    if value is None:
        value = metric_value(session, programme, member.id, now)
    target = instant_upgrade(programme.tiers, current, value)
    if target is None:
        return None
    return _record(session, member, programme, version, target, "upgrade", value, now)


def _known_tier(programme: Programme, code: str) -> str:
    codes = [t.code for t in programme.tiers.levels]
    return code if code in codes else codes[0]


def reevaluate_member(
    session: Session,
    member: Member,
    programme: Programme,
    version: int,
    now: datetime,
    period: str,
) -> TierChange | None:
    """Periodic re-evaluation: upgrade, keep, hold, or downgrade after N periods below."""
    if member.tier_evaluated_period == period:
        return None  # already evaluated for this period: running twice changes nothing
    current = _known_tier(programme, member.tier_code)
    value = metric_value(session, programme, member.id, now)
    result = reevaluate(programme.tiers, current, value, member.tier_periods_below)
    expired = member.tier_expires_at is not None and member.tier_expires_at <= now
    member.tier_evaluated_period = period
    down_to: str | None = None
    if result.change == "hold" and expired:
        down_to = qualifying_tier(programme.tiers, value)
    elif result.change == "downgrade":
        down_to = result.new_tier
    if down_to is not None:
        # The period ended below, but a downgrade never goes below what the member
        # qualifies for today (spend since the period closed counts, as it would for an
        # instant upgrade).
        today = qualifying_tier(
            programme.tiers, metric_value(session, programme, member.id, utcnow())
        )
        if programme.tiers.index(today) > programme.tiers.index(down_to):
            down_to = today
        if down_to == current:
            member.tier_periods_below = 0
            session.flush()
            return None
        return _record(
            session, member, programme, version, down_to, "downgrade", value, now, period
        )
    if result.change == "upgrade":
        return _record(
            session, member, programme, version, result.new_tier, result.change, value, now, period
        )
    member.tier_periods_below = result.periods_below
    if current != member.tier_code:  # tier removed from the programme: move to the base tier
        return _record(session, member, programme, version, current, "reevaluation", value, now)
    session.flush()
    return None


def member_progress(
    session: Session, member: Member, programme: Programme, now: datetime
) -> Progress:
    return progress_of(session, programme, member.id, member.tier_code, now)


def progress_of(
    session: Session, programme: Programme, member_id: int, tier_code: str, now: datetime
) -> Progress:
    """:func:`member_progress` from the member's id and tier (a read that holds no entity)."""
    return progress_with(programme, tier_code, metric_value(session, programme, member_id, now))


def progress_with(programme: Programme, tier_code: str, value: int) -> Progress:
    """:func:`progress_of` with the metric's ``value`` read by the caller."""
    return progress(programme.tiers, _known_tier(programme, tier_code), value)


def members_to_reevaluate(session: Session, period: str, after_id: int, limit: int) -> list[int]:
    q = (
        select(Member.id)
        .where(
            Member.id > after_id,
            (Member.tier_evaluated_period.is_(None)) | (Member.tier_evaluated_period != period),
        )
        .order_by(Member.id)
        .limit(limit)
    )
    return [int(x) for x in session.scalars(q)]


def set_tier(
    session: Session,
    member: Member,
    programme: Programme,
    version: int,
    to_tier: str,
    reason: str,
    now: datetime,
) -> TierChange:
    """Move the member to ``to_tier`` for ``reason`` (a merge, its undo), recorded and
    announced like every tier change."""
    value = metric_value(session, programme, member.id, now)
    return _record(session, member, programme, version, to_tier, reason, value, now)


# --- many members at once (bulk import, issue 13 item 5) ------------------------------------


def tiers_at(session: Session, wanted: list[tuple[Member, datetime]]) -> list[str]:
    """:func:`tier_at` of many (member, instant) pairs with one query for all the members'
    tier changes (same answer as calling :func:`tier_at` for each pair)."""
    ids = sorted({m.id for m, at in wanted if at < m.tier_since})
    history: dict[int, list[tuple[datetime, int, str]]] = {}
    for i in range(0, len(ids), 1000):
        q = select(
            TierChange.member_id, TierChange.occurred_at, TierChange.id, TierChange.to_tier
        ).where(TierChange.member_id.in_(ids[i : i + 1000]))
        for mid, occurred, cid, to in session.execute(q):
            history.setdefault(mid, []).append((as_utc(occurred), cid, to))
    out: list[str] = []
    for member, at in wanted:
        if at >= member.tier_since:
            out.append(member.tier_code)
            continue
        changes = history.get(member.id)
        if not changes:
            out.append(member.tier_code)
            continue
        at_utc = as_utc(at)
        by_then = [c for c in changes if c[0] <= at_utc]
        # the last change by ``at``; none: the first one (the tier they joined in)
        pick = max(by_then, key=lambda c: (c[0], c[1])) if by_then else min(changes)
        out.append(pick[2])
    return out


def upgrade_many_if_qualified(
    session: Session, members: list[Member], programme: Programme, version: int, now: datetime
) -> int:
    """:func:`upgrade_if_qualified` for many members: a spend metric (members qualifying
    alone) is summed for all of them in one query. Answers how many were upgraded."""
    tiers = programme.tiers
    if tiers.metric is not TierMetric.SPEND or programme.households.household_qualifies_together:
        return sum(1 for m in members if upgrade_if_qualified(session, m, programme, version, now))
    start = window_start(tiers.window_months, programme.tz, now)
    values: dict[int, int] = {}
    ids = sorted({m.id for m in members})
    for i in range(0, len(ids), 1000):
        q = (
            select(
                Order.member_id,
                func.coalesce(
                    func.sum(Order.qualifying_minor - Order.qualifying_refunded_minor), 0
                ),
            )
            .where(
                Order.member_id.in_(ids[i : i + 1000]),
                Order.occurred_at >= start,
                Order.occurred_at <= now,
            )
            .group_by(Order.member_id)
        )
        values.update({int(mid or 0): max(int(v or 0), 0) for mid, v in session.execute(q)})
    n = 0
    for m in sorted(members, key=lambda m: m.id):
        value = values.get(m.id, 0)
        target = instant_upgrade(tiers, _known_tier(programme, m.tier_code), value)
        if target is not None:
            _record(session, m, programme, version, target, "upgrade", value, now)
            n += 1
    return n
