"""/v1/members/{id}/passes: buy (or renew) a paid membership pass, list, refund."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalist.http import DB, Caller, IdemKey, MemberId, RecordId, problem_responses, read, write
from loyalist.passes import service
from loyalist.passes.schemas import MemberPasses, PassBuy, PassOut

router = APIRouter(tags=["passes"])


@router.post(
    "/v1/members/{member_id}/passes",
    status_code=201,
    summary="Buy a pass (付费会员) for the member; while one runs, a renewal from its end",
    response_model=PassOut,
    responses={
        200: {"model": PassOut, "description": "This order's pass was sold already"},
        **problem_responses(404, 409, 422),
    },
)
async def buy_pass(
    member_id: MemberId,
    data: PassBuy,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    return await write(
        request, db, actor, key, lambda s: service.buy_view(s, actor, member_id, data)
    )


@router.get(
    "/v1/members/{member_id}/passes",
    summary="The member's passes: the term in force now, and every purchase",
    response_model=MemberPasses,
    responses=problem_responses(404),
)
async def member_passes(member_id: MemberId, db: DB, actor: Caller) -> MemberPasses:
    return await read(db, lambda s: service.member_view(s, actor, member_id), actor)


@router.post(
    "/v1/members/{member_id}/passes/{pass_id}/refund",
    summary="Refund a pass within its window: it ends now, its unused coupons are voided",
    response_model=PassOut,
    responses=problem_responses(404, 409),
)
async def refund_pass(
    member_id: MemberId,
    pass_id: RecordId,
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
        lambda s: (200, service.refund_view(s, actor, member_id, pass_id)),
    )
