"""RFM in the programme (issue 15 item 3): a programme whose tiers qualify on a weighted RFM
score; the nightly ``insights.rfm`` job scores every member into ``member_rfm``, tags the
segment and upgrades tiers through the tier service; ``member.p_alive`` and friends in
conditions; the member 360; the job is idempotent.

The expected values come from ``loyalist.analytics`` called directly on the same orders
(the "RFM table"), not from the code under test.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from tests.console import console_client, login, make_users
from tests.itest import apply_document, demo_document

from loyalist import bootstrap
from loyalist.analytics import (
    BGNBD,
    PLATFORM_COLUMNS,
    read_database,
    rfm_scores,
    simulate_transactions,
    summarise,
)
from loyalist.insights import rfm as nightly
from loyalist.jobs import queue
from loyalist.kit import conditions
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import Member, MemberRfm, MemberTag, TierChange
from loyalist.order import service as orders
from loyalist.order.schemas import LineIn, OrderCreate
from loyalist.programme import service as programmes
from loyalist.programme.errors import ProgrammeInvalid
from loyalist.tier.domain import qualifying_tier

SHANGHAI = ZoneInfo("Asia/Shanghai")
STORES = ("sh1", "sh2", "sz1", "gz1")
WEIGHTS = {"r": 2, "f": 1, "m": 1}  # score 4..20
THRESHOLDS = (0, 8, 11, 14, 17)


def rfm_programme() -> dict[str, Any]:
    doc = demo_document()
    doc["tiers"]["metric"] = "rfm"
    doc["tiers"]["rfm_weights"] = WEIGHTS
    for level, threshold in zip(doc["tiers"]["levels"], THRESHOLDS, strict=True):
        level["threshold"] = threshold
    doc["earning"]["campaigns"].append(
        {
            "code": "alive-bonus",
            "name": "活跃会员加赠",
            "bonus_points": 10,
            "when": {"gte": {"member.p_alive": 50}},
        }
    )
    return doc


def _seed(db: Database, now: Any) -> list[int]:
    """30 members with 14 months of BG/NBD-simulated coffee orders (deterministic)."""
    sim = simulate_transactions(
        30,
        start=now.date() - timedelta(days=420),
        days=420,
        acquisition_days=300,
        bgnbd=(1.2, 30.0, 0.8, 4.0),
        seed=1,
    ).frame.sort("occurred_at", "order_id")
    ids: dict[str, int] = {}
    home: dict[int, str] = {}
    with db.transaction() as s:
        for i, customer in enumerate(sorted(set(sim["customer_id"]), key=lambda c: int(c[1:]))):
            ids[customer] = members.create(
                s, SYSTEM, MemberCreate(phone=f"1392234{i:04d}", home_store=STORES[i % 4])
            ).member.id
            home[ids[customer]] = STORES[i % 4]
        for j, row in enumerate(sim.iter_rows(named=True)):
            paid = max(100, round(row["amount"] * 100))
            at = row["occurred_at"].replace(tzinfo=SHANGHAI)
            orders.record(
                s,
                SYSTEM,
                OrderCreate(
                    external_id=f"R-{j:04d}",
                    member_id=ids[row["customer_id"]],
                    store=home[ids[row["customer_id"]]],
                    occurred_at=min(at, now - timedelta(minutes=1)),
                    amount_paid_minor=paid,
                    lines=[
                        LineIn(sku="LATTE", category="coffee", quantity=1, unit_price_minor=paid)
                    ],
                ),
            )
        # one member who never bought: no RFM row, stays in the base tier
        ids["none"] = members.create(s, SYSTEM, MemberCreate(phone="13922349999")).member.id
    return sorted(ids.values())


@pytest.fixture
def shop(world: Any, clock: Any) -> list[int]:
    bootstrap.configure()
    apply_document(world.db, rfm_programme())
    return _seed(world.db, clock.now())


def _expected(db: Database, as_of: date) -> tuple[dict[int, dict[str, Any]], dict[int, float]]:
    """The RFM table and P(alive) straight from the analytics package."""
    with db.engine.connect() as conn:
        tx = read_database(
            conn,
            query="SELECT o.external_id, o.member_id, o.occurred_at, o.amount_paid_minor,"
            " o.refunded_minor, NULL AS store, o.channel, m.tier_code AS tier, 1 AS is_member"
            " FROM orders o JOIN member m ON m.id = o.member_id ORDER BY o.id",
            columns=PLATFORM_COLUMNS,
            timezone="Asia/Shanghai",
            naive_timezone="UTC",
            amount_scale=0.01,
        )
    table = {int(r["customer_id"]): r for r in rfm_scores(tx, as_of).iter_rows(named=True)}
    summary = summarise(tx, observation_end=as_of, unit="W")
    x, t_x, big_t = (summary[c].to_numpy().astype("float64") for c in ("frequency", "recency", "T"))
    p = BGNBD.fit(x, t_x, big_t).probability_alive(x, t_x, big_t)
    alive = {int(c): float(v) for c, v in zip(summary["customer_id"], p.tolist(), strict=True)}
    return table, alive


def _state(db: Database) -> tuple[dict[int, tuple[Any, ...]], dict[int, list[str]], int]:
    with db.transaction() as s:
        rfm = {
            r.member_id: (r.r_score, r.f_score, r.m_score, r.score, r.segment, r.p_alive)
            for r in s.scalars(select(MemberRfm))
        }
        tags: dict[int, list[str]] = {}
        for mid, tag in s.execute(
            select(MemberTag.member_id, MemberTag.tag).order_by(MemberTag.tag)
        ):
            tags.setdefault(mid, []).append(tag)
        changes = int(s.scalar(select(func.count()).select_from(TierChange)) or 0)
    return rfm, tags, changes


def test_members_land_in_the_tiers_the_rfm_table_predicts(
    world: Any, clock: Any, shop: list[int]
) -> None:
    db = world.db
    with db.transaction() as s:
        assert {m.tier_code for m in s.scalars(select(Member))} == {"base"}  # no row yet
        report = nightly.refresh(s, clock.now())
        _v, programme = programmes.active(s)
    as_of = clock.now().astimezone(SHANGHAI).date()
    table, alive = _expected(db, as_of)
    assert report.as_of == as_of and report.scored == len(table) == len(shop) - 1
    rfm, tags, _changes = _state(db)
    expected_tiers: dict[int, str] = {}
    for mid in shop:
        row = table.get(mid)
        if row is None:
            assert mid not in rfm and mid not in tags
            expected_tiers[mid] = "base"
            continue
        score = 2 * row["r_score"] + row["f_score"] + row["m_score"]
        assert rfm[mid][:5] == (
            row["r_score"],
            row["f_score"],
            row["m_score"],
            score,
            row["segment"],
        )
        assert rfm[mid][5] == pytest.approx(alive[mid], abs=1e-12)
        assert tags[mid] == [nightly.segment_tag(row["segment"])]
        expected_tiers[mid] = qualifying_tier(programme.tiers, score)
    with db.transaction() as s:
        got = {m.id: m.tier_code for m in s.scalars(select(Member))}
        upgrades = s.scalars(select(TierChange).where(TierChange.reason == "upgrade")).all()
    assert got == expected_tiers
    assert len(set(expected_tiers.values())) >= 3  # the data spread over the ladder
    assert report.upgraded == len(upgrades) == sum(t != "base" for t in expected_tiers.values())
    assert all(u.metric_value >= THRESHOLDS[1] for u in upgrades)
    assert nightly.segment_tag("Can't lose them") == "rfm:cant_lose_them"
    # the member 360 shows them, in Chinese
    champion = next(m for m in shop if m in table and table[m]["segment"] == "Champions")
    make_users(db)
    with console_client(db) as c:
        login(c, db, "admin")
        page = c.get(f"/admin/members/{champion}").text
        never = c.get(f"/admin/members/{shop[-1]}").text
    assert '<td data-testid="rfm-segment">重要价值客户</td>' in page
    assert f'data-testid="rfm-p-alive">{round(alive[champion] * 100)}%</td>' in page
    assert "rfm:champions" in page
    assert "尚未评分" in never
    # the nightly job (through the queue, as the worker runs it) and a second run the same
    # day: same rows and tags, no tier change
    first = _state(db)
    with db.transaction() as s:
        queue.enqueue(s, nightly.JOB_KIND, {}, dedupe_key="rfm-test-1")
    queue.run_until_empty(db)
    assert _state(db)[0].keys() == first[0].keys()
    assert _state(db)[1:] == first[1:]
    with db.transaction() as s:
        again = nightly.refresh(s, clock.now())
    assert (again.upgraded, again.tags_changed, again.removed) == (0, 0, 0)
    assert _state(db) == first


def test_a_condition_on_p_alive_selects_the_right_members(
    world: Any, clock: Any, shop: list[int]
) -> None:
    db = world.db
    with db.transaction() as s:
        nightly.refresh(s, clock.now())
    _table, alive = _expected(db, clock.now().astimezone(SHANGHAI).date())
    want = {mid for mid, p in alive.items() if round(p * 100) >= 50}
    assert 0 < len(want) < len(alive)  # the condition splits the members
    with db.transaction() as s:
        _v, programme = programmes.active(s)
        cond = programme.condition("campaign:alive-bonus")
        assert cond is not None
        picked = set()
        for mid in shop:
            member = s.get(Member, mid)
            assert member is not None
            facts = {
                **orders.member_facts(s, programme, member, clock.now()),
                "member.tier": member.tier_code,
            }
            if conditions.evaluate(cond, facts):
                picked.add(mid)
            if mid in alive:
                assert facts["member.p_alive"] == round(alive[mid] * 100)
                assert facts["member.rfm_segment"] == s.get(MemberRfm, mid).segment  # type: ignore[union-attr]
            else:  # never bought: no facts, the comparison is false
                assert "member.p_alive" not in facts
    assert picked == want


def test_rfm_tiers_are_validated() -> None:
    doc = rfm_programme()
    doc["tiers"]["levels"][-1]["threshold"] = 21  # above 5 * (2 + 1 + 1)
    with pytest.raises(ProgrammeInvalid):
        programmes.parse(doc)
    doc = rfm_programme()
    doc["tiers"]["rfm_weights"] = {"r": 0, "f": 0, "m": 0}
    with pytest.raises(ProgrammeInvalid):
        programmes.parse(doc)


def test_the_migration_matches_the_model(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from loyalist.kit.db import Base

    engine = create_engine(db.url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert [d for d in diffs if "member_rfm" in repr(d)] == []
