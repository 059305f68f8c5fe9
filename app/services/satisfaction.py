"""Patient satisfaction with an up-referral: recorded once by the primary institution that
referred the patient, about the member that received them (score 1-5 and reason codes)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.db.models import ReferralSatisfaction
from app.domain.enums import Role
from app.domain.errors import Conflict, Forbidden, NotFound
from app.domain.lifecycle import Direction
from app.services.auth import Principal
from app.services.views import visible


async def record(
    session: AsyncSession,
    principal: Principal,
    referral_id: str,
    *,
    score: int,
    reason_codes: Sequence[str],
    user: str | None,
) -> ReferralSatisfaction:
    row = await visible(session, principal, referral_id)
    if principal.role not in (Role.CLINIC, Role.HOSPITAL) or (
        principal.institution_id != row.source_institution_id
    ):
        raise Forbidden("The institution that referred the patient records the satisfaction.")
    if row.direction is not Direction.UP or row.accepted_at is None:
        raise Conflict(
            "Satisfaction is recorded for an up-referral the target accepted.",
            current_status=str(row.status),
        )
    if await session.get(ReferralSatisfaction, row.id) is not None:
        raise Conflict("The satisfaction of this referral is recorded already (once).")
    assert row.target_institution_id is not None  # accepted: it has a target
    found = ReferralSatisfaction(
        referral_id=row.id,
        consortium_id=row.consortium_id,
        target_institution_id=row.target_institution_id,
        score=score,
        reason_codes=list(dict.fromkeys(reason_codes)),
        recorded_by_institution_id=principal.institution_id,
        recorded_by_user=user,
        recorded_at=utcnow(),
    )
    session.add(found)
    await session.flush()
    return found


async def get(
    session: AsyncSession, principal: Principal, referral_id: str
) -> ReferralSatisfaction:
    row = await visible(session, principal, referral_id)
    found = await session.get(ReferralSatisfaction, row.id)
    if found is None:
        raise NotFound("No satisfaction is recorded for this referral.")
    return found
