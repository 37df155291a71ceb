"""Issue 14 item 2, the missing figure: 10,000 members entering one journey concurrently
on two ``loyalist worker`` processes on PostgreSQL get exactly one run each.

The members are created first (10,000 ``member.created`` events in the outbox), then two
workers start together and race for them: both run the ``journeys`` consumer, each with
four threads. The consumer's checkpoint lock lets one worker at a time hold a batch, and the
unique active run per member and journey holds (the runs' multi-row insert skips a member
who has one), so however the batches interleave every member ends with one run, one step
effect and one tag. PostgreSQL only (SQLite has one writer: nothing concurrent to show).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.e2e.test_journey_faults import Workers
from tests.support import build_world

from loyalist.journey import service as journeys
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import ActionReceipt, Job, JourneyRun, JourneyStep, MemberTag

pytestmark = [pytest.mark.timeout(2400), pytest.mark.slow, pytest.mark.postgres]

# The figure: 10,000 members (LOYALIST_TEST_ENTRY_MEMBERS sets another number). The
# journeys consumer enters a batch of new members set-based (journey.service.on_events, a
# fixed number of statements per batch of up to 2,000 events). At 10,000 on PostgreSQL, 2
# cores: 33 s from the workers' start to the last step at a load average of ~4 (45 s to
# create the members first, 88 s in all); 218 s at a load of ~23 (373 s to create them),
# most of it the journeys consumer waiting for its turn behind the per-event consumers
# (habits, referral) in the workers' loop (docs/benchmarks.md, "Journey entry").
MEMBERS = int(os.environ.get("LOYALIST_TEST_ENTRY_MEMBERS", "10000"))

JOURNEY = {
    "key": "crowd",
    "name": "crowd",
    "marketing": False,
    "entry": {"event": "member.created"},
    "steps": [
        {"id": "tag", "type": "action", "action": "add_tag", "params": {"tag": "crowd"}},
    ],
}


def _count(db: Database, model: type, *where: object) -> int:
    with db.engine.connect() as conn:
        q = select(func.count()).select_from(model)
        for w in where:
            q = q.where(w)  # type: ignore[arg-type]
        return int(conn.execute(q).scalar_one())


def test_ten_thousand_members_enter_one_journey_on_two_workers_once_each(
    db: Database, tmp_path: Path
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("two concurrent workers need PostgreSQL")
    build_world(db)
    with db.transaction() as s:
        journeys.publish(s, SYSTEM, {"journeys": [JOURNEY]}, "10k entry test")
    started = time.monotonic()
    # Small transactions: a session's cost per flush grows with the rows it holds.
    for chunk in range(0, MEMBERS, 50):
        with db.transaction() as s:
            for i in range(chunk, min(chunk + 50, MEMBERS)):
                members.create(s, SYSTEM, MemberCreate(phone=f"1380000{i:04d}"))
    created_s = time.monotonic() - started
    print(f"\n{MEMBERS} entry: members created in {created_s:.1f}s", flush=True)
    workers = Workers(db, tmp_path)
    deadline = time.monotonic() + 2000
    entered_from = time.monotonic()
    try:
        workers.start("a", 4, timedelta(0))
        workers.start("b", 4, timedelta(0))
        while _count(db, JourneyStep, JourneyStep.step_id == "tag") < MEMBERS:
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(1)
        entered_s = time.monotonic() - entered_from
        time.sleep(0.5)  # any duplicate would land now
    finally:
        codes = workers.stop_all()
    assert codes == [0, 0], workers.logs()
    print(f"\n{MEMBERS} entry: members created in {created_s:.1f}s, entered in {entered_s:.1f}s")

    with db.transaction() as s:
        runs = list(s.execute(select(JourneyRun.member_id, JourneyRun.state)))
        steps = Counter(s.execute(select(JourneyStep.run_id, JourneyStep.step_id)).all())
        tags = s.scalar(select(func.count()).select_from(MemberTag).where(MemberTag.tag == "crowd"))
        receipts = s.scalar(select(func.count()).select_from(ActionReceipt))
        bad_jobs = s.scalar(
            select(func.count()).select_from(Job).where(Job.state.in_(["dead", "failed"]))
        )
    per_member = Counter(m for m, _ in runs)
    assert len(per_member) == MEMBERS and set(per_member.values()) == {1}
    assert {state for _, state in runs} == {"completed"}
    assert len(steps) == MEMBERS and set(steps.values()) == {1}
    assert tags == MEMBERS
    assert receipts == MEMBERS
    assert bad_jobs == 0
