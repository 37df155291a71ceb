"""/v1/fraud: the review queue of held points, frozen members, the backtest of a rule."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loyalist.fraud import service
from loyalist.fraud.schemas import (
    BacktestOut,
    DecisionIn,
    FreezeIn,
    FreezeOut,
    ReviewList,
    ReviewOut,
)
from loyalist.http import DB, Caller, IdemKey, MemberId, RecordId, problem_responses, read, write

router = APIRouter(prefix="/v1/fraud", tags=["fraud"])


@router.get(
    "/reviews",
    response_model=ReviewList,
    summary="The review queue: points held by fraud rules (oldest first)",
    responses=problem_responses(403, 422),
)
async def list_reviews(
    db: DB,
    actor: Caller,
    status: Annotated[str, Query(pattern="^(pending|approved|rejected)$")] = "pending",
) -> ReviewList:
    result: ReviewList = await read(db, lambda s: service.reviews_view(s, actor, status))
    return result


@router.post(
    "/reviews/{review_id}/decision",
    response_model=ReviewOut,
    summary="Approve (points become available) or reject (points reversed) held points",
    responses=problem_responses(403, 404, 409, 422),
)
async def decide(
    review_id: RecordId,
    data: DecisionIn,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    def work(s: Any) -> tuple[int, ReviewOut]:
        return 200, service.decide_view(s, actor, review_id, data.decision, data.note)

    return await write(request, db, actor, key, work)


@router.get(
    "/frozen/{member_id}",
    response_model=FreezeOut,
    summary="Whether a member is frozen",
    responses=problem_responses(403, 404),
)
async def frozen(member_id: MemberId, db: DB, actor: Caller) -> FreezeOut:
    result: FreezeOut = await read(db, lambda s: service.frozen_view(s, actor, member_id))
    return result


@router.put(
    "/frozen/{member_id}",
    response_model=FreezeOut,
    summary="Freeze a member: redeeming and paying with points are refused (audited)",
    responses=problem_responses(403, 404, 422),
)
async def freeze(
    member_id: MemberId,
    data: FreezeIn,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    def work(s: Any) -> tuple[int, FreezeOut]:
        return 200, service.freeze_view(s, actor, member_id, data.reason)

    return await write(request, db, actor, key, work)


@router.delete(
    "/frozen/{member_id}",
    response_model=FreezeOut,
    summary="Lift a member's freeze (audited)",
    responses=problem_responses(403, 404),
)
async def unfreeze(
    member_id: MemberId, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, FreezeOut]:
        return 200, service.unfreeze_view(s, actor, member_id)

    return await write(request, db, actor, key, work)


@router.get(
    "/backtest",
    response_model=BacktestOut,
    summary="Replay the last days of checked traffic through a rule of the fraud document",
    responses=problem_responses(403, 422),
)
async def backtest(
    db: DB,
    actor: Caller,
    rule: Annotated[str, Query(min_length=1, max_length=64)],
    days: Annotated[int, Query(ge=1, le=90)] = 90,
) -> BacktestOut:
    result: BacktestOut = await read(db, lambda s: service.backtest_view(s, actor, rule, days))
    return result
