"""Households (家庭账户), built on the ledger's shared points accounts.

A household is a main member's own points account shared with up to ``max_members``
invited members (programme setting ``households.max_members``, default 3). The ledger
keeps who draws on the account (``points_account_member``) and enforces its rules: any
member earns into the pool; spending needs ``can_spend`` (the main member always may);
leaving takes no points and keeps the history; every entry names the member who caused
it. This module adds the household row, invitations (accept / decline / expire), the
household-level checks (room, one household per member) and the events.

Locking: every write locks the household row first, then the ledger locks the accounts
(in primary-key order); redemptions lock only the account, so they never wait on a
household lock held by a writer that waits on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalist.access.permissions import MEMBER_READ, MEMBER_WRITE, require
from loyalist.audit import service as audit
from loyalist.errors import FieldError
from loyalist.events import service as events
from loyalist.fraud import service as fraud
from loyalist.household import domain
from loyalist.household.errors import (
    HouseholdClosed,
    HouseholdFull,
    HouseholdNotFound,
    InOtherHousehold,
    InvitationClosed,
    InvitationNotFound,
    MainMemberStays,
    NotInvitable,
    PointsToTransfer,
)
from loyalist.household.schemas import (
    HouseholdMemberOut,
    HouseholdOut,
    HouseholdPage,
    HouseholdSummary,
    InvitationCreate,
    InvitationOut,
    MemberHouseholdOut,
    PoolOut,
)
from loyalist.kit.actor import Actor
from loyalist.kit.clock import as_utc, utcnow
from loyalist.kit.db import is_sqlite
from loyalist.kit.pagination import encode_cursor
from loyalist.ledger import service as ledger
from loyalist.ledger.errors import AccountNotEmpty
from loyalist.member import service as members
from loyalist.models import (
    Household,
    HouseholdInvitation,
    LedgerEntry,
    Member,
    PointsAccount,
    PointsAccountMember,
)
from loyalist.programme import service as programmes
from loyalist.programme.errors import NoProgramme
from loyalist.programme.schemas import Households


def settings(session: Session) -> Households:
    """The active programme's household settings (defaults without a programme)."""
    try:
        return programmes.active(session)[1].households
    except NoProgramme:
        return Households()


# --- reading ---------------------------------------------------------------------------


def _get(session: Session, actor: Actor, household_id: int, *, lock: bool = False) -> Household:
    q = select(Household).where(Household.id == household_id)
    if lock and not is_sqlite(session):
        q = q.with_for_update()
    h = session.scalar(q.execution_options(populate_existing=True))
    if h is None or not actor.sees(h.org_path):
        raise HouseholdNotFound(f"No household {household_id}.")
    return h


def active_of_account(session: Session, account_id: int) -> Household | None:
    return session.scalar(
        select(Household).where(
            Household.account_id == account_id, Household.status == domain.ACTIVE
        )
    )


def household_of(session: Session, member_id: int) -> Household | None:
    """The active household the member belongs to now (as its main member or drawing on
    its pool), or None."""
    m = ledger.membership(session, member_id)
    if m is None:
        return None
    return active_of_account(session, m.account_id)


def _pending(session: Session, household_id: int, now: datetime) -> list[HouseholdInvitation]:
    return list(
        session.scalars(
            select(HouseholdInvitation)
            .where(
                HouseholdInvitation.household_id == household_id,
                HouseholdInvitation.status == domain.PENDING,
                HouseholdInvitation.expires_at > now,
            )
            .order_by(HouseholdInvitation.id)
        )
    )


def _drawing(session: Session, h: Household) -> list[PointsAccountMember]:
    """The members drawing on the pool now other than the main member."""
    return [m for m in ledger.members_of(session, h.account_id) if m.role != ledger.OWNER]


def invitation_out(inv: HouseholdInvitation, owner_member_id: int, now: datetime) -> InvitationOut:
    return InvitationOut(
        id=inv.id,
        household_id=inv.household_id,
        owner_member_id=owner_member_id,
        member_id=inv.member_id,
        can_spend=inv.can_spend,
        status=domain.invitation_state(inv.status, as_utc(inv.expires_at), now),
        invited_by=inv.invited_by,
        created_at=inv.created_at,
        expires_at=inv.expires_at,
        decided_at=inv.decided_at,
    )


