"""Members: join (idempotent by phone / external id), identities, tags, consent, search."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Boolean,
    CompoundSelect,
    Select,
    bindparam,
    cast,
    delete,
    func,
    literal,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from loyalist.access import service as access
from loyalist.access.permissions import MEMBER_READ, MEMBER_WRITE, POINTS_ADJUST, require
from loyalist.audit import service as audit
from loyalist.errors import FieldError, ValidationFailed
from loyalist.events import service as events
from loyalist.kit.actor import Actor
from loyalist.kit.clock import utcnow
from loyalist.kit.crypto import blind
from loyalist.kit.pagination import encode_cursor
from loyalist.ledger import domain as lot_rules
from loyalist.ledger import service as ledger
from loyalist.ledger.errors import InvalidAdjustment
from loyalist.member import consent as consent_ledger
from loyalist.member.domain import InvalidIdentity, mask, normalise_identity
from loyalist.member.errors import MemberConflict, MemberNotFound
from loyalist.member.schemas import (
    ConsentIn,
    Consents,
    EntrySource,
    ExpiringPoints,
    Identities,
    Identity,
    KeepTier,
    LedgerEntryOut,
    LedgerPage,
    MemberCreate,
    MemberFilter,
    MemberPage,
    MemberProfile,
    MemberSummary,
    MemberUpdate,
    NextTier,
    PointsBalance,
    Tags,
    TagsIn,
    TierChangeOut,
    TierHistory,
    TierStatus,
)
from loyalist.models import (
    LedgerEntry,
    Member,
    MemberConsent,
    MemberIdentity,
    MemberMerge,
    MemberRfm,
    MemberTag,
    OrgUnit,
    PointsLot,
    TierChange,
)
from loyalist.models.member import name_key
from loyalist.org import service as org
from loyalist.programme import service as programmes
from loyalist.programme.schemas import Programme, RfmWeights
from loyalist.tier import service as tiers
from loyalist.tier.domain import Progress


@dataclass(frozen=True)
class Joined:
    member: Member
    created: bool


def _norm(kind: str, value: str, field: str) -> str:
    try:
        return normalise_identity(kind, value)
    except InvalidIdentity as exc:
        raise ValidationFailed(f"{field}: {exc}", [FieldError(field, str(exc), "invalid")]) from exc


def _home(session: Session, actor: Actor, code: str | None) -> tuple[int | None, str]:
    if code is not None:
        store = org.open_store_in_scope(session, actor, code, field="home_store")
        return store.id, store.path
    if actor.scope_path != "/":
        unit = session.scalar(select(OrgUnit).where(OrgUnit.path == actor.scope_path))
        if unit is not None and unit.kind == "store":
            return unit.id, unit.path
        return None, actor.scope_path
    hq = org.get_hq(session)
    return None, hq.path if hq else "/"


def find_by_identity(session: Session, kind: str, value: str) -> Member | None:
    # One statement: the identity's blind index (unique per kind), then its member's row.
    return session.scalar(
        select(Member)
        .join(MemberIdentity, MemberIdentity.member_id == Member.id)
        .where(MemberIdentity.kind == kind, MemberIdentity.value_bidx == blind(kind, value))
    )


def get_by_identity(
    session: Session, actor: Actor, kind: str, value: str, *, field: str = "identity"
) -> Member:
    """The member holding an exact identity, whatever their home store: a member is the
    brand's (chains). Anyone who may read members reaches them this way; lists, name search
    and the 360 view stay scoped. Nobody holding it is a 404."""
    require(actor, MEMBER_READ)
    m = find_by_identity(session, kind, _norm(kind, value, field))
    if m is None:
        raise MemberNotFound(
            f"No member with this {kind}.", [FieldError(field, "unknown member", "unknown_member")]
        )
    return m


def create(session: Session, actor: Actor, data: MemberCreate) -> Joined:
    """Join a member. A repeat with the same external id or phone returns the existing one."""
    require(actor, MEMBER_WRITE)
    phone = _norm("phone", data.phone, "phone") if data.phone else None
    email = _norm("email", data.email, "email") if data.email else None
    idents: list[tuple[str, str]] = []
    for i, ident in enumerate(data.identities):
        idents.append((ident.kind, _norm(ident.kind, ident.value, f"identities.{i}.value")))
    if phone:
        idents.append(("phone", phone))
    if email:
        idents.append(("email", email))
    idents = list(dict.fromkeys(idents))

    existing: Member | None = None
    if data.external_id:
        existing = session.scalar(select(Member).where(Member.external_id == data.external_id))
    holders = {m.id: m for k, v in idents if (m := find_by_identity(session, k, v)) is not None}
    if existing is None and len(holders) == 1:
        only = next(iter(holders.values()))
        if data.external_id is None or only.external_id in (None, data.external_id):
            existing = only
    if existing is not None:
        if any(mid != existing.id for mid in holders):
            raise MemberConflict("These identities belong to different members.")
        # Chains: joining with an identity the brand already knows is the same member,
        # whichever store they joined at (their home store is kept).
        return Joined(existing, False)
    if holders:
        raise MemberConflict(
            "Another member already holds one of these identities.",
            [FieldError("phone" if phone else "identities", "already registered", "taken")],
        )

    version, programme = programmes.active(session)
    home_id, path = _home(session, actor, data.home_store)
    now = utcnow()
    base_tier = programme.tiers.levels[0].code
    m = Member(
        # A placeholder until the id is known; unique, so that concurrent joins never wait
        # on each other in the unique index (an empty string made them queue on PostgreSQL).
        member_no="~" + uuid.uuid4().hex[:30],
        external_id=data.external_id,
        phone=phone,
        email=email,
        name=data.name,
        birthday=data.birthday,
        gender=data.gender,
        city=data.city,
        home_store_id=home_id,
        org_path=path,
        join_channel=data.join_channel,
        referral_code=data.referral_code,
        status="active",
        tier_code=base_tier,
        tier_since=now,
        tier_expires_at=None,
        tier_periods_below=0,
        created_at=now,
        updated_at=now,
    )
    session.add(m)
    session.flush()
    m.member_no = f"M{m.id:09d}"
    for kind, value in idents:
        session.add(MemberIdentity(member_id=m.id, kind=kind, value=value, created_at=now))
    for tag in dict.fromkeys(data.tags):
        session.add(MemberTag(member_id=m.id, tag=tag, created_at=now))
    for channel, granted in data.consents.items():
        session.add(
            MemberConsent(
                member_id=m.id, channel=channel, granted=granted, source="join", updated_at=now
            )
        )
        # channels (issue 14): the consent ledger keeps every choice
        consent_ledger.append(
            session,
            m.id,
            "marketing",
            channel,
            granted,
            text_version=None,
            source="join",
            actor=actor.name,
            keep_current=False,
        )
    ledger.open_account(session, m.id)
    session.add(
        TierChange(
            member_id=m.id,
            from_tier=None,
            to_tier=base_tier,
            reason="join",
            metric_value=0,
            period=None,
            programme_version=version,
            occurred_at=now,
        )
    )
    session.flush()
    events.emit(
        session,
        "member.created",
        {"member_id": m.id, "member_no": m.member_no, "tier": base_tier, "by": actor.name},
        member_id=m.id,
        org_path=m.org_path,
    )
    audit.record(
        session,
        actor,
        "member.create",
        "member",
        m.id,
        org_path=m.org_path,
        # no clear personal data in audit rows: masked values only
        after={
            "member_no": m.member_no,
            "name": mask("name", m.name),
            "phone": mask("phone", m.phone),
            "tier": base_tier,
        },
    )
    return Joined(m, True)


MERGED = "merged"


def merged_into(session: Session, member_id: int) -> int | None:
    """The survivor a merged member resolves to (followed through later merges); None for
    a member who was not merged (issue 13 item 2)."""
    seen: set[int] = set()
    current: int | None = None
    mid = member_id
    while mid not in seen:
        seen.add(mid)
        nxt = session.scalar(
            select(MemberMerge.survivor_id)
            .where(MemberMerge.merged_id == mid, MemberMerge.status == "done")
            .order_by(MemberMerge.id.desc())
            .limit(1)
        )
        if nxt is None:
            return current
        current = mid = int(nxt)
    return current


def resolve(session: Session, member_id: int) -> Member | None:
    """The member row an id names now: a merged member's survivor, else the member."""
    m = session.get(Member, member_id)
    if m is not None and m.status == MERGED:
        survivor = merged_into(session, member_id)
        if survivor is not None:
            return session.get(Member, survivor)
    return m


