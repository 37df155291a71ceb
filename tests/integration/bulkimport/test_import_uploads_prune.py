"""The daily job ``imports.prune``: files uploaded to the console and checked but never
confirmed leave ``LOYALIST_IMPORT_DIR`` once older than
``LOYALIST_IMPORT_UPLOAD_MAX_AGE_HOURS`` (default 168); files an import job will still read
stay whatever their age; running it again removes nothing more."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.console import make_users
from tests.itest import counts

from loyalist.bulkimport import tasks, uploads
from loyalist.config import get_settings
from loyalist.jobs import queue, registry
from loyalist.jobs.registry import JobContext
from loyalist.kit.actor import Actor
from loyalist.models import Job

ACTOR = Actor(name="test:import", scope_path="/", principal="test:import")
MEMBERS = "external_id,phone\nC001,13800138001\nC002,13800138002\n"
OTHER = "external_id,phone\nC003,13800138003\n"
STOPPED = "external_id,phone\nC004,13800138004\n"


@pytest.fixture
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = tmp_path / "imports"
    monkeypatch.setenv("LOYALIST_IMPORT_DIR", str(d))
    get_settings.cache_clear()
    yield d
    get_settings.cache_clear()


def run_job(world: Any, clock: Any) -> None:
    with world.db.transaction() as s:
        tasks.prune_uploads(JobContext(s, 0, tasks.PRUNE_JOB, {}, 1, clock.now()))


def names(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir())


def kept(data: str) -> list[str]:
    digest = uploads.keep(data.encode(), ".csv")
    return [f"{digest}.csv", f"{digest}.csv.rows.jsonl"]


def test_unconfirmed_uploads_older_than_the_age_go_files_in_use_stay(
    world: Any, clock: Any, where: Path
) -> None:
    assert (tasks.PRUNE_JOB, "35 3 * * *") in {(x.kind, x.cron) for x in registry.schedules()}
    assert get_settings().import_upload_max_age_hours == 168
    make_users(world.db)  # the confirming staff user the import job acts as
    unconfirmed = kept(MEMBERS)  # checked, never confirmed
    confirmed = kept(OTHER)  # confirmed: its job is queued
    stopped = kept(STOPPED)  # confirmed, its job dead: the page asks for the file again
    with world.db.transaction() as s:
        started = {
            name: uploads.start(
                s, ACTOR, "admin", "members", uploads.checksum(data.encode()), ".csv", name
            ).batch.id
            for data, name in ((OTHER, "o.csv"), (STOPPED, "s.csv"))
        }
    with world.db.transaction() as s:
        jobs = list(s.scalars(select(Job).where(Job.kind == uploads.JOB_KIND)))
        assert sorted(j.payload["batch"] for j in jobs) == sorted(started.values())
        for job in jobs:
            if job.payload["batch"] == started["s.csv"]:
                job.state, job.last_error = "dead", "attempt 3: worker killed"
    temp = where / ".upload-abc123"  # left by a killed upload
    temp.write_bytes(b"half")
    foreign = where / "README.txt"  # not the import's: never touched
    foreign.write_text("operator's note")
    t0 = clock.now()
    for p in where.iterdir():  # every file written at the clock's "now"
        os.utime(p, (t0.timestamp(), t0.timestamp()))
    everything = names(where)
    before = counts(world.db)

    clock.advance(timedelta(hours=168))  # exactly the age: nothing is older yet
    run_job(world, clock)
    assert names(where) == everything
    clock.advance(timedelta(seconds=1))
    run_job(world, clock)
    assert names(where) == sorted([*confirmed, "README.txt"])
    run_job(world, clock)  # again: nothing more
    assert names(where) == sorted([*confirmed, "README.txt"])
    assert counts(world.db) == before  # files only: no row written or removed
    assert not any((where / n).exists() for n in [*unconfirmed, *stopped])

    # the confirmed import still runs from its kept file, which then goes
    assert queue.run_until_empty(world.db) == 1
    assert names(where) == ["README.txt"]


def test_an_upload_checked_again_is_kept_from_then_and_zero_keeps_for_ever(
    world: Any, clock: Any, where: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = kept(MEMBERS)
    old = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    for n in files:
        os.utime(where / n, (old, old))
    assert kept(MEMBERS) == files  # the same file uploaded again: touched, not rewritten
    assert all((where / n).stat().st_mtime > old + 86_400 for n in files)
    for n in files:
        os.utime(where / n, (old, old))
    monkeypatch.setenv("LOYALIST_IMPORT_UPLOAD_MAX_AGE_HOURS", "0")
    get_settings.cache_clear()
    clock.freeze(datetime(2027, 1, 1, tzinfo=UTC))
    run_job(world, clock)
    assert names(where) == sorted(files)
    monkeypatch.setenv("LOYALIST_IMPORT_UPLOAD_MAX_AGE_HOURS", "24")
    get_settings.cache_clear()
    run_job(world, clock)
    assert names(where) == []
