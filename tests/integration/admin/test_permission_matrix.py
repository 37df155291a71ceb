"""Every console route and action × every role × an object in the role's scope and one out
of it, through the real login. Out-of-scope reads are 404, forbidden actions 403, and a
refusal writes nothing (every table's row count and the state an action could change are
compared before and after). Routes are enumerated from the console's router: a route
without an entry in MATRIX fails ``test_every_console_route_has_a_matrix_entry``.

Roles and their users (tests.console.USERS); every scoped role sees store sh1 and not sz1:
  hq_admin → admin (HQ)          regional_manager → east.manager (east: sh1, sh2)
  store_staff → sh1.staff (sh1)  service_agent → east.agent (east)   analyst → east.analyst
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.console import PASSWORD, console_client, login, make_users
from tests.itest import counts
from tests.support import order_payload

from loyalist.admin.endpoints import router
from loyalist.admin.web import LOGIN_CSRF_COOKIE
from loyalist.approval import service as approvals
from loyalist.coupon import service as coupons
from loyalist.coupon.schemas import TemplateCreate
from loyalist.documents import service as documents
from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import (
    AdjustmentRequest,
    CouponTemplate,
    FraudReview,
    Job,
    Member,
    MemberTag,
    PointsAccount,
    ProgrammeVersion,
    Redemption,
    Referral,
    StaffSession,
    StaffUser,
)
from loyalist.order import service as orders
from loyalist.order.schemas import OrderCreate
from loyalist.programme import service as programmes
from loyalist.reward import service as rewards
from loyalist.reward.schemas import RedemptionCreate
from loyalist.staff import service as staff

ROLE_USER = {
    "hq_admin": "admin",
    "regional_manager": "east.manager",
    "store_staff": "sh1.staff",
    "service_agent": "east.agent",
    "analyst": "east.analyst",
}
ROLES = tuple(ROLE_USER)
ALL = frozenset(ROLES)
HQ = frozenset({"hq_admin"})
ANALYTICS = frozenset({"hq_admin", "regional_manager", "analyst"})
SCOPES = ("in", "out")  # an object in sh1 (in every role's scope) / in sz1 (only HQ's)


# ── the shop ───────────────────────────────────────────────────────────────────────────
@dataclass
class Shop:
    member: dict[str, int] = field(default_factory=dict)  # scope → member id
    member_no: dict[str, str] = field(default_factory=dict)
    phone: dict[str, str] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    order_ext: dict[str, str] = field(default_factory=dict)
    # (role, scope) → a redemption that role may try to cancel
    redemption: dict[tuple[str, str], int] = field(default_factory=dict)
    # (role, scope, decision) → a pending request (filed by admin2) that role may decide
    request: dict[tuple[str, str, str], int] = field(default_factory=dict)
    job: dict[str, int] = field(default_factory=dict)  # "dead" / "queued" → a job id
    # (role, scope) → a referral on hold that role may decide (referrals, issue 12)
    referral: dict[tuple[str, str], int] = field(default_factory=dict)
    run: dict[str, int] = field(default_factory=dict)  # scope → a computed analytics run
    # (role, scope) → points held by a fraud rule that role may decide (issue 13)
    fraud_review: dict[tuple[str, str], int] = field(default_factory=dict)


def analytics_run(s: Any, unit_code: str) -> int:
    """A finished analytics run over a unit's members (its figures do not matter here)."""
    from datetime import date

    from loyalist.kit.clock import utcnow
    from loyalist.models import AnalyticsRun
    from loyalist.org import service as org

    unit = org.get_by_code(s, unit_code)
    assert unit is not None
    run = AnalyticsRun(
        org_path=unit.path,
        as_of=date(2026, 6, 1),
        compare_from=date(2026, 3, 1),
        status="done",
        step=4,
        steps=4,
        result={"at_risk": [], "segments": [], "cohorts": [], "clv_segments": []},
        error=None,
        requested_by="system",
        created_at=utcnow(),
        finished_at=utcnow(),
    )
    s.add(run)
    s.flush()
    return int(run.id)


