"""Actions: each effect through its service, applied at most once per (cause, action, member)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.itest import counts, new_member

from loyalist import bootstrap
from loyalist.actions import registry
from loyalist.actions.errors import ActionConflict, ActionInvalid
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.db import Database
from loyalist.ledger import service as ledger
from loyalist.member.errors import MemberNotFound
from loyalist.models import ActionReceipt, LedgerEntry, MemberTask, Message, PointsLot
from loyalist.task import service as tasks

TABLES = ["action_receipt", "ledger_entry", "points_lot", "member_tag", "message", "member_task"]


def run(
    db: Database,
    action: str,
    params: dict[str, Any],
    cause: str,
    member: int | None,
    actor: Actor = SYSTEM,
) -> registry.ActionResult:
    return db.run(
        lambda s: registry.run(s, action, params, cause=cause, member_id=member, actor=actor)
    )


def test_the_registry_lists_the_built_in_actions() -> None:
    bootstrap.configure()  # features register theirs (issue_coupon: the coupon package)
    assert registry.names() == [
        "add_tag",
        "award_points",
        "issue_coupon",
        "open_task",
        "remove_tag",
        "send_message",
    ]


def test_award_points_credits_one_lot_with_the_programmes_expiry_once(
    world: Any, client: Any
) -> None:
    mid = new_member(client, "13800000001")
    first = run(world.db, "award_points", {"points": 500, "reason": "survey done"}, "survey:9", mid)
    assert first.replayed is False
    # The demo programme: points expire at the end of the next calendar year (Shanghai).
    assert first.result["points"] == 500
    assert first.result["expires_at"] == "2027-12-31T16:00:00+00:00"
    again = run(world.db, "award_points", {"points": 500, "reason": "survey done"}, "survey:9", mid)
    assert again.replayed is True
    assert again.result == first.result and again.receipt_id == first.receipt_id
    with world.db.transaction() as s:
        entries = list(s.scalars(select(LedgerEntry).where(LedgerEntry.member_id == mid)))
        assert [(e.kind, e.delta_available, e.source_type, e.reason) for e in entries] == [
            ("earn", 500, "action", "survey done")
        ]
        lot = s.scalar(select(PointsLot).where(PointsLot.member_id == mid))
        assert lot is not None and lot.remaining == 500
        assert lot.expires_at == datetime(2027, 12, 31, 16, 0, tzinfo=UTC)
        assert ledger.get_account(s, mid).available == 500
        assert ledger.verify(s)[1] == []
    # Another cause is another award; the same cause for another member is too.
    other = new_member(client, "13800000002")
    run(world.db, "award_points", {"points": 500, "reason": "survey done"}, "survey:10", mid)
    run(world.db, "award_points", {"points": 500, "reason": "survey done"}, "survey:9", other)
    with world.db.transaction() as s:
        assert ledger.get_account(s, mid).available == 1000
        assert ledger.get_account(s, other).available == 500


def test_same_cause_with_other_params_is_a_conflict_and_changes_nothing(
    world: Any, client: Any
) -> None:
    mid = new_member(client, "13800000001")
    run(world.db, "award_points", {"points": 100, "reason": "x"}, "c1", mid)
    before = counts(world.db, TABLES)
    with pytest.raises(ActionConflict) as info:
        run(world.db, "award_points", {"points": 999, "reason": "x"}, "c1", mid)
    assert [e.field for e in info.value.errors] == ["cause"]
    assert counts(world.db, TABLES) == before


@pytest.mark.parametrize(
    ("action", "params", "member", "fields"),
    [
        ("award_points", {"points": 0, "reason": ""}, 1, ["params.points", "params.reason"]),
        (
            "award_points",
            {"points": "many", "reason": "r", "extra": 1},
            1,
            ["params.points", "params.extra"],
        ),
        ("add_tag", {"tag": " spaced"}, 1, ["params.tag"]),
        ("add_tag", {}, 1, ["params.tag"]),
        ("send_message", {"template": "nope"}, 1, ["params.template"]),
        ("send_message", {"template": "notice", "channel": "fax"}, 1, ["params.channel"]),
        (
            "send_message",
            {"template": "points_awarded", "params": {"points": 5}},
            1,
            ["params.params.reason"],
        ),
        ("open_task", {"title": "", "due_in_days": -1}, 1, ["params.title", "params.due_in_days"]),
        ("open_task", {"title": "call"}, None, ["member_id"]),
        ("issue_coupon", {"coupon": "x"}, 1, ["params.template", "params.coupon"]),
    ],
)
def test_invalid_params_are_field_errors_and_write_nothing(
    world: Any,
    client: Any,
    action: str,
    params: dict[str, Any],
    member: int | None,
    fields: list[str],
) -> None:
    bootstrap.configure()
    new_member(client, "13800000001")
    before = counts(world.db, TABLES)
    with pytest.raises(ActionInvalid) as info:
        run(world.db, action, params, "cause-1", member)
    assert [e.field for e in info.value.errors] == fields
    assert info.value.status == 422
    assert counts(world.db, TABLES) == before


def test_a_failing_effect_leaves_no_receipt(world: Any) -> None:
    before = counts(world.db, TABLES)
    with pytest.raises(MemberNotFound):
        run(world.db, "add_tag", {"tag": "vip"}, "c", 999)
    assert counts(world.db, TABLES) == before
    # Out of scope is the same as missing (a store's key cannot act on another store's member).
    store_actor = Actor(name="apikey:sz1", scope_path="/999/")
    with pytest.raises(MemberNotFound):
        run(world.db, "add_tag", {"tag": "vip"}, "c", 1, store_actor)


def test_tags_are_added_and_removed_once(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001", tags=["new"])
    assert run(world.db, "add_tag", {"tag": "vip"}, "c1", mid).result == {"tags": ["new", "vip"]}
    assert run(world.db, "add_tag", {"tag": "vip"}, "c1", mid).replayed is True
    r = run(world.db, "remove_tag", {"tag": "new"}, "c1", mid)
    assert (r.replayed, r.result) == (False, {"tags": ["vip"]})
    assert client.get(f"/v1/members/{mid}").json()["tags"] == ["vip"]


def test_send_message_records_it_once_and_respects_consent(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001", consents={"sms": False})
    params = {"template": "points_awarded", "params": {"points": 500, "reason": "问卷"}}
    first = run(world.db, "send_message", params, "c1", mid)
    assert first.result == {
        "status": "queued",
        "message_id": first.result["message_id"],
        "channel": "sms",
        "reason": None,
    }
    assert run(world.db, "send_message", params, "c1", mid).replayed is True
    with world.db.transaction() as s:
        msgs = list(s.scalars(select(Message)))
        assert [(m.id, m.channel, m.recipient, m.subject, m.body, m.status) for m in msgs] == [
            (
                first.result["message_id"],
                "sms",
                "+8613800000001",
                "积分到账通知",
                "您的账户已到账 500 积分：问卷",
                "queued",
            )
        ]
    # A suppression is a result (and a row with its reason), never an error.
    marketing = {"template": "notice", "params": {"text": "新品上市"}, "marketing": True}
    no_consent = run(world.db, "send_message", marketing, "c2", mid).result
    assert (no_consent["status"], no_consent["reason"]) == ("suppressed", "no_consent")
    email = {"template": "notice", "params": {"text": "hi"}, "channel": "email"}
    no_address = run(world.db, "send_message", email, "c3", mid).result
    assert (no_address["status"], no_address["reason"]) == ("suppressed", "no_address")
    with world.db.transaction() as s:
        rows = s.execute(select(Message.id, Message.status, Message.reason).order_by(Message.id))
        assert [tuple(r) for r in rows] == [
            (first.result["message_id"], "queued", None),
            (no_consent["message_id"], "suppressed", "no_consent"),
            (no_address["message_id"], "suppressed", "no_address"),
        ]


def test_open_task_is_a_real_task_listed_and_closed(world: Any, client: Any, clock: Any) -> None:
    mid = new_member(client, "13800000001")
    r = run(
        world.db, "open_task", {"title": "回访", "note": "NPS 2", "due_in_days": 1}, "survey:1", mid
    )
    assert r.result["due_at"] == "2026-06-11T04:00:00+00:00"
    assert run(
        world.db, "open_task", {"title": "回访", "note": "NPS 2", "due_in_days": 1}, "survey:1", mid
    ).replayed
    with world.db.transaction() as s:
        (task,) = tasks.list_tasks(s, SYSTEM, member_id=mid)
        assert (task.id, task.title, task.note, task.status, task.created_by) == (
            r.result["task_id"],
            "回访",
            "NPS 2",
            "open",
            "survey:1",
        )
        assert tasks.list_tasks(s, Actor(name="x", scope_path="/999/")) == []
    with world.db.transaction() as s:
        tasks.close(s, SYSTEM, task.id)
    with world.db.transaction() as s:
        assert tasks.list_tasks(s, SYSTEM, status="open") == []
        closed = s.get(MemberTask, task.id)
        assert closed is not None and closed.status == "done" and closed.closed_by == "system"


def test_concurrent_runs_of_one_cause_award_once(world: Any, client: Any) -> None:
    mid = new_member(client, "13800000001")
    n = 6
    barrier = threading.Barrier(n)
    results: list[registry.ActionResult] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(
                run(world.db, "award_points", {"points": 300, "reason": "race"}, "race:1", mid)
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.replayed for r in results) == [False] + [True] * (n - 1)
    assert len({r.receipt_id for r in results}) == 1
    with world.db.transaction() as s:
        assert ledger.get_account(s, mid).available == 300
        assert s.scalar(select(func.count()).select_from(ActionReceipt)) == 1
        assert ledger.verify(s)[1] == []
