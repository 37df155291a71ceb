"""Journeys: entering members, moving runs step by step, pausing, dry runs, funnels.

How a run moves (see docs/journeys.md and docs/architecture.md, "Journeys"):

* **Entry.** The ``journeys`` consumer (``handlers.py``) enters members on an event trigger;
  the daily job (``tasks.py``) on date, segment and inactivity triggers. A run is a
  ``journey_run`` row whose ``active_member`` is unique per journey: at most one active run
  per member per journey, whatever runs concurrently (a second insert fails the constraint
  in its savepoint and enters nobody).
* **Steps.** :func:`advance` walks the steps from one point until the run waits or ends.
  Each step passed is a ``journey_step`` row, unique per (run, step) and written in a
  savepoint *before* the step's effect; actions go through ``actions.registry.run`` with
  the cause ``journey:<run>:<step>`` (its receipt is a second guard). Everything happens in
  the transaction of the consumer batch or job that moved the run, so a crash rolls the
  step back with its effect and a retry does it once.
* **Waits** are jobs: ``journey.wake`` with ``run_at`` = the end of the wait and the dedupe
  key ``journey:<run>:<step>:<generation>``. The job locks the run and acts only if the run
  still waits at that step (a stale or repeated job does nothing).
* **Pause / resume.** A paused journey enters nobody, and its wake jobs and awaited events
  move no run. Resuming enqueues a new wake job per waiting run (a new generation); a wait
  that ended more than ``grace_minutes`` ago is *late*: the actions after it, up to the next
  wait, are recorded as ``skipped_overdue`` instead of being sent late.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalist.access.permissions import PROGRAMME_PUBLISH, PROGRAMME_READ, require
from loyalist.actions import registry as actions
from loyalist.audit import service as audit
from loyalist.documents import registry as kinds
from loyalist.documents import service as documents
from loyalist.documents.errors import DocumentInvalid, NoVersion
from loyalist.errors import FieldError, LoyalistError
from loyalist.jobs import queue
from loyalist.journey import domain, schemas, stats
from loyalist.journey.domain import (
    END,
    ActionStep,
    BranchStep,
    EndStep,
    Journey,
    JourneySet,
    SplitStep,
    WaitEventStep,
    WaitStep,
)
from loyalist.journey.errors import JourneyNotFound, RunNotFound
from loyalist.kit import conditions
from loyalist.kit.actor import Actor
from loyalist.kit.clock import as_utc, utcnow
from loyalist.kit.db import is_sqlite
from loyalist.kit.localtime import local_day, start_of_local_day
from loyalist.kit.pagination import encode_cursor
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.schemas import MemberFilter
from loyalist.models import JourneyRun, JourneyState, JourneyStep, Member, OutboxEvent
from loyalist.order import service as orders
from loyalist.programme import service as programmes
from loyalist.programme.conditions import RFM_FACTS, time_facts

KIND = "journeys"
WAKE = "journey.wake"
DAILY = "journey.daily"
ACTOR = Actor(name="system:journeys", principal="system:journeys")
ACTIVE, COMPLETED, EXITED, HOLDOUT = "active", "completed", "exited", "holdout"
PAUSED = "paused"
# An event older than this enters nobody (it still ends waits and runs): a consumer that
# starts on a long stream, or catches up after an outage, must not greet last year's joiners.
ENTRY_MAX_AGE = timedelta(days=1)


# --------------------------------------------------------------------------- the document


def parse_document(data: Any) -> JourneySet:
    """The ``journeys`` document checked in full (problems named by field path); the
    parameters of every registered action are checked too."""
    try:
        doc = domain.parse(data)
    except domain.JourneyInvalid as exc:
        errors = [FieldError(p.path, p.message, p.type) for p in exc.problems]
        raise DocumentInvalid(
            f"The journeys document has {len(errors)} error(s): "
            + "; ".join(f"{e.field}: {e.message}" for e in errors[:5]),
            errors,
        ) from exc
    errors = []
    known = set(actions.names())
    for n, j in enumerate(doc.journeys):
        for i, s in enumerate(j.steps):
            if isinstance(s, ActionStep) and s.action in known:
                try:
                    actions.validate(s.action, s.params)
                except LoyalistError as exc:
                    errors += [
                        FieldError(f"journeys.{n}.steps.{i}.{e.field}", e.message, e.code)
                        for e in exc.errors
                    ]
    if errors:
        raise DocumentInvalid(
            f"The journeys document has {len(errors)} error(s): "
            + "; ".join(f"{e.field}: {e.message}" for e in errors[:5]),
            errors,
        )
    return doc


KIND_SPEC = kinds.register(
    kinds.Kind(
        name=KIND,
        description="Journeys: triggers, steps, exits, experiments and the holdout",
        schema=JourneySet,
        permission=PROGRAMME_PUBLISH,
        parser=parse_document,
    )
)


def warnings(doc: JourneySet) -> list[str]:
    """What is allowed but will not work yet: actions no module has registered."""
    known = set(actions.names())
    return [
        f"{j.key}.{s.id}: action {s.action!r} is not registered; the step will fail"
        for j in doc.journeys
        for s in j.steps
        if isinstance(s, ActionStep) and s.action not in known
    ]


@dataclass(frozen=True, slots=True)
class Loaded:
    version: int
    doc: JourneySet


_cache: dict[str, JourneySet] = {}
_cache_lock = threading.Lock()


def current(session: Session) -> Loaded | None:
    """The latest published journeys document (None: never published)."""
    try:
        v = documents.get(session, KIND)
    except NoVersion:
        return None
    with _cache_lock:
        doc = _cache.get(v.checksum)
    if doc is None:
        doc = domain.parse(v.document)
        with _cache_lock:
            _cache[v.checksum] = doc
    return Loaded(v.version, doc)


def publish(
    session: Session, actor: Actor, data: dict[str, Any], note: str | None
) -> tuple[int, bool]:
    return documents.publish(session, actor, KIND, data, note=note)


def with_journey(session: Session, j: Journey, note: str | None, actor: Actor) -> int:
    """Publish the current document with ``j`` added or replaced; the new version."""
    loaded = current(session)
    doc = loaded.doc.model_dump(mode="json", by_alias=True) if loaded else {"journeys": []}
    data = domain.Journey.model_validate(j).model_dump(mode="json", by_alias=True)
    items = [x for x in doc["journeys"] if x["key"] != j.key]
    index = next((i for i, x in enumerate(doc["journeys"]) if x["key"] == j.key), len(items))
    items.insert(index, data)
    doc["journeys"] = items
    version, _ = publish(session, actor, doc, note)
    return version


def journey(session: Session, key: str) -> tuple[Loaded, Journey]:
    loaded = current(session)
    j = loaded.doc.get(key) if loaded else None
    if loaded is None or j is None:
        raise JourneyNotFound(f"No journey {key!r}.")
    return loaded, j


# --------------------------------------------------------------------------- state


def _state(session: Session, key: str, *, lock: bool = False) -> JourneyState | None:
    return session.get(JourneyState, key, with_for_update=lock or None)


def status(session: Session, key: str) -> str:
    st = _state(session, key)
    return st.status if st is not None else ACTIVE


def _generation(session: Session, key: str) -> int:
    st = _state(session, key)
    return st.generation if st is not None else 0


def _set_status(session: Session, actor: Actor, key: str, new: str) -> JourneyState:
    require(actor, PROGRAMME_PUBLISH)
    journey(session, key)  # 404 for a journey the document does not have
    now = utcnow()
    st = _state(session, key, lock=True)
    before = st.status if st is not None else ACTIVE
    if st is None:
        st = JourneyState(journey_key=key, status=new, generation=0, changed_by="", changed_at=now)
        session.add(st)
    if before == new:
        return st
    st.status = new
    st.changed_by = actor.name[:128]
    st.changed_at = now
    if new == ACTIVE:
        st.generation += 1
    session.flush()
    audit.record(
        session,
        actor,
        f"journey.{'resume' if new == ACTIVE else 'pause'}",
        "journey",
        key,
        org_path="/",
        before={"status": before},
        after={"status": new, "generation": st.generation},
    )
    if new == ACTIVE:
        waiting = session.scalars(
            select(JourneyRun)
            .where(
                JourneyRun.journey_key == key,
                JourneyRun.state == ACTIVE,
                JourneyRun.due_at.is_not(None),
            )
            .order_by(JourneyRun.id)
        )
        for run in waiting:
            assert run.step is not None and run.due_at is not None
            _enqueue_wake(session, run, run.step, max(as_utc(run.due_at), now), st.generation)
    return st


def pause(session: Session, actor: Actor, key: str) -> JourneyState:
    """Stop the journey: nobody enters, no run moves (so nothing is sent) until resumed."""
    return _set_status(session, actor, key, PAUSED)


def resume(session: Session, actor: Actor, key: str) -> JourneyState:
    """Run the journey again; waits that ended more than the grace period ago are late."""
    return _set_status(session, actor, key, ACTIVE)


# --------------------------------------------------------------------------- conditions


_specs: dict[tuple[str, ...], conditions.FieldSpec] = {}
_parsed: dict[tuple[str, tuple[str, ...]], conditions.Condition] = {}


@dataclass
class Env:
    """What evaluating a journey needs: the programme's zone and tiers, cached parses."""

    tz: tzinfo
    tiers: tuple[str, ...]

    def condition(self, data: dict[str, Any]) -> conditions.Condition:
        key = (json.dumps(data, sort_keys=True, default=str), self.tiers)
        found = _parsed.get(key)
        if found is None:
            spec = _specs.get(self.tiers)
            if spec is None:
                spec = _specs.setdefault(self.tiers, domain.catalogue(self.tiers))
            found = _parsed.setdefault(key, conditions.parse(data, spec))
        return found


