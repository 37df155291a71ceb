"""Fraud controls (风控): the checks on the order and redemption paths, the review queue,
frozen members, and the backtest of a rule over history.

On the hot path a check costs, when a fraud document has rules: one read of the document
(once per transaction), one upsert per counter key the rules read (``fraud_counter``,
``INSERT … ON CONFLICT DO UPDATE … RETURNING``), one insert for distinct members per
device when a rule reads it, and one ``fraud_check`` row (the history a backtest replays and
the shadow log). Without rules it costs the document read only.

A block raises :class:`FraudBlocked` (409, with the rule and reason): the transaction rolls
back, so a refused request is neither counted nor logged (counters count accepted traffic,
and the backtest replays exactly that). A hold credits the order's points as a pending lot
that only a reviewer's decision activates (approve) or reverses (reject).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, event, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, SessionTransaction

from loyalist.access.permissions import POINTS_APPROVE, require
from loyalist.audit import service as audit
from loyalist.documents import service as document_service
from loyalist.documents.errors import NoVersion
from loyalist.errors import FieldError, ValidationFailed
from loyalist.events import service as events
from loyalist.fraud import config, domain
from loyalist.fraud.errors import AlreadyDecided, FraudBlocked, MemberFrozen, ReviewNotFound
from loyalist.fraud.schemas import BacktestOut, FreezeOut, ReviewList, ReviewOut
from loyalist.kit import crypto
from loyalist.kit.actor import Actor
from loyalist.kit.client import client_ip
from loyalist.kit.clock import utcnow
from loyalist.kit.db import is_sqlite
from loyalist.kit.localtime import local_day
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.errors import MemberNotFound
from loyalist.models import (
    FraudCheck,
    FraudCounter,
    FraudDeviceMember,
    FraudReview,
    MemberFreeze,
    Order,
    PointsLot,
)
from loyalist.programme import service as programmes

log = logging.getLogger(__name__)

# A held lot is pending "until further notice": the activation job never reaches it; only
# a reviewer's decision activates (approve) or reverses (reject) it.
HELD_UNTIL = datetime(9999, 1, 1, tzinfo=UTC)
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


@event.listens_for(Session, "after_transaction_end")
def _forget_rules(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop("fraud.active", None)


def digest(kind: str, value: str | None) -> str | None:
    """A keyed digest of a device id or an address (never stored or logged in clear)."""
    if value is None or not value.strip():
        return None
    return crypto.blind(f"fraud.{kind}", value.strip())


@dataclass(frozen=True, slots=True)
class Checked:
    row: FraudCheck
    verdict: domain.Verdict

    @property
    def held(self) -> bool:
        return self.verdict.outcome == domain.HOLD


def _tz(session: Session) -> ZoneInfo:
    _v, programme = programmes.active(session)
    return ZoneInfo(programme.timezone)


def _bump(
    session: Session, key: domain.CounterKey, subject: str, at: datetime, points: int, tz: ZoneInfo
) -> tuple[int, int]:
    values = {
        "scope": key.scope,
        "subject": subject,
        "kind": key.kind,
        "window": key.window,
        "bucket": domain.bucket(key.window, at, tz),
        "count": 1,
        "points": points,
    }
    ins = (sqlite_insert if is_sqlite(session) else pg_insert)(FraudCounter).values(values)
    stmt = ins.on_conflict_do_update(
        index_elements=["scope", "subject", "kind", "window", "bucket"],
        set_={"count": FraudCounter.count + 1, "points": FraudCounter.points + points},
    ).returning(FraudCounter.count, FraudCounter.points)
    row = session.execute(stmt).one()
    return int(row[0]), int(row[1])


def _read(
    session: Session, key: domain.CounterKey, subject: str, at: datetime, tz: ZoneInfo
) -> tuple[int, int]:
    row = session.execute(
        select(FraudCounter.count, FraudCounter.points).where(
            FraudCounter.scope == key.scope,
            FraudCounter.subject == subject,
            FraudCounter.kind == key.kind,
            FraudCounter.window == key.window,
            FraudCounter.bucket == domain.bucket(key.window, at, tz),
        )
    ).one_or_none()
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)


def _device_members(
    session: Session, device: str, member_id: int, at: datetime, tz: ZoneInfo
) -> int:
    day = local_day(tz, at)
    ins = (sqlite_insert if is_sqlite(session) else pg_insert)(FraudDeviceMember).values(
        device=device, day=day, member_id=member_id
    )
    session.execute(ins.on_conflict_do_nothing())
    return int(
        session.scalar(
            select(func.count()).where(
                FraudDeviceMember.device == device, FraudDeviceMember.day == day
            )
        )
        or 0
    )


def check(
    session: Session,
    *,
    kind: str,
    member_id: int,
    device_id: str | None,
    store_id: int | None,
    points: int,
    amount_minor: int = 0,
) -> Checked | None:
    """Count the request and apply the rules; ``None`` when no rule is published.

    Raises :class:`FraudBlocked` when a live rule blocks it (nothing of it is kept)."""
    active = config.active(session)
    if not active.rules:
        return None
    tz = _tz(session)
    req = domain.Request(
        kind=kind,
        member_id=member_id,
        device=digest("device", device_id),
        ip=digest("ip", client_ip.get()),
        store_id=store_id,
        points=points,
        amount_minor=amount_minor,
        at=utcnow(),
    )
    ctx = req.facts()
    # A fixed order of keys: concurrent requests take the counter rows' locks in one order.
    for key in active.bump[kind]:
        subject = req.subject(key.scope)
        if subject is not None:
            n, p = _bump(session, key, subject, req.at, points, tz)
            ctx[f"{key.scope}.{key.kind}.{key.window}"] = n
            ctx[f"{key.scope}.{key.kind}_points.{key.window}"] = p
    for key in active.read[kind]:
        subject = req.subject(key.scope)
        if subject is not None:
            n, p = _read(session, key, subject, req.at, tz)
            ctx[f"{key.scope}.{key.kind}.{key.window}"] = n
            ctx[f"{key.scope}.{key.kind}_points.{key.window}"] = p
    if active.device_members and req.device is not None:
        ctx[domain.DEVICE_MEMBERS] = _device_members(session, req.device, member_id, req.at, tz)
    verdict = domain.decide(active.rules, kind, ctx)
    for hit in verdict.shadow:
        log.info(
            "fraud rule %s (shadow) would %s a %s of member %s",
            hit.rule,
            hit.outcome,
            kind,
            member_id,
        )
    if verdict.outcome == domain.BLOCK:
        log.warning("fraud rule %s blocked a %s of member %s", verdict.rule, kind, member_id)
        raise FraudBlocked(
            f"Refused by fraud rule {verdict.rule}: {verdict.reason}",
            extra={"rule": verdict.rule, "reason": verdict.reason},
        )
    row = FraudCheck(
        kind=kind,
        member_id=member_id,
        device=req.device,
        ip=req.ip,
        store_id=store_id,
        points=points,
        amount_minor=amount_minor,
        source_id=None,
        outcome=verdict.outcome,
        rule=verdict.rule,
        reason=verdict.reason,
        shadow=[{"rule": h.rule, "outcome": h.outcome} for h in verdict.shadow],
        doc_version=active.version,
        checked_at=req.at,
    )
    return Checked(row, verdict)  # the row is written by settle, with its source


def settle(
    session: Session,
    checked: Checked | None,
    *,
    source_id: int,
    member_id: int,
    org_path: str,
    lot: PointsLot | None,
) -> FraudReview | None:
    """After the order or redemption is written: log the check with it (one insert) and,
    for a hold with points, open the review item (the points wait in ``lot``, pending until
    decided)."""
    if checked is None:
        return None
    checked.row.source_id = source_id
    session.add(checked.row)
    if not checked.held or lot is None:
        return None
    session.flush()
    review = FraudReview(
        check_id=checked.row.id,
        member_id=member_id,
        account_id=lot.account_id,
        order_id=source_id,
        lot_id=lot.id,
        points=lot.points,
        rule=checked.verdict.rule or "",
        reason=checked.verdict.reason or "",
        org_path=org_path,
        status=PENDING,
        decided_by=None,
        decided_at=None,
        note=None,
        created_at=checked.row.checked_at,
    )
    session.add(review)
    session.flush()
    events.emit(
        session,
        "fraud.held",
        {
            "review_id": review.id,
            "member_id": member_id,
            "order_id": source_id,
            "points": lot.points,
            "rule": review.rule,
            "reason": review.reason,
        },
        member_id=member_id,
        org_path=org_path,
    )
    return review


def available_at(checked: Checked | None, default: datetime) -> datetime:
    """When an order's points become spendable: never by themselves when held."""
    return HELD_UNTIL if checked is not None and checked.held else default


