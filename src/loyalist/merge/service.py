"""Identity merge and duplicate candidates (issue 13 item 2).

Staff merge a member (``merged``) into another (``survivor``) after a preview. What moves
to the survivor: identities, orders, coupons, referrals, badges, check-ins, habits, tags,
consents, messages, tasks, redemptions and the fraud history (checks and review items; rows
whose unique key the survivor already holds — the same tag, badge, check-in day, consent
channel — stay with the merged member and are named in the preview); the per-member
counters (reward and coupon use counts against per-member limits, the fraud controls'
velocity counters and devices seen) add into the survivor's; a freeze (风控冻结) of the
merged member passes to the survivor (a frozen identity cannot escape by merging); and the
points: the merged member's open lots move to the
survivor's account with their original earning time, availability and expiry, by a pair
of ledger entries (``merge_out`` / ``merge_in``, :func:`loyalist.ledger.service.move_lots`);
ledger history itself is append-only and stays where it was written. The merged member
keeps their row (status ``merged``) and their id resolves to the survivor
(:func:`loyalist.member.service.get`). The survivor's tier is re-evaluated (orders moved)
and is never below the merged member's. A merge records every row it moved, so it can be
undone within ``Settings.merge_undo_days`` when nothing has happened to either member since.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from loyalist.access.permissions import MEMBER_MERGE, MEMBER_READ, require
from loyalist.audit import service as audit
from loyalist.config import get_settings
from loyalist.events import service as events
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.ledger import service as ledger
from loyalist.ledger.service import Cause
from loyalist.member import service as members
from loyalist.member.errors import MemberNotFound
from loyalist.merge.domain import clashing_kinds, pair, undo_refusal
from loyalist.merge.errors import (
    CandidateNotFound,
    MergeNotFound,
    MergeRefused,
    SameMember,
    UndoRefused,
)
from loyalist.merge.schemas import (
    CandidateOut,
    MergeConflict,
    MergeOut,
    MergePreviewOut,
    MergeSide,
)
from loyalist.models import (
    AdjustmentRequest,
    ChallengeProgress,
    Checkin,
    ConsentRecord,
    CouponCode,
    CouponMemberUse,
    CouponRedemption,
    DuplicateCandidate,
    FraudCheck,
    FraudCounter,
    FraudDeviceMember,
    FraudReview,
    HabitActivity,
    Member,
    MemberBadge,
    MemberConsent,
    MemberFreeze,
    MemberIdentity,
    MemberMerge,
    MemberTag,
    MemberTask,
    Message,
    Order,
    Redemption,
    Referral,
    RewardUsage,
    TierChange,
)
from loyalist.programme import service as programmes
from loyalist.tier import service as tiers

DONE = "done"
UNDONE = "undone"
OPEN = "open"
DISMISSED = "dismissed"
MERGED = "merged"

#: What moves to the survivor: (name, model, member column), each table keyed by one ``id``.
#: Ledger rows never move (they are append-only); the points move by entries. Per-member
#: counters add into the survivor's (``_COUNTERS``); the referral code stays.
MOVES: tuple[tuple[str, Any, str], ...] = (
    ("identities", MemberIdentity, "member_id"),
    ("orders", Order, "member_id"),
    ("coupons", CouponCode, "member_id"),
    ("coupon_redemptions", CouponRedemption, "member_id"),
    ("redemptions", Redemption, "member_id"),
    ("referrals_made", Referral, "referrer_id"),
    ("referral_received", Referral, "referred_id"),
    ("badges", MemberBadge, "member_id"),
    ("checkins", Checkin, "member_id"),
    ("activities", HabitActivity, "member_id"),
    ("challenges", ChallengeProgress, "member_id"),
    ("tags", MemberTag, "member_id"),
    ("consents", MemberConsent, "member_id"),
    ("consent_records", ConsentRecord, "member_id"),
    ("messages", Message, "member_id"),
    ("tasks", MemberTask, "member_id"),
    ("adjustment_requests", AdjustmentRequest, "member_id"),
    ("fraud_checks", FraudCheck, "member_id"),
    ("fraud_reviews", FraudReview, "member_id"),
)
#: Tables whose new rows for either member after a merge mean "something happened".
#: Messages are not among them: the merge's own events (a tier upgrade) may send one.
_WATCHED: tuple[tuple[str, Any, str], ...] = (
    *(m for m in MOVES if m[0] != "messages"),
    ("tier_changes", TierChange, "member_id"),
)
_TIER_FIELDS = (
    "tier_code",
    "tier_since",
    "tier_expires_at",
    "tier_periods_below",
    "tier_evaluated_period",
)


@dataclass(frozen=True)
class _Counter:
    """A per-member counter table: its primary key holds the member (``column``, the id as
    ``key`` spells it), and its ``values`` add up when two members become one."""

    name: str
    model: Any
    column: str
    values: tuple[str, ...]
    key: Callable[[int], Any] = int
    only: Callable[[], Any] | None = None  # the rows of the table that are per member


#: Per-member counters: the merged member's rows add into the survivor's (a row the
#: survivor lacks is created), and the merged member's are deleted; an undo subtracts and
#: restores them. A device seen with both members counts one member (the same person).
_COUNTERS: tuple[_Counter, ...] = (
    _Counter("reward_usage", RewardUsage, "member_id", ("used",)),
    _Counter("coupon_uses", CouponMemberUse, "member_id", ("uses",)),
    _Counter(
        "fraud_counters",
        FraudCounter,
        "subject",
        ("count", "points"),
        key=str,
        only=lambda: FraudCounter.scope == "member",
    ),
    _Counter("fraud_devices", FraudDeviceMember, "member_id", ()),
)


def _enc(v: Any) -> Any:
    if isinstance(v, datetime):
        return {"t": v.isoformat()}
    if isinstance(v, date):
        return {"d": v.isoformat()}
    return v


def _dec(v: Any) -> Any:
    if isinstance(v, dict):
        return datetime.fromisoformat(v["t"]) if "t" in v else date.fromisoformat(v["d"])
    return v


def _others(c: _Counter) -> list[str]:
    return [col.name for col in c.model.__table__.primary_key.columns if col.name != c.column]


def _add_counters(session: Session, survivor_id: int, merged_id: int) -> dict[str, Any]:
    """Add the merged member's counters into the survivor's; what was done, for an undo."""
    out: dict[str, Any] = {}
    for c in _COUNTERS:
        q = select(c.model).where(getattr(c.model, c.column) == c.key(merged_id))
        if c.only is not None:
            q = q.where(c.only())
        done: list[dict[str, Any]] = []
        for row in list(session.scalars(q.order_by(*c.model.__table__.primary_key.columns))):
            key = {n: getattr(row, n) for n in _others(c)}
            values = [int(getattr(row, v)) for v in c.values]
            target = session.get(c.model, {**key, c.column: c.key(survivor_id)})
            if target is None:
                session.add(
                    c.model(
                        **key,
                        **{c.column: c.key(survivor_id)},
                        **dict(zip(c.values, values, strict=True)),
                    )
                )
            else:
                for name, v in zip(c.values, values, strict=True):
                    setattr(target, name, getattr(target, name) + v)
            session.delete(row)
            session.flush()
            done.append(
                {
                    "key": {n: _enc(v) for n, v in key.items()},
                    "values": values,
                    "created": target is None,
                }
            )
        if done:
            out[c.name] = done
    return out


def _subtract_counters(
    session: Session, survivor_id: int, merged_id: int, done: dict[str, Any]
) -> None:
    """Undo :func:`_add_counters`: the survivor's counters lose what was added (a row the
    merge created goes), the merged member's come back. A row pruned since (old fraud
    windows) is no longer read and is not brought back."""
    for c in _COUNTERS:
        for item in done.get(c.name, []):
            key = {n: _dec(v) for n, v in item["key"].items()}
            target = session.get(c.model, {**key, c.column: c.key(survivor_id)})
            if target is None:
                continue
            if item["created"]:
                session.delete(target)
            else:
                for name, v in zip(c.values, item["values"], strict=True):
                    setattr(target, name, getattr(target, name) - v)
            session.add(
                c.model(
                    **key,
                    **{c.column: c.key(merged_id)},
                    **dict(zip(c.values, item["values"], strict=True)),
                )
            )
            session.flush()


def _move_freeze(session: Session, source_id: int, target_id: int) -> bool:
    """A freeze of ``source_id`` passes to ``target_id`` (unless it has its own)."""
    row = session.get(MemberFreeze, source_id)
    if row is None or session.get(MemberFreeze, target_id) is not None:
        return False
    session.add(
        MemberFreeze(
            member_id=target_id, reason=row.reason, frozen_by=row.frozen_by, frozen_at=row.frozen_at
        )
    )
    session.delete(row)
    session.flush()
    return True


def _relink_reviews(
    session: Session, review_ids: list[int], lots: dict[int, int], account_id: int
) -> None:
    """Review items whose held lot moved point at the lot (and account) it moved to."""
    if not review_ids:
        return
    for r in session.scalars(select(FraudReview).where(FraudReview.id.in_(review_ids))):
        if r.lot_id in lots:
            r.lot_id, r.account_id = lots[r.lot_id], account_id
    session.flush()


# --- preview -----------------------------------------------------------------------------


@dataclass
class Side:
    member: Member
    available: int
    pending: int
    lots: int


@dataclass
class Preview:
    survivor: Side
    merged: Side
    moves: dict[str, int]
    kept: dict[str, int]  # rows that stay with the merged member (the survivor has one)
    conflicts: list[dict[str, Any]]  # {"code", "detail", "blocking"}
    available_after: int
    pending_after: int
    tier_after: str

    @property
    def blocking(self) -> list[dict[str, Any]]:
        return [c for c in self.conflicts if c["blocking"]]


@dataclass
class _Plan:
    moves: dict[str, list[int]] = field(default_factory=dict)
    kept: dict[str, list[int]] = field(default_factory=dict)


def _raw(session: Session, actor: Actor, member_id: int) -> Member:
    m = session.get(Member, member_id)
    if m is None or not actor.sees(m.org_path):
        raise MemberNotFound(f"No member {member_id}.")
    return m


def _pk(model: Any) -> Any:
    return next(iter(model.__table__.primary_key.columns))


def _unique_sets(model: Any, column: str) -> list[list[str]]:
    """The unique keys of ``model`` that include the member column."""
    out: list[list[str]] = []
    pk = [c.name for c in model.__table__.primary_key.columns]
    if column in pk:
        out.append(pk)
    for con in model.__table__.constraints:
        names = [c.name for c in getattr(con, "columns", [])]
        if con.__class__.__name__ == "UniqueConstraint" and column in names:
            out.append(names)
    for ix in model.__table__.indexes:
        names = [c.name for c in ix.columns]
        if ix.unique and column in names:
            out.append(names)
    return out


def _plan(session: Session, survivor_id: int, merged_id: int) -> _Plan:
    plan = _Plan()
    for name, model, column in MOVES:
        col = getattr(model, column)
        rows = list(session.scalars(select(model).where(col == merged_id).order_by(_pk(model))))
        keys = _unique_sets(model, column)
        for row in rows:
            clash = False
            for names in keys:
                cond = [getattr(model, n) == getattr(row, n) for n in names if n != column]
                q = select(func.count()).select_from(model).where(col == survivor_id, *cond)
                if session.scalar(q):
                    clash = True
                    break
            target = plan.kept if clash else plan.moves
            target.setdefault(name, []).append(int(getattr(row, _pk(model).name)))
    return plan


def _side(session: Session, m: Member) -> Side:
    acct = ledger.own_account(session, m.id)
    return Side(m, acct.available, acct.pending, len(ledger.open_lots_of(session, acct.id)))


def _blocking(session: Session, survivor: Member, merged: Member) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for role, m in (("survivor", survivor), ("merged", merged)):
        if m.status == MERGED:
            out.append(_c("already_merged", f"Member {m.id} ({role}) was merged already."))
        own = ledger.own_account(session, m.id)
        current = ledger.membership(session, m.id)
        hosted = [x for x in ledger.members_of(session, own.id) if x.member_id != m.id]
        if current is None or current.account_id != own.id or hosted:
            out.append(
                _c("shared_account", f"Member {m.id} ({role}) shares a points pool (household).")
            )
        if own.debt:
            out.append(_c("debt", f"Member {m.id} ({role}) owes {own.debt} points."))
    return out


def _c(code: str, detail: str, *, blocking: bool = True) -> dict[str, Any]:
    return {"code": code, "detail": detail, "blocking": blocking}


def preview(session: Session, actor: Actor, survivor_id: int, merged_id: int) -> Preview:
    """What merging ``merged_id`` into ``survivor_id`` would do; nothing is written."""
    require(actor, MEMBER_READ)
    if survivor_id == merged_id:
        raise SameMember("A member cannot be merged with itself.")
    survivor = _raw(session, actor, survivor_id)
    merged = _raw(session, actor, merged_id)
    plan = _plan(session, survivor.id, merged.id)
    conflicts = _blocking(session, survivor, merged)
    for kind in clashing_kinds(
        members.identities(session, survivor.id), members.identities(session, merged.id)
    ):
        conflicts.append(
            _c(
                f"both_have_{kind}",
                f"Both members hold a {kind}; the survivor keeps both.",
                blocking=False,
            )
        )
    for name, ids in plan.kept.items():
        conflicts.append(
            _c(
                f"kept_{name}",
                f"{len(ids)} {name} stay with the merged member (the survivor has the same).",
                blocking=False,
            )
        )
    s, m = _side(session, survivor), _side(session, merged)
    _version, programme = programmes.active(session)
    codes = [t.code for t in programme.tiers.levels]
    tier_after = max(
        (survivor.tier_code, merged.tier_code),
        key=lambda c: codes.index(c) if c in codes else -1,
    )
    return Preview(
        survivor=s,
        merged=m,
        moves={k: len(v) for k, v in plan.moves.items()},
        kept={k: len(v) for k, v in plan.kept.items()},
        conflicts=conflicts,
        available_after=s.available + m.available,
        pending_after=s.pending + m.pending,
        tier_after=tier_after,
    )


# --- merge -------------------------------------------------------------------------------


def _high_water(session: Session) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, model, _column in _WATCHED:
        out[name] = int(session.scalar(select(func.coalesce(func.max(_pk(model)), 0))) or 0)
    return out


def _tier_state(m: Member) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _TIER_FIELDS:
        v = getattr(m, name)
        out[name] = v.isoformat() if isinstance(v, datetime) else v
    return out


def merge(session: Session, actor: Actor, survivor_id: int, merged_id: int) -> MemberMerge:
    """Merge ``merged_id`` into ``survivor_id`` (see the module's docstring)."""
    require(actor, MEMBER_MERGE)
    if survivor_id == merged_id:
        raise SameMember("A member cannot be merged with itself.")
    survivor = _raw(session, actor, survivor_id)
    merged = _raw(session, actor, merged_id)
    own_s = ledger.own_account(session, survivor.id)
    own_m = ledger.own_account(session, merged.id)
    locked = ledger.lock_accounts(session, [own_s.id, own_m.id])
    blocking = _blocking(session, survivor, merged)
    if blocking:
        raise MergeRefused(
            "; ".join(c["detail"] for c in blocking),
            extra={"conflicts": [c["code"] for c in blocking]},
        )
    now = utcnow()
    before: dict[str, Any] = {
        "survivor": {
            "tier": _tier_state(survivor),
            "status": survivor.status,
            "available": own_s.available,
            "pending": own_s.pending,
            "lifetime_earned": own_s.lifetime_earned,
        },
        "merged": {
            "tier": _tier_state(merged),
            "status": merged.status,
            "available": own_m.available,
            "pending": own_m.pending,
            "lifetime_earned": own_m.lifetime_earned,
        },
    }
    row = MemberMerge(
        survivor_id=survivor.id,
        merged_id=merged.id,
        status=DONE,
        actor=actor.name,
        moved={},
        before=before,
        created_at=now,
        undo_until=now + timedelta(days=get_settings().merge_undo_days),
        undone_at=None,
        undone_by=None,
    )
    session.add(row)
    session.flush()
    plan = _plan(session, survivor.id, merged.id)
    for name, model, column in MOVES:
        ids = plan.moves.get(name)
        if ids:
            session.execute(
                update(model)
                .where(_pk(model).in_(ids))
                .values({column: survivor.id})
                .execution_options(synchronize_session="fetch")
            )
    src, dst = locked[own_m.id], locked[own_s.id]
    src.member_id = dst.member_id = survivor.id
    lots = ledger.open_lots_of(session, own_m.id)
    moved: dict[str, Any] = {"rows": plan.moves, "kept": plan.kept}
    cause = Cause(
        source_type="merge",
        source_id=str(row.id),
        actor=actor.name,
        reason=f"member {merged.id} merged into {survivor.id}",
    )
    if lots:
        out, inn, new = ledger.move_lots(
            session,
            src,
            dst,
            lots,
            cause,
            kind_out="merge_out",
            kind_in="merge_in",
            dedupe_key=f"merge:{row.id}",
        )
        moved["ledger"] = {"out": out.id, "in": inn.id, "lots": new}
        _relink_reviews(
            session,
            plan.moves.get("fraud_reviews", []),
            dict(zip([lot.id for lot in lots], new, strict=True)),
            own_s.id,
        )
    moved["counters"] = _add_counters(session, survivor.id, merged.id)
    moved["freeze"] = _move_freeze(session, merged.id, survivor.id)
    lifetime = own_m.lifetime_earned
    own_s.lifetime_earned += lifetime
    own_m.lifetime_earned = 0
    moved["lifetime_earned"] = lifetime
    merged.status = MERGED
    merged.updated_at = now
    survivor.updated_at = now
    session.flush()
    # The tier: re-evaluated with the orders that moved, and never below the merged one's.
    version, programme = programmes.active(session)
    tiers.upgrade_if_qualified(session, survivor, programme, version, now)
    codes = [t.code for t in programme.tiers.levels]
    if (
        merged.tier_code in codes
        and survivor.tier_code in codes
        and codes.index(merged.tier_code) > codes.index(survivor.tier_code)
    ):
        tiers.set_tier(session, survivor, programme, version, merged.tier_code, "merge", now)
    for cand in session.scalars(
        select(DuplicateCandidate).where(
            DuplicateCandidate.member_a_id == min(survivor.id, merged.id),
            DuplicateCandidate.member_b_id == max(survivor.id, merged.id),
        )
    ):
        cand.status, cand.decided_at, cand.decided_by = MERGED, now, actor.name
    session.flush()
    moved["high_water"] = _high_water(session)
    moved["chain"] = {
        "survivor": ledger.own_account(session, survivor.id).chain_seq,
        "merged": ledger.own_account(session, merged.id).chain_seq,
    }
    moved["survivor_updated_at"] = survivor.updated_at.isoformat()
    row.moved = moved
    points = before["merged"]["available"]
    events.emit(
        session,
        "member.merged",
        {
            "merge_id": row.id,
            "survivor_id": survivor.id,
            "merged_id": merged.id,
            "points": points,
            "pending": before["merged"]["pending"],
            "tier": survivor.tier_code,
            "undo_until": row.undo_until.isoformat(),
            "by": actor.name,
        },
        member_id=survivor.id,
        org_path=survivor.org_path,
    )
    audit.record(
        session,
        actor,
        "member.merge",
        "member",
        survivor.id,
        org_path=survivor.org_path,
        before={
            "merged_id": merged.id,
            "available": before["survivor"]["available"],
            "tier": before["survivor"]["tier"]["tier_code"],
        },
        after={
            "merge_id": row.id,
            "merged_id": merged.id,
            "available": own_s.available,
            "tier": survivor.tier_code,
            "moved": {k: len(v) for k, v in plan.moves.items()},
        },
    )
    session.flush()
    return row


# --- undo --------------------------------------------------------------------------------


def get_merge(session: Session, actor: Actor, merge_id: int) -> MemberMerge:
    require(actor, MEMBER_READ)
    row = session.get(MemberMerge, merge_id)
    if row is None:
        raise MergeNotFound(f"No merge {merge_id}.")
    survivor = session.get(Member, row.survivor_id)
    if survivor is None or not actor.sees(survivor.org_path):
        raise MergeNotFound(f"No merge {merge_id}.")
    return row


def activity_since(session: Session, row: MemberMerge) -> list[str]:
    """What happened to either member since the merge (an empty list: nothing)."""
    found: list[str] = []
    ids = (row.survivor_id, row.merged_id)
    water: dict[str, int] = row.moved.get("high_water", {})
    for name, model, column in _WATCHED:
        q = select(func.count()).select_from(model)
        q = q.where(getattr(model, column).in_(ids), _pk(model) > water.get(name, 0))
        if n := int(session.scalar(q) or 0):
            found.append(f"{n} new {name}")
    chain = row.moved.get("chain", {})
    for role, mid in (("survivor", row.survivor_id), ("merged", row.merged_id)):
        acct = ledger.own_account(session, mid)
        if acct.chain_seq != chain.get(role, acct.chain_seq):
            found.append(f"points moved on the {role}'s account")
    survivor = session.get(Member, row.survivor_id)
    if survivor is not None and survivor.updated_at.isoformat() != row.moved.get(
        "survivor_updated_at"
    ):
        found.append("the survivor's profile changed")
    return found


def undo(session: Session, actor: Actor, merge_id: int) -> MemberMerge:
    """Undo a merge: every row moves back, the points return with their expiry, both tiers
    are as before. Refused (409, with the reason) after the undo period or any activity."""
    require(actor, MEMBER_MERGE)
    row = get_merge(session, actor, merge_id)
    survivor = session.get(Member, row.survivor_id)
    merged = session.get(Member, row.merged_id)
    assert survivor is not None and merged is not None
    own_s = ledger.own_account(session, survivor.id)
    own_m = ledger.own_account(session, merged.id)
    locked = ledger.lock_accounts(session, [own_s.id, own_m.id])
    now = utcnow()
    why = undo_refusal(
        status=row.status,
        now=now,
        undo_until=row.undo_until,
        activity=activity_since(session, row) if row.status == DONE else [],
    )
    if why:
        raise UndoRefused(why, extra={"merge_id": row.id})
    moved = row.moved
    for name, model, column in MOVES:
        ids = moved.get("rows", {}).get(name)
        if ids:
            session.execute(
                update(model)
                .where(_pk(model).in_(ids))
                .values({column: merged.id})
                .execution_options(synchronize_session="fetch")
            )
    ledger_moved = moved.get("ledger")
    if ledger_moved:
        src, dst = locked[own_s.id], locked[own_m.id]
        src.member_id = dst.member_id = merged.id
        lots = [
            lot
            for lot in ledger.open_lots_of(session, own_s.id)
            if lot.id in set(ledger_moved["lots"])
        ]
        lots.sort(key=lambda lot: ledger_moved["lots"].index(lot.id))
        _out, _in, back = ledger.move_lots(
            session,
            src,
            dst,
            lots,
            Cause(
                source_type="merge",
                source_id=str(row.id),
                actor=actor.name,
                reason=f"merge {row.id} undone",
            ),
            kind_out="merge_undo_out",
            kind_in="merge_undo_in",
            dedupe_key=f"merge:{row.id}:undo",
        )
        _relink_reviews(
            session,
            moved.get("rows", {}).get("fraud_reviews", []),
            dict(zip([lot.id for lot in lots], back, strict=True)),
            own_m.id,
        )
    _subtract_counters(session, survivor.id, merged.id, moved.get("counters", {}))
    if moved.get("freeze"):
        _move_freeze(session, survivor.id, merged.id)
    lifetime = int(moved.get("lifetime_earned") or 0)
    own_s.lifetime_earned -= lifetime
    own_m.lifetime_earned += lifetime
    version, programme = programmes.active(session)
    before = row.before
    for m, state in ((survivor, before["survivor"]), (merged, before["merged"])):
        tier = state["tier"]
        if m.tier_code != tier["tier_code"]:
            tiers.set_tier(session, m, programme, version, tier["tier_code"], "merge_undone", now)
        for name in _TIER_FIELDS:
            value = tier[name]
            if name in ("tier_since", "tier_expires_at") and value is not None:
                value = datetime.fromisoformat(value)
            setattr(m, name, value)
    merged.status = before["merged"]["status"]
    merged.updated_at = survivor.updated_at = now
    for cand in session.scalars(
        select(DuplicateCandidate).where(
            DuplicateCandidate.member_a_id == min(survivor.id, merged.id),
            DuplicateCandidate.member_b_id == max(survivor.id, merged.id),
            DuplicateCandidate.status == MERGED,
        )
    ):
        cand.status, cand.decided_at, cand.decided_by = OPEN, None, None
    row.status, row.undone_at, row.undone_by = UNDONE, now, actor.name
    session.flush()
    events.emit(
        session,
        "member.merge_undone",
        {
            "merge_id": row.id,
            "survivor_id": survivor.id,
            "merged_id": merged.id,
            "by": actor.name,
        },
        member_id=survivor.id,
        org_path=survivor.org_path,
    )
    audit.record(
        session,
        actor,
        "member.merge.undo",
        "member",
        survivor.id,
        org_path=survivor.org_path,
        before={"merge_id": row.id, "status": DONE},
        after={"merge_id": row.id, "status": UNDONE, "merged_id": merged.id},
    )
    return row


def merges_of(session: Session, member_id: int) -> list[MemberMerge]:
    """The merges a member took part in, newest first."""
    q = select(MemberMerge).where(
        or_(MemberMerge.survivor_id == member_id, MemberMerge.merged_id == member_id)
    )
    return list(session.scalars(q.order_by(MemberMerge.id.desc())))


# --- duplicate candidates ----------------------------------------------------------------


def _live_members() -> Any:
    return (Member.status != MERGED) & Member.erased_at.is_(None)


def find_candidates(session: Session) -> int:
    """Record new candidate pairs: one member's phone or e-mail held as another's identity
    (same blind index), or the same name (its blind index: case and spaces folded) with the
    same birthday (decrypted here, in the job). Returns how many pairs were added; pairs
    already known (open, merged or dismissed) are not proposed again."""
    found: dict[tuple[int, int], set[str]] = {}
    for kind, column in (("phone", Member.phone_bidx), ("email", Member.email_bidx)):
        q = (
            select(Member.id, MemberIdentity.member_id)
            .join(MemberIdentity, MemberIdentity.value_bidx == column)
            .where(
                MemberIdentity.kind == kind,
                MemberIdentity.member_id != Member.id,
                _live_members(),
            )
        )
        for a, b in session.execute(q):
            found.setdefault(pair(int(a), int(b)), set()).add(kind)
    names = (
        select(Member.name_bidx)
        .where(Member.name_bidx.is_not(None), _live_members())
        .group_by(Member.name_bidx)
        .having(func.count() > 1)
    )
    groups: dict[str, list[Member]] = {}
    for m in session.scalars(
        select(Member).where(Member.name_bidx.in_(names), _live_members()).order_by(Member.id)
    ):
        if m.birthday is not None and m.name_bidx is not None:
            groups.setdefault(m.name_bidx, []).append(m)
    for same_name in groups.values():
        for i, first in enumerate(same_name):
            for second in same_name[i + 1 :]:
                if first.birthday == second.birthday:
                    found.setdefault(pair(first.id, second.id), set()).add("name_birthday")
    live = {
        int(x)
        for x in session.scalars(
            select(Member.id).where(Member.id.in_({i for p in found for i in p}), _live_members())
        )
    }
    known = {
        (int(a), int(b))
        for a, b in session.execute(
            select(DuplicateCandidate.member_a_id, DuplicateCandidate.member_b_id)
        )
    }
    now = utcnow()
    added = 0
    for (a, b), reasons in sorted(found.items()):
        if (a, b) in known or a not in live or b not in live:
            continue
        session.add(
            DuplicateCandidate(
                member_a_id=a,
                member_b_id=b,
                reasons=sorted(reasons),
                status=OPEN,
                created_at=now,
                decided_at=None,
                decided_by=None,
            )
        )
        added += 1
    session.flush()
    return added


def candidates(
    session: Session, actor: Actor, *, status: str = OPEN, limit: int = 100
) -> list[DuplicateCandidate]:
    """Candidate pairs in the actor's scope (both members visible), oldest first."""
    require(actor, MEMBER_READ)
    q = (
        select(DuplicateCandidate)
        .where(DuplicateCandidate.status == status)
        .order_by(DuplicateCandidate.id)
    )
    out: list[DuplicateCandidate] = []
    for cand in session.scalars(q):
        a = session.get(Member, cand.member_a_id)
        b = session.get(Member, cand.member_b_id)
        if a is not None and b is not None and actor.sees(a.org_path) and actor.sees(b.org_path):
            out.append(cand)
            if len(out) >= limit:
                break
    return out


def dismiss(session: Session, actor: Actor, candidate_id: int) -> DuplicateCandidate:
    """Not the same person: the pair is not proposed again. Idempotent."""
    require(actor, MEMBER_MERGE)
    cand = session.get(DuplicateCandidate, candidate_id)
    a = session.get(Member, cand.member_a_id) if cand else None
    b = session.get(Member, cand.member_b_id) if cand else None
    if (
        cand is None
        or a is None
        or b is None
        or not (actor.sees(a.org_path) and actor.sees(b.org_path))
    ):
        raise CandidateNotFound(f"No duplicate candidate {candidate_id}.")
    if cand.status == DISMISSED:
        return cand
    if cand.status != OPEN:
        raise MergeRefused(
            f"Candidate {candidate_id} is {cand.status}; only an open one is dismissed."
        )
    before = {"status": cand.status}
    cand.status, cand.decided_at, cand.decided_by = DISMISSED, utcnow(), actor.name
    session.flush()
    audit.record(
        session,
        actor,
        "member.duplicate.dismiss",
        "duplicate_candidate",
        cand.id,
        org_path=a.org_path,
        before=before,
        after={"status": DISMISSED, "members": [a.id, b.id]},
    )
    return cand


# --- answers -----------------------------------------------------------------------------


def _side_out(side: Side) -> MergeSide:
    return MergeSide(
        member_id=side.member.id,
        member_no=side.member.member_no,
        tier=side.member.tier_code,
        available=side.available,
        pending=side.pending,
        open_lots=side.lots,
    )


def preview_out(p: Preview) -> MergePreviewOut:
    return MergePreviewOut(
        survivor=_side_out(p.survivor),
        merged=_side_out(p.merged),
        moves=p.moves,
        kept=p.kept,
        conflicts=[MergeConflict(**c) for c in p.conflicts],
        can_merge=not p.blocking,
        available_after=p.available_after,
        pending_after=p.pending_after,
        tier_after=p.tier_after,
    )


def preview_view(
    session: Session, actor: Actor, survivor_id: int, merged_id: int
) -> MergePreviewOut:
    return preview_out(preview(session, actor, survivor_id, merged_id))


def merge_out(row: MemberMerge) -> MergeOut:
    before = row.before.get("merged", {})
    return MergeOut(
        id=row.id,
        survivor_id=row.survivor_id,
        merged_id=row.merged_id,
        status="done" if row.status == DONE else "undone",
        by=row.actor,
        created_at=row.created_at,
        undo_until=row.undo_until,
        undone_at=row.undone_at,
        undone_by=row.undone_by,
        moved={k: len(v) for k, v in (row.moved.get("rows") or {}).items()},
        points_moved=int(before.get("available") or 0),
        pending_moved=int(before.get("pending") or 0),
    )


def candidate_out(c: DuplicateCandidate) -> CandidateOut:
    status: Any = c.status
    return CandidateOut(
        id=c.id,
        member_a_id=c.member_a_id,
        member_b_id=c.member_b_id,
        reasons=[str(r) for r in c.reasons],
        status=status,
        created_at=c.created_at,
        decided_at=c.decided_at,
        decided_by=c.decided_by,
    )


def recent(session: Session, actor: Actor, *, limit: int = 100) -> list[MemberMerge]:
    """The latest merges whose survivor the actor sees, newest first (the console's list)."""
    require(actor, MEMBER_READ)
    out: list[MemberMerge] = []
    for row in session.scalars(select(MemberMerge).order_by(MemberMerge.id.desc())):
        survivor = session.get(Member, row.survivor_id)
        if survivor is not None and actor.sees(survivor.org_path):
            out.append(row)
            if len(out) >= limit:
                break
    return out


def undo_blocked(session: Session, row: MemberMerge) -> tuple[str, list[str]] | None:
    """Why an undo would be refused now, as (``undone`` | ``expired`` | ``activity``, what
    happened since), in the order the undo checks them; None: it would go ahead. Nothing
    is written (the console shows the reason next to the undo button)."""
    if row.status != DONE:
        return "undone", []
    if utcnow() > row.undo_until:
        return "expired", []
    if activity := activity_since(session, row):
        return "activity", activity
    return None
