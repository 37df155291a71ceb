"""Viral mechanics (裂变): friend-assist (好友助力) and groups (拼团).

Both are campaigns of the ``referrals`` document. **Assist**: a member starts one per
campaign (unique), friends help once each (unique per assist and helper; the database
refuses the starter's own help with a check constraint), and the help that reaches the
campaign's number within its hours completes it and pays the starter once (actions with the
cause ``assist:<id>:<n>``). **Group**: a leader opens a group, members join (once per group,
one forming group per campaign per member); the member that fills it completes it and pays
every member once (``group:<id>:<n>``); at the deadline a job dissolves an unfilled group
with no reward — the job is durable, so a worker that was down across the deadline
dissolves it when it comes back, and nobody can join a group past its deadline meanwhile.
Rows are locked (``FOR UPDATE``) before they are counted, so concurrent helps and joins
count exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalist.access.permissions import MEMBER_READ, MEMBER_WRITE, require
from loyalist.actions import registry as actions
from loyalist.audit import service as audit
from loyalist.events import service as events
from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.clock import as_utc, utcnow
from loyalist.member import service as members
from loyalist.models import ViralAssist, ViralAssistHelp, ViralGroup, ViralGroupMember
from loyalist.referral import config
from loyalist.viral.errors import (
    AlreadyHelped,
    AlreadyInGroup,
    AlreadyStarted,
    AssistClosed,
    AssistNotFound,
    CampaignNotFound,
    GroupClosed,
    GroupNotFound,
    OwnAssist,
)
from loyalist.viral.schemas import AssistOut, CampaignOut, CampaignsOut, GroupOut

ASSIST_EXPIRE_JOB = "viral.assist_expire"
GROUP_DEADLINE_JOB = "viral.group_deadline"
OPEN = "open"
COMPLETED = "completed"
EXPIRED = "expired"
FORMING = "forming"
COMPLETE = "complete"
DISSOLVED = "dissolved"


def campaigns(session: Session, locale: str = "zh_CN") -> CampaignsOut:
    doc = config.current(session)

    def name(n: config.Name) -> str:
        return n.en if locale == "en" else n.zh_CN

    return CampaignsOut(
        assist=[
            CampaignOut(code=c.code, name=name(c.name), target=c.helps, hours=c.hours)
            for c in doc.assist
        ],
        groups=[
            CampaignOut(code=c.code, name=name(c.name), target=c.size, hours=c.hours)
            for c in doc.groups
        ],
    )


def _run_rewards(
    session: Session, refs: list[config.ActionRef], cause: str, member_id: int
) -> None:
    for i, ref in enumerate(refs):
        actions.run(
            session, ref.action, ref.params, cause=f"{cause}:{i}", member_id=member_id, actor=SYSTEM
        )


# -- friend-assist ---------------------------------------------------------------------------


def _assist_campaign(session: Session, code: str) -> config.AssistCampaign:
    c = config.current(session).assist_campaign(code)
    if c is None:
        raise CampaignNotFound(f"No assist campaign {code!r}.")
    return c


def start_assist(
    session: Session, actor: Actor, member_id: int, campaign: str
) -> tuple[bool, ViralAssist]:
    """Start the member's assist in ``campaign`` (once per campaign: a repeat returns the
    same assist while it is open; a finished one cannot be started again)."""
    require(actor, MEMBER_WRITE)
    m = members.get(session, actor, member_id)
    c = _assist_campaign(session, campaign)
    found = session.scalar(
        select(ViralAssist).where(ViralAssist.campaign == c.code, ViralAssist.starter_id == m.id)
    )
    if found is not None:
        if found.status == OPEN:
            return False, found
        raise AlreadyStarted(f"Member {m.id} already took part in campaign {c.code!r}.")
    now = utcnow()
    a = ViralAssist(
        campaign=c.code,
        starter_id=m.id,
        org_path=m.org_path,
        needed=c.helps,
        helps=0,
        status=OPEN,
        deadline=now + timedelta(hours=c.hours),
        completed_at=None,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(a)
            session.flush()
    except IntegrityError:
        won = session.scalar(
            select(ViralAssist).where(
                ViralAssist.campaign == c.code, ViralAssist.starter_id == m.id
            )
        )
        if won is None:
            raise
        return False, won
    queue.enqueue(
        session,
        ASSIST_EXPIRE_JOB,
        {"assist_id": a.id},
        run_at=a.deadline,
        dedupe_key=f"viral:assist:{a.id}:expire",
    )
    audit.record(
        session,
        actor,
        "assist.start",
        "assist",
        a.id,
        org_path=a.org_path,
        after={"campaign": a.campaign, "starter_id": a.starter_id, "needed": a.needed},
    )
    return True, a


def _lock_assist(session: Session, assist_id: int) -> ViralAssist | None:
    return session.scalar(
        select(ViralAssist)
        .where(ViralAssist.id == assist_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def get_assist(session: Session, actor: Actor, assist_id: int) -> ViralAssist:
    require(actor, MEMBER_READ)
    a = session.get(ViralAssist, assist_id)
    if a is None or not actor.sees(a.org_path):
        raise AssistNotFound(f"No assist {assist_id}.")
    return a


def help_assist(session: Session, actor: Actor, assist_id: int, helper_id: int) -> ViralAssist:
    """One friend's help. The help that reaches the number pays the starter once."""
    require(actor, MEMBER_WRITE)
    helper = members.get(session, actor, helper_id)
    a = _lock_assist(session, assist_id)
    if a is None or not actor.sees(a.org_path):
        raise AssistNotFound(f"No assist {assist_id}.")
    if helper.id == a.starter_id:
        raise OwnAssist("The starter cannot help their own assist.")
    now = utcnow()
    if a.status != OPEN or now >= as_utc(a.deadline):
        raise AssistClosed(f"Assist {assist_id} is {_assist_state(a, now)}.")
    try:
        with session.begin_nested():
            session.add(
                ViralAssistHelp(
                    assist_id=a.id, starter_id=a.starter_id, helper_id=helper.id, created_at=now
                )
            )
            session.flush()
    except IntegrityError:
        raise AlreadyHelped(f"Member {helper.id} already helped assist {assist_id}.") from None
    a.helps += 1
    if a.helps >= a.needed:
        a.status = COMPLETED
        a.completed_at = now
        session.flush()
        c = config.current(session).assist_campaign(a.campaign)
        if c is not None:
            _run_rewards(session, list(c.rewards), f"assist:{a.id}", a.starter_id)
        events.emit(
            session,
            "assist.completed",
            {
                "assist_id": a.id,
                "campaign": a.campaign,
                "starter_id": a.starter_id,
                "helps": a.helps,
            },
            member_id=a.starter_id,
            org_path=a.org_path,
        )
    session.flush()
    audit.record(
        session,
        actor,
        "assist.help",
        "assist",
        a.id,
        org_path=a.org_path,
        before={"helps": a.helps - 1},
        after={"helper_id": helper.id, "helps": a.helps, "status": a.status},
    )
    return a


