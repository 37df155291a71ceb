"""Referrals (老带新): codes, attribution, qualification after the return window, rewards
for both sides (and the upline, at most two levels), holds on shared identifiers,
reviews, claw-back and quarterly leaders.

The life of a referral::

    attributed ─(first order; its return window closed; net ≥ minimum)─▶ qualified ─▶ rewarded
      │   ╲ on_hold (an identifier shared with the referrer) ─ review: approve / reject
      └─▶ rejected (order returned, review rejected)      rewarded ─(return)─▶ clawed_back

Attribution happens when a member joins with a code (the ``referral`` consumer reads the
code the member service stored) or claims one afterwards (``claim``). Orders and returns
reach the referral through the same consumer; the verdict is a job at the end of the first
order's return window. Rewards are actions of the registry (``award_points``,
``issue_coupon`` …) run with the cause ``referral:<id>:<role>:<n>``, so each applies once.
The database refuses a self-referral (check constraint) and a second referral, hence a
second reward, of one member (unique ``referred_id``; unique reward per referral and role).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalist.access.permissions import MEMBER_READ, MEMBER_WRITE, POINTS_APPROVE, require
from loyalist.actions import registry as actions
from loyalist.audit import service as audit
from loyalist.config import get_settings
from loyalist.errors import FieldError
from loyalist.events import service as events
from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.clock import as_utc, utcnow
from loyalist.kit.pagination import encode_cursor
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.errors import MemberNotFound
from loyalist.models import (
    Member,
    Order,
    PointsLot,
    Referral,
    ReferralCode,
    ReferralLeader,
    ReferralReward,
    ReferralSignal,
)
from loyalist.order import service as orders
from loyalist.programme import service as programmes
from loyalist.referral import config, domain
from loyalist.referral.errors import (
    AlreadyReferred,
    NotOnHold,
    ReferralClosed,
    ReferralNotFound,
    ReferralsDisabled,
    SelfReferral,
    UnknownReferralCode,
)
from loyalist.referral.schemas import (
    CodeOut,
    LeaderOut,
    ReferralOut,
    ReferralPage,
    RewardOut,
    SignalOut,
    StatsOut,
)

log = logging.getLogger("loyalist.referral")

ATTRIBUTED = "attributed"
ON_HOLD = "on_hold"
QUALIFIED = "qualified"
REWARDED = "rewarded"
REJECTED = "rejected"
CLAWED_BACK = "clawed_back"
OPEN = (ATTRIBUTED, ON_HOLD)
QUALIFY_JOB = "referral.qualify"
LEADERS_JOB = "referral.leaders"
_DEV_KEY = "loyalist-development-only"


# -- codes -----------------------------------------------------------------------------------


def code_of(session: Session, member_id: int) -> str | None:
    row = session.get(ReferralCode, member_id)
    return row.code if row is not None else None


def ensure_code(session: Session, member_id: int) -> str:
    """The member's referral code, created on first use (unique; a clash draws again)."""
    found = code_of(session, member_id)
    if found is not None:
        return found
    for _attempt in range(8):
        code = domain.new_code()
        try:
            with session.begin_nested():
                session.add(ReferralCode(member_id=member_id, code=code, created_at=utcnow()))
                session.flush()
        except IntegrityError:
            # Another transaction gave this member a code meanwhile, or the code is taken.
            session.expire_all()
            found = code_of(session, member_id)
            if found is not None:
                return found
            continue
        return code
    raise RuntimeError("no free referral code after 8 draws")


def member_by_code(session: Session, code: str) -> int | None:
    return session.scalar(
        select(ReferralCode.member_id).where(ReferralCode.code == domain.normalise_code(code))
    )


