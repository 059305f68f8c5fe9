"""Use cases of the consortium registry. Never commits: the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Consortium, Institution, Specialty
from app.db.repositories import memberships as memberships_repo
from app.db.repositories import registry as repo
from app.domain.enums import Centre, InstitutionGrade, InstitutionLevel, InstitutionType, Role
from app.domain.errors import Forbidden, InvalidInput, NotFound
from app.domain.national_codes import grade_fits_level
from app.services.auth import Principal


@dataclass(frozen=True, slots=True)
class ConsortiumView:
    row: Consortium
    #: the lead unit: one hospital, or several (by code)
    lead_institution_ids: list[str] = field(default_factory=list)
    upstream_partner_ids: list[str] = field(default_factory=list)
    #: members whose own consortium is another one (joined this alliance)
    joined_member_ids: list[str] = field(default_factory=list)

    @property
    def lead_institution_id(self) -> str | None:
        """The first of the lead unit (the one lead of a unit of one)."""
        return self.lead_institution_ids[0] if self.lead_institution_ids else None


@dataclass(frozen=True, slots=True)
class InstitutionFilter:
    consortium_id: str | None = None
    level: InstitutionLevel | None = None
    type: InstitutionType | None = None
    specialty: str | None = None
    centre: Centre | None = None
    active: bool | None = None
    q: str | None = None


def _require_registry_writer(principal: Principal, consortium_id: str | None) -> None:
    if principal.role is Role.ADMIN:
        return
    if principal.role is Role.COUNCIL and consortium_id is not None:
        if principal.consortium_id == consortium_id:
            return
        raise Forbidden("A council key may change only its own consortium.")
    raise Forbidden("Registry changes need a council or admin key.")


async def list_specialties(session: AsyncSession) -> Sequence[Specialty]:
    return await repo.list_specialties(session)


async def _consortium_views(
    session: AsyncSession, rows: Sequence[Consortium]
) -> list[ConsortiumView]:
    ids = [r.id for r in rows]
    leads = await memberships_repo.lead_ids(session, ids)
    partners = await repo.partner_ids(session, ids)
    joined = await memberships_repo.joined_ids(session, ids)
    return [ConsortiumView(r, leads[r.id], partners[r.id], joined[r.id]) for r in rows]


async def get_consortium(session: AsyncSession, consortium_id: str) -> ConsortiumView:
    row = await repo.get_consortium(session, consortium_id)
    if row is None:
        raise NotFound("No consortium with this id.")
    return (await _consortium_views(session, [row]))[0]


async def list_consortia(
    session: AsyncSession, *, after: str | None, limit: int
) -> list[ConsortiumView]:
    rows = await repo.list_consortia(session, after=after, limit=limit)
    return await _consortium_views(session, rows)


async def _check_partners(
    session: AsyncSession,
    partner_ids: Sequence[str],
    principal: Principal | None = None,
    consortium_id: str | None = None,
) -> None:
    """Partners exist; a council names only its own members or unaffiliated institutions as
    partners (another consortium's member needs an admin key)."""
    institutions = await repo.get_institutions(session, list(partner_ids))
    found = {i.id for i in institutions}
    missing = [n for n, i in enumerate(partner_ids) if i not in found]
    if missing:
        raise InvalidInput(
            "Unknown upstream partner institution.",
            [
                {"loc": ["body", "upstream_partner_ids", n], "msg": "unknown institution"}
                for n in missing
            ],
        )
    if principal is not None and principal.role is not Role.ADMIN:
        foreign = [i for i in institutions if i.consortium_id not in (None, consortium_id)]
        if foreign:
            raise Forbidden(
                "Naming another consortium's member as an upstream partner needs an admin key."
            )


async def _check_leads(
    session: AsyncSession, consortium_id: str, lead_ids: Sequence[str], field_name: str
) -> None:
    for i, lead_id in enumerate(lead_ids):
        if not await memberships_repo.is_member(session, consortium_id, lead_id):
            loc: list[str | int] = ["body", field_name]
            if field_name == "lead_institution_ids":
                loc.append(i)
            raise InvalidInput(
                "A lead institution must be a member of the consortium.",
                [{"loc": loc, "msg": "not a member of this consortium"}],
            )


async def _check_unique(
    session: AsyncSession, *, code: str | None = None, prefix: str | None = None
) -> None:
    if code is not None and await repo.get_consortium_by_code(session, code) is not None:
        raise InvalidInput(
            "A consortium with this code exists.",
            [{"loc": ["body", "code"], "msg": "already in use"}],
        )
    if prefix is not None and await repo.get_consortium_by_prefix(session, prefix) is not None:
        raise InvalidInput(
            "This referral prefix is in use.",
            [{"loc": ["body", "referral_prefix"], "msg": "already in use"}],
        )


async def create_consortium(
    session: AsyncSession, principal: Principal, data: dict[str, Any]
) -> ConsortiumView:
    if principal.role is not Role.ADMIN:
        raise Forbidden("Creating a consortium needs an admin key.")
    partners = list(data.pop("upstream_partner_ids", None) or [])
    await _check_unique(session, code=data["code"], prefix=data["referral_prefix"])
    await _check_partners(session, partners)
    for scope in ("alliance_centres", "alliance_specialties"):
        data[scope] = list(dict.fromkeys(data.get(scope) or []))
    await _check_specialties(session, data["alliance_specialties"], "alliance_specialties")
    row = await repo.add_consortium(session, Consortium(**data))
    await repo.set_partners(session, row.id, partners)
    return await get_consortium(session, row.id)


async def update_consortium(
    session: AsyncSession, principal: Principal, consortium_id: str, changes: dict[str, Any]
) -> ConsortiumView:
    row = await repo.get_consortium(session, consortium_id)
    if row is None:
        raise NotFound("No consortium with this id.")
    _require_registry_writer(principal, consortium_id)
    if "upstream_partner_ids" in changes:
        partners = list(changes.pop("upstream_partner_ids") or [])
        await _check_partners(session, partners, principal, consortium_id)
        await repo.set_partners(session, consortium_id, partners)
    if "lead_institution_ids" in changes or "lead_institution_id" in changes:
        # a lead unit of several, or of one (the field clients of a single lead send)
        one = changes.pop("lead_institution_id", None)
        name = (
            "lead_institution_ids" if "lead_institution_ids" in changes else "lead_institution_id"
        )
        leads = list(
            dict.fromkeys(changes.pop("lead_institution_ids", None) or ([one] if one else []))
        )
        await _check_leads(session, consortium_id, leads, name)
        await memberships_repo.set_leads(session, consortium_id, leads)
    for scope in ("alliance_centres", "alliance_specialties"):
        if scope in changes:
            values = list(dict.fromkeys(changes.pop(scope) or []))
            if scope == "alliance_specialties":
                await _check_specialties(session, values, scope)
            setattr(row, scope, values)
    if "referral_prefix" in changes and changes["referral_prefix"] != row.referral_prefix:
        await _check_unique(session, prefix=changes["referral_prefix"])
    for key, value in changes.items():
        setattr(row, key, value)
    await session.flush()
    return await get_consortium(session, consortium_id)


async def get_institution(session: AsyncSession, institution_id: str) -> Institution:
    row = await repo.get_institution(session, institution_id)
    if row is None:
        raise NotFound("No institution with this id.")
    return row


async def list_institutions(
    session: AsyncSession, filters: InstitutionFilter, *, after: str | None, limit: int
) -> Sequence[Institution]:
    return await repo.list_institutions(
        session,
        after=after,
        limit=limit,
        consortium_id=await consortium_ref(session, filters.consortium_id),
        level=filters.level,
        type_=filters.type,
        specialty=filters.specialty,
        centre=filters.centre,
        active=filters.active,
        q=filters.q,
    )


async def _check_specialties(
    session: AsyncSession, codes: Sequence[str], field_name: str = "specialties"
) -> None:
    known = await repo.existing_specialty_codes(session, codes)
    unknown = [n for n, c in enumerate(codes) if c not in known]
    if unknown:
        raise InvalidInput(
            "Unknown specialty code.",
            [{"loc": ["body", field_name, n], "msg": "unknown specialty code"} for n in unknown],
        )


async def _check_consortium(session: AsyncSession, consortium_id: str | None) -> None:
    if consortium_id is not None and await repo.get_consortium(session, consortium_id) is None:
        raise InvalidInput(
            "Unknown consortium.",
            [{"loc": ["body", "consortium_id"], "msg": "no consortium with this id"}],
        )


async def consortium_ref(session: AsyncSession, ref: str | None) -> str | None:
    """A list filter's consortium, given by id or by code (`ZHENGHE`); unknown refs stay as
    given so the filter matches nothing, as an unknown id always did."""
    if ref is None:
        return None
    return await repo.consortium_id_by_ref(session, ref) or ref


async def institution_ref(session: AsyncSession, ref: str | None) -> str | None:
    """A list filter's institution, given by id or by code."""
    if ref is None:
        return None
    return await repo.institution_id_by_ref(session, ref) or ref


async def _check_national_ids(
    session: AsyncSession, values: dict[str, Any], institution_id: str | None
) -> None:
    for column in repo.NATIONAL_ID_COLUMNS:
        value = values.get(column)
        if value is None:
            continue
        holder = await repo.institution_id_holding(session, column, value)
        if holder is not None and holder != institution_id:
            raise InvalidInput(
                "Another institution holds this identifier.",
                [{"loc": ["body", column], "msg": "already in use"}],
            )


def _check_grade(grade: InstitutionGrade | None, level: InstitutionLevel) -> None:
    if grade is not None and not grade_fits_level(grade, level):
        raise InvalidInput(
            "The grade does not fit the level.",
            [{"loc": ["body", "grade"], "msg": "the grade's tier (一/二/三级) must be the level"}],
        )


async def create_institution(
    session: AsyncSession, principal: Principal, data: dict[str, Any]
) -> Institution:
    _require_registry_writer(principal, data.get("consortium_id"))
    specialties = list(data.pop("specialties", []) or [])
    centres = list(data.pop("centres", []) or [])
    await _check_consortium(session, data.get("consortium_id"))
    await _check_specialties(session, specialties)
    _check_grade(data.get("grade"), data["level"])
    await _check_national_ids(session, data, None)
    if await repo.get_institution_by_code(session, data["code"]) is not None:
        raise InvalidInput(
            "An institution with this code exists.",
            [{"loc": ["body", "code"], "msg": "already in use"}],
        )
    row = Institution(**data, specialty_links=[], centre_links=[])
    repo.set_institution_specialties(row, specialties)
    repo.set_institution_centres(row, centres)
    await repo.add_institution(session, row)
    return await get_institution(session, row.id)


async def update_institution(
    session: AsyncSession, principal: Principal, institution_id: str, changes: dict[str, Any]
) -> Institution:
    row = await get_institution(session, institution_id)
    _require_registry_writer(principal, row.consortium_id)
    if "consortium_id" in changes and changes["consortium_id"] != row.consortium_id:
        _require_registry_writer(principal, changes["consortium_id"])
        await _check_consortium(session, changes["consortium_id"])
        if row.is_lead:
            raise InvalidInput(
                "The lead institution cannot leave its consortium; name another lead first.",
                [{"loc": ["body", "consortium_id"], "msg": "institution is the lead"}],
            )
    if "specialties" in changes:
        codes = list(changes.pop("specialties") or [])
        await _check_specialties(session, codes)
        repo.set_institution_specialties(row, codes)
    if "centres" in changes:
        repo.set_institution_centres(row, list(changes.pop("centres") or []))
    if "grade" in changes or "level" in changes:
        _check_grade(changes.get("grade", row.grade), changes.get("level", row.level))
    await _check_national_ids(session, changes, row.id)
    for key, value in changes.items():
        setattr(row, key, value)
    await session.flush()
    session.expire(row)
    return await get_institution(session, institution_id)
