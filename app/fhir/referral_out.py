"""A referral as FHIR: the request (``ServiceRequest``) and its fulfilment (``Task``).

Both are made from the ``/v1`` answer (``ReferralOut``, built by ``presenters.referral_out``
from the caller's view), so they carry exactly what ``GET /v1/referrals/{id}`` shows this
caller: masked identity and birth year for those who see no more.
"""

from __future__ import annotations

from typing import Any

from app.api.schemas.referrals import DecisionOut, ReferralOut
from app.api.schemas.tiers import TierOut
from app.domain.lifecycle import Status
from app.fhir.common import (
    CARE_TYPE,
    DIRECTION,
    EXT_PATHWAY,
    ICD10_SYSTEMS,
    ICD_O_3,
    INSUTYPE,
    ISO_3166,
    KIND,
    NS,
    REFERRAL_NUMBER,
    REFERRAL_STATUS,
    SNOMED,
    SPECIALTY,
    TASK_OUTPUT,
    TIER,
    V2_0203,
    concept,
    day,
    instant,
    ref,
    resource,
)

#: the lifecycle state -> Task.status (the exact state is Task.businessStatus)
TASK_STATUS: dict[Status, str] = {
    Status.WAITLISTED: "requested",
    Status.PENDING: "requested",
    Status.FORWARDED: "requested",
    Status.NEEDS_INFORMATION: "received",
    Status.ACCEPTED: "accepted",
    Status.ARRIVED: "in-progress",
    Status.ADMITTED: "in-progress",
    Status.SEEN: "in-progress",
    Status.IN_FOLLOW_UP: "in-progress",
    Status.COMPLETED: "completed",
    Status.REJECTED: "rejected",
    Status.CANCELLED: "cancelled",
    Status.EXPIRED: "failed",
    Status.NO_SHOW: "failed",
    Status.REPORTED: "completed",  # a consult or remote read answered
}
#: Task.status -> the lifecycle states it stands for (a search by status)
STATES_OF: dict[str, tuple[Status, ...]] = {}
for _state, _task_status in TASK_STATUS.items():
    STATES_OF[_task_status] = (*STATES_OF.get(_task_status, ()), _state)

#: the lifecycle state -> ServiceRequest.status
REQUEST_STATUS: dict[Status, str] = {
    Status.COMPLETED: "completed",
    Status.REPORTED: "completed",
    Status.CANCELLED: "revoked",
    Status.REJECTED: "revoked",
    Status.EXPIRED: "revoked",
    Status.NO_SHOW: "revoked",
}
#: urgency -> priority; a green-channel referral is always stat
PRIORITY = {"routine": "routine", "urgent": "urgent", "emergency": "asap"}
#: GB/T 2261.1 sex code -> administrative gender
GENDER = {"0": "unknown", "1": "male", "2": "female", "9": "unknown"}
#: identity document type -> HL7 v2 identifier type
DOCUMENT_TYPE = {"resident_id": "NI", "passport": "PPN", "birth_certificate": "BCT"}
REFERRAL_CODE = concept(SNOMED, "3457005", "Patient referral")


def _code(out: ReferralOut) -> dict[str, Any]:
    """A transfer is a patient referral; a consult or remote read (the patient stays) is named
    by its kind."""
    return REFERRAL_CODE if out.kind == "transfer" else concept(KIND, out.kind)


def priority_of(out: Any) -> str:
    return "stat" if out.pathway_code else PRIORITY[str(out.urgency)]


def _meta(out: Any) -> dict[str, Any]:
    return {"versionId": str(out.version), "lastUpdated": instant(out.updated_at)}


def _identifier(out: Any) -> list[dict[str, Any]]:
    return [{"use": "official", "system": REFERRAL_NUMBER, "value": out.number}]


def _patient(out: ReferralOut) -> dict[str, Any]:
    p = out.patient
    doc = p.identity_document
    identifiers: list[dict[str, Any]] = []
    if doc.number is not None:
        identifier: dict[str, Any] = {
            "system": NS + doc.type.value,
            "value": doc.number,
        }
        if doc.type.value in DOCUMENT_TYPE:
            identifier["type"] = concept(V2_0203, DOCUMENT_TYPE[doc.type.value])
        if doc.issuing_country:
            identifier["assigner"] = {
                "identifier": {"system": ISO_3166, "value": doc.issuing_country}
            }
        identifiers.append(identifier)
    return resource(
        {
            "resourceType": "Patient",
            "id": "patient",
            "identifier": identifiers,
            "name": [{"text": p.name}],
            "gender": GENDER[out.patient_sex_code.value],
            "birthDate": day(out.patient_birth_date) or str(out.patient_birth_year),
            "telecom": [{"system": "phone", "value": p.phone}] if p.phone else [],
            "generalPractitioner": [ref("Organization", i) for i in p.signed_institution_ids],
        }
    )


def _coverage(out: ReferralOut) -> dict[str, Any]:
    return resource(
        {
            "resourceType": "Coverage",
            "id": "coverage",
            "status": "active",
            "type": concept(INSUTYPE, out.insurance_scheme.value, out.insurance_scheme_name),
            "subscriberId": out.patient.insurance_number,
            "beneficiary": {"reference": "#patient"},
            "payor": [{"display": "医疗保障 (medical insurance)"}],
        }
    )


