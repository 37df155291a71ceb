"""Console pages for webhooks: endpoints (list, create, disable, rotate, delete), their
deliveries with every attempt, and replay (one delivery or a time range)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.access import permissions as perm
from loyalist.admin.web import (
    AdminRoute,
    Staff,
    checked_form,
    current_staff,
    db_of,
    errors_by_field,
    render,
)
from loyalist.errors import FieldError, LoyalistError, ValidationFailed
from loyalist.events.service import EVENT_TYPES
from loyalist.programme import service as programmes
from loyalist.webhooks import service as webhooks
from loyalist.webhooks.schemas import EndpointCreate, EndpointUpdate

router = APIRouter(route_class=AdminRoute, include_in_schema=False)
StaffDep = Annotated[Staff, Depends(current_staff)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]
PAGE = 50


async def _run(request: Request, fn: Any) -> Any:
    return await run_in_threadpool(db_of(request).run, fn)


def _tz(s: Session) -> ZoneInfo:
    _v, p = programmes.active(s)
    return ZoneInfo(p.timezone)


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _int(value: str, field: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValidationFailed("Not a number.", [FieldError(field, "not a number")])
    return int(value)


async def _form_types(request: Request) -> list[str] | None:
    """The checked event types, or None when "every type" is chosen."""
    form = await request.form()
    if form.get("all_types"):
        return None
    return [str(v) for v in form.getlist("event_types")]


def _list_ctx(s: Session, st: Staff, after: int | None) -> dict[str, Any]:
    rows = webhooks.list_endpoints(s, st.actor, after=after, limit=PAGE)
    return {
        "rows": rows,
        "next_before": rows[-1].id if len(rows) == PAGE else None,
        "event_types": sorted(EVENT_TYPES),
        "tz": _tz(s),
    }


@router.get("/admin/webhooks")
async def endpoints_page(request: Request, st: StaffDep, before: str = "") -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.WEBHOOK_READ)
        return _list_ctx(s, st, _int(before, "before"))

    ctx = await _run(request, work)
    ctx.update(errors={}, form={}, notice=request.query_params.get("notice"), created=None)
    return render(request, "webhooks.html", ctx, tz=ctx["tz"])


@router.post("/admin/webhooks")
async def endpoint_create(request: Request, st: StaffDep, form: FormDep) -> Response:
    types = await _form_types(request)
    errors: dict[str, str] = {}
    created: tuple[Any, str] | None = None
    try:
        data = EndpointCreate(
            url=form.get("url", "").strip(),
            description=form.get("description", "")[:500],
            event_types=types,
            scope=form.get("scope", "").strip() or None,
        )
    except ValidationError as exc:
        errors = {str(e["loc"][0]): str(e["msg"]) for e in exc.errors()}
        data = None

    def work(s: Session) -> dict[str, Any]:
        nonlocal created, errors
        perm.require(st.actor, perm.WEBHOOK_MANAGE)  # before any word on the input
        if data is not None:
            try:
                with s.begin_nested():
                    created = webhooks.create_endpoint(s, st.actor, data)
            except LoyalistError as exc:
                if exc.status != 422:
                    raise
                errors = errors_by_field(exc.errors) or {"url": exc.detail}
        return _list_ctx(s, st, None)

    ctx = await _run(request, work)
    ctx.update(
        errors={k.split(".")[0]: v for k, v in errors.items()},
        form=form if errors else {},
        notice="created" if created else None,
        created=created,
    )
    return render(request, "webhooks.html", ctx, tz=ctx["tz"], status=422 if errors else 200)


@router.get("/admin/webhooks/{endpoint_id}")
async def endpoint_page(
    request: Request, st: StaffDep, endpoint_id: int, status: str = "", before: str = ""
) -> Response:
    def work(s: Session) -> dict[str, Any]:
        ep = webhooks.read_endpoint(s, st.actor, endpoint_id)
        f = webhooks.DeliveryFilter(endpoint_id=ep.id, status=status or None)
        rows = webhooks.list_deliveries(s, st.actor, f, after=_int(before, "before"), limit=PAGE)
        return {
            "ep": ep,
            "rows": rows,
            "attempts": {d.id: webhooks.attempts_of(s, d.id) for d in rows},
            "status": status,
            "next_before": rows[-1].id if len(rows) == PAGE else None,
            "tz": _tz(s),
        }

    ctx = await _run(request, work)
    ctx.update(notice=request.query_params.get("notice"), secret=None, errors={})
    return render(request, "webhook.html", ctx, tz=ctx["tz"])


@router.post("/admin/webhooks/{endpoint_id}/enabled")
async def endpoint_enabled(
    request: Request, st: StaffDep, endpoint_id: int, form: FormDep
) -> Response:
    on = form.get("enabled") == "true"
    data = EndpointUpdate(enabled=on)
    await _run(request, lambda s: webhooks.update_endpoint(s, st.actor, endpoint_id, data))
    return _see_other(f"/admin/webhooks/{endpoint_id}?notice={'enabled' if on else 'disabled'}")


@router.post("/admin/webhooks/{endpoint_id}/delete")
async def endpoint_delete(
    request: Request, st: StaffDep, endpoint_id: int, form: FormDep
) -> Response:
    await _run(request, lambda s: webhooks.delete_endpoint(s, st.actor, endpoint_id))
    return _see_other("/admin/webhooks?notice=deleted")


@router.post("/admin/webhooks/{endpoint_id}/rotate")
async def endpoint_rotate(
    request: Request, st: StaffDep, endpoint_id: int, form: FormDep
) -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.WEBHOOK_MANAGE)
        hours = _int(form.get("overlap_hours", "24"), "overlap_hours")
        overlap = timedelta(hours=min(hours if hours is not None else 24, 168))
        _ep, secret = webhooks.rotate_secret(s, st.actor, endpoint_id, overlap)
        ep = webhooks.read_endpoint(s, st.actor, endpoint_id)
        rows = webhooks.list_deliveries(
            s, st.actor, webhooks.DeliveryFilter(endpoint_id=ep.id), after=None, limit=PAGE
        )
        return {
            "ep": ep,
            "rows": rows,
            "attempts": {d.id: webhooks.attempts_of(s, d.id) for d in rows},
            "status": "",
            "next_before": None,
            "tz": _tz(s),
            "secret": secret,
        }

    ctx = await _run(request, work)
    ctx.update(notice="rotated", errors={})
    return render(request, "webhook.html", ctx, tz=ctx["tz"])


@router.post("/admin/webhooks/deliveries/{delivery_id}/replay")
async def delivery_replay(
    request: Request, st: StaffDep, delivery_id: int, form: FormDep
) -> Response:
    d = await _run(request, lambda s: webhooks.replay_delivery(s, st.actor, delivery_id))
    return _see_other(f"/admin/webhooks/{d.endpoint_id}?notice=replayed")


def _local(value: str, tz: ZoneInfo, field: str) -> datetime:
    try:
        return datetime.fromisoformat(value.strip()).replace(tzinfo=tz)
    except ValueError as exc:
        raise ValidationFailed(
            "Not a date and time.", [FieldError(field, "not a date and time")]
        ) from exc


@router.post("/admin/webhooks/{endpoint_id}/replay")
async def endpoint_replay(
    request: Request, st: StaffDep, endpoint_id: int, form: FormDep
) -> Response:
    def work(s: Session) -> int:
        perm.require(st.actor, perm.WEBHOOK_MANAGE)
        tz = _tz(s)
        since = _local(form.get("since", ""), tz, "since")
        until = _local(form.get("until", ""), tz, "until")
        return webhooks.replay_range(s, st.actor, endpoint_id, since, until)

    n = await _run(request, work)
    return _see_other(f"/admin/webhooks/{endpoint_id}?notice=replayed&count={n}")
