"""Console routes. Each handler parses the request, calls services in one transaction and
renders a template; permissions and scope are enforced by the services."""

from __future__ import annotations

import contextlib
import copy
import difflib
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.access import permissions as perm
from loyalist.admin import backtest as backtest_pages  # backtest (issue 15 item 8)
from loyalist.admin import charts, explain
from loyalist.admin import coupons as coupon_pages  # coupons (issue 12)
from loyalist.admin import fraud as fraud_pages  # fraud controls (issue 13)
from loyalist.admin import households as household_pages  # households (issue 13)
from loyalist.admin import imports as import_pages  # bulk import (issue 13 item 5)
from loyalist.admin import jobs as job_pages
from loyalist.admin import merges as merge_pages  # identity merge (issue 13 item 2)
from loyalist.admin import messages as message_pages
from loyalist.admin import privacy as privacy_pages  # export, erasure, liability (privacy2)
from loyalist.admin import referrals as referral_pages  # issue 12
from loyalist.admin.web import (
    COOKIE,
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    STATIC,
    AdminRoute,
    CsrfFailed,
    Fmt,
    Staff,
    checked_form,
    current_staff,
    db_of,
    errors_by_field,
    gettext_for,
    locale_of,
    render,
    set_cookie,
)
from loyalist.approval import service as approvals
from loyalist.audit import service as audit
from loyalist.config import Settings
from loyalist.dashboard import service as dashboards
from loyalist.errors import FieldError, LoyalistError, NotFound, ValidationFailed
from loyalist.events import service as events
from loyalist.habits import service as habits
from loyalist.kit.clock import utcnow
from loyalist.kit.hashing import constant_time_equals, new_token
from loyalist.kit.i18n import SUPPORTED
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.schemas import MemberFilter, MemberUpdate, TagsIn
from loyalist.order import service as orders
from loyalist.order.schemas import DryRunIn
from loyalist.org import service as org
from loyalist.programme import service as programmes
from loyalist.programme.schemas import Programme
from loyalist.reward import service as rewards
from loyalist.reward.schemas import RedemptionCancel
from loyalist.staff import service as staff_service

router = APIRouter(route_class=AdminRoute, include_in_schema=False)
StaffDep = Annotated[Staff, Depends(current_staff)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]
STATIC_FILES = {"htmx.min.js", "echarts.min.js", "admin.css", "admin.js"}


def approval_threshold(request: Request) -> int:
    """Adjustments above this many points (either sign) wait for a second person
    (``LOYALIST_ADJUST_APPROVAL_THRESHOLD``)."""
    settings: Settings = request.app.state.settings
    return settings.adjust_approval_threshold


PAGE = 50  # rows per list page
# Events the member timeline shows as such (orders, points, redemptions and tier changes
# have their own lines).
TIMELINE_EVENTS = ("member.created", "member.updated", "points.expiring")
EXPIRY_HORIZON = timedelta(days=3 * 366)  # the member page lists expiries up to 3 years out


async def run(request: Request, fn: Callable[[Session], Any]) -> Any:
    """One unit of work naming the signed-in staff member as its caller."""
    st: Staff | None = getattr(request.state, "staff", None)
    actor = st.actor if st is not None else None
    return await run_in_threadpool(lambda: db_of(request).run(fn, actor=actor))


def _tz(s: Session) -> ZoneInfo:
    _v, p = programmes.active(s)
    return ZoneInfo(p.timezone)


def _tier_names(programme: Programme, locale: str) -> dict[str, str]:
    return {
        t.code: t.name if locale == "zh_CN" else (t.name_en or t.name)
        for t in programme.tiers.levels
    }


def _rule_names(programme: Programme, locale: str) -> dict[str, str]:
    """Names of the breakdown components ("rule:<code>", "campaign:<code>", "tier:<code>")."""
    names = {f"tier:{c}": n for c, n in _tier_names(programme, locale).items()}
    zh = locale == "zh_CN"
    for kind, things in (
        ("rule", programme.earning.rules),
        ("campaign", programme.earning.campaigns),
    ):
        names.update(
            {
                f"{kind}:{t.code}": (t.name if zh else (t.name_en or t.name)) or t.code
                for t in things
            }
        )
    return names


def _words(s: Session, st: Staff, programme: Programme, locale: str) -> explain.Names:
    """The programme's names in the page's language, with the store names the caller sees."""
    stores = {u.code: u.name for u in org.list_units(s, st.actor) if u.kind == "store"}
    return explain.Names(programme, locale, stores)


def _reward_name(reward: Any, locale: str) -> str:
    name: str = reward.name if locale == "zh_CN" else (reward.name_en or reward.name)
    return name


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# ── entry, static, login ───────────────────────────────────────────────────────────────
@router.get("/")
async def root() -> RedirectResponse:
    return _see_other("/admin")


@router.get("/admin")
async def home(st: StaffDep) -> RedirectResponse:
    return _see_other("/admin/dashboard" if st.can(perm.DASHBOARD_READ) else "/admin/members")


