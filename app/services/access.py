"""Who may read a referral: one rule for every endpoint."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Referral
from app.domain.enums import Role
from app.domain.errors import Forbidden
from app.services.auth import Principal


def can_see(principal: Principal, row: Referral) -> bool:
    if principal.role is Role.ADMIN:
        return True
    if principal.role is Role.COUNCIL:
        return principal.consortium_id == row.consortium_id
    if principal.role not in (Role.CLINIC, Role.HOSPITAL):
        return False
    # PIPL's minimum-necessary rule: a hospital that rejected the referral or let it expire
    # (``declined_institution_ids``) no longer needs the patient's data and loses access
    return principal.institution_id in (row.source_institution_id, row.target_institution_id)


async def figures_consortium(
    session: AsyncSession, principal: Principal, consortium_ref: str | None, what: str
) -> str | None:
    """The consortium a caller reads figures of: a council only its own (its own by default),
    insurers and admins any or all (None); anyone else 403. ``what`` names the figures."""
    from app.services import registry as registry_service  # registry reads access rules

    consortium_id = await registry_service.consortium_ref(session, consortium_ref)
    if principal.role is Role.COUNCIL:
        if consortium_id not in (None, principal.consortium_id):
            raise Forbidden("A council reads its own consortium's figures.")
        return principal.consortium_id
    if principal.role not in (Role.ADMIN, Role.INSURER):
        raise Forbidden(f"{what} are for the council, the insurer and admins.")
    return consortium_id
