"""Which time zone a report or a "today" check uses, and a period's bounds in UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories import registry as registry_repo
from app.domain.localtime import DEFAULT_TIME_ZONE, day_bounds


@dataclass(frozen=True, slots=True)
class Period:
    """Local days [first, end) of a zone and the UTC instants that bound them."""

    time_zone: str
    first: date
    end: date
    start_at: datetime
    end_at: datetime


async def report_zone(session: AsyncSession, consortium_id: str | None) -> str:
    """The consortium's zone; across consortia, the zone they share (Asia/Shanghai for every
    Chinese consortium), or the default when they differ."""
    if consortium_id is not None:
        consortium = await registry_repo.get_consortium(session, consortium_id)
        if consortium is not None:
            return consortium.time_zone
        return DEFAULT_TIME_ZONE
    zones = await registry_repo.consortium_time_zones(session)
    return zones[0] if len(zones) == 1 else DEFAULT_TIME_ZONE


async def period(
    session: AsyncSession, consortium_id: str | None, first: date, end: date
) -> Period:
    """`from`/`to` of a report: the local days of the scope's zone, as UTC bounds."""
    zone = await report_zone(session, consortium_id)
    start_at, end_at = day_bounds(first, end, zone)
    return Period(zone, first, end, start_at, end_at)
