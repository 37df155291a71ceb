"""The member page's referral, assist and group screens (server-rendered, per session)."""

from __future__ import annotations

from typing import Any

from tests.integration.member_web.conftest import csrf_of, make_member, sign_in

from loyalist import bootstrap
from loyalist.documents import service as documents
from loyalist.kit.actor import SYSTEM
from loyalist.referral import config

DOC: dict[str, Any] = {
    "assist": [
        {
            "code": "coffee-help",
            "name": {"zh_CN": "好友助力得咖啡", "en": "Friends help you to a coffee"},
            "helps": 2,
            "hours": 24,
            "rewards": [{"action": "award_points", "params": {"points": 200, "reason": "助力"}}],
        }
    ],
    "groups": [
        {
            "code": "duo",
            "name": {"zh_CN": "双人团", "en": "Duo"},
            "size": 2,
            "hours": 24,
            "rewards": [{"action": "award_points", "params": {"points": 150, "reason": "拼团"}}],
        }
    ],
}


def test_code_link_qr_share_link_prefills_the_join_form_and_shared_devices_are_recorded(
    world: Any, app_client: Any
) -> None:
    alice = make_member(world.db, "13812340001")
    c = app_client()
    sign_in(c, world.db, alice)
    page = c.get("/m/referral")
    assert page.status_code == 200, page.text
    assert "邀请好友" in page.text
    code = page.text.split('data-testid="referral-code"')[1].split(">")[1].split("<")[0]
    assert 1 <= len(code) <= 32
    assert f'value="http://testserver/m/join?ref={code}"' in page.text
    assert "loyalist_device" in page.headers["set-cookie"]
    svg = c.get("/m/referral/qr.svg")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert svg.text.startswith("<svg")
    png = c.get("/m/referral/qr.png")
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    # The friend opens the link: the join form carries the code.
    friend = app_client()
    join = friend.get(f"/m/join?ref={code}")
    assert f'name="referral" type="text" maxlength="32" autocomplete="off" value="{code}"' in (
        join.text
    )
    assert 'value="&lt;' not in friend.get("/m/join?ref=<script>").text
    # Signed out: no code.
    assert friend.get("/m/referral").status_code == 303


def test_assist_and_group_through_the_member_page(world: Any, app_client: Any) -> None:
    bootstrap.configure()
    with world.db.transaction() as s:
        documents.publish(s, SYSTEM, config.KIND, DOC, note="test")
    people = [make_member(world.db, f"1381234001{i}") for i in range(3)]
    clients = []
    for p in people:
        cl = app_client()
        sign_in(cl, world.db, p)
        clients.append(cl)
    starter, f1, f2 = clients
    listing = starter.get("/m/campaigns")
    assert "好友助力得咖啡" in listing.text and "双人团" in listing.text
    r = starter.post("/m/assists", data={"csrf": csrf_of(listing.text), "campaign": "coffee-help"})
    assert r.status_code == 303
    url = r.headers["location"]
    own = starter.get(url)
    assert "已有 0 / 2 位好友助力" in own.text and 'data-testid="help"' not in own.text
    tokens = []
    for friend in (f1, f2):
        view = friend.get(url)
        assert 'data-testid="help"' in view.text
        tokens.append(csrf_of(view.text))
        done = friend.post(f"{url}/help", data={"csrf": tokens[-1]})
        assert done.status_code == 303
    assert "感谢你的助力" in f1.get(url).text
    again = f1.post(f"{url}/help", data={"csrf": tokens[0]})
    assert again.status_code == 409 and "已结束" in again.text
    final = starter.get(url)
    assert "已有 2 / 2 位好友助力" in final.text and 'data-status="completed"' in final.text
    home = starter.get("/m")
    assert 'href="/m/referral"' in home.text
    # A duo: open, a friend joins, complete.
    g = f1.post("/m/groups", data={"csrf": csrf_of(f1.get("/m/campaigns").text), "campaign": "duo"})
    gurl = g.headers["location"]
    view = f2.get(gurl)
    assert 'data-testid="join-group"' in view.text
    assert f2.post(f"{gurl}/join", data={"csrf": csrf_of(view.text)}).status_code == 303
    assert 'data-status="complete"' in f1.get(gurl).text
    # Forged form: refused.
    assert f2.post(f"{gurl}/join", data={"csrf": "x" * 30}).status_code == 403
