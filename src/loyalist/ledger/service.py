"""The points ledger: the only source of truth for points.

Points live in accounts. Every member owns one account (opened when they enrol) and draws
on exactly one account at a time: their own, or a shared account (a household's pool)
they were attached to (:func:`attach` / :func:`detach`). Every change is an appended
:class:`LedgerEntry` of one account that also keeps the member who caused it; credits
create :class:`PointsLot` rows of the account with their own expiry, debits record the
lots they consumed (soonest expiry first) as :class:`LotAllocation` rows, and the
:class:`PointsAccount` cache is updated in the same transaction. Callers lock the account
first with :func:`lock` (the member's current account, or a given one) or
:func:`lock_accounts` (several, in primary-key order); all other functions expect the lock
to be held.

Rules of shared accounts:
    * any member of an account earns into it; spending (``kind="redeem"``: redemptions and
      points paid on orders) needs ``can_spend`` on the membership (the owner always may);
    * a correction of an earlier entry (restore, clawback of an order's points) goes to the
      account that entry belongs to, whoever the member's account is now;
    * leaving an account takes no points and keeps the history (the membership row is
      closed, entries keep their member); the member returns to their own account;
    * only a member whose own account is empty and hosts nobody else may join another one.

Invariants (checked by :func:`verify`, per account):
    account.available = Σ entry.delta_available = Σ open available lots.remaining − debt
    account.pending   = Σ entry.delta_pending   = Σ pending lots.remaining
    account.debt      = Σ entry.delta_debt ≥ 0, and debt > 0 only when no available lot is open
    every lot.remaining ≥ 0; allocations explain every lot; an allocation, its entry and
    its lot belong to one account; every member draws on exactly one account
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypedDict, Unpack, cast

from sqlalchemy import (
    Select,
    Table,
    bindparam,
    func,
    insert,
    inspect,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy import event as sa_event
from sqlalchemy.orm import InstanceState, Session, make_transient_to_detached
from sqlalchemy.orm.exc import StaleDataError

from loyalist.events import service as events
from loyalist.kit import bulk
from loyalist.kit.clock import utcnow
from loyalist.kit.db import is_sqlite
from loyalist.kit.rows import written
from loyalist.ledger.domain import (
    CHAINED_FIELDS,
    GENESIS,
    ChainLink,
    InsufficientLots,
    LotView,
    allocate_fefo,
    check_chain,
    entry_hash,
)
from loyalist.ledger.errors import (
    AccountNotEmpty,
    AccountNotFound,
    AccountNotShareable,
    InsufficientPoints,
    MembershipNotFound,
    SpendNotPermitted,
)
from loyalist.models import (
    LedgerEntry,
    LotAllocation,
    Member,
    PointsAccount,
    PointsAccountMember,
    PointsLot,
)

PENDING = "pending"
AVAILABLE = "available"
CLOSED = "closed"
EXPIRED = "expired"
VOID = "void"

OWNER = "owner"
MEMBER = "member"
#: Entry kinds that spend an account's points on a member's behalf (need ``can_spend``).
SPEND_KINDS = frozenset({"redeem"})


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
    """A locked points account, and the member on whose behalf entries are written.

    ``member_id`` is the causing member recorded on every entry made through this handle;
    ``org_path`` is that member's (events carry it); ``can_spend`` whether they may spend.
    """

    row: PointsAccount
    org_path: str
    now: datetime
    member_id: int = 0
    can_spend: bool = True
    entries: list[LedgerEntry] = field(default_factory=list)
    # True when the locking read found no available lot of the account past its expiry at
    # ``now`` (:func:`adopt_lock`): :func:`expire_due` then looks only at the lots credited
    # through this handle instead of asking the database (speed, issue 11). Anything else
    # that makes a lot available (activation, restore, bulk credits) clears it.
    none_due: bool = False
    lots: list[PointsLot] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.member_id:
            self.member_id = self.row.owner_member_id

    @property
    def account_id(self) -> int:
        return self.row.id


def open_account(session: Session, member_id: int) -> PointsAccount:
    """Open a new member's own account; they draw on it as its owner."""
    now = utcnow()
    acct = PointsAccount(
        owner_member_id=member_id,
        available=0,
        pending=0,
        debt=0,
        lifetime_earned=0,
        chain_seq=0,
        chain_head=None,
        created_at=now,
        updated_at=now,
    )
    session.add(acct)
    session.flush()
    session.add(
        PointsAccountMember(
            account_id=acct.id,
            member_id=member_id,
            role=OWNER,
            can_spend=True,
            joined_at=now,
            left_at=None,
        )
    )
    session.flush()
    return acct


def membership(session: Session, member_id: int) -> PointsAccountMember | None:
    """The member's active membership: the account they draw on now."""
    return session.scalar(_MEMBERSHIP, {"member_id": member_id})


# speed (issue 11): built once per process with bound parameters (SQLAlchemy reuses their
# cache key), not per call.
_MEMBERSHIP = (
    select(PointsAccountMember)
    .where(
        PointsAccountMember.member_id == bindparam("member_id"),
        PointsAccountMember.left_at.is_(None),
    )
    .execution_options(populate_existing=True)
)


def account_id_of(session: Session, member_id: int) -> int:
    """The id of the account the member draws on now."""
    m = membership(session, member_id)
    if m is None:
        raise LookupError(member_id)
    return m.account_id


def _write_pending_accounts(session: Session) -> None:
    """Flush an account row changed but not yet written in this transaction: the locking
    read below reloads the row (``populate_existing``) and sessions do not autoflush, so a
    second lock of the same account in one transaction (a consumer batch, a journey step
    after a check-in) would otherwise throw the first write's balance change away."""
    if any(isinstance(obj, PointsAccount) for obj in session.dirty):
        session.flush()


def _lock_row(session: Session, account_id: int) -> PointsAccount:
    _write_pending_accounts(session)
    q = select(PointsAccount).where(PointsAccount.id == account_id)
    if not is_sqlite(session):
        q = q.with_for_update()
    row = session.execute(q.execution_options(populate_existing=True)).scalar_one_or_none()
    if row is None:
        raise AccountNotFound(f"No points account {account_id}.")
    return row


def _lock_current(session: Session, member_id: int) -> PointsAccount:
    """Lock the account the member draws on now: the membership read and the lock in one
    statement (speed, issue 11); :func:`lock` re-reads the membership under the lock."""
    _write_pending_accounts(session)
    q = _LOCK_CURRENT_SQLITE if is_sqlite(session) else _LOCK_CURRENT
    row = session.execute(q, {"member_id": member_id}).scalar_one_or_none()
    if row is None:
        raise LookupError(member_id)
    return row


_LOCK_CURRENT_SQLITE = select(PointsAccount).where(
    PointsAccount.id
    == select(PointsAccountMember.account_id)
    .where(
        PointsAccountMember.member_id == bindparam("member_id"),
        PointsAccountMember.left_at.is_(None),
    )
    .limit(1)
    .scalar_subquery()
)
_LOCK_CURRENT = _LOCK_CURRENT_SQLITE.with_for_update()
_LOCK_CURRENT_SQLITE = _LOCK_CURRENT_SQLITE.execution_options(populate_existing=True)
_LOCK_CURRENT = _LOCK_CURRENT.execution_options(populate_existing=True)


def lock(
    session: Session, member_id: int, org_path: str, *, account_id: int | None = None
) -> Account:
    """Lock the account ``member_id`` draws on (or ``account_id``) for the transaction.

    Entries written through the returned handle record ``member_id`` as their cause.
    PostgreSQL: ``SELECT … FOR UPDATE``. SQLite: the transaction already began with
    ``BEGIN IMMEDIATE``, so no other writer can interleave. The membership is read again
    under the lock: a member moved to another account meanwhile is followed there.
    """
    for _attempt in range(5):
        if account_id is None:
            row = _lock_current(session, member_id)
            target = row.id
        else:
            target = account_id
            row = _lock_row(session, target)
        m = membership(session, member_id)
        if account_id is None and (m is None or m.account_id != target):
            continue  # moved between the read and the lock: lock where they are now
        can_spend = m is not None and m.account_id == target and m.can_spend
        return Account(
            row=row, org_path=org_path, now=utcnow(), member_id=member_id, can_spend=can_spend
        )
    raise RuntimeError(f"member {member_id} keeps moving between accounts")


def prepare_lock(session: Session, *also: type) -> None:
    """Call before a caller's own locking read of :func:`locking_columns` (see there): like
    the account, the objects of the classes ``also`` the read reloads (``populate_existing``)
    are written first if this transaction changed any."""
    if any(isinstance(obj, (PointsAccount, *also)) for obj in session.dirty):
        session.flush()