# ── frozen members ──────────────────────────────────────────────────────────────────────
def ensure_not_frozen(session: Session, member_id: int) -> None:
    row = session.get(MemberFreeze, member_id)
    raise_if_frozen(member_id, row.reason if row is not None else None)


def raise_if_frozen(member_id: int, reason: str | None) -> None:
    """:func:`ensure_not_frozen` of a freeze's reason read by the caller (None: not frozen),
    with :func:`freeze_reason_column`."""
    if reason is not None:
        raise MemberFrozen(
            f"Member {member_id} is frozen: {reason}",
            extra={"member_id": member_id, "reason": reason},
        )


def freeze_reason_column(member_id: Any) -> Any:
    """The member's freeze reason (NULL: not frozen) as a scalar subquery of ``member_id``
    (a column or a bound parameter), for a caller's own statement read under the member's
    account lock, as :func:`ensure_not_frozen` reads it (speed, issue 11: the redemption)."""
    return select(MemberFreeze.reason).where(MemberFreeze.member_id == member_id).scalar_subquery()


def frozen(session: Session, actor: Actor, member_id: int) -> MemberFreeze | None:
    members.get(session, actor, member_id)
    return session.get(MemberFreeze, member_id)


def freeze(session: Session, actor: Actor, member_id: int, reason: str) -> MemberFreeze:
    """Freeze a member (idempotent: a frozen member stays frozen with the first reason)."""
    require(actor, POINTS_APPROVE)
    m = members.get(session, actor, member_id)
    row = session.get(MemberFreeze, member_id)
    if row is not None:
        return row
    row = MemberFreeze(member_id=member_id, reason=reason, frozen_by=actor.name, frozen_at=utcnow())
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "member.freeze",
        "member",
        member_id,
        org_path=m.org_path,
        after={"frozen": True, "reason": reason},
    )
    events.emit(
        session,
        "member.frozen",
        {"member_id": member_id, "reason": reason, "by": actor.name},
        member_id=member_id,
        org_path=m.org_path,
    )
    return row


