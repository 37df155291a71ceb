"""The redemption benchmark's database floor (benchmarks/redeem_floor.sql) stays in step with
the writes a redemption really issues: the same tables, the same columns, the same number of
statements (issue 11)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.integration.order.test_earn_floor import Shape, shape
from tests.itest import new_member
from tests.support import recorded_statements, script_counts

FLOOR = Path(__file__).parents[3] / "benchmarks" / "redeem_floor.sql"


def floor_shapes() -> Counter[Shape]:
    return script_counts(FLOOR, shape)


def captured(world: Any, fn: Any) -> tuple[Any, list[str]]:
    with recorded_statements(world.db.engine) as seen:
        answer = fn()
    return answer, seen


def test_floor_script_issues_the_writes_of_a_redemption(
    client: Any, world: Any, clock: Any
) -> None:
    mid = new_member(client, "13800000001")
    r = client.post(f"/v1/members/{mid}/adjustments", json={"points": 3000, "reason": "setup"})
    assert r.status_code == 201, r.text
    # the benchmark's steady state: the member redeemed this reward before (its usage row
    # exists), the process has its programme cached
    body = {"member_id": mid, "reward": "upsize"}
    r = client.post("/v1/redemptions", json=body, headers={"Idempotency-Key": "k-warm"})
    assert r.status_code == 201, r.text
    clock.advance(timedelta(minutes=1))
    r, seen = captured(
        world,
        lambda: client.post("/v1/redemptions", json=body, headers={"Idempotency-Key": "k-1"}),
    )
    assert r.status_code == 201, r.text
    assert (r.json()["reward"], r.json()["points"]) == ("upsize", 500)
    real: Counter[Shape] = Counter(s for s in map(shape, seen) if s is not None)
    floor = floor_shapes()
    if world.db.dialect == "sqlite":  # SQLite: one INSERT … RETURNING per batched event
        events = next(s for s in floor if s[:2] == ("insert", "outbox_event"))
        floor[events] = 2
    assert real == floor
    # the account (balance, chain head) is updated once, the entry never (redeemlean)
    assert sum(n for s, n in real.items() if s[:2] == ("update", "points_account")) == 1
    assert not [s for s in real if s[:2] == ("update", "ledger_entry")]
    # the reward is read once (by code, with the member and the account's lock: redeemfold),
    # not again for the answer or after the debit
    reads = [" ".join(s.split()) for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert sum(1 for s in reads if "reward.code =" in s) == 1
    assert not [s for s in reads if s.startswith("SELECT reward.id")]


def test_the_floor_has_every_write_once_per_statement() -> None:
    floor = floor_shapes()
    assert sum(floor.values()) == 11  # redeemlean: the two events in one INSERT
    # the entry is inserted with its lots, source and dedupe key (never updated after), and
    # the account (balance, chain head) is updated once (issue 11, session 8)
    assert not [s for s in floor if s[0] == "update" and s[1] == "ledger_entry"]
    assert sum(n for s, n in floor.items() if s[:2] == ("update", "points_account")) == 1
    tables = {table for _, table, _ in floor}
    assert tables == {
        "idempotency_record",
        "reward_usage",
        "ledger_entry",
        "lot_allocation",
        "points_account",
        "points_lot",
        "outbox_event",
        "redemption",
        "audit_log",
    }
