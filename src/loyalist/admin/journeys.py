"""Console pages for journeys: the list, a journey's steps as a graph with its funnel, the
YAML editor with a dry run for a member, publish, pause / resume, experiment readouts."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.access import permissions as perm
from loyalist.admin.web import AdminRoute, Staff, checked_form, current_staff, db_of, render
from loyalist.errors import LoyalistError
from loyalist.journey import domain
from loyalist.journey import service as journeys
from loyalist.programme import service as programmes

router = APIRouter(route_class=AdminRoute, include_in_schema=False)
StaffDep = Annotated[Staff, Depends(current_staff)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]

STARTER = """key: win_back
name: 召回 60 天
marketing: true
entry: {inactive_days: 60}
reentry: {mode: after, days: 90}
exit:
  - {event: order.recorded}
steps:
  - id: offer_ab
    type: split
    experiment: winback_offer
    window_days: 14
    variants:
      - {name: control, weight: 50, next: end}
      - {name: sms, weight: 50}
  - id: nudge
    type: action
    action: send_message
    params: {template: notice, channel: sms, marketing: true, params: {text: 好久不见，回来看看吧}}
  - id: wait_buy
    type: wait_event
    event: order.recorded
    timeout: {days: 7}
    then: end
    else: reminder
  - id: reminder
    type: action
    action: add_tag
    params: {tag: win_back_no_reply}
"""


async def _run(request: Request, fn: Any) -> Any:
    return await run_in_threadpool(db_of(request).run, fn)


def _tz(s: Session) -> ZoneInfo:
    _v, p = programmes.active(s)
    return ZoneInfo(p.timezone)


def _yaml(j: domain.Journey) -> str:
    data = j.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data = {"key": j.key, "name": j.name, **data}
    import yaml  # when first needed, not when the server starts (memory, issue 11)

    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)


@router.get("/admin/journeys")
async def list_page(request: Request, st: StaffDep) -> Response:
    def work(s: Session) -> dict[str, Any]:
        listed = journeys.list_view(s, st.actor)
        funnels = {i.key: journeys.funnel(s, st.actor, i.key) for i in listed.items}
        loaded = journeys.current(s)
        return {
            "listed": listed,
            # each journey's trigger, said in the page's language (not the API's summary)
            "entries": {j.key: j.entry for j in loaded.doc.journeys} if loaded else {},
            "funnels": funnels,
            "experiments": journeys.experiments(s),
            "tz": _tz(s),
        }

    ctx = await _run(request, work)
    ctx["notice"] = request.query_params.get("notice")
    return render(request, "journeys.html", ctx, tz=ctx["tz"])


def _page_ctx(s: Session, st: Staff, key: str, *, draft: str | None = None) -> dict[str, Any]:
    loaded = journeys.current(s)
    j = loaded.doc.get(key) if loaded else None
    ctx: dict[str, Any] = {
        "key": key,
        "j": j,
        "version": loaded.version if loaded else None,
        "status": journeys.status(s, key),
        "graph": domain.graph(j) if j else [],
        "funnel": journeys.funnel(s, st.actor, key) if j else None,
        "readouts": [],
        "draft": draft if draft is not None else (_yaml(j) if j else STARTER),
        "errors": [],
        "dry": None,
        "member_id": "",
        "events": "",
        "tz": _tz(s),
    }
    if j is not None:
        for x in j.experiments():
            ctx["readouts"].append(journeys.readout(s, st.actor, key, x.experiment))
    return ctx


@router.get("/admin/journeys/new")
async def new_page(request: Request, st: StaffDep) -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.PROGRAMME_READ)
        ctx = _page_ctx(s, st, "")
        ctx["draft"] = STARTER
        return ctx

    ctx = await _run(request, work)
    return render(request, "journey.html", ctx, tz=ctx["tz"])


@router.get("/admin/journeys/{key}")
async def journey_page(request: Request, st: StaffDep, key: str) -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.PROGRAMME_READ)
        ctx = _page_ctx(s, st, key)
        if ctx["j"] is None:
            journeys.journey(s, key)  # 404
        return ctx

    ctx = await _run(request, work)
    ctx["notice"] = request.query_params.get("notice")
    return render(request, "journey.html", ctx, tz=ctx["tz"])


def _parse_draft(text: str) -> tuple[domain.Journey | None, list[tuple[str, str]]]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, [("yaml", str(exc)[:300])]
    if not isinstance(data, dict):
        return None, [("journey", "expected a mapping")]
    try:
        return journeys.parse_journey(data), []
    except LoyalistError as exc:
        return None, [(e.field, e.message) for e in exc.errors] or [("journey", exc.detail)]


@router.post("/admin/journeys/editor")
async def editor_post(request: Request, st: StaffDep, form: FormDep) -> Response:
    """The editor's buttons: ``dry_run`` (writes nothing) or ``publish``."""
    text = form.get("document", "")
    key = form.get("key", "")
    do = form.get("do", "dry_run")
    member = form.get("member_id", "").strip()
    events = [e.strip() for e in form.get("events", "").split(",") if e.strip()]
    j, errors = _parse_draft(text)

    def work(s: Session) -> Any:
        if do == "publish":
            perm.require(st.actor, perm.PROGRAMME_PUBLISH)
        else:
            perm.require(st.actor, perm.PROGRAMME_READ)
        nonlocal errors
        dry = None
        if j is not None and not errors:
            if do == "publish":
                journeys.with_journey(s, j, form.get("note") or None, st.actor)
                return f"/admin/journeys/{j.key}?notice=published"
            if not member.isdigit() or len(member) > 9:
                errors = [("member_id", "a member number is required for a dry run")]
            else:
                try:
                    with s.begin_nested():
                        dry = journeys.dry_run(s, st.actor, j, int(member), events=set(events))
                except LoyalistError as exc:
                    if exc.status not in (404, 422):
                        raise
                    errors = [("member_id", exc.detail)]
        ctx = _page_ctx(s, st, j.key if j is not None else key, draft=text)
        ctx.update(errors=errors, dry=dry, member_id=member, events=", ".join(events))
        if j is not None and ctx["j"] is None:
            ctx["graph"] = domain.graph(j)
        return ctx

    out = await _run(request, work)
    if isinstance(out, str):
        return RedirectResponse(out, status_code=303)
    return render(request, "journey.html", out, tz=out["tz"], status=422 if errors else 200)


@router.post("/admin/journeys/{key}/pause")
async def pause(request: Request, st: StaffDep, key: str, form: FormDep) -> Response:
    await _run(request, lambda s: journeys.pause(s, st.actor, key))
    return RedirectResponse(f"/admin/journeys/{key}?notice=paused", status_code=303)


@router.post("/admin/journeys/{key}/resume")
async def resume(request: Request, st: StaffDep, key: str, form: FormDep) -> Response:
    await _run(request, lambda s: journeys.resume(s, st.actor, key))
    return RedirectResponse(f"/admin/journeys/{key}?notice=resumed", status_code=303)
