"""Reward stock top-up without a new programme version: HQ only, audited, exact under
concurrency, and kept when the next programme version is published."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select
from tests.itest import apply_document, assert_problem, counts, demo_document, new_member
from tests.support import api_client

from loyalist.models import AuditLog, ProgrammeVersion, Reward


@pytest.fixture
def shop(world: Any) -> Any:
    doc = demo_document()
    doc["rewards"] = [
        {"code": "scarce", "name": "Only two", "points": 10, "stock": 2},
        {"code": "endless", "name": "Unlimited", "points": 10},
    ]
    apply_document(world.db, doc)
    return world


def stock(db: Any, code: str = "scarce") -> tuple[int | None, int | None, int]:
    with db.transaction() as s:
        r = s.scalar(select(Reward).where(Reward.code == code))
        assert r is not None
        return r.stock_total, r.stock_remaining, r.stock_added


def test_top_up_adds_stock_without_a_new_version(shop: Any, client: Any) -> None:
    with shop.db.transaction() as s:
        versions = s.scalar(select(ProgrammeVersion.version).order_by(ProgrammeVersion.id.desc()))
    r = client.post("/v1/rewards/scarce/stock", json={"quantity": 5})
    assert r.status_code == 200, r.text
    assert r.json() == {"code": "scarce", "stock_total": 7, "stock_remaining": 7, "stock_added": 5}
    with shop.db.transaction() as s:
        assert (
            s.scalar(select(ProgrammeVersion.version).order_by(ProgrammeVersion.id.desc()))
            == versions
        )
        row = s.scalars(select(AuditLog).where(AuditLog.action == "reward.stock")).one()
        assert row.before == {"stock_remaining": 2}
        assert row.after == {"stock_remaining": 7, "added": 5}


def test_top_up_survives_the_next_programme_version(shop: Any, client: Any) -> None:
    mid = new_member(client, "13900004444")
    client.post(f"/v1/members/{mid}/adjustments", json={"points": 100, "reason": "setup"})
    assert (
        client.post("/v1/redemptions", json={"member_id": mid, "reward": "scarce"}).status_code
        == 201
    )
    assert client.post("/v1/rewards/scarce/stock", json={"quantity": 3}).status_code == 200
    assert stock(shop.db) == (5, 4, 3)
    doc = demo_document()
    doc["rewards"] = [
        {"code": "scarce", "name": "Only two (renamed)", "points": 10, "stock": 2},
        {"code": "endless", "name": "Unlimited", "points": 10},
    ]
    apply_document(shop.db, doc)
    assert stock(shop.db) == (5, 4, 3)


def test_refusals_write_nothing(shop: Any, client: Any) -> None:
    before = counts(shop.db)
    assert_problem(client.post("/v1/rewards/endless/stock", json={"quantity": 1}), 422)
    assert_problem(client.post("/v1/rewards/nope/stock", json={"quantity": 1}), 404)
    for bad in (0, -1, 1_000_001, True, "3", 1.5):
        assert_problem(client.post("/v1/rewards/scarce/stock", json={"quantity": bad}), 422)
    with api_client(shop.db, shop.keys["east"]) as c:
        assert_problem(c.post("/v1/rewards/scarce/stock", json={"quantity": 1}), 403)
    with api_client(shop.db, shop.keys["hq-read"]) as c:
        assert_problem(c.post("/v1/rewards/scarce/stock", json={"quantity": 1}), 403)
    assert counts(shop.db) == before
    assert stock(shop.db) == (2, 2, 0)


def test_concurrent_top_ups_add_up(shop: Any) -> None:
    def go() -> None:
        with api_client(shop.db, shop.keys["hq"]) as c:
            assert c.post("/v1/rewards/scarce/stock", json={"quantity": 3}).status_code == 200

    threads = [threading.Thread(target=go) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stock(shop.db) == (17, 17, 15)
