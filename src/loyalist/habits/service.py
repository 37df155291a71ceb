"""Check-ins and streaks, activity points, badges, challenges and leaderboards.

Writes lock the member's points account first (``ledger.lock``), so a member's check-ins,
activities and their caps are serialised on both databases; the unique constraints
(``checkin (member_id, local_day)``, ``habit_activity (member_id, activity, ref)``) are the
backstop. Rewards go through ``loyalist.actions`` with a cause naming what earned them, so
each is paid at most once. Counters for badges and challenges and the leaderboard scores
are written by the ``habits`` consumer (``handlers.py``), once per event.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalist.actions import registry as actions
from loyalist.audit import service as audit
from loyalist.documents import service as documents
from loyalist.errors import FieldError, LoyalistError
from loyalist.events import service as events
from loyalist.habits import domain
from loyalist.habits.config import ActionRef, HabitsConfig, Leaderboard
from loyalist.habits.errors import (
    ActivityInvalid,
    ActivityNotEligible,
    ActivityNotOffered,
    AlreadyCheckedIn,
    CheckinsDisabled,
    LeaderboardNotFound,
    PeriodInvalid,
)
from loyalist.habits.schemas import (
    ActivityIn,
    ActivityOut,
    ArchivedPeriod,
    BadgeOut,
    ChallengeOut,
    CheckinIn,
    CheckinOut,
    HabitsOut,
    LeaderboardArchive,
    LeaderboardList,
    LeaderboardOut,
    StandingOut,
)
from loyalist.kit import conditions
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.clock import as_utc, utcnow
from loyalist.kit.localtime import start_of_local_day
from loyalist.ledger import domain as lots
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.models import (
    ChallengeProgress,
    Checkin,
    ConfigDocument,
    HabitActivity,
    HabitFact,
    LeaderboardPeriod,
    LeaderboardScore,
    Member,
    MemberBadge,
)
from loyalist.org import service as org
from loyalist.programme import service as programmes

KIND = "habits"
EMPTY = HabitsConfig()

# ── configuration ───────────────────────────────────────────────────────────────────────

_cache: dict[tuple[str, int, str], HabitsConfig] = {}
_cache_lock = threading.Lock()


def config(session: Session) -> tuple[int, HabitsConfig]:
    """The latest habits document and its version (0 and an empty one when none exists).

    One light query (version and checksum) per call; the document is read and parsed once
    per database, version and checksum.
    """
    row = session.execute(
        select(ConfigDocument.version, ConfigDocument.checksum)
        .where(ConfigDocument.kind == KIND)
        .order_by(ConfigDocument.version.desc())
        .limit(1)
    ).first()
    if row is None:
        return 0, EMPTY
    key = (str(session.get_bind().engine.url), int(row[0]), str(row[1]))
    with _cache_lock:
        found = _cache.get(key)
    if found is None:
        v = documents.get(session, KIND, int(row[0]))
        found = HabitsConfig.model_validate(v.document)
        with _cache_lock:
            _cache[key] = found
    return key[1], found


def zone(session: Session) -> ZoneInfo:
    return programmes.active(session)[1].tz


def _run_actions(
    session: Session, refs: Sequence[ActionRef], *, cause: str, member_id: int
) -> None:
    for i, a in enumerate(refs):
        actions.run(
            session, a.action, a.params, cause=f"{cause}:{i}", member_id=member_id, actor=SYSTEM
        )


# ── check-ins ───────────────────────────────────────────────────────────────────────────


@dataclass
class CheckedIn:
    row: Checkin
    points: int
    bonuses: list[int]
    next_day_starts_at: datetime


def _last_checkin(session: Session, member_id: int, before: date | None = None) -> Checkin | None:
    q = select(Checkin).where(Checkin.member_id == member_id)
    if before is not None:
        q = q.where(Checkin.local_day < before)
    return session.scalar(q.order_by(Checkin.local_day.desc()).limit(1))


def boost_on(session: Session, cfg: HabitsConfig, member_id: int, day: date) -> Decimal | None:
    """The activity-points multiplier a streak bonus puts in force on ``day`` (the largest)."""
    boosts = [b for b in cfg.checkins.bonuses if b.boost_multiplier is not None]
    if not boosts:
        return None
    longest = max(b.boost_days for b in boosts)
    rows = session.scalars(
        select(Checkin).where(
            Checkin.member_id == member_id,
            Checkin.local_day > day - timedelta(days=longest),
            Checkin.local_day <= day,
        )
    ).all()
    best: Decimal | None = None
    for c in rows:
        for b in boosts:
            assert b.boost_multiplier is not None
            alive = c.local_day + timedelta(days=b.boost_days) > day
            if alive and domain.bonus_hits(c.streak, b.day, b.repeat):
                best = b.boost_multiplier if best is None else max(best, b.boost_multiplier)
    return best


def check_in(session: Session, actor: Actor, member_id: int, data: CheckinIn) -> CheckedIn:
    """Record today's check-in (the programme's local day): 409 if there is one already."""
    member = members.get(session, actor, member_id)
    _v, cfg = config(session)
    if not cfg.checkins.enabled:
        raise CheckinsDisabled("Check-ins are switched off in the habits document.")
    if data.client_tz is not None:
        try:
            ZoneInfo(data.client_tz)
        except (ValueError, KeyError):
            raise ActivityInvalid(
                f"Unknown time zone {data.client_tz!r}.",
                [FieldError("client_tz", "an IANA time zone name", "unknown_time_zone")],
            ) from None
    tz = zone(session)
    acct = ledger.lock(session, member.id, member.org_path)  # serialises the member
    now = acct.now
    day = domain.habit_day(tz, cfg.checkins.day_start, now)
    next_starts = domain.day_begins(tz, cfg.checkins.day_start, day + timedelta(days=1))
    same = session.scalar(
        select(Checkin).where(Checkin.member_id == member.id, Checkin.local_day == day)
    )
    if same is not None:
        raise AlreadyCheckedIn(
            f"Member {member.id} has checked in on {day.isoformat()} already.",
            extra={
                "local_day": day.isoformat(),
                "streak": same.streak,
                "next_day_starts_at": next_starts.isoformat(),
            },
        )
    prev = _last_checkin(session, member.id, before=day)
    streak = domain.streak_after(prev.local_day if prev else None, prev.streak if prev else 0, day)
    row = Checkin(
        member_id=member.id,
        local_day=day,
        streak=streak,
        checked_at=now,
        programme_tz=tz.key,
        client_tz=data.client_tz,
    )
    session.add(row)
    session.flush()
    events.emit(
        session,
        "checkin.recorded",
        {
            "member_id": member.id,
            "checkin_id": row.id,
            "local_day": day.isoformat(),
            "streak": streak,
            "checked_at": now.isoformat(),
        },
        member_id=member.id,
        org_path=member.org_path,
    )
    points = 0
    if "checkin" in cfg.activities:
        act = _award(session, acct, member, cfg, "checkin", day.isoformat(), day)
        points = act.points
    birthday = member.birthday is not None and member.birthday.month == day.month
    if "birthday" in cfg.activities and birthday:
        _award(session, acct, member, cfg, "birthday", str(day.year), day)
    hit: list[int] = []
    for b in cfg.checkins.bonuses:
        if domain.bonus_hits(streak, b.day, b.repeat):
            hit.append(b.day)
            _run_actions(
                session,
                b.actions,
                cause=f"streak:{member.id}:{day.isoformat()}:{b.day}",
                member_id=member.id,
            )
    audit.record(
        session,
        actor,
        "checkin.record",
        "member",
        member.id,
        org_path=member.org_path,
        after={"local_day": day.isoformat(), "streak": streak, "points": points, "bonuses": hit},
    )
    return CheckedIn(row, points, hit, next_starts)


def checkin_out(c: CheckedIn) -> CheckinOut:
    return CheckinOut(
        id=c.row.id,
        member_id=c.row.member_id,
        local_day=c.row.local_day,
        streak=c.row.streak,
        checked_at=as_utc(c.row.checked_at),
        points=c.points,
        bonuses=c.bonuses,
        next_day_starts_at=c.next_day_starts_at,
    )


def check_in_view(session: Session, actor: Actor, member_id: int, data: CheckinIn) -> CheckinOut:
    return checkin_out(check_in(session, actor, member_id, data))


def replayed_streaks(session: Session, member_id: int) -> list[tuple[date, int]]:
    """The member's streaks recomputed from their check-in days alone."""
    days = session.scalars(select(Checkin.local_day).where(Checkin.member_id == member_id))
    return domain.streaks(days)