def unfreeze(session: Session, actor: Actor, member_id: int) -> None:
    """Lift a freeze (idempotent)."""
    require(actor, POINTS_APPROVE)
    m = members.get(session, actor, member_id)
    row = session.get(MemberFreeze, member_id)
    if row is None:
        return
    before = {"frozen": True, "reason": row.reason}
    session.delete(row)
    session.flush()
    audit.record(
        session,
        actor,
        "member.unfreeze",
        "member",
        member_id,
        org_path=m.org_path,
        before=before,
        after={"frozen": False},
    )
    events.emit(
        session,
        "member.unfrozen",
        {"member_id": member_id, "by": actor.name},
        member_id=member_id,
        org_path=m.org_path,
    )


def frozen_members(session: Session, actor: Actor, limit: int = 200) -> list[MemberFreeze]:
    require(actor, POINTS_APPROVE)
    rows = session.scalars(select(MemberFreeze).order_by(MemberFreeze.frozen_at.desc()))
    out = []
    for r in rows:
        try:
            members.get(session, actor, r.member_id)
        except MemberNotFound:  # out of the actor's scope: not listed
            continue
        out.append(r)
        if len(out) >= limit:
            break
    return out


# ── the review queue ────────────────────────────────────────────────────────────────────
def reviews(
    session: Session, actor: Actor, status: str = PENDING, limit: int = 100
) -> list[FraudReview]:
    require(actor, POINTS_APPROVE)
    if status not in (PENDING, APPROVED, REJECTED):
        raise ValidationFailed(
            "Unknown status.", [FieldError("status", "pending, approved or rejected")]
        )
    q = (
        select(FraudReview)
        .where(FraudReview.status == status, FraudReview.org_path.startswith(actor.scope_path))
        .order_by(FraudReview.id)
        .limit(limit)
    )
    return list(session.scalars(q))


def get_review(session: Session, actor: Actor, review_id: int) -> FraudReview:
    r = session.get(FraudReview, review_id)
    if r is None or not actor.sees(r.org_path):
        raise ReviewNotFound(f"No fraud review item {review_id}.")
    return r


