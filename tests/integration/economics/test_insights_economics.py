"""The console's analytics section gains the programme's economics (issue 15 item 4):
redemption and breakage rates and cost from the ledger, and — with the journeys' global
holdout — the extra spend per member with its 95 % interval and the ROI, equal to what the
analytics package computes on the same orders; shown in Chinese."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from tests.console import console_client, login
from tests.integration.insights.test_console_analytics import _result, _run, _staff, shop  # noqa: F401

from loyalist.analytics import read_database
from loyalist.analytics.economics import holdout_effect
from loyalist.documents import service as documents
from loyalist.journey import domain as journeys
from loyalist.kit.actor import SYSTEM
from loyalist.kit.localtime import start_of_local_day
from loyalist.member import service as members
from loyalist.models import LedgerEntry, Member

TZ = ZoneInfo("Asia/Shanghai")


def test_economics_of_a_run_with_a_holdout(shop: Any, world: Any) -> None:  # noqa: F811
    db = world.db
    with db.transaction() as s:
        documents.publish(
            s, SYSTEM, "journeys", {"holdout": {"percent": 30}, "journeys": []}, note="holdout"
        )
        first = s.scalars(select(Member.id).order_by(Member.id)).first()
        assert first is not None
        members.adjust_points(s, SYSTEM, first, 5000, "补偿：门店停电")  # compensation
    as_of = shop.now.date()
    run_id = _run(db, _staff(db, "admin"), as_of, as_of - timedelta(days=30))
    run = _result(db, run_id)
    assert run.status == "done", run.error
    e = run.result["economics"]
    start = as_of - timedelta(days=89)
    assert (e["from"], e["to"]) == (start.isoformat(), as_of.isoformat())
    lo, hi = start_of_local_day(TZ, start), start_of_local_day(TZ, as_of + timedelta(days=1))
    with db.transaction() as s:
        sums = dict(
            s.execute(
                select(
                    LedgerEntry.kind,
                    func.sum(LedgerEntry.delta_available + LedgerEntry.delta_pending),
                )
                .where(LedgerEntry.created_at >= lo, LedgerEntry.created_at < hi)
                .group_by(LedgerEntry.kind)
            ).all()
        )
        ids = list(s.scalars(select(Member.id)))
    earned = int(sums.get("earn", 0))
    assert earned > 0 and e["earned"] == earned
    assert e["redeemed"] == -int(sums.get("redeem", 0) or 0) - int(sums.get("restore", 0) or 0)
    assert e["redemption_rate"] == (e["redeemed"] / earned)
    assert (
        e["cost_minor"]
        == e["points_cost_minor"]
        + e["coupons_minor"]
        + (e["compensation_points"] * e["value_minor_per_100_points"] + 50) // 100
    )

    # the holdout comparison is the analytics package's on the same orders (yuan → fen)
    h = journeys.Holdout(percent=30)
    with db.engine.connect() as conn:
        tx = read_database(conn)
    want = holdout_effect(tx, {i: journeys.in_holdout(h, i) for i in ids}, start, as_of)
    got = e["incrementality"]
    assert (got["treated"], got["controls"]) == (want.treated, want.controls)
    assert got["controls"] > 0 and got["treated"] > 0
    assert abs(want.estimate) > 0.01  # the spend is found (ids read back as text or numbers)
    assert math.isclose(got["estimate"], want.estimate * 100, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(got["ci_low"], want.ci_low * 100, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(
        e["roi"],
        (want.estimate * 100 * want.treated - e["cost_minor"]) / e["cost_minor"],
        rel_tol=1e-9,
    )

    with console_client(db) as c:
        login(c, db, "analyst")
        page = c.get(f"/admin/analytics?run={run_id}").text
    assert 'data-testid="economics"' in page and "会员计划成本、过期与投资回报" in page
    assert "相对全局对照组，每位会员的增量消费" in page and "95% 置信区间" in page