# ── activity points ─────────────────────────────────────────────────────────────────────


def _activity(session: Session, member_id: int, activity: str, ref: str) -> HabitActivity | None:
    return session.scalar(
        select(HabitActivity).where(
            HabitActivity.member_id == member_id,
            HabitActivity.activity == activity,
            HabitActivity.ref == ref,
        )
    )


def _award(
    session: Session,
    acct: ledger.Account,
    member: Member,
    cfg: HabitsConfig,
    activity: str,
    ref: str,
    day: date,
) -> HabitActivity:
    """Points for one activity, once per (member, activity, ref), within the caps.

    The caller holds the member's account lock, so the cap counts cannot race.
    """
    found = _activity(session, member.id, activity, ref)
    if found is not None:
        return found
    rule = cfg.activities.get(activity)  # type: ignore[call-overload]
    if rule is None:
        raise ActivityNotOffered(f"No points are configured for {activity!r}.")
    awarded = and_(
        HabitActivity.member_id == member.id,
        HabitActivity.activity == activity,
        HabitActivity.points > 0,
    )
    today = session.scalar(
        select(func.count())
        .select_from(HabitActivity)
        .where(awarded, HabitActivity.local_day == day)
    )
    ever = session.scalar(select(func.count()).select_from(HabitActivity).where(awarded))
    cap = domain.capped_by(int(today or 0), int(ever or 0), rule.per_day, rule.lifetime)
    points = 0
    entry_id: int | None = None
    if cap is None:
        mult = boost_on(session, cfg, member.id, day)
        points = rule.points
        if mult is not None:
            points = int((Decimal(points) * mult).to_integral_value(rounding=ROUND_FLOOR))
        version, programme = programmes.active(session)
        expires = lots.expires_at(programme.points.expiry, programme.tz, acct.now)
        entry, _lot = ledger.credit(
            session,
            acct,
            points,
            ledger.Cause(
                source_type="activity",
                source_id=f"{activity}:{ref}"[:64],
                actor="system",
                reason=f"activity {activity}",
                programme_version=version,
                details={"activity": activity, "ref": ref},
            ),
            kind="earn",
            earned_at=acct.now,
            available_at=acct.now,
            expires_at=expires,
            dedupe_key=f"activity:{member.id}:{activity}:{ref}",
            counts_as_earned=False,  # per-member caps count points from orders
        )
        entry_id = entry.id
    row = HabitActivity(
        member_id=member.id,
        activity=activity,
        ref=ref,
        local_day=day,
        points=points,
        capped=cap,
        entry_id=entry_id,
        occurred_at=acct.now,
    )
    session.add(row)
    session.flush()
    events.emit(
        session,
        "activity.recorded",
        {
            "member_id": member.id,
            "activity": activity,
            "ref": ref,
            "points": points,
            "capped": cap,
        },
        member_id=member.id,
        org_path=member.org_path,
    )
    return row


