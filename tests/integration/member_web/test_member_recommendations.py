"""The member page's "为您推荐" section (issue 14 item 6): the member's own suggestions
with personalisation consent, the store's popular ones without; rewards filtered by the
member's points; reasons in Chinese."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from tests.integration.member_web.conftest import make_member, sign_in

from loyalist.kit.clock import utcnow
from loyalist.member import consent as consents
from loyalist.models import Recommendation

Clients = Callable[..., TestClient]


def _row(member_id: int | None, kind: str, item: str, rank: int, source: str) -> Recommendation:
    return Recommendation(
        member_id=member_id,
        scope="",
        kind=kind,
        item=item,
        category="bakery" if kind == "product" else None,
        rank=rank,
        score=1.0,
        source=source,
        because="LATTE" if source == "als" else None,
        computed_at=utcnow(),
    )


def test_home_shows_own_suggestions_with_consent_and_popular_ones_without(
    app_client: Clients, world: Any
) -> None:
    db = world.db
    fan = make_member(db, "13800138001", points=1500)
    other = make_member(db, "13800138002", points=1500)
    with db.transaction() as s:
        consents.append(
            s, fan.id, "personalisation", "any", True, text_version="t", source="t", actor="t"
        )
        s.add_all(
            [
                _row(fan.id, "product", "BAGEL", 0, "als"),
                _row(fan.id, "reward", "coupon-10", 0, "als"),  # 1,000 points: affordable
                _row(fan.id, "reward", "latte", 1, "als"),  # 2,000 points: not yet
                _row(None, "product", "MUFFIN", 0, "popular"),
            ]
        )
    c = app_client()
    sign_in(c, db, fan)
    page = c.get("/m").text
    assert "为您推荐" in page
    assert 'data-recommendation="BAGEL"' in page and "您买过LATTE，这款也合您口味" in page
    assert 'data-recommendation="coupon-10"' in page
    assert 'data-recommendation="latte"' not in page
    assert 'data-recommendation="MUFFIN"' not in page

    c2 = app_client()
    sign_in(c2, db, other)
    page2 = c2.get("/m").text
    assert 'data-recommendation="MUFFIN"' in page2 and "会员热门之选" in page2
    assert 'data-recommendation="BAGEL"' not in page2
    assert "开启“个性化推荐”授权" in page2