def code_view(session: Session, actor: Actor, member_id: int, base_url: str) -> CodeOut:
    """The member's code (created on first use), share link, QR and referral counts."""
    require(actor, MEMBER_READ)
    members.get(session, actor, member_id)
    code = ensure_code(session, member_id)
    rules = config.current(session).referral
    referred = _count(session, Referral.referrer_id == member_id)
    qualified = _count(
        session,
        Referral.referrer_id == member_id,
        Referral.status.in_((QUALIFIED, REWARDED)),
    )
    upline = session.scalar(select(Referral.referrer_id).where(Referral.referred_id == member_id))
    link = domain.share_link(rules.share_url, code, base_url)
    png = base64.b64encode(domain.qr_png(link)).decode()
    return CodeOut(
        member_id=member_id,
        code=code,
        link=link,
        qr_png=f"data:image/png;base64,{png}",
        qr_svg=domain.qr_svg(link),
        referred_by=upline,
        referred=referred,
        qualified=qualified,
    )


def _count(session: Session, *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(Referral).where(*where)) or 0)


# -- identifiers (abuse checks) ---------------------------------------------------------------


def _signal_key() -> bytes:
    material = get_settings().secret_key or _DEV_KEY
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"loyalist referral signals v1"
    ).derive(material.encode())


def _signals(session: Session, member_id: int) -> set[tuple[str, str]]:
    rows = session.execute(
        select(ReferralSignal.kind, ReferralSignal.digest).where(
            ReferralSignal.member_id == member_id
        )
    )
    return {(k, d) for k, d in rows}


def _shared(session: Session, r: Referral, watched: Sequence[str]) -> list[str]:
    found = domain.shared_kinds(
        _signals(session, r.referrer_id), _signals(session, r.referred_id), watched
    )
    # Referral farms: the friend shares an identifier with another friend of the same
    # referrer (one phone signing up "friends" over and over).
    mine = _signals(session, r.referred_id)
    if mine:
        siblings = select(Referral.referred_id).where(
            Referral.referrer_id == r.referrer_id, Referral.referred_id != r.referred_id
        )
        rows = session.execute(
            select(ReferralSignal.kind, ReferralSignal.digest).where(
                ReferralSignal.member_id.in_(siblings)
            )
        )
        farm = {f"farm_{k}" for k, d in rows if (k, d) in mine and k in watched}
        found = sorted(set(found) | farm)
    return found


def record_signal(
    session: Session, actor: Actor, member_id: int, kind: str, value: str
) -> SignalOut:
    """Remember an identifier seen with a member (as a keyed digest) and hold every open
    referral of theirs it now links to the other side."""
    require(actor, MEMBER_WRITE)
    m = members.get(session, actor, member_id)
    d = domain.digest(_signal_key(), kind, value)
    exists = session.scalar(
        select(ReferralSignal.id).where(
            ReferralSignal.member_id == m.id,
            ReferralSignal.kind == kind,
            ReferralSignal.digest == d,
        )
    )
    added = False
    if exists is None:
        try:
            with session.begin_nested():
                session.add(
                    ReferralSignal(member_id=m.id, kind=kind, digest=d, created_at=utcnow())
                )
                session.flush()
            added = True
        except IntegrityError:
            pass  # the same identifier recorded concurrently
    rules = config.current(session).referral
    held: list[int] = []
    q = (
        select(Referral)
        .where(
            (Referral.referrer_id == m.id) | (Referral.referred_id == m.id),
            Referral.status.in_(OPEN),
        )
        .order_by(Referral.id)
        .with_for_update()
    )
    for r in session.scalars(q):
        if _hold_if_shared(session, r, rules.hold_on_shared):
            held.append(r.id)
    if added or held:  # the identifier itself stays out of the audit row (personal data)
        audit.record(
            session,
            actor,
            "referral.signal",
            "member",
            m.id,
            org_path=m.org_path,
            after={"kind": kind, "held": held},
        )
    return SignalOut(member_id=m.id, kind=kind, held=held)


def _hold_if_shared(session: Session, r: Referral, watched: Sequence[str]) -> bool:
    if r.status not in OPEN or r.decided_at is not None:
        return False  # a reviewer already approved it: new evidence does not undo that
    shared = _shared(session, r, watched)
    if not shared or set(shared) <= set(r.hold_reasons or []):
        return False
    r.hold_reasons = sorted(set(r.hold_reasons or []) | set(shared))
    first = r.status != ON_HOLD
    r.status = ON_HOLD
    r.updated_at = utcnow()
    session.flush()
    if first:
        _emit(session, "referral.held", r, {"reasons": list(r.hold_reasons)})
    return True