@router.get("/admin/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC_FILES:
        return Response(status_code=404)
    media = "text/css" if name.endswith(".css") else "text/javascript"
    return FileResponse(
        STATIC / name, media_type=media, headers={"Cache-Control": "public, max-age=3600"}
    )


def _safe_next(nxt: str | None) -> str:
    if nxt and nxt.startswith("/admin") and not nxt.startswith("//"):
        return nxt
    return "/admin"


@router.get("/admin/login")
async def login_page(
    request: Request, next: str | None = None, lang: str | None = None
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token(24)
    ctx = {"csrf": token, "next": _safe_next(next), "error": None}
    resp = render(request, "login.html", ctx, locale=lang if lang in SUPPORTED else None)
    if lang in SUPPORTED:
        set_cookie(request, resp, LANG_COOKIE, lang, max_age=365 * 86400)
    set_cookie(request, resp, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return resp


@router.post("/admin/login")
async def login_submit(request: Request) -> Response:
    form = await request.form()
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    presented = str(form.get("csrf_token", ""))
    if not cookie or not constant_time_equals(cookie, presented):
        raise CsrfFailed("The login form has expired; reload it.")
    login_name, password = str(form.get("login", "")), str(form.get("password", ""))
    result = await run(request, lambda s: staff_service.login(s, login_name, password))
    if not result.ok:
        _ = gettext_for(locale_of(request))
        msg = (
            _("Too many failed attempts: this account is locked for 15 minutes.")
            if result.locked
            else _("Wrong login or password.")
        )
        return render(
            request,
            "login.html",
            {"csrf": cookie, "next": _safe_next(str(form.get("next", ""))), "error": msg},
            status=401 if not result.locked else 429,
        )
    resp = _see_other(_safe_next(str(form.get("next", ""))))
    set_cookie(request, resp, COOKIE, result.token or "")
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return resp


@router.post("/admin/logout")
async def logout(request: Request, st: StaffDep, form: FormDep) -> Response:
    token = request.cookies.get(COOKIE, "")
    await run(request, lambda s: staff_service.logout(s, token))
    resp = _see_other("/admin/login")
    resp.delete_cookie(COOKIE, path="/")
    return resp


@router.post("/admin/lang")
async def set_lang(request: Request, st: StaffDep, form: FormDep) -> Response:
    lang = form.get("lang") if form.get("lang") in SUPPORTED else None
    await run(request, lambda s: staff_service.set_locale(s, st.user_id, lang))
    resp = _see_other(_safe_next(form.get("next")))
    if lang:
        set_cookie(request, resp, LANG_COOKIE, lang, max_age=365 * 86400)
    return resp


@router.get("/admin/password")
async def password_page(request: Request, st: StaffDep) -> Response:
    return render(request, "password.html", {"errors": {}, "done": False})


@router.post("/admin/password")
async def password_submit(request: Request, st: StaffDep, form: FormDep) -> Response:
    _ = gettext_for(locale_of(request, st.locale_pref))
    if form.get("new", "") != form.get("confirm", ""):
        return render(
            request,
            "password.html",
            {"errors": {"confirm": _("The passwords differ.")}, "done": False},
            status=422,
        )
    try:
        await run(
            request,
            lambda s: staff_service.change_password(
                s, st.user_id, form.get("current", ""), form.get("new", ""), keep=st.session_id
            ),
        )
    except LoyalistError as exc:
        return render(
            request,
            "password.html",
            {"errors": errors_by_field(exc.errors), "done": False},
            status=exc.status,
        )
    return render(request, "password.html", {"errors": {}, "done": True})


# ── dashboard ──────────────────────────────────────────────────────────────────────────
def _period(frm: str | None, to: str | None, tz: ZoneInfo) -> dashboards.Period:
    today = utcnow().astimezone(tz).date()
    try:
        end = date.fromisoformat(to) + timedelta(days=1) if to else today + timedelta(days=1)
        start = date.fromisoformat(frm) if frm else end - timedelta(days=30)
    except ValueError as exc:
        raise ValidationFailed("Dates are YYYY-MM-DD.", [FieldError("from", "YYYY-MM-DD")]) from exc
    return dashboards.Period(start, end)


MAX_PERIOD_DAYS = 3700  # the dashboard service's limit (about ten years)


def _presets(today: date) -> list[tuple[str, str, str]]:
    """Quick periods: (label key, from, to), inclusive programme-local dates."""
    month = today.replace(day=1)
    last_month_end = month - timedelta(days=1)
    return [
        ("7d", (today - timedelta(days=6)).isoformat(), today.isoformat()),
        ("30d", (today - timedelta(days=29)).isoformat(), today.isoformat()),
        ("90d", (today - timedelta(days=89)).isoformat(), today.isoformat()),
        ("month", month.isoformat(), today.isoformat()),
        ("last_month", last_month_end.replace(day=1).isoformat(), last_month_end.isoformat()),
        ("year", today.replace(month=1, day=1).isoformat(), today.isoformat()),
    ]


@router.get("/admin/dashboard")
async def dashboard(
    request: Request,
    st: StaffDep,
    unit: str | None = None,
    to: str | None = None,
) -> Response:
    frm = request.query_params.get("from")
    locale = locale_of(request, st.locale_pref)

    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.DASHBOARD_READ)
        _v, programme = programmes.active(s)
        tz = ZoneInfo(programme.timezone)
        errors: dict[str, str] = {}
        try:
            period = _period(frm, to, tz)
            if period.days <= 0 or period.days > MAX_PERIOD_DAYS:
                raise ValidationFailed(
                    "The period must run forward.", [FieldError("to", "must be after from")]
                )
        except ValidationFailed as exc:  # show the fields again, with the default period
            errors = errors_by_field(exc.errors) or {"from": exc.detail}
            period = _period(None, None, tz)
        d = dashboards.build(s, st.actor, unit_code=unit or None, period=period)
        units = dashboards.scope_units(s, st.actor)
        tier_names = _tier_names(programme, locale)
        reward_names = {r.code: _reward_name(r, locale) for r in programme.rewards}
        return {
            "d": d,
            "units": units,
            "tz": tz,
            "tier_names": tier_names,
            "reward_names": reward_names,
            "charts": charts.dashboard_charts(d, tier_names, reward_names, gettext_for(locale)),
            "filt": {
                "from": frm if errors else period.start.isoformat(),
                "to": to if errors else (period.end - timedelta(days=1)).isoformat(),
                "unit": d.unit_code,
            },
            "errors": errors,
            "last_day": period.end - timedelta(days=1),
            "presets": _presets(utcnow().astimezone(tz).date()),
            # referrals (issue 12): referred members, qualified, conversion in the period
            "referrals": referral_pages.dashboard_figures(
                s, st.actor, period.start, period.end, tz
            ),
        }

    ctx = await run(request, work)
    return render(
        request, "dashboard.html", ctx, tz=ctx["tz"], status=422 if ctx["errors"] else 200
    )


# ── members ────────────────────────────────────────────────────────────────────────────
@router.get("/admin/members")
async def members_page(
    request: Request,
    st: StaffDep,
    q: str = "",
    phone: str = "",
    tier: str = "",
    tag: str = "",
    store: str = "",
    after: str = "",
) -> Response:
    filt = {"q": q, "phone": phone, "tier": tier, "tag": tag, "store": store}
    searched = any(filt.values())
    locale = locale_of(request, st.locale_pref)

    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.MEMBER_READ)
        _v, programme = programmes.active(s)
        units = org.list_units(s, st.actor)
        rows: list[Any] = []
        errors: dict[str, str] = {}
        try:
            f = MemberFilter(**{k: (v.strip() or None) for k, v in filt.items()})
            start = _int_field(after, "after") if after.strip() else None
            rows = members.search(s, st.actor, f, after=start, limit=PAGE)
        except ValidationError as exc:
            errors = {str(e["loc"][0]): e["msg"] for e in exc.errors()}
        except LoyalistError as exc:
            if exc.status == 404 and store:
                errors = {"store": str(exc.detail)}
            elif exc.status == 422:
                errors = errors_by_field(exc.errors) or {"q": exc.detail}
            else:
                raise
        return {
            "rows": rows,
            "filt": filt,
            "errors": errors,
            "searched": searched,
            "tiers": _tier_names(programme, locale),
            "stores": [u for u in units if u.kind == "store"],
            "store_names": {u.id: u.name for u in units},
            "next_url": (
                "/admin/members?" + urlencode({**filt, "after": rows[-1].id})
                if len(rows) == PAGE
                else None
            ),
            "tz": ZoneInfo(programme.timezone),
        }

    ctx = await run(request, work)
    template = (
        "members_rows.html" if request.headers.get("hx-request") == "true" else "members.html"
    )
    return render(request, template, ctx, tz=ctx["tz"])


def _refs(
    s: Session,
    st: Staff,
    order_rows: list[Any],
    entries: list[Any],
    reds: list[Any],
    catalogue: dict[int, str],
) -> explain.Refs:
    """Order numbers, returns and rewards the member's ledger entries point at."""
    order_ext = {str(o.id): o.external_id for o in order_rows}
    for e in entries:  # older orders than the list shows, when in scope
        if e.source_type == "order" and e.source_id and e.source_id not in order_ext:
            with contextlib.suppress(NotFound, ValueError):
                order_ext[e.source_id] = orders.get(s, st.actor, int(e.source_id)).external_id
    returns: dict[str, tuple[str, str]] = {}
    if any(e.source_type == "return" for e in entries):
        for o in order_rows:
            if o.status != "recorded":
                for r in orders.returns(s, o.id):
                    returns[str(r.id)] = (r.external_id, o.external_id)
    return explain.Refs(
        orders=order_ext,
        returns=returns,
        # every redemption the entries shown spent on, the member's own and (on a shared
        # pool) a household member's, which the member's own list does not hold
        redeemed={
            r.entry_id: catalogue.get(r.reward_id, "?")
            for r in rewards.redemptions_of_entries(
                s, [e.id for e in entries if e.kind == "redeem"]
            )
        },
        redemptions={str(r.id): catalogue.get(r.reward_id, "?") for r in reds},
    )


def _member_ctx(s: Session, st: Staff, member_id: int, locale: str) -> dict[str, Any]:
    prof = members.profile(s, st.actor, member_id)  # 404 out of scope
    m = prof.member
    _v, programme = programmes.active(s)
    tz = ZoneInfo(programme.timezone)
    fmt = Fmt(locale, tz)
    _ = gettext_for(locale)
    tier_names = _tier_names(programme, locale)
    levels = programme.tiers.levels
    cur = next((t for t in levels if t.code == m.tier_code), levels[0])
    nxt = next((t for t in levels if t.code == prof.progress.next_tier), None)
    pct = 100
    if nxt is not None and nxt.threshold > cur.threshold:
        pct = max(
            0,
            min(
                100,
                round(
                    100 * (prof.progress.value - cur.threshold) / (nxt.threshold - cur.threshold)
                ),
            ),
        )
    order_rows = orders.list_orders(s, st.actor, member_id=m.id, store=None, after=None, limit=50)
    entries = ledger.entries(s, m.id, after=None, limit=100)  # newest first
    reds = rewards.list_redemptions(s, st.actor, member_id=m.id, after=None, limit=50)
    catalogue = {r.id: _reward_name(r, locale) for r in rewards.catalogue(s, active_only=False)}
    refs = _refs(s, st, order_rows, entries, reds, catalogue)
    tier_hist = members.tier_history(s, m.id)
    evs = events.member_events(s, st.actor, m.id, types=TIMELINE_EVENTS, limit=100)
    own_spends = {r.entry_id for r in reds}  # shown as the redemption's own line
    items = explain.timeline(
        order_rows,
        # An order's or a redemption's own line says what it earned or spent.
        [e for e in entries if e.kind != "earn" and e.id not in own_spends],
        [(r, catalogue.get(r.reward_id, "?")) for r in reds],
        tier_hist,
        evs,
        tier_names,
        _,
        fmt,
        refs,
    )
    store = org.get(s, m.home_store_id) if m.home_store_id else None
    # channels (issue 14): messages with their delivery status on the timeline and a card
    msgs, msg_attempts = message_pages.member_messages(s, m.id)
    items = message_pages.with_messages(items, msgs, _)
    return {
        "messages": msgs,
        "message_attempts": msg_attempts,
        "message_words": message_pages.words(_),
        "p": prof,
        "m": m,
        "store": store,
        "tier_names": tier_names,
        "tier_pct": pct,
        "next_threshold": nxt.threshold if nxt else None,
        "metric": programme.tiers.metric.value,
        "timeline": items,
        "entries": entries[:30],
        "entry_text": {e.id: explain.ledger_text(e, _, fmt, refs) for e in entries[:30]},
        "redemptions": [(r, catalogue.get(r.reward_id, "?")) for r in reds],
        "tier_hist": tier_hist,
        "orders": order_rows,
        "expiring": ledger.expiring_schedule(s, m.id, utcnow(), utcnow() + EXPIRY_HORIZON),
        "pending": approvals.pending(s, st.actor, member_id=m.id),
        "audit_rows": audit.for_object(s, "member", m.id)[-20:] if st.can(perm.AUDIT_READ) else [],
        "stores": [u for u in org.list_units(s, st.actor) if u.kind == "store"],
        "habits": habits.habits_view(s, st.actor, m.id, locale),  # habits (issue 12)
        "referrals": referral_pages.member_referrals(s, st.actor, m.id),  # issue 12
        "household": household_pages.member_household(s, st.actor, m.id),  # issue 13
        "labels": programme.labels,
        "audit_names": {
            "tier": tier_names,
            "template": coupon_pages.template_names(s, st, locale),  # issue 10 item 5
        },
        "tz": tz,
        **coupon_pages.member_section(s, st, m.id),  # coupons (issue 12)
        "rfm": members.rfm_row(s, m.id),  # RFM and P(alive), nightly (issue 15 item 3)
    }


@router.get("/admin/members/{member_id}")
async def member_page(request: Request, st: StaffDep, member_id: int) -> Response:
    locale = locale_of(request, st.locale_pref)

    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.MEMBER_READ)
        return _member_ctx(s, st, member_id, locale)

    ctx = await run(request, work)
    ctx.update(errors={}, form={}, notice=request.query_params.get("notice"))
    ctx["threshold"] = approval_threshold(request)
    return render(request, "member.html", ctx, tz=ctx["tz"])