def seed(db: Database) -> Shop:
    make_users(db)
    shop = Shop()
    with db.transaction() as s:
        admin2 = staff.actor_for(s, staff.get_by_login(s, "admin2"))
        for scope, store, phone in [("in", "sh1", "13671829354"), ("out", "sz1", "13681726354")]:
            m = members.create(
                s, SYSTEM, MemberCreate(phone=phone, name=f"会员{scope}", home_store=store)
            ).member
            shop.member[scope], shop.member_no[scope], shop.phone[scope] = (
                m.id,
                m.member_no,
                phone,
            )
            members.adjust_points(s, SYSTEM, m.id, 50_000, "matrix seed")
            rec = orders.record(
                s,
                SYSTEM,
                OrderCreate.model_validate(order_payload(f"MX-{scope}", m.id, store=store)),
            )
            shop.order[scope], shop.order_ext[scope] = rec.order.id, f"MX-{scope}"
            for role in ROLES:
                r = rewards.redeem(
                    s, SYSTEM, RedemptionCreate(member_id=m.id, reward="upsize", store=store)
                )
                shop.redemption[(role, scope)] = r.id
                for decision in ("approve", "reject"):
                    out = approvals.adjust(s, admin2, m.id, 6000, f"{role} {decision}")
                    assert out.request is not None
                    shop.request[(role, scope, decision)] = out.request.id
    with db.transaction() as s:  # referrals on hold, one per role and scope (issue 12)
        for n, (scope, store) in enumerate([("in", "sh1"), ("out", "sz1")]):
            for i, role in enumerate(ROLES):
                friend = members.create(
                    s, SYSTEM, MemberCreate(phone=f"1369{n}{i:06d}", home_store=store)
                ).member
                ref = Referral(
                    referrer_id=shop.member[scope],
                    referred_id=friend.id,
                    code="MATRIX",
                    channel="join",
                    org_path=friend.org_path,
                    status="on_hold",
                    hold_reasons=["device_id"],
                    created_at=friend.created_at,
                    updated_at=friend.created_at,
                )
                s.add(ref)
                s.flush()
                shop.referral[(role, scope)] = ref.id
    with db.transaction() as s:  # points held by a fraud rule, one per role and scope (issue 13)
        hold = {"code": "matrix", "on": ["order"], "when": {"gte": {"request.points": 1}}}
        rules = {"rules": [{**hold, "outcome": "hold", "reason": "矩阵测试"}]}
        documents.publish(s, SYSTEM, "fraud", rules, note="matrix")
        for scope, store in [("in", "sh1"), ("out", "sz1")]:
            for role in ROLES:
                payload = order_payload(f"MXF-{scope}-{role}", shop.member[scope], store=store)
                rec = orders.record(s, SYSTEM, OrderCreate.model_validate(payload))
                shop.fraud_review[(role, scope)] = s.scalars(
                    select(FraudReview.id).where(FraudReview.order_id == rec.order.id)
                ).one()
        documents.publish(s, SYSTEM, "fraud", {"rules": []}, note="matrix")
    with db.transaction() as s:  # a dead job to retry and a queued one to cancel
        queue.enqueue(s, "matrix.example", {}, dedupe_key="matrix-dead")
        queue.enqueue(s, "matrix.example", {}, dedupe_key="matrix-queued")
        for key, job in zip(
            ("dead", "queued"), s.scalars(select(Job).order_by(Job.id)), strict=True
        ):
            shop.job[key] = job.id
            job.state = key
        shop.run["in"], shop.run["out"] = analytics_run(s, "east"), analytics_run(s, "south")
    with db.transaction() as s:  # coupon templates: one to pause, one paused to activate
        admin = staff.actor_for(s, staff.get_by_login(s, "admin"))
        for code, active in (("matrix", True), ("matrix-paused", False)):
            coupons.create_template(
                s,
                admin,
                TemplateCreate(
                    code=code, name="矩阵券", kind="amount_off", amount_minor=500, active=active
                ),
            )
    return shop


