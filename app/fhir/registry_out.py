"""The registry as FHIR: an institution is an ``Organization`` (national identifiers; level,
type and grade as types), a ``HealthcareService`` (its specialties and green-channel
centres) and a ``Location`` (where it is, and its beds when a census exists). The three share
the institution's id."""

from __future__ import annotations

from typing import Any

from app.api.schemas.capacity import CapacityItemOut
from app.api.schemas.registry import InstitutionOut
from app.fhir.common import (
    CENTRE,
    EXT_BED_CAPACITY,
    EXT_REMOTE_SERVICE,
    GRADE,
    INSTITUTION_CODE,
    INSTITUTION_TYPE,
    INSURANCE_CODE,
    LEVEL,
    LICENCE,
    SPECIALTY,
    USCC,
    concept,
    instant,
    ref,
    resource,
)


def _meta(i: InstitutionOut) -> dict[str, Any]:
    return {"lastUpdated": instant(i.updated_at)}


def organization(i: InstitutionOut) -> dict[str, Any]:
    identifiers = [{"use": "usual", "system": INSTITUTION_CODE, "value": i.code}]
    for system, value in (
        (USCC, i.uscc),
        (LICENCE, i.licence_number),
        (INSURANCE_CODE, i.insurance_code),
    ):
        if value:
            identifiers.append({"use": "official", "system": system, "value": value})
    types = [concept(LEVEL, i.level.value), concept(INSTITUTION_TYPE, i.type.value)]
    if i.grade is not None:
        types.append(concept(GRADE, i.grade.value, i.grade_name))
    return resource(
        {
            "resourceType": "Organization",
            "id": i.id,
            "meta": _meta(i),
            "identifier": identifiers,
            "active": i.active,
            "type": types,
            "name": i.name,
            "alias": [i.name_en] if i.name_en else [],
            "contact": [
                {
                    "name": {"text": i.contact.name} if i.contact.name else None,
                    "telecom": (
                        [{"system": "phone", "value": i.contact.phone}] if i.contact.phone else []
                    ),
                }
            ]
            if i.contact.name or i.contact.phone
            else [],
        }
    )


def healthcare_service(
    i: InstitutionOut, remote: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """``remote``: what it offers remotely, (kind, specialty) pairs (a read gives them)."""
    extensions = [
        {
            "url": EXT_REMOTE_SERVICE,
            "extension": [
                {"url": "kind", "valueCode": kind},
                {"url": "specialty", "valueCoding": {"system": SPECIALTY, "code": code}},
            ],
        }
        for kind, code in remote or []
    ]
    return resource(
        {
            "resourceType": "HealthcareService",
            "id": i.id,
            "meta": _meta(i),
            "extension": extensions,
            "active": i.active,
            "providedBy": ref("Organization", i.id, i.name),
            "location": [ref("Location", i.id)] if i.location else [],
            "name": i.name,
            "specialty": [concept(SPECIALTY, s) for s in i.specialties],
            "characteristic": [concept(CENTRE, c.value) for c in i.centres],
            "referralMethod": [
                concept("http://terminology.hl7.org/CodeSystem/service-referral-method", "elec")
            ],
            "appointmentRequired": True,
        }
    )


def location(i: InstitutionOut, capacity: list[CapacityItemOut] | None = None) -> dict[str, Any]:
    beds = [c for c in capacity or [] if c.kind == "beds"]
    extensions = [
        {
            "url": EXT_BED_CAPACITY,
            "extension": [
                {
                    "url": "specialty",
                    "valueCoding": {"system": SPECIALTY, "code": c.specialty_code},
                },
                {"url": "total", "valueUnsignedInt": c.total},
                {"url": "occupied", "valueUnsignedInt": c.occupied},
                {"url": "held", "valueUnsignedInt": c.held},
                {"url": "free", "valueUnsignedInt": c.free},
                {"url": "stale", "valueBoolean": c.stale},
                *([{"url": "asOf", "valueDateTime": instant(c.as_of)}] if c.as_of else []),
            ],
        }
        for c in beds
    ]
    return resource(
        {
            "resourceType": "Location",
            "id": i.id,
            "meta": _meta(i),
            "extension": extensions,
            "status": "active" if i.active else "inactive",
            "name": i.name,
            "mode": "instance",
            "managingOrganization": ref("Organization", i.id, i.name),
            "position": (
                {"longitude": i.location.lon, "latitude": i.location.lat} if i.location else None
            ),
        }
    )