def get(session: Session, actor: Actor, member_id: int) -> Member:
    """A member in the actor's scope; others are indistinguishable from missing (404).
    A merged member's id answers its survivor (docs/api.md, "Merged members")."""
    m = resolve(session, member_id)
    if m is None or not actor.sees(m.org_path):
        raise MemberNotFound(f"No member {member_id}.")
    return m


def get_for_update(session: Session, actor: Actor, member_id: int) -> Member:
    return get(session, actor, member_id)


def update(session: Session, actor: Actor, member_id: int, data: MemberUpdate) -> Member:
    require(actor, MEMBER_WRITE)
    m = get(session, actor, member_id)
    changes: dict[str, Any] = {}
    fields = data.model_dump(exclude_unset=True)
    now = utcnow()
    if "phone" in fields and fields["phone"] is not None:
        phone = _norm("phone", fields.pop("phone"), "phone")
        _replace_identity(session, m, "phone", phone, now)
        changes["phone"] = [m.phone, phone]
        m.phone = phone
    if "email" in fields and fields["email"] is not None:
        email = _norm("email", fields.pop("email"), "email")
        _replace_identity(session, m, "email", email, now)
        changes["email"] = [m.email, email]
        m.email = email
    if "home_store" in fields:
        code = fields.pop("home_store")
        if code is not None:
            store = org.open_store_in_scope(session, actor, code, field="home_store")
            changes["home_store"] = [m.home_store_id, store.id]
            m.home_store_id, m.org_path = store.id, store.path
    for key, value in fields.items():
        if key in ("phone", "email"):
            continue
        old = getattr(m, key)
        if old != value:
            changes[key] = [str(old) if old is not None else None, value]
            setattr(m, key, value)
    if changes:
        m.updated_at = now
        session.flush()
        events.emit(
            session,
            "member.updated",
            {"member_id": m.id, "fields": sorted(changes), "by": actor.name},
            member_id=m.id,
            org_path=m.org_path,
        )
        audit.record(
            session,
            actor,
            "member.update",
            "member",
            m.id,
            org_path=m.org_path,
            before={k: mask(k, v[0]) for k, v in changes.items()},
            after={k: mask(k, v[1]) for k, v in changes.items()},
        )
    return m


