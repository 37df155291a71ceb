"""Console pages for habits (issue 12 items 4-8): the habits document (check-ins and
streak bonuses, activity points, badges, challenges, leaderboards) with how each part is
doing, and publishing a new version from YAML (validated in full, errors by field path)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.access import permissions as perm
from loyalist.admin.web import (
    AdminRoute,
    Staff,
    checked_form,
    current_staff,
    db_of,
    locale_of,
    render,
)
from loyalist.documents import service as documents
from loyalist.errors import LoyalistError
from loyalist.habits import service as habits
from loyalist.org import service as org
from loyalist.org.errors import OrgUnitNotFound
from loyalist.programme import service as programmes

router = APIRouter(route_class=AdminRoute, include_in_schema=False)
StaffDep = Annotated[Staff, Depends(current_staff)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]


async def _run(request: Request, fn: Any) -> Any:
    return await run_in_threadpool(db_of(request).run, fn)


def _ctx(s: Session, st: Staff, locale: str) -> dict[str, Any]:
    perm.require(st.actor, perm.PROGRAMME_READ)
    ov = habits.overview(s, st.actor, locale)
    import yaml  # when first needed, not when the server starts (memory, issue 11)

    text = yaml.safe_dump(
        ov.config.model_dump(mode="json", exclude_defaults=False),
        allow_unicode=True,
        sort_keys=False,
    )
    # a board's scope by its organisation unit's name (the code when the unit is unknown)
    units: dict[str, str] = {}
    for b in ov.boards:
        if b.scope and b.scope not in units:
            try:
                units[b.scope] = org.get_by_code(s, b.scope).name
            except OrgUnitNotFound:
                units[b.scope] = b.scope
    return {"ov": ov, "yaml_text": text, "tz": programmes.active(s)[1].tz, "unit_names": units}


@router.get("/admin/habits")
async def habits_page(request: Request, st: StaffDep) -> Response:
    locale = locale_of(request, st.locale_pref)
    ctx = await _run(request, lambda s: _ctx(s, st, locale))
    ctx.update(errors=[], notice=request.query_params.get("notice"))
    return render(request, "habits.html", ctx, tz=ctx["tz"])


@router.post("/admin/habits")
async def habits_publish(request: Request, st: StaffDep, form: FormDep) -> Response:
    locale = locale_of(request, st.locale_pref)
    text = form.get("document", "")
    note = form.get("note", "").strip()[:500] or None
    errors: list[tuple[str, str]] = []
    published: tuple[int, bool] | None = None

    def work(s: Session) -> dict[str, Any]:
        nonlocal published, errors
        perm.require(st.actor, perm.PROGRAMME_PUBLISH)  # before any word on the input
        import yaml

        try:
            data = yaml.safe_load(text) if text.strip() else {}
        except yaml.YAMLError as exc:
            errors = [("$", f"not valid YAML: {exc}")]
            data = None
        if data is not None:
            try:
                with s.begin_nested():
                    published = documents.publish(s, st.actor, "habits", data, note=note)
            except LoyalistError as exc:
                if exc.status != 422:
                    raise
                errors = [(e.field, e.message) for e in exc.errors] or [("$", exc.detail)]
        return _ctx(s, st, locale)

    ctx = await _run(request, work)
    if published is not None and not errors:
        number, created = published
        return RedirectResponse(
            f"/admin/habits?notice={'published' if created else 'unchanged'}&v={number}",
            status_code=303,
        )
    ctx.update(errors=errors, notice=None, yaml_text=text)
    return render(request, "habits.html", ctx, tz=ctx["tz"], status=422)