def contributions(session: Session, account_id: int) -> dict[int, tuple[int, int]]:
    """Per member: points their orders earned into the account, points they redeemed."""
    rows = session.execute(
        select(
            LedgerEntry.member_id,
            LedgerEntry.kind,
            func.sum(LedgerEntry.delta_available + LedgerEntry.delta_pending),
        )
        .where(LedgerEntry.account_id == account_id, LedgerEntry.kind.in_(("earn", "redeem")))
        .group_by(LedgerEntry.member_id, LedgerEntry.kind)
    ).all()
    out: dict[int, tuple[int, int]] = {}
    for member_id, kind, total in rows:
        earned, spent = out.get(int(member_id), (0, 0))
        if kind == "earn":
            earned += int(total or 0)
        else:
            spent -= int(total or 0)
        out[int(member_id)] = (earned, spent)
    return out


def household_out(session: Session, h: Household) -> HouseholdOut:
    now = utcnow()
    rules = settings(session)
    acct = session.get(PointsAccount, h.account_id)
    assert acct is not None
    rows = ledger.members_of(session, h.account_id, include_former=True)
    since = as_utc(h.created_at)
    figures = contributions(session, h.account_id)
    listed: list[HouseholdMemberOut] = []
    for r in rows:
        if r.role == ledger.OWNER and r.member_id != h.owner_member_id:
            continue  # not possible for a pool; kept out defensively
        if r.left_at is not None and as_utc(r.left_at) < since:
            continue  # a membership of an earlier household of this main member
        if r.role == ledger.OWNER and r.left_at is not None:
            continue  # the main member's own earlier stints on their account
        earned, spent = figures.get(r.member_id, (0, 0))
        listed.append(
            HouseholdMemberOut(
                member_id=r.member_id,
                role="main" if r.role == ledger.OWNER else "member",
                can_spend=r.can_spend,
                joined_at=r.joined_at,
                left_at=r.left_at,
                earned=earned,
                spent=spent,
            )
        )
    invitations = session.scalars(
        select(HouseholdInvitation)
        .where(HouseholdInvitation.household_id == h.id)
        .order_by(HouseholdInvitation.id)
    )
    return HouseholdOut(
        id=h.id,
        owner_member_id=h.owner_member_id,
        status=h.status,
        max_members=rules.max_members,
        qualifies_together=rules.household_qualifies_together,
        pool=PoolOut(
            account_id=acct.id, available=acct.available, pending=acct.pending, debt=acct.debt
        ),
        members=listed,
        invitations=[invitation_out(i, h.owner_member_id, now) for i in invitations],
        created_at=h.created_at,
        dissolved_at=h.dissolved_at,
    )


def get_view(session: Session, actor: Actor, household_id: int) -> HouseholdOut:
    require(actor, MEMBER_READ)
    return household_out(session, _get(session, actor, household_id))


def invitations_for(session: Session, member_id: int) -> list[InvitationOut]:
    """Invitations waiting for the member's answer (not expired), oldest first."""
    now = utcnow()
    rows = session.execute(
        select(HouseholdInvitation, Household.owner_member_id)
        .join(Household, Household.id == HouseholdInvitation.household_id)
        .where(
            HouseholdInvitation.member_id == member_id,
            HouseholdInvitation.status == domain.PENDING,
            HouseholdInvitation.expires_at > now,
            Household.status == domain.ACTIVE,
        )
        .order_by(HouseholdInvitation.id)
    ).all()
    return [invitation_out(inv, owner, now) for inv, owner in rows]


def member_view(session: Session, actor: Actor, member_id: int) -> MemberHouseholdOut:
    require(actor, MEMBER_READ)
    m = members.get(session, actor, member_id)
    h = household_of(session, m.id)
    return MemberHouseholdOut(
        member_id=m.id,
        household=household_out(session, h) if h is not None else None,
        invitations=invitations_for(session, m.id),
    )


@dataclass
class Filter:
    status: str | None = None
    member_id: int | None = None