def locking_columns(postgres: bool) -> tuple[Any, ...]:
    """What a caller adds to its own statement to lock the account the member bound as
    ``member_id`` draws on now, in that statement (speed, issue 11: the order path reads its
    store, its member and this lock in one statement): the :class:`PointsAccount` entity,
    whether any available lot of it may be past its expiry at the bound ``now``, and the
    condition that joins them. PostgreSQL: add ``FOR UPDATE OF points_account``. Call
    :func:`prepare_lock` before it runs and :func:`adopt_lock` on the row it read.

    PostgreSQL reads the lots with the statement's snapshot, taken before it waited for the
    lock: if another transaction changed the account meanwhile (the locked row is a newer
    version than the snapshot's: ``xmin`` differs), its lots may have changed too, and
    "may be due" is answered yes (then :func:`expire_due` asks again). SQLite's transaction
    holds the write lock from its start: nothing changes between the read and the lock."""
    due = _ANY_DUE_OR_CHANGED if postgres else _ANY_DUE
    return PointsAccount, due.label("lots_due"), PointsAccount.id == _CURRENT_ACCOUNT_ID


_CURRENT_ACCOUNT_ID = (
    select(PointsAccountMember.account_id)
    .where(
        PointsAccountMember.member_id == bindparam("member_id"),
        PointsAccountMember.left_at.is_(None),
    )
    .limit(1)
    .scalar_subquery()
)
_ANY_DUE = (
    select(PointsLot.id)
    .where(
        PointsLot.account_id == PointsAccount.id,
        PointsLot.status == AVAILABLE,
        PointsLot.expires_at <= bindparam("now"),
    )
    .exists()
)
_SNAPSHOT = PointsAccount.__table__.alias("account_snapshot")
_ANY_DUE_OR_CHANGED = or_(
    _ANY_DUE,
    literal_column("points_account.xmin")
    != select(literal_column("account_snapshot.xmin"))
    .select_from(_SNAPSHOT)
    .where(_SNAPSHOT.c.id == PointsAccount.id)
    .scalar_subquery(),
)


def membership_columns(member_id: Any) -> tuple[Any, Any]:
    """The member's active membership (the account they draw on now, and whether they may
    spend it) as two scalar subqueries of ``member_id`` (a column or a bound parameter), for
    a caller's own statement read under the account's lock (see :func:`adopt_lock`)."""
    active = (PointsAccountMember.member_id == member_id, PointsAccountMember.left_at.is_(None))
    account = select(PointsAccountMember.account_id).where(*active).limit(1)
    can_spend = select(PointsAccountMember.can_spend).where(*active).limit(1)
    return account.scalar_subquery(), can_spend.scalar_subquery()


def adopt_lock(
    session: Session,
    row: PointsAccount,
    member_id: int,
    org_path: str,
    now: datetime,
    lots_due: bool,
    *,
    membership_read: tuple[int | None, bool | None] | None = None,
) -> Account | None:
    """The handle of an account a caller locked with :func:`locking_columns` at ``now``;
    None when the member moved to another account meanwhile (then :func:`lock`). As in
    :func:`lock`, the membership is read again under the lock — or given as
    ``membership_read`` (account id, can spend) of :func:`membership_columns` when the
    caller read it under the lock itself (SQLite: in the locking statement, whose
    transaction already holds the write lock; PostgreSQL: in a statement after it, never
    in it — its snapshot predates the lock, and attach, detach and ``set_can_spend`` change
    memberships holding the account lock without changing the account row)."""
    if membership_read is None:
        m = membership(session, member_id)
        if m is None:
            return None
        membership_read = (m.account_id, m.can_spend)
    account_id, can_spend = membership_read
    if account_id != row.id:
        return None
    return Account(
        row=row,
        org_path=org_path,
        now=now,
        member_id=member_id,
        can_spend=bool(can_spend),
        none_due=not lots_due,
    )


def account_of_entries(session: Session, dedupe_keys: Sequence[str]) -> int | None:
    """The account the first of these (unique) entries was written to; None: none exists."""
    return session.scalar(
        select(LedgerEntry.account_id)
        .where(LedgerEntry.dedupe_key.in_(list(dedupe_keys)))
        .order_by(LedgerEntry.id)
        .limit(1)
    )


def lifetime_earned_by(session: Session, acct: Account) -> int:
    """Points the handle's member ever earned from orders (for caps per member).

    An account only its owner ever drew on: its cache. Otherwise (a pool, or a member who
    once drew on one) the member's own earn entries in every account, so a member is never
    capped by what the others in their pool earned.
    """
    shared = session.scalar(
        select(func.count())
        .select_from(PointsAccountMember)
        .where(
            PointsAccountMember.role == MEMBER,
            (PointsAccountMember.account_id == acct.row.id)
            | (PointsAccountMember.member_id == acct.member_id),
        )
    )
    if acct.member_id == acct.row.owner_member_id and not shared:
        return acct.row.lifetime_earned
    q = select(
        func.coalesce(func.sum(LedgerEntry.delta_available + LedgerEntry.delta_pending), 0)
    ).where(LedgerEntry.member_id == acct.member_id, LedgerEntry.kind == "earn")
    return int(session.scalar(q) or 0)


def _owner_path(session: Session, member_id: int) -> str:
    return session.scalar(select(Member.org_path).where(Member.id == member_id)) or "/"


def lock_account(session: Session, account_id: int) -> Account:
    """Lock one account on behalf of its owner (system work: activation, expiry)."""
    row = _lock_row(session, account_id)
    return Account(
        row=row,
        org_path=_owner_path(session, row.owner_member_id),
        now=utcnow(),
        member_id=row.owner_member_id,
    )


def lock_accounts(session: Session, account_ids: Sequence[int]) -> dict[int, Account]:
    """Lock several accounts, always in primary-key order (no deadlock between writers)."""
    return {aid: lock_account(session, aid) for aid in sorted(set(account_ids))}


def _entry(
    session: Session,
    acct: Account,
    kind: str,
    cause: Cause,
    *,
    apply: bool = True,
    **fields: Unpack[_EntryFields],
) -> LedgerEntry:
    """Write one entry (flushed: callers need its id) and, unless ``apply`` is false, apply
    its deltas to the account row. A caller that flushes more rows afterwards passes
    ``apply=False`` and calls :func:`_apply` after its last flush, so the account row is
    updated once per transaction (speed, issue 11), not once per flush."""
    row = _entry_row(acct, kind, cause, **fields)
    e = LedgerEntry(**row)
    _chain(session, acct.row, e)
    session.add(e)
    session.flush()
    if apply:
        _apply(acct, row["delta_available"], row["delta_pending"], row["delta_debt"])
    acct.entries.append(e)
    return e


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


class _EntryFields(TypedDict, total=False):
    """What an entry's writer may say beyond its kind and cause (:func:`_entry_row`)."""

    available: int
    pending: int
    debt: int
    dedupe_key: str | None
    corrects: int | None
    member_id: int | None


def _entry_row(
    acct: Account, kind: str, cause: Cause, **fields: Unpack[_EntryFields]
) -> dict[str, Any]:
    """An entry's chained fields (:data:`CHAINED_FIELDS`), as its row and its hash see them:
    deltas ``available``/``pending``/``debt`` (0 unless given), ``corrects`` the entry it
    corrects, ``member_id`` the causing member (the handle's unless given)."""
    return {
        "account_id": acct.row.id,
        "member_id": fields.get("member_id") or acct.member_id,
        "kind": kind,
        "delta_available": fields.get("available", 0),
        "delta_pending": fields.get("pending", 0),
        "delta_debt": fields.get("debt", 0),
        "source_type": cause.source_type,
        "source_id": cause.source_id,
        "actor": cause.actor,
        "reason": cause.reason,
        "corrects_entry_id": fields.get("corrects"),
        "programme_version": cause.programme_version,
        "details": cause.details,
        "dedupe_key": fields.get("dedupe_key"),
        "occurred_at": cause.occurred_at or acct.now,
        "created_at": acct.now,
    }


def _lot_row(
    acct: Account,
    points: int,
    cause: Cause,
    *,
    pending: bool,
    earned_at: datetime,
    available_at: datetime,
    expires_at: datetime | None,
) -> dict[str, Any]:
    """A credited lot's row, but its ``entry_id``."""
    return {
        "account_id": acct.row.id,
        "member_id": acct.member_id,
        "points": points,
        "remaining": points,
        "status": PENDING if pending else AVAILABLE,
        "source_type": cause.source_type,
        "source_id": cause.source_id,
        "earned_at": earned_at,
        "available_at": available_at,
        "expires_at": expires_at,
        "reminded_days": None,
    }


def _apply(acct: Account, available: int, pending: int, debt: int) -> None:
    acct.row.available += available
    acct.row.pending += pending
    acct.row.debt += debt
    acct.row.updated_at = acct.now


