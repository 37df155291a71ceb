"""Console page "事件流 / Event stream": the stream's head and every consumer's lag,
retries and parked events (read only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.access import permissions as perm
from loyalist.admin.web import AdminRoute, Staff, current_staff, db_of, render
from loyalist.events import consumers
from loyalist.events import service as events

router = APIRouter(route_class=AdminRoute, include_in_schema=False)
StaffDep = Annotated[Staff, Depends(current_staff)]


@router.get("/admin/stream")
async def stream_page(request: Request, st: StaffDep) -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.AUDIT_READ)
        head, waiting = events.stream_state(s)
        return {
            "head": head,
            "unpositioned": waiting,
            "lags": consumers.lag(s),
            "parked": consumers.parked_events(s)[:100],
        }

    ctx = await run_in_threadpool(db_of(request).run, work)
    return render(request, "stream.html", ctx)
