"""The audit trail: every change through the API or the console leaves one row saying who
(user or key), when, what, and the state before and after; HQ admins search it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from tests.console import console_client, login, make_users, post
from tests.integration.journey.test_journeys_api import WIN_BACK
from tests.itest import apply_document, counts, demo_document
from tests.support import api_client, order_payload

from loyalist import bootstrap
from loyalist.audit import service as audit
from loyalist.config import get_settings
from loyalist.documents import service as documents
from loyalist.errors import Forbidden
from loyalist.fraud import service as fraud
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.clock import utcnow
from loyalist.merge import service as merges
from loyalist.models import ApiKey, AuditLog, OrgUnit, StaffUser
from loyalist.programme import service as programmes
from loyalist.staff import service as staff

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# API routes that change nothing (asserted: no row in any table).
READ_ONLY_POSTS = {
    ("POST", "/v1/programme/dry-run"),
    ("POST", "/v1/orders/quote"),
    ("POST", "/v1/coupons/validate"),
    ("POST", "/v1/journeys/{key}/dry-run"),
}
# What the new-feature steps need: referral rules with one assist and one group campaign, and
# habits points for a check-in and a review.
REFERRALS: dict[str, Any] = {
    "referral": {
        "rewards": {
            "friend": [{"action": "award_points", "params": {"points": 100, "reason": "欢迎礼"}}]
        }
    },
    "assist": [
        {
            "code": "coffee-help",
            "name": {"zh_CN": "好友助力得咖啡", "en": "Friends help you to a coffee"},
            "helps": 3,
            "hours": 24,
            "rewards": [{"action": "award_points", "params": {"points": 200, "reason": "助力"}}],
        }
    ],
    "groups": [
        {
            "code": "trio",
            "name": {"zh_CN": "三人团", "en": "Team of three"},
            "size": 3,
            "hours": 24,
            "rewards": [{"action": "award_points", "params": {"points": 150, "reason": "拼团"}}],
        }
    ],
}
HABITS: dict[str, Any] = {"activities": {"checkin": {"points": 5}, "review": {"points": 20}}}
COUPON = {
    "code": "ten-off",
    "name": "满50减10",
    "name_en": "¥10 off ¥50",
    "kind": "amount_off",
    "amount_minor": 1000,
    "min_spend_minor": 5000,
    "limit_per_member": None,
    "valid_days": 7,
}
# Rows that belong to the whole brand, not to the member's store.
ORG_WIDE = {
    "coupon.template.create",
    "coupon.batch.create",
    "document.publish",
    "journey.pause",
    "journey.resume",
}


def _key_identity(world: Any, scope: str) -> tuple[str, str]:
    secret: str = world.keys[scope]
    prefix = secret[: secret.index("_", 3)]
    with world.db.transaction() as s:
        key_id = s.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix))
    return f"apikey:{prefix}", f"key:{key_id}"


def _audit_rows(world: Any, after_id: int = 0) -> list[dict[str, Any]]:
    with world.db.transaction() as s:
        q = select(AuditLog).where(AuditLog.id > after_id).order_by(AuditLog.id)
        return [
            {c.name: getattr(r, c.name) for c in AuditLog.__table__.columns} for r in s.scalars(q)
        ]


def _last_id(world: Any) -> int:
    with world.db.transaction() as s:
        return int(s.scalar(select(func.coalesce(func.max(AuditLog.id), 0))) or 0)


def _path(world: Any, code: str) -> str:
    with world.db.transaction() as s:
        path = s.scalar(select(OrgUnit.path).where(OrgUnit.code == code))
    assert path is not None
    return str(path)


def _keep(ids: dict[str, int], name: str, r: Any) -> Any:
    """Remember the id a create answered with (for the steps that follow)."""
    ids[name] = r.json()["id"]
    return r


def _sell_a_pass(world: Any) -> None:
    """Publish the programme with a pass on sale (paid membership, issue 15 item 7)."""
    doc = demo_document()
    doc["passes"] = [
        {
            "code": "club-year",
            "name": "悦享年卡",
            "price_minor": 9900,
            "period": {"years": 1},
            "benefits": {"points_multiplier": "2", "refund_days": 7},
        }
    ]
    apply_document(world.db, doc)


def _api_write_routes(client: Any) -> set[tuple[str, str]]:
    """Every write route of the API, from its OpenAPI document (the contract)."""
    out: set[tuple[str, str]] = set()
    for path, ops in client.app.openapi()["paths"].items():
        if path.startswith("/v1"):
            out |= {(m.upper(), path) for m in ops if m.upper() in WRITE_METHODS}
    return out


Step = tuple[str, str, Callable[[Any, dict[str, int]], Any], str | None, str]


@pytest.fixture
def webhooks_on_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The webhook endpoint the steps register is on 127.0.0.1."""
    monkeypatch.setenv("LOYALIST_WEBHOOKS_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("LOYALIST_WEBHOOKS_ALLOW_PRIVATE")
    get_settings.cache_clear()


@pytest.mark.usefixtures("webhooks_on_loopback")
def test_every_api_write_leaves_exactly_one_audit_row_naming_the_key(
    world: Any, clock: Any
) -> None:
    actor, principal = _key_identity(world, "hq")
    sh1 = _path(world, "sh1")
    ids: dict[str, int] = {}

    def join(c: Any, ids: dict[str, int]) -> Any:
        r = c.post(
            "/v1/members", json={"phone": "13900001111", "name": "王芳", "home_store": "sh1"}
        )
        ids["member"] = r.json()["id"]
        return r

    def order(c: Any, ids: dict[str, int]) -> Any:
        r = c.post("/v1/orders", json=order_payload("A-1", ids["member"], paid=12_000))
        ids["order"] = r.json()["id"]
        return r

    def redeem(c: Any, ids: dict[str, int]) -> Any:
        r = c.post("/v1/redemptions", json={"member_id": ids["member"], "reward": "americano"})
        ids["redemption"] = r.json()["id"]
        return r

    def redeem_another(name: str) -> Callable[[Any, dict[str, int]], None]:
        def setup(c: Any, ids: dict[str, int]) -> None:
            r = c.post(
                f"/v1/members/{ids['member']}/adjustments", json={"points": 2000, "reason": "gift"}
            )
            assert r.status_code == 201, r.text
            r = c.post("/v1/redemptions", json={"member_id": ids["member"], "reward": "latte"})
            assert r.status_code == 201, r.text
            ids[name] = r.json()["id"]
            ids[f"{name}.code"] = r.json()["code"]

        return setup

    def pending_request(name: str) -> Callable[[Any, dict[str, int]], None]:
        """A region key asks for more than the threshold: a request for a second person."""

        def setup(c: Any, ids: dict[str, int]) -> None:
            with api_client(world.db, world.keys["east"]) as region:
                r = region.post(
                    f"/v1/members/{ids['member']}/adjustments",
                    json={"points": 9000, "reason": "store opening gift"},
                )
            assert r.status_code == 202, r.text
            ids[name] = r.json()["id"]

        return setup

    def join_another(c: Any, ids: dict[str, int], name: str, phone: str) -> None:
        r = c.post("/v1/members", json={"phone": phone, "home_store": "sh1"})
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]

    def same_device() -> Callable[[Any, dict[str, int]], None]:
        """The referrer was seen on a device: the friend's step on it holds the referral."""

        def setup(c: Any, ids: dict[str, int]) -> None:
            r = c.post(
                "/v1/referrals/signals",
                json={"member_id": ids["member"], "kind": "device_id", "value": "IDFA-1"},
            )
            assert r.status_code == 200, r.text

        return setup

    def claim(c: Any, ids: dict[str, int]) -> Any:
        code = c.get(f"/v1/members/{ids['member']}/referral").json()["code"]
        return _keep(
            ids,
            "referral",
            c.post("/v1/referrals", json={"member_id": ids["friend"], "code": code}),
        )

    def issue_coupon(c: Any, ids: dict[str, Any]) -> Any:
        r = c.post(f"/v1/members/{ids['member']}/coupons", json={"template": "ten-off"})
        ids["coupon.code"] = r.json()["code"]
        return r

    def duplicate_pair(c: Any, ids: dict[str, Any]) -> None:
        for phone in ("13900001116", "13900001117"):
            r = c.post(
                "/v1/members",
                json={
                    "phone": phone,
                    "home_store": "sh1",
                    "name": "重复",
                    "birthday": "1991-01-01",
                },
            )
            assert r.status_code == 201, r.text
        with world.db.transaction() as s:
            merges.find_candidates(s)
        ids["candidate"] = c.get("/v1/duplicate-candidates").json()["items"][0]["id"]

    def invite_another(name: str, phone: str) -> Callable[[Any, dict[str, int]], None]:
        def setup(c: Any, ids: dict[str, int]) -> None:
            join_another(c, ids, name, phone)
            r = c.post(
                f"/v1/households/{ids['household']}/invitations", json={"member_id": ids[name]}
            )
            assert r.status_code == 201, r.text
            ids[f"{name}.invitation"] = r.json()["id"]

        return setup

    bootstrap.configure()
    with world.db.transaction() as s:
        documents.publish(s, SYSTEM, "referrals", REFERRALS, note="audit test")
        documents.publish(s, SYSTEM, "habits", HABITS, note="audit test")

    def held_order(c: Any, ids: dict[str, Any]) -> None:
        """A fraud rule holds an order's points for review (then the rules are withdrawn)."""
        hold = {"code": "all", "on": ["order"], "when": {"gte": {"request.points": 1}}}
        rule = {**hold, "outcome": "hold", "reason": "审计测试"}
        with world.db.transaction() as s:
            documents.publish(s, SYSTEM, "fraud", {"rules": [rule]}, note="audit test")
        r = c.post("/v1/orders", json=order_payload("HELD-1", ids["member"]))
        assert r.status_code == 201, r.text
        with world.db.transaction() as s:
            documents.publish(s, SYSTEM, "fraud", {"rules": []}, note="audit test")
            ids["review"] = fraud.reviews(s, SYSTEM)[0].id

    # Run before their step, outside what the step is checked for.
    setups = {
        "/v1/adjustment-requests/{request_id}/approve": pending_request("to_approve"),
        "/v1/adjustment-requests/{request_id}/reject": pending_request("to_reject"),
        "/v1/redemptions/{redemption_id}/collect": redeem_another("by_id"),
        "/v1/redemptions/collect": redeem_another("by_code"),
        # referrals, assists, groups, privacy: a second member to claim, help, join or erase
        "/v1/referrals": lambda c, i: join_another(c, i, "friend", "13900001112"),
        "/v1/referrals/signals": same_device(),
        "/v1/members/{member_id}/erase": lambda c, i: join_another(c, i, "gone", "13900001113"),
        # identity merge (issue 13 item 2): two members to merge, a candidate pair to dismiss
        "/v1/merges": lambda c, i: [
            join_another(c, i, "keep", "13900001114"),
            join_another(c, i, "merged", "13900001115"),
        ],
        "/v1/duplicate-candidates/{candidate_id}/dismiss": duplicate_pair,
        # households (issue 13): two more members to invite, one accepts and one declines
        "/v1/households/{household_id}/invitations": lambda c, i: join_another(
            c, i, "kin", "13900001118"
        ),
        "/v1/households/invitations/{invitation_id}/decline": invite_another("kin2", "13900001119"),
        "/v1/households/{household_id}/invitations/{invitation_id}/withdraw": invite_another(
            "kin3", "13900001120"
        ),
        "/v1/fraud/reviews/{review_id}/decision": held_order,  # fraud controls (issue 13)
        # paid membership (issue 15 item 7): a programme that sells a pass
        "/v1/members/{member_id}/passes": lambda c, i: _sell_a_pass(world),
    }
    steps: list[Step] = [
        ("POST", "/v1/members", join, "member.create", "member"),
        (
            "PATCH",
            "/v1/members/{member_id}",
            lambda c, i: c.patch(f"/v1/members/{i['member']}", json={"name": "王芳芳"}),
            "member.update",
            "member",
        ),
        (
            "POST",
            "/v1/members/{member_id}/identities",
            lambda c, i: c.post(
                f"/v1/members/{i['member']}/identities", json={"kind": "pos_card", "value": "C1"}
            ),
            "member.identity.add",
            "member",
        ),
        (
            "POST",
            "/v1/members/{member_id}/tags",
            lambda c, i: c.post(f"/v1/members/{i['member']}/tags", json={"add": ["vip"]}),
            "member.tags",
            "member",
        ),
        (
            "PUT",
            "/v1/members/{member_id}/consents/{channel}",
            lambda c, i: c.put(f"/v1/members/{i['member']}/consents/sms", json={"granted": True}),
            "member.consent",
            "member",
        ),
        # channels (issue 14): the consent ledger and WeChat subscribe authorisations
        (
            "POST",
            "/v1/members/{member_id}/consent-records",
            lambda c, i: c.post(
                f"/v1/members/{i['member']}/consent-records",
                json={
                    "purpose": "analytics",
                    "channel": "any",
                    "granted": True,
                    "text_version": "v1",
                    "source": "app",
                },
            ),
            "member.consent_record",
            "member",
        ),
        (
            "POST",
            "/v1/members/{member_id}/message-authorisations",
            lambda c, i: c.post(
                f"/v1/members/{i['member']}/message-authorisations", json={"template_id": "T1"}
            ),
            "member.message_authorisation",
            "member",
        ),
        (
            "POST",
            "/v1/members/{member_id}/adjustments",
            lambda c, i: c.post(
                f"/v1/members/{i['member']}/adjustments",
                json={"points": 3000, "reason": "welcome back"},
            ),
            "points.adjust",
            "member",
        ),
        ("POST", "/v1/orders", order, "order.record", "order"),
        (
            "POST",
            "/v1/orders/{order_id}/returns",
            lambda c, i: c.post(
                f"/v1/orders/{i['order']}/returns", json={"return_id": "R-1", "full": True}
            ),
            "order.return",
            "order",
        ),
        ("POST", "/v1/redemptions", redeem, "redemption.create", "redemption"),
        (
            "POST",
            "/v1/redemptions/{redemption_id}/cancel",
            lambda c, i: c.post(
                f"/v1/redemptions/{i['redemption']}/cancel", json={"reason": "changed mind"}
            ),
            "redemption.cancel",
            "redemption",
        ),
        (
            "POST",
            "/v1/webhooks/endpoints",
            lambda c, i: _keep(
                i,
                "webhook",
                c.post(
                    "/v1/webhooks/endpoints",
                    json={"url": "http://127.0.0.1:9/hook", "scope": "sh1"},
                ),
            ),
            "webhook.create",
            "webhook_endpoint",
        ),
        (
            "PATCH",
            "/v1/webhooks/endpoints/{endpoint_id}",
            lambda c, i: c.patch(
                f"/v1/webhooks/endpoints/{i['webhook']}", json={"description": "CRM"}
            ),
            "webhook.update",
            "webhook_endpoint",
        ),
        (
            "POST",
            "/v1/webhooks/endpoints/{endpoint_id}/rotate-secret",
            lambda c, i: c.post(f"/v1/webhooks/endpoints/{i['webhook']}/rotate-secret"),
            "webhook.rotate",
            "webhook_endpoint",
        ),
        (
            "POST",
            "/v1/webhooks/endpoints/{endpoint_id}/replay",
            lambda c, i: c.post(
                f"/v1/webhooks/endpoints/{i['webhook']}/replay",
                json={"since": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"},
            ),
            "webhook.replay",
            "webhook_endpoint",
        ),
        (
            "POST",
            "/v1/webhooks/deliveries/{delivery_id}/replay",
            lambda c, i: c.post(
                "/v1/webhooks/deliveries/"
                f"{c.get('/v1/webhooks/deliveries').json()['items'][0]['id']}/replay"
            ),
            "webhook.replay",
            "webhook_delivery",
        ),
        (
            "DELETE",
            "/v1/webhooks/endpoints/{endpoint_id}",
            lambda c, i: c.delete(f"/v1/webhooks/endpoints/{i['webhook']}"),
            "webhook.delete",
            "webhook_endpoint",
        ),
        (
            "POST",
            "/v1/redemptions/{redemption_id}/collect",
            lambda c, i: c.post(f"/v1/redemptions/{i['by_id']}/collect", json={"store": "sh1"}),
            "redemption.collect",
            "redemption",
        ),
        (
            "POST",
            "/v1/redemptions/collect",
            lambda c, i: c.post("/v1/redemptions/collect", json={"code": i["by_code.code"]}),
            "redemption.collect",
            "redemption",
        ),
        (
            "POST",
            "/v1/rewards/{reward_code}/stock",
            lambda c, i: c.post("/v1/rewards/latte/stock", json={"quantity": 10}),
            "reward.stock",
            "reward",
        ),
        # dynamic pricing (issue 15, item 5)
        (
            "POST",
            "/v1/rewards/{reward_code}/quote",
            lambda c, i: c.post("/v1/rewards/latte/quote", json={"member_id": i["member"]}),
            "reward.quote",
            "reward",
        ),
        (
            "POST",
            "/v1/adjustment-requests/{request_id}/approve",
            lambda c, i: c.post(f"/v1/adjustment-requests/{i['to_approve']}/approve"),
            "points.adjust.approve",
            "member",
        ),
        (
            "POST",
            "/v1/adjustment-requests/{request_id}/reject",
            lambda c, i: c.post(f"/v1/adjustment-requests/{i['to_reject']}/reject"),
            "points.adjust.reject",
            "member",
        ),
        # coupons (issue 9)
        (
            "POST",
            "/v1/coupon-templates",
            lambda c, i: c.post("/v1/coupon-templates", json=COUPON),
            "coupon.template.create",
            "coupon_template",
        ),
        (
            "POST",
            "/v1/coupon-batches",
            lambda c, i: c.post(
                "/v1/coupon-batches",
                json={"external_id": "b1", "template": "ten-off", "count": 5, "length": 10},
            ),
            "coupon.batch.create",
            "coupon_batch",
        ),
        (
            "POST",
            "/v1/members/{member_id}/coupons",
            issue_coupon,
            "coupon.issue",
            "coupon_code",
        ),
        (
            "POST",
            "/v1/coupons/validate",
            lambda c, i: c.post(
                "/v1/coupons/validate",
                json={
                    "codes": [i["coupon.code"]],  # a known code: no guess counted
                    "member_id": i["member"],
                    "store": "sh1",
                    "lines": [{"sku": "LATTE", "quantity": 2, "unit_price_minor": 4000}],
                },
            ),
            None,
            "",
        ),
        # referrals, friend-assist and groups
        ("POST", "/v1/referrals", claim, "referral.attribute", "referral"),
        (
            "POST",
            "/v1/referrals/signals",
            lambda c, i: c.post(
                "/v1/referrals/signals",
                json={"member_id": i["friend"], "kind": "device_id", "value": "IDFA-1"},
            ),
            "referral.signal",
            "member",
        ),
        (
            "POST",
            "/v1/referrals/{referral_id}/decision",
            lambda c, i: c.post(
                f"/v1/referrals/{i['referral']}/decision",
                json={"decision": "approve", "note": "siblings"},
            ),
            "referral.approve",
            "referral",
        ),
        (
            "POST",
            "/v1/assists",
            lambda c, i: _keep(
                i,
                "assist",
                c.post("/v1/assists", json={"member_id": i["member"], "campaign": "coffee-help"}),
            ),
            "assist.start",
            "assist",
        ),
        (
            "POST",
            "/v1/assists/{assist_id}/helps",
            lambda c, i: c.post(
                f"/v1/assists/{i['assist']}/helps", json={"member_id": i["friend"]}
            ),
            "assist.help",
            "assist",
        ),
        (
            "POST",
            "/v1/groups",
            lambda c, i: _keep(
                i,
                "group",
                c.post("/v1/groups", json={"member_id": i["member"], "campaign": "trio"}),
            ),
            "group.open",
            "group",
        ),
        (
            "POST",
            "/v1/groups/{group_id}/members",
            lambda c, i: c.post(
                f"/v1/groups/{i['group']}/members", json={"member_id": i["friend"]}
            ),
            "group.join",
            "group",
        ),
        # habits: check-ins and activity points
        (
            "POST",
            "/v1/members/{member_id}/checkins",
            lambda c, i: c.post(f"/v1/members/{i['member']}/checkins", json={}),
            "checkin.record",
            "member",
        ),
        (
            "POST",
            "/v1/members/{member_id}/activities",
            lambda c, i: c.post(
                f"/v1/members/{i['member']}/activities", json={"activity": "review", "ref": "rv-1"}
            ),
            "activity.record",
            "member",
        ),
        # journeys: publishing is a new version of the journeys document
        (
            "PUT",
            "/v1/journeys/{key}",
            lambda c, i: c.put("/v1/journeys/win_back", json={"journey": WIN_BACK}),
            "document.publish",
            "config_document",
        ),
        (
            "POST",
            "/v1/journeys/{key}/pause",
            lambda c, i: c.post("/v1/journeys/win_back/pause"),
            "journey.pause",
            "journey",
        ),
        (
            "POST",
            "/v1/journeys/{key}/resume",
            lambda c, i: c.post("/v1/journeys/win_back/resume"),
            "journey.resume",
            "journey",
        ),
        (
            "POST",
            "/v1/journeys/{key}/dry-run",
            lambda c, i: c.post("/v1/journeys/win_back/dry-run", json={"member_id": i["member"]}),
            None,
            "",
        ),
        # households (issue 13): the main member's pool shared with an invited member
        (
            "POST",
            "/v1/households",
            lambda c, i: _keep(
                i, "household", c.post("/v1/households", json={"member_id": i["member"]})
            ),
            "household.create",
            "household",
        ),
        (
            "POST",
            "/v1/households/{household_id}/invitations",
            lambda c, i: _keep(
                i,
                "invitation",
                c.post(
                    f"/v1/households/{i['household']}/invitations", json={"phone": "13900001118"}
                ),
            ),
            "household.invite",
            "household",
        ),
        (
            "POST",
            "/v1/households/invitations/{invitation_id}/accept",
            lambda c, i: c.post(f"/v1/households/invitations/{i['invitation']}/accept"),
            "household.accept",
            "household",
        ),
        (
            "POST",
            "/v1/households/invitations/{invitation_id}/decline",
            lambda c, i: c.post(f"/v1/households/invitations/{i['kin2.invitation']}/decline"),
            "household.decline",
            "household",
        ),
        (
            "POST",
            "/v1/households/{household_id}/invitations/{invitation_id}/withdraw",
            lambda c, i: c.post(
                f"/v1/households/{i['household']}/invitations/{i['kin3.invitation']}/withdraw"
            ),
            "household.withdraw",
            "household",
        ),
        (
            "PUT",
            "/v1/households/{household_id}/members/{member_id}/permission",
            lambda c, i: c.put(
                f"/v1/households/{i['household']}/members/{i['kin']}/permission",
                json={"can_spend": True},
            ),
            "household.permission",
            "household",
        ),
        (
            "POST",
            "/v1/households/{household_id}/members/{member_id}/leave",
            lambda c, i: c.post(f"/v1/households/{i['household']}/members/{i['kin']}/leave"),
            "household.leave",
            "household",
        ),
        (
            "POST",
            "/v1/households/{household_id}/dissolve",
            lambda c, i: c.post(f"/v1/households/{i['household']}/dissolve"),
            "household.dissolve",
            "household",
        ),
        # fraud controls (issue 13): freeze, unfreeze, a decision on held points
        (
            "PUT",
            "/v1/fraud/frozen/{member_id}",
            lambda c, i: c.put(f"/v1/fraud/frozen/{i['member']}", json={"reason": "风控测试"}),
            "member.freeze",
            "member",
        ),
        (
            "DELETE",
            "/v1/fraud/frozen/{member_id}",
            lambda c, i: c.delete(f"/v1/fraud/frozen/{i['member']}"),
            "member.unfreeze",
            "member",
        ),
        (
            "POST",
            "/v1/fraud/reviews/{review_id}/decision",
            lambda c, i: c.post(
                f"/v1/fraud/reviews/{i['review']}/decision", json={"decision": "approve"}
            ),
            "fraud.review.approve",
            "fraud_review",
        ),
        # privacy (issue 13): erasing keeps the figures, the row says who asked
        (
            "POST",
            "/v1/members/{member_id}/erase",
            lambda c, i: c.post(f"/v1/members/{i['gone']}/erase"),
            "member.erase",
            "member",
        ),
        # identity merge (issue 13 item 2): the rows name the survivor; undo right after
        (
            "POST",
            "/v1/merges",
            lambda c, i: _keep(
                i,
                "merge",
                c.post("/v1/merges", json={"survivor_id": i["keep"], "merged_id": i["merged"]}),
            ),
            "member.merge",
            "member",
        ),
        (
            "POST",
            "/v1/merges/{merge_id}/undo",
            lambda c, i: c.post(f"/v1/merges/{i['merge']}/undo"),
            "member.merge.undo",
            "member",
        ),
        (
            "POST",
            "/v1/duplicate-candidates/{candidate_id}/dismiss",
            lambda c, i: c.post(f"/v1/duplicate-candidates/{i['candidate']}/dismiss"),
            "member.duplicate.dismiss",
            "duplicate_candidate",
        ),
        # paid membership (issue 15 item 7): buy, then refund within the window
        (
            "POST",
            "/v1/members/{member_id}/passes",
            lambda c, i: _keep(
                i, "pass", c.post(f"/v1/members/{i['member']}/passes", json={"pass": "club-year"})
            ),
            "pass.buy",
            "member_pass",
        ),
        (
            "POST",
            "/v1/members/{member_id}/passes/{pass_id}/refund",
            lambda c, i: c.post(f"/v1/members/{i['member']}/passes/{i['pass']}/refund"),
            "pass.refund",
            "member_pass",
        ),
        (
            "POST",
            "/v1/orders/quote",
            lambda c, i: c.post(
                "/v1/orders/quote",
                json={
                    "member_id": i["member"],
                    "store": "sh1",
                    "lines": [{"sku": "LATTE", "quantity": 1, "unit_price_minor": 3000}],
                },
            ),
            None,
            "",
        ),
        (
            "POST",
            "/v1/programme/dry-run",
            lambda c, i: c.post(
                "/v1/programme/dry-run", json={"order": order_payload("DRY", None, paid=500)}
            ),
            None,
            "",
        ),
    ]
    with api_client(world.db, world.keys["hq"]) as c:
        # A new write route without a step here fails this test.
        assert {(m, p) for m, p, *_ in steps} == _api_write_routes(c)
        for method, path, call, action, object_type in steps:
            clock.advance(timedelta(minutes=1))
            if path in setups:
                setups[path](c, ids)
            last = _last_id(world)
            before = counts(world.db)
            r = call(c, ids)
            assert r.status_code in (200, 201), (method, path, r.status_code, r.text)
            new = _audit_rows(world, last)
            if action is None:
                assert (method, path) in READ_ONLY_POSTS
                assert counts(world.db) == before
                continue
            # Approving applies the adjustment: its own row, then the decision's.
            applied = [("points.adjust", "member")] if action == "points.adjust.approve" else []
            assert [(a["action"], a["object_type"]) for a in new] == [
                *applied,
                (action, object_type),
            ], (path, new)
            row = new[-1]
            assert (row["actor"], row["principal"]) == (actor, principal)
            assert row["occurred_at"] == utcnow()
            # rewards are the brand's: their stock rows belong to HQ; config rows to all
            expected = "/" if action in ORG_WIDE else sh1
            assert row["org_path"] == (_path(world, "hq") if action == "reward.stock" else expected)
            assert row["after"] is not None

    by_action = {a["action"]: a for a in reversed(_audit_rows(world))}  # the first of each
    mid = str(ids["member"])
    upd = by_action["member.update"]
    assert upd["object_id"] == mid
    # personal values are masked in audit rows (issue 13): the surname, then one *
    assert (upd["before"], upd["after"]) == ({"name": "王*"}, {"name": "王*"})
    tags = by_action["member.tags"]
    assert (tags["before"], tags["after"]) == ({"tags": []}, {"tags": ["vip"]})
    adj = by_action["points.adjust"]
    assert adj["before"] == {"available": 0, "pending": 0}
    after = adj["after"]
    assert (after["available"], after["points"], after["reason"]) == (3000, 3000, "welcome back")
    # the friend's signal (the referrer's came first, in a setup); the identifier itself is
    # not kept in the trail
    signal = {a["action"]: a for a in _audit_rows(world)}["referral.signal"]
    assert (signal["object_id"], signal["after"]) == (
        str(ids["friend"]),
        {
            "kind": "device_id",
            "held": [ids["referral"]],
        },
    )
    assert "IDFA" not in str(_audit_rows(world))
    assert by_action["referral.approve"]["before"] == {
        "status": "on_hold",
        "hold_reasons": ["device_id"],
    }
    help_row = by_action["assist.help"]
    assert (help_row["object_id"], help_row["before"], help_row["after"]) == (
        str(ids["assist"]),
        {"helps": 0},
        {"helper_id": ids["friend"], "helps": 1, "status": "open"},
    )
    join_row = by_action["group.join"]
    assert (join_row["before"], join_row["after"]) == (
        {"members": 1},
        {"member_id": ids["friend"], "members": 2, "status": "forming"},
    )
    assert by_action["checkin.record"]["after"] == {
        "local_day": "2026-06-10",
        "streak": 1,
        "points": 5,
        "bonuses": [],
    }
    assert by_action["activity.record"]["after"] == {
        "activity": "review",
        "ref": "rv-1",
        "points": 20,
        "capped": None,
    }
    cancel = by_action["redemption.cancel"]
    assert cancel["object_id"] == str(ids["redemption"])
    assert cancel["before"] == {"status": "completed"}
    assert cancel["after"]["status"] == "cancelled"


def test_a_store_key_is_named_on_its_rows_and_a_refused_write_leaves_none(world: Any) -> None:
    actor, principal = _key_identity(world, "sz1")
    last = _last_id(world)
    with api_client(world.db, world.keys["sz1"]) as c:
        r = c.post("/v1/members", json={"phone": "13900002222"})
        assert r.status_code == 201
        mid = r.json()["id"]
    got = _audit_rows(world, last)
    assert [(a["actor"], a["principal"], a["org_path"]) for a in got] == [
        (actor, principal, _path(world, "sz1"))
    ]
    before = counts(world.db)
    with api_client(world.db, world.keys["sh1"]) as c:  # another store: 404, nothing written
        assert c.patch(f"/v1/members/{mid}", json={"name": "x"}).status_code == 404
    with api_client(world.db, world.keys["hq-read"]) as c:  # read-only key: 403
        assert c.patch(f"/v1/members/{mid}", json={"name": "x"}).status_code == 403
    assert counts(world.db) == before


# ── the console ────────────────────────────────────────────────────────────────────────
def _programme_form(world: Any, name_suffix: str) -> dict[str, str]:
    with world.db.transaction() as s:
        _v, p = programmes.active(s)
        doc = programmes.as_document(p)
    doc["rewards"][0]["name"] += name_suffix

    def dump(v: Any) -> str:
        return yaml.safe_dump(v, allow_unicode=True, sort_keys=False)

    return {
        "action": "publish",
        "note": "rename a reward",
        "tiers": dump(doc["tiers"]),
        "rules": dump(doc["earning"]["rules"]),
        "campaigns": dump(doc["earning"]["campaigns"]),
        "expiry": dump(doc["points"]),
        "rewards": dump(doc["rewards"]),
    }


def test_console_changes_are_audited_with_the_user(world: Any, clock: Any) -> None:
    make_users(world.db)
    with api_client(world.db, world.keys["hq"]) as api:
        mid = api.post("/v1/members", json={"phone": "13900003333", "home_store": "sh2"}).json()[
            "id"
        ]
        api.post(f"/v1/members/{mid}/adjustments", json={"points": 4000, "reason": "seed"})
        red = api.post("/v1/redemptions", json={"member_id": mid, "reward": "americano"}).json()
    east = _path(world, "sh2")
    last = _last_id(world)
    with console_client(world.db) as c:
        csrf = login(c, world.db, "east.manager")
        base = f"/admin/members/{mid}"
        assert post(c, f"{base}/edit", csrf, {"name": "赵六", "city": "杭州"}).status_code == 303
        assert post(c, f"{base}/tags", csrf, {"add": "vip, coffee"}).status_code == 303
        assert (
            post(c, f"{base}/adjust", csrf, {"points": "-200", "reason": "dup"}).status_code == 303
        )
        r = post(c, f"/admin/redemptions/{red['id']}/cancel", csrf, {"reason": "wrong item"})
        assert r.status_code == 303
    got = _audit_rows(world, last)
    with world.db.transaction() as s:
        uid = s.scalar(select(StaffUser.id).where(StaffUser.login == "east.manager"))
    assert [(a["action"], a["actor"], a["principal"], a["org_path"]) for a in got] == [
        ("member.update", "user:east.manager", f"user:{uid}", east),
        ("member.tags", "user:east.manager", f"user:{uid}", east),
        ("points.adjust", "user:east.manager", f"user:{uid}", east),
        ("redemption.cancel", "user:east.manager", f"user:{uid}", east),
    ]
    assert got[0]["before"] == {"name": None, "city": None}
    # personal values are masked in audit rows (issue 13): the surname stays, the rest is *
    assert got[0]["after"] == {"name": "赵*", "city": "杭州"}
    assert got[1]["after"] == {"tags": ["coffee", "vip"]}
    assert got[2]["before"] == {"available": 2500, "pending": 0}
    assert got[2]["after"]["available"] == 2300


def test_console_programme_publish_is_audited_and_visible_to_hq_admins(world: Any) -> None:
    make_users(world.db)
    last = _last_id(world)
    with console_client(world.db) as c:
        csrf = login(c, world.db, "admin")
        r = post(c, "/admin/programme/edit", csrf, _programme_form(world, " (新)"))
        assert r.status_code == 303, r.text[:300]
        assert r.headers["location"].startswith("/admin/programme/versions/2")
    got = _audit_rows(world, last)
    assert [(a["action"], a["actor"], a["object_id"]) for a in got] == [
        ("programme.publish", "user:admin", "2")
    ]
    assert got[0]["before"] == {"version": 1}
    # An HQ admin (scope: the HQ unit, not "/") finds organisation-wide changes.
    with world.db.transaction() as s:
        admin = staff.actor_for(s, staff.get_by_login(s, "admin"))
        found = audit.search(s, admin, audit.AuditFilter(action="programme.publish"))
        assert [(r.object_id, r.actor) for r in found] == [("2", "user:admin"), ("1", "test")]


# ── search ─────────────────────────────────────────────────────────────────────────────
def _seed_rows(world: Any, clock: Any) -> dict[str, Actor]:
    sh1, sz1, hq = _path(world, "sh1"), _path(world, "sz1"), _path(world, "hq")
    a = Actor(name="user:a", scope_path=hq, principal="user:1")
    b = Actor(name="apikey:lk_b", scope_path=sz1, principal="key:2")
    with world.db.transaction() as s:
        s.execute(AuditLog.__table__.delete())
        audit.record(s, a, "member.update", "member", 1, org_path=sh1, after={"n": 1})
        clock.advance(timedelta(hours=1))
        audit.record(s, b, "member.tags", "member", 2, org_path=sz1, after={"n": 2})
        clock.advance(timedelta(hours=1))
        audit.record(s, a, "points.adjust", "member", 1, org_path=sh1, after={"n": 3})
        clock.advance(timedelta(hours=1))
        audit.record(s, b, "order.record", "order", 7, org_path=sz1, after={"n": 4})
    return {"a": a, "b": b}


def _search(world: Any, who: Actor, **kw: Any) -> list[int]:
    before_id = kw.pop("before_id", None)
    limit = kw.pop("limit", 50)
    with world.db.transaction() as s:
        found = audit.search(s, who, audit.AuditFilter(**kw), before_id=before_id, limit=limit)
        return [int(r.after["n"]) for r in found if r.after]


def test_search_filters_newest_first(world: Any, clock: Any) -> None:
    _seed_rows(world, clock)
    hq = Actor(name="user:boss", scope_path=_path(world, "hq"), principal="user:9")
    start = utcnow() - timedelta(hours=3)
    assert _search(world, hq) == [4, 3, 2, 1]
    assert _search(world, hq, actor="apikey") == [4, 2]
    assert _search(world, hq, action="points.adjust") == [3]
    assert _search(world, hq, object_type="member", object_id="1") == [3, 1]
    assert _search(world, hq, since=start + timedelta(hours=1)) == [4, 3, 2]
    assert _search(world, hq, until=start + timedelta(hours=1)) == [1]
    assert _search(
        world, hq, since=start + timedelta(minutes=30), until=start + timedelta(hours=2, minutes=30)
    ) == [3, 2]
    first = _search(world, hq, limit=2)
    assert first == [4, 3]
    with world.db.transaction() as s:
        ids = [r.id for r in audit.search(s, hq, audit.AuditFilter(), limit=2)]
    assert _search(world, hq, before_id=ids[-1]) == [2, 1]


def test_search_stays_in_scope_and_needs_audit_read(world: Any, clock: Any) -> None:
    _seed_rows(world, clock)
    south_key = Actor(name="apikey:s", scope_path=_path(world, "south"), principal="key:5")
    assert _search(world, south_key) == [4, 2]  # API keys read within their scope
    make_users(world.db)
    with world.db.transaction() as s:
        for login_name in ("east.manager", "sh1.staff", "agent", "analyst"):
            actor = staff.actor_for(s, staff.get_by_login(s, login_name))
            with pytest.raises(Forbidden):
                audit.search(s, actor, audit.AuditFilter())


def test_staff_accounts_and_password_changes_are_audited(world: Any) -> None:
    last = _last_id(world)
    with world.db.transaction() as s:
        uid = staff.create_user(
            s, login="carol", role="analyst", unit_code="east", password="a long password"
        ).id
    world.db.run(lambda s: staff.login(s, "carol", "a long password"))
    world.db.run(lambda s: staff.change_password(s, uid, "a long password", "another one!", keep=0))
    got = _audit_rows(world, last)
    east = _path(world, "east")
    assert [(a["action"], a["actor"], a["object_id"], a["org_path"]) for a in got] == [
        ("staff.create", "system", str(uid), east),
        ("staff.password", "user:carol", str(uid), east),
    ]
    assert got[0]["after"] == {"login": "carol", "role": "analyst", "unit": "east"}
    assert got[1]["after"] == {"sessions_closed": 1}
    assert "a long password" not in str(got) and "another one!" not in str(got)
