"""SQL for remote consultation and reading: what members offer, their readers' capacity (held
as beds are: one conditional UPDATE), the sealed answers and the figures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.models import Referral, RoutingAttempt
from app.db.remote_models import RemoteCapacity, RemoteReport, RemoteService

Row = tuple[str, str, int, int, int, datetime | None]


async def services_of(session: AsyncSession, institution_id: str) -> Sequence[RemoteService]:
    stmt = (
        select(RemoteService)
        .where(RemoteService.institution_id == institution_id)
        .order_by(RemoteService.kind, RemoteService.specialty_code)
    )
    return (await session.execute(stmt)).scalars().all()


async def replace_services(
    session: AsyncSession, institution_id: str, services: Iterable[tuple[str, str]]
) -> None:
    await session.execute(
        delete(RemoteService).where(RemoteService.institution_id == institution_id)
    )
    rows = [{"institution_id": institution_id, "kind": k, "specialty_code": c} for k, c in services]
    if rows:
        await session.execute(insert(RemoteService), rows)


async def offered(
    session: AsyncSession, institution_ids: Sequence[str], kind: str, codes: Sequence[str]
) -> dict[str, set[str]]:
    """institution -> the codes (of ``codes``) it offers this remote service for."""
    if not institution_ids:
        return {}
    stmt = select(RemoteService.institution_id, RemoteService.specialty_code).where(
        RemoteService.institution_id.in_(list(institution_ids)),
        RemoteService.kind == kind,
        RemoteService.specialty_code.in_(list(codes)),
    )
    found: dict[str, set[str]] = {}
    for iid, code in (await session.execute(stmt)).all():
        found.setdefault(iid, set()).add(code)
    return found


async def capacity_rows(
    session: AsyncSession,
    institution_ids: Sequence[str],
    hold_kind: str,
    codes: Sequence[str],
    day: date,
) -> list[Row]:
    """(institution, specialty, total, occupied, held, as_of) of that day's remote capacity."""
    if not institution_ids:
        return []
    m = RemoteCapacity
    stmt = select(m.institution_id, m.specialty_code, m.total, m.occupied, m.held, m.as_of).where(
        m.institution_id.in_(list(institution_ids)),
        m.kind == hold_kind,
        m.specialty_code.in_(list(codes)),
        m.day == day,
    )
    return [tuple(r) for r in (await session.execute(stmt)).all()]  # type: ignore[misc]


async def capacity_of(
    session: AsyncSession, institution_id: str, first_day: date
) -> Sequence[RemoteCapacity]:
    stmt = (
        select(RemoteCapacity)
        .where(RemoteCapacity.institution_id == institution_id, RemoteCapacity.day >= first_day)
        .order_by(RemoteCapacity.kind, RemoteCapacity.specialty_code, RemoteCapacity.day)
    )
    return (await session.execute(stmt)).scalars().all()


async def lock_capacity(
    session: AsyncSession, institution_id: str, keys: Iterable[tuple[str, str, date]]
) -> dict[tuple[str, str, date], tuple[int, int, int, int, datetime | None]]:
    """The stored rows of these (kind, specialty, day) keys, locked until the transaction ends."""
    wanted = set(keys)
    if not wanted:
        return {}
    m = RemoteCapacity
    days = [d for _, _, d in wanted]
    stmt = (
        select(m.kind, m.specialty_code, m.day, m.total, m.occupied, m.held, m.overflow, m.as_of)
        .where(
            m.institution_id == institution_id,
            m.specialty_code.in_({c for _, c, _ in wanted}),
            m.day >= min(days),
            m.day <= max(days),
        )
        .with_for_update()
    )
    rows = (await session.execute(stmt)).all()
    return {
        (r[0], r[1], r[2]): (r[3], r[4], r[5], r[6], r[7])
        for r in rows
        if (r[0], r[1], r[2]) in wanted
    }


async def upsert_capacity(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """New rows with no holds; stored ones get the new figures and keep their holds."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_(RemoteCapacity)
    stmt = stmt.on_conflict_do_update(
        index_elements=["institution_id", "kind", "specialty_code", "day"],
        set_={
            c: stmt.excluded[c] for c in ("total", "occupied", "overflow", "as_of", "updated_at")
        },
    )
    await session.execute(stmt, list(rows))


def _key(hold_kind: str, institution_id: str, code: str, day: date | None) -> list[Any]:
    m = RemoteCapacity
    return [
        m.institution_id == institution_id,
        m.kind == hold_kind,
        m.specialty_code == code,
        m.day == day,
    ]


async def try_hold(
    session: AsyncSession, hold_kind: str, institution_id: str, code: str, day: date
) -> bool:
    """Take one free read or consult slot: a single conditional UPDATE."""
    m = RemoteCapacity
    result = await session.execute(
        update(m)
        .where(*_key(hold_kind, institution_id, code, day), m.total - m.occupied - m.held > 0)
        .values(held=m.held + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def give_back(
    session: AsyncSession,
    hold_kind: str,
    institution_id: str,
    code: str,
    day: date | None,
    *,
    used: bool,
) -> bool:
    """Release the held slot (``used``: it was used, so it becomes an occupied one)."""
    m = RemoteCapacity
    values: dict[str, Any] = {"held": m.held - 1}
    if used:
        values["occupied"] = m.occupied + 1
    result = await session.execute(
        update(m)
        .where(*_key(hold_kind, institution_id, code, day), m.held > 0)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def add_report(session: AsyncSession, **values: Any) -> None:
    session.add(RemoteReport(**values))


async def report_of(session: AsyncSession, referral_id: str) -> RemoteReport | None:
    return await session.get(RemoteReport, referral_id)


async def converted_to(session: AsyncSession, referral_id: str) -> str | None:
    """The number of the transfer a remote request was converted into, if any."""
    stmt = (
        select(Referral.number)
        .where(Referral.parent_referral_id == referral_id, Referral.kind == "transfer")
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def figure_rows(
    session: AsyncSession, consortium_id: str | None, start: datetime, end: datetime
) -> tuple[Sequence[Any], Sequence[Any]]:
    """Of the remote requests created in ``[start, end)``: every (request, kind, member it was
    routed to, created) and every answer (request, reader, reported, within target, converted
    into a transfer)."""
    where = [Referral.kind != "transfer", Referral.created_at >= start, Referral.created_at < end]
    if consortium_id is not None:
        where.append(Referral.consortium_id == consortium_id)
    routed = (
        select(
            Referral.id,
            Referral.kind,
            RoutingAttempt.target_institution_id,
            Referral.created_at,
            Referral.specialty_code,
        )
        .join(RoutingAttempt, RoutingAttempt.referral_id == Referral.id)
        .where(*where, RoutingAttempt.target_institution_id.is_not(None))
        .distinct()
    )
    child = aliased(Referral)
    converted = (
        select(child.id)
        .where(child.parent_referral_id == Referral.id, child.kind == "transfer")
        .exists()
    )
    answered = (
        select(
            Referral.id,
            Referral.kind,
            RemoteReport.reader_institution_id,
            Referral.created_at,
            RemoteReport.reported_at,
            RemoteReport.within_target,
            converted.label("converted"),
            Referral.specialty_code,
        )
        .join(RemoteReport, RemoteReport.referral_id == Referral.id)
        .where(*where)
    )
    return (await session.execute(routed)).all(), (await session.execute(answered)).all()


async def insert_missing_capacity(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Rows not stored yet are inserted; stored ones are left as they are."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_(RemoteCapacity).on_conflict_do_nothing(
        index_elements=["institution_id", "kind", "specialty_code", "day"]
    )
    await session.execute(stmt, list(rows))
