"""Per-referral records for the appraisal's figures: patient satisfaction, and the prior
results the target repeated despite mutual recognition."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, status
from pydantic import Field

from app.api.deps import PrincipalDep, ProtectorDep, SessionDep
from app.api.errors import problem_responses
from app.api.routes.lifecycle import UserId
from app.api.schemas.common import ResponseModel, StrictModel
from app.services import repeated_tests, satisfaction

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


RepeatReason = Literal[
    "clinically_needed", "result_unreadable", "condition_changed", "too_old", "other"
]


class RepeatIn(StrictModel):
    index: int = Field(ge=0, le=49, description="The position of the test in tests_done.")
    reason_code: RepeatReason


class RepeatedTestsIn(StrictModel):
    items: Annotated[list[RepeatIn], Field(min_length=1, max_length=50)]


class RepeatedTestsOut(ResponseModel):
    referral_id: str
    tests_done: list[dict[str, Any]] = Field(
        description="Each with its recognition and, if repeated, why (the caller's view)."
    )


@router.post(
    "/referrals/{referral_id}/repeated-tests",
    response_model=RepeatedTestsOut,
    responses=problem_responses(403, 404),
)
async def record_repeated_tests(
    referral_id: str,
    body: RepeatedTestsIn,
    session: SessionDep,
    protector: ProtectorDep,
    principal: PrincipalDep,
    user: UserId = None,
) -> RepeatedTestsOut:
    """The current target says which prior results it repeated anyway, and why; counted (with
    what the repeat cost, when the result was recognised) in the monthly figures."""
    tests = await repeated_tests.record(
        session,
        protector,
        principal,
        referral_id,
        [repeated_tests.Repeat(i.index, i.reason_code) for i in body.items],
        user=user,
    )
    return RepeatedTestsOut(referral_id=referral_id, tests_done=tests)
