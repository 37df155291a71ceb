"""/v1/rewards and /v1/redemptions"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from loyalist.http import DB, Caller, IdemKey, MemberFilterId, RecordId, read, write
from loyalist.kit.pagination import encode_cursor, page_request
from loyalist.models import Redemption, Reward
from loyalist.reward import domain, service
from loyalist.reward.schemas import (
    RedemptionCancel,
    RedemptionCollect,
    RedemptionCollectByCode,
    RedemptionCreate,
    RedemptionOut,
    RewardStockOut,
    StockTopUp,
)

router = APIRouter(tags=["rewards"])


def reward_body(r: Reward) -> dict[str, Any]:
    return {
        "code": r.code,
        "name": r.name,
        "name_en": r.name_en,
        "kind": r.kind,
        "points": r.points,
        "cash_minor": r.cash_minor,
        "stock_remaining": r.stock_remaining,
        "per_member_limit": r.per_member_limit,
        "min_tier": r.min_tier,
        "valid_from": r.valid_from.isoformat() if r.valid_from else None,
        "valid_until": r.valid_until.isoformat() if r.valid_until else None,
        "image_url": r.image_url,
        "description": r.description,
    }


def redemption_body(r: Redemption, reward_code: str | None = None) -> dict[str, Any]:
    return {
        "id": r.id,
        "member_id": r.member_id,
        "reward": reward_code,
        "quantity": r.quantity,
        "points": r.points,
        "cash_minor": r.cash_minor,
        "currency": r.currency,
        "status": r.status,
        "state": service.state(r),
        "code": domain.format_code(r.code) or None,
        "expires_at": r.expires_at.isoformat() if r.expires_at else None,
        "collected_at": r.collected_at.isoformat() if r.collected_at else None,
        "entry_id": r.entry_id,
        "cancel_entry_id": r.cancel_entry_id,
        "created_at": r.created_at.isoformat(),
        "cancelled_at": r.cancelled_at.isoformat() if r.cancelled_at else None,
    }


def _code(s: Session, reward_id: int) -> str | None:
    row = s.get(Reward, reward_id)
    return row.code if row else None


@router.get("/v1/rewards", summary="The active rewards catalogue")
async def list_rewards(db: DB, actor: Caller) -> dict[str, Any]:
    result: dict[str, Any] = await read(
        db, lambda s: {"items": [reward_body(r) for r in service.catalogue(s)]}
    )
    return result


@router.post("/v1/redemptions", status_code=201, summary="Redeem a reward with points")
async def redeem(
    data: RedemptionCreate, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Session) -> tuple[int, dict[str, Any]]:
        r = service.redeem(s, actor, data)
        return 201, redemption_body(r, data.reward)

    return await write(request, db, actor, key, work)


@router.get("/v1/redemptions", summary="Redemptions in scope, newest first")
async def list_redemptions(
    db: DB,
    actor: Caller,
    member_id: MemberFilterId = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    page = page_request(cursor, limit)

    def fn(s: Session) -> dict[str, Any]:
        rows = service.list_redemptions(
            s, actor, member_id=member_id, after=page.after, limit=page.limit
        )
        nxt = encode_cursor(rows[-1].id) if len(rows) == page.limit else None
        return {
            "items": [redemption_body(r, _code(s, r.reward_id)) for r in rows],
            "next_cursor": nxt,
        }

    result: dict[str, Any] = await read(db, fn)
    return result


@router.get("/v1/redemptions/{redemption_id}", summary="One redemption")
async def get_redemption(redemption_id: RecordId, db: DB, actor: Caller) -> dict[str, Any]:
    def fn(s: Session) -> dict[str, Any]:
        r = service.get(s, actor, redemption_id)
        return redemption_body(r, _code(s, r.reward_id))

    result: dict[str, Any] = await read(db, fn)
    return result


@router.post(
    "/v1/redemptions/{redemption_id}/cancel", summary="Cancel; points go back to their lots"
)
async def cancel(
    redemption_id: RecordId,
    request: Request,
    db: DB,
    actor: Caller,
    data: RedemptionCancel | None = None,
    key: IdemKey = None,
) -> JSONResponse:
    def work(s: Session) -> tuple[int, dict[str, Any]]:
        r = service.cancel(s, actor, redemption_id, data or RedemptionCancel())
        return 200, redemption_body(r, _code(s, r.reward_id))

    return await write(request, db, actor, key, work)


@router.post(
    "/v1/redemptions/{redemption_id}/collect",
    response_model=RedemptionOut,
    summary="Hand the reward over: once; again → 409 redemption_already_collected",
)
async def collect(
    redemption_id: RecordId,
    request: Request,
    db: DB,
    actor: Caller,
    data: RedemptionCollect | None = None,
    key: IdemKey = None,
) -> JSONResponse:
    store = data.store if data else None

    def work(s: Session) -> tuple[int, dict[str, Any]]:
        r = service.collect(s, actor, redemption_id=redemption_id, store=store)
        return 200, redemption_body(r, _code(s, r.reward_id))

    return await write(request, db, actor, key, work)


@router.post(
    "/v1/redemptions/collect",
    response_model=RedemptionOut,
    summary="Collect by the code the member shows (the QR holds the same code)",
)
async def collect_by_code(
    data: RedemptionCollectByCode, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Session) -> tuple[int, dict[str, Any]]:
        r = service.collect(s, actor, code=data.code, store=data.store)
        return 200, redemption_body(r, _code(s, r.reward_id))

    return await write(request, db, actor, key, work)


@router.post(
    "/v1/rewards/{reward_code}/stock",
    response_model=RewardStockOut,
    summary="Top up a reward's stock (no new programme version; audited)",
)
async def top_up(
    reward_code: str, data: StockTopUp, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Session) -> tuple[int, dict[str, Any]]:
        r = service.top_up(s, actor, reward_code, data.quantity)
        return 200, {
            "code": r.code,
            "stock_total": r.stock_total,
            "stock_remaining": r.stock_remaining,
            "stock_added": r.stock_added,
        }

    return await write(request, db, actor, key, work)