_ACCOUNTS = _table(PointsAccount)
# built once (speed, issue 11): SQLAlchemy compiles (and caches) it per set of columns
# given, SET in the table's column order, as the unit of work's UPDATE
_UPDATE_ACCOUNT = update(_ACCOUNTS).where(_ACCOUNTS.c.id == bindparam("account_id"))


def write_account(session: Session, acct: Account) -> bool:
    """Write what this transaction changed on the locked account row now, with one Core
    ``UPDATE points_account SET <changed columns> WHERE id`` on the session's connection,
    instead of at the next flush by the unit of work (speed, issue 11: the earn path's
    last ORM write). Call it once the account's changes are done (the order path: after
    its ledger work); a later change is tracked and flushed as usual.

    The row object then looks as a flush leaves it: the values written are its committed
    state (not dirty: no flush writes them again) and it is recorded as changed in the
    innermost transaction, so a rollback of that savepoint or transaction expires it (the
    next read loads the row as it is then). Taken only when the account's chain head is
    final (every entry of its segment sealed, :func:`_segment_head`; the head is set on
    the row with the balances); otherwise nothing is written here and the flush that
    hashes the entries writes the row, as before. Returns whether it wrote the row now
    (or found nothing to write)."""
    row = acct.row
    state = inspect(row)
    if not state.modified:
        return True
    if not state.persistent:
        return False
    _recheck(session)
    head = _segment_head(session, row)
    if head is None:
        return False
    segments: dict[int, _Segment] | None = session.info.get(_CHAIN_KEY)
    if segments and segments.get(row.id) is not None and segments[row.id].entries:
        _set_head(row, *head)  # what the flush would set (_seal); no-op when already set
    dict_ = state.dict
    values: dict[str, Any] = {}
    for key, old in state.committed_state.items():
        if key not in _ACCOUNTS.c or key == "id":
            return False  # not a plain column of the row (none today): the ORM way
        if key not in dict_:
            return False  # deleted or expired since: the ORM way
        if dict_[key] != old:  # as the unit of work's history: net changes only
            values[key] = dict_[key]
    if values:
        result = session.connection().execute(_UPDATE_ACCOUNT, {**values, "account_id": row.id})
        if result.rowcount != 1:  # as the unit of work checks its UPDATE
            raise StaleDataError(
                f"UPDATE statement on table 'points_account' expected to update 1 row(s); "
                f"{result.rowcount} were matched."
            )
    # as a flush leaves an updated object (Session._register_persistent): committed, not
    # dirty, and known to the transaction, whose rollback expires it
    InstanceState._commit_all_states([(state, dict_)], session.identity_map)
    session._register_altered([state])
    due: set[int] | None = session.info.get(_HEADS_DUE)
    if due is not None:
        due.discard(row.id)  # its head went with this UPDATE
    return True


# --- the hash chain --------------------------------------------------------------------------
#
# Every entry takes the next sequence number of its account (under the account's lock) and
# is hashed with the hash of the entry before it (domain.entry_hash). Entries written in
# one transaction are (re)hashed before every flush, so details added after an entry was
# first flushed (the lots a debit took) are covered; the account row keeps the head.

_CHAIN_KEY = "loyalist.ledger.chain"
_HEADS_DUE = "loyalist.ledger.chain.heads_due"
#: Set when a savepoint rolled back: entries of a segment may have left the session.
_RECHECK = "loyalist.ledger.chain.recheck"
_RESTARTS = "loyalist.ledger.chain.restarts"


@dataclass
class _Segment:
    """The entries an account got in this transaction, after the head it had before."""

    base_head: str
    base_seq: int
    entries: list[LedgerEntry] = field(default_factory=list)
    # Held so that the session's weak identity map keeps it: a transaction writing to many
    # accounts (bulk import) would otherwise reload each one on every flush.
    account: PointsAccount | None = None
    account_id: int = 0
    # Position of each entry (by object identity) in ``entries``: a flush re-hashes from
    # the first entry it writes or changes, not the whole segment (linear per transaction).
    index: dict[int, int] = field(default_factory=dict)
    # After a rolled-back savepoint: re-hash from this position on the next flush.
    restart: int | None = None

    def reindex(self) -> None:
        self.index = {id(e): n for n, e in enumerate(self.entries)}


def _recheck(session: Session) -> None:
    """After a rolled-back savepoint: drop the entries it expunged from every segment."""
    if not session.info.pop(_RECHECK, False):
        return
    segments: dict[int, _Segment] = session.info.get(_CHAIN_KEY) or {}
    for seg in segments.values():
        alive = _live(session, seg.entries)
        if len(alive) != len(seg.entries):
            kept = {id(e) for e in alive}
            gone = next(n for n, e in enumerate(seg.entries) if id(e) not in kept)
            seg.entries = alive
            seg.reindex()
            seg.restart = min(gone, seg.restart if seg.restart is not None else gone)
            session.info.setdefault(_RESTARTS, set()).add(seg.account_id)
            for n, e in enumerate(alive, start=1):  # successors of a dropped entry move up
                if e.chain_seq != seg.base_seq + n:
                    e.chain_seq = seg.base_seq + n


def _chain(session: Session, account: PointsAccount, e: LedgerEntry) -> None:
    _recheck(session)
    segments: dict[int, _Segment] = session.info.setdefault(_CHAIN_KEY, {})
    seg = segments.get(account.id)
    if seg is None or not seg.entries:
        seg = segments[account.id] = _Segment(
            account.chain_head or GENESIS,
            account.chain_seq or 0,
            account=account,
            account_id=account.id,
        )
    seg.index[id(e)] = len(seg.entries)
    seg.entries.append(e)
    e.chain_seq = seg.base_seq + len(seg.entries)


def _sealed_head(session: Session, account: PointsAccount) -> tuple[int, str] | None:
    """The account's chain head in this transaction (sequence, hash) when an entry may be
    hashed and written at once, without a flush: nothing waits to be inserted (the ORM
    orders those, an entry's account may be one of them) and every entry the account got
    in this transaction is sealed (written as hashed, unchanged since, none moved by a
    rolled-back savepoint). ``None``: the ORM way (a flush hashes the segment)."""
    _recheck(session)
    if session.new:
        return None
    return _segment_head(session, account)


def _segment_head(session: Session, account: PointsAccount) -> tuple[int, str] | None:
    """:func:`_sealed_head` whatever waits in ``session.new`` (call :func:`_recheck`
    first): None when an entry of the account's segment is unflushed, changed since its
    flush or moved by a rolled-back savepoint."""
    segments: dict[int, _Segment] | None = session.info.get(_CHAIN_KEY)
    seg = segments.get(account.id) if segments else None
    if seg is None or not seg.entries:
        return account.chain_seq or 0, account.chain_head or GENESIS
    if seg.restart is not None:
        return None
    for e in seg.entries:
        state = inspect(e)
        if not state.persistent or state.modified:
            return None
    return seg.base_seq + len(seg.entries), seg.entries[-1].entry_hash or GENESIS


# built once per process (speed, issue 11): the earn path's entry and lot
_INSERT_ENTRY = insert(_table(LedgerEntry)).returning(_table(LedgerEntry).c.id)
_INSERT_LOT = insert(_table(PointsLot)).returning(_table(PointsLot).c.id)


def _insert_credit(
    session: Session,
    acct: Account,
    head: tuple[int, str],
    entry_row: dict[str, Any],
    lot_row: dict[str, Any],
) -> tuple[LedgerEntry, PointsLot]:
    """A credit's entry and lot, each one Core ``INSERT … RETURNING id`` (no unit of work,
    no flush; speed, issue 11). The entry is hashed now, on ``head`` (see
    :func:`_sealed_head`): its fields are final, nothing changes a credit's entry. The
    account row takes the new head with its balances (the one UPDATE at the end).

    Both objects then join the session as if a flush had inserted them: persistent, in the
    identity map (a later read of the lot, a debt settlement taking it, gets this object),
    and in the innermost transaction's new objects, so a rollback of it expunges them as
    it does flushed ones (and the chain drops the entry, :func:`_recheck`)."""
    e = _insert_entry(session, acct, head, entry_row)
    lot_row = {**lot_row, "entry_id": e.id}
    lot_row["id"] = session.connection().execute(_INSERT_LOT, lot_row).scalar_one()
    lot = written(PointsLot, lot_row)
    _adopt_inserted(session, lot)
    return e, lot


def _insert_entry(
    session: Session, acct: Account, head: tuple[int, str], entry_row: dict[str, Any]
) -> LedgerEntry:
    """An entry whose fields are final, hashed on ``head`` (:func:`_sealed_head`) and written
    with one Core ``INSERT … RETURNING id``, then adopted by the session as a flush leaves
    it (:func:`_adopt_inserted`); the account row takes the new head (written with its
    balances by the one UPDATE at the end)."""
    seq, prev = head[0] + 1, head[1]
    digest = entry_hash(prev, seq, entry_row)
    row = {**entry_row, "chain_seq": seq, "prev_hash": prev, "entry_hash": digest}
    row["id"] = session.connection().execute(_INSERT_ENTRY, row).scalar_one()
    e = written(LedgerEntry, row)  # no instrumented constructor: adopted as written below
    _chain(session, acct.row, e)  # before it is adopted: its chain_seq is already this
    _adopt_inserted(session, e)
    _set_head(acct.row, seq, digest)
    acct.entries.append(e)
    return e


