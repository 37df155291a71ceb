"""The member-read benchmark's database floor (benchmarks/read_floor.sql) stays in step with
the SELECTs GET /v1/members/{id} really issues: the same tables, those of their subqueries
too, the same number of statements, each once (issue 11)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from tests.itest import new_member
from tests.support import recorded_statements, script_counts

FLOOR = Path(__file__).parents[3] / "benchmarks" / "read_floor.sql"

_FROM = re.compile(r"\bFROM (\w+)", re.IGNORECASE)
_READS = re.compile(r"\b(?:FROM|JOIN) (\w+)", re.IGNORECASE)
_SUBQUERY = re.compile(r"\([^()]*\)")


def _select(statement: str) -> str | None:
    text = " ".join(statement.split())
    return text if text.upper().startswith("SELECT") else None


def table_read(statement: str) -> str | None:
    """The table a SELECT reads first, scalar subqueries left aside; None for anything else
    (BEGIN, COMMIT, writes)."""
    text = _select(statement)
    if text is None:
        return None
    while (outer := _SUBQUERY.sub("", text)) != text:
        text = outer
    m = _FROM.search(text)
    return m.group(1) if m else None


def tables_read(statement: str) -> tuple[str, ...] | None:
    """Every table a SELECT reads, its subqueries' included (sorted, each once)."""
    text = _select(statement)
    return None if text is None else tuple(sorted(set(_READS.findall(text))))


def floor_reads() -> Counter[str]:
    return script_counts(FLOOR, table_read)


def test_floor_script_issues_the_selects_of_a_member_read(client: Any, world: Any) -> None:
    mid = new_member(client, "13800000001", name="张三")
    r = client.post(f"/v1/members/{mid}/adjustments", json={"points": 3000, "reason": "setup"})
    assert r.status_code == 201, r.text
    assert client.get(f"/v1/members/{mid}").status_code == 200  # warm: programme cached
    with recorded_statements(world.db.engine) as seen:
        r = client.get(f"/v1/members/{mid}")
    assert r.status_code == 200, r.text
    assert r.json()["points"]["available"] == 3000
    real = Counter(t for t in map(table_read, seen) if t is not None)
    assert real == floor_reads()
    every = Counter(t for t in map(tables_read, seen) if t is not None)
    assert every == script_counts(FLOOR, tables_read)
    # no write: a read is a read
    assert not [s for s in seen if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


def test_a_member_read_looks_the_account_up_once() -> None:
    floor = floor_reads()
    # the member with the balance of their account, the key check, the programme version
    # and the tier spend in one statement; identities, tags, consents and expiring points
    # in one (issue 11: 10 statements before session 8, 6 before branch readlean)
    assert floor == Counter({"member": 1, "member_identity": 1})
    every = script_counts(FLOOR, tables_read)
    assert every == Counter(
        {
            (
                "api_key",
                "member",
                "orders",
                "points_account",
                "points_account_member",
                "programme_version",
            ): 1,
            ("member_consent", "member_identity", "member_tag", "points_lot"): 1,
        }
    )
