"""The demo builder: a small demo on a real database is consistent, says what it holds,
is the same for the same seed, creates the staff users it prints, and a second run without
--reset changes nothing but issuing a new API key."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tests.itest import counts

from loyalist.access import service as access
from loyalist.access.permissions import ROLES
from loyalist.demo import build
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.models import (
    LedgerEntry,
    Member,
    Order,
    OrderReturn,
    OutboxEvent,
    PointsAccount,
    PointsLot,
    ProgrammeVersion,
    Redemption,
    StaffUser,
    TierChange,
)
from loyalist.org import service as org
from loyalist.staff import service as staff


def _run(db: Database, **kw: Any) -> str:
    out = io.StringIO()
    console = Console(file=out, width=240, color_system=None, force_terminal=False)
    args: dict[str, Any] = {"members": 150, "months": 3, "seed": 11, "reset": False}
    build.run(db, console=console, **{**args, **kw})
    return out.getvalue()


def _row(text: str, label: str) -> str:
    """The value cell of a row of the summary table."""
    m = re.search(rf"│ {label}\s+│ (.+?)\s+│", text)
    assert m is not None, f"no {label!r} row in:\n{text}"
    return m.group(1)


def _events(s: Session, type_: str) -> int:
    q = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == type_)
    return int(s.scalar(q) or 0)


def _fingerprint(db: Database) -> str:
    """Everything the demo made, without the random parts (event ids, key secrets)."""
    h = hashlib.sha256()
    with db.transaction() as s:
        queries = [
            select(
                Member.id,
                Member.phone,
                Member.email,
                Member.name,
                Member.birthday,
                Member.gender,
                Member.home_store_id,
                Member.tier_code,
                Member.created_at,
            ).order_by(Member.id),
            select(
                PointsAccount.owner_member_id,
                PointsAccount.available,
                PointsAccount.pending,
                PointsAccount.debt,
                PointsAccount.lifetime_earned,
            ).order_by(PointsAccount.owner_member_id),
            select(
                Order.external_id,
                Order.member_id,
                Order.store_id,
                Order.channel,
                Order.occurred_at,
                Order.amount_paid_minor,
                Order.points_paid,
                Order.points_earned,
                Order.status,
            ).order_by(Order.id),
            select(
                LedgerEntry.member_id,
                LedgerEntry.kind,
                LedgerEntry.delta_available,
                LedgerEntry.delta_pending,
                LedgerEntry.delta_debt,
                LedgerEntry.source_type,
                LedgerEntry.source_id,
                LedgerEntry.reason,
                LedgerEntry.occurred_at,
            ).order_by(LedgerEntry.id),
            select(
                PointsLot.member_id,
                PointsLot.points,
                PointsLot.remaining,
                PointsLot.status,
                PointsLot.expires_at,
            ).order_by(PointsLot.id),
            select(Redemption.member_id, Redemption.reward_id, Redemption.status).order_by(
                Redemption.id
            ),
            select(OrderReturn.external_id, OrderReturn.order_id).order_by(OrderReturn.id),
            select(TierChange.member_id, TierChange.from_tier, TierChange.to_tier).order_by(
                TierChange.id
            ),
            select(OutboxEvent.type, OutboxEvent.member_id, OutboxEvent.occurred_at).order_by(
                OutboxEvent.id
            ),
        ]
        for q in queries:
            for row in s.execute(q):
                h.update(repr(tuple(row)).encode())
            h.update(b"|")
    return h.hexdigest()


def test_a_small_demo_is_consistent_and_says_what_it_holds(db: Database, clock: Any) -> None:
    text = _run(db)

    with db.transaction() as s:
        checked, problems = ledger.verify(s)
        n_members = s.scalar(select(func.count()).select_from(Member))
        n_orders = s.scalar(select(func.count()).select_from(Order))
        anonymous = s.scalar(
            select(func.count()).select_from(Order).where(Order.member_id.is_(None))
        )
        n_returns = s.scalar(select(func.count()).select_from(OrderReturn))
        n_redemptions = s.scalar(select(func.count()).select_from(Redemption))
        cancelled = s.scalar(
            select(func.count()).select_from(Redemption).where(Redemption.status == "cancelled")
        )
        n_events = s.scalar(select(func.count()).select_from(OutboxEvent))
        joined = _events(s, "member.created")
        earned = s.scalar(
            select(func.sum(LedgerEntry.delta_available + LedgerEntry.delta_pending)).where(
                LedgerEntry.kind == "earn"
            )
        )
        available, pending = s.execute(
            select(func.sum(PointsAccount.available), func.sum(PointsAccount.pending))
        ).one()
        versions = s.scalar(select(func.count()).select_from(ProgrammeVersion))

    assert (checked, problems) == (150, [])
    assert n_members == 150 and joined == 150
    assert n_orders and anonymous and n_returns and n_redemptions and earned
    assert 0 < anonymous < n_orders
    assert _row(text, "members") == "150"
    assert _row(text, "orders").startswith(f"{n_orders:,} ({anonymous:,} anonymous), sales ¥")
    assert _row(text, "orders").endswith(f"({n_returns:,} returns)")
    assert _row(text, "redemptions") == f"{n_redemptions:,} ({cancelled:,} cancelled)"
    assert _row(text, "points").startswith(f"issued {earned:,} · redeemed ")
    assert _row(text, "balances") == f"available {available:,} · pending {pending:,} · debt 0"
    assert _row(text, "events") == f"{n_events:,} in the outbox"
    assert _row(text, "ledger") == "verified: 150 accounts, cache = entries = lots"
    assert _row(text, "programme").startswith(f"version {versions} of {versions} ")
    assert "stores      │ 20 (3 regions)" in text

    # one staff user per role, and the logins printed are the ones that work
    with db.transaction() as s:
        roles = sorted(s.scalars(select(StaffUser.role)))
        printed = staff.ensure_demo_users(s)  # the list the summary printed
    assert roles == sorted(ROLES)
    assert len(printed) == len(ROLES)
    for login, password, role, _unit in printed:
        assert re.search(rf"{role}\s+{re.escape(login)}\s+{re.escape(password)}\s", text), login
        with db.transaction() as s:
            assert staff.login(s, login, password).ok, login
    with db.transaction() as s:
        assert not staff.login(s, "admin", "not-the-password").ok

    # where to go: console, member page with a member to try, the API key that works
    assert "http://127.0.0.1:8000/admin" in text
    assert "http://127.0.0.1:8000/m" in text
    phone = re.search(r"try member (1\d{10}) \(", text)
    assert phone is not None, text
    with db.transaction() as s:
        assert s.scalar(select(Member.id).where(Member.phone == "+86" + phone.group(1)))
    key = re.search(r"export LOYALIST_KEY=(lk_\S+)", text)
    assert key is not None
    with db.transaction() as s:
        actor = access.authenticate(s, key.group(1))
        hq = org.get_hq(s)
        assert hq is not None
        assert (actor.scope_path, actor.can_write) == (hq.path, True)


def test_a_second_run_without_reset_changes_nothing_but_a_new_api_key(
    db: Database, clock: Any
) -> None:
    _run(db, members=60, months=2)
    before = counts(db)
    fingerprint = _fingerprint(db)

    text = _run(db, members=60, months=2)

    after = counts(db)
    assert "Demo data already exists" in text
    assert "demo built in" not in text
    assert {t: after[t] - before[t] for t in after if after[t] != before[t]} == {"api_key": 1}
    assert _fingerprint(db) == fingerprint


def test_the_demo_is_the_same_for_the_same_seed(db: Database, clock: Any) -> None:
    _run(db, members=50, months=2, seed=5)
    first = _fingerprint(db)
    _run(db, members=50, months=2, seed=5, reset=True)
    assert _fingerprint(db) == first
    _run(db, members=50, months=2, seed=6, reset=True)
    assert _fingerprint(db) != first


def test_a_history_across_two_year_ends_shows_points_expiring(db: Database, clock: Any) -> None:
    """Points earned (or carried over) in 2024 expire at the end of 2025, Shanghai time,
    with reminders 30 and 7 days before; the expiry job took exactly what was left."""
    clock.freeze(datetime(2026, 1, 20, 4, 0, tzinfo=UTC))
    text = _run(db, members=40, months=14, seed=3)

    year_end = datetime(2025, 12, 31, 16, 0, tzinfo=UTC)
    with db.transaction() as s:
        expired = list(
            s.execute(
                select(LedgerEntry.delta_available, LedgerEntry.occurred_at).where(
                    LedgerEntry.kind == "expire"
                )
            )
        )
        lots = list(
            s.execute(
                select(PointsLot.points, PointsLot.remaining, PointsLot.earned_at).where(
                    PointsLot.status == "expired"
                )
            )
        )
        reminders = sorted(
            {
                int(e.payload["days_before"])
                for e in s.scalars(select(OutboxEvent).where(OutboxEvent.type == "points.expiring"))
            }
        )
        n_expired_events = _events(s, "points.expired")
        checked, problems = ledger.verify(s)

    assert (checked, problems) == (40, [])
    assert expired, "nothing expired"
    assert {at for _n, at in expired} == {year_end}
    assert all(n < 0 for n, _at in expired)
    assert n_expired_events == len(expired)
    assert all(remaining == 0 and earned.year == 2024 for _p, remaining, earned in lots)
    assert reminders == [7, 30]
    total = -sum(n for n, _at in expired)
    assert f"expired {total:,}" in _row(text, "points")
