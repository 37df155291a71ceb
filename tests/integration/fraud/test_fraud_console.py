"""Console: the fraud review queue in Chinese — held points listed with their rule and
reason, decided by a reviewer (audited; refused to a role without points.approve), the
rules with a 90-day backtest beside shadow mode, and frozen members."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.console import console_client, login, make_users, post
from tests.itest import rows
from tests.support import order_payload

from loyalist.documents import service as documents
from loyalist.fraud import config
from loyalist.kit.actor import SYSTEM

RULES = {
    "rules": [
        {
            "code": "device-ring",
            "on": ["order"],
            "when": {"gte": {"device.members.1d": 2}},
            "outcome": "hold",
            "reason": "同一设备当天出现2个及以上会员",
        },
        {
            "code": "big-order",
            "on": ["order"],
            "when": {"gt": {"request.amount_minor": 5000}},
            "outcome": "hold",
            "reason": "大额订单",
            "mode": "shadow",
        },
    ]
}


@pytest.fixture
def console(world: Any) -> Iterator[TestClient]:
    make_users(world.db)
    with console_client(world.db) as c:
        yield c


def test_held_points_are_decided_in_the_chinese_console(
    world: Any, client: Any, console: TestClient
) -> None:
    with world.db.transaction() as s:
        documents.publish(s, SYSTEM, config.KIND, RULES, note="test")
    ids = []
    for i in range(2):
        r = client.post("/v1/members", json={"phone": f"1380000000{i}", "home_store": "sh1"})
        ids.append(r.json()["id"])
        body = {**order_payload(f"C-{i}", ids[-1]), "device_id": "dev-shared"}
        assert client.post("/v1/orders", json=body).status_code == 201
    assert client.put(f"/v1/fraud/frozen/{ids[0]}", json={"reason": "疑似盗号"}).status_code == 200
    (review,) = client.get("/v1/fraud/reviews").json()["items"]
    assert review["member_id"] == ids[1]

    # a store clerk has no points.approve: no page, no decision
    csrf = login(console, world.db, "sh1.staff")
    assert console.get("/admin/fraud").status_code == 403
    assert post(console, f"/admin/fraud/reviews/{review['id']}/approve", csrf).status_code == 403

    csrf = login(console, world.db, "east.manager")
    page = console.get("/admin/fraud?backtest=big-order")
    assert page.status_code == 200
    html = page.text
    assert "风控" in html and "待审核" in html and "同一设备当天出现2个及以上会员" in html
    assert f'data-review-id="{review["id"]}"' in html
    assert "影子模式（仅记录）" in html and "疑似盗号" in html
    # the backtest of the shadow rule: both orders (¥100 each) hit, as shadow mode logged
    assert 'data-kpi="hits" data-value="2"' in html
    assert 'data-kpi="shadow_hits" data-value="2"' in html
    r = post(console, f"/admin/fraud/reviews/{review['id']}/approve", csrf, {"note": "已核实"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/fraud?notice=approved"
    assert "已通过，积分已可用。" in console.get(r.headers["location"]).text
    (audit,) = rows(
        world.db, "SELECT actor, action FROM audit_log WHERE action = 'fraud.review.approve'"
    )
    assert audit["actor"] == "user:east.manager"
    assert client.get("/v1/fraud/reviews").json()["items"] == []
