"""/v1/events"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlalchemy.orm import Session

from loyalist.errors import FieldError, NotFound, ValidationFailed
from loyalist.events import consumers, schemas, service
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
    unknown = sorted(set(type or ()) - service.EVENT_TYPES)
    if unknown:
        raise ValidationFailed(
            f"Unknown event type {unknown[0]!r}; GET /v1/events/schemas lists them.",
            [
                FieldError("type", f"unknown event type {t!r}", "unknown_event_type")
                for t in unknown
            ],
        )
    page = page_request(cursor, limit, default=100)

    def fn(s: Session) -> dict[str, Any]:
        rows = service.list_events(
            s, actor, after=page.after, limit=page.limit, types=type or (), member_id=member_id
        )
        nxt = encode_cursor(rows[-1].position or 0) if rows else (cursor or None)
        return {"items": [service.as_dict(e) for e in rows], "next_cursor": nxt}

    result: dict[str, Any] = await read(db, fn)
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
    response_model=dict[str, Any],
)
async def event_schema(
    actor: Caller, event_type: Annotated[str, Path(max_length=64)]
) -> dict[str, Any]:
    if event_type not in schemas.SCHEMAS:
        raise NotFound(
            f"No event type {event_type!r}.",
            [FieldError("event_type", "unknown event type", "unknown_event_type")],
        )
    return schemas.data_schema(event_type)


health_router = APIRouter(prefix="/v1/health", tags=["health"])


@health_router.get(
    "",
    summary="Service health: the event stream's head and every consumer's lag",
    response_model=schemas.HealthOut,
)
async def health(db: DB, actor: Caller) -> schemas.HealthOut:
    from loyalist import __version__

    def fn(s: Session) -> schemas.HealthOut:
        head, waiting = service.stream_state(s)
        lags = [schemas.ConsumerLagOut(**vars(x)) for x in consumers.lag(s)]
        parked = any(x.parked for x in lags)
        return schemas.HealthOut(
            status="degraded" if parked else "ok",
            version=__version__,
            stream=schemas.StreamHealthOut(head=head, unpositioned=waiting, consumers=lags),
        )

    result: schemas.HealthOut = await read(db, fn)
    return result
