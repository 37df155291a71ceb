"""The lean request handler (speed, issue 11): POST /v1/orders, GET /v1/members/{id} and
POST /v1/redemptions are served without FastAPI's per-request dependency resolution, and
every answer (status, headers, body) is the one FastAPI's own handler gives, errors
included, because anything off the plain path is handed to it."""

from __future__ import annotations

import email.message
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import orjson
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi import routing as fastapi_routing
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from tests.itest import counts, new_member
from tests.support import api_client, order_payload

from loyalist import http
from loyalist.access import service as access

MONDAY = "2026-06-08T10:00:00+08:00"
JSON = {"content-type": "application/json"}


@contextmanager
def fastapi_solves() -> Iterator[list[int]]:
    """Count FastAPI's dependency resolutions (one per request it handles itself)."""
    calls: list[int] = []
    original = fastapi_routing.solve_dependencies

    async def counting(**kwargs: Any) -> Any:
        calls.append(1)
        return await original(**kwargs)

    def per_request(fields: Any, source: Any) -> Any:  # the lean handler's plain params
        raise AssertionError("a plain parameter is read without request_params_to_args")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fastapi_routing, "solve_dependencies", counting)
        mp.setattr(http, "request_params_to_args", per_request)
        yield calls


@contextmanager
def fastapi_handler_only() -> Iterator[None]:
    """Every lean route hands its requests to FastAPI's handler (as with OpenTelemetry)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(http, "get_telemetry_data", lambda: object())
        yield


def _answer(r: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in r.headers.items() if k != "date")
    return r.status_code, headers, r.content


def both(client: Any, method: str, url: str, **kw: Any) -> tuple[Any, Any]:
    """The answer of the lean handler, then FastAPI's own for the same request."""
    lean = client.request(method, url, **kw)
    with fastapi_handler_only():
        full = client.request(method, url, **kw)
    return lean, full