def page(
    session: Session, actor: Actor, f: Filter, *, after: int | None, limit: int
) -> HouseholdPage:
    require(actor, MEMBER_READ)
    drawing = (
        select(func.count())
        .select_from(PointsAccountMember)
        .where(
            PointsAccountMember.account_id == Household.account_id,
            PointsAccountMember.left_at.is_(None),
        )
        .scalar_subquery()
    )
    q = (
        select(Household, drawing, PointsAccount.available)
        .join(PointsAccount, PointsAccount.id == Household.account_id)
        .where(Household.org_path.startswith(actor.scope_path))
    )
    if f.status:
        q = q.where(Household.status == f.status)
    if f.member_id:
        q = q.where(
            (Household.owner_member_id == f.member_id)
            | Household.account_id.in_(
                select(PointsAccountMember.account_id).where(
                    PointsAccountMember.member_id == f.member_id
                )
            )
        )
    if after:
        q = q.where(Household.id < after)
    rows = session.execute(q.order_by(Household.id.desc()).limit(limit + 1)).all()
    items = [
        HouseholdSummary(
            id=h.id,
            owner_member_id=h.owner_member_id,
            status=h.status,
            members=int(n) if h.status == domain.ACTIVE else 0,
            available=int(available),
            created_at=h.created_at,
        )
        for h, n, available in rows[:limit]
    ]
    more = len(rows) > limit
    return HouseholdPage(items=items, next_cursor=encode_cursor(items[-1].id) if more else None)


# --- writing ---------------------------------------------------------------------------


def _emit(session: Session, type_: str, h: Household, payload: dict[str, Any]) -> None:
    events.emit(
        session,
        type_,
        {"household_id": h.id, "owner_member_id": h.owner_member_id, **payload},
        member_id=payload.get("member_id", h.owner_member_id),
        org_path=h.org_path,
    )


def create(session: Session, actor: Actor, member_id: int) -> tuple[bool, HouseholdOut]:
    """The member becomes the main member of a household whose pool is their own points
    account. Idempotent: a main member's active household is answered again."""
    require(actor, MEMBER_WRITE)
    owner = members.get(session, actor, member_id)
    own = ledger.own_account(session, owner.id)
    ledger.lock_account(session, own.id)  # serialises with joins and leaves of this member
    existing = active_of_account(session, own.id)
    if existing is not None:
        return False, household_out(session, existing)
    current = ledger.membership(session, owner.id)
    if current is None or current.account_id != own.id:
        raise InOtherHousehold(
            f"Member {owner.id} draws on another member's pool; they must leave it first.",
            [FieldError("member_id", "in another household", "in_household")],
        )
    now = utcnow()
    h = Household(
        owner_member_id=owner.id,
        account_id=own.id,
        org_path=owner.org_path,
        status=domain.ACTIVE,
        created_at=now,
        created_by=actor.name,
    )
    try:
        with session.begin_nested():
            session.add(h)
            session.flush()
    except IntegrityError:  # created concurrently (SQLite readers): answer that one
        again = active_of_account(session, own.id)
        if again is None:
            raise
        return False, household_out(session, again)
    _emit(session, "household.created", h, {"account_id": own.id})
    audit.record(
        session,
        actor,
        "household.create",
        "household",
        h.id,
        org_path=h.org_path,
        after={"owner_member_id": owner.id, "account_id": own.id},
    )
    return True, household_out(session, h)


def _active_for_update(session: Session, actor: Actor, household_id: int) -> Household:
    h = _get(session, actor, household_id, lock=True)
    if h.status != domain.ACTIVE:
        raise HouseholdClosed(f"Household {h.id} was dissolved.")
    return h


def _invitee(session: Session, actor: Actor, data: InvitationCreate) -> Member:
    if data.phone is not None:
        return members.get_by_identity(session, actor, "phone", data.phone, field="phone")
    assert data.member_id is not None
    return members.get(session, actor, data.member_id)


