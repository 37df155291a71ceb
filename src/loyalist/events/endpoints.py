"""/v1/events"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from loyalist.events import service
from loyalist.events.responses import EventPage
from loyalist.http import DB, Caller, MemberFilterId, read
from loyalist.kit.pagination import page_request

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.get(
    "",
    summary="Domain events in commit order (cursor); for data platforms",
    response_model=EventPage,
)
async def list_events(
    db: DB,
    actor: Caller,
    type: Annotated[
        list[str] | None,
        Query(
            description="only events of these types (repeat the parameter for several)",
            json_schema_extra={"items": {"type": "string", "enum": sorted(service.EVENT_TYPES)}},
        ),
    ] = None,
    member_id: MemberFilterId = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> EventPage:
    page = page_request(cursor, limit, default=100)
    await read(db, service.assign_positions)
    return await read(
        db,
        lambda s: service.page_view(
            s,
            actor,
            after=page.after,
            limit=page.limit,
            types=type or (),
            member_id=member_id,
            cursor=cursor,
        ),
    )
