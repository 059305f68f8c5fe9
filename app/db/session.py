"""Engine and session factories.

SQLite (the embedded default) runs in WAL mode with a busy timeout. Write transactions
take the write lock up front with ``BEGIN IMMEDIATE`` so two writers never deadlock on a
lock upgrade; read-only transactions use a deferred ``BEGIN`` so they never wait for writers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
    create_async_engine,
)

from app.db.sql_functions import LOCAL_MONTH, register_math_functions, sqlite_local_month

READ_ONLY_OPTION = "referral_read_only"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """PostgreSQL bounds: a stalled server or a held lock answers an error, never a hang.

    Every statement ends within ``statement_ms`` (and waits at most ``lock_ms`` for a lock), both
    below ``REFERRAL_IDEMPOTENCY_IN_FLIGHT_SECONDS``, so a request whose key a retry may take
    over has stopped working by then; ``command_s`` bounds the driver's wait for any answer (a
    server that stopped responding), ``connect_s`` the connection set-up."""

    connect_s: float = 5.0
    command_s: float = 30.0
    statement_ms: int = 20_000
    lock_ms: int = 10_000
    idle_in_transaction_ms: int = 60_000


def create_engine(
    url: str,
    *,
    busy_timeout_ms: int = 5000,
    pool_size: int = 10,
    timeouts: Timeouts | None = None,
    create: bool = False,
) -> AsyncEngine:
    """``create``: the migration may create a SQLite file; the service never does (a deleted
    or moved database answers 503 instead of a new empty one taking its writes)."""
    if url.startswith("sqlite"):
        connect_args: dict[str, Any] = {"timeout": busy_timeout_ms / 1000}
        path = make_url(url).database
        if not create and path and path != ":memory:" and not path.startswith("file:"):
            # SQLite URI filename: open read-write, never create (pysqlite's uri=true form)
            url = f"{make_url(url).drivername}:///file:{path}?mode=rw&uri=true"
        engine = create_async_engine(url, connect_args=connect_args)
        _configure_sqlite(engine, busy_timeout_ms, None if create else path)
        return engine
    t = timeouts or Timeouts()
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_timeout=t.connect_s,
        connect_args={
            "timeout": t.connect_s,
            "command_timeout": t.command_s,
            "server_settings": {
                "statement_timeout": str(t.statement_ms),
                "lock_timeout": str(t.lock_ms),
                "idle_in_transaction_session_timeout": str(t.idle_in_transaction_ms),
            },
        },
    )


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int, path: str | None) -> None:
    sync_engine = engine.sync_engine
    identity: dict[str, tuple[int, int]] = {}

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own handling is off).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA secure_delete=ON")  # deleted rows leave no readable bytes
        cursor.close()
        register_math_functions(dbapi_connection)
        dbapi_connection.create_function(LOCAL_MONTH, 2, sqlite_local_month, deterministic=True)
        if path is not None:
            st = os.stat(path)
            identity.setdefault("file", (st.st_dev, st.st_ino))

    if path is not None:

        @event.listens_for(sync_engine, "checkout")
        def _on_checkout(_dbapi: Any, _record: Any, _proxy: Any) -> None:
            # a pooled connection keeps writing into a deleted or replaced file: drop it
            try:
                st = os.stat(path)
            except OSError:
                raise DisconnectionError("the database file is gone") from None
            if identity.get("file", (st.st_dev, st.st_ino)) != (st.st_dev, st.st_ino):
                raise DisconnectionError("the database file was replaced")

        @event.listens_for(sync_engine, "handle_error")
        def _on_error(context: Any) -> None:
            # a connection that saw the file read-only or an I/O error is not reused
            message = str(context.original_exception).lower()
            if "readonly database" in message or "disk i/o error" in message:
                context.is_disconnect = True

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


_KEEP_SAVEPOINT = "referral_keep_savepoint"


def _release_savepoints_unless_kept(engine: AsyncEngine) -> None:
    """The dialect skips the RELEASE of a savepoint :func:`commit_keeping_savepoint` ends."""
    dialect = engine.sync_engine.dialect
    release = dialect.do_release_savepoint

    def do_release_savepoint(connection: Connection, name: str) -> None:
        if connection.info.pop(_KEEP_SAVEPOINT, False):
            return
        release(connection, name)

    dialect.do_release_savepoint = do_release_savepoint  # type: ignore[method-assign]


async def commit_keeping_savepoint(
    session: AsyncSession, savepoint: AsyncSessionTransaction
) -> None:
    """End ``savepoint`` for the session without a RELEASE SAVEPOINT round trip: the
    transaction's own COMMIT commits the savepoint's work with it (PostgreSQL and SQLite both
    commit open savepoints), and a ROLLBACK undoes it. For a savepoint after whose last
    statement only the COMMIT follows: a create's hold, which locks its capacity row until
    the COMMIT, so every round trip saved there is time the row is not locked. On an engine
    made elsewhere the RELEASE is sent as usual."""
    connection = (await session.connection()).sync_connection
    assert connection is not None
    connection.info[_KEEP_SAVEPOINT] = True
    try:
        await savepoint.commit()
    finally:
        connection.info.pop(_KEEP_SAVEPOINT, None)


_AFTER_ROLLBACK = "after_rollback"


def after_rollback(session: AsyncSession, step: Callable[[], Awaitable[None]]) -> None:
    """Run ``step`` if the unit of work of ``session`` rolls back, once its transaction has
    ended (on SQLite the write lock is free again by then). The idempotency claim uses it to
    give its key back when the create fails or its commit does."""
    session.info.setdefault(_AFTER_ROLLBACK, []).append(step)


class Database:
    """Owns the engine and hands out sessions for write and read-only units of work."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = 5000,
        pool_size: int = 10,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.url = url
        self.engine = create_engine(
            url, busy_timeout_ms=busy_timeout_ms, pool_size=pool_size, timeouts=timeouts
        )
        _release_savepoints_unless_kept(self.engine)
        self._writer = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reader = async_sessionmaker(
            self.engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def unit_of_work(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        """A transaction: committed when the block ends, rolled back on any exception (a
        failed commit included); then the steps registered with :func:`after_rollback` run."""
        maker = self._reader if read_only else self._writer
        async with maker() as session:
            try:
                async with session.begin():
                    yield session
            except BaseException:
                for step in session.info.pop(_AFTER_ROLLBACK, ()):
                    await step()
                raise

    async def ready(self) -> str | None:
        """None when the service can work on this database, else why not: it answers, it can
        write (SQLite: the write lock on the right, writable file, then rolled back), and its
        schema is not behind the code's migrations."""
        async with self.engine.connect() as conn:  # on SQLite: BEGIN IMMEDIATE, the write lock
            try:
                revision = (
                    await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
                ).scalar()
            except DBAPIError:
                revision = None
            await conn.rollback()
        return schema_problem(revision)

    async def dispose(self) -> None:
        await self.engine.dispose()


def schema_problem(revision: str | None) -> str | None:
    """Why a database at ``revision`` cannot be served by this code (None: it can). A revision
    the code does not know is newer (a rolling upgrade migrated first): it is served."""
    from app.db.migrate import head_revision, known_revisions

    if revision is None:
        return "the database has no schema: run `referral-service migrate`"
    if revision != head_revision() and revision in known_revisions():
        return "the database schema is behind the code: run `referral-service migrate`"
    return None
