"""The demo's backtest (issue 15 item 8, must-show): the demo programme with member day at
3× instead of 2× over the last 6 months of demo history. The demo queues it; re-run here
on the demo's orders: only member-day (Wednesday) orders change, each by at least its
member-day points and by no more than twice them plus the rounding of the components it
raises; the total is the sum over those orders exactly; every extra point is still valid
at the end (points expire at the end of the next year), so the liability difference is
the points difference; the sums by month, tier and store add up to the total. The console
page shows it in Chinese (queued, then computed by the worker), refuses a broken document
field by field, and is HQ only."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console
from sqlalchemy import func, select
from tests.console import console_client, login

from loyalist import bootstrap
from loyalist.backtest import domain, tasks
from loyalist.backtest import service as backtests
from loyalist.demo import build
from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import as_utc
from loyalist.kit.db import Database
from loyalist.kit.localtime import start_of_local_day
from loyalist.models import AnalyticsRun, Job, LedgerEntry, MemberPass, Order
from loyalist.programme import service as programmes

TZ = ZoneInfo("Asia/Shanghai")
WEDNESDAY = 2
PASSWORD = {"admin": "admin-demo-2026", "jingan.staff": "jingan-demo-2026"}


def _counts(db: Database) -> tuple[int, int]:
    with db.transaction() as s:
        return (
            int(s.scalar(select(func.count()).select_from(Order)) or 0),
            int(s.scalar(select(func.count()).select_from(LedgerEntry)) or 0),
        )


def _sum(lines: dict[str, Any]) -> dict[str, int]:
    keys = ("orders", "actual", "proposed", "delta", "liability_delta")
    return {k: sum(int(v[k]) for v in lines.values()) for k in keys}


@pytest.mark.timeout(1200)  # builds a 7-month demo first (minutes on a busy machine)
def test_demo_member_day_3x_backtest(db: Database, clock: Any) -> None:
    out = io.StringIO()
    console = Console(file=out, width=240, color_system=None, force_terminal=False)
    build.run(db, members=100, months=7, seed=5, reset=False, console=console)
    with db.transaction() as s:
        [job] = s.scalars(select(Job).where(Job.kind == tasks.JOB_KIND)).all()
        payload = dict(job.payload)
        active = programmes.as_document(programmes.active(s)[1])
    assert (job.state, payload["months"], payload["label"]) == ("queued", 6, build.BACKTEST_LABEL)
    [day] = [c for c in payload["document"]["earning"]["campaigns"] if c["code"] == "member-day"]
    assert day["multiplier"] == "3"
    day["multiplier"] = "2"
    assert payload["document"] == active  # nothing else differs from the demo programme

    # The pass ROI section of the demo's analytics run: holders counted as the passes say.
    with db.transaction() as s:
        run = s.scalars(select(AnalyticsRun).order_by(AnalyticsRun.id.desc())).first()
        assert run is not None and run.status == "done", run.error if run else None
        econ = run.result["economics"]
        lo = start_of_local_day(TZ, date.fromisoformat(econ["from"]))
        hi = start_of_local_day(TZ, date.fromisoformat(econ["to"]) + timedelta(days=1))
        holders = set(
            s.scalars(
                select(MemberPass.member_id).where(
                    MemberPass.status != "refunded",
                    MemberPass.starts_at < hi,
                    MemberPass.ends_at > lo,
                )
            )
        )
        refunded = s.scalar(
            select(func.count()).select_from(MemberPass).where(MemberPass.status == "refunded")
        )
    passes = econ["passes"]
    assert holders and passes["holders"] == len(holders) and refunded == 1
    assert passes["method"].startswith("holders against non-holders matched")
    assert passes["points"] > 0 and passes["spend"] is not None
    assert passes["spend"]["treated"] + passes["spend"]["treated_unmatched"] == len(holders)

    before = _counts(db)
    with db.transaction() as s:
        proposed = programmes.parse(build.member_day_3x(active))
        b = backtests.run(s, SYSTEM, proposed, 6)
        ids = [o.order_id for o in b.outcomes]
        orders = {o.id: o for o in s.scalars(select(Order).where(Order.id.in_(ids)))}
        day_points = {
            o.id: sum(int(i["points"]) for i in o.breakdown if i["rule"] == "campaign:member-day")
            for o in orders.values()
        }
        components = {o.id: len(o.breakdown) for o in orders.values()}
    assert _counts(db) == before  # read-only
    sm = b.summary
    assert sm.total.orders == len(b.outcomes) > 150
    assert sm.reproduced == sum(o.reproduced for o in b.outcomes)
    assert sm.reproduced >= 0.97 * sm.total.orders, (sm.reproduced, sm.total.orders)

    wednesday = 0
    for o in b.outcomes:
        if not o.reproduced:
            continue
        order = orders[o.order_id]
        local = as_utc(order.occurred_at).astimezone(TZ)
        if local.weekday() != WEDNESDAY:
            assert o.proposed == o.actual, o  # only member day changed
            continue
        wednesday += 1
        d = o.proposed - o.actual
        extra = day_points[o.order_id]
        cap = proposed.earning.caps.per_order or 10**9
        if order.points_clawed == 0 and o.proposed < cap:
            # member day's component doubles (floor(2x) ∈ {2⌊x⌋, 2⌊x⌋+1}), and the tier and
            # pass components on top of it grow by their multiplier's share of it
            assert extra <= d, (o, extra)
            assert d <= 4 * extra + components[o.order_id], (o, extra)
    assert wednesday > 15
    changed = [o for o in b.outcomes if o.reproduced and o.proposed != o.actual]
    assert changed and all(
        as_utc(orders[o.order_id].occurred_at).astimezone(TZ).weekday() == WEDNESDAY
        for o in changed
    )
    # exact: the total difference is the sum over the member-day orders
    assert sm.total.delta == sum(o.proposed - o.actual for o in b.outcomes)
    assert sm.total.delta == sum(
        o.proposed - o.actual
        for o in b.outcomes
        if not o.reproduced
        or as_utc(orders[o.order_id].occurred_at).astimezone(TZ).weekday() == WEDNESDAY
    )
    assert sm.total.delta > 0
    assert sm.total.liability_delta == sm.total.delta  # none of the extra points expired yet
    assert b.cost(sm.total.delta) == round(
        domain.money(sm.total.delta, b.value_minor_per_100_points) * (1 - b.breakage_rate)
    )

    # The worker computes the queued backtest: the same figures, sums consistent.
    bootstrap.configure()
    queue.run_until_empty(db)
    with db.transaction() as s:
        done = s.get(Job, job.id)
        assert done is not None and done.state == "done", done.last_error if done else None
        result = dict(done.payload["result"])
    total = result["total"]
    assert (total["orders"], total["delta"], total["liability_delta"]) == (
        sm.total.orders,
        sm.total.delta,
        sm.total.liability_delta,
    )
    for group in ("by_month", "by_tier", "by_store"):
        assert _sum(result[group]) == {k: total[k] for k in _sum(result[group])}, group
    assert len(result["by_month"]) in (6, 7)  # 6 months back from mid-month

    with console_client(db) as c:
        login(c, db, "admin", PASSWORD["admin"])
        page = c.get(f"/admin/backtest?run={job.id}")
        assert page.status_code == 200
        html = page.text
        assert "回测会员计划版本" in html and build.BACKTEST_LABEL in html
        assert f'data-kpi="delta" data-value="{sm.total.delta}"' in html
        assert 'data-testid="by-tier"' in html and 'data-testid="by-store"' in html
        assert "chart-backtest" in html and "按月差异" in html
        tier_deltas = [int(x) for x in re.findall(r'data-delta="(-?\d+)"', html)]
        n_groups = len(result["by_tier"]) + len(result["by_store"])
        assert len(tier_deltas) == n_groups and sum(tier_deltas) == 2 * sm.total.delta
        # a broken pasted document: refused on its field, nothing queued
        jobs_before = counts_of(db)
        token = c.get("/admin/backtest").text.split('name="csrf_token" value="')[1].split('"')[0]
        r = c.post(
            "/admin/backtest",
            data={"csrf_token": token, "months": "6", "document": "earning: [unclosed"},
        )
        assert r.status_code == 422 and 'data-error="document"' in r.text
        r = c.post(
            "/admin/backtest",
            data={"csrf_token": token, "months": "99", "version": "1"},
        )
        assert r.status_code == 422 and 'data-error="months"' in r.text
        assert counts_of(db) == jobs_before
        r = c.post(
            "/admin/backtest",
            data={"csrf_token": token, "months": "3", "version": "1", "label": "v1 回看"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and counts_of(db) == jobs_before + 1
    with console_client(db) as c:  # a store's staff: not theirs
        login(c, db, "jingan.staff", PASSWORD["jingan.staff"])
        assert c.get("/admin/backtest").status_code == 403


def counts_of(db: Database) -> int:
    with db.transaction() as s:
        return int(
            s.scalar(select(func.count()).select_from(Job).where(Job.kind == tasks.JOB_KIND)) or 0
        )
