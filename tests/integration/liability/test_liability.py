"""Liability (issue 13 item 6): outstanding points by expiry month and region/store with
their money value, breakage from settled cohorts, and a monthly statement that reconciles
exactly with the ledger (and the balance cache) — before and after points expire; the
CLI prints it and writes an Excel workbook."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from openpyxl import load_workbook
from tests.integration.cli.test_cli_commands import Cli, cli, run  # noqa: F401 (fixtures)
from tests.itest import apply_document, new_member
from tests.server import plain_programme
from tests.support import DEMO_PROGRAMME, order_payload

from loyalist.jobs import service as jobs
from loyalist.kit.actor import SYSTEM
from loyalist.ledger import service as ledger
from loyalist.liability import service as liability
from loyalist.models import Member, OrgUnit


def programme(db: Any) -> None:
    demo = yaml.safe_load(DEMO_PROGRAMME.read_text(encoding="utf-8"))
    doc = plain_programme(demo["rewards"])
    doc["points"]["pending_days"] = 0
    doc["points"]["expiry"] = {"kind": "rolling_months", "months": 1}
    doc["points"]["value_minor_per_100_points"] = 250  # 100 points are worth ¥2.50
    apply_document(db, doc)


def test_statement_outstanding_and_breakage_reconcile_with_the_ledger(
    world: Any,
    client: Any,
    clock: Any,
    cli: Cli,  # noqa: F811
    tmp_path: Path,
) -> None:
    programme(world.db)
    a = new_member(client, "13800000001", home_store="sh1")
    b = new_member(client, "13800000002", home_store="sz1")
    r = client.post("/v1/orders", json=order_payload("o-a", a, paid=12_345))
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/members/{b}/adjustments", json={"points": 1000, "reason": "开户礼"})
    assert r.status_code == 201, r.text
    r = client.post("/v1/redemptions", json={"member_id": b, "reward": "upsize"})
    assert r.status_code == 201, r.text
    with world.db.transaction() as s:
        cost = 1000 - ledger.get_account(s, b).available
        codes = {u.path: u.code for u in s.query(OrgUnit)}
        regions = {
            m.id: codes["/" + "/".join(m.org_path.strip("/").split("/")[:2]) + "/"]
            for m in s.query(Member)
        }
        june = liability.report(s, SYSTEM, "2026-06")
    assert cost > 0
    st = june.statement
    assert (st.opening, st.earned, st.redeemed, st.expired, st.adjusted) == (
        0,
        123,
        -cost,
        0,
        1000,
    )
    assert st.closing == st.ledger_closing == st.cache_closing == 1123 - cost
    assert st.reconciles
    # outstanding: every open point expires in July (valid through 10 July, local)
    got = [(o.expiry_month, o.region, o.store, o.points, o.value_minor) for o in june.outstanding]
    assert got == sorted(
        [
            ("2026-07", regions[a], "sh1", 123, liability.money(123, 250)),
            ("2026-07", regions[b], "sz1", 1000 - cost, liability.money(1000 - cost, 250)),
        ]
    )
    assert regions[a] != regions[b]
    assert (june.breakage_rate, june.expected_breakage) == (0.0, 0)  # nothing settled yet

    # July 12: every lot expired; the statement still reconciles, breakage is known
    clock.freeze(datetime(2026, 7, 12, 4, 0, tzinfo=UTC))
    jobs.expire_points(world.db)
    with world.db.transaction() as s:
        july = liability.report(s, SYSTEM, "2026-07")
        again = liability.report(s, SYSTEM, "2026-06")
    jt = july.statement
    assert (jt.opening, jt.earned, jt.redeemed, jt.expired, jt.adjusted, jt.closing) == (
        1123 - cost,
        0,
        0,
        -(1123 - cost),
        0,
        0,
    )
    assert jt.reconciles and jt.cache_closing == 0
    assert again.statement == st.__class__(**{**st.__dict__, "cache_closing": None})
    assert july.outstanding == []
    [cohort] = july.cohorts
    assert (cohort.month, cohort.earned, cohort.expired, cohort.open) == (
        "2026-06",
        1123,
        1123 - cost,
        0,
    )
    assert july.breakage_rate == (1123 - cost) / 1123

    # the CLI: the same figures, and an Excel workbook
    out = tmp_path / "liability.xlsx"
    res = cli("liability", "report", "--month", "2026-07", "--xlsx", str(out))
    assert res.exit_code == 0, res.output
    assert "reconciles with the ledger: yes" in res.stdout
    wb = load_workbook(out)
    sheet = wb["statement 月度报表"]
    values = {row[0]: row[1:] for row in sheet.iter_rows(min_row=3, values_only=True)}
    assert values["opening 期初"][:2] == (1123 - cost, liability.money(1123 - cost, 250))
    assert values["expired 过期"][0] == -(1123 - cost)
    assert values["closing 期末"][0] == 0
    assert cli("liability", "report", "--month", "2026-13").exit_code == 2
