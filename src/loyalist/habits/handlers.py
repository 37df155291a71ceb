"""The ``habits`` consumer: counters for badges and challenges, and leaderboard scores.

Once per event (the consumer's receipts; ``habit_fact``'s unique key is the backstop):

* ``member.created`` → sign-up points (when the habits document offers them);
* ``order.recorded`` → orders, spend and the categories bought (from the order's lines);
* ``checkin.recorded`` → check-ins and streak; streak boards keep the longest in a period;
* ``activity.recorded`` (review, survey, share) → those counters;
* ``referral.qualified`` (from the referrals feature) → referrals, referral boards;
* ``points.earned`` → points boards.

Then the member's badges and the challenges reading a changed counter are re-evaluated.
Nothing is counted before the first habits document is published (an installation that
does not use habits pays nothing); the consumer reads the stream from its beginning, so a
document published later still counts the history not yet read.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from loyalist.events import service as events
from loyalist.events.consumers import consumer
from loyalist.habits import service
from loyalist.kit.clock import as_utc
from loyalist.models import OutboxEvent
from loyalist.order import service as orders

TYPES = {
    "member.created",
    "order.recorded",
    "checkin.recorded",
    "activity.recorded",
    "points.earned",
}
# The referrals feature adds ``referral.qualified``; until it exists, referral counters and
# boards simply stay empty.
if "referral.qualified" in events.EVENT_TYPES:
    TYPES.add("referral.qualified")
_ACTIVITY_COUNTER = {"review": "reviews", "survey": "surveys", "share": "shares"}


@consumer("habits", types=TYPES)
def on_event(session: Session, ev: OutboxEvent) -> None:
    p = ev.payload or {}
    found = ev.member_id or p.get("member_id")
    if not isinstance(found, int):
        return
    member_id: int = found
    version, cfg = service.config(session)
    if version == 0:
        return  # no habits document was ever published: nothing is counted
    if ev.type == "member.created":
        service.signup_points(session, member_id, as_utc(ev.occurred_at))
        return
    at = as_utc(ev.occurred_at)
    touched: set[str] = set()

    def fact(counter: str, amount: int, label: str = "") -> None:
        service.add_fact(session, member_id, counter, amount, at, ev.event_id, label)
        touched.add(counter)

    boards = {
        b.metric: [x for x in cfg.leaderboards if x.metric == b.metric] for b in cfg.leaderboards
    }
    tz = service.zone(session) if cfg.leaderboards else None
    if ev.type == "order.recorded":
        fact("orders", 1)
        fact("spend_minor", int(p.get("amount_paid_minor") or 0))
        for category in sorted(
            {ln.category for ln in orders.lines(session, p["order_id"]) if ln.category}
        ):
            fact("categories", 1, category)
    elif ev.type == "checkin.recorded":
        fact("checkins", 1)
        fact("streak", int(p["streak"]))
        for b in boards.get("streak", []):
            assert tz is not None
            service.add_score(
                session, b, tz, member_id, ev.org_path, int(p["streak"]), at, keep_max=True
            )
    elif ev.type == "activity.recorded":
        counter = _ACTIVITY_COUNTER.get(str(p.get("activity")))
        if counter is not None:
            fact(counter, 1)
    elif ev.type == "referral.qualified":
        # The referrer scores: the event's member, unless it names the referrer apart.
        referrer = p.get("referrer_id", member_id)
        path = ev.org_path
        if isinstance(referrer, int) and referrer != member_id:
            member_id = referrer
            path = service.member_path(session, member_id)
        fact("referrals", 1)
        for b in boards.get("referrals", []):
            assert tz is not None
            service.add_score(session, b, tz, member_id, path, 1, at)
    elif ev.type == "points.earned":
        for b in boards.get("points", []):
            assert tz is not None
            service.add_score(session, b, tz, member_id, ev.org_path, int(p.get("points") or 0), at)
    session.flush()
    if touched and (cfg.badges or cfg.challenges):
        service.evaluate_member(session, member_id, touched, at, ev.event_id)
