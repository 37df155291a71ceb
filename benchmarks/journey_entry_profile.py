"""Statements and time per member entered by the ``journeys`` consumer, in process.

Builds the test world (org, demo programme) in ``loyalist_journey_prof`` (or ``--url``),
publishes one event-triggered journey (``member.created`` → add a tag), creates
``--members`` members, then runs the ``journeys`` consumer's batches until the stream is
drained, counting every SQL statement (a ``before_cursor_execute`` listener) and the wall
and CPU time. Prints statements per member (by kind) and ms per member; with
``--pyinstrument FILE`` an HTML profile of the consumer part; with ``--wait`` the journey
waits a minute after the tag and tags again, and the wake jobs that move the runs on are
timed and counted the same way (the step runner: one job per waiting run).

Usage: .venv/bin/python benchmarks/journey_entry_profile.py [--members 1000] [--show] [--wait]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, func, select, text  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/loyalist_journey_prof"

JOURNEY = {
    "key": "crowd",
    "name": "crowd",
    "marketing": False,
    "entry": {"event": "member.created"},
    "steps": [{"id": "tag", "type": "action", "action": "add_tag", "params": {"tag": "crowd"}}],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=DEFAULT_URL)
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--show", action="store_true", help="print the statements of one batch")
    ap.add_argument("--pyinstrument", default="")
    ap.add_argument(
        "--wait",
        action="store_true",
        help="the journey waits a minute after the tag, then tags again: also time the wake jobs",
    )
    args = ap.parse_args()

    from tests.support import build_world

    from loyalist import bootstrap
    from loyalist.events import consumers
    from loyalist.events import service as events
    from loyalist.jobs import queue
    from loyalist.journey import service as journeys
    from loyalist.kit.actor import SYSTEM
    from loyalist.kit.clock import clock
    from loyalist.kit.db import Base, Database
    from loyalist.kit.migrate import upgrade
    from loyalist.member import service as members
    from loyalist.member.schemas import MemberCreate
    from loyalist.models import JourneyStep

    db = Database(args.url)
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(args.url)
    del Base
    bootstrap.configure()
    build_world(db)
    with db.transaction() as s:
        journey = dict(JOURNEY)
        if args.wait:
            journey["steps"] = [
                *JOURNEY["steps"],  # type: ignore[misc]
                {"id": "minute", "type": "wait", "duration": {"minutes": 1}},
                {"id": "again", "type": "action", "action": "add_tag", "params": {"tag": "again"}},
            ]
        journeys.publish(s, SYSTEM, {"journeys": [journey]}, "profile")
    for chunk in range(0, args.members, 50):
        with db.transaction() as s:
            for i in range(chunk, min(chunk + 50, args.members)):
                members.create(s, SYSTEM, MemberCreate(phone=f"1380000{i:04d}"))
    events.sequence_pending(db)
    c = next(x for x in consumers.registered() if x.name == "journeys")

    statements: list[str] = []
    on = [False]

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if on[0]:
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    profiler = None
    if args.pyinstrument:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    on[0] = True
    wall, cpu = time.perf_counter(), time.process_time()
    batches = 0
    first_batch = 0
    while True:
        n = db.run(lambda s: consumers.run_batch(s, c))
        batches += 1
        if batches == 1:
            first_batch = len(statements)
        if not n:
            break
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    on[0] = False
    if profiler is not None:
        profiler.stop()
        Path(args.pyinstrument).write_text(profiler.output_html())
        print(profiler.output_text(show_all=False, color=False))
    with db.engine.connect() as conn:
        steps = conn.execute(select(func.count()).select_from(JourneyStep)).scalar_one()
    n = args.members
    kinds = collections.Counter(s.lstrip().split(None, 1)[0].upper() for s in statements)
    print(f"members {n}, steps {steps}, batches {batches}, statements {len(statements)}")
    print("per member: " + ", ".join(f"{k} {v / n:.2f}" for k, v in kinds.most_common()))
    print(f"wall {wall:.2f}s ({wall / n * 1000:.2f} ms/member), cpu {cpu:.2f}s")
    if args.wait:
        clock.advance(timedelta(minutes=2))
        statements.clear()
        on[0] = True
        wall, cpu = time.perf_counter(), time.process_time()
        jobs = queue.run_until_empty(db)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        on[0] = False
        kinds = collections.Counter(s.lstrip().split(None, 1)[0].upper() for s in statements)
        print(f"wake jobs {jobs}, statements {len(statements)}")
        print("per member: " + ", ".join(f"{k} {v / n:.2f}" for k, v in kinds.most_common()))
        print(f"wall {wall:.2f}s ({wall / n * 1000:.2f} ms/member), cpu {cpu:.2f}s")
    if args.show:
        shown = collections.Counter(" ".join(s.split())[:160] for s in statements[:first_batch])
        for stmt, k in shown.most_common(40):
            print(f"{k:6d}  {stmt}")
    db.dispose()


if __name__ == "__main__":
    main()