# -- attribution -----------------------------------------------------------------------------


def _emit(session: Session, type_: str, r: Referral, extra: dict[str, Any]) -> None:
    events.emit(
        session,
        type_,
        {"referral_id": r.id, "referrer_id": r.referrer_id, "referred_id": r.referred_id, **extra},
        member_id=r.referred_id,
        org_path=r.org_path,
    )


def attribute(
    session: Session, friend: Member, code: str, *, channel: str, actor: Actor = SYSTEM
) -> Referral:
    """Attribute ``friend`` to the owner of ``code``; the referral, or a refusal."""
    rules = config.current(session).referral
    if not rules.enabled:
        raise ReferralsDisabled("Referrals are switched off in this programme.")
    referrer_id = member_by_code(session, code)
    if referrer_id is None:
        raise UnknownReferralCode(
            "No member has this referral code.",
            [FieldError("code", "unknown referral code", "unknown_referral_code")],
        )
    if referrer_id == friend.id:
        raise SelfReferral(
            "A member cannot use their own referral code.",
            [FieldError("code", "your own code", "self_referral")],
        )
    existing = session.scalar(select(Referral).where(Referral.referred_id == friend.id))
    if existing is not None:
        if existing.referrer_id == referrer_id:
            return existing  # the same attribution again (a retried consumer, a repeat claim)
        raise AlreadyReferred(
            "This member was already referred by someone else.",
            [FieldError("code", "already referred", "already_referred")],
        )
    now = utcnow()
    r = Referral(
        referrer_id=referrer_id,
        referred_id=friend.id,
        code=domain.normalise_code(code),
        channel=channel,
        org_path=friend.org_path,
        status=ATTRIBUTED,
        reason=None,
        hold_reasons=[],
        order_id=None,
        qualify_at=None,
        qualified_at=None,
        rewarded_at=None,
        decided_at=None,
        decided_by=None,
        clawed_back_at=None,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(r)
            session.flush()
    except IntegrityError:
        # A concurrent attribution of the same friend won (unique referred_id).
        session.expire_all()
        won = session.scalar(select(Referral).where(Referral.referred_id == friend.id))
        if won is not None and won.referrer_id == referrer_id:
            return won
        raise AlreadyReferred(
            "This member was already referred by someone else.",
            [FieldError("code", "already referred", "already_referred")],
        ) from None
    _emit(session, "referral.attributed", r, {"channel": channel})
    audit.record(
        session,
        actor,
        "referral.attribute",
        "referral",
        r.id,
        org_path=r.org_path,
        after={"referrer_id": referrer_id, "referred_id": friend.id, "channel": channel},
    )
    _hold_if_shared(session, r, rules.hold_on_shared)
    # The friend may have ordered before the attribution was processed.
    first = _first_order(session, friend.id)
    if first is not None:
        _track_order(session, r, first, rules.return_window_days)
    return r


def on_join(session: Session, member_id: int) -> Referral | None:
    """The ``member.created`` reaction: attribute a member who joined with a code. An
    unknown code or a refusal leaves the member unreferred (the join itself stands)."""
    try:
        friend = members.get(session, SYSTEM, member_id)
    except MemberNotFound:
        return None  # gone since (erased or merged): nothing to attribute
    ensure_code(session, member_id)
    if not friend.referral_code:
        return None
    try:
        with session.begin_nested():
            return attribute(session, friend, friend.referral_code, channel="join")
    except (UnknownReferralCode, SelfReferral, AlreadyReferred, ReferralsDisabled) as exc:
        log.info("member %s joined with a code that attributes nothing: %s", member_id, exc.code)
        return None


def claim(session: Session, actor: Actor, member_id: int, code: str) -> tuple[bool, ReferralOut]:
    """A member enters a friend's code after joining: within the claim days and before
    their first order (a later claim would pick a referrer for an order already made).
    Whether a referral was created, and the referral."""
    require(actor, MEMBER_WRITE)
    friend = members.get(session, actor, member_id)
    rules = config.current(session).referral
    existing = session.scalar(select(Referral).where(Referral.referred_id == friend.id))
    if existing is None or member_by_code(session, code) != existing.referrer_id:
        if utcnow() - as_utc(friend.created_at) > timedelta(days=rules.claim_days):
            raise ReferralClosed(
                f"A referral code can be entered within {rules.claim_days} days of joining.",
                [FieldError("code", "too late", "referral_closed")],
            )
        if existing is None and _first_order(session, friend.id) is not None:
            raise ReferralClosed(
                "A referral code can only be entered before the first order.",
                [FieldError("code", "after the first order", "referral_closed")],
            )
    r = attribute(session, friend, code, channel="claim", actor=actor)
    return existing is None, referral_out(session, r)


# -- orders and returns ---------------------------------------------------------------------


def _first_order(session: Session, member_id: int) -> Order | None:
    rows = orders.list_orders(
        session, SYSTEM, member_id=member_id, store=None, after=None, limit=1_000
    )
    return min(rows, key=lambda o: (as_utc(o.occurred_at), o.id)) if rows else None


def _track_order(session: Session, r: Referral, order: Order, window_days: int) -> None:
    r.order_id = order.id
    r.qualify_at = domain.window_end(as_utc(order.occurred_at), window_days)
    r.updated_at = utcnow()
    session.flush()
    queue.enqueue(
        session,
        QUALIFY_JOB,
        {"referral_id": r.id},
        run_at=r.qualify_at,
        dedupe_key=f"referral:qualify:{r.id}:{order.id}",
    )


def _lock(session: Session, referral_id: int) -> Referral | None:
    return session.scalar(
        select(Referral)
        .where(Referral.id == referral_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def on_order(session: Session, order_id: int, member_id: int | None) -> Referral | None:
    """``order.recorded``: the friend's first order starts the return-window clock (the
    referral it started, or None)."""
    if member_id is None:
        return None
    rid = session.scalar(select(Referral.id).where(Referral.referred_id == member_id))
    if rid is None:
        return None
    r = _lock(session, rid)
    if r is None or r.status not in OPEN or r.order_id is not None:
        return None
    first = _first_order(session, member_id)
    if first is None:
        return None
    _track_order(session, r, first, config.current(session).referral.return_window_days)
    return r


def on_return(session: Session, order_id: int) -> None:
    """``order.returned``: a return of the qualifying order before the reward can prevent it;
    after the reward, the programme's policy (claw back or keep) applies."""
    rid = session.scalar(select(Referral.id).where(Referral.order_id == order_id))
    if rid is None:
        return
    r = _lock(session, rid)
    if r is None:
        return
    rules = config.current(session).referral
    order = orders.get(session, SYSTEM, order_id)
    v = domain.verdict(order.amount_paid_minor, order.refunded_minor, rules.min_order_minor)
    if v.qualified:
        return
    if r.status in OPEN:
        _reject(session, r, v.reason or "order_returned", SYSTEM)
    elif r.status == REWARDED and rules.after_return == "claw_back":
        _claw_back(session, r)


def _reject(
    session: Session, r: Referral, reason: str, actor: Actor, *, audited: bool = True
) -> None:
    r.status = REJECTED
    r.reason = reason
    r.updated_at = utcnow()
    session.flush()
    _emit(session, "referral.rejected", r, {"reason": reason})
    if not audited:
        return  # the caller records its own audit row (a reviewer's decision)
    audit.record(
        session,
        actor,
        "referral.reject",
        "referral",
        r.id,
        org_path=r.org_path,
        after={"status": REJECTED, "reason": reason},
    )


def qualify(session: Session, referral_id: int) -> str | None:
    """The job at the end of the first order's return window: the verdict, then the reward
    (held referrals wait for their review). Returns the new status, or None if nothing was
    left to do."""
    r = _lock(session, referral_id)
    if r is None or r.status not in OPEN or r.order_id is None or r.qualified_at is not None:
        return None
    now = utcnow()
    if r.qualify_at is not None and now < as_utc(r.qualify_at):
        return None  # early (a clock moved back): the job for this order runs again later
    rules = config.current(session).referral
    order = orders.get(session, SYSTEM, r.order_id)
    v = domain.verdict(order.amount_paid_minor, order.refunded_minor, rules.min_order_minor)
    if not v.qualified:
        _reject(session, r, v.reason or "order_returned", SYSTEM)
        return r.status
    r.qualified_at = now
    r.updated_at = now
    if r.status == ON_HOLD:
        session.flush()
        return r.status
    r.status = QUALIFIED
    session.flush()
    _emit(session, "referral.qualified", r, {"order_id": r.order_id})
    _reward(session, r)
    return r.status


def _reward(session: Session, r: Referral) -> None:
    rules = config.current(session).referral
    upline = None
    if rules.levels >= 2 and rules.rewards.upline:
        up = session.scalar(select(Referral).where(Referral.referred_id == r.referrer_id))
        if up is not None and up.status not in (REJECTED, CLAWED_BACK):
            upline = up.referrer_id
    sides: list[tuple[str, int, list[config.ActionRef]]] = [
        ("friend", r.referred_id, list(rules.rewards.friend)),
        ("referrer", r.referrer_id, list(rules.rewards.referrer)),
    ]
    if upline is not None:
        sides.append(("upline", upline, list(rules.rewards.upline)))
    # One account after another in member-id order (the ledger locks each).
    for role, member_id, refs in sorted(sides, key=lambda s: s[1]):
        if not refs:
            continue
        results: list[dict[str, Any]] = []
        points = 0
        for i, ref in enumerate(refs):
            res = actions.run(
                session,
                ref.action,
                ref.params,
                cause=f"referral:{r.id}:{role}:{i}",
                member_id=member_id,
                actor=SYSTEM,
            )
            results.append({"action": ref.action, "receipt_id": res.receipt_id, **res.result})
            if ref.action == "award_points":
                points += int(res.result.get("points", 0))
        session.add(
            ReferralReward(
                referral_id=r.id,
                member_id=member_id,
                role=role,
                points=points,
                results=results,
                clawed_back=0,
                created_at=utcnow(),
            )
        )
    r.status = REWARDED
    r.rewarded_at = utcnow()
    r.updated_at = r.rewarded_at
    session.flush()
    _emit(session, "referral.rewarded", r, {"points": _points_of(session, r.id)})


def _points_of(session: Session, referral_id: int) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(ReferralReward.points), 0)).where(
                ReferralReward.referral_id == referral_id
            )
        )
        or 0
    )


