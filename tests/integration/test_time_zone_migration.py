"""The consortium time-zone migration: stored consortia get Asia/Shanghai, on both back ends."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import migrate as migrations
from tests.support import pg_database_url, pg_execute, pg_url


def _migrated_consortium_zone(url: str) -> None:
    """A consortium stored before the time-zone column gets Asia/Shanghai; downgrading drops
    the column and keeps the consortium."""

    async def run(sql: str) -> list[Any]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(sql))
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    migrations.upgrade(url, "0008")
    asyncio.run(
        run(
            "INSERT INTO consortium (id, code, name, kind, close_knit, referral_prefix, version,"
            " created_at, updated_at) VALUES ('c-1', 'OLD', '旧医联体', 'county_medical_community',"
            " true, 'OL', 1, '2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00')"
        )
    )
    migrations.upgrade(url)
    assert asyncio.run(run("SELECT code, time_zone FROM consortium")) == [("OLD", "Asia/Shanghai")]
    migrations.downgrade(url, "0008")
    assert asyncio.run(run("SELECT code FROM consortium")) == [("OLD",)]
    migrations.upgrade(url)


def test_migration_gives_stored_consortia_a_zone_sqlite(tmp_path: Path) -> None:
    _migrated_consortium_zone(f"sqlite+aiosqlite:///{tmp_path / 'tz.db'}")


def test_migration_gives_stored_consortia_a_zone_postgresql() -> None:
    base = pg_url()
    if not base:
        pytest.skip("PostgreSQL back end: REFERRAL_TEST_DATABASE_URL is not set")
    name = f"referral_tz_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg_execute(base, f'CREATE DATABASE "{name}"'))
    try:
        _migrated_consortium_zone(pg_database_url(base, name))
    finally:
        asyncio.run(pg_execute(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
