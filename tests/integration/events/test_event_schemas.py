"""Event JSON Schemas: published at /v1/events/schemas, valid draft 2020-12, one per event
type; every event a test emits is checked against them at teardown (tests/event_schemas.py)
and a payload that drifts fails."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from sqlalchemy import update
from tests.event_schemas import outbox_schema_errors, schema_errors
from tests.itest import assert_problem, new_member

from loyalist.events import schemas
from loyalist.events import service as events
from loyalist.kit.db import Database
from loyalist.models import OutboxEvent


def test_every_event_type_has_a_valid_schema() -> None:
    assert set(schemas.SCHEMAS) == events.EVENT_TYPES
    jsonschema_rs.meta.validate(schemas.envelope_schema())
    for t in schemas.SCHEMAS:
        doc = schemas.data_schema(t)
        jsonschema_rs.meta.validate(doc)
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schemas_are_published(client: Any) -> None:
    r = client.get("/v1/events/schemas")
    assert r.status_code == 200
    body = r.json()
    assert body["envelope"] == schemas.envelope_schema()
    assert set(body["types"]) == events.EVENT_TYPES
    one = client.get("/v1/events/schemas/order.recorded")
    assert one.status_code == 200
    assert one.json() == schemas.data_schema("order.recorded")
    assert one.json()["required"][:2] == ["order_id", "external_id"]
    assert_problem(client.get("/v1/events/schemas/nope.x"), 404, "not_found")
    spec = client.get("/openapi.json").json()
    assert "/v1/events/schemas" in spec["paths"]
    assert "/v1/events/schemas/{event_type}" in spec["paths"]


def test_an_unknown_type_filter_is_422_naming_type(client: Any) -> None:
    body = assert_problem(client.get("/v1/events", params={"type": "nope.x"}), 422, field="type")
    assert "nope.x" in body["detail"]
    ok = client.get("/v1/events", params={"type": "member.created"})
    assert ok.status_code == 200


def test_real_events_match_and_a_drifted_payload_fails(world: Any, client: Any) -> None:
    db: Database = world.db
    mid = new_member(client, "13800000001")
    client.post(f"/v1/members/{mid}/adjustments", json={"points": 10, "reason": "gift"})
    client.post(f"/v1/members/{mid}/adjustments", json={"points": -3, "reason": "fix"})
    assert outbox_schema_errors(db) == []
    items = client.get("/v1/events").json()["items"]
    assert {e["type"] for e in items} >= {"member.created", "points.adjusted"}
    for e in items:
        assert schema_errors(e) == []
    drifted = dict(items[-1], data={**items[-1]["data"], "surprise": 1})
    assert schema_errors(drifted) != []
    joined = next(e for e in items if e["type"] == "member.created")
    wrong_type = dict(joined, data={**joined["data"], "member_id": "one"})
    assert schema_errors(wrong_type) == [
        'member.created /data/member_id: "one" is not of type "integer"'
    ]
    # drift in the database itself is caught by the teardown check; put it back afterwards
    with db.transaction() as s:
        s.execute(
            update(OutboxEvent)
            .where(OutboxEvent.type == "member.created")
            .values(payload={"member_id": mid})
        )
    errors = outbox_schema_errors(db)
    assert errors and all(e.startswith("member.created") for e in errors), errors
    with db.transaction() as s:
        s.execute(
            update(OutboxEvent)
            .where(OutboxEvent.type == "member.created")
            .values(
                payload={"member_id": mid, "member_no": f"M{mid:09d}", "tier": "base", "by": "x"}
            )
        )
    assert outbox_schema_errors(db) == []


@pytest.mark.parametrize("bad", [{"version": 0, "by": "x"}, {"version": 1}])
def test_programme_published_schema_is_strict(bad: dict[str, Any]) -> None:
    env = {
        "id": "7f1d2c1e-6d3a-4b47-9f55-0d6f5b2a1e10",
        "sequence": 1,
        "type": "programme.published",
        "schema_version": 1,
        "occurred_at": "2026-06-10T04:00:00+00:00",
        "member_id": None,
        "data": {"version": 1, "by": "x"},
    }
    assert schema_errors(env) == []
    assert schema_errors({**env, "data": bad}) != []
