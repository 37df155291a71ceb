"""The programme's economics for the console's analytics section (issue 15 item 4): points
earned, redeemed and expired, redemption and breakage rates, the programme's cost and —
when the journeys' global holdout exists — its incrementality and ROI.

Over the ``ECONOMICS_DAYS`` local days up to the run's day, for the members whose home is in
the run's scope:

* points from the ledger: earned (``earn``), redeemed (−(``redeem`` + ``restore``)), expired
  (−``expire``); compensation = positive manual adjustments (``adjust``) at the point value;
* coupons = the order-level coupon money of the scope's orders in the period;
* cost = redeemed points at the point value + coupons + compensation;
* incrementality = mean spend of members outside the holdout − mean spend of the holdout
  (randomised by member id), 95 % interval (``analytics.economics``); the incremental
  revenue is that × the members outside the holdout, and ROI = (incremental revenue − cost)
  ÷ cost (revenue ROI: no margin applied).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalist.journey import domain as journeys_domain
from loyalist.journey import service as journeys
from loyalist.kit.localtime import start_of_local_day
from loyalist.models import LedgerEntry, Member, MemberPass, Order

ECONOMICS_DAYS = 90


def period(as_of: dt.date) -> tuple[dt.date, dt.date]:
    return as_of - dt.timedelta(days=ECONOMICS_DAYS - 1), as_of


def points(
    session: Session, org_path: str, tz: ZoneInfo, as_of: dt.date, per_100: int
) -> dict[str, Any]:
    start, end = period(as_of)
    lo = start_of_local_day(tz, start)
    hi = start_of_local_day(tz, end + dt.timedelta(days=1))
    scope = Member.org_path.startswith(org_path, autoescape=True)
    sums: dict[str, int] = {}
    q = (
        select(LedgerEntry.kind, func.sum(LedgerEntry.delta_available + LedgerEntry.delta_pending))
        .join(Member, Member.id == LedgerEntry.member_id)
        .where(scope, LedgerEntry.created_at >= lo, LedgerEntry.created_at < hi)
        .group_by(LedgerEntry.kind)
    )
    for kind, n in session.execute(q):
        sums[str(kind)] = int(n or 0)
    compensation = int(
        session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.delta_available), 0))
            .join(Member, Member.id == LedgerEntry.member_id)
            .where(
                scope,
                LedgerEntry.kind == "adjust",
                LedgerEntry.delta_available > 0,
                LedgerEntry.created_at >= lo,
                LedgerEntry.created_at < hi,
            )
        )
        or 0
    )
    coupons = int(
        session.scalar(
            select(func.coalesce(func.sum(Order.coupon_minor), 0))
            .join(Member, Member.id == Order.member_id)
            .where(scope, Order.occurred_at >= lo, Order.occurred_at < hi)
        )
        or 0
    )
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "earned": sums.get("earn", 0),
        "redeemed": -(sums.get("redeem", 0) + sums.get("restore", 0)),
        "expired": -sums.get("expire", 0),
        "compensation_points": compensation,
        "coupons_minor": coupons,
        "value_minor_per_100_points": per_100,
    }


def holdout(session: Session, org_path: str) -> dict[int, bool] | None:
    """Every member in scope → in the journeys' global holdout (None: no holdout)."""
    loaded = journeys.current(session)
    if loaded is None or loaded.doc.holdout.percent <= 0:
        return None
    h = loaded.doc.holdout
    ids = session.scalars(
        select(Member.id).where(Member.org_path.startswith(org_path, autoescape=True))
    )
    return {int(i): journeys_domain.in_holdout(h, int(i)) for i in ids}


def pass_holders(
    session: Session, org_path: str, tz: ZoneInfo, as_of: dt.date
) -> dict[str, Any] | None:
    """The paid membership over the period (None: no pass was held or sold in it):
    ``holders`` (every member in scope → held a term, not refunded, on some day of the
    period), ``fees_minor`` (price of the terms bought in the period and not refunded) and
    ``points`` (what the passes' multipliers added to the period's orders, from their
    breakdowns)."""
    start, end = period(as_of)
    lo = start_of_local_day(tz, start)
    hi = start_of_local_day(tz, end + dt.timedelta(days=1))
    scope = MemberPass.org_path.startswith(org_path, autoescape=True)
    held = {
        int(i)
        for i in session.scalars(
            select(MemberPass.member_id).where(
                scope,
                MemberPass.status != "refunded",
                MemberPass.starts_at < hi,
                MemberPass.ends_at > lo,
            )
        )
    }
    if not held:
        return None
    fees = int(
        session.scalar(
            select(func.coalesce(func.sum(MemberPass.price_minor), 0)).where(
                scope,
                MemberPass.status != "refunded",
                MemberPass.purchased_at >= lo,
                MemberPass.purchased_at < hi,
            )
        )
        or 0
    )
    points_ = 0
    for breakdown in session.scalars(
        select(Order.breakdown).where(
            Order.member_id.in_(held),
            Order.org_path.startswith(org_path, autoescape=True),
            Order.occurred_at >= lo,
            Order.occurred_at < hi,
        )
    ):
        for item in breakdown or []:
            if str(item.get("rule", "")).startswith("pass:"):
                points_ += int(item.get("points", 0))
    ids = session.scalars(
        select(Member.id).where(Member.org_path.startswith(org_path, autoescape=True))
    )
    return {
        "holders": {int(i): int(i) in held for i in ids},
        "fees_minor": fees,
        "points": points_,
    }
