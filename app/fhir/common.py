"""FHIR R4 (4.0.1) constants and small helpers shared by the mapping modules."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from fastapi import Request, Response

from app.domain.errors import InvalidInput

FHIR_VERSION = "4.0.1"
FHIR_JSON = "application/fhir+json"
#: the service's own code systems, naming systems and extensions
BASE = "https://referral.example.org/fhir"
CS = f"{BASE}/CodeSystem/"
NS = f"{BASE}/NamingSystem/"
SD = f"{BASE}/StructureDefinition/"

#: ICD-10 editions the service supports, as FHIR code systems
ICD10_SYSTEMS = {
    "gb_t_14396_2016": f"{CS}icd-10-gb-t-14396-2016",
    "clinical_2_0": f"{CS}icd-10-cn-clinical-2.0",
    "insurance_2_0": f"{CS}icd-10-cn-insurance-2.0",
    "unspecified": f"{CS}icd-10-cn-unspecified",
}
ICD10_EDITIONS = {system: edition for edition, system in ICD10_SYSTEMS.items()}
ICD_O_3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
SNOMED = "http://snomed.info/sct"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"

SPECIALTY = f"{CS}specialty"  # the national catalogue of medical subjects (诊疗科目)
CARE_TYPE = f"{CS}care-type"
DIRECTION = f"{CS}referral-direction"
KIND = f"{CS}referral-kind"  # transfer, consult, remote_read
REFERRAL_STATUS = f"{CS}referral-status"  # the lifecycle state exactly (Task.businessStatus)
TASK_OUTPUT = f"{CS}task-output"
REJECT_REASON = f"{CS}reject-reason"
INSUTYPE = f"{CS}insutype"  # 险种类型 of the national medical-insurance platform
TIER = f"{CS}reimbursement-tier"
LEVEL = f"{CS}institution-level"
INSTITUTION_TYPE = f"{CS}institution-type"
GRADE = f"{CS}institution-grade"
CENTRE = f"{CS}green-channel-centre"
PROBLEM = "https://referral.example.org/problems"
FIELD_ERROR = f"{CS}field-error"

REFERRAL_NUMBER = f"{NS}referral-number"
INSTITUTION_CODE = f"{NS}institution-code"
USCC = f"{NS}uscc"
LICENCE = f"{NS}licence-number"
INSURANCE_CODE = f"{NS}insurance-code"
ISO_3166 = "urn:iso:std:iso:3166"

EXT_PATHWAY = f"{SD}green-channel-pathway"
EXT_UP_REASON = f"{SD}up-referral-reason"
EXT_DUPLICATE_REASON = f"{SD}duplicate-reason"
EXT_BED_CAPACITY = f"{SD}bed-capacity"
EXT_REMOTE_SERVICE = f"{SD}remote-service"
EXT_CONSORTIUM = f"{SD}consortium"

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def fhir_response(
    resource: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    content = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, status, dict(headers or {}), media_type=FHIR_JSON)


def weak_etag(version: int) -> str:
    return f'W/"{version}"'


ETAG_FORM = re.compile(r'^\s*(?:W/)?"(\d{1,9})"\s*$')


def referral_if_match(referral_id: str, if_match: str | None) -> str | None:
    """``If-Match: W/"3"`` as the referral's ``/v1`` ETag, for the lifecycle service to check;
    anything else (another form, another referral's ETag) can only fail its check."""
    if if_match is None:
        return None
    m = ETAG_FORM.fullmatch(if_match)
    return f'"{referral_id}.{m.group(1)}"' if m else if_match.strip() or '""'


def instant(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [coding(system, code, display)]}


def ref(resource_type: str, resource_id: str | None, display: str | None = None) -> Any:
    if resource_id is None:
        return None
    out: dict[str, Any] = {"reference": f"{resource_type}/{resource_id}"}
    if display:
        out["display"] = display
    return out


def prune(value: Any) -> Any:
    """Drop None, empty lists and empty objects: FHIR has no nulls and no empty elements."""
    if isinstance(value, dict):
        out = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {}, "")}
    if isinstance(value, list):
        items = [prune(v) for v in value]
        return [v for v in items if v not in (None, [], {}, "")]
    return value


def resource(value: dict[str, Any]) -> dict[str, Any]:
    """A resource without empty elements (``prune`` of a JSON object)."""
    out: dict[str, Any] = prune(value)
    return out


def invalid(expression: Sequence[str | int], msg: str, kind: str = "value_error") -> InvalidInput:
    """A 422 naming the FHIR element (``ServiceRequest.priority``), never its value."""
    return InvalidInput(
        "The resource has invalid or missing elements.",
        errors=[{"loc": list(expression), "msg": msg, "type": kind}],
    )


def reference_id(value: Any, resource_type: str, where: Sequence[str | int]) -> str:
    """The id of ``{"reference": "Organization/<id>"}`` (or a bare ``<id>`` in search
    parameters), else 422 naming ``where``."""
    text = value.get("reference") if isinstance(value, dict) else value
    if not isinstance(text, str):
        raise invalid(where, f"a reference to a {resource_type}", "reference_invalid")
    text = text.strip()
    prefix = resource_type + "/"
    if "/" in text:
        if not text.startswith(prefix):
            raise invalid(where, f"a reference to a {resource_type}", "reference_invalid")
        text = text[len(prefix) :]
    if not ID_PATTERN.fullmatch(text):
        raise invalid(where, f"a reference to a {resource_type}", "reference_invalid")
    return text


def base_url(request: Request) -> str:
    """The FHIR base as the client reached it (root path included)."""
    return str(request.base_url).rstrip("/") + "/fhir"
