"""Console administration and fulfilment: the flows an operator runs in the first hour,
and every new route × every role × in/out of scope (the same harness as the console's
permission matrix: refusals write nothing, reads change nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.console import PASSWORD, console_client, login, make_users
from tests.integration.admin.test_permission_matrix import (
    ALL,
    HQ,
    ROLE_USER,
    Case,
    Shop,
    run_case,
    seed,
)
from tests.itest import assert_problem, counts
from tests.support import api_client

from loyalist.admin.administration import router
from loyalist.kit.db import Database
from loyalist.models import ApiKey, AuditLog, Member, OrgUnit, Redemption, Reward, StaffUser
from loyalist.reward import domain

# ── flows ──────────────────────────────────────────────────────────────────────────────


def _post(c: TestClient, csrf: str, url: str, **form: str) -> Any:
    return c.post(url, data={"csrf_token": csrf, **form}, follow_redirects=False)


@pytest.fixture
def users(world: Any) -> Any:
    make_users(world.db)
    return world


def _user(db: Database, login_name: str) -> StaffUser:
    with db.transaction() as s:
        u = s.scalar(select(StaffUser).where(StaffUser.login == login_name))
        assert u is not None
        s.expunge(u)
        return u


def test_a_disabled_user_is_signed_out_at_once_and_cannot_sign_in(users: Any) -> None:
    db = users.db
    with console_client(db) as admin, console_client(db) as newbie:
        csrf = login(admin, db, "admin")
        r = _post(
            admin,
            csrf,
            "/admin/staff",
            login="New.Clerk",
            role="store_staff",
            unit="sh1",
            password="clerk-pass-2026",
        )
        assert (r.status_code, r.headers["location"]) == (303, "/admin/staff?notice=created")
        login(newbie, db, "new.clerk", "clerk-pass-2026")
        assert newbie.get("/admin/members").status_code == 200
        uid = _user(db, "new.clerk").id
        assert _post(admin, csrf, f"/admin/staff/{uid}/disable").status_code == 303
        # the open session ends: the next page asks for a login
        r = newbie.get("/admin/members", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")
        token = "login-form-token-0123456789"
        newbie.cookies.set("loyalist_login_csrf", token)
        r = newbie.post(
            "/admin/login",
            data={"login": "new.clerk", "password": "clerk-pass-2026", "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 401
        page = admin.get("/admin/staff").text
        assert 'data-login="new.clerk"' in page and "已停用" in page
    with db.transaction() as s:
        actions = list(
            s.scalars(select(AuditLog.action).where(AuditLog.object_type == "staff_user"))
        )
    assert actions[-2:] == ["staff.create", "staff.disable"]


def test_reset_password_and_role_change_end_sessions(users: Any) -> None:
    db = users.db
    uid = _user(db, "sh1.staff").id
    with console_client(db) as admin, console_client(db) as clerk:
        csrf = login(admin, db, "admin")
        login(clerk, db, "sh1.staff")
        r = _post(admin, csrf, f"/admin/staff/{uid}/password", password="short")
        assert r.status_code == 422 and 'data-error="' + f"{uid}.password" in r.text
        assert clerk.get("/admin/members").status_code == 200  # nothing changed
        r = _post(admin, csrf, f"/admin/staff/{uid}/password", password="brand-new-2026")
        assert r.status_code == 303
        assert clerk.get("/admin/members", follow_redirects=False).status_code == 303
        login(clerk, db, "sh1.staff", "brand-new-2026")
        r = _post(admin, csrf, f"/admin/staff/{uid}/role", role="regional_manager", unit="east")
        assert r.status_code == 303
        assert clerk.get("/admin/members", follow_redirects=False).status_code == 303
    u = _user(db, "sh1.staff")
    assert u.role == "regional_manager"
    # nobody changes their own account here
    with console_client(db) as admin:
        csrf = login(admin, db, "admin")
        me = _user(db, "admin").id
        before = counts(db)
        r = _post(admin, csrf, f"/admin/staff/{me}/disable")
        assert r.status_code == 422
        assert counts(db) == before


def test_org_units_create_rename_move_and_close(users: Any) -> None:
    db = users.db
    with console_client(db) as admin:
        csrf = login(admin, db, "admin")
        r = _post(admin, csrf, "/admin/org", code="sh9", name="新店", kind="store", parent="east")
        assert r.status_code == 303
        bad = _post(admin, csrf, "/admin/org", code="Bad Code", name="", kind="store", parent="x")
        assert bad.status_code == 422 and 'data-error="code"' in bad.text
        assert _post(admin, csrf, "/admin/org/sh9/rename", name="新天地店").status_code == 303
        # a member of sh9, seen by the east manager
        r = _post(admin, csrf, "/admin/members/new", phone="13912340000", home_store="sh9")
        assert r.status_code == 303
        with db.transaction() as s:
            m = s.scalar(select(Member).where(Member.phone == "+8613912340000"))
            assert m is not None
            mid = m.id
        with console_client(db) as east:
            login(east, db, "east.manager")
            assert east.get(f"/admin/members/{mid}").status_code == 200
            assert _post(admin, csrf, "/admin/org/sh9/move", parent="south").status_code == 303
            assert east.get(f"/admin/members/{mid}").status_code == 404
        with console_client(db) as south:
            login(south, db, "south.manager")
            assert south.get(f"/admin/members/{mid}").status_code == 200
        with db.transaction() as s:
            unit = s.scalar(select(OrgUnit).where(OrgUnit.code == "sh9"))
            south_unit = s.scalar(select(OrgUnit).where(OrgUnit.code == "south"))
            assert unit is not None and south_unit is not None
            assert unit.name == "新天地店" and unit.parent_id == south_unit.id
            assert unit.path == f"{south_unit.path}{unit.id}/"
            m = s.get(Member, mid)
            assert m is not None and m.org_path == unit.path
        # a store moves only under a region
        assert _post(admin, csrf, "/admin/org/sh9/move", parent="sh1").status_code == 422
        assert _post(admin, csrf, "/admin/org/sh9/close").status_code == 303
        before = counts(db)
        r = _post(admin, csrf, "/admin/members/new", phone="13912340001", home_store="sh9")
        assert r.status_code == 422 and 'data-error="home_store"' in r.text
        assert counts(db) == before
    with api_client(db, users.keys["hq"]) as c:
        r = c.post("/v1/members", json={"phone": "13912340002", "home_store": "sh9"})
        assert_problem(r, 422, "validation_failed", field="home_store")


def test_api_keys_created_in_the_console_work_and_revoke_at_once(users: Any) -> None:
    db = users.db
    with console_client(db) as admin:
        csrf = login(admin, db, "admin")
        r = _post(admin, csrf, "/admin/keys", name="POS 1", scope="sh1", access="read_write")
        assert r.status_code == 201
        with db.transaction() as s:
            key = s.scalars(select(ApiKey).where(ApiKey.name == "POS 1")).one()
            prefix, masked = key.prefix, not key.personal_data
        assert masked  # the box was not ticked
        secret = r.text.split('user-select: all">')[1].split("<")[0]
        assert secret.startswith(prefix + "_")
        listing = admin.get("/admin/keys").text
        assert f"{prefix}_…" in listing and secret not in listing
        with api_client(db, secret) as c:
            assert c.post("/v1/members", json={"phone": "13955550000"}).status_code == 201
            assert c.get("/v1/members").status_code == 200
            assert _post(admin, csrf, f"/admin/keys/{prefix}/revoke").status_code == 303
            assert_problem(c.get("/v1/members"), 401, "unauthorized")


def test_personal_data_is_masked_for_keys_without_the_permission(users: Any) -> None:
    db = users.db
    body = {
        "phone": "13955551234",
        "email": "zhang.wei@example.com",
        "birthday": "1990-05-17",
        "identities": [
            {"kind": "wechat_openid", "value": "oWx1234567890abc"},
            {"kind": "pos_card", "value": "CARD0012345678"},
        ],
    }
    with api_client(db, users.keys["hq"]) as c:
        full = c.post("/v1/members", json=body).json()
    assert full["phone"] == "+8613955551234" and full["email"] == "zhang.wei@example.com"
    with console_client(db) as admin:
        csrf = login(admin, db, "admin")
        r = _post(admin, csrf, "/admin/keys", name="BI", scope="hq", access="read")
        secret = r.text.split('user-select: all">')[1].split("<")[0]
    with api_client(db, secret) as c:
        got = c.get(f"/v1/members/{full['id']}").json()
        listed = c.get("/v1/members").json()["items"]
    assert got["phone"] == "+86139****1234"
    assert got["email"] == "z***@example.com"
    assert got["birthday"] == "****-05-17"
    idents = {i["kind"]: i["value"] for i in got["identities"]}
    assert idents == {
        "phone": "+86139****1234",
        "email": "z***@example.com",
        "wechat_openid": "oWx****bc",
        "pos_card": "CAR****78",
    }
    assert "13955551234" not in str(listed) and "zhang.wei" not in str(listed)
    # the console: an analyst (no personal-data permission) sees the same masks
    with console_client(db) as c:
        login(c, db, "analyst")
        page = c.get(f"/admin/members/{full['id']}").text
    for secret_part in ("zhang.wei", "1990", "oWx1234567890abc", "CARD0012345678", "55551234"):
        assert secret_part not in page, secret_part
    assert "z***@example.com" in page and "oWx****bc" in page


def test_member_created_in_the_console_uses_the_api_validation(users: Any) -> None:
    db = users.db
    with console_client(db) as admin:
        csrf = login(admin, db, "admin")
        before = counts(db)
        r = _post(admin, csrf, "/admin/members/new", phone="12345", email="nope")
        assert r.status_code == 422
        assert 'data-error="phone"' in r.text
        assert counts(db) == before
        r = _post(
            admin,
            csrf,
            "/admin/members/new",
            phone="13977770000",
            name="李雷",
            home_store="sh1",
            consent_sms="on",
        )
        assert r.status_code == 303 and r.headers["location"].endswith("?notice=created")
        again = _post(admin, csrf, "/admin/members/new", phone="13977770000")
        assert again.headers["location"] == r.headers["location"].replace("created", "exists")
    with db.transaction() as s:
        m = s.scalar(select(Member).where(Member.phone == "+8613977770000"))
        assert m is not None and m.join_channel == "console" and m.name == "李雷"


def test_stock_top_up_and_collection_at_the_counter(users: Any) -> None:
    db = users.db
    with api_client(db, users.keys["hq"]) as c:
        mid = c.post("/v1/members", json={"phone": "13966660000", "home_store": "sh1"}).json()["id"]
        c.post(f"/v1/members/{mid}/adjustments", json={"points": 2000, "reason": "setup"})
        red = c.post("/v1/redemptions", json={"member_id": mid, "reward": "croissant"}).json()
    with console_client(db) as clerk, console_client(db) as admin:
        csrf = login(admin, db, "admin")
        r = _post(admin, csrf, "/admin/rewards/croissant/stock", quantity="500")
        assert r.status_code == 303
        assert _post(admin, csrf, "/admin/rewards/croissant/stock", quantity="x").status_code == 422
        with db.transaction() as s:
            row = s.scalar(select(Reward).where(Reward.code == "croissant"))
            assert row is not None and (row.stock_remaining, row.stock_added) == (2499, 500)
        ccsrf = login(clerk, db, "sh1.staff")
        assert (
            _post(clerk, ccsrf, "/admin/rewards/croissant/stock", quantity="1").status_code == 403
        )
        typed = red["code"].lower().replace("-", "")
        r = _post(clerk, ccsrf, "/admin/redemptions/collect", code=typed)
        assert r.headers["location"] == f"/admin/redemptions?notice=collected&id={red['id']}"
        r = _post(clerk, ccsrf, "/admin/redemptions/collect", code=typed)
        assert r.headers["location"] == "/admin/redemptions?notice=redemption_already_collected"
        page = clerk.get(r.headers["location"]).text
        assert "已拒绝：该兑换已核销过。" in page
        assert 'data-state="collected"' in page and red["code"] in page
        assert _post(clerk, ccsrf, "/admin/redemptions/collect", code="ZZZZ").status_code == 404
    with db.transaction() as s:
        r2 = s.get(Redemption, red["id"])
        assert r2 is not None and r2.collected_by == "user:sh1.staff"


# ── the matrix for the new routes ──────────────────────────────────────────────────────
TARGETS: dict[str, Any] = {}  # filled by the fixture: staff ids, key prefixes, codes


def _phone(role: str, scope: str) -> str:
    return f"1391{sorted(ROLE_USER).index(role)}{'0' if scope == 'in' else '1'}00000"


STORE = {"in": "sh1", "out": "sz1"}
COLLECTORS = frozenset({"hq_admin", "regional_manager", "store_staff"})
MATRIX: dict[tuple[str, str], Case] = {
    ("GET", "/admin/staff"): Case(lambda f, r, s: ("/admin/staff", None), HQ, 200, scoped=False),
    ("POST", "/admin/staff"): Case(
        lambda f, r, s: (
            "/admin/staff",
            {"login": f"m-{r}-{s}", "role": "analyst", "unit": STORE[s], "password": PASSWORD},
        ),
        HQ,
        303,
        writes=True,
    ),
    ("POST", "/admin/staff/{user_id}/{action}"): Case(
        lambda f, r, s: (f"/admin/staff/{TARGETS['staff'][s]}/disable", {}),
        HQ,
        303,
        writes=True,
    ),
    ("GET", "/admin/org"): Case(lambda f, r, s: ("/admin/org", None), HQ, 200, scoped=False),
    ("POST", "/admin/org"): Case(
        lambda f, r, s: (
            "/admin/org",
            {"code": f"new-{r}", "name": "新", "kind": "store", "parent": "east"},
        ),
        HQ,
        303,
        scoped=False,
        writes=True,
    ),
    ("POST", "/admin/org/{code}/{action}"): Case(
        lambda f, r, s: (f"/admin/org/{STORE[s]}/rename", {"name": f"改名 {r}"}),
        HQ,
        303,
        writes=True,
    ),
    ("GET", "/admin/keys"): Case(lambda f, r, s: ("/admin/keys", None), HQ, 200, scoped=False),
    ("POST", "/admin/keys"): Case(
        lambda f, r, s: ("/admin/keys", {"name": f"k-{r}", "scope": STORE[s], "access": "read"}),
        HQ,
        201,
        writes=True,
    ),
    ("POST", "/admin/keys/{prefix}/revoke"): Case(
        lambda f, r, s: (f"/admin/keys/{TARGETS['keys'][s]}/revoke", {}), HQ, 303, writes=True
    ),
    ("GET", "/admin/members/new"): Case(
        lambda f, r, s: ("/admin/members/new", None), ALL - {"analyst"}, 200, scoped=False
    ),
    ("POST", "/admin/members/new"): Case(
        lambda f, r, s: (
            "/admin/members/new",
            {"phone": _phone(r, s), "home_store": STORE[s]},
        ),
        ALL - {"analyst"},
        303,
        writes=True,
    ),
    ("GET", "/admin/rewards"): Case(
        lambda f, r, s: ("/admin/rewards", None), ALL, 200, scoped=False
    ),
    ("POST", "/admin/rewards/{code}/stock"): Case(
        lambda f, r, s: ("/admin/rewards/latte/stock", {"quantity": "5"}),
        HQ,
        303,
        scoped=False,
        writes=True,
    ),
    ("POST", "/admin/redemptions/collect"): Case(
        lambda f, r, s: ("/admin/redemptions/collect", {"code": TARGETS["codes"][(r, s)]}),
        COLLECTORS,
        303,
        writes=True,
    ),
    ("POST", "/admin/redemptions/{redemption_id}/collect"): Case(
        lambda f, r, s: (f"/admin/redemptions/{f.redemption[(r, s)]}/collect", {}),
        COLLECTORS,
        303,
        writes=True,
    ),
}


def _routes() -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for route in router.routes:
        for method in getattr(route, "methods", set()) - {"HEAD"}:
            out.add((method, route.path))  # type: ignore[attr-defined]
    return out


def test_every_new_route_has_a_matrix_entry() -> None:
    assert set(MATRIX) == _routes()


@pytest.fixture
def shop(world: Any) -> Shop:
    shop = seed(world.db)
    make_users(world.db, {"target.in": ("analyst", "sh1"), "target.out": ("analyst", "sz1")})
    TARGETS.clear()
    TARGETS["staff"] = {s: _user(world.db, f"target.{s}").id for s in ("in", "out")}
    TARGETS["keys"] = {
        s: world.keys[STORE[s]][: world.keys[STORE[s]].index("_", 3)] for s in ("in", "out")
    }
    with world.db.transaction() as s:
        TARGETS["codes"] = {
            k: domain.format_code(s.get(Redemption, rid).code)  # type: ignore[union-attr]
            for k, rid in shop.redemption.items()
        }
    return shop


@pytest.mark.parametrize("key", sorted(MATRIX), ids=lambda k: f"{k[0]} {k[1]}")
def test_new_route_by_role_and_scope(world: Any, shop: Shop, key: tuple[str, str]) -> None:
    run_case(world, shop, key, MATRIX[key])
