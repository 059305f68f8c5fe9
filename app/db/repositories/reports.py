"""The council's monthly figures, aggregated in SQL (GROUP BY member or specialty, month)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.models import FollowUp, Institution, Referral, ReferralEvent, RoutingAttempt

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


async def referral_counts(session: AsyncSession, scope: Scope) -> dict[str, dict[Key, int]]:
    up, down = Referral.direction == "up", Referral.direction == "down"
    base = select().select_from(Referral)
    by_attempt = (
        select()
        .select_from(RoutingAttempt)
        .join(Referral, Referral.id == RoutingAttempt.referral_id)
    )
    src = aliased(Institution)
    tgt = aliased(Institution)
    same_county = func.substr(src.region_code, 1, 6) == func.substr(tgt.region_code, 1, 6)
    county = (
        select()
        .select_from(Referral)
        .join(src, src.id == Referral.source_institution_id)
        .join(tgt, tgt.id == Referral.target_institution_id)
    )
    out: dict[str, dict[Key, int]] = {}
    out["up_sent"] = await _counts(
        session,
        scope,
        base.where(up, _in_period(scope, Referral.created_at)),
        Referral.source_institution_id,
        Referral.created_at,
    )
    out["down_sent"] = await _counts(
        session,
        scope,
        base.where(down, _in_period(scope, Referral.created_at)),
        Referral.source_institution_id,
        Referral.created_at,
    )
    out["up_received"] = await _counts(
        session,
        scope,
        by_attempt.where(
            up,
            RoutingAttempt.target_institution_id.is_not(None),
            _in_period(scope, RoutingAttempt.created_at),
        ),
        RoutingAttempt.target_institution_id,
        RoutingAttempt.created_at,
    )
    out["down_received"] = await _counts(
        session,
        scope,
        by_attempt.where(
            down,
            RoutingAttempt.target_institution_id.is_not(None),
            _in_period(scope, RoutingAttempt.created_at),
        ),
        RoutingAttempt.target_institution_id,
        RoutingAttempt.created_at,
    )
    out["accepted"] = await _counts(
        session,
        scope,
        base.where(Referral.accepted_at.is_not(None), _in_period(scope, Referral.accepted_at)),
        Referral.target_institution_id,
        Referral.accepted_at,
    )
    out["overflow"] = await _counts(
        session,
        scope,
        base.where(Referral.overflow.is_(True), _in_period(scope, Referral.created_at)),
        Referral.target_institution_id,
        Referral.created_at,
    )
    out["out_of_consortium"] = await _counts(
        session,
        scope,
        base.where(
            up, Referral.out_of_consortium.is_(True), _in_period(scope, Referral.created_at)
        ),
        Referral.source_institution_id,
        Referral.created_at,
    )
    placed_up = county.where(up, _in_period(scope, Referral.created_at))
    out["up_placed"] = await _counts(
        session, scope, placed_up, Referral.source_institution_id, Referral.created_at
    )
    out["up_in_consortium"] = await _counts(
        session,
        scope,
        placed_up.where(Referral.out_of_consortium.is_(False)),
        Referral.source_institution_id,
        Referral.created_at,
    )
    out["up_in_county"] = await _counts(
        session,
        scope,
        placed_up.where(same_county),
        Referral.source_institution_id,
        Referral.created_at,
    )
    out["up_completed_received"] = await _counts(
        session,
        scope,
        base.where(up, Referral.status == "completed", _in_period(scope, Referral.closed_at)),
        Referral.target_institution_id,
        Referral.closed_at,
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


async def accept_durations(session: AsyncSession, scope: Scope) -> Sequence[tuple[Key, float]]:
    """Seconds from the routing attempt that reached the accepting member to its acceptance."""
    latest = (
        select(RoutingAttempt.referral_id, func.max(RoutingAttempt.created_at).label("offered"))
        .join(Referral, Referral.id == RoutingAttempt.referral_id)
        .where(RoutingAttempt.target_institution_id == Referral.target_institution_id)
        .group_by(RoutingAttempt.referral_id)
        .subquery()
    )
    k = _key(scope, Referral.target_institution_id).label("k")
    stmt = (
        select(
            k, month(scope, Referral.accepted_at).label("m"), Referral.accepted_at, latest.c.offered
        )
        .join(latest, latest.c.referral_id == Referral.id)
        .where(Referral.accepted_at.is_not(None), _in_period(scope, Referral.accepted_at))
    )
    if scope.consortium_id is not None:
        stmt = stmt.where(Referral.consortium_id == scope.consortium_id)
    out = []
    for r in (await session.execute(stmt)).all():
        accepted, offered = _aware(r.accepted_at), _aware(r.offered)
        out.append(((r.k, r.m), max(0.0, (accepted - offered).total_seconds())))
    return out


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