def _replace_identity(session: Session, m: Member, kind: str, value: str, now: Any) -> None:
    holder = find_by_identity(session, kind, value)
    if holder is not None and holder.id != m.id:
        raise MemberConflict(
            f"Another member already uses this {kind}.", [FieldError(kind, "taken", "taken")]
        )
    session.execute(
        delete(MemberIdentity).where(MemberIdentity.member_id == m.id, MemberIdentity.kind == kind)
    )
    session.add(MemberIdentity(member_id=m.id, kind=kind, value=value, created_at=now))


def add_identity(session: Session, actor: Actor, member_id: int, kind: str, value: str) -> Member:
    require(actor, MEMBER_WRITE)
    m = get(session, actor, member_id)
    v = _norm(kind, value, "value")
    holder = find_by_identity(session, kind, v)
    if holder is not None:
        if holder.id == m.id:
            return m
        raise MemberConflict(f"Another member already uses this {kind}.")
    session.add(MemberIdentity(member_id=m.id, kind=kind, value=v, created_at=utcnow()))
    session.flush()
    audit.record(
        session,
        actor,
        "member.identity.add",
        "member",
        m.id,
        org_path=m.org_path,
        after={"kind": kind, "value": mask(kind, v)},
    )
    return m


def set_tags(session: Session, actor: Actor, member_id: int, data: TagsIn) -> list[str]:
    require(actor, MEMBER_WRITE)
    m = get(session, actor, member_id)
    now = utcnow()
    current = set(tags(session, m.id))
    before = sorted(current)
    for tag in data.add:
        if tag not in current:
            session.add(MemberTag(member_id=m.id, tag=tag, created_at=now))
            current.add(tag)
    if data.remove:
        session.execute(
            delete(MemberTag).where(MemberTag.member_id == m.id, MemberTag.tag.in_(data.remove))
        )
        current -= set(data.remove)
    session.flush()
    if sorted(current) != before:
        audit.record(
            session,
            actor,
            "member.tags",
            "member",
            m.id,
            org_path=m.org_path,
            before={"tags": before},
            after={"tags": sorted(current)},
        )
    return sorted(current)


def add_tag_many(
    session: Session, actor: Actor, member_ids: list[int], tag: str
) -> list[list[str]]:
    """``set_tags(add=[tag])`` for each of ``member_ids`` in order (the same rows and audit
    entries), with one read of their tags and one multi-row insert each for the new tags and
    the audit rows. The members' tags after each, in order."""
    require(actor, MEMBER_WRITE)
    found = [get(session, actor, mid) for mid in member_ids]
    have: dict[int, set[str]] = {m.id: set() for m in found}
    rows = session.execute(
        select(MemberTag.member_id, MemberTag.tag).where(MemberTag.member_id.in_(list(have)))
    )
    for mid, t in rows:
        have[mid].add(t)
    now = utcnow()
    out = []
    for m in found:
        current = have[m.id]
        if tag not in current:
            before = sorted(current)
            session.add(MemberTag(member_id=m.id, tag=tag, created_at=now))
            current.add(tag)
            audit.record(
                session,
                actor,
                "member.tags",
                "member",
                m.id,
                org_path=m.org_path,
                before={"tags": before},
                after={"tags": sorted(current)},
                flush=False,
            )
        out.append(sorted(current))
    session.flush()
    return out