def fingerprint(db: Database) -> dict[str, Any]:
    """Row counts of every table and the state the console's actions change."""
    with db.transaction() as s:
        return {
            "counts": counts(db),
            "members": [
                (m.id, m.name, m.city, m.phone, m.email, m.home_store_id, m.org_path)
                for m in s.scalars(select(Member).order_by(Member.id))
            ],
            "tags": sorted((t.member_id, t.tag) for t in s.scalars(select(MemberTag))),
            "points": [
                (a.owner_member_id, a.available, a.pending)
                for a in s.scalars(select(PointsAccount).order_by(PointsAccount.owner_member_id))
            ],
            "redemptions": [
                (r.id, r.status) for r in s.scalars(select(Redemption).order_by(Redemption.id))
            ],
            "requests": [
                (r.id, r.status, r.decided_by)
                for r in s.scalars(select(AdjustmentRequest).order_by(AdjustmentRequest.id))
            ],
            "versions": [
                v.version for v in s.scalars(select(ProgrammeVersion).order_by(ProgrammeVersion.id))
            ],
            "staff": [
                (u.id, u.locale, u.password_hash, u.failed_logins)
                for u in s.scalars(select(StaffUser).order_by(StaffUser.id))
            ],
            "sessions": [
                (x.id, x.revoked_at is not None)
                for x in s.scalars(select(StaffSession).order_by(StaffSession.id))
            ],
            "jobs": [(j.id, j.state) for j in s.scalars(select(Job).order_by(Job.id))],
            "coupon_templates": [
                (t.code, t.active, t.issued)
                for t in s.scalars(select(CouponTemplate).order_by(CouponTemplate.code))
            ],
        }


def business_state(fp: dict[str, Any]) -> dict[str, Any]:
    """What a read must never change (bookkeeping — dashboard rollup, sessions — aside)."""
    out = dict(fp)
    out["counts"] = {k: v for k, v in fp["counts"].items() if not k.startswith("dashboard_")}
    return out


# ── the matrix ─────────────────────────────────────────────────────────────────────────
Req = tuple[str, dict[str, str] | None]  # url, form (None: GET)


@dataclass(frozen=True)
class Case:
    request: Callable[[Shop, str, str], Req]  # (shop, role, scope) → url, form
    allowed: frozenset[str]  # roles whose action is permitted
    ok: int  # the answer when permitted and in scope
    scoped: bool = True  # False: the route has no object, the "out" variant is skipped
    out: int = 404  # the answer to a permitted role for the out-of-scope variant
    hidden: bool = False  # a list: out-of-scope rows must not be shown (checked on "in")
    public: bool = False  # needs no session
    writes: bool = False  # a permitted call changes state (else reads change nothing)


def _publish_form(shop: Shop, role: str, scope: str) -> Req:
    return "/admin/programme/edit", {"action": "publish", **PROGRAMME_FORM}


PROGRAMME_FORM: dict[str, str] = {}  # filled per test from the active programme


