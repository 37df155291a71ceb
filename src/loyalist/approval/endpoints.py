"""/v1/adjustment-requests: approve or reject what a manual adjustment left pending."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loyalist.approval import service
from loyalist.approval.schemas import AdjustmentRequestOut, AdjustmentRequestPage
from loyalist.approval.service import request_body
from loyalist.http import DB, Caller, IdemKey, MemberFilterId, RecordId, read, write
from loyalist.kit.pagination import encode_cursor, page_request

router = APIRouter(prefix="/v1/adjustment-requests", tags=["adjustments"])

__all__ = ["request_body", "router"]


@router.get(
    "", response_model=AdjustmentRequestPage, summary="Adjustment requests in scope, oldest first"
)
async def list_requests(
    db: DB,
    actor: Caller,
    status: Annotated[Literal["pending", "approved", "rejected"] | None, Query()] = "pending",
    member_id: MemberFilterId = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    page = page_request(cursor, limit)

    def fn(s: Any) -> dict[str, Any]:
        rows = service.pending(
            s, actor, member_id, status=status, after=page.after, limit=page.limit
        )
        nxt = encode_cursor(rows[-1].id) if len(rows) == page.limit else None
        return {"items": [request_body(r) for r in rows], "next_cursor": nxt}

    result: dict[str, Any] = await read(db, fn)
    return result


@router.get("/{request_id}", response_model=AdjustmentRequestOut, summary="An adjustment request")
async def get_request(request_id: RecordId, db: DB, actor: Caller) -> dict[str, Any]:
    result: dict[str, Any] = await read(
        db, lambda s: request_body(service.get(s, actor, request_id))
    )
    return result


@router.post(
    "/{request_id}/approve",
    response_model=AdjustmentRequestOut,
    summary="Approve and apply (a second person: never the requester, never a store)",
)
async def approve(
    request_id: RecordId, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, dict[str, Any]]:
        return 200, request_body(service.approve(s, actor, request_id))

    return await write(request, db, actor, key, work)


@router.post(
    "/{request_id}/reject",
    response_model=AdjustmentRequestOut,
    summary="Reject (a second person: never the requester, never a store)",
)
async def reject(
    request_id: RecordId, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, dict[str, Any]]:
        return 200, request_body(service.reject(s, actor, request_id))

    return await write(request, db, actor, key, work)
