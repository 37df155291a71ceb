"""Console: identity merge (issue 13 item 2) over the merge service.

* ``GET /admin/duplicates`` — the pairs the nightly job found (``member.read``; rows whose
  two members are in scope), with their reasons; ``member.merge`` dismisses a pair
  (``POST /admin/duplicates/{id}/dismiss``) or opens the preview;
* ``GET /admin/members/{id}/merge?merged_no=`` (or ``merged_id=``) — ``member.merge``:
  what merging the other member into this one would do (what moves, what stays, the
  conflicts, the balance and tier after), nothing written; ``POST`` merges (CSRF) and
  shows the merge;
* ``GET /admin/merges`` and ``/admin/merges/{id}`` — ``member.merge``: the merges, one with
  its undo button, or the reason an undo is refused; ``POST /admin/merges/{id}/undo``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.access import permissions as perm
from loyalist.admin.web import AdminRoute, Staff, checked_form, current_staff, db_of, render
from loyalist.errors import FieldError, ValidationFailed
from loyalist.kit.actor import Actor
from loyalist.kit.db import MAX_INT4
from loyalist.member import service as members
from loyalist.member.errors import MemberNotFound
from loyalist.member.schemas import MemberFilter
from loyalist.merge import service as merges
from loyalist.merge.errors import UndoRefused
from loyalist.programme import service as programmes

StaffDep = Annotated[Staff, Depends(current_staff)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]
Id = Annotated[int, Path(ge=1, le=MAX_INT4)]
STATUSES = ("open", "merged", "dismissed")
NOTICES = ("dismissed", "merged", "undone")
LIMIT = 100
#: "3 new orders" from merges.activity_since → (3, "orders"), shown in the page's language.
NEW_ROWS = re.compile(r"^(\d+) new (\w+)$")


async def _run(request: Request, st: Staff, fn: Callable[[Session], Any]) -> Any:
    return await run_in_threadpool(lambda: db_of(request).run(fn, actor=st.actor))


def _names(s: Session, actor: Actor, ids: set[int]) -> dict[int, Any]:
    """The members the actor may see, by id (others stay ids)."""
    out: dict[int, Any] = {}
    for mid in sorted(ids):
        try:
            out[mid] = members.get(s, actor, mid)
        except MemberNotFound:
            continue
    return out


def _tz(s: Session) -> ZoneInfo:
    _v, programme = programmes.active(s)
    return ZoneInfo(programme.timezone)


def _tier_names(s: Session) -> dict[str, str]:
    _v, programme = programmes.active(s)
    return {t.code: t.name for t in programme.tiers.levels}


def activity_items(activity: list[str]) -> list[tuple[str, Any]]:
    """What happened since a merge, as (kind, detail) the template words: ("rows", (n,
    table)), ("points", role), ("profile", None), or ("other", the service's text)."""
    out: list[tuple[str, Any]] = []
    for a in activity:
        if m := NEW_ROWS.match(a):
            out.append(("rows", (int(m.group(1)), m.group(2))))
        elif a.startswith("points moved on the "):
            out.append(("points", "survivor" if "survivor" in a else "merged"))
        elif a == "the survivor's profile changed":
            out.append(("profile", None))
        else:
            out.append(("other", a))
    return out


# ── duplicate candidates ───────────────────────────────────────────────────────────────
async def duplicates_page(
    request: Request, st: StaffDep, status: str = "open", notice: str = ""
) -> Response:
    if status not in STATUSES:
        raise ValidationFailed(
            f"Unknown status: use one of {', '.join(STATUSES)}.",
            [FieldError("status", ", ".join(STATUSES))],
        )

    def work(s: Session) -> dict[str, Any]:
        rows = merges.candidates(s, st.actor, status=status, limit=LIMIT)
        ids = {c.member_a_id for c in rows} | {c.member_b_id for c in rows}
        return {
            "rows": [merges.candidate_out(c) for c in rows],
            "names": _names(s, st.actor, ids),
            "tz": _tz(s),
        }

    ctx = await _run(request, st, work)
    ctx.update(
        {
            "status": status,
            "statuses": STATUSES,
            "notice": notice if notice in NOTICES else "",
            "can_merge": st.can(perm.MEMBER_MERGE),
        }
    )
    return render(request, "duplicates.html", ctx, tz=ctx["tz"])


async def duplicate_dismiss(
    request: Request, st: StaffDep, candidate_id: Id, form: FormDep
) -> Response:
    await _run(request, st, lambda s: merges.dismiss(s, st.actor, candidate_id))
    return RedirectResponse("/admin/duplicates?notice=dismissed", status_code=303)


# ── preview and merge ──────────────────────────────────────────────────────────────────
def _other(s: Session, actor: Actor, merged_id: int | None, merged_no: str) -> int | None:
    """The member to merge in: by id (from a candidate pair) or by member number typed."""
    if merged_id is not None:
        return merged_id
    no = merged_no.strip()
    if not no:
        return None
    for m in members.search(s, actor, MemberFilter(q=no), after=None, limit=20):
        if m.member_no.upper() == no.upper():
            return int(m.id)
    raise MemberNotFound(f"No member numbered {no}.")


async def merge_page(
    request: Request,
    st: StaffDep,
    member_id: Id,
    merged_id: int | None = None,
    merged_no: str = "",
) -> Response:
    if merged_id is not None and not 1 <= merged_id <= MAX_INT4:
        raise ValidationFailed("No such member.", [FieldError("merged_id", "a member id")])

    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.MEMBER_MERGE)
        survivor = members.get(s, st.actor, member_id)
        other = _other(s, st.actor, merged_id, merged_no)
        preview = merges.preview_view(s, st.actor, member_id, other) if other else None
        ids = {member_id} | ({other} if other else set())
        return {
            "m": survivor,
            "preview": preview,
            "names": _names(s, st.actor, ids),
            "tier_names": _tier_names(s),
            "merged_no": merged_no,
            "tz": _tz(s),
        }

    ctx = await _run(request, st, work)
    return render(request, "merge_preview.html", ctx, tz=ctx["tz"])


