"""The CapabilityStatement: what ``/fhir`` answers, read from one table that the routes
are declared from too (``RESOURCES``), so it cannot promise what is not there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app import __version__
from app.fhir.common import BASE, FHIR_VERSION


@dataclass(frozen=True, slots=True)
class SearchParam:
    name: str
    type: str
    documentation: str


@dataclass(frozen=True, slots=True)
class ResourceCapability:
    type: str
    interactions: tuple[str, ...]
    search: tuple[SearchParam, ...] = ()
    operations: tuple[tuple[str, str], ...] = ()  # (name, documentation)
    documentation: str = ""
    versioning: str = "no-version"
    conditional_create: bool = False
    sort: tuple[str, ...] = field(default=())


COUNT = SearchParam("_count", "number", "Page size, 1 to 200 (default 50).")
CURSOR = SearchParam("_cursor", "string", "Paging token: follow the Bundle's next link.")
REGISTRY_SEARCH = (COUNT, CURSOR)

RESOURCES: tuple[ResourceCapability, ...] = (
    ResourceCapability(
        "Organization",
        ("read", "search-type"),
        (
            SearchParam("name", "string", "Part of the name or the institution code."),
            SearchParam(
                "type", "token", "Level (institution-level) or type (institution-type) code."
            ),
            SearchParam("active", "token", "true or false."),
            SearchParam(
                "consortium", "string", "Consortium (id or code): its members and partners."
            ),
            *REGISTRY_SEARCH,
        ),
        documentation="Institutions of the registry, any key.",
    ),
    ResourceCapability(
        "HealthcareService",
        ("read", "search-type"),
        (
            SearchParam("organization", "reference", "The institution."),
            SearchParam("specialty", "token", "A subject code of the national catalogue."),
            SearchParam("characteristic", "token", "A green-channel centre."),
            SearchParam("active", "token", "true or false."),
            *REGISTRY_SEARCH,
        ),
        documentation=(
            "What each institution offers: specialties, green-channel centres; a read gives "
            "its remote services (remote-service)."
        ),
    ),
    ResourceCapability(
        "Location",
        ("read", "search-type"),
        (
            SearchParam("organization", "reference", "The institution."),
            *REGISTRY_SEARCH,
        ),
        documentation="Where each institution is; read gives its beds (bed-capacity).",
    ),
    ResourceCapability(
        "ServiceRequest",
        ("read", "vread", "create", "search-type"),
        (
            SearchParam("requester", "reference", "The referring institution."),
            *REGISTRY_SEARCH,
        ),
        documentation=(
            "The up-referral. Create needs Idempotency-Key or If-None-Exist: identifier=...; "
            "201 answers the Task routing produced."
        ),
        versioning="versioned",
        conditional_create=True,
    ),
    ResourceCapability(
        "Observation",
        ("create", "search-type"),
        (SearchParam("based-on", "reference", "The ServiceRequest (required)."),),
        documentation=(
            "Green-channel milestones (category milestone) and their time targets "
            "(milestone-target: minutes measured, the target as referenceRange, met, missed "
            "or pending); create records a milestone."
        ),
    ),
    ResourceCapability(
        "Task",
        ("read", "vread", "update", "patch", "search-type"),
        (
            SearchParam("owner", "reference", "The current target."),
            SearchParam("status", "token", "Task status (comma-separated)."),
            SearchParam(
                "_sort", "string", "priority (the worklist order: most urgent, then oldest)."
            ),
            *REGISTRY_SEARCH,
        ),
        operations=(
            ("accept", "Accept (current target): ward, bed, appointment, session, note."),
            ("reject", "Reject (current target): reason (reject-reason code), text."),
        ),
        documentation=(
            'The referral\'s fulfilment. PATCH or PUT of status (If-Match: W/"<version>") '
            "takes the transition; businessStatus is the exact lifecycle state."
        ),
        versioning="versioned-update",
    ),
)


def capability_statement(base: str, published: str) -> dict[str, Any]:
    resources = []
    for r in RESOURCES:
        entry: dict[str, Any] = {
            "type": r.type,
            "documentation": r.documentation,
            "interaction": [{"code": i} for i in r.interactions],
            "versioning": r.versioning,
            "readHistory": False,
            "conditionalCreate": r.conditional_create,
            "searchParam": [
                {"name": p.name, "type": p.type, "documentation": p.documentation} for p in r.search
            ],
        }
        if r.operations:
            entry["operation"] = [
                {
                    "name": name,
                    "definition": f"{BASE}/OperationDefinition/Task-{name}",
                    "documentation": doc,
                }
                for name, doc in r.operations
            ]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published,
        "publisher": "Referral routing service",
        "kind": "instance",
        "software": {"name": "referral-service", "version": __version__},
        "implementation": {"description": "Two-way referral routing (FHIR R4 face)", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Same keys, roles and rules as /v1.",
                "security": {
                    "cors": False,
                    "description": "API key: Authorization: Bearer <key> or X-API-Key.",
                },
                "resource": resources,
                "interaction": [{"code": "transaction"}],
            }
        ],
    }
