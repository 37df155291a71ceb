"""``registry.run_many``: an action for many (cause, member) pairs at once answers, for each
pair, exactly what ``registry.run`` would have (result, replay, error) and leaves the same
rows; a set-based handler (``add_tag``) writes them in a few statements."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from tests.itest import counts, new_member

from loyalist.actions import registry
from loyalist.actions.errors import ActionConflict, ActionInvalid
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.member.errors import MemberNotFound
from loyalist.models import ActionReceipt, AuditLog, MemberTag

TABLES = ["action_receipt", "member_tag", "audit_log"]


def _tags(db: Database) -> list[tuple[int, str]]:
    with db.transaction() as s:
        return sorted((t.member_id, t.tag) for t in s.scalars(select(MemberTag)))


def test_run_many_answers_each_pair_as_run_would(world: Any, client: Any) -> None:
    db: Database = world.db
    a, b, c = (new_member(client, f"1380000000{i}") for i in range(3))
    tag = {"tag": "vip"}
    # b already has the tag; c's cause already ran (a replay), with other parameters for "x"
    db.run(lambda s: registry.run(s, "add_tag", tag, cause="pre", member_id=b, actor=SYSTEM))
    db.run(lambda s: registry.run(s, "add_tag", tag, cause="k:c", member_id=c, actor=SYSTEM))
    db.run(
        lambda s: registry.run(s, "add_tag", {"tag": "other"}, cause="x", member_id=a, actor=SYSTEM)
    )
    before = counts(db, TABLES)
    items = [("k:a", a), ("k:b", b), ("k:c", c), ("k:gone", 999_999), ("x", a), ("k:a2", a)]
    got = db.run(lambda s: registry.run_many(s, "add_tag", tag, items, actor=SYSTEM))
    assert len(got) == 6
    ra, rb, rc, gone, conflict, ra2 = got
    assert isinstance(ra, registry.ActionResult) and not ra.replayed
    assert ra.result == {"tags": ["other", "vip"]}
    assert isinstance(rb, registry.ActionResult) and not rb.replayed
    assert rb.result == {"tags": ["vip"]}
    assert isinstance(rc, registry.ActionResult) and rc.replayed  # the receipt answers
    assert rc.result == {"tags": ["vip"]}
    assert isinstance(gone, MemberNotFound)
    assert isinstance(conflict, ActionConflict)
    assert isinstance(ra2, registry.ActionResult) and not ra2.replayed
    assert ra2.result == {"tags": ["other", "vip"]}  # a's second cause: the tag is there
    after = counts(db, TABLES)
    # receipts: k:a, k:b, k:a2 (k:c replayed, k:gone and x refused); one new tag (a's vip);
    # one audit row (a's tags changed; b had it, a2 found it)
    assert after == {
        "action_receipt": before["action_receipt"] + 3,
        "member_tag": before["member_tag"] + 1,
        "audit_log": before["audit_log"] + 1,
    }
    assert _tags(db) == sorted([(a, "other"), (a, "vip"), (b, "vip"), (c, "vip")])
    with db.transaction() as s:
        results = {
            r.cause: r.result
            for r in s.scalars(select(ActionReceipt).where(ActionReceipt.cause.like("k:%")))
        }
        audit = s.scalars(
            select(AuditLog).where(AuditLog.action == "member.tags").order_by(AuditLog.id.desc())
        ).first()
    assert results == {
        "k:a": {"tags": ["other", "vip"]},
        "k:b": {"tags": ["vip"]},
        "k:c": {"tags": ["vip"]},
        "k:a2": {"tags": ["other", "vip"]},
    }
    assert audit is not None and audit.object_id == str(a)
    assert (audit.before, audit.after) == ({"tags": ["other"]}, {"tags": ["other", "vip"]})


def test_run_many_with_bad_parameters_refuses_every_pair_and_writes_nothing(
    world: Any, client: Any
) -> None:
    db: Database = world.db
    a = new_member(client, "13800000001")
    before = counts(db, TABLES)
    got = db.run(
        lambda s: registry.run_many(s, "add_tag", {"tag": ""}, [("1", a), ("2", a)], actor=SYSTEM)
    )
    assert [type(x) for x in got] == [ActionInvalid, ActionInvalid]
    assert counts(db, TABLES) == before


def test_add_tag_for_many_members_takes_a_fixed_number_of_statements(
    world: Any, client: Any
) -> None:
    db: Database = world.db
    people = [new_member(client, f"138000001{i:02d}") for i in range(30)]
    used: list[int] = []
    for chunk in (people[:5], people[5:]):
        sent: list[str] = []

        def count(
            _conn: Any, _cur: Any, statement: str, *_args: Any, sent: list[str] = sent
        ) -> None:
            if not statement.lstrip().upper().startswith("INSERT"):
                sent.append(statement)  # SQLite sends the ORM's inserts row by row

        items = [(f"many:{m}", m) for m in chunk]
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            got = db.run(
                lambda s, items=items: registry.run_many(
                    s, "add_tag", {"tag": "crowd"}, items, actor=SYSTEM
                )
            )
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert all(isinstance(x, registry.ActionResult) and not x.replayed for x in got)
        used.append(len(sent))
    assert used[0] == used[1] <= 10, used
    assert _tags(db) == sorted((m, "crowd") for m in people)
