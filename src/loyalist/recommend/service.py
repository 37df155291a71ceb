"""Recommendations (issue 14 item 6): computed by a nightly job, stored, filtered when read.

Items are products (``order_line.sku``) and catalogue rewards (redemptions). The nightly job
fits ALS on the purchases and redemptions of the members who consent to personalisation
(PIPL art. 24: the history of a member without that consent is never trained on, and no
list is stored for them) and stores each such member's best unseen products and rewards,
plus popularity lists per org unit (store, region, programme) — counts of everyone's
purchases, nobody's profile — for members the model does not know and for members without
the consent (they get the non-personalised list, never their own; consent is checked again
when a list is read, so a withdrawal takes effect at once). Reading filters the stored
list again: a reward must be active, in stock, allowed for the member's tier, affordable
with their points and not already held; a product must not have been bought already.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from loyalist.kit.actor import Actor
from loyalist.kit.clock import as_utc, utcnow
from loyalist.ledger import service as ledger
from loyalist.member import consent as consents
from loyalist.member import service as members
from loyalist.models import (
    Member,
    Order,
    OrderLine,
    OrgUnit,
    Recommendation,
    Redemption,
    Reward,
    RewardUsage,
)
from loyalist.programme import service as programmes
from loyalist.recommend import domain, schemas
from loyalist.reward import service as rewards

COMPUTE = "recommend.compute"
STORED = 20  # per member and kind, and per scope and kind
PRODUCT, REWARD = "product", "reward"
_PREFIX = {PRODUCT: "sku:", REWARD: "reward:"}


@dataclass(frozen=True, slots=True)
class Item:
    kind: str
    item: str
    category: str | None
    name: str
    points: int | None
    score: float
    source: str  # als | popular
    reason_zh: str
    reason_en: str


@dataclass(frozen=True, slots=True)
class Recommendations:
    member_id: int
    personalised: bool
    computed_at: datetime | None
    products: list[Item]
    rewards: list[Item]


# -- the history ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class History:
    interactions: list[domain.Interaction]
    paths: dict[tuple[int, str], str]  # (member, item) -> where it last happened
    categories: dict[str, str | None]


def history(session: Session, *, before: datetime | None = None, org_path: str = "") -> History:
    """Every member's purchases (lines not fully returned) and redemptions (not cancelled);
    only of members whose home is under ``org_path`` when given, only before ``before``."""
    out: list[domain.Interaction] = []
    paths: dict[tuple[int, str], str] = {}
    categories: dict[str, str | None] = {}
    q = (
        select(
            Order.member_id, Order.occurred_at, Order.org_path, OrderLine.sku, OrderLine.category
        )
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(Order.member_id.is_not(None), OrderLine.quantity > OrderLine.returned_quantity)
        .order_by(Order.occurred_at, OrderLine.id)
    )
    if before is not None:
        q = q.where(Order.occurred_at < before)
    if org_path:
        q = q.join(Member, Member.id == Order.member_id).where(Member.org_path.startswith(org_path))
    for member_id, at, path, sku, category in session.execute(q):
        assert member_id is not None  # the query keeps members' orders only
        key = _PREFIX[PRODUCT] + sku
        out.append(domain.Interaction(member_id, key, as_utc(at)))
        paths[(member_id, key)] = path
        categories[key] = category
    rq = (
        select(Redemption.member_id, Redemption.created_at, Redemption.org_path, Reward.code)
        .join(Reward, Reward.id == Redemption.reward_id)
        .where(Redemption.status == "completed")
        .order_by(Redemption.created_at, Redemption.id)
    )
    if before is not None:
        rq = rq.where(Redemption.created_at < before)
    if org_path:
        rq = rq.join(Member, Member.id == Redemption.member_id).where(
            Member.org_path.startswith(org_path)
        )
    for member_id, at, path, code in session.execute(rq):
        key = _PREFIX[REWARD] + code
        out.append(domain.Interaction(int(member_id), key, as_utc(at)))
        paths[(int(member_id), key)] = path
        categories[key] = None
    return History(out, paths, categories)


def _kind_of(key: str) -> tuple[str, str]:
    for kind, prefix in _PREFIX.items():
        if key.startswith(prefix):
            return kind, key[len(prefix) :]
    raise ValueError(key)


# -- the nightly job -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Computed:
    members: int
    rows: int
    scopes: int


def compute(session: Session, now: datetime | None = None) -> Computed:
    """Rewrite every stored list (one transaction: readers see the old lists or the new)."""
    at = now or utcnow()
    h = history(session)
    consenting = consents.granted_members(session, "personalisation")
    model = domain.fit([i for i in h.interactions if i.member in consenting])
    products = [i for i in model.items if i.startswith(_PREFIX[PRODUCT])]
    reward_items = [i for i in model.items if i.startswith(_PREFIX[REWARD])]
    session.execute(delete(Recommendation))
    rows: list[Recommendation] = []
    for member_id in model.members:
        for kind, allowed in ((PRODUCT, products), (REWARD, reward_items)):
            for rank, (key, score) in enumerate(
                model.recommend(member_id, STORED, allowed=allowed)
            ):
                because = model.because(member_id, key)
                rows.append(
                    Recommendation(
                        member_id=member_id,
                        scope="",
                        kind=kind,
                        item=_kind_of(key)[1],
                        category=h.categories.get(key),
                        rank=rank,
                        score=score,
                        source="als",
                        because=_kind_of(because)[1] if because else None,
                        computed_at=at,
                    )
                )
    units = list(session.scalars(select(OrgUnit.path)))
    scopes = sorted({"", *units})
    by_scope: dict[str, list[domain.Interaction]] = defaultdict(list)
    for it in h.interactions:
        path = h.paths[(it.member, it.item)]
        for scope in scopes:
            if path.startswith(scope):
                by_scope[scope].append(it)
    for scope in scopes:
        ranked = domain.popularity(by_scope.get(scope, []))
        for kind in (PRODUCT, REWARD):
            mine = [(k, s) for k, s in ranked if k.startswith(_PREFIX[kind])][:STORED]
            for rank, (key, score) in enumerate(mine):
                rows.append(
                    Recommendation(
                        member_id=None,
                        scope=scope,
                        kind=kind,
                        item=_kind_of(key)[1],
                        category=h.categories.get(key),
                        rank=rank,
                        score=score,
                        source="popular",
                        because=None,
                        computed_at=at,
                    )
                )
    session.add_all(rows)
    session.flush()
    return Computed(len(model.members), len(rows), len(scopes))


# -- reading -------------------------------------------------------------------------------


def _popular_rows(session: Session, path: str) -> tuple[str, list[Recommendation]]:
    """The stored popularity list of the nearest unit above ``path`` that has one."""
    parts = [p for p in path.split("/") if p]
    above = ["", *("/" + "/".join(parts[:n]) + "/" for n in range(1, len(parts) + 1))]
    q = select(Recommendation).where(
        Recommendation.member_id.is_(None), Recommendation.scope.in_(above)
    )
    found: dict[str, list[Recommendation]] = defaultdict(list)
    for r in session.scalars(q.order_by(Recommendation.kind, Recommendation.rank)):
        if path.startswith(r.scope):
            found[r.scope].append(r)
    if not found:
        return "", []
    scope = max(found, key=len)
    return scope, found[scope]


def _scope_name(session: Session, scope: str) -> str | None:
    if not scope:
        return None
    return session.scalar(select(OrgUnit.name).where(OrgUnit.path == scope))


def personalised(session: Session, member_id: int) -> bool:
    """Personal suggestions need the member's consent to personalisation (PIPL art. 24)."""
    return consents.granted(session, member_id, "personalisation", "any")


