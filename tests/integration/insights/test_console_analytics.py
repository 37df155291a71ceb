"""The console's analytics section (issue 10, item 9): a run computed in background jobs
gives exactly what ``loyalist.analytics``'s own functions give on the same orders; its
progress shows while it runs; exports and the tag action; who may see and do what; scope.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from tests.console import console_client, login, make_users

from loyalist import bootstrap
from loyalist.analytics import (
    cohort_table,
    fit_clv,
    read_database,
    rfm_scores,
    segment_summary,
    segment_transitions,
    simulate_transactions,
    summarise,
)
from loyalist.insights import compute
from loyalist.insights import service as insights
from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import ActionReceipt, AnalyticsRun, AuditLog, Job, MemberTag
from loyalist.order import service as orders
from loyalist.order.schemas import LineIn, OrderCreate

SHANGHAI = ZoneInfo("Asia/Shanghai")
EAST = ("sh1", "sh2")
SOUTH = ("sz1", "gz1")


@dataclass
class Shop:
    now: datetime
    members: dict[int, str] = field(default_factory=dict)  # member id -> home store


def _seed(db: Database, clock: Any) -> Shop:
    """40 members in four stores with 14 months of orders drawn from the BG/NBD and
    Gamma-Gamma processes (``simulate_transactions``, a seed the models fit): regulars,
    members who stopped buying after spending (at risk), newcomers; deterministic."""
    now = clock.now()
    shop = Shop(now=now)
    sim = simulate_transactions(
        40,
        start=now.date() - timedelta(days=420),
        days=420,
        acquisition_days=300,
        bgnbd=(1.2, 30.0, 0.8, 4.0),
        seed=1,
    ).frame.sort("occurred_at", "order_id")
    ids: dict[str, int] = {}
    with db.transaction() as s:  # backdated orders, recorded today in one transaction
        for i, customer in enumerate(sorted(set(sim["customer_id"]), key=lambda c: int(c[1:]))):
            store = (EAST + SOUTH)[i % 4]
            ids[customer] = members.create(
                s, SYSTEM, MemberCreate(phone=f"1391234{i:04d}", name=f"会员{i}", home_store=store)
            ).member.id
            shop.members[ids[customer]] = store
        for j, row in enumerate(sim.iter_rows(named=True)):
            member_id = ids[row["customer_id"]]
            at = row["occurred_at"].replace(tzinfo=SHANGHAI)
            paid = max(100, round(row["amount"] * 100))
            orders.record(
                s,
                SYSTEM,
                OrderCreate(
                    external_id=f"A-{j:04d}",
                    member_id=member_id,
                    store=shop.members[member_id],
                    occurred_at=min(at, now - timedelta(minutes=1)),
                    amount_paid_minor=paid,
                    lines=[
                        LineIn(sku="LATTE", category="coffee", quantity=1, unit_price_minor=paid)
                    ],
                ),
            )
    return shop


@pytest.fixture
def shop(world: Any, clock: Any) -> Shop:
    bootstrap.configure()  # the job kinds, as a worker process registers them
    make_users(world.db)
    return _seed(world.db, clock)


def _staff(db: Database, login_name: str) -> Any:
    from loyalist.staff import service as staff

    with db.transaction() as s:
        return staff.actor_for(s, staff.get_by_login(s, login_name))


def _run(db: Database, actor: Any, as_of: date, since: date) -> int:
    with db.transaction() as s:
        run_id = insights.request_run(s, actor, as_of=as_of, compare_from=since).id
    queue.run_until_empty(db)
    return run_id


def _result(db: Database, run_id: int) -> AnalyticsRun:
    with db.transaction() as s:
        run = s.get(AnalyticsRun, run_id)
        assert run is not None
        s.expunge(run)
        return run


def _close(a: Any, b: Any) -> bool:
    """JSON round trips keep floats; PostgreSQL's JSON may print the last digit apart."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12)
    return bool(a == b)


