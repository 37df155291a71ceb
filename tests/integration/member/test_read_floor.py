"""The member-read benchmark's database floor (benchmarks/read_floor.sql) stays in step with
the SELECTs GET /v1/members/{id} really issues: the same tables, the same number of
statements, each once (issue 11)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from tests.itest import new_member
from tests.support import recorded_statements, script_counts

FLOOR = Path(__file__).parents[3] / "benchmarks" / "read_floor.sql"

_FROM = re.compile(r"\bFROM (\w+)", re.IGNORECASE)


def table_read(statement: str) -> str | None:
    """The table a SELECT reads first; None for anything else (BEGIN, COMMIT, writes)."""
    text = " ".join(statement.split())
    if not text.upper().startswith("SELECT"):
        return None
    m = _FROM.search(text)
    return m.group(1) if m else None


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
    # no write: a read is a read
    assert not [s for s in seen if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


def test_a_member_read_looks_the_account_up_once() -> None:
    floor = floor_reads()
    # the member with the balance of their account in one statement; identities, tags and
    # consents in one (issue 11, session 8: 10 statements before)
    assert floor["member"] == 1
    assert floor["member_identity"] == 1
    assert not {"points_account_member", "points_account", "member_tag", "member_consent"} & set(
        floor
    )
    assert floor["points_lot"] == 1
    assert sum(floor.values()) == 6
