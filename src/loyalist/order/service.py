"""Orders earn points; returns claw them back and give back points used as payment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalist.access.permissions import ORDER_WRITE, require
from loyalist.audit import service as audit
from loyalist.errors import FieldError, ValidationFailed
from loyalist.events import service as events
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.localtime import local_day, start_of_local_day
from loyalist.ledger import domain as lots
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.errors import MemberNotFound
from loyalist.models import LedgerEntry, Member, Order, OrderLine, OrderReturn, PointsLot
from loyalist.order.errors import (
    InvalidOrder,
    InvalidReturn,
    OrderConflict,
    OrderNotFound,
    ReturnConflict,
)
from loyalist.order.schemas import DryRunIn, OrderCreate, ReturnCreate, to_utc
from loyalist.org import service as org
from loyalist.programme import service as programmes
from loyalist.programme.domain import (
    EarnContext,
    EarnResult,
    LineInput,
    OrderInput,
    allocate_proportionally,
    clawback_points,
    evaluate_order,
)
from loyalist.programme.errors import NoProgramme
from loyalist.programme.schemas import NegativeBalancePolicy, Programme
from loyalist.tier import service as tiers

MAX_CLOCK_SKEW = timedelta(minutes=10)


@dataclass(frozen=True)
class Recorded:
    order: Order
    created: bool


def _order_input(data: OrderCreate, occurred_at: datetime) -> OrderInput:
    return OrderInput(
        store_code=data.store,
        channel=data.channel,
        occurred_at=occurred_at,
        amount_paid_minor=data.amount_paid_minor,
        lines=tuple(
            LineInput(
                line_no=no,
                sku=ln.sku,
                category=ln.category,
                quantity=ln.quantity,
                unit_price_minor=ln.unit_price_minor,
                discount_minor=ln.discount_minor,
            )
            for no, ln in data.numbered()
        ),
    )


def _same(order: Order, data: OrderCreate, member_id: int | None) -> bool:
    return (
        order.member_id == member_id
        and order.amount_paid_minor == data.amount_paid_minor
        and order.points_paid == data.points_paid
        and order.occurred_at == to_utc(data.occurred_at)
    )


def earned_on_day(
    session: Session, programme: Programme, member_id: int, at: datetime, exclude: int | None
) -> int:
    day = local_day(programme.tz, at)
    start = start_of_local_day(programme.tz, day)
    end = start_of_local_day(programme.tz, day + timedelta(days=1))
    q = select(func.coalesce(func.sum(Order.points_earned), 0)).where(
        Order.member_id == member_id, Order.occurred_at >= start, Order.occurred_at < end
    )
    if exclude is not None:
        q = q.where(Order.id != exclude)
    return int(session.scalar(q) or 0)


def record(session: Session, actor: Actor, data: OrderCreate) -> Recorded:
    """Record an order once per external id, earn its points, spend any points paid."""
    require(actor, ORDER_WRITE)
    now = utcnow()
    occurred_at = to_utc(data.occurred_at)
    version, programme = programmes.active(session)
    if data.currency != programme.currency:
        raise InvalidOrder(
            f"The programme runs in {programme.currency}.",
            [FieldError("currency", f"must be {programme.currency}", "currency_mismatch")],
        )
    if occurred_at > now + MAX_CLOCK_SKEW:
        raise InvalidOrder(
            "occurred_at is in the future.",
            [FieldError("occurred_at", "must not be in the future", "in_future")],
        )
    store = org.store_in_scope(session, actor, data.store)
    member: Member | None = None
    if data.member_id is not None:
        try:
            member = members.get(session, actor, data.member_id)
        except MemberNotFound as exc:
            exc.errors = [FieldError("member_id", "unknown member", "unknown_member")]
            raise
    existing = session.scalar(select(Order).where(Order.external_id == data.external_id))
    if existing is not None:
        return _replay(actor, existing, data, member)

    acct = ledger.lock(session, member.id, member.org_path) if member else None
    # Re-check after the lock: a concurrent request may have recorded it meanwhile.
    if acct is not None:
        existing = session.scalar(select(Order).where(Order.external_id == data.external_id))
        if existing is not None:
            return _replay(actor, existing, data, member)

    order_in = _order_input(data, occurred_at)
    gross = sum(ln.quantity * ln.unit_price_minor - ln.discount_minor for ln in data.lines)
    result: EarnResult | None = None
    if member is not None:
        ctx = EarnContext(
            tier_code=_tier_for(programme, member.tier_code),
            earned_today=earned_on_day(session, programme, member.id, occurred_at, None),
            earned_lifetime=ledger.lifetime_earned_by(session, acct) if acct else 0,
        )
        result = evaluate_order(programme, order_in, ctx)
    points = result.points if result else 0
    avail = lots.available_at(programme.points.pending_days, programme.tz, occurred_at)
    order = Order(
        external_id=data.external_id,
        member_id=member.id if member else None,
        store_id=store.id,
        org_path=store.path,
        channel=data.channel,
        occurred_at=occurred_at,
        currency=data.currency,
        gross_minor=gross,
        amount_paid_minor=data.amount_paid_minor,
        points_paid=data.points_paid,
        points_earned=points,
        line_points={str(k): v for k, v in (result.line_points if result else {}).items()},
        breakdown=[_item(b) for b in result.breakdown] if result else [],
        refunded_minor=0,
        points_clawed=0,
        points_paid_restored=0,
        status="recorded",
        programme_version=version if member else None,
        available_at=avail if points else None,
        created_at=now,
    )
    session.add(order)
    session.flush()
    for no, ln in data.numbered():
        session.add(
            OrderLine(
                order_id=order.id,
                line_no=no,
                sku=ln.sku,
                category=ln.category,
                quantity=ln.quantity,
                unit_price_minor=ln.unit_price_minor,
                discount_minor=ln.discount_minor,
                net_minor=ln.quantity * ln.unit_price_minor - ln.discount_minor,
                returned_quantity=0,
            )
        )
    session.flush()
    if acct is not None and member is not None:
        if data.points_paid:
            ledger.debit(
                session,
                acct,
                data.points_paid,
                ledger.Cause(
                    source_type="order",
                    source_id=str(order.id),
                    actor=actor.name,
                    reason=f"points used to pay order {data.external_id}",
                    programme_version=version,
                ),
                kind="redeem",
                dedupe_key=f"order:{order.id}:pay",
            )
        if points > 0:
            ledger.credit(
                session,
                acct,
                points,
                ledger.Cause(
                    source_type="order",
                    source_id=str(order.id),
                    actor=actor.name,
                    reason=f"order {data.external_id}",
                    programme_version=version,
                    details={"breakdown": order.breakdown},
                    occurred_at=occurred_at,
                ),
                kind="earn",
                earned_at=occurred_at,
                available_at=avail,
                expires_at=lots.expires_at(programme.points.expiry, programme.tz, occurred_at),
                dedupe_key=f"order:{order.id}:earn",
            )
            ledger.expire_due(session, acct)  # a back-dated order's points may be past expiry
        tiers.upgrade_if_qualified(session, member, programme, version, now)
    events.emit(
        session,
        "order.recorded",
        {
            "order_id": order.id,
            "external_id": order.external_id,
            "member_id": order.member_id,
            "store": store.code,
            "amount_paid_minor": order.amount_paid_minor,
            "currency": order.currency,
            "points_earned": points,
            "points_paid": order.points_paid,
        },
        member_id=order.member_id,
        org_path=order.org_path,
    )
    audit.record(
        session,
        actor,
        "order.record",
        "order",
        order.id,
        org_path=order.org_path,
        after={
            "external_id": order.external_id,
            "member_id": order.member_id,
            "amount_paid_minor": order.amount_paid_minor,
            "points_earned": points,
            "points_paid": order.points_paid,
        },
    )
    return Recorded(order, True)


def _tier_for(programme: Programme, code: str) -> str | None:
    return code if code in {t.code for t in programme.tiers.levels} else None


def _replay(actor: Actor, existing: Order, data: OrderCreate, member: Member | None) -> Recorded:
    if not actor.sees(existing.org_path) or not _same(
        existing, data, member.id if member else None
    ):
        raise OrderConflict(
            f"Order {data.external_id!r} was already recorded with different content.",
            [FieldError("external_id", "already used", "duplicate")],
        )
    return Recorded(existing, False)


def _item(b: Any) -> dict[str, Any]:
    return {
        "rule": b.rule,
        "points": b.points,
        "lines": list(b.lines),
        "description": b.description,
    }


def get(session: Session, actor: Actor, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None or not actor.sees(order.org_path):
        raise OrderNotFound(f"No order {order_id}.")
    return order


def get_by_external(session: Session, actor: Actor, external_id: str) -> Order:
    order = session.scalar(select(Order).where(Order.external_id == external_id))
    if order is None or not actor.sees(order.org_path):
        raise OrderNotFound(f"No order {external_id!r}.")
    return order


def lines(session: Session, order_id: int) -> list[OrderLine]:
    q = select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.line_no)
    return list(session.scalars(q))


def returns(session: Session, order_id: int) -> list[OrderReturn]:
    q = select(OrderReturn).where(OrderReturn.order_id == order_id).order_by(OrderReturn.id)
    return list(session.scalars(q))


def list_orders(
    session: Session,
    actor: Actor,
    *,
    member_id: int | None,
    store: str | None,
    after: int | None,
    limit: int,
) -> list[Order]:
    q = select(Order).order_by(Order.id.desc()).limit(limit)
    if actor.scope_path != "/":
        q = q.where(Order.org_path.startswith(actor.scope_path))
    if after is not None:
        q = q.where(Order.id < after)
    if member_id is not None:
        q = q.where(Order.member_id == member_id)
    if store is not None:
        q = q.where(Order.store_id == org.store_in_scope(session, actor, store).id)
    return list(session.scalars(q))


@dataclass(frozen=True)
class Returned:
    ret: OrderReturn
    created: bool


def record_return(session: Session, actor: Actor, order_id: int, data: ReturnCreate) -> Returned:
    """Return all or part of an order, once per return id."""
    require(actor, ORDER_WRITE)
    order = get(session, actor, order_id)
    acct = None
    if order.member_id is not None:
        member = session.get(Member, order.member_id)
        assert member is not None
        # The account the order's points went to (a shared pool the member may have left
        # since), else the member's current one.
        acct = ledger.lock(
            session,
            member.id,
            member.org_path,
            account_id=ledger.account_of_entries(
                session, [f"order:{order.id}:pay", f"order:{order.id}:earn"]
            ),
        )
    # Lock the order itself too (after the account, the order every writer takes them in):
    # an anonymous order has no account, and two returns must not both see units left.
    session.refresh(order, with_for_update=True)
    existing = session.scalar(
        select(OrderReturn).where(
            OrderReturn.order_id == order.id, OrderReturn.external_id == data.return_id
        )
    )
    order_lines = {ln.line_no: ln for ln in lines(session, order.id)}
    wanted = (
        {no: ln.quantity - ln.returned_quantity for no, ln in order_lines.items()}
        if data.full
        else {ln.line_no: ln.quantity for ln in data.lines}
    )
    wanted = {no: q for no, q in wanted.items() if q > 0}
    if existing is not None:
        same = {int(x["line_no"]): int(x["quantity"]) for x in existing.lines}
        if data.full or same == wanted:
            return Returned(existing, False)
        raise ReturnConflict(
            f"Return {data.return_id!r} was already recorded with other lines.",
            [FieldError("return_id", "already used", "duplicate")],
        )
    errors: list[FieldError] = []
    for i, (no, q) in enumerate(wanted.items()):
        ln = order_lines.get(no)
        if ln is None:
            errors.append(
                FieldError(f"lines.{i}.line_no", f"order has no line {no}", "unknown_line")
            )
        elif q > ln.quantity - ln.returned_quantity:
            errors.append(
                FieldError(
                    f"lines.{i}.quantity",
                    f"only {ln.quantity - ln.returned_quantity} left to return",
                    "too_many",
                )
            )
    if errors:
        raise InvalidReturn("The return does not match the order.", errors)
    if not wanted:
        raise InvalidReturn(
            "Nothing is left to return.", [FieldError("full", "order fully returned", "empty")]
        )

    qty = {no: ln.quantity for no, ln in order_lines.items()}
    before = {no: ln.returned_quantity for no, ln in order_lines.items()}
    nos = sorted(order_lines)
    line_points = {int(k): int(v) for k, v in order.line_points.items()}
    claw = clawback_points(line_points, qty, before, wanted) if line_points else 0
    paid_share = dict(
        zip(
            nos,
            allocate_proportionally(
                order.amount_paid_minor, [order_lines[n].net_minor for n in nos]
            ),
            strict=True,
        )
    )
    refund = clawback_points(paid_share, qty, before, wanted)
    pay_share = (
        dict(
            zip(
                nos,
                allocate_proportionally(order.points_paid, [order_lines[n].net_minor for n in nos]),
                strict=True,
            )
        )
        if order.points_paid
        else {}
    )
    restore_pts = clawback_points(pay_share, qty, before, wanted) if pay_share else 0

    now = utcnow()
    version, programme = programmes.active(session)
    ret = OrderReturn(
        order_id=order.id,
        external_id=data.return_id,
        lines=[{"line_no": no, "quantity": q} for no, q in sorted(wanted.items())],
        refund_minor=refund,
        points_clawed=0,
        points_waived=0,
        points_restored=0,
        occurred_at=to_utc(data.occurred_at) if data.occurred_at else now,
        created_at=now,
    )
    session.add(ret)
    session.flush()
    if acct is not None:
        if restore_pts:
            pay_entry = session.scalar(
                select(LedgerEntry).where(LedgerEntry.dedupe_key == f"order:{order.id}:pay")
            )
            assert pay_entry is not None
            ledger.restore(
                session,
                acct,
                pay_entry,
                restore_pts,
                ledger.Cause(
                    source_type="return",
                    source_id=str(ret.id),
                    actor=actor.name,
                    reason=f"points paid on order {order.external_id} given back (return "
                    f"{data.return_id})",
                ),
                dedupe_key=f"return:{ret.id}:restore",
            )
            ret.points_restored = restore_pts
        if claw:
            lot = session.scalar(
                select(PointsLot).where(
                    PointsLot.source_type == "order", PointsLot.source_id == str(order.id)
                )
            )
            _entry, waived = ledger.clawback(
                session,
                acct,
                claw,
                ledger.Cause(
                    source_type="return",
                    source_id=str(ret.id),
                    actor=actor.name,
                    reason=f"return {data.return_id} of order {order.external_id}",
                    programme_version=version,
                ),
                lot=lot,
                carry_debt=programme.points.negative_balance is NegativeBalancePolicy.CARRY_DEBT,
                dedupe_key=f"return:{ret.id}:clawback",
            )
            ret.points_clawed = claw - waived
            ret.points_waived = waived
    for no, q in wanted.items():
        order_lines[no].returned_quantity += q
    order.refunded_minor += refund
    order.points_clawed += ret.points_clawed + ret.points_waived
    order.points_paid_restored += ret.points_restored
    fully = all(ln.returned_quantity == ln.quantity for ln in order_lines.values())
    order.status = "returned" if fully else "partially_returned"
    session.flush()
    events.emit(
        session,
        "order.returned",
        {
            "order_id": order.id,
            "member_id": order.member_id,
            "return_id": data.return_id,
            "refund_minor": refund,
            "points_clawed": ret.points_clawed,
            "points_waived": ret.points_waived,
            "points_restored": ret.points_restored,
        },
        member_id=order.member_id,
        org_path=order.org_path,
    )
    audit.record(
        session,
        actor,
        "order.return",
        "order",
        order.id,
        org_path=order.org_path,
        after={
            "return_id": data.return_id,
            "refund_minor": refund,
            "points_clawed": ret.points_clawed,
            "points_restored": ret.points_restored,
            "status": order.status,
        },
    )
    return Returned(ret, True)


def dry_run(session: Session, actor: Actor, data: DryRunIn) -> tuple[int, EarnResult]:
    """What the rules would give a sample order, without writing anything."""
    if data.programme_version is not None:
        try:
            programme = programmes.get_version(session, data.programme_version)
        except NoProgramme as exc:
            raise ValidationFailed(
                f"There is no programme version {data.programme_version}.",
                [FieldError("programme_version", "no such version", "unknown_version")],
            ) from exc
        version = data.programme_version
    else:
        version, programme = programmes.active(session)
    return version, dry_run_with(programme, data)


def dry_run_with(programme: Programme, data: DryRunIn) -> EarnResult:
    if data.tier is not None and data.tier not in {t.code for t in programme.tiers.levels}:
        raise InvalidOrder("Unknown tier.", [FieldError("tier", "not a tier of the programme")])
    order_in = _order_input(data.order, to_utc(data.order.occurred_at))
    ctx = EarnContext(
        tier_code=data.tier, earned_today=data.earned_today, earned_lifetime=data.earned_lifetime
    )
    return evaluate_order(programme, order_in, ctx)