def _claw_back(session: Session, r: Referral) -> None:
    """Take back the points each side was given (their lots first), per the programme's
    negative-balance policy. Coupons already given are not taken back here."""
    _v, programme = programmes.active(session)
    carry = programme.points.negative_balance.value == "carry_debt"
    taken_total = 0
    rewards = session.scalars(
        select(ReferralReward)
        .where(ReferralReward.referral_id == r.id)
        .order_by(ReferralReward.member_id)
    ).all()
    for rw in rewards:
        member = members.get(session, SYSTEM, rw.member_id)
        for i, res in enumerate(rw.results):
            if res.get("action") != "award_points" or not res.get("lot_id"):
                continue
            lot = session.get(PointsLot, int(res["lot_id"]))
            if lot is None:
                continue
            acct = ledger.lock(session, member.id, member.org_path, account_id=lot.account_id)
            entry, waived = ledger.clawback(
                session,
                acct,
                int(res["points"]),
                ledger.Cause(
                    source_type="referral",
                    source_id=str(r.id),
                    actor="system",
                    reason=f"referral {r.id}: the qualifying order was returned",
                ),
                lot=lot,
                carry_debt=carry,
                dedupe_key=f"referral:{r.id}:{rw.role}:{i}:clawback",
            )
            taken = int(res["points"]) - waived if entry is not None else 0
            rw.clawed_back += taken
            taken_total += taken
    r.status = CLAWED_BACK
    r.reason = "order_returned"
    r.clawed_back_at = utcnow()
    r.updated_at = r.clawed_back_at
    session.flush()
    _emit(session, "referral.clawed_back", r, {"points": taken_total})


