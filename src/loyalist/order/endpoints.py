"""/v1/orders"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalist.http import (
    DB,
    Caller,
    IdemKey,
    LeanRoute,
    MemberFilterId,
    RecordId,
    checks_key_in_unit,
    created_or_found,
    lean,
    problem_responses,
    read,
    write,
)
from loyalist.kit.pagination import page_request
from loyalist.order import service
from loyalist.order.schemas import (
    OrderCreate,
    OrderDetail,
    OrderPage,
    QuoteIn,
    QuoteOut,
    ReturnAnswer,
    ReturnCreate,
)

router = APIRouter(prefix="/v1/orders", tags=["orders"], route_class=LeanRoute)


@router.post(
    "",
    status_code=201,
    summary="Record an order; it earns points by the rules",
    response_model=OrderDetail,
    responses={
        200: {"model": OrderDetail, "description": "The same order was already recorded"},
        **problem_responses(404, 409, 429),  # 429: coupon guessing (issue 12)
    },
)
@checks_key_in_unit
@lean
async def record_order(
    data: OrderCreate, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return await write(
        request, db, actor, key, lambda s: created_or_found(service.record_view(s, actor, data))
    )


@router.post(
    "/quote",
    response_model=QuoteOut,
    summary="Price a basket: tier discount per line, points it would earn, totals (no writes)",
    responses=problem_responses(404),
)
async def quote_order(data: QuoteIn, db: DB, actor: Caller) -> QuoteOut:
    result: QuoteOut = await read(db, lambda s: service.quote(s, actor, data))
    return result


@router.get(
    "",
    summary="List orders in scope, newest first",
    response_model=OrderPage,
    responses=problem_responses(404),
)
async def list_orders(
    db: DB,
    actor: Caller,
    member_id: MemberFilterId = None,
    store: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> OrderPage:
    page = page_request(cursor, limit)
    return await read(
        db,
        lambda s: service.list_view(
            s, actor, member_id=member_id, store=store, after=page.after, limit=page.limit
        ),
    )


@router.get(
    "/{order_id:int}",  # digits only: /v1/orders/quote is its own resource
    summary="An order with lines, points per rule and returns",
    response_model=OrderDetail,
    responses=problem_responses(404),
)
async def get_order(order_id: RecordId, db: DB, actor: Caller) -> OrderDetail:
    return await read(db, lambda s: service.detail_view(s, actor, order_id))


@router.post(
    "/{order_id}/returns",
    status_code=201,
    summary="Return all or part of an order",
    response_model=ReturnAnswer,
    responses={
        200: {"model": ReturnAnswer, "description": "The same return was already recorded"},
        **problem_responses(404, 409),
    },
)
async def return_order(
    order_id: RecordId,
    data: ReturnCreate,
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
        lambda s: created_or_found(service.return_view(s, actor, order_id, data)),
    )
