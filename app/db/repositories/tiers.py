"""SQL for reimbursement policies and tier records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Institution, Referral, ReimbursementPolicy, TierRecord
from app.db.statements import built


async def policies_for(
    session: AsyncSession, consortium_id: str | None
) -> Sequence[ReimbursementPolicy]:
    """Policies of this consortium and those that apply everywhere (no consortium)."""
    stmt = select(ReimbursementPolicy).order_by(
        ReimbursementPolicy.code, ReimbursementPolicy.version
    )
    if consortium_id is not None:
        stmt = stmt.where(
            or_(
                ReimbursementPolicy.consortium_id == consortium_id,
                ReimbursementPolicy.consortium_id.is_(None),
            )
        )
    return (await session.execute(stmt)).scalars().all()


def _policies_where(stmt: Any, consortium_id: str | None) -> Any:
    if consortium_id is None:
        return stmt
    return stmt.where(
        or_(
            ReimbursementPolicy.consortium_id == bindparam("consortium_id"),
            ReimbursementPolicy.consortium_id.is_(None),
        )
    )


async def policy_ids_for(session: AsyncSession, consortium_id: str | None) -> list[str]:
    """The ids of :func:`policies_for`, in its order."""
    stmt = built(
        ("policy_ids_for", consortium_id is None),
        lambda: _policies_where(
            select(ReimbursementPolicy.__table__.c.id).order_by(
                ReimbursementPolicy.__table__.c.code, ReimbursementPolicy.__table__.c.version
            ),
            consortium_id,
        ),
    )
    params = {} if consortium_id is None else {"consortium_id": consortium_id}
    return list((await session.execute(stmt, params)).scalars().all())


async def policies_by_id(
    session: AsyncSession, ids: Sequence[str]
) -> Sequence[ReimbursementPolicy]:
    stmt = select(ReimbursementPolicy).where(ReimbursementPolicy.id.in_(list(ids)))
    return (await session.execute(stmt)).scalars().all()


async def max_version(session: AsyncSession, code: str) -> int:
    stmt = select(func.max(ReimbursementPolicy.version)).where(ReimbursementPolicy.code == code)
    return int((await session.execute(stmt)).scalar_one() or 0)


async def policy_version(
    session: AsyncSession, code: str, version: int
) -> ReimbursementPolicy | None:
    stmt = select(ReimbursementPolicy).where(
        ReimbursementPolicy.code == code, ReimbursementPolicy.version == version
    )
    return (await session.execute(stmt)).scalars().first()


def add_policy(session: AsyncSession, row: ReimbursementPolicy) -> None:
    session.add(row)


def add_record(session: AsyncSession, row: TierRecord) -> None:
    session.add(row)


async def records_of(session: AsyncSession, referral_id: str) -> Sequence[TierRecord]:
    stmt = (
        select(TierRecord)
        .where(TierRecord.referral_id == referral_id)
        .order_by(TierRecord.decided_at, TierRecord.id)
    )
    return (await session.execute(stmt)).scalars().all()


async def latest_of(session: AsyncSession, referral_id: str) -> TierRecord | None:
    records = await records_of(session, referral_id)
    return records[-1] if records else None


async def deductible_paid_in_episode(
    session: AsyncSession, episode_id: str | None, referral_id: str
) -> bool:
    """An earlier referral of the episode reached care (admitted, seen, in follow-up, done)."""
    if episode_id is None:
        return False
    stmt = select(func.count()).where(
        Referral.episode_id == episode_id,
        Referral.id != referral_id,
        Referral.status.in_(("admitted", "seen", "in_follow_up", "completed")),
    )
    return int((await session.execute(stmt)).scalar_one()) > 0


async def tier_listing(
    session: AsyncSession, consortium_id: str | None, start: datetime, end: datetime, limit: int
) -> Sequence[tuple[TierRecord, Referral, str | None]]:
    """Tier records in the period with their referral and the target's designated-institution
    code (None when the target has none or no target was recorded)."""
    stmt = (
        select(TierRecord, Referral, Institution.insurance_code)
        .join(Referral, Referral.id == TierRecord.referral_id)
        .outerjoin(Institution, Institution.id == TierRecord.target_institution_id)
        .where(TierRecord.decided_at >= start, TierRecord.decided_at < end)
        .order_by(TierRecord.decided_at, TierRecord.id)
        .limit(limit)
    )
    if consortium_id is not None:
        stmt = stmt.where(Referral.consortium_id == consortium_id)
    return [(t, r, code) for t, r, code in (await session.execute(stmt)).all()]
