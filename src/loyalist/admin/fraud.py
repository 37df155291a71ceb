"""Console: fraud controls (风控) — the review queue of points held by fraud rules with a
reviewer's decision (``points.approve``, audited by the service), frozen members, and the
rules of the fraud document with a 90-day backtest beside what shadow mode logged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.admin.web import AdminRoute, Staff, checked_form, current_staff, db_of, render
from loyalist.errors import FieldError, ValidationFailed
from loyalist.fraud import service as fraud
from loyalist.member import service as members
from loyalist.member.errors import MemberNotFound
from loyalist.programme import service as programmes

StaffDep = Annotated[Staff, Depends(current_staff)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]
STATUSES = ("pending", "approved", "rejected")
NOTICES = ("approved", "rejected")


async def _run(request: Request, st: Staff, fn: Callable[[Session], Any]) -> Any:
    return await run_in_threadpool(lambda: db_of(request).run(fn, actor=st.actor))


async def fraud_page(
    request: Request,
    st: StaffDep,
    status: str = "pending",
    notice: str = "",
    backtest: str = "",
) -> Response:
    if status not in STATUSES:
        raise ValidationFailed(
            f"Unknown status: use one of {', '.join(STATUSES)}.",
            [FieldError("status", ", ".join(STATUSES))],
        )

    def work(s: Session) -> dict[str, Any]:
        items = [fraud.review_out(r) for r in fraud.reviews(s, st.actor, status)]
        frozen = fraud.frozen_members(s, st.actor)
        names: dict[int, Any] = {}
        for mid in sorted({i.member_id for i in items} | {f.member_id for f in frozen}):
            try:
                names[mid] = members.get(s, st.actor, mid)
            except MemberNotFound:
                continue
        doc = fraud.current_document(s)
        tested = None
        if backtest and any(r.code == backtest for r in doc.rules):
            tested = fraud.backtest_out(fraud.backtest(s, st.actor, backtest))
        _v, programme = programmes.active(s)
        return {
            "items": items,
            "frozen": frozen,
            "names": names,
            "rules": doc.rules,
            "tested": tested,
            "stats": fraud.stats(s, st.actor),
            "tz": ZoneInfo(programme.timezone),
        }

    ctx = await _run(request, st, work)
    ctx.update(
        {"status": status, "statuses": STATUSES, "notice": notice if notice in NOTICES else ""}
    )
    return render(request, "fraud.html", ctx, tz=ctx["tz"])


async def fraud_decide(
    request: Request, st: StaffDep, review_id: int, decision: str, form: FormDep
) -> Response:
    if decision not in ("approve", "reject"):
        raise ValidationFailed("Unknown decision.", [FieldError("decision", "approve, reject")])
    note = (form.get("note") or "").strip()[:500] or None
    await _run(request, st, lambda s: fraud.decide(s, st.actor, review_id, decision, note))
    notice = "approved" if decision == "approve" else "rejected"
    return RedirectResponse(f"/admin/fraud?notice={notice}", status_code=303)


def register(router: APIRouter) -> None:
    """Add the pages to the console's router (its AdminRoute turns errors into pages)."""
    assert router.route_class is AdminRoute
    router.add_api_route("/admin/fraud", fraud_page, methods=["GET"])
    router.add_api_route(
        "/admin/fraud/reviews/{review_id}/{decision}", fraud_decide, methods=["POST"]
    )
