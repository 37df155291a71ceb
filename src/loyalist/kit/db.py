"""Engine, sessions and the one-transaction-per-unit-of-work helper.

SQLite is opened in WAL mode and every transaction that may write starts with
``BEGIN IMMEDIATE`` so two writers never interleave a read-modify-write (read-only units of
work begin deferred and read a snapshot); PostgreSQL writers lock rows explicitly
(``SELECT … FOR UPDATE``) in the services.
"""

from __future__ import annotations

import json
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Engine,
    Integer,
    MetaData,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from loyalist.kit.actor import Actor
from loyalist.kit.uow import begin_unit

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as UTC; naive input is refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store aware UTC datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


def is_sqlite(engine_or_session: Engine | Session) -> bool:
    bind = (
        engine_or_session.get_bind()
        if isinstance(engine_or_session, Session)
        else engine_or_session
    )
    return bind.dialect.name == "sqlite"


def json_dumps(value: Any) -> str:
    """JSON columns' encoder: orjson (speed, issue 11: several JSON values per order).

    What orjson refuses (an integer beyond 64 bits, nesting deeper than 254) goes to the
    standard encoder, which stores it or refuses it as before. Non-ASCII text is written
    as UTF-8, not ``\\u`` escapes; both read back the same."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value)


def json_loads(text: str | bytes) -> Any:
    """JSON columns' decoder: orjson; the standard decoder for what orjson refuses (the
    ``NaN`` the standard encoder once wrote)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    codec: dict[str, Any] = {"json_serializer": json_dumps, "json_deserializer": json_loads}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 60}, **codec
        )
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, **codec)
    _check_pooled_connections(engine)
    return engine


# A pooled connection idle longer than this is pinged (one round trip) before it is handed
# out; one used more recently is only checked without a round trip (see below).
PING_AFTER_IDLE_S = 10.0
_IDLE_SINCE = "loyalist.idle_since"


