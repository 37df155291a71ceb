"""Demo data for referrals (老带新), friend-assist (好友助力) and groups (拼团), issue 12.

The builder replays history with a frozen clock and no worker, so what the ``referral``
consumer and its jobs would do is done here at the moment it would happen (as the builder
does for activation): attribution right after a join, the return-window clock after the
first order, the verdict when the window closes, a return's effect. When the worker later
reads the same events it finds the work done (every step is idempotent).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from loyalist.documents import service as documents
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.clock import as_utc
from loyalist.referral import config
from loyalist.referral import service as referrals
from loyalist.viral import service as viral

REFERRED_SHARE = 0.2  # of new members, joined with a friend's code
SHARED_DEVICE_SHARE = 0.06  # of referred members, on the referrer's phone (held for review)

DOCUMENT: dict[str, Any] = {
    "referral": {
        "min_order_minor": 3000,
        "return_window_days": 7,
        "after_return": "claw_back",
        "levels": 1,
        "rewards": {
            "friend": [
                {"action": "award_points", "params": {"points": 200, "reason": "新朋友首单礼"}}
            ],
            "referrer": [
                {"action": "award_points", "params": {"points": 500, "reason": "老带新奖励"}}
            ],
        },
        "leaders": {
            "min_qualified": 5,
            "rewards": [
                {"action": "award_points", "params": {"points": 2000, "reason": "季度推荐之星"}}
            ],
        },
    },
    "assist": [
        {
            "code": "latte-assist",
            "name": {"zh_CN": "3 位好友助力，免费拿铁", "en": "3 friends help: a free latte"},
            "helps": 3,
            "hours": 48,
            "rewards": [
                {"action": "award_points", "params": {"points": 300, "reason": "好友助力成功"}}
            ],
        }
    ],
    "groups": [
        {
            "code": "beans-trio",
            "name": {"zh_CN": "咖啡豆三人团", "en": "Coffee beans for three"},
            "size": 3,
            "hours": 24,
            "rewards": [
                {"action": "award_points", "params": {"points": 150, "reason": "拼团成功"}}
            ],
        }
    ],
}


class ReferralReplay:
    """Called by the demo builder at joins, orders and returns."""

    def __init__(self, seed: int, later: Callable[[datetime, Callable[[Session], None]], None]):
        self.rng = random.Random(seed * 7919 + 12)  # its own stream: the rest stays the same
        self.later = later
        self.joined: list[int] = []

    def publish(self, s: Session) -> None:
        documents.publish(s, SYSTEM, config.KIND, DOCUMENT, note="老带新与裂变活动上线")

    def code_for_new_member(self, s: Session) -> str | None:
        if len(self.joined) < 5 or self.rng.random() >= REFERRED_SHARE:
            return None
        return referrals.ensure_code(s, self.rng.choice(self.joined))

    def after_join(self, s: Session, member_id: int) -> None:
        r = referrals.on_join(s, member_id)
        if r is not None and self.rng.random() < SHARED_DEVICE_SHARE:
            device = f"demo-device-{r.referrer_id}"
            for mid in (r.referrer_id, member_id):
                referrals.record_signal(s, SYSTEM, mid, "device_id", device)
        self.joined.append(member_id)

    def after_order(self, s: Session, order_id: int, member_id: int | None) -> None:
        r = referrals.on_order(s, order_id, member_id)
        if r is not None and r.qualify_at is not None:
            self.later(
                as_utc(r.qualify_at) + timedelta(minutes=5),
                functools.partial(_quiet, referrals.qualify, arg=r.id),
            )

    def after_return(self, s: Session, order_id: int) -> None:
        referrals.on_return(s, order_id)

    def viral_samples(self, s: Session, actor: Actor) -> None:
        """A few campaigns under way at the end of the history: one assist complete, one
        waiting for its last help, a complete group and a forming one."""
        ids = list(self.joined)
        if len(ids) < 10:
            return
        self.rng.shuffle(ids)
        starter, helpers = ids[0], ids[1:4]
        _c, a = viral.start_assist(s, actor, starter, "latte-assist")
        for h in helpers:
            viral.help_assist(s, actor, a.id, h)
        _c, b = viral.start_assist(s, actor, ids[4], "latte-assist")
        for h in ids[5:7]:
            viral.help_assist(s, actor, b.id, h)
        g = viral.open_group(s, actor, ids[7], "beans-trio")
        for m in ids[8:10]:
            viral.join_group(s, actor, g.id, m)
        if len(ids) >= 12:
            g2 = viral.open_group(s, actor, ids[10], "beans-trio")
            viral.join_group(s, actor, g2.id, ids[11])


def _quiet(fn: Callable[[Session, int], Any], s: Session, *, arg: int) -> None:
    with s.begin_nested():
        fn(s, arg)


def stats(s: Session) -> str:
    """The summary line: referred members, qualified, on hold, conversion."""
    st = referrals.stats(s, SYSTEM)
    return (
        f"{st.attributed:,} referred · {st.qualified:,} qualified · {st.on_hold:,} on hold · "
        f"conversion {st.conversion:.0%}"
    )