def env(session: Session) -> Env:
    _, programme = programmes.active(session)
    return Env(programme.tz, tuple(t.code for t in programme.tiers.levels))


_used: dict[str, frozenset[str]] = {}
_any_tier = domain.catalogue(None)


def _fields(j: Journey) -> frozenset[str]:
    """The condition fields a journey reads (cached by the conditions' text)."""
    found = domain.conditions_of(j)
    key = json.dumps(found, sort_keys=True, default=str)
    used = _used.get(key)
    if used is None:
        names: set[str] = set()
        for _, data in found:
            names |= conditions.fields_used(conditions.parse(data, _any_tier))
        used = _used.setdefault(key, frozenset(names))
    return used


class Facts(Mapping[str, Any]):
    """Member facts loaded when a condition first reads them (``all``/``any`` stop early,
    so a segment's cheap clause spares the others' queries)."""

    def __init__(self, fixed: dict[str, Any], loaders: dict[str, Callable[[], Any]]) -> None:
        self._values = dict(fixed)
        self._loaders = loaders

    def __getitem__(self, key: str) -> Any:
        if key not in self._values:
            if key not in self._loaders:
                raise KeyError(key)
            self._values[key] = self._loaders[key]()
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values or key in self._loaders

    def __iter__(self) -> Iterator[str]:
        return iter({*self._values, *self._loaders})

    def __len__(self) -> int:
        return len({*self._values, *self._loaders})


def member_facts(
    session: Session, member: Member, used: frozenset[str] | set[str], tz: tzinfo, now: datetime
) -> Facts:
    """The member fields ``used`` (each loaded on first read: each costs a query or two)."""

    def history() -> tuple[int, datetime | None]:
        if "h" not in cache:
            cache["h"] = orders.history(session, member.id)
        return cache["h"]

    def last_days() -> int | None:
        last = history()[1]
        return (local_day(tz, now) - local_day(tz, last)).days if last is not None else None

    def joined() -> int:
        return max(0, (local_day(tz, now) - local_day(tz, as_utc(member.created_at))).days)

    cache: dict[str, tuple[int, datetime | None]] = {}
    rfm_cache: list[dict[str, Any]] = []

    def rfm() -> dict[str, Any]:
        if not rfm_cache:
            weights = programmes.active(session)[1].tiers.rfm_weights
            rfm_cache.append(members.rfm_facts(session, member.id, weights))
        return rfm_cache[0]

    loaders: dict[str, Callable[[], Any]] = {
        "member.tags": lambda: members.tags(session, member.id),
        "member.consent": lambda: members.consents(session, member.id),
        "member.points": lambda: ledger.get_account(session, member.id).available,
        "member.joined_days": joined,
        "member.birthday_month": lambda: member.birthday.month if member.birthday else None,
        "member.orders": lambda: history()[0],
        "member.last_order_days": last_days,
    }
    for name in RFM_FACTS:  # the nightly RFM row (insights.rfm), read once for the three
        loaders[name] = lambda name=name: rfm().get(name)  # type: ignore[misc]
    wanted = {
        k: f for k, f in loaders.items() if any(u == k or u.startswith(k + ".") for u in used)
    }
    return Facts({"member.tier": member.tier_code}, wanted)


