"""/v1/coupon-templates, /v1/coupon-batches, /v1/members/{id}/coupons, /v1/coupons/validate"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from loyalist.coupon import service
from loyalist.coupon.schemas import (
    BatchCodes,
    BatchCreate,
    BatchOut,
    CouponOut,
    CouponPage,
    IssueIn,
    TemplateCreate,
    TemplateOut,
    TemplatePage,
    ValidateIn,
    ValidateOut,
)
from loyalist.http import (
    DB,
    Caller,
    IdemKey,
    MemberId,
    RecordId,
    created_or_found,
    problem_responses,
    read,
    write,
)
from loyalist.kit.pagination import page_request

router = APIRouter(tags=["coupons"])

TemplateCode = Annotated[str, Path(min_length=1, max_length=64)]


@router.post(
    "/v1/coupon-templates",
    status_code=201,
    summary="Create a coupon template (the same one again: 200)",
    response_model=TemplateOut,
    responses={
        200: {"model": TemplateOut, "description": "The same template exists"},
        **problem_responses(409),
    },
)
async def create_template(
    data: TemplateCreate, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return await write(
        request,
        db,
        actor,
        key,
        lambda s: created_or_found(service.create_template(s, actor, data)),
    )


@router.get(
    "/v1/coupon-templates",
    summary="Coupon templates with their counters",
    response_model=TemplatePage,
)
async def list_templates(db: DB, actor: Caller) -> TemplatePage:
    return await read(db, lambda s: service.list_templates(s, actor))


@router.get(
    "/v1/coupon-templates/{code}",
    summary="A coupon template with its counters",
    response_model=TemplateOut,
    responses=problem_responses(404),
)
async def get_template(code: TemplateCode, db: DB, actor: Caller) -> TemplateOut:
    return await read(db, lambda s: service.template_view(s, actor, code))


@router.post(
    "/v1/coupon-batches",
    status_code=201,
    summary="Generate (a background job above 5,000) or import a batch of codes",
    response_model=BatchOut,
    responses={
        200: {"model": BatchOut, "description": "The same batch exists"},
        **problem_responses(404, 409),
    },
)
async def create_batch(
    data: BatchCreate, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    return await write(
        request, db, actor, key, lambda s: created_or_found(service.create_batch(s, actor, data))
    )


@router.get(
    "/v1/coupon-batches/{batch_id}",
    summary="A batch and its progress",
    response_model=BatchOut,
    responses=problem_responses(404),
)
async def get_batch(batch_id: RecordId, db: DB, actor: Caller) -> BatchOut:
    return await read(db, lambda s: service.batch_view(s, actor, batch_id))


@router.get(
    "/v1/coupon-batches/{batch_id}/codes",
    summary="The codes of a batch (headquarters only), for printing or export",
    response_model=BatchCodes,
    responses=problem_responses(404),
)
async def batch_codes(
    batch_id: RecordId, db: DB, actor: Caller, cursor: str | None = None, limit: int | None = None
) -> BatchCodes:
    page = page_request(cursor, limit, default=200)
    return await read(
        db,
        lambda s: service.batch_codes(s, actor, batch_id, after=page.after, limit=page.limit),
    )


@router.post(
    "/v1/members/{member_id}/coupons",
    status_code=201,
    summary="Issue a coupon to a member (once per reference)",
    response_model=CouponOut,
    responses={
        200: {"model": CouponOut, "description": "Already issued for this reference"},
        **problem_responses(404, 409),
    },
)
async def issue_coupon(
    member_id: MemberId,
    data: IssueIn,
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
        lambda s: created_or_found(service.issue_view(s, actor, member_id, data)),
    )


@router.get(
    "/v1/members/{member_id}/coupons",
    summary="A member's coupons: available, used, expired",
    response_model=CouponPage,
    responses=problem_responses(404),
)
async def member_coupons(member_id: MemberId, db: DB, actor: Caller) -> CouponPage:
    return await read(db, lambda s: service.member_coupons_view(s, actor, member_id))


@router.post(
    "/v1/coupons/validate",
    summary="Whether codes apply to a basket: per code valid or a reason, discount per line",
    response_model=ValidateOut,
    responses=problem_responses(404, 429),
)
async def validate(data: ValidateIn, db: DB, actor: Caller) -> ValidateOut:
    return await read(db, lambda s: service.validate(s, actor, data))
