"""Journeys as data: the document, its checks, and the pure rules that move a run.

A journey document (kind ``journeys``) lists every journey of the programme::

    holdout: {percent: 5}            # programme-wide holdout kept out of all marketing
    journeys:
      - key: win_back
        name: 召回
        marketing: true
        entry: {inactive_days: 60}   # or {event: order.recorded, when: …} / {segment: …}
                                     #    / {date: birthday, days_before: 0}
        reentry: {mode: after, days: 90}     # never | after | always
        exit: [{event: order.recorded}]
        grace_minutes: 120           # resuming skips what became overdue by more than this
        steps:
          - {id: pick, type: split, experiment: winback_offer,
             variants: [{name: control, weight: 50, next: end},
                        {name: coupon, weight: 50, next: offer}]}
          - {id: offer, type: action, action: issue_coupon, params: {…}}
          - {id: wait, type: wait, duration: {days: 3}, until: "10:00"}
          - {id: bought, type: wait_event, event: order.recorded,
             timeout: {days: 14}, then: thanks, else: end}
          - {id: thanks, type: action, action: send_message, params: {…}}

Steps run in list order unless ``next`` (or a branch's ``then``/``else``, a split variant's
``next``) names a later step or ``end``. References point forward only, so a run is a path
through a directed acyclic graph: each step is visited at most once per run, which is what
lets ``(run, step)`` be the key of a step's effect.

Pure: no database, no web. Times are aware datetimes; local rules use the programme's zone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loyalist.kit import conditions
from loyalist.kit.conditions import FieldSpec, FieldType
from loyalist.kit.documents import path_errors
from loyalist.kit.localtime import start_of_local_day
from loyalist.programme.conditions import WEEKDAYS
from loyalist.programme.conditions import catalogue as loyalty_catalogue

END = "end"
Key = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")]
StepId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,47}$")]
EventType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=64)]
LocalTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DateAttribute = Literal["birthday"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Duration(Strict):
    days: int = Field(default=0, ge=0, le=3650)
    hours: int = Field(default=0, ge=0, le=10_000)
    minutes: int = Field(default=0, ge=0, le=100_000)

    @property
    def delta(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes)


# --------------------------------------------------------------------------- steps


class WaitStep(Strict):
    """Wait a duration, then (optionally) until a local time on allowed weekdays, or until
    a date attribute (the member's birthday, ``days_before`` it, at ``until`` or 09:00)."""

    id: StepId
    type: Literal["wait"]
    duration: Duration | None = None
    until: LocalTime | None = None
    weekdays: list[Weekday] | None = Field(default=None, min_length=1)
    date: DateAttribute | None = None
    days_before: int = Field(default=0, ge=0, le=60)
    next: str | None = None


class ActionStep(Strict):
    id: StepId
    type: Literal["action"]
    action: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    next: str | None = None


class BranchStep(Strict):
    id: StepId
    type: Literal["branch"]
    when: dict[str, Any]
    then: str
    else_: str = Field(alias="else")


class WaitEventStep(Strict):
    id: StepId
    type: Literal["wait_event"]
    event: EventType
    when: dict[str, Any] | None = None
    timeout: Duration
    then: str
    else_: str = Field(alias="else")


class Variant(Strict):
    name: Key
    weight: int = Field(ge=0, le=10_000)
    next: str | None = None


class SplitStep(Strict):
    id: StepId
    type: Literal["split"]
    experiment: Key
    control: Key = "control"
    variants: list[Variant] = Field(min_length=2, max_length=10)
    # Conversions for the readout: an order within ``window_days`` of the split.
    conversion_event: Literal["order.recorded"] = "order.recorded"
    window_days: int = Field(default=14, ge=1, le=365)


class EndStep(Strict):
    id: StepId
    type: Literal["end"]


Step = Annotated[
    WaitStep | ActionStep | BranchStep | WaitEventStep | SplitStep | EndStep,
    Field(discriminator="type"),
]
WAITING_TYPES = ("wait", "wait_event")


# --------------------------------------------------------------------------- journey


class Entry(Strict):
    """Exactly one trigger: an event (+ condition), a segment, a date attribute, or N days
    since the member's last order (the last three are checked once a local day)."""

    event: EventType | None = None
    when: dict[str, Any] | None = None
    segment: dict[str, Any] | None = None
    date: DateAttribute | None = None
    days_before: int = Field(default=0, ge=0, le=60)
    inactive_days: int | None = Field(default=None, ge=1, le=3650)

    @property
    def kind(self) -> str:
        if self.event is not None:
            return "event"
        if self.segment is not None:
            return "segment"
        if self.date is not None:
            return "date"
        return "inactive"


class Reentry(Strict):
    mode: Literal["never", "after", "always"] = "never"
    days: int | None = Field(default=None, ge=1, le=3650)


class Exit(Strict):
    event: EventType
    when: dict[str, Any] | None = None


class Journey(Strict):
    key: Key
    name: str = Field(min_length=1, max_length=128)
    description: str | None = Field(default=None, max_length=1000)
    marketing: bool = True  # holdout members never enter a marketing journey
    entry: Entry
    reentry: Reentry = Reentry()
    exit: list[Exit] = Field(default_factory=list, max_length=10)
    grace_minutes: int = Field(default=120, ge=0, le=60 * 24 * 30)
    steps: list[Step] = Field(min_length=1, max_length=100)

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def index(self, step_id: str) -> int:
        for i, s in enumerate(self.steps):
            if s.id == step_id:
                return i
        raise KeyError(step_id)

    def following(self, step_id: str, explicit: str | None) -> str:
        """The step after ``step_id``: ``explicit`` if given, else the next in the list."""
        if explicit is not None:
            return explicit
        i = self.index(step_id)
        return self.steps[i + 1].id if i + 1 < len(self.steps) else END

    def experiments(self) -> list[SplitStep]:
        return [s for s in self.steps if isinstance(s, SplitStep)]


class Holdout(Strict):
    percent: float = Field(default=0, ge=0, le=50)
    salt: str = Field(default="holdout", min_length=1, max_length=64)


class JourneySet(Strict):
    """The ``journeys`` document: every journey of the programme, and the holdout."""

    holdout: Holdout = Holdout()
    journeys: list[Journey] = Field(default_factory=list, max_length=200)

    def get(self, key: str) -> Journey | None:
        for j in self.journeys:
            if j.key == key:
                return j
        return None


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str
    type: str = "invalid"


class JourneyInvalid(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems[:5]))


