"""The programme's liability: outstanding points, their money value, expected breakage and
the monthly statement, all computed from the ledger (issue 13 item 6).

* **Outstanding** — open lots (available or pending, remaining > 0) by expiry month (the
  programme's time zone) and by the earning member's region and store, in points and in
  money (``points.value_minor_per_100_points``); debts owed by accounts are one line apart.
* **Breakage** — per cohort (the month lots were earned): points earned and points that
  expired. The historical rate is Σ expired ÷ Σ earned over *settled* cohorts (no lot of
  the cohort still open); expected breakage = outstanding × rate.
* **Statement** for a month — opening, earned, redeemed, expired, adjusted, closing, where a
  balance is Σ (delta_available + delta_pending) of the entries *booked* (``created_at``)
  before a moment, so a closed month's statement never changes. Every entry kind falls in
  one column (``earn``: earned; ``redeem``/``restore``: redeemed, net; ``expire``: expired;
  anything else — adjustments, clawbacks, activations (net zero) — adjusted), so opening +
  movements = closing exactly; ``reconciles`` checks the closing against an independent
  sum of the ledger (and, for the current month, against the accounts' balance cache).
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalist.access.permissions import DASHBOARD_READ, require
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.localtime import start_of_local_day
from loyalist.liability import domain
from loyalist.models import (
    LedgerEntry,
    LotAllocation,
    Member,
    OrgUnit,
    PointsAccount,
    PointsLot,
)
from loyalist.programme import service as programmes

EARNED = frozenset({"earn"})
REDEEMED = frozenset({"redeem", "restore"})
EXPIRED = frozenset({"expire"})
OPEN = ("available", "pending")
_MICRO = timedelta(microseconds=1)


def money(points: int, per_100: int) -> int:
    """Minor units (fen) of ``points``, rounded half up."""
    return (points * per_100 + 50) // 100


@dataclass(frozen=True)
class Statement:
    month: str
    opening: int
    earned: int
    redeemed: int
    expired: int
    adjusted: int
    closing: int
    ledger_closing: int  # Σ of every entry booked before the month's end, independently
    cache_closing: int | None  # Σ of the accounts' balance cache (current month only)
    value_minor_per_100_points: int

    @property
    def reconciles(self) -> bool:
        moved = self.opening + self.earned + self.redeemed + self.expired + self.adjusted
        return moved == self.closing == self.ledger_closing and self.cache_closing in (
            None,
            self.closing,
        )


@dataclass(frozen=True)
class OutstandingRow:
    expiry_month: str  # YYYY-MM, or "never"
    region: str
    store: str
    points: int
    value_minor: int


@dataclass(frozen=True)
class Cohort:
    month: str
    earned: int
    expired: int
    open: int  # points of the cohort's lots still outstanding

    @property
    def settled(self) -> bool:
        return self.open == 0


@dataclass
class Report:
    statement: Statement
    outstanding: list[OutstandingRow]
    debt: int
    cohorts: list[Cohort]
    breakage_rate: float
    expected_breakage: int
    timezone: str
    generated_at: datetime = field(default_factory=utcnow)
    # breakage and liability for the next 12 months, by earning cohort (issue 15 item 6)
    forecast: domain.Forecast | None = None

    @property
    def outstanding_points(self) -> int:
        return sum(r.points for r in self.outstanding)


def _month_bounds(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    y, m = (int(x) for x in month.split("-"))
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    return start_of_local_day(tz, date(y, m, 1)), start_of_local_day(tz, date(ny, nm, 1))


def _balance_before(session: Session, at: datetime) -> int:
    q = select(
        func.coalesce(func.sum(LedgerEntry.delta_available + LedgerEntry.delta_pending), 0)
    ).where(LedgerEntry.created_at < at)
    return int(session.scalar(q) or 0)


def statement(session: Session, month: str, tz: ZoneInfo, per_100: int) -> Statement:
    start, end = _month_bounds(month, tz)
    moved: dict[str, int] = defaultdict(int)
    q = (
        select(
            LedgerEntry.kind,
            func.sum(LedgerEntry.delta_available + LedgerEntry.delta_pending),
        )
        .where(LedgerEntry.created_at >= start, LedgerEntry.created_at < end)
        .group_by(LedgerEntry.kind)
    )
    for kind, n in session.execute(q):
        col = (
            "earned"
            if kind in EARNED
            else "redeemed"
            if kind in REDEEMED
            else "expired"
            if kind in EXPIRED
            else "adjusted"
        )
        moved[col] += int(n or 0)
    opening = _balance_before(session, start)
    closing = opening + sum(moved.values())
    cache = None
    if start <= utcnow() < end:
        cache = int(
            session.scalar(
                select(func.coalesce(func.sum(PointsAccount.available + PointsAccount.pending), 0))
            )
            or 0
        )
    return Statement(
        month=month,
        opening=opening,
        earned=moved["earned"],
        redeemed=moved["redeemed"],
        expired=moved["expired"],
        adjusted=moved["adjusted"],
        closing=closing,
        ledger_closing=_balance_before(session, end),
        cache_closing=cache,
        value_minor_per_100_points=per_100,
    )


def segments(path: str, codes: dict[str, str]) -> tuple[str, str]:
    """The region and store codes of an org path (``/hq/region/store/`` by unit ids)."""
    parts = [p for p in path.split("/") if p]
    region = "/" + "/".join(parts[:2]) + "/" if len(parts) > 1 else None
    store = "/" + "/".join(parts[:3]) + "/" if len(parts) > 2 else None
    return codes.get(region or "", "-"), codes.get(store or "", "-")


def _codes(session: Session) -> dict[str, str]:
    return {str(p): str(c) for p, c in session.execute(select(OrgUnit.path, OrgUnit.code))}


def outstanding(session: Session, tz: ZoneInfo, per_100: int) -> list[OutstandingRow]:
    sums: dict[tuple[str, str, str], int] = defaultdict(int)
    codes = _codes(session)
    q = (
        select(PointsLot.expires_at, Member.org_path, func.sum(PointsLot.remaining))
        .join(Member, Member.id == PointsLot.member_id)
        .where(PointsLot.status.in_(OPEN), PointsLot.remaining > 0)
        .group_by(PointsLot.expires_at, Member.org_path)
    )
    for expires_at, path, n in session.execute(q):
        # the last valid local day decides the month (a lot expiring at 00:00 on 1 July
        # is part of June's expiries)
        month = (
            "never"
            if expires_at is None
            else (expires_at.astimezone(tz) - _MICRO).strftime("%Y-%m")
        )
        region, store = segments(str(path), codes)
        sums[(month, region, store)] += int(n or 0)
    return [
        OutstandingRow(month, region, store, pts, money(pts, per_100))
        for (month, region, store), pts in sorted(sums.items())
    ]


def cohorts(session: Session, tz: ZoneInfo) -> list[Cohort]:
    earned: dict[str, int] = defaultdict(int)
    still: dict[str, int] = defaultdict(int)
    month_of: dict[int, str] = {}
    for lot_id, earned_at, points, remaining, status in session.execute(
        select(
            PointsLot.id,
            PointsLot.earned_at,
            PointsLot.points,
            PointsLot.remaining,
            PointsLot.status,
        )
    ):
        m = earned_at.astimezone(tz).strftime("%Y-%m")
        month_of[int(lot_id)] = m
        earned[m] += int(points)
        if status in OPEN:
            still[m] += int(remaining)
    expired: dict[str, int] = defaultdict(int)
    q = (
        select(LotAllocation.lot_id, func.sum(LotAllocation.points))
        .join(LedgerEntry, LedgerEntry.id == LotAllocation.entry_id)
        .where(LedgerEntry.kind.in_(EXPIRED))
        .group_by(LotAllocation.lot_id)
    )
    for lot_id, n in session.execute(q):
        expired[month_of[int(lot_id)]] += -int(n or 0)
    return [Cohort(m, earned[m], expired[m], still[m]) for m in sorted(earned)]


def breakage_rate(found: list[Cohort]) -> float:
    """Σ expired ÷ Σ earned over the settled cohorts (no lot still open); 0 without any."""
    settled = [c for c in found if c.settled]
    earned = sum(c.earned for c in settled)
    return (sum(c.expired for c in settled) / earned) if earned else 0.0


def open_groups(session: Session, tz: ZoneInfo) -> list[domain.OpenGroup]:
    """Open points by earning month and expiry month (the last valid local month)."""
    sums: dict[tuple[str, str | None], int] = defaultdict(int)
    q = select(PointsLot.earned_at, PointsLot.expires_at, PointsLot.remaining).where(
        PointsLot.status.in_(OPEN), PointsLot.remaining > 0
    )
    for earned_at, expires_at, remaining in session.execute(q):
        cohort = earned_at.astimezone(tz).strftime("%Y-%m")
        month = (
            None if expires_at is None else (expires_at.astimezone(tz) - _MICRO).strftime("%Y-%m")
        )
        sums[(cohort, month)] += int(remaining)
    return [domain.OpenGroup(c, m, n) for (c, m), n in sorted(sums.items(), key=str)]


def forecast(
    session: Session, tz: ZoneInfo, found: list[Cohort], horizon: int = 12
) -> domain.Forecast:
    """Breakage and liability for the next ``horizon`` months (method: ``liability.domain``)."""
    settled = [c for c in found if c.settled]
    earned = sum(c.earned for c in settled)
    rate = Fraction(sum(c.expired for c in settled), earned) if earned else Fraction(0)
    return domain.forecast(
        [(c.month, c.earned, c.expired, c.open) for c in found],
        open_groups(session, tz),
        rate,
        utcnow().astimezone(tz).strftime("%Y-%m"),
        horizon,
    )


def report(session: Session, actor: Actor, month: str) -> Report:
    """The liability report for ``month`` (YYYY-MM, programme time zone)."""
    require(actor, DASHBOARD_READ)
    _v, programme = programmes.active(session)
    tz = programme.tz
    per_100 = programme.points.value_minor_per_100_points
    rows = outstanding(session, tz, per_100)
    found = cohorts(session, tz)
    rate = breakage_rate(found)
    total = sum(r.points for r in rows)
    debt = int(session.scalar(select(func.coalesce(func.sum(PointsAccount.debt), 0))) or 0)
    return Report(
        statement=statement(session, month, tz, per_100),
        outstanding=rows,
        debt=debt,
        cohorts=found,
        breakage_rate=rate,
        expected_breakage=round(total * rate),
        timezone=programme.timezone,
        forecast=forecast(session, tz, found),
    )


def to_xlsx(r: Report) -> bytes:
    """The report as an Excel workbook: 报表 statement, outstanding, cohorts (zh-CN + en)."""
    from openpyxl import Workbook

    per_100 = r.statement.value_minor_per_100_points
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "statement 月度报表"
    s = r.statement
    ws.append(["month 月份", s.month, "time zone 时区", r.timezone])
    ws.append(["line 项目", "points 积分", "value (minor) 金额(分)"])
    lines: list[tuple[str, int]] = [
        ("opening 期初", s.opening),
        ("earned 发放", s.earned),
        ("redeemed 兑换", s.redeemed),
        ("expired 过期", s.expired),
        ("adjusted 调整", s.adjusted),
        ("closing 期末", s.closing),
    ]
    for label, pts in lines:
        ws.append([label, pts, money(pts, per_100)])
    ws.append(["reconciles with the ledger 与账本一致", "yes" if s.reconciles else "NO"])
    ws.append(["breakage rate 历史过期率", round(r.breakage_rate, 6)])
    ws.append(["expected breakage 预计过期积分", r.expected_breakage])
    ws.append(["debt owed 欠分", r.debt])
    o = wb.create_sheet("outstanding 未兑积分")
    o.append(["expiry month 到期月", "region 区域", "store 门店", "points 积分", "value 金额(分)"])
    for row in r.outstanding:
        o.append([row.expiry_month, row.region, row.store, row.points, row.value_minor])
    c = wb.create_sheet("cohorts 批次")
    c.append(["earned in 发放月", "earned 发放", "expired 过期", "open 未结", "settled 已结清"])
    for co in r.cohorts:
        c.append([co.month, co.earned, co.expired, co.open, "yes" if co.settled else "no"])
    if r.forecast is not None:
        f = wb.create_sheet("forecast 预测")
        f.append(["method 方法", "cohort breakage rate × earned, rest redeemed evenly to expiry"])
        f.append(["breakage rate 历史过期率", round(r.forecast.rate, 6)])
        f.append(
            [
                "month 月份",
                "expected redeemed 预计兑换",
                "expected expiring 预计过期",
                "expected liability 预计负债积分",
                "value 金额(分)",
            ]
        )
        for fm in r.forecast.months:
            f.append(
                [fm.month, fm.redeemed, fm.expiring, fm.liability, money(fm.liability, per_100)]
            )
        f.append([])
        f.append(
            [
                "earned in 发放月",
                "earned 发放",
                "expired 已过期",
                "open 未结",
                "to expire 预计还将过期",
                "breakage share 过期占比",
            ]
        )
        for cf in r.forecast.cohorts:
            f.append(
                [
                    cf.month,
                    cf.earned,
                    cf.expired,
                    cf.open,
                    cf.future_breakage,
                    round(cf.breakage_share, 6),
                ]
            )
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def as_dict(r: Report) -> dict[str, Any]:
    s = r.statement
    return {
        "month": s.month,
        "statement": {
            "opening": s.opening,
            "earned": s.earned,
            "redeemed": s.redeemed,
            "expired": s.expired,
            "adjusted": s.adjusted,
            "closing": s.closing,
            "reconciles": s.reconciles,
        },
        "outstanding_points": r.outstanding_points,
        "outstanding_value_minor": money(r.outstanding_points, s.value_minor_per_100_points),
        "breakage_rate": r.breakage_rate,
        "expected_breakage": r.expected_breakage,
    }