def decide(
    session: Session, actor: Actor, review_id: int, decision: str, note: str | None = None
) -> FraudReview:
    """Approve (the held points become available) or reject (they are reversed); audited.
    The same decision again answers the item unchanged; the other one is a 409."""
    require(actor, POINTS_APPROVE)
    if decision not in ("approve", "reject"):
        raise ValidationFailed("Unknown decision.", [FieldError("decision", "approve, reject")])
    r = get_review(session, actor, review_id)
    acct = ledger.lock(session, r.member_id, r.org_path, account_id=r.account_id)
    session.refresh(r)
    wanted = APPROVED if decision == "approve" else REJECTED
    if r.status == wanted:
        return r
    if r.status != PENDING:
        raise AlreadyDecided(
            f"Review item {review_id} was already {r.status}.", extra={"decision": r.status}
        )
    lot = session.get(PointsLot, r.lot_id)
    if lot is None:  # pragma: no cover — lots are never deleted
        raise ReviewNotFound(f"The held lot of review item {review_id} is gone.")
    if decision == "approve":
        ledger.activate(session, acct, lot)
    else:
        taken = lot.remaining if lot.status == "pending" else 0
        if taken:
            ledger.clawback(
                session,
                acct,
                taken,
                ledger.Cause(
                    source_type="fraud_review",
                    source_id=str(r.id),
                    actor=actor.name,
                    reason=f"held points rejected by review ({r.rule})",
                ),
                lot=lot,
                carry_debt=False,
                dedupe_key=f"fraud:review:{r.id}:reject",
                other_lots=False,
            )
            order = session.get(Order, r.order_id)
            if order is not None:  # a later return does not take these points again
                order.points_clawed += taken
    before = {"status": r.status}
    r.status = wanted
    r.decided_by = actor.name
    r.decided_at = utcnow()
    r.note = note
    session.flush()
    audit.record(
        session,
        actor,
        f"fraud.review.{decision}",
        "fraud_review",
        r.id,
        org_path=r.org_path,
        before=before,
        after={"status": r.status, "points": r.points, "note": note},
    )
    events.emit(
        session,
        "fraud.reviewed",
        {
            "review_id": r.id,
            "member_id": r.member_id,
            "order_id": r.order_id,
            "points": r.points,
            "decision": wanted,
            "by": actor.name,
        },
        member_id=r.member_id,
        org_path=r.org_path,
    )
    return r


# ── backtest ────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True, slots=True)
class Backtest:
    result: domain.BacktestResult
    since: datetime
    until: datetime
    shadow_hits: int  # what shadow mode logged for the rule over the same history
    live_holds: int  # requests the rule held live over the same history
    mode: str | None  # the rule's mode in the current document (None: not in it)


def _history(
    session: Session, since: datetime, until: datetime
) -> Iterator[tuple[FraudCheck, domain.Request]]:
    q = (
        select(FraudCheck)
        .where(FraudCheck.checked_at >= since, FraudCheck.checked_at <= until)
        .order_by(FraudCheck.checked_at, FraudCheck.id)
        .execution_options(yield_per=2000)
    )
    for row in session.scalars(q):
        yield (
            row,
            domain.Request(
                kind=row.kind,
                member_id=row.member_id or 0,
                device=row.device,
                ip=row.ip,
                store_id=row.store_id,
                points=row.points,
                amount_minor=row.amount_minor,
                at=row.checked_at,
            ),
        )


def backtest(
    session: Session,
    actor: Actor,
    rule: str | config.RuleDoc,
    *,
    days: int = 90,
    until: datetime | None = None,
) -> Backtest:
    """Replay the last ``days`` of checked traffic through one rule (by code from the
    current document, or given): how many requests it would hold or block, beside what
    shadow mode logged for it on the same traffic."""
    require(actor, POINTS_APPROVE)
    if not 1 <= days <= 90:
        raise ValidationFailed("days must be 1..90.", [FieldError("days", "1..90")])
    if isinstance(rule, str):
        current = _current_doc(session)
        found = next((r for r in current.rules if r.code == rule), None)
        if found is None:
            raise ValidationFailed(
                f"No rule {rule!r} in the fraud document.",
                [FieldError("rule", "a rule code of the current fraud document", "unknown")],
            )
        rule_doc = found
    else:
        rule_doc = rule
    parsed = config.rules_of(config.FraudDocument(rules=[rule_doc]))
    if not parsed:
        raise ValidationFailed("The rule is not valid.", [FieldError("rule", "invalid")])
    end = until or utcnow()
    start = end - timedelta(days=days)
    tz = _tz(session)
    shadow_hits = live_holds = 0
    rows: list[tuple[int, domain.Request]] = []
    for row, req in _history(session, start, end):
        rows.append((row.id, req))
        if any(h.get("rule") == rule_doc.code for h in row.shadow or []):
            shadow_hits += 1
        if row.rule == rule_doc.code:
            live_holds += 1
    result = domain.backtest(parsed[0], rows, tz)
    current_mode = next(
        (r.mode for r in _current_doc(session).rules if r.code == rule_doc.code), None
    )
    return Backtest(result, start, end, shadow_hits, live_holds, current_mode)