def invite(
    session: Session, actor: Actor, household_id: int, data: InvitationCreate
) -> tuple[bool, InvitationOut]:
    """The main member invites a member (by member id or phone). Idempotent: an open
    invitation of the same member is answered again (its permission unchanged)."""
    require(actor, MEMBER_WRITE)
    h = _active_for_update(session, actor, household_id)
    who = _invitee(session, actor, data)
    field = "phone" if data.phone is not None else "member_id"
    now = utcnow()
    if who.id == h.owner_member_id or any(m.member_id == who.id for m in _drawing(session, h)):
        raise NotInvitable(
            f"Member {who.id} already draws on this household's pool.",
            [FieldError(field, "already in this household", "already_member")],
        )
    open_ = _pending(session, h.id, now)
    for inv in open_:
        if inv.member_id == who.id:
            return False, invitation_out(inv, h.owner_member_id, now)
    rules = settings(session)
    if not domain.has_room(rules.max_members, len(_drawing(session, h)), len(open_)):
        raise HouseholdFull(
            f"A household has at most {rules.max_members} members besides the main member "
            "(open invitations count).",
            [FieldError(field, f"at most {rules.max_members}", "household_full")],
        )
    # An expired invitation of the same member still holds the unique pending slot.
    session.execute(
        update(HouseholdInvitation)
        .where(
            HouseholdInvitation.household_id == h.id,
            HouseholdInvitation.member_id == who.id,
            HouseholdInvitation.status == domain.PENDING,
        )
        .values(status=domain.EXPIRED, decided_at=now)
    )
    inv = HouseholdInvitation(
        household_id=h.id,
        member_id=who.id,
        can_spend=data.can_spend,
        status=domain.PENDING,
        invited_by=actor.name,
        created_at=now,
        expires_at=domain.expires_at(now, rules.invitation_days),
        decided_at=None,
    )
    session.add(inv)
    session.flush()
    _emit(
        session,
        "household.invited",
        h,
        {"invitation_id": inv.id, "member_id": who.id, "can_spend": data.can_spend},
    )
    audit.record(
        session,
        actor,
        "household.invite",
        "household",
        h.id,
        org_path=h.org_path,
        after={"invitation_id": inv.id, "member_id": who.id, "can_spend": data.can_spend},
    )
    return True, invitation_out(inv, h.owner_member_id, now)


def _invitation(
    session: Session, actor: Actor, invitation_id: int
) -> tuple[HouseholdInvitation, Household]:
    inv = session.get(HouseholdInvitation, invitation_id)
    if inv is None:
        raise InvitationNotFound(f"No household invitation {invitation_id}.")
    try:
        h = _get(session, actor, inv.household_id, lock=True)
    except HouseholdNotFound:
        raise InvitationNotFound(f"No household invitation {invitation_id}.") from None
    session.refresh(inv)  # read again under the household's lock
    return inv, h


def _closed(inv: HouseholdInvitation, now: datetime) -> InvitationClosed:
    state = domain.invitation_state(inv.status, as_utc(inv.expires_at), now)
    return InvitationClosed(
        f"Invitation {inv.id} is {state}; it can no longer be answered.",
        extra={"invitation_status": state},
    )


def accept(
    session: Session, actor: Actor, invitation_id: int, *, transfer_points: bool = False
) -> InvitationOut:
    """The invited member accepts: they draw on the pool from now on (their own account
    must be shared with nobody — the ledger's rule). Idempotent.

    A member whose own account holds points keeps them only by not joining: with
    ``transfer_points`` (their explicit consent) every open lot moves into the pool with
    its earning time, availability and expiry, by a pair of ledger entries
    (``pool_join_out`` on their account, ``pool_join_in`` on the pool's,
    the new lots earned by them); without it the acceptance is refused and nothing changes.
    Points owed cannot move (refused); a frozen member cannot transfer points."""
    require(actor, MEMBER_WRITE)
    inv, h = _invitation(session, actor, invitation_id)
    now = utcnow()
    if inv.status == domain.ACCEPTED:
        return invitation_out(inv, h.owner_member_id, now)
    if h.status != domain.ACTIVE:
        raise HouseholdClosed(f"Household {h.id} was dissolved.")
    if domain.invitation_state(inv.status, as_utc(inv.expires_at), now) != domain.PENDING:
        raise _closed(inv, now)
    rules = settings(session)
    if len(_drawing(session, h)) >= rules.max_members:
        raise HouseholdFull(f"Household {h.id} already has {rules.max_members} members.")
    own = ledger.own_account(session, inv.member_id)
    if active_of_account(session, own.id) is not None:
        raise InOtherHousehold(
            f"Member {inv.member_id} is the main member of a household; "
            "they must dissolve it before joining another."
        )
    moved = _transfer_own_points(session, actor, inv, h, transfer_points)
    ledger.attach(session, h.account_id, inv.member_id, can_spend=inv.can_spend, actor=actor.name)
    inv.status = domain.ACCEPTED
    inv.decided_at = now
    session.flush()
    _emit(
        session,
        "household.joined",
        h,
        {
            "invitation_id": inv.id,
            "member_id": inv.member_id,
            "can_spend": inv.can_spend,
            "points_transferred": moved,
        },
    )
    audit.record(
        session,
        actor,
        "household.accept",
        "household",
        h.id,
        org_path=h.org_path,
        after={"invitation_id": inv.id, "member_id": inv.member_id, "points_transferred": moved},
    )
    return invitation_out(inv, h.owner_member_id, now)


