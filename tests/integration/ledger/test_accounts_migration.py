"""Migration 0012 (shared points accounts) on the test backend: existing members each get
their own account with the same balances, entries and lots map to it, a member without an
account gets an empty one, later accounts get fresh ids; down and up again keep the
balances; the result matches the models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select
from tests.conftest import BACKEND, PG_URL

from loyalist.kit.db import Base, Database, UTCDateTime
from loyalist.kit.migrate import alembic_config
from loyalist.ledger import service as ledger
from loyalist.models import LedgerEntry, Member, PointsAccountMember, PointsLot

T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
T1 = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
EXPIRES = datetime(2027, 6, 1, 16, 0, tzinfo=UTC)
OURS = ("points_account", "points_account_member", "ledger_entry", "points_lot")


@pytest.fixture
def scratch_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the test backend, dropped afterwards."""
    if BACKEND != "postgres":
        yield f"sqlite:///{tmp_path / 'mig.db'}"
        return
    name = f"loyalist_mig_{uuid.uuid4().hex[:8]}"
    server = PG_URL.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _t(name: str, *cols: str, times: tuple[str, ...] = ()) -> Any:
    return sa.table(
        name, *[sa.column(c) for c in cols], *[sa.column(c, UTCDateTime()) for c in times]
    )


MEMBER = _t(
    "member",
    "id",
    "member_no",
    "org_path",
    "status",
    "tier_code",
    "tier_periods_below",
    times=("tier_since", "created_at", "updated_at"),
)
ACCOUNT_0011 = _t(
    "points_account",
    "member_id",
    "available",
    "pending",
    "debt",
    "lifetime_earned",
    times=("updated_at",),
)
ENTRY = _t(
    "ledger_entry",
    "id",
    "member_id",
    "kind",
    "delta_available",
    "delta_pending",
    "delta_debt",
    "dedupe_key",
    times=("occurred_at", "created_at"),
)
LOT = _t(
    "points_lot",
    "id",
    "member_id",
    "entry_id",
    "points",
    "remaining",
    "status",
    times=("earned_at", "available_at", "expires_at"),
)
ALLOC = _t("lot_allocation", "entry_id", "lot_id", "points")


def _seed_0011(url: str) -> None:
    """Three members (5, 6, 9); 5 earned 100 and spent 30, 6 has 40 pending, 9 has no
    account row at all."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                MEMBER.insert(),
                [
                    {
                        "id": mid,
                        "member_no": f"M{mid}",
                        "org_path": "/",
                        "status": "active",
                        "tier_code": "base",
                        "tier_periods_below": 0,
                        "tier_since": T0,
                        "created_at": T0,
                        "updated_at": T0,
                    }
                    for mid in (5, 6, 9)
                ],
            )
            conn.execute(
                ACCOUNT_0011.insert(),
                [
                    {
                        "member_id": 5,
                        "available": 70,
                        "pending": 0,
                        "debt": 0,
                        "lifetime_earned": 100,
                        "updated_at": T1,
                    },
                    {
                        "member_id": 6,
                        "available": 0,
                        "pending": 40,
                        "debt": 0,
                        "lifetime_earned": 40,
                        "updated_at": T1,
                    },
                ],
            )
            entry = {"delta_debt": 0, "occurred_at": T1, "created_at": T1}
            conn.execute(
                ENTRY.insert(),
                [
                    {"id": 1, "member_id": 5, "kind": "earn", "delta_available": 100}
                    | {"delta_pending": 0, "dedupe_key": "order:1:earn"}
                    | entry,
                    {"id": 2, "member_id": 5, "kind": "redeem", "delta_available": -30}
                    | {"delta_pending": 0, "dedupe_key": None}
                    | entry,
                    {"id": 3, "member_id": 6, "kind": "earn", "delta_available": 0}
                    | {"delta_pending": 40, "dedupe_key": "order:2:earn"}
                    | entry,
                ],
            )
            lot = {"earned_at": T1, "available_at": T1, "expires_at": EXPIRES}
            conn.execute(
                LOT.insert(),
                [
                    {"id": 1, "member_id": 5, "entry_id": 1, "points": 100, "remaining": 70}
                    | {"status": "available"}
                    | lot,
                    {"id": 2, "member_id": 6, "entry_id": 3, "points": 40, "remaining": 40}
                    | {"status": "pending"}
                    | lot,
                ],
            )
            conn.execute(ALLOC.insert(), [{"entry_id": 2, "lot_id": 1, "points": -30}])
    finally:
        engine.dispose()


def _balances_0011(url: str) -> list[tuple[int, int, int, int, int]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)  # type: ignore[misc]
                for r in conn.execute(
                    sa.text(
                        "SELECT member_id, available, pending, debt, lifetime_earned "
                        "FROM points_account ORDER BY member_id"
                    )
                )
            ]
    finally:
        engine.dispose()


def test_each_member_gets_their_own_account_with_the_same_balances(scratch_url: str) -> None:
    cfg = alembic_config(scratch_url)
    command.upgrade(cfg, "0011")
    _seed_0011(scratch_url)
    before = _balances_0011(scratch_url)
    assert before == [(5, 70, 0, 0, 100), (6, 0, 40, 0, 40)]

    command.upgrade(cfg, "head")
    db = Database(scratch_url)
    try:
        with db.transaction() as s:
            accounts = {
                mid: ledger.get_account(s, mid) for mid in s.scalars(select(Member.id)).all()
            }
            assert {
                mid: (a.id, a.owner_member_id, a.available, a.pending, a.debt, a.lifetime_earned)
                for mid, a in accounts.items()
            } == {
                5: (5, 5, 70, 0, 0, 100),
                6: (6, 6, 0, 40, 0, 40),
                9: (9, 9, 0, 0, 0, 0),
            }
            memberships = s.scalars(select(PointsAccountMember).order_by(PointsAccountMember.id))
            assert [
                (m.account_id, m.member_id, m.role, m.can_spend, m.left_at) for m in memberships
            ] == [
                (5, 5, "owner", True, None),
                (6, 6, "owner", True, None),
                (9, 9, "owner", True, None),
            ]
            entries = s.execute(
                select(LedgerEntry.id, LedgerEntry.account_id, LedgerEntry.member_id)
            )
            assert sorted(tuple(e) for e in entries) == [(1, 5, 5), (2, 5, 5), (3, 6, 6)]
            lots = s.execute(select(PointsLot.id, PointsLot.account_id, PointsLot.member_id))
            assert sorted(tuple(x) for x in lots) == [(1, 5, 5), (2, 6, 6)]
            checked, problems = ledger.verify(s)
            assert (checked, problems) == (3, [])
            # The next account gets a fresh id after the largest migrated one.
            s.add(
                Member(
                    id=20,
                    member_no="M20",
                    org_path="/",
                    status="active",
                    tier_code="base",
                    tier_since=T1,
                    tier_periods_below=0,
                    created_at=T1,
                    updated_at=T1,
                )
            )
            s.flush()
            assert ledger.open_account(s, 20).id == 10
    finally:
        db.dispose()

    engine = create_engine(scratch_url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert [d for d in diffs if any(f"'{t}'" in repr(d) for t in OURS)] == []

    command.downgrade(cfg, "0011")
    assert _balances_0011(scratch_url) == [*before, (9, 0, 0, 0, 0), (20, 0, 0, 0, 0)]
    command.upgrade(cfg, "head")
    db = Database(scratch_url)
    try:
        with db.transaction() as s:
            assert ledger.get_account(s, 5).available == 70
            assert ledger.verify(s) == (4, [])
    finally:
        db.dispose()
