"""Paid membership (付费会员): buy, renew, refund and expire passes; who holds one when.

Rules (docs/passes.md):
- A purchase is one ``member_pass`` row (a term), once per purchase key (an order's line, an
  order given to the API, or the API's Idempotency-Key).
- A term covers whole local days of the programme's zone and ends at the local midnight
  after its period; a purchase while a term runs is a renewal starting at its end.
- Benefits apply while ``starts_at <= t < ends_at`` and the term is not refunded: the points
  multiplier in earning (adds to the tier's), a monthly coupon (one per month held, issue
  key ``pass:<id>:m<n>``), free shipping (a flag for the shop) and exclusive rewards.
- A refund is accepted through the local day ``purchase day + refund_days``; it ends the
  term at once and voids the coupons it gave that were not used. Points the multiplier
  already earned on orders stay (a used benefit, like a used coupon).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from loyalist.access.permissions import MEMBER_READ, ORDER_WRITE, require
from loyalist.audit import service as audit
from loyalist.coupon import service as coupons
from loyalist.errors import FieldError
from loyalist.events import service as events
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.localtime import local_day, start_of_local_day
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.models import Member, MemberPass, Order
from loyalist.passes import domain
from loyalist.passes.errors import PassInvalid, PassNotFound, PassNotOffered, RefundWindowClosed
from loyalist.passes.schemas import MemberPasses, PassBuy, PassOut
from loyalist.programme import service as programmes
from loyalist.programme.schemas import PassOffer, Programme

ACTIVE, REFUNDED, EXPIRED = "active", "refunded", "expired"


# ── who holds what ──────────────────────────────────────────────────────────────────────


def terms_at(session: Session, member_id: int, at: datetime) -> list[MemberPass]:
    """The member's terms in force at ``at`` (not refunded; expired ones count for their
    own days, e.g. a back-dated order)."""
    return list(session.scalars(_TERMS_AT, {"member_id": member_id, "at": at}))


# speed (issue 11): read on every order of a programme that sells passes; built once per
# process with bound parameters (SQLAlchemy reuses its cache key).
def _in_force(member_id: Any, at: Any) -> tuple[Any, ...]:
    """The conditions of a member's terms in force at ``at`` (not refunded; expired ones
    count for their own days), of columns or bound parameters."""
    return (
        MemberPass.member_id == member_id,
        MemberPass.status != REFUNDED,
        MemberPass.starts_at <= at,
        MemberPass.ends_at > at,
    )


_TERMS_AT = select(MemberPass).where(*_in_force(bindparam("member_id"), bindparam("at")))


def pass_for_earning(
    session: Session,
    programme: Programme,
    member_id: int,
    at: datetime,
    *,
    held: Sequence[str] | None = None,
) -> str | None:
    """The pass whose multiplier an order at ``at`` earns with: the highest of those held
    that the programme in force still sells (None: no pass).

    ``held``: the codes of the member's terms in force at ``at``, when a caller folded
    :func:`held_codes_at` into a statement of its own (speed, issue 11: the order path's
    locking read); the terms are then not read again."""
    codes = [t.pass_code for t in terms_at(session, member_id, at)] if held is None else held
    best: tuple[Any, str] | None = None
    for code in codes:
        offer = programme.pass_offer(code)
        if offer is not None and (best is None or offer.benefits.points_multiplier > best[0]):
            best = (offer.benefits.points_multiplier, offer.code)
    return best[1] if best else None


#: What :func:`held_codes_at` joins the codes with (a pass code never holds a space).
HELD_SEPARATOR = " "


def held_codes_at(member_id: Any, at: Any) -> Any:
    """The codes of the terms :func:`terms_at` finds, as a scalar subquery of ``member_id``
    and ``at`` (columns or bound parameters) for a caller's own statement: joined by
    :data:`HELD_SEPARATOR`, NULL when none; :func:`split_held` reads it."""
    return (
        select(func.aggregate_strings(MemberPass.pass_code, HELD_SEPARATOR))
        .where(*_in_force(member_id, at))
        .scalar_subquery()
    )


def split_held(joined: str | None) -> list[str]:
    """The codes a :func:`held_codes_at` column answered."""
    return joined.split(HELD_SEPARATOR) if joined else []


def exclusive_holder_needed(programme: Programme, reward_code: str) -> list[str]:
    """The passes whose holders alone may redeem ``reward_code`` (empty: anyone)."""
    return [p.code for p in programme.passes if reward_code in p.benefits.exclusive_rewards]


def holds_any(session: Session, member_id: int, codes: list[str], at: datetime) -> bool:
    return any(t.pass_code in codes for t in terms_at(session, member_id, at))


# ── buying ──────────────────────────────────────────────────────────────────────────────


def _offer(programme: Programme, code: str) -> PassOffer:
    offer = programme.pass_offer(code)
    if offer is None:
        raise PassNotOffered(
            f"The programme sells no pass {code!r}.",
            [FieldError("pass", "not a pass of the programme", "pass_not_offered")],
        )
    return offer


def _latest_end(session: Session, member_id: int, code: str, now: datetime) -> datetime | None:
    """The end of the member's running (or already bought, future) terms of ``code``."""
    return session.scalar(
        select(MemberPass.ends_at)
        .where(
            MemberPass.member_id == member_id,
            MemberPass.pass_code == code,
            MemberPass.status == ACTIVE,
            MemberPass.ends_at > now,
        )
        .order_by(MemberPass.ends_at.desc())
        .limit(1)
    )


