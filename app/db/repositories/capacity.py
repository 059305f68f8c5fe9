"""SQL for capacity: census rows, history, and the hold as one conditional UPDATE."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.base import utcnow
from app.db.models import BedCapacity, CapacityChange, SlotCapacity
from app.db.repositories import remote as remote_repo
from app.domain.capacity import CONSORTIUM_POOL, SIGNED_POOL, unused_reserve
from app.domain.remote import REMOTE_HOLD_KINDS

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


@dataclass(frozen=True, slots=True)
class Reserve:
    """A slot row's signed reserve: kept, held and used from it, and its release time."""

    reserved_signed: int = 0
    held_signed: int = 0
    used_signed: int = 0
    release_at: datetime | None = None

    def unused(self, now: datetime) -> int:
        return unused_reserve(
            self.reserved_signed, self.held_signed, self.used_signed, self.release_at, now
        )


def unused_reserve_sql(row: Any, now: Any) -> ColumnElement[Any]:
    """:func:`app.domain.capacity.unused_reserve` as SQL over a slot row (``now`` a value
    or a bound parameter)."""
    left = row.reserved_signed - row.held_signed - row.used_signed
    kept = or_(row.release_at.is_(None), row.release_at > now)
    return case((and_(left > 0, kept), left), else_=0)


StoredFigures = tuple[int, int, int, int, datetime | None]
"""(total, occupied, held, overflow, as_of) of a stored census row."""


async def lock_beds(
    session: AsyncSession, institution_id: str, specialties: Iterable[str]
) -> dict[str, StoredFigures]:
    """The stored bed rows of these specialties, locked until the transaction ends."""
    m = BedCapacity
    stmt = (
        select(m.specialty_code, m.total, m.occupied, m.held, m.overflow, m.as_of)
        .where(m.institution_id == institution_id, m.specialty_code.in_(list(specialties)))
        .with_for_update()
    )
    return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in (await session.execute(stmt)).all()}


async def lock_slots(
    session: AsyncSession, institution_id: str, keys: Iterable[tuple[str, date]]
) -> dict[tuple[str, date], tuple[StoredFigures, Reserve]]:
    """The stored slot rows of these (specialty, day) keys, locked until the transaction ends,
    with their signed reserve."""
    wanted = set(keys)
    if not wanted:
        return {}
    days = [d for _, d in wanted]
    m = SlotCapacity
    stmt = (
        select(
            m.specialty_code,
            m.day,
            m.total,
            m.occupied,
            m.held,
            m.overflow,
            m.as_of,
            m.reserved_signed,
            m.held_signed,
            m.used_signed,
            m.release_at,
        )
        .where(
            m.institution_id == institution_id,
            m.specialty_code.in_({c for c, _ in wanted}),
            m.day >= min(days),
            m.day <= max(days),
        )
        .with_for_update()
    )
    rows = (await session.execute(stmt)).all()
    return {
        (r[0], r[1]): ((r[2], r[3], r[4], r[5], r[6]), Reserve(r[7], r[8], r[9], r[10]))
        for r in rows
        if (r[0], r[1]) in wanted
    }


_BED_COLUMNS = ("total", "occupied", "overflow", "as_of", "updated_at")
#: what a census sets; holds (and the signed reserve's holds and uses) stay
_CENSUS_COLUMNS = {
    False: _BED_COLUMNS,
    True: (*_BED_COLUMNS, "reserved_signed", "release_at", "sources"),
}