def expire_assist(session: Session, assist_id: int) -> str | None:
    a = _lock_assist(session, assist_id)
    if a is None or a.status != OPEN:
        return None
    if utcnow() < as_utc(a.deadline):
        queue.enqueue(
            session,
            ASSIST_EXPIRE_JOB,
            {"assist_id": a.id},
            run_at=a.deadline,
            dedupe_key=f"viral:assist:{a.id}:expire:{utcnow().isoformat()}",
        )
        return None
    a.status = EXPIRED
    session.flush()
    return a.status


def _assist_state(a: ViralAssist, now: Any) -> str:
    if a.status == OPEN and now >= as_utc(a.deadline):
        return EXPIRED
    return a.status


def helpers(session: Session, assist_id: int) -> list[int]:
    return list(
        session.scalars(
            select(ViralAssistHelp.helper_id)
            .where(ViralAssistHelp.assist_id == assist_id)
            .order_by(ViralAssistHelp.id)
        )
    )


def assist_out(session: Session, a: ViralAssist) -> AssistOut:
    now = utcnow()
    return AssistOut(
        id=a.id,
        campaign=a.campaign,
        starter_id=a.starter_id,
        needed=a.needed,
        helps=a.helps,
        status=_assist_state(a, now),
        deadline=as_utc(a.deadline),
        completed_at=as_utc(a.completed_at) if a.completed_at else None,
        helpers=helpers(session, a.id),
    )


