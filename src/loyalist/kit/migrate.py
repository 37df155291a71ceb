"""Running Alembic migrations from the installed package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import loyalist
from loyalist.kit.db import Database


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(loyalist.__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def migrated(url: str) -> Database:
    """The database at ``url``, its schema upgraded to the newest migration first (what a
    CLI command opens)."""
    upgrade(url)
    return Database(url)


def current(url: str) -> None:
    command.current(alembic_config(url))