async def _member_error(
    request: Request,
    st: StaffDep,
    member_id: int,
    exc: LoyalistError,
    form: dict[str, str],
    which: str,
) -> Response:
    locale = locale_of(request, st.locale_pref)
    ctx = await run(request, lambda s: _member_ctx(s, st, member_id, locale))
    ctx["threshold"] = approval_threshold(request)
    errs = errors_by_field(exc.errors) or {"_": exc.detail}
    ctx.update(errors={which: errs}, form=form, notice=None)
    return render(request, "member.html", ctx, status=exc.status, tz=ctx["tz"])


def _int_field(value: str, field: str) -> int:
    try:
        return int(value.replace(",", "").strip())
    except ValueError as exc:
        raise ValidationFailed(
            f"{field} must be a whole number.", [FieldError(field, "whole number")]
        ) from exc


@router.post("/admin/members/{member_id}/adjust")
async def member_adjust(request: Request, st: StaffDep, member_id: int, form: FormDep) -> Response:
    threshold = approval_threshold(request)
    try:
        points = _int_field(form.get("points", ""), "points")
        outcome = await run(
            request,
            lambda s: approvals.adjust(
                s,
                st.actor,
                member_id,
                points,
                form.get("reason", ""),
                threshold=threshold,
                rules=approvals.policy(request.app.state.settings),
            ),
        )
    except LoyalistError as exc:
        if exc.status in (403, 404):
            raise
        return await _member_error(request, st, member_id, exc, form, "adjust")
    notice = "adjusted" if outcome.entry is not None else "pending_approval"
    return _see_other(f"/admin/members/{member_id}?notice={notice}")


