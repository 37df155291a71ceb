"""/v1/members"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from loyalist.http import (
    DB,
    Caller,
    IdemKey,
    MemberId,
    created_or_found,
    problem_responses,
    read,
    write,
)
from loyalist.kit.pagination import page_request
from loyalist.member import service
from loyalist.member.schemas import (
    AdjustmentIn,
    ConsentIn,
    Consents,
    Identities,
    IdentityIn,
    LedgerEntryOut,
    LedgerPage,
    MemberCreate,
    MemberFilter,
    MemberPage,
    MemberProfile,
    MemberUpdate,
    Tags,
    TagsIn,
    TierHistory,
)

router = APIRouter(prefix="/v1/members", tags=["members"])


@router.post(
    "",
    status_code=201,
    summary="Join a member (idempotent by phone / external id)",
    response_model=MemberProfile,
    responses={
        200: {"model": MemberProfile, "description": "The member already existed"},
        **problem_responses(404, 409),
    },
)
async def create_member(
    data: MemberCreate, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return await write(
        request, db, actor, key, lambda s: created_or_found(service.join(s, actor, data))
    )


@router.get(
    "",
    summary="List and search members (cursor pagination)",
    response_model=MemberPage,
    responses=problem_responses(404),
)
async def list_members(
    db: DB,
    actor: Caller,
    phone: str | None = None,
    tier: str | None = None,
    tag: str | None = None,
    store: str | None = None,
    q: Annotated[str | None, Query(max_length=64)] = None,
    cursor: str | None = None,
    limit: Annotated[int | None, Query()] = None,
) -> MemberPage:
    page = page_request(cursor, limit)
    f = MemberFilter(phone=phone, tier=tier, tag=tag, store=store, q=q)
    return await read(
        db, lambda s: service.search_page(s, actor, f, after=page.after, limit=page.limit)
    )


@router.get(
    "/{member_id}",
    summary="A member with balance, tier and progress",
    response_model=MemberProfile,
    responses=problem_responses(404, 409),
)
async def get_member(member_id: MemberId, db: DB, actor: Caller) -> MemberProfile:
    return await read(db, lambda s: service.profile_view(s, actor, member_id))


@router.patch(
    "/{member_id}",
    summary="Update a member's profile",
    response_model=MemberProfile,
    responses=problem_responses(404, 409),
)
async def update_member(
    member_id: MemberId,
    data: MemberUpdate,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    return await write(
        request, db, actor, key, lambda s: (200, service.update_view(s, actor, member_id, data))
    )


@router.post(
    "/{member_id}/identities",
    summary="Link another identity to the member",
    response_model=Identities,
    responses=problem_responses(404, 409),
)
async def add_identity(
    member_id: MemberId,
    data: IdentityIn,
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
        lambda s: (200, service.add_identity_view(s, actor, member_id, data.kind, data.value)),
    )


@router.post(
    "/{member_id}/tags",
    summary="Add and remove tags",
    response_model=Tags,
    responses=problem_responses(404),
)
async def change_tags(
    member_id: MemberId,
    data: TagsIn,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    return await write(
        request, db, actor, key, lambda s: (200, service.tags_view(s, actor, member_id, data))
    )


@router.put(
    "/{member_id}/consents/{channel}",
    summary="Record marketing consent for a channel",
    response_model=Consents,
    responses=problem_responses(404),
)
async def set_consent(
    member_id: MemberId,
    channel: Annotated[str, Path(pattern="^(sms|email|push|wechat)$")],
    data: ConsentIn,
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
        lambda s: (200, service.consent_view(s, actor, member_id, channel, data)),
    )


@router.get(
    "/{member_id}/ledger",
    summary="The member's ledger, newest first",
    response_model=LedgerPage,
    responses=problem_responses(404),
)
async def member_ledger(
    member_id: MemberId, db: DB, actor: Caller, cursor: str | None = None, limit: int | None = None
) -> LedgerPage:
    page = page_request(cursor, limit)
    return await read(
        db,
        lambda s: service.ledger_view(s, actor, member_id, after=page.after, limit=page.limit),
    )


@router.post(
    "/{member_id}/adjustments",
    status_code=201,
    summary="Staff points correction",
    response_model=LedgerEntryOut,
    responses=problem_responses(404, 409),
)
async def adjust(
    member_id: MemberId,
    data: AdjustmentIn,
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
            201,
            service.adjust_view(
                s, actor, member_id, data.points, data.reason, approved_by=data.approved_by
            ),
        ),
    )


@router.get(
    "/{member_id}/tier-history",
    summary="Every tier change of the member",
    response_model=TierHistory,
    responses=problem_responses(404),
)
async def tier_history(member_id: MemberId, db: DB, actor: Caller) -> TierHistory:
    return await read(db, lambda s: service.tier_history_view(s, actor, member_id))
