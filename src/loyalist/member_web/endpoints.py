"""The member page at /m: server-rendered, mobile-first, zh_CN and en.

Every POST form carries a CSRF token: before sign-in it must equal the value of a
separate cookie (double submit); after sign-in it must equal the session's own token.
The session cookie is HttpOnly, SameSite=Lax, and Secure when the request came over
HTTPS. The member is always the session's member: no route takes a member id.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from loyalist.config import Settings
from loyalist.coupon import service as coupons
from loyalist.errors import LoyalistError, NotFound
from loyalist.idempotency.service import Answer, run_idempotent
from loyalist.kit.db import Database
from loyalist.kit.hashing import constant_time_equals, new_token
from loyalist.kit.i18n import SUPPORTED, negotiate
from loyalist.kit.uow import acting_as
from loyalist.ledger.errors import InsufficientPoints
from loyalist.member.domain import InvalidIdentity, display_phone, normalise_phone
from loyalist.member_web import service, views
from loyalist.member_web.web import Formats, gettext_for, render
from loyalist.messaging import outbox as messages_out
from loyalist.messaging import service as messages
from loyalist.messaging.channels import Channel, mask_address
from loyalist.messaging.settings import channel_from_settings
from loyalist.programme import service as programmes
from loyalist.reward.domain import format_code
from loyalist.reward.errors import LimitReached, OutOfStock, RewardNotAvailable, TierNotAllowed
from loyalist.reward.service import state as redemption_state

log = logging.getLogger("loyalist.member_web")
router = APIRouter(prefix="/m", include_in_schema=False)

SESSION_COOKIE = "loyalist_member"
CSRF_COOKIE = "loyalist_member_csrf"
LANG_COOKIE = "loyalist_lang"
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{16,64}$")
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


@dataclass
class Ctx:
    request: Request
    db: Database
    settings: Settings
    locale: str
    fmt: Formats
    member_id: int | None
    session_csrf: str | None
    anon_csrf: str
    set_anon_csrf: bool
    programme_name: str

    def _(self, message: str, **params: Any) -> str:
        return gettext_for(self.locale)(message, **params)

    @property
    def csrf(self) -> str:
        return self.session_csrf if self.session_csrf is not None else self.anon_csrf

    @property
    def secure(self) -> bool:
        return self.request.url.scheme == "https"


def _context(request: Request) -> Ctx:
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    token = request.cookies.get(SESSION_COOKIE)

    def load(s: Any) -> tuple[int | None, str | None, str, str, str]:
        row = service.find_session(s, token)
        _v, programme = programmes.active(s)
        return (
            row.member_id if row else None,
            row.csrf_token if row else None,
            programme.timezone,
            programme.currency,
            programme.name,
        )

    member_id, session_csrf, tz, currency, name = db.run(load)
    locale = negotiate(request.headers.get("accept-language"), request.cookies.get(LANG_COOKIE))
    anon = request.cookies.get(CSRF_COOKIE, "")
    fresh = not _TOKEN.match(anon)
    return Ctx(
        request=request,
        db=db,
        settings=settings,
        locale=locale,
        fmt=Formats(locale, ZoneInfo(tz), currency),
        member_id=member_id,
        session_csrf=session_csrf,
        anon_csrf=new_token(24) if fresh else anon,
        set_anon_csrf=fresh,
        programme_name=name,
    )


def _page(ctx: Ctx, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    body = render(
        template,
        {
            "_": ctx._,
            "fmt": ctx.fmt,
            "locale": ctx.locale,
            "csrf": ctx.csrf,
            "signed_in": ctx.member_id is not None,
            "programme_name": ctx.programme_name,
            "path": ctx.request.url.path,
            "dev_inbox": ctx.settings.dev_inbox,
            **values,
        },
    )
    resp = HTMLResponse(body, status_code=status, headers=_SECURITY_HEADERS)
    if ctx.set_anon_csrf:
        resp.set_cookie(
            CSRF_COOKIE,
            ctx.anon_csrf,
            httponly=True,
            samesite="lax",
            secure=ctx.secure,
            path="/m",
        )
    return resp


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _csrf_ok(ctx: Ctx, sent: str) -> bool:
    if ctx.member_id is not None:
        expected = ctx.session_csrf or ""
    else:
        expected = "" if ctx.set_anon_csrf else ctx.anon_csrf
    return bool(expected) and bool(sent) and constant_time_equals(sent, expected)


def _forbidden(ctx: Ctx) -> HTMLResponse:
    return _page(
        ctx,
        "error.html",
        403,
        title=ctx._("This form has expired"),
        message=ctx._("Please go back, reload the page and try again."),
    )


def _not_found(ctx: Ctx) -> HTMLResponse:
    return _page(
        ctx,
        "error.html",
        404,
        title=ctx._("Not found"),
        message=ctx._("There is nothing here."),
    )


def _channel(request: Request) -> Channel:
    channel: Channel | None = getattr(request.app.state, "message_channel", None)
    if channel is None:
        settings: Settings = request.app.state.settings
        channel = channel_from_settings(request.app.state.db, dev_inbox=settings.dev_inbox)
        request.app.state.message_channel = channel
    return channel


CsrfField = Annotated[str, Form(alias="csrf")]


# -- sign-in ------------------------------------------------------------------------------


@router.get("/signin")
def signin_form(request: Request) -> Response:
    ctx = _context(request)
    if ctx.member_id is not None:
        return _redirect("/m")
    return _page(ctx, "signin.html", phone="", errors={})


@router.post("/signin")
def signin_send(
    request: Request, csrf: CsrfField = "", phone: Annotated[str, Form()] = ""
) -> Response:
    ctx = _context(request)
    if not _csrf_ok(ctx, csrf):
        return _forbidden(ctx)
    try:
        e164 = normalise_phone(phone)
    except InvalidIdentity:
        errors = {"phone": ctx._("Enter a valid mobile number.")}
        return _page(ctx, "signin.html", 422, phone=phone, errors=errors)
    ip = request.client.host if request.client else "unknown"
    channel = _channel(request)
    outcome = ctx.db.run(lambda s: _issue(s, e164, ip, channel.address, ctx.locale))
    if isinstance(outcome, service.Limited):
        errors = {
            "phone": ctx._(
                "Too many codes requested. Try again in %(seconds)s seconds.",
                seconds=outcome.retry_after_s,
            )
        }
        return _page(ctx, "signin.html", 429, phone=phone, errors=errors)
    if outcome is not None and not _deliver_now(ctx, outcome, channel):
        errors = {"phone": ctx._("We could not send the code. Please try again later.")}
        return _page(ctx, "signin.html", 503, phone=phone, errors=errors)
    return _page(ctx, "code.html", phone=e164, masked=display_phone(e164, masked=True), errors={})


def _code_data(code: str) -> dict[str, str | int]:
    return {"code": code, "minutes": int(service.CODE_TTL.total_seconds() // 60)}


def _deliver_now(ctx: Any, message_id: int, channel: Channel) -> bool:
    """A sign-in code goes out at once (transactional: no caps, no quiet hours), outside
    the transaction that issued it; if the provider fails, the delivery job retries it
    while the code is valid, and the page asks the person to try again."""
    try:
        status = ctx.db.run(lambda s: messages_out.deliver(s, message_id, adapter=channel))
    except Exception:
        log.exception("sign-in code message #%s not sent", message_id)
        return False
    return bool(status == "sent")


def _issue(
    session: Any, e164: str, ip: str, kind: Literal["phone", "email"], locale: str
) -> service.Limited | int | None:
    """Issue a code and record its message (delivered after commit); the message id, or
    None when nothing is sent (not a member, or no address of the channel's kind)."""
    result = service.request_code(session, e164, ip)
    if isinstance(result, service.Limited):
        return result
    if result.member is None:
        return None
    address = _address(result.member, kind)
    if address is None:
        return None
    sent = messages_out.send_to_address(
        session,
        channel="email" if kind == "email" else "sms",
        to=address,
        template="signin_code",
        data=_code_data(result.code),
        locale=locale,
        expires_at=result.expires_at,
        member_id=result.member.id,
    )
    return sent.message_id


class _Reachable(Protocol):
    phone: str | None
    email: str | None


def _address(member: _Reachable, kind: Literal["phone", "email"]) -> str | None:
    """The member's address of the kind the channel needs (phone for SMS-like channels,
    the dev inbox and the log; email for SMTP). A member without one gets no message,
    and the page answers exactly as for any other number."""
    return member.email if kind == "email" else member.phone


@router.post("/signin/code")
def signin_verify(
    request: Request,
    csrf: CsrfField = "",
    phone: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
) -> Response:
    ctx = _context(request)
    if not _csrf_ok(ctx, csrf):
        return _forbidden(ctx)
    try:
        e164 = normalise_phone(phone)
    except InvalidIdentity:
        return _redirect("/m/signin")

    def check(s: Any) -> tuple[service.Verified, service.NewSession | None]:
        v = service.verify_code(s, e164, code)
        if v.outcome == "ok" and v.member_id is not None:
            return v, service.start_session(s, v.member_id)
        return v, None

    verified, new = ctx.db.run(check)
    if new is not None:
        resp = _redirect("/m")
        resp.set_cookie(
            SESSION_COOKIE,
            new.token,
            max_age=int(service.SESSION_TTL.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=ctx.secure,
            path="/m",
        )
        return resp
    problems = {
        "wrong": ctx._(
            "That code is not right. %(left)s attempts left.", left=verified.attempts_left
        ),
        "expired": ctx._("That code has expired. Ask for a new one."),
        "locked": ctx._("Too many wrong codes. Ask for a new one."),
        "none": ctx._("No code is waiting for this number. Ask for a new one."),
    }
    errors = {"code": problems.get(verified.outcome, problems["none"])}
    return _page(
        ctx, "code.html", 422, phone=e164, masked=display_phone(e164, masked=True), errors=errors
    )


# -- self-registration --------------------------------------------------------------------

_REFERRAL = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _join_form(consents: dict[str, bool], referral: str) -> dict[str, Any]:
    return {"consents": consents, "referral": referral, "channels": service.JOIN_CHANNELS}


def _consents(sms: str, email: str, push: str, wechat: str) -> dict[str, bool]:
    ticked = {"sms": sms, "email": email, "push": push, "wechat": wechat}
    return {ch: ticked[ch] == "on" for ch in service.JOIN_CHANNELS}


OptionalField = Annotated[str, Form()]


@router.get("/join")
def join_form(request: Request, ref: str = "") -> Response:
    ctx = _context(request)
    if ctx.member_id is not None:
        return _redirect("/m")
    ref = ref.strip() if _REFERRAL.match(ref.strip()) else ""  # a share link's code (issue 12)
    return _page(ctx, "join.html", phone="", errors={}, **_join_form({}, ref))


@router.post("/join")
def join_send(
    request: Request,
    csrf: CsrfField = "",
    phone: OptionalField = "",
    referral: OptionalField = "",
    terms: OptionalField = "",
    consent_sms: OptionalField = "",
    consent_email: OptionalField = "",
    consent_push: OptionalField = "",
    consent_wechat: OptionalField = "",
) -> Response:
    """Like sign-in, but the code goes to any valid number (a member's number gets a
    sign-in code; the page answers the same either way)."""
    ctx = _context(request)
    if not _csrf_ok(ctx, csrf):
        return _forbidden(ctx)
    referral = referral.strip()
    consents = _consents(consent_sms, consent_email, consent_push, consent_wechat)
    extra = _join_form(consents, referral)
    errors: dict[str, str] = {}
    try:
        e164 = normalise_phone(phone)
    except InvalidIdentity:
        errors["phone"] = ctx._("Enter a valid mobile number.")
    if referral and not _REFERRAL.match(referral):
        errors["referral"] = ctx._("A referral code has letters and digits only.")
    if terms != "on":
        errors["terms"] = ctx._("Please accept the membership terms.")
    if errors:
        return _page(ctx, "join.html", 422, phone=phone, errors=errors, **extra)
    ip = request.client.host if request.client else "unknown"
    channel = _channel(request)

    def issue(s: Any) -> service.Limited | int:
        result = service.request_code(s, e164, ip, for_join=True)
        if isinstance(result, service.Limited):
            return result
        sent = messages_out.send_to_address(
            s,
            channel="sms",
            to=e164,
            template="signin_code",
            data=_code_data(result.code),
            locale=ctx.locale,
            expires_at=result.expires_at,
            member_id=result.member.id if result.member is not None else None,
        )
        return sent.message_id

    if channel.address != "phone":
        log.error("joining needs a message channel that reaches phones")
        errors = {"phone": ctx._("We could not send the code. Please try again later.")}
        return _page(ctx, "join.html", 503, phone=phone, errors=errors, **extra)
    outcome = ctx.db.run(issue)
    if isinstance(outcome, service.Limited):
        errors = {
            "phone": ctx._(
                "Too many codes requested. Try again in %(seconds)s seconds.",
                seconds=outcome.retry_after_s,
            )
        }
        return _page(ctx, "join.html", 429, phone=phone, errors=errors, **extra)
    if not _deliver_now(ctx, outcome, channel):
        errors = {"phone": ctx._("We could not send the code. Please try again later.")}
        return _page(ctx, "join.html", 503, phone=phone, errors=errors, **extra)
    return _page(
        ctx,
        "join_code.html",
        phone=e164,
        masked=display_phone(e164, masked=True),
        errors={},
        **extra,
    )


@router.post("/join/code")
def join_verify(
    request: Request,
    csrf: CsrfField = "",
    phone: OptionalField = "",
    code: OptionalField = "",
    referral: OptionalField = "",
    consent_sms: OptionalField = "",
    consent_email: OptionalField = "",
    consent_push: OptionalField = "",
    consent_wechat: OptionalField = "",
) -> Response:
    ctx = _context(request)
    if not _csrf_ok(ctx, csrf):
        return _forbidden(ctx)
    try:
        e164 = normalise_phone(phone)
    except InvalidIdentity:
        return _redirect("/m/join")
    referral = referral.strip()
    referral = referral if _REFERRAL.match(referral) else ""
    consents = _consents(consent_sms, consent_email, consent_push, consent_wechat)

    def check(s: Any) -> tuple[service.Verified, service.NewSession | None]:
        v = service.verify_code(s, e164, code, for_join=True)
        if v.outcome != "ok":
            return v, None
        member_id = v.member_id
        if member_id is None:
            member_id = service.join(s, e164, consents=consents, referral_code=referral).id
        return v, service.start_session(s, member_id)

    verified, new = ctx.db.run(check)
    if new is not None:
        resp = _redirect("/m?joined=1" if verified.member_id is None else "/m")
        resp.set_cookie(
            SESSION_COOKIE,
            new.token,
            max_age=int(service.SESSION_TTL.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=ctx.secure,
            path="/m",
        )
        return resp
    problems = {
        "wrong": ctx._(
            "That code is not right. %(left)s attempts left.", left=verified.attempts_left
        ),
        "expired": ctx._("That code has expired. Ask for a new one."),
        "locked": ctx._("Too many wrong codes. Ask for a new one."),
        "none": ctx._("No code is waiting for this number. Ask for a new one."),
    }
    errors = {"code": problems.get(verified.outcome, problems["none"])}
    return _page(
        ctx,
        "join_code.html",
        422,
        phone=e164,
        masked=display_phone(e164, masked=True),
        errors=errors,
        **_join_form(consents, referral),
    )


@router.post("/signout")
def signout(request: Request, csrf: CsrfField = "") -> Response:
    ctx = _context(request)
    if not _csrf_ok(ctx, csrf):
        return _forbidden(ctx)
    token = request.cookies.get(SESSION_COOKIE)
    ctx.db.run(lambda s: service.end_session(s, token))
    resp = _redirect("/m/signin")
    resp.delete_cookie(SESSION_COOKIE, path="/m", httponly=True, samesite="lax", secure=ctx.secure)
    return resp


@router.get("/lang/{locale}")
def switch_language(request: Request, locale: str, next: str = "/m") -> Response:
    # Only back to a member page of this site.
    target = next if next == "/m" or (next.startswith("/m/") and "\\" not in next) else "/m"
    resp = _redirect(target)
    if locale in SUPPORTED:
        resp.set_cookie(
            LANG_COOKIE,
            locale,
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
    return resp


# -- the signed-in pages -----------------------------------------------------------------


@router.get("")
@router.get("/")
def home(request: Request) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id
    data = ctx.db.run(lambda s: views.home(s, mid, ctx.locale, ctx._, ctx.fmt.money))
    recs = ctx.db.run(lambda s: views.recommendations(s, mid), read_only=True)  # issue 14
    missing = views.progress_missing(data, ctx._, ctx.fmt.money, ctx.fmt.points)
    keep = views.progress_keep(data, ctx._, ctx.fmt.money, ctx.fmt.points)
    return _page(
        ctx,
        "home.html",
        h=data,
        missing=missing,
        keep=keep,
        amount=lambda v: views.metric_amount(data, v, ctx.fmt.money, ctx.fmt.points),
        reward_name=_reward_name(ctx),
        recs=recs,
        rec_reason=lambda i: i.reason_zh if ctx.locale == "zh_CN" else i.reason_en,
    )


def _reward_name(ctx: Ctx) -> Any:
    return lambda r: views.reward_name(r, ctx.locale)


@router.get("/rewards")
def rewards_page(request: Request) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id

    def load(s: Any) -> tuple[list[views.Offer], int]:
        return views.offers(s, mid, ctx.locale), views.balance(s, mid)

    offers, available = ctx.db.run(load)
    return _page(
        ctx, "rewards.html", offers=offers, available=available, reward_name=_reward_name(ctx)
    )


def _confirm(ctx: Ctx, code: str, status: int = 200, error: str | None = None) -> Response:
    mid = ctx.member_id
    assert mid is not None

    def load(s: Any) -> tuple[views.Offer, int]:
        return views.offer(s, mid, code, ctx.locale), views.balance(s, mid)

    try:
        offer, available = ctx.db.run(load)
    except NotFound:
        return _not_found(ctx)
    return _page(
        ctx,
        "confirm.html",
        status,
        offer=offer,
        available=available,
        after=available - offer.points,
        token=new_token(18),
        error=error,
        reward_name=_reward_name(ctx),
    )


@router.get("/rewards/{code}")
def confirm_page(request: Request, code: str) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    return _confirm(ctx, code)


def _redeem_error(ctx: Ctx, exc: LoyalistError) -> str:
    if isinstance(exc, InsufficientPoints):
        return ctx._("You do not have enough points for this reward.")
    if isinstance(exc, OutOfStock):
        return ctx._("This reward is out of stock.")
    if isinstance(exc, LimitReached):
        return ctx._("You have reached the limit for this reward.")
    if isinstance(exc, TierNotAllowed):
        return ctx._("This reward needs a higher tier.")
    if isinstance(exc, RewardNotAvailable):
        return ctx._("This reward cannot be redeemed now.")
    return ctx._("The reward could not be redeemed.")


@router.post("/rewards/{code}/redeem")
def redeem(
    request: Request,
    code: str,
    csrf: CsrfField = "",
    token: Annotated[str, Form()] = "",
) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    if not _csrf_ok(ctx, csrf) or not _TOKEN.match(token):
        return _forbidden(ctx)
    mid = ctx.member_id

    def work(s: Any) -> Answer:
        r = views.redeem(s, mid, code)
        return Answer(201, {"redemption_id": r.id})

    try:
        with acting_as(views.member_actor(mid)):  # the unit of work knows the member
            answer = run_idempotent(
                ctx.db,
                principal=f"member:{mid}",
                key=f"member-redeem:{token}",
                method="POST",
                path=f"/m/rewards/{code}/redeem",
                body=f"reward={code}".encode(),
                work=work,
            )
    except NotFound:
        return _not_found(ctx)
    except LoyalistError as exc:
        return _confirm(ctx, code, exc.status, _redeem_error(ctx, exc))
    return _redirect(f"/m/redemptions/{int(answer.body['redemption_id'])}")


@router.get("/redemptions/{redemption_id}")
def redemption_page(request: Request, redemption_id: int) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id
    try:
        done = ctx.db.run(lambda s: views.redemption(s, mid, redemption_id))
    except NotFound:
        return _not_found(ctx)
    return _page(
        ctx,
        "redeemed.html",
        done=done,
        reward_name=_reward_name(ctx),
        code=format_code(done.redemption.code),
        qr=_qr(done.redemption.code),
        state=redemption_state(done.redemption),
        # the last day it can be collected (it expires at the start of the next one)
        until=(
            done.redemption.expires_at - timedelta(microseconds=1)
            if done.redemption.expires_at
            else None
        ),
    )


def _qr(code: str | None) -> str | None:
    """The counter code as a QR image (segno, made here: no outside service)."""
    if not code:
        return None
    import segno  # with the first QR code, not when the server starts (memory, issue 11)

    data_uri: str = segno.make(format_code(code), error="m").png_data_uri(scale=6, border=2)
    return data_uri


@router.get("/history")
def history_page(request: Request, before: int | None = None) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id
    lines, more = ctx.db.run(lambda s: views.history(s, mid, ctx.locale, ctx._, before=before))
    # Newest first, under a heading per programme-local day.
    days = [
        (day, list(group)) for day, group in groupby(lines, key=lambda ln: ctx.fmt.day_key(ln.at))
    ]
    return _page(ctx, "history.html", days=days, more=more)


# -- coupons (issue 12) ------------------------------------------------------------------


@router.get("/coupons")
def coupons_page(request: Request) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id
    mine = ctx.db.run(lambda s: coupons.coupons_of(s, mid))
    _ = ctx._
    groups = [
        (
            _("Available"),
            "available",
            [c for c in mine if c.status in ("available", "not_started")],
        ),
        (_("Used"), "used", [c for c in mine if c.status == "used"]),
        (_("Expired"), "expired", [c for c in mine if c.status in ("expired", "voided")]),
    ]
    labels = {
        "available": _("Available"),
        "not_started": _("Not yet valid"),
        "used": _("Used"),
        "expired": _("Expired"),
        "voided": _("Withdrawn"),
    }
    empty = {
        "available": _("No coupons to use right now."),
        "used": _("You have not used a coupon yet."),
        "expired": _("No expired coupons."),
    }
    # expires_at is the first instant it no longer works: show the last minute it does
    until = {c.code: c.expires_at - timedelta(microseconds=1) for c in mine if c.expires_at}
    return _page(ctx, "coupons.html", groups=groups, labels=labels, empty=empty, until=until)


# -- development inbox -------------------------------------------------------------------


@router.get("/dev/inbox")
def dev_inbox(request: Request) -> Response:
    ctx = _context(request)
    if not ctx.settings.dev_inbox:
        return _not_found(ctx)
    rows = ctx.db.run(lambda s: messages.inbox(s, limit=50))
    shown = [(m, mask_address(m.recipient)) for m in rows]
    return _page(ctx, "inbox.html", messages=shown)
