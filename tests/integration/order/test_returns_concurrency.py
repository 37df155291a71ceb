"""Concurrent returns of one order never return more than was bought, with or without a
member (an anonymous order has no points account to lock)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from tests.itest import new_member, rows
from tests.support import order_payload

from loyalist.errors import LoyalistError
from loyalist.kit.actor import SYSTEM
from loyalist.order import service as orders
from loyalist.order.schemas import ReturnCreate

MONDAY = "2026-06-08T10:00:00+08:00"


@pytest.mark.parametrize("with_member", [False, True])
def test_parallel_returns_of_the_last_units(world: Any, client: Any, with_member: bool) -> None:
    db = world.db
    mid = new_member(client, "13800000001") if with_member else None
    lines = [{"sku": "MUG", "category": "merch", "quantity": 3, "unit_price_minor": 3000}]
    o = client.post(
        "/v1/orders", json=order_payload("o", mid, paid=9000, lines=lines, occurred_at=MONDAY)
    ).json()
    start = threading.Barrier(6)
    outcomes: list[str] = []
    lock = threading.Lock()

    def give_back(i: int) -> None:
        start.wait(timeout=30)
        data = ReturnCreate(return_id=f"r{i}", lines=[{"line_no": 1, "quantity": 1}])  # type: ignore[list-item]
        try:
            db.run(lambda s: orders.record_return(s, SYSTEM, o["id"], data))
            result = "ok"
        except LoyalistError as exc:
            result = exc.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=give_back, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert Counter(outcomes) == {"ok": 3, "invalid_return": 3}
    (line,) = rows(db, "SELECT returned_quantity FROM order_line")
    assert line["returned_quantity"] == 3
    (order,) = rows(db, "SELECT refunded_minor, status FROM orders")
    assert order == {"refunded_minor": 9000, "status": "returned"}
    assert len(rows(db, "SELECT id FROM order_return")) == 3
