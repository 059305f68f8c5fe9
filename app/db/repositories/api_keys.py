from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ApiKey
from app.domain.enums import Role


async def get_by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    result = await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))
    return result.scalar_one_or_none()


async def add(
    session: AsyncSession,
    *,
    prefix: str,
    key_hash: str,
    name: str,
    role: Role,
    institution_id: str | None,
    consortium_id: str | None,
) -> ApiKey:
    row = ApiKey(
        prefix=prefix,
        key_hash=key_hash,
        name=name,
        role=role,
        institution_id=institution_id,
        consortium_id=consortium_id,
    )
    session.add(row)
    await session.flush()
    return row
