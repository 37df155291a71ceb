"""HTTP: merge preview, merges and their undo, duplicate candidates (issue 13 item 2).

A merged member's id keeps answering: every ``/v1/members/{id}…`` route acts on and
answers the survivor (its id in the body; docs/api.md, "Merged members")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from loyalist.http import DB, Caller, IdemKey, MemberId, RecordId, problem_responses, read, write
from loyalist.kit.db import MAX_INT4
from loyalist.merge import service
from loyalist.merge.schemas import CandidateList, CandidateOut, MergeIn, MergeOut, MergePreviewOut

router = APIRouter(tags=["merge"])


@router.get(
    "/v1/members/{member_id}/merge-preview",
    summary="Preview merging another member into this one (nothing is written)",
    response_model=MergePreviewOut,
    responses=problem_responses(404),
)
async def merge_preview(
    member_id: MemberId,
    db: DB,
    actor: Caller,
    merged_id: Annotated[int, Query(ge=1, le=MAX_INT4, description="the member to merge in")],
) -> Any:
    return await read(db, lambda s: service.preview_view(s, actor, member_id, merged_id), actor)


@router.post(
    "/v1/merges",
    status_code=201,
    summary="Merge two members: the merged member's id resolves to the survivor",
    response_model=MergeOut,
    responses=problem_responses(404, 409),
)
async def create_merge(
    data: MergeIn, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, BaseModel]:
        return 201, service.merge_out(service.merge(s, actor, data.survivor_id, data.merged_id))

    return await write(request, db, actor, key, work)


@router.get(
    "/v1/merges/{merge_id:int}",
    summary="A merge: who, when, what moved, until when it can be undone",
    response_model=MergeOut,
    responses=problem_responses(404),
)
async def get_merge(merge_id: RecordId, db: DB, actor: Caller) -> Any:
    return await read(db, lambda s: service.merge_out(service.get_merge(s, actor, merge_id)), actor)


@router.post(
    "/v1/merges/{merge_id:int}/undo",
    summary="Undo a merge (within the undo period, when nothing happened since)",
    response_model=MergeOut,
    responses=problem_responses(404, 409),
)
async def undo_merge(
    merge_id: RecordId, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, BaseModel]:
        return 200, service.merge_out(service.undo(s, actor, merge_id))

    return await write(request, db, actor, key, work)


@router.get(
    "/v1/duplicate-candidates",
    summary="Pairs of members that may be one person (found by the nightly job)",
    response_model=CandidateList,
    responses=problem_responses(),
)
async def list_candidates(
    db: DB,
    actor: Caller,
    status: Annotated[Literal["open", "merged", "dismissed"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    return await read(
        db,
        lambda s: CandidateList(
            items=[
                service.candidate_out(c)
                for c in service.candidates(s, actor, status=status, limit=limit)
            ]
        ),
        actor,
    )


@router.post(
    "/v1/duplicate-candidates/{candidate_id:int}/dismiss",
    summary="Not the same person: the pair is not proposed again",
    response_model=CandidateOut,
    responses=problem_responses(404, 409),
)
async def dismiss_candidate(
    candidate_id: RecordId, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, BaseModel]:
        return 200, service.candidate_out(service.dismiss(s, actor, candidate_id))

    return await write(request, db, actor, key, work)
