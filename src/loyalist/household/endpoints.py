"""/v1/households: a main member's household, invitations, permissions, leaving."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loyalist.household import service
from loyalist.household.schemas import (
    HouseholdCreate,
    HouseholdOut,
    HouseholdPage,
    InvitationAnswer,
    InvitationCreate,
    InvitationOut,
    MemberHouseholdOut,
    PermissionIn,
)
from loyalist.http import (
    DB,
    Caller,
    IdemKey,
    MemberFilterId,
    MemberId,
    RecordId,
    created_or_found,
    problem_responses,
    read,
    write,
)
from loyalist.kit.pagination import page_request

router = APIRouter(prefix="/v1", tags=["households"])


@router.post(
    "/households",
    status_code=201,
    response_model=HouseholdOut,
    summary="Make a member the main member of a household (their points become its pool)",
    responses={
        200: {"model": HouseholdOut, "description": "The member's household already exists"},
        **problem_responses(404, 409, 422),
    },
)
async def create_household(
    data: HouseholdCreate, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return await write(
        request,
        db,
        actor,
        key,
        lambda s: created_or_found(service.create(s, actor, data.member_id)),
    )


@router.get(
    "/households",
    response_model=HouseholdPage,
    summary="Households in scope, newest first (cursor pagination)",
    responses=problem_responses(422),
)
async def list_households(
    db: DB,
    actor: Caller,
    status: Annotated[Literal["active", "dissolved"] | None, Query()] = None,
    member_id: MemberFilterId = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Any:
    page = page_request(cursor, limit)
    f = service.Filter(status=status, member_id=member_id)
    return await read(db, lambda s: service.page(s, actor, f, after=page.after, limit=page.limit))


@router.get(
    "/households/{household_id:int}",
    response_model=HouseholdOut,
    summary="A household: its pool, members (former ones too) with what each earned and "
    "spent, invitations",
    responses=problem_responses(404),
)
async def get_household(household_id: RecordId, db: DB, actor: Caller) -> Any:
    return await read(db, lambda s: service.get_view(s, actor, household_id))


@router.post(
    "/households/{household_id:int}/invitations",
    status_code=201,
    response_model=InvitationOut,
    summary="Invite a member by member id or phone (up to the programme's max_members)",
    responses={
        200: {"model": InvitationOut, "description": "An open invitation of this member exists"},
        **problem_responses(404, 409, 422),
    },
)
async def invite(
    household_id: RecordId,
    data: InvitationCreate,
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
        lambda s: created_or_found(service.invite(s, actor, household_id, data)),
    )


@router.post(
    "/households/invitations/{invitation_id:int}/accept",
    response_model=InvitationOut,
    summary="The invited member accepts: they draw on the pool from now on",
    description=(
        "A member whose own account holds points must send `transfer_points: true` (their "
        "consent to move those points into the pool, where they stay on leaving); without "
        "it the answer is 409 `household_points_to_transfer` with the points."
    ),
    responses=problem_responses(404, 409, 422),
)
async def accept(
    invitation_id: RecordId,
    request: Request,
    db: DB,
    actor: Caller,
    data: InvitationAnswer | None = None,
    key: IdemKey = None,
) -> JSONResponse:
    transfer = data.transfer_points if data is not None else False
    return await write(
        request,
        db,
        actor,
        key,
        lambda s: (200, service.accept(s, actor, invitation_id, transfer_points=transfer)),
    )


@router.post(
    "/households/{household_id:int}/invitations/{invitation_id:int}/withdraw",
    response_model=InvitationOut,
    summary="The main member withdraws a pending invitation (it becomes cancelled)",
    responses=problem_responses(404, 409),
)
async def withdraw(
    household_id: RecordId,
    invitation_id: RecordId,
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
        lambda s: (200, service.withdraw(s, actor, household_id, invitation_id)),
    )


@router.post(
    "/households/invitations/{invitation_id:int}/decline",
    response_model=InvitationOut,
    summary="The invited member declines",
    responses=problem_responses(404, 409),
)
async def decline(
    invitation_id: RecordId, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return await write(
        request, db, actor, key, lambda s: (200, service.decline(s, actor, invitation_id))
    )


@router.put(
    "/households/{household_id:int}/members/{member_id:int}/permission",
    response_model=HouseholdOut,
    summary="Grant or withdraw a member's permission to spend the pool's points",
    responses=problem_responses(404, 409, 422),
)
async def set_permission(
    household_id: RecordId,
    member_id: MemberId,
    data: PermissionIn,
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
            service.set_permission(s, actor, household_id, member_id, data.can_spend),
        ),
    )


@router.post(
    "/households/{household_id:int}/members/{member_id:int}/leave",
    response_model=HouseholdOut,
    summary="A member leaves the household (no points move; the history stays)",
    responses=problem_responses(404, 409),
)
async def leave(
    household_id: RecordId,
    member_id: MemberId,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    return await write(
        request, db, actor, key, lambda s: (200, service.leave(s, actor, household_id, member_id))
    )


@router.post(
    "/households/{household_id:int}/dissolve",
    response_model=HouseholdOut,
    summary="Dissolve the household: every member leaves, the pool stays the main member's",
    responses=problem_responses(404, 409),
)
async def dissolve(
    household_id: RecordId, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return await write(
        request, db, actor, key, lambda s: (200, service.dissolve(s, actor, household_id))
    )


@router.get(
    "/members/{member_id}/household",
    response_model=MemberHouseholdOut,
    summary="A member's household now and the invitations waiting for their answer",
    responses=problem_responses(404),
)
async def member_household(member_id: MemberId, db: DB, actor: Caller) -> Any:
    return await read(db, lambda s: service.member_view(s, actor, member_id))
