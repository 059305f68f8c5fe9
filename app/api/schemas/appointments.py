"""Outpatient sessions and appointments."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from app.api.schemas.common import Instant, IsoDate, ResponseModel, StrictModel
from app.api.schemas.registry import Id, SpecialtyCode

LocalTime = Annotated[
    str,
    StringConstraints(pattern=r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"),
    Field(description="HH:MM (or H:MM), the consortium's local time.", examples=["08:00"]),
]
HisSessionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


class SessionIn(StrictModel):
    session_id: HisSessionId = Field(description="The HIS's own id of the session.")
    specialty_code: SpecialtyCode
    day: IsoDate
    period: Literal["morning", "afternoon", "evening"]
    start: LocalTime
    end: LocalTime
    doctor: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    room: Annotated[str, StringConstraints(min_length=1, max_length=50)] | None = None
    total: int = Field(ge=0, le=10_000, description="Places offered to referrals.")
    occupied: int = Field(ge=0, le=10_000, description="Of those, taken otherwise.")


class SessionsIn(StrictModel):
    as_of: Instant
    sessions: list[SessionIn] = Field(max_length=500)


class SessionOut(ResponseModel):
    id: str = Field(description="Name it as session_id when accepting or rescheduling.")
    session_id: str = Field(description="The HIS's id.")
    specialty_code: str
    day: date
    period: str
    starts_at: datetime
    ends_at: datetime
    doctor: str | None
    room: str | None
    total: int
    occupied: int
    booked: int
    free: int
    as_of: datetime | None


class SessionListOut(ResponseModel):
    institution_id: str
    items: list[SessionOut]


class RescheduleIn(StrictModel):
    session_id: Id | None = Field(
        None, description="The session to move to; default the earliest other one with room."
    )


class AppointmentOut(ResponseModel):
    session_id: str
    his_session_id: str
    day: date
    period: str
    doctor: str | None
    room: str | None
    number: int = Field(description="The patient's number in the session (就诊序号).")
    appointment_at: datetime
    state: str = Field(description="booked, attended, cancelled or no_show")
