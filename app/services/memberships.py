"""Membership of several alliances: an institution registered with its own consortium (county
community, urban group) joins others, such as a provincial stroke or a municipal paediatric
specialty alliance. The alliance's council (or an admin) admits and removes members; numbers,
policies, figures and access stay per consortium, the one each referral runs in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ConsortiumMembership
from app.db.repositories import memberships as repo
from app.db.repositories import registry as registry_repo
from app.domain.enums import Role
from app.domain.errors import Forbidden, InvalidInput, NotFound
from app.services.auth import Principal


@dataclass(frozen=True, slots=True)
class MembershipView:
    consortium_id: str
    institution_id: str
    lead: bool
    created: bool  # this call admitted it (else: it was a member; the lead flag as sent now)


def _require_alliance_writer(principal: Principal, consortium_id: str) -> None:
    if principal.role is Role.ADMIN:
        return
    if principal.role is Role.COUNCIL and principal.consortium_id == consortium_id:
        return
    raise Forbidden("The consortium's own council (or an admin) admits and removes its members.")


async def _check(session: AsyncSession, consortium_id: str, institution_id: str) -> None:
    if await registry_repo.get_consortium(session, consortium_id) is None:
        raise NotFound("No consortium with this id.")
    institution = await registry_repo.get_institution_row(session, institution_id)
    if institution is None:
        raise NotFound("No institution with this id.")
    if institution.consortium_id == consortium_id:
        raise InvalidInput(
            "The institution is registered with this consortium; its lead flag is set with "
            "the consortium's lead_institution_ids.",
            [{"loc": ["path", "institution_id"], "msg": "already a member: its own consortium"}],
        )


async def join(
    session: AsyncSession,
    principal: Principal,
    consortium_id: str,
    institution_id: str,
    *,
    lead: bool,
) -> MembershipView:
    """Admit the institution (idempotent: a member stays one, with the lead flag as sent)."""
    _require_alliance_writer(principal, consortium_id)
    await _check(session, consortium_id, institution_id)
    row = await repo.get_membership(session, consortium_id, institution_id)
    created = row is None
    if row is None:
        row = ConsortiumMembership(
            consortium_id=consortium_id, institution_id=institution_id, is_lead=lead
        )
        await repo.add_membership(session, row)
    else:
        row.is_lead = lead
        await session.flush()
    return MembershipView(consortium_id, institution_id, row.is_lead, created)


async def leave(
    session: AsyncSession, principal: Principal, consortium_id: str, institution_id: str
) -> None:
    _require_alliance_writer(principal, consortium_id)
    if not await repo.remove_membership(session, consortium_id, institution_id):
        raise NotFound("The institution has not joined this consortium.")


async def list_joined(session: AsyncSession, consortium_id: str) -> Sequence[MembershipView]:
    if await registry_repo.get_consortium(session, consortium_id) is None:
        raise NotFound("No consortium with this id.")
    rows = await repo.list_memberships(session, consortium_id)
    return [MembershipView(r.consortium_id, r.institution_id, r.is_lead, False) for r in rows]
