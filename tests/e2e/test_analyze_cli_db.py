"""``loyalist analyze --database-url``: the platform's own orders (recorded through the API
on SQLite or PostgreSQL) give the same JSON on the command line as through the Python API,
and a report."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.test_analyze_cli import assert_same_json, without_timings
from tests.itest import new_member
from tests.support import order_payload
from typer.testing import CliRunner

from loyalist.analytics import (
    analyze_clv,
    analyze_cohorts,
    analyze_kpis,
    analyze_rfm,
    analyze_segments,
    read_database,
)
from loyalist.cli.main import app

runner = CliRunner()


@pytest.fixture
def url(world: Any, client: Any) -> str:
    """24 members buying 1-6 times between January and June 2026, some anonymous orders,
    one return."""
    start = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
    n = 0
    for i in range(24):
        mid = new_member(client, f"1380000{i:04d}")
        for k in range(1 + (i * 5) % 6):
            n += 1
            when = start + timedelta(days=(i * 3 + k * (11 + i % 7)) % 150, hours=i % 9)
            r = client.post(
                "/v1/orders",
                json=order_payload(
                    f"o{n}",
                    mid,
                    paid=2_000 + 150 * i + 100 * k,
                    occurred_at=when.isoformat(),
                    store=("sh1", "sz1")[i % 2],
                ),
            )
            assert r.status_code == 201, r.text
    for j in range(5):
        when = start + timedelta(days=20 * j)
        r = client.post(
            "/v1/orders",
            json=order_payload(f"anon{j}", None, paid=1_500, occurred_at=when.isoformat()),
        )
        assert r.status_code == 201, r.text
    r = client.post("/v1/orders/1/returns", json={"return_id": "r1", "full": True})
    assert r.status_code == 201, r.text
    db_url: str = world.db.url
    return db_url


def cli_json(*args: str) -> Any:
    result = runner.invoke(app, ["analyze", *args, "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_every_analysis_of_the_platform_database_matches_the_api(url: str) -> None:
    tx = read_database(url)
    assert tx.report.anonymous_orders == 5
    assert tx.report.excluded == {"fully returned (net amount zero)": 1}
    db = ("--database-url", url)
    assert_same_json(
        cli_json("rfm", *db, "--as-of", "2026-06-01"), analyze_rfm(tx, as_of="2026-06-01")
    )
    assert_same_json(cli_json("cohorts", *db), analyze_cohorts(tx))
    kpis = cli_json("kpis", *db, "--start", "2026-03-01", "--end", "2026-05-31")
    assert_same_json(kpis, analyze_kpis(tx, start="2026-03-01", end="2026-05-31"))
    assert kpis["non_members"]["orders"] == 2.0  # anonymous orders of 03-26 and 04-15
    sz1 = cli_json(
        "kpis",
        *db,
        "--start",
        "2026-03-01",
        "--end",
        "2026-05-31",
        "--where",
        "store=sz1",
        "--where",
        "channel=pos",
    )
    assert_same_json(
        sz1,
        analyze_kpis(
            tx, start="2026-03-01", end="2026-05-31", where={"store": "sz1", "channel": "pos"}
        ),
    )
    assert sz1["where"] == {"store": "sz1", "channel": "pos"}
    assert 0 < sz1["overall"]["orders"] < kpis["overall"]["orders"]
    assert sz1["non_members"]["orders"] == 0.0  # the anonymous orders were at sh1
    clv = cli_json("clv", *db, "--unit", "D")
    expected, _ = analyze_clv(tx, unit="D")
    assert_same_json(without_timings(clv), without_timings(expected))
    assert clv["customers"] == 23  # the one-order customer whose order was returned is gone
    seg, _ = analyze_segments(tx, k_range=range(2, 5))
    assert_same_json(cli_json("segments", *db, "--k-max", "4"), seg)


def test_report_of_the_platform_database(url: str, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(
        app,
        [
            "analyze",
            "report",
            "--database-url",
            url,
            "--out",
            str(out),
            "--lang",
            "zh",
            "--currency",
            "¥",
        ],
    )
    assert result.exit_code == 0, result.stderr
    html = out.read_text(encoding="utf-8")
    assert "<html lang='zh-CN'>" in html
    assert "核心指标" in html and "会员" in html and "非会员" in html
    assert re.findall(r"<h2>(.*?)</h2>", html)[:4] == [
        "核心指标",
        "会员效果：会员与可比非会员",
        "RFM 客户分群",
        "同期群留存",
    ]
    assert "匿名订单 5 笔" in html
    assert "全额退货（净额为零）: 1" in html
    assert "<script" not in html and "src=" not in html and "href=" not in html


def test_the_platform_database_url_is_the_default_source(url: str) -> None:
    env = {"LOYALIST_ANALYTICS_DATABASE_URL": None, "LOYALIST_DATABASE_URL": url}
    result = runner.invoke(app, ["analyze", "kpis", "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    assert_same_json(json.loads(result.stdout), analyze_kpis(read_database(url)))
    none = {"LOYALIST_ANALYTICS_DATABASE_URL": None, "LOYALIST_DATABASE_URL": None}
    result = runner.invoke(app, ["analyze", "kpis", "--json"], env=none)
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["message"] == (
        "give --input FILE or --database-url URL (or set LOYALIST_DATABASE_URL)"
    )
