"""A hypothesis state machine drives the real services on the real database.

Random sequences of: record an order (earning; some pay part with points, some are
back-dated), advance the clock and run activation, return part or all of an order, redeem,
cancel a redemption, advance past expiry and run expiry, positive and negative staff
adjustments, a debit larger than what is available (pending would cover it), and replays of
a source document (same order external id, same return id).

A small in-memory model of the member's lots predicts every lot (remaining, status) and the
balance (available / pending / debt). After every step the database must agree with the
model exactly, and independently of the model:

* cache = Σ entries = Σ open lots − debt, pending = Σ pending lots (``ledger.verify`` and
  our own queries);
* no lot below zero;
* pending points are never spent (a debit larger than available fails, writing nothing,
  even when pending would cover it);
* debits consume the soonest-expiring lots first, so expiry takes the latest ones;
* a source document credits once (one earn entry per order, one clawback per return).

Shared accounts: two more members join and leave the first member's account (the pool)
at random, with or without permission to spend; orders and redemptions are made by any
member drawing on the pool. A member without permission is refused (nothing written);
returns and cancellations go back to the pool even after the member who made them left;
every member drawing on the pool sees its balance, the others' own accounts stay empty,
and every earn and redeem entry names the member whose order or redemption caused it.

Each example gets a fresh database (SQLite: a copy of the migrated template; PostgreSQL:
every table truncated).
"""

from __future__ import annotations

import calendar
import copy
import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from tests.support import fresh_database

from loyalist.errors import LoyalistError
from loyalist.household import service as households
from loyalist.household.schemas import InvitationCreate
from loyalist.jobs import service as jobs
from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import clock
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.ledger.errors import InsufficientPoints, SpendNotPermitted
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import Household, LedgerEntry, LotAllocation, Order, PointsLot, Redemption
from loyalist.order import service as orders
from loyalist.order.errors import OrderConflict
from loyalist.order.schemas import OrderCreate, ReturnCreate
from loyalist.org import service as org
from loyalist.programme import service as programmes
from loyalist.programme.domain import allocate_proportionally
from loyalist.reward import service as rewards
from loyalist.reward.schemas import RedemptionCancel, RedemptionCreate

