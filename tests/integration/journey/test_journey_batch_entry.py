"""The ``journeys`` consumer's batch form (``service.on_events``) has exactly the effects of
``service.on_event`` called for each event in order, whatever the batch holds (members
entering, members with active runs, several events per member, old events, holdouts, a
paused journey); and it enters a batch of new members in a number of statements that does
not grow with the batch (issue 14: 10,000 members entering one journey)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select
from sqlalchemy.orm import Session

import loyalist.journey.handlers  # noqa: F401  (registers the consumer)
from loyalist.events import consumers
from loyalist.events import service as events
from loyalist.journey import service
from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import (
    ActionReceipt,
    AuditLog,
    Job,
    JourneyRun,
    JourneyState,
    JourneyStep,
    MemberTag,
    OutboxEvent,
)

JOURNEYS = [
    {
        "key": "first",
        "name": "first",
        "entry": {"event": "member.created"},
        "exit": [{"event": "points.adjusted"}],
        "steps": [
            {"id": "a", "type": "action", "action": "add_tag", "params": {"tag": "a"}},
            {
                "id": "buy",
                "type": "wait_event",
                "event": "order.recorded",
                "timeout": {"days": 7},
                "then": "bought",
                "else": "end",
            },
            {"id": "bought", "type": "action", "action": "add_tag", "params": {"tag": "bought"}},
        ],
    },
    {  # a marketing journey (holdout) on the same trigger; its branch reads first's tag
        "key": "second",
        "name": "second",
        "marketing": True,
        "entry": {"event": "member.created"},
        "steps": [
            {"id": "b", "type": "action", "action": "add_tag", "params": {"tag": "b"}},
            {
                "id": "saw",
                "type": "branch",
                "when": {"contains": {"member.tags": "a"}},
                "then": "yes",
                "else": "no",
            },
            {
                "id": "yes",
                "type": "action",
                "action": "add_tag",
                "params": {"tag": "saw_a"},
                "next": "end",
            },
            {"id": "no", "type": "action", "action": "add_tag", "params": {"tag": "no_a"}},
        ],
    },
    {  # an entry condition on what an earlier event did; re-entry once a run ended
        "key": "third",
        "name": "third",
        "entry": {"event": "tier.changed", "when": {"contains": {"member.tags": "a"}}},
        "reentry": {"mode": "always"},
        "steps": [
            {"id": "t", "type": "action", "action": "add_tag", "params": {"tag": "t"}},
            {"id": "pause", "type": "wait", "duration": {"days": 1}},
        ],
    },
    {  # a first step that is a wait; paused in some examples
        "key": "fourth",
        "name": "fourth",
        "entry": {"event": "member.updated"},
        "steps": [{"id": "later", "type": "wait", "duration": {"days": 2}}],
    },
]
TYPES = ["member.created", "member.updated", "order.recorded", "points.adjusted", "tier.changed"]


@pytest.fixture
def crowd(world: Any) -> tuple[Database, list[tuple[int, str]]]:
    db: Database = world.db
    doc = {"holdout": {"percent": 40}, "journeys": JOURNEYS}
    db.run(lambda s: service.publish(s, SYSTEM, doc, "test"))
    with db.transaction() as s:
        made = [members.create(s, SYSTEM, MemberCreate(phone=f"1390000{i:04d}")) for i in range(5)]
        return db, [(j.member.id, j.member.org_path) for j in made]


def _event(member: tuple[int, str], type_: str, position: int, age: timedelta) -> OutboxEvent:
    return OutboxEvent(
        event_id=str(uuid.uuid4()),
        type=type_,
        schema_version=1,
        member_id=member[0],
        org_path=member[1],
        payload={},
        occurred_at=utcnow() - age,
        position=position,
    )


def _plain(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=str)


def _snapshot(s: Session) -> dict[str, list[Any]]:
    """Everything the consumer may write, without the ids that differ between two runs."""
    s.flush()
    run_of: dict[int, str] = {}
    runs = []
    for r in s.scalars(select(JourneyRun)):
        run_of[r.id] = f"{r.journey_key}/{r.member_id}/{r.cause}"
        runs.append(
            (
                run_of[r.id],
                r.state,
                r.active_member,
                r.step,
                r.waiting_event,
                r.exit_reason,
                str(r.due_at),
                str(r.ended_at),
                _plain(r.variants),
                r.version,
            )
        )

    def named(text: str) -> str:
        for rid, name in run_of.items():
            text = text.replace(f"journey:{rid}:", f"journey:{name}:")
        return text

    steps = [
        (run_of[x.run_id], x.step_id, x.kind, x.outcome, _plain(x.detail))
        for x in s.scalars(select(JourneyStep))
    ]
    receipts = [
        (named(x.cause), x.action, x.member_id, _plain(x.result), _plain(x.params))
        for x in s.scalars(select(ActionReceipt))
    ]
    tags = [(t.member_id, t.tag) for t in s.scalars(select(MemberTag))]
    audit = [
        (a.action, a.object_id, _plain(a.before), _plain(a.after))
        for a in s.scalars(select(AuditLog).where(AuditLog.action == "member.tags"))
    ]
    jobs = [
        (
            j.kind,
            run_of.get(int(j.payload.get("run_id", 0)), ""),
            j.payload.get("step"),
            j.payload.get("gen"),
            j.run_at,
        )
        for j in s.scalars(select(Job).where(Job.kind == service.WAKE))
    ]
    return {
        "runs": sorted(runs),
        "steps": sorted(steps),
        "receipts": sorted(receipts),
        "tags": sorted(tags),
        "audit": sorted(audit),
        "jobs": sorted(jobs, key=str),
    }


EVENTS = st.lists(
    st.tuples(st.integers(0, 4), st.sampled_from(TYPES), st.booleans()), min_size=1, max_size=10
)


PRIOR = st.lists(st.integers(0, 2), min_size=5, max_size=5)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(prior=PRIOR, drawn=EVENTS, paused=st.booleans())
def test_a_batch_has_the_effects_of_its_events_one_by_one(
    crowd: tuple[Database, list[tuple[int, str]]],
    prior: list[int],
    drawn: list[tuple[int, str, bool]],
    paused: bool,
) -> None:
    db, people = crowd
    with db.transaction() as s:
        s.add(  # resumed twice: its wake jobs carry generation 2
            JourneyState(
                journey_key="third",
                status=service.ACTIVE,
                generation=2,
                changed_by="test",
                changed_at=utcnow(),
            )
        )
        if paused:
            s.add(
                JourneyState(
                    journey_key="fourth",
                    status=service.PAUSED,
                    generation=0,
                    changed_by="test",
                    changed_at=utcnow(),
                )
            )
        # before the batch: 0 nothing, 1 an active run of "first" (and the tag a), 2 that
        # run exited (the tag a, no active run: "third" enters them set-based)
        for i, before_batch in enumerate(prior):
            if before_batch:
                service.on_event(s, _event(people[i], "member.created", 0, timedelta(0)))
            if before_batch == 2:
                service.on_event(s, _event(people[i], "points.adjusted", 0, timedelta(0)))
        old = timedelta(days=2)  # older than ENTRY_MAX_AGE: enters nobody, still ends waits
        batch = [
            _event(people[m], t, n + 1, old if is_old else timedelta(0))
            for n, (m, t, is_old) in enumerate(drawn)
        ]
        before = _snapshot(s)
        together = s.begin_nested()
        service.on_events(s, batch)
        got = _snapshot(s)
        together.rollback()
        assert _snapshot(s) == before
        alone = s.begin_nested()
        for ev in batch:
            service.on_event(s, ev)
        want = _snapshot(s)
        alone.rollback()
        s.rollback()
    assert got == want


def test_entering_a_batch_of_new_members_takes_a_fixed_number_of_statements(
    world: Any,
) -> None:
    """One consumer batch sends the same statements for 10 and for 60 new members entering a
    journey whose first step adds a tag (reads and writes are per batch, not per member)."""
    db: Database = world.db
    crowd = {
        "key": "crowd",
        "name": "crowd",
        "entry": {"event": "member.created"},
        "steps": [{"id": "tag", "type": "action", "action": "add_tag", "params": {"tag": "c"}}],
    }
    db.run(lambda s: service.publish(s, SYSTEM, {"journeys": [crowd]}, "test"))
    c = next(x for x in consumers.registered() if x.name == "journeys")
    sent: list[str] = []

    def count(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    used: list[tuple[int, int]] = []  # (statements other than inserts, inserts) per batch
    made = 0
    for n in (10, 60):
        with db.transaction() as s:
            for i in range(made, made + n):
                members.create(s, SYSTEM, MemberCreate(phone=f"1370000{i:04d}"))
        made += n
        events.sequence_pending(db)
        sent.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert db.run(lambda s: consumers.run_batch(s, c)) >= n
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        inserts = [x for x in sent if x.lstrip().upper().startswith("INSERT")]
        used.append((len(sent) - len(inserts), len(inserts)))
    # Reads, savepoints and updates are per batch. Inserts are multi-row on PostgreSQL; on
    # SQLite SQLAlchemy sends the ORM's inserts row by row (in process: no round trip).
    assert [n for n, _ in used] == [n for n, _ in used[:1]] * 2, used
    assert used[1][0] <= 30, used
    if db.dialect == "postgresql":
        assert used[0][1] == used[1][1] <= 12, used
    with db.transaction() as s:
        runs = list(s.execute(select(JourneyRun.member_id, JourneyRun.state)))
        tags = list(s.scalars(select(MemberTag.member_id).where(MemberTag.tag == "c")))
        steps = list(s.scalars(select(JourneyStep.outcome)))
    assert len(runs) == 70 and {st for _, st in runs} == {"completed"}
    assert sorted(tags) == sorted(m for m, _ in runs) and len(set(tags)) == 70
    assert steps == ["done"] * 70
