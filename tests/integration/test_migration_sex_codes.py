"""Revision 0015 converts the stored sex words to GB/T 2261.1 codes, and back on downgrade."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.db import migrate as migrations
from app.db.session import Database
from app.services import loader
from tests.support import pg_database_url, pg_execute, pg_url

WORDS = ("male", "female", "unknown")
SLOT_RESERVE = (
    "reserved_signed INTEGER NOT NULL DEFAULT 0",
    "held_signed INTEGER NOT NULL DEFAULT 0",
    "used_signed INTEGER NOT NULL DEFAULT 0",
    "release_at TIMESTAMP",
    "sources INTEGER",
)


def _value(column: dict[str, Any], n: int) -> Any:
    kind = column["type"]
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):
        return n
    if isinstance(kind, sa.DateTime):
        return datetime(2026, 11, 1, tzinfo=UTC)
    if isinstance(kind, sa.Date):
        return date(1960, 1, 1)
    if isinstance(kind, sa.JSON):
        return []
    return f"r{n}"


async def _insert_rows(conn: AsyncConnection) -> None:
    """One referral per stored word, every required column filled, of a demo institution."""
    institution, consortium = (
        await conn.execute(sa.text("SELECT id, consortium_id FROM institution LIMIT 1"))
    ).one()
    specialty = (await conn.execute(sa.text("SELECT code FROM specialty LIMIT 1"))).scalar_one()
    columns = await conn.run_sync(lambda c: sa.inspect(c).get_columns("referral"))
    table = sa.table("referral", *(sa.column(c["name"], c["type"]) for c in columns))
    for n, word in enumerate(WORDS):
        row = {
            c["name"]: _value(c, n)
            for c in columns
            if not c["nullable"] and c.get("default") is None
        }
        row.update(patient_sex=word, care_type="inpatient", urgency="routine")
        row.update(insurance_scheme="self_pay", direction="up", status="pending")
        row.update(
            consortium_id=consortium, source_institution_id=institution, specialty_code=specialty
        )
        await conn.execute(table.insert().values(**row))


async def _sexes(url: str, seed: bool = False) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            if seed:
                await _insert_rows(conn)
            rows = await conn.execute(sa.text("SELECT patient_sex FROM referral ORDER BY id"))
            return [r[0] for r in rows]
    finally:
        await engine.dispose()


async def _demo(url: str) -> None:
    """The demo consortia (institutions, specialties) into the old schema: the referrals below
    need them. No keys: today's roles (notifier) postdate that schema's constraint."""
    # today's loader names the consortium columns and the membership table of migration 0034:
    # present while it loads, gone again before the migrations under test run (0034 adds them)
    later = ("alliance_centres", "alliance_specialties")
    database = Database(url)
    try:
        async with database.unit_of_work() as session:
            for column in later:
                await session.execute(
                    sa.text(f"ALTER TABLE consortium ADD COLUMN {column} JSON DEFAULT '[]'")
                )
            await session.execute(
                sa.text(
                    "CREATE TABLE consortium_membership (consortium_id VARCHAR(36), "
                    "institution_id VARCHAR(36), is_lead BOOLEAN, created_at TIMESTAMP, "
                    "updated_at TIMESTAMP)"
                )
            )
            for table in (  # and the remote-service tables of migration 0036
                "remote_service (institution_id VARCHAR(36), kind VARCHAR(16), "
                "specialty_code VARCHAR(8))",
                "remote_capacity (institution_id VARCHAR(36), kind VARCHAR(8), "
                "specialty_code VARCHAR(8), day DATE, total INTEGER, occupied INTEGER, "
                "held INTEGER, overflow INTEGER, as_of TIMESTAMP, updated_at TIMESTAMP, "
                "PRIMARY KEY (institution_id, kind, specialty_code, day))",
            ):
                await session.execute(sa.text(f"CREATE TABLE {table}"))
            # and the slot reserve columns of migration 0038 (the loader writes slot rows)
            for column in SLOT_RESERVE:
                await session.execute(sa.text(f"ALTER TABLE slot_capacity ADD COLUMN {column}"))
            await loader.load_reference_data(session)
            for path in loader.demo_files():
                await loader.load_consortium(session, loader.parse_file(path), with_capacity=True)
            for table in ("consortium_membership", "remote_service", "remote_capacity"):
                await session.execute(sa.text(f"DROP TABLE {table}"))
            for column in later:
                await session.execute(sa.text(f"ALTER TABLE consortium DROP COLUMN {column}"))
            for column in SLOT_RESERVE:
                name = column.split()[0]
                await session.execute(sa.text(f"ALTER TABLE slot_capacity DROP COLUMN {name}"))
    finally:
        await database.dispose()


def _roundtrip(url: str) -> None:
    before = migrations.revision_before("0015")
    migrations.upgrade(url, before)
    asyncio.run(_demo(url))
    assert asyncio.run(_sexes(url, seed=True)) == list(WORDS)
    migrations.upgrade(url)
    assert asyncio.run(_sexes(url)) == ["1", "2", "0"]
    migrations.downgrade(url, before)
    assert asyncio.run(_sexes(url)) == list(WORDS)
    migrations.upgrade(url)
    migrations.check(url)


def test_sex_words_become_codes_sqlite(tmp_path: Path) -> None:
    _roundtrip(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")


def test_sex_words_become_codes_postgresql() -> None:
    base = pg_url()
    if not base:
        pytest.skip("PostgreSQL back end: REFERRAL_TEST_DATABASE_URL is not set")
    name = f"referral_sex_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg_execute(base, f'CREATE DATABASE "{name}"'))
    try:
        _roundtrip(pg_database_url(base, name))
    finally:
        asyncio.run(pg_execute(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