def _transfer_own_points(
    session: Session, actor: Actor, inv: HouseholdInvitation, h: Household, consent: bool
) -> int:
    """Move the joining member's own points into the pool (with consent); how many moved."""
    own = ledger.own_account(session, inv.member_id)
    locked = ledger.lock_accounts(session, [own.id, h.account_id])
    src, dst = locked[own.id], locked[h.account_id]
    row = src.row
    if (row.available, row.pending, row.debt) == (0, 0, 0):
        return 0
    points = {"available": row.available, "pending": row.pending, "debt": row.debt}
    if row.debt:
        raise AccountNotEmpty(
            f"Member {inv.member_id} owes {row.debt} points; settle the debt before joining.",
            extra=points,
        )
    if not consent:
        raise PointsToTransfer(
            f"Member {inv.member_id} holds {row.available} available and {row.pending} "
            "pending points of their own: accept with transfer_points to move them into "
            "the household's pool (they stay in it on leaving), or use them first.",
            extra=points,
        )
    fraud.ensure_not_frozen(session, inv.member_id)
    lots = ledger.open_lots_of(session, own.id)
    src.member_id = dst.member_id = inv.member_id
    ledger.move_lots(
        session,
        src,
        dst,
        lots,
        ledger.Cause(
            source_type="household",
            source_id=str(inv.id),
            actor=actor.name,
            reason=f"own points moved into household {h.id}'s pool on joining",
        ),
        kind_out="pool_join_out",
        kind_in="pool_join_in",
        dedupe_key=f"household:invitation:{inv.id}:transfer",
        member_id=inv.member_id,
    )
    return int(points["available"] + points["pending"])


def withdraw(
    session: Session, actor: Actor, household_id: int, invitation_id: int
) -> InvitationOut:
    """The main member withdraws a pending invitation (it becomes ``cancelled``; the
    invited member can no longer accept it). Idempotent."""
    require(actor, MEMBER_WRITE)
    inv, h = _invitation(session, actor, invitation_id)
    if inv.household_id != household_id:
        raise InvitationNotFound(f"No invitation {invitation_id} in household {household_id}.")
    now = utcnow()
    if inv.status == domain.CANCELLED:
        return invitation_out(inv, h.owner_member_id, now)
    if domain.invitation_state(inv.status, as_utc(inv.expires_at), now) != domain.PENDING:
        raise _closed(inv, now)
    inv.status = domain.CANCELLED
    inv.decided_at = now
    session.flush()
    _emit(
        session,
        "household.invitation_withdrawn",
        h,
        {"invitation_id": inv.id, "member_id": inv.member_id},
    )
    audit.record(
        session,
        actor,
        "household.withdraw",
        "household",
        h.id,
        org_path=h.org_path,
        after={"invitation_id": inv.id, "member_id": inv.member_id},
    )
    return invitation_out(inv, h.owner_member_id, now)


def decline(session: Session, actor: Actor, invitation_id: int) -> InvitationOut:
    """The invited member declines. Idempotent."""
    require(actor, MEMBER_WRITE)
    inv, h = _invitation(session, actor, invitation_id)
    now = utcnow()
    if inv.status == domain.DECLINED:
        return invitation_out(inv, h.owner_member_id, now)
    if domain.invitation_state(inv.status, as_utc(inv.expires_at), now) != domain.PENDING:
        raise _closed(inv, now)
    inv.status = domain.DECLINED
    inv.decided_at = now
    session.flush()
    _emit(session, "household.declined", h, {"invitation_id": inv.id, "member_id": inv.member_id})
    audit.record(
        session,
        actor,
        "household.decline",
        "household",
        h.id,
        org_path=h.org_path,
        after={"invitation_id": inv.id, "member_id": inv.member_id},
    )
    return invitation_out(inv, h.owner_member_id, now)


