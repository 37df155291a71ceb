"""The member page's habits screen at /m/habits: check in, the streak, badges, challenge
progress and the leaderboards covering the member (issue 12 items 4-8).

Mounted by the app next to the member page (``member_web.endpoints`` keeps the session,
CSRF and rendering helpers this module reuses).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loyalist.errors import LoyalistError
from loyalist.habits import service as habits
from loyalist.habits.errors import AlreadyCheckedIn
from loyalist.habits.schemas import CheckinIn
from loyalist.kit.uow import acting_as
from loyalist.member_web import views
from loyalist.member_web.endpoints import (
    CsrfField,
    _context,
    _csrf_ok,
    _forbidden,
    _page,
    _redirect,
)

router = APIRouter(prefix="/m", include_in_schema=False)


def _counter_words(ctx: Any) -> dict[str, str]:
    return {
        "orders": ctx._("visits"),
        "spend_minor": ctx._("fen spent"),
        "categories": ctx._("categories"),
        "checkins": ctx._("check-ins"),
        "streak": ctx._("days in a row"),
        "referrals": ctx._("friends"),
        "reviews": ctx._("reviews"),
        "surveys": ctx._("surveys"),
        "shares": ctx._("shares"),
    }


def _masked(name: str | None, member_no: str) -> str:
    """Another member as the board shows them: the first character of the name, or the
    last four digits of the member number."""
    if name:
        return name[0] + "**"
    return "…" + member_no[-4:]


@router.get("/habits")
def habits_page(request: Request, done: str | None = None) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id

    def load(s: Any) -> tuple[Any, Any]:
        return (
            habits.habits_view(s, views.member_actor(mid), mid, ctx.locale),
            habits.boards_for_member(s, mid, ctx.locale),
        )

    h, boards = ctx.db.run(load)
    week = [h.streak > i for i in range(7)] if h.streak < 7 else [True] * 7
    return _page(
        ctx,
        "habits.html",
        h=h,
        boards=boards,
        week=week,
        done=done,
        me=mid,
        masked=_masked,
        counter_word=_counter_words(ctx).get,
    )


@router.post("/habits/checkin")
def check_in(request: Request, csrf: CsrfField = "") -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    if not _csrf_ok(ctx, csrf):
        return _forbidden(ctx)
    mid = ctx.member_id
    actor = views.member_actor(mid)
    try:
        with acting_as(actor):
            ctx.db.run(lambda s: habits.check_in(s, actor, mid, CheckinIn()))
    except AlreadyCheckedIn:
        return _redirect("/m/habits?done=already")
    except LoyalistError:
        return _redirect("/m/habits?done=failed")
    return _redirect("/m/habits?done=checked")
