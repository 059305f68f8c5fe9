"""SQL for green-channel pathways and milestones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Milestone, Pathway, PathwayTarget, Referral


async def list_all(session: AsyncSession) -> Sequence[Pathway]:
    return (await session.execute(select(Pathway).order_by(Pathway.code))).scalars().all()


async def get(session: AsyncSession, code: str) -> Pathway | None:
    return await session.get(Pathway, code)


def add(session: AsyncSession, pathway: Pathway) -> None:
    session.add(pathway)


async def own_targets(
    session: AsyncSession, consortium_id: str, codes: Sequence[str] | None = None
) -> dict[str, PathwayTarget]:
    """The consortium's own targets by pathway code (all, or those of ``codes``)."""
    stmt = select(PathwayTarget).where(PathwayTarget.consortium_id == consortium_id)
    if codes is not None:
        stmt = stmt.where(PathwayTarget.pathway_code.in_(list(codes)))
    rows = (await session.execute(stmt)).scalars().all()
    return {r.pathway_code: r for r in rows}


async def own_target_for_update(
    session: AsyncSession, code: str, consortium_id: str
) -> PathwayTarget | None:
    return await session.get(PathwayTarget, (code, consortium_id), with_for_update=True)


def add_own_target(session: AsyncSession, row: PathwayTarget) -> None:
    session.add(row)


async def milestones_of(session: AsyncSession, referral_id: str) -> Sequence[Milestone]:
    stmt = select(Milestone).where(Milestone.referral_id == referral_id).order_by(Milestone.at)
    return (await session.execute(stmt)).scalars().all()


async def get_milestone(session: AsyncSession, referral_id: str, code: str) -> Milestone | None:
    return await session.get(Milestone, (referral_id, code))


def add_milestone(session: AsyncSession, milestone: Milestone) -> None:
    session.add(milestone)


async def green_channel_rows(
    session: AsyncSession, consortium_id: str | None, start: datetime, end: datetime
) -> Sequence[tuple[Referral, Sequence[Milestone]]]:
    stmt = select(Referral).where(
        Referral.pathway_code.is_not(None),
        Referral.created_at >= start,
        Referral.created_at < end,
    )
    if consortium_id is not None:
        stmt = stmt.where(Referral.consortium_id == consortium_id)
    referrals = (await session.execute(stmt)).scalars().all()
    if not referrals:
        return []
    ms = (
        (
            await session.execute(
                select(Milestone).where(Milestone.referral_id.in_([r.id for r in referrals]))
            )
        )
        .scalars()
        .all()
    )
    by_referral: dict[str, list[Milestone]] = {}
    for m in ms:
        by_referral.setdefault(m.referral_id, []).append(m)
    return [(r, by_referral.get(r.id, [])) for r in referrals]