def set_permission(
    session: Session, actor: Actor, household_id: int, member_id: int, can_spend: bool
) -> HouseholdOut:
    """The main member grants or withdraws a member's permission to spend the pool."""
    require(actor, MEMBER_WRITE)
    h = _active_for_update(session, actor, household_id)
    if member_id == h.owner_member_id:
        raise MainMemberStays(
            "The main member always may spend the pool's points.",
            [FieldError("member_id", "the main member", "main_member")],
        )
    before = ledger.membership(session, member_id)
    was = before.can_spend if before is not None and before.account_id == h.account_id else None
    ledger.set_can_spend(session, h.account_id, member_id, can_spend)
    if was != can_spend:
        _emit(
            session,
            "household.permission_changed",
            h,
            {"member_id": member_id, "can_spend": can_spend},
        )
        audit.record(
            session,
            actor,
            "household.permission",
            "household",
            h.id,
            org_path=h.org_path,
            before={"member_id": member_id, "can_spend": was},
            after={"member_id": member_id, "can_spend": can_spend},
        )
    return household_out(session, h)


def _leave(session: Session, actor: Actor, h: Household, member_id: int, reason: str) -> bool:
    m = ledger.membership(session, member_id)
    if m is None or m.account_id != h.account_id:
        return False
    ledger.detach(session, member_id, actor=actor.name)
    acct = session.get(PointsAccount, h.account_id)
    _emit(
        session,
        "household.left",
        h,
        {
            "member_id": member_id,
            "reason": reason,
            "pool_available": acct.available if acct else 0,
        },
    )
    return True


def leave(session: Session, actor: Actor, household_id: int, member_id: int) -> HouseholdOut:
    """A member leaves (or the main member removes them): no points move, the history
    stays. Idempotent: a member no longer drawing on the pool is answered as it is."""
    require(actor, MEMBER_WRITE)
    h = _active_for_update(session, actor, household_id)
    if member_id == h.owner_member_id:
        raise MainMemberStays(
            "The main member cannot leave the household; dissolve it instead.",
            [FieldError("member_id", "the main member", "main_member")],
        )
    if _leave(session, actor, h, member_id, "left"):
        audit.record(
            session,
            actor,
            "household.leave",
            "household",
            h.id,
            org_path=h.org_path,
            after={"member_id": member_id},
        )
    return household_out(session, h)


def dissolve(session: Session, actor: Actor, household_id: int) -> HouseholdOut:
    """Every member leaves (the pool's points stay the main member's), open invitations
    are cancelled, the household is closed (kept as history). Idempotent."""
    require(actor, MEMBER_WRITE)
    h = _get(session, actor, household_id, lock=True)
    if h.status == domain.DISSOLVED:
        return household_out(session, h)
    now = utcnow()
    left = [m.member_id for m in _drawing(session, h)]
    for mid in left:
        _leave(session, actor, h, mid, "dissolved")
    session.execute(
        update(HouseholdInvitation)
        .where(
            HouseholdInvitation.household_id == h.id,
            HouseholdInvitation.status == domain.PENDING,
        )
        .values(status=domain.CANCELLED, decided_at=now)
    )
    h.status = domain.DISSOLVED
    h.dissolved_at = now
    h.dissolved_by = actor.name
    session.flush()
    _emit(session, "household.dissolved", h, {"member_id": h.owner_member_id, "members": left})
    audit.record(
        session,
        actor,
        "household.dissolve",
        "household",
        h.id,
        org_path=h.org_path,
        after={"members_left": left},
    )
    return household_out(session, h)


def expire_due(session: Session, now: datetime, limit: int = 500) -> int:
    """Write down invitations past their expiry (``household.invitation_expired``); the
    periodic sweep calls this. Answers how many expired."""
    due = list(
        session.scalars(
            select(HouseholdInvitation)
            .where(
                HouseholdInvitation.status == domain.PENDING,
                HouseholdInvitation.expires_at <= now,
            )
            .order_by(HouseholdInvitation.id)
            .limit(limit)
        )
    )
    for inv in due:
        h = session.get(Household, inv.household_id)
        assert h is not None
        inv.status = domain.EXPIRED
        inv.decided_at = now
        _emit(
            session,
            "household.invitation_expired",
            h,
            {"invitation_id": inv.id, "member_id": inv.member_id},
        )
    session.flush()
    return len(due)


def pool_member_ids(session: Session, member_id: int) -> list[int]:
    """The members drawing on the same pool as the member now (the member included)."""
    m = ledger.membership(session, member_id)
    if m is None:
        return [member_id]
    return [r.member_id for r in ledger.members_of(session, m.account_id)]
