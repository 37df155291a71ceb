"""The set-based order writer (``order.service.record_many``, used by bulk import) gives
exactly what ``order.service.record`` gives one order at a time: the same points per order
(same earn engine, tier at the order's time, per-order and per-day caps, campaigns), the
same lots, balances, chain lengths, tier and the same ``points.earned`` events; the
ledger verifies clean. Two members get the same orders, one through each path (SQLite and
PostgreSQL, like every integration test)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from loyalist.kit.actor import Actor
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import Order, OutboxEvent, PointsAccount, PointsLot
from loyalist.order import service as orders
from loyalist.order.errors import OrderConflict
from loyalist.order.schemas import OrderCreate

ACTOR = Actor(name="test:import", scope_path="/", principal="test:import")
NOW = datetime(2026, 6, 10, 4, 0, tzinfo=UTC)  # the frozen clock of the tests
CATEGORIES = ["coffee", "coffee_beans", "gift_card", "bakery"]

LINE = st.tuples(
    st.sampled_from(CATEGORIES),
    st.integers(1, 3),
    st.one_of(st.integers(0, 5_000), st.integers(1_000_000, 3_000_000)),  # caps: 20,000 a day
)
ORDER = st.tuples(
    st.integers(0, 2),  # which of the three members (or the anonymous one: see below)
    st.sampled_from(["sh1", "sz1"]),
    st.sampled_from(["pos", "app"]),
    # minutes before now: the same day several times (daily cap), Wednesdays, February
    # (a campaign), now itself (at the members' tier change: the per-order path)
    st.one_of(
        st.integers(0, 180 * 24 * 60),
        st.sampled_from([1, 60, 61, 62, 90, 7 * 24 * 60]),
        st.just(0),
    ),
    st.lists(LINE, min_size=1, max_size=3),
    st.booleans(),  # anonymous order (no member)
)


def _create(n: int, prefix: str, spec: Any) -> OrderCreate:
    _who, store, channel, minutes, lines, _anonymous = spec
    return OrderCreate(
        external_id=f"{prefix}-{n}",
        member_id=None,
        store=store,
        channel=channel,
        occurred_at=NOW - timedelta(minutes=minutes),
        amount_paid_minor=sum(q * p for _c, q, p in lines),
        lines=[
            {"sku": f"S{k}", "category": c, "quantity": q, "unit_price_minor": p}  # type: ignore[list-item]
            for k, (c, q, p) in enumerate(lines)
        ],
    )


def _state(s: Any, member_id: int) -> dict[str, Any]:
    acct = s.get(PointsAccount, ledger.account_id_of(s, member_id))
    lots = sorted(
        (x.points, x.remaining, x.status, x.earned_at, x.available_at, x.expires_at)
        for x in s.scalars(select(PointsLot).where(PointsLot.account_id == acct.id))
    )
    placed = [
        (o.external_id.split("-", 1)[1], o.points_earned, o.available_at, o.qualifying_minor)
        for o in s.scalars(select(Order).where(Order.member_id == member_id))
    ]
    earned = [
        (e.payload["points"], e.payload["available"], e.payload["pending"], e.payload["status"])
        for e in s.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.member_id == member_id, OutboxEvent.type == "points.earned")
            .order_by(OutboxEvent.id)
        )
    ]
    tier = members.get(s, ACTOR, member_id).tier_code
    return {
        "account": (acct.available, acct.pending, acct.debt, acct.lifetime_earned, acct.chain_seq),
        "lots": lots,
        "orders": sorted(placed),
        "earned_events": earned,
        "tier": tier,
    }


@pytest.mark.usefixtures("world")
def test_record_many_equals_record_one_by_one(world: Any, monkeypatch: Any) -> None:
    db = world.db
    calls: list[str] = []
    real = orders.record

    def counted(session: Any, actor: Actor, data: OrderCreate) -> Any:
        calls.append(data.external_id)
        return real(session, actor, data)

    monkeypatch.setattr(orders, "record", counted)
    runs = [0]

    @settings(
        max_examples=20,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(specs=st.lists(ORDER, min_size=1, max_size=25))
    @example(  # heavy orders of one day (caps), one in the app, a gift card, an anonymous one
        specs=[
            (0, "sh1", "pos", 60 + k, [("coffee", 1, 2_000_000), ("gift_card", 1, 100)], False)
            for k in range(3)
        ]
        + [
            (0, "sz1", "app", 90, [("coffee_beans", 2, 300)], False),
            (1, "sh1", "pos", 61, [("coffee", 1, 5_000_000)], False),
            (1, "sh1", "pos", 130 * 24 * 60, [("coffee", 1, 9_000)], False),
            (2, "sh1", "pos", 0, [("bakery", 1, 1_500)], False),
            (2, "sz1", "pos", 1, [("bakery", 1, 2_500)], False),
            (0, "sz1", "pos", 5, [("coffee", 1, 700)], True),
        ]
    )
    def check(specs: list[Any]) -> None:
        runs[0] += 1
        x = runs[0]
        with db.transaction() as s:
            bulk = [
                members.create(s, ACTOR, MemberCreate(external_id=f"b{x}-{k}")).member.id
                for k in range(3)
            ]
            single = [
                members.create(s, ACTOR, MemberCreate(external_id=f"s{x}-{k}")).member.id
                for k in range(3)
            ]
        many = [_create(n, f"b{x}", spec) for n, spec in enumerate(specs)]
        one = [_create(n, f"s{x}", spec) for n, spec in enumerate(specs)]
        for n, spec in enumerate(specs):
            if not spec[5]:
                many[n].member_id = bulk[spec[0]]
                one[n].member_id = single[spec[0]]
        calls.clear()
        with db.transaction() as s:
            created = orders.record_many(s, ACTOR, many)
        assert created == [True] * len(specs)
        # the per-order path takes exactly the members with an order at their tier change
        at_now = {spec[0] for spec in specs if not spec[5] and spec[3] == 0}
        expected = [
            o.external_id
            for o, spec in zip(many, specs, strict=True)
            if not spec[5] and spec[0] in at_now
        ]
        assert calls == expected
        for o in one:
            with db.transaction() as s:
                orders.record(s, ACTOR, o)
        with db.transaction() as s:
            for b, m in zip(bulk, single, strict=True):
                assert _state(s, b) == _state(s, m)
            anonymous = [
                (o.external_id.split("-", 1)[1], o.points_earned, o.gross_minor)
                for o in s.scalars(
                    select(Order).where(
                        Order.member_id.is_(None), Order.external_id.like(f"b{x}-%")
                    )
                )
            ]
            assert sorted(anonymous) == sorted(
                (o.external_id.split("-", 1)[1], 0, o.amount_paid_minor)
                for o, spec in zip(many, specs, strict=True)
                if spec[5]
            )
            _n, problems = ledger.verify(s)
            assert problems == []
        # a second run of the same orders writes nothing
        with db.transaction() as s:
            before = s.scalar(select(Order.id).order_by(Order.id.desc()).limit(1))
            assert orders.record_many(s, ACTOR, many) == [False] * len(specs)
            assert s.scalar(select(Order.id).order_by(Order.id.desc()).limit(1)) == before

    check()


def test_daily_cap_across_a_batch_and_the_orders_before_it(world: Any) -> None:
    """Caps see the orders earlier in the same batch and those written before it."""
    db = world.db
    with db.transaction() as s:
        mid = members.create(s, ACTOR, MemberCreate(external_id="cap")).member.id
    spec = (0, "sh1", "pos", 60, [("coffee", 1, 3_000_000)], False)
    first = [_create(n, "cap", spec) for n in range(2)]
    then = [_create(n, "cap", spec) for n in range(2, 5)]
    for o in first + then:
        o.member_id = mid
    with db.transaction() as s:
        orders.record_many(s, ACTOR, first)
    with db.transaction() as s:
        orders.record_many(s, ACTOR, then)
    with db.transaction() as s:
        got = [
            o.points_earned
            for o in s.scalars(select(Order).where(Order.member_id == mid).order_by(Order.id))
        ]
    assert got == [20_000, 20_000, 10_000, 0, 0]  # per order 20,000; per day 50,000


def test_an_order_recorded_before_with_other_content_is_refused_with_its_row(world: Any) -> None:
    db = world.db
    with db.transaction() as s:
        mid = members.create(s, ACTOR, MemberCreate(external_id="conflict")).member.id
    spec = (0, "sh1", "pos", 60, [("coffee", 1, 1_000)], False)
    first = _create(0, "cf", spec)
    first.member_id = mid
    with db.transaction() as s:
        orders.record(s, ACTOR, first)
    changed = first.model_copy(update={"amount_paid_minor": 2_000})
    changed.lines[0].unit_price_minor = 2_000
    other = _create(1, "cf", spec)
    other.member_id = mid
    with pytest.raises(OrderConflict) as exc, db.transaction() as s:
        orders.record_many(s, ACTOR, [other, changed], labels=["row 2", "row 3"])
    assert exc.value.detail.startswith("row 3: ")
    with db.transaction() as s:  # the batch rolled back: the other order was not written
        assert s.scalar(select(Order.id).where(Order.external_id == "cf-1")) is None
