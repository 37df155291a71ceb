"""Breakage and liability forecast by earning cohort (issue 15 item 6): a hand-checked
fixture through the service, the CLI, the Excel export and the console page; the pure
method on a never-expiring group and a cohort that already lost more than its share."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from tests.e2e.console.data import Shop, sign_in
from tests.integration.admin.test_console_privacy import console, shop  # noqa: F401 (fixtures)
from tests.integration.cli.test_cli_commands import Cli, cli, run  # noqa: F401 (fixtures)
from tests.integration.liability.test_liability import programme
from tests.itest import new_member
from tests.support import order_payload

from loyalist.jobs import service as jobs
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.liability import domain
from loyalist.liability import service as liability


def test_forecast_by_cohort_hand_checked(
    world: Any,
    client: Any,
    clock: Any,
    cli: Cli,  # noqa: F811
    tmp_path: Path,
) -> None:
    programme(world.db)  # points valid one month (rolling), ¥2.50 per 100 points
    a = new_member(client, "13800000021", home_store="sh1")
    b = new_member(client, "13800000022", home_store="sz1")
    # June cohort: 400 earned by a, 1000 given to b who redeems 500 (upsize) → 900 expire
    r = client.post("/v1/orders", json=order_payload("o-1", a, paid=40_000))
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/members/{b}/adjustments", json={"points": 1000, "reason": "开户礼"})
    assert r.status_code == 201, r.text
    r = client.post("/v1/redemptions", json={"member_id": b, "reward": "upsize"})
    assert r.status_code == 201, r.text
    with world.db.transaction() as s:
        assert ledger.get_account(s, b).available == 500
    clock.freeze(datetime(2026, 7, 12, 4, 0, tzinfo=UTC))
    jobs.expire_points(world.db)
    # July cohort: 700 earned, valid through 12 August
    r = client.post(
        "/v1/orders",
        json=order_payload("o-2", a, paid=70_000, occurred_at="2026-07-12T12:00:00+08:00"),
    )
    assert r.status_code == 201, r.text
    with world.db.transaction() as s:
        rep = liability.report(s, SYSTEM, "2026-07")
    f = rep.forecast
    assert f is not None
    # rate = 900 / 1400 = 9/14; July: 700 × 9/14 = 450 still to expire (in August), the other
    # 250 redeemed evenly over July and August (125 each)
    assert f.rate == 900 / 1400
    assert [(c.month, c.earned, c.expired, c.open, c.future_breakage) for c in f.cohorts] == [
        ("2026-06", 1400, 900, 0, 0),
        ("2026-07", 700, 0, 700, 450),
    ]
    assert f.cohorts[1].breakage_share == 450 / 700
    assert [(m.month, m.redeemed, m.expiring, m.liability) for m in f.months[:3]] == [
        ("2026-07", 125, 0, 575),
        ("2026-08", 125, 450, 0),
        ("2026-09", 0, 0, 0),
    ]
    assert len(f.months) == 12 and f.months[-1].month == "2027-06"

    out = tmp_path / "liability.xlsx"
    res = cli("liability", "report", "--month", "2026-07", "--xlsx", str(out))
    assert res.exit_code == 0, res.output
    assert "forecast: next 12 months" in res.stdout
    rows = list(load_workbook(out)["forecast 预测"].iter_rows(values_only=True))
    assert rows[3][:5] == ("2026-07", 125, 0, 575, liability.money(575, 250))
    assert rows[4][:5] == ("2026-08", 125, 450, 0, 0)


def test_forecast_method_edges() -> None:
    groups = [
        domain.OpenGroup("2026-01", "2026-03", 300),
        domain.OpenGroup("2026-01", None, 100),  # never expires: stays a liability
        domain.OpenGroup("2026-02", "2026-04", 200),
    ]
    f = domain.forecast(
        [("2026-01", 1000, 0, 400), ("2026-02", 400, 300, 200)],
        groups,
        Fraction(1, 2),
        "2026-02",
        horizon=4,
    )
    # 2026-01: 500 to expire but only 300 can → all 300 expire in March, nothing redeemed;
    # 2026-02 already lost 300 ≥ 200 → nothing more expires, 200 redeemed over Feb–Apr
    assert [c.future_breakage for c in f.cohorts] == [300, 0]
    assert [(m.month, m.redeemed, m.expiring, m.liability) for m in f.months] == [
        ("2026-02", 67, 0, 100 + 300 + 133),
        ("2026-03", 67, 300, 100 + 67),
        ("2026-04", 67, 0, 100),
        ("2026-05", 0, 0, 100),
    ]


def test_the_console_liability_page_shows_the_forecast_in_chinese(
    console: TestClient,  # noqa: F811
    shop: Shop,  # noqa: F811
    db: Database,
) -> None:
    month = shop.now.strftime("%Y-%m")
    with db.transaction() as s:
        f = liability.report(s, SYSTEM, month).forecast
    assert f is not None and f.months[0].month == month
    sign_in(console, "admin", "zh_CN")
    page = console.get(f"/admin/liability?month={month}")
    assert page.status_code == 200
    html = page.text
    assert "未来 12 个月过期与负债预测" in html and "预计负债积分" in html
    shown = re.findall(
        r'data-month="([^"]+)" data-liability="(-?\d+)" data-expiring="(-?\d+)"', html
    )
    assert shown == [(m.month, str(m.liability), str(m.expiring)) for m in f.months]
    cohorts = re.findall(r'data-cohort="([^"]+)" data-future="(-?\d+)"', html)
    assert cohorts == [(c.month, str(c.future_breakage)) for c in f.cohorts]
    en = console.get(f"/admin/liability?month={month}", headers={"accept-language": "en"})
    assert en.status_code == 200
