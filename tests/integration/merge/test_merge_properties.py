"""Property (hypothesis, small): whatever lots two members hold (available or pending,
with any expiry) and whatever they spent, a merge keeps the total of points, every lot's
expiry and a clean ledger verify (hash chains intact); its undo gives each member back
exactly what they had."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import utcnow
from loyalist.ledger import service as ledger
from loyalist.ledger.service import Cause
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.merge import service as merges
from loyalist.models import PointsLot

LOT = st.tuples(
    st.integers(min_value=1, max_value=5_000),  # points
    st.booleans(),  # pending
    st.sampled_from([None, 30, 400]),  # expires in days (None: never)
)
SIDE = st.tuples(st.lists(LOT, max_size=4), st.integers(min_value=0, max_value=3_000))

_phones = iter(range(13_800_000_000, 13_899_999_999))


def _member(s: Any, lots: list[tuple[int, bool, int | None]], spend: int) -> int:
    joined = members.create(s, SYSTEM, MemberCreate(phone=str(next(_phones))))
    mid = joined.member.id
    acct = ledger.lock(s, mid, joined.member.org_path)
    now = utcnow()
    for n, (points, pending, days) in enumerate(lots):
        ledger.credit(
            s,
            acct,
            points,
            Cause(source_type="test", source_id=f"{mid}-{n}", actor="test"),
            kind="earn",
            earned_at=now,
            available_at=now + timedelta(days=7) if pending else now,
            expires_at=now + timedelta(days=days) if days else None,
        )
    spend = min(spend, acct.row.available)
    if spend:
        ledger.debit(s, acct, spend, Cause(actor="test", reason="spend"), kind="redeem")
    return mid


def _state(s: Any, mid: int) -> tuple[Any, ...]:
    acct = ledger.own_account(s, mid)
    lots = sorted(
        (x.remaining, x.status, x.available_at, x.expires_at.isoformat() if x.expires_at else "")
        for x in s.scalars(
            select(PointsLot).where(PointsLot.account_id == acct.id, PointsLot.remaining > 0)
        )
        if x.status in ("available", "pending")
    )
    return (acct.available, acct.pending, acct.debt, acct.lifetime_earned, lots)


def test_merge_keeps_points_and_the_ledger_verifies(world: Any) -> None:
    @settings(
        max_examples=12,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(survivor=SIDE, merged=SIDE)
    def check(survivor: Any, merged: Any) -> None:
        with world.db.transaction() as s:
            a = _member(s, *survivor)
            b = _member(s, *merged)
        with world.db.transaction() as s:
            before_a, before_b = _state(s, a), _state(s, b)
            row = merges.merge(s, SYSTEM, a, b)
            merge_id = row.id
        with world.db.transaction() as s:
            after = _state(s, a)
            assert after[:4] == tuple(
                x + y for x, y in zip(before_a[:4], before_b[:4], strict=True)
            )
            assert after[4] == sorted(before_a[4] + before_b[4])
            assert _state(s, b) == (0, 0, 0, 0, [])
            assert ledger.verify(s)[1] == []
        with world.db.transaction() as s:
            merges.undo(s, SYSTEM, merge_id)
        with world.db.transaction() as s:
            assert (_state(s, a), _state(s, b)) == (before_a, before_b)
            assert ledger.verify(s)[1] == []

    check()
