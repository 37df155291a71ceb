"""What an order reads under its member's account lock — the membership, an order already
recorded with its external id, the tier change at its date, the day's earnings, the passes
held, the spend its instant tier upgrade check starts from — is read in one go (speed,
issue 11, branch fewreads): SQLite within the statement that reads the store and the member
and locks the account; PostgreSQL in one statement right after it (the locking statement's
snapshot predates its wait for the lock). Whatever that read does not settle is asked
again as before: a replay reads its order, a member who moved to another account is locked
where they are now."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from tests.integration.order.test_earn_floor import bench_basket
from tests.itest import new_member, rows
from tests.support import order_payload, recorded_statements

from loyalist.kit.actor import SYSTEM
from loyalist.ledger import service as ledger
from loyalist.merge import service as merges
from loyalist.models import TierChange
from loyalist.order import service as orders
from loyalist.order.schemas import OrderCreate

LOCK = "FROM org_unit JOIN member"  # the locking statement
MEMBERSHIP = "FROM points_account_member WHERE points_account_member.member_id"
BY_EXTERNAL_ID = "WHERE orders.store_id"  # the replay check (_existing)
TIER_HISTORY = "FROM tier_change"
DAY_SUM = "sum(orders.points_earned)"
PASSES = "FROM member_pass"
SPEND = "sum(orders.qualifying_minor - orders.qualifying_refunded_minor)"


def folded(statement: str) -> str:
    return " ".join(statement.split())


def selects(seen: list[str]) -> list[str]:
    """The SELECTs issued (PostgreSQL's advisory lock of the stream positions left out)."""
    return [
        s
        for s in map(folded, seen)
        if s.upper().startswith("SELECT") and "pg_advisory_xact_lock" not in s
    ]


def post(client: Any, body: dict[str, Any], key: str) -> Any:
    return client.post("/v1/orders", json=body, headers={"Idempotency-Key": key})


def test_the_bench_basket_reads_what_it_needs_with_the_lock(
    client: Any, world: Any, clock: Any
) -> None:
    """The bench basket under the demo programme (a per-day cap, a pass sold; the order
    dated before the member joined, so the tier history is consulted): the API key, the
    programme, the locking statement, (PostgreSQL: the read after the lock). Before: nine
    SELECTs on both databases."""
    mid = new_member(client, "13800000001")
    assert post(client, bench_basket(mid, "warm"), "k-warm").status_code == 201
    clock.advance(timedelta(minutes=1))
    with recorded_statements(world.db.engine) as seen:
        r = post(client, bench_basket(mid, "o-1"), "k-1")
    assert r.status_code == 201, r.text
    assert r.json()["points"]["earned"] > 0
    reads = selects(seen)
    postgres = world.db.dialect == "postgresql"
    assert len(reads) == (4 if postgres else 3), "\n".join(s[:120] for s in reads)
    (lock,) = [s for s in reads if LOCK in s]
    after = [s for s in reads if s.startswith("SELECT (SELECT points_account_member")]
    assert len(after) == (1 if postgres else 0)
    one_go = after[0] if postgres else lock
    for marker in (MEMBERSHIP, BY_EXTERNAL_ID, TIER_HISTORY, DAY_SUM, PASSES, SPEND):
        found = [s for s in reads if marker in s]
        assert one_go in found, marker
        # the locking statement's join reads the membership too (which account to lock)
        assert set(found) <= {lock, one_go}, marker


def test_a_replay_reads_its_order_and_answers_as_before(client: Any, world: Any) -> None:
    """The read under the lock finds the external id taken: the order is read (the
    replay's one extra statement), same content answers it, other content conflicts."""
    mid = new_member(client, "13800000002")
    body = bench_basket(mid, "dup")
    first = post(client, body, "k-1")
    assert first.status_code == 201, first.text
    with recorded_statements(world.db.engine) as seen:
        again = post(client, body, "k-2")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert [s for s in selects(seen) if s.startswith("SELECT orders.id, orders.external_id")]
    other = post(client, {**body, "amount_paid_minor": body["amount_paid_minor"] - 100}, "k-3")
    assert other.status_code == 409, other.text
    assert other.json()["errors"][0]["code"] == "duplicate"
    assert len(rows(world.db, "SELECT id FROM orders WHERE external_id = 'dup'")) == 1


def tier_of(world: Any, member_id: int) -> str:
    (m,) = rows(world.db, f"SELECT tier_code FROM member WHERE id = {member_id}")
    return str(m["tier_code"])


def test_the_upgrade_check_adds_the_order_only_when_its_window_counts_it(
    client: Any, world: Any
) -> None:
    """The spend read with the lock does not hold the order being recorded: the upgrade
    check adds it, but only when the window ending now counts it, as the read after the
    insert did. Silver needs ¥1,000 in the last 12 months; an order dated 5 minutes ahead
    (within the clock skew allowed) is not in the window yet."""
    mid = new_member(client, "13800000006")
    assert post(client, order_payload("a", mid, paid=60_000), "k-a").status_code == 201
    ahead = order_payload("b", mid, paid=50_000, occurred_at="2026-06-10T12:05:00+08:00")
    assert post(client, ahead, "k-b").status_code == 201
    assert tier_of(world, mid) == "base"  # 600 counted; the 500 ahead not yet
    assert post(client, order_payload("c", mid, paid=50_000), "k-c").status_code == 201
    assert tier_of(world, mid) == "silver"  # 600 + 500 now


def _waiting_for_a_lock(world: Any) -> bool:
    with world.db.engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar()
    return bool(n)


def a_merge(
    client: Any, world: Any, survivor_phone: str, merged_phone: str
) -> tuple[int, int, int, Callable[[Any], None]]:
    """Two new members (the survivor, the merged), the survivor's own account, and the
    change that merges the second into the first (in the session it is given)."""
    survivor = new_member(client, survivor_phone)
    merged = new_member(client, merged_phone)
    with world.db.transaction() as s:
        own = ledger.account_id_of(s, survivor)

    def merge(s: Any) -> None:
        merges.merge(s, SYSTEM, survivor, merged)

    return survivor, merged, own, merge


def _while_the_order_waits(world: Any, client: Any, body: dict[str, Any], change: Any) -> Any:
    """Post ``body`` while another transaction, holding the account's lock, runs
    ``change(session)``; commit it once the order's locking statement waits. The answer."""
    answers: list[Any] = []
    waiter = threading.Thread(target=lambda: answers.append(post(client, body, "k-wait")))
    with world.db.transaction() as other:
        change(other)
        waiter.start()
        deadline = time.monotonic() + 30
        while not _waiting_for_a_lock(world):
            assert time.monotonic() < deadline, "the order never waited for the lock"
            time.sleep(0.05)
    waiter.join(30)
    assert answers, "the order did not answer"
    return answers[0]


def test_a_member_moved_to_another_account_while_the_order_waited_earns_there(
    client: Any, world: Any
) -> None:
    """PostgreSQL: a transaction that holds the member's account lock attaches the member
    to a shared account without changing the account row (no xmin to tell). The order read
    the membership before it waited, so its read after the lock sees the move: it locks the
    account the member draws on now and earns there (reading the membership in the locking
    statement would have credited the account the member left)."""
    if world.db.dialect != "postgresql":
        pytest.skip("SQLite: the transaction holds the write lock from its start")
    owner = new_member(client, "13800000003")
    mid = new_member(client, "13800000004")
    with world.db.transaction() as s:
        own, pool = ledger.account_id_of(s, mid), ledger.account_id_of(s, owner)

    def attach(s: Any) -> None:
        ledger.attach(s, pool, mid, can_spend=True, actor="test")

    r = _while_the_order_waits(world, client, bench_basket(mid, "moved"), attach)
    assert r.status_code == 201, r.text
    earned = r.json()["points"]["earned"]
    assert earned > 0
    credited = rows(
        world.db,
        "SELECT account_id, member_id, delta_pending + delta_available AS points "
        "FROM ledger_entry WHERE kind = 'earn'",
    )
    assert credited == [{"account_id": pool, "member_id": mid, "points": earned}]
    assert not rows(world.db, f"SELECT id FROM ledger_entry WHERE account_id = {own}")


def test_a_tier_change_committed_while_the_order_waited_counts(
    client: Any, world: Any, clock: Any
) -> None:
    """PostgreSQL: a transaction holding the member's account lock records a tier change
    dated before the order (a correction of the history; the account row unchanged). The
    order, dated before the member's current tier began, earns with the tier its read
    after the lock finds — as the separate read under the lock did — not the one its
    locking statement's snapshot held."""
    if world.db.dialect != "postgresql":
        pytest.skip("SQLite: the transaction holds the write lock from its start")
    mid = new_member(client, "13800000005")
    lines = [{"sku": "MUG", "category": "merch", "quantity": 1, "unit_price_minor": 10_000}]
    at = "2026-06-10T11:00:00+08:00"  # 03:00 UTC: before the member joined (04:00)
    base = post(client, order_payload("base", mid, paid=10_000, lines=lines), "k-base").json()
    base_points = base["points"]["earned"]
    tiers = {r["code"] for r in rows(world.db, "SELECT DISTINCT tier_code AS code FROM member")}
    (joined,) = tiers

    def back_date_a_tier(s: Any) -> None:
        ledger.lock(s, mid, "/")
        s.add(
            TierChange(
                member_id=mid,
                from_tier=joined,
                to_tier="gold",
                reason="test",
                metric_value=0,
                period=None,
                programme_version=1,
                occurred_at=datetime(2026, 6, 10, 2, tzinfo=UTC),
            )
        )

    body = order_payload("after", mid, paid=10_000, lines=lines, occurred_at=at)
    r = _while_the_order_waits(world, client, body, back_date_a_tier)
    assert r.status_code == 201, r.text
    assert r.json()["points"]["earned"] > base_points  # gold's multiplier


def test_an_order_that_waited_behind_a_tier_upgrade_earns_with_the_new_tier(
    client: Any, world: Any
) -> None:
    """PostgreSQL (branch fixtier): two orders of a base member, each enough to cross
    silver's ¥1,000; the second waits for the account lock while the first, which upgrades
    the member, commits. The locking statement's snapshot still holds the base tier; the
    read after the lock re-reads the member's tier columns, so the second order earns with
    silver's multiplier and records no second upgrade (before: base's multiplier, two
    tier_change rows, two tier.changed events)."""
    if world.db.dialect != "postgresql":
        pytest.skip("SQLite: the transaction holds the write lock from its start")
    mid = new_member(client, "13800000007")
    paid = 100_000  # ¥1,000: silver's threshold, on a member day (Wednesday: double points)
    at = "2026-06-10T12:00:00+08:00"  # now: the upgrade is in force from the order's date

    def first_order(s: Any) -> None:
        ledger.lock(s, mid, "/")  # held until the first order commits
        orders.record(
            s,
            SYSTEM,
            OrderCreate.model_validate(order_payload("first", mid, paid=paid, occurred_at=at)),
        )

    r = _while_the_order_waits(
        world, client, order_payload("second", mid, paid=paid, occurred_at=at), first_order
    )
    assert r.status_code == 201, r.text
    # 1,000 points × 2 (member day) × 1.2 (silver); base's multiplier would give 2,000
    assert r.json()["points"]["earned"] == 2_400
    (first,) = rows(world.db, "SELECT points_earned FROM orders WHERE external_id = 'first'")
    assert first["points_earned"] == 2_000  # earned as base, then upgraded
    changes = rows(
        world.db,
        f"SELECT from_tier, to_tier, reason FROM tier_change WHERE member_id = {mid} "
        "AND reason = 'upgrade'",
    )
    assert changes == [{"from_tier": "base", "to_tier": "silver", "reason": "upgrade"}]
    upgraded = rows(
        world.db, f"SELECT id FROM outbox_event WHERE type = 'tier.changed' AND member_id = {mid}"
    )
    assert len(upgraded) == 1
    assert tier_of(world, mid) == "silver"
    with world.db.transaction() as s:
        _checked, problems = ledger.verify(s)
    assert problems == []


def test_an_order_that_waited_behind_its_members_merge_goes_to_the_survivor(
    client: Any, world: Any
) -> None:
    """PostgreSQL (branch fixtier): a merge marks the member merged holding both accounts'
    locks while an order of the member waits for one of them. The read after the lock
    re-reads the member's status: the order is asked again one by one, which answers the
    survivor (as an order posted after the merge), and earns in the survivor's account."""
    if world.db.dialect != "postgresql":
        pytest.skip("SQLite: the transaction holds the write lock from its start")
    survivor, merged, own, merge = a_merge(client, world, "13800000008", "13800000009")
    r = _while_the_order_waits(world, client, order_payload("late", merged), merge)
    assert r.status_code == 201, r.text
    assert r.json()["member_id"] == survivor
    earned = r.json()["points"]["earned"]
    assert earned > 0
    credited = rows(
        world.db,
        "SELECT account_id, member_id, delta_pending + delta_available AS points "
        "FROM ledger_entry WHERE kind = 'earn'",
    )
    assert credited == [{"account_id": own, "member_id": survivor, "points": earned}]
    with world.db.transaction() as s:
        _checked, problems = ledger.verify(s)
    assert problems == []


def test_an_order_by_identity_that_waited_behind_a_tier_upgrade_earns_with_the_new_tier(
    client: Any, world: Any
) -> None:
    """PostgreSQL (branch fixtier): as above, the second order naming its member by phone
    (the one-by-one path: the member read before the account lock, refreshed under it)."""
    if world.db.dialect != "postgresql":
        pytest.skip("SQLite: the transaction holds the write lock from its start")
    phone = "13800000010"
    mid = new_member(client, phone)
    paid, at = 100_000, "2026-06-10T12:00:00+08:00"

    def first_order(s: Any) -> None:
        ledger.lock(s, mid, "/")
        body = order_payload("first", mid, paid=paid, occurred_at=at)
        orders.record(s, SYSTEM, OrderCreate.model_validate(body))

    body = order_payload("second", None, paid=paid, occurred_at=at)
    body["member_identity"] = {"kind": "phone", "value": phone}
    r = _while_the_order_waits(world, client, body, first_order)
    assert r.status_code == 201, r.text
    assert r.json()["member_id"] == mid
    assert r.json()["points"]["earned"] == 2_400  # silver's 1.2 (base's: 2,000)
    changes = rows(
        world.db, f"SELECT to_tier FROM tier_change WHERE member_id = {mid} AND reason = 'upgrade'"
    )
    assert changes == [{"to_tier": "silver"}]
    with world.db.transaction() as s:
        _checked, problems = ledger.verify(s)
    assert problems == []


def test_an_order_by_identity_that_waited_behind_its_members_merge_goes_to_the_survivor(
    client: Any, world: Any
) -> None:
    """PostgreSQL (branch fixtier): the member named by phone is merged while the order
    waits for the account lock: the member read again under the lock is merged, so the
    order asks again and earns for the survivor, in the survivor's account."""
    if world.db.dialect != "postgresql":
        pytest.skip("SQLite: the transaction holds the write lock from its start")
    survivor, _merged, own, merge = a_merge(client, world, "13800000011", "13800000012")
    body = order_payload("late", None)
    body["member_identity"] = {"kind": "phone", "value": "13800000012"}
    r = _while_the_order_waits(world, client, body, merge)
    assert r.status_code == 201, r.text
    assert r.json()["member_id"] == survivor
    earned = r.json()["points"]["earned"]
    credited = rows(
        world.db,
        "SELECT account_id, member_id, delta_pending + delta_available AS points "
        "FROM ledger_entry WHERE kind = 'earn'",
    )
    assert credited == [{"account_id": own, "member_id": survivor, "points": earned}]
    with world.db.transaction() as s:
        _checked, problems = ledger.verify(s)
    assert problems == []