MATRIX: dict[tuple[str, str], Case] = {
    ("GET", "/"): Case(lambda f, r, s: ("/", None), ALL, 303, scoped=False, public=True),
    ("GET", "/admin"): Case(lambda f, r, s: ("/admin", None), ALL, 303, scoped=False),
    ("GET", "/admin/static/{name}"): Case(
        lambda f, r, s: ("/admin/static/admin.css", None), ALL, 200, scoped=False, public=True
    ),
    ("GET", "/admin/login"): Case(
        lambda f, r, s: ("/admin/login", None), ALL, 200, scoped=False, public=True
    ),
    ("POST", "/admin/login"): Case(
        lambda f, r, s: (
            "/admin/login",
            {"login": ROLE_USER[r], "password": PASSWORD, "csrf_token": "matrix-login"},
        ),
        ALL,
        303,
        scoped=False,
        public=True,
        writes=True,
    ),
    ("POST", "/admin/logout"): Case(
        lambda f, r, s: ("/admin/logout", {}), ALL, 303, scoped=False, writes=True
    ),
    ("POST", "/admin/lang"): Case(
        lambda f, r, s: ("/admin/lang", {"lang": "en", "next": "/admin/members"}),
        ALL,
        303,
        scoped=False,
        writes=True,
    ),
    ("GET", "/admin/password"): Case(
        lambda f, r, s: ("/admin/password", None), ALL, 200, scoped=False
    ),
    ("POST", "/admin/password"): Case(
        lambda f, r, s: (
            "/admin/password",
            {"current": PASSWORD, "new": "a-new-pass-2027", "confirm": "a-new-pass-2027"},
        ),
        ALL,
        200,
        scoped=False,
        writes=True,
    ),
    ("GET", "/admin/dashboard"): Case(
        lambda f, r, s: (f"/admin/dashboard?unit={'sh1' if s == 'in' else 'sz1'}", None),
        ALL - {"service_agent"},
        200,
    ),
    ("GET", "/admin/members"): Case(
        lambda f, r, s: (f"/admin/members?phone={f.phone[s]}", None), ALL, 200, out=200
    ),
    ("GET", "/admin/members/{member_id}"): Case(
        lambda f, r, s: (f"/admin/members/{f.member[s]}", None), ALL, 200
    ),
    ("POST", "/admin/members/{member_id}/adjust"): Case(
        lambda f, r, s: (
            f"/admin/members/{f.member[s]}/adjust",
            {"points": "100", "reason": "matrix"},
        ),
        frozenset({"hq_admin", "regional_manager", "service_agent"}),
        303,
        writes=True,
    ),
    ("POST", "/admin/members/{member_id}/tags"): Case(
        lambda f, r, s: (f"/admin/members/{f.member[s]}/tags", {"add": f"t-{r}"}),
        ALL - {"analyst"},
        303,
        writes=True,
    ),
    ("POST", "/admin/members/{member_id}/edit"): Case(
        lambda f, r, s: (f"/admin/members/{f.member[s]}/edit", {"city": f"city-{r}"}),
        ALL - {"analyst"},
        303,
        writes=True,
    ),
    ("GET", "/admin/approvals"): Case(
        lambda f, r, s: ("/admin/approvals", None),
        frozenset({"hq_admin", "regional_manager"}),
        200,
        scoped=False,
        hidden=True,
    ),
    ("POST", "/admin/approvals/{request_id}/{decision}"): Case(
        lambda f, r, s: (f"/admin/approvals/{f.request[(r, s, 'approve')]}/approve", {}),
        frozenset({"hq_admin", "regional_manager"}),
        303,
        writes=True,
    ),
    ("GET", "/admin/orders"): Case(
        lambda f, r, s: (f"/admin/orders?store={'sh1' if s == 'in' else 'sz1'}", None),
        ALL,
        200,
        hidden=True,
    ),
    ("GET", "/admin/orders/{order_id}"): Case(
        lambda f, r, s: (f"/admin/orders/{f.order[s]}", None), ALL, 200
    ),
    ("GET", "/admin/redemptions"): Case(
        lambda f, r, s: (f"/admin/redemptions?member={f.member[s]}", None),
        ALL,
        200,
        out=200,
        hidden=True,
    ),
    ("POST", "/admin/redemptions/{redemption_id}/cancel"): Case(
        lambda f, r, s: (
            f"/admin/redemptions/{f.redemption[(r, s)]}/cancel",
            {"reason": "matrix"},
        ),
        frozenset({"hq_admin", "regional_manager", "service_agent"}),
        303,
        writes=True,
    ),
    ("GET", "/admin/programme"): Case(
        lambda f, r, s: ("/admin/programme", None), ALL, 200, scoped=False
    ),
    ("GET", "/admin/programme/edit"): Case(
        lambda f, r, s: ("/admin/programme/edit", None), ALL, 200, scoped=False
    ),
    ("POST", "/admin/programme/edit"): Case(_publish_form, HQ, 303, scoped=False, writes=True),
    ("GET", "/admin/programme/versions"): Case(
        lambda f, r, s: ("/admin/programme/versions", None), ALL, 200, scoped=False
    ),
    ("GET", "/admin/programme/versions/{number}"): Case(
        lambda f, r, s: ("/admin/programme/versions/1", None), ALL, 200, scoped=False
    ),
    ("GET", "/admin/audit"): Case(lambda f, r, s: ("/admin/audit", None), HQ, 200, scoped=False),
    ("GET", "/admin/jobs"): Case(lambda f, r, s: ("/admin/jobs", None), HQ, 200, scoped=False),
    ("POST", "/admin/jobs/{job_id}/{action}"): Case(
        lambda f, r, s: (f"/admin/jobs/{f.job['dead']}/retry", {}),
        HQ,
        303,
        scoped=False,
        writes=True,
    ),
    # referrals (issue 12): the queue is read by every role (rows in scope only); deciding
    # needs points.approve
    ("GET", "/admin/referrals"): Case(
        lambda f, r, s: ("/admin/referrals", None), ALL, 200, scoped=False, hidden=True
    ),
    # households (issue 13): the list is read by every role (rows in scope only)
    ("GET", "/admin/households"): Case(
        lambda f, r, s: ("/admin/households", None), ALL, 200, scoped=False, hidden=True
    ),
    ("POST", "/admin/referrals/{referral_id}/{decision}"): Case(
        lambda f, r, s: (f"/admin/referrals/{f.referral[(r, s)]}/approve", {}),
        frozenset({"hq_admin", "regional_manager"}),
        303,
        writes=True,
    ),
    # fraud controls (issue 13): the review queue and its decisions need points.approve
    ("GET", "/admin/fraud"): Case(
        lambda f, r, s: ("/admin/fraud", None),
        frozenset({"hq_admin", "regional_manager"}),
        200,
        scoped=False,
        hidden=True,
    ),
    ("POST", "/admin/fraud/reviews/{review_id}/{decision}"): Case(
        lambda f, r, s: (f"/admin/fraud/reviews/{f.fraud_review[(r, s)]}/approve", {}),
        frozenset({"hq_admin", "regional_manager"}),
        303,
        writes=True,
    ),
    # a member's data and the liability (privacy2): privacy.manage exports (audited, so a
    # write) and erases after a confirmation page; the liability is HQ's (dashboard.read at
    # HQ scope: east.analyst and the other scoped roles are refused)
    ("GET", "/admin/members/{member_id}/export"): Case(
        lambda f, r, s: (f"/admin/members/{f.member[s]}/export", None), HQ, 200, writes=True
    ),
    ("GET", "/admin/members/{member_id}/erase"): Case(
        lambda f, r, s: (f"/admin/members/{f.member[s]}/erase", None), HQ, 200
    ),
    ("POST", "/admin/members/{member_id}/erase"): Case(
        lambda f, r, s: (f"/admin/members/{f.member[s]}/erase", {"member_no": f.member_no[s]}),
        HQ,
        303,
        writes=True,
    ),
    ("GET", "/admin/liability"): Case(
        lambda f, r, s: ("/admin/liability", None), HQ, 200, scoped=False
    ),
    ("GET", "/admin/liability.xlsx"): Case(
        lambda f, r, s: ("/admin/liability.xlsx?month=2026-06", None), HQ, 200, scoped=False
    ),
    # coupons (issue 12): every role reads the templates and batches (programme.read);
    # pausing and activating a template is HQ's (programme.publish at HQ scope); issuing
    # one to a member needs member.write and the member in scope
    ("GET", "/admin/coupons"): Case(
        lambda f, r, s: ("/admin/coupons", None), ALL, 200, scoped=False
    ),
    ("POST", "/admin/coupons/templates/{code}/{action}"): Case(
        lambda f, r, s: ("/admin/coupons/templates/matrix/pause", {}),
        HQ,
        303,
        scoped=False,
        writes=True,
    ),
    ("POST", "/admin/members/{member_id}/coupons"): Case(
        lambda f, r, s: (f"/admin/members/{f.member[s]}/coupons", {"template": "matrix"}),
        ALL - {"analyst"},
        303,
        writes=True,
    ),
    # the event stream page (loyalist.admin.stream, an included router): audit.read
    ("GET", "/admin/stream"): Case(lambda f, r, s: ("/admin/stream", None), HQ, 200, scoped=False),
    # bulk import (issue 13 item 5): jobs.manage; a form without a file is refused (422)
    # and a confirmation of a file never uploaded is not found (404), both writing nothing
    ("GET", "/admin/import"): Case(lambda f, r, s: ("/admin/import", None), HQ, 200, scoped=False),
    ("POST", "/admin/import"): Case(
        lambda f, r, s: ("/admin/import", {"kind": "members"}), HQ, 422, scoped=False
    ),
    ("POST", "/admin/import/start"): Case(
        lambda f, r, s: (
            "/admin/import/start",
            {"kind": "members", "checksum": "0" * 64, "suffix": ".csv", "filename": "x.csv"},
        ),
        HQ,
        404,
        scoped=False,
    ),
    # backtest (issue 15 item 8): analytics.read + dashboard.read with an HQ scope (the
    # matrix's analyst works in a region: refused); a request queues a job
    ("GET", "/admin/backtest"): Case(
        lambda f, r, s: ("/admin/backtest", None), HQ, 200, scoped=False
    ),
    ("POST", "/admin/backtest"): Case(
        lambda f, r, s: ("/admin/backtest", {"version": "1", "months": "6"}),
        HQ,
        303,
        scoped=False,
        writes=True,
    ),
}
# Actions the matrix drives through a second form of the same route.
EXTRA: dict[str, tuple[tuple[str, str], Case]] = {
    "approvals reject": (
        ("POST", "/admin/approvals/{request_id}/{decision}"),
        Case(
            lambda f, r, s: (f"/admin/approvals/{f.request[(r, s, 'reject')]}/reject", {}),
            frozenset({"hq_admin", "regional_manager"}),
            303,
            writes=True,
        ),
    ),
    "jobs cancel": (
        ("POST", "/admin/jobs/{job_id}/{action}"),
        Case(
            lambda f, r, s: (f"/admin/jobs/{f.job['queued']}/cancel", {}),
            HQ,
            303,
            scoped=False,
            writes=True,
        ),
    ),
    "programme preview": (
        ("POST", "/admin/programme/edit"),
        Case(
            lambda f, r, s: (
                "/admin/programme/edit",
                {"action": "preview", **PROGRAMME_FORM, "sample_amount": "88"},
            ),
            ALL,
            200,
            scoped=False,
        ),
    ),
    "dashboard of the role's own unit": (
        ("GET", "/admin/dashboard"),
        Case(
            lambda f, r, s: ("/admin/dashboard", None),
            ALL - {"service_agent"},
            200,
            scoped=False,
        ),
    ),
    "coupon template activate": (
        ("POST", "/admin/coupons/templates/{code}/{action}"),
        Case(
            lambda f, r, s: ("/admin/coupons/templates/matrix-paused/activate", {}),
            HQ,
            303,
            scoped=False,
            writes=True,
        ),
    ),
    "members by an out-of-scope store": (
        ("GET", "/admin/members"),
        Case(
            lambda f, r, s: (f"/admin/members?store={'sh1' if s == 'in' else 'sz1'}", None),
            ALL,
            200,
            out=200,
            hidden=True,
        ),
    ),
}


