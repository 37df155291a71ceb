"""GET /v1/members/{member_id}/recommendations"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from loyalist.http import DB, Caller, MemberId, problem_responses, read
from loyalist.recommend import service
from loyalist.recommend.schemas import RecommendationsOut

router = APIRouter(prefix="/v1/members", tags=["members"])


@router.get(
    "/{member_id}/recommendations",
    summary="Products and catalogue rewards the member is likely to want, with reasons",
    response_model=RecommendationsOut,
    responses=problem_responses(404),
)
async def recommendations(
    member_id: MemberId,
    db: DB,
    actor: Caller,
    limit: Annotated[int, Query(ge=1, le=20, description="at most this many of each kind")] = 5,
) -> RecommendationsOut:
    return await read(db, lambda s: service.view(s, actor, member_id, limit=limit))
