"""Helpers shared by the HTTP integration tests (tests/integration/)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text

from loyalist.kit.db import Base, Database
from loyalist.programme import service as programmes
from tests.support import DEMO_PROGRAMME

PROBLEM = "application/problem+json"

# Every table a request could write to.
ALL_TABLES = tuple(t.name for t in Base.metadata.sorted_tables)


def counts(db: Database, tables: Iterable[str] = ALL_TABLES) -> dict[str, int]:
    """Row count per table: compare before and after to prove nothing was written."""
    with db.engine.connect() as conn:
        return {
            t: int(conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one()) for t in tables
        }


def assert_problem(
    resp: Any, status: int, code: str | None = None, field: str | None = None
) -> dict[str, Any]:
    """``resp`` is an RFC 9457 problem with this status (and code, and a field error)."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith(PROBLEM), resp.headers["content-type"]
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert isinstance(body["code"], str) and body["code"]
    assert body["title"]
    if code is not None:
        assert body["code"] == code, body
    if field is not None:
        fields = [e["field"] for e in body.get("errors", [])]
        assert field in fields, body
    return body


def new_member(client: Any, phone: str, **fields: Any) -> int:
    r = client.post("/v1/members", json={"phone": phone, **fields})
    assert r.status_code == 201, r.text
    member_id: int = r.json()["id"]
    return member_id


def demo_document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DEMO_PROGRAMME.read_text(encoding="utf-8"))
    return doc


def apply_document(db: Database, doc: dict[str, Any], actor: str = "test") -> int:
    with db.transaction() as s:
        pv, _created = programmes.apply(s, programmes.parse(doc), actor=actor)
        return pv.version


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def rows(db: Database, sql: str, **params: Any) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]