def _routes(routes: list[Any], prefix: str = "") -> set[tuple[str, str]]:
    """(method, path) of every route, descending into included routers (FastAPI keeps an
    included router as one entry holding the original router and the include's prefix)."""
    out: set[tuple[str, str]] = set()
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out |= _routes(inner.routes, prefix + route.include_context.prefix)
            continue
        assert isinstance(route, APIRoute), route  # nothing is skipped unseen
        for method in route.methods - {"HEAD"}:
            out.add((method, prefix + route.path))
    return out


def test_every_console_route_has_a_matrix_entry() -> None:
    listed = set(MATRIX) | {key for key, _ in ANALYTICS_CASES.values()}
    listed |= {key for key, _ in MERGE_CASES.values()}  # identity merge (issue 13 item 2)
    assert len(listed) == len(MATRIX) + len(ANALYTICS_CASES) + len(MERGE_CASES)
    assert listed == _routes(router.routes)
    assert {("GET", "/admin/stream"), ("GET", "/admin/analytics")} <= listed


# ── running it ─────────────────────────────────────────────────────────────────────────
def _fill_programme_form(db: Database) -> None:
    with db.transaction() as s:
        version, p = programmes.active(s)
        doc = programmes.as_document(p)
    doc["rewards"][0]["name"] += "（新）"

    def dump(v: Any) -> str:
        return yaml.safe_dump(v, allow_unicode=True, sort_keys=False)

    PROGRAMME_FORM.clear()
    PROGRAMME_FORM.update(
        {
            "base_version": str(version),
            "tiers": dump(doc["tiers"]),
            "rules": dump(doc["earning"]["rules"]),
            "campaigns": dump(doc["earning"]["campaigns"]),
            "expiry": dump(doc["points"]),
            "rewards": dump(doc["rewards"]),
        }
    )


