"""Console: coupon templates (with counters, pause / activate), batches with their
progress, and a member's coupons in the 360 view (issue one by hand)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.access import permissions as perm
from loyalist.admin.web import AdminRoute, Staff, checked_form, current_staff, db_of, render
from loyalist.coupon import service as coupons
from loyalist.coupon.schemas import IssueIn
from loyalist.errors import FieldError, Forbidden, ValidationFailed

StaffDep = Annotated[Staff, Depends(current_staff)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]
NOTICES = ("paused", "activated")


async def _run(request: Request, st: Staff, fn: Callable[[Session], Any]) -> Any:
    return await run_in_threadpool(lambda: db_of(request).run(fn, actor=st.actor))


async def coupons_page(request: Request, st: StaffDep, notice: str = "") -> Response:
    def work(s: Session) -> dict[str, Any]:
        return {
            "templates": coupons.list_templates(s, st.actor).items,
            "batches": coupons.list_batches(s, st.actor, limit=50),
        }

    ctx = await _run(request, st, work)
    ctx["notice"] = notice if notice in NOTICES else ""
    return render(request, "coupons.html", ctx)


async def template_toggle(
    request: Request, st: StaffDep, code: str, action: str, form: FormDep
) -> Response:
    if action not in ("pause", "activate"):
        raise ValidationFailed("Unknown action.", [FieldError("action", "pause, activate")])
    active = action == "activate"
    await _run(request, st, lambda s: coupons.set_active(s, st.actor, code, active))
    return RedirectResponse(
        f"/admin/coupons?notice={'activated' if active else 'paused'}", status_code=303
    )


async def member_issue(request: Request, st: StaffDep, member_id: int, form: FormDep) -> Response:
    template = form.get("template", "").strip()
    if not template:
        raise ValidationFailed("Choose a template.", [FieldError("template", "required")])
    data = IssueIn(template=template[:64])
    await _run(request, st, lambda s: coupons.issue_view(s, st.actor, member_id, data))
    return RedirectResponse(f"/admin/members/{member_id}?notice=coupon_issued", status_code=303)


def template_names(s: Session, st: Staff, locale: str) -> dict[str, str]:
    """Coupon template code → its name in the page's language, for audit rows (empty when
    the viewer may not read the programme)."""
    try:
        items = coupons.list_templates(s, st.actor).items
    except Forbidden:
        return {}
    return {t.code: t.name_en if locale != "zh_CN" and t.name_en else t.name for t in items}


def member_section(s: Session, st: Staff, member_id: int) -> dict[str, Any]:
    """What the member 360 view shows of coupons (the caller checked scope)."""
    return {
        "coupons": coupons.coupons_of(s, member_id, limit=50),
        "coupon_templates": [t for t in coupons.list_templates(s, st.actor).items if t.active]
        if st.can(perm.MEMBER_WRITE) and st.can(perm.PROGRAMME_READ)
        else [],
    }


def register(router: APIRouter) -> None:
    """Add the pages to the console's router (its AdminRoute turns errors into pages)."""
    assert router.route_class is AdminRoute
    router.add_api_route("/admin/coupons", coupons_page, methods=["GET"])
    router.add_api_route(
        "/admin/coupons/templates/{code}/{action}", template_toggle, methods=["POST"]
    )
    router.add_api_route("/admin/members/{member_id}/coupons", member_issue, methods=["POST"])
