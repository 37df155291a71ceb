# ruff: noqa: E501 - the table of bad requests reads best one request per line
"""Every failure is RFC 9457 problem+json with a stable code (and field errors where a field
is at fault); bad input is 4xx, never 500, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from tests.itest import assert_problem, counts, new_member
from tests.support import order_payload

MONDAY = "2026-06-08T10:00:00+08:00"
HUGE = 10**30
JSON = {"content-type": "application/json"}


def line(**kw: Any) -> dict[str, Any]:
    return {"sku": "LATTE", "category": "coffee", "quantity": 1, "unit_price_minor": 1000, **kw}


def order(**kw: Any) -> dict[str, Any]:
    return {**order_payload("bad", None, paid=1000, occurred_at=MONDAY), **kw}


@pytest.fixture
def mid(client: Any) -> int:
    return new_member(client, "13800000001")


def test_problem_shape(world: Any, client: Any) -> None:
    r = client.get("/v1/members/424242")
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {
        "type": "https://loyalist.dev/problems/member-not-found",
        "title": "Member not found",
        "status": 404,
        "code": "member_not_found",
        "detail": "No member 424242.",
        "instance": "/v1/members/424242",
    }
    r = client.post("/v1/members", json={"phone": "12345"})
    body = assert_problem(r, 422, "validation_failed", "phone")
    assert body["errors"] == [
        {"field": "phone", "message": body["errors"][0]["message"], "code": "invalid"}
    ]
    assert body["instance"] == "/v1/members"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/nowhere", 404, "not_found"),
        ("GET", "/v1/orders/424242", 404, "order_not_found"),
        ("GET", "/v1/redemptions/424242", 404, "redemption_not_found"),
        ("DELETE", "/v1/members", 405, "method_not_allowed"),
        ("PUT", "/v1/orders", 405, "method_not_allowed"),
        ("GET", "/v1/members/abc", 422, "validation_failed"),
        ("GET", f"/v1/members/{HUGE}", 422, "validation_failed"),
        ("GET", f"/v1/members/{2**31}", 422, "validation_failed"),
        ("GET", "/v1/members/0", 422, "validation_failed"),
        ("GET", f"/v1/orders/{2**63}", 422, "validation_failed"),
        ("GET", f"/v1/redemptions/{HUGE}", 422, "validation_failed"),
        ("GET", f"/v1/orders?member_id={HUGE}", 422, "validation_failed"),
        ("GET", f"/v1/events?member_id={HUGE}", 422, "validation_failed"),
        ("GET", f"/v1/redemptions?member_id={HUGE}", 422, "validation_failed"),
        ("GET", "/v1/members?limit=0", 422, "validation_failed"),
        ("GET", "/v1/members?limit=201", 422, "validation_failed"),
        ("GET", "/v1/members?cursor=not-a-cursor", 422, "validation_failed"),
        ("GET", "/v1/members?cursor=eyJhIjoxZTQwMH0", 422, "validation_failed"),  # a=1e400
        ("GET", "/v1/members?cursor=eyJhIjoxMDAwMDAwMDAwMDAwMDAwMDAwMDAwfQ", 422, None),
        ("GET", "/v1/members?q=a%00b", 422, "validation_failed"),
        ("GET", "/v1/members?phone=abc", 422, "validation_failed"),
        ("GET", "/v1/members?store=nope", 404, "org_unit_not_found"),
        ("GET", "/v1/orders?store=east", 422, "validation_failed"),  # a region, not a store
    ],
)
def test_reads_fail_as_problems(
    world: Any, client: Any, method: str, path: str, status: int, code: str | None
) -> None:
    r = client.request(method, path)
    assert_problem(r, status, code)


def test_unknown_route_and_method_under_v1_need_no_key(world: Any) -> None:
    from tests.support import api_client

    with api_client(world.db, None) as anon:
        assert_problem(anon.get("/v1/nowhere"), 404, "not_found")
        assert_problem(anon.get("/v1/members"), 401, "unauthorized")


def bad_writes(mid: int) -> list[tuple[str, str, dict[str, Any], int, str, str | None]]:
    """(method, path, request kwargs, status, code, field)"""
    adj = f"/v1/members/{mid}/adjustments"
    return [
        # not JSON
        ("POST", "/v1/members", {"content": b'{"phone": ', "headers": JSON}, 422, "validation_failed", None),
        ("POST", "/v1/members", {"content": b"\xff\xfe", "headers": JSON}, 422, "validation_failed", None),
        ("POST", "/v1/members", {"content": b"[" * 50_000 + b"]" * 50_000, "headers": JSON}, 400, "bad_request", None),
        ("POST", "/v1/members", {"content": b"[1, 2]", "headers": JSON}, 422, "validation_failed", "body"),
        ("POST", "/v1/members", {"content": b"", "headers": JSON}, 422, "validation_failed", "body"),
        ("POST", "/v1/orders", {"content": b"null", "headers": JSON}, 422, "validation_failed", "body"),
        # not JSON at all: 415
        ("POST", "/v1/members", {"content": b'{"phone": "13800000002"}', "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type", None),
        ("POST", "/v1/members", {"data": {"phone": "13800000002"}}, 415, "unsupported_media_type", None),
        ("POST", "/v1/members", {"content": b'{"phone": "13800000002"}', "headers": {"content-type": "application/xml"}}, 415, "unsupported_media_type", None),
        # too large: 413, with and without Content-Length
        ("POST", "/v1/members", {"content": b" " * 1_000_001, "headers": JSON}, 413, "payload_too_large", None),
        ("POST", "/v1/members", {"content": iter([b" " * 600_000, b" " * 600_000]), "headers": JSON}, 413, "payload_too_large", None),
        # unknown fields and wrong types name the field
        ("POST", "/v1/members", {"json": {"phone": "13800000002", "vip": True}}, 422, "validation_failed", "vip"),
        ("POST", "/v1/members", {"json": {"phone": 13800000002}}, 422, "validation_failed", "phone"),
        ("POST", "/v1/members", {"json": {"birthday": "yesterday"}}, 422, "validation_failed", "birthday"),
        ("POST", "/v1/members", {"json": {"tags": "vip"}}, 422, "validation_failed", "tags"),
        ("POST", "/v1/members", {"json": {"consents": {"fax": True}}}, 422, "validation_failed", "consents.fax.[key]"),
        ("POST", "/v1/members", {"json": {"name": "a\u0000b"}}, 422, "validation_failed", "body"),
        ("POST", "/v1/members", {"json": {"home_store": "nope"}}, 404, "org_unit_not_found", "home_store"),
        ("PATCH", f"/v1/members/{mid}", {"json": {"points": 5}}, 422, "validation_failed", "points"),
        ("PUT", f"/v1/members/{mid}/consents/fax", {"json": {"granted": True}}, 422, "validation_failed", "channel"),
        ("POST", f"/v1/members/{mid}/tags", {"json": {"add": ["a,b"]}}, 422, "validation_failed", "add.0"),
        ("POST", adj, {"json": {"points": "five", "reason": "typed"}}, 422, "validation_failed", "points"),
        ("POST", adj, {"json": {"points": 2.5, "reason": "float"}}, 422, "validation_failed", "points"),
        ("POST", adj, {"json": {"points": [5], "reason": "list"}}, 422, "validation_failed", "points"),
        ("POST", adj, {"json": {"points": 5, "reason": {"why": "object"}}}, 422, "validation_failed", "reason"),
        ("POST", adj, {"json": {"points": 5, "reason": "x\u0000"}}, 422, "validation_failed", "body"),
        # orders: negative, absurd and unknown values
        ("POST", "/v1/orders", {"json": order(lines=[line(quantity=-1)])}, 422, "validation_failed", "lines.0.quantity"),
        ("POST", "/v1/orders", {"json": order(lines=[line(quantity=0)])}, 422, "validation_failed", "lines.0.quantity"),
        ("POST", "/v1/orders", {"json": order(lines=[line(quantity=100_001)])}, 422, "validation_failed", "lines.0.quantity"),
        ("POST", "/v1/orders", {"json": order(lines=[line(unit_price_minor=-5)])}, 422, "validation_failed", "lines.0.unit_price_minor"),
        ("POST", "/v1/orders", {"json": order(lines=[line(discount_minor=1001)])}, 422, "validation_failed", "lines.0"),
        ("POST", "/v1/orders", {"json": order(lines=[line(quantity=100_000, unit_price_minor=10**12, line_no=i) for i in range(1, 101)])}, 422, "validation_failed", "body"),
        ("POST", "/v1/orders", {"json": order(lines=[])}, 422, "validation_failed", "lines"),
        ("POST", "/v1/orders", {"json": order(amount_paid_minor=-1)}, 422, "validation_failed", "amount_paid_minor"),
        ("POST", "/v1/orders", {"json": order(amount_paid_minor=10**13)}, 422, "validation_failed", "amount_paid_minor"),
        ("POST", "/v1/orders", {"json": order(member_id=HUGE)}, 422, "validation_failed", "member_id"),
        ("POST", "/v1/orders", {"json": order(member_id=424242)}, 404, "member_not_found", "member_id"),
        ("POST", "/v1/orders", {"json": order(store="nope")}, 404, "org_unit_not_found", "store"),
        ("POST", "/v1/orders", {"json": order(store="east")}, 422, "validation_failed", "store"),
        ("POST", "/v1/orders", {"json": order(currency="USD")}, 422, "invalid_order", "currency"),
        ("POST", "/v1/orders", {"json": order(occurred_at="2026-06-08T10:00:00")}, 422, "validation_failed", "occurred_at"),
        ("POST", "/v1/orders", {"json": order(occurred_at="0001-01-01T00:00:00+14:00")}, 422, "validation_failed", "occurred_at"),
        ("POST", "/v1/orders", {"json": order(occurred_at="1969-12-31T23:59:59Z")}, 422, "validation_failed", "occurred_at"),
        ("POST", "/v1/orders", {"json": order(occurred_at="2027-01-01T00:00:00+08:00")}, 422, "invalid_order", "occurred_at"),
        ("POST", "/v1/orders", {"json": order(points_paid=10)}, 422, "validation_failed", "body"),
        ("POST", "/v1/orders", {"json": order(lines=[line(line_no=1), line(line_no=1)])}, 422, "validation_failed", "body"),
        ("POST", "/v1/orders/424242/returns", {"json": {"return_id": "r", "full": True}}, 404, "order_not_found", None),
        ("POST", "/v1/orders/1/returns", {"json": {"return_id": "r"}}, 422, "validation_failed", "body"),
        # redemptions
        ("POST", "/v1/redemptions", {"json": {"member_id": mid, "reward": "upsize", "quantity": 0}}, 422, "validation_failed", "quantity"),
        ("POST", "/v1/redemptions", {"json": {"member_id": mid, "reward": "upsize", "quantity": 101}}, 422, "validation_failed", "quantity"),
        ("POST", "/v1/redemptions", {"json": {"member_id": HUGE, "reward": "upsize"}}, 422, "validation_failed", "member_id"),
        ("POST", "/v1/redemptions", {"json": {"member_id": mid, "reward": "nope"}}, 404, "reward_not_found", "reward"),
        ("POST", "/v1/redemptions", {"json": {"member_id": mid, "reward": "upsize"}}, 409, "insufficient_points", None),
        ("POST", f"/v1/redemptions/{HUGE}/cancel", {}, 422, "validation_failed", "redemption_id"),
        # dry run
        ("POST", "/v1/programme/dry-run", {"json": {"order": order(), "programme_version": HUGE}}, 422, "validation_failed", "programme_version"),
        ("POST", "/v1/programme/dry-run", {"json": {"order": order(), "tier": "diamond"}}, 422, "invalid_order", "tier"),
        ("POST", "/v1/programme/dry-run", {"json": {"order": order(), "programme_version": 9}}, 422, "validation_failed", "programme_version"),
    ]  # fmt: skip


def test_bad_writes_are_4xx_problems_that_write_nothing(world: Any, client: Any, mid: int) -> None:
    client.post("/v1/orders", json=order_payload("real", mid, paid=1000, occurred_at=MONDAY))
    for method, path, kw, status, code, field in bad_writes(mid):
        before = counts(world.db)
        r = client.request(method, path, **kw)
        assert r.status_code == status, (method, path, status, r.status_code, r.text[:300])
        assert_problem(r, status, code, field)
        assert counts(world.db) == before, (method, path)


def test_an_empty_body_is_fine_where_none_is_needed(world: Any, client: Any, mid: int) -> None:
    client.post(f"/v1/members/{mid}/adjustments", json={"points": 500, "reason": "setup"})
    red = client.post("/v1/redemptions", json={"member_id": mid, "reward": "upsize"}).json()
    r = client.post(f"/v1/redemptions/{red['id']}/cancel")  # no body, no content type
    assert r.status_code == 200, r.text
    # a JSON media type with parameters or a +json suffix is JSON
    r = client.post(
        "/v1/members",
        content=b'{"phone": "13800000002"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/v1/members",
        content=b'{"phone": "13800000003"}',
        headers={"content-type": "application/merge-patch+json"},
    )
    assert r.status_code == 201, r.text


def test_a_literal_backslash_u0000_is_text_not_nul(world: Any, client: Any) -> None:
    r = client.post("/v1/members", json={"phone": "13800000002", "name": "\\u0000"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "\\u0000"


def test_the_openapi_document_and_docs_work_offline(world: Any, client: Any) -> None:
    doc = client.get("/openapi.json").json()
    assert "/v1/orders" in doc["paths"] and "/v1/members/{member_id}/adjustments" in doc["paths"]
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/static/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