def _bought(session: Session, member_id: int) -> set[str]:
    q = (
        select(OrderLine.sku)
        .join(Order, Order.id == OrderLine.order_id)
        .where(Order.member_id == member_id)
        .distinct()
    )
    return set(session.scalars(q))


def _held(session: Session, member_id: int) -> set[int]:
    q = select(RewardUsage.reward_id).where(
        RewardUsage.member_id == member_id, RewardUsage.used > 0
    )
    return set(session.scalars(q))


def for_member(
    session: Session, actor: Actor, member_id: int, *, limit: int = 5
) -> Recommendations:
    """The member's suggestions now: their stored list (with consent) or the popularity
    list of their store/region, filtered by points, stock, tier and what they hold."""
    member = members.get(session, actor, member_id)
    return for_loaded(session, member, limit=limit)


def for_loaded(session: Session, member: Member, *, limit: int = 5) -> Recommendations:
    allowed = personalised(session, member.id)
    rows: list[Recommendation] = []
    scope = ""
    if allowed:
        q = (
            select(Recommendation)
            .where(Recommendation.member_id == member.id)
            .order_by(Recommendation.kind, Recommendation.rank)
        )
        rows = list(session.scalars(q))
    if not rows:  # no consent, or a member the model does not know yet
        scope, rows = _popular_rows(session, member.org_path)
    scope_name = _scope_name(session, scope)
    bought = _bought(session, member.id)
    held = _held(session, member.id)
    _version, programme = programmes.active(session)
    available = ledger.get_account(session, member.id).available
    catalogue = {r.code: r for r in rewards.catalogue(session)}
    products: list[Item] = []
    offers: list[Item] = []
    for r in rows:
        zh, en = domain.reason(r.source, r.because, scope_name)
        if r.kind == PRODUCT:
            if r.item in bought or len(products) >= limit:
                continue
            products.append(
                Item(PRODUCT, r.item, r.category, r.item, None, r.score, r.source, zh, en)
            )
        elif r.kind == REWARD:
            reward = catalogue.get(r.item)
            if reward is None or reward.id in held or len(offers) >= limit:
                continue
            if not rewards.eligibility(session, programme, member, reward, available).ok:
                continue
            offers.append(
                Item(REWARD, r.item, None, reward.name, reward.points, r.score, r.source, zh, en)
            )
    return Recommendations(
        member.id,
        allowed and any(r.member_id is not None for r in rows),
        max((as_utc(r.computed_at) for r in rows), default=None),
        products,
        offers,
    )