def member_assists(session: Session, member_id: int) -> list[ViralAssist]:
    return list(
        session.scalars(
            select(ViralAssist)
            .where(ViralAssist.starter_id == member_id)
            .order_by(ViralAssist.id.desc())
        )
    )


# -- groups ----------------------------------------------------------------------------------


def _group_campaign(session: Session, code: str) -> config.GroupCampaign:
    c = config.current(session).group_campaign(code)
    if c is None:
        raise CampaignNotFound(f"No group campaign {code!r}.")
    return c


def _forming_group_of(session: Session, campaign: str, member_id: int) -> ViralGroup | None:
    return session.scalar(
        select(ViralGroup)
        .join(ViralGroupMember, ViralGroupMember.group_id == ViralGroup.id)
        .where(
            ViralGroup.campaign == campaign,
            ViralGroup.status == FORMING,
            ViralGroup.deadline > utcnow(),
            ViralGroupMember.member_id == member_id,
        )
    )


def open_group(session: Session, actor: Actor, member_id: int, campaign: str) -> ViralGroup:
    """Open a group with the member as its leader and first member."""
    require(actor, MEMBER_WRITE)
    m = members.get(session, actor, member_id)
    c = _group_campaign(session, campaign)
    if _forming_group_of(session, c.code, m.id) is not None:
        raise AlreadyInGroup(f"Member {m.id} is already in a forming group of {c.code!r}.")
    now = utcnow()
    g = ViralGroup(
        campaign=c.code,
        leader_id=m.id,
        org_path=m.org_path,
        size=c.size,
        members=1,
        status=FORMING,
        deadline=now + timedelta(hours=c.hours),
        completed_at=None,
        dissolved_at=None,
        created_at=now,
    )
    session.add(g)
    session.flush()
    session.add(ViralGroupMember(group_id=g.id, member_id=m.id, joined_at=now))
    session.flush()
    queue.enqueue(
        session,
        GROUP_DEADLINE_JOB,
        {"group_id": g.id},
        run_at=g.deadline,
        dedupe_key=f"viral:group:{g.id}:deadline",
    )
    audit.record(
        session,
        actor,
        "group.open",
        "group",
        g.id,
        org_path=g.org_path,
        after={"campaign": g.campaign, "leader_id": g.leader_id, "size": g.size},
    )
    return g


