"""FHIR models for the tests: every /fhir answer is parsed, and every request body built,
with real FHIR model libraries.

- ``fhirclient`` (SMART on FHIR) models are generated from FHIR **4.0.1**, the R4 release the
  service implements: strict, they refuse unknown elements, wrong types and missing
  required elements.
- ``fhir.resources`` (pydantic) has no R4 4.0.1 models that run with pydantic 2 (its 6.x
  line, the last with R4 4.0.1, needs pydantic 1; 7.x and later ship R5 with R4B and STU3
  subpackages), so its ``R4B`` (4.3.0) models are used as the second parser and to build the
  request bodies: for the resources used here (ServiceRequest, Task, Patient, Condition,
  Coverage, Observation, Practitioner, Organization, HealthcareService, Location, Bundle,
  Parameters, OperationOutcome, CapabilityStatement, StructureDefinition, CodeSystem) R4B
  is R4 with no element changed that the service uses. Each body built is also parsed with
  the 4.0.1 models before it is sent.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntryRequest
from fhir.resources.R4B.parameters import Parameters, ParametersParameter
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhirclient.models.fhirelementfactory import FHIRElementFactory

from tests.factories import resident_id

FHIR_JSON = "application/fhir+json"
BASE = "https://referral.example.org/fhir"
NS = f"{BASE}/NamingSystem/"
CS = f"{BASE}/CodeSystem/"
ICD10_CLINICAL = f"{CS}icd-10-cn-clinical-2.0"


def r4(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` parsed as a FHIR R4 4.0.1 resource (fhirclient, strict) and as an R4B one
    (fhir.resources); returned unchanged."""
    assert isinstance(data, dict) and "resourceType" in data, data
    strict = FHIRElementFactory.instantiate(data["resourceType"], data)  # raises on any error
    assert strict.as_json()["resourceType"] == data["resourceType"]
    get_fhir_model_class(data["resourceType"]).model_validate(data)
    return data


def answer(r: httpx.Response, status: int, resource_type: str | None = None) -> dict[str, Any]:
    """The FHIR resource of a /fhir answer, with its status and media type checked."""
    assert r.status_code == status, (r.status_code, r.text[:800])
    assert r.headers["content-type"].startswith(FHIR_JSON), r.headers["content-type"]
    data = r4(r.json())
    if resource_type is not None:
        assert data["resourceType"] == resource_type, data
    return data


def outcome(r: httpx.Response, status: int) -> dict[str, Any]:
    """An error: an OperationOutcome with the /v1 status."""
    return answer(r, status, "OperationOutcome")


def expressions(o: dict[str, Any]) -> list[str]:
    return [e for issue in o["issue"] for e in issue.get("expression", [])]


def build(model: Any) -> dict[str, Any]:
    """A request body from a fhir.resources model, checked against the 4.0.1 models too."""
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return r4(data)


def patient(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "patient",
        "identifier": [{"system": NS + "resident_id", "value": resident_id()}],
        "name": [{"text": "测试患者乙"}],
        "telecom": [{"system": "phone", "value": "13800000000"}],
    }
    data.update(overrides)
    return data


def coverage(scheme: str = "390") -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "id": "coverage",
        "status": "active",
        "type": {"coding": [{"system": CS + "insutype", "code": scheme}]},
        "subscriberId": "INS-000777",
        "beneficiary": {"reference": "#patient"},
        "payor": [{"display": "医保"}],
    }


def service_request(
    *,
    priority: str = "urgent",
    specialty: str = "03",
    care_type: str = "inpatient",
    icd10: str = "I63.9",
    icd_system: str = ICD10_CLINICAL,
    the_patient: dict[str, Any] | None = None,
    extension: list[dict[str, Any]] | None = None,
    **elements: Any,
) -> dict[str, Any]:
    """An up-referral as a ServiceRequest with its Patient and Coverage contained."""
    data: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "contained": [the_patient or patient(), coverage()],
        "identifier": [{"system": "urn:his:order", "value": f"ORD-{resident_id()[-8:]}"}],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [{"system": CS + "care-type", "code": care_type}]}],
        "priority": priority,
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]},
        "subject": {"reference": "#patient"},
        "performerType": {"coding": [{"system": CS + "specialty", "code": specialty}]},
        "reasonCode": [
            {"coding": [{"system": icd_system, "code": icd10}], "text": "脑梗死（测试）"}
        ],
        "insurance": [{"reference": "#coverage"}],
        "note": [{"text": "summary"}],
    }
    if extension:
        data["extension"] = extension
    data.update(elements)
    return build(ServiceRequest.model_validate(data))


def transaction(**sr: Any) -> dict[str, Any]:
    """Patient + Condition + ServiceRequest (Coverage contained) as a transaction Bundle."""
    the_patient = patient()
    del the_patient["id"]
    condition = {
        "resourceType": "Condition",
        "code": {"coding": [{"system": ICD10_CLINICAL, "code": "I63.9"}], "text": "脑梗死"},
        "subject": {"reference": "urn:uuid:0f7e4c1a-0000-4000-8000-000000000001"},
    }
    request = service_request(**sr)
    request["subject"] = {"reference": "urn:uuid:0f7e4c1a-0000-4000-8000-000000000001"}
    request["contained"] = [coverage()]
    request["contained"][0]["beneficiary"] = {"reference": request["subject"]["reference"]}
    del request["reasonCode"]
    request["reasonReference"] = [{"reference": "urn:uuid:0f7e4c1a-0000-4000-8000-000000000002"}]
    entries = [
        ("urn:uuid:0f7e4c1a-0000-4000-8000-000000000001", the_patient, "Patient"),
        ("urn:uuid:0f7e4c1a-0000-4000-8000-000000000002", condition, "Condition"),
        ("urn:uuid:0f7e4c1a-0000-4000-8000-000000000003", request, "ServiceRequest"),
    ]
    bundle = Bundle(
        type="transaction",
        entry=[
            BundleEntry(
                fullUrl=url,
                resource=get_fhir_model_class(kind).model_validate(resource),
                request=BundleEntryRequest(method="POST", url=kind),
            )
            for url, resource, kind in entries
        ],
    )
    return build(bundle)


def parameters(**values: tuple[str, Any]) -> dict[str, Any]:
    """``Parameters`` of an operation: name=(value[x] element, value)."""
    return build(
        Parameters(
            parameter=[
                ParametersParameter.model_validate({"name": name, kind: value})
                for name, (kind, value) in values.items()
            ]
        )
    )


def today() -> str:
    return date.today().isoformat()
