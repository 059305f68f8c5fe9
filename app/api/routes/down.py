"""Down-referral follow-up, escalation back up, and episodes (the closed loop)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status

from app.api.deps import ContextDep, PrincipalDep, SessionDep
from app.api.errors import problem_responses
from app.api.presenters import created_response
from app.api.routes.lifecycle import UserId
from app.api.routes.referrals import IdempotencyKey
from app.api.schemas.follow_ups import (
    EpisodeOut,
    EpisodeReferral,
    FollowUpIn,
    FollowUpOut,
    OverdueOut,
)
from app.api.schemas.referrals import EscalateIn, ReferralOut
from app.services import creates, follow_ups
from app.services.crypto import PatientDataProtector

router = APIRouter(prefix="/v1", tags=["down-referral"], responses=problem_responses(401, 422, 429))


def _protector(request: Request) -> PatientDataProtector:
    protector: PatientDataProtector = request.app.state.protector
    return protector


def _out(views: list[follow_ups.FollowUpView]) -> list[FollowUpOut]:
    return [
        FollowUpOut(
            id=v.row.id,
            kind=v.row.kind,
            due_date=v.row.due_date,
            done_at=v.row.done_at,
            visit_date=v.row.visit_date,
            adherence=v.row.adherence,
            overdue=v.overdue,
            content=v.content,
            author_institution_id=v.row.author_institution_id,
            author_user=v.row.author_user,
            created_at=v.row.created_at,
        )
        for v in views
    ]


@router.get(
    "/referrals/{referral_id}/follow-ups",
    response_model=list[FollowUpOut],
    responses=problem_responses(404, 409),
)
async def list_follow_ups(
    referral_id: str, request: Request, session: SessionDep, principal: PrincipalDep
) -> list[FollowUpOut]:
    """The follow-up plan, the visits recorded and the hospital doctor's guidance."""
    return _out(
        await follow_ups.list_follow_ups(session, _protector(request), principal, referral_id)
    )


@router.post(
    "/referrals/{referral_id}/follow-ups",
    response_model=list[FollowUpOut],
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(403, 404, 409),
)
async def record_follow_up(
    referral_id: str,
    body: FollowUpIn,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    user: UserId = None,
) -> list[FollowUpOut]:
    """A visit (primary institution: date, findings, adherence, next visit) or guidance
    (the referring hospital's doctor). A visit closes the earliest open planned visit."""
    views = await follow_ups.record(
        session, _protector(request), principal, referral_id, body.model_dump(), user
    )
    return _out(views)


@router.get(
    "/follow-ups/overdue", response_model=list[OverdueOut], responses=problem_responses(403)
)
async def list_overdue_follow_ups(
    session: SessionDep,
    principal: PrincipalDep,
    role: Annotated[
        Literal["receiving", "referring"],
        Query(description="receiving: visits you owe; referring: your follow-up obligations"),
    ] = "receiving",
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> list[OverdueOut]:
    """Planned visits past their due date on open down-referrals, oldest first."""
    rows = await follow_ups.overdue(session, principal, role=role, limit=limit)
    return [
        OverdueOut(
            follow_up_id=f.id,
            referral_id=r.id,
            referral_number=r.number,
            due_date=f.due_date,
            source_institution_id=r.source_institution_id,
            target_institution_id=r.target_institution_id,
        )
        for f, r in rows
    ]


@router.post(
    "/referrals/{referral_id}/escalate",
    response_model=ReferralOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(403, 404, 409),
)
async def escalate_referral(
    referral_id: str, body: EscalateIn, ctx: ContextDep, idempotency_key: IdempotencyKey
) -> Response:
    """A deterioration during follow-up: a new up-referral in the same episode, pre-filled
    from the down-referral (patient, diagnosis, specialty). Idempotent like POST /v1/referrals."""
    return created_response(await creates.escalate(ctx, referral_id, body, idempotency_key))


@router.get("/episodes/{episode_id}", response_model=EpisodeOut, responses=problem_responses(404))
async def get_episode(episode_id: str, session: SessionDep, principal: PrincipalDep) -> EpisodeOut:
    """The whole chain of a patient's referrals in this episode, in order, with their state."""
    chain = await follow_ups.episode(session, principal, episode_id)
    return EpisodeOut(id=episode_id, referrals=[EpisodeReferral.model_validate(r) for r in chain])