def _profile_complete(m: Member) -> bool:
    return bool(m.name and m.birthday and m.gender and m.city)


def record_activity(
    session: Session, actor: Actor, member_id: int, data: ActivityIn
) -> tuple[bool, HabitActivity]:
    """Points for an activity the member did; the same (activity, ref) again changes nothing.

    ``profile`` needs a complete profile (name, birthday, gender, city) and happens once;
    ``birthday`` once a year in the member's birthday month (programme zone); ``review``,
    ``survey`` and ``share`` carry the integrator's id as ``ref``.
    """
    member = members.get(session, actor, member_id)
    _v, cfg = config(session)
    if data.activity not in cfg.activities:
        raise ActivityNotOffered(f"No points are configured for {data.activity!r}.")
    tz = zone(session)
    acct = ledger.lock(session, member.id, member.org_path)
    day = domain.habit_day(tz, cfg.checkins.day_start, acct.now)
    if data.activity in ("review", "survey", "share"):
        if data.ref is None:
            raise ActivityInvalid(
                f"A {data.activity} needs its id as ref.", [FieldError("ref", "required")]
            )
        ref = data.ref
    elif data.activity == "profile":
        if not _profile_complete(member):
            raise ActivityNotEligible(
                "The profile is not complete (name, birthday, gender and city).",
                [FieldError("activity", "profile incomplete", "profile_incomplete")],
            )
        ref = "profile"
    else:  # birthday
        local_month = acct.now.astimezone(tz).month
        if member.birthday is None or member.birthday.month != local_month:
            raise ActivityNotEligible(
                "It is not the member's birthday month.",
                [FieldError("activity", "not the birthday month", "not_birthday_month")],
            )
        ref = str(acct.now.astimezone(tz).year)
    found = _activity(session, member.id, data.activity, ref)
    if found is not None:
        return False, found
    row = _award(session, acct, member, cfg, data.activity, ref, day)
    audit.record(
        session,
        actor,
        "activity.record",
        "member",
        member.id,
        org_path=member.org_path,
        after={
            "activity": row.activity,
            "ref": row.ref,
            "points": row.points,
            "capped": row.capped,
        },
    )
    return True, row


