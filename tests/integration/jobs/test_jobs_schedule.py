"""Periodic jobs: activation, expiry and reminders on the programme's calendar (Shanghai and
New York across both DST changes), each idempotent, safe concurrently and resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.itest import apply_document, rows
from tests.server import ROOT, plain_programme
from tests.support import order_payload

from loyalist.jobs import service as jobs
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import LedgerEntry, OutboxEvent, PointsLot
from loyalist.order import service as orders
from loyalist.order.schemas import OrderCreate

SECOND = timedelta(seconds=1)


def programme(
    db: Database,
    tz: str,
    *,
    pending_days: int = 0,
    expiry: dict[str, Any] | None = None,
    reminder_days: list[int] | None = None,
) -> None:
    doc = plain_programme([])
    doc["timezone"] = tz
    doc["points"]["pending_days"] = pending_days
    doc["points"]["expiry"] = expiry or {"kind": "rolling_months", "months": 1}
    doc["points"]["reminder_days"] = reminder_days or [30]
    apply_document(db, doc)


def earn(db: Database, clock: Any, phone: str, at: datetime, paid: int = 10_000) -> int:
    """A member who earned ``paid / 100`` points from an order at ``at`` (recorded then)."""
    clock.freeze(at + SECOND)
    with db.transaction() as s:
        mid = members.create(s, SYSTEM, MemberCreate(phone=phone)).member.id
        orders.record(
            s,
            SYSTEM,
            OrderCreate.model_validate(
                order_payload(f"o-{phone}", mid, paid=paid, occurred_at=at.isoformat())
            ),
        )
    return mid


def state(db: Database, mid: int) -> tuple[int, int, list[tuple[str, int, str]]]:
    """(available, pending, [(status, remaining, expires_at)])"""
    with db.transaction() as s:
        acct = ledger.get_account(s, mid)
        lots = [
            (lot.status, lot.remaining, lot.expires_at.isoformat() if lot.expires_at else "")
            for lot in s.scalars(select(PointsLot).where(PointsLot.member_id == mid))
        ]
        return acct.available, acct.pending, lots


def lot_times(db: Database, mid: int) -> tuple[datetime, datetime | None]:
    with db.transaction() as s:
        lot = s.scalars(select(PointsLot).where(PointsLot.member_id == mid)).one()
        return lot.available_at, lot.expires_at


def verify_clean(db: Database) -> None:
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
    assert problems == []


def expiring_payloads(db: Database) -> list[dict[str, Any]]:
    with db.transaction() as s:
        q = select(OutboxEvent.payload).where(OutboxEvent.type == "points.expiring")
        return list(s.scalars(q.order_by(OutboxEvent.id)))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# (zone, pending days, expiry, earned at (local), available at (UTC), expires at (UTC))
CALENDAR = [
    # Shanghai (no DST): rolling months clamp to the month's end; end of the next year
    ("Asia/Shanghai", 7, {"kind": "rolling_months", "months": 1},
     "2026-01-31T23:59:00+08:00", "2026-02-07T16:00:00+00:00", "2026-02-28T16:00:00+00:00"),
    ("Asia/Shanghai", 0, {"kind": "end_of_year", "years": 1},
     "2026-12-31T23:59:59+08:00", "2026-12-31T15:59:59+00:00", "2027-12-31T16:00:00+00:00"),
    ("Asia/Shanghai", 0, {"kind": "end_of_month", "months": 1},
     "2026-02-01T00:00:00+08:00", "2026-01-31T16:00:00+00:00", "2026-03-31T16:00:00+00:00"),
    # New York, spring forward (2026-03-08 02:00 EST → 03:00 EDT): the last valid day
    # before the change ends at 05:00Z, the one after it at 04:00Z
    ("America/New_York", 1, {"kind": "rolling_months", "months": 1},
     "2026-02-07T12:00:00-05:00", "2026-02-09T05:00:00+00:00", "2026-03-08T05:00:00+00:00"),
    ("America/New_York", 1, {"kind": "rolling_months", "months": 1},
     "2026-02-08T23:30:00-05:00", "2026-02-10T05:00:00+00:00", "2026-03-09T04:00:00+00:00"),
    # pending across the change: earned on the 23-hour day, available two local days later
    ("America/New_York", 1, {"kind": "rolling_months", "months": 1},
     "2026-03-08T00:30:00-05:00", "2026-03-10T04:00:00+00:00", "2026-04-09T04:00:00+00:00"),
    # New York, fall back (2026-11-01 02:00 EDT → 01:00 EST): the 25-hour day
    ("America/New_York", 0, {"kind": "rolling_months", "months": 1},
     "2026-09-30T20:00:00-04:00", "2026-10-01T00:00:00+00:00", "2026-10-31T04:00:00+00:00"),
    ("America/New_York", 0, {"kind": "rolling_months", "months": 1},
     "2026-10-01T00:00:00-04:00", "2026-10-01T04:00:00+00:00", "2026-11-02T05:00:00+00:00"),
    ("America/New_York", 1, {"kind": "end_of_year", "years": 0},
     "2026-10-31T23:00:00-04:00", "2026-11-02T05:00:00+00:00", "2027-01-01T05:00:00+00:00"),
    # Berlin springs forward at 02:00 local on 2026-03-29: earned in winter time (CET),
    # available and expiring in summer time (CEST)
    ("Europe/Berlin", 1, {"kind": "end_of_month", "months": 1},
     "2026-03-28T12:00:00+01:00", "2026-03-29T22:00:00+00:00", "2026-04-30T22:00:00+00:00"),
    ("Europe/Berlin", 0, {"kind": "end_of_month", "months": 1},
     "2026-02-15T12:00:00+01:00", "2026-02-15T11:00:00+00:00", "2026-03-31T22:00:00+00:00"),
]  # fmt: skip


@pytest.mark.parametrize(("tz", "pending", "expiry", "earned", "avail", "expires"), CALENDAR)
def test_activation_and_expiry_happen_at_the_local_day_boundary(
    world: Any,
    clock: Any,
    tz: str,
    pending: int,
    expiry: dict[str, Any],
    earned: str,
    avail: str,
    expires: str,
) -> None:
    db = world.db
    programme(db, tz, pending_days=pending, expiry=expiry)
    mid = earn(db, clock, "13800000001", at(earned))
    available_at, expires_at = lot_times(db, mid)
    assert (available_at.isoformat(), expires_at and expires_at.isoformat()) == (avail, expires)

    if at(avail) > at(earned):
        clock.freeze(at(avail) - SECOND)
        assert jobs.activate_pending(db).points == 0
        assert state(db, mid)[:2] == (0, 100)
    clock.freeze(at(avail))
    jobs.activate_pending(db)
    assert state(db, mid)[:2] == (100, 0)

    clock.freeze(at(expires) - SECOND)
    assert jobs.expire_points(db).points == 0
    assert state(db, mid) == (100, 0, [("available", 100, expires)])
    clock.freeze(at(expires))
    report = jobs.expire_points(db)
    assert (report.members, report.points) == (1, 100)
    assert state(db, mid) == (0, 0, [("expired", 0, expires)])
    with db.transaction() as s:
        entry = s.scalars(
            select(LedgerEntry).where(LedgerEntry.member_id == mid, LedgerEntry.kind == "expire")
        ).one()
        assert (entry.delta_available, entry.occurred_at.isoformat()) == (-100, expires)
    verify_clean(db)


def test_reminders_once_per_lot_and_offset_across_the_fall_change(world: Any, clock: Any) -> None:
    db = world.db
    programme(db, "America/New_York", reminder_days=[7, 1])
    # last valid local day 2026-11-01 (25 hours), expiry at the start of 11-02 = 05:00Z
    a = earn(db, clock, "13800000001", at("2026-10-01T09:00:00-04:00"))
    b = earn(db, clock, "13800000002", at("2026-10-01T18:00:00-04:00"), paid=5_000)
    assert lot_times(db, a)[1] == at("2026-11-02T05:00:00+00:00")

    def reminders() -> list[tuple[int, int, str, int]]:
        return sorted(
            (p["member_id"], p["points"], p["expires_at"], p["days_before"])
            for p in expiring_payloads(db)
        )

    seven = at("2026-10-25T04:00:00+00:00")  # start of 10-25 local, EDT
    one = at("2026-10-31T04:00:00+00:00")  # start of 10-31 local, EDT
    clock.freeze(seven - SECOND)
    jobs.remind_expiring(db)
    assert reminders() == []
    clock.freeze(seven)
    assert jobs.remind_expiring(db).changes == 2
    first = [(a, 100, "2026-11-02T05:00:00+00:00", 7), (b, 50, "2026-11-02T05:00:00+00:00", 7)]
    assert reminders() == first
    for hours in (0, 1, 30):  # later runs before the next offset send nothing
        clock.freeze(seven + timedelta(hours=hours))
        assert jobs.remind_expiring(db).changes == 0
    assert reminders() == first
    clock.freeze(one - SECOND)
    jobs.remind_expiring(db)
    assert reminders() == first
    clock.freeze(one)
    jobs.remind_expiring(db)
    jobs.remind_expiring(db)
    assert reminders() == sorted(
        [*first, (a, 100, "2026-11-02T05:00:00+00:00", 1), (b, 50, "2026-11-02T05:00:00+00:00", 1)]
    )
    # after the expiry instant nothing more is said, and the points are gone
    clock.freeze(at("2026-11-02T05:00:00+00:00"))
    jobs.run_due(db)
    assert len(reminders()) == 4
    assert state(db, a)[:2] == (0, 0)


def test_after_an_outage_only_the_reminder_in_force_is_sent(world: Any, clock: Any) -> None:
    db = world.db
    programme(db, "Asia/Shanghai", reminder_days=[30, 7, 1])
    mid = earn(db, clock, "13800000001", at("2026-06-10T10:00:00+08:00"))
    clock.freeze(at("2026-07-09T12:00:00+08:00"))  # 1 day before the last valid day
    jobs.remind_expiring(db)
    assert [(p["member_id"], p["days_before"]) for p in expiring_payloads(db)] == [(mid, 1)]


def _populate(db: Database, clock: Any, n: int) -> list[int]:
    """``n`` members, each with one pending lot of 100 points (available after 7 days)."""
    clock.freeze(at("2026-06-01T12:00:00+08:00"))
    ids = []
    with db.transaction() as s:
        for i in range(n):
            mid = members.create(s, SYSTEM, MemberCreate(phone=f"1380000{i:04d}")).member.id
            orders.record(
                s,
                SYSTEM,
                OrderCreate.model_validate(
                    order_payload(
                        f"p-{i}", mid, paid=10_000, occurred_at="2026-06-01T10:00:00+08:00"
                    )
                ),
            )
            ids.append(mid)
    return ids


def _effects(db: Database) -> dict[str, int]:
    """How many ledger entries of each kind exist."""
    with db.transaction() as s:
        q = select(LedgerEntry.kind, func.count()).group_by(LedgerEntry.kind)
        return {str(kind): int(n) for kind, n in s.execute(q)}


def test_every_job_is_idempotent_for_its_period(world: Any, clock: Any) -> None:
    db = world.db
    programme(db, "Asia/Shanghai", pending_days=7, reminder_days=[7])
    ids = _populate(db, clock, 5)
    clock.freeze(at("2026-06-10T12:00:00+08:00"))
    jobs.run_due(db)
    clock.freeze(at("2026-06-25T12:00:00+08:00"))  # within 7 days of the 07-02 expiry
    jobs.run_due(db)
    once = (_effects(db), rows(db, "SELECT type, member_id FROM outbox_event ORDER BY id"))
    assert once[0] == {"earn": 5, "activate": 5}
    assert sum(1 for e in once[1] if e["type"] == "points.expiring") == 5
    for _ in range(2):
        reports = jobs.run_due(db)
        assert [(r.job, r.points, r.changes) for r in reports] == [
            ("activate", 0, 0),
            ("expire", 0, 0),
            ("remind", 0, 0),
            ("tiers", 0, 0),
        ]
    assert (_effects(db), rows(db, "SELECT type, member_id FROM outbox_event ORDER BY id")) == once
    clock.freeze(at("2026-07-02T00:00:00+08:00"))
    jobs.run_due(db)
    jobs.run_due(db)
    assert _effects(db) == {"earn": 5, "activate": 5, "expire": 5}
    assert all(state(db, mid)[:2] == (0, 0) for mid in ids)
    verify_clean(db)


def test_two_runners_at_once_apply_each_effect_once(world: Any, clock: Any) -> None:
    """Threads with their own connections race through the same due work."""
    db = world.db
    programme(db, "Asia/Shanghai", pending_days=7, reminder_days=[30])
    _populate(db, clock, 40)
    clock.freeze(at("2026-06-10T12:00:00+08:00"))
    others = [Database(db.url) for _ in range(3)]
    start = threading.Barrier(len(others))
    errors: list[BaseException] = []

    def runner(d: Database) -> None:
        try:
            start.wait(timeout=30)
            jobs.run_due(d)
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=runner, args=(d,)) for d in others]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        for d in others:
            d.dispose()
    assert errors == []
    assert _effects(db) == {"earn": 40, "activate": 40}
    with db.transaction() as s:
        activated = s.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.type == "points.activated")
        )
        assert activated == 40
        reminded = s.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.type == "points.expiring")
        )
        assert reminded == 40  # the lots expire on 07-02: each announced once, 30 days ahead
    verify_clean(db)


def test_a_run_that_dies_midway_is_finished_by_the_next_without_double_effects(
    world: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = world.db
    programme(db, "Asia/Shanghai", pending_days=7)
    ids = _populate(db, clock, 6)
    clock.freeze(at("2026-06-10T12:00:00+08:00"))
    real = ledger.activate_due
    calls = {"n": 0}

    def dies_on_the_fourth(s: Any, acct: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 4:
            real(s, acct)  # the work is done in the transaction, then the process "dies"
            raise SystemExit("killed")
        return real(s, acct)

    monkeypatch.setattr(ledger, "activate_due", dies_on_the_fourth)
    with pytest.raises(SystemExit):
        jobs.activate_pending(db)
    assert _effects(db) == {"earn": 6, "activate": 3}  # the fourth member rolled back
    assert sorted(state(db, mid)[:2] for mid in ids) == [(0, 100)] * 3 + [(100, 0)] * 3
    monkeypatch.setattr(ledger, "activate_due", real)
    report = jobs.activate_pending(db)
    assert (report.members, report.points) == (3, 300)
    assert _effects(db) == {"earn": 6, "activate": 6}
    verify_clean(db)


def test_a_tier_run_that_dies_is_resumed_for_the_same_period(
    world: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loyalist.tier import service as tiers

    db = world.db
    _populate(db, clock, 4)
    clock.freeze(at("2026-07-01T12:00:00+08:00"))
    real = tiers.reevaluate_member
    calls = {"n": 0}

    def dies_on_the_third(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise SystemExit("killed")
        return real(*args)

    monkeypatch.setattr(tiers, "reevaluate_member", dies_on_the_third)
    with pytest.raises(SystemExit):
        jobs.reevaluate_tiers(db)
    assert rows(db, "SELECT status FROM job_run") == [{"status": "running"}]
    evaluated = rows(db, "SELECT tier_evaluated_period AS p FROM member ORDER BY id")
    assert [r["p"] for r in evaluated] == ["2026-Q2", "2026-Q2", None, None]
    monkeypatch.setattr(tiers, "reevaluate_member", real)
    report = jobs.reevaluate_tiers(db)
    assert (report.period, report.members) == ("2026-Q2", 2)
    assert rows(db, "SELECT status, processed FROM job_run") == [{"status": "done", "processed": 2}]
    assert jobs.reevaluate_tiers(db).notes == ["period 2026-Q2 already evaluated"]


_SLOW_RUNNER = """
import sys, time
from datetime import datetime
from loyalist.kit.clock import clock
from loyalist.kit.db import Database
from loyalist.jobs import service as jobs
from loyalist.ledger import service as ledger