# --------------------------------------------------------------------------- conditions

EXTRA_FIELDS = {
    "member.last_order_days": conditions.Field(
        FieldType.INT, "whole local days since the last order", minimum=0
    ),
    "member.orders": conditions.Field(FieldType.INT, "number of orders", minimum=0),
}


def catalogue(tier_codes: tuple[str, ...] | None) -> FieldSpec:
    """The fields a journey condition may read: the loyalty catalogue plus order history.

    Without tier codes (checking a document, no programme at hand) ``member.tier`` is an
    ordered string of any value; at run time the programme's tiers give it its order.
    """
    base = loyalty_catalogue(tier_codes or ())
    fields = dict(base.fields)
    if tier_codes is None:
        fields["member.tier"] = conditions.Field(FieldType.STR, "tier code", ordered=True)
    fields.update(EXTRA_FIELDS)
    return FieldSpec(fields)


def conditions_of(j: Journey) -> list[tuple[str, dict[str, Any]]]:
    """Every condition of a journey, with the field path it sits at."""
    out: list[tuple[str, dict[str, Any]]] = []
    if j.entry.when is not None:
        out.append(("entry.when", j.entry.when))
    if j.entry.segment is not None:
        out.append(("entry.segment", j.entry.segment))
    for i, e in enumerate(j.exit):
        if e.when is not None:
            out.append((f"exit.{i}.when", e.when))
    for i, s in enumerate(j.steps):
        if isinstance(s, BranchStep | WaitEventStep) and s.when is not None:
            out.append((f"steps.{i}.when", s.when))
    return out


