"""PostgreSQL (branch races): what a writer holding an account's lock changes while another
transaction waits for that lock reaches the waiter. Bulk import's set-based writer
(``order.service.record_many``) reads the batch's members before ``ledger.lock_for_bulk``
waits for their accounts' locks; it reads their tier and status again under the locks (a
member merged meanwhile goes the ``record`` way, which answers the survivor). The
one-by-one order path follows a chain of merges committed while it waits (A into B, then
B into C: the order lands on C). SQLite: the transaction holds the write lock from its
start, nothing changes while it waits (the race tests are skipped there). Found on the way,
on both databases: the bulk writer took an order of a member merged before the batch
began for the merged member too; it goes the ``record`` way as well."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import text
from tests.integration.order.test_locked_reads import a_merge, post
from tests.itest import new_member, rows
from tests.support import order_payload

from loyalist.kit.actor import SYSTEM, Actor
from loyalist.ledger import service as ledger
from loyalist.merge import service as merges
from loyalist.order import service as orders
from loyalist.order.schemas import OrderCreate

ACTOR = Actor(name="test:import", scope_path="/", principal="test:import")
# 03:00 UTC on Wednesday 10 June 2026 (a member day: double points), an hour before the
# members join at the tests' frozen clock (04:00 UTC): the set-based writer's own case
BEFORE_JOINING = "2026-06-10T11:00:00+08:00"
NOW = "2026-06-10T12:00:00+08:00"


def postgres_only(world: Any) -> None:
    if world.db.dialect != "postgresql":
        pytest.skip("SQLite: the transaction holds the write lock from its start")


WAITING = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def waiting(world: Any) -> int:
    """This database's backends waiting for a lock (a row lock: the other databases of
    the machine, other tests', not counted)."""
    with world.db.engine.connect() as conn:
        return int(conn.execute(text(WAITING)).scalar() or 0)


PATIENCE = 120  # seconds: the machine may be busy (the tests wait for each other's locks)


def until_waiting(world: Any, n: int) -> None:
    deadline = time.monotonic() + PATIENCE
    while waiting(world) < n:
        assert time.monotonic() < deadline, f"never {n} transactions waiting for a lock"
        time.sleep(0.05)


def _import(world: Any, body: dict[str, Any]) -> list[bool]:
    with world.db.transaction() as s:
        return orders.record_many(s, ACTOR, [OrderCreate.model_validate(body)])


def import_while_locked(world: Any, body: dict[str, Any], change: Any) -> list[bool]:
    """Import ``body`` (a batch of one) while another transaction, holding the account's
    lock, runs ``change(session)``; commit it once the import waits for the lock."""
    answers: list[list[bool]] = []
    waiter = threading.Thread(target=lambda: answers.append(_import(world, body)))
    with world.db.transaction() as other:
        change(other)
        waiter.start()
        until_waiting(world, 1)
    waiter.join(PATIENCE)
    assert answers, "the import did not answer"
    return answers[0]


def earned_entries(world: Any) -> list[dict[str, Any]]:
    return rows(
        world.db,
        "SELECT account_id, member_id, delta_pending + delta_available AS points "
        "FROM ledger_entry WHERE kind = 'earn' ORDER BY id",
    )


def verified(world: Any) -> list[Any]:
    with world.db.transaction() as s:
        _checked, problems = ledger.verify(s)
    return list(problems)


def test_a_batch_that_waited_behind_a_tier_upgrade_does_not_record_it_again(
    client: Any, world: Any
) -> None:
    """An order of ¥1,000 upgrades a base member to silver holding the account lock while
    an import of another ¥1,000 order of theirs (dated before they joined) waits for it.
    The import reads the member's tier again under the lock: silver already, no second
    upgrade (before: the tier read before the wait, base, so the import's upgrade check
    recorded base -> silver a second time, with a second tier.changed event)."""
    postgres_only(world)
    mid = new_member(client, "13800000101")

    def first_order(s: Any) -> None:
        ledger.lock(s, mid, "/")  # held until the order commits
        body = order_payload("first", mid, paid=100_000, occurred_at=NOW)
        orders.record(s, SYSTEM, OrderCreate.model_validate(body))

    body = order_payload("imported", mid, paid=100_000, occurred_at=BEFORE_JOINING)
    assert import_while_locked(world, body, first_order) == [True]
    imported = rows(world.db, "SELECT points_earned FROM orders WHERE external_id = 'imported'")
    assert imported == [{"points_earned": 2_000}]  # base at its date: 1,000 × 2 (member day)
    changes = rows(
        world.db,
        f"SELECT from_tier, to_tier FROM tier_change WHERE member_id = {mid} "
        "AND reason = 'upgrade'",
    )
    assert changes == [{"from_tier": "base", "to_tier": "silver"}]
    upgraded = rows(
        world.db, f"SELECT id FROM outbox_event WHERE type = 'tier.changed' AND member_id = {mid}"
    )
    assert len(upgraded) == 1
    assert rows(world.db, f"SELECT tier_code FROM member WHERE id = {mid}") == [
        {"tier_code": "silver"}
    ]
    assert verified(world) == []