START = datetime(2026, 6, 10, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
TZ_OFFSET = timedelta(hours=8)  # Asia/Shanghai: no daylight saving
PENDING_DAYS = 3
REWARD_POINTS = 10

PROGRAMME: dict[str, Any] = {
    "name": "state machine",
    "currency": "CNY",
    "timezone": "Asia/Shanghai",
    "points": {
        "pending_days": PENDING_DAYS,
        "rounding": "floor",
        "expiry": {"kind": "rolling_months", "months": 1},
        "reminder_days": [7],
        "negative_balance": "carry_debt",
    },
    "tiers": {
        "metric": "spend",
        "levels": [
            {"code": "base", "name": "Base", "threshold": 0},
            {"code": "silver", "name": "Silver", "threshold": 10**12},
            {"code": "gold", "name": "Gold", "threshold": 10**13},
        ],
    },
    "earning": {"base": {"points_per_unit": 1, "unit_minor": 100}},
    "rewards": [{"code": "r10", "name": "Ten", "points": REWARD_POINTS}],
}


# --- the model's own (independent) date rules for Asia/Shanghai -------------------------


def _local_date(t: datetime) -> date:
    return (t + TZ_OFFSET).date()


def _start_of_local(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC) - TZ_OFFSET


def model_available_at(earned: datetime) -> datetime:
    return _start_of_local(_local_date(earned) + timedelta(days=PENDING_DAYS + 1))


def model_expires_at(earned: datetime) -> datetime:
    d = _local_date(earned)
    y, m = (d.year, d.month + 1) if d.month < 12 else (d.year + 1, 1)
    last_valid = date(y, m, min(d.day, calendar.monthrange(y, m)[1]))
    return _start_of_local(last_valid + timedelta(days=1))


# --- the model --------------------------------------------------------------------------


@dataclass
class MLot:
    id: int
    remaining: int
    status: str
    expires_at: datetime
    expired: int = 0  # points of this lot that expired
    reported: int = 0  # of those, reported as expired by returns of its order


@dataclass
class Model:
    now: datetime
    lots: dict[int, MLot] = field(default_factory=dict)
    available: int = 0
    pending: int = 0
    debt: int = 0

    def _key(self, lot: MLot) -> tuple[datetime, int]:
        return (lot.expires_at, lot.id)

    def expire_due(self) -> None:
        for lot in sorted(self.lots.values(), key=self._key):
            if lot.status == "available" and lot.expires_at <= self.now:
                self.available -= lot.remaining
                lot.expired += lot.remaining
                lot.remaining = 0
                lot.status = "expired"

    def open_lots(self) -> list[MLot]:
        return sorted(
            (
                x
                for x in self.lots.values()
                if x.status == "available" and x.remaining > 0 and x.expires_at > self.now
            ),
            key=self._key,
        )

    def take(self, lots: list[MLot], points: int) -> dict[int, int]:
        plan: dict[int, int] = {}
        for lot in sorted(lots, key=self._key):
            if points == 0:
                break
            n = min(points, lot.remaining)
            if n:
                lot.remaining -= n
                if lot.remaining == 0:
                    lot.status = "closed"
                plan[lot.id] = n
                points -= n
        assert points == 0, "model: lots hold less than taken"
        return plan

    def settle_debt(self) -> None:
        if self.debt <= 0:
            return
        lots = self.open_lots()
        n = min(self.debt, sum(x.remaining for x in lots))
        if n:
            self.take(lots, n)
            self.debt -= n

    def credit(self, lot_id: int, points: int, available_at: datetime, expires: datetime) -> None:
        pending = available_at > self.now
        self.lots[lot_id] = MLot(lot_id, points, "pending" if pending else "available", expires)
        if pending:
            self.pending += points
        else:
            self.available += points
            self.settle_debt()

    def debit(self, points: int) -> dict[int, int] | None:
        """Spend available points FEFO; None (and no change) when there are too few."""
        before = copy.deepcopy((self.lots, self.available))
        self.expire_due()
        if self.available < points:
            self.lots, self.available = before
            return None
        plan = self.take(self.open_lots(), points)
        self.available -= points
        return plan

    def restore(self, outstanding: dict[int, int], points: int) -> None:
        order = sorted(
            (lid for lid, n in outstanding.items() if n > 0),
            key=lambda lid: self._key(self.lots[lid]),
            reverse=True,
        )
        self.available += points
        left = points
        for lid in order:
            if left == 0:
                break
            n = min(left, outstanding[lid])
            outstanding[lid] -= n
            left -= n
            lot = self.lots[lid]
            lot.remaining += n
            if lot.expires_at <= self.now:
                self.available -= lot.remaining
                lot.expired += lot.remaining
                lot.remaining = 0
                lot.status = "expired"
            elif lot.status == "closed":
                lot.status = "available"
        assert left == 0
        self.settle_debt()

    def clawback(self, points: int, own_id: int | None) -> int:
        """A return takes back only its own order's open points: pending first, then the
        lot's available remainder. Points of the lot that expired are reported (returned
        here), never taken elsewhere; what was spent becomes a debt (carry_debt)."""
        self.expire_due()
        own = self.lots.get(own_id) if own_id is not None else None
        open_own = own.remaining if own and own.status in ("pending", "available") else 0
        expired = 0
        if own is not None:
            expired = min(max(points - open_own, 0), own.expired - own.reported)
            own.reported += expired
        points -= expired
        from_pending = min(points, own.remaining) if own and own.status == "pending" else 0
        rest = points - from_pending
        from_own = min(rest, own.remaining) if own and own.status == "available" else 0
        to_debt = rest - from_own
        if own is not None and from_pending:
            own.remaining -= from_pending
            if own.remaining == 0:
                own.status = "void"
        if own is not None and from_own:
            own.remaining -= from_own
            if own.remaining == 0:
                own.status = "closed"
        self.pending -= from_pending
        self.available -= from_own + to_debt
        self.debt += to_debt
        self.settle_debt()  # a debt is paid at once from points the member holds
        return expired

    def activate_due(self) -> None:
        due = sorted(self.lots.values(), key=lambda x: (self._available_at[x.id], x.id))
        for lot in due:
            if lot.status == "pending" and self._available_at[lot.id] <= self.now:
                n = lot.remaining
                lot.status = "available" if n > 0 else "void"
                if n:
                    self.available += n
                    self.pending -= n
                    self.settle_debt()

    _available_at: dict[int, datetime] = field(default_factory=dict)


@dataclass
class MOrder:
    id: int
    external_id: str
    payload: dict[str, Any]
    prices: list[int]  # yuan per line (quantity 1 each)
    points: int
    points_paid: int
    lot_id: int | None
    pay_outstanding: dict[int, int]
    returned: set[int] = field(default_factory=set)
    returns: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class MRedemption:
    id: int
    points: int
    outstanding: dict[int, int]
    cancelled: bool = False


# --- the state machine ------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    template: str = ""
    workdir: Path = Path()
    _counter = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        clock.freeze(START)
        n = next(self._counter)
        url = fresh_database(self.template, self.workdir / f"sm{n}.db")
        self.db = Database(url)
        with self.db.transaction() as s:
            org.create_unit(s, code="hq", name="HQ", kind="hq")
            org.create_unit(s, code="r1", name="Region", kind="region", parent_code="hq")
            org.create_unit(s, code="s1", name="Store", kind="store", parent_code="r1")
            programmes.apply(s, programmes.parse(PROGRAMME), actor="test")
            self.member_id = members.create(s, SYSTEM, MemberCreate(external_id="m1")).member.id
            self.others = [
                members.create(s, SYSTEM, MemberCreate(external_id=f"m{i}")).member.id
                for i in (2, 3)
            ]
            self.pool = ledger.account_id_of(s, self.member_id)
            self.household = households.create(s, SYSTEM, self.member_id)[1].id
        # Members drawing on the pool → may they spend? (the owner always may)
        self.drawing: dict[int, bool] = {self.member_id: True}
        self.model = Model(now=START)
        self.orders: list[MOrder] = []
        self.redemptions: list[MRedemption] = []
        self.seq = itertools.count(1)

    def teardown(self) -> None:
        self.db.dispose()
        clock.reset()

    # helpers -------------------------------------------------------------------------

    def _new_lot_id(self, s: Any, source_type: str, source_id: str) -> int:
        lot_id = s.scalar(
            select(PointsLot.id).where(
                PointsLot.source_type == source_type, PointsLot.source_id == source_id
            )
        )
        assert lot_id is not None
        return int(lot_id)

    def _entry_count(self) -> int:
        with self.db.transaction() as s:
            return int(s.scalar(select(func.count()).select_from(LedgerEntry)) or 0)

    def _allocations(self, s: Any, entry_id: int) -> dict[int, int]:
        rows = s.execute(
            select(LotAllocation.lot_id, LotAllocation.points).where(
                LotAllocation.entry_id == entry_id
            )
        )
        return {int(lot): -int(n) for lot, n in rows}

    def _assert_fefo(self, s: Any, taken: dict[int, int], *, newer_than: int = 0) -> None:
        """Every lot a debit left open expires no sooner than any lot it used up.

        Lots created after the debit (``id > newer_than`` when given) are not considered.
        """
        if not taken:
            return
        q = select(PointsLot)
        if newer_than:
            q = q.where(PointsLot.id < newer_than)
        lots = {x.id: x for x in s.scalars(q)}
        used_up = [lots[i] for i in taken if lots[i].remaining == 0]
        if not used_up:
            return
        latest = max((x.expires_at, x.id) for x in used_up)
        for x in lots.values():
            if x.status == "available" and x.remaining > 0 and x.expires_at > self.model.now:
                assert (x.expires_at, x.id) > latest, (
                    f"lot {x.id} left open but lot {latest} (expiring later) was consumed"
                )

    def _debit_fails(self, points: int) -> None:
        before = self._entry_count()
        with pytest.raises(InsufficientPoints), self.db.transaction() as s:
            members.adjust_points(s, SYSTEM, self.member_id, -points, "too much")
        assert self._entry_count() == before  # nothing written, not even the lazy expiry

    def _refused(self, error: type[Exception], fn: Any, data: Any) -> None:
        before = self._entry_count()
        with pytest.raises(error), self.db.transaction() as s:
            fn(s, SYSTEM, data)
        assert self._entry_count() == before

    # rules -----------------------------------------------------------------------------

    @precondition(lambda self: any(m not in self.drawing for m in self.others))
    @rule(data=st.data(), can_spend=st.booleans(), declined=st.booleans())
    def join_pool(self, data: st.DataObject, can_spend: bool, declined: bool) -> None:
        """The household's way in: an invitation, accepted (or declined: nothing moves)."""
        who = data.draw(st.sampled_from([m for m in self.others if m not in self.drawing]))
        before = self._entry_count()
        with self.db.transaction() as s:
            _new, inv = households.invite(
                s, SYSTEM, self.household, InvitationCreate(member_id=who, can_spend=can_spend)
            )
        with self.db.transaction() as s:
            if declined:
                assert households.decline(s, SYSTEM, inv.id).status == "declined"
            else:
                assert households.accept(s, SYSTEM, inv.id).status == "accepted"
        assert self._entry_count() == before  # joining writes no ledger entry
        if not declined:
            self.drawing[who] = can_spend

    @precondition(lambda self: any(m in self.drawing for m in self.others))
    @rule(data=st.data())
    def leave_pool(self, data: st.DataObject) -> None:
        who = data.draw(st.sampled_from([m for m in self.others if m in self.drawing]))
        with self.db.transaction() as s:
            households.leave(s, SYSTEM, self.household, who)
        del self.drawing[who]  # the pool keeps every point they earned

    @precondition(lambda self: any(m in self.drawing for m in self.others))
    @rule(data=st.data())
    def toggle_permission(self, data: st.DataObject) -> None:
        who = data.draw(st.sampled_from([m for m in self.others if m in self.drawing]))
        with self.db.transaction() as s:
            households.set_permission(s, SYSTEM, self.household, who, not self.drawing[who])
        self.drawing[who] = not self.drawing[who]

    @rule()
    def dissolve_and_form_again(self) -> None:
        """The household is dissolved (everyone leaves, the pool stays the main member's)
        and the main member forms a new one on the same account."""
        before = self._entry_count()
        with self.db.transaction() as s:
            gone = households.dissolve(s, SYSTEM, self.household)
            assert gone.status == "dissolved"
            created, h = households.create(s, SYSTEM, self.member_id)
            assert created and h.pool.account_id == self.pool
            self.household = h.id
        assert self._entry_count() == before
        self.drawing = {self.member_id: True}

    @rule(
        prices=st.lists(st.integers(1, 60), min_size=1, max_size=3),
        back_hours=st.one_of(st.just(0), st.integers(0, 24 * 40)),
        points_paid=st.one_of(st.just(0), st.integers(1, 80)),
        data=st.data(),
    )
    def record_order(
        self, prices: list[int], back_hours: int, points_paid: int, data: st.DataObject
    ) -> None:
        who = data.draw(st.sampled_from(sorted(self.drawing)), label="member")
        n = next(self.seq)
        occurred = self.model.now - timedelta(hours=back_hours)
        payload = {
            "external_id": f"o{n}",
            "member_id": who,
            "store": "s1",
            "channel": "pos",
            "occurred_at": occurred.isoformat(),
            "currency": "CNY",
            "amount_paid_minor": sum(prices) * 100,
            "points_paid": points_paid,
            "lines": [
                {"sku": f"SKU{i}", "category": "c", "quantity": 1, "unit_price_minor": p * 100}
                for i, p in enumerate(prices)
            ],
        }
        points = sum(prices)
        if points_paid and not self.drawing[who]:  # paying with the pool needs permission
            self._refused(SpendNotPermitted, orders.record, OrderCreate.model_validate(payload))
            return
        trial = copy.deepcopy(self.model)
        pay_plan: dict[int, int] | None = {}
        if points_paid:
            pay_plan = trial.debit(points_paid)
        if pay_plan is None:  # not enough available points to pay with: nothing recorded
            before = self._entry_count()
            with pytest.raises(InsufficientPoints), self.db.transaction() as s:
                orders.record(s, SYSTEM, OrderCreate.model_validate(payload))
            assert self._entry_count() == before
            return
        with self.db.transaction() as s:
            rec = orders.record(s, SYSTEM, OrderCreate.model_validate(payload))
            assert rec.created
            order = rec.order
            assert order.points_earned == points
            assert {int(k): v for k, v in order.line_points.items()} == {
                i + 1: p for i, p in enumerate(prices)
            }
            lot_id = self._new_lot_id(s, "order", str(order.id))
            if points_paid:
                pay = s.scalar(
                    select(LedgerEntry).where(LedgerEntry.dedupe_key == f"order:{order.id}:pay")
                )
                assert pay is not None
                assert self._allocations(s, pay.id) == pay_plan
            order_id = order.id
        trial.credit(lot_id, points, model_available_at(occurred), model_expires_at(occurred))
        trial._available_at[lot_id] = model_available_at(occurred)
        trial.expire_due()
        self.model = trial
        self.orders.append(
            MOrder(order_id, f"o{n}", payload, prices, points, points_paid, lot_id, pay_plan or {})
        )
        if pay_plan:
            with self.db.transaction() as s:
                self._assert_fefo(s, pay_plan, newer_than=lot_id)

    @rule(days=st.integers(0, 6), hours=st.integers(0, 23))
    def advance_and_activate(self, days: int, hours: int) -> None:
        self.model.now += timedelta(days=days, hours=hours)
        clock.freeze(self.model.now)
        jobs.activate_pending(self.db)
        self.model.activate_due()

    @rule(days=st.integers(15, 45))
    def advance_and_expire(self, days: int) -> None:
        self.model.now += timedelta(days=days)
        clock.freeze(self.model.now)
        jobs.expire_points(self.db)
        self.model.expire_due()
        with self.db.transaction() as s:
            due = s.scalar(
                select(func.count())
                .select_from(PointsLot)
                .where(PointsLot.status == "available", PointsLot.expires_at <= self.model.now)
            )
            assert due == 0

    @precondition(lambda self: any(len(o.returned) < len(o.prices) for o in self.orders))
    @rule(data=st.data())
    def return_order(self, data: st.DataObject) -> None:
        candidates = [o for o in self.orders if len(o.returned) < len(o.prices)]
        o = data.draw(st.sampled_from(candidates), label="order")
        left = [i + 1 for i in range(len(o.prices)) if i + 1 not in o.returned]
        full = data.draw(st.booleans(), label="full")
        nos = left if full else data.draw(st.lists(st.sampled_from(left), min_size=1, unique=True))
        return_id = f"ret{next(self.seq)}"
        body: dict[str, Any] = {"return_id": return_id}
        if full:
            body["full"] = True
        else:
            body["lines"] = [{"line_no": no, "quantity": 1} for no in nos]
        claw = sum(o.prices[no - 1] for no in nos)
        pay_share = (
            allocate_proportionally(o.points_paid, o.prices) if o.points_paid else [0] * len(nos)
        )
        restore = sum(pay_share[no - 1] for no in nos) if o.points_paid else 0
        with self.db.transaction() as s:
            res = orders.record_return(s, SYSTEM, o.id, ReturnCreate.model_validate(body))
            assert res.created
            assert res.ret.points_restored == restore
            clawed, waived = res.ret.points_clawed, res.ret.points_waived
            expired = res.ret.points_expired
            assert clawed + waived + expired == claw
            assert waived == 0  # carry_debt: nothing is waived
            ret_id = res.ret.id
        if restore:
            self.model.restore(o.pay_outstanding, restore)
        if claw:
            assert expired == self.model.clawback(claw, o.lot_id)
        # the return's clawback touched no lot but its own order's
        with self.db.transaction() as s:
            touched = set(
                s.scalars(
                    select(LotAllocation.lot_id)
                    .join(LedgerEntry, LedgerEntry.id == LotAllocation.entry_id)
                    .where(
                        LedgerEntry.kind == "clawback",
                        LedgerEntry.source_type == "return",
                        LedgerEntry.source_id == str(ret_id),
                    )
                )
            )
        assert touched <= ({o.lot_id} if o.lot_id is not None else set())
        o.returned.update(nos)
        o.returns.append((return_id, body))

    @rule(quantity=st.integers(1, 3), data=st.data())
    def redeem(self, quantity: int, data: st.DataObject) -> None:
        who = data.draw(st.sampled_from(sorted(self.drawing)), label="member")
        points = REWARD_POINTS * quantity
        req = RedemptionCreate(member_id=who, reward="r10", quantity=quantity)
        if not self.drawing[who]:
            self._refused(SpendNotPermitted, rewards.redeem, req)
            return
        trial = copy.deepcopy(self.model)
        plan = trial.debit(points)
        if plan is None:
            before = self._entry_count()
            with pytest.raises(InsufficientPoints), self.db.transaction() as s:
                rewards.redeem(s, SYSTEM, req)
            assert self._entry_count() == before
            return
        with self.db.transaction() as s:
            r = rewards.redeem(s, SYSTEM, req)
            assert r.points == points
            assert self._allocations(s, r.entry_id) == plan
            self._assert_fefo(s, plan)
            rid = r.id
        self.model = trial
        self.redemptions.append(MRedemption(rid, points, dict(plan)))

    @precondition(lambda self: any(not r.cancelled for r in self.redemptions))
    @rule(data=st.data())
    def cancel_redemption(self, data: st.DataObject) -> None:
        r = data.draw(st.sampled_from([r for r in self.redemptions if not r.cancelled]))
        with self.db.transaction() as s:
            rewards.cancel(s, SYSTEM, r.id, RedemptionCancel(reason="changed mind"))
        self.model.restore(r.outstanding, r.points)
        r.cancelled = True
        # Cancelling twice is refused and changes nothing.
        before = self._entry_count()
        with pytest.raises(LoyalistError), self.db.transaction() as s:
            rewards.cancel(s, SYSTEM, r.id, RedemptionCancel(reason="again"))
        assert self._entry_count() == before

    @rule(points=st.integers(-60, 80).filter(lambda n: n != 0))
    def adjust(self, points: int) -> None:
        trial = copy.deepcopy(self.model)
        if points < 0:
            plan = trial.debit(-points)
            if plan is None:
                self._debit_fails(-points)
                return
            with self.db.transaction() as s:
                e = members.adjust_points(s, SYSTEM, self.member_id, points, "staff")
                assert self._allocations(s, e.id) == plan
                self._assert_fefo(s, plan)
        else:
            with self.db.transaction() as s:
                e = members.adjust_points(s, SYSTEM, self.member_id, points, "staff")
                lot = s.scalar(select(PointsLot).where(PointsLot.entry_id == e.id))
                assert lot is not None
                lot_id = lot.id
            trial.credit(lot_id, points, trial.now, model_expires_at(trial.now))
            trial._available_at[lot_id] = trial.now
        self.model = trial

    @precondition(lambda self: self.model.pending > 0)
    @rule(data=st.data())
    def spend_pending(self, data: st.DataObject) -> None:
        """A debit that only pending points could cover fails and writes nothing."""
        trial = copy.deepcopy(self.model)
        trial.expire_due()
        have = max(trial.available, 0)
        points = data.draw(st.integers(have + 1, have + trial.pending), label="points")
        self._debit_fails(points)

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data(), change=st.booleans())
    def replay_order(self, data: st.DataObject, change: bool) -> None:
        o = data.draw(st.sampled_from(self.orders), label="order")
        before = self._entry_count()
        if change:  # same external id, other content: refused
            other = {**o.payload, "amount_paid_minor": o.payload["amount_paid_minor"] + 100}
            with pytest.raises(OrderConflict), self.db.transaction() as s:
                orders.record(s, SYSTEM, OrderCreate.model_validate(other))
        else:
            with self.db.transaction() as s:
                rec = orders.record(s, SYSTEM, OrderCreate.model_validate(o.payload))
                assert not rec.created
                assert rec.order.id == o.id
        assert self._entry_count() == before

    @precondition(lambda self: any(o.returns for o in self.orders))
    @rule(data=st.data())
    def replay_return(self, data: st.DataObject) -> None:
        o = data.draw(st.sampled_from([o for o in self.orders if o.returns]), label="order")
        _return_id, body = data.draw(st.sampled_from(o.returns), label="return")
        before = self._entry_count()
        with self.db.transaction() as s:
            res = orders.record_return(s, SYSTEM, o.id, ReturnCreate.model_validate(body))
            assert not res.created
        assert self._entry_count() == before

    # invariants ------------------------------------------------------------------------

    @invariant()
    def check(self) -> None:
        m = self.model
        with self.db.transaction() as s:
            checked, problems = ledger.verify(s)
            assert checked == 3
            assert problems == []
            acct = ledger.get_account(s, self.member_id)
            assert acct.id == self.pool
            assert (acct.available, acct.pending, acct.debt) == (m.available, m.pending, m.debt)
            for mid in self.others:  # on the pool: its balance; else their own, empty one
                mine = ledger.get_account(s, mid)
                assert (mine.id == self.pool) == (mid in self.drawing)
                if mid not in self.drawing:
                    assert (mine.available, mine.pending, mine.debt) == (0, 0, 0)
                    assert mine.owner_member_id == mid
            # Every earn and redeem entry names the member whose order or redemption it is.
            causes = s.execute(
                select(LedgerEntry.kind, LedgerEntry.member_id, Order.member_id)
                .join(Order, Order.id == func.cast(LedgerEntry.source_id, Order.id.type))
                .where(LedgerEntry.source_type == "order")
            ).all()
            assert all(caused == ordered for _k, caused, ordered in causes)
            redeemed = s.execute(
                select(LedgerEntry.member_id, Redemption.member_id).join(
                    Redemption, Redemption.entry_id == LedgerEntry.id
                )
            ).all()
            assert all(caused == by for caused, by in redeemed)
            assert len(redeemed) == len(self.redemptions)
            # The household shows who draws on the pool now and what each member caused.
            h = households.household_out(s, s.get(Household, self.household))
            assert h.status == "active" and h.pool.account_id == self.pool
            now_in = {x.member_id: x.can_spend for x in h.members if x.left_at is None}
            assert now_in == self.drawing
            for x in h.members:  # every order earned into the pool, for its member
                assert x.earned == sum(
                    o.points for o in self.orders if o.payload["member_id"] == x.member_id
                )
            sums = s.execute(
                select(
                    func.coalesce(func.sum(LedgerEntry.delta_available), 0),
                    func.coalesce(func.sum(LedgerEntry.delta_pending), 0),
                    func.coalesce(func.sum(LedgerEntry.delta_debt), 0),
                ).where(LedgerEntry.account_id == self.pool)
            ).one()
            assert tuple(int(x) for x in sums) == (m.available, m.pending, m.debt)
            lots = {x.id: x for x in s.scalars(select(PointsLot))}
            assert all(x.remaining >= 0 for x in lots.values())
            open_sum = sum(x.remaining for x in lots.values() if x.status == "available")
            pending_sum = sum(x.remaining for x in lots.values() if x.status == "pending")
            assert open_sum - acct.debt == acct.available
            assert pending_sum == acct.pending
            assert acct.debt >= 0
            if acct.debt > 0:  # a debt is only carried while nothing else could pay it
                assert not any(
                    x.status == "available" and x.remaining > 0 and x.expires_at > m.now
                    for x in lots.values()
                )
            assert {i: (x.remaining, x.status, x.expires_at) for i, x in lots.items()} == {
                i: (x.remaining, x.status, x.expires_at) for i, x in m.lots.items()
            }
            # A source document credits once: one earn entry (and one lot) per order with
            # points; at most one clawback per return.
            earns = s.execute(
                select(LedgerEntry.source_id, func.count())
                .where(LedgerEntry.kind == "earn")
                .group_by(LedgerEntry.source_id)
            ).all()
            assert sorted((int(sid), int(c)) for sid, c in earns) == sorted(
                (o.id, 1) for o in self.orders if o.points
            )
            claws = s.execute(
                select(LedgerEntry.source_id, func.count())
                .where(LedgerEntry.kind == "clawback")
                .group_by(LedgerEntry.source_id)
            ).all()
            assert all(int(c) == 1 for _sid, c in claws)
            assert len(claws) <= sum(len(o.returns) for o in self.orders)


@pytest.mark.timeout(600)
def test_ledger_state_machine(_template: str, tmp_path: Path) -> None:
    LedgerMachine.template = _template
    LedgerMachine.workdir = tmp_path
    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=30,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                database=None,
            ),
        )
    finally:
        clock.reset()
