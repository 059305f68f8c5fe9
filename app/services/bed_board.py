"""The council's bed board (003: "unified deployment and use of the bed resources"): every
member's beds per specialty, and its outpatient slots of one day, in one read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.db.models import BedCapacity, Consortium, Institution, SlotCapacity
from app.db.repositories.memberships import member_of
from app.domain.enums import Role
from app.domain.errors import Forbidden, NotFound
from app.domain.localtime import today
from app.services import registry as registry_service
from app.services.auth import Principal
from app.services.capacity import CapacityItem, item_of


@dataclass(frozen=True, slots=True)
class BoardRow:
    institution_id: str
    institution_code: str
    institution_name: str
    capacity: CapacityItem


async def board(
    session: AsyncSession,
    principal: Principal,
    consortium_ref: str,
    *,
    day: date | None,
    stale_after: timedelta,
) -> tuple[str, date, list[BoardRow]]:
    """The consortium's id, the slot day (default: its today) and the rows, by member code."""
    consortium_id = await registry_service.consortium_ref(session, consortium_ref)
    consortium = await session.get(Consortium, consortium_id or "")
    if consortium is None:
        raise NotFound("No consortium with this id or code.")
    allowed = principal.role is Role.ADMIN or (
        principal.role is Role.COUNCIL and principal.consortium_id == consortium.id
    )
    if not allowed:
        raise Forbidden("The bed board is the council's (and admins').")
    now = utcnow()
    slot_day = day or today(now, consortium.time_zone)
    members = (
        select(Institution.id, Institution.code, Institution.name)
        .where(member_of(consortium.id))  # its own and those that joined it
        .subquery()
    )
    rows: list[BoardRow] = []
    for model in (BedCapacity, SlotCapacity):
        stmt = select(model, members.c.code, members.c.name).join(
            members, members.c.id == model.institution_id
        )
        if model is SlotCapacity:
            stmt = stmt.where(SlotCapacity.day == slot_day)
        for cap, code, name in (await session.execute(stmt)).all():
            item = item_of(cap, now, stale_after)
            rows.append(BoardRow(cap.institution_id, code, name, item))
    rows.sort(key=lambda r: (r.institution_code, r.capacity.kind, r.capacity.specialty_code))
    return consortium.id, slot_day, rows
