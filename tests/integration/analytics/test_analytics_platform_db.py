"""Reading the platform's own database (SQLite and PostgreSQL) into the analytics: orders
recorded and returned through the API, read back net of refunds, in the programme's zone,
with anonymous orders apart and every excluded row counted."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from sqlalchemy import create_engine
from tests.itest import apply_document, demo_document, new_member
from tests.support import order_payload

from loyalist.analytics import (
    ColumnMap,
    InputError,
    MissingColumnError,
    analyze_kpis,
    analyze_rfm,
    compute_kpis,
    read_database,
)


def _order(client: Any, external_id: str, member_id: int | None, **kw: Any) -> int:
    r = client.post("/v1/orders", json=order_payload(external_id, member_id, **kw))
    assert r.status_code == 201, r.text
    order_id: int = r.json()["id"]
    return order_id


@pytest.fixture
def shop(world: Any, client: Any) -> dict[str, Any]:
    """Three members, six orders: one partly and one fully returned, one anonymous, one
    paid nothing."""
    a = new_member(client, "13800000001")
    b = new_member(client, "13800000002")
    c = new_member(client, "13800000003")
    _order(client, "a1", a, paid=10_000, occurred_at="2026-06-01T10:00:00+08:00")
    # 23:30 UTC on the 5th is 07:30 on the 6th in Shanghai
    _order(
        client, "a2", a, paid=5_000, store="sz1", channel="app", occurred_at="2026-06-05T23:30:00Z"
    )
    two = [{"sku": "MUG", "category": "merch", "quantity": 2, "unit_price_minor": 4_000}]
    b1 = _order(client, "b1", b, paid=8_000, lines=two, occurred_at="2026-05-31T16:30:00Z")
    b2 = _order(client, "b2", b, paid=3_000, occurred_at="2026-06-02T12:00:00+08:00")
    _order(client, "x1", None, paid=2_500, store="sh2", occurred_at="2026-06-03T12:00:00+08:00")
    _order(client, "c1", c, paid=0, occurred_at="2026-06-04T12:00:00+08:00")
    r = client.post(
        f"/v1/orders/{b1}/returns",
        json={"return_id": "r1", "lines": [{"line_no": 1, "quantity": 1}]},
    )
    assert r.status_code == 201 and r.json()["refund_minor"] == 4_000, r.text
    r = client.post(f"/v1/orders/{b2}/returns", json={"return_id": "r2", "full": True})
    assert r.status_code == 201, r.text
    tiers = {m: client.get(f"/v1/members/{m}").json()["tier"]["code"] for m in (a, b, c)}
    return {"a": str(a), "b": str(b), "c": str(c), "tiers": tiers, "url": world.db.url}


def test_platform_orders_are_read_net_of_refunds_in_the_programme_zone(
    shop: dict[str, Any],
) -> None:
    tx = read_database(shop["url"])
    a, b = shop["a"], shop["b"]
    tier = shop["tiers"]
    assert tx.frame.to_dicts() == [
        {
            "customer_id": a,
            "occurred_at": dt.datetime(2026, 6, 1, 10, 0),
            "amount": 100.0,
            "order_id": "a1",
            "store": "sh1",
            "channel": "pos",
            "tier": tier[int(a)],
            "is_member": True,
        },
        {
            "customer_id": a,
            "occurred_at": dt.datetime(2026, 6, 6, 7, 30),
            "amount": 50.0,
            "order_id": "a2",
            "store": "sz1",
            "channel": "app",
            "tier": tier[int(a)],
            "is_member": True,
        },
        {
            "customer_id": b,
            "occurred_at": dt.datetime(2026, 6, 1, 0, 30),
            "amount": 40.0,  # 80 paid, 40 refunded
            "order_id": "b1",
            "store": "sh1",
            "channel": "pos",
            "tier": tier[int(b)],
            "is_member": True,
        },
    ]
    assert tx.anonymous is not None
    assert tx.anonymous.to_dicts() == [
        {
            "occurred_at": dt.datetime(2026, 6, 3, 12, 0),
            "amount": 25.0,
            "order_id": "x1",
            "store": "sh2",
            "channel": "pos",
            "tier": None,
            "is_member": False,
        }
    ]
    rep = tx.report
    assert (rep.rows_read, rep.rows_used, rep.anonymous_orders, rep.returns_netted) == (6, 4, 1, 1)
    assert rep.excluded == {"fully returned (net amount zero)": 1, "zero amount": 1}
    assert rep.rows_read == rep.rows_used + sum(rep.excluded.values())
    assert rep.notes[0].startswith("platform orders: amount = amount paid in money")
    assert "password" not in rep.source


def test_kpis_on_the_platform_split_members_and_anonymous_orders(shop: dict[str, Any]) -> None:
    tx = read_database(shop["url"])
    rep = compute_kpis(tx, "2026-06-01", "2026-06-10")
    assert rep.anonymous_orders == 1
    assert rep.overall["orders"] == 4.0
    assert rep.overall["revenue"] == 215.0
    assert rep.overall["active_customers"] == 2.0
    assert rep.overall["arpu"] == 95.0  # 190 of the members / 2
    assert rep.members is not None and rep.non_members is not None
    assert (rep.members["orders"], rep.members["revenue"]) == (3.0, 190.0)
    assert rep.members["repurchase_rate"] == 0.5  # a bought on two days
    assert (rep.non_members["orders"], rep.non_members["revenue"]) == (1.0, 25.0)
    assert rep.non_members["revenue_share"] == pytest.approx(25 / 215)
    assert math.isnan(rep.non_members["active_customers"])
    data = analyze_kpis(tx, start="2026-06-01", end="2026-06-10")
    assert data["non_members"]["active_customers"] is None  # type: ignore[index]


def test_rfm_counts_identified_customers_only(shop: dict[str, Any]) -> None:
    data = analyze_rfm(read_database(shop["url"]), as_of="2026-06-10")
    assert data["customers"] == 2  # a and b; c's only order paid nothing
    assert data["load"]["anonymous_orders"] == 1  # type: ignore[index]


def test_engines_connections_queries_and_tables_are_accepted(shop: dict[str, Any]) -> None:
    engine = create_engine(shop["url"])
    try:
        by_url = read_database(shop["url"])
        assert read_database(engine).frame.equals(by_url.frame)
        with engine.connect() as conn:
            assert read_database(conn).frame.equals(by_url.frame)
        # any SELECT, with its own column names (amounts in fen here, scaled explicitly)
        q = read_database(
            engine,
            query="SELECT external_id, member_id, occurred_at, amount_paid_minor "
            "FROM orders WHERE member_id IS NOT NULL AND amount_paid_minor > 0 ORDER BY id",
            columns=ColumnMap(
                customer="member_id",
                timestamp="occurred_at",
                amount="amount_paid_minor",
                order_id="external_id",
            ),
            amount_scale=0.01,
            naive_timezone="UTC",
        )
        assert q.frame.select("order_id", "amount").rows() == [
            ("a1", 100.0),
            ("a2", 50.0),
            ("b1", 80.0),  # gross of its refund: this query did not subtract it
            ("b2", 30.0),
        ]
        assert q.frame["occurred_at"].to_list()[1] == dt.datetime(2026, 6, 6, 7, 30)
    finally:
        engine.dispose()


def test_unreadable_sources_are_input_errors(shop: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="cannot read transactions from the database"):
        read_database(shop["url"], query="SELECT * FROM no_such_table")
    with pytest.raises(InputError, match="no table 'orders; DROP TABLE orders'"):
        read_database(shop["url"], table="orders; DROP TABLE orders")
    # a table read with other column names fails by naming what is missing
    with pytest.raises(MissingColumnError) as exc:
        read_database(shop["url"], table="orders", columns=ColumnMap(customer="member_id"))
    assert str(exc.value).startswith(
        "missing column(s) 'amount' in table 'orders'; available: id, external_id, member_id"
    )


def test_a_table_is_read_by_its_mapped_columns(shop: dict[str, Any]) -> None:
    tx = read_database(
        shop["url"],
        table="orders",
        columns=ColumnMap(
            customer="member_id",
            timestamp="occurred_at",
            amount="amount_paid_minor",
            refund="refunded_minor",
            order_id="external_id",
        ),
        amount_scale=0.01,
        naive_timezone="UTC",
        anonymous=True,
    )
    assert sorted(tx.frame.select("order_id", "amount").rows()) == [
        ("a1", 100.0),
        ("a2", 50.0),
        ("b1", 40.0),
    ]
    assert tx.report.excluded == {"fully returned (net amount zero)": 1, "zero amount": 1}
    assert tx.report.anonymous_orders == 1


def test_days_follow_the_active_programme_time_zone(shop: dict[str, Any], world: Any) -> None:
    # a new programme version in another zone: the same UTC instants fall on other days
    doc = demo_document()
    doc["timezone"] = "Europe/Paris"
    apply_document(world.db, doc)
    tx = read_database(shop["url"])
    times = dict(tx.frame.select("order_id", "occurred_at").rows())
    # 2026-06-01T10:00+08:00 is 04:00 in Paris (CEST); 2026-05-31T16:30Z is 18:30 on the 31st
    assert times["a1"] == dt.datetime(2026, 6, 1, 4, 0)
    assert times["b1"] == dt.datetime(2026, 5, 31, 18, 30)
    assert "days in Europe/Paris" in tx.report.notes[0]
    # an explicit zone wins
    shanghai = read_database(shop["url"], timezone="Asia/Shanghai")
    assert dict(shanghai.frame.select("order_id", "occurred_at").rows())["b1"] == dt.datetime(
        2026, 6, 1, 0, 30
    )
