"""Fraud controls, the pure part: the field catalogue of velocity counters, the fixed
windows they count in, the verdict of a set of rules, and the in-memory replay a backtest
runs over history (the same counting the live counters do, so their figures agree).

Fields a rule's ``when:`` may read (the condition language of ``kit.conditions``):

* ``<scope>.<kind>.<window>`` — how many requests of ``kind`` (``orders`` or
  ``redemptions``) by the subject in the current window, this request included;
  ``<scope>.<kind>_points.<window>`` — the sum of their points (points earned by orders,
  spent by redemptions). ``scope``: ``device`` (the request's device id), ``member``,
  ``ip`` (the client's address), ``store``; ``window``: ``1m`` (the current UTC minute),
  ``1h`` (the current hour), ``1d`` (the programme's local day).
* ``device.members.1d`` — distinct members seen on the device this local day.
* ``request.kind`` (``order`` | ``redemption``), ``request.points``,
  ``request.amount_minor``, ``request.has_device``, ``request.has_ip``.

Windows are fixed (a minute starts at :00), not sliding: one counter row per subject and
window, one upsert per request; a backtest buckets history the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from loyalist.kit import conditions as cond
from loyalist.kit.conditions import Field, FieldSpec, FieldType
from loyalist.kit.localtime import local_day, start_of_local_day

SCOPES = ("device", "member", "ip", "store")
KINDS = ("orders", "redemptions")
WINDOWS = ("1m", "1h", "1d")
REQUEST_KINDS = {"order": "orders", "redemption": "redemptions"}
DEVICE_MEMBERS = "device.members.1d"
ALLOW, HOLD, BLOCK = "allow", "hold", "block"


def catalogue() -> FieldSpec:
    i = FieldType.INT
    fields: dict[str, Field] = {}
    for scope in SCOPES:
        for kind in KINDS:
            for w in WINDOWS:
                fields[f"{scope}.{kind}.{w}"] = Field(
                    i, f"{kind} by this {scope} in {w}", minimum=0
                )
                fields[f"{scope}.{kind}_points.{w}"] = Field(
                    i, f"points of {kind} by this {scope} in {w}", minimum=0
                )
    fields[DEVICE_MEMBERS] = Field(i, "distinct members on this device today", minimum=0)
    fields["request.kind"] = Field(FieldType.STR, "order or redemption", ("order", "redemption"))
    fields["request.points"] = Field(i, "points of this request", minimum=0)
    fields["request.amount_minor"] = Field(i, "cash paid (orders)", minimum=0)
    fields["request.has_device"] = Field(FieldType.BOOL, "a device id was given")
    fields["request.has_ip"] = Field(FieldType.BOOL, "the client's address is known")
    return FieldSpec(fields)


CATALOGUE = catalogue()


@dataclass(frozen=True, slots=True)
class CounterKey:
    scope: str
    kind: str  # orders | redemptions
    window: str


def counter_keys(fields: Iterable[str]) -> set[CounterKey]:
    """The counters the given fields read (``device.members.1d`` reads none)."""
    out: set[CounterKey] = set()
    for name in fields:
        parts = name.split(".")
        if len(parts) == 3 and parts[0] in SCOPES:
            kind = parts[1].removesuffix("_points")
            if kind in KINDS and parts[2] in WINDOWS:
                out.add(CounterKey(parts[0], kind, parts[2]))
    return out


def bucket(window: str, at: datetime, tz: tzinfo) -> datetime:
    """The start of the fixed window holding ``at`` (UTC)."""
    if window == "1m":
        return at.replace(second=0, microsecond=0)
    if window == "1h":
        return at.replace(minute=0, second=0, microsecond=0)
    return start_of_local_day(tz, local_day(tz, at))


@dataclass(frozen=True, slots=True)
class Request:
    """What the controls know of one order or redemption (signals as keyed digests)."""

    kind: str  # order | redemption
    member_id: int
    device: str | None
    ip: str | None
    store_id: int | None
    points: int
    amount_minor: int
    at: datetime

    def subject(self, scope: str) -> str | None:
        if scope == "device":
            return self.device
        if scope == "ip":
            return self.ip
        if scope == "store":
            return str(self.store_id) if self.store_id is not None else None
        return str(self.member_id)

    def facts(self) -> dict[str, Any]:
        return {
            "request.kind": self.kind,
            "request.points": self.points,
            "request.amount_minor": self.amount_minor,
            "request.has_device": self.device is not None,
            "request.has_ip": self.ip is not None,
        }


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    on: tuple[str, ...]  # request kinds it looks at
    when: cond.Condition
    outcome: str  # hold | block
    reason: str
    shadow: bool


@dataclass(frozen=True, slots=True)
class Hit:
    rule: str
    outcome: str
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The live outcome (the strongest live hit: block over hold over allow) and what the
    shadow rules would have done."""

    outcome: str
    rule: str | None = None
    reason: str | None = None
    shadow: tuple[Hit, ...] = ()


