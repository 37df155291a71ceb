"""The API contract: unknown query parameters are refused by name on every operation, inputs
are strictly typed, JSON bodies are well formed without duplicate keys, 405 names the allowed
methods, and the OpenAPI document describes what the server really answers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import APIRouter, Depends, Query
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from tests.itest import assert_problem, counts, new_member
from tests.support import api_client, order_payload

from loyalist.http import _uses, current_actor, problem_responses, refuse_unknown_query

MONDAY = "2026-06-08T10:00:00+08:00"
JSON = {"content-type": "application/json"}


def _operations(client: Any) -> list[tuple[str, str]]:
    doc = client.get("/openapi.json").json()
    return [
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_operation_refuses_an_unknown_query_parameter_by_name(
    world: Any, client: Any
) -> None:
    mid = new_member(client, "13800000001")
    ops = _operations(client)
    assert len(ops) >= 18
    for method, path in ops:
        url = (
            path.replace("{member_id}", str(mid))
            .replace("{channel}", "sms")
            .replace("{order_id}", "1")
            .replace("{redemption_id}", "1")
        )
        # any other id: digits (a path declared {x:int} matches nothing else)
        url = re.sub(r"\{[a-z_]+_id\}", "1", url)
        before = counts(world.db)
        r = client.request(method, url, params={"wechat_openid": "o1"}, json={})
        body = assert_problem(r, 422, "validation_failed", "wechat_openid")
        assert body["errors"] == [
            {
                "field": "wechat_openid",
                "message": "unknown query parameter",
                "code": "unknown_parameter",
            }
        ], (method, path)
        assert counts(world.db) == before, (method, path)


def test_the_issue_example_no_longer_answers_unrelated_members(world: Any, client: Any) -> None:
    new_member(client, "13800000001")
    # e-mail is now an exact identity filter (chains): nobody holds it, so nobody answers
    r = client.get("/v1/members", params={"email": "a@example.com"})
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []
    r = client.get("/v1/members", params={"wechat_openid": "o-123"})
    body = assert_problem(r, 422, "validation_failed", "wechat_openid")
    assert "wechat_openid" in body["detail"]
    # declared parameters (and repeated declared ones) still work
    assert client.get("/v1/members", params={"limit": 5, "tier": "green"}).status_code == 200
    assert client.get("/v1/events", params=[("type", "member.created")] * 2).status_code == 200


def test_without_a_key_an_unknown_parameter_is_still_a_401(world: Any) -> None:
    with api_client(world.db, None) as anon:
        assert_problem(anon.get("/v1/members", params={"email": "x"}), 401, "unauthorized")


def test_parameters_of_dependencies_and_new_routes_are_allowed_automatically(
    world: Any,
) -> None:
    """The allowed names come from the matched route's declaration, dependencies and aliases
    included, so an operation added later (by any feature) is covered without a list."""

    def paging(cursor: str | None = None, size: int = Query(10, alias="page-size")) -> int:
        return size

    router = APIRouter(dependencies=[Depends(refuse_unknown_query)])

    @router.get("/v1/things", responses=problem_responses(404))
    async def things(p: int = Depends(paging), colour: str | None = None) -> dict[str, int]:
        return {"size": p}

    from loyalist.app import create_app
    from loyalist.config import Settings

    app = create_app(Settings(database_url=world.db.url), db=world.db)
    app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/v1/things?cursor=a&page-size=3&colour=red").json() == {"size": 3}
        body = assert_problem(c.get("/v1/things?size=3"), 422, "validation_failed", "size")
        assert (
            "cursor, colour, page-size" in body["detail"]
            or "colour, cursor, page-size" in (body["detail"])
        )


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/orders", {"amount_paid_minor": True}, "amount_paid_minor"),
        ("/v1/orders", {"amount_paid_minor": "1000"}, "amount_paid_minor"),
        ("/v1/orders", {"lines": [{"sku": "A", "quantity": True, "unit_price_minor": 1000}]},
         "lines.0.quantity"),
        ("/v1/orders", {"lines": [{"sku": "A", "quantity": "1", "unit_price_minor": 1000}]},
         "lines.0.quantity"),
        ("/v1/orders", {"occurred_at": 1780884000}, "occurred_at"),
        ("/v1/orders", {"occurred_at": "1780884000"}, "occurred_at"),
        ("/v1/orders", {"occurred_at": "2026-06-08"}, "occurred_at"),
        ("/v1/orders", {"external_id": 5}, "external_id"),
    ],
)  # fmt: skip
def test_no_booleans_or_strings_as_numbers_no_epochs_as_dates(
    world: Any, client: Any, path: str, body: dict[str, Any], field: str
) -> None:
    mid = new_member(client, "13800000001")
    before = counts(world.db)
    payload = {**order_payload("strict", mid, paid=1000, occurred_at=MONDAY), **body}
    assert_problem(client.post(path, json=payload), 422, "validation_failed", field)
    assert counts(world.db) == before


def test_strict_member_fields(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    before = counts(world.db)
    cases = [
        ("POST", "/v1/members", {"phone": "13800000002", "birthday": 946684800}, "birthday"),
        ("POST", "/v1/members", {"phone": "13800000002", "birthday": "2000-01-01T00:00Z"},
         "birthday"),
        ("POST", "/v1/members", {"phone": "13800000002", "consents": {"sms": 1}}, "consents.sms"),
        ("PUT", f"/v1/members/{mid}/consents/sms", {"granted": "true"}, "granted"),
        ("POST", f"/v1/members/{mid}/adjustments", {"points": True, "reason": "bool"}, "points"),
        ("POST", "/v1/redemptions", {"member_id": str(mid), "reward": "upsize"}, "member_id"),
        ("POST", "/v1/orders/1/returns", {"return_id": "r", "full": 1}, "full"),
    ]  # fmt: skip
    for method, path, body, field in cases:
        assert_problem(client.request(method, path, json=body), 422, "validation_failed", field)
    assert counts(world.db) == before
    # the right types are still taken
    r = client.post("/v1/members", json={"phone": "13800000002", "birthday": "2000-01-01"})
    assert r.status_code == 201, r.text
    assert r.json()["birthday"] == "2000-01-01"


def test_duplicate_keys_are_refused_by_name(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    before = counts(world.db)
    raw = b'{"points": 1, "reason": "first", "points": 9000000}'
    r = client.post(f"/v1/members/{mid}/adjustments", content=raw, headers=JSON)
    body = assert_problem(r, 422, "validation_failed", "points")
    assert body["errors"][0]["code"] == "duplicate_key"
    nested = b'{"phone": "13800000009", "consents": {"sms": true, "sms": false}}'
    body = assert_problem(client.post("/v1/members", content=nested, headers=JSON), 422)
    assert body["errors"][0] == {
        "field": "sms",
        "message": "duplicate key in a JSON object",
        "code": "duplicate_key",
    }
    assert counts(world.db) == before


@pytest.mark.parametrize(
    "raw", [b'{"phone": "1380000000', b'{"phone": NaN}', b"{'phone': 'x'}", b'{"a":1,}']
)
def test_invalid_json_is_one_clear_problem_on_the_body(world: Any, client: Any, raw: bytes) -> None:
    r = client.post("/v1/members", content=raw, headers=JSON)
    body = assert_problem(r, 422, "validation_failed", "body")
    assert [e["field"] for e in body["errors"]] == ["body"]
    assert body["errors"][0]["code"] == "json_invalid"
    assert body["detail"].startswith("The body is not valid JSON")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/members", "GET, POST"),
        ("PUT", "/v1/orders", "GET, POST"),
        ("DELETE", "/v1/members/1", "GET, PATCH"),
        ("GET", "/v1/programme/dry-run", "POST"),
    ],
)
def test_405_names_every_allowed_method(
    world: Any, client: Any, method: str, path: str, allow: str
) -> None:
    r = client.request(method, path)
    assert_problem(r, 405, "method_not_allowed")
    assert r.headers["allow"] == allow


def test_openapi_describes_answers_errors_and_the_key(world: Any, client: Any) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "code", "detail"}
    assert doc["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "lk_…",
        "description": "An API key: `Authorization: Bearer lk_…`.",
    }
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            ok = [s for s in op["responses"] if s.startswith("2")]
            assert ok, where
            for status in ok:
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                assert "$ref" in schema, (where, schema)  # a declared model, not {}
            statuses = ["422", "503"]
            if "security" in op:
                assert op["security"] == [{"apiKey": []}, {"apiKeyHeader": []}], where
                statuses += ["401", "403"]
            else:  # a public operation: it must answer without a key
                with api_client(world.db, None) as anon:
                    assert anon.request(method, path).status_code != 401, where
            for status in statuses:
                assert op["responses"][status]["content"] == {
                    "application/problem+json": problem
                }, (where, status)
            assert "Retry-After" in op["responses"]["503"]["headers"], where
            if "requestBody" in op:
                assert {"413", "415"} <= set(op["responses"]), where
    assert "404" in doc["paths"]["/v1/members/{member_id}"]["get"]["responses"]
    assert "409" in doc["paths"]["/v1/orders"]["post"]["responses"]


def test_every_operation_that_needs_a_key_declares_both_ways_to_send_it(
    world: Any, client: Any
) -> None:
    """The key's schemes are declared by openapi_document, not by dependencies FastAPI would
    run on every request: an operation has ``security`` exactly when it depends on
    current_actor, and an anonymous call of a few of them is a 401."""
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["apiKeyHeader"] == {
        "type": "apiKey",
        "description": "The same API key in the `X-API-Key` header.",
        "in": "header",
        "name": "X-API-Key",
    }
    keyed: set[tuple[str, str]] = set()
    for context in iter_route_contexts(client.app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            uses = _uses(context.dependant, current_actor)
            for method in context.methods or ():
                if uses:
                    keyed.add((method.lower(), context.path_format))
    declared = {
        (method, path)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if "security" in op
    }
    assert declared == keyed
    assert len(keyed) > 100
    for method, path in [("get", "/v1/members/{member_id}"), ("post", "/v1/orders")]:
        assert (method, path) in declared
        with api_client(world.db, None) as anon:
            r = anon.request(method.upper(), path.replace("{member_id}", "1"))
        assert_problem(r, 401, "unauthorized")


def test_answers_keep_their_json(world: Any, client: Any) -> None:
    """Declared schemas changed nothing in the JSON: instants as isoformat (+00:00), keys in
    the same order, nulls kept, tier history's "from"."""
    mid = new_member(client, "13800000001", birthday="2000-02-29")
    r = client.get(f"/v1/members/{mid}")
    body = r.json()
    assert list(body)[:14] == [
        "id", "member_no", "external_id", "phone", "email", "name", "birthday", "gender",
        "city", "home_store_id", "join_channel", "status", "tier", "created_at",
    ]  # fmt: skip
    assert list(body)[14:] == ["tags", "consents", "identities", "points"]
    assert body["created_at"] == "2026-06-10T04:00:00+00:00"
    assert body["birthday"] == "2000-02-29"
    assert body["email"] is None
    assert body["tier"]["since"] == "2026-06-10T04:00:00+00:00"
    history = client.get(f"/v1/members/{mid}/tier-history").json()["items"]
    assert list(history[0]) == [
        "from", "to", "reason", "metric_value", "period", "programme_version", "occurred_at",
    ]  # fmt: skip
    assert history[0]["from"] is None
    o = client.post("/v1/orders", json=order_payload("k", mid, paid=1000, occurred_at=MONDAY))
    assert o.json()["occurred_at"] == "2026-06-08T02:00:00+00:00"
    assert list(o.json())[-2:] == ["lines", "returns"]
    listed = client.get("/v1/orders").json()["items"][0]
    assert "lines" not in listed and listed["points"] == o.json()["points"]