def set_consent(
    session: Session, actor: Actor, member_id: int, channel: str, data: ConsentIn
) -> dict[str, bool]:
    require(actor, MEMBER_WRITE)
    m = get(session, actor, member_id)
    before = consents(session, m.id).get(channel)
    row = session.scalar(
        select(MemberConsent).where(
            MemberConsent.member_id == m.id, MemberConsent.channel == channel
        )
    )
    now = utcnow()
    if row is None:
        session.add(
            MemberConsent(
                member_id=m.id,
                channel=channel,
                granted=data.granted,
                source=data.source,
                updated_at=now,
            )
        )
    else:
        row.granted, row.source, row.updated_at = data.granted, data.source, now
    session.flush()
    # channels (issue 14): the consent ledger keeps every choice
    consent_ledger.append(
        session,
        m.id,
        "marketing",
        channel,
        data.granted,
        text_version=None,
        source=data.source or "api",
        actor=actor.name,
        keep_current=False,
    )
    audit.record(
        session,
        actor,
        "member.consent",
        "member",
        m.id,
        org_path=m.org_path,
        before={channel: before},
        after={channel: data.granted, "source": data.source},
    )
    return consents(session, m.id)


def tags(session: Session, member_id: int) -> list[str]:
    q = select(MemberTag.tag).where(MemberTag.member_id == member_id).order_by(MemberTag.tag)
    return list(session.scalars(q))


def rfm_row(session: Session, member_id: int) -> MemberRfm | None:
    """The member's nightly RFM row (``insights.rfm``), if scored."""
    return session.get(MemberRfm, member_id)


def rfm_facts(session: Session, member_id: int, weights: RfmWeights) -> dict[str, Any]:
    """``member.rfm_segment``, ``member.rfm_score`` and ``member.p_alive`` (whole percent)
    from the nightly ``member_rfm`` row; empty before the member has been scored."""
    row = session.get(MemberRfm, member_id)
    if row is None:
        return {}
    return {
        "member.rfm_segment": row.segment,
        "member.rfm_score": weights.score(row.r_score, row.f_score, row.m_score),
        "member.p_alive": None if row.p_alive is None else round(row.p_alive * 100),
    }


def consents(session: Session, member_id: int) -> dict[str, bool]:
    """Consent per channel, in channel order (the order a member read answers them in; it
    was the table's storage order before, issue 11 session 8)."""
    q = (
        select(MemberConsent.channel, MemberConsent.granted)
        .where(MemberConsent.member_id == member_id)
        .order_by(MemberConsent.channel)
    )
    return {c: bool(g) for c, g in session.execute(q)}


def identities(session: Session, member_id: int) -> list[tuple[str, str]]:
    q = select(MemberIdentity.kind, MemberIdentity.value).where(
        MemberIdentity.member_id == member_id
    )
    return sorted((k, v) for k, v in session.execute(q))  # encrypted: sorted here


def search(
    session: Session, actor: Actor, f: MemberFilter, *, after: int | None, limit: int
) -> list[Member]:
    q = select(Member).order_by(Member.id).limit(limit)
    exact = f.phone or f.email or (f.identity_type and f.identity)
    # An exact identity reaches a member of any store (chains); everything else is scoped.
    if actor.scope_path != "/" and not exact:
        q = q.where(Member.org_path.startswith(actor.scope_path))
    if f.email:
        q = q.where(Member.email_bidx == blind("email", _norm("email", f.email, "email")))
    if f.identity_type and f.identity:
        value = _norm(f.identity_type, f.identity, "identity")
        q = q.where(
            Member.id.in_(
                select(MemberIdentity.member_id).where(
                    MemberIdentity.kind == f.identity_type,
                    MemberIdentity.value_bidx == blind(f.identity_type, value),
                )
            )
        )
    if after is not None:
        q = q.where(Member.id > after)
    if f.phone:
        q = q.where(Member.phone_bidx == blind("phone", _norm("phone", f.phone, "phone")))
    if f.tier:
        q = q.where(Member.tier_code == f.tier)
    if f.tag:
        q = q.where(Member.id.in_(select(MemberTag.member_id).where(MemberTag.tag == f.tag)))
    if f.store:
        store = org.store_in_scope(session, actor, f.store)
        q = q.where(Member.home_store_id == store.id)
    if f.q:
        # Names are encrypted: a name matches exactly (spaces and case aside), by its blind
        # index; member numbers match in part.
        like = f"%{f.q}%"
        q = q.where(
            (Member.name_bidx == blind("name", name_key(f.q))) | Member.member_no.like(like)
        )
    if f.created_from:
        q = q.where(Member.created_at >= f.created_from)
    if f.created_to:
        q = q.where(Member.created_at < f.created_to)
    return list(session.scalars(q))


def tier_history(session: Session, member_id: int) -> list[TierChange]:
    q = select(TierChange).where(TierChange.member_id == member_id).order_by(TierChange.id)
    return list(session.scalars(q))