def _call(c: TestClient, csrf: str | None, req: Req) -> Any:
    url, form = req
    if form is None:
        return c.get(url, follow_redirects=False)
    data = dict(form)
    if csrf is not None and "csrf_token" not in data:
        data["csrf_token"] = csrf
    return c.post(url, data=data, follow_redirects=False)


def _expected(case: Case, role: str, scope: str) -> int:
    if role not in case.allowed:
        return 403
    if scope == "out" and role != "hq_admin":
        return case.out
    return case.ok


def run_case(world: Any, shop: Shop, key: tuple[str, str], case: Case) -> None:
    db = world.db
    for role in ROLES:
        for scope in SCOPES if case.scoped else ("in",):
            want = _expected(case, role, scope)
            with console_client(db) as c:
                csrf = None
                if case.public:
                    c.cookies.set(LOGIN_CSRF_COOKIE, "matrix-login")
                else:
                    csrf = login(c, db, ROLE_USER[role])
                before = fingerprint(db)
                r = _call(c, csrf, case.request(shop, role, scope))
                after = fingerprint(db)
            where = (key, role, scope)
            assert r.status_code == want, (where, r.status_code, r.text[:400])
            if want in (403, 404):
                assert after == before, (where, "a refusal wrote something")
            elif not case.writes:
                assert business_state(after) == business_state(before), (where, "a read wrote")
            else:
                assert after != before, (where, "a permitted action changed nothing")
            if case.hidden and want == 200 and role != "hq_admin":
                for secret in (shop.member_no["out"], shop.order_ext["out"], "会员out"):
                    assert secret not in r.text, (where, secret)


