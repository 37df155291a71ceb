"""/v1/webhooks: endpoints (CRUD, secret rotation, range replay), deliveries and replay."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from loyalist.http import DB, Caller, IdemKey, RecordId, read, write
from loyalist.kit.db import MAX_INT4
from loyalist.kit.pagination import page_request
from loyalist.webhooks import service
from loyalist.webhooks.schemas import (
    DeliveryDetail,
    DeliveryPage,
    Endpoint,
    EndpointCreate,
    EndpointPage,
    EndpointUpdate,
    EndpointWithSecret,
    ReplayRange,
    ReplayResult,
    RotateSecret,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
EndpointId = Annotated[int, Path(ge=1, le=MAX_INT4)]


def _reveal(resp: JSONResponse) -> JSONResponse:
    """Open the sealed secret of a successful create or rotation (also when replayed)."""
    if resp.status_code >= 300:
        return resp
    body = service.unsealed(json.loads(bytes(resp.body)))
    headers = {k: v for k, v in resp.headers.items() if k.lower() == "idempotent-replayed"}
    return JSONResponse(body, status_code=resp.status_code, headers=headers)


def _json(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = model.model_dump(mode="json")
    return out


@router.post(
    "/endpoints",
    status_code=201,
    response_model=EndpointWithSecret,
    summary="Register an endpoint; its signing secret is in this answer only",
)
async def create_endpoint(
    data: EndpointCreate, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return _reveal(
        await write(
            request,
            db,
            actor,
            key,
            lambda s: (201, service.sealed_answer(*service.create_endpoint(s, actor, data))),
        )
    )


@router.get(
    "/endpoints",
    response_model=EndpointPage,
    summary="Endpoints in scope, newest first (cursor)",
)
async def list_endpoints(
    db: DB,
    actor: Caller,
    cursor: str | None = None,
    limit: int | None = None,
    enabled: bool | None = None,
) -> Any:
    page = page_request(cursor, limit)
    return await read(
        db,
        lambda s: service.endpoint_page(
            s, actor, after=page.after, limit=page.limit, enabled=enabled
        ),
    )


@router.get(
    "/endpoints/{endpoint_id}",
    response_model=Endpoint,
    summary="One endpoint",
)
async def get_endpoint(endpoint_id: EndpointId, db: DB, actor: Caller) -> Any:
    return await read(
        db, lambda s: service.endpoint_out(service.read_endpoint(s, actor, endpoint_id))
    )


@router.patch(
    "/endpoints/{endpoint_id}",
    response_model=Endpoint,
    summary="Change the URL, event types, description or enabled flag",
)
async def update_endpoint(
    endpoint_id: EndpointId,
    data: EndpointUpdate,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    return await write(
        request,
        db,
        actor,
        key,
        lambda s: (
            200,
            _json(service.endpoint_out(service.update_endpoint(s, actor, endpoint_id, data))),
        ),
    )


@router.delete(
    "/endpoints/{endpoint_id}",
    response_model=Endpoint,
    summary="Delete an endpoint (its deliveries stop; history is kept)",
)
async def delete_endpoint(
    endpoint_id: EndpointId, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return await write(
        request,
        db,
        actor,
        key,
        lambda s: (
            200,
            _json(service.endpoint_out(service.delete_endpoint(s, actor, endpoint_id))),
        ),
    )


@router.post(
    "/endpoints/{endpoint_id}/rotate-secret",
    response_model=EndpointWithSecret,
    summary="A new signing secret; the old one also signs until the overlap ends",
)
async def rotate_secret(
    endpoint_id: EndpointId,
    request: Request,
    db: DB,
    actor: Caller,
    data: RotateSecret | None = None,
    key: IdemKey = None,
) -> JSONResponse:
    overlap = timedelta(seconds=(data or RotateSecret()).overlap_seconds)
    return _reveal(
        await write(
            request,
            db,
            actor,
            key,
            lambda s: (
                200,
                service.sealed_answer(*service.rotate_secret(s, actor, endpoint_id, overlap)),
            ),
        )
    )


@router.post(
    "/endpoints/{endpoint_id}/replay",
    response_model=ReplayResult,
    summary="Send again every matching event that occurred in a time range",
)
async def replay_range(
    endpoint_id: EndpointId,
    data: ReplayRange,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    return await write(
        request,
        db,
        actor,
        key,
        lambda s: (
            200,
            _json(
                ReplayResult(
                    deliveries=service.replay_range(s, actor, endpoint_id, data.since, data.until)
                )
            ),
        ),
    )


@router.get(
    "/deliveries",
    response_model=DeliveryPage,
    summary="Deliveries in scope, newest first (cursor)",
)
async def list_deliveries(
    db: DB,
    actor: Caller,
    endpoint_id: Annotated[int | None, Query(ge=1, le=MAX_INT4)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    event_id: Annotated[str | None, Query(max_length=36)] = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Any:
    page = page_request(cursor, limit)
    f = service.DeliveryFilter(endpoint_id=endpoint_id, status=status, event_id=event_id)
    return await read(
        db, lambda s: service.delivery_page(s, actor, f, after=page.after, limit=page.limit)
    )


@router.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryDetail,
    summary="One delivery with every attempt (status code, duration, error, answer)",
)
async def get_delivery(delivery_id: RecordId, db: DB, actor: Caller) -> Any:
    return await read(db, lambda s: service.delivery_detail(s, actor, delivery_id))


@router.post(
    "/deliveries/{delivery_id}/replay",
    response_model=DeliveryDetail,
    summary="Send a delivery again now (same webhook-id, new attempts)",
)
async def replay_delivery(
    delivery_id: RecordId, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, dict[str, Any]]:
        service.replay_delivery(s, actor, delivery_id)
        return 200, _json(service.delivery_detail(s, actor, delivery_id))

    return await write(request, db, actor, key, work)
