"""/v1/rewards and /v1/redemptions"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalist.http import (
    DB,
    Caller,
    IdemKey,
    MemberFilterId,
    RecordId,
    problem_responses,
    read,
    write,
)
from loyalist.kit.pagination import page_request
from loyalist.reward import service
from loyalist.reward.schemas import (
    RedemptionCancel,
    RedemptionCreate,
    RedemptionOut,
    RedemptionPage,
    RewardCatalogue,
)

router = APIRouter(tags=["rewards"])


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
async def redeem(
    data: RedemptionCreate, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return await write(
        request, db, actor, key, lambda s: (201, service.redeem_view(s, actor, data))
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
    "/v1/redemptions/{redemption_id}",
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
