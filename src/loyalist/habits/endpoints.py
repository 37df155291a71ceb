"""/v1/members/{id}/checkins, /v1/members/{id}/activities, /v1/members/{id}/habits and
/v1/leaderboards."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loyalist.habits import service
from loyalist.habits.schemas import (
    ActivityIn,
    ActivityOut,
    CheckinIn,
    CheckinOut,
    HabitsOut,
    LeaderboardArchive,
    LeaderboardList,
    LeaderboardOut,
)
from loyalist.http import DB, Caller, IdemKey, MemberId, problem_responses, read, write

router = APIRouter(tags=["habits"])
Locale = Annotated[Literal["zh_CN", "en"], Query(description="language of names")]


@router.post(
    "/v1/members/{member_id}/checkins",
    status_code=201,
    summary="Check in for today (the programme's local day); again today → 409",
    response_model=CheckinOut,
    responses=problem_responses(404, 409),
)
async def check_in(
    member_id: MemberId,
    request: Request,
    db: DB,
    actor: Caller,
    data: CheckinIn | None = None,
    key: IdemKey = None,
) -> JSONResponse:
    body = data or CheckinIn()
    return await write(
        request, db, actor, key, lambda s: (201, service.check_in_view(s, actor, member_id, body))
    )


@router.post(
    "/v1/members/{member_id}/activities",
    status_code=201,
    summary="Activity points (profile, birthday, review, survey, share); a repeat → 200",
    response_model=ActivityOut,
    responses={
        200: {"model": ActivityOut, "description": "This activity was recorded already"},
        **problem_responses(404, 409),
    },
)
async def record_activity(
    member_id: MemberId,
    data: ActivityIn,
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
        lambda s: service.record_activity_view(s, actor, member_id, data),
    )


@router.get(
    "/v1/members/{member_id}/habits",
    summary="Check-in streak, badges and challenge progress of a member",
    response_model=HabitsOut,
    responses=problem_responses(404),
)
async def habits(member_id: MemberId, db: DB, actor: Caller, locale: Locale = "en") -> HabitsOut:
    return await read(db, lambda s: service.habits_view(s, actor, member_id, locale))


@router.get(
    "/v1/leaderboards",
    summary="Every leaderboard's current period, standings and next reset",
    response_model=LeaderboardList,
)
async def leaderboards(db: DB, actor: Caller, locale: Locale = "en") -> LeaderboardList:
    return await read(db, lambda s: service.leaderboards_view(s, actor, locale))


@router.get(
    "/v1/leaderboards/{code}",
    summary="One leaderboard: the current period, or the period containing `period`",
    response_model=LeaderboardOut,
    responses=problem_responses(404),
)
async def leaderboard(
    code: str,
    db: DB,
    actor: Caller,
    period: dt.date | None = None,
    locale: Locale = "en",
) -> LeaderboardOut:
    return await read(db, lambda s: service.leaderboard_view(s, actor, code, period, locale))


@router.get(
    "/v1/leaderboards/{code}/archive",
    summary="Closed periods of a leaderboard, newest first, with their final standings",
    response_model=LeaderboardArchive,
    responses=problem_responses(404),
)
async def archive(code: str, db: DB, actor: Caller) -> LeaderboardArchive:
    return await read(db, lambda s: service.archive_view(s, actor, code))
