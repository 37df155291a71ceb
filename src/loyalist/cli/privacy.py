"""``loyalist keys``: the keys that encrypt personal data at rest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from loyalist.config import get_settings
from loyalist.errors import LoyalistError
from loyalist.kit import crypto
from loyalist.kit.actor import Actor
from loyalist.kit.db import Database
from loyalist.kit.migrate import migrated

keys_app = typer.Typer(help="Keys of personal data at rest (rotate, status)", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _db() -> Database:
    return migrated(get_settings().database_url)


def _keyfile() -> Path:
    path = get_settings().keyfile
    if not path:
        err.print(
            "[red]error[/]: set LOYALIST_KEYFILE to the keyfile that holds the rotated keys "
            "(it is created by the first rotation; keep it with LOYALIST_SECRET_KEY)"
        )
        raise typer.Exit(2)
    return Path(path)


@keys_app.command("rotate")
def rotate(
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="rows per transaction")] = 500,
    reencrypt_only: Annotated[
        bool,
        typer.Option("--reencrypt-only", help="no new key: move values to the current key"),
    ] = False,
) -> None:
    """Add a new current data key and re-encrypt every personal value under it (online)."""
    from loyalist.privacy import keys

    keyfile = _keyfile()
    db = _db()
    try:
        if reencrypt_only:
            kid, n = crypto.keyring(refresh=True).current, keys.reencrypt(db, batch=batch)
        else:
            r = keys.rotate(db, keyfile, batch=batch)
            kid, n = r.key_id, r.reencrypted
        with db.transaction() as s:
            usage = keys.key_usage(s)
    finally:
        db.dispose()
    console.print(f"current key {kid}: {n} row(s) re-encrypted")
    console.print("values per key: " + ", ".join(f"{k}={v}" for k, v in usage.items()))


@keys_app.command("status")
def status() -> None:
    """How many stored personal values each key encrypts."""
    from loyalist.privacy import keys

    db = _db()
    try:
        with db.transaction() as s:
            usage = keys.key_usage(s)
    finally:
        db.dispose()
    console.print(f"current key {crypto.keyring(refresh=True).current}")
    console.print("values per key: " + ", ".join(f"{k}={v}" for k, v in usage.items()))


def _actor() -> Actor:
    return Actor(name="cli", scope_path="/", can_write=True, principal="cli")


privacy_app = typer.Typer(help="A member's data: export, erase", no_args_is_help=True)


@privacy_app.command("export")
def export(
    member_id: Annotated[int, typer.Argument(min=1)],
    out: Annotated[
        Path | None, typer.Option("--out", help="zip file (default: ./<no>-export.zip)")
    ] = None,
) -> None:
    """Write everything held about a member to a zip (JSON + CSV per table, manifest.json)."""
    from loyalist.privacy import service

    actor = _actor()
    db = _db()
    try:
        with db.transaction(actor=actor) as s:
            e = service.export(s, actor, member_id)
    except LoyalistError as exc:
        err.print(f"[bold red]error[/]: {exc.detail or exc.title}")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    target = out or Path(e.filename)
    target.write_bytes(e.data)
    console.print(f"{target}: {len(e.manifest['files'])} files, member {member_id}")


@privacy_app.command("erase")
def erase(
    member_id: Annotated[int, typer.Argument(min=1)],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Erase a member's personal data everywhere (points, orders and history stay)."""
    from loyalist.privacy import service

    actor = _actor()
    if not yes:
        typer.confirm(
            f"Erase the personal data of member {member_id}? This cannot be undone", abort=True
        )
    db = _db()
    try:
        with db.transaction(actor=actor) as s:
            m = service.erase(s, actor, member_id)
            erased_at = m.erased_at
    except LoyalistError as exc:
        err.print(f"[bold red]error[/]: {exc.detail or exc.title}")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    console.print(f"member {member_id} erased at {erased_at}")
