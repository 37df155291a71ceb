"""What a redemption reads — the member, the reward, the member's account (locked), the
membership, the freeze, the redemption's id and code — is read in one go (speed, issue 11,
branch redeemfold): SQLite in the statement that locks the account, PostgreSQL in one
statement right after it (the locking statement's snapshot predates its wait for the lock).
A reward's usage row is updated in place, not read first, also under a per-member limit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.integration.redemption.test_redemption_api import give
from tests.itest import assert_problem, new_member, rows
from tests.support import recorded_statements

LOCK = "FROM member JOIN reward ON reward.code"  # the locking statement
MEMBERSHIP = "FROM points_account_member WHERE points_account_member.member_id"
FREEZE = "FROM member_freeze"
CODE_TAKEN = "FROM redemption WHERE redemption.code"


def folded(statement: str) -> str:
    return " ".join(statement.split())


def selects(seen: list[str]) -> list[str]:
    """The SELECTs issued, PostgreSQL's advisory lock of the stream positions and the API
    key's (its check, or its read when the process's cache of it lapsed) left out."""
    return [
        s
        for s in map(folded, seen)
        if s.upper().startswith("SELECT")
        and "pg_advisory_xact_lock" not in s
        and not s.startswith(("SELECT api_key", "SELECT org_unit"))
    ]


def redeem(client: Any, mid: int, reward: str, key: str) -> Any:
    body = {"member_id": mid, "reward": reward}
    return client.post("/v1/redemptions", json=body, headers={"Idempotency-Key": key})


def test_a_redemption_reads_what_it_needs_with_the_lock(
    client: Any, world: Any, clock: Any
) -> None:
    """The bench's redemption (``upsize``, its usage row there), the API key's check left
    aside: the programme, the locking statement, (PostgreSQL: the read after the lock),
    the available lots. Before: the member, the reward, the account, the membership, the
    freeze and the id each in its own statement (8 SELECTs on both databases)."""
    mid = new_member(client, "13800000001")
    give(client, mid, 3000)
    assert redeem(client, mid, "upsize", "k-warm").status_code == 201
    clock.advance(timedelta(minutes=1))
    with recorded_statements(world.db.engine) as seen:
        r = redeem(client, mid, "upsize", "k-1")
    assert r.status_code == 201, r.text
    postgres = world.db.dialect == "postgresql"
    reads = selects(seen)
    assert len(reads) == (4 if postgres else 3), "\n".join(s[:120] for s in reads)
    (lock,) = [s for s in reads if LOCK in s]
    assert ("FOR UPDATE OF points_account" in lock) == postgres
    one_go = reads[reads.index(lock) + 1] if postgres else lock
    for marker in (FREEZE, CODE_TAKEN):
        assert [s for s in reads if marker in s] == [one_go], marker
    # the locking statement's join reads the membership too (which account to lock)
    assert [s for s in reads if MEMBERSHIP in s] == sorted({lock, one_go}, key=reads.index)
    # the member and the reward are read there only
    assert [s for s in reads if s.startswith(("SELECT member.", "SELECT reward."))] == [lock]


def test_a_frozen_member_is_refused_by_the_read_under_the_lock(client: Any, world: Any) -> None:
    mid = new_member(client, "13800000002")
    give(client, mid, 3000)
    assert client.put(f"/v1/fraud/frozen/{mid}", json={"reason": "x"}).status_code == 200
    body = assert_problem(redeem(client, mid, "upsize", "k-1"), 409, "member_frozen")
    assert (body["member_id"], body["reason"]) == (mid, "x")
    assert not rows(world.db, f"SELECT id FROM redemption WHERE member_id = {mid}")


def test_a_limited_reward_updates_its_usage_without_reading_it_first(
    client: Any, world: Any
) -> None:
    """``tote``: two per member. The first inserts the usage row (one INSERT … SELECT, not
    through the unit of work), the second updates it, the third is refused; no redemption
    reads the row first."""
    mid = new_member(client, "13800000003")
    for _ in range(4):  # 12,000 (each within the adjustment's approval threshold)
        give(client, mid, 3000)
    statements = []
    for i in range(3):
        with recorded_statements(world.db.engine) as seen:
            r = redeem(client, mid, "tote", f"k-{i}")
        statements.append([folded(s) for s in seen])
        if i < 2:
            assert r.status_code == 201, r.text
    assert_problem(r, 409, "limit_reached")
    assert rows(world.db, f"SELECT used FROM reward_usage WHERE member_id = {mid}") == [{"used": 2}]
    first, second, _third = statements
    (insert,) = [s for s in first if s.startswith("INSERT INTO reward_usage")]
    assert insert.count("SELECT") == 2  # INSERT … SELECT … WHERE NOT EXISTS (SELECT …)
    assert not [s for s in second if s.startswith("INSERT INTO reward_usage")]
    for seen in statements:
        assert not [s for s in seen if s.startswith("SELECT reward_usage")]