@router.post("/admin/members/{member_id}/tags")
async def member_tags(request: Request, st: StaffDep, member_id: int, form: FormDep) -> Response:
    add = [t.strip() for t in form.get("add", "").split(",") if t.strip()]
    remove = [t.strip() for t in form.get("remove", "").split(",") if t.strip()]
    try:
        try:
            data = TagsIn(add=add, remove=remove)
        except ValidationError as exc:
            raise ValidationFailed(
                "Invalid tag.", [FieldError("add", "tags: no spaces at the start, no commas")]
            ) from exc
        await run(request, lambda s: members.set_tags(s, st.actor, member_id, data))
    except LoyalistError as exc:
        if exc.status in (403, 404):
            raise
        return await _member_error(request, st, member_id, exc, form, "tags")
    return _see_other(f"/admin/members/{member_id}?notice=tags")


@router.post("/admin/members/{member_id}/edit")
async def member_edit(request: Request, st: StaffDep, member_id: int, form: FormDep) -> Response:
    fields = {
        k: (form.get(k, "").strip() or None)
        for k in ("name", "email", "city", "birthday", "gender", "home_store", "phone")
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    try:
        try:
            data = MemberUpdate.model_validate(fields)
        except ValidationError as exc:
            raise ValidationFailed(
                "Invalid profile.", [FieldError(str(e["loc"][0]), e["msg"]) for e in exc.errors()]
            ) from exc
        await run(request, lambda s: members.update(s, st.actor, member_id, data))
    except LoyalistError as exc:
        if exc.status in (403,) or (exc.status == 404 and not exc.errors):
            raise
        return await _member_error(request, st, member_id, exc, form, "edit")
    return _see_other(f"/admin/members/{member_id}?notice=saved")


def _member_or_none(s: Session, st: Staff, member_id: int) -> Any:
    try:
        return members.get(s, st.actor, member_id)
    except NotFound:
        return None


# ── approvals ──────────────────────────────────────────────────────────────────────────
@router.get("/admin/approvals")
async def approvals_page(request: Request, st: StaffDep) -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.POINTS_APPROVE)
        rows = approvals.pending(s, st.actor)
        member_map = {r.member_id: _member_or_none(s, st, r.member_id) for r in rows}
        return {"rows": rows, "member_map": member_map, "tz": _tz(s)}

    ctx = await run(request, work)
    return render(request, "approvals.html", ctx, tz=ctx["tz"])


