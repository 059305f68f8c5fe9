"""What a consult or remote read adds to a referral's answer."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from app.api.schemas.common import ResponseModel


class StudyOut(ResponseModel):
    accession_number: str | None
    study_instance_uid: str | None
    performed_at: datetime | None = None


class ReportOut(ResponseModel):
    reader_institution_id: str
    reported_at: datetime
    within_target: bool
    conclusion: str | None = Field(description="For those who see the clinical text.")
    findings: str | None
    advice: str | None
    recommend_transfer: bool
    reader: dict[str, str | None] | None
    study: StudyOut | None


class RemoteOut(ResponseModel):
    """What a consult or remote read adds to the referral's answer."""

    kind: str
    modality: str | None
    consult_mode: str | None
    question: str | None = Field(description="For those who see the clinical text.")
    study: StudyOut | None
    report_due_at: datetime | None = Field(description="The turnaround target (from creation).")
    reported_at: datetime | None
    report: ReportOut | None
    converted_referral_number: str | None = Field(
        None, description="The transfer it was converted into, if any."
    )