# -- review ---------------------------------------------------------------------------------


def decide(
    session: Session, actor: Actor, referral_id: int, decision: str, note: str | None
) -> ReferralOut:
    """A reviewer's decision on a held referral (audited): approve lets it go on (and pays
    it at once if its order already qualified); reject ends it."""
    require(actor, POINTS_APPROVE)
    r = _lock(session, referral_id)
    if r is None or not actor.sees(r.org_path):
        raise ReferralNotFound(f"No referral {referral_id}.")
    if r.status != ON_HOLD:
        raise NotOnHold(f"Referral {referral_id} is {r.status}, not on hold.")
    before = {"status": r.status, "hold_reasons": list(r.hold_reasons or [])}
    now = utcnow()
    r.decided_at = now
    r.decided_by = actor.name[:128]
    if decision == "reject":
        _reject(session, r, "review_rejected", actor, audited=False)
    else:
        r.status = ATTRIBUTED
        r.updated_at = now
        session.flush()
        if r.qualified_at is not None:
            r.status = QUALIFIED
            session.flush()
            _emit(session, "referral.qualified", r, {"order_id": r.order_id})
            _reward(session, r)
    audit.record(
        session,
        actor,
        f"referral.{decision}",
        "referral",
        r.id,
        org_path=r.org_path,
        before=before,
        after={"status": r.status, "reason": r.reason, "note": note},
    )
    return referral_out(session, r)


