"""Console: the households list and the member 360 view's household section (zh-CN, with
English), rows in the staff member's scope only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.e2e.console.data import Shop, seed, sign_in

from loyalist.app import create_app
from loyalist.config import Settings
from loyalist.household import service as households
from loyalist.household.schemas import InvitationCreate
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import Member, Reward
from loyalist.reward import service as rewards
from loyalist.reward.schemas import RedemptionCreate


@pytest.fixture
def shop(db: Database, clock: Any) -> Shop:
    return seed(db)


@pytest.fixture
def console(db: Database, shop: Shop) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db.url), db=db)
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


def test_households_list_and_the_360_section(db: Database, shop: Shop, console: Any) -> None:
    alice = shop.members["alice"]
    with db.transaction() as s:
        kin = members.create(
            s, SYSTEM, MemberCreate(phone="13911112222", name="家人", home_store="sh1")
        ).member.id
        hid = households.create(s, SYSTEM, alice)[1].id
        _n, inv = households.invite(s, SYSTEM, hid, InvitationCreate(member_id=kin, can_spend=True))
        households.accept(s, SYSTEM, inv.id)
        alice_no = s.get(Member, alice).member_no
        kin_no = s.get(Member, kin).member_no
    sign_in(console, "admin", "zh_CN")
    page = console.get("/admin/households").text
    assert "家庭账户" in page and f'data-household-id="{hid}"' in page and alice_no in page
    view = console.get(f"/admin/members/{alice}").text
    assert 'data-testid="member-household"' in view
    assert kin_no in view and "主账户" in view and "家庭成员" in view
    assert 'data-testid="member-household"' in console.get(f"/admin/members/{kin}").text
    en = TestClient(console.app)
    sign_in(en, "admin", "en")
    assert "Family member" in en.get(f"/admin/members/{alice}").text
    # A store outside the household's scope lists nothing.
    sz = TestClient(console.app)
    sign_in(sz, "sz1")
    assert f'data-household-id="{hid}"' not in sz.get("/admin/households").text


def test_a_pool_entry_names_the_reward_another_member_redeemed(
    db: Database, shop: Shop, console: Any
) -> None:
    """Alice's page lists her pool's entries, a household member's redemption among them:
    it names the reward (as her own redemptions do), never the raw reason text."""
    alice = shop.members["alice"]
    with db.transaction() as s:
        kin = members.create(
            s, SYSTEM, MemberCreate(phone="13911113333", name="家人二", home_store="sh1")
        ).member.id
        hid = households.create(s, SYSTEM, alice)[1].id
        _n, inv = households.invite(s, SYSTEM, hid, InvitationCreate(member_id=kin, can_spend=True))
        households.accept(s, SYSTEM, inv.id)
        name = s.scalar(select(Reward.name).where(Reward.code == "americano"))
    sign_in(console, "admin", "zh_CN")
    spent = f"兑换 {name}，使用"
    before = console.get(f"/admin/members/{alice}").text.count(spent)  # her own (seed)
    assert before >= 1
    with db.transaction() as s:
        rewards.redeem(s, SYSTEM, RedemptionCreate(member_id=kin, reward="americano"))
    view = console.get(f"/admin/members/{alice}").text
    assert view.count(spent) > before  # the family member's, named
    assert "redeemed 1 ×" not in view
