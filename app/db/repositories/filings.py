"""SQL for insurance gateways and referral filings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.filing_models import InsuranceFiling, InsuranceGateway

PENDING, FILED, CANCEL_PENDING, CANCELLED = "pending", "filed", "cancel_pending", "cancelled"
SUPERSEDED, DEAD, MANUAL = "superseded", "dead", "manual"
FILE, CANCEL = "file", "cancel"


async def get_gateway(session: AsyncSession, consortium_id: str) -> InsuranceGateway | None:
    return await session.get(InsuranceGateway, consortium_id)


def add_gateway(session: AsyncSession, row: InsuranceGateway) -> None:
    session.add(row)


async def delete_gateway(session: AsyncSession, row: InsuranceGateway) -> None:
    await session.delete(row)


async def gateways_by_consortium(
    session: AsyncSession, consortium_ids: Sequence[str]
) -> dict[str, InsuranceGateway]:
    if not consortium_ids:
        return {}
    stmt = select(InsuranceGateway).where(InsuranceGateway.consortium_id.in_(consortium_ids))
    return {g.consortium_id: g for g in (await session.execute(stmt)).scalars()}


def add_filing(session: AsyncSession, row: InsuranceFiling) -> None:
    session.add(row)


async def filings_of(session: AsyncSession, referral_id: str) -> Sequence[InsuranceFiling]:
    """A referral's filings, oldest first."""
    stmt = (
        select(InsuranceFiling)
        .where(InsuranceFiling.referral_id == referral_id)
        .order_by(InsuranceFiling.generation)
    )
    return (await session.execute(stmt)).scalars().all()


async def get_filing(
    session: AsyncSession, referral_id: str, filing_id: str, *, lock: bool = False
) -> InsuranceFiling | None:
    stmt = select(InsuranceFiling).where(
        InsuranceFiling.id == filing_id, InsuranceFiling.referral_id == referral_id
    )
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> Sequence[InsuranceFiling]:
    """Due filings and cancellations, first in line for their referral, locked.

    A filing (2501) waits while an earlier filing of the same referral still has its
    cancellation (2502) to send, or may still be in flight at the gateway (superseded while
    its lease runs): the platform sees the old filing cancelled before the new one arrives.
    """
    f = InsuranceFiling
    earlier = aliased(InsuranceFiling)
    blocking = exists().where(
        earlier.referral_id == f.referral_id,
        earlier.generation < f.generation,
        or_(
            earlier.state == CANCEL_PENDING,
            and_(earlier.state == SUPERSEDED, earlier.next_attempt_at > now),
        ),
    )
    stmt = (
        select(f)
        .where(
            f.state.in_((PENDING, CANCEL_PENDING)),
            f.next_attempt_at <= now,
            or_(f.state == CANCEL_PENDING, ~blocking),
        )
        .order_by(f.next_attempt_at, f.generation)
        .limit(limit)
        .with_for_update(skip_locked=True, of=f)
    )
    return (await session.execute(stmt)).scalars().all()


async def get_for_update(session: AsyncSession, filing_id: str) -> InsuranceFiling | None:
    stmt = select(InsuranceFiling).where(InsuranceFiling.id == filing_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()
