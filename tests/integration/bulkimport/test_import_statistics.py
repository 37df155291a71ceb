"""An orders import refreshes PostgreSQL's planner statistics as the tables it fills grow
(issue 13 item 5): after ``ANALYZE_FIRST`` rows written by a process and at each doubling.
Without it, on a database whose statistics date from nearly empty tables (autovacuum off or
not yet round), the batch reads were planned for a few rows and a 1M-row import slowed from
2,800 to 520 rows/s. SQLite is left alone."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support import recorded_statements

from loyalist.bulkimport import runner, service
from loyalist.kit.actor import Actor
from loyalist.kit.db import Database, is_sqlite

ACTOR = Actor(name="test:import", scope_path="/", principal="test:import")
MEMBERS = "external_id,phone,name,home_store\nS001,13800139001,赵六,sh1\n"
HEADER = "external_id,member,store,occurred_at,amount_paid_minor,channel,category\n"


def orders(n: int) -> bytes:
    rows = [
        f"ST-{i},S001,sh1,2026-06-0{1 + i % 8}T10:00:00+08:00,1000,pos,coffee" for i in range(n)
    ]
    return (HEADER + "\n".join(rows) + "\n").encode()


def test_a_growing_import_refreshes_statistics_at_each_doubling(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db: Database = world.db
    assert runner.run(db, ACTOR, "members", MEMBERS.encode(), "m.csv").status == "done"
    monkeypatch.setattr(runner, "ANALYZE_FIRST", 2)
    calls: list[int] = []
    real = service.refresh_statistics

    def counted(session: Any) -> None:
        calls.append(1)
        real(session)

    monkeypatch.setattr(service, "refresh_statistics", counted)
    with recorded_statements(db.engine) as sent:
        out = runner.run(db, ACTOR, "orders", orders(9), "o.csv", batch_rows=1)
    seen = [s for s in sent if s.startswith("ANALYZE")]
    assert (out.status, out.created) == ("done", 9)
    assert len(calls) == 3  # after 2, 4 and 8 rows (next would be 16)
    with db.transaction() as s:
        sqlite = is_sqlite(s)
    if sqlite:
        assert seen == []
    else:
        assert seen == ["ANALYZE orders, order_line, ledger_entry, points_lot, outbox_event"] * 3
    # a re-run writes nothing, so it has nothing to refresh
    calls.clear()
    again = runner.run(db, ACTOR, "orders", orders(9), "o.csv", batch_rows=1)
    assert (again.status, again.created, calls) == ("already_done", 9, [])