def _reason(out: ReferralOut) -> dict[str, Any]:
    d = out.diagnosis
    codings = [
        {
            "system": ICD10_SYSTEMS[d.code_system.value],
            "code": d.code,
            **({"display": d.name} if d.name else {}),
        }
    ]
    if d.morphology:
        codings.append({"system": ICD_O_3, "code": d.morphology})
    return resource({"coding": codings, "text": d.text})


def _tests(out: ReferralOut) -> list[dict[str, Any]]:
    observations = []
    for i, test in enumerate(out.tests_done):
        code = test.get("code")
        system = test.get("code_system")
        observations.append(
            resource(
                {
                    "resourceType": "Observation",
                    "id": f"test-{i}",
                    "status": "final",
                    "code": {
                        "coding": (
                            [
                                {
                                    "system": "http://loinc.org"
                                    if system == "loinc"
                                    else f"{NS}test-code/{system or 'local'}",
                                    "code": code,
                                }
                            ]
                            if code
                            else []
                        ),
                        "text": test.get("name"),
                    },
                    "valueString": test.get("result"),
                    "effectiveDateTime": test.get("done_on"),
                    "performer": [ref("Organization", test.get("performed_by_institution_id"))],
                }
            )
        )
    return observations


def service_request(out: ReferralOut) -> dict[str, Any]:
    """The referral as the request: who asks whom for what, for which patient and why."""
    tests = _tests(out)
    extensions: list[dict[str, Any]] = []
    if out.pathway_code:
        extensions.append({"url": EXT_PATHWAY, "valueCode": out.pathway_code})
    return resource(
        {
            "resourceType": "ServiceRequest",
            "id": out.id,
            "meta": _meta(out),
            "contained": [_patient(out), _coverage(out), *tests],
            "extension": extensions,
            "identifier": _identifier(out),
            "status": REQUEST_STATUS.get(Status(out.status), "active"),
            "intent": "order",
            "category": [
                concept(CARE_TYPE, out.care_type.value),
                concept(DIRECTION, out.direction),
                concept(KIND, out.kind),
            ],
            "priority": priority_of(out),
            "code": _code(out),
            "subject": {"reference": "#patient"},
            "occurrenceDateTime": day(out.wanted_day),
            "authoredOn": instant(out.created_at),
            "requester": ref("Organization", out.source_institution_id),
            "performerType": concept(SPECIALTY, out.specialty_code),
            "performer": [ref("Organization", out.target_institution_id)],
            "reasonCode": [_reason(out)],
            "insurance": [{"reference": "#coverage"}],
            "supportingInfo": [{"reference": f"#{t['id']}"} for t in tests],
            "note": [{"text": out.clinical_summary}] if out.clinical_summary else [],
        }
    )


def _output(code: str, **value: Any) -> dict[str, Any]:
    return {"type": concept(TASK_OUTPUT, code), **value}


def task(
    out: Any, routing: DecisionOut | None = None, tier: TierOut | None = None
) -> dict[str, Any]:
    """The referral's fulfilment: its state, owner (the current target), the routing
    explanation and the reimbursement tier. ``out`` is the ``/v1`` answer (a read, with
    its routing and tier) or the referral's row (a worklist entry: no routing, no tier)."""
    outputs: list[dict[str, Any]] = []
    if routing is not None:
        outputs.append(_output("routing-outcome", valueCode=routing.outcome))
        if routing.explanation:
            outputs.append(_output("routing-explanation", valueString=routing.explanation))
        if routing.target is not None:
            outputs.append(_output("routing-rule", valueCode=routing.target.rule))
            if routing.target.why:
                outputs.append(_output("routing-why", valueString=routing.target.why))
        for alternative in routing.alternatives:
            outputs.append(
                _output(
                    "routing-alternative",
                    valueReference=ref(
                        "Organization", alternative.institution_id, alternative.name
                    ),
                )
            )
    outputs.append(_output("out-of-consortium", valueBoolean=out.out_of_consortium))
    outputs.append(_output("overflow", valueBoolean=out.overflow))
    if tier is not None:
        outputs.append(_output("reimbursement-tier", valueCodeableConcept=concept(TIER, tier.tier)))
        outputs.append(_output("reimbursement-ratio", valueDecimal=float(tier.ratio)))
        outputs.append(
            _output(
                "reimbursement-deductible",
                valueMoney={"value": float(tier.deductible), "currency": "CNY"},
            )
        )
        outputs.append(
            _output(
                "reimbursement-policy",
                valueString=f"{tier.policy_code} v{tier.policy_version}",
            )
        )
    status = Status(str(out.status))
    return resource(
        {
            "resourceType": "Task",
            "id": out.id,
            "meta": _meta(out),
            "identifier": _identifier(out),
            "basedOn": [ref("ServiceRequest", out.id)],
            "status": TASK_STATUS[status],
            "businessStatus": concept(REFERRAL_STATUS, status.value),
            "intent": "order",
            "priority": priority_of(out),
            "code": concept(
                "http://hl7.org/fhir/CodeSystem/task-code", "fulfill", "Fulfill the focal request"
            ),
            "focus": ref("ServiceRequest", out.id),
            "authoredOn": instant(out.created_at),
            "lastModified": instant(out.updated_at),
            "requester": ref("Organization", out.source_institution_id),
            "owner": ref("Organization", out.target_institution_id),
            "restriction": (
                {"period": {"end": instant(out.respond_by)}} if out.respond_by else None
            ),
            "output": outputs,
        }
    )


def full_task(out: ReferralOut) -> dict[str, Any]:
    """The Task of a read: with the routing explanation and the tier."""
    return task(out, out.routing, out.tier)
