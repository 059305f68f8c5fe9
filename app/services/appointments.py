"""Appointments in outpatient sessions (the sessions themselves: ``sessions``). Accepting an
outpatient or examination referral books a session place (the one named, or the earliest with
room) and answers its time and number; rescheduling moves it, cancelling the appointment, the
referral, a rejection or a no-show releases it; seeing the patient marks it attended. Every
booking and move is the ``booked`` event (``referral.booked``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.appointment_models import Appointment, OutpatientSession
from app.db.models import Referral
from app.db.repositories import appointments as repo
from app.domain.enums import CareType
from app.domain.errors import Conflict, InvalidInput
from app.domain.lifecycle import Action, HoldEffect
from app.services import events
from app.services.candidates import specialty_ancestors


class SessionFull(Conflict):
    kind = "session-full"


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
    codes = specialty_ancestors(row.hold_specialty_code or row.specialty_code)[
        ::-1
    ]  # specific first
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


async def on_transition(
    session: AsyncSession,
    row: Referral,
    action: Action,
    hold: HoldEffect,
    session_id: str | None,
    now: datetime,
) -> Appointment | None:
    """What a transition does to the appointment: accepting books one (returned), a step that
    gives the place back releases it (a no-show as such), seeing the patient marks it
    attended."""
    if action is Action.ACCEPT:
        return await book(session, row, session_id, now)
    if hold is HoldEffect.RELEASE:
        await release(session, row, "no_show" if action is Action.NO_SHOW else "cancelled", now)
    elif action is Action.SEE:
        await attended(session, row, now)
    return None


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
