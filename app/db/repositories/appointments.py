"""SQL for outpatient sessions and appointments: a booking is one conditional UPDATE of the
session row (never read-then-write), so two patients never get one place."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.appointment_models import Appointment, OutpatientSession


async def sessions_of(
    session: AsyncSession, institution_id: str, first_day: date, last_day: date | None = None
) -> Sequence[OutpatientSession]:
    stmt = (
        select(OutpatientSession)
        .where(
            OutpatientSession.institution_id == institution_id, OutpatientSession.day >= first_day
        )
        .order_by(OutpatientSession.day, OutpatientSession.starts_at, OutpatientSession.id)
    )
    if last_day is not None:
        stmt = stmt.where(OutpatientSession.day <= last_day)
    return (await session.execute(stmt)).scalars().all()


async def lock_by_his_ids(
    session: AsyncSession, institution_id: str, his_ids: Sequence[str]
) -> dict[str, OutpatientSession]:
    if not his_ids:
        return {}
    stmt = (
        select(OutpatientSession)
        .where(
            OutpatientSession.institution_id == institution_id,
            OutpatientSession.his_session_id.in_(list(his_ids)),
        )
        .with_for_update()
    )
    return {s.his_session_id: s for s in (await session.execute(stmt)).scalars()}


async def day_sessions(
    session: AsyncSession, institution_id: str, codes: Sequence[str], day: date
) -> Sequence[OutpatientSession]:
    """The sessions of these specialty codes on ``day``, earliest first."""
    stmt = (
        select(OutpatientSession)
        .where(
            OutpatientSession.institution_id == institution_id,
            OutpatientSession.specialty_code.in_(list(codes)),
            OutpatientSession.day == day,
        )
        .order_by(OutpatientSession.starts_at, OutpatientSession.id)
    )
    return (await session.execute(stmt)).scalars().all()


async def try_book(session: AsyncSession, session_id: str) -> int | None:
    """Take one free place of the session; its number, or None when it is full."""
    s = OutpatientSession
    result = await session.execute(
        update(s)
        .where(s.id == session_id, s.total - s.occupied - s.booked > 0)
        .values(booked=s.booked + 1, next_number=s.next_number + 1)
        .returning(s.next_number)
        .execution_options(synchronize_session=False)
    )
    number = result.scalar_one_or_none()
    return int(number) if number is not None else None


async def unbook(session: AsyncSession, session_id: str) -> None:
    s = OutpatientSession
    await session.execute(
        update(s)
        .where(s.id == session_id, s.booked > 0)
        .values(booked=s.booked - 1)
        .execution_options(synchronize_session=False)
    )


async def get_session(session: AsyncSession, session_id: str) -> OutpatientSession | None:
    return await session.get(OutpatientSession, session_id)


async def appointment_of(session: AsyncSession, referral_id: str) -> Appointment | None:
    return await session.get(Appointment, referral_id)


async def booked_in(session: AsyncSession, session_ids: Sequence[str]) -> set[str]:
    """The sessions (of these) holding booked appointments."""
    if not session_ids:
        return set()
    stmt = (
        select(Appointment.session_id)
        .where(Appointment.session_id.in_(list(session_ids)), Appointment.state == "booked")
        .distinct()
    )
    return set((await session.execute(stmt)).scalars())
