"""/v1/webhooks: registering and managing endpoints, problem+json, scope, idempotency,
the SSRF guard at registration, and listing deliveries."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tests.integration.webhooks.conftest import Receiver, pump
from tests.itest import assert_problem, counts
from tests.support import api_client

from loyalist.models import IdempotencyRecord, WebhookEndpoint
from loyalist.webhooks import vault

URL = "http://127.0.0.1:9/hook"


def _create(c: Any, **fields: Any) -> dict[str, Any]:
    r = c.post("/v1/webhooks/endpoints", json={"url": URL, **fields})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.mark.usefixtures("allow_private")
def test_create_shows_the_secret_once_and_stores_it_encrypted(world: Any, client: Any) -> None:
    ep = _create(
        client, event_types=["points.earned", "member.created"], description="CRM", scope="sh1"
    )
    assert ep["url"] == URL
    assert ep["event_types"] == ["member.created", "points.earned"]
    assert (ep["scope"], ep["enabled"], ep["disabled_reason"], ep["description"]) == (
        "sh1",
        True,
        None,
        "CRM",
    )
    secret = ep["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    got = client.get(f"/v1/webhooks/endpoints/{ep['id']}").json()
    assert "secret" not in got
    assert got == {k: v for k, v in ep.items() if k != "secret"}
    listed = client.get("/v1/webhooks/endpoints").json()
    assert "secret" not in listed["items"][0]
    with world.db.transaction() as s:
        row = s.scalar(select(WebhookEndpoint))
        assert row is not None
        assert secret not in row.secret_enc
        assert vault.open_(row.secret_enc) == secret


@pytest.mark.usefixtures("allow_private")
def test_writes_are_idempotent(world: Any, client: Any) -> None:
    h = {"Idempotency-Key": "wh-1"}
    a = client.post("/v1/webhooks/endpoints", json={"url": URL}, headers=h)
    b = client.post("/v1/webhooks/endpoints", json={"url": URL}, headers=h)
    assert (a.status_code, b.status_code) == (201, 201)
    assert b.headers["Idempotent-Replayed"] == "true"
    assert a.json() == b.json()  # the same secret again
    with world.db.transaction() as s:
        stored = s.scalar(select(IdempotencyRecord.response))
    assert stored is not None and list(stored) == ["sealed"]  # answers sealed at rest
    assert a.json()["secret"] not in json.dumps(stored)  # kept sealed, never in clear
    rotated = client.post(
        f"/v1/webhooks/endpoints/{a.json()['id']}/rotate-secret", headers={"Idempotency-Key": "r"}
    )
    again = client.post(
        f"/v1/webhooks/endpoints/{a.json()['id']}/rotate-secret", headers={"Idempotency-Key": "r"}
    )
    assert rotated.json()["secret"] == again.json()["secret"] != a.json()["secret"]
    assert rotated.json()["secret"].startswith("whsec_")
    assert len(client.get("/v1/webhooks/endpoints").json()["items"]) == 1
    r = client.post("/v1/webhooks/endpoints", json={"url": URL + "2"}, headers=h)
    assert_problem(r, 422, "idempotency_key_reused")


@pytest.mark.usefixtures("allow_private")
def test_update_disable_enable_and_delete(world: Any, client: Any) -> None:
    ep = _create(client, event_types=["member.created"])
    path = f"/v1/webhooks/endpoints/{ep['id']}"
    r = client.patch(path, json={"enabled": False, "description": "paused"})
    assert r.status_code == 200, r.text
    assert (r.json()["enabled"], r.json()["disabled_reason"], r.json()["description"]) == (
        False,
        "manual",
        "paused",
    )
    assert client.get("/v1/webhooks/endpoints?enabled=false").json()["items"][0]["id"] == ep["id"]
    assert client.get("/v1/webhooks/endpoints?enabled=true").json()["items"] == []
    r = client.patch(path, json={"enabled": True, "event_types": None})
    assert (r.json()["enabled"], r.json()["disabled_reason"], r.json()["event_types"]) == (
        True,
        None,
        None,
    )
    r = client.delete(path)
    assert r.status_code == 200
    assert_problem(client.get(path), 404, "webhook_endpoint_not_found")
    assert client.get("/v1/webhooks/endpoints").json()["items"] == []


@pytest.mark.usefixtures("allow_private")
def test_pages_by_cursor_newest_first(world: Any, client: Any) -> None:
    ids = [_create(client, description=str(i))["id"] for i in range(5)]
    first = client.get("/v1/webhooks/endpoints?limit=2").json()
    assert [e["id"] for e in first["items"]] == ids[::-1][:2]
    second = client.get(f"/v1/webhooks/endpoints?limit=2&cursor={first['next_cursor']}").json()
    assert [e["id"] for e in second["items"]] == ids[::-1][2:4]
    third = client.get(f"/v1/webhooks/endpoints?limit=2&cursor={second['next_cursor']}").json()
    assert [e["id"] for e in third["items"]] == ids[:1]
    assert third["next_cursor"] is None


@pytest.mark.usefixtures("allow_private")
@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"url": "ftp://127.0.0.1/x"}, "url", "validation_failed"),
        ({"url": "https://user:pw@127.0.0.1/x"}, "url", "validation_failed"),
        ({"url": "not a url"}, "url", "validation_failed"),
        ({"url": URL, "event_types": ["member.exploded"]}, "event_types.0", "validation_failed"),
        ({"url": URL, "event_types": []}, "event_types", "validation_failed"),
        ({"url": URL, "scope": "nowhere"}, "scope", "validation_failed"),
        ({"url": URL, "colour": "red"}, "colour", "validation_failed"),
        ({"url": URL, "description": "x" * 501}, "description", "validation_failed"),
        ({}, "url", "validation_failed"),
    ],
)
def test_bad_input_is_a_problem_and_writes_nothing(
    world: Any, client: Any, body: dict[str, Any], field: str, code: str
) -> None:
    before = counts(world.db)
    assert_problem(client.post("/v1/webhooks/endpoints", json=body), 422, code, field)
    assert counts(world.db) == before


def test_a_private_address_is_refused_without_the_operator_setting(world: Any, client: Any) -> None:
    before = counts(world.db)
    for url in (URL, "http://localhost:8080/x", "http://169.254.169.254/latest", "http://[::1]/"):
        body = assert_problem(
            client.post("/v1/webhooks/endpoints", json={"url": url}),
            422,
            "webhook_target_refused",
            "url",
        )
        assert "private or reserved address" in body["detail"]
    assert counts(world.db) == before


@pytest.mark.usefixtures("allow_private")
def test_unknown_query_parameters_and_bad_ids_are_problems(world: Any, client: Any) -> None:
    assert_problem(client.get("/v1/webhooks/endpoints?colour=red"), 422, field="colour")
    assert_problem(client.get("/v1/webhooks/deliveries?page=2"), 422, field="page")
    assert_problem(client.get("/v1/webhooks/deliveries?status=lost"), 422, field="status")
    assert_problem(client.get("/v1/webhooks/endpoints?cursor=zz"), 422, field="cursor")
    assert_problem(client.get("/v1/webhooks/endpoints/0"), 422)
    assert_problem(client.get("/v1/webhooks/endpoints/99"), 404, "webhook_endpoint_not_found")
    assert_problem(client.get("/v1/webhooks/deliveries/99"), 404, "webhook_delivery_not_found")
    ep = _create(client)
    r = client.post(
        f"/v1/webhooks/endpoints/{ep['id']}/replay",
        json={"since": "2026-06-10T12:00:00+08:00", "until": "2026-06-10T11:00:00+08:00"},
    )
    assert_problem(r, 422, field="until")
    r = client.post(
        f"/v1/webhooks/endpoints/{ep['id']}/replay",
        json={"since": "2026-06-10T12:00:00", "until": "2026-06-10T13:00:00+08:00"},
    )
    assert_problem(r, 422, field="since")  # a time without offset
    r = client.post(
        f"/v1/webhooks/endpoints/{ep['id']}/rotate-secret", json={"overlap_seconds": 10**7}
    )
    assert_problem(r, 422, field="overlap_seconds")


@pytest.mark.usefixtures("allow_private")
def test_scope_a_store_key_sees_its_own_endpoints_only(world: Any) -> None:
    with api_client(world.db, world.keys["hq"]) as hq:
        central = _create(hq)
    with api_client(world.db, world.keys["sh1"]) as sh1:
        own = _create(sh1)
        assert own["scope"] == "sh1"
        # a scope outside its own is refused as unknown
        r = sh1.post("/v1/webhooks/endpoints", json={"url": URL, "scope": "sz1"})
        assert_problem(r, 422, field="scope")
        assert [e["id"] for e in sh1.get("/v1/webhooks/endpoints").json()["items"]] == [own["id"]]
        before = counts(world.db)
        assert_problem(sh1.get(f"/v1/webhooks/endpoints/{central['id']}"), 404)
        assert_problem(sh1.delete(f"/v1/webhooks/endpoints/{central['id']}"), 404)
        assert_problem(
            sh1.patch(f"/v1/webhooks/endpoints/{central['id']}", json={"enabled": False}), 404
        )
        assert_problem(sh1.post(f"/v1/webhooks/endpoints/{central['id']}/rotate-secret"), 404)
        assert counts(world.db) == before
    with api_client(world.db, world.keys["east"]) as east:
        assert [e["id"] for e in east.get("/v1/webhooks/endpoints").json()["items"]] == [own["id"]]
    with api_client(world.db, world.keys["hq-read"]) as ro:
        assert len(ro.get("/v1/webhooks/endpoints").json()["items"]) == 2
        before = counts(world.db)
        assert_problem(ro.post("/v1/webhooks/endpoints", json={"url": URL}), 403)
        assert counts(world.db) == before


@pytest.mark.usefixtures("allow_private")
def test_deliveries_are_listed_with_filters_and_scope(
    world: Any, client: Any, receiver: Receiver, clock: Any
) -> None:
    clock.advance(timedelta(seconds=1))  # after the world's own programme.published
    a = client.post(
        "/v1/webhooks/endpoints", json={"url": receiver.url, "event_types": ["member.created"]}
    ).json()
    with api_client(world.db, world.keys["sz1"]) as sz1:
        b = sz1.post("/v1/webhooks/endpoints", json={"url": receiver.url}).json()
    receiver.script = [(500, {})]
    r = client.post("/v1/members", json={"phone": "13800001001", "home_store": "sz1"})
    assert r.status_code == 201
    pump(world.db)
    items = client.get("/v1/webhooks/deliveries").json()["items"]
    assert {d["endpoint_id"] for d in items} >= {a["id"], b["id"]}
    mine = client.get(f"/v1/webhooks/deliveries?endpoint_id={a['id']}").json()["items"]
    assert len(mine) == 1 and mine[0]["event_type"] == "member.created"
    event_id = mine[0]["event_id"]
    same = client.get(f"/v1/webhooks/deliveries?event_id={event_id}").json()["items"]
    assert {d["endpoint_id"] for d in same} == {a["id"], b["id"]}
    statuses = {d["status"] for d in same}
    assert statuses == {"pending", "succeeded"}  # the first answer was a 500
    pending = client.get("/v1/webhooks/deliveries?status=pending").json()["items"]
    assert len(pending) == 1
    detail = client.get(f"/v1/webhooks/deliveries/{pending[0]['id']}").json()
    [attempt] = detail["attempt_log"]
    assert (attempt["status_code"], attempt["outcome"], attempt["error"]) == (
        500,
        "retry",
        "HTTP 500",
    )
    with api_client(world.db, world.keys["sh1"]) as sh1:
        assert sh1.get("/v1/webhooks/deliveries").json()["items"] == []
        assert_problem(sh1.get(f"/v1/webhooks/deliveries/{pending[0]['id']}"), 404)
        assert_problem(sh1.post(f"/v1/webhooks/deliveries/{pending[0]['id']}/replay"), 404)


@pytest.mark.usefixtures("allow_private")
def test_replay_to_a_disabled_endpoint_is_a_conflict(
    world: Any, client: Any, receiver: Receiver
) -> None:
    ep = client.post("/v1/webhooks/endpoints", json={"url": receiver.url}).json()
    client.post("/v1/members", json={"phone": "13800001101"})
    pump(world.db)
    d = client.get("/v1/webhooks/deliveries").json()["items"][0]
    client.patch(f"/v1/webhooks/endpoints/{ep['id']}", json={"enabled": False})
    before = counts(world.db)
    assert_problem(
        client.post(f"/v1/webhooks/deliveries/{d['id']}/replay"),
        409,
        "webhook_endpoint_disabled",
    )
    assert counts(world.db) == before


def test_the_openapi_document_describes_the_answers(world: Any, client: Any) -> None:
    doc = client.get("/openapi.json").json()
    create = doc["paths"]["/v1/webhooks/endpoints"]["post"]["responses"]["201"]
    ref = create["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/EndpointWithSecret")
    detail = doc["paths"]["/v1/webhooks/deliveries/{delivery_id}"]["get"]["responses"]["200"]
    assert detail["content"]["application/json"]["schema"]["$ref"].endswith("/DeliveryDetail")


@pytest.mark.usefixtures("allow_private")
def test_the_system_actor_registers_for_the_whole_programme(world: Any) -> None:
    from loyalist.kit.actor import SYSTEM
    from loyalist.webhooks import service
    from loyalist.webhooks.schemas import EndpointCreate

    with world.db.transaction() as s:
        ep, secret = service.create_endpoint(s, SYSTEM, EndpointCreate(url=URL))
        assert (ep.scope, ep.created_by) == ("hq", "system")
        assert service.signing_secrets(ep, ep.created_at) == [secret]
