"""Orders earn points; returns claw them back and give back points used as payment."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from loyalist.access.permissions import ORDER_READ, ORDER_WRITE, require
from loyalist.audit import service as audit
from loyalist.coupon import service as coupons
from loyalist.errors import FieldError, LoyalistError, ValidationFailed
from loyalist.events import service as events
from loyalist.fraud import service as fraud
from loyalist.kit import bulk, conditions
from loyalist.kit.actor import Actor
from loyalist.kit.clock import as_utc, utcnow
from loyalist.kit.db import is_sqlite
from loyalist.kit.localtime import local_day, start_of_local_day
from loyalist.kit.pagination import encode_cursor
from loyalist.kit.rows import Loaded, written
from loyalist.ledger import domain as lots
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.errors import MemberNotFound
from loyalist.models import (
    LedgerEntry,
    LotAllocation,
    Member,
    MemberPass,
    Order,
    OrderLine,
    OrderReturn,
    OrgUnit,
    PointsAccount,
    PointsLot,
)
from loyalist.order import domain as order_rules
from loyalist.order.errors import (
    InvalidOrder,
    InvalidReturn,
    OrderConflict,
    OrderNotFound,
    ReturnConflict,
)
from loyalist.order.schemas import (
    DryRunCondition,
    DryRunIn,
    DryRunItem,
    DryRunOut,
    OrderCreate,
    OrderDetail,
    OrderLineOut,
    OrderPage,
    OrderPoints,
    OrderSummary,
    QuoteIn,
    QuoteLineOut,
    QuoteOut,
    QuoteRuleOut,
    QuoteTierOut,
    QuoteTotalsOut,
    ReturnAnswer,
    ReturnCreate,
    ReturnOut,
    to_utc,
)
from loyalist.org import service as org
from loyalist.passes import service as passes
from loyalist.programme import service as programmes
from loyalist.programme.conditions import RFM_FACTS, catalogue, member_facts_needed
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
    # What a new order wrote, so its answer is built without reading it back (speed).
    lines: tuple[OrderLine, ...] | None = None
    lot: PointsLot | None = None


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


def _line_values(data: OrderCreate) -> list[dict[str, Any]]:
    """The order's ``order_line`` rows, but their ``order_id``."""
    return [
        {
            "line_no": no,
            "sku": ln.sku,
            "category": ln.category,
            "quantity": ln.quantity,
            "unit_price_minor": ln.unit_price_minor,
            "discount_minor": ln.discount_minor,
            "net_minor": ln.quantity * ln.unit_price_minor - ln.discount_minor,
            "returned_quantity": 0,
        }
        for no, ln in data.numbered()
    ]


def _same(order: Order, data: OrderCreate, member_id: int | None) -> bool:
    return (
        order.member_id == member_id
        and order.amount_paid_minor == data.amount_paid_minor
        and order.points_paid == data.points_paid
        and order.coupon_minor == data.coupon_minor
        and order.occurred_at == to_utc(data.occurred_at)
    )


def _check_paid(programme: Programme, data: OrderCreate) -> None:
    """Refuse (422, fields named) an order whose paid amount disagrees with its lines."""
    net = data.net_minor()
    check = order_rules.check_paid(
        lines_net=net,
        amount_paid=data.amount_paid_minor,
        coupon=data.coupon_minor,
        points_paid=data.points_paid,
        points_paid_minor=data.points_paid_minor,
        value_minor_per_100_points=programme.points.value_minor_per_100_points,
        tolerance=programme.orders.paid_tolerance_minor,
    )
    if check.ok:
        return
    msg = (
        f"must be between {check.expected_low} and {check.expected_high}: the lines' net "
        f"{net} less coupons {data.coupon_minor}"
        + (" and the money the points paid" if data.points_paid else "")
        + f", within {programme.orders.paid_tolerance_minor}"
    )
    fields = [FieldError("amount_paid_minor", msg, "paid_mismatch")]
    fields.append(
        FieldError("lines", "their net amounts disagree with the amount paid", "paid_mismatch")
    )
    if data.coupon_minor:
        fields.append(FieldError("coupon_minor", "part of the disagreement", "paid_mismatch"))
    if data.points_paid:
        fields.append(FieldError("points_paid_minor", "part of the disagreement", "paid_mismatch"))
    raise InvalidOrder("The amount paid disagrees with the order's lines.", fields)


def _check_when(programme: Programme, at: datetime, now: datetime, field: str) -> None:
    if at > now + MAX_CLOCK_SKEW:
        raise InvalidOrder(
            f"{field} is in the future.",
            [FieldError(field, "must not be in the future", "in_future")],
        )
    days = programme.orders.max_backdate_days
    if days is not None and at < now - timedelta(days=days):
        raise InvalidOrder(
            f"{field} is more than {days} days ago.",
            [FieldError(field, f"must not be more than {days} days ago", "too_old")],
        )


def _earning_version(session: Session, at: datetime, chosen: int | None) -> tuple[int, Programme]:
    """The version an order earns under: ``chosen`` (a stored version, e.g. a bulk
    import's choice), else the version in force at ``at``."""
    if chosen is None:
        return programmes.in_force_at(session, at)
    return chosen, programmes.get_version(session, chosen)


_INSERT_LINES = insert(cast(Table, OrderLine.__table__))  # built once (speed, issue 11)
_ORDERS = cast(Table, Order.__table__)
_INSERT_ORDER = insert(_ORDERS).returning(_ORDERS.c.id)  # built once (speed, issue 11)


def _member_for_order(session: Session, actor: Actor, data: OrderCreate) -> Member | None:
    """By id: a member in the caller's scope (404 otherwise). By exact identity: a member of
    the brand, whatever their home store (chains), 404 when nobody holds it."""
    if data.member_id is not None:
        try:
            return members.get(session, actor, data.member_id)
        except MemberNotFound as exc:
            exc.errors = [FieldError("member_id", "unknown member", "unknown_member")]
            raise
    if data.member_identity is not None:
        ident = data.member_identity
        return members.get_by_identity(
            session, actor, ident.kind, ident.value, field="member_identity.value"
        )
    return None


@dataclass(frozen=True)
class _Reads:
    """What the order path reads under the member's account lock besides its three rows,
    read in one go (speed, issue 11; see :func:`_store_member_account`). ``earned_today``
    is None when the programme has no per-day cap, ``held`` when it sells no passes (then
    nothing of them is read, as in the separate reads), ``spend`` when the active programme's
    tier metric is not the member's own spend (``tiers.spend_alone``)."""

    account_id: int | None  # the member's active membership (ledger.membership_columns)
    can_spend: bool | None
    existing_id: int | None  # the order already recorded with this store and external id
    tier_change: str | None  # tiers.tier_change_at the order's date
    earned_today: int | None  # earned_on_day at the order's date
    held: list[str] | None  # passes.held_codes_at the order's date
    spend: int | None  # tiers.spend_in_window at the order's now (the order not yet in it)
    spend_window: tuple[datetime, datetime] | None  # the window it sums

    @classmethod
    def of(
        cls,
        values: Sequence[Any],
        day: bool,
        held: bool,
        spend_window: tuple[datetime, datetime] | None,
    ) -> _Reads:
        account_id, can_spend, existing_id, tier_change, *rest = values
        return cls(
            account_id=account_id,
            can_spend=can_spend,
            existing_id=existing_id,
            tier_change=tier_change,
            earned_today=int(rest.pop(0) or 0) if day else None,
            held=passes.split_held(rest.pop(0)) if held else None,
            spend=int(rest.pop(0) or 0) if spend_window else None,
            spend_window=spend_window,
        )


