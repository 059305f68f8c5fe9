"""Up-referrals: routing preview, idempotent creation with a held bed, reading one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import PrincipalDep, SessionDep, SettingsDep, get_database
from app.api.errors import problem_responses
from app.api.schemas.referrals import (
    DecisionOut,
    DiagnosisOut,
    DownReferralCreate,
    HoldOut,
    PatientOut,
    ReferralCreateBody,
    ReferralOut,
    RoutingPreviewIn,
)
from app.api.schemas.tiers import TierOut
from app.config import Settings
from app.db.base import utcnow
from app.domain.enums import Role
from app.domain.errors import Conflict, Forbidden
from app.domain.lifecycle import Action
from app.domain.national_codes import scheme_name, scheme_name_en
from app.services import down_referrals, idempotency, referrals
from app.services.auth import Principal
from app.services.crypto import PatientDataProtector

router = APIRouter(prefix="/v1", tags=["referrals"], responses=problem_responses(401, 422, 429))

ETAG_HEADER = {"ETag": {"schema": {"type": "string"}, "description": "Send it as If-Match."}}


def referral_links(referral_id: str, etag: str | None = None) -> dict[str, Any]:
    """OpenAPI links from a response that names a referral: read it and its audit trail and,
    given its ETag, take any transition (as `If-Match`), for clients and stateful tests."""
    links: dict[str, Any] = {
        "GetReferral": {"operationId": "get_referral", "parameters": {"referral_id": referral_id}},
        "ListReferralEvents": {
            "operationId": "list_referral_events",
            "parameters": {"referral_id": referral_id},
        },
    }
    if etag is not None:
        for action in Action:
            if action is Action.EXPIRE:  # the sweeper's, not an endpoint
                continue
            operation = f"{action.value.replace('-', '_')}_referral"
            links["".join(w.title() for w in operation.split("_"))] = {
                "operationId": operation,
                "parameters": {"referral_id": referral_id, "header.if-match": etag},
            }
    return links


IdempotencyKey = Annotated[
    str,
    Header(
        min_length=1,
        max_length=200,
        description="Required. The same key and body replay the first answer; keys are kept 24 h.",
    ),
]


def _protector(request: Request) -> PatientDataProtector:
    protector: PatientDataProtector = request.app.state.protector
    return protector


def referral_out(view: referrals.ReferralView) -> ReferralOut:
    row = view.row
    return ReferralOut(
        id=row.id,
        number=row.number,
        direction=row.direction,
        status=row.status,
        consortium_id=row.consortium_id,
        source_institution_id=row.source_institution_id,
        target_institution_id=row.target_institution_id,
        out_of_consortium=row.out_of_consortium,
        specialty_code=row.specialty_code,
        care_type=row.care_type,
        wanted_day=row.wanted_day,
        urgency=row.urgency,
        insurance_scheme=row.insurance_scheme,
        insurance_scheme_name=scheme_name(row.insurance_scheme),
        insurance_scheme_name_en=scheme_name_en(row.insurance_scheme),
        patient=PatientOut.model_validate(referrals.masked(view)),
        patient_sex=row.patient_sex.word,
        patient_sex_code=row.patient_sex,
        patient_birth_date=row.patient_birth_date if view.show_full_identity else None,
        patient_birth_year=row.patient_birth_date.year,
        diagnosis=DiagnosisOut(
            code=row.diagnosis_code,
            code_system=row.diagnosis_code_system,
            name=row.diagnosis_name,
            morphology=row.diagnosis_morphology,
            text=view.sensitive.get("diagnosis_text"),
            icd10=row.diagnosis_code,
        ),
        clinical_summary=view.sensitive.get("clinical_summary"),
        tests_done=view.sensitive.get("tests_done") or [],
        referring_doctor=row.referring_doctor,
        hold=(
            HoldOut(kind=row.hold_kind, specialty_code=row.hold_specialty_code, day=row.hold_day)
            if row.hold_kind and row.hold_specialty_code
            else None
        ),
        pathway_code=row.pathway_code,
        episode_id=row.episode_id,
        parent_referral_id=row.parent_referral_id,
        overflow=row.overflow,
        respond_by=row.respond_by,
        routing=DecisionOut.model_validate(view.decision) if view.decision else None,
        tier=TierOut.model_validate(view.tier) if view.tier else None,
        version=row.version,
        created_at=row.created_at,
        created_local_date=view.created_local_date,
        updated_at=row.updated_at,
    )


def etag(view: referrals.ReferralView) -> str:
    return f'"{view.row.id}.{view.row.version}"'


@router.post(
    "/routing/preview",
    response_model=DecisionOut,
    responses=problem_responses(403),
)
async def preview_routing(
    body: RoutingPreviewIn, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
) -> DecisionOut:
    """The decision `POST /v1/referrals` would take now, without creating or holding anything."""
    decision = await referrals.preview(
        session, settings, principal, body.model_dump(), body.source_institution_id
    )
    return DecisionOut.model_validate(decision)


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
    request: Request,
    body: ReferralCreateBody,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey,
) -> Response:
    """Send a referral from the caller's institution: `direction` `up` (default) or `down`.

    Up: route, hold a bed (or outpatient slot) with one conditional update, write the
    referral, its routing decision and its first event, in one transaction. With no member or
    partner able to take the patient, the referral is created **waitlisted** (not an error).

    Down (hospitals): needs the stability attestation, the discharge summary, the follow-up
    plan and the medication list; routed to the patient's signed primary institution, else the
    one that referred the patient up in this episode, else the nearest offering the service.
    """
    protector = _protector(request)
    if isinstance(body, DownReferralCreate) and principal.role is not Role.HOSPITAL:
        raise Forbidden("Down-referrals are sent by hospitals.")  # before any key is claimed

    async def work(number: referrals.Number | None) -> referrals.ReferralView:
        if isinstance(body, DownReferralCreate):
            return await down_referrals.create_down_referral(
                session, settings, protector, principal, body.model_dump(), number=number
            )
        return await referrals.create_up_referral(
            session, settings, protector, principal, body.model_dump(), number=number
        )

    return await idempotent_create(
        request, session, settings, principal, idempotency_key, body.model_dump(mode="json"), work
    )


async def idempotent_create(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    idempotency_key: str,
    body_json: dict[str, Any],
    work: Callable[[referrals.Number | None], Awaitable[referrals.ReferralView]],
) -> Response:
    """Run a create once per key: a repeated request gets the referral the first one made.

    The record keeps no patient data: the status, ``Location``, ``ETag`` and the referral id;
    a replay renders the referral again for the caller (who may see less by now). Keys are
    scoped by the API key, and the role is checked before the claim, so a refused create
    neither claims a key nor takes a number. The referral number is taken in the claim's short
    transaction (``referrals.take_number``); the bed or slot hold runs last, just before
    COMMIT, and a lost race rolls back to the attempt's savepoint. The claim is fenced: if it
    stalled past ``REFERRAL_IDEMPOTENCY_IN_FLIGHT_SECONDS`` and a retry took it over, this
    request's transaction cannot mark it done and rolls back (exactly one referral)."""
    if principal.institution_id is None or principal.role not in (Role.CLINIC, Role.HOSPITAL):
        raise Forbidden("Only a clinic or hospital key sends referrals.")
    database = get_database(request)
    institution_id = principal.institution_id
    taken: list[referrals.Number | None] = []

    async def take_number(claim: AsyncSession) -> None:
        taken.append(await referrals.take_number(claim, institution_id, utcnow()))

    claimed = await idempotency.claim(
        database,
        scope_id=principal.key_id,
        key=idempotency_key,
        body_hash=idempotency.request_hash({"path": request.url.path, "body": body_json}),
        ttl=settings.idempotency_ttl,
        in_flight_timeout=settings.idempotency_in_flight,
        on_claim=take_number,
    )
    if isinstance(claimed, idempotency.Replay):
        view = await referrals.get_referral(
            session, _protector(request), principal, claimed.referral_id
        )
        replay_headers = {**claimed.headers, "ETag": etag(view)}
        content = referral_out(view).model_dump_json().encode()
        return Response(content, claimed.status, replay_headers, media_type=None)
    try:
        number = taken[0] if taken else None
        for _ in range(referrals.MAX_HOLD_ATTEMPTS):
            attempt = await session.begin_nested()  # a SAVEPOINT to undo a lost race
            view = await work(number)
            content = referral_out(view).model_dump_json().encode()
            headers = {
                "Location": f"{request.scope.get('root_path', '')}/v1/referrals/{view.row.id}",
                "ETag": etag(view),
                "Content-Type": "application/json",
            }
            await idempotency.complete(
                session, claimed, status=201, headers=headers, referral_id=view.row.id
            )
            # the hold last: its capacity row stays locked only until the commit below
            if view.hold is None or await view.hold():
                break
            # another request took that place since it was read: undo, route again
            await attempt.rollback()
        else:
            raise Conflict("Capacity kept changing while routing; retry the request.")
        # commit here, not after the endpoint: a failed commit must release the key too
        await session.commit()
    except BaseException:
        # end the request's transaction first: on SQLite it holds the write lock
        await session.rollback()
        await idempotency.release(database, claimed)
        raise
    return Response(content, 201, headers, media_type=None)


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
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
) -> ReferralOut:
    """One referral: for its source, its current target, its council and admins."""
    view = await referrals.get_referral(session, _protector(request), principal, referral_id)
    response.headers["ETag"] = etag(view)
    return referral_out(view)
