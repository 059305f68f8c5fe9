"""Worklists: who sees which referrals, in which order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Referral, ReferralEvent
from app.db.repositories import referrals as repo
from app.domain.enums import Role
from app.services import registry as registry_service
from app.services.auth import Principal


@dataclass(frozen=True, slots=True)
class WorklistPage:
    rows: Sequence[Referral]
    last_events: dict[str, ReferralEvent]


async def list_referrals(
    session: AsyncSession, principal: Principal, query: repo.WorklistQuery
) -> WorklistPage:
    if query.counterpart is not None:
        query = replace(
            query, counterpart=await registry_service.institution_ref(session, query.counterpart)
        )
    if principal.role in (Role.CLINIC, Role.HOSPITAL):
        query = replace(query, involving=principal.institution_id)
    elif principal.role is Role.COUNCIL:
        query = replace(query, consortium_id=principal.consortium_id, involving=None)
    else:  # admin and insurer see every referral (insurer: summaries only, no patient data)
        query = replace(query, involving=None)
    rows = await repo.worklist(session, query)
    return WorklistPage(rows, await repo.last_events(session, [r.id for r in rows]))
