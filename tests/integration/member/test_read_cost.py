"""What one GET /v1/members/{id} costs besides its two statements (issue 11, branch
readfast): its statements run on the session's connection, without the ORM's result handling;
the expiring lots' statuses are two bound values, not an expanding IN rendered into the
text on every execution; and a request without a query string builds no URL to look for NUL
characters in it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from starlette.requests import Request
from tests.itest import new_member

from loyalist.app import _refuse_input
from loyalist.member import service as members


def test_the_member_read_goes_through_no_orm_execution(client: Any, world: Any) -> None:
    mid = new_member(client, "13800000001", name="张三")
    assert client.get(f"/v1/members/{mid}").status_code == 200  # warm: programme cached
    orm: list[Any] = []

    def seen(state: Any) -> None:
        orm.append(state.statement)

    event.listen(world.db.sessionmaker, "do_orm_execute", seen)
    try:
        r = client.get(f"/v1/members/{mid}")
    finally:
        event.remove(world.db.sessionmaker, "do_orm_execute", seen)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "张三"
    assert orm == []


def test_the_read_statements_render_no_expanding_parameter() -> None:
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        for statement in (members._ABOUT, members._EXPIRING, members._MEMBER_READ):
            text = str(statement.compile(dialect=dialect))
            assert "POSTCOMPILE" not in text, text


def _request(query: bytes) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "path": "/v1/members/1",
            "raw_path": b"/v1/members/1",
            "root_path": "",
            "query_string": query,
            "headers": [(b"host", b"127.0.0.1:8000")],
            "server": ("127.0.0.1", 8000),
        }
    )


def test_a_request_without_a_query_builds_no_url() -> None:
    request = _request(b"")
    assert _refuse_input(request, b"") is None
    assert "_url" not in vars(request)
    # a query string is still looked at
    nul = _refuse_input(_request(b"q=%00"), b"")
    assert nul is not None and nul.code == "validation_failed"
    assert _refuse_input(_request(b"q=a"), b"") is None
