"""Patient satisfaction per referral, for the appraisal's figures."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, status
from pydantic import Field

from app.api.deps import PrincipalDep, SessionDep
from app.api.errors import problem_responses
from app.api.routes.lifecycle import UserId
from app.api.schemas.common import ResponseModel, StrictModel
from app.services import satisfaction

router = APIRouter(prefix="/v1", tags=["lifecycle"], responses=problem_responses(401, 422, 429))

ReasonCode = Literal[
    "waiting_time",
    "staff_attitude",
    "communication",
    "treatment_outcome",
    "cost",
    "environment",
    "referral_coordination",
    "other",
]


class SatisfactionIn(StrictModel):
    score: int = Field(ge=1, le=5, description="1 (very dissatisfied) to 5 (very satisfied).")
    reason_codes: Annotated[list[ReasonCode], Field(max_length=8)] = Field(
        default_factory=list, description="Why (codes only; no free text)."
    )


class SatisfactionOut(ResponseModel):
    referral_id: str
    target_institution_id: str = Field(description="The member rated.")
    score: int
    reason_codes: list[str]
    recorded_by_institution_id: str
    recorded_at: datetime


@router.post(
    "/referrals/{referral_id}/satisfaction",
    response_model=SatisfactionOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(403, 404, 409),
)
async def record_satisfaction(
    referral_id: str,
    body: SatisfactionIn,
    session: SessionDep,
    principal: PrincipalDep,
    user: UserId = None,
) -> SatisfactionOut:
    """Once per up-referral the target accepted, by the primary institution that referred the
    patient; counted per target member and month in the monthly figures."""
    found = await satisfaction.record(
        session,
        principal,
        referral_id,
        score=body.score,
        reason_codes=body.reason_codes,
        user=user,
    )
    return SatisfactionOut.model_validate(found)


@router.get(
    "/referrals/{referral_id}/satisfaction",
    response_model=SatisfactionOut,
    responses=problem_responses(404),
)
async def get_satisfaction(
    referral_id: str, session: SessionDep, principal: PrincipalDep
) -> SatisfactionOut:
    """The recorded satisfaction, for whoever may read the referral."""
    return SatisfactionOut.model_validate(await satisfaction.get(session, principal, referral_id))
