"""SQL for referrals, their routing attempts, events and numbers; idempotency records."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    IdempotencyRecord,
    Referral,
    ReferralCounter,
    ReferralEvent,
    RoutingAttempt,
)


async def next_sequence(session: AsyncSession, consortium_id: str, day: date) -> int:
    """Atomically take the next number of the day (an upsert that returns the new value)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(ReferralCounter)
        .values(consortium_id=consortium_id, day=day, last=1)
        .on_conflict_do_update(
            index_elements=[ReferralCounter.consortium_id, ReferralCounter.day],
            set_={"last": ReferralCounter.last + 1},
        )
        .returning(ReferralCounter.last)
    )
    return int((await session.execute(stmt)).scalar_one())


def add(session: AsyncSession, referral: Referral) -> None:
    session.add(referral)


def add_attempt(session: AsyncSession, **values: Any) -> None:
    session.add(RoutingAttempt(**values))


def add_event(session: AsyncSession, **values: Any) -> None:
    session.add(ReferralEvent(**values))


async def get(session: AsyncSession, referral_id: str) -> Referral | None:
    return await session.get(Referral, referral_id)


async def latest_attempt(session: AsyncSession, referral_id: str) -> RoutingAttempt | None:
    stmt = (
        select(RoutingAttempt)
        .where(RoutingAttempt.referral_id == referral_id)
        .order_by(RoutingAttempt.attempt.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


# --- idempotency -------------------------------------------------------------------------


async def claim_idempotency(
    session: AsyncSession,
    *,
    institution_id: str,
    key: str,
    request_hash: str,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Insert an in-flight record; False when one exists already."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(IdempotencyRecord)
        .values(
            institution_id=institution_id,
            key=key,
            request_hash=request_hash,
            state="in_flight",
            created_at=now,
            expires_at=expires_at,
        )
        .on_conflict_do_nothing(
            index_elements=[IdempotencyRecord.institution_id, IdempotencyRecord.key]
        )
    )
    result = await session.execute(stmt)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def get_idempotency(
    session: AsyncSession, institution_id: str, key: str
) -> IdempotencyRecord | None:
    stmt = select(IdempotencyRecord).where(
        IdempotencyRecord.institution_id == institution_id, IdempotencyRecord.key == key
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def take_over_stale_claim(
    session: AsyncSession, institution_id: str, key: str, older_than: datetime, now: datetime
) -> bool:
    result = await session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.institution_id == institution_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.state == "in_flight",
            IdempotencyRecord.created_at < older_than,
        )
        .values(created_at=now)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def complete_idempotency(
    session: AsyncSession,
    institution_id: str,
    key: str,
    *,
    status: int,
    headers: dict[str, str],
    body: bytes,
) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.institution_id == institution_id, IdempotencyRecord.key == key)
        .values(state="done", response_status=status, response_headers=headers, response_body=body)
    )


async def release_idempotency(session: AsyncSession, institution_id: str, key: str) -> None:
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.institution_id == institution_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.state == "in_flight",
        )
    )


async def purge_expired_idempotency(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
