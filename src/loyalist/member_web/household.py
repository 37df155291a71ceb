"""The member page's household screen at /m/household (家庭账户, issue 13 item 1): the pool,
who earned and spent what, invitations to accept or decline, and — for the main member —
inviting by phone, the permission to spend and removing a member; a member may leave.

The household service does the work; this screen only lets a member act on their own
household: the main member invites, grants and removes; the invited member answers their
own invitations; a member leaves by themselves.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from loyalist.errors import LoyalistError
from loyalist.household import service as households
from loyalist.household.schemas import InvitationCreate
from loyalist.kit.uow import acting_as
from loyalist.ledger import service as ledger
from loyalist.member_web import views
from loyalist.member_web.endpoints import (
    CsrfField,
    _context,
    _csrf_ok,
    _forbidden,
    _page,
    _redirect,
)
from loyalist.models import HouseholdInvitation, Member

router = APIRouter(prefix="/m", include_in_schema=False)
HOME = "/m/household"


def _shown(m: Member | None, me: int) -> str:
    """Another member as the screen names them: the first character of the name and **, or
    the last four digits of the member number."""
    if m is None:
        return "…"
    if m.name:
        return m.name[0] + "**"
    return "…" + m.member_no[-4:]


@router.get("/household")
def household_page(request: Request, done: str | None = None) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id

    def load(s: Any) -> dict[str, Any]:
        view = households.member_view(s, views.member_actor(mid), mid)
        ids = {mid}
        if view.household is not None:
            ids |= {m.member_id for m in view.household.members}
        ids |= {i.owner_member_id for i in view.invitations}
        if view.household is not None:
            ids |= {i.member_id for i in view.household.invitations}
        names = {i: _shown(s.get(Member, i), mid) for i in ids}
        own = ledger.own_account(s, mid)
        return {
            "view": view,
            "names": names,
            "rules": households.settings(s),
            "own": (own.available, own.pending) if view.invitations else (0, 0),
        }

    data = ctx.db.run(load)
    h = data["view"].household
    return _page(
        ctx,
        "household.html",
        h=h,
        invitations=data["view"].invitations,
        names=data["names"],
        me=mid,
        main=h is not None and h.owner_member_id == mid,
        current=[m for m in h.members if m.left_at is None] if h else [],
        former=[m for m in h.members if m.left_at is not None] if h else [],
        open_invitations=[i for i in h.invitations if i.status == "pending"] if h else [],
        max_members=data["rules"].max_members,
        own_points=data["own"],
        done=done,
    )


def _act(request: Request, csrf: str, work: Any) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    if not _csrf_ok(ctx, csrf):
        return _forbidden(ctx)
    mid = ctx.member_id
    actor = views.member_actor(mid)
    try:
        with acting_as(actor):
            outcome = ctx.db.run(lambda s: work(s, actor, mid))
    except LoyalistError as exc:
        return _redirect(f"{HOME}?done=failed-{exc.code}")
    return _redirect(f"{HOME}?done={outcome}")


def _own_household(s: Any, mid: int) -> int | None:
    h = households.household_of(s, mid)
    return h.id if h is not None and h.owner_member_id == mid else None


@router.post("/household/invite")
def invite(
    request: Request,
    csrf: CsrfField = "",
    phone: Annotated[str, Form()] = "",
    can_spend: Annotated[str, Form()] = "",
) -> Response:
    def work(s: Any, actor: Any, mid: int) -> str:
        hid = _own_household(s, mid)
        if hid is None:
            if households.household_of(s, mid) is not None:
                return "not-main"
            hid = households.create(s, actor, mid)[1].id
        households.invite(
            s,
            actor,
            hid,
            InvitationCreate(phone=phone.strip()[:32] or "-", can_spend=can_spend == "1"),
        )
        return "invited"

    return _act(request, csrf, work)


def _answer(invitation_id: int, accept: bool, transfer: bool = False) -> Any:
    def work(s: Any, actor: Any, mid: int) -> str:
        inv = s.get(HouseholdInvitation, invitation_id)
        if inv is None or inv.member_id != mid:
            return "failed-household_invitation_not_found"
        if accept:
            households.accept(s, actor, invitation_id, transfer_points=transfer)
            return "joined"
        households.decline(s, actor, invitation_id)
        return "declined"

    return work


@router.post("/household/invitations/{invitation_id:int}/accept")
def accept(
    request: Request,
    invitation_id: int,
    csrf: CsrfField = "",
    transfer_points: Annotated[str, Form()] = "",
) -> Response:
    """Accept; ``transfer_points`` is the member's consent to move their own points."""
    return _act(request, csrf, _answer(invitation_id, True, transfer_points == "1"))


@router.post("/household/invitations/{invitation_id:int}/withdraw")
def withdraw(request: Request, invitation_id: int, csrf: CsrfField = "") -> Response:
    """The main member withdraws an invitation of their household that waits for an answer."""

    def work(s: Any, actor: Any, mid: int) -> str:
        hid = _own_household(s, mid)
        inv = s.get(HouseholdInvitation, invitation_id)
        if hid is None or inv is None or inv.household_id != hid:
            return "failed-household_invitation_not_found"
        households.withdraw(s, actor, hid, invitation_id)
        return "withdrawn"

    return _act(request, csrf, work)


@router.post("/household/invitations/{invitation_id:int}/decline")
def decline(request: Request, invitation_id: int, csrf: CsrfField = "") -> Response:
    return _act(request, csrf, _answer(invitation_id, False))


@router.post("/household/members/{member_id:int}/permission")
def permission(
    request: Request,
    member_id: int,
    csrf: CsrfField = "",
    can_spend: Annotated[str, Form()] = "",
) -> Response:
    def work(s: Any, actor: Any, mid: int) -> str:
        hid = _own_household(s, mid)
        if hid is None:
            return "not-main"
        households.set_permission(s, actor, hid, member_id, can_spend == "1")
        return "saved"

    return _act(request, csrf, work)


@router.post("/household/members/{member_id:int}/leave")
def leave(request: Request, member_id: int, csrf: CsrfField = "") -> Response:
    """The main member removes a member, or a member leaves by themselves."""

    def work(s: Any, actor: Any, mid: int) -> str:
        h = households.household_of(s, mid)
        if h is None or (member_id != mid and h.owner_member_id != mid):
            return "not-main"
        households.leave(s, actor, h.id, member_id)
        return "left"

    return _act(request, csrf, work)
