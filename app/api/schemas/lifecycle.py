from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from app.api.schemas.common import Instant, ResponseModel, StrictModel
from app.api.schemas.referrals import CoordinatorIn, DiagnosisIn, TestDone
from app.api.schemas.registry import Id
from app.domain.enums import CareType, Urgency
from app.domain.lifecycle import RejectReason

Note = Annotated[str, StringConstraints(max_length=1000)]


class NoteIn(StrictModel):
    note: Note | None = None


class AcceptIn(StrictModel):
    coordinator: CoordinatorIn | None = Field(
        None, description="Who to call at the target; default: the institution's contact."
    )
    ward: Annotated[str, StringConstraints(max_length=100)] | None = None
    bed: Annotated[str, StringConstraints(max_length=50)] | None = None
    appointment_at: Instant | None = Field(
        None,
        description="Outpatient or examination appointment time, when the hospital keeps no "
        "sessions that day (else the booked session's time).",
    )
    session_id: Id | None = Field(
        None,
        description="Outpatient or examination: the session to book (GET /v1/institutions/{id}"
        "/sessions); default the earliest of the day and specialty with a free place.",
    )
    note: Note | None = None


class RejectIn(StrictModel):
    reason_code: RejectReason = Field(description="Why the hospital cannot take the patient.")
    reason_text: Note | None = Field(None, description="Required when reason_code is other.")


class ForwardIn(StrictModel):
    target_institution_id: Id = Field(
        description="The member or partner better placed to take the patient (it must be "
        "eligible: the same rules as routing; else 422 naming this field with the reason)."
    )
    reason_code: Literal[
        "better_capability",
        "specialist_available",
        "closer_to_patient",
        "capacity_elsewhere",
        "other",
    ] = Field(description="Why it is forwarded.")
    reason_text: Note | None = None


class PlaceIn(StrictModel):
    institution_id: Id = Field(
        description="The member (or partner) the council places the patient at; it must offer "
        "the care (routing's rules but capacity and census): held when free, else there all "
        "the same, flagged."
    )
    reason_code: Literal["bed_deployment", "waiting_too_long", "patient_safety", "other"]
    reason_text: Note | None = None


class RequestInformationIn(StrictModel):
    question: Annotated[str, StringConstraints(min_length=1, max_length=1000)] = Field(
        description="What the target needs from the source (sealed at rest like the clinical "
        "text; shown to the source and the target only)."
    )


class AmendIn(StrictModel):
    answer: Annotated[str, StringConstraints(min_length=1, max_length=2000)] = Field(
        description="The source's answer to the open question (sealed at rest)."
    )
    clinical_summary: Annotated[str, StringConstraints(max_length=4000)] | None = Field(
        None, description="Replaces the referral's clinical summary when given."
    )
    tests_done: list[TestDone] | None = Field(
        None, max_length=50, description="Replaces the tests done when given."
    )


class ProcedureIn(StrictModel):
    code: Annotated[str, StringConstraints(min_length=1, max_length=16)] = Field(
        description="Kept exactly as sent (e.g. an ICD-9-CM-3 operation code, 手术操作分类代码)."
    )
    name: Annotated[str, StringConstraints(max_length=200)] | None = None


class OutcomeIn(StrictModel):
    """What the receiving hospital sends back to the referrer when the up-referral ends."""

    discharge_diagnoses: list[DiagnosisIn] = Field(
        default_factory=list, max_length=20, description="Discharge or final diagnoses, coded."
    )
    procedures: list[ProcedureIn] = Field(default_factory=list, max_length=30)
    summary: Annotated[str, StringConstraints(min_length=1, max_length=8000)] = Field(
        description="The course and the result (sealed at rest)."
    )
    recommendations: Annotated[str, StringConstraints(max_length=4000)] | None = None
    follow_up_advice: Annotated[str, StringConstraints(max_length=4000)] | None = None
    document_ids: list[Id] = Field(
        default_factory=list,
        max_length=20,
        description="Documents attached to this referral that belong to the outcome.",
    )


class CompleteIn(StrictModel):
    note: Note | None = None
    outcome: OutcomeIn | None = Field(
        None,
        description="Up-referrals: the outcome back to the referrer (in its outgoing list, as "
        "the webhook referral.outcome_sent, and the discharge summary of a down-referral).",
    )


class EventOut(ResponseModel):
    id: str
    type: str = Field(description="created, accepted, rejected, rerouted, expired, waitlisted, …")
    from_status: str | None
    to_status: str | None
    actor_institution_id: str | None
    actor_user: str | None
    reason_code: str | None
    reason: str | None
    target_institution_id: str | None
    at: datetime


class LastEventOut(ResponseModel):
    """The last lifecycle event (bookkeeping such as ``tier_decided`` is skipped)."""

    type: str
    to_status: str | None
    at: datetime
    reason_code: str | None = Field(
        None, description="Why, as a code (a rejection or expiry reason behind a re-route)."
    )


class ReferralSummary(ResponseModel):
    id: str
    number: str
    kind: str = Field("transfer", description="transfer, consult or remote_read")
    direction: str
    status: str
    urgency: Urgency
    priority: int = Field(description="0 green channel, 1 emergency, 2 urgent, 3 routine")
    care_type: CareType
    specialty_code: str
    consortium_id: str
    source_institution_id: str
    target_institution_id: str | None
    out_of_consortium: bool
    respond_by: datetime | None
    created_at: datetime
    updated_at: datetime
    outcome_at: datetime | None = Field(
        None, description="When the receiving hospital sent the outcome back (GET the referral)."
    )
    report_due_at: datetime | None = Field(
        None, description="A consult or remote read: its turnaround target."
    )
    reported_at: datetime | None = Field(
        None, description="A consult or remote read: when it was answered (GET it for the report)."
    )
    last_event: LastEventOut | None
    allowed_actions: list[str] = Field(description="What the caller may do next.")