def activity_out(a: HabitActivity) -> ActivityOut:
    return ActivityOut(
        member_id=a.member_id,
        activity=a.activity,
        ref=a.ref,
        points=a.points,
        capped=a.capped,
        local_day=a.local_day,
        entry_id=a.entry_id,
        occurred_at=as_utc(a.occurred_at),
    )


def record_activity_view(
    session: Session, actor: Actor, member_id: int, data: ActivityIn
) -> tuple[int, ActivityOut]:
    created, row = record_activity(session, actor, member_id, data)
    return (201 if created else 200), activity_out(row)


def signup_points(session: Session, member_id: int, joined_at: datetime) -> None:
    """Sign-up points for a new member (the consumer calls it on ``member.created``).

    Only members who joined after the habits version in force was published: publishing
    sign-up points never pays every member who joined before (the consumer may read the
    stream's history when the feature is switched on).
    """
    _v, cfg = config(session)
    if "signup" not in cfg.activities:
        return
    if joined_at < as_utc(documents.get(session, KIND).created_at):
        return
    member = members.get(session, SYSTEM, member_id)
    acct = ledger.lock(session, member.id, member.org_path)
    day = domain.habit_day(zone(session), cfg.checkins.day_start, acct.now)
    _award(session, acct, member, cfg, "signup", "signup", day)


# ── counters, badges, challenges ────────────────────────────────────────────────────────


def add_fact(
    session: Session,
    member_id: int,
    counter: str,
    amount: int,
    occurred_at: datetime,
    event_id: str,
    label: str = "",
) -> None:
    session.add(
        HabitFact(
            member_id=member_id,
            counter=counter,
            label=label[:64],
            amount=amount,
            occurred_at=occurred_at,
            event_id=event_id,
        )
    )


def counters(
    session: Session, member_id: int, start: datetime | None, end: datetime | None = None
) -> dict[str, int]:
    """The member's counters from facts in [start, end): sums, the longest streak and the
    number of distinct categories."""
    conds = [HabitFact.member_id == member_id]
    if start is not None:
        conds.append(HabitFact.occurred_at >= start)
    if end is not None:
        conds.append(HabitFact.occurred_at < end)
    out = dict.fromkeys(domain.COUNTERS, 0)
    rows = session.execute(
        select(
            HabitFact.counter,
            func.coalesce(func.sum(HabitFact.amount), 0),
            func.coalesce(func.max(HabitFact.amount), 0),
            func.count(func.distinct(HabitFact.label)),
        )
        .where(*conds)
        .group_by(HabitFact.counter)
    ).all()
    for counter, total, biggest, labels in rows:
        if counter == "streak":
            out[counter] = int(biggest)
        elif counter == "categories":
            out[counter] = int(labels)
        else:
            out[counter] = int(total)
    return out