def _spend_now(reads: _Reads | None, order: Order) -> int | None:
    """The instant upgrade check's spend with ``order`` recorded: the spend read under the
    lock plus the order's own qualifying amount when the window counts it (an order dated
    after ``now``, within the clock skew allowed, is not in it yet); None: not read."""
    if reads is None or reads.spend is None or reads.spend_window is None:
        return None
    start, end = reads.spend_window
    own = order.qualifying_minor - order.qualifying_refunded_minor
    return max(reads.spend + (own if start <= order.occurred_at <= end else 0), 0)


def _store_member_account(
    session: Session,
    actor: Actor,
    data: OrderCreate,
    programme: Programme,
    at: datetime,
    current: Programme,
    now: datetime,
) -> tuple[OrgUnit, Member | None, ledger.Account | None, _Reads | None]:
    """The order's store, its member and the member's account, locked. A member given by
    id: the three in one statement (speed, issue 11); whatever it does not settle (a merged
    member, an unknown store or member, one out of scope, a member who just moved to another
    account) is asked again one by one, which answers the errors.

    With the three, :class:`_Reads`: the member's membership, the order already recorded
    with this external id, the tier change, the day's earnings and the passes held that the
    order at ``at`` under ``programme`` needs, and the spend the instant upgrade check of
    the active programme ``current`` at ``now`` starts from (the record adds its own order),
    read under the lock as the separate reads would be (None: not read, they are asked one
    by one).

    SQLite: in the locking statement itself (the transaction holds the write lock from its
    start: nothing changes between the read and the lock). PostgreSQL: in one statement
    right after it, not in it: the locking statement's snapshot is taken before it waits
    for the lock, and a transaction holding the lock meanwhile may have changed any of them
    without changing the account row (so ``xmin``, see ``ledger.locking_columns``, would
    not tell): attach, detach and ``set_can_spend`` change memberships, an order of no
    points is recorded, a tier upgraded, a pass bought without a ledger entry."""
    member: Member | None
    if data.member_id is not None:
        ledger.prepare_lock(session, OrgUnit, Member)  # the read below reloads all three
        lock_now = utcnow()
        sqlite = is_sqlite(session)
        variant = (
            programme.earning.caps.per_day is not None,
            bool(programme.passes),
            tiers.spend_alone(current),
        )
        day, held, spend = variant
        params: dict[str, Any] = {"external_id": data.external_id, "at": at}
        if day:
            params["day_start"], params["day_end"] = _day_bounds(programme, at)
        window = tiers.spend_window(current, now) if spend else None
        if window is not None:
            params["spend_start"], params["spend_now"] = window
        q = _locking_read(sqlite, variant)
        lock_params = {"code": data.store, "member_id": data.member_id, "now": lock_now}
        # Core on the session's connection: the three rows made the session's objects by
        # kit.rows.Loaded, without the ORM's statement and loading machinery (speed, issue 11)
        row = (
            session.connection()
            .execute(q, {**lock_params, **params} if sqlite else lock_params)
            .first()
        )
        if row is not None:
            unit, member, account, due, folded = _loaded_three(session, row)
            store = org.checked_open_store(actor, unit, data.store)
            if actor.sees(member.org_path):
                fresh = True
                if not sqlite:
                    after = {**params, "member_id": member.id, "store_id": store.id}
                    # columns only: Core on the session's connection, no ORM layer
                    got = session.connection().execute(_after_lock_read(variant), after).first()
                    fresh = got is not None and _refresh_member(member, got[-len(_LOCKED_MEMBER) :])
                    folded = list(got[: -len(_LOCKED_MEMBER)]) if got is not None else []
                reads = _Reads.of(folded, day, held, window) if fresh else None
                acct = (
                    ledger.adopt_lock(
                        session,
                        account,
                        member.id,
                        member.org_path,
                        lock_now,
                        due,
                        membership_read=(reads.account_id, reads.can_spend),
                    )
                    if reads is not None
                    else None
                )
                if acct is not None and reads is not None:
                    return store, member, acct, reads
    store = org.open_store_in_scope(session, actor, data.store)
    member = _member_for_order(session, actor, data)
    acct = ledger.lock(session, member.id, member.org_path) if member else None
    if member is not None and not is_sqlite(session):
        # PostgreSQL (branch fixtier): the member was read before the lock; its columns
        # that transactions holding the lock change are read again under it (one statement,
        # this one-by-one path only). Merged meanwhile: the survivor, as read now, locked
        # and read again in turn (branch races: it may itself have been merged while the
        # order waited for its lock, a chain of merges).
        session.refresh(member, attribute_names=_LOCKED_MEMBER_KEYS)
        while member.status == members.MERGED:
            survivor = _member_for_order(session, actor, data)
            if survivor is None or survivor.id == member.id:
                break
            member = survivor
            acct = ledger.lock(session, member.id, member.org_path)
            session.refresh(member, attribute_names=_LOCKED_MEMBER_KEYS)
    return store, member, acct, None


# The locking read's three rows: every column of each table, made objects by kit.rows.
_STORE_ROW, _MEMBER_ROW, _ACCOUNT_ROW = Loaded(OrgUnit), Loaded(Member), Loaded(PointsAccount)
_MEMBER_AT = len(_STORE_ROW.columns)
_ACCOUNT_AT = _MEMBER_AT + len(_MEMBER_ROW.columns)
_DUE_AT = _ACCOUNT_AT + len(_ACCOUNT_ROW.columns)


def _loaded_three(
    session: Session, row: Sequence[Any]
) -> tuple[OrgUnit, Member, PointsAccount, bool, list[Any]]:
    """The locking read's store, member and account as the session's objects (as the ORM
    query with ``populate_existing`` loaded them), its lots-due flag and the rest."""
    return (
        _STORE_ROW.load(session, row[:_MEMBER_AT]),
        _MEMBER_ROW.load(session, row[_MEMBER_AT:_ACCOUNT_AT]),
        _ACCOUNT_ROW.load(session, row[_ACCOUNT_AT:_DUE_AT]),
        row[_DUE_AT],
        list(row[_DUE_AT + 1 :]),
    )


def _store_member_account_query(postgres: bool) -> Any:
    _entity, due, joined = ledger.locking_columns(postgres)
    return (  # three rows by their keys, joined (no cartesian product to warn about)
        select(*_STORE_ROW.columns, *_MEMBER_ROW.columns, *_ACCOUNT_ROW.columns, due)
        .select_from(_STORE_ROW.table)
        .join(
            _MEMBER_ROW.table,
            (Member.id == bindparam("member_id")) & (Member.status != members.MERGED),
        )
        .join(_ACCOUNT_ROW.table, joined)
        .where(OrgUnit.code == bindparam("code"))
    )


def _read_columns(member_id: Any, store_id: Any, variant: tuple[bool, bool, bool]) -> list[Any]:
    """:class:`_Reads`'s columns, of ``member_id`` and ``store_id`` (columns of the locking
    statement, or bound parameters): the same SQL as the separate reads, as subqueries."""
    day, held, spend = variant
    account_id, can_spend = ledger.membership_columns(member_id)
    at: Any = bindparam("at")
    cols = [
        account_id,
        can_spend,
        select(Order.id)
        .where(Order.store_id == store_id, Order.external_id == bindparam("external_id"))
        .scalar_subquery(),
        tiers.tier_change_at(member_id, at),
    ]
    if day:
        cols.append(
            _earned_between(
                member_id, bindparam("day_start"), bindparam("day_end")
            ).scalar_subquery()
        )
    if held:
        cols.append(passes.held_codes_at(member_id, at))
    if spend:
        window: tuple[Any, Any] = (bindparam("spend_start"), bindparam("spend_now"))
        cols.append(tiers.spend_in_window(member_id, *window))
    return [c.label(f"read_{i}") for i, c in enumerate(cols)]


