"""Who belongs to a consortium, and who leads it.

An institution has one own consortium (``institution.consortium_id``: its county community
or urban group, where ``institution.is_lead`` marks the lead unit) and may join others
(``consortium_membership``: a provincial stroke alliance, a municipal paediatric alliance),
with a lead flag of their own. A consortium whose members all have it as their own has no
membership rows; routing's SQL keeps the plain, index-friendly condition for it
(``joined=False``) and adds the membership rows only where there are some.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, exists, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Consortium, ConsortiumMembership, Institution
from app.db.statements import built
from app.domain.enums import ConsortiumKind


def member_of(consortium: Any, *, joined: bool = True) -> ColumnElement[bool]:
    """``Institution`` is a member of ``consortium`` (an id or a bound parameter): its own
    consortium, or (``joined``) one it joined."""
    own: ColumnElement[bool] = Institution.consortium_id == consortium
    if not joined:
        return own
    rows = select(ConsortiumMembership.institution_id).where(
        ConsortiumMembership.consortium_id == consortium
    )
    return or_(own, Institution.id.in_(rows))


def lead_of(consortium: Any, *, joined: bool = True) -> ColumnElement[bool]:
    """``Institution`` is in the lead unit of ``consortium``."""
    own = and_(Institution.consortium_id == consortium, Institution.is_lead == true())
    if not joined:
        return own
    rows = select(ConsortiumMembership.institution_id).where(
        ConsortiumMembership.consortium_id == consortium, ConsortiumMembership.is_lead == true()
    )
    return or_(own, Institution.id.in_(rows))


def has_joined_members(consortium: Any) -> ColumnElement[bool]:
    return exists().where(ConsortiumMembership.consortium_id == consortium)


@dataclass(frozen=True, slots=True)
class Affiliation:
    """A consortium an institution belongs to, as routing chooses among them."""

    consortium_id: str
    code: str
    kind: ConsortiumKind
    time_zone: str
    own: bool  # the institution's own consortium (not joined)
    centres: tuple[str, ...]
    specialties: tuple[str, ...]
    joined_members: bool  # the consortium has members that joined it


def _affiliation(row: Any, own: bool) -> Affiliation:
    return Affiliation(
        consortium_id=row.id,
        code=row.code,
        kind=ConsortiumKind(row.kind),
        time_zone=row.time_zone,
        own=own,
        centres=tuple(row.alliance_centres or ()),
        specialties=tuple(row.alliance_specialties or ()),
        joined_members=bool(row.joined),
    )


def _columns() -> tuple[Any, ...]:
    c = Consortium
    return (
        c.id,
        c.code,
        c.kind,
        c.time_zone,
        c.alliance_centres,
        c.alliance_specialties,
        has_joined_members(c.id).label("joined"),
    )


async def affiliations(
    session: AsyncSession, own_consortium_id: str | None, institution_id: str
) -> list[Affiliation]:
    """The institution's own consortium first, then those it joined (by code): one statement."""
    stmt = built("affiliations", _affiliations_statement)
    params = {"own_consortium_id": own_consortium_id, "institution_id": institution_id}
    rows = (await session.execute(stmt, params)).all()
    found = [_affiliation(r, r.id == own_consortium_id) for r in rows]
    return sorted(found, key=lambda a: (not a.own, a.code))


def _affiliations_statement() -> Any:
    joined = select(ConsortiumMembership.consortium_id).where(
        ConsortiumMembership.institution_id == bindparam("institution_id")
    )
    return select(*_columns()).where(
        or_(Consortium.id == bindparam("own_consortium_id"), Consortium.id.in_(joined))
    )


async def affiliation(session: AsyncSession, consortium_id: str, own: bool) -> Affiliation | None:
    row = (await session.execute(select(*_columns()).where(Consortium.id == consortium_id))).first()
    return None if row is None else _affiliation(row, own)


async def is_member(session: AsyncSession, consortium_id: str, institution_id: str) -> bool:
    stmt = select(Institution.id).where(Institution.id == institution_id, member_of(consortium_id))
    return (await session.execute(stmt)).first() is not None


