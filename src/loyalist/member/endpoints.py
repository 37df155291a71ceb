"""/v1/members"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from loyalist.access.permissions import may_see_phone
from loyalist.approval import service as approvals
from loyalist.approval.schemas import AdjustmentRequestOut
from loyalist.approval.service import request_body
from loyalist.errors import FieldError, ValidationFailed
from loyalist.http import (
    DB,
    Caller,
    FastJSONResponse,
    IdemKey,
    LeanRoute,
    MemberId,
    checks_key_in_unit,
    lean,
    problem_responses,
    read,
    read_checking_key,
    write,
)
from loyalist.kit.actor import Actor
from loyalist.kit.pagination import page_request
from loyalist.member import service
from loyalist.member.domain import mask_personal
from loyalist.member.schemas import (
    AdjustmentIn,
    ConsentIn,
    Consents,
    Identities,
    IdentityIn,
    LedgerEntryOut,
    LedgerPage,
    MemberCreate,
    MemberFilter,
    MemberPage,
    MemberProfile,
    MemberUpdate,
    Tags,
    TagsIn,
    TierHistory,
)

router = APIRouter(prefix="/v1/members", tags=["members"], route_class=LeanRoute)


def shown(actor: Actor, answer: BaseModel) -> BaseModel | dict[str, Any]:
    """``answer`` as ``actor`` may see it: personal data masked for a key without the
    personal-data permission (see docs/api.md)."""
    if may_see_phone(actor):
        return answer
    return dict(mask_personal(answer.model_dump(mode="json", by_alias=True)))


def shown_read(actor: Actor, answer: BaseModel) -> Any:
    """:func:`shown` for reads: a masked answer is sent as it is (masked values are not
    dates)."""
    out = shown(actor, answer)
    return out if isinstance(out, BaseModel) else JSONResponse(out)


@router.post(
    "",
    status_code=201,
    summary="Join a member (idempotent by phone / external id)",
    response_model=MemberProfile,
    responses={
        200: {"model": MemberProfile, "description": "The member already existed"},
        **problem_responses(404, 409),
    },
)
async def create_member(
    data: MemberCreate, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Any) -> tuple[int, BaseModel | dict[str, Any]]:
        created, joined, summary = service.join(s, actor, data)
        if summary is not None:
            # Chains: the brand's member, joined elsewhere. The caller learns who they are
            # (as an exact identity lookup would tell); the 360 view stays with their store.
            return 200, shown(actor, summary)
        assert joined is not None
        return (201 if created else 200), shown(actor, joined)

    return await write(request, db, actor, key, work)


@router.get(
    "",
    summary="List and search members (cursor pagination)",
    response_model=MemberPage,
    responses=problem_responses(404),
)
async def list_members(
    db: DB,
    actor: Caller,
    phone: str | None = None,
    tier: str | None = None,
    tag: str | None = None,
    store: str | None = None,
    q: Annotated[str | None, Query(max_length=64)] = None,
    cursor: str | None = None,
    limit: Annotated[int | None, Query()] = None,
    email: Annotated[str | None, Query(max_length=254)] = None,
    identity_type: Annotated[
        Literal["phone", "email", "app_id", "wechat_openid", "pos_card"] | None,
        Query(description="with identity: find the member holding this exact identity"),
    ] = None,
    identity: Annotated[str | None, Query(min_length=1, max_length=254)] = None,
) -> Any:
    page = page_request(cursor, limit)
    if (identity_type is None) != (identity is None):
        raise ValidationFailed(
            "identity_type and identity go together.",
            [FieldError("identity_type" if identity_type is None else "identity", "required")],
        )
    f = MemberFilter(
        phone=phone,
        tier=tier,
        tag=tag,
        store=store,
        q=q,
        email=email,
        identity_type=identity_type,
        identity=identity,
    )
    result = await read(
        db, lambda s: service.search_page(s, actor, f, after=page.after, limit=page.limit)
    )
    return shown_read(actor, result)


@router.get(
    "/{member_id}",
    summary="A member with balance, tier and progress",
    response_model=MemberProfile,
    responses=problem_responses(404, 409),
)
@checks_key_in_unit
@lean
async def get_member(member_id: MemberId, db: DB, actor: Caller) -> Response:
    answer = await read_checking_key(
        db, lambda s, owed: service.profile_json(s, actor, member_id, owed)
    )
    if may_see_phone(actor):
        # The answer is a MemberProfile's JSON form already: encoded once, not validated
        # against the response model (speed, issue 11).
        return FastJSONResponse(answer)
    # masked for a key without the personal-data permission, as shown_read sends it
    return JSONResponse(dict(mask_personal(answer)))


@router.patch(
    "/{member_id}",
    summary="Update a member's profile",
    response_model=MemberProfile,
    responses=problem_responses(404, 409),
)
async def update_member(
    member_id: MemberId,
    data: MemberUpdate,
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
        lambda s: (200, shown(actor, service.update_view(s, actor, member_id, data))),
    )


@router.post(
    "/{member_id}/identities",
    summary="Link another identity to the member",
    response_model=Identities,
    responses=problem_responses(404, 409),
)
async def add_identity(
    member_id: MemberId,
    data: IdentityIn,
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
        lambda s: (
            200,
            shown(actor, service.add_identity_view(s, actor, member_id, data.kind, data.value)),
        ),
    )


@router.post(
    "/{member_id}/tags",
    summary="Add and remove tags",
    response_model=Tags,
    responses=problem_responses(404),
)
async def change_tags(
    member_id: MemberId,
    data: TagsIn,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    return await write(
        request, db, actor, key, lambda s: (200, service.tags_view(s, actor, member_id, data))
    )


@router.put(
    "/{member_id}/consents/{channel}",
    summary="Record marketing consent for a channel",
    response_model=Consents,
    responses=problem_responses(404),
)
async def set_consent(
    member_id: MemberId,
    channel: Annotated[str, Path(pattern="^(sms|email|push|wechat)$")],
    data: ConsentIn,
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
        lambda s: (200, service.consent_view(s, actor, member_id, channel, data)),
    )


@router.get(
    "/{member_id}/ledger",
    summary="The member's ledger, newest first",
    response_model=LedgerPage,
    responses=problem_responses(404),
)
async def member_ledger(
    member_id: MemberId, db: DB, actor: Caller, cursor: str | None = None, limit: int | None = None
) -> LedgerPage:
    page = page_request(cursor, limit)
    return await read(
        db,
        lambda s: service.ledger_view(s, actor, member_id, after=page.after, limit=page.limit),
    )


@router.post(
    "/{member_id}/adjustments",
    status_code=201,
    summary="Staff points correction: 201 applied, or 202 waiting for a second person",
    response_model=LedgerEntryOut,
    responses={
        202: {"model": AdjustmentRequestOut, "description": "Pending approval"},
        **problem_responses(403, 404, 409),
    },
)
async def adjust(
    member_id: MemberId,
    data: AdjustmentIn,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    rules = approvals.policy(request.app.state.settings)

    def work(s: Any) -> tuple[int, BaseModel | dict[str, Any]]:
        out = approvals.adjust(s, actor, member_id, data.points, data.reason, rules=rules)
        if out.request is not None:
            return 202, request_body(out.request)
        assert out.entry is not None
        return 201, service.entry_out(out.entry)

    return await write(request, db, actor, key, work)


@router.get(
    "/{member_id}/tier-history",
    summary="Every tier change of the member",
    response_model=TierHistory,
    responses=problem_responses(404),
)
async def tier_history(member_id: MemberId, db: DB, actor: Caller) -> TierHistory:
    return await read(db, lambda s: service.tier_history_view(s, actor, member_id))
