"""The member's home page shows the pass they hold (zh-CN, and English by the switch)."""

from __future__ import annotations

from typing import Any

from tests.integration.member_web.conftest import make_member, sign_in
from tests.integration.passes.test_passes import T0, _programme

from loyalist.kit.actor import SYSTEM
from loyalist.member import service as members
from loyalist.passes import service as passes


def test_home_page_shows_the_pass_in_chinese(world: Any, clock: Any, app_client: Any) -> None:
    clock.freeze(T0)
    _programme(world)
    person = make_member(world.db, "13812340001")
    c = app_client()
    sign_in(c, world.db, person)
    page = c.get("/m")
    assert page.status_code == 200
    assert 'id="pass"' not in page.text
    with world.db.transaction() as s:
        m = members.get(s, SYSTEM, person.id)
        passes.buy(s, SYSTEM, m, "club-year", purchase_key="home-page-test")
    page = c.get("/m")
    assert page.status_code == 200
    html = page.text
    assert 'id="pass"' in html and "付费会员" in html
    assert '<strong data-testid="pass-name">悦享年卡</strong>' in html
    assert "有效期至 2027年6月10日" in html  # the last local day covered
    assert "消费积分 2 倍" in html and "免运费" in html