def evaluate_member(
    session: Session, member_id: int, touched: Iterable[str], at: datetime, event_id: str
) -> None:
    """Award badges whose criteria now hold and move challenge progress (consumer side)."""
    _v, cfg = config(session)
    touched = set(touched)
    now = utcnow()
    have = set(session.scalars(select(MemberBadge.badge).where(MemberBadge.member_id == member_id)))
    by_window: dict[int | None, dict[str, int]] = {}
    for b in cfg.badges:
        if b.code in have:
            continue
        if b.window_days not in by_window:
            start = now - timedelta(days=b.window_days) if b.window_days else None
            by_window[b.window_days] = counters(session, member_id, start)
        if conditions.evaluate(b.condition, by_window[b.window_days]):
            session.add(
                MemberBadge(member_id=member_id, badge=b.code, awarded_at=now, event_id=event_id)
            )
            session.flush()
            events.emit(
                session,
                "badge.awarded",
                {"member_id": member_id, "badge": b.code},
                member_id=member_id,
                org_path=member_path(session, member_id),
            )
            _run_actions(session, b.actions, cause=f"badge:{b.code}", member_id=member_id)
    for c in cfg.challenges:
        if c.counter not in touched or not (c.starts_at <= at < c.ends_at):
            continue
        value = counters(session, member_id, c.starts_at, c.ends_at)[c.counter]
        row = session.scalar(
            select(ChallengeProgress).where(
                ChallengeProgress.challenge == c.code, ChallengeProgress.member_id == member_id
            )
        )
        if row is None:
            row = ChallengeProgress(
                challenge=c.code,
                member_id=member_id,
                progress=value,
                goal=c.goal,
                completed_at=None,
                updated_at=now,
            )
            session.add(row)
        else:
            row.progress, row.goal, row.updated_at = value, c.goal, now
        session.flush()
        if row.completed_at is None and value >= c.goal:
            row.completed_at = now
            events.emit(
                session,
                "challenge.completed",
                {"member_id": member_id, "challenge": c.code, "progress": value, "goal": c.goal},
                member_id=member_id,
                org_path=member_path(session, member_id),
            )
            _run_actions(session, c.actions, cause=f"challenge:{c.code}", member_id=member_id)


def member_path(session: Session, member_id: int) -> str:
    return members.get(session, SYSTEM, member_id).org_path


def habits_view(session: Session, actor: Actor, member_id: int, locale: str = "en") -> HabitsOut:
    member = members.get(session, actor, member_id)
    _v, cfg = config(session)
    tz = zone(session)
    now = utcnow()
    today = domain.habit_day(tz, cfg.checkins.day_start, now)
    last = _last_checkin(session, member.id)
    longest = session.scalar(
        select(func.coalesce(func.max(Checkin.streak), 0)).where(Checkin.member_id == member.id)
    )
    badges = {
        b.badge: b
        for b in session.scalars(select(MemberBadge).where(MemberBadge.member_id == member.id))
    }
    progress = {
        p.challenge: p
        for p in session.scalars(
            select(ChallengeProgress).where(ChallengeProgress.member_id == member.id)
        )
    }
    boost = boost_on(session, cfg, member.id, today)
    out_badges = [
        BadgeOut(
            code=b.code,
            name=b.name.get(locale),
            description=b.description.get(locale) if b.description else None,
            icon=b.icon,
            earned=b.code in badges,
            awarded_at=as_utc(badges[b.code].awarded_at) if b.code in badges else None,
        )
        for b in cfg.badges
    ]
    out_challenges: list[ChallengeOut] = []
    for c in cfg.challenges:
        p = progress.get(c.code)
        status = (
            "completed"
            if p is not None and p.completed_at is not None
            else "upcoming"
            if now < c.starts_at
            else "expired"
            if now >= c.ends_at
            else "active"
        )
        out_challenges.append(
            ChallengeOut(
                code=c.code,
                name=c.name.get(locale),
                description=c.description.get(locale) if c.description else None,
                counter=c.counter,
                progress=min(p.progress, c.goal) if p else 0,
                goal=c.goal,
                starts_at=c.starts_at,
                ends_at=c.ends_at,
                status=status,
                completed_at=as_utc(p.completed_at) if p and p.completed_at else None,
            )
        )
    return HabitsOut(
        member_id=member.id,
        today=today,
        checked_in_today=last is not None and last.local_day == today,
        streak=domain.current_streak(
            last.local_day if last else None, last.streak if last else 0, today
        ),
        longest_streak=int(longest or 0),
        next_day_starts_at=domain.day_begins(tz, cfg.checkins.day_start, today + timedelta(days=1)),
        boost=str(boost) if boost is not None else None,
        badges=out_badges,
        challenges=out_challenges,
    )