def summary_line(recs: Recommendations, locale: str = "zh_CN") -> str:
    """One line for message templates: the ``{recommendations}`` variable."""
    names = [i.name for i in recs.products[:3]] + [i.name for i in recs.rewards[:2]]
    sep = "、" if locale.startswith("zh") else ", "
    return sep.join(names)


# -- offline evaluation --------------------------------------------------------------------


def evaluate(
    session: Session,
    *,
    k: int = 10,
    test_days: int = 60,
    params: domain.AlsParams | None = None,
    org_path: str = "",
    before: datetime | None = None,
) -> domain.Evaluation:
    """ALS against popularity on a time split: the last ``test_days`` of history (of the
    members under ``org_path``, up to ``before``) are the test period."""
    h = history(session, before=before, org_path=org_path)
    latest = max((i.at for i in h.interactions), default=before or utcnow())
    split = latest - timedelta(days=test_days)
    return domain.evaluate(h.interactions, split, k, params or domain.AlsParams())


def _item_out(i: Item) -> schemas.RecommendationOut:
    return schemas.RecommendationOut(
        kind=i.kind,
        item=i.item,
        name=i.name,
        category=i.category,
        points=i.points,
        score=i.score,
        source=i.source,
        reason=schemas.Reason(zh_CN=i.reason_zh, en=i.reason_en),
    )


def view(
    session: Session, actor: Actor, member_id: int, *, limit: int = 5
) -> schemas.RecommendationsOut:
    r = for_member(session, actor, member_id, limit=limit)
    return schemas.RecommendationsOut(
        member_id=r.member_id,
        personalised=r.personalised,
        computed_at=r.computed_at,
        products=[_item_out(i) for i in r.products],
        rewards=[_item_out(i) for i in r.rewards],
    )
