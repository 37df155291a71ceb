"""/v1/org"""

from __future__ import annotations

from fastapi import APIRouter

from loyalist.http import DB, Caller, read
from loyalist.org import service
from loyalist.org.schemas import Units

router = APIRouter(prefix="/v1/org", tags=["organisation"])


@router.get("/units", summary="The organisation units in scope", response_model=Units)
async def units(db: DB, actor: Caller) -> Units:
    return await read(db, lambda s: service.units_view(s, actor))
