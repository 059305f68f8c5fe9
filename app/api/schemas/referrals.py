from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, StringConstraints, Tag, model_validator

from app.api.schemas.appointments import AppointmentOut
from app.api.schemas.common import IsoDate, ResponseModel, StrictModel
from app.api.schemas.national import InsuranceSchemeIn, InsuranceSchemeOut
from app.api.schemas.patients import IdentityDocumentIn, IdentityDocumentOut, SexIn
from app.api.schemas.registry import Id, SpecialtyCode
from app.api.schemas.remote_out import RemoteOut
from app.api.schemas.tiers import TierOut
from app.domain.enums import CareType, Sex, SexCode, Urgency
from app.domain.icd10 import (
    DEFAULT_CODE_SYSTEM,
    MORPHOLOGY_PATTERN,
    PATTERN_ANY_EDITION,
    CodeSystem,
)

Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200)]


Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{4,22}[0-9]$")]


class CoordinatorIn(StrictModel):
    """A referral coordinator (转诊联络员) to call: staff, not patient data."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    phone: Phone | None = None
    his_user: Annotated[str, StringConstraints(max_length=64)] | None = None


class PatientIn(StrictModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    identity_document: IdentityDocumentIn | None = Field(
        None, description="The patient's document; exactly one of this and resident_id."
    )
    resident_id: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = Field(
        None,
        description="18-character resident identity number (GB 11643-1999), the same as "
        "identity_document of type resident_id; kept for existing clients.",
    )
    sex: SexIn | None = Field(
        None,
        description="GB/T 2261.1-2003 code (0 unknown, 1 male, 2 female, 9 unstated) or its word. "
        "Taken from the document where it carries it (checked against it when given).",
    )
    birth_date: IsoDate | None = Field(
        None,
        description="Taken from the document where it carries it (checked against it when "
        "given); required otherwise (travel permits, passport, birth certificate, newborn, "
        "2017 foreigner card).",
    )
    insurance_scheme: InsuranceSchemeIn
    insurance_number: Annotated[str, StringConstraints(max_length=64)] | None = None
    phone: Phone | None = Field(
        None,
        description="The patient's own phone, for the patient notice (sealed like the identity; "
        "shown to the source and the target, and to the consortium's SMS gateway in the notice).",
    )
    signed_institution_ids: list[Id] = Field(
        default_factory=list, max_length=3, description="Family-doctor signing (1+1+1)."
    )


ClaimedCodeSystem = Literal[
    CodeSystem.GB_T_14396_2016, CodeSystem.CLINICAL_2_0, CodeSystem.INSURANCE_2_0
]
_CODE_DESCRIPTION = (
    "The diagnosis code as the HIS sends it (no case folding; only surrounding blanks "
    "are removed, as in every field), in the "
    "edition named by `code_system`: ICD-10 category `I63`, subcategory `I63.9`, the "
    "6-character GB/T 14396-2016 code `I63.900` (`x` for a missing subcategory: `I10.x00`); "
    "clinical_2_0 and insurance_2_0 add the extension `x` + 3 digits (`E11.900x001`) and use "
    "U codes (`U07.100`). A dagger/asterisk pair is one string, `A17.0†G01*` or "
    "`A17.000+G01*`; an asterisk code alone is refused. The pattern is the union of the "
    "editions; with REFERRAL_ICD10_CATALOGUE_* loaded, only the catalogue's codes are accepted."
)


class DiagnosisIn(StrictModel):
    icd10: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        description=_CODE_DESCRIPTION,
        examples=["I63.900", "E11.900x001", "A17.0†G01*"],
        json_schema_extra={"pattern": PATTERN_ANY_EDITION},
    )
    code_system: ClaimedCodeSystem = Field(
        DEFAULT_CODE_SYSTEM,
        description="The edition the code claims: gb_t_14396_2016 (GB/T 14396-2016 疾病分类与"
        "代码), clinical_2_0 (疾病分类与代码国家临床版 2.0, the default), insurance_2_0 "
        "(医疗保障疾病诊断分类与代码, 医保版 2.0).",
    )
    morphology: Annotated[str, StringConstraints(min_length=1, max_length=16)] | None = Field(
        None,
        description="ICD-O-3 morphology code of a tumour (M8140/3; the national editions add up "
        "to two digits, M81400/3); only with a neoplasm diagnosis (C00-D48).",
        json_schema_extra={"pattern": MORPHOLOGY_PATTERN},
    )
    text: Annotated[str, StringConstraints(max_length=500)] | None = None


class DiagnosisOut(ResponseModel):
    code: str = Field(description="Exactly as sent.")
    code_system: CodeSystem = Field(
        description="The edition claimed; unspecified for referrals made before it was recorded."
    )
    name: str | None = Field(description="From the edition's catalogue, when one was loaded.")
    morphology: str | None
    text: str | None
    icd10: str = Field(description="The same as code (the request's field name).")


class TestDone(StrictModel):
    name: Text200
    result: Annotated[str, StringConstraints(max_length=2000)] | None = None
    done_on: IsoDate | None = None
    code: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = Field(
        None, description="The test's code, exactly as sent (e.g. a LOINC code: 2345-7)."
    )
    code_system: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.:-]{1,32}$")] | None = Field(
        None, description="Its code system: loinc, or a local system's name."
    )
    performed_by_institution_id: Id | None = Field(
        None, description="The institution that did the test (mutual recognition needs it)."
    )


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
    consortium_id: Id | None = Field(
        None,
        description="The consortium or alliance the referral runs in (id or code), one the "
        "source belongs to. Default: the specialty alliance the source joined for this pathway "
        "or specialty, else the source's own consortium (`consortium_basis` says which).",
    )


UpReason = Literal[
    "outside_primary_scope", "emergency", "critical", "difficult", "major", "patient_request"
]
DuplicateReason = Literal["second_opinion", "different_condition", "previous_stalled", "other"]


class ReferralCreate(RoutingFields):
    direction: Literal["up"] = "up"
    episode_id: Id | None = Field(
        None, description="Join an existing episode of this patient (e.g. a deterioration)."
    )
    reason: UpReason = Field(
        "outside_primary_scope",
        description="Why the patient is referred up (003). patient_request: at the patient's own "
        "request, not for a condition outside primary care's scope, so the tier never gets the "
        "primary level's rate for referred-up patients (rule patient_request).",
    )
    patient: PatientIn
    diagnosis: DiagnosisIn
    clinical_summary: Annotated[str, StringConstraints(max_length=4000)] | None = None
    tests_done: list[TestDone] = Field(default_factory=list, max_length=50)
    referring_doctor: Doctor | None = None
    source_coordinator: CoordinatorIn | None = Field(
        None, description="Who to call at the source; default: the institution's contact."
    )
    duplicate_reason: DuplicateReason | None = Field(
        None,
        description="Send a second live up-referral for the same patient and specialty on "
        "purpose, and say why (recorded). Without it such a create answers 409 "
        "(`…/duplicate-referral`) naming the live referral's number.",
    )


class RoutingPreviewIn(RoutingFields):
    signed_institution_ids: list[Id] = Field(default_factory=list, max_length=3)
    source_institution_id: Id | None = Field(
        None, description="Council and admin only; clinics and hospitals preview for themselves."
    )
    insurance_scheme: InsuranceSchemeIn | None = Field(
        None,
        description="The patient's scheme, to price each ranked candidate (`reimbursement`); "
        "default 390 城乡居民基本医疗保险.",
    )
    reason: UpReason = Field(
        "outside_primary_scope", description="Why the patient is referred up, as on the create."
    )
    deductible_paid_in_episode: bool = Field(
        False, description="A deductible was already paid in this episode (once per episode)."
    )


class RankedOut(ResponseModel):
    institution_id: str
    code: str
    name: str
    level: str
    rank: int
    rule: str = Field(
        description="The ranking rule that decided this entry's place: for the first entry the "
        "rule on which it beat the second; for the others the rule on which the entry above "
        "won (so `lead_hospital` on the second entry means the first is the lead; `why` says it)."
    )
    capacity_free: int | None
    capacity_total: int | None
    distance_km: float | None
    stale: bool
    in_consortium: bool
    overflow: bool = False
    specialty_match: Literal["exact", "parent"] = Field(
        "exact",
        description="exact: offers the requested specialty; parent: offers only a parent "
        "subject of it (offered_specialty), e.g. internal medicine 03 for cardiology 03.04.",
    )
    offered_specialty: str | None = None
    why: str = Field(
        "",
        description="Why it stands where it stands: for the first entry why it was chosen, for "
        "the others which entry above it won and on what (in words to read to a patient).",
    )
    why_zh: str = Field("", description="The same in Chinese.")


class CandidateCostOut(ResponseModel):
    scheme: str = Field(description="The scheme priced (险种类型 code).")
    tier: str
    ratio: str = Field(description="Share reimbursed above the deductible, e.g. 0.85.")
    deductible: str = Field(description="Yuan the patient pays first (起付线).")
    annual_cap: str
    policy_code: str
    policy_version: int
    policy_is_example: bool
    summary: str = Field(description='e.g. "85% after ¥500".')
    summary_zh: str = Field(description='e.g. "报销 85%，起付线 ¥500".')


class PreviewRankedOut(RankedOut):
    reimbursement: CandidateCostOut | None = Field(
        None,
        description="What the patient would get back there under the policy in force today "
        "(the tier rule a referral records); null where nothing can be quoted and beyond the "
        "first 20 alternatives.",
    )


class ExclusionOut(ResponseModel):
    institution_id: str
    code: str
    name: str
    reason: str
    detail: str
    in_consortium: bool = True
    distance_km: float | None = Field(
        None, description="From the referring institution, rounded to 0.1 km; null: unknown."
    )


class DecisionOut(ResponseModel):
    outcome: str = Field(description="routed, out_of_consortium or waitlisted")
    target: RankedOut | None
    alternatives: list[RankedOut] = Field(
        description="The next candidates in rank order: the first 20 (all with "
        "`exclusions=all` on a preview); `alternatives_total` counts them all."
    )
    alternatives_total: int = Field(
        0, description="Every eligible candidate after the target, listed or not."
    )
    alternatives_truncated: bool = Field(
        False, description="`alternatives` lists fewer than `alternatives_total`."
    )
    excluded: list[ExclusionOut] = Field(
        description="The first 20 excluded institutions a clinic asks about: the signed "
        "institutions, the lead hospital, the referring institution, those that declined, the "
        "partners; then near misses (full, stale census, only the parent "
        "subject), nearest first. Those excluded for level, specialty, centre or being "
        "inactive are counted, and listed (after the others) only with `exclusions=all`."
    )
    excluded_total: int = Field(0, description="Every excluded institution, listed or not.")
    excluded_counts: dict[str, int] = Field(
        default_factory=dict,
        description="Every excluded institution counted per reason, e.g. "
        '`{"level_not_higher": 8950, "no_free_capacity": 3}`; they add up to `excluded_total`.',
    )
    excluded_truncated: bool = Field(
        False, description="`excluded` lists fewer than `excluded_total`."
    )
    explanation: str
    overflow: bool = False

    @model_validator(mode="before")
    @classmethod
    def _totals_of_complete_lists(cls, data: Any) -> Any:
        """Decisions stored before the lists were bounded listed everything: their totals
        and counts are those of the lists."""
        if isinstance(data, dict) and "excluded_total" not in data:
            data = dict(data)
            excluded = data.get("excluded") or []
            counts: dict[str, int] = {}
            for x in excluded:
                counts[x["reason"]] = counts.get(x["reason"], 0) + 1
            data.update(
                excluded_total=len(excluded),
                excluded_counts=counts,
                alternatives_total=len(data.get("alternatives") or []),
            )
        return data


class PreviewDecisionOut(DecisionOut):
    """The decision of a preview: each ranked candidate with what the patient would get back
    there (`reimbursement`)."""

    target: PreviewRankedOut | None
    # narrowed to the priced entries (a pydantic field override, not a list shared with the base)
    alternatives: list[PreviewRankedOut] = Field(  # type: ignore[assignment]
        description="The next candidates in rank order: the first 20 (all with "
        "`exclusions=all` on a preview, the first 20 of them priced); `alternatives_total` "
        "counts them all."
    )


class PatientOut(ResponseModel):
    name: str
    identity_document: IdentityDocumentOut = Field(
        description="Numbers are masked unless the caller is the source or the target."
    )
    resident_id: str | None = Field(
        None, description="The resident ID (masked likewise), for documents of that type only."
    )
    insurance_number: str | None
    phone: str | None = Field(None, description="Masked unless the caller is the source or target.")
    signed_institution_ids: list[str]


class InformationRequestOut(ResponseModel):
    asked_at: datetime
    question: str
    answered_at: datetime | None = None
    answer: str | None = None


class OutcomeOut(ResponseModel):
    sent_at: datetime
    discharge_diagnoses: list[dict[str, Any]] = Field(
        description="Each with code (exactly as sent), code_system, name (from the catalogue) "
        "and text."
    )
    procedures: list[dict[str, Any]]
    summary: str
    recommendations: str | None
    follow_up_advice: str | None
    document_ids: list[str]


class HoldOut(ResponseModel):
    kind: str
    specialty_code: str
    day: date | None


class ReferralOut(ResponseModel):
    id: str
    number: str
    kind: str = Field(
        "transfer",
        description="transfer (the patient moves), consult or remote_read (the patient stays; "
        "see remote).",
    )
    direction: str
    status: str
    consortium_id: str
    consortium_basis: str | None = Field(
        description="Why the referral runs in its consortium: named (by the caller), pathway or "
        "specialty (the specialty alliance the source joined for it), own (the source's own "
        "consortium), up_referral (a down-referral back in the consortium the patient came up "
        "in); null for referrals stored before alliances.",
        examples=["own"],
    )
    signed_from: str | None = Field(
        None,
        description="Where the patient's family-doctor signing (patient.signed_institution_ids) "
        "came from: referral (the body named it) or registry (the signing the clinic pushed, in "
        "force that day); null without one.",
    )
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
    patient_sex: Sex = Field(description="The readable word for patient_sex_code.")
    patient_sex_code: SexCode = Field(description="GB/T 2261.1-2003 人的性别代码.")
    patient_birth_date: date | None = Field(
        description="Only for the source and the target; other viewers get the birth year."
    )
    patient_birth_year: int
    diagnosis: DiagnosisOut
    clinical_summary: str | None
    tests_done: list[dict[str, Any]]
    information_requests: list[InformationRequestOut] = Field(
        default_factory=list,
        description="The target's questions to the source and the answers, oldest first (for "
        "those who see the clinical text).",
    )
    outcome: OutcomeOut | None = Field(
        None, description="Up-referrals: the outcome the receiving hospital sent back."
    )
    contacts: dict[str, dict[str, Any] | None] = Field(
        default_factory=dict,
        description="People to call: source and target coordinators (name, phone, his_user); "
        "the target's is set on acceptance (default: the institutions' contacts).",
    )
    referring_doctor: str | None
    hold: HoldOut | None
    pathway_code: str | None = Field(description="Green-channel pathway, if any.")
    episode_id: str | None = Field(description="The patient's episode (GET /v1/episodes/{id}).")
    parent_referral_id: str | None = Field(
        description="The referral this one follows on from (up-referral → down → up again)."
    )
    overflow: bool = Field(description="Placed at a full centre (green channel): for the council.")
    council_directed: bool = Field(
        False, description="Placed by the council at a member of its choice (even when full)."
    )
    respond_by: datetime | None = Field(description="The target must answer by then.")
    appointment: AppointmentOut | None = Field(
        None,
        description="Outpatient or examination: the session booked on acceptance (number, "
        "time, doctor, room, state).",
    )
    remote: RemoteOut | None = Field(
        None, description="A consult or remote read: the study, the target time and the report."
    )
    routing: DecisionOut | None
    tier: TierOut | None = Field(
        description="The reimbursement tier recorded for the current target (history: /tiers)."
    )
    version: int
    created_at: datetime
    created_local_date: date = Field(
        description="The consortium's calendar day of `created_at` (its time zone), the day "
        "in the number."
    )
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
    discharge_summary: Annotated[str, StringConstraints(min_length=1, max_length=8000)] | None = (
        Field(
            None,
            description="Required unless up_referral_id names an up-referral whose outcome was "
            "sent back: its summary (and recommendations) are taken then.",
        )
    )
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