def buy(
    session: Session,
    actor: Actor,
    member: Member,
    code: str,
    *,
    purchase_key: str,
    price_minor: int | None = None,
    order_id: int | None = None,
) -> tuple[bool, MemberPass]:
    """Sell one term of pass ``code`` to ``member`` once per ``purchase_key``; the caller
    holds the member's account lock (purchases of one member are serialised)."""
    require(actor, ORDER_WRITE)
    found = session.scalar(select(MemberPass).where(MemberPass.purchase_key == purchase_key))
    if found is not None:
        return False, found
    version, programme = programmes.active(session)
    offer = _offer(programme, code)
    tz = programme.tz
    now = utcnow()
    running_end = _latest_end(session, member.id, offer.code, now)
    renewal = running_end is not None
    first_day = local_day(tz, running_end if running_end is not None else now)
    t = domain.term(first_day, offer.period.years, offer.period.months)
    starts_at = running_end if running_end is not None else now
    refund_end = domain.refund_last_day(local_day(tz, now), offer.benefits.refund_days)
    row = MemberPass(
        member_id=member.id,
        org_path=member.org_path,
        pass_code=offer.code,
        purchase_key=purchase_key,
        order_id=order_id,
        price_minor=offer.price_minor if price_minor is None else price_minor,
        currency=programme.currency,
        programme_version=version,
        renewal=renewal,
        status=ACTIVE,
        starts_on=t.starts_on,
        ends_on=t.ends_on,
        starts_at=starts_at,
        ends_at=start_of_local_day(tz, t.end_day),
        purchased_at=now,
        refundable_until=start_of_local_day(tz, refund_end + timedelta(days=1)),
        refunded_at=None,
        expiring_sent_at=None,
        expired_at=None,
    )
    session.add(row)
    session.flush()
    events.emit(
        session,
        "pass.renewed" if renewal else "pass.purchased",
        {
            "member_id": member.id,
            "pass_id": row.id,
            "pass": row.pass_code,
            "starts_on": row.starts_on.isoformat(),
            "ends_on": row.ends_on.isoformat(),
            "ends_at": row.ends_at.isoformat(),
            "price_minor": row.price_minor,
            "order_id": order_id,
        },
        member_id=member.id,
        org_path=member.org_path,
    )
    audit.record(
        session,
        actor,
        "pass.renew" if renewal else "pass.buy",
        "member_pass",
        row.id,
        org_path=member.org_path,
        after={
            "member_id": member.id,
            "pass": row.pass_code,
            "starts_on": row.starts_on.isoformat(),
            "ends_on": row.ends_on.isoformat(),
            "price_minor": row.price_minor,
            "order_id": order_id,
        },
    )
    if offer.benefits.monthly_coupon is not None and row.starts_at <= now:
        _issue_month(session, actor, member, row, offer.benefits.monthly_coupon, 0)
    return True, row


def buy_from_order(session: Session, actor: Actor, member: Member, order: Order, lines: Any) -> int:
    """Order hook: every line whose SKU is a pass code sells that pass (``quantity`` terms,
    one after the other). The caller holds the member's account lock. Answers how many."""
    _v, programme = programmes.active(session)
    if not programme.passes:
        return 0
    n = 0
    for ln in lines:
        offer = programme.pass_offer(ln.sku)
        if offer is None:
            continue
        price = ln.net_minor // ln.quantity if ln.quantity else 0
        for k in range(ln.quantity):
            buy(
                session,
                actor,
                member,
                offer.code,
                purchase_key=f"order:{order.id}:line:{ln.line_no}:{k}",
                price_minor=price,
                order_id=order.id,
            )
            n += 1
    return n


