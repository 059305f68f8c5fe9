"""The patient notice: where and when to go, whom to call (for an SMS gateway or the HIS)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from app.api.deps import PrincipalDep, ProtectorDep, SessionDep
from app.api.errors import problem_responses
from app.api.schemas.common import ResponseModel
from app.services import notices

router = APIRouter(prefix="/v1", tags=["lifecycle"], responses=problem_responses(401, 422, 429))


class PatientNoticeOut(ResponseModel):
    referral_id: str
    number: str
    status: str
    phone: str | None = Field(description="The patient's phone, if the source gave one.")
    text_zh: str = Field(description="The notice in Chinese (no diagnosis, the name masked).")
    text_en: str


@router.get(
    "/referrals/{referral_id}/patient-notice",
    response_model=PatientNoticeOut,
    responses=problem_responses(404),
)
async def get_patient_notice(
    referral_id: str, session: SessionDep, protector: ProtectorDep, principal: PrincipalDep
) -> PatientNoticeOut:
    """Once the target accepted: the text to send the patient and the phone to send it to.
    For the referral's source and target, and the consortium's SMS gateway (`notifier` key,
    which may read nothing else)."""
    found = await notices.notice(session, protector, principal, referral_id)
    return PatientNoticeOut(
        referral_id=found.referral.id,
        number=found.referral.number,
        status=str(found.referral.status),
        phone=found.phone,
        text_zh=found.text_zh,
        text_en=found.text_en,
    )
