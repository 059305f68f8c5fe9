"""Referrals as the API shows them: the response body, its ETag and its OpenAPI links."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from app.api.schemas.appointments import AppointmentOut
from app.api.schemas.referrals import (
    DecisionOut,
    DiagnosisOut,
    HoldOut,
    InformationRequestOut,
    OutcomeOut,
    PatientOut,
    ReferralOut,
)
from app.api.schemas.remote_out import RemoteOut, ReportOut, StudyOut
from app.api.schemas.tiers import TierOut
from app.domain.lifecycle import Action
from app.domain.national_codes import scheme_name, scheme_name_en
from app.services.idempotency import Created
from app.services.views import ReferralView

ETAG_HEADER = {"ETag": {"schema": {"type": "string"}, "description": "Send it as If-Match."}}


def referral_links(referral_id: str, etag: str | None = None) -> dict[str, Any]:
    """OpenAPI links from a response that names a referral: read it and its audit trail and,
    given its ETag, take any transition (as `If-Match`), for clients and stateful tests."""
    links: dict[str, Any] = {
        "GetReferral": {"operationId": "get_referral", "parameters": {"referral_id": referral_id}},
        "ListReferralEvents": {
            "operationId": "list_referral_events",
            "parameters": {"referral_id": referral_id},
        },
    }
    if etag is not None:
        for action in Action:
            if action is Action.EXPIRE:  # the sweeper's, not an endpoint
                continue
            operation = f"{action.value.replace('-', '_')}_referral"
            links["".join(w.title() for w in operation.split("_"))] = {
                "operationId": operation,
                "parameters": {"referral_id": referral_id, "header.if-match": etag},
            }
    return links


def referral_out(view: ReferralView) -> ReferralOut:
    row = view.row
    return ReferralOut(
        id=row.id,
        number=row.number,
        kind=row.kind or "transfer",
        direction=row.direction,
        status=row.status,
        consortium_id=row.consortium_id,
        source_institution_id=row.source_institution_id,
        target_institution_id=row.target_institution_id,
        out_of_consortium=row.out_of_consortium,
        specialty_code=row.specialty_code,
        care_type=row.care_type,
        wanted_day=row.wanted_day,
        urgency=row.urgency,
        insurance_scheme=row.insurance_scheme,
        insurance_scheme_name=scheme_name(row.insurance_scheme),
        insurance_scheme_name_en=scheme_name_en(row.insurance_scheme),
        patient=PatientOut.model_validate(view.patient()),
        patient_sex=row.patient_sex.word,
        patient_sex_code=row.patient_sex,
        patient_birth_date=row.patient_birth_date if view.show_full_identity else None,
        patient_birth_year=row.patient_birth_date.year,
        diagnosis=DiagnosisOut(
            code=row.diagnosis_code,
            code_system=row.diagnosis_code_system,
            name=row.diagnosis_name,
            morphology=row.diagnosis_morphology,
            text=view.sensitive.get("diagnosis_text"),
            icd10=row.diagnosis_code,
        ),
        clinical_summary=view.sensitive.get("clinical_summary"),
        tests_done=view.sensitive.get("tests_done") or [],
        outcome=(
            OutcomeOut.model_validate(view.sensitive["outcome"])
            if view.sensitive.get("outcome")
            else None
        ),
        contacts=row.contacts or {"source": None, "target": None},
        information_requests=[
            InformationRequestOut.model_validate(q)
            for q in view.sensitive.get("information_requests") or []
        ],
        referring_doctor=row.referring_doctor,
        hold=(
            HoldOut(kind=row.hold_kind, specialty_code=row.hold_specialty_code, day=row.hold_day)
            if row.hold_kind and row.hold_specialty_code
            else None
        ),
        pathway_code=row.pathway_code,
        episode_id=row.episode_id,
        parent_referral_id=row.parent_referral_id,
        overflow=row.overflow,
        council_directed=row.council_directed,
        consortium_basis=row.consortium_basis,
        signed_from=row.signed_from,
        respond_by=row.respond_by,
        remote=remote_out(view),
        appointment=AppointmentOut.model_validate(view.appointment) if view.appointment else None,
        routing=DecisionOut.model_validate(view.decision) if view.decision else None,
        tier=TierOut.model_validate(view.tier) if view.tier else None,
        version=row.version,
        created_at=row.created_at,
        created_local_date=view.created_local_date,
        updated_at=row.updated_at,
    )


def remote_out(view: ReferralView) -> RemoteOut | None:
    """A consult's or remote read's own fields; the question and the report's text for those
    who see the clinical text (as the clinical summary)."""
    row = view.row
    if row.kind in (None, "transfer"):
        return None
    study = view.sensitive.get("study")
    report = view.report
    return RemoteOut(
        kind=row.kind,
        modality=row.modality,
        consult_mode=row.consult_mode,
        question=view.sensitive.get("question"),
        study=StudyOut.model_validate(study) if study else None,
        report_due_at=row.report_due_at,
        reported_at=row.reported_at,
        report=(
            ReportOut(
                reader_institution_id=report["reader_institution_id"],
                reported_at=report["reported_at"],
                within_target=report["within_target"],
                conclusion=report.get("conclusion"),
                findings=report.get("findings"),
                advice=report.get("advice"),
                recommend_transfer=bool(report.get("recommend_transfer")),
                reader=report.get("reader"),
                study=StudyOut.model_validate(report["study"]) if report.get("study") else None,
            )
            if report
            else None
        ),
        converted_referral_number=view.converted_number,
    )


def created_response(created: Created) -> Response:
    """A create's answer (201, or the first answer again for a replayed key): the referral as
    the caller may see it now, with its current ETag."""
    headers = {**created.headers, "ETag": created.view.etag}
    content = referral_out(created.view).model_dump_json().encode()
    return Response(content, created.status, headers, media_type=None)