@router.post("/admin/approvals/{request_id}/{decision}")
async def approvals_decide(
    request: Request, st: StaffDep, request_id: int, decision: str, form: FormDep
) -> Response:
    if decision not in ("approve", "reject"):
        raise ValidationFailed("Unknown decision.")
    fn = approvals.approve if decision == "approve" else approvals.reject
    req = await run(request, lambda s: fn(s, st.actor, request_id))
    return _see_other(f"/admin/members/{req.member_id}?notice={decision}d")


# ── orders and redemptions ─────────────────────────────────────────────────────────────
@router.get("/admin/orders")
async def orders_page(
    request: Request, st: StaffDep, store: str = "", member: str = "", before: str = ""
) -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.ORDER_READ)
        member_id = _int_field(member, "member") if member.strip() else None
        after = _int_field(before, "before") if before.strip() else None
        rows = orders.list_orders(
            s, st.actor, member_id=member_id, store=store.strip() or None, after=after, limit=50
        )
        stores = {u.id: u for u in org.list_units(s, st.actor)}
        return {
            "rows": rows,
            "stores": stores,
            "filt": {"store": store, "member": member},
            "labels": programmes.active(s)[1].labels,
            "tz": _tz(s),
        }

    ctx = await run(request, work)
    return render(request, "orders.html", ctx, tz=ctx["tz"])


@router.get("/admin/orders/{order_id}")
async def order_page(request: Request, st: StaffDep, order_id: int) -> Response:
    locale = locale_of(request, st.locale_pref)
    _ = gettext_for(locale)

    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.ORDER_READ)
        o = orders.get(s, st.actor, order_id)
        _v, programme = programmes.active(s)
        names = _rule_names(programme, locale)
        words = _words(s, st, programme, locale)
        member = None
        if o.member_id is not None:
            try:  # a member of another store may buy here: the order shows, the member not
                member = members.get(s, st.actor, o.member_id)
            except NotFound:
                member = None
        return {
            "o": o,
            "member": member,
            "lines": orders.lines(s, o.id),
            "returns": orders.returns(s, o.id),
            "store": org.get(s, o.store_id),
            "rule_label": lambda rule: explain.breakdown_label(rule, names, _),
            "describe": lambda text, rule="": explain.describe_component(rule, text, words),
            "labels": programme.labels,
            "tz": ZoneInfo(programme.timezone),
        }

    ctx = await run(request, work)
    return render(request, "order.html", ctx, tz=ctx["tz"])


@router.get("/admin/redemptions")
async def redemptions_page(
    request: Request, st: StaffDep, member: str = "", status: str = "", before: str = ""
) -> Response:
    locale = locale_of(request, st.locale_pref)

    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.REDEMPTION_READ)
        member_id = _int_field(member, "member") if member.strip() else None
        after = _int_field(before, "before") if before.strip() else None
        page = rewards.list_redemptions(s, st.actor, member_id=member_id, after=after, limit=50)
        rows = [r for r in page if not status or r.status == status]
        catalogue = {r.id: r for r in rewards.catalogue(s, active_only=False)}
        return {
            "rows": rows,
            "catalogue": catalogue,
            "reward_names": {i: _reward_name(r, locale) for i, r in catalogue.items()},
            "filt": {"member": member, "status": status},
            "next_before": page[-1].id if len(page) == 50 else None,
            "notice": request.query_params.get("notice"),
            "tz": _tz(s),
        }

    ctx = await run(request, work)
    return render(request, "redemptions.html", ctx, tz=ctx["tz"])


@router.post("/admin/redemptions/{redemption_id}/cancel")
async def redemption_cancel(
    request: Request, st: StaffDep, redemption_id: int, form: FormDep
) -> Response:
    data = RedemptionCancel(reason=form.get("reason", "")[:500])
    await run(request, lambda s: rewards.cancel(s, st.actor, redemption_id, data))
    return _see_other("/admin/redemptions?notice=cancelled")


# ── programme ──────────────────────────────────────────────────────────────────────────
SECTIONS = ("tiers", "rules", "campaigns", "expiry", "rewards")


def _dump(value: Any) -> str:
    import yaml  # with the first programme page, not when the server starts (issue 11)

    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False, width=100)


def _sections(doc: dict[str, Any]) -> dict[str, str]:
    earning = doc.get("earning", {})
    return {
        "tiers": _dump(doc.get("tiers", {})),
        "rules": _dump(earning.get("rules", [])),
        "campaigns": _dump(earning.get("campaigns", [])),
        "expiry": _dump(doc.get("points", {})),
        "rewards": _dump(doc.get("rewards", [])),
    }


def _section_of(field: str) -> str:
    head = field.split(".")
    if head[0] == "earning" and len(head) > 1 and head[1] in ("rules", "campaigns"):
        return head[1]
    return {"points": "expiry", "tiers": "tiers", "rewards": "rewards"}.get(head[0], "tiers")


# Fields the edit page shows as inputs (besides the YAML of each section), by document path.
TIER_FIELDS = (
    "name",
    "name_en",
    "threshold",
    "benefits.points_multiplier",
    "benefits.discount_rate",
)
REWARD_FIELDS = ("name", "points", "cash_minor", "stock", "per_member_limit", "min_tier")
_INTS = {"threshold", "points", "cash_minor", "stock", "per_member_limit"}
_OPTIONAL = {"name_en", "stock", "per_member_limit", "min_tier"}
_FIELD = re.compile(r"^(tiers\.levels|rewards)\.(\d+)\.([a-z_.]+)$")


