"""Demo messages (issue 14): the messaging document (caps, quiet hours, a marketing
template) and one day of messages — delivered, held by quiet hours, suppressed for want of
consent and by the daily cap — through the one message path, delivered to the
development inbox."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from loyalist.documents import service as documents
from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import clock
from loyalist.kit.db import Database
from loyalist.messaging import outbox
from loyalist.messaging.adapters import DevInbox
from loyalist.models import Member

DOCUMENT = {
    "quiet_hours": {"start": "21:00", "end": "08:00"},
    "caps": {"sms": {"day": 2, "week": 5}, "email": {"day": 2, "week": 5}},
    "templates": {
        "member_day": {
            "purpose": "marketing",
            "channels": ["sms", "email"],
            "texts": {
                "zh_CN": {
                    "subject": "会员日邀请",
                    "body": "{name}，本周六会员日全场双倍积分，欢迎光临{store}。回复 TD 退订",
                },
                "en": {
                    "subject": "Member day",
                    "body": "{name}, double points this Saturday at {store}. Reply TD to stop.",
                },
            },
            "sms": {"template_code": "SMS_DEMO_MEMBER_DAY", "params": {"store": "{store}"}},
            "sample": {"name": "王女士", "store": "上海南京西路店"},
        }
    },
}


def _at(tz: ZoneInfo, day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=tz)


def build(db: Database, tz: ZoneInfo, end_day: date, seed: int = 7) -> dict[str, int]:
    """Messages on the day before ``end_day``; returns counts by status."""
    rng = random.Random(seed)
    day = end_day - timedelta(days=1)
    clock.freeze(_at(tz, day, 9))
    with db.transaction() as s:
        documents.publish(s, SYSTEM, "messaging", DOCUMENT, note="会员日短信")
        ids = list(s.scalars(select(Member.id).order_by(Member.id).limit(40)))
    inbox = DevInbox()
    sent: list[int] = []
    # 10:00 the member-day invitation, three times to the same members (a cap of 2 a day
    # stops the third); those without marketing consent are suppressed.
    for hh in (10, 11, 12):
        clock.freeze(_at(tz, day, hh))
        with db.transaction() as s:
            for mid in ids[:24]:
                r = outbox.send(
                    s,
                    mid,
                    "member_day",
                    {"name": "会员", "store": "悦享会门店"},
                    purpose="marketing",
                )
                if r.status == "queued":
                    sent.append(r.message_id)
    # 14:00 a transactional notice to a few members (no consent, cap or quiet hours apply).
    clock.freeze(_at(tz, day, 14))
    with db.transaction() as s:
        for mid in rng.sample(ids, min(5, len(ids))):
            sent.append(
                outbox.send(
                    s, mid, "points_awarded", {"points": 200, "reason": "问卷奖励"}
                ).message_id
            )
    for message_id in sent:
        with db.transaction() as s:
            outbox.deliver(s, message_id, adapter=inbox)
    # 22:30 an invitation inside quiet hours: held until 08:00 (released by the worker).
    clock.freeze(_at(tz, day, 22, 30))
    with db.transaction() as s:
        for mid in ids[24:30]:
            outbox.send(
                s, mid, "member_day", {"name": "会员", "store": "悦享会门店"}, purpose="marketing"
            )
        return outbox.counts(s)


def summary(db: Database) -> str:
    """One line for the demo's summary: messages by status."""
    with db.transaction() as s:
        n = outbox.counts(s)
    order = ("sent", "delivered", "queued", "held", "suppressed", "failed", "expired")
    return " · ".join(f"{k} {n[k]:,}" for k in order if n.get(k)) or "none"
