"""The points ledger: the only source of truth for a member's points.

Every change is an appended :class:`LedgerEntry`; credits create :class:`PointsLot` rows
with their own expiry, debits record the lots they consumed (soonest expiry first) as
:class:`LotAllocation` rows, and the :class:`PointsAccount` cache is updated in the same
transaction. Callers lock the account first with :func:`lock`; all other functions expect
the lock to be held.

Invariants (checked by :func:`verify`):
    account.available = Σ entry.delta_available = Σ open available lots.remaining − debt
    account.pending   = Σ entry.delta_pending   = Σ pending lots.remaining
    account.debt      = Σ entry.delta_debt ≥ 0, and debt > 0 only when no available lot is open
    every lot.remaining ≥ 0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from loyalist.events import service as events
from loyalist.kit.clock import utcnow
from loyalist.kit.db import is_sqlite
from loyalist.ledger.domain import InsufficientLots, LotView, allocate_fefo
from loyalist.ledger.errors import InsufficientPoints
from loyalist.models import LedgerEntry, LotAllocation, PointsAccount, PointsLot

PENDING = "pending"
AVAILABLE = "available"
CLOSED = "closed"
EXPIRED = "expired"
VOID = "void"


@dataclass
class Cause:
    """Why an entry exists: a source document, an actor, a reason, a rule version."""

    source_type: str | None = None
    source_id: str | None = None
    actor: str | None = None
    reason: str | None = None
    programme_version: int | None = None
    details: dict[str, Any] | None = None
    occurred_at: datetime | None = None


@dataclass
class Account:
    """A locked points account plus what events need to know about its member."""

    row: PointsAccount
    org_path: str
    now: datetime
    entries: list[LedgerEntry] = field(default_factory=list)

    @property
    def member_id(self) -> int:
        return self.row.member_id


def open_account(session: Session, member_id: int) -> PointsAccount:
    acct = PointsAccount(
        member_id=member_id, available=0, pending=0, debt=0, lifetime_earned=0, updated_at=utcnow()
    )
    session.add(acct)
    return acct


def lock(session: Session, member_id: int, org_path: str) -> Account:
    """Lock one member's account row for the rest of the transaction.

    PostgreSQL: ``SELECT … FOR UPDATE``. SQLite: the transaction already began with
    ``BEGIN IMMEDIATE``, so no other writer can interleave.
    """
    q = select(PointsAccount).where(PointsAccount.member_id == member_id)
    if not is_sqlite(session):
        q = q.with_for_update()
    row = session.execute(q.execution_options(populate_existing=True)).scalar_one()
    return Account(row=row, org_path=org_path, now=utcnow())


def _entry(
    session: Session,
    acct: Account,
    kind: str,
    cause: Cause,
    *,
    available: int = 0,
    pending: int = 0,
    debt: int = 0,
    dedupe_key: str | None = None,
    corrects: int | None = None,
) -> LedgerEntry:
    e = LedgerEntry(
        member_id=acct.member_id,
        kind=kind,
        delta_available=available,
        delta_pending=pending,
        delta_debt=debt,
        source_type=cause.source_type,
        source_id=cause.source_id,
        actor=cause.actor,
        reason=cause.reason,
        corrects_entry_id=corrects,
        programme_version=cause.programme_version,
        details=cause.details,
        dedupe_key=dedupe_key,
        occurred_at=cause.occurred_at or acct.now,
        created_at=acct.now,
    )
    session.add(e)
    session.flush()
    acct.row.available += available
    acct.row.pending += pending
    acct.row.debt += debt
    acct.row.updated_at = acct.now
    acct.entries.append(e)
    return e


def _event(session: Session, acct: Account, type_: str, payload: dict[str, Any]) -> None:
    body = {"member_id": acct.member_id, **payload, "available": acct.row.available}
    body["pending"] = acct.row.pending
    events.emit(session, type_, body, member_id=acct.member_id, org_path=acct.org_path)


def credit(
    session: Session,
    acct: Account,
    points: int,
    cause: Cause,
    *,
    kind: str,
    earned_at: datetime,
    available_at: datetime,
    expires_at: datetime | None,
    dedupe_key: str | None = None,
    counts_as_earned: bool = True,
) -> tuple[LedgerEntry, PointsLot]:
    """Credit ``points`` as a new lot: pending until ``available_at``, then available."""
    if points <= 0:
        raise ValueError("credit needs positive points")
    is_pending = available_at > acct.now
    e = _entry(
        session,
        acct,
        kind,
        cause,
        available=0 if is_pending else points,
        pending=points if is_pending else 0,
        dedupe_key=dedupe_key,
    )
    lot = PointsLot(
        member_id=acct.member_id,
        entry_id=e.id,
        points=points,
        remaining=points,
        status=PENDING if is_pending else AVAILABLE,
        source_type=cause.source_type,
        source_id=cause.source_id,
        earned_at=earned_at,
        available_at=available_at,
        expires_at=expires_at,
        reminded_days=None,
    )
    session.add(lot)
    session.flush()
    if counts_as_earned:
        acct.row.lifetime_earned += points
    _event(
        session,
        acct,
        "points.earned",
        {
            "entry_id": e.id,
            "points": points,
            "kind": kind,
            "status": lot.status,
            "available_at": available_at.isoformat(),
            "expires_at": expires_at.isoformat() if expires_at else None,
            "source_type": cause.source_type,
            "source_id": cause.source_id,
        },
    )
    if not is_pending:
        settle_debt(session, acct)
    return e, lot


def activate(session: Session, acct: Account, lot: PointsLot) -> LedgerEntry | None:
    """Make a pending lot spendable (once: guarded by the lot's status and a unique key)."""
    if lot.status != PENDING:
        return None
    n = lot.remaining
    lot.status = AVAILABLE if n > 0 else VOID
    if n == 0:
        session.flush()
        return None
    e = _entry(
        session,
        acct,
        "activate",
        Cause(source_type="lot", source_id=str(lot.id), actor="system:jobs"),
        available=n,
        pending=-n,
        dedupe_key=f"activate:lot:{lot.id}",
        corrects=lot.entry_id,
    )
    _event(session, acct, "points.activated", {"entry_id": e.id, "points": n, "lot_id": lot.id})
    settle_debt(session, acct)
    return e


def _open_lots(session: Session, acct: Account) -> list[PointsLot]:
    q = (
        select(PointsLot)
        .where(
            PointsLot.member_id == acct.member_id,
            PointsLot.status == AVAILABLE,
            PointsLot.remaining > 0,
        )
        .order_by(PointsLot.id)
    )
    return list(session.scalars(q))


def _take(
    session: Session, acct: Account, entry: LedgerEntry, lots: Sequence[PointsLot], points: int
) -> list[tuple[int, int]]:
    by_id = {lot.id: lot for lot in lots}
    views = [LotView(id=lot.id, remaining=lot.remaining, expires_at=lot.expires_at) for lot in lots]
    plan = allocate_fefo(views, points)
    for lot_id, taken in plan:
        lot = by_id[lot_id]
        lot.remaining -= taken
        if lot.remaining == 0:
            lot.status = CLOSED
        session.add(LotAllocation(entry_id=entry.id, lot_id=lot_id, points=-taken))
    session.flush()
    return plan


def spendable(session: Session, acct: Account) -> int:
    expire_due(session, acct)
    return acct.row.available


def debit(
    session: Session,
    acct: Account,
    points: int,
    cause: Cause,
    *,
    kind: str,
    dedupe_key: str | None = None,
    event: str = "points.redeemed",
) -> LedgerEntry:
    """Spend available points, soonest-expiring lots first. Pending points are never spent."""
    if points <= 0:
        raise ValueError("debit needs positive points")
    have = spendable(session, acct)
    if have < points:
        raise InsufficientPoints(
            f"{points} points are needed; {max(have, 0)} are available.",
            extra={"available": max(have, 0), "required": points},
        )
    lots = [lot for lot in _open_lots(session, acct) if not _is_expired(lot, acct.now)]
    e = _entry(session, acct, kind, cause, available=-points, dedupe_key=dedupe_key)
    try:
        plan = _take(session, acct, e, lots, points)
    except InsufficientLots as exc:  # cache and lots disagree: never spend what is not there
        raise InsufficientPoints(f"{points} points are needed; lots hold less.") from exc
    e.details = {**(e.details or {}), "lots": [[lot_id, n] for lot_id, n in plan]}
    _event(session, acct, event, {"entry_id": e.id, "points": points, "kind": kind})
    return e


def _is_expired(lot: PointsLot, now: datetime) -> bool:
    return lot.expires_at is not None and lot.expires_at <= now


def restore(
    session: Session,
    acct: Account,
    original: LedgerEntry,
    points: int,
    cause: Cause,
    *,
    kind: str = "reversal",
    dedupe_key: str | None = None,
) -> LedgerEntry:
    """Give back ``points`` of a debit to the very lots it consumed, latest-expiring first.

    Points whose lot has expired meanwhile are restored and expired at once (two entries),
    so the ledger shows both what was given back and why it is gone.
    """
    allocs = list(
        session.scalars(
            select(LotAllocation)
            .where(LotAllocation.entry_id == original.id, LotAllocation.points < 0)
            .order_by(LotAllocation.id)
        )
    )
    already = _restored_so_far(session, original.id)
    taken = {a.lot_id: -a.points for a in allocs}
    for lot_id, n in already.items():
        taken[lot_id] = taken.get(lot_id, 0) - n
    lots = {
        lot.id: lot
        for lot in session.scalars(select(PointsLot).where(PointsLot.id.in_(list(taken))))
    }
    # Restore to the lots that expire last first, so the member keeps the most value.
    order = sorted(
        (lid for lid in taken if taken[lid] > 0),
        key=lambda lid: (lots[lid].expires_at is None, lots[lid].expires_at or acct.now, lid),
        reverse=True,
    )
    left = points
    plan: list[tuple[int, int]] = []
    for lid in order:
        if left == 0:
            break
        n = min(left, taken[lid])
        plan.append((lid, n))
        left -= n
    if left:
        raise ValueError(f"cannot restore {points}: only {points - left} were taken")
    e = _entry(
        session,
        acct,
        kind,
        cause,
        available=points,
        dedupe_key=dedupe_key,
        corrects=original.id,
    )
    expired_now: list[tuple[PointsLot, int]] = []
    for lid, n in plan:
        lot = lots[lid]
        session.add(LotAllocation(entry_id=e.id, lot_id=lid, points=n))
        lot.remaining += n
        if _is_expired(lot, acct.now):
            expired_now.append((lot, n))
        elif lot.status == CLOSED:
            lot.status = AVAILABLE
    e.details = {**(e.details or {}), "lots": [[lid, n] for lid, n in plan]}
    session.flush()
    _event(session, acct, "points.restored", {"entry_id": e.id, "points": points})
    for lot, _n in expired_now:
        _expire_lot(session, acct, lot)
    settle_debt(session, acct)
    return e


def _restored_so_far(session: Session, original_id: int) -> dict[int, int]:
    q = (
        select(LotAllocation.lot_id, func.sum(LotAllocation.points))
        .join(LedgerEntry, LedgerEntry.id == LotAllocation.entry_id)
        .where(LedgerEntry.corrects_entry_id == original_id, LotAllocation.points > 0)
        .group_by(LotAllocation.lot_id)
    )
    return {int(lid): int(n) for lid, n in session.execute(q)}


def clawback(
    session: Session,
    acct: Account,
    points: int,
    cause: Cause,
    *,
    lot: PointsLot | None,
    carry_debt: bool,
    dedupe_key: str,
    other_lots: bool = True,
) -> tuple[LedgerEntry | None, int]:
    """Take back points earned by a source document; returns (entry, points waived).

    Pending points of ``lot`` go first; then the lot's available remainder; then (unless
    ``other_lots`` is false) any other available lot (soonest expiry first). What still cannot
    be taken becomes a debt when ``carry_debt``; otherwise it is waived.
    """
    if points <= 0:
        return None, 0
    expire_due(session, acct)
    from_pending = 0
    if lot is not None and lot.status == PENDING:
        from_pending = min(points, lot.remaining)
    rest = points - from_pending
    avail_lots = [x for x in _open_lots(session, acct) if not _is_expired(x, acct.now)]
    if not other_lots:
        avail_lots = [x for x in avail_lots if lot is not None and x.id == lot.id]
    if lot is not None and lot.status == AVAILABLE:
        # The order's own lot first, then the rest by expiry.
        avail_lots.sort(key=lambda x: x.id != lot.id)
    in_lots = sum(x.remaining for x in avail_lots)
    from_lots = min(rest, in_lots)
    shortfall = rest - from_lots
    to_debt = shortfall if carry_debt else 0
    waived = shortfall - to_debt
    taken_total = from_pending + from_lots + to_debt
    if taken_total == 0:
        return None, waived
    e = _entry(
        session,
        acct,
        "clawback",
        cause,
        available=-(from_lots + to_debt),
        pending=-from_pending,
        debt=to_debt,
        dedupe_key=dedupe_key,
    )
    plan: list[tuple[int, int]] = []
    if from_pending:
        assert lot is not None
        lot.remaining -= from_pending
        if lot.remaining == 0:
            lot.status = VOID
        session.add(LotAllocation(entry_id=e.id, lot_id=lot.id, points=-from_pending))
        plan.append((lot.id, from_pending))
    if from_lots:
        if lot is not None and lot.status == AVAILABLE:
            own = min(from_lots, lot.remaining)
            if own:
                lot.remaining -= own
                if lot.remaining == 0:
                    lot.status = CLOSED
                session.add(LotAllocation(entry_id=e.id, lot_id=lot.id, points=-own))
                plan.append((lot.id, own))
            others = [x for x in avail_lots if x.id != lot.id]
            if from_lots - own:
                plan += _take(session, acct, e, others, from_lots - own)
        else:
            plan += _take(session, acct, e, avail_lots, from_lots)
    e.details = {**(e.details or {}), "lots": [[a, b] for a, b in plan], "debt": to_debt}
    if waived:
        e.details["waived"] = waived
    session.flush()
    _event(
        session,
        acct,
        "points.clawed_back",
        {"entry_id": e.id, "points": taken_total, "debt": to_debt, "waived": waived},
    )
    return e, waived


def settle_debt(session: Session, acct: Account) -> LedgerEntry | None:
    """Pay an outstanding debt from available lots (balance unchanged, lots and debt shrink)."""
    if acct.row.debt <= 0:
        return None
    lots = [x for x in _open_lots(session, acct) if not _is_expired(x, acct.now)]
    n = min(acct.row.debt, sum(x.remaining for x in lots))
    if n == 0:
        return None
    e = _entry(
        session,
        acct,
        "debt_settle",
        Cause(actor="system", reason="debt repaid from new points"),
        debt=-n,
    )
    plan = _take(session, acct, e, lots, n)
    e.details = {"lots": [[a, b] for a, b in plan]}
    return e


def _expire_lot(session: Session, acct: Account, lot: PointsLot) -> LedgerEntry | None:
    n = lot.remaining
    if n <= 0:
        lot.status = EXPIRED
        return None
    e = _entry(
        session,
        acct,
        "expire",
        Cause(
            source_type="lot",
            source_id=str(lot.id),
            actor="system:expiry",
            occurred_at=lot.expires_at,
            details={"lots": [[lot.id, n]], "expires_at": lot.expires_at.isoformat()}
            if lot.expires_at
            else None,
        ),
        available=-n,
    )
    session.add(LotAllocation(entry_id=e.id, lot_id=lot.id, points=-n))
    lot.remaining = 0
    lot.status = EXPIRED
    session.flush()
    _event(session, acct, "points.expired", {"entry_id": e.id, "points": n, "lot_id": lot.id})
    return e


def expire_due(session: Session, acct: Account) -> int:
    """Expire every available lot of this member whose expiry has passed. Returns points."""
    q = select(PointsLot).where(
        PointsLot.member_id == acct.member_id,
        PointsLot.status == AVAILABLE,
        PointsLot.expires_at <= acct.now,
    )
    total = 0
    for lot in session.scalars(q.order_by(PointsLot.expires_at, PointsLot.id)):
        total += lot.remaining
        _expire_lot(session, acct, lot)
    return total


def activate_due(session: Session, acct: Account) -> int:
    q = select(PointsLot).where(
        PointsLot.member_id == acct.member_id,
        PointsLot.status == PENDING,
        PointsLot.available_at <= acct.now,
    )
    total = 0
    for lot in session.scalars(q.order_by(PointsLot.available_at, PointsLot.id)):
        total += lot.remaining
        activate(session, acct, lot)
    return total


def adjust(
    session: Session,
    acct: Account,
    points: int,
    cause: Cause,
    *,
    expires_at: datetime | None,
    dedupe_key: str | None = None,
) -> LedgerEntry:
    """A staff correction: positive credits a new available lot, negative debits."""
    if points > 0:
        e, _lot = credit(
            session,
            acct,
            points,
            cause,
            kind="adjust",
            earned_at=acct.now,
            available_at=acct.now,
            expires_at=expires_at,
            dedupe_key=dedupe_key,
            counts_as_earned=False,
        )
        events.emit(
            session,
            "points.adjusted",
            {"member_id": acct.member_id, "entry_id": e.id, "points": points},
            member_id=acct.member_id,
            org_path=acct.org_path,
        )
        return e
    e = debit(
        session, acct, -points, cause, kind="adjust", dedupe_key=dedupe_key, event="points.adjusted"
    )
    return e


def expiring_within(session: Session, member_id: int, start: datetime, end: datetime) -> int:
    q = select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(
        PointsLot.member_id == member_id,
        PointsLot.status.in_([AVAILABLE, PENDING]),
        PointsLot.expires_at > start,
        PointsLot.expires_at <= end,
    )
    return int(session.scalar(q) or 0)


def expiring_schedule(
    session: Session, member_id: int, start: datetime, end: datetime
) -> list[tuple[datetime, int]]:
    q = (
        select(PointsLot.expires_at, func.sum(PointsLot.remaining))
        .where(
            PointsLot.member_id == member_id,
            PointsLot.status == AVAILABLE,
            PointsLot.remaining > 0,
            PointsLot.expires_at > start,
            PointsLot.expires_at <= end,
        )
        .group_by(PointsLot.expires_at)
        .order_by(PointsLot.expires_at)
    )
    out: list[tuple[datetime, int]] = []
    for at, n in session.execute(q):
        if at is not None:
            out.append((at, int(n)))
    return out


def entries(
    session: Session, member_id: int, *, after: int | None, limit: int
) -> list[LedgerEntry]:
    q = select(LedgerEntry).where(LedgerEntry.member_id == member_id)
    if after is not None:
        q = q.where(LedgerEntry.id < after)
    return list(session.scalars(q.order_by(LedgerEntry.id.desc()).limit(limit)))


def get_account(session: Session, member_id: int) -> PointsAccount:
    acct = session.get(PointsAccount, member_id)
    if acct is None:
        raise LookupError(member_id)
    return acct


@dataclass(frozen=True)
class Disagreement:
    member_id: int
    problem: str


def verify(session: Session) -> tuple[int, list[Disagreement]]:
    """Check every member: cache = Σ entries = Σ open lots − debt; no lot below zero."""
    entry_sums = {
        int(m): (int(a or 0), int(p or 0), int(d or 0))
        for m, a, p, d in session.execute(
            select(
                LedgerEntry.member_id,
                func.sum(LedgerEntry.delta_available),
                func.sum(LedgerEntry.delta_pending),
                func.sum(LedgerEntry.delta_debt),
            ).group_by(LedgerEntry.member_id)
        )
    }
    lot_sums: dict[int, dict[str, int]] = {}
    for m, status, rem in session.execute(
        select(PointsLot.member_id, PointsLot.status, func.sum(PointsLot.remaining)).group_by(
            PointsLot.member_id, PointsLot.status
        )
    ):
        lot_sums.setdefault(int(m), {})[str(status)] = int(rem or 0)
    negative = {
        int(m)
        for (m,) in session.execute(
            select(PointsLot.member_id).where(PointsLot.remaining < 0).distinct()
        )
    }
    # Allocations must explain each lot: points − taken + restored = remaining.
    alloc = {
        int(lot_id): int(n or 0)
        for lot_id, n in session.execute(
            select(LotAllocation.lot_id, func.sum(LotAllocation.points)).group_by(
                LotAllocation.lot_id
            )
        )
    }
    bad_lots: dict[int, int] = {}
    for lot_id, member_id, points, remaining in session.execute(
        select(PointsLot.id, PointsLot.member_id, PointsLot.points, PointsLot.remaining)
    ):
        if int(points) + alloc.get(int(lot_id), 0) != int(remaining):
            bad_lots.setdefault(int(member_id), int(lot_id))
    problems: list[Disagreement] = []
    checked = 0
    for acct in session.scalars(select(PointsAccount).order_by(PointsAccount.member_id)):
        checked += 1
        m = acct.member_id
        ea, ep, ed = entry_sums.get(m, (0, 0, 0))
        lots = lot_sums.get(m, {})
        la, lp = lots.get(AVAILABLE, 0), lots.get(PENDING, 0)
        if (acct.available, acct.pending, acct.debt) != (ea, ep, ed):
            problems.append(
                Disagreement(
                    m,
                    f"cache (available={acct.available}, pending={acct.pending}, "
                    f"debt={acct.debt}) != entries (available={ea}, pending={ep}, debt={ed})",
                )
            )
        if ea != la - ed:
            problems.append(Disagreement(m, f"available {ea} != open lots {la} - debt {ed}"))
        if ep != lp:
            problems.append(Disagreement(m, f"pending {ep} != pending lots {lp}"))
        if ed < 0:
            problems.append(Disagreement(m, f"debt is negative ({ed})"))
        if m in negative:
            problems.append(Disagreement(m, "a lot has negative remaining points"))
        if m in bad_lots:
            problems.append(
                Disagreement(m, f"lot {bad_lots[m]}: allocations do not explain remaining")
            )
    return checked, problems


def stale_pending_members(session: Session, now: datetime, limit: int) -> list[int]:
    q = (
        select(PointsLot.member_id)
        .where(PointsLot.status == PENDING, PointsLot.available_at <= now)
        .distinct()
        .limit(limit)
    )
    return [int(x) for x in session.scalars(q)]


def expired_members(session: Session, now: datetime, limit: int) -> list[int]:
    q = (
        select(PointsLot.member_id)
        .where(PointsLot.status == AVAILABLE, PointsLot.expires_at <= now)
        .distinct()
        .limit(limit)
    )
    return [int(x) for x in session.scalars(q)]


def lots_to_remind(
    session: Session, now: datetime, horizon: datetime, limit: int, after_member: int
) -> list[int]:
    q = (
        select(PointsLot.member_id)
        .where(
            PointsLot.status == AVAILABLE,
            PointsLot.remaining > 0,
            PointsLot.expires_at > now,
            PointsLot.expires_at <= horizon,
            PointsLot.member_id > after_member,
        )
        .distinct()
        .order_by(PointsLot.member_id)
        .limit(limit)
    )
    return [int(x) for x in session.scalars(q)]


def member_lots_expiring(
    session: Session, member_id: int, now: datetime, horizon: datetime
) -> list[PointsLot]:
    q = select(PointsLot).where(
        PointsLot.member_id == member_id,
        PointsLot.status == AVAILABLE,
        PointsLot.remaining > 0,
        PointsLot.expires_at > now,
        PointsLot.expires_at <= horizon,
    )
    return list(session.scalars(q.order_by(PointsLot.expires_at)))


def mark_reminded(session: Session, lot_ids: Sequence[int], days: int) -> None:
    if lot_ids:
        session.execute(
            update(PointsLot).where(PointsLot.id.in_(list(lot_ids))).values(reminded_days=days)
        )


def emit_expiring(
    session: Session,
    acct_member_id: int,
    org_path: str,
    points: int,
    expires_at: datetime,
    days: int,
) -> None:
    events.emit(
        session,
        "points.expiring",
        {
            "member_id": acct_member_id,
            "points": points,
            "expires_at": expires_at.isoformat(),
            "days_before": days,
        },
        member_id=acct_member_id,
        org_path=org_path,
    )
