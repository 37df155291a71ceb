"""Console: the job queue — queued, running, failed and dead jobs with their errors; retry
and cancel (HQ administrators, ``jobs.manage``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.admin.web import AdminRoute, Staff, checked_form, current_staff, db_of, render
from loyalist.errors import FieldError, ValidationFailed
from loyalist.jobs import operators

StaffDep = Annotated[Staff, Depends(current_staff)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]
LIMIT = 100
NOTICES = ("retried", "cancelled")


async def _run(request: Request, st: Staff, fn: Callable[[Session], Any]) -> Any:
    return await run_in_threadpool(lambda: db_of(request).run(fn, actor=st.actor))


async def jobs_page(
    request: Request, st: StaffDep, state: str = "", kind: str = "", notice: str = ""
) -> Response:
    if state and state not in operators.STATES:
        known = ", ".join(operators.STATES)
        raise ValidationFailed(
            f"Unknown job state: use one of {known}.", [FieldError("state", known)]
        )
    states = (state,) if state else operators.OPEN
    kind = kind.strip()[:100]

    def work(s: Session) -> dict[str, Any]:
        rows, totals = operators.overview(
            s, st.actor, states=states, kind=kind or None, limit=LIMIT
        )
        return {"rows": rows, "totals": totals}

    ctx = await _run(request, st, work)
    ctx.update(
        {
            "state": state,
            "kind": kind,
            "all_states": operators.STATES,
            "notice": notice if notice in NOTICES else "",
            "limit": LIMIT,
        }
    )
    return render(request, "jobs.html", ctx)


async def jobs_act(
    request: Request, st: StaffDep, job_id: int, action: str, form: FormDep
) -> Response:
    if action not in ("retry", "cancel"):
        raise ValidationFailed("Unknown action.", [FieldError("action", "retry, cancel")])
    fn = operators.retry if action == "retry" else operators.cancel
    await _run(request, st, lambda s: fn(s, st.actor, job_id))
    notice = "retried" if action == "retry" else "cancelled"
    back = form.get("back", "")
    query = back if back.startswith("state=") or back.startswith("kind=") else ""
    sep = "&" if query else ""
    return RedirectResponse(f"/admin/jobs?{query}{sep}notice={notice}", status_code=303)


def register(router: APIRouter) -> None:
    """Add the pages to the console's router (its AdminRoute turns errors into pages)."""
    assert router.route_class is AdminRoute
    router.add_api_route("/admin/jobs", jobs_page, methods=["GET"])
    router.add_api_route("/admin/jobs/{job_id}/{action}", jobs_act, methods=["POST"])
