"""Outpatient sessions (pushed by the hospital's HIS) and moving or cancelling an accepted
referral's appointment; booking itself happens on `accept`."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import ContextDep, PrincipalDep, SessionDep, SettingsDep
from app.api.errors import problem_responses
from app.api.presenters import ETAG_HEADER, referral_out
from app.api.routes.lifecycle import IfMatch, UserId
from app.api.schemas.appointments import RescheduleIn, SessionListOut, SessionOut, SessionsIn
from app.api.schemas.referrals import ReferralOut
from app.db.appointment_models import OutpatientSession
from app.domain.capacity import free
from app.services import rebooking, sessions

router = APIRouter(prefix="/v1", tags=["appointments"], responses=problem_responses(401, 422, 429))


def _out(institution_id: str, rows: list[OutpatientSession]) -> SessionListOut:
    return SessionListOut(
        institution_id=institution_id,
        items=[
            SessionOut(
                id=s.id,
                session_id=s.his_session_id,
                specialty_code=s.specialty_code,
                day=s.day,
                period=s.period,
                starts_at=s.starts_at,
                ends_at=s.ends_at,
                doctor=s.doctor,
                room=s.room,
                total=s.total,
                occupied=s.occupied,
                booked=s.booked,
                free=free(s.total, s.occupied, s.booked),
                as_of=s.as_of,
            )
            for s in rows
        ],
    )


def _hhmm(value: str) -> time:
    return datetime.strptime(value, "%H:%M").time()


@router.get(
    "/institutions/{institution_id}/sessions",
    response_model=SessionListOut,
    responses=problem_responses(404),
)
async def list_sessions(
    institution_id: str,
    session: SessionDep,
    _: PrincipalDep,
    day: Annotated[
        date | None, Query(description="Only this local day (default: from today).")
    ] = None,
) -> SessionListOut:
    """The hospital's outpatient sessions with their places: total, taken otherwise, booked
    through referrals, free."""
    await sessions.institution_exists(session, institution_id)
    return _out(institution_id, await sessions.listed(session, institution_id, day))


@router.put(
    "/institutions/{institution_id}/sessions",
    response_model=SessionListOut,
    responses=problem_responses(403, 404, 409),
)
async def put_sessions(
    institution_id: str,
    body: SessionsIn,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> SessionListOut:
    """Push sessions (by the HIS's session id; bookings kept): each day's outpatient slots
    become the sum of its sessions."""
    rows = await sessions.push_sessions(
        session,
        principal,
        settings,
        institution_id,
        as_of=body.as_of,
        figures=[
            sessions.SessionFigure(
                s.session_id,
                s.specialty_code,
                s.day,
                s.period,
                _hhmm(s.start),
                _hhmm(s.end),
                s.doctor,
                s.room,
                s.total,
                s.occupied,
            )
            for s in body.sessions
        ],
    )
    return _out(institution_id, rows)


_REFERRAL = {**problem_responses(403, 404, 409, 412, 428), 200: {"headers": ETAG_HEADER}}


@router.post("/referrals/{referral_id}/reschedule", response_model=ReferralOut, responses=_REFERRAL)
async def reschedule_appointment(
    referral_id: str,
    response: Response,
    ctx: ContextDep,
    if_match: IfMatch,
    body: RescheduleIn | None = None,
    user: UserId = None,
) -> ReferralOut:
    """The current target moves an accepted referral's appointment to another session of the
    day (the named one, or the earliest other with room); `referral.booked` again."""
    view = await rebooking.reschedule(
        ctx, referral_id, if_match, body.session_id if body else None, user
    )
    response.headers["ETag"] = view.etag
    return referral_out(view)


@router.delete(
    "/referrals/{referral_id}/appointment", response_model=ReferralOut, responses=_REFERRAL
)
async def cancel_appointment(
    referral_id: str, response: Response, ctx: ContextDep, if_match: IfMatch, user: UserId = None
) -> ReferralOut:
    """The target or the source cancels the appointment (the place given back); the referral
    stays accepted and may be booked again with `reschedule`."""
    view = await rebooking.cancel(ctx, referral_id, if_match, user)
    response.headers["ETag"] = view.etag
    return referral_out(view)
