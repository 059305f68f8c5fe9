"""The answers to remote requests: the reader's report (sealed, bound to its request) and the
conversion of a reported consult or read into an up-referral in the same episode, pre-filled
from it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.schemas.referrals import DiagnosisIn, ReferralCreate
from app.api.schemas.remote import ConvertIn, ReportIn
from app.config import Settings
from app.db.base import utcnow
from app.db.models import Referral
from app.db.repositories import remote as remote_repo
from app.domain.errors import Conflict, Forbidden, InvalidInput
from app.domain.lifecycle import Status
from app.domain.remote import RequestKind, report_associated
from app.services import events, patients, placement, up_referrals
from app.services.auth import Principal
from app.services.capacity import CLOCK_SKEW
from app.services.crypto import PatientDataProtector
from app.services.numbering import Number
from app.services.views import ReferralView, visible


def record_report(
    session: AsyncSession,
    protector: PatientDataProtector,
    row: Referral,
    report: ReportIn,
    reader_institution_id: str,
    now: datetime,
) -> None:
    """Store the answer sealed; the request's ``reported_at`` and whether it met its target."""
    at = report.reported_at or now
    if at > now + CLOCK_SKEW or at < row.created_at:
        raise InvalidInput(
            "The report time is outside the request's life.",
            [{"loc": ["body", "reported_at"], "msg": "between the request and now"}],
        )
    content = {
        "conclusion": report.conclusion,
        "findings": report.findings,
        "advice": report.advice,
        "recommend_transfer": report.recommend_transfer,
        "reader": report.reader.model_dump(mode="json"),
        "study": report.study.model_dump(mode="json") if report.study else None,
    }
    remote_repo.add_report(
        session,
        referral_id=row.id,
        reader_institution_id=reader_institution_id,
        reported_at=at,
        within_target=row.report_due_at is None or at <= row.report_due_at,
        sealed=protector.seal(content, associated=report_associated(row.id)),
        created_at=now,
    )
    row.reported_at = at


async def convert(
    session: AsyncSession,
    settings: Settings,
    protector: PatientDataProtector,
    principal: Principal,
    referral_id: str,
    body: ConvertIn,
    *,
    number: Number | None = None,
) -> placement.Written[ReferralView]:
    """A reported consult or remote read becomes an up-referral in the same episode,
    pre-filled from it (patient, diagnosis, specialty, the report's conclusion)."""
    remote = await visible(session, principal, referral_id)
    if remote.kind == RequestKind.TRANSFER:
        raise Conflict("Only a consult or remote read is converted into a transfer.")
    if principal.institution_id != remote.source_institution_id:
        raise Forbidden("Only the institution that asked converts its request.")
    if remote.status is not Status.REPORTED:
        raise Conflict("Only a reported request is converted.", current_status=str(remote.status))
    done = await remote_repo.converted_to(session, remote.id)
    if done is not None:
        raise Conflict("This request was already converted.", existing_number=done)
    specialty = body.specialty_code or (
        remote.specialty_code if remote.kind == RequestKind.CONSULT else None
    )
    if specialty is None:
        raise InvalidInput(
            "Name the specialty the patient is transferred to.",
            [{"loc": ["body", "specialty_code"], "msg": "required to convert a remote read"}],
        )
    sealed = protector.open(remote.sensitive, associated=remote.id)
    report = await remote_repo.report_of(session, remote.id)
    conclusion = (
        protector.open(report.sealed, associated=report_associated(remote.id)).get("conclusion")
        if report
        else None
    )
    summary = body.clinical_summary or "\n".join(
        p for p in (sealed.get("clinical_summary"), conclusion) if p
    )
    command = ReferralCreate.model_construct(
        patient=patients.escalation_patient(
            sealed["patient"],
            remote.patient_birth_date,
            remote.patient_sex.word,
            remote.insurance_scheme,
        ),
        diagnosis=DiagnosisIn.model_construct(
            icd10=remote.diagnosis_code,
            code_system=cast(Any, remote.diagnosis_code_system),
            morphology=remote.diagnosis_morphology,
            text=sealed.get("diagnosis_text"),
        ),
        specialty_code=specialty,
        care_type=body.care_type,
        wanted_day=body.wanted_day,
        urgency=body.urgency or remote.urgency,
        clinical_summary=summary[:4000] or None,
        tests_done=[],
        referring_doctor=body.referring_doctor,
        episode_id=remote.episode_id,
        consortium_id=remote.consortium_id,
        pathway=None,
        patient_choice_institution_id=None,
        reason=cast(Any, None),
        direction="up",
    )
    written = await up_referrals.create(
        session,
        settings,
        protector,
        principal,
        command,
        parent_referral_id=remote.id,
        number=number,
    )
    events.record(
        session,
        remote,
        "converted",
        remote.status,
        at=utcnow(),
        actor_institution_id=principal.institution_id,
        actor_user=body.referring_doctor.id if body.referring_doctor else None,
        reason=f"Converted into the transfer {written.value.row.number}.",
    )
    return written
