"""/v1/programme"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from loyalist.http import DB, Caller, read
from loyalist.order import service as orders
from loyalist.order.schemas import DryRunIn
from loyalist.programme import service

router = APIRouter(prefix="/v1/programme", tags=["programme"])


@router.get("", summary="The active programme document")
async def active_programme(db: DB, actor: Caller) -> dict[str, Any]:
    def fn(s: Session) -> dict[str, Any]:
        version, programme = service.active(s)
        return {"version": version, "document": service.as_document(programme)}

    result: dict[str, Any] = await read(db, fn)
    return result


@router.get("/versions", summary="Every programme version")
async def versions(db: DB, actor: Caller) -> dict[str, Any]:
    def fn(s: Session) -> dict[str, Any]:
        return {
            "items": [
                {
                    "version": v.version,
                    "checksum": v.checksum,
                    "created_by": v.created_by,
                    "note": v.note,
                    "created_at": v.created_at.isoformat(),
                }
                for v in service.list_versions(s)
            ]
        }

    result: dict[str, Any] = await read(db, fn)
    return result


@router.post("/dry-run", summary="What the rules would give a sample order (writes nothing)")
async def dry_run(data: DryRunIn, db: DB, actor: Caller) -> dict[str, Any]:
    def fn(s: Session) -> dict[str, Any]:
        version, res = orders.dry_run(s, actor, data)
        return {
            "programme_version": version,
            "points": res.points,
            "earnable_minor": res.earnable_minor,
            "breakdown": [
                {
                    "rule": b.rule,
                    "points": b.points,
                    "lines": list(b.lines),
                    "description": b.description,
                }
                for b in res.breakdown
            ],
            "line_points": {str(k): v for k, v in res.line_points.items()},
            # Each rule's / campaign's ``when:`` condition, clause by clause.
            "conditions": [
                {
                    "rule": c.rule,
                    "name": c.name,
                    "passed": c.passed,
                    "explanation": c.explanation.as_data(),
                }
                for c in res.conditions
            ],
        }

    result: dict[str, Any] = await read(db, fn)
    return result
