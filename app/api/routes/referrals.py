"""Up- and down-referrals: routing preview, idempotent creation with a held bed, reading one."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response, status

from app.api.deps import ContextDep, PrincipalDep, ProtectorDep, SessionDep, SettingsDep
from app.api.errors import problem_responses
from app.api.presenters import ETAG_HEADER, created_response, referral_links, referral_out
from app.api.schemas.referrals import (
    PreviewDecisionOut,
    ReferralCreateBody,
    ReferralOut,
    RoutingPreviewIn,
)
from app.services import creates, routing_inputs, views

router = APIRouter(prefix="/v1", tags=["referrals"], responses=problem_responses(401, 422, 429))

IdempotencyKey = Annotated[
    str,
    Header(
        min_length=1,
        max_length=200,
        description="Required. The same key and body replay the first answer; keys are kept 24 h.",
    ),
]


@router.post(
    "/routing/preview",
    response_model=PreviewDecisionOut,
    responses=problem_responses(403),
)
async def preview_routing(
    body: RoutingPreviewIn,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    exclusions: Annotated[
        Literal["listed", "all"],
        Query(
            description="listed: the decision as a create stores it (at most 20 alternatives "
            "and 20 exclusions, all of them counted); all: routed over every member, listing "
            "every alternative and every exclusion (large for a large consortium)."
        ),
    ] = "listed",
) -> PreviewDecisionOut:
    """The decision `POST /v1/referrals` would take now, without creating or holding anything;
    each ranked candidate carries what the patient would get back there (`reimbursement`: tier,
    deductible, ratio under the policy in force, for `insurance_scheme`)."""
    decision = await routing_inputs.preview(
        session, settings, principal, body, complete=exclusions == "all"
    )
    return PreviewDecisionOut.model_validate(decision)


@router.post(
    "/referrals",
    response_model=ReferralOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **problem_responses(403, 409, 503),
        201: {
            "description": "Created: routed with a hold, out of consortium, or waitlisted.",
            "headers": {"Location": {"schema": {"type": "string"}}, **ETAG_HEADER},
            "links": referral_links("$response.body#/id", "$response.header.ETag"),
        },
    },
)
async def create_referral(
    body: ReferralCreateBody, ctx: ContextDep, idempotency_key: IdempotencyKey
) -> Response:
    """Send a referral from the caller's institution: `direction` `up` (default) or `down`.

    Up: route, hold a bed (or outpatient slot) with one conditional update, write the
    referral, its routing decision and its first event, in one transaction. With no member or
    partner able to take the patient, the referral is created **waitlisted** (not an error).

    Down (hospitals): needs the stability attestation, the discharge summary, the follow-up
    plan and the medication list; routed to the patient's signed primary institution, else the
    one that referred the patient up in this episode, else the nearest offering the service.
    """
    return created_response(await creates.create_referral(ctx, body, idempotency_key))


@router.get(
    "/referrals/{referral_id}",
    response_model=ReferralOut,
    responses={
        **problem_responses(404),
        200: {
            "headers": ETAG_HEADER,
            "links": referral_links("$response.body#/id", "$response.header.ETag"),
        },
    },
)
async def get_referral(
    referral_id: str,
    session: SessionDep,
    protector: ProtectorDep,
    principal: PrincipalDep,
    response: Response,
) -> ReferralOut:
    """One referral: for its source, its current target, its council and admins."""
    view = await views.get_referral(session, protector, principal, referral_id)
    response.headers["ETag"] = view.etag
    return referral_out(view)
