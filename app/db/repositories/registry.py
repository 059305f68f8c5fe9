"""SQL for the consortium registry: specialties, consortia, institutions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from sqlalchemy import bindparam, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.strategy_options import _AbstractLoad

from app.db.models import (
    Consortium,
    ConsortiumPartner,
    Institution,
    InstitutionCentre,
    InstitutionSpecialty,
    Specialty,
)
from app.db.repositories.memberships import member_of
from app.db.statements import built
from app.domain.enums import Centre, InstitutionLevel, InstitutionType

# --- specialties -------------------------------------------------------------------------


async def list_specialties(session: AsyncSession) -> Sequence[Specialty]:
    result = await session.execute(select(Specialty).order_by(Specialty.code))
    return result.scalars().all()


async def get_specialties(session: AsyncSession, codes: Iterable[str]) -> Sequence[Specialty]:
    wanted = list(codes)
    if not wanted:
        return []
    return (
        (await session.execute(select(Specialty).where(Specialty.code.in_(wanted)))).scalars().all()
    )


async def existing_specialty_codes(session: AsyncSession, codes: Iterable[str]) -> set[str]:
    wanted = set(codes)
    if not wanted:
        return set()
    result = await session.execute(select(Specialty.code).where(Specialty.code.in_(wanted)))
    return set(result.scalars().all())


async def upsert_specialties(session: AsyncSession, rows: Sequence[dict[str, str | None]]) -> int:
    existing = {s.code: s for s in await list_specialties(session)}
    changed = 0
    # parents first so the self-reference is satisfied
    for row in sorted(rows, key=lambda r: (str(r["code"]).count("."), str(r["code"]))):
        code = str(row["code"])
        current = existing.get(code)
        if current is None:
            session.add(
                Specialty(
                    code=code,
                    name=str(row["name"]),
                    name_en=str(row["name_en"]),
                    parent_code=row.get("parent"),
                )
            )
            changed += 1
        elif (current.name, current.name_en, current.parent_code) != (
            row["name"],
            row["name_en"],
            row.get("parent"),
        ):
            current.name = str(row["name"])
            current.name_en = str(row["name_en"])
            current.parent_code = row.get("parent")
            changed += 1
        await session.flush()
    return changed


# --- consortia ---------------------------------------------------------------------------


_T = TypeVar("_T")


def _pinned(session: AsyncSession, found: _T) -> _T:
    """Keep ``found`` referenced for the session's life: the identity map holds objects weakly,
    so a row read once per request (the source, its consortium) is read again otherwise."""
    if found is not None:
        session.info.setdefault("pinned", []).append(found)
    return found


async def get_consortium(session: AsyncSession, consortium_id: str) -> Consortium | None:
    return _pinned(session, await session.get(Consortium, consortium_id))


async def consortium_prefix_of(
    session: AsyncSession, institution_id: str
) -> tuple[str, str, str] | None:
    """(consortium id, referral prefix, time zone) of a member institution, or None."""
    stmt = built(
        "consortium_prefix_of",
        lambda: (
            select(Consortium.id, Consortium.referral_prefix, Consortium.time_zone)
            .join(Institution, Institution.consortium_id == Consortium.id)
            .where(Institution.id == bindparam("institution_id"))
        ),
    )
    row = (await session.execute(stmt, {"institution_id": institution_id})).first()
    return None if row is None else (row[0], row[1], row[2])


_TIME_ZONES = "consortium_time_zones"


def remember_time_zones(session: AsyncSession, zones: dict[str, str]) -> None:
    """The time zones of consortia this transaction read (with the source's affiliations):
    :func:`consortium_time_zone` answers them without reading the consortium again."""
    session.info.setdefault(_TIME_ZONES, {}).update(zones)


async def consortium_time_zone(session: AsyncSession, consortium_id: str) -> str:
    """The consortium's IANA time zone (as this transaction read it, or from the identity map
    when already loaded)."""
    known: dict[str, str] | None = session.info.get(_TIME_ZONES)
    if known is not None and consortium_id in known:
        return known[consortium_id]
    consortium = await get_consortium(session, consortium_id)
    assert consortium is not None, "an institution's consortium exists (foreign key)"
    return consortium.time_zone


async def institution_time_zone(session: AsyncSession, institution_id: str) -> str | None:
    """The time zone of the institution's consortium; None outside any consortium."""
    stmt = (
        select(Consortium.time_zone)
        .join(Institution, Institution.consortium_id == Consortium.id)
        .where(Institution.id == institution_id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def consortium_time_zones(session: AsyncSession) -> list[str]:
    """The distinct time zones of all consortia."""
    stmt = select(Consortium.time_zone).distinct().order_by(Consortium.time_zone)
    return list((await session.execute(stmt)).scalars().all())


async def get_consortium_by_code(session: AsyncSession, code: str) -> Consortium | None:
    result = await session.execute(select(Consortium).where(Consortium.code == code))
    return result.scalar_one_or_none()


async def get_consortium_by_prefix(session: AsyncSession, prefix: str) -> Consortium | None:
    result = await session.execute(select(Consortium).where(Consortium.referral_prefix == prefix))
    return result.scalar_one_or_none()


async def list_consortia(
    session: AsyncSession, *, after: str | None, limit: int
) -> Sequence[Consortium]:
    stmt = select(Consortium).order_by(Consortium.id).limit(limit)
    if after is not None:
        stmt = stmt.where(Consortium.id > after)
    return (await session.execute(stmt)).scalars().all()


async def add_consortium(session: AsyncSession, consortium: Consortium) -> Consortium:
    session.add(consortium)
    await session.flush()
    return consortium


async def partner_ids(session: AsyncSession, consortium_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {cid: [] for cid in consortium_ids}
    if not consortium_ids:
        return out
    stmt = (
        select(ConsortiumPartner.consortium_id, ConsortiumPartner.institution_id)
        .where(ConsortiumPartner.consortium_id.in_(consortium_ids))
        .order_by(ConsortiumPartner.institution_id)
    )
    for cid, iid in (await session.execute(stmt)).all():
        out[cid].append(iid)
    return out


async def set_partners(
    session: AsyncSession, consortium_id: str, institution_ids: Sequence[str]
) -> None:
    await session.execute(
        delete(ConsortiumPartner).where(ConsortiumPartner.consortium_id == consortium_id)
    )
    for iid in dict.fromkeys(institution_ids):
        session.add(ConsortiumPartner(consortium_id=consortium_id, institution_id=iid))
    await session.flush()


# --- institutions ------------------------------------------------------------------------


def _with_links() -> tuple[_AbstractLoad, _AbstractLoad]:
    return selectinload(Institution.specialty_links), selectinload(Institution.centre_links)


async def get_institution(session: AsyncSession, institution_id: str) -> Institution | None:
    stmt = select(Institution).where(Institution.id == institution_id).options(*_with_links())
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_institution_row(session: AsyncSession, institution_id: str) -> Institution | None:
    """The institution without its specialty and centre links (from the session's identity
    map when already loaded): for callers that read only its own columns."""
    return _pinned(session, await session.get(Institution, institution_id))


async def get_institutions(session: AsyncSession, ids: Sequence[str]) -> Sequence[Institution]:
    if not ids:
        return []
    stmt = select(Institution).where(Institution.id.in_(ids)).options(*_with_links())
    return (await session.execute(stmt)).scalars().all()


async def get_institution_by_code(session: AsyncSession, code: str) -> Institution | None:
    stmt = select(Institution).where(Institution.code == code).options(*_with_links())
    return (await session.execute(stmt)).scalar_one_or_none()


NATIONAL_ID_COLUMNS = ("uscc", "licence_number", "insurance_code")


async def institution_id_holding(session: AsyncSession, column: str, value: str) -> str | None:
    """The id of the institution holding this national identifier (one of NATIONAL_ID_COLUMNS)."""
    if column not in NATIONAL_ID_COLUMNS:
        raise ValueError(column)
    stmt = select(Institution.id).where(getattr(Institution, column) == value)
    return (await session.execute(stmt)).scalar_one_or_none()


async def consortium_id_by_ref(session: AsyncSession, ref: str) -> str | None:
    """The consortium whose id or code is `ref`."""
    stmt = select(Consortium.id).where(or_(Consortium.id == ref, Consortium.code == ref))
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


async def institution_id_by_ref(session: AsyncSession, ref: str) -> str | None:
    """The institution whose id or code is `ref`."""
    stmt = select(Institution.id).where(or_(Institution.id == ref, Institution.code == ref))
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


async def list_institutions(
    session: AsyncSession,
    *,
    after: str | None,
    limit: int,
    consortium_id: str | None = None,
    level: InstitutionLevel | None = None,
    type_: InstitutionType | None = None,
    specialty: str | None = None,
    centre: Centre | None = None,
    active: bool | None = None,
    q: str | None = None,
) -> Sequence[Institution]:
    stmt = select(Institution).options(*_with_links()).order_by(Institution.id).limit(limit)
    if after is not None:
        stmt = stmt.where(Institution.id > after)
    if consortium_id is not None:
        partners = select(ConsortiumPartner.institution_id).where(
            ConsortiumPartner.consortium_id == consortium_id
        )
        stmt = stmt.where(or_(member_of(consortium_id), Institution.id.in_(partners)))
    if level is not None:
        stmt = stmt.where(Institution.level == level)
    if type_ is not None:
        stmt = stmt.where(Institution.type == type_)
    if active is not None:
        stmt = stmt.where(Institution.active.is_(active))
    if specialty is not None:
        stmt = stmt.where(
            Institution.id.in_(
                select(InstitutionSpecialty.institution_id).where(
                    InstitutionSpecialty.specialty_code == specialty
                )
            )
        )
    if centre is not None:
        stmt = stmt.where(
            Institution.id.in_(
                select(InstitutionCentre.institution_id).where(InstitutionCentre.centre == centre)
            )
        )
    if q:
        pattern = f"%{like_literal(q.lower())}%"
        stmt = stmt.where(
            or_(
                func.lower(Institution.name).like(pattern, escape="\\"),
                func.lower(func.coalesce(Institution.name_en, "")).like(pattern, escape="\\"),
                func.lower(Institution.code).like(pattern, escape="\\"),
            )
        )
    return (await session.execute(stmt)).scalars().all()


def like_literal(text: str) -> str:
    """``text`` matched literally inside a LIKE pattern (ESCAPE '\\'): ``%``, ``_`` and ``\\``
    in a search term are characters, not wildcards."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def add_institution(session: AsyncSession, institution: Institution) -> Institution:
    session.add(institution)
    await session.flush()
    return institution


def set_institution_specialties(institution: Institution, codes: Iterable[str]) -> None:
    wanted = list(dict.fromkeys(codes))
    current = {link.specialty_code: link for link in institution.specialty_links}
    institution.specialty_links = [
        current.get(code) or InstitutionSpecialty(specialty_code=code) for code in wanted
    ]


def set_institution_centres(institution: Institution, centres: Iterable[Centre]) -> None:
    wanted = list(dict.fromkeys(centres))
    current = {link.centre: link for link in institution.centre_links}
    institution.centre_links = [current.get(c) or InstitutionCentre(centre=c) for c in wanted]
