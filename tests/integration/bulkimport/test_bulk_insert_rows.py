"""``kit.bulk.insert_rows`` (COPY on PostgreSQL, a multi-row INSERT on SQLite) stores what
an ORM INSERT of the same rows stores: ids in the rows' order, JSON values (``None`` as
JSON ``null``, non-ASCII text), column defaults, times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select

from loyalist.kit import bulk
from loyalist.kit.db import Database
from loyalist.models import AuditLog, OutboxEvent

AT = datetime(2026, 6, 10, 4, 0, 0, 123456, tzinfo=UTC)


def _audit(n: int, after: Any) -> dict[str, Any]:
    return {
        "actor": "test",
        "principal": "test",
        "action": "order.record",
        "object_type": "order",
        "object_id": str(n),
        "before": None,
        "after": after,
        "org_path": "/hq/",
        "occurred_at": AT,
    }


def test_insert_rows_stores_what_an_orm_insert_stores(db: Database) -> None:
    table = cast(Table, AuditLog.__table__)
    afters: list[Any] = [
        {"external_id": "门店-1", "points": 12, "nested": {"b": [1, 2], "a": None}},
        None,
        [],
        {"big": 2**70},  # past 64 bits: orjson refuses it, json.dumps writes it
    ]
    with db.transaction() as s:
        ids = bulk.insert_rows(s, table, [_audit(n, a) for n, a in enumerate(afters)], ids=True)
        assert bulk.insert_rows(s, table, [_audit(9, {"x": 1})]) == []
        s.add(AuditLog(**_audit(10, afters[0])))
    assert len(ids) == 4 and ids == sorted(ids) and len(set(ids)) == 4
    with db.transaction() as s:
        got = s.execute(select(AuditLog).order_by(AuditLog.id)).scalars().all()
        assert [a.object_id for a in got] == ["0", "1", "2", "3", "9", "10"]
        assert [a.id for a in got[:4]] == ids
        assert [a.after for a in got] == [*afters, {"x": 1}, afters[0]]
        assert all(a.before is None for a in got)
        assert {a.occurred_at.replace(tzinfo=UTC) for a in got} == {AT}
        # None in a JSON column is JSON null, as the ORM stores it
        nulls = s.execute(
            select(AuditLog.object_id).where(AuditLog.after.is_(None)).order_by(AuditLog.id)
        ).all()
        assert nulls == []


def test_insert_rows_of_no_rows_writes_nothing(db: Database) -> None:
    with db.transaction() as s:
        assert bulk.insert_rows(s, cast(Table, OutboxEvent.__table__), [], ids=True) == []
        assert s.execute(select(OutboxEvent.id)).all() == []