def _adopt_inserted(session: Session, obj: object) -> None:
    """Make ``obj``, whose row a Core INSERT just wrote (every column set), persistent in
    the session exactly as a flush leaves an inserted object (``Session._register_persistent``
    records it in the innermost transaction's ``_new`` too: a rollback expunges it)."""
    make_transient_to_detached(obj)
    session.add(obj)
    transaction = session._transaction
    assert transaction is not None
    transaction._new[inspect(obj)] = True


def _updated_by_core(session: Session, obj: object, keys: list[str]) -> None:
    """After a Core UPDATE of ``obj``'s row: its ``keys`` are expired (read again from the
    database when next used) and it is recorded in the innermost transaction's changed
    objects as a flush records it, so a rollback of that savepoint expires it again (its
    row is back as it was; a read inside the savepoint would otherwise stay loaded)."""
    session.expire(obj, keys)
    transaction = session._transaction
    assert transaction is not None
    transaction._dirty[inspect(obj)] = True


def _live(session: Session, entries: list[LedgerEntry]) -> list[LedgerEntry]:
    return [e for e in entries if e in session]


def _chained_fields(e: LedgerEntry) -> dict[str, object]:
    return {name: getattr(e, name) for name in CHAINED_FIELDS}


def _set_head(account: PointsAccount, seq: int, head: str) -> None:
    if account.chain_seq != seq:
        account.chain_seq = seq
    if account.chain_head != head:
        account.chain_head = head


def _first_touched(session: Session, segments: dict[int, _Segment]) -> dict[int, int]:
    """Per account: the position of the first of its entries this flush writes or changes
    (new, or modified since the last flush; after a rolled-back savepoint, the first one
    that moved)."""
    first: dict[int, int] = {}
    for obj in (*session.new, *session.dirty):
        if not isinstance(obj, LedgerEntry):
            continue
        seg = segments.get(obj.account_id)
        n = seg.index.get(id(obj)) if seg is not None else None
        if n is not None and n < first.get(obj.account_id, n + 1):
            first[obj.account_id] = n
    for account_id in session.info.pop(_RESTARTS, ()):
        seg = segments.get(account_id)
        if seg is not None and seg.restart is not None:
            n = min(seg.restart, len(seg.entries) - 1) if seg.entries else None
            seg.restart = None
            if n is not None and n < first.get(account_id, n + 1):
                first[account_id] = n
    return first


@sa_event.listens_for(Session, "before_flush")
def _seal(session: Session, _ctx: Any, _instances: Any) -> None:
    """Hash the transaction's entries before they are written. The account's head moves
    with the flush that updates its balances anyway (one UPDATE of the account per order,
    speed, issue 11); if none does, :func:`_heads_before_commit` writes it.

    Linear per transaction: a flush hashes the entries it writes or that changed since
    the last flush, and the ones after them (they chain on them), never the whole
    transaction's entries again."""
    segments: dict[int, _Segment] | None = session.info.get(_CHAIN_KEY)
    if not segments:
        return
    _recheck(session)
    due: set[int] = session.info.setdefault(_HEADS_DUE, set())
    for account_id, start in _first_touched(session, segments).items():
        seg = segments[account_id]
        alive = seg.entries
        prev = (alive[start - 1].entry_hash or GENESIS) if start else seg.base_head
        for n in range(start, len(alive)):
            e = alive[n]
            seq = seg.base_seq + n + 1
            if e.chain_seq != seq:
                e.chain_seq = seq
            if e.prev_hash != prev:
                e.prev_hash = prev
            digest = entry_hash(prev, seq, _chained_fields(e))
            if e.entry_hash != digest:
                e.entry_hash = digest
            prev = digest
        account = seg.account or session.get(PointsAccount, account_id)
        if account is None or not alive:
            continue
        if inspect(account).modified:
            _set_head(account, seg.base_seq + len(alive), prev)
            due.discard(account_id)
        elif (account.chain_seq, account.chain_head) != (seg.base_seq + len(alive), prev):
            due.add(account_id)
    # An account updated in this flush whose entries were all hashed before: its head
    # (set when they were hashed, or due) is written with this update.
    for account_id in list(due):
        waiting = segments.get(account_id)
        held = waiting.account if waiting is not None else None
        if waiting and held is not None and waiting.entries and inspect(held).modified:
            last = waiting.entries[-1].entry_hash or GENESIS
            _set_head(held, waiting.base_seq + len(waiting.entries), last)
            due.discard(account_id)


@sa_event.listens_for(Session, "before_commit")
def _heads_before_commit(session: Session) -> None:
    # before_commit runs before the commit's own flush: flush here whenever this
    # transaction chained entries, so an entry changed after its last flush (the lots a
    # debt settlement took) is re-hashed now and its account's head follows it.
    if not session.info.get(_CHAIN_KEY):
        return
    session.flush()  # hashes final; heads of accounts updated meanwhile are set
    if not session.info.get(_HEADS_DUE):
        return
    segments: dict[int, _Segment] = session.info.get(_CHAIN_KEY) or {}
    for account_id in sorted(session.info.get(_HEADS_DUE) or ()):
        seg = segments.get(account_id)
        account = session.get(PointsAccount, account_id)
        alive = seg.entries if seg is not None else []
        if account is not None and seg is not None and alive:
            _set_head(account, seg.base_seq + len(alive), alive[-1].entry_hash or GENESIS)
    session.info.pop(_HEADS_DUE, None)
    session.flush()


@sa_event.listens_for(Session, "after_soft_rollback")
def _after_savepoint_rollback(session: Session, _previous: Any) -> None:
    if session.info.get(_CHAIN_KEY):
        session.info[_RECHECK] = True


@sa_event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_CHAIN_KEY, None)
        session.info.pop(_HEADS_DUE, None)
        session.info.pop(_RECHECK, None)
        session.info.pop(_RESTARTS, None)


def _event(
    session: Session,
    acct: Account,
    type_: str,
    payload: dict[str, Any],
    *,
    member_id: int | None = None,
) -> None:
    """An event about the account's points: by the causing member, with the pool's balance."""
    mid = member_id or acct.member_id
    body = {"member_id": mid, **payload, "available": acct.row.available}
    body["pending"] = acct.row.pending
    body["account_id"] = acct.row.id
    events.emit(session, type_, body, member_id=mid, org_path=acct.org_path)


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
    delta_available, delta_pending = (0, points) if is_pending else (points, 0)
    lot_row = _lot_row(
        acct,
        points,
        cause,
        pending=is_pending,
        earned_at=earned_at,
        available_at=available_at,
        expires_at=expires_at,
    )
    fields: _EntryFields = {
        "available": delta_available,
        "pending": delta_pending,
        "dedupe_key": dedupe_key,
    }
    head = _sealed_head(session, acct.row)
    if head is not None:  # the common credit: two Core INSERTs, no flush (speed, issue 11)
        row = _entry_row(acct, kind, cause, **fields)
        e, lot = _insert_credit(session, acct, head, row, lot_row)
    else:
        # applied after the lot's flush: one UPDATE of the account
        e = _entry(session, acct, kind, cause, apply=False, **fields)
        lot = PointsLot(entry_id=e.id, **lot_row)
        session.add(lot)
        session.flush()
    acct.lots.append(lot)
    _apply(acct, delta_available, delta_pending, 0)
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
    acct.none_due = False  # available since the locking read
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
        member_id=lot.member_id,
    )
    _event(
        session,
        acct,
        "points.activated",
        {"entry_id": e.id, "points": n, "lot_id": lot.id},
        member_id=lot.member_id,
    )
    settle_debt(session, acct)
    return e


def _open_lots(session: Session, acct: Account) -> list[PointsLot]:
    q = (
        select(PointsLot)
        .where(
            PointsLot.account_id == acct.row.id,
            PointsLot.status == AVAILABLE,
            PointsLot.remaining > 0,
        )
        .order_by(PointsLot.id)
    )
    return list(session.scalars(q))


def _fefo(lots: Sequence[PointsLot], points: int) -> list[tuple[int, int]]:
    """Which lots ``points`` come from (soonest expiry first): (lot id, points) pairs."""
    views = [LotView(id=lot.id, remaining=lot.remaining, expires_at=lot.expires_at) for lot in lots]
    return allocate_fefo(views, points)