# speed (issue 11): each variant (per-day cap or not, passes sold or not, spend metric or
# not) built once per process (SQLAlchemy then reuses its cache key).
_LOCKING_READS: dict[tuple[bool, bool, bool], Any] = {}
_AFTER_LOCK_READS: dict[tuple[bool, bool, bool], Any] = {}


def _locking_read(sqlite: bool, variant: tuple[bool, bool, bool]) -> Any:
    """The locking statement: SQLite's with :class:`_Reads`'s columns, PostgreSQL's alone."""
    if not sqlite:
        return _STORE_MEMBER_ACCOUNT
    q = _LOCKING_READS.get(variant)
    if q is None:
        cols = _read_columns(Member.id, OrgUnit.id, variant)
        q = _LOCKING_READS[variant] = _STORE_MEMBER_ACCOUNT_SQLITE.add_columns(*cols)
    return q


# PostgreSQL (branch fixtier): the member's columns that another transaction holding the
# member's account lock may have changed while the order waited for it, read again in the
# statement after the lock (the locking statement's snapshot predates the wait): the tier
# (an order's instant upgrade, the periodic re-evaluation, a merge's survivor: tier_code,
# tier_since, tier_expires_at, tier_periods_below, tier_evaluated_period, written
# together) and the status (a merge marks the merged member under both accounts' locks).
# The member's other columns (name, birthday, home store and org_path, ...) are changed
# without the account lock: the lock never ordered them, before this read either.
_LOCKED_MEMBER_KEYS = [
    "status",
    "tier_code",
    "tier_since",
    "tier_expires_at",
    "tier_periods_below",
    "tier_evaluated_period",
]
# the table's columns (Core: no ORM entity for the statement to load)
_LOCKED_MEMBER = tuple(cast(Table, Member.__table__).c[k] for k in _LOCKED_MEMBER_KEYS)


def _after_lock_read(variant: tuple[bool, bool, bool]) -> Any:
    """PostgreSQL: :class:`_Reads`'s columns in one statement after the locking one, then
    the member's :data:`_LOCKED_MEMBER` columns (the member row by its key)."""
    q = _AFTER_LOCK_READS.get(variant)
    if q is None:
        cols = _read_columns(bindparam("member_id"), bindparam("store_id"), variant)
        q = _AFTER_LOCK_READS[variant] = select(*cols, *_LOCKED_MEMBER).where(
            cast(Table, Member.__table__).c.id == bindparam("member_id")
        )
    return q


def _refresh_member(member: Member, values: Sequence[Any]) -> bool:
    """Give ``member`` (loaded by the locking statement, before the lock wait) the
    :data:`_LOCKED_MEMBER` values read after the lock, as loaded state (nothing to write).
    False: the member was merged meanwhile (the order is then asked again one by one, which
    resolves the survivor)."""
    for col, value in zip(_LOCKED_MEMBER, values, strict=True):
        if getattr(member, col.key) != value:
            set_committed_value(member, col.key, value)
    return member.status != members.MERGED


_STORE_MEMBER_ACCOUNT_SQLITE = _store_member_account_query(False)
_STORE_MEMBER_ACCOUNT = _store_member_account_query(True).with_for_update(of=_ACCOUNT_ROW.table)


def _day_bounds(programme: Programme, at: datetime) -> tuple[datetime, datetime]:
    """The start and the end of the local day of ``at`` in the programme's zone."""
    day = local_day(programme.tz, at)
    return start_of_local_day(programme.tz, day), start_of_local_day(
        programme.tz, day + timedelta(days=1)
    )


def earned_on_day(
    session: Session, programme: Programme, member_id: int, at: datetime, exclude: int | None
) -> int:
    start, end = _day_bounds(programme, at)
    params = {"member_id": member_id, "start": start, "end": end}
    if exclude is None:
        return int(session.scalar(_EARNED_ON_DAY, params) or 0)
    return int(session.scalar(_EARNED_ON_DAY_EXCLUDING, {**params, "exclude": exclude}) or 0)


# speed (issue 11): statements of the earn path are built once per process with bound
# parameters, not per call: SQLAlchemy then reuses their cache key (the same SQL, about
# 0.1 ms of Python less per statement).
def _earned_between(member_id: Any, start: Any, end: Any) -> Any:
    """Points a member earned from orders dated in [start, end) (bound parameters, or
    columns of an enclosing statement)."""
    return select(func.coalesce(func.sum(Order.points_earned), 0)).where(
        Order.member_id == member_id, Order.occurred_at >= start, Order.occurred_at < end
    )


_EARNED_ON_DAY = _earned_between(bindparam("member_id"), bindparam("start"), bindparam("end"))
_EARNED_ON_DAY_EXCLUDING = _EARNED_ON_DAY.where(Order.id != bindparam("exclude"))


