"""FHIR Observation: a green-channel referral's milestones and time targets (search by the
ServiceRequest) and a milestone recorded (create), through the /v1 pathways service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from app.api.deps import PrincipalDep, SessionDep
from app.api.routes.fhir_common import FHIR_RESPONSES, UserId, fhir_route
from app.api.routes.pathways import milestones_out
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.fhir import milestones
from app.fhir.common import base_url, fhir_response, reference_id
from app.fhir.search import searchset
from app.services import pathways

router = APIRouter(prefix="/fhir", tags=["fhir"], responses=FHIR_RESPONSES)


@fhir_route(router, "get", "/Observation")
async def fhir_search_observation(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    based_on: Annotated[
        str,
        Query(alias="based-on", max_length=80, description="ServiceRequest/<id> (required)."),
    ],
) -> Response:
    """The milestones and time targets of one green-channel referral (as
    GET /v1/referrals/{id}/milestones); a referral the caller may not read, or one off the
    green channel, has none."""
    referral_id = reference_id(based_on, "ServiceRequest", ["query", "based-on"])
    try:
        view = await pathways.milestones(session, principal, referral_id)
    except (NotFound, Conflict):
        return fhir_response(searchset(request, [], None))
    return fhir_response(
        searchset(request, milestones.observations(referral_id, milestones_out(view)), None)
    )


@fhir_route(router, "post", "/Observation", status_code=201, errors=(403, 409), body=True)
async def fhir_create_observation(
    request: Request,
    body: Annotated[dict[str, Any], Body()],
    session: SessionDep,
    principal: PrincipalDep,
    user: UserId = None,
) -> Response:
    """Record a milestone (as POST /v1/referrals/{id}/milestones): code in the milestone code
    system, effectiveDateTime with its offset, basedOn the ServiceRequest. 201 with the
    Observation."""
    referral_id, milestone = milestones.milestone_of(body)
    try:
        view = await pathways.record_milestone(
            session, principal, referral_id, milestone.milestone, milestone.at, user
        )
    except InvalidInput as exc:
        raise milestones.renamed(exc) from None
    recorded = milestones.observations(referral_id, milestones_out(view))
    created = next(o for o in recorded if o["code"]["coding"][0]["code"] == milestone.milestone)
    return fhir_response(
        created,
        201,
        {"Location": f"{base_url(request)}/Observation?based-on=ServiceRequest/{referral_id}"},
    )
