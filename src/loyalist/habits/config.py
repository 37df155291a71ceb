"""The ``habits`` configuration document: check-ins and streak bonuses, activity points,
badges, challenges and leaderboards, as versioned data (``loyalist documents apply habits
FILE.yaml``, or the console).

Badge criteria are written in the condition language (``loyalist.kit.conditions``) over the
member's counters in the badge's window; their errors keep their paths
(``badges.0.criteria.all.1.gte``). Actions (streak bonuses, badges, challenges, leaderboard
rewards) are names from ``loyalist.actions`` with parameters, validated at publication.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from loyalist.documents import registry as documents
from loyalist.kit import conditions
from loyalist.kit.wire import Timestamp

from . import domain

Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")]
Counter = Literal[
    "orders",
    "spend_minor",
    "categories",
    "checkins",
    "streak",
    "referrals",
    "reviews",
    "surveys",
    "shares",
]
Activity = Literal["signup", "profile", "birthday", "checkin", "review", "survey", "share"]

COUNTER_FIELDS = conditions.FieldSpec(
    {
        "orders": conditions.Field(conditions.FieldType.INT, "orders", minimum=0),
        "spend_minor": conditions.Field(conditions.FieldType.INT, "paid, fen", minimum=0),
        "categories": conditions.Field(
            conditions.FieldType.INT, "distinct categories bought", minimum=0
        ),
        "checkins": conditions.Field(conditions.FieldType.INT, "check-ins", minimum=0),
        "streak": conditions.Field(conditions.FieldType.INT, "longest streak", minimum=0),
        "referrals": conditions.Field(conditions.FieldType.INT, "qualified referrals", minimum=0),
        "reviews": conditions.Field(conditions.FieldType.INT, "reviews", minimum=0),
        "surveys": conditions.Field(conditions.FieldType.INT, "survey answers", minimum=0),
        "shares": conditions.Field(conditions.FieldType.INT, "shares", minimum=0),
    }
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    zh_CN: str = Field(min_length=1, max_length=120)
    en: str = Field(min_length=1, max_length=120)

    def get(self, locale: str) -> str:
        return self.zh_CN if locale.startswith("zh") else self.en


class ActionRef(Strict):
    action: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> ActionRef:
        from loyalist.actions import registry as actions
        from loyalist.errors import LoyalistError

        try:
            actions.validate(self.action, self.params)
        except LoyalistError as exc:
            raise ValueError(str(exc)) from None
        return self


class StreakBonus(Strict):
    day: int = Field(ge=2, le=366)
    repeat: bool = False  # also at 2×day, 3×day …
    actions: list[ActionRef] = Field(default_factory=list, max_length=5)
    # "double points for a period": activity points (check-in included) are multiplied
    # for this many local days, the unlocking day first.
    boost_multiplier: Decimal | None = Field(default=None, gt=Decimal("1"), le=Decimal("10"))
    boost_days: int = Field(default=0, ge=0, le=90)

    @model_validator(mode="after")
    def _boost(self) -> StreakBonus:
        if (self.boost_multiplier is None) != (self.boost_days == 0):
            raise ValueError("boost_multiplier and boost_days go together")
        return self


class Checkins(Strict):
    enabled: bool = True
    day_start: dt.time = dt.time(4, 0)
    bonuses: list[StreakBonus] = Field(default_factory=list, max_length=20)

    @field_validator("day_start")
    @classmethod
    def _naive(cls, v: dt.time) -> dt.time:
        if v.tzinfo is not None:
            raise ValueError("day_start is a wall time in the programme's zone, no offset")
        return v


class ActivityRule(Strict):
    points: int = Field(ge=1, le=100_000)
    per_day: int | None = Field(default=None, ge=1, le=1000)
    lifetime: int | None = Field(default=None, ge=1, le=1_000_000)


class Badge(Strict):
    code: Code
    name: Text
    description: Text | None = None
    icon: Literal["star", "flame", "bag", "heart", "crown", "gift"] = "star"
    criteria: dict[str, Any]
    window_days: int | None = Field(default=None, ge=1, le=3660)  # None: all time
    actions: list[ActionRef] = Field(default_factory=list, max_length=5)
    _condition: conditions.Condition | None = PrivateAttr(default=None)

    @property
    def condition(self) -> conditions.Condition:
        assert self._condition is not None
        return self._condition


class Challenge(Strict):
    code: Code
    name: Text
    description: Text | None = None
    starts_at: Timestamp
    ends_at: Timestamp
    counter: Counter
    goal: int = Field(ge=1, le=1_000_000_000)
    actions: list[ActionRef] = Field(default_factory=list, max_length=5)

    @model_validator(mode="after")
    def _window(self) -> Challenge:
        for v in (self.starts_at, self.ends_at):
            if v.tzinfo is None:
                raise ValueError("starts_at and ends_at need a UTC offset")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class RankReward(Strict):
    rank_from: int = Field(ge=1, le=1000)
    rank_to: int = Field(ge=1, le=1000)
    actions: list[ActionRef] = Field(min_length=1, max_length=5)

    @model_validator(mode="after")
    def _range(self) -> RankReward:
        if self.rank_to < self.rank_from:
            raise ValueError("rank_to must be at least rank_from")
        return self


class Leaderboard(Strict):
    code: Code
    name: Text
    metric: Literal["points", "referrals", "streak"]
    period: Literal["week", "month", "quarter"]
    # An org unit's code (HQ, a region, a store); None: the whole programme.
    scope: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
    size: int = Field(default=10, ge=1, le=100)
    rewards: list[RankReward] = Field(default_factory=list, max_length=10)
    since: dt.date | None = None  # first period archived (default: the first with scores)

    @model_validator(mode="after")
    def _rewards(self) -> Leaderboard:
        for r in self.rewards:
            if r.rank_to > self.size:
                raise ValueError(f"rewards reach rank {r.rank_to}, beyond size {self.size}")
        return self


class HabitsConfig(Strict):
    """One version of the habits document."""

    schema_version: Literal[1] = 1
    checkins: Checkins = Checkins()
    activities: dict[Activity, ActivityRule] = Field(default_factory=dict)
    badges: list[Badge] = Field(default_factory=list, max_length=200)
    challenges: list[Challenge] = Field(default_factory=list, max_length=200)
    leaderboards: list[Leaderboard] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _parse(self) -> HabitsConfig:
        for what, items in (
            ("badges", self.badges),
            ("challenges", self.challenges),
            ("leaderboards", self.leaderboards),
        ):
            codes = [i.code for i in items]
            dupes = sorted({c for c in codes if codes.count(c) > 1})
            if dupes:
                raise ValueError(f"{what}: duplicate codes {', '.join(dupes)}")
        problems: list[str] = []
        for i, b in enumerate(self.badges):
            try:
                b._condition = conditions.parse(b.criteria, COUNTER_FIELDS)
            except conditions.ConditionError as exc:
                problems += [f"badges.{i}.criteria.{p.path}: {p.message}" for p in exc.problems]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def badge(self, code: str) -> Badge | None:
        return next((b for b in self.badges if b.code == code), None)

    def challenge(self, code: str) -> Challenge | None:
        return next((c for c in self.challenges if c.code == code), None)

    def leaderboard(self, code: str) -> Leaderboard | None:
        return next((b for b in self.leaderboards if b.code == code), None)


assert set(domain.COUNTERS) == set(Counter.__args__)  # type: ignore[attr-defined]
assert set(domain.ACTIVITIES) == set(Activity.__args__)  # type: ignore[attr-defined]

KIND = documents.register(
    documents.Kind(
        name="habits",
        description="Check-ins and streaks, activity points, badges, challenges, leaderboards",
        schema=HabitsConfig,
    )
)
