"""Console: the job queue page — open jobs with their errors, retry and cancel (HQ only),
CSRF-checked and audited, in Chinese and English."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.console import console_client, login, make_users, post

from loyalist.jobs import queue
from loyalist.kit.db import Database
from loyalist.models import AuditLog, Job


@pytest.fixture
def console(world: Any) -> Iterator[TestClient]:
    make_users(world.db)
    with console_client(world.db) as c:
        yield c


def seed_jobs(db: Database, clock: Any) -> dict[str, int]:
    with db.transaction() as s:
        queue.enqueue(s, "points.expire", {}, dedupe_key="a")
        queue.enqueue(s, "webhooks.deliver", {"n": 1}, dedupe_key="b")
        queue.enqueue(s, "webhooks.deliver", {"n": 2}, dedupe_key="c")
        queue.enqueue(s, "points.activate", {}, dedupe_key="d")
        jobs = list(s.scalars(select(Job).order_by(Job.id)))
        jobs[1].state, jobs[1].attempts = "dead", 10
        jobs[1].last_error = "attempt 10: ConnectError: receiver unreachable"
        jobs[2].state, jobs[2].attempts = "failed", 2
        jobs[2].last_error = "attempt 2: TimeoutError: 10 s"
        jobs[2].run_at = clock.now() + timedelta(minutes=5)
        jobs[3].state = "done"
        return {"queued": jobs[0].id, "dead": jobs[1].id, "failed": jobs[2].id, "done": jobs[3].id}


def states(db: Database) -> dict[int, str]:
    with db.transaction() as s:
        return {j.id: j.state for j in s.scalars(select(Job).order_by(Job.id))}


def test_open_jobs_are_listed_with_their_errors(
    world: Any, clock: Any, console: TestClient
) -> None:
    ids = seed_jobs(world.db, clock)
    login(console, world.db, "admin")
    console.cookies.set("loyalist_lang", "zh_CN")
    html = console.get("/admin/jobs").text
    assert "后台任务" in html and "已放弃" in html and "失败待重试" in html and "排队中" in html
    assert "attempt 10: ConnectError: receiver unreachable" in html
    assert "attempt 2: TimeoutError: 10 s" in html
    for key in ("queued", "dead", "failed"):
        assert f'data-job-id="{ids[key]}"' in html
    assert f'data-job-id="{ids["done"]}"' not in html  # finished well: not an open job
    done = console.get("/admin/jobs?state=done").text
    assert f'data-job-id="{ids["done"]}"' in done and f'data-job-id="{ids["dead"]}"' not in done
    by_kind = console.get("/admin/jobs?kind=webhooks.deliver").text
    assert f'data-job-id="{ids["queued"]}"' not in by_kind
    assert f'data-job-id="{ids["dead"]}"' in by_kind
    console.cookies.set("loyalist_lang", "en")
    en = console.get("/admin/jobs").text
    assert "Jobs" in en and "Dead" in en and "Retry now" in en and "后台任务" not in en


def test_retry_and_cancel_are_audited(world: Any, clock: Any, console: TestClient) -> None:
    db = world.db
    ids = seed_jobs(db, clock)
    csrf = login(console, db, "admin")
    r = post(console, f"/admin/jobs/{ids['dead']}/retry", csrf, {"back": "state=dead"})
    assert (r.status_code, r.headers["location"]) == (303, "/admin/jobs?state=dead&notice=retried")
    r = post(console, f"/admin/jobs/{ids['failed']}/cancel", csrf)
    assert (r.status_code, r.headers["location"]) == (303, "/admin/jobs?notice=cancelled")
    assert states(db) == {
        ids["queued"]: "queued",
        ids["dead"]: "queued",
        ids["failed"]: "cancelled",
        ids["done"]: "done",
    }
    with db.transaction() as s:
        retried = s.get(Job, ids["dead"])
        assert retried is not None
        assert (retried.attempts, retried.run_at) == (0, clock.now())
        rows = [
            (a.actor, a.action, a.object_type, a.object_id, a.before["state"], a.after["state"])
            for a in s.scalars(select(AuditLog).where(AuditLog.object_type == "job"))
        ]
    assert rows == [
        ("user:admin", "job.retry", "job", str(ids["dead"]), "dead", "queued"),
        ("user:admin", "job.cancel", "job", str(ids["failed"]), "failed", "cancelled"),
    ]
    # a done job is neither retried nor cancelled; an unknown job is 404
    assert post(console, f"/admin/jobs/{ids['done']}/retry", csrf).status_code == 409
    assert post(console, f"/admin/jobs/{ids['done']}/cancel", csrf).status_code == 409
    assert post(console, "/admin/jobs/999999/retry", csrf).status_code == 404
    assert post(console, f"/admin/jobs/{ids['queued']}/explode", csrf).status_code == 422
    assert states(db)[ids["done"]] == "done"


def test_actions_need_the_csrf_token(world: Any, clock: Any, console: TestClient) -> None:
    db = world.db
    ids = seed_jobs(db, clock)
    login(console, db, "admin")
    before = states(db)
    r = console.post(f"/admin/jobs/{ids['dead']}/retry", data={}, follow_redirects=False)
    assert r.status_code == 403
    r = post(console, f"/admin/jobs/{ids['dead']}/retry", "wrong-token")
    assert r.status_code == 403
    assert states(db) == before


def test_only_hq_admins_see_the_queue(world: Any, clock: Any, console: TestClient) -> None:
    db = world.db
    ids = seed_jobs(db, clock)
    csrf = login(console, db, "east.manager")
    assert console.get("/admin/jobs").status_code == 403
    before = states(db)
    assert post(console, f"/admin/jobs/{ids['dead']}/retry", csrf).status_code == 403
    assert states(db) == before


def test_an_unknown_state_filter_is_refused(world: Any, console: TestClient) -> None:
    login(console, world.db, "admin")
    r = console.get("/admin/jobs?state=exploded")
    assert r.status_code == 422
    assert "queued, running, failed, dead, cancelled, done" in r.text
