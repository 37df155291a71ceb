"""/v1/programme"""

from __future__ import annotations

from fastapi import APIRouter

from loyalist.http import DB, Caller, problem_responses, read
from loyalist.order import service as orders
from loyalist.order.schemas import DryRunIn, DryRunOut
from loyalist.programme import service
from loyalist.programme.schemas import ActiveProgramme, ProgrammeVersions

router = APIRouter(prefix="/v1/programme", tags=["programme"])


@router.get(
    "",
    summary="The active programme document",
    response_model=ActiveProgramme,
    responses=problem_responses(409),
)
async def active_programme(db: DB, actor: Caller) -> ActiveProgramme:
    return await read(db, service.active_view)


@router.get("/versions", summary="Every programme version", response_model=ProgrammeVersions)
async def versions(db: DB, actor: Caller) -> ProgrammeVersions:
    return await read(db, service.versions_view)


@router.post(
    "/dry-run",
    summary="What the rules would give a sample order (writes nothing)",
    response_model=DryRunOut,
    responses=problem_responses(404, 409),
)
async def dry_run(data: DryRunIn, db: DB, actor: Caller) -> DryRunOut:
    return await read(db, lambda s: orders.dry_run_view(s, actor, data))
