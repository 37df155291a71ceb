"""/v1/referrals and /v1/members/{id}/referral: codes, claims, identifiers, reviews, stats."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loyalist.http import (
    DB,
    Caller,
    IdemKey,
    MemberFilterId,
    MemberId,
    RecordId,
    problem_responses,
    read,
    write,
)
from loyalist.kit.pagination import page_request
from loyalist.referral import service
from loyalist.referral.schemas import (
    ClaimIn,
    CodeOut,
    DecisionIn,
    LeadersOut,
    ReferralOut,
    ReferralPage,
    SignalIn,
    SignalOut,
    StatsOut,
)

router = APIRouter(prefix="/v1", tags=["referrals"])

Status = Literal["attributed", "on_hold", "qualified", "rewarded", "rejected", "clawed_back"]


@router.get(
    "/members/{member_id}/referral",
    response_model=CodeOut,
    summary="A member's referral code, share link and QR code",
    responses=problem_responses(404),
)
async def member_code(member_id: MemberId, request: Request, db: DB, actor: Caller) -> Any:
    base = str(request.base_url)
    return await read(db, lambda s: service.code_view(s, actor, member_id, base))


@router.post(
    "/referrals",
    status_code=201,
    response_model=ReferralOut,
    summary="A member enters a friend's referral code after joining",
    responses={
        200: {"model": ReferralOut, "description": "Already attributed to this code"},
        **problem_responses(404, 409, 422),
    },
)
async def claim(
    data: ClaimIn, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, ReferralOut]:
        created, out = service.claim(s, actor, data.member_id, data.code)
        return (201 if created else 200), out

    return await write(request, db, actor, key, work)


@router.post(
    "/referrals/signals",
    response_model=SignalOut,
    summary="Record an identifier seen with a member (device, phone, address, payment token)",
    responses=problem_responses(404, 422),
)
async def signal(
    data: SignalIn, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, SignalOut]:
        return 200, service.record_signal(s, actor, data.member_id, data.kind, data.value)

    return await write(request, db, actor, key, work)


@router.get(
    "/referrals",
    response_model=ReferralPage,
    summary="Referrals in scope (cursor pagination), e.g. those on hold",
    responses=problem_responses(422),
)
async def list_referrals(
    db: DB,
    actor: Caller,
    status: Annotated[Status | None, Query()] = None,
    member_id: MemberFilterId = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Any:
    page = page_request(cursor, limit)
    f = service.Filter(status=status, member_id=member_id)
    return await read(db, lambda s: service.page(s, actor, f, after=page.after, limit=page.limit))


@router.get(
    "/referrals/stats",
    response_model=StatsOut,
    summary="Referral counts and conversion in scope",
)
async def referral_stats(db: DB, actor: Caller) -> Any:
    return await read(db, lambda s: service.stats_view(s, actor))


@router.get(
    "/referrals/leaders",
    response_model=LeadersOut,
    summary="A quarter's referral leaders",
    responses=problem_responses(422),
)
async def referral_leaders(
    db: DB, actor: Caller, period: Annotated[str, Query(pattern=r"^[0-9]{4}Q[1-4]$")]
) -> Any:
    return await read(
        db, lambda s: LeadersOut(period=period, items=service.leaders(s, actor, period))
    )


@router.get(
    "/referrals/{referral_id:int}",  # digits only: not /v1/referrals/signals, stats, leaders
    response_model=ReferralOut,
    summary="A referral with its rewards",
    responses=problem_responses(404),
)
async def get_referral(referral_id: RecordId, db: DB, actor: Caller) -> Any:
    return await read(db, lambda s: service.get_view(s, actor, referral_id))


@router.post(
    "/referrals/{referral_id}/decision",
    response_model=ReferralOut,
    summary="Approve or reject a referral on hold (audited)",
    responses=problem_responses(404, 409, 422),
)
async def decide(
    referral_id: RecordId,
    data: DecisionIn,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    def work(s: Any) -> tuple[int, ReferralOut]:
        return 200, service.decide(s, actor, referral_id, data.decision, data.note)

    return await write(request, db, actor, key, work)
