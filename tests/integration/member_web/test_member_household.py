"""The member page's household screen /m/household: the main member invites by phone, the
invited member accepts on their own page, sees the pool and who earned what; the main
member allows spending and removes; a member cannot act on another's household."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.integration.member_web.conftest import Person, csrf_of, make_member, sign_in

from loyalist.ledger import service as ledger
from loyalist.models import Household, HouseholdInvitation

Clients = Callable[..., TestClient]


def _signed_in(app_client: Clients, db: Any, who: Person, lang: str = "zh-CN") -> TestClient:
    c = app_client()
    c.headers["Accept-Language"] = lang
    sign_in(c, db, who)
    return c


def _post(c: TestClient, path: str, **data: str) -> str:
    page = c.get("/m/household")
    r = c.post(path, data={"csrf": csrf_of(page.text), **data})
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


def test_invite_accept_pool_permission_and_remove(world: Any, app_client: Clients) -> None:
    db = world.db
    mom = make_member(db, "13812340001", points=800, name="李梅")
    kid = make_member(db, "13812340002", name="王小明")
    stranger = make_member(db, "13812340003", name="赵六")
    m = _signed_in(app_client, db, mom)
    page = m.get("/m/household")
    assert page.status_code == 200
    assert 'lang="zh-CN"' in page.text and "邀请家人" in page.text
    assert _post(m, "/m/household/invite", phone="13812340002") == "/m/household?done=invited"
    assert _post(m, "/m/household/invite", phone="13899999999") == (
        "/m/household?done=failed-member_not_found"
    )
    with db.transaction() as s:
        inv_id = s.scalar(select(HouseholdInvitation.id))
        hid = s.scalar(select(Household.id))
    # Someone else cannot answer the kid's invitation.
    other = _signed_in(app_client, db, stranger)
    assert _post(other, f"/m/household/invitations/{inv_id}/accept") == (
        "/m/household?done=failed-household_invitation_not_found"
    )
    k = _signed_in(app_client, db, kid)
    page = k.get("/m/household")
    assert "李**" in page.text and "家庭账户邀请" in page.text
    assert _post(k, f"/m/household/invitations/{inv_id}/accept") == "/m/household?done=joined"
    page = k.get("/m/household")
    assert re.search(r'data-testid="pool-available">800<', page.text), page.text
    assert "仅累积积分" in page.text and "退出家庭账户" in page.text
    # The kid cannot grant themselves spending; the main member can.
    assert _post(k, f"/m/household/members/{kid.id}/permission", can_spend="1") == (
        "/m/household?done=not-main"
    )
    assert _post(m, f"/m/household/members/{kid.id}/permission", can_spend="1") == (
        "/m/household?done=saved"
    )
    with db.transaction() as s:
        acct = ledger.lock(s, kid.id, "/")
        assert (acct.row.owner_member_id, acct.can_spend) == (mom.id, True)
    m.get("/m/lang/en?next=/m/household")
    assert "Who earned what" in m.get("/m/household").text
    m.get("/m/lang/zh_CN?next=/m/household")
    assert _post(m, f"/m/household/members/{kid.id}/leave") == "/m/household?done=left"
    page = m.get("/m/household")
    assert "退出" in page.text  # the former member stays listed, with what they earned
    with db.transaction() as s:
        assert ledger.account_id_of(s, kid.id) != ledger.account_id_of(s, mom.id)
        assert s.get(Household, hid).status == "active"
    assert "/m/household" in m.get("/m").text


def test_withdraw_on_the_page_and_join_with_own_points_by_consent(
    world: Any, app_client: Clients
) -> None:
    db = world.db
    mom = make_member(db, "13812350001", points=800, name="李梅")
    dad = make_member(db, "13812350002", points=300, name="王刚")
    kid = make_member(db, "13812350003", name="王小明")
    m = _signed_in(app_client, db, mom)
    assert _post(m, "/m/household/invite", phone="13812350003") == "/m/household?done=invited"
    assert _post(m, "/m/household/invite", phone="13812350002") == "/m/household?done=invited"
    with db.transaction() as s:
        invs = {i.member_id: i.id for i in s.scalars(select(HouseholdInvitation))}
    page = m.get("/m/household")
    assert page.text.count('data-testid="withdraw"') == 2 and "撤回" in page.text
    # only the main member withdraws, and only invitations of their household
    k = _signed_in(app_client, db, kid)
    assert _post(k, f"/m/household/invitations/{invs[kid.id]}/withdraw") == (
        "/m/household?done=failed-household_invitation_not_found"
    )
    assert _post(m, f"/m/household/invitations/{invs[kid.id]}/withdraw") == (
        "/m/household?done=withdrawn"
    )
    assert "已撤回邀请" in m.get("/m/household?done=withdrawn").text
    assert 'data-testid="invitation"' not in k.get("/m/household").text
    assert _post(k, f"/m/household/invitations/{invs[kid.id]}/accept") == (
        "/m/household?done=failed-household_invitation_closed"
    )
    # dad holds 300 points of his own: the page asks for consent to move them
    d = _signed_in(app_client, db, dad)
    page = d.get("/m/household")
    assert 'data-testid="transfer-points"' in page.text and "将我的积分转入积分池" in page.text
    assert _post(d, f"/m/household/invitations/{invs[dad.id]}/accept") == (
        "/m/household?done=failed-household_points_to_transfer"
    )
    with db.transaction() as s:
        assert ledger.own_account(s, dad.id).available == 300
    assert _post(d, f"/m/household/invitations/{invs[dad.id]}/accept", transfer_points="1") == (
        "/m/household?done=joined"
    )
    assert re.search(r'data-testid="pool-available">1,?100<', d.get("/m/household").text)
    with db.transaction() as s:
        assert ledger.own_account(s, dad.id).available == 0
        assert ledger.own_account(s, mom.id).available == 1100