def member_badges(session: Session, member_id: int) -> list[tuple[str, datetime]]:
    """The codes of the badges a member earned, with when (for the console's 360 view)."""
    rows = session.execute(
        select(MemberBadge.badge, MemberBadge.awarded_at)
        .where(MemberBadge.member_id == member_id)
        .order_by(MemberBadge.awarded_at, MemberBadge.id)
    ).all()
    return [(str(b), as_utc(t)) for b, t in rows]


# ── leaderboards ────────────────────────────────────────────────────────────────────────


def period_of(tz: ZoneInfo, board: Leaderboard, at: datetime) -> date:
    return domain.period_start(board.period, at.astimezone(tz).date())


def scope_path(session: Session, board: Leaderboard) -> str:
    """The org path a board covers: its unit's path, "/" for the whole programme (and a
    path matching nothing when the unit does not exist)."""
    if board.scope is None:
        return "/"
    try:
        return org.get_by_code(session, board.scope).path
    except LoyalistError:
        return f"/unknown-unit:{board.scope}/"


def add_score(
    session: Session,
    board: Leaderboard,
    tz: ZoneInfo,
    member_id: int,
    org_path: str | None,
    amount: int,
    at: datetime,
    *,
    keep_max: bool = False,
) -> None:
    """Add to (or, ``keep_max``, raise to) a member's score in the period containing ``at``.

    Only the consumer writes scores (one batch at a time per consumer), so no two writers
    meet on a row.
    """
    if org_path is None or amount <= 0 or not org_path.startswith(scope_path(session, board)):
        return
    start = period_of(tz, board, at)
    row = session.scalar(
        select(LeaderboardScore).where(
            LeaderboardScore.board == board.code,
            LeaderboardScore.period_start == start,
            LeaderboardScore.member_id == member_id,
        )
    )
    if row is None:
        session.add(
            LeaderboardScore(
                board=board.code,
                period_start=start,
                member_id=member_id,
                score=amount,
                reached_at=at,
            )
        )
        return
    new = max(row.score, amount) if keep_max else row.score + amount
    if new != row.score:
        row.score, row.reached_at = new, at


def _standings(session: Session, board: Leaderboard, start: date) -> list[StandingOut]:
    rows = session.scalars(
        select(LeaderboardScore).where(
            LeaderboardScore.board == board.code, LeaderboardScore.period_start == start
        )
    ).all()
    ranked = domain.ranked(
        [domain.Standing(r.member_id, r.score, as_utc(r.reached_at)) for r in rows]
    )[: board.size]
    ids = [s.member_id for _, s in ranked]
    info = (
        {m.id: m for m in session.scalars(select(Member).where(Member.id.in_(ids)))} if ids else {}
    )
    return [
        StandingOut(
            rank=rank,
            member_id=s.member_id,
            member_no=info[s.member_id].member_no,
            name=info[s.member_id].name,
            score=s.score,
            reached_at=s.reached_at,
        )
        for rank, s in ranked
    ]


def _board(cfg: HabitsConfig, code: str) -> Leaderboard:
    b = cfg.leaderboard(code)
    if b is None:
        raise LeaderboardNotFound(f"No leaderboard {code!r}.")
    return b


def _visible(session: Session, actor: Actor, board: Leaderboard) -> bool:
    """A caller sees the boards whose scope lies within their own; a programme-wide board
    is seen by callers with the whole programme (HQ) in scope."""
    path = scope_path(session, board)
    if path == "/":
        hq = org.get_hq(session)
        path = hq.path if hq is not None else "/"
    return path.startswith(actor.scope_path)


