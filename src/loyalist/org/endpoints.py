"""/v1/org"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from loyalist.http import DB, Caller, read
from loyalist.org import service

router = APIRouter(prefix="/v1/org", tags=["organisation"])


@router.get("/units", summary="The organisation units in scope")
async def units(db: DB, actor: Caller) -> dict[str, Any]:
    def fn(s: Session) -> dict[str, Any]:
        return {
            "items": [
                {
                    "code": u.code,
                    "name": u.name,
                    "kind": u.kind,
                    "parent_id": u.parent_id,
                    "id": u.id,
                }
                for u in service.list_units(s, actor)
            ]
        }

    result: dict[str, Any] = await read(db, fn)
    return result
