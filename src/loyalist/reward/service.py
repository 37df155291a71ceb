"""The rewards catalogue, redemption and its cancellation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from loyalist.access.permissions import (
    REDEMPTION_CANCEL,
    REDEMPTION_COLLECT,
    REDEMPTION_CREATE,
    REWARD_STOCK,
    require,
)
from loyalist.audit import service as audit
from loyalist.coupon import service as coupons
from loyalist.errors import FieldError, Forbidden, ValidationFailed
from loyalist.events import service as events
from loyalist.fraud import service as fraud
from loyalist.kit import conditions
from loyalist.kit.actor import Actor
from loyalist.kit.clock import as_utc, utcnow
from loyalist.kit.db import is_sqlite
from loyalist.kit.localtime import start_of_local_day
from loyalist.kit.pagination import encode_cursor
from loyalist.kit.rows import written
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.models import LedgerEntry, Member, Redemption, Reward, RewardQuote, RewardUsage
from loyalist.order import service as orders
from loyalist.org import service as org
from loyalist.passes import service as passes
from loyalist.programme import service as programmes
from loyalist.programme.conditions import time_facts
from loyalist.programme.schemas import Programme
from loyalist.programme.schemas import Reward as RewardSpec
from loyalist.reward import domain
from loyalist.reward.errors import (
    AlreadyCancelled,
    AlreadyCollected,
    LimitReached,
    OutOfStock,
    PassRequired,
    QuoteExpired,
    QuoteMismatch,
    QuoteNotFound,
    RedemptionCancelled,
    RedemptionCollected,
    RedemptionExpired,
    RedemptionNotFound,
    RewardNotAvailable,
    RewardNotFound,
    TierNotAllowed,
)
from loyalist.reward.schemas import (
    PriceOut,
    PriceRuleOut,
    QuoteCreate,
    QuoteOut,
    RedemptionCancel,
    RedemptionCreate,
    RedemptionOut,
    RedemptionPage,
    RewardCatalogue,
    RewardOut,
    RewardStockOut,
)


def catalogue(session: Session, *, active_only: bool = True) -> list[Reward]:
    q = select(Reward).order_by(Reward.points, Reward.code)
    if active_only:
        q = q.where(Reward.active.is_(True))
    return list(session.scalars(q))


def get_reward(session: Session, code: str) -> Reward:
    r = session.scalar(select(Reward).where(Reward.code == code))
    if r is None or not r.active:
        raise RewardNotFound(
            f"No reward {code!r}.", [FieldError("reward", "unknown reward", "unknown_reward")]
        )
    return r


def _tier_ok(programme: Programme, member_tier: str, min_tier: str | None) -> bool:
    if min_tier is None:
        return True
    codes = [t.code for t in programme.tiers.levels]
    if member_tier not in codes or min_tier not in codes:
        return False
    return codes.index(member_tier) >= codes.index(min_tier)


@dataclass(frozen=True)
class Eligibility:
    reward: Reward
    ok: bool
    reason: str | None
    points: int = 0  # the member's unit price now (the base, or the dynamic price)


def eligibility(
    session: Session, programme: Programme, member: Member, reward: Reward, available: int
) -> Eligibility:
    now = utcnow()
    need = price(session, programme, reward, member, now).points
    if reward.valid_from and now < reward.valid_from:
        return Eligibility(reward, False, "not_yet_valid", need)
    if reward.valid_until and now >= reward.valid_until:
        return Eligibility(reward, False, "expired", need)
    if not _tier_ok(programme, member.tier_code, reward.min_tier):
        return Eligibility(reward, False, "tier_not_allowed", need)
    holders_of = passes.exclusive_holder_needed(programme, reward.code)
    if holders_of and not passes.holds_any(session, member.id, holders_of, now):
        return Eligibility(reward, False, "pass_required", need)
    if reward.stock_remaining is not None and reward.stock_remaining <= 0:
        return Eligibility(reward, False, "out_of_stock", need)
    if reward.per_member_limit is not None:
        used = session.scalar(
            select(RewardUsage.used).where(
                RewardUsage.member_id == member.id, RewardUsage.reward_id == reward.id
            )
        )
        if (used or 0) >= reward.per_member_limit:
            return Eligibility(reward, False, "limit_reached", need)
    if available < need:
        return Eligibility(reward, False, "insufficient_points", need)
    return Eligibility(reward, True, None, need)


def redeem(session: Session, actor: Actor, data: RedemptionCreate) -> Redemption:
    """Redeem a reward: checks validity, tier, limit and stock; spends points FEFO."""
    return _redeem(session, actor, data)[0]


def _redeem(session: Session, actor: Actor, data: RedemptionCreate) -> tuple[Redemption, Reward]:
    """:func:`redeem`, and the reward it redeemed (its answer shows the code: held here, the
    row is not read again once the caller's reference was the only one, issue 11)."""
    require(actor, REDEMPTION_CREATE)
    now = utcnow()
    folded = _locked_reads(session, actor, data)
    if folded is None:  # one by one, as before: whatever the one statement did not settle
        member = members.get(session, actor, data.member_id)
        store = org.open_store_in_scope(session, actor, data.store) if data.store else None
        version, programme = programmes.active(session)
        reward = get_reward(session, data.reward)
        now = utcnow()
    else:
        member, reward, acct, reads = folded
        store = org.open_store_in_scope(session, actor, data.store) if data.store else None
        version, programme = programmes.active(session)
    if (reward.valid_from and now < reward.valid_from) or (
        reward.valid_until and now >= reward.valid_until
    ):
        raise RewardNotAvailable(f"Reward {reward.code!r} cannot be redeemed now.")
    if not _tier_ok(programme, member.tier_code, reward.min_tier):
        raise TierNotAllowed(
            f"Reward {reward.code!r} needs tier {reward.min_tier} or higher.",
            extra={"min_tier": reward.min_tier, "member_tier": member.tier_code},
        )
    holders_of = passes.exclusive_holder_needed(programme, reward.code)
    if holders_of and not passes.holds_any(session, member.id, holders_of, now):
        raise PassRequired(
            f"Reward {reward.code!r} is for holders of {', '.join(holders_of)} only.",
            extra={"passes": holders_of},
        )
    if folded is None:
        acct = ledger.lock(session, member.id, member.org_path)
        fraud.ensure_not_frozen(session, member.id)  # fraud controls (issue 13)
    else:
        fraud.raise_if_frozen(member.id, reads.frozen)  # read under the lock
    if data.quote_id is None and _dynamic(programme, reward):
        # A dynamic price reads the stock and the recent demand: read them under the reward
        # row's lock, the lock the stock update below takes anyway, so concurrent
        # redemptions are priced one after the other (each from the stock the one before
        # left), never from a stock read before another committed.
        reward = _locked(session, reward.id)
    # The unit price (fixed, quoted or dynamic) as the catalogue stands before this redemption.
    unit, quote_id, pricing = _unit_price(session, programme, reward, member, data.quote_id, now)
    q = data.quantity
    if reward.per_member_limit is not None:
        # The member's row lock serialises this member; the conditional update is a
        # second guard that never lets the count pass the limit. Not read first (speed,
        # issue 11): updated in place, inserted (q within the limit) when it is the first.
        params = {"usage_member": member.id, "usage_reward": reward.id, "q": q}
        res = session.execute(_BUMP_USAGE_WITHIN, {**params, "limit": reward.per_member_limit})
        if res.rowcount != 1 and (  # type: ignore[attr-defined]
            q > reward.per_member_limit or not _first_usage(session, params)
        ):
            raise LimitReached(
                f"At most {reward.per_member_limit} of {reward.code!r} per member.",
                extra={"limit": reward.per_member_limit},
            )
    else:
        _bump_usage(session, member.id, reward.id, q)
    if reward.stock_remaining is not None:
        res = session.execute(
            update(Reward)
            .where(Reward.id == reward.id, Reward.stock_remaining >= q)
            .values(stock_remaining=Reward.stock_remaining - q)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise OutOfStock(f"Reward {reward.code!r} is out of stock.")
    points = unit * q
    checked = fraud.check(
        session,
        kind="redemption",
        member_id=member.id,
        device_id=data.device_id,
        store_id=store.id if store else None,
        points=points,
        amount_minor=reward.cash_minor * q,
    )
    # The redemption's id is taken first (with its counter code's check, one statement) so
    # that its ledger entry is written once with its source and dedupe key (issue 11).
    # A stocked reward's redemptions are serialised by its row (the stock update above):
    # their ids are drawn under that lock, so ids follow the order the stock was taken in
    # (the id read with the account's lock may come before another member's; burned then).
    if folded is not None and reads.code_taken is None and reward.stock_remaining is None:
        rid, code = reads.rid, reads.code
    else:
        rid, code = _new_id_and_code(session)
    row: dict[str, Any] = {
        "id": rid,
        "member_id": member.id,
        "reward_id": reward.id,
        "store_id": store.id if store else None,
        "org_path": store.path if store else member.org_path,
        "quantity": q,
        "points": points,
        "cash_minor": reward.cash_minor * q,
        "currency": programme.currency,
        "status": "completed",
        "entry_id": 0,
        "cancel_entry_id": None,
        "cancel_reason": None,
        "created_at": now,
        "cancelled_at": None,
        "code": code,
        "expires_at": domain.collect_until(
            now, reward.collect_within_days, ZoneInfo(programme.timezone)
        ),
        "collected_at": None,
        "collected_by": None,
        "quote_id": quote_id,
        "pricing": pricing,
    }
    # speed (issue 11): the entry, its lots, the redemption and the audit row are Core
    # statements (no unit of work), the two events one multi-row INSERT at the block's end
    with events.batched(session):
        entry = ledger.debit(
            session,
            acct,
            points,
            ledger.Cause(
                source_type="redemption",
                source_id=str(rid),
                actor=actor.name,
                reason=f"redeemed {q} × {reward.name}",
                programme_version=version,
            ),
            kind="redeem",
            dedupe_key=f"redemption:{rid}:redeem",
            core=True,
        )
        row["entry_id"] = entry.id
        # written once, as it is answered: the object is not the session's (nothing in
        # this transaction changes it; a later read through the session loads the row)
        session.connection().execute(_INSERT_REDEMPTION, row)
        redemption = written(Redemption, row)  # as the order's: no instrumented constructor
        fraud.settle(
            session,
            checked,
            source_id=rid,
            member_id=member.id,
            org_path=redemption.org_path,
            lot=None,
        )
        spec = next((x for x in programme.rewards if x.code == reward.code), None)
        if spec is not None and spec.coupon_template:  # coupons (issue 12): one per unit
            coupons.issue_for_redemption(session, actor, spec.coupon_template, member, rid, q)
        if reward.stock_remaining is not None:  # the stock the update above left
            session.refresh(reward)
        events.emit(
            session,
            "redemption.created",
            {
                "redemption_id": rid,
                "member_id": member.id,
                "reward": reward.code,
                "quantity": q,
                "points": points,
                "cash_minor": redemption.cash_minor,
            },
            member_id=member.id,
            org_path=member.org_path,
        )
        audit.write(
            session,
            actor,
            "redemption.create",
            "redemption",
            rid,
            org_path=redemption.org_path,
            after={
                "member_id": member.id,
                "reward": reward.code,
                "quantity": q,
                "points": points,
                "status": redemption.status,
                **({"quote_id": quote_id, "price": pricing["reason"]} if pricing else {}),
            },
        )
    return redemption, reward


_INSERT_REDEMPTION = insert(cast(Table, Redemption.__table__))  # built once (speed, issue 11)


@dataclass(frozen=True)
class _Reads:
    """What a redemption reads under the member's account lock besides its three rows (see
    :func:`_locked_reads`): the freeze, and the redemption's id with its code's check."""

    frozen: str | None  # the freeze's reason (fraud.freeze_reason_column); None: not frozen
    rid: int  # the redemption's id (PostgreSQL: nextval; SQLite: max + 1, as _new_id_and_code)
    code: str  # its counter code
    code_taken: int | None  # the redemption holding that code already (then asked again)


def _locked_reads(
    session: Session, actor: Actor, data: RedemptionCreate
) -> tuple[Member, Reward, ledger.Account, _Reads] | None:
    """The member, the reward and the member's account, locked, in one statement (speed,
    issue 11, branch redeemfold; as the order path's ``_store_member_account``), with the
    membership, the freeze and the redemption's id and code: SQLite in the locking
    statement (its transaction holds the write lock from its start), PostgreSQL in one
    statement right after it (the locking statement's snapshot predates its wait for the
    lock: attach, detach, ``set_can_spend`` and a freeze change none of the rows it locks).
    The lock is the one ``ledger.lock`` takes (the account row, before any other row of
    the redemption: the usage and the reward's stock come after, as before). None: asked
    again one by one (a missing, merged or out-of-scope member, an unknown or inactive
    reward, a member who moved to another account), which answers the errors."""
    ledger.prepare_lock(session, Member, Reward)  # the read below reloads all three
    sqlite = is_sqlite(session)
    code = domain.new_code()
    params = {"member_id": data.member_id, "reward": data.reward, "code": code}
    row = session.execute(_LOCKING_READ_SQLITE if sqlite else _LOCKING_READ, params).first()
    if row is None:
        return None
    member, reward, account, *rest = row
    if not sqlite:  # columns only: Core on the session's connection, no ORM layer
        rest = list(session.connection().execute(_AFTER_LOCK_READ, params).one())
    account_id, can_spend, frozen, rid, code_taken = rest
    if not reward.active or not actor.sees(member.org_path):
        return None
    acct = ledger.adopt_lock(
        session,
        account,
        member.id,
        member.org_path,
        utcnow(),
        True,  # lots_due not read: the debit reads the available lots and expires the due
        membership_read=(account_id, can_spend),
    )
    if acct is None:
        return None
    return member, reward, acct, _Reads(frozen, int(rid), code, code_taken)


def _locked_columns(member_id: Any, sqlite: bool) -> tuple[Any, ...]:
    """:func:`_locked_reads`'s columns of ``member_id`` (a column or a bound parameter)."""
    account_id, can_spend = ledger.membership_columns(member_id)
    next_id = _NEXT_ID_SQLITE_COLUMN if sqlite else _NEXT_ID_COLUMN
    return account_id, can_spend, fraud.freeze_reason_column(member_id), next_id, _CODE_TAKEN


def _locking_read(postgres: bool) -> Any:
    account, _due, joined = ledger.locking_columns(postgres)
    q = (  # three rows by their keys, joined (no cartesian product to warn about)
        select(Member, Reward, account)
        .select_from(Member)
        .join(Reward, Reward.code == bindparam("reward"))
        .join(account, joined)
        .where(Member.id == bindparam("member_id"), Member.status != members.MERGED)
        .execution_options(populate_existing=True)
    )
    if postgres:
        return q.with_for_update(of=account)
    return q.add_columns(*_locked_columns(Member.id, True))


# ── dynamic pricing (issue 15, item 5) ─────────────────────────────────────────────────
def _spec(programme: Programme, code: str) -> RewardSpec | None:
    return next((x for x in programme.rewards if x.code == code), None)


def demand(session: Session, reward_id: int, days: int, at: datetime) -> int:
    """Units of a reward redeemed (and not cancelled) in the ``days`` days before ``at``."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Redemption.quantity), 0)).where(
                Redemption.reward_id == reward_id,
                Redemption.status == "completed",
                Redemption.created_at >= at - timedelta(days=days),
                Redemption.created_at <= at,
            )
        )
        or 0
    )


def price(
    session: Session,
    programme: Programme,
    reward: Reward,
    member: Member | None,
    at: datetime,
) -> domain.Price:
    """The reward's unit price at ``at`` (for ``member``: rules with ``when:`` need one)."""
    spec = _spec(programme, reward.code)
    pricing = spec.pricing if spec is not None else None
    if pricing is None:
        return domain.price(None, domain.PriceInputs(reward.points, None, None))
    days = {r.demand_days for r in pricing.rules if r.demand_at_least is not None}
    matched: dict[str, bool] = {}
    with_when = [r for r in pricing.rules if r.when is not None]
    if member is not None and with_when:
        ctx: dict[str, Any] = {
            **orders.member_facts(session, programme, member, at),
            **time_facts(programme.tz, at),
            "member.tier": member.tier_code,
        }
        for rule in with_when:
            cond = programme.condition(f"pricing:{reward.code}:{rule.code}")
            matched[rule.code] = cond is not None and conditions.evaluate(cond, ctx)
    return domain.price(
        pricing,
        domain.PriceInputs(
            base_points=reward.points,
            stock_remaining=reward.stock_remaining,
            stock_total=reward.stock_total,
            demand={d: demand(session, reward.id, d, at) for d in days},
            member_match=matched,
        ),
    )


def _dynamic(programme: Programme, reward: Reward) -> bool:
    spec = _spec(programme, reward.code)
    return spec is not None and spec.pricing is not None


def _locked(session: Session, reward_id: int) -> Reward:
    """The reward row, read again under ``SELECT … FOR UPDATE`` (SQLite: the transaction
    already holds the database's write lock)."""
    row = session.scalar(
        select(Reward)
        .where(Reward.id == reward_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def _unit_price(
    session: Session,
    programme: Programme,
    reward: Reward,
    member: Member,
    quote_id: int | None,
    now: datetime,
) -> tuple[int, int | None, dict[str, Any] | None]:
    """(points per unit, the quote paid, the pricing record) of a redemption being made."""
    if quote_id is not None:
        quote = session.get(RewardQuote, quote_id)
        if quote is None:
            raise QuoteNotFound(
                f"No quote {quote_id}.", [FieldError("quote_id", "unknown quote", "unknown_quote")]
            )
        if quote.member_id != member.id or quote.reward_id != reward.id:
            raise QuoteMismatch(
                f"Quote {quote_id} is for another member or reward.",
                [FieldError("quote_id", "another member or reward", "quote_mismatch")],
            )
        if now >= as_utc(quote.valid_until):
            raise QuoteExpired(
                f"Quote {quote_id} expired at {as_utc(quote.valid_until).isoformat()}.",
                extra={"valid_until": as_utc(quote.valid_until).isoformat()},
            )
        return quote.points, quote.id, dict(quote.explanation)
    spec = _spec(programme, reward.code)
    if spec is None or spec.pricing is None:
        return reward.points, None, None
    p = price(session, programme, reward, member, now)
    return p.points, None, p.explanation()


def quote(session: Session, actor: Actor, reward_code: str, data: QuoteCreate) -> RewardQuote:
    """The member's price for one unit of the reward, held for the quote period: asking
    again while a quote is valid gives the same quote (the member's account lock keeps
    two concurrent requests to one quote)."""
    require(actor, REDEMPTION_CREATE)
    member = members.get(session, actor, data.member_id)
    version, programme = programmes.active(session)
    reward = get_reward(session, reward_code)
    ledger.lock(session, member.id, member.org_path)
    now = utcnow()
    held = session.scalar(
        select(RewardQuote)
        .where(
            RewardQuote.member_id == member.id,
            RewardQuote.reward_id == reward.id,
            RewardQuote.valid_until > now,
        )
        .order_by(RewardQuote.id.desc())
        .limit(1)
    )
    if held is not None:
        q = held
    else:
        spec = _spec(programme, reward.code)
        minutes = spec.pricing.quote_minutes if spec is not None and spec.pricing else 30
        p = price(session, programme, reward, member, now)
        q = RewardQuote(
            reward_id=reward.id,
            member_id=member.id,
            points=p.points,
            base_points=p.base_points,
            explanation=p.explanation(),
            programme_version=version,
            created_at=now,
            valid_until=now + timedelta(minutes=minutes),
        )
        session.add(q)
        session.flush()
    audit.record(
        session,
        actor,
        "reward.quote",
        "reward",
        reward.id,
        org_path=member.org_path,
        after={
            "quote_id": q.id,
            "member_id": member.id,
            "reward": reward.code,
            "points": q.points,
            "valid_until": as_utc(q.valid_until).isoformat(),
            "held": held is not None,  # the quote still valid, answered again
        },
    )
    return q


def prices_on(session: Session, day: date) -> list[tuple[Reward, domain.Price]]:
    """Dry run: every active reward's price at the start of programme-local ``day`` (for no
    particular member; stock and demand as they are now)."""
    _version, programme = programmes.active(session)
    at = max(start_of_local_day(programme.tz, day), utcnow())
    return [(r, price(session, programme, r, None, at)) for r in catalogue(session)]


def _bump_usage(session: Session, member_id: int, reward_id: int, q: int) -> None:
    """Count ``q`` more units (the member's account lock is held): the row is updated in
    place, and inserted only when this is the member's first (speed, issue 11: not read
    first)."""
    params = {"usage_member": member_id, "usage_reward": reward_id, "q": q}
    res = session.execute(_BUMP_USAGE, params)
    if res.rowcount == 0:  # type: ignore[attr-defined]
        _first_usage(session, params)


def _first_usage(session: Session, params: dict[str, Any]) -> bool:
    """Insert the member's first usage row of the reward (``used`` = ``q``) unless it exists
    (the member's account lock is held): a Core INSERT, no unit of work (speed, issue 11).
    False: the row exists (a limited reward's conditional update then refused)."""
    # RETURNING, not the rowcount: psycopg reports -1 for an INSERT … SELECT
    return session.connection().execute(_FIRST_USAGE, params).first() is not None


_BUMP_USAGE = (
    update(RewardUsage)
    .where(
        RewardUsage.member_id == bindparam("usage_member"),
        RewardUsage.reward_id == bindparam("usage_reward"),
    )
    .values(used=RewardUsage.used + bindparam("q"))
)
_BUMP_USAGE_WITHIN = _BUMP_USAGE.where(RewardUsage.used + bindparam("q") <= bindparam("limit"))
_USAGE = cast(Table, RewardUsage.__table__)
# INSERT … SELECT … WHERE NOT EXISTS: the same SQL on both databases
_FIRST_USAGE = (
    insert(_USAGE)
    .from_select(
        ["member_id", "reward_id", "used"],
        select(*(bindparam(k, type_=Integer) for k in ("usage_member", "usage_reward", "q"))).where(
            ~select(_USAGE.c.member_id)
            .where(
                _USAGE.c.member_id == bindparam("usage_member"),
                _USAGE.c.reward_id == bindparam("usage_reward"),
            )
            .exists()
        ),
    )
    .returning(_USAGE.c.member_id)
)


def get(session: Session, actor: Actor, redemption_id: int) -> Redemption:
    r = session.get(Redemption, redemption_id)
    if r is None or not actor.sees(r.org_path):
        raise RedemptionNotFound(f"No redemption {redemption_id}.")
    return r


def cancel(
    session: Session, actor: Actor, redemption_id: int, data: RedemptionCancel
) -> Redemption:
    """Cancel a redemption: points go back to the lots they came from; stock returns."""
    require(actor, REDEMPTION_CANCEL)
    r = get(session, actor, redemption_id)
    member = session.get(Member, r.member_id)
    assert member is not None
    original = session.get(LedgerEntry, r.entry_id)
    assert original is not None
    # Points go back to the account they were spent from (even if the member left it).
    acct = ledger.lock(session, member.id, member.org_path, account_id=original.account_id)
    session.refresh(r)
    if r.status == "cancelled":
        raise AlreadyCancelled(f"Redemption {r.id} was already cancelled.")
    # Conditional: a collection committed meanwhile (it takes no member lock) wins.
    res = session.execute(
        update(Redemption)
        .where(
            Redemption.id == r.id,
            Redemption.status == "completed",
            Redemption.collected_at.is_(None),
        )
        .values(status="cancelled")
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(r)
        if r.status == "cancelled":
            raise AlreadyCancelled(f"Redemption {r.id} was already cancelled.")
        raise RedemptionCollected(f"Redemption {r.id} was collected; it cannot be cancelled.")
    session.refresh(r)
    entry = ledger.restore(
        session,
        acct,
        original,
        r.points,
        ledger.Cause(
            source_type="redemption",
            source_id=str(r.id),
            actor=actor.name,
            reason=data.reason or "redemption cancelled",
        ),
        dedupe_key=f"redemption:{r.id}:cancel",
    )
    coupons.void_for_redemption(session, r.id)  # coupons (issue 12): unused ones voided
    now = utcnow()
    r.status = "cancelled"
    r.cancel_entry_id = entry.id
    r.cancel_reason = data.reason or None
    r.cancelled_at = now
    session.execute(
        update(Reward)
        .where(Reward.id == r.reward_id, Reward.stock_remaining.is_not(None))
        .values(stock_remaining=Reward.stock_remaining + r.quantity)
    )
    session.execute(
        update(RewardUsage)
        .where(RewardUsage.member_id == r.member_id, RewardUsage.reward_id == r.reward_id)
        .values(used=RewardUsage.used - r.quantity)
    )
    session.flush()
    events.emit(
        session,
        "redemption.cancelled",
        {"redemption_id": r.id, "member_id": r.member_id, "points": r.points},
        member_id=r.member_id,
        org_path=member.org_path,
    )
    audit.record(
        session,
        actor,
        "redemption.cancel",
        "redemption",
        r.id,
        org_path=r.org_path,
        before={"status": "completed"},
        after={"status": "cancelled", "reason": r.cancel_reason, "points_restored": r.points},
    )
    return r


def list_redemptions(
    session: Session, actor: Actor, *, member_id: int | None, after: int | None, limit: int
) -> list[Redemption]:
    q = select(Redemption).order_by(Redemption.id.desc()).limit(limit)
    if actor.scope_path != "/":
        q = q.where(Redemption.org_path.startswith(actor.scope_path))
    if member_id is not None:
        q = q.where(Redemption.member_id == member_id)
    if after is not None:
        q = q.where(Redemption.id < after)
    return list(session.scalars(q))


def redemptions_of_entries(session: Session, entry_ids: Sequence[int]) -> list[Redemption]:
    """The redemptions whose points these ledger entries spent (any member of the account:
    a household pool's entries are shown to each of its members)."""
    if not entry_ids:
        return []
    return list(session.scalars(select(Redemption).where(Redemption.entry_id.in_(entry_ids))))


# ── fulfilment ─────────────────────────────────────────────────────────────────────────
def _new_id_and_code(session: Session) -> tuple[int, str]:
    """A new redemption's id and a fresh counter code, in one statement (the unique
    constraint is the real guard of the code; a clash among 31^12 codes is astronomically
    unlikely, but costs nothing to avoid here). PostgreSQL: the id from the table's
    sequence. SQLite: the rowid SQLite itself would give, max + 1 (the transaction holds
    the database's write lock, ``BEGIN IMMEDIATE``)."""
    q = _NEXT_ID_SQLITE if is_sqlite(session) else _NEXT_ID
    while True:
        code = domain.new_code()
        row = session.execute(q, {"code": code}).one()
        if row[1] is None:
            return int(row[0]), code


_CODE_TAKEN = select(Redemption.id).where(Redemption.code == bindparam("code")).scalar_subquery()
_NEXT_ID_COLUMN = func.nextval(func.pg_get_serial_sequence("redemption", "id"))
_NEXT_ID_SQLITE_COLUMN = select(func.coalesce(func.max(Redemption.id), 0) + 1).scalar_subquery()
_NEXT_ID = select(_NEXT_ID_COLUMN, _CODE_TAKEN)
_NEXT_ID_SQLITE = select(_NEXT_ID_SQLITE_COLUMN, _CODE_TAKEN)
# built once per process (speed, issue 11), after the statements they use
_LOCKING_READ_SQLITE = _locking_read(False)
_LOCKING_READ = _locking_read(True)
_AFTER_LOCK_READ = select(*_locked_columns(bindparam("member_id"), False))


def state(r: Redemption) -> str:
    """cancelled | collected | expired | ready, now."""
    return domain.state(
        status=r.status, collected_at=r.collected_at, expires_at=r.expires_at, now=utcnow()
    )


def get_by_code(session: Session, actor: Actor, text: str) -> Redemption:
    """The redemption behind a typed or scanned code, in the actor's scope (else 404)."""
    code = domain.parse_code(text)
    r = (
        session.scalar(select(Redemption).where(Redemption.code == code))
        if code is not None
        else None
    )
    if r is None or not actor.sees(r.org_path):
        raise RedemptionNotFound(
            "No redemption with this code.", [FieldError("code", "unknown code", "unknown_code")]
        )
    return r


def collect(
    session: Session,
    actor: Actor,
    *,
    redemption_id: int | None = None,
    code: str | None = None,
    store: str | None = None,
) -> Redemption:
    """Mark a redemption collected at the counter, once. One conditional update decides:
    a second (or concurrent) collection, a cancelled or an expired voucher is a 409 with
    a stable code and nothing changes."""
    require(actor, REDEMPTION_COLLECT)
    if (redemption_id is None) == (code is None):
        raise ValidationFailed(
            "Give the redemption's id or its code.", [FieldError("code", "id or code")]
        )
    r = get(session, actor, redemption_id) if redemption_id is not None else None
    if r is None:
        r = get_by_code(session, actor, code or "")
    at = org.store_in_scope(session, actor, store) if store else None
    now = utcnow()
    res = session.execute(
        update(Redemption)
        .where(
            Redemption.id == r.id,
            Redemption.status == "completed",
            Redemption.collected_at.is_(None),
            (Redemption.expires_at.is_(None)) | (Redemption.expires_at > now),
        )
        .values(collected_at=now, collected_by=actor.name[:128])
        .execution_options(synchronize_session=False)
    )
    session.refresh(r)
    if res.rowcount != 1:  # type: ignore[attr-defined]
        extra = {"redemption_id": r.id}
        if r.status == "cancelled":
            raise RedemptionCancelled(f"Redemption {r.id} was cancelled.", extra=extra)
        if r.collected_at is not None:
            raise AlreadyCollected(
                f"Redemption {r.id} was already collected.",
                extra={**extra, "collected_at": r.collected_at.isoformat()},
            )
        raise RedemptionExpired(
            f"Redemption {r.id} expired.",
            extra={**extra, "expires_at": r.expires_at.isoformat() if r.expires_at else None},
        )
    reward = session.get(Reward, r.reward_id)
    events.emit(
        session,
        "redemption.collected",
        {
            "redemption_id": r.id,
            "member_id": r.member_id,
            "reward": reward.code if reward else None,
            "store": at.code if at else None,
        },
        member_id=r.member_id,
        org_path=r.org_path,
    )
    audit.record(
        session,
        actor,
        "redemption.collect",
        "redemption",
        r.id,
        org_path=r.org_path,
        before={"state": "ready"},
        after={"state": "collected", "store": at.code if at else None},
    )
    return r


MAX_TOP_UP = 1_000_000


def top_up(session: Session, actor: Actor, reward_code: str, quantity: int) -> Reward:
    """Add ``quantity`` units to a reward's stock without a new programme version: one
    conditional update (concurrent top-ups and redemptions add up exactly), audited.
    A reward with unlimited stock cannot be topped up."""
    require(actor, REWARD_STOCK)
    if isinstance(quantity, bool) or not 1 <= quantity <= MAX_TOP_UP:
        raise ValidationFailed(
            f"Top up between 1 and {MAX_TOP_UP:,} units.",
            [FieldError("quantity", f"1–{MAX_TOP_UP}", "out_of_range")],
        )
    hq = org.get_hq(session)
    if hq is None or not actor.sees(hq.path):
        raise Forbidden("Only HQ may top up stock: rewards belong to the whole brand.")
    reward = get_reward(session, reward_code)
    before = reward.stock_remaining
    res = session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.stock_remaining.is_not(None))
        .values(
            stock_total=Reward.stock_total + quantity,
            stock_remaining=Reward.stock_remaining + quantity,
            stock_added=Reward.stock_added + quantity,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise ValidationFailed(
            f"Reward {reward.code!r} has unlimited stock.",
            [FieldError("reward", "unlimited stock", "unlimited_stock")],
        )
    session.refresh(reward)
    audit.record(
        session,
        actor,
        "reward.stock",
        "reward",
        reward.id,
        org_path=hq.path,
        before={"stock_remaining": before},
        after={"stock_remaining": reward.stock_remaining, "added": quantity},
    )
    return reward


# --- Answers: the response schemas the API sends -----------------------------------------


def reward_out(r: Reward) -> RewardOut:
    return RewardOut(
        code=r.code,
        name=r.name,
        name_en=r.name_en,
        kind=r.kind,
        points=r.points,
        cash_minor=r.cash_minor,
        stock_remaining=r.stock_remaining,
        per_member_limit=r.per_member_limit,
        min_tier=r.min_tier,
        valid_from=r.valid_from,
        valid_until=r.valid_until,
        image_url=r.image_url,
        description=r.description,
    )


def _reward_code(session: Session, reward_id: int) -> str | None:
    row = session.get(Reward, reward_id)
    return row.code if row else None


def redemption_out(
    session: Session, r: Redemption, *, reward_code: str | None = None
) -> RedemptionOut:
    """The answer for a redemption; ``reward_code``: its reward's code when the caller holds
    the reward already (otherwise it is read)."""
    return RedemptionOut(
        id=r.id,
        member_id=r.member_id,
        reward=reward_code if reward_code is not None else _reward_code(session, r.reward_id),
        quantity=r.quantity,
        points=r.points,
        cash_minor=r.cash_minor,
        currency=r.currency,
        status=r.status,
        state=state(r),
        code=domain.format_code(r.code) or None,
        expires_at=r.expires_at,
        collected_at=r.collected_at,
        entry_id=r.entry_id,
        cancel_entry_id=r.cancel_entry_id,
        created_at=r.created_at,
        cancelled_at=r.cancelled_at,
        quote_id=r.quote_id,
        pricing=r.pricing,
    )


def catalogue_view(session: Session) -> RewardCatalogue:
    return RewardCatalogue(items=[reward_out(r) for r in catalogue(session)])


def redeem_view(session: Session, actor: Actor, data: RedemptionCreate) -> RedemptionOut:
    redemption, reward = _redeem(session, actor, data)
    return redemption_out(session, redemption, reward_code=reward.code)


def redeem_json(session: Session, actor: Actor, data: RedemptionCreate) -> dict[str, Any]:
    """:func:`redeem_view`'s answer in its JSON form (``model_dump(mode="json",
    by_alias=True)``), built from the values written (speed, issue 11: no response model
    to validate and dump); a price record (dynamic pricing) goes through the model."""
    r, reward = _redeem(session, actor, data)
    if r.pricing is not None:
        return redemption_out(session, r, reward_code=reward.code).model_dump(
            mode="json", by_alias=True
        )
    return {
        "id": r.id,
        "member_id": r.member_id,
        "reward": reward.code,
        "quantity": r.quantity,
        "points": r.points,
        "cash_minor": r.cash_minor,
        "currency": r.currency,
        "status": r.status,
        "state": state(r),
        "code": domain.format_code(r.code) or None,
        "expires_at": r.expires_at.isoformat() if r.expires_at is not None else None,
        "collected_at": None,
        "entry_id": r.entry_id,
        "cancel_entry_id": None,
        "created_at": r.created_at.isoformat(),
        "cancelled_at": None,
        "quote_id": r.quote_id,
        "pricing": None,
    }


def redemption_view(session: Session, actor: Actor, redemption_id: int) -> RedemptionOut:
    return redemption_out(session, get(session, actor, redemption_id))


def cancel_view(
    session: Session, actor: Actor, redemption_id: int, data: RedemptionCancel
) -> RedemptionOut:
    return redemption_out(session, cancel(session, actor, redemption_id, data))


def redemptions_view(
    session: Session, actor: Actor, *, member_id: int | None, after: int | None, limit: int
) -> RedemptionPage:
    rows = list_redemptions(session, actor, member_id=member_id, after=after, limit=limit)
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return RedemptionPage(items=[redemption_out(session, r) for r in rows], next_cursor=nxt)


def collect_view(
    session: Session,
    actor: Actor,
    *,
    redemption_id: int | None = None,
    code: str | None = None,
    store: str | None = None,
) -> RedemptionOut:
    r = collect(session, actor, redemption_id=redemption_id, code=code, store=store)
    return redemption_out(session, r)


def top_up_view(session: Session, actor: Actor, reward_code: str, quantity: int) -> RewardStockOut:
    r = top_up(session, actor, reward_code, quantity)
    return RewardStockOut(
        code=r.code,
        stock_total=r.stock_total,
        stock_remaining=r.stock_remaining,
        stock_added=r.stock_added,
    )


def quote_out(session: Session, q: RewardQuote) -> QuoteOut:
    reward = session.get(Reward, q.reward_id)
    assert reward is not None
    x = q.explanation
    return QuoteOut(
        id=q.id,
        reward=reward.code,
        member_id=q.member_id,
        points=q.points,
        base_points=q.base_points,
        cash_minor=reward.cash_minor,
        ratio=str(x.get("ratio", "1")),
        reason=str(x.get("reason", "")),
        rules=[PriceRuleOut(**r) for r in x.get("rules", [])],
        created_at=q.created_at,
        valid_until=q.valid_until,
    )


def quote_view(session: Session, actor: Actor, reward_code: str, data: QuoteCreate) -> QuoteOut:
    return quote_out(session, quote(session, actor, reward_code, data))


def price_out(reward: Reward, p: domain.Price) -> PriceOut:
    return PriceOut(
        reward=reward.code,
        name=reward.name,
        base_points=p.base_points,
        points=p.points,
        ratio=domain.plain(p.ratio),
        reason=p.reason(),
    )