async def merge_confirm(request: Request, st: StaffDep, member_id: Id, form: FormDep) -> Response:
    raw = (form.get("merged_id") or "").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_INT4:
        raise ValidationFailed("Choose the member to merge in.", [FieldError("merged_id", "id")])
    row = await _run(request, st, lambda s: merges.merge(s, st.actor, member_id, int(raw)))
    return RedirectResponse(f"/admin/merges/{row.id}?notice=merged", status_code=303)


# ── merges and undo ────────────────────────────────────────────────────────────────────
async def merges_page(request: Request, st: StaffDep) -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.MEMBER_MERGE)
        rows = merges.recent(s, st.actor, limit=LIMIT)
        ids = {r.survivor_id for r in rows} | {r.merged_id for r in rows}
        return {
            "rows": [merges.merge_out(r) for r in rows],
            "names": _names(s, st.actor, ids),
            "tz": _tz(s),
        }

    ctx = await _run(request, st, work)
    return render(request, "merges.html", ctx, tz=ctx["tz"])


def _detail(s: Session, st: Staff, merge_id: int) -> dict[str, Any]:
    perm.require(st.actor, perm.MEMBER_MERGE)
    row = merges.get_merge(s, st.actor, merge_id)
    blocked = merges.undo_blocked(s, row)
    return {
        "r": merges.merge_out(row),
        "names": _names(s, st.actor, {row.survivor_id, row.merged_id}),
        "blocked": blocked[0] if blocked else None,
        "activity": activity_items(blocked[1]) if blocked else [],
        "tz": _tz(s),
    }


async def merge_detail(request: Request, st: StaffDep, merge_id: Id, notice: str = "") -> Response:
    ctx = await _run(request, st, lambda s: _detail(s, st, merge_id))
    ctx["notice"] = notice if notice in NOTICES else ""
    return render(request, "merge.html", ctx, tz=ctx["tz"])


async def merge_undo(request: Request, st: StaffDep, merge_id: Id, form: FormDep) -> Response:
    try:
        await _run(request, st, lambda s: merges.undo(s, st.actor, merge_id))
    except UndoRefused:  # the page again, with the reason next to the (absent) button
        ctx = await _run(request, st, lambda s: _detail(s, st, merge_id))
        ctx.update({"notice": "", "refused": True})
        return render(request, "merge.html", ctx, status=409, tz=ctx["tz"])
    return RedirectResponse(f"/admin/merges/{merge_id}?notice=undone", status_code=303)


def register(router: APIRouter) -> None:
    """Add the pages to the console's router (its AdminRoute turns errors into pages)."""
    assert router.route_class is AdminRoute
    router.add_api_route("/admin/duplicates", duplicates_page, methods=["GET"])
    router.add_api_route(
        "/admin/duplicates/{candidate_id}/dismiss", duplicate_dismiss, methods=["POST"]
    )
    router.add_api_route("/admin/members/{member_id}/merge", merge_page, methods=["GET"])
    router.add_api_route("/admin/members/{member_id}/merge", merge_confirm, methods=["POST"])
    router.add_api_route("/admin/merges", merges_page, methods=["GET"])
    router.add_api_route("/admin/merges/{merge_id}", merge_detail, methods=["GET"])
    router.add_api_route("/admin/merges/{merge_id}/undo", merge_undo, methods=["POST"])
