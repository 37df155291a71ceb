"""Console: households (issue 13, item 1) — the list of households in scope, and a member's
household in the 360 view (its pool, members with what each earned and spent,
invitations)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.access import permissions as perm
from loyalist.admin.web import AdminRoute, Staff, current_staff, db_of, render
from loyalist.errors import FieldError, ValidationFailed
from loyalist.household import service as households
from loyalist.kit.actor import Actor
from loyalist.member import service as members
from loyalist.member.errors import MemberNotFound
from loyalist.programme import service as programmes

StaffDep = Annotated[Staff, Depends(current_staff)]
STATUSES = ("active", "dissolved")
LIMIT = 100


async def _run(request: Request, st: Staff, fn: Callable[[Session], Any]) -> Any:
    return await run_in_threadpool(lambda: db_of(request).run(fn, actor=st.actor))


def _names(s: Session, actor: Actor, ids: set[int]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for mid in sorted(ids):
        try:
            out[mid] = members.get(s, actor, mid)
        except MemberNotFound:  # outside the actor's scope: shown as an id
            continue
    return out


async def households_page(request: Request, st: StaffDep, status: str = "active") -> Response:
    if status not in STATUSES:
        raise ValidationFailed(
            f"Unknown status: use one of {', '.join(STATUSES)}.",
            [FieldError("status", ", ".join(STATUSES))],
        )

    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.MEMBER_READ)
        page = households.page(
            s, st.actor, households.Filter(status=status), after=None, limit=LIMIT
        )
        _v, programme = programmes.active(s)
        return {
            "rows": page.items,
            "names": _names(s, st.actor, {h.owner_member_id for h in page.items}),
            "rules": programme.households,
            "tz": ZoneInfo(programme.timezone),
        }

    ctx = await _run(request, st, work)
    ctx.update({"status": status, "statuses": STATUSES})
    return render(request, "households.html", ctx, tz=ctx["tz"])


def register(router: APIRouter) -> None:
    """Add the page to the console's router (its AdminRoute turns errors into pages)."""
    assert router.route_class is AdminRoute
    router.add_api_route("/admin/households", households_page, methods=["GET"])


def member_household(s: Session, actor: Actor, member_id: int) -> dict[str, Any] | None:
    """The 360 view's household section: the member's household now, or None."""
    view = households.member_view(s, actor, member_id)
    if view.household is None and not view.invitations:
        return None
    ids = {i.owner_member_id for i in view.invitations}
    if view.household is not None:
        ids |= {m.member_id for m in view.household.members}
        ids |= {i.member_id for i in view.household.invitations}
    return {"view": view, "names": _names(s, actor, ids)}
