"""Console pages for messages (issue 14): templates with a preview per locale, caps and
quiet hours in force, the newest messages with their status; and the helpers the member
360 page uses to show a member's messages on its timeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loyalist.access import permissions as perm
from loyalist.admin.explain import Item
from loyalist.admin.web import (
    AdminRoute,
    Staff,
    current_staff,
    db_of,
    gettext_for,
    locale_of,
    render,
)
from loyalist.errors import NotFound
from loyalist.messaging import outbox
from loyalist.messaging.channels import mask_address
from loyalist.models import Message, MessageAttempt
from loyalist.programme import service as programmes

router = APIRouter(route_class=AdminRoute, include_in_schema=False)
StaffDep = Annotated[Staff, Depends(current_staff)]


def words(_: Callable[[str], str]) -> dict[str, str]:
    """Channel, status and reason words in the page's language."""
    return {
        "sms": _("SMS"),
        "email": _("Email"),
        "wechat_template": _("WeChat template message"),
        "wechat_subscribe": _("WeChat subscribe message"),
        "push": _("App push"),
        "dev_inbox": _("Development inbox"),
        "queued": _("queued"),
        "held": _("held"),
        "sent": _("sent"),
        "delivered": _("delivered"),
        "suppressed": _("suppressed"),
        "failed": _("failed"),
        "expired": _("expired"),
        "no_consent": _("no consent"),
        "no_address": _("no address"),
        "cap_day": _("daily cap reached"),
        "cap_week": _("weekly cap reached"),
        "quiet_hours": _("quiet hours"),
        "no_authorisation": _("no subscription left, sent by SMS"),
        "refused": _("refused by the recipient"),
        "channel_not_configured": _("channel not configured"),
        "transactional": _("transactional"),
        "marketing": _("marketing"),
        "personalisation": _("personalisation"),
    }


def member_messages(
    s: Session, member_id: int
) -> tuple[list[Message], dict[int, list[MessageAttempt]]]:
    msgs = outbox.for_member(s, member_id, limit=30)
    return msgs, outbox.attempts_of(s, [m.id for m in msgs])


def with_messages(items: list[Item], msgs: list[Message], _: Callable[[str], str]) -> list[Item]:
    w = words(_)
    for m in msgs:
        text = _("%(channel)s “%(subject)s”: %(status)s") % {
            "channel": w.get(m.channel, m.channel),
            "subject": m.subject or m.template,
            "status": w.get(m.status, m.status),
        }
        if m.reason:
            text += f" ({w.get(m.reason, m.reason)})"
        items.append(Item(m.created_at, "message", text))
    items.sort(key=lambda i: i.at, reverse=True)
    return items


def _tz(s: Session) -> ZoneInfo:
    return programmes.active(s)[1].tz


@router.get("/admin/messages")
async def messages_page(
    request: Request, st: StaffDep, template: str = "", locale: str = "zh_CN"
) -> Response:
    def work(s: Session) -> dict[str, Any]:
        perm.require(st.actor, perm.PROGRAMME_READ)
        cfg = outbox.templates(s)
        name = template or next(iter(sorted(cfg.templates)), "")
        loc = locale if locale in ("zh_CN", "en") else "zh_CN"
        if name not in cfg.templates:
            raise NotFound("No such template.")
        rows = outbox.recent(s, st.actor) if st.can(perm.MEMBER_READ) else []
        return {
            "cfg": cfg,
            "names": sorted(cfg.templates),
            "chosen": name,
            "preview": outbox.preview(s, name, loc),
            "preview_locale": loc,
            "rows": [(m, mask_address(m.recipient) if m.recipient else "") for m in rows],
            "counts": outbox.counts(s),
            "tz": _tz(s),
        }

    ctx = await run_in_threadpool(db_of(request).run, work)
    ctx["message_words"] = words(gettext_for(locale_of(request, st.locale_pref)))
    return render(request, "messages.html", ctx, tz=ctx["tz"])