def board_out(
    session: Session, tz: ZoneInfo, board: Leaderboard, start: date, locale: str = "en"
) -> LeaderboardOut:
    end = domain.next_period_start(board.period, start)
    closed = session.scalar(
        select(LeaderboardPeriod).where(
            LeaderboardPeriod.board == board.code, LeaderboardPeriod.period_start == start
        )
    )
    current = period_of(tz, board, utcnow())
    nxt = domain.next_period_start(board.period, current)
    return LeaderboardOut(
        code=board.code,
        name=board.name.get(locale),
        metric=board.metric,
        period=board.period,
        scope=board.scope,
        period_start=start,
        period_end=end - timedelta(days=1),
        closed=closed is not None,
        next_reset_at=start_of_local_day(tz, nxt),
        standings=_standings(session, board, start),
    )


def leaderboards_view(session: Session, actor: Actor, locale: str = "en") -> LeaderboardList:
    _v, cfg = config(session)
    if not cfg.leaderboards:
        return LeaderboardList(items=[])
    tz = zone(session)
    now = utcnow()
    return LeaderboardList(
        items=[
            board_out(session, tz, b, period_of(tz, b, now), locale)
            for b in cfg.leaderboards
            if _visible(session, actor, b)
        ]
    )


def leaderboard_view(
    session: Session, actor: Actor, code: str, period: date | None, locale: str = "en"
) -> LeaderboardOut:
    _v, cfg = config(session)
    board = _board(cfg, code)
    if not _visible(session, actor, board):
        raise LeaderboardNotFound(f"No leaderboard {code!r}.")
    tz = zone(session)
    if period is None:
        start = period_of(tz, board, utcnow())
    else:
        start = domain.period_start(board.period, period)
        if start > period_of(tz, board, utcnow()):
            raise PeriodInvalid(
                "That period has not begun.", [FieldError("period", "a date in the past")]
            )
    return board_out(session, tz, board, start, locale)


def archive_view(session: Session, actor: Actor, code: str) -> LeaderboardArchive:
    _v, cfg = config(session)
    board = _board(cfg, code)
    if not _visible(session, actor, board):
        raise LeaderboardNotFound(f"No leaderboard {code!r}.")
    rows = session.scalars(
        select(LeaderboardPeriod)
        .where(LeaderboardPeriod.board == code)
        .order_by(LeaderboardPeriod.period_start.desc())
    ).all()
    return LeaderboardArchive(
        code=code,
        items=[
            ArchivedPeriod(
                period_start=r.period_start,
                period_end=r.period_end,
                closed_at=as_utc(r.closed_at),
                rewarded=r.rewarded,
                standings=[StandingOut.model_validate(s) for s in r.standings],
            )
            for r in rows
        ],
    )


# Periods are closed this long after they end, so that events from the period's last
# minutes have been counted by the consumer first.
CLOSE_GRACE = timedelta(minutes=5)


def close_periods(session: Session) -> int:
    """Archive every ended period of every board not archived yet, and pay its top ranks.

    Exactly once per (board, period): the archive row is unique and every reward runs
    through ``actions`` with the cause ``leaderboard:<board>:<period>:<rank>``. A period
    missed while the server was down is closed by the first run after it comes back (the
    schedule's missed occurrence fires once; this function closes every period still open).
    """
    _v, cfg = config(session)
    if not cfg.leaderboards:
        return 0
    tz = zone(session)
    now = utcnow()
    closed = 0
    for board in cfg.leaderboards:
        first = board.since or session.scalar(
            select(func.min(LeaderboardScore.period_start)).where(
                LeaderboardScore.board == board.code
            )
        )
        if first is None:
            continue
        done = set(
            session.scalars(
                select(LeaderboardPeriod.period_start).where(LeaderboardPeriod.board == board.code)
            )
        )
        ended_by = (now - CLOSE_GRACE).astimezone(tz).date()
        for start in domain.periods_between(board.period, first, ended_by + timedelta(days=1)):
            end = domain.next_period_start(board.period, start)
            if start in done or start_of_local_day(tz, end) + CLOSE_GRACE > now:
                continue
            closed += _close(session, board, start, end, now)
    return closed


