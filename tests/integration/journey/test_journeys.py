"""Journeys on a real database: entry, waits as jobs, branches, awaited events, exits,
re-entry, pause/resume with a grace period, one active run per member, dry runs, funnels."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from tests.itest import new_member
from tests.support import order_payload

import loyalist.journey.handlers  # registers the consumer
import loyalist.journey.tasks  # noqa: F401  (registers the job kinds)
from loyalist.events import consumers
from loyalist.events import service as events
from loyalist.jobs import queue
from loyalist.journey import service
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.models import (
    ActionReceipt,
    EventFailure,
    Job,
    JourneyRun,
    JourneyStep,
    MemberTag,
    MemberTask,
    Message,
)

NOTICE = {"template": "notice", "channel": "sms", "params": {"text": "欢迎"}}


def welcome(**over: Any) -> dict[str, Any]:
    j: dict[str, Any] = {
        "key": "welcome",
        "name": "欢迎",
        "entry": {"event": "member.created"},
        "steps": [
            {"id": "hello", "type": "action", "action": "send_message", "params": NOTICE},
            {"id": "wait3", "type": "wait", "duration": {"days": 3}},
            {"id": "tag", "type": "action", "action": "add_tag", "params": {"tag": "welcomed"}},
            {
                "id": "vip",
                "type": "branch",
                "when": {"gte": {"member.tier": "gold"}},
                "then": "gift",
                "else": "end",
            },
            {
                "id": "gift",
                "type": "action",
                "action": "award_points",
                "params": {"points": 100, "reason": "welcome gift"},
            },
        ],
    }
    j.update(over)
    return j


def publish(db: Database, *journeys: dict[str, Any], holdout: float = 0) -> int:
    doc = {"holdout": {"percent": holdout}, "journeys": list(journeys)}
    version, _ = db.run(lambda s: service.publish(s, SYSTEM, doc, "test"))
    return version


def pump(db: Database) -> int:
    """One worker tick: stream positions, consumers, every due job."""
    db.run(events.assign_positions)
    n = consumers.run_pending(db)
    return n + queue.run_until_empty(db)


@pytest.fixture
def tick(world: Any) -> Callable[[], int]:
    return lambda: pump(world.db)


def rows(db: Database, model: Any, *where: Any) -> list[Any]:
    with db.transaction() as s:
        return list(s.scalars(select(model).where(*where).order_by(model.id)))


def steps_of(db: Database, member: int) -> list[tuple[str, str]]:
    return [(r.step_id, r.outcome) for r in rows(db, JourneyStep, JourneyStep.member_id == member)]


def no_failures(db: Database) -> None:
    assert rows(db, EventFailure) == []
    with db.transaction() as s:
        bad = s.scalar(
            select(func.count()).select_from(Job).where(Job.state.in_(["failed", "dead"]))
        )
    assert bad == 0


def test_welcome_runs_each_step_once_and_the_wait_fires_three_days_later(
    world: Any, client: Any, clock: Any, tick: Callable[[], int]
) -> None:
    publish(world.db, welcome())
    mid = new_member(client, "13800000001")
    tick()
    (run,) = rows(world.db, JourneyRun, JourneyRun.member_id == mid)
    assert (run.state, run.step, run.active_member) == ("active", "wait3", mid)
    assert run.due_at == datetime(2026, 6, 13, 4, 0, tzinfo=UTC)
    assert steps_of(world.db, mid) == [("hello", "queued")]
    (msg,) = rows(world.db, Message)
    assert msg.template == "notice" and msg.params == {"text": "欢迎"}
    # Nothing is due before the three days are over, however often the worker ticks.
    clock.advance(timedelta(days=3) - timedelta(seconds=1))
    tick()
    tick()
    assert steps_of(world.db, mid) == [("hello", "queued")]
    clock.advance(timedelta(seconds=1))
    tick()
    tick()
    assert steps_of(world.db, mid) == [
        ("hello", "queued"),
        ("wait3", "waited"),
        ("tag", "done"),
        ("vip", "no"),
    ]
    (run,) = rows(world.db, JourneyRun, JourneyRun.member_id == mid)
    assert (run.state, run.step, run.active_member, run.due_at) == ("completed", None, None, None)
    assert [t.tag for t in rows(world.db, MemberTag, MemberTag.member_id == mid)] == ["welcomed"]
    assert len(rows(world.db, Message)) == 1
    causes = [r.cause for r in rows(world.db, ActionReceipt)]
    assert causes == [f"journey:{run.id}:hello", f"journey:{run.id}:tag"]
    no_failures(world.db)


def test_a_repeated_wake_job_does_nothing(world: Any, client: Any, clock: Any, tick: Any) -> None:
    publish(world.db, welcome())
    mid = new_member(client, "13800000001")
    tick()
    (run,) = rows(world.db, JourneyRun, JourneyRun.member_id == mid)
    clock.advance(timedelta(days=3))
    tick()
    before = steps_of(world.db, mid)
    # The same wake once more (a retried or duplicated job): the run no longer waits there.
    assert world.db.run(lambda s: service.wake(s, run.id, "wait3", clock.now())) == "stale"
    assert steps_of(world.db, mid) == before
    assert len(rows(world.db, ActionReceipt)) == 2


def test_branch_takes_the_yes_path_for_a_gold_member(
    world: Any, client: Any, clock: Any, tick: Any
) -> None:
    publish(world.db, welcome(entry={"event": "member.created"}))
    mid = new_member(client, "13800000001")
    tick()
    client.patch(f"/v1/members/{mid}", json={"tier": "gold"})
    with world.db.transaction() as s:
        from loyalist.models import Member

        m = s.get(Member, mid)
        assert m is not None
        m.tier_code = "gold"
    clock.advance(timedelta(days=3))
    tick()
    assert steps_of(world.db, mid)[-2:] == [("vip", "yes"), ("gift", "done")]
    (step,) = rows(world.db, JourneyStep, JourneyStep.step_id == "vip")
    assert "member.tier" in step.detail["why"]


def test_one_active_run_per_member_and_journey_is_a_database_rule(world: Any, client: Any) -> None:
    publish(world.db, welcome())
    mid = new_member(client, "13800000001")
    pump(world.db)
    (run,) = rows(world.db, JourneyRun, JourneyRun.member_id == mid)
    with pytest.raises(IntegrityError), world.db.transaction() as s:
        s.add(
            JourneyRun(
                journey_key="welcome",
                member_id=mid,
                active_member=mid,
                org_path=run.org_path,
                version=1,
                state="active",
                cause="again",
                variants={},
                entered_at=run.entered_at,
                updated_at=run.entered_at,
            )
        )
        s.flush()
    # enter() itself refuses a member already on the journey, writing nothing.
    loaded = world.db.run(service.current)

    def again(s: Any) -> Any:
        from loyalist.member import service as members

        m = members.get(s, SYSTEM, mid)
        j = loaded.doc.get("welcome")
        return service.enter(s, loaded, service.env(s), j, m, "again", run.entered_at)

    assert world.db.run(again) is None
    assert len(rows(world.db, JourneyRun)) == 1


def _post_purchase(reentry: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": "post_purchase",
        "name": "购后关怀",
        "entry": {"event": "order.recorded", "when": {"eq": {"event.fields.store": "sh1"}}},
        "reentry": reentry,
        "steps": [{"id": "thanks", "type": "action", "action": "send_message", "params": NOTICE}],
    }


@pytest.mark.parametrize(
    ("reentry", "expected"),
    [({"mode": "never"}, 1), ({"mode": "always"}, 3), ({"mode": "after", "days": 2}, 2)],
)
def test_reentry_rules(
    world: Any, client: Any, clock: Any, tick: Any, reentry: dict[str, Any], expected: int
) -> None:
    publish(world.db, _post_purchase(reentry))
    mid = new_member(client, "13800000001")
    for n, days in enumerate((0, 1, 2)):  # orders on day 0, 1 and 3
        clock.advance(timedelta(days=days))
        at = clock.now().isoformat()
        r = client.post("/v1/orders", json=order_payload(f"o{n}", mid, occurred_at=at))
        assert r.status_code == 201, r.text
        tick()
    runs = rows(world.db, JourneyRun, JourneyRun.member_id == mid)
    assert len(runs) == expected
    assert {r.state for r in runs} == {"completed"}
    assert len(rows(world.db, Message)) == expected


def _win_back() -> dict[str, Any]:
    return {
        "key": "win_back",
        "name": "召回",
        "entry": {"event": "member.created"},
        "exit": [{"event": "points.adjusted"}],
        "grace_minutes": 120,
        "steps": [
            {"id": "nudge", "type": "action", "action": "send_message", "params": NOTICE},
            {
                "id": "buy",
                "type": "wait_event",
                "event": "order.recorded",
                "timeout": {"days": 7},
                "then": "thanks",
                "else": "task",
            },
            {
                "id": "thanks",
                "type": "action",
                "action": "add_tag",
                "params": {"tag": "won_back"},
                "next": "end",
            },
            {"id": "task", "type": "action", "action": "open_task", "params": {"title": "回访"}},
        ],
    }


def test_an_awaited_event_takes_the_then_path(
    world: Any, client: Any, clock: Any, tick: Any
) -> None:
    publish(world.db, _win_back())
    mid = new_member(client, "13800000001")
    tick()
    (run,) = rows(world.db, JourneyRun, JourneyRun.member_id == mid)
    assert (run.step, run.waiting_event) == ("buy", "order.recorded")
    clock.advance(timedelta(days=2))
    r = client.post(
        "/v1/orders", json=order_payload("o1", mid, occurred_at=clock.now().isoformat())
    )
    assert r.status_code == 201
    tick()
    assert steps_of(world.db, mid) == [("nudge", "queued"), ("buy", "event"), ("thanks", "done")]
    clock.advance(timedelta(days=10))
    tick()  # the timeout job finds the run gone from that step
    assert steps_of(world.db, mid)[-1] == ("thanks", "done")
    assert rows(world.db, MemberTask) == []
    no_failures(world.db)


def test_without_the_event_the_timeout_takes_the_else_path(
    world: Any, client: Any, clock: Any, tick: Any
) -> None:
    publish(world.db, _win_back())
    mid = new_member(client, "13800000001")
    tick()
    clock.advance(timedelta(days=7))
    tick()
    assert steps_of(world.db, mid) == [("nudge", "queued"), ("buy", "timeout"), ("task", "done")]
    (task,) = rows(world.db, MemberTask)
    assert task.title == "回访" and task.member_id == mid


def test_an_exit_event_ends_the_run(world: Any, client: Any, clock: Any, tick: Any) -> None:
    publish(world.db, _win_back())
    mid = new_member(client, "13800000001")
    tick()
    r = client.post(
        f"/v1/members/{mid}/adjustments",
        json={"points": 10, "reason": "goodwill"},
        headers={"Idempotency-Key": "adj-1"},
    )
    assert r.status_code in (200, 201), r.text
    tick()
    (run,) = rows(world.db, JourneyRun, JourneyRun.member_id == mid)
    assert (run.state, run.exit_reason, run.active_member) == (
        "exited",
        "event:points.adjusted",
        None,
    )
    clock.advance(timedelta(days=8))
    tick()
    assert steps_of(world.db, mid) == [("nudge", "queued")]
    assert rows(world.db, MemberTask) == []


def test_pause_stops_sends_and_resume_skips_what_is_overdue_beyond_grace(
    world: Any, client: Any, clock: Any, tick: Any
) -> None:
    publish(world.db, welcome(key="a"), welcome(key="b"))
    early = new_member(client, "13800000001")
    tick()
    world.db.run(lambda s: service.pause(s, SYSTEM, "a"))
    clock.advance(timedelta(days=1))
    late_joiner = new_member(client, "13800000002")
    tick()
    # Paused: nobody enters "a"; "b" runs on.
    assert {
        r.journey_key for r in rows(world.db, JourneyRun, JourneyRun.member_id == late_joiner)
    } == {"b"}
    clock.advance(timedelta(days=2, hours=1))  # "a"'s wait ended one hour ago: within grace
    tick()
    assert ("tag", "done") not in [
        (r.step_id, r.outcome) for r in rows(world.db, JourneyStep, JourneyStep.journey_key == "a")
    ]
    clock.advance(timedelta(hours=2))  # now three hours overdue: beyond the 2 h grace
    world.db.run(lambda s: service.resume(s, SYSTEM, "a"))
    tick()
    a_steps = [
        (r.step_id, r.outcome) for r in rows(world.db, JourneyStep, JourneyStep.journey_key == "a")
    ]
    assert a_steps == [
        ("hello", "queued"),
        ("wait3", "late"),
        ("tag", "skipped_overdue"),
        ("vip", "no"),
    ]
    assert [t.tag for t in rows(world.db, MemberTag, MemberTag.member_id == early)] == ["welcomed"]
    # ... the tag came from "b" (on time), not from the overdue step of "a".
    b_tag = rows(
        world.db, JourneyStep, JourneyStep.journey_key == "b", JourneyStep.step_id == "tag"
    )
    assert [(r.member_id, r.outcome) for r in b_tag] == [(early, "done")]


def test_resume_within_grace_runs_the_step(world: Any, client: Any, clock: Any, tick: Any) -> None:
    publish(world.db, welcome())
    mid = new_member(client, "13800000001")
    tick()
    world.db.run(lambda s: service.pause(s, SYSTEM, "welcome"))
    clock.advance(timedelta(days=3, minutes=90))
    tick()
    world.db.run(lambda s: service.resume(s, SYSTEM, "welcome"))
    tick()
    assert steps_of(world.db, mid)[1:3] == [("wait3", "waited"), ("tag", "done")]


def test_split_is_deterministic_and_the_readout_counts_variants(
    world: Any, client: Any, clock: Any, tick: Any
) -> None:
    j = {
        "key": "ab",
        "name": "A/B",
        "entry": {"event": "member.created"},
        "steps": [
            {
                "id": "split",
                "type": "split",
                "experiment": "ab_offer",
                "window_days": 7,
                "variants": [
                    {"name": "control", "weight": 50, "next": "end"},
                    {"name": "offer", "weight": 50},
                ],
            },
            {"id": "offer", "type": "action", "action": "send_message", "params": NOTICE},
        ],
    }
    publish(world.db, j)
    ids = [new_member(client, f"138000000{n:02d}") for n in range(20)]
    tick()
    from loyalist.journey import domain

    split = domain.parse({"journeys": [j]}).journeys[0].steps[0]
    assert isinstance(split, domain.SplitStep)
    expected = {m: domain.assign(split, m).name for m in ids}
    got = {
        r.member_id: r.outcome for r in rows(world.db, JourneyStep, JourneyStep.step_id == "split")
    }
    assert got == expected
    assert len(rows(world.db, Message)) == sum(v == "offer" for v in expected.values())
    clock.advance(timedelta(hours=1))
    at = clock.now().isoformat()
    for n, m in enumerate(ids[:6]):
        r = client.post(
            "/v1/orders", json=order_payload(f"o{n}", m, paid=1000 * (n + 1), occurred_at=at)
        )
        assert r.status_code == 201, r.text
    tick()
    # Windows still open: nobody is counted yet.
    early = world.db.run(lambda s: service.readout(s, SYSTEM, "ab", "ab_offer"))
    assert [g.members for g in early.groups] == [0, 0]
    clock.advance(timedelta(days=7))
    out = world.db.run(lambda s: service.readout(s, SYSTEM, "ab", "ab_offer"))
    by = {g.name: g for g in out.groups}
    assert by["control"].members + by["offer"].members == 20
    for name in ("control", "offer"):
        members = [m for m, v in expected.items() if v == name]
        buyers = [m for m in members if m in ids[:6]]
        assert by[name].members == len(members)
        assert by[name].conversions == len(buyers)
        assert by[name].revenue_minor == sum(1000 * (ids.index(m) + 1) for m in buyers)
    assert by["control"].rate_vs_control is None
    assert by["offer"].rate_vs_control is not None


def test_holdout_members_never_enter_marketing_journeys(world: Any, client: Any, tick: Any) -> None:
    publish(world.db, welcome(), holdout=50)
    from loyalist.journey import domain

    ids = [new_member(client, f"138000001{n:02d}") for n in range(12)]
    tick()
    h = domain.Holdout(percent=50)
    for m in ids:
        (run,) = rows(world.db, JourneyRun, JourneyRun.member_id == m)
        assert run.state == ("holdout" if domain.in_holdout(h, m) else "active")
    held = [m for m in ids if domain.in_holdout(h, m)]
    assert 0 < len(held) < 12
    assert len(rows(world.db, Message)) == 12 - len(held)


def test_dry_run_shows_the_path_and_why_and_writes_nothing(world: Any, client: Any) -> None:
    publish(world.db, _win_back())
    mid = new_member(client, "13800000001")
    from tests.itest import counts

    before = counts(world.db)
    _, j = world.db.run(lambda s: service.journey(s, "win_back"))
    out = world.db.run(lambda s: service.dry_run(s, SYSTEM, j, mid))
    assert out.enters is True
    assert [(s.step, s.outcome) for s in out.steps] == [
        ("nudge", "would_run"),
        ("buy", "timeout"),
        ("task", "would_run"),
    ]
    assert out.steps[1].at == out.steps[0].at + timedelta(days=7)
    bought = world.db.run(lambda s: service.dry_run(s, SYSTEM, j, mid, events={"order.recorded"}))
    assert [(s.step, s.outcome) for s in bought.steps] == [
        ("nudge", "would_run"),
        ("buy", "event"),
        ("thanks", "would_run"),
    ]
    assert counts(world.db) == before


def test_funnel_counts_steps_and_waiting_runs(
    world: Any, client: Any, clock: Any, tick: Any
) -> None:
    publish(world.db, welcome())
    for n in range(3):
        new_member(client, f"1380000000{n}")
    tick()
    f = world.db.run(lambda s: service.funnel(s, SYSTEM, "welcome"))
    assert (f.entered, f.active, f.completed) == (3, 3, 0)
    by = {s.id: s for s in f.steps}
    assert (by["hello"].passed, by["hello"].outcomes, by["wait3"].waiting) == (3, {"queued": 3}, 3)
    clock.advance(timedelta(days=3))
    tick()
    f = world.db.run(lambda s: service.funnel(s, SYSTEM, "welcome"))
    by = {s.id: s for s in f.steps}
    assert (f.active, f.completed) == (0, 3)
    assert (by["wait3"].waiting, by["wait3"].passed, by["vip"].outcomes) == (0, 3, {"no": 3})


def test_concurrent_entries_make_one_run_per_member(world: Any, client: Any) -> None:
    """Two workers entering the same members at once (PostgreSQL: truly concurrent
    transactions; SQLite serialises them): one active run each, the loser enters nobody."""
    import threading

    publish(world.db, welcome())
    ids = [new_member(client, f"1380000{n:04d}") for n in range(10)]
    loaded = world.db.run(service.current)
    j = loaded.doc.get("welcome")
    barrier = threading.Barrier(2)
    made: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        from loyalist.member import service as members

        def enter_all(s: Any) -> int:
            n = 0
            for m in ids:
                member = members.get(s, SYSTEM, m)
                n += (
                    service.enter(s, loaded, service.env(s), j, member, "race", member.created_at)
                    is not None
                )
            return n

        try:
            barrier.wait(timeout=30)
            made.append(world.db.run(enter_all))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sum(made) == len(ids)
    runs = rows(world.db, JourneyRun)
    assert sorted(r.member_id for r in runs) == ids
    assert len(rows(world.db, Message)) == len(ids)


def test_daily_triggers_birthday_inactivity_and_segment(
    world: Any, client: Any, clock: Any
) -> None:
    """Once a local day: today's birthdays, members whose last order was N days ago, and
    a segment; a second run the same day enters nobody again."""
    tag = {"id": "t", "type": "action", "action": "add_tag", "params": {"tag": "x"}}
    publish(
        world.db,
        {"key": "bday", "name": "b", "entry": {"date": "birthday"}, "steps": [tag]},
        {"key": "idle", "name": "i", "entry": {"inactive_days": 2}, "steps": [tag]},
        {
            "key": "seg",
            "name": "s",
            "entry": {"segment": {"gte": {"member.orders": 2}}},
            "steps": [tag],
        },
    )
    # Today is 2026-06-10 in Shanghai (12:00).
    born = new_member(client, "13800000001", birthday="1990-06-10")
    new_member(client, "13800000002", birthday="1990-06-11")
    idle = new_member(client, "13800000003")
    busy = new_member(client, "13800000004")
    for n, (who, at) in enumerate(
        [
            (idle, "2026-06-08T09:00:00+08:00"),  # two local days ago
            (busy, "2026-06-09T09:00:00+08:00"),
            (busy, "2026-06-10T09:00:00+08:00"),
        ]
    ):
        r = client.post("/v1/orders", json=order_payload(f"o{n}", who, occurred_at=at))
        assert r.status_code == 201, r.text
    assert world.db.run(lambda s: service.daily(s, clock.now())) == 3
    got = {(r.journey_key, r.member_id, r.cause) for r in rows(world.db, JourneyRun)}
    assert got == {
        ("bday", born, "day:2026-06-10"),
        ("idle", idle, "day:2026-06-10"),
        ("seg", busy, "day:2026-06-10"),
    }
    assert world.db.run(lambda s: service.daily(s, clock.now())) == 0


def test_events_from_before_the_entry_neither_exit_nor_end_a_wait(
    world: Any, client: Any, clock: Any, tick: Any
) -> None:
    """A consumer catching up (new, or after an outage) sees old orders: they must not
    exit a run that started later; a new order does."""
    mid = new_member(client, "13800000001")
    r = client.post(
        "/v1/orders", json=order_payload("o1", mid, occurred_at=clock.now().isoformat())
    )
    assert r.status_code == 201
    publish(
        world.db,
        {
            "key": "seg",
            "name": "s",
            "entry": {"segment": {"gte": {"member.orders": 1}}},
            "exit": [{"event": "order.recorded"}],
            "steps": [{"id": "w", "type": "wait", "duration": {"days": 3}}],
        },
    )
    clock.advance(timedelta(hours=1))
    assert world.db.run(lambda s: service.daily(s, clock.now())) == 1
    tick()  # the old member.created and order.recorded events reach the consumer now
    (run,) = rows(world.db, JourneyRun, JourneyRun.member_id == mid)
    assert (run.state, run.step) == ("active", "w")
    r = client.post(
        "/v1/orders", json=order_payload("o2", mid, occurred_at=clock.now().isoformat())
    )
    assert r.status_code == 201
    tick()
    (run,) = rows(world.db, JourneyRun, JourneyRun.member_id == mid)
    assert (run.state, run.exit_reason) == ("exited", "event:order.recorded")
