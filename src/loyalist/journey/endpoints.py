"""/v1/journeys: journeys, their funnels, dry runs, pause/resume, runs and experiments."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
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
from loyalist.journey import service
from loyalist.journey.schemas import (
    DryRunIn,
    DryRunOut,
    FunnelOut,
    JourneyDetail,
    JourneyList,
    JourneyPut,
    ReadoutOut,
    RunDetail,
    RunPage,
)
from loyalist.kit.pagination import page_request

router = APIRouter(prefix="/v1/journeys", tags=["journeys"])
runs_router = APIRouter(prefix="/v1/journey-runs", tags=["journeys"])
Key = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")]
State = Literal["active", "completed", "exited", "holdout"]


@router.get("", response_model=JourneyList, summary="Every journey, its status and trigger")
async def list_journeys(db: DB, actor: Caller) -> JourneyList:
    return await read(db, lambda s: service.list_view(s, actor))


@router.get(
    "/{key}",
    response_model=JourneyDetail,
    summary="A journey: its document, steps as a graph, and its funnel",
    responses=problem_responses(404),
)
async def get_journey(key: Key, db: DB, actor: Caller) -> JourneyDetail:
    return await read(db, lambda s: service.detail_view(s, actor, key))


@router.put(
    "/{key}",
    response_model=JourneyDetail,
    summary="Publish a journey (the next version of the journeys document)",
    responses=problem_responses(409),
)
async def put_journey(
    key: Key, data: JourneyPut, request: Request, db: DB, actor: Caller, idem: IdemKey = None
) -> JSONResponse:
    return await write(request, db, actor, idem, lambda s: service.put_view(s, actor, key, data))


@router.post(
    "/{key}/pause",
    response_model=JourneyDetail,
    summary="Pause: nobody enters and no run moves until resumed",
    responses=problem_responses(404, 409),
)
async def pause(
    key: Key, request: Request, db: DB, actor: Caller, idem: IdemKey = None
) -> JSONResponse:
    return await write(request, db, actor, idem, lambda s: (200, service.pause_view(s, actor, key)))


@router.post(
    "/{key}/resume",
    response_model=JourneyDetail,
    summary="Resume; steps overdue beyond the grace period are skipped, not sent late",
    responses=problem_responses(404, 409),
)
async def resume(
    key: Key, request: Request, db: DB, actor: Caller, idem: IdemKey = None
) -> JSONResponse:
    return await write(
        request, db, actor, idem, lambda s: (200, service.resume_view(s, actor, key))
    )


@router.post(
    "/{key}/dry-run",
    response_model=DryRunOut,
    summary="The path a member would take and why (writes nothing)",
    responses=problem_responses(404),
)
async def dry_run(key: Key, data: DryRunIn, db: DB, actor: Caller) -> DryRunOut:
    return await read(db, lambda s: service.dry_run_view(s, actor, key, data))


@router.get(
    "/{key}/funnel",
    response_model=FunnelOut,
    summary="Per step: runs that passed it (by outcome) and runs waiting there",
    responses=problem_responses(404),
)
async def funnel(key: Key, db: DB, actor: Caller) -> FunnelOut:
    return await read(db, lambda s: service.funnel_view(s, actor, key))


@router.get(
    "/{key}/runs",
    response_model=RunPage,
    summary="The journey's runs in scope, oldest first",
    responses=problem_responses(404),
)
async def list_runs(
    key: Key,
    db: DB,
    actor: Caller,
    member_id: MemberFilterId = None,
    state: Annotated[State | None, Query()] = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> RunPage:
    page = page_request(cursor, limit)
    return await read(
        db,
        lambda s: service.runs_view(
            s, actor, key, member_id=member_id, state=state, after=page.after, limit=page.limit
        ),
    )


@router.get(
    "/{key}/experiments/{experiment}",
    response_model=ReadoutOut,
    summary="An experiment's readout: per variant, difference to control, SRM check",
    responses=problem_responses(404),
)
async def experiment(key: Key, experiment: Key, db: DB, actor: Caller) -> ReadoutOut:
    return await read(db, lambda s: service.readout_view(s, actor, key, experiment))


@runs_router.get(
    "/{run_id}",
    response_model=RunDetail,
    summary="A run and every step it passed",
    responses=problem_responses(404),
)
async def get_run(run_id: RecordId, db: DB, actor: Caller) -> RunDetail:
    return await read(db, lambda s: service.run_view(s, actor, run_id))
