"""SQL that gathers what routing needs: candidate institutions, their specialties, capacity."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ConsortiumPartner, Institution, InstitutionCentre, InstitutionSpecialty
from app.domain.enums import Centre, InstitutionLevel


@dataclass(frozen=True, slots=True)
class InstitutionFacts:
    id: str
    code: str
    name: str
    level: InstitutionLevel
    active: bool
    consortium_id: str | None
    is_lead: bool
    lat: float | None
    lon: float | None
    is_partner: bool


async def institutions_for_routing(
    session: AsyncSession, consortium_id: str
) -> Sequence[InstitutionFacts]:
    """The consortium's members and its upstream partners."""
    partners = select(ConsortiumPartner.institution_id).where(
        ConsortiumPartner.consortium_id == consortium_id
    )
    stmt = select(
        Institution.id,
        Institution.code,
        Institution.name,
        Institution.level,
        Institution.active,
        Institution.consortium_id,
        Institution.is_lead,
        Institution.latitude,
        Institution.longitude,
        Institution.id.in_(partners),
    ).where(or_(Institution.consortium_id == consortium_id, Institution.id.in_(partners)))
    return [
        InstitutionFacts(
            id=r[0],
            code=r[1],
            name=r[2],
            level=r[3],
            active=r[4],
            consortium_id=r[5],
            is_lead=r[6],
            lat=r[7],
            lon=r[8],
            is_partner=bool(r[9]),
        )
        for r in (await session.execute(stmt)).all()
    ]


async def specialties_offered(
    session: AsyncSession, institution_ids: Iterable[str], codes: Iterable[str]
) -> dict[str, set[str]]:
    stmt = select(InstitutionSpecialty.institution_id, InstitutionSpecialty.specialty_code).where(
        InstitutionSpecialty.institution_id.in_(list(institution_ids)),
        InstitutionSpecialty.specialty_code.in_(list(codes)),
    )
    out: dict[str, set[str]] = {}
    for iid, code in (await session.execute(stmt)).all():
        out.setdefault(iid, set()).add(code)
    return out


async def centres_held(
    session: AsyncSession, institution_ids: Iterable[str]
) -> dict[str, set[Centre]]:
    stmt = select(InstitutionCentre.institution_id, InstitutionCentre.centre).where(
        InstitutionCentre.institution_id.in_(list(institution_ids))
    )
    out: dict[str, set[Centre]] = {}
    for iid, centre in (await session.execute(stmt)).all():
        out.setdefault(iid, set()).add(centre)
    return out