class MemberFields(Protocol):
    """The member columns an answer shows: a :class:`Member`, or a row of those columns."""

    @property
    def id(self) -> int: ...
    @property
    def member_no(self) -> str: ...
    @property
    def external_id(self) -> str | None: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def birthday(self) -> date | None: ...
    @property
    def gender(self) -> str | None: ...
    @property
    def city(self) -> str | None: ...
    @property
    def home_store_id(self) -> int | None: ...
    @property
    def join_channel(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def tier_code(self) -> str: ...
    @property
    def tier_since(self) -> datetime: ...
    @property
    def tier_expires_at(self) -> datetime | None: ...
    @property
    def created_at(self) -> datetime: ...


@dataclass(frozen=True)
class Figures:
    """What a channel shows about a member besides their own columns."""

    tags: list[str]
    consents: dict[str, bool]
    identities: list[tuple[str, str]]
    available: int
    pending: int
    debt: int
    lifetime_earned: int
    expiring_30d: int
    expiring: list[tuple[datetime, int]]
    tier_name: str
    metric: str
    progress: Progress
    next_tier_name: str | None


@dataclass(frozen=True)
class Profile(Figures):
    member: Member


def _figures(
    programme: Programme,
    tier_code: str,
    prog: Progress,
    *,
    tags: list[str],
    consents: dict[str, bool],
    identities: list[tuple[str, str]],
    balance: tuple[int, int, int, int],
    expiring: tuple[int, list[tuple[datetime, int]]],
) -> dict[str, Any]:
    """The :class:`Figures` fields (``balance``: available, pending, debt, lifetime earned;
    ``expiring``: points expiring in 30 days and when)."""
    names = {t.code: t.name for t in programme.tiers.levels}
    available, pending, debt, lifetime_earned = balance
    return {
        "tags": tags,
        "consents": consents,
        "identities": identities,
        "available": available,
        "pending": pending,
        "debt": debt,
        "lifetime_earned": lifetime_earned,
        "expiring_30d": expiring[0],
        "expiring": expiring[1],
        "tier_name": names.get(tier_code, tier_code),
        "metric": programme.tiers.metric.value,
        "progress": prog,
        "next_tier_name": names.get(prog.next_tier) if prog.next_tier else None,
    }


def _expiring(
    session: Session, account_id: int, start: datetime, end: datetime
) -> tuple[int, list[tuple[datetime, int]]]:
    """Points of the account expiring in (start, end] — available and pending, as
    ``ledger.expiring_within`` counts them — and when its available points expire, as
    ``ledger.expiring_schedule`` lists them: both from one grouped query on the account the
    caller already holds (a member read issued three more statements before, issue 11)."""
    params = {"account_id": account_id, "start": start, "end": end}
    return _expiring_of(session.execute(_EXPIRING, params))


def _expiring_of(rows: Iterable[Any]) -> tuple[int, list[tuple[datetime, int]]]:
    """:func:`_expiring`'s answer from the (expires_at, status, points) rows of
    :func:`_expiring_query`."""
    total = 0
    by_time: dict[datetime, int] = {}
    for at, status, n in rows:
        total += int(n)
        if status == ledger.AVAILABLE and at is not None:
            by_time[at] = by_time.get(at, 0) + int(n)
    return total, sorted(by_time.items())


def _expiring_query(*columns: Any) -> Select[Any]:
    """``columns`` of the account's lots expiring in (start, end], grouped by expiry and
    status (bound parameters ``account_id``, ``start``, ``end``)."""
    return (
        select(*columns)
        .where(
            PointsLot.account_id == bindparam("account_id"),
            # two bound values, not an expanding IN: that is rendered again into the
            # statement's text on every execution (speed, issue 11)
            PointsLot.status.in_([literal(ledger.AVAILABLE), literal(ledger.PENDING)]),
            PointsLot.remaining > 0,
            PointsLot.expires_at > bindparam("start"),
            PointsLot.expires_at <= bindparam("end"),
        )
        .group_by(PointsLot.expires_at, PointsLot.status)
    )


# built once per process with bound parameters (speed, issue 11)
_EXPIRING = _expiring_query(
    PointsLot.expires_at, PointsLot.status, func.sum(PointsLot.remaining)
).order_by(PointsLot.expires_at)


def profile(session: Session, actor: Actor, member_id: int) -> Profile:
    """Everything a channel shows about a member: profile, balance, tier progress."""
    m = get(session, actor, member_id)
    _version, programme = programmes.active(session)
    now = utcnow()
    acct = ledger.get_account(session, m.id)
    prog = tiers.member_progress(session, m, programme, now)
    return Profile(
        member=m,
        **_figures(
            programme,
            m.tier_code,
            prog,
            tags=tags(session, m.id),
            consents=consents(session, m.id),
            identities=identities(session, m.id),
            balance=(acct.available, acct.pending, acct.debt, acct.lifetime_earned),
            expiring=_expiring(session, acct.id, now, now + timedelta(days=30)),
        ),
    )


def profile_json(
    session: Session, actor: Actor, member_id: int, owed: Actor | None = None
) -> dict[str, Any]:
    """:func:`profile_out` of :func:`profile` in its JSON form (``model_dump(mode="json",
    by_alias=True)``) in two statements instead of eight, from columns rather than entities
    (speed, issue 11): in one, the member with the balance of the account they draw on,
    the active programme version, the tier metric (a programme of ``tiers.spend_alone``,
    the one this process saw last) and ``owed``'s key check (``http.read_checking_key``:
    made before any other answer); in the other the expiring points, tags, consents and
    identities. A merged member (answered by their survivor), a member out of the caller's
    scope or missing (404) and a member without an account take :func:`profile`'s way, with
    the same answer or error; a programme other than the one guessed reads its metric on
    its own."""
    now = utcnow()
    guess = _last_programme[0] if _last_programme else None
    spend = guess is not None and tiers.spend_alone(guess)
    params = {
        "member_id": member_id,
        "key_id": None if owed is None else access.key_id(owed),
        "spend_start": tiers.spend_window(guess, now)[0] if guess is not None and spend else now,
        "now": now,
    }
    # first(): one active membership per member (ledger.verify); never a 500 if not, the
    # first row as ledger.membership takes it
    # Core rows on the session's connection (its transaction): the ORM's result handling
    # (a compile state, a loading context, a row processor per column) is not needed for
    # columns (speed, issue 11)
    conn = session.connection()
    row = conn.execute(_MEMBER_READ, params).first()
    if owed is not None:
        if row is None:
            access.check_not_revoked(session, owed)
        else:
            access.check_live(row.key_live)
    if row is None or row.status == MERGED or row.account_id is None:
        answer = profile_out(profile(session, actor, member_id))
        return answer.model_dump(mode="json", by_alias=True)
    if not actor.sees(row.org_path):
        raise MemberNotFound(f"No member {member_id}.")
    _version, programme = programmes.adopt_active(
        session, row.programme_version, row.programme_checksum, row.programme_created_at
    )
    if spend and programme is guess:
        prog = tiers.progress_with(programme, row.tier_code, tiers.spend_metric(row.spend))
    else:
        prog = tiers.progress_of(session, programme, row.id, row.tier_code, now)
        _last_programme[:] = [programme]
    tag_list: list[str] = []
    consent_map: dict[str, bool] = {}
    ids: list[tuple[str, str]] = []
    lots: list[tuple[datetime | None, str, int]] = []
    about = {"member_id": row.id, "account_id": row.account_id, "start": now}
    about["end"] = now + timedelta(days=30)
    for src, a, value, granted, at, n in conn.execute(_ABOUT, about):
        if src == "t":
            tag_list.append(a)
        elif src == "c":
            consent_map[a] = bool(granted)
        elif src == "e":
            assert n is not None  # a sum over a group
            lots.append((at, a, n))
        else:
            assert value is not None  # member_identity.value is NOT NULL
            ids.append((a, value))
    figures = Figures(
        **_figures(
            programme,
            row.tier_code,
            prog,
            tags=tag_list,
            consents=consent_map,
            identities=sorted(ids),  # encrypted: sorted here
            balance=(row.available, row.pending, row.debt, row.lifetime_earned),
            expiring=_expiring_of(lots),
        )
    )
    return _profile_json(row, figures)


# The active programme this process read last: the tier metric's window is read with the
# member on the guess that it is still active (checked against the version read with it).
_last_programme: list[Programme] = []


# built once per process with bound parameters (speed, issue 11)
_MEMBER_READ = ledger.with_balance(
    select(
        Member.id,
        Member.member_no,
        Member.external_id,
        Member.phone,
        Member.email,
        Member.name,
        Member.birthday,
        Member.gender,
        Member.city,
        Member.home_store_id,
        Member.join_channel,
        Member.status,
        Member.tier_code,
        Member.tier_since,
        Member.tier_expires_at,
        Member.created_at,
        Member.org_path,
        access.live_key_column(bindparam("key_id")).label("key_live"),
        *programmes.active_columns(),
        tiers.spend_in_window(Member.id, bindparam("spend_start"), bindparam("now")).label("spend"),
    ).where(Member.id == bindparam("member_id")),
    Member.id,
)


def _about() -> CompoundSelect[str, str, str | None, bool | None, datetime | None, int | None]:
    """A member's identities, tags and consents and the points of their account expiring
    (:func:`_expiring_query`) in one statement: (source, key, identity value, consent
    granted, expiry, points) rows, identities first so that the value column decrypts and
    the expiry is read as a timestamp; tags ordered by the database as :func:`tags` orders
    them, consents by channel."""
    mid: BindParameter[int] = bindparam("member_id")
    u: CompoundSelect[str, str, str | None, bool | None, datetime | None, int | None]
    u = union_all(
        select(
            literal_column("'i'").label("src"),
            MemberIdentity.kind.label("k"),
            MemberIdentity.value.label("v"),
            cast(null(), Boolean).label("g"),
            cast(null(), PointsLot.expires_at.type).label("at"),
            cast(null(), BigInteger).label("n"),
        ).where(MemberIdentity.member_id == mid),
        select(literal_column("'t'"), MemberTag.tag, null(), null(), null(), null()).where(
            MemberTag.member_id == mid
        ),
        select(
            literal_column("'c'"),
            MemberConsent.channel,
            null(),
            MemberConsent.granted,
            null(),
            null(),
        ).where(MemberConsent.member_id == mid),
        _expiring_query(
            literal_column("'e'"),
            PointsLot.status,
            null(),
            null(),
            PointsLot.expires_at,
            func.sum(PointsLot.remaining),
        ),
    )
    return u.order_by(literal_column("src"), literal_column("k"))


_ABOUT = _about()


def adjust_points(
    session: Session,
    actor: Actor,
    member_id: int,
    points: int,
    reason: str,
    *,
    approved_by: str | None = None,
) -> LedgerEntry:
    """A staff correction with a reason; positive credits a lot, negative debits FEFO."""
    if points == 0:
        raise InvalidAdjustment(
            "An adjustment of 0 points does nothing.",
            [FieldError("points", "must not be 0", "zero")],
        )
    require(actor, POINTS_ADJUST)
    m = get(session, actor, member_id)
    version, programme = programmes.active(session)
    acct = ledger.lock(session, m.id, m.org_path)
    before = {"available": acct.row.available, "pending": acct.row.pending}
    entry = ledger.adjust(
        session,
        acct,
        points,
        ledger.Cause(
            source_type="staff",
            actor=actor.name,
            reason=reason,
            programme_version=version,
            details={"approved_by": approved_by} if approved_by else None,
        ),
        expires_at=lot_rules.expires_at(programme.points.expiry, programme.tz, acct.now),
    )
    audit.record(
        session,
        actor,
        "points.adjust",
        "member",
        m.id,
        org_path=m.org_path,
        before=before,
        after={
            "available": acct.row.available,
            "pending": acct.row.pending,
            "points": points,
            "reason": reason,
            "entry_id": entry.id,
            "approved_by": approved_by,
        },
    )
    return entry


def ledger_page(
    session: Session, actor: Actor, member_id: int, *, after: int | None, limit: int
) -> list[LedgerEntry]:
    m = get(session, actor, member_id)
    return ledger.entries(session, m.id, after=after, limit=limit)


# --- Answers: the response schemas the API sends -----------------------------------------


def summary_out(m: MemberFields) -> MemberSummary:
    return MemberSummary(
        id=m.id,
        member_no=m.member_no,
        external_id=m.external_id,
        phone=m.phone,
        email=m.email,
        name=m.name,
        birthday=m.birthday,
        gender=m.gender,
        city=m.city,
        home_store_id=m.home_store_id,
        join_channel=m.join_channel,
        status=m.status,
        tier=m.tier_code,
        created_at=m.created_at,
    )


def profile_out(p: Profile) -> MemberProfile:
    return _profile_answer(p.member, p)


def _profile_answer(m: MemberFields, p: Figures) -> MemberProfile:
    pr = p.progress
    return MemberProfile(
        **summary_out(m).model_dump(exclude={"tier"}),
        tier=TierStatus(
            code=m.tier_code,
            name=p.tier_name,
            since=m.tier_since,
            expires_at=m.tier_expires_at,
            metric=p.metric,
            value=pr.value,
            next=NextTier(code=pr.next_tier, name=p.next_tier_name, missing=pr.missing_for_next)
            if pr.next_tier
            else None,
            keep=KeepTier(threshold=pr.keep_threshold, missing=pr.missing_to_keep),
        ),
        tags=p.tags,
        consents=p.consents,
        identities=[Identity(kind=k, value=v) for k, v in p.identities],
        points=PointsBalance(
            available=p.available,
            pending=p.pending,
            debt=p.debt,
            lifetime_earned=p.lifetime_earned,
            expiring_30d=p.expiring_30d,
            expiring=[ExpiringPoints(expires_at=at, points=n) for at, n in p.expiring],
        ),
    )


def entry_out(e: LedgerEntry) -> LedgerEntryOut:
    return LedgerEntryOut(
        id=e.id,
        kind=e.kind,
        member_id=e.member_id,
        account_id=e.account_id,
        available=e.delta_available,
        pending=e.delta_pending,
        debt=e.delta_debt,
        source=EntrySource(type=e.source_type, id=e.source_id) if e.source_type else None,
        actor=e.actor,
        reason=e.reason,
        corrects_entry_id=e.corrects_entry_id,
        programme_version=e.programme_version,
        details=e.details,
        occurred_at=e.occurred_at,
        created_at=e.created_at,
    )


def _profile_json(m: MemberFields, p: Figures) -> dict[str, Any]:
    """``_profile_answer(m, p).model_dump(mode="json", by_alias=True)`` without building
    the answer's models (speed, issue 11): the same keys in the same order, dates and
    instants as their ``isoformat()``."""
    pr = p.progress
    birthday = m.birthday
    expires_at = m.tier_expires_at
    return {
        "id": m.id,
        "member_no": m.member_no,
        "external_id": m.external_id,
        "phone": m.phone,
        "email": m.email,
        "name": m.name,
        "birthday": None if birthday is None else birthday.isoformat(),
        "gender": m.gender,
        "city": m.city,
        "home_store_id": m.home_store_id,
        "join_channel": m.join_channel,
        "status": m.status,
        "tier": {
            "code": m.tier_code,
            "name": p.tier_name,
            "since": m.tier_since.isoformat(),
            "expires_at": None if expires_at is None else expires_at.isoformat(),
            "metric": p.metric,
            "value": pr.value,
            "next": {"code": pr.next_tier, "name": p.next_tier_name, "missing": pr.missing_for_next}
            if pr.next_tier
            else None,
            "keep": {"threshold": pr.keep_threshold, "missing": pr.missing_to_keep},
        },
        "created_at": m.created_at.isoformat(),
        "tags": p.tags,
        "consents": p.consents,
        "identities": [{"kind": k, "value": v} for k, v in p.identities],
        "points": {
            "available": p.available,
            "pending": p.pending,
            "debt": p.debt,
            "lifetime_earned": p.lifetime_earned,
            "expiring_30d": p.expiring_30d,
            "expiring": [{"expires_at": at.isoformat(), "points": n} for at, n in p.expiring],
        },
    }


def profile_view(session: Session, actor: Actor, member_id: int) -> MemberProfile:
    return MemberProfile.model_validate(profile_json(session, actor, member_id))


def join(
    session: Session, actor: Actor, data: MemberCreate
) -> tuple[bool, MemberProfile | None, MemberSummary | None]:
    """Join (or find the same member again): whether it was created, and the profile — or,
    for the brand's member whose home is outside the caller's scope (chains), only their
    summary."""
    joined = create(session, actor, data)
    session.flush()
    if not actor.sees(joined.member.org_path):
        return False, None, summary_out(joined.member)
    return joined.created, profile_view(session, actor, joined.member.id), None


def update_view(
    session: Session, actor: Actor, member_id: int, data: MemberUpdate
) -> MemberProfile:
    update(session, actor, member_id, data)
    return profile_view(session, actor, member_id)


def search_page(
    session: Session, actor: Actor, f: MemberFilter, *, after: int | None, limit: int
) -> MemberPage:
    rows = search(session, actor, f, after=after, limit=limit)
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return MemberPage(items=[summary_out(m) for m in rows], next_cursor=nxt)


def add_identity_view(
    session: Session, actor: Actor, member_id: int, kind: str, value: str
) -> Identities:
    add_identity(session, actor, member_id, kind, value)
    return Identities(
        identities=[Identity(kind=k, value=v) for k, v in identities(session, member_id)]
    )


def tags_view(session: Session, actor: Actor, member_id: int, data: TagsIn) -> Tags:
    return Tags(tags=set_tags(session, actor, member_id, data))


def consent_view(
    session: Session, actor: Actor, member_id: int, channel: str, data: ConsentIn
) -> Consents:
    return Consents(consents=set_consent(session, actor, member_id, channel, data))


def ledger_view(
    session: Session, actor: Actor, member_id: int, *, after: int | None, limit: int
) -> LedgerPage:
    rows = ledger_page(session, actor, member_id, after=after, limit=limit)
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return LedgerPage(items=[entry_out(e) for e in rows], next_cursor=nxt)


def tier_history_view(session: Session, actor: Actor, member_id: int) -> TierHistory:
    get(session, actor, member_id)
    return TierHistory(
        items=[
            TierChangeOut.model_validate(
                {
                    "from": c.from_tier,
                    "to": c.to_tier,
                    "reason": c.reason,
                    "metric_value": c.metric_value,
                    "period": c.period,
                    "programme_version": c.programme_version,
                    "occurred_at": c.occurred_at,
                }
            )
            for c in tier_history(session, member_id)
        ]
    )
