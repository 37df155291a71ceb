"""The ``issue_coupon`` action: rules and journeys issue coupons through
``loyalist.actions`` (once per cause and member)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from loyalist.access.permissions import MEMBER_WRITE, require
from loyalist.actions.registry import ActionContext, action
from loyalist.coupon import service
from loyalist.member import service as members


class IssueCoupon(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    template: str = Field(min_length=1, max_length=64)


@action("issue_coupon", IssueCoupon, description="Issue a coupon of a template to the member")
def issue_coupon(ctx: ActionContext, p: IssueCoupon) -> dict[str, Any]:
    require(ctx.actor, MEMBER_WRITE)
    assert ctx.member_id is not None
    member = members.get(ctx.session, ctx.actor, ctx.member_id)
    _created, row = service.issue(
        ctx.session,
        p.template,
        member,
        source="action",
        issue_key=f"action:{ctx.receipt_id}",
        actor=ctx.actor,
    )
    return {
        "code_id": row.id,
        "template": p.template,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
    }
