"""What the /fhir routes share: their OpenAPI declarations (FHIR JSON bodies, errors as
OperationOutcome) and the common parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Query, Response

from app.fhir.common import FHIR_JSON

F = TypeVar("F", bound=Callable[..., Any])

OUTCOME_SCHEMA = {
    "type": "object",
    "description": "A FHIR R4 OperationOutcome: each issue names the element (expression) and "
    "the rule; the HTTP status is the one /v1 answers.",
    "properties": {"resourceType": {"const": "OperationOutcome"}, "issue": {"type": "array"}},
    "required": ["resourceType", "issue"],
}
RESOURCE_SCHEMA = {
    "type": "object",
    "description": "A FHIR R4 (4.0.1) resource in JSON.",
    "properties": {"resourceType": {"type": "string"}},
    "required": ["resourceType"],
}
TITLES = {
    400: "Bad request",
    401: "Missing or invalid API key",
    403: "Not allowed for this key",
    404: "Not found",
    409: "Conflict",
    412: "Precondition failed",
    422: "Invalid request",
    428: "Precondition required",
    429: "Too many requests",
    503: "Service unavailable",
}


def outcome_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        s: {"description": TITLES[s], "content": {FHIR_JSON: {"schema": OUTCOME_SCHEMA}}}
        for s in statuses
    }


FHIR_RESPONSES = outcome_responses(401, 404, 422, 429)

Count = Annotated[
    int,
    Query(alias="_count", ge=1, le=200, description="Page size (1 to 200)."),
]
Cursor = Annotated[
    str | None,
    Query(alias="_cursor", max_length=200, description="Paging token: follow the next link."),
]
IfMatch = Annotated[
    str,
    Header(max_length=100, description='W/"<version>" (meta.versionId); without it: 428.'),
]
UserId = Annotated[
    str | None,
    Header(alias="X-User-ID", max_length=100, description="The HIS user acting; kept in events."),
]


def fhir_route(
    router: APIRouter,
    method: str,
    path: str,
    *,
    status_code: int = 200,
    errors: tuple[int, ...] = (),
    body: bool = False,
    description: str | None = None,
) -> Callable[[F], F]:
    """Declares one FHIR interaction: its answer is FHIR JSON (a Response made by the
    endpoint) and its errors OperationOutcomes, each with its operation id."""

    def decorate(endpoint: F) -> F:
        extra: dict[str, Any] = {}
        if body:  # the body parameter declares application/json; FHIR JSON is the same
            extra["requestBody"] = {"content": {FHIR_JSON: {"schema": RESOURCE_SCHEMA}}}
        router.add_api_route(
            path,
            endpoint,
            methods=[method.upper()],
            name=endpoint.__name__,
            status_code=status_code,
            response_class=Response,
            description=description or endpoint.__doc__ or "",
            responses={
                status_code: {
                    "description": "A FHIR R4 resource.",
                    "content": {FHIR_JSON: {"schema": RESOURCE_SCHEMA}},
                },
                **outcome_responses(*errors),
            },
            openapi_extra=extra or None,
        )
        return endpoint

    return decorate
