"""Console: the analytics section (分析) — RFM segments and their movement between two days,
cohort retention, CLV and P(alive) per segment, and the valuable members at risk with CSV
and Excel exports and a "tag these members" action (issue 10, item 9).

A run is requested here and computed in the background (``loyalist.insights``); the page
shows its progress until it is done, then its figures as charts and tables.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from loyalist.access import permissions as perm
from loyalist.admin.charts import GRID, PALETTE
from loyalist.admin.pages import FormDep, StaffDep, in_db, page_or_part, translator
from loyalist.admin.web import AdminRoute, errors_by_field, gettext_for, render, show_phone
from loyalist.errors import FieldError, LoyalistError, ValidationFailed
from loyalist.insights import service as insights
from loyalist.kit.clock import utcnow
from loyalist.programme import service as programmes

router = APIRouter(route_class=AdminRoute, include_in_schema=False)
SHOWN_AT_RISK = 50  # rows of the at-risk list on the page (exports hold them all)
NOTICES = ("requested", "tagged")


def _day(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationFailed("Dates are YYYY-MM-DD.", [FieldError(field, "YYYY-MM-DD")]) from exc


def segment_label(result: dict[str, Any], name: str, locale: str) -> str:
    """A segment's name in the page's language (the run stores the Chinese names)."""
    if locale == "zh_CN":
        return str((result.get("segment_names_zh") or {}).get(name, name))
    return name


# ── charts (ECharts options built on the server, drawn by admin.js) ────────────────────
def charts(result: dict[str, Any], locale: str, _: Callable[[str], str]) -> dict[str, Any]:
    def label(s: str) -> str:
        return segment_label(result, s, locale)

    segs = list(reversed(result.get("segments") or []))
    segments = {
        "color": PALETTE,
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "legend": {"top": 0},
        "grid": GRID,
        "xAxis": {"type": "value", "minInterval": 1},
        "yAxis": {"type": "category", "data": [label(r["segment"]) for r in segs]},
        "series": [
            {
                "name": _("Members"),
                "type": "bar",
                "barMaxWidth": 18,
                "label": {"show": True, "position": "right"},
                "data": [r["customers"] for r in segs],
            }
        ],
    }
    matrix = (result.get("movement") or {}).get("matrix") or []
    froms = [str(r["from"]) for r in matrix]
    tos = [k for k in (matrix[0].keys() if matrix else []) if k != "from"]
    movement = {
        "tooltip": {"position": "top"},
        "grid": {**GRID, "top": 8, "bottom": 24},
        "xAxis": {
            "type": "category",
            "name": _("Now"),
            "data": [label(t) for t in tos],
            "axisLabel": {"interval": 0, "rotate": 35, "fontSize": 11},
        },
        "yAxis": {"type": "category", "name": _("Before"), "data": [label(f) for f in froms]},
        "visualMap": {
            "min": 0,
            "max": max([int(r[t]) for r in matrix for t in tos] or [1]),
            "calculable": False,
            "orient": "horizontal",
            "left": "center",
            "bottom": 0,
            "show": False,
            "inRange": {"color": ["#f4f6fb", PALETTE[0]]},
        },
        "series": [
            {
                "name": _("Members"),
                "type": "heatmap",
                "label": {"show": True},
                "data": [
                    [j, i, int(r[t])] for i, r in enumerate(matrix) for j, t in enumerate(tos)
                ],
            }
        ],
    }
    rows = result.get("cohorts") or []
    cohort_days = sorted({str(r["cohort"]) for r in rows})
    periods = sorted({int(r["period_index"]) for r in rows})
    cohorts = {
        "tooltip": {"position": "top"},
        "grid": {**GRID, "top": 8, "bottom": 8},
        "xAxis": {"type": "category", "name": _("Months since joining"), "data": periods},
        "yAxis": {
            "type": "category",
            "data": [d[:7] for d in cohort_days],
            "inverse": True,
        },
        "visualMap": {
            "min": 0,
            "max": 1,
            "show": False,
            "inRange": {"color": ["#fdf2f2", PALETTE[3]]},
        },
        "series": [
            {
                "name": _("Retention"),
                "type": "heatmap",
                "label": {"show": True, "fontSize": 9},
                "data": [
                    [
                        periods.index(int(r["period_index"])),
                        cohort_days.index(str(r["cohort"])),
                        round(float(r["retention"]), 4),
                    ]
                    for r in rows
                ],
            }
        ],
    }
    clv_rows = result.get("clv_segments") or []
    clv = {
        "color": [PALETTE[1], PALETTE[4]],
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "legend": {"top": 0},
        "grid": GRID,
        "xAxis": {
            "type": "category",
            "data": [label(r["segment"]) for r in clv_rows],
            "axisLabel": {"interval": 0, "rotate": 35, "fontSize": 11},
        },
        "yAxis": {"type": "value"},
        "series": [
            {
                "name": _("Average CLV (next 12 months)"),
                "type": "bar",
                "barMaxWidth": 28,
                "data": [
                    round(r["mean_clv"], 2) if r["mean_clv"] is not None else None for r in clv_rows
                ],
            }
        ],
    }
    return {"segments": segments, "movement": movement, "cohorts": cohorts, "clv": clv}


# ── pages ──────────────────────────────────────────────────────────────────────────────
def _tz(s: Session) -> ZoneInfo:
    return ZoneInfo(programmes.active(s)[1].timezone)


@router.get("/admin/analytics")
async def analytics_page(
    request: Request, st: StaffDep, run: str = "", notice: str = "", tagged: str = ""
) -> Response:
    locale, _ = translator(request, st)
    run_id = int(run) if run.strip().isdigit() else None

    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.ANALYTICS_READ)
        tz = _tz(s)
        runs = insights.latest(s, st.actor)
        chosen = None
        if run_id is not None:
            chosen = insights.get(s, st.actor, run_id)
        else:
            chosen = next((r for r in runs if r.status == insights.DONE), runs[0] if runs else None)
        today = utcnow().astimezone(tz).date()
        at_risk = (
            insights.at_risk(s, st.actor, chosen.id, limit=SHOWN_AT_RISK)
            if chosen is not None and chosen.status == insights.DONE
            else []
        )
        return {"runs": runs, "r": chosen, "at_risk": at_risk, "tz": tz, "today": today}

    ctx = await in_db(request, st, work)
    r = ctx["r"]
    result: dict[str, Any] = r.result if r is not None else {}
    ctx.update(
        {
            "result": result,
            "charts": charts(result, locale, _) if r is not None and r.status == "done" else {},
            "seg": lambda name: segment_label(result, name, locale),
            "default_as_of": ctx["today"].isoformat(),
            "default_from": (ctx["today"] - timedelta(days=90)).isoformat(),
            "notice": notice if notice in NOTICES else "",
            "tagged": int(tagged) if tagged.isdigit() else None,
            "errors": {},
            "form": {},
            "see_phone": st.can(perm.MEMBER_PHONE),
            "show_phone": show_phone,
        }
    )
    template = page_or_part(request, "analytics.html", "analytics_progress.html")
    return render(request, template, ctx, tz=ctx["tz"])


@router.post("/admin/analytics/runs")
async def analytics_request(request: Request, st: StaffDep, form: FormDep) -> Response:
    def work(s: Session) -> int:
        as_of = _day(form.get("as_of", ""), "as_of")
        since = _day(form.get("compare_from", ""), "compare_from")
        return insights.request_run(s, st.actor, as_of=as_of, compare_from=since).id

    try:
        run_id = await in_db(request, st, work)
    except LoyalistError as exc:
        if exc.status != 422:
            raise
        ctx = await in_db(
            request,
            st,
            lambda s: {"runs": insights.latest(s, st.actor), "tz": _tz(s)},
        )
        ctx.update(
            {
                "r": None,
                "result": {},
                "charts": {},
                "at_risk": [],
                "notice": "",
                "tagged": None,
                "errors": errors_by_field(exc.errors),
                "form": form,
                "default_as_of": form.get("as_of", ""),
                "default_from": form.get("compare_from", ""),
                "see_phone": st.can(perm.MEMBER_PHONE),
            }
        )
        return render(request, "analytics.html", ctx, status=422, tz=ctx["tz"])
    return RedirectResponse(f"/admin/analytics?run={run_id}&notice=requested", status_code=303)


@router.post("/admin/analytics/runs/{run_id}/tag")
async def analytics_tag(request: Request, st: StaffDep, run_id: int, form: FormDep) -> Response:
    tag = form.get("tag", "")
    n = await in_db(request, st, lambda s: insights.tag_at_risk(s, st.actor, run_id, tag))
    return RedirectResponse(
        f"/admin/analytics?run={run_id}&notice=tagged&tagged={n}", status_code=303
    )


# ── exports ────────────────────────────────────────────────────────────────────────────
def _table(
    rows: list[insights.AtRiskMember],
    result: dict[str, Any],
    locale: str,
    see_phone: bool,
) -> tuple[list[str], list[list[Any]]]:
    _ = gettext_for(locale)
    head = [
        _("Member number"),
        _("Name"),
        _("Phone"),
        _("Segment"),
        _("Days since last order"),
        _("Orders"),
        _("Spent (yuan)"),
        _("P(alive)"),
        _("CLV (yuan, next 12 months)"),
    ]
    body = [
        [
            row.member.member_no,
            row.member.name or "",
            show_phone(row.member.phone, not see_phone) if row.member.phone else "",
            segment_label(result, row.segment, locale),
            row.recency_days,
            row.frequency,
            round(row.monetary, 2),
            round(row.probability_alive, 4) if row.probability_alive is not None else "",
            round(row.clv, 2) if row.clv is not None else "",
        ]
        for row in rows
    ]
    return head, body


@router.get("/admin/analytics/runs/{run_id}/at-risk.{ext}")
async def analytics_export(request: Request, st: StaffDep, run_id: int, ext: str) -> Response:
    if ext not in ("csv", "xlsx"):
        raise ValidationFailed("Export as csv or xlsx.", [FieldError("ext", "csv, xlsx")])
    locale = translator(request, st)[0]

    def work(s: Session) -> tuple[list[str], list[list[Any]]]:
        run = insights.get(s, st.actor, run_id)
        rows = insights.at_risk(s, st.actor, run_id)
        return _table(rows, run.result, locale, st.can(perm.MEMBER_PHONE))

    head, body = await in_db(request, st, work)
    name = f"at-risk-{run_id}"
    if ext == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(head)
        w.writerows(body)
        data = ("\ufeff" + buf.getvalue()).encode("utf-8")  # the BOM: Excel reads UTF-8
        media = "text/csv; charset=utf-8"
    else:
        data = _xlsx(head, body)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}.{ext}"'},
    )


def _xlsx(head: list[str], body: list[list[Any]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "at-risk"
    ws.append(head)
    for c in ws[1]:
        c.font = Font(bold=True)
    for row in body:
        ws.append(row)
    ws.freeze_panes = "A2"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
