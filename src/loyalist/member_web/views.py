"""What each member page shows, read through the services for one member only.

Every function takes the member id from the signed-in session, never from the request,
and acts as that member (``member:<id>``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalist.kit.actor import Actor
from loyalist.kit.clock import as_utc, utcnow
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.models import LedgerEntry, OrderReturn, PointsLot, Redemption, Reward
from loyalist.order import service as orders
from loyalist.order.errors import OrderNotFound
from loyalist.passes import service as passes
from loyalist.programme import service as programmes
from loyalist.programme.schemas import Programme, TierMetric
from loyalist.recommend import service as recommend  # recommendations (issue 14)
from loyalist.reward import service as rewards
from loyalist.reward.errors import RedemptionNotFound, RewardNotFound
from loyalist.reward.schemas import RedemptionCreate
from loyalist.tier.domain import Progress

EXPIRING_HORIZON = timedelta(days=90)
HISTORY_PAGE = 20

Gettext = Callable[..., str]


def member_actor(member_id: int) -> Actor:
    return Actor(
        name=f"member:{member_id}",
        scope_path="/",
        can_write=True,
        principal=f"member:{member_id}",
    )


def _tier_name(programme: Programme, code: str, locale: str) -> str:
    try:
        tier = programme.tiers.by_code(code)
    except KeyError:
        return code
    return (tier.name_en or tier.name) if locale == "en" else tier.name


def reward_name(reward: Reward, locale: str) -> str:
    return (reward.name_en or reward.name) if locale == "en" else reward.name


@dataclass(frozen=True)
class PassCard:
    """The paid membership a member holds now, for the home page."""

    name: str
    ends_on: date  # the last local day covered
    benefits: list[str]


@dataclass(frozen=True)
class Home:
    member_no: str
    name: str | None
    available: int
    pending: int
    debt: int
    expiring: list[tuple[date, int]]  # programme-local dates, soonest first
    tier_name: str
    tier_rank: int  # 0 for the first tier
    next_tier_name: str | None
    progress: Progress
    progress_pct: int
    metric: TierMetric
    next_threshold: int | None
    benefits: list[str]
    next_benefits: list[str]  # what the next tier adds (the earning line left out)
    redeemable: list[Reward]
    recent: list[Line]
    currency: str
    tz: str
    pass_card: PassCard | None = None  # the paid membership held now (issue 15 item 7)

    @property
    def expiring_total(self) -> int:
        return sum(n for _day, n in self.expiring)


def _benefits(
    programme: Programme,
    tier_code: str,
    _: Gettext,
    money: Callable[[int], str],
    *,
    earning: bool = True,
) -> list[str]:
    base = programme.earning.base
    lines: list[str] = []
    if earning:
        amount = money(base.unit_minor)
        if base.points_per_unit == 1:
            lines.append(_("Earn 1 point for every %(amount)s you spend", amount=amount))
        else:
            lines.append(
                _(
                    "Earn %(points)s points for every %(amount)s you spend",
                    points=base.points_per_unit,
                    amount=amount,
                )
            )
    try:
        b = programme.tiers.by_code(tier_code).benefits
    except KeyError:
        return lines
    if b.points_multiplier != 1:
        lines.append(_("Points ×%(factor)s on every purchase", factor=f"{b.points_multiplier:g}"))
    if b.discount_rate > 0:
        pct = f"{(b.discount_rate * 100).normalize():f}%"
        lines.append(_("%(percent)s off your purchases", percent=pct))
    if b.free_shipping:
        lines.append(_("Free shipping"))
    if b.priority_service:
        lines.append(_("Priority service"))
    if b.birthday_gift:
        lines.append(_("A birthday gift"))
    if b.exclusive_rewards:
        lines.append(_("Exclusive rewards"))
    return lines


def home(
    session: Session, member_id: int, locale: str, _: Gettext, money: Callable[[int], str]
) -> Home:
    actor = member_actor(member_id)
    p = members.profile(session, actor, member_id)
    _version, programme = programmes.active(session)
    now = utcnow()
    # Lots expire at instants; the member reads dates in the programme's time zone.
    by_day: dict[date, int] = {}
    for at, n in ledger.expiring_schedule(session, member_id, now, now + EXPIRING_HORIZON):
        day = as_utc(at).astimezone(programme.tz).date()
        by_day[day] = by_day.get(day, 0) + n
    prog = p.progress
    next_threshold = None
    pct = 100
    if prog.next_tier is not None:
        next_threshold = programme.tiers.by_code(prog.next_tier).threshold
        floor = prog.keep_threshold
        span = max(next_threshold - floor, 1)
        pct = max(0, min(100, (prog.value - floor) * 100 // span))
    codes = [t.code for t in programme.tiers.levels]
    current = set(_benefits(programme, p.member.tier_code, _, money, earning=False))
    upcoming = (
        _benefits(programme, prog.next_tier, _, money, earning=False) if prog.next_tier else []
    )
    affordable = [o.reward for o in offers(session, member_id, locale) if o.ok]
    return Home(
        member_no=p.member.member_no,
        name=p.member.name,
        available=p.available,
        pending=p.pending,
        debt=p.debt,
        expiring=sorted(by_day.items()),
        tier_name=_tier_name(programme, p.member.tier_code, locale),
        tier_rank=codes.index(p.member.tier_code) if p.member.tier_code in codes else 0,
        next_tier_name=_tier_name(programme, prog.next_tier, locale) if prog.next_tier else None,
        progress=prog,
        progress_pct=pct,
        metric=programme.tiers.metric,
        next_threshold=next_threshold,
        benefits=_benefits(programme, p.member.tier_code, _, money),
        next_benefits=[b for b in upcoming if b not in current],
        # The most valuable rewards the balance covers now.
        redeemable=sorted(affordable, key=lambda r: (-r.points, r.code))[:4],
        recent=history(session, member_id, locale, _, before=None, limit=3)[0],
        currency=programme.currency,
        tz=programme.timezone,
        pass_card=_pass_card(session, programme, member_id, now, locale, _),
    )


def _pass_card(
    session: Session, programme: Programme, member_id: int, now: datetime, locale: str, _: Gettext
) -> PassCard | None:
    held = [
        (t, o)
        for t in passes.terms_at(session, member_id, now)
        if (o := programme.pass_offer(t.pass_code)) is not None
    ]
    if not held:
        return None
    term, offer = max(held, key=lambda h: h[1].benefits.points_multiplier)
    # the last day of the run of terms (a renewal continues the current one)
    ends_on = max(
        r.ends_on
        for r in passes.member_passes(session, member_id)
        if r.pass_code == offer.code and r.status == "active" and r.ends_at > now
    )
    b = offer.benefits
    lines = []
    if b.points_multiplier != 1:
        lines.append(_("Points ×%(factor)s on every purchase", factor=f"{b.points_multiplier:g}"))
    if b.free_shipping:
        lines.append(_("Free shipping"))
    name = (offer.name_en or offer.name) if locale == "en" else offer.name
    return PassCard(name=name, ends_on=max(ends_on, term.ends_on), benefits=lines)


@dataclass(frozen=True)
class Offer:
    reward: Reward
    ok: bool
    reason: str | None
    missing_points: int
    min_tier_name: str | None
    points: int = 0  # the member's price now (dynamic pricing: may differ from the base)


def offers(session: Session, member_id: int, locale: str = "zh_CN") -> list[Offer]:
    """The active catalogue for this member: what they can redeem now first."""
    actor = member_actor(member_id)
    member = members.get(session, actor, member_id)
    _version, programme = programmes.active(session)
    available = ledger.get_account(session, member_id).available
    out: list[Offer] = []
    for r in rewards.catalogue(session):
        e = rewards.eligibility(session, programme, member, r, available)
        out.append(
            Offer(
                reward=r,
                ok=e.ok,
                reason=e.reason,
                missing_points=max(0, e.points - available),
                min_tier_name=_tier_name(programme, r.min_tier, locale) if r.min_tier else None,
                points=e.points,
            )
        )
    out.sort(key=lambda o: (not o.ok, o.points))
    return out


def offer(session: Session, member_id: int, code: str, locale: str) -> Offer:
    for o in offers(session, member_id, locale):
        if o.reward.code == code:
            return o
    raise RewardNotFound(f"No reward {code!r}.")


def balance(session: Session, member_id: int) -> int:
    return ledger.get_account(session, member_id).available


def redeem(session: Session, member_id: int, code: str) -> Redemption:
    actor = member_actor(member_id)
    return rewards.redeem(session, actor, RedemptionCreate(member_id=member_id, reward=code))


@dataclass(frozen=True)
class Redeemed:
    redemption: Redemption
    reward: Reward
    available: int


def redemption(session: Session, member_id: int, redemption_id: int) -> Redeemed:
    """One of this member's redemptions; another member's is indistinguishable from none."""
    r = rewards.get(session, member_actor(member_id), redemption_id)
    if r.member_id != member_id:
        raise RedemptionNotFound(f"No redemption {redemption_id}.")
    reward = session.get(Reward, r.reward_id)
    assert reward is not None
    return Redeemed(r, reward, ledger.get_account(session, member_id).available)


@dataclass(frozen=True)
class Line:
    """One ledger entry in words. ``delta`` is what it changed in the member's points
    (available + pending); a move from pending to available changes nothing and shows
    ``moved`` points instead. ``pending_until`` is set while the points still wait."""

    id: int
    at: datetime
    text: str
    delta: int
    moved: int = 0
    pending_until: datetime | None = None

    @property
    def pending(self) -> bool:
        return self.pending_until is not None


def _order_ref(session: Session, actor: Actor, order_id: str | None) -> str:
    if order_id is None or not order_id.isdigit():
        return "?"
    try:
        return orders.get(session, actor, int(order_id)).external_id
    except OrderNotFound:
        return "?"


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _earned_ref(session: Session, actor: Actor, entry_id: int | None) -> str:
    """The order behind an earning entry (for the line that activates its points)."""
    earned = session.get(LedgerEntry, entry_id) if entry_id is not None else None
    if earned is None or earned.source_type != "order":
        return ""
    return _order_ref(session, actor, earned.source_id)


def _describe(session: Session, actor: Actor, e: LedgerEntry, locale: str, _: Gettext) -> Line:
    delta = e.delta_available + e.delta_pending
    shown = abs(delta)
    kind, src = e.kind, e.source_type
    if kind == "earn" and src == "order":
        ref = _order_ref(session, actor, e.source_id)
        text = _("Earned %(points)s points on order %(order)s", points=shown, order=ref)
        lot = session.scalar(select(PointsLot).where(PointsLot.entry_id == e.id))
        if e.delta_pending > 0 and lot is not None and lot.status == "pending":
            return Line(e.id, e.occurred_at, text, delta, pending_until=lot.available_at)
    elif kind == "earn":
        text = _("Earned %(points)s points", points=shown)
    elif kind == "activate":
        ref = _earned_ref(session, actor, e.corrects_entry_id)
        text = (
            _("Points from order %(order)s are now available", order=ref)
            if ref
            else _("Pending points are now available")
        )
        return Line(e.id, e.occurred_at, text, 0, moved=e.delta_available)
    elif kind == "redeem" and src == "redemption":
        rid = _int(e.source_id)
        r = session.get(Redemption, rid) if rid is not None else None
        reward = session.get(Reward, r.reward_id) if r is not None else None
        name = reward_name(reward, locale) if reward is not None else "?"
        text = _("Redeemed %(reward)s", reward=name)
    elif kind == "redeem" and src == "order":
        ref = _order_ref(session, actor, e.source_id)
        text = _("Paid with points on order %(order)s", order=ref)
    elif kind == "reversal" and src == "redemption":
        text = _("Redemption cancelled, points returned")
    elif kind == "reversal" and src == "return":
        text = _("Points paid on a returned order were given back")
    elif kind == "clawback":
        ret_id = _int(e.source_id)
        ret = session.get(OrderReturn, ret_id) if ret_id is not None else None
        ref = _order_ref(session, actor, str(ret.order_id)) if ret is not None else "?"
        text = _("Points taken back for a return on order %(order)s", order=ref)
    elif kind == "expire":
        text = _("Points expired")
    elif kind == "adjust":
        text = (
            _("Points added by our service team")
            if delta > 0
            else _("Points deducted by our service team")
        )
    elif kind == "debt_settle":
        text = _("New points paid off a negative balance")
    else:
        text = _("Points changed")
    return Line(e.id, e.occurred_at, text, delta)


def history(
    session: Session,
    member_id: int,
    locale: str,
    _: Gettext,
    *,
    before: int | None,
    limit: int = HISTORY_PAGE,
) -> tuple[list[Line], int | None]:
    """One page of the member's own ledger in words, newest first; and the next cursor."""
    actor = member_actor(member_id)
    entries = members.ledger_page(session, actor, member_id, after=before, limit=limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    lines = [_describe(session, actor, e, locale, _) for e in entries]
    return lines, (entries[-1].id if more and entries else None)


def progress_missing(
    h: Home, _: Gettext, money: Callable[[int], str], points: Callable[[int], str]
) -> str | None:
    missing = h.progress.missing_for_next
    if missing is None or h.next_tier_name is None:
        return None
    if h.metric is TierMetric.SPEND:
        return _(
            "Spend %(amount)s more to reach %(tier)s", amount=money(missing), tier=h.next_tier_name
        )
    if h.metric is TierMetric.ORDERS:
        return _("%(n)s more orders to reach %(tier)s", n=points(missing), tier=h.next_tier_name)
    if h.metric is TierMetric.POINTS:
        return _(
            "Earn %(n)s more points to reach %(tier)s", n=points(missing), tier=h.next_tier_name
        )
    if h.metric is TierMetric.RFM:
        return _(
            "%(n)s more RFM score points to reach %(tier)s",
            n=points(missing),
            tier=h.next_tier_name,
        )
    return _("%(n)s more active days to reach %(tier)s", n=points(missing), tier=h.next_tier_name)


def progress_keep(
    h: Home, _: Gettext, money: Callable[[int], str], points: Callable[[int], str]
) -> str | None:
    """What is missing to keep the current tier at the next review (not for the first)."""
    missing = h.progress.missing_to_keep
    if h.tier_rank == 0 or missing <= 0:
        return None
    if h.metric is TierMetric.SPEND:
        return _("Spend %(amount)s more to keep %(tier)s", amount=money(missing), tier=h.tier_name)
    return _("%(n)s more to keep %(tier)s", n=points(missing), tier=h.tier_name)


def metric_amount(
    h: Home, value: int, money: Callable[[int], str], points: Callable[[int], str]
) -> str:
    """A tier-metric value as the member reads it: money for spend, a count otherwise."""
    return money(value) if h.metric is TierMetric.SPEND else points(value)


def recommendations(session: Session, member_id: int) -> recommend.Recommendations:
    """The member's suggestions for the home page (issue 14 item 6): their own with
    personalisation consent, else their store's popular items; filtered when read."""
    return recommend.for_member(session, member_actor(member_id), member_id, limit=4)
