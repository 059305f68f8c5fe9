"""SQL for episodes and follow-ups.

A follow-up carries copies of its down-referral's consortium, source (the hospital), current
target (the primary institution following the patient) and whether the referral is live
(accepted, arrived or in follow-up), so each overdue list is one range of a partial index
(``ix_follow_up_overdue_*``: open planned visits of live referrals by due date). They are set
when a follow-up is written (:func:`add_follow_up`) and kept by :func:`sync_follow_ups` in the
transaction of every change of the referral's target or state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Episode, FollowUp, Referral
from app.domain.lifecycle import Direction, Status

#: a down-referral in these states is followed up: its planned visits are owed
LIVE_STATES = (Status.ACCEPTED, Status.ARRIVED, Status.IN_FOLLOW_UP)


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


def add_follow_up(session: AsyncSession, referral: Referral, item: FollowUp) -> None:
    """Add a follow-up of ``referral`` with the referral's facts the overdue lists use."""
    item.referral_id = referral.id
    item.consortium_id = referral.consortium_id
    item.source_institution_id = referral.source_institution_id
    item.target_institution_id = referral.target_institution_id
    item.live = referral.status in LIVE_STATES
    session.add(item)


async def sync_follow_ups(session: AsyncSession, referral: Referral) -> None:
    """The follow-ups of a down-referral take its current target and state (one UPDATE by
    referral id; nothing for an up-referral, which has no follow-ups). Call it in the
    transaction that changes the referral's target or status."""
    if referral.direction != Direction.DOWN:
        return
    await session.execute(
        update(FollowUp)
        .where(FollowUp.referral_id == referral.id)
        .values(
            target_institution_id=referral.target_institution_id,
            live=referral.status in LIVE_STATES,
        )
    )


async def follow_ups_of(session: AsyncSession, referral_id: str) -> Sequence[FollowUp]:
    stmt = (
        select(FollowUp)
        .where(FollowUp.referral_id == referral_id)
        .order_by(FollowUp.created_at, FollowUp.id)
    )
    return (await session.execute(stmt)).scalars().all()


def overdue_statement(
    today: date,
    *,
    target_id: str | None,
    source_id: str | None,
    consortium_id: str | None,
    limit: int,
) -> Select[FollowUp, Referral]:
    """Planned visits due before ``today``, not done, of live down-referrals, oldest first.

    Every filter is on ``follow_up`` itself and matches one partial index
    (``live AND done_at IS NULL``) in list order, so the page is read from it and stops at
    the page size: the primary institution's list is ``ix_follow_up_overdue_target``, the
    hospital's ``_source``, the council's ``_consortium``, the admin's ``_all``; the page's
    referrals are then read by primary key.
    """
    stmt = (
        select(FollowUp, Referral)
        .join(Referral, Referral.id == FollowUp.referral_id)
        .where(
            FollowUp.live,
            FollowUp.done_at.is_(None),
            FollowUp.due_date < today,
            FollowUp.kind == "planned",
        )
        .order_by(FollowUp.due_date, FollowUp.id)
        .limit(limit)
    )
    if target_id is not None:
        stmt = stmt.where(FollowUp.target_institution_id == target_id)
    if source_id is not None:
        stmt = stmt.where(FollowUp.source_institution_id == source_id)
    if consortium_id is not None:
        stmt = stmt.where(FollowUp.consortium_id == consortium_id)
    return stmt


async def overdue(
    session: AsyncSession,
    today: date,
    *,
    target_id: str | None,
    source_id: str | None,
    consortium_id: str | None,
    limit: int,
) -> Sequence[tuple[FollowUp, Referral]]:
    stmt = overdue_statement(
        today, target_id=target_id, source_id=source_id, consortium_id=consortium_id, limit=limit
    )
    return [(f, r) for f, r in (await session.execute(stmt)).all()]
