"""Programme health for a period and a part of the organisation: the console's dashboard.

Every figure is computed for one scope path (a region or store the actor may see) and one
period of programme-local days [start, end). Money is integer minor units (fen).

Orders and ledger entries are the two large tables. Their additive figures (orders, sales,
points issued / activated / redeemed / expired) are read from ``dashboard_daily``, a rollup
per programme-local day and org path, plus the rows not folded yet (above the per-table
watermark in ``dashboard_fold``), so every figure stays exact. :func:`refresh` folds rows
whose ids were observed at least :data:`FOLD_MARGIN` earlier — a transaction that had not
committed then has committed (or rolled back) since, so none is skipped. It runs in the
``dashboard.rollup`` consumer of the event stream (``dashboard.handlers``), woken by order
and points events; reading the dashboard never writes. Points movements are
attributed to the member's home org path when folded (live rows: the current one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, delete, func, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from loyalist.access.permissions import DASHBOARD_READ, require
from loyalist.errors import FieldError, ValidationFailed
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.db import is_sqlite
from loyalist.models import (
    DashboardDaily,
    DashboardFold,
    LedgerEntry,
    Member,
    Order,
    OrgUnit,
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


# ── the rollup ─────────────────────────────────────────────────────────────────────────
FOLD_MARGIN = timedelta(minutes=5)
FOLD_BATCH = 20_000  # rows per table folded by one consumer batch
SOURCES = ("orders", "ledger")
_FACTS = (
    "orders",
    "member_orders",
    "sales_minor",
    "member_sales_minor",
    "points_earned",
    "points_activated",
    "points_redeemed",
    "points_expired",
    "points_adjusted_in",
    "available_delta",
    "pending_delta",
)


@dataclass(frozen=True)
class _Fold:
    source: str
    watermark: int
    seen_id: int
    seen_at: datetime | None
    timezone: str | None


def _insert(session: Session) -> Any:
    return sqlite_insert if is_sqlite(session) else pg_insert


def _folds(session: Session) -> dict[str, _Fold]:
    rows = {f.source: f for f in session.scalars(select(DashboardFold))}
    if len(rows) < len(SOURCES):  # e.g. a truncated table; concurrent creators agree
        stmt = _insert(session)(DashboardFold).on_conflict_do_nothing()
        for source in SOURCES:
            if source not in rows:
                session.execute(
                    stmt.values(source=source, watermark=0, seen_id=0, seen_at=None, timezone=None)
                )
        session.flush()
        rows = {f.source: f for f in session.scalars(select(DashboardFold))}
    out = {
        k: _Fold(f.source, int(f.watermark), int(f.seen_id), f.seen_at, f.timezone)
        for k, f in rows.items()
    }
    for f in rows.values():
        session.expunge(f)
    return out


def _claim(session: Session, old: _Fold, **values: Any) -> bool:
    """Move one fold row from the state ``old`` (compare-and-set: a concurrent folder that
    got there first makes this return False and the caller folds nothing)."""
    res = session.execute(
        update(DashboardFold)
        .where(
            DashboardFold.source == old.source,
            DashboardFold.watermark == old.watermark,
            DashboardFold.seen_id == old.seen_id,
        )
        .values(**values)
    )
    return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def _count_entry(c: dict[str, int], kind: str, a: int, p: int) -> None:
    """Add one ledger entry to the facts ``c``."""
    c["available_delta"] += a
    c["pending_delta"] += p
    if kind == "earn":
        c["points_earned"] += a + p
    elif kind == "activate":
        c["points_activated"] += a
    elif kind == "redeem":
        c["points_redeemed"] -= a
    elif kind == "expire":
        c["points_expired"] -= a
    elif kind == "adjust" and a > 0:  # staff credits count as issued; debits do not net
        c["points_adjusted_in"] += a


def _day_rows(
    session: Session, source: str, lo: int, hi: int, tz: ZoneInfo
) -> list[dict[str, Any]]:
    """The facts of rows ``lo < id <= hi`` of one source, summed per local day and path."""
    acc: dict[tuple[date, str], dict[str, int]] = {}

    def cell(at: datetime, path: str) -> dict[str, int]:
        key = (at.astimezone(tz).date(), path)
        got = acc.get(key)
        if got is None:
            got = acc[key] = dict.fromkeys(_FACTS, 0)
        return got

    if source == "orders":
        q = select(
            Order.occurred_at, Order.org_path, Order.member_id.is_not(None), Order.amount_paid_minor
        ).where(Order.id > lo, Order.id <= hi)
        for at, path, member, amount in session.execute(q):
            c = cell(at, path)
            c["orders"] += 1
            c["sales_minor"] += int(amount)
            if member:
                c["member_orders"] += 1
                c["member_sales_minor"] += int(amount)
    else:
        q2 = (
            select(
                LedgerEntry.occurred_at,
                Member.org_path,
                LedgerEntry.kind,
                LedgerEntry.delta_available,
                LedgerEntry.delta_pending,
            )
            .join(Member, Member.id == LedgerEntry.member_id)
            .where(LedgerEntry.id > lo, LedgerEntry.id <= hi)
        )
        for at, path, kind, avail, pend in session.execute(q2):
            c = cell(at, path)
            _count_entry(c, str(kind), int(avail), int(pend))
    return [{"day": d, "org_path": path, **facts} for (d, path), facts in acc.items()]


def _fold_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    ins = _insert(session)(DashboardDaily)
    stmt = ins.on_conflict_do_update(
        index_elements=["day", "org_path"],
        set_={k: getattr(DashboardDaily, k) + getattr(ins.excluded, k) for k in _FACTS},
    )
    for i in range(0, len(rows), 1000):
        session.execute(stmt, rows[i : i + 1000])


def refresh(
    session: Session, *, margin: timedelta = FOLD_MARGIN, batch: int | None = FOLD_BATCH
) -> int:
    """Fold orders and ledger entries into ``dashboard_daily``; returns the rows folded.

    Per source: fold the ids observed at least ``margin`` ago (at most ``batch`` of them),
    then, once everything observed is folded, observe the current highest id. A change of
    the programme's time zone starts the rollup again.
    """
    _version, programme = programmes.active(session)
    tz_name = programme.timezone
    tz = ZoneInfo(tz_name)
    now = utcnow()
    folds = _folds(session)
    if any(f.timezone != tz_name for f in folds.values()):
        stale = [f for f in folds.values() if f.timezone != tz_name]
        if not all(
            _claim(session, f, watermark=0, seen_id=0, seen_at=None, timezone=tz_name)
            for f in stale
        ):
            return 0
        if any(f.timezone is not None for f in stale):
            session.execute(delete(DashboardDaily))
        folds = _folds(session)
    folded = 0
    for source in SOURCES:
        f = folds[source]
        table = Order if source == "orders" else LedgerEntry
        if f.seen_id <= f.watermark:  # everything observed is folded: observe again
            top = int(session.scalar(select(func.coalesce(func.max(table.id), 0))) or 0)
            if top <= f.watermark or not _claim(session, f, seen_id=top, seen_at=now):
                continue
            f = _Fold(source, f.watermark, top, now, f.timezone)
        if f.seen_at is None or f.seen_at > now - margin:
            continue
        hi = f.seen_id if batch is None else min(f.seen_id, f.watermark + batch)
        if not _claim(session, f, watermark=hi):
            continue
        rows = _day_rows(session, source, f.watermark, hi, tz)
        _fold_rows(session, rows)
        folded += hi - f.watermark
    session.flush()
    return folded


def _watermarks(session: Session, tz_name: str) -> dict[str, int] | None:
    """How far the rollup is folded, read only; None when it cannot be used (never folded,
    or folded in another time zone: the consumer starts it again at its next batch)."""
    rows = list(session.scalars(select(DashboardFold)))
    if {f.source for f in rows} != set(SOURCES) or any(f.timezone != tz_name for f in rows):
        return None
    return {f.source: int(f.watermark) for f in rows}


# ── the figures ────────────────────────────────────────────────────────────────────────
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
    # Read only: the fold runs in the dashboard consumer (dashboard.handlers), never here.
    folded = _watermarks(session, programme.timezone)
    marks = folded if folded is not None else dict.fromkeys(SOURCES, 0)
    # HQ is the root of the tree: its scope is every row, with no path filter to evaluate.
    everything = unit.kind == "hq"

    def within(col: Any) -> Any:
        return true() if everything else col.startswith(path)

    in_scope = within(Member.org_path)

    # Members: counts and the tier distribution in one index-only scan.
    by_tier: dict[str, int] = {}
    for tier, n_total, n_new, n_now in session.execute(
        select(
            Member.tier_code,
            func.coalesce(func.sum(case((Member.created_at < end, 1), else_=0)), 0),
            func.coalesce(
                func.sum(
                    case((and_(Member.created_at >= start, Member.created_at < end), 1), else_=0)
                ),
                0,
            ),
            func.count(),
        )
        .where(in_scope)
        .group_by(Member.tier_code)
    ):
        d.members_total += int(n_total)
        d.members_new += int(n_new)
        by_tier[str(tier)] = int(n_now)
    d.tiers = [(t.code, t.name, by_tier.get(t.code, 0)) for t in programme.tiers.levels]

    # Orders and points: the rollup's days plus the rows above the watermarks.
    facts = dict.fromkeys(_FACTS, 0)
    daily = {period.start + timedelta(days=i): [0, 0] for i in range(period.days)}
    r_where = and_(
        DashboardDaily.day >= period.start,
        DashboardDaily.day < period.end,
        within(DashboardDaily.org_path),
    )
    rolled = (
        session.execute(
            select(
                DashboardDaily.day,
                *(func.sum(getattr(DashboardDaily, k)) for k in _FACTS),
            )
            .where(r_where)
            .group_by(DashboardDaily.day)
        ).all()
        if folded is not None
        else []
    )
    for day, *values in rolled:
        row = dict(zip(_FACTS, (int(v or 0) for v in values), strict=True))
        for k, v in row.items():
            facts[k] += v
        if day in daily:
            daily[day][0] += row["member_sales_minor"]
            daily[day][1] += row["sales_minor"] - row["member_sales_minor"]

    o_where = and_(within(Order.org_path), Order.occurred_at >= start, Order.occurred_at < end)
    tail_orders = select(
        Order.occurred_at, Order.member_id.is_not(None), Order.amount_paid_minor
    ).where(o_where, Order.id > marks["orders"])
    for at, member, amount in session.execute(tail_orders):
        facts["orders"] += 1
        facts["sales_minor"] += int(amount)
        if member:
            facts["member_orders"] += 1
            facts["member_sales_minor"] += int(amount)
        day = at.astimezone(tz).date()
        if day in daily:
            daily[day][0 if member else 1] += int(amount)

    # Balances (the liability) are every entry ever: the rollup's days plus the tail. The
    # tail's entries in the period also count as the period's movements.
    balances = dict.fromkeys(("available_delta", "pending_delta"), 0)
    avail_all, pend_all = (
        session.execute(
            select(
                func.coalesce(func.sum(DashboardDaily.available_delta), 0),
                func.coalesce(func.sum(DashboardDaily.pending_delta), 0),
            ).where(within(DashboardDaily.org_path))
        ).one()
        if folded is not None
        else (0, 0)
    )
    balances["available_delta"], balances["pending_delta"] = int(avail_all), int(pend_all)
    tail = and_(LedgerEntry.id > marks["ledger"], in_scope)

    def of_members(q: Any) -> Any:
        return q if everything else q.join(Member, Member.id == LedgerEntry.member_id)

    avail_tail, pend_tail = session.execute(
        of_members(
            select(
                func.coalesce(func.sum(LedgerEntry.delta_available), 0),
                func.coalesce(func.sum(LedgerEntry.delta_pending), 0),
            )
        ).where(tail)
    ).one()
    balances["available_delta"] += int(avail_tail)
    balances["pending_delta"] += int(pend_tail)
    positive = case((LedgerEntry.delta_available > 0, LedgerEntry.delta_available), else_=0)
    for kind, avail, pend, credit in session.execute(
        of_members(
            select(
                LedgerEntry.kind,
                func.sum(LedgerEntry.delta_available),
                func.sum(LedgerEntry.delta_pending),
                func.sum(positive),
            )
        )
        .where(tail, LedgerEntry.occurred_at >= start, LedgerEntry.occurred_at < end)
        .group_by(LedgerEntry.kind)
    ):
        a, p = int(avail or 0), int(pend or 0)
        if kind == "adjust":  # staff credits count as issued; debits do not net
            facts["points_adjusted_in"] += int(credit or 0)
        else:
            _count_entry(facts, str(kind), a, p)

    d.orders, d.sales_minor = facts["orders"], facts["sales_minor"]
    d.member_orders, d.member_sales_minor = facts["member_orders"], facts["member_sales_minor"]
    d.non_member_sales_minor = d.sales_minor - d.member_sales_minor
    d.aov_minor = round(d.sales_minor / d.orders) if d.orders else 0
    d.member_aov_minor = round(d.member_sales_minor / d.member_orders) if d.member_orders else 0
    d.points_issued = facts["points_earned"] + facts["points_adjusted_in"]
    d.points_activated = facts["points_activated"]
    d.points_redeemed = facts["points_redeemed"]
    d.points_expired = facts["points_expired"]
    d.daily = [(day, v[0], v[1]) for day, v in sorted(daily.items())]

    # Distinct members are not additive over days: counted live (an index-only scan).
    is_member = Order.member_id.is_not(None)
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

    d.liability_points = balances["available_delta"]
    d.liability_pending_points = balances["pending_delta"]
    value = programme.points.value_minor_per_100_points
    d.liability_minor = (d.liability_points * value) // 100

    moves = select(TierChange.to_tier, TierChange.reason, func.count())
    if not everything:
        moves = moves.join(Member, Member.id == TierChange.member_id)
    d.tier_moves = [
        (str(to), str(reason), int(n))
        for to, reason, n in session.execute(
            moves.where(
                TierChange.occurred_at >= start,
                TierChange.occurred_at < end,
                TierChange.reason != "join",
                in_scope,
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
                within(Redemption.org_path),
                Redemption.status == "completed",
                Redemption.created_at >= start,
                Redemption.created_at < end,
            )
            .group_by(Reward.code, Reward.name)
            .order_by(func.sum(Redemption.quantity).desc(), Reward.code)
            .limit(8)
        ).all()
    ]
    return d


def scope_units(session: Session, actor: Actor) -> list[OrgUnit]:
    """The units the actor may report on (its own and everything under it)."""
    q = select(OrgUnit).where(OrgUnit.path.startswith(actor.scope_path)).order_by(OrgUnit.path)
    return list(session.scalars(q))
