"""/v1/rewards and /v1/redemptions"""

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
    lean,
    problem_responses,
    read,
    write,
)
from loyalist.kit.pagination import page_request
from loyalist.reward import service
from loyalist.reward.schemas import (
    QuoteCreate,
    QuoteOut,
    RedemptionCancel,
    RedemptionCollect,
    RedemptionCollectByCode,
    RedemptionCreate,
    RedemptionOut,
    RedemptionPage,
    RewardCatalogue,
    RewardStockOut,
    StockTopUp,
)

router = APIRouter(tags=["rewards"], route_class=LeanRoute)


@router.get(
    "/v1/rewards",
    summary="The active rewards catalogue",
    response_model=RewardCatalogue,
)
async def list_rewards(db: DB, actor: Caller) -> RewardCatalogue:
    return await read(db, service.catalogue_view)


@router.post(
    "/v1/redemptions",
    status_code=201,
    summary="Redeem a reward with points",
    response_model=RedemptionOut,
    responses=problem_responses(404, 409),
)
@checks_key_in_unit
@lean
async def redeem(
    data: RedemptionCreate, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return await write(
        request, db, actor, key, lambda s: (201, service.redeem_json(s, actor, data))
    )


@router.get(
    "/v1/redemptions",
    summary="Redemptions in scope, newest first",
    response_model=RedemptionPage,
)
async def list_redemptions(
    db: DB,
    actor: Caller,
    member_id: MemberFilterId = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> RedemptionPage:
    page = page_request(cursor, limit)
    return await read(
        db,
        lambda s: service.redemptions_view(
            s, actor, member_id=member_id, after=page.after, limit=page.limit
        ),
    )


@router.get(
    "/v1/redemptions/{redemption_id:int}",  # digits only: not /v1/redemptions/collect
    summary="One redemption",
    response_model=RedemptionOut,
    responses=problem_responses(404),
)
async def get_redemption(redemption_id: RecordId, db: DB, actor: Caller) -> RedemptionOut:
    return await read(db, lambda s: service.redemption_view(s, actor, redemption_id))


@router.post(
    "/v1/redemptions/{redemption_id}/cancel",
    summary="Cancel; points go back to their lots",
    response_model=RedemptionOut,
    responses=problem_responses(404, 409),
)
async def cancel(
    redemption_id: RecordId,
    request: Request,
    db: DB,
    actor: Caller,
    data: RedemptionCancel | None = None,
    key: IdemKey = None,
) -> JSONResponse:
    return await write(
        request,
        db,
        actor,
        key,
        lambda s: (
            200,
            service.cancel_view(s, actor, redemption_id, data or RedemptionCancel()),
        ),
    )


@router.post(
    "/v1/redemptions/{redemption_id}/collect",
    response_model=RedemptionOut,
    summary="Hand the reward over: once; again → 409 redemption_already_collected",
    responses=problem_responses(403, 404, 409),
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
    return await write(
        request,
        db,
        actor,
        key,
        lambda s: (200, service.collect_view(s, actor, redemption_id=redemption_id, store=store)),
    )


@router.post(
    "/v1/redemptions/collect",
    response_model=RedemptionOut,
    summary="Collect by the code the member shows (the QR holds the same code)",
    responses=problem_responses(403, 404, 409),
)
async def collect_by_code(
    data: RedemptionCollectByCode, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return await write(
        request,
        db,
        actor,
        key,
        lambda s: (200, service.collect_view(s, actor, code=data.code, store=data.store)),
    )


@router.post(
    "/v1/rewards/{reward_code}/stock",
    response_model=RewardStockOut,
    summary="Top up a reward's stock (no new programme version; audited)",
    responses=problem_responses(403, 404),
)
async def top_up(
    reward_code: str, data: StockTopUp, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return await write(
        request,
        db,
        actor,
        key,
        lambda s: (200, service.top_up_view(s, actor, reward_code, data.quantity)),
    )


@router.post(
    "/v1/rewards/{reward_code}/quote",
    response_model=QuoteOut,
    summary="The member's price for the reward (dynamic pricing), held for the quote period",
    responses=problem_responses(404),
)
async def quote(
    reward_code: str,
    data: QuoteCreate,
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
        lambda s: (200, service.quote_view(s, actor, reward_code, data)),
    )