def _check_journey(j: Journey, at: str, actions: set[str] | None) -> list[Problem]:
    problems: list[Problem] = []
    e = j.entry
    triggers = [e.event is not None, e.segment is not None, e.date is not None]
    triggers.append(e.inactive_days is not None)
    if sum(triggers) != 1:
        problems.append(
            Problem(
                f"{at}.entry",
                "exactly one of event, segment, date, inactive_days",
                "entry_trigger",
            )
        )
    if e.when is not None and e.event is None:
        problems.append(Problem(f"{at}.entry.when", "only with an event trigger"))
    if j.reentry.mode == "after" and j.reentry.days is None:
        problems.append(Problem(f"{at}.reentry.days", "required when mode is after", "missing"))
    if j.reentry.mode != "after" and j.reentry.days is not None:
        problems.append(Problem(f"{at}.reentry.days", "only when mode is after"))
    index: dict[str, int] = {}
    for i, s in enumerate(j.steps):
        if s.id == END:
            problems.append(Problem(f"{at}.steps.{i}.id", "'end' is reserved"))
        if s.id in index:
            problems.append(Problem(f"{at}.steps.{i}.id", f"step id {s.id!r} is used twice"))
        index.setdefault(s.id, i)

    def ref(i: int, field: str, target: str | None) -> None:
        if target is None or target == END:
            return
        if target not in index:
            problems.append(Problem(f"{at}.steps.{i}.{field}", f"no step {target!r}", "unknown"))
        elif index[target] <= i:
            problems.append(
                Problem(
                    f"{at}.steps.{i}.{field}",
                    f"{target!r} is not after this step (steps only go forward)",
                    "backward",
                )
            )

    experiments: set[str] = set()
    for i, s in enumerate(j.steps):
        if isinstance(s, WaitStep):
            if s.duration is None and s.until is None and s.date is None:
                problems.append(Problem(f"{at}.steps.{i}", "a wait needs duration, until or date"))
            if s.weekdays is not None and s.until is None:
                problems.append(Problem(f"{at}.steps.{i}.weekdays", "only with until"))
            if s.date is not None and s.duration is not None:
                problems.append(Problem(f"{at}.steps.{i}.date", "either duration or date"))
            if s.duration is not None and s.duration.delta <= timedelta(0):
                problems.append(Problem(f"{at}.steps.{i}.duration", "must be positive"))
            ref(i, "next", s.next)
        elif isinstance(s, ActionStep):
            if actions is not None and s.action not in actions:
                problems.append(
                    Problem(
                        f"{at}.steps.{i}.action",
                        f"unknown action {s.action!r}; one of: {', '.join(sorted(actions))}",
                        "unknown_action",
                    )
                )
            ref(i, "next", s.next)
        elif isinstance(s, BranchStep | WaitEventStep):
            ref(i, "then", s.then)
            ref(i, "else", s.else_)
            if isinstance(s, WaitEventStep) and s.timeout.delta <= timedelta(0):
                problems.append(Problem(f"{at}.steps.{i}.timeout", "must be positive"))
        elif isinstance(s, SplitStep):
            names = [v.name for v in s.variants]
            if len(set(names)) != len(names):
                problems.append(Problem(f"{at}.steps.{i}.variants", "variant names repeat"))
            if s.control not in names:
                problems.append(
                    Problem(f"{at}.steps.{i}.control", f"no variant named {s.control!r}")
                )
            if sum(v.weight for v in s.variants) <= 0:
                problems.append(Problem(f"{at}.steps.{i}.variants", "weights sum to zero"))
            if s.experiment in experiments:
                problems.append(Problem(f"{at}.steps.{i}.experiment", "used twice in this journey"))
            experiments.add(s.experiment)
            for k, v in enumerate(s.variants):
                ref(i, f"variants.{k}.next", v.next)
    spec = catalogue(None)
    for path, cond in conditions_of(j):
        try:
            conditions.parse(cond, spec)
        except conditions.ConditionError as exc:
            problems.extend(
                Problem(
                    f"{at}.{path}.{p.path}" if p.path else f"{at}.{path}", p.message, "condition"
                )
                for p in exc.problems
            )
    return problems


def parse(data: Any, actions: set[str] | None = None) -> JourneySet:
    """A ``journeys`` document validated in full; :class:`JourneyInvalid` names every
    problem by its path (``journeys.0.steps.2.then``)."""
    if not isinstance(data, dict):
        raise JourneyInvalid([Problem("$", "expected a mapping")])
    try:
        doc = JourneySet.model_validate(data)
    except ValidationError as exc:
        raise JourneyInvalid(
            [Problem(e.path, e.message, e.type) for e in path_errors(exc)]
        ) from exc
    problems: list[Problem] = []
    keys: set[str] = set()
    experiments: dict[str, str] = {}
    for n, j in enumerate(doc.journeys):
        at = f"journeys.{n}"
        if j.key in keys:
            problems.append(Problem(f"{at}.key", f"journey key {j.key!r} is used twice"))
        keys.add(j.key)
        problems.extend(_check_journey(j, at, actions))
        for s in j.experiments():
            other = experiments.setdefault(s.experiment, j.key)
            if other != j.key:
                problems.append(
                    Problem(f"{at}.steps.{j.index(s.id)}.experiment", f"also used by {other!r}")
                )
    if problems:
        raise JourneyInvalid(problems)
    return doc


# --------------------------------------------------------------------------- rules


