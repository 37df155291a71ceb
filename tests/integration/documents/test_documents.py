"""Versioned configuration documents: kinds, versions with author and note, diff, audit,
published events, history untouched; the programme is the first kind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import create_engine, select
from tests.integration.cli.test_cli_commands import Cli, cli, run  # noqa: F401 (fixtures)
from tests.itest import counts, demo_document, new_member, rows, write_yaml

from loyalist.documents import registry
from loyalist.documents import service as documents
from loyalist.documents.errors import DocumentInvalid, NoVersion, UnknownKind
from loyalist.errors import Forbidden
from loyalist.kit.actor import SYSTEM, Actor
from loyalist.kit.db import Base, Database
from loyalist.models import AuditLog, ConfigDocument, OutboxEvent
from loyalist.programme.errors import ProgrammeInvalid

ALICE = Actor(name="user:alice", principal="alice")
TABLES = ["programme_version", "config_document", "outbox_event", "audit_log"]


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z0-9_]+$")
    text: str = Field(min_length=1)
    scale: int = Field(default=10, ge=2, le=11)


class Survey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    questions: list[Question] = Field(min_length=1)


@pytest.fixture
def survey_kind() -> Iterator[registry.Kind]:
    kind = registry.register(registry.Kind("test_survey", "A test survey", Survey))
    yield kind
    registry.unregister("test_survey")


def publish(
    db: Database, kind: str, doc: Any, actor: Actor = ALICE, note: str | None = None
) -> tuple[int, bool]:
    return db.run(lambda s: documents.publish(s, actor, kind, doc, note=note))


def test_a_new_kind_is_versioned_audited_and_announced(world: Any, survey_kind: Any) -> None:
    v1 = {"name": "NPS", "questions": [{"code": "nps", "text": "推荐意愿？"}]}
    assert publish(world.db, "test_survey", v1, note="first") == (1, True)
    assert publish(world.db, "test_survey", v1) == (1, False)  # same content: nothing new
    v2 = {"name": "NPS", "questions": [{"code": "nps", "text": "推荐意愿？", "scale": 11}]}
    assert publish(world.db, "test_survey", v2, note="0-10 scale") == (2, True)
    with world.db.transaction() as s:
        got = documents.versions(s, "test_survey")
        assert [(v.version, v.created_by, v.note) for v in got] == [
            (1, "user:alice", "first"),
            (2, "user:alice", "0-10 scale"),
        ]
        # History never changes: version 1 is exactly what was published.
        assert documents.get(s, "test_survey", 1).document == {
            "name": "NPS",
            "questions": [{"code": "nps", "text": "推荐意愿？", "scale": 10}],
        }
        assert documents.get(s, "test_survey").version == 2
        assert documents.diff(s, "test_survey", 1, 2) == [
            "--- test_survey v1",
            "+++ test_survey v2",
            "@@ -3,3 +3,3 @@",
            " - code: nps",
            "   text: 推荐意愿？",
            "-  scale: 10",
            "+  scale: 11",
        ]
        assert documents.diff(s, "test_survey", 2, 2) == []
        evs = s.scalars(select(OutboxEvent).where(OutboxEvent.type == "document.published"))
        assert [(e.payload["kind"], e.payload["version"], e.payload["by"]) for e in evs] == [
            ("test_survey", 1, "user:alice"),
            ("test_survey", 2, "user:alice"),
        ]
        audits = s.scalars(select(AuditLog).where(AuditLog.action == "document.publish"))
        assert [(a.actor, a.after["version"], a.after["note"]) for a in audits] == [
            ("user:alice", 1, "first"),
            ("user:alice", 2, "0-10 scale"),
        ]


def test_invalid_documents_name_their_fields_and_write_nothing(
    world: Any, survey_kind: Any
) -> None:
    before = counts(world.db, TABLES)
    with pytest.raises(DocumentInvalid) as info:
        publish(world.db, "test_survey", {"name": "", "questions": [{"code": "A b", "text": "x"}]})
    assert [e.field for e in info.value.errors] == ["name", "questions.0.code"]
    with pytest.raises(DocumentInvalid) as info:
        publish(world.db, "test_survey", ["not", "a", "mapping"])
    assert [e.field for e in info.value.errors] == ["$"]
    doc = demo_document()
    doc["earning"]["campaigns"][0]["when"] = {"all": [{"gte": {"member.tier": "diamond"}}]}
    with pytest.raises(ProgrammeInvalid) as pinfo:
        publish(world.db, "programme", doc)
    assert [e.field for e in pinfo.value.errors] == ["earning.campaigns.0.when.all.0.gte"]
    with pytest.raises(UnknownKind):
        publish(world.db, "journey", {})
    with world.db.transaction() as s, pytest.raises(NoVersion):
        documents.get(s, "test_survey", 1)
    assert counts(world.db, TABLES) == before


def test_publishing_needs_the_kinds_permission(world: Any, survey_kind: Any) -> None:
    viewer = Actor(name="user:viewer", principal="viewer", permissions=frozenset())
    before = counts(world.db, TABLES)
    doc = {"name": "NPS", "questions": [{"code": "nps", "text": "?"}]}
    with pytest.raises(Forbidden):
        publish(world.db, "test_survey", doc, actor=viewer)
    with pytest.raises(Forbidden):
        publish(world.db, "programme", demo_document() | {"name": "x"}, actor=viewer)
    assert counts(world.db, TABLES) == before


def test_the_programme_is_a_kind_kept_in_programme_version(world: Any) -> None:
    doc = demo_document()
    doc["earning"]["campaigns"][0]["when"] = {"all": [{"gte": {"member.tier": "gold"}}]}
    assert publish(world.db, "programme", doc, note="member day for gold") == (2, True)
    with world.db.transaction() as s:
        got = documents.versions(s, "programme")
        assert [(v.version, v.created_by, v.note) for v in got] == [
            (1, "test", None),
            (2, "user:alice", "member day for gold"),
        ]
        diff = documents.diff(s, "programme", 1, 2)
        assert "+    when:" in diff
        assert s.scalar(select(ConfigDocument).where(ConfigDocument.kind == "programme")) is None
    assert rows(world.db, "SELECT type FROM outbox_event ORDER BY id") == [
        {"type": "programme.published"},
        {"type": "programme.published"},
    ]


def test_documents_cli(world: Any, cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    doc = demo_document()
    doc["rewards"][0]["points"] = 1600
    path = write_yaml(tmp_path / "p.yaml", doc)
    r = cli(
        "documents",
        "apply",
        "programme",
        str(path),
        "--note",
        "americano 1600",
        "--author",
        "ops:li",
    )
    assert r.exit_code == 0, r.output
    assert "programme version 2 is published" in r.stdout
    r = cli("documents", "apply", "programme", str(path))
    assert "unchanged: programme version 2 already has this content" in r.stdout
    r = cli("documents", "list", "programme")
    assert "ops:li" in r.stdout and "americano 1600" in r.stdout
    r = cli("documents", "diff", "programme", "1", "2")
    assert r.exit_code == 0, r.output
    assert "-  points: 1500\n+  points: 1600" in r.stdout
    r = cli("documents", "show", "programme", "--version", "1")
    assert json.loads(r.stdout)["document"]["rewards"][0]["points"] == 1500
    r = cli("documents", "kinds")
    assert "programme" in r.stdout and "programme_version" in r.stdout
    r = cli("documents", "diff", "journey", "1", "2")
    assert r.exit_code == 2 and "No document kind 'journey'" in r.output


def test_actions_and_tasks_cli(world: Any, cli: Cli, client: Any) -> None:  # noqa: F811
    mid = new_member(client, "13800000001")
    args = (
        "actions",
        "run",
        "open_task",
        "--cause",
        "nps:1",
        "--member",
        str(mid),
        "--params",
        '{"title": "回访", "due_in_days": 2}',
    )
    r = cli(*args)
    assert r.exit_code == 0, r.output
    assert "open_task applied for nps:1" in r.stdout
    r = cli(*args)
    assert "open_task already applied for nps:1" in r.stdout
    r = cli("tasks", "list", "--member", str(mid))
    assert "回访" in r.stdout and "nps:1" in r.stdout
    r = cli(
        "actions",
        "run",
        "award_points",
        "--cause",
        "c",
        "--member",
        str(mid),
        "--params",
        '{"points": -1}',
    )
    assert r.exit_code == 2
    assert "params.points: Input should be greater than or equal to 1" in r.output
    assert "params.reason: Field required" in r.output
    r = cli("actions", "list")
    for name in ("award_points", "add_tag", "remove_tag", "send_message", "open_task"):
        assert name in r.stdout
    r = cli("tasks", "close", "1")
    assert "task 1 is done" in r.stdout


def test_the_migration_matches_the_models(db: Database) -> None:
    engine = create_engine(db.url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    ours = ("action_receipt", "member_task", "config_document")
    assert [d for d in diffs if any(name in repr(d) for name in ours)] == []


def test_system_may_publish(world: Any, survey_kind: Any) -> None:
    doc = {"name": "CSAT", "questions": [{"code": "csat", "text": "满意吗？", "scale": 5}]}
    assert publish(world.db, "test_survey", doc, actor=SYSTEM) == (1, True)
