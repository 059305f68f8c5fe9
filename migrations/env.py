"""Alembic environment: async engine, URL from settings unless the caller set one."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import String
from sqlalchemy.engine import Connection

from app.config import get_settings
from app.db import models
from app.db.base import Base
from app.db.session import create_engine

config = context.config
target_metadata = Base.metadata
assert models.Institution.__tablename__  # models register their tables on Base


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    return str(url or get_settings().database_url)


def _compare_type(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: Any,
    metadata_type: Any,
) -> bool | None:
    """SQLite keeps no VARCHAR lengths (it never enforces them), and widening one there would
    mean recreating the table: a length-only difference is none on SQLite. Otherwise the
    default comparison (None)."""
    declared = getattr(metadata_type, "impl", metadata_type)  # a TypeDecorator's own type
    if (
        context.dialect.name == "sqlite"
        and type(inspected_type).__name__ == "VARCHAR"
        and type(declared) is String  # a VARCHAR of another length, not Text or an enum
    ):
        return False
    return None


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=_compare_type,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url(), create=True)  # the one place a SQLite file may be made
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async())