def _check_pooled_connections(engine: Engine) -> None:
    """Hand out no dead connection, without a round trip per checkout (speed, issue 11).

    SQLAlchemy's ``pool_pre_ping`` sent one statement per checkout: two per order (the
    order's transaction and the stream positions after it), each a round trip and, under
    load, a wait for the GIL when its answer came. A connection that PostgreSQL (or a
    pooler) ended — a restart, ``pg_terminate_backend``, ``idle_session_timeout`` — has its
    socket readable (the server's last message, then end of file) or is already marked
    closed by the driver: that is checked locally. A connection idle longer than
    :data:`PING_AFTER_IDLE_S` is pinged as before. A dead one is replaced: raising
    ``DisconnectionError`` at checkout makes the pool discard it and connect anew."""

    @event.listens_for(engine, "checkin")
    def _note_idle(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None:
            return  # a fresh connection
        if _ended_by_server(dbapi_conn):
            raise DisconnectionError("the server ended this pooled connection")
        if time.monotonic() - since > PING_AFTER_IDLE_S:
            try:
                engine.dialect.do_ping(dbapi_conn)
            except Exception as exc:
                raise DisconnectionError("a pooled connection failed its ping") from exc


def _ended_by_server(dbapi_conn: Any) -> bool:
    """True when an idle connection is closed or its socket has something to read: an idle
    client connection receives nothing unless the server is ending it."""
    if getattr(dbapi_conn, "closed", False) or getattr(dbapi_conn, "broken", False):
        return True
    try:
        fd = dbapi_conn.fileno()
    except Exception:
        return True
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        # Deleted and overwritten content is zeroed, not left in free pages (erasure of
        # personal data must reach the file; issue 13).
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Read-only units of work (``Database.run(..., read_only=True)``) begin deferred:
        # in WAL mode they read a snapshot while a writer works, instead of queueing behind
        # it for the write lock (issue 11).
        conn.exec_driver_sql("BEGIN" if getattr(_reading, "on", False) else "BEGIN IMMEDIATE")


_reading = threading.local()


@contextmanager
def _read_only() -> Iterator[None]:
    before = getattr(_reading, "on", False)
    _reading.on = True
    try:
        yield
    finally:
        _reading.on = before


_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


class Database:
    """Owns the engine and hands out one transaction per unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(
        self, *, actor: Actor | None = None, autocommit: bool = False
    ) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error.

        The session carries a :class:`~loyalist.kit.uow.UnitOfWork` (``uow_of(session)``)
        naming ``actor`` (or the caller set with ``acting_as``); its after-commit callbacks
        run once the commit succeeded, never after a rollback. ``autocommit``: on PostgreSQL,
        no transaction at all for read-only work (see :meth:`run`).
        """
        session = self.sessionmaker()
        uow = begin_unit(session, actor)
        try:
            with session.begin():
                if autocommit and self.dialect != "sqlite":
                    # the connection in autocommit mode until it goes back to the pool
                    # (SQLAlchemy resets it there): psycopg sends no BEGIN and no COMMIT
                    session.connection(execution_options=_AUTOCOMMIT)
                yield session
        except BaseException:
            uow._discard()
            raise
        finally:
            session.info.pop("loyalist.uow", None)
            session.close()
        uow._run_hooks()

    def run(
        self,
        fn: Callable[[Session], T],
        *,
        attempts: int = 5,
        actor: Actor | None = None,
        read_only: bool = False,
        autocommit: bool = False,
    ) -> T:
        """Run ``fn`` in a transaction, retrying transient lock/serialization failures.

        ``read_only``: ``fn`` writes nothing; on SQLite its transaction begins deferred
        (a WAL reader that never waits for writers) instead of ``BEGIN IMMEDIATE``.

        ``autocommit`` (with ``read_only``): ``fn``'s answer is right with each of its
        statements on a snapshot of its own, as PostgreSQL's READ COMMITTED (its default,
        and this application's) already gives every statement of a transaction; it takes
        no row lock, no advisory lock and no server-side cursor (each would end with its
        statement). On PostgreSQL it then runs without ``BEGIN`` and ``COMMIT``, two round
        trips (each a wait for the GIL when its answer comes) fewer (speed, issue 11: the
        member read). On SQLite it is a read-only transaction as above (one snapshot)."""
        if autocommit and not read_only:
            raise ValueError("autocommit is for read-only work")
        for attempt in range(1, attempts + 1):
            try:
                if read_only:
                    with (
                        _read_only(),
                        self.transaction(actor=actor, autocommit=autocommit) as session,
                    ):
                        return fn(session)
                with self.transaction(actor=actor) as session:
                    return fn(session)
            except (OperationalError, IntegrityError, DBAPIError) as exc:
                if attempt == attempts or not is_transient(exc):
                    raise
                time.sleep(0.005 * attempt)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


class RetryableConflict(Exception):
    """Raised inside a unit of work to make :meth:`Database.run` try again."""


def is_transient(exc: Exception) -> bool:
    """Failures that a fresh attempt of the same unit of work resolves.

    Lock timeouts, deadlocks and serialization failures; and unique violations: a unit of
    work first looks for the row it would insert (an order id, a phone, an idempotency key),
    so when a concurrent transaction inserted it first, the next attempt finds it and
    answers as a replay instead of failing.
    """
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in {"40001", "40P01", "55P03", "23505"}:
        return True
    text = str(orig or exc).lower()
    return (
        "database is locked" in text
        or "database is busy" in text
        or "unique constraint failed" in text
    )


# The largest values integer columns hold on PostgreSQL (and SQLite, for 64 bits): inputs
# are bounded by them so an absurd number is refused as invalid, never a database error.
MAX_INT4 = 2**31 - 1
MAX_INT8 = 2**63 - 1

# A 64-bit primary key that is still SQLite's auto-incrementing rowid.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
