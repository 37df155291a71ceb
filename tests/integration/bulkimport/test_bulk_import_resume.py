"""A bulk import killed with SIGKILL mid-file resumes to the same final state as an import
that was never interrupted (SQLite and PostgreSQL: run the file under both backends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.itest import counts, rows
from tests.support import build_world, fresh_database

from loyalist.bulkimport import runner
from loyalist.kit.actor import Actor
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger

ROOT = Path(__file__).parents[3]
ACTOR = Actor(name="test:import", scope_path="/", principal="test:import")
MEMBERS = "external_id,phone\n" + "".join(f"C{i:03d},138001380{i:02d}\n" for i in range(1, 5))
ORDERS = "external_id,member,store,occurred_at,amount_paid_minor,channel\n" + "".join(
    f"O-{i:02d},C{i % 4 + 1:03d},sh{i % 2 + 1},2026-06-0{i % 9 + 1}T10:00:00+08:00,"
    f"{1000 + 37 * i},{'app' if i % 3 == 0 else 'pos'}\n"
    for i in range(1, 21)
)

# Writes the orders file 2 rows per transaction, slowly, printing each committed batch.
_SLOW = """
import sys, time
from datetime import datetime
from loyalist.bulkimport import runner, service
from loyalist.kit.actor import Actor
from loyalist.kit.clock import clock
from loyalist.kit.db import Database
clock.freeze(datetime.fromisoformat(sys.argv[2]))
real = service.write_rows
def slow(session, actor, batch, rows):
    real(session, actor, batch, rows)
    time.sleep(0.2)  # inside the transaction: a kill lands before its commit
service.write_rows = slow
def progress(done, total):
    print("batch", done, flush=True)
actor = Actor(name="test:import", scope_path="/", principal="test:import")
data = open(sys.argv[3], "rb").read()
runner.run(Database(sys.argv[1]), actor, "orders", data, "orders.csv", batch_rows=2,
           progress=progress, processes=int(sys.argv[4]))
