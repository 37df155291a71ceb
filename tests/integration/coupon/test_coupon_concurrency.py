"""Concurrent checkouts with one code: exactly one succeeds, the rest get a stable conflict
code; a template's budget never goes below zero (under load, and as a property against the
database: redemptions and returns in any sequence keep spent = Σ redeemed - restored ≤
budget).

PostgreSQL: 200 orders through 20 pooled connections at once. SQLite serialises writers,
so it runs 40 (the rule is the same; the contention is not).
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import BACKEND
from tests.itest import rows

from loyalist.coupon import service as coupons
from loyalist.coupon.schemas import BatchCreate, TemplateCreate
from loyalist.errors import LoyalistError
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.order import service as orders
from loyalist.order.schemas import OrderCreate, ReturnCreate

N = 200 if BACKEND == "postgres" else 40
THREADS = 20

pytestmark = pytest.mark.timeout(600)


def make_template(db: Database, code: str, **rules: Any) -> None:
    body = {"code": code, "name": code, "kind": "amount_off", "amount_minor": 1000, **rules}
    with db.transaction() as s:
        coupons.create_template(s, SYSTEM, TemplateCreate.model_validate(body))


def import_codes(db: Database, template: str, codes: list[str]) -> None:
    with db.transaction() as s:
        coupons.create_batch(
            s,
            SYSTEM,
            BatchCreate.model_validate(
                {"external_id": template, "template": template, "codes": codes}
            ),
        )


def join(db: Database, phone: str) -> int:
    with db.transaction() as s:
        return members.create(s, SYSTEM, MemberCreate.model_validate({"phone": phone})).member.id


def order(
    ext: str, code: str, member_id: int | None, price: int = 8000, off: int = 1000
) -> OrderCreate:
    return OrderCreate.model_validate(
        {
            "external_id": ext,
            "member_id": member_id,
            "store": "sh1",
            "occurred_at": "2026-06-10T11:00:00+08:00",
            "amount_paid_minor": price - off,
            "coupon_minor": off,
            "coupons": [code],
            "lines": [
                {"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price_minor": price}
            ],
        }
    )


def storm(db: Database, payloads: list[OrderCreate]) -> Counter[str]:
    """All orders at once (a barrier releases the threads together); outcome codes."""
    gate = threading.Barrier(THREADS)

    def one(i: int, data: OrderCreate) -> str:
        if i < THREADS:
            gate.wait()
        try:
            db.run(lambda s: orders.record(s, SYSTEM, data))
            return "ok"
        except LoyalistError as exc:
            return exc.code

    with ThreadPoolExecutor(THREADS) as pool:
        return Counter(pool.map(one, range(len(payloads)), payloads))


def test_a_single_use_code_is_redeemed_once(world: Any) -> None:
    db = world.db
    make_template(db, "once")
    import_codes(db, "once", ["ONLYONCE1"])
    buyers = [join(db, f"1390000{i:04d}") for i in range(4)]
    payloads = [
        order(f"single-{i}", "onlyonce1", buyers[i % 4] if i % 5 else None) for i in range(N)
    ]
    outcome = storm(db, payloads)
    assert outcome == Counter({"ok": 1, "coupon_used": N - 1})
    assert rows(db, "SELECT uses FROM coupon_code WHERE code = 'ONLYONCE1'") == [{"uses": 1}]
    assert rows(db, "SELECT uses, spent_minor FROM coupon_template WHERE code = 'once'") == [
        {"uses": 1, "spent_minor": 1000}
    ]
    assert rows(db, "SELECT COUNT(*) AS n FROM coupon_redemption") == [{"n": 1}]
    assert rows(db, "SELECT COUNT(*) AS n FROM orders") == [{"n": 1}]


def test_a_per_member_limit_of_one_holds(world: Any) -> None:
    db = world.db
    make_template(db, "member-day", limit_per_code=100_000, limit_per_member=1)
    import_codes(db, "member-day", ["MEMBERDAY"])
    mid = join(db, "13900009999")
    outcome = storm(db, [order(f"pm-{i}", "MEMBERDAY", mid) for i in range(N)])
    assert outcome == Counter({"ok": 1, "coupon_member_limit": N - 1})
    assert rows(db, "SELECT uses FROM coupon_member_use") == [{"uses": 1}]
    assert rows(db, "SELECT uses FROM coupon_code") == [{"uses": 1}]


def test_a_budget_is_never_overspent_under_load(world: Any) -> None:
    db = world.db
    make_template(db, "budget", limit_per_code=100_000, budget_minor=10_000)
    import_codes(db, "budget", ["BUDGET2026"])
    outcome = storm(db, [order(f"b-{i}", "BUDGET2026", None) for i in range(N)])
    assert outcome == Counter({"ok": 10, "coupon_budget_exhausted": N - 10})
    assert rows(db, "SELECT uses, spent_minor FROM coupon_template") == [
        {"uses": 10, "spent_minor": 10_000}
    ]


_seq = iter(range(10**6))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    budget=st.integers(1, 6_000),
    steps=st.lists(
        st.tuples(st.sampled_from(["order", "return"]), st.integers(100, 3_000)),
        min_size=1,
        max_size=10,
    ),
)
def test_budget_property_against_the_database(
    world: Any, budget: int, steps: list[tuple[str, int]]
) -> None:
    """Any sequence of orders (each discount anything) and full returns: the template's
    spent stays within its budget and equals what its live redemptions took off."""
    db = world.db
    n = next(_seq)
    tpl, code = f"prop{n}", f"PROP{n:06d}X"
    make_template(db, tpl, limit_per_code=1000, budget_minor=budget, amount_minor=10**6)
    import_codes(db, tpl, [code])
    recorded: list[int] = []
    for i, (kind, amount) in enumerate(steps):
        if kind == "order":
            try:
                o = db.run(
                    lambda s, i=i, amount=amount: (
                        orders.record(
                            s, SYSTEM, order(f"{tpl}-{i}", code, None, price=amount, off=amount)
                        ).order.id
                    )
                )
                recorded.append(o)
            except LoyalistError as exc:
                assert exc.code in ("coupon_budget_exhausted", "coupon_invalid")
        elif recorded:
            oid = recorded.pop(0)
            db.run(
                lambda s, oid=oid, i=i: orders.record_return(
                    s,
                    SYSTEM,
                    oid,
                    ReturnCreate.model_validate({"return_id": f"r{i}", "full": True}),
                )
            )
        t = rows(
            db, "SELECT spent_minor, budget_minor FROM coupon_template WHERE code = :c", c=tpl
        )[0]
        live = rows(
            db,
            "SELECT COALESCE(SUM(r.discount_minor), 0) AS s FROM coupon_redemption r "
            "JOIN coupon_template t ON t.id = r.template_id "
            "WHERE t.code = :c AND r.status = 'redeemed'",
            c=tpl,
        )[0]["s"]
        assert 0 <= t["spent_minor"] <= t["budget_minor"]
        assert t["spent_minor"] == live