_RANK = {ALLOW: 0, HOLD: 1, BLOCK: 2}


def decide(rules: Sequence[Rule], kind: str, ctx: Mapping[str, Any]) -> Verdict:
    live: Hit | None = None
    shadow: list[Hit] = []
    for r in rules:
        if kind not in r.on or not cond.evaluate(r.when, ctx):
            continue
        hit = Hit(r.code, r.outcome, r.reason)
        if r.shadow:
            shadow.append(hit)
        elif live is None or _RANK[hit.outcome] > _RANK[live.outcome]:
            live = hit
    if live is None:
        return Verdict(ALLOW, shadow=tuple(shadow))
    return Verdict(live.outcome, live.rule, live.reason, tuple(shadow))


# ── the backtest: the same counting, in memory ──────────────────────────────────────────
@dataclass
class Replay:
    """Counters over a history of requests, in order; ``context`` gives a request's facts
    exactly as the live counters would have (its own request counted)."""

    tz: tzinfo
    keys: set[CounterKey]
    device_members: bool
    counts: dict[tuple[str, str, str, str, datetime], list[int]] = field(default_factory=dict)
    seen: dict[tuple[str, date], set[int]] = field(default_factory=dict)

    def add(self, req: Request) -> dict[str, Any]:
        ctx = req.facts()
        own = REQUEST_KINDS[req.kind]
        for k in self.keys:
            subject = req.subject(k.scope)
            if subject is None:
                continue
            slot = (k.scope, subject, k.kind, k.window, bucket(k.window, req.at, self.tz))
            c = self.counts.setdefault(slot, [0, 0])
            if k.kind == own:
                c[0] += 1
                c[1] += req.points
            ctx[f"{k.scope}.{k.kind}.{k.window}"] = c[0]
            ctx[f"{k.scope}.{k.kind}_points.{k.window}"] = c[1]
        if self.device_members and req.device is not None:
            members = self.seen.setdefault((req.device, local_day(self.tz, req.at)), set())
            members.add(req.member_id)
            ctx[DEVICE_MEMBERS] = len(members)
        return ctx


def needs(rules: Iterable[Rule]) -> tuple[set[CounterKey], bool]:
    """The counters the rules read, and whether they read distinct members per device."""
    used: set[str] = set()
    for r in rules:
        used |= cond.fields_used(r.when)
    return counter_keys(used), DEVICE_MEMBERS in used


@dataclass(frozen=True, slots=True)
class BacktestResult:
    rule: str
    checked: int  # requests of the kinds the rule looks at
    hits: int
    outcome: str
    members: int  # distinct members hit
    sample: tuple[int, ...]  # check ids of the first hits


def backtest(rule: Rule, history: Iterable[tuple[int, Request]], tz: tzinfo) -> BacktestResult:
    keys, dm = needs([rule])
    replay = Replay(tz, keys, dm)
    checked = hits = 0
    members: set[int] = set()
    sample: list[int] = []
    for check_id, req in history:
        ctx = replay.add(req)
        if req.kind not in rule.on:
            continue
        checked += 1
        if cond.evaluate(rule.when, ctx):
            hits += 1
            members.add(req.member_id)
            if len(sample) < 20:
                sample.append(check_id)
    return BacktestResult(rule.code, checked, hits, rule.outcome, len(members), tuple(sample))
