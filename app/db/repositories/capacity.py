"""SQL for capacity: census rows, history, and the hold as one conditional UPDATE."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import BedCapacity, CapacityChange, SlotCapacity

CapacityRow = BedCapacity | SlotCapacity


async def beds_of(session: AsyncSession, institution_id: str) -> Sequence[BedCapacity]:
    stmt = (
        select(BedCapacity)
        .where(BedCapacity.institution_id == institution_id)
        .order_by(BedCapacity.specialty_code)
    )
    return (await session.execute(stmt)).scalars().all()


async def slots_of(
    session: AsyncSession, institution_id: str, from_day: date
) -> Sequence[SlotCapacity]:
    stmt = (
        select(SlotCapacity)
        .where(SlotCapacity.institution_id == institution_id, SlotCapacity.day >= from_day)
        .order_by(SlotCapacity.day, SlotCapacity.specialty_code)
    )
    return (await session.execute(stmt)).scalars().all()


async def bed_row(
    session: AsyncSession, institution_id: str, specialty: str, *, for_update: bool = False
) -> BedCapacity | None:
    stmt = select(BedCapacity).where(
        BedCapacity.institution_id == institution_id, BedCapacity.specialty_code == specialty
    )
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def slot_row(
    session: AsyncSession,
    institution_id: str,
    specialty: str,
    day: date,
    *,
    for_update: bool = False,
) -> SlotCapacity | None:
    stmt = select(SlotCapacity).where(
        SlotCapacity.institution_id == institution_id,
        SlotCapacity.specialty_code == specialty,
        SlotCapacity.day == day,
    )
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


def add(session: AsyncSession, row: CapacityRow) -> None:
    session.add(row)


def record_change(session: AsyncSession, **values: Any) -> None:
    session.add(CapacityChange(**values))


async def candidate_beds(
    session: AsyncSession, institution_ids: Iterable[str], specialties: Iterable[str]
) -> Sequence[tuple[str, str, int, int, int, datetime | None]]:
    """(institution, specialty, total, occupied, held, as_of) for the given codes."""
    stmt = select(
        BedCapacity.institution_id,
        BedCapacity.specialty_code,
        BedCapacity.total,
        BedCapacity.occupied,
        BedCapacity.held,
        BedCapacity.as_of,
    ).where(
        BedCapacity.institution_id.in_(list(institution_ids)),
        BedCapacity.specialty_code.in_(list(specialties)),
    )
    return [tuple(r) for r in (await session.execute(stmt)).all()]  # type: ignore[misc]


async def candidate_slots(
    session: AsyncSession, institution_ids: Iterable[str], specialties: Iterable[str], day: date
) -> Sequence[tuple[str, str, int, int, int, datetime | None]]:
    stmt = select(
        SlotCapacity.institution_id,
        SlotCapacity.specialty_code,
        SlotCapacity.total,
        SlotCapacity.occupied,
        SlotCapacity.held,
        SlotCapacity.as_of,
    ).where(
        SlotCapacity.institution_id.in_(list(institution_ids)),
        SlotCapacity.specialty_code.in_(list(specialties)),
        SlotCapacity.day == day,
    )
    return [tuple(r) for r in (await session.execute(stmt)).all()]  # type: ignore[misc]


async def _try_hold(session: AsyncSession, model: type[CapacityRow], *where: Any) -> bool:
    """Take one free place: a single conditional UPDATE, never read-then-write."""
    result = await session.execute(
        update(model)
        .where(*where, model.total - model.occupied - model.held > 0)
        .values(held=model.held + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def try_hold_bed(session: AsyncSession, institution_id: str, specialty: str) -> bool:
    return await _try_hold(
        session,
        BedCapacity,
        BedCapacity.institution_id == institution_id,
        BedCapacity.specialty_code == specialty,
    )


async def try_hold_slot(
    session: AsyncSession, institution_id: str, specialty: str, day: date
) -> bool:
    return await _try_hold(
        session,
        SlotCapacity,
        SlotCapacity.institution_id == institution_id,
        SlotCapacity.specialty_code == specialty,
        SlotCapacity.day == day,
    )


def _hold_row(kind: str) -> type[CapacityRow]:
    return BedCapacity if kind == "bed" else SlotCapacity


def _hold_where(kind: str, institution_id: str, specialty: str, day: date | None) -> list[Any]:
    model = _hold_row(kind)
    where = [
        model.institution_id == institution_id,
        model.specialty_code == specialty,
        model.held > 0,
    ]
    if kind != "bed":
        where.append(SlotCapacity.day == day)
    return where


async def release_hold(
    session: AsyncSession, kind: str, institution_id: str, specialty: str, day: date | None
) -> bool:
    model = _hold_row(kind)
    result = await session.execute(
        update(model)
        .where(*_hold_where(kind, institution_id, specialty, day))
        .values(held=model.held - 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def occupy_hold(
    session: AsyncSession, kind: str, institution_id: str, specialty: str, day: date | None
) -> bool:
    """The held place becomes an occupied one (admission, or an outpatient visit)."""
    model = _hold_row(kind)
    result = await session.execute(
        update(model)
        .where(*_hold_where(kind, institution_id, specialty, day))
        .values(held=model.held - 1, occupied=model.occupied + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