def _current_doc(session: Session) -> config.FraudDocument:
    try:
        v = document_service.get(session, config.KIND)
    except NoVersion:
        return config.FraudDocument()
    return config.FraudDocument.model_validate(v.document)


def current_document(session: Session) -> config.FraudDocument:
    return _current_doc(session)


def prune(session: Session, now: datetime) -> int:
    """Counters and device sightings older than two days are no longer read."""
    cut = now - timedelta(days=2)
    n = session.execute(delete(FraudCounter).where(FraudCounter.bucket < cut)).rowcount  # type: ignore[attr-defined]
    session.execute(delete(FraudDeviceMember).where(FraudDeviceMember.day < cut.date()))
    return int(n or 0)


def stats(session: Session, actor: Actor) -> dict[str, Any]:
    require(actor, POINTS_APPROVE)
    rows = session.execute(
        select(FraudReview.status, func.count())
        .where(FraudReview.org_path.startswith(actor.scope_path))
        .group_by(FraudReview.status)
    ).all()
    return {str(s): int(n) for s, n in rows}


# ── answers ─────────────────────────────────────────────────────────────────────────────
def review_out(r: FraudReview) -> ReviewOut:
    return ReviewOut(
        id=r.id,
        member_id=r.member_id,
        order_id=r.order_id,
        points=r.points,
        rule=r.rule,
        reason=r.reason,
        status=r.status,
        decided_by=r.decided_by,
        decided_at=r.decided_at,
        note=r.note,
        created_at=r.created_at,
    )


def freeze_out(member_id: int, row: MemberFreeze | None) -> FreezeOut:
    if row is None:
        return FreezeOut(member_id=member_id, frozen=False)
    return FreezeOut(
        member_id=member_id,
        frozen=True,
        reason=row.reason,
        frozen_by=row.frozen_by,
        frozen_at=row.frozen_at,
    )


def backtest_out(b: Backtest) -> BacktestOut:
    return BacktestOut(
        rule=b.result.rule,
        mode=b.mode,
        outcome=b.result.outcome,
        since=b.since,
        until=b.until,
        checked=b.result.checked,
        hits=b.result.hits,
        members=b.result.members,
        shadow_hits=b.shadow_hits,
        live_holds=b.live_holds,
        sample_check_ids=list(b.result.sample),
    )


def reviews_view(session: Session, actor: Actor, status: str) -> ReviewList:
    return ReviewList(items=[review_out(r) for r in reviews(session, actor, status)])


def decide_view(
    session: Session, actor: Actor, review_id: int, decision: str, note: str | None
) -> ReviewOut:
    return review_out(decide(session, actor, review_id, decision, note))


def freeze_view(session: Session, actor: Actor, member_id: int, reason: str) -> FreezeOut:
    return freeze_out(member_id, freeze(session, actor, member_id, reason))


def unfreeze_view(session: Session, actor: Actor, member_id: int) -> FreezeOut:
    unfreeze(session, actor, member_id)
    return freeze_out(member_id, None)


def frozen_view(session: Session, actor: Actor, member_id: int) -> FreezeOut:
    require(actor, POINTS_APPROVE)
    return freeze_out(member_id, frozen(session, actor, member_id))


def backtest_view(session: Session, actor: Actor, rule: str, days: int) -> BacktestOut:
    return backtest_out(backtest(session, actor, rule, days=days))


def rules_published(session: Session) -> bool:
    """Whether any fraud rule is published (else :func:`check` answers ``None``)."""
    return bool(config.active(session).rules)