def record(
    session: Session, actor: Actor, data: OrderCreate, *, programme_version: int | None = None
) -> Recorded:
    """Record an order once per external id, earn its points, spend any points paid.
    ``programme_version`` (bulk import): earn under that stored version instead of the one
    in force at the order's date."""
    require(actor, ORDER_WRITE)
    now = utcnow()
    occurred_at = to_utc(data.occurred_at)
    current_version, current = programmes.active(session)
    if data.currency != current.currency:
        raise InvalidOrder(
            f"The programme runs in {current.currency}.",
            [FieldError("currency", f"must be {current.currency}", "currency_mismatch")],
        )
    _check_when(current, occurred_at, now, "occurred_at")
    # A back-dated order earns under the programme version in force at its date.
    version, programme = _earning_version(session, occurred_at, programme_version)
    _check_paid(current, data)
    store, member, acct, reads = _store_member_account(
        session, actor, data, programme, occurred_at, current, now
    )
    # Looked up under the member's account lock: a concurrent request with the same order
    # either committed it (found here) or waits for this one. Read with the lock (reads):
    # the order itself is read only when there is one (a replay).
    existing = (
        _existing(session, store.id, data.external_id)
        if reads is None or reads.existing_id is not None
        else None
    )
    if existing is not None:
        return _replay(actor, existing, data, member)

    if data.coupons:  # coupons (issue 12): used in this transaction, or the order is refused
        coupons.redeem_for_order(session, actor, data, member=member, store=store, at=occurred_at)
    order_in = _order_input(data, occurred_at)
    gross = data.net_minor()
    excluded = current.tiers.excluded_categories
    qualifying = order_rules.qualifying_minor(
        data.amount_paid_minor,
        [ln.quantity * ln.unit_price_minor - ln.discount_minor for _no, ln in data.numbered()],
        [ln.category for _no, ln in data.numbered()],
        excluded,
    )
    result: EarnResult | None = None
    if member is not None:
        caps = programme.earning.caps
        tier = (
            tiers.tier_at(session, member, occurred_at)
            if reads is None
            else tiers.tier_at(session, member, occurred_at, changed_to=reads.tier_change)
        )
        ctx = EarnContext(
            tier_code=_tier_for(programme, tier),
            # speed (issue 11): the day's and the lifetime earnings are read only when a cap
            # uses them (nothing else in the rules does), the passes only when sold
            earned_today=(
                earned_on_day(session, programme, member.id, occurred_at, None)
                if reads is None or reads.earned_today is None
                else reads.earned_today
            )
            if caps.per_day is not None
            else 0,
            earned_lifetime=ledger.lifetime_earned_by(session, acct)
            if acct is not None and caps.per_member is not None
            else 0,
            facts=member_facts(session, programme, member, occurred_at),
            pass_code=passes.pass_for_earning(
                session, programme, member.id, occurred_at, held=reads.held if reads else None
            )
            if programme.passes
            else None,
        )
        result = evaluate_order(programme, order_in, ctx)
    points = result.points if result else 0
    checked = None
    if member is not None:  # fraud controls (issue 13): counted, then held, blocked or allowed
        if data.points_paid:
            fraud.ensure_not_frozen(session, member.id)
        checked = fraud.check(
            session,
            kind="order",
            member_id=member.id,
            device_id=data.device_id,
            store_id=store.id,
            points=points,
            amount_minor=data.amount_paid_minor,
        )
    avail = fraud.available_at(
        checked, lots.available_at(programme.points.pending_days, programme.tz, occurred_at)
    )
    row: dict[str, Any] = dict(
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
        points_paid_minor=data.points_paid_minor
        if data.points_paid_minor is not None
        else min(
            order_rules.points_money(data.points_paid, current.points.value_minor_per_100_points),
            max(gross - data.coupon_minor - data.amount_paid_minor, 0),
        ),
        coupon_minor=data.coupon_minor,
        qualifying_minor=qualifying,
        qualifying_refunded_minor=0,
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
    order = written(Order, row)  # the answer's object: no instrumented constructor
    # One Core INSERT … RETURNING id, built once (speed, issue 11: no unit of work). The
    # session does not track the order: it stays transient, with its id. Nothing later in
    # this path or in a caller modifies it, refreshes it or relies on it being the session's
    # object (it has no relationships to load); the answer reads its attributes, which are
    # the values written. A later read of the order in the session loads the row itself.
    order.id = session.connection().execute(_INSERT_ORDER, row).scalar_one()
    line_rows = [{"order_id": order.id, **values} for values in _line_values(data)]
    # One multi-row INSERT without RETURNING (Core: the answer is built from these objects,
    # which the session never tracks; nothing reads their ids).
    session.connection().execute(_INSERT_LINES, line_rows)  # Core: no ORM layer
    order_lines = tuple(written(OrderLine, r) for r in line_rows)
    lot: PointsLot | None = None
    # The events emitted from here on (the ledger's, the fraud hold's, the tier's, the
    # order's) are written at the block's end in one multi-row Core INSERT (speed, issue 11).
    with events.batched(session):
        if acct is not None and member is not None:
            # paid membership: a line whose SKU is a pass code sells the pass (after earning: its
            # benefits start with the next order)
            passes.buy_from_order(session, actor, member, order, order_lines)
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
                _entry, lot = ledger.credit(
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
                # Every lot of the account that is past its expiry (a back-dated order's own
                # points included) expires now, so the balance the answer shows never counts
                # overdue points (the ledger state machine holds the order path to this; one
                # indexed SELECT that usually finds nothing).
                ledger.expire_due(session, acct)
            fraud.settle(
                session,
                checked,
                source_id=order.id,
                member_id=member.id,
                org_path=store.path,
                lot=lot,
            )
            tiers.upgrade_if_qualified(
                session, member, current, current_version, now, value=_spend_now(reads, order)
            )
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
        audit.write(
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
    if acct is not None:
        # the account's balances and chain head: one Core UPDATE now, not the unit of work's
        # flush at the end (speed, issue 11); after the events, where that flush wrote it
        ledger.write_account(session, acct)
    return Recorded(order, True, order_lines, lot)


def member_facts(
    session: Session, programme: Programme, member: Member, at: datetime
) -> dict[str, Any]:
    """The member fields the programme's ``when:`` conditions read, and only those.

    A programme without conditions on member fields costs no query here.
    """
    needed = member_facts_needed(programme.condition_fields())
    facts: dict[str, Any] = {}
    if not needed:
        return facts
    if "member.tags" in needed:
        facts["member.tags"] = members.tags(session, member.id)
    if "member.consent" in needed:
        facts["member.consent"] = members.consents(session, member.id)
    if "member.joined_days" in needed:
        joined = local_day(programme.tz, member.created_at)
        facts["member.joined_days"] = max(0, (local_day(programme.tz, at) - joined).days)
    if "member.birthday_month" in needed:
        facts["member.birthday_month"] = member.birthday.month if member.birthday else None
    if "member.points" in needed:
        facts["member.points"] = ledger.get_account(session, member.id).available
    if "member.lifetime_spend_minor" in needed:
        facts["member.lifetime_spend_minor"] = int(
            session.scalar(
                select(func.coalesce(func.sum(Order.amount_paid_minor), 0)).where(
                    Order.member_id == member.id
                )
            )
            or 0
        )
    if needed & set(RFM_FACTS):  # the nightly RFM row (insights.rfm)
        facts.update(members.rfm_facts(session, member.id, programme.tiers.rfm_weights))
    if ("member.store" in needed or "member.region" in needed) and member.home_store_id:
        store = org.get(session, member.home_store_id)
        facts["member.store"] = store.code
        parent = org.get(session, store.parent_id) if store.parent_id else None
        facts["member.region"] = parent.code if parent and parent.kind == "region" else None
    return facts


def _existing(session: Session, store_id: int, external_id: str) -> Order | None:
    """External ids are unique per store: a chain's stores may reuse receipt numbers."""
    return session.scalar(_EXISTING, {"store_id": store_id, "external_id": external_id})


_EXISTING = select(Order).where(
    Order.store_id == bindparam("store_id"), Order.external_id == bindparam("external_id")
)


def _tier_for(programme: Programme, code: str) -> str | None:
    return code if code in {t.code for t in programme.tiers.levels} else None


def _replay(actor: Actor, existing: Order, data: OrderCreate, member: Member | None) -> Recorded:
    if not _same(existing, data, member.id if member else None):
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
    """The first order in scope with this external id (unique per store)."""
    q = select(Order).where(Order.external_id == external_id)
    if actor.scope_path != "/":
        q = q.where(Order.org_path.startswith(actor.scope_path))
    order = session.scalar(q.order_by(Order.id).limit(1))
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
    qual_refund = _qualifying_refund(
        order, order_lines, programme.tiers.excluded_categories, qty, before, wanted
    )
    returned_at = to_utc(data.occurred_at) if data.occurred_at else now
    _check_when(programme, returned_at, now, "occurred_at")
    if returned_at < order.occurred_at:
        raise InvalidReturn(
            "A return cannot happen before its order.",
            [FieldError("occurred_at", "must not be before the order", "before_order")],
        )
    ret = OrderReturn(
        order_id=order.id,
        external_id=data.return_id,
        lines=[{"line_no": no, "quantity": q} for no, q in sorted(wanted.items())],
        refund_minor=refund,
        points_clawed=0,
        points_waived=0,
        points_restored=0,
        points_expired=0,
        occurred_at=returned_at,
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
            # Only this order's own points: what already expired is reported, not taken
            # from other orders' lots; what was spent of them is a debt (or waived) per the
            # programme's negative-balance policy.
            ledger.expire_due(session, acct)
            expired = _expired_unreported(session, order, lot)
            open_own = (
                lot.remaining if lot is not None and lot.status in ("pending", "available") else 0
            )
            ret.points_expired = min(max(claw - open_own, 0), expired)
            claw -= ret.points_expired
        if claw:
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
                other_lots=False,
            )
            # What the member had already spent of this order's points became a debt; like
            # any debt it is paid at once from points they hold (a separate entry, so the
            # return's own clawback still touches no other order's lot).
            ledger.settle_debt(session, acct)
            ret.points_clawed = claw - waived
            ret.points_waived = waived
    for no, q in wanted.items():
        order_lines[no].returned_quantity += q
    order.refunded_minor += refund
    order.qualifying_refunded_minor += qual_refund
    order.points_clawed += ret.points_clawed + ret.points_waived
    order.points_paid_restored += ret.points_restored
    fully = all(ln.returned_quantity == ln.quantity for ln in order_lines.values())
    order.status = "returned" if fully else "partially_returned"
    session.flush()
    # paid membership: a returned pass line refunds its terms still within their window
    passes.refund_for_return(session, actor, order, list(wanted.items()))
    if fully:  # coupons (issue 12): a full return gives their uses back where templates say so
        coupons.restore_for_return(session, order)
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
            "points_expired": ret.points_expired,
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


def _qualifying_refund(
    order: Order,
    order_lines: dict[int, OrderLine],
    excluded: list[str],
    qty: dict[int, int],
    before: dict[int, int],
    wanted: dict[int, int],
) -> int:
    """The part of the refund that had counted toward tiers: the returned units' share of
    the paid amount, qualifying lines only (never more than what still counts)."""
    left = order.qualifying_minor - order.qualifying_refunded_minor
    if left <= 0:
        return 0
    nos = sorted(order_lines)
    nets = [order_lines[n].net_minor for n in nos]
    if sum(nets) == 0:
        return 0
    shares = allocate_proportionally(order.amount_paid_minor, nets)
    qual = {
        n: (s if order_lines[n].category not in excluded else 0)
        for n, s in zip(nos, shares, strict=True)
    }
    return min(clawback_points(qual, qty, before, wanted), left)


LOT_STATUS = {
    "pending": "pending",
    "available": "available",
    "closed": "spent",
    "expired": "expired",
    "void": "clawed_back",
}


def _own_lot(session: Session, order: Order) -> PointsLot | None:
    return session.scalar(
        select(PointsLot).where(
            PointsLot.source_type == "order", PointsLot.source_id == str(order.id)
        )
    )


def _expired_of(session: Session, lot: PointsLot) -> int:
    taken = session.scalar(
        select(func.coalesce(func.sum(LotAllocation.points), 0))
        .join(LedgerEntry, LedgerEntry.id == LotAllocation.entry_id)
        .where(LotAllocation.lot_id == lot.id, LedgerEntry.kind == "expire")
    )
    return -int(taken or 0)


@dataclass(frozen=True)
class PointsState:
    status: str  # none | pending | available | spent | expired | clawed_back
    open: int  # still in the order's lot (pending or available)
    expired: int


def points_state(session: Session, order: Order) -> PointsState:
    """The order's points as the ledger has them now (its own lot), not as the clock guesses."""
    lot = _own_lot(session, order) if order.points_earned else None
    if lot is None:
        return PointsState("none", 0, 0)
    open_ = lot.remaining if lot.status in ("pending", "available") else 0
    return PointsState(LOT_STATUS.get(lot.status, lot.status), open_, _expired_of(session, lot))


def _expired_unreported(session: Session, order: Order, lot: PointsLot | None) -> int:
    """Points of the order's lot that expired and no earlier return has reported."""
    if lot is None:
        return 0
    reported = session.scalar(
        select(func.coalesce(func.sum(OrderReturn.points_expired), 0)).where(
            OrderReturn.order_id == order.id
        )
    )
    return max(_expired_of(session, lot) - int(reported or 0), 0)


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
    if data.pass_code is not None and programme.pass_offer(data.pass_code) is None:
        raise InvalidOrder(
            "Unknown pass.", [FieldError("pass_code", "not a pass the programme sells")]
        )
    order_in = _order_input(data.order, to_utc(data.order.occurred_at))
    ctx = EarnContext(
        tier_code=data.tier,
        earned_today=data.earned_today,
        earned_lifetime=data.earned_lifetime,
        facts=_sample_facts(programme, data.member),
        pass_code=data.pass_code,
    )
    return evaluate_order(programme, order_in, ctx)


def _sample_facts(programme: Programme, given: dict[str, Any]) -> dict[str, Any]:
    """A dry-run's member facts (``member.tags`` ...), checked against the catalogue."""
    spec = catalogue(t.code for t in programme.tiers.levels)
    errors: list[FieldError] = []
    for name, value in given.items():
        if name == "tier":
            errors.append(FieldError("member.tier", "give the tier as 'tier'", "use_tier"))
            continue
        if name == "consent" and isinstance(value, dict):
            items = [(f"member.consent.{k}", v) for k, v in value.items()]
        else:
            items = [(f"member.{name}", value)]
        for field_name, v in items:
            errors.extend(
                FieldError(p.path, p.message, "invalid")
                for p in conditions.check_value(spec, field_name, v)
            )
    if errors:
        raise InvalidOrder("The sample member facts are not valid.", errors)
    return {f"member.{name}": value for name, value in given.items()}


def quote(session: Session, actor: Actor, data: QuoteIn) -> QuoteOut:
    """Price a basket for a member: the tier discount per line, the points it would earn
    (with the rules that give them) and the totals. Writes nothing; scoped like orders
    (the store must be in scope; the member by id in scope, or by exact identity)."""
    require(actor, ORDER_READ)
    now = utcnow()
    at = to_utc(data.occurred_at) if data.occurred_at else now
    version, programme = programmes.active(session)
    if data.currency != programme.currency:
        raise InvalidOrder(
            f"The programme runs in {programme.currency}.",
            [FieldError("currency", f"must be {programme.currency}", "currency_mismatch")],
        )
    store = org.store_in_scope(session, actor, data.store)
    member: Member | None = None
    if data.member_id is not None:
        try:
            member = members.get(session, actor, data.member_id)
        except MemberNotFound as exc:
            exc.errors = [FieldError("member_id", "unknown member", "unknown_member")]
            raise
    elif data.member_identity is not None:
        ident = data.member_identity
        member = members.get_by_identity(
            session, actor, ident.kind, ident.value, field="member_identity.value"
        )
    numbered = data.numbered()
    nets = [ln.quantity * ln.unit_price_minor - ln.discount_minor for _n, ln in numbered]
    qualifies = order_rules.qualifying_lines(
        [ln.category for _n, ln in numbered], programme.tiers.excluded_categories
    )
    tier = None
    rate = Decimal(0)
    if member is not None:
        code = _tier_for(programme, member.tier_code)
        if code is not None:
            t = programme.tiers.by_code(code)
            tier, rate = t, t.benefits.discount_rate
    tier_off = order_rules.tier_discounts(nets, qualifies, rate)
    line_due = [n - d for n, d in zip(nets, tier_off, strict=True)]
    due = max(sum(line_due) - data.coupon_minor, 0)
    result: EarnResult | None = None
    if member is not None:
        order_in = OrderInput(
            store_code=store.code,
            channel=data.channel,
            occurred_at=at,
            amount_paid_minor=due,
            lines=tuple(
                LineInput(
                    line_no=no,
                    sku=ln.sku,
                    category=ln.category,
                    quantity=ln.quantity,
                    unit_price_minor=ln.unit_price_minor,
                    discount_minor=ln.discount_minor + off,
                )
                for (no, ln), off in zip(numbered, tier_off, strict=True)
            ),
        )
        acct = ledger.get_account(session, member.id)
        # The member's side exactly as record() builds it for the same order: the tier in
        # force at its time and the pass held then (its multiplier adds to the tier's).
        ctx = EarnContext(
            tier_code=_tier_for(programme, tiers.tier_at(session, member, at)),
            earned_today=earned_on_day(session, programme, member.id, at, None),
            earned_lifetime=acct.lifetime_earned,
            facts=member_facts(session, programme, member, at),
            pass_code=passes.pass_for_earning(session, programme, member.id, at),
        )
        result = evaluate_order(programme, order_in, ctx)
    return QuoteOut(
        member_id=member.id if member else None,
        tier=QuoteTierOut(code=tier.code, name=tier.name, discount_rate=str(rate))
        if tier
        else None,
        programme_version=version,
        currency=programme.currency,
        lines=[
            QuoteLineOut(
                line_no=no,
                sku=ln.sku,
                category=ln.category,
                quantity=ln.quantity,
                unit_price_minor=ln.unit_price_minor,
                discount_minor=ln.discount_minor,
                tier_discount_minor=off,
                net_minor=d,
                points=result.line_points.get(no, 0) if result else 0,
                counts_toward_tier=q,
            )
            for (no, ln), off, d, q in zip(numbered, tier_off, line_due, qualifies, strict=True)
        ],
        points=[
            QuoteRuleOut(
                rule=b.rule, points=b.points, lines=list(b.lines), description=b.description
            )
            for b in (result.breakdown if result else ())
        ],
        totals=QuoteTotalsOut(
            gross_minor=sum(ln.quantity * ln.unit_price_minor for _n, ln in numbered),
            line_discount_minor=sum(ln.discount_minor for _n, ln in numbered),
            tier_discount_minor=sum(tier_off),
            coupon_minor=data.coupon_minor,
            amount_due_minor=due,
            points_earned=result.points if result else 0,
            tier_qualifying_minor=order_rules.qualifying_minor(
                due,
                line_due,
                [ln.category for _n, ln in numbered],
                programme.tiers.excluded_categories,
            ),
        ),
    )


# --- Answers: the response schemas the API sends -----------------------------------------


def return_out(r: OrderReturn) -> ReturnOut:
    return ReturnOut(
        id=r.id,
        return_id=r.external_id,
        lines=r.lines,
        refund_minor=r.refund_minor,
        points_clawed=r.points_clawed,
        points_waived=r.points_waived,
        points_restored=r.points_restored,
        points_expired=r.points_expired,
        occurred_at=r.occurred_at,
    )


def _summary_fields(session: Session, o: Order, state: PointsState | None = None) -> dict[str, Any]:
    state = state or points_state(session, o)
    return {
        "id": o.id,
        "external_id": o.external_id,
        "member_id": o.member_id,
        "store_id": o.store_id,
        "channel": o.channel,
        "occurred_at": o.occurred_at,
        "currency": o.currency,
        "gross_minor": o.gross_minor,
        "amount_paid_minor": o.amount_paid_minor,
        "points_paid": o.points_paid,
        "points_paid_minor": o.points_paid_minor,
        "coupon_minor": o.coupon_minor,
        "tier_qualifying_minor": o.qualifying_minor - o.qualifying_refunded_minor,
        "status": o.status,
        "points": OrderPoints(
            earned=o.points_earned,
            status=state.status,
            open=state.open,
            expired=state.expired,
            available_at=o.available_at,
            breakdown=o.breakdown,
            clawed_back=o.points_clawed,
            paid_restored=o.points_paid_restored,
        ),
        "refunded_minor": o.refunded_minor,
        "programme_version": o.programme_version,
    }


def summary_out(session: Session, o: Order) -> OrderSummary:
    return OrderSummary(**_summary_fields(session, o))


def detail_out(session: Session, o: Order, written: Recorded | None = None) -> OrderDetail:
    """The order's answer; ``written``: the order just recorded, answered from what was
    written (its lines, its lot, no returns yet) instead of read back."""
    if written is not None and written.lines is not None:
        order_lines: list[OrderLine] = list(written.lines)
        order_returns: list[OrderReturn] = []
        state = _fresh_state(written.lot) if o.points_earned else PointsState("none", 0, 0)
    else:
        order_lines, order_returns, state = lines(session, o.id), returns(session, o.id), None
    return OrderDetail(
        **_summary_fields(session, o, state),
        lines=[
            OrderLineOut(
                line_no=ln.line_no,
                sku=ln.sku,
                category=ln.category,
                quantity=ln.quantity,
                unit_price_minor=ln.unit_price_minor,
                discount_minor=ln.discount_minor,
                net_minor=ln.net_minor,
                returned_quantity=ln.returned_quantity,
                points=int(o.line_points.get(str(ln.line_no), 0)),
            )
            for ln in order_lines
        ],
        returns=[return_out(r) for r in order_returns],
    )


def _fresh_state(lot: PointsLot | None) -> PointsState | None:
    """The points state of a lot written in this transaction: nothing taken from it yet
    unless it was expired at once (a back-dated order), then ask the ledger (None)."""
    if lot is None or lot.status not in ("pending", "available") or lot.remaining != lot.points:
        return None
    return PointsState(LOT_STATUS.get(lot.status, lot.status), lot.remaining, 0)


def record_view(session: Session, actor: Actor, data: OrderCreate) -> tuple[bool, OrderDetail]:
    """Record (or find the same order again): whether it was created, and the order."""
    rec = record(session, actor, data)
    return rec.created, detail_out(session, rec.order, rec)


def detail_view(session: Session, actor: Actor, order_id: int) -> OrderDetail:
    return detail_out(session, get(session, actor, order_id))


def list_view(
    session: Session,
    actor: Actor,
    *,
    member_id: int | None,
    store: str | None,
    after: int | None,
    limit: int,
) -> OrderPage:
    rows = list_orders(session, actor, member_id=member_id, store=store, after=after, limit=limit)
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return OrderPage(items=[summary_out(session, o) for o in rows], next_cursor=nxt)


def return_view(
    session: Session, actor: Actor, order_id: int, data: ReturnCreate
) -> tuple[bool, ReturnAnswer]:
    """Record (or find the same return again): whether it was created, and the return."""
    res = record_return(session, actor, order_id, data)
    answer = ReturnAnswer(
        **return_out(res.ret).model_dump(), order=detail_view(session, actor, order_id)
    )
    return res.created, answer


def dry_run_view(session: Session, actor: Actor, data: DryRunIn) -> DryRunOut:
    version, res = dry_run(session, actor, data)
    return DryRunOut(
        programme_version=version,
        points=res.points,
        earnable_minor=res.earnable_minor,
        breakdown=[
            DryRunItem(rule=b.rule, points=b.points, lines=list(b.lines), description=b.description)
            for b in res.breakdown
        ],
        line_points={str(k): v for k, v in res.line_points.items()},
        conditions=[
            DryRunCondition(
                rule=c.rule, name=c.name, passed=c.passed, explanation=c.explanation.as_data()
            )
            for c in res.conditions
        ],
    )


# --- journeys (issue 14): order history read by journeys and experiment readouts ---


def history(session: Session, member_id: int) -> tuple[int, datetime | None]:
    """How many orders the member has, and when the last one occurred."""
    n, last = session.execute(
        select(func.count(Order.id), func.max(Order.occurred_at)).where(
            Order.member_id == member_id
        )
    ).one()
    return int(n or 0), as_utc(last) if last is not None else None


def last_order_between(session: Session, start: datetime, end: datetime) -> list[int]:
    """Members whose last order occurred in [start, end), by id."""
    last = func.max(Order.occurred_at)
    q = (
        select(Order.member_id)
        .where(Order.member_id.is_not(None))
        .group_by(Order.member_id)
        .having(last >= start, last < end)
        .order_by(Order.member_id)
    )
    return [m for m in session.scalars(q) if m is not None]


def paid_between(
    session: Session, member_ids: list[int], start: datetime, end: datetime
) -> list[tuple[int, datetime, int]]:
    """(member, occurred_at, amount paid) of the members' orders in [start, end)."""
    out: list[tuple[int, datetime, int]] = []
    for i in range(0, len(member_ids), 500):
        chunk = member_ids[i : i + 500]
        q = (
            select(Order.member_id, Order.occurred_at, Order.amount_paid_minor)
            .where(Order.member_id.in_(chunk), Order.occurred_at >= start, Order.occurred_at < end)
            .order_by(Order.id)
        )
        out += [(m, as_utc(t), int(a)) for m, t, a in session.execute(q) if m is not None]
    return out


# --- many orders at once (bulk import, issue 13 item 5) -------------------------------------
#
# ``record_many`` records a batch of orders with the rules of ``record`` (the same checks,
# the same pure earn engine ``evaluate_order`` with the same context: tier at the order's
# time, points earned that local day and ever, the programme version in force at the
# order's date) but writes set-based: one multi-row INSERT each for orders, lines, ledger
# entries (hash-chained per account, in order), lots, events and audit rows, one UPDATE
# per account. Accounts are locked together in id order. Whatever the fast path does not
# model goes through ``record`` one order at a time, all orders of an account together so
# that caps see them in order: shared accounts, debt, lots already past expiry, points
# that expire on arrival, orders at or after the member's last tier change, coupons,
# points paid, identities instead of ids, lines that sell a pass, members who have held a
# pass; and every order when fraud rules or member-fact conditions are in play.


@dataclass
class _Row:
    i: int
    data: OrderCreate
    at: datetime
    version: int
    programme: Programme
    member: Member | None = None
    acct: ledger.Account | None = None
    expires: datetime | None = None
    avail: datetime | None = None


def _check_currency(current: Programme, data: OrderCreate) -> None:
    if data.currency != current.currency:
        raise InvalidOrder(
            f"The programme runs in {current.currency}.",
            [FieldError("currency", f"must be {current.currency}", "currency_mismatch")],
        )


def _table(model: Any) -> Table:
    """The Core table of a model: multi-row INSERTs without the ORM's bookkeeping."""
    return cast(Table, model.__table__)


def _fast_programme(programme: Programme) -> bool:
    return not member_facts_needed(programme.condition_fields())


def record_many(
    session: Session,
    actor: Actor,
    items: Sequence[OrderCreate],
    labels: Sequence[str] | None = None,
    *,
    programme_version: int | None = None,
) -> list[bool]:
    """Record many orders (each once per store and external id) in the caller's
    transaction; answers per order whether it was new. An order that ``record`` would
    refuse raises the same error (``labels[i]`` prefixed to its detail).
    ``programme_version``: every order earns under that stored version (see ``record``)."""
    require(actor, ORDER_WRITE)
    now = utcnow()
    current_version, current = programmes.active(session)

    def where(i: int, exc: LoyalistError) -> LoyalistError:
        if labels is not None:
            exc.detail = f"{labels[i]}: {exc.detail}"
        return exc

    rows: list[_Row] = []
    chosen: tuple[int, Programme] | None = None
    for i, data in enumerate(items):
        at = to_utc(data.occurred_at)
        try:
            _check_currency(current, data)
            _check_when(current, at, now, "occurred_at")
            _check_paid(current, data)
        except LoyalistError as exc:
            raise where(i, exc) from None
        if programme_version is None:
            version, programme = programmes.in_force_at(session, at)
        else:  # one parse for the whole batch
            chosen = chosen or _earning_version(session, at, programme_version)
            version, programme = chosen
        rows.append(_Row(i, data, at, version, programme))
    created = [False] * len(items)
    fast_ok = (
        _fast_programme(current)
        and all(_fast_programme(r.programme) for r in rows)
        and not fraud.rules_published(session)
    )
    slow: list[_Row] = [] if fast_ok else list(rows)
    fast: list[_Row] = list(rows) if fast_ok else []
    if fast:
        fast, more_slow = _fast_rows(session, actor, fast, now)
        slow_ids = {r.i for r in more_slow}
        slow = [r for r in rows if r.i in slow_ids]
    if fast:
        for i in _write_fast(session, actor, fast, now, current, current_version, where):
            created[i] = True
    for r in slow:
        try:
            chosen_kw = (
                {} if programme_version is None else {"programme_version": programme_version}
            )
            created[r.i] = record(session, actor, r.data, **chosen_kw).created
        except LoyalistError as exc:
            raise where(r.i, exc) from None
    return created


def _fast_rows(
    session: Session, actor: Actor, rows: list[_Row], now: datetime
) -> tuple[list[_Row], list[_Row]]:
    """Split the rows: those the set-based writer models, and those for ``record`` (all the
    rows of an account on the same side). Locks the fast rows' accounts in id order."""
    slow_members: set[int] = set()
    slow_rows: set[int] = set()
    seen: set[tuple[str, str]] = set()
    member_ids: set[int] = set()
    for r in rows:
        d = r.data
        key = (d.store, d.external_id)
        sells_pass = any(r.programme.pass_offer(ln.sku) is not None for ln in d.lines)
        if key in seen or d.coupons or d.points_paid or d.member_identity is not None or sells_pass:
            slow_rows.add(r.i)  # a repeat in the batch: a replay of the first, by ``record``
            if d.member_id is not None:
                slow_members.add(d.member_id)
        seen.add(key)
        if d.member_id is not None:
            member_ids.add(d.member_id)
        r.expires = lots.expires_at(r.programme.points.expiry, r.programme.tz, r.at)
        r.avail = lots.available_at(r.programme.points.pending_days, r.programme.tz, r.at)
    found = {
        m.id: m for m in session.scalars(select(Member).where(Member.id.in_(sorted(member_ids))))
    }
    # a member who has ever held a pass earns with its multiplier (and may hold it again):
    # ``record`` decides per order
    holders = set(
        session.scalars(
            select(MemberPass.member_id)
            .where(MemberPass.member_id.in_(sorted(member_ids)))
            .distinct()
        )
    )
    slow_members |= holders
    for r in rows:
        mid = r.data.member_id
        if mid is None:
            continue
        m = found.get(mid)
        if m is None or not actor.sees(m.org_path):
            slow_members.add(mid)  # ``record`` answers: unknown member
            continue
        r.member = m
        if r.at >= as_utc(m.tier_since) or (r.expires is not None and r.expires <= now):
            slow_members.add(mid)
    accounts = ledger.lock_for_bulk(session, sorted(member_ids - slow_members), now)
    if accounts and not is_sqlite(session):
        _refresh_locked_members(session, found, sorted(accounts))
    for r in rows:
        if r.member is not None and r.member.id not in slow_members:
            acct = accounts.get(r.member.id)
            if acct is None:
                slow_members.add(r.member.id)  # shared, in debt, or lots overdue
            elif r.member.status == members.MERGED:
                slow_members.add(r.member.id)  # merged (before or while the batch waited)
            else:
                r.acct = acct
    fast: list[_Row] = []
    slow: list[_Row] = []
    for r in rows:
        mid = r.data.member_id
        (slow if r.i in slow_rows or (mid is not None and mid in slow_members) else fast).append(r)
    return fast, slow


_MEMBER_ID = cast(Table, Member.__table__).c.id


def _refresh_locked_members(session: Session, found: dict[int, Member], ids: list[int]) -> None:
    """PostgreSQL (branch races): the members of the accounts just locked were read before
    the batch waited for the locks; their :data:`_LOCKED_MEMBER` columns, which a
    transaction holding an account's lock may have changed meanwhile (an order's tier
    upgrade, a merge), are read again under the locks, as ``record``'s read after the lock
    does (one statement per 1,000 members). SQLite: the transaction holds the write lock
    from its start, nothing to read again."""
    for k in range(0, len(ids), 1000):
        q = select(_MEMBER_ID, *_LOCKED_MEMBER).where(_MEMBER_ID.in_(ids[k : k + 1000]))
        for mid, *values in session.execute(q):
            _refresh_member(found[mid], values)


def _write_fast(
    session: Session,
    actor: Actor,
    rows: list[_Row],
    now: datetime,
    current: Programme,
    current_version: int,
    where: Callable[[int, LoyalistError], LoyalistError],
) -> list[int]:
    """Write the fast rows (accounts locked); answers the positions of the new orders."""
    stores: dict[str, Any] = {}
    for r in rows:
        if r.data.store not in stores:
            stores[r.data.store] = org.open_store_in_scope(session, actor, r.data.store)
    pairs = {(stores[r.data.store].id, r.data.external_id) for r in rows}
    existing: dict[tuple[int, str], Order] = {}
    plist = sorted(pairs)
    for k in range(0, len(plist), 500):
        q = select(Order).where(tuple_(Order.store_id, Order.external_id).in_(plist[k : k + 500]))
        for o in session.scalars(q):
            existing[(o.store_id, o.external_id)] = o
    new: list[_Row] = []
    for r in rows:
        found = existing.get((stores[r.data.store].id, r.data.external_id))
        if found is not None:
            try:
                _replay(actor, found, r.data, r.member)  # raises on different content
            except LoyalistError as exc:
                raise where(r.i, exc) from None
        else:
            new.append(r)
    if not new:
        return []
    lifetime: dict[int, int] = {}
    with_member = [r for r in new if r.member is not None]
    tiers_then = tiers.tiers_at(session, [(r.member, r.at) for r in with_member if r.member])
    tier_of = {r.i: t for r, t in zip(with_member, tiers_then, strict=True)}
    # points earned on each (member, local day) before this batch, then as it goes
    days: dict[tuple[int, Any], int] = {}
    windows: dict[tuple[datetime, datetime], set[int]] = {}
    day_of: dict[int, tuple[int, Any]] = {}
    for r in with_member:
        assert r.member is not None
        day = local_day(r.programme.tz, r.at)
        start = start_of_local_day(r.programme.tz, day)
        end = start_of_local_day(r.programme.tz, day + timedelta(days=1))
        windows.setdefault((start, end), set()).add(r.member.id)
        day_of[r.i] = (r.member.id, (start, end))
    for (start, end), mids in windows.items():
        ids = sorted(mids)
        for k in range(0, len(ids), 1000):
            qd = (
                select(Order.member_id, func.coalesce(func.sum(Order.points_earned), 0))
                .where(
                    Order.member_id.in_(ids[k : k + 1000]),
                    Order.occurred_at >= start,
                    Order.occurred_at < end,
                )
                .group_by(Order.member_id)
            )
            for mid, total in session.execute(qd):
                days[(int(mid or 0), (start, end))] = int(total or 0)
    order_rows: list[dict[str, Any]] = []
    line_rows: list[list[dict[str, Any]]] = []
    earned: list[tuple[_Row, int, EarnResult | None]] = []
    for r in new:
        data = r.data
        store = stores[data.store]
        result: EarnResult | None = None
        if r.member is not None:
            assert r.acct is not None
            aid = r.acct.row.id
            key = day_of[r.i]
            ctx = EarnContext(
                tier_code=_tier_for(r.programme, tier_of[r.i]),
                earned_today=days.get(key, 0),
                earned_lifetime=lifetime.get(aid, r.acct.row.lifetime_earned),
                facts={},
                pass_code=None,
            )
            result = evaluate_order(r.programme, _order_input(data, r.at), ctx)
            days[key] = days.get(key, 0) + result.points
            lifetime[aid] = ctx.earned_lifetime + result.points
        points = result.points if result else 0
        earned.append((r, points, result))
        gross = data.net_minor()
        order_rows.append(
            {
                "external_id": data.external_id,
                "member_id": r.member.id if r.member else None,
                "store_id": store.id,
                "org_path": store.path,
                "channel": data.channel,
                "occurred_at": r.at,
                "currency": data.currency,
                "gross_minor": gross,
                "amount_paid_minor": data.amount_paid_minor,
                "points_paid": data.points_paid,
                "points_paid_minor": data.points_paid_minor
                if data.points_paid_minor is not None
                else min(
                    order_rules.points_money(
                        data.points_paid, current.points.value_minor_per_100_points
                    ),
                    max(gross - data.coupon_minor - data.amount_paid_minor, 0),
                ),
                "coupon_minor": data.coupon_minor,
                "qualifying_minor": order_rules.qualifying_minor(
                    data.amount_paid_minor,
                    [ln.quantity * ln.unit_price_minor - ln.discount_minor for ln in data.lines],
                    [ln.category for ln in data.lines],
                    current.tiers.excluded_categories,
                ),
                "qualifying_refunded_minor": 0,
                "points_earned": points,
                "line_points": {
                    str(k): v for k, v in (result.line_points if result else {}).items()
                },
                "breakdown": [_item(b) for b in result.breakdown] if result else [],
                "refunded_minor": 0,
                "points_clawed": 0,
                "points_paid_restored": 0,
                "status": "recorded",
                "programme_version": r.version if r.member else None,
                "available_at": r.avail if points else None,
                "created_at": now,
            }
        )
        line_rows.append(_line_values(data))
    order_ids = bulk.insert_rows(session, _table(Order), order_rows, ids=True)
    bulk.insert_rows(
        session,
        _table(OrderLine),
        [
            {**ln, "order_id": oid}
            for oid, lns in zip(order_ids, line_rows, strict=True)
            for ln in lns
        ],
    )
    credits = [
        ledger.BulkCredit(
            account=r.acct,
            points=points,
            cause=ledger.Cause(
                source_type="order",
                source_id=str(oid),
                actor=actor.name,
                reason=f"order {r.data.external_id}",
                programme_version=r.version,
                details={"breakdown": orow["breakdown"]},
                occurred_at=r.at,
            ),
            earned_at=r.at,
            available_at=r.avail,
            expires_at=r.expires,
            dedupe_key=f"order:{oid}:earn",
        )
        for (r, points, _res), oid, orow in zip(earned, order_ids, order_rows, strict=True)
        if points > 0 and r.acct is not None and r.avail is not None
    ]
    earned_events = iter(ledger.credit_many(session, credits))
    audit.record_many(
        session,
        actor,
        [
            (
                "order.record",
                "order",
                oid,
                orow["org_path"],
                {
                    "external_id": orow["external_id"],
                    "member_id": orow["member_id"],
                    "amount_paid_minor": orow["amount_paid_minor"],
                    "points_earned": orow["points_earned"],
                    "points_paid": orow["points_paid"],
                },
            )
            for oid, orow in zip(order_ids, order_rows, strict=True)
        ],
    )
    items: list[ledger.EventItem] = []
    for (r, points, _res), oid, orow in zip(earned, order_ids, order_rows, strict=True):
        if points > 0 and r.acct is not None:
            items.append(next(earned_events))  # as ``record``: points.earned, then the order
        items.append(
            (
                "order.recorded",
                {
                    "order_id": oid,
                    "external_id": orow["external_id"],
                    "member_id": orow["member_id"],
                    "store": r.data.store,
                    "amount_paid_minor": orow["amount_paid_minor"],
                    "currency": orow["currency"],
                    "points_earned": orow["points_earned"],
                    "points_paid": orow["points_paid"],
                },
                orow["member_id"],
                orow["org_path"],
            )
        )
    events.emit_many(session, items)
    members_seen = {r.member.id: r.member for r in with_member if r.member is not None}
    tiers.upgrade_many_if_qualified(
        session, list(members_seen.values()), current, current_version, now
    )
    return [r.i for r in new]
