"""The event stream over HTTP: a cursor over positions, the JSON Schemas, health and lag."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from loyalist.errors import FieldError, NotFound
from loyalist.events import consumers, schemas, service
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
    result: EventPage = await read(
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
    return result


@router.get(
    "/schemas",
    summary="JSON Schemas (draft 2020-12) of the event envelope and every event type's data",
    response_model=schemas.EventSchemas,
)
async def event_schemas(actor: Caller) -> schemas.EventSchemas:
    return schemas.catalogue()


@router.get(
    "/schemas/{event_type}",
    summary="The JSON Schema (draft 2020-12) of one event type's data",
    response_model=schemas.EventDataSchema,
)
async def event_schema(
    actor: Caller, event_type: Annotated[str, Path(max_length=64)]
) -> schemas.EventDataSchema:
    if event_type not in schemas.SCHEMAS:
        raise NotFound(
            f"No event type {event_type!r}.",
            [FieldError("event_type", "unknown event type", "unknown_event_type")],
        )
    return schemas.EventDataSchema(schemas.data_schema(event_type))


health_router = APIRouter(prefix="/v1/health", tags=["health"])


@health_router.get(
    "",
    summary="Service health: the event stream's head and every consumer's lag",
    response_model=schemas.HealthOut,
)
async def health(db: DB, actor: Caller) -> schemas.HealthOut:
    result: schemas.HealthOut = await read(db, consumers.health_view)
    return result
