"""/v1/events"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from loyalist.events import service
from loyalist.http import DB, Caller, MemberFilterId, read
from loyalist.kit.pagination import encode_cursor, page_request

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.get("", summary="Domain events in commit order (cursor); for data platforms")
async def list_events(
    db: DB,
    actor: Caller,
    type: Annotated[list[str] | None, Query()] = None,
    member_id: MemberFilterId = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    page = page_request(cursor, limit, default=100)

    def fn(s: Session) -> dict[str, Any]:
        rows = service.list_events(
            s, actor, after=page.after, limit=page.limit, types=type or (), member_id=member_id
        )
        nxt = encode_cursor(rows[-1].position or 0) if rows else (cursor or None)
        return {"items": [service.as_dict(e) for e in rows], "next_cursor": nxt}

    result: dict[str, Any] = await read(db, fn)
    return result
