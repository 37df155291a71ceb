"""Wire shapes of the habits API."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from loyalist.kit.wire import Timestamp


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckinIn(In):
    # The phone's zone, recorded for support only: the day is the programme's, not this.
    client_tz: str | None = Field(default=None, max_length=64)


class ActivityIn(In):
    activity: Literal["profile", "birthday", "review", "survey", "share"]
    ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="the review, survey answer or share id (required for those three)",
    )


class ActivityOut(BaseModel):
    member_id: int
    activity: str
    ref: str
    points: int
    capped: Literal["day", "lifetime"] | None
    local_day: dt.date
    entry_id: int | None
    occurred_at: Timestamp


class CheckinOut(BaseModel):
    id: int
    member_id: int
    local_day: dt.date
    streak: int
    checked_at: Timestamp
    points: int
    bonuses: list[int] = Field(description="streak lengths whose bonus this check-in unlocked")
    next_day_starts_at: Timestamp


class BadgeOut(BaseModel):
    code: str
    name: str
    description: str | None
    icon: str
    earned: bool
    awarded_at: Timestamp | None


class ChallengeOut(BaseModel):
    code: str
    name: str
    description: str | None
    counter: str
    progress: int
    goal: int
    starts_at: Timestamp
    ends_at: Timestamp
    status: Literal["upcoming", "active", "completed", "expired"]
    completed_at: Timestamp | None


class HabitsOut(BaseModel):
    member_id: int
    today: dt.date
    checked_in_today: bool
    streak: int
    longest_streak: int
    next_day_starts_at: Timestamp
    boost: str | None = Field(description="activity points multiplier in force today")
    badges: list[BadgeOut]
    challenges: list[ChallengeOut]


class StandingOut(BaseModel):
    rank: int
    member_id: int
    member_no: str
    name: str | None
    score: int
    reached_at: Timestamp


class LeaderboardOut(BaseModel):
    code: str
    name: str
    metric: str
    period: str
    scope: str | None = Field(description="the org unit it covers; null: the whole programme")
    period_start: dt.date
    period_end: dt.date
    closed: bool
    next_reset_at: Timestamp
    standings: list[StandingOut]


class LeaderboardList(BaseModel):
    items: list[LeaderboardOut]


class ArchivedPeriod(BaseModel):
    period_start: dt.date
    period_end: dt.date
    closed_at: Timestamp
    rewarded: int
    standings: list[StandingOut]


class LeaderboardArchive(BaseModel):
    code: str
    items: list[ArchivedPeriod]