def buy_view(session: Session, actor: Actor, member_id: int, data: PassBuy) -> tuple[int, PassOut]:
    require(actor, ORDER_WRITE)
    member = members.get(session, actor, member_id)
    ledger.lock(session, member.id, member.org_path)  # serialises the member's purchases
    _v, programme = programmes.active(session)
    offer = _offer(programme, data.pass_)
    if data.order_id is not None:
        order = session.get(Order, data.order_id)
        if order is None or order.member_id != member.id:
            raise PassInvalid(
                f"Order {data.order_id} is not an order of member {member.id}.",
                [FieldError("order_id", "not an order of this member", "order_not_member")],
            )
        sold = session.scalar(
            select(MemberPass)
            .where(MemberPass.order_id == order.id, MemberPass.pass_code == offer.code)
            .order_by(MemberPass.id)
            .limit(1)
        )
        if sold is not None:  # the order's line sold it already, or an earlier call
            return 200, pass_out(programme, sold)
        key = f"order:{order.id}:api:{offer.code}"
    else:
        key = f"api:{uuid.uuid4()}"  # the Idempotency-Key header makes a retry a replay
    created, row = buy(session, actor, member, offer.code, purchase_key=key, order_id=data.order_id)
    return (201 if created else 200), pass_out(programme, row)


# ── monthly coupons ─────────────────────────────────────────────────────────────────────


def _issue_month(
    session: Session, actor: Actor, member: Member, row: MemberPass, template: str, n: int
) -> bool:
    created, _code = coupons.issue(
        session, template, member, source="pass", issue_key=f"pass:{row.id}:m{n}", actor=actor
    )
    return created


def issue_monthly(session: Session, now: datetime | None = None) -> int:
    """Give each running term's monthly coupon for the current month (and any month missed
    while the job did not run), once each. Answers how many were issued."""
    now = now or utcnow()
    _v, programme = programmes.active(session)
    with_coupon = {
        p.code: p.benefits.monthly_coupon for p in programme.passes if p.benefits.monthly_coupon
    }
    if not with_coupon:
        return 0
    today = local_day(programme.tz, now)
    issued = 0
    rows = session.scalars(
        select(MemberPass).where(
            MemberPass.status == ACTIVE,
            MemberPass.starts_at <= now,
            MemberPass.ends_at > now,
            MemberPass.pass_code.in_(list(with_coupon)),
        )
    ).all()
    for row in rows:
        member = session.get(Member, row.member_id)
        if member is None:
            continue
        template = with_coupon[row.pass_code]
        assert template is not None
        for n in range(domain.months_held(row.starts_on, today) + 1):
            issued += _issue_month(session, SYSTEM, member, row, template, n)
    return issued


# ── refunds ─────────────────────────────────────────────────────────────────────────────


def _void_coupons(session: Session, row: MemberPass) -> int:
    return coupons.void_issued(session, f"pass:{row.id}:m")


def refund(session: Session, actor: Actor, member_id: int, pass_id: int) -> tuple[MemberPass, int]:
    """Refund a term within its window: it ends now and its unused coupons are voided.
    Refunding it again answers the same refund."""
    require(actor, ORDER_WRITE)
    member = members.get(session, actor, member_id)
    ledger.lock(session, member.id, member.org_path)
    row = session.get(MemberPass, pass_id)
    if row is None or row.member_id != member.id:
        raise PassNotFound(f"Member {member.id} has no pass {pass_id}.")
    if row.status == REFUNDED:
        return row, 0
    now = utcnow()
    if now >= row.refundable_until:
        raise RefundWindowClosed(
            f"Pass {row.id} could be refunded until {row.refundable_until.isoformat()}.",
            extra={"refundable_until": row.refundable_until.isoformat()},
        )
    return row, _refund_row(session, actor, member, row, now)


def refund_for_return(
    session: Session, actor: Actor, order: Order, returned: list[tuple[int, int]]
) -> int:
    """Order hook: returning ``(line_no, quantity)`` of a line that sold a pass refunds that
    many of its terms (the latest first) that are still within their refund window; a term
    past its window stays (refunds after the window are refused, by the API too). The
    caller holds the member's account lock. Answers how many terms were refunded."""
    if order.member_id is None:
        return 0
    member = session.get(Member, order.member_id)
    if member is None:
        return 0
    now = utcnow()
    n = 0
    for line_no, q in returned:
        rows = session.scalars(
            select(MemberPass)
            .where(
                MemberPass.order_id == order.id,
                MemberPass.purchase_key.startswith(f"order:{order.id}:line:{line_no}:"),
                MemberPass.status != REFUNDED,
                MemberPass.refundable_until > now,
            )
            .order_by(MemberPass.id.desc())
            .limit(q)
        ).all()
        for row in rows:
            _refund_row(session, actor, member, row, now)
            n += 1
    return n


