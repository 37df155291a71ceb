"""The earn benchmark's database floor (benchmarks/earn_floor.sql) stays in step with the
writes a recorded order really issues: the same tables, the same columns, the same number
of statements, the account updated once (issue 11)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.itest import new_member
from tests.support import order_payload, recorded_statements, script_counts

FLOOR = Path(__file__).parents[3] / "benchmarks" / "earn_floor.sql"

Shape = tuple[str, str, frozenset[str]]

_INSERT = re.compile(r"INSERT INTO (\w+) \(([^)]*)\)", re.IGNORECASE)
_UPDATE = re.compile(r"UPDATE (\w+) SET (.*?) WHERE", re.IGNORECASE | re.DOTALL)


def shape(statement: str) -> Shape | None:
    """("insert"|"update", table, columns) of a write statement; None for anything else."""
    text = " ".join(statement.split())
    if m := _INSERT.search(text):
        return ("insert", m.group(1), frozenset(c.strip(' "') for c in m.group(2).split(",")))
    if text.upper().startswith("UPDATE") and (m := _UPDATE.search(text)):
        sets = re.split(r",\s*(?=\w+\s*=)", m.group(2))
        cols = frozenset(a.split("=")[0].strip(' "') for a in sets)
        return ("update", m.group(1), cols)
    return None


def floor_shapes() -> Counter[Shape]:
    return script_counts(FLOOR, shape)


def bench_basket(member_id: int, external_id: str) -> dict[str, Any]:
    """An order like bench_earn's: 3 lines of the café catalogue, a member, the POS."""
    lines = [
        {"sku": "LATTE-M", "category": "coffee", "quantity": 1, "unit_price_minor": 3200},
        {"sku": "AMERICANO-M", "category": "coffee", "quantity": 1, "unit_price_minor": 2800},
        {"sku": "COLDBREW", "category": "coffee", "quantity": 1, "unit_price_minor": 3600},
    ]
    return order_payload(external_id, member_id, paid=9_600, lines=lines)


def test_floor_script_issues_the_writes_of_a_recorded_order(
    client: Any, world: Any, clock: Any
) -> None:
    mid = new_member(client, "13800000001")
    # warm: the first order of a process may differ (nothing cached yet): take the second
    r = client.post(
        "/v1/orders", json=bench_basket(mid, "warm"), headers={"Idempotency-Key": "k-warm"}
    )
    assert r.status_code == 201, r.text
    clock.advance(timedelta(minutes=1))  # a frozen clock would leave updated_at as it was
    with recorded_statements(world.db.engine) as seen:
        r = client.post(
            "/v1/orders", json=bench_basket(mid, "o-1"), headers={"Idempotency-Key": "k-1"}
        )
    assert r.status_code == 201, r.text
    assert r.json()["points"]["earned"] > 0
    real: Counter[Shape] = Counter(s for s in map(shape, seen) if s is not None)
    floor = floor_shapes()
    assert set(real) == set(floor)
    if world.db.dialect == "postgresql":  # one statement per multi-row INSERT, as pgbench's
        assert real == floor
    # one update of the points account per order, whatever the ledger did in between
    assert sum(n for (verb, table, _), n in real.items() if table == "points_account") == 1


def test_shape_reads_inserts_and_updates() -> None:
    assert shape("INSERT INTO orders (a, b) VALUES (1, 2)") == (
        "insert",
        "orders",
        frozenset({"a", "b"}),
    )
    assert shape("WITH ev AS (INSERT INTO outbox_event (x) VALUES (1) RETURNING id) SELECT 1") == (
        "insert",
        "outbox_event",
        frozenset({"x"}),
    )
    assert shape("UPDATE t SET a = a + 1, b=%(b)s::INT WHERE id = 3") == (
        "update",
        "t",
        frozenset({"a", "b"}),
    )
    assert shape("SELECT a FROM t WHERE id = 1 FOR UPDATE") is None
    assert sum(floor_shapes().values()) == 10
