"""Many rows into one table in the caller's transaction (bulk import's writer).

On PostgreSQL the rows go through ``COPY … FROM STDIN`` (psycopg), their ids taken from the
table's sequence in one ``nextval`` batch first: no SQL text to build and parse per row,
which is where a multi-row INSERT of thousands of rows spends its time (psycopg converts
every ``%(name)s`` placeholder of the statement, SQLAlchemy compiles it). Values go through
each column type's bind processing, as an INSERT's would (JSON, encrypted or UTC columns),
and a column a row leaves out gets the column's scalar default (the ORM's), else the
server's. On other databases: one multi-row INSERT (SQLAlchemy Core).

Ids come back in the rows' order and increase with it, as ``RETURNING … sort_by_parameter_order``
gives them."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Dialect, Table, insert
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine


def insert_rows(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], *, ids: bool = False
) -> list[int]:
    """Insert ``rows`` (dicts of column values) into ``table``; answers their new ids (the
    ``id`` column) when ``ids`` is true, else ``[]``."""
    if not rows:
        return []
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        if ids:
            stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            return [int(i) for i in session.scalars(stmt, rows)]
        session.execute(insert(table), rows)
        return []
    return _copy(session, table, rows, ids)


def _json_text(none_as_null: bool) -> Callable[[Any], Any]:
    def process(value: Any) -> Any:
        if value is None or value is JSON.NULL:
            return None if none_as_null and value is None else "null"
        try:
            return orjson.dumps(value).decode()
        except TypeError:  # what orjson refuses (integers past 64 bits…): as SQLAlchemy does
            return json.dumps(value)

    return process


def _processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """How a value of this column type is sent: JSON as its text (orjson: the same JSON
    value as SQLAlchemy's ``json.dumps``, several times faster), else the type's own bind
    processing."""
    if type(type_) is JSON:
        return _json_text(type_.none_as_null)
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _copy(session: Session, table: Table, rows: Sequence[dict[str, Any]], ids: bool) -> list[int]:
    dialect = session.get_bind().dialect
    names: list[str] = []
    seen: set[str] = set()
    for r in rows:
        for key in r:
            if key not in seen:
                seen.add(key)
                names.append(key)
    defaults: dict[str, Any] = {}
    for col in table.columns:
        if col.name in seen or col.primary_key:
            continue
        default = col.default
        if default is not None and default.is_scalar:
            defaults[col.name] = default.arg  # type: ignore[attr-defined]
            names.append(col.name)
        elif default is not None:
            raise ValueError(f"{table.name}.{col.name}: a computed default needs a value")
    procs: list[Callable[[Any], Any] | None] = [_processor(table.c[n].type, dialect) for n in names]
    raw = session.connection().connection.driver_connection
    assert raw is not None
    new_ids: list[int] = []
    with raw.cursor() as cur:
        if ids:
            cur.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                (table.name, len(rows)),
            )
            new_ids = sorted(int(got[0]) for got in cur.fetchall())
        cols = (["id"] if ids else []) + names
        quoted = ", ".join(f'"{c}"' for c in cols)
        with cur.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as cp:
            for k, row in enumerate(rows):
                values: list[Any] = [] if not ids else [new_ids[k]]
                for n, p in zip(names, procs, strict=True):
                    v = row.get(n, defaults.get(n))
                    values.append(p(v) if p is not None else v)
                cp.write_row(values)
    return new_ids
