"""The world the contract test runs against: the standard organisation, the demo programme,
an API key per scope, and a few members with orders, a return and a redemption, so that
ids in paths and filters find real rows as well as absent ones."""

from __future__ import annotations

from tests.support import World, api_client, build_world, order_payload

from loyalist.kit.db import Database

MONDAY = "2026-06-08T10:00:00+08:00"


def seed(url: str) -> World:
    db = Database(url)
    try:
        world = build_world(db)
        with api_client(db, world.keys["hq"]) as c:
            for i, store in enumerate(["sh1", "sh2", "sz1", "gz1"]):
                r = c.post(
                    "/v1/members",
                    json={"phone": f"1380000000{i}", "name": f"会员{i}", "home_store": store},
                )
                assert r.status_code == 201, r.text
                mid = r.json()["id"]
                r = c.post(
                    f"/v1/members/{mid}/adjustments", json={"points": 5000, "reason": "seed"}
                )
                assert r.status_code == 201, r.text
                lines = [
                    {"sku": "LATTE", "category": "coffee", "quantity": 2, "unit_price_minor": 3000}
                ]
                r = c.post(
                    "/v1/orders",
                    json=order_payload(
                        f"seed-{i}", mid, store=store, paid=6000, lines=lines, occurred_at=MONDAY
                    ),
                )
                assert r.status_code == 201, r.text
                oid = r.json()["id"]
                r = c.post(
                    f"/v1/orders/{oid}/returns",
                    json={"return_id": f"r-{i}", "lines": [{"line_no": 1, "quantity": 1}]},
                )
                assert r.status_code == 201, r.text
                r = c.post("/v1/redemptions", json={"member_id": mid, "reward": "upsize"})
                assert r.status_code == 201, r.text
        return world
    finally:
        db.dispose()