def _lock_group(session: Session, group_id: int) -> ViralGroup | None:
    return session.scalar(
        select(ViralGroup)
        .where(ViralGroup.id == group_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def get_group(session: Session, actor: Actor, group_id: int) -> ViralGroup:
    require(actor, MEMBER_READ)
    g = session.get(ViralGroup, group_id)
    if g is None or not actor.sees(g.org_path):
        raise GroupNotFound(f"No group {group_id}.")
    return g


def join_group(session: Session, actor: Actor, group_id: int, member_id: int) -> ViralGroup:
    """Join a forming group; the member who fills it completes it and everyone is paid once."""
    require(actor, MEMBER_WRITE)
    m = members.get(session, actor, member_id)
    g = _lock_group(session, group_id)
    if g is None or not actor.sees(g.org_path):
        raise GroupNotFound(f"No group {group_id}.")
    now = utcnow()
    if g.status != FORMING or now >= as_utc(g.deadline):
        raise GroupClosed(f"Group {group_id} is {_group_state(g, now)}.")
    already = session.scalar(
        select(ViralGroupMember.id).where(
            ViralGroupMember.group_id == g.id, ViralGroupMember.member_id == m.id
        )
    )
    other = _forming_group_of(session, g.campaign, m.id)
    if already is not None or (other is not None and other.id != g.id):
        raise AlreadyInGroup(f"Member {m.id} is already in a group of {g.campaign!r}.")
    try:
        with session.begin_nested():
            session.add(ViralGroupMember(group_id=g.id, member_id=m.id, joined_at=now))
            session.flush()
    except IntegrityError:
        raise AlreadyInGroup(f"Member {m.id} is already in group {group_id}.") from None
    g.members += 1
    if g.members >= g.size:
        g.status = COMPLETE
        g.completed_at = now
        session.flush()
        c = config.current(session).group_campaign(g.campaign)
        ids = group_members(session, g.id)
        if c is not None:
            for mid in sorted(ids):
                _run_rewards(session, list(c.rewards), f"group:{g.id}", mid)
        events.emit(
            session,
            "group.completed",
            {"group_id": g.id, "campaign": g.campaign, "members": ids},
            member_id=g.leader_id,
            org_path=g.org_path,
        )
    session.flush()
    audit.record(
        session,
        actor,
        "group.join",
        "group",
        g.id,
        org_path=g.org_path,
        before={"members": g.members - 1},
        after={"member_id": m.id, "members": g.members, "status": g.status},
    )
    return g


def dissolve_due(session: Session, group_id: int) -> str | None:
    """The deadline job: an unfilled group dissolves with no reward (once)."""
    g = _lock_group(session, group_id)
    if g is None or g.status != FORMING:
        return None
    now = utcnow()
    if now < as_utc(g.deadline):
        queue.enqueue(
            session,
            GROUP_DEADLINE_JOB,
            {"group_id": g.id},
            run_at=g.deadline,
            dedupe_key=f"viral:group:{g.id}:deadline:{now.isoformat()}",
        )
        return None
    g.status = DISSOLVED
    g.dissolved_at = now
    session.flush()
    events.emit(
        session,
        "group.dissolved",
        {"group_id": g.id, "campaign": g.campaign, "members": g.members},
        member_id=g.leader_id,
        org_path=g.org_path,
    )
    return g.status


def _group_state(g: ViralGroup, now: Any) -> str:
    if g.status == FORMING and now >= as_utc(g.deadline):
        return "expired"  # past its deadline; the job dissolves it
    return g.status


def group_members(session: Session, group_id: int) -> list[int]:
    return list(
        session.scalars(
            select(ViralGroupMember.member_id)
            .where(ViralGroupMember.group_id == group_id)
            .order_by(ViralGroupMember.id)
        )
    )


def group_out(session: Session, g: ViralGroup) -> GroupOut:
    return GroupOut(
        id=g.id,
        campaign=g.campaign,
        leader_id=g.leader_id,
        size=g.size,
        members=group_members(session, g.id),
        status=_group_state(g, utcnow()),
        deadline=as_utc(g.deadline),
        completed_at=as_utc(g.completed_at) if g.completed_at else None,
        dissolved_at=as_utc(g.dissolved_at) if g.dissolved_at else None,
    )


def member_groups(session: Session, member_id: int) -> list[ViralGroup]:
    return list(
        session.scalars(
            select(ViralGroup)
            .join(ViralGroupMember, ViralGroupMember.group_id == ViralGroup.id)
            .where(ViralGroupMember.member_id == member_id)
            .order_by(ViralGroup.id.desc())
        )
    )


# -- views for endpoints -------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    created: bool
    assist: AssistOut


def start_assist_view(session: Session, actor: Actor, member_id: int, campaign: str) -> Started:
    created, a = start_assist(session, actor, member_id, campaign)
    return Started(created, assist_out(session, a))


def help_view(session: Session, actor: Actor, assist_id: int, helper_id: int) -> AssistOut:
    return assist_out(session, help_assist(session, actor, assist_id, helper_id))


def assist_view(session: Session, actor: Actor, assist_id: int) -> AssistOut:
    return assist_out(session, get_assist(session, actor, assist_id))


def open_group_view(session: Session, actor: Actor, member_id: int, campaign: str) -> GroupOut:
    return group_out(session, open_group(session, actor, member_id, campaign))


def join_group_view(session: Session, actor: Actor, group_id: int, member_id: int) -> GroupOut:
    return group_out(session, join_group(session, actor, group_id, member_id))


def group_view(session: Session, actor: Actor, group_id: int) -> GroupOut:
    return group_out(session, get_group(session, actor, group_id))
