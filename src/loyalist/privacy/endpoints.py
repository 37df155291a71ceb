"""HTTP: a member's data export and erasure (permission ``privacy.manage``)."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from loyalist.http import DB, Caller, IdemKey, MemberId, problem_responses, read, write
from loyalist.privacy import service
from loyalist.privacy.schemas import MemberErasedOut, MemberExportOut

router = APIRouter(prefix="/v1/members", tags=["privacy"])


@router.get(
    "/{member_id}/export",
    summary="Export everything held about a member (zip of JSON and CSV, with a manifest)",
    response_model=MemberExportOut,
    responses=problem_responses(404),
)
async def export_member(member_id: MemberId, db: DB, actor: Caller) -> Any:
    def work(s: Any) -> MemberExportOut:
        e = service.export(s, actor, member_id)
        return MemberExportOut(
            member_id=member_id,
            filename=e.filename,
            manifest=e.manifest,
            zip_base64=base64.b64encode(e.data).decode(),
        )

    return await read(db, work, actor)


@router.post(
    "/{member_id}/erase",
    summary="Erase a member's personal data (right to be forgotten); figures stay",
    response_model=MemberErasedOut,
    responses=problem_responses(404),
)
async def erase_member(
    member_id: MemberId, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, BaseModel]:
        m = service.erase(s, actor, member_id)
        assert m.erased_at is not None
        return 200, MemberErasedOut(member_id=m.id, member_no=m.member_no, erased_at=m.erased_at)

    return await write(request, db, actor, key, work)
