"""``loyalist documents``, ``loyalist actions`` and ``loyalist tasks`` (mounted by cli/main.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from loyalist.errors import LoyalistError
from loyalist.kit.actor import Actor

documents_app = typer.Typer(help="Versioned configuration documents", no_args_is_help=True)
actions_app = typer.Typer(help="Actions that rules and flows run", no_args_is_help=True)
tasks_app = typer.Typer(help="Follow-up tasks about members", no_args_is_help=True)

console = Console()


def _cli_actor(author: str = "cli") -> Actor:
    return Actor(name=author[:128], scope_path="/", can_write=True, principal="cli")


def _db() -> Any:
    from loyalist.cli.main import _db as db

    return db()


def _fail(exc: LoyalistError) -> None:
    from loyalist.cli.main import _fail as fail

    fail(exc)


@documents_app.callback()
def _documents_kinds_registered() -> None:
    """Features register their kinds on import (habits …): load them all first."""
    from loyalist import bootstrap

    bootstrap.configure()


@documents_app.command("kinds")
def documents_kinds() -> None:
    """The kinds of documents this installation knows."""
    from loyalist.documents import registry

    t = Table("kind", "what", "stored in")
    for k in registry.kinds():
        t.add_row(k.name, k.description, "programme_version" if k.store else "config_document")
    console.print(t)


@documents_app.command("apply")
def documents_apply(
    kind: str,
    file: Path,
    note: Annotated[str | None, typer.Option(help="why this version")] = None,
    author: Annotated[str, typer.Option(help="who publishes it")] = "cli",
) -> None:
    """Validate FILE (YAML or JSON) and publish it as the next version of KIND."""
    from loyalist.documents import service as documents

    try:
        model = documents.load_file(kind, file)
        with _db().transaction() as s:
            number, created = documents.publish(s, _cli_actor(author), kind, model, note=note)
    except LoyalistError as exc:
        _fail(exc)
        return
    if created:
        console.print(f"{kind} version {number} is published")
    else:
        console.print(f"unchanged: {kind} version {number} already has this content")


@documents_app.command("list")
def documents_list(kind: str) -> None:
    """Every version of KIND with its author, note and checksum."""
    from loyalist.documents import service as documents

    try:
        with _db().transaction() as s:
            rows = documents.versions(s, kind)
    except LoyalistError as exc:
        _fail(exc)
        return
    t = Table("version", "created at (UTC)", "by", "note", "checksum")
    for v in rows:
        t.add_row(
            str(v.version),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            v.created_by or "",
            v.note or "",
            v.checksum[:12],
        )
    console.print(t)


@documents_app.command("show")
def documents_show(
    kind: str, version: Annotated[int | None, typer.Option(help="a past version")] = None
) -> None:
    """Print one version of KIND (the latest by default) as JSON."""
    from loyalist.documents import service as documents

    try:
        with _db().transaction() as s:
            v = documents.get(s, kind, version)
    except LoyalistError as exc:
        _fail(exc)
        return
    print(
        json.dumps(
            {"kind": kind, "version": v.version, "document": v.document},
            ensure_ascii=False,
            indent=2,
        )
    )


@documents_app.command("diff")
def documents_diff(kind: str, v1: int, v2: int) -> None:
    """What changed in KIND from version V1 to V2 (a unified diff of the YAML)."""
    from loyalist.documents import service as documents

    try:
        with _db().transaction() as s:
            lines = documents.diff(s, kind, v1, v2)
    except LoyalistError as exc:
        _fail(exc)
        return
    if not lines:
        console.print(f"{kind} v{v1} and v{v2} have the same content")
        return
    for line in lines:
        print(line)


@actions_app.command("list")
def actions_list() -> None:
    """The registered actions and their parameters."""
    from loyalist.actions import registry

    t = Table("action", "what", "parameters")
    for name in registry.names():
        spec = registry.spec(name)
        t.add_row(name, spec.description, ", ".join(spec.params.model_fields))
    console.print(t)


@actions_app.command("run")
def actions_run(
    action: str,
    cause: Annotated[str, typer.Option(help="why it runs; the same cause runs it once")],
    member: Annotated[int | None, typer.Option(help="member id")] = None,
    params: Annotated[str, typer.Option(help="parameters as JSON")] = "{}",
) -> None:
    """Run ACTION once for CAUSE (running it again prints the recorded result)."""
    from loyalist.actions import registry

    try:
        data = json.loads(params)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--params is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise typer.BadParameter("--params must be a JSON object")
    try:
        db = _db()
        result = db.run(
            lambda s: registry.run(
                s, action, data, cause=cause, member_id=member, actor=_cli_actor()
            )
        )
    except LoyalistError as exc:
        _fail(exc)
        return
    state = "already applied" if result.replayed else "applied"
    console.print(f"{action} {state} for {cause} (receipt {result.receipt_id})")
    print(json.dumps(result.result, ensure_ascii=False))


@tasks_app.command("list")
def tasks_list(
    member: Annotated[int | None, typer.Option(help="member id")] = None,
    status: Annotated[str | None, typer.Option(help="open, done or cancelled")] = "open",
) -> None:
    """Tasks about members, soonest due first."""
    from loyalist.task import service as tasks

    try:
        with _db().transaction() as s:
            rows = tasks.list_tasks(s, _cli_actor(), member_id=member, status=status)
    except LoyalistError as exc:
        _fail(exc)
        return
    t = Table("id", "member", "title", "due (UTC)", "status", "opened by")
    for r in rows:
        due = r.due_at.strftime("%Y-%m-%d %H:%M") if r.due_at else ""
        t.add_row(str(r.id), str(r.member_id), r.title, due, r.status, r.created_by)
    console.print(t)


@tasks_app.command("close")
def tasks_close(
    task_id: int,
    cancel: Annotated[bool, typer.Option("--cancel", help="cancelled instead of done")] = False,
) -> None:
    """Mark a task done (or cancelled)."""
    from loyalist.task import service as tasks

    try:
        with _db().transaction() as s:
            task = tasks.close(s, _cli_actor(), task_id, status="cancelled" if cancel else "done")
            status = task.status
    except LoyalistError as exc:
        _fail(exc)
        return
    console.print(f"task {task_id} is {status}")
