"""The demo's habits: the habits document (``habits.yaml`` with this month's and this
quarter's challenges), check-in histories with streaks and a few reviews.

Badges, challenge progress and leaderboard scores are computed by the worker's ``habits``
consumer from the whole demo stream once ``loyalist serve`` (or ``loyalist worker``)
runs, and the ended leaderboard periods are archived (top-3 rewards paid) by the
``habits.leaderboards.close`` job — as they would be in production. Doing it here would
double the demo's build time.

Deterministic for a seed and a clock, like the rest of the demo. The member the demo
suggests trying has checked in on each of the last six days: checking in today on the
member page is their seventh day in a row (bonus, double points, a badge).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalist.documents import service as documents
from loyalist.habits import domain
from loyalist.habits import service as habits
from loyalist.habits.errors import AlreadyCheckedIn
from loyalist.habits.schemas import ActivityIn, CheckinIn
from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import clock
from loyalist.kit.db import Database
from loyalist.kit.localtime import add_months, start_of_local_day
from loyalist.member import service as members
from loyalist.models import Member
from loyalist.programme import service as programmes

DOCUMENT = Path(__file__).with_name("habits.yaml")
TRY_STREAK = 6  # the suggested member's streak before today


@dataclass
class Seeded:
    checkins: int
    reviews: int


def document(tz: Any, now: datetime) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    today = now.astimezone(tz).date()
    month = today.replace(day=1)
    quarter = domain.period_start("quarter", today)
    doc["challenges"] = [
        {
            "code": f"visits-{month:%Y-%m}",
            "name": {"zh_CN": f"{month.month} 月到店 3 次", "en": f"Three visits in {month:%B}"},
            "description": {"zh_CN": "完成得 100 积分", "en": "100 points when done"},
            "starts_at": start_of_local_day(tz, month).isoformat(),
            "ends_at": start_of_local_day(tz, add_months(month, 1)).isoformat(),
            "counter": "orders",
            "goal": 3,
            "actions": [
                {"action": "award_points", "params": {"points": 100, "reason": "本月到店 3 次"}}
            ],
        },
        {
            "code": f"taste-{quarter:%Y-%m}",
            "name": {"zh_CN": "本季尝鲜 3 个品类", "en": "Three categories this quarter"},
            "starts_at": start_of_local_day(tz, quarter).isoformat(),
            "ends_at": start_of_local_day(tz, add_months(quarter, 3)).isoformat(),
            "counter": "categories",
            "goal": 3,
            "actions": [{"action": "award_points", "params": {"points": 60, "reason": "本季尝鲜"}}],
        },
    ]
    return doc


def _checkin_at(tz: Any, day_start: time, d: date, rng: random.Random) -> datetime:
    return domain.day_begins(tz, day_start, d) + timedelta(minutes=rng.randrange(60, 16 * 60))


def seed(db: Database, try_phone: str | None, *, seed: int = 7) -> Seeded:
    """Publish the habits document and replay check-ins; the clock is restored after."""
    state = clock.snapshot()
    now = clock.now()
    rng = random.Random(seed * 7919 + 12)
    try:
        with db.transaction() as s:
            tz = programmes.active(s)[1].tz
            note = "演示：签到、徽章与排行榜"
            documents.publish(s, SYSTEM, "habits", document(tz, now), note=note)
            ids = list(s.scalars(select(Member.id).order_by(Member.id).limit(20)))
            focus = None
            if try_phone:
                m = members.get_by_identity(s, SYSTEM, "phone", try_phone)
                focus = m.id
        day_start = time(4, 0)
        today = domain.habit_day(tz, day_start, now)
        plan: list[tuple[datetime, int, str]] = []  # (when, member, what)
        for mid in ids:
            streak = rng.choice([0, 0, 1, 2, 3, 4, 6, 9, 13])
            ends = today - timedelta(days=rng.choice([0, 1, 1, 2, 5]))
            days = {ends - timedelta(days=k) for k in range(streak)}
            old = rng.randrange(20, 60)  # an older run, for longer history
            days |= {today - timedelta(days=old + k) for k in range(rng.randrange(0, 9))}
            plan += [(_checkin_at(tz, day_start, d, rng), mid, "checkin") for d in days]
            if rng.random() < 0.25:
                for k in range(rng.randrange(1, 4)):
                    when = now - timedelta(days=rng.randrange(1, 40), minutes=k)
                    plan.append((when, mid, f"review:{mid}-{k}"))
        if focus is not None:
            plan = [p for p in plan if p[1] != focus]
            plan += [
                (_checkin_at(tz, day_start, today - timedelta(days=k), rng), focus, "checkin")
                for k in range(1, TRY_STREAK + 1)
            ]
            plan.append((now - timedelta(days=3), focus, f"review:{focus}-0"))
        checkins = reviews = 0
        for when, mid, what in sorted(plan):
            if when >= now:
                continue
            clock.freeze(when)
            with db.transaction() as s:
                if what == "checkin":
                    try:
                        habits.check_in(s, SYSTEM, mid, CheckinIn(client_tz="Asia/Shanghai"))
                        checkins += 1
                    except AlreadyCheckedIn:
                        pass
                else:
                    ref = what.split(":", 1)[1]
                    habits.record_activity(s, SYSTEM, mid, ActivityIn(activity="review", ref=ref))
                    reviews += 1
        return Seeded(checkins, reviews)
    finally:
        clock.restore(state)


def summary(s: Session) -> dict[str, int]:
    """Counts for the demo's summary table."""
    from sqlalchemy import func

    from loyalist.models import Checkin, LeaderboardPeriod, MemberBadge

    return {
        "checkins": int(s.scalar(select(func.count()).select_from(Checkin)) or 0),
        "badges": int(s.scalar(select(func.count()).select_from(MemberBadge)) or 0),
        "periods": int(s.scalar(select(func.count()).select_from(LeaderboardPeriod)) or 0),
    }