# -- quarterly leaders -----------------------------------------------------------------------


def award_leaders(session: Session, period: str) -> list[LeaderOut]:
    """Referrers with at least ``min_qualified`` referrals qualified in ``period`` (a
    quarter in the programme's zone): recorded once (unique), bonus actions once, and a
    ``referral.leader`` event (badges react to it)."""
    _v, programme = programmes.active(session)
    rules = config.current(session).referral
    start, end = domain.quarter_bounds(period, programme.tz)
    rows = session.execute(
        select(Referral.referrer_id, func.count())
        .where(
            Referral.qualified_at >= start,
            Referral.qualified_at < end,
            Referral.status.in_((QUALIFIED, REWARDED)),
        )
        .group_by(Referral.referrer_id)
        .having(func.count() >= rules.leaders.min_qualified)
        .order_by(Referral.referrer_id)
    ).all()
    out: list[LeaderOut] = []
    for member_id, n in rows:
        exists = session.scalar(
            select(ReferralLeader.id).where(
                ReferralLeader.period == period, ReferralLeader.member_id == member_id
            )
        )
        if exists is None:
            try:
                with session.begin_nested():
                    session.add(
                        ReferralLeader(
                            period=period, member_id=member_id, qualified=n, created_at=utcnow()
                        )
                    )
                    session.flush()
            except IntegrityError:
                continue
            for i, ref in enumerate(rules.leaders.rewards):
                actions.run(
                    session,
                    ref.action,
                    ref.params,
                    cause=f"referral-leader:{period}:{i}",
                    member_id=member_id,
                    actor=SYSTEM,
                )
            m = members.get(session, SYSTEM, member_id)
            events.emit(
                session,
                "referral.leader",
                {"member_id": member_id, "period": period, "qualified": n},
                member_id=member_id,
                org_path=m.org_path,
            )
        out.append(LeaderOut(period=period, member_id=member_id, qualified=n))
    return out


def leaders_due(session: Session, now: datetime) -> list[LeaderOut]:
    """The scheduled run: the quarter that just ended."""
    _v, programme = programmes.active(session)
    return award_leaders(session, domain.previous_quarter(now, programme.tz))