def test_an_imported_order_of_a_member_merged_while_the_batch_waited_goes_to_the_survivor(
    client: Any, world: Any
) -> None:
    """A merge marks the member merged holding both accounts' locks while an import of an
    order of the member waits for the member's account lock. The import reads the status
    again under the lock: the order goes the ``record`` way, which answers the survivor,
    and earns in the survivor's account (before: recorded for the merged member and
    credited to the merged member's own account, left behind by the merge)."""
    postgres_only(world)
    survivor, merged, own, merge = a_merge(client, world, "13800000102", "13800000103")
    body = order_payload("imported", merged, occurred_at=BEFORE_JOINING)
    assert import_while_locked(world, body, merge) == [True]
    (order,) = rows(
        world.db, "SELECT member_id, points_earned FROM orders WHERE external_id = 'imported'"
    )
    assert order["member_id"] == survivor
    assert order["points_earned"] == 200  # ¥100 × 2 (member day), base
    assert earned_entries(world) == [{"account_id": own, "member_id": survivor, "points": 200}]
    assert verified(world) == []


def test_an_order_that_waited_behind_a_chain_of_merges_goes_to_the_last_survivor(
    client: Any, world: Any
) -> None:
    """A is merged into B holding both accounts' locks while an order naming A by phone
    waits for A's lock, and a second transaction waits for B's lock to merge B into C. When
    the first commits, the order finds A merged and asks again: B, whose lock the second
    transaction holds; it then merges B into C and commits. The order reads B again under
    its lock, finds it merged too, and asks again: C, where it earns (before: one merge
    only was followed; the order was recorded for B, merged, on B's account)."""
    postgres_only(world)
    a = new_member(client, "13800000104")
    b = new_member(client, "13800000105")
    c = new_member(client, "13800000106")
    with world.db.transaction() as s:
        own_c = ledger.account_id_of(s, c)
    holding, go = threading.Event(), threading.Event()

    def merge_b_into_c() -> None:
        with world.db.transaction() as s:
            ledger.lock(s, b, "/")  # waits for the first merge
            holding.set()
            assert go.wait(PATIENCE)
            merges.merge(s, SYSTEM, c, b)

    body = order_payload("late", None)
    body["member_identity"] = {"kind": "phone", "value": "13800000104"}
    answers: list[Any] = []
    second = threading.Thread(target=merge_b_into_c)
    order = threading.Thread(target=lambda: answers.append(post(client, body, "k-chain")))
    with world.db.transaction() as first:
        merges.merge(first, SYSTEM, b, a)
        second.start()
        until_waiting(world, 1)
        order.start()
        until_waiting(world, 2)
    assert holding.wait(PATIENCE)
    until_waiting(world, 1)  # the order, for B's lock
    go.set()
    second.join(PATIENCE)
    order.join(PATIENCE)
    assert answers, "the order did not answer"
    r = answers[0]
    assert r.status_code == 201, r.text
    assert r.json()["member_id"] == c
    earned = r.json()["points"]["earned"]
    assert earned > 0
    assert earned_entries(world) == [{"account_id": own_c, "member_id": c, "points": earned}]
    assert verified(world) == []


def test_an_imported_order_of_a_member_merged_before_goes_to_the_survivor(
    client: Any, world: Any
) -> None:
    """Both databases, no race: an order naming a member merged before the batch began
    (bulk import resolves the file's ``member`` by external id, which the merged member
    keeps) goes the ``record`` way, which answers the survivor, and earns in the
    survivor's account (before: the set-based writer recorded it for the merged member,
    credited to the merged member's own account)."""
    survivor, merged, own, merge = a_merge(client, world, "13800000107", "13800000108")
    with world.db.transaction() as s:
        merge(s)
    body = order_payload("imported", merged, occurred_at=BEFORE_JOINING)
    assert _import(world, body) == [True]
    (order,) = rows(
        world.db, "SELECT member_id, points_earned FROM orders WHERE external_id = 'imported'"
    )
    assert order == {"member_id": survivor, "points_earned": 200}
    assert earned_entries(world) == [{"account_id": own, "member_id": survivor, "points": 200}]
    assert verified(world) == []
