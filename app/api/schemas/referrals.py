from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, StringConstraints, Tag

from app.api.schemas.common import IsoDate, ResponseModel, StrictModel
from app.api.schemas.national import InsuranceSchemeIn, InsuranceSchemeOut
from app.api.schemas.registry import Id, SpecialtyCode
from app.api.schemas.tiers import TierOut
from app.domain.enums import CareType, Sex, Urgency

Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class PatientIn(StrictModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    resident_id: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        description="18-character resident identity number (GB 11643); checked, stored encrypted."
    )
    sex: Sex | None = Field(None, description="Checked against the resident ID when given.")
    birth_date: IsoDate | None = Field(None, description="Checked against the resident ID.")
    insurance_scheme: InsuranceSchemeIn
    insurance_number: Annotated[str, StringConstraints(max_length=64)] | None = None
    signed_institution_ids: list[Id] = Field(
        default_factory=list, max_length=3, description="Family-doctor signing (1+1+1)."
    )


class DiagnosisIn(StrictModel):
    icd10: Annotated[str, StringConstraints(min_length=1, max_length=16)] = Field(
        examples=["I63.9"]
    )
    text: Annotated[str, StringConstraints(max_length=500)] | None = None


class TestDone(StrictModel):
    name: Text200
    result: Annotated[str, StringConstraints(max_length=2000)] | None = None
    done_on: IsoDate | None = None


class Doctor(StrictModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    id: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="The doctor's id in the HIS; recorded as the actor of events."
    )


class RoutingFields(StrictModel):
    specialty_code: SpecialtyCode | None = Field(
        None, description="Required, except for a green-channel referral (pathway default)."
    )
    care_type: CareType
    wanted_day: IsoDate | None = Field(None, description="Required for outpatient and examination.")
    urgency: Urgency = Urgency.ROUTINE
    patient_choice_institution_id: Id | None = Field(
        None, description="The patient's own choice; honoured when the rules allow it."
    )
    pathway: Annotated[str, StringConstraints(max_length=32)] | None = Field(
        None,
        description="Green channel (stroke, chest_pain, trauma, critical_maternal, "
        "critical_neonatal): nearest centre even when full; heads every worklist.",
    )


class ReferralCreate(RoutingFields):
    direction: Literal["up"] = "up"
    episode_id: Id | None = Field(
        None, description="Join an existing episode of this patient (e.g. a deterioration)."
    )
    reason: Literal[
        "outside_primary_scope", "emergency", "critical", "difficult", "major", "patient_request"
    ] = Field(
        "outside_primary_scope",
        description="Why the patient is referred up (003); patient_request counts as self-choice "
        "for the reimbursement tier.",
    )
    patient: PatientIn
    diagnosis: DiagnosisIn
    clinical_summary: Annotated[str, StringConstraints(max_length=4000)] | None = None
    tests_done: list[TestDone] = Field(default_factory=list, max_length=50)
    referring_doctor: Doctor | None = None


class RoutingPreviewIn(RoutingFields):
    signed_institution_ids: list[Id] = Field(default_factory=list, max_length=3)
    source_institution_id: Id | None = Field(
        None, description="Council and admin only; clinics and hospitals preview for themselves."
    )


class RankedOut(ResponseModel):
    institution_id: str
    code: str
    name: str
    level: str
    rank: int
    rule: str
    capacity_free: int | None
    capacity_total: int | None
    distance_km: float | None
    stale: bool
    in_consortium: bool
    overflow: bool = False


class ExclusionOut(ResponseModel):
    institution_id: str
    code: str
    name: str
    reason: str
    detail: str
    in_consortium: bool = True


class DecisionOut(ResponseModel):
    outcome: str = Field(description="routed, out_of_consortium or waitlisted")
    target: RankedOut | None
    alternatives: list[RankedOut]
    excluded: list[ExclusionOut]
    explanation: str
    overflow: bool = False


class PatientOut(ResponseModel):
    name: str
    resident_id: str = Field(description="Masked unless the caller is the source or the target.")
    insurance_number: str | None
    signed_institution_ids: list[str]


class HoldOut(ResponseModel):
    kind: str
    specialty_code: str
    day: date | None


