"""Console: backtest a programme version (回测, issue 15 item 8) — in the analytics section.

Choose a stored programme version or paste a variant (YAML or JSON), and the months of
history; the backtest runs in the background (``loyalist.backtest.tasks``) and the page
follows its state, then shows the difference in points, liability and cost against what
happened: a chart by month and tables by tier and by store. HQ staff who may read the
analytics and the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalist.access import permissions as perm
from loyalist.admin.charts import GRID, PALETTE
from loyalist.admin.pages import FormDep, StaffDep, in_db, page_or_part, translator
from loyalist.admin.web import AdminRoute, Staff, errors_by_field, render
from loyalist.backtest import tasks as backtests
from loyalist.errors import FieldError, Forbidden, LoyalistError, ValidationFailed
from loyalist.models import OrgUnit
from loyalist.programme import service as programmes


def _require(st: Staff) -> None:
    perm.require(st.actor, perm.ANALYTICS_READ)
    perm.require(st.actor, perm.DASHBOARD_READ)
    if st.actor.scope_path.count("/") > 2:  # every store's orders: HQ only
        raise Forbidden("Backtests cover every store: HQ staff only.")


def chart(result: dict[str, Any], _: Callable[[str], str]) -> dict[str, Any]:
    """ECharts options: the points difference by month (bars) and the liability
    difference (line)."""
    months = list((result.get("by_month") or {}).items())
    return {
        "color": [PALETTE[0], PALETTE[3]],
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": GRID,
        "xAxis": {"type": "category", "data": [m for m, _v in months]},
        "yAxis": {"type": "value"},
        "series": [
            {
                "name": _("Points difference"),
                "type": "bar",
                "barMaxWidth": 28,
                "data": [v["delta"] for _m, v in months],
            },
            {
                "name": _("Liability difference (points)"),
                "type": "line",
                "data": [v["liability_delta"] for _m, v in months],
            },
        ],
    }


def _context(s: Session, st: Staff, run_id: int | None) -> dict[str, Any]:
    _require(st)
    runs = backtests.latest(s, st.actor)
    chosen = backtests.get(s, st.actor, run_id) if run_id is not None else None
    if chosen is None and run_id is None:
        chosen = next((r for r in runs if r.state == "done"), runs[0] if runs else None)
    _v, programme = programmes.active(s)
    tiers = {t.code: t.name for t in programme.tiers.levels}
    stores = {str(c): str(n) for c, n in s.execute(select(OrgUnit.code, OrgUnit.name))}
    return {
        "runs": runs,
        "r": chosen,
        "versions": list(reversed(programmes.list_versions(s))),
        "tier_names": tiers,
        "store_names": stores,
        "tz": ZoneInfo(programme.timezone),
    }


async def backtest_page(request: Request, st: StaffDep, run: str = "") -> Response:
    _locale, _ = translator(request, st)
    run_id = int(run) if run.strip().isdigit() and len(run.strip()) < 12 else None
    ctx = await in_db(request, st, lambda s: _context(s, st, run_id))
    r = ctx["r"]
    result = dict(r.result or {}) if r is not None else {}
    if result.get("by_tier"):  # the programme's tier order, not the codes' alphabetical one
        by_tier = result["by_tier"]
        order = [c for c in ctx["tier_names"] if c in by_tier]
        result["by_tier"] = {c: by_tier[c] for c in [*order, *sorted(set(by_tier) - set(order))]}
    ctx.update(
        {
            "result": result,
            "chart": chart(r.result, _) if r is not None and r.result else {},
            "errors": {},
            "form": {"months": "6"},
        }
    )
    template = page_or_part(request, "backtest.html", "backtest_progress.html")
    return render(request, template, ctx, tz=ctx["tz"])


async def backtest_request(request: Request, st: StaffDep, form: FormDep) -> Response:
    def work(s: Session) -> int:
        _require(st)
        raw = form.get("months", "").strip()
        if not raw.isdigit() or len(raw) > 3:
            raise ValidationFailed(
                "Months are a whole number.", [FieldError("months", "a whole number")]
            )
        text = form.get("document", "")
        label = form.get("label", "").strip()
        if text.strip():
            document = backtests.parse_document(text)
            label = label or "粘贴的方案"
        else:
            chosen = form.get("version", "").strip()
            if not chosen.isdigit() or len(chosen) > 9:
                raise ValidationFailed(
                    "Choose a version or paste a document.",
                    [FieldError("version", "choose a version")],
                )
            document = programmes.as_document(programmes.get_version(s, int(chosen)))
            label = label or f"v{int(chosen)}"
        return backtests.request(s, st.actor, document, int(raw), label)

    try:
        job_id = await in_db(request, st, work)
    except LoyalistError as exc:
        if exc.status not in (404, 409, 422):
            raise
        ctx = await in_db(request, st, lambda s: _context(s, st, None))
        ctx.update(
            {
                "r": None,
                "result": {},
                "chart": {},
                "errors": errors_by_field(exc.errors) or {"version": str(exc)},
                "form": form,
            }
        )
        return render(request, "backtest.html", ctx, status=422, tz=ctx["tz"])
    return RedirectResponse(f"/admin/backtest?run={job_id}", status_code=303)


def register(router: APIRouter) -> None:
    """Add the pages to the console's router (its AdminRoute turns errors into pages)."""
    assert router.route_class is AdminRoute
    router.add_api_route("/admin/backtest", backtest_page, methods=["GET"])
    router.add_api_route("/admin/backtest", backtest_request, methods=["POST"])
