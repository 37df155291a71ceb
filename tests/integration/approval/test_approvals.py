"""Four-eyes adjustments: above the threshold a points adjustment waits for a second person,
who may not be the requester; the decision is audited; refusals write nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from tests.console import console_client, login, make_users, post
from tests.itest import counts

from loyalist.approval import service as approvals
from loyalist.config import Settings
from loyalist.errors import Forbidden, LoyalistError
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.ledger import service as ledger
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate
from loyalist.models import AdjustmentRequest, AuditLog, LedgerEntry
from loyalist.staff import service as staff

THRESHOLD = approvals.DEFAULT_THRESHOLD


@pytest.fixture
def member(world: Any) -> int:
    make_users(world.db)
    with world.db.transaction() as s:
        mid: int = members.create(
            s, SYSTEM, MemberCreate(phone="13700000001", name="周", home_store="sh1")
        ).member.id
        members.adjust_points(s, SYSTEM, mid, 10_000, "opening balance")
        ACTORS.clear()
        ACTORS.update({u.login: staff.actor_for(s, u) for u in staff.list_users(s)})
    return mid


ACTORS: dict[str, Actor] = {}


def _actor(world: Any, login_name: str) -> Actor:
    return ACTORS[login_name]


def _available(world: Any, mid: int) -> int:
    with world.db.transaction() as s:
        return ledger.get_account(s, mid).available


def _request(world: Any, login_name: str, mid: int, points: int, **kw: Any) -> int:
    actor = _actor(world, login_name)
    with world.db.transaction() as s:
        out = approvals.adjust(s, actor, mid, points, "big goodwill", **kw)
        assert out.entry is None and out.request is not None
        return out.request.id


def test_up_to_the_threshold_applies_at_once(world: Any, member: int) -> None:
    actor = _actor(world, "east.manager")
    with world.db.transaction() as s:
        out = approvals.adjust(s, actor, member, THRESHOLD, "goodwill")
        assert out.request is None and out.entry is not None
        assert (out.entry.kind, out.entry.delta_available, out.entry.actor) == (
            "adjust",
            THRESHOLD,
            "user:east.manager",
        )
        out = approvals.adjust(s, actor, member, -THRESHOLD, "goodwill reversed")
        assert out.request is None and out.entry is not None
    assert _available(world, member) == 10_000
    assert counts(world.db, ["adjustment_request"]) == {"adjustment_request": 0}


@pytest.mark.parametrize("points", [THRESHOLD + 1, -(THRESHOLD + 1)])
def test_above_the_threshold_files_a_request_and_moves_no_points(
    world: Any, member: int, points: int
) -> None:
    before = counts(world.db, ["ledger_entry", "points_lot", "lot_allocation"])
    rid = _request(world, "east.manager", member, points)
    assert counts(world.db, ["ledger_entry", "points_lot", "lot_allocation"]) == before
    assert _available(world, member) == 10_000
    with world.db.transaction() as s:
        req = s.get(AdjustmentRequest, rid)
        assert req is not None
        assert (req.status, req.points, req.requested_by, req.decided_by) == (
            "pending",
            points,
            "user:east.manager",
            None,
        )
        rows = list(s.scalars(select(AuditLog).where(AuditLog.action == "points.adjust.request")))
        assert [(r.actor, r.object_id, r.after) for r in rows] == [
            (
                "user:east.manager",
                str(member),
                {
                    "request_id": rid,
                    "points": points,
                    "reason": "big goodwill",
                    "cause": "threshold",
                },
            )
        ]


def test_the_threshold_is_a_parameter_and_a_setting(world: Any, member: int) -> None:
    assert Settings().adjust_approval_threshold == THRESHOLD
    assert Settings(adjust_approval_threshold=100).adjust_approval_threshold == 100
    actor = _actor(world, "admin")
    with world.db.transaction() as s:
        assert approvals.adjust(s, actor, member, 100, "small", threshold=100).entry is not None
        assert approvals.adjust(s, actor, member, 101, "large", threshold=100).request is not None


def test_the_requester_cannot_approve_their_own_request(world: Any, member: int) -> None:
    rid = _request(world, "admin", member, 8000)
    before = counts(world.db)
    admin = _actor(world, "admin")
    for decide in (approvals.approve, approvals.reject):
        with pytest.raises(Forbidden), world.db.transaction() as s:
            decide(s, admin, rid)
    assert counts(world.db) == before
    with world.db.transaction() as s:
        req = s.get(AdjustmentRequest, rid)
        assert req is not None and req.status == "pending"


def test_a_second_person_approves_and_the_points_move(world: Any, member: int) -> None:
    rid = _request(world, "east.manager", member, 8000)
    with world.db.transaction() as s:
        req = approvals.approve(s, _actor(world, "admin"), rid)
        assert (req.status, req.decided_by) == ("approved", "user:admin")
        entry = s.get(LedgerEntry, req.ledger_entry_id)
        assert entry is not None
        assert (entry.delta_available, entry.actor, entry.reason, entry.details) == (
            8000,
            "user:admin",
            "big goodwill (requested by user:east.manager)",
            {"approved_by": "user:admin"},
        )
        audit_rows = [
            (r.action, r.actor)
            for r in s.scalars(select(AuditLog).order_by(AuditLog.id))
            if r.action.startswith("points.adjust")
        ]
    assert audit_rows[-3:] == [
        ("points.adjust.request", "user:east.manager"),
        ("points.adjust", "user:admin"),
        ("points.adjust.approve", "user:admin"),
    ]
    assert _available(world, member) == 18_000
    # Decided once: a second decision is a conflict and changes nothing.
    before = counts(world.db)
    for login_name, decide in [("admin2", approvals.approve), ("admin2", approvals.reject)]:
        with pytest.raises(LoyalistError) as exc, world.db.transaction() as s:
            decide(s, _actor(world, login_name), rid)
        assert exc.value.status == 409
    assert counts(world.db) == before
    assert _available(world, member) == 18_000


def test_a_rejection_moves_no_points(world: Any, member: int) -> None:
    rid = _request(world, "east.manager", member, -9000)
    before = counts(world.db, ["ledger_entry"])
    with world.db.transaction() as s:
        req = approvals.reject(s, _actor(world, "admin"), rid)
        assert (req.status, req.decided_by, req.ledger_entry_id) == ("rejected", "user:admin", None)
    assert counts(world.db, ["ledger_entry"]) == before
    assert _available(world, member) == 10_000


@pytest.mark.parametrize(
    ("login_name", "status"),
    [
        ("south.manager", 404),  # another region: the request does not exist for them
        ("sz1.staff", 403),  # may not approve (and may not see it either)
        ("agent", 403),  # adjusts, never approves
        ("analyst", 403),
    ],
)
def test_approvers_out_of_role_or_scope_are_refused(
    world: Any, member: int, login_name: str, status: int
) -> None:
    rid = _request(world, "east.manager", member, 7000)
    before = counts(world.db)
    with pytest.raises(LoyalistError) as exc, world.db.transaction() as s:
        approvals.approve(s, _actor(world, login_name), rid)
    assert exc.value.status == status
    assert counts(world.db) == before


def test_pending_requests_are_listed_within_scope(world: Any, member: int) -> None:
    rid = _request(world, "east.manager", member, 7000)
    with world.db.transaction() as s:
        assert [r.id for r in approvals.pending(s, _actor(world, "admin"))] == [rid]
        assert [r.id for r in approvals.pending(s, _actor(world, "east.manager"), member)] == [rid]
        assert approvals.pending(s, _actor(world, "south.manager")) == []


@pytest.mark.parametrize(("points", "reason", "field"), [(0, "x", "points"), (100, "  ", "reason")])
def test_invalid_adjustments_are_422_and_write_nothing(
    world: Any, member: int, points: int, reason: str, field: str
) -> None:
    before = counts(world.db)
    with pytest.raises(LoyalistError) as exc, world.db.transaction() as s:
        approvals.adjust(s, _actor(world, "admin"), member, points, reason)
    assert exc.value.status == 422
    assert [e.field for e in exc.value.errors] == [field]
    assert counts(world.db) == before


@pytest.mark.parametrize("login_name", ["sh1.staff", "analyst"])
def test_roles_without_points_adjust_are_refused(world: Any, member: int, login_name: str) -> None:
    before = counts(world.db)
    with pytest.raises(Forbidden), world.db.transaction() as s:
        approvals.adjust(s, _actor(world, login_name), member, 100, "x")
    assert counts(world.db) == before


def test_four_eyes_through_the_console(world: Any, member: int) -> None:
    with console_client(world.db) as c:
        csrf = login(c, world.db, "east.manager")
        r = post(c, f"/admin/members/{member}/adjust", csrf, {"points": "6000", "reason": "vip"})
        assert (r.status_code, r.headers["location"]) == (
            303,
            f"/admin/members/{member}?notice=pending_approval",
        )
        with world.db.transaction() as s:
            rid = s.scalar(select(func.max(AdjustmentRequest.id)))
        before = counts(world.db)
        r = post(c, f"/admin/approvals/{rid}/approve", csrf)
        assert r.status_code == 403
        assert counts(world.db) == before
    with console_client(world.db) as c:
        csrf = login(c, world.db, "admin")
        r = post(c, f"/admin/approvals/{rid}/approve", csrf)
        assert (r.status_code, r.headers["location"]) == (
            303,
            f"/admin/members/{member}?notice=approved",
        )
    assert _available(world, member) == 16_000
