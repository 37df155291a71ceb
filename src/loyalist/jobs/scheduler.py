"""Periodic schedules: each cron occurrence (programme time zone) becomes one job.

On every tick the worker asks :func:`enqueue_due` to enqueue, per schedule, the latest
occurrence at or before now, with the dedupe key ``schedule:<kind>:<local time>``: the
occurrence is enqueued once however many workers tick and however often, and a server that
was down across an occurrence fires it once when it comes back (older missed occurrences
are not replayed: the periodic jobs work on "everything due by now").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy.orm import Session

from loyalist.errors import LoyalistError
from loyalist.jobs import registry
from loyalist.jobs.queue import enqueue
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database

FALLBACK_TZ = "Asia/Shanghai"


def programme_zone(session: Session) -> ZoneInfo:
    """The active programme's time zone (Asia/Shanghai before any programme exists)."""
    from loyalist.programme import service as programmes

    try:
        _v, programme = programmes.active(session)
    except LoyalistError:
        return ZoneInfo(FALLBACK_TZ)
    return programme.tz


def latest_occurrence(cron: str, now: datetime, tz: ZoneInfo) -> datetime:
    """The last occurrence of ``cron`` at or before ``now``, as an aware local time."""
    # get_prev is strictly before its start: start one second after now (whole seconds)
    start = now.astimezone(tz).replace(microsecond=0) + timedelta(seconds=1)
    prev = croniter(cron, start).get_prev(datetime)
    assert isinstance(prev, datetime)
    return prev


def dedupe_key(kind: str, occurrence: datetime) -> str:
    return f"schedule:{kind}:{occurrence.replace(tzinfo=None).isoformat(timespec='minutes')}"


class Scheduler:
    """Remembers what it enqueued so a tick writes only when an occurrence is new."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def enqueue_due(self, db: Database, now: datetime | None = None) -> int:
        plans = registry.schedules()
        if not plans:
            return 0
        at = now or utcnow()

        def unit(s: Session) -> list[tuple[str, str]]:
            tz = programme_zone(s)
            fresh: list[tuple[str, str]] = []
            for plan in plans:
                occurrence = latest_occurrence(plan.cron, at, tz)
                key = dedupe_key(plan.kind, occurrence)
                if self._last.get(plan.kind) == key:
                    continue
                payload = {**plan.payload, "scheduled_for": occurrence.isoformat()}
                enqueue(s, plan.kind, payload, run_at=occurrence, dedupe_key=key)
                fresh.append((plan.kind, key))
            return fresh

        fresh = db.run(unit)
        for kind, key in fresh:
            self._last[kind] = key
        return len(fresh)


def enqueue_due(db: Database, now: datetime | None = None) -> int:
    """Enqueue every schedule's latest occurrence (idempotent through the dedupe keys)."""
    return Scheduler().enqueue_due(db, now)
