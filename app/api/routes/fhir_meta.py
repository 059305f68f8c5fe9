"""FHIR conformance: the CapabilityStatement and the service's profile (extensions and the
Task output code system). They hold no data of anyone: no key needed, as FHIR clients
expect of /metadata."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.routes.fhir_common import fhir_route, outcome_responses
from app.domain.errors import NotFound
from app.fhir import profile
from app.fhir.capability import capability_statement
from app.fhir.common import base_url, fhir_response

router = APIRouter(prefix="/fhir", tags=["fhir"], responses=outcome_responses(422, 429))
PUBLISHED = "2026-12-01"


@fhir_route(router, "get", "/metadata")
async def fhir_capabilities(request: Request) -> Response:
    """The CapabilityStatement: resources, interactions, search parameters, operations."""
    return fhir_response(capability_statement(base_url(request), PUBLISHED))


@fhir_route(router, "get", "/StructureDefinition/{definition_id}", errors=(404,))
async def fhir_read_structure_definition(definition_id: str) -> Response:
    """An extension of the service's profile (green-channel-pathway, up-referral-reason,
    duplicate-reason, bed-capacity)."""
    found = profile.structure_definition(definition_id)
    if found is None:
        raise NotFound("No such StructureDefinition.")
    return fhir_response(found)


@fhir_route(router, "get", "/CodeSystem/task-output")
async def fhir_read_task_output_codes() -> Response:
    """The codes of Task.output: routing explanation and reimbursement tier."""
    return fhir_response(profile.task_output_code_system())
