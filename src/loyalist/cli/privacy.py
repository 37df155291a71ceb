"""``loyalist keys``: the keys that encrypt personal data at rest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from loyalist.config import get_settings
from loyalist.kit import crypto
from loyalist.kit.db import Database
from loyalist.kit.migrate import upgrade

keys_app = typer.Typer(help="Keys of personal data at rest (rotate, status)", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _db() -> Database:
    url = get_settings().database_url
    upgrade(url)
    return Database(url)


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