@pytest.fixture
def shop(world: Any) -> Shop:
    shop = seed(world.db)
    _fill_programme_form(world.db)
    return shop


@pytest.mark.parametrize("key", sorted(MATRIX), ids=lambda k: f"{k[0]} {k[1]}")
def test_route_by_role_and_scope(world: Any, shop: Shop, key: tuple[str, str]) -> None:
    run_case(world, shop, key, MATRIX[key])


@pytest.mark.parametrize("name", sorted(EXTRA))
def test_second_forms_of_a_route(world: Any, shop: Shop, name: str) -> None:
    key, case = EXTRA[name]
    assert key in MATRIX
    run_case(world, shop, key, case)


def test_phone_numbers_are_masked_for_roles_that_may_not_see_them(world: Any, shop: Shop) -> None:
    shown = shop.phone["in"][-11:]  # national format on the page: 138 1234 5678
    digits = f"{shown[:3]} {shown[3:7]} {shown[7:]}"
    for role in ROLES:
        with console_client(world.db) as c:
            login(c, world.db, ROLE_USER[role])
            page = c.get(f"/admin/members/{shop.member['in']}").text
            listing = c.get("/admin/members?q=会员in").text
        assert shop.member_no["in"] in listing, role
        sees = role in {"hq_admin", "regional_manager", "store_staff"}
        assert (digits in page, digits in listing) == (sees, sees), role
        if not sees:
            masked = f"{shown[:3]} **** {shown[7:]}"
            assert masked in page and masked in listing, role


