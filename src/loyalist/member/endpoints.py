"""/v1/members"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from loyalist.http import DB, Caller, IdemKey, MemberId, read, write
from loyalist.kit.pagination import encode_cursor, page_request
from loyalist.member import service
from loyalist.member.schemas import (
    ConsentIn,
    IdentityIn,
    MemberCreate,
    MemberFilter,
    MemberUpdate,
    TagsIn,
)
from loyalist.models import LedgerEntry, Member

router = APIRouter(prefix="/v1/members", tags=["members"])


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    points: int = Field(ge=-10_000_000, le=10_000_000)
    reason: str = Field(min_length=3, max_length=500)
    approved_by: str | None = Field(default=None, max_length=128)


def member_summary(m: Member) -> dict[str, Any]:
    return {
        "id": m.id,
        "member_no": m.member_no,
        "external_id": m.external_id,
        "phone": m.phone,
        "email": m.email,
        "name": m.name,
        "birthday": m.birthday.isoformat() if m.birthday else None,
        "gender": m.gender,
        "city": m.city,
        "home_store_id": m.home_store_id,
        "join_channel": m.join_channel,
        "status": m.status,
        "tier": m.tier_code,
        "created_at": m.created_at.isoformat(),
    }


def profile_body(p: service.Profile) -> dict[str, Any]:
    body = member_summary(p.member)
    pr = p.progress
    body.update(
        {
            "tags": p.tags,
            "consents": p.consents,
            "identities": [{"kind": k, "value": v} for k, v in p.identities],
            "points": {
                "available": p.available,
                "pending": p.pending,
                "debt": p.debt,
                "lifetime_earned": p.lifetime_earned,
                "expiring_30d": p.expiring_30d,
                "expiring": [{"expires_at": at.isoformat(), "points": n} for at, n in p.expiring],
            },
            "tier": {
                "code": p.member.tier_code,
                "name": p.tier_name,
                "since": p.member.tier_since.isoformat(),
                "expires_at": p.member.tier_expires_at.isoformat()
                if p.member.tier_expires_at
                else None,
                "metric": p.metric,
                "value": pr.value,
                "next": {
                    "code": pr.next_tier,
                    "name": p.next_tier_name,
                    "missing": pr.missing_for_next,
                }
                if pr.next_tier
                else None,
                "keep": {"threshold": pr.keep_threshold, "missing": pr.missing_to_keep},
            },
        }
    )
    return body


def entry_body(e: LedgerEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "member_id": e.member_id,  # who caused it (on a shared account: which member)
        "account_id": e.account_id,
        "available": e.delta_available,
        "pending": e.delta_pending,
        "debt": e.delta_debt,
        "source": {"type": e.source_type, "id": e.source_id} if e.source_type else None,
        "actor": e.actor,
        "reason": e.reason,
        "corrects_entry_id": e.corrects_entry_id,
        "programme_version": e.programme_version,
        "details": e.details,
        "occurred_at": e.occurred_at.isoformat(),
        "created_at": e.created_at.isoformat(),
    }


@router.post("", status_code=201, summary="Join a member (idempotent by phone / external id)")
async def create_member(
    data: MemberCreate, request: Request, db: DB, actor: Caller, key: IdemKey = None
) -> JSONResponse:
    def work(s: Session) -> tuple[int, dict[str, Any]]:
        joined = service.create(s, actor, data)
        s.flush()
        return (201 if joined.created else 200), profile_body(
            service.profile(s, actor, joined.member.id)
        )

    return await write(request, db, actor, key, work)


@router.get("", summary="List and search members (cursor pagination)")
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
) -> dict[str, Any]:
    page = page_request(cursor, limit)
    f = MemberFilter(phone=phone, tier=tier, tag=tag, store=store, q=q)

    def fn(s: Session) -> dict[str, Any]:
        rows = service.search(s, actor, f, after=page.after, limit=page.limit)
        nxt = encode_cursor(rows[-1].id) if len(rows) == page.limit else None
        return {"items": [member_summary(m) for m in rows], "next_cursor": nxt}

    result: dict[str, Any] = await read(db, fn)
    return result


@router.get("/{member_id}", summary="A member with balance, tier and progress")
async def get_member(member_id: MemberId, db: DB, actor: Caller) -> dict[str, Any]:
    result: dict[str, Any] = await read(
        db, lambda s: profile_body(service.profile(s, actor, member_id))
    )
    return result


@router.patch("/{member_id}", summary="Update a member's profile")
async def update_member(
    member_id: MemberId,
    data: MemberUpdate,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    def work(s: Session) -> tuple[int, dict[str, Any]]:
        service.update(s, actor, member_id, data)
        return 200, profile_body(service.profile(s, actor, member_id))

    return await write(request, db, actor, key, work)


@router.post("/{member_id}/identities", summary="Link another identity to the member")
async def add_identity(
    member_id: MemberId,
    data: IdentityIn,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    def work(s: Session) -> tuple[int, dict[str, Any]]:
        service.add_identity(s, actor, member_id, data.kind, data.value)
        ids = service.identities(s, member_id)
        return 200, {"identities": [{"kind": k, "value": v} for k, v in ids]}

    return await write(request, db, actor, key, work)


@router.post("/{member_id}/tags", summary="Add and remove tags")
async def change_tags(
    member_id: MemberId,
    data: TagsIn,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    def work(s: Session) -> tuple[int, dict[str, Any]]:
        return 200, {"tags": service.set_tags(s, actor, member_id, data)}

    return await write(request, db, actor, key, work)


@router.put("/{member_id}/consents/{channel}", summary="Record marketing consent for a channel")
async def set_consent(
    member_id: MemberId,
    channel: Annotated[str, Path(pattern="^(sms|email|push|wechat)$")],
    data: ConsentIn,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    def work(s: Session) -> tuple[int, dict[str, Any]]:
        return 200, {"consents": service.set_consent(s, actor, member_id, channel, data)}

    return await write(request, db, actor, key, work)


@router.get("/{member_id}/ledger", summary="The member's ledger, newest first")
async def member_ledger(
    member_id: MemberId, db: DB, actor: Caller, cursor: str | None = None, limit: int | None = None
) -> dict[str, Any]:
    page = page_request(cursor, limit)

    def fn(s: Session) -> dict[str, Any]:
        rows = service.ledger_page(s, actor, member_id, after=page.after, limit=page.limit)
        nxt = encode_cursor(rows[-1].id) if len(rows) == page.limit else None
        return {"items": [entry_body(e) for e in rows], "next_cursor": nxt}

    result: dict[str, Any] = await read(db, fn)
    return result


@router.post("/{member_id}/adjustments", status_code=201, summary="Staff points correction")
async def adjust(
    member_id: MemberId,
    data: AdjustmentIn,
    request: Request,
    db: DB,
    actor: Caller,
    key: IdemKey = None,
) -> JSONResponse:
    def work(s: Session) -> tuple[int, dict[str, Any]]:
        e = service.adjust_points(
            s, actor, member_id, data.points, data.reason, approved_by=data.approved_by
        )
        return 201, entry_body(e)

    return await write(request, db, actor, key, work)


@router.get("/{member_id}/tier-history", summary="Every tier change of the member")
async def tier_history(member_id: MemberId, db: DB, actor: Caller) -> dict[str, Any]:
    def fn(s: Session) -> dict[str, Any]:
        service.get(s, actor, member_id)
        return {
            "items": [
                {
                    "from": c.from_tier,
                    "to": c.to_tier,
                    "reason": c.reason,
                    "metric_value": c.metric_value,
                    "period": c.period,
                    "programme_version": c.programme_version,
                    "occurred_at": c.occurred_at.isoformat(),
                }
                for c in service.tier_history(s, member_id)
            ]
        }

    result: dict[str, Any] = await read(db, fn)
    return result
