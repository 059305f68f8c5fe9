"""Outpatient sessions pushed by a hospital's HIS (a specialty's morning, afternoon or evening
clinic, optionally a doctor or room, with the places offered to referrals): stored by the
HIS's session id with their bookings kept, as a census keeps holds; each day's outpatient slot
row (what routing reads and holds) becomes the sum of that day's sessions, and places freed go
to the waitlisted referrals first. Booking: ``appointments``."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.appointment_models import OutpatientSession
from app.db.base import utcnow
from app.db.models import SlotCapacity
from app.db.repositories import appointments as repo
from app.db.repositories import capacity as capacity_repo
from app.db.repositories import registry as registry_repo
from app.domain.capacity import apply_census, free
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.localtime import DEFAULT_TIME_ZONE, today, zone
from app.services import waitlist
from app.services.auth import Principal
from app.services.capacity import CLOCK_SKEW, institution_for_write

PERIODS = ("morning", "afternoon", "evening")


@dataclass(frozen=True, slots=True)
class SessionFigure:
    session_id: str  # the HIS's own id
    specialty_code: str
    day: date
    period: str
    start: time
    end: time
    doctor: str | None
    room: str | None
    total: int
    occupied: int


def _instant(day: date, at: time, tz: str) -> datetime:
    return datetime.combine(day, at, zone(tz)).astimezone(UTC)


def _check(figures: list[SessionFigure], local_today: date, settings: Settings) -> None:
    errors: list[dict[str, Any]] = []
    first = local_today - timedelta(days=settings.census_slot_days_back)
    last = local_today + timedelta(days=settings.census_slot_days_ahead)
    seen: set[str] = set()
    for i, f in enumerate(figures):
        loc: list[str | int] = ["body", "sessions", i]
        if f.session_id in seen:
            errors.append({"loc": [*loc, "session_id"], "msg": "listed twice"})
        seen.add(f.session_id)
        if not first <= f.day <= last:
            errors.append(
                {
                    "loc": [*loc, "day"],
                    "msg": f"must lie between today - {settings.census_slot_days_back} and "
                    f"today + {settings.census_slot_days_ahead} days (the consortium's local days)",
                }
            )
        if f.end <= f.start:
            errors.append({"loc": [*loc, "end"], "msg": "after start"})
    if errors:
        raise InvalidInput("The sessions have invalid entries.", errors[:50])


async def push_sessions(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    institution_id: str,
    *,
    as_of: datetime,
    figures: list[SessionFigure],
) -> list[OutpatientSession]:
    """Store the sessions (by the HIS's session id; bookings kept, as holds are by a census)
    and make each day's slot row the sum of its sessions; freed places go to the waitlist."""
    consortium_id = await institution_for_write(session, principal, institution_id)
    now = utcnow()
    if as_of > now + CLOCK_SKEW:
        raise InvalidInput(
            "The sessions' time is in the future.",
            [{"loc": ["body", "as_of"], "msg": "must not be in the future"}],
        )
    tz = await registry_repo.institution_time_zone(session, institution_id) or DEFAULT_TIME_ZONE
    _check(figures, today(now, tz), settings)
    codes = {f.specialty_code for f in figures}
    known = await registry_repo.existing_specialty_codes(session, codes)
    unknown = [
        {"loc": ["body", "sessions", i, "specialty_code"], "msg": "unknown specialty code"}
        for i, f in enumerate(figures)
        if f.specialty_code not in known
    ]
    if unknown:
        raise InvalidInput("The sessions have invalid entries.", unknown[:50])
    stored = await repo.lock_by_his_ids(session, institution_id, [f.session_id for f in figures])
    newest = max((s.as_of for s in stored.values() if s.as_of is not None), default=None)
    if newest is not None and newest > as_of:
        raise Conflict(
            "Newer sessions are already stored; these are out of date.",
            current_as_of=newest.isoformat(),
        )
    moved = [
        i
        for i, f in enumerate(figures)
        if f.session_id in stored
        and stored[f.session_id].booked
        and (stored[f.session_id].day, stored[f.session_id].specialty_code)
        != (f.day, f.specialty_code)
    ]
    if moved:
        raise Conflict(
            "A session with appointments keeps its day and specialty; reschedule them first.",
            sessions=moved,  # their indexes in the body
        )
    days: set[tuple[str, date]] = set()
    out: list[OutpatientSession] = []
    for f in figures:
        row = stored.get(f.session_id)
        if row is None:
            row = OutpatientSession(
                institution_id=institution_id, his_session_id=f.session_id, booked=0, next_number=0
            )
            session.add(row)
        else:
            days.add((row.specialty_code, row.day))
        census = apply_census(f.total, f.occupied, row.booked or 0)
        row.specialty_code, row.day, row.period = f.specialty_code, f.day, f.period
        row.starts_at, row.ends_at = _instant(f.day, f.start, tz), _instant(f.day, f.end, tz)
        row.doctor, row.room = f.doctor, f.room
        row.total, row.occupied = census.total, census.occupied
        row.as_of, row.updated_at = as_of, now
        days.add((f.specialty_code, f.day))
        out.append(row)
    await session.flush()
    freed = await _sync_days(session, institution_id, days, as_of, now)
    if consortium_id is not None and freed:
        await waitlist.retry_waitlist(session, settings, consortium_id, now, freed=freed)
    return out


async def _sync_days(
    session: AsyncSession,
    institution_id: str,
    days: set[tuple[str, date]],
    as_of: datetime,
    now: datetime,
) -> list[waitlist.FreedPlace]:
    """Each touched day's slot row: the sum of its sessions (its holds kept)."""
    if not days:
        return []
    first = min(d for _, d in days)
    sums: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    for s in await repo.sessions_of(session, institution_id, first, max(d for _, d in days)):
        if (s.specialty_code, s.day) in days:
            sums[(s.specialty_code, s.day)][0] += s.total
            sums[(s.specialty_code, s.day)][1] += s.occupied
    stored = await capacity_repo.lock_slots(session, institution_id, list(days))
    rows, freed = [], []
    for key in sorted(days):
        total, occupied = sums.get(key, [0, 0])
        before, reserve = stored.get(key) or (None, capacity_repo.Reserve())
        held = before[2] if before else 0
        census = apply_census(total, occupied, held)
        rows.append(
            {
                "institution_id": institution_id,
                "specialty_code": key[0],
                "day": key[1],
                "total": census.total,
                "occupied": census.occupied,
                "held": held,
                "overflow": census.overflow,
                "as_of": as_of,
                "updated_at": now,
                # the day's signed reserve is kept (within the sessions' places)
                "reserved_signed": min(reserve.reserved_signed, census.total),
                "release_at": reserve.release_at,
                "sources": None,
            }
        )
        now_free = free(census.total, census.occupied, held)
        if now_free > (free(*before[:3]) if before else 0):
            freed.append(waitlist.FreedPlace(institution_id, "slot", key[0], key[1], now_free))
    await capacity_repo.upsert_census(session, SlotCapacity, rows)
    return freed


async def listed(session: AsyncSession, institution_id: str, day: date | None) -> list[Any]:
    """The hospital's sessions from ``day`` (default: its today) on, with what is free."""
    tz = await registry_repo.institution_time_zone(session, institution_id) or DEFAULT_TIME_ZONE
    first = day or today(utcnow(), tz)
    return list(await repo.sessions_of(session, institution_id, first, day))


async def institution_exists(session: AsyncSession, institution_id: str) -> None:
    if await registry_repo.get_institution(session, institution_id) is None:
        raise NotFound("No institution with this id.")
