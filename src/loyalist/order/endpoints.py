"""/v1/orders"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from loyalist.http import DB, Caller, IdemKey, MemberFilterId, RecordId, read, write
from loyalist.kit.pagination import encode_cursor, page_request
from loyalist.models import Order, OrderReturn
from loyalist.order import service
from loyalist.order.schemas import OrderCreate, QuoteIn, QuoteOut, ReturnCreate

router = APIRouter(prefix="/v1/orders", tags=["orders"])


def return_body(r: OrderReturn) -> dict[str, Any]:
    return {
        "id": r.id,
        "return_id": r.external_id,
        "lines": r.lines,
        "refund_minor": r.refund_minor,
        "points_clawed": r.points_clawed,
        "points_waived": r.points_waived,
        "points_restored": r.points_restored,
        "points_expired": r.points_expired,
        "occurred_at": r.occurred_at.isoformat(),
    }


def order_body(s: Session, o: Order, *, detail: bool = True) -> dict[str, Any]:
    state = service.points_state(s, o)
    body: dict[str, Any] = {
        "id": o.id,
        "external_id": o.external_id,
        "member_id": o.member_id,
        "store_id": o.store_id,
        "channel": o.channel,
        "occurred_at": o.occurred_at.isoformat(),
        "currency": o.currency,
        "gross_minor": o.gross_minor,
        "amount_paid_minor": o.amount_paid_minor,
        "points_paid": o.points_paid,
        "points_paid_minor": o.points_paid_minor,
        "coupon_minor": o.coupon_minor,
        "tier_qualifying_minor": o.qualifying_minor - o.qualifying_refunded_minor,
        "status": o.status,
        "points": {
            "earned": o.points_earned,
            "status": state.status,
            "open": state.open,
            "expired": state.expired,
            "available_at": o.available_at.isoformat() if o.available_at else None,
            "breakdown": o.breakdown,
            "clawed_back": o.points_clawed,
            "paid_restored": o.points_paid_restored,
        },
        "refunded_minor": o.refunded_minor,
        "programme_version": o.programme_version,
    }
    if detail:
        body["lines"] = [
            {
                "line_no": ln.line_no,
                "sku": ln.sku,
                "category": ln.category,
                "quantity": ln.quantity,
                "unit_price_minor": ln.unit_price_minor,
                "discount_minor": ln.discount_minor,
                "net_minor": ln.net_minor,
                "returned_quantity": ln.returned_quantity,
                "points": int(o.line_points.get(str(ln.line_no), 0)),
            }
            for ln in service.lines(s, o.id)
        ]
        body["returns"] = [return_body(r) for r in service.returns(s, o.id)]
    return body


@router.post("", status_code=201, summary="Record an order; it earns points by the rules")
async def record_order(
    data: OrderCreate, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Session) -> tuple[int, dict[str, Any]]:
        rec = service.record(s, actor, data)
        return (201 if rec.created else 200), order_body(s, rec.order)

    return await write(request, db, actor, key, work)


@router.post(
    "/quote",
    response_model=QuoteOut,
    summary="Price a basket: tier discount per line, points it would earn, totals (no writes)",
)
async def quote_order(data: QuoteIn, db: DB, actor: Caller) -> dict[str, Any]:
    result: dict[str, Any] = await read(
        db, lambda s: service.quote(s, actor, data).model_dump(mode="json")
    )
    return result


@router.get("", summary="List orders in scope, newest first")
async def list_orders(
    db: DB,
    actor: Caller,
    member_id: MemberFilterId = None,
    store: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    page = page_request(cursor, limit)

    def fn(s: Session) -> dict[str, Any]:
        rows = service.list_orders(
            s, actor, member_id=member_id, store=store, after=page.after, limit=page.limit
        )
        nxt = encode_cursor(rows[-1].id) if len(rows) == page.limit else None
        return {"items": [order_body(s, o, detail=False) for o in rows], "next_cursor": nxt}

    result: dict[str, Any] = await read(db, fn)
    return result


@router.get("/{order_id}", summary="An order with lines, points per rule and returns")
async def get_order(order_id: RecordId, db: DB, actor: Caller) -> dict[str, Any]:
    result: dict[str, Any] = await read(
        db, lambda s: order_body(s, service.get(s, actor, order_id))
    )
    return result


@router.post("/{order_id}/returns", status_code=201, summary="Return all or part of an order")
async def return_order(
    order_id: RecordId,
    data: ReturnCreate,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    def work(s: Session) -> tuple[int, dict[str, Any]]:
        res = service.record_return(s, actor, order_id, data)
        body = return_body(res.ret)
        body["order"] = order_body(s, service.get(s, actor, order_id))
        return (201 if res.created else 200), body

    return await write(request, db, actor, key, work)
