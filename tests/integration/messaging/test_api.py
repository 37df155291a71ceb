"""/v1 consent ledger, WeChat subscribe authorisations and a member's messages."""

from __future__ import annotations

from typing import Any

import pytest
from tests.integration.messaging.test_outbox import Recorder
from tests.itest import assert_problem, counts, new_member
from tests.support import api_client

from loyalist import bootstrap
from loyalist.jobs import queue
from loyalist.messaging import outbox
from loyalist.messaging import settings as adapters

TABLES = ["consent_record", "member_consent", "message_authorisation", "audit_log"]


def test_the_consent_ledger_records_purpose_channel_text_version_and_source(
    world: Any, client: Any
) -> None:
    mid = new_member(client, "13800000001")
    body = {
        "purpose": "personalisation",
        "channel": "any",
        "granted": True,
        "text_version": "privacy-2026-05",
        "source": "member_page",
    }
    r = client.post(f"/v1/members/{mid}/consent-records", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert {k: out[k] for k in body} == body
    assert out["actor"].startswith("apikey:")
    withdraw = {**body, "granted": False, "source": "service_call"}
    assert client.post(f"/v1/members/{mid}/consent-records", json=withdraw).status_code == 201
    listed = client.get(f"/v1/members/{mid}/consent-records").json()["items"]
    assert [(x["granted"], x["source"]) for x in listed] == [
        (False, "service_call"),
        (True, "member_page"),
    ]
    # Marketing on a channel keeps the member's current consents in step.
    sms = {**body, "purpose": "marketing", "channel": "sms"}
    assert client.post(f"/v1/members/{mid}/consent-records", json=sms).status_code == 201
    assert client.get(f"/v1/members/{mid}").json()["consents"] == {"sms": True}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"purpose": "spam", "channel": "sms", "granted": True, "text_version": "v", "source": "x"},
         "purpose"),
        ({"purpose": "marketing", "channel": "fax", "granted": True, "text_version": "v",
          "source": "x"}, "channel"),
        ({"purpose": "marketing", "channel": "sms", "granted": True, "source": "x"},
         "text_version"),
        ({"purpose": "marketing", "channel": "sms", "granted": True, "text_version": "v",
          "source": "x", "extra": 1}, "extra"),
        ({"purpose": "marketing", "channel": "sms", "granted": 0, "text_version": "v",
          "source": "x"}, "granted"),
    ],
)  # fmt: skip
def test_bad_consent_records_are_problems_and_write_nothing(
    world: Any, client: Any, body: dict[str, Any], field: str
) -> None:
    mid = new_member(client, "13800000001")
    before = counts(world.db, TABLES)
    problem = assert_problem(client.post(f"/v1/members/{mid}/consent-records", json=body), 422)
    assert any(field in e["field"] for e in problem["errors"]), problem
    assert counts(world.db, TABLES) == before


def test_scope_and_permissions(world: Any, client: Any) -> None:
    with api_client(world.db, world.keys["sh1"]) as sh1:
        mid = sh1.post("/v1/members", json={"phone": "13800000001"}).json()["id"]
    body = {
        "purpose": "marketing",
        "channel": "sms",
        "granted": True,
        "text_version": "v1",
        "source": "pos",
    }
    before = counts(world.db, TABLES)
    with api_client(world.db, world.keys["sz1"]) as sz1:  # another store: not found
        assert_problem(sz1.post(f"/v1/members/{mid}/consent-records", json=body), 404)
        assert_problem(sz1.get(f"/v1/members/{mid}/messages"), 404)
        grant = {"template_id": "TPL1"}
        assert_problem(sz1.post(f"/v1/members/{mid}/message-authorisations", json=grant), 404)
    with api_client(world.db, world.keys["hq-read"]) as ro:  # a read-only key
        assert_problem(ro.post(f"/v1/members/{mid}/consent-records", json=body), 403)
        assert ro.get(f"/v1/members/{mid}/consent-records").status_code == 200
    assert counts(world.db, TABLES) == before


def test_authorisations_add_up_and_a_replayed_key_adds_nothing(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    url = f"/v1/members/{mid}/message-authorisations"
    first = client.post(
        url, json={"template_id": "TPL-mp", "count": 2}, headers={"Idempotency-Key": "a1"}
    )
    assert first.json() == {"template_id": "TPL-mp", "remaining": 2}
    again = client.post(
        url, json={"template_id": "TPL-mp", "count": 2}, headers={"Idempotency-Key": "a1"}
    )
    assert again.json() == {"template_id": "TPL-mp", "remaining": 2}
    assert client.post(url, json={"template_id": "TPL-mp"}).json()["remaining"] == 3
    assert_problem(client.post(url, json={"template_id": "TPL-mp", "count": 0}), 422)
    assert_problem(client.post(url, json={"template_id": "TPL-mp", "count": "2"}), 422)
    assert_problem(client.post(url, json={"template_id": "TPL-mp", "count": True}), 422)


def test_a_members_messages_with_status_and_attempts(world: Any, client: Any) -> None:
    bootstrap.configure()
    adapters.use({"sms": Recorder()})
    try:
        mid = new_member(client, "13800000001")
        with world.db.transaction() as s:
            sent = outbox.send(s, mid, "points_awarded", {"points": 5, "reason": "签到"})
            held = outbox.send(s, mid, "notice", {"text": "x"}, purpose="marketing")
        queue.run_until_empty(world.db)
    finally:
        adapters.reset()
    items = client.get(f"/v1/members/{mid}/messages").json()["items"]
    assert [(i["id"], i["status"], i["reason"]) for i in items] == [
        (held.message_id, "suppressed", "no_consent"),
        (sent.message_id, "sent", None),
    ]
    assert [(a["attempt"], a["outcome"], a["provider_id"]) for a in items[1]["attempts"]] == [
        (1, "sent", f"r-{sent.message_id}")
    ]
    assert "recipient" not in items[1]  # no address in the API answer
