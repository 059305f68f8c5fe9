"""Remote consultation and remote reading: the request, its conversion into a transfer, what
members offer and their readers' capacity. The answer is ``POST /v1/referrals/{id}/report``
(the lifecycle routes)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.deps import ContextDep, PrincipalDep, SessionDep, SettingsDep
from app.api.errors import problem_responses
from app.api.presenters import ETAG_HEADER, created_response, referral_links
from app.api.routes.referrals import IdempotencyKey
from app.api.schemas.common import ResponseModel
from app.api.schemas.referrals import ReferralOut
from app.api.schemas.remote import (
    ConvertIn,
    RemoteCapacityIn,
    RemoteCapacityOut,
    RemoteRequestCreate,
    RemoteServiceOut,
    RemoteServicesIn,
)
from app.services import creates, remote_capacity

router = APIRouter(prefix="/v1", tags=["remote"], responses=problem_responses(401, 422, 429))

_CREATED = {
    "headers": {"Location": {"schema": {"type": "string"}}, **ETAG_HEADER},
    "links": referral_links("$response.body#/id", "$response.header.ETag"),
}


@router.post(
    "/remote-requests",
    response_model=ReferralOut,
    status_code=status.HTTP_201_CREATED,
    responses={**problem_responses(403, 409, 503), 201: _CREATED},
)
async def create_remote_request(
    body: RemoteRequestCreate, ctx: ContextDep, idempotency_key: IdempotencyKey
) -> Response:
    """Ask a member to read an examination done here (`remote_read`) or to advise about a
    patient who stays (`consult`): routed to the members offering it for the specialty, with
    a free read or consult slot that day, by the referral rules; the slot is held. The answer
    is a referral of that `kind` (same numbers, episodes, events, webhooks and access);
    unanswered within its kind's answer time it is routed on; with no reader free it waits."""
    return created_response(await creates.create_remote(ctx, body, idempotency_key))


@router.post(
    "/referrals/{referral_id}/convert",
    response_model=ReferralOut,
    status_code=status.HTTP_201_CREATED,
    responses={**problem_responses(403, 404, 409, 503), 201: _CREATED},
)
async def convert_remote_request(
    referral_id: str, body: ConvertIn, ctx: ContextDep, idempotency_key: IdempotencyKey
) -> Response:
    """The requesting institution turns a reported consult or remote read into an
    up-referral in the same episode, pre-filled from it; at most once per request."""
    return created_response(await creates.convert(ctx, referral_id, body, idempotency_key))


class RemoteServicesOut(ResponseModel):
    institution_id: str
    services: list[RemoteServiceOut]


def _services_out(institution_id: str, found: list[tuple[str, str]]) -> RemoteServicesOut:
    return RemoteServicesOut(
        institution_id=institution_id,
        services=[RemoteServiceOut(kind=k, specialty_code=c) for k, c in found],
    )


@router.get(
    "/institutions/{institution_id}/remote-services",
    response_model=RemoteServicesOut,
    responses=problem_responses(404),
)
async def get_remote_services(
    institution_id: str, session: SessionDep, _: PrincipalDep
) -> RemoteServicesOut:
    """What the member offers remotely: consultation or reading, per specialty."""
    return _services_out(institution_id, await remote_capacity.services(session, institution_id))


@router.put(
    "/institutions/{institution_id}/remote-services",
    response_model=RemoteServicesOut,
    responses=problem_responses(403, 404),
)
async def put_remote_services(
    institution_id: str, body: RemoteServicesIn, session: SessionDep, principal: PrincipalDep
) -> RemoteServicesOut:
    """Replace what the member offers remotely (the hospital itself, its council, admins)."""
    found = await remote_capacity.set_services(session, principal, institution_id, body.services)
    return _services_out(institution_id, found)


class RemoteCapacityListOut(ResponseModel):
    institution_id: str
    items: list[RemoteCapacityOut]


@router.get(
    "/institutions/{institution_id}/remote-capacity",
    response_model=RemoteCapacityListOut,
    responses=problem_responses(404),
)
async def get_remote_capacity(
    institution_id: str, session: SessionDep, settings: SettingsDep, _: PrincipalDep
) -> RemoteCapacityListOut:
    """Read and consult slots from today on, with holds and staleness."""
    items = await remote_capacity.read(
        session, institution_id, stale_after=settings.census_stale_after
    )
    return RemoteCapacityListOut(
        institution_id=institution_id,
        items=[RemoteCapacityOut.model_validate(i, from_attributes=True) for i in items],
    )


@router.put(
    "/institutions/{institution_id}/remote-capacity",
    response_model=RemoteCapacityListOut,
    responses=problem_responses(403, 404, 409),
)
async def put_remote_capacity(
    institution_id: str,
    body: RemoteCapacityIn,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> RemoteCapacityListOut:
    """Push the readers' capacity (read slots per modality's specialty and day, consult slots
    per specialty and day), like the census: holds are kept, freed slots go to waiting
    requests first."""
    items = await remote_capacity.report(
        session,
        principal,
        institution_id,
        as_of=body.as_of,
        figures=body.capacity,
        settings=settings,
    )
    return RemoteCapacityListOut(
        institution_id=institution_id,
        items=[RemoteCapacityOut.model_validate(i, from_attributes=True) for i in items],
    )
