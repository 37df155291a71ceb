"""``loyalist programme dry-run`` explains each clause of the ``when:`` conditions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.cli.test_cli_commands import Cli, cli, run  # noqa: F401 (fixtures)
from tests.itest import counts, demo_document, write_yaml
from tests.support import order_payload


def test_dry_run_prints_each_clause(world: Any, cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    draft = demo_document()
    draft["earning"]["campaigns"][0]["when"] = {
        "all": [
            {"eq": {"time.weekday": "wed"}},
            {"gte": {"member.tier": "gold"}},
            {"gte": {"order.amount_minor": 10000}},
        ]
    }
    programme = write_yaml(tmp_path / "p.yaml", draft)
    order = tmp_path / "order.json"
    order.write_text(
        json.dumps(order_payload("s", None, paid=9_000, occurred_at="2026-06-10T10:00:00+08:00")),
        encoding="utf-8",
    )
    before = counts(world.db)
    r = cli("programme", "dry-run", str(order), "--tier", "gold", "--programme", str(programme))
    assert r.exit_code == 0, r.output
    lines = [ln.rstrip() for ln in r.stdout.splitlines()]
    start = lines.index("campaign:member-day (每周三会员日双倍积分) when: does not apply")
    assert lines[start + 1 : start + 5] == [
        "  ✗ all",
        "    ✓ time.weekday eq wed (actual: wed)",
        "    ✓ member.tier gte gold (actual: gold)",
        "    ✗ order.amount_minor gte 10000 (actual: 9000)",
    ]
    assert "total: 135 points" in r.stdout  # 90 base × 1.5 gold, no member day
    r = cli(
        "programme",
        "dry-run",
        str(order),
        "--programme",
        str(programme),
        "--member",
        '{"tags": "vip"}',
    )
    assert r.exit_code == 2
    assert "member.tags: expected a list of text, got str" in r.output
    assert counts(world.db) == before
