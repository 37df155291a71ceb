"""Backtest (issue 15 item 8): the demo programme with member day at 3× instead of 2× re-run
over the last 6 months of orders; the differences by tier and store equal a hand-checked
fixture exactly, and nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from tests.integration.cli.test_cli_commands import Cli, cli, run  # noqa: F401 (fixtures)
from tests.itest import demo_document, new_member
from tests.support import order_payload

from loyalist.backtest import service as backtest
from loyalist.kit.actor import SYSTEM
from loyalist.models import LedgerEntry, Order
from loyalist.programme import service as programmes


def _order(client: Any, ext: str, member: int | None, **kw: Any) -> int:
    r = client.post("/v1/orders", json=order_payload(ext, member, **kw))
    assert r.status_code == 201, r.text
    points: int = r.json()["points"]["earned"]
    return points


def _counts(db: Any) -> tuple[int, int]:
    with db.transaction() as s:
        return (
            int(s.scalar(select(func.count()).select_from(Order)) or 0),
            int(s.scalar(select(func.count()).select_from(LedgerEntry)) or 0),
        )


def test_member_day_3x_instead_of_2x_over_6_months(
    world: Any,
    client: Any,
    cli: Cli,  # noqa: F811
    tmp_path: Path,
) -> None:
    a = new_member(client, "13800000011", home_store="sh1")
    b = new_member(client, "13800000012", home_store="sz1")
    beans = [{"sku": "B1", "category": "coffee_beans", "quantity": 1, "unit_price_minor": 8000}]
    # Hand-checked (1 point per ¥1, floor; member day is Wednesday):
    #   Wed 3 Jun, ¥100 coffee, pos: 100 + member day 100 = 200     | 3×: 300  Δ +100
    #   Tue 2 Jun, ¥50 coffee:       50                              | 3×: 50   Δ 0
    #   Wed 27 May, ¥40 app: 40 + app 20 + day (40+20) = 120         | 3×: 180  Δ +60
    #   Wed 20 May sz1, ¥80 beans: 80 + beans 80 + day 160 = 320     | 3×: 480  Δ +160
    #   Wed 3 Dec 2025 (before the 6 months), a guest's order: not counted
    got = [
        _order(client, "a1", a, paid=10_000, occurred_at="2026-06-03T12:00:00+08:00"),
        _order(client, "a2", a, paid=5_000, occurred_at="2026-06-02T12:00:00+08:00"),
        _order(client, "a3", a, paid=4_000, channel="app", occurred_at="2026-05-27T09:00:00+08:00"),
        _order(
            client,
            "b1",
            b,
            store="sz1",
            paid=8_000,
            lines=beans,
            occurred_at="2026-05-20T18:00:00+08:00",
        ),
        _order(client, "old", a, paid=9_900, occurred_at="2025-12-03T12:00:00+08:00"),
        _order(client, "guest", None, paid=7_000, occurred_at="2026-06-03T13:00:00+08:00"),
    ]
    assert got == [200, 50, 120, 320, 198, 0]
    doc = demo_document()
    [day] = [c for c in doc["earning"]["campaigns"] if c["code"] == "member-day"]
    day["multiplier"] = "3"
    proposal = tmp_path / "member-day-3x.yaml"
    proposal.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    before = _counts(world.db)

    with world.db.transaction() as s:
        r = backtest.run(s, SYSTEM, programmes.load_file(proposal), 6)
    sm = r.summary
    assert (sm.total.orders, sm.total.actual, sm.total.proposed, sm.total.delta) == (
        4,
        690,
        1010,
        320,
    )
    assert sm.reproduced == 4  # the version in force gives back every recorded figure
    assert {k: (v.orders, v.actual, v.proposed, v.delta) for k, v in sm.by_store.items()} == {
        "sh1": (3, 370, 530, 160),
        "sz1": (1, 320, 480, 160),
    }
    assert {k: (v.orders, v.delta) for k, v in sm.by_tier.items()} == {"base": (4, 320)}
    # points expire at the end of 2027: every extra point is still a liability (1 point = 1 fen)
    assert sm.total.liability_delta == 320 and r.money(sm.total.liability_delta) == 320
    assert r.breakage_rate == 0.0 and r.cost(sm.total.delta) == 320
    assert _counts(world.db) == before

    res = cli("programme", "backtest", "--version-file", str(proposal), "--months", "6")
    assert res.exit_code == 0, res.output
    assert "4 member orders, 4 reproduced" in res.stdout
    assert "total: Δ points +320, Δ liability +320 points (+320 fen), Δ cost +320 fen" in res.stdout
    assert _counts(world.db) == before
    # the programme as it is gives no difference at all
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump(demo_document(), allow_unicode=True), encoding="utf-8")
    with world.db.transaction() as s:
        r0 = backtest.run(s, SYSTEM, programmes.load_file(same), 6)
    assert (r0.summary.total.delta, r0.summary.total.liability_delta) == (0, 0)