def _walk(doc: Any, parts: list[str]) -> Any:
    for p in parts:
        if isinstance(doc, list) and p.isdigit() and int(p) < len(doc):
            doc = doc[int(p)]
        elif isinstance(doc, dict) and p in doc:
            doc = doc[p]
        else:
            return _MISSING
    return doc


_MISSING = object()


def shown(value: Any) -> str:
    """A document value as the edit page's input shows it."""
    return "" if value is None or value is _MISSING else str(value)


def _typed(leaf: str, text: str) -> Any:
    text = text.strip()
    if not text:
        return None if leaf in _OPTIONAL else ""
    if leaf in _INTS:
        try:
            return int(text.replace(",", ""))
        except ValueError:
            return text  # the validator names the field
    return text


_YUAN = re.compile(r"^-?\d{1,12}(\.\d{1,2})?$")


def is_money(key: str, doc: dict[str, Any]) -> bool:
    """Inputs the edit page shows and takes in yuan: a reward's cash price, and tier
    thresholds when tiers are earned by spend."""
    leaf = key.rsplit(".", 1)[-1]
    metric = (doc.get("tiers") or {}).get("metric", "spend")
    return leaf == "cash_minor" or (leaf == "threshold" and metric == "spend")


def yuan(minor: Any) -> str:
    """Fen as the yuan an input shows: 1990 → "19.90" (exact: integer arithmetic)."""
    if not isinstance(minor, int) or isinstance(minor, bool):
        return shown(minor)
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"


def fen(text: str) -> int | None:
    """Yuan as typed ("19.9", "1,000", "¥12.50") in fen, exactly; None if it is not an
    amount with at most two decimals."""
    cleaned = text.strip().replace(",", "").replace("¥", "").replace("￥", "")
    if not _YUAN.match(cleaned):
        return None
    sign = -1 if cleaned.startswith("-") else 1
    whole, _dot, cents = cleaned.lstrip("-").partition(".")
    return sign * (int(whole) * 100 + int((cents + "00")[:2]))


def _overrides(base: dict[str, Any], doc: dict[str, Any], form: dict[str, str]) -> dict[str, str]:
    """Inputs changed on the page win over the same value in the section's YAML. Money
    inputs are in yuan; the errors of those that are not amounts are returned."""
    errors: dict[str, str] = {}
    for key, text in form.items():
        m = _FIELD.match(key)
        if m is None:
            continue
        allowed = TIER_FIELDS if m.group(1) == "tiers.levels" else REWARD_FIELDS
        if m.group(3) not in allowed:
            continue
        money = is_money(key, base)
        was = _walk(base, key.split("."))
        if text.strip() == (yuan(was) if money else shown(was)):
            continue
        *parent_path, leaf = key.split(".")
        parent = _walk(doc, parent_path)
        if not isinstance(parent, dict):
            continue
        if money and text.strip():
            amount = fen(text)
            if amount is None:
                errors[key] = "an amount in yuan with at most 2 decimals, e.g. 19.90"
                continue
            parent[leaf] = amount
        else:
            parent[leaf] = _typed(leaf, text)
    return errors


def _assemble(
    base: dict[str, Any], form: dict[str, str]
) -> tuple[Programme | None, dict[str, str]]:
    """The draft document from the edited sections and inputs, validated like
    `programme apply`. Errors are keyed by the input's document path when the page shows
    that input, else by section."""
    doc = copy.deepcopy(base)
    earning = dict(doc.get("earning", {}))
    errors: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    import yaml

    for sec in SECTIONS:
        try:
            parsed[sec] = yaml.safe_load(form.get(sec, "")) if form.get(sec, "").strip() else None
        except yaml.YAMLError as exc:
            errors[sec] = f"YAML: {exc}"
    if errors:
        return None, errors
    if parsed["tiers"] is not None:
        doc["tiers"] = parsed["tiers"]
    earning["rules"] = parsed["rules"] or []
    earning["campaigns"] = parsed["campaigns"] or []
    doc["earning"] = earning
    if parsed["expiry"] is not None:
        doc["points"] = parsed["expiry"]
    doc["rewards"] = parsed["rewards"] or []
    money_errors = _overrides(base, doc, form)
    if money_errors:
        return None, money_errors
    try:
        return programmes.parse(doc), {}
    except LoyalistError as exc:
        for e in exc.errors:
            if e.field in form and _FIELD.match(e.field):
                errors[e.field] = e.message
                continue
            sec = _section_of(e.field)
            errors[sec] = (errors.get(sec, "") + f"{e.field}: {e.message}\n").strip()
        return None, errors or {"tiers": exc.detail}


def _sample(form: dict[str, str], tz: ZoneInfo) -> tuple[DryRunIn | None, dict[str, str]]:
    try:
        when = form.get("sample_at", "").strip()
        at = datetime.fromisoformat(when).replace(tzinfo=tz) if when else utcnow()
        amount = round(float(form.get("sample_amount", "100") or "100") * 100)
        data = DryRunIn.model_validate(
            {
                "order": {
                    "external_id": "preview",
                    "store": form.get("sample_store", "").strip() or "preview",
                    "channel": form.get("sample_channel", "pos").strip() or "pos",
                    "occurred_at": at,
                    "amount_paid_minor": amount,
                    "lines": [
                        {
                            "sku": form.get("sample_sku", "").strip() or "SKU",
                            "category": form.get("sample_category", "").strip() or None,
                            "quantity": 1,
                            "unit_price_minor": amount,
                        }
                    ],
                },
                "tier": form.get("sample_tier", "").strip() or None,
            }
        )
        return data, {}
    except (ValueError, ValidationError) as exc:
        return None, {"sample": str(exc).splitlines()[0]}


