"""upgrade head → alembic check (no drift) → downgrade base → upgrade head, on each back end."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import migrate as migrations
from tests.support import pg_database_url, pg_execute, pg_url


def _tables(url: str) -> set[str]:
    async def run() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        finally:
            await engine.dispose()
        return names

    return asyncio.run(run())


def _roundtrip(url: str) -> None:
    migrations.upgrade(url)
    assert {"institution", "consortium", "specialty", "api_key"} <= _tables(url)
    migrations.check(url)  # raises when models and migrations differ
    migrations.downgrade(url, "base")
    assert _tables(url) <= {"alembic_version"}
    migrations.upgrade(url)
    migrations.check(url)


def test_migrations_roundtrip_sqlite(tmp_path: Path) -> None:
    _roundtrip(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


def test_migrations_roundtrip_postgresql() -> None:
    base = pg_url()
    if not base:
        pytest.skip("PostgreSQL back end: REFERRAL_TEST_DATABASE_URL is not set")
    name = f"referral_mig_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg_execute(base, f'CREATE DATABASE "{name}"'))
    try:
        _roundtrip(pg_database_url(base, name))
    finally:
        asyncio.run(pg_execute(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_sqlite_uses_wal_and_immediate_transactions(tmp_path: Path) -> None:
    from app.db.session import Database

    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    migrations.upgrade(url)

    async def run() -> tuple[str, bool]:
        db = Database(url)
        other = Database(url, busy_timeout_ms=50)
        try:
            async with db.unit_of_work() as session:
                mode = (
                    await session.execute(__import__("sqlalchemy").text("PRAGMA journal_mode"))
                ).scalar_one()
                await session.execute(__import__("sqlalchemy").text("SELECT 1"))
                # the writer holds the write lock from BEGIN: a second writer times out
                blocked = False
                try:
                    async with other.unit_of_work() as s2:
                        await s2.execute(__import__("sqlalchemy").text("SELECT 1"))
                except Exception as exc:  # sqlite3.OperationalError: database is locked
                    blocked = "locked" in str(exc)
                # a reader is not blocked
                async with other.unit_of_work(read_only=True) as s3:
                    await s3.execute(
                        __import__("sqlalchemy").text("SELECT count(*) FROM specialty")
                    )
            return str(mode), blocked
        finally:
            await db.dispose()
            await other.dispose()

    mode, blocked = asyncio.run(run())
    assert mode == "wal"
    assert blocked
