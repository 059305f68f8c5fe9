"""Census updates from hospital HIS systems, and reading capacity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.base import utcnow
from app.db.models import BedCapacity, SlotCapacity
from app.db.repositories import capacity as repo
from app.db.repositories import registry as registry_repo
from app.domain.capacity import apply_census, free
from app.domain.enums import Role
from app.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.domain.localtime import DEFAULT_TIME_ZONE, today
from app.services import lifecycle
from app.services.auth import Principal

CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class BedFigure:
    specialty_code: str
    total: int
    occupied: int


@dataclass(frozen=True, slots=True)
class SlotFigure:
    specialty_code: str
    day: date
    total: int
    occupied: int


@dataclass(frozen=True, slots=True)
class CapacityItem:
    kind: str
    specialty_code: str
    day: date | None
    total: int
    occupied: int
    held: int
    free: int
    overflow: int
    as_of: datetime | None
    stale: bool


def _item(row: BedCapacity | SlotCapacity, now: datetime, stale_after: timedelta) -> CapacityItem:
    is_slot = isinstance(row, SlotCapacity)
    return CapacityItem(
        kind="slots" if is_slot else "beds",
        specialty_code=row.specialty_code,
        day=row.day if isinstance(row, SlotCapacity) else None,
        total=row.total,
        occupied=row.occupied,
        held=row.held,
        free=free(row.total, row.occupied, row.held),
        overflow=row.overflow,
        as_of=row.as_of,
        stale=row.as_of is None or now - row.as_of > stale_after,
    )


async def _institution_for_write(
    session: AsyncSession, principal: Principal, institution_id: str
) -> str | None:
    """Check the caller may report this census; returns the institution's consortium."""
    inst = await registry_repo.get_institution(session, institution_id)
    if inst is None:
        raise NotFound("No institution with this id.")
    allowed = (
        principal.role is Role.ADMIN
        or (principal.role is Role.COUNCIL and principal.consortium_id == inst.consortium_id)
        or (principal.role is Role.HOSPITAL and principal.institution_id == institution_id)
    )
    if allowed:
        return inst.consortium_id
    raise Forbidden("Only the hospital itself, its council or an admin may report its census.")


async def read(
    session: AsyncSession, institution_id: str, *, stale_after: timedelta
) -> list[CapacityItem]:
    if await registry_repo.get_institution(session, institution_id) is None:
        raise NotFound("No institution with this id.")
    now = utcnow()
    zone = await registry_repo.institution_time_zone(session, institution_id)
    rows: list[BedCapacity | SlotCapacity] = [*await repo.beds_of(session, institution_id)]
    # slot days are the consortium's days: from today there on
    rows += await repo.slots_of(session, institution_id, today(now, zone or DEFAULT_TIME_ZONE))
    return [_item(r, now, stale_after) for r in rows]


async def report_census(
    session: AsyncSession,
    principal: Principal,
    institution_id: str,
    *,
    as_of: datetime,
    beds: list[BedFigure],
    slots: list[SlotFigure],
    settings: Settings,
) -> list[CapacityItem]:
    """Store the census; if places became free, waitlisted referrals try again."""
    stale_after = settings.census_stale_after
    consortium_id = await _institution_for_write(session, principal, institution_id)
    now = utcnow()
    if as_of > now + CLOCK_SKEW:
        raise InvalidInput(
            "The census time is in the future.",
            [{"loc": ["body", "as_of"], "msg": "must not be in the future"}],
        )
    codes = {b.specialty_code for b in beds} | {s.specialty_code for s in slots}
    unknown = codes - await registry_repo.existing_specialty_codes(session, codes)
    if unknown:
        raise InvalidInput(
            "Unknown specialty code.",
            [
                {"loc": ["body", "specialty_code"], "msg": f"unknown specialty code {c}"}
                for c in sorted(unknown)
            ],
        )
    out: list[CapacityItem] = []
    figures: list[BedFigure | SlotFigure] = [*beds, *slots]
    for fig in figures:
        row: BedCapacity | SlotCapacity | None
        if isinstance(fig, SlotFigure):
            row = await repo.slot_row(
                session, institution_id, fig.specialty_code, fig.day, for_update=True
            )
        else:
            row = await repo.bed_row(session, institution_id, fig.specialty_code, for_update=True)
        if row is not None and row.as_of is not None and row.as_of > as_of:
            raise Conflict(
                "A newer census is already stored; this one is out of date.",
                current_as_of=row.as_of.isoformat(),
            )
        before: dict[str, Any] | None = None
        if row is None:
            if isinstance(fig, SlotFigure):
                row = SlotCapacity(
                    institution_id=institution_id,
                    specialty_code=fig.specialty_code,
                    day=fig.day,
                    held=0,
                )
            else:
                row = BedCapacity(
                    institution_id=institution_id, specialty_code=fig.specialty_code, held=0
                )
            repo.add(session, row)
        else:
            before = {
                "total": row.total,
                "occupied": row.occupied,
                "held": row.held,
                "overflow": row.overflow,
            }
        result = apply_census(fig.total, fig.occupied, row.held or 0)
        row.total, row.occupied, row.overflow = result.total, result.occupied, result.overflow
        row.as_of = as_of
        row.updated_at = now
        repo.record_change(
            session,
            institution_id=institution_id,
            kind="slots" if isinstance(fig, SlotFigure) else "beds",
            specialty_code=fig.specialty_code,
            day=fig.day if isinstance(fig, SlotFigure) else None,
            before=before,
            after={
                "total": row.total,
                "occupied": row.occupied,
                "held": row.held or 0,
                "overflow": row.overflow,
                "reported_total": fig.total,
                "reported_occupied": fig.occupied,
            },
            as_of=as_of,
            actor_key_id=principal.key_id,
            actor_institution_id=principal.institution_id,
        )
        await session.flush()
        out.append(_item(row, now, stale_after))
    if consortium_id is not None and any(item.free > 0 for item in out):
        await lifecycle.retry_waitlist(session, settings, consortium_id, now)
    return out
