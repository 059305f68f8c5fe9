"""SQL for episodes and follow-ups."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Episode, FollowUp, Referral


async def get(session: AsyncSession, episode_id: str) -> Episode | None:
    return await session.get(Episode, episode_id)


def add(session: AsyncSession, episode: Episode) -> None:
    session.add(episode)


async def referrals_of(session: AsyncSession, episode_id: str) -> Sequence[Referral]:
    stmt = (
        select(Referral)
        .where(Referral.episode_id == episode_id)
        .order_by(Referral.created_at, Referral.id)
    )
    return (await session.execute(stmt)).scalars().all()


def add_follow_up(session: AsyncSession, item: FollowUp) -> None:
    session.add(item)


async def follow_ups_of(session: AsyncSession, referral_id: str) -> Sequence[FollowUp]:
    stmt = (
        select(FollowUp)
        .where(FollowUp.referral_id == referral_id)
        .order_by(FollowUp.created_at, FollowUp.id)
    )
    return (await session.execute(stmt)).scalars().all()


async def overdue(
    session: AsyncSession,
    today: date,
    *,
    target_id: str | None,
    source_id: str | None,
    consortium_id: str | None,
    limit: int,
) -> Sequence[tuple[FollowUp, Referral]]:
    stmt = (
        select(FollowUp, Referral)
        .join(Referral, Referral.id == FollowUp.referral_id)
        .where(
            FollowUp.kind == "planned",
            FollowUp.done_at.is_(None),
            FollowUp.due_date < today,
            Referral.status.in_(("accepted", "arrived", "in_follow_up")),
        )
        .order_by(FollowUp.due_date, FollowUp.id)
        .limit(limit)
    )
    if target_id is not None:
        stmt = stmt.where(Referral.target_institution_id == target_id)
    if source_id is not None:
        stmt = stmt.where(Referral.source_institution_id == source_id)
    if consortium_id is not None:
        stmt = stmt.where(Referral.consortium_id == consortium_id)
    return [(f, r) for f, r in (await session.execute(stmt)).all()]