def _refund_row(
    session: Session, actor: Actor, member: Member, row: MemberPass, now: datetime
) -> int:
    before = {"status": row.status}
    row.status = REFUNDED
    row.refunded_at = now
    voided = _void_coupons(session, row)
    session.flush()
    events.emit(
        session,
        "pass.refunded",
        {
            "member_id": member.id,
            "pass_id": row.id,
            "pass": row.pass_code,
            "price_minor": row.price_minor,
            "coupons_voided": voided,
        },
        member_id=member.id,
        org_path=member.org_path,
    )
    audit.record(
        session,
        actor,
        "pass.refund",
        "member_pass",
        row.id,
        org_path=member.org_path,
        before=before,
        after={"status": REFUNDED, "price_minor": row.price_minor, "coupons_voided": voided},
    )
    return voided


def refund_view(session: Session, actor: Actor, member_id: int, pass_id: int) -> PassOut:
    row, voided = refund(session, actor, member_id, pass_id)
    _v, programme = programmes.active(session)
    return pass_out(programme, row).model_copy(update={"coupons_voided": voided})


# ── reminders and expiry (job) ──────────────────────────────────────────────────────────


def _renewed(session: Session, row: MemberPass) -> bool:
    """A later term of the same pass continues this one."""
    return (
        session.scalar(
            select(MemberPass.id).where(
                MemberPass.member_id == row.member_id,
                MemberPass.pass_code == row.pass_code,
                MemberPass.status == ACTIVE,
                MemberPass.starts_at >= row.ends_at,
                MemberPass.id != row.id,
            )
        )
        is not None
    )


def sweep(session: Session, now: datetime | None = None) -> tuple[int, int]:
    """``pass.expiring`` once, 7 days before the end of a term nobody renewed, and
    ``pass.expired`` once at its end (a renewed term expires silently). Answers
    (reminded, expired)."""
    now = now or utcnow()
    reminded = expired = 0
    soon = now + timedelta(days=domain.EXPIRING_DAYS)
    due = session.scalars(
        select(MemberPass)
        .where(MemberPass.status == ACTIVE, MemberPass.ends_at <= soon)
        .order_by(MemberPass.id)
    ).all()
    for row in due:
        renewed = _renewed(session, row)
        payload = {
            "member_id": row.member_id,
            "pass_id": row.id,
            "pass": row.pass_code,
            "ends_on": row.ends_on.isoformat(),
            "ends_at": row.ends_at.isoformat(),
        }
        if row.ends_at <= now:
            row.status = EXPIRED
            row.expired_at = now
            if not renewed:
                events.emit(
                    session,
                    "pass.expired",
                    payload,
                    member_id=row.member_id,
                    org_path=row.org_path,
                )
                expired += 1
        elif row.expiring_sent_at is None and not renewed:
            row.expiring_sent_at = now
            events.emit(
                session, "pass.expiring", payload, member_id=row.member_id, org_path=row.org_path
            )
            reminded += 1
    session.flush()
    return reminded, expired


# ── reading ─────────────────────────────────────────────────────────────────────────────


def pass_out(programme: Programme, row: MemberPass) -> PassOut:
    offer = programme.pass_offer(row.pass_code)
    return PassOut(
        id=row.id,
        member_id=row.member_id,
        pass_=row.pass_code,
        name=offer.name if offer else row.pass_code,
        name_en=offer.name_en if offer else None,
        status=row.status,
        renewal=row.renewal,
        starts_on=row.starts_on,
        ends_on=row.ends_on,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        price_minor=row.price_minor,
        currency=row.currency,
        order_id=row.order_id,
        purchased_at=row.purchased_at,
        refundable_until=row.refundable_until,
        refunded_at=row.refunded_at,
    )


def member_passes(session: Session, member_id: int) -> list[MemberPass]:
    return list(
        session.scalars(
            select(MemberPass)
            .where(MemberPass.member_id == member_id)
            .order_by(MemberPass.id.desc())
        )
    )


def member_view(session: Session, actor: Actor, member_id: int) -> MemberPasses:
    require(actor, MEMBER_READ)
    member = members.get(session, actor, member_id)
    _v, programme = programmes.active(session)
    now = utcnow()
    rows = member_passes(session, member.id)
    holding = next(
        (r for r in rows if r.status != REFUNDED and r.starts_at <= now < r.ends_at), None
    )
    free = any(
        (o := programme.pass_offer(t.pass_code)) is not None and o.benefits.free_shipping
        for t in terms_at(session, member.id, now)
    )
    return MemberPasses(
        member_id=member.id,
        holding=pass_out(programme, holding) if holding else None,
        free_shipping=free,
        items=[pass_out(programme, r) for r in rows],
    )
