"""Demo data for the fraud controls (风控, issue 13): sensible rules (two live, two in
shadow mode) and a few orders from one shared device whose points wait in the review
queue, plus one frozen member."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from loyalist.documents import service as documents
from loyalist.fraud import config
from loyalist.fraud import service as fraud
from loyalist.kit.actor import SYSTEM
from loyalist.kit.clock import utcnow
from loyalist.kit.db import Database
from loyalist.models import Member, OrgUnit
from loyalist.order import service as orders
from loyalist.order.schemas import OrderCreate

DOCUMENT: dict[str, Any] = {
    "rules": [
        {
            "code": "device-burst",
            "on": ["redemption"],
            "when": {"gt": {"device.redemptions.1m": 10}},
            "outcome": "block",
            "reason": "同一设备一分钟内兑换超过10次",
        },
        {
            "code": "device-ring",
            "on": ["order"],
            "when": {"gte": {"device.members.1d": 3}},
            "outcome": "hold",
            "reason": "同一设备当天出现3个及以上会员",
        },
        {
            "code": "member-orders-hour",
            "on": ["order"],
            "when": {"gt": {"member.orders.1h": 5}},
            "outcome": "hold",
            "reason": "同一会员一小时内下单超过5笔",
            "mode": "shadow",
        },
        {
            "code": "member-points-day",
            "on": ["order"],
            "when": {"gt": {"member.orders_points.1d": 5000}},
            "outcome": "hold",
            "reason": "同一会员当天获得积分超过5000",
            "mode": "shadow",
        },
    ]
}
DEVICE = "demo-shared-phone-0001"


def seed(db: Database) -> dict[str, int]:
    """Publish the rules, then five members order from one phone: the last three are held."""
    with db.transaction() as s:
        documents.publish(s, SYSTEM, config.KIND, DOCUMENT, note="风控规则上线（两条影子模式）")
        store = s.scalar(select(OrgUnit).where(OrgUnit.kind == "store").order_by(OrgUnit.id))
        ring = list(s.scalars(select(Member.id).order_by(Member.id.desc()).limit(6)))
    if store is None or len(ring) < 6:
        return {"held": 0, "frozen": 0}
    now = utcnow()
    for i, mid in enumerate(ring[:5]):
        data = OrderCreate.model_validate(
            {
                "external_id": f"DEMO-RISK-{i + 1:03d}",
                "member_id": mid,
                "store": store.code,
                "occurred_at": now.isoformat(),
                "amount_paid_minor": 3800 + 500 * i,
                "device_id": DEVICE,
                "lines": [
                    {
                        "sku": "LATTE",
                        "category": "coffee",
                        "quantity": 1,
                        "unit_price_minor": 3800 + 500 * i,
                    }
                ],
            }
        )
        with db.transaction() as s:
            orders.record(s, SYSTEM, data)
    with db.transaction() as s:
        fraud.freeze(s, SYSTEM, ring[5], "演示：疑似账号被盗，暂停兑换")
        held = len(fraud.reviews(s, SYSTEM))
    return {"held": held, "frozen": 1}
