"""Console administration and fulfilment: staff users, organisation units, API keys,
new members, reward stock, and collecting redemptions at the counter.

Every handler parses the form, calls one service in one transaction and redirects with a
notice (or re-renders the page with field errors). Permissions and scope are the
services' (`require` + 404 outside the scope)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.access import permissions as perm
from loyalist.access import service as access
from loyalist.admin.web import (
    AdminRoute,
    Staff,
    checked_form,
    current_staff,
    db_of,
    errors_by_field,
    locale_of,
    render,
)
from loyalist.errors import FieldError, LoyalistError, ValidationFailed
from loyalist.kit.clock import utcnow
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.org import service as org
from loyalist.programme import service as programmes
from loyalist.reward import service as rewards
from loyalist.staff import service as staff_service

router = APIRouter(route_class=AdminRoute, include_in_schema=False)
StaffDep = Annotated[Staff, Depends(current_staff)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]


async def run(request: Request, fn: Callable[[Session], Any]) -> Any:
    return await run_in_threadpool(db_of(request).run, fn)


def _see_other(url: str, **query: str) -> RedirectResponse:
    return RedirectResponse(url + (f"?{urlencode(query)}" if query else ""), status_code=303)


def _tz(s: Session) -> ZoneInfo:
    _v, p = programmes.active(s)
    return ZoneInfo(p.timezone)


def _int(value: str, field: str) -> int:
    try:
        return int(value.replace(",", "").strip())
    except ValueError as exc:
        raise ValidationFailed(
            f"{field} must be a whole number.", [FieldError(field, "whole number", "not_int")]
        ) from exc


def _refusal(exc: LoyalistError) -> bool:
    """403 and plain 404 stay error pages; field problems re-render the form."""
    return exc.status == 403 or (exc.status == 404 and not exc.errors)


# ── staff users ────────────────────────────────────────────────────────────────────────
async def _staff_page(
    request: Request,
    st: Staff,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    def work(s: Session) -> dict[str, Any]:
        rows = staff_service.list_managed(s, st.actor)
        return {
            "rows": rows,
            "units": [u for u in org.list_units(s, st.actor) if u.closed_at is None],
            "roles": staff_service.ROLE_NAMES,
            "tz": _tz(s),
        }

    ctx = await run(request, work)
    ctx.update(errors=errors or {}, form=form or {}, notice=request.query_params.get("notice"))
    return render(request, "staff.html", ctx, status=status, tz=ctx["tz"])


@router.get("/admin/staff")
async def staff_page(request: Request, st: StaffDep) -> Response:
    return await _staff_page(request, st)


@router.post("/admin/staff")
async def staff_create(request: Request, st: StaffDep, form: FormDep) -> Response:
    try:
        await run(
            request,
            lambda s: staff_service.create_user(
                s,
                login=form.get("login", ""),
                role=form.get("role", ""),
                unit_code=form.get("unit", ""),
                password=form.get("password", ""),
                display_name=form.get("display_name", "").strip() or None,
                actor=st.actor,
            ),
        )
    except LoyalistError as exc:
        if exc.status == 403:
            raise
        errs = errors_by_field(exc.errors) or {"login": exc.detail}
        if exc.status == 404:  # a unit outside the scope looks unknown
            errs = {"unit": exc.detail}
        if exc.status == 409:
            errs = {"login": exc.detail}
        form = {k: v for k, v in form.items() if k != "password"}
        return await _staff_page(request, st, errors=errs, form=form, status=exc.status)
    return _see_other("/admin/staff", notice="created")


@router.post("/admin/staff/{user_id}/{action}")
async def staff_action(
    request: Request, st: StaffDep, user_id: int, action: str, form: FormDep
) -> Response:
    fns: dict[str, Callable[[Session], Any]] = {
        "disable": lambda s: staff_service.disable(s, st.actor, user_id),
        "enable": lambda s: staff_service.enable(s, st.actor, user_id),
        "password": lambda s: staff_service.reset_password(
            s, st.actor, user_id, form.get("password", "")
        ),
        "role": lambda s: staff_service.change_role(
            s, st.actor, user_id, role=form.get("role", ""), unit_code=form.get("unit", "")
        ),
    }
    fn = fns.get(action)
    if fn is None:
        raise ValidationFailed("Unknown action.", [FieldError("action", ", ".join(fns))])
    try:
        await run(request, fn)
    except LoyalistError as exc:
        if _refusal(exc):
            raise
        errs = {
            f"{user_id}.{k}": v
            for k, v in (errors_by_field(exc.errors) or {"_": exc.detail}).items()
        }
        return await _staff_page(request, st, errors=errs, status=exc.status)
    return _see_other("/admin/staff", notice=action)


# ── organisation ───────────────────────────────────────────────────────────────────────
async def _org_page(
    request: Request,
    st: Staff,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.ORG_MANAGE)
        units = org.list_units(s, st.actor)
        return {"units": units, "by_id": {u.id: u for u in units}, "tz": _tz(s)}

    ctx = await run(request, work)
    ctx.update(errors=errors or {}, form=form or {}, notice=request.query_params.get("notice"))
    return render(request, "org.html", ctx, status=status, tz=ctx["tz"])


@router.get("/admin/org")
async def org_page(request: Request, st: StaffDep) -> Response:
    return await _org_page(request, st)


@router.post("/admin/org")
async def org_create(request: Request, st: StaffDep, form: FormDep) -> Response:
    try:
        await run(
            request,
            lambda s: org.add_unit(
                s,
                st.actor,
                code=form.get("code", ""),
                name=form.get("name", ""),
                kind=form.get("kind", ""),
                parent_code=form.get("parent", ""),
            ),
        )
    except LoyalistError as exc:
        if exc.status == 403:
            raise
        errs = errors_by_field(exc.errors) or {"code": exc.detail}
        return await _org_page(request, st, errors=errs, form=form, status=exc.status)
    return _see_other("/admin/org", notice="created")


@router.post("/admin/org/{code}/{action}")
async def org_action(
    request: Request, st: StaffDep, code: str, action: str, form: FormDep
) -> Response:
    fns: dict[str, Callable[[Session], Any]] = {
        "rename": lambda s: org.rename(s, st.actor, code, form.get("name", "")),
        "move": lambda s: org.move(s, st.actor, code, form.get("parent", "")),
        "close": lambda s: org.close(s, st.actor, code),
    }
    fn = fns.get(action)
    if fn is None:
        raise ValidationFailed("Unknown action.", [FieldError("action", ", ".join(fns))])
    try:
        await run(request, fn)
    except LoyalistError as exc:
        if _refusal(exc):
            raise
        errs = {
            f"{code}.{k}": v for k, v in (errors_by_field(exc.errors) or {"_": exc.detail}).items()
        }
        return await _org_page(request, st, errors=errs, status=exc.status)
    return _see_other("/admin/org", notice=action)


# ── API keys ───────────────────────────────────────────────────────────────────────────
async def _keys_page(
    request: Request,
    st: Staff,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    issued: str | None = None,
    status: int = 200,
) -> Response:
    def work(s: Session) -> dict[str, Any]:
        return {
            "rows": access.keys_in_scope(s, st.actor),
            "units": [u for u in org.list_units(s, st.actor) if u.kind != "hq"],
            "tz": _tz(s),
        }

    ctx = await run(request, work)
    ctx.update(
        errors=errors or {},
        form=form or {},
        issued=issued,
        notice=request.query_params.get("notice"),
    )
    return render(request, "keys.html", ctx, status=status, tz=ctx["tz"])


@router.get("/admin/keys")
async def keys_page(request: Request, st: StaffDep) -> Response:
    return await _keys_page(request, st)


def _limit(text: str) -> int | None:
    """The approval-free limit field: empty for none, else a whole number of points."""
    text = text.strip().replace(",", "")
    if not text:
        return None
    if not text.isdigit() or len(text) > 12:
        raise ValidationFailed(
            "The approval-free limit is a whole number of points.",
            [FieldError("approval_free_limit", "a whole number of points, 0 or more")],
        )
    return int(text)


@router.post("/admin/keys")
async def keys_create(request: Request, st: StaffDep, form: FormDep) -> Response:
    try:
        issued = await run(
            request,
            lambda s: (
                access.issue(
                    s,
                    st.actor,
                    name=form.get("name", ""),
                    scope=form.get("scope", ""),
                    access=form.get("access", ""),
                    personal_data=form.get("personal_data") == "on",
                    approval_free_limit=_limit(form.get("approval_free_limit", "")),
                ).secret
            ),
        )
    except LoyalistError as exc:
        if exc.status == 403:
            raise
        errs = errors_by_field(exc.errors) or {"name": exc.detail}
        return await _keys_page(request, st, errors=errs, form=form, status=exc.status)
    # The secret is shown once, on this answer only (never in a URL, never stored).
    return await _keys_page(request, st, issued=str(issued), status=201)


@router.post("/admin/keys/{prefix}/revoke")
async def keys_revoke(request: Request, st: StaffDep, prefix: str, form: FormDep) -> Response:
    await run(request, lambda s: access.revoke_key(s, st.actor, prefix))
    return _see_other("/admin/keys", notice="revoked")


# ── new member ─────────────────────────────────────────────────────────────────────────
MEMBER_FIELDS = ("phone", "name", "email", "birthday", "gender", "city", "home_store")
CHANNELS = ("sms", "email", "push", "wechat")


async def _member_new_page(
    request: Request,
    st: Staff,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.MEMBER_WRITE)
        stores = [
            u for u in org.list_units(s, st.actor) if u.kind == "store" and u.closed_at is None
        ]
        return {"stores": stores, "channels": CHANNELS, "tz": _tz(s)}

    ctx = await run(request, work)
    ctx.update(errors=errors or {}, form=form or {})
    return render(request, "member_new.html", ctx, status=status, tz=ctx["tz"])


@router.get("/admin/members/new")
async def member_new(request: Request, st: StaffDep) -> Response:
    return await _member_new_page(request, st)


@router.post("/admin/members/new")
async def member_new_post(request: Request, st: StaffDep, form: FormDep) -> Response:
    fields: dict[str, Any] = {
        k: form.get(k, "").strip() for k in MEMBER_FIELDS if form.get(k, "").strip()
    }
    fields["join_channel"] = "console"
    fields["consents"] = {ch: form.get(f"consent_{ch}") == "on" for ch in CHANNELS}
    try:
        try:  # the API's own schema and service: the same validation
            data = MemberCreate(**fields)
        except ValidationError as exc:
            raise ValidationFailed(
                "Invalid member.",
                [FieldError(str(e["loc"][0]), e["msg"]) for e in exc.errors()],
            ) from exc

        def work(s: Session) -> tuple[int, bool]:
            joined = members.create(s, st.actor, data)
            return joined.member.id, joined.created

        member_id, created = await run(request, work)
    except LoyalistError as exc:
        if exc.status == 403:
            raise
        errs = errors_by_field(exc.errors) or {"phone": exc.detail}
        return await _member_new_page(request, st, errors=errs, form=form, status=exc.status)
    return _see_other(f"/admin/members/{member_id}", notice="created" if created else "exists")


# ── reward stock ───────────────────────────────────────────────────────────────────────
async def _rewards_page(
    request: Request,
    st: Staff,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    locale = locale_of(request, st.locale_pref)

    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.PROGRAMME_READ)
        rows = rewards.catalogue(s)
        tomorrow = utcnow().astimezone(_tz(s)).date() + timedelta(days=1)
        return {
            "rows": rows,
            # dynamic pricing (issue 15, item 5): tomorrow's price, a dry run
            "prices": {r.code: rewards.price_out(r, p) for r, p in rewards.prices_on(s, tomorrow)},
            "tomorrow": tomorrow,
            "names": {r.code: r.name if locale == "zh_CN" else (r.name_en or r.name) for r in rows},
            "tz": _tz(s),
        }

    ctx = await run(request, work)
    ctx.update(errors=errors or {}, notice=request.query_params.get("notice"))
    return render(request, "rewards.html", ctx, status=status, tz=ctx["tz"])


@router.get("/admin/rewards")
async def rewards_page(request: Request, st: StaffDep) -> Response:
    return await _rewards_page(request, st)


@router.post("/admin/rewards/{code}/stock")
async def rewards_top_up(request: Request, st: StaffDep, code: str, form: FormDep) -> Response:
    try:
        quantity = _int(form.get("quantity", ""), "quantity")
        await run(request, lambda s: rewards.top_up(s, st.actor, code, quantity))
    except LoyalistError as exc:
        if _refusal(exc):
            raise
        errs = {
            f"{code}.{k}": v for k, v in (errors_by_field(exc.errors) or {"_": exc.detail}).items()
        }
        return await _rewards_page(request, st, errors=errs, status=exc.status)
    return _see_other("/admin/rewards", notice="stocked")


# ── collecting redemptions ─────────────────────────────────────────────────────────────
def _collect_notice(exc: LoyalistError) -> str:
    return exc.code  # redemption_already_collected | redemption_expired | …


@router.post("/admin/redemptions/collect")
async def redemptions_collect_code(request: Request, st: StaffDep, form: FormDep) -> Response:
    """The counter: type or scan the member's code."""
    typed = form.get("code", "")
    try:
        r = await run(request, lambda s: rewards.collect(s, st.actor, code=typed))
    except LoyalistError as exc:
        if exc.status != 409:  # unknown or out-of-scope code: 404, as if absent
            raise
        return _see_other("/admin/redemptions", notice=_collect_notice(exc))
    return _see_other("/admin/redemptions", notice="collected", id=str(r.id))


@router.post("/admin/redemptions/{redemption_id}/collect")
async def redemptions_collect(
    request: Request, st: StaffDep, redemption_id: int, form: FormDep
) -> Response:
    try:
        await run(request, lambda s: rewards.collect(s, st.actor, redemption_id=redemption_id))
    except LoyalistError as exc:
        if _refusal(exc):
            raise
        return _see_other("/admin/redemptions", notice=_collect_notice(exc))
    return _see_other("/admin/redemptions", notice="collected", id=str(redemption_id))