def leaders(session: Session, actor: Actor, period: str) -> list[LeaderOut]:
    require(actor, MEMBER_READ)
    rows = session.scalars(
        select(ReferralLeader)
        .where(ReferralLeader.period == period)
        .order_by(ReferralLeader.qualified.desc(), ReferralLeader.member_id)
    )
    out = []
    for row in rows:
        m = session.get(Member, row.member_id)
        if m is not None and actor.sees(m.org_path):
            out.append(
                LeaderOut(period=row.period, member_id=row.member_id, qualified=row.qualified)
            )
    return out


# -- reads ----------------------------------------------------------------------------------


def get(session: Session, actor: Actor, referral_id: int) -> Referral:
    require(actor, MEMBER_READ)
    r = session.get(Referral, referral_id)
    if r is None or not actor.sees(r.org_path):
        raise ReferralNotFound(f"No referral {referral_id}.")
    return r


def referral_out(session: Session, r: Referral) -> ReferralOut:
    rewards = session.scalars(
        select(ReferralReward).where(ReferralReward.referral_id == r.id).order_by(ReferralReward.id)
    )
    return ReferralOut(
        id=r.id,
        referrer_id=r.referrer_id,
        referred_id=r.referred_id,
        code=r.code,
        channel=r.channel,
        status=r.status,
        reason=r.reason,
        hold_reasons=list(r.hold_reasons or []),
        order_id=r.order_id,
        qualify_at=as_utc(r.qualify_at) if r.qualify_at else None,
        qualified_at=as_utc(r.qualified_at) if r.qualified_at else None,
        rewarded_at=as_utc(r.rewarded_at) if r.rewarded_at else None,
        decided_by=r.decided_by,
        created_at=as_utc(r.created_at),
        rewards=[
            RewardOut(
                member_id=w.member_id, role=w.role, points=w.points, clawed_back=w.clawed_back
            )
            for w in rewards
        ],
    )


def get_view(session: Session, actor: Actor, referral_id: int) -> ReferralOut:
    return referral_out(session, get(session, actor, referral_id))


@dataclass(frozen=True)
class Filter:
    status: str | None = None
    member_id: int | None = None  # as referrer or as referred


def search(
    session: Session, actor: Actor, f: Filter, *, after: int | None, limit: int
) -> list[Referral]:
    require(actor, MEMBER_READ)
    q = select(Referral).order_by(Referral.id).limit(limit)
    if actor.scope_path != "/":
        q = q.where(Referral.org_path.startswith(actor.scope_path))
    if f.status is not None:
        q = q.where(Referral.status == f.status)
    if f.member_id is not None:
        q = q.where((Referral.referrer_id == f.member_id) | (Referral.referred_id == f.member_id))
    if after is not None:
        q = q.where(Referral.id > after)
    return list(session.scalars(q))


def page(
    session: Session, actor: Actor, f: Filter, *, after: int | None, limit: int
) -> ReferralPage:
    rows = search(session, actor, f, after=after, limit=limit)
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return ReferralPage(items=[referral_out(session, r) for r in rows], next_cursor=nxt)


def stats(
    session: Session,
    actor: Actor,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StatsOut:
    """Referral counts in the actor's scope (by the referred member's home), attributed in
    [since, until); conversion = qualified (rewarded included) / attributed."""
    q = select(Referral.status, func.count()).group_by(Referral.status)
    if actor.scope_path != "/":
        q = q.where(Referral.org_path.startswith(actor.scope_path))
    if since is not None:
        q = q.where(Referral.created_at >= since)
    if until is not None:
        q = q.where(Referral.created_at < until)
    by = {s: int(n) for s, n in session.execute(q)}
    total = sum(by.values())
    qualified = by.get(QUALIFIED, 0) + by.get(REWARDED, 0)
    return StatsOut(
        attributed=total,
        on_hold=by.get(ON_HOLD, 0),
        qualified=qualified,
        rejected=by.get(REJECTED, 0),
        clawed_back=by.get(CLAWED_BACK, 0),
        conversion=round(qualified / total, 4) if total else 0.0,
    )


def stats_view(session: Session, actor: Actor) -> StatsOut:
    require(actor, MEMBER_READ)
    return stats(session, actor)
