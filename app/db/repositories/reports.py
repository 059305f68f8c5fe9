"""The council's monthly figures, aggregated in SQL (GROUP BY member or specialty, month)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Row,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.models import (
    FollowUp,
    Institution,
    Referral,
    ReferralEvent,
    ReferralSatisfaction,
    RoutingAttempt,
    SlotCapacity,
)
from app.domain.green_channel import percentile

Key = tuple[str | None, str]  # (member or specialty, "YYYY-MM")


@dataclass(frozen=True, slots=True)
class Scope:
    consortium_id: str | None
    start: datetime  # UTC bounds of the local days [first_day, end_day)
    end: datetime
    group_by: str  # institution | month | specialty
    dialect: str
    time_zone: str = "UTC"  # the months and days of the report
    first_day: date | None = None
    end_day: date | None = None


def month(scope: Scope, column: Any) -> ColumnElement[Any]:
    """The local month (in the scope's zone) of a UTC timestamp: the first moment of the month
    on PostgreSQL (``date_trunc('month', ts AT TIME ZONE zone)``, which hashes far faster than
    a formatted string), "YYYY-MM" on SQLite (the ``local_month`` function the connection
    registers); ``label`` turns either into "YYYY-MM"."""
    if scope.dialect == "postgresql":
        return func.date_trunc("month", func.timezone(scope.time_zone, column))
    if scope.time_zone == "UTC":
        return func.strftime("%Y-%m", column)
    return func.local_month(column, scope.time_zone)


def month_of_date(scope: Scope, column: Any) -> ColumnElement[Any]:
    if scope.dialect == "postgresql":
        return func.date_trunc("month", cast(column, DateTime()))
    return func.strftime("%Y-%m", column)


def label(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return f"{value.year:04d}-{value.month:02d}"
    return str(value)


def _key(scope: Scope, member: Any) -> Any:
    if scope.group_by == "institution":
        return member
    if scope.group_by == "specialty":
        return Referral.specialty_code
    return literal(None)


def _in_period(scope: Scope, column: Any) -> ColumnElement[bool]:
    return and_(column >= scope.start, column < scope.end)


async def _rows(session: AsyncSession, scope: Scope, stmt: Select[Any]) -> list[Row[Any]]:
    """Run a report statement (its key column labelled ``k``) for the scope: only the
    consortium's transfers (consults and remote reads have figures of their own); grouped by
    member, rows without one (no target yet) left out."""
    stmt = stmt.where(Referral.kind == "transfer")
    if scope.consortium_id is not None:
        stmt = stmt.where(Referral.consortium_id == scope.consortium_id)
    rows = (await session.execute(stmt)).all()
    if scope.group_by == "institution":
        return [r for r in rows if r.k is not None]
    return list(rows)


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
    out: dict[str, dict[Key, int]] = {name: {} for name in sums}
    for r in await _rows(session, scope, stmt):
        for name in sums:
            value = int(getattr(r, name))
            if value:
                out[name][(r.k, label(r.m))] = value
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
            # 001: of the placed up-referrals of signed residents, those sent to a signed one
            "up_placed_signed": and_(placed, Referral.signed_from.is_not(None)),
            "up_to_signed": and_(placed, Referral.to_signed.is_(True)),
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
    """Expiries (counted for the member that let the referral expire), re-routes and entries
    into the waitlist (for the sending member), one pass over the period's events."""
    kinds = ("expired", "rerouted", WAITLIST)
    kind = case(
        (ReferralEvent.type == "expired", "expired"),
        (ReferralEvent.type == "rerouted", "rerouted"),
        else_=WAITLIST,
    ).label("kind")
    member = case(
        (ReferralEvent.type == "expired", ReferralEvent.target_institution_id),
        else_=Referral.source_institution_id,
    )
    k = _key(scope, member).label("k")
    m = month(scope, ReferralEvent.at).label("m")
    stmt = (
        select(k, m, kind, func.count().label("n"))
        .select_from(ReferralEvent)
        .join(Referral, Referral.id == ReferralEvent.referral_id)
        .where(
            or_(ReferralEvent.type.in_(("expired", "rerouted")), entered_waitlist()),
            _in_period(scope, ReferralEvent.at),
        )
        .group_by(k, m, kind)
    )
    out: dict[str, dict[Key, int]] = {kind: {} for kind in kinds}
    for r in await _rows(session, scope, stmt):
        out[str(r.kind)][(r.k, label(r.m))] = int(r.n)
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
    out: dict[Key, dict[str, int]] = {}
    for r in await _rows(session, scope, stmt):
        out.setdefault((r.k, label(r.m)), {})[str(r.reason_code)] = int(r.n)
    return out


@dataclass(frozen=True, slots=True)
class Timed:
    """How many things happened in the month, and the median and 90th percentile of the
    minutes each took (None without a start time)."""

    count: int
    minutes_p50: float | None
    minutes_p90: float | None


async def _timed(
    session: AsyncSession,
    scope: Scope,
    stmt: Select[Any],
    member: Any,
    moment: Any,
    begin: Any,
) -> dict[Key, Timed]:
    """COUNT(*) of ``stmt``'s rows by report key and month of ``moment``, with the median and
    90th percentile of minutes from ``begin`` to ``moment``: one grouped query on PostgreSQL
    (percentile_cont skips rows whose ``begin`` is NULL), from the per-row values on SQLite,
    which has no percentile function (same linear interpolation)."""
    k = _key(scope, member).label("k")
    m = month(scope, moment).label("m")
    stmt = stmt.where(_in_period(scope, moment))
    out: dict[Key, Timed] = {}
    if scope.dialect == "postgresql":
        minutes = func.extract("epoch", moment - begin) / 60
        grouped = stmt.add_columns(
            k,
            m,
            func.count().label("n"),
            func.percentile_cont(0.5).within_group(minutes).label("p50"),
            func.percentile_cont(0.9).within_group(minutes).label("p90"),
        ).group_by(k, m)
        for r in await _rows(session, scope, grouped):
            out[(r.k, label(r.m))] = Timed(int(r.n), _minutes(r.p50), _minutes(r.p90))
        return out
    counts: dict[Key, int] = {}
    values: dict[Key, list[float]] = {}
    rows = stmt.add_columns(k, m, moment.label("end_"), begin.label("begin_"))
    for r in await _rows(session, scope, rows):
        key = (r.k, label(r.m))
        counts[key] = counts.get(key, 0) + 1
        if r.begin_ is not None:
            seconds = (_aware(r.end_) - _aware(r.begin_)).total_seconds()
            values.setdefault(key, []).append(max(0.0, seconds) / 60)
    for key, n in counts.items():
        v = values.get(key)
        out[key] = Timed(n, percentile(v, 0.5) if v else None, percentile(v, 0.9) if v else None)
    return out


async def acceptances(session: AsyncSession, scope: Scope) -> dict[Key, Timed]:
    """Referrals accepted in the month, for the accepting member, with the minutes from the
    routing that reached that member (``routed_at``) to acceptance."""
    return await _timed(
        session,
        scope,
        select().select_from(Referral).where(Referral.accepted_at.is_not(None)),
        Referral.target_institution_id,
        Referral.accepted_at,
        Referral.routed_at,
    )


WAITLIST = "waitlisted"


def entered_waitlist() -> ColumnElement[bool]:
    """An event that put a referral on the waitlist: created there, or re-routed there."""
    return and_(
        ReferralEvent.to_status == WAITLIST,
        or_(ReferralEvent.from_status.is_(None), ReferralEvent.from_status != WAITLIST),
    )


async def waitlist_placements(session: AsyncSession, scope: Scope) -> dict[Key, Timed]:
    """Referrals that left the waitlist with a place in the month, for the sending member, with
    the minutes since they last entered the waitlist."""
    entered = aliased(ReferralEvent)
    since = (
        select(func.max(entered.at))
        .where(
            entered.referral_id == ReferralEvent.referral_id,
            entered.to_status == WAITLIST,
            entered.at <= ReferralEvent.at,
        )
        .scalar_subquery()
    )
    stmt = (
        select()
        .select_from(ReferralEvent)
        .join(Referral, Referral.id == ReferralEvent.referral_id)
        .where(
            ReferralEvent.type == "routed",
            ReferralEvent.from_status == WAITLIST,
            ReferralEvent.target_institution_id.is_not(None),
        )
    )
    return await _timed(
        session, scope, stmt, Referral.source_institution_id, ReferralEvent.at, since
    )


def _minutes(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value  # type: ignore[no-any-return]


async def follow_up_counts(
    session: AsyncSession, scope: Scope, today: date
) -> dict[str, dict[Key, int]]:
    """Planned visits due in the month (and already due): how many were done by their date,
    for the member that referred the patient down (one pass)."""
    m = month_of_date(scope, FollowUp.due_date).label("m")
    k = _key(scope, Referral.target_institution_id).label("k")
    on_time = and_(FollowUp.done_at.is_not(None), FollowUp.done_at <= FollowUp.due_date)
    stmt = (
        select(
            k,
            m,
            func.count().label("due"),
            func.coalesce(func.sum(case((on_time, 1), else_=0)), 0).label("on_time"),
        )
        .select_from(FollowUp)
        .join(Referral, Referral.id == FollowUp.referral_id)
        .where(
            FollowUp.kind == "planned",
            FollowUp.due_date >= (scope.first_day or scope.start.date()),
            FollowUp.due_date < min(scope.end_day or scope.end.date(), today),
        )
        .group_by(k, m)
    )
    out: dict[str, dict[Key, int]] = {"follow_ups_due": {}, "follow_ups_on_time": {}}
    for r in await _rows(session, scope, stmt):
        key = (r.k, label(r.m))
        out["follow_ups_due"][key] = int(r.due)
        if int(r.on_time):
            out["follow_ups_on_time"][key] = int(r.on_time)
    return out


async def satisfaction(session: AsyncSession, scope: Scope) -> dict[Key, tuple[int, float | None]]:
    """Scores recorded in the period: how many and their mean, per member rated (the target
    when the score was recorded) and the local month of recording."""
    rated = ReferralSatisfaction
    m = month(scope, rated.recorded_at).label("m")
    if scope.group_by == "institution":
        k: Any = rated.target_institution_id.label("k")
    elif scope.group_by == "specialty":
        k = Referral.specialty_code.label("k")
    else:
        k = literal(None).label("k")
    stmt = (
        select(k, m, func.count().label("n"), func.avg(rated.score).label("mean"))
        .select_from(rated)
        .join(Referral, Referral.id == rated.referral_id)
        .where(_in_period(scope, rated.recorded_at), Referral.kind == "transfer")
        .group_by(k, m)
    )
    if scope.consortium_id is not None:
        stmt = stmt.where(rated.consortium_id == scope.consortium_id)
    out: dict[Key, tuple[int, float | None]] = {}
    for r in (await session.execute(stmt)).all():
        mean = None if r.mean is None else round(float(r.mean), 2)
        out[(r.k, label(r.m))] = (int(r.n), mean)
    return out


async def recognition_sums(session: AsyncSession, scope: Scope) -> dict[str, dict[Key, int]]:
    """Mutual recognition, per member received and month of creation: prior results
    recognised, repeated anyway, and the fen not spent twice (recognised minus repeated)."""
    m = month(scope, Referral.created_at).label("m")
    k = _key(scope, Referral.target_institution_id).label("k")
    stmt = (
        select(
            k,
            m,
            func.coalesce(func.sum(Referral.recognised_tests), 0).label("recognised"),
            func.coalesce(func.sum(Referral.repeated_tests), 0).label("repeated"),
            func.coalesce(func.sum(Referral.recognised_fen - Referral.repeated_fen), 0).label(
                "saved"
            ),
        )
        .where(
            Referral.direction == "up",
            Referral.recognised_tests > 0,
            _in_period(scope, Referral.created_at),
        )
        .group_by(k, m)
    )
    out: dict[str, dict[Key, int]] = {
        "tests_recognised": {},
        "tests_repeated": {},
        "fen_not_spent_twice": {},
    }
    for r in await _rows(session, scope, stmt):
        key = (r.k, label(r.m))
        out["tests_recognised"][key] = int(r.recognised)
        if int(r.repeated):
            out["tests_repeated"][key] = int(r.repeated)
        out["fen_not_spent_twice"][key] = int(r.saved)
    return out


async def reserved_slot_sums(
    session: AsyncSession, scope: Scope, now: datetime
) -> dict[str, dict[Key, int]]:
    """The signed reserve of outpatient slots, per member and local month of the slot day:
    places kept, held or used by signed referrals, and unused when released (release time
    passed by ``now``). Rows of the consortium's own members, days in the period."""
    m = SlotCapacity
    k: Any = literal(None)
    if scope.group_by == "institution":
        k = m.institution_id
    elif scope.group_by == "specialty":
        k = m.specialty_code
    mo = month_of_date(scope, m.day)
    left = m.reserved_signed - m.held_signed - m.used_signed
    gone = and_(m.release_at.is_not(None), m.release_at <= now, left > 0)
    stmt = (
        select(
            k.label("k"),
            mo.label("m"),
            func.coalesce(func.sum(m.reserved_signed), 0).label("reserved"),
            func.coalesce(func.sum(m.held_signed + m.used_signed), 0).label("used"),
            func.coalesce(func.sum(case((gone, left), else_=0)), 0).label("released"),
        )
        .join(Institution, Institution.id == m.institution_id)
        .where(m.reserved_signed > 0)
        .group_by(k, mo)
    )
    if scope.first_day is not None:
        stmt = stmt.where(m.day >= scope.first_day)
    if scope.end_day is not None:
        stmt = stmt.where(m.day < scope.end_day)
    if scope.consortium_id is not None:
        stmt = stmt.where(Institution.consortium_id == scope.consortium_id)
    out: dict[str, dict[Key, int]] = {
        "reserved_slots": {},
        "reserved_used": {},
        "reserved_released": {},
    }
    for r in (await session.execute(stmt)).all():
        key = (r.k, label(r.m))
        for name, value in (
            ("reserved_slots", r.reserved),
            ("reserved_used", r.used),
            ("reserved_released", r.released),
        ):
            if int(value):
                out[name][key] = int(value)
    return out


#: the routing outcomes of a referral leaving the consortium or waiting for a place
LEAK_OUTCOMES = ("out_of_consortium", "waitlisted")


async def leaking_attempts(session: AsyncSession, scope: Scope) -> list[Row[Any]]:
    """The stored routing decisions of up-referrals that sent the patient to an upstream
    partner or onto the waitlist, in the period (by the attempt's time): referral, specialty,
    time, outcome, target and the decision as stored (bounded: 20 listed exclusions)."""
    stmt = (
        select(
            RoutingAttempt.referral_id,
            Referral.specialty_code,
            RoutingAttempt.created_at,
            RoutingAttempt.outcome,
            RoutingAttempt.target_institution_id,
            RoutingAttempt.decision,
        )
        .select_from(RoutingAttempt)
        .join(Referral, Referral.id == RoutingAttempt.referral_id)
        .where(
            Referral.direction == "up",
            Referral.kind == "transfer",
            RoutingAttempt.outcome.in_(LEAK_OUTCOMES),
            _in_period(scope, RoutingAttempt.created_at),
        )
        .order_by(RoutingAttempt.created_at, RoutingAttempt.id)
    )
    if scope.consortium_id is not None:
        stmt = stmt.where(Referral.consortium_id == scope.consortium_id)
    return list((await session.execute(stmt)).all())


async def acceptance_times(
    session: AsyncSession, scope: Scope
) -> list[tuple[str, datetime, datetime | None, str, str | None]]:
    """Referrals accepted in the period: (accepting member, accepted_at, routed_at, urgency,
    pathway), for the share accepted within the answer time."""
    stmt = select(
        Referral.target_institution_id,
        Referral.accepted_at,
        Referral.routed_at,
        Referral.urgency,
        Referral.pathway_code,
    ).where(
        Referral.accepted_at.is_not(None),
        Referral.target_institution_id.is_not(None),
        Referral.kind == "transfer",
        _in_period(scope, Referral.accepted_at),
    )
    if scope.consortium_id is not None:
        stmt = stmt.where(Referral.consortium_id == scope.consortium_id)
    return [
        (str(r[0]), _aware(r[1]), None if r[2] is None else _aware(r[2]), str(r[3]), r[4])
        for r in (await session.execute(stmt)).all()
    ]


def aware(value: Any) -> datetime:
    """A timestamp as read back (SQLite: naive or text) as an aware UTC datetime."""
    return _aware(value)