def _consume(
    session: Session, entry: LedgerEntry, lots: Sequence[PointsLot], plan: list[tuple[int, int]]
) -> None:
    """Take a planned allocation from the lots and record it against ``entry``."""
    by_id = {lot.id: lot for lot in lots}
    for lot_id, taken in plan:
        lot = by_id[lot_id]
        lot.remaining -= taken
        if lot.remaining == 0:
            lot.status = CLOSED
        session.add(LotAllocation(entry_id=entry.id, lot_id=lot_id, points=-taken))
    session.flush()


def _take(
    session: Session, acct: Account, entry: LedgerEntry, lots: Sequence[PointsLot], points: int
) -> list[tuple[int, int]]:
    plan = _fefo(lots, points)
    _consume(session, entry, lots, plan)
    return plan


def _spendable_lots(session: Session, acct: Account) -> list[PointsLot]:
    """Expire the account's overdue lots, then its open lots (by id): one SELECT of the
    available lots serves both (speed, issue 11: a debit read them twice)."""
    lots = list(session.scalars(_AVAILABLE_LOTS, {"account_id": acct.row.id}))
    due = [lot for lot in lots if _is_expired(lot, acct.now)]
    for lot in sorted(due, key=lambda x: (x.expires_at, x.id)):  # as expire_due orders them
        _expire_lot(session, acct, lot)
    return [lot for lot in lots if lot.remaining > 0 and not _is_expired(lot, acct.now)]


_AVAILABLE_LOTS = (
    select(PointsLot)
    .where(PointsLot.account_id == bindparam("account_id"), PointsLot.status == AVAILABLE)
    .order_by(PointsLot.id)
)


def debit(
    session: Session,
    acct: Account,
    points: int,
    cause: Cause,
    *,
    kind: str,
    dedupe_key: str | None = None,
    event: str = "points.redeemed",
    core: bool = False,
) -> LedgerEntry:
    """Spend available points, soonest-expiring lots first. Pending points are never spent.

    ``core`` (the redemption path; speed, issue 11): when the account's chain segment is
    sealed (:func:`_sealed_head`) and the lots unchanged, the entry is hashed and inserted
    at once and the allocations and lots are written with Core statements, without the
    unit of work (:func:`_consume_core`); otherwise, and by default, the ORM way."""
    if points <= 0:
        raise ValueError("debit needs positive points")
    if kind in SPEND_KINDS and not acct.can_spend:
        raise SpendNotPermitted(
            f"Member {acct.member_id} may not spend the points of account {acct.row.id}.",
            extra={"member_id": acct.member_id, "account_id": acct.row.id},
        )
    lots = _spendable_lots(session, acct)
    have = acct.row.available
    if have < points:
        raise InsufficientPoints(
            f"{points} points are needed; {max(have, 0)} are available.",
            extra={"available": max(have, 0), "required": points},
        )
    try:
        plan = _fefo(lots, points)
    except InsufficientLots as exc:  # cache and lots disagree: never spend what is not there
        raise InsufficientPoints(f"{points} points are needed; lots hold less.") from exc
    # The lots are planned before the entry is written, so it is inserted with its details
    # (and the caller's source and dedupe key) final: no UPDATE of the entry after its
    # INSERT, and its hash is final when the account row (with the chain's head) is
    # written, once (speed, issue 11).
    details = {**(cause.details or {}), "lots": [[lot_id, n] for lot_id, n in plan]}
    spent = replace(cause, details=details)
    head = _sealed_head(session, acct.row) if core else None
    if head is not None and not any(inspect(lot).modified for lot in lots):
        # the common debit: Core statements, no flush (speed, issue 11); the account row
        # (balance and chain head) is written by the one UPDATE at the end
        row = _entry_row(acct, kind, spent, available=-points, dedupe_key=dedupe_key)
        e = _insert_entry(session, acct, head, row)
        _apply(acct, -points, 0, 0)
        _consume_core(session, e, lots, plan)
    else:
        e = _entry(session, acct, kind, spent, available=-points, dedupe_key=dedupe_key)
        _consume(session, e, lots, plan)
    _event(session, acct, event, {"entry_id": e.id, "points": points, "kind": kind})
    return e


def _consume_core(
    session: Session, entry: LedgerEntry, lots: Sequence[PointsLot], plan: list[tuple[int, int]]
) -> None:
    """:func:`_consume` in Core statements: the allocations in one INSERT, each lot taken
    from updated with the same values a flush would write (its remaining, and its status
    when it closes). The lots' objects were unchanged (loaded under the account lock);
    see :func:`_updated_by_core`."""
    by_id = {lot.id: lot for lot in lots}
    conn = session.connection()
    conn.execute(
        _INSERT_ALLOCATIONS,
        [{"entry_id": entry.id, "lot_id": lot_id, "points": -taken} for lot_id, taken in plan],
    )
    for lot_id, taken in plan:
        lot = by_id[lot_id]
        left = lot.remaining - taken
        if left == 0:
            conn.execute(_CLOSE_LOT, {"lot_id": lot_id, "left": 0, "closed": CLOSED})
        else:
            conn.execute(_TAKE_FROM_LOT, {"lot_id": lot_id, "left": left})
        _updated_by_core(session, lot, _TAKEN_ATTRIBUTES)


_LOTS = _table(PointsLot)
_INSERT_ALLOCATIONS = insert(_table(LotAllocation))
_TAKE_FROM_LOT = (
    update(_LOTS).where(_LOTS.c.id == bindparam("lot_id")).values(remaining=bindparam("left"))
)
_CLOSE_LOT = _TAKE_FROM_LOT.values(status=bindparam("closed"))
_TAKEN_ATTRIBUTES = ["remaining", "status"]


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
    if original.account_id != acct.row.id:
        raise ValueError(f"entry {original.id} belongs to account {original.account_id}")
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
            acct.none_due = False
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
    if lot is not None and lot.account_id != acct.row.id:
        raise ValueError(f"lot {lot.id} belongs to account {lot.account_id}")
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
        member_id=lot.member_id,
    )
    session.add(LotAllocation(entry_id=e.id, lot_id=lot.id, points=-n))
    lot.remaining = 0
    lot.status = EXPIRED
    session.flush()
    _event(
        session,
        acct,
        "points.expired",
        {"entry_id": e.id, "points": n, "lot_id": lot.id},
        member_id=lot.member_id,
    )
    return e


def expire_due(session: Session, acct: Account) -> int:
    """Expire every available lot of this account whose expiry has passed. Returns points."""
    total = 0
    if acct.none_due:  # none was due when locked: only this handle's own lots can be
        due = sorted(
            (x for x in acct.lots if x.status == AVAILABLE and _is_expired(x, acct.now)),
            key=lambda x: (x.expires_at, x.id),
        )
    else:
        due = list(session.scalars(_DUE_LOTS, {"account_id": acct.row.id, "now": acct.now}))
    for lot in due:
        total += lot.remaining
        _expire_lot(session, acct, lot)
    return total


# built once per process (speed, issue 11): the order path asks this on every order
_DUE_LOTS = (
    select(PointsLot)
    .where(
        PointsLot.account_id == bindparam("account_id"),
        PointsLot.status == AVAILABLE,
        PointsLot.expires_at <= bindparam("now"),
    )
    .order_by(PointsLot.expires_at, PointsLot.id)
)


def activate_due(session: Session, acct: Account) -> int:
    q = select(PointsLot).where(
        PointsLot.account_id == acct.row.id,
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
            {
                "member_id": acct.member_id,
                "entry_id": e.id,
                "points": points,
                "account_id": acct.row.id,
            },
            member_id=acct.member_id,
            org_path=acct.org_path,
        )
        return e
    e = debit(
        session, acct, -points, cause, kind="adjust", dedupe_key=dedupe_key, event="points.adjusted"
    )
    return e


def expiring_within(session: Session, member_id: int, start: datetime, end: datetime) -> int:
    """Points of the member's current account that expire in (start, end]."""
    q = select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(
        PointsLot.account_id == account_id_of(session, member_id),
        PointsLot.status.in_([AVAILABLE, PENDING]),
        PointsLot.expires_at > start,
        PointsLot.expires_at <= end,
    )
    return int(session.scalar(q) or 0)