def _context(
    session: Session,
    e: Env,
    j: Journey,
    member: Member,
    now: datetime,
    event: OutboxEvent | None = None,
) -> Facts:
    fixed = time_facts(e.tz, now)
    if event is not None:
        fixed["event.type"] = event.type
        fixed["event.fields"] = dict(event.payload)
    facts = member_facts(session, member, _fields(j), e.tz, now)
    facts._values.update(fixed)
    return facts


# --------------------------------------------------------------------------- runs


def _enqueue_wake(session: Session, run: JourneyRun, step: str, at: datetime, gen: int) -> None:
    queue.enqueue(
        session,
        WAKE,
        {"run_id": run.id, "step": step, "gen": gen},
        run_at=at,
        dedupe_key=f"journey:{run.id}:{step}:{gen}",
    )


def _claim(
    session: Session,
    run: JourneyRun,
    step_id: str,
    kind: str,
    outcome: str,
    detail: dict[str, Any],
    now: datetime,
) -> JourneyStep | None:
    """Record that ``run`` passed ``step_id``; None when it already had (nothing to do)."""
    row = JourneyStep(
        run_id=run.id,
        journey_key=run.journey_key,
        member_id=run.member_id,
        step_id=step_id,
        kind=kind,
        outcome=outcome,
        detail=detail,
        at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row


def _end(run: JourneyRun, state: str, reason: str | None, now: datetime) -> None:
    run.state = state
    run.active_member = None
    run.step = None
    run.due_at = None
    run.waiting_event = None
    run.exit_reason = reason
    run.ended_at = now
    run.updated_at = now


def _outcome(result: dict[str, Any]) -> str:
    """The outcome of an action step from the action's result (send_message: its status)."""
    st = result.get("status")
    if isinstance(st, str) and st:
        return st[:64]
    if result.get("sent") is False:
        return "suppressed"
    if result.get("sent") is True:
        return "sent"
    return "done"


def _run_action(
    session: Session, run: JourneyRun, step: ActionStep, now: datetime
) -> tuple[str, dict[str, Any]]:
    cause = f"journey:{run.id}:{step.id}"
    try:
        with session.begin_nested():  # a failing action leaves nothing behind
            res = actions.run(
                session, step.action, step.params, cause=cause, member_id=run.member_id, actor=ACTOR
            )
    except LoyalistError as exc:
        return "failed", {"code": exc.code, "error": (exc.detail or exc.title)[:300]}
    return _outcome(res.result), {"result": res.result, "replayed": res.replayed}


def advance(
    session: Session,
    e: Env,
    j: Journey,
    run: JourneyRun,
    step_id: str,
    now: datetime,
    *,
    late: bool = False,
    event: OutboxEvent | None = None,
    generation: int | None = None,
) -> None:
    """Walk ``run`` from ``step_id`` until it waits or ends (effects once per step).
    ``generation``: the journey's, when the caller read it already (a batch of entries)."""
    member: Member | None = None
    ctx: Facts | None = None

    def context() -> Facts:
        nonlocal member, ctx
        if ctx is None:
            member = members.get(session, ACTOR, run.member_id)
            ctx = _context(session, e, j, member, now, event)
        return ctx

    while True:
        run.updated_at = now
        if step_id == END:
            _end(run, COMPLETED, None, now)
            return
        try:
            step = j.step(step_id)
        except KeyError:
            _end(run, EXITED, "step_removed", now)
            return
        if isinstance(step, WaitStep):
            if member is None:
                member = members.get(session, ACTOR, run.member_id)
            due = domain.wait_until(step, e.tz, now, member.birthday)
            if due is None:
                _claim(session, run, step.id, step.type, "no_date", {}, now)
                step_id = j.following(step.id, step.next)
                continue
            run.step, run.due_at, run.waiting_event = step.id, due, None
            _enqueue_wake(
                session,
                run,
                step.id,
                due,
                _generation(session, j.key) if generation is None else generation,
            )
            return
        if isinstance(step, WaitEventStep):
            due = now + step.timeout.delta
            run.step, run.due_at, run.waiting_event = step.id, due, step.event
            _enqueue_wake(
                session,
                run,
                step.id,
                due,
                _generation(session, j.key) if generation is None else generation,
            )
            return
        if isinstance(step, EndStep):
            _claim(session, run, step.id, step.type, "done", {}, now)
            _end(run, COMPLETED, None, now)
            return
        if isinstance(step, ActionStep):
            row = _claim(session, run, step.id, step.type, "running", {}, now)
            if row is not None:
                if late:
                    row.outcome, row.detail = "skipped_overdue", {}
                else:
                    row.outcome, row.detail = _run_action(session, run, step, now)
            step_id = j.following(step.id, step.next)
            continue
        if isinstance(step, BranchStep):
            why = conditions.explain(e.condition(step.when), context())
            outcome = "yes" if why.passed else "no"
            _claim(session, run, step.id, step.type, outcome, {"why": why.text()[:1000]}, now)
            step_id = step.then if why.passed else step.else_
            continue
        assert isinstance(step, SplitStep)
        variant = domain.assign(step, run.member_id)
        _claim(session, run, step.id, step.type, variant.name, {"experiment": step.experiment}, now)
        run.variants = {**run.variants, step.experiment: variant.name}
        step_id = j.following(step.id, variant.next)


def _last_run(session: Session, key: str, member_id: int) -> JourneyRun | None:
    return session.scalar(
        select(JourneyRun)
        .where(JourneyRun.journey_key == key, JourneyRun.member_id == member_id)
        .order_by(JourneyRun.id.desc())
        .limit(1)
    )


def enter(
    session: Session,
    loaded: Loaded,
    e: Env,
    j: Journey,
    member: Member,
    cause: str,
    now: datetime,
    event: OutboxEvent | None = None,
) -> JourneyRun | None:
    """Start ``member`` on ``j`` if the rules allow it; None when they do not."""
    if status(session, j.key) == PAUSED:
        return None
    last = _last_run(session, j.key, member.id)
    if last is not None and last.state == ACTIVE:
        return None
    if not domain.may_reenter(j.reentry, as_utc(last.entered_at) if last else None, now):
        return None
    holdout = j.marketing and domain.in_holdout(loaded.doc.holdout, member.id)
    run = JourneyRun(
        journey_key=j.key,
        member_id=member.id,
        active_member=None if holdout else member.id,
        org_path=member.org_path,
        version=loaded.version,
        state=HOLDOUT if holdout else ACTIVE,
        cause=cause[:64],
        variants={},
        entered_at=now,
        updated_at=now,
        ended_at=now if holdout else None,
    )
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:  # a concurrent entry won: one active run per member and journey
        return None
    if not holdout:
        advance(session, e, j, run, j.steps[0].id, now, event=event)
    return run


def _lock_run(session: Session, run_id: int) -> JourneyRun | None:
    return session.get(JourneyRun, run_id, with_for_update=True, populate_existing=True)


def wake(session: Session, run_id: int, step_id: str, now: datetime) -> str:
    """A wait ended (the ``journey.wake`` job); returns what happened, for logs and tests."""
    run = _lock_run(session, run_id)
    if run is None or run.state != ACTIVE or run.step != step_id or run.due_at is None:
        return "stale"
    loaded = current(session)
    j = loaded.doc.get(run.journey_key) if loaded else None
    if j is None:
        _end(run, EXITED, "retired", now)
        return "retired"
    if status(session, j.key) == PAUSED:
        return "paused"
    due = as_utc(run.due_at)
    if now < due:
        # The clock stands before the wait's end (moved back): come back then. Duplicates are
        # harmless, the run's step and due time are checked under its lock.
        queue.enqueue(session, WAKE, {"run_id": run.id, "step": step_id, "gen": -1}, run_at=due)
        return "early"
    late = domain.overdue(due, now, j.grace_minutes)
    e = env(session)
    try:
        step = j.step(step_id)
    except KeyError:
        _end(run, EXITED, "step_removed", now)
        return "step_removed"
    run.due_at, run.waiting_event, run.step = None, None, None
    if isinstance(step, WaitEventStep):
        _claim(session, run, step.id, step.type, "timeout", {"due_at": due.isoformat()}, now)
        advance(session, e, j, run, step.else_, now, late=late)
        return "timeout"
    assert isinstance(step, WaitStep)
    outcome = "late" if late else "waited"
    _claim(session, run, step.id, step.type, outcome, {"due_at": due.isoformat()}, now)
    advance(session, e, j, run, j.following(step.id, step.next), now, late=late)
    return outcome


def _matches(
    session: Session,
    e: Env,
    j: Journey,
    member: Member,
    when: dict[str, Any] | None,
    now: datetime,
    ev: OutboxEvent,
) -> bool:
    if when is None:
        return True
    return conditions.evaluate(e.condition(when), _context(session, e, j, member, now, ev))


def on_event(session: Session, ev: OutboxEvent) -> None:
    """The ``journeys`` consumer: awaited events, exits, then entries, for one event."""
    if ev.member_id is None:
        return
    loaded = current(session)
    if loaded is None or not loaded.doc.journeys:
        return
    now = utcnow()
    e: Env | None = None
    member: Member | None = None
    runs = list(
        session.scalars(
            select(JourneyRun)
            .where(JourneyRun.member_id == ev.member_id, JourneyRun.state == ACTIVE)
            .order_by(JourneyRun.id)
            .with_for_update()
        )
    )
    for run in runs:
        j = loaded.doc.get(run.journey_key)
        if j is None or status(session, j.key) == PAUSED:
            continue
        if as_utc(ev.occurred_at) < as_utc(run.entered_at):
            continue  # what happened before the member entered neither ends a wait nor exits
        e = e or env(session)
        member = member or members.get(session, ACTOR, ev.member_id)
        if run.waiting_event == ev.type and run.step is not None:
            step = j.step(run.step) if run.step in {s.id for s in j.steps} else None
            if isinstance(step, WaitEventStep) and _matches(
                session, e, j, member, step.when, now, ev
            ):
                run.due_at, run.waiting_event, run.step = None, None, None
                _claim(session, run, step.id, step.type, "event", {"event_id": ev.event_id}, now)
                advance(session, e, j, run, step.then, now, event=ev)
                continue
        for x in j.exit:
            if x.event == ev.type and _matches(session, e, j, member, x.when, now, ev):
                _end(run, EXITED, f"event:{ev.type}"[:64], now)
                break
    if now - as_utc(ev.occurred_at) > ENTRY_MAX_AGE:
        return  # a backlog (a new consumer, a replay) enters nobody on old news
    for j in loaded.doc.journeys:
        if j.entry.event != ev.type:
            continue
        e = e or env(session)
        member = member or members.get(session, ACTOR, ev.member_id)
        if _matches(session, e, j, member, j.entry.when, now, ev):
            enter(session, loaded, e, j, member, ev.event_id, now, event=ev)


def on_events(session: Session, evs: list[OutboxEvent]) -> None:
    """The ``journeys`` consumer for a batch of events: the same effects as :func:`on_event`
    for each event in order, set-based for the common case.

    A member is entered *together* when the batch holds exactly one event for them that may
    enter a journey (its type triggers a running journey, it is recent), no event of theirs
    after it, and they have no active run (so nothing waits for or exits on their events).
    Events of such a member before that one move nothing. For all of them the journeys'
    document, states, the members and their last runs are read once; the runs are inserted
    with multi-row inserts that skip a (journey, member) that has an active run meanwhile
    (the unique ``uq_journey_run_active``: a concurrent entry won, as in :func:`enter`); a
    first step that is an action runs through ``actions.run_many`` for all new runs of the
    journey. Every other event goes through :func:`on_event`, in stream order.
    """
    mine = [ev for ev in evs if ev.member_id is not None]
    if not mine:
        return
    loaded = current(session)
    if loaded is None or not loaded.doc.journeys:
        return
    now = utcnow()
    rows = {st.journey_key: st for st in session.scalars(select(JourneyState))}
    states = {key: st.status for key, st in rows.items()}
    generations = {key: st.generation for key, st in rows.items()}
    by_type: dict[str, list[Journey]] = defaultdict(list)
    for j in loaded.doc.journeys:
        if j.entry.event is not None and states.get(j.key, ACTIVE) != PAUSED:
            by_type[j.entry.event].append(j)
    ids = sorted({int(ev.member_id) for ev in mine if ev.member_id is not None})
    busy: set[int] = set()
    for start in range(0, len(ids), 500):
        busy.update(
            session.scalars(
                select(JourneyRun.member_id).where(
                    JourneyRun.member_id.in_(ids[start : start + 500]),
                    JourneyRun.state == ACTIVE,
                )
            )
        )
    entering: dict[int, OutboxEvent] = {}  # member → the one event that may enter them
    slow = set(busy)
    for ev in mine:
        mid = int(ev.member_id or 0)
        if mid in slow:
            continue
        if mid in entering:  # an event after the entering one: it may end what that began
            slow.add(mid)
            continue
        js = by_type.get(ev.type)
        if js and now - as_utc(ev.occurred_at) <= ENTRY_MAX_AGE:
            if any(j.entry.when is not None for j in js[1:]):
                slow.add(mid)  # a later journey's condition may read what an earlier one did
            else:
                entering[mid] = ev
    together = {m: ev for m, ev in entering.items() if m not in slow}
    if together:
        _enter_together(session, loaded, together, by_type, generations, now)
    for ev in mine:
        if ev.member_id in slow:
            on_event(session, ev)


def _enter_together(
    session: Session,
    loaded: Loaded,
    entering: dict[int, OutboxEvent],
    by_type: dict[str, list[Journey]],
    generations: dict[str, int],
    now: datetime,
) -> None:
    """Enter the members of ``entering`` (see :func:`on_events`)."""
    ids = sorted(entering)
    found: dict[int, Member] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update((m.id, m) for m in session.scalars(select(Member).where(Member.id.in_(chunk))))
    odd = [
        ev
        for mid, ev in entering.items()
        if (m := found.get(mid)) is None or m.status == members.MERGED or not ACTOR.sees(m.org_path)
    ]
    for ev in odd:  # a missing or merged member: exactly what on_event does
        entering.pop(int(ev.member_id or 0))
    keys = sorted({j.key for ev in entering.values() for j in by_type[ev.type]})
    last: dict[tuple[str, int], tuple[str, datetime]] = {}
    for start in range(0, len(ids), 500):
        q = (
            select(JourneyRun.journey_key, JourneyRun.member_id, JourneyRun.state)
            .add_columns(JourneyRun.entered_at)
            .where(
                JourneyRun.member_id.in_(ids[start : start + 500]),
                JourneyRun.journey_key.in_(keys),
            )
            .order_by(JourneyRun.id)
        )
        for key, mid, state, entered_at in session.execute(q):
            last[(key, mid)] = (state, entered_at)
    e = env(session)
    rows: list[dict[str, Any]] = []
    plan: list[tuple[OutboxEvent, Journey, int]] = []
    for mid, ev in entering.items():
        m = found[mid]
        for j in by_type[ev.type]:
            if not _matches(session, e, j, m, j.entry.when, now, ev):
                continue
            prev = last.get((j.key, mid))
            if prev is not None and prev[0] == ACTIVE:
                continue
            if not domain.may_reenter(j.reentry, as_utc(prev[1]) if prev else None, now):
                continue
            holdout = j.marketing and domain.in_holdout(loaded.doc.holdout, mid)
            rows.append(
                {
                    "journey_key": j.key,
                    "member_id": mid,
                    "active_member": None if holdout else mid,
                    "org_path": m.org_path,
                    "version": loaded.version,
                    "state": HOLDOUT if holdout else ACTIVE,
                    "cause": ev.event_id[:64],
                    "variants": {},
                    "entered_at": now,
                    "updated_at": now,
                    "ended_at": now if holdout else None,
                }
            )
            plan.append((ev, j, mid))
    if odd:
        for ev in odd:
            on_event(session, ev)
    if not rows:
        return
    insert = sqlite_insert if is_sqlite(session) else pg_insert
    got: dict[tuple[str, int], int] = {}
    for start in range(0, len(rows), 200):
        stmt = (
            insert(JourneyRun)
            .values(rows[start : start + 200])
            .on_conflict_do_nothing()
            .returning(JourneyRun.id, JourneyRun.journey_key, JourneyRun.member_id)
        )
        for rid, key, mid in session.execute(stmt):
            got[(key, mid)] = rid
    run_ids = sorted(got.values())
    runs: dict[int, JourneyRun] = {}
    for start in range(0, len(run_ids), 500):
        q = select(JourneyRun).where(JourneyRun.id.in_(run_ids[start : start + 500]))
        runs.update((r.id, r) for r in session.scalars(q))
    order = {j.key: i for i, j in enumerate(loaded.doc.journeys)}
    groups: dict[str, list[tuple[OutboxEvent, JourneyRun]]] = defaultdict(list)
    for ev, j, mid in plan:
        run_id = got.get((j.key, mid))
        if run_id is not None and runs[run_id].state == ACTIVE:
            groups[j.key].append((ev, runs[run_id]))
    for key in sorted(groups, key=order.__getitem__):  # a member's journeys in document order
        journey_ = loaded.doc.get(key)
        assert journey_ is not None
        _start_together(session, e, journey_, groups[key], generations.get(key, 0), now)


def _start_together(
    session: Session,
    e: Env,
    j: Journey,
    started: list[tuple[OutboxEvent, JourneyRun]],
    generation: int,
    now: datetime,
) -> None:
    """Advance runs of ``j`` that were just inserted (in this transaction: no step of theirs
    exists yet, so a first action step is recorded without the claim's savepoint)."""
    first = j.steps[0]
    if not isinstance(first, ActionStep):
        for ev, run in started:
            advance(session, e, j, run, first.id, now, event=ev, generation=generation)
        return
    causes = [(f"journey:{run.id}:{first.id}", run.member_id) for _, run in started]
    outcomes = actions.run_many(session, first.action, first.params, causes, actor=ACTOR)
    following = j.following(first.id, first.next)
    for (ev, run), res in zip(started, outcomes, strict=True):
        detail: dict[str, Any]
        if isinstance(res, LoyalistError):
            outcome, detail = "failed", {"code": res.code, "error": (res.detail or res.title)[:300]}
        else:
            outcome, detail = _outcome(res.result), {"result": res.result, "replayed": res.replayed}
        session.add(
            JourneyStep(
                run_id=run.id,
                journey_key=run.journey_key,
                member_id=run.member_id,
                step_id=first.id,
                kind=first.type,
                outcome=outcome,
                detail=detail,
                at=now,
            )
        )
        advance(session, e, j, run, following, now, event=ev, generation=generation)


def daily(session: Session, now: datetime) -> int:
    """Enter members on date, segment and inactivity triggers (once a local day)."""
    loaded = current(session)
    if loaded is None:
        return 0
    e = env(session)
    today = local_day(e.tz, now)
    cause = f"day:{today.isoformat()}"
    todo = [
        j
        for j in loaded.doc.journeys
        if j.entry.kind != "event" and status(session, j.key) != PAUSED
    ]
    entered = 0
    scans = [j for j in todo if j.entry.kind in ("date", "segment")]
    if scans:
        after: int | None = None
        while True:
            batch = members.search(session, ACTOR, MemberFilter(), after=after, limit=500)
            if not batch:
                break
            after = batch[-1].id
            for m in batch:
                for j in scans:
                    if j.entry.kind == "date":
                        if m.birthday is None:
                            continue
                        target = today + timedelta(days=j.entry.days_before)
                        bday = _anniversary(m.birthday, target.year)
                        if bday != target:
                            continue
                    else:
                        assert j.entry.segment is not None
                        ctx = _context(session, e, j, m, now)
                        if not conditions.evaluate(e.condition(j.entry.segment), ctx):
                            continue
                    entered += enter(session, loaded, e, j, m, cause, now) is not None
    for j in todo:
        if j.entry.kind != "inactive":
            continue
        assert j.entry.inactive_days is not None
        day = today - timedelta(days=j.entry.inactive_days)
        ids = orders.last_order_between(
            session, start_of_local_day(e.tz, day), start_of_local_day(e.tz, day + timedelta(1))
        )
        for mid in ids:
            m = members.get(session, ACTOR, mid)
            entered += enter(session, loaded, e, j, m, cause, now) is not None
    return entered


def _anniversary(d: Any, year: int) -> Any:
    try:
        return d.replace(year=year)
    except ValueError:  # 29 February in a common year
        return d.replace(year=year, day=28)


# --------------------------------------------------------------------------- dry run


@dataclass
class DryStep:
    step: str
    type: str
    outcome: str
    why: str
    at: datetime


@dataclass
class DryRun:
    journey: str
    member_id: int
    enters: bool
    why: str
    steps: list[DryStep] = field(default_factory=list)


def dry_run(
    session: Session,
    actor: Actor,
    j: Journey,
    member_id: int,
    *,
    events: set[str] | None = None,
    now: datetime | None = None,
) -> DryRun:
    """The path ``member_id`` would take through ``j`` (published or a draft) and why,
    writing nothing. Awaited events in ``events`` are assumed to arrive; others time out."""
    require(actor, PROGRAMME_READ)
    member = members.get(session, actor, member_id)
    now = now or utcnow()
    e = env(session)
    loaded = current(session)
    holdout = domain.Holdout() if loaded is None else loaded.doc.holdout
    out = DryRun(j.key, member.id, True, "")
    last = _last_run(session, j.key, member.id)
    if last is not None and last.state == ACTIVE:
        out.enters, out.why = False, f"already on the journey (run {last.id})"
        return out
    if not domain.may_reenter(j.reentry, as_utc(last.entered_at) if last else None, now):
        out.enters, out.why = (
            False,
            f"re-entry {j.reentry.mode}: entered {last and last.entered_at}",
        )
        return out
    if j.marketing and domain.in_holdout(holdout, member.id):
        out.enters, out.why = False, "in the programme-wide holdout (no marketing)"
        return out
    ctx = _context(session, e, j, member, now)
    cond = j.entry.segment if j.entry.kind == "segment" else None
    if cond is not None:
        entry = conditions.explain(e.condition(cond), ctx)
        out.why = entry.text()
        if not entry.passed:
            out.enters = False
            return out
    else:
        out.why = {
            "event": f"on event {j.entry.event}",
            "date": f"on the {j.entry.date}, {j.entry.days_before} day(s) before",
            "inactive": f"{j.entry.inactive_days} days after the last order",
        }[j.entry.kind]
    at = now
    step_id = j.steps[0].id
    while step_id != END:
        s = j.step(step_id)
        if isinstance(s, WaitStep):
            due = domain.wait_until(s, e.tz, at, member.birthday)
            if due is None:
                out.steps.append(DryStep(s.id, s.type, "no_date", "the member has no birthday", at))
                step_id = j.following(s.id, s.next)
                continue
            at = due
            out.steps.append(DryStep(s.id, s.type, "waited", domain.summary(s), at))
            step_id = j.following(s.id, s.next)
        elif isinstance(s, WaitEventStep):
            arrives = events is not None and s.event in events
            at = at if arrives else at + s.timeout.delta
            outcome = "event" if arrives else "timeout"
            why = f"{s.event} {'assumed' if arrives else 'not assumed'}"
            out.steps.append(DryStep(s.id, s.type, outcome, why, at))
            step_id = s.then if arrives else s.else_
        elif isinstance(s, ActionStep):
            try:
                if s.action in actions.names():
                    actions.validate(s.action, s.params)
                    why = "would run " + domain.summary(s)
                else:
                    why = f"action {s.action!r} is not registered: the step would fail"
            except LoyalistError as exc:
                why = f"invalid parameters: {exc.detail}"
            out.steps.append(DryStep(s.id, s.type, "would_run", why, at))
            step_id = j.following(s.id, s.next)
        elif isinstance(s, BranchStep):
            ctx_at = {**dict(ctx.items()), **time_facts(e.tz, at)}
            expl = conditions.explain(e.condition(s.when), ctx_at)
            out.steps.append(DryStep(s.id, s.type, "yes" if expl.passed else "no", expl.text(), at))
            step_id = s.then if expl.passed else s.else_
        elif isinstance(s, SplitStep):
            v = domain.assign(s, member.id)
            why = f"hash({s.experiment}, member {member.id}) falls in {v.name}"
            out.steps.append(DryStep(s.id, s.type, v.name, why, at))
            step_id = j.following(s.id, v.next)
        else:
            out.steps.append(DryStep(s.id, s.type, "done", "end", at))
            break
    return out


# --------------------------------------------------------------------------- read models


@dataclass
class StepFunnel:
    id: str
    type: str
    summary: str
    passed: int
    waiting: int
    outcomes: dict[str, int]


@dataclass
class Funnel:
    key: str
    entered: int
    active: int
    completed: int
    exited: int
    holdout: int
    steps: list[StepFunnel]


def funnel(session: Session, actor: Actor, key: str) -> Funnel:
    """Per step: how many runs passed it (by outcome) and how many wait there now."""
    require(actor, PROGRAMME_READ)
    _, j = journey(session, key)
    scope = actor.scope_path
    by_state = Counter(
        {
            st: int(n)
            for st, n in session.execute(
                select(JourneyRun.state, func.count())
                .where(JourneyRun.journey_key == key, JourneyRun.org_path.startswith(scope))
                .group_by(JourneyRun.state)
            )
        }
    )
    passed: dict[str, Counter[str]] = defaultdict(Counter)
    q = (
        select(JourneyStep.step_id, JourneyStep.outcome, func.count())
        .join(JourneyRun, JourneyRun.id == JourneyStep.run_id)
        .where(JourneyStep.journey_key == key, JourneyRun.org_path.startswith(scope))
        .group_by(JourneyStep.step_id, JourneyStep.outcome)
    )
    for sid, outcome, n in session.execute(q):
        passed[sid][outcome] += int(n)
    waiting = Counter(
        {
            sid: int(n)
            for sid, n in session.execute(
                select(JourneyRun.step, func.count())
                .where(
                    JourneyRun.journey_key == key,
                    JourneyRun.state == ACTIVE,
                    JourneyRun.org_path.startswith(scope),
                )
                .group_by(JourneyRun.step)
            )
            if sid is not None
        }
    )
    steps = [
        StepFunnel(
            s.id,
            s.type,
            domain.summary(s),
            sum(passed[s.id].values()),
            waiting[s.id],
            dict(sorted(passed[s.id].items())),
        )
        for s in j.steps
    ]
    return Funnel(
        key,
        sum(by_state.values()),
        by_state[ACTIVE],
        by_state[COMPLETED],
        by_state[EXITED],
        by_state[HOLDOUT],
        steps,
    )


def runs(
    session: Session,
    actor: Actor,
    key: str | None,
    *,
    member_id: int | None = None,
    state: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[JourneyRun]:
    require(actor, PROGRAMME_READ)
    q = select(JourneyRun).where(JourneyRun.org_path.startswith(actor.scope_path))
    if key is not None:
        q = q.where(JourneyRun.journey_key == key)
    if member_id is not None:
        q = q.where(JourneyRun.member_id == member_id)
    if state is not None:
        q = q.where(JourneyRun.state == state)
    if after is not None:
        q = q.where(JourneyRun.id > after)
    return list(session.scalars(q.order_by(JourneyRun.id).limit(limit)))


def get_run(session: Session, actor: Actor, run_id: int) -> tuple[JourneyRun, list[JourneyStep]]:
    require(actor, PROGRAMME_READ)
    run = session.get(JourneyRun, run_id)
    if run is None or not actor.sees(run.org_path):
        raise RunNotFound(f"No journey run {run_id}.")
    steps = list(
        session.scalars(
            select(JourneyStep).where(JourneyStep.run_id == run.id).order_by(JourneyStep.id)
        )
    )
    return run, steps


# --------------------------------------------------------------------------- experiments


@dataclass
class Group:
    name: str
    weight: float
    members: int
    conversions: int
    revenue_minor: int
    conversion_rate: float
    revenue_per_member: float
    rate_vs_control: stats.Comparison | None
    revenue_vs_control: stats.Comparison | None


@dataclass
class Readout:
    journey: str
    experiment: str
    control: str
    conversion_event: str
    window_days: int
    groups: list[Group]
    srm: stats.Srm | None
    complete_only: bool  # only members whose window has closed are counted


def readout_from(
    name_weights: list[tuple[str, float]],
    control: str,
    assigned: dict[str, list[tuple[int, datetime]]],
    orders_of: list[tuple[int, datetime, int]],
    window: timedelta,
) -> tuple[list[Group], stats.Srm | None]:
    """The readout of assignments (group → [(member, assigned at)]) and orders: a member
    converts with an order within ``window`` after assignment; revenue is what they paid
    in that window. Pure: the experiments fixture tests it against scipy."""
    by_member: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for m, t, a in orders_of:
        by_member[m].append((t, a))
    values: dict[str, tuple[list[float], int]] = {}
    for name, _ in name_weights:
        revenue: list[float] = []
        conv = 0
        for m, at in assigned.get(name, []):
            paid = [a for t, a in by_member.get(m, []) if at <= t < at + window]
            revenue.append(float(sum(paid)))
            conv += 1 if paid else 0
        values[name] = (revenue, conv)
    c_rev, c_conv = values[control]
    groups = []
    for name, weight in name_weights:
        rev, conv = values[name]
        n = len(rev)
        is_control = name == control
        groups.append(
            Group(
                name,
                weight,
                n,
                conv,
                int(sum(rev)),
                conv / n if n else 0.0,
                stats.mean(rev),
                None if is_control else stats.two_proportions(conv, n, c_conv, len(c_rev)),
                None if is_control else stats.welch(rev, c_rev),
            )
        )
    srm = stats.srm([g.members for g in groups], [w for _, w in name_weights])
    return groups, srm


def readout(
    session: Session, actor: Actor, key: str, experiment: str, now: datetime | None = None
) -> Readout:
    """Per variant: members, conversions, revenue per member, the difference to control
    (CI, p-value) and the sample-ratio-mismatch check. Only assignments whose conversion
    window has closed count (an open window would understate the newest members)."""
    require(actor, PROGRAMME_READ)
    _, j = journey(session, key)
    step = next((s for s in j.experiments() if s.experiment == experiment), None)
    if step is None:
        raise JourneyNotFound(f"Journey {key!r} has no experiment {experiment!r}.")
    now = now or utcnow()
    window = timedelta(days=step.window_days)
    q = (
        select(JourneyStep.outcome, JourneyStep.member_id, JourneyStep.at)
        .join(JourneyRun, JourneyRun.id == JourneyStep.run_id)
        .where(
            JourneyStep.journey_key == key,
            JourneyStep.step_id == step.id,
            JourneyStep.at <= now - window,
            JourneyRun.org_path.startswith(actor.scope_path),
        )
        .order_by(JourneyStep.id)
    )
    assigned: dict[str, list[tuple[int, datetime]]] = defaultdict(list)
    for variant, mid, at in session.execute(q):
        assigned[variant].append((int(mid), as_utc(at)))
    every = sorted({m for rows in assigned.values() for m, _ in rows})
    start = min((at for rows in assigned.values() for _, at in rows), default=now)
    paid = orders.paid_between(session, every, start, now) if every else []
    groups, srm = readout_from(
        [(v.name, float(v.weight)) for v in step.variants], step.control, assigned, paid, window
    )
    return Readout(
        key, experiment, step.control, step.conversion_event, step.window_days, groups, srm, True
    )


def experiments(session: Session) -> list[tuple[str, str]]:
    """(journey, experiment) of every split step in the current document."""
    loaded = current(session)
    if loaded is None:
        return []
    return [(j.key, s.experiment) for j in loaded.doc.journeys for s in j.experiments()]


# --------------------------------------------------------------------------- API views


def _trigger(j: Journey) -> str:
    en = j.entry
    return {
        "event": f"event {en.event}",
        "segment": "segment",
        "date": f"{en.date} -{en.days_before}d",
        "inactive": f"{en.inactive_days} days without an order",
    }[en.kind]


def list_view(session: Session, actor: Actor) -> schemas.JourneyList:
    require(actor, PROGRAMME_READ)
    loaded = current(session)
    if loaded is None:
        return schemas.JourneyList(version=None, holdout_percent=0, items=[], warnings=[])
    items = [
        schemas.JourneySummary(
            key=j.key,
            name=j.name,
            status=PAUSED if status(session, j.key) == PAUSED else ACTIVE,
            trigger=_trigger(j),
            marketing=j.marketing,
            steps=len(j.steps),
        )
        for j in loaded.doc.journeys
    ]
    return schemas.JourneyList(
        version=loaded.version,
        holdout_percent=loaded.doc.holdout.percent,
        items=items,
        warnings=warnings(loaded.doc),
    )


def funnel_out(f: Funnel) -> schemas.FunnelOut:
    return schemas.FunnelOut(
        key=f.key,
        entered=f.entered,
        active=f.active,
        completed=f.completed,
        exited=f.exited,
        holdout=f.holdout,
        steps=[
            schemas.StepCount(
                id=s.id,
                type=s.type,
                summary=s.summary,
                passed=s.passed,
                waiting=s.waiting,
                outcomes=s.outcomes,
            )
            for s in f.steps
        ],
    )


def graph_out(j: Journey) -> list[schemas.GraphStep]:
    return [
        schemas.GraphStep(
            id=n["id"],
            type=n["type"],
            summary=n["summary"],
            edges=[schemas.Edge(label=label, to=to) for label, to in n["edges"]],
        )
        for n in domain.graph(j)
    ]


def detail_view(session: Session, actor: Actor, key: str) -> schemas.JourneyDetail:
    require(actor, PROGRAMME_READ)
    loaded, j = journey(session, key)
    return schemas.JourneyDetail(
        key=j.key,
        name=j.name,
        status=PAUSED if status(session, key) == PAUSED else ACTIVE,
        version=loaded.version,
        journey=j.model_dump(mode="json", by_alias=True, exclude_defaults=True),
        graph=graph_out(j),
        funnel=funnel_out(funnel(session, actor, key)),
    )


def parse_journey(data: dict[str, Any], field_prefix: str = "journey") -> Journey:
    """One journey checked as the document would check it (errors under ``journey.``)."""
    try:
        doc = parse_document({"journeys": [data]})
    except DocumentInvalid as exc:
        raise DocumentInvalid(
            exc.detail.replace("journeys.0", field_prefix),
            [
                FieldError(e.field.replace("journeys.0", field_prefix, 1), e.message, e.code)
                for e in exc.errors
            ],
        ) from exc
    return doc.journeys[0]


def put_view(
    session: Session, actor: Actor, key: str, data: schemas.JourneyPut
) -> tuple[int, schemas.JourneyDetail]:
    require(actor, PROGRAMME_PUBLISH)
    j = parse_journey(data.journey)
    if j.key != key:
        raise DocumentInvalid(
            f"The journey's key {j.key!r} is not {key!r}.",
            [FieldError("journey.key", f"must be {key!r}", "mismatch")],
        )
    loaded = current(session)
    existed = loaded is not None and loaded.doc.get(key) is not None
    with_journey(session, j, data.note, actor)
    return (200 if existed else 201), detail_view(session, actor, key)


def pause_view(session: Session, actor: Actor, key: str) -> schemas.JourneyDetail:
    pause(session, actor, key)
    return detail_view(session, actor, key)


def resume_view(session: Session, actor: Actor, key: str) -> schemas.JourneyDetail:
    resume(session, actor, key)
    return detail_view(session, actor, key)


def dry_run_view(
    session: Session, actor: Actor, key: str, data: schemas.DryRunIn
) -> schemas.DryRunOut:
    require(actor, PROGRAMME_READ)
    if data.journey is not None:
        j = parse_journey(data.journey)
    else:
        _, j = journey(session, key)
    out = dry_run(session, actor, j, data.member_id, events=set(data.events))
    return schemas.DryRunOut(
        journey=out.journey,
        member_id=out.member_id,
        enters=out.enters,
        why=out.why,
        steps=[
            schemas.DryStepOut(step=s.step, type=s.type, outcome=s.outcome, why=s.why, at=s.at)
            for s in out.steps
        ],
    )


def funnel_view(session: Session, actor: Actor, key: str) -> schemas.FunnelOut:
    return funnel_out(funnel(session, actor, key))


def run_out(r: JourneyRun) -> schemas.RunOut:
    return schemas.RunOut(
        id=r.id,
        journey=r.journey_key,
        member_id=r.member_id,
        version=r.version,
        state=r.state,
        step=r.step,
        due_at=as_utc(r.due_at) if r.due_at else None,
        waiting_event=r.waiting_event,
        exit_reason=r.exit_reason,
        variants=dict(r.variants),
        entered_at=as_utc(r.entered_at),
        ended_at=as_utc(r.ended_at) if r.ended_at else None,
    )


def runs_view(
    session: Session,
    actor: Actor,
    key: str | None,
    *,
    member_id: int | None,
    state: str | None,
    after: int | None,
    limit: int,
) -> schemas.RunPage:
    if key is not None:
        journey(session, key)
    found = runs(session, actor, key, member_id=member_id, state=state, after=after, limit=limit)
    nxt = encode_cursor(found[-1].id) if len(found) == limit else None
    return schemas.RunPage(items=[run_out(r) for r in found], next_cursor=nxt)


def run_view(session: Session, actor: Actor, run_id: int) -> schemas.RunDetail:
    run, steps = get_run(session, actor, run_id)
    return schemas.RunDetail(
        **run_out(run).model_dump(),
        steps=[
            schemas.RunStepOut(
                step=s.step_id, type=s.kind, outcome=s.outcome, detail=s.detail, at=as_utc(s.at)
            )
            for s in steps
        ],
    )


def _cmp(c: stats.Comparison | None) -> schemas.ComparisonOut | None:
    if c is None:
        return None
    return schemas.ComparisonOut(diff=c.diff, ci_low=c.ci_low, ci_high=c.ci_high, p_value=c.p_value)


def readout_view(session: Session, actor: Actor, key: str, experiment: str) -> schemas.ReadoutOut:
    r = readout(session, actor, key, experiment)
    return schemas.ReadoutOut(
        journey=r.journey,
        experiment=r.experiment,
        control=r.control,
        conversion_event=r.conversion_event,
        window_days=r.window_days,
        groups=[
            schemas.GroupOut(
                name=g.name,
                weight=g.weight,
                members=g.members,
                conversions=g.conversions,
                revenue_minor=g.revenue_minor,
                conversion_rate=g.conversion_rate,
                revenue_per_member=g.revenue_per_member,
                rate_vs_control=_cmp(g.rate_vs_control),
                revenue_vs_control=_cmp(g.revenue_vs_control),
            )
            for g in r.groups
        ],
        srm=schemas.SrmOut(chi2=r.srm.chi2, p_value=r.srm.p_value, flagged=r.srm.flagged)
        if r.srm
        else None,
    )