class ReferralOut(ResponseModel):
    id: str
    number: str
    direction: str
    status: str
    consortium_id: str
    source_institution_id: str
    target_institution_id: str | None
    out_of_consortium: bool
    specialty_code: str
    care_type: CareType
    wanted_day: date | None
    urgency: Urgency
    insurance_scheme: InsuranceSchemeOut
    insurance_scheme_name: str = Field(examples=["城乡居民基本医疗保险"])
    insurance_scheme_name_en: str = Field(
        examples=["urban and rural resident basic medical insurance"]
    )
    patient: PatientOut
    patient_sex: Sex
    patient_birth_date: date
    diagnosis: dict[str, Any]
    clinical_summary: str | None
    tests_done: list[dict[str, Any]]
    referring_doctor: str | None
    hold: HoldOut | None
    pathway_code: str | None = Field(description="Green-channel pathway, if any.")
    episode_id: str | None = Field(description="The patient's episode (GET /v1/episodes/{id}).")
    parent_referral_id: str | None = Field(
        description="The referral this one follows on from (up-referral → down → up again)."
    )
    overflow: bool = Field(description="Placed at a full centre (green channel): for the council.")
    respond_by: datetime | None = Field(description="The target must answer by then.")
    routing: DecisionOut | None
    tier: TierOut | None = Field(
        description="The reimbursement tier recorded for the current target (history: /tiers)."
    )
    version: int
    created_at: datetime
    updated_at: datetime


class Stability(StrictModel):
    diagnosis_confirmed: bool = Field(description="The diagnosis is clear.")
    condition_stable: bool = Field(description="The condition is stable.")
    criteria: dict[Annotated[str, StringConstraints(max_length=60)], bool] = Field(
        default_factory=dict,
        max_length=30,
        description="The specialty's criteria (app/data/stability_criteria.json), each checked.",
    )


class Medication(StrictModel):
    name: Text200
    dose: Annotated[str, StringConstraints(max_length=100)] | None = None
    frequency: Annotated[str, StringConstraints(max_length=100)] | None = None
    days: int = Field(ge=1, le=366, description="Over 30 days: a long prescription.")


class PlannedVisit(StrictModel):
    due_date: IsoDate
    purpose: Annotated[str, StringConstraints(max_length=500)] | None = None


class DownReferralCreate(StrictModel):
    direction: Literal["down"]
    up_referral_id: Id | None = Field(
        None, description="The up-referral that brought the patient (links the episode)."
    )
    patient: PatientIn
    diagnosis: DiagnosisIn
    condition_specialty_code: SpecialtyCode = Field(
        description="The specialty that treated the patient (chooses the stability criteria)."
    )
    service_code: SpecialtyCode = Field(
        "02", description="What the primary institution provides: 02 general practice, 21 rehab."
    )
    care_type: CareType = Field(
        CareType.OUTPATIENT, description="outpatient follow-up, or inpatient for a rehab bed"
    )
    urgency: Urgency = Urgency.ROUTINE
    target_institution_id: Id | None = Field(
        None, description="A named primary institution (must be eligible)."
    )
    stability: Stability | None = Field(None, description="Required: the attestation.")
    discharge_summary: Annotated[str, StringConstraints(min_length=1, max_length=8000)]
    follow_up_plan: list[PlannedVisit] = Field(min_length=1, max_length=52)
    rehabilitation_plan: Annotated[str, StringConstraints(max_length=4000)] | None = None
    medications: list[Medication] = Field(default_factory=list, max_length=50)
    tests_done: list[TestDone] = Field(default_factory=list, max_length=50)
    referring_doctor: Doctor | None = None


def _direction(value: Any) -> str:
    if isinstance(value, dict):
        return "down" if value.get("direction") == "down" else "up"
    return str(getattr(value, "direction", "up"))


ReferralCreateBody = Annotated[
    Annotated[ReferralCreate, Tag("up")] | Annotated[DownReferralCreate, Tag("down")],
    Discriminator(_direction),
]


class EscalateIn(StrictModel):
    """A deterioration during follow-up: the new up-referral, pre-filled from the down one."""

    specialty_code: SpecialtyCode | None = None
    care_type: CareType = CareType.INPATIENT
    wanted_day: IsoDate | None = None
    urgency: Urgency = Urgency.URGENT
    pathway: Annotated[str, StringConstraints(max_length=32)] | None = None
    clinical_summary: Annotated[str, StringConstraints(max_length=4000)] | None = None
    tests_done: list[TestDone] = Field(default_factory=list, max_length=50)
    referring_doctor: Doctor | None = None
