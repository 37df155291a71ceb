"""Four eyes on every channel: no adjustment path (API with HQ, region, store and read-only
keys; the console per role; the CLI) applies more than the approval threshold without a
second person. The 9,000,000-point request of the audit becomes a pending approval."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.console import console_client, login, make_users, post
from tests.itest import assert_problem, counts, new_member
from tests.support import api_client
from typer.testing import CliRunner, Result

from loyalist.access import service as access
from loyalist.approval import service as approvals
from loyalist.cli.main import app as cli_app
from loyalist.config import get_settings
from loyalist.http import forget_cached_keys
from loyalist.kit.actor import SYSTEM
from loyalist.ledger import service as ledger
from loyalist.models import AdjustmentRequest

THRESHOLD = approvals.DEFAULT_THRESHOLD
BIG = 9_000_000
MONEY_TABLES = ["ledger_entry", "points_lot", "points_account", "lot_allocation"]


def _available(world: Any, mid: int) -> int:
    with world.db.transaction() as s:
        return ledger.get_account(s, mid).available


def _requests(world: Any) -> list[tuple[int, int, str, str, str]]:
    with world.db.transaction() as s:
        return [
            (r.member_id, r.points, r.status, r.cause, r.requested_by)
            for r in s.query(AdjustmentRequest).order_by(AdjustmentRequest.id)
        ]


@pytest.mark.parametrize("scope", ["hq", "east", "sh1"])
def test_api_keys_of_every_scope_file_a_request_above_the_threshold(
    world: Any, client: Any, scope: str
) -> None:
    mid = new_member(client, "13800000001", home_store="sh1")
    before = counts(world.db, MONEY_TABLES)
    with api_client(world.db, world.keys[scope]) as c:
        r = c.post(f"/v1/members/{mid}/adjustments", json={"points": BIG, "reason": "audit"})
        assert r.status_code == 202, r.text
        body = r.json()
        assert (body["member_id"], body["points"], body["status"], body["cause"]) == (
            mid,
            BIG,
            "pending",
            "threshold",
        )
        assert body["ledger_entry_id"] is None and body["decided_by"] is None
        # the same at the threshold's other side, either sign
        r = c.post(
            f"/v1/members/{mid}/adjustments", json={"points": -(THRESHOLD + 1), "reason": "x y"}
        )
        assert r.status_code == 202, r.text
        # the requester cannot approve its own request
        assert_problem(c.post(f"/v1/adjustment-requests/{body['id']}/approve"), 403, "forbidden")
    assert counts(world.db, MONEY_TABLES) == before
    assert _available(world, mid) == 0
    # up to the threshold applies at once
    with api_client(world.db, world.keys[scope]) as c:
        r = c.post(
            f"/v1/members/{mid}/adjustments", json={"points": THRESHOLD, "reason": "goodwill"}
        )
        assert r.status_code == 201, r.text
    assert _available(world, mid) == THRESHOLD


def test_read_only_key_cannot_adjust_nor_request(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001", home_store="sh1")
    before = counts(world.db, [*MONEY_TABLES, "adjustment_request"])
    with api_client(world.db, world.keys["hq-read"]) as ro:
        for pts in (1, BIG):
            r = ro.post(
                f"/v1/members/{mid}/adjustments", json={"points": pts, "reason": "read only"}
            )
            assert_problem(r, 403, "forbidden")
    assert counts(world.db, [*MONEY_TABLES, "adjustment_request"]) == before


def test_a_second_key_above_the_store_approves_once(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001", home_store="sh1")
    with api_client(world.db, world.keys["sh1"]) as pos:
        rid = pos.post(
            f"/v1/members/{mid}/adjustments", json={"points": BIG, "reason": "audit"}
        ).json()["id"]
    # a second key of the same store is still the store: it cannot approve
    with world.db.transaction() as s:
        till2 = access.create_key(s, name="till 2", scope="sh1").secret
    forget_cached_keys()
    with api_client(world.db, till2) as other_till:
        assert_problem(other_till.post(f"/v1/adjustment-requests/{rid}/approve"), 403, "forbidden")
    # keys that do not see the member do not see the request
    with api_client(world.db, world.keys["sh2"]) as other_store:
        assert other_store.post(f"/v1/adjustment-requests/{rid}/approve").status_code == 404
    with api_client(world.db, world.keys["sz1"]) as south_store:
        assert south_store.post(f"/v1/adjustment-requests/{rid}/approve").status_code == 404
    with api_client(world.db, world.keys["south"]) as south:
        assert south.get(f"/v1/adjustment-requests/{rid}").status_code == 404
    assert _available(world, mid) == 0
    with api_client(world.db, world.keys["east"]) as region:
        listed = region.get("/v1/adjustment-requests").json()["items"]
        assert [x["id"] for x in listed] == [rid]
        r = region.post(f"/v1/adjustment-requests/{rid}/approve")
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["ledger_entry_id"] is not None) == ("approved", True)
        assert_problem(
            region.post(f"/v1/adjustment-requests/{rid}/approve"), 409, "adjustment_request_decided"
        )
        assert region.get("/v1/adjustment-requests").json()["items"] == []
    assert _available(world, mid) == BIG


def test_an_approval_free_limit_is_explicit_per_key(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001", home_store="sh1")
    with world.db.transaction() as s:
        trusted = access.create_key(s, name="crm", scope="hq", approval_free_limit=50_000).secret
        strict = access.create_key(s, name="kiosk", scope="sh1", approval_free_limit=0).secret
    forget_cached_keys()
    with api_client(world.db, trusted) as c:
        assert (
            c.post(f"/v1/members/{mid}/adjustments", json={"points": 50_000, "reason": "crm sync"})
        ).status_code == 201
        r = c.post(f"/v1/members/{mid}/adjustments", json={"points": 50_001, "reason": "crm sync"})
        assert (r.status_code, r.json()["cause"]) == (202, "key_limit")
    with api_client(world.db, strict) as c:
        r = c.post(f"/v1/members/{mid}/adjustments", json={"points": 1, "reason": "kiosk"})
        assert (r.status_code, r.json()["cause"]) == (202, "key_limit")
    assert _available(world, mid) == 50_000


# console: every role, the 9,000,000 request
ROLE_USERS = {
    "admin": "pending",
    "east.manager": "pending",
    "agent": "pending",
    "east.agent": "pending",
    "sh1.staff": 403,
    "analyst": 403,
    "east.analyst": 403,
}


def test_console_no_role_applies_above_the_threshold(world: Any, client: Any) -> None:
    make_users(world.db)
    mid = new_member(client, "13800000001", home_store="sh1")
    before = counts(world.db, MONEY_TABLES)
    for user, expected in ROLE_USERS.items():
        with console_client(world.db) as c:
            csrf = login(c, world.db, user)
            r = post(c, f"/admin/members/{mid}/adjust", csrf, {"points": str(BIG), "reason": "x"})
            if expected == 403:
                assert r.status_code == 403, (user, r.status_code)
            else:
                assert r.status_code == 303, (user, r.status_code)
                assert r.headers["location"].endswith("notice=pending_approval")
    assert counts(world.db, MONEY_TABLES) == before
    assert [(p, st, by) for _m, p, st, _c, by in _requests(world)] == [
        (BIG, "pending", f"user:{u}") for u, e in ROLE_USERS.items() if e == "pending"
    ]


def test_console_daily_budget_per_role_then_approval(world: Any, client: Any) -> None:
    make_users(world.db)
    mid = new_member(client, "13800000001", home_store="sh1")
    budget = approvals.DEFAULT_DAILY_BUDGET["service_agent"]
    with console_client(world.db) as c:
        csrf = login(c, world.db, "agent")
        for _ in range(budget // THRESHOLD):
            r = post(
                c, f"/admin/members/{mid}/adjust", csrf, {"points": str(THRESHOLD), "reason": "x"}
            )
            assert r.headers["location"].endswith("notice=adjusted")
        r = post(c, f"/admin/members/{mid}/adjust", csrf, {"points": "-1", "reason": "x"})
        assert r.headers["location"].endswith("notice=pending_approval")
    assert _available(world, mid) == budget
    assert [(p, c) for _m, p, _s, c, _b in _requests(world)] == [(-1, "daily_budget")]


# CLI
@pytest.fixture
def cli(world: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        monkeypatch.setenv("LOYALIST_DATABASE_URL", world.db.url)
        monkeypatch.setenv("COLUMNS", "200")
        get_settings.cache_clear()
        return runner.invoke(cli_app, list(args))

    yield invoke
    get_settings.cache_clear()


def test_cli_files_a_request_that_only_another_person_approves(
    world: Any, client: Any, cli: Callable[..., Result]
) -> None:
    mid = new_member(client, "13800000001", home_store="sh1")
    r = cli("points", "adjust", str(mid), str(THRESHOLD), "--reason", "small", "--by", "li")
    assert r.exit_code == 0 and "applied" in r.output, r.output
    r = cli("points", "adjust", str(mid), str(BIG), "--reason", "big", "--by", "li")
    assert r.exit_code == 0 and "pending approval: request" in r.output, r.output
    assert _available(world, mid) == THRESHOLD
    (rid,) = [int(w) for w in r.output.split() if w.isdigit()]
    r = cli("approvals", "decide", str(rid), "approve", "--by", "li")
    assert r.exit_code == 2 and "second person" in r.output, r.output
    assert _available(world, mid) == THRESHOLD
    r = cli("approvals", "decide", str(rid), "approve", "--by", "wang")
    assert r.exit_code == 0 and "approved" in r.output, r.output
    assert _available(world, mid) == THRESHOLD + BIG
    with world.db.transaction() as s:
        _n, problems = ledger.verify(s)
        assert problems == []
        assert approvals.pending(s, SYSTEM) == []
