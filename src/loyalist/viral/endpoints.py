"""/v1/campaigns, /v1/assists and /v1/groups: friend-assist (好友助力) and groups (拼团)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalist.http import DB, Caller, IdemKey, RecordId, problem_responses, read, write
from loyalist.viral import service
from loyalist.viral.schemas import (
    AssistOut,
    AssistStart,
    CampaignsOut,
    GroupJoin,
    GroupOpen,
    GroupOut,
    HelpIn,
)

router = APIRouter(prefix="/v1", tags=["viral"])


@router.get("/campaigns", response_model=CampaignsOut, summary="Assist and group campaigns")
async def campaigns(db: DB, actor: Caller) -> Any:
    return await read(db, lambda s: service.campaigns(s))


@router.post(
    "/assists",
    status_code=201,
    response_model=AssistOut,
    summary="Start a member's friend-assist in a campaign (once per campaign)",
    responses={
        200: {"model": AssistOut, "description": "Already started (still open)"},
        **problem_responses(404, 409, 422),
    },
)
async def start_assist(
    data: AssistStart, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, AssistOut]:
        started = service.start_assist_view(s, actor, data.member_id, data.campaign)
        return (201 if started.created else 200), started.assist

    return await write(request, db, actor, key, work)


@router.get(
    "/assists/{assist_id}",
    response_model=AssistOut,
    summary="An assist's live progress",
    responses=problem_responses(404),
)
async def get_assist(assist_id: RecordId, db: DB, actor: Caller) -> Any:
    return await read(db, lambda s: service.assist_view(s, actor, assist_id))


@router.post(
    "/assists/{assist_id}/helps",
    response_model=AssistOut,
    summary="A friend helps (once; never the starter)",
    responses=problem_responses(404, 409, 422),
)
async def help_assist(
    assist_id: RecordId, data: HelpIn, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, AssistOut]:
        return 200, service.help_view(s, actor, assist_id, data.member_id)

    return await write(request, db, actor, key, work)


@router.post(
    "/groups",
    status_code=201,
    response_model=GroupOut,
    summary="Open a group (拼团) with the member as leader",
    responses=problem_responses(404, 409, 422),
)
async def open_group(
    data: GroupOpen, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, GroupOut]:
        return 201, service.open_group_view(s, actor, data.member_id, data.campaign)

    return await write(request, db, actor, key, work)


@router.get(
    "/groups/{group_id}",
    response_model=GroupOut,
    summary="A group's members and state",
    responses=problem_responses(404),
)
async def get_group(group_id: RecordId, db: DB, actor: Caller) -> Any:
    return await read(db, lambda s: service.group_view(s, actor, group_id))


@router.post(
    "/groups/{group_id}/members",
    response_model=GroupOut,
    summary="Join a forming group (the member who fills it completes it)",
    responses=problem_responses(404, 409, 422),
)
async def join_group(
    group_id: RecordId,
    data: GroupJoin,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    def work(s: Any) -> tuple[int, GroupOut]:
        return 200, service.join_group_view(s, actor, group_id, data.member_id)

    return await write(request, db, actor, key, work)