async def upsert_census(
    session: AsyncSession, model: type[CapacityRow], rows: Sequence[dict[str, Any]]
) -> None:
    """All rows of one table in one statement (executemany): new rows are inserted with no
    holds, stored ones get the new figures and keep their holds."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_(model)
    keys = ["institution_id", "specialty_code"] + (["day"] if model is SlotCapacity else [])
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={c: stmt.excluded[c] for c in _CENSUS_COLUMNS[model is SlotCapacity]},
    )
    await session.execute(stmt, list(rows))


async def record_changes(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(CapacityChange), list(rows))


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
) -> Sequence[tuple[str, str, int, int, int, datetime | None, Reserve]]:
    """(institution, specialty, total, occupied, held, as_of, reserve) for the given codes."""
    m = SlotCapacity
    stmt = select(
        m.institution_id,
        m.specialty_code,
        m.total,
        m.occupied,
        m.held,
        m.as_of,
        m.reserved_signed,
        m.held_signed,
        m.used_signed,
        m.release_at,
    ).where(
        m.institution_id.in_(list(institution_ids)),
        m.specialty_code.in_(list(specialties)),
        m.day == day,
    )
    return [
        (r[0], r[1], r[2], r[3], r[4], r[5], Reserve(r[6], r[7], r[8], r[9]))
        for r in (await session.execute(stmt)).all()
    ]


@dataclass(frozen=True, slots=True)
class BestRow:
    """The most specific capacity row of an institution among some specialty codes, as SQL
    over outer joins (``joins``: join target and ON clause): what :func:`candidate_beds` and
    :func:`candidate_slots` give, reduced as routing reduces them (03.04 before 03)."""

    joins: tuple[tuple[Any, ColumnElement[bool]], ...]
    present: ColumnElement[bool]
    total: ColumnElement[Any]
    occupied: ColumnElement[Any]
    held: ColumnElement[Any]
    as_of: ColumnElement[Any]
    #: slots: the unused signed reserve at ``now`` (0 for beds)
    unused: ColumnElement[Any]


def most_specific_row(
    institution_id: Any, codes: Sequence[Any], day: Any | None, now: Any | None = None
) -> BestRow:
    """``codes`` (values or bound parameters) from the general to the specific (``03``,
    ``03.04``); ``day`` None: beds, else that day's outpatient slots (and with ``now`` their
    unused signed reserve). One outer join per code (a primary-key lookup each)."""
    joins: list[tuple[Any, ColumnElement[bool]]] = []
    for i, code in enumerate(codes):
        row: Any = aliased(BedCapacity if day is None else SlotCapacity, name=f"capacity_{i}")
        on = and_(row.institution_id == institution_id, row.specialty_code == code)
        if day is not None:
            on = and_(on, row.day == day)
        joins.append((row, on))
    deepest_first = [row for row, _ in reversed(joins)]

    def pick(column: str) -> ColumnElement[Any]:
        return case(*((r.institution_id.is_not(None), getattr(r, column)) for r in deepest_first))

    return BestRow(
        joins=tuple(joins),
        present=or_(*(r.institution_id.is_not(None) for r in deepest_first)),
        total=pick("total"),
        occupied=pick("occupied"),
        held=pick("held"),
        as_of=pick("as_of"),
        unused=(
            case(
                *(
                    (r.institution_id.is_not(None), unused_reserve_sql(r, now))
                    for r in deepest_first
                )
            )
            if day is not None and now is not None
            else literal(0)
        ),
    )


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
    session: AsyncSession,
    institution_id: str,
    specialty: str,
    day: date,
    *,
    pool: str = CONSORTIUM_POOL,
    now: datetime | None = None,
) -> bool:
    """One conditional UPDATE. ``pool`` signed: a place of the signed reserve, while it is
    kept and has one left; consortium: a free place outside the unused signed reserve (all of
    them once it is released)."""
    m = SlotCapacity
    at = now or utcnow()
    where = [m.institution_id == institution_id, m.specialty_code == specialty, m.day == day]
    values: dict[str, Any] = {"held": m.held + 1}
    if pool == SIGNED_POOL:
        where += [
            m.total - m.occupied - m.held > 0,
            m.reserved_signed - m.held_signed - m.used_signed > 0,
            or_(m.release_at.is_(None), m.release_at > at),
        ]
        values["held_signed"] = m.held_signed + 1
    else:
        where.append(m.total - m.occupied - m.held - unused_reserve_sql(m, at) > 0)
    result = await session.execute(
        update(m).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


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


def _signed_back() -> Any:
    """held_signed less the hold given back (never below zero)."""
    m = SlotCapacity
    return case((m.held_signed > 0, m.held_signed - 1), else_=0)


async def release_hold(
    session: AsyncSession,
    kind: str,
    institution_id: str,
    specialty: str,
    day: date | None,
    pool: str | None = None,
) -> bool:
    """Give the held place back; a slot hold from the signed reserve (``pool``) to it."""
    if kind in REMOTE_HOLD_KINDS:  # a reader's read or consult slot
        return await remote_repo.give_back(
            session, kind, institution_id, specialty, day, used=False
        )
    model = _hold_row(kind)
    values: dict[str, Any] = {"held": model.held - 1}
    if kind != "bed" and pool == SIGNED_POOL:
        values["held_signed"] = _signed_back()
    result = await session.execute(
        update(model)
        .where(*_hold_where(kind, institution_id, specialty, day))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def occupy_hold(
    session: AsyncSession,
    kind: str,
    institution_id: str,
    specialty: str,
    day: date | None,
    pool: str | None = None,
) -> bool:
    """The held place becomes an occupied one (admission, an outpatient visit, a report); a
    slot hold from the signed reserve (``pool``) counts as used from it."""
    if kind in REMOTE_HOLD_KINDS:
        return await remote_repo.give_back(session, kind, institution_id, specialty, day, used=True)
    model = _hold_row(kind)
    values: dict[str, Any] = {"held": model.held - 1, "occupied": model.occupied + 1}
    if kind != "bed" and pool == SIGNED_POOL:
        values["held_signed"] = _signed_back()
        values["used_signed"] = SlotCapacity.used_signed + 1
    result = await session.execute(
        update(model)
        .where(*_hold_where(kind, institution_id, specialty, day))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
