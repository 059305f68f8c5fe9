"""Outpatient sessions and appointments. A hospital's HIS pushes its half-day sessions (a
specialty's morning, afternoon or evening clinic, optionally a doctor or room, with the places
offered to referrals); the day's slot row that routing reads and holds becomes the sum of that
day's sessions. Accepting an outpatient or examination referral books a session place (the one
named, or the earliest with room) and answers its time and number; rescheduling moves it,
cancelling the appointment, the referral, a rejection or a no-show releases it; seeing the
patient marks it attended. Every booking and move is the ``booked`` event
(``referral.booked``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.appointment_models import Appointment, OutpatientSession
from app.db.base import utcnow
from app.db.models import Referral, SlotCapacity
from app.db.repositories import appointments as repo
from app.db.repositories import capacity as capacity_repo
from app.db.repositories import registry as registry_repo
from app.domain.capacity import apply_census, free
from app.domain.enums import CareType
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.localtime import DEFAULT_TIME_ZONE, today, zone
from app.services import events, waitlist
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


class SessionFull(Conflict):
    kind = "session-full"


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
        before = stored.get(key)
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
            }
        )
        now_free = free(census.total, census.occupied, held)
        if now_free > (free(*before[:3]) if before else 0):
            freed.append(waitlist.FreedPlace(institution_id, "slot", key[0], key[1], now_free))
    await capacity_repo.upsert_census(session, SlotCapacity, rows)
    return freed


def _ancestors(code: str) -> list[str]:
    parts = code.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))][::-1]  # most specific first


def appointment_time(s: OutpatientSession, number: int) -> datetime:
    """The session's start plus the number's share of its length (the last place no later
    than its end)."""
    length = s.ends_at - s.starts_at
    step = length / max(1, s.total)
    return min(s.starts_at + step * (number - 1), s.ends_at - step)


def _bookable(row: Referral) -> bool:
    return (
        row.kind in (None, "transfer")
        and row.care_type is not CareType.INPATIENT
        and row.wanted_day is not None
        and row.target_institution_id is not None
    )


async def book(
    session: AsyncSession,
    row: Referral,
    session_id: str | None,
    now: datetime,
    *,
    exclude: str | None = None,
) -> Appointment | None:
    """A place in the named session, else the earliest of the referral's day and specialty
    with room (not ``exclude``, the one it is moved from); None when the target keeps no
    sessions that day (nor was one named). A booked appointment is moved: the new place
    first, then the old one given back."""
    if not _bookable(row):
        if session_id is not None:
            raise InvalidInput(
                "This referral is not booked into sessions.",
                [{"loc": ["body", "session_id"], "msg": "outpatient and examination only"}],
            )
        return None
    assert row.target_institution_id is not None and row.wanted_day is not None
    codes = _ancestors(row.hold_specialty_code or row.specialty_code)
    options = await repo.day_sessions(session, row.target_institution_id, codes, row.wanted_day)
    options = sorted(options, key=lambda s: (codes.index(s.specialty_code), s.starts_at, s.id))
    if session_id is not None:
        options = [s for s in options if s.id == session_id]
        if not options:
            raise InvalidInput(
                "The session is not one of the referral's day and specialty at this hospital.",
                [{"loc": ["body", "session_id"], "msg": "not a session for this referral"}],
            )
    if not options:
        return None
    options = [s for s in options if s.id != exclude] or options
    for s in options:
        number = await repo.try_book(session, s.id)
        if number is None:
            continue
        appointment = await repo.appointment_of(session, row.id)
        if appointment is None:
            appointment = Appointment(referral_id=row.id)
            session.add(appointment)
        elif appointment.state == "booked":  # moved: the old place given back
            await repo.unbook(session, appointment.session_id)
        appointment.session_id, appointment.number = s.id, number
        appointment.appointment_at = appointment_time(s, number)
        appointment.state, appointment.booked_at, appointment.ended_at = "booked", now, None
        await session.flush()
        return appointment
    raise SessionFull(
        "No place is left in the session." if session_id else "Every session that day is full.",
        session_ids=[s.id for s in options],
    )


async def current(session: AsyncSession, row: Referral) -> Appointment | None:
    """The referral's booked appointment, if any."""
    appointment = await repo.appointment_of(session, row.id)
    return appointment if appointment is not None and appointment.state == "booked" else None


def record(session: AsyncSession, row: Referral, type_: str, actor: Any, now: datetime) -> None:
    """The ``booked`` or ``appointment_cancelled`` event (and its webhook)."""
    events.record(
        session,
        row,
        type_,
        row.status,
        at=now,
        actor_institution_id=actor.institution_id,
        actor_user=actor.user,
    )


async def release(session: AsyncSession, row: Referral, state: str, now: datetime) -> bool:
    """The booked place is given back (``state``: cancelled or no_show); False without one."""
    appointment = await repo.appointment_of(session, row.id)
    if appointment is None or appointment.state != "booked":
        return False
    await repo.unbook(session, appointment.session_id)
    appointment.state, appointment.ended_at = state, now
    return True


async def attended(session: AsyncSession, row: Referral, now: datetime) -> None:
    appointment = await repo.appointment_of(session, row.id)
    if appointment is not None and appointment.state == "booked":
        appointment.state, appointment.ended_at = "attended", now


async def listed(session: AsyncSession, institution_id: str, day: date | None) -> list[Any]:
    """The hospital's sessions from ``day`` (default: its today) on, with what is free."""
    tz = await registry_repo.institution_time_zone(session, institution_id) or DEFAULT_TIME_ZONE
    first = day or today(utcnow(), tz)
    return list(await repo.sessions_of(session, institution_id, first, day))


async def institution_exists(session: AsyncSession, institution_id: str) -> None:
    if await registry_repo.get_institution(session, institution_id) is None:
        raise NotFound("No institution with this id.")
