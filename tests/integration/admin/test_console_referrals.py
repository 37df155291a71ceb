"""Console: referrals on hold with a reviewer's decision (audited, permission-checked), a
member's referrals in the 360 view, and the dashboard's referral figures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.console import console_client, login, make_users, post
from tests.itest import new_member

from loyalist import bootstrap
from loyalist.events import consumers
from loyalist.models import AuditLog, Referral


@pytest.fixture
def console(world: Any) -> Iterator[TestClient]:
    make_users(world.db)
    with console_client(world.db) as c:
        yield c


def held_referral(world: Any, client: Any) -> tuple[int, int, int]:
    bootstrap.configure()
    alice = new_member(client, "13800000001", home_store="sh1")
    code = client.get(f"/v1/members/{alice}/referral").json()["code"]
    bob = new_member(client, "13800000002", referral_code=code, home_store="sh1")
    consumers.run_pending(world.db)
    for mid in (alice, bob):
        r = client.post(
            "/v1/referrals/signals",
            json={"member_id": mid, "kind": "payment_token", "value": "tok_visa_4242"},
        )
        assert r.status_code == 200, r.text
    with world.db.transaction() as s:
        ref = s.scalar(select(Referral).where(Referral.referred_id == bob))
        assert ref is not None and ref.status == "on_hold"
        return alice, bob, ref.id


def test_held_referrals_are_decided_in_the_console(
    world: Any, client: Any, console: TestClient
) -> None:
    alice, bob, rid = held_referral(world, client)
    # An analyst sees the queue but has no buttons and may not decide.
    csrf = login(console, world.db, "analyst")
    page = console.get("/admin/referrals")
    assert page.status_code == 200 and f'data-referral-id="{rid}"' in page.text
    assert 'data-testid="approve"' not in page.text
    assert post(console, f"/admin/referrals/{rid}/approve", csrf).status_code == 403
    # A store elsewhere does not see it at all.
    csrf = login(console, world.db, "sz1.staff")
    assert f'data-referral-id="{rid}"' not in console.get("/admin/referrals").text
    csrf = login(console, world.db, "admin")
    console.cookies.set("loyalist_lang", "zh_CN")
    page = console.get("/admin/referrals")
    assert "支付卡相同" in page.text and 'data-testid="approve"' in page.text
    assert 'data-kpi="referrals_on_hold" data-value="1"' in page.text
    r = post(console, f"/admin/referrals/{rid}/reject", csrf, {"note": "同一张卡"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/referrals?notice=rejected"
    assert "推荐已拒绝" in console.get(r.headers["location"]).text
    with world.db.transaction() as s:
        ref = s.get(Referral, rid)
        assert ref is not None and (ref.status, ref.reason) == ("rejected", "review_rejected")
        assert ref.decided_by == "user:admin"
        audit = list(
            s.scalars(
                select(AuditLog).where(
                    AuditLog.object_type == "referral", AuditLog.action == "referral.reject"
                )
            )
        )
        assert [(a.actor, a.after) for a in audit] == [
            ("user:admin", {"status": "rejected", "reason": "review_rejected", "note": "同一张卡"})
        ]
        assert audit[0].before == {"status": "on_hold", "hold_reasons": ["payment_token"]}
    assert post(console, f"/admin/referrals/{rid}/approve", csrf).status_code == 409
    # The 360 view of the referrer lists the friend; the friend's shows the referrer.
    html = console.get(f"/admin/members/{alice}").text
    assert 'data-testid="member-referrals"' in html and f'data-referral-id="{rid}"' in html
    assert "推荐人" in console.get(f"/admin/members/{bob}").text
    dash = console.get("/admin/dashboard")
    assert dash.status_code == 200
    assert 'data-kpi="referrals" data-value="1"' in dash.text
    assert 'data-kpi="referral_conversion" data-value="0.0"' in dash.text
