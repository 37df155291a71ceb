"""The built-in actions: award points, add / remove a tag, send a message, open a task.

Each runs inside :func:`loyalist.actions.registry.run` (once per cause and member) and uses
the owning feature's service. "Issue a coupon" is not here: it waits for the coupon
feature (issue 12), which will register ``issue_coupon`` the same way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from loyalist.access.permissions import POINTS_ADJUST, require
from loyalist.actions.errors import ActionInvalid
from loyalist.actions.registry import ActionContext, action, action_many
from loyalist.errors import FieldError
from loyalist.kit.clock import utcnow
from loyalist.ledger import domain as lots
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.schemas import Tag, TagsIn
from loyalist.messaging import config as message_config
from loyalist.messaging import outbox
from loyalist.programme import service as programmes
from loyalist.task import service as tasks


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AwardPoints(Params):
    points: int = Field(ge=1, le=1_000_000)
    reason: str = Field(min_length=1, max_length=200)


@action("award_points", AwardPoints, description="Credit points as a new lot (programme expiry)")
def award_points(ctx: ActionContext, p: AwardPoints) -> dict[str, Any]:
    require(ctx.actor, POINTS_ADJUST)
    assert ctx.member_id is not None
    member = members.get(ctx.session, ctx.actor, ctx.member_id)
    acct = ledger.lock(ctx.session, member.id, member.org_path)
    version, programme = programmes.active(ctx.session)
    now = acct.now
    expires = lots.expires_at(programme.points.expiry, programme.tz, now)
    entry, lot = ledger.credit(
        ctx.session,
        acct,
        p.points,
        ledger.Cause(
            source_type="action",
            source_id=str(ctx.receipt_id),
            actor=ctx.actor.name,
            reason=p.reason,
            programme_version=version,
            details={"cause": ctx.cause},
        ),
        kind="earn",
        earned_at=now,
        available_at=now,
        expires_at=expires,
        dedupe_key=f"action:{ctx.receipt_id}",
        counts_as_earned=False,  # caps.per_member count points earned from orders
    )
    return {
        "entry_id": entry.id,
        "lot_id": lot.id,
        "points": p.points,
        "expires_at": expires.isoformat() if expires else None,
    }


class TagParams(Params):
    tag: Tag


@action("add_tag", TagParams, description="Add a tag to the member")
def add_tag(ctx: ActionContext, p: TagParams) -> dict[str, Any]:
    assert ctx.member_id is not None
    tags = members.set_tags(ctx.session, ctx.actor, ctx.member_id, TagsIn(add=[p.tag]))
    return {"tags": tags}


@action_many("add_tag")
def add_tag_many(contexts: list[ActionContext], p: TagParams) -> list[dict[str, Any]]:
    """``add_tag`` for many members (run_many): one read, one insert of tags and audit."""
    if not contexts:
        return []
    ctx = contexts[0]
    ids = [c.member_id for c in contexts if c.member_id is not None]
    assert len(ids) == len(contexts)
    return [{"tags": t} for t in members.add_tag_many(ctx.session, ctx.actor, ids, p.tag)]


@action("remove_tag", TagParams, description="Remove a tag from the member")
def remove_tag(ctx: ActionContext, p: TagParams) -> dict[str, Any]:
    assert ctx.member_id is not None
    tags = members.set_tags(ctx.session, ctx.actor, ctx.member_id, TagsIn(remove=[p.tag]))
    return {"tags": tags}


class SendMessage(Params):
    template: Annotated[str, Field(min_length=1, max_length=64)]
    # None: the template's channels in order (the first the member can be reached on).
    channel: Literal["sms", "email", "wechat_template", "wechat_subscribe", "push"] | None = None
    params: dict[Annotated[str, Field(max_length=32)], str | int] = Field(
        default_factory=dict, max_length=20
    )
    locale: Literal["zh_CN", "en"] = "zh_CN"
    # Why the message is sent; None: the template's purpose. Marketing and
    # personalisation need the member's consent and obey caps and quiet hours.
    purpose: Literal["transactional", "marketing", "personalisation"] | None = None
    marketing: bool = False  # the same as purpose="marketing" (kept for old rules)


@action("send_message", SendMessage, description="Send the member a templated message")
def send_message(ctx: ActionContext, p: SendMessage) -> dict[str, Any]:
    """Goes through the one message path (``messaging.outbox.send``): the result is
    ``{"status": "queued"|"held"|"suppressed", "message_id", "channel", "reason"}``; a
    suppression (no consent, a cap, no address) is a result, never an error, so a
    journey goes on along its path."""
    assert ctx.member_id is not None
    purpose = p.purpose or ("marketing" if p.marketing else None)
    try:
        result = outbox.send(
            ctx.session,
            ctx.member_id,
            p.template,
            p.params,
            purpose=purpose,
            channel=p.channel,
            locale=p.locale,
            actor=ctx.actor,
        )
    except outbox.UnknownTemplate:
        names = sorted(message_config.current(ctx.session).templates)
        raise ActionInvalid(
            f"Unknown message template {p.template!r}.",
            [FieldError("params.template", f"one of: {', '.join(names)}")],
        ) from None
    except outbox.MissingData as exc:
        raise ActionInvalid(
            f"Template {p.template!r} needs the parameter {exc.args[0]!r}.",
            [FieldError(f"params.params.{exc.args[0]}", "required by the template")],
        ) from None
    return result.as_dict()


class OpenTask(Params):
    title: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=2000)
    due_in_days: int | None = Field(default=None, ge=0, le=365)


@action("open_task", OpenTask, description="Open a follow-up task about the member")
def open_task(ctx: ActionContext, p: OpenTask) -> dict[str, Any]:
    assert ctx.member_id is not None
    member = members.get(ctx.session, ctx.actor, ctx.member_id)
    due = utcnow() + timedelta(days=p.due_in_days) if p.due_in_days is not None else None
    task = tasks.open_task(
        ctx.session,
        member_id=member.id,
        org_path=member.org_path,
        title=p.title,
        note=p.note,
        due_at=due,
        cause=ctx.cause,
    )
    return {"task_id": task.id, "due_at": due.isoformat() if due else None}
