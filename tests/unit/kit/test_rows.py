"""kit.rows.Loaded: objects of rows a Core statement read are the session's objects as an
ORM query with ``populate_existing`` leaves them (speed, issue 11: the order's locking read)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import JSON, String, create_engine, event, inspect, select
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from loyalist.kit.rows import Loaded


class _Base(DeclarativeBase):
    pass


class Thing(_Base):
    __tablename__ = "thing"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    size: Mapped[int]
    note: Mapped[str | None] = mapped_column(String(32))


class Tracked(_Base):
    __tablename__ = "tracked"
    id: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(MutableDict.as_mutable(JSON()))


THINGS = Loaded(Thing)
READ = select(*THINGS.columns).where(THINGS.table.c.id == 1)


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(Thing(id=1, name="one", size=10, note=None))
        s.commit()
    with Session(engine) as s:
        yield s
    engine.dispose()


def _statements(session: Session) -> list[str]:
    seen: list[str] = []
    event.listen(session.get_bind(), "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_a_loaded_row_is_the_persistent_object_a_query_gives(session: Session) -> None:
    row = session.connection().execute(READ).one()
    obj = THINGS.load(session, row)
    state = inspect(obj)
    assert state.persistent and not state.modified and not state.expired_attributes
    assert obj in session and state.session is session
    assert {k: getattr(obj, k) for k in THINGS.keys} == {
        "id": 1,
        "name": "one",
        "size": 10,
        "note": None,
    }
    seen = _statements(session)
    # the identity map holds it: a get or a query of the row gives this very object
    assert session.get(Thing, 1) is obj
    assert session.scalars(select(Thing).where(Thing.id == 1)).one() is obj
    assert len(seen) == 1  # the query's; the get asked nothing
    seen.clear()
    obj.size = 11  # a change is tracked and flushed as one UPDATE of that column
    assert list(session.dirty) == [obj]
    session.flush()
    assert len(seen) == 1 and seen[0].startswith("UPDATE thing SET size")
    session.rollback()  # a rollback expires it: the next use reads the row again
    assert inspect(obj).expired
    assert obj.size == 10


def test_a_row_already_in_the_session_overwrites_its_object(session: Session) -> None:
    held = session.get(Thing, 1)
    assert held is not None
    session.connection().exec_driver_sql("UPDATE thing SET size = 12, note = 'n' WHERE id = 1")
    assert held.size == 10  # what the session loaded before
    obj = THINGS.load(session, session.connection().execute(READ).one())
    assert obj is held  # one object per row in a session
    assert (obj.size, obj.note) == (12, "n")  # as populate_existing loads it
    assert not inspect(obj).modified and not session.dirty


def test_a_class_with_load_listeners_is_refused() -> None:
    with pytest.raises(TypeError, match="load listeners"):
        Loaded(Tracked)