# The analytics section (issue 10, item 9): its routes come from an included router (as the
# event stream's), so they are listed here and run by the same harness. Runs of a region
# are its own and HQ's.
ANALYTICS_CASES: dict[str, tuple[tuple[str, str], Case]] = {
    "analytics page": (
        ("GET", "/admin/analytics"),
        Case(lambda f, r, s: ("/admin/analytics", None), ANALYTICS, 200, scoped=False),
    ),
    "analytics compute": (
        ("POST", "/admin/analytics/runs"),
        Case(
            lambda f, r, s: (
                "/admin/analytics/runs",
                {"as_of": "2026-06-01", "compare_from": "2026-05-01"},
            ),
            ANALYTICS,
            303,
            scoped=False,
            writes=True,
        ),
    ),
    "analytics export": (
        ("GET", "/admin/analytics/runs/{run_id}/at-risk.{ext}"),
        Case(
            lambda f, r, s: (f"/admin/analytics/runs/{f.run[s]}/at-risk.csv", None), ANALYTICS, 200
        ),
    ),
    "analytics tag": (
        ("POST", "/admin/analytics/runs/{run_id}/tag"),
        Case(
            lambda f, r, s: (f"/admin/analytics/runs/{f.run[s]}/tag", {"tag": "召回"}),
            frozenset({"hq_admin", "regional_manager"}),
            303,
            writes=True,
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(ANALYTICS_CASES))
def test_analytics_routes_by_role_and_scope(world: Any, shop: Shop, name: str) -> None:
    key, case = ANALYTICS_CASES[name]
    run_case(world, shop, key, case)


# Identity merge (issue 13 item 2): every role reads the duplicate pairs (rows whose two
# members are in scope); previewing, merging, dismissing a pair, the merges and their undo
# need member.merge (HQ admins and regional managers). Their objects are seeded only for
# these cases (per role and scope: a pair found as duplicates, and a merge done already).
MERGE_CASES: dict[str, tuple[tuple[str, str], Case]] = {
    "duplicates": (
        ("GET", "/admin/duplicates"),
        Case(lambda f, r, s: ("/admin/duplicates", None), ALL, 200, scoped=False, hidden=True),
    ),
    "duplicate dismiss": (
        ("POST", "/admin/duplicates/{candidate_id}/dismiss"),
        Case(
            lambda f, r, s: (f"/admin/duplicates/{f.candidate[(r, s)]}/dismiss", {}),
            frozenset({"hq_admin", "regional_manager"}),
            303,
            writes=True,
        ),
    ),
    "merge preview": (
        ("GET", "/admin/members/{member_id}/merge"),
        Case(
            lambda f, r, s: (
                f"/admin/members/{f.pair[(r, s)][0]}/merge?merged_id={f.pair[(r, s)][1]}",
                None,
            ),
            frozenset({"hq_admin", "regional_manager"}),
            200,
        ),
    ),
    "merge": (
        ("POST", "/admin/members/{member_id}/merge"),
        Case(
            lambda f, r, s: (
                f"/admin/members/{f.pair[(r, s)][0]}/merge",
                {"merged_id": str(f.pair[(r, s)][1])},
            ),
            frozenset({"hq_admin", "regional_manager"}),
            303,
            writes=True,
        ),
    ),
    "merges": (
        ("GET", "/admin/merges"),
        Case(
            lambda f, r, s: ("/admin/merges", None),
            frozenset({"hq_admin", "regional_manager"}),
            200,
            scoped=False,
            hidden=True,
        ),
    ),
    "merge page": (
        ("GET", "/admin/merges/{merge_id}"),
        Case(
            lambda f, r, s: (f"/admin/merges/{f.merge[(r, s)]}", None),
            frozenset({"hq_admin", "regional_manager"}),
            200,
        ),
    ),
    "merge undo": (
        ("POST", "/admin/merges/{merge_id}/undo"),
        Case(
            lambda f, r, s: (f"/admin/merges/{f.merge[(r, s)]}/undo", {}),
            frozenset({"hq_admin", "regional_manager"}),
            303,
            writes=True,
        ),
    ),
}


@dataclass
class MergeShop(Shop):
    pair: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    candidate: dict[tuple[str, str], int] = field(default_factory=dict)
    merge: dict[tuple[str, str], int] = field(default_factory=dict)


def seed_merges(db: Database, shop: Shop) -> MergeShop:
    from loyalist.kit.clock import utcnow
    from loyalist.merge import service as merges
    from loyalist.models import DuplicateCandidate

    out = MergeShop(**vars(shop))
    with db.transaction() as s:
        for n, (scope, store) in enumerate([("in", "sh1"), ("out", "sz1")]):
            for i, role in enumerate(ROLES):
                x, y, u, v = (
                    members.create(
                        s,
                        SYSTEM,
                        MemberCreate(
                            phone=f"1358{n}{i}{k:05d}", name=f"会员{scope}{k}", home_store=store
                        ),
                    ).member.id
                    for k in range(4)
                )
                cand = DuplicateCandidate(
                    member_a_id=x,
                    member_b_id=y,
                    reasons=["name_birthday"],
                    status="open",
                    created_at=utcnow(),
                    decided_at=None,
                    decided_by=None,
                )
                s.add(cand)
                s.flush()
                out.pair[(role, scope)], out.candidate[(role, scope)] = (x, y), cand.id
                out.merge[(role, scope)] = merges.merge(s, SYSTEM, u, v).id
    return out


@pytest.mark.parametrize("name", sorted(MERGE_CASES))
def test_merge_routes_by_role_and_scope(world: Any, shop: Shop, name: str) -> None:
    key, case = MERGE_CASES[name]
    run_case(world, seed_merges(world.db, shop), key, case)