async def _programme_view(
    request: Request, st: Staff, template: str, extra: dict[str, Any], status: int = 200
) -> Response:
    locale = locale_of(request, st.locale_pref)
    _ = gettext_for(locale)

    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.PROGRAMME_READ)
        version, programme = programmes.active(s)
        doc = programmes.as_document(programme)
        stores = [u for u in org.list_units(s, st.actor) if u.kind == "store"]
        tier_label = _tier_names(programme, locale)
        names = _rule_names(programme, locale)
        words = explain.Names(programme, locale, {u.code: u.name for u in stores})
        return {
            "version": version,
            "programme": programme,
            "doc": doc,
            "stores": stores,
            "stock": {r.code: r.stock_remaining for r in rewards.catalogue(s, active_only=False)},
            "tier_label": tier_label,
            "shown": shown,
            "yuan": yuan,
            "money_tiers": programme.tiers.metric.value == "spend",
            "metric_unit": {
                "spend": _("fen"),
                "orders": _("orders"),
                "points": _("points"),
                "active_days": _("days"),
            }.get(programme.tiers.metric.value, ""),
            "rule_label": lambda rule: explain.breakdown_label(rule, names, _),
            "describe": lambda text, rule="": explain.describe_component(rule, text, words),
            "clause_text": lambda node: explain.clause_text(node, locale, tier_label),
            "tz": ZoneInfo(programme.timezone),
        }

    ctx = await run(request, work)
    ctx.setdefault("sections", _sections(ctx["doc"]))
    ctx.update(extra)
    return render(request, template, ctx, status=status, tz=ctx["tz"])


@router.get("/admin/programme")
async def programme_page(request: Request, st: StaffDep) -> Response:
    return await _programme_view(request, st, "programme.html", {})


@router.get("/admin/programme/edit")
async def programme_edit(request: Request, st: StaffDep) -> Response:
    return await _programme_view(
        request, st, "programme_edit.html", {"errors": {}, "result": None, "form": {}}
    )


def _base_version(form: dict[str, str], active: int) -> int:
    """The version the edit page was opened on (a hidden field)."""
    try:
        return int(form.get("base_version", "") or active)
    except ValueError:
        return active


@router.post("/admin/programme/edit")
async def programme_edit_post(request: Request, st: StaffDep, form: FormDep) -> Response:
    action = form.get("action", "preview")

    def work(s: Session) -> dict[str, Any]:
        if action == "publish":
            perm.require(st.actor, perm.PROGRAMME_PUBLISH)
        else:
            perm.require(st.actor, perm.PROGRAMME_READ)
        version, current = programmes.active(s)
        tz = ZoneInfo(current.timezone)
        base_version = _base_version(form, version)
        base = programmes.as_document(current)
        if base_version != version:  # the page was opened on an older version
            older = {v.version: v for v in programmes.list_versions(s)}.get(base_version)
            base = dict(older.document) if older is not None else base
        draft, errors = _assemble(base, form)
        if action == "publish" and base_version != version:
            errors["_"] = "stale"
        result = None
        if draft is not None and action == "preview":
            sample, serr = _sample(form, tz)
            errors.update(serr)
            if sample is not None:
                try:
                    before = orders.dry_run_with(current, sample)
                    after = orders.dry_run_with(draft, sample)
                    result = {"before": before, "after": after}
                except LoyalistError as exc:
                    errors["sample"] = exc.detail
        published = None
        if draft is not None and action == "publish" and not errors:
            pv, created = programmes.publish(s, st.actor, draft, note=form.get("note") or None)
            published = (pv.version, created)
        return {
            "errors": errors,
            "result": result,
            "published": published,
            "version": version,
            "tz": tz,
        }

    out = await run(request, work)
    if out["published"] is not None:
        number, created = out["published"]
        return _see_other(
            f"/admin/programme/versions/{number}?notice={'published' if created else 'unchanged'}"
        )
    sections = {sec: form.get(sec, "") for sec in SECTIONS}
    return await _programme_view(
        request,
        st,
        "programme_edit.html",
        {"errors": out["errors"], "result": out["result"], "form": form, "sections": sections},
        status=(409 if out["errors"].get("_") == "stale" else 422) if out["errors"] else 200,
    )


@router.get("/admin/programme/versions")
async def programme_versions(request: Request, st: StaffDep) -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.PROGRAMME_READ)
        return {"rows": list(reversed(programmes.list_versions(s))), "tz": _tz(s)}

    ctx = await run(request, work)
    return render(request, "versions.html", ctx, tz=ctx["tz"])


@router.get("/admin/programme/versions/{number}")
async def programme_version(request: Request, st: StaffDep, number: int) -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.PROGRAMME_READ)
        rows = {v.version: v for v in programmes.list_versions(s)}
        if number not in rows:
            from loyalist.programme.errors import NoProgramme

            raise NoProgramme(f"No programme version {number}.")
        cur = rows[number]
        prev = rows.get(number - 1)
        a = _dump(prev.document).splitlines() if prev else []
        b = _dump(cur.document).splitlines()
        diff = list(difflib.unified_diff(a, b, f"v{number - 1}", f"v{number}", lineterm="", n=2))
        return {"v": cur, "prev": prev, "diff": diff, "tz": _tz(s)}

    ctx = await run(request, work)
    ctx["notice"] = request.query_params.get("notice")
    return render(request, "version.html", ctx, tz=ctx["tz"])


