"""Who may read a referral: one rule for every endpoint."""

from __future__ import annotations

from app.db.models import Referral
from app.domain.enums import Role
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