def test_the_three_routes_skip_fastapi_s_dependency_resolution(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    adj = client.post(f"/v1/members/{mid}/adjustments", json={"points": 2000, "reason": "setup"})
    assert adj.status_code == 201, adj.text
    order = order_payload("lean-1", mid, occurred_at=MONDAY)
    with fastapi_solves() as calls:
        r = client.post("/v1/orders", json=order, headers={"Idempotency-Key": "lean-k1"})
        assert r.status_code == 201, r.text
        assert client.get(f"/v1/members/{mid}").status_code == 200
        redeem = {"member_id": mid, "reward": "upsize"}
        r = client.post("/v1/redemptions", json=redeem, headers={"Idempotency-Key": "lean-r1"})
        assert r.status_code == 201, r.text
        assert calls == []
        # any other route is FastAPI's as before
        assert client.get(f"/v1/members/{mid}/ledger").status_code == 200
        assert calls == [1]
    with fastapi_handler_only(), fastapi_solves() as calls:  # the switch used below works
        assert client.get(f"/v1/members/{mid}").status_code == 200
        assert calls == [1]


def test_answers_are_fastapi_s_to_the_byte(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000002")
    adj = client.post(f"/v1/members/{mid}/adjustments", json={"points": 5000, "reason": "setup"})
    assert adj.status_code == 201, adj.text
    good = order_payload("lean-2", mid, occurred_at=MONDAY)
    first = client.post("/v1/orders", json=good, headers={"Idempotency-Key": "lean-k2"})
    assert first.status_code == 201, first.text
    redeem = {"member_id": mid, "reward": "upsize"}
    r1 = client.post("/v1/redemptions", json=redeem, headers={"Idempotency-Key": "lean-r2"})
    assert r1.status_code == 201, r1.text
    with world.db.transaction() as s:  # a key that sees personal data masked
        masked_key = access.create_key(s, name="masked", scope="hq", personal_data=False).secret
    long_key = "k" * 300
    bad_order = {**good, "amount_paid_minor": "lots"}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        # replays of a stored answer
        ("POST", "/v1/orders", {"json": good, "headers": {"Idempotency-Key": "lean-k2"}}),
        ("POST", "/v1/redemptions", {"json": redeem, "headers": {"Idempotency-Key": "lean-r2"}}),
        ("GET", f"/v1/members/{mid}", {}),
        ("GET", f"/v1/members/{mid}", {"headers": {"Authorization": f"Bearer {masked_key}"}}),
        ("GET", f"/v1/members/{mid}", {"headers": {"X-API-Key": world.keys["hq"]}}),
        ("GET", "/v1/members/99999", {}),  # not found
        ("GET", "/v1/members/0", {}),
        ("GET", "/v1/members/4294967296", {}),
        ("GET", "/v1/members/abc", {}),
        ("GET", f"/v1/members/{mid}?nope=1", {}),
        ("GET", f"/v1/members/{mid}", {"headers": {"Authorization": "Bearer lk_wrong_x"}}),
        ("POST", "/v1/orders", {"json": bad_order}),
        ("POST", "/v1/orders", {"json": {"member_id": mid}}),
        ("POST", "/v1/orders", {"json": []}),
        ("POST", "/v1/orders", {"content": b"", "headers": JSON}),
        ("POST", "/v1/orders", {"json": good, "headers": {"Idempotency-Key": long_key}}),
        ("POST", "/v1/orders", {"json": bad_order, "headers": {"Idempotency-Key": long_key}}),
        ("POST", "/v1/orders?x=1", {"json": good}),
        ("POST", "/v1/orders", {"json": good, "headers": {"Authorization": ""}}),
        (
            "POST",
            "/v1/orders",
            {"json": good, "headers": {"Authorization": "Bearer lk_nope_nope"}},
        ),
        (
            "POST",
            "/v1/orders",
            {
                "content": b'{"external_id": "x"}',
                "headers": {"content-type": "application/json; charset=utf-8"},
            },
        ),
        ("POST", "/v1/redemptions", {"json": {"member_id": mid}}),
        ("POST", "/v1/redemptions", {"json": {"member_id": 0, "reward": "upsize"}}),
        # values the InputGuard's parse hands on (not parsed again): as FastAPI reads them
        ("POST", "/v1/redemptions", {"content": b'{"member_id": 1e400, "reward": "x"}'}),
        ("POST", "/v1/redemptions", {"content": b'{"member_id": 1.0, "reward": "\\ud800"}'}),
        ("POST", "/v1/redemptions", {"content": b'{"member_id": -0, "reward": "\\u00e9"}'}),
        ("POST", "/v1/redemptions", {"content": f'{{"member_id": {mid}}}'.encode("utf-16")}),
        ("POST", "/v1/orders", {"content": b'[{"a": {"b": [1, 2, {}]}}]'}),
        ("POST", "/v1/redemptions", {"json": {"member_id": 99999, "reward": "upsize"}}),
    ]
    before = counts(world.db)
    for method, url, kw in cases:
        lean, full = both(client, method, url, **kw)
        assert _answer(lean) == _answer(full), (method, url, lean.text, full.text)
    assert counts(world.db) == before


def test_the_body_is_parsed_once(world: Any, client: Any) -> None:
    """The InputGuard parses a JSON body (to refuse a key given twice); the lean handler
    takes that value instead of parsing the body again. FastAPI's handler parses it again."""
    mid = new_member(client, "13800000006")
    body = orjson.dumps(order_payload("lean-6", mid, occurred_at=MONDAY))
    parsed: list[bytes] = []
    loads = json.loads

    def counting(text: Any, *args: Any, **kwargs: Any) -> Any:
        if text == body:
            parsed.append(text)
        return loads(text, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(json, "loads", counting)
        r = client.post("/v1/orders", content=body, headers={**JSON, "Idempotency-Key": "l6"})
        assert r.status_code == 201, r.text
        assert len(parsed) == 1
        with fastapi_handler_only():
            again = client.post(
                "/v1/orders", content=body, headers={**JSON, "Idempotency-Key": "l6"}
            )
        assert (again.status_code, again.content) == (201, r.content)
        assert len(parsed) == 3


def test_a_body_changed_after_the_guard_is_parsed_again(world: Any, client: Any) -> None:
    """The value handed on is used only for the body it was parsed from."""
    app: Any = client.app
    routing = app.router.middleware_stack
    replaced = b'{"member_id": 99999, "reward": "upsize"}'

    async def other_body(scope: Any, receive: Any, send: Any) -> None:
        async def read() -> Any:
            await receive()
            return {"type": "http.request", "body": replaced, "more_body": False}

        await routing(scope, read, send)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(app.router, "middleware_stack", other_body)
        r = client.post("/v1/redemptions", json={"member_id": 1, "reward": "nope"})
    assert (r.status_code, r.json()["detail"]) == (404, "No member 99999."), r.text


def test_a_fresh_write_answers_what_it_stores(world: Any, client: Any) -> None:
    """A new order through the lean handler: its answer is the stored one (the replay
    through FastAPI's handler is the same body, marked replayed)."""
    mid = new_member(client, "13800000003")
    good = order_payload("lean-3", mid, occurred_at=MONDAY)
    first = client.post("/v1/orders", json=good, headers={"Idempotency-Key": "lean-k3"})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    with fastapi_handler_only():
        again = client.post("/v1/orders", json=good, headers={"Idempotency-Key": "lean-k3"})
    assert (again.status_code, again.content) == (201, first.content)
    assert again.headers["idempotent-replayed"] == "true"


def test_a_revoked_key_is_refused_by_the_lean_handler(world: Any) -> None:
    with world.db.transaction() as s:
        till = access.create_key(s, name="till-lean", scope="hq").secret
    prefix = till[: till.index("_", 3)]
    with api_client(world.db, till) as c:
        mid = new_member(c, "13800000004")
        good = order_payload("lean-4", mid, occurred_at=MONDAY)
        assert c.post("/v1/orders", json=good).status_code == 201
        with world.db.transaction() as s:
            access.revoke(s, prefix)
        before = counts(world.db)
        with fastapi_solves() as calls:
            again = c.post("/v1/orders", json=order_payload("lean-5", mid, occurred_at=MONDAY))
            assert again.status_code == 401, again.text
            assert c.get(f"/v1/members/{mid}").status_code == 401
            assert calls == []
        assert counts(world.db) == before


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/problem+json",
        "application/vnd.api+json",
        "text/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "",
        "garbage",
    ],
)
def test_json_media_is_fastapi_s_test(content_type: str) -> None:
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    fastapi_reads_json = message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
    assert http._json_media(content_type) is fastapi_reads_json


def test_lean_wants_an_endpoint_that_answers_a_response() -> None:
    async def model_answer() -> dict[str, int]:  # pragma: no cover
        return {}

    with pytest.raises(TypeError, match="answers a Response"):
        http.lean(model_answer)


def _page(limit: Annotated[int, Query()] = 10) -> int:
    return limit


@http.lean
async def _plain() -> JSONResponse:
    return JSONResponse({"ok": True})


@http.lean
async def _paged(limit: Annotated[int, Depends(_page)]) -> JSONResponse:
    return JSONResponse({"limit": limit})


def test_a_route_of_another_shape_keeps_fastapi_s_handler() -> None:
    """A dependency with parameters of its own (here a query parameter) is FastAPI's to
    solve: the route keeps FastAPI's handler, lean or not."""
    router = APIRouter(route_class=http.LeanRoute)
    router.add_api_route("/plain", _plain, methods=["GET"])
    router.add_api_route("/paged", _paged, methods=["GET"])
    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as c, fastapi_solves() as calls:
        assert c.get("/paged", params={"limit": 3}).json() == {"limit": 3}
        assert calls == [1]
        assert c.get("/plain").json() == {"ok": True}
        assert calls == [1]
