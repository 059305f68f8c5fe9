"""Remote consultation and remote reading: the request, the answer, the conversion into a
transfer, what a member offers and its readers' capacity."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from app.api.schemas.common import Instant, IsoDate, ResponseModel, StrictModel
from app.api.schemas.referrals import (
    CoordinatorIn,
    DiagnosisIn,
    Doctor,
    PatientIn,
    TestDone,
)
from app.api.schemas.registry import Id, SpecialtyCode
from app.domain.enums import CareType, Urgency
from app.domain.remote import ConsultMode, Modality

#: a DICOM UID: digits in dot-separated components, at most 64 characters (PS3.5 9.1)
DicomUid = Annotated[
    str, StringConstraints(pattern=r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$", max_length=64)
]
Accession = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Text4000 = Annotated[str, StringConstraints(max_length=4000)]


class StudyIn(StrictModel):
    """The examination read: by reference only (no image transport)."""

    accession_number: Accession | None = Field(
        None, description="The township's accession number (DICOM 0008,0050)."
    )
    study_instance_uid: DicomUid | None = Field(
        None, description="DICOM Study Instance UID (0020,000D)."
    )
    performed_at: Instant | None = Field(None, description="When the examination was done.")


class RemoteRequestCreate(StrictModel):
    kind: Literal["consult", "remote_read"] = Field(
        description="consult: a specialist advises about a patient who stays; remote_read: "
        "the examination done here is read by a member's reader."
    )
    modality: Modality | None = Field(
        None,
        description="remote_read: the DICOM modality (CT, MR, DX, US, ECG, SM for pathology, "
        "...); its reading specialty is routed on unless specialty_code names one.",
    )
    specialty_code: SpecialtyCode | None = Field(
        None,
        description="consult: required, the specialty asked; remote_read: optional, the reading "
        "specialty (default: the modality's, e.g. ECG 32.06, CT 32.02).",
    )
    consult_mode: ConsultMode | None = Field(
        None, description="consult: video (a session on wanted_day) or async (default)."
    )
    urgency: Urgency = Urgency.ROUTINE
    wanted_day: IsoDate | None = Field(
        None, description="The day to read or consult (default: today, the consortium's day)."
    )
    consortium_id: Id | None = Field(
        None, description="The consortium (id or code) to ask in; default as for referrals."
    )
    episode_id: Id | None = Field(None, description="Join the patient's episode.")
    patient: PatientIn
    diagnosis: DiagnosisIn
    question: Text4000 | None = Field(None, description="The clinical question (sealed).")
    clinical_summary: Text4000 | None = None
    tests_done: list[TestDone] = Field(default_factory=list, max_length=50)
    study: StudyIn | None = Field(
        None, description="remote_read: the study read (accession number or study UID)."
    )
    referring_doctor: Doctor | None = None
    source_coordinator: CoordinatorIn | None = None


class ReaderIn(StrictModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    id: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="The reader's id in the hospital's HIS."
    )


class ReportIn(StrictModel):
    conclusion: Annotated[str, StringConstraints(min_length=1, max_length=4000)] = Field(
        description="The impression (诊断意见) or, for a consult, the answer (sealed)."
    )
    findings: Annotated[str, StringConstraints(max_length=20000)] | None = Field(
        None, description="The findings (检查所见), sealed."
    )
    advice: Text4000 | None = Field(
        None, description="Advice to the primary doctor (treat here, transfer, review ...)."
    )
    recommend_transfer: bool = Field(
        False, description="The reader advises transferring the patient (convert to do so)."
    )
    reader: ReaderIn
    reported_at: Instant | None = Field(
        None, description="When it was reported (default: now; never in the future)."
    )
    study: StudyIn | None = Field(None, description="The study as the reader identified it.")


class ConvertIn(StrictModel):
    """The up-referral a remote request becomes: pre-filled from it (patient, diagnosis,
    specialty, episode); the fields here are the transfer's own."""

    care_type: CareType
    wanted_day: IsoDate | None = Field(None, description="Required for outpatient, examination.")
    urgency: Urgency | None = Field(None, description="Default: the remote request's.")
    specialty_code: SpecialtyCode | None = Field(
        None, description="Default: the consult's specialty (a remote read: required)."
    )
    clinical_summary: Text4000 | None = Field(
        None, description="Default: the report's conclusion and the request's summary."
    )
    referring_doctor: Doctor | None = None


class ServiceIn(StrictModel):
    kind: Literal["consult", "remote_read"]
    specialty_code: SpecialtyCode


class RemoteServicesIn(StrictModel):
    services: list[ServiceIn] = Field(max_length=200)


class RemoteServiceOut(ResponseModel):
    kind: str
    specialty_code: str


class RemoteCapacityFigure(StrictModel):
    kind: Literal["consult", "remote_read"]
    specialty_code: SpecialtyCode | None = Field(
        None, description="The reading or consulting specialty (or give modality)."
    )
    modality: Modality | None = Field(None, description="remote_read: its reading specialty.")
    day: IsoDate
    total: int = Field(ge=0, le=100_000, description="Read or consult slots that day.")
    occupied: int = Field(ge=0, le=100_000, description="Already used by other work.")


class RemoteCapacityIn(StrictModel):
    as_of: Instant
    capacity: list[RemoteCapacityFigure] = Field(max_length=500)


class RemoteCapacityOut(ResponseModel):
    kind: str
    specialty_code: str
    day: date
    total: int
    occupied: int
    held: int
    free: int
    as_of: datetime | None
    stale: bool
