"""Test databases built by the real migrations, on SQLite and (when configured) PostgreSQL.

A template database is migrated and loaded with the demo data once per run and back end;
every test that asks for ``db_url`` gets its own copy (a file copy on SQLite,
``CREATE DATABASE ... TEMPLATE`` on PostgreSQL), so tests never see each other's writes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import migrate as migrations
from app.db.session import Database
from app.services import demo

PG_ENV = "REFERRAL_TEST_DATABASE_URL"
# strong (64 hex digits, three different ones), so the same values also start a production
# service; fixed so a test database stays readable across processes of one run
TEST_SECRETS = {
    "api_key_pepper": "3f1c9a7e5b2d4f60819a3c5e7f9b1d2a4c6e8f0a1b3d5f7092b4d6f8e0a2c4e6",
    "patient_data_key": "a4e6c8f0b2d4061829f3b5d7e9a1c3f5d7b9e1a3c5f70e2b4d6f8a0c2e4b6d89",
    "patient_hmac_key": "5d7f91b3c5e70a2c4e6b8d0f2a4c6e8b1d3f5a7c9e0b2d4f6a8c1e3b5d7f9a02",
}


def secret_env() -> dict[str, str]:
    """The three secrets as REFERRAL_* environment variables for a served process."""
    return {f"REFERRAL_{name.upper()}": value for name, value in TEST_SECRETS.items()}


def pg_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def settings_for(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": url,
        "demo_mode": True,
        **TEST_SECRETS,
        # off in tests unless one turns it on (tests/integration/test_hostile_input.py)
        "rate_limit_per_second": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _pg_admin_dsn(url: str) -> str:
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


async def pg_execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(_pg_admin_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def pg_scalar(url: str, sql: str) -> Any:
    conn = await asyncpg.connect(_pg_admin_dsn(url))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def pg_database_url(base_url: str, name: str) -> str:
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


@dataclass
class Template:
    backend: str
    url: str
    keys: dict[str, str]
    path: Path | None = None

    async def clone(self, tmp_path: Path) -> str:
        if self.backend == "sqlite":
            assert self.path is not None
            target = tmp_path / f"t-{uuid.uuid4().hex[:8]}.db"
            shutil.copyfile(self.path, target)
            return f"sqlite+aiosqlite:///{target}"
        name = f"referral_t_{uuid.uuid4().hex[:12]}"
        template = make_url(self.url).database
        await pg_execute(pg_url() or "", f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return pg_database_url(pg_url() or "", name)

    async def drop_clone(self, url: str) -> None:
        if self.backend == "postgresql":
            name = make_url(url).database
            await pg_execute(pg_url() or "", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def build_template(backend: str, workdir: Path) -> Template:
    if backend == "sqlite":
        path = workdir / "template.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        base = pg_url()
        assert base is not None
        name = f"referral_tpl_{uuid.uuid4().hex[:10]}"
        await pg_execute(base, f'CREATE DATABASE "{name}"')
        url = pg_database_url(base, name)
        path = None
    await asyncio.to_thread(migrations.upgrade, url)
    settings = settings_for(url)
    database = Database(url)
    try:
        async with database.unit_of_work() as session:
            keys = await demo.load_demo(
                session, pepper=settings.secret("api_key_pepper"), seed=b"test-seed"
            )
    finally:
        await database.dispose()
    if path is not None:
        # fold the WAL into the main file so a plain file copy is complete
        import sqlite3

        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Template(backend, url, {k.name: k.key for k in keys}, path)


async def drop_template(template: Template) -> None:
    if template.backend == "postgresql":
        name = make_url(template.url).database
        await pg_execute(pg_url() or "", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def pg_connect(db_url: str) -> Any:
    """A raw asyncpg connection to the database of ``db_url`` (a second client in a test)."""
    import asyncpg

    u = make_url(db_url)
    return await asyncpg.connect(host=u.host, port=u.port, user=u.username, database=u.database)
