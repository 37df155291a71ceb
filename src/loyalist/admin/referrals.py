"""Console: referrals (issue 12) — counts and conversion, the referrals on hold with a
reviewer's decision (``points.approve``, audited by the service), a member's referrals in
the 360 view, and the dashboard's referral figures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.access import permissions as perm
from loyalist.admin.web import AdminRoute, Staff, checked_form, current_staff, db_of, render
from loyalist.errors import FieldError, ValidationFailed
from loyalist.kit.actor import Actor
from loyalist.member import service as members
from loyalist.member.errors import MemberNotFound
from loyalist.programme import service as programmes
from loyalist.referral import service as referrals
from loyalist.referral.schemas import ReferralOut, StatsOut

StaffDep = Annotated[Staff, Depends(current_staff)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]
STATUSES = ("on_hold", "attributed", "qualified", "rewarded", "rejected", "clawed_back")
NOTICES = ("approved", "rejected")
LIMIT = 100


async def _run(request: Request, st: Staff, fn: Callable[[Session], Any]) -> Any:
    return await run_in_threadpool(lambda: db_of(request).run(fn, actor=st.actor))


def _names(s: Session, actor: Actor, ids: set[int]) -> dict[int, Any]:
    """Member number and name of the members the actor may see (others stay ids)."""
    out: dict[int, Any] = {}
    for mid in sorted(ids):
        try:
            out[mid] = members.get(s, actor, mid)
        except MemberNotFound:  # outside the actor's scope: shown as an id
            continue
    return out


async def referrals_page(
    request: Request, st: StaffDep, status: str = "on_hold", notice: str = ""
) -> Response:
    if status not in STATUSES:
        raise ValidationFailed(
            f"Unknown status: use one of {', '.join(STATUSES)}.",
            [FieldError("status", ", ".join(STATUSES))],
        )

    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.MEMBER_READ)
        rows = referrals.search(
            s, st.actor, referrals.Filter(status=status), after=None, limit=LIMIT
        )
        out = [referrals.referral_out(s, r) for r in rows]
        ids = {r.referrer_id for r in out} | {r.referred_id for r in out}
        _v, programme = programmes.active(s)
        return {
            "rows": out,
            "names": _names(s, st.actor, ids),
            "stats": referrals.stats(s, st.actor),
            "tz": ZoneInfo(programme.timezone),
        }

    ctx = await _run(request, st, work)
    ctx.update(
        {
            "status": status,
            "statuses": STATUSES,
            "notice": notice if notice in NOTICES else "",
            "can_decide": st.can(perm.POINTS_APPROVE),
        }
    )
    return render(request, "referrals.html", ctx, tz=ctx["tz"])


async def referrals_decide(
    request: Request, st: StaffDep, referral_id: int, decision: str, form: FormDep
) -> Response:
    if decision not in ("approve", "reject"):
        raise ValidationFailed("Unknown decision.", [FieldError("decision", "approve, reject")])
    note = (form.get("note") or "").strip()[:500] or None
    await _run(request, st, lambda s: referrals.decide(s, st.actor, referral_id, decision, note))
    notice = "approved" if decision == "approve" else "rejected"
    return RedirectResponse(f"/admin/referrals?notice={notice}", status_code=303)


def register(router: APIRouter) -> None:
    """Add the pages to the console's router (its AdminRoute turns errors into pages)."""
    assert router.route_class is AdminRoute
    router.add_api_route("/admin/referrals", referrals_page, methods=["GET"])
    router.add_api_route(
        "/admin/referrals/{referral_id}/{decision}", referrals_decide, methods=["POST"]
    )


def member_referrals(s: Session, actor: Actor, member_id: int) -> dict[str, Any]:
    """The 360 view's referral section: who referred the member, whom they referred."""
    rows = referrals.search(s, actor, referrals.Filter(member_id=member_id), after=None, limit=200)
    out: list[ReferralOut] = [referrals.referral_out(s, r) for r in rows]
    ids = {r.referrer_id for r in out} | {r.referred_id for r in out}
    return {
        "referred_by": next((r for r in out if r.referred_id == member_id), None),
        "referred": [r for r in out if r.referrer_id == member_id],
        "code": referrals.code_of(s, member_id),
        "names": _names(s, actor, ids),
    }


def dashboard_figures(s: Session, actor: Actor, start: date, end: date, tz: ZoneInfo) -> StatsOut:
    """Referrals attributed in the dashboard's period (programme-local days)."""

    def utc(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC)

    return referrals.stats(s, actor, since=utc(start), until=utc(end))
