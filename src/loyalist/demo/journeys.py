"""The demo's standard journeys (issue 14, item 7): published 21 days before the end
of the history and driven day by day as the worker would (the daily triggers each
morning, the ``journeys`` consumer and the due jobs each evening), so the console shows
messages sent and suppressed, conversions, funnels and an experiment readout.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from time import monotonic
from typing import Any

import yaml
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalist import bootstrap
from loyalist.documents.errors import DocumentInvalid
from loyalist.events import consumers
from loyalist.events import service as events
from loyalist.jobs import queue
from loyalist.journey import service as journeys
from loyalist.kit.actor import Actor
from loyalist.kit.clock import as_utc, clock
from loyalist.kit.db import Database
from loyalist.models import Job, JourneyRun, JourneyStep

JOURNEYS_FILE = Path(__file__).with_name("journeys.yaml")
DAYS = 21  # the journeys run over the last 21 days of the history
ADMIN = Actor(name="user:admin", principal="demo")


def document() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(JOURNEYS_FILE.read_text(encoding="utf-8"))
    return data


class JourneyDemo:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.started = False
        self.seconds = 0.0  # time spent on journeys, reported by the demo
        bootstrap.configure()
        self.consumer = next(c for c in consumers.registered() if c.name == "journeys")

    def publish(self, console: Console | None = None) -> None:
        """Publish the standard journeys; the consumer starts at the stream's head."""
        doc = document()
        try:
            self.db.run(lambda s: journeys.publish(s, ADMIN, doc, "标准旅程"))
        except DocumentInvalid as exc:
            # An action's parameters that another version of it does not accept (e.g. a
            # coupon action with other fields): keep the rest of the demo going.
            if not exc.errors or any(".params" not in e.field for e in exc.errors):
                raise
            bad = {e.field.split(".params")[0] for e in exc.errors}
            for path in bad:
                _, n, _, i = path.split(".")
                step = doc["journeys"][int(n)]["steps"][int(i)]
                step.update(action="add_tag", params={"tag": f"{step['action']}_pending"})
            if console is not None:
                console.print(f"[yellow]journeys: steps {sorted(bad)} replaced (parameters)[/]")
            self.db.run(lambda s: journeys.publish(s, ADMIN, doc, "标准旅程"))

        def head(s: Session) -> None:
            events.assign_positions(s)
            cp = consumers.lock_checkpoint(s, self.consumer.name)
            assert cp is not None
            cp.position = consumers.stream_head(s)

        self.db.run(head)
        self.started = True

    def morning(self, at: datetime) -> None:
        """The daily triggers (birthdays, segments, N days without an order)."""
        t = monotonic()
        clock.freeze(at)
        self.db.run(lambda s: journeys.daily(s, at))
        queue.run_until_empty(self.db, "demo")
        self.seconds += monotonic() - t

    def evening(self, day_start: datetime, day_end: datetime) -> None:
        """The day's events through the consumer at the end of the day, then the jobs of
        the day's due jobs, each at the time it is due."""
        t = monotonic()
        clock.freeze(day_end)
        self.db.run(events.assign_positions)
        while self.db.run(lambda s: consumers.run_batch(s, self.consumer, limit=500)):
            pass
        while True:  # each due job at its own time, as a worker would run it
            with self.db.transaction() as s:
                due = s.scalar(
                    select(func.min(Job.run_at)).where(
                        Job.state.in_(["queued", "failed"]), Job.run_at <= day_end
                    )
                )
            if due is None:
                break
            clock.freeze(max(as_utc(due), day_start))
            queue.run_until_empty(self.db, "demo")
        self.seconds += monotonic() - t


def report(db: Database, console: Console) -> None:
    """One line per journey: runs, and what its steps did."""
    with db.transaction() as s:
        runs = {
            str(k): int(n)
            for k, n in s.execute(
                select(JourneyRun.journey_key, func.count()).group_by(JourneyRun.journey_key)
            )
        }
        outcomes: dict[str, dict[str, int]] = {}
        for key, outcome, n in s.execute(
            select(JourneyStep.journey_key, JourneyStep.outcome, func.count()).group_by(
                JourneyStep.journey_key, JourneyStep.outcome
            )
        ):
            outcomes.setdefault(key, {})[outcome] = int(n)
    for key in sorted(runs):
        detail = ", ".join(f"{o} {n}" for o, n in sorted(outcomes.get(key, {}).items()))
        console.print(f"journey {key}: {runs[key]} runs ({detail})")


def start_day(end: datetime, start: datetime) -> datetime:
    """When the journeys are published: 21 days before the end, or a week in."""
    return max(end - timedelta(days=DAYS), start + timedelta(days=7))
