"""The member page's referral and viral screens (issue 12): the member's code, share link
and QR; friend-assist and group campaigns with live progress.

Mounted by ``app.py`` beside the member page's own router; every route acts for the
session's member only (no route takes a member id) and every form checks the CSRF token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from loyalist.errors import LoyalistError, NotFound
from loyalist.kit.hashing import new_token
from loyalist.kit.uow import acting_as
from loyalist.member_web import views
from loyalist.member_web.endpoints import (
    CsrfField,
    Ctx,
    _context,
    _csrf_ok,
    _forbidden,
    _not_found,
    _page,
    _redirect,
)
from loyalist.referral import domain as referral_rules
from loyalist.referral import service as referrals
from loyalist.viral import service as viral

router = APIRouter(prefix="/m", include_in_schema=False)
DEVICE_COOKIE = "loyalist_device"


def _base(request: Request) -> str:
    return str(request.base_url)


def _device(request: Request) -> tuple[str, bool]:
    """A random id this browser keeps (a device id for the referral abuse checks)."""
    value = request.cookies.get(DEVICE_COOKIE, "")
    if 16 <= len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum():
        return value, False
    return new_token(18), True


def _keep_device(ctx: Ctx, resp: Response, device: str, fresh: bool) -> Response:
    if fresh:
        resp.set_cookie(
            DEVICE_COOKIE,
            device,
            max_age=5 * 365 * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=ctx.secure,
            path="/m",
        )
    return resp


@router.get("/referral")
def referral_page(request: Request) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id
    device, fresh = _device(request)
    actor = views.member_actor(mid)

    def load(s: Any) -> tuple[Any, list[Any]]:
        with acting_as(actor):
            referrals.record_signal(s, actor, mid, "device_id", device)
            view = referrals.code_view(s, actor, mid, _base(request))
            mine = referrals.search(s, actor, referrals.Filter(member_id=mid), after=None, limit=50)
            return view, [r for r in mine if r.referrer_id == mid]

    view, friends = ctx.db.run(load)
    resp = _page(ctx, "referral.html", r=view, friends=friends)
    return _keep_device(ctx, resp, device, fresh)


@router.get("/referral/qr.svg")
def referral_qr_svg(request: Request) -> Response:
    return _qr(request, "svg")


@router.get("/referral/qr.png")
def referral_qr_png(request: Request) -> Response:
    return _qr(request, "png")


def _qr(request: Request, kind: str) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id
    actor = views.member_actor(mid)
    view = ctx.db.run(lambda s: referrals.code_view(s, actor, mid, _base(request)))
    if kind == "svg":
        body: bytes = referral_rules.qr_svg(view.link).encode()
        media = "image/svg+xml"
    else:
        body = referral_rules.qr_png(view.link)
        media = "image/png"
    return Response(body, media_type=media, headers={"Cache-Control": "private, max-age=300"})


# -- friend-assist and groups ----------------------------------------------------------------


@router.get("/campaigns")
def campaigns_page(request: Request) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id

    def load(s: Any) -> dict[str, Any]:
        return {
            "campaigns": viral.campaigns(s, ctx.locale),
            "assists": [viral.assist_out(s, a) for a in viral.member_assists(s, mid)],
            "groups": [viral.group_out(s, g) for g in viral.member_groups(s, mid)],
        }

    return _page(ctx, "campaigns.html", **ctx.db.run(load))


def _campaign_names(ctx: Ctx, s: Any) -> dict[str, str]:
    c = viral.campaigns(s, ctx.locale)
    return {x.code: x.name for x in [*c.assist, *c.groups]}


@router.post("/assists")
def start_assist(
    request: Request, csrf: CsrfField = "", campaign: Annotated[str, Form()] = ""
) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    if not _csrf_ok(ctx, csrf):
        return _forbidden(ctx)
    mid = ctx.member_id
    actor = views.member_actor(mid)
    try:
        with acting_as(actor):
            started = ctx.db.run(lambda s: viral.start_assist_view(s, actor, mid, campaign))
    except NotFound:
        return _not_found(ctx)
    except LoyalistError as exc:
        return _problem(ctx, exc)
    return _redirect(f"/m/assists/{started.assist.id}")


def _problem(ctx: Ctx, exc: LoyalistError) -> Response:
    messages = {
        "own_assist": ctx._("You cannot help your own assist: share it with friends."),
        "already_helped": ctx._("You have already helped this friend."),
        "assist_closed": ctx._("This assist has finished."),
        "assist_already_started": ctx._("You have already taken part in this campaign."),
        "group_closed": ctx._("This group is full or has closed."),
        "already_in_group": ctx._("You are already in a group of this campaign."),
    }
    return _page(
        ctx,
        "error.html",
        exc.status,
        title=ctx._("That did not work"),
        message=messages.get(exc.code, ctx._("Please try again later.")),
    )


@router.get("/assists/{assist_id}")
def assist_page(request: Request, assist_id: int) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id
    actor = views.member_actor(mid)

    def load(s: Any) -> dict[str, Any]:
        a = viral.assist_view(s, actor, assist_id)
        return {"a": a, "names": _campaign_names(ctx, s)}

    try:
        data = ctx.db.run(load)
    except NotFound:
        return _not_found(ctx)
    a = data["a"]
    link = f"{_base(request).rstrip('/')}/m/assists/{a.id}"
    return _page(
        ctx,
        "assist.html",
        a=a,
        name=data["names"].get(a.campaign, a.campaign),
        mine=a.starter_id == mid,
        helped=mid in a.helpers,
        link=link,
        pct=min(100, round(100 * a.helps / a.needed)) if a.needed else 100,
    )


@router.post("/assists/{assist_id}/help")
def help_assist(request: Request, assist_id: int, csrf: CsrfField = "") -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    if not _csrf_ok(ctx, csrf):
        return _forbidden(ctx)
    mid = ctx.member_id
    actor = views.member_actor(mid)
    try:
        with acting_as(actor):
            ctx.db.run(lambda s: viral.help_view(s, actor, assist_id, mid))
    except NotFound:
        return _not_found(ctx)
    except LoyalistError as exc:
        return _problem(ctx, exc)
    return _redirect(f"/m/assists/{assist_id}")


@router.post("/groups")
def open_group(
    request: Request, csrf: CsrfField = "", campaign: Annotated[str, Form()] = ""
) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    if not _csrf_ok(ctx, csrf):
        return _forbidden(ctx)
    mid = ctx.member_id
    actor = views.member_actor(mid)
    try:
        with acting_as(actor):
            g = ctx.db.run(lambda s: viral.open_group_view(s, actor, mid, campaign))
    except NotFound:
        return _not_found(ctx)
    except LoyalistError as exc:
        return _problem(ctx, exc)
    return _redirect(f"/m/groups/{g.id}")


@router.get("/groups/{group_id}")
def group_page(request: Request, group_id: int) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id
    actor = views.member_actor(mid)

    def load(s: Any) -> dict[str, Any]:
        return {"g": viral.group_view(s, actor, group_id), "names": _campaign_names(ctx, s)}

    try:
        data = ctx.db.run(load)
    except NotFound:
        return _not_found(ctx)
    g = data["g"]
    return _page(
        ctx,
        "group.html",
        g=g,
        name=data["names"].get(g.campaign, g.campaign),
        joined=mid in g.members,
        link=f"{_base(request).rstrip('/')}/m/groups/{g.id}",
        pct=min(100, round(100 * len(g.members) / g.size)) if g.size else 100,
    )


@router.post("/groups/{group_id}/join")
def join_group(request: Request, group_id: int, csrf: CsrfField = "") -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    if not _csrf_ok(ctx, csrf):
        return _forbidden(ctx)
    mid = ctx.member_id
    actor = views.member_actor(mid)
    try:
        with acting_as(actor):
            ctx.db.run(lambda s: viral.join_group_view(s, actor, group_id, mid))
    except NotFound:
        return _not_found(ctx)
    except LoyalistError as exc:
        return _problem(ctx, exc)
    return _redirect(f"/m/groups/{group_id}")
