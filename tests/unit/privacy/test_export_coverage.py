"""Every column that names a member is in the member's data export, or is listed with a
reason in ``privacy.service.NOT_EXPORTED``: a feature adding a table that refers to members
fails here until it says where its rows go in an export (and so in an erasure review)."""

from __future__ import annotations

import loyalist.models  # noqa: F401 (registers every table)
from loyalist.kit.db import Base
from loyalist.privacy.service import _TABLES, NOT_EXPORTED

#: Column names that hold a member id without a foreign key.
MEMBER_COLUMNS = frozenset({"member_id", "member_key", "active_member", "owner_member_id"})


def member_columns() -> set[tuple[str, str]]:
    found = set()
    for table in Base.metadata.sorted_tables:
        for col in table.columns:
            refers = any(fk.column.table.name == "member" for fk in col.foreign_keys)
            if refers or col.name in MEMBER_COLUMNS:
                found.add((table.name, col.name))
    found.add(("member", "id"))
    return found


def test_every_column_naming_a_member_is_exported_or_excused() -> None:
    exported = {(model.__tablename__, column.key) for _n, model, column in _TABLES}
    missing = member_columns() - exported - set(NOT_EXPORTED)
    assert missing == set()


def test_the_excuses_name_real_columns_not_exported() -> None:
    exported = {(model.__tablename__, column.key) for _n, model, column in _TABLES}
    assert set(NOT_EXPORTED) <= member_columns()
    assert set(NOT_EXPORTED) & exported == set()
    assert len({name for name, _m, _c in _TABLES}) == len(_TABLES)  # one file per table