real = ledger.activate_due
def slow(s, acct):
    n = real(s, acct)
    print("activated", acct.member_id, flush=True)
    time.sleep(0.3)  # inside the member's transaction: a kill lands before its commit
    return n
ledger.activate_due = slow
clock.freeze(datetime.fromisoformat(sys.argv[2]))
jobs.activate_pending(Database(sys.argv[1]))
print("finished", flush=True)
"""


def test_a_killed_job_process_leaves_only_whole_member_steps(world: Any, clock: Any) -> None:
    """SIGKILL a real process in the middle of the activation job, then run it again."""
    db = world.db
    programme(db, "Asia/Shanghai", pending_days=7)
    _populate(db, clock, 12)
    when = "2026-06-10T12:00:00+08:00"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_RUNNER, db.url, when],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = 0
    deadline = time.monotonic() + 60
    while seen < 4 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the job process ended early"
        seen += line.startswith("activated")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    activated = _effects(db).get("activate", 0)
    assert 3 <= activated < 12  # the kill landed mid-run; each member is all or nothing
    verify_clean(db)
    clock.freeze(at(when))
    jobs.run_due(db)
    assert _effects(db) == {"earn": 12, "activate": 12}
    with db.transaction() as s:
        per_lot = Counter(
            s.scalars(select(LedgerEntry.source_id).where(LedgerEntry.kind == "activate"))
        )
    assert len(per_lot) == 12 and set(per_lot.values()) == {1}
    verify_clean(db)


def test_two_job_processes_at_once_apply_each_effect_once(world: Any, clock: Any) -> None:
    """``loyalist jobs run`` started twice at the same moment, as two schedulers would."""
    db = world.db
    programme(db, "Asia/Shanghai", pending_days=7, reminder_days=[30])
    _populate(db, clock, 30)
    env = {**os.environ, "LOYALIST_DATABASE_URL": db.url}
    cmd = [sys.executable, "-m", "loyalist.cli.main", "jobs", "run"]
    procs = [
        subprocess.Popen(
            [*cmd, "--at", "2026-06-10T12:00:00+08:00"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert _effects(db) == {"earn": 30, "activate": 30}
    assert len(expiring_payloads(db)) == 30
    assert rows(db, "SELECT job, period, status FROM job_run") == [
        {"job": "tiers", "period": "2026-Q1", "status": "done"}
    ]
    verify_clean(db)
