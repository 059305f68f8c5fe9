"""The service's small FHIR profile: its extensions (StructureDefinitions) and the code
systems of its Task outputs, served under /fhir and described in the README ("FHIR")."""

from __future__ import annotations

from typing import Any

from app.fhir.common import (
    EXT_BED_CAPACITY,
    EXT_DUPLICATE_REASON,
    EXT_PATHWAY,
    EXT_REMOTE_SERVICE,
    EXT_UP_REASON,
    TASK_OUTPUT,
)

#: extension id -> (url, context, value type, what it says)
EXTENSIONS: dict[str, tuple[str, str, str, str]] = {
    "green-channel-pathway": (
        EXT_PATHWAY,
        "ServiceRequest",
        "code",
        "Green-channel pathway (stroke, chest_pain, trauma, critical_maternal, "
        "critical_neonatal): nearest centre even when full; priority stat.",
    ),
    "up-referral-reason": (
        EXT_UP_REASON,
        "ServiceRequest",
        "code",
        "Why the patient is referred up: outside_primary_scope (default), emergency, "
        "critical, difficult, major, patient_request.",
    ),
    "duplicate-reason": (
        EXT_DUPLICATE_REASON,
        "ServiceRequest",
        "code",
        "A second live up-referral for the same patient and specialty on purpose: "
        "second_opinion, different_condition, previous_stalled, other.",
    ),
    "remote-service": (
        EXT_REMOTE_SERVICE,
        "HealthcareService",
        "complex",
        "A remote service offered: kind (code: consult or remote_read) and specialty (Coding).",
    ),
    "bed-capacity": (
        EXT_BED_CAPACITY,
        "Location",
        "complex",
        "Beds of one specialty: specialty (Coding), total, occupied, held, free "
        "(unsignedInt), stale (boolean), asOf (dateTime).",
    ),
}

#: Task.output types (code system task-output)
TASK_OUTPUTS: dict[str, str] = {
    "routing-outcome": "valueCode: routed, out_of_consortium or waitlisted.",
    "routing-explanation": "valueString: why this target, in words.",
    "routing-rule": "valueCode: the ranking rule that decided the target.",
    "routing-why": "valueString: the target's own explanation.",
    "routing-alternative": "valueReference: a ranked alternative (in rank order).",
    "out-of-consortium": "valueBoolean: routed to an upstream partner.",
    "overflow": "valueBoolean: placed at a full green-channel centre.",
    "reimbursement-tier": "valueCodeableConcept: the tier recorded for the current target.",
    "reimbursement-ratio": "valueDecimal: share reimbursed above the deductible.",
    "reimbursement-deductible": "valueMoney: the deductible in CNY.",
    "reimbursement-policy": "valueString: policy code and version.",
}


def structure_definition(ext_id: str) -> dict[str, Any] | None:
    found = EXTENSIONS.get(ext_id)
    if found is None:
        return None
    url, context, value_type, description = found
    value: list[dict[str, Any]]
    if value_type == "complex":
        value = [{"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 0, "max": "0"}]
    else:
        value = [
            {
                "id": "Extension.value[x]",
                "path": "Extension.value[x]",
                "min": 1,
                "type": [{"code": value_type}],
            }
        ]
    return {
        "resourceType": "StructureDefinition",
        "id": ext_id,
        "url": url,
        "name": "".join(w.title() for w in ext_id.split("-")),
        "status": "active",
        "description": description,
        "fhirVersion": "4.0.1",
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": context}],
        "type": "Extension",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
        "derivation": "constraint",
        "differential": {
            "element": [
                {"id": "Extension", "path": "Extension", "short": description[:80]},
                {
                    "id": "Extension.url",
                    "path": "Extension.url",
                    "fixedUri": url,
                },
                *value,
            ]
        },
    }


def task_output_code_system() -> dict[str, Any]:
    return {
        "resourceType": "CodeSystem",
        "id": "task-output",
        "url": TASK_OUTPUT,
        "name": "TaskOutput",
        "status": "active",
        "content": "complete",
        "concept": [
            {"code": code, "display": code.replace("-", " "), "definition": text}
            for code, text in TASK_OUTPUTS.items()
        ],
    }
