"""Alembic environment: the URL and metadata come from Loyalist itself."""

from __future__ import annotations

from alembic import context

import loyalist.models  # noqa: F401 - registers every table
from loyalist.kit.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch alter rebuilds a table (copy, drop, rename); with foreign keys on, the
            # drop fails as soon as rows point at the table. Turn them off (outside any
            # transaction, where SQLite honours it) and check every reference before commit.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=sqlite
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left broken foreign keys: {broken[:10]}")
    engine.dispose()


run_migrations_online()
