"""/v1/members/{id}/consent-records, /message-authorisations and /messages (issue 14)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalist.http import DB, Caller, IdemKey, MemberId, problem_responses, read, write
from loyalist.messaging import service
from loyalist.messaging.schemas import (
    AuthorisationIn,
    AuthorisationOut,
    ConsentRecordIn,
    ConsentRecordOut,
    ConsentRecords,
    MessageList,
)

router = APIRouter(prefix="/v1/members", tags=["messages"])


@router.post(
    "/{member_id}/consent-records",
    summary="Record a consent choice (purpose, channel, text version, source)",
    status_code=201,
    response_model=ConsentRecordOut,
    responses=problem_responses(404),
)
async def record_consent(
    member_id: MemberId,
    data: ConsentRecordIn,
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
        lambda s: (201, service.record_consent_view(s, actor, member_id, data)),
    )


@router.get(
    "/{member_id}/consent-records",
    summary="The member's consent ledger, newest first",
    response_model=ConsentRecords,
    responses=problem_responses(404),
)
async def consent_records(member_id: MemberId, db: DB, actor: Caller) -> ConsentRecords:
    return await read(db, lambda s: service.consent_records_view(s, actor, member_id))


@router.post(
    "/{member_id}/message-authorisations",
    summary="The member accepted WeChat subscribe messages of a template (count times)",
    response_model=AuthorisationOut,
    responses=problem_responses(404),
)
async def grant_authorisation(
    member_id: MemberId,
    data: AuthorisationIn,
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
        lambda s: (200, service.grant_authorisation_view(s, actor, member_id, data)),
    )


@router.get(
    "/{member_id}/messages",
    summary="The member's messages, newest first, with status and provider receipts",
    response_model=MessageList,
    responses=problem_responses(404),
)
async def messages(member_id: MemberId, db: DB, actor: Caller) -> MessageList:
    return await read(db, lambda s: service.messages_view(s, actor, member_id))