def bucket(salt: str, member_id: int) -> float:
    """A member's fixed place in [0, 1) for ``salt``: the first 8 bytes of SHA-256."""
    digest = hashlib.sha256(f"{salt}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(h: Holdout, member_id: int) -> bool:
    return h.percent > 0 and bucket(f"holdout:{h.salt}", member_id) * 100 < h.percent


def assign(step: SplitStep, member_id: int) -> Variant:
    """The variant of ``member_id`` in the experiment: deterministic, by weight."""
    total = sum(v.weight for v in step.variants)
    point = bucket(f"experiment:{step.experiment}", member_id) * total
    acc = 0
    for v in step.variants:
        acc += v.weight
        if point < acc:
            return v
    return [v for v in step.variants if v.weight > 0][-1]


def _hm(value: str) -> time:
    h, m = value.split(":")
    return time(int(h), int(m))


def next_local_time(
    tz: tzinfo, after: datetime, at: str, weekdays: Sequence[str] | None = None
) -> datetime:
    """The first instant at or after ``after`` whose wall clock in ``tz`` reads ``at`` on an
    allowed weekday (UTC). A time skipped by daylight saving is taken at the transition."""
    t = _hm(at)
    local = after.astimezone(tz)
    for add in range(0, 8):
        d = local.date() + timedelta(days=add)
        if weekdays is not None and WEEKDAYS[d.weekday()] not in weekdays:
            continue
        candidate = _wall(tz, d, t)
        if candidate >= after:
            return candidate
    raise AssertionError("a week always has an allowed day")  # pragma: no cover


def _wall(tz: tzinfo, d: date, t: time) -> datetime:
    day_start = start_of_local_day(tz, d)
    wall = datetime.combine(d, t, tzinfo=tz)
    utc = wall.astimezone(day_start.tzinfo)
    return max(utc, day_start)


def next_anniversary(tz: tzinfo, after: datetime, d: date, days_before: int, at: str) -> datetime:
    """The next ``at`` local time, ``days_before`` days before the anniversary of ``d``,
    at or after ``after`` (29 February counts as 28 February in other years)."""
    today = after.astimezone(tz).date()
    for year in (today.year - 1, today.year, today.year + 1, today.year + 2):
        try:
            day = d.replace(year=year)
        except ValueError:
            day = date(year, 2, 28)
        due = _wall(tz, day - timedelta(days=days_before), _hm(at))
        if due >= after:
            return due
    raise AssertionError("unreachable")  # pragma: no cover


def wait_until(
    step: WaitStep, tz: tzinfo, start: datetime, birthday: date | None
) -> datetime | None:
    """When a wait that starts at ``start`` ends (None: the member has no such date)."""
    if step.date is not None:
        if birthday is None:
            return None
        return next_anniversary(tz, start, birthday, step.days_before, step.until or "09:00")
    due = start + (step.duration.delta if step.duration is not None else timedelta(0))
    if step.until is not None:
        due = next_local_time(tz, due, step.until, step.weekdays)
    return due


def may_reenter(rule: Reentry, last_started: datetime | None, now: datetime) -> bool:
    """Whether a member whose last run started at ``last_started`` may enter again."""
    if last_started is None:
        return True
    if rule.mode == "always":
        return True
    if rule.mode == "never":
        return False
    assert rule.days is not None
    return now - last_started >= timedelta(days=rule.days)


def overdue(due: datetime, now: datetime, grace_minutes: int) -> bool:
    """A wait that ended more than the grace period ago: its sends are skipped, not late."""
    return now - due > timedelta(minutes=grace_minutes)


def graph(j: Journey) -> list[dict[str, Any]]:
    """Nodes and edges for drawing: each step with its outgoing (label, target) pairs."""
    out: list[dict[str, Any]] = []
    for s in j.steps:
        edges: list[tuple[str, str]] = []
        if isinstance(s, WaitStep | ActionStep):
            edges.append(("", j.following(s.id, s.next)))
        elif isinstance(s, BranchStep):
            edges += [("yes", s.then), ("no", s.else_)]
        elif isinstance(s, WaitEventStep):
            edges += [(s.event, s.then), ("timeout", s.else_)]
        elif isinstance(s, SplitStep):
            edges += [(f"{v.name} {v.weight}", j.following(s.id, v.next)) for v in s.variants]
        out.append({"id": s.id, "type": s.type, "edges": edges, "summary": summary(s)})
    return out


def summary(s: Step) -> str:
    """A one-line description of a step (shown in the console's step list)."""
    if isinstance(s, WaitStep):
        parts = []
        if s.duration is not None:
            d = s.duration
            parts.append(
                " ".join(
                    f"{n}{u}" for n, u in ((d.days, "d"), (d.hours, "h"), (d.minutes, "m")) if n
                )
            )
        if s.date is not None:
            parts.append(f"{s.date} -{s.days_before}d")
        if s.until is not None:
            parts.append(f"@{s.until}" + (f" {','.join(s.weekdays)}" if s.weekdays else ""))
        return "wait " + " ".join(parts)
    if isinstance(s, ActionStep):
        detail = s.params.get("template") or s.params.get("tag") or s.params.get("title") or ""
        return f"{s.action} {detail}".strip()
    if isinstance(s, BranchStep):
        return "if …"
    if isinstance(s, WaitEventStep):
        t = s.timeout
        return f"wait for {s.event} ≤ {t.days}d {t.hours}h".replace(" 0h", "")
    if isinstance(s, SplitStep):
        return f"A/B {s.experiment}: " + " / ".join(f"{v.name} {v.weight}" for v in s.variants)
    return "end"