# ── audit ──────────────────────────────────────────────────────────────────────────────
AUDIT_ACTIONS = (
    "member.create",
    "member.update",
    "member.tags",
    "member.consent",
    "member.identity.add",
    "points.adjust",
    "points.adjust.request",
    "points.adjust.approve",
    "points.adjust.reject",
    "order.record",
    "order.return",
    "redemption.create",
    "redemption.cancel",
    "programme.publish",
    "staff.create",
    "staff.password",
    "staff.disable",
    "staff.enable",
    "staff.password.reset",
    "staff.role",
    "org.create",
    "org.rename",
    "org.move",
    "org.close",
    "apikey.create",
    "apikey.revoke",
    "reward.stock",
    "redemption.collect",
    "analytics.run",
    "analytics.tag",
    # the features merged for issue 10 item 5
    "document.publish",
    "coupon.template.create",
    "coupon.template.activate",
    "coupon.template.pause",
    "coupon.batch.create",
    "coupon.issue",
    "referral.attribute",
    "referral.approve",
    "referral.reject",
    "checkin.record",
    "activity.record",
    "referral.signal",
    "assist.start",
    "assist.help",
    "group.open",
    "group.join",
    "journey.pause",
    "journey.resume",
    "member.consent_record",
    "member.message_authorisation",
    "member.export",
    "member.erase",
    "task.close",
    "job.retry",
    "job.cancel",
    "webhook.create",
    "webhook.update",
    "webhook.delete",
    "webhook.rotate",
    "webhook.replay",
    "member.merge",  # identity merge (issue 13 item 2)
    "member.merge.undo",
    "member.duplicate.dismiss",
    "household.create",  # households (issue 13 item 1)
    "household.invite",
    "household.accept",
    "household.decline",
    "household.permission",
    "household.leave",
    "household.dissolve",
    "household.withdraw",
    "fraud.review.approve",  # fraud controls (issue 13 item 4)
    "fraud.review.reject",
    "member.freeze",
    "member.unfreeze",
    "import.start",  # bulk import (issue 13 item 5)
    "import.finish",
    "import.queue",  # bulk import from the console (issue 13 item 5)
    "reward.quote",  # dynamic reward pricing (issue 15 item 5)
    "pass.buy",  # paid membership (issue 15 item 7)
    "pass.renew",
    "pass.refund",
)
AUDIT_OBJECTS = (
    "member",
    "order",
    "redemption",
    "programme",
    "staff_user",
    "org_unit",
    "api_key",
    "reward",
    "analytics_run",
    # the features merged for issue 10 item 5
    "config_document",
    "coupon_template",
    "coupon_batch",
    "coupon_code",
    "referral",
    "assist",
    "group",
    "journey",
    "member_task",
    "job",
    "webhook_endpoint",
    "webhook_delivery",
    "duplicate_candidate",  # identity merge (issue 13 item 2)
    "household",
    "fraud_review",
    "import_batch",
    "member_pass",
)


def _day_start(value: str, field: str, tz: ZoneInfo, plus_days: int = 0) -> datetime | None:
    if not value.strip():
        return None
    try:
        day = date.fromisoformat(value.strip()) + timedelta(days=plus_days)
    except ValueError as exc:
        raise ValidationFailed("Dates are YYYY-MM-DD.", [FieldError(field, "YYYY-MM-DD")]) from exc
    return datetime.combine(day, datetime.min.time(), tz)


@router.get("/admin/audit")
async def audit_page(
    request: Request,
    st: StaffDep,
    who: str = "",
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    since: str = "",
    until: str = "",
    before: str = "",
) -> Response:
    locale = locale_of(request, st.locale_pref)
    filt = {
        "who": who,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "since": since,
        "until": until,
    }

    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.AUDIT_READ)
        tz = _tz(s)
        f = audit.AuditFilter(
            actor=who.strip() or None,
            action=action.strip() or None,
            object_type=object_type.strip() or None,
            object_id=object_id.strip() or None,
            since=_day_start(since, "since", tz),
            until=_day_start(until, "until", tz, plus_days=1),
        )
        before_id = _int_field(before, "before") if before.strip() else None
        rows = audit.search(s, st.actor, f, before_id=before_id, limit=50)
        return {
            "rows": rows,
            "filt": filt,
            "actions": AUDIT_ACTIONS,
            "object_types": AUDIT_OBJECTS,
            "audit_names": {
                "tier": _tier_names(programmes.active(s)[1], locale),
                "template": coupon_pages.template_names(s, st, locale),  # issue 10 item 5
            },
            "tz": tz,
        }

    ctx = await run(request, work)
    nxt = ctx["rows"][-1].id if len(ctx["rows"]) == 50 else None
    query = "&".join(f"{k}={quote(v)}" for k, v in filt.items())
    ctx["next_url"] = f"/admin/audit?{query}&before={nxt}" if nxt else None
    return render(request, "audit.html", ctx, tz=ctx["tz"])


# ── the job queue (loyalist.admin.jobs) ───────────────────────────────────────────────
job_pages.register(router)
# ── coupons (loyalist.admin.coupons, issue 12) ─────────────────────────────────────────
coupon_pages.register(router)
referral_pages.register(router)  # referrals (issue 12)
fraud_pages.register(router)  # fraud controls (issue 13)
privacy_pages.register(router)  # a member's export and erasure, the liability (privacy2)
household_pages.register(router)  # households (issue 13)
merge_pages.register(router)  # duplicates, merge preview, merges and undo (issue 13 item 2)
backtest_pages.register(router)  # backtest a programme version (issue 15 item 8)
import_pages.register(router)  # bulk import: upload, report, progress (issue 13 item 5)
# The event stream page (its own module; mounted with the console).
from loyalist.admin.stream import router as _stream_router  # noqa: E402

router.include_router(_stream_router)
# The analytics section (issue 10, item 9; its own module).
from loyalist.admin.insights import router as _insights_router  # noqa: E402

router.include_router(_insights_router)
