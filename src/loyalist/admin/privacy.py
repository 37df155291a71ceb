"""Console: a member's data export and erasure on the 360 page (``privacy.manage``), and
the points liability statement (issue 13 items 3 and 6, privacy2).

* ``GET /admin/members/{id}/export`` downloads the member's zip (audited by the service);
* ``GET /admin/members/{id}/erase`` asks for confirmation (the member number typed again),
  ``POST`` erases (audited, ``member.erased`` emitted) and returns to the member page;
* ``GET /admin/liability?month=YYYY-MM`` shows the monthly statement, outstanding points
  by expiry month (a server-built chart) and by region/store, and the breakage estimate;
  ``GET /admin/liability.xlsx?month=`` downloads the same as an Excel workbook. The
  liability covers the whole programme: HQ staff with ``dashboard.read`` only.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from loyalist.access import permissions as perm
from loyalist.admin.charts import GRID, PALETTE
from loyalist.admin.pages import FormDep, StaffDep, in_db, translator
from loyalist.admin.web import AdminRoute, Staff, render
from loyalist.errors import FieldError, Forbidden, ValidationFailed
from loyalist.kit.clock import utcnow
from loyalist.liability import service as liability
from loyalist.member import service as members
from loyalist.org import service as org
from loyalist.privacy import service as privacy
from loyalist.programme import service as programmes

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


# ── a member's data ────────────────────────────────────────────────────────────────────
async def member_export(request: Request, st: StaffDep, member_id: int) -> Response:
    e = await in_db(request, st, lambda s: privacy.export(s, st.actor, member_id))
    return Response(e.data, media_type="application/zip", headers=_attachment(e.filename))


def _erasable(s: Session, st: Staff, member_id: int) -> Any:
    perm.require(st.actor, perm.PRIVACY_MANAGE)
    return members.get(s, st.actor, member_id)  # 404 outside the caller's scope


async def member_erase_page(request: Request, st: StaffDep, member_id: int) -> Response:
    m = await in_db(request, st, lambda s: _erasable(s, st, member_id))
    return render(request, "member_erase.html", {"m": m, "errors": {}, "typed": ""})


async def member_erase(request: Request, st: StaffDep, member_id: int, form: FormDep) -> Response:
    typed = (form.get("member_no") or "").strip()

    def work(s: Session) -> tuple[Any, bool]:
        m = _erasable(s, st, member_id)
        if m.erased_at is not None:
            return m, True
        if typed.upper() != m.member_no.upper():
            return m, False
        privacy.erase(s, st.actor, member_id, reason="request")
        return m, True

    m, done = await in_db(request, st, work)
    if not done:
        _locale, _ = translator(request, st)
        errors = {"member_no": _("Type the member number exactly to confirm.")}
        return render(
            request, "member_erase.html", {"m": m, "errors": errors, "typed": typed}, status=422
        )
    return RedirectResponse(f"/admin/members/{member_id}?notice=erased", status_code=303)


# ── the liability statement ────────────────────────────────────────────────────────────
def _month(value: str | None, default: str) -> str:
    month = (value or "").strip() or default
    if not MONTH.match(month):
        raise ValidationFailed(
            "The month must be YYYY-MM.", [FieldError("month", "a month as YYYY-MM")]
        )
    return month


def whole_programme(scope_path: str) -> bool:
    """The scope of HQ (the unit ``/<id>/`` without a parent) or of the system (``/``)."""
    return scope_path.count("/") <= 2


def _report(s: Session, st: Staff, month: str | None) -> tuple[str, Any]:
    perm.require(st.actor, perm.DASHBOARD_READ)
    if not whole_programme(st.actor.scope_path):
        raise Forbidden("The liability covers the whole programme: HQ staff only.")
    _v, programme = programmes.active(s)
    today = utcnow().astimezone(programme.tz).date()
    chosen = _month(month, f"{today.year:04d}-{today.month:02d}")
    return chosen, liability.report(s, st.actor, chosen)


def expiry_chart(r: liability.Report, _: Callable[[str], str]) -> dict[str, Any]:
    """Outstanding points by expiry month ("never" last), as an ECharts bar option."""
    by_month: dict[str, int] = defaultdict(int)
    for row in r.outstanding:
        by_month[row.expiry_month] += row.points
    months = sorted(by_month, key=lambda k: (k == "never", k))
    return {
        "color": [PALETTE[0]],
        "tooltip": {"trigger": "axis"},
        "grid": {**GRID, "top": 16},
        "xAxis": {
            "type": "category",
            "data": [_("No expiry") if k == "never" else k for k in months],
        },
        "yAxis": {"type": "value"},
        "series": [
            {
                "name": _("Points"),
                "type": "bar",
                "barMaxWidth": 36,
                "data": [by_month[k] for k in months],
            }
        ],
    }


def _months_back(today: date, n: int) -> list[str]:
    out, y, mo = [], today.year, today.month
    for _i in range(n):
        out.append(f"{y:04d}-{mo:02d}")
        y, mo = (y, mo - 1) if mo > 1 else (y - 1, 12)
    return out


async def liability_page(request: Request, st: StaffDep, month: str | None = None) -> Response:
    def work(s: Session) -> dict[str, Any]:
        chosen, r = _report(s, st, month)
        _v, programme = programmes.active(s)
        today = utcnow().astimezone(programme.tz).date()
        return {
            "month": chosen,
            "r": r,
            "months": _months_back(today, 24),
            "tz": programme.tz,
            "unit_names": {u.code: u.name for u in org.list_units(s, st.actor)},
        }

    ctx = await in_db(request, st, work)
    _locale, _ = translator(request, st)
    r = ctx["r"]
    regions: dict[str, int] = defaultdict(int)
    stores: dict[tuple[str, str], int] = defaultdict(int)
    for row in r.outstanding:
        regions[row.region] += row.points
        stores[(row.region, row.store)] += row.points
    per_100 = r.statement.value_minor_per_100_points
    ctx.update(
        chart=expiry_chart(r, _),
        by_region=sorted(regions.items()),
        by_store=sorted(stores.items()),
        value=lambda pts: liability.money(pts, per_100),
    )
    return render(request, "liability.html", ctx, tz=ctx["tz"])


async def liability_xlsx(request: Request, st: StaffDep, month: str | None = None) -> Response:
    chosen, r = await in_db(request, st, lambda s: _report(s, st, month))
    return Response(
        liability.to_xlsx(r), media_type=XLSX, headers=_attachment(f"liability-{chosen}.xlsx")
    )


def register(router: APIRouter) -> None:
    """Add the pages to the console's router (its AdminRoute turns errors into pages)."""
    assert router.route_class is AdminRoute
    router.add_api_route("/admin/members/{member_id}/export", member_export, methods=["GET"])
    router.add_api_route("/admin/members/{member_id}/erase", member_erase_page, methods=["GET"])
    router.add_api_route("/admin/members/{member_id}/erase", member_erase, methods=["POST"])
    router.add_api_route("/admin/liability", liability_page, methods=["GET"])
    router.add_api_route("/admin/liability.xlsx", liability_xlsx, methods=["GET"])