print("finished", flush=True)
"""


def _state(db: Database) -> dict[str, Any]:
    with db.transaction() as s:
        _n, problems = ledger.verify(s)
    assert problems == []
    return {
        "members": rows(
            db,
            "SELECT m.external_id, a.available, a.pending, a.lifetime_earned, a.chain_seq,"
            " m.tier_code FROM member m JOIN points_account a ON a.owner_member_id = m.id"
            " ORDER BY m.external_id",
        ),
        "orders": rows(
            db,
            "SELECT o.external_id, m.external_id AS member, o.points_earned"
            " FROM orders o JOIN member m ON m.id = o.member_id ORDER BY o.external_id",
        ),
        "batch": rows(
            db,
            "SELECT status, total_rows, cursor, created, unchanged FROM import_batch"
            " WHERE kind = 'orders'",
        ),
        "counts": counts(
            db, ["orders", "order_line", "ledger_entry", "points_lot", "audit_log", "outbox_event"]
        ),
    }


def test_a_killed_import_resumes_to_the_state_of_an_uninterrupted_one(
    world: Any, clock: Any, tmp_path: Path, _template: str
) -> None:
    db = world.db
    assert runner.run(db, ACTOR, "members", MEMBERS.encode(), "m.csv").status == "done"
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW, db.url, clock.now().isoformat(), str(path), "1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the import process ended early: " + "".join(seen)
        seen.append(line)
        if line.startswith("batch 6"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    (partial,) = rows(db, "SELECT status, cursor FROM import_batch WHERE kind = 'orders'")
    assert partial["status"] == "running" and 6 <= partial["cursor"] < 20
    assert counts(db, ["orders"])["orders"] == partial["cursor"]  # whole batches only

    resumed = runner.run(db, ACTOR, "orders", ORDERS.encode(), "orders.csv", batch_rows=2)
    assert resumed.status == "done"
    assert resumed.written_now == 20 - partial["cursor"]
    after_kill = _state(db)
    assert after_kill["batch"] == [
        {"status": "done", "total_rows": 20, "cursor": 20, "created": 20, "unchanged": 0}
    ]

    # the same files into a fresh database, never interrupted
    url = fresh_database(_template, tmp_path / "clean.db")
    clean = Database(url)
    try:
        build_world(clean)
        runner.run(clean, ACTOR, "members", MEMBERS.encode(), "m.csv")
        runner.run(clean, ACTOR, "orders", ORDERS.encode(), "orders.csv", batch_rows=2)
        assert _state(clean) == after_kill
    finally:
        clean.dispose()


def test_a_killed_import_in_two_processes_resumes_to_the_state_of_an_uninterrupted_one(
    world: Any, clock: Any, tmp_path: Path, _template: str
) -> None:
    """``--processes 2``: the importing process and its writers all SIGKILLed mid-file;
    the re-run (two processes again) resumes each part where it stopped and ends in the
    state of a one-process import that was never interrupted."""
    db = world.db
    assert runner.run(db, ACTOR, "members", MEMBERS.encode(), "m.csv").status == "done"
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW, db.url, clock.now().isoformat(), str(path), "2"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the writers die with it
    )
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the import process ended early: " + "".join(seen)
        seen.append(line)
        if line.startswith("batch ") and int(line.split()[1]) >= 6:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.5)
    parts = rows(
        db,
        "SELECT status, total_rows, cursor FROM import_batch WHERE kind = 'orders'"
        " AND filename LIKE '%(part %' ORDER BY id",
    )
    assert len(parts) == 2 and sum(p["total_rows"] for p in parts) == 20
    done = sum(p["cursor"] for p in parts)
    assert 6 <= done < 20
    assert counts(db, ["orders"])["orders"] == done  # whole batches only
    (parent,) = rows(
        db,
        "SELECT status, cursor FROM import_batch WHERE kind = 'orders'"
        " AND filename NOT LIKE '%(part %'",
    )
    assert parent == {"status": "running", "cursor": 0}

    resumed = runner.run(
        db, ACTOR, "orders", ORDERS.encode(), "orders.csv", batch_rows=2, processes=2
    )
    assert resumed.status == "done"
    assert resumed.written_now == 20 - done
    assert (resumed.created, resumed.unchanged) == (20, 0)
    after_kill = _state(db)
    again = runner.run(
        db, ACTOR, "orders", ORDERS.encode(), "orders.csv", batch_rows=2, processes=2
    )
    assert again.status == "already_done"
    assert _state(db) == after_kill

    url = fresh_database(_template, tmp_path / "clean.db")
    clean = Database(url)
    try:
        build_world(clean)
        runner.run(clean, ACTOR, "members", MEMBERS.encode(), "m.csv")
        runner.run(clean, ACTOR, "orders", ORDERS.encode(), "orders.csv", batch_rows=2)
        expected = _state(clean)
    finally:
        clean.dispose()
    for key in ("members", "orders"):
        assert after_kill[key] == expected[key]
    # the same rows written; the audit trail has a start and a finish row per part besides
    # the file's
    same = ["orders", "order_line", "ledger_entry", "points_lot", "outbox_event"]
    assert {t: after_kill["counts"][t] for t in same} == {t: expected["counts"][t] for t in same}
    assert after_kill["counts"]["audit_log"] == expected["counts"]["audit_log"] + 4


def test_more_processes_than_accounts_imports_like_one(world: Any, tmp_path: Path) -> None:
    """Eight processes for four members' orders: the empty parts are done at once; the
    result is the one-process import's, and a re-run with one process changes nothing."""
    db = world.db
    assert runner.run(db, ACTOR, "members", MEMBERS.encode(), "m.csv").status == "done"
    out = runner.run(db, ACTOR, "orders", ORDERS.encode(), "orders.csv", processes=8)
    assert (out.status, out.created, out.unchanged, out.written_now) == ("done", 20, 0, 20)
    state = _state(db)
    batches = rows(
        db,
        "SELECT status, total_rows, cursor, created FROM import_batch WHERE kind = 'orders'"
        " ORDER BY id",
    )
    assert batches[0] == {"status": "done", "total_rows": 20, "cursor": 20, "created": 20}
    assert len(batches) == 9  # the file's and its eight parts, all done
    assert all(b["status"] == "done" and b["cursor"] == b["total_rows"] for b in batches)
    assert sum(b["total_rows"] for b in batches[1:]) == 20
    assert sum(b["created"] for b in batches[1:]) == 20
    again = runner.run(db, ACTOR, "orders", ORDERS.encode(), "orders.csv")
    assert again.status == "already_done"
    assert _state(db) == state