def _same_rows(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for k in g:
            assert _close(g[k], w[k]), (k, g[k], w[k])


def s_count(db: Database) -> tuple[int, int, int]:
    """Runs, tags and audit rows: what the analytics forms write."""
    with db.transaction() as s:
        return (
            int(s.scalar(select(func.count()).select_from(AnalyticsRun)) or 0),
            int(s.scalar(select(func.count()).select_from(MemberTag)) or 0),
            int(s.scalar(select(func.count()).select_from(AuditLog)) or 0),
        )


def _cell(v: Any) -> Any:
    """A spreadsheet cell or a CSV field, compared as a number when it is one."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def _plain(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.isoformat() if isinstance(v, date) else v) for k, v in r.items()}
        for r in frame.to_dicts()
    ]


def test_a_run_gives_what_the_analytics_package_gives_on_the_same_orders(
    shop: Shop, world: Any
) -> None:
    db = world.db
    as_of = shop.now.date()
    since = as_of - timedelta(days=90)
    run_id = _run(db, _staff(db, "admin"), as_of, since)
    run = _result(db, run_id)
    assert (run.status, run.step, run.steps, run.error) == ("done", 5, 5, None)
    res = run.result
    # The recommendations section (issue 14 item 6): the same evaluation as the CLI's.
    from loyalist.recommend import service as recommend

    with db.transaction() as s:
        assert res["recommendations"] == recommend.evaluate(s).as_dict()
    assert set(res["recommendations"]["als"]) == {
        "precision@10",
        "recall@10",
        "ndcg@10",
        "coverage",
    }

    # The reference: the analytics package on the platform's orders, as `loyalist analyze`
    # reads them (every order; the run reads the scope's member orders: here, all of them).
    with db.engine.connect() as conn:
        tx = read_database(conn)
    assert res["orders"] == tx.frame.height
    scores = rfm_scores(tx, as_of)
    assert res["customers"] == scores.height == 40
    _same_rows(res["segments"], _plain(segment_summary(scores)))
    moved = segment_transitions(tx, since, as_of)
    assert res["movement"]["from"] == since.isoformat()
    _same_rows(res["movement"]["matrix"], _plain(moved))
    table = cohort_table(tx, "month").filter(pl.col("period_index") <= 12)
    latest = sorted(set(table["cohort"].to_list()))[-12:]
    want_cohorts = table.filter(pl.col("cohort").is_in(latest)).select(
        "cohort", "period_index", "cohort_size", "active", "retention"
    )
    _same_rows(res["cohorts"], _plain(want_cohorts))

    fitted = fit_clv(summarise(tx, observation_end=as_of, unit="W"), unit="W", horizon_days=365)
    per = scores.join(
        fitted.customers.select("customer_id", "probability_alive", "clv"), on="customer_id"
    )
    assert res["clv_error"] is None
    assert per["clv"].is_finite().all()  # the seed is one the models fit
    for row in res["clv_segments"]:
        part = per.filter(pl.col("segment") == row["segment"])
        assert row["customers"] == part.height
        assert _close(row["mean_clv"], part["clv"].mean())
        assert _close(row["total_clv"], part["clv"].sum())
        assert _close(row["mean_probability_alive"], part["probability_alive"].mean())
    assert sum(r["customers"] for r in res["clv_segments"]) == 40
    risky = per.filter(pl.col("segment").is_in(list(compute.AT_RISK_SEGMENTS))).sort(
        ["clv", "monetary"], descending=True
    )
    assert risky.height > 0  # the seed has members who stopped buying after spending a lot
    assert [r["member_id"] for r in res["at_risk"]] == [int(c) for c in risky["customer_id"]]
    for got, want in zip(res["at_risk"], risky.to_dicts(), strict=True):
        assert _close(got["clv"], want["clv"])
        assert _close(got["probability_alive"], want["probability_alive"])
        assert got["segment"] == want["segment"] and got["frequency"] == want["frequency"]
    assert res["segment_names_zh"]["Champions"] == "重要价值客户"


def test_a_regional_run_covers_the_members_of_its_region_only(shop: Shop, world: Any) -> None:
    db = world.db
    as_of = shop.now.date()
    east = _run(db, _staff(db, "east.manager"), as_of, as_of - timedelta(days=30))
    res = _result(db, east).result
    east_ids = {m for m, store in shop.members.items() if store in EAST}
    assert res["customers"] == len(east_ids) == 20
    assert {r["member_id"] for r in res["at_risk"]} <= east_ids
    with db.engine.connect() as conn:
        tx = read_database(conn)
    east_tx = tx.frame.filter(pl.col("customer_id").cast(pl.Int64).is_in(list(east_ids)))
    assert res["orders"] == east_tx.height
    # HQ's run is not the region's: the region's manager cannot open it (404), HQ can
    # open the region's.
    hq = _run(db, _staff(db, "admin"), as_of, as_of - timedelta(days=30))
    with console_client(db) as c:
        login(c, db, "east.manager")
        assert c.get(f"/admin/analytics?run={hq}").status_code == 404
        assert c.get(f"/admin/analytics/runs/{hq}/at-risk.csv").status_code == 404
        page = c.get("/admin/analytics").text
        assert f'data-run-id="{east}"' in page and f'data-run-id="{hq}"' not in page
    with console_client(db) as c:
        login(c, db, "admin")
        assert c.get(f"/admin/analytics?run={east}").status_code == 200


def test_progress_shows_while_the_run_computes_step_by_step(shop: Shop, world: Any) -> None:
    db = world.db
    queue.run_until_empty(db)  # nothing else due: each job below is one step of the run
    with console_client(db) as c:
        csrf = login(c, db, "analyst")
        r = c.post(
            "/admin/analytics/runs",
            data={
                "csrf_token": csrf,
                "as_of": shop.now.date().isoformat(),
                "compare_from": (shop.now.date() - timedelta(days=60)).isoformat(),
            },
            follow_redirects=False,
        )
        assert r.status_code == 303
        run_id = int(re.findall(r"run=(\d+)", r.headers["location"])[0])
        page = c.get(r.headers["location"]).text
        assert 'data-status="queued" data-step="0"' in page
        assert f'hx-get="/admin/analytics?run={run_id}"' in page  # polled by HTMX
        for step in range(1, 6):
            assert queue.run_until_empty(db, limit=1) == 1  # one step per job
            frag = c.get(f"/admin/analytics?run={run_id}", headers={"HX-Request": "true"}).text
            if step < 5:
                assert f'data-status="running" data-step="{step}"' in frag
                assert f"第 {step + 1} 步，共 5 步" in frag
            else:
                assert 'data-status="done"' in frag and "hx-get" not in frag
        page = c.get(f"/admin/analytics?run={run_id}").text
        assert 'data-testid="segments"' in page and 'id="chart-cohorts"' in page
        assert "重要价值客户" in page  # segments by their Chinese names
    with db.transaction() as s:
        steps = s.scalars(select(Job.payload).where(Job.kind == insights.JOB_KIND)).all()
        assert sorted(p["step"] for p in steps) == [0, 1, 2, 3, 4]
        audit = s.scalars(select(AuditLog).where(AuditLog.action == "analytics.run")).all()
        assert [a.object_id for a in audit] == [str(run_id)]

    # Invalid dates are refused, naming the field, and start nothing.
    with db.transaction() as s:
        runs_before = s.scalar(select(func.count()).select_from(AnalyticsRun))
        jobs_before = s.scalar(select(func.count()).select_from(Job))
    with console_client(db) as c:
        csrf = login(c, db, "admin")
        for as_of, since, field_name in [
            ("2026-06-01", "2026-06-01", "compare_from"),
            ("2026-06-01", "2022-01-01", "compare_from"),
            ("2026-13-01", "2026-01-01", "as_of"),
        ]:
            r = c.post(
                "/admin/analytics/runs",
                data={"csrf_token": csrf, "as_of": as_of, "compare_from": since},
                follow_redirects=False,
            )
            assert r.status_code == 422, (as_of, since)
            assert f'data-error="{field_name}"' in r.text
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(AnalyticsRun)) == runs_before
        assert s.scalar(select(func.count()).select_from(Job)) == jobs_before


# role login → (may see, compute and export; may tag the at-risk list)
ACCESS = {
    "admin": (True, True),
    "east.manager": (True, True),
    "analyst": (True, False),
    "sh1.staff": (False, False),
    "agent": (False, False),
}


def test_who_may_see_compute_export_and_tag(shop: Shop, world: Any) -> None:
    db = world.db
    today = shop.now.date()
    run_id = _run(db, _staff(db, "admin"), today, today - timedelta(days=30))
    east_run = _run(db, _staff(db, "east.manager"), today, today - timedelta(days=30))
    with console_client(db) as c:  # a form without its CSRF token is refused, writes nothing
        login(c, db, "admin")
        before = s_count(db)
        for url, form in [
            ("/admin/analytics/runs", {"as_of": "2026-06-01", "compare_from": "2026-05-01"}),
            (f"/admin/analytics/runs/{run_id}/tag", {"tag": "召回"}),
        ]:
            assert c.post(url, data=form, follow_redirects=False).status_code == 403
        assert s_count(db) == before
    for login_name, (see, tag) in ACCESS.items():
        with db.transaction() as s:
            runs_before = s.scalar(select(func.count()).select_from(AnalyticsRun))
            tags_before = s.scalar(select(func.count()).select_from(MemberTag))
        mine = east_run if login_name == "east.manager" else run_id
        with console_client(db) as c:
            csrf = login(c, db, login_name)
            code = 200 if see else 403
            assert c.get("/admin/analytics").status_code == code, login_name
            assert c.get(f"/admin/analytics/runs/{mine}/at-risk.csv").status_code == code
            assert c.get(f"/admin/analytics/runs/{mine}/at-risk.xlsx").status_code == code
            nav = c.get("/admin/members").text
            assert ('href="/admin/analytics"' in nav) is see, login_name
            r = c.post(
                "/admin/analytics/runs",
                data={"csrf_token": csrf, "as_of": "2026-06-01", "compare_from": "2026-05-01"},
                follow_redirects=False,
            )
            assert r.status_code == (303 if see else 403), login_name
            r = c.post(
                f"/admin/analytics/runs/{mine}/tag",
                data={"csrf_token": csrf, "tag": f"召回-{login_name}"},
                follow_redirects=False,
            )
            assert r.status_code == (303 if tag else 403), login_name
        with db.transaction() as s:
            runs = s.scalar(select(func.count()).select_from(AnalyticsRun))
            tags = s.scalar(select(func.count()).select_from(MemberTag))
        assert runs == runs_before + (1 if see else 0), login_name  # refusals write nothing
        assert (tags > tags_before) is tag, login_name


def test_exports_hold_the_whole_at_risk_list_in_chinese_and_tagging_it_tags_each_once(
    shop: Shop, world: Any
) -> None:
    db = world.db
    run_id = _run(db, _staff(db, "admin"), shop.now.date(), shop.now.date() - timedelta(days=30))
    res = _result(db, run_id).result
    listed = res["at_risk"]
    with console_client(db) as c:
        login(c, db, "analyst")  # no member.phone: phones masked
        r = c.get(f"/admin/analytics/runs/{run_id}/at-risk.csv")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert r.content.startswith("\ufeff".encode())
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        x = c.get(f"/admin/analytics/runs/{run_id}/at-risk.xlsx")
        assert x.status_code == 200
        sheet = load_workbook(io.BytesIO(x.content)).active
        assert sheet is not None
        cells = [
            [("" if v is None else v) for v in row] for row in sheet.iter_rows(values_only=True)
        ]
    assert rows[0] == [
        "会员号",
        "姓名",
        "手机号",
        "分群",
        "距上次下单天数",
        "订单",
        "消费金额（元）",
        "存活概率",
        "客户终身价值（元，未来 12 个月）",
    ]
    assert len(rows) == len(listed) + 1
    with db.transaction() as s:
        for line, want in zip(rows[1:], listed, strict=True):
            m = members.get(s, SYSTEM, want["member_id"])
            assert line[0] == m.member_no and line[1] == m.name
            digits = (m.phone or "")[-11:]
            assert line[2] == f"{digits[:3]} **** {digits[7:]}"
            assert line[3] == res["segment_names_zh"][want["segment"]]
            assert float(line[6]) == round(want["monetary"], 2)
            assert float(line[8]) == round(want["clv"], 2)
    assert [[_cell(v) for v in row] for row in cells] == [[_cell(v) for v in row] for row in rows]

    # Tagging the list: through the add_tag action, once per member however often.
    ids = [r["member_id"] for r in listed]
    with console_client(db) as c:
        csrf = login(c, db, "admin")
        for _ in range(2):  # a repeated click tags nobody twice
            r = c.post(
                f"/admin/analytics/runs/{run_id}/tag",
                data={"csrf_token": csrf, "tag": "召回"},
                follow_redirects=False,
            )
            assert r.status_code == 303
            assert r.headers["location"].endswith(f"notice=tagged&tagged={len(ids)}")
        bad = c.post(
            f"/admin/analytics/runs/{run_id}/tag",
            data={"csrf_token": csrf, "tag": ",bad"},
            follow_redirects=False,
        )
        assert bad.status_code == 422
    with db.transaction() as s:
        tagged = s.execute(select(MemberTag.member_id, MemberTag.tag)).all()
        assert sorted(tagged) == sorted((m, "召回") for m in ids)
        receipts = s.scalar(
            select(func.count())
            .select_from(ActionReceipt)
            .where(ActionReceipt.cause == f"analytics:{run_id}:tag:召回")
        )
        assert receipts == len(ids)
        changes = s.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "member.tags")
        )
        assert changes == len(ids)
        summary = s.scalars(select(AuditLog).where(AuditLog.action == "analytics.tag")).all()
        assert [a.after for a in summary] == [{"tags": ["召回"], "value": len(ids)}] * 2
