"""The council's monthly figures, aggregated in SQL (GROUP BY member or specialty, month)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.models import FollowUp, Institution, Referral, ReferralEvent, RoutingAttempt
from app.domain.green_channel import percentile

Key = tuple[str | None, str]  # (member or specialty, "YYYY-MM")


@dataclass(frozen=True, slots=True)
class Scope:
    consortium_id: str | None
    start: datetime
    end: datetime
    group_by: str  # institution | month | specialty
    dialect: str


def month(scope: Scope, column: Any) -> ColumnElement[str]:
    if scope.dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)


def month_of_date(scope: Scope, column: Any) -> ColumnElement[str]:
    if scope.dialect == "postgresql":
        return func.to_char(column, "YYYY-MM")
    return func.strftime("%Y-%m", column)


def _key(scope: Scope, member: Any) -> Any:
    if scope.group_by == "institution":
        return member
    if scope.group_by == "specialty":
        return Referral.specialty_code
    return literal(None)


async def _counts(
    session: AsyncSession,
    scope: Scope,
    stmt: Select[Any],
    member: Any,
    moment: Any,
    *,
    by_date: bool = False,
    value: Any = None,
) -> dict[Key, int]:
    """COUNT(*) (or SUM(value)) grouped by the report key and month of ``moment``."""
    m = month_of_date(scope, moment) if by_date else month(scope, moment)
    k = _key(scope, member).label("k")
    agg = func.count() if value is None else func.coalesce(func.sum(value), 0)
    stmt = stmt.add_columns(k, m.label("m"), agg.label("n")).group_by(k, m)
    if scope.consortium_id is not None:
        stmt = stmt.where(Referral.consortium_id == scope.consortium_id)
    rows = (await session.execute(stmt)).all()
    return {
        (r.k, r.m): int(r.n) for r in rows if r.k is not None or scope.group_by != "institution"
    }


def _in_period(scope: Scope, column: Any) -> ColumnElement[bool]:
    return and_(column >= scope.start, column < scope.end)


async def _sums(
    session: AsyncSession,
    scope: Scope,
    stmt: Select[Any],
    member: Any,
    moment: Any,
    sums: dict[str, Any],
) -> dict[str, dict[Key, int]]:
    """Several conditional counts in one pass, grouped by the report key and month."""
    m = month(scope, moment)
    k = _key(scope, member).label("k")
    cols = [
        func.coalesce(func.sum(case((cond, 1), else_=0)), 0).label(name)
        for name, cond in sums.items()
    ]
    stmt = stmt.add_columns(k, m.label("m"), *cols).group_by(k, m)
    if scope.consortium_id is not None:
        stmt = stmt.where(Referral.consortium_id == scope.consortium_id)
    out: dict[str, dict[Key, int]] = {name: {} for name in sums}
    for r in (await session.execute(stmt)).all():
        if r.k is None and scope.group_by == "institution":
            continue
        for name in sums:
            value = int(getattr(r, name))
            if value:
                out[name][(r.k, r.m)] = value
    return out


async def referral_counts(session: AsyncSession, scope: Scope) -> dict[str, dict[Key, int]]:
    up, down = Referral.direction == "up", Referral.direction == "down"
    src = aliased(Institution)
    tgt = aliased(Institution)
    placed = and_(up, Referral.target_institution_id.is_not(None))
    out: dict[str, dict[Key, int]] = {}
    by_source = (
        select()
        .select_from(Referral)
        .join(src, src.id == Referral.source_institution_id)
        .outerjoin(tgt, tgt.id == Referral.target_institution_id)
        .where(_in_period(scope, Referral.created_at))
    )
    out |= await _sums(
        session,
        scope,
        by_source,
        Referral.source_institution_id,
        Referral.created_at,
        {
            "up_sent": up,
            "down_sent": down,
            "out_of_consortium": and_(up, Referral.out_of_consortium.is_(True)),
            "up_placed": placed,
            "up_in_consortium": and_(placed, Referral.out_of_consortium.is_(False)),
            "up_in_county": and_(
                placed, func.substr(src.region_code, 1, 6) == func.substr(tgt.region_code, 1, 6)
            ),
        },
    )
    out |= await _sums(
        session,
        scope,
        select()
        .select_from(Referral)
        .where(Referral.overflow.is_(True), _in_period(scope, Referral.created_at)),
        Referral.target_institution_id,
        Referral.created_at,
        {"overflow": Referral.overflow.is_(True)},
    )
    out |= await _sums(
        session,
        scope,
        select().select_from(Referral).where(_in_period(scope, Referral.accepted_at)),
        Referral.target_institution_id,
        Referral.accepted_at,
        {"accepted": Referral.accepted_at.is_not(None)},
    )
    out |= await _sums(
        session,
        scope,
        select()
        .select_from(Referral)
        .where(up, Referral.status == "completed", _in_period(scope, Referral.closed_at)),
        Referral.target_institution_id,
        Referral.closed_at,
        {"up_completed_received": Referral.status == "completed"},
    )
    attempts = (
        select()
        .select_from(RoutingAttempt)
        .join(Referral, Referral.id == RoutingAttempt.referral_id)
        .where(
            RoutingAttempt.target_institution_id.is_not(None),
            _in_period(scope, RoutingAttempt.created_at),
        )
    )
    out |= await _sums(
        session,
        scope,
        attempts,
        RoutingAttempt.target_institution_id,
        RoutingAttempt.created_at,
        {"up_received": up, "down_received": down},
    )
    return out


async def event_counts(session: AsyncSession, scope: Scope) -> dict[str, dict[Key, int]]:
    events = (
        select().select_from(ReferralEvent).join(Referral, Referral.id == ReferralEvent.referral_id)
    )
    out: dict[str, dict[Key, int]] = {}
    for kind, member in (
        ("expired", ReferralEvent.target_institution_id),
        ("rerouted", Referral.source_institution_id),
        ("waitlisted", Referral.source_institution_id),
    ):
        out[kind] = await _counts(
            session,
            scope,
            events.where(ReferralEvent.type == kind, _in_period(scope, ReferralEvent.at)),
            member,
            ReferralEvent.at,
        )
    return out


async def rejections(session: AsyncSession, scope: Scope) -> dict[Key, dict[str, int]]:
    m = month(scope, ReferralEvent.at)
    k = _key(scope, ReferralEvent.actor_institution_id).label("k")
    stmt = (
        select(k, m.label("m"), ReferralEvent.reason_code, func.count().label("n"))
        .select_from(ReferralEvent)
        .join(Referral, Referral.id == ReferralEvent.referral_id)
        .where(ReferralEvent.type == "rejected", _in_period(scope, ReferralEvent.at))
        .group_by(k, m, ReferralEvent.reason_code)
    )
    if scope.consortium_id is not None:
        stmt = stmt.where(Referral.consortium_id == scope.consortium_id)
    out: dict[Key, dict[str, int]] = {}
    for r in (await session.execute(stmt)).all():
        out.setdefault((r.k, r.m), {})[str(r.reason_code)] = int(r.n)
    return out


async def accept_percentiles(
    session: AsyncSession, scope: Scope
) -> dict[Key, tuple[float | None, float | None]]:
    """Median and 90th percentile of minutes from the routing that reached the accepting
    member (``routed_at``) to acceptance: in SQL on PostgreSQL (percentile_cont), from the
    per-referral values on SQLite (same linear interpolation)."""
    k = _key(scope, Referral.target_institution_id).label("k")
    m = month(scope, Referral.accepted_at).label("m")
    where = [
        Referral.accepted_at.is_not(None),
        Referral.routed_at.is_not(None),
        _in_period(scope, Referral.accepted_at),
    ]
    if scope.consortium_id is not None:
        where.append(Referral.consortium_id == scope.consortium_id)
    if scope.dialect == "postgresql":
        minutes = func.extract("epoch", Referral.accepted_at - Referral.routed_at) / 60
        stmt = (
            select(
                k,
                m,
                func.percentile_cont(0.5).within_group(minutes).label("p50"),
                func.percentile_cont(0.9).within_group(minutes).label("p90"),
            )
            .where(*where)
            .group_by(k, m)
        )
        return {
            (r.k, r.m): (round(float(r.p50), 1), round(float(r.p90), 1))
            for r in (await session.execute(stmt)).all()
        }
    values: dict[Key, list[float]] = {}
    stmt2 = select(k, m, Referral.accepted_at, Referral.routed_at).where(*where)
    for r in (await session.execute(stmt2)).all():
        seconds = (_aware(r.accepted_at) - _aware(r.routed_at)).total_seconds()
        values.setdefault((r.k, r.m), []).append(max(0.0, seconds) / 60)
    return {key: (percentile(v, 0.5), percentile(v, 0.9)) for key, v in values.items()}


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value  # type: ignore[no-any-return]


async def follow_up_counts(
    session: AsyncSession, scope: Scope, today: date
) -> dict[str, dict[Key, int]]:
    """Planned visits due in the month (and already due): how many were done by their date."""
    stmt = (
        select()
        .select_from(FollowUp)
        .join(Referral, Referral.id == FollowUp.referral_id)
        .where(
            FollowUp.kind == "planned",
            FollowUp.due_date >= scope.start.date(),
            FollowUp.due_date < min(scope.end.date(), today),
        )
    )
    on_time = case(
        (and_(FollowUp.done_at.is_not(None), FollowUp.done_at <= FollowUp.due_date), 1), else_=0
    )
    return {
        "follow_ups_due": await _counts(
            session, scope, stmt, Referral.target_institution_id, FollowUp.due_date, by_date=True
        ),
        "follow_ups_on_time": await _counts(
            session,
            scope,
            stmt,
            Referral.target_institution_id,
            FollowUp.due_date,
            by_date=True,
            value=on_time,
        ),
    }