def expiring_schedule(
    session: Session, member_id: int, start: datetime, end: datetime
) -> list[tuple[datetime, int]]:
    """When the available points of the member's current account expire, in (start, end]."""
    q = (
        select(PointsLot.expires_at, func.sum(PointsLot.remaining))
        .where(
            PointsLot.account_id == account_id_of(session, member_id),
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
    """The entries of the member's current account, newest first (each names its member)."""
    return account_entries(session, account_id_of(session, member_id), after=after, limit=limit)


def account_entries(
    session: Session, account_id: int, *, after: int | None, limit: int
) -> list[LedgerEntry]:
    q = select(LedgerEntry).where(LedgerEntry.account_id == account_id)
    if after is not None:
        q = q.where(LedgerEntry.id < after)
    return list(session.scalars(q.order_by(LedgerEntry.id.desc()).limit(limit)))


def get_account(session: Session, member_id: int) -> PointsAccount:
    """The account the member draws on now (its balance is what the member sees)."""
    m = membership(session, member_id)
    acct = session.get(PointsAccount, m.account_id) if m is not None else None
    if acct is None:
        raise LookupError(member_id)
    return acct


def with_balance(q: Select[*tuple[Any, ...]], member_id: Any) -> Select[*tuple[Any, ...]]:
    """``q`` with the balance of the account ``member_id`` (a column of ``q``) draws on now
    (``account_id``, ``available``, ``pending``, ``debt``, ``lifetime_earned``; NULL when it
    draws on none): what :func:`get_account` reads, joined into the caller's statement
    (speed, issue 11: a member read looked the membership and the account up in two more
    statements)."""
    return (
        q.add_columns(
            PointsAccount.id.label("account_id"),
            PointsAccount.available,
            PointsAccount.pending,
            PointsAccount.debt,
            PointsAccount.lifetime_earned,
        )
        .outerjoin(
            PointsAccountMember,
            (PointsAccountMember.member_id == member_id) & PointsAccountMember.left_at.is_(None),
        )
        .outerjoin(PointsAccount, PointsAccount.id == PointsAccountMember.account_id)
    )


def own_account(session: Session, member_id: int) -> PointsAccount:
    """The account the member owns (opened when they enrolled)."""
    acct = session.scalar(select(PointsAccount).where(PointsAccount.owner_member_id == member_id))
    if acct is None:
        raise LookupError(member_id)
    return acct


# --- shared accounts ---------------------------------------------------------------------


def members_of(
    session: Session, account_id: int, *, include_former: bool = False
) -> list[PointsAccountMember]:
    """The account's memberships (owner first, then by joining); former ones on request."""
    q = select(PointsAccountMember).where(PointsAccountMember.account_id == account_id)
    if not include_former:
        q = q.where(PointsAccountMember.left_at.is_(None))
    rows = list(session.scalars(q.order_by(PointsAccountMember.id)))
    return sorted(rows, key=lambda r: (r.role != OWNER, r.id))


def _active(session: Session, account_id: int, member_id: int) -> PointsAccountMember | None:
    m = membership(session, member_id)
    return m if m is not None and m.account_id == account_id else None


def attach(
    session: Session, account_id: int, member_id: int, *, can_spend: bool, actor: str
) -> PointsAccountMember:
    """Make ``member_id`` draw on ``account_id`` (join a shared account). Idempotent.

    The member leaves their current account (which must be their own, empty — nothing
    available, pending or owed — and hosting nobody else); the target's owner must be
    drawing on it. Both accounts are locked in primary-key order first.
    """
    target = session.get(PointsAccount, account_id)
    if target is None:
        raise AccountNotFound(f"No points account {account_id}.")
    own = own_account(session, member_id)
    locked = lock_accounts(session, [own.id, account_id])
    current = membership(session, member_id)
    if current is not None and current.account_id == account_id:
        return current  # already there: a replay changes nothing
    if _active(session, account_id, target.owner_member_id) is None:
        raise AccountNotShareable(
            f"Account {account_id}'s owner does not draw on it; nobody can join it.",
            extra={"account_id": account_id},
        )
    if current is None or current.account_id != own.id:
        raise AccountNotShareable(
            f"Member {member_id} already draws on account "
            f"{current.account_id if current else None}; they must leave it first.",
            extra={"member_id": member_id},
        )
    others = [m for m in members_of(session, own.id) if m.member_id != member_id]
    if others:
        raise AccountNotShareable(
            f"Member {member_id}'s own account is shared with others; it cannot be left.",
            extra={"member_id": member_id, "account_id": own.id},
        )
    row = locked[own.id].row
    if (row.available, row.pending, row.debt) != (0, 0, 0):
        raise AccountNotEmpty(
            f"Member {member_id}'s own account still holds points; it must be empty to join.",
            extra={"available": row.available, "pending": row.pending, "debt": row.debt},
        )
    now = utcnow()
    current.left_at = now
    current.removed_by = actor
    session.flush()
    joined = PointsAccountMember(
        account_id=account_id,
        member_id=member_id,
        role=MEMBER,
        can_spend=can_spend,
        joined_at=now,
        left_at=None,
        added_by=actor,
    )
    session.add(joined)
    session.flush()
    return joined


def detach(session: Session, member_id: int, *, actor: str) -> PointsAccountMember:
    """The member leaves the shared account they draw on and returns to their own.

    Leaving takes no points (what they earned stays in the pool) and keeps the history:
    the membership is closed, never deleted; entries keep their member. The owner of an
    account cannot leave it. Idempotent: a member already on their own account is answered
    with that membership.
    """
    own = own_account(session, member_id)
    current = membership(session, member_id)
    if current is not None and current.account_id == own.id:
        return current
    if current is None:
        raise MembershipNotFound(f"Member {member_id} draws on no account.")
    lock_accounts(session, [own.id, current.account_id])
    current = membership(session, member_id)
    assert current is not None
    if current.account_id == own.id:
        return current
    now = utcnow()
    current.left_at = now
    current.removed_by = actor
    session.flush()
    back = PointsAccountMember(
        account_id=own.id,
        member_id=member_id,
        role=OWNER,
        can_spend=True,
        joined_at=now,
        left_at=None,
        added_by=actor,
    )
    session.add(back)
    session.flush()
    return back


def set_can_spend(
    session: Session, account_id: int, member_id: int, can_spend: bool
) -> PointsAccountMember:
    """Grant or withdraw a member's permission to spend a shared account's points."""
    lock_account(session, account_id)
    m = _active(session, account_id, member_id)
    if m is None:
        raise MembershipNotFound(f"Member {member_id} does not draw on account {account_id}.")
    if m.role == OWNER and not can_spend:
        raise AccountNotShareable("The owner of an account always may spend its points.")
    m.can_spend = can_spend
    session.flush()
    return m


# --- verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    account_id: int
    problem: str


def verify(session: Session) -> tuple[int, list[Disagreement]]:
    """Check every account: cache = Σ entries = Σ open lots − debt; no lot below zero;
    allocations explain every lot and never cross accounts; every member draws on one
    account."""
    entry_sums = {
        int(a_id): (int(a or 0), int(p or 0), int(d or 0))
        for a_id, a, p, d in session.execute(
            select(
                LedgerEntry.account_id,
                func.sum(LedgerEntry.delta_available),
                func.sum(LedgerEntry.delta_pending),
                func.sum(LedgerEntry.delta_debt),
            ).group_by(LedgerEntry.account_id)
        )
    }
    lot_sums: dict[int, dict[str, int]] = {}
    for a_id, status, rem in session.execute(
        select(PointsLot.account_id, PointsLot.status, func.sum(PointsLot.remaining)).group_by(
            PointsLot.account_id, PointsLot.status
        )
    ):
        lot_sums.setdefault(int(a_id), {})[str(status)] = int(rem or 0)
    negative = {
        int(a)
        for (a,) in session.execute(
            select(PointsLot.account_id).where(PointsLot.remaining < 0).distinct()
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
    for lot_id, account_id, points, remaining in session.execute(
        select(PointsLot.id, PointsLot.account_id, PointsLot.points, PointsLot.remaining)
    ):
        if int(points) + alloc.get(int(lot_id), 0) != int(remaining):
            bad_lots.setdefault(int(account_id), int(lot_id))
    # An entry moves points only in lots of its own account.
    crossing: dict[int, int] = {}
    for entry_account, entry_id in session.execute(
        select(LedgerEntry.account_id, LedgerEntry.id)
        .join(LotAllocation, LotAllocation.entry_id == LedgerEntry.id)
        .join(PointsLot, PointsLot.id == LotAllocation.lot_id)
        .where(PointsLot.account_id != LedgerEntry.account_id)
    ):
        crossing.setdefault(int(entry_account), int(entry_id))
    problems: list[Disagreement] = []
    checked = 0
    chains = chain_problems(session)
    for acct in session.scalars(select(PointsAccount).order_by(PointsAccount.id)):
        checked += 1
        a_id = acct.id
        problems.extend(Disagreement(a_id, p) for p in chains.get(a_id, []))
        ea, ep, ed = entry_sums.get(a_id, (0, 0, 0))
        lots = lot_sums.get(a_id, {})
        la, lp = lots.get(AVAILABLE, 0), lots.get(PENDING, 0)
        if (acct.available, acct.pending, acct.debt) != (ea, ep, ed):
            problems.append(
                Disagreement(
                    a_id,
                    f"cache (available={acct.available}, pending={acct.pending}, "
                    f"debt={acct.debt}) != entries (available={ea}, pending={ep}, debt={ed})",
                )
            )
        if ea != la - ed:
            problems.append(Disagreement(a_id, f"available {ea} != open lots {la} - debt {ed}"))
        if ep != lp:
            problems.append(Disagreement(a_id, f"pending {ep} != pending lots {lp}"))
        if ed < 0:
            problems.append(Disagreement(a_id, f"debt is negative ({ed})"))
        if a_id in negative:
            problems.append(Disagreement(a_id, "a lot has negative remaining points"))
        if a_id in bad_lots:
            problems.append(
                Disagreement(a_id, f"lot {bad_lots[a_id]}: allocations do not explain remaining")
            )
        if a_id in crossing:
            problems.append(
                Disagreement(a_id, f"entry {crossing[a_id]} moves points of another account's lot")
            )
    adrift = session.scalars(
        select(Member.id)
        .where(
            ~select(PointsAccountMember.id)
            .where(
                PointsAccountMember.member_id == Member.id,
                PointsAccountMember.left_at.is_(None),
            )
            .exists()
        )
        .order_by(Member.id)
    ).all()
    for mid in adrift:
        problems.append(Disagreement(0, f"member {mid} draws on no account"))
    return checked, problems


def _links(session: Session, account_id: int | None = None) -> Iterator[tuple[int, ChainLink]]:
    cols = [getattr(LedgerEntry, name) for name in CHAINED_FIELDS]
    q = select(
        LedgerEntry.id,
        LedgerEntry.chain_seq,
        LedgerEntry.prev_hash,
        LedgerEntry.entry_hash,
        *cols,
    ).order_by(LedgerEntry.account_id, LedgerEntry.chain_seq, LedgerEntry.id)
    if account_id is not None:
        q = q.where(LedgerEntry.account_id == account_id)
    for row in session.execute(q.execution_options(yield_per=2000)):
        entry_id, seq, prev, stored = row[0], row[1], row[2], row[3]
        fields = dict(zip(CHAINED_FIELDS, row[4:], strict=True))
        computed = entry_hash(prev or GENESIS, int(seq or 0), fields)
        yield (
            int(fields["account_id"]),
            ChainLink(int(entry_id), seq, prev, stored, computed),
        )


def chain_problems(session: Session) -> dict[int, list[str]]:
    """Every account's hash-chain problems (an edited, deleted or inserted entry, named)."""
    heads = {
        int(a): (int(seq or 0), head)
        for a, seq, head in session.execute(
            select(PointsAccount.id, PointsAccount.chain_seq, PointsAccount.chain_head)
        )
    }
    out: dict[int, list[str]] = {}
    seen: set[int] = set()

    def check(account_id: int, links: list[ChainLink]) -> None:
        seen.add(account_id)
        head_seq, head_hash = heads.get(account_id, (0, None))
        found = check_chain(links, head_seq, head_hash)
        if found:
            out[account_id] = found

    current: int | None = None
    batch: list[ChainLink] = []
    for account_id, link in _links(session):
        if account_id != current:
            if current is not None:
                check(current, batch)
            current, batch = account_id, []
        batch.append(link)
    if current is not None:
        check(current, batch)
    for account_id in heads.keys() - seen:
        check(account_id, [])
    return out


@dataclass(frozen=True)
class ChainHead:
    account_id: int
    seq: int
    hash: str | None


def chain_heads(session: Session) -> list[ChainHead]:
    """Every account's chain head (its last entry's sequence number and hash), by account."""
    q = select(PointsAccount.id, PointsAccount.chain_seq, PointsAccount.chain_head).order_by(
        PointsAccount.id
    )
    return [ChainHead(int(a), int(seq or 0), head) for a, seq, head in session.execute(q)]


def verify_heads(session: Session, heads: Sequence[ChainHead]) -> list[Disagreement]:
    """Compare the ledger with chain heads exported earlier (a checkpoint).

    Each head must still be in its account's chain: the entry with that sequence number
    carries that hash. A history rewritten after the checkpoint (even with every hash
    recomputed) no longer contains the exported head.
    """
    problems: list[Disagreement] = []
    for h in heads:
        if h.seq == 0:
            continue
        row = session.execute(
            select(LedgerEntry.id, LedgerEntry.entry_hash).where(
                LedgerEntry.account_id == h.account_id, LedgerEntry.chain_seq == h.seq
            )
        ).all()
        if not row:
            problems.append(
                Disagreement(
                    h.account_id, f"checkpoint: entry with sequence {h.seq} is missing (deleted)"
                )
            )
        elif not any(stored == h.hash for _id, stored in row):
            ids = ", ".join(str(i) for i, _ in row)
            problems.append(
                Disagreement(
                    h.account_id,
                    f"checkpoint: entry {ids} (sequence {h.seq}) differs from the checkpoint "
                    "(history rewritten)",
                )
            )
    return problems


# --- what the periodic jobs look for -------------------------------------------------------


def stale_pending_accounts(session: Session, now: datetime, limit: int) -> list[int]:
    q = (
        select(PointsLot.account_id)
        .where(PointsLot.status == PENDING, PointsLot.available_at <= now)
        .distinct()
        .limit(limit)
    )
    return [int(x) for x in session.scalars(q)]


def expired_accounts(session: Session, now: datetime, limit: int) -> list[int]:
    q = (
        select(PointsLot.account_id)
        .where(PointsLot.status == AVAILABLE, PointsLot.expires_at <= now)
        .distinct()
        .limit(limit)
    )
    return [int(x) for x in session.scalars(q)]


def _owners(session: Session, account_ids: list[int]) -> list[int]:
    if not account_ids:
        return []
    q = select(PointsAccount.owner_member_id).where(PointsAccount.id.in_(account_ids))
    return sorted(int(x) for x in session.scalars(q))


def stale_pending_members(session: Session, now: datetime, limit: int) -> list[int]:
    """Owners of accounts with pending lots due (single-member accounts: the member)."""
    return _owners(session, stale_pending_accounts(session, now, limit))


def expired_members(session: Session, now: datetime, limit: int) -> list[int]:
    """Owners of accounts with lots past expiry (single-member accounts: the member)."""
    return _owners(session, expired_accounts(session, now, limit))


def lots_to_remind(
    session: Session, now: datetime, horizon: datetime, limit: int, after_member: int
) -> list[int]:
    """Owners (by id, after ``after_member``) of accounts with lots to remind about."""
    q = (
        select(PointsAccount.owner_member_id)
        .join(PointsLot, PointsLot.account_id == PointsAccount.id)
        .where(
            PointsLot.status == AVAILABLE,
            PointsLot.remaining > 0,
            PointsLot.expires_at > now,
            PointsLot.expires_at <= horizon,
            PointsAccount.owner_member_id > after_member,
        )
        .distinct()
        .order_by(PointsAccount.owner_member_id)
        .limit(limit)
    )
    return [int(x) for x in session.scalars(q)]


def member_lots_expiring(
    session: Session, member_id: int, now: datetime, horizon: datetime
) -> list[PointsLot]:
    """Lots soon to expire in the account ``member_id`` owns (its owner is reminded)."""
    q = select(PointsLot).where(
        PointsLot.account_id == own_account(session, member_id).id,
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


# --- moving value between accounts (identity merge, issue 13) ---------------------------------


def open_lots_of(session: Session, account_id: int) -> list[PointsLot]:
    """The account's lots that still hold points (available or pending), oldest first."""
    q = select(PointsLot).where(
        PointsLot.account_id == account_id,
        PointsLot.status.in_([AVAILABLE, PENDING]),
        PointsLot.remaining > 0,
    )
    return list(session.scalars(q.order_by(PointsLot.id)))


def move_lots(
    session: Session,
    src: Account,
    dst: Account,
    lots: Sequence[PointsLot],
    cause: Cause,
    *,
    kind_out: str,
    kind_in: str,
    dedupe_key: str,
    member_id: int | None = None,
) -> tuple[LedgerEntry, LedgerEntry, list[int]]:
    """Move ``lots`` (open lots of ``src``, whole) to ``dst`` with a pair of entries.

    ``src`` gets one entry (``kind_out``) taking every lot's remaining points (allocations;
    the lots close); ``dst`` gets one entry (``kind_in``) and, for each lot, a new lot with
    the same points, status, earning time, availability and expiry (and earner, unless
    ``member_id`` names who the new lots belong to). Both accounts must be locked, neither
    may owe points. Returns both entries and the new lots' ids, in the order of ``lots``.
    Append-only: nothing written before is changed but the moved lots' remaining/status,
    exactly as a debit does.
    """
    if src.row.debt or dst.row.debt:
        raise AccountNotEmpty(
            "An account that owes points cannot take part in a move; settle the debt first.",
            extra={"source_debt": src.row.debt, "target_debt": dst.row.debt},
        )
    if any(lot.account_id != src.row.id or lot.remaining <= 0 for lot in lots):
        raise ValueError("only open lots of the source account move")
    avail = sum(lot.remaining for lot in lots if lot.status == AVAILABLE)
    pend = sum(lot.remaining for lot in lots if lot.status == PENDING)
    details = {"lots": [[lot.id, lot.remaining] for lot in lots], "to_account": dst.row.id}
    out = _entry(
        session,
        src,
        kind_out,
        Cause(
            source_type=cause.source_type,
            source_id=cause.source_id,
            actor=cause.actor,
            reason=cause.reason,
            details=details,
        ),
        available=-avail,
        pending=-pend,
        dedupe_key=f"{dedupe_key}:out",
    )
    inn = _entry(
        session,
        dst,
        kind_in,
        Cause(
            source_type=cause.source_type,
            source_id=cause.source_id,
            actor=cause.actor,
            reason=cause.reason,
            details={"from_account": src.row.id, "from_entry": out.id},
        ),
        available=avail,
        pending=pend,
        dedupe_key=f"{dedupe_key}:in",
        apply=False,
    )
    new: list[PointsLot] = []
    for lot in lots:
        n = lot.remaining
        session.add(LotAllocation(entry_id=out.id, lot_id=lot.id, points=-n))
        new.append(
            PointsLot(
                account_id=dst.row.id,
                member_id=member_id or lot.member_id,
                entry_id=inn.id,
                points=n,
                remaining=n,
                status=lot.status,
                source_type=lot.source_type,
                source_id=lot.source_id,
                earned_at=lot.earned_at,
                available_at=lot.available_at,
                expires_at=lot.expires_at,
                reminded_days=lot.reminded_days,
            )
        )
        lot.remaining = 0
        lot.status = CLOSED
    session.add_all(new)
    session.flush()
    _apply(dst, avail, pend, 0)
    inn.details = {**(inn.details or {}), "lots": [[x.id, x.points] for x in new]}
    session.flush()
    return out, inn, [x.id for x in new]


# --- many credits at once (bulk import, issue 13 item 5) ------------------------------------


def lock_for_bulk(session: Session, member_ids: Sequence[int], now: datetime) -> dict[int, Account]:
    """Lock the accounts these members draw on, all in one statement in id order, and
    answer a handle for each member whose account :func:`credit_many` can write alone: the
    member's own account, shared with nobody (now or before), without debt, with no
    available lot past its expiry (those need :func:`settle_debt` / :func:`expire_due`)."""
    ids = sorted(set(member_ids))
    if not ids:
        return {}
    _write_pending_accounts(session)
    current: dict[int, int] = {}
    for k in range(0, len(ids), 1000):
        q = select(PointsAccountMember.member_id, PointsAccountMember.account_id).where(
            PointsAccountMember.member_id.in_(ids[k : k + 1000]),
            PointsAccountMember.left_at.is_(None),
        )
        current.update({int(m): int(a) for m, a in session.execute(q)})
    account_ids = sorted(set(current.values()))
    rows: dict[int, PointsAccount] = {}
    for k in range(0, len(account_ids), 1000):
        q2 = (
            select(PointsAccount)
            .where(PointsAccount.id.in_(account_ids[k : k + 1000]))
            .order_by(PointsAccount.id)
        )
        if not is_sqlite(session):
            q2 = q2.with_for_update()
        for row in session.scalars(q2.execution_options(populate_existing=True)):
            rows[row.id] = row
    shared_accounts: set[int] = set()  # accounts and members that ever shared
    shared_members: set[int] = set()
    for k in range(0, len(ids), 1000):
        chunk = ids[k : k + 1000]
        accts = sorted({current[m] for m in chunk if m in current})
        q3 = select(PointsAccountMember.account_id, PointsAccountMember.member_id).where(
            PointsAccountMember.role == MEMBER,
            PointsAccountMember.account_id.in_(accts) | PointsAccountMember.member_id.in_(chunk),
        )
        for a, m in session.execute(q3):
            shared_accounts.add(int(a))
            shared_members.add(int(m))
    overdue: set[int] = set()
    for k in range(0, len(account_ids), 1000):
        q4 = (
            select(PointsLot.account_id)
            .where(
                PointsLot.account_id.in_(account_ids[k : k + 1000]),
                PointsLot.status == AVAILABLE,
                PointsLot.expires_at <= now,
            )
            .distinct()
        )
        overdue.update(int(a) for a in session.scalars(q4))
    # the membership again, under the locks: a member moved meanwhile is left out
    still: dict[int, int] = {}
    for k in range(0, len(ids), 1000):
        q = select(PointsAccountMember.member_id, PointsAccountMember.account_id).where(
            PointsAccountMember.member_id.in_(ids[k : k + 1000]),
            PointsAccountMember.left_at.is_(None),
        )
        still.update({int(m): int(a) for m, a in session.execute(q)})
    paths: dict[int, str] = {}
    for k in range(0, len(ids), 1000):
        q5 = select(Member.id, Member.org_path).where(Member.id.in_(ids[k : k + 1000]))
        paths.update({int(m): str(p) for m, p in session.execute(q5)})
    out: dict[int, Account] = {}
    for m in ids:
        aid = current.get(m)
        held = rows.get(aid) if aid is not None else None
        if (
            held is None
            or still.get(m) != aid
            or held.owner_member_id != m
            or aid in shared_accounts
            or m in shared_members
            or held.debt
            or held.id in overdue
        ):
            continue
        out[m] = Account(row=held, org_path=paths.get(m, "/"), now=now, member_id=m)
    return out


@dataclass
class BulkCredit:
    """One credit of :func:`credit_many` (as :func:`credit` with ``kind="earn"``)."""

    account: Account
    points: int
    cause: Cause
    earned_at: datetime
    available_at: datetime
    expires_at: datetime | None
    dedupe_key: str | None = None


EventItem = tuple[str, dict[str, Any], int | None, str | None]


def credit_many(session: Session, credits: Sequence[BulkCredit]) -> list[EventItem]:
    """:func:`credit` (kind ``earn``, counted as earned) of many lots at once, on accounts
    locked by :func:`lock_for_bulk`: entries hash-chained per account in the given order,
    one multi-row INSERT for the entries and one for the lots, each account row updated
    once. Answers the ``points.earned`` event of each credit, in order, for the caller to
    emit with its own (:func:`events.emit_many`)."""
    if not credits:
        return []
    segments: dict[int, _Segment] = session.info.get(_CHAIN_KEY) or {}
    entries: list[dict[str, Any]] = []
    lots: list[dict[str, Any]] = []
    after: list[tuple[int, int]] = []
    for c in credits:
        acct, row = c.account, c.account.row
        if c.points <= 0:
            raise ValueError("credit needs positive points")
        if row.id in segments and segments[row.id].entries:
            raise RuntimeError(f"account {row.id} already has entries in this transaction")
        pending = c.available_at > acct.now
        d_avail, d_pend = (0, c.points) if pending else (c.points, 0)
        acct.none_due = False  # its lots are not objects of the handle
        seq = (row.chain_seq or 0) + 1
        prev = row.chain_head or GENESIS
        e = _entry_row(
            acct, "earn", c.cause, available=d_avail, pending=d_pend, dedupe_key=c.dedupe_key
        )
        digest = entry_hash(prev, seq, e)
        e.update(chain_seq=seq, prev_hash=prev, entry_hash=digest)
        entries.append(e)
        row.chain_seq, row.chain_head = seq, digest
        row.available += d_avail
        row.pending += d_pend
        row.lifetime_earned += c.points
        row.updated_at = acct.now
        after.append((row.available, row.pending))
        lots.append(
            _lot_row(
                acct,
                c.points,
                c.cause,
                pending=pending,
                earned_at=c.earned_at,
                available_at=c.available_at,
                expires_at=c.expires_at,
            )
        )
    ids = bulk.insert_rows(session, _table(LedgerEntry), entries, ids=True)
    for lot, entry_id in zip(lots, ids, strict=True):
        lot["entry_id"] = entry_id
    bulk.insert_rows(session, _table(PointsLot), lots)
    session.flush()  # the account rows
    out: list[EventItem] = []
    for c, entry_id, lot, (available, pending_now) in zip(credits, ids, lots, after, strict=True):
        body = {
            "member_id": c.account.member_id,
            "entry_id": entry_id,
            "points": c.points,
            "kind": "earn",
            "status": lot["status"],
            "available_at": c.available_at.isoformat(),
            "expires_at": c.expires_at.isoformat() if c.expires_at else None,
            "source_type": c.cause.source_type,
            "source_id": c.cause.source_id,
            "available": available,
            "pending": pending_now,
            "account_id": c.account.row.id,
        }
        out.append(("points.earned", body, c.account.member_id, c.account.org_path))
    return out