def test_an_unknown_event_type_is_refused(world: Any, client: Any) -> None:
    assert_problem(client.get("/v1/events?type=nope.x"), 422, "validation_failed", "type")


def _numeric_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    )
    for k, v in items:
        if isinstance(v, int) and not isinstance(v, bool):
            out.append((*prefix, k))
        out += _numeric_paths(v, (*prefix, k))
    return out


def test_property_no_number_is_taken_from_a_boolean_or_a_string(world: Any, client: Any) -> None:
    """Any integer field of any valid write, replaced by a boolean or by the same number as
    text, is refused with 422 naming that field, and nothing is written."""
    import copy
    import json as jsonlib

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    mid = new_member(client, "13800000001")
    client.post(f"/v1/members/{mid}/adjustments", json={"points": 1000, "reason": "setup"})
    lines = [{"sku": "A", "category": "coffee", "quantity": 2, "unit_price_minor": 450}]
    oid = client.post(
        "/v1/orders", json=order_payload("o", mid, paid=900, lines=lines, occurred_at=MONDAY)
    ).json()["id"]
    writes: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/orders", order_payload("f", mid, paid=900, lines=lines, occurred_at=MONDAY)),
        ("POST", f"/v1/members/{mid}/adjustments", {"points": 5, "reason": "abc"}),
        ("POST", "/v1/redemptions", {"member_id": mid, "reward": "upsize", "quantity": 1}),
        ("POST", f"/v1/orders/{oid}/returns",
         {"return_id": "r", "lines": [{"line_no": 1, "quantity": 1}]}),
        ("POST", "/v1/programme/dry-run",
         {"order": order_payload("d", None, paid=100, occurred_at=MONDAY), "earned_today": 0}),
    ]  # fmt: skip

    @settings(
        max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(
        st.integers(0, len(writes) - 1),
        st.integers(0, 1000),
        st.sampled_from(["bool", "text", "dup"]),
    )
    def check(which: int, pick: int, how: str) -> None:  # fmt: skip
        method, path, body = writes[which]
        where = _numeric_paths(body)
        target = where[pick % len(where)]
        changed = copy.deepcopy(body)
        holder = changed
        for k in target[:-1]:
            holder = holder[k]
        value = holder[target[-1]]
        if how == "dup":
            if not isinstance(holder, dict):
                return
            # the same key again with another value: '{"points": 5, ..., "points": 9000000}'
            raw = jsonlib.dumps(changed)[:-1] if target == (target[-1],) else None
            if raw is None:
                return
            content = (raw + f', "{target[-1]}": {value + 1}}}').encode()
            field = str(target[-1])
        else:
            holder[target[-1]] = (value % 2 == 1) if how == "bool" else str(value)
            content = jsonlib.dumps(changed).encode()
            field = ".".join(str(p) for p in target)
        before = counts(world.db)
        r = client.request(method, path, content=content, headers=JSON)
        assert_problem(r, 422, "validation_failed", field)
        assert counts(world.db) == before, (method, path, content)

    check()