async def member_ids(
    session: AsyncSession, consortium_id: str, institution_ids: Sequence[str]
) -> set[str]:
    """Those of ``institution_ids`` that are members of the consortium (own or joined)."""
    if not institution_ids:
        return set()
    stmt = select(Institution.id).where(
        Institution.id.in_(list(institution_ids)), member_of(consortium_id)
    )
    return set((await session.execute(stmt)).scalars().all())


async def lead_ids(session: AsyncSession, consortium_ids: Sequence[str]) -> dict[str, list[str]]:
    """Each consortium's lead unit, by institution code."""
    out: dict[str, list[str]] = {cid: [] for cid in consortium_ids}
    if not consortium_ids:
        return out
    own = select(Institution.consortium_id, Institution.id, Institution.code).where(
        Institution.consortium_id.in_(consortium_ids), Institution.is_lead == true()
    )
    joined = (
        select(ConsortiumMembership.consortium_id, Institution.id, Institution.code)
        .join(Institution, Institution.id == ConsortiumMembership.institution_id)
        .where(
            ConsortiumMembership.consortium_id.in_(consortium_ids),
            ConsortiumMembership.is_lead == true(),
        )
    )
    rows = [*(await session.execute(own)).all(), *(await session.execute(joined)).all()]
    for cid, iid, _code in sorted(rows, key=lambda r: (str(r[0]), r[2])):
        out[str(cid)].append(iid)
    return out


async def set_leads(
    session: AsyncSession, consortium_id: str, institution_ids: Sequence[str]
) -> None:
    """The lead unit becomes exactly ``institution_ids`` (members of the consortium)."""
    await session.execute(
        update(Institution)
        .where(Institution.consortium_id == consortium_id, Institution.is_lead.is_(True))
        .values(is_lead=False, version=Institution.version + 1)
        .execution_options(synchronize_session="fetch")
    )
    await session.execute(
        update(ConsortiumMembership)
        .where(ConsortiumMembership.consortium_id == consortium_id)
        .values(is_lead=False)
        .execution_options(synchronize_session="fetch")
    )
    if not institution_ids:
        return
    await session.execute(
        update(Institution)
        .where(Institution.id.in_(institution_ids), Institution.consortium_id == consortium_id)
        .values(is_lead=True, version=Institution.version + 1)
        .execution_options(synchronize_session="fetch")
    )
    await session.execute(
        update(ConsortiumMembership)
        .where(
            ConsortiumMembership.consortium_id == consortium_id,
            ConsortiumMembership.institution_id.in_(institution_ids),
        )
        .values(is_lead=True)
        .execution_options(synchronize_session="fetch")
    )


async def joined_ids(session: AsyncSession, consortium_ids: Sequence[str]) -> dict[str, list[str]]:
    """The institutions that joined each consortium (not their own), by institution code."""
    out: dict[str, list[str]] = {cid: [] for cid in consortium_ids}
    if not consortium_ids:
        return out
    stmt = (
        select(ConsortiumMembership.consortium_id, ConsortiumMembership.institution_id)
        .join(Institution, Institution.id == ConsortiumMembership.institution_id)
        .where(ConsortiumMembership.consortium_id.in_(consortium_ids))
        .order_by(Institution.code)
    )
    for cid, iid in (await session.execute(stmt)).all():
        out[cid].append(iid)
    return out


async def get_membership(
    session: AsyncSession, consortium_id: str, institution_id: str
) -> ConsortiumMembership | None:
    return await session.get(ConsortiumMembership, (consortium_id, institution_id))


async def add_membership(session: AsyncSession, row: ConsortiumMembership) -> None:
    session.add(row)
    await session.flush()


async def remove_membership(session: AsyncSession, consortium_id: str, institution_id: str) -> int:
    result = await session.execute(
        delete(ConsortiumMembership).where(
            ConsortiumMembership.consortium_id == consortium_id,
            ConsortiumMembership.institution_id == institution_id,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def list_memberships(
    session: AsyncSession, consortium_id: str
) -> Sequence[ConsortiumMembership]:
    stmt = (
        select(ConsortiumMembership)
        .join(Institution, Institution.id == ConsortiumMembership.institution_id)
        .where(ConsortiumMembership.consortium_id == consortium_id)
        .order_by(Institution.code)
    )
    return (await session.execute(stmt)).scalars().all()
