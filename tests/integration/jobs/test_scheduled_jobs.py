"""The periodic sweeps as queued jobs: cron schedules in the programme's zone, each
occurrence enqueued once, batches with follow-ups, idempotent per period; the worker loop;
``loyalist jobs run|list|retry|cancel`` and ``loyalist worker --once``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from tests.integration.jobs.test_jobs_schedule import (
    _effects,
    _populate,
    at,
    expiring_payloads,
    programme,
    verify_clean,
)
from tests.itest import rows
from typer.testing import CliRunner, Result

from loyalist import bootstrap
from loyalist.cli.main import app
from loyalist.config import get_settings
from loyalist.jobs import queue, registry, scheduler, tasks
from loyalist.jobs.worker import Worker
from loyalist.kit.db import Database
from loyalist.models import Job

SHANGHAI = ZoneInfo("Asia/Shanghai")


def all_jobs(db: Database) -> list[Job]:
    with db.transaction() as s:
        return list(s.scalars(select(Job).order_by(Job.id)))


@pytest.fixture
def configured() -> None:
    bootstrap.configure()


# --- schedules ---------------------------------------------------------------------------


def test_latest_occurrence_is_at_or_before_now_in_the_zone() -> None:
    ny = ZoneInfo("America/New_York")
    # 02:00 Shanghai = 18:00Z the day before
    assert scheduler.latest_occurrence(
        "0 2 * * *", datetime(2026, 6, 9, 18, 0, tzinfo=UTC), SHANGHAI
    ) == datetime(2026, 6, 10, 2, 0, tzinfo=SHANGHAI)
    assert scheduler.latest_occurrence(
        "0 2 * * *", datetime(2026, 6, 9, 17, 59, 59, tzinfo=UTC), SHANGHAI
    ) == datetime(2026, 6, 9, 2, 0, tzinfo=SHANGHAI)
    # the same instant is a different local day in New York (EDT, UTC-4)
    got = scheduler.latest_occurrence("0 2 * * *", datetime(2026, 6, 9, 18, 0, tzinfo=UTC), ny)
    assert got.replace(tzinfo=None) == datetime(2026, 6, 9, 2, 0)
    assert got.utcoffset() == timedelta(hours=-4)


@pytest.fixture
def nightly() -> Iterator[None]:
    registry.job_kind("test.nightly")(lambda ctx: None)
    registry.schedule("test.nightly", "0 2 * * *")
    yield
    registry.unregister("test.nightly")


def test_every_registered_schedule_is_a_valid_cron_expression() -> None:
    """``schedule()`` no longer imports croniter (the API server never plans); the check
    moved to ``schedules()``, which every planner calls."""
    bootstrap.configure()
    plans = registry.schedules()  # raises ValueError on the first invalid one
    assert {p.kind for p in plans} >= {tasks.EXPIRE, tasks.TIERS}


def test_an_invalid_cron_expression_stops_the_planner() -> None:
    registry.job_kind("test.bad_cron")(lambda ctx: None)
    registry.schedule("test.bad_cron", "61 * * * *")
    try:
        with pytest.raises(ValueError, match=r"invalid cron expression '61 \* \* \* \*'"):
            registry.schedules()
        unused = Database("sqlite://")  # the planner stops before any transaction
        with pytest.raises(ValueError, match=r"\(test\.bad_cron\)"):
            scheduler.Scheduler().enqueue_due(unused)
        unused.dispose()
    finally:
        registry.unregister("test.bad_cron")
    assert "test.bad_cron" not in {p.kind for p in registry.schedules()}


def _nightly(db: Database) -> list[tuple[str | None, datetime, str]]:
    return [(j.dedupe_key, j.run_at, j.state) for j in all_jobs(db) if j.kind == "test.nightly"]


def test_each_occurrence_is_enqueued_once(db: Database, clock: Any, nightly: None) -> None:
    clock.freeze(at("2026-06-10T01:00:00+08:00"))
    first, second = scheduler.Scheduler(), scheduler.Scheduler()  # e.g. two workers
    first.enqueue_due(db)
    second.enqueue_due(db)
    first.enqueue_due(db)
    nine = at("2026-06-09T02:00:00+08:00")
    assert _nightly(db) == [("schedule:test.nightly:2026-06-09T02:00", nine, "queued")]
    clock.freeze(at("2026-06-10T02:00:00+08:00"))
    second.enqueue_due(db)
    first.enqueue_due(db)
    assert [k for k, _r, _s in _nightly(db)] == [
        "schedule:test.nightly:2026-06-09T02:00",
        "schedule:test.nightly:2026-06-10T02:00",
    ]


def test_an_occurrence_missed_while_down_fires_once_after_restart(
    db: Database, clock: Any, nightly: None
) -> None:
    clock.freeze(at("2026-06-10T01:59:00+08:00"))
    scheduler.enqueue_due(db)
    queue.run_until_empty(db)
    # the server is down from 01:59 on the 10th until 09:30 on the 12th: two occurrences
    # passed; the latest fires once when it comes back, the older one is not replayed
    clock.freeze(at("2026-06-12T09:30:00+08:00"))
    for _ in range(3):
        scheduler.enqueue_due(db)
    assert [(k, s) for k, _r, s in _nightly(db)] == [
        ("schedule:test.nightly:2026-06-09T02:00", "done"),
        ("schedule:test.nightly:2026-06-12T02:00", "queued"),
    ]
    queue.run_until_empty(db)
    assert [s for _k, _r, s in _nightly(db)] == ["done", "done"]


def test_schedules_follow_the_programme_zone(world: Any, clock: Any, nightly: None) -> None:
    db = world.db
    programme(db, "America/New_York")
    clock.freeze(at("2026-06-10T05:00:00+00:00"))  # 01:00 in New York, 13:00 in Shanghai
    scheduler.enqueue_due(db)
    assert _nightly(db) == [
        (
            "schedule:test.nightly:2026-06-09T02:00",
            at("2026-06-09T06:00:00+00:00"),  # 02:00 EDT
            "queued",
        )
    ]


def test_without_a_programme_schedules_use_shanghai(
    db: Database, clock: Any, nightly: None
) -> None:
    clock.freeze(at("2026-06-10T05:00:00+00:00"))  # 13:00 in Shanghai
    scheduler.enqueue_due(db)
    assert [r for _k, r, _s in _nightly(db)] == [at("2026-06-10T02:00:00+08:00")]


def test_production_schedules_are_registered(configured: None) -> None:
    planned = {s.kind: s.cron for s in registry.schedules()}
    assert {k: planned[k] for k in tasks.SWEEPS.values()} == {
        "points.activate": "* * * * *",
        "points.expire": "* * * * *",
        "points.remind": "*/15 * * * *",
        "tiers.reevaluate": "10 0 * * *",
    }
    assert planned["jobs.prune"] == "40 3 * * *"
    # Test kinds stay out of production: a fresh process configured as the worker is knows
    # none of them (this process imported the e2e fault kind when pytest collected it).
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from loyalist import bootstrap; bootstrap.configure();"
            "from loyalist.jobs import registry; print(' '.join(sorted(registry.kinds())))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert set(tasks.SWEEPS.values()) <= set(out)
    assert [k for k in out if k.startswith("test.")] == []


# --- the sweeps on the queue -------------------------------------------------------------


def test_sweeps_run_as_jobs_in_batches_once_per_period(
    world: Any, clock: Any, configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = world.db
    monkeypatch.setattr(tasks, "SWEEP_BATCH", 2)  # 5 members: batches of 2, 2, 1
    programme(db, "Asia/Shanghai", pending_days=7, reminder_days=[30])
    _populate(db, clock, 5)
    clock.freeze(at("2026-06-10T12:00:30+08:00"))
    scheduler.enqueue_due(db)
    assert queue.run_until_empty(db) > 0
    assert _effects(db) == {"earn": 5, "activate": 5}
    assert len(expiring_payloads(db)) == 5  # the lots expire 07-02: announced 30 days ahead
    kinds = [(j.kind, j.payload.get("part", 0), j.state) for j in all_jobs(db)]
    assert [k for k in kinds if k[0] == "points.activate"] == [
        ("points.activate", 0, "done"),
        ("points.activate", 1, "done"),
        ("points.activate", 2, "done"),
    ]
    assert [k for k in kinds if k[0] == "points.remind"] == [
        ("points.remind", 0, "done"),
        ("points.remind", 1, "done"),
        ("points.remind", 2, "done"),
    ]
    assert {s for _k, _p, s in kinds} == {"done"}
    # tiers: the period 2026-Q1 is evaluated once, across its batches, recorded in job_run
    assert rows(db, "SELECT job, period, status, processed FROM job_run") == [
        {"job": "tiers", "period": "2026-Q1", "status": "done", "processed": 5}
    ]
    # the next minute's occurrences find nothing more to do
    clock.advance(timedelta(minutes=1))
    scheduler.enqueue_due(db)
    queue.run_until_empty(db)
    assert _effects(db) == {"earn": 5, "activate": 5}
    assert len(expiring_payloads(db)) == 5
    # a new day: the tier job runs again but the period is done
    clock.advance(timedelta(days=1))
    scheduler.enqueue_due(db)
    queue.run_until_empty(db)
    assert rows(db, "SELECT processed FROM job_run") == [{"processed": 5}]
    # expiry at the local day boundary after 07-02
    clock.freeze(at("2026-07-02T00:00:30+08:00"))
    scheduler.enqueue_due(db)
    queue.run_until_empty(db)
    assert _effects(db) == {"earn": 5, "activate": 5, "expire": 5}
    verify_clean(db)


def test_a_failing_sweep_batch_rolls_back_whole_and_is_retried(
    world: Any, clock: Any, configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loyalist.jobs import service as sweeps

    db = world.db
    programme(db, "Asia/Shanghai", pending_days=7)
    _populate(db, clock, 4)
    clock.freeze(at("2026-06-10T12:00:00+08:00"))
    real = sweeps.activate_member
    calls = {"n": 0}

    def fails_on_the_third(*args: Any, **kw: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real(*args, **kw)

    monkeypatch.setattr(sweeps, "activate_member", fails_on_the_third)
    with db.transaction() as s:
        queue.enqueue(s, tasks.ACTIVATE, {})
    queue.run_until_empty(db)
    assert _effects(db) == {"earn": 4}  # two members were activated, then rolled back
    (job,) = all_jobs(db)
    assert (job.state, job.attempts) == ("failed", 1)
    assert job.last_error == "attempt 1: RuntimeError: disk full"
    clock.advance(timedelta(seconds=3))
    queue.run_until_empty(db)
    assert _effects(db) == {"earn": 4, "activate": 4}
    assert [(j.state, j.attempts) for j in all_jobs(db)] == [("done", 2)]
    verify_clean(db)


def test_prune_forgets_old_finished_sweeps_only(db: Database, clock: Any, configured: None) -> None:
    with db.transaction() as s:
        queue.enqueue(s, tasks.ACTIVATE, {}, dedupe_key="schedule:points.activate:x")
        queue.enqueue(s, "webhooks.example", {}, dedupe_key="delivery:1")
        queue.enqueue(s, "other.example", {})
    for c in queue.claim(db, "w", limit=3):  # mark all three done (kinds without handlers
        with db.transaction() as s:  # other than the sweep are finished by hand here)
            job = s.get(Job, c.id)
            assert job is not None
            job.state, job.finished_at = "done", clock.now()
    clock.advance(timedelta(days=15))
    with db.transaction() as s:
        queue.enqueue(s, tasks.PRUNE, {})
    queue.run_until_empty(db)
    assert [(j.kind, j.dedupe_key) for j in all_jobs(db)] == [
        ("webhooks.example", "delivery:1"),  # its dedupe key still guards it
        ("jobs.prune", None),
    ]


# --- the worker loop ---------------------------------------------------------------------


def test_worker_once_runs_schedules_pollers_and_jobs(
    world: Any, clock: Any, configured: None
) -> None:
    db = world.db
    programme(db, "Asia/Shanghai", pending_days=7)
    _populate(db, clock, 3)
    clock.freeze(at("2026-06-10T12:00:00+08:00"))
    polled: list[int] = []

    def poller(_db: Database) -> int:
        polled.append(1)
        return 0

    w = Worker(db, [poller], concurrency=2, poll_interval=0.01)
    stats = w.run(once=True)
    assert _effects(db) == {"earn": 3, "activate": 3}
    assert stats.done == len(all_jobs(db)) and stats.dead == 0 and stats.lost == 0
    assert len(polled) == stats.ticks >= 2
    assert {j.state for j in all_jobs(db)} == {"done"}


def test_a_failing_poller_does_not_stop_the_worker(
    db: Database, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def bad(_db: Database) -> int:
        raise RuntimeError("consumer broke")

    w = Worker(db, [bad], poll_interval=0.01)
    w.run(once=True)
    assert "consumer broke" in caplog.text


def test_a_job_that_cannot_be_recorded_does_not_kill_the_worker(
    db: Database, clock: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with db.transaction() as s:
        queue.enqueue(s, "jobs.prune", {}, dedupe_key="one")
        queue.enqueue(s, "jobs.prune", {}, dedupe_key="two")
    real = queue.execute
    one = next(j.id for j in all_jobs(db) if j.dedupe_key == "one")
    calls = {"n": 0}

    def flaky(*args: Any) -> str:
        if args[1].id == one and calls["n"] == 0:  # (db, claimed, worker): job "one", once
            calls["n"] += 1
            raise ConnectionError("database went away")
        return real(*args)

    monkeypatch.setattr(queue, "execute", flaky)
    bootstrap.configure()
    w = Worker(db, [], poll_interval=0.01)
    stats = w.run(once=True)
    assert "database went away" in caplog.text
    assert stats.lost == 1  # the loop went on: the other job and the schedules ran
    assert stats.done == sum(1 for j in all_jobs(db) if j.state == "done") >= 1
    states = {j.dedupe_key: j.state for j in all_jobs(db) if j.dedupe_key in ("one", "two")}
    assert states == {"one": "running", "two": "done"}  # "one" waits for its lease to expire


def test_stop_ends_the_loop(db: Database) -> None:
    w = Worker(db, [], poll_interval=0.05)
    thread = w.start_thread()
    w.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()


# --- the CLI -----------------------------------------------------------------------------

Cli = Callable[..., Result]


@pytest.fixture
def cli(world: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        monkeypatch.setenv("LOYALIST_DATABASE_URL", world.db.url)
        monkeypatch.setenv("COLUMNS", "200")
        get_settings.cache_clear()
        return runner.invoke(app, list(args))

    yield invoke
    get_settings.cache_clear()


def test_jobs_run_enqueues_the_sweeps_and_drains_the_queue(world: Any, cli: Cli) -> None:
    db = world.db
    programme(db, "Asia/Shanghai", pending_days=7, reminder_days=[30])
    _populate(db, world_clock(), 4)
    r = cli("jobs", "run", "--at", "2026-06-10T12:00:00+08:00", "--only", "activate")
    assert r.exit_code == 0, r.output
    assert _effects(db) == {"earn": 4, "activate": 4}
    assert expiring_payloads(db) == []  # only activation ran
    assert [(j.kind, j.state) for j in all_jobs(db)] == [("points.activate", "done")]
    r = cli("jobs", "run", "--at", "2026-06-10T12:01:00+08:00")
    assert r.exit_code == 0, r.output
    assert len(expiring_payloads(db)) == 4
    assert {j.state for j in all_jobs(db)} == {"done"}


def world_clock() -> Any:
    from loyalist.kit.clock import clock

    return clock


def test_jobs_list_retry_cancel(world: Any, clock: Any, cli: Cli) -> None:
    db = world.db
    with db.transaction() as s:
        queue.enqueue(s, "nobody.handles.this", {}, dedupe_key="k-dead")
        queue.enqueue(s, "later.example", {}, run_at=clock.now() + timedelta(hours=1))
    with db.transaction() as s:
        dead = s.scalars(select(Job).where(Job.dedupe_key == "k-dead")).one()
        dead.state, dead.attempts, dead.last_error = "dead", 10, "attempt 10: LookupError: x"
    r = cli("jobs", "list")
    assert r.exit_code == 0, r.output
    assert "nobody.handles.this" in r.output and "later.example" in r.output
    assert "attempt 10: LookupError: x" in r.output
    assert "dead: 1" in r.output and "queued: 1" in r.output
    r = cli("jobs", "list", "--state", "dead")
    assert "nobody.handles.this" in r.output and "later.example" not in r.output
    r = cli("jobs", "list", "--kind", "later.example")
    assert "nobody.handles.this" not in r.output and "later.example" in r.output
    r = cli("jobs", "list", "--state", "bogus")
    assert r.exit_code == 2
    r = cli("jobs", "retry", "1")
    assert r.exit_code == 0 and "queued again: 1" in r.output
    r = cli("jobs", "cancel", "2", "99")
    assert r.exit_code == 1
    assert "cancelled: 2" in r.output and "[99]" in r.stderr
    assert [(j.id, j.state, j.attempts) for j in all_jobs(db)] == [
        (1, "queued", 0),
        (2, "cancelled", 0),
    ]


def test_worker_once_from_the_cli(world: Any, clock: Any, cli: Cli) -> None:
    db = world.db
    with db.transaction() as s:
        queue.enqueue(s, "jobs.prune", {})
    r = cli("worker", "--once", "--poll-interval", "0.01")
    assert r.exit_code == 0, r.output
    assert "worker stopped" in r.output
    assert ("jobs.prune", "done") in [(j.kind, j.state) for j in all_jobs(db)]


def test_serve_flags(cli: Cli) -> None:
    r = cli("serve", "--help")
    assert "--no-worker" in r.output