def _close(session: Session, board: Leaderboard, start: date, end: date, now: datetime) -> int:
    standings = _standings(session, board, start)
    row = LeaderboardPeriod(
        board=board.code,
        period_start=start,
        period_end=end - timedelta(days=1),
        closed_at=now,
        standings=[s.model_dump(mode="json") for s in standings],
        rewarded=0,
    )
    try:
        with session.begin_nested():  # a concurrent closer: the unique row lets one win
            session.add(row)
            session.flush()
    except IntegrityError:
        return 0
    paid = 0
    for s in standings:
        for r in board.rewards:
            if r.rank_from <= s.rank <= r.rank_to:
                _run_actions(
                    session,
                    r.actions,
                    cause=f"leaderboard:{board.code}:{start.isoformat()}:{s.rank}",
                    member_id=s.member_id,
                )
                paid += 1
    row.rewarded = paid
    events.emit(
        session,
        "leaderboard.closed",
        {
            "board": board.code,
            "period_start": start.isoformat(),
            "period_end": (end - timedelta(days=1)).isoformat(),
            "entries": len(standings),
            "rewarded": paid,
        },
    )
    return 1


def scores_for(session: Session, board: str, start: date) -> dict[int, int]:
    """Raw scores of a board's period by member (tests, the console)."""
    rows = session.execute(
        select(LeaderboardScore.member_id, LeaderboardScore.score).where(
            LeaderboardScore.board == board, LeaderboardScore.period_start == start
        )
    ).all()
    return {int(m): int(s) for m, s in rows}


@dataclass
class MemberBoard:
    board: LeaderboardOut
    mine: StandingOut | None  # the member's own standing (also beyond the top N)


def boards_for_member(session: Session, member_id: int, locale: str) -> list[MemberBoard]:
    """The boards covering the member (their unit is in the board's scope), current period,
    with the member's own rank."""
    member = members.get(session, SYSTEM, member_id)
    _v, cfg = config(session)
    if not cfg.leaderboards:
        return []
    tz = zone(session)
    now = utcnow()
    out: list[MemberBoard] = []
    for b in cfg.leaderboards:
        if not member.org_path.startswith(scope_path(session, b)):
            continue
        start = period_of(tz, b, now)
        shown = board_out(session, tz, b, start, locale)
        mine = next((s for s in shown.standings if s.member_id == member_id), None)
        if mine is None:
            rows = session.scalars(
                select(LeaderboardScore).where(
                    LeaderboardScore.board == b.code, LeaderboardScore.period_start == start
                )
            ).all()
            for rank, s in domain.ranked(
                [domain.Standing(r.member_id, r.score, as_utc(r.reached_at)) for r in rows]
            ):
                if s.member_id == member_id:
                    mine = StandingOut(
                        rank=rank,
                        member_id=member_id,
                        member_no=member.member_no,
                        name=member.name,
                        score=s.score,
                        reached_at=s.reached_at,
                    )
        out.append(MemberBoard(shown, mine))
    return out


# ── console ─────────────────────────────────────────────────────────────────────────────


@dataclass
class Overview:
    version: int
    config: HabitsConfig
    badge_counts: dict[str, int]
    challenge_counts: dict[str, tuple[int, int]]  # participants, completed
    boards: list[LeaderboardOut]
    archived: dict[str, int]


def overview(session: Session, actor: Actor, locale: str) -> Overview:
    """What the console's habits page shows: the document and how each part is doing."""
    version, cfg = config(session)
    badge_counts = {
        str(b): int(n)
        for b, n in session.execute(
            select(MemberBadge.badge, func.count()).group_by(MemberBadge.badge)
        ).all()
    }
    challenge_counts = {
        str(c): (int(n), int(done or 0))
        for c, n, done in session.execute(
            select(
                ChallengeProgress.challenge,
                func.count(),
                func.count(ChallengeProgress.completed_at),
            ).group_by(ChallengeProgress.challenge)
        ).all()
    }
    archived = {
        str(b): int(n)
        for b, n in session.execute(
            select(LeaderboardPeriod.board, func.count()).group_by(LeaderboardPeriod.board)
        ).all()
    }
    boards = leaderboards_view(session, actor, locale).items if cfg.leaderboards else []
    return Overview(version, cfg, badge_counts, challenge_counts, boards, archived)
