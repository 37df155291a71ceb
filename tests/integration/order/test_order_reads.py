"""An order reads only what its programme needs (speed, issue 11): the day's and lifetime
earnings when a cap uses them, the member's passes when the programme sells any; and what
it skips changes nothing it answers. The account's due lots are looked for on every order
(within the read that locks the account; the lots themselves are read only when one is
due), so an answer never counts points that are past their expiry."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from tests.itest import apply_document, demo_document, new_member
from tests.support import order_payload, recorded_statements

from loyalist.kit.clock import clock
from loyalist.ledger import service as ledger

DAY_SUM = "sum(orders.points_earned)"  # the day's earnings (caps.per_day)
SHARED = "FROM points_account_member WHERE points_account_member.role"  # lifetime (per_member)
PASSES = "FROM member_pass"
DUE_LOTS = "points_lot.expires_at <="  # whether any is due (the locking read), expire_due
LOCK = "FROM org_unit JOIN member"  # the store, the member and the account lock: one read
EXPIRE_DUE = "ORDER BY points_lot.expires_at, points_lot.id"  # expire_due's own SELECT


def reads(seen: list[str], marker: str) -> int:
    """How many statements contain ``marker`` (their whitespace folded to single blanks)."""
    return sum(1 for s in seen if marker in " ".join(s.split()))


def programme(caps: dict[str, int]) -> dict[str, Any]:
    doc = demo_document()
    doc["points"]["pending_days"] = 0  # available at once: the due-lot check could apply
    doc["earning"]["campaigns"] = []
    doc["earning"]["rules"] = []
    doc["earning"]["caps"] = caps
    doc.pop("passes", None)  # a programme that sells no pass (the demo sells one)
    return doc


def buy(client: Any, external_id: str, member_id: int, paid: int, **kw: Any) -> dict[str, Any]:
    r = client.post("/v1/orders", json=order_payload(external_id, member_id, paid=paid, **kw))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_an_order_without_caps_or_passes_skips_those_reads(world: Any, client: Any) -> None:
    apply_document(world.db, programme({}))
    mid = new_member(client, "13800000101")
    buy(client, "warm", mid, 1_000)
    with recorded_statements(world.db.engine) as seen:
        body = buy(client, "o-1", mid, 2_500)
    assert body["points"]["earned"] == 25
    assert [reads(seen, m) for m in (DAY_SUM, SHARED, PASSES, DUE_LOTS)] == [0, 0, 0, 1]
    assert [reads(seen, m) for m in (LOCK, EXPIRE_DUE)] == [1, 0]  # nothing was due


def test_caps_are_still_read_and_applied_when_the_programme_has_them(
    world: Any, client: Any
) -> None:
    apply_document(world.db, programme({"per_day": 40, "per_member": 60}))
    mid = new_member(client, "13800000102")
    with recorded_statements(world.db.engine) as seen:
        first = buy(client, "o-1", mid, 3_000)
    assert [reads(seen, m) for m in (DAY_SUM, SHARED, PASSES)] == [1, 1, 0]
    assert first["points"]["earned"] == 30
    assert buy(client, "o-2", mid, 3_000)["points"]["earned"] == 10  # 40 a day
    day_before = "2026-06-09T11:00:00+08:00"
    assert buy(client, "o-3", mid, 3_000, occurred_at=day_before)["points"]["earned"] == 20


def test_every_order_expires_the_accounts_due_lots(world: Any, client: Any) -> None:
    apply_document(world.db, programme({}))
    mid = new_member(client, "13800000103")
    with recorded_statements(world.db.engine) as seen:
        fresh = buy(client, "fresh", mid, 1_000)
    assert [reads(seen, m) for m in (DUE_LOTS, LOCK, EXPIRE_DUE)] == [1, 1, 0]
    assert (fresh["points"]["status"], fresh["points"]["open"]) == ("available", 10)
    # earned 2024: expired at the end of 2025 (the clock reads 2026-06-10): the order's own
    # lot, which the locking read could not see, is expired without reading the lots
    with recorded_statements(world.db.engine) as seen:
        gone = buy(client, "gone", mid, 1_000, occurred_at="2024-06-03T10:00:00+08:00")
    assert [reads(seen, m) for m in (DUE_LOTS, LOCK, EXPIRE_DUE)] == [1, 1, 0]
    assert (gone["points"]["status"], gone["points"]["open"], gone["points"]["expired"]) == (
        "expired",
        0,
        10,
    )
    p = client.get(f"/v1/members/{mid}").json()["points"]
    assert (p["available"], p["pending"]) == (10, 0)
    # "fresh" (earned 2026-06) expires at the end of 2027: past it, with no expiry job run,
    # the next order expires it before it answers
    clock.freeze(datetime(2028, 1, 2, 12, tzinfo=UTC))
    with recorded_statements(world.db.engine) as seen:
        later = buy(client, "later", mid, 700, occurred_at="2028-01-02T10:00:00+08:00")
    assert [reads(seen, m) for m in (DUE_LOTS, LOCK, EXPIRE_DUE)] == [2, 1, 1]  # one was due
    assert (later["points"]["status"], later["points"]["open"]) == ("available", 7)
    p = client.get(f"/v1/members/{mid}").json()["points"]
    assert (p["available"], p["pending"]) == (7, 0)


def test_an_order_that_waited_for_the_lock_looks_at_the_lots_again(world: Any, client: Any) -> None:
    """PostgreSQL: the locking read sees the lots as they were before it waited for the
    account's lock. A transaction that held the lock and left a lot past its expiry (here
    an adjustment dated 2024) changed the account row: the order then reads the lots again
    and expires that one before it answers."""
    if world.db.dialect != "postgresql":
        pytest.skip("SQLite: the transaction holds the write lock from its start")
    apply_document(world.db, programme({}))
    mid = new_member(client, "13800000104")
    buy(client, "first", mid, 1_000)  # 10 points, available, expiring at the end of 2027
    past = datetime(2024, 6, 3, 2, tzinfo=UTC)
    answers: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: answers.append(buy(client, "waits", mid, 500)))
    with recorded_statements(world.db.engine) as seen:
        with world.db.transaction() as other:
            acct = ledger.lock(other, mid, "/")
            ledger.credit(
                other,
                acct,
                5,
                ledger.Cause(source_type="test", actor="test", reason="overdue"),
                kind="adjust",
                earned_at=past,
                available_at=past,
                expires_at=past,
                counts_as_earned=False,
            )
            waiter.start()
            deadline = time.monotonic() + 30
            while not _waiting_for_a_lock(world):  # the order's locking read is waiting
                assert time.monotonic() < deadline, "the order never waited for the lock"
                time.sleep(0.05)
        waiter.join(30)
    assert answers and answers[0]["points"]["earned"] == 5
    assert reads(seen, EXPIRE_DUE) == 1
    p = client.get(f"/v1/members/{mid}").json()["points"]
    assert (p["available"], p["pending"]) == (15, 0)  # 10 + 5; the overdue 5 expired


def _waiting_for_a_lock(world: Any) -> bool:
    with world.db.engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar()
    return bool(n)
