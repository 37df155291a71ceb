"""The member page's own data export at /m/export (issue 13 item 3, privacy2): the signed-in
member downloads the same zip staff get (JSON and CSV per table, with a manifest). The
download is audited (``member.export``, by ``member:<id>``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loyalist.kit.uow import acting_as
from loyalist.member_web import views
from loyalist.member_web.endpoints import _context, _redirect
from loyalist.privacy import service as privacy

router = APIRouter(prefix="/m", include_in_schema=False)


@router.get("/export")
def export_mine(request: Request) -> Response:
    ctx = _context(request)
    if ctx.member_id is None:
        return _redirect("/m/signin")
    mid = ctx.member_id
    actor = views.member_actor(mid)
    with acting_as(actor):
        e = ctx.db.run(lambda s: privacy.export_own(s, actor, mid))
    return Response(
        e.data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{e.filename}"',
            "Cache-Control": "no-store",
        },
    )
